//! The controller benchmark: the footprint of `imageset-operator run` and how long it takes
//! to act on an image set, against a real etcd and kube-apiserver holding our CRDs and two
//! loopback Distribution registries (the test world of `tests/support`).
//!
//! Measured in one run:
//!
//! * **Apply to Ready of a small set** (3 images of a few KiB, registries plain HTTP): the
//!   time from the create of an ImageSetConfiguration to its status reading Ready=True for
//!   the current generation (read every 50 ms), with the first status of the generation (a
//!   run started) timed on the way. Each run is a new image set copying into a new prefix of
//!   the destination, so it really copies; the operator's cache is the one it keeps across
//!   image sets, as in a cluster. Side by side, into fresh prefixes as well: the same copy by
//!   `imageset-operator mirror` (the CLI, fresh cache and workspace) and by a shell script
//!   running `skopeo copy --all --preserve-digests` for each image in turn, which is what a
//!   CronJob script uses. Every destination is checked to hold the source's manifest
//!   digests. One unmeasured round of each comes first; the order rotates between runs.
//! * **Idle footprint** of a fresh operator with 100 image sets applied (dry runs: each is
//!   validated, planned and given status, with no registry traffic): VmRSS, VmHWM, threads and
//!   CPU from /proc/<pid>/status and /stat, reconciles from its /metrics, read 10 s after it is
//!   ready with none, 10 s after the last of the 100 is Ready (DryRun), and 10 s later again.
//!   A quiet operator neither grows nor reconciles in that last window. Nothing is compared
//!   with it: the tool users pick today, oc-mirror from a CronJob, keeps no process between
//!   runs (and is not available here).
//!
//! * **A large set** (`--images N`, off by default): one image set of N small images written
//!   straight into the source registry's storage, applied to a fresh operator and timed from
//!   create to Ready=True while its status is read every second (how many readings showed
//!   `status.progress.imagesDone` moving, the longest stretch it stood still, the largest
//!   serialized status), with the operator's peak RSS (VmHWM) and CPU from /proc; side by
//!   side the same copy by `imageset-operator mirror` under GNU time. Each into a fresh
//!   destination registry, every image checked by digest. See `controller/large.rs`.
//!
//! The target (idle RSS with 100 image sets under 50 MiB) is reported, never enforced.
//!
//! Options (argument or environment): `--runs N` (BENCH_RUNS, default 3; median and minimum
//! shown), `--bin PATH` (BENCH_IMAGESET_BIN, else the release binary cargo built with this
//! bench), `--images N` (BENCH_IMAGES: add the large set of N images; default none),
//! `--only large` (BENCH_ONLY: the large set alone, without the small sets and the idle
//! footprint; needs `--images`).

#[path = "controller/copies.rs"]
mod copies;
#[path = "common/entry.rs"]
mod entry;
#[path = "controller/large.rs"]
mod large;
#[path = "controller/operator.rs"]
mod operator;
#[path = "controller/sets.rs"]
mod sets;
#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use imageset_operator::api::ImageSetConfiguration;
use kube::api::Api;

use copies::Copies;
use operator::{NAMESPACE, Operator, Reading};
use support::content::{Format, Pushed, Pusher};
use support::registry::{Registry, RegistryOptions};

/// Image sets applied for the idle footprint.
const IMAGE_SETS: usize = 100;
/// How long the operator is left alone before each idle reading.
const IDLE: Duration = Duration::from_secs(10);
const TARGET_RSS_MIB: f64 = 50.0;
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// The small set: repository (tag v1) and layers as (seed, bytes); the second is a Docker
/// schema 2 image, the others OCI.
const IMAGES: &[(&str, &[(u64, usize)])] =
    &[("apps/web", &[(1, 2048), (2, 4096)]), ("apps/db", &[(3, 3000)]), ("apps/cache", &[(4, 1024), (5, 2048)])];

#[derive(Clone, Copy, PartialEq)]
enum Case {
    Operator,
    Cli,
    Skopeo,
}

const CASES: [Case; 3] = [Case::Operator, Case::Cli, Case::Skopeo];

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Operator => "operator: create -> Ready=True",
            Case::Cli => "imageset-operator mirror (CLI, fresh cache)",
            Case::Skopeo => "skopeo copy --all --preserve-digests, one at a time",
        }
    }

    /// The destination prefix's stem.
    fn tag(self) -> &'static str {
        match self {
            Case::Operator => "op",
            Case::Cli => "cli",
            Case::Skopeo => "skopeo",
        }
    }
}

/// One measured copy.
struct Sample {
    case: Case,
    wall_s: f64,
    /// The operator only: create to the first status of the generation.
    started_s: Option<f64>,
    rss_kib: Option<u64>,
}

/// The operator with 100 image sets: readings and how long the intake took.
struct Idle {
    empty: Reading,
    loaded: Reading,
    later: Reading,
    created_s: f64,
    all_ready_s: f64,
}

/// The world every phase uses.
struct World {
    bin: PathBuf,
    kubeconfig: PathBuf,
    src: Registry,
    _dst: Registry,
    pushed: Vec<Pushed>,
    root: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    api: Api<ImageSetConfiguration>,
}

fn main() {
    entry::main("controller", "--child-none", no_child, run);
}

/// The shared entry re-enters benches as a child; this one measures other processes only.
fn no_child(_: &[String]) -> i32 {
    eprintln!("the controller benchmark has no child process");
    2
}

/// This bench's own options beside the shared `--runs` and `--bin`: the large set's image
/// count and whether it runs alone.
struct LargeOptions {
    images: Option<usize>,
    only: bool,
}

/// Takes `--images N` and `--only large` (else BENCH_IMAGES, BENCH_ONLY) out of `args`;
/// returns them and the rest for [`entry::runs_and_bin`].
fn large_options(args: &[String]) -> Result<(LargeOptions, Vec<String>)> {
    let mut images = None;
    let mut only = None;
    let mut rest = Vec::new();
    for (k, v) in entry::flags(args)? {
        match k.as_str() {
            "images" => images = Some(v),
            "only" => only = Some(v),
            _ => rest.push(format!("--{k}={v}")),
        }
    }
    let images = images.or_else(|| std::env::var("BENCH_IMAGES").ok()).filter(|v| !v.is_empty());
    let images = match images {
        None => None,
        Some(v) => {
            Some(v.parse::<usize>().with_context(|| format!("images: {v:?} is not a number"))?).filter(|&n| n > 0)
        }
    };
    let only = match only.or_else(|| std::env::var("BENCH_ONLY").ok()).filter(|v| !v.is_empty()).as_deref() {
        None => false,
        Some("large") => true,
        Some(other) => bail!("--only {other:?}: the only part that runs alone is \"large\""),
    };
    if only && images.is_none() {
        bail!("--only large needs --images N");
    }
    Ok((LargeOptions { images, only }, rest))
}

fn run(args: &[String]) -> Result<()> {
    let (large_opts, args) = large_options(args)?;
    let (runs, bin) = entry::runs_and_bin(&args)?;
    if !bin.is_file() {
        bail!("{} not found: run scripts/bench-controller, which builds it", bin.display());
    }
    let skopeo =
        copies::which("skopeo").context("skopeo not found: run scripts/bench-controller, which installs it")?;
    let time = copies::gnu_time();
    if time.is_none() {
        eprintln!("bench: GNU time not found at /usr/bin/time: no peak RSS for the CLI and skopeo");
    }
    let started = Instant::now();
    // Registries and their content come from blocking code: off any async runtime.
    let (src, dst, pushed) = std::thread::spawn(|| {
        let src = Registry::start(RegistryOptions::default());
        let dst = Registry::start(RegistryOptions::default());
        let push = Pusher::new(&src);
        let pushed: Vec<Pushed> = IMAGES
            .iter()
            .enumerate()
            .map(|(i, (repo, layers))| {
                let format = if i == 1 { Format::Docker } else { Format::Oci };
                push.image(repo, "v1", format, ("linux", "amd64"), layers)
            })
            .collect();
        (src, dst, pushed)
    })
    .join()
    .map_err(|_| anyhow!("the registries did not start"))?;
    let cp = support::cluster::shared();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let api = rt.block_on(async {
        let client = cp.client().await;
        support::cluster::ensure_namespace(&client, NAMESPACE).await;
        Api::namespaced(client, NAMESPACE)
    });
    let root = support::temp_dir("bench-controller-");
    let copies = Copies {
        bin: bin.clone(),
        skopeo,
        time,
        src: src.host.clone(),
        dst: dst.host.clone(),
        root: root.path().join("copies"),
    };
    let w = World { bin, kubeconfig: cp.kubeconfig.clone(), src, _dst: dst, pushed, root, rt, api };
    eprintln!("bench: control plane and registries up in {:.1} s", started.elapsed().as_secs_f64());

    let load_before = entry::loadavg();
    let measured = Instant::now();
    let small = if large_opts.only {
        None
    } else {
        let (samples, after_copies) = apply_phase(&w, &copies, runs)?;
        Some((samples, after_copies, idle_phase(&w)?))
    };
    let large = match large_opts.images {
        Some(n) => Some(large_phase(&w, copies.time.as_deref(), n, runs)?),
        None => None,
    };
    let machine = format!(
        "machine: {} CPUs, load average {load_before} before, {} after; skopeo {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        entry::loadavg(),
        skopeo_version(&copies.skopeo)
    );
    if let Some((samples, after_copies, idle)) = &small {
        print!("{}", report(&w, samples, after_copies, idle, runs, &machine));
    }
    if let Some(l) = &large {
        print!("{}", large_report(l, runs));
        if small.is_none() {
            println!("{machine}");
        }
    }
    eprintln!("bench: measured in {:.1} s", measured.elapsed().as_secs_f64());
    Ok(())
}

/// Apply to Ready against the CLI and skopeo; returns the samples and the operator's reading
/// after its copies.
fn apply_phase(w: &World, copies: &Copies, runs: usize) -> Result<(Vec<Sample>, Reading)> {
    let op = Operator::start(&w.bin, &w.kubeconfig, &w.root.path().join("operator-apply"))?;
    let images: Vec<String> = w.pushed.iter().map(|p| format!("{}/{}:{}", w.src.host, p.repo, p.tag)).collect();
    let n = images.len() as u64;
    let one = |case: Case, label: &str| -> Result<Sample> {
        let prefix = format!("{}-{label}", case.tag());
        let sample = match case {
            Case::Operator => {
                let obj = sets::small(&format!("small-{label}"), &copies.src, &copies.dst, &prefix, &images);
                let a = w.rt.block_on(sets::apply_until_ready(&w.api, &obj, READY_TIMEOUT, || op.alive()))?;
                let c = a.status.counts.unwrap_or_default();
                if c.total != n || c.copied + c.already_present != n || c.failed != 0 {
                    bail!("small-{label}: Ready with counts {c:?}, expected {n} images, none failed");
                }
                Sample { case, wall_s: a.ready_s, started_s: Some(a.started_s), rss_kib: None }
            }
            Case::Cli => {
                let t = copies.cli(&prefix, &images)?;
                Sample { case, wall_s: t.wall_s, started_s: None, rss_kib: t.rss_kib }
            }
            Case::Skopeo => {
                let t = copies.skopeo(&prefix, &w.pushed)?;
                Sample { case, wall_s: t.wall_s, started_s: None, rss_kib: t.rss_kib }
            }
        };
        copies.verify(&prefix, &w.pushed).with_context(|| format!("{}, run {label}", case.name()))?;
        Ok(sample)
    };
    // One unmeasured round: no program's first start from disk, no first connection is timed.
    for case in CASES {
        one(case, "warmup").with_context(|| format!("warm-up, {}", case.name()))?;
    }
    let mut samples = Vec::new();
    for r in 0..runs {
        let mut order = CASES.to_vec();
        order.rotate_left(r % CASES.len());
        for case in order {
            let s = one(case, &format!("{}", r + 1))?;
            eprintln!("bench: run {} {}: {:.3} s", r + 1, case.name(), s.wall_s);
            samples.push(s);
        }
    }
    let reading = op.read()?;
    // The small sets go (the finalizer removes their mirror sets) before the idle phase.
    w.rt.block_on(sets::delete_all(&w.api, Duration::from_secs(60)))?;
    drop(op);
    Ok((samples, reading))
}

/// A fresh operator: idle with none, then with 100 dry-run image sets.
fn idle_phase(w: &World) -> Result<Idle> {
    let op = Operator::start(&w.bin, &w.kubeconfig, &w.root.path().join("operator-idle"))?;
    std::thread::sleep(IDLE);
    let empty = op.read()?;
    let start = Instant::now();
    let objs: Vec<ImageSetConfiguration> = (1..=IMAGE_SETS).map(sets::idle).collect();
    w.rt.block_on(sets::create_all(&w.api, objs))?;
    let created_s = start.elapsed().as_secs_f64();
    eprintln!("bench: {IMAGE_SETS} image sets created in {created_s:.2} s");
    let timeout = Duration::from_secs(300);
    w.rt.block_on(sets::wait_all_ready(&w.api, IMAGE_SETS, "DryRun", 3, timeout, || op.alive()))?;
    let all_ready_s = start.elapsed().as_secs_f64();
    eprintln!("bench: all {IMAGE_SETS} Ready (DryRun) after {all_ready_s:.2} s; idle readings follow");
    std::thread::sleep(IDLE);
    let loaded = op.read()?;
    std::thread::sleep(IDLE);
    let later = op.read()?;
    Ok(Idle { empty, loaded, later, created_s, all_ready_s })
}

/// The large set's copies, by the operator and by the CLI.
struct Large {
    images: usize,
    /// Images per image set, and the CRD's cap that set it (None: no cap).
    per_set: usize,
    cap: Option<usize>,
    written_s: f64,
    ops: Vec<large::OperatorRun>,
    clis: Vec<large::CliRun>,
}

/// The large set copied `runs` times by a fresh operator and by the CLI, in turns (the
/// order rotates between runs).
fn large_phase(w: &World, time: Option<&Path>, n: usize, runs: usize) -> Result<Large> {
    let set = large::write(&w.src, n);
    eprintln!("bench: {n} images written into the source registry in {:.1} s", set.written_s);
    let cap = large::additional_images_cap(w)?;
    let per_set = cap.unwrap_or(n).min(n);
    if per_set < n {
        eprintln!(
            "bench: the CRD admits at most {per_set} spec.mirror.additionalImages per image set: the operator gets \
             {} image sets",
            n.div_ceil(per_set)
        );
    }
    let timeout = Duration::from_secs(120 + n as u64 / 10);
    let (mut ops, mut clis) = (Vec::new(), Vec::new());
    for r in 0..runs {
        let mut order = [true, false];
        order.rotate_left(r % 2);
        for by_operator in order {
            if by_operator {
                let dir = w.root.path().join(format!("large-operator-{}", r + 1));
                let o = large::operator(w, &dir, &set, per_set, timeout)
                    .with_context(|| format!("large set, run {}", r + 1))?;
                let trace: Vec<String> = o
                    .samples
                    .iter()
                    .map(|s| format!("{:.0}:{}", s.at_s, s.images_done.map_or("-".into(), |d| d.to_string())))
                    .collect();
                eprintln!(
                    "bench: run {} operator: Ready after {:.1} s, {:.1} CPU s, VmHWM {:.1} MiB; images done by second: {}",
                    r + 1,
                    o.ready_s,
                    o.cpu_s,
                    mib(o.hwm_kib),
                    trace.join(" ")
                );
                ops.push(o);
            } else {
                let dir = w.root.path().join(format!("large-cli-{}", r + 1));
                let c = large::cli(&w.bin, time, &dir, &set, timeout)
                    .with_context(|| format!("large set, run {}", r + 1))?;
                eprintln!("bench: run {} CLI: {:.1} s", r + 1, c.wall_s);
                clis.push(c);
            }
        }
    }
    Ok(Large { images: n, per_set, cap, written_s: set.written_s, ops, clis })
}

fn large_report(l: &Large, runs: usize) -> String {
    let n = l.images as f64;
    let opt = |v: Option<f64>, unit: &dyn Fn(f64) -> String| v.map_or("n/a".to_string(), unit);
    let median_of = |xs: Vec<f64>| if xs.is_empty() { None } else { Some(median_min(xs)) };
    let (op_median, op_min) = median_min(l.ops.iter().map(|o| o.ready_s).collect());
    let (st_median, st_min) = median_min(l.ops.iter().map(|o| o.started_s).collect());
    let (cli_median, cli_min) = median_min(l.clis.iter().map(|c| c.wall_s).collect());
    let op_cpu = median_min(l.ops.iter().map(|o| o.cpu_s).collect()).0;
    let cli_cpu = median_of(l.clis.iter().filter_map(|c| c.cpu_s).collect()).map(|m| m.0);
    let op_hwm = l.ops.iter().map(|o| o.hwm_kib).max().unwrap_or(0);
    let cli_rss = l.clis.iter().filter_map(|c| c.rss_kib).max();
    let mut t = String::new();
    let sets = l.images.div_ceil(l.per_set.max(1));
    let split = match (sets, l.cap) {
        (1, _) => "in one image set".to_string(),
        (k, Some(cap)) => format!(
            "in {k} image sets of up to {} created at once (the CRD admits at most {cap} spec.mirror.additionalImages \
             per set)",
            l.per_set
        ),
        (k, None) => format!("in {k} image sets"),
    };
    let _ = writeln!(
        t,
        "\ncontroller benchmark, large set: {} images {split} ({} repositories, one {} KiB layer each, written \
         into the source registry's storage in {:.1} s), {runs} run{}; a fresh operator, cache and destination \
         registry for each copy; the CLI copies them all from one file\n",
        l.images,
        large::REPOS,
        large::LAYER_BYTES / 1024,
        l.written_s,
        if runs == 1 { "" } else { "s" }
    );
    let _ = writeln!(t, "| case | median s | min s | images/s | CPU s | peak RSS MiB |");
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|");
    let _ = writeln!(
        t,
        "| operator: create -> Ready=True of every set (c) | {op_median:.1} | {op_min:.1} | {:.0} | {op_cpu:.1} | {:.1} (d) |",
        n / op_median,
        mib(op_hwm)
    );
    let (cr_median, cr_min) = median_min(l.ops.iter().map(|o| o.created_s).collect());
    if sets > 1 {
        let _ = writeln!(t, "| operator: the {sets} creates (apiserver) | {cr_median:.1} | {cr_min:.1} | | | |");
    }
    let _ = writeln!(t, "| operator: create -> first status (run started) | {st_median:.1} | {st_min:.1} | | | |");
    let _ = writeln!(
        t,
        "| imageset-operator mirror (CLI, fresh cache) | {cli_median:.1} | {cli_min:.1} | {:.0} | {} | {} |",
        n / cli_median,
        opt(cli_cpu, &|v| format!("{v:.1}")),
        opt(cli_rss.map(|k| k as f64), &|k| format!("{:.1}", k / 1024.0))
    );
    let _ = writeln!(
        t,
        "\n(c) status read every second, so up to a second late; CPU of the operator process from just before the create"
    );
    let idle = l.ops.iter().max_by_key(|o| o.idle_rss_kib).expect("a run");
    let _ = writeln!(
        t,
        "(d) VmHWM of an operator started for this copy alone; VmRSS at Ready {:.1} MiB, {:.1} MiB {:.0} s later \
         with nothing to do (largest)",
        mib(l.ops.iter().map(|o| o.rss_kib).max().unwrap_or(0)),
        mib(idle.idle_rss_kib),
        idle.idle_s
    );
    let _ = writeln!(
        t,
        "apply -> Ready took {:.2}x the CLI's time for the same copy (medians); operator CPU {}",
        op_median / cli_median,
        opt(cli_cpu, &|c| format!("{:.2}x the CLI's", op_cpu / c))
    );
    for (i, o) in l.ops.iter().enumerate() {
        let _ = writeln!(
            t,
            "status while copying, run {} ({} set{}): {} readings 1 s apart, {} with progress, images done moved in \
             {} of them, longest without a move {:.0} s; largest status {} bytes (at Ready {}); the largest image \
             set object {} KiB",
            i + 1,
            o.sets,
            if o.sets == 1 { "" } else { "s" },
            o.samples.len(),
            o.with_progress(),
            o.moved(),
            o.longest_still_s(),
            o.max_status_bytes(),
            o.final_status_bytes,
            o.object_bytes / 1024
        );
    }
    t
}

/// Median (mean of the middle two for an even count) and minimum.
fn median_min(mut xs: Vec<f64>) -> (f64, f64) {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    let median = if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 };
    (median, xs[0])
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn report(w: &World, samples: &[Sample], after: &Reading, idle: &Idle, runs: usize, machine: &str) -> String {
    let of = |case: Case| samples.iter().filter(move |s| s.case == case);
    let stats = |case: Case| median_min(of(case).map(|s| s.wall_s).collect());
    let peak = |case: Case| of(case).filter_map(|s| s.rss_kib).max().map_or("n/a".into(), |k| format!("{:.1}", mib(k)));
    let (op_median, op_min) = stats(Case::Operator);
    let layers: usize = IMAGES.iter().flat_map(|(_, l)| l.iter().map(|(_, size)| size)).sum();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\ncontroller benchmark: apply -> Ready of {} images ({:.1} KiB of layers) between two loopback \
         registries, {runs} run{}; idle footprint with {IMAGE_SETS} dry-run image sets\n",
        w.pushed.len(),
        layers as f64 / 1024.0,
        if runs == 1 { "" } else { "s" }
    );
    let _ = writeln!(t, "| case | median s | min s | peak RSS MiB | ratio (this / apply->Ready) |");
    let _ = writeln!(t, "|---|---:|---:|---:|---:|");
    let _ = writeln!(
        t,
        "| {} | {op_median:.3} | {op_min:.3} | {:.1} (a) | 1.00x |",
        Case::Operator.name(),
        mib(after.hwm_kib)
    );
    let (s_median, s_min) = median_min(of(Case::Operator).filter_map(|s| s.started_s).collect());
    let _ = writeln!(t, "| operator: create -> first status (run started) | {s_median:.3} | {s_min:.3} | | |");
    for case in [Case::Cli, Case::Skopeo] {
        let (median, min) = stats(case);
        let _ =
            writeln!(t, "| {} | {median:.3} | {min:.3} | {} | {:.2}x |", case.name(), peak(case), median / op_median);
    }
    let _ = writeln!(
        t,
        "\n(a) VmHWM of the operator over its life: start and {} image sets copied; VmRSS after them {:.1} MiB",
        runs + 1,
        mib(after.rss_kib)
    );
    let _ = writeln!(
        t,
        "apply -> Ready took {:.1}x the CLI's time and {:.1}x skopeo's for the same copy (medians)",
        op_median / stats(Case::Cli).0,
        op_median / stats(Case::Skopeo).0
    );

    let _ =
        writeln!(t, "\n| operator (fresh process) | VmRSS MiB | VmHWM MiB | threads | CPU s (b) | reconciles (b) |");
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|");
    let rows = [
        ("no image sets, 10 s after ready", &idle.empty, None),
        ("100 image sets Ready (DryRun), 10 s after the last", &idle.loaded, Some(&idle.empty)),
        ("the same, 10 s later", &idle.later, Some(&idle.loaded)),
    ];
    for (what, r, prev) in rows {
        let (cpu, rec) = prev.map_or((r.cpu_s, r.reconciles), |p| (r.cpu_s - p.cpu_s, r.reconciles - p.reconciles));
        let _ = writeln!(
            t,
            "| {what} | {:.1} | {:.1} | {} | {cpu:.2} | {rec} |",
            mib(r.rss_kib),
            mib(r.hwm_kib),
            r.threads
        );
    }
    let _ = writeln!(t, "\n(b) since the row above; the first row since the process started");
    let per_set = (idle.loaded.rss_kib as f64 - idle.empty.rss_kib as f64) / IMAGE_SETS as f64;
    let _ = writeln!(
        t,
        "{IMAGE_SETS} image sets created in {:.2} s, all Ready (DryRun) {:.2} s after the first create; \
         resident memory per image set {per_set:.1} KiB",
        idle.created_s, idle.all_ready_s
    );
    let _ = writeln!(
        t,
        "idle footprint, compared with: nothing. Users today run oc-mirror from a CronJob (not available here), \
         which keeps no process between runs, so there is no idle figure to set beside this; what a CronJob \
         costs instead is a process per run, like the CLI row above"
    );
    let rss = mib(idle.loaded.rss_kib);
    let met = |ok: bool| if ok { "MET" } else { "UNMET" };
    let _ = writeln!(
        t,
        "target: idle RSS with {IMAGE_SETS} image sets < {TARGET_RSS_MIB:.0} MiB: {} ({rss:.1} MiB)",
        met(rss < TARGET_RSS_MIB)
    );
    let quiet = idle.later.reconciles - idle.loaded.reconciles;
    let _ = writeln!(
        t,
        "check: no reconcile in a 10 s idle window with {IMAGE_SETS} image sets: {} ({quiet} reconciles, {:.2} CPU s, \
         RSS {:+.1} MiB)",
        met(quiet == 0),
        idle.later.cpu_s - idle.loaded.cpu_s,
        mib(idle.later.rss_kib) - rss
    );
    let _ = writeln!(
        t,
        "apply -> Ready of a small set: no target set; median {op_median:.3} s (run started after {s_median:.3} s)"
    );
    let _ = writeln!(t, "{machine}");
    t
}

fn skopeo_version(skopeo: &Path) -> String {
    let out = std::process::Command::new(skopeo).arg("--version").output().ok();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    text.split_whitespace().find(|w| w.starts_with(|c: char| c.is_ascii_digit())).unwrap_or("?").to_string()
}
