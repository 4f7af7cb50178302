//! The syntax tree of Go templates, its text form (Go's `String()`, used in error contexts),
//! and the literals (strings, numbers, characters) as Go's parser reads them.

use std::fmt;
use std::rc::Rc;

use super::super::funcs::Func;

/// A parsed template: its name, the file it came from and that file's text.
#[derive(Debug)]
pub struct Tree {
    pub name: Rc<str>,
    pub file: Rc<str>,
    pub text: Rc<str>,
    pub root: Vec<Node>,
}

/// A node of a template body.
#[derive(Debug)]
pub enum Node {
    /// Literal text (byte range of the file).
    Text(u32, u32),
    Action(Pipe),
    If(Box<Branch>),
    With(Box<Branch>),
    Range(Box<Branch>),
    Template(Box<Call>),
    Break,
    Continue,
}

/// `if`, `with` and `range`.
#[derive(Debug)]
pub struct Branch {
    pub pos: usize,
    pub pipe: Pipe,
    pub list: Vec<Node>,
    pub else_list: Option<Vec<Node>>,
}

/// `{{template "name" pipeline}}`.
#[derive(Debug)]
pub struct Call {
    pub pos: usize,
    pub name: Rc<str>,
    pub pipe: Option<Pipe>,
}

/// A pipeline with its declarations.
#[derive(Debug)]
pub struct Pipe {
    pub pos: usize,
    pub is_assign: bool,
    pub decl: Vec<Rc<str>>,
    pub cmds: Vec<Cmd>,
}

/// One stage of a pipeline.
#[derive(Debug)]
pub struct Cmd {
    pub pos: usize,
    pub args: Vec<Arg>,
}

/// An operand.
#[derive(Debug)]
pub enum Arg {
    Dot(usize),
    Nil(usize),
    Bool(usize, bool),
    Number(usize, Rc<Number>),
    /// Unquoted value and the source text.
    Str(usize, Rc<str>, Rc<str>),
    /// `.A.B`.
    Field(usize, Rc<[Rc<str>]>),
    /// `$x.A.B`: variable name and fields.
    Var(usize, Rc<str>, Rc<[Rc<str>]>),
    Func(usize, &'static Func, Rc<str>),
    Pipe(usize, Box<Pipe>),
    /// `(pipeline).A.B`.
    Chain(usize, Box<Arg>, Rc<[Rc<str>]>),
}

/// A numeric constant with the interpretations Go allows.
#[derive(Debug)]
pub struct Number {
    pub text: String,
    pub is_int: bool,
    pub is_uint: bool,
    pub is_float: bool,
    pub int: i64,
    pub uint: u64,
    pub float: f64,
}

impl Arg {
    /// The node position.
    pub fn pos(&self) -> usize {
        match self {
            Arg::Dot(p) | Arg::Nil(p) | Arg::Bool(p, _) | Arg::Number(p, _) | Arg::Str(p, _, _) => *p,
            Arg::Field(p, _) | Arg::Var(p, _, _) | Arg::Func(p, _, _) | Arg::Pipe(p, _) | Arg::Chain(p, _, _) => *p,
        }
    }
}

impl fmt::Display for Arg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Arg::Dot(_) => f.write_str("."),
            Arg::Nil(_) => f.write_str("nil"),
            Arg::Bool(_, b) => write!(f, "{b}"),
            Arg::Number(_, n) => f.write_str(&n.text),
            Arg::Str(_, _, raw) => f.write_str(raw),
            Arg::Field(_, idents) => idents.iter().try_for_each(|i| write!(f, ".{i}")),
            Arg::Var(_, name, idents) => {
                f.write_str(name)?;
                idents.iter().try_for_each(|i| write!(f, ".{i}"))
            }
            Arg::Func(_, _, name) => f.write_str(name),
            Arg::Pipe(_, p) => write!(f, "({p})"),
            Arg::Chain(_, node, fields) => {
                match &**node {
                    Arg::Pipe(_, p) => write!(f, "({p})")?,
                    n => write!(f, "{n}")?,
                }
                fields.iter().try_for_each(|i| write!(f, ".{i}"))
            }
        }
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.args.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{a}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Pipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.decl.is_empty() {
            f.write_str(&self.decl.join(", "))?;
            f.write_str(if self.is_assign { " = " } else { " := " })?;
        }
        for (i, c) in self.cmds.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

/// Go's `parse.IsEmptyTree`: only blank text.
pub fn is_empty(tree: &Tree) -> bool {
    tree.root.iter().all(|n| match n {
        Node::Text(a, b) => tree.text[*a as usize..*b as usize].trim().is_empty(),
        _ => false,
    })
}

/// 1-based line of a byte offset.
pub fn line_of(text: &str, pos: usize) -> usize {
    1 + memchr::memchr_iter(b'\n', &text.as_bytes()[..pos.min(text.len())]).count()
}

/// Go's `strconv.Unquote` for `"..."` and raw strings.
pub fn unquote(s: &str) -> Result<String, String> {
    if let Some(raw) = s.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        return Ok(raw.replace('\r', ""));
    }
    let inner = s
        .strip_prefix('"')
        .and_then(|r| r.strip_suffix('"'))
        .or_else(|| s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')))
        .ok_or_else(|| format!("invalid syntax: {s}"))?;
    let mut out = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next().ok_or("invalid syntax")?;
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' | '"' | '\'' => out.push(e),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = (0..n).filter_map(|_| chars.next()).collect();
                let v = u32::from_str_radix(&hex, 16).map_err(|_| "invalid syntax".to_string())?;
                if e == 'x' {
                    // A byte; templates only use ASCII escapes in practice.
                    out.push(char::from_u32(v).ok_or("invalid syntax")?);
                } else {
                    out.push(char::from_u32(v).ok_or("invalid syntax")?);
                }
            }
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                for _ in 0..2 {
                    let d = chars.next().and_then(|c| c.to_digit(8)).ok_or("invalid syntax")?;
                    v = v * 8 + d;
                }
                out.push(char::from_u32(v).ok_or("invalid syntax")?);
            }
            _ => return Err("invalid syntax".into()),
        }
    }
    Ok(out)
}

pub fn number(text: &str, is_char: bool) -> Result<Number, String> {
    let mut n =
        Number { text: text.to_string(), is_int: false, is_uint: false, is_float: false, int: 0, uint: 0, float: 0.0 };
    if is_char {
        let s = unquote(text)?;
        let c = s.chars().next().ok_or_else(|| format!("malformed character constant: {text}"))? as u32;
        n.is_int = true;
        n.is_uint = true;
        n.is_float = true;
        n.int = c as i64;
        n.uint = c as u64;
        n.float = c as f64;
        return Ok(n);
    }
    if text.ends_with('i') {
        return Err(format!("complex constants are not supported: {text}"));
    }
    let clean = text.replace('_', "");
    if let Some(u) = super::super::yaml_in::go_parse_uint(clean.trim_start_matches('+')) {
        n.is_uint = true;
        n.uint = u;
    }
    if let Some(i) = super::super::yaml_in::go_parse_int(&clean) {
        n.is_int = true;
        n.int = i;
        if i == 0 {
            n.is_uint = true;
            n.uint = 0;
        }
    }
    if n.is_int {
        n.is_float = true;
        n.float = n.int as f64;
    } else if n.is_uint {
        n.is_float = true;
        n.float = n.uint as f64;
    } else {
        let is_hex = clean.trim_start_matches(['+', '-']).starts_with("0x");
        let parsed = if is_hex { None } else { clean.parse::<f64>().ok().filter(|f| f.is_finite()) };
        match parsed {
            Some(f) if !clean.chars().any(|c| c.is_ascii_alphabetic() && !matches!(c, 'e' | 'E')) => {
                n.is_float = true;
                n.float = f;
                if f.fract() == 0.0 && f.abs() < 9.2e18 {
                    n.is_int = true;
                    n.int = f as i64;
                    if f >= 0.0 {
                        n.is_uint = true;
                        n.uint = f as u64;
                    }
                }
            }
            _ => return Err(format!("illegal number syntax: {text:?}")),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        let n = number("1e3", false).unwrap();
        assert!(n.is_float && n.is_int && n.int == 1000);
        let n = number("0x1F", false).unwrap();
        assert!(n.is_int && n.int == 31);
        let n = number("'a'", true).unwrap();
        assert_eq!(n.int, 97);
        assert!(number("1.5", false).unwrap().is_float);
        assert!(!number("1.5", false).unwrap().is_int);
        assert!(number("-", false).is_err());
    }
}
