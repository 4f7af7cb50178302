//! Many small images written straight into a Distribution registry's filesystem storage (the
//! layout its filesystem driver reads: blob data by digest, per-repository layer and manifest
//! revision links, tag links), so thousands of images exist in a second without thousands
//! of pushes. The registry serves them like pushed ones; skopeo and our client cannot tell.

use std::path::Path;

use super::content::seeded_bytes;
use super::registry::Registry;
use super::sha256;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// One image written: `repo:tag` with its manifest digest.
#[derive(Clone, Debug)]
pub struct Written {
    /// Repository.
    pub repo: String,
    /// Tag.
    pub tag: String,
    /// Manifest digest.
    pub digest: String,
}

/// Writes a file of the registry's storage, creating its directories.
pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("create storage directories");
    std::fs::write(path, bytes).expect("write storage file");
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").expect("a sha256 digest")
}

/// Writes `bytes` as a blob under `v2` (the storage's `docker/registry/v2`), once; its digest.
pub fn put_blob(v2: &Path, bytes: &[u8]) -> String {
    let d = sha256(bytes);
    let h = hex(&d);
    let data = v2.join("blobs/sha256").join(&h[..2]).join(h).join("data");
    if !data.exists() {
        write(&data, bytes);
    }
    d
}

/// Writes the link file of `digest` under `path` (a repository's `_layers/sha256`, ...).
pub fn link(path: &Path, digest: &str) {
    write(&path.join(hex(digest)).join("link"), digest.as_bytes());
}

/// Writes `count` single-layer OCI images into `storage` (the registry's root directory),
/// spread round-robin over `repos` repositories named `small/r<NN>`, tagged `t<N>`: each with
/// its own config and a unique layer of `layer_bytes` seeded bytes.
pub fn small_images(storage: &Path, repos: usize, count: usize, layer_bytes: usize, seed: u64) -> Vec<Written> {
    let v2 = storage.join("docker/registry/v2");
    let mut out = Vec::with_capacity(count);
    for n in 0..count {
        let repo = format!("small/r{:02}", n % repos.max(1));
        let tag = format!("t{n}");
        let layer = seeded_bytes(seed.wrapping_mul(1_000_003).wrapping_add(n as u64), layer_bytes);
        let layer_d = put_blob(&v2, &layer);
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"image": tag}},
            "rootfs": {"type": "layers", "diff_ids": [layer_d]},
        }))
        .expect("config json");
        let config_d = put_blob(&v2, &config);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_d, "size": config.len()},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_d, "size": layer.len()}],
        }))
        .expect("manifest json");
        let manifest_d = put_blob(&v2, &manifest);
        let r = v2.join("repositories").join(&repo);
        link(&r.join("_layers/sha256"), &layer_d);
        link(&r.join("_layers/sha256"), &config_d);
        link(&r.join("_manifests/revisions/sha256"), &manifest_d);
        let t = r.join("_manifests/tags").join(&tag);
        write(&t.join("current/link"), manifest_d.as_bytes());
        link(&t.join("index/sha256"), &manifest_d);
        out.push(Written { repo, tag, digest: manifest_d });
    }
    out
}

/// The images not at `dst` under `<prefix>/<repo>:<tag>` with their source digest (a HEAD of
/// each manifest), as `repo:tag (status digest)`.
pub fn missing_at(dst: &Registry, prefix: &str, images: &[Written]) -> Vec<String> {
    let http = dst.http();
    let mut wrong = Vec::new();
    for w in images {
        let url = format!("{}/v2/{prefix}/{}/manifests/{}", dst.base_url(), w.repo, w.tag);
        let r = http
            .head(url)
            .header("Accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .expect("HEAD the mirrored manifest");
        let digest = r.headers().get("docker-content-digest").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !r.status().is_success() || digest != w.digest {
            wrong.push(format!("{}:{} ({} {digest})", w.repo, w.tag, r.status()));
        }
    }
    wrong
}
