//! The controller: watches image sets, runs each one in the background through the shared
//! cache, applies what it produces, and reports progress and outcome in status and events.

mod apply;
mod delete;
mod pending;
mod run;
mod status;

pub use run::naming_prefix;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use tracing::{info, warn};

use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::api::isc::{ApplyPolicy, DeletionPolicy};
use crate::api::names::{DEGRADED, FIELD_MANAGER, FINALIZER, PROGRESSING, READY};
use crate::api::status::ImageSetStatus;
use crate::api::{ImageSetConfiguration, validate};
use crate::cli::RunArgs;
use crate::commands::CliError;
use crate::plan::{self, Destination};

pub use status::{Cond, set_condition, set_invalid};

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The API server refused or failed a call.
    #[error("kubernetes api: {0}")]
    Kube(#[from] kube::Error),
}

impl ReconcileError {
    /// Stable reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ReconcileError::Kube(_) => "KubeApiError",
        }
    }
}

struct Ctx {
    client: Client,
    metrics: Arc<crate::admin::Metrics>,
    shared: Arc<run::Shared>,
    /// Namespaces whose image sets may produce cluster-wide objects.
    allowed: Vec<String>,
    /// How long after a failed run the next one starts.
    retry: Duration,
    recorder: Recorder,
}

/// Default resync interval when the spec gives none.
pub const DEFAULT_RESYNC: Duration = Duration::from_secs(6 * 3600);

/// Parses a Go-style duration (`90s`, `6h`, `1h30m`).
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if (c == 'm' || c == 'u' || c == 'n') && chars.peek() == Some(&'s') {
            unit.push(chars.next()?);
        }
        let v: f64 = num.parse().ok()?;
        num.clear();
        total += v * match unit.as_str() {
            "ns" => 1e-9,
            "us" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        any = true;
    }
    (any && num.is_empty()).then(|| Duration::from_secs_f64(total))
}

/// The spec's first problem, naming the field. Pure.
pub fn check_spec(isc: &ImageSetConfiguration) -> Result<(), String> {
    validate::validate_mirror("spec.mirror", &isc.spec.mirror).map_err(|e| e.to_string())?;
    for (i, op) in isc.spec.mirror.operators.iter().enumerate() {
        if let Some(t) = &op.target_catalog_source_template
            && apply::template_ref(t).is_none()
        {
            return Err(format!(
                "spec.mirror.operators[{i}].targetCatalogSourceTemplate: {t:?}: {}",
                apply::TEMPLATE_NOTE
            ));
        }
    }
    let d = Destination::parse(&isc.spec.destination).map_err(|e| format!("spec.destination: {e}"))?;
    plan::plan_additional(&isc.spec.mirror, &d, isc.spec.max_nested_paths.unwrap_or(0), false)
        .map_err(|e| format!("spec.mirror.{e}"))?;
    Ok(())
}

/// How often a run under way is polled for progress.
const POLL: Duration = Duration::from_secs(3);

fn conds(
    st: &mut ImageSetStatus,
    generation: Option<i64>,
) -> (Cond, &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>) {
    (Cond { generation, now: jiff::Timestamp::now() }, &mut st.conditions)
}

fn is_true(st: &ImageSetStatus, type_: &str) -> bool {
    st.conditions.iter().any(|c| c.type_ == type_ && c.status == "True")
}

async fn reconcile(isc: Arc<ImageSetConfiguration>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    ctx.metrics.reconciles.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let key = run::key(&isc);
    let ns = isc.namespace().unwrap_or_default();
    let allowed = ctx.allowed.iter().any(|a| a == &ns);
    let owner = apply::owner_id(&isc);
    let keep = isc.spec.cluster_resources.as_ref().and_then(|c| c.on_delete) == Some(DeletionPolicy::Keep);
    let has_finalizer = isc.finalizers().iter().any(|f| f == FINALIZER);
    if isc.metadata.deletion_timestamp.is_some() {
        if let Some(r) = ctx.shared.runs.lock().expect("runs").remove(&key) {
            r.stop();
        }
        if has_finalizer {
            if allowed && !keep {
                let gone = apply::prune(&ctx.client, &owner, &Default::default()).await?;
                info!(image_set = %key, removed = gone.len(), "cluster resources removed");
            }
            set_finalizer(&ctx.client, &isc, false).await?;
        }
        return Ok(Action::await_change());
    }
    let generation = isc.metadata.generation;
    let old = isc.status.clone().unwrap_or_default();
    let mut st = old.clone();
    st.observed_generation = generation;
    if let Err(msg) = check_spec(&isc) {
        if let Some(r) = ctx.shared.runs.lock().expect("runs").remove(&key) {
            r.stop();
        }
        let (c, cs) = conds(&mut st, generation);
        set_invalid(cs, &c, &msg);
        st.progress = None;
        write_status(&ctx, &isc, &old, &st).await?;
        ctx.metrics.invalid_specs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ctx.metrics.failed("InvalidSpec");
        return Ok(Action::await_change());
    }
    if allowed && !keep && !has_finalizer {
        set_finalizer(&ctx.client, &isc, true).await?;
    }
    // A run under way: poll it, or take its result.
    enum Step {
        Poll(Option<crate::api::status::Progress>, tokio::sync::watch::Receiver<bool>),
        Take(run::Running),
        Start,
    }
    let step = {
        let mut runs = ctx.shared.runs.lock().expect("runs");
        match runs.get(&key) {
            Some(r) if r.generation != generation => {
                r.stop();
                runs.remove(&key);
                Step::Start
            }
            Some(r) if !r.handle.is_finished() => Step::Poll(r.progress(), r.ended.clone()),
            Some(_) => runs.remove(&key).map_or(Step::Start, Step::Take),
            None => Step::Start,
        }
    };
    let taken = match step {
        Step::Poll(progress, mut ended) => {
            // A short run is taken as soon as it ends rather than at the next poll.
            if tokio::time::timeout(POLL, ended.wait_for(|e| *e)).await.is_ok() {
                return Ok(Action::requeue(Duration::from_millis(50)));
            }
            let progress = ctx.shared.runs.lock().expect("runs").get(&key).and_then(|r| r.progress()).or(progress);
            if let Some(p) = progress.filter(|p| p.bytes_done > 0 || !is_true(&old, READY)) {
                let blobs = crate::copy::bytes_of(p.bytes_done, p.bytes_total.unwrap_or(0));
                let msg = format!("{} of {} images, blobs {blobs}", p.images_done, p.images_total);
                st.progress = Some(p);
                let (c, cs) = conds(&mut st, generation);
                set_condition(cs, &c, PROGRESSING, true, "Copying", &msg);
                write_status(&ctx, &isc, &old, &st).await?;
            }
            return Ok(Action::requeue(POLL));
        }
        Step::Take(r) => Some(r),
        Step::Start => None,
    };
    let resync = isc.spec.resync_interval.as_deref().and_then(parse_duration).unwrap_or(DEFAULT_RESYNC);
    if let Some(r) = taken {
        let result = match r.handle.await {
            Ok(r) => r,
            Err(e) => Err(run::Failure { reason: "RunFailed", message: format!("run stopped: {e}"), retryable: true }),
        };
        let permanent = result.as_ref().err().is_some_and(|f| !f.retryable);
        let ok = finish(&ctx, &isc, &mut st, result, allowed, &owner).await?;
        let last = {
            let mut done = ctx.shared.done.lock().expect("done");
            let mut last = run::LastRun::after(done.get(&key).copied(), generation, ok);
            last.permanent = permanent;
            done.insert(key, last);
            last
        };
        write_status(&ctx, &isc, &old, &st).await?;
        if permanent {
            // Trying the same spec again cannot help: wait for it to change.
            return Ok(Action::await_change());
        }
        return Ok(Action::requeue(last.due(resync, ctx.retry) - last.at));
    }
    // Not running: start now, or when the last run of this generation is due again.
    let last = ctx.shared.done.lock().expect("done").get(&key).copied();
    if let Some(l) = last
        && l.generation == generation
    {
        if l.permanent {
            return Ok(Action::await_change());
        }
        let due = l.due(resync, ctx.retry);
        let now = std::time::Instant::now();
        if now < due {
            return Ok(Action::requeue(due - now));
        }
    }
    let access = match async {
        Ok::<_, String>((apply::access(&ctx.client, &isc).await?, apply::templates(&ctx.client, &isc).await?))
    }
    .await
    {
        Ok(a) => a,
        Err(msg) => {
            let (c, cs) = conds(&mut st, generation);
            set_condition(cs, &c, READY, false, "AccessError", &msg);
            set_condition(cs, &c, PROGRESSING, false, "AccessError", &msg);
            set_condition(cs, &c, DEGRADED, true, "AccessError", &msg);
            write_status(&ctx, &isc, &old, &st).await?;
            ctx.metrics.failed("AccessError");
            event(&ctx, &isc, EventType::Warning, "AccessError", &msg).await;
            let l = run::LastRun::after(last, generation, false);
            ctx.shared.done.lock().expect("done").insert(key, l);
            return Ok(Action::requeue(l.due(resync, ctx.retry) - l.at));
        }
    };
    let retrying = last.is_some_and(|l| l.failures > 0);
    let running = run::start(&ctx.shared, &isc, access, retrying);
    ctx.shared.runs.lock().expect("runs").insert(key.clone(), running);
    ctx.metrics.runs_started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if !is_true(&old, READY) || old.observed_generation != generation {
        let (c, cs) = conds(&mut st, generation);
        set_condition(cs, &c, PROGRESSING, true, "Started", "collecting and copying");
        if !cs.iter().any(|x| x.type_ == READY) {
            set_condition(cs, &c, READY, false, "Started", "first run under way");
            set_condition(cs, &c, DEGRADED, false, "AsExpected", "spec is valid");
        }
        write_status(&ctx, &isc, &old, &st).await?;
        event(&ctx, &isc, EventType::Normal, "Started", &format!("mirroring to {}", isc.spec.destination)).await;
    }
    info!(image_set = %key, "run started");
    Ok(Action::requeue(Duration::from_millis(100)))
}

/// Records a finished run in status and applies what it produced; returns whether it was
/// complete.
async fn finish(
    ctx: &Ctx,
    isc: &ImageSetConfiguration,
    st: &mut ImageSetStatus,
    result: Result<run::Finished, run::Failure>,
    allowed: bool,
    owner: &str,
) -> Result<bool, ReconcileError> {
    let generation = isc.metadata.generation;
    st.progress = None;
    let f = match result {
        Ok(f) => f,
        Err(f) => {
            let (c, cs) = conds(st, generation);
            set_condition(cs, &c, READY, false, f.reason, &f.message);
            set_condition(cs, &c, PROGRESSING, false, "Failed", &f.message);
            set_condition(cs, &c, DEGRADED, true, f.reason, &f.message);
            ctx.metrics.runs_failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ctx.metrics.failed(f.reason);
            event(ctx, isc, EventType::Warning, f.reason, &f.message).await;
            return Ok(false);
        }
    };
    let ok = f.counts.failed == 0 && f.counts.skipped == 0 && f.collection_failures.is_empty();
    let hold = isc.spec.cluster_resources.as_ref().and_then(|c| c.apply) == Some(ApplyPolicy::Hold);
    let mut conflict = None;
    let applied = if f.dry_run {
        let name = apply::dry_run_config_map(&ctx.client, isc, owner, &f.mapping).await?;
        format!("; the plan is in ConfigMap {name} (mapping.txt)")
    } else if !allowed {
        format!(
            "; cluster resources not applied: namespace {:?} may not produce cluster-wide objects (operator setting ALLOWED_NAMESPACES)",
            isc.namespace().unwrap_or_default()
        )
    } else if hold {
        let (pairs, deletes) = apply::compare(&ctx.client, owner, &f.objects).await?;
        let approved = isc.spec.cluster_resources.as_ref().and_then(|c| c.approved_changes_digest.clone());
        match pending::pending(&pairs, &deletes) {
            None => {
                st.pending_changes = None;
                "; cluster objects up to date (clusterResources.apply: Hold)".to_string()
            }
            Some(p) if approved.as_deref() == Some(p.digest.as_str()) => {
                st.pending_changes = None;
                let done = apply::apply(&ctx.client, owner, &f.objects).await?;
                let pruned = apply::prune(&ctx.client, owner, &apply::keys(&f.objects)).await?;
                conflict = done.conflict_message();
                format!("; approved changes {} applied ({} changed, {} pruned)", p.digest, done.changed, pruned.len())
            }
            Some(p) => {
                let msg = format!(
                    "; {} cluster object changes held for review{} (clusterResources.apply: Hold): approve them with clusterResources.approvedChangesDigest: {}",
                    p.objects.len(),
                    if p.reboots_nodes { ", applying them reboots nodes" } else { "" },
                    p.digest
                );
                if st.pending_changes.as_ref().map(|x| &x.digest) != Some(&p.digest) {
                    event(ctx, isc, EventType::Normal, "ChangesHeld", msg.trim_start_matches("; ")).await;
                }
                st.pending_changes = Some(p);
                msg
            }
        }
    } else {
        st.pending_changes = None;
        let done = apply::apply(&ctx.client, owner, &f.objects).await?;
        let pruned = apply::prune(&ctx.client, owner, &apply::keys(&f.objects)).await?;
        conflict = done.conflict_message();
        format!(
            "; {} cluster objects applied ({} changed, {} pruned)",
            f.objects.len() - done.conflicts.len(),
            done.changed,
            pruned.len()
        )
    };
    let ok = ok && conflict.is_none();
    let msg = match &conflict {
        Some(c) => format!("{}{applied}; {c}", f.summary),
        None => format!("{}{applied}", f.summary),
    };
    let new_content = f.counts.copied > 0 || st.plan_digest.as_deref() != Some(f.plan_digest.as_str());
    st.plan_digest = Some(f.plan_digest);
    st.counts = Some(f.counts.clone());
    st.failed_images = f.failed;
    st.incomplete_operators = f.incomplete_operators;
    let (c, cs) = conds(st, generation);
    let reason = if f.dry_run {
        "DryRun"
    } else if conflict.is_some() {
        "Conflict"
    } else if ok {
        "Mirrored"
    } else {
        "ImagesFailed"
    };
    set_condition(cs, &c, READY, ok, reason, &msg);
    set_condition(cs, &c, PROGRESSING, false, if ok { reason } else { "Failed" }, &msg);
    set_condition(cs, &c, DEGRADED, !ok, if ok { "AsExpected" } else { reason }, &msg);
    if ok && !f.dry_run && (new_content || st.last_successful_run_time.is_none()) {
        st.last_successful_run_time = Some(c.now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
    }
    ctx.metrics.images_copied.fetch_add(f.counts.copied, std::sync::atomic::Ordering::Relaxed);
    ctx.metrics.images_failed.fetch_add(f.counts.failed, std::sync::atomic::Ordering::Relaxed);
    if !ok {
        ctx.metrics.runs_failed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        ctx.metrics.failed(reason);
        event(ctx, isc, EventType::Warning, reason, &msg).await;
    } else if new_content {
        event(ctx, isc, EventType::Normal, reason, &msg).await;
    }
    info!(image_set = %run::key(isc), ok, "{msg}");
    Ok(ok)
}

/// Writes status when it differs from what the object has (a resync that finds nothing new
/// writes nothing).
async fn write_status(
    ctx: &Ctx,
    isc: &ImageSetConfiguration,
    old: &ImageSetStatus,
    st: &ImageSetStatus,
) -> Result<(), ReconcileError> {
    if old != st || isc.status.is_none() {
        apply_status(&ctx.client, isc, st).await?;
    }
    Ok(())
}

async fn set_finalizer(client: &Client, isc: &ImageSetConfiguration, on: bool) -> Result<(), kube::Error> {
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), &isc.namespace().unwrap_or_default());
    let mut list: Vec<String> = isc.finalizers().iter().filter(|f| *f != FINALIZER).cloned().collect();
    if on {
        list.push(FINALIZER.to_string());
    }
    let patch = serde_json::json!({
        "metadata": {"finalizers": list, "resourceVersion": isc.resource_version()}
    });
    api.patch(&isc.name_any(), &PatchParams::default(), &Patch::Merge(&patch)).await?;
    Ok(())
}

async fn event(ctx: &Ctx, isc: &ImageSetConfiguration, type_: EventType, reason: &str, note: &str) {
    let ev = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: "Mirror".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &isc.object_ref(&())).await {
        warn!(error = %e, "event not recorded");
    }
}

/// Writes `status` of `obj` with server-side apply under our field manager.
async fn apply_status<K>(client: &Client, obj: &K, status: &impl serde::Serialize) -> Result<(), kube::Error>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status });
    api.patch_status(&obj.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

fn error_policy(_isc: Arc<ImageSetConfiguration>, err: &ReconcileError, ctx: Arc<Ctx>) -> Action {
    ctx.metrics.reconcile_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ctx.metrics.failed(err.reason());
    warn!(reason = err.reason(), error = %err, "reconcile failed");
    Action::requeue(Duration::from_secs(15))
}

/// Waits until this replica holds the `imageset-operator` Lease in its namespace; returns
/// the channel that says whether it still does.
async fn leadership(client: &Client, args: &RunArgs) -> Result<tokio::sync::watch::Receiver<bool>, CliError> {
    let identity = std::env::var("POD_NAME").ok().filter(|n| !n.is_empty()).unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        format!("{}-{}", host.trim(), std::process::id())
    });
    let duration = args.lease_duration.max(2);
    let manager = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), "imageset-operator")
        .with_namespace(&args.namespace)
        .with_identity(&identity)
        .with_duration(duration)
        .with_grace((duration / 3).max(1))
        // A field manager per replica: the Lease is taken with server-side apply, and a
        // manager shared by the replicas would let a standby take it without a conflict.
        .with_field_manager(format!("{FIELD_MANAGER}-{identity}"))
        .build()
        .await
        .map_err(|e| CliError::Setup(format!("leader election (Lease {}/imageset-operator): {e}", args.namespace)))?;
    let (mut rx, _task) = manager.watch().await;
    info!(%identity, namespace = %args.namespace, "waiting for leadership");
    while !*rx.borrow_and_update() {
        rx.changed().await.map_err(|e| CliError::Setup(format!("leader election: {e}")))?;
    }
    info!(%identity, "leading: starting the controllers");
    Ok(rx)
}

/// `imageset-operator run`: blocks until interrupted.
pub fn run(args: RunArgs) -> Result<(), CliError> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| CliError::Unsupported(format!("tokio runtime: {e}")))?;
    let result = rt.block_on(async {
        let metrics = Arc::new(crate::admin::Metrics::default());
        let listener = tokio::net::TcpListener::bind(&args.admin_addr)
            .await
            .map_err(|e| CliError::Unsupported(format!("--admin-addr {}: {e}", args.admin_addr)))?;
        info!(addr = %args.admin_addr, "admin endpoint listening");
        tokio::spawn(crate::admin::serve(listener, metrics.clone()));
        let client =
            Client::try_default().await.map_err(|e| CliError::Unsupported(format!("kubernetes client: {e}")))?;
        let cache = crate::cache::Cache::open(&args.cache_dir.join(crate::pipeline::copy::CACHE_SUBDIR))
            .map_err(|e| CliError::Setup(format!("--cache-dir: {e}")))?;
        let cache = Arc::new(cache);
        let transfers = crate::registry::ClientOptions::default().max_in_flight;
        let _ = metrics.cache.set(cache.clone());
        let shared = Arc::new(run::Shared {
            engine: Arc::new(crate::copy::Engine::new(cache.clone(), transfers)),
            registry_slots: Default::default(),
            releases: args.release.sources(Vec::new()),
            cache,
            root: args.cache_dir.clone(),
            slots: Arc::new(tokio::sync::Semaphore::new(args.max_concurrent_runs.max(1))),
            retry_slots: Arc::new(tokio::sync::Semaphore::new(1)),
            retry_times: args.retry_times,
            stall_timeout: Duration::from_secs(args.stall_timeout),
            unreachable_after: Duration::from_secs(args.unreachable_after),
            metrics: metrics.clone(),
            runs: Default::default(),
            done: Default::default(),
        });
        let allowed = if args.allowed_namespaces.is_empty() {
            vec![args.namespace.clone()]
        } else {
            args.allowed_namespaces.clone()
        };
        let recorder =
            Recorder::new(client.clone(), Reporter { controller: "imageset-operator".into(), instance: None });
        let api: Api<ImageSetConfiguration> = Api::all(client.clone());
        let discs: Api<crate::api::DeleteImageSetConfiguration> = Api::all(client.clone());
        // Only the leader watches and copies; a standby waits here, and a leader that loses
        // its lease exits (its pod restarts as a standby) rather than copy beside another.
        let lease = if args.leader_election { Some(leadership(&client, &args).await?) } else { None };
        info!("watching ImageSetConfigurations and DeleteImageSetConfigurations");
        metrics.ready.store(true, std::sync::atomic::Ordering::Relaxed);
        let retry = Duration::from_secs(args.retry_interval);
        let ctx = Arc::new(Ctx { client, metrics, shared: shared.clone(), allowed, retry, recorder });
        // On SIGTERM or Ctrl-C, runs under way are stopped first, so that reconciles polling
        // them return at once and the controllers can finish.
        let (signal_tx, signal_rx) = tokio::sync::watch::channel(false);
        let stopping = shared.clone();
        let signal = tokio::spawn(async move {
            terminated().await;
            let _ = signal_tx.send(true);
            stop_runs(&stopping).await;
        });
        let signalled_rx = signal_rx.clone();
        let signalled = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let isc = Controller::new(api, watcher::Config::default())
            .graceful_shutdown_on(signalled(signal_rx.clone()))
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|_| futures::future::ready(()));
        let disc = Controller::new(discs, watcher::Config::default())
            .graceful_shutdown_on(signalled(signal_rx))
            .run(
                |d, ctx: Arc<Ctx>| delete::reconcile(d, ctx.client.clone()),
                |_, err: &ReconcileError, ctx: Arc<Ctx>| {
                    ctx.metrics.reconcile_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    warn!(reason = err.reason(), error = %err, "reconcile of a delete failed");
                    Action::requeue(Duration::from_secs(15))
                },
                ctx,
            )
            .for_each(|_| futures::future::ready(()));
        let ended = match lease {
            Some(mut leader) => {
                let lost = async move {
                    while leader.changed().await.is_ok() {
                        if !*leader.borrow() {
                            break;
                        }
                    }
                };
                tokio::select! {
                    _ = futures::future::join(isc, disc) => Ok(()),
                    _ = lost => Err(CliError::Setup("leadership lost: exiting so that only one replica copies".into())),
                }
            }
            None => {
                futures::join!(isc, disc);
                Ok(())
            }
        };
        // After a signal the controllers may end before the runs they stopped have let go:
        // wait for that, then stop whatever is left (a lost lease ends here without one).
        if *signalled_rx.borrow() {
            let _ = tokio::time::timeout(Duration::from_secs(15), signal).await;
        }
        stop_runs(&shared).await;
        ended
    });
    // Runs were stopped above; anything still on a blocking thread is not waited for.
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

/// Resolves on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "SIGTERM handler not installed; stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => info!("SIGTERM: shutting down"),
        _ = tokio::signal::ctrl_c() => info!("interrupted: shutting down"),
    }
}

/// Stops every run under way and waits (briefly) for each to let go of the cache: what was
/// downloaded stays in the cache's staging area, and the next leader resumes from it.
async fn stop_runs(shared: &run::Shared) {
    let runs: Vec<run::Running> = shared.runs.lock().expect("runs").drain().map(|(_, r)| r).collect();
    if runs.is_empty() {
        return;
    }
    for r in &runs {
        r.stop();
    }
    let n = runs.len();
    let waits = runs.into_iter().map(|r| tokio::time::timeout(Duration::from_secs(10), r.handle));
    let stopped = futures::future::join_all(waits).await.iter().filter(|w| w.is_ok()).count();
    info!(stopped, of = n, "shutting down: runs under way stopped; the next start resumes them from the cache");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("6h"), Some(Duration::from_secs(21600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("6"), None);
        assert_eq!(parse_duration("6x"), None);
    }

    #[test]
    fn failed_runs_back_off_per_image_set() {
        let (resync, retry) = (Duration::from_secs(3600), Duration::from_secs(60));
        let mut last = None;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let l = run::LastRun::after(last, Some(1), false);
            waits.push((l.due(resync, retry) - l.at).as_secs());
            last = Some(l);
        }
        assert_eq!(waits, [60, 120, 240, 480, 960, 1800, 1800, 1800]);
        let ok = run::LastRun::after(last, Some(1), true);
        assert_eq!((ok.failures, (ok.due(resync, retry) - ok.at).as_secs()), (0, 3600));
        // A new generation starts counting again.
        let other = run::LastRun::after(last, Some(2), false);
        assert_eq!(other.failures, 1);
        // A long retry interval is never shortened by the cap.
        let l = run::LastRun { generation: None, at: std::time::Instant::now(), failures: 3, permanent: false };
        assert_eq!(l.due(resync, Duration::from_secs(7200)) - l.at, Duration::from_secs(7200));
    }

    #[test]
    fn templates_are_config_map_keys_in_the_cluster() {
        assert_eq!(apply::template_ref("configmap:cs-template/template.yaml"), Some(("cs-template", "template.yaml")));
        for bad in
            ["/tmp/template.yaml", "configmap:", "configmap:x", "configmap:/k", "configmap:x/", "configmap:x/a/b"]
        {
            assert_eq!(apply::template_ref(bad), None, "{bad}");
        }
        let isc: ImageSetConfiguration = serde_json::from_value(serde_json::json!({
            "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration", "metadata": {"name": "t"},
            "spec": {"destination": "docker://r.example.com", "mirror": {"operators": [
                {"catalog": "registry.redhat.io/redhat/redhat-operator-index:v4.18", "targetCatalogSourceTemplate": "/tmp/t.yaml"}]}},
        }))
        .unwrap();
        let e = check_spec(&isc).unwrap_err();
        assert!(e.starts_with("spec.mirror.operators[0].targetCatalogSourceTemplate: \"/tmp/t.yaml\""), "{e}");
        assert!(e.contains("configmap:<name>/<key>"), "{e}");
    }
}
