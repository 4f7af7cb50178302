//! A registry token server (the Docker/Distribution bearer-token flow, as registry.redhat.io
//! and quay.io use): `GET /token?service=..&scope=repository:NAME:pull,push` with Basic auth
//! answers a JWT signed ES256 by a key whose CA is in the registry's `rootcertbundle`.
//!
//! * The accepted user gets exactly the actions it asks for, on every scope it asks for
//!   (`scope` may repeat, or hold several scopes separated by spaces).
//! * Anonymous requests get a token granting nothing, as real registries do for private
//!   repositories; the registry then answers 401 `insufficient_scope`.
//! * Wrong credentials get 401.
//! * `POST /token` with an OAuth2 `grant_type=password` form works too.
//!
//! Note that Distribution accepts a token until 60 s after its `exp` (its clock-skew
//! leeway): a short `expires_in` tells clients to refresh, and [`TokenServer::issued`] shows
//! whether they did, but the registry itself keeps honouring the old token for a minute.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;

/// The `service` the registry and its tokens name.
pub const SERVICE: &str = "imageset-test-registry";
/// The `iss` of every token.
pub const ISSUER: &str = "imageset-test-token-server";

/// One request the token server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The Basic-auth user, `None` for anonymous requests.
    pub user: Option<String>,
    /// The scopes asked for, in order (`repository:NAME:pull,push`).
    pub scopes: Vec<String>,
    /// The `service` asked for.
    pub service: Option<String>,
    /// 200 (a token was issued) or 401 (wrong credentials) or 400 (bad request).
    pub status: u16,
}

struct State {
    user: String,
    password: String,
    expires_in: AtomicU64,
    issued: Arc<AtomicUsize>,
    log: Mutex<Vec<TokenRequest>>,
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// Base64 (standard) DER of the signing certificate, for the JWT `x5c` header.
    x5c: String,
}

/// A running token server on 127.0.0.1; stops when dropped.
pub struct TokenServer {
    /// `http://127.0.0.1:<port>/token`, the registry's `realm`.
    pub realm: String,
    /// PEM of the CA that signed the token-signing certificate (the registry's
    /// `rootcertbundle`).
    pub root_pem: String,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
}

impl TokenServer {
    /// Starts a token server accepting `user`/`password`, whose tokens last `expires_in`
    /// seconds.
    pub fn start(user: &str, password: &str, expires_in: u64) -> TokenServer {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate().expect("token ca key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("token ca params");
        ca.distinguished_name.push(DnType::CommonName, "imageset-operator test token CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca_cert = ca.self_signed(&ca_key).expect("self-sign token ca");
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("token signing key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("signing cert params");
        params.distinguished_name.push(DnType::CommonName, ISSUER);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &issuer).expect("sign token signing cert");
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &key.serialize_der(), &rng)
            .expect("ring accepts the rcgen P-256 key");

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind token server");
        let addr = listener.local_addr().expect("token server addr");
        let state = Arc::new(State {
            user: user.into(),
            password: password.into(),
            expires_in: AtomicU64::new(expires_in),
            issued: Arc::new(AtomicUsize::new(0)),
            log: Mutex::new(Vec::new()),
            key,
            rng,
            x5c: STANDARD.encode(cert.der()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(conn) = conn {
                    let st = st.clone();
                    std::thread::spawn(move || serve(&st, conn));
                }
            }
        });
        TokenServer { realm: format!("http://{addr}/token"), root_pem: ca_cert.pem(), state, stop, addr }
    }

    /// How many tokens were issued so far (anonymous ones included).
    pub fn issued(&self) -> usize {
        self.state.issued.load(Ordering::SeqCst)
    }

    /// The live counter behind [`TokenServer::issued`], to hand to other threads.
    pub fn issued_counter(&self) -> Arc<AtomicUsize> {
        self.state.issued.clone()
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<TokenRequest> {
        self.state.log.lock().unwrap().clone()
    }

    /// The `expires_in` of tokens issued from now on, in seconds.
    pub fn set_expires_in(&self, seconds: u64) {
        self.state.expires_in.store(seconds, Ordering::SeqCst);
    }

    /// The `expires_in` of tokens issued now, in seconds.
    pub fn expires_in(&self) -> u64 {
        self.state.expires_in.load(Ordering::SeqCst)
    }

    /// Asks this server for a token as a client would (Basic auth when `creds` is given);
    /// returns the token, or `None` when refused.
    pub fn fetch(&self, creds: Option<(&str, &str)>, scopes: &[&str]) -> Option<String> {
        let mut url = format!("{}?service={SERVICE}", self.realm);
        for s in scopes {
            url.push_str("&scope=");
            url.push_str(&percent_encode(s));
        }
        let mut rb = reqwest::blocking::Client::new().get(url);
        if let Some((u, p)) = creds {
            rb = rb.basic_auth(u, Some(p));
        }
        let resp = rb.send().expect("token request");
        if !resp.status().is_success() {
            return None;
        }
        let body: serde_json::Value = resp.json().expect("token json");
        Some(body["token"].as_str().expect("token field").to_string())
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Handles one connection: one request, then `Connection: close`.
fn serve(state: &State, conn: TcpStream) {
    let Some(super::Request { method, target, headers, mut reader }) = super::read_request(&conn) else { return };
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut params = parse_form(query);
    if method == "POST" {
        let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        params.extend(parse_form(&String::from_utf8_lossy(&body)));
    }
    let (status, body) = if path != "/token" {
        (404, json!({"errors": [{"code": "NOT_FOUND", "message": "only /token is served"}]}))
    } else if method != "GET" && method != "POST" {
        (405, json!({"errors": [{"code": "UNSUPPORTED", "message": "GET or POST /token"}]}))
    } else {
        answer(state, &method, &headers, &params)
    };
    let body = serde_json::to_vec(&body).unwrap();
    let mut out = conn;
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        if status == 200 { "OK" } else { "Error" },
        body.len()
    );
    let _ = out.write_all(head.as_bytes()).and_then(|_| out.write_all(&body));
}

/// Decides on a token request and issues the token.
fn answer(
    state: &State,
    method: &str,
    headers: &BTreeMap<String, String>,
    params: &[(String, String)],
) -> (u16, serde_json::Value) {
    let all = |k: &str| params.iter().filter(|(pk, _)| pk == k).map(|(_, v)| v.clone()).collect::<Vec<_>>();
    let get = |k: &str| all(k).into_iter().next();
    let scopes: Vec<String> =
        all("scope").iter().flat_map(|s| s.split(' ').filter(|s| !s.is_empty()).map(String::from)).collect();
    let service = get("service");
    // Basic auth on GET; the OAuth2 password grant carries the credentials in the form.
    let creds = if method == "POST" {
        match get("grant_type").as_deref() {
            Some("password") => Some((get("username").unwrap_or_default(), get("password").unwrap_or_default())),
            _ => None,
        }
    } else {
        headers.get("authorization").and_then(|a| basic_credentials(a))
    };
    let mut record = TokenRequest { user: creds.as_ref().map(|c| c.0.clone()), scopes, service, status: 200 };
    let bad_grant = method == "POST" && creds.is_none();
    let wrong = creds.as_ref().is_some_and(|(u, p)| *u != state.user || *p != state.password);
    let result = if bad_grant {
        record.status = 400;
        (400, json!({"error": "unsupported_grant_type"}))
    } else if wrong {
        record.status = 401;
        (401, json!({"errors": [{"code": "UNAUTHORIZED", "message": "incorrect username or password"}]}))
    } else {
        let access = if creds.is_some() { record.scopes.iter().filter_map(|s| grant(s)).collect() } else { vec![] };
        let expires_in = state.expires_in.load(Ordering::SeqCst);
        let token = sign(state, record.user.as_deref().unwrap_or(""), access, expires_in);
        state.issued.fetch_add(1, Ordering::SeqCst);
        let issued_at = jiff::Timestamp::now().to_string();
        (200, json!({"token": token, "access_token": token, "expires_in": expires_in, "issued_at": issued_at}))
    };
    state.log.lock().unwrap().push(record);
    result
}

/// `type:name:a,b` → the JWT `access` entry granting it.
fn grant(scope: &str) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions.split(',').filter(|a| !a.is_empty()).collect();
    Some(json!({"type": kind, "name": name, "actions": actions}))
}

/// A compact JWS (ES256, `x5c` header) over the Distribution claim set.
fn sign(state: &State, subject: &str, access: Vec<serde_json::Value>, expires_in: u64) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [state.x5c]});
    let jti = format!("{now}-{}", state.issued.load(Ordering::SeqCst));
    let claims = json!({
        "iss": ISSUER, "sub": subject, "aud": SERVICE,
        "exp": now + expires_in, "nbf": now.saturating_sub(1), "iat": now, "jti": jti,
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap()),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap())
    );
    let sig = state.key.sign(&state.rng, signing_input.as_bytes()).expect("sign token");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

/// `Basic base64(user:pass)` → (user, pass).
fn basic_credentials(header: &str) -> Option<(String, String)> {
    let (scheme, b64) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (u, p) = decoded.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// `a=1&b=x%3Ay` → pairs, percent- and `+`-decoded.
fn parse_form(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(h), Some(l)) => {
                out.push(h << 4 | l);
                i += 2;
            }
            (c, _, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but unreserved characters (for query values).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|c| match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (c as char).to_string(),
            _ => format!("%{c:02X}"),
        })
        .collect()
}
