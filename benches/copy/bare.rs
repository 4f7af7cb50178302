//! The bare streaming copier: the practical limit the benchmark compares against. It moves
//! each unique blob once, eight streams at a time, mounts blobs into other repositories of
//! the destination, trusts the registries' digests (no hashing), then writes manifests.
//! Images whose tag already has the source's digest are skipped, so a re-run is HEADs only.
//! It runs as its own process (the bench binary with `--bare-copy`) so it is timed and its
//! CPU and memory measured like the other tools.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result, bail};
use futures::{StreamExt, TryStreamExt};
use serde_json::Value;

/// Blob streams at once.
const STREAMS: usize = 8;
/// Attempts per blob before the image is given up.
const ATTEMPTS: usize = 3;
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// A manifest fetched from the source, with the digest the registry reported.
struct Manifest {
    reference: String,
    media_type: String,
    bytes: Vec<u8>,
}

/// One tag to copy: its children (for an index) and itself.
struct Work {
    repo: String,
    tag: String,
    children: Vec<Manifest>,
    top: Manifest,
}

#[derive(Default)]
struct Counters {
    skipped: AtomicU64,
    uploaded: AtomicU64,
    mounted: AtomicU64,
    present: AtomicU64,
}

struct Ctx {
    http: reqwest::Client,
    src: String,
    dst: String,
    n: Counters,
}

/// Entry point of the child process: `--bare-copy SRC DST LISTFILE`, where LISTFILE has
/// `repository tag` per line and repositories keep their path. Returns the exit code.
pub fn main(src: &str, dst: &str, list: &Path) -> i32 {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(run(src, dst, list)) {
        Ok(0) => 0,
        Ok(failed) => {
            eprintln!("bare-copy: {failed} images failed");
            1
        }
        Err(e) => {
            eprintln!("bare-copy: {e:#}");
            2
        }
    }
}

async fn run(src: &str, dst: &str, list: &Path) -> Result<usize> {
    let text = std::fs::read_to_string(list)?;
    let tags: Vec<(String, String)> =
        text.lines().filter_map(|l| l.split_once(' ').map(|(r, t)| (r.to_string(), t.trim().to_string()))).collect();
    let ctx = Ctx {
        http: reqwest::Client::builder().http1_only().pool_max_idle_per_host(STREAMS * 2).build()?,
        src: format!("http://{src}"),
        dst: format!("http://{dst}"),
        n: Counters::default(),
    };
    let ctx = &ctx;
    let mut failed = 0;

    // Manifests first: which tags need copying and which blobs they need.
    let found: Vec<Result<Option<Work>>> =
        futures::stream::iter(tags.iter().map(|(r, t)| plan_tag(ctx, r, t))).buffered(STREAMS).collect().await;
    let mut work = Vec::new();
    for (res, (repo, tag)) in found.into_iter().zip(&tags) {
        match res {
            Ok(Some(w)) => work.push(w),
            Ok(None) => {
                ctx.n.skipped.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                eprintln!("bare-copy: {repo}:{tag}: {e:#}");
                failed += 1;
            }
        }
    }

    // Each unique blob once, into the first repository that needs it; the others mount it.
    let mut blobs: Vec<(String, u64, Vec<String>)> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for w in &work {
        for m in w.children.iter().chain([&w.top]) {
            for (digest, size) in blob_refs(&m.bytes)? {
                let i = *seen.entry(digest.clone()).or_insert_with(|| {
                    blobs.push((digest, size, Vec::new()));
                    blobs.len() - 1
                });
                if !blobs[i].2.contains(&w.repo) {
                    blobs[i].2.push(w.repo.clone());
                }
            }
        }
    }
    // Largest first, so the long streams start early and the small ones fill the gaps.
    blobs.sort_by_key(|b| std::cmp::Reverse(b.1));
    let results: Vec<Result<()>> = futures::stream::iter(blobs.iter().map(|(d, size, repos)| async move {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            match place_blob(ctx, d, *size, repos).await {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("an attempt failed"))
    }))
    .buffer_unordered(STREAMS)
    .collect()
    .await;
    for e in results.into_iter().filter_map(Result::err) {
        eprintln!("bare-copy: blob: {e:#}");
    }

    // Manifests: children by digest, then the tag.
    let written: Vec<Result<()>> = futures::stream::iter(work.iter().map(|w| async move {
        for m in w.children.iter().chain([&w.top]) {
            put_manifest(ctx, &w.repo, m).await.with_context(|| format!("{}:{}", w.repo, w.tag))?;
        }
        Ok(())
    }))
    .buffer_unordered(STREAMS)
    .collect()
    .await;
    for e in written.into_iter().filter_map(Result::err) {
        eprintln!("bare-copy: {e:#}");
        failed += 1;
    }
    let n = &ctx.n;
    println!(
        "bare-copy: {} tags, {} already present, {} blobs uploaded, {} mounted, {} present, {failed} failed",
        tags.len(),
        n.skipped.load(Ordering::Relaxed),
        n.uploaded.load(Ordering::Relaxed),
        n.mounted.load(Ordering::Relaxed),
        n.present.load(Ordering::Relaxed),
    );
    Ok(failed)
}

/// The work for one tag, or None when the destination already has the source's digest.
async fn plan_tag(ctx: &Ctx, repo: &str, tag: &str) -> Result<Option<Work>> {
    let src_digest = head_manifest(ctx, &ctx.src, repo, tag).await?.context("tag missing in source")?;
    if head_manifest(ctx, &ctx.dst, repo, tag).await?.as_deref() == Some(src_digest.as_str()) {
        return Ok(None);
    }
    let top = get_manifest(ctx, repo, tag).await?;
    let mut children = Vec::new();
    let parsed: Value = serde_json::from_slice(&top.bytes)?;
    for child in parsed["manifests"].as_array().into_iter().flatten() {
        let digest = child["digest"].as_str().context("index entry without digest")?;
        children.push(get_manifest(ctx, repo, digest).await?);
    }
    Ok(Some(Work { repo: repo.into(), tag: tag.into(), children, top }))
}

async fn head_manifest(ctx: &Ctx, base: &str, repo: &str, reference: &str) -> Result<Option<String>> {
    let r = ctx.http.head(format!("{base}/v2/{repo}/manifests/{reference}")).header("Accept", ACCEPT).send().await?;
    if r.status().as_u16() == 404 {
        return Ok(None);
    }
    let r = r.error_for_status()?;
    Ok(r.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(str::to_string))
}

async fn get_manifest(ctx: &Ctx, repo: &str, reference: &str) -> Result<Manifest> {
    let r = ctx
        .http
        .get(format!("{}/v2/{repo}/manifests/{reference}", ctx.src))
        .header("Accept", ACCEPT)
        .send()
        .await?
        .error_for_status()?;
    let media_type = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .context("manifest without content type")?
        .to_string();
    Ok(Manifest { reference: reference.into(), media_type, bytes: r.bytes().await?.to_vec() })
}

/// Config and layer descriptors of an image manifest (none for an index).
fn blob_refs(bytes: &[u8]) -> Result<Vec<(String, u64)>> {
    let v: Value = serde_json::from_slice(bytes)?;
    let mut out = Vec::new();
    for d in std::iter::once(&v["config"]).chain(v["layers"].as_array().into_iter().flatten()) {
        if let (Some(digest), Some(size)) = (d["digest"].as_str(), d["size"].as_u64()) {
            out.push((digest.to_string(), size));
        }
    }
    Ok(out)
}

/// Makes `digest` present in every repository of `repos`: streamed into the first, mounted
/// from there into the rest.
async fn place_blob(ctx: &Ctx, digest: &str, size: u64, repos: &[String]) -> Result<()> {
    let first = &repos[0];
    if blob_exists(ctx, first, digest).await? {
        ctx.n.present.fetch_add(1, Ordering::Relaxed);
    } else {
        let loc = start_upload(ctx, first, None).await?.context("upload not started")?;
        stream(ctx, first, digest, size, &loc).await?;
        ctx.n.uploaded.fetch_add(1, Ordering::Relaxed);
    }
    for repo in &repos[1..] {
        if blob_exists(ctx, repo, digest).await? {
            ctx.n.present.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match start_upload(ctx, repo, Some((digest, first))).await? {
            None => {
                ctx.n.mounted.fetch_add(1, Ordering::Relaxed);
            }
            // The registry declined the mount and opened an upload instead.
            Some(loc) => {
                stream(ctx, first, digest, size, &loc).await?;
                ctx.n.uploaded.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

async fn blob_exists(ctx: &Ctx, repo: &str, digest: &str) -> Result<bool> {
    let r = ctx.http.head(format!("{}/v2/{repo}/blobs/{digest}", ctx.dst)).send().await?;
    match r.status().as_u16() {
        200 => Ok(true),
        404 => Ok(false),
        s => bail!("HEAD blob {repo}@{digest}: {s}"),
    }
}

/// Opens an upload (or mounts, when `mount` names the digest and its repository): the
/// upload location, or None when the mount succeeded.
async fn start_upload(ctx: &Ctx, repo: &str, mount: Option<(&str, &str)>) -> Result<Option<String>> {
    let query = mount.map(|(d, from)| format!("?mount={d}&from={from}")).unwrap_or_default();
    let r = ctx.http.post(format!("{}/v2/{repo}/blobs/uploads/{query}", ctx.dst)).send().await?;
    match r.status().as_u16() {
        201 if mount.is_some() => Ok(None),
        202 => {
            let loc = r.headers().get("location").context("upload without location")?.to_str()?;
            Ok(Some(if loc.starts_with("http") { loc.to_string() } else { format!("{}{loc}", ctx.dst) }))
        }
        s => bail!("start upload to {repo}: {s}"),
    }
}

/// Streams the blob from the source's `src_repo` into the upload at `loc` in one PUT.
async fn stream(ctx: &Ctx, src_repo: &str, digest: &str, size: u64, loc: &str) -> Result<()> {
    let get = ctx.http.get(format!("{}/v2/{src_repo}/blobs/{digest}", ctx.src)).send().await?.error_for_status()?;
    let body = reqwest::Body::wrap_stream(get.bytes_stream().map_err(std::io::Error::other));
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = ctx
        .http
        .put(format!("{loc}{sep}digest={digest}"))
        .header("Content-Type", "application/octet-stream")
        .header("Content-Length", size)
        .body(body)
        .send()
        .await?;
    if r.status().as_u16() != 201 {
        bail!("PUT blob {digest}: {} {}", r.status(), r.text().await.unwrap_or_default());
    }
    Ok(())
}

async fn put_manifest(ctx: &Ctx, repo: &str, m: &Manifest) -> Result<()> {
    let r = ctx
        .http
        .put(format!("{}/v2/{repo}/manifests/{}", ctx.dst, m.reference))
        .header("Content-Type", &m.media_type)
        .body(m.bytes.clone())
        .send()
        .await?;
    if r.status().as_u16() != 201 {
        bail!("PUT manifest {}: {} {}", m.reference, r.status(), r.text().await.unwrap_or_default());
    }
    Ok(())
}
