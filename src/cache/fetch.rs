//! Downloading a blob into the cache: streamed (memory does not grow with the blob), hashed
//! as it arrives, resumed with a `Range` request from the byte where a cut connection or a
//! crashed run stopped, and only made visible once its digest matches.

use std::sync::atomic::Ordering;

use futures::StreamExt as _;

use super::Cache;
use super::staging::Staging;
use crate::image::manifest::Descriptor;
use crate::registry::{Client, RegistryError};

/// A manifest by digest: from the cache, else from `registry/repo`, verified against the
/// digest before it is cached.
pub async fn manifest(
    client: &Client,
    cache: &Cache,
    registry: &str,
    repo: &str,
    digest: &str,
) -> Result<Vec<u8>, RegistryError> {
    if cache.has(digest) {
        client.prove_manifest(registry, repo, digest).await?;
        cache.count(true);
        return cache.read(digest).map_err(|e| io_err("reading cache", e));
    }
    let (bytes, _) = client.pull_manifest_get(registry, repo, digest).await?;
    client.note_read(registry, repo);
    let actual = crate::image::manifest::sha256_digest(&bytes);
    if actual != digest {
        return Err(RegistryError::DigestMismatch {
            what: format!("manifest of {registry}/{repo}"),
            expected: digest.into(),
            actual,
        });
    }
    cache.put(digest, &bytes).map_err(|e| io_err("writing cache", e))?;
    cache.count(false);
    Ok(bytes)
}

/// The top manifest digest of a registry reference: its digest, or a HEAD of its tag
/// (`latest` when it has none). `what` names it when the registry does not have it.
pub async fn top_digest(client: &Client, r: &crate::image::ImageRef, what: &str) -> Result<String, RegistryError> {
    if let Some(d) = &r.digest {
        return Ok(d.clone());
    }
    let tag = r.tag.as_deref().unwrap_or("latest");
    match client.pull_manifest_head(&r.registry, &r.path, tag).await? {
        Some((d, _)) => {
            client.note_read(&r.registry, &r.path);
            Ok(d)
        }
        None => Err(RegistryError::NotFound { what: what.to_string() }),
    }
}

/// [`blob`] with no tee, one download per digest at a time across every caller of this cache
/// (callers that read payloads or build images concurrently need not coordinate).
pub async fn blob_once(
    client: &Client,
    cache: &Cache,
    registry: &str,
    repo: &str,
    desc: &Descriptor,
) -> Result<(), RegistryError> {
    if cache.has(&desc.digest) {
        return client.prove_blob(registry, repo, &desc.digest).await;
    }
    let _turn = cache.flight(&desc.digest).await;
    blob(client, cache, registry, repo, desc, None).await
}

fn io_err(what: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Io { what: what.to_string(), message: e.to_string() }
}

/// Where a download also sends its bytes (an upload streaming them on): chunks as they arrive,
/// or an error when the download is cut (the receiver's upload then fails and is redone from
/// the cache).
pub type Tee = tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>;

/// Fetches `desc` from `registry/repo` into the cache unless it is there already, passing the
/// bytes of a download that starts from zero to `tee` as well (bytes received are counted in
/// the client's counters).
pub async fn blob(
    client: &Client,
    cache: &Cache,
    registry: &str,
    repo: &str,
    desc: &Descriptor,
    mut tee: Option<Tee>,
) -> Result<(), RegistryError> {
    if cache.has(&desc.digest) {
        client.prove_blob(registry, repo, &desc.digest).await?;
        cache.count(true);
        return Ok(());
    }
    let what = format!("fetch {registry}/{repo}@{}", desc.digest);
    let staging = cache.staging(&desc.digest).map_err(|e| io_err(&what, e))?;
    let mut part = Staging::open(&staging, desc.size).map_err(|e| io_err(&what, e))?;
    if !part.is_empty() {
        tee = None; // a resumed download has no first bytes to stream on
    }
    let mut full = Vec::new();
    let backoff = client.backoff().clone();
    let mut cuts = 0u32;
    let mut fresh_retry = true;
    loop {
        if part.len() < desc.size {
            let s = client.pull_blob_get(registry, repo, &desc.digest, part.len()).await?;
            let status = s.response.status().as_u16();
            if status != 206 && !part.is_empty() {
                // The registry ignored the Range header: start over.
                part.restart().await.map_err(|e| io_err(&what, e))?;
            }
            let mut body = s.response.bytes_stream();
            let mut cut = None;
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(c) => {
                        if part.len() + c.len() as u64 > desc.size {
                            cut = Some(format!("more than the {} bytes the manifest declares", desc.size));
                            part.restart().await.map_err(|e| io_err(&what, e))?;
                            break;
                        }
                        client.counters.bytes_in.fetch_add(c.len() as u64, Ordering::Relaxed);
                        part.push(&c, &mut full).await.map_err(|e| io_err(&what, e))?;
                        for b in full.drain(..) {
                            // Whole buffers, so the upload writes large chunks, not the
                            // socket's (each send costs a wakeup).
                            if let Some(t) = &tee
                                && t.send(Ok(b)).await.is_err()
                            {
                                tee = None; // the upload gave up; keep filling the cache
                            }
                        }
                    }
                    Err(e) => {
                        cut = Some(RegistryError::transport(&what, e).to_string());
                        break;
                    }
                }
            }
            drop(body);
            let rest = part.flush().await.map_err(|e| io_err(&what, e))?;
            if let Some(t) = tee.take() {
                let last =
                    if part.len() < desc.size { Err(std::io::Error::other("source download cut")) } else { Ok(rest) };
                let _ = t.send(last).await;
            }
            if let Some(reason) =
                cut.or_else(|| (part.len() < desc.size).then(|| "connection closed early".to_string()))
            {
                if cuts >= backoff.retries {
                    return Err(RegistryError::Transport { what, message: reason });
                }
                tracing::info!(blob = %desc.digest, at = part.len(), size = desc.size, %reason, "download cut; resuming");
                tokio::time::sleep(backoff.delay(cuts, None)).await;
                cuts += 1;
                continue;
            }
        }
        let actual = part.digest();
        if actual == desc.digest {
            let file = part.into_file();
            let commit = cache.committer(&staging, file, &desc.digest).map_err(|e| io_err(&what, e))?;
            tokio::task::spawn_blocking(commit).await.map_err(|e| io_err(&what, e))?.map_err(|e| io_err(&what, e))?;
            cache.count(false);
            return Ok(());
        }
        // Wrong bytes are never stored; one fresh download in case a partial was stale.
        part.restart().await.map_err(|e| io_err(&what, e))?;
        if !fresh_retry {
            let _ = std::fs::remove_file(&staging);
            return Err(RegistryError::DigestMismatch { what, expected: desc.digest.clone(), actual });
        }
        fresh_retry = false;
    }
}
