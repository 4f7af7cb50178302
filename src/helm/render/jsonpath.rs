//! client-go's JSONPath templates as oc-mirror runs them over each rendered document
//! (`AllowMissingKeys`): fields, `[*]`, indexes and slices, `['key']`, unions, `..`, `*` and
//! filters; results printed as client-go prints them (strings bare, objects as JSON, joined by
//! spaces) — oc-mirror then splits that text on spaces.

use super::gofmt;
use super::value::Value;
use super::yaml_out::to_json;

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    List(Vec<Node>),
    Field(String),
    Array([Param; 3]),
    Wildcard,
    Recursive,
    Union(Vec<Vec<Node>>),
    Filter(Vec<Node>, Vec<Node>, String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Copy, Default)]
struct Param {
    value: i64,
    known: bool,
    derived: bool,
}

/// A parsed JSONPath template.
#[derive(Debug)]
pub struct JsonPath(Vec<Node>);

impl JsonPath {
    /// Parses a template such as `{.spec.containers[*].image}`.
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let mut p = Parser { s: text.chars().collect(), pos: 0 };
        Ok(JsonPath(p.text()?))
    }

    /// The printed result for one document.
    pub fn execute(&self, data: &Value) -> Result<String, String> {
        let mut out = String::new();
        for node in &self.0 {
            let results = match node {
                Node::Text(t) => vec![Value::str(t)],
                Node::List(nodes) => eval_list(std::slice::from_ref(data), nodes)?,
                other => eval(std::slice::from_ref(data), other)?,
            };
            for (i, r) in results.iter().enumerate() {
                out.push_str(&text_of(r)?);
                if i + 1 != results.len() {
                    out.push(' ');
                }
            }
        }
        Ok(out)
    }
}

fn text_of(v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::Map(_) | Value::List(_) | Value::Strings(_) => to_json(v, false, true)?,
        Value::Nil | Value::Invalid => "null".into(),
        Value::Str(s) => s.to_string(),
        other => gofmt::to_v(other),
    })
}

struct Parser {
    s: Vec<char>,
    pos: usize,
}

fn is_terminator(c: Option<char>) -> bool {
    matches!(c, None | Some(' ' | '\t' | '\r' | '\n' | '.' | ',' | '[' | ']' | '$' | '@' | '{' | '}'))
}

fn parse_action(text: &str) -> Result<Vec<Node>, String> {
    let mut p = Parser { s: format!("{{{text}}}").chars().collect(), pos: 0 };
    match p.text()?.into_iter().next() {
        Some(Node::List(nodes)) => Ok(nodes),
        _ => Ok(Vec::new()),
    }
}

impl Parser {
    fn rest(&self) -> String {
        self.s[self.pos..].iter().collect()
    }

    fn text(&mut self) -> Result<Vec<Node>, String> {
        let mut root = Vec::new();
        let mut start = self.pos;
        while self.pos < self.s.len() {
            if self.s[self.pos] == '{' {
                if self.pos > start {
                    root.push(Node::Text(self.s[start..self.pos].iter().collect()));
                }
                self.pos += 1;
                let mut list = Vec::new();
                self.inside(&mut list)?;
                root.push(Node::List(list));
                start = self.pos;
                continue;
            }
            self.pos += 1;
        }
        if self.pos > start {
            root.push(Node::Text(self.s[start..self.pos].iter().collect()));
        }
        Ok(root)
    }

    fn inside(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        loop {
            let rest = self.rest();
            if rest.starts_with('}') {
                self.pos += 1;
                return Ok(());
            }
            if rest.starts_with("[?(") {
                self.filter(cur)?;
                continue;
            }
            if rest.starts_with("..") {
                if matches!(cur.last(), Some(Node::Recursive)) {
                    return Err("invalid multiple recursive descent".into());
                }
                self.pos += 2;
                cur.push(Node::Recursive);
                if self.s.get(self.pos).is_some_and(|c| c.is_alphanumeric() || *c == '_') {
                    self.field(cur);
                }
                continue;
            }
            let Some(&c) = self.s.get(self.pos) else { return Err("unclosed action".into()) };
            self.pos += 1;
            match c {
                '\r' | '\n' => return Err("unclosed action".into()),
                ' ' | '@' | '$' => {}
                '[' => self.array(cur)?,
                '"' | '\'' => self.quote(cur, c)?,
                '.' => self.field(cur),
                c if c == '+' || c == '-' || c.is_ascii_digit() => {
                    self.pos -= 1;
                    self.number(cur)?;
                }
                c if c.is_alphanumeric() || c == '_' => {
                    self.pos -= 1;
                    let start = self.pos;
                    while !is_terminator(self.s.get(self.pos).copied()) {
                        self.pos += 1;
                    }
                    let word: String = self.s[start..self.pos].iter().collect();
                    match word.as_str() {
                        "true" | "false" => cur.push(Node::Bool(word == "true")),
                        _ => return Err(format!("unsupported identifier {word} in jsonpath")),
                    }
                }
                c => return Err(format!("unrecognized character in action: {c:?}")),
            }
        }
    }

    fn field(&mut self, cur: &mut Vec<Node>) {
        let mut name = String::new();
        while let Some(&c) = self.s.get(self.pos) {
            if c == '\\' {
                self.pos += 1;
                if let Some(&n) = self.s.get(self.pos) {
                    name.push(n);
                    self.pos += 1;
                }
                continue;
            }
            if is_terminator(Some(c)) {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        cur.push(if name == "*" { Node::Wildcard } else { Node::Field(name) });
    }

    fn number(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        let start = self.pos;
        if matches!(self.s.get(self.pos), Some('+' | '-')) {
            self.pos += 1;
        }
        while self.s.get(self.pos).is_some_and(|c| *c == '.' || c.is_ascii_digit()) {
            self.pos += 1;
        }
        let text: String = self.s[start..self.pos].iter().collect();
        if let Ok(i) = text.parse::<i64>() {
            cur.push(Node::Int(i));
        } else if let Ok(f) = text.parse::<f64>() {
            cur.push(Node::Float(f));
        } else {
            return Err(format!("cannot parse number {text}"));
        }
        Ok(())
    }

    fn quote(&mut self, cur: &mut Vec<Node>, end: char) -> Result<(), String> {
        let start = self.pos;
        loop {
            match self.s.get(self.pos) {
                None | Some('\n') => return Err("unterminated quoted string".into()),
                Some(&c) if c == end && self.s[self.pos - 1] != '\\' => break,
                _ => self.pos += 1,
            }
        }
        let text: String = self.s[start..self.pos].iter().collect();
        self.pos += 1;
        cur.push(Node::Text(text.replace(&format!("\\{end}"), &end.to_string())));
        Ok(())
    }

    fn array(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        let start = self.pos;
        loop {
            match self.s.get(self.pos) {
                None | Some('\n') => return Err("unterminated array".into()),
                Some(']') => break,
                _ => self.pos += 1,
            }
        }
        let mut text: String = self.s[start..self.pos].iter().collect();
        self.pos += 1;
        if text == "*" {
            text = ":".into();
        }
        let parts: Vec<&str> = text.split(',').collect();
        if parts.len() > 1 {
            let union =
                parts.iter().map(|p| parse_action(&format!("[{}]", p.trim_matches(' ')))).collect::<Result<_, _>>()?;
            cur.push(Node::Union(union));
            return Ok(());
        }
        if let Some(key) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')).filter(|k| !k.contains('\'')) {
            cur.extend(parse_action(&format!(".{key}"))?);
            return Ok(());
        }
        let segs: Vec<&str> = text.splitn(3, ':').collect();
        let valid = segs.iter().all(|s| s.strip_prefix('-').unwrap_or(s).bytes().all(|c| c.is_ascii_digit()));
        if !valid {
            return Err(format!("invalid array index {text}"));
        }
        let mut params = [Param::default(); 3];
        for i in 0..3 {
            match segs.get(i) {
                Some(s) if !s.is_empty() => {
                    params[i].known = true;
                    params[i].value = s.parse().map_err(|_| format!("array index {s} is not a number"))?;
                }
                Some(_) => params[i].known = false,
                None if i == 1 => {
                    params[1] = Param { value: params[0].value + 1, known: true, derived: true };
                }
                None => {}
            }
        }
        cur.push(Node::Array(params));
        Ok(())
    }

    fn filter(&mut self, cur: &mut Vec<Node>) -> Result<(), String> {
        self.pos += 3;
        let start = self.pos;
        let (mut begin, mut end, mut pair) = (false, false, ' ');
        loop {
            let Some(&c) = self.s.get(self.pos) else { return Err("unterminated filter".into()) };
            self.pos += 1;
            match c {
                '\n' => return Err("unterminated filter".into()),
                '"' | '\'' => {
                    if !begin {
                        begin = true;
                        pair = c;
                    } else if self.s[self.pos - 2] != '\\' && c == pair {
                        end = true;
                    }
                }
                ')' if begin == end => break,
                _ => {}
            }
        }
        if self.s.get(self.pos) != Some(&']') {
            return Err("unclosed array expect ]".into());
        }
        self.pos += 1;
        let text: String = self.s[start..self.pos - 2].iter().collect();
        let op_start = text.find(['!', '<', '>', '=']);
        match op_start {
            Some(i) if i > 0 => {
                let op_len = text[i..].chars().take_while(|c| matches!(c, '!' | '<' | '>' | '=')).count();
                let (left, op, right) = (&text[..i], &text[i..i + op_len], &text[i + op_len..]);
                cur.push(Node::Filter(parse_action(left)?, parse_action(right)?, op.to_string()));
            }
            _ => cur.push(Node::Filter(parse_action(&text)?, Vec::new(), "exists".into())),
        }
        Ok(())
    }
}

fn eval_list(input: &[Value], nodes: &[Node]) -> Result<Vec<Value>, String> {
    let mut cur = input.to_vec();
    for n in nodes {
        cur = eval(&cur, n)?;
    }
    Ok(cur)
}

fn children(v: &Value) -> Vec<Value> {
    match v {
        Value::Map(m) => m.borrow().values().cloned().collect(),
        Value::List(l) | Value::Strings(l) => l.to_vec(),
        Value::Str(s) => s.bytes().map(|b| Value::Int(b as i64)).collect(),
        _ => Vec::new(),
    }
}

fn eval(input: &[Value], node: &Node) -> Result<Vec<Value>, String> {
    Ok(match node {
        Node::Text(t) => vec![Value::str(t); input.len().max(1)],
        Node::List(nodes) => eval_list(input, nodes)?,
        Node::Int(i) => vec![Value::Int(*i); input.len()],
        Node::Float(f) => vec![Value::Float(*f); input.len()],
        Node::Bool(b) => vec![Value::Bool(*b); input.len()],
        Node::Field(name) => input
            .iter()
            .filter_map(|v| if let Value::Map(m) = v { m.borrow().get(name.as_str()).cloned() } else { None })
            .collect(),
        Node::Wildcard => input.iter().flat_map(children).collect(),
        Node::Recursive => {
            fn walk(v: &Value, out: &mut Vec<Value>) {
                let kids = children(v);
                if !kids.is_empty() {
                    out.push(v.clone());
                    for k in &kids {
                        walk(k, out);
                    }
                }
            }
            let mut out = Vec::new();
            for v in input {
                walk(v, &mut out);
            }
            out
        }
        Node::Union(lists) => {
            let mut out = Vec::new();
            for l in lists {
                out.extend(eval_list(input, l)?);
            }
            out
        }
        Node::Array(params) => {
            let mut out = Vec::new();
            for v in input {
                if v.is_nil() {
                    continue;
                }
                let Some(items) = v.as_slice() else {
                    return Err(format!("{} is not array or slice", v.type_name()));
                };
                let len = items.len() as i64;
                let mut p = *params;
                if !p[0].known {
                    p[0].value = 0;
                }
                if p[0].value < 0 {
                    p[0].value += len;
                }
                if !p[1].known {
                    p[1].value = len;
                }
                if p[1].value < 0 || (p[1].value == 0 && p[1].derived) {
                    p[1].value += len;
                }
                if p[1].value == p[0].value {
                    continue;
                }
                if p[0].value >= len || p[0].value < 0 {
                    return Err(format!("array index out of bounds: index {}, length {len}", p[0].value));
                }
                if p[1].value > len || p[1].value < 0 {
                    return Err(format!("array index out of bounds: index {}, length {len}", p[1].value - 1));
                }
                if p[0].value > p[1].value {
                    return Err(format!("starting index {} is greater than ending index {}", p[0].value, p[1].value));
                }
                let step = if p[2].known {
                    if p[2].value <= 0 {
                        return Err("step must be > 0".into());
                    }
                    p[2].value as usize
                } else {
                    1
                };
                out.extend(items[p[0].value as usize..p[1].value as usize].iter().step_by(step).cloned());
            }
            out
        }
        Node::Filter(left, right, op) => {
            let mut out = Vec::new();
            for v in input {
                let Some(items) = v.as_slice() else {
                    return Err(format!("{} is not array or slice and cannot be filtered", gofmt::to_v(v)));
                };
                for item in items.iter() {
                    let l = eval_list(std::slice::from_ref(item), left)?;
                    if op == "exists" {
                        if !l.is_empty() {
                            out.push(item.clone());
                        }
                        continue;
                    }
                    let r = eval_list(std::slice::from_ref(item), right)?;
                    if l.len() != 1 || r.len() != 1 {
                        if l.len() > 1 || r.len() > 1 {
                            return Err("can only compare one element at a time".into());
                        }
                        continue;
                    }
                    if compare(&l[0], &r[0], op)? {
                        out.push(item.clone());
                    }
                }
            }
            out
        }
    })
}

fn compare(a: &Value, b: &Value, op: &str) -> Result<bool, String> {
    let ord = match (a, b) {
        (Value::Str(x), Value::Str(y)) => x.cmp(y),
        _ => {
            let num = |v: &Value| match v {
                Value::Int(i) | Value::Int64(i) => Some(*i as f64),
                Value::Float(f) => Some(*f),
                _ => None,
            };
            match (num(a), num(b)) {
                (Some(x), Some(y)) => x.partial_cmp(&y).ok_or("incomparable")?,
                _ => match op {
                    "==" => return Ok(gofmt::to_v(a) == gofmt::to_v(b) && a.kind() == b.kind()),
                    "!=" => return Ok(!(gofmt::to_v(a) == gofmt::to_v(b) && a.kind() == b.kind())),
                    _ => return Err("incompatible types for comparison".into()),
                },
            }
        }
    };
    Ok(match op {
        "<" => ord.is_lt(),
        ">" => ord.is_gt(),
        "==" => ord.is_eq(),
        "!=" => !ord.is_eq(),
        "<=" => ord.is_le(),
        ">=" => ord.is_ge(),
        _ => return Err(format!("unrecognized filter operator {op}")),
    })
}

/// oc-mirror's `image.ParseRef` as a yes/no: a bad `@` digest, an empty name, or (for docker
/// references) neither tag nor digest is refused; nothing else is checked.
pub fn accepted_reference(r: &str) -> bool {
    let (docker, mut name) = if r.contains("://") {
        let parts: Vec<&str> = r.split("://").collect();
        if parts.len() == 2 { (parts[0] == "docker", parts[1].to_string()) } else { (false, String::new()) }
    } else {
        (true, r.to_string())
    };
    let mut digest = false;
    if name.contains('@') {
        let parts: Vec<&str> = name.split('@').collect();
        if !valid_digest(parts[1]) {
            return false;
        }
        digest = true;
        name = parts[0].to_string();
    }
    let mut tag = String::new();
    if name.contains(':') && docker {
        let last = name.rfind(':').unwrap_or(0);
        let slash = name.find('/');
        if slash.is_none() || slash.is_some_and(|s| s > 0 && last > s) {
            tag = name[last + 1..].to_string();
            name.truncate(last);
        }
    }
    if name.is_empty() {
        return false;
    }
    !(docker && tag.is_empty() && !digest)
}

fn valid_digest(d: &str) -> bool {
    let Some((alg, enc)) = d.split_once(':') else { return false };
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    enc.len() == len && enc.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::super::yaml_in::parse_value;
    use super::*;

    #[test]
    fn oc_mirror_paths() {
        let doc = parse_value("spec:\n  template:\n    spec:\n      containers:\n      - {image: a:1}\n      - {image: 'b:2 c:3'}\n      - {name: x}\n").unwrap();
        let p = JsonPath::parse("{.spec.template.spec.containers[*].image}").unwrap();
        assert_eq!(p.execute(&doc).unwrap(), "a:1 b:2 c:3");
        let p = JsonPath::parse("{.spec.initContainers[*].image}").unwrap();
        assert_eq!(p.execute(&doc).unwrap(), "");
        let p = JsonPath::parse("{.spec.template.spec.containers[0]}").unwrap();
        assert_eq!(p.execute(&doc).unwrap(), r#"{"image":"a:1"}"#);
        let p = JsonPath::parse("{.spec.template.spec.containers[?(@.name==\"x\")].name}").unwrap();
        assert_eq!(p.execute(&doc).unwrap(), "x");
        let p = JsonPath::parse("{..image}").unwrap();
        assert_eq!(p.execute(&doc).unwrap(), "a:1 b:2 c:3");
        let bad = parse_value("spec: {containers: x}\n").unwrap();
        assert!(JsonPath::parse("{.spec.containers[*].image}").unwrap().execute(&bad).is_err());
    }

    #[test]
    fn lenient_references() {
        assert!(accepted_reference("ghcr.io/a/b:1"));
        assert!(accepted_reference(
            "registry.k8s.io/x:v1@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1"
        ));
        assert!(!accepted_reference("giantswarm/tiny-tools"));
        assert!(!accepted_reference("a@sha256:short"));
        assert!(!accepted_reference(":tag"));
        assert!(accepted_reference("UPPER/Case:x"));
        assert!(accepted_reference(
            "localhost:5000/a@sha256:594ceea76b01c592858f803f9ff4d2cb40542cae2060410b2c95f75907d659e1"
        ));
        assert!(!accepted_reference("localhost:5000/a"));
        assert!(accepted_reference("oci:///tmp/x"));
        assert!(!accepted_reference("null"));
    }
}
