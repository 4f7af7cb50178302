//! DeleteImageSetConfiguration: validate, plan, and wait for approval of that exact plan.

use std::sync::Arc;

use kube::Client;
use kube::runtime::controller::Action;

use super::{Cond, ReconcileError, set_condition, set_invalid};
use crate::api::names::{DEGRADED, PROGRESSING, READY};
use crate::api::status::{Counts, DeleteStatus};
use crate::api::{DeleteImageSetConfiguration, validate};
use crate::plan::{self, Destination};

/// The status a DeleteImageSetConfiguration's spec leads to, and whether it is valid. Pure.
pub fn plan_status(disc: &DeleteImageSetConfiguration, now: jiff::Timestamp) -> (DeleteStatus, bool) {
    let generation = disc.metadata.generation;
    let mut st = disc.status.clone().unwrap_or_default();
    st.observed_generation = generation;
    let spec = &disc.spec;
    let planned = validate::validate_delete("spec.delete", &spec.delete)
        .map_err(|e| e.to_string())
        .and_then(|()| Destination::parse(&spec.destination).map_err(|e| format!("spec.destination: {e}")))
        .and_then(|d| {
            plan::plan_delete(&spec.delete, &d, spec.max_nested_paths.unwrap_or(0))
                .map_err(|e| format!("spec.delete.{e}"))
        });
    let c = Cond { generation, now };
    let conds = &mut st.conditions;
    match planned {
        Err(msg) => {
            set_invalid(conds, &c, &msg);
            (st, false)
        }
        Ok(plan) => {
            let digest = plan.digest();
            let n = plan.items.len();
            let (reason, msg) = if spec.approved_plan_digest.as_deref() == Some(digest.as_str()) {
                ("DeleteUnavailable", format!("plan of {n} images approved; deleting is not available in this build"))
            } else {
                (
                    "AwaitingApproval",
                    format!(
                        "{n} images planned for deletion; review them, then set spec.approvedPlanDigest to {digest}"
                    ),
                )
            };
            set_condition(conds, &c, READY, false, reason, &msg);
            set_condition(conds, &c, PROGRESSING, false, reason, &msg);
            set_condition(conds, &c, DEGRADED, false, "AsExpected", "spec is valid");
            st.plan_digest = Some(digest);
            st.counts = Some(Counts { total: n as u64, ..Default::default() });
            (st, true)
        }
    }
}

pub(super) async fn reconcile(
    disc: Arc<DeleteImageSetConfiguration>,
    client: Client,
) -> Result<Action, ReconcileError> {
    let (status, _valid) = plan_status(&disc, jiff::Timestamp::now());
    if disc.status.as_ref() != Some(&status) {
        super::reconcile::apply_status(&client, disc.as_ref(), &status).await?;
    }
    // Nothing runs on a timer: only a spec change (an approval) moves a delete on.
    Ok(Action::await_change())
}
