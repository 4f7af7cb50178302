//! The command line as users and oc-mirror scripts call it: real processes, real files.

use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_imageset-operator"))
}

/// The binary with no cache, credentials or home of the user running the tests: concurrent
/// tests never share (and lock) the user's cache.
fn run(args: &[&str]) -> Output {
    bin()
        .args(args)
        .env_remove("OC_MIRROR_CACHE")
        .env_remove("REGISTRY_AUTH_FILE")
        .env("HOME", "/nonexistent")
        .output()
        .expect("run imageset-operator")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// `mirror -c CONFIG --workspace file://WS docker://mirror.example.com:5000 --dry-run`.
fn dry_run_to_mirror(config: &std::path::Path, ws: &std::path::Path) -> Output {
    run(&[
        "mirror",
        "-c",
        config.to_str().unwrap(),
        "--workspace",
        &format!("file://{}", ws.display()),
        "docker://mirror.example.com:5000",
        "--dry-run",
    ])
}

/// Failures print exactly one line naming what is wrong, and exit non-zero.
fn assert_one_line_error(o: &Output, needle: &str) {
    assert!(!o.status.success(), "expected failure, got success: {}", String::from_utf8_lossy(&o.stdout));
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
}

const DIGEST: &str = "sha256:61b8f5e1a3b5dbd9e2c35fd448dc5106337d7a299873dd3a6f0cd8d4891ecc27";

fn write_isc(dir: &Path) -> String {
    let path = dir.join("isc.yaml");
    std::fs::write(
        &path,
        format!(
            "kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v2alpha1\nmirror:\n  additionalImages:\n  - name: registry.redhat.io/ubi9/ubi:latest\n  - name: quay.io/openshifttest/hello-openshift@{DIGEST}\n  - name: quay.io/openshifttest/hello-debug:1.0\n  blockedImages:\n  - name: -debug\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn unknown_flags_and_missing_arguments_fail_in_one_line() {
    assert_one_line_error(&run(&["mirror", "--bogus"]), "--bogus");
    assert_one_line_error(&run(&["frobnicate"]), "frobnicate");
    assert_one_line_error(&run(&["mirror", "docker://r.example.com"]), "use the --config flag it is mandatory");
    let dir = tempfile::tempdir().unwrap();
    let isc = write_isc(dir.path());
    assert_one_line_error(
        &run(&["mirror", "-c", &isc, "docker://r.example.com"]),
        "either --from (assumes disk to mirror workflow) or --workspace (assumes mirror to mirror workflow)",
    );
    assert_one_line_error(&run(&["mirror", "-c", &isc, "r.example.com"]), "file:// (mirror to disk) or docker://");
    assert_one_line_error(
        &run(&["mirror", "-c", &isc, "--workspace", "file:///tmp/x", "--parallel-images", "11", "docker://r"]),
        "the flag parallel-images must be between the range 1 to 10",
    );
    assert_one_line_error(&run(&["mirror", "-c", "/nonexistent.yaml", "file:///tmp/out"]), "/nonexistent.yaml");
    assert_one_line_error(&run(&["mirror", "-c", &isc, "--since", "yesterday", "file:///tmp/out"]), "yyyy-MM-dd");
}

#[test]
fn bad_files_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "kind: ImageSetConfiguration\nmirror:\n  operators:\n  - catalog: q.io/a/b:1\n    packages:\n    - name: p\n      minVersion: one\n",
            "mirror.operators[0].packages[0].minVersion",
        ),
        ("kind: ImageSetConfiguration\nstorageConfig: {}\nmirror: {}\n", "unknown field \"storageConfig\""),
        (
            "kind: ImageSetConfiguration\nmirror:\n  platform:\n    channels:\n    - name: stable-4.18\n      headsOnly: true\n",
            "mirror.platform.channels[0].headsOnly",
        ),
        ("mirror: {}\n", "configuration missing 'kind'"),
        ("kind: ImageSetConfiguration\nmirror: [\n", "not valid YAML"),
    ];
    for (i, (text, needle)) in cases.iter().enumerate() {
        let f = dir.path().join(format!("bad{i}.yaml"));
        std::fs::write(&f, text).unwrap();
        let o = run(&["mirror", "-c", f.to_str().unwrap(), "--dry-run", "file:///tmp/out"]);
        assert_one_line_error(&o, needle);
        assert!(stderr(&o).contains(f.to_str().unwrap()), "the file is named: {}", stderr(&o));
    }
}

#[test]
fn dry_run_writes_oc_mirror_mapping_for_each_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let isc = write_isc(dir.path());
    let hex = DIGEST.trim_start_matches("sha256:");
    // mirror to mirror, with oc-mirror's own flags (--v2 and tls flags accepted).
    let ws = dir.path().join("ws");
    let o = run(&[
        "mirror",
        "-c",
        &isc,
        "--workspace",
        &format!("file://{}", ws.display()),
        "docker://mirror.example.com:5000/ocp",
        "--dry-run",
        "--v2",
        "--src-tls-verify=false",
        "--dest-tls-verify",
        "false",
        "--max-nested-paths",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mapping = std::fs::read_to_string(ws.join("working-dir/dry-run/mapping.txt")).unwrap();
    assert_eq!(
        mapping,
        format!(
            "docker://registry.redhat.io/ubi9/ubi:latest=docker://mirror.example.com:5000/ocp/ubi9-ubi:latest\n\
             docker://quay.io/openshifttest/hello-openshift@{DIGEST}=docker://mirror.example.com:5000/ocp/openshifttest-hello-openshift:sha256-{hex}\n"
        )
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("2 images planned, 1 blocked"), "{stdout}");

    // mirror to disk: named under oc-mirror's cache registry, no nested-path folding.
    let out = dir.path().join("archive");
    let o = run(&["mirror", "-c", &isc, &format!("file://{}", out.display()), "--dry-run", "--max-nested-paths", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mapping = std::fs::read_to_string(out.join("working-dir/dry-run/mapping.txt")).unwrap();
    assert!(
        mapping.starts_with("docker://registry.redhat.io/ubi9/ubi:latest=docker://localhost:55000/ubi9/ubi:latest\n"),
        "{mapping}"
    );

    // disk to mirror: sources are the archive's names.
    let o = run(&[
        "mirror",
        "-c",
        &isc,
        "--from",
        &format!("file://{}", out.display()),
        "docker://mirror.example.com/x",
        "--dry-run",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mapping = std::fs::read_to_string(out.join("working-dir/dry-run/mapping.txt")).unwrap();
    assert!(
        mapping.starts_with("docker://localhost:55000/ubi9/ubi:latest=docker://mirror.example.com/x/ubi9/ubi:latest\n"),
        "{mapping}"
    );
}

#[test]
fn images_that_cannot_be_reached_are_logged_like_oc_mirror_and_set_its_exit_bits() {
    let dir = tempfile::tempdir().unwrap();
    let isc = dir.path().join("isc.yaml");
    // Port 1 on loopback refuses connections: fails fast, with or without a network.
    std::fs::write(
        &isc,
        format!("kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v2alpha1\nmirror:\n  additionalImages:\n  - name: 127.0.0.1:1/ubi9/ubi:latest\n  - name: 127.0.0.1:1/app@{DIGEST}\n"),
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = bin()
        .args(["mirror", "-c", isc.to_str().unwrap(), &format!("file://{}", out.display()), "--retry-times", "0"])
        .args(["--cache-dir", dir.path().join("cache").to_str().unwrap(), "--src-tls-verify=false"])
        .env_remove("OC_MIRROR_CACHE")
        .env("LOG_LEVEL", "error")
        .output()
        .unwrap();
    assert_one_line_error(&o, "2 of 2 images failed");
    assert_eq!(o.status.code(), Some(8), "oc-mirror's bit for additional images");
    assert!(String::from_utf8_lossy(&o.stdout).contains("no archive written"));
    let logs: Vec<_> = std::fs::read_dir(out.join("working-dir/logs")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(logs.len(), 1);
    let text = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(logs[0].file_name().unwrap().to_str().unwrap().starts_with("mirroring_errors_"), "{logs:?}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with("error mirroring image docker://127.0.0.1:1/ubi9/ubi:latest error: "), "{text}");
    assert!(!out.join("mirror_000001.tar").exists());
}

#[test]
fn delete_generate_writes_oc_mirror_delete_list() {
    let dir = tempfile::tempdir().unwrap();
    let disc = dir.path().join("disc.yaml");
    std::fs::write(
        &disc,
        format!("kind: DeleteImageSetConfiguration\napiVersion: mirror.openshift.io/v2alpha1\ndelete:\n  additionalImages:\n  - name: quay.io/openshifttest/hello-openshift@{DIGEST}\n"),
    )
    .unwrap();
    let ws = format!("file://{}", dir.path().join("ws").display());
    let o = run(&[
        "delete",
        "-c",
        disc.to_str().unwrap(),
        "--generate",
        "--workspace",
        &ws,
        "--cache-dir",
        dir.path().join("cache").to_str().unwrap(),
        "docker://localhost:5000/myregistry",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let list = std::fs::read_to_string(dir.path().join("ws/working-dir/delete/delete-images.yaml")).unwrap();
    let v: serde_json::Value = serde_saphyr::from_str(&list).unwrap();
    assert_eq!(v["kind"], "DeleteImageList");
    assert_eq!(v["items"][0]["imageName"], format!("quay.io/openshifttest/hello-openshift@{DIGEST}"));
    assert_eq!(
        v["items"][0]["imageReference"],
        format!(
            "docker://localhost:5000/myregistry/openshifttest/hello-openshift:sha256-{}",
            DIGEST.trim_start_matches("sha256:")
        )
    );
    assert_eq!(v["items"][0]["type"], "generic");
    assert!(dir.path().join("ws/working-dir/delete/delete-imageset-config.yaml").exists());
}

#[test]
fn crd_prints_the_committed_crds_and_version_prints() {
    let o = run(&["crd"]);
    assert!(o.status.success());
    let committed = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/crds.yaml")).unwrap();
    assert_eq!(o.stdout, committed, "crds/crds.yaml is stale: cargo run -- crd > crds/crds.yaml");
    let o = run(&["version"]);
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("imageset-operator "));
}

#[test]
fn list_checks_its_flags() {
    assert_one_line_error(
        &run(&["list", "releases", "--channel", "stable-4.18", "--filter-by-archs", "sparc"]),
        "sparc",
    );
    assert_one_line_error(&run(&["list", "operators", "--channel", "stable"]), "--package");
}

/// oc-mirror warns about an additional image whose `targetRepo` is not a repository path and
/// mirrors the rest (its e2e tests grep `invalid targetRepo` and `SKIPPING`, and exit 0); an
/// image set in the cluster with it is refused at admission instead.
#[test]
fn an_invalid_target_repo_is_skipped_with_oc_mirror_warning() {
    let dir = tempfile::tempdir().unwrap();
    let isc = dir.path().join("isc.yaml");
    std::fs::write(
        &isc,
        "kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v2alpha1\nmirror:\n  additionalImages:\n  - name: quay.io/a/bad:1\n    targetRepo: Not/A:Path\n  - name: quay.io/a/good:1\n",
    )
    .unwrap();
    let ws = dir.path().join("ws");
    let o = dry_run_to_mirror(&isc, &ws);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("warning: invalid targetRepo Not/A:Path for image quay.io/a/bad:1 : SKIPPING"), "{stdout}");
    let mapping = std::fs::read_to_string(ws.join("working-dir/dry-run/mapping.txt")).unwrap();
    assert_eq!(mapping, "docker://quay.io/a/good:1=docker://mirror.example.com:5000/a/good:1\n");
    // The same entry in a custom resource is refused, naming the field.
    let cr = dir.path().join("cr.yaml");
    std::fs::write(
        &cr,
        "kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v2alpha1\nmetadata: {name: x}\nspec:\n  destination: docker://mirror.example.com:5000\n  mirror:\n    additionalImages:\n    - name: quay.io/a/bad:1\n      targetRepo: Not/A:Path\n",
    )
    .unwrap();
    let o = dry_run_to_mirror(&cr, &ws);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("spec.mirror.additionalImages[0].targetRepo"), "{}", stderr(&o));
}

/// An image named by both a tag and a digest is pulled by its digest and keeps its tag at the
/// destination, with oc-mirror's warning.
#[test]
fn an_image_with_tag_and_digest_is_pulled_by_digest_with_oc_mirror_warning() {
    let dir = tempfile::tempdir().unwrap();
    let isc = dir.path().join("isc.yaml");
    std::fs::write(
        &isc,
        format!("kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v2alpha1\nmirror:\n  additionalImages:\n  - name: quay.io/a/b:1.0@{DIGEST}\n"),
    )
    .unwrap();
    let ws = dir.path().join("ws");
    let o = dry_run_to_mirror(&isc, &ws);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let want = format!(
        "warning: quay.io/a/b:1.0@{DIGEST} has both tag and digest : using digest to pull, but tag only for mirroring"
    );
    assert!(stdout.lines().any(|l| l == want), "{stdout}");
    let mapping = std::fs::read_to_string(ws.join("working-dir/dry-run/mapping.txt")).unwrap();
    assert_eq!(mapping, format!("docker://quay.io/a/b@{DIGEST}=docker://mirror.example.com:5000/a/b:1.0\n"));
}

/// A flag error exits 1 as oc-mirror's does: 2 is the release-error bit scripts test for.
#[test]
fn a_flag_error_exits_one() {
    let o = run(&["mirror", "--no-such-flag"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--no-such-flag"), "{}", stderr(&o));
}

/// Disk-to-mirror from a directory without archives, and from an empty archive file, fails in
/// oc-mirror's words (its tests grep them).
#[test]
fn missing_and_empty_archives_are_reported_in_oc_mirror_words() {
    let dir = tempfile::tempdir().unwrap();
    let isc = dir.path().join("isc.yaml");
    std::fs::write(
        &isc,
        "kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v2alpha1\nmirror:\n  additionalImages:\n  - name: quay.io/a/b:1\n",
    )
    .unwrap();
    let from = dir.path().join("from");
    std::fs::create_dir_all(&from).unwrap();
    let d2m = || {
        run(&[
            "mirror",
            "-c",
            isc.to_str().unwrap(),
            "--from",
            &format!("file://{}", from.display()),
            "docker://127.0.0.1:9",
            "--cache-dir",
            dir.path().join("cache").to_str().unwrap(),
        ])
    };
    let o = d2m();
    assert!(!o.status.success());
    let want = format!(r#"no tar archives matching "mirror_[0-9]{{6}}\\.tar" found in "{}""#, from.display());
    assert!(stderr(&o).contains(&want), "{want}\n{}", stderr(&o));
    std::fs::write(from.join("mirror_000001.tar"), b"").unwrap();
    let o = d2m();
    assert!(!o.status.success());
    let want = format!("empty archive file \"{}\"", from.join("mirror_000001.tar").display());
    assert!(stderr(&o).contains(&want), "{want}\n{}", stderr(&o));
}

/// oc-mirror's wording for platform fields: `architectures` is deprecated, and mixing it with
/// `platforms` is refused in its words.
#[test]
fn platform_architectures_wording_follows_oc_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let isc = dir.path().join("isc.yaml");
    let both = "kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v2alpha1\nmirror:\n  platform:\n    architectures: [amd64]\n    platforms: [{os: linux, architecture: amd64}]\n    channels: [{name: stable-4.16}]\n";
    std::fs::write(&isc, both).unwrap();
    let ws = format!("file://{}", dir.path().join("ws").display());
    let o = run(&["mirror", "-c", isc.to_str().unwrap(), "--workspace", &ws, "docker://r.example.com", "--dry-run"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("platform.platforms and platform.architectures cannot be used together"),
        "{}",
        stderr(&o)
    );
    let file = imageset_operator::api::load::image_set(
        "kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v2alpha1\nmirror:\n  platform:\n    architectures: [amd64]\n    channels: [{name: stable-4.16}]\n",
    )
    .unwrap();
    assert_eq!(file.warnings, ["platform.architectures is deprecated; use platform.platforms instead"]);
}
