//! An image set's copy as an Indexed Job (`spec.shards` above 1): the operator plans and
//! collects as always, cuts the images before bundles into shards ([`crate::shard::split`]),
//! places the blobs several shards need at the destination once, runs the shards as one Job in
//! its own namespace, follows their progress, and merges their reports into one run; bundles,
//! catalogs and charts are then copied in its own pod and the cluster objects rendered once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use tokio::sync::{Semaphore, watch};

use super::run::{Failure, Shared};
use crate::api::ImageSetConfiguration;
use crate::api::status::ShardStatus;
use crate::copy::{ItemResult, Options, Outcome, Progress as Counters, Source};
use crate::pipeline::copy::CopiedElsewhere;
use crate::pipeline::{Planned, Request};
use crate::plan::{CopyItem, ImageKind};
use crate::registry::Client;
use crate::shard::job::{self, JobSettings};
use crate::shard::{self as sh, SetRef, ShardProgress, ShardReport, ShardRequest, split};

/// How the operator runs shard Jobs.
pub struct ShardControl {
    /// The API.
    pub kube: kube::Client,
    /// How Jobs are made.
    pub job: JobSettings,
    /// The most shards an image set may ask for.
    pub max_shards: u32,
    /// Shard pods at once across every image set (one permit per pod).
    pub pods: Arc<Semaphore>,
    /// The permits of `pods`.
    pub max_pods: u32,
    /// How long a Job's pods may be active but not ready before the run gives up on it.
    pub start_timeout: Duration,
}

/// The largest request (base64 bytes) put in a ConfigMap, with room for its metadata.
const MAX_REQUEST: usize = 900 * 1024;

/// How often a Job is looked at.
const POLL: Duration = Duration::from_secs(1);

/// Deletes a Job (and, through its owner references, its ConfigMaps) when the run is dropped
/// before it ended (the spec changed, the image set went), unless the operator is shutting
/// down.
struct Cleanup {
    jobs: Api<Job>,
    name: String,
    armed: bool,
    /// The operator is shutting down: the Job is left for the next leader.
    leaving: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if self.leaving.load(Relaxed) {
            tracing::info!(job = %self.name, "shutting down: shard Job left running for the next leader to take over");
            return;
        }
        let (jobs, name) = (self.jobs.clone(), self.name.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = jobs.delete(&name, &DeleteParams::background()).await {
                    tracing::warn!(job = %name, error = %e, "shard Job not deleted");
                }
            });
        }
    }
}

/// A Job's pod permits, counted in `/metrics` while held.
struct PodsGauge {
    _permits: tokio::sync::OwnedSemaphorePermit,
    metrics: Arc<crate::admin::Metrics>,
    n: u64,
}

impl PodsGauge {
    fn hold(permits: tokio::sync::OwnedSemaphorePermit, metrics: Arc<crate::admin::Metrics>, n: u64) -> Self {
        metrics.shard_pods.fetch_add(n, Relaxed);
        PodsGauge { _permits: permits, metrics, n }
    }
}

impl Drop for PodsGauge {
    fn drop(&mut self) {
        self.metrics.shard_pods.fetch_sub(self.n, Relaxed);
    }
}

/// The shards `spec.shards` asks for, checked against the operator's maximum; `Ok(1)`: none.
pub fn wanted(ctl: Option<&ShardControl>, isc: &ImageSetConfiguration) -> Result<usize, Failure> {
    let n = isc.spec.shards.unwrap_or(1);
    if n <= 1 {
        return Ok(1);
    }
    let Some(ctl) = ctl else {
        return Err(Failure {
            reason: "InvalidSpec",
            message: format!(
                "spec.shards: {n}: this operator runs no shard Jobs (--max-shards=1, or no image known for them: --shard-image)"
            ),
            retryable: false,
        });
    };
    if n > ctl.max_shards {
        return Err(Failure {
            reason: "InvalidSpec",
            message: format!("spec.shards: {n} is more than this operator allows (--max-shards={})", ctl.max_shards),
            retryable: false,
        });
    }
    Ok(n as usize)
}

/// Copies the images before bundles in `n` shards; `None` when there is too little to split
/// (the run then copies in process). `view` is kept up to date with each shard's status.
#[allow(clippy::too_many_arguments)]
pub async fn copy(
    ctl: &ShardControl,
    shared: &Shared,
    isc: &ImageSetConfiguration,
    req: &Request,
    (planned, plan_digest): (&Planned, &str),
    client: Arc<Client>,
    n: usize,
    tx: &watch::Sender<Option<Arc<Counters>>>,
    view: &Mutex<Vec<ShardStatus>>,
) -> Result<Option<CopiedElsewhere>, Failure> {
    let first: Vec<CopyItem> =
        planned.plan.items.iter().filter(|i| i.kind < ImageKind::OperatorBundle).cloned().collect();
    if first.len() < 2 {
        return Ok(None);
    }
    let session = shared.engine.session(
        client.clone(),
        Options { parallel_images: req.parallel_images, parallel_layers: req.parallel_layers },
    );
    let needs = session.needs(&first, &Source::Registry).await;
    let blobs_of: Vec<Option<Vec<crate::image::manifest::Descriptor>>> =
        needs.iter().map(|n| n.as_ref().map(|n| n.blobs.clone())).collect();
    let cut = split::split(&first, &blobs_of, n);
    if cut.shards.len() < 2 {
        return Ok(None);
    }
    // Blobs several shards need go to the destination once, from here: the shards mount them.
    let shared_cache = matches!(ctl.job.cache, job::CacheVolume::Claim(_));
    let blobs: Vec<(String, String, crate::image::manifest::Descriptor)> =
        cut.shared.iter().map(|(i, d)| (first[*i].source.clone(), first[*i].destination.clone(), d.clone())).collect();
    let placed = session.place(&blobs, &Source::Registry).await;
    let mut homes = Vec::new();
    for ((_, dst, d), r) in blobs.iter().zip(&placed) {
        match (r, crate::image::ImageRef::parse(dst)) {
            (Ok(()), Ok(dst)) => homes.push((dst.registry.clone(), d.digest.clone(), dst.path.clone())),
            (Err(e), _) => tracing::warn!(blob = %d.digest, error = %e, "shared blob not placed; its shards fetch it"),
            (_, Err(_)) => {}
        }
    }
    let set = SetRef {
        namespace: isc.metadata.namespace.clone().unwrap_or_default(),
        name: isc.metadata.name.clone().unwrap_or_default(),
        uid: isc.metadata.uid.clone().unwrap_or_default(),
    };
    let shards = cut.shards.len();
    let parallelism = shards.min(ctl.max_pods as usize).max(1);
    // The per-registry cap holds across the Job: each pod gets its share.
    let per_pod = (shared.registry_requests / parallelism).max(1);
    let name = job::job_name(&req.naming_prefix, plan_digest, isc.metadata.generation.unwrap_or(0));
    tracing::info!(
        image_set = %format!("{}/{}", set.namespace, set.name),
        job = %name,
        shards,
        parallelism,
        shared_blobs = cut.shared.len(),
        placed = homes.len(),
        "copying in shards"
    );
    let requests: Vec<ShardRequest> = cut
        .shards
        .iter()
        .enumerate()
        .map(|(index, s)| ShardRequest {
            image_set: set.clone(),
            job: name.clone(),
            request: req.clone(),
            index,
            items: s.iter().map(|i| sh::Item::from(&first[*i])).collect(),
            homes: homes.clone(),
            max_in_flight: per_pod,
            retry_times: shared.retry_times,
            stall_timeout_secs: shared.stall_timeout.as_secs().max(1),
            unreachable_after_secs: shared.unreachable_after.as_secs(),
            shared_cache,
        })
        .collect();
    // Each index's request travels in a ConfigMap (at most 1 MiB, base64 on the wire): a shard
    // too big for one is copied here, in one pod, rather than not at all.
    let packed: Vec<Vec<u8>> = requests.iter().map(sh::pack).collect();
    if let Some((i, p)) = packed.iter().enumerate().find(|(_, p)| p.len() / 3 * 4 > MAX_REQUEST) {
        tracing::warn!(
            job = %name,
            bytes = p.len(),
            images = requests[i].items.len(),
            "a shard's request is too large for a ConfigMap; copying in the operator's pod"
        );
        return Ok(None);
    }
    // Pods at once across image sets: this Job's are taken before it exists.
    let pods = ctl.pods.clone().acquire_many_owned(parallelism as u32).await.map_err(|e| Failure {
        reason: "RunFailed",
        message: e.to_string(),
        retryable: true,
    })?;
    let _pods = PodsGauge::hold(pods, shared.metrics.clone(), parallelism as u64);
    let jobs: Api<Job> = Api::namespaced(ctl.kube.clone(), &ctl.job.namespace);
    let cms: Api<ConfigMap> = Api::namespaced(ctl.kube.clone(), &ctl.job.namespace);
    let api_err = |what: &str, e: kube::Error| Failure {
        reason: "ShardJobFailed",
        message: format!("{what} shard Job {}/{name}: {e}", ctl.job.namespace),
        retryable: true,
    };
    let manifest = job::job(&ctl.job, &name, &set, plan_digest, shards, parallelism);
    let manifest: Job = serde_json::from_value(manifest).expect("a Job");
    // A Job of this plan left by an operator that stopped mid-run is taken over.
    let created = match jobs.create(&PostParams::default(), &manifest).await {
        Ok(j) => {
            shared.metrics.shard_jobs.fetch_add(1, Relaxed);
            j
        }
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let j = jobs.get(&name).await.map_err(|e| api_err("reading", e))?;
            let same = j.metadata.labels.as_ref().and_then(|l| l.get(sh::SET_UID_LABEL)) == Some(&set.uid)
                && j.spec.as_ref().and_then(|s| s.completions) == Some(shards as i32);
            if !same || j.metadata.deletion_timestamp.is_some() {
                let _ = jobs.delete(&name, &DeleteParams::background()).await;
                return Err(Failure {
                    reason: "ShardJobFailed",
                    message: format!("an older shard Job {name} was in the way; it is being deleted"),
                    retryable: true,
                });
            }
            tracing::info!(job = %name, "taking over the shard Job of an earlier run of this plan");
            j
        }
        Err(e) => return Err(api_err("creating", e)),
    };
    let mut cleanup = Cleanup { jobs: jobs.clone(), name: name.clone(), armed: true, leaving: shared.leaving.clone() };
    let uid = created.metadata.uid.clone().unwrap_or_default();

    for (index, p) in packed.iter().enumerate() {
        let cm = job::request_config_map(&ctl.job, (&name, &uid), &set, index, p);
        let cm: ConfigMap = serde_json::from_value(cm).expect("a ConfigMap");
        match cms.create(&PostParams::default(), &cm).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(api_err("writing the requests of", e)),
        }
    }
    // Merged progress, in the run's counters.
    let counters = Arc::new(Counters::default());
    counters.total.store(first.len() as u64, Relaxed);
    let _ = tx.send(Some(counters.clone()));
    let sizes: Vec<u64> = cut.shards.iter().map(|s| s.len() as u64).collect();
    // Pods that cannot start (unschedulable, a claim no node can mount, an image that cannot
    // be pulled) would hold the run for ever: when some have been active but not ready for
    // `start_timeout`, the run fails saying where to look.
    let mut all_ready_at = tokio::time::Instant::now();
    let finished = loop {
        let j = match jobs.get_opt(&name).await {
            Ok(Some(j)) => j,
            Ok(None) => {
                cleanup.armed = false;
                return Err(Failure {
                    reason: "ShardJobFailed",
                    message: format!("shard Job {}/{name} was deleted before it finished", ctl.job.namespace),
                    retryable: true,
                });
            }
            Err(e) => {
                tracing::warn!(job = %name, error = %e, "reading the shard Job");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let progress = read_progress(&cms, &name).await;
        let statuses = statuses(&name, &j, &sizes, &progress);
        counters.done.store(statuses.iter().map(|s| s.images_done).sum(), Relaxed);
        counters.bytes_placed.store(progress.values().map(|p| p.bytes_done).sum(), Relaxed);
        counters.bytes_needed.store(progress.values().map(|p| p.bytes_total).sum(), Relaxed);
        *view.lock().expect("shard view") = statuses;
        if let Some(outcome) = ended(&j) {
            break (j, outcome);
        }
        let st = j.status.clone().unwrap_or_default();
        let (active, ready) = (st.active.unwrap_or(0), st.ready.unwrap_or(0));
        if ready >= active {
            all_ready_at = tokio::time::Instant::now();
        } else if all_ready_at.elapsed() > ctl.start_timeout {
            // Its request ConfigMaps go with it (owner references).
            let _ = jobs.delete(&name, &DeleteParams::background()).await;
            cleanup.armed = false;
            let ns = &ctl.job.namespace;
            return Err(Failure {
                reason: "ShardJobFailed",
                message: format!(
                    "{} of {active} pods of shard Job {ns}/{name} did not start within {}s (unschedulable, a cache \
                     claim their node cannot mount, an image that cannot be pulled?): see kubectl -n {ns} describe \
                     pods -l {}={name}; the Job was deleted",
                    active - ready,
                    ctl.start_timeout.as_secs(),
                    sh::JOB_LABEL
                ),
                retryable: true,
            });
        }
        tokio::time::sleep(POLL).await;
    };
    let (j, complete) = finished;
    let pods_failed = j.status.as_ref().and_then(|s| s.failed).unwrap_or(0).max(0) as u64;
    shared.metrics.shard_pods_failed.fetch_add(pods_failed, Relaxed);
    let reports = read_reports(&cms, &name, shards).await;
    let mut results = Vec::new();
    let mut needed = BTreeSet::new();
    let failed_indexes = index_set(j.status.as_ref().and_then(|s| s.failed_indexes.as_deref()).unwrap_or(""));
    let mut statuses = view.lock().expect("shard view").clone();
    for (index, items) in requests.iter().map(|r| &r.items).enumerate() {
        match reports.get(&index) {
            Some(report) if report.results.len() == items.len() => {
                results.extend(report.results.iter().cloned().zip(items).map(|(r, i)| r.result(i.clone().into())))
            }
            reported => {
                let why = if let Some(r) = reported {
                    format!(
                        "shard {index} of Job {}/{name} reported {} images of its {}",
                        ctl.job.namespace,
                        r.results.len(),
                        items.len()
                    )
                } else if failed_indexes.contains(&index) {
                    format!(
                        "shard {index} of Job {}/{name} failed {} times (backoffLimitPerIndex); its pods' logs say why",
                        ctl.job.namespace,
                        ctl.job.backoff_per_index + 1
                    )
                } else {
                    format!("shard {index} of Job {}/{name} ended without a report", ctl.job.namespace)
                };
                results.extend(items.iter().cloned().map(|i| ItemResult {
                    item: i.into(),
                    outcome: Outcome::Failed { reason: "ShardFailed", message: why.clone() },
                    digest: None,
                    media_type: None,
                    contents: Vec::new(),
                }));
            }
        }
    }
    // What the images copied need at the destination, for the cache's records: as surveyed
    // here, and the digests the shards wrote (a filtered index is made there).
    let by_item: BTreeMap<(&str, &str), &crate::copy::Needs> = first
        .iter()
        .zip(&needs)
        .filter_map(|(i, n)| Some(((i.source.as_str(), i.destination.as_str()), n.as_ref()?)))
        .collect();
    for r in results.iter().filter(|r| !matches!(r.outcome, Outcome::Failed { .. })) {
        if let Some(n) = by_item.get(&(r.item.source.as_str(), r.item.destination.as_str())) {
            needed.extend(n.blobs.iter().map(|b| b.digest.clone()));
            needed.extend(n.manifests.iter().cloned());
        }
        needed.extend(r.digest.clone());
    }
    for s in &mut statuses {
        let i = s.index as usize;
        s.images_failed = match reports.get(&i) {
            Some(r) => r.results.iter().filter(|r| r.outcome == "Failed").count() as u64,
            None => sizes.get(i).copied().unwrap_or(0),
        };
    }
    *view.lock().expect("shard view") = statuses;
    tracing::info!(job = %name, complete, reports = reports.len(), shards, "shard Job ended");
    // Its work is merged: the Job and what it owns go (the TTL would, later).
    if let Err(e) = jobs.delete(&name, &DeleteParams::background()).await {
        tracing::warn!(job = %name, error = %e, "shard Job not deleted; its TTL will");
    }
    cleanup.armed = false;
    let prefix = sh::request_prefix(&name);
    let names = (0..shards).flat_map(|i| [sh::request_name(&prefix, i), sh::report_name(&name, i)]);
    for n in names {
        let _ = cms.delete(&n, &DeleteParams::default()).await;
    }
    Ok(Some(CopiedElsewhere { results, needed }))
}

/// `Some(true)` once the Job completed, `Some(false)` once it failed, `None` while it runs.
fn ended(j: &Job) -> Option<bool> {
    let conds = j.status.as_ref()?.conditions.as_ref()?;
    let is = |t: &str| conds.iter().any(|c| c.type_ == t && c.status == "True");
    if is("Complete") {
        Some(true)
    } else if is("Failed") {
        Some(false)
    } else {
        None
    }
}

/// Indexes of a Job's `completedIndexes`/`failedIndexes` (`"1,3-5"`).
fn index_set(s: &str) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<usize>(), b.parse::<usize>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    out.insert(a);
                }
            }
        }
    }
    out
}

/// Each shard's status from the Job and the shards' progress.
fn statuses(job: &str, j: &Job, sizes: &[u64], progress: &BTreeMap<usize, ShardProgress>) -> Vec<ShardStatus> {
    let st = j.status.clone().unwrap_or_default();
    let completed = index_set(st.completed_indexes.as_deref().unwrap_or(""));
    let failed = index_set(st.failed_indexes.as_deref().unwrap_or(""));
    sizes
        .iter()
        .enumerate()
        .map(|(i, total)| {
            let p = progress.get(&i);
            let phase = if completed.contains(&i) {
                "Succeeded"
            } else if failed.contains(&i) {
                "Failed"
            } else if p.is_some() {
                "Running"
            } else {
                "Pending"
            };
            ShardStatus {
                index: i as u32,
                job: job.to_string(),
                phase: phase.into(),
                images_done: if phase == "Succeeded" { *total } else { p.map_or(0, |p| p.images_done) },
                images_total: *total,
                images_failed: 0,
                retries: p.map_or(0, |p| p.failures_before),
                blobs_fetched: p.map_or(0, |p| p.blobs_fetched),
            }
        })
        .collect()
}

/// The shards' progress, by index (best effort: what cannot be read is left out).
async fn read_progress(cms: &Api<ConfigMap>, job: &str) -> BTreeMap<usize, ShardProgress> {
    let lp = ListParams::default().labels(&format!("{}={job}", sh::JOB_LABEL));
    let Ok(list) = cms.list(&lp).await else { return BTreeMap::new() };
    let prefix = format!("{job}-report-");
    list.items
        .into_iter()
        .filter_map(|cm| {
            let index: usize = cm.metadata.name.as_deref()?.strip_prefix(&prefix)?.parse().ok()?;
            let text = cm.data?.get(sh::PROGRESS_KEY)?.clone();
            Some((index, serde_json::from_str(&text).ok()?))
        })
        .collect()
}

/// The shards' final reports, by index.
async fn read_reports(cms: &Api<ConfigMap>, job: &str, shards: usize) -> BTreeMap<usize, ShardReport> {
    let mut out = BTreeMap::new();
    for i in 0..shards {
        let name = sh::report_name(job, i);
        let cm = match cms.get_opt(&name).await {
            Ok(Some(cm)) => cm,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(report = %name, error = %e, "shard report not read");
                continue;
            }
        };
        let Some(bytes) = cm.binary_data.and_then(|b| b.get(sh::REPORT_KEY).cloned()) else { continue };
        match sh::unpack::<ShardReport>(&bytes.0) {
            Ok(r) if r.index == i => {
                out.insert(i, r);
            }
            Ok(_) => tracing::warn!(report = %name, "shard report of another index"),
            Err(e) => tracing::warn!(report = %name, error = %e, "shard report unreadable"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_sets_read_the_jobs_interval_notation() {
        assert_eq!(index_set("0,2-4, 7"), BTreeSet::from([0, 2, 3, 4, 7]));
        assert!(index_set("").is_empty());
    }
}
