//! Step 1 (fetch) for operator catalogs: the catalog image's manifests, configs and layers
//! into the cache (from a registry, or an `oci://` layout on disk), and its file-based
//! catalog read from the layers.

use std::path::{Path, PathBuf};

use crate::cache::{Cache, fetch};
use crate::catalog::image::{self, SourceImage};
use crate::catalog::{Catalog, CatalogError};
use crate::image::manifest::{self, Descriptor, Parsed};
use crate::image::{ImageRef, Transport};
use crate::registry::{Client, RegistryError};

/// A catalog image as fetched: enough to read it and to rebuild it.
#[derive(Debug)]
pub struct FetchedCatalog {
    /// Digest of the top manifest.
    pub digest: String,
    /// The top index, when the catalog is multi-arch: (bytes, media type).
    pub index: Option<(Vec<u8>, String)>,
    /// Platform images: (manifest digest, manifest + config).
    pub images: Vec<(String, SourceImage)>,
    /// The file-based catalog.
    pub catalog: Catalog,
}

impl std::fmt::Debug for SourceImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceImage({} B manifest, {} B config)", self.manifest.len(), self.config.len())
    }
}

/// Why a catalog could not be fetched or read.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    /// Registry trouble.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The layout or cache could not be read.
    #[error("{0}")]
    Local(String),
    /// The image is not a usable catalog.
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// The catalog content is not valid.
    #[error("catalog {catalog}: {source}")]
    Catalog {
        /// The catalog reference.
        catalog: String,
        /// What is wrong.
        source: CatalogError,
    },
}

impl CollectError {
    /// Stable reason for conditions, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            CollectError::Registry(_) => "CatalogUnavailable",
            CollectError::Local(_) => "CatalogUnreadable",
            CollectError::Image(_) | CollectError::Catalog { .. } => "InvalidCatalog",
        }
    }
}

enum Origin<'a> {
    Registry { client: &'a Client, registry: &'a str, repo: &'a str },
    Layout(PathBuf),
}

impl Origin<'_> {
    /// A blob or manifest by digest, verified, into the cache.
    async fn cache_blob(&self, cache: &Cache, desc: &Descriptor) -> Result<(), CollectError> {
        // From a registry, even a cached blob goes through the fetch layer: it checks that
        // this client may read it at the source before the cache serves it.
        if cache.has(&desc.digest) && matches!(self, Origin::Layout(_)) {
            return Ok(());
        }
        match self {
            Origin::Registry { client, registry, repo } => {
                Ok(fetch::blob_once(client, cache, registry, repo, desc).await?)
            }
            Origin::Layout(dir) => {
                let hex = desc.digest.strip_prefix("sha256:").ok_or_else(|| {
                    CollectError::Local(format!("{}: only sha256 digests are supported", desc.digest))
                })?;
                let path = dir.join("blobs/sha256").join(hex);
                let file =
                    std::fs::File::open(&path).map_err(|e| CollectError::Local(format!("{}: {e}", path.display())))?;
                cache.put_reader(&desc.digest, file).map_err(|e| CollectError::Local(e.to_string()))?;
                Ok(())
            }
        }
    }

    async fn manifest(&self, cache: &Cache, digest: &str) -> Result<Vec<u8>, CollectError> {
        match self {
            Origin::Registry { client, registry, repo } => {
                Ok(fetch::manifest(client, cache, registry, repo, digest).await?)
            }
            Origin::Layout(_) => {
                let d = Descriptor { digest: digest.into(), size: 0, media_type: String::new() };
                self.cache_blob(cache, &d).await?;
                cache.read(digest).map_err(|e| CollectError::Local(e.to_string()))
            }
        }
    }
}

fn layout_top(dir: &Path) -> Result<String, CollectError> {
    let path = dir.join("index.json");
    let bytes = std::fs::read(&path).map_err(|e| CollectError::Local(format!("{}: {e}", path.display())))?;
    let v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| CollectError::Local(format!("{}: {e}", path.display())))?;
    let first = v.pointer("/manifests/0/digest").and_then(|d| d.as_str());
    first.map(str::to_string).ok_or_else(|| CollectError::Local(format!("{}: no manifests", path.display())))
}

/// Fetches a catalog image and reads its file-based catalog.
pub async fn fetch_catalog(client: &Client, cache: &Cache, catalog: &str) -> Result<FetchedCatalog, CollectError> {
    let r = ImageRef::parse(catalog).map_err(|e| CollectError::Local(format!("catalog {catalog}: {e}")))?;
    let (from, digest) = match r.transport {
        Transport::Docker => {
            let d = fetch::top_digest(client, &r, &format!("catalog {r}")).await?;
            (Origin::Registry { client, registry: &r.registry, repo: &r.path }, d)
        }
        Transport::Oci => {
            let dir = PathBuf::from(&r.path);
            let d = layout_top(&dir)?;
            (Origin::Layout(dir), d)
        }
    };
    let top = from.manifest(cache, &digest).await?;
    let mt = manifest::media_type_of(&top, None);
    let parsed = manifest::parse(&top, &mt).map_err(|e| CollectError::Local(format!("catalog {catalog}: {e}")))?;
    let mut images = Vec::new();
    let mut index = None;
    match parsed {
        Parsed::Image { .. } => images.push((digest.clone(), top.clone())),
        Parsed::Index { children } => {
            for (child, platform) in children {
                // Attestations and other non-image entries (platform unknown) are not catalogs.
                if platform.as_ref().is_some_and(|(os, _)| os == "unknown") {
                    continue;
                }
                let bytes = from.manifest(cache, &child.digest).await?;
                let cmt = manifest::media_type_of(&bytes, None);
                if manifest::is_index(&cmt) {
                    continue;
                }
                images.push((child.digest.clone(), bytes));
            }
            index = Some((top.clone(), mt.clone()));
        }
    }
    let mut sources = Vec::new();
    for (d, m) in images {
        let mmt = manifest::media_type_of(&m, None);
        let Parsed::Image { blobs } =
            manifest::parse(&m, &mmt).map_err(|e| CollectError::Local(format!("catalog {catalog}: {e}")))?
        else {
            continue;
        };
        let config_desc = blobs.first().ok_or_else(|| CollectError::Local(format!("catalog {catalog}: no config")))?;
        from.cache_blob(cache, config_desc).await?;
        let config = cache.read(&config_desc.digest).map_err(|e| CollectError::Local(e.to_string()))?;
        sources.push((d, SourceImage { manifest: m, config }, blobs[1..].to_vec()));
    }
    // Read the catalog from one image (linux/amd64 when there is a choice): the content is
    // the same on every platform.
    let pick = sources.iter().position(|(_, s, _)| is_amd64(&s.config)).unwrap_or(0);
    let (_, first, layers) =
        sources.get(pick).ok_or_else(|| CollectError::Local(format!("catalog {catalog}: no image")))?;
    let dir = image::configs_dir(&first.config)?;
    for l in layers {
        from.cache_blob(cache, l).await?;
    }
    let mut readers = Vec::new();
    for l in layers {
        let p = cache.path(&l.digest).map_err(|e| CollectError::Local(e.to_string()))?;
        let f = std::fs::File::open(&p).map_err(|e| CollectError::Local(format!("{}: {e}", p.display())))?;
        readers.push((l.digest.clone(), f));
    }
    let catalog_name = catalog.to_string();
    let cat = tokio::task::spawn_blocking(move || -> Result<Catalog, CollectError> {
        let files = image::extract_dir(readers, &dir)?;
        Catalog::from_files(files).map_err(|source| CollectError::Catalog { catalog: catalog_name, source })
    })
    .await
    .map_err(|e| CollectError::Local(e.to_string()))??;
    let images = sources.into_iter().map(|(d, s, _)| (d, s)).collect();
    Ok(FetchedCatalog { digest, index, images, catalog: cat })
}

/// Imports the whole image of an `oci://` catalog (every platform, every blob) into the cache,
/// where the copy engine serves it like a rebuilt catalog; returns its top digest. A catalog
/// taken whole from a layout is copied as it is, digests unchanged.
pub async fn import_layout(cache: &Cache, catalog: &str) -> Result<String, CollectError> {
    let r = ImageRef::parse(catalog).map_err(|e| CollectError::Local(format!("catalog {catalog}: {e}")))?;
    let dir = PathBuf::from(&r.path);
    let top = layout_top(&dir)?;
    let from = Origin::Layout(dir);
    let mut todo = vec![top.clone()];
    while let Some(d) = todo.pop() {
        let bytes = from.manifest(cache, &d).await?;
        let mt = manifest::media_type_of(&bytes, None);
        match manifest::parse(&bytes, &mt).map_err(|e| CollectError::Local(format!("catalog {catalog}: {e}")))? {
            Parsed::Index { children } => todo.extend(children.into_iter().map(|(c, _)| c.digest)),
            Parsed::Image { blobs } => {
                for b in &blobs {
                    from.cache_blob(cache, b).await?;
                }
            }
        }
    }
    Ok(top)
}

fn is_amd64(config: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(config)
        .ok()
        .is_some_and(|v| v.get("architecture").and_then(|a| a.as_str()) == Some("amd64"))
}

/// Stores a rebuilt catalog's blobs and manifests in the cache; returns the top digest.
pub fn store_rebuilt(cache: &Cache, rebuilt: &image::Rebuilt) -> Result<String, CollectError> {
    for b in rebuilt.blobs.iter().chain(rebuilt.manifests.iter()).chain(std::iter::once(&rebuilt.top)) {
        if !cache.has(&b.digest) {
            cache.put(&b.digest, &b.bytes).map_err(|e| CollectError::Local(e.to_string()))?;
        }
    }
    Ok(rebuilt.top.digest.clone())
}
