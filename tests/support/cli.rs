//! Running the real binary from tests: a clean environment, success checks, image sets.

use std::path::Path;
use std::process::{Command, Output};

/// The binary, with no cache, credentials or home from the environment, and quiet logs.
pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_imageset-operator"));
    c.env_remove("OC_MIRROR_CACHE")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("CONTAINERS_REGISTRIES_CONF")
        .env("HOME", "/nonexistent")
        .env("LOG_LEVEL", "warn");
    c
}

/// Asserts success and returns stdout.
pub fn ok(o: Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "failed: {}\nstdout: {out}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Writes an oc-mirror image set with these additional images; returns its path.
pub fn write_isc(dir: &Path, images: &[String]) -> String {
    let mut y = String::from(
        "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  additionalImages:\n",
    );
    for i in images {
        y.push_str(&format!("  - name: {i}\n"));
    }
    let p = dir.join("isc.yaml");
    std::fs::write(&p, y).unwrap();
    p.display().to_string()
}

/// `mirror -c ISC --workspace file://<dir>/ws docker://DEST --cache-dir <dir>/cache` against
/// plain-HTTP registries, plus `extra` flags; not yet run.
pub fn mirror_to_mirror(isc: &str, dir: &Path, dest: &str, extra: &[&str]) -> Command {
    let mut c = bin();
    c.args(["mirror", "-c", isc, "--workspace", &format!("file://{}", dir.join("ws").display()), dest])
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
        .args(extra);
    c
}
