//! The shards benchmark: what scale-out on Jobs (`spec.shards`) costs and gives, against a
//! real etcd and kube-apiserver holding our CRDs, kube-controller-manager's Job controller,
//! the test kubelet (Pods run as local processes of the bench's own release binary) and
//! loopback Distribution registries: the test world of `tests/support`, set up as
//! `tests/controller_shards.rs` sets it up.
//!
//! One workload (`--repos` repositories of `--tags` tags, every image on one shared base
//! layer of `--base-mib` MiB, with a layer its repository's tags share and one of its own,
//! `--mib` MiB of those in all, repositories of five sizes), written straight into the source
//! registry's storage, is copied side by side by:
//!
//! * `imageset-operator mirror` (the CLI, one process, fresh cache and workspace),
//! * the operator with the image set's `spec.shards` unset (copied in the operator's process),
//! * the operator with `spec.shards: N` for each N of `--shards` (default 2 and 4): an
//!   Indexed Job of `imageset-operator shard` pods, the operator started with
//!   `--shard-image` and `--shard-cache=pvc:<claim>` (the kubelet maps the claim onto the
//!   operator's cache directory: a ReadWriteMany volume).
//!
//! Every copy goes into a fresh destination registry from the same source; every operator
//! copy is made by a fresh operator (and test kubelet) with a fresh cache directory, so no
//! case reads what an earlier one cached. Operator copies are timed from the image set's
//! create to Ready=True (status read every 100 ms), the CLI from spawn to exit. One
//! unmeasured round of every case comes first; the order rotates between runs. Each copy is
//! checked: every image at the destination with its source digest (a mismatch fails the
//! bench), the source's access log for blob GETs (each blob pulled once: GETs equal distinct
//! blobs equal the workload's blobs), bytes served, and the destination's uploads and mounts.
//!
//! For sharded copies the bench also follows the operator's namespace (watches on Jobs, Pods
//! and the shards' ConfigMaps, and the kubelet's process start and exit times) and prints the
//! inputs of a scaling model: the fixed cost of a sharded run and its parts (planning and
//! placing the shared blobs, the Job controller, the kubelet, the shards' start-up, the
//! operator noticing the end), each shard's copy throughput, and the single-process
//! throughput, all from the same run.
//!
//! Options (argument or environment): `--runs N` (BENCH_RUNS, default 3; median and minimum
//! shown), `--repos N` (BENCH_REPOS, 40), `--tags N` (BENCH_TAGS, 3), `--base-mib N`
//! (BENCH_BASE_MIB, 4), `--mib N` (BENCH_MIB, 256), `--shards 2,4` (BENCH_SHARDS).

#[path = "shards/cases.rs"]
mod cases;
#[path = "common/entry.rs"]
mod entry;
#[path = "shards/observe.rs"]
mod observe;
#[path = "shards/report.rs"]
mod report;
#[path = "../tests/support/mod.rs"]
mod support;
#[path = "shards/workload.rs"]
mod workload;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use imageset_operator::api::ImageSetConfiguration;
use kube::api::Api;

use cases::{Case, NAMESPACE, Sample};
use support::operator::OPERATOR_NS;
use support::registry::{Registry, RegistryOptions};

/// What every case uses.
pub struct World {
    /// The release binary: CLI, operator and shard pods alike.
    pub bin: PathBuf,
    /// The source registry (access log on) and what it holds.
    pub src: Registry,
    pub load: workload::Workload,
    /// Scratch space (the CLI's cache and workspace).
    pub root: tempfile::TempDir,
    pub rt: tokio::runtime::Runtime,
    /// Image sets in [`NAMESPACE`].
    pub api: Api<ImageSetConfiguration>,
    /// Watches on the operator's namespace.
    pub observer: observe::Observer,
}

fn main() {
    entry::main("shards", "--child-none", no_child, run);
}

/// The shared entry re-enters benches as a child; this one measures other processes only.
fn no_child(_: &[String]) -> i32 {
    eprintln!("the shards benchmark has no child process");
    2
}

/// The bench's options.
struct Options {
    runs: usize,
    size: workload::Size,
    shards: Vec<u32>,
}

fn options(args: &[String]) -> Result<Options> {
    let given = entry::Given::parse(args, &["runs", "repos", "tags", "base-mib", "mib", "shards"])?;
    let mib = |key: &str, default: u64| -> Result<usize> { Ok((given.num(key, default)? as usize) << 20) };
    let size = workload::Size {
        repos: given.num("repos", 40)?.max(1) as usize,
        tags: given.num("tags", 3)?.max(1) as usize,
        base_bytes: mib("base-mib", 4)?,
        layer_bytes: mib("mib", 256)?,
    };
    let shards = match given.get("shards") {
        None => vec![2, 4],
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u32>().with_context(|| format!("--shards: {s:?} is not a number")))
            .collect::<Result<Vec<_>>>()?,
    };
    if let Some(n) = shards.iter().find(|n| **n < 2 || **n > 8) {
        bail!("--shards: {n}: each must be 2 to 8 (the operator's default --max-shards)");
    }
    if shards.iter().any(|n| *n as usize > size.repos) {
        bail!("--shards: more shards than repositories ({}): shards split by repository", size.repos);
    }
    Ok(Options { runs: given.num("runs", 3)?.max(1) as usize, size, shards })
}

fn run(args: &[String]) -> Result<()> {
    let opts = options(args)?;
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_imageset-operator"));
    if !bin.is_file() {
        bail!("{} not found: run scripts/bench-shards, which builds it", bin.display());
    }
    let mut cases = vec![Case::Cli, Case::Operator(1)];
    cases.extend(opts.shards.iter().map(|n| Case::Operator(*n)));
    cases.dedup();

    let started = Instant::now();
    let src = Registry::start(RegistryOptions { access_log: true, ..Default::default() });
    let load = workload::write_into(&src.storage, opts.size);
    eprintln!(
        "bench: {} images, {} blobs, {:.1} MB written into the source registry's storage in {:.1} s",
        load.images.len(),
        load.blobs.len(),
        load.blob_bytes() as f64 / 1e6,
        load.written_s
    );
    let cp = support::cluster::shared();
    let kcm = support::controllers::shared();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let api = rt.block_on(async {
        let client = cp.client().await;
        support::cluster::ensure_namespace(&client, NAMESPACE).await;
        support::controllers::ready_namespace(&client, OPERATOR_NS, kcm).await;
        Api::namespaced(client, NAMESPACE)
    });
    let observer = observe::Observer::start(&cp.kubeconfig, OPERATOR_NS)?;
    let root = support::temp_dir("bench-shards-");
    let w = World { bin, src, load, root, rt, api, observer };
    eprintln!("bench: control plane, Job controller and registries up in {:.1} s", started.elapsed().as_secs_f64());

    let load_before = entry::loadavg();
    let measured = Instant::now();
    // One unmeasured round: no program's first start from disk, no cold page cache is timed.
    for case in &cases {
        let s = cases::run(&w, *case, "warmup").with_context(|| format!("warm-up, {}", case.name()))?;
        eprintln!("bench: warm-up {}: {:.2} s", case.name(), s.wall_s);
    }
    let mut samples: Vec<Sample> = Vec::new();
    for r in 0..opts.runs {
        let mut order = cases.clone();
        order.rotate_left(r % cases.len());
        for case in order {
            let s = cases::run(&w, case, &format!("r{}", r + 1)).with_context(|| format!("run {}", r + 1))?;
            eprintln!(
                "bench: run {} {}: {:.2} s, {} blob GETs of {} distinct",
                r + 1,
                case.name(),
                s.wall_s,
                s.traffic.blob_gets,
                s.traffic.distinct
            );
            if let Some(tl) = &s.timeline {
                eprintln!(
                    "bench:   Job {} after {:.2} s, shards ran {:.2}-{:.2} s, {} pods",
                    tl.job,
                    tl.job_s,
                    tl.first_start_s,
                    tl.last_exit_s,
                    tl.shards.iter().map(|x| x.attempts).sum::<usize>()
                );
            }
            samples.push(s);
        }
    }
    let machine = format!(
        "machine: {} CPUs, load average {load_before} before, {} after; measured in {:.0} s (setup {:.0} s)",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        entry::loadavg(),
        measured.elapsed().as_secs_f64(),
        measured.duration_since(started).as_secs_f64(),
    );
    print!("{}", report::report(&w.load, &cases, &samples, opts.runs, &machine));
    Ok(())
}
