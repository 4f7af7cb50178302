//! The deleters compared, the input each is given, and how a run is measured (GNU time
//! around the process tree, wall time from here).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::support::storage::Written;

/// A deleter under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// `imageset-operator delete --delete-yaml-file`: one process for the whole list.
    ImagesetOperator,
    /// A shell loop running `skopeo delete` for each image in turn, what users script.
    SkopeoLoop,
    /// `xargs -P N skopeo delete`: the same, N processes at once.
    SkopeoParallel,
}

impl Tool {
    /// Every tool, in the order they run.
    pub const ALL: [Tool; 3] = [Tool::ImagesetOperator, Tool::SkopeoLoop, Tool::SkopeoParallel];

    /// Name in tables, file names and `--tools`.
    pub fn name(self) -> &'static str {
        match self {
            Tool::ImagesetOperator => "imageset-operator",
            Tool::SkopeoLoop => "skopeo",
            Tool::SkopeoParallel => "skopeo-parallel",
        }
    }

    /// Parses a name or a short alias.
    pub fn parse(s: &str) -> Option<Tool> {
        match s.trim() {
            "imageset-operator" | "imageset" | "ours" => Some(Tool::ImagesetOperator),
            "skopeo" | "skopeo-loop" => Some(Tool::SkopeoLoop),
            "skopeo-parallel" | "skopeo-xargs" => Some(Tool::SkopeoParallel),
            _ => None,
        }
    }

    /// How the tool runs, for the table's footnote.
    pub fn describe(self, opts: &CommandOptions) -> String {
        match self {
            Tool::ImagesetOperator => format!(
                "imageset-operator delete --delete-yaml-file (--parallel-images {})",
                opts.parallel_images.map(|p| p.to_string()).unwrap_or_else(|| "default".into())
            ),
            Tool::SkopeoLoop => "sh loop: skopeo delete per image, one after another".into(),
            Tool::SkopeoParallel => format!("xargs -P {} skopeo delete, one image per process", opts.skopeo_jobs),
        }
    }
}

/// Knobs that shape the commands.
#[derive(Clone, Debug)]
pub struct CommandOptions {
    /// The imageset-operator binary.
    pub bin: PathBuf,
    /// `--parallel-images` for imageset-operator (its default when None).
    pub parallel_images: Option<u32>,
    /// skopeo processes at once for `skopeo-parallel`.
    pub skopeo_jobs: usize,
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

/// The loop a user writes around skopeo: every image is tried; the exit status says whether
/// any failed.
const SKOPEO_LOOP: &str = r#"list="$1"; skopeo="$2"; rc=0
while read -r ref; do
  "$skopeo" delete --tls-verify=false "$ref" || rc=1
done < "$list"
exit $rc"#;

/// Writes the tool's input into `inputs` (the DeleteImageList, or the list of references)
/// and returns its command line.
pub fn command(
    tool: Tool,
    images: &[Written],
    host: &str,
    inputs: &Path,
    opts: &CommandOptions,
) -> Result<(PathBuf, Vec<String>)> {
    std::fs::create_dir_all(inputs)?;
    let s = |p: &Path| p.display().to_string();
    let skopeo = || find_program("skopeo").context("skopeo not found: run scripts/bench-delete, which installs it");
    let refs: String = images.iter().map(|w| format!("docker://{host}/{}:{}\n", w.repo, w.tag)).collect();
    Ok(match tool {
        Tool::ImagesetOperator => {
            let mut yaml = "apiVersion: mirror.openshift.io/v2alpha1\nkind: DeleteImageList\nitems:\n".to_string();
            for w in images {
                yaml.push_str(&format!(
                    "- imageName: registry.example.com/{}:{}\n  imageReference: docker://{host}/{}:{}\n  type: generic\n",
                    w.repo, w.tag, w.repo, w.tag
                ));
            }
            let path = inputs.join("delete-images.yaml");
            std::fs::write(&path, yaml)?;
            if !opts.bin.is_file() {
                bail!("{} not found: build it with cargo build --release", opts.bin.display());
            }
            let mut args = vec![
                "delete".to_string(),
                "--delete-yaml-file".into(),
                s(&path),
                format!("docker://{host}"),
                "--dest-tls-verify=false".into(),
            ];
            if let Some(p) = opts.parallel_images {
                args.extend(["--parallel-images".into(), p.to_string()]);
            }
            // Extra flags for the tool under test.
            if let Ok(extra) = std::env::var("BENCH_IMAGESET_ARGS") {
                args.extend(extra.split_whitespace().map(str::to_string));
            }
            (opts.bin.clone(), args)
        }
        Tool::SkopeoLoop => {
            let path = inputs.join("references.list");
            std::fs::write(&path, refs)?;
            let sh = find_program("sh").context("sh not found")?;
            (sh, vec!["-c".into(), SKOPEO_LOOP.into(), "sh".into(), s(&path), s(&skopeo()?)])
        }
        Tool::SkopeoParallel => {
            let path = inputs.join("references.list");
            std::fs::write(&path, refs)?;
            let args = vec![
                "-a".into(),
                s(&path),
                "-P".into(),
                opts.skopeo_jobs.to_string(),
                "-n".into(),
                "1".into(),
                s(&skopeo()?),
                "delete".into(),
                "--tls-verify=false".into(),
            ];
            (find_program("xargs").context("xargs not found")?, args)
        }
    })
}

/// What one process tree cost.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Measured {
    /// Wall time, measured here around the process.
    pub wall_s: f64,
    /// User CPU of the process and every child it waited for.
    pub user_s: f64,
    /// System CPU of the same.
    pub sys_s: f64,
    /// Peak RSS of the largest single process, KiB.
    pub max_rss_kib: u64,
    /// Share of the whole machine's CPU in use during the run (the tool, the registry and
    /// anything else running).
    pub machine_busy: f64,
    /// Exit code (None when killed).
    pub exit_code: Option<i32>,
    /// Killed after the time limit.
    pub timed_out: bool,
    /// Its output.
    pub log: String,
    /// The last line of its output that mentions "deleted" (our summary).
    pub summary: String,
    /// A few lines of the output that explain a failure.
    pub error_tail: String,
}

impl Measured {
    /// User plus system CPU.
    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }
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
        .env_remove("OC_MIRROR_CACHE")
        .env_remove("REGISTRY_AUTH_FILE")
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
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    m.summary = lines.iter().rev().find(|l| l.contains("deleted")).map(|l| clip(l)).unwrap_or_default();
    if m.exit_code != Some(0) {
        // skopeo's reason is on a fatal line, ours on an "error" line; else the last lines.
        let fatal = |l: &&str| l.contains("level=fatal") || l.starts_with("Error");
        let error = |l: &&str| l.to_lowercase().contains("error");
        let pick: Vec<&str> =
            [lines.iter().copied().filter(fatal).collect::<Vec<_>>(), lines.iter().copied().filter(error).collect()]
                .into_iter()
                .find(|v| !v.is_empty())
                .unwrap_or(lines);
        let pick = &pick[pick.len().saturating_sub(3)..];
        m.error_tail = pick.iter().map(|l| clip(l)).collect::<Vec<_>>().join("\n");
    }
    Ok(m)
}

fn clip(line: &str) -> String {
    line.chars().take(300).collect()
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
