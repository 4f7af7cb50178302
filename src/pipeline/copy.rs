//! The copy half of `mirror`: registry client and cache from flags, the engine over the plan,
//! archives for mirror-to-disk, and oc-mirror's error log and results summary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::mirror::{Invocation, Mode, Planned};
use super::{CliError, write_atomic};
use crate::cache::{Cache, archive};
use crate::cli::{Env, MirrorArgs};
use crate::copy::{Engine, ItemResult, Options, Outcome, Source, Target};
use crate::image::ImageRef;
use crate::image::manifest::Descriptor;
use crate::plan::{CopyPlan, Destination, ImageKind};
use crate::registry::{Client, ClientOptions, DockerAuth};
use crate::render::{self, Mirrored, Naming};

/// The cache directory under `--cache-dir` (beside oc-mirror's own `.oc-mirror`).
pub const CACHE_SUBDIR: &str = ".imageset-operator/cache";

/// Reads credentials: `--authfile`, else `REGISTRY_AUTH_FILE`, else `~/.docker/config.json`.
pub fn credentials(authfile: Option<&Path>, env: &Env) -> Result<DockerAuth, CliError> {
    let explicit = authfile.map(Path::to_path_buf).or_else(|| env.registry_auth_file.clone());
    let path = match explicit {
        Some(p) => p,
        None => match env.home.as_ref().map(|h| h.join(".docker/config.json")).filter(|p| p.is_file()) {
            Some(p) => p,
            None => return Ok(DockerAuth::default()),
        },
    };
    let bytes = std::fs::read(&path).map_err(|e| CliError::Setup(format!("{}: {e}", path.display())))?;
    DockerAuth::parse(&bytes).map_err(|e| CliError::Setup(format!("{}: {e}", path.display())))
}

/// Client options for a run: the hosts marked insecure by the TLS flags (sources are the
/// plan's sources and the catalogs), credentials, CAs.
fn client_options(
    args: &MirrorArgs,
    env: &Env,
    plan: &CopyPlan,
    catalogs: &[String],
    dest: &Destination,
) -> Result<ClientOptions, CliError> {
    let c = &args.common;
    let mut insecure = BTreeSet::new();
    let sources = plan.items.iter().map(|i| i.source.as_str()).chain(catalogs.iter().map(String::as_str));
    for source in sources {
        if let (false, Ok(r)) = (c.src_tls_verify, ImageRef::parse(source)) {
            insecure.insert(r.registry);
        }
    }
    for item in &plan.items {
        if let (false, Ok(r)) = (c.dest_tls_verify, ImageRef::parse(&item.destination)) {
            insecure.insert(r.registry);
        }
    }
    // Catalog and release collection add items after the client exists: the destination host
    // counts too, and with --src-tls-verify=false so does every source host found later.
    let dest_host = match dest {
        Destination::Registry(root) => Some(root.split('/').next().unwrap_or_default().to_string()),
        Destination::Disk => None,
    };
    if let (false, Some(h)) = (c.dest_tls_verify, &dest_host) {
        insecure.insert(h.clone());
    }
    let mut verified = Vec::new();
    if !c.src_tls_verify {
        insecure.insert("*".to_string());
        if c.dest_tls_verify {
            verified.extend(dest_host);
        }
    }
    let mut ca_pems = Vec::new();
    for p in &c.registry_ca {
        ca_pems.push(std::fs::read(p).map_err(|e| CliError::Setup(format!("{}: {e}", p.display())))?);
    }
    Ok(ClientOptions {
        insecure: insecure.into_iter().collect(),
        verified,
        ca_pems,
        auth: credentials(c.authfile.as_deref(), env)?,
        backoff: crate::registry::Backoff { retries: c.retry_times, ..Default::default() },
        stall_timeout: Duration::from_secs(c.stall_timeout),
        breaker_window: Duration::from_secs(c.unreachable_after),
        ..Default::default()
    })
}

fn kind_label(k: ImageKind) -> (&'static str, i32) {
    match k {
        ImageKind::ReleaseContent | ImageKind::KubeVirt | ImageKind::Release | ImageKind::Graph => ("release", 2),
        ImageKind::OperatorRelatedImage | ImageKind::OperatorBundle | ImageKind::OperatorCatalog => ("operator", 4),
        ImageKind::Additional => ("additional", 8),
        ImageKind::Helm => ("helm", 16),
    }
}

/// The registry client for a run.
pub fn open_client(inv: &Invocation, args: &MirrorArgs, env: &Env, planned: &Planned) -> Result<Arc<Client>, CliError> {
    let catalogs: Vec<String> = planned.operators.iter().map(|o| o.catalog.clone()).collect();
    let opts = client_options(args, env, &planned.plan, &catalogs, &inv.destination)?;
    Ok(Arc::new(Client::new(opts).map_err(|e| CliError::Setup(e.to_string()))?))
}

/// The cache for a run (created if missing).
pub fn open_cache(inv: &Invocation, args: &MirrorArgs) -> Result<Arc<Cache>, CliError> {
    let cache = Cache::open(&inv.cache_dir.join(CACHE_SUBDIR)).map_err(|e| CliError::Setup(e.to_string()))?;
    let cache = Arc::new(if args.common.no_cache_fsync { cache.without_fsync() } else { cache });
    // What earlier runs wrote (long written back by the kernel) is confirmed on disk while
    // this run works, so the journal's marker moves on.
    cache.sync_in_background(std::time::Duration::from_secs(120));
    Ok(cache)
}

/// Copies in three phases so that a bundle whose related images failed is skipped (and its
/// operator named), a catalog listing a bundle that was not copied is rebuilt without it
/// (`dest` and `max_nested` name the new copy), and catalogs go last, once what they refer to
/// is present. Returns the results and summary lines.
async fn run_phases(
    engine: &Engine,
    planned: &mut Planned,
    cache: &Cache,
    dest: &Destination,
    max_nested: u32,
    source: &Source,
    target: Target,
) -> (Vec<ItemResult>, Vec<String>) {
    let items = &planned.plan.items;
    let first: Vec<_> = items.iter().filter(|i| i.kind < ImageKind::OperatorBundle).cloned().collect();
    let mut results = engine.run(&first, source, target).await;
    let failed: BTreeSet<String> =
        results.iter().filter(|r| matches!(r.outcome, Outcome::Failed { .. })).map(|r| r.item.origin.clone()).collect();
    let mut skip: BTreeMap<String, String> = BTreeMap::new();
    for n in &planned.needs {
        if let Some(bad) = n.related.iter().find(|r| failed.contains(r.as_str())) {
            skip.entry(n.image.clone()).or_insert_with(|| {
                format!("bundle {} of operator {} skipped: its related image {bad} failed", n.bundle, n.package)
            });
        }
    }
    let bundles: Vec<_> = items
        .iter()
        .filter(|i| i.kind == ImageKind::OperatorBundle && !skip.contains_key(&i.origin))
        .cloned()
        .collect();
    let mut skipped: Vec<ItemResult> = items
        .iter()
        .filter_map(|i| {
            let message = skip.get(&i.origin)?.clone();
            (i.kind == ImageKind::OperatorBundle).then(|| ItemResult {
                item: i.clone(),
                outcome: Outcome::Failed { reason: "BundleSkipped", message },
                digest: None,
                media_type: None,
                contents: Vec::new(),
            })
        })
        .collect();
    results.extend(engine.run(&bundles, source, target).await);
    results.append(&mut skipped);
    // Bundles not at the destination (skipped, or their own copy failed) leave their catalogs.
    let not_copied: BTreeSet<&str> = results
        .iter()
        .filter(|r| r.item.kind == ImageKind::OperatorBundle && matches!(r.outcome, Outcome::Failed { .. }))
        .map(|r| r.item.origin.as_str())
        .collect();
    let mut gone: BTreeMap<usize, BTreeSet<(String, String)>> = BTreeMap::new();
    for n in &planned.needs {
        if (!n.image.is_empty() && not_copied.contains(n.image.as_str()))
            || n.related.iter().any(|r| failed.contains(r))
        {
            gone.entry(n.catalog).or_default().insert((n.package.clone(), n.bundle.clone()));
        }
    }
    let (lines, unbuilt) = super::operators::rebuild_without(planned, &gone, cache, dest, max_nested);
    results.extend(unbuilt.into_iter().map(|(item, message)| ItemResult {
        item,
        outcome: Outcome::Failed { reason: "CatalogRebuildFailed", message },
        digest: None,
        media_type: None,
        contents: Vec::new(),
    }));
    let rest: Vec<_> = planned.plan.items.iter().filter(|i| i.kind > ImageKind::OperatorBundle).cloned().collect();
    results.extend(engine.run(&rest, source, target).await);
    (results, lines)
}

/// Copies the plan for the invocation; returns summary lines, or the copy error after
/// printing them.
pub async fn run(
    inv: &Invocation,
    args: &MirrorArgs,
    planned: &mut Planned,
    client: Arc<Client>,
    cache: Arc<Cache>,
) -> Result<Vec<String>, CliError> {
    let o = execute(inv, args, planned, client, cache, None).await?;
    match o.failure {
        None => Ok(o.lines),
        Some(e) => {
            for l in &o.lines {
                println!("{l}");
            }
            Err(e)
        }
    }
}

/// What a copy run did.
pub struct RunOutcome {
    /// Summary lines.
    pub lines: Vec<String>,
    /// Per image.
    pub results: Vec<ItemResult>,
    /// Cluster objects rendered from what is at the destination (mirror-to-mirror and
    /// disk-to-mirror).
    pub objects: Vec<serde_json::Value>,
    /// Set when images (or collection) failed: the error `mirror` exits with.
    pub failure: Option<CliError>,
}

/// Copies the plan; `engine` (if given) receives the engine as soon as it exists, for
/// progress.
pub async fn execute(
    inv: &Invocation,
    args: &MirrorArgs,
    planned: &mut Planned,
    client: Arc<Client>,
    cache: Arc<Cache>,
    engine_out: Option<&tokio::sync::watch::Sender<Option<Arc<Engine>>>>,
) -> Result<RunOutcome, CliError> {
    let Planned { archive_size, .. } = planned;
    let archive_size = *archive_size;
    let started = Instant::now();
    let cache_dir = cache.root().to_path_buf();
    let opts = Options {
        parallel_images: args.common.parallel_images as usize,
        parallel_layers: args.common.parallel_layers as usize,
    };
    let engine = Arc::new(Engine::new(client, cache.clone(), opts));
    let (source, target) = match inv.mode {
        Mode::MirrorToMirror => (Source::Registry, Target::Registry),
        Mode::MirrorToDisk => (Source::Registry, Target::Cache),
        Mode::DiskToMirror => {
            let from = PathBuf::from(args.from.as_deref().unwrap_or_default().trim_start_matches("file://"));
            let c = cache.clone();
            let images = tokio::task::spawn_blocking(move || archive::import(&from, &c))
                .await
                .map_err(|e| CliError::Setup(e.to_string()))?
                .map_err(|e| CliError::Setup(format!("reading archives: {e}")))?;
            (Source::Archive(images), Target::Registry)
        }
    };
    if let Some(tx) = engine_out {
        let _ = tx.send(Some(engine.clone()));
    }
    let ticker = tokio::spawn(progress(engine.clone()));
    let max_nested = args.common.max_nested_paths;
    let (results, mut lines) =
        run_phases(&engine, planned, &cache, &inv.destination, max_nested, &source, target).await;
    ticker.abort();

    let needed: BTreeSet<String> = results.iter().flat_map(|r| r.contents.iter().map(|d| d.digest.clone())).collect();
    let refs_name =
        format!("cli-{}", &crate::image::manifest::sha256_digest(inv.config.to_string_lossy().as_bytes())[7..23]);
    cache.record_refs(&refs_name, &needed).map_err(|e| CliError::Setup(e.to_string()))?;
    let names: Vec<(String, String)> = results
        .iter()
        .filter_map(|r| Some((r.item.origin.trim_start_matches("docker://").to_string(), r.digest.clone()?)))
        .collect();
    cache.record_names(&names).map_err(|e| CliError::Setup(e.to_string()))?;
    let failed: Vec<&ItemResult> = results.iter().filter(|r| matches!(r.outcome, Outcome::Failed { .. })).collect();
    if inv.mode == Mode::MirrorToDisk && failed.is_empty() && planned.failures.is_empty() {
        lines.extend(write_archives(inv, args, &cache, &results, archive_size).await?);
    }
    let mut objects = Vec::new();
    if inv.mode != Mode::MirrorToDisk {
        let (l, o) = write_cluster_resources(inv, args, &results, planned)?;
        lines.extend(l);
        objects = o;
    }
    lines.push("=== Results ===".to_string());
    let kinds: BTreeSet<ImageKind> = results.iter().map(|r| r.item.kind).collect();
    for kind in kinds {
        let of_kind: Vec<&ItemResult> = results.iter().filter(|r| r.item.kind == kind).collect();
        let ok = of_kind.iter().filter(|r| !matches!(r.outcome, Outcome::Failed { .. })).count();
        let present = of_kind.iter().filter(|r| r.outcome == Outcome::AlreadyPresent).count();
        let (label, _) = kind_label(kind);
        let mark = if ok == of_kind.len() { "✓" } else { "✗" };
        lines.push(format!(
            "{mark} {ok} / {} {label} images mirrored{} ({present} already present)",
            of_kind.len(),
            if ok == of_kind.len() { " successfully" } else { ": some failed, see the error log" }
        ));
    }
    let counters = &engine.client().counters;
    lines.push(format!(
        "{} blobs fetched ({} MB), {} MB uploaded, {} mounted, in {:.1}s; cache {}",
        counters.blob_gets.load(Ordering::Relaxed),
        counters.bytes_in.load(Ordering::Relaxed) / 1_000_000,
        counters.bytes_out.load(Ordering::Relaxed) / 1_000_000,
        counters.mounts.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        cache_dir.display()
    ));
    if failed.is_empty() && planned.failures.is_empty() {
        return Ok(RunOutcome { lines, results, objects, failure: None });
    }
    let stamp = jiff::Zoned::now().strftime("%Y%m%d_%H%M%S").to_string();
    let log = inv.working_dir.join("logs").join(format!("mirroring_errors_{stamp}.txt"));
    let body: String = failed
        .iter()
        .map(|r| match &r.outcome {
            Outcome::Failed { message, .. } => format!("error mirroring image {} error: {message}\n", r.item.origin),
            _ => String::new(),
        })
        .chain(planned.failures.iter().map(|(_, m)| format!("error collecting {m}\n")))
        .collect();
    write_atomic(&log, body.as_bytes())?;
    if inv.mode == Mode::MirrorToDisk {
        lines.push("no archive written: the run had errors (re-run to retry only what failed)".into());
    }
    let bits = failed
        .iter()
        .map(|r| kind_label(r.item.kind).1)
        .chain(planned.failures.iter().map(|(k, _)| kind_label(*k).1))
        .fold(0, |a, b| a | b);
    let failure =
        CliError::CopyFailed { failed: failed.len() + planned.failures.len(), total: results.len(), log, bits };
    Ok(RunOutcome { lines, results, objects, failure: Some(failure) })
}

/// Writes `working-dir/cluster-resources/` from what the run left at the destination.
fn write_cluster_resources(
    inv: &Invocation,
    args: &MirrorArgs,
    results: &[ItemResult],
    planned: &Planned,
) -> Result<(Vec<String>, Vec<serde_json::Value>), CliError> {
    let (templates, signatures) = (&planned.templates, &planned.signatures);
    let mirrored = Mirrored::from_report(results);
    let naming = Naming { prefix: planned.naming_prefix.clone(), max_nested_paths: args.common.max_nested_paths };
    // Signatures only of payloads that are at their destination.
    let signatures: BTreeMap<String, Vec<Vec<u8>>> = signatures
        .iter()
        .filter(|(d, _)| mirrored.iter().any(|m| m.kind == ImageKind::Release && &m.digest == *d))
        .map(|(d, s)| (d.clone(), s.clone()))
        .collect();
    let objects =
        render::all(&mirrored, templates, &signatures, &naming).map_err(|e| CliError::Setup(e.to_string()))?;
    let dir = inv.working_dir.join("cluster-resources");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(super::io_err(&dir))?;
    }
    let files = render::files(&objects);
    for (name, text) in &files {
        write_atomic(&dir.join(name), text.as_bytes())?;
    }
    if files.is_empty() {
        return Ok((vec![], objects));
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    Ok((vec![format!("cluster resources written to {}: {}", dir.display(), names.join(", "))], objects))
}

/// Logs images done of total, blob bytes in place of those needed, and the transfer rate
/// over the last interval, every few seconds.
async fn progress(engine: Arc<Engine>) {
    const EVERY: Duration = Duration::from_secs(5);
    let mut tick = tokio::time::interval(EVERY);
    tick.tick().await;
    let moved = || {
        let c = &engine.client().counters;
        // A streamed copy counts its bytes both ways; from or to disk, one way only.
        c.bytes_in.load(Ordering::Relaxed).max(c.bytes_out.load(Ordering::Relaxed))
    };
    let mut last = (Instant::now(), moved());
    loop {
        tick.tick().await;
        let p = &engine.progress;
        let now = (Instant::now(), moved());
        let rate = (now.1 - last.1) as f64 / now.0.duration_since(last.0).as_secs_f64().max(0.001);
        last = now;
        tracing::info!(
            images = %format!("{}/{}", p.done.load(Ordering::Relaxed), p.total.load(Ordering::Relaxed)),
            blobs = %crate::copy::bytes_of(p.bytes_placed.load(Ordering::Relaxed), p.bytes_needed.load(Ordering::Relaxed)),
            rate = %format!("{:.0} MB/s", rate / 1e6),
            "progress"
        );
    }
}

/// Mirror-to-disk: blobs not in the newest history (or the newest before `--since`) go into
/// new `mirror_NNNNNN.tar` parts in the destination directory; the history grows.
async fn write_archives(
    inv: &Invocation,
    args: &MirrorArgs,
    cache: &Arc<Cache>,
    results: &[ItemResult],
    archive_size: Option<i64>,
) -> Result<Vec<String>, CliError> {
    let dir = PathBuf::from(args.destination.as_deref().unwrap_or_default().trim_start_matches("file://"));
    let history_dir = inv.working_dir.join(".history");
    let archived = read_history(&history_dir, args.since.as_deref())?;
    let images: Vec<archive::ArchivedImage> = results
        .iter()
        .map(|r| archive::ArchivedImage {
            name: r.item.destination.trim_start_matches("docker://").to_string(),
            origin: r.item.origin.clone(),
            digest: r.digest.clone().unwrap_or_default(),
            media_type: r.media_type.clone().unwrap_or_default(),
            kind: Some(r.item.kind),
        })
        .collect();
    // One entry per digest (a blob may be named by several images).
    let all: BTreeMap<&str, &Descriptor> =
        results.iter().flat_map(|r| r.contents.iter().map(|d| (d.digest.as_str(), d))).collect();
    let new: Vec<Descriptor> = all.values().filter(|d| !archived.contains(&d.digest)).map(|d| (*d).clone()).collect();
    let already = all.len() - new.len();
    let gib = archive_size.filter(|s| *s > 0).unwrap_or(500) as u64;
    let (c, d, n) = (cache.clone(), dir.clone(), new.clone());
    let written = tokio::task::spawn_blocking(move || archive::write(&d, &c, &images, &n, gib << 30))
        .await
        .map_err(|e| CliError::Setup(e.to_string()))?
        .map_err(|e| CliError::Setup(format!("writing archives: {e}")))?;
    let mut history: BTreeSet<String> = archived;
    history.extend(all.into_keys().map(str::to_string));
    let stamp = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let body: String = history.iter().map(|d| format!("{d}\n")).collect();
    write_atomic(&history_dir.join(format!(".history-{stamp}")), body.as_bytes())?;
    let bytes: u64 = new.iter().map(|d| d.size).sum();
    let mut lines: Vec<String> = written.iter().map(|p| format!("archive written: {}", p.display())).collect();
    lines.push(format!(
        "{} new blobs ({} MB) archived; {} already in earlier archives",
        new.len(),
        bytes / 1_000_000,
        already
    ));
    Ok(lines)
}

fn read_history(dir: &Path, since: Option<&str>) -> Result<BTreeSet<String>, CliError> {
    let mut files: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| n.starts_with(".history-")).collect()
        }
        Err(_) => return Ok(BTreeSet::new()),
    };
    files.sort();
    if let Some(since) = since {
        files.retain(|f| f[".history-".len()..].get(..10).is_some_and(|d| d < since));
    }
    let Some(newest) = files.last() else { return Ok(BTreeSet::new()) };
    let p = dir.join(newest);
    let text = std::fs::read_to_string(&p).map_err(super::io_err(&p))?;
    Ok(text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect())
}
