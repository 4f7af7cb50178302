//! One image set's run in the background: plan, collect releases and catalogs, copy through
//! the shared cache, render. The reconcile loop starts it, polls its progress and reads its
//! result; it never blocks on it.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::{Semaphore, watch};

use super::archives;
use crate::api::status::{Counts, FailedImage, MAX_LISTED_FAILURES, Progress, ShardStatus};
use crate::api::{ImageSetConfiguration, validate};
use crate::cache::Cache;
use crate::copy::{Engine, Outcome, Progress as Counters};
use crate::pipeline::{self, Mode, Outputs, Planned, ReleaseSources, Request};
use crate::plan::Destination;
use crate::registry::{Client, ClientOptions, Slots};
use crate::render::CatalogTemplate;

/// What every run shares: the cache, the bound on concurrent copies, the runs under way.
pub struct Shared {
    /// The cache (one per operator, shared by every image set).
    pub cache: Arc<Cache>,
    /// The copy engine (one per operator, over the cache), so that single flight per blob
    /// and the bound on transfers hold across image sets.
    pub engine: Arc<Engine>,
    /// Request slots per registry, shared by every image set's client.
    pub registry_slots: Slots,
    /// Where releases come from (operator settings; an image set may name its graph URL).
    pub releases: ReleaseSources,
    /// Where working directories live (beside the cache).
    pub root: PathBuf,
    /// Where `file://` destinations write archives and `spec.from` reads them, one directory
    /// per namespace (`--archive-dir`); `None`: archives are refused.
    pub archives: Option<PathBuf>,
    /// One run at a time per archive directory (by its resolved path): parts are numbered from
    /// what is there, and an import must not see half of a run's parts.
    pub archive_locks: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
    /// Copies at once, across image sets.
    pub slots: Arc<Semaphore>,
    /// The slot image sets whose last run failed take turns on, so that a set retrying
    /// against a registry that is down never holds the others back.
    pub retry_slots: Arc<Semaphore>,
    /// Attempts per registry request after the first.
    pub retry_times: u32,
    /// Requests in flight per registry (shared through `registry_slots`; divided among a
    /// shard Job's pods).
    pub registry_requests: usize,
    /// How long a registry may send nothing before a request is abandoned.
    pub stall_timeout: std::time::Duration,
    /// How long a registry may fail every attempt before a run gives up on it.
    pub unreachable_after: std::time::Duration,
    /// Counters for `/metrics`.
    pub metrics: Arc<crate::admin::Metrics>,
    /// Runs by `namespace/name`.
    pub runs: Mutex<HashMap<String, Running>>,
    /// When each image set's last run ended.
    pub done: Mutex<HashMap<String, LastRun>>,
    /// How shard Jobs are run (`None`: `spec.shards` above 1 is refused).
    pub shards: Option<Arc<super::shards::ShardControl>>,
    /// Set when the operator shuts down: runs stopped then leave their shard Jobs running for
    /// the next leader; runs stopped otherwise (a spec change, a deleted image set) delete them.
    pub leaving: Arc<std::sync::atomic::AtomicBool>,
}

impl Shared {
    /// The lock of an archive directory (created on first use).
    fn archive_lock(&self, dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
        self.archive_locks.lock().expect("archive locks").entry(dir.to_path_buf()).or_default().clone()
    }
}

/// How an image set's last run ended.
#[derive(Clone, Copy, Debug)]
pub struct LastRun {
    /// The generation it ran for.
    pub generation: Option<i64>,
    /// When it ended.
    pub at: std::time::Instant,
    /// Runs in a row of this generation that ended incomplete (0: the last one was complete).
    pub failures: u32,
    /// The last run failed in a way that trying again unchanged cannot help.
    pub permanent: bool,
}

impl LastRun {
    /// The run after `last` (of the same generation) ended now, complete or not.
    pub fn after(last: Option<LastRun>, generation: Option<i64>, ok: bool) -> LastRun {
        let before = last.filter(|l| l.generation == generation).map_or(0, |l| l.failures);
        LastRun {
            generation,
            at: std::time::Instant::now(),
            failures: if ok { 0 } else { before + 1 },
            permanent: false,
        }
    }

    /// When the next run is due: `resync` after a complete run; after failures, `retry`
    /// doubled for each further failure in a row, up to 32 times `retry` or 30 minutes,
    /// whichever is longer.
    pub fn due(&self, resync: std::time::Duration, retry: std::time::Duration) -> std::time::Instant {
        let wait = if self.failures == 0 {
            resync
        } else {
            let cap = retry.saturating_mul(32).min(std::time::Duration::from_secs(1800)).max(retry);
            retry.saturating_mul(1 << (self.failures - 1).min(16)).min(cap)
        };
        self.at + wait
    }
}

/// A run under way.
pub struct Running {
    /// The generation it runs for.
    pub generation: Option<i64>,
    /// The run's counters once copying started (progress).
    pub counters: watch::Receiver<Option<Arc<Counters>>>,
    /// The task.
    pub handle: tokio::task::JoinHandle<Result<Finished, Failure>>,
    /// Turns true when the task has ended.
    pub ended: watch::Receiver<bool>,
    /// Each shard's status, when the run copies in shards.
    pub shards: Arc<Mutex<Vec<ShardStatus>>>,
    cancel: watch::Sender<bool>,
}

impl Running {
    /// Stops the run (the spec changed or the image set is going): copies in flight are
    /// dropped; what reached the cache stays, verified, for the next run.
    pub fn stop(&self) {
        let _ = self.cancel.send(true);
    }

    /// Images and bytes done so far.
    pub fn progress(&self) -> Option<Progress> {
        let p = self.counters.borrow().clone()?;
        use std::sync::atomic::Ordering::Relaxed;
        Some(Progress {
            images_done: p.done.load(Relaxed),
            images_total: p.total.load(Relaxed),
            bytes_done: p.bytes_placed.load(Relaxed),
            bytes_total: Some(p.bytes_needed.load(Relaxed)).filter(|n| *n > 0),
        })
    }
}

/// A finished run.
#[derive(Debug, Default)]
pub struct Finished {
    /// Digest of the copy plan.
    pub plan_digest: String,
    /// Counts by outcome.
    pub counts: Counts,
    /// Failures (bounded).
    pub failed: Vec<FailedImage>,
    /// Operators with a bundle not mirrored completely.
    pub incomplete_operators: Vec<String>,
    /// Parts that failed before copying (release collection).
    pub collection_failures: Vec<String>,
    /// The stable reason of the first of them (e.g. `ReleaseSignatureInvalid`).
    pub collection_reason: Option<&'static str>,
    /// Objects to apply.
    pub objects: Vec<Value>,
    /// A plan only (dry run): nothing was copied.
    pub dry_run: bool,
    /// The plan as oc-mirror's `mapping.txt` (dry runs).
    pub mapping: String,
    /// One line for conditions and events.
    pub summary: String,
    /// The shards it ran in (none: in process).
    pub shards: Vec<ShardStatus>,
}

/// Why a run ended without a report: a stable reason, what happened, and whether trying
/// again unchanged can help.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The `Degraded` reason.
    pub reason: &'static str,
    /// What went wrong.
    pub message: String,
    /// Whether a later run of the same spec may succeed.
    pub retryable: bool,
}

impl From<pipeline::Error> for Failure {
    fn from(e: pipeline::Error) -> Self {
        Failure { reason: e.reason(), message: e.to_string(), retryable: e.retryable() }
    }
}

impl Failure {
    fn other(reason: &'static str, message: impl std::fmt::Display) -> Self {
        Failure { reason, message: message.to_string(), retryable: true }
    }
}

/// The prefix of the names of an image set's cluster objects: its namespace and name, made
/// unique by a hash of `namespace/name`, so that `team-a/x` and `team/a-x` never share an
/// object. Pure.
pub fn naming_prefix(namespace: &str, name: &str) -> String {
    let hash = crate::image::manifest::sha256_digest(format!("{namespace}/{name}").as_bytes());
    let flat: String = format!("{namespace}-{name}").chars().take(40).collect();
    format!("{}-{}", flat.trim_end_matches(['-', '.']), &hash[7..15])
}

/// Where an image set's runs keep what the next run needs.
pub fn working_root(shared_root: &std::path::Path, key: &str) -> std::path::PathBuf {
    shared_root.join("runs").join(key.replace('/', "_"))
}

/// `namespace/name`.
pub fn key(isc: &ImageSetConfiguration) -> String {
    format!(
        "{}/{}",
        isc.metadata.namespace.as_deref().unwrap_or_default(),
        isc.metadata.name.as_deref().unwrap_or_default()
    )
}

/// Starts a run for the image set.
/// `access`: how the run reaches registries (from the image set's Secret and settings).
pub fn start(
    shared: &Arc<Shared>,
    isc: &ImageSetConfiguration,
    (access, templates): (ClientOptions, Vec<CatalogTemplate>),
    retrying: bool,
) -> Running {
    let (tx, rx) = watch::channel(None);
    let shared2 = shared.clone();
    let generation = isc.metadata.generation;
    let isc = isc.clone();
    // The pipeline's futures borrow across awaits in ways `spawn` cannot prove `Send`: the
    // run drives them on a blocking thread of the same runtime instead.
    let rt = tokio::runtime::Handle::current();
    let (cancel, mut cancelled) = watch::channel(false);
    let (ended_tx, ended) = watch::channel(false);
    let view: Arc<Mutex<Vec<ShardStatus>>> = Arc::default();
    let view2 = view.clone();
    let handle = tokio::task::spawn_blocking(move || {
        rt.block_on(async move {
            use std::sync::atomic::Ordering::Relaxed;
            let m = shared2.metrics.clone();
            m.runs_active.fetch_add(1, Relaxed);
            m.runs_queued.fetch_add(1, Relaxed);
            let mut queued = true;
            let work = async {
                let pool = if retrying { &shared2.retry_slots } else { &shared2.slots };
                let _permit = pool.clone().acquire_owned().await.map_err(|e| Failure::other("RunFailed", e))?;
                m.runs_queued.fetch_sub(1, Relaxed);
                queued = false;
                let started = std::time::Instant::now();
                let r = execute(&shared2, &isc, access, templates, (&tx, &view2)).await;
                m.run_seconds.observe(started.elapsed().as_secs_f64());
                // What this and earlier runs wrote is confirmed on disk in the background.
                shared2.cache.sync_in_background(std::time::Duration::ZERO);
                if let Some(p) = tx.borrow().as_ref() {
                    m.bytes_copied.fetch_add(p.bytes.load(Relaxed), Relaxed);
                }
                r
            };
            let r = tokio::select! {
                r = work => r,
                _ = cancelled.changed() => Err(Failure::other("RunCancelled", "run cancelled")),
            };
            if queued {
                m.runs_queued.fetch_sub(1, Relaxed);
            }
            m.runs_active.fetch_sub(1, Relaxed);
            let _ = ended_tx.send(true);
            r
        })
    });
    Running { generation, counters: rx, handle, ended, shards: view, cancel }
}

fn invalid(field: &str, e: &dyn std::fmt::Display) -> Failure {
    Failure { reason: "InvalidSpec", message: format!("{field}: {e}"), retryable: false }
}

/// The pipeline request of an image set: what its spec says, where the operator keeps its
/// working directory, and the operator's settings. Its archive directory (`file://`
/// destination, or `spec.from`) is resolved under `archives` (see [`archives::path`]), the only
/// I/O here.
pub fn request(
    shared_root: &Path,
    releases: &ReleaseSources,
    archives: Option<&Path>,
    isc: &ImageSetConfiguration,
) -> Result<Request, Failure> {
    let spec = &isc.spec;
    let destination = Destination::parse(&spec.destination).map_err(|e| invalid("spec.destination", &e))?;
    let k = key(isc);
    let (ns, name) = k.split_once('/').unwrap_or_default();
    let (mode, from, archive_dir) = match (&destination, &spec.from) {
        (Destination::Registry(_), None) => (Mode::MirrorToMirror, None, None),
        (Destination::Registry(_), Some(from)) => {
            (Mode::DiskToMirror, Some(archives::path(archives, ns, "spec.from", from, false)?), None)
        }
        (Destination::Disk, None) => {
            let dir = archives::path(archives, ns, "spec.destination", &spec.destination, true)?;
            (Mode::MirrorToDisk, None, Some(dir))
        }
        (Destination::Disk, Some(_)) => return Err(invalid("spec.from", &validate::FROM_NEEDS_REGISTRY)),
    };
    let root = working_root(shared_root, &k);
    let mut releases = releases.clone();
    if let Some(u) = &spec.update_url {
        releases.update_url = Some(u.clone());
    }
    Ok(Request {
        mode,
        destination,
        from,
        archive_dir,
        since: None,
        working_dir: root.join("working-dir"),
        requester: k.clone(),
        max_nested_paths: spec.max_nested_paths.unwrap_or(0),
        parallel_images: 8,
        parallel_layers: 5,
        releases,
        naming_prefix: naming_prefix(ns, name),
        // Only what the next run needs is kept on the volume: no oc-mirror files.
        outputs: Outputs { cluster_resources: false, error_log: false },
    })
}

/// An image set may not name the cache's own registry name (`localhost:55000`): what is
/// there is other image sets' rebuilt catalogs. Pure.
pub fn cache_name_refused(m: &crate::api::mirror::Mirror) -> Result<(), Failure> {
    let own = |r: &str| crate::image::ImageRef::parse(r).is_ok_and(|r| r.registry == crate::plan::DISK_ROOT);
    let named = m
        .additional_images
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("spec.mirror.additionalImages[{i}].name"), &a.name))
        .chain(
            m.operators.iter().enumerate().map(|(i, o)| (format!("spec.mirror.operators[{i}].catalog"), &o.catalog)),
        );
    for (field, r) in named {
        if own(r) {
            return Err(Failure {
                reason: "InvalidSpec",
                message: format!(
                    "{field}: {r}: {} is the name of the operator's cache; name the image's own registry",
                    crate::plan::DISK_ROOT
                ),
                retryable: false,
            });
        }
    }
    Ok(())
}

async fn execute(
    shared: &Shared,
    isc: &ImageSetConfiguration,
    mut opts: ClientOptions,
    templates: Vec<CatalogTemplate>,
    (tx, view): (&watch::Sender<Option<Arc<Counters>>>, &Mutex<Vec<ShardStatus>>),
) -> Result<Finished, Failure> {
    let spec = &isc.spec;
    let req = request(&shared.root, &shared.releases, shared.archives.as_deref(), isc)?;
    cache_name_refused(&spec.mirror)?;
    let shards = super::shards::wanted(shared.shards.as_deref(), isc)?;
    if shards > 1 && req.mode != Mode::MirrorToMirror {
        return Err(invalid("spec.shards", &validate::SHARDS_NEED_MIRROR_TO_MIRROR));
    }
    let archive = req.archive_dir.as_ref().or(req.from.as_ref());
    let _archive_turn = match archive {
        Some(dir) => Some(shared.archive_lock(dir).lock_owned().await),
        None => None,
    };
    if let Some(from) = &req.from {
        archives::take_signatures(from, &req.working_dir)
            .map_err(|e| Failure::other("ArchiveFailed", format!("spec.from: {e}")))?;
    }
    // The cache is shared by every namespace: what it holds is served to this image set only
    // once its own credentials have read it at the source.
    opts.prove_cached = true;
    opts.backoff.retries = shared.retry_times;
    opts.stall_timeout = shared.stall_timeout;
    opts.breaker_window = shared.unreachable_after;
    opts.slots = Some(shared.registry_slots.clone());
    opts.max_in_flight = shared.registry_requests;
    let access = opts.clone();
    let client = Arc::new(Client::new(opts).map_err(|e| Failure::other("AccessError", e))?);
    let namespace = isc.metadata.namespace.as_deref().unwrap_or_default();
    let mirror = archives::local_charts(shared.archives.as_deref(), namespace, &spec.mirror)?;
    let mut planned = pipeline::plan(&mirror, &req)?;
    planned.access = Some(access);
    planned.archive_size = spec.archive_size;
    planned.templates = templates;
    pipeline::collect(&req, &client, &shared.cache, &mut planned).await?;
    let plan_digest = planned.plan.digest();
    if spec.dry_run {
        let n = planned.plan.items.len();
        return Ok(Finished {
            plan_digest,
            counts: Counts { total: n as u64, ..Default::default() },
            dry_run: true,
            mapping: planned.plan.mapping_txt(),
            summary: format!(
                "{n} images planned ({} blocked); dry run: nothing copied{}",
                planned.plan.blocked.len(),
                warning_text(&planned.warnings)
            ),
            ..Default::default()
        });
    }
    let elsewhere = match &shared.shards {
        Some(ctl) if shards > 1 => {
            super::shards::copy(ctl, shared, isc, &req, (&planned, &plan_digest), client.clone(), shards, tx, view)
                .await?
        }
        _ => None,
    };
    let out = pipeline::copy::execute_after(&req, &mut planned, &shared.engine, client, Some(tx), elsewhere).await?;
    let mut f = finish(plan_digest, &planned, out);
    f.shards = view.lock().expect("shard view").clone();
    Ok(f)
}

/// Warnings for a condition message: the first five, and how many more.
fn warning_text(warnings: &[String]) -> String {
    let mut out: String = warnings.iter().take(5).map(|w| format!("; warning: {w}")).collect();
    if warnings.len() > 5 {
        out.push_str(&format!("; and {} more warnings", warnings.len() - 5));
    }
    out
}

fn finish(plan_digest: String, planned: &Planned, out: pipeline::copy::Report) -> Finished {
    let mut counts = Counts { total: out.results.len() as u64, ..Default::default() };
    let mut failed = Vec::new();
    let mut failed_origins = BTreeSet::new();
    for r in &out.results {
        match &r.outcome {
            Outcome::Copied => counts.copied += 1,
            Outcome::AlreadyPresent => counts.already_present += 1,
            Outcome::Failed { reason, message } => {
                if *reason == "BundleSkipped" {
                    counts.skipped += 1;
                } else {
                    counts.failed += 1;
                }
                failed_origins.insert(r.item.origin.clone());
                if failed.len() < MAX_LISTED_FAILURES {
                    failed.push(FailedImage {
                        source: r.item.source.clone(),
                        destination: r.item.destination.clone(),
                        reason: format!("{reason}: {message}"),
                    });
                }
            }
        }
    }
    let incomplete: BTreeSet<String> = planned
        .needs
        .iter()
        .filter(|n| failed_origins.contains(&n.image) || n.related.iter().any(|r| failed_origins.contains(r)))
        .map(|n| n.package.clone())
        .collect();
    let collection_failures: Vec<String> = planned.failures.iter().map(|(_, _, m)| m.clone()).collect();
    let collection_reason = planned.failures.first().map(|(_, r, _)| *r);
    let summary = format!(
        "{} images: {} copied, {} already present, {} failed, {} skipped{}{}",
        counts.total,
        counts.copied,
        counts.already_present,
        counts.failed,
        counts.skipped,
        collection_failures.first().map(|f| format!("; {f}")).unwrap_or_default(),
        warning_text(&planned.warnings)
    );
    Finished {
        plan_digest,
        counts,
        failed,
        incomplete_operators: incomplete.into_iter().collect(),
        collection_failures,
        collection_reason,
        objects: out.objects,
        dry_run: false,
        mapping: String::new(),
        summary,
        shards: Vec::new(),
    }
}
