//! `cache verify` and `cache gc`.

use super::CliError;
use crate::cache::Cache;
use crate::cli::{CacheArgs, CacheCommand, Env};

/// Runs a cache subcommand; returns its summary.
pub fn run(cmd: &CacheCommand, env: &Env) -> Result<Vec<String>, CliError> {
    let (CacheCommand::Verify(args) | CacheCommand::Gc(args)) = cmd;
    let CacheArgs { cache_dir } = args;
    let base =
        cache_dir.clone().or_else(|| env.oc_mirror_cache.clone()).or_else(|| env.home.clone()).unwrap_or_default();
    let dir = base.join(crate::pipeline::copy::CACHE_SUBDIR);
    if !dir.is_dir() {
        return Err(CliError::Setup(format!("no cache at {}", dir.display())));
    }
    let cache = Cache::open(&dir).map_err(|e| CliError::Setup(e.to_string()))?;
    match cmd {
        CacheCommand::Verify(_) => {
            let r = cache.verify().map_err(|e| CliError::Setup(e.to_string()))?;
            let mut lines =
                vec![format!("{} entries ({} MB) checked in {}", r.checked, r.bytes / 1_000_000, dir.display())];
            if r.corrupt.is_empty() {
                lines.push("cache is clean".into());
                return Ok(lines);
            }
            for (d, actual) in &r.corrupt {
                println!("corrupt: {d} hashes to {actual}");
            }
            Err(CliError::Setup(format!(
                "{} corrupt entries in {} (remove them; the next run fetches them again)",
                r.corrupt.len(),
                dir.display()
            )))
        }
        CacheCommand::Gc(_) => {
            let r = cache.gc().map_err(|e| CliError::Setup(e.to_string()))?;
            Ok(vec![format!(
                "removed {} entries ({} MB); kept {} ({} MB)",
                r.removed,
                r.freed / 1_000_000,
                r.kept,
                r.kept_bytes / 1_000_000
            )])
        }
    }
}
