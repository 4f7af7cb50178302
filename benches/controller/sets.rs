//! The image sets the bench applies, and waiting on their status the way a user watching
//! `oc get imagesetconfigurations` would: Ready=True for the current generation.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::{StreamExt as _, TryStreamExt as _};
use imageset_operator::api::ImageSetConfiguration;
use imageset_operator::api::status::ImageSetStatus;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

/// How often status is read while waiting.
pub const POLL: Duration = Duration::from_millis(50);

/// An image set copying `images` (source references) to `docker://<dst>/<prefix>`, both
/// registries plain HTTP.
pub fn small(name: &str, src: &str, dst: &str, prefix: &str, images: &[String]) -> ImageSetConfiguration {
    let additional: Vec<_> = images.iter().map(|i| json!({"name": i})).collect();
    serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
        "metadata": {"name": name},
        "spec": {
            "destination": format!("docker://{dst}/{prefix}"),
            "registries": [{"host": src, "insecure": true}, {"host": dst, "insecure": true}],
            "mirror": {"additionalImages": additional},
        },
    }))
    .expect("a valid image set")
}

/// The `i`th idle image set: a dry run (planned, nothing fetched or copied) of three images,
/// one by tag, one by digest, one from another registry.
pub fn idle(i: usize) -> ImageSetConfiguration {
    serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
        "metadata": {"name": format!("idle-{i:03}")},
        "spec": {
            "destination": format!("docker://mirror.example.com:5000/idle-{i:03}"),
            "dryRun": true,
            "mirror": {"additionalImages": [
                {"name": format!("quay.io/bench/app-{i:03}:v1")},
                {"name": format!("quay.io/bench/base@sha256:{i:064x}")},
                {"name": format!("registry.example.com/tools/tool-{i:03}:latest")},
            ]},
        },
    }))
    .expect("a valid image set")
}

/// Where an image set stands for its current generation.
enum State {
    /// No status for this generation yet.
    Pending,
    /// Acknowledged: a run started.
    Started,
    /// Ready=True, with this reason.
    Ready(String),
    /// Degraded=True or Ready=False with a final reason.
    Failed(String),
}

fn state(obj: &ImageSetConfiguration) -> (State, Option<ImageSetStatus>) {
    let Some(st) = obj.status.clone() else { return (State::Pending, None) };
    if st.observed_generation != obj.metadata.generation {
        return (State::Pending, Some(st));
    }
    let cond = |t: &str| st.conditions.iter().find(|c| c.type_ == t);
    let s = match (cond("Ready"), cond("Degraded")) {
        (_, Some(d)) if d.status == "True" => State::Failed(format!("{}: {}", d.reason, d.message)),
        (Some(r), _) if r.reason == "Started" => State::Started,
        (Some(r), _) if r.status == "True" => State::Ready(r.reason.clone()),
        (Some(r), _) => State::Failed(format!("{}: {}", r.reason, r.message)),
        (None, _) => State::Pending,
    };
    (s, Some(st))
}

/// What one apply took.
pub struct Applied {
    /// Create to the first status of this generation (a run started).
    pub started_s: f64,
    /// Create to Ready=True.
    pub ready_s: f64,
    /// The status at Ready.
    pub status: ImageSetStatus,
}

/// Creates `obj` and waits, reading it every 50 ms, for Ready=True with observedGeneration
/// current; `alive` is asked between reads.
pub async fn apply_until_ready(
    api: &Api<ImageSetConfiguration>,
    obj: &ImageSetConfiguration,
    timeout: Duration,
    alive: impl Fn() -> Result<()>,
) -> Result<Applied> {
    let name = obj.metadata.name.clone().context("image set without a name")?;
    let start = Instant::now();
    api.create(&PostParams::default(), obj).await.with_context(|| format!("create {name}"))?;
    let mut started = None;
    loop {
        let got = api.get(&name).await.with_context(|| format!("get {name}"))?;
        let now = start.elapsed().as_secs_f64();
        match state(&got) {
            (State::Started, _) => {
                started.get_or_insert(now);
            }
            (State::Ready(_), Some(status)) => {
                return Ok(Applied { started_s: started.unwrap_or(now), ready_s: now, status });
            }
            (State::Failed(msg), _) => bail!("{name} failed: {msg}"),
            _ => {}
        }
        if start.elapsed() > timeout {
            bail!("{name} not Ready after {timeout:?}: {:?}", got.status);
        }
        alive()?;
        tokio::time::sleep(POLL).await;
    }
}

/// Creates every object, 8 requests at a time.
pub async fn create_all(api: &Api<ImageSetConfiguration>, objs: Vec<ImageSetConfiguration>) -> Result<()> {
    futures::stream::iter(objs)
        .map(|o| async move { api.create(&PostParams::default(), &o).await.context("create an idle image set") })
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

/// Waits until `n` image sets are Ready=True with a final reason, which must be `reason`,
/// each with `images` images in its plan.
pub async fn wait_all_ready(
    api: &Api<ImageSetConfiguration>,
    n: usize,
    reason: &str,
    images: u64,
    timeout: Duration,
    alive: impl Fn() -> Result<()>,
) -> Result<()> {
    let start = Instant::now();
    loop {
        let list = api.list(&ListParams::default()).await.context("list image sets")?;
        let mut ready = 0;
        for obj in &list.items {
            match state(obj) {
                (State::Ready(r), Some(st)) if r == reason => {
                    let total = st.counts.map_or(0, |c| c.total);
                    if total != images {
                        bail!("{:?}: {total} images planned, expected {images}", obj.metadata.name);
                    }
                    ready += 1;
                }
                (State::Ready(r), _) => bail!("{:?}: Ready for another reason: {r}", obj.metadata.name),
                (State::Failed(msg), _) => bail!("{:?} failed: {msg}", obj.metadata.name),
                _ => {}
            }
        }
        if ready >= n {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("{ready} of {n} image sets Ready ({reason}) after {timeout:?}");
        }
        alive()?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Deletes every image set of the namespace and waits until the operator has let them go
/// (its finalizer removes what they produced first).
pub async fn delete_all(api: &Api<ImageSetConfiguration>, timeout: Duration) -> Result<()> {
    api.delete_collection(&DeleteParams::default(), &ListParams::default()).await.context("delete image sets")?;
    let start = Instant::now();
    loop {
        let left = api.list(&ListParams::default()).await.context("list image sets")?.items.len();
        if left == 0 {
            return Ok(());
        }
        if start.elapsed() > timeout {
            bail!("{left} image sets still there {timeout:?} after their delete");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
