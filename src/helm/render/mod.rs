//! The images a Helm chart deploys, found as oc-mirror v2 finds them: the chart rendered with
//! its default values by a Go-template engine with Helm's functions, hooks and NOTES dropped,
//! CRDs included, image strings read at oc-mirror's JSONPaths plus the chart's `imagePaths`.
//! Pure: no network, no clock (`now` is fixed, random functions are seeded).
//!
//! The engine replays Helm v3.21's library path that oc-mirror calls: `loader.Load`,
//! `chartutil.ProcessDependencies`, `chartutil.ToRenderValues` with empty release options and
//! `DefaultCapabilities` (Kubernetes v1.20.0), `engine.Render` (Go `text/template` with sprig
//! and Helm's functions), `releaseutil.SortManifests`, then client-go JSONPath.

mod chart;
mod engine;
mod floatfmt;
mod funcs;
mod glob;
mod gofmt;
mod jsonpath;
mod manifests;
mod objects;
mod semver;
mod template;
mod value;
mod values;
mod yaml_in;
mod yaml_out;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

pub use engine::Options;

/// A chart that cannot be loaded or rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The chart cannot be read.
    #[error("{0}")]
    Load(String),
    /// A template failed (Helm's own message, naming the chart, file, line and column).
    #[error("{0}")]
    Render(String),
    /// The rendered documents cannot be read or scanned.
    #[error("{0}")]
    Scan(String),
}

/// A loaded chart (with its subcharts).
#[derive(Debug, Clone)]
pub struct Chart {
    /// `name` of Chart.yaml.
    pub name: String,
    /// `version` of Chart.yaml.
    pub version: String,
    /// `type: library`.
    pub library: bool,
    parts: Arc<chart::Parts>,
}

impl Chart {
    fn from_parts(parts: chart::Parts) -> Chart {
        Chart {
            name: parts.meta.name.clone(),
            version: parts.meta.version.clone(),
            library: parts.meta.chart_type.eq_ignore_ascii_case("library"),
            parts: Arc::new(parts),
        }
    }
}

/// Loads a packaged chart (`.tgz`).
pub fn load_archive(bytes: &[u8]) -> Result<Chart, RenderError> {
    let files = chart::archive_files(bytes)?;
    Ok(Chart::from_parts(chart::parts_from_files(files)?))
}

/// Loads a chart directory.
pub fn load_dir(path: &Path) -> Result<Chart, RenderError> {
    let files = chart::dir_files(path)?;
    chart::parts_from_files(files)
        .map(Chart::from_parts)
        .map_err(|e| RenderError::Load(format!("{}: {e}", path.display())))
}

/// oc-mirror's JSONPaths.
const DEFAULT_PATHS: [&str; 4] = [
    "{.spec.template.spec.initContainers[*].image}",
    "{.spec.template.spec.containers[*].image}",
    "{.spec.initContainers[*].image}",
    "{.spec.containers[*].image}",
];

/// Rendering runs on its own thread with a large stack: templates may nest `include` and
/// `tpl` deeply (Helm allows a thousand levels per name) without touching the caller's stack.
const STACK: usize = 256 * 1024 * 1024;

fn on_render_thread<T: Send>(f: impl FnOnce() -> Result<T, RenderError> + Send) -> Result<T, RenderError> {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .name("helm-render".into())
            .stack_size(STACK)
            .spawn_scoped(s, f)
            .map_err(|e| RenderError::Render(format!("cannot start the render thread: {e}")))?;
        handle.join().unwrap_or_else(|_| Err(RenderError::Render("the template engine failed unexpectedly".into())))
    })
}

/// Renders the chart's templates as `helm template` would with `options` (every
/// non-partial template and its output; hooks, tests and NOTES included).
pub fn render(chart: &Chart, options: &Options) -> Result<Vec<(String, String)>, RenderError> {
    on_render_thread(|| {
        let mut root = values::Work::new(chart).map_err(RenderError::Load)?;
        values::process_dependencies(&mut root)
            .map_err(|e| RenderError::Render(format!("chart {}: error processing dependencies: {e}", chart.name)))?;
        engine::render(&root, options)
            .map_err(|e| RenderError::Render(format!("error rendering chart {}: {e}", chart.name)))
    })
}

/// The images the chart deploys with its default values, sorted and unique; `image_paths`
/// are extra JSONPath templates (`{.spec.image}`), read after oc-mirror's four.
pub fn images(chart: &Chart, image_paths: &[String]) -> Result<Vec<String>, RenderError> {
    images_with(chart, image_paths, &Options::default())
}

/// As [`images`], rendering with other options.
pub fn images_with(chart: &Chart, image_paths: &[String], options: &Options) -> Result<Vec<String>, RenderError> {
    let paths: Vec<(String, jsonpath::JsonPath)> = DEFAULT_PATHS
        .iter()
        .map(|p| p.to_string())
        .chain(image_paths.iter().cloned())
        .map(|p| {
            let parsed =
                jsonpath::JsonPath::parse(&p).map_err(|e| RenderError::Scan(format!("failed to parse {p}: {e}")))?;
            Ok((p, parsed))
        })
        .collect::<Result<_, RenderError>>()?;
    on_render_thread(|| {
        let mut root = values::Work::new(chart).map_err(RenderError::Load)?;
        values::process_dependencies(&mut root)
            .map_err(|e| RenderError::Render(format!("chart {}: error processing dependencies: {e}", chart.name)))?;
        let rendered = engine::render(&root, options)
            .map_err(|e| RenderError::Render(format!("error rendering chart {}: {e}", chart.name)))?;
        let docs = manifests::documents(&root, &rendered)
            .map_err(|e| RenderError::Scan(format!("chart {}: {e}", chart.name)))?;
        let mut found = BTreeSet::new();
        for doc in &docs {
            for (text, path) in &paths {
                let out = path.execute(&doc.value).map_err(|e| {
                    RenderError::Scan(format!("chart {}: {}: failed to parse {text}: {e}", chart.name, doc.source))
                })?;
                for token in out.split(' ').filter(|t| !t.is_empty()) {
                    if jsonpath::accepted_reference(token) {
                        found.insert(token.to_string());
                    }
                }
            }
        }
        Ok(found.into_iter().collect())
    })
}

#[cfg(test)]
mod tests;
