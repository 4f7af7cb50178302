//! One image set's run in the background: plan, collect releases and catalogs, copy through
//! the shared cache, render. The reconcile loop starts it, polls its progress and reads its
//! result; it never blocks on it.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Parser as _;
use serde_json::Value;
use tokio::sync::{Semaphore, watch};

use crate::api::ImageSetConfiguration;
use crate::api::status::{Counts, FailedImage, MAX_LISTED_FAILURES, Progress};
use crate::cache::Cache;
use crate::commands::mirror::{Invocation, Mode};
use crate::commands::{copy, mirror};
use crate::copy::{Engine, Outcome};
use crate::plan::Destination;
use crate::registry::{Client, ClientOptions};
use crate::render::CatalogTemplate;

/// What every run shares: the cache, the bound on concurrent copies, the runs under way.
pub struct Shared {
    /// The cache (one per operator, shared by every image set).
    pub cache: Arc<Cache>,
    /// Where working directories live (beside the cache).
    pub root: PathBuf,
    /// Copies at once, across image sets.
    pub slots: Arc<Semaphore>,
    /// The slot image sets whose last run failed take turns on, so that a set retrying
    /// against a registry that is down never holds the others back.
    pub retry_slots: Arc<Semaphore>,
    /// Attempts per registry request after the first.
    pub retry_times: u32,
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
}

impl LastRun {
    /// The run after `last` (of the same generation) ended now, complete or not.
    pub fn after(last: Option<LastRun>, generation: Option<i64>, ok: bool) -> LastRun {
        let before = last.filter(|l| l.generation == generation).map_or(0, |l| l.failures);
        LastRun { generation, at: std::time::Instant::now(), failures: if ok { 0 } else { before + 1 } }
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
    /// The engine once copying started (progress).
    pub engine: watch::Receiver<Option<Arc<Engine>>>,
    /// The task.
    pub handle: tokio::task::JoinHandle<Result<Finished, String>>,
    /// Turns true when the task has ended.
    pub ended: watch::Receiver<bool>,
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
        let e = self.engine.borrow().clone()?;
        let p = &e.progress;
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
    /// Objects to apply.
    pub objects: Vec<Value>,
    /// A plan only (dry run): nothing was copied.
    pub dry_run: bool,
    /// The plan as oc-mirror's `mapping.txt` (dry runs).
    pub mapping: String,
    /// One line for conditions and events.
    pub summary: String,
}

/// `namespace/name`.
pub fn key(isc: &ImageSetConfiguration) -> String {
    format!(
        "{}/{}",
        isc.metadata.namespace.as_deref().unwrap_or_default(),
        isc.metadata.name.as_deref().unwrap_or_default()
    )
}

#[derive(clap::Parser)]
struct Flags {
    #[command(flatten)]
    args: crate::cli::MirrorArgs,
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
    let handle = tokio::task::spawn_blocking(move || {
        rt.block_on(async move {
            use std::sync::atomic::Ordering::Relaxed;
            let m = shared2.metrics.clone();
            m.runs_active.fetch_add(1, Relaxed);
            m.runs_queued.fetch_add(1, Relaxed);
            let mut queued = true;
            let work = async {
                let pool = if retrying { &shared2.retry_slots } else { &shared2.slots };
                let _permit = pool.clone().acquire_owned().await.map_err(|e| e.to_string())?;
                m.runs_queued.fetch_sub(1, Relaxed);
                queued = false;
                let r = execute(&shared2, &isc, access, templates, &tx).await;
                // What this and earlier runs wrote is confirmed on disk in the background.
                shared2.cache.sync_in_background(std::time::Duration::ZERO);
                if let Some(e) = tx.borrow().as_ref() {
                    m.bytes_copied.fetch_add(e.progress.bytes.load(Relaxed), Relaxed);
                }
                r
            };
            let r = tokio::select! {
                r = work => r,
                _ = cancelled.changed() => Err("run cancelled".to_string()),
            };
            if queued {
                m.runs_queued.fetch_sub(1, Relaxed);
            }
            m.runs_active.fetch_sub(1, Relaxed);
            let _ = ended_tx.send(true);
            r
        })
    });
    Running { generation, engine: rx, handle, ended, cancel }
}

async fn execute(
    shared: &Shared,
    isc: &ImageSetConfiguration,
    mut opts: ClientOptions,
    templates: Vec<CatalogTemplate>,
    tx: &watch::Sender<Option<Arc<Engine>>>,
) -> Result<Finished, String> {
    let spec = &isc.spec;
    let destination = Destination::parse(&spec.destination).map_err(|e| format!("spec.destination: {e}"))?;
    let mode = match destination {
        Destination::Registry(_) => Mode::MirrorToMirror,
        Destination::Disk => Mode::MirrorToDisk,
    };
    let k = key(isc);
    let root = shared.root.join("runs").join(k.replace('/', "_"));
    let mut argv: Vec<String> = vec!["mirror".into(), spec.destination.clone()];
    argv.push(format!("--max-nested-paths={}", spec.max_nested_paths.unwrap_or(0)));
    argv.push(format!("--retry-times={}", shared.retry_times));
    if let Some(u) = &spec.update_url {
        argv.push(format!("--update-url={u}"));
    }
    let flags = Flags::try_parse_from(argv).map_err(|e| e.to_string())?;
    let args = flags.args;
    let inv = Invocation {
        mode,
        destination,
        working_dir: root.join("working-dir"),
        cache_dir: shared.root.clone(),
        config: PathBuf::from(&k),
    };
    opts.backoff.retries = shared.retry_times;
    opts.stall_timeout = shared.stall_timeout;
    opts.breaker_window = shared.unreachable_after;
    let client = Arc::new(Client::new(opts).map_err(|e| e.to_string())?);
    let mut planned =
        mirror::plan_mirror(&spec.mirror, &inv, args.common.max_nested_paths).map_err(|e| e.to_string())?;
    planned.archive_size = spec.archive_size;
    planned.templates = templates;
    // Objects of different image sets must not collide (IDMS/ITMS are cluster-wide).
    planned.naming_prefix = k.replace('/', "-");
    mirror::collect(&inv, &args, &client, &shared.cache, &mut planned).await.map_err(|e| e.to_string())?;
    let plan_digest = planned.plan.digest();
    if spec.dry_run {
        let n = planned.plan.items.len();
        return Ok(Finished {
            plan_digest,
            counts: Counts { total: n as u64, ..Default::default() },
            dry_run: true,
            mapping: planned.plan.mapping_txt(),
            summary: format!("{n} images planned ({} blocked); dry run: nothing copied", planned.plan.blocked.len()),
            ..Default::default()
        });
    }
    let out = copy::execute(&inv, &args, &mut planned, client, shared.cache.clone(), Some(tx))
        .await
        .map_err(|e| e.to_string())?;
    Ok(finish(plan_digest, &planned, out))
}

fn finish(plan_digest: String, planned: &mirror::Planned, out: copy::RunOutcome) -> Finished {
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
    let collection_failures: Vec<String> = planned.failures.iter().map(|(_, m)| m.clone()).collect();
    let summary = format!(
        "{} images: {} copied, {} already present, {} failed, {} skipped{}",
        counts.total,
        counts.copied,
        counts.already_present,
        counts.failed,
        counts.skipped,
        collection_failures.first().map(|f| format!("; {f}")).unwrap_or_default()
    );
    Finished {
        plan_digest,
        counts,
        failed,
        incomplete_operators: incomplete.into_iter().collect(),
        collection_failures,
        objects: out.objects,
        dry_run: false,
        mapping: String::new(),
        summary,
    }
}
