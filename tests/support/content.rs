//! Synthetic content for a real registry: images with chosen layer sizes and shared layers,
//! Docker v2 schema 2 and OCI manifests, multi-arch indexes, and OCI layouts from disk.
//! Pushed over the registry HTTP API directly so it does not depend on the code under test.

use std::path::Path;

use serde_json::{Value, json};

use super::registry::Registry;
use super::sha256;

/// Manifest family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Docker v2 schema 2 manifests and manifest lists.
    Docker,
    /// OCI manifests and indexes.
    Oci,
}

impl Format {
    fn manifest_type(self) -> &'static str {
        match self {
            Format::Docker => "application/vnd.docker.distribution.manifest.v2+json",
            Format::Oci => "application/vnd.oci.image.manifest.v1+json",
        }
    }
    fn index_type(self) -> &'static str {
        match self {
            Format::Docker => "application/vnd.docker.distribution.manifest.list.v2+json",
            Format::Oci => "application/vnd.oci.image.index.v1+json",
        }
    }
    fn config_type(self) -> &'static str {
        match self {
            Format::Docker => "application/vnd.docker.container.image.v1+json",
            Format::Oci => "application/vnd.oci.image.config.v1+json",
        }
    }
    fn layer_type(self) -> &'static str {
        match self {
            Format::Docker => "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Format::Oci => "application/vnd.oci.image.layer.v1.tar+gzip",
        }
    }
}

/// Deterministic bytes from a seed (xorshift64*), so content is reproducible.
pub fn seeded_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// What was pushed.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// Repository.
    pub repo: String,
    /// Tag.
    pub tag: String,
    /// Digest of the top manifest.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its raw bytes.
    pub manifest: Vec<u8>,
    /// Digests of every blob the image needs (all platforms).
    pub blobs: Vec<String>,
}

/// An HTTP pusher for one registry.
pub struct Pusher<'a> {
    reg: &'a Registry,
    http: reqwest::blocking::Client,
}

impl<'a> Pusher<'a> {
    pub fn new(reg: &'a Registry) -> Self {
        Pusher { reg, http: reg.http() }
    }

    /// Uploads a blob (monolithic POST + PUT) unless present; returns its digest.
    pub fn blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let base = self.reg.base_url();
        let head = self
            .reg
            .authorize(repo, self.http.head(format!("{base}/v2/{repo}/blobs/{digest}")))
            .send()
            .expect("HEAD blob");
        if head.status().is_success() {
            return digest;
        }
        let start = self
            .reg
            .authorize(repo, self.http.post(format!("{base}/v2/{repo}/blobs/uploads/")))
            .send()
            .expect("start upload");
        assert_eq!(start.status().as_u16(), 202, "start upload to {repo}: {:?}", start.text());
        let loc = start.headers()["location"].to_str().expect("location").to_string();
        let loc = if loc.starts_with("http") { loc } else { format!("{base}{loc}") };
        let sep = if loc.contains('?') { '&' } else { '?' };
        let put = self
            .reg
            .authorize(repo, self.http.put(format!("{loc}{sep}digest={digest}")))
            .header("Content-Type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .expect("PUT blob");
        assert_eq!(put.status().as_u16(), 201, "PUT blob {digest} to {repo}: {:?}", put.text());
        digest
    }

    /// Pushes raw manifest bytes under a tag or digest; returns the digest.
    pub fn manifest(&self, repo: &str, reference: &str, bytes: &[u8], media_type: &str) -> String {
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.reg.base_url());
        let r = self
            .reg
            .authorize(repo, self.http.put(url))
            .header("Content-Type", media_type)
            .body(bytes.to_vec())
            .send()
            .expect("PUT manifest");
        assert_eq!(r.status().as_u16(), 201, "PUT manifest {repo}:{reference}: {:?}", r.text());
        sha256(bytes)
    }

    /// Pushes a single-platform image with layers of the given sizes; `seed` picks the content,
    /// and equal `(seed, index)` pairs give equal (shared) layers.
    pub fn image(
        &self,
        repo: &str,
        tag: &str,
        format: Format,
        platform: (&str, &str),
        layers: &[(u64, usize)],
    ) -> Pushed {
        let mut descs = Vec::new();
        let mut diff_ids = Vec::new();
        let mut blobs = Vec::new();
        for (seed, size) in layers {
            let bytes = seeded_bytes(*seed, *size);
            let d = self.blob(repo, &bytes);
            diff_ids.push(Value::String(d.clone()));
            descs.push(json!({"mediaType": format.layer_type(), "digest": d, "size": bytes.len()}));
            blobs.push(d);
        }
        let config = serde_json::to_vec(&json!({
            "architecture": platform.1, "os": platform.0,
            "config": {"Labels": {"io.imageset-operator.test": tag}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap();
        let config_digest = self.blob(repo, &config);
        blobs.push(config_digest.clone());
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": format.manifest_type(),
            "config": {"mediaType": format.config_type(), "digest": config_digest, "size": config.len()},
            "layers": descs,
        }))
        .unwrap();
        let digest = self.manifest(repo, tag, &manifest, format.manifest_type());
        Pushed {
            repo: repo.into(),
            tag: tag.into(),
            digest,
            media_type: format.manifest_type().into(),
            manifest,
            blobs,
        }
    }

    /// Pushes a multi-arch image: one manifest per platform (a shared base layer plus one of
    /// its own), then the index or manifest list over them under `tag`.
    pub fn multi_arch(&self, repo: &str, tag: &str, format: Format, platforms: &[(&str, &str)], seed: u64) -> Pushed {
        let mut entries = Vec::new();
        let mut blobs = Vec::new();
        for (i, p) in platforms.iter().enumerate() {
            let child_tag = format!("{tag}-{}-{}", p.0, p.1);
            let child =
                self.image(repo, &child_tag, format, *p, &[(seed, 4096), (seed + 1 + i as u64, 2048 + i * 512)]);
            blobs.extend(child.blobs.iter().cloned());
            entries.push(json!({
                "mediaType": format.manifest_type(), "digest": child.digest, "size": child.manifest.len(),
                "platform": {"os": p.0, "architecture": p.1},
            }));
        }
        blobs.sort();
        blobs.dedup();
        let index = serde_json::to_vec_pretty(
            &json!({"schemaVersion": 2, "mediaType": format.index_type(), "manifests": entries}),
        )
        .unwrap();
        let digest = self.manifest(repo, tag, &index, format.index_type());
        Pushed {
            repo: repo.into(),
            tag: tag.into(),
            digest,
            media_type: format.index_type().into(),
            manifest: index,
            blobs,
        }
    }

    /// Pushes an OCI image layout from disk (every blob, then manifests children first) and
    /// tags its top manifest; returns what was pushed.
    pub fn oci_layout(&self, layout: &Path, repo: &str, tag: &str) -> Pushed {
        let index: Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index.json")).unwrap();
        let top = &index["manifests"][0];
        let mut blobs = Vec::new();
        let (digest, media_type, manifest) = self.push_tree(layout, repo, top, Some(tag), &mut blobs);
        blobs.sort();
        blobs.dedup();
        Pushed { repo: repo.into(), tag: tag.into(), digest, media_type, manifest, blobs }
    }

    fn push_tree(
        &self,
        layout: &Path,
        repo: &str,
        desc: &Value,
        tag: Option<&str>,
        blobs: &mut Vec<String>,
    ) -> (String, String, Vec<u8>) {
        let digest = desc["digest"].as_str().expect("descriptor digest");
        let bytes = read_blob(layout, digest);
        let m: Value = serde_json::from_slice(&bytes).expect("manifest json");
        let media_type = desc["mediaType"].as_str().or(m["mediaType"].as_str()).expect("media type").to_string();
        if let Some(children) = m["manifests"].as_array() {
            for c in children {
                self.push_tree(layout, repo, c, None, blobs);
            }
        } else {
            for d in std::iter::once(&m["config"]).chain(m["layers"].as_array().into_iter().flatten()) {
                let bd = d["digest"].as_str().expect("blob digest");
                let b = read_blob(layout, bd);
                assert_eq!(sha256(&b), bd, "layout blob {bd} does not match its digest");
                self.blob(repo, &b);
                blobs.push(bd.to_string());
            }
        }
        let pushed = self.manifest(repo, tag.unwrap_or(digest), &bytes, &media_type);
        assert_eq!(pushed, digest);
        (pushed, media_type, bytes)
    }
}

fn read_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let (algo, hex) = digest.split_once(':').expect("digest");
    std::fs::read(layout.join("blobs").join(algo).join(hex))
        .unwrap_or_else(|e| panic!("{}: blob {digest}: {e}", layout.display()))
}
