//! The release benchmark: the time to resolve a channel range and read the payloads' image
//! references, with no image copied. A loopback release world (a real Distribution registry,
//! a Cincinnati graph service answering the real stable-4.13 graph, a gpg-signed signature
//! store) holds payloads for the ten stable-4.13 versions from 4.13.0 to 4.13.10 (4.13.7
//! was never released), each naming all 183 components of the real image-references.
//!
//! Measured, side by side in one run, every measurement a fresh process under GNU time (wall
//! time from here, peak RSS from time's `%M`):
//!
//! * `imageset-operator mirror --dry-run` of an image set with channel stable-4.13,
//!   minVersion 4.13.0, maxVersion 4.13.10: graph query, selection, each signature fetched and
//!   verified, each payload's layers fetched into the cache and its image-references read,
//!   copies planned into `working-dir/dry-run/mapping.txt`. *Cold*: a fresh empty cache and
//!   workspace. *Warm*: the same cache and workspace again (payload layers cached, signatures
//!   kept in working-dir), what a scheduled re-run costs.
//! * The script a user writes today to get the same answer without oc-mirror or oc: `curl`
//!   the graph, select the range with `jq`, then per payload `curl` its signature, `gpg
//!   --verify` it against the same key and check the signed digest, `skopeo copy` the payload
//!   to a directory and untar its layers' `release-manifests/image-references`, one tool after
//!   another as a shell script runs them (see `release/baseline.rs`). It is the baseline
//!   because it is what a user picks when oc-mirror is not the answer: the same standard
//!   tools, doing the same checks.
//!
//! Every run's answer is checked: the mapping lists exactly the ten payloads and every
//! component of each, and the script read the same references; otherwise the bench fails.
//! Runs rotate the order of ours and the script; one unmeasured round of each comes first so
//! no program's first start from disk is timed. The target (cold under 1 s for ten payloads)
//! is reported, never enforced.
//!
//! Options (argument or environment): `--runs N` (BENCH_RUNS, default 3; median and minimum
//! shown), `--bin PATH` (BENCH_IMAGESET_BIN, else the binary cargo built with this bench).

#[path = "common/entry.rs"]
mod entry;
#[path = "../tests/support/mod.rs"]
mod support;

#[path = "release/baseline.rs"]
mod baseline;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use support::registry::{Registry, RegistryOptions};
use support::release::{ReleaseWorld, ReleaseWorldOptions};

/// The stable-4.13 versions of the real graph from 4.13.0 to 4.13.10.
const VERSIONS: &[&str] =
    &["4.13.0", "4.13.1", "4.13.2", "4.13.3", "4.13.4", "4.13.5", "4.13.6", "4.13.8", "4.13.9", "4.13.10"];
const CHANNEL: &str = "stable-4.13";
const DEST: &str = "docker://mirror.example.com:5000/bench";
const TARGET_S: f64 = 1.0;

#[derive(Clone, Copy, PartialEq)]
enum Case {
    Cold,
    Warm,
    Script,
}

impl Case {
    fn name(self) -> &'static str {
        match self {
            Case::Cold => "imageset-operator cold",
            Case::Warm => "imageset-operator warm",
            Case::Script => baseline::NAME,
        }
    }
}

/// One measured run.
struct Sample {
    case: Case,
    wall_s: f64,
    rss_kib: Option<u64>,
    /// Component references read.
    components: usize,
    /// The script only: graph, signature and payload seconds.
    split: Option<[f64; 3]>,
    /// Requests to the graph service and signature store.
    service_requests: usize,
}

struct Bench {
    world: ReleaseWorld,
    bin: PathBuf,
    isc: PathBuf,
    time: Option<PathBuf>,
    /// Version -> component name -> image, as the world made them.
    expected: BTreeMap<String, BTreeMap<String, String>>,
    root: tempfile::TempDir,
    _registry: Registry,
}

fn main() {
    entry::main("release", "--child-baseline", baseline::child_main, run);
}

fn run(args: &[String]) -> Result<()> {
    let (runs, bin) = entry::runs_and_bin(args)?;
    for tool in baseline::TOOLS {
        which(tool).with_context(|| format!("{tool} not found: run scripts/bench-release, which installs it"))?;
    }
    let time = Some(PathBuf::from("/usr/bin/time")).filter(|p| p.exists());
    if time.is_none() {
        eprintln!("bench: /usr/bin/time (GNU time) not found: no peak RSS figures");
    }
    let started = Instant::now();
    let registry = Registry::start(RegistryOptions::default());
    let world = ReleaseWorld::start(
        &registry,
        ReleaseWorldOptions { versions: VERSIONS.iter().map(|v| v.to_string()).collect(), multi: false, components: 0 },
    );
    let expected: BTreeMap<String, BTreeMap<String, String>> =
        world.payloads.iter().map(|((v, _), p)| (v.clone(), p.components.clone())).collect();
    let root = support::temp_dir("bench-release-");
    let isc = root.path().join("isc.yaml");
    std::fs::write(
        &isc,
        format!(
            "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  platform:\n    \
             channels:\n    - name: {CHANNEL}\n      minVersion: {}\n      maxVersion: {}\n",
            VERSIONS[0],
            VERSIONS[VERSIONS.len() - 1]
        ),
    )?;
    let b = Bench { world, bin, isc, time, expected, root, _registry: registry };
    eprintln!("bench: release world up in {:.1} s", started.elapsed().as_secs_f64());

    let load_before = entry::loadavg();
    let bench_started = Instant::now();
    // One unmeasured round: every program's first start from disk is not timed.
    b.ours(&b.root.path().join("warmup"), Case::Cold).context("warm-up, imageset-operator")?;
    b.script(&b.root.path().join("warmup-script")).context("warm-up, script")?;
    let mut samples = Vec::new();
    for r in 0..runs {
        let dir = b.root.path().join(format!("run-{r}"));
        let mut order = vec![Case::Cold, Case::Script];
        if r % 2 == 1 {
            order.reverse();
        }
        for case in order {
            let got = match case {
                // Warm re-uses the cache and workspace cold just filled.
                Case::Cold => vec![b.ours(&dir, Case::Cold)?, b.ours(&dir, Case::Warm)?],
                _ => vec![b.script(&dir.join("script"))?],
            };
            for s in got {
                eprintln!("bench: run {} {}: {:.3} s", r + 1, s.case.name(), s.wall_s);
                samples.push(s);
            }
        }
    }
    let machine = format!(
        "machine: {} CPUs, load average {load_before} before, {} after; {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        entry::loadavg(),
        tool_versions()
    );
    print!("{}", report(&b, &samples, runs, &machine));
    eprintln!("bench: measured in {:.1} s", bench_started.elapsed().as_secs_f64());
    Ok(())
}

impl Bench {
    /// `imageset-operator mirror --dry-run` with the cache and workspace under `dir`.
    fn ours(&self, dir: &Path, case: Case) -> Result<Sample> {
        if case == Case::Cold && dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)?;
        let w = &self.world;
        let mut args: Vec<String> = vec![
            "mirror".into(),
            "-c".into(),
            self.isc.display().to_string(),
            "--workspace".into(),
            format!("file://{}", dir.join("ws").display()),
            DEST.into(),
            "--cache-dir".into(),
            dir.join("cache").display().to_string(),
            "--src-tls-verify=false".into(),
            "--dest-tls-verify=false".into(),
            format!("--update-url={}", w.graph_url),
            format!("--release-signature-url={}", w.signature_url),
            format!("--release-signature-key={}", w.public_key.display()),
            "--dry-run".into(),
        ];
        args.insert(0, self.bin.display().to_string());
        let before = w.requests().len();
        let (wall_s, rss_kib, _) = self.measure(&args, &[("HOME", "/nonexistent"), ("LOG_LEVEL", "warn")])?;
        let service_requests = w.requests().len() - before;
        let mapping = std::fs::read_to_string(dir.join("ws/working-dir/dry-run/mapping.txt"))
            .context("the dry run wrote no mapping")?;
        let components = self.check_mapping(&mapping).with_context(|| format!("{}: wrong mapping", case.name()))?;
        Ok(Sample { case, wall_s, rss_kib, components, split: None, service_requests })
    }

    /// The script, as a child process working in `work`.
    fn script(&self, work: &Path) -> Result<Sample> {
        if work.exists() {
            std::fs::remove_dir_all(work)?;
        }
        std::fs::create_dir_all(work)?;
        let job = baseline::Job {
            graph_url: self.world.graph_url.clone(),
            signature_url: self.world.signature_url.clone(),
            public_key: self.world.public_key.clone(),
            channel: CHANNEL.into(),
            min: VERSIONS[0].into(),
            max: VERSIONS[VERSIONS.len() - 1].into(),
            work: work.to_path_buf(),
        };
        let exe = std::env::current_exe()?.display().to_string();
        let args = vec![exe, "--child-baseline".into(), serde_json::to_string(&job)?];
        let before = self.world.requests().len();
        let (wall_s, rss_kib, stdout) = self.measure(&args, &[])?;
        let service_requests = self.world.requests().len() - before;
        let found: baseline::Found = serde_json::from_str(stdout.trim()).context("the script's answer")?;
        if found.refs != self.expected {
            let got: Vec<(&String, usize)> = found.refs.iter().map(|(v, c)| (v, c.len())).collect();
            bail!("the script read other references than the payloads hold: {got:?}");
        }
        let components = found.refs.values().map(BTreeMap::len).sum();
        let split = Some([found.graph_s, found.signatures_s, found.payloads_s]);
        Ok(Sample { case: Case::Script, wall_s, rss_kib, components, split, service_requests })
    }

    /// Runs `argv` under GNU time when there is one; returns wall seconds, peak RSS, stdout.
    fn measure(&self, argv: &[String], env: &[(&str, &str)]) -> Result<(f64, Option<u64>, String)> {
        entry::measure(self.time.as_deref(), argv, env)
    }

    /// Checks that `mapping` plans exactly the ten payloads and every component of each;
    /// returns the number of component lines.
    fn check_mapping(&self, mapping: &str) -> Result<usize> {
        let (mut releases, mut components, mut lines) = (BTreeSet::new(), BTreeSet::new(), 0);
        for line in mapping.lines().filter(|l| !l.trim().is_empty()) {
            let (src, dst) = line.split_once('=').with_context(|| format!("not source=destination: {line}"))?;
            let (src, dst) = (src.trim_start_matches("docker://"), dst.trim_start_matches("docker://"));
            if let Some((_, tag)) = dst.split_once("/openshift/release-images:") {
                releases.insert(tag.trim_end_matches("-x86_64").to_string());
            } else if let Some((_, tag)) = dst.split_once("/openshift/release:") {
                components.insert((tag.to_string(), src.to_string()));
                lines += 1;
            } else {
                bail!("unexpected line: {line}");
            }
        }
        let want: BTreeSet<String> = self.expected.keys().cloned().collect();
        if releases != want {
            bail!("release images {releases:?}, expected {want:?}");
        }
        let want: BTreeSet<(String, String)> = self
            .expected
            .iter()
            .flat_map(|(v, c)| c.iter().map(move |(name, image)| (format!("{v}-x86_64-{name}"), image.clone())))
            .collect();
        if components != want || lines != want.len() {
            let missing = want.difference(&components).next();
            let extra = components.difference(&want).next();
            bail!(
                "{lines} component lines ({} distinct), expected {}; first missing {missing:?}, first unexpected {extra:?}",
                components.len(),
                want.len()
            );
        }
        Ok(lines)
    }
}

/// Median (mean of the middle two for an even count) and minimum.
fn median_min(mut xs: Vec<f64>) -> (f64, f64) {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    let median = if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 };
    (median, xs[0])
}

fn report(b: &Bench, samples: &[Sample], runs: usize, machine: &str) -> String {
    let of = |case: Case| samples.iter().filter(move |s| s.case == case);
    let stats = |case: Case| median_min(of(case).map(|s| s.wall_s).collect());
    let (script_median, _) = stats(Case::Script);
    let components = b.expected.values().next().map(BTreeMap::len).unwrap_or(0);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\nrelease benchmark: {CHANNEL} {}..{}, {} payloads x {components} components, dry run on loopback, \
         {runs} runs\n",
        VERSIONS[0],
        VERSIONS[VERSIONS.len() - 1],
        b.expected.len()
    );
    let _ = writeln!(t, "| case | median s | min s | peak RSS MiB | ratio vs baseline (baseline/ours) |");
    let _ = writeln!(t, "|---|---:|---:|---:|---:|");
    for case in [Case::Cold, Case::Warm, Case::Script] {
        let (median, min) = stats(case);
        let rss =
            of(case).filter_map(|s| s.rss_kib).max().map_or("n/a".into(), |k| format!("{:.1}", k as f64 / 1024.0));
        let ratio = if case == Case::Script { "baseline".into() } else { format!("{:.1}x", script_median / median) };
        let _ = writeln!(t, "| {} | {median:.3} | {min:.3} | {rss} | {ratio} |", case.name());
    }
    let split: Vec<[f64; 3]> = of(Case::Script).filter_map(|s| s.split).collect();
    let part = |i: usize| median_min(split.iter().map(|s| s[i]).collect()).0;
    let _ = writeln!(
        t,
        "\n{} time split (median): graph + range {:.3} s, signatures {:.3} s, payloads {:.3} s",
        baseline::NAME,
        part(0),
        part(1),
        part(2)
    );
    let read = |case: Case| of(case).map(|s| s.components).max().unwrap_or(0);
    let _ = writeln!(
        t,
        "component references read per run: {} (cold), {} (warm), {} (script); {} in total over {} measured runs",
        read(Case::Cold),
        read(Case::Warm),
        read(Case::Script),
        samples.iter().map(|s| s.components).sum::<usize>(),
        samples.len()
    );
    let asked = |case: Case| of(case).map(|s| s.service_requests).max().unwrap_or(0);
    let _ = writeln!(
        t,
        "requests to the graph service and signature store per run: {} (cold), {} (warm), {} (script)",
        asked(Case::Cold),
        asked(Case::Warm),
        asked(Case::Script)
    );
    let (cold, _) = stats(Case::Cold);
    let met = if cold < TARGET_S { "MET" } else { "UNMET" };
    let _ = writeln!(t, "target: cold < {TARGET_S:.1} s for {} payloads: {met} (median {cold:.3} s)", b.expected.len());
    let _ = writeln!(t, "{machine}");
    t
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The first line of each baseline tool's `--version`, shortened.
fn tool_versions() -> String {
    let version = |tool: &str| -> String {
        let out = Command::new(tool).arg("--version").output().ok();
        let text = out.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
        let first = text.lines().next().unwrap_or("?");
        let first = first.strip_prefix(&format!("{tool}-")).unwrap_or(first);
        first.split_whitespace().find(|w| w.starts_with(|c: char| c.is_ascii_digit())).unwrap_or(first).to_string()
    };
    let list: Vec<String> = baseline::TOOLS.iter().map(|t| format!("{t} {}", version(t))).collect();
    format!("baseline tools: {}", list.join(", "))
}
