//! Reads of source images through registries.conf: each call tries the image's mirrors in
//! order, then the image's own location, and answers with the first that serves it. The
//! caller always names the original image; destinations are read with the plain calls.

use std::future::Future;

use super::sources::PullSource;
use super::{Client, RegistryError, Streaming};

impl Client {
    /// Where `registry/repo` is read from, in order (`reference`: tag or digest; None for a
    /// blob). Without registries.conf: the image's own registry.
    pub fn pull_sources(
        &self,
        what: &str,
        registry: &str,
        repo: &str,
        reference: Option<&str>,
    ) -> Result<Vec<PullSource>, RegistryError> {
        match &self.opts.sources {
            None => Ok(vec![PullSource { registry: registry.into(), repo: repo.into(), mirror: false }]),
            Some(conf) => conf
                .sources(registry, repo, reference)
                .map_err(|rule| RegistryError::Blocked { what: what.to_string(), rule }),
        }
    }

    /// Runs `op` on each source in turn until one answers; the last source's error otherwise,
    /// naming what the mirrors answered.
    async fn first_source<T, F, Fut>(
        &self,
        what: &str,
        (registry, repo, reference): (&str, &str, Option<&str>),
        op: F,
    ) -> Result<T, RegistryError>
    where
        F: Fn(PullSource) -> Fut,
        Fut: Future<Output = Result<T, RegistryError>>,
    {
        let sources = self.pull_sources(what, registry, repo, reference)?;
        let mut tried = Vec::new();
        let n = sources.len();
        for (i, s) in sources.into_iter().enumerate() {
            let at = format!("{}/{}", s.registry, s.repo);
            let mirror = s.mirror;
            match op(s).await {
                Ok(v) => return Ok(v),
                Err(e) if i + 1 == n => return Err(with_tried(e, &tried)),
                Err(e) => {
                    if mirror {
                        tracing::debug!(%at, error = %e, "mirror did not serve it; trying the next source");
                    }
                    tried.push(format!("{at}: {}", e.reason()));
                }
            }
        }
        unreachable!("a registries.conf rule always ends with a source")
    }

    /// [`Client::first_source`] for a HEAD: a source that does not have it passes to the
    /// next; None when none has it.
    async fn first_present<T, F, Fut>(
        &self,
        what: &str,
        key: (&str, &str, Option<&str>),
        head: F,
    ) -> Result<Option<T>, RegistryError>
    where
        F: Fn(PullSource) -> Fut,
        Fut: Future<Output = (Result<Option<T>, RegistryError>, PullSource)>,
    {
        let r = self
            .first_source(what, key, |s| {
                let fut = head(s);
                async move {
                    let (r, s) = fut.await;
                    r?.ok_or_else(|| RegistryError::NotFound { what: format!("{}/{}", s.registry, s.repo) })
                }
            })
            .await;
        match r {
            Ok(v) => Ok(Some(v)),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// [`Client::manifest_head`] of a source image.
    pub async fn pull_manifest_head(
        &self,
        registry: &str,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(String, String)>, RegistryError> {
        if self.opts.sources.is_none() {
            return self.manifest_head(registry, repo, reference).await;
        }
        let what = format!("HEAD manifest {registry}/{repo}:{reference}");
        self.first_present(&what, (registry, repo, Some(reference)), |s| async move {
            (self.manifest_head(&s.registry, &s.repo, reference).await, s)
        })
        .await
    }

    /// [`Client::manifest_get`] of a source image.
    pub async fn pull_manifest_get(
        &self,
        registry: &str,
        repo: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String), RegistryError> {
        if self.opts.sources.is_none() {
            return self.manifest_get(registry, repo, reference).await;
        }
        let what = format!("GET manifest {registry}/{repo}:{reference}");
        self.first_source(&what, (registry, repo, Some(reference)), |s| async move {
            self.manifest_get(&s.registry, &s.repo, reference).await
        })
        .await
    }

    /// [`Client::blob_head`] of a source image's blob.
    pub async fn pull_blob_head(&self, registry: &str, repo: &str, digest: &str) -> Result<Option<u64>, RegistryError> {
        if self.opts.sources.is_none() {
            return self.blob_head(registry, repo, digest).await;
        }
        let what = format!("HEAD blob {registry}/{repo}@{digest}");
        self.first_present(&what, (registry, repo, None), |s| async move {
            (self.blob_head(&s.registry, &s.repo, digest).await, s)
        })
        .await
    }

    /// [`Client::blob_get`] of a source image's blob.
    pub async fn pull_blob_get(
        &self,
        registry: &str,
        repo: &str,
        digest: &str,
        offset: u64,
    ) -> Result<Streaming, RegistryError> {
        if self.opts.sources.is_none() {
            return self.blob_get(registry, repo, digest, offset).await;
        }
        let what = format!("GET blob {registry}/{repo}@{digest}");
        self.first_source(&what, (registry, repo, None), |s| async move {
            self.blob_get(&s.registry, &s.repo, digest, offset).await
        })
        .await
    }
}

/// `e` with the sources tried before it named in its operation.
fn with_tried(mut e: RegistryError, tried: &[String]) -> RegistryError {
    if tried.is_empty() {
        return e;
    }
    let note = format!(" (mirrors tried first: {})", tried.join(", "));
    match &mut e {
        RegistryError::Transport { what, .. }
        | RegistryError::Status { what, .. }
        | RegistryError::Denied { what, .. }
        | RegistryError::NotFound { what }
        | RegistryError::DigestMismatch { what, .. }
        | RegistryError::Manifest { what, .. }
        | RegistryError::Unreachable { what, .. }
        | RegistryError::Blocked { what, .. }
        | RegistryError::Io { what, .. } => what.push_str(&note),
    }
    e
}
