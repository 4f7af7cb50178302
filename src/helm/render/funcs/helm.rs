//! Helm's own functions (`include`, `tpl`, `required`, `fail`, `lookup`, the YAML/JSON/TOML
//! converters) and sprig's semver, URL and path helpers.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::{Imp, P, Row, s, warn_wrap};
use crate::helm::render::semver;
use crate::helm::render::value::{Key, Obj, Value, map_of};
use crate::helm::render::{yaml_in, yaml_out};

fn st(x: String) -> Result<Value, String> {
    Ok(Value::string(x))
}

fn error_map(msg: String) -> Value {
    map_of(vec![("Error", Value::string(msg))])
}

fn from_yaml(text: &str) -> Value {
    match yaml_in::parse_value(text) {
        Ok(Value::Map(m)) => Value::Map(m),
        Ok(Value::Nil) => Value::new_map(),
        Ok(other) => error_map(format!(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(&other)
        )),
        Err(e) => error_map(e),
    }
}

fn from_yaml_array(text: &str) -> Value {
    match yaml_in::parse_value(text) {
        Ok(Value::List(l)) => Value::List(l),
        Ok(Value::Nil) => Value::list(Vec::new()),
        Ok(other) => Value::list(vec![Value::string(format!(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type []interface {{}}",
            json_kind(&other)
        ))]),
        Err(e) => Value::list(vec![Value::string(e)]),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Map(_) => "object",
        Value::List(_) | Value::Strings(_) => "array",
        Value::Str(_) => "string",
        Value::Bool(_) => "bool",
        _ => "number",
    }
}

/// JSON text to a value (`encoding/json` into `interface{}`).
fn json_value(text: &str) -> Result<Value, String> {
    let j: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(from_json_value(&j))
}

fn from_json_value(j: &serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Value::str(s),
        serde_json::Value::Array(a) => Value::list(a.iter().map(from_json_value).collect()),
        serde_json::Value::Object(o) => {
            Value::map_from(o.iter().map(|(k, v)| (Key::from(k.as_str()), from_json_value(v))).collect())
        }
    }
}

fn from_json(text: &str) -> Value {
    match json_value(text) {
        Ok(Value::Map(m)) => Value::Map(m),
        Ok(Value::Nil) => Value::new_map(),
        Ok(other) => error_map(format!(
            "json: cannot unmarshal {} into Go value of type map[string]interface {{}}",
            json_kind(&other)
        )),
        Err(e) => error_map(e),
    }
}

fn from_json_array(text: &str) -> Value {
    match json_value(text) {
        Ok(Value::List(l)) => Value::List(l),
        Ok(Value::Nil) => Value::list(Vec::new()),
        Ok(other) => Value::list(vec![Value::string(format!(
            "json: cannot unmarshal {} into Go value of type []interface {{}}",
            json_kind(&other)
        ))]),
        Err(e) => Value::list(vec![Value::string(e)]),
    }
}

fn toml_value(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::str(s),
        toml::Value::Integer(i) => Value::Int64(*i),
        toml::Value::Float(f) => Value::Float(*f),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::string(d.to_string()),
        toml::Value::Array(a) => Value::list(a.iter().map(toml_value).collect()),
        toml::Value::Table(t) => {
            Value::map_from(t.iter().map(|(k, v)| (Key::from(k.as_str()), toml_value(v))).collect())
        }
    }
}

fn to_toml(v: &Value) -> String {
    fn scalar(v: &Value) -> Option<String> {
        Some(match v {
            Value::Str(s) => crate::helm::render::gofmt::quote(s),
            Value::Bool(b) => b.to_string(),
            Value::Int(i) | Value::Int64(i) => i.to_string(),
            Value::Float(f) => crate::helm::render::gofmt::format_float(*f, 'g', None, 64),
            Value::List(l) | Value::Strings(l) => {
                let items: Option<Vec<String>> = l.iter().map(scalar).collect();
                format!("[{}]", items?.join(", "))
            }
            _ => return None,
        })
    }
    fn table(out: &mut String, prefix: &str, m: &BTreeMap<Key, Value>) {
        for (k, v) in m {
            if let Some(text) = scalar(v) {
                out.push_str(&format!("{k} = {text}\n"));
            }
        }
        for (k, v) in m {
            if let Value::Map(sub) = v {
                let name = if prefix.is_empty() { k.to_string() } else { format!("{prefix}.{k}") };
                out.push_str(&format!("\n[{name}]\n"));
                table(out, &name, &sub.borrow());
            }
        }
    }
    let mut out = String::new();
    if let Value::Map(m) = v {
        table(&mut out, "", &m.borrow());
    }
    out
}

fn semver_value(v: &str) -> Result<Value, String> {
    semver::Version::parse(v).map(|v| Value::Obj(Rc::new(Obj::Semver(v))))
}

/// Go's `path.Clean`.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn base(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/".into();
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

fn dir(p: &str) -> String {
    let i = p.rfind('/').map(|i| i + 1).unwrap_or(0);
    clean(&p[..i])
}

fn ext(p: &str) -> String {
    let last = p.rsplit('/').next().unwrap_or(p);
    last.rfind('.').map(|i| last[i..].to_string()).unwrap_or_default()
}

fn url_parse(u: &str) -> Result<Value, String> {
    let (rest, fragment) = u.split_once('#').unwrap_or((u, ""));
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (scheme, rest) = match rest.split_once("://") {
        Some((sc, r)) => (sc, r),
        None => ("", rest),
    };
    let (authority, path) = if scheme.is_empty() {
        ("", rest)
    } else {
        match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        }
    };
    let (userinfo, host) = authority.rsplit_once('@').unwrap_or(("", authority));
    let hostname = host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host);
    Ok(map_of(vec![
        ("scheme", Value::str(scheme)),
        ("host", Value::str(host)),
        ("hostname", Value::str(hostname)),
        ("path", Value::str(path)),
        ("query", Value::str(query)),
        ("opaque", Value::str("")),
        ("fragment", Value::str(fragment)),
        ("userinfo", Value::str(userinfo)),
    ]))
}

fn url_join(m: &Value) -> String {
    let g = |k: &str| m.get(k).and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    let mut out = String::new();
    if !g("scheme").is_empty() {
        out.push_str(&g("scheme"));
        out.push_str("://");
    }
    if !g("userinfo").is_empty() {
        out.push_str(&g("userinfo"));
        out.push('@');
    }
    out.push_str(&g("host"));
    out.push_str(&g("path"));
    if !g("query").is_empty() {
        out.push('?');
        out.push_str(&g("query"));
    }
    if !g("fragment").is_empty() {
        out.push('#');
        out.push_str(&g("fragment"));
    }
    out
}

pub const FUNCS: &[Row] = &[
    ("include", &[P::Str, P::Any], None, Imp::Include),
    ("tpl", &[P::Str, P::Any], None, Imp::Tpl),
    (
        "required",
        &[P::Str, P::Any],
        None,
        Imp::Pure(|_, a| match &a[1] {
            Value::Nil | Value::Invalid => Err(warn_wrap(s(&a[0]))),
            Value::Str(x) if x.is_empty() => Err(warn_wrap(s(&a[0]))),
            v => Ok(v.clone()),
        }),
    ),
    ("fail", &[P::Str], None, Imp::Pure(|_, a| Err(warn_wrap(s(&a[0]))))),
    ("lookup", &[P::Str, P::Str, P::Str, P::Str], None, Imp::Pure(|_, _| Ok(Value::new_map()))),
    ("toYaml", &[P::Any], None, Imp::Pure(|_, a| st(yaml_out::to_yaml(&a[0]).unwrap_or_default()))),
    ("toYamlPretty", &[P::Any], None, Imp::Pure(|_, a| st(yaml_out::to_yaml(&a[0]).unwrap_or_default()))),
    ("mustToYaml", &[P::Any], None, Imp::Pure(|_, a| yaml_out::to_yaml(&a[0]).map(Value::string))),
    ("fromYaml", &[P::Str], None, Imp::Pure(|_, a| Ok(from_yaml(s(&a[0]))))),
    ("fromYamlArray", &[P::Str], None, Imp::Pure(|_, a| Ok(from_yaml_array(s(&a[0]))))),
    ("toJson", &[P::Any], None, Imp::Pure(|_, a| st(yaml_out::to_json(&a[0], false, true).unwrap_or_default()))),
    ("fromJson", &[P::Str], None, Imp::Pure(|_, a| Ok(from_json(s(&a[0]))))),
    ("fromJsonArray", &[P::Str], None, Imp::Pure(|_, a| Ok(from_json_array(s(&a[0]))))),
    ("mustFromJson", &[P::Str], None, Imp::Pure(|_, a| json_value(s(&a[0])))),
    ("mustToJson", &[P::Any], None, Imp::Pure(|_, a| yaml_out::to_json(&a[0], false, true).map(Value::string))),
    ("toPrettyJson", &[P::Any], None, Imp::Pure(|_, a| st(yaml_out::to_json(&a[0], true, true).unwrap_or_default()))),
    ("mustToPrettyJson", &[P::Any], None, Imp::Pure(|_, a| yaml_out::to_json(&a[0], true, true).map(Value::string))),
    ("toRawJson", &[P::Any], None, Imp::Pure(|_, a| yaml_out::to_json(&a[0], false, false).map(Value::string))),
    ("mustToRawJson", &[P::Any], None, Imp::Pure(|_, a| yaml_out::to_json(&a[0], false, false).map(Value::string))),
    ("toToml", &[P::Any], None, Imp::Pure(|_, a| st(to_toml(&a[0])))),
    (
        "fromToml",
        &[P::Str],
        None,
        Imp::Pure(|_, a| {
            Ok(match s(&a[0]).parse::<toml::Table>() {
                Ok(t) => toml_value(&toml::Value::Table(t)),
                Err(e) => error_map(e.to_string()),
            })
        }),
    ),
    ("semver", &[P::Str], None, Imp::Pure(|_, a| semver_value(s(&a[0])))),
    (
        "semverCompare",
        &[P::Str, P::Str],
        None,
        Imp::Pure(|_, a| semver::semver_compare(s(&a[0]), s(&a[1])).map(Value::Bool)),
    ),
    ("urlParse", &[P::Str], None, Imp::Pure(|_, a| url_parse(s(&a[0])))),
    ("urlJoin", &[P::Map], None, Imp::Pure(|_, a| st(url_join(&a[0])))),
    ("base", &[P::Str], None, Imp::Pure(|_, a| st(base(s(&a[0]))))),
    ("dir", &[P::Str], None, Imp::Pure(|_, a| st(dir(s(&a[0]))))),
    ("clean", &[P::Str], None, Imp::Pure(|_, a| st(clean(s(&a[0]))))),
    ("ext", &[P::Str], None, Imp::Pure(|_, a| st(ext(s(&a[0]))))),
    ("isAbs", &[P::Str], None, Imp::Pure(|_, a| Ok(Value::Bool(s(&a[0]).starts_with('/'))))),
    ("osBase", &[P::Str], None, Imp::Pure(|_, a| st(base(s(&a[0]))))),
    ("osDir", &[P::Str], None, Imp::Pure(|_, a| st(dir(s(&a[0]))))),
    ("osClean", &[P::Str], None, Imp::Pure(|_, a| st(clean(s(&a[0]))))),
    ("osExt", &[P::Str], None, Imp::Pure(|_, a| st(ext(s(&a[0]))))),
    ("osIsAbs", &[P::Str], None, Imp::Pure(|_, a| Ok(Value::Bool(s(&a[0]).starts_with('/'))))),
    ("hello", &[], None, Imp::Pure(|_, _| st("Hello!".into()))),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_parsers() {
        assert_eq!(clean("a/../b/./c/"), "b/c");
        assert_eq!(base("a/b.txt"), "b.txt");
        assert_eq!(dir("a/b/c.txt"), "a/b");
        assert_eq!(ext("a/b.tar.gz"), ".gz");
        assert!(from_yaml("a: [1").get("Error").is_some());
        assert!(from_yaml("- 1\n").get("Error").is_some());
        assert!(from_yaml("").get("Error").is_none());
        assert!(from_json("{\"a\": 1}").get("a").is_some());
        let u = url_parse("https://u@h:1/p?q=1#f").unwrap();
        assert_eq!(u.get("hostname").unwrap().as_str(), Some("h"));
        assert_eq!(url_join(&u), "https://u@h:1/p?q=1#f");
    }
}
