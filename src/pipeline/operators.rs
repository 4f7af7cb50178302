//! Operator catalogs for `mirror`: fetch each catalog, select its bundles, rebuild the
//! filtered catalog into the cache, and add bundles, related images and catalogs to the plan;
//! after the bundle phase, rebuild again the catalogs that list bundles the copy could not
//! mirror.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::error::Error;
use super::files::newest_archive;
use super::planned::{Planned, Rebuilt};
use super::request::{Mode, Request};
use crate::cache::Cache;
use crate::catalog::{self, Catalog, image, write};
use crate::collect::{self, FetchedCatalog};
use crate::image::{ImageRef, Transport};
use crate::plan::{self, CatalogInput, CopyItem, Destination};
use crate::registry::Client;

/// One catalog, fetched and selected.
struct Selected {
    index: usize,
    fetched: FetchedCatalog,
    selection: catalog::Selection,
}

/// Collects every catalog of the image set into the plan; returns summary lines.
pub async fn collect(
    inv: &Request,
    client: &Arc<Client>,
    cache: &Arc<Cache>,
    planned: &mut Planned,
) -> Result<Vec<String>, Error> {
    // Disk to mirror selects again from the catalogs the archives hold, so an image set
    // naming less than the archives hold imports only what it names.
    let archived = match inv.mode {
        Mode::DiskToMirror => Some(archived_catalogs(inv, cache, planned)?),
        _ => None,
    };
    let mut lines = Vec::new();
    let mut selected = Vec::new();
    for (i, op) in planned.operators.iter().enumerate() {
        let field = format!("mirror.operators[{i}]");
        let reference = match &archived {
            Some(a) => a.catalog(op, &field)?,
            None => op.catalog.clone(),
        };
        let fetched = collect::fetch_catalog(client, cache, &reference)
            .await
            .map_err(|e| Error::CatalogFetch(format!("collection error: {field}: catalog {}: {e}", op.catalog)))?;
        let selection = catalog::select(&fetched.catalog, op, &field)
            .map_err(|e| Error::Catalog(format!("collection error: {e}")))?;
        for w in &selection.warnings {
            tracing::warn!(catalog = %op.catalog, "{w}");
        }
        selected.push(Selected { index: i, fetched, selection });
    }
    let mut inputs = Vec::new();
    for s in &selected {
        let op = &planned.operators[s.index];
        let oci = ImageRef::parse(&op.catalog).is_ok_and(|r| r.transport == Transport::Oci);
        let imported = if s.selection.whole && oci {
            Some(collect::import_layout(cache, &op.catalog).await.map_err(|e| {
                Error::Catalog(format!("mirror.operators[{}]: importing catalog {}: {e}", s.index, op.catalog))
            })?)
        } else {
            None
        };
        let rebuilt = if s.selection.whole {
            None
        } else if archived.is_some() && selects_every_bundle(&s.fetched.catalog, &s.selection) {
            // The archived catalog already lists exactly the selection: pushed as it is.
            Some(s.fetched.digest.clone())
        } else {
            Some(rebuild(cache, &s.fetched, &s.selection).map_err(|e| {
                Error::Catalog(format!("mirror.operators[{}]: rebuilding catalog {}: {e}", s.index, op.catalog))
            })?)
        };
        let bundles: Vec<_> = s
            .selection
            .bundles(&s.fetched.catalog)
            .into_iter()
            .map(|b| {
                let related = b.related_images.iter().map(|r| r.image.clone()).collect();
                (b.package.clone(), b.name.clone(), b.image.clone(), related)
            })
            .collect();
        let deps = match s.selection.dependencies.len() {
            0 => String::new(),
            n => format!(" ({n} as dependencies)"),
        };
        lines.push(format!(
            "catalog {}: {} packages, {} bundles selected{deps}{}",
            op.catalog,
            s.selection.packages.len(),
            bundles.len(),
            match &rebuilt {
                Some(d) => format!(", rebuilt as {d}"),
                None => ", taken whole".to_string(),
            }
        ));
        inputs.push(CatalogInput { index: s.index, op, bundles, rebuilt, imported });
    }
    let (mut items, needs) = plan::plan_operators(&inputs, &inv.destination, inv.max_nested_paths)?;
    for w in plan::tag_and_digest_warnings(&items) {
        tracing::warn!("{w}");
        lines.push(format!("warning: {w}"));
        planned.warnings.push(w);
    }
    let digests: Vec<Option<String>> = inputs.into_iter().map(|i| i.rebuilt).collect();
    if let Some(a) = &archived {
        a.point_at_archives(&mut items, planned, cache)?;
    }
    planned.add(items);
    planned.needs = needs;
    for (s, digest) in selected.into_iter().zip(digests) {
        if let Some(digest) = digest {
            let Selected { index, fetched, selection } = s;
            planned.rebuilt.push(Rebuilt { index, fetched, selection, digest });
        }
    }
    Ok(lines)
}

/// After the bundle phase: rebuilds each catalog that lists bundles the copy could not mirror
/// (by catalog entry: package, bundle) without them, every channel kept valid, and points the
/// catalog's copy in the plan at the new image. Returns summary lines, and the catalog copies
/// that could not be rebuilt (taken out of the plan, with why) so that a catalog listing
/// missing bundles is never copied.
pub fn rebuild_without(
    planned: &mut Planned,
    gone: &BTreeMap<usize, BTreeSet<(String, String)>>,
    cache: &Cache,
    dest: &Destination,
    max_nested: u32,
) -> (Vec<String>, Vec<(CopyItem, String)>) {
    let mut lines = Vec::new();
    let mut failed = Vec::new();
    for (&index, bundles) in gone {
        let op = &planned.operators[index];
        let list = bundles.iter().map(|(_, b)| b.as_str()).collect::<Vec<_>>().join(", ");
        let Some(r) = planned.rebuilt.iter_mut().find(|r| r.index == index) else {
            let w = format!("taken whole, it still lists {list}, which could not be mirrored");
            tracing::warn!(catalog = %op.catalog, "{w}");
            lines.push(format!("warning: catalog {}: {w}", op.catalog));
            continue;
        };
        // Planning made this very item from the same entry, so it cannot fail now.
        let Ok(old) = plan::catalog_item(index, op, Some(&r.digest), dest, max_nested) else { continue };
        let selection = catalog::prune::without(&r.fetched.catalog, &r.selection, bundles);
        for w in &selection.warnings {
            tracing::warn!(catalog = %op.catalog, "{w}");
            lines.push(format!("warning: catalog {}: {w}", op.catalog));
        }
        let new = rebuild(cache, &r.fetched, &selection).and_then(|d| {
            let item = plan::catalog_item(index, op, Some(&d), dest, max_nested).map_err(|e| e.to_string())?;
            Ok((d, item))
        });
        match new {
            Ok((digest, item)) => {
                lines.push(format!("catalog {}: rebuilt without {list} (not mirrored), as {digest}", op.catalog));
                for i in planned.plan.items.iter_mut().filter(|i| **i == old) {
                    *i = item.clone();
                }
                r.selection = selection;
                r.digest = digest;
            }
            Err(e) => {
                let why = format!("rebuilding catalog {} without {list}: {e}", op.catalog);
                planned.plan.items.retain(|i| *i != old);
                failed.push((old, why));
            }
        }
    }
    (lines, failed)
}

/// Disk-to-mirror: the bundles, related images and (rebuilt) catalogs the archives hold, as
/// the mirror-to-disk run recorded them.
/// The operator images the archives of a disk-to-mirror run hold, by upstream reference.
struct Archived {
    from: std::path::PathBuf,
    /// Catalog origin -> `localhost:55000/<path>@<digest>` in the cache.
    catalogs: BTreeMap<String, String>,
    /// Bundle and related image origin -> its name in the archives.
    images: BTreeMap<String, String>,
}

/// Unpacks the archives into the cache (once: the copy reuses what this finds) and indexes
/// their operator images.
fn archived_catalogs(inv: &Request, cache: &Cache, planned: &mut Planned) -> Result<Archived, Error> {
    use crate::plan::{DISK_ROOT, ImageKind};
    let (from, contents) = newest_archive(inv, "mirror.operators")?;
    if planned.archived.is_none() {
        let names = tokio::task::block_in_place(|| crate::cache::archive::import(&from, cache))
            .map_err(|e| Error::Archive(format!("reading archives: {e}")))?;
        planned.archived = Some(names);
    }
    let bare = |s: &str| s.trim_start_matches("docker://").to_string();
    let mut a = Archived { from: from.clone(), catalogs: BTreeMap::new(), images: BTreeMap::new() };
    for img in &contents.images {
        match img.kind {
            Some(ImageKind::OperatorCatalog) => {
                let path = img.name.strip_prefix(&format!("{DISK_ROOT}/")).and_then(|r| r.rsplit_once(':'));
                if let Some((path, _)) = path {
                    a.catalogs.insert(bare(&img.origin), format!("{DISK_ROOT}/{path}@{}", img.digest));
                }
            }
            Some(ImageKind::OperatorBundle | ImageKind::OperatorRelatedImage) => {
                a.images.insert(bare(&img.origin), img.name.clone());
            }
            _ => {}
        }
    }
    if a.catalogs.is_empty() {
        return Err(Error::Archive(format!(
            "mirror.operators: the archives in {} hold no operator catalogs (written by an older version, or without operators)",
            from.display()
        )));
    }
    Ok(a)
}

impl Archived {
    /// Where the archives keep the catalog of `op`.
    fn catalog(&self, op: &crate::api::mirror::Operator, field: &str) -> Result<String, Error> {
        let origin = ImageRef::parse(&op.catalog).map(|r| r.to_string()).unwrap_or_else(|_| op.catalog.clone());
        let origin = origin.trim_start_matches("docker://");
        self.catalogs.get(origin).cloned().ok_or_else(|| {
            Error::Archive(format!(
                "{field}: catalog {} is not in the archives in {} (they hold {})",
                op.catalog,
                self.from.display(),
                self.catalogs.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }

    /// Points the planned bundles, related images and catalogs at their copies in the archives
    /// (or, for a catalog rebuilt here, in the cache); an image the archives lack keeps its
    /// upstream name and fails alone when copied.
    fn point_at_archives(&self, items: &mut [CopyItem], planned: &mut Planned, cache: &Cache) -> Result<(), Error> {
        use crate::plan::{DISK_ROOT, ImageKind};
        let names = planned.archived.get_or_insert_with(Default::default);
        for item in items.iter_mut() {
            let origin = item.origin.trim_start_matches("docker://");
            match item.kind {
                ImageKind::OperatorCatalog => {
                    // Rebuilt here (or the archived one, named by digest), else taken whole.
                    let in_cache = item.source.trim_start_matches("docker://");
                    let key = if in_cache.starts_with(&format!("{DISK_ROOT}/")) {
                        in_cache.to_string()
                    } else if let Some(archived) = self.catalogs.get(origin) {
                        item.source = format!("docker://{archived}");
                        archived.clone()
                    } else {
                        continue;
                    };
                    let digest = key.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_default();
                    let bytes = cache.read(&digest).map_err(|e| Error::Archive(format!("catalog {key}: {e}")))?;
                    let mt = crate::image::manifest::media_type_of(&bytes, None);
                    names.insert(key, (digest, mt));
                }
                _ => {
                    if let Some(name) = self.images.get(origin) {
                        item.source = format!("docker://{name}");
                    }
                }
            }
        }
        Ok(())
    }
}

/// The selection takes every bundle of the catalog (a catalog filtered by the same image set).
fn selects_every_bundle(cat: &Catalog, sel: &catalog::Selection) -> bool {
    sel.bundles(cat).len() == cat.bundles.len()
}

/// Builds the filtered catalog image into the cache; returns its digest.
fn rebuild(cache: &Cache, f: &FetchedCatalog, sel: &catalog::Selection) -> Result<String, String> {
    let files = write::filtered_files(&f.catalog, sel).map_err(|e| e.to_string())?;
    let index = f.index.as_ref().map(|(b, _)| b.as_slice());
    let rebuilt = image::rebuild(index, &f.images, &files).map_err(|e| e.to_string())?;
    collect::store_rebuilt(cache, &rebuilt).map_err(|e| e.to_string())
}

/// Reads a catalog for `list operators`.
pub async fn read(client: &Client, cache: &Cache, catalog: &str) -> Result<Catalog, Error> {
    collect::fetch_catalog(client, cache, catalog)
        .await
        .map(|f| f.catalog)
        .map_err(|e| Error::CatalogFetch(format!("catalog {catalog}: {e}")))
}
