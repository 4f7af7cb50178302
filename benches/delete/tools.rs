//! The deleters compared and the input each is given (a run is measured by `measure`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::measure::{clip, find_program};
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

/// The last line of a run's output that mentions "deleted": our summary.
pub fn summary(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines().rev().find(|l| !l.trim().is_empty() && l.contains("deleted")).map(clip).unwrap_or_default()
}
