//! The copiers compared, how each is invoked on the workload (measured by `measure`) and
//! how the destination is checked afterwards.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::generate::{Entry, Workload};
use super::measure::find_program;
use super::registry::{blocking_client, head_manifest};

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

/// Checks every tag in the destination against the source digest; returns the tags that are
/// missing or differ.
pub fn verify(tool: Tool, entries: &[Entry], dst: &str) -> Vec<String> {
    let http = blocking_client();
    let mut bad = Vec::new();
    for e in entries {
        let repo = tool.dest_repo(&e.repo);
        let got = match head_manifest(&http, dst, &repo, &e.tag) {
            Ok((status, digest)) if (200..300).contains(&status) => digest,
            _ => None,
        };
        match got {
            Some(d) if d == e.digest => {}
            Some(d) => bad.push(format!("{repo}:{} has {d}, source {}", e.tag, e.digest)),
            None => bad.push(format!("{repo}:{} missing", e.tag)),
        }
    }
    bad
}
