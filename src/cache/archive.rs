//! Mirror-to-disk archives: `mirror_NNNNNN.tar` files holding `blobs/sha256/<hex>` members and,
//! first, `imageset-archive.json` (the images of the run and the blobs of this part with their
//! sizes). A run writes only what earlier archives in the directory do not hold (incremental)
//! and splits parts at the archive size. Reading checks everything before use: each member's
//! digest and size, only regular files at expected names (no traversal, no links), sizes
//! bounded.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Cache, CacheError};
use crate::image::manifest::Descriptor;

/// The first member of every archive.
pub const CONTENTS: &str = "imageset-archive.json";
const FORMAT: &str = "imageset-operator.archive/v1";
/// Largest blob an archive may declare (1 TiB): anything bigger is a corrupt or hostile file.
const MAX_BLOB: u64 = 1 << 40;
/// Largest contents member.
const MAX_CONTENTS: u64 = 64 << 20;

/// An image recorded in an archive.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct ArchivedImage {
    /// Name under the disk root, without transport (`localhost:55000/path:tag`).
    pub name: String,
    /// The upstream reference.
    pub origin: String,
    /// Manifest digest.
    pub digest: String,
    /// Manifest media type.
    pub media_type: String,
    /// What the image is part of (archives written before this field have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<crate::image::ImageKind>,
}

/// A blob in one part.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArchivedBlob {
    /// Digest.
    pub digest: String,
    /// Size.
    pub size: u64,
}

/// A release signature carried in an archive, so that disk to mirror needs neither the
/// signature store nor the working directory of the run that wrote it (it is checked against
/// the trusted keys again there).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct ArchivedSignature {
    /// Digest of the release payload.
    pub digest: String,
    /// The signature, base64.
    pub signature: String,
}

/// `imageset-archive.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Contents {
    /// Format marker.
    pub format: String,
    /// Sequence number of this part.
    pub sequence: u32,
    /// Every image of the run that wrote this part.
    pub images: Vec<ArchivedImage>,
    /// Blobs in this part.
    pub blobs: Vec<ArchivedBlob>,
    /// The release signatures of the run that wrote this part (archives written before this
    /// field have none: their signatures are in `working-dir/signatures` beside them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<ArchivedSignature>,
    /// The update graphs the releases were selected from (`<arch>-<channel>.json` -> the
    /// graph), so that disk to mirror selects again from them (archives written before this
    /// field have none: every release they hold is imported).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub graphs: BTreeMap<String, String>,
}

/// Why an archive could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// I/O.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Cache trouble.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// Content that must not be trusted.
    #[error("{path}: {message}")]
    Invalid {
        /// Archive.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io { path: path.to_path_buf(), source }
}

fn invalid(path: &Path, message: impl Into<String>) -> ArchiveError {
    ArchiveError::Invalid { path: path.to_path_buf(), message: message.into() }
}

/// oc-mirror's words for a directory without archives (its tests grep them).
pub fn no_archives(dir: &Path) -> String {
    format!(r#"no tar archives matching "mirror_[0-9]{{6}}\\.tar" found in {:?}"#, dir.display().to_string())
}

/// Archives in a directory, in sequence order.
pub fn list(dir: &Path) -> Result<Vec<(u32, PathBuf)>, ArchiveError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(ArchiveError::Io { path: dir.to_path_buf(), source: e }),
    };
    for e in rd {
        let p = e.map_err(io(dir))?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if let Some(n) = name.strip_prefix("mirror_").and_then(|r| r.strip_suffix(".tar")).and_then(|n| n.parse().ok())
        {
            out.push((n, p));
        }
    }
    out.sort();
    Ok(out)
}

/// Reads only the contents member of an archive (cheap: it is the first member).
pub fn read_contents(path: &Path) -> Result<Contents, ArchiveError> {
    let f = File::open(path).map_err(io(path))?;
    let mut ar = tar::Archive::new(BufReader::new(f));
    let mut entries = ar.entries().map_err(io(path))?;
    let mut first = entries
        .next()
        .ok_or_else(|| invalid(path, format!("empty archive file {:?}", path.display().to_string())))?
        .map_err(io(path))?;
    if first.path().map_err(io(path))?.as_os_str() != CONTENTS || first.size() > MAX_CONTENTS {
        return Err(invalid(path, format!("first member is not {CONTENTS}")));
    }
    let mut buf = Vec::new();
    first.read_to_end(&mut buf).map_err(io(path))?;
    let c: Contents = serde_json::from_slice(&buf).map_err(|e| invalid(path, format!("{CONTENTS}: {e}")))?;
    if c.format != FORMAT {
        return Err(invalid(path, format!("unknown archive format {:?}", c.format)));
    }
    Ok(c)
}

/// Writes the parts for a run: blobs not in earlier archives, split at `part_limit` bytes;
/// each part lists the run's images and release signatures. Returns the paths written.
pub fn write(
    dir: &Path,
    cache: &Cache,
    (images, signatures, graphs): (&[ArchivedImage], &[ArchivedSignature], &BTreeMap<String, String>),
    blobs: &[Descriptor],
    part_limit: u64,
) -> Result<Vec<PathBuf>, ArchiveError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let existing = list(dir)?;
    let mut archived = BTreeSet::new();
    for (_, p) in &existing {
        archived.extend(read_contents(p)?.blobs.into_iter().map(|b| b.digest));
    }
    let mut todo: BTreeMap<String, u64> = BTreeMap::new();
    for b in blobs {
        if !archived.contains(&b.digest) {
            // The size of what the cache holds, not what a descriptor claims.
            let path = cache.path(&b.digest)?;
            let size = std::fs::metadata(&path).map_err(io(&path))?.len();
            todo.insert(b.digest.clone(), size);
        }
    }
    let mut parts: Vec<Vec<ArchivedBlob>> = vec![Vec::new()];
    let mut used = 0u64;
    for (digest, size) in todo {
        if used > 0 && used + size > part_limit {
            parts.push(Vec::new());
            used = 0;
        }
        used += size;
        parts.last_mut().expect("one part at least").push(ArchivedBlob { digest, size });
    }
    let mut seq = existing.last().map(|(n, _)| *n).unwrap_or(0);
    let mut written = Vec::new();
    for part in parts {
        seq += 1;
        let path = dir.join(format!("mirror_{seq:06}.tar"));
        let tmp = dir.join(format!(".mirror_{seq:06}.tar.tmp"));
        let contents = Contents {
            format: FORMAT.into(),
            sequence: seq,
            images: images.to_vec(),
            blobs: part.clone(),
            signatures: signatures.to_vec(),
            graphs: graphs.clone(),
        };
        let file = File::create(&tmp).map_err(io(&tmp))?;
        let mut b = tar::Builder::new(BufWriter::with_capacity(1 << 20, file));
        let body = serde_json::to_vec_pretty(&contents).expect("contents serialise");
        append(&mut b, CONTENTS, body.len() as u64, body.as_slice()).map_err(io(&tmp))?;
        for blob in &part {
            let src = cache.path(&blob.digest)?;
            let f = File::open(&src).map_err(io(&src))?;
            let name = format!("blobs/sha256/{}", &blob.digest["sha256:".len()..]);
            append(&mut b, &name, blob.size, f).map_err(io(&src))?;
        }
        let w = b.into_inner().map_err(io(&tmp))?;
        let f = w.into_inner().map_err(|e| ArchiveError::Io { path: tmp.clone(), source: e.into_error() })?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        written.push(path);
    }
    Ok(written)
}

fn append<W: Write>(b: &mut tar::Builder<W>, name: &str, size: u64, data: impl Read) -> std::io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data)
}

/// Unpacks every archive in `dir` into the cache, verifying each member, and returns the
/// images they name (later parts win on equal names).
pub fn import(dir: &Path, cache: &Cache) -> Result<HashMap<String, (String, String)>, ArchiveError> {
    let parts = list(dir)?;
    if parts.is_empty() {
        return Err(invalid(dir, no_archives(dir)));
    }
    let mut images = HashMap::new();
    for (_, path) in &parts {
        let contents = read_contents(path)?;
        let declared: HashMap<&str, u64> = contents.blobs.iter().map(|b| (b.digest.as_str(), b.size)).collect();
        if let Some(b) = contents.blobs.iter().find(|b| b.size > MAX_BLOB) {
            return Err(invalid(path, format!("blob {} declares an absurd size {}", b.digest, b.size)));
        }
        let f = File::open(path).map_err(io(path))?;
        let mut ar = tar::Archive::new(BufReader::with_capacity(1 << 20, f));
        let mut seen = BTreeSet::new();
        for (i, entry) in ar.entries().map_err(io(path))?.enumerate() {
            let entry = entry.map_err(io(path))?;
            let name = entry.path().map_err(io(path))?.to_string_lossy().into_owned();
            if i == 0 && name == CONTENTS {
                continue;
            }
            if !entry.header().entry_type().is_file() {
                return Err(invalid(path, format!("member {name:?} is not a regular file")));
            }
            let hex = name
                .strip_prefix("blobs/sha256/")
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
                .ok_or_else(|| invalid(path, format!("unexpected member {name:?}")))?;
            let digest = format!("sha256:{hex}");
            let size = entry.size();
            if declared.get(digest.as_str()) != Some(&size) {
                return Err(invalid(path, format!("member {name:?} ({size} bytes) is not declared in {CONTENTS}")));
            }
            if !cache.has(&digest) {
                cache.put_reader(&digest, entry.take(size)).map_err(|e| match e {
                    CacheError::Mismatch { .. } => invalid(path, format!("member {name:?}: {e}")),
                    other => ArchiveError::Cache(other),
                })?;
            }
            seen.insert(digest);
        }
        if let Some(missing) = declared.keys().find(|d| !seen.contains(**d)) {
            return Err(invalid(path, format!("declared blob {missing} is missing (truncated archive?)")));
        }
        for img in contents.images {
            images.insert(img.name, (img.digest, img.media_type));
        }
    }
    Ok(images)
}

/// Reads the blobs `wanted` (small ones: chart archives, their manifests and configs) out of
/// the archives in `dir` without unpacking the rest (tar headers only, seeking past other
/// members); each is checked against its digest. Blobs found in no part are absent from the
/// answer; one larger than `max` bytes is refused.
pub fn read_blobs(dir: &Path, wanted: &BTreeSet<String>, max: u64) -> Result<HashMap<String, Vec<u8>>, ArchiveError> {
    let mut found = HashMap::new();
    for (_, path) in list(dir)? {
        if found.len() == wanted.len() {
            break;
        }
        let contents = read_contents(&path)?;
        if !contents.blobs.iter().any(|b| wanted.contains(&b.digest) && !found.contains_key(&b.digest)) {
            continue;
        }
        let f = File::open(&path).map_err(io(&path))?;
        let mut ar = tar::Archive::new(BufReader::new(f));
        for entry in ar.entries_with_seek().map_err(io(&path))? {
            let mut entry = entry.map_err(io(&path))?;
            let name = entry.path().map_err(io(&path))?.to_string_lossy().into_owned();
            let Some(hex) = name.strip_prefix("blobs/sha256/") else { continue };
            let digest = format!("sha256:{hex}");
            if !wanted.contains(&digest) || found.contains_key(&digest) || !entry.header().entry_type().is_file() {
                continue;
            }
            if entry.size() > max {
                return Err(invalid(&path, format!("member {name:?} is larger than {max} bytes")));
            }
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes).map_err(io(&path))?;
            let actual = crate::image::manifest::sha256_digest(&bytes);
            if actual != digest {
                return Err(invalid(&path, format!("member {name:?} does not match its digest ({actual})")));
            }
            found.insert(digest, bytes);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_blobs_are_read_out_of_the_parts_that_hold_them_and_checked() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::open(&tmp.path().join("cache")).unwrap().without_fsync();
        let blobs: Vec<Vec<u8>> = (0..4u8).map(|i| vec![i; 1000 + i as usize]).collect();
        let descs: Vec<Descriptor> = blobs
            .iter()
            .map(|b| {
                let digest = crate::image::manifest::sha256_digest(b);
                cache.put(&digest, b).unwrap();
                Descriptor { digest, size: b.len() as u64, media_type: String::new() }
            })
            .collect();
        let dir = tmp.path().join("archives");
        // Two parts: each blob is in one of them.
        let parts = write(&dir, &cache, (&[], &[], &BTreeMap::new()), &descs, 2000).unwrap();
        assert!(parts.len() > 1, "{parts:?}");
        let wanted: BTreeSet<String> = [&descs[0], &descs[3]].iter().map(|d| d.digest.clone()).collect();
        let got = read_blobs(&dir, &wanted, 1 << 20).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[&descs[3].digest], blobs[3]);
        let absent: BTreeSet<String> = [crate::image::manifest::sha256_digest(b"absent")].into();
        assert!(read_blobs(&dir, &absent, 1 << 20).unwrap().is_empty());
        assert!(read_blobs(&dir, &wanted, 10).is_err(), "a member above the limit is refused");
    }
}
