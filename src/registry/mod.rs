//! The registry client: the distribution API on reqwest (the HTTP stack oci-client uses), with
//! what the copy engine needs and oci-client lacks: docker-config auth with bearer tokens cached
//! per scope, mount scopes that include pull on the source repository, streamed blob bodies
//! with `Range` resume, a per-registry cap on requests in flight, and retries.

pub mod auth;
mod calls;
mod error;
mod pull;
pub mod retry;
pub mod sources;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderMap, LOCATION};
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use auth::{Challenge, Token, TokenResponse};
pub use auth::{Credential, DockerAuth};
pub use error::RegistryError;
pub use retry::Backoff;

/// Retries taken by every client in the process (for metrics and benchmarks).
pub static RETRIES: AtomicU64 = AtomicU64::new(0);

/// Manifests larger than this are refused (real ones are kilobytes).
pub const MAX_MANIFEST_BYTES: usize = 8 << 20;

/// How the client reaches registries.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Hosts that may be reached over plain HTTP or unverified TLS (`*`: every host not in
    /// `verified`).
    pub insecure: Vec<String>,
    /// Hosts always verified, even under an `insecure` wildcard (the destination when only
    /// sources are marked insecure).
    pub verified: Vec<String>,
    /// Extra CA certificates (PEM), trusted beside the system roots.
    pub ca_pems: Vec<Vec<u8>>,
    /// Credentials.
    pub auth: DockerAuth,
    /// Requests in flight per registry.
    pub max_in_flight: usize,
    /// Retry policy.
    pub backoff: Backoff,
    /// A response that sends nothing for this long is abandoned (and retried).
    pub stall_timeout: Duration,
    /// A host whose requests have all failed (connection errors, timeouts, 5xx) for this long,
    /// [`BREAKER_ATTEMPTS`] attempts at least, is given up for the rest of the client's life:
    /// further requests fail at once instead of each waiting out its retries.
    pub breaker_window: Duration,
    /// Request slots shared with other clients of the process (so that the cap per registry
    /// holds across image sets); None: this client's own.
    pub slots: Option<Slots>,
    /// Content found in a cache other tenants fill is served to this client only once its own
    /// credentials have read the source: a manifest of the repository, each blob in it (see
    /// [`Client::prove_manifest`], [`Client::prove_blob`]). The operator sets it; the command
    /// line, with a cache of its own user, does not.
    pub prove_cached: bool,
    /// Where source images are pulled from (registries.conf); None: each from its own registry.
    pub sources: Option<Arc<sources::RegistriesConf>>,
}

/// Request slots per registry, shared by every client given the same `Slots`.
#[derive(Clone, Debug, Default)]
pub struct Slots(Arc<Mutex<HashMap<String, Arc<Semaphore>>>>);

impl Slots {
    /// The slots of `host` (`n` of them, made on first use).
    fn of(&self, host: &str, n: usize) -> Arc<Semaphore> {
        self.0
            .lock()
            .expect("slots lock")
            .entry(host.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(n)))
            .clone()
    }
}

/// Failed attempts in a row before a host's breaker may open (see `breaker_window`).
pub const BREAKER_ATTEMPTS: u32 = 8;

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: Vec::new(),
            verified: Vec::new(),
            ca_pems: Vec::new(),
            auth: DockerAuth::default(),
            max_in_flight: 8,
            backoff: Backoff::default(),
            stall_timeout: Duration::from_secs(30),
            breaker_window: Duration::from_secs(30),
            slots: None,
            prove_cached: false,
            sources: None,
        }
    }
}

/// Builds a request from the HTTP client and the registry's base URL (called per attempt).
type Build<'a> = dyn Fn(&reqwest::Client, &str) -> RequestBuilder + Send + Sync + 'a;

/// Which registry call a request is, for auth scopes and messages.
#[derive(Clone, Copy)]
struct Call<'a> {
    registry: &'a str,
    repo: &'a str,
    what: &'a str,
    scopes: &'a [String],
}

struct Host {
    name: String,
    endpoint: String,
    insecure: bool,
    base: tokio::sync::OnceCell<String>,
    permits: Arc<Semaphore>,
    challenge: Mutex<Option<Challenge>>,
    tokens: Mutex<HashMap<String, Token>>,
    /// Token fetches for a host run one at a time, so concurrent requests share one token.
    token_flight: tokio::sync::Mutex<()>,
    breaker: Mutex<Breaker>,
}

/// Failed attempts on a host since it last answered.
#[derive(Default)]
struct Breaker {
    failures: u32,
    since: Option<Instant>,
    open: bool,
}

impl Host {
    /// Records an attempt: `Some(true)` the host answered, `Some(false)` it failed in a way
    /// worth retrying. Returns whether the breaker is now open.
    fn record(&self, answered: bool, window: Duration) -> bool {
        let mut b = self.breaker.lock().expect("breaker lock");
        if answered {
            *b = Breaker::default();
            return false;
        }
        b.failures += 1;
        let since = *b.since.get_or_insert_with(Instant::now);
        if !b.open && b.failures >= BREAKER_ATTEMPTS && since.elapsed() >= window {
            b.open = true;
            tracing::warn!(registry = %self.name, failures = b.failures, "registry unreachable; giving up on it for this run");
        }
        b.open
    }

    fn unreachable(&self, what: &str) -> Option<RegistryError> {
        let b = self.breaker.lock().expect("breaker lock");
        b.open.then(|| RegistryError::Unreachable {
            what: what.to_string(),
            host: self.name.clone(),
            failures: b.failures,
            secs: b.since.map(|s| s.elapsed().as_secs()).unwrap_or_default(),
        })
    }
}

/// A response body still being read, holding its registry's request slot.
pub struct Streaming {
    /// The response (200 or 206).
    pub response: Response,
    _permit: OwnedSemaphorePermit,
}

/// Outcome of a cross-repository mount request.
pub enum Mount {
    /// The blob is now in the repository.
    Mounted,
    /// The registry opened an upload instead: push the bytes to this location.
    Upload(String),
}

/// Counters for benchmarks and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Blob GETs sent.
    pub blob_gets: AtomicU64,
    /// Blob bytes received.
    pub bytes_in: AtomicU64,
    /// Blob bytes uploaded.
    pub bytes_out: AtomicU64,
    /// Successful mounts.
    pub mounts: AtomicU64,
    /// Requests sent.
    pub requests: AtomicU64,
}

/// A client for any number of registries.
pub struct Client {
    verified: reqwest::Client,
    unverified: reqwest::Client,
    /// The same two for uploads: no read timeout (see `MIN_UPLOAD_BYTES_PER_SEC`).
    upload_verified: reqwest::Client,
    upload_unverified: reqwest::Client,
    opts: ClientOptions,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    /// What this client's credentials have been seen to read at the source: repositories
    /// (`registry/repo`) and blobs (`registry/repo@digest`).
    proven: Mutex<std::collections::HashSet<String>>,
    /// Counters.
    pub counters: Counters,
}

/// Slowest upload rate tolerated before an upload counts as stalled: uploads get a whole-request
/// timeout from their size, since a read timeout would also run while the body is being sent.
const MIN_UPLOAD_BYTES_PER_SEC: u64 = 256 * 1024;

fn build_http(opts: &ClientOptions, verify: bool, uploads: bool) -> Result<reqwest::Client, RegistryError> {
    let mut b = reqwest::Client::builder().connect_timeout(Duration::from_secs(15));
    if !uploads {
        b = b.read_timeout(opts.stall_timeout);
    }
    let mut b = b
        .pool_max_idle_per_host(opts.max_in_flight.max(1))
        .user_agent(concat!("imageset-operator/", env!("CARGO_PKG_VERSION")));
    if verify {
        let mut certs = Vec::new();
        for pem in &opts.ca_pems {
            certs.extend(reqwest::Certificate::from_pem_bundle(pem).map_err(|e| RegistryError::Io {
                what: "reading CA bundle".into(),
                message: e.without_url().to_string(),
            })?);
        }
        if !certs.is_empty() {
            b = b.tls_certs_merge(certs);
        }
    } else {
        b = b.tls_danger_accept_invalid_certs(true);
    }
    b.build().map_err(|e| RegistryError::transport("building HTTP client", e))
}

/// `repository:<repo>:<actions>`.
pub fn scope(repo: &str, actions: &str) -> String {
    format!("repository:{repo}:{actions}")
}

impl Client {
    /// A client with these options.
    pub fn new(opts: ClientOptions) -> Result<Self, RegistryError> {
        Ok(Client {
            verified: build_http(&opts, true, false)?,
            unverified: build_http(&opts, false, false)?,
            upload_verified: build_http(&opts, true, true)?,
            upload_unverified: build_http(&opts, false, true)?,
            opts,
            hosts: Mutex::new(HashMap::new()),
            proven: Mutex::default(),
            counters: Counters::default(),
        })
    }

    /// Records that this client read a manifest of `registry/repo` at the source itself.
    pub fn note_read(&self, registry: &str, repo: &str) {
        if self.opts.prove_cached {
            self.proven.lock().expect("proven lock").insert(format!("{registry}/{repo}"));
        }
    }

    fn is_proven(&self, key: &str) -> bool {
        self.proven.lock().expect("proven lock").contains(key)
    }

    /// Before a cached manifest of `registry/repo` is served to this client: unless it has
    /// read that repository at the source in this run, one HEAD of the manifest with its own
    /// credentials. A refusal is [`RegistryError::Denied`]; a manifest the source does not
    /// have is not served either.
    pub async fn prove_manifest(&self, registry: &str, repo: &str, digest: &str) -> Result<(), RegistryError> {
        if !self.opts.prove_cached
            || registry == crate::image::DISK_ROOT
            || self.is_proven(&format!("{registry}/{repo}"))
        {
            return Ok(());
        }
        match self.pull_manifest_head(registry, repo, digest).await? {
            Some(_) => {
                self.note_read(registry, repo);
                Ok(())
            }
            None => Err(RegistryError::NotFound { what: format!("manifest {registry}/{repo}@{digest} at the source") }),
        }
    }

    /// Before a cached blob is served to this client: unless it has seen the blob in
    /// `registry/repo` in this run, one HEAD of the blob there with its own credentials (a
    /// manifest of its own may name any digest; the source says whether the blob is in that
    /// repository and readable by it).
    pub async fn prove_blob(&self, registry: &str, repo: &str, digest: &str) -> Result<(), RegistryError> {
        let key = format!("{registry}/{repo}@{digest}");
        if !self.opts.prove_cached || registry == crate::image::DISK_ROOT || self.is_proven(&key) {
            return Ok(());
        }
        match self.pull_blob_head(registry, repo, digest).await? {
            Some(_) => {
                self.proven.lock().expect("proven lock").insert(key);
                Ok(())
            }
            None => Err(RegistryError::NotFound { what: format!("blob {registry}/{repo}@{digest} at the source") }),
        }
    }

    /// Requests in flight at once per registry.
    pub fn max_in_flight(&self) -> usize {
        self.opts.max_in_flight.max(1)
    }

    /// The retry policy.
    pub fn backoff(&self) -> &Backoff {
        &self.opts.backoff
    }

    fn host(&self, name: &str) -> Arc<Host> {
        let mut hosts = self.hosts.lock().expect("hosts lock");
        hosts
            .entry(name.to_string())
            .or_insert_with(|| {
                let endpoint = if name == "docker.io" { "registry-1.docker.io" } else { name }.to_string();
                let insecure = self.opts.insecure.iter().any(|h| h == name)
                    || self.opts.sources.as_ref().is_some_and(|s| s.insecure_hosts().iter().any(|h| h == name))
                    || (self.opts.insecure.iter().any(|h| h == "*") && !self.opts.verified.iter().any(|h| h == name));
                Arc::new(Host {
                    name: name.to_string(),
                    endpoint,
                    insecure,
                    base: tokio::sync::OnceCell::new(),
                    permits: match &self.opts.slots {
                        Some(shared) => shared.of(name, self.opts.max_in_flight.max(1)),
                        None => Arc::new(Semaphore::new(self.opts.max_in_flight.max(1))),
                    },
                    challenge: Mutex::new(None),
                    tokens: Mutex::new(HashMap::new()),
                    token_flight: tokio::sync::Mutex::new(()),
                    breaker: Mutex::default(),
                })
            })
            .clone()
    }

    fn http(&self, host: &Host) -> &reqwest::Client {
        if host.insecure { &self.unverified } else { &self.verified }
    }

    /// `https://host`, or `http://host` for an insecure host that does not speak TLS.
    async fn base(&self, host: &Host) -> Result<String, RegistryError> {
        host.base
            .get_or_try_init(|| async {
                let https = format!("https://{}", host.endpoint);
                if !host.insecure {
                    return Ok(https);
                }
                let probe = self.unverified.get(format!("{https}/v2/")).timeout(Duration::from_secs(10)).send().await;
                Ok(if probe.is_ok() { https } else { format!("http://{}", host.endpoint) })
            })
            .await
            .cloned()
    }

    async fn token(
        &self,
        host: &Host,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        repo: &str,
    ) -> Result<Option<String>, RegistryError> {
        let key = scopes.join(" ");
        let cached = || {
            host.tokens
                .lock()
                .expect("tokens lock")
                .get(&key)
                .filter(|t| t.refresh_at > Instant::now())
                .map(|t| t.value.clone())
        };
        if let Some(t) = cached() {
            return Ok(Some(t));
        }
        let _flight = host.token_flight.lock().await;
        if let Some(t) = cached() {
            return Ok(Some(t));
        }
        let what = format!("{}: token for {key}", host.name);
        let mut query: Vec<(&str, &str)> = scopes.iter().map(|s| ("scope", s.as_str())).collect();
        if let Some(s) = service {
            query.push(("service", s));
        }
        let cred = self.opts.auth.lookup(&host.name, repo);
        let resp = self
            .opts
            .backoff
            .run(&what, || async {
                let mut rb = self.http(host).get(realm).query(&query).timeout(Duration::from_secs(30));
                if let Some(c) = cred {
                    rb = rb.basic_auth(&c.username, Some(&c.password));
                }
                let r = rb.send().await.map_err(|e| RegistryError::transport(&what, e))?;
                check(&what, &host.name, r).await
            })
            .await?;
        let body: TokenResponse = resp
            .json()
            .await
            .map_err(|e| RegistryError::Io { what: what.clone(), message: e.without_url().to_string() })?;
        let Some(token) = body.into_token(Instant::now()) else { return Ok(None) };
        let value = token.value.clone();
        host.tokens.lock().expect("tokens lock").insert(key, token);
        Ok(Some(value))
    }

    /// Adds credentials for the host's known challenge; returns the bearer token used, if any,
    /// and whether basic credentials were sent.
    async fn authorize(
        &self,
        host: &Host,
        rb: RequestBuilder,
        scopes: &[String],
        repo: &str,
    ) -> Result<(RequestBuilder, Option<String>, bool), RegistryError> {
        let challenge = host.challenge.lock().expect("challenge lock").clone();
        Ok(match challenge {
            Some(Challenge::Basic) => match self.opts.auth.lookup(&host.name, repo) {
                Some(c) => (rb.header(AUTHORIZATION, auth::basic_header(c)), None, true),
                None => (rb, None, false),
            },
            Some(Challenge::Bearer { realm, service }) => {
                match self.token(host, &realm, service.as_deref(), scopes, repo).await? {
                    Some(t) => (rb.bearer_auth(&t), Some(t), false),
                    None => (rb, None, false),
                }
            }
            _ => (rb, None, false),
        })
    }

    /// One request with auth (answering one 401 challenge), no retries. `build` gets the
    /// HTTP client and the base URL.
    async fn send_once(
        &self,
        host: &Host,
        what: &str,
        scopes: &[String],
        repo: &str,
        build: &Build<'_>,
    ) -> Result<Response, RegistryError> {
        let base = self.base(host).await?;
        for round in 0..2 {
            let (rb, used, sent_basic) = self.authorize(host, build(self.http(host), &base), scopes, repo).await?;
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let resp = rb.send().await.map_err(|e| RegistryError::transport(what, e))?;
            if resp.status() == StatusCode::UNAUTHORIZED && round == 0 {
                let challenge = resp
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(auth::parse_challenge)
                    .unwrap_or(Challenge::None);
                tracing::debug!(what, with_token = used.is_some(), ?challenge, "401; authenticating");
                host.challenge.lock().expect("challenge lock").replace(challenge.clone());
                // Forget the token only if this request was refused with it (others may have
                // fetched a good one meanwhile).
                if let Some(used) = used {
                    let mut tokens = host.tokens.lock().expect("tokens lock");
                    let key = scopes.join(" ");
                    if tokens.get(&key).is_some_and(|t| t.value == used) {
                        tokens.remove(&key);
                    }
                }
                // No way to authenticate, or basic credentials refused: give up now. A request
                // sent before the challenge was known (several start at once) goes again with
                // credentials.
                if challenge == Challenge::None || (sent_basic && challenge == Challenge::Basic) {
                    return Ok(resp);
                }
                continue;
            }
            return Ok(resp);
        }
        unreachable!("the loop returns on its second round")
    }

    /// A request with auth, the host's in-flight cap and retries; returns a checked response
    /// and the permit (held while the body is read).
    async fn request(
        &self,
        call: Call<'_>,
        build: &Build<'_>,
    ) -> Result<(Response, OwnedSemaphorePermit), RegistryError> {
        self.opts.backoff.run(call.what, || self.request_once(call, build)).await
    }

    async fn request_once(
        &self,
        call: Call<'_>,
        build: &Build<'_>,
    ) -> Result<(Response, OwnedSemaphorePermit), RegistryError> {
        let host = self.host(call.registry);
        if let Some(e) = host.unreachable(call.what) {
            return Err(e);
        }
        let permit = host.permits.clone().acquire_owned().await.expect("semaphore never closed");
        let r = match self.send_once(&host, call.what, call.scopes, call.repo, build).await {
            Ok(resp) => check(call.what, &host.name, resp).await,
            Err(e) => Err(e),
        };
        let answered = r.as_ref().err().is_none_or(|e| e.retry_hint().is_none());
        if host.record(answered, self.opts.breaker_window) && !answered {
            return Err(host.unreachable(call.what).expect("breaker open"));
        }
        Ok((r?, permit))
    }
}

fn header_str(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn location(what: &str, base: &str, h: &HeaderMap) -> Result<String, RegistryError> {
    let loc = header_str(h, LOCATION.as_str()).ok_or_else(|| RegistryError::Io {
        what: what.to_string(),
        message: "upload answered without Location".into(),
    })?;
    Ok(if loc.starts_with("http://") || loc.starts_with("https://") { loc } else { format!("{base}{loc}") })
}

/// Maps a status to an error, keeping 2xx.
async fn check(what: &str, host: &str, r: Response) -> Result<Response, RegistryError> {
    let status = r.status();
    if status.is_success() {
        return Ok(r);
    }
    match status.as_u16() {
        401 | 403 => Err(RegistryError::Denied { what: what.to_string(), host: host.to_string() }),
        404 => Err(RegistryError::NotFound { what: what.to_string() }),
        code => {
            let retry_after = retry::parse_retry_after(r.headers().get(reqwest::header::RETRY_AFTER));
            let body = r.text().await.unwrap_or_default();
            let body: String = body.trim().chars().take(200).collect();
            Err(RegistryError::Status { what: what.to_string(), status: code, retry_after, body })
        }
    }
}
