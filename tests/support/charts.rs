//! Helm charts in the test world: the real charts of `../shared/data/helm` and what oc-mirror
//! finds in them, a chart repository served from loopback (Python's http.server: plain HTTP,
//! or HTTPS with a test CA, optionally behind basic auth, each request logged), and the real
//! `helm` binary (built by scripts/install-test-deps) run with a home of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use super::registry::TestCa;
use super::{Guarded, free_port, require, shared_data, temp_dir, wait_until};

/// `../shared/data/helm`.
pub fn data() -> PathBuf {
    shared_data().join("helm")
}

/// The packaged charts of the shared data, as `<name>-<version>` (sorted).
pub fn chart_ids() -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(data().join("charts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".tgz").to_string())
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 10, "{ids:?}");
    ids
}

/// `expected/<id>.json`.
pub fn expected(id: &str) -> serde_json::Value {
    let p = data().join("expected").join(format!("{id}.json"));
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The images oc-mirror v2 finds in a chart (`ocmirror_v2_emulation.images`), or with the
/// three extra JSONPaths of `ocmirror_v2_emulation_with_extra_paths`.
pub fn expected_images(id: &str, extra_paths: bool) -> Vec<String> {
    let field = if extra_paths { "ocmirror_v2_emulation_with_extra_paths" } else { "ocmirror_v2_emulation" };
    let v = expected(id);
    let images = v[field]["images"].as_array().unwrap_or_else(|| panic!("{id}: no {field}.images"));
    images.iter().map(|i| i.as_str().unwrap().to_string()).collect()
}

/// The extra JSONPaths the expected lists were computed with (CronJob templates, `.spec.image`).
pub const EXTRA_PATHS: [&str; 3] = [
    "{.spec.jobTemplate.spec.template.spec.initContainers[*].image}",
    "{.spec.jobTemplate.spec.template.spec.containers[*].image}",
    "{.spec.image}",
];

/// `(name, version)` of a chart id (`kube-state-metrics-8.4.0`).
pub fn name_version(id: &str) -> (String, String) {
    let (n, v) = id.rsplit_once('-').unwrap();
    (n.to_string(), v.to_string())
}

/// How a [`ChartServer`] serves.
#[derive(Default)]
pub struct ServerOptions<'a> {
    /// HTTPS with this CA's server certificate.
    pub tls: Option<&'a TestCa>,
    /// Require HTTP basic auth with this user and password.
    pub basic: Option<(&'a str, &'a str)>,
}

const SERVER: &str = r#"
import base64, http.server, ssl, sys
port, root, cert, key, auth = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
want = 'Basic ' + base64.b64encode(auth.encode()).decode() if auth else None
class H(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=root, **k)
    def do_GET(self):
        if want and self.headers.get('Authorization') != want:
            self.send_response(401)
            self.send_header('WWW-Authenticate', 'Basic realm="charts"')
            self.send_header('Content-Length', '0')
            self.end_headers()
            return
        super().do_GET()
    def log_request(self, code='-', size='-'):
        sys.stderr.write('ACCESS %s %s %s %s\n' % (self.command, self.path, code, 'auth' if self.headers.get('Authorization') else 'anonymous'))
        sys.stderr.flush()
    def log_message(self, *a):
        pass
s = http.server.ThreadingHTTPServer(('127.0.0.1', port), H)
if cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    s.socket = ctx.wrap_socket(s.socket, server_side=True)
s.serve_forever()
"#;

/// A directory served over HTTP(S) on loopback.
pub struct ChartServer {
    /// `http://127.0.0.1:<port>` or `https://...`.
    pub url: String,
    /// `127.0.0.1:<port>`.
    pub host: String,
    /// What is served.
    pub root: PathBuf,
    proc: Guarded,
    _dir: tempfile::TempDir,
}

/// One request a [`ChartServer`] answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    /// Request path.
    pub path: String,
    /// Status.
    pub status: u16,
    /// Whether it carried credentials.
    pub authenticated: bool,
}

impl ChartServer {
    /// Serves `root` (files may be written into it afterwards); returns once it answers.
    pub fn start(root: &Path, opts: ServerOptions) -> ChartServer {
        let dir = temp_dir("chart-server-");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        let (cert, key) = match opts.tls {
            Some(ca) => {
                let (c, k) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
                std::fs::write(&c, &ca.cert_pem).unwrap();
                std::fs::write(&k, &ca.key_pem).unwrap();
                (c.display().to_string(), k.display().to_string())
            }
            None => (String::new(), String::new()),
        };
        let auth = opts.basic.map(|(u, p)| format!("{u}:{p}")).unwrap_or_default();
        let args =
            vec!["-c".to_string(), SERVER.to_string(), port.to_string(), root.display().to_string(), cert, key, auth];
        let proc = Guarded::spawn(&require("python3"), &args, &dir.path().join("server.log"), None);
        let tail = proc.log_tail();
        wait_until("chart server", Duration::from_secs(20), || std::net::TcpStream::connect(&host).is_ok(), tail);
        let scheme = if opts.tls.is_some() { "https" } else { "http" };
        ChartServer { url: format!("{scheme}://{host}"), host, root: root.to_path_buf(), proc, _dir: dir }
    }

    /// Every request answered so far.
    pub fn served(&self) -> Vec<Served> {
        let log = std::fs::read_to_string(&self.proc.log).unwrap_or_default();
        log.lines()
            .filter_map(|l| {
                let mut f = l.strip_prefix("ACCESS GET ")?.split_whitespace();
                Some(Served {
                    path: f.next()?.to_string(),
                    status: f.next()?.parse().ok()?,
                    authenticated: f.next()? == "auth",
                })
            })
            .collect()
    }

    /// Stops serving.
    pub fn stop(&mut self) {
        self.proc.stop();
    }
}

/// The shared chart repository (`repo/`) copied into `dir` with its index pointing at `url`
/// (`HELM_REPO_URL` replaced, as its SOURCES.md says); returns the copy's path.
pub fn repository_copy(dir: &Path, url: &str) -> PathBuf {
    let src = data().join("repo");
    std::fs::create_dir_all(dir).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "index.yaml" {
            let text = std::fs::read_to_string(e.path()).unwrap();
            assert!(text.contains("http://HELM_REPO_URL/"));
            std::fs::write(dir.join(&name), text.replace("http://HELM_REPO_URL/", &format!("{url}/"))).unwrap();
        } else {
            std::fs::copy(e.path(), dir.join(&name)).unwrap();
        }
    }
    dir.to_path_buf()
}

/// The shared repository served from loopback: (server, its directory).
pub fn serve_shared_repository(dir: &Path, opts: ServerOptions) -> ChartServer {
    let root = dir.join("repo");
    std::fs::create_dir_all(&root).unwrap();
    let server = ChartServer::start(&root, opts);
    repository_copy(&root, &server.url);
    server
}

/// Real `helm`, with a home of its own under `home` (no user configuration, no cache shared
/// with anything else).
pub fn helm(home: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(require("helm"));
    for (var, sub) in [("HELM_CACHE_HOME", "cache"), ("HELM_CONFIG_HOME", "config"), ("HELM_DATA_HOME", "data")] {
        c.env(var, home.join(sub));
    }
    c.env("HOME", home).args(args).output().expect("run helm")
}

/// Runs real `helm`, asserting success; returns stdout.
pub fn helm_ok(home: &Path, args: &[&str]) -> String {
    let o = helm(home, args);
    assert!(
        o.status.success(),
        "helm {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Writes a small chart directory `<dir>/<name>` (`appVersion` 1.0): a Deployment whose
/// container and init container images come from values (`image`, `init`; the tag defaults to
/// the appVersion), a `helm test` hook Pod with `hookImage` (which oc-mirror does not read),
/// and `extra` templates. Returns its path.
pub fn write_chart(dir: &Path, name: &str, version: &str, values: &str, extra: &[(&str, &str)]) -> PathBuf {
    let root = dir.join(name);
    std::fs::create_dir_all(root.join("templates")).unwrap();
    std::fs::write(
        root.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: {version}\nappVersion: \"1.0\"\ndescription: a test chart\n"),
    )
    .unwrap();
    std::fs::write(root.join("values.yaml"), values).unwrap();
    std::fs::write(
        root.join("templates/deployment.yaml"),
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-{{ .Chart.Name }}
spec:
  selector:
    matchLabels: {app: {{ .Chart.Name }}}
  template:
    metadata:
      labels: {app: {{ .Chart.Name }}}
    spec:
      initContainers:
      - name: init
        image: "{{ .Values.init.registry }}/{{ .Values.init.repository }}@{{ .Values.init.digest }}"
      containers:
      - name: app
        image: "{{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
"#,
    )
    .unwrap();
    std::fs::write(
        root.join("templates/test.yaml"),
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {{ .Release.Name }}-test
  annotations:
    "helm.sh/hook": test
spec:
  containers:
  - name: test
    image: "{{ .Values.hookImage }}"
"#,
    )
    .unwrap();
    for (file, text) in extra {
        std::fs::write(root.join("templates").join(file), text).unwrap();
    }
    root
}

/// The digest of `reference` at a plain-HTTP registry, as skopeo reads it; None when absent.
pub fn digest_at(host: &str, reference: &str) -> Option<String> {
    let o = Command::new(require("skopeo"))
        .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{host}/{reference}")])
        .output()
        .unwrap();
    o.status.success().then(|| super::sha256(&o.stdout))
}

/// Pulls `<host>/mirror/helm-charts/<name>` back with real `helm pull oci:// --plain-http` and
/// renders it with `helm template`: (the archive's bytes, what it renders).
pub fn pull_and_template(home: &Path, host: &str, name: &str, version: &str) -> (Vec<u8>, String) {
    let out = home.join(format!("pulled-{host}-{name}"));
    std::fs::create_dir_all(&out).unwrap();
    let reference = format!("oci://{host}/mirror/helm-charts/{name}");
    helm_ok(home, &["pull", &reference, "--version", version, "--plain-http", "-d", out.to_str().unwrap()]);
    let file = out.join(format!("{name}-{version}.tgz"));
    let rendered = helm_ok(home, &["template", "x", file.to_str().unwrap()]);
    (std::fs::read(&file).unwrap(), rendered)
}
