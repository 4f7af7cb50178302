//! Disk to mirror: the charts an archive carries (as the OCI artifacts they are pushed as) go
//! into `working-dir/helm/charts/`, where each entry of the image set is found as oc-mirror
//! finds it. No network.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::{Loaded, Report, chart_file, charts_dir, read_local};
use crate::api::mirror::Helm;
use crate::cache::{Cache, archive};
use crate::helm::chart;
use crate::helm::fetch::MAX_CHART_BYTES;
use crate::helm::index;
use crate::pipeline::error::Error;
use crate::pipeline::files::{newest_archive, write_atomic};
use crate::pipeline::request::Request;
use crate::plan::ImageKind;

/// Disk to mirror: the charts the archives carry (as OCI artifacts) go into
/// `working-dir/helm/charts/<name>-<version>.tgz`; each entry of the image set is then found
/// there as oc-mirror finds it (`<name>-<version>.tgz` or `<name>-v<version>.tgz`), or among
/// the archived charts by name (entries without a version, repositories without `charts`).
/// No network.
pub(super) fn from_archives(
    inv: &Request,
    cache: &Cache,
    helm: &Helm,
    report: &mut Report,
) -> Result<Vec<Loaded>, Error> {
    let (from, contents) = newest_archive(inv, "mirror.helm")?;
    let archived: Vec<&archive::ArchivedImage> = contents
        .images
        .iter()
        .filter(|i| i.kind == Some(ImageKind::Helm) && !i.origin.starts_with("docker://"))
        .collect();
    let manifests = blobs(cache, &from, archived.iter().map(|i| i.digest.clone()).collect())?;
    let mut layers = BTreeSet::new();
    for m in manifests.values() {
        layers.extend(chart::content_layer(m).map(|(d, _)| d));
    }
    let layers = blobs(cache, &from, layers)?;
    let dir = charts_dir(inv);
    // (origin, name, version, archive) of every chart the archives carry.
    let mut pool = Vec::new();
    for img in &archived {
        let Some(tgz) =
            manifests.get(&img.digest).and_then(|m| chart::content_layer(m)).and_then(|(d, _)| layers.get(&d))
        else {
            report.fail(
                "ChartNotInArchive",
                format!("mirror.helm: chart {}: its blobs are not in {}", img.name, from.display()),
            );
            continue;
        };
        let Ok((meta, _)) = chart::chart_yaml(tgz).and_then(|y| chart::meta(&y)) else { continue };
        if let Some(file) = chart_file(&dir, &meta.name, &meta.version)
            && std::fs::read(&file).ok().as_deref() != Some(tgz.as_slice())
        {
            write_atomic(&file, tgz)?;
        }
        pool.push((img.origin.clone(), meta.name, meta.version, tgz.clone()));
    }
    let newest = |name: &str, under: Option<&str>| {
        let mut c: Vec<&(String, String, String, Vec<u8>)> =
            pool.iter().filter(|p| p.1 == name && under.is_none_or(|u| p.0.starts_with(u))).collect();
        c.sort_by_key(|p| index::semver(&p.2));
        c.last().map(|p| (p.0.clone(), p.3.clone()))
    };
    let mut loaded = Vec::new();
    for (i, repo) in helm.repositories.iter().enumerate() {
        let field = format!("mirror.helm.repositories[{i}] ({})", repo.name);
        let base = format!("{}/", index::index_url(&repo.url).trim_end_matches("index.yaml").trim_end_matches('/'));
        if repo.charts.is_empty() {
            let mine: Vec<_> = pool.iter().filter(|p| p.0.starts_with(&base)).collect();
            if mine.is_empty() {
                report.fail(
                    "ChartNotInArchive",
                    format!("{field}: the archives in {} hold no chart of {}", from.display(), repo.url),
                );
            }
            for (origin, _, _, tgz) in mine {
                let (origin, tgz) = (origin.clone(), tgz.clone());
                loaded.push(Loaded { field: field.clone(), origin, tgz, image_paths: vec![], platforms: vec![] });
            }
        }
        for (j, c) in repo.charts.iter().enumerate() {
            let field = format!("mirror.helm.repositories[{i}].charts[{j}] ({})", c.name);
            let found = match c.version.as_deref().filter(|v| !v.is_empty()) {
                Some(v) => on_disk(&dir, &c.name, v).map(|(p, tgz)| (format!("file://{}", p.display()), tgz)),
                None => newest(&c.name, Some(&base)).or_else(|| newest(&c.name, None)),
            };
            match found {
                Some((origin, tgz)) => loaded.push(Loaded {
                    field,
                    origin,
                    tgz,
                    image_paths: c.image_paths.clone(),
                    platforms: c.platforms.clone(),
                }),
                None => report.fail("ChartNotInArchive", not_found(&dir, &c.name, c.version.as_deref(), &field)),
            }
        }
    }
    for (j, c) in helm.local.iter().enumerate() {
        let field = format!("mirror.helm.local[{j}] ({})", c.name);
        let path = c.path.as_deref().map(Path::new);
        let found = match path.filter(|p| p.exists()) {
            Some(p) => Some(read_local(p)),
            None => {
                let origin = path.and_then(|p| std::path::absolute(p).ok()).map(|p| format!("file://{}", p.display()));
                let archived = pool.iter().find(|p| Some(&p.0) == origin.as_ref()).map(|p| (p.0.clone(), p.3.clone()));
                let by_name = || {
                    let v = c.version.as_deref()?;
                    on_disk(&dir, &c.name, v).map(|(p, tgz)| (format!("file://{}", p.display()), tgz))
                };
                archived.or_else(by_name).map(Ok)
            }
        };
        match found {
            Some(Ok((origin, tgz))) => loaded.push(Loaded {
                field,
                origin,
                tgz,
                image_paths: c.image_paths.clone(),
                platforms: c.platforms.clone(),
            }),
            Some(Err(e)) => report.fail("InvalidChart", format!("{field}: {e}")),
            None => report.fail("ChartNotInArchive", not_found(&dir, &c.name, c.version.as_deref(), &field)),
        }
    }
    Ok(loaded)
}

/// oc-mirror's lookup of a chart on disk: `<name>-<version>.tgz`, else with the version's `v`
/// prefix toggled.
pub(super) fn on_disk(dir: &Path, name: &str, version: &str) -> Option<(PathBuf, Vec<u8>)> {
    let other = match version.strip_prefix('v') {
        Some(v) => v.to_string(),
        None => format!("v{version}"),
    };
    [version, other.as_str()].into_iter().find_map(|v| {
        let file = chart_file(dir, name, v)?;
        let bytes = std::fs::read(&file).ok()?;
        Some((file, bytes))
    })
}

fn not_found(dir: &Path, name: &str, version: Option<&str>, field: &str) -> String {
    match version {
        Some(v) => format!(
            "{field}: chart {name} {v} is not in the archives: no {name}-{v}.tgz or {name}-v{}.tgz in {}",
            v.trim_start_matches('v'),
            dir.display()
        ),
        None => format!("{field}: chart {name} is not in the archives"),
    }
}

/// Blobs by digest: out of the archives in `from` (then cached), else from the cache (a chart
/// an earlier run archived, as for images: disk to mirror keeps its cache between runs).
fn blobs(cache: &Cache, from: &Path, wanted: BTreeSet<String>) -> Result<HashMap<String, Vec<u8>>, Error> {
    let mut found = archive::read_blobs(from, &wanted, MAX_CHART_BYTES).map_err(|e| Error::Archive(e.to_string()))?;
    for (d, b) in &found {
        if !cache.has(d) {
            cache.put(d, b).map_err(|e| Error::Setup(e.to_string()))?;
        }
    }
    for d in wanted {
        if !found.contains_key(&d) && cache.has(&d) {
            let b = cache.read(&d).map_err(|e| Error::Setup(e.to_string()))?;
            found.insert(d, b);
        }
    }
    Ok(found)
}
