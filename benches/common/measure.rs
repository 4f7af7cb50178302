//! How the copy and delete benches measure a tool: the process tree under GNU time (CPU and
//! peak RSS), wall time from here, killed with its process group after a time limit, and how
//! busy the whole machine was meanwhile; also finding the tools and waiting for a quiet
//! machine.
// The copy and delete benches each use a different part.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

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
    /// Share of the whole machine's CPU in use during the run (the tool, the registries and
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

impl Measured {
    /// User plus system CPU.
    pub fn cpu_s(&self) -> f64 {
        self.user_s + self.sys_s
    }
}

/// Runs `program args` under GNU time without the variables named in `env_remove`, output to
/// `log`, killed with its process group after `timeout`.
pub fn measure(
    program: &Path,
    args: &[String],
    log: &Path,
    timeout: Duration,
    env_remove: &[&str],
) -> Result<Measured> {
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
    for name in env_remove {
        cmd.env_remove(name);
    }
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
        // Tools log retries as they go; the reason they gave up is on an "Error:" (crane, ours)
        // or fatal (skopeo) line, which parallel jobs may push up the log, or any error line.
        let fatal = |l: &&str| l.starts_with("Error") || l.contains("level=fatal") || l.contains("FATA");
        let error = |l: &&str| l.to_lowercase().contains("error") && !l.contains("retrying");
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

/// A line cut to 300 characters, for the results.
pub fn clip(line: &str) -> String {
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

/// Waits, at most `limit`, until the machine has been nearly idle for a few seconds: on a
/// shared machine, a run that starts during someone's build measures the build.
pub fn wait_idle(limit: Duration) {
    let start = Instant::now();
    let mut said = false;
    while start.elapsed() < limit {
        let a = cpu_times();
        std::thread::sleep(Duration::from_secs(3));
        let busy = busy_between(a, cpu_times());
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
