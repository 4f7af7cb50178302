//! Reading configuration files: oc-mirror's own (`kind`, `apiVersion`, top-level `mirror:` or
//! `delete:`) and our custom resources (`spec:`). Decoding is strict like oc-mirror's (unknown
//! fields are errors) and field names match case-insensitively like Go's JSON decoder, so
//! `additionalimages:` in an old file still loads. Pure: takes the bytes, not the path.

use std::sync::LazyLock;

use kube::CustomResourceExt;
use serde_json::{Map, Value};

use super::mirror::{Delete, Mirror};
use super::validate::{self, InvalidConfig};
use super::{
    DeleteImageSetConfiguration, DeleteImageSetConfigurationSpec, ImageSetConfiguration, ImageSetConfigurationSpec,
};

/// Why a file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not YAML or JSON.
    #[error("not valid YAML: {0}")]
    Syntax(String),
    /// No `kind`.
    #[error("configuration missing 'kind'")]
    MissingKind,
    /// A kind we do not read here.
    #[error("cannot parse {got:?} as {expected:?}")]
    WrongKind {
        /// The kind found.
        got: String,
        /// The kind wanted.
        expected: String,
    },
    /// A field the schema does not have.
    #[error("unknown field {0:?}")]
    UnknownField(String),
    /// A field of oc-mirror v1's format (`storageConfig`) or a file declaring its API version.
    #[error(
        "unknown field {0:?}: this looks like an oc-mirror v1 file (apiVersion mirror.openshift.io/v1alpha2, storageConfig); \
         this tool reads oc-mirror v2's format: apiVersion mirror.openshift.io/v2alpha1 and no storageConfig \
         (the workspace is --workspace or --cache-dir on the command line)"
    )]
    V1Field(String),
    /// The block the kind requires is absent.
    #[error("{0}")]
    Missing(String),
    /// A field has the wrong type.
    #[error("{0}")]
    Decode(String),
    /// Fields with invalid values.
    #[error(transparent)]
    Invalid(#[from] InvalidConfig),
}

/// The kinds a file may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// ImageSetConfiguration.
    ImageSet,
    /// DeleteImageSetConfiguration.
    Delete,
}

/// An ImageSetConfiguration read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSetFile {
    /// The `mirror:` block.
    pub mirror: Mirror,
    /// `archiveSize` in GiB.
    pub archive_size: Option<i64>,
    /// The whole spec when the file is one of our custom resources.
    pub spec: Option<ImageSetConfigurationSpec>,
    /// oc-mirror's warnings about the file (oc-mirror files only): entries it leaves out (a
    /// custom resource with them is refused) and deprecated fields.
    pub warnings: Vec<String>,
}

/// A DeleteImageSetConfiguration read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct DeleteFile {
    /// The `delete:` block.
    pub delete: Delete,
    /// The whole spec when the file is one of our custom resources.
    pub spec: Option<DeleteImageSetConfigurationSpec>,
}

/// The schemas, generated once: building a CRD is not free and every load needs one.
static IMAGE_SET_SCHEMA: LazyLock<Value> = LazyLock::new(schema_of::<ImageSetConfiguration>);
static DELETE_SCHEMA: LazyLock<Value> = LazyLock::new(schema_of::<DeleteImageSetConfiguration>);

fn schema_of<K: CustomResourceExt>() -> Value {
    let crd = K::crd();
    let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref());
    serde_json::to_value(schema).expect("schema serializes")
}

/// Renames keys to the schema's spelling (ASCII case-insensitive) and reports the first unknown field.
fn conform(value: &mut Value, schema: &Value, path: &str) -> Result<(), LoadError> {
    match value {
        Value::Object(map) => {
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                return Ok(());
            };
            let keys: Vec<String> = map.keys().cloned().collect();
            let mut out = Map::new();
            for key in keys {
                let mut v = map.remove(&key).expect("key listed");
                let canonical = if props.contains_key(&key) {
                    key.clone()
                } else if let Some(k) = props.keys().find(|k| k.eq_ignore_ascii_case(&key)) {
                    k.clone()
                } else {
                    return Err(LoadError::UnknownField(join(path, &key)));
                };
                conform(&mut v, &props[&canonical], &join(path, &canonical))?;
                out.insert(canonical, v);
            }
            *map = out;
            Ok(())
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    conform(item, item_schema, &format!("{path}[{i}]"))?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() { key.to_string() } else { format!("{path}.{key}") }
}

fn decode<T: serde::de::DeserializeOwned>(v: Value, what: &str) -> Result<T, LoadError> {
    serde_json::from_value(v).map_err(|e| LoadError::Decode(format!("decode {what}: {e}")))
}

fn parse_doc(text: &str) -> Result<Map<String, Value>, LoadError> {
    let v: Value = serde_saphyr::from_str(text)
        .map_err(|e| LoadError::Syntax(e.to_string().lines().next().unwrap_or_default().to_string()))?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(LoadError::Syntax("the document is not a mapping".into())),
    }
}

/// The kind a document declares.
pub fn kind_of(text: &str) -> Result<Kind, LoadError> {
    let doc = parse_doc(text)?;
    match doc.get("kind").and_then(Value::as_str) {
        None => Err(LoadError::MissingKind),
        Some("ImageSetConfiguration") => Ok(Kind::ImageSet),
        Some("DeleteImageSetConfiguration") => Ok(Kind::Delete),
        Some(other) => Err(LoadError::WrongKind { got: other.into(), expected: "ImageSetConfiguration".into() }),
    }
}

fn check_kind(doc: &Map<String, Value>, expected: &str) -> Result<(), LoadError> {
    match doc.get("kind").and_then(Value::as_str) {
        None => Err(LoadError::MissingKind),
        Some(k) if k == expected => Ok(()),
        Some(k) => Err(LoadError::WrongKind { got: k.into(), expected: expected.into() }),
    }
}

/// Reads and validates an ImageSetConfiguration (oc-mirror file or custom resource). An
/// unknown field in an oc-mirror v1 file says so.
pub fn image_set(text: &str) -> Result<ImageSetFile, LoadError> {
    image_set_v2(text).map_err(|e| match e {
        LoadError::UnknownField(f) if f == "storageConfig" || is_v1(text) => LoadError::V1Field(f),
        e => e,
    })
}

/// Whether the document declares oc-mirror v1's API version.
fn is_v1(text: &str) -> bool {
    parse_doc(text).is_ok_and(|d| d.get("apiVersion").and_then(Value::as_str) == Some("mirror.openshift.io/v1alpha2"))
}

fn image_set_v2(text: &str) -> Result<ImageSetFile, LoadError> {
    let mut doc = parse_doc(text)?;
    check_kind(&doc, "ImageSetConfiguration")?;
    let schema = &*IMAGE_SET_SCHEMA;
    if doc.contains_key("spec") {
        let mut spec = doc.remove("spec").unwrap_or(Value::Null);
        conform(&mut spec, &schema["properties"]["spec"], "spec")?;
        if spec.get("mirror").is_none() {
            return Err(LoadError::Missing("spec.mirror is required".into()));
        }
        let spec: ImageSetConfigurationSpec = decode(spec, "ImageSetConfiguration")?;
        validate::validate_spec(&spec)?;
        return Ok(ImageSetFile {
            mirror: spec.mirror.clone(),
            archive_size: spec.archive_size,
            spec: Some(spec),
            warnings: Vec::new(),
        });
    }
    let spec_schema = &schema["properties"]["spec"]["properties"];
    let mut archive_size = None;
    let mut mirror = None;
    for (key, mut v) in doc {
        match key.to_ascii_lowercase().as_str() {
            "kind" | "apiversion" | "metadata" => {}
            "archivesize" => archive_size = Some(decode::<i64>(v, "archiveSize")?),
            "mirror" => {
                conform(&mut v, &spec_schema["mirror"], "mirror")?;
                mirror = Some(decode::<Mirror>(v, "ImageSetConfiguration")?);
            }
            "delete" => {
                return Err(LoadError::Missing("delete: is not allowed in ImageSetConfiguration".into()));
            }
            _ => return Err(LoadError::UnknownField(key)),
        }
    }
    let mut mirror = mirror.ok_or_else(|| LoadError::Missing("mirror: is required in ImageSetConfiguration".into()))?;
    // oc-mirror warns about an additional image with an invalid targetRepo and mirrors the
    // rest; scripts rely on that.
    let mut warnings = Vec::new();
    mirror.additional_images.retain(|img| match &img.target_repo {
        Some(t) if !validate::is_path(t) => {
            warnings.push(format!("invalid targetRepo {t} for image {} : SKIPPING", img.name));
            false
        }
        _ => true,
    });
    validate::validate_mirror("mirror", &mirror)?;
    if mirror.platform.as_ref().is_some_and(|p| !p.architectures.is_empty()) {
        warnings.push("platform.architectures is deprecated; use platform.platforms instead".to_string());
    }
    Ok(ImageSetFile { mirror, archive_size, spec: None, warnings })
}

/// Reads and validates a DeleteImageSetConfiguration (oc-mirror file or custom resource).
pub fn delete_set(text: &str) -> Result<DeleteFile, LoadError> {
    let mut doc = parse_doc(text)?;
    check_kind(&doc, "DeleteImageSetConfiguration")?;
    let schema = &*DELETE_SCHEMA;
    if doc.contains_key("spec") {
        let mut spec = doc.remove("spec").unwrap_or(Value::Null);
        conform(&mut spec, &schema["properties"]["spec"], "spec")?;
        let spec: DeleteImageSetConfigurationSpec = decode(spec, "DeleteImageSetConfiguration")?;
        validate::validate_delete("spec.delete", &spec.delete)?;
        return Ok(DeleteFile { delete: spec.delete.clone(), spec: Some(spec) });
    }
    let spec_schema = &schema["properties"]["spec"]["properties"];
    let mut delete = None;
    for (key, mut v) in doc {
        match key.to_ascii_lowercase().as_str() {
            "kind" | "apiversion" | "metadata" => {}
            "delete" => {
                conform(&mut v, &spec_schema["delete"], "delete")?;
                delete = Some(decode::<Delete>(v, "DeleteImageSetConfiguration")?);
            }
            "mirror" => {
                return Err(LoadError::Missing("mirror: is not allowed in DeleteImageSetConfiguration".into()));
            }
            _ => return Err(LoadError::UnknownField(key)),
        }
    }
    let mut delete =
        delete.ok_or_else(|| LoadError::Missing("delete: is required in DeleteImageSetConfiguration".into()))?;
    if let Some(p) = delete.platform.as_mut()
        && !p.channels.is_empty()
        && p.architectures.is_empty()
        && p.platforms.is_empty()
    {
        // oc-mirror's delete defaulting: channels without architectures mean amd64.
        p.architectures.push(super::mirror::Architecture::Amd64);
    }
    validate::validate_delete("delete", &delete)?;
    Ok(DeleteFile { delete, spec: None })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_insensitive_field_names_like_go() {
        let f = image_set("kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v2alpha1\nmirror:\n  additionalimages:\n  - name: quay.io/a/b:1\n  blockedimages:\n  - name: x\n").unwrap();
        assert_eq!(f.mirror.additional_images[0].name, "quay.io/a/b:1");
        assert_eq!(f.mirror.blocked_images[0].name, "x");
    }

    #[test]
    fn unknown_fields_are_named() {
        let e = image_set(
            "kind: ImageSetConfiguration\nmirror:\n  operators:\n  - catalog: q.io/a/b:1\n    headsOnly: true\n",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "unknown field \"mirror.operators[0].headsOnly\"");
        // oc-mirror v1's files: the field is named, and the format too.
        let e = image_set("kind: ImageSetConfiguration\nstorageConfig: {}\nmirror: {}\n").unwrap_err().to_string();
        assert!(e.starts_with("unknown field \"storageConfig\": this looks like an oc-mirror v1 file"), "{e}");
        let v1 = "kind: ImageSetConfiguration\napiVersion: mirror.openshift.io/v1alpha2\nmirror:\n  operators:\n  - catalog: q.io/a/b:1\n    headsOnly: true\n";
        let e = image_set(v1).unwrap_err().to_string();
        assert!(
            e.starts_with("unknown field \"mirror.operators[0].headsOnly\": this looks like an oc-mirror v1"),
            "{e}"
        );
        let v2 = v1.replace("v1alpha2", "v2alpha1");
        assert_eq!(image_set(&v2).unwrap_err().to_string(), "unknown field \"mirror.operators[0].headsOnly\"");
    }

    #[test]
    fn kind_and_blocks_are_checked() {
        assert_eq!(image_set("mirror: {}").unwrap_err().to_string(), "configuration missing 'kind'");
        assert!(
            image_set("kind: DeleteImageSetConfiguration\ndelete: {}")
                .unwrap_err()
                .to_string()
                .contains("cannot parse")
        );
        assert!(
            image_set("kind: ImageSetConfiguration\ndelete: {}")
                .unwrap_err()
                .to_string()
                .contains("delete: is not allowed")
        );
        let d = delete_set(
            "kind: DeleteImageSetConfiguration\ndelete:\n  platform:\n    channels: [{name: stable-4.18}]\n",
        )
        .unwrap();
        assert_eq!(d.delete.platform.unwrap().architectures.len(), 1);
    }

    #[test]
    fn custom_resources_report_a_bad_resync_interval() {
        let cr = "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmetadata: {name: x}\nspec:\n  destination: docker://mirror.example.com/ns\n  resyncInterval: 99999999999999999999h\n  mirror: {}\n";
        let e = image_set(cr).unwrap_err().to_string();
        assert!(e.contains("spec.resyncInterval") && e.contains("at most 8784h"), "{e}");
    }

    #[test]
    fn custom_resources_load_with_spec_paths() {
        let cr = "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmetadata: {name: x}\nspec:\n  destination: docker://mirror.example.com/ns\n  mirror:\n    additionalImages: [{name: quay.io/a/b}]\n";
        let e = image_set(cr).unwrap_err().to_string();
        assert!(e.contains("spec.mirror.additionalImages[0].name"), "{e}");
    }
}
