//! The copy benchmark: a seeded product-suite image set (200 tags in 55 repositories, about
//! 2.40 GB of unique layers; see `workload`) served by a local registry, copied into a fresh
//! empty registry by imageset-operator, `skopeo sync`, `crane copy` and a bare streaming
//! copier, each cold and then re-run. Wall time, client CPU and peak RSS come from GNU time;
//! what was pulled and written and how many requests it took come from the registries'
//! request logs; every tag is checked in the destination afterwards.
//!
//! Variants: `standard` (the set above), `big` (plus one image with a 2 GiB layer) and
//! `small`: 10,000 single-layer OCI images (`--images N`) round-robin over 50 repositories,
//! each with its own 4 KiB layer, written into the source registry's storage directly rather
//! than pushed; it measures what each tool spends per image (requests per image, CPU, memory)
//! rather than per byte. crane runs for it only when `--tools` names it (one process per tag);
//! skopeo sync gets `--preserve-digests` for it (see `tools::CommandOptions`).
//!
//! Options (argument or environment): `--variant standard|big|small`, or `--big`, `--small`
//! (BENCH_VARIANT), `--images N` (BENCH_IMAGES, the small variant's image count, default
//! 10000), `--tools a,b` (BENCH_TOOLS: imageset-operator, skopeo-sync, crane, bare), `--parallel N`
//! (BENCH_PARALLEL, imageset-operator's --parallel-images; BENCH_IMAGESET_ARGS adds its flags), `--runs N` (BENCH_RUNS, median
//! shown), `--crane-jobs N` (BENCH_CRANE_JOBS, default 4), `--seed N` (BENCH_SEED),
//! `--timeout SECS` (BENCH_TIMEOUT, per run), `--out FILE` (BENCH_OUT, the JSON results),
//! `--wait-idle SECS` (BENCH_WAIT_IDLE: before each cold run, wait up to that long for the
//! machine to be idle), `--plan-only` (print the planned set's shape and stop). The generated
//! set is cached under BENCH_CACHE (default ~/.cache/imageset-operator-bench), with each
//! run's logs and inputs under its `runs/`; scratch registries go to BENCH_TMPDIR (default
//! the system temp directory).

#[path = "common/entry.rs"]
mod entry;
#[path = "common/measure.rs"]
mod measure;
#[path = "common/registry.rs"]
mod registry;
#[path = "../tests/support/mod.rs"]
mod support;

#[path = "copy/bare.rs"]
mod bare;
#[path = "copy/generate.rs"]
mod generate;
#[path = "copy/report.rs"]
mod report;
#[path = "copy/tools.rs"]
mod tools;
#[path = "copy/traffic.rs"]
mod traffic;
#[path = "copy/workload.rs"]
mod workload;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::json;

use entry::Given;
use generate::Workload;
use registry::{LoggedRegistry, Storage};
use report::{Phase, Row};
use tools::{CommandOptions, Tool};
use traffic::Traffic;
use workload::{Plan, SMALL_IMAGES, Variant};

struct Options {
    variant: Variant,
    tools: Vec<Tool>,
    parallel: Option<u32>,
    runs: usize,
    crane_jobs: usize,
    seed: u64,
    timeout: Duration,
    out: Option<PathBuf>,
    plan_only: bool,
    wait_idle: Duration,
}

/// Options the bench accepts, as `--key value` or `--key=value`.
const KNOWN: &[&str] = &[
    "variant",
    "images",
    "tools",
    "parallel",
    "runs",
    "crane-jobs",
    "seed",
    "timeout",
    "out",
    "plan-only",
    "wait-idle",
];

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        // The flags without a value, as the options they stand for.
        let args: Vec<String> = args
            .iter()
            .map(|a| match a.as_str() {
                "--big" => "--variant=big".into(),
                "--small" => "--variant=small".into(),
                "--plan-only" => "--plan-only=1".into(),
                _ => a.clone(),
            })
            .collect();
        let given = Given::parse(&args, KNOWN)?;
        let get = |key: &str| given.get(key);
        let num = |key: &str, default: u64| given.num(key, default);
        let variant = match get("variant").as_deref() {
            None | Some("standard") => Variant::Standard,
            Some("big") => Variant::Big,
            Some("small") => Variant::Small { images: num("images", SMALL_IMAGES as u64)? as usize },
            Some(v) => bail!("variant {v:?}: standard, big or small"),
        };
        if get("images").is_some() && !matches!(variant, Variant::Small { .. }) {
            bail!("--images (BENCH_IMAGES) applies to --variant small");
        }
        let tools = match get("tools") {
            // crane starts a process per tag: at ten thousand tags that is its own benchmark.
            None if matches!(variant, Variant::Small { .. }) => {
                Tool::ALL.into_iter().filter(|t| *t != Tool::Crane).collect()
            }
            None => Tool::ALL.to_vec(),
            Some(list) => {
                let picked: Vec<Tool> = list
                    .split(',')
                    .map(|t| Tool::parse(t).with_context(|| format!("unknown tool {t:?}")))
                    .collect::<Result<_>>()?;
                Tool::ALL.into_iter().filter(|t| picked.contains(t)).collect()
            }
        };
        Ok(Options {
            variant,
            tools,
            parallel: get("parallel").map(|v| v.parse()).transpose().context("parallel")?,
            runs: num("runs", 1)?.max(1) as usize,
            crane_jobs: num("crane-jobs", 4)?.max(1) as usize,
            seed: num("seed", 7)?,
            timeout: Duration::from_secs(num("timeout", 1800)?),
            out: get("out").map(PathBuf::from),
            plan_only: get("plan-only").is_some(),
            wait_idle: Duration::from_secs(num("wait-idle", 0)?),
        })
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--bare-copy") {
        let [src, dst, list] = [1, 2, 3].map(|k| args.get(i + k).cloned().unwrap_or_default());
        std::process::exit(bare::main(&src, &dst, Path::new(&list)));
    }
    // `cargo bench` passes --bench; a test run of all targets does not, and must not start a
    // benchmark that takes minutes.
    if !args.iter().any(|a| a == "--bench" || a == "--plan-only") {
        println!("copy benchmark: run it with scripts/bench-copy or cargo bench --bench copy");
        return;
    }
    if let Err(e) = run(&args) {
        eprintln!("bench: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<()> {
    let opts = Options::parse(args)?;
    let root = entry::cache_root();
    let plan = Plan::new(opts.variant, opts.seed);
    if opts.plan_only {
        println!("{}", plan.describe());
        return Ok(());
    }
    if !Path::new("/usr/bin/time").exists() {
        bail!("/usr/bin/time (GNU time) not found: run scripts/install-bench-deps");
    }
    let work = generate::ensure(&plan, opts.variant, opts.seed, &root)?;
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let run_dir = root.join("runs").join(format!("{}-{stamp}", work.key));
    std::fs::create_dir_all(&run_dir)?;
    eprintln!("bench: logs and inputs in {}", run_dir.display());

    let src = LoggedRegistry::start(
        &work.storage,
        Storage { readonly: true, ..Default::default() },
        &run_dir.join("source.log"),
    )?;
    warm_page_cache(&work.storage);
    let load_before = entry::loadavg();
    let mut rows = Vec::new();
    for run in 1..=opts.runs {
        for &tool in &opts.tools {
            rows.extend(bench_tool(tool, run, &work, &src, &run_dir, &opts)?);
        }
    }
    let stats = &work.stats;
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let load_after = entry::loadavg();
    // Other work on the machine shows up directly in the figures: say how busy it was.
    let mut machine = format!("machine: {cpus} CPUs, load average {load_before} before, {load_after} after");
    if opts.tools.contains(&Tool::Crane) {
        machine.push_str(&format!("; crane: xargs -P {} crane copy per tag", opts.crane_jobs));
    }
    let table = report::table(&rows, stats, opts.runs, &machine);
    let context = json!({
        "variant": opts.variant.name(),
        "images": stats.tags,
        "workload_key": work.key,
        "seed": opts.seed,
        "runs": opts.runs,
        "parallel_images": opts.parallel,
        "crane_jobs": opts.crane_jobs,
        "skopeo_preserve_digests": matches!(opts.variant, Variant::Small { .. }),
        "crane_mode": format!("xargs -P {} crane copy per tag", opts.crane_jobs),
        "cpus": cpus,
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "timestamp": stamp,
        "logs": run_dir.display().to_string(),
    });
    let out = opts.out.clone().unwrap_or_else(|| run_dir.join("results.json"));
    std::fs::write(&out, serde_json::to_vec_pretty(&report::to_json(&rows, stats, context))?)?;
    print!("{table}");
    println!("results: {}", out.display());
    Ok(())
}

/// Cold copy and no-op re-run of one tool into a fresh destination registry, removed after.
fn bench_tool(
    tool: Tool,
    run: usize,
    work: &Workload,
    src: &LoggedRegistry,
    run_dir: &Path,
    opts: &Options,
) -> Result<Vec<Row>> {
    let scratch = entry::scratch_dir("bench-copy-")?;
    let name = format!("{}-{run}", tool.name());
    let dst = LoggedRegistry::start(
        &scratch.path().join("storage"),
        Storage::default(),
        &run_dir.join(format!("{name}-dest.log")),
    )?;
    let copts = CommandOptions {
        parallel_images: opts.parallel,
        crane_jobs: opts.crane_jobs,
        skopeo_preserve_digests: matches!(opts.variant, Variant::Small { .. }),
    };
    let inputs = run_dir.join(&name);
    let command = tools::command(tool, work, &src.host, &dst.host, &inputs, scratch.path(), &copts);
    let mut rows = Vec::new();
    for phase in [Phase::Cold, Phase::Noop] {
        let (program, args) = match &command {
            Ok(c) => c,
            Err(e) => {
                rows.push(Row {
                    tool,
                    phase,
                    run,
                    measured: Default::default(),
                    source: Default::default(),
                    dest: Default::default(),
                    failed_images: Vec::new(),
                    error: Some(format!("{e:#}")),
                });
                break;
            }
        };
        if phase == Phase::Cold {
            measure::wait_idle(opts.wait_idle);
        }
        eprintln!("bench: {name} {} ...", phase.name());
        let (smark, dmark) = (src.log_mark(), dst.log_mark());
        let log = run_dir.join(format!("{name}-{}.log", phase.name()));
        let measured = measure::measure(program, args, &log, opts.timeout, &[])?;
        // The traffic before the check: its HEADs are the bench's requests, not the tool's.
        let (source, dest) =
            (Traffic::count(&src.responses_since(smark)?), Traffic::count(&dst.responses_since(dmark)?));
        let failed_images = tools::verify(tool, &work.entries, &dst.host);
        let row = Row { tool, phase, run, source, dest, measured, failed_images, error: None };
        eprintln!(
            "bench: {name} {}: {:.2} s, exit {:?}, {} of {} tags missing or wrong",
            phase.name(),
            row.measured.wall_s,
            row.measured.exit_code,
            row.failed_images.len(),
            work.entries.len()
        );
        // A re-run only means something once the cold run placed something, and is no no-op
        // re-run when the cold one was killed half-way (it would only carry on copying).
        let stop = row.failed_images.len() == work.entries.len() || row.measured.timed_out;
        rows.push(row);
        if stop {
            break;
        }
    }
    Ok(rows)
}

/// Reads every source blob once so the first tool does not pay for a cold disk.
fn warm_page_cache(storage: &Path) {
    fn walk(dir: &Path) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p);
            } else if let Ok(mut f) = std::fs::File::open(&p) {
                let _ = std::io::copy(&mut f, &mut std::io::sink());
            }
        }
    }
    walk(&storage.join("docker/registry/v2/blobs"));
}
