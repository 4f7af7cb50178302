//! Go's `fmt` as templates see it: `print`, `println`, `printf` (verbs `%v %s %d %q %t %x %X
//! %f %e %g %c %o %b %T`, flags, width, precision, and Go's `%!verb(type=value)` reports), the
//! shortest float forms of `strconv`, and `strconv.Quote`.

pub use super::floatfmt::{format_float, json_float};
use super::value::{Obj, Value};

/// `fmt.Sprint`: spaces only between operands when neither is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        write_value(&mut out, a, 'v', &Flags::default(), 0);
        prev_string = is_string;
    }
    out
}

/// `fmt.Sprintln`: spaces between all operands and a final newline.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        write_value(&mut out, a, 'v', &Flags::default(), 0);
    }
    out.push('\n');
    out
}

/// `fmt.Sprint` of one value (`%v`).
pub fn to_v(v: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, v, 'v', &Flags::default(), 0);
    out
}

#[derive(Default, Clone)]
struct Flags {
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let b = format.as_bytes();
    let mut i = 0;
    let mut argn = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i] != b'%' {
            i += 1;
        }
        out.push_str(&format[start..i]);
        if i >= b.len() {
            break;
        }
        i += 1; // '%'
        let mut f = Flags::default();
        while i < b.len() {
            match b[i] {
                b'+' => f.plus = true,
                b'-' => f.minus = true,
                b'#' => f.sharp = true,
                b' ' => f.space = true,
                b'0' => f.zero = true,
                _ => break,
            }
            i += 1;
        }
        // Width.
        if i < b.len() && b[i] == b'*' {
            i += 1;
            match args.get(argn) {
                Some(Value::Int(n)) | Some(Value::Int64(n)) => {
                    if *n < 0 {
                        f.minus = true;
                    }
                    f.width = Some(n.unsigned_abs() as usize);
                }
                _ => out.push_str("%!(BADWIDTH)"),
            }
            argn += 1;
        } else {
            let (n, j) = digits(b, i);
            f.width = n;
            i = j;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            if i < b.len() && b[i] == b'*' {
                i += 1;
                match args.get(argn) {
                    Some(Value::Int(n)) | Some(Value::Int64(n)) if *n >= 0 => f.prec = Some(*n as usize),
                    _ => out.push_str("%!(BADPREC)"),
                }
                argn += 1;
            } else {
                let (n, j) = digits(b, i);
                f.prec = Some(n.unwrap_or(0));
                i = j;
            }
        }
        if i >= b.len() {
            out.push_str("%!(NOVERB)");
            break;
        }
        let verb = format[i..].chars().next().unwrap_or('?');
        i += verb.len_utf8();
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(argn) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        argn += 1;
        if f.minus {
            f.zero = false;
        }
        let mut s = String::new();
        write_value(&mut s, arg, verb, &f, 0);
        pad(&mut out, &s, &f, arg);
    }
    if argn < args.len() {
        out.push_str("%!(EXTRA ");
        for (k, a) in args[argn..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            out.push_str(&a.type_name());
            out.push('=');
            write_value(&mut out, a, 'v', &Flags::default(), 0);
        }
        out.push(')');
    }
    out
}

fn digits(b: &[u8], mut i: usize) -> (Option<usize>, usize) {
    let start = i;
    let mut n = 0usize;
    while i < b.len() && b[i].is_ascii_digit() {
        n = n.saturating_mul(10).saturating_add((b[i] - b'0') as usize);
        i += 1;
    }
    (if i > start { Some(n) } else { None }, i)
}

/// Pads a formatted operand to the width; zero padding goes after a sign for numbers.
fn pad(out: &mut String, s: &str, f: &Flags, arg: &Value) {
    let Some(w) = f.width else {
        out.push_str(s);
        return;
    };
    let n = s.chars().count();
    if n >= w {
        out.push_str(s);
        return;
    }
    let fill = w - n;
    if f.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if f.zero && matches!(arg, Value::Int(_) | Value::Int64(_) | Value::Float(_)) {
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'-') | Some(b'+') | Some(b' ') => s.split_at(1),
            _ => ("", s),
        };
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(rest);
    } else if f.zero && matches!(arg, Value::Str(_)) {
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(s);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(s);
    }
}

fn bad_verb(out: &mut String, v: &Value, verb: char) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    if v.is_nil() {
        out.push_str("<nil>");
    } else {
        out.push_str(&v.type_name());
        out.push('=');
        write_value(out, v, 'v', &Flags::default(), 0);
    }
    out.push(')');
}

fn write_value(out: &mut String, v: &Value, verb: char, f: &Flags, depth: usize) {
    if verb == 'T' {
        out.push_str(&v.type_name());
        return;
    }
    match v {
        Value::Invalid | Value::Nil => match verb {
            'v' => out.push_str("<nil>"),
            _ => bad_verb(out, v, verb),
        },
        Value::Bool(b) => match verb {
            'v' | 't' => out.push_str(if *b { "true" } else { "false" }),
            _ => bad_verb(out, v, verb),
        },
        Value::Int(n) | Value::Int64(n) => write_int(out, *n, v, verb, f),
        Value::Float(x) => write_float(out, *x, v, verb, f),
        Value::Str(s) => write_str(out, s.as_bytes(), v, verb, f),
        Value::List(l) | Value::Strings(l) => {
            if depth > 64 {
                out.push_str("[...]");
                return;
            }
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_value(out, e, verb, f, depth + 1);
            }
            out.push(']');
        }
        Value::Map(m) => {
            if depth > 64 {
                out.push_str("map[...]");
                return;
            }
            out.push_str("map[");
            for (i, (k, e)) in m.borrow().iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_str(out, k.as_bytes(), &Value::Str(k.clone()), verb, f);
                out.push(':');
                write_value(out, e, verb, f, depth + 1);
            }
            out.push(']');
        }
        Value::Obj(o) => write_obj(out, o, v, verb, f, depth),
    }
}

fn write_obj(out: &mut String, o: &Obj, v: &Value, verb: char, f: &Flags, depth: usize) {
    match o {
        Obj::Struct(s) => {
            if let Some(text) = &s.stringer
                && matches!(verb, 'v' | 's' | 'q' | 'x' | 'X')
            {
                write_str(out, text.as_bytes(), &Value::Str(text.clone()), verb, f);
                return;
            }
            if s.pointer && depth == 0 {
                out.push('&');
            }
            out.push('{');
            for (i, (name, e)) in s.fields.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                if f.plus && verb == 'v' {
                    out.push_str(name);
                    out.push(':');
                }
                write_value(out, e, verb, f, depth + 1);
            }
            out.push('}');
        }
        Obj::StrMap(m) => {
            out.push_str("map[");
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_str(out, k.as_bytes(), &Value::Str(k.clone()), verb, f);
                out.push(':');
                write_str(out, e.as_bytes(), &Value::Str(e.clone()), verb, f);
            }
            out.push(']');
        }
        Obj::Files(m) => {
            out.push_str("map[");
            for (i, (k, e)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_bytes(out, e, verb, f);
            }
            out.push(']');
        }
        Obj::VersionSet(l) => {
            out.push('[');
            for (i, e) in l.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_str(out, e.as_bytes(), &Value::Str(e.clone()), verb, f);
            }
            out.push(']');
        }
        Obj::Bytes(b) => write_bytes(out, b, verb, f),
        Obj::Semver(s) => match verb {
            'v' | 's' | 'q' | 'x' | 'X' => {
                let t = s.to_string();
                write_str(out, t.as_bytes(), &Value::string(t.clone()), verb, f)
            }
            _ => bad_verb(out, v, verb),
        },
        Obj::Time(t) => match verb {
            'v' | 's' => out.push_str(&super::funcs::time_string(*t)),
            _ => bad_verb(out, v, verb),
        },
    }
}

fn write_bytes(out: &mut String, b: &[u8], verb: char, f: &Flags) {
    match verb {
        's' | 'q' | 'x' | 'X' => write_str(out, b, &Value::Nil, verb, f),
        _ => {
            out.push('[');
            for (i, c) in b.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_int(out, *c as i64, &Value::Int(*c as i64), verb, f);
            }
            out.push(']');
        }
    }
}

fn write_str(out: &mut String, b: &[u8], v: &Value, verb: char, f: &Flags) {
    let s = String::from_utf8_lossy(b);
    match verb {
        'v' | 's' => match f.prec {
            Some(p) => out.extend(s.chars().take(p)),
            None => out.push_str(&s),
        },
        'q' => {
            let s: String = match f.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.into_owned(),
            };
            if f.sharp && !s.contains('`') && !s.chars().any(|c| c.is_control() && c != '\t') {
                out.push('`');
                out.push_str(&s);
                out.push('`');
            } else {
                out.push_str(&quote_with(&s, f.plus));
            }
        }
        'x' | 'X' => {
            let n = f.prec.unwrap_or(b.len()).min(b.len());
            for (i, c) in b[..n].iter().enumerate() {
                if f.space && i > 0 {
                    out.push(' ');
                }
                if f.sharp && (i == 0 || f.space) {
                    out.push_str(if verb == 'x' { "0x" } else { "0X" });
                }
                if verb == 'x' {
                    out.push_str(&format!("{c:02x}"));
                } else {
                    out.push_str(&format!("{c:02X}"));
                }
            }
        }
        _ => bad_verb(out, v, verb),
    }
}

fn write_int(out: &mut String, n: i64, v: &Value, verb: char, f: &Flags) {
    let neg = n < 0;
    let abs = n.unsigned_abs();
    let body = match verb {
        'v' | 'd' => abs.to_string(),
        'b' => format!("{abs:b}"),
        'o' | 'O' => format!("{abs:o}"),
        'x' => format!("{abs:x}"),
        'X' => format!("{abs:X}"),
        'c' => {
            out.push(char::from_u32(n as u32).unwrap_or('\u{FFFD}'));
            return;
        }
        'q' => {
            let c = char::from_u32(n as u32).unwrap_or('\u{FFFD}');
            out.push('\'');
            let q = quote_with(&c.to_string(), f.plus);
            let inner = &q[1..q.len() - 1];
            out.push_str(&inner.replace("\\\"", "\"").replace('\'', "\\'"));
            out.push('\'');
            return;
        }
        'U' => {
            out.push_str(&format!("U+{abs:04X}"));
            return;
        }
        _ => {
            bad_verb(out, v, verb);
            return;
        }
    };
    let mut body = body;
    if let Some(p) = f.prec {
        if p == 0 && n == 0 {
            body.clear();
        }
        while body.len() < p {
            body.insert(0, '0');
        }
    }
    if neg {
        out.push('-');
    } else if f.plus {
        out.push('+');
    } else if f.space {
        out.push(' ');
    }
    if f.sharp {
        match verb {
            'x' => out.push_str("0x"),
            'X' => out.push_str("0X"),
            'o' if !body.starts_with('0') => out.push('0'),
            'b' => out.push_str("0b"),
            _ => {}
        }
    }
    if verb == 'O' {
        out.push_str("0o");
    }
    out.push_str(&body);
}

fn write_float(out: &mut String, x: f64, v: &Value, verb: char, f: &Flags) {
    let s = match verb {
        'v' | 'g' | 'G' => match f.prec {
            None => format_float(x, 'g', None, 64),
            Some(p) => format_float(x, 'g', Some(p.max(1)), 64),
        },
        'e' | 'E' => format_float(x, 'e', Some(f.prec.unwrap_or(6)), 64),
        'f' | 'F' => format_float(x, 'f', Some(f.prec.unwrap_or(6)), 64),
        _ => {
            bad_verb(out, v, verb);
            return;
        }
    };
    let s = if matches!(verb, 'G' | 'E') { s.to_uppercase() } else { s };
    if f.plus && !s.starts_with('-') && !s.starts_with('+') {
        out.push('+');
    } else if f.space && !s.starts_with('-') && !s.starts_with('+') {
        out.push(' ');
    }
    // `%v` of +Inf prints "+Inf"; `%f` prints "+Inf" too.
    out.push_str(&s);
}

/// `strconv.Quote`.
pub fn quote(s: &str) -> String {
    quote_with(s, false)
}

fn quote_with(s: &str, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_print(c) && (!ascii_only || c.is_ascii()) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint`: graphic characters and the ASCII space.
pub fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let u = c as u32;
    !matches!(u, 0xAD | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
        | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF | 0xD800..=0xDFFF | 0xFFFE | 0xFFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::str(x)
    }

    #[test]
    fn printf_verbs() {
        assert_eq!(sprintf("%s-%d", &[s("a"), Value::Int(3)]), "a-3");
        assert_eq!(sprintf("%v", &[Value::Float(8080.0)]), "8080");
        assert_eq!(sprintf("%d", &[Value::Float(8080.0)]), "%!d(float64=8080)");
        assert_eq!(sprintf("%s", &[Value::Int(1)]), "%!s(int=1)");
        assert_eq!(sprintf("%q", &[s("a\"b")]), "\"a\\\"b\"");
        assert_eq!(sprintf("%t", &[Value::Bool(true)]), "true");
        assert_eq!(sprintf("%x", &[s("hi")]), "6869");
        assert_eq!(sprintf("%x", &[Value::Int(255)]), "ff");
        assert_eq!(sprintf("%05d|%-4s|%4s", &[Value::Int(42), s("ab"), s("cd")]), "00042|ab  |  cd");
        assert_eq!(sprintf("%.2f", &[Value::Float(2.0)]), "2.00");
        assert_eq!(sprintf("%s %s", &[s("a")]), "a %!s(MISSING)");
        assert_eq!(sprintf("%s", &[s("a"), Value::Int(2)]), "a%!(EXTRA int=2)");
        assert_eq!(sprintf("%v", &[Value::Nil]), "<nil>");
        assert_eq!(sprintf("%s", &[Value::Nil]), "%!s(<nil>)");
        assert_eq!(sprintf("100%%", &[]), "100%");
        let l = Value::list(vec![s("a"), Value::Int(1)]);
        assert_eq!(sprintf("%v", std::slice::from_ref(&l)), "[a 1]");
        assert_eq!(sprintf("%s", &[l]), "[a %!s(int=1)]");
    }

    #[test]
    fn sprint_spaces_between_non_strings() {
        assert_eq!(sprint(&[Value::Int(1), Value::Int(2)]), "1 2");
        assert_eq!(sprint(&[s("a"), Value::Int(1), s("b")]), "a1b");
        assert_eq!(sprintln(&[s("a"), s("b")]), "a b\n");
    }
}
