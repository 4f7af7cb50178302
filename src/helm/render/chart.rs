//! Loading a chart as Helm's loader does: a `.tgz` (first path component stripped, Helm's path
//! checks and size limits) or a directory (`.helmignore` honoured), `Chart.yaml` read into
//! Helm's metadata (with its string coercions and validation), `values.yaml`, `templates/`,
//! subcharts under `charts/` as directories or archives, and every other file for `.Files`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use super::RenderError;
use super::glob::Ignore;
use super::yaml_in::{self, Node};

const MAX_CHART: u64 = 100 * 1024 * 1024;
const MAX_FILE: u64 = 5 * 1024 * 1024;

/// A file of a chart (path relative to the chart root, `/`-separated).
#[derive(Debug, Clone)]
pub struct File {
    pub name: String,
    pub data: Arc<[u8]>,
}

/// A maintainer in Chart.yaml.
#[derive(Debug, Clone, Default)]
pub struct Maintainer {
    pub name: String,
    pub email: String,
    pub url: String,
}

/// A dependency in Chart.yaml.
#[derive(Debug, Clone, Default)]
pub struct Dependency {
    pub name: String,
    pub version: String,
    pub repository: String,
    pub condition: String,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub import_values: Vec<Node>,
    pub alias: String,
}

/// Chart.yaml.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub name: String,
    pub home: String,
    pub sources: Vec<String>,
    pub version: String,
    pub description: String,
    pub keywords: Vec<String>,
    pub maintainers: Vec<Maintainer>,
    pub icon: String,
    pub api_version: String,
    pub condition: String,
    pub tags: String,
    pub app_version: String,
    pub deprecated: bool,
    pub annotations: BTreeMap<String, String>,
    pub kube_version: String,
    /// `None` when Chart.yaml has no `dependencies` key (Helm's nil slice).
    pub dependencies: Option<Vec<Dependency>>,
    pub chart_type: String,
}

/// The parts of a loaded chart the renderer uses.
#[derive(Debug, Clone, Default)]
pub struct Parts {
    pub meta: Metadata,
    pub values: Option<Node>,
    pub templates: Vec<File>,
    pub files: Vec<File>,
    pub dependencies: Vec<super::Chart>,
}

fn load_err(msg: impl Into<String>) -> RenderError {
    RenderError::Load(msg.into())
}

/// Reads a gzipped tar into chart-relative files.
pub fn archive_files(bytes: &[u8]) -> Result<Vec<File>, RenderError> {
    let gz = flate2::read::GzDecoder::new(bytes);
    let mut tar = tar::Archive::new(gz);
    let mut files = Vec::new();
    let mut remaining = MAX_CHART;
    let entries = tar.entries().map_err(|e| load_err(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| load_err(e.to_string()))?;
        let kind = entry.header().entry_type();
        if kind.is_dir() || kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let delim = if raw.contains('\\') { '\\' } else { '/' };
        let parts: Vec<&str> = raw.split(delim).collect();
        let joined = parts[1..].join("/");
        if joined.starts_with('/') {
            return Err(load_err("chart illegally contains absolute paths"));
        }
        let name = super::funcs::path_clean(&joined);
        if name == "." {
            return Err(load_err(format!("chart illegally contains content outside the base directory: {raw:?}")));
        }
        if name.starts_with("..") {
            return Err(load_err("chart illegally references parent directory"));
        }
        if parts[0] == "Chart.yaml" {
            return Err(load_err("chart yaml not in base directory"));
        }
        let size = entry.header().size().unwrap_or(0);
        if size > remaining {
            return Err(load_err(format!("decompressed chart is larger than the maximum file size {MAX_CHART}")));
        }
        if size > MAX_FILE {
            return Err(load_err(format!(
                "decompressed chart file {raw:?} is larger than the maximum file size {MAX_FILE}"
            )));
        }
        let mut data = Vec::with_capacity(size as usize);
        entry.by_ref().take(remaining).read_to_end(&mut data).map_err(|e| load_err(e.to_string()))?;
        remaining -= data.len() as u64;
        files.push(File { name, data: Arc::from(strip_bom(data)) });
    }
    if files.is_empty() {
        return Err(load_err("no files in chart archive"));
    }
    Ok(files)
}

fn strip_bom(mut data: Vec<u8>) -> Vec<u8> {
    if data.starts_with(b"\xEF\xBB\xBF") {
        data.drain(..3);
    }
    data
}

/// Reads a chart directory (following links, skipping what `.helmignore` names).
pub fn dir_files(dir: &Path) -> Result<Vec<File>, RenderError> {
    let io = |e: std::io::Error| load_err(format!("{}: {e}", dir.display()));
    let ignore_text = match std::fs::read_to_string(dir.join(".helmignore")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(e)),
    };
    let rules = Ignore::parse(&ignore_text).map_err(load_err)?;
    let mut files = Vec::new();
    walk(dir, "", &rules, &mut files, 0)?;
    Ok(files)
}

fn walk(dir: &Path, rel: &str, rules: &Ignore, out: &mut Vec<File>, depth: usize) -> Result<(), RenderError> {
    if depth > 64 {
        return Err(load_err(format!("{}: directories nested too deeply", dir.display())));
    }
    let io = |e: std::io::Error| load_err(format!("{}: {e}", dir.display()));
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(io)?.collect::<Result<_, _>>().map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let fname = e.file_name().to_string_lossy().into_owned();
        let name = if rel.is_empty() { fname.clone() } else { format!("{rel}/{fname}") };
        let path = e.path();
        let meta = std::fs::metadata(&path).map_err(io)?;
        if meta.is_dir() {
            if !rules.ignored(&name, true) {
                walk(&path, &name, rules, out, depth + 1)?;
            }
            continue;
        }
        if rules.ignored(&name, false) {
            continue;
        }
        if !meta.is_file() {
            return Err(load_err(format!(
                "cannot load irregular file {} as it has file mode type bits set",
                path.display()
            )));
        }
        if meta.len() > MAX_FILE {
            return Err(load_err(format!("chart file {fname:?} is larger than the maximum file size {MAX_FILE}")));
        }
        let data = std::fs::read(&path).map_err(|e| load_err(format!("error reading {name}: {e}")))?;
        out.push(File { name, data: Arc::from(strip_bom(data)) });
    }
    Ok(())
}

/// Helm's `LoadFiles`: sorts files into metadata, values, templates, subcharts and the rest.
pub fn parts_from_files(files: Vec<File>) -> Result<Parts, RenderError> {
    let mut parts = Parts::default();
    let chart_yaml =
        files.iter().find(|f| f.name == "Chart.yaml").ok_or_else(|| load_err("Chart.yaml file is missing"))?;
    let node = yaml_in::parse(&String::from_utf8_lossy(&chart_yaml.data))
        .map_err(|e| load_err(format!("cannot load Chart.yaml: {e}")))?;
    parts.meta = metadata(&node).map_err(|e| load_err(format!("cannot load Chart.yaml: {e}")))?;
    if parts.meta.api_version.is_empty() {
        parts.meta.api_version = "v1".into();
    }
    let mut subcharts: BTreeMap<String, Vec<File>> = BTreeMap::new();
    for f in files {
        match f.name.as_str() {
            "Chart.yaml" | "Chart.lock" | "requirements.lock" | "values.schema.json" => {
                if f.name == "requirements.lock" && parts.meta.api_version == "v1" {
                    parts.files.push(f);
                }
            }
            "values.yaml" => {
                let text = String::from_utf8_lossy(&f.data).into_owned();
                let node = yaml_in::parse(&text).map_err(|e| load_err(format!("cannot load values.yaml: {e}")))?;
                match &node {
                    Node::Map(_) | Node::Null => {}
                    _ => {
                        return Err(load_err(
                            "cannot load values.yaml: error unmarshaling JSON: json: cannot unmarshal value into Go value of type map[string]interface {}",
                        ));
                    }
                }
                yaml_in::to_value(&node).map_err(|e| load_err(format!("cannot load values.yaml: {e}")))?;
                parts.values = Some(node);
            }
            "requirements.yaml" => {
                let node = yaml_in::parse(&String::from_utf8_lossy(&f.data))
                    .map_err(|e| load_err(format!("cannot load requirements.yaml: {e}")))?;
                if let Some(deps) = field(&node, "dependencies") {
                    parts.meta.dependencies =
                        Some(dependencies(deps).map_err(|e| load_err(format!("cannot load requirements.yaml: {e}")))?);
                }
                if parts.meta.api_version == "v1" {
                    parts.files.push(f);
                }
            }
            n if n.starts_with("templates/") => parts.templates.push(f),
            n if n.starts_with("charts/") => {
                if n.ends_with(".prov") {
                    parts.files.push(f);
                    continue;
                }
                let rest = &n["charts/".len()..];
                let (cname, inner) = rest.split_once('/').unwrap_or((rest, ""));
                let cname = cname.to_string();
                let inner = inner.to_string();
                subcharts.entry(cname).or_default().push(File { name: inner, data: f.data });
            }
            _ => parts.files.push(f),
        }
    }
    validate(&mut parts.meta)?;
    for (cname, files) in subcharts {
        if cname.starts_with(['_', '.']) {
            continue;
        }
        let sub = if cname.ends_with(".tgz") {
            let f = &files[0];
            if !f.name.is_empty() {
                return Err(load_err(format!(
                    "error unpacking subchart tar in {}: expected {cname}, got {cname}/{}",
                    parts.meta.name, f.name
                )));
            }
            super::load_archive(&f.data)
        } else {
            let inner: Vec<File> = files.into_iter().filter(|f| !f.name.is_empty()).collect();
            parts_from_files(inner).map(super::Chart::from_parts)
        };
        let sub = sub.map_err(|e| load_err(format!("error unpacking subchart {cname} in {}: {e}", parts.meta.name)))?;
        parts.dependencies.push(sub);
    }
    Ok(parts)
}

/// Go's `json` field matching: exact name first, then case-insensitive.
fn field<'a>(n: &'a Node, name: &str) -> Option<&'a Node> {
    let Node::Map(entries) = n else { return None };
    entries
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .or_else(|| entries.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(name)))
        .map(|(_, v)| v)
}

/// A string field as `sigs.k8s.io/yaml` fills one: numbers and booleans become text.
fn string(n: Option<&Node>, what: &str) -> Result<String, String> {
    Ok(match n {
        None | Some(Node::Null) => String::new(),
        Some(Node::Str(s)) => s.clone(),
        Some(Node::Int(i)) => i.to_string(),
        Some(Node::Uint(u)) => u.to_string(),
        Some(Node::Float(f)) => super::gofmt::format_float(*f, 'g', None, 32),
        Some(Node::Bool(b)) => b.to_string(),
        Some(_) => return Err(format!("json: cannot unmarshal value into Go struct field {what} of type string")),
    })
}

fn strings(n: Option<&Node>, what: &str) -> Result<Vec<String>, String> {
    match n {
        None | Some(Node::Null) => Ok(Vec::new()),
        Some(Node::Seq(items)) => items.iter().map(|i| string(Some(i), what)).collect(),
        Some(_) => Err(format!("json: cannot unmarshal value into Go struct field {what} of type []string")),
    }
}

fn boolean(n: Option<&Node>, what: &str) -> Result<bool, String> {
    match n {
        None | Some(Node::Null) => Ok(false),
        Some(Node::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("json: cannot unmarshal value into Go struct field {what} of type bool")),
    }
}

fn dependencies(n: &Node) -> Result<Vec<Dependency>, String> {
    let Node::Seq(items) = n else {
        return if matches!(n, Node::Null) {
            Ok(Vec::new())
        } else {
            Err("json: cannot unmarshal value into dependencies".into())
        };
    };
    items
        .iter()
        .map(|d| {
            Ok(Dependency {
                name: string(field(d, "name"), "Dependency.name")?,
                version: string(field(d, "version"), "Dependency.version")?,
                repository: string(field(d, "repository"), "Dependency.repository")?,
                condition: string(field(d, "condition"), "Dependency.condition")?,
                tags: strings(field(d, "tags"), "Dependency.tags")?,
                enabled: boolean(field(d, "enabled"), "Dependency.enabled")?,
                import_values: match field(d, "import-values") {
                    Some(Node::Seq(v)) => v.clone(),
                    _ => Vec::new(),
                },
                alias: string(field(d, "alias"), "Dependency.alias")?,
            })
        })
        .collect()
}

fn metadata(n: &Node) -> Result<Metadata, String> {
    let maintainers = match field(n, "maintainers") {
        Some(Node::Seq(items)) => items
            .iter()
            .map(|m| {
                Ok(Maintainer {
                    name: string(field(m, "name"), "Maintainer.name")?,
                    email: string(field(m, "email"), "Maintainer.email")?,
                    url: string(field(m, "url"), "Maintainer.url")?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?,
        _ => Vec::new(),
    };
    let annotations = match field(n, "annotations") {
        Some(Node::Map(entries)) => entries
            .iter()
            .map(|(k, v)| Ok((k.clone(), string(Some(v), "Metadata.annotations")?)))
            .collect::<Result<_, String>>()?,
        _ => BTreeMap::new(),
    };
    Ok(Metadata {
        name: string(field(n, "name"), "Metadata.name")?,
        home: string(field(n, "home"), "Metadata.home")?,
        sources: strings(field(n, "sources"), "Metadata.sources")?,
        version: string(field(n, "version"), "Metadata.version")?,
        description: string(field(n, "description"), "Metadata.description")?,
        keywords: strings(field(n, "keywords"), "Metadata.keywords")?,
        maintainers,
        icon: string(field(n, "icon"), "Metadata.icon")?,
        api_version: string(field(n, "apiVersion"), "Metadata.apiVersion")?,
        condition: string(field(n, "condition"), "Metadata.condition")?,
        tags: string(field(n, "tags"), "Metadata.tags")?,
        app_version: string(field(n, "appVersion"), "Metadata.appVersion")?,
        deprecated: boolean(field(n, "deprecated"), "Metadata.deprecated")?,
        annotations,
        kube_version: string(field(n, "kubeVersion"), "Metadata.kubeVersion")?,
        dependencies: field(n, "dependencies").filter(|d| !matches!(d, Node::Null)).map(dependencies).transpose()?,
        chart_type: string(field(n, "type"), "Metadata.type")?,
    })
}

/// Helm's `sanitizeString`: whitespace becomes a space, unprintable characters go.
fn sanitize(s: &mut String) {
    *s = s
        .chars()
        .filter_map(|c| {
            if c.is_whitespace() {
                Some(' ')
            } else if super::gofmt::is_print(c) {
                Some(c)
            } else {
                None
            }
        })
        .collect();
}

fn validate(md: &mut Metadata) -> Result<(), RenderError> {
    for s in [
        &mut md.name,
        &mut md.description,
        &mut md.home,
        &mut md.icon,
        &mut md.condition,
        &mut md.tags,
        &mut md.app_version,
        &mut md.kube_version,
    ] {
        sanitize(s);
    }
    md.sources.iter_mut().for_each(sanitize);
    md.keywords.iter_mut().for_each(sanitize);
    let invalid = |m: String| Err(RenderError::Load(format!("validation: {m}")));
    if md.name.is_empty() {
        return invalid("chart.metadata.name is required".into());
    }
    if md.name.contains('/') || md.name == "." || md.name == ".." {
        return invalid(format!("chart.metadata.name {:?} is invalid", md.name));
    }
    if md.version.is_empty() {
        return invalid("chart.metadata.version is required".into());
    }
    if super::semver::Version::parse(&md.version).is_err() {
        return invalid(format!("chart.metadata.version {:?} is invalid", md.version));
    }
    if !matches!(md.chart_type.as_str(), "" | "application" | "library") {
        return invalid("chart.metadata.type must be application or library".into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for d in md.dependencies.iter().flatten() {
        if d.name.is_empty() {
            return invalid("dependency name is required".into());
        }
        let key = if d.alias.is_empty() { &d.name } else { &d.alias };
        if !seen.insert(key.clone()) {
            return invalid(format!("more than one dependency with name or alias {key:?}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, text: &str) -> File {
        File { name: name.into(), data: Arc::from(text.as_bytes()) }
    }

    #[test]
    fn chart_yaml_coercions_and_validation() {
        let p = parts_from_files(vec![
            file("Chart.yaml", "apiVersion: v2\nname: x\nversion: 1.0.0\nappVersion: 1.10\ndescription: \"a\\nb\"\nannotations: {num: 3}\n"),
            file("templates/a.yaml", "a: 1"),
            file("README.md", "r"),
        ])
        .unwrap();
        assert_eq!(p.meta.app_version, "1.1");
        assert_eq!(p.meta.description, "a b");
        assert_eq!(p.meta.annotations["num"], "3");
        assert_eq!(p.templates.len(), 1);
        assert_eq!(p.files.len(), 1);
        assert!(parts_from_files(vec![file("Chart.yaml", "apiVersion: v2\nname: x\nversion: nope\n")]).is_err());
        assert!(parts_from_files(vec![file("values.yaml", "a: 1")]).is_err());
    }
}
