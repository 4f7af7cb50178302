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

#[path = "entry.rs"]
mod entry;
#[path = "../tests/support/mod.rs"]
mod support;

#[path = "delete/registry.rs"]
mod registry;
#[path = "delete/report.rs"]
mod report;
#[path = "delete/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::json;

use registry::DeleteRegistry;
use report::Row;
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
        let given = entry::flags(args)?;
        if let Some((k, _)) = given.iter().find(|(k, _)| !KNOWN.contains(&k.as_str())) {
            bail!("unknown option --{k} (known: --{})", KNOWN.join(", --"));
        }
        let get = |key: &str| -> Option<String> {
            given
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(format!("BENCH_{}", key.to_uppercase().replace('-', "_"))).ok())
                .filter(|v| !v.is_empty())
        };
        let num = |key: &str, default: u64| -> Result<u64> {
            get(key).map(|v| v.parse().with_context(|| format!("{key}: {v:?} is not a number"))).unwrap_or(Ok(default))
        };
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
        // BENCH_IMAGESET_BIN, like the other benches that drive the built binary.
        let bin = given
            .iter()
            .rev()
            .find(|(k, _)| k == "bin")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("BENCH_IMAGESET_BIN").ok())
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_imageset-operator")));
        Ok(Options {
            images,
            tools,
            out: get("out").map(PathBuf::from),
            command: CommandOptions {
                bin,
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
    let run_dir = cache_root().join("delete/runs").join(format!("{}-{stamp}", opts.images));
    std::fs::create_dir_all(&run_dir)?;
    eprintln!("bench: logs and inputs in {}", run_dir.display());

    let load_before = loadavg();
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
    let load_after = loadavg();
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
    let tmp_base = std::env::var_os("BENCH_TMPDIR").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let scratch = tempfile::Builder::new().prefix("bench-delete-").tempdir_in(&tmp_base)?;
    let storage = scratch.path().join("storage");
    let started = Instant::now();
    let images = small_images(&storage, REPOS, opts.images, LAYER_BYTES, SEED);
    let reg = DeleteRegistry::start(&storage, &run_dir.join(format!("{name}-registry.log")))?;
    let absent = reg.not_served(&images);
    if !absent.is_empty() {
        bail!("{name}: {} of {} images not served before the run, e.g. {}", absent.len(), images.len(), absent[0]);
    }
    eprintln!("bench: {name}: {} images in place in {:.1} s", images.len(), started.elapsed().as_secs_f64());
    let mut row = Row {
        tool,
        images: images.len(),
        measured: Default::default(),
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
    wait_idle(opts.wait_idle);
    eprintln!("bench: {name} ...");
    let mark = reg.log_mark();
    row.measured = tools::measure(&program, &args, &run_dir.join(format!("{name}.log")), opts.timeout)?;
    // The requests before the check: its HEADs are the bench's, not the tool's.
    row.requests = reg.requests_since(mark)?;
    row.remaining = reg.still_there(&images);
    Ok(row)
}

/// BENCH_CACHE, else `imageset-operator-bench` in the user's cache directory.
fn cache_root() -> PathBuf {
    if let Some(d) = std::env::var_os("BENCH_CACHE") {
        return PathBuf::from(d);
    }
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache"))
        .join("imageset-operator-bench")
}

/// Waits, at most `limit`, until the machine has been nearly idle for a few seconds: on a
/// shared machine, a run that starts during someone's build measures the build.
fn wait_idle(limit: Duration) {
    let start = Instant::now();
    let mut said = false;
    while start.elapsed() < limit {
        let a = tools::cpu_times();
        std::thread::sleep(Duration::from_secs(3));
        let busy = tools::busy_between(a, tools::cpu_times());
        if busy < 0.10 {
            return;
        }
        if !said {
            eprintln!(
                "bench: machine {:.0} % busy, waiting up to {} s for it to settle",
                busy * 100.0,
                limit.as_secs()
            );
            said = true;
        }
    }
}

fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// skopeo's and the registry's versions, as they print them.
fn tool_versions() -> String {
    let version = |name: &str| -> String {
        let Some(p) = tools::find_program(name) else { return format!("{name} not found") };
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
