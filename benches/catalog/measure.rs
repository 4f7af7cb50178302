//! One measurement: a fresh process under GNU time (wall from here, CPU and peak RSS from
//! time), plus what the process reports about itself (parse and filter times).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::child::Case;
use super::prepare::Form;

/// What is measured.
#[derive(Clone, Debug)]
pub enum Tool {
    /// Our load + select + write, in one case.
    Ours(Case),
    /// Python's C parsers (PyYAML `CSafeLoader`, or `json`'s C decoder for JSON streams).
    Python(String),
    /// `opm render <dir> -o json`.
    Opm(PathBuf),
}

impl Tool {
    /// For progress lines and the JSON results.
    pub fn name(&self) -> String {
        match self {
            Tool::Ours(c) => format!("ours-{}", c.name()),
            Tool::Python(_) => "python-c".into(),
            Tool::Opm(_) => "opm-render".into(),
        }
    }
}

/// One measured run of one tool on one catalog form.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sample {
    /// Catalog name.
    pub catalog: String,
    /// `yaml` or `json`.
    pub form: String,
    /// [`Tool::name`].
    pub tool: String,
    /// Run number, from 0.
    pub run: usize,
    /// Process wall time, seconds.
    pub wall_s: f64,
    /// User + system CPU, seconds.
    pub cpu_s: f64,
    /// Peak RSS, KiB.
    pub rss_kib: u64,
    /// What the process timed itself: parse (load) seconds.
    pub parse_s: Option<f64>,
    /// Ours only: select + write seconds.
    pub filter_s: Option<f64>,
    /// Ours only: the rest of what the child reported (bundles kept, bytes written, ...).
    pub detail: Option<serde_json::Value>,
    /// Why the measurement failed.
    pub error: Option<String>,
}

/// Parses every catalog file with Python's C parsers and prints the time it took. Reading
/// the files is inside the timing, as it is inside ours; interpreter start and imports are not.
const PYTHON: &str = r#"
import json, os, sys, time
import yaml
root = sys.argv[1]
paths = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs
               if f.lower().endswith(('.yaml', '.yml', '.json')) and not f.startswith('.'))
t = time.perf_counter()
docs = 0
for p in paths:
    if p.lower().endswith('.json'):
        # A JSON stream is concatenated documents, which no YAML loader reads as one stream.
        with open(p, 'r', encoding='utf-8') as f:
            s = f.read()
        dec, ws, i = json.JSONDecoder(), json.decoder.WHITESPACE, 0
        i = ws.match(s, i).end()
        while i < len(s):
            _, i = dec.raw_decode(s, i)
            i = ws.match(s, i).end()
            docs += 1
    else:
        with open(p, 'rb') as f:
            for _ in yaml.load_all(f, Loader=yaml.CSafeLoader):
                docs += 1
print(json.dumps({"parse_s": time.perf_counter() - t, "docs": docs}))
"#;

/// Runs `tool` on the catalog at `dir` once.
pub fn measure(tool: &Tool, exe: &Path, dir: &Path, form: Form, catalog: &str, run: usize) -> Sample {
    let mut s =
        Sample { catalog: catalog.into(), form: form.name().into(), tool: tool.name(), run, ..Default::default() };
    if let Err(e) = measure_into(tool, exe, dir, &mut s) {
        s.error = Some(format!("{e:#}"));
    }
    s
}

fn measure_into(tool: &Tool, exe: &Path, dir: &Path, s: &mut Sample) -> Result<()> {
    let timefile = tempfile::NamedTempFile::new()?;
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%U %S %M", "-o"]).arg(timefile.path());
    match tool {
        Tool::Ours(case) => cmd.arg(exe).args(["--child", case.name()]).arg(dir),
        Tool::Python(py) => cmd.arg(py).args(["-c", PYTHON]).arg(dir),
        Tool::Opm(opm) => cmd.arg(opm).arg("render").arg(dir).args(["-o", "json"]),
    };
    // opm's rendering goes nowhere: writing 20 MB to a file would time the disk, not opm.
    let stdout = if matches!(tool, Tool::Opm(_)) { Stdio::null() } else { Stdio::piped() };
    cmd.stdin(Stdio::null()).stdout(stdout).stderr(Stdio::piped());
    let start = Instant::now();
    let out = cmd.spawn().context("start /usr/bin/time")?.wait_with_output()?;
    s.wall_s = start.elapsed().as_secs_f64();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("{}: {}", out.status, err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(""));
    }
    // GNU time's figures are on the last line (earlier lines say why a command failed).
    let times = std::fs::read_to_string(timefile.path())?;
    let f: Vec<f64> = times.lines().last().unwrap_or("").split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    if f.len() != 3 {
        bail!("unexpected GNU time output {times:?}");
    }
    s.cpu_s = f[0] + f[1];
    s.rss_kib = f[2] as u64;
    if matches!(tool, Tool::Opm(_)) {
        return Ok(());
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim()).with_context(|| format!("child said {line:?}"))?;
    s.parse_s = v["parse_s"].as_f64();
    s.filter_s = v["filter_s"].as_f64();
    s.detail = Some(v);
    Ok(())
}

/// `opm` on PATH, else the test world's (scripts/install-test-deps).
pub fn find_opm() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("opm"))
        .find(|p| p.is_file());
    on_path.or_else(|| {
        let cache = std::env::var_os("IMAGESET_TEST_CACHE").map(PathBuf::from).unwrap_or_else(|| {
            let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
            std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| home.join(".cache"))
                .join("imageset-operator-test")
        });
        Some(cache.join("bin/opm")).filter(|p| p.is_file())
    })
}

/// The first of `explicit`, `python3` and Debian's `/usr/bin/python3` whose PyYAML has the
/// libyaml loader (a pure-Python PyYAML would measure Python, not libyaml).
pub fn find_python(explicit: Option<&str>) -> Option<String> {
    let candidates: Vec<&str> = match explicit {
        Some(p) => vec![p],
        None => vec!["python3", "/usr/bin/python3"],
    };
    candidates.into_iter().map(String::from).find(|py| {
        Command::new(py)
            .args(["-c", "import yaml; yaml.CSafeLoader"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// opm's version, as `opm version` says it.
pub fn opm_version(opm: &Path) -> String {
    let out = Command::new(opm).arg("version").output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    let text = out.unwrap_or_default();
    let v = text.split("OpmVersion:\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("unknown");
    format!("opm {v}")
}
