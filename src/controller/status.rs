//! Condition bookkeeping (Kubernetes API conventions: transition time moves only on change),
//! and the conditions GitOps tools read, derived from ours before each write: kstatus's
//! `Reconciling` and `Stalled` (sigs.k8s.io/cli-utils/pkg/kstatus/status: abnormal-true,
//! absent when false) and `ChangesHeld`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::names::{DEGRADED, PROGRESSING, READY};
use crate::api::status::conditions::{CHANGES_HELD, RECONCILING, STALLED};
use crate::api::status::{DeleteStatus, FailedImage, ImageSetStatus};

/// Generation and clock for conditions written in one pass.
pub struct Cond {
    /// metadata.generation the conditions describe.
    pub generation: Option<i64>,
    /// Now.
    pub now: jiff::Timestamp,
}

/// Sets one condition; `lastTransitionTime` changes only when the status does.
pub fn set_condition(conds: &mut Vec<Condition>, c: &Cond, type_: &str, status: bool, reason: &str, message: &str) {
    let status = if status { "True" } else { "False" }.to_string();
    let existing = conds.iter_mut().find(|x| x.type_ == type_);
    match existing {
        Some(x) => {
            if x.status != status {
                x.last_transition_time = Time(c.now);
            }
            x.status = status;
            x.reason = reason.to_string();
            x.message = message.to_string();
            x.observed_generation = c.generation;
        }
        None => {
            conds.push(Condition {
                type_: type_.to_string(),
                status,
                reason: reason.to_string(),
                message: message.to_string(),
                observed_generation: c.generation,
                last_transition_time: Time(c.now),
            });
            conds.sort_by(|a, b| a.type_.cmp(&b.type_));
        }
    }
}

/// Marks a spec invalid: not Ready, not Progressing (it waits for a fix), Degraded, with `msg` naming the field.
pub fn set_invalid(conds: &mut Vec<Condition>, c: &Cond, msg: &str) {
    set_condition(conds, c, READY, false, "InvalidSpec", msg);
    set_condition(conds, c, PROGRESSING, false, "InvalidSpec", "waiting for the spec to be fixed");
    set_condition(conds, c, DEGRADED, true, "InvalidSpec", msg);
}

/// Removes a condition (kstatus's abnormal-true conditions are absent when false).
fn remove_condition(conds: &mut Vec<Condition>, type_: &str) {
    conds.retain(|x| x.type_ != type_);
}

fn find<'a>(conds: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conds.iter().find(|x| x.type_ == type_)
}

/// kstatus's conditions from ours: `Reconciling` while `Progressing` is true (with its reason
/// and message), else `Stalled` when `stalled` says why; each absent otherwise. Never both:
/// kstatus reads whichever comes first.
fn kstatus_conditions(conds: &mut Vec<Condition>, c: &Cond, stalled: Option<(String, String)>) {
    let progressing =
        find(conds, PROGRESSING).filter(|p| p.status == "True").map(|p| (p.reason.clone(), p.message.clone()));
    match &progressing {
        Some((reason, message)) => set_condition(conds, c, RECONCILING, true, reason, message),
        None => remove_condition(conds, RECONCILING),
    }
    match stalled.filter(|_| progressing.is_none()) {
        Some((reason, message)) => set_condition(conds, c, STALLED, true, &reason, &message),
        None => remove_condition(conds, STALLED),
    }
}

/// Ready reasons of an image set that cannot progress without a change: the spec (or a
/// capability this build lacks), the Secret, CA or template ConfigMap it names, or cluster
/// objects another manager owns.
pub const STALLED_IMAGE_SET: &[&str] = &["InvalidSpec", "Unsupported", "AccessError", "Conflict"];

/// Ready reasons of a delete that cannot progress without a change: the spec, its Secret, a
/// registry that refuses deletes, deletions that failed (a delete runs once per generation),
/// or an approval of a plan that no longer stands.
pub const STALLED_DELETE: &[&str] =
    &["InvalidSpec", "AccessError", "DeleteUnsupported", "DeleteIncomplete", "ApprovalStale"];

/// Failed-image reasons that say the registry refused this image set's credentials.
const DENIED: &[&str] = &["Denied:", "AccessDenied:"];

/// Why an image set cannot progress without a change, if it cannot: a stalling Ready
/// reason, or a run whose every failed image was refused for its credentials (all of them
/// listed, so the claim covers every failure). Pure.
pub fn image_set_stalled(st: &ImageSetStatus) -> Option<(String, String)> {
    let ready = find(&st.conditions, READY).filter(|r| r.status == "False")?;
    if STALLED_IMAGE_SET.contains(&ready.reason.as_str()) {
        return Some((ready.reason.clone(), ready.message.clone()));
    }
    let failed = st.counts.as_ref().map_or(0, |c| c.failed);
    let denied: Vec<&FailedImage> =
        st.failed_images.iter().filter(|f| DENIED.iter().any(|d| f.reason.starts_with(d))).collect();
    if ready.reason == "ImagesFailed" && failed > 0 && denied.len() as u64 == failed {
        let first = &denied[0];
        return Some((
            "AccessDenied".into(),
            format!(
                "{failed} images refused with this image set's credentials (spec.authSecretRef); first: {}: {}",
                first.source, first.reason
            ),
        ));
    }
    None
}

/// Why a delete cannot progress without a change, if it cannot. Pure.
pub fn delete_stalled(st: &DeleteStatus) -> Option<(String, String)> {
    let ready = find(&st.conditions, READY).filter(|r| r.status == "False")?;
    STALLED_DELETE.contains(&ready.reason.as_str()).then(|| (ready.reason.clone(), ready.message.clone()))
}

/// Completes an image set's status before it is written: kstatus's `Reconciling` and
/// `Stalled`, and `ChangesHeld` while cluster-object changes wait for approval. Pure.
pub fn image_set_health(st: &mut ImageSetStatus, now: jiff::Timestamp) {
    let c = Cond { generation: st.observed_generation, now };
    let stalled = image_set_stalled(st);
    kstatus_conditions(&mut st.conditions, &c, stalled);
    match &st.pending_changes {
        Some(p) => {
            let msg = super::pending::held_message(p);
            set_condition(&mut st.conditions, &c, CHANGES_HELD, true, "AwaitingApproval", &msg);
        }
        None => remove_condition(&mut st.conditions, CHANGES_HELD),
    }
}

/// Completes a delete's status before it is written: kstatus's `Reconciling` and `Stalled`.
/// Pure.
pub fn delete_health(st: &mut DeleteStatus, now: jiff::Timestamp) {
    let c = Cond { generation: st.observed_generation, now };
    let stalled = delete_stalled(st);
    kstatus_conditions(&mut st.conditions, &c, stalled);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::status::{Counts, PendingChange, PendingChanges};

    fn at(secs: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(1_700_000_000 + secs).unwrap()
    }

    fn with(conds: &[(&str, bool, &str)]) -> ImageSetStatus {
        let mut st = ImageSetStatus { observed_generation: Some(3), ..Default::default() };
        let c = Cond { generation: Some(3), now: at(0) };
        for (t, s, r) in conds {
            set_condition(&mut st.conditions, &c, t, *s, r, &format!("{r} message"));
        }
        st
    }

    fn get<'a>(st: &'a [Condition], type_: &str) -> Option<(&'a str, &'a str)> {
        find(st, type_).map(|c| (c.status.as_str(), c.reason.as_str()))
    }

    #[test]
    fn reconciling_follows_progressing_and_is_absent_otherwise() {
        let mut st = with(&[(READY, true, "Mirrored"), (PROGRESSING, true, "Resync"), (DEGRADED, false, "AsExpected")]);
        image_set_health(&mut st, at(1));
        let r = find(&st.conditions, RECONCILING).unwrap();
        assert_eq!((r.status.as_str(), r.reason.as_str(), r.message.as_str()), ("True", "Resync", "Resync message"));
        assert_eq!(r.observed_generation, Some(3));
        assert_eq!(get(&st.conditions, STALLED), None);
        // The run ends: Reconciling goes, nothing else is added.
        let c = Cond { generation: Some(3), now: at(2) };
        set_condition(&mut st.conditions, &c, PROGRESSING, false, "Mirrored", "done");
        image_set_health(&mut st, at(2));
        assert_eq!(get(&st.conditions, RECONCILING), None);
        let types: Vec<&str> = st.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [DEGRADED, PROGRESSING, READY]);
    }

    #[test]
    fn what_needs_a_change_is_stalled_and_a_new_attempt_clears_it() {
        for reason in STALLED_IMAGE_SET {
            let mut st = with(&[(READY, false, reason), (PROGRESSING, false, "Failed"), (DEGRADED, true, reason)]);
            image_set_health(&mut st, at(1));
            assert_eq!(get(&st.conditions, STALLED), Some(("True", *reason)), "{reason}");
            assert_eq!(find(&st.conditions, STALLED).unwrap().message, format!("{reason} message"));
            assert_eq!(get(&st.conditions, RECONCILING), None);
            // A retry starts (a Secret created, a conflict resolved): reconciling, not stalled.
            let c = Cond { generation: Some(3), now: at(5) };
            set_condition(&mut st.conditions, &c, PROGRESSING, true, "Started", "collecting and copying");
            image_set_health(&mut st, at(5));
            assert_eq!(get(&st.conditions, STALLED), None, "{reason}");
            assert_eq!(get(&st.conditions, RECONCILING), Some(("True", "Started")));
        }
        // Retried failures are not stalled: registries come back.
        for reason in ["ImagesFailed", "ReleaseSignatureInvalid", "CatalogFetchFailed", "RunCancelled", "Started"] {
            let mut st = with(&[(READY, false, reason), (PROGRESSING, false, "Failed"), (DEGRADED, true, reason)]);
            image_set_health(&mut st, at(1));
            assert_eq!(get(&st.conditions, STALLED), None, "{reason}");
        }
    }

    #[test]
    fn images_refused_for_credentials_stall_only_when_every_failure_is_such() {
        let failure = |source: &str, reason: &str| FailedImage {
            source: source.into(),
            destination: format!("dst/{source}"),
            reason: reason.into(),
        };
        let denied = "Denied: r.example.com/a:1: access denied (check the credentials for r.example.com)";
        let mut st =
            with(&[(READY, false, "ImagesFailed"), (PROGRESSING, false, "Failed"), (DEGRADED, true, "ImagesFailed")]);
        st.counts = Some(Counts { total: 3, failed: 2, skipped: 1, ..Default::default() });
        st.failed_images = vec![
            failure("r.example.com/a:1", denied),
            failure("r.example.com/b:1", "AccessDenied: not proven for this image set"),
            failure("r.example.com/bundle:1", "BundleSkipped: a related image failed"),
        ];
        let (reason, message) = image_set_stalled(&st).unwrap();
        assert_eq!(reason, "AccessDenied");
        assert!(message.starts_with("2 images refused") && message.contains("r.example.com/a:1"), "{message}");
        // One failure of another kind: a retry may help.
        let mut mixed = st.clone();
        mixed.failed_images[1].reason = "RegistryUnreachable: r.example.com: unreachable".into();
        assert_eq!(image_set_stalled(&mixed), None);
        // More failures than listed: the claim would cover images not seen.
        let mut more = st.clone();
        more.counts.as_mut().unwrap().failed = 60;
        assert_eq!(image_set_stalled(&more), None);
        // Ready: nothing is stalled, whatever the list says.
        let mut ready = st;
        ready.conditions = with(&[(READY, true, "Mirrored")]).conditions;
        assert_eq!(image_set_stalled(&ready), None);
    }

    #[test]
    fn held_changes_have_their_own_condition_with_count_and_digest() {
        let mut st =
            with(&[(READY, true, "Mirrored"), (PROGRESSING, false, "Mirrored"), (DEGRADED, false, "AsExpected")]);
        let change =
            PendingChange { action: "Update".into(), kind: "ImageDigestMirrorSet".into(), ..Default::default() };
        st.pending_changes = Some(PendingChanges {
            digest: "sha256:abc".into(),
            reboots_nodes: true,
            objects: vec![change.clone(), change],
        });
        image_set_health(&mut st, at(1));
        let held = find(&st.conditions, CHANGES_HELD).unwrap();
        assert_eq!((held.status.as_str(), held.reason.as_str()), ("True", "AwaitingApproval"));
        assert!(held.message.starts_with("2 cluster object changes held for review, applying them reboots nodes"));
        assert!(held.message.ends_with("approvedChangesDigest: sha256:abc"), "{}", held.message);
        assert_eq!(get(&st.conditions, READY), Some(("True", "Mirrored")), "Ready still says the mirror is complete");
        // Written again unchanged: the transition time stays.
        let before = held.last_transition_time.clone();
        image_set_health(&mut st, at(100));
        assert_eq!(find(&st.conditions, CHANGES_HELD).unwrap().last_transition_time, before);
        st.pending_changes = None;
        image_set_health(&mut st, at(101));
        assert_eq!(get(&st.conditions, CHANGES_HELD), None);
    }

    #[test]
    fn a_delete_awaiting_approval_is_not_stalled_and_a_stale_approval_is() {
        let mut st = DeleteStatus { observed_generation: Some(2), ..Default::default() };
        let c = Cond { generation: Some(2), now: at(0) };
        set_condition(&mut st.conditions, &c, READY, false, "AwaitingApproval", "review the plan");
        set_condition(&mut st.conditions, &c, PROGRESSING, false, "AwaitingApproval", "review the plan");
        delete_health(&mut st, at(1));
        assert_eq!(get(&st.conditions, STALLED), None);
        assert_eq!(get(&st.conditions, RECONCILING), None);
        for reason in STALLED_DELETE {
            set_condition(&mut st.conditions, &c, READY, false, reason, "why");
            delete_health(&mut st, at(2));
            assert_eq!(get(&st.conditions, STALLED), Some(("True", *reason)));
        }
        set_condition(&mut st.conditions, &c, PROGRESSING, true, "Deleting", "deleting 2 images");
        delete_health(&mut st, at(3));
        assert_eq!(get(&st.conditions, RECONCILING), Some(("True", "Deleting")));
        assert_eq!(get(&st.conditions, STALLED), None);
        set_condition(&mut st.conditions, &c, READY, true, "Deleted", "2 deleted");
        set_condition(&mut st.conditions, &c, PROGRESSING, false, "Deleted", "2 deleted");
        delete_health(&mut st, at(4));
        assert_eq!((get(&st.conditions, RECONCILING), get(&st.conditions, STALLED)), (None, None));
    }
}
