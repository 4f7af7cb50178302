//! From rendered templates to the documents oc-mirror scans: `.txt` files dropped, every
//! `crds/` file of the chart tree prepended, `releaseutil.SortManifests` (documents split on
//! `---`, hooks — anything annotated `helm.sh/hook` — left out, heads type-checked), then the
//! whole text split on `\n---\n` and each piece read as its first YAML document.

use std::sync::OnceLock;

use regex::Regex;

use super::value::Value;
use super::values::Work;
use super::yaml_in;

/// A document to scan: where it came from and its value.
pub struct Doc {
    pub source: String,
    pub value: Value,
}

fn sep() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    R.get_or_init(|| Regex::new(r"(?:^|\s*\n)---\s*").expect("valid regex"))
}

/// `releaseutil.SplitManifests`: trimmed, non-empty documents in order.
pub fn split_manifests(text: &str) -> Vec<&str> {
    sep().split(text.trim()).filter(|d| !d.is_empty()).map(str::trim).collect()
}

/// The files of `crds/` in the chart and its (enabled) subcharts, as `Chart.CRDObjects`.
fn crds<'a>(c: &'a Work, out: &mut Vec<(&'a str, &'a [u8])>) {
    for f in c.files {
        let lower = f.name.to_ascii_lowercase();
        if f.name.starts_with("crds/")
            && (lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json"))
        {
            out.push((&f.name, &f.data));
        }
    }
    for d in &c.deps {
        crds(d, out);
    }
}

/// `SimpleHead`'s typed fields: what `sigs.k8s.io/yaml` refuses to decode.
fn check_head(v: &Value) -> Result<bool, String> {
    let bad = |field: &str, v: &Value| {
        Err(format!(
            "error unmarshaling JSON: json: cannot unmarshal {} into Go struct field {field} of type string",
            v.kind()
        ))
    };
    if !matches!(v, Value::Map(_)) {
        return if v.is_nil() {
            Ok(false)
        } else {
            Err(format!(
                "error unmarshaling JSON: json: cannot unmarshal {} into Go value of type releaseutil.SimpleHead",
                v.kind()
            ))
        };
    }
    for f in ["apiVersion", "kind"] {
        match v.get(f) {
            None | Some(Value::Nil | Value::Str(_)) => {}
            Some(other) => return bad(&format!("SimpleHead.{f}"), &other),
        }
    }
    let Some(meta) = v.get("metadata") else { return Ok(false) };
    match &meta {
        Value::Nil => return Ok(false),
        Value::Map(_) => {}
        other => {
            return Err(format!(
                "error unmarshaling JSON: json: cannot unmarshal {} into Go struct field SimpleHead.metadata",
                other.kind()
            ));
        }
    }
    match meta.get("name") {
        None | Some(Value::Nil | Value::Str(_)) => {}
        Some(other) => return bad("SimpleHead.metadata.name", &other),
    }
    let Some(ann) = meta.get("annotations") else { return Ok(false) };
    let Value::Map(m) = &ann else {
        return if ann.is_nil() {
            Ok(false)
        } else {
            Err("error unmarshaling JSON: json: cannot unmarshal into Go struct field SimpleHead.metadata.annotations"
                .into())
        };
    };
    for (k, val) in m.borrow().iter() {
        if !matches!(val, Value::Nil | Value::Str(_)) {
            return bad(&format!("SimpleHead.metadata.annotations.{k}"), val);
        }
    }
    let hook = m.borrow().contains_key("helm.sh/hook");
    Ok(hook)
}

/// The documents oc-mirror reads images from, in its order (CRDs first).
pub fn documents(root: &Work, rendered: &[(String, String)]) -> Result<Vec<Doc>, String> {
    let mut docs = Vec::new();
    // CRDs: joined as oc-mirror joins them, then split on "\n---\n".
    let mut crd_files = Vec::new();
    crds(root, &mut crd_files);
    let mut text = String::new();
    for (name, data) in &crd_files {
        text.push_str("---\n# Source: ");
        text.push_str(name);
        text.push('\n');
        text.push_str(&String::from_utf8_lossy(data));
        text.push('\n');
    }
    // The boundary to the first manifest is "\n" + "---\n", which the split below sees.
    for piece in text.split("\n---\n") {
        let source = piece.lines().find_map(|l| l.strip_prefix("# Source: ")).unwrap_or("crds").to_string();
        let value = yaml_in::parse_value(piece).map_err(|e| format!("{source}: {e}"))?;
        docs.push(Doc { source, value });
    }
    // Manifests, sorted by file name.
    let mut files: Vec<&(String, String)> = rendered.iter().filter(|(k, _)| !k.ends_with(".txt")).collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (path, content) in files {
        let base = path.rsplit('/').next().unwrap_or(path);
        if base.starts_with('_') || content.trim().is_empty() {
            continue;
        }
        for m in split_manifests(content) {
            let value = yaml_in::parse_value(m)
                .map_err(|e| format!("error sorting manifests: YAML parse error on {path}: {e}"))?;
            let hook =
                check_head(&value).map_err(|e| format!("error sorting manifests: YAML parse error on {path}: {e}"))?;
            if !hook {
                docs.push(Doc { source: path.clone(), value });
            }
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helm_splits_on_any_dash_line() {
        // Go's regexp consumes the blank lines after a separator, so a following "---" stays.
        assert_eq!(split_manifests("a: 1\n---\nb: 2\n--- \n\n---\nc: 3"), ["a: 1", "b: 2", "---\nc: 3"]);
        assert_eq!(split_manifests("---\na: 1\n---x: 1"), ["a: 1", "x: 1"]);
        assert!(split_manifests("  \n").is_empty());
    }

    #[test]
    fn hooks_and_heads() {
        let hook = yaml_in::parse_value("kind: Pod\nmetadata:\n  annotations:\n    helm.sh/hook: test\n").unwrap();
        assert!(check_head(&hook).unwrap());
        let plain = yaml_in::parse_value("kind: Pod\nmetadata:\n  annotations:\n    a: b\n").unwrap();
        assert!(!check_head(&plain).unwrap());
        let bad = yaml_in::parse_value("kind: 3\n").unwrap();
        assert!(check_head(&bad).is_err());
        assert!(!check_head(&Value::Nil).unwrap());
    }
}
