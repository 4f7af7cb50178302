//! The controller: watches image sets and reports what each one asks for. Steps that need
//! the copy engine report honestly that this build cannot run them yet.

mod delete;
mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use crate::api::names::{DEGRADED, FIELD_MANAGER, PROGRESSING, READY};
use crate::api::status::{Counts, ImageSetStatus};
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

/// The status an ImageSetConfiguration's spec leads to before any copy, and whether the spec is valid. Pure.
pub fn plan_status(isc: &ImageSetConfiguration, now: jiff::Timestamp) -> (ImageSetStatus, bool) {
    let generation = isc.metadata.generation;
    let mut st = isc.status.clone().unwrap_or_default();
    st.observed_generation = generation;
    let planned = validate::validate_mirror("spec.mirror", &isc.spec.mirror)
        .map_err(|e| e.to_string())
        .and_then(|()| Destination::parse(&isc.spec.destination).map_err(|e| format!("spec.destination: {e}")))
        .and_then(|d| {
            plan::plan_additional(&isc.spec.mirror, &d, isc.spec.max_nested_paths.unwrap_or(0), false)
                .map_err(|e| format!("spec.mirror.{e}"))
        });
    let c = Cond { generation, now };
    let conds = &mut st.conditions;
    let valid = match planned {
        Err(msg) => {
            set_invalid(conds, &c, &msg);
            false
        }
        Ok(plan) => {
            let msg = format!(
                "{} images planned ({} blocked); copying is not available in this build",
                plan.items.len(),
                plan.blocked.len()
            );
            set_condition(conds, &c, READY, false, "CopyUnavailable", &msg);
            set_condition(conds, &c, PROGRESSING, false, "Planned", &msg);
            set_condition(conds, &c, DEGRADED, false, "AsExpected", "spec is valid");
            st.plan_digest = Some(plan.digest());
            st.counts = Some(Counts { total: plan.items.len() as u64, ..Default::default() });
            true
        }
    };
    (st, valid)
}

async fn reconcile(isc: Arc<ImageSetConfiguration>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    ctx.metrics.reconciles.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (status, valid) = plan_status(&isc, jiff::Timestamp::now());
    if isc.status.as_ref() != Some(&status) {
        apply_status(&ctx.client, isc.as_ref(), &status).await?;
        info!(namespace = %isc.namespace().unwrap_or_default(), name = %isc.name_any(), valid, "status updated");
    }
    if !valid {
        ctx.metrics.invalid_specs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return Ok(Action::await_change());
    }
    let resync = isc.spec.resync_interval.as_deref().and_then(parse_duration).unwrap_or(DEFAULT_RESYNC);
    Ok(Action::requeue(resync))
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
    warn!(reason = err.reason(), error = %err, "reconcile failed");
    Action::requeue(Duration::from_secs(15))
}

/// `imageset-operator run`: blocks until interrupted.
pub fn run(args: RunArgs) -> Result<(), CliError> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| CliError::Unsupported(format!("tokio runtime: {e}")))?;
    rt.block_on(async {
        let metrics = Arc::new(crate::admin::Metrics::default());
        let listener = tokio::net::TcpListener::bind(&args.admin_addr)
            .await
            .map_err(|e| CliError::Unsupported(format!("--admin-addr {}: {e}", args.admin_addr)))?;
        info!(addr = %args.admin_addr, "admin endpoint listening");
        tokio::spawn(crate::admin::serve(listener, metrics.clone()));
        let client =
            Client::try_default().await.map_err(|e| CliError::Unsupported(format!("kubernetes client: {e}")))?;
        let api: Api<ImageSetConfiguration> = Api::all(client.clone());
        let discs: Api<crate::api::DeleteImageSetConfiguration> = Api::all(client.clone());
        info!("watching ImageSetConfigurations and DeleteImageSetConfigurations");
        metrics.ready.store(true, std::sync::atomic::Ordering::Relaxed);
        let ctx = Arc::new(Ctx { client, metrics });
        let isc = Controller::new(api, watcher::Config::default())
            .shutdown_on_signal()
            .run(reconcile, error_policy, ctx.clone())
            .for_each(|_| futures::future::ready(()));
        let disc = Controller::new(discs, watcher::Config::default())
            .shutdown_on_signal()
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
        futures::join!(isc, disc);
        Ok(())
    })
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
}
