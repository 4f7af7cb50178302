//! The HTTP services releases come from: the Cincinnati update graph, the signature store and
//! the graph-data tarball. TLS verified (system roots plus the run's CA bundles), per-request
//! timeout, retries with backoff on connection errors, 429 and 5xx.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::ACCEPT;

use super::ReleaseError;
use crate::api::mirror::ReleaseType;

/// oc-mirror's OCP update graph.
pub const OCP_GRAPH_URL: &str = "https://api.openshift.com/api/upgrades_info/v1/graph";
/// oc-mirror's OKD update graph.
pub const OKD_GRAPH_URL: &str = "https://origin-release.ci.openshift.org/graph";
/// The graph-data tarball for the graph image.
pub const GRAPH_DATA_URL: &str = "https://api.openshift.com/api/upgrades_info/graph-data";

/// Where the services are and how to reach them.
#[derive(Clone, Debug)]
pub struct UpstreamOptions {
    /// OCP update graph URL (`UPDATE_URL_OVERRIDE`).
    pub graph_url: String,
    /// OKD update graph URL.
    pub okd_graph_url: String,
    /// Signature store base URL (`OCP_SIGNATURE_URL`).
    pub signature_url: String,
    /// Graph-data tarball URL.
    pub graph_data_url: String,
    /// Extra CA certificates (PEM).
    pub ca_pems: Vec<Vec<u8>>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            graph_url: OCP_GRAPH_URL.into(),
            okd_graph_url: OKD_GRAPH_URL.into(),
            signature_url: super::signature::DEFAULT_STORE.into(),
            graph_data_url: GRAPH_DATA_URL.into(),
            ca_pems: Vec::new(),
            timeout: Duration::from_secs(120),
            retries: 3,
        }
    }
}

/// A client for the release services.
pub struct Upstream {
    http: reqwest::Client,
    /// Where things are.
    pub opts: UpstreamOptions,
    id: String,
}

/// Largest response accepted (graphs of every channel are a few MB).
const MAX_BODY: usize = 256 << 20;

impl Upstream {
    /// Builds the client.
    pub fn new(opts: UpstreamOptions) -> Result<Upstream, ReleaseError> {
        let err = |m: String| ReleaseError::Upstream { url: String::new(), message: m };
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(opts.timeout)
            .user_agent(concat!("imageset-operator/", env!("CARGO_PKG_VERSION")));
        let mut certs = Vec::new();
        for pem in &opts.ca_pems {
            certs.extend(reqwest::Certificate::from_pem_bundle(pem).map_err(|e| err(format!("CA bundle: {e}")))?);
        }
        if !certs.is_empty() {
            b = b.tls_certs_merge(certs);
        }
        let http = b.build().map_err(|e| err(e.to_string()))?;
        let mut id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut id).map_err(|_| err("random id".into()))?;
        id[6] = (id[6] & 0x0f) | 0x40;
        id[8] = (id[8] & 0x3f) | 0x80;
        let h = hex::encode(id);
        let id = format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]);
        Ok(Upstream { http, opts, id })
    }

    /// The update graph of a channel for an architecture (raw JSON, to parse and to keep).
    pub async fn graph(&self, kind: ReleaseType, channel: &str, arch: &str) -> Result<Vec<u8>, ReleaseError> {
        let base = match kind {
            ReleaseType::Ocp => &self.opts.graph_url,
            ReleaseType::Okd => &self.opts.okd_graph_url,
        };
        let mut query = vec![("id", self.id.as_str()), ("channel", channel)];
        if !arch.is_empty() {
            query.push(("arch", arch));
        }
        let url = reqwest::Url::parse_with_params(base, &query)
            .map_err(|e| ReleaseError::Upstream { url: base.clone(), message: e.to_string() })?;
        self.get(url.as_str(), "application/json").await?.ok_or_else(|| ReleaseError::Upstream {
            url: base.clone(),
            message: format!("channel {channel:?} not found (404)"),
        })
    }

    /// A payload's first signature from the store; `None` when the store has none.
    pub async fn signature(&self, digest: &str) -> Result<Option<Vec<u8>>, ReleaseError> {
        self.get(&super::signature::store_url(&self.opts.signature_url, digest), "*/*").await
    }

    /// The graph-data tarball.
    pub async fn graph_data(&self) -> Result<Vec<u8>, ReleaseError> {
        let url = self.opts.graph_data_url.clone();
        self.get(&url, "*/*")
            .await?
            .ok_or_else(|| ReleaseError::Upstream { url, message: "graph data not found (404)".into() })
    }

    /// GET with retries; `None` on 404.
    async fn get(&self, url: &str, accept: &str) -> Result<Option<Vec<u8>>, ReleaseError> {
        let shown = url.split('?').next().unwrap_or(url).to_string();
        let err = |m: String| ReleaseError::Upstream { url: shown.clone(), message: m };
        let mut attempt = 0;
        loop {
            let retry = match self.http.get(url).header(ACCEPT, accept).send().await {
                Ok(r) if r.status() == StatusCode::NOT_FOUND => return Ok(None),
                Ok(r) if r.status().is_success() => {
                    if r.content_length().is_some_and(|l| l as usize > MAX_BODY) {
                        return Err(err("response too large".into()));
                    }
                    match r.bytes().await {
                        Ok(b) if b.len() > MAX_BODY => return Err(err("response too large".into())),
                        Ok(b) => return Ok(Some(b.to_vec())),
                        Err(e) => e.without_url().to_string(),
                    }
                }
                Ok(r) if r.status() == StatusCode::TOO_MANY_REQUESTS || r.status().is_server_error() => {
                    format!("unexpected HTTP status {}", r.status())
                }
                Ok(r) => return Err(err(format!("unexpected HTTP status {}", r.status()))),
                Err(e) => e.without_url().to_string(),
            };
            if attempt >= self.opts.retries {
                return Err(err(format!("{retry} (after {} attempts)", attempt + 1)));
            }
            attempt += 1;
            tracing::warn!(url = %shown, attempt, "release service: {retry}; retrying");
            tokio::time::sleep(Duration::from_millis(250 << attempt.min(5))).await;
        }
    }
}
