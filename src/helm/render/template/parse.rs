//! The parser of Go's `text/template`: pipelines, variables, control structures, `define`,
//! `block` and `template`, with Go's parse-time checks (defined functions and variables,
//! `break` only inside `range`, non-executable pipeline stages).

use std::rc::Rc;

use super::super::funcs;
pub use super::ast::*;
use super::lex::{Tok, Token, lex};

/// A parse error: position in the text and Go's message.
#[derive(Debug)]
pub struct ParseError {
    pub pos: usize,
    pub message: String,
}

/// Parses `text` (the file `file`) as the template `name`: the main tree first, then every
/// `define`/`block` in the order they end.
pub fn parse(name: &str, file: &Rc<str>, text: &Rc<str>) -> Result<Vec<Rc<Tree>>, ParseError> {
    let toks = lex(text).map_err(|(pos, message)| ParseError { pos, message })?;
    let mut p =
        Parser { depth: 0, toks, i: 0, vars: vec![Rc::from("$")], range_depth: 0, file, text, trees: Vec::new() };
    let root = p.top()?;
    let main = Rc::new(Tree { name: Rc::from(name), file: file.clone(), text: text.clone(), root });
    p.add(main)?;
    // The main tree is the first.
    let last = p.trees.pop().expect("main tree");
    p.trees.insert(0, last);
    Ok(p.trees)
}

/// Nesting of pipelines and control structures the parser accepts (Go has no limit; this keeps
/// a hostile template from exhausting the stack).
const MAX_NESTING: usize = 10_000;

struct Parser<'a> {
    depth: usize,
    toks: Vec<Token<'a>>,
    i: usize,
    vars: Vec<Rc<str>>,
    range_depth: usize,
    file: &'a Rc<str>,
    text: &'a Rc<str>,
    trees: Vec<Rc<Tree>>,
}

enum Item {
    Node(Node),
    End(usize),
    Else(usize),
}

type R<T> = Result<T, ParseError>;

impl<'a> Parser<'a> {
    fn err<T>(&self, pos: usize, message: impl Into<String>) -> R<T> {
        Err(ParseError { pos, message: message.into() })
    }

    fn peek(&self) -> Token<'a> {
        self.toks[self.i.min(self.toks.len() - 1)]
    }

    fn next(&mut self) -> Token<'a> {
        let t = self.peek();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }

    fn skip_space(&mut self) {
        while self.peek().kind == Tok::Space {
            self.i += 1;
        }
    }

    fn peek_non_space(&mut self) -> Token<'a> {
        self.skip_space();
        self.peek()
    }

    fn next_non_space(&mut self) -> Token<'a> {
        self.skip_space();
        self.next()
    }

    fn unexpected<T>(&self, t: Token<'a>, context: &str) -> R<T> {
        let what = match t.kind {
            Tok::Eof => "EOF".to_string(),
            Tok::RightDelim => "\"}}\"".into(),
            _ => format!("{:?}", t.text),
        };
        self.err(t.pos, format!("unexpected {what} in {context}"))
    }

    fn add(&mut self, tree: Rc<Tree>) -> R<()> {
        if let Some(idx) = self.trees.iter().position(|t| t.name == tree.name) {
            if is_empty(&self.trees[idx]) {
                self.trees[idx] = tree;
                return Ok(());
            }
            if !is_empty(&tree) {
                return self.err(0, format!("template: multiple definition of template {:?}", &*tree.name));
            }
            return Ok(());
        }
        self.trees.push(tree);
        Ok(())
    }

    fn top(&mut self) -> R<Vec<Node>> {
        let mut list = Vec::new();
        while self.peek().kind != Tok::Eof {
            if self.peek().kind == Tok::LeftDelim {
                let save = self.i;
                self.next();
                if self.next_non_space().kind == Tok::Define {
                    self.definition()?;
                    continue;
                }
                self.i = save;
            }
            match self.text_or_action()? {
                Item::Node(n) => list.push(n),
                Item::End(p) => return self.err(p, "unexpected {{end}}"),
                Item::Else(p) => return self.err(p, "unexpected {{else}}"),
            }
        }
        Ok(list)
    }

    fn definition(&mut self) -> R<()> {
        let t = self.next_non_space();
        let name = self.template_name(t, "define clause")?;
        let t = self.next_non_space();
        if t.kind != Tok::RightDelim {
            return self.unexpected(t, "define clause");
        }
        let saved = std::mem::replace(&mut self.vars, vec![Rc::from("$")]);
        let (root, end) = self.item_list()?;
        self.vars = saved;
        if let Item::Else(p) = end {
            return self.err(p, "unexpected {{else}} in define clause");
        }
        let tree = Rc::new(Tree { name, file: self.file.clone(), text: self.text.clone(), root });
        self.add(tree)
    }

    fn template_name(&self, t: Token<'a>, context: &str) -> R<Rc<str>> {
        match t.kind {
            Tok::Str | Tok::RawStr => Ok(Rc::from(unquote(t.text).map_err(|m| ParseError { pos: t.pos, message: m })?)),
            _ => self.unexpected(t, context),
        }
    }

    fn item_list(&mut self) -> R<(Vec<Node>, Item)> {
        let mut list = Vec::new();
        while self.peek_non_space().kind != Tok::Eof {
            match self.text_or_action()? {
                Item::Node(n) => list.push(n),
                end => return Ok((list, end)),
            }
        }
        self.err(self.peek().pos, "unexpected EOF")
    }

    fn text_or_action(&mut self) -> R<Item> {
        let t = self.next_non_space();
        match t.kind {
            Tok::Text => Ok(Item::Node(Node::Text(t.pos as u32, (t.pos + t.text.len()) as u32))),
            Tok::LeftDelim => self.action(),
            _ => self.unexpected(t, "input"),
        }
    }

    fn expect_right(&mut self, context: &str) -> R<()> {
        let t = self.next_non_space();
        if t.kind != Tok::RightDelim {
            return self.unexpected(t, context);
        }
        Ok(())
    }

    fn action(&mut self) -> R<Item> {
        let t = self.next_non_space();
        match t.kind {
            Tok::Block => return self.block(),
            Tok::Break | Tok::Continue => {
                let word = if t.kind == Tok::Break { "break" } else { "continue" };
                self.expect_right(&format!("{{{{{word}}}}}"))?;
                if self.range_depth == 0 {
                    return self.err(t.pos, format!("{{{{{word}}}}} outside {{{{range}}}}"));
                }
                return Ok(Item::Node(if t.kind == Tok::Break { Node::Break } else { Node::Continue }));
            }
            Tok::Else => {
                let p = self.peek_non_space();
                if p.kind == Tok::If || p.kind == Tok::With {
                    return Ok(Item::Else(p.pos));
                }
                self.expect_right("else")?;
                return Ok(Item::Else(t.pos));
            }
            Tok::End => {
                self.expect_right("end")?;
                return Ok(Item::End(t.pos));
            }
            Tok::If => return Ok(Item::Node(Node::If(Box::new(self.control("if")?)))),
            Tok::With => return Ok(Item::Node(Node::With(Box::new(self.control("with")?)))),
            Tok::Range => return Ok(Item::Node(Node::Range(Box::new(self.control("range")?)))),
            Tok::Template => {
                let nt = self.next_non_space();
                let name = self.template_name(nt, "template clause")?;
                let pipe = if self.peek_non_space().kind != Tok::RightDelim {
                    Some(self.pipeline("template clause", Tok::RightDelim)?)
                } else {
                    self.next();
                    None
                };
                return Ok(Item::Node(Node::Template(Box::new(Call { pos: nt.pos, name, pipe }))));
            }
            _ => {}
        }
        self.i -= 1;
        Ok(Item::Node(Node::Action(self.pipeline("command", Tok::RightDelim)?)))
    }

    fn block(&mut self) -> R<Item> {
        let t = self.next_non_space();
        let name = self.template_name(t, "block clause")?;
        let pipe = self.pipeline("block clause", Tok::RightDelim)?;
        let saved = std::mem::replace(&mut self.vars, vec![Rc::from("$")]);
        let saved_depth = std::mem::replace(&mut self.range_depth, 0);
        let (root, end) = self.item_list()?;
        self.vars = saved;
        self.range_depth = saved_depth;
        if let Item::Else(p) = end {
            return self.err(p, "unexpected {{else}} in block clause");
        }
        let tree = Rc::new(Tree { name: name.clone(), file: self.file.clone(), text: self.text.clone(), root });
        self.add(tree)?;
        Ok(Item::Node(Node::Template(Box::new(Call { pos: t.pos, name, pipe: Some(pipe) }))))
    }

    fn nest<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<T> {
        if self.depth >= MAX_NESTING {
            return self.err(self.peek().pos, "template nesting too deep");
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn control(&mut self, context: &str) -> R<Branch> {
        self.nest(|p| p.control_inner(context))
    }

    fn control_inner(&mut self, context: &str) -> R<Branch> {
        let nvars = self.vars.len();
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        if context == "range" {
            self.range_depth += 1;
        }
        let (list, next) = self.item_list()?;
        if context == "range" {
            self.range_depth -= 1;
        }
        let mut else_list = None;
        match next {
            Item::End(_) => {}
            Item::Else(_) => {
                let p = self.peek_non_space();
                if context == "if" && p.kind == Tok::If {
                    self.next();
                    else_list = Some(vec![Node::If(Box::new(self.control("if")?))]);
                } else if context == "with" && p.kind == Tok::With {
                    self.next();
                    else_list = Some(vec![Node::With(Box::new(self.control("with")?))]);
                } else {
                    if context == "range" {
                        // The else list of a range is outside the loop.
                    }
                    let (l, n) = self.item_list()?;
                    match n {
                        Item::End(_) => {}
                        Item::Else(p) => return self.err(p, "expected end; found {{else}}"),
                        Item::Node(_) => unreachable!("item_list returns on end or else"),
                    }
                    else_list = Some(l);
                }
            }
            Item::Node(_) => unreachable!("item_list returns on end or else"),
        }
        self.vars.truncate(nvars);
        Ok(Branch { pos: pipe.pos, pipe, list, else_list })
    }

    fn pipeline(&mut self, context: &str, end: Tok) -> R<Pipe> {
        self.nest(|p| p.pipeline_inner(context, end))
    }

    fn pipeline_inner(&mut self, context: &str, end: Tok) -> R<Pipe> {
        let start = self.peek_non_space();
        let mut pipe = Pipe { pos: start.pos, is_assign: false, decl: Vec::new(), cmds: Vec::new() };
        // Declarations.
        loop {
            let v = self.peek_non_space();
            if v.kind != Tok::Variable {
                break;
            }
            let save = self.i;
            self.next();
            let nxt = self.peek_non_space();
            match nxt.kind {
                Tok::Assign | Tok::Declare => {
                    pipe.is_assign = nxt.kind == Tok::Assign;
                    self.next();
                    pipe.decl.push(Rc::from(v.text));
                    self.vars.push(Rc::from(v.text));
                    break;
                }
                Tok::Char if nxt.text == "," => {
                    self.next();
                    pipe.decl.push(Rc::from(v.text));
                    self.vars.push(Rc::from(v.text));
                    if context == "range" && pipe.decl.len() < 2 {
                        match self.peek_non_space().kind {
                            Tok::Variable | Tok::RightDelim | Tok::RightParen => continue,
                            _ => return self.err(nxt.pos, "range can only initialize variables"),
                        }
                    }
                    return self.err(nxt.pos, format!("too many declarations in {context}"));
                }
                _ => {
                    self.i = save;
                    break;
                }
            }
        }
        loop {
            let t = self.next_non_space();
            if t.kind == end {
                if pipe.cmds.is_empty() {
                    return self.err(t.pos, format!("missing value for {context}"));
                }
                for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
                    if matches!(c.args[0], Arg::Bool(..) | Arg::Dot(_) | Arg::Nil(_) | Arg::Number(..) | Arg::Str(..)) {
                        return self.err(c.pos, format!("non executable command in pipeline stage {}", i + 1));
                    }
                }
                return Ok(pipe);
            }
            match t.kind {
                Tok::Bool
                | Tok::CharConst
                | Tok::Dot
                | Tok::Field
                | Tok::Identifier
                | Tok::Number
                | Tok::Nil
                | Tok::RawStr
                | Tok::Str
                | Tok::Variable
                | Tok::LeftParen => {
                    self.i -= 1;
                    let c = self.command()?;
                    pipe.cmds.push(c);
                }
                _ => return self.unexpected(t, context),
            }
        }
    }

    fn command(&mut self) -> R<Cmd> {
        let pos = self.peek_non_space().pos;
        let mut cmd = Cmd { pos, args: Vec::new() };
        loop {
            self.skip_space();
            if let Some(op) = self.operand()? {
                cmd.args.push(op);
            }
            let t = self.next();
            match t.kind {
                Tok::Space => continue,
                Tok::RightDelim | Tok::RightParen => self.i -= 1,
                Tok::Pipe => {}
                _ => return self.unexpected(t, "operand"),
            }
            break;
        }
        if cmd.args.is_empty() {
            return self.err(pos, "empty command");
        }
        Ok(cmd)
    }

    fn operand(&mut self) -> R<Option<Arg>> {
        let Some(node) = self.term()? else { return Ok(None) };
        if self.peek().kind != Tok::Field {
            return Ok(Some(node));
        }
        let chain_pos = self.peek().pos;
        let mut fields: Vec<Rc<str>> = Vec::new();
        while self.peek().kind == Tok::Field {
            fields.push(Rc::from(&self.next().text[1..]));
        }
        Ok(Some(match node {
            Arg::Field(_, idents) => {
                let mut all: Vec<Rc<str>> = idents.to_vec();
                all.extend(fields);
                Arg::Field(chain_pos, all.into())
            }
            Arg::Var(_, name, idents) => {
                let mut all: Vec<Rc<str>> = idents.to_vec();
                all.extend(fields);
                Arg::Var(chain_pos, name, all.into())
            }
            n @ (Arg::Bool(..) | Arg::Str(..) | Arg::Number(..) | Arg::Nil(_) | Arg::Dot(_)) => {
                return self.err(chain_pos, format!("unexpected . after term {:?}", n.to_string()));
            }
            n => Arg::Chain(chain_pos, Box::new(n), fields.into()),
        }))
    }

    fn term(&mut self) -> R<Option<Arg>> {
        let t = self.next_non_space();
        Ok(Some(match t.kind {
            Tok::Identifier => match funcs::lookup(t.text) {
                Some(f) => Arg::Func(t.pos, f, Rc::from(t.text)),
                None => return self.err(t.pos, format!("function {:?} not defined", t.text)),
            },
            Tok::Dot => Arg::Dot(t.pos),
            Tok::Nil => Arg::Nil(t.pos),
            Tok::Variable => {
                if !self.vars.iter().any(|v| &**v == t.text) {
                    return self.err(t.pos, format!("undefined variable {:?}", t.text));
                }
                Arg::Var(t.pos, Rc::from(t.text), Rc::from(Vec::new()))
            }
            Tok::Field => Arg::Field(t.pos, Rc::from(vec![Rc::from(&t.text[1..])])),
            Tok::Bool => Arg::Bool(t.pos, t.text == "true"),
            Tok::Number | Tok::CharConst => {
                let n = number(t.text, t.kind == Tok::CharConst).map_err(|m| ParseError { pos: t.pos, message: m })?;
                Arg::Number(t.pos, Rc::new(n))
            }
            Tok::LeftParen => {
                let p = self.pipeline("parenthesized pipeline", Tok::RightParen)?;
                Arg::Pipe(t.pos, Box::new(p))
            }
            Tok::Str | Tok::RawStr => {
                let s = unquote(t.text).map_err(|m| ParseError { pos: t.pos, message: m })?;
                Arg::Str(t.pos, Rc::from(s), Rc::from(t.text))
            }
            _ => {
                self.i -= 1;
                return Ok(None);
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Result<Vec<Rc<Tree>>, ParseError> {
        let f: Rc<str> = Rc::from("t");
        parse("t", &f, &Rc::from(s))
    }

    #[test]
    fn defines_and_structure() {
        let trees = parse_str(
            "{{ define \"a\" }}A{{ end }}x{{ if .X }}{{ else if .Y }}{{ else }}{{ end }}{{ range $i, $v := .L }}{{ break }}{{ end }}{{ block \"b\" . }}B{{ end }}",
        )
        .unwrap();
        let names: Vec<&str> = trees.iter().map(|t| &*t.name).collect();
        assert_eq!(names, ["t", "a", "b"]);
        assert_eq!(trees[0].root.len(), 4);
    }

    #[test]
    fn parse_time_checks() {
        assert!(parse_str("{{ nosuchfunction 1 }}").unwrap_err().message.contains("not defined"));
        assert!(parse_str("{{ $x }}").unwrap_err().message.contains("undefined variable"));
        assert!(parse_str("{{ break }}").is_err());
        assert!(parse_str("{{ if 1 }}").unwrap_err().message.contains("unexpected EOF"));
        assert!(parse_str("{{ .A | 3 }}").is_err());
        assert!(parse_str("{{ $x := 1 }}{{ if true }}{{ $y := 2 }}{{ end }}{{ $y }}").is_err());
        assert!(parse_str("{{ define \"a\" }}1{{ end }}{{ define \"a\" }}2{{ end }}").is_err());
        assert!(parse_str("{{ define \"a\" }}1{{ end }}{{ define \"a\" }} {{ end }}").is_ok());
        // Parsing runs on the render thread's large stack; so does this check.
        let deep = std::thread::Builder::new()
            .stack_size(256 << 20)
            .spawn(|| {
                let text = format!("{{{{ {}1{} }}}}", "(".repeat(20_000), ")".repeat(20_000));
                parse_str(&text).map(|_| ()).map_err(|e| e.message)
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(deep.unwrap_err().contains("too deep"));
    }

    #[test]
    fn context_strings() {
        let trees = parse_str("{{ $x := .A.B | printf \"%s\" (index $x.C 1) }}").unwrap();
        let Node::Action(p) = &trees[0].root[0] else { panic!("not an action") };
        assert_eq!(p.to_string(), "$x := .A.B | printf \"%s\" (index $x.C 1)");
    }
}
