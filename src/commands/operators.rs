//! Operator catalogs for `mirror`: fetch each catalog, select its bundles, rebuild the
//! filtered catalog into the cache, and add bundles, related images and catalogs to the plan.

use std::sync::Arc;

use super::CliError;
use super::mirror::{Invocation, Mode, Planned};
use crate::cache::Cache;
use crate::catalog::{self, Catalog, image, write};
use crate::collect::{self, FetchedCatalog};
use crate::plan::{self, CatalogInput};
use crate::registry::Client;

/// One catalog, fetched and selected.
struct Selected {
    index: usize,
    fetched: FetchedCatalog,
    selection: catalog::Selection,
}

/// Collects every catalog of the image set into the plan; returns summary lines.
pub async fn collect(
    inv: &Invocation,
    client: &Arc<Client>,
    cache: &Arc<Cache>,
    planned: &mut Planned,
    args: &crate::cli::MirrorArgs,
) -> Result<Vec<String>, CliError> {
    if inv.mode == Mode::DiskToMirror {
        return from_archives(inv, planned, args);
    }
    let mut lines = Vec::new();
    let mut selected = Vec::new();
    for (i, op) in planned.operators.iter().enumerate() {
        let field = format!("mirror.operators[{i}]");
        let fetched = collect::fetch_catalog(client, cache, &op.catalog)
            .await
            .map_err(|e| CliError::Setup(format!("{field}: catalog {}: {e}", op.catalog)))?;
        let selection = catalog::select(&fetched.catalog, op, &field).map_err(|e| CliError::Setup(e.to_string()))?;
        for w in &selection.warnings {
            tracing::warn!(catalog = %op.catalog, "{w}");
        }
        selected.push(Selected { index: i, fetched, selection });
    }
    let mut inputs = Vec::new();
    for s in &selected {
        let op = &planned.operators[s.index];
        let rebuilt = if s.selection.whole {
            None
        } else {
            Some(rebuild(cache, &s.fetched, &s.selection).map_err(|e| {
                CliError::Setup(format!("mirror.operators[{}]: rebuilding catalog {}: {e}", s.index, op.catalog))
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
        inputs.push(CatalogInput { index: s.index, op, bundles, rebuilt });
    }
    let (items, needs) = plan::plan_operators(&inputs, &inv.destination, args.common.max_nested_paths)?;
    planned.add(items);
    planned.needs = needs;
    Ok(lines)
}

/// Disk-to-mirror: the bundles, related images and (rebuilt) catalogs the archives hold, as
/// the mirror-to-disk run recorded them.
fn from_archives(
    inv: &Invocation,
    planned: &mut Planned,
    args: &crate::cli::MirrorArgs,
) -> Result<Vec<String>, CliError> {
    use crate::plan::ImageKind;
    let (from, contents) = super::mirror::newest_archive(args, "mirror.operators")?;
    let kinds = [ImageKind::OperatorRelatedImage, ImageKind::OperatorBundle, ImageKind::OperatorCatalog];
    let items = plan::plan_archived_kinds(&contents.images, &kinds, &inv.destination, args.common.max_nested_paths);
    let catalogs = items.iter().filter(|i| i.kind == ImageKind::OperatorCatalog).count();
    if catalogs == 0 {
        return Err(CliError::Setup(format!(
            "mirror.operators: the archives in {} hold no operator catalogs (written by an older version, or without operators)",
            from.display()
        )));
    }
    let lines = vec![format!("{} operator images found in the archives ({catalogs} catalogs)", items.len())];
    planned.add(items);
    Ok(lines)
}

/// Builds the filtered catalog image into the cache; returns its digest.
fn rebuild(cache: &Cache, f: &FetchedCatalog, sel: &catalog::Selection) -> Result<String, String> {
    let files = write::filtered_files(&f.catalog, sel).map_err(|e| e.to_string())?;
    let index = f.index.as_ref().map(|(b, _)| b.as_slice());
    let rebuilt = image::rebuild(index, &f.images, &files).map_err(|e| e.to_string())?;
    collect::store_rebuilt(cache, &rebuilt).map_err(|e| e.to_string())
}

/// Reads a catalog for `list operators`.
pub async fn read(client: &Client, cache: &Cache, catalog: &str) -> Result<Catalog, CliError> {
    collect::fetch_catalog(client, cache, catalog)
        .await
        .map(|f| f.catalog)
        .map_err(|e| CliError::Setup(format!("catalog {catalog}: {e}")))
}
