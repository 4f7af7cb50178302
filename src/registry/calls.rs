//! The distribution API calls the copy engine makes: manifests (HEAD, GET, PUT, DELETE) and
//! blobs (HEAD, streamed GET with resume, cross-repository mount, monolithic and streamed
//! uploads), each through the client's auth, request slots and retries.

use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::TryStreamExt as _;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, RANGE};
use reqwest::{Method, StatusCode};

use super::{
    Call, Client, MAX_MANIFEST_BYTES, MIN_UPLOAD_BYTES_PER_SEC, Mount, RegistryError, Streaming, check, header_str,
    location, scope,
};
use crate::image::manifest;

impl Client {
    /// HEAD a manifest: `(digest, media type)` or `None` when absent.
    pub async fn manifest_head(
        &self,
        registry: &str,
        repo: &str,
        reference: &str,
    ) -> Result<Option<(String, String)>, RegistryError> {
        let what = format!("HEAD manifest {}", named(registry, repo, reference));
        let url = format!("/v2/{repo}/manifests/{reference}");
        let build =
            move |c: &reqwest::Client, base: &str| c.head(format!("{base}{url}")).header(ACCEPT, manifest::ACCEPT);
        match self.request(Call { registry, repo, what: &what, scopes: &[scope(repo, "pull")] }, &build).await {
            Ok((r, _)) => {
                let h = r.headers();
                let digest = header_str(h, "docker-content-digest");
                let mt = header_str(h, CONTENT_TYPE.as_str());
                Ok(digest.map(|d| (d, mt.unwrap_or_default())))
            }
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET a manifest: raw bytes and media type.
    pub async fn manifest_get(
        &self,
        registry: &str,
        repo: &str,
        reference: &str,
    ) -> Result<(Vec<u8>, String), RegistryError> {
        let what = format!("GET manifest {}", named(registry, repo, reference));
        let url = format!("/v2/{repo}/manifests/{reference}");
        let build =
            move |c: &reqwest::Client, base: &str| c.get(format!("{base}{url}")).header(ACCEPT, manifest::ACCEPT);
        self.opts
            .backoff
            .run(&what, || async {
                let (r, _permit) = self
                    .request_once(Call { registry, repo, what: &what, scopes: &[scope(repo, "pull")] }, &build)
                    .await?;
                let header = header_str(r.headers(), CONTENT_TYPE.as_str());
                if r.content_length().is_some_and(|l| l as usize > MAX_MANIFEST_BYTES) {
                    return Err(RegistryError::Io { what: what.clone(), message: "manifest larger than 8 MiB".into() });
                }
                let bytes = r.bytes().await.map_err(|e| RegistryError::transport(&what, e))?;
                if bytes.len() > MAX_MANIFEST_BYTES {
                    return Err(RegistryError::Io { what: what.clone(), message: "manifest larger than 8 MiB".into() });
                }
                let mt = manifest::media_type_of(&bytes, header.as_deref());
                Ok((bytes.to_vec(), mt))
            })
            .await
    }

    /// PUT a manifest under a tag or its digest.
    pub async fn manifest_put(
        &self,
        registry: &str,
        repo: &str,
        reference: &str,
        bytes: &[u8],
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let what = format!("PUT manifest {}", named(registry, repo, reference));
        let url = format!("/v2/{repo}/manifests/{reference}");
        let body = bytes::Bytes::copy_from_slice(bytes);
        let mt = media_type.to_string();
        let build = move |c: &reqwest::Client, base: &str| {
            c.put(format!("{base}{url}")).header(CONTENT_TYPE, mt.as_str()).body(body.clone())
        };
        self.request(Call { registry, repo, what: &what, scopes: &[scope(repo, "pull,push")] }, &build)
            .await
            .map(|_| ())
    }

    /// DELETE a manifest by digest.
    pub async fn manifest_delete(&self, registry: &str, repo: &str, digest: &str) -> Result<(), RegistryError> {
        let what = format!("DELETE manifest {registry}/{repo}@{digest}");
        let url = format!("/v2/{repo}/manifests/{digest}");
        let build = move |c: &reqwest::Client, base: &str| c.request(Method::DELETE, format!("{base}{url}"));
        self.request(Call { registry, repo, what: &what, scopes: &[scope(repo, "delete")] }, &build).await.map(|_| ())
    }

    /// HEAD a blob: its size when present.
    pub async fn blob_head(&self, registry: &str, repo: &str, digest: &str) -> Result<Option<u64>, RegistryError> {
        let what = format!("HEAD blob {registry}/{repo}@{digest}");
        let url = format!("/v2/{repo}/blobs/{digest}");
        let build = move |c: &reqwest::Client, base: &str| c.head(format!("{base}{url}"));
        match self.request(Call { registry, repo, what: &what, scopes: &[scope(repo, "pull")] }, &build).await {
            Ok((r, _)) => Ok(Some(r.content_length().unwrap_or(0))),
            Err(RegistryError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// GET a blob from `offset` on (a `Range` request when `offset > 0`). The caller checks
    /// for 206 (resumed) versus 200 (whole blob again).
    pub async fn blob_get(
        &self,
        registry: &str,
        repo: &str,
        digest: &str,
        offset: u64,
    ) -> Result<Streaming, RegistryError> {
        let what = format!("GET blob {registry}/{repo}@{digest}");
        let url = format!("/v2/{repo}/blobs/{digest}");
        let build = move |c: &reqwest::Client, base: &str| {
            let rb = c.get(format!("{base}{url}"));
            if offset > 0 { rb.header(RANGE, format!("bytes={offset}-")) } else { rb }
        };
        self.counters.blob_gets.fetch_add(1, Ordering::Relaxed);
        let (response, permit) =
            self.request(Call { registry, repo, what: &what, scopes: &[scope(repo, "pull")] }, &build).await?;
        Ok(Streaming { response, _permit: permit })
    }

    /// Asks the registry to mount a blob from another repository; falls back to an upload.
    pub async fn blob_mount(
        &self,
        registry: &str,
        repo: &str,
        digest: &str,
        from: &str,
    ) -> Result<Mount, RegistryError> {
        let what = format!("mount blob {registry}/{repo}@{digest} from {from}");
        let url = format!("/v2/{repo}/blobs/uploads/");
        let (d, f) = (digest.to_string(), from.to_string());
        let build = move |c: &reqwest::Client, base: &str| {
            c.post(format!("{base}{url}"))
                .query(&[("mount", d.as_str()), ("from", f.as_str())])
                .header(CONTENT_LENGTH, "0")
        };
        let scopes = [scope(repo, "pull,push"), scope(from, "pull")];
        let (r, _) = self.request(Call { registry, repo, what: &what, scopes: &scopes }, &build).await?;
        if r.status() == StatusCode::CREATED {
            self.counters.mounts.fetch_add(1, Ordering::Relaxed);
            return Ok(Mount::Mounted);
        }
        let base = self.base(&self.host(registry)).await?;
        Ok(Mount::Upload(location(&what, &base, r.headers())?))
    }

    /// Uploads a blob from a file in one streamed PUT (POST for a session unless one is given).
    /// Retried from the start, with a new session, on transient failures.
    pub async fn blob_upload(
        &self,
        registry: &str,
        repo: &str,
        digest: &str,
        size: u64,
        file: &std::path::Path,
        mut session: Option<String>,
    ) -> Result<(), RegistryError> {
        let what = format!("upload blob {registry}/{repo}@{digest}");
        let path = file.to_path_buf();
        let body = move || {
            let stream = futures::stream::once(tokio::fs::File::open(path.clone()))
                .map_ok(|f| tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024))
                .try_flatten();
            reqwest::Body::wrap_stream(stream)
        };
        let up = Upload { registry, repo, digest, size, what: &what };
        self.opts.backoff.run(&what, || self.upload_once(&up, session.take(), &body)).await
    }

    /// Uploads a blob from a stream of chunks, once (a stream cannot be replayed): the caller
    /// falls back to `blob_upload` from the cache when this fails. The registry checks the
    /// digest, so a short or wrong stream is refused, never stored.
    pub async fn blob_upload_stream<S>(
        &self,
        registry: &str,
        repo: &str,
        digest: &str,
        size: u64,
        chunks: S,
        session: Option<String>,
    ) -> Result<(), RegistryError>
    where
        S: futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    {
        let what = format!("upload blob {registry}/{repo}@{digest}");
        let once = Mutex::new(Some(reqwest::Body::wrap_stream(chunks)));
        let body = move || once.lock().expect("body lock").take().unwrap_or_else(|| reqwest::Body::from(Vec::new()));
        let up = Upload { registry, repo, digest, size, what: &what };
        self.upload_once(&up, session, &body).await
    }

    async fn upload_once(
        &self,
        up: &Upload<'_>,
        session: Option<String>,
        body: &(dyn Fn() -> reqwest::Body + Send + Sync),
    ) -> Result<(), RegistryError> {
        let Upload { registry, repo, digest, size, what } = *up;
        let host = self.host(registry);
        let scopes = [scope(repo, "pull,push")];
        let base = self.base(&host).await?;
        let permit = host.permits.clone().acquire_owned().await.expect("semaphore never closed");
        let loc = match session {
            Some(l) => l,
            None => {
                let url = format!("{base}/v2/{repo}/blobs/uploads/");
                let build = move |c: &reqwest::Client, _: &str| c.post(url.clone()).header(CONTENT_LENGTH, "0");
                let r = self.send_once(&host, what, &scopes, repo, &build).await?;
                let r = check(what, &host.name, r).await?;
                location(what, &base, r.headers())?
            }
        };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put_url = format!("{loc}{sep}digest={digest}");
        let client = if host.insecure { &self.upload_unverified } else { &self.upload_verified }.clone();
        let limit = self.opts.stall_timeout + Duration::from_secs(size / MIN_UPLOAD_BYTES_PER_SEC);
        let build = move |_: &reqwest::Client, _: &str| {
            client
                .put(put_url.clone())
                .timeout(limit)
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(CONTENT_LENGTH, size)
                .body(body())
        };
        let r = self.send_once(&host, what, &scopes, repo, &build).await?;
        check(what, &host.name, r).await?;
        drop(permit);
        self.counters.bytes_out.fetch_add(size, Ordering::Relaxed);
        Ok(())
    }
}

/// One blob upload's identity, for `upload_once`.
#[derive(Clone, Copy)]
struct Upload<'a> {
    registry: &'a str,
    repo: &'a str,
    digest: &'a str,
    size: u64,
    what: &'a str,
}

/// `registry/repo:tag`, or `registry/repo@sha256:...` for a digest, as references are written.
fn named(registry: &str, repo: &str, reference: &str) -> String {
    let sep = if crate::image::reference::is_digest(reference) { '@' } else { ':' };
    format!("{registry}/{repo}{sep}{reference}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn digests_are_named_with_an_at_sign_and_tags_with_a_colon() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(super::named("r.io:5000", "ns/app", &d), format!("r.io:5000/ns/app@{d}"));
        assert_eq!(super::named("r.io:5000", "ns/app", "v1.2"), "r.io:5000/ns/app:v1.2");
    }
}
