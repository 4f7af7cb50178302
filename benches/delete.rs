//! The delete benchmark: removing 1,000 images from a mirror registry with
//! `imageset-operator delete --delete-yaml-file` against the `skopeo delete` loop users
//! script instead, side by side in one run.
//!
//! For each tool in turn: a fresh storage directory gets the same images (`--images N`,
//! default 1000, single-layer OCI images of 4 KiB spread round-robin over 50 repositories,
//! each tagged once, written straight into the registry's storage by
//! `support::storage::small_images`), a Distribution registry (Debian's docker-registry,
//! deletes enabled, a JSON log line per request) starts on it, and every image is checked to
//! be served by tag with its digest. Then the tool runs under GNU time:
//!
//! * `imageset-operator`: `delete --delete-yaml-file delete-images.yaml docker://HOST
//!   --dest-tls-verify=false`, the DeleteImageList naming every image by tag;
//! * `skopeo`: a shell loop running `skopeo delete --tls-verify=false docker://HOST/REPO:TAG`
//!   for each image in turn, what users script;
//! * `skopeo-parallel`: the same references through `xargs -P 8 -n 1 skopeo delete`.
//!
//! Wall time is measured here around the process, CPU and peak RSS come from GNU time, and the
//! requests from the registry's log (everything it served between the start and the end of
//! the run, per image, split by method). Afterwards every image is looked up by tag and by
//! digest: the bench fails if any is still served, or if a tool exits non-zero. The table
//! gives each tool's wall time over the skopeo loop's (ours / skopeo).
//!
//! Options (argument or environment): `--images N` (BENCH_IMAGES, default 1000), `--tools
//! a,b` (BENCH_TOOLS: imageset-operator, skopeo, skopeo-parallel; default all three),
//! `--out FILE` (BENCH_OUT, the JSON results; default `results.json` in the run's log
//! directory), `--parallel N` (BENCH_PARALLEL, imageset-operator's --parallel-images;
//! BENCH_IMAGESET_ARGS adds its flags), `--skopeo-jobs N` (BENCH_SKOPEO_JOBS, xargs -P of
//! skopeo-parallel, default 8), `--timeout SECS` (BENCH_TIMEOUT, per tool, default 1800),
//! `--wait-idle SECS` (BENCH_WAIT_IDLE: before each run, wait up to that long for the machine
//! to be idle), `--bin PATH` (BENCH_IMAGESET_BIN, else the release binary cargo built with
//! this bench). Each run's logs and inputs go under BENCH_CACHE (default
//! ~/.cache/imageset-operator-bench) in `delete/runs/`; the scratch registries' storage under
//! BENCH_TMPDIR (default the system temp directory), removed after each tool.

#[path = "common/entry.rs"]
mod entry;
#[path = "common/measure.rs"]
mod measure;
#[path = "common/registry.rs"]
mod registry;
#[path = "../tests/support/mod.rs"]
mod support;

#[path = "delete/report.rs"]
mod report;
#[path = "delete/requests.rs"]
mod requests;
#[path = "delete/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::json;

use entry::Given;
use registry::{LoggedRegistry, Storage};
use report::Row;
use requests::Requests;
use support::storage::small_images;
use tools::{CommandOptions, Tool};

/// Repositories the images are spread over, each image's layer size, and the seed of their
/// bytes.
const REPOS: usize = 50;
const LAYER_BYTES: usize = 4096;
const SEED: u64 = 41;

struct Options {
    images: usize,
    tools: Vec<Tool>,
    out: Option<PathBuf>,
    command: CommandOptions,
    timeout: Duration,
    wait_idle: Duration,
}

/// Options the bench accepts, as `--key value` or `--key=value`.
const KNOWN: &[&str] = &["images", "tools", "out", "parallel", "skopeo-jobs", "timeout", "wait-idle", "bin"];

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let given = Given::parse(args, KNOWN)?;
        let get = |key: &str| given.get(key);
        let num = |key: &str, default: u64| given.num(key, default);
        let tools = match get("tools") {
            None => Tool::ALL.to_vec(),
            Some(list) => {
                let picked: Vec<Tool> = list
                    .split(',')
                    .map(|t| {
                        Tool::parse(t)
                            .with_context(|| format!("unknown tool {t:?} (imageset-operator, skopeo, skopeo-parallel)"))
                    })
                    .collect::<Result<_>>()?;
                Tool::ALL.into_iter().filter(|t| picked.contains(t)).collect()
            }
        };
        let images = num("images", 1000)? as usize;
        if images == 0 {
            bail!("--images must be at least 1");
        }
        Ok(Options {
            images,
            tools,
            out: get("out").map(PathBuf::from),
            command: CommandOptions {
                // BENCH_IMAGESET_BIN, like the other benches that drive the built binary.
                bin: given.bin(),
                parallel_images: get("parallel").map(|v| v.parse()).transpose().context("parallel")?,
                skopeo_jobs: num("skopeo-jobs", 8)?.max(1) as usize,
            },
            timeout: Duration::from_secs(num("timeout", 1800)?),
            wait_idle: Duration::from_secs(num("wait-idle", 0)?),
        })
    }
}

fn main() {
    entry::main("delete", "--child-none", no_child, run);
}

/// The shared entry re-enters benches as a child; this one measures other processes only.
fn no_child(_: &[String]) -> i32 {
    eprintln!("the delete benchmark has no child process");
    2
}

fn run(args: &[String]) -> Result<()> {
    let opts = Options::parse(args)?;
    if !Path::new("/usr/bin/time").exists() {
        bail!("/usr/bin/time (GNU time) not found: run scripts/bench-delete, which installs it");
    }
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let run_dir = entry::cache_root().join("delete/runs").join(format!("{}-{stamp}", opts.images));
    std::fs::create_dir_all(&run_dir)?;
    eprintln!("bench: logs and inputs in {}", run_dir.display());

    let load_before = entry::loadavg();
    let mut rows = Vec::new();
    for &tool in &opts.tools {
        let row = bench_tool(tool, &opts, &run_dir)?;
        eprintln!(
            "bench: {}: {:.2} s, exit {:?}, {} requests, {} of {} images still there",
            tool.name(),
            row.measured.wall_s,
            row.measured.exit_code,
            row.requests.total,
            row.remaining.len(),
            row.images
        );
        rows.push(row);
    }
    let load_after = entry::loadavg();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let versions = tool_versions();
    let header = vec![
        format!("machine: {cpus} CPUs, load average {load_before} before, {load_after} after; {versions}"),
        format!(
            "workload: {} images ({} repositories round-robin, one tag each, a {} KiB layer each), deleted by tag \
             from a Distribution registry on loopback (plain HTTP, deletes enabled), fresh for each tool",
            opts.images,
            REPOS.min(opts.images),
            LAYER_BYTES / 1024
        ),
    ];
    let how: Vec<String> = opts.tools.iter().map(|t| format!("{}: {}", t.name(), t.describe(&opts.command))).collect();
    let table = report::table(&rows, &header, &how);
    let context = json!({
        "images": opts.images,
        "repositories": REPOS.min(opts.images),
        "layer_bytes": LAYER_BYTES,
        "seed": SEED,
        "parallel_images": opts.command.parallel_images,
        "skopeo_jobs": opts.command.skopeo_jobs,
        "tools": how,
        "cpus": cpus,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "versions": versions,
        "timestamp": stamp,
        "logs": run_dir.display().to_string(),
    });
    let out = opts.out.clone().unwrap_or_else(|| run_dir.join("results.json"));
    std::fs::write(&out, serde_json::to_vec_pretty(&report::to_json(&rows, context))?)?;
    print!("{table}");
    println!("results: {}", out.display());
    let failed: Vec<String> =
        rows.iter().filter_map(|r| r.failure().map(|why| format!("{}: {why}", r.tool.name()))).collect();
    if !failed.is_empty() {
        bail!("{} of {} tools failed:\n{}", failed.len(), rows.len(), failed.join("\n"));
    }
    Ok(())
}

/// One tool against a fresh registry holding the images; the registry and its storage are
/// removed after.
fn bench_tool(tool: Tool, opts: &Options, run_dir: &Path) -> Result<Row> {
    let name = tool.name();
    let scratch = entry::scratch_dir("bench-delete-")?;
    let storage = scratch.path().join("storage");
    let started = Instant::now();
    let images = small_images(&storage, REPOS, opts.images, LAYER_BYTES, SEED);
    let storage_opts = Storage { delete: true, ..Default::default() };
    let reg = LoggedRegistry::start(&storage, storage_opts, &run_dir.join(format!("{name}-registry.log")))?;
    let absent = requests::not_served(&reg, &images);
    if !absent.is_empty() {
        bail!("{name}: {} of {} images not served before the run, e.g. {}", absent.len(), images.len(), absent[0]);
    }
    eprintln!("bench: {name}: {} images in place in {:.1} s", images.len(), started.elapsed().as_secs_f64());
    let mut row = Row {
        tool,
        images: images.len(),
        measured: Default::default(),
        summary: String::new(),
        requests: Default::default(),
        remaining: Vec::new(),
        error: None,
    };
    let (program, args) = match tools::command(tool, &images, &reg.host, &run_dir.join(name), &opts.command) {
        Ok(c) => c,
        Err(e) => {
            row.error = Some(format!("{e:#}"));
            return Ok(row);
        }
    };
    measure::wait_idle(opts.wait_idle);
    eprintln!("bench: {name} ...");
    let mark = reg.log_mark();
    let log = run_dir.join(format!("{name}.log"));
    // Neither a user's cache nor their registry credentials: the tools see loopback only.
    row.measured = measure::measure(&program, &args, &log, opts.timeout, &["OC_MIRROR_CACHE", "REGISTRY_AUTH_FILE"])?;
    row.summary = tools::summary(&log);
    // The requests before the check: its HEADs are the bench's, not the tool's.
    row.requests = Requests::count(&reg.responses_since(mark)?);
    row.remaining = requests::still_there(&reg, &images);
    Ok(row)
}

/// skopeo's and the registry's versions, as they print them.
fn tool_versions() -> String {
    let version = |name: &str| -> String {
        let Some(p) = measure::find_program(name) else { return format!("{name} not found") };
        std::process::Command::new(p)
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| format!("{name} version unknown"))
    };
    format!("{}; {}", version("skopeo"), version("docker-registry"))
}
