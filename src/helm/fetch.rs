//! Chart repositories over HTTP(S): `index.yaml` and chart archives, reached with the run's
//! registry settings: TLS verified (system roots plus the run's CAs) unless the host is marked
//! insecure the way registries are, and the host's credentials from the image set's Secret or
//! the authfile sent as HTTP basic auth. Bodies are size-capped; a chart is checked against
//! the index's digest by the caller.

use std::time::Duration;

use reqwest::StatusCode;

use crate::registry::{ClientOptions, DockerAuth, RegistryError};

/// The largest chart archive read (the biggest real charts are a few MiB).
pub const MAX_CHART_BYTES: u64 = 128 << 20;

/// Why a repository file could not be fetched.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {message}")]
pub struct FetchError {
    /// What was asked for (credentials never appear: URLs carry none).
    pub url: String,
    /// What happened.
    pub message: String,
}

/// An HTTP client for chart repositories.
pub struct Fetcher {
    verified: reqwest::Client,
    unverified: reqwest::Client,
    insecure: Vec<String>,
    verified_hosts: Vec<String>,
    auth: DockerAuth,
}

fn build(opts: &ClientOptions, verify: bool, timeout: Duration) -> Result<reqwest::Client, FetchError> {
    let err = |m: String| FetchError { url: String::new(), message: m };
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(opts.stall_timeout.max(Duration::from_secs(1)))
        .timeout(timeout)
        .user_agent(concat!("imageset-operator/", env!("CARGO_PKG_VERSION")));
    if verify {
        let mut certs = Vec::new();
        for pem in &opts.ca_pems {
            certs.extend(reqwest::Certificate::from_pem_bundle(pem).map_err(|e| err(format!("CA bundle: {e}")))?);
        }
        if !certs.is_empty() {
            b = b.tls_certs_merge(certs);
        }
    } else {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| err(e.to_string()))
}

/// The message of a transport error, with its causes and Go's words for the common ones (as
/// the registry client words them).
fn transport(e: reqwest::Error) -> String {
    match RegistryError::transport("", e) {
        RegistryError::Transport { message, .. } => message,
        other => other.to_string(),
    }
}

impl Fetcher {
    /// A fetcher with a run's registry settings (insecure hosts, CAs, credentials); each
    /// request may take up to `timeout`.
    pub fn new(opts: &ClientOptions, timeout: Duration) -> Result<Fetcher, FetchError> {
        let mut insecure = opts.insecure.clone();
        if let Some(s) = &opts.sources {
            insecure.extend(s.insecure_hosts());
        }
        Ok(Fetcher {
            verified: build(opts, true, timeout)?,
            unverified: build(opts, false, timeout)?,
            insecure,
            verified_hosts: opts.verified.clone(),
            auth: opts.auth.clone(),
        })
    }

    /// Whether TLS to `host` (`name[:port]`) goes unverified: the same rule as registries.
    pub fn is_insecure(&self, host: &str) -> bool {
        self.insecure.iter().any(|h| h == host)
            || (self.insecure.iter().any(|h| h == "*") && !self.verified_hosts.iter().any(|h| h == host))
    }

    /// GETs `url` (`http` or `https`), at most `limit` bytes; three attempts when the server
    /// cannot be reached or answers 5xx.
    pub async fn get(&self, url: &reqwest::Url, limit: u64) -> Result<Vec<u8>, FetchError> {
        let fail = |message: String| FetchError { url: url.to_string(), message };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(fail(format!("unsupported scheme {:?} (http or https)", url.scheme())));
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(fail("no host".into())),
        };
        let http = if url.scheme() == "https" && self.is_insecure(&host) { &self.unverified } else { &self.verified };
        let credential = self.auth.lookup(&host, url.path().trim_start_matches('/'));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut rb = http.get(url.clone());
            if let Some(c) = credential {
                rb = rb.basic_auth(&c.username, Some(&c.password));
            }
            let retry = match rb.send().await {
                Err(e) => transport(e),
                Ok(r) if r.status().is_server_error() => format!("server answered {}", r.status()),
                Ok(r) => return read(r, limit).await.map_err(fail),
            };
            if attempt == 3 {
                return Err(fail(retry));
            }
            tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
        }
    }
}

async fn read(mut r: reqwest::Response, limit: u64) -> Result<Vec<u8>, String> {
    match r.status() {
        StatusCode::OK => {}
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            return Err(format!("{}: credentials for this host are missing or refused", r.status()));
        }
        s => return Err(format!("server answered {s}")),
    }
    if r.content_length().is_some_and(|n| n > limit) {
        return Err(format!("larger than {} MiB", limit >> 20));
    }
    let mut body = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(transport)? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(format!("larger than {} MiB", limit >> 20));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
