//! The shards benchmark's source content, written straight into the source registry's
//! filesystem storage (the layout Distribution's filesystem driver reads, as
//! `tests/support/storage.rs` writes it): `R` repositories `apps/a<NN>` with `T` tags each,
//! every image an OCI manifest over three layers: a base layer every image shares, a layer its
//! repository's tags share, and a layer of its own; and a config of its own. Repositories
//! differ in size (weights 1 to 5), so that splitting by repository has something to balance.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use crate::support::content::seeded_bytes;
use crate::support::storage::{Written, link, put_blob, write};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const SEED: u64 = 4177;

/// How big the workload is.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    /// Repositories.
    pub repos: usize,
    /// Tags per repository.
    pub tags: usize,
    /// The shared base layer, bytes.
    pub base_bytes: usize,
    /// Every repository and own layer together, bytes.
    pub layer_bytes: usize,
}

/// One image of the workload.
#[derive(Clone, Debug)]
pub struct Image {
    pub repo: String,
    pub tag: String,
    /// Manifest digest.
    pub digest: String,
    /// Every blob it needs (config and layers), with its size.
    pub blobs: Vec<(String, u64)>,
}

/// What was written.
pub struct Workload {
    pub size: Size,
    pub images: Vec<Image>,
    /// Every distinct blob (layers and configs) and its size.
    pub blobs: BTreeMap<String, u64>,
    /// The base layer's digest.
    pub base: String,
    /// Seconds it took to write.
    pub written_s: f64,
}

impl Workload {
    /// The images as `tests/support/storage.rs` checks them at a destination.
    pub fn written(&self) -> Vec<Written> {
        self.images
            .iter()
            .map(|i| Written { repo: i.repo.clone(), tag: i.tag.clone(), digest: i.digest.clone() })
            .collect()
    }

    /// Bytes of every distinct blob.
    pub fn blob_bytes(&self) -> u64 {
        self.blobs.values().sum()
    }

    /// The image `repo:tag`.
    pub fn image(&self, repo: &str, tag: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.repo == repo && i.tag == tag)
    }
}

/// Repository `r`'s weight, 1 to 5.
fn weight(r: usize) -> usize {
    1 + (r * 7 + 3) % 5
}

/// Writes the workload into `storage` (the source registry's root directory).
pub fn write_into(storage: &Path, size: Size) -> Workload {
    let start = Instant::now();
    let v2 = storage.join("docker/registry/v2");
    let (repos, tags) = (size.repos.max(1), size.tags.max(1));
    let total_weight: usize = (0..repos).map(weight).sum();
    let base = seeded_bytes(SEED, size.base_bytes.max(1));
    let base_d = put_blob(&v2, &base);
    drop(base);
    let mut blobs = BTreeMap::from([(base_d.clone(), size.base_bytes.max(1) as u64)]);
    let mut images = Vec::with_capacity(repos * tags);
    for r in 0..repos {
        let repo = format!("apps/a{r:02}");
        let budget = size.layer_bytes * weight(r) / total_weight;
        // A third for the repository's layer, the rest over its tags (each ±25 %).
        let repo_bytes = (budget / 3).max(1);
        let repo_layer = seeded_bytes(SEED + 1 + r as u64, repo_bytes);
        let repo_d = put_blob(&v2, &repo_layer);
        drop(repo_layer);
        blobs.insert(repo_d.clone(), repo_bytes as u64);
        let per_tag = (budget - budget / 3) / tags;
        let rdir = v2.join("repositories").join(&repo);
        for t in 0..tags {
            let tag = format!("v{}", t + 1);
            let own_bytes = (per_tag * (75 + (r * 13 + t * 29) % 51) / 100).max(1);
            let own = seeded_bytes(SEED + 1000 + (r * 100 + t) as u64, own_bytes);
            let own_d = put_blob(&v2, &own);
            drop(own);
            let layers = [(&base_d, size.base_bytes.max(1)), (&repo_d, repo_bytes), (&own_d, own_bytes)];
            let config = serde_json::to_vec(&serde_json::json!({
                "architecture": "amd64",
                "os": "linux",
                "config": {"Labels": {"io.imageset-operator.bench": format!("{repo}:{tag}")}},
                "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>()},
            }))
            .expect("config json");
            let config_d = put_blob(&v2, &config);
            let manifest = serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": config_d, "size": config.len()},
                "layers": layers
                    .iter()
                    .map(|(d, n)| serde_json::json!({"mediaType": OCI_LAYER, "digest": d, "size": n}))
                    .collect::<Vec<_>>(),
            }))
            .expect("manifest json");
            let manifest_d = put_blob(&v2, &manifest);
            for (d, _) in &layers {
                link(&rdir.join("_layers/sha256"), d);
            }
            link(&rdir.join("_layers/sha256"), &config_d);
            link(&rdir.join("_manifests/revisions/sha256"), &manifest_d);
            let tdir = rdir.join("_manifests/tags").join(&tag);
            write(&tdir.join("current/link"), manifest_d.as_bytes());
            link(&tdir.join("index/sha256"), &manifest_d);
            blobs.insert(own_d.clone(), own_bytes as u64);
            blobs.insert(config_d.clone(), config.len() as u64);
            let mut needs: Vec<(String, u64)> = layers.iter().map(|(d, n)| ((*d).clone(), *n as u64)).collect();
            needs.push((config_d, config.len() as u64));
            images.push(Image { repo: repo.clone(), tag, digest: manifest_d, blobs: needs });
        }
    }
    Workload { size, images, blobs, base: base_d, written_s: start.elapsed().as_secs_f64() }
}
