//! The reconcile of an image set: a pure decision ([`decide`]) from what is seen, then the
//! cluster I/O it calls for, one function per decision.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use super::decide::{self, Decision, RunSeen, Seen, decide};
use super::{Cond, set_condition, set_invalid};
use super::{Ctx, DEFAULT_RESYNC, ReconcileError, apply, check_spec, parse_duration, pending, run};
use crate::api::ImageSetConfiguration;
use crate::api::isc::{ApplyPolicy, DeletionPolicy};
use crate::api::names::{DEGRADED, FIELD_MANAGER, FINALIZER, PROGRESSING, READY};
use crate::api::status::ImageSetStatus;

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

pub(super) async fn reconcile(isc: Arc<ImageSetConfiguration>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    ctx.metrics.reconciles.fetch_add(1, Relaxed);
    let key = run::key(&isc);
    let generation = isc.metadata.generation;
    let last = ctx.shared.done.lock().expect("done").get(&key).copied();
    let resync = isc.spec.resync_interval.as_deref().and_then(|d| parse_duration(d).ok()).unwrap_or(DEFAULT_RESYNC);
    let seen = {
        let runs = ctx.shared.runs.lock().expect("runs");
        let run = runs.get(&key).map(|r| RunSeen { generation: r.generation, finished: r.handle.is_finished() });
        Seen {
            deleting: isc.metadata.deletion_timestamp.is_some(),
            spec: check_spec(&isc),
            generation,
            run,
            last,
            resync,
            retry: ctx.retry,
            now: std::time::Instant::now(),
        }
    };
    let decision = decide(&seen);
    if seen.stale_run() || matches!(decision, Decision::CleanUp | Decision::Invalid(_)) {
        stop_run(&ctx, &key);
    }
    match decision {
        Decision::CleanUp => clean_up(&ctx, &isc).await,
        Decision::Invalid(msg) => {
            let old = latest(&ctx, &isc).await?;
            let mut st = next(&old, generation);
            let (c, cs) = conds(&mut st, generation);
            set_invalid(cs, &c, &msg);
            st.progress = None;
            write_status(&ctx, &isc, &old, st).await?;
            ctx.metrics.invalid_specs.fetch_add(1, Relaxed);
            ctx.metrics.failed("InvalidSpec");
            Ok(Action::await_change())
        }
        Decision::AwaitChange => Ok(Action::await_change()),
        Decision::Wait(d) => Ok(Action::requeue(d)),
        Decision::Poll => poll(&ctx, &isc, &key).await,
        Decision::Take => take(&ctx, &isc, &key, resync).await,
        Decision::Start => start(&ctx, &isc, &key, last, resync).await,
    }
}

/// The status as the API server has it now. Every write starts from it rather than from the
/// watch cache, which may not have seen this controller's last write yet: a status built
/// on a stale copy and applied whole would drop what that write added (Ready, seen blank
/// mid-run). One reconcile at a time per object, so nothing else writes it meanwhile.
async fn latest(ctx: &Ctx, isc: &ImageSetConfiguration) -> Result<ImageSetStatus, ReconcileError> {
    Ok(match current(&ctx.client, isc).await? {
        Some(o) => o.status.unwrap_or_default(),
        None => isc.status.clone().unwrap_or_default(),
    })
}

/// Our kinds, as the client reads and patches them.
pub(super) trait Namespaced:
    kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + serde::de::DeserializeOwned
    + std::fmt::Debug
{
}

impl<K> Namespaced for K where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
{
}

/// `obj` as the API server has it now (not as the watch cache last saw it), `None` once it is
/// gone. Read as a list by name, a consistent read from storage: the operator's role lets it
/// list what it watches, and needs no `get` for this.
pub(super) async fn current<K: Namespaced>(client: &Client, obj: &K) -> Result<Option<K>, kube::Error> {
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let by_name = kube::api::ListParams::default().fields(&format!("metadata.name={}", obj.name_any()));
    Ok(api.list(&by_name).await?.items.into_iter().find(|o| o.uid() == obj.uid()))
}

/// The status to write for `generation`, starting from `old`: it describes that generation
/// (the decision was made for it, and a run polled or taken is of it).
fn next(old: &ImageSetStatus, generation: Option<i64>) -> ImageSetStatus {
    ImageSetStatus { observed_generation: generation, ..old.clone() }
}

fn stop_run(ctx: &Ctx, key: &str) {
    if let Some(r) = ctx.shared.runs.lock().expect("runs").remove(key) {
        r.stop();
    }
}

/// The image set is going: what it produced goes too (unless kept), then its finalizer.
async fn clean_up(ctx: &Ctx, isc: &ImageSetConfiguration) -> Result<Action, ReconcileError> {
    if isc.finalizers().iter().any(|f| f == FINALIZER) {
        if allowed(ctx, isc) && !keeps(isc) {
            let gone = apply::prune(&ctx.client, &apply::owner_id(isc), &Default::default()).await?;
            info!(image_set = %run::key(isc), removed = gone.len(), "cluster resources removed");
        }
        set_finalizer(&ctx.client, isc, false).await?;
    }
    forget(ctx, isc);
    ctx.metrics.forget(&isc.namespace().unwrap_or_default(), &isc.name_any());
    Ok(Action::await_change())
}

/// What the image set kept on the volume goes with it: its working directory, and its record
/// of what it needs from the cache (so `cache gc` may free what no other set needs).
fn forget(ctx: &Ctx, isc: &ImageSetConfiguration) {
    let key = run::key(isc);
    let dir = run::working_root(&ctx.shared.root, &key);
    if let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn!(image_set = %key, error = %e, "working directory not removed");
    }
    if let Err(e) = ctx.shared.cache.remove_refs(&crate::pipeline::copy::refs_name(&key)) {
        warn!(image_set = %key, error = %e, "cache record not removed");
    }
}

fn allowed(ctx: &Ctx, isc: &ImageSetConfiguration) -> bool {
    let ns = isc.namespace().unwrap_or_default();
    ctx.allowed.iter().any(|a| a == &ns)
}

fn keeps(isc: &ImageSetConfiguration) -> bool {
    isc.spec.cluster_resources.as_ref().and_then(|c| c.on_delete) == Some(DeletionPolicy::Keep)
}

/// A run under way: its progress in status (a short run is taken as soon as it ends rather
/// than at the next poll).
async fn poll(ctx: &Ctx, isc: &ImageSetConfiguration, key: &str) -> Result<Action, ReconcileError> {
    let ended = ctx.shared.runs.lock().expect("runs").get(key).map(|r| r.ended.clone());
    if let Some(mut ended) = ended
        && tokio::time::timeout(POLL, ended.wait_for(|e| *e)).await.is_ok()
    {
        return Ok(Action::requeue(Duration::from_millis(50)));
    }
    // The run's own generation: a progress write never claims a generation it is not of.
    let (generation, progress, shards) = match ctx.shared.runs.lock().expect("runs").get(key) {
        Some(r) => (r.generation, r.progress(), r.shards.lock().expect("shard view").clone()),
        None => return Ok(Action::requeue(Duration::from_millis(50))),
    };
    if let Some(p) = progress {
        let old = latest(ctx, isc).await?;
        if p.bytes_done > 0 || !is_true(&old, READY) || !shards.is_empty() {
            let blobs = crate::copy::bytes_of(p.bytes_done, p.bytes_total.unwrap_or(0));
            let mut msg = format!("{} of {} images, blobs {blobs}", p.images_done, p.images_total);
            let mut st = next(&old, generation);
            st.progress = Some(p);
            if let Some(first) = shards.first() {
                let running = shards.iter().filter(|s| s.phase == "Running").count();
                let done = shards.iter().filter(|s| s.phase == "Succeeded").count();
                msg.push_str(&format!(
                    "; {} shards in Job {}: {done} done, {running} running",
                    shards.len(),
                    first.job
                ));
                st.shards = shards;
            }
            let (c, cs) = conds(&mut st, generation);
            set_condition(cs, &c, PROGRESSING, true, "Copying", &msg);
            write_status(ctx, isc, &old, st).await?;
        }
    }
    Ok(Action::requeue(POLL))
}

/// A run ended: its result in status, what it produced applied, the next run scheduled.
async fn take(ctx: &Ctx, isc: &ImageSetConfiguration, key: &str, resync: Duration) -> Result<Action, ReconcileError> {
    // Read before the run is taken: an API error here leaves the result to the next reconcile.
    let old = latest(ctx, isc).await?;
    let Some(r) = ctx.shared.runs.lock().expect("runs").remove(key) else {
        return Ok(Action::requeue(Duration::from_millis(50)));
    };
    let mut st = next(&old, r.generation);
    let result = match r.handle.await {
        Ok(r) => r,
        Err(e) => Err(run::Failure { reason: "RunFailed", message: format!("run stopped: {e}"), retryable: true }),
    };
    let permanent = result.as_ref().err().is_some_and(|f| !f.retryable);
    let owner = apply::owner_id(isc);
    let ok = match finish(ctx, isc, &mut st, result, allowed(ctx, isc), &owner).await {
        Ok(ok) => ok,
        // The API server refused an object (no right in its namespace, the namespace or its
        // kind missing): say so in status and retry later, instead of losing the run's result
        // and running again at once.
        Err(ReconcileError::Kube(kube::Error::Api(e))) if matches!(e.code, 403 | 404 | 422) => {
            let msg = format!("the run finished, but its cluster objects could not be applied: {}", e.message);
            let (c, cs) = conds(&mut st, isc.metadata.generation);
            set_condition(cs, &c, READY, false, "ApplyFailed", &msg);
            set_condition(cs, &c, PROGRESSING, false, "Failed", &msg);
            set_condition(cs, &c, DEGRADED, true, "ApplyFailed", &msg);
            ctx.metrics.runs_failed.fetch_add(1, Relaxed);
            ctx.metrics.failed("ApplyFailed");
            event(ctx, isc, EventType::Warning, "ApplyFailed", &msg).await;
            false
        }
        Err(e) => return Err(e),
    };
    let last = {
        let mut done = ctx.shared.done.lock().expect("done");
        let mut last = run::LastRun::after(done.get(key).copied(), isc.metadata.generation, ok);
        last.permanent = permanent;
        done.insert(key.to_string(), last);
        last
    };
    write_status(ctx, isc, &old, st).await?;
    Ok(match decide::after(&last, resync, ctx.retry, last.at) {
        Decision::Wait(d) => Action::requeue(d),
        Decision::AwaitChange => Action::await_change(),
        _ => Action::requeue(Duration::ZERO),
    })
}

/// Starts a run with the image set's registry access (its Secret, CAs and templates).
async fn start(
    ctx: &Ctx,
    isc: &ImageSetConfiguration,
    key: &str,
    last: Option<run::LastRun>,
    resync: Duration,
) -> Result<Action, ReconcileError> {
    let generation = isc.metadata.generation;
    let old = latest(ctx, isc).await?;
    let mut st = next(&old, generation);
    if allowed(ctx, isc) && !keeps(isc) && !isc.finalizers().iter().any(|f| f == FINALIZER) {
        set_finalizer(&ctx.client, isc, true).await?;
    }
    let access = match async {
        Ok::<_, String>((apply::access(&ctx.client, isc).await?, apply::templates(&ctx.client, isc).await?))
    }
    .await
    {
        Ok(a) => a,
        Err(msg) => {
            let (c, cs) = conds(&mut st, generation);
            set_condition(cs, &c, READY, false, "AccessError", &msg);
            set_condition(cs, &c, PROGRESSING, false, "AccessError", &msg);
            set_condition(cs, &c, DEGRADED, true, "AccessError", &msg);
            write_status(ctx, isc, &old, st).await?;
            ctx.metrics.failed("AccessError");
            event(ctx, isc, EventType::Warning, "AccessError", &msg).await;
            let l = run::LastRun::after(last, generation, false);
            ctx.shared.done.lock().expect("done").insert(key.to_string(), l);
            return Ok(Action::requeue(l.due(resync, ctx.retry) - l.at));
        }
    };
    let retrying = last.is_some_and(|l| l.failures > 0);
    let running = run::start(&ctx.shared, isc, access, retrying);
    ctx.shared.runs.lock().expect("runs").insert(key.to_string(), running);
    ctx.metrics.runs_started.fetch_add(1, Relaxed);
    // A resync (this generation already mirrored) is under way too: kstatus readers see it
    // as Reconciling, without the event a new generation or a retry gets.
    let resyncing = is_true(&old, READY) && old.observed_generation == generation;
    let (c, cs) = conds(&mut st, generation);
    if resyncing {
        set_condition(cs, &c, PROGRESSING, true, "Resync", "checking the sources and copying what changed");
    } else {
        set_condition(cs, &c, PROGRESSING, true, "Started", "collecting and copying");
        if !cs.iter().any(|x| x.type_ == READY) {
            set_condition(cs, &c, READY, false, "Started", "first run under way");
            set_condition(cs, &c, DEGRADED, false, "AsExpected", "spec is valid");
        }
    }
    write_status(ctx, isc, &old, st).await?;
    if !resyncing {
        event(ctx, isc, EventType::Normal, "Started", &format!("mirroring to {}", isc.spec.destination)).await;
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
    st.shards = f.shards.clone();
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
                let msg = format!("; {}", pending::held_message(&p));
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
        let n = f.objects.len() - done.conflicts.len();
        format!(
            "; {n} cluster object{} applied ({} changed, {} pruned)",
            if n == 1 { "" } else { "s" },
            done.changed,
            pruned.len()
        )
    };
    let ok = ok && conflict.is_none();
    let reason = outcome_reason(&f, conflict.is_some(), ok);
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
    set_condition(cs, &c, READY, ok, reason, &msg);
    set_condition(cs, &c, PROGRESSING, false, if ok { reason } else { "Failed" }, &msg);
    set_condition(cs, &c, DEGRADED, !ok, if ok { "AsExpected" } else { reason }, &msg);
    if ok && !f.dry_run {
        let at = c.now.as_millisecond() as f64 / 1000.0;
        ctx.metrics.succeeded(&isc.namespace().unwrap_or_default(), &isc.name_any(), at);
    }
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

/// Writes status, completed with the conditions derived from it (kstatus's and
/// `ChangesHeld`), when it differs from `old`, the status the API server has.
async fn write_status(
    ctx: &Ctx,
    isc: &ImageSetConfiguration,
    old: &ImageSetStatus,
    mut st: ImageSetStatus,
) -> Result<(), ReconcileError> {
    super::status::image_set_health(&mut st, jiff::Timestamp::now());
    if *old != st {
        apply_status(&ctx.client, isc, &st).await?;
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
    publish(ctx, isc, "Mirror", type_, reason, note).await;
}

/// Records an event about `obj` (its note cut at 1000 characters); a failure to record is
/// logged, never an error of the reconcile.
pub(super) async fn publish<K: Namespaced>(
    ctx: &Ctx,
    obj: &K,
    action: &str,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let ev = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note.chars().take(1000).collect()),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        warn!(error = %e, "event not recorded");
    }
}

/// Writes `status` of `obj` with server-side apply under our field manager.
pub(super) async fn apply_status<K: Namespaced>(
    client: &Client,
    obj: &K,
    status: &impl serde::Serialize,
) -> Result<(), kube::Error> {
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let patch = serde_json::json!({ "apiVersion": K::api_version(&()), "kind": K::kind(&()), "status": status });
    api.patch_status(&obj.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
    Ok(())
}

/// The reason of a finished run's conditions. Pure.
fn outcome_reason(f: &run::Finished, conflict: bool, ok: bool) -> &'static str {
    match (f.dry_run, conflict, ok, f.counts.failed, f.collection_reason) {
        (true, ..) => "DryRun",
        (_, true, ..) => "Conflict",
        (_, _, true, ..) => "Mirrored",
        // Nothing failed to copy: what is missing is what collection could not find.
        (_, _, false, 0, Some(r)) => r,
        _ => "ImagesFailed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::status::Counts;

    #[test]
    fn a_run_is_named_by_what_stopped_it() {
        let f = |failed, collection_reason| run::Finished {
            counts: Counts { failed, ..Default::default() },
            collection_reason,
            ..Default::default()
        };
        assert_eq!(outcome_reason(&f(0, None), false, true), "Mirrored");
        assert_eq!(outcome_reason(&f(0, None), true, false), "Conflict");
        assert_eq!(outcome_reason(&f(0, Some("ReleaseSignatureInvalid")), false, false), "ReleaseSignatureInvalid");
        // Images that failed to copy are the first thing to say.
        assert_eq!(outcome_reason(&f(3, Some("ReleaseSignatureInvalid")), false, false), "ImagesFailed");
        assert_eq!(outcome_reason(&run::Finished { dry_run: true, ..f(0, None) }, false, true), "DryRun");
    }
}
