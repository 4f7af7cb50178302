//! The registries the copy and delete benches run against: Debian's docker-registry
//! (Distribution 2.8) on loopback with a JSON log line per request, so each tool's requests
//! are counted on the server's side; and a manifest HEAD to check what it serves.
// The copy and delete benches each use a different part.
#![allow(dead_code)]

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use crate::support::{Guarded, free_port, require, wait_until};

/// Every manifest type the images could have: without OCI in Accept, Distribution answers a
/// HEAD of an OCI manifest by tag with 404.
pub const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json";

/// What the registry may do to its storage.
#[derive(Clone, Copy, Debug, Default)]
pub struct Storage {
    /// Distribution's maintenance read-only mode: a cached set is served from its cache
    /// directory directly, and nothing may write into it.
    pub readonly: bool,
    /// Manifest and blob DELETEs are allowed.
    pub delete: bool,
}

/// A running registry serving a storage directory, logging every request.
pub struct LoggedRegistry {
    /// `127.0.0.1:<port>`.
    pub host: String,
    log: PathBuf,
    _proc: Guarded,
}

/// A blocking client without the default 30 s limit: generated layers take longer.
pub fn blocking_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(None::<Duration>).build().expect("http client")
}

impl LoggedRegistry {
    /// Starts a registry on storage `root`, logging to `log` (its config beside it).
    pub fn start(root: &Path, storage: Storage, log: &Path) -> Result<LoggedRegistry> {
        let bin = require("docker-registry");
        let host = format!("127.0.0.1:{}", free_port());
        // Info level logs one "response completed" line per request with its method, URI,
        // status and bytes written; the combined access log would only repeat them.
        let config = format!(
            "version: 0.1
log:
  level: info
  formatter: json
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: {delete}
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: {readonly}
http:
  addr: {host}
",
            root = root.display(),
            delete = storage.delete,
            readonly = storage.readonly,
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
        Ok(LoggedRegistry { host, log: log.to_path_buf(), _proc: proc })
    }

    /// `http://` plus host.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.host)
    }

    /// Current length of the log: pass it to `responses_since` after a measured run.
    pub fn log_mark(&self) -> u64 {
        std::fs::metadata(&self.log).map(|m| m.len()).unwrap_or(0)
    }

    /// The requests logged after `mark`.
    pub fn responses_since(&self, mark: u64) -> Result<Vec<Response>> {
        // A line is logged right after its response is sent: give the last ones time to land.
        std::thread::sleep(Duration::from_millis(300));
        let mut f = std::fs::File::open(&self.log)?;
        f.seek(SeekFrom::Start(mark))?;
        let mut text = String::new();
        f.read_to_string(&mut text)?;
        Ok(text.lines().filter_map(Response::from_line).collect())
    }
}

/// One request, as the registry logged it once its response was sent.
#[derive(Clone, Debug)]
pub struct Response {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The request URI, query included.
    pub uri: String,
    /// The URI without its query.
    pub path: String,
    /// Response status.
    pub status: u64,
    /// Body bytes sent.
    pub written: u64,
}

impl Response {
    /// A "response completed" (or "response completed with error") line; None for any other.
    fn from_line(line: &str) -> Option<Response> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        if !v["msg"].as_str().is_some_and(|m| m.starts_with("response completed")) {
            return None;
        }
        let uri = v["http.request.uri"].as_str()?.to_string();
        Some(Response {
            method: v["http.request.method"].as_str()?.to_string(),
            path: uri.split('?').next().unwrap_or(&uri).to_string(),
            uri,
            status: v["http.response.status"].as_u64()?,
            written: v["http.response.written"].as_u64().unwrap_or(0),
        })
    }

    /// A 2xx status.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Status and Docker-Content-Digest of a HEAD of `repo`'s manifest `reference` at `host`.
pub fn head_manifest(
    http: &reqwest::blocking::Client,
    host: &str,
    repo: &str,
    reference: &str,
) -> reqwest::Result<(u16, Option<String>)> {
    let url = format!("http://{host}/v2/{repo}/manifests/{reference}");
    let r = http.head(url).header("Accept", ACCEPT).send()?;
    let digest = r.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(String::from);
    Ok((r.status().as_u16(), digest))
}
