//! The controller: watches image sets, runs each one in the background through the shared
//! cache, applies what it produces, and reports progress and outcome in status and events.

pub(crate) mod apply;
mod archives;
mod decide;
mod delete;
mod pending;
pub mod rbac;
mod reconcile;
mod run;
pub mod shard_worker;
mod shards;
mod status;

pub use run::naming_prefix;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::Client;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use tracing::{info, warn};

use kube::runtime::events::{Recorder, Reporter};

use crate::api::names::FIELD_MANAGER;
use crate::api::{ImageSetConfiguration, validate};
use crate::cli::RunArgs;
use crate::plan::{self, Destination};

pub use status::{Cond, set_condition, set_invalid};

/// Why the controller could not start or had to stop (its runtime, admin address, cluster
/// client, cache, leadership).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

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

pub use crate::api::parse_duration;

/// The spec's first problem, naming the field. Pure.
pub fn check_spec(isc: &ImageSetConfiguration) -> Result<(), String> {
    validate::validate_spec(&isc.spec).map_err(|e| e.to_string())?;
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

fn error_policy(_isc: Arc<ImageSetConfiguration>, err: &ReconcileError, ctx: Arc<Ctx>) -> Action {
    ctx.metrics.reconcile_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ctx.metrics.failed(err.reason());
    warn!(reason = err.reason(), error = %err, "reconcile failed");
    Action::requeue(Duration::from_secs(15))
}

/// Waits until this replica holds the `imageset-operator` Lease in its namespace; returns
/// the channel that says whether it still does.
async fn leadership(client: &Client, args: &RunArgs) -> Result<tokio::sync::watch::Receiver<bool>, StartError> {
    let identity = std::env::var("POD_NAME").ok().filter(|n| !n.is_empty()).unwrap_or_else(|| {
        // Outside a pod: the host's name (HOSTNAME, else /proc), else just the process.
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| !h.trim().is_empty())
            .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
            .unwrap_or_else(|| "imageset-operator".into());
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
        .map_err(|e| StartError(format!("leader election (Lease {}/imageset-operator): {e}", args.namespace)))?;
    let (mut rx, _task) = manager.watch().await;
    info!(%identity, namespace = %args.namespace, "waiting for leadership");
    while !*rx.borrow_and_update() {
        rx.changed().await.map_err(|e| StartError(format!("leader election: {e}")))?;
    }
    info!(%identity, "leading: starting the controllers");
    Ok(rx)
}

/// `imageset-operator run`: blocks until interrupted.
pub fn run(args: RunArgs) -> Result<(), StartError> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| StartError(format!("tokio runtime: {e}")))?;
    let result = rt.block_on(async {
        let metrics = Arc::new(crate::admin::Metrics::default());
        let listener = tokio::net::TcpListener::bind(&args.admin_addr)
            .await
            .map_err(|e| StartError(format!("--admin-addr {}: {e}", args.admin_addr)))?;
        info!(addr = %args.admin_addr, "admin endpoint listening");
        tokio::spawn(crate::admin::serve(listener, metrics.clone()));
        let client = Client::try_default().await.map_err(|e| StartError(format!("kubernetes client: {e}")))?;
        let cache = crate::cache::Cache::open(&args.cache_dir.join(crate::pipeline::copy::CACHE_SUBDIR))
            .map_err(|e| StartError(format!("--cache-dir: {e}")))?;
        let cache = Arc::new(cache);
        let transfers = args.registry_requests as usize;
        let _ = metrics.cache.set(cache.clone());
        let shared = Arc::new(run::Shared {
            engine: Arc::new(crate::copy::Engine::new(cache.clone(), transfers)),
            registry_slots: Default::default(),
            releases: args.release.sources(Vec::new()),
            cache,
            root: args.cache_dir.clone(),
            archives: args.archive_dir.clone(),
            archive_locks: Default::default(),
            slots: Arc::new(tokio::sync::Semaphore::new(args.max_concurrent_runs.max(1))),
            retry_slots: Arc::new(tokio::sync::Semaphore::new(1)),
            retry_times: args.retry_times,
            registry_requests: args.registry_requests as usize,
            stall_timeout: Duration::from_secs(args.stall_timeout),
            unreachable_after: Duration::from_secs(args.unreachable_after),
            metrics: metrics.clone(),
            runs: Default::default(),
            done: Default::default(),
            shards: shard_control(&args, &client).await?,
            leaving: Default::default(),
        });
        let allowed = if args.allowed_namespaces.is_empty() {
            vec![args.namespace.clone()]
        } else {
            args.allowed_namespaces.clone()
        };
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "imageset-operator".into(),
                // Events say which replica (and which installation) reported them.
                instance: std::env::var("POD_NAME").ok().filter(|n| !n.is_empty()),
            },
        );
        // One controller of each kind per watched namespace (an Api of one namespace needs a
        // Role there only), or one over the cluster.
        let scopes = watch_scopes(&args.watch_namespaces);
        let (apis, discs): (Vec<Api<ImageSetConfiguration>>, Vec<Api<crate::api::DeleteImageSetConfiguration>>) =
            scopes
                .iter()
                .map(|ns| match ns {
                    Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
                    None => (Api::all(client.clone()), Api::all(client.clone())),
                })
                .unzip();
        // Only the leader watches and copies; a standby waits here, and a leader that loses
        // its lease exits (its pod restarts as a standby) rather than copy beside another.
        let lease = if args.leader_election { Some(leadership(&client, &args).await?) } else { None };
        let named: Vec<&str> = scopes.iter().flatten().map(String::as_str).collect();
        let watching = if named.is_empty() { "every namespace".to_string() } else { named.join(",") };
        info!(namespaces = %watching, "watching ImageSetConfigurations and DeleteImageSetConfigurations");
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
        let isc = futures::future::join_all(apis.into_iter().map(|api| {
            Controller::new(api, watcher::Config::default())
                .graceful_shutdown_on(signalled(signal_rx.clone()))
                .run(reconcile::reconcile, error_policy, ctx.clone())
                .for_each(|_| futures::future::ready(()))
        }));
        let disc = futures::future::join_all(discs.into_iter().map(|discs| {
            Controller::new(discs, watcher::Config::default())
                .graceful_shutdown_on(signalled(signal_rx.clone()))
                .run(
                    delete::reconcile,
                    |_, err: &ReconcileError, ctx: Arc<Ctx>| {
                        ctx.metrics.reconcile_errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        warn!(reason = err.reason(), error = %err, "reconcile of a delete failed");
                        Action::requeue(Duration::from_secs(15))
                    },
                    ctx.clone(),
                )
                .for_each(|_| futures::future::ready(()))
        }));
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
                    _ = lost => Err(StartError("leadership lost: exiting so that only one replica copies".into())),
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

/// The image of the operator's own Pod (`POD_NAME` in its namespace).
async fn own_image(client: &Client, namespace: &str) -> Result<String, String> {
    let pod = std::env::var("POD_NAME").ok().filter(|p| !p.is_empty()).ok_or("POD_NAME is not set")?;
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), namespace);
    let p = pods.get(&pod).await.map_err(|e| format!("reading pod {namespace}/{pod}: {e}"))?;
    p.spec
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.image)
        .ok_or_else(|| format!("pod {namespace}/{pod} names no image"))
}

/// How shard Jobs are run: `None` with `--max-shards=1`, or when no image is known for them.
async fn shard_control(args: &RunArgs, client: &Client) -> Result<Option<Arc<shards::ShardControl>>, StartError> {
    let s = &args.shards;
    if s.max_shards <= 1 {
        return Ok(None);
    }
    let image = match s.shard_image.clone().filter(|i| !i.is_empty()) {
        Some(i) => i,
        None => match own_image(client, &args.namespace).await {
            Ok(i) => i,
            Err(e) => {
                warn!(error = %e, "no image for shard Jobs (set --shard-image): spec.shards above 1 is refused");
                return Ok(None);
            }
        },
    };
    let cache =
        crate::shard::job::CacheVolume::parse(&s.shard_cache).map_err(|e| StartError(format!("--shard-cache: {e}")))?;
    let resources = match s.shard_resources.trim() {
        "" | "{}" | "null" => None,
        text => {
            let r: k8s_openapi::api::core::v1::ResourceRequirements = serde_json::from_str(text)
                .map_err(|e| StartError(format!("--shard-resources: not a ResourceRequirements: {e}")))?;
            Some(serde_json::to_value(r).expect("resources serialise"))
        }
    };
    Ok(Some(Arc::new(shards::ShardControl {
        kube: client.clone(),
        job: crate::shard::job::JobSettings {
            namespace: args.namespace.clone(),
            image,
            service_account: s.service_account.clone(),
            cache,
            cache_dir: args.cache_dir.clone(),
            backoff_per_index: s.shard_backoff as i32,
            ttl_seconds: 600,
            resources,
        },
        max_shards: s.max_shards,
        pods: Arc::new(tokio::sync::Semaphore::new(s.max_shard_pods as usize)),
        max_pods: s.max_shard_pods,
        start_timeout: Duration::from_secs(s.shard_start_timeout),
    })))
}

/// The namespaces the controllers watch: each of `--watch-namespaces` once (blanks ignored),
/// or `None` alone for every namespace. Pure.
fn watch_scopes(namespaces: &[String]) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = Vec::new();
    for ns in namespaces.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !out.iter().any(|o| o.as_deref() == Some(ns)) {
            out.push(Some(ns.to_string()));
        }
    }
    if out.is_empty() { vec![None] } else { out }
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
    // Shard Jobs under way are left running for the next leader, which takes them over.
    shared.leaving.store(true, std::sync::atomic::Ordering::Relaxed);
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
    fn an_interval_that_cannot_be_represented_is_an_invalid_spec_naming_the_field() {
        let isc: ImageSetConfiguration = serde_json::from_value(serde_json::json!({
            "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration", "metadata": {"name": "t"},
            "spec": {"destination": "docker://r.example.com", "resyncInterval": "99999999999999999999h",
                     "mirror": {"additionalImages": [{"name": "quay.io/a/b:1"}]}},
        }))
        .unwrap();
        let e = check_spec(&isc).unwrap_err();
        assert!(e.contains("spec.resyncInterval"), "{e}");
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
