//! YAML read as Helm reads it: `sigs.k8s.io/yaml` over go-yaml v2, i.e. YAML 1.1 scalars
//! (`yes`/`on` are booleans, `017` is octal, `1_000` is an integer), only the first document,
//! merge keys, and then the JSON round trip that turns every number into a `float64` and every
//! key into a string. Events come from the parser serde-saphyr is built on.

use std::collections::{BTreeMap, HashMap};

use serde_saphyr::granit_parser::{Event, Options, Parser, ScalarStyle, Tag};

use super::value::{Key, Value};

/// A YAML node after go-yaml v2's resolution, before the JSON round trip (Chart.yaml needs the
/// integer/float distinction to turn numbers into strings as `sigs.k8s.io/yaml` does).
#[derive(Clone, Debug, PartialEq)]
pub enum Node {
    /// `null`, `~`, empty.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer that fits `int64`.
    Int(i64),
    /// A larger positive integer.
    Uint(u64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, keys already turned into strings, in document order (later keys win).
    Map(Vec<(String, Node)>),
}

const CORE: &str = "tag:yaml.org,2002:";

/// Parses the first document of `text` (`Node::Null` for an empty stream).
pub fn parse(text: &str) -> Result<Node, String> {
    let mut options = Options::default();
    options.set_emit_comments(false);
    let mut p = Reader { events: Parser::new_from_str_with_options(text, options), anchors: HashMap::new() };
    loop {
        match p.next()? {
            None | Some(Event::StreamEnd) => return Ok(Node::Null),
            Some(Event::DocumentStart(..)) => break,
            Some(_) => {}
        }
    }
    let Some(ev) = p.next()? else { return Ok(Node::Null) };
    if matches!(ev, Event::DocumentEnd) {
        return Ok(Node::Null);
    }
    p.node(ev, 0)
}

/// Parses the first document and converts it as `sigs.k8s.io/yaml` does for an
/// `interface{}` target.
pub fn parse_value(text: &str) -> Result<Value, String> {
    to_value(&parse(text)?)
}

/// The JSON round trip: numbers become `float64`; NaN and infinities cannot be encoded.
pub fn to_value(n: &Node) -> Result<Value, String> {
    Ok(match n {
        Node::Null => Value::Nil,
        Node::Bool(b) => Value::Bool(*b),
        Node::Int(i) => Value::Float(*i as f64),
        Node::Uint(u) => Value::Float(*u as f64),
        Node::Float(f) => {
            if !f.is_finite() {
                return Err(format!(
                    "error converting YAML to JSON: json: unsupported value: {}",
                    super::gofmt::format_float(*f, 'g', None, 64)
                ));
            }
            Value::Float(*f)
        }
        Node::Str(s) => Value::str(s),
        Node::Seq(items) => Value::list(items.iter().map(to_value).collect::<Result<_, _>>()?),
        Node::Map(entries) => {
            let mut m = BTreeMap::new();
            for (k, v) in entries {
                m.insert(Key::from(k.as_str()), to_value(v)?);
            }
            Value::map_from(m)
        }
    })
}

struct Reader<'a> {
    events: Parser<'a, serde_saphyr::granit_parser::StrInput<'a>>,
    anchors: HashMap<usize, Node>,
}

/// go-yaml's limit on nesting, so a hostile file cannot exhaust the stack.
const MAX_DEPTH: usize = 10_000;

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<Option<Event<'a>>, String> {
        match self.events.next_event() {
            None => Ok(None),
            Some(Ok((ev, _))) => Ok(Some(ev)),
            Some(Err(e)) => Err(format!("yaml: {e}")),
        }
    }

    fn need(&mut self) -> Result<Event<'a>, String> {
        self.next()?.ok_or_else(|| "yaml: unexpected end of stream".to_string())
    }

    fn node(&mut self, ev: Event<'a>, depth: usize) -> Result<Node, String> {
        if depth > MAX_DEPTH {
            return Err("yaml: exceeded max depth".into());
        }
        match ev {
            Event::Scalar(value, style, anchor, tag) => {
                let n = resolve(&value, style, tag.as_deref())?;
                if anchor != 0 {
                    self.anchors.insert(anchor, n.clone());
                }
                Ok(n)
            }
            Event::Alias(id) => {
                self.anchors.get(&id).cloned().ok_or_else(|| "yaml: unknown anchor referenced".to_string())
            }
            Event::SequenceStart(_, anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let ev = self.need()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(ev, depth + 1)?);
                }
                let n = Node::Seq(items);
                if anchor != 0 {
                    self.anchors.insert(anchor, n.clone());
                }
                Ok(n)
            }
            Event::MappingStart(_, anchor, _) => {
                let mut entries: Vec<(String, Node)> = Vec::new();
                loop {
                    let ev = self.need()?;
                    if matches!(ev, Event::MappingEnd) {
                        break;
                    }
                    let is_merge = matches!(&ev, Event::Scalar(v, ScalarStyle::Plain, _, None) if v == "<<");
                    let key = self.node(ev, depth + 1)?;
                    let value_ev = self.need()?;
                    let value = self.node(value_ev, depth + 1)?;
                    if is_merge {
                        merge_into(&mut entries, value)?;
                        continue;
                    }
                    put(&mut entries, key_string(&key)?, value);
                }
                let n = Node::Map(entries);
                if anchor != 0 {
                    self.anchors.insert(anchor, n.clone());
                }
                Ok(n)
            }
            other => Err(format!("yaml: unexpected event {other:?}")),
        }
    }
}

fn put(entries: &mut Vec<(String, Node)>, key: String, value: Node) {
    if let Some(e) = entries.iter_mut().find(|(k, _)| *k == key) {
        e.1 = value;
    } else {
        entries.push((key, value));
    }
}

/// `<<: *x` or `<<: [*a, *b]` (earlier maps in the list win, as go-yaml v2 applies them
/// from the last).
fn merge_into(entries: &mut Vec<(String, Node)>, value: Node) -> Result<(), String> {
    match value {
        Node::Map(m) => {
            for (k, v) in m {
                put(entries, k, v);
            }
            Ok(())
        }
        Node::Seq(items) => {
            for item in items.into_iter().rev() {
                let Node::Map(m) = item else {
                    return Err("yaml: map merge requires map or sequence of maps as the value".into());
                };
                for (k, v) in m {
                    put(entries, k, v);
                }
            }
            Ok(())
        }
        _ => Err("yaml: map merge requires map or sequence of maps as the value".into()),
    }
}

/// The JSON key `sigs.k8s.io/yaml` makes of a YAML key.
fn key_string(k: &Node) -> Result<String, String> {
    Ok(match k {
        Node::Str(s) => s.clone(),
        Node::Int(i) => i.to_string(),
        Node::Float(f) => match super::gofmt::format_float(*f, 'g', None, 32).as_str() {
            "+Inf" => ".inf".into(),
            "-Inf" => "-.inf".into(),
            "NaN" => ".nan".into(),
            s => s.into(),
        },
        Node::Bool(b) => b.to_string(),
        other => return Err(format!("error converting YAML to JSON: unsupported map key: {other:?}")),
    })
}

fn resolve(value: &str, style: ScalarStyle, tag: Option<&Tag>) -> Result<Node, String> {
    let core = tag.and_then(|t| t.suffix_in_namespace(CORE)).map(|s| s.into_owned());
    match core.as_deref() {
        Some("str") => return Ok(Node::Str(value.into())),
        Some("binary") => {
            use base64::Engine;
            let clean: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(clean)
                .map_err(|e| format!("yaml: !!binary value contains invalid base64 data: {e}"))?;
            return Ok(Node::Str(String::from_utf8_lossy(&bytes).into_owned()));
        }
        Some(t @ ("int" | "float" | "bool" | "null")) => {
            let n = resolve_plain(value);
            let ok = matches!(
                (&n, t),
                (Node::Int(_) | Node::Uint(_), "int")
                    | (Node::Float(_) | Node::Int(_) | Node::Uint(_), "float")
                    | (Node::Bool(_), "bool")
                    | (Node::Null, "null")
            );
            if !ok {
                return Err(format!("yaml: cannot decode !!str `{value}` as a !!{t}"));
            }
            return Ok(match (n, t) {
                (Node::Int(i), "float") => Node::Float(i as f64),
                (Node::Uint(u), "float") => Node::Float(u as f64),
                (n, _) => n,
            });
        }
        _ => {}
    }
    // Quoted and block scalars, and any other tag, are strings.
    if style != ScalarStyle::Plain || tag.is_some() {
        return Ok(Node::Str(value.into()));
    }
    Ok(resolve_plain(value))
}

/// go-yaml v2's `resolve` for an untagged plain scalar.
pub fn resolve_plain(s: &str) -> Node {
    let Some(&first) = s.as_bytes().first() else { return Node::Null };
    let hint = match first {
        b'+' | b'-' => 'S',
        b'0'..=b'9' => 'D',
        b'y' | b'Y' | b'n' | b'N' | b't' | b'T' | b'f' | b'F' | b'o' | b'O' | b'~' | b'<' => 'M',
        b'.' => '.',
        _ => return Node::Str(s.into()),
    };
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => return Node::Bool(true),
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Node::Bool(false);
        }
        "~" | "null" | "Null" | "NULL" => return Node::Null,
        ".nan" | ".NaN" | ".NAN" => return Node::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Node::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Node::Float(f64::NEG_INFINITY),
        _ => {}
    }
    match hint {
        '.' => match s.parse::<f64>() {
            Ok(f) if go_float_syntax(s) => Node::Float(f),
            _ => Node::Str(s.into()),
        },
        'D' | 'S' => {
            let plain = s.replace('_', "");
            if let Some(i) = go_parse_int(&plain) {
                return Node::Int(i);
            }
            if let Some(u) = go_parse_uint(&plain) {
                return Node::Uint(u);
            }
            if yaml_style_float(&plain)
                && let Ok(f) = plain.parse::<f64>()
            {
                return Node::Float(f);
            }
            Node::Str(s.into())
        }
        _ => Node::Str(s.into()),
    }
}

/// Rust accepts `inf`/`nan` spellings Go's `ParseFloat` also accepts, but a scalar starting
/// with `.` is only a float in Go when it is a decimal literal.
fn go_float_syntax(s: &str) -> bool {
    s.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-'))
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let st = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - st
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
pub fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let u = go_parse_uint_body(rest)?;
    if neg {
        if u <= i64::MAX as u64 + 1 { Some((u as i128).wrapping_neg() as i64) } else { None }
    } else if u <= i64::MAX as u64 {
        Some(u as i64)
    } else {
        None
    }
}

/// Go's `strconv.ParseUint(s, 0, 64)`.
pub fn go_parse_uint(s: &str) -> Option<u64> {
    go_parse_uint_body(s)
}

fn go_parse_uint_body(s: &str) -> Option<u64> {
    let (radix, digits) = if let Some(r) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (16, r)
    } else if let Some(r) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        (8, r)
    } else if let Some(r) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        (2, r)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    if digits.is_empty() || digits.starts_with('+') || digits.starts_with('-') {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_one_one_scalars() {
        assert_eq!(resolve_plain("yes"), Node::Bool(true));
        assert_eq!(resolve_plain("Off"), Node::Bool(false));
        assert_eq!(resolve_plain("017"), Node::Int(15));
        assert_eq!(resolve_plain("0x1F"), Node::Int(31));
        assert_eq!(resolve_plain("1_000"), Node::Int(1000));
        assert_eq!(resolve_plain("1e3"), Node::Float(1000.0));
        assert_eq!(resolve_plain(".5"), Node::Float(0.5));
        assert_eq!(resolve_plain("-.5"), Node::Float(-0.5));
        assert_eq!(resolve_plain("1.2.3"), Node::Str("1.2.3".into()));
        assert_eq!(resolve_plain("2024-01-01"), Node::Str("2024-01-01".into()));
        assert_eq!(resolve_plain("~"), Node::Null);
        assert_eq!(resolve_plain("v1"), Node::Str("v1".into()));
        assert_eq!(resolve_plain("-"), Node::Str("-".into()));
    }

    #[test]
    fn documents_keys_and_merges() {
        let n = parse("a: 1\n1: x\ntrue: y\nb: &m {c: 2}\nd:\n  <<: *m\n  e: 'on'\n---\nz: 1\n").unwrap();
        let Node::Map(m) = n else { panic!("not a map") };
        let keys: Vec<&str> = m.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["a", "1", "true", "b", "d"]);
        assert_eq!(m[4].1, Node::Map(vec![("c".into(), Node::Int(2)), ("e".into(), Node::Str("on".into()))]));
        let v = parse_value("x: 3\n").unwrap();
        assert!(matches!(v.get("x"), Some(Value::Float(f)) if f == 3.0));
        assert_eq!(parse("").unwrap(), Node::Null);
        assert!(parse_value("x: .inf\n").is_err());
        assert!(parse("a: [1\n").is_err());
    }
}
