//! Mirrors at the sizes users have: thousands of small images through the real CLI with
//! default settings, between real registries.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::cli::{mirror_to_mirror, write_isc};
use support::registry::{Registry, RegistryOptions};
use support::storage::{Written, missing_at, small_images};
use support::temp_dir;

/// Runs `cmd` with its output in files under `dir`, killing it (and failing with its log) if
/// it takes longer than `limit`; returns `(stdout, stderr)`.
fn finish(mut cmd: Command, dir: &Path, limit: Duration, what: &str) -> (String, String) {
    let (out, err) = (dir.join("stdout"), dir.join("stderr"));
    let mut child = cmd
        .stdout(std::fs::File::create(&out).expect("stdout file"))
        .stderr(std::fs::File::create(&err).expect("stderr file"))
        .spawn()
        .expect("start imageset-operator");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if start.elapsed() > limit {
            child.kill().expect("kill");
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!("{what}: {:.1} s", start.elapsed().as_secs_f64());
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let (stdout, stderr) = (read(&out), read(&err));
    let tail = || stderr.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect::<Vec<_>>().join("\n");
    match status {
        None => panic!("{what} did not finish within {limit:?}; log tail:\n{}", tail()),
        Some(s) => assert!(s.success(), "{what} failed ({s}):\n{stdout}\n{}", tail()),
    }
    (stdout, stderr)
}

/// Every image is at `dst` under `m/<repo>:<tag>` with its source digest.
fn assert_all_mirrored(dst: &Registry, images: &[Written]) {
    let wrong = missing_at(dst, "m", images);
    assert!(
        wrong.is_empty(),
        "{} of {} images missing or wrong at the destination, e.g. {:?}",
        wrong.len(),
        images.len(),
        &wrong[..wrong.len().min(5)]
    );
}

#[test]
fn two_thousand_small_images_mirror_with_default_settings_and_a_rerun_finds_them_all() {
    let src = Registry::start(RegistryOptions::default());
    let dst = Registry::start(RegistryOptions::default());
    let images = small_images(&src.storage, 50, 2000, 4096, 16);
    let dir = temp_dir("scale-");
    let names: Vec<String> = images.iter().map(|w| format!("{}/{}:{}", src.host, w.repo, w.tag)).collect();
    let isc = write_isc(dir.path(), &names);
    let dest = format!("docker://{}/m", dst.host);
    let run = |what: &str| {
        let mut cmd = mirror_to_mirror(&isc, dir.path(), &dest, &[]);
        cmd.env("LOG_LEVEL", "info");
        finish(cmd, dir.path(), Duration::from_secs(150), what)
    };
    let (out, first) = run("mirroring 2,000 images");
    assert!(first.contains("Success copying"), "no copy logged:\n{first}");
    assert!(out.contains("2000 / 2000 additional images mirrored successfully (0 already present)"), "{out}");
    assert_all_mirrored(&dst, &images);
    let (again, log) = run("re-running the mirror of 2,000 images");
    assert!(again.contains("2000 / 2000 additional images mirrored successfully (2000 already present)"), "{again}");
    assert!(!log.contains("Success copying"), "a re-run copied again:\n{log}");
    assert_all_mirrored(&dst, &images);
}
