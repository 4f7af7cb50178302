//! String functions of sprig and Go's templates (byte-based where Go's are).

use std::collections::BTreeMap;
use std::rc::Rc;

use regex::Regex;

use super::{Env, Imp, P, Row, int, s, strval};
use crate::helm::render::gofmt;
use crate::helm::render::value::{Key, Obj, Value};

fn st(x: String) -> Result<Value, String> {
    Ok(Value::string(x))
}

/// Go's `s[a:b]` on bytes (invalid UTF-8 at the cut becomes U+FFFD).
fn bytes_slice(s: &str, a: usize, b: usize) -> String {
    String::from_utf8_lossy(&s.as_bytes()[a.min(s.len())..b.min(s.len()).max(a.min(s.len()))]).into_owned()
}

fn trunc(c: i64, s: &str) -> String {
    let n = s.len() as i64;
    if c < 0 && n + c > 0 {
        return bytes_slice(s, (n + c) as usize, s.len());
    }
    if c >= 0 && n > c {
        return bytes_slice(s, 0, c as usize);
    }
    s.to_string()
}

fn substr(start: i64, end: i64, s: &str) -> Result<String, String> {
    let n = s.len() as i64;
    let bad = || Err(format!("runtime error: slice bounds out of range [{start}:{end}]"));
    if start < 0 {
        if end < 0 || end > n {
            return bad();
        }
        return Ok(bytes_slice(s, 0, end as usize));
    }
    if end < 0 || end > n {
        if start > n {
            return bad();
        }
        return Ok(bytes_slice(s, start as usize, s.len()));
    }
    if start > end {
        return bad();
    }
    Ok(bytes_slice(s, start as usize, end as usize))
}

/// Go's `strings.Split` (an empty separator splits into characters).
pub fn go_split(s: &str, sep: &str) -> Vec<String> {
    if sep.is_empty() {
        return s.chars().map(|c| c.to_string()).collect();
    }
    s.split(sep).map(str::to_string).collect()
}

fn go_splitn(s: &str, sep: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if n < 0 {
        return go_split(s, sep);
    }
    if sep.is_empty() {
        let chars: Vec<char> = s.chars().collect();
        let n = n as usize;
        let mut out: Vec<String> = chars.iter().take(n.saturating_sub(1)).map(|c| c.to_string()).collect();
        if chars.len() >= n {
            out.push(chars[n - 1..].iter().collect());
        }
        return out;
    }
    s.splitn(n as usize, sep).map(str::to_string).collect()
}

fn indexed_map(parts: Vec<String>) -> Value {
    let m: BTreeMap<Key, Rc<str>> =
        parts.into_iter().enumerate().map(|(i, p)| (Key::from(format!("_{i}")), Rc::from(p))).collect();
    Value::Obj(Rc::new(Obj::StrMap(m)))
}

fn is_separator(r: char) -> bool {
    if r.is_ascii() {
        return !(r.is_ascii_alphanumeric() || r == '_');
    }
    if r.is_alphanumeric() {
        return false;
    }
    r.is_whitespace()
}

/// Go's `strings.Title`.
fn title(s: &str) -> String {
    let mut prev = ' ';
    s.chars()
        .map(|c| {
            let out = if is_separator(prev) { c.to_uppercase().collect::<String>() } else { c.to_string() };
            prev = c;
            out
        })
        .collect()
}

fn untitle(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

fn words(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' || c == '-' || c == ' ' || c == '.' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let boundary = c.is_uppercase()
            && !cur.is_empty()
            && (cur.chars().last().is_some_and(|p| p.is_lowercase() || p.is_ascii_digit())
                || chars.get(i + 1).is_some_and(|n| n.is_lowercase()));
        if boundary {
            out.push(std::mem::take(&mut cur));
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn swapcase(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_uppercase() {
                c.to_lowercase().collect::<Vec<_>>()
            } else if c.is_lowercase() {
                c.to_uppercase().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn wrap(width: i64, s: &str, sep: &str) -> String {
    let width = width.max(1) as usize;
    let mut out = String::new();
    for (li, line) in s.split('\n').enumerate() {
        if li > 0 {
            out.push('\n');
        }
        let mut len = 0;
        for (wi, word) in line.split(' ').enumerate() {
            if wi > 0 {
                if len + 1 + word.len() > width {
                    out.push_str(sep);
                    len = 0;
                } else {
                    out.push(' ');
                    len += 1;
                }
            }
            out.push_str(word);
            len += word.len();
        }
    }
    out
}

fn rand_string(env: &mut Env, n: i64, alphabet: &[u8]) -> String {
    (0..n.max(0)).map(|_| alphabet[(env.next_u64() % alphabet.len() as u64) as usize] as char).collect()
}

const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const DIGITS: &[u8] = b"0123456789";
const ASCII: &[u8] =
    b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";

fn re(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("error parsing regexp: {e}"))
}

fn strings_value(v: Vec<String>) -> Value {
    Value::Strings(Rc::new(v.into_iter().map(Value::string).collect()))
}

fn regex_split(r: &Regex, s: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if n > 0 { r.splitn(s, n as usize).map(str::to_string).collect() } else { r.split(s).map(str::to_string).collect() }
}

fn find_all(r: &Regex, s: &str, n: i64) -> Vec<String> {
    let it = r.find_iter(s).map(|m| m.as_str().to_string());
    if n < 0 { it.collect() } else { it.take(n as usize).collect() }
}

fn quote_all(a: &[Value], single: bool) -> String {
    a.iter()
        .filter(|v| !v.is_nil())
        .map(|v| if single { format!("'{}'", strval(v)) } else { gofmt::quote(&strval(v)) })
        .collect::<Vec<_>>()
        .join(" ")
}

fn js_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn html_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '"' => out.push_str("&#34;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn eval_args(a: &[Value]) -> String {
    match a {
        [Value::Str(s)] => s.to_string(),
        _ => gofmt::sprint(a),
    }
}

pub const FUNCS: &[Row] = &[
    ("print", &[], Some(P::Any), Imp::Pure(|_, a| st(gofmt::sprint(a)))),
    ("println", &[], Some(P::Any), Imp::Pure(|_, a| st(gofmt::sprintln(a)))),
    ("printf", &[P::Str], Some(P::Any), Imp::Pure(|_, a| st(gofmt::sprintf(s(&a[0]), &a[1..])))),
    ("html", &[], Some(P::Any), Imp::Pure(|_, a| st(html_escape(&eval_args(a))))),
    ("js", &[], Some(P::Any), Imp::Pure(|_, a| st(js_escape(&eval_args(a))))),
    ("urlquery", &[], Some(P::Any), Imp::Pure(|_, a| st(query_escape(&eval_args(a))))),
    ("trunc", &[P::Int, P::Str], None, Imp::Pure(|_, a| st(trunc(int(&a[0]), s(&a[1]))))),
    ("trim", &[P::Str], None, Imp::Pure(|_, a| st(s(&a[0]).trim().to_string()))),
    ("upper", &[P::Str], None, Imp::Pure(|_, a| st(s(&a[0]).to_uppercase()))),
    ("lower", &[P::Str], None, Imp::Pure(|_, a| st(s(&a[0]).to_lowercase()))),
    ("title", &[P::Str], None, Imp::Pure(|_, a| st(title(s(&a[0]))))),
    ("untitle", &[P::Str], None, Imp::Pure(|_, a| st(untitle(s(&a[0]))))),
    (
        "substr",
        &[P::Int, P::Int, P::Str],
        None,
        Imp::Pure(|_, a| substr(int(&a[0]), int(&a[1]), s(&a[2])).map(Value::string)),
    ),
    ("repeat", &[P::Int, P::Str], None, Imp::Pure(|_, a| st(s(&a[1]).repeat(int(&a[0]).max(0) as usize)))),
    (
        "trimAll",
        &[P::Str, P::Str],
        None,
        Imp::Pure(|_, a| st(s(&a[1]).trim_matches(|c| s(&a[0]).contains(c)).to_string())),
    ),
    (
        "trimall",
        &[P::Str, P::Str],
        None,
        Imp::Pure(|_, a| st(s(&a[1]).trim_matches(|c| s(&a[0]).contains(c)).to_string())),
    ),
    (
        "trimSuffix",
        &[P::Str, P::Str],
        None,
        Imp::Pure(|_, a| st(s(&a[1]).strip_suffix(s(&a[0])).unwrap_or(s(&a[1])).to_string())),
    ),
    (
        "trimPrefix",
        &[P::Str, P::Str],
        None,
        Imp::Pure(|_, a| st(s(&a[1]).strip_prefix(s(&a[0])).unwrap_or(s(&a[1])).to_string())),
    ),
    ("nospace", &[P::Str], None, Imp::Pure(|_, a| st(s(&a[0]).chars().filter(|c| !c.is_whitespace()).collect()))),
    (
        "initials",
        &[P::Str],
        None,
        Imp::Pure(|_, a| st(s(&a[0]).split_whitespace().filter_map(|w| w.chars().next()).collect())),
    ),
    ("randAlphaNum", &[P::Int], None, Imp::Pure(|e, a| st(rand_string(e, int(&a[0]), ALNUM)))),
    ("randAlpha", &[P::Int], None, Imp::Pure(|e, a| st(rand_string(e, int(&a[0]), ALPHA)))),
    ("randAscii", &[P::Int], None, Imp::Pure(|e, a| st(rand_string(e, int(&a[0]), ASCII)))),
    ("randNumeric", &[P::Int], None, Imp::Pure(|e, a| st(rand_string(e, int(&a[0]), DIGITS)))),
    ("swapcase", &[P::Str], None, Imp::Pure(|_, a| st(swapcase(s(&a[0]))))),
    (
        "shuffle",
        &[P::Str],
        None,
        Imp::Pure(|e, a| {
            let mut c: Vec<char> = s(&a[0]).chars().collect();
            for i in (1..c.len()).rev() {
                let j = (e.next_u64() % (i as u64 + 1)) as usize;
                c.swap(i, j);
            }
            st(c.into_iter().collect())
        }),
    ),
    (
        "snakecase",
        &[P::Str],
        None,
        Imp::Pure(|_, a| st(words(s(&a[0])).iter().map(|w| w.to_lowercase()).collect::<Vec<_>>().join("_"))),
    ),
    (
        "kebabcase",
        &[P::Str],
        None,
        Imp::Pure(|_, a| st(words(s(&a[0])).iter().map(|w| w.to_lowercase()).collect::<Vec<_>>().join("-"))),
    ),
    (
        "camelcase",
        &[P::Str],
        None,
        Imp::Pure(|_, a| st(words(s(&a[0])).iter().map(|w| title(&w.to_lowercase())).collect())),
    ),
    ("wrap", &[P::Int, P::Str], None, Imp::Pure(|_, a| st(wrap(int(&a[0]), s(&a[1]), "\n")))),
    ("wrapWith", &[P::Int, P::Str, P::Str], None, Imp::Pure(|_, a| st(wrap(int(&a[0]), s(&a[2]), s(&a[1]))))),
    (
        "abbrev",
        &[P::Int, P::Str],
        None,
        Imp::Pure(|_, a| {
            let (w, t) = (int(&a[0]), s(&a[1]));
            if w < 4 || t.len() as i64 <= w {
                return st(t.to_string());
            }
            st(format!("{}...", bytes_slice(t, 0, (w - 3) as usize)))
        }),
    ),
    ("abbrevboth", &[P::Int, P::Int, P::Str], None, Imp::Pure(|_, a| st(s(&a[2]).to_string()))),
    ("contains", &[P::Str, P::Str], None, Imp::Pure(|_, a| Ok(Value::Bool(s(&a[1]).contains(s(&a[0])))))),
    ("hasPrefix", &[P::Str, P::Str], None, Imp::Pure(|_, a| Ok(Value::Bool(s(&a[1]).starts_with(s(&a[0])))))),
    ("hasSuffix", &[P::Str, P::Str], None, Imp::Pure(|_, a| Ok(Value::Bool(s(&a[1]).ends_with(s(&a[0])))))),
    ("quote", &[], Some(P::Any), Imp::Pure(|_, a| st(quote_all(a, false)))),
    ("squote", &[], Some(P::Any), Imp::Pure(|_, a| st(quote_all(a, true)))),
    (
        "cat",
        &[],
        Some(P::Any),
        Imp::Pure(|_, a| {
            let kept: Vec<Value> = a.iter().filter(|v| !v.is_nil()).cloned().collect();
            st(kept.iter().map(gofmt::to_v).collect::<Vec<_>>().join(" "))
        }),
    ),
    (
        "indent",
        &[P::Int, P::Str],
        None,
        Imp::Pure(|_, a| {
            let pad = " ".repeat(int(&a[0]).max(0) as usize);
            st(format!("{pad}{}", s(&a[1]).replace('\n', &format!("\n{pad}"))))
        }),
    ),
    (
        "nindent",
        &[P::Int, P::Str],
        None,
        Imp::Pure(|_, a| {
            let pad = " ".repeat(int(&a[0]).max(0) as usize);
            st(format!("\n{pad}{}", s(&a[1]).replace('\n', &format!("\n{pad}"))))
        }),
    ),
    (
        "replace",
        &[P::Str, P::Str, P::Str],
        None,
        Imp::Pure(|_, a| {
            let (old, new, src) = (s(&a[0]), s(&a[1]), s(&a[2]));
            if old.is_empty() {
                // Go inserts `new` before every character and at the end.
                let mut out = String::new();
                for c in src.chars() {
                    out.push_str(new);
                    out.push(c);
                }
                out.push_str(new);
                return st(out);
            }
            st(src.replace(old, new))
        }),
    ),
    (
        "plural",
        &[P::Str, P::Str, P::Int],
        None,
        Imp::Pure(|_, a| Ok(if int(&a[2]) == 1 { a[0].clone() } else { a[1].clone() })),
    ),
    ("split", &[P::Str, P::Str], None, Imp::Pure(|_, a| Ok(indexed_map(go_split(s(&a[1]), s(&a[0])))))),
    (
        "splitn",
        &[P::Str, P::Int, P::Str],
        None,
        Imp::Pure(|_, a| Ok(indexed_map(go_splitn(s(&a[2]), s(&a[0]), int(&a[1]))))),
    ),
    ("splitList", &[P::Str, P::Str], None, Imp::Pure(|_, a| Ok(strings_value(go_split(s(&a[1]), s(&a[0])))))),
    (
        "regexMatch",
        &[P::Str, P::Str],
        None,
        Imp::Pure(|_, a| Ok(Value::Bool(re(s(&a[0])).map(|r| r.is_match(s(&a[1]))).unwrap_or(false)))),
    ),
    ("mustRegexMatch", &[P::Str, P::Str], None, Imp::Pure(|_, a| Ok(Value::Bool(re(s(&a[0]))?.is_match(s(&a[1])))))),
    (
        "regexFindAll",
        &[P::Str, P::Str, P::Int],
        None,
        Imp::Pure(|_, a| Ok(strings_value(find_all(&re(s(&a[0]))?, s(&a[1]), int(&a[2]))))),
    ),
    (
        "mustRegexFindAll",
        &[P::Str, P::Str, P::Int],
        None,
        Imp::Pure(|_, a| Ok(strings_value(find_all(&re(s(&a[0]))?, s(&a[1]), int(&a[2]))))),
    ),
    (
        "regexFind",
        &[P::Str, P::Str],
        None,
        Imp::Pure(|_, a| st(re(s(&a[0]))?.find(s(&a[1])).map(|m| m.as_str().to_string()).unwrap_or_default())),
    ),
    (
        "mustRegexFind",
        &[P::Str, P::Str],
        None,
        Imp::Pure(|_, a| st(re(s(&a[0]))?.find(s(&a[1])).map(|m| m.as_str().to_string()).unwrap_or_default())),
    ),
    (
        "regexReplaceAll",
        &[P::Str, P::Str, P::Str],
        None,
        Imp::Pure(|_, a| st(re(s(&a[0]))?.replace_all(s(&a[1]), s(&a[2])).into_owned())),
    ),
    (
        "mustRegexReplaceAll",
        &[P::Str, P::Str, P::Str],
        None,
        Imp::Pure(|_, a| st(re(s(&a[0]))?.replace_all(s(&a[1]), s(&a[2])).into_owned())),
    ),
    (
        "regexReplaceAllLiteral",
        &[P::Str, P::Str, P::Str],
        None,
        Imp::Pure(|_, a| st(re(s(&a[0]))?.replace_all(s(&a[1]), regex::NoExpand(s(&a[2]))).into_owned())),
    ),
    (
        "mustRegexReplaceAllLiteral",
        &[P::Str, P::Str, P::Str],
        None,
        Imp::Pure(|_, a| st(re(s(&a[0]))?.replace_all(s(&a[1]), regex::NoExpand(s(&a[2]))).into_owned())),
    ),
    (
        "regexSplit",
        &[P::Str, P::Str, P::Int],
        None,
        Imp::Pure(|_, a| Ok(strings_value(regex_split(&re(s(&a[0]))?, s(&a[1]), int(&a[2]))))),
    ),
    (
        "mustRegexSplit",
        &[P::Str, P::Str, P::Int],
        None,
        Imp::Pure(|_, a| Ok(strings_value(regex_split(&re(s(&a[0]))?, s(&a[1]), int(&a[2]))))),
    ),
    ("regexQuoteMeta", &[P::Str], None, Imp::Pure(|_, a| st(regex::escape(s(&a[0]))))),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_string_semantics() {
        assert_eq!(trunc(3, "abcdef"), "abc");
        assert_eq!(trunc(-2, "abcdef"), "ef");
        assert_eq!(trunc(63, "short"), "short");
        assert_eq!(title("hello world-foo_bar"), "Hello World-Foo_bar");
        assert_eq!(go_split("a,b,,c", ","), ["a", "b", "", "c"]);
        assert_eq!(go_splitn("a:b:c", ":", 2), ["a", "b:c"]);
        assert_eq!(substr(1, 3, "abcd").unwrap(), "bc");
        assert_eq!(words("HTTPServerName"), ["HTTP", "Server", "Name"]);
        assert_eq!(query_escape("a b&c"), "a+b%26c");
    }
}
