//! The test world: real registries, a real kube-apiserver and etcd, skopeo, and synthetic
//! content, all on loopback and started by the tests themselves. Missing binaries fail the
//! test with the command that installs them; nothing is skipped.
// Each test binary uses a different part of the support code.
#![allow(dead_code)]

pub mod charts;
pub mod cli;
pub mod cluster;
pub mod content;
pub mod controllers;
pub mod fbc;
pub mod gpg;
pub mod image;
pub mod kubelet;
pub mod operator;
pub mod opm;
pub mod proxy;
pub mod registry;
pub mod release;
pub mod storage;
pub mod token;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `scripts/install-test-deps` caches the Go-built binaries.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("IMAGESET_TEST_BIN") {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("IMAGESET_TEST_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache"));
        base.join("imageset-operator-test")
    });
    cache.join("bin")
}

/// Finds a required program, or fails saying how to get it.
pub fn require(name: &str) -> PathBuf {
    let cached = bin_dir().join(name);
    if cached.exists() {
        return cached;
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).chain([PathBuf::from("/usr/bin")]) {
        let p = dir.join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} not found (looked in {} and PATH): run scripts/install-test-deps", bin_dir().display());
}

/// The read-only shared data: `../shared/data` beside the checkout, or `IMAGESET_SHARED_DATA`.
pub fn shared_data() -> PathBuf {
    if let Some(d) = std::env::var_os("IMAGESET_SHARED_DATA") {
        return PathBuf::from(d);
    }
    let beside = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    assert!(
        beside.is_dir(),
        "shared data not found at {}: check out beside ../shared or set IMAGESET_SHARED_DATA",
        beside.display()
    );
    beside
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind loopback").local_addr().expect("local addr").port()
}

/// A child process that dies with the test: it runs under a shell watchdog that kills it
/// when our end of its stdin closes (on drop, or when the test process exits for any reason).
pub struct Guarded {
    child: Child,
    pub log: PathBuf,
}

impl Guarded {
    /// Starts `program args` with output to `log`; `cleanup` is removed after it stops.
    pub fn spawn(program: &Path, args: &[String], log: &Path, cleanup: Option<&Path>) -> Guarded {
        Self::spawn_with_env(program, args, &[], log, cleanup)
    }

    /// Like `spawn`, with extra environment variables.
    pub fn spawn_with_env(
        program: &Path,
        args: &[String],
        env: &[(&str, String)],
        log: &Path,
        cleanup: Option<&Path>,
    ) -> Guarded {
        let out = std::fs::File::create(log).expect("create log");
        // Background jobs of a non-interactive shell read /dev/null unless redirected: hand
        // the watchdog our stdin explicitly as fd 3.
        let script = r#"prog="$1"; shift; cleanup="$1"; shift
exec 3<&0
"$prog" "$@" </dev/null 3<&- & pid=$!
(cat <&3 >/dev/null; kill $pid 2>/dev/null; sleep 2; kill -9 $pid 2>/dev/null) &
exec 3<&-
wait $pid; rc=$?
[ -n "$cleanup" ] && rm -rf "$cleanup"
exit $rc"#;
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(program)
            .arg(cleanup.map(|p| p.display().to_string()).unwrap_or_default())
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::piped())
            .stdout(out.try_clone().expect("clone log"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", program.display()));
        Guarded { child, log: log.to_path_buf() }
    }

    /// Stops the process and waits for it.
    pub fn stop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }

    /// Whether the process is still running; fails the test with its log if it has exited.
    pub fn alive(&mut self) -> bool {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.log.display(), (self.log_tail())());
        }
        true
    }

    /// A closure giving the tail of its log, for failure messages.
    pub fn log_tail(&self) -> impl Fn() -> String + use<> {
        let log = self.log.clone();
        move || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let errors: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| l.starts_with('E') || l.starts_with("F") || l.contains("rror"))
                .take(10)
                .collect();
            format!("{}\n...\n{}", errors.join("\n"), lines[lines.len().saturating_sub(15)..].join("\n"))
        }
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `ready` until it returns true, failing with `what` and `diag()` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool, diag: impl Fn() -> String) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ready() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} not ready after {timeout:?}:\n{}", diag());
}

/// A directory that lives as long as the value (kept when IMAGESET_KEEP_TEST_DIRS is set).
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    let mut b = tempfile::Builder::new();
    b.prefix(prefix);
    if std::env::var_os("IMAGESET_KEEP_TEST_DIRS").is_some() {
        b.disable_cleanup(true);
    }
    b.tempdir().expect("temp dir")
}

/// Runs skopeo with arguments; returns stdout or panics with stderr.
pub fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new(require("skopeo")).args(args).output().expect("run skopeo");
    assert!(out.status.success(), "skopeo {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// `sha256:<hex>` of bytes.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// One HTTP/1.1 request head read from a loopback connection (the test servers answer one
/// request per connection, then close).
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header names lower-cased.
    pub headers: std::collections::BTreeMap<String, String>,
    /// The rest of the connection (a body, if any).
    pub reader: std::io::BufReader<std::net::TcpStream>,
}

/// Reads a request head; `None` if the peer went away first.
pub fn read_request(conn: &std::net::TcpStream) -> Option<Request> {
    use std::io::BufRead as _;
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = std::io::BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    if reader.read_line(&mut line).unwrap_or(0) == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let mut headers = std::collections::BTreeMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Some(Request { method, target, headers, reader })
}
