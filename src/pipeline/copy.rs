//! The copy stage: the engine over the plan in three phases (bundles after their related
//! images, catalogs last), archives for mirror-to-disk, the cluster objects rendered from what
//! is at the destination, and oc-mirror's error log.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::error::Error;
use super::files::{io_err, write_atomic};
use super::planned::Planned;
use super::request::{Mode, Request};
use crate::cache::{Cache, archive};
use crate::copy::{Engine, ItemResult, Options, Outcome, Progress, Session, Source, Target};
use crate::image::manifest::Descriptor;
use crate::plan::{Destination, ImageKind};
use crate::registry::Client;
use crate::render::{self, Mirrored, Naming};

/// The cache directory under a cache root (`--cache-dir`, beside oc-mirror's own `.oc-mirror`;
/// the operator's volume).
pub const CACHE_SUBDIR: &str = ".imageset-operator/cache";

fn kind_label(k: ImageKind) -> (&'static str, i32) {
    match k {
        ImageKind::ReleaseContent | ImageKind::KubeVirt | ImageKind::Release | ImageKind::Graph => ("release", 2),
        ImageKind::OperatorRelatedImage | ImageKind::OperatorBundle | ImageKind::OperatorCatalog => ("operator", 4),
        ImageKind::Additional => ("additional", 8),
        ImageKind::Helm => ("helm", 16),
    }
}

/// The name under which the cache records what `requester`'s runs need (for `cache gc`).
pub fn refs_name(requester: &str) -> String {
    format!("cli-{}", &crate::image::manifest::sha256_digest(requester.as_bytes())[7..23])
}

/// Copies in three phases so that a bundle whose related images failed is skipped (and its
/// operator named), a catalog listing a bundle that was not copied is rebuilt without it
/// (`dest` and `max_nested` name the new copy), and catalogs go last, once what they refer to
/// is present. Returns the results and summary lines.
#[allow(clippy::too_many_arguments)]
async fn run_phases(
    engine: &Session<'_>,
    planned: &mut Planned,
    cache: &Cache,
    dest: &Destination,
    max_nested: u32,
    source: &Source,
    target: Target,
    done: Option<Vec<ItemResult>>,
) -> (Vec<ItemResult>, Vec<String>) {
    let items = &planned.plan.items;
    let first: Vec<_> = items.iter().filter(|i| i.kind < ImageKind::OperatorBundle).cloned().collect();
    let mut results = match done {
        Some(done) => in_plan_order(&first, done),
        None => engine.run(&first, source, target).await,
    };
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

/// `done` in the order of `items`; an item no result names fails (a shard that never
/// reported it).
fn in_plan_order(items: &[crate::plan::CopyItem], done: Vec<ItemResult>) -> Vec<ItemResult> {
    let mut by_item: BTreeMap<(String, String), ItemResult> =
        done.into_iter().map(|r| ((r.item.source.clone(), r.item.destination.clone()), r)).collect();
    items
        .iter()
        .map(|i| {
            by_item.remove(&(i.source.clone(), i.destination.clone())).unwrap_or_else(|| ItemResult {
                item: i.clone(),
                outcome: Outcome::Failed { reason: "ShardFailed", message: "no shard reported this image".into() },
                digest: None,
                media_type: None,
                contents: Vec::new(),
            })
        })
        .collect()
}

/// The images before bundles (releases, related, additional and chart images), copied
/// elsewhere (shard Jobs): their results, and every digest they need at the destination.
#[derive(Debug, Default)]
pub struct CopiedElsewhere {
    /// Per image (contents may be empty: `needed` has them).
    pub results: Vec<ItemResult>,
    /// Digests the images need (manifests and blobs), for the cache's records.
    pub needed: BTreeSet<String>,
}

/// What a copy run did.
pub struct Report {
    /// Summary lines.
    pub lines: Vec<String>,
    /// Per image.
    pub results: Vec<ItemResult>,
    /// Cluster objects rendered from what is at the destination (mirror-to-mirror and
    /// disk-to-mirror).
    pub objects: Vec<serde_json::Value>,
    /// Set when images (or collection) failed: the error `mirror` exits with.
    pub failure: Option<Error>,
}

/// Copies the plan through `engine` with `client`; `progress` (if given) receives the run's
/// progress counters as soon as they exist.
pub async fn execute(
    inv: &Request,
    planned: &mut Planned,
    engine: &Engine,
    client: Arc<Client>,
    progress_out: Option<&tokio::sync::watch::Sender<Option<Arc<Progress>>>>,
) -> Result<Report, Error> {
    execute_after(inv, planned, engine, client, progress_out, None).await
}

/// [`execute`], with the images before bundles already copied elsewhere (`elsewhere`): only
/// bundles, catalogs and charts are copied here, then everything is recorded and rendered as
/// one run.
pub async fn execute_after(
    inv: &Request,
    planned: &mut Planned,
    engine: &Engine,
    client: Arc<Client>,
    progress_out: Option<&tokio::sync::watch::Sender<Option<Arc<Progress>>>>,
    elsewhere: Option<CopiedElsewhere>,
) -> Result<Report, Error> {
    let (done, elsewhere_needed) = match elsewhere {
        Some(e) => (Some(e.results), e.needed),
        None => (None, BTreeSet::new()),
    };
    let Planned { archive_size, .. } = planned;
    let archive_size = *archive_size;
    let started = Instant::now();
    let cache = engine.cache();
    let cache_dir = cache.root().to_path_buf();
    let opts = Options { parallel_images: inv.parallel_images, parallel_layers: inv.parallel_layers };
    let session = engine.session(client, opts);
    let (source, target) = match inv.mode {
        Mode::MirrorToMirror => (Source::Registry, Target::Registry),
        Mode::MirrorToDisk => (Source::Registry, Target::Cache),
        Mode::DiskToMirror => {
            let from = inv.from.clone().unwrap_or_default();
            let images = match planned.archived.take() {
                Some(images) => images,
                None => tokio::task::block_in_place(|| archive::import(&from, cache))
                    .map_err(|e| Error::Archive(format!("reading archives: {e}")))?,
            };
            (Source::Archive(images), Target::Registry)
        }
    };
    if let Some(tx) = progress_out
        && done.is_none()
    {
        let _ = tx.send(Some(session.progress.clone()));
    }
    let ticker = tokio::spawn(progress(session.progress.clone(), session.shared_client()));
    let max_nested = inv.max_nested_paths;
    let (results, mut lines) =
        run_phases(&session, planned, cache, &inv.destination, max_nested, &source, target, done).await;
    ticker.abort();
    // Charts go after the images they deploy; mirror to disk archives them instead.
    let pushed = match inv.mode {
        Mode::MirrorToDisk => Vec::new(),
        _ => super::helm::push(&planned.charts, session.client(), cache).await,
    };
    let chart_failures: Vec<&String> = pushed.iter().filter_map(|p| p.as_ref().err()).collect();

    let mut needed: BTreeSet<String> =
        results.iter().flat_map(|r| r.contents.iter().map(|d| d.digest.clone())).collect();
    needed.extend(planned.charts.iter().flat_map(|c| c.blobs().map(|d| d.digest)));
    needed.extend(elsewhere_needed);
    cache.record_refs(&refs_name(&inv.requester), &needed).map_err(|e| Error::Setup(e.to_string()))?;
    let names: Vec<(String, String)> = results
        .iter()
        .filter_map(|r| Some((r.item.origin.trim_start_matches("docker://").to_string(), r.digest.clone()?)))
        .collect();
    cache.record_names(&names).map_err(|e| Error::Setup(e.to_string()))?;
    let failed: Vec<&ItemResult> = results.iter().filter(|r| matches!(r.outcome, Outcome::Failed { .. })).collect();
    if inv.mode != Mode::MirrorToDisk {
        write_record(inv, &results)?;
    }
    // Charts that failed are left out of an archive; they do not hold back the rest.
    let archived = inv.mode == Mode::MirrorToDisk
        && failed.is_empty()
        && planned.failures.iter().all(|(k, _, _)| *k == ImageKind::Helm);
    if archived {
        lines.extend(write_archives(inv, cache, &results, archive_size, planned)?);
    }
    let mut objects = Vec::new();
    if inv.mode != Mode::MirrorToDisk {
        let (l, o) = write_cluster_resources(inv, &results, planned)?;
        lines.extend(l);
        objects = o;
    }
    lines.push("=== Results ===".to_string());
    // One line per oc-mirror content type (release, operator, additional, helm), in its words.
    let labels: BTreeSet<(i32, &str)> = results.iter().map(|r| kind_label(r.item.kind)).map(|(l, b)| (b, l)).collect();
    for (_, label) in labels {
        let of_kind: Vec<&ItemResult> = results.iter().filter(|r| kind_label(r.item.kind).0 == label).collect();
        let ok = of_kind.iter().filter(|r| !matches!(r.outcome, Outcome::Failed { .. })).count();
        let present = of_kind.iter().filter(|r| r.outcome == Outcome::AlreadyPresent).count();
        let mark = if ok == of_kind.len() { "✓" } else { "✗" };
        let how = if ok == of_kind.len() {
            " successfully".to_string()
        } else {
            format!(": Some {label} images failed to be mirrored - please check the logs")
        };
        lines.push(format!("{mark} {ok} / {} {label} images mirrored{how} ({present} already present)", of_kind.len()));
    }
    lines.extend(super::helm::summary(&planned.charts, &pushed, archived));
    let counters = &session.client().counters;
    lines.push(format!(
        "{} blobs fetched ({} MB), {} MB uploaded, {} mounted, in {:.1}s; cache {}",
        counters.blob_gets.load(Ordering::Relaxed),
        counters.bytes_in.load(Ordering::Relaxed) / 1_000_000,
        counters.bytes_out.load(Ordering::Relaxed) / 1_000_000,
        counters.mounts.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
        cache_dir.display()
    ));
    if failed.is_empty() && planned.failures.is_empty() && chart_failures.is_empty() {
        return Ok(Report { lines, results, objects, failure: None });
    }
    let stamp = jiff::Zoned::now().strftime("%Y%m%d_%H%M%S").to_string();
    let log = inv.working_dir.join("logs").join(format!("mirroring_errors_{stamp}.txt"));
    let write_log = inv.outputs.error_log;
    let body: String = failed
        .iter()
        .map(|r| match &r.outcome {
            Outcome::Failed { message, .. } => format!("error mirroring image {} error: {message}\n", r.item.origin),
            _ => String::new(),
        })
        .chain(planned.failures.iter().map(|(_, _, m)| format!("error collecting {m}\n")))
        .chain(chart_failures.iter().map(|m| format!("error mirroring {m}\n")))
        .collect();
    if write_log {
        write_atomic(&log, body.as_bytes())?;
    }
    if inv.mode == Mode::MirrorToDisk && !archived {
        lines.push("no archive written: the run had errors (re-run to retry only what failed)".into());
    }
    let bits = failed
        .iter()
        .map(|r| kind_label(r.item.kind).1)
        .chain(planned.failures.iter().map(|(k, _, _)| kind_label(*k).1))
        .chain(chart_failures.iter().map(|_| kind_label(ImageKind::Helm).1))
        .fold(0, |a, b| a | b);
    let failed = failed.len() + planned.failures.len() + chart_failures.len();
    let failure = Error::CopyFailed { failed, total: results.len() + planned.charts.len(), log, bits };
    Ok(Report { lines, results, objects, failure: Some(failure) })
}

/// Records in the working directory what the run left at the destination, digest by
/// digest, so that a delete knows what this image set needs there.
fn write_record(inv: &Request, results: &[ItemResult]) -> Result<(), Error> {
    use super::delete::{RECORD_FILE, Record, RecordedImage};
    let mut images: Vec<RecordedImage> = results
        .iter()
        .filter(|r| !matches!(r.outcome, Outcome::Failed { .. }))
        .filter_map(|r| {
            let reference = r.item.destination.trim_start_matches("docker://").to_string();
            Some(RecordedImage { reference, digest: r.digest.clone()? })
        })
        .collect();
    images.sort_by(|a, b| a.reference.cmp(&b.reference));
    let destination = match &inv.destination {
        Destination::Registry(r) => format!("docker://{r}"),
        Destination::Disk => String::new(),
    };
    let body = serde_json::to_vec(&Record { destination, images }).expect("a record serialises");
    write_atomic(&inv.working_dir.join(RECORD_FILE), &body)
}

/// Writes `working-dir/cluster-resources/` from what the run left at the destination.
fn write_cluster_resources(
    inv: &Request,
    results: &[ItemResult],
    planned: &Planned,
) -> Result<(Vec<String>, Vec<serde_json::Value>), Error> {
    let (templates, signatures) = (&planned.templates, &planned.signatures);
    let mirrored = Mirrored::from_report(results);
    let naming = Naming { prefix: inv.naming_prefix.clone(), max_nested_paths: inv.max_nested_paths };
    // Signatures only of payloads that are at their destination.
    let signatures: BTreeMap<String, Vec<Vec<u8>>> = signatures
        .iter()
        .filter(|(d, _)| mirrored.iter().any(|m| m.kind == ImageKind::Release && &m.digest == *d))
        .map(|(d, s)| (d.clone(), s.clone()))
        .collect();
    let objects = render::all(&mirrored, templates, &signatures, &naming).map_err(|e| Error::Setup(e.to_string()))?;
    if !inv.outputs.cluster_resources {
        return Ok((vec![], objects));
    }
    let dir = inv.working_dir.join("cluster-resources");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    let files = render::files(&objects);
    for (name, text) in &files {
        write_atomic(&dir.join(name), text.as_bytes())?;
    }
    if files.is_empty() {
        return Ok((vec![], objects));
    }
    // oc-mirror's line per file, which scripts grep for.
    let lines = files.iter().map(|(n, _)| format!("{} file created", dir.join(n).display())).collect();
    Ok((lines, objects))
}

/// Logs images done of total, blob bytes in place of those needed, and the transfer rate
/// over the last interval, every few seconds.
async fn progress(p: Arc<Progress>, client: Arc<Client>) {
    let c = &client.counters;
    const EVERY: Duration = Duration::from_secs(5);
    let mut tick = tokio::time::interval(EVERY);
    tick.tick().await;
    let moved = || {
        // A streamed copy counts its bytes both ways; from or to disk, one way only.
        c.bytes_in.load(Ordering::Relaxed).max(c.bytes_out.load(Ordering::Relaxed))
    };
    let mut last = (Instant::now(), moved());
    loop {
        tick.tick().await;
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

/// The update graphs this run kept (`working-dir/hold-release/cincinnati-graph-data`), by file
/// name.
fn kept_graphs(working_dir: &std::path::Path) -> Result<BTreeMap<String, String>, Error> {
    let dir = working_dir.join(crate::release::KEPT_GRAPHS);
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(&dir) else { return Ok(out) };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.ends_with(".json") && e.path().is_file() {
            let text = std::fs::read_to_string(e.path()).map_err(io_err(&e.path()))?;
            out.insert(name, text);
        }
    }
    Ok(out)
}

/// Mirror-to-disk: blobs not in the newest history (or the newest before `--since`) go into
/// new `mirror_NNNNNN.tar` parts in the destination directory, with the run's verified release
/// signatures; the history grows.
fn write_archives(
    inv: &Request,
    cache: &Cache,
    results: &[ItemResult],
    archive_size: Option<i64>,
    planned: &Planned,
) -> Result<Vec<String>, Error> {
    use base64::Engine as _;
    let dir = inv.archive_dir.clone().unwrap_or_default();
    let signatures: Vec<archive::ArchivedSignature> = planned
        .signatures
        .iter()
        .flat_map(|(digest, sigs)| {
            sigs.iter().map(|s| archive::ArchivedSignature {
                digest: digest.clone(),
                signature: base64::engine::general_purpose::STANDARD.encode(s),
            })
        })
        .collect();
    let history_dir = inv.working_dir.join(".history");
    let archived = read_history(&history_dir, inv.since.as_deref())?;
    let mut images: Vec<archive::ArchivedImage> = results
        .iter()
        .map(|r| archive::ArchivedImage {
            name: r.item.destination.trim_start_matches("docker://").to_string(),
            origin: r.item.origin.clone(),
            digest: r.digest.clone().unwrap_or_default(),
            media_type: r.media_type.clone().unwrap_or_default(),
            kind: Some(r.item.kind),
        })
        .collect();
    // Charts travel as the OCI artifacts they are pushed as (see `helm::archived`).
    let (charts, chart_blobs) = super::helm::archived(&planned.charts);
    images.extend(charts);
    // One entry per digest (a blob may be named by several images).
    let all: BTreeMap<&str, &Descriptor> = results
        .iter()
        .flat_map(|r| r.contents.iter())
        .chain(chart_blobs.iter())
        .map(|d| (d.digest.as_str(), d))
        .collect();
    let new: Vec<Descriptor> = all.values().filter(|d| !archived.contains(&d.digest)).map(|d| (*d).clone()).collect();
    let already = all.len() - new.len();
    let gib = archive_size.filter(|s| *s > 0).unwrap_or(500) as u64;
    let graphs = if planned.platform.is_some() { kept_graphs(&inv.working_dir)? } else { BTreeMap::new() };
    let written =
        tokio::task::block_in_place(|| archive::write(&dir, cache, (&images, &signatures, &graphs), &new, gib << 30))
            .map_err(|e| Error::Archive(format!("writing archives: {e}")))?;
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

fn read_history(dir: &Path, since: Option<&str>) -> Result<BTreeSet<String>, Error> {
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
    let text = std::fs::read_to_string(&p).map_err(io_err(&p))?;
    Ok(text.lines().filter(|l| !l.is_empty()).map(str::to_string).collect())
}
