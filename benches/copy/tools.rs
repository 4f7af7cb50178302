//! The copiers compared, how each is invoked on the workload, how a run is measured (GNU
//! time around the process tree) and how the destination is checked afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::generate::{Entry, Workload};
use super::registry::blocking_client;

/// A copier under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// `imageset-operator mirror`, mirror-to-mirror.
    ImagesetOperator,
    /// `skopeo sync --all --src yaml --dest docker`.
    SkopeoSync,
    /// `crane copy` per tag from a job pool.
    Crane,
    /// The bare streaming copier in this binary.
    Bare,
}

impl Tool {
    /// Every tool, in the order they run.
    pub const ALL: [Tool; 4] = [Tool::ImagesetOperator, Tool::SkopeoSync, Tool::Crane, Tool::Bare];

    /// Name in tables, file names and `BENCH_TOOLS`.
    pub fn name(self) -> &'static str {
        match self {
            Tool::ImagesetOperator => "imageset-operator",
            Tool::SkopeoSync => "skopeo-sync",
            Tool::Crane => "crane",
            Tool::Bare => "bare",
        }
    }

    /// Parses a name or a short alias.
    pub fn parse(s: &str) -> Option<Tool> {
        match s.trim() {
            "imageset-operator" | "imageset" | "isc" | "operator" => Some(Tool::ImagesetOperator),
            "skopeo-sync" | "skopeo" => Some(Tool::SkopeoSync),
            "crane" => Some(Tool::Crane),
            "bare" => Some(Tool::Bare),
            _ => None,
        }
    }

    /// Where the tool puts a source repository in the destination: skopeo 1.9's yaml sync
    /// keeps only the last path component; the others keep the path.
    pub fn dest_repo(self, repo: &str) -> String {
        match self {
            Tool::SkopeoSync => repo.rsplit('/').next().unwrap_or(repo).to_string(),
            _ => repo.to_string(),
        }
    }
}

/// Knobs that shape the commands.
#[derive(Clone, Debug)]
pub struct CommandOptions {
    /// `--parallel-images` for imageset-operator (its default when None).
    pub parallel_images: Option<u32>,
    /// `crane copy` processes at once.
    pub crane_jobs: usize,
    /// Run `skopeo sync` with `--preserve-digests`. The small set's layers are raw bytes
    /// under a tar+gzip media type (as `support::storage` writes them); skopeo compresses a
    /// layer it finds uncompressed, so without this every digest it writes differs from the
    /// source's, where the other tools copy the bytes as they are.
    pub skopeo_preserve_digests: bool,
}

/// Finds a program in the test bin directory or on PATH.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let cached = crate::support::bin_dir().join(name);
    if cached.exists() {
        return Some(cached);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .chain([PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.exists())
}

/// The imageset-operator binary: `BENCH_IMAGESET_BIN`, else the one cargo built for this bench.
pub fn imageset_bin() -> PathBuf {
    std::env::var_os("BENCH_IMAGESET_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_imageset-operator")))
}

/// Writes the tool's input files into `inputs` and returns its command line. The same
/// command serves the cold run and the no-op re-run. `scratch` holds state the tool keeps
/// between the two (workspace, cache) and is removed with the destination.
pub fn command(
    tool: Tool,
    work: &Workload,
    src: &str,
    dst: &str,
    inputs: &Path,
    scratch: &Path,
    opts: &CommandOptions,
) -> Result<(PathBuf, Vec<String>)> {
    std::fs::create_dir_all(inputs)?;
    let need =
        |name: &str| find_program(name).with_context(|| format!("{name} not found: run scripts/install-bench-deps"));
    let s = |p: &Path| p.display().to_string();
    Ok(match tool {
        Tool::ImagesetOperator => {
            let mut isc =
                "kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v2alpha1\nmirror:\n  additionalImages:\n"
                    .to_string();
            for e in &work.entries {
                isc.push_str(&format!("  - name: {src}/{}:{}\n", e.repo, e.tag));
            }
            let path = inputs.join("isc.yaml");
            std::fs::write(&path, isc)?;
            let bin = imageset_bin();
            if !bin.exists() {
                bail!("{} not found: build it with cargo build --release", bin.display());
            }
            let mut args = vec![
                "mirror".to_string(),
                "-c".into(),
                s(&path),
                "--workspace".into(),
                format!("file://{}", s(&scratch.join("workspace"))),
                format!("docker://{dst}"),
                "--cache-dir".into(),
                s(&scratch.join("cache")),
                "--dest-tls-verify=false".into(),
                "--src-tls-verify=false".into(),
            ];
            if let Some(p) = opts.parallel_images {
                args.extend(["--parallel-images".into(), p.to_string()]);
            }
            // Extra flags for the tool under test, e.g. BENCH_IMAGESET_ARGS=--no-cache-fsync.
            if let Ok(extra) = std::env::var("BENCH_IMAGESET_ARGS") {
                args.extend(extra.split_whitespace().map(str::to_string));
            }
            (bin, args)
        }
        Tool::SkopeoSync => {
            let mut yaml = format!("{src}:\n  tls-verify: false\n  images:\n");
            let mut repos: Vec<(&str, Vec<&str>)> = Vec::new();
            for e in &work.entries {
                match repos.iter_mut().find(|(r, _)| *r == e.repo) {
                    Some((_, tags)) => tags.push(&e.tag),
                    None => repos.push((&e.repo, vec![&e.tag])),
                }
            }
            for (repo, tags) in repos {
                yaml.push_str(&format!("    {repo}:\n"));
                for t in tags {
                    yaml.push_str(&format!("    - {t}\n"));
                }
            }
            let path = inputs.join("sync.yaml");
            std::fs::write(&path, yaml)?;
            let args = ["sync", "--all", "--src", "yaml", "--dest", "docker", "--src-tls-verify=false"]
                .into_iter()
                .map(String::from)
                .chain(opts.skopeo_preserve_digests.then(|| "--preserve-digests".into()))
                .chain(["--dest-tls-verify=false".into(), s(&path), dst.to_string()])
                .collect();
            (need("skopeo")?, args)
        }
        Tool::Crane => {
            let list: String =
                work.entries.iter().map(|e| format!("{src}/{r}:{t} {dst}/{r}:{t}\n", r = e.repo, t = e.tag)).collect();
            let path = inputs.join("crane.list");
            std::fs::write(&path, list)?;
            // A job pool the way users script it: xargs starting one crane per tag.
            let args = vec![
                "-a".into(),
                s(&path),
                "-P".into(),
                opts.crane_jobs.to_string(),
                "-L".into(),
                "1".into(),
                s(&need("crane")?),
                "copy".into(),
                "--insecure".into(),
            ];
            (need("xargs")?, args)
        }
        Tool::Bare => {
            let list: String = work.entries.iter().map(|e| format!("{} {}\n", e.repo, e.tag)).collect();
            let path = inputs.join("bare.list");
            std::fs::write(&path, list)?;
            let args = vec!["--bare-copy".into(), src.to_string(), dst.to_string(), s(&path)];
            (std::env::current_exe()?, args)
        }
    })
}

/// What one process tree cost.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Measured {
    /// Wall time, measured here around the process.
    pub wall_s: f64,
    /// User CPU of the process and its children.
    pub user_s: f64,
    /// System CPU of the process and its children.
    pub sys_s: f64,
    /// Peak RSS of the largest single process, KiB.
    pub max_rss_kib: u64,
    /// Share of the whole machine's CPU in use during the run (the tool, both registries and
    /// anything else running).
    pub machine_busy: f64,
    /// Exit code (None when killed).
    pub exit_code: Option<i32>,
    /// Killed after the time limit.
    pub timed_out: bool,
    /// Its output.
    pub log: String,
    /// A few lines of the output that explain a failure.
    pub error_tail: String,
}

/// Runs `program args` under GNU time, output to `log`, killed with its process group after
/// `timeout`.
pub fn measure(program: &Path, args: &[String], log: &Path, timeout: Duration) -> Result<Measured> {
    let timefile = log.with_extension("time");
    let out = std::fs::File::create(log)?;
    let mut cmd = Command::new("/usr/bin/time");
    cmd.args(["-f", "%e %U %S %M", "-o"])
        .arg(&timefile)
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let cpu_before = cpu_times();
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("start /usr/bin/time {}", program.display()))?;
    let pgid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (done, killed) = (done.clone(), killed.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                if start.elapsed() > timeout {
                    killed.store(true, Ordering::SeqCst);
                    let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let status = child.wait()?;
    let wall_s = start.elapsed().as_secs_f64();
    done.store(true, Ordering::SeqCst);
    let _ = watchdog.join();
    let mut m = Measured {
        wall_s,
        machine_busy: busy_between(cpu_before, cpu_times()),
        exit_code: status.code(),
        timed_out: killed.load(Ordering::SeqCst),
        log: log.display().to_string(),
        ..Default::default()
    };
    // GNU time prefixes "Command exited with non-zero status N" on failure; the figures are
    // on the last line.
    let times = std::fs::read_to_string(&timefile).unwrap_or_default();
    if let Some(line) = times.lines().rev().find(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 4 {
            m.user_s = f[1].parse().unwrap_or(0.0);
            m.sys_s = f[2].parse().unwrap_or(0.0);
            m.max_rss_kib = f[3].parse().unwrap_or(0);
        }
    }
    if m.exit_code != Some(0) {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        // Tools log retries as they go; the reason they gave up is on an "Error:" (crane) or
        // fatal (skopeo) line, which parallel jobs may push up the log, or any error line.
        let fatal = |l: &&str| l.starts_with("Error") || l.contains("level=fatal") || l.contains("FATA");
        let error = |l: &&str| l.to_lowercase().contains("error") && !l.contains("retrying");
        let pick: Vec<&str> =
            [lines.iter().copied().filter(fatal).collect::<Vec<_>>(), lines.iter().copied().filter(error).collect()]
                .into_iter()
                .find(|v| !v.is_empty())
                .unwrap_or(lines);
        let pick = &pick[pick.len().saturating_sub(3)..];
        m.error_tail = pick.iter().map(|l| l.chars().take(300).collect::<String>()).collect::<Vec<_>>().join("\n");
    }
    Ok(m)
}

/// (total, idle) jiffies of all CPUs, from /proc/stat.
pub fn cpu_times() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> =
        text.lines().next().unwrap_or_default().split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal; guest time is already in user.
    let total = f.iter().take(8).sum();
    let idle = f.get(3).copied().unwrap_or(0) + f.get(4).copied().unwrap_or(0);
    (total, idle)
}

/// Busy share of the machine between two `cpu_times` samples.
pub fn busy_between(a: (u64, u64), b: (u64, u64)) -> f64 {
    let total = b.0.saturating_sub(a.0);
    if total == 0 { 0.0 } else { 1.0 - b.1.saturating_sub(a.1) as f64 / total as f64 }
}

/// Checks every tag in the destination against the source digest; returns the tags that are
/// missing or differ.
pub fn verify(tool: Tool, entries: &[Entry], dst: &str) -> Vec<String> {
    let http = blocking_client();
    let accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
        application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";
    let mut bad = Vec::new();
    for e in entries {
        let repo = tool.dest_repo(&e.repo);
        let url = format!("http://{dst}/v2/{repo}/manifests/{}", e.tag);
        let got = http
            .head(&url)
            .header("Accept", accept)
            .send()
            .ok()
            .filter(|r| r.status().is_success())
            .and_then(|r| r.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).map(String::from));
        match got {
            Some(d) if d == e.digest => {}
            Some(d) => bad.push(format!("{repo}:{} has {d}, source {}", e.tag, e.digest)),
            None => bad.push(format!("{repo}:{} missing", e.tag)),
        }
    }
    bad
}
