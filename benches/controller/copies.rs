//! The same copy done without the controller: `imageset-operator mirror` (the CLI, what a
//! CronJob of ours would run) and `skopeo copy --all --preserve-digests` of each image one
//! after another (what a CronJob shell script would run; a mirror must keep digests). Each is a fresh process (tree) under GNU time when
//! there is one; afterwards every destination is checked to hold the source's manifests.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::support::content::Pushed;

/// What one measured process took.
pub struct Timed {
    /// Wall seconds from spawn to exit.
    pub wall_s: f64,
    /// Peak RSS (GNU time `%M`, the largest process of the tree), if GNU time is there.
    pub rss_kib: Option<u64>,
}

/// The tools and where things go.
pub struct Copies {
    /// The imageset-operator binary.
    pub bin: PathBuf,
    /// skopeo.
    pub skopeo: PathBuf,
    /// GNU time, when installed.
    pub time: Option<PathBuf>,
    /// Source and destination registry hosts.
    pub src: String,
    pub dst: String,
    /// Work directories live under here.
    pub root: PathBuf,
}

impl Copies {
    /// `imageset-operator mirror -c isc.yaml --workspace file://… docker://<dst>/<prefix>`
    /// with a fresh cache and workspace.
    pub fn cli(&self, prefix: &str, images: &[String]) -> Result<Timed> {
        let dir = self.root.join(prefix);
        std::fs::create_dir_all(&dir)?;
        let mut isc = String::from(
            "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  additionalImages:\n",
        );
        for i in images {
            isc.push_str(&format!("  - name: {i}\n"));
        }
        std::fs::write(dir.join("isc.yaml"), isc)?;
        let argv: Vec<String> = vec![
            self.bin.display().to_string(),
            "mirror".into(),
            "-c".into(),
            dir.join("isc.yaml").display().to_string(),
            "--workspace".into(),
            format!("file://{}", dir.join("ws").display()),
            format!("docker://{}/{prefix}", self.dst),
            "--src-tls-verify=false".into(),
            "--dest-tls-verify=false".into(),
            "--cache-dir".into(),
            dir.join("cache").display().to_string(),
        ];
        self.measure(&argv, &[("HOME", "/nonexistent"), ("LOG_LEVEL", "warn")])
    }

    /// A shell script running `skopeo copy --all --preserve-digests` for each image in turn, into
    /// `docker://<dst>/<prefix>/<repository>:<tag>`.
    pub fn skopeo(&self, prefix: &str, images: &[Pushed]) -> Result<Timed> {
        let script = r#"set -eu
skopeo="$1"; src="$2"; dst="$3"; shift 3
for ref in "$@"; do
  "$skopeo" copy --all --preserve-digests --src-tls-verify=false --dest-tls-verify=false "docker://$src/$ref" "docker://$dst/$ref"
done"#;
        let mut argv: Vec<String> = vec!["sh".into(), "-c".into(), script.into(), "sh".into()];
        argv.push(self.skopeo.display().to_string());
        argv.push(self.src.clone());
        argv.push(format!("{}/{prefix}", self.dst));
        argv.extend(images.iter().map(|p| format!("{}:{}", p.repo, p.tag)));
        self.measure(&argv, &[])
    }

    /// Checks that `<dst>/<prefix>` holds each image with the source's manifest digest.
    pub fn verify(&self, prefix: &str, images: &[Pushed]) -> Result<()> {
        for p in images {
            let reference = format!("docker://{}/{prefix}/{}:{}", self.dst, p.repo, p.tag);
            let out = Command::new(&self.skopeo)
                .args(["inspect", "--raw", "--tls-verify=false", &reference])
                .output()
                .context("run skopeo inspect")?;
            if !out.status.success() {
                bail!("{reference} is not there: {}", String::from_utf8_lossy(&out.stderr).trim());
            }
            let got = crate::support::sha256(&out.stdout);
            if got != p.digest {
                bail!("{reference} has manifest {got}, the source has {}", p.digest);
            }
        }
        Ok(())
    }

    /// Runs `argv` to completion (under GNU time when there is one).
    fn measure(&self, argv: &[String], env: &[(&str, &str)]) -> Result<Timed> {
        let (wall_s, rss_kib, _) = crate::entry::measure(self.time.as_deref(), argv, env)?;
        Ok(Timed { wall_s, rss_kib })
    }
}

/// `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).map(|d| d.join(name)).find(|p| p.is_file())
}

/// `/usr/bin/time` if it is GNU time.
pub fn gnu_time() -> Option<PathBuf> {
    let p = Path::new("/usr/bin/time");
    let out = Command::new(p).args(["-f", "%M", "true"]).output().ok()?;
    out.status.success().then(|| p.to_path_buf())
}
