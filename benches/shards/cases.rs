//! One measured copy of the workload, each into a fresh destination registry: by the CLI
//! (`imageset-operator mirror`, fresh cache and workspace), or by a fresh operator (fresh
//! cache directory, which the test kubelet maps the shards' cache claim onto) with the image
//! set at `spec.shards` unset or N. Afterwards every image is checked at the destination by
//! digest, and the source's and destination's access logs are read for what was pulled.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use imageset_operator::api::ImageSetConfiguration;
use imageset_operator::api::status::ImageSetStatus;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::support::kubelet::{Kubelet, KubeletOptions};
use crate::support::operator::{OPERATOR_NS, image_set_in};
use crate::support::registry::{Access, Registry, RegistryOptions};
use crate::support::storage::missing_at;
use crate::{World, entry};

/// The image shard pods name (the test kubelet runs the bench's binary for it).
pub const IMAGE: &str = "registry.example/imageset-operator:bench";
/// The operator's cache claim: the kubelet maps it onto the operator's own cache directory
/// (a ReadWriteMany volume shared by the operator and its shards).
pub const CLAIM: &str = "imageset-operator-cache";
/// Where image sets live.
pub const NAMESPACE: &str = "bench-shards";
/// The destination prefix.
const PREFIX: &str = "mirror";
/// How often status is read.
const POLL: Duration = Duration::from_millis(100);
const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// What is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Case {
    /// `imageset-operator mirror`.
    Cli,
    /// The operator with `spec.shards` unset (1) or N.
    Operator(u32),
}

impl Case {
    pub fn name(self) -> String {
        match self {
            Case::Cli => "imageset-operator mirror (CLI, one process)".into(),
            Case::Operator(1) => "operator, shards unset (in process)".into(),
            Case::Operator(n) => format!("operator, shards: {n} (Indexed Job)"),
        }
    }

    /// A short stem for names.
    pub fn stem(self) -> String {
        match self {
            Case::Cli => "cli".into(),
            Case::Operator(n) => format!("s{n}"),
        }
    }
}

/// What the registries saw of one copy.
#[derive(Clone, Debug, Default)]
pub struct Traffic {
    /// Blob GETs at the source, and of how many distinct blobs.
    pub blob_gets: usize,
    pub distinct: usize,
    /// The most GETs of one blob.
    pub max_per_blob: usize,
    /// Blob bytes served by the source (sizes of the blobs GET with 200).
    pub bytes: u64,
    /// Manifest GETs and HEADs of anything at the source.
    pub manifest_gets: usize,
    pub heads: usize,
    /// Blob uploads completed (PUT) and cross-repository mounts (POST ...mount=, 201) at the
    /// destination.
    pub uploads: usize,
    pub mounts: usize,
}

/// One shard's figures.
#[derive(Clone, Debug, Default)]
pub struct ShardFigures {
    pub index: usize,
    pub images: u64,
    /// Blobs it fetched from the source (its status).
    pub blobs_fetched: u64,
    /// Bytes of the distinct blobs of its images, less those the operator placed for it.
    pub bytes: u64,
    /// Its Pod's process: start to exit.
    pub run_s: f64,
    /// Process start to its first progress (request, image set and credentials read).
    pub startup_s: f64,
    /// First progress to its report: the copy itself.
    pub copy_s: f64,
    /// Its first progress and its report, seconds from the image set's create.
    pub copy_start_s: f64,
    pub copy_end_s: f64,
    /// Pods run for this index (1: no retry).
    pub attempts: usize,
}

/// A sharded run's timeline, seconds from the image set's create.
#[derive(Clone, Debug, Default)]
pub struct Timeline {
    pub job: String,
    /// The Job appeared (planning and placing the shared blobs are done).
    pub job_s: f64,
    /// Its first Pod appeared (the Job controller acted).
    pub first_pod_s: f64,
    /// The first and the last shard process started.
    pub first_start_s: f64,
    pub last_start_s: f64,
    /// The last shard process exited.
    pub last_exit_s: f64,
    /// The Job was seen Complete (the Job controller's part of the tail).
    pub complete_s: f64,
    /// Blobs the operator placed at the destination before the Job (shared by shards), bytes.
    pub placed: usize,
    pub placed_bytes: u64,
    /// Request slots per registry each shard pod was given (k).
    pub slots: usize,
    pub shards: Vec<ShardFigures>,
}

/// One measured copy.
#[derive(Clone, Debug)]
pub struct Sample {
    pub case: Case,
    /// Create to Ready=True (operator), spawn to exit (CLI).
    pub wall_s: f64,
    pub traffic: Traffic,
    pub timeline: Option<Timeline>,
}

/// Runs `case` once; `label` names its objects.
pub fn run(w: &World, case: Case, label: &str) -> Result<Sample> {
    let dst = Registry::start(RegistryOptions { access_log: true, ..Default::default() });
    let mark = w.src.access_log().len();
    let (wall_s, timeline) = match case {
        Case::Cli => {
            let wall_s = cli(w, &dst, label)?;
            verify(w, &dst).with_context(|| format!("{}, run {label}", case.name()))?;
            (wall_s, None)
        }
        Case::Operator(n) => operator(w, &dst, n, label)?,
    };
    // A large blob's access log line may follow its last bytes by a moment.
    std::thread::sleep(Duration::from_millis(500));
    let src_log: Vec<Access> = w.src.access_log().into_iter().skip(mark).collect();
    let traffic = traffic(w, &src_log, &dst.access_log());
    Ok(Sample { case, wall_s, traffic, timeline })
}

/// Every image is at `dst` with its source digest.
fn verify(w: &World, dst: &Registry) -> Result<()> {
    let wrong = missing_at(dst, PREFIX, &w.load.written());
    if !wrong.is_empty() {
        bail!(
            "{} of {} images missing or with another digest at the destination, e.g. {:?}",
            wrong.len(),
            w.load.images.len(),
            &wrong[..wrong.len().min(5)]
        );
    }
    Ok(())
}

fn traffic(w: &World, src: &[Access], dst: &[Access]) -> Traffic {
    let mut per_blob: BTreeMap<&str, usize> = BTreeMap::new();
    let mut t = Traffic::default();
    for a in src {
        let path = a.uri.split('?').next().unwrap_or(&a.uri);
        if a.method == "HEAD" {
            t.heads += 1;
        } else if a.method == "GET" && path.contains("/manifests/") {
            t.manifest_gets += 1;
        } else if a.method == "GET"
            && let Some((_, digest)) = path.rsplit_once("/blobs/")
        {
            t.blob_gets += 1;
            *per_blob.entry(digest).or_default() += 1;
            if a.status == 200 {
                t.bytes += w.load.blobs.get(digest).copied().unwrap_or(0);
            }
        }
    }
    t.distinct = per_blob.len();
    t.max_per_blob = per_blob.values().copied().max().unwrap_or(0);
    for a in dst {
        if a.method == "PUT" && a.uri.contains("/blobs/uploads/") && a.status == 201 {
            t.uploads += 1;
        }
        if a.method == "POST" && a.uri.contains("mount=") && a.status == 201 {
            t.mounts += 1;
        }
    }
    t
}

/// `imageset-operator mirror` of every image into `dst`: spawn to exit.
fn cli(w: &World, dst: &Registry, label: &str) -> Result<f64> {
    let dir = w.root.path().join(format!("cli-{label}"));
    std::fs::create_dir_all(&dir)?;
    let mut isc = String::from(
        "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  additionalImages:\n",
    );
    for i in &w.load.images {
        isc.push_str(&format!("  - name: {}/{}:{}\n", w.src.host, i.repo, i.tag));
    }
    std::fs::write(dir.join("isc.yaml"), isc)?;
    let argv: Vec<String> = vec![
        w.bin.display().to_string(),
        "mirror".into(),
        "-c".into(),
        dir.join("isc.yaml").display().to_string(),
        "--workspace".into(),
        format!("file://{}", dir.join("ws").display()),
        format!("docker://{}/{PREFIX}", dst.host),
        "--src-tls-verify=false".into(),
        "--dest-tls-verify=false".into(),
        "--cache-dir".into(),
        dir.join("cache").display().to_string(),
    ];
    let (wall_s, _, stdout) = entry::measure(None, &argv, &[("HOME", "/nonexistent"), ("LOG_LEVEL", "warn")])?;
    let n = w.load.images.len();
    let expected = format!("{n} / {n} additional images mirrored successfully");
    if !stdout.contains(&expected) {
        bail!("the CLI did not report {expected:?}:\n{stdout}");
    }
    // Its cache and workspace hold a copy of everything: gone before the next case.
    std::fs::remove_dir_all(&dir)?;
    Ok(wall_s)
}

/// Where an image set stands for its current generation.
enum State {
    Pending,
    Ready,
    Failed(String),
}

fn state(obj: &ImageSetConfiguration) -> State {
    let Some(st) = obj.status.as_ref() else { return State::Pending };
    if st.observed_generation != obj.metadata.generation {
        return State::Pending;
    }
    let cond = |t: &str| st.conditions.iter().find(|c| c.type_ == t);
    match (cond("Ready"), cond("Degraded")) {
        (_, Some(d)) if d.status == "True" => State::Failed(format!("{}: {}", d.reason, d.message)),
        (Some(r), _) if r.reason == "Started" => State::Pending,
        (Some(r), _) if r.status == "True" => State::Ready,
        (Some(r), _) if r.status == "False" => State::Failed(format!("{}: {}", r.reason, r.message)),
        _ => State::Pending,
    }
}

/// A fresh operator (and test kubelet) with their own cache directory copies every image
/// into `dst` as an image set with `spec.shards` `n` (unset when 1): create to Ready=True.
fn operator(w: &World, dst: &Registry, n: u32, label: &str) -> Result<(f64, Option<Timeline>)> {
    let dir = crate::support::temp_dir("bench-shards-op-");
    let cp = crate::support::cluster::shared();
    let kubelet = Kubelet::start(
        cp,
        OPERATOR_NS,
        KubeletOptions::new(&dir.path().join("kubelet"))
            .claim(CLAIM, &dir.path().join("cache"))
            .entrypoint(IMAGE, &w.bin),
    );
    let admin = format!("127.0.0.1:{}", crate::support::free_port());
    let flags =
        [format!("--shard-image={IMAGE}"), format!("--shard-cache=pvc:{CLAIM}"), "--leader-election=false".to_string()];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut op = w.rt.block_on(crate::support::operator::operator(cp, dir.path(), &admin, &flags));
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let start = Instant::now();
    loop {
        op.alive();
        if http.get(format!("http://{admin}/readyz")).send().is_ok_and(|r| r.status().is_success()) {
            break;
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!("operator not ready after 60 s:\n{}", (op.log_tail())());
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let name = format!("{}-{label}", Case::Operator(n).stem());
    let images: Vec<_> =
        w.load.images.iter().map(|i| json!({"name": format!("{}/{}:{}", w.src.host, i.repo, i.tag)})).collect();
    let mut spec = json!({
        "destination": format!("docker://{}/{PREFIX}", dst.host),
        "registries": [{"host": w.src.host, "insecure": true}, {"host": dst.host, "insecure": true}],
        "mirror": {"additionalImages": images},
    });
    if n > 1 {
        spec["shards"] = json!(n);
    }
    let obj = image_set_in(NAMESPACE, &name, spec);
    let api: Api<ImageSetConfiguration> = w.api.clone();
    let t0 = Instant::now();
    w.rt.block_on(api.create(&PostParams::default(), &obj)).with_context(|| format!("create {name}"))?;
    let (ready_s, status) = loop {
        let got = w.rt.block_on(api.get(&name)).with_context(|| format!("get {name}"))?;
        let now = t0.elapsed().as_secs_f64();
        match state(&got) {
            State::Ready => break (now, got.status.unwrap_or_default()),
            State::Failed(msg) => bail!("{name} failed after {now:.1} s: {msg}\noperator:\n{}", (op.log_tail())()),
            State::Pending => {}
        }
        if t0.elapsed() > READY_TIMEOUT {
            bail!("{name} not Ready after {READY_TIMEOUT:?}: {:?}", got.status);
        }
        op.alive();
        std::thread::sleep(POLL);
    };
    check_counts(w, &name, &status)?;
    verify(w, dst).with_context(|| format!("{}, run {label}", Case::Operator(n).name()))?;
    let timeline = if n > 1 { Some(timeline(w, &kubelet, &status, t0, n, &name)?) } else { None };
    if n == 1 && !status.shards.is_empty() {
        bail!("{name}: shards unset, yet status lists {} shards", status.shards.len());
    }

    // The image set goes (the operator's finalizer removes what it applied) before the
    // operator; then the kubelet, the operator and its cache.
    w.rt.block_on(async {
        api.delete(&name, &DeleteParams::default()).await?;
        for _ in 0..1200 {
            if api.get_opt(&name).await?.is_none() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{name} still there 120 s after its delete")
    })?;
    drop(kubelet);
    drop(op);
    drop(dir);
    Ok((ready_s, timeline))
}

/// Ready with every image copied and none failed.
fn check_counts(w: &World, name: &str, st: &ImageSetStatus) -> Result<()> {
    let c = st.counts.clone().unwrap_or_default();
    let n = w.load.images.len() as u64;
    if c.total != n || c.copied != n || c.failed != 0 {
        bail!("{name}: Ready with counts {c:?}, expected {n} copied, none failed");
    }
    Ok(())
}

/// `repo:tag` of a `docker://host/repo:tag` source.
fn repo_tag(source: &str) -> Option<(&str, &str)> {
    let rest = source.strip_prefix("docker://").unwrap_or(source);
    let (_, path) = rest.split_once('/')?;
    path.rsplit_once(':')
}

/// The sharded run's timeline from the kubelet's runs, the watches and the final status.
fn timeline(w: &World, kubelet: &Kubelet, st: &ImageSetStatus, t0: Instant, n: u32, name: &str) -> Result<Timeline> {
    if st.shards.len() != n as usize {
        bail!("{name}: shards: {n}, yet status lists {} shards: {:?}", st.shards.len(), st.shards);
    }
    let job = st.shards[0].job.clone();
    let seen = w.observer.job(&job);
    let secs = |i: Instant| i.saturating_duration_since(t0).as_secs_f64();
    let runs: Vec<_> = kubelet.runs().into_iter().filter(|r| r.job.as_deref() == Some(job.as_str())).collect();
    let starts: Vec<f64> = runs.iter().filter_map(|r| r.started).map(secs).collect();
    let exits: Vec<f64> = runs.iter().filter_map(|r| r.finished).map(secs).collect();
    if starts.is_empty() || exits.len() != runs.len() {
        bail!("{name}: Job {job}: {} pods run, {} started, {} exited\n{}", runs.len(), starts.len(), exits.len(), {
            kubelet.describe()
        });
    }
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let placed: Vec<&str> =
        seen.requests.values().next().map(|r| r.homes.iter().map(|(_, d, _)| d.as_str()).collect()).unwrap_or_default();
    let mut shards = Vec::new();
    for s in &st.shards {
        let i = s.index as usize;
        let mine: Vec<_> = runs.iter().filter(|r| r.index == Some(s.index)).collect();
        let last = mine.iter().max_by_key(|r| r.started);
        let run_s =
            last.and_then(|r| Some(r.finished?.saturating_duration_since(r.started?).as_secs_f64())).unwrap_or(0.0);
        let started = last.and_then(|r| r.started);
        let first = seen.first_progress.get(&i).copied();
        let done = seen.done.get(&i).map(|(at, _)| *at);
        let gap = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
            _ => f64::NAN,
        };
        shards.push(ShardFigures {
            index: i,
            images: s.images_total,
            blobs_fetched: s.blobs_fetched,
            bytes: shard_bytes(w, seen.requests.get(&i).map(|r| r.items.as_slice()), &placed),
            run_s,
            startup_s: gap(started, first),
            copy_s: gap(first, done),
            copy_start_s: first.map_or(f64::NAN, secs),
            copy_end_s: done.map_or(f64::NAN, secs),
            attempts: mine.len(),
        });
    }
    shards.sort_by_key(|s| s.index);
    Ok(Timeline {
        job_s: seen.created.map_or(f64::NAN, secs),
        first_pod_s: seen.pods.values().copied().min().map_or(f64::NAN, secs),
        first_start_s: min(&starts),
        last_start_s: max(&starts),
        last_exit_s: max(&exits),
        complete_s: seen.complete.map_or(f64::NAN, secs),
        placed: placed.len(),
        slots: seen.requests.values().next().map_or(0, |r| r.max_in_flight),
        placed_bytes: placed.iter().map(|d| w.load.blobs.get(*d).copied().unwrap_or(0)).sum(),
        shards,
        job,
    })
}

/// Bytes of the distinct blobs of a shard's images, less those placed for it.
fn shard_bytes(w: &World, items: Option<&[imageset_operator::shard::Item]>, placed: &[&str]) -> u64 {
    let mut blobs: BTreeMap<&str, u64> = BTreeMap::new();
    for item in items.into_iter().flatten() {
        let Some((repo, tag)) = repo_tag(&item.source) else { continue };
        for (d, size) in w.load.image(repo, tag).map(|i| i.blobs.as_slice()).unwrap_or_default() {
            if !placed.contains(&d.as_str()) {
                blobs.insert(d, *size);
            }
        }
    }
    blobs.values().sum()
}
