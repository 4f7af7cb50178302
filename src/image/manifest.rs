//! Manifests as the copy engine sees them: which blobs and child manifests one names, and the
//! sparse index that keeps only some platforms. Pure; parsing rides on oci-client's types.

use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
    OciImageIndex, OciImageManifest,
};
use sha2::{Digest as _, Sha256};

use super::PlatformSelector;

/// Every manifest media type we accept, for `Accept` headers.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Descriptor {
    /// `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Media type.
    pub media_type: String,
}

/// What a manifest refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// An image manifest: its config and layers (blobs to copy first).
    Image {
        /// Config then layers; foreign layers (with `urls`) are left out.
        blobs: Vec<Descriptor>,
    },
    /// An index or manifest list: child manifests, with their platforms.
    Index {
        /// Children in order.
        children: Vec<(Descriptor, Option<(String, String)>)>,
    },
}

/// Why a manifest is unusable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// Not one of the four manifest kinds.
    #[error("unsupported manifest media type {0:?} (schema 1 and unknown kinds are not mirrored)")]
    MediaType(String),
    /// Bad JSON.
    #[error("malformed manifest: {0}")]
    Malformed(String),
    /// A descriptor with a bad digest or size.
    #[error("manifest names an invalid digest {0:?}")]
    Digest(String),
}

/// `sha256:<hex>` of bytes.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The media type of raw manifest bytes: the `mediaType` field, else the registry's header.
pub fn media_type_of(bytes: &[u8], header: Option<&str>) -> String {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Option<Probe> = serde_json::from_slice(bytes).ok();
    match probe {
        Some(Probe { media_type: Some(m), .. }) => m,
        Some(Probe { media_type: None, manifests: Some(_) }) => OCI_IMAGE_INDEX_MEDIA_TYPE.to_string(),
        _ => header
            .map(|h| h.split(';').next().unwrap_or(h).trim().to_string())
            .unwrap_or_else(|| OCI_IMAGE_MEDIA_TYPE.into()),
    }
}

/// True for an index or manifest list.
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_IMAGE_INDEX_MEDIA_TYPE || media_type == IMAGE_MANIFEST_LIST_MEDIA_TYPE
}

fn checked(digest: &str, size: i64, media_type: &str) -> Result<Descriptor, ManifestError> {
    if !crate::image::reference::is_digest(digest) || !digest.starts_with("sha256:") || size < 0 {
        return Err(ManifestError::Digest(digest.to_string()));
    }
    Ok(Descriptor { digest: digest.to_string(), size: size as u64, media_type: media_type.to_string() })
}

/// Parses a manifest of the given media type.
pub fn parse(bytes: &[u8], media_type: &str) -> Result<Parsed, ManifestError> {
    let bad = |e: serde_json::Error| ManifestError::Malformed(e.to_string());
    if is_index(media_type) {
        let index: OciImageIndex = serde_json::from_slice(bytes).map_err(bad)?;
        let children = index
            .manifests
            .iter()
            .map(|m| {
                let platform = m.platform.as_ref().map(|p| (p.os.to_string(), p.architecture.to_string()));
                checked(&m.digest, m.size, &m.media_type).map(|d| (d, platform))
            })
            .collect::<Result<_, _>>()?;
        Ok(Parsed::Index { children })
    } else if media_type == OCI_IMAGE_MEDIA_TYPE || media_type == IMAGE_MANIFEST_MEDIA_TYPE {
        let m: OciImageManifest = serde_json::from_slice(bytes).map_err(bad)?;
        let mut blobs = vec![checked(&m.config.digest, m.config.size, &m.config.media_type)?];
        for l in &m.layers {
            if l.urls.as_ref().is_some_and(|u| !u.is_empty()) {
                continue;
            }
            blobs.push(checked(&l.digest, l.size, &l.media_type)?);
        }
        Ok(Parsed::Image { blobs })
    } else {
        Err(ManifestError::MediaType(media_type.to_string()))
    }
}

/// Keeps only the children of an index whose os/architecture are listed. Returns the new
/// bytes (other fields untouched) or `None` when every child is kept (the original is copied
/// byte for byte then). Errors when no child matches.
pub fn sparse_index(bytes: &[u8], keep: &[PlatformSelector]) -> Result<Option<Vec<u8>>, ManifestError> {
    let bad = |e: serde_json::Error| ManifestError::Malformed(e.to_string());
    let mut v: serde_json::Value = serde_json::from_slice(bytes).map_err(bad)?;
    let Some(list) = v.get_mut("manifests").and_then(|m| m.as_array_mut()) else {
        return Err(ManifestError::Malformed("index without manifests".into()));
    };
    let before = list.len();
    list.retain(|m| {
        let p = &m["platform"];
        keep.iter().any(|k| p["os"].as_str() == Some(&k.os) && p["architecture"].as_str() == Some(&k.architecture))
    });
    if list.is_empty() {
        let wanted: Vec<String> = keep.iter().map(|k| format!("{}/{}", k.os, k.architecture)).collect();
        return Err(ManifestError::Malformed(format!("no manifest for platforms {}", wanted.join(", "))));
    }
    if list.len() == before {
        return Ok(None);
    }
    serde_json::to_vec_pretty(&v).map(Some).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Vec<u8> {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_IMAGE_INDEX_MEDIA_TYPE,
            "manifests": [
                {"mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": d('a'), "size": 10, "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": OCI_IMAGE_MEDIA_TYPE, "digest": d('b'), "size": 11, "platform": {"os": "linux", "architecture": "arm64"}},
            ],
            "annotations": {"keep": "me"}
        }))
        .unwrap()
    }

    #[test]
    fn sparse_index_keeps_listed_platforms_and_other_fields() {
        let amd = [PlatformSelector { os: "linux".into(), architecture: "amd64".into() }];
        let out = sparse_index(&index(), &amd).unwrap().expect("changed");
        let Parsed::Index { children } = parse(&out, OCI_IMAGE_INDEX_MEDIA_TYPE).unwrap() else { panic!() };
        assert_eq!(children.len(), 1);
        assert_eq!(children[0].1, Some(("linux".into(), "amd64".into())));
        assert!(String::from_utf8(out).unwrap().contains("\"keep\""));
        let both = [amd[0].clone(), PlatformSelector { os: "linux".into(), architecture: "arm64".into() }];
        assert_eq!(sparse_index(&index(), &both).unwrap(), None, "all kept: original bytes");
        let s390 = [PlatformSelector { os: "linux".into(), architecture: "s390x".into() }];
        assert!(sparse_index(&index(), &s390).unwrap_err().to_string().contains("linux/s390x"));
    }

    #[test]
    fn media_type_comes_from_the_body_first() {
        assert_eq!(media_type_of(&index(), Some("text/plain")), OCI_IMAGE_INDEX_MEDIA_TYPE);
        assert_eq!(media_type_of(br#"{"manifests":[]}"#, None), OCI_IMAGE_INDEX_MEDIA_TYPE);
        assert_eq!(media_type_of(b"{}", Some("application/x; charset=utf-8")), "application/x");
        assert!(matches!(parse(b"{}", "application/x"), Err(ManifestError::MediaType(_))));
    }
}
