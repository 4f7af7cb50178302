//! Build information for `imageset-operator version` and the `build_info` metric: the commit
//! the binary was built from and when it was built.
//!
//! - Commit: `IMAGESET_OPERATOR_COMMIT` if set, else `git rev-parse HEAD` when the sources are
//!   a git checkout, else "unknown" (a container build copies no `.git`).
//! - Build date: `SOURCE_DATE_EPOCH` if set (reproducible builds), else the time this script
//!   ran, as RFC 3339 UTC.
//!
//! The crate reads both with `option_env!`, so a build without this script (the Dockerfile's
//! first stage copies only the manifest) still compiles and says "unknown".

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=IMAGESET_OPERATOR_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let commit = std::env::var("IMAGESET_OPERATOR_COMMIT").ok().filter(|c| !c.trim().is_empty());
    let commit = commit.or_else(git_commit).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=IMAGESET_OPERATOR_COMMIT={}", commit.trim());
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .or_else(|| SystemTime::now().duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs() as i64));
    let date = epoch.map(rfc3339).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=IMAGESET_OPERATOR_BUILD_DATE={date}");
}

/// HEAD's commit, and the files whose change means a new one (so the date and commit are
/// refreshed on commit, not on every build). None outside a git checkout or without git.
fn git_commit() -> Option<String> {
    let git = |args: &[&str]| {
        let out = Command::new("git").args(args).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    // Only the checkout this package is in: a build from a copy inside some other repository
    // must not report that repository's commit.
    let top = git(&["rev-parse", "--show-toplevel"])?;
    let here = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    if std::fs::canonicalize(&top).ok()? != std::fs::canonicalize(&here).ok()? {
        return None;
    }
    let commit = git(&["rev-parse", "HEAD"])?;
    for path in ["HEAD", "packed-refs"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            watch(&p);
        }
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(p) = git(&["rev-parse", "--git-path", &branch])
    {
        watch(&p);
    }
    Some(commit)
}

/// Reruns this script when `path` changes. A path that does not exist would make cargo rerun
/// it on every build, and the new build date would rebuild the crate each time: skipped.
fn watch(path: &str) {
    if std::path::Path::new(path).exists() {
        println!("cargo:rerun-if-changed={path}");
    }
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian calendar).
fn rfc3339(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01, counting in 400-year eras from 0000-03-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3_600, rem % 3_600 / 60, rem % 60)
}
