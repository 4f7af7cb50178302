//! `imageset-operator shard`: one index of a shard Job. Reads the Job's request, the image
//! set and its own Secret through the API (as the operator's ServiceAccount), copies its part
//! of the plan through the cache, and writes its progress and report for the operator.
//!
//! Images that fail are reported and the shard still succeeds; only a shard that could not
//! work (or was killed) fails its pod, and the Job then retries that index alone.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;

use crate::api::ImageSetConfiguration;
use crate::cache::Cache;
use crate::copy::{Engine, Options, Source, Target};
use crate::plan::CopyItem;
use crate::registry::Client;
use crate::shard::{
    ItemReport, JOB_LABEL, PROGRESS_KEY, REPORT_KEY, SET_UID_LABEL, ShardProgress, ShardReport, ShardRequest,
};

/// How long a shard waits for its request (the operator writes it right after the Job).
const REQUEST_WAIT: Duration = Duration::from_secs(120);
/// How often progress is written.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Field manager of what shards write.
const MANAGER: &str = "imageset-operator-shard";

/// Runs the shard; returns summary lines, or why it could not work.
pub fn run(args: &crate::cli::ShardFlags) -> Result<Vec<String>, String> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| format!("tokio runtime: {e}"))?;
    rt.block_on(work(args))
}

async fn work(args: &crate::cli::ShardFlags) -> Result<Vec<String>, String> {
    let kube = kube::Client::try_default().await.map_err(|e| format!("kubernetes client: {e}"))?;
    let cms: Api<ConfigMap> = Api::namespaced(kube.clone(), &args.namespace);
    let name = crate::shard::request_name(&args.request, args.index);
    let (req, job_uid) = request(&cms, &name).await?;
    if req.index != args.index {
        return Err(format!("{name} is the request of index {}, not {}", req.index, args.index));
    }
    let items: Vec<CopyItem> = req.items.iter().cloned().map(CopyItem::from).collect();
    let set = &req.image_set;
    let sets: Api<ImageSetConfiguration> = Api::namespaced(kube.clone(), &set.namespace);
    // The operator's rights on image sets are list and watch: no get.
    let found = sets
        .list(&ListParams::default().fields(&format!("metadata.name={}", set.name)))
        .await
        .map_err(|e| format!("reading image set {}/{}: {e}", set.namespace, set.name))?;
    let isc = found
        .items
        .into_iter()
        .find(|i| i.metadata.uid.as_deref() == Some(set.uid.as_str()))
        .ok_or_else(|| format!("image set {}/{} (uid {}) is gone", set.namespace, set.name, set.uid))?;
    let mut opts = crate::controller::apply::access(&kube, &isc).await?;
    opts.prove_cached = req.shared_cache;
    opts.backoff.retries = req.retry_times;
    opts.stall_timeout = Duration::from_secs(req.stall_timeout_secs);
    opts.breaker_window = Duration::from_secs(req.unreachable_after_secs);
    opts.max_in_flight = req.max_in_flight.max(1);
    let client = Arc::new(Client::new(opts).map_err(|e| format!("registry client: {e}"))?);
    let root = args.cache_dir.join(crate::pipeline::copy::CACHE_SUBDIR);
    let cache = match req.shared_cache {
        true => Cache::open_worker(&root),
        false => Cache::open(&root),
    }
    .map_err(|e| format!("--cache-dir: {e}"))?;
    let engine = Engine::new(Arc::new(cache), req.max_in_flight.max(1));
    engine.seed_homes(&req.homes);
    let opts = Options { parallel_images: req.request.parallel_images, parallel_layers: req.request.parallel_layers };
    let session = engine.session(client.clone(), opts);
    let report_name = crate::shard::report_name(&req.job, args.index);
    let owner = crate::shard::job::owner(&req.job, &job_uid);
    let labels = json!({JOB_LABEL: req.job, SET_UID_LABEL: set.uid});
    let progress = |done: bool| ShardProgress {
        pod: args.pod.clone(),
        failures_before: args.failures_before,
        images_done: session.progress.done.load(Relaxed),
        images_total: items.len() as u64,
        bytes_done: session.progress.bytes_placed.load(Relaxed),
        bytes_total: session.progress.bytes_needed.load(Relaxed),
        blobs_fetched: client.counters.blob_gets.load(Relaxed),
        done,
    };
    let write = |data: serde_json::Value, binary: serde_json::Value| {
        let cm = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": report_name, "namespace": args.namespace, "labels": labels, "ownerReferences": [owner]},
            "data": data, "binaryData": binary,
        });
        let cms = cms.clone();
        let name = report_name.clone();
        async move {
            cms.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&cm))
                .await
                .map(|_| ())
                .map_err(|e| format!("writing {name}: {e}"))
        }
    };
    let progress_json = |done| serde_json::to_string(&progress(done)).expect("serialisable");
    write(json!({PROGRESS_KEY: progress_json(false)}), json!({})).await?;
    let copy = session.run(&items, &Source::Registry, Target::Registry);
    tokio::pin!(copy);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.tick().await;
    let results = loop {
        tokio::select! {
            r = &mut copy => break r,
            _ = tick.tick() => {
                // Progress is best effort: a failed write is retried at the next tick.
                if let Err(e) = write(json!({PROGRESS_KEY: progress_json(false)}), json!({})).await {
                    tracing::warn!(error = %e, "progress not written");
                }
            }
        }
    };
    let failed = results.iter().filter(|r| matches!(r.outcome, crate::copy::Outcome::Failed { .. })).count();
    let report = ShardReport { index: args.index, results: results.iter().map(ItemReport::of).collect() };
    use base64::Engine as _;
    let packed = base64::engine::general_purpose::STANDARD.encode(crate::shard::pack(&report));
    write(json!({PROGRESS_KEY: progress_json(true)}), json!({REPORT_KEY: packed})).await?;
    let c = &client.counters;
    Ok(vec![format!(
        "shard {} of {}: {} images, {failed} failed; {} blobs fetched ({} MB), {} MB uploaded, {} mounted",
        args.index,
        req.job,
        items.len(),
        c.blob_gets.load(Relaxed),
        c.bytes_in.load(Relaxed) / 1_000_000,
        c.bytes_out.load(Relaxed) / 1_000_000,
        c.mounts.load(Relaxed),
    )])
}

/// The Job's request and the Job's uid (its owner), waiting for the operator to write it.
async fn request(cms: &Api<ConfigMap>, name: &str) -> Result<(ShardRequest, String), String> {
    let deadline = tokio::time::Instant::now() + REQUEST_WAIT;
    loop {
        match cms.get_opt(name).await {
            Ok(Some(cm)) => {
                let uid = cm
                    .metadata
                    .owner_references
                    .unwrap_or_default()
                    .into_iter()
                    .find(|o| o.kind == "Job")
                    .map(|o| o.uid)
                    .ok_or_else(|| format!("{name} has no owning Job"))?;
                let bytes = cm
                    .binary_data
                    .and_then(|b| b.get(crate::shard::REQUEST_KEY).cloned())
                    .ok_or_else(|| format!("{name} has no {}", crate::shard::REQUEST_KEY))?;
                return Ok((crate::shard::unpack(&bytes.0).map_err(|e| format!("{name}: {e}"))?, uid));
            }
            Ok(None) if tokio::time::Instant::now() < deadline => {}
            Ok(None) => return Err(format!("request {name} not found within {}s", REQUEST_WAIT.as_secs())),
            Err(e) if tokio::time::Instant::now() < deadline => tracing::debug!(error = %e, "reading the request"),
            Err(e) => return Err(format!("reading {name}: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
