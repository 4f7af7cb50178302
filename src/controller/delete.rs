//! DeleteImageSetConfiguration: plan through the pipeline, resolve every image at the
//! registry, protect what live image sets need, publish the plan, and delete only once
//! `spec.approvedPlanDigest` equals the digest of the plan as it stands at that moment.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::run::{Failure, Shared, working_root};
use super::{Cond, Ctx, ReconcileError, apply, set_condition, set_invalid};
use crate::api::names::{DEGRADED, FIELD_MANAGER, OWNER_LABEL, PROGRESSING, READY};
use crate::api::status::{
    DeleteCounts, DeleteStatus, FailedImage, MAX_LISTED_FAILURES, MAX_LISTED_PLAN, PlannedDeletion,
};
use crate::api::{DeleteImageSetConfiguration, ImageSetConfiguration, validate};
use crate::pipeline::Request;
use crate::pipeline::delete::{self, Action as Planned, Outcome, Protection, Record, Resolved, Tally};
use crate::plan::{self, CopyItem, Destination};
use crate::registry::{Client, ClientOptions};

/// Reasons of a delete that is done with its generation: nothing runs again until the spec
/// changes (an approval is a spec change). A plan awaiting approval is not planned again
/// meanwhile: approving it plans again and compares.
const FINAL: &[&str] = &["Deleted", "DeleteIncomplete", "DeleteUnsupported", "AwaitingApproval", "ApprovalStale"];

/// The spec's first problem, naming the field. Pure.
pub fn check(disc: &DeleteImageSetConfiguration) -> Result<Destination, String> {
    let spec = &disc.spec;
    validate::validate_delete("spec.delete", &spec.delete).map_err(|e| e.to_string())?;
    let d = Destination::parse(&spec.destination).map_err(|e| format!("spec.destination: {e}"))?;
    plan::plan_delete(&spec.delete, &d, spec.max_nested_paths.unwrap_or(0)).map_err(|e| format!("spec.delete.{e}"))?;
    let m = &spec.delete;
    if m.platform.is_none() && m.operators.is_empty() && m.additional_images.is_empty() {
        return Err("spec.delete: names nothing to delete (platform, operators or additionalImages)".into());
    }
    Ok(d)
}

fn key(disc: &DeleteImageSetConfiguration) -> String {
    format!("{}/{}", disc.namespace().unwrap_or_default(), disc.name_any())
}

fn host_of(d: &Destination) -> Option<&str> {
    match d {
        Destination::Registry(root) => root.split('/').next(),
        Destination::Disk => None,
    }
}

/// Image sets (`namespace/name`) with what their last run recorded, and image sets without a
/// record with their planned images.
type Protecting = (Vec<(String, Record)>, Vec<(String, Vec<CopyItem>)>);

/// What live image sets that mirror into `host` need there: their records, or for a set
/// that has not finished a run yet, its additional images as planned (resolved later).
fn protecting_sets(sets: &[ImageSetConfiguration], root: &std::path::Path, host: &str) -> Protecting {
    let mut recorded = Vec::new();
    let mut planned = Vec::new();
    for isc in sets.iter().filter(|s| s.metadata.deletion_timestamp.is_none()) {
        let Ok(d) = Destination::parse(&isc.spec.destination) else { continue };
        if host_of(&d) != Some(host) {
            continue;
        }
        let who = super::run::key(isc);
        match delete::read_record(&working_root(root, &who).join("working-dir")) {
            Some(r) => recorded.push((who, r)),
            None => {
                let max = isc.spec.max_nested_paths.unwrap_or(0);
                if let Ok(p) = plan::plan_additional(&isc.spec.mirror, &d, max, false) {
                    planned.push((who, p.items));
                }
            }
        }
    }
    (recorded, planned)
}

/// The plan as it stands now: collected through the pipeline, resolved at the registry,
/// protected. Runs on a blocking thread (the pipeline's futures are not `Send`).
async fn make_plan(
    shared: Arc<Shared>,
    disc: DeleteImageSetConfiguration,
    destination: Destination,
    mut opts: ClientOptions,
    sets: Vec<ImageSetConfiguration>,
) -> Result<(Vec<Resolved>, Vec<String>, Arc<Client>), Failure> {
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        rt.block_on(async move {
            let spec = &disc.spec;
            let k = key(&disc);
            let req = Request::collecting(
                destination.clone(),
                working_root(&shared.root, &format!("delete/{k}")).join("working-dir"),
                format!("delete:{k}"),
                shared.releases.clone(),
                spec.max_nested_paths.unwrap_or(0),
            );
            // Catalogs and payloads found in the shared cache are read only with this
            // delete's own access to their source, as for image sets.
            opts.prove_cached = true;
            opts.backoff.retries = shared.retry_times;
            opts.stall_timeout = shared.stall_timeout;
            opts.breaker_window = shared.unreachable_after;
            opts.slots = Some(shared.registry_slots.clone());
            // Chart repositories are reached with the same TLS settings, CAs and Secret.
            let access = opts.clone();
            let client = Arc::new(Client::new(opts).map_err(|e| Failure {
                reason: "AccessError",
                message: e.to_string(),
                retryable: true,
            })?);
            let (list, lines) = delete::generate_with(&spec.delete, &req, &client, &shared.cache, Some(access)).await?;
            let host = host_of(&destination).unwrap_or_default();
            let (recorded, planned) = protecting_sets(&sets, &shared.root, host);
            let mut protection = Protection::default();
            for (who, r) in &recorded {
                protection.add_record(r, who);
            }
            for (who, items) in &planned {
                if let Some((r, why)) = protection.add_planned(items, &client, who, 8).await.first() {
                    return Err(Failure {
                        reason: "RegistryUnavailable",
                        message: format!("reading {r}, which image set {who} needs: {why}"),
                        retryable: true,
                    });
                }
            }
            let resolved = delete::resolve(&list, &spec.destination, &client, &protection, 8).await;
            if let Some(r) = resolved.iter().find(|r| matches!(r.action, Planned::Unreadable(_))) {
                let Planned::Unreadable(why) = &r.action else { unreachable!() };
                return Err(Failure { reason: "RegistryUnavailable", message: why.clone(), retryable: true });
            }
            Ok((resolved, lines, client))
        })
    })
    .await
    .map_err(|e| Failure { reason: "PlanFailed", message: e.to_string(), retryable: true })?
}

/// Deletes what the plan says (on a blocking thread, like planning).
async fn carry_out(
    resolved: Vec<Resolved>,
    client: Arc<Client>,
) -> Result<Result<Vec<(Resolved, Outcome)>, delete::Refused>, Failure> {
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || rt.block_on(async move { delete::execute(resolved, &client, 8).await }))
        .await
        .map_err(|e| Failure { reason: "DeleteFailed", message: e.to_string(), retryable: true })
}

/// Counts and the first items of a plan. Pure.
pub fn summarise(resolved: &[Resolved]) -> (DeleteCounts, Vec<PlannedDeletion>) {
    let mut c = DeleteCounts { total: resolved.len() as u64, ..Default::default() };
    let mut listed = Vec::new();
    for r in resolved {
        let (action, by) = match &r.action {
            Planned::Delete => {
                c.to_delete += 1;
                ("Delete", None)
            }
            Planned::Protected(who) => {
                c.protected += 1;
                ("Protected", Some(who.clone()))
            }
            Planned::Gone => {
                c.already_gone += 1;
                ("Gone", None)
            }
            Planned::Invalid(_) | Planned::Unreadable(_) => ("Invalid", None),
        };
        if listed.len() < MAX_LISTED_PLAN {
            listed.push(PlannedDeletion {
                action: action.into(),
                reference: r.item.image_reference.clone(),
                digest: r.digest.clone(),
                protected_by: by,
            });
        }
    }
    // What a live image set keeps comes first: it is what a reviewer most needs to see.
    listed.sort_by_key(|p| p.action != "Protected");
    (c, listed)
}

/// Why an approved plan no longer stands: what moved between the plan shown and now. Pure.
pub fn stale_message(approved: &str, digest: &str, before: Option<&DeleteCounts>, now: &DeleteCounts) -> String {
    let mut moved = Vec::new();
    if let Some(b) = before {
        for (what, x, y) in [
            ("to delete", b.to_delete, now.to_delete),
            ("protected", b.protected, now.protected),
            ("already gone", b.already_gone, now.already_gone),
            ("listed", b.total, now.total),
        ] {
            if x != y {
                moved.push(format!("{what} {x} -> {y}"));
            }
        }
    }
    let why = if moved.is_empty() {
        "an image now resolves to another digest, or the spec changed".to_string()
    } else {
        moved.join(", ")
    };
    format!(
        "nothing deleted: the approved plan {approved} is no longer the plan ({why}); review the plan {digest} and approve it"
    )
}

async fn event(ctx: &Ctx, disc: &DeleteImageSetConfiguration, type_: EventType, reason: &str, note: &str) {
    super::reconcile::publish(ctx, disc, "Delete", type_, reason, note).await;
}

/// The full plan as a ConfigMap `<name>-delete-plan` beside the delete, owned by it:
/// `plan.txt` (one line per image: action, reference, digest, who keeps it) and
/// `delete-images.yaml` (what would be deleted, as oc-mirror's DeleteImageList). A plan too
/// large for a ConfigMap is stored gzipped as `plan.txt.gz`.
async fn plan_config_map(
    client: &kube::Client,
    disc: &DeleteImageSetConfiguration,
    resolved: &[Resolved],
) -> Result<String, kube::Error> {
    use std::io::Write as _;
    let ns = disc.namespace().unwrap_or_default();
    let name = format!("{}-delete-plan", disc.name_any());
    let text: String = delete::plan_lines(resolved).into_iter().map(|l| l + "\n").collect();
    let items = resolved.iter().filter(|r| r.action == Planned::Delete).map(|r| r.item.clone()).collect();
    let yaml = delete::DeleteImageList::new(items).to_yaml();
    let (data, binary) = if text.len() + yaml.len() < 900 * 1024 {
        (serde_json::json!({"plan.txt": text, "delete-images.yaml": yaml}), serde_json::json!({}))
    } else {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        let _ = gz.write_all(text.as_bytes());
        let bytes = gz.finish().unwrap_or_default();
        let b64 = k8s_openapi::ByteString(bytes);
        (serde_json::json!({}), serde_json::json!({"plan.txt.gz": b64}))
    };
    let owner = disc.controller_owner_ref(&());
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {OWNER_LABEL: format!("delete-{}", disc.uid().unwrap_or_default())},
                     "ownerReferences": owner.into_iter().collect::<Vec<_>>()},
        "data": data, "binaryData": binary,
    });
    let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client.clone(), &ns);
    api.patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&cm)).await?;
    Ok(name)
}

fn ready_reason(st: &DeleteStatus) -> Option<&str> {
    st.conditions.iter().find(|c| c.type_ == READY).map(|c| c.reason.as_str())
}

pub(super) async fn reconcile(disc: Arc<DeleteImageSetConfiguration>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    ctx.metrics.reconciles.fetch_add(1, Relaxed);
    if disc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // The object as the API server has it now, not as the watch cache last saw it: a cache
    // that has not seen this controller's last write would plan (and with an approval,
    // delete) again, and a status built on it would drop what that write said.
    let Some(disc) = super::reconcile::current(&ctx.client, disc.as_ref()).await?.map(Arc::new) else {
        return Ok(Action::await_change());
    };
    if disc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let generation = disc.metadata.generation;
    let old = disc.status.clone().unwrap_or_default();
    if settled(&old, generation) {
        return Ok(Action::await_change());
    }
    let mut st = old.clone();
    st.observed_generation = generation;
    let c = Cond { generation, now: jiff::Timestamp::now() };
    let k = key(&disc);
    let writer = Writer { client: ctx.client.clone(), disc: disc.clone(), server: std::sync::Mutex::new(old.clone()) };
    let write = |st: DeleteStatus| writer.write(st);
    let destination = match check(&disc) {
        Ok(d) => d,
        Err(msg) => {
            set_invalid(&mut st.conditions, &c, &msg);
            ctx.metrics.invalid_specs.fetch_add(1, Relaxed);
            write(st).await?;
            event(&ctx, &disc, EventType::Warning, "InvalidSpec", &msg).await;
            return Ok(Action::await_change());
        }
    };
    let ns = disc.namespace().unwrap_or_default();
    let opts = match apply::access_in(&ctx.client, &ns, disc.spec.auth_secret_ref.as_ref(), &disc.spec.registries).await
    {
        Ok(o) => o,
        Err(msg) => return failed(&ctx, &disc, st, &c, &writer, "AccessError", &msg, true).await,
    };
    let sets = Api::<ImageSetConfiguration>::all(ctx.client.clone()).list(&Default::default()).await?.items;
    if !old.conditions.iter().any(|x| x.type_ == PROGRESSING && x.status == "True") {
        let mut planning = st.clone();
        set_condition(&mut planning.conditions, &c, PROGRESSING, true, "Planning", "resolving the images to delete");
        writer.write(planning).await?;
    }
    let (resolved, lines, client) = match make_plan(ctx.shared.clone(), (*disc).clone(), destination, opts, sets).await
    {
        Ok(p) => p,
        Err(f) => return failed(&ctx, &disc, st, &c, &writer, f.reason, &f.message, f.retryable).await,
    };
    let digest = delete::plan_digest(&resolved);
    let (mut counts, listed) = summarise(&resolved);
    let warnings: String = lines.iter().filter(|l| l.starts_with("warning:")).map(|l| format!("; {l}")).collect();
    st.plan_config_map = Some(plan_config_map(&ctx.client, &disc, &resolved).await?);
    st.planned = listed;
    st.failed_images.clear();
    let fresh = old.plan_digest.as_deref() != Some(digest.as_str());
    let before = old.counts.clone();
    st.plan_digest = Some(digest.clone());
    let conds = &mut st.conditions;
    set_condition(conds, &c, DEGRADED, false, "AsExpected", "spec is valid");
    match disc.spec.approved_plan_digest.as_deref() {
        Some(a) if a == digest => {
            info!(delete = %k, to_delete = counts.to_delete, protected = counts.protected, "deleting the approved plan");
            let mut deleting = st.clone();
            let msg = format!("deleting the {} images of the approved plan {digest}", counts.to_delete);
            set_condition(&mut deleting.conditions, &c, PROGRESSING, true, "Deleting", &msg);
            writer.write(deleting).await?;
            let outcomes = match carry_out(resolved, client).await {
                Ok(o) => o,
                Err(f) => return failed(&ctx, &disc, st, &c, &writer, f.reason, &f.message, f.retryable).await,
            };
            let outcomes = match outcomes {
                Ok(o) => o,
                Err(refused) => {
                    st.counts = Some(counts);
                    return failed(&ctx, &disc, st, &c, &writer, "DeleteUnsupported", &refused.to_string(), false)
                        .await;
                }
            };
            let t = Tally::of(&outcomes);
            counts.deleted = t.deleted;
            counts.failed = t.failed;
            counts.already_gone = t.gone;
            ctx.metrics.images_deleted.fetch_add(t.deleted, Relaxed);
            ctx.metrics.images_protected.fetch_add(t.protected, Relaxed);
            st.failed_images = outcomes
                .iter()
                .filter_map(|(r, o)| match o {
                    Outcome::Failed(why) => Some(FailedImage {
                        source: r.item.image_name.clone(),
                        destination: r.item.image_reference.clone(),
                        reason: why.clone(),
                    }),
                    _ => None,
                })
                .take(MAX_LISTED_FAILURES)
                .collect();
            st.counts = Some(counts);
            st.completion_time = Some(jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string());
            let msg = format!(
                "{} deleted, {} protected, {} already gone, {} failed; blobs stay until the registry's garbage collection",
                t.deleted, t.protected, t.gone, t.failed
            );
            let conds = &mut st.conditions;
            let ok = t.failed == 0;
            let reason = if ok { "Deleted" } else { "DeleteIncomplete" };
            set_condition(conds, &c, READY, ok, reason, &msg);
            set_condition(conds, &c, PROGRESSING, false, reason, &msg);
            set_condition(conds, &c, DEGRADED, !ok, if ok { "AsExpected" } else { reason }, &msg);
            write(st).await?;
            let type_ = if ok { EventType::Normal } else { EventType::Warning };
            event(&ctx, &disc, type_, reason, &msg).await;
            info!(delete = %k, deleted = t.deleted, failed = t.failed, "{msg}");
            Ok(Action::await_change())
        }
        Some(a) => {
            let msg = stale_message(a, &digest, before.as_ref(), &counts);
            set_condition(conds, &c, READY, false, "ApprovalStale", &msg);
            set_condition(conds, &c, PROGRESSING, false, "ApprovalStale", &msg);
            st.counts = Some(counts);
            write(st).await?;
            event(&ctx, &disc, EventType::Warning, "ApprovalStale", &msg).await;
            Ok(Action::await_change())
        }
        None => {
            let msg = format!(
                "{} images to delete, {} protected, {} already gone; review the plan (ConfigMap {}), then set spec.approvedPlanDigest to {digest}{warnings}",
                counts.to_delete,
                counts.protected,
                counts.already_gone,
                st.plan_config_map.as_deref().unwrap_or_default()
            );
            set_condition(conds, &c, READY, false, "AwaitingApproval", &msg);
            set_condition(conds, &c, PROGRESSING, false, "AwaitingApproval", &msg);
            st.counts = Some(counts);
            write(st).await?;
            if fresh {
                event(&ctx, &disc, EventType::Normal, "PlanReady", &msg).await;
            }
            Ok(Action::await_change())
        }
    }
}

/// Whether the delete is done with `generation` until its spec changes: its outcome, or its
/// plan for review, describes that generation and nothing is under way. Status events of
/// its own writes then plan nothing again. Pure.
pub fn settled(st: &DeleteStatus, generation: Option<i64>) -> bool {
    let busy = st.conditions.iter().any(|x| x.type_ == PROGRESSING && x.status == "True");
    st.observed_generation == generation && !busy && ready_reason(st).is_some_and(|r| FINAL.contains(&r))
}

/// Writes one delete's status through a reconcile, each write completed with kstatus's
/// conditions and skipped when it would change nothing on the server.
struct Writer {
    client: kube::Client,
    disc: Arc<DeleteImageSetConfiguration>,
    /// The status the API server has: read at the start of the reconcile, then each write
    /// (one reconcile at a time per object, so nothing else writes it meanwhile).
    server: std::sync::Mutex<DeleteStatus>,
}

impl Writer {
    async fn write(&self, mut st: DeleteStatus) -> Result<(), ReconcileError> {
        super::status::delete_health(&mut st, jiff::Timestamp::now());
        let before = self.server.lock().expect("status").clone();
        if before != st {
            super::reconcile::apply_status(&self.client, self.disc.as_ref(), &st).await?;
            *self.server.lock().expect("status") = st;
        }
        Ok(())
    }
}

/// Records a delete that could not plan or execute; retried after a while when it may help.
#[allow(clippy::too_many_arguments)]
async fn failed(
    ctx: &Ctx,
    disc: &DeleteImageSetConfiguration,
    mut st: DeleteStatus,
    c: &Cond,
    writer: &Writer,
    reason: &str,
    msg: &str,
    retryable: bool,
) -> Result<Action, ReconcileError> {
    let conds = &mut st.conditions;
    set_condition(conds, c, READY, false, reason, msg);
    set_condition(conds, c, PROGRESSING, false, reason, msg);
    set_condition(conds, c, DEGRADED, true, reason, msg);
    ctx.metrics.failed(reason);
    writer.write(st).await?;
    event(ctx, disc, EventType::Warning, reason, msg).await;
    warn!(delete = %key(disc), reason, "{msg}");
    Ok(if retryable { Action::requeue(ctx.retry.max(Duration::from_secs(5))) } else { Action::await_change() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_approval_says_what_moved() {
        let before = DeleteCounts { total: 3, to_delete: 3, ..Default::default() };
        let now = DeleteCounts { total: 3, to_delete: 2, protected: 1, ..Default::default() };
        let m = stale_message("sha256:a", "sha256:b", Some(&before), &now);
        assert!(m.contains("to delete 3 -> 2") && m.contains("protected 0 -> 1"), "{m}");
        assert!(m.starts_with("nothing deleted") && m.contains("sha256:b"), "{m}");
        let m = stale_message("sha256:a", "sha256:b", Some(&now), &now);
        assert!(m.contains("another digest"), "{m}");
    }

    #[test]
    fn a_plan_awaiting_approval_or_an_outcome_settles_its_generation_unless_work_is_under_way() {
        let c = Cond { generation: Some(2), now: jiff::Timestamp::now() };
        let mut st = DeleteStatus { observed_generation: Some(2), ..Default::default() };
        assert!(!settled(&st, Some(2)), "nothing planned yet");
        for reason in FINAL {
            set_condition(&mut st.conditions, &c, READY, *reason == "Deleted", reason, "m");
            set_condition(&mut st.conditions, &c, PROGRESSING, false, reason, "m");
            assert!(settled(&st, Some(2)), "{reason}");
            assert!(!settled(&st, Some(3)), "{reason}: a new generation plans again");
        }
        // Planning or deleting was under way when the operator stopped: it goes on.
        set_condition(&mut st.conditions, &c, PROGRESSING, true, "Deleting", "m");
        assert!(!settled(&st, Some(2)));
        for reason in ["RegistryUnavailable", "PlanFailed", "InvalidSpec"] {
            set_condition(&mut st.conditions, &c, READY, false, reason, "m");
            set_condition(&mut st.conditions, &c, PROGRESSING, false, reason, "m");
            assert!(!settled(&st, Some(2)), "{reason} is retried or checked again");
        }
    }

    #[test]
    fn a_delete_that_names_nothing_is_invalid() {
        let disc: DeleteImageSetConfiguration = serde_json::from_value(serde_json::json!({
            "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "DeleteImageSetConfiguration",
            "metadata": {"name": "d", "namespace": "n"},
            "spec": {"destination": "docker://r.example.com", "delete": {}},
        }))
        .unwrap();
        assert!(check(&disc).unwrap_err().starts_with("spec.delete"));
    }
}
