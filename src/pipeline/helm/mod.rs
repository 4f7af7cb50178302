//! Helm charts for `mirror` (and `delete`): each chart of `mirror.helm` is fetched from its
//! repository (`index.yaml`, digest checked) into `working-dir/helm/charts/`, read from its
//! local path, or (disk to mirror) taken from the archives; rendered to find its images
//! (oc-mirror's rules, `crate::helm::render`); its images planned as `helmImage`s; and the chart
//! kept in the cache as the OCI artifact `helm push` makes, pushed to the destination after
//! the images (or archived, mirror to disk). A chart that fails is a failure of that chart
//! only (exit bit 16): the rest of the image set goes on.

mod disk;
mod push;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use push::{archived, push, summary};

use super::error::Error;
use super::files::write_atomic;
use super::planned::Planned;
use super::request::{Mode, Request};
use crate::api::mirror::{Helm, PlatformSelector};
use crate::cache::Cache;
use crate::helm::chart::{self, Artifact};
use crate::helm::fetch::{Fetcher, MAX_CHART_BYTES};
use crate::helm::index::{self, Index};
use crate::helm::render;
use crate::plan::{self, CopyItem, ImageKind};
use crate::registry::ClientOptions;

/// How long one request to a chart repository may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// A chart of the image set, collected: its artifact's blobs are in the cache.
#[derive(Debug, Clone)]
pub struct Chart {
    /// The entry that named it (`mirror.helm.repositories[0] (name)`), for messages.
    pub field: String,
    /// Where it came from: its archive URL, or `file://<path>` of a local chart.
    pub origin: String,
    /// The chart as an OCI artifact.
    pub artifact: Artifact,
    /// Where it goes: `docker://<root>/helm-charts/<name>:<version>`.
    pub destination: String,
}

impl Chart {
    /// `name version`, for messages.
    pub fn id(&self) -> String {
        format!("{} {}", self.artifact.meta.name, self.artifact.meta.version)
    }

    /// The artifact's blobs: manifest, config and content layer.
    pub fn blobs(&self) -> [crate::image::manifest::Descriptor; 3] {
        use crate::image::manifest::Descriptor;
        let a = &self.artifact;
        [
            Descriptor {
                digest: a.digest.clone(),
                size: a.manifest.len() as u64,
                media_type: chart::MANIFEST_MEDIA_TYPE.into(),
            },
            Descriptor {
                digest: a.config_digest.clone(),
                size: a.config.len() as u64,
                media_type: chart::CONFIG_MEDIA_TYPE.into(),
            },
            Descriptor {
                digest: a.layer_digest.clone(),
                size: a.layer_size,
                media_type: chart::CONTENT_MEDIA_TYPE.into(),
            },
        ]
    }
}

/// A chart archive found for an entry, before rendering.
struct Loaded {
    field: String,
    origin: String,
    tgz: Vec<u8>,
    image_paths: Vec<String>,
    platforms: Vec<PlatformSelector>,
}

/// What collection says about charts: summary lines and failures.
#[derive(Default)]
struct Report {
    lines: Vec<String>,
    failures: Vec<(ImageKind, &'static str, String)>,
}

impl Report {
    fn fail(&mut self, reason: &'static str, message: String) {
        tracing::warn!(reason, "{message}");
        self.lines.push(format!("✗ {message}"));
        self.failures.push((ImageKind::Helm, reason, message));
    }
}

/// Collects the charts of the image set into the plan (their images) and `planned.charts`;
/// returns summary lines. Failures of single charts go to `planned.failures`.
pub async fn collect(inv: &Request, cache: &Cache, planned: &mut Planned) -> Result<Vec<String>, Error> {
    let Some(helm) = planned.helm.clone() else { return Ok(vec![]) };
    let mut report = Report::default();
    let loaded = match inv.mode {
        Mode::DiskToMirror => disk::from_archives(inv, cache, &helm, &mut report)?,
        _ => fetch_all(inv, planned.access.as_ref(), &helm, &mut report).await?,
    };
    let mut found = Vec::new();
    for l in loaded {
        let Loaded { field, origin, tgz, image_paths, platforms } = l;
        let artifact = match chart::artifact(&tgz) {
            Ok(a) => a,
            Err(e) => {
                report.fail("InvalidChart", format!("{field}: {origin}: {e}"));
                continue;
            }
        };
        store(cache, &artifact, &tgz)?;
        let library = artifact.meta.library;
        let images = if library {
            Ok(Vec::new())
        } else {
            tokio::task::spawn_blocking(move || {
                let c = render::load_archive(&tgz)?;
                render::images(&c, &image_paths)
            })
            .await
            .map_err(|e| Error::Setup(format!("rendering {field}: {e}")))?
            .map_err(|e| e.to_string())
        };
        let destination = plan::chart_destination(
            &inv.destination,
            &artifact.meta.name,
            &chart::tag(&artifact.meta.version),
            inv.max_nested_paths,
        );
        found.push((Chart { field, origin, artifact, destination }, platforms, images));
    }
    let (items, charts, lines, failures) =
        plan_charts(found, &inv.destination, inv.max_nested_paths, inv.mode == Mode::DiskToMirror);
    report.lines.extend(lines);
    report.failures.extend(failures);
    for w in plan::tag_and_digest_warnings(&items) {
        tracing::warn!("{w}");
        report.lines.push(format!("warning: {w}"));
        planned.warnings.push(w);
    }
    planned.add(items);
    planned.charts = charts;
    planned.failures.extend(report.failures);
    Ok(report.lines)
}

/// The pure end of collection: each chart with what rendering found becomes plan items and a
/// chart to push; a chart that did not render, or an image that is no usable reference, is a
/// failure of its own. Charts are kept once per destination.
#[allow(clippy::type_complexity)] // one tuple per chart, read once below
fn plan_charts(
    found: Vec<(Chart, Vec<PlatformSelector>, Result<Vec<String>, String>)>,
    dest: &plan::Destination,
    max_nested: u32,
    from_disk: bool,
) -> (Vec<CopyItem>, Vec<Chart>, Vec<String>, Vec<(ImageKind, &'static str, String)>) {
    let (mut items, mut charts, mut lines, mut failures) = (Vec::new(), Vec::<Chart>::new(), Vec::new(), Vec::new());
    for (chart, platforms, images) in found {
        let name = format!("{}: chart {}", chart.field, chart.id());
        match images {
            Ok(images) => {
                let (planned, refused) = plan::plan_helm(&images, &platforms, dest, max_nested, from_disk);
                let what = if chart.artifact.meta.library { " (a library chart)" } else { "" };
                lines.push(format!("{name}: {} images{what}", planned.len()));
                items.extend(planned);
                for (image, e) in refused {
                    failures.push((ImageKind::Helm, "InvalidHelmImage", format!("{name}: image {image}: {e}")));
                }
            }
            // The chart itself still goes to the mirror: with values of their own, users can
            // install it there (its images then come as additional images).
            Err(e) => failures.push((ImageKind::Helm, "ChartRenderFailed", format!("{name}: {e}"))),
        }
        if !charts.iter().any(|c| c.destination == chart.destination) {
            charts.push(chart);
        }
    }
    for (_, reason, m) in &failures {
        tracing::warn!(reason, "{m}");
        lines.push(format!("✗ {m}"));
    }
    (items, charts, lines, failures)
}

/// Puts a chart's artifact blobs into the cache (content-addressed: nothing is written twice).
fn store(cache: &Cache, a: &Artifact, tgz: &[u8]) -> Result<(), Error> {
    for (digest, bytes) in [(&a.layer_digest, tgz), (&a.config_digest, &a.config[..]), (&a.digest, &a.manifest[..])] {
        if !cache.has(digest) {
            cache.put(digest, bytes).map_err(|e| Error::Setup(format!("caching chart {}: {e}", a.meta.name)))?;
        }
    }
    Ok(())
}

/// `working-dir/helm/charts`.
fn charts_dir(inv: &Request) -> PathBuf {
    inv.working_dir.join("helm").join("charts")
}

/// A file name from a chart's name and version (`<name>-<version>.tgz`), refused when either
/// could leave the directory.
fn chart_file(dir: &Path, name: &str, version: &str) -> Option<PathBuf> {
    let file = format!("{name}-{version}.tgz");
    let safe = !name.is_empty() && !file.contains(['/', '\\']) && !file.starts_with('.');
    safe.then(|| dir.join(file))
}

/// Every chart of the image set from its repository or local path (mirror to mirror, mirror
/// to disk, deletes).
async fn fetch_all(
    inv: &Request,
    access: Option<&ClientOptions>,
    helm: &Helm,
    report: &mut Report,
) -> Result<Vec<Loaded>, Error> {
    let opts = access.cloned().unwrap_or_default();
    let fetcher = Fetcher::new(&opts, REQUEST_TIMEOUT).map_err(|e| Error::Access(e.to_string()))?;
    let dir = charts_dir(inv);
    let mut loaded = Vec::new();
    for (i, repo) in helm.repositories.iter().enumerate() {
        let field = format!("mirror.helm.repositories[{i}] ({})", repo.name);
        let index = match repository_index(inv, &fetcher, &repo.url).await {
            Ok(x) => x,
            Err(e) => {
                report.fail("ChartRepositoryUnavailable", format!("{field}: {e}"));
                continue;
            }
        };
        let mut picks = Vec::new();
        if repo.charts.is_empty() {
            picks.extend(index.all().into_iter().map(|e| (field.clone(), e, Vec::new(), Vec::new())));
        }
        for (j, c) in repo.charts.iter().enumerate() {
            let field = format!("mirror.helm.repositories[{i}].charts[{j}] ({})", c.name);
            match index.select(&c.name, c.version.as_deref()) {
                Ok(e) => picks.push((field, e, c.image_paths.clone(), c.platforms.clone())),
                Err(e) => report.fail("ChartNotFound", format!("{field}: {}: {e}", repo.url)),
            }
        }
        for (field, entry, image_paths, platforms) in picks {
            match download(&fetcher, &repo.url, entry, &dir).await {
                Ok((origin, tgz)) => loaded.push(Loaded { field, origin, tgz, image_paths, platforms }),
                Err((reason, e)) => {
                    report.fail(reason, format!("{field}: chart {} {}: {e}", entry.name, entry.version))
                }
            }
        }
    }
    for (j, c) in helm.local.iter().enumerate() {
        let field = format!("mirror.helm.local[{j}] ({})", c.name);
        let Some(path) = c.path.as_deref().filter(|p| !p.trim().is_empty()) else {
            report.fail("InvalidChart", format!("{field}: path is required for a local chart"));
            continue;
        };
        match read_local(Path::new(path)) {
            Ok((origin, tgz)) => loaded.push(Loaded {
                field,
                origin,
                tgz,
                image_paths: c.image_paths.clone(),
                platforms: c.platforms.clone(),
            }),
            Err(e) => report.fail("InvalidChart", format!("{field}: {e}")),
        }
    }
    Ok(loaded)
}

/// A repository's index: fetched and kept in `working-dir/helm/indexes/<host>/<path>/`
/// (oc-mirror's place); a delete reads the kept one first (what the mirror run selected from).
async fn repository_index(inv: &Request, fetcher: &Fetcher, url: &str) -> Result<Index, String> {
    let index_url = index::index_url(url);
    let kept = inv.working_dir.join("helm/indexes").join(index::index_dir(&index_url)?).join("index.yaml");
    if inv.releases.kept_graphs_first
        && let Ok(bytes) = std::fs::read(&kept)
        && let Ok(index) = index::parse(&bytes)
    {
        return Ok(index);
    }
    let parsed = reqwest::Url::parse(&index_url).map_err(|e| format!("{index_url}: {e}"))?;
    let bytes = fetcher.get(&parsed, index::MAX_INDEX_BYTES).await.map_err(|e| e.to_string())?;
    let index = index::parse(&bytes).map_err(|e| format!("{index_url}: {e}"))?;
    write_atomic(&kept, &bytes).map_err(|e| e.to_string())?;
    Ok(index)
}

/// A chart's archive from its repository into `working-dir/helm/charts/<name>-<version>.tgz`,
/// checked against the index's digest (a kept file with the right digest is not fetched again).
async fn download(
    fetcher: &Fetcher,
    repo_url: &str,
    entry: &index::Entry,
    dir: &Path,
) -> Result<(String, Vec<u8>), (&'static str, String)> {
    let url = index::chart_url(repo_url, entry).map_err(|e| ("ChartNotFound", e.to_string()))?;
    let file = chart_file(dir, &entry.name, &entry.version)
        .ok_or(("InvalidChart", format!("{:?} is not a chart name and version", entry.id())))?;
    if entry.digest.is_some()
        && let Ok(kept) = std::fs::read(&file)
        && index::check_digest(entry, &kept).is_ok()
    {
        return Ok((url.to_string(), kept));
    }
    let bytes = fetcher.get(&url, MAX_CHART_BYTES).await.map_err(|e| ("ChartDownloadFailed", e.to_string()))?;
    index::check_digest(entry, &bytes).map_err(|e| ("ChartDigestMismatch", format!("{url}: {e}")))?;
    write_atomic(&file, &bytes).map_err(|e| ("ChartDownloadFailed", e.to_string()))?;
    Ok((url.to_string(), bytes))
}

/// A local chart: a packaged `.tgz` as it is, a directory packaged as `helm package` does.
fn read_local(path: &Path) -> Result<(String, Vec<u8>), String> {
    let abs = std::path::absolute(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = std::fs::metadata(&abs).map_err(|e| format!("{}: {e}", abs.display()))?;
    let tgz = if meta.is_dir() {
        chart::package_dir(&abs).map_err(|e| e.to_string())?
    } else if meta.len() > MAX_CHART_BYTES {
        return Err(format!("{}: larger than {} MiB", abs.display(), MAX_CHART_BYTES >> 20));
    } else {
        std::fs::read(&abs).map_err(|e| format!("{}: {e}", abs.display()))?
    };
    Ok((format!("file://{}", abs.display()), tgz))
}

/// The images a local chart (a `.tgz` or a directory) deploys, found as collection finds them
/// (default values, oc-mirror's JSONPaths plus `image_paths`): its name, version and images.
pub fn chart_images(path: &Path, image_paths: &[String]) -> Result<(chart::Meta, Vec<String>), String> {
    let (_, tgz) = read_local(path)?;
    let (meta, _) = chart::chart_yaml(&tgz).and_then(|y| chart::meta(&y)).map_err(|e| e.to_string())?;
    let c = render::load_archive(&tgz).map_err(|e| e.to_string())?;
    let images = render::images(&c, image_paths).map_err(|e| format!("chart {} {}: {e}", meta.name, meta.version))?;
    Ok((meta, images))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Destination;

    fn chart(name: &str, version: &str, field: &str) -> Chart {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Chart.yaml"), format!("apiVersion: v2\nname: {name}\nversion: {version}\n"))
            .unwrap();
        let artifact = chart::artifact(&chart::package_dir(dir.path()).unwrap()).unwrap();
        let destination = plan::chart_destination(&Destination::Registry("m.example.com".into()), name, version, 0);
        Chart { field: field.into(), origin: format!("http://repo/{name}-{version}.tgz"), artifact, destination }
    }

    #[test]
    fn a_chart_that_does_not_render_fails_alone_and_each_chart_is_kept_once() {
        let dest = Destination::Registry("m.example.com".into());
        let found = vec![
            (chart("podinfo", "6.14.1", "r[0]"), vec![], Ok(vec!["ghcr.io/stefanprodan/podinfo:6.14.1".to_string()])),
            (
                chart("pdc-agent", "0.2.0", "r[1]"),
                vec![],
                Err("execution error: Either tokenSecretName or insecureTokenValue must be provided".to_string()),
            ),
            (
                chart("podinfo", "6.14.1", "local[0]"),
                vec![],
                Ok(vec!["ghcr.io/stefanprodan/podinfo:6.14.1".to_string(), "tiny-tools:1".to_string()]),
            ),
        ];
        let (items, charts, lines, failures) = plan_charts(found, &dest, 0, false);
        assert_eq!(items.len(), 2, "one per chart; duplicates go when the plan is made");
        assert!(items.iter().all(
            |i| i.kind == ImageKind::Helm && i.destination == "docker://m.example.com/stefanprodan/podinfo:6.14.1"
        ));
        let pushed: Vec<&str> = charts.iter().map(|c| c.destination.as_str()).collect();
        assert_eq!(
            pushed,
            ["docker://m.example.com/helm-charts/podinfo:6.14.1", "docker://m.example.com/helm-charts/pdc-agent:0.2.0"]
        );
        let reasons: Vec<(&str, &str)> = failures.iter().map(|(_, r, m)| (*r, m.as_str())).collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert_eq!(reasons[0].0, "ChartRenderFailed");
        assert!(reasons[0].1.starts_with("r[1]: chart pdc-agent 0.2.0: execution error"), "{}", reasons[0].1);
        assert_eq!(reasons[1].0, "InvalidHelmImage");
        assert!(reasons[1].1.contains("image tiny-tools:1"), "{}", reasons[1].1);
        assert!(lines.iter().any(|l| l == "r[0]: chart podinfo 6.14.1: 1 images"), "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("✗ r[1]: chart pdc-agent 0.2.0")), "{lines:?}");
    }

    #[test]
    fn charts_on_disk_are_found_with_or_without_the_v_prefix_and_never_outside() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("a-1.0.0.tgz"), b"a").unwrap();
        std::fs::write(tmp.path().join("b-v2.0.0.tgz"), b"b").unwrap();
        assert_eq!(disk::on_disk(tmp.path(), "a", "1.0.0").unwrap().1, b"a");
        assert_eq!(disk::on_disk(tmp.path(), "a", "v1.0.0").unwrap().1, b"a");
        assert_eq!(disk::on_disk(tmp.path(), "b", "2.0.0").unwrap().1, b"b");
        assert!(disk::on_disk(tmp.path(), "c", "1").is_none());
        assert!(chart_file(tmp.path(), "../x", "1").is_none());
        assert!(chart_file(tmp.path(), "x", "1/../../y").is_none());
    }
}
