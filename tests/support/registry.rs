//! A real registry (Debian's docker-registry, CNCF Distribution 2.8) on loopback:
//! plain HTTP, HTTPS with a CA generated per run, htpasswd basic auth, and bearer tokens
//! from a [`TokenServer`] (the flow registry.redhat.io and quay.io use).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::token::{ISSUER, SERVICE, TokenServer};
use super::{Guarded, free_port, require, temp_dir, wait_until};

/// How the registry is set up.
#[derive(Clone, Debug, Default)]
pub struct RegistryOptions {
    /// Serve HTTPS with a freshly generated CA.
    pub tls: bool,
    /// Require basic auth with this user and password.
    pub htpasswd: Option<(String, String)>,
    /// Require bearer tokens from a [`TokenServer`] that accepts this user and password
    /// (exclusive with `htpasswd`).
    pub token: Option<(String, String)>,
    /// The tokens' `expires_in` in seconds (default 300); see [`TokenServer::set_expires_in`].
    pub token_expires_in: Option<u64>,
    /// Refuse manifest deletes (Distribution's `storage.delete.enabled: false`): a `DELETE`
    /// is answered 405 UNSUPPORTED.
    pub deletion_disabled: bool,
    /// Log every request (Distribution's access log, `log.accesslog.disabled: false`) to the
    /// registry's log; read with [`Registry::access_log`] and [`Registry::requests`].
    pub access_log: bool,
}

/// One request of a registry's access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Access {
    /// `GET`, `HEAD`, `DELETE`, ...
    pub method: String,
    /// The request URI (path and query).
    pub uri: String,
    /// The status answered.
    pub status: u16,
}

impl Access {
    /// Parses a line of Distribution's access log, the Apache combined format gorilla's
    /// logging handler writes: `127.0.0.1 - - [05/Dec/2026:09:14:34 +0000] "DELETE
    /// /v2/foo/manifests/sha256:... HTTP/1.1" 405 78 "" "agent"`. Any other line of the log
    /// (Distribution's own `time=... level=...` lines name requests too) is `None`.
    pub fn parse(line: &str) -> Option<Access> {
        let (_, rest) = line.split_once("] \"")?;
        let (request, after) = rest.split_once('"')?;
        let mut parts = request.split(' ');
        let (method, uri, proto) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || !proto.starts_with("HTTP/") || method.is_empty() {
            return None;
        }
        if !method.bytes().all(|b| b.is_ascii_uppercase()) || !uri.starts_with('/') {
            return None;
        }
        let status = after.split_whitespace().next()?.parse().ok()?;
        Some(Access { method: method.to_string(), uri: uri.to_string(), status })
    }
}

/// A PEM CA certificate and a server certificate signed by it for 127.0.0.1 and localhost.
pub struct TestCa {
    /// The CA certificate (PEM).
    pub ca_pem: String,
    /// The server certificate (PEM).
    pub cert_pem: String,
    /// The server's private key (PEM).
    pub key_pem: String,
}

impl TestCa {
    /// Generates a fresh CA and server certificate.
    pub fn generate() -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().expect("ca key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca.distinguished_name.push(DnType::CommonName, "imageset-operator test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca.self_signed(&ca_key).expect("self-sign ca");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).expect("server params");
        params.distinguished_name.push(DnType::CommonName, "127.0.0.1");
        let cert = params.signed_by(&key, &issuer).expect("sign server cert");
        TestCa { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }
}

/// A running registry.
pub struct Registry {
    /// `127.0.0.1:<port>`.
    pub host: String,
    /// The CA, when TLS is on.
    pub ca: Option<TestCa>,
    /// Credentials, when auth is on (basic or token).
    pub credentials: Option<(String, String)>,
    /// The token server, when token auth is on.
    pub token: Option<TokenServer>,
    /// A directory holding `ca.crt` for skopeo's `--cert-dir`.
    pub cert_dir: Option<PathBuf>,
    /// Storage root (the registry's own files).
    pub storage: PathBuf,
    /// Whether requests are logged (see [`Registry::access_log`]).
    access_log: bool,
    /// Tokens the harness itself holds, per scope, with when they expire.
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    _proc: Guarded,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry as `opts` says and waits until it answers `/v2/`.
    pub fn start(opts: RegistryOptions) -> Registry {
        let bin = require("docker-registry");
        let dir = temp_dir("registry-");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let storage = dir.path().join("storage");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: {}\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: {}\nhttp:\n  addr: {host}\n",
            !opts.access_log,
            storage.display(),
            !opts.deletion_disabled,
        );
        let ca = opts.tls.then(TestCa::generate);
        let mut cert_dir = None;
        if let Some(ca) = &ca {
            std::fs::write(dir.path().join("server.crt"), &ca.cert_pem).unwrap();
            std::fs::write(dir.path().join("server.key"), &ca.key_pem).unwrap();
            let cd = dir.path().join("certs.d");
            std::fs::create_dir_all(&cd).unwrap();
            std::fs::write(cd.join("ca.crt"), &ca.ca_pem).unwrap();
            cert_dir = Some(cd);
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("server.crt").display(),
                dir.path().join("server.key").display()
            ));
        }
        if let Some((user, pass)) = &opts.htpasswd {
            let hash = bcrypt::hash(pass, 5).expect("bcrypt");
            std::fs::write(dir.path().join("htpasswd"), format!("{user}:{hash}\n")).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: imageset-test\n    path: {}\n",
                dir.path().join("htpasswd").display()
            ));
        }
        assert!(opts.htpasswd.is_none() || opts.token.is_none(), "htpasswd and token auth are exclusive");
        let token = opts.token.as_ref().map(|(user, pass)| {
            let server = TokenServer::start(user, pass, opts.token_expires_in.unwrap_or(300));
            let bundle = dir.path().join("token-root.pem");
            std::fs::write(&bundle, &server.root_pem).unwrap();
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
                server.realm,
                bundle.display()
            ));
            server
        });
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let mut proc = Guarded::spawn(
            &bin,
            &["serve".into(), config_path.display().to_string()],
            &dir.path().join("registry.log"),
            None,
        );
        let client = http_client(ca.as_ref());
        let url = format!("{}/v2/", base_url(&host, ca.is_some()));
        let proc_tail = proc.log_tail();
        wait_until(
            &format!("registry at {host}"),
            Duration::from_secs(20),
            || {
                proc.alive()
                    && client.get(&url).send().map(|r| matches!(r.status().as_u16(), 200 | 401)).unwrap_or(false)
            },
            proc_tail,
        );
        Registry {
            host,
            credentials: opts.htpasswd.or(opts.token),
            token,
            tokens: Mutex::new(HashMap::new()),
            cert_dir,
            storage,
            ca,
            access_log: opts.access_log,
            _proc: proc,
            _dir: dir,
        }
    }

    /// Stops the registry (its storage and log stay until it is dropped): what a registry
    /// that went away looks like to clients.
    pub fn stop(&mut self) {
        self._proc.stop();
    }

    /// Every request answered so far, oldest first, as the access log has them. Panics unless
    /// the registry was started with `access_log`. Distribution writes a request's line when
    /// its handler returns, before the server flushes a small (buffered) response: the line of
    /// a `HEAD`, `DELETE` or manifest request is there once its answer has been read; a large
    /// blob's may follow the body's last bytes by a moment.
    pub fn access_log(&self) -> Vec<Access> {
        assert!(self.access_log, "the registry at {} was started without access_log", self.host);
        let text =
            std::fs::read_to_string(&self._proc.log).unwrap_or_else(|e| panic!("{}: {e}", self._proc.log.display()));
        text.lines().filter_map(Access::parse).collect()
    }

    /// How many requests so far had this method and a URI containing `path_contains`.
    pub fn requests(&self, method: &str, path_contains: &str) -> usize {
        self.access_log().iter().filter(|a| a.method == method && a.uri.contains(path_contains)).count()
    }

    /// `http://` or `https://` plus host.
    pub fn base_url(&self) -> String {
        base_url(&self.host, self.ca.is_some())
    }

    /// A blocking HTTP client trusting this registry's CA.
    pub fn http(&self) -> reqwest::blocking::Client {
        http_client(self.ca.as_ref())
    }

    /// Adds this registry's credentials to a request on `repo`: basic auth, or a bearer
    /// token for `repository:<repo>:pull,push` (fetched once and reused until it expires).
    pub fn authorize(&self, repo: &str, rb: reqwest::blocking::RequestBuilder) -> reqwest::blocking::RequestBuilder {
        match (&self.token, &self.credentials) {
            (Some(_), _) => rb.bearer_auth(self.bearer(&format!("repository:{repo}:pull,push"))),
            (None, Some((u, p))) => rb.basic_auth(u, Some(p)),
            (None, None) => rb,
        }
    }

    /// A bearer token for `scope` with this registry's credentials, cached until it expires.
    /// Panics unless token auth is on.
    pub fn bearer(&self, scope: &str) -> String {
        let server = self.token.as_ref().expect("token auth is on");
        let mut tokens = self.tokens.lock().unwrap();
        if let Some((t, until)) = tokens.get(scope)
            && Instant::now() < *until
        {
            return t.clone();
        }
        let (u, p) = self.credentials.as_ref().expect("token credentials");
        let t = server.fetch(Some((u, p)), &[scope]).expect("the token server accepts the registry's credentials");
        let until = Instant::now() + Duration::from_secs(server.expires_in().saturating_sub(1));
        tokens.insert(scope.to_string(), (t.clone(), until));
        t
    }

    /// skopeo flags to reach this registry (TLS trust and credentials).
    pub fn skopeo_flags(&self) -> Vec<String> {
        let mut f = Vec::new();
        match &self.cert_dir {
            Some(d) => f.push(format!("--cert-dir={}", d.display())),
            None => f.push("--tls-verify=false".to_string()),
        }
        if let Some((u, p)) = &self.credentials {
            f.push(format!("--creds={u}:{p}"));
        }
        f
    }
}

fn base_url(host: &str, tls: bool) -> String {
    format!("{}://{host}", if tls { "https" } else { "http" })
}

fn http_client(ca: Option<&TestCa>) -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30));
    if let Some(ca) = ca {
        b = b.tls_certs_only([reqwest::Certificate::from_pem(ca.ca_pem.as_bytes()).expect("ca pem")]);
    }
    b.build().expect("http client")
}
