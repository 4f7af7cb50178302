//! `toYaml` and `toJson` as Helm produces them: `encoding/json` (keys sorted, HTML-escaped
//! strings, Go's float forms) and `sigs.k8s.io/yaml`'s JSON-to-YAML step written the way go-yaml
//! v2 writes it: block style, sequences not indented under their key, plain scalars when they
//! read back as the same string, single quotes for indicators, double quotes for strings that
//! would read as another type, literal blocks for multi-line strings. Lines are not folded.

use std::cmp::Ordering;

use base64::Engine;

use super::gofmt::{format_float, json_float};
use super::value::{Obj, Value};
use super::yaml_in::{Node, resolve_plain};

const MAX_DEPTH: usize = 1000;

/// `encoding/json` Marshal (`pretty`: MarshalIndent with two spaces; `escape_html`: the default
/// encoder's `<`, `>`, `&` escapes).
pub fn to_json(v: &Value, pretty: bool, escape_html: bool) -> Result<String, String> {
    let mut out = String::new();
    json(&mut out, v, pretty, escape_html, 0)?;
    Ok(out)
}

fn json(out: &mut String, v: &Value, pretty: bool, esc: bool, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("json: unsupported value: encountered a cycle".into());
    }
    let newline = |out: &mut String, d: usize| {
        if pretty {
            out.push('\n');
            for _ in 0..d {
                out.push_str("  ");
            }
        }
    };
    match v {
        Value::Invalid | Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) | Value::Int64(i) => out.push_str(&i.to_string()),
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(format!("json: unsupported value: {}", format_float(*f, 'g', None, 64)));
            }
            out.push_str(&json_float(*f))
        }
        Value::Str(s) => json_str(out, s, esc),
        Value::List(l) | Value::Strings(l) => {
            if l.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, depth + 1);
                json(out, e, pretty, esc, depth + 1)?;
            }
            newline(out, depth);
            out.push(']');
        }
        Value::Map(m) => {
            let m = m.borrow();
            let entries: Vec<(&str, Value)> = m.iter().map(|(k, v)| (&**k, v.clone())).collect();
            json_object(out, &entries, pretty, esc, depth)?;
        }
        Value::Obj(o) => match &**o {
            Obj::StrMap(m) => {
                let entries: Vec<(&str, Value)> = m.iter().map(|(k, v)| (&**k, Value::Str(v.clone()))).collect();
                json_object(out, &entries, pretty, esc, depth)?;
            }
            Obj::Files(m) => {
                let entries: Vec<(&str, Value)> = m
                    .iter()
                    .map(|(k, v)| (&**k, Value::string(base64::engine::general_purpose::STANDARD.encode(v))))
                    .collect();
                json_object(out, &entries, pretty, esc, depth)?;
            }
            Obj::Bytes(b) => json_str(out, &base64::engine::general_purpose::STANDARD.encode(b), esc),
            Obj::VersionSet(l) => {
                let l = Value::list(l.iter().map(|s| Value::Str(s.clone())).collect());
                json(out, &l, pretty, esc, depth)?;
            }
            Obj::Struct(s) => {
                let entries: Vec<(String, Value)> = s
                    .fields
                    .iter()
                    .filter(|(_, v)| !json_omit(v))
                    .map(|(n, v)| (json_field_name(n), v.clone()))
                    .collect();
                let entries: Vec<(&str, Value)> = entries.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
                json_object(out, &entries, pretty, esc, depth)?;
            }
            Obj::Semver(s) => json_str(out, &s.to_string(), esc),
            Obj::Time(t) => json_str(out, &super::funcs::time_rfc3339(*t), esc),
        },
    }
    Ok(())
}

fn json_object(
    out: &mut String,
    entries: &[(&str, Value)],
    pretty: bool,
    esc: bool,
    depth: usize,
) -> Result<(), String> {
    if entries.is_empty() {
        out.push_str("{}");
        return Ok(());
    }
    out.push('{');
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if pretty {
            out.push('\n');
            for _ in 0..=depth {
                out.push_str("  ");
            }
        }
        json_str(out, k, esc);
        out.push(':');
        if pretty {
            out.push(' ');
        }
        json(out, v, pretty, esc, depth + 1)?;
    }
    if pretty {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    }
    out.push('}');
    Ok(())
}

/// Helm's structs carry `json:"name,omitempty"` tags: lower-camel names, empty values left out.
fn json_field_name(n: &str) -> String {
    match n {
        "APIVersion" => "apiVersion".into(),
        "URL" => "url".into(),
        "ImportValues" => "import-values".into(),
        "IsRoot" => "IsRoot".into(),
        "GitCommit" => "git_commit".into(),
        "GitTreeState" => "git_tree_state".into(),
        "GoVersion" => "go_version".into(),
        _ => {
            let mut c = n.chars();
            match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => String::new(),
            }
        }
    }
}

fn json_omit(v: &Value) -> bool {
    match v {
        Value::Invalid | Value::Nil => true,
        Value::Bool(b) => !b,
        Value::Str(s) => s.is_empty(),
        Value::List(l) | Value::Strings(l) => l.is_empty(),
        Value::Obj(o) => matches!(&**o, Obj::StrMap(m) if m.is_empty()),
        _ => false,
    }
}

fn json_str(out: &mut String, s: &str, esc: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if esc => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `toYaml`: the YAML text without its final newline.
pub fn to_yaml(v: &Value) -> Result<String, String> {
    // The JSON step first: it fails where Helm's would (NaN, cycles) and fixes number forms.
    let node = to_node(v, 0)?;
    let mut out = String::new();
    emit(&mut out, &node, 0, Ctx::Top);
    while out.ends_with('\n') {
        out.pop();
    }
    Ok(out)
}

/// A value as the JSON text go-yaml v2 re-reads: integral numbers are integers.
fn to_node(v: &Value, depth: usize) -> Result<Node, String> {
    if depth > MAX_DEPTH {
        return Err("json: unsupported value: encountered a cycle".into());
    }
    Ok(match v {
        Value::Invalid | Value::Nil => Node::Null,
        Value::Bool(b) => Node::Bool(*b),
        Value::Int(i) | Value::Int64(i) => Node::Int(*i),
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(format!("json: unsupported value: {}", format_float(*f, 'g', None, 64)));
            }
            let text = json_float(*f);
            match super::yaml_in::go_parse_int(&text) {
                Some(i) if !text.contains(['.', 'e']) => Node::Int(i),
                _ => Node::Float(*f),
            }
        }
        Value::Str(s) => Node::Str(s.to_string()),
        Value::List(l) | Value::Strings(l) => {
            Node::Seq(l.iter().map(|e| to_node(e, depth + 1)).collect::<Result<_, _>>()?)
        }
        Value::Map(m) => Node::Map(
            m.borrow()
                .iter()
                .map(|(k, e)| Ok((k.to_string(), to_node(e, depth + 1)?)))
                .collect::<Result<_, String>>()?,
        ),
        Value::Obj(_) => {
            // Through JSON text, as Helm does.
            let text = to_json(v, false, true)?;
            super::yaml_in::parse(&text)?
        }
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    Top,
    MapValue,
    SeqItem,
}

fn indent(out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(' ');
    }
}

fn emit(out: &mut String, n: &Node, ind: usize, ctx: Ctx) {
    match n {
        Node::Map(entries) if !entries.is_empty() => {
            let mut sorted: Vec<&(String, Node)> = entries.iter().collect();
            sorted.sort_by(|a, b| key_order(&a.0, &b.0));
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if ctx == Ctx::MapValue || (ctx == Ctx::SeqItem && i > 0) || (ctx == Ctx::Top && i > 0) {
                    if ctx == Ctx::MapValue && i == 0 {
                        out.push('\n');
                    }
                    indent(out, ind);
                }
                out.push_str(&scalar(k, true, 0));
                out.push(':');
                match v {
                    Node::Map(m) if !m.is_empty() => emit(out, v, ind + 2, Ctx::MapValue),
                    Node::Seq(s) if !s.is_empty() => {
                        out.push('\n');
                        emit_seq(out, s, ind);
                    }
                    _ => {
                        out.push(' ');
                        emit_scalar(out, v, ind + 2);
                        out.push('\n');
                    }
                }
            }
        }
        Node::Seq(items) if !items.is_empty() => {
            if ctx == Ctx::MapValue {
                out.push('\n');
            }
            emit_seq_items(out, items, ind, ctx == Ctx::SeqItem);
        }
        _ => {
            if ctx == Ctx::MapValue {
                out.push(' ');
            }
            emit_scalar(out, n, ind);
            out.push('\n');
        }
    }
}

fn emit_seq(out: &mut String, items: &[Node], ind: usize) {
    emit_seq_items(out, items, ind, false);
}

fn emit_seq_items(out: &mut String, items: &[Node], ind: usize, first_inline: bool) {
    for (i, item) in items.iter().enumerate() {
        if !(first_inline && i == 0) {
            indent(out, ind);
        }
        out.push_str("- ");
        match item {
            Node::Map(m) if !m.is_empty() => emit(out, item, ind + 2, Ctx::SeqItem),
            Node::Seq(s) if !s.is_empty() => emit_seq_items(out, s, ind + 2, true),
            _ => {
                emit_scalar(out, item, ind + 2);
                out.push('\n');
            }
        }
    }
}

fn emit_scalar(out: &mut String, n: &Node, ind: usize) {
    match n {
        Node::Null => out.push_str("null"),
        Node::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Node::Int(i) => out.push_str(&i.to_string()),
        Node::Uint(u) => out.push_str(&u.to_string()),
        Node::Float(f) => out.push_str(&match format_float(*f, 'g', None, 64).as_str() {
            "+Inf" => ".inf".to_string(),
            "-Inf" => "-.inf".to_string(),
            "NaN" => ".nan".to_string(),
            s => s.to_string(),
        }),
        Node::Str(s) => out.push_str(&scalar(s, false, ind)),
        Node::Map(_) => out.push_str("{}"),
        Node::Seq(_) => out.push_str("[]"),
    }
}

struct Analysis {
    plain: bool,
    single: bool,
    block: bool,
}

fn printable(c: char) -> bool {
    let u = c as u32;
    u == 0x0A
        || (0x20..=0x7E).contains(&u)
        || u == 0x85
        || (0xA0..=0xD7FF).contains(&u)
        || ((0xE000..=0xFFFD).contains(&u) && u != 0xFEFF)
        || u >= 0x10000
}

/// libyaml's `yaml_emitter_analyze_scalar` for block context.
fn analyze(s: &str) -> Analysis {
    let chars: Vec<char> = s.chars().collect();
    let blankz = |i: usize| i >= chars.len() || matches!(chars[i], ' ' | '\t' | '\n' | '\r' | '\u{85}');
    let mut block_ind = s.starts_with("---") || s.starts_with("...");
    let mut special = false;
    let (mut line_breaks, mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false, false);
    let (mut break_space, mut space_break, mut prev_space, mut prev_break) = (false, false, false, false);
    let mut preceded_ws = true;
    for (i, &c) in chars.iter().enumerate() {
        let followed_ws = blankz(i + 1);
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"' | '%' | '@' | '`' => {
                    block_ind = true
                }
                '?' | ':' | '-' if followed_ws => block_ind = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_ws => block_ind = true,
                '#' if preceded_ws => block_ind = true,
                _ => {}
            }
        }
        if !printable(c) {
            special = true;
        }
        let is_break = matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}');
        if is_break {
            line_breaks = true;
        }
        let last = i + 1 == chars.len();
        if c == ' ' {
            if i == 0 {
                leading_space = true;
            }
            if last {
                trailing_space = true;
            }
            if prev_break {
                break_space = true;
            }
            prev_space = true;
            prev_break = false;
        } else if is_break {
            if i == 0 {
                leading_break = true;
            }
            if last {
                trailing_break = true;
            }
            if prev_space {
                space_break = true;
            }
            prev_break = true;
            prev_space = false;
        } else {
            prev_space = false;
            prev_break = false;
        }
        preceded_ws = blankz(i);
    }
    let mut a = Analysis { plain: true, single: true, block: true };
    if leading_space || leading_break || trailing_space || trailing_break {
        a.plain = false;
    }
    if trailing_space {
        a.block = false;
    }
    if break_space {
        a.plain = false;
        a.single = false;
    }
    if space_break || special {
        a = Analysis { plain: false, single: false, block: false };
    }
    if line_breaks || block_ind {
        a.plain = false;
    }
    a
}

/// go-yaml v2 quotes a string that would read back as something else.
fn resolves_to_other(s: &str) -> bool {
    if !matches!(resolve_plain(s), Node::Str(_)) {
        return true;
    }
    looks_like_timestamp(s) || is_base60_float(s)
}

fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 8 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[5].is_ascii_digit()
}

fn is_base60_float(s: &str) -> bool {
    // ^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$
    let t = s.trim_start_matches(['-', '+']);
    let mut parts = t.split(':');
    let Some(head) = parts.next() else { return false };
    if head.is_empty() || !head.as_bytes()[0].is_ascii_digit() || !head.bytes().all(|c| c.is_ascii_digit() || c == b'_')
    {
        return false;
    }
    let rest: Vec<&str> = parts.collect();
    if rest.is_empty() {
        return false;
    }
    for (i, p) in rest.iter().enumerate() {
        let (num, frac) = if i + 1 == rest.len() { p.split_once('.').unwrap_or((p, "")) } else { (*p, "") };
        if num.is_empty() || num.len() > 2 || !num.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
        if num.len() == 2 && num.as_bytes()[0] > b'5' {
            return false;
        }
        if !frac.bytes().all(|c| c.is_ascii_digit() || c == b'_') {
            return false;
        }
    }
    true
}

/// A string scalar in the style go-yaml v2 picks; `ind` is the indentation of block content.
fn scalar(s: &str, key: bool, ind: usize) -> String {
    let a = analyze(s);
    let multiline = s.contains('\n');
    // A leading space or break would need an indentation indicator; quote those instead.
    if multiline && !key && a.block && !s.starts_with([' ', '\n']) {
        return literal(s, ind);
    }
    if !multiline && !s.is_empty() && !resolves_to_other(s) {
        if a.plain {
            return s.to_string();
        }
        if a.single {
            return format!("'{}'", s.replace('\'', "''"));
        }
    }
    double_quoted(s)
}

fn literal(s: &str, ind: usize) -> String {
    let mut out = String::from("|");
    match s.len() - s.trim_end_matches('\n').len() {
        0 => out.push('-'),
        1 => {}
        _ => out.push('+'),
    }
    // The caller ends the scalar with a newline: it stands for the last one of the string.
    let body = s.strip_suffix('\n').unwrap_or(s);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            indent(&mut out, ind.max(2));
            out.push_str(line);
        }
    }
    out
}

fn double_quoted(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\0' => out.push_str("\\0"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{b}' => out.push_str("\\v"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            '\u{85}' => out.push_str("\\N"),
            '\u{a0}' => out.push_str("\\_"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if !printable(c) => {
                let u = c as u32;
                if u <= 0xFF {
                    out.push_str(&format!("\\x{u:02X}"));
                } else if u <= 0xFFFF {
                    out.push_str(&format!("\\u{u:04X}"));
                } else {
                    out.push_str(&format!("\\U{u:08X}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// go-yaml v2's map key order: letters before other characters, digit runs by number.
fn key_order(a: &str, b: &str) -> Ordering {
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return if bl { Ordering::Less } else { Ordering::Greater };
        }
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an.saturating_mul(10).saturating_add(ar[ai] as i64 - '0' as i64);
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn.saturating_mul(10).saturating_add(br[bi] as i64 - '0' as i64);
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

#[cfg(test)]
mod tests {
    use super::super::yaml_in::parse_value;
    use super::*;

    fn round_trip(yaml: &str) {
        let v = parse_value(yaml).unwrap();
        let out = to_yaml(&v).unwrap();
        let back = parse_value(&out).unwrap();
        assert_eq!(to_json(&v, false, false).unwrap(), to_json(&back, false, false).unwrap(), "{out}");
    }

    #[test]
    fn to_yaml_round_trips() {
        round_trip(
            "a: 1\nb: [x, 'true', '1.0', '', null, \"on\", '2024-01-01', '1:20']\nc: {d: {e: [[1, 2], {f: g}]}}\n",
        );
        round_trip(
            "s: \"line1\\nline2\\n\"\nt: \" lead\"\nu: 'a: b'\nv: '#x'\nw: '- x'\nx: \"tab\\tin\"\ny: '{{ include \"x\" . }}'\n",
        );
        round_trip("k: \"trail \\nx\"\nl: \"\\n\\nabc\\n\\n\"\nm: \"a\\n b\"\nempty: {}\nel: []\nbig: 1e+21\nf: 0.5\n");
        round_trip("'1': one\n'true': t\n'a b': c\n");
    }

    #[test]
    fn to_yaml_style() {
        let v = parse_value("b: [1, x]\na: {c: \"1\", d: \"{{ x }}\"}\n").unwrap();
        assert_eq!(to_yaml(&v).unwrap(), "a:\n  c: \"1\"\n  d: '{{ x }}'\nb:\n- 1\n- x");
        let m = parse_value("x: \"a\\nb\"\n").unwrap();
        assert_eq!(to_yaml(&m).unwrap(), "x: |-\n  a\n  b");
        assert_eq!(to_yaml(&Value::Float(8080.0)).unwrap(), "8080");
        assert_eq!(key_order("a10", "a9"), Ordering::Greater);
    }

    #[test]
    fn to_json_escapes_and_sorts() {
        let v = parse_value("b: '<x>'\na: 1.5\n").unwrap();
        assert_eq!(to_json(&v, false, true).unwrap(), r#"{"a":1.5,"b":"\u003cx\u003e"}"#);
        assert_eq!(to_json(&v, false, false).unwrap(), r#"{"a":1.5,"b":"<x>"}"#);
        assert_eq!(to_json(&v, true, false).unwrap(), "{\n  \"a\": 1.5,\n  \"b\": \"<x>\"\n}");
    }
}
