//! Condition bookkeeping (Kubernetes API conventions: transition time moves only on change).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::names::{DEGRADED, PROGRESSING, READY};

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
