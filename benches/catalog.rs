//! The catalog benchmark: loads and filters every catalog tarball of a directory (by default
//! `../shared/data/fbc/bench`, community-operators catalogs extracting to
//! `configs/<package>/catalog.yaml`) in two forms, the YAML as kept in git and the same content
//! as JSON streams rendered per package by `opm render -o json` (as opm writes them into
//! catalog images; `--json-from serde` converts the YAML with serde instead). Side by side,
//! interleaved, on the same files: our `Catalog::load_dir` + `select` + `filtered_files`,
//! `opm render <dir> -o json`, and Python's C parsers (PyYAML's libyaml `CSafeLoader` for
//! YAML, the `json` module's C decoder for JSON streams, which YAML loaders cannot read as
//! one stream). Every measurement is a fresh process under GNU time, so peak RSS is that
//! measurement's alone; our process is this binary re-executed with `--child`.
//!
//! It reports and never fails on a missed target: ours (either form) at least 3x faster than
//! libyaml parsing the YAML form, faster than `opm render`, and peak RSS under 3x the
//! catalog's size.
//!
//! Options (argument or environment): `--runs N` (BENCH_RUNS, median shown, default 3),
//! `--catalogs a,b` (BENCH_CATALOGS, substrings of tarball names), `--forms yaml,json`
//! (BENCH_FORMS), `--cases heads,full,range` (BENCH_CASES: catalog only, every package
//! `full: true`, a `minVersion` on the package with most bundles), `--json-from opm|serde`
//! (BENCH_JSON_FROM), `--data DIR` (BENCH_CATALOG_DATA), `--opm PATH` (BENCH_OPM, else `opm`
//! on PATH, else the test world's), `--python PATH` (BENCH_PYTHON), `--out FILE`
//! (BENCH_CATALOG_OUT, the JSON results). Extracted and rendered catalogs are cached under
//! BENCH_CACHE (default ~/.cache/imageset-operator-bench) in `catalog/`.

#[path = "catalog/child.rs"]
mod child;
#[path = "common/entry.rs"]
mod entry;
#[path = "catalog/measure.rs"]
mod measure;
#[path = "catalog/prepare.rs"]
mod prepare;
#[path = "catalog/report.rs"]
mod report;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::json;

use measure::{Sample, Tool};
use prepare::{Form, JsonFrom};

/// What the benchmark was asked to do.
pub struct Options {
    runs: usize,
    catalogs: Vec<String>,
    forms: Vec<Form>,
    cases: Vec<child::Case>,
    json_from: Option<JsonFrom>,
    data: PathBuf,
    opm: Option<PathBuf>,
    python: Option<String>,
    out: Option<PathBuf>,
}

/// Options the bench accepts, as `--key value` or `--key=value`.
const KNOWN: &[&str] = &["runs", "catalogs", "forms", "cases", "json-from", "data", "opm", "python", "out"];

impl Options {
    fn parse(args: &[String]) -> Result<Options> {
        let given = entry::Given::parse(args, KNOWN)?;
        let get = |key: &str, env: &str| given.get_or_env(key, env);
        let list = |key: &str, env: &str| -> Vec<String> {
            get(key, env).map(|v| v.split(',').map(|s| s.trim().to_string()).collect()).unwrap_or_default()
        };
        let runs = match get("runs", "BENCH_RUNS") {
            None => 3,
            Some(v) => v.parse::<usize>().with_context(|| format!("runs: {v:?} is not a number"))?.max(1),
        };
        let forms = match list("forms", "BENCH_FORMS") {
            l if l.is_empty() => vec![Form::Yaml, Form::Json],
            l => l
                .iter()
                .map(|f| Form::parse(f).with_context(|| format!("form {f:?}: yaml or json")))
                .collect::<Result<_>>()?,
        };
        let cases = match list("cases", "BENCH_CASES") {
            l if l.is_empty() => child::Case::ALL.to_vec(),
            l => l
                .iter()
                .map(|c| child::Case::parse(c).with_context(|| format!("case {c:?}: heads, full or range")))
                .collect::<Result<_>>()?,
        };
        let json_from = match get("json-from", "BENCH_JSON_FROM").as_deref() {
            None => None,
            Some("opm") => Some(JsonFrom::Opm),
            Some("serde") => Some(JsonFrom::Serde),
            Some(v) => bail!("json-from {v:?}: opm or serde"),
        };
        let data = get("data", "BENCH_CATALOG_DATA")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/fbc/bench"));
        Ok(Options {
            runs,
            catalogs: list("catalogs", "BENCH_CATALOGS"),
            forms,
            cases,
            json_from,
            data,
            opm: get("opm", "BENCH_OPM").map(PathBuf::from).or_else(measure::find_opm),
            python: get("python", "BENCH_PYTHON"),
            out: get("out", "BENCH_CATALOG_OUT").map(PathBuf::from),
        })
    }
}

fn main() {
    entry::main("catalog", "--child", child::main, run);
}

fn run(args: &[String]) -> Result<()> {
    let opts = Options::parse(args)?;
    if !Path::new("/usr/bin/time").exists() {
        bail!("/usr/bin/time (GNU time) not found: run scripts/bench-catalog, which installs it");
    }
    let python = measure::find_python(opts.python.as_deref());
    if python.is_none() {
        eprintln!("bench: no python3 with PyYAML's CSafeLoader (Debian: python3-yaml): no C parser figures");
    }
    if opts.opm.is_none() {
        eprintln!("bench: opm not found (BENCH_OPM, PATH, the test world's bin): no opm figures");
    }
    let json_from = opts.json_from.unwrap_or(if opts.opm.is_some() { JsonFrom::Opm } else { JsonFrom::Serde });
    if json_from == JsonFrom::Opm && opts.opm.is_none() {
        bail!("--json-from opm needs opm");
    }
    let cache = entry::cache_root();
    let tarballs = prepare::tarballs(&opts.data, &opts.catalogs)?;
    let mut catalogs = Vec::new();
    for tarball in &tarballs {
        catalogs.push(prepare::ensure(tarball, &cache, json_from, opts.opm.as_deref())?);
    }
    let exe = std::env::current_exe().context("find the bench binary")?;
    let mut tools: Vec<Tool> = opts.cases.iter().map(|&c| Tool::Ours(c)).collect();
    if let Some(py) = &python {
        tools.push(Tool::Python(py.clone()));
    }
    if let Some(opm) = &opts.opm {
        tools.push(Tool::Opm(opm.clone()));
    }
    let load_before = entry::loadavg();
    let mut samples: Vec<Sample> = Vec::new();
    for run in 0..opts.runs {
        for cat in &catalogs {
            for &form in &opts.forms {
                let dir = cat.dir(form);
                // Rotate the order each run so no tool always runs right after another's
                // page-cache or CPU-frequency footprint.
                for k in 0..tools.len() {
                    let tool = &tools[(k + run) % tools.len()];
                    eprint!("bench: run {} {} {} {} ... ", run + 1, cat.name, form.name(), tool.name());
                    let s = measure::measure(tool, &exe, &dir, form, &cat.name, run);
                    match &s.error {
                        None => eprintln!("{:.3} s, {:.1} MiB", s.wall_s, s.rss_kib as f64 / 1024.0),
                        Some(e) => eprintln!("failed: {e}"),
                    }
                    samples.push(s);
                }
            }
        }
    }
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let machine = format!(
        "machine: {cpus} CPUs, load average {load_before} before, {} after; JSON form from {}; C parser: {}; opm: {}",
        entry::loadavg(),
        json_from.describe(),
        python.as_deref().unwrap_or("none"),
        opts.opm.as_deref().map(measure::opm_version).unwrap_or_else(|| "none".into()),
    );
    let table = report::table(&catalogs, &opts.forms, &opts.cases, &samples, opts.runs, &machine);
    let out = opts.out.clone().unwrap_or_else(|| cache.join("catalog").join("results.json"));
    let context = json!({ "runs": opts.runs, "machine": machine, "json_from": json_from.describe() });
    std::fs::write(&out, serde_json::to_vec_pretty(&report::to_json(&catalogs, &samples, context))?)
        .with_context(|| format!("write {}", out.display()))?;
    print!("{table}");
    println!("results: {}", out.display());
    Ok(())
}
