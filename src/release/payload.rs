//! A release payload's `release-manifests/`: its component images (`image-references`) and
//! the KubeVirt container disks (`0000_50_installer_coreos-bootimages.yaml`). Reading is
//! streaming over the payload's layers in the cache; parsing is pure.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::ReleaseError;
use crate::cache::{Cache, fetch};
use crate::catalog::image::extract_dir;
use crate::image::ImageRef;
use crate::image::manifest::{self, Parsed};
use crate::registry::Client;

/// The directory of a payload holding its manifests.
pub const MANIFESTS_DIR: &str = "release-manifests";
/// The component list.
pub const IMAGE_REFERENCES: &str = "image-references";
/// The CoreOS boot images ConfigMap.
pub const BOOTIMAGES: &str = "0000_50_installer_coreos-bootimages.yaml";

/// A component of a release.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Component {
    /// Its name in the release (`etcd`, `cli`, ...).
    pub name: String,
    /// Its image, by digest.
    pub image: String,
}

#[derive(Deserialize)]
struct ImageStream {
    kind: String,
    spec: Spec,
}
#[derive(Deserialize)]
struct Spec {
    #[serde(default)]
    tags: Vec<Tag>,
}
#[derive(Deserialize)]
struct Tag {
    name: String,
    from: Option<From>,
}
#[derive(Deserialize)]
struct From {
    kind: String,
    name: String,
}

/// The components listed by an `image-references` ImageStream, sorted by name.
pub fn image_references(bytes: &[u8], payload: &str) -> Result<Vec<Component>, ReleaseError> {
    let bad = |m: String| ReleaseError::Payload { payload: payload.to_string(), message: m };
    // Payloads carry JSON; the file in source trees is YAML (a superset).
    let is: ImageStream = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|t| serde_saphyr::from_str(t).ok())
            .ok_or_else(|| bad(format!("{MANIFESTS_DIR}/{IMAGE_REFERENCES}: {e}")))?,
    };
    if is.kind != "ImageStream" {
        return Err(bad(format!("{MANIFESTS_DIR}/{IMAGE_REFERENCES}: kind {:?}, expected ImageStream", is.kind)));
    }
    let mut out = Vec::new();
    for t in is.spec.tags {
        let Some(from) = t.from.filter(|f| f.kind == "DockerImage") else { continue };
        let r = ImageRef::parse(&from.name).map_err(|e| bad(format!("component {}: {e}", t.name)))?;
        // Components are pulled by digest through the cluster's IDMS: a tag cannot be mirrored so.
        if r.digest.is_none() {
            return Err(bad(format!("component {}: {} is not pinned by digest", t.name, from.name)));
        }
        out.push(Component { name: t.name, image: from.name });
    }
    if out.is_empty() {
        return Err(bad(format!("{MANIFESTS_DIR}/{IMAGE_REFERENCES} lists no images")));
    }
    out.sort();
    out.dedup_by(|a, b| a.name == b.name);
    Ok(out)
}

/// The CoreOS architecture names (`x86_64`, `s390x`, ...) whose KubeVirt disk a release's
/// configuration asks for: from `architectures` or `platforms`, x86_64 by default.
pub fn kubevirt_arches<'a>(archs: impl IntoIterator<Item = &'a str>) -> Vec<&'static str> {
    let mut out = Vec::new();
    for a in archs {
        let add: &[&'static str] = match a {
            "amd64" | "x86_64" => &["x86_64"],
            "s390x" => &["s390x"],
            "arm64" | "aarch64" => &["aarch64"],
            "ppc64le" => &["ppc64le"],
            "multi" => &["x86_64", "s390x"],
            _ => &[],
        };
        out.extend_from_slice(add);
    }
    if out.is_empty() {
        out.push("x86_64");
    }
    out.sort();
    out.dedup();
    out
}

/// The KubeVirt container-disk images of the wanted architectures, from the boot-images
/// ConfigMap (`data.stream` is a JSON document).
pub fn kubevirt_images(yaml: &[u8], arches: &[&str], payload: &str) -> Result<BTreeMap<String, String>, ReleaseError> {
    let bad = |m: String| ReleaseError::Payload { payload: payload.to_string(), message: m };
    let text = std::str::from_utf8(yaml).map_err(|e| bad(format!("{BOOTIMAGES}: {e}")))?;
    let cm: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| bad(format!("{BOOTIMAGES}: {e}")))?;
    let stream = cm
        .pointer("/data/stream")
        .and_then(|s| s.as_str())
        .ok_or_else(|| bad(format!("{BOOTIMAGES}: no data.stream")))?;
    let stream: serde_json::Value =
        serde_json::from_str(stream).map_err(|e| bad(format!("{BOOTIMAGES} data.stream: {e}")))?;
    let mut out = BTreeMap::new();
    for a in arches {
        let p = format!("/architectures/{a}/images/kubevirt/digest-ref");
        if let Some(r) = stream.pointer(&p).and_then(|r| r.as_str()) {
            ImageRef::parse(r).map_err(|e| bad(format!("{BOOTIMAGES} {a} kubevirt: {e}")))?;
            out.insert(a.to_string(), r.to_string());
        }
    }
    if out.is_empty() {
        return Err(bad("could not find kubevirt image in this release".into()));
    }
    Ok(out)
}

/// A payload as read: its digest, media type and `release-manifests/` files.
#[derive(Debug)]
pub struct Payload {
    /// Top manifest digest.
    pub digest: String,
    /// Files under `release-manifests/` (path relative to it).
    pub files: BTreeMap<String, Vec<u8>>,
}

/// Fetches a payload's manifests and layers into the cache (they are copied later anyway)
/// and reads `release-manifests/` from its flattened layers. A multi-arch payload is read
/// from its linux/amd64 image, else its first.
pub async fn read(client: &Client, cache: &Cache, reference: &str) -> Result<Payload, ReleaseError> {
    let r = ImageRef::parse(reference)
        .map_err(|e| ReleaseError::Payload { payload: reference.to_string(), message: e.to_string() })?;
    let reg = |e: crate::registry::RegistryError| ReleaseError::Registry {
        what: reference.to_string(),
        message: e.to_string(),
    };
    let digest = fetch::top_digest(client, &r, &format!("release payload {reference}")).await.map_err(reg)?;
    let bad = |m: String| ReleaseError::Payload { payload: reference.to_string(), message: m };
    let mut current = digest.clone();
    let mut layers = None;
    // Nested indexes are followed a few levels, no more.
    for _ in 0..5 {
        let bytes = fetch::manifest(client, cache, &r.registry, &r.path, &current).await.map_err(reg)?;
        let mt = manifest::media_type_of(&bytes, None);
        match manifest::parse(&bytes, &mt).map_err(|e| bad(e.to_string()))? {
            Parsed::Index { children } => {
                let pick = children
                    .iter()
                    .find(|(_, p)| p.as_ref().is_some_and(|(os, a)| os == "linux" && a == "amd64"))
                    .or_else(|| children.first())
                    .ok_or_else(|| bad("empty index".into()))?;
                current = pick.0.digest.clone();
            }
            Parsed::Image { blobs } => {
                layers = Some(blobs.into_iter().skip(1).collect::<Vec<_>>());
                break;
            }
        }
    }
    let layers = layers.ok_or_else(|| bad("indexes nested too deep".into()))?;
    let mut readers = Vec::new();
    for l in &layers {
        fetch::blob_once(client, cache, &r.registry, &r.path, l).await.map_err(reg)?;
        let p = cache.path(&l.digest).map_err(|e| bad(e.to_string()))?;
        readers.push((l.digest.clone(), std::fs::File::open(&p).map_err(|e| bad(format!("{}: {e}", p.display())))?));
    }
    let files = tokio::task::spawn_blocking(move || extract_dir(readers, MANIFESTS_DIR))
        .await
        .map_err(|e| bad(e.to_string()))?
        .map_err(|e| bad(e.to_string()))?;
    Ok(Payload { digest, files: files.into_iter().collect() })
}
