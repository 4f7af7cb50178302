//! Image layers and images for the test world, built and read independently of the code
//! under test: reproducible tar layers (whiteouts included), images pushed with a config and
//! labels, and [`extract_image`], which pulls an image into a directory applying whiteouts.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde_json::{Value, json};

use super::content::{Format, Pushed, Pusher};
use super::opm::{split_ref, text, walk_all};
use super::registry::Registry;
use super::sha256;

/// A gzip-compressed tar layer.
pub struct Layer {
    /// The compressed bytes (the blob).
    pub gz: Vec<u8>,
    /// `sha256:` of the uncompressed tar (the config's diff_id).
    pub diff_id: String,
}

/// A reproducible layer from `(path, content)` entries: `None` content is a directory.
/// Paths are taken as given, so whiteouts (`.wh.name`, `.wh..wh..opq`) can be written.
pub fn layer(entries: &[(&str, Option<&[u8]>)]) -> Layer {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let (kind, mode, bytes, path) = match content {
            Some(bytes) => (tar::EntryType::Regular, 0o644, *bytes, path.to_string()),
            None => (tar::EntryType::Directory, 0o755, &[][..], format!("{}/", path.trim_end_matches('/'))),
        };
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(bytes.len() as u64);
        b.append_data(&mut h, path, bytes).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    Layer { gz: gz.finish().unwrap(), diff_id: sha256(&tar) }
}

/// A layer of `root/top` and everything below it, with its parent directories.
pub(super) fn tar_tree(root: &Path, top: &str) -> Layer {
    let mut owned: Vec<(String, Option<Vec<u8>>)> = Vec::new();
    let mut parent = String::new();
    for part in top.split('/') {
        parent = if parent.is_empty() { part.to_string() } else { format!("{parent}/{part}") };
        owned.push((parent.clone(), None));
    }
    for p in walk_all(&root.join(top), true) {
        let rel = p.strip_prefix(root).unwrap().to_str().expect("UTF-8 path").to_string();
        owned.push((rel, if p.is_dir() { None } else { Some(std::fs::read(&p).unwrap()) }));
    }
    let entries: Vec<(&str, Option<&[u8]>)> = owned.iter().map(|(p, c)| (p.as_str(), c.as_deref())).collect();
    layer(&entries)
}

/// Pushes an image of `layers` with `config` as its container config, for linux on each of
/// `archs` (an index over them when more than one; the layers are shared).
pub fn push_image(
    reg: &Registry,
    repo: &str,
    tag: &str,
    format: Format,
    archs: &[&str],
    layers: &[Layer],
    config: Value,
) -> Pushed {
    // The same media types as content.rs's (private) Format methods.
    let (manifest_type, index_type, config_type, layer_type) = match format {
        Format::Docker => (
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        ),
        Format::Oci => (
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        ),
    };
    let push = Pusher::new(reg);
    let mut blobs: Vec<String> = layers.iter().map(|l| push.blob(repo, &l.gz)).collect();
    let descs: Vec<Value> =
        layers.iter().map(|l| json!({"mediaType": layer_type, "digest": sha256(&l.gz), "size": l.gz.len()})).collect();
    let mut children = Vec::new();
    for arch in archs {
        let cfg = serde_json::to_vec(&json!({
            "architecture": arch, "os": "linux", "created": "1970-01-01T00:00:00Z", "config": config,
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>()},
        }))
        .unwrap();
        blobs.push(push.blob(repo, &cfg));
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2, "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": sha256(&cfg), "size": cfg.len()},
            "layers": descs,
        }))
        .unwrap();
        children.push((*arch, manifest));
    }
    let (bytes, media_type) = if let [(_, only)] = children.as_slice() {
        (only.clone(), manifest_type)
    } else {
        let mut entries = Vec::new();
        for (arch, m) in &children {
            let d = push.manifest(repo, &sha256(m), m, manifest_type);
            entries.push(json!({"mediaType": manifest_type, "digest": d, "size": m.len(),
                "platform": {"os": "linux", "architecture": arch}}));
        }
        let index = json!({"schemaVersion": 2, "mediaType": index_type, "manifests": entries});
        (serde_json::to_vec_pretty(&index).unwrap(), index_type)
    };
    let digest = push.manifest(repo, tag, &bytes, media_type);
    blobs.sort();
    blobs.dedup();
    Pushed { repo: repo.into(), tag: tag.into(), digest, media_type: media_type.into(), manifest: bytes, blobs }
}

/// The parts of an image config that say how to run it.
#[derive(Clone, Debug)]
pub struct ImageConfig {
    /// `config.Entrypoint`.
    pub entrypoint: Vec<String>,
    /// `config.Cmd`.
    pub cmd: Vec<String>,
    /// `config.Labels`.
    pub labels: BTreeMap<String, String>,
    /// `os` and `architecture`.
    pub platform: (String, String),
    /// The whole config.
    pub raw: Value,
}

/// Pulls `reference` (`host/repo:tag`, `host/repo@digest`, or the same without this
/// registry's host) from `reg` over the registry API, checking every digest; for an index the
/// linux/amd64 entry (or the first). Applies its layers in order into `dest`, honouring OCI
/// whiteouts, and returns its config.
pub fn extract_image(reg: &Registry, reference: &str, dest: &Path) -> ImageConfig {
    let reference = reference.strip_prefix(&format!("{}/", reg.host)).unwrap_or(reference);
    let (repo, tag, digest) = split_ref(reference);
    let http = reg.http();
    let get = |kind: &str, r: &str| -> Vec<u8> {
        let resp = reg
            .authorize(repo, http.get(format!("{}/v2/{repo}/{kind}/{r}", reg.base_url())))
            .header("Accept", imageset_operator::image::manifest::ACCEPT)
            .send()
            .unwrap_or_else(|e| panic!("GET {repo} {kind} {r}: {e}"));
        assert!(resp.status().is_success(), "GET {repo} {kind} {r}: {}", resp.status());
        let bytes = resp.bytes().unwrap().to_vec();
        if r.starts_with("sha256:") {
            assert_eq!(sha256(&bytes), r, "{repo} {kind} {r} does not match its digest");
        }
        bytes
    };
    let mut manifest: Value = serde_json::from_slice(&get("manifests", digest.or(tag).unwrap_or("latest"))).unwrap();
    if let Some(list) = manifest["manifests"].as_array() {
        let pick = list
            .iter()
            .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == "amd64")
            .or(list.first())
            .expect("an index with entries");
        manifest = serde_json::from_slice(&get("manifests", pick["digest"].as_str().unwrap())).unwrap();
    }
    let raw: Value = serde_json::from_slice(&get("blobs", manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let diff_ids = raw["rootfs"]["diff_ids"].as_array().cloned().unwrap_or_default();
    let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    assert_eq!(diff_ids.len(), layers.len(), "config diff_ids and manifest layers differ in number");
    std::fs::create_dir_all(dest).unwrap();
    for (l, diff_id) in layers.iter().zip(&diff_ids) {
        let blob = get("blobs", l["digest"].as_str().unwrap());
        let tar = if blob.starts_with(&[0x1f, 0x8b]) {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&blob[..]).read_to_end(&mut out).expect("gunzip layer");
            out
        } else {
            blob
        };
        assert_eq!(Value::String(sha256(&tar)), *diff_id, "layer {} has another diff_id", l["digest"]);
        apply_layer(&tar, dest);
    }
    let c = &raw["config"];
    let strings = |k: &str| serde_json::from_value::<Vec<String>>(c[k].clone()).unwrap_or_default();
    ImageConfig {
        entrypoint: strings("Entrypoint"),
        cmd: strings("Cmd"),
        labels: serde_json::from_value(c["Labels"].clone()).unwrap_or_default(),
        platform: (text(&raw["os"]), text(&raw["architecture"])),
        raw,
    }
}

/// A layer's entry path made relative and checked to stay inside the root.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            other => panic!("layer entry {} leaves the root ({other:?})", path.display()),
        }
    }
    out
}

fn remove(p: &Path) {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(p).unwrap(),
        Ok(_) => std::fs::remove_file(p).unwrap(),
        Err(_) => {}
    }
}

/// Applies one uncompressed layer: whiteouts first, against the lower layers only (an opaque
/// directory hides what lies below it, not what this layer puts in it), then the entries.
fn apply_layer(tar: &[u8], dest: &Path) {
    for e in tar::Archive::new(tar).entries().unwrap() {
        let path = clean(&e.unwrap().path().unwrap());
        let (Some(name), parent) = (path.file_name().and_then(|n| n.to_str()), path.parent()) else { continue };
        let parent = dest.join(parent.unwrap_or(Path::new("")));
        if name == ".wh..wh..opq" {
            for child in std::fs::read_dir(&parent).into_iter().flatten() {
                remove(&child.unwrap().path());
            }
        } else if let Some(hidden) = name.strip_prefix(".wh.") {
            remove(&parent.join(hidden));
        }
    }
    for e in tar::Archive::new(tar).entries().unwrap() {
        let mut e = e.unwrap();
        let path = clean(&e.path().unwrap());
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(".wh.")) {
            continue;
        }
        let target = dest.join(&path);
        let is_dir = e.header().entry_type().is_dir();
        if std::fs::symlink_metadata(&target).is_ok_and(|m| !(is_dir && m.is_dir())) {
            remove(&target);
        }
        assert!(e.unpack_in(dest).unwrap(), "layer entry {} not unpacked", path.display());
    }
}
