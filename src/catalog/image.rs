//! Catalog images: reading the file-based catalog out of an image's layers, and building the
//! filtered catalog image. Pure: bytes in, bytes out (readers for layers).
//!
//! A rebuilt image is the original plus two layers: whiteouts removing the old catalog and
//! the stale opm cache, then the filtered catalog. Its command serves the catalog without the
//! shipped cache, so opm builds a cache matching the filtered content when the pod starts
//! instead of crash-looping on an integrity check. Layers are deterministic (no timestamps,
//! fixed modes), so the same filter over the same catalog gives the same digest.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde_json::{Value, json};

use crate::image::manifest::sha256_digest;

/// The image label naming the catalog directory.
pub const CONFIGS_LABEL: &str = "operators.operatorframework.io.index.configs.v1";

/// Why a catalog image could not be read or rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The image config is not JSON or lacks the catalog label.
    #[error("catalog image config: {0}")]
    Config(String),
    /// A layer could not be read.
    #[error("catalog image layer {digest}: {message}")]
    Layer {
        /// Layer digest.
        digest: String,
        /// What went wrong.
        message: String,
    },
    /// A manifest could not be read.
    #[error("catalog image manifest: {0}")]
    Manifest(String),
}

/// The catalog directory an image config names (`/configs` when the label is absent), without slashes.
pub fn configs_dir(config: &[u8]) -> Result<String, ImageError> {
    let v: Value = serde_json::from_slice(config).map_err(|e| ImageError::Config(e.to_string()))?;
    let label = v.pointer("/config/Labels").and_then(|l| l.get(CONFIGS_LABEL)).and_then(Value::as_str);
    let dir = label.ok_or_else(|| {
        ImageError::Config(format!(
            "no {CONFIGS_LABEL} label: not a file-based catalog (SQLite catalogs are not supported)"
        ))
    })?;
    Ok(dir.trim_matches('/').to_string())
}

/// Applies gzip-compressed (or plain) tar layers in order, honouring whiteouts, and returns
/// the files under `dir` as (path relative to `dir`, bytes).
pub fn extract_dir<R: Read>(
    layers: impl IntoIterator<Item = (String, R)>,
    dir: &str,
) -> Result<Vec<(String, Vec<u8>)>, ImageError> {
    let prefix = format!("{dir}/");
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (digest, reader) in layers {
        let lerr = |message: String| ImageError::Layer { digest: digest.clone(), message };
        let mut buffered = std::io::BufReader::new(reader);
        let gz = {
            use std::io::BufRead;
            let head = buffered.fill_buf().map_err(|e| lerr(e.to_string()))?;
            head.starts_with(&[0x1f, 0x8b])
        };
        let reader: Box<dyn Read> =
            if gz { Box::new(flate2::read::GzDecoder::new(buffered)) } else { Box::new(buffered) };
        let mut archive = tar::Archive::new(reader);
        for entry in archive.entries().map_err(|e| lerr(e.to_string()))? {
            let mut entry = entry.map_err(|e| lerr(e.to_string()))?;
            let path = entry.path().map_err(|e| lerr(e.to_string()))?.to_string_lossy().into_owned();
            let path = path.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/').to_string();
            let (parent, name) = path.rsplit_once('/').map_or(("", path.as_str()), |(p, n)| (p, n));
            if name == ".wh..wh..opq" {
                let under = format!("{parent}/");
                files.retain(|k, _| !k.starts_with(&under));
                continue;
            }
            if let Some(gone) = name.strip_prefix(".wh.") {
                let gone = if parent.is_empty() { gone.to_string() } else { format!("{parent}/{gone}") };
                let under = format!("{gone}/");
                files.retain(|k, _| k != &gone && !k.starts_with(&under));
                continue;
            }
            if !(path == dir || path.starts_with(&prefix)) {
                continue;
            }
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut bytes = Vec::with_capacity(entry.size() as usize);
                    entry.read_to_end(&mut bytes).map_err(|e| lerr(e.to_string()))?;
                    files.insert(path, bytes);
                }
                // A later layer replacing a file by a directory or link drops the file.
                _ => {
                    files.remove(&path);
                }
            }
        }
    }
    Ok(files.into_iter().filter_map(|(k, v)| k.strip_prefix(&prefix).map(|r| (r.to_string(), v))).collect())
}

/// A blob of a rebuilt image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:` digest.
    pub digest: String,
    /// Media type.
    pub media_type: String,
    /// Content.
    pub bytes: Vec<u8>,
}

/// A rebuilt catalog image: new blobs and manifests, and the top manifest.
#[derive(Clone, Debug)]
pub struct Rebuilt {
    /// New layers and configs.
    pub blobs: Vec<Blob>,
    /// New per-platform manifests (empty for a single image).
    pub manifests: Vec<Blob>,
    /// The top manifest (an index for a multi-arch catalog).
    pub top: Blob,
}

/// What the rebuild needs of one platform image of the original catalog.
pub struct SourceImage {
    /// Manifest bytes.
    pub manifest: Vec<u8>,
    /// Config bytes.
    pub config: Vec<u8>,
}

/// A reproducible gzip tar of `(path, content)` entries (`None` is a directory): (bytes, diff_id).
pub fn tar_gz(entries: &[(String, Option<&[u8]>)]) -> (Vec<u8>, String) {
    let mut t = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        match content {
            Some(bytes) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(bytes.len() as u64);
                t.append_data(&mut h, path, *bytes).expect("tar into memory");
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                t.append_data(&mut h, format!("{path}/"), std::io::empty()).expect("tar into memory");
            }
        }
    }
    let raw = t.into_inner().expect("tar into memory");
    let diff_id = sha256_digest(&raw);
    let mut gz = flate2::GzBuilder::new().mtime(0).write(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).expect("gzip into memory");
    (gz.finish().expect("gzip into memory"), diff_id)
}

/// The `--cache-dir` an opm command line names, without slashes.
fn cache_dir(cmd: &[Value]) -> Option<String> {
    let args: Vec<&str> = cmd.iter().filter_map(Value::as_str).collect();
    args.iter().enumerate().find_map(|(i, a)| {
        a.strip_prefix("--cache-dir=")
            .map(str::to_string)
            .or_else(|| (*a == "--cache-dir").then(|| args.get(i + 1).map(|s| s.to_string())).flatten())
            .map(|d| d.trim_matches('/').to_string())
    })
}

/// Rebuilds one platform image with `files` (paths relative to the catalog dir) as its catalog.
fn rebuild_image(src: &SourceImage, files: &[(String, Vec<u8>)], blobs: &mut Vec<Blob>) -> Result<Blob, ImageError> {
    let config: Value = serde_json::from_slice(&src.config).map_err(|e| ImageError::Config(e.to_string()))?;
    let dir = configs_dir(&src.config)?;
    let cmd = config.pointer("/config/Cmd").and_then(Value::as_array).cloned().unwrap_or_default();
    let mut whiteouts: Vec<(String, Option<&[u8]>)> = vec![(wh(&dir), Some(&[]))];
    if let Some(cache) = cache_dir(&cmd) {
        whiteouts.push((wh(&cache), Some(&[])));
    }
    let mut content: Vec<(String, Option<&[u8]>)> = vec![(dir.clone(), None)];
    let mut dirs = std::collections::BTreeSet::new();
    for (path, bytes) in files {
        let mut parent = String::new();
        for part in path.split('/').collect::<Vec<_>>().split_last().map(|(_, d)| d.to_vec()).unwrap_or_default() {
            parent = if parent.is_empty() { part.to_string() } else { format!("{parent}/{part}") };
            if dirs.insert(parent.clone()) {
                content.push((format!("{dir}/{parent}"), None));
            }
        }
        content.push((format!("{dir}/{path}"), Some(bytes.as_slice())));
    }
    let mut new_layers = Vec::new();
    for entries in [whiteouts, content] {
        new_layers.push(tar_gz(&entries));
    }
    let history = ["remove the original catalog and its opm cache", "add the filtered catalog"]
        .map(|what| json!({"created_by": format!("imageset-operator: {what}"), "comment": "filtered catalog"}));
    // opm builds its cache for the filtered content at start; any opm version accepts this.
    append_layers(src, new_layers, json!(["serve", format!("/{dir}")]), &history, blobs)
}

/// Appends gzip layers `(bytes, diff_id)` to an image, with history entries and a new Cmd;
/// new blobs go to `blobs`, the new manifest is returned. Media types follow the original
/// (Docker or OCI).
pub fn append_layers(
    src: &SourceImage,
    layers: Vec<(Vec<u8>, String)>,
    cmd: Value,
    history: &[Value],
    blobs: &mut Vec<Blob>,
) -> Result<Blob, ImageError> {
    let mut manifest: Value = serde_json::from_slice(&src.manifest).map_err(|e| ImageError::Manifest(e.to_string()))?;
    let mut config: Value = serde_json::from_slice(&src.config).map_err(|e| ImageError::Config(e.to_string()))?;
    let docker = manifest.get("mediaType").and_then(Value::as_str).is_some_and(|m| m.contains("docker"))
        || manifest.pointer("/config/mediaType").and_then(Value::as_str).is_some_and(|m| m.contains("docker"));
    let layer_type = if docker {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    } else {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    };
    let mut new_layers = Vec::new();
    for (gz, diff_id) in layers {
        let blob = Blob { digest: sha256_digest(&gz), media_type: layer_type.into(), bytes: gz };
        new_layers.push((json!({"mediaType": layer_type, "digest": blob.digest, "size": blob.bytes.len()}), diff_id));
        if !blobs.iter().any(|b| b.digest == blob.digest) {
            blobs.push(blob);
        }
    }
    let diff_ids = config
        .pointer_mut("/rootfs/diff_ids")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| ImageError::Config("no rootfs.diff_ids".into()))?;
    diff_ids.extend(new_layers.iter().map(|(_, d)| Value::String(d.clone())));
    if let Some(h) = config.get_mut("history").and_then(Value::as_array_mut) {
        h.extend(history.iter().cloned());
    }
    if let Some(c) = config.get_mut("config").and_then(Value::as_object_mut) {
        c.insert("Cmd".into(), cmd);
    }
    let config_bytes = serde_json::to_vec(&config).map_err(|e| ImageError::Config(e.to_string()))?;
    let config_type = manifest.pointer("/config/mediaType").and_then(Value::as_str).unwrap_or_default().to_string();
    let config_blob = Blob { digest: sha256_digest(&config_bytes), media_type: config_type, bytes: config_bytes };
    manifest["config"]["digest"] = json!(config_blob.digest);
    manifest["config"]["size"] = json!(config_blob.bytes.len());
    blobs.push(config_blob);
    let layers = manifest
        .get_mut("layers")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| ImageError::Manifest("no layers".into()))?;
    layers.extend(new_layers.into_iter().map(|(d, _)| d));
    let bytes = serde_json::to_vec(&manifest).map_err(|e| ImageError::Manifest(e.to_string()))?;
    let media_type = manifest.get("mediaType").and_then(Value::as_str).unwrap_or(if docker {
        "application/vnd.docker.distribution.manifest.v2+json"
    } else {
        "application/vnd.oci.image.manifest.v1+json"
    });
    Ok(Blob { digest: sha256_digest(&bytes), media_type: media_type.to_string(), bytes })
}

fn wh(path: &str) -> String {
    match path.rsplit_once('/') {
        Some((parent, name)) => format!("{parent}/.wh.{name}"),
        None => format!(".wh.{path}"),
    }
}

/// Rebuilds a catalog image. `index` is the original top index (None for a single image);
/// `images` are its platform images in index order (index entries without an image are dropped).
pub fn rebuild(
    index: Option<&[u8]>,
    images: &[(String, SourceImage)],
    files: &[(String, Vec<u8>)],
) -> Result<Rebuilt, ImageError> {
    rebuild_with(index, images, |img, blobs| rebuild_image(img, files, blobs))
}

/// Rebuilds every platform image with `each` (which returns the new manifest and adds new
/// blobs), then the index over them; index entries without an image are dropped.
pub fn rebuild_with(
    index: Option<&[u8]>,
    images: &[(String, SourceImage)],
    mut each: impl FnMut(&SourceImage, &mut Vec<Blob>) -> Result<Blob, ImageError>,
) -> Result<Rebuilt, ImageError> {
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    let mut by_old: BTreeMap<&str, Blob> = BTreeMap::new();
    for (old_digest, img) in images {
        let m = each(img, &mut blobs)?;
        by_old.insert(old_digest, m);
    }
    let Some(index) = index else {
        let top = by_old.into_values().next().ok_or_else(|| ImageError::Manifest("no image".into()))?;
        return Ok(Rebuilt { blobs, manifests, top });
    };
    let mut idx: Value = serde_json::from_slice(index).map_err(|e| ImageError::Manifest(e.to_string()))?;
    let entries = idx
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| ImageError::Manifest("index without manifests".into()))?;
    entries.retain_mut(|e| {
        let old = e.get("digest").and_then(Value::as_str).unwrap_or_default().to_string();
        match by_old.get(old.as_str()) {
            Some(m) => {
                e["digest"] = json!(m.digest);
                e["size"] = json!(m.bytes.len());
                e["mediaType"] = json!(m.media_type);
                true
            }
            None => false,
        }
    });
    manifests.extend(by_old.into_values());
    let bytes = serde_json::to_vec(&idx).map_err(|e| ImageError::Manifest(e.to_string()))?;
    let media_type = idx.get("mediaType").and_then(Value::as_str).unwrap_or("application/vnd.oci.image.index.v1+json");
    let top = Blob { digest: sha256_digest(&bytes), media_type: media_type.to_string(), bytes };
    Ok(Rebuilt { blobs, manifests, top })
}
