//! The graph-data image OpenShift Update Service reads (`graph: true`): a base image (UBI 9
//! by default) plus one layer holding the cincinnati-graph-data tarball under
//! `/var/lib/cincinnati-graph-data/`, and a Cmd copying it where the service looks. Built into
//! the cache, deterministic for the same tarball and base.

use serde_json::{Value, json};

use super::ReleaseError;
use crate::cache::{Cache, fetch};
use crate::catalog::image::{self, Rebuilt, SourceImage};
use crate::image::ImageRef;
use crate::image::manifest::{self, Parsed};
use crate::registry::Client;

/// Where the graph data lands in the image.
pub const DATA_DIR: &str = "var/lib/cincinnati-graph-data";
/// oc-mirror's base image.
pub const DEFAULT_BASE: &str = "registry.access.redhat.com/ubi9/ubi:latest";
/// Destination repository (below the destination root) and tag.
pub const REPOSITORY: &str = "openshift/graph-image";
/// Its tag.
pub const TAG: &str = "latest";

/// Rewrites the graph-data tarball (gzip tar) into one layer: every entry under
/// [`DATA_DIR`], owned by root, mtime kept. Refuses links and paths leaving the tree.
pub fn layer(tarball: &[u8]) -> Result<(Vec<u8>, String), ReleaseError> {
    let bad = |m: String| ReleaseError::GraphImage(format!("graph data: {m}"));
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tarball));
    let mut out = tar::Builder::new(Vec::new());
    for entry in archive.entries().map_err(|e| bad(e.to_string()))? {
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let path = entry.path().map_err(|e| bad(e.to_string()))?.to_string_lossy().into_owned();
        let rel = path.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/');
        if rel.split('/').any(|p| p == "..") {
            return Err(bad(format!("entry {path:?} leaves the tree")));
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir()) {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_mtime(entry.header().mtime().unwrap_or(0));
        let name = if rel.is_empty() { DATA_DIR.to_string() } else { format!("{DATA_DIR}/{rel}") };
        if kind.is_dir() {
            h.set_size(0);
            out.append_data(&mut h, format!("{name}/"), std::io::empty()).map_err(|e| bad(e.to_string()))?;
        } else {
            h.set_size(entry.size());
            out.append_data(&mut h, name, &mut entry).map_err(|e| bad(e.to_string()))?;
        }
    }
    let raw = out.into_inner().map_err(|e| bad(e.to_string()))?;
    let diff_id = manifest::sha256_digest(&raw);
    let mut gz = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &raw).map_err(|e| bad(e.to_string()))?;
    Ok((gz.finish().map_err(|e| bad(e.to_string()))?, diff_id))
}

/// Builds the graph image on `base` (every platform of it) into the cache; returns the top
/// digest. The base's blobs are fetched into the cache so the image can be copied from it.
pub async fn build(client: &Client, cache: &Cache, base: &str, tarball: &[u8]) -> Result<String, ReleaseError> {
    let r = ImageRef::parse(base).map_err(|e| ReleaseError::GraphImage(format!("base image {base}: {e}")))?;
    let reg = |e: crate::registry::RegistryError| ReleaseError::Registry {
        what: format!("base image {base}"),
        message: e.to_string(),
    };
    let bad = |m: String| ReleaseError::GraphImage(format!("base image {base}: {m}"));
    let top = fetch::top_digest(client, &r, &format!("base image {base}")).await.map_err(reg)?;
    let top_bytes = fetch::manifest(client, cache, &r.registry, &r.path, &top).await.map_err(reg)?;
    let mt = manifest::media_type_of(&top_bytes, None);
    let (index, children) = match manifest::parse(&top_bytes, &mt).map_err(|e| bad(e.to_string()))? {
        Parsed::Image { .. } => (None, vec![top.clone()]),
        Parsed::Index { children } => (
            Some(top_bytes.clone()),
            children
                .into_iter()
                .filter(|(_, p)| p.as_ref().is_none_or(|(os, _)| os != "unknown"))
                .map(|(d, _)| d.digest)
                .collect(),
        ),
    };
    let mut images = Vec::new();
    for d in children {
        let m = fetch::manifest(client, cache, &r.registry, &r.path, &d).await.map_err(reg)?;
        let Parsed::Image { blobs } =
            manifest::parse(&m, &manifest::media_type_of(&m, None)).map_err(|e| bad(e.to_string()))?
        else {
            continue;
        };
        for b in &blobs {
            fetch::blob_once(client, cache, &r.registry, &r.path, b).await.map_err(reg)?;
        }
        let config = cache.read(&blobs[0].digest).map_err(|e| bad(e.to_string()))?;
        images.push((d, SourceImage { manifest: m, config }));
    }
    let layer = layer(tarball)?;
    let built = assemble(index.as_deref(), &images, layer)?;
    store(cache, &built)
}

/// The graph image over already-fetched base images (pure).
pub fn assemble(
    index: Option<&[u8]>,
    images: &[(String, SourceImage)],
    layer: (Vec<u8>, String),
) -> Result<Rebuilt, ReleaseError> {
    let cmd = json!(["/bin/bash", "-c", "exec cp -rp /var/lib/cincinnati-graph-data/* /var/lib/cincinnati/graph-data"]);
    let history: [Value; 1] =
        [json!({"created_by": "imageset-operator: add the cincinnati graph data", "author": "imageset-operator"})];
    image::rebuild_with(index, images, |img, blobs| {
        image::append_layers(img, vec![layer.clone()], cmd.clone(), &history, blobs)
    })
    .map_err(|e| ReleaseError::GraphImage(e.to_string()))
}

fn store(cache: &Cache, built: &Rebuilt) -> Result<String, ReleaseError> {
    crate::collect::store_rebuilt(cache, built).map_err(|e| ReleaseError::GraphImage(e.to_string()))
}
