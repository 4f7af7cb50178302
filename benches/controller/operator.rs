//! The measured `imageset-operator run` process: started under the test world's watchdog (it
//! dies with the bench however the bench ends), found in /proc by its unique admin address,
//! and read from /proc/<pid>/status, /proc/<pid>/stat and its own /metrics.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::support::{self, Guarded};

/// The namespace the operator calls its own; every image set of the bench lives there.
pub const NAMESPACE: &str = "bench";

/// A running operator.
pub struct Operator {
    guard: Guarded,
    /// The operator's own pid (not the watchdog shell's).
    pub pid: u32,
    /// `127.0.0.1:<port>` of /metrics, /healthz and /readyz.
    pub admin: String,
    clk_tck: f64,
}

/// One reading of the process.
#[derive(Clone, Copy, Debug)]
pub struct Reading {
    /// VmRSS.
    pub rss_kib: u64,
    /// VmHWM: the peak resident set since the process started.
    pub hwm_kib: u64,
    /// Threads.
    pub threads: u64,
    /// User plus system CPU seconds since the process started.
    pub cpu_s: f64,
    /// `imageset_operator_reconciles_total`.
    pub reconciles: u64,
}

impl Operator {
    /// Starts `bin run` with leader election off, its cache under `dir`, and waits until its
    /// /readyz answers 200 (its watches are running).
    pub fn start(bin: &Path, kubeconfig: &Path, dir: &Path) -> Result<Operator> {
        std::fs::create_dir_all(dir)?;
        let admin = format!("127.0.0.1:{}", support::free_port());
        let admin_arg = format!("--admin-addr={admin}");
        let args = vec![
            "run".to_string(),
            admin_arg.clone(),
            format!("--cache-dir={}", dir.join("cache").display()),
            format!("--namespace={NAMESPACE}"),
            "--leader-election=false".into(),
        ];
        let env = [("KUBECONFIG", kubeconfig.display().to_string()), ("HOME", "/nonexistent".to_string())];
        let guard = Guarded::spawn_with_env(bin, &args, &env, &dir.join("operator.log"), None);
        let start = Instant::now();
        let pid = loop {
            if let Some(pid) = find_pid(bin, &admin_arg) {
                break pid;
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!("{} did not start:\n{}", bin.display(), (guard.log_tail())());
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let clk_tck = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().ok())
            .unwrap_or(100.0);
        let op = Operator { guard, pid, admin, clk_tck };
        let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(2)).build()?;
        loop {
            op.alive()?;
            let ready = http.get(format!("http://{}/readyz", op.admin)).send().map(|r| r.status().as_u16() == 200);
            if ready.unwrap_or(false) {
                return Ok(op);
            }
            if start.elapsed() > Duration::from_secs(60) {
                bail!("operator not ready after 60 s:\n{}", (op.guard.log_tail())());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fails with the tail of its log if the process has gone.
    pub fn alive(&self) -> Result<()> {
        if Path::new(&format!("/proc/{}/status", self.pid)).exists() {
            return Ok(());
        }
        bail!("the operator (pid {}) exited:\n{}", self.pid, (self.guard.log_tail())())
    }

    /// Reads memory, threads and CPU from /proc and the reconcile counter from /metrics.
    /// Blocking: call it off any async runtime.
    pub fn read(&self) -> Result<Reading> {
        self.alive()?;
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |key: &str| -> Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .with_context(|| format!("no {key} in /proc/{}/status", self.pid))
        };
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))?;
        // Fields after the parenthesised command name start at field 3 (state); utime and
        // stime are fields 14 and 15.
        let rest: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("").split_whitespace().collect();
        let ticks = |i: usize| rest.get(i - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let metrics = reqwest::blocking::get(format!("http://{}/metrics", self.admin))
            .and_then(|r| r.text())
            .context("read /metrics")?;
        let reconciles = metrics
            .lines()
            .find_map(|l| l.strip_prefix("imageset_operator_reconciles_total "))
            .and_then(|v| v.trim().parse().ok())
            .context("no imageset_operator_reconciles_total in /metrics")?;
        Ok(Reading {
            rss_kib: field("VmRSS:")?,
            hwm_kib: field("VmHWM:")?,
            threads: field("Threads:")?,
            cpu_s: (ticks(14) + ticks(15)) as f64 / self.clk_tck,
            reconciles,
        })
    }
}

/// The pid of the process whose argv[0] is `bin` and which was given `arg`.
fn find_pid(bin: &Path, arg: &str) -> Option<u32> {
    let bin = bin.display().to_string();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let argv: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
        if argv.first() == Some(&bin.as_bytes()) && argv.contains(&arg.as_bytes()) {
            return Some(pid);
        }
    }
    None
}
