//! Registries for the benchmark: Debian's docker-registry on loopback with a JSON log line
//! per request, so what each tool pulled and wrote can be counted from the server's side.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::support::{Guarded, free_port, require, wait_until};

/// A running registry serving `root`.
pub struct BenchRegistry {
    /// `127.0.0.1:<port>`.
    pub host: String,
    log: PathBuf,
    _proc: Guarded,
}

/// A blocking client without the default 30 s limit: generated layers take longer.
pub fn blocking_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(None::<Duration>).build().expect("http client")
}

impl BenchRegistry {
    /// Starts a registry on storage `root`, logging to `log`. `readonly` turns on
    /// Distribution's maintenance read-only mode: the cached source set is served from its
    /// cache directory directly, and nothing may write into it.
    pub fn start(root: &Path, readonly: bool, log: &Path) -> Result<BenchRegistry> {
        let bin = require("docker-registry");
        let port = free_port();
        let host = format!("127.0.0.1:{port}");
        // Info level logs one "response completed" line per request with method, URI, status
        // and bytes written; the combined access log would duplicate it.
        let config = format!(
            "version: 0.1\nlog:\n  level: info\n  formatter: json\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
             \x20   readonly:\n      enabled: {readonly}\nhttp:\n  addr: {host}\n",
            root.display()
        );
        let config_path = log.with_extension("yml");
        std::fs::write(&config_path, config)?;
        let mut proc = Guarded::spawn(&bin, &["serve".into(), config_path.display().to_string()], log, None);
        let client = blocking_client();
        let url = format!("http://{host}/v2/");
        let tail = proc.log_tail();
        wait_until(
            &format!("registry at {host}"),
            Duration::from_secs(20),
            || proc.alive() && client.get(&url).send().map(|r| r.status().as_u16() == 200).unwrap_or(false),
            tail,
        );
        Ok(BenchRegistry { host, log: log.to_path_buf(), _proc: proc })
    }

    /// `http://` plus host.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// Current length of the log: pass it to `traffic_since` after a measured run.
    pub fn log_mark(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// Counts the requests logged after `mark`.
    pub fn traffic_since(&self, mark: u64) -> Result<Traffic> {
        // The line is logged right after the response is sent; give the last ones time to land.
        std::thread::sleep(Duration::from_millis(300));
        let mut f = std::fs::File::open(&self.log)?;
        f.seek(SeekFrom::Start(mark))?;
        let mut text = String::new();
        f.read_to_string(&mut text)?;
        Ok(Traffic::from_log(&text))
    }
}

/// Requests a registry served during one measured run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Traffic {
    /// Every request.
    pub requests: u64,
    /// Successful blob GETs.
    pub blob_gets: u64,
    /// Distinct digests among them.
    pub unique_blob_gets: u64,
    /// Body bytes sent for them.
    pub blob_bytes: u64,
    /// Manifest GETs.
    pub manifest_gets: u64,
    /// HEAD requests.
    pub heads: u64,
    /// `GET /v2/` pings.
    pub pings: u64,
    /// PUT, POST, PATCH and DELETE requests.
    pub writes: u64,
    /// Completed blob uploads.
    pub uploads: u64,
    /// Successful cross-repository mounts.
    pub mounts: u64,
    /// Successful manifest PUTs.
    pub manifest_puts: u64,
    /// Responses with a 5xx status.
    pub server_errors: u64,
}

impl Traffic {
    fn from_log(text: &str) -> Traffic {
        let mut t = Traffic::default();
        let mut digests = std::collections::HashSet::new();
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
            let (Some(method), Some(uri), Some(status)) =
                (v["http.request.method"].as_str(), v["http.request.uri"].as_str(), v["http.response.status"].as_u64())
            else {
                continue;
            };
            if !v["msg"].as_str().is_some_and(|m| m.starts_with("response completed")) {
                continue;
            }
            let written = v["http.response.written"].as_u64().unwrap_or(0);
            let ok = (200..300).contains(&status);
            let path = uri.split('?').next().unwrap_or(uri);
            t.requests += 1;
            t.server_errors += u64::from(status >= 500);
            match method {
                "GET" if path == "/v2/" => t.pings += 1,
                "GET" if path.contains("/blobs/sha256:") && ok => {
                    t.blob_gets += 1;
                    t.blob_bytes += written;
                    digests.insert(path.rsplit('/').next().unwrap_or_default().to_string());
                }
                "GET" if path.contains("/manifests/") => t.manifest_gets += 1,
                "HEAD" => t.heads += 1,
                "PUT" | "POST" | "PATCH" | "DELETE" => {
                    t.writes += 1;
                    if ok && method == "PUT" && path.contains("/blobs/uploads/") {
                        t.uploads += 1;
                    }
                    if status == 201 && method == "POST" && uri.contains("mount=") {
                        t.mounts += 1;
                    }
                    if ok && method == "PUT" && path.contains("/manifests/") {
                        t.manifest_puts += 1;
                    }
                }
                _ => {}
            }
        }
        t.unique_blob_gets = digests.len() as u64;
        t
    }
}
