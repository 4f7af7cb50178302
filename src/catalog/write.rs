//! The filtered catalog as files: `<package>/catalog.json` per package (a JSON stream, as opm
//! writes catalogs into images), blobs re-read from the original bytes and trimmed to the
//! selection (channel entries, default channel, deprecation entries).

use serde_json::Value;

use super::{Catalog, CatalogError, Selection, Span};

/// Files of the filtered catalog: (path relative to the catalog root, bytes), sorted.
pub fn filtered_files(cat: &Catalog, sel: &Selection) -> Result<Vec<(String, Vec<u8>)>, CatalogError> {
    let mut out = Vec::new();
    for (name, ps) in &sel.packages {
        let mut buf = Vec::new();
        for p in cat.packages.iter().filter(|p| &p.name == name) {
            let mut v = blob(cat, p.span)?;
            if let (Some(d), Some(obj)) = (&ps.default_channel, v.as_object_mut()) {
                obj.insert("defaultChannel".into(), Value::String(d.clone()));
            }
            push(&mut buf, &v);
        }
        for c in cat.channels.iter().filter(|c| &c.package == name) {
            let Some(kept) = ps.channels.get(&c.name) else { continue };
            let mut v = blob(cat, c.span)?;
            if let Some(Value::Array(entries)) = v.get_mut("entries") {
                entries.retain(|e| e.get("name").and_then(Value::as_str).is_some_and(|n| kept.iter().any(|k| k == n)));
            }
            push(&mut buf, &v);
        }
        for b in cat.bundles.iter().filter(|b| &b.package == name && ps.bundles.contains(&b.name)) {
            push(&mut buf, &blob(cat, b.span)?);
        }
        for d in cat.deprecations.iter().filter(|d| &d.package == name) {
            let mut v = blob(cat, d.span)?;
            if let Some(Value::Array(entries)) = v.get_mut("entries") {
                entries.retain(|e| {
                    let r = e.get("reference");
                    let schema = r.and_then(|r| r.get("schema")).and_then(Value::as_str).unwrap_or_default();
                    let n = r.and_then(|r| r.get("name")).and_then(Value::as_str).unwrap_or_default();
                    match schema {
                        "olm.bundle" => ps.bundles.contains(n),
                        "olm.channel" => ps.channels.contains_key(n),
                        _ => true,
                    }
                });
            }
            push(&mut buf, &v);
        }
        for o in cat.others.iter().filter(|o| &o.package == name) {
            push(&mut buf, &blob(cat, o.span)?);
        }
        out.push((format!("{name}/catalog.json"), buf));
    }
    let mut global = Vec::new();
    for o in cat.others.iter().filter(|o| o.package.is_empty()) {
        push(&mut global, &blob(cat, o.span)?);
    }
    if !global.is_empty() {
        out.push(("catalog.json".to_string(), global));
    }
    Ok(out)
}

fn push(buf: &mut Vec<u8>, v: &Value) {
    serde_json::to_writer(&mut *buf, v).expect("a JSON value serializes");
    buf.push(b'\n');
}

fn blob(cat: &Catalog, span: Span) -> Result<Value, CatalogError> {
    let text = cat.text(span);
    let parse = |message: String| CatalogError::Parse { path: cat.locate(span), message };
    if cat.is_yaml(span) {
        let s = std::str::from_utf8(text).map_err(|e| parse(e.to_string()))?;
        serde_saphyr::from_str_with_options(s, super::parse::yaml_options()).map_err(|e| parse(e.to_string()))
    } else {
        serde_json::from_slice(text).map_err(|e| parse(e.to_string()))
    }
}
