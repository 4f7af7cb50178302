//! Step 5: what was really mirrored becomes the objects a cluster needs: ImageDigestMirrorSet,
//! ImageTagMirrorSet, CatalogSource, UpdateService and the release-signature ConfigMap. Pure:
//! the same mirrored set gives byte-identical objects (sorted entries, stable names, no
//! timestamps), so applying them again changes nothing.

mod mirror_sets;

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::copy::{ItemResult, Outcome};
use crate::image::ImageRef;
use crate::plan::ImageKind;
pub use mirror_sets::{Scope, mirror_sets};

/// The annotation every generated object carries.
pub const CREATED_BY: (&str, &str) = ("mirror.openshift.io/created-by", "imageset-operator");

/// An image that is at its destination. Only a copy report makes these, so nothing that
/// failed to copy can reach the cluster's configuration.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mirrored {
    /// What it is part of.
    pub kind: ImageKind,
    /// The upstream reference (what the cluster asks for).
    pub origin: ImageRef,
    /// Where it now is.
    pub destination: ImageRef,
    /// The manifest digest at the destination.
    pub digest: String,
}

impl Mirrored {
    /// The images of a copy report that are present at their destination.
    pub fn from_report(results: &[ItemResult]) -> Vec<Mirrored> {
        let mut out: Vec<Mirrored> = results
            .iter()
            .filter(|r| matches!(r.outcome, Outcome::Copied | Outcome::AlreadyPresent))
            .filter_map(|r| {
                Some(Mirrored {
                    kind: r.item.kind,
                    origin: ImageRef::parse(&r.item.origin).ok()?,
                    destination: ImageRef::parse(&r.item.destination).ok()?,
                    digest: r.digest.clone()?,
                })
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Why objects could not be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    /// A `targetCatalogSourceTemplate` that cannot be used.
    #[error("targetCatalogSourceTemplate {path}: {message}")]
    Template {
        /// The template's path as given in the image set.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// How objects are named.
#[derive(Clone, Debug, Default)]
pub struct Naming {
    /// Prefix of every object name (empty: oc-mirror's names, as the command line writes them).
    pub prefix: String,
    /// `--max-nested-paths` / `maxNestedPaths` (non-zero forces repository scope).
    pub max_nested_paths: u32,
}

impl Naming {
    fn name(&self, base: &str) -> String {
        if self.prefix.is_empty() { base.to_string() } else { format!("{}-{base}", self.prefix) }
    }
}

/// A catalog's CatalogSource template: its path (for messages) and YAML text.
#[derive(Clone, Debug)]
pub struct CatalogTemplate {
    /// The catalog it belongs to (`operators[].catalog`).
    pub catalog: String,
    /// The path as written in the image set.
    pub path: String,
    /// The file's content.
    pub text: String,
}

fn metadata(name: &str, namespace: Option<&str>) -> Value {
    let mut m = json!({ "name": name, "annotations": { CREATED_BY.0: CREATED_BY.1 } });
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    m
}

/// oc-mirror's CatalogSource name: `cs-<repo basename>-<12 chars of the tag or digest>`, made a
/// valid DNS-1123 label.
pub fn catalog_source_name(dest: &ImageRef) -> String {
    let base = dest.path.rsplit('/').next().unwrap_or(&dest.path).to_ascii_lowercase();
    let suffix: String = match (&dest.tag, &dest.digest) {
        (Some(t), _) => t.to_ascii_lowercase().chars().take(12).collect(),
        (None, Some(d)) => d.split(':').nth(1).unwrap_or("0").chars().take(12).collect(),
        _ => "0".into(),
    };
    let raw = format!("cs-{base}-{suffix}");
    let mut name: String =
        raw.chars().map(|c| if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' { c } else { '-' }).collect();
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// One CatalogSource per mirrored catalog, the image pinned by digest.
pub fn catalog_sources(
    mirrored: &[Mirrored],
    templates: &[CatalogTemplate],
    naming: &Naming,
) -> Result<Vec<Value>, RenderError> {
    let mut out = BTreeMap::new();
    for m in mirrored.iter().filter(|m| m.kind == ImageKind::OperatorCatalog) {
        let name = naming.name(&catalog_source_name(&m.destination));
        let image = format!("{}@{}", m.destination.name(), m.digest);
        let origin = m.origin.to_string();
        let template = templates.iter().find(|t| origin.contains(t.catalog.trim_start_matches("docker://")));
        let mut obj = match template {
            Some(t) => parse_template(t)?,
            None => json!({}),
        };
        obj["apiVersion"] = json!("operators.coreos.com/v1alpha1");
        obj["kind"] = json!("CatalogSource");
        let mut meta = metadata(&name, Some("openshift-marketplace"));
        if let Some(extra) = obj.get("metadata").and_then(|m| m.get("annotations")).and_then(Value::as_object) {
            for (k, v) in extra {
                meta["annotations"][k] = v.clone();
            }
        }
        obj["metadata"] = meta;
        let spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
        let mut spec = if spec.is_object() { spec } else { json!({}) };
        spec["sourceType"] = json!("grpc");
        spec["image"] = json!(image);
        obj["spec"] = spec;
        out.insert(name, obj);
    }
    Ok(out.into_values().collect())
}

/// Checks a template without rendering anything (so a bad one stops a run before it copies).
pub fn check_template(t: &CatalogTemplate) -> Result<(), RenderError> {
    parse_template(t).map(|_| ())
}

fn parse_template(t: &CatalogTemplate) -> Result<Value, RenderError> {
    let bad = |message: String| RenderError::Template { path: t.path.clone(), message };
    let v: Value = serde_saphyr::from_str(&t.text).map_err(|e| bad(format!("not YAML: {e}")))?;
    if v.get("apiVersion").and_then(Value::as_str) != Some("operators.coreos.com/v1alpha1") {
        return Err(bad("apiVersion must be operators.coreos.com/v1alpha1".into()));
    }
    if v.get("kind").and_then(Value::as_str) != Some("CatalogSource") {
        return Err(bad("kind must be CatalogSource".into()));
    }
    let spec = v.get("spec");
    if let Some(st) = spec.and_then(|s| s.get("sourceType")).and_then(Value::as_str)
        && !st.is_empty()
        && st != "grpc"
    {
        return Err(bad(format!("spec.sourceType must be grpc or empty, not {st:?}")));
    }
    if spec.and_then(|s| s.get("configMap")).is_some() {
        return Err(bad("spec.configMap cannot be used with a mirrored catalog image".into()));
    }
    Ok(v)
}

/// The UpdateService for a mirrored graph image and release payloads (`graph: true`).
pub fn update_service(mirrored: &[Mirrored], naming: &Naming) -> Option<Value> {
    let graph = mirrored.iter().find(|m| m.kind == ImageKind::Graph)?;
    let release = mirrored.iter().filter(|m| m.kind == ImageKind::Release).map(|m| m.destination.name()).min()?;
    Some(json!({
        "apiVersion": "updateservice.operator.openshift.io/v1",
        "kind": "UpdateService",
        "metadata": metadata(&naming.name("update-service-oc-mirror"), Some("openshift-update-service")),
        "spec": {
            "replicas": 2,
            "releases": release,
            "graphDataImage": format!("{}@{}", graph.destination.name(), graph.digest),
        }
    }))
}

/// The ConfigMap the cluster-version operator reads release signatures from; `signatures`
/// maps a release digest to its signatures (in order). `None` when there are none.
pub fn signature_config_map(signatures: &BTreeMap<String, Vec<Vec<u8>>>, naming: &Naming) -> Option<Value> {
    let mut data = serde_json::Map::new();
    for (digest, sigs) in signatures {
        let hex = digest.trim_start_matches("sha256:");
        for (i, s) in sigs.iter().enumerate() {
            data.insert(format!("sha256-{hex}-{}", i + 1), json!(base64::engine::general_purpose::STANDARD.encode(s)));
        }
    }
    if data.is_empty() {
        return None;
    }
    let mut meta = metadata(&naming.name("mirrored-release-signatures"), Some("openshift-config-managed"));
    meta["labels"] = json!({ "release.openshift.io/verification-signatures": "" });
    Some(json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "binaryData": data }))
}

/// Every object for a mirrored set, in a stable order.
pub fn all(
    mirrored: &[Mirrored],
    templates: &[CatalogTemplate],
    signatures: &BTreeMap<String, Vec<Vec<u8>>>,
    naming: &Naming,
) -> Result<Vec<Value>, RenderError> {
    let mut out = mirror_sets(mirrored, naming);
    out.extend(catalog_sources(mirrored, templates, naming)?);
    out.extend(update_service(mirrored, naming));
    out.extend(signature_config_map(signatures, naming));
    Ok(out)
}

/// Multi-document YAML, `---` before each object.
pub fn to_yaml(objects: &[Value]) -> String {
    objects
        .iter()
        .map(|o| format!("---\n{}", crate::api::to_yaml_lines(o).expect("JSON values serialise to YAML")))
        .collect()
}

/// The files oc-mirror writes under `working-dir/cluster-resources/`, with their contents.
pub fn files(objects: &[Value]) -> Vec<(String, String)> {
    let of_kind = |k: &str| objects.iter().filter(|o| o["kind"] == k).cloned().collect::<Vec<_>>();
    let mut files = Vec::new();
    for (kind, file) in [("ImageDigestMirrorSet", "idms-oc-mirror.yaml"), ("ImageTagMirrorSet", "itms-oc-mirror.yaml")]
    {
        let objs = of_kind(kind);
        if !objs.is_empty() {
            files.push((file.to_string(), to_yaml(&objs)));
        }
    }
    for cs in of_kind("CatalogSource") {
        files.push((format!("{}.yaml", cs["metadata"]["name"].as_str().unwrap_or("cs")), to_yaml(&[cs])));
    }
    if let Some(us) = of_kind("UpdateService").pop() {
        files.push(("updateService.yaml".into(), to_yaml(&[us])));
    }
    if let Some(cm) = of_kind("ConfigMap").pop() {
        files.push(("signature-configmap.json".into(), serde_json::to_string_pretty(&cm).expect("json") + "\n"));
        files.push(("signature-configmap.yaml".into(), to_yaml(&[cm])));
    }
    files
}

#[cfg(test)]
mod tests;
