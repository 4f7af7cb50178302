//! Platform releases (`mirror.platform`): versions resolved from the Cincinnati update graph,
//! each payload's signature verified, its component images read from
//! `release-manifests/image-references`, and the graph-data image built when asked.

pub mod graph;
pub mod graph_image;
pub mod payload;
pub mod pgp;
pub mod signature;
pub mod upstream;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use futures::StreamExt as _;

use crate::api::mirror::{Platform, ReleaseType};
use crate::cache::Cache;
use crate::registry::Client;
use graph::{CrossChannel, Graph, GraphError, Node};
use payload::Component;
use pgp::Keyring;
use signature::SignatureError;
use upstream::Upstream;

/// Why release collection stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// Version selection.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A release service failed.
    #[error("{url}: {message}")]
    Upstream {
        /// The service.
        url: String,
        /// What happened.
        message: String,
    },
    /// A payload could not be read.
    #[error("release payload {payload}: {message}")]
    Payload {
        /// The payload reference.
        payload: String,
        /// What is wrong.
        message: String,
    },
    /// Registry trouble.
    #[error("{what}: {message}")]
    Registry {
        /// What was being fetched.
        what: String,
        /// What happened.
        message: String,
    },
    /// A signature was refused.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// No signature for a payload.
    #[error("release {version} ({digest}): no signature found in {store} nor in {dir}")]
    NoSignature {
        /// Version.
        version: String,
        /// Payload digest.
        digest: String,
        /// The store URL asked.
        store: String,
        /// The local directory looked in.
        dir: String,
    },
    /// The graph image could not be built.
    #[error("graph image: {0}")]
    GraphImage(String),
    /// Nothing selected.
    #[error("no release images found")]
    NoReleases,
    /// Local files.
    #[error("{0}")]
    Local(String),
}

impl ReleaseError {
    /// Stable reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ReleaseError::Graph(GraphError::Invalid(_)) | ReleaseError::Upstream { .. } => "UpdateGraphUnavailable",
            ReleaseError::Graph(_) => "InvalidReleaseSelection",
            ReleaseError::Payload { .. } | ReleaseError::Registry { .. } => "ReleasePayloadUnavailable",
            ReleaseError::Signature(_) | ReleaseError::NoSignature { .. } => "ReleaseSignatureInvalid",
            ReleaseError::GraphImage(_) => "GraphImageFailed",
            ReleaseError::NoReleases => "NoReleases",
            ReleaseError::Local(_) => "ReleaseLocalError",
        }
    }
}

/// A selected release, before its payload is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selected {
    /// Version (empty for an explicit `platform.release` until its payload says).
    pub version: String,
    /// The Cincinnati architecture it was resolved for.
    pub arch: String,
    /// The payload reference.
    pub payload: String,
}

/// A release, read and verified.
#[derive(Clone, Debug)]
pub struct Release {
    /// What was selected.
    pub selected: Selected,
    /// The payload's digest.
    pub digest: String,
    /// The release tag used for naming (`4.18.1-x86_64`): from the signature's identity.
    pub tag: String,
    /// The raw signature (for the signature ConfigMap), when verified.
    pub signature: Option<Vec<u8>>,
    /// Component images.
    pub components: Vec<Component>,
    /// KubeVirt container disks by CoreOS architecture.
    pub kubevirt: BTreeMap<String, String>,
}

/// Everything release collection found.
#[derive(Debug, Default)]
pub struct Collected {
    /// Releases, sorted by version.
    pub releases: Vec<Release>,
    /// The graph image's digest in the cache (`graph: true`).
    pub graph_image: Option<String>,
    /// Warnings for the log.
    pub warnings: Vec<String>,
}

/// How collection runs.
pub struct Settings<'a> {
    /// Release services.
    pub upstream: &'a Upstream,
    /// Trusted release keys.
    pub keys: &'a Keyring,
    /// `working-dir` (graphs and signatures are kept under it).
    pub working_dir: Option<&'a Path>,
    /// Base image of the graph image.
    pub graph_base_image: String,
    /// Skip signature checks (only allowed with `platform.release`).
    pub ignore_signatures: bool,
    /// Payloads read at once.
    pub parallel: usize,
    /// Read update graphs kept in the working directory by the mirror run before asking the
    /// update service (deletes: what was mirrored was selected from those graphs, and a
    /// disconnected site has no update service).
    pub kept_graphs_first: bool,
}

/// The Cincinnati architectures a platform block queries.
pub fn arches(p: &Platform) -> Vec<String> {
    if !p.platforms.is_empty() {
        return vec!["multi".into()];
    }
    if p.architectures.is_empty() {
        return vec!["amd64".into()];
    }
    let mut v: Vec<String> = p.architectures.iter().map(|a| format!("{a:?}").to_lowercase()).collect();
    v.sort();
    v.dedup();
    v
}

/// Fetches (and keeps) update graphs per (arch, channel); each is fetched once per run.
struct Graphs<'a> {
    up: &'a Upstream,
    keep: Option<PathBuf>,
    kept_first: bool,
    got: BTreeMap<(String, String), Graph>,
}

impl Graphs<'_> {
    async fn get(&mut self, kind: ReleaseType, channel: &str, arch: &str) -> Result<&Graph, ReleaseError> {
        let key = (arch.to_string(), channel.to_string());
        if !self.got.contains_key(&key) {
            let kept = self.keep.as_ref().map(|d| d.join(format!("{arch}-{channel}.json")));
            if self.kept_first
                && let Some(bytes) = kept.as_ref().and_then(|p| std::fs::read(p).ok())
            {
                self.got.insert(key.clone(), Graph::parse(&bytes)?);
                return Ok(&self.got[&key]);
            }
            let bytes = self.up.graph(kind, channel, arch).await?;
            let g = Graph::parse(&bytes)?;
            if let Some(dir) = &self.keep {
                let p = dir.join(format!("{arch}-{channel}.json"));
                std::fs::create_dir_all(dir)
                    .and_then(|_| std::fs::write(&p, &bytes))
                    .map_err(|e| ReleaseError::Local(format!("{}: {e}", p.display())))?;
            }
            self.got.insert(key.clone(), g);
        }
        Ok(&self.got[&key])
    }
}

/// Where a run keeps the update graphs it selected from, under its working directory.
pub const KEPT_GRAPHS: &str = "hold-release/cincinnati-graph-data";

/// Resolves the releases a platform block selects (graph only: no payload is read).
pub async fn resolve(
    up: &Upstream,
    p: &Platform,
    working_dir: Option<&Path>,
    kept_first: bool,
) -> Result<(Vec<Selected>, Vec<String>), ReleaseError> {
    if let Some(r) = &p.release {
        return Ok((vec![Selected { version: String::new(), arch: arches(p)[0].clone(), payload: r.clone() }], vec![]));
    }
    let keep = working_dir.map(|w| w.join(KEPT_GRAPHS));
    let mut graphs = Graphs { up, keep, kept_first, got: BTreeMap::new() };
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for arch in arches(p) {
        let mut found: Vec<Node> = Vec::new();
        let mut ends: Vec<(String, graph::Wanted)> = Vec::new();
        for (i, ch) in p.channels.iter().enumerate() {
            let field = format!("mirror.platform.channels[{i}]");
            let g = graphs.get(ch.release_type, &ch.name, &arch).await?;
            let w = graph::wanted(g, ch, &arch, &field)?;
            warnings.extend(graph::eus_warning(ch, &w));
            let (nodes, notes) = graph::select(g, ch, &arch, &field)?;
            found.extend(nodes);
            warnings.extend(notes);
            if ch.release_type == ReleaseType::Ocp {
                ends.push((ch.name.clone(), w));
            }
        }
        // Several channels: also the upgrade path from the lowest wanted version to the highest.
        if ends.len() > 1 {
            let lo = ends.iter().min_by(|a, b| a.1.min.cmp(&b.1.min)).cloned().expect("non-empty");
            let hi = ends.iter().max_by(|a, b| a.1.max.cmp(&b.1.max)).cloned().expect("non-empty");
            let walk = CrossChannel { source: lo.0, start: lo.1.min, target: hi.0, end: hi.1.max };
            let mut needed = BTreeMap::new();
            for c in std::iter::once(walk.source.clone()).chain(walk.channels()) {
                let g = graphs.get(ReleaseType::Ocp, &c, &arch).await?.clone();
                needed.insert(c, g);
            }
            let (nodes, w) = graph::cross_channel(&walk, &needed, "mirror.platform.channels")?;
            found.extend(nodes);
            warnings.extend(w);
        }
        found.sort_by(|a, b| a.version.cmp(&b.version));
        let mut seen = BTreeSet::new();
        for n in found {
            if seen.insert(n.payload.clone()) {
                out.push(Selected { version: n.version.to_string(), arch: arch.clone(), payload: n.payload });
            }
        }
    }
    if out.is_empty() {
        return Err(ReleaseError::NoReleases);
    }
    Ok((out, warnings))
}

/// Collects the releases of a platform block: resolve, then per payload read its manifests,
/// verify its signature and list its images; then the graph image when `graph: true`.
pub async fn collect(
    client: &Client,
    cache: &Cache,
    s: &Settings<'_>,
    p: &Platform,
) -> Result<Collected, ReleaseError> {
    let (selected, mut warnings) = resolve(s.upstream, p, s.working_dir, s.kept_graphs_first).await?;
    let kube_arches: Vec<&str> = if p.platforms.is_empty() {
        payload::kubevirt_arches(arches(p).iter().map(String::as_str))
    } else {
        payload::kubevirt_arches(p.platforms.iter().map(|x| x.architecture.as_str()))
    };
    let ignore = s.ignore_signatures && p.release.is_some();
    let results: Vec<Result<Release, ReleaseError>> = futures::stream::iter(selected)
        .map(|sel| read_release(client, cache, s, sel, p.kube_virt_container, &kube_arches, ignore))
        .buffered(s.parallel.max(1))
        .collect()
        .await;
    let mut releases = Vec::new();
    for r in results {
        releases.push(r?);
    }
    if p.graph {
        let digest = graph_image(client, cache, s, &mut warnings).await?;
        return Ok(Collected { releases, graph_image: Some(digest), warnings });
    }
    Ok(Collected { releases, graph_image: None, warnings })
}

/// The name the last graph image built is kept under in the cache
/// (`localhost:55000/openshift/graph-image:latest`).
fn graph_image_name() -> String {
    format!("{}/{}:latest", crate::image::DISK_ROOT, graph_image::REPOSITORY)
}

/// The graph image: built from the graph data on the base image; when the graph data cannot
/// be downloaded (an enclave, whose update service is internal), the last graph image built
/// into this cache is mirrored instead, with a warning, as oc-mirror does in its enclave mode.
async fn graph_image(
    client: &Client,
    cache: &Cache,
    s: &Settings<'_>,
    warnings: &mut Vec<String>,
) -> Result<String, ReleaseError> {
    let cached = || {
        let names = cache.names().ok()?;
        names.get(&graph_image_name()).filter(|d| cache.has(d)).cloned()
    };
    let tarball = match s.upstream.graph_data().await {
        Ok(t) => t,
        Err(e) => {
            let Some(digest) = cached() else { return Err(e) };
            warnings.push(format!(
                "graph data could not be downloaded ({e}): the graph image built earlier into the cache ({digest}) is mirrored instead"
            ));
            return Ok(digest);
        }
    };
    let digest = graph_image::build(client, cache, &s.graph_base_image, &tarball).await?;
    tracing::info!(%digest, base = %s.graph_base_image, "graph image built");
    cache.record_names(&[(graph_image_name(), digest.clone())]).map_err(|e| ReleaseError::Local(e.to_string()))?;
    Ok(digest)
}

async fn read_release(
    client: &Client,
    cache: &Cache,
    s: &Settings<'_>,
    mut sel: Selected,
    kubevirt: bool,
    kube_arches: &[&str],
    ignore_signatures: bool,
) -> Result<Release, ReleaseError> {
    let pl = payload::read(client, cache, &sel.payload).await?;
    if sel.version.is_empty() {
        sel.version = release_version(&pl.files).unwrap_or_default();
    }
    let refs = pl.files.get(payload::IMAGE_REFERENCES).ok_or_else(|| ReleaseError::Payload {
        payload: sel.payload.clone(),
        message: format!("no {}/{}", payload::MANIFESTS_DIR, payload::IMAGE_REFERENCES),
    })?;
    let components = payload::image_references(refs, &sel.payload)?;
    let kubevirt = if kubevirt {
        let y = pl.files.get(payload::BOOTIMAGES).ok_or_else(|| ReleaseError::Payload {
            payload: sel.payload.clone(),
            message: "could not find kubevirt image in this release (no boot images manifest)".into(),
        })?;
        payload::kubevirt_images(y, kube_arches, &sel.payload)?
    } else {
        BTreeMap::new()
    };
    let fallback_tag = || {
        crate::image::ImageRef::parse(&sel.payload).ok().and_then(|r| r.tag).unwrap_or_else(|| {
            let suffix = match sel.arch.as_str() {
                "amd64" => "x86_64",
                "arm64" => "aarch64",
                other => other,
            };
            format!("{}-{suffix}", sel.version)
        })
    };
    let (tag, signature) = if ignore_signatures {
        (fallback_tag(), None)
    } else {
        let sigdir = s.working_dir.map(|w| w.join("signatures"));
        let local = sigdir.as_deref().and_then(|d| signature::from_dir(d, &pl.digest));
        let bytes = match local {
            Some(b) => b,
            None => s.upstream.signature(&pl.digest).await?.ok_or_else(|| ReleaseError::NoSignature {
                version: sel.version.clone(),
                digest: pl.digest.clone(),
                store: s.upstream.opts.signature_url.clone(),
                dir: sigdir.as_deref().map(|d| d.display().to_string()).unwrap_or_default(),
            })?,
        };
        let id = signature::check(s.keys, &bytes, &pl.digest)?;
        let tag = id.tag.unwrap_or_else(fallback_tag);
        if let Some(d) = &sigdir {
            keep_signature(d, &tag, &pl.digest, &bytes)?;
        }
        (tag, Some(bytes))
    };
    Ok(Release { selected: sel, digest: pl.digest, tag, signature, components, kubevirt })
}

/// `version` of `release-metadata` (cincinnati-metadata-v0).
fn release_version(files: &BTreeMap<String, Vec<u8>>) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(files.get("release-metadata")?).ok()?;
    v.get("version")?.as_str().map(str::to_string)
}

/// Keeps a verified signature as `working-dir/signatures/<tag>-sha256-<hex>` (mode 0600).
fn keep_signature(dir: &Path, tag: &str, digest: &str, bytes: &[u8]) -> Result<(), ReleaseError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let err = |p: &Path, e: std::io::Error| ReleaseError::Local(format!("{}: {e}", p.display()));
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e))?;
    let name = format!("{tag}-{}", digest.replace(':', "-"));
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| err(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| err(&path, e))
}

/// A file of the shared test data (`IMAGESET_SHARED_DATA`, else `../shared/data`).
#[cfg(test)]
pub(crate) fn test_data(rel: &str) -> PathBuf {
    std::env::var_os("IMAGESET_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data"))
        .join(rel)
}

#[cfg(test)]
mod tests;
