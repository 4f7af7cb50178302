//! Turns a `Plan` into content in a source registry, once: the registry's storage directory
//! is kept under the bench cache, keyed by the plan, and later runs serve it read-only.
//! Layers are generated while they upload (tar of seeded random bytes, gzip with stored
//! blocks), so a 2 GiB layer never sits in memory. The `small` set is not pushed: its images
//! are written into the storage directory directly (`support::storage`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::registry::{LoggedRegistry, Storage, blocking_client};
use super::workload::{Layer, Plan, SMALL_LAYER_BYTES, SMALL_REPOS, Variant};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// One tag in the source registry and the digest every copy must reproduce.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// Repository path.
    pub repo: String,
    /// Tag.
    pub tag: String,
    /// Digest of the tag's manifest or index.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
}

/// A generated layer blob.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LayerBlob {
    /// Digest of the gzip stream.
    pub digest: String,
    /// Digest of the tar inside it.
    pub diff_id: String,
    /// Bytes of the gzip stream.
    pub size: u64,
    /// The repository it was first pushed to (later ones mount it from there).
    pub repo: String,
}

/// Figures describing the set, for the report.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Repositories.
    pub repos: usize,
    /// Tags.
    pub tags: usize,
    /// Manifests and indexes.
    pub manifests: usize,
    /// Tags that are indexes.
    pub indexes: usize,
    /// Unique layers.
    pub layers: usize,
    /// Unique configs.
    pub configs: usize,
    /// Bytes of unique layers.
    pub layer_bytes: u64,
    /// Bytes of unique configs.
    pub config_bytes: u64,
    /// Layers used by two or more tags.
    pub shared_layers: usize,
    /// Their bytes.
    pub shared_layer_bytes: u64,
    /// Sum over tags of each tag's layer bytes: what copying every image on its own moves.
    pub per_image_bytes: u64,
    /// Sum over repositories of each one's layer bytes: each repository once, no mounts.
    pub per_repo_bytes: u64,
    /// The largest blob.
    pub largest_blob: u64,
}

impl Stats {
    /// Unique blobs (layers and configs).
    pub fn unique_blobs(&self) -> usize {
        self.layers + self.configs
    }
    /// Unique bytes (layers and configs).
    pub fn unique_bytes(&self) -> u64 {
        self.layer_bytes + self.config_bytes
    }
}

/// A generated set as stored in the cache.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Workload {
    /// Cache key of the plan.
    pub key: String,
    /// Every tag, in push order.
    pub entries: Vec<Entry>,
    /// Every unique layer, indexed like the plan's layers.
    pub layers: Vec<LayerBlob>,
    /// Figures.
    pub stats: Stats,
    /// The registry storage root (not serialized: the cache may move).
    #[serde(skip)]
    pub storage: PathBuf,
}

/// Returns the cached set for `plan`, generating it first if the cache lacks it.
pub fn ensure(plan: &Plan, variant: Variant, seed: u64, root: &Path) -> Result<Workload> {
    let dir = root.join(&plan.key);
    if let Ok(text) = std::fs::read_to_string(dir.join("workload.json")) {
        let mut w: Workload = serde_json::from_str(&text).context("cached workload.json")?;
        w.storage = dir.join("storage");
        return Ok(w);
    }
    std::fs::create_dir_all(root)?;
    for e in std::fs::read_dir(root)?.flatten() {
        if e.file_name().to_string_lossy().starts_with(&format!("{}.tmp-", plan.key)) {
            std::fs::remove_dir_all(e.path()).ok();
        }
    }
    let tmp = root.join(format!("{}.tmp-{}", plan.key, std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    let storage = tmp.join("storage");
    let (mut entries, mut layers, first_repo) = match variant {
        Variant::Standard | Variant::Small { .. } => (Vec::new(), Vec::new(), 0),
        Variant::Big => {
            // The big set extends the standard one: start from its storage, hard-linked, so
            // only the extra image is generated and the cache holds its bytes once.
            let std_plan = Plan::new(Variant::Standard, seed);
            let base = ensure(&std_plan, Variant::Standard, seed, root)?;
            let st = std::process::Command::new("cp").arg("-al").arg(&base.storage).arg(&storage).status()?;
            if !st.success() {
                bail!("cp -al {} {} failed", base.storage.display(), storage.display());
            }
            (base.entries, base.layers, std_plan.repos.len())
        }
    };
    std::fs::create_dir_all(&storage)?;
    eprintln!("bench: generating workload {} into {} (once; later runs reuse it)", plan.key, storage.display());
    let started = std::time::Instant::now();
    if let Variant::Small { images } = variant {
        (entries, layers) = small_set(plan, images, seed, &storage)?;
    } else {
        let reg = LoggedRegistry::start(&storage, Storage::default(), &tmp.join("generate.log"))?;
        let pusher = Pusher { http: blocking_client(), base: reg.base_url() };
        push_all(&pusher, plan, first_repo, &mut entries, &mut layers)?;
    }
    let stats = stats(plan, &entries, &layers, &storage)?;
    let w = Workload { key: plan.key.clone(), entries, layers, stats, storage: PathBuf::new() };
    std::fs::write(tmp.join("workload.json"), serde_json::to_vec_pretty(&w)?)?;
    std::fs::rename(&tmp, &dir).with_context(|| format!("rename {} to {}", tmp.display(), dir.display()))?;
    eprintln!("bench: generated {} in {:.0} s", plan.key, started.elapsed().as_secs_f64());
    ensure(plan, variant, seed, root)
}

fn push_all(
    p: &Pusher,
    plan: &Plan,
    first_repo: usize,
    entries: &mut Vec<Entry>,
    layers: &mut Vec<LayerBlob>,
) -> Result<()> {
    let mut by_index: HashMap<usize, LayerBlob> = layers.iter().cloned().enumerate().collect();
    let mut in_repo: BTreeSet<(String, String)> = BTreeSet::new();
    for (r, repo) in plan.repos.iter().enumerate().skip(first_repo) {
        eprintln!("bench: pushing {} ({}/{})", repo.name, r + 1, plan.repos.len());
        for tag in &repo.tags {
            let index = tag.images.len() > 1;
            let mut children = Vec::new();
            for image in &tag.images {
                let mut descs = Vec::new();
                let mut diff_ids = Vec::new();
                for &l in &image.layers {
                    let blob = match by_index.get(&l) {
                        Some(b) => {
                            if b.repo != repo.name && in_repo.insert((repo.name.clone(), b.digest.clone())) {
                                p.mount(&repo.name, &b.digest, &b.repo)?;
                            }
                            b.clone()
                        }
                        None => {
                            let b = p.layer(&repo.name, &plan.layers[l], l)?;
                            by_index.insert(l, b.clone());
                            b
                        }
                    };
                    let mt = if index { OCI_LAYER } else { DOCKER_LAYER };
                    descs.push(json!({"mediaType": mt, "digest": blob.digest, "size": blob.size}));
                    diff_ids.push(blob.diff_id);
                }
                let config = serde_json::to_vec(&json!({
                    "architecture": image.arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
                    "config": {
                        "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
                        "Labels": {"io.imageset-operator.bench": format!("{}:{}/{}", repo.name, tag.name, image.arch)},
                    },
                    "rootfs": {"type": "layers", "diff_ids": diff_ids},
                }))?;
                let config_digest = p.small_blob(&repo.name, &config)?;
                let (mt, cmt) = if index { (OCI_MANIFEST, OCI_CONFIG) } else { (DOCKER_MANIFEST, DOCKER_CONFIG) };
                let manifest = serde_json::to_vec_pretty(&json!({
                    "schemaVersion": 2, "mediaType": mt,
                    "config": {"mediaType": cmt, "digest": config_digest, "size": config.len()},
                    "layers": descs,
                }))?;
                let reference = if index { sha256(&manifest) } else { tag.name.clone() };
                let digest = p.manifest(&repo.name, &reference, &manifest, mt)?;
                children.push(json!({
                    "mediaType": mt, "digest": digest, "size": manifest.len(),
                    "platform": {"os": "linux", "architecture": image.arch},
                }));
                if !index {
                    entries.push(Entry {
                        repo: repo.name.clone(),
                        tag: tag.name.clone(),
                        digest,
                        media_type: mt.into(),
                    });
                }
            }
            if index {
                let body = serde_json::to_vec_pretty(
                    &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}),
                )?;
                let digest = p.manifest(&repo.name, &tag.name, &body, OCI_INDEX)?;
                entries.push(Entry {
                    repo: repo.name.clone(),
                    tag: tag.name.clone(),
                    digest,
                    media_type: OCI_INDEX.into(),
                });
            }
        }
    }
    *layers = (0..plan.layers.len()).map(|i| by_index.remove(&i).expect("every planned layer pushed")).collect();
    Ok(())
}

/// Writes the `small` set straight into the storage directory (no registry, no pushes: ten
/// thousand images take seconds), then reads back what each image references, checking it
/// against the plan, so entries, layers and stats describe what is on disk.
fn small_set(plan: &Plan, images: usize, seed: u64, storage: &Path) -> Result<(Vec<Entry>, Vec<LayerBlob>)> {
    let written = crate::support::storage::small_images(storage, SMALL_REPOS, images, SMALL_LAYER_BYTES, seed);
    if written.len() != plan.tag_count() {
        bail!("wrote {} small images, planned {}", written.len(), plan.tag_count());
    }
    let blobs = storage.join("docker/registry/v2/blobs/sha256");
    let read = |digest: &str| -> Result<Vec<u8>> {
        let hex = digest.strip_prefix("sha256:").with_context(|| format!("digest {digest:?}"))?;
        let path = blobs.join(hex.get(..2).context("short digest")?).join(hex).join("data");
        let bytes = std::fs::read(&path).with_context(|| path.display().to_string())?;
        if sha256(&bytes) != digest {
            bail!("{} does not hash to {digest}", path.display());
        }
        Ok(bytes)
    };
    let (mut entries, mut layers) = (Vec::with_capacity(images), Vec::with_capacity(images));
    for (n, w) in written.into_iter().enumerate() {
        let planned = &plan.repos[n % SMALL_REPOS];
        if planned.name != w.repo || w.tag != format!("t{n}") {
            bail!("small image {n} written as {}:{}, planned in {} as t{n}", w.repo, w.tag, planned.name);
        }
        let manifest: serde_json::Value = serde_json::from_slice(&read(&w.digest)?)?;
        let (Some(layer), Some(config)) =
            (manifest["layers"][0]["digest"].as_str(), manifest["config"]["digest"].as_str())
        else {
            bail!("{}:{}: manifest without a config and a layer", w.repo, w.tag);
        };
        let size = read(layer)?.len() as u64;
        if size != plan.layers[n].payload {
            bail!("{}:{}: layer of {size} bytes, planned {}", w.repo, w.tag, plan.layers[n].payload);
        }
        let config: serde_json::Value = serde_json::from_slice(&read(config)?)?;
        let diff_id = config["rootfs"]["diff_ids"][0].as_str().unwrap_or(layer).to_string();
        layers.push(LayerBlob { digest: layer.to_string(), diff_id, size, repo: w.repo.clone() });
        entries.push(Entry { repo: w.repo, tag: w.tag, digest: w.digest, media_type: OCI_MANIFEST.into() });
    }
    Ok((entries, layers))
}

/// Figures from the plan plus the sizes of what was actually written. Config sizes come from
/// the storage directory, where each blob is `blobs/sha256/xx/<hex>/data`.
fn stats(plan: &Plan, entries: &[Entry], layers: &[LayerBlob], storage: &Path) -> Result<Stats> {
    let mut s = Stats { repos: plan.repos.len(), tags: entries.len(), ..Default::default() };
    let mut users: BTreeMap<usize, usize> = BTreeMap::new();
    let mut per_repo = 0;
    for repo in &plan.repos {
        let mut in_repo = BTreeSet::new();
        for tag in &repo.tags {
            let used: BTreeSet<usize> = tag.images.iter().flat_map(|i| i.layers.iter().copied()).collect();
            s.manifests += tag.images.len() + usize::from(tag.images.len() > 1);
            s.indexes += usize::from(tag.images.len() > 1);
            s.per_image_bytes += used.iter().map(|&l| layers[l].size).sum::<u64>();
            for &l in &used {
                *users.entry(l).or_default() += 1;
                in_repo.insert(l);
            }
        }
        per_repo += in_repo.iter().map(|&l| layers[l].size).sum::<u64>();
    }
    s.per_repo_bytes = per_repo;
    s.layers = layers.len();
    s.layer_bytes = layers.iter().map(|l| l.size).sum();
    s.largest_blob = layers.iter().map(|l| l.size).max().unwrap_or(0);
    for (&l, &n) in &users {
        if n > 1 {
            s.shared_layers += 1;
            s.shared_layer_bytes += layers[l].size;
        }
    }
    // Configs: every blob in storage that is not a layer.
    let layer_digests: BTreeSet<&str> = layers.iter().map(|l| l.digest.as_str()).collect();
    let blobs = storage.join("docker/registry/v2/blobs/sha256");
    for prefix in std::fs::read_dir(&blobs).with_context(|| blobs.display().to_string())?.flatten() {
        for b in std::fs::read_dir(prefix.path())?.flatten() {
            let digest = format!("sha256:{}", b.file_name().to_string_lossy());
            let size = std::fs::metadata(b.path().join("data"))?.len();
            if layer_digests.contains(digest.as_str()) {
                continue;
            }
            let text = std::fs::read(b.path().join("data"))?;
            // Manifests are blobs too in Distribution's storage; configs are what carry a rootfs.
            if serde_json::from_slice::<serde_json::Value>(&text).is_ok_and(|v| v.get("rootfs").is_some()) {
                s.configs += 1;
                s.config_bytes += size;
            }
        }
    }
    Ok(s)
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Pushes over the registry API with a blocking client.
struct Pusher {
    http: reqwest::blocking::Client,
    base: String,
}

impl Pusher {
    fn start_upload(&self, repo: &str) -> Result<String> {
        let r = self.http.post(format!("{}/v2/{repo}/blobs/uploads/", self.base)).send()?;
        if r.status().as_u16() != 202 {
            bail!("start upload to {repo}: {} {:?}", r.status(), r.text());
        }
        let loc = r.headers()["location"].to_str()?.to_string();
        Ok(if loc.starts_with("http") { loc } else { format!("{}{loc}", self.base) })
    }

    fn finish(&self, loc: &str, digest: &str, body: Vec<u8>) -> Result<()> {
        let sep = if loc.contains('?') { '&' } else { '?' };
        let r = self
            .http
            .put(format!("{loc}{sep}digest={digest}"))
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()?;
        if r.status().as_u16() != 201 {
            bail!("finish upload of {digest}: {} {:?}", r.status(), r.text());
        }
        Ok(())
    }

    /// Streams a generated layer as one PATCH, then commits it under the digest computed on
    /// the way (known only at the end, which is why this is not a single PUT).
    fn layer(&self, repo: &str, layer: &Layer, index: usize) -> Result<LayerBlob> {
        let loc = self.start_upload(repo)?;
        let done = Arc::new(Mutex::new(None));
        let reader = LayerReader::new(layer, index, done.clone());
        let r = self
            .http
            .patch(&loc)
            .header("Content-Type", "application/octet-stream")
            .body(reqwest::blocking::Body::new(reader))
            .send()?;
        if r.status().as_u16() != 202 {
            bail!("PATCH layer {index} to {repo}: {} {:?}", r.status(), r.text());
        }
        let loc = r.headers()["location"].to_str()?.to_string();
        let loc = if loc.starts_with("http") { loc } else { format!("{}{loc}", self.base) };
        let (digest, diff_id, size) = done.lock().expect("layer result").take().context("layer stream unfinished")?;
        self.finish(&loc, &digest, Vec::new())?;
        Ok(LayerBlob { digest, diff_id, size, repo: repo.to_string() })
    }

    fn mount(&self, repo: &str, digest: &str, from: &str) -> Result<()> {
        let r = self.http.post(format!("{}/v2/{repo}/blobs/uploads/?mount={digest}&from={from}", self.base)).send()?;
        if r.status().as_u16() != 201 {
            bail!("mount {digest} from {from} into {repo}: {} {:?}", r.status(), r.text());
        }
        Ok(())
    }

    fn small_blob(&self, repo: &str, bytes: &[u8]) -> Result<String> {
        let digest = sha256(bytes);
        let loc = self.start_upload(repo)?;
        self.finish(&loc, &digest, bytes.to_vec())?;
        Ok(digest)
    }

    fn manifest(&self, repo: &str, reference: &str, bytes: &[u8], media_type: &str) -> Result<String> {
        let r = self
            .http
            .put(format!("{}/v2/{repo}/manifests/{reference}", self.base))
            .header("Content-Type", media_type)
            .body(bytes.to_vec())
            .send()?;
        if r.status().as_u16() != 201 {
            bail!("PUT manifest {repo}:{reference}: {} {:?}", r.status(), r.text());
        }
        Ok(sha256(bytes))
    }
}

/// Bytes of tar produced per step: a multiple of 8 so the random stream does not depend on
/// how the HTTP client sizes its reads.
const STEP: usize = 1 << 20;

/// A layer blob produced on demand: a one-file tar of seeded random bytes, through a gzip
/// encoder with stored blocks, hashing the tar (diff_id) and the gzip stream (digest).
struct LayerReader {
    header: Option<[u8; 512]>,
    rng: u64,
    payload_left: u64,
    zeros_left: u64,
    diff: Sha256,
    digest: Sha256,
    size: u64,
    gz: Option<GzEncoder<Vec<u8>>>,
    out: Vec<u8>,
    pos: usize,
    done: Arc<Mutex<Option<(String, String, u64)>>>,
}

impl LayerReader {
    fn new(layer: &Layer, index: usize, done: Arc<Mutex<Option<(String, String, u64)>>>) -> Self {
        let padding = (512 - layer.payload % 512) % 512;
        LayerReader {
            header: Some(tar_header(&format!("opt/layer-{index:03}/data.bin"), layer.payload)),
            rng: layer.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            payload_left: layer.payload,
            zeros_left: padding + 1024,
            diff: Sha256::new(),
            digest: Sha256::new(),
            size: 0,
            gz: Some(GzEncoder::new(Vec::with_capacity(STEP + 4096), Compression::none())),
            out: Vec::new(),
            pos: 0,
            done,
        }
    }

    /// The next piece of tar, or None at its end.
    fn next_tar(&mut self) -> Option<Vec<u8>> {
        if let Some(h) = self.header.take() {
            return Some(h.to_vec());
        }
        if self.payload_left > 0 {
            let n = (self.payload_left as usize).min(STEP);
            let mut buf = Vec::with_capacity(STEP);
            // xorshift64*: the same stream as the test content generator, produced in steps.
            while buf.len() < n {
                self.rng ^= self.rng >> 12;
                self.rng ^= self.rng << 25;
                self.rng ^= self.rng >> 27;
                buf.extend_from_slice(&self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
            }
            buf.truncate(n);
            self.payload_left -= n as u64;
            return Some(buf);
        }
        if self.zeros_left > 0 {
            let n = std::mem::take(&mut self.zeros_left);
            return Some(vec![0; n as usize]);
        }
        None
    }

    fn refill(&mut self) -> std::io::Result<()> {
        if self.gz.is_none() {
            return Ok(());
        }
        let chunk = match self.next_tar() {
            Some(tar) => {
                self.diff.update(&tar);
                let gz = self.gz.as_mut().expect("encoder");
                gz.write_all(&tar)?;
                std::mem::take(gz.get_mut())
            }
            None => self.gz.take().expect("encoder").finish()?,
        };
        self.digest.update(&chunk);
        self.size += chunk.len() as u64;
        self.out = chunk;
        self.pos = 0;
        if self.gz.is_none() {
            let digest = format!("sha256:{}", hex::encode(self.digest.clone().finalize()));
            let diff_id = format!("sha256:{}", hex::encode(self.diff.clone().finalize()));
            *self.done.lock().expect("layer result") = Some((digest, diff_id, self.size));
        }
        Ok(())
    }
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.out.len() {
            if self.gz.is_none() {
                return Ok(0);
            }
            self.refill()?;
        }
        let n = buf.len().min(self.out.len() - self.pos);
        buf[..n].copy_from_slice(&self.out[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// A ustar header for one regular file with fixed owner and time, so layers are reproducible.
fn tar_header(name: &str, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    let put = |h: &mut [u8; 512], at: usize, s: &[u8]| h[at..at + s.len()].copy_from_slice(s);
    put(&mut h, 0, name.as_bytes());
    put(&mut h, 100, b"0000644\0");
    put(&mut h, 108, b"0000000\0");
    put(&mut h, 116, b"0000000\0");
    put(&mut h, 124, format!("{size:011o}\0").as_bytes());
    put(&mut h, 136, b"00000000000\0");
    put(&mut h, 148, b"        ");
    h[156] = b'0';
    put(&mut h, 257, b"ustar\0");
    put(&mut h, 263, b"00");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put(&mut h, 148, format!("{sum:06o}\0 ").as_bytes());
    h
}
