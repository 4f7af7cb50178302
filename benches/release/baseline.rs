//! The baseline: what a user scripts today to resolve a channel range and read its payloads'
//! image references without oc-mirror or oc, run as a shell script would run it: one real
//! tool after another, nothing in parallel. This module is the script; its glue (loops,
//! string comparisons) stands in for shell builtins, every step that does work is a process:
//!
//! ```sh
//! curl -fsS -H 'Accept: application/json' "$GRAPH?channel=$CH&arch=amd64" -o graph.json
//! jq -r --arg min "$MIN" --arg max "$MAX" "$RANGE" graph.json |   # "<version> <payload>"
//! while read -r version payload; do
//!   hex=${payload##*@sha256:}
//!   curl -fsS -o "$version.sig" "$STORE/sha256=$hex/signature-1"
//!   gpg --batch --status-fd 1 --output "$version.claim" --verify "$version.sig" | grep -q GOODSIG
//!   [ "$(jq -r '.critical.image."docker-manifest-digest"' "$version.claim")" = "sha256:$hex" ]
//!   skopeo copy -q --src-tls-verify=false "docker://$payload" "dir:$version"
//!   for l in $(jq -r '.layers[].digest' "$version/manifest.json"); do
//!     tar -xzf "$version/${l#sha256:}" -C "$version.root" release-manifests/image-references
//!   done
//!   jq -r '.spec.tags[] | "\(.name) \(.from.name)"' "$version.root/release-manifests/image-references"
//! done
//! ```
//!
//! The key is imported once into a fresh GNUPGHOME (`gpg --import`) before the loop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The name the results give the baseline.
pub const NAME: &str = "curl+gpg+skopeo+tar script";

/// The programs the script runs.
pub const TOOLS: &[&str] = &["curl", "gpg", "jq", "skopeo", "tar"];

/// Selects the nodes of a Cincinnati graph whose version is in [$min, $max], as
/// `<version> <payload>` lines.
const RANGE: &str = r#"def v: split("-")[0] | split(".") | map(tonumber);
($min | v) as $lo | ($max | v) as $hi
| .nodes[] | select((.version | v) as $x | $x >= $lo and $x <= $hi) | "\(.version) \(.payload)""#;

/// What the script is asked to do.
#[derive(Serialize, Deserialize)]
pub struct Job {
    pub graph_url: String,
    pub signature_url: String,
    pub public_key: PathBuf,
    pub channel: String,
    pub min: String,
    pub max: String,
    /// An empty directory for its files.
    pub work: PathBuf,
}

/// What it found, and where its time went.
#[derive(Serialize, Deserialize, Default)]
pub struct Found {
    /// Version -> component name -> image, as each payload's image-references names them.
    pub refs: BTreeMap<String, BTreeMap<String, String>>,
    /// Seconds in the graph query and range selection.
    pub graph_s: f64,
    /// Seconds fetching and verifying signatures (key import included).
    pub signatures_s: f64,
    /// Seconds copying payloads and reading their image-references.
    pub payloads_s: f64,
}

/// Runs `program args`, failing with its stderr unless it succeeds; returns stdout.
fn run(program: &str, args: &[&str], env: &[(&str, &Path)]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("start {program}"))?;
    if !out.status.success() {
        bail!("{program} {args:?}: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    String::from_utf8(out.stdout).with_context(|| format!("{program} printed non-UTF-8"))
}

fn path(p: &Path) -> Result<&str> {
    p.to_str().with_context(|| format!("{} is not UTF-8", p.display()))
}

/// The script, on `job`.
pub fn script(job: &Job) -> Result<Found> {
    let mut found = Found::default();
    let work = job.work.as_path();

    let t = Instant::now();
    let graph = work.join("graph.json");
    let url = format!("{}?channel={}&arch=amd64", job.graph_url, job.channel);
    run("curl", &["-fsS", "-H", "Accept: application/json", "-o", path(&graph)?, &url], &[])?;
    let selected = run("jq", &["-r", "--arg", "min", &job.min, "--arg", "max", &job.max, RANGE, path(&graph)?], &[])?;
    found.graph_s = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let home = work.join("gnupg");
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700).create(&home)?;
    let gnupg = [("GNUPGHOME", home.as_path())];
    run("gpg", &["--batch", "--quiet", "--import", path(&job.public_key)?], &gnupg)?;
    found.signatures_s += t.elapsed().as_secs_f64();

    let result = (|| -> Result<()> {
        for line in selected.lines() {
            let (version, payload) = line.split_once(' ').with_context(|| format!("jq printed {line:?}"))?;
            let hex = payload.rsplit_once("@sha256:").with_context(|| format!("{payload}: no digest"))?.1;

            let t = Instant::now();
            let sig = work.join(format!("{version}.sig"));
            let claim = work.join(format!("{version}.claim"));
            let sig_url = format!("{}/sha256={hex}/signature-1", job.signature_url);
            run("curl", &["-fsS", "-o", path(&sig)?, &sig_url], &[])?;
            let status = run(
                "gpg",
                &["--batch", "--status-fd", "1", "--output", path(&claim)?, "--verify", path(&sig)?],
                &gnupg,
            )?;
            if !status.lines().any(|l| l.starts_with("[GNUPG:] GOODSIG ")) {
                bail!("{version}: gpg found no good signature:\n{status}");
            }
            let signed = run("jq", &["-r", ".critical.image.\"docker-manifest-digest\"", path(&claim)?], &[])?;
            if signed.trim() != format!("sha256:{hex}") {
                bail!("{version}: the signature is for {}, not sha256:{hex}", signed.trim());
            }
            found.signatures_s += t.elapsed().as_secs_f64();

            let t = Instant::now();
            let dir = work.join(version);
            let root = work.join(format!("{version}.root"));
            std::fs::create_dir(&root)?;
            let src = format!("docker://{payload}");
            run("skopeo", &["copy", "-q", "--src-tls-verify=false", &src, &format!("dir:{}", path(&dir)?)], &[])?;
            let layers = run("jq", &["-r", ".layers[].digest", path(&dir.join("manifest.json"))?], &[])?;
            for digest in layers.lines() {
                let blob = dir.join(digest.trim_start_matches("sha256:"));
                // tar exits 2 when the layer lacks the member, as most layers do: as in the
                // script, that is not an error; the file's presence is checked below.
                let _ = Command::new("tar")
                    .args(["-xzf", path(&blob)?, "-C", path(&root)?, "release-manifests/image-references"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .context("start tar")?;
            }
            let refs = root.join("release-manifests/image-references");
            if !refs.is_file() {
                bail!("{version}: no release-manifests/image-references in {payload}");
            }
            let listed = run("jq", &["-r", r#".spec.tags[] | "\(.name) \(.from.name)""#, path(&refs)?], &[])?;
            let names = found.refs.entry(version.to_string()).or_default();
            for l in listed.lines() {
                let (name, image) = l.split_once(' ').with_context(|| format!("jq printed {l:?}"))?;
                names.insert(name.to_string(), image.to_string());
            }
            found.payloads_s += t.elapsed().as_secs_f64();
        }
        Ok(())
    })();
    // Cleanup, outside what a user waits for: the agent gpg may have started.
    let _ = Command::new("gpgconf")
        .args(["--kill", "all"])
        .env("GNUPGHOME", &home)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    result?;
    if found.refs.is_empty() {
        bail!("the range selected no versions from {url}");
    }
    Ok(found)
}

/// The child process's entry point: `--child-baseline <job JSON>`; prints [`Found`] as JSON.
pub fn child_main(args: &[String]) -> i32 {
    let go = || -> Result<Found> {
        let job: Job = serde_json::from_str(args.first().context("no job")?).context("job JSON")?;
        script(&job)
    };
    match go() {
        Ok(found) => {
            println!("{}", serde_json::to_string(&found).expect("JSON"));
            0
        }
        Err(e) => {
            eprintln!("baseline: {e:#}");
            1
        }
    }
}
