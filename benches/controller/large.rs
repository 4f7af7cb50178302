//! The large set: N small images (`--images N`) written straight into the source registry's
//! storage (each with its own 4 KiB layer, round-robin over 50 repositories), applied to a
//! fresh operator as one image set (or, when the CRD caps `spec.mirror.additionalImages`
//! below N, as few sets at that cap as hold them, created at once) and timed from the create
//! to Ready=True of every set, with status read every second on the way as a user watching
//! it would: how often the images done (`status.progress.imagesDone`) moved, and how large
//! the serialized status got (its lists are bounded, so it must not grow with N). The operator's peak RSS (VmHWM) and CPU come from
//! /proc. Side by side, the same copy by `imageset-operator mirror` (the CLI, fresh cache and
//! workspace) under GNU time. Each copy goes to a fresh destination registry, so neither
//! finds the other's blobs, and every image is checked there by digest afterwards.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use imageset_operator::api::ImageSetConfiguration;
use imageset_operator::api::status::ImageSetStatus;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::World;
use crate::operator::Operator;
use crate::support::registry::{Registry, RegistryOptions};
use crate::support::storage::{Written, missing_at, small_images};

/// Repositories the images are spread over, and each image's layer size.
pub const REPOS: usize = 50;
pub const LAYER_BYTES: usize = 4096;
const SEED: u64 = 29;
/// How often status is read while the large set copies.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The large set's source images.
pub struct LargeSet {
    pub images: Vec<Written>,
    /// `<src>/<repo>:<tag>` of each.
    pub refs: Vec<String>,
    pub written_s: f64,
}

/// Writes `n` small images into `src`'s storage.
pub fn write(src: &Registry, n: usize) -> LargeSet {
    let start = Instant::now();
    let images = small_images(&src.storage, REPOS, n, LAYER_BYTES, SEED);
    let refs = images.iter().map(|w| format!("{}/{}:{}", src.host, w.repo, w.tag)).collect();
    LargeSet { images, refs, written_s: start.elapsed().as_secs_f64() }
}

/// One reading of status while the operator copies (every image set of the copy).
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// Seconds from the first create to the start of the reading.
    pub at_s: f64,
    /// Images done over every image set: `status.progress.imagesDone` of the sets under way,
    /// every image of the sets Ready (None: no set showed progress or was Ready yet).
    pub images_done: Option<u64>,
    /// Image sets Ready at that reading.
    pub ready: usize,
    /// The largest serialized status of the reading.
    pub status_bytes: usize,
}

/// The operator's copy of the large set.
pub struct OperatorRun {
    /// Image sets the images were split into (the CRD's `maxItems` of
    /// `spec.mirror.additionalImages` per set).
    pub sets: usize,
    /// The first create to the last one's answer.
    pub created_s: f64,
    /// Create to the first status of a generation (a run started).
    pub started_s: f64,
    /// Create (of the first set) to Ready=True of every set (read every second: up to a
    /// second late).
    pub ready_s: f64,
    /// CPU seconds of the operator process from just before the create to Ready.
    pub cpu_s: f64,
    /// VmHWM and VmRSS at Ready (the process started fresh for this copy).
    pub hwm_kib: u64,
    pub rss_kib: u64,
    /// VmRSS once the destination was checked, `idle_s` after Ready with nothing to do.
    pub idle_rss_kib: u64,
    pub idle_s: f64,
    pub samples: Vec<Sample>,
    /// The largest status object at Ready, serialized.
    pub final_status_bytes: usize,
    /// The largest image set as the apiserver returns it (spec included), at Ready.
    pub object_bytes: usize,
}

impl OperatorRun {
    /// Readings whose images done were above the reading before.
    pub fn moved(&self) -> usize {
        let done: Vec<u64> = self.samples.iter().filter_map(|s| s.images_done).collect();
        done.windows(2).filter(|w| w[1] > w[0]).count()
    }

    /// Readings showing progress.
    pub fn with_progress(&self) -> usize {
        self.samples.iter().filter(|s| s.images_done.is_some()).count()
    }

    /// The largest serialized status seen, the final ones included.
    pub fn max_status_bytes(&self) -> usize {
        self.samples.iter().map(|s| s.status_bytes).max().unwrap_or(0).max(self.final_status_bytes)
    }

    /// The longest stretch without a change of images done, from the first reading with
    /// progress to Ready, in seconds: how long a user could watch it stand still.
    pub fn longest_still_s(&self) -> f64 {
        let mut since: Option<(f64, Option<u64>)> = None;
        let mut longest: f64 = 0.0;
        for s in self.samples.iter().skip_while(|s| s.images_done.is_none()) {
            match since {
                Some((at, done)) if done == s.images_done => longest = longest.max(s.at_s - at),
                _ => since = Some((s.at_s, s.images_done)),
            }
        }
        if let Some((at, _)) = since {
            longest = longest.max(self.ready_s - at);
        }
        longest
    }
}

/// The CLI's copy of the large set.
pub struct CliRun {
    pub wall_s: f64,
    pub cpu_s: Option<f64>,
    pub rss_kib: Option<u64>,
}

fn image_set(name: &str, src: &str, dst: &str, refs: &[String]) -> ImageSetConfiguration {
    let additional: Vec<_> = refs.iter().map(|i| json!({"name": i})).collect();
    serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
        "metadata": {"name": name},
        "spec": {
            "destination": format!("docker://{dst}/large"),
            "registries": [{"host": src, "insecure": true}, {"host": dst, "insecure": true}],
            "mirror": {"additionalImages": additional},
        },
    }))
    .expect("a valid image set")
}

/// Where a finished run of `generation` ended: `Some(Ok)` Ready=True, `Some(Err)` failed.
fn outcome(st: &ImageSetStatus, generation: Option<i64>) -> Option<Result<(), String>> {
    if st.observed_generation != generation {
        return None;
    }
    let cond = |t: &str| st.conditions.iter().find(|c| c.type_ == t);
    match (cond("Ready"), cond("Degraded")) {
        (_, Some(d)) if d.status == "True" => Some(Err(format!("{}: {}", d.reason, d.message))),
        (Some(r), _) if r.reason == "Started" => None,
        (Some(r), _) if r.status == "True" => Some(Ok(())),
        (Some(r), _) => Some(Err(format!("{}: {}", r.reason, r.message))),
        (None, _) => None,
    }
}

/// The most `spec.mirror.additionalImages` the installed ImageSetConfiguration CRD admits in
/// one image set (None: no limit).
pub fn additional_images_cap(w: &World) -> Result<Option<usize>> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(w.api.clone().into_client());
    let crd = w.rt.block_on(crds.get("imagesetconfigurations.mirror.openshift.io")).context("get the CRD")?;
    let crd = serde_json::to_value(crd)?;
    let versions = crd["spec"]["versions"].as_array().context("CRD versions")?;
    let stored = versions.iter().find(|v| v["storage"] == true).context("no storage version")?;
    let path = "/schema/openAPIV3Schema/properties/spec/properties/mirror/properties/additionalImages";
    let schema = stored.pointer(path).context("no spec.mirror.additionalImages in the CRD schema")?;
    Ok(schema["maxItems"].as_u64().map(|n| n as usize))
}

/// A fresh operator (fresh cache under `dir`) copies the set into a fresh registry: one image
/// set, or as few as the CRD's cap on `spec.mirror.additionalImages` allows, all created at
/// once. Status is read every second until every set is Ready=True for its generation; then
/// every image is checked.
pub fn operator(w: &World, dir: &Path, set: &LargeSet, per_set: usize, timeout: Duration) -> Result<OperatorRun> {
    let (rt, api) = (&w.rt, &w.api);
    let dst = Registry::start(RegistryOptions::default());
    let op = Operator::start(&w.bin, &w.kubeconfig, dir)?;
    let objs: Vec<(String, usize, ImageSetConfiguration)> = set
        .refs
        .chunks(per_set.max(1))
        .enumerate()
        .map(|(i, refs)| {
            let name = format!("large-{i:02}");
            let obj = image_set(&name, &w.src.host, &dst.host, refs);
            (name, refs.len(), obj)
        })
        .collect();
    let before = op.read()?;
    let start = Instant::now();
    let mut generations = Vec::new();
    for (name, _, obj) in &objs {
        let created = rt.block_on(api.create(&PostParams::default(), obj)).with_context(|| format!("create {name}"))?;
        generations.push(created.metadata.generation);
    }
    let created_s = start.elapsed().as_secs_f64();
    let mut samples = Vec::new();
    let mut started_s = None;
    let mut done_at: Vec<Option<(ImageSetStatus, usize)>> = objs.iter().map(|_| None).collect();
    let mut next = Instant::now();
    let ready_s = loop {
        // A reading that took longer than the interval moves the next one on: no bursts.
        next = (next + SAMPLE_EVERY).max(Instant::now());
        // Timed at its start: readings start at least a second apart.
        let mut sample = Sample { at_s: start.elapsed().as_secs_f64(), images_done: None, ready: 0, status_bytes: 0 };
        for (i, (name, n, _)) in objs.iter().enumerate() {
            if done_at[i].is_some() {
                sample.ready += 1;
                *sample.images_done.get_or_insert(0) += *n as u64;
                continue;
            }
            let got = rt.block_on(api.get(name)).with_context(|| format!("get {name}"))?;
            let st = got.status.clone().unwrap_or_default();
            sample.status_bytes = sample.status_bytes.max(serde_json::to_vec(&st)?.len());
            if st.observed_generation == generations[i] {
                started_s.get_or_insert(start.elapsed().as_secs_f64());
                if let Some(p) = &st.progress {
                    *sample.images_done.get_or_insert(0) += p.images_done;
                }
            }
            match outcome(&st, generations[i]) {
                Some(Ok(())) => {
                    sample.ready += 1;
                    *sample.images_done.get_or_insert(0) += *n as u64;
                    done_at[i] = Some((st, serde_json::to_vec(&got)?.len()));
                }
                Some(Err(msg)) => bail!("{name} failed after {:.1} s: {msg}", start.elapsed().as_secs_f64()),
                None => {}
            }
        }
        samples.push(sample);
        if sample.ready == objs.len() {
            break start.elapsed().as_secs_f64();
        }
        if start.elapsed() > timeout {
            bail!("{} of {} image sets Ready after {timeout:?}", sample.ready, objs.len());
        }
        op.alive()?;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    };
    let after = op.read()?;
    let (mut final_status_bytes, mut object_bytes) = (0, 0);
    for ((name, n, _), done) in objs.iter().zip(&done_at) {
        let (st, size) = done.as_ref().expect("every set Ready");
        let c = st.counts.clone().unwrap_or_default();
        let n = *n as u64;
        if c.total != n || c.copied != n || c.failed != 0 {
            bail!("{name} Ready with counts {c:?}, expected {n} copied, none failed");
        }
        final_status_bytes = final_status_bytes.max(serde_json::to_vec(st)?.len());
        object_bytes = object_bytes.max(*size);
    }
    let n = set.images.len();
    eprintln!("bench: {} image set(s) Ready after {ready_s:.1} s; checking {n} images at the destination", objs.len());
    verify(&dst, "large", &set.images)?;
    let idle = op.read()?;
    let idle_s = start.elapsed().as_secs_f64() - ready_s;
    // The sets go (their finalizers remove the mirror sets they applied) before the operator.
    rt.block_on(async {
        for (name, _, _) in &objs {
            api.delete(name, &DeleteParams::default()).await?;
        }
        for _ in 0..1200 {
            let mut left = 0;
            for (name, _, _) in &objs {
                left += usize::from(api.get_opt(name).await?.is_some());
            }
            if left == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("large image sets still there 120 s after their delete")
    })?;
    Ok(OperatorRun {
        sets: objs.len(),
        created_s,
        started_s: started_s.unwrap_or(ready_s),
        ready_s,
        cpu_s: after.cpu_s - before.cpu_s,
        hwm_kib: after.hwm_kib,
        rss_kib: after.rss_kib,
        idle_rss_kib: idle.rss_kib,
        idle_s,
        samples,
        final_status_bytes,
        object_bytes,
    })
}

/// `imageset-operator mirror` of the set into a fresh registry (fresh cache and workspace
/// under `dir`), under GNU time when there is one; then every image is checked.
pub fn cli(bin: &Path, time: Option<&Path>, dir: &Path, set: &LargeSet, timeout: Duration) -> Result<CliRun> {
    let dst = Registry::start(RegistryOptions::default());
    std::fs::create_dir_all(dir)?;
    let mut isc = String::from(
        "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  additionalImages:\n",
    );
    for r in &set.refs {
        isc.push_str(&format!("  - name: {r}\n"));
    }
    std::fs::write(dir.join("isc.yaml"), isc)?;
    let timefile = dir.join("time.txt");
    let mut cmd = match time {
        Some(t) => {
            let mut c = Command::new(t);
            c.args(["-f", "%M %U %S", "-o"]).arg(&timefile).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.arg("mirror")
        .arg("-c")
        .arg(dir.join("isc.yaml"))
        .arg("--workspace")
        .arg(format!("file://{}", dir.join("ws").display()))
        .arg(format!("docker://{}/large", dst.host))
        .args(["--src-tls-verify=false", "--dest-tls-verify=false", "--cache-dir"])
        .arg(dir.join("cache"))
        .env_remove("OC_MIRROR_CACHE")
        .env_remove("REGISTRY_AUTH_FILE")
        .env("HOME", "/nonexistent")
        .env("LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(dir.join("stdout"))?)
        .stderr(std::fs::File::create(dir.join("stderr"))?);
    let start = Instant::now();
    let mut child = cmd.spawn().context("start the CLI")?;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the CLI did not finish the large set within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall_s = start.elapsed().as_secs_f64();
    let stdout = std::fs::read_to_string(dir.join("stdout")).unwrap_or_default();
    if !status.success() {
        let stderr = std::fs::read_to_string(dir.join("stderr")).unwrap_or_default();
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        bail!("the CLI failed ({status}):\n{stdout}\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    let n = set.images.len();
    let expected = format!("{n} / {n} additional images mirrored successfully");
    if !stdout.contains(&expected) {
        bail!("the CLI did not report {expected:?}:\n{stdout}");
    }
    let (rss_kib, cpu_s) = match std::fs::read_to_string(&timefile) {
        Ok(text) => {
            let f: Vec<&str> = text.lines().last().unwrap_or("").split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
            (num(0).map(|k| k as u64), num(1).zip(num(2)).map(|(u, s)| u + s))
        }
        Err(_) => (None, None),
    };
    eprintln!("bench: CLI copied the large set in {wall_s:.1} s; checking {n} images at the destination");
    verify(&dst, "large", &set.images)?;
    Ok(CliRun { wall_s, cpu_s, rss_kib })
}

/// Every image is at `dst` under `<prefix>/<repo>:<tag>` with its source digest (a HEAD of
/// each manifest).
fn verify(dst: &Registry, prefix: &str, images: &[Written]) -> Result<()> {
    let wrong = missing_at(dst, prefix, images);
    if !wrong.is_empty() {
        bail!(
            "{} of {} images missing or wrong at the destination, e.g. {:?}",
            wrong.len(),
            images.len(),
            &wrong[..wrong.len().min(5)]
        );
    }
    Ok(())
}
