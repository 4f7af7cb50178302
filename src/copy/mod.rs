//! Step 4: runs a copy plan through the cache with bounded concurrency (images x blobs, and
//! the registry client's per-registry cap). Each digest is fetched from upstream once per
//! cache (single flight), each blob pushed to a registry once at a time (concurrent uploads of
//! one blob make Distribution answer 500/400), the destination is asked before anything is
//! sent (HEAD, not GET), and a blob already in another repository of the destination is
//! mounted. One image failing never fails the others.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use futures::{StreamExt as _, TryStreamExt as _};

use crate::cache::{Cache, fetch};
use crate::flight::Flights;
use crate::image::manifest::{self, Descriptor, Parsed};
use crate::image::{ImageRef, Transport};
use crate::plan::CopyItem;
use crate::registry::{Client, Mount, RegistryError};

mod progress;
mod schedule;

pub use progress::{Progress, bytes_of};

/// Where the images come from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Their registries.
    Registry,
    /// Archives already unpacked into the cache: name (no transport) -> (digest, media type).
    Archive(HashMap<String, (String, String)>),
}

/// Where the images go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The registry named in each item's destination.
    Registry,
    /// Only the cache (mirror-to-disk writes archives from it afterwards).
    Cache,
}

/// Concurrency.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Blobs moved at once (at most the client's requests in flight per registry); up to
    /// [`IMAGES_AHEAD`] times as many images are under way.
    pub parallel_images: usize,
    /// Blobs at once per image.
    pub parallel_layers: usize,
}

/// What became of one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Copied now.
    Copied,
    /// The destination already had it.
    AlreadyPresent,
    /// Could not be copied.
    Failed {
        /// Stable label.
        reason: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// One item's result.
#[derive(Clone, Debug)]
pub struct ItemResult {
    /// The item.
    pub item: CopyItem,
    /// Outcome.
    pub outcome: Outcome,
    /// Digest of what now stands at the destination (after platform filtering).
    pub digest: Option<String>,
    /// Its media type.
    pub media_type: Option<String>,
    /// Every digest the image needs (manifests and blobs).
    pub contents: Vec<Descriptor>,
}

/// The copy engine; one per process, shared by every run (every image set), so that single
/// flight per blob, the bound on transfers and what is known of where blobs live hold across
/// them. Each run brings its own registry client (its credentials) through a [`Session`].
pub struct Engine {
    cache: Arc<Cache>,
    pushing: Flights<(String, String)>,
    /// One permit per blob being moved. A transfer takes a request slot at both registries,
    /// so there are never more transfers than slots: a transfer holding one registry's slot
    /// always gets the other's.
    transfers: tokio::sync::Semaphore,
    homes: Mutex<HashMap<(String, String), HashSet<String>>>,
}

/// One run's use of the engine: its client, its concurrency, its progress.
pub struct Session<'e> {
    engine: &'e Engine,
    client: Arc<Client>,
    opts: Options,
    /// Progress counters.
    pub progress: Arc<Progress>,
}

/// What an image needs at a destination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    /// Its blobs (layers and configs).
    pub blobs: Vec<Descriptor>,
    /// Its manifests' digests (the top one last).
    pub manifests: Vec<String>,
}

/// Images under way per blob transfer. An image waiting for a layer that another image is
/// moving (tags of one repository share their big layers) holds no transfer, so the images
/// behind it keep every transfer busy.
pub const IMAGES_AHEAD: usize = 4;

/// Images surveyed (and ordered largest blob first) together.
const SURVEY_CHUNK: usize = 256;

/// Where a blob is counted in place: its destination registry, or "" for the cache.
fn place(dst: &ImageRef, target: Target) -> &str {
    match target {
        Target::Registry => &dst.registry,
        Target::Cache => "",
    }
}

/// A reference of the plan, parsed (a plan that cannot be read fails its image).
fn plan_ref(s: &str) -> Result<ImageRef, RegistryError> {
    ImageRef::parse(s).map_err(|e| RegistryError::Io { what: "reading the plan".into(), message: e.to_string() })
}

fn local(what: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Io { what: what.to_string(), message: e.to_string() }
}

/// What the survey of an item found before any blob moved: what it is and where its source
/// resolves (or why it cannot be copied), and its largest blob (0 when unknown or not needed).
struct Survey {
    found: Result<Found, RegistryError>,
    largest: u64,
}

/// An item's references, resolved.
struct Found {
    src: ImageRef,
    dst: ImageRef,
    /// The tag or digest it is written under at the destination.
    dest_reference: String,
    /// The source's top manifest: media type and digest.
    top_mt: String,
    top_digest: String,
    /// What the destination holds under `dest_reference`.
    at_dest: Result<Option<(String, String)>, RegistryError>,
}

/// A manifest to push, with the blobs it needs.
struct Node {
    desc: Descriptor,
    bytes: Vec<u8>,
    blobs: Vec<Descriptor>,
}

impl Engine {
    /// An engine over a cache, moving at most `transfers` blobs at once (at most the request
    /// slots per registry of the clients it is given).
    pub fn new(cache: Arc<Cache>, transfers: usize) -> Self {
        Engine {
            cache,
            pushing: Flights::default(),
            transfers: tokio::sync::Semaphore::new(transfers.max(1)),
            homes: Mutex::default(),
        }
    }

    /// The cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Tells the engine where blobs already are at destinations: `(registry, digest,
    /// repository)`, so that it mounts them from there instead of fetching them (a shard worker
    /// is told where its operator placed the blobs several shards share).
    pub fn seed_homes(&self, homes: &[(String, String, String)]) {
        let mut known = self.homes.lock().expect("homes");
        for (registry, digest, repo) in homes {
            known.entry((registry.clone(), digest.clone())).or_default().insert(repo.clone());
        }
    }

    /// A run through this engine with `client` (its credentials and request slots).
    pub fn session(&self, client: Arc<Client>, opts: Options) -> Session<'_> {
        Session { engine: self, client, opts, progress: Arc::default() }
    }
}

impl Session<'_> {
    /// The registry client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The registry client, shared.
    pub fn shared_client(&self) -> Arc<Client> {
        self.client.clone()
    }

    /// What each item needs (the platforms it keeps), read from its manifests, which land in
    /// the cache; nothing is copied. `None` for an item whose manifests cannot be read (its
    /// copy then says why). In plan order.
    pub async fn needs(&self, items: &[CopyItem], source: &Source) -> Vec<Option<Needs>> {
        futures::stream::iter(items.iter())
            .map(|item| async move {
                let src = ImageRef::parse(&item.source).ok()?;
                if src.transport == Transport::Oci {
                    return None;
                }
                let (top, mt, digest) = self.resolve(&src, source).await.ok()?;
                let (blobs, mut manifests) = self.blobs_of(&src, source, item, &top, &mt).await;
                manifests.push(digest);
                Some(Needs { blobs, manifests })
            })
            .buffered(self.opts.parallel_images.max(1) * IMAGES_AHEAD)
            .collect()
            .await
    }

    /// Makes each blob present in its destination repository, read from its source
    /// repository: `(source, destination, blob)`, references as in the plan. At most
    /// `parallel_images` at once; one result per blob, in order.
    pub async fn place(
        &self,
        blobs: &[(String, String, Descriptor)],
        source: &Source,
    ) -> Vec<Result<(), RegistryError>> {
        futures::stream::iter(blobs.iter())
            .map(|(src, dst, desc)| async move {
                let (src, dst) = (plan_ref(src)?, plan_ref(dst)?);
                self.blob(&src, &dst, source, Target::Registry, desc).await
            })
            .buffered(self.opts.parallel_images.max(1))
            .collect::<Vec<_>>()
            .await
    }

    /// Copies every item; results are in plan order.
    pub async fn run(&self, items: &[CopyItem], source: &Source, target: Target) -> Vec<ItemResult> {
        self.progress.total.fetch_add(items.len() as u64, Ordering::Relaxed);
        let shape = schedule::Shape { chunk: SURVEY_CHUNK, window: self.opts.parallel_images.max(1) * IMAGES_AHEAD };
        let survey = |i: usize| self.survey(&items[i], source, target);
        let copy = |i: usize, survey: Survey| async move {
            let item = items[i].clone();
            let r = self.item(&item, source, target, survey).await;
            self.progress.done.fetch_add(1, Ordering::Relaxed);
            let result = match r {
                Ok((outcome, digest, media_type, contents)) => {
                    ItemResult { item, outcome, digest: Some(digest), media_type: Some(media_type), contents }
                }
                Err(e) => {
                    tracing::warn!(image = %item.source, "error mirroring image {} error: {e}", item.origin);
                    let outcome = Outcome::Failed { reason: e.reason(), message: e.to_string() };
                    ItemResult { item, outcome, digest: None, media_type: None, contents: Vec::new() }
                }
            };
            if result.outcome == Outcome::Copied {
                let (origin, destination) = (&result.item.origin, &result.item.destination);
                tracing::info!(source = %result.item.source, "Success copying {origin} ➡️ {destination}");
            }
            result
        };
        let mut results = schedule::run(items.len(), shape, survey, |s: &Survey| s.largest, copy).await;
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    }

    /// A manifest by digest: from the cache, else from the source registry (verified, cached).
    async fn manifest(&self, src: &ImageRef, source: &Source, digest: &str) -> Result<Vec<u8>, RegistryError> {
        if self.engine.cache.has(digest) {
            if let Source::Registry = source {
                self.client.prove_manifest(&src.registry, &src.path, digest).await?;
            }
            self.engine.cache.count(true);
            return self.engine.cache.read(digest).map_err(|e| local("reading cache", e));
        }
        if let Source::Archive(_) = source {
            return Err(RegistryError::NotFound { what: format!("manifest {digest} of {src} in the archives") });
        }
        fetch::manifest(&self.client, &self.engine.cache, &src.registry, &src.path, digest).await
    }

    /// The top manifest of a source reference: `(bytes, media type, digest)`.
    async fn resolve(&self, src: &ImageRef, source: &Source) -> Result<(Vec<u8>, String, String), RegistryError> {
        if let Source::Archive(names) = source {
            let key = src.to_string().trim_start_matches("docker://").to_string();
            let (digest, mt) =
                names.get(&key).ok_or_else(|| RegistryError::NotFound { what: format!("{key} in the archives") })?;
            return Ok((self.manifest(src, source, digest).await?, mt.clone(), digest.clone()));
        }
        let digest = match (&src.digest, &src.tag) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(t)) => {
                let head = self.client.pull_manifest_head(&src.registry, &src.path, t).await?;
                if head.is_some() {
                    self.client.note_read(&src.registry, &src.path);
                }
                head.map(|(d, _)| d)
            }
            (None, None) => None,
        };
        if let Some(d) = digest {
            let bytes = self.manifest(src, source, &d).await?;
            let mt = manifest::media_type_of(&bytes, None);
            return Ok((bytes, mt, d));
        }
        let tag = src.tag.as_deref().unwrap_or("latest");
        let (bytes, mt) = self.client.pull_manifest_get(&src.registry, &src.path, tag).await?;
        let d = manifest::sha256_digest(&bytes);
        self.engine.cache.put(&d, &bytes).map_err(|e| local("writing cache", e))?;
        Ok((bytes, mt, d))
    }

    /// Asks the source and the destination about an item at once (a re-run is then one
    /// round trip per image); unless the destination has it, counts the blobs it needs and
    /// finds its largest.
    async fn survey(&self, item: &CopyItem, source: &Source, target: Target) -> Survey {
        let (src, dst) = match (plan_ref(&item.source), plan_ref(&item.destination)) {
            (Ok(s), Ok(d)) => (s, d),
            (Err(e), _) | (_, Err(e)) => return Survey { found: Err(e), largest: 0 },
        };
        if src.transport == Transport::Oci {
            let e =
                RegistryError::Io { what: item.source.clone(), message: "oci:// sources are not supported yet".into() };
            return Survey { found: Err(e), largest: 0 };
        }
        let dest_reference = dst.tag.clone().or(dst.digest.clone()).unwrap_or_else(|| "latest".into());
        let at_dest = async {
            match target {
                Target::Registry => self.client.manifest_head(&dst.registry, &dst.path, &dest_reference).await,
                Target::Cache => Ok(None),
            }
        };
        let (resolved, at_dest) = futures::join!(self.resolve(&src, source), at_dest);
        let (top, top_mt, top_digest) = match resolved {
            Ok(r) => r,
            Err(e) => return Survey { found: Err(e), largest: 0 },
        };
        let present = matches!(&at_dest, Ok(Some((at, _))) if *at == top_digest);
        let mut largest = 0;
        if !present {
            let (blobs, _) = self.blobs_of(&src, source, item, &top, &top_mt).await;
            largest = blobs.iter().map(|b| b.size).max().unwrap_or(0);
            self.progress.need(place(&dst, target), &blobs);
        }
        Survey { found: Ok(Found { src, dst, dest_reference, top_mt, top_digest, at_dest }), largest }
    }

    /// The blobs an image (or the platforms kept of an index) needs, and the digests of the
    /// child manifests they come from; those of a manifest that cannot be read are left out
    /// (the copy itself then says what is wrong).
    async fn blobs_of(
        &self,
        src: &ImageRef,
        source: &Source,
        item: &CopyItem,
        top: &[u8],
        mt: &str,
    ) -> (Vec<Descriptor>, Vec<String>) {
        let kept = match item.platforms.is_empty() {
            true => None,
            false => manifest::sparse_index(top, &item.platforms).ok().flatten(),
        };
        match manifest::parse(kept.as_deref().unwrap_or(top), mt) {
            Ok(Parsed::Image { blobs }) => (blobs, Vec::new()),
            Ok(Parsed::Index { children }) => {
                let (mut all, mut manifests) = (Vec::new(), Vec::new());
                for (child, _) in children {
                    let Ok(cb) = self.manifest(src, source, &child.digest).await else { continue };
                    let cmt = manifest::media_type_of(&cb, Some(&child.media_type));
                    if let Ok(Parsed::Image { blobs }) = manifest::parse(&cb, &cmt) {
                        all.extend(blobs);
                    }
                    manifests.push(child.digest);
                }
                (all, manifests)
            }
            Err(_) => (Vec::new(), Vec::new()),
        }
    }

    async fn item(
        &self,
        item: &CopyItem,
        source: &Source,
        target: Target,
        survey: Survey,
    ) -> Result<(Outcome, String, String, Vec<Descriptor>), RegistryError> {
        let Found { src, dst, dest_reference, top_mt, top_digest, at_dest } = survey.found?;
        let what = item.source.clone();
        // The survey left it in the cache (read without counting a second hit).
        let top = match self.engine.cache.read(&top_digest) {
            Ok(b) => b,
            Err(_) => self.manifest(&src, source, &top_digest).await?,
        };
        if let Some(want) = &src.digest
            && *want != top_digest
        {
            return Err(RegistryError::DigestMismatch { what, expected: want.clone(), actual: top_digest });
        }
        // The manifests to write, children first.
        let mut nodes = Vec::new();
        let (top, top_digest) = match manifest::parse(&top, &top_mt)
            .map_err(|e| RegistryError::Manifest { what: what.clone(), source: e })?
        {
            Parsed::Image { blobs } => {
                nodes.push(Node {
                    desc: Descriptor { digest: top_digest.clone(), size: top.len() as u64, media_type: top_mt.clone() },
                    bytes: top,
                    blobs,
                });
                (None, top_digest)
            }
            Parsed::Index { .. } => {
                let sparse = if item.platforms.is_empty() {
                    None
                } else {
                    manifest::sparse_index(&top, &item.platforms)
                        .map_err(|e| RegistryError::Manifest { what: what.clone(), source: e })?
                };
                let (bytes, digest) = match sparse {
                    Some(b) => {
                        let d = manifest::sha256_digest(&b);
                        self.engine.cache.put(&d, &b).map_err(|e| local("writing cache", e))?;
                        (b, d)
                    }
                    None => (top, top_digest),
                };
                let Ok(Parsed::Index { children }) = manifest::parse(&bytes, &top_mt) else {
                    unreachable!("an index stays an index when filtered")
                };
                for (child, _) in children {
                    let cb = self.manifest(&src, source, &child.digest).await?;
                    let cmt = manifest::media_type_of(&cb, Some(&child.media_type));
                    match manifest::parse(&cb, &cmt)
                        .map_err(|e| RegistryError::Manifest { what: what.clone(), source: e })?
                    {
                        Parsed::Image { blobs } => {
                            // Real indexes sometimes declare a wrong child size; the bytes win.
                            let desc = Descriptor { size: cb.len() as u64, ..child };
                            nodes.push(Node { desc, bytes: cb, blobs })
                        }
                        Parsed::Index { .. } => {
                            return Err(RegistryError::Manifest {
                                what,
                                source: manifest::ManifestError::MediaType("an index nested in an index".into()),
                            });
                        }
                    }
                }
                (Some(bytes), digest)
            }
        };
        let mut contents: Vec<Descriptor> = Vec::new();
        for n in &nodes {
            contents.push(n.desc.clone());
            contents.extend(n.blobs.iter().cloned());
        }
        if let Some(b) = &top {
            contents.push(Descriptor { digest: top_digest.clone(), size: b.len() as u64, media_type: top_mt.clone() });
        }
        let contents: Vec<Descriptor> = contents.into_iter().collect::<BTreeSet<_>>().into_iter().collect();

        if let Some((d, _)) = at_dest?
            && d == top_digest
        {
            return Ok((Outcome::AlreadyPresent, top_digest, top_mt, contents));
        }
        for node in &nodes {
            futures::stream::iter(node.blobs.iter())
                .map(|b| async {
                    self.blob(&src, &dst, source, target, b).await?;
                    self.progress.placed(place(&dst, target), b);
                    Ok::<(), RegistryError>(())
                })
                .buffer_unordered(self.opts.parallel_layers.max(1))
                .try_collect::<Vec<()>>()
                .await?;
            if target == Target::Registry {
                let reference = if top.is_none() { &dest_reference } else { &node.desc.digest };
                self.client
                    .manifest_put(&dst.registry, &dst.path, reference, &node.bytes, &node.desc.media_type)
                    .await?;
            }
        }
        if let (Some(bytes), Target::Registry) = (&top, target) {
            self.client.manifest_put(&dst.registry, &dst.path, &dest_reference, bytes, &top_mt).await?;
        }
        Ok((Outcome::Copied, top_digest, top_mt, contents))
    }

    async fn upload_from_cache(
        &self,
        src: &ImageRef,
        dst: &ImageRef,
        source: &Source,
        desc: &Descriptor,
        session: Option<String>,
    ) -> Result<(), RegistryError> {
        self.cached(src, source, desc).await?;
        let path = self.engine.cache.path(&desc.digest).map_err(|e| local("cache", e))?;
        self.client.blob_upload(&dst.registry, &dst.path, &desc.digest, desc.size, &path, session).await
    }

    /// Downloads a blob into the cache and uploads it at the same time, so a cold copy costs
    /// the slower of the two rather than their sum. `Ok(false)` when the upload did not make
    /// it (the blob is then in the cache for a normal upload); errors are the download's.
    async fn stream_through(
        &self,
        src: &ImageRef,
        dst: &ImageRef,
        desc: &Descriptor,
        session: Option<String>,
    ) -> Result<bool, RegistryError> {
        let _turn = self.engine.cache.flight(&desc.digest).await;
        if self.engine.cache.has(&desc.digest) {
            return Ok(false);
        }
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let chunks = futures::stream::unfold(rx, |mut rx| async { rx.recv().await.map(|c| (c, rx)) });
        let upload = self.client.blob_upload_stream(&dst.registry, &dst.path, &desc.digest, desc.size, chunks, session);
        let download = fetch::blob(&self.client, &self.engine.cache, &src.registry, &src.path, desc, Some(tx));
        let (uploaded, downloaded) = futures::join!(upload, download);
        downloaded?;
        if let Err(e) = &uploaded {
            tracing::debug!(blob = %desc.digest, error = %e, "streamed upload failed; uploading from the cache");
        }
        Ok(uploaded.is_ok())
    }

    /// Makes one blob present in the cache (single flight per digest).
    async fn cached(&self, src: &ImageRef, source: &Source, desc: &Descriptor) -> Result<(), RegistryError> {
        let hit = || async {
            if let Source::Registry = source {
                self.client.prove_blob(&src.registry, &src.path, &desc.digest).await?;
            }
            self.engine.cache.count(true);
            Ok(())
        };
        if self.engine.cache.has(&desc.digest) {
            return hit().await;
        }
        let _turn = self.engine.cache.flight(&desc.digest).await;
        if self.engine.cache.has(&desc.digest) {
            return hit().await;
        }
        match source {
            Source::Registry => {
                fetch::blob(&self.client, &self.engine.cache, &src.registry, &src.path, desc, None).await
            }
            Source::Archive(_) => {
                Err(RegistryError::NotFound { what: format!("blob {} in the archives", desc.digest) })
            }
        }
    }

    /// Makes one blob present at the destination repository (or in the cache).
    async fn blob(
        &self,
        src: &ImageRef,
        dst: &ImageRef,
        source: &Source,
        target: Target,
        desc: &Descriptor,
    ) -> Result<(), RegistryError> {
        if target == Target::Cache {
            let _transfer = match self.engine.cache.has(&desc.digest) {
                true => None,
                false => Some(self.engine.transfers.acquire().await.expect("never closed")),
            };
            return self.cached(src, source, desc).await;
        }
        let key = (dst.registry.clone(), desc.digest.clone());
        let _turn = self.engine.pushing.enter(key.clone()).await;
        let known: Vec<String> =
            self.engine.homes.lock().expect("homes").get(&key).map(|s| s.iter().cloned().collect()).unwrap_or_default();
        if known.contains(&dst.path) {
            return Ok(());
        }
        let remember = |repo: &str| {
            self.engine.homes.lock().expect("homes").entry(key.clone()).or_default().insert(repo.to_string());
        };
        if self.client.blob_head(&dst.registry, &dst.path, &desc.digest).await?.is_some() {
            remember(&dst.path);
            return Ok(());
        }
        let mut session = None;
        if let Some(from) = known.first() {
            match self.client.blob_mount(&dst.registry, &dst.path, &desc.digest, from).await? {
                Mount::Mounted => {
                    remember(&dst.path);
                    return Ok(());
                }
                Mount::Upload(loc) => session = Some(loc),
            }
        }
        let _transfer = self.engine.transfers.acquire().await.expect("never closed");
        if matches!(source, Source::Registry) && !self.engine.cache.has(&desc.digest) && src.registry != dst.registry {
            if !self.stream_through(src, dst, desc, session.take()).await? {
                self.upload_from_cache(src, dst, source, desc, None).await?;
            }
        } else {
            self.upload_from_cache(src, dst, source, desc, session).await?;
        }
        self.progress.bytes.fetch_add(desc.size, Ordering::Relaxed);
        remember(&dst.path);
        Ok(())
    }
}
