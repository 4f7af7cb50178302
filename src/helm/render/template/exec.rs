//! Execution with Go's semantics: a missing map key is a nil that prints as `<no value>`, a
//! field of nil is an error (but a field of "no value" is not), `and`/`or` short-circuit and
//! return an operand, maps range in key order, arguments are checked against the function's
//! Go signature, and errors carry Go's `template: file:line:col: executing "name" at <...>`
//! form that Helm rewrites.

use std::collections::HashMap;
use std::rc::Rc;

use super::super::funcs::{Env, Func, Imp, P};
use super::super::gofmt;
use super::super::objects;
use super::super::value::Value;
use super::Set;
use super::parse::{self, Arg, Branch, Call, Cmd, Node, Number, Pipe, Tree};

/// Nesting of `template`, `include` and `tpl` calls allowed before giving up (Helm stops a
/// single name at 1000 nested includes; this bounds mutual recursion as well).
const MAX_DEPTH: usize = 5_000;
/// Helm's `recursionMaxNums`.
const MAX_INCLUDE: usize = 1000;

/// An execution engine: shared state across the templates of one render.
#[derive(Default)]
pub struct Exec {
    pub env: Env,
    included: HashMap<Rc<str>, usize>,
    tpl_cache: HashMap<Rc<str>, Parsed>,
    depth: usize,
}

struct Frame {
    tree: Rc<Tree>,
    set: Rc<Set>,
    vars: Vec<(Rc<str>, Value)>,
}

#[derive(PartialEq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

type R<T> = Result<T, String>;

/// A `tpl` text parsed once: its trees, or the parse error.
type Parsed = Result<Rc<Vec<Rc<Tree>>>, String>;

impl Exec {
    /// Executes the template `name` of `set` with `data` as dot (Go's `ExecuteTemplate`).
    pub fn execute(&mut self, set: &Rc<Set>, name: &str, data: Value, out: &mut String) -> R<()> {
        let Some(tree) = set.lookup(name) else {
            return Err(format!("template: no template {} associated with template \"gotpl\"", gofmt::quote(name)));
        };
        self.execute_tree(set, tree, data, out)
    }

    fn execute_tree(&mut self, set: &Rc<Set>, tree: Rc<Tree>, data: Value, out: &mut String) -> R<()> {
        let dot = data.unwrap_interface();
        let mut f = Frame { tree: tree.clone(), set: set.clone(), vars: vec![(Rc::from("$"), dot.clone())] };
        self.walk(&mut f, &dot, &tree.root, out)?;
        Ok(())
    }

    fn error(&self, f: &Frame, pos: usize, context: &dyn std::fmt::Display, msg: &str) -> String {
        let text = &f.tree.text;
        let pos = pos.min(text.len());
        let before = &text[..pos];
        let col = match before.rfind('\n') {
            Some(nl) => pos - nl - 1,
            None => pos,
        };
        let line = parse::line_of(text, pos);
        format!(
            "template: {}:{}:{}: executing {} at <{}>: {}",
            f.tree.file,
            line,
            col,
            gofmt::quote(&f.tree.name),
            context,
            msg
        )
    }

    fn enter(&mut self, f: &Frame, pos: usize, ctx: &dyn std::fmt::Display) -> R<()> {
        if self.depth >= MAX_DEPTH {
            return Err(self.error(f, pos, ctx, &format!("exceeded maximum template depth ({MAX_DEPTH})")));
        }
        self.depth += 1;
        Ok(())
    }

    fn walk(&mut self, f: &mut Frame, dot: &Value, list: &[Node], out: &mut String) -> R<Flow> {
        for n in list {
            let flow = match n {
                Node::Text(a, b) => {
                    out.push_str(&f.tree.text[*a as usize..*b as usize]);
                    Flow::Normal
                }
                Node::Action(p) => {
                    let v = self.eval_pipeline(f, dot, p)?;
                    if p.decl.is_empty() {
                        print_value(out, &v);
                    }
                    Flow::Normal
                }
                Node::If(b) => self.walk_if(f, dot, b, false, out)?,
                Node::With(b) => self.walk_if(f, dot, b, true, out)?,
                Node::Range(b) => self.walk_range(f, dot, b, out)?,
                Node::Template(c) => {
                    self.walk_template(f, dot, c, out)?;
                    Flow::Normal
                }
                Node::Break => Flow::Break,
                Node::Continue => Flow::Continue,
            };
            if flow != Flow::Normal {
                return Ok(flow);
            }
        }
        Ok(Flow::Normal)
    }

    fn walk_if(&mut self, f: &mut Frame, dot: &Value, b: &Branch, with: bool, out: &mut String) -> R<Flow> {
        let mark = f.vars.len();
        let v = self.eval_pipeline(f, dot, &b.pipe)?;
        let flow = if v.truthy() {
            if with { self.walk(f, &v, &b.list, out)? } else { self.walk(f, dot, &b.list, out)? }
        } else if let Some(el) = &b.else_list {
            self.walk(f, dot, el, out)?
        } else {
            Flow::Normal
        };
        f.vars.truncate(mark);
        Ok(flow)
    }

    fn walk_range(&mut self, f: &mut Frame, dot: &Value, b: &Branch, out: &mut String) -> R<Flow> {
        let mark = f.vars.len();
        let val = self.eval_pipeline(f, dot, &b.pipe)?;
        let body_mark = f.vars.len();
        let items: Option<Vec<(Value, Value)>> = match &val {
            Value::List(l) | Value::Strings(l) => {
                Some(l.iter().enumerate().map(|(i, e)| (Value::Int(i as i64), e.clone())).collect())
            }
            Value::Map(m) => Some(m.borrow().iter().map(|(k, v)| (Value::Str(k.clone()), v.clone())).collect()),
            Value::Int(n) | Value::Int64(n) => {
                if b.pipe.decl.len() > 1 {
                    return Err(self.error(
                        f,
                        b.pos,
                        &"range",
                        &format!("can't use {} to iterate over more than one variable", n),
                    ));
                }
                let wrap = |i: i64| if matches!(val, Value::Int(_)) { Value::Int(i) } else { Value::Int64(i) };
                Some((0..(*n).max(0)).map(|i| (wrap(i), wrap(i))).collect())
            }
            Value::Invalid | Value::Nil => None,
            Value::Obj(o) => match objects::range_items(o) {
                Some(items) => Some(items),
                None => {
                    return Err(self.error(
                        f,
                        b.pos,
                        &b.pipe,
                        &format!("range can't iterate over {}", gofmt::to_v(&val)),
                    ));
                }
            },
            other => {
                return Err(self.error(f, b.pos, &b.pipe, &format!("range can't iterate over {}", gofmt::to_v(other))));
            }
        };
        let items = items.unwrap_or_default();
        if !items.is_empty() {
            for (index, elem) in items {
                let decl = &b.pipe.decl;
                if !decl.is_empty() {
                    if b.pipe.is_assign {
                        if decl.len() > 1 {
                            self.set_var(f, &decl[0], index.clone(), b.pos)?;
                            self.set_var(f, &decl[1], elem.clone(), b.pos)?;
                        } else {
                            self.set_var(f, &decl[0], elem.clone(), b.pos)?;
                        }
                    } else {
                        let n = f.vars.len();
                        f.vars[n - 1].1 = elem.clone();
                        if decl.len() > 1 {
                            f.vars[n - 2].1 = index.clone();
                        }
                    }
                }
                let flow = self.walk(f, &elem, &b.list, out)?;
                f.vars.truncate(body_mark);
                if flow == Flow::Break {
                    break;
                }
            }
        } else if let Some(el) = &b.else_list {
            let flow = self.walk(f, dot, el, out)?;
            f.vars.truncate(mark);
            return Ok(flow);
        }
        f.vars.truncate(mark);
        Ok(Flow::Normal)
    }

    fn walk_template(&mut self, f: &mut Frame, dot: &Value, c: &Call, out: &mut String) -> R<()> {
        let Some(tree) = f.set.lookup(&c.name) else {
            return Err(self.error(
                f,
                c.pos,
                &format_args!("template {}", gofmt::quote(&c.name)),
                &format!("template {} not defined", gofmt::quote(&c.name)),
            ));
        };
        let data = match &c.pipe {
            Some(p) => self.eval_pipeline(f, dot, p)?,
            None => Value::Invalid,
        };
        self.enter(f, c.pos, &"template")?;
        let set = f.set.clone();
        let r = self.execute_tree(&set, tree, data, out);
        self.depth -= 1;
        r
    }

    fn set_var(&self, f: &mut Frame, name: &str, v: Value, pos: usize) -> R<()> {
        for (n, slot) in f.vars.iter_mut().rev() {
            if &**n == name {
                *slot = v;
                return Ok(());
            }
        }
        Err(self.error(f, pos, &name, &format!("undefined variable: {name}")))
    }

    fn var_value(&self, f: &Frame, name: &str, pos: usize) -> R<Value> {
        for (n, v) in f.vars.iter().rev() {
            if &**n == name {
                return Ok(v.clone());
            }
        }
        Err(self.error(f, pos, &name, &format!("undefined variable: {name}")))
    }

    fn eval_pipeline(&mut self, f: &mut Frame, dot: &Value, pipe: &Pipe) -> R<Value> {
        let mut value: Option<Value> = None;
        for cmd in &pipe.cmds {
            let v = self.eval_command(f, dot, cmd, value.take())?;
            value = Some(v.unwrap_interface());
        }
        let value = value.unwrap_or(Value::Invalid);
        for d in &pipe.decl {
            if pipe.is_assign {
                self.set_var(f, d, value.clone(), pipe.pos)?;
            } else {
                f.vars.push((d.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, f: &Frame, cmd: &Cmd, fin: &Option<Value>) -> R<()> {
        if cmd.args.len() > 1 || fin.is_some() {
            return Err(self.error(
                f,
                cmd.args[0].pos(),
                &cmd.args[0],
                &format!("can't give argument to non-function {}", cmd.args[0]),
            ));
        }
        Ok(())
    }

    fn eval_command(&mut self, f: &mut Frame, dot: &Value, cmd: &Cmd, fin: Option<Value>) -> R<Value> {
        let first = &cmd.args[0];
        match first {
            Arg::Field(pos, idents) => {
                self.eval_field_chain(f, dot, dot.clone(), idents, Some(&cmd.args[1..]), fin, *pos, first)
            }
            Arg::Chain(pos, node, fields) => {
                let recv = self.eval_chain_head(f, dot, node)?;
                self.eval_field_chain(f, dot, recv, fields, Some(&cmd.args[1..]), fin, *pos, first)
            }
            Arg::Func(pos, func, name) => self.eval_function(f, dot, func, name, *pos, cmd, &cmd.args[1..], fin),
            Arg::Pipe(_, p) => {
                self.not_a_function(f, cmd, &fin)?;
                self.eval_pipeline(f, dot, p)
            }
            Arg::Var(pos, name, idents) => {
                let v = self.var_value(f, name, *pos)?;
                if idents.is_empty() {
                    self.not_a_function(f, cmd, &fin)?;
                    return Ok(v);
                }
                self.eval_field_chain(f, dot, v, idents, Some(&cmd.args[1..]), fin, *pos, first)
            }
            Arg::Bool(_, b) => {
                self.not_a_function(f, cmd, &fin)?;
                Ok(Value::Bool(*b))
            }
            Arg::Dot(_) => {
                self.not_a_function(f, cmd, &fin)?;
                Ok(dot.clone())
            }
            Arg::Nil(pos) => Err(self.error(f, *pos, first, "nil is not a command")),
            Arg::Number(pos, n) => {
                self.not_a_function(f, cmd, &fin)?;
                self.ideal_constant(f, *pos, n)
            }
            Arg::Str(_, s, _) => {
                self.not_a_function(f, cmd, &fin)?;
                Ok(Value::Str(s.clone()))
            }
        }
    }

    fn eval_chain_head(&mut self, f: &mut Frame, dot: &Value, node: &Arg) -> R<Value> {
        if let Arg::Nil(pos) = node {
            return Err(self.error(f, *pos, node, "indirection through explicit nil"));
        }
        Ok(self.eval_arg(f, dot, node, P::Any)?.unwrap_interface())
    }

    fn ideal_constant(&self, f: &Frame, pos: usize, n: &Number) -> R<Value> {
        let t = &n.text;
        let hex =
            t.trim_start_matches(['+', '-']).starts_with("0x") || t.trim_start_matches(['+', '-']).starts_with("0X");
        let rune = t.starts_with('\'');
        if n.is_float && !hex && !rune && t.contains(['.', 'e', 'E', 'p', 'P']) {
            return Ok(Value::Float(n.float));
        }
        if n.is_int {
            return Ok(Value::Int(n.int));
        }
        if n.is_uint {
            return Err(self.error(f, pos, &t.as_str(), &format!("{t} overflows int")));
        }
        Ok(Value::Float(n.float))
    }

    #[allow(clippy::too_many_arguments, reason = "mirrors Go's evalFieldChain parameters")]
    fn eval_field_chain(
        &mut self,
        f: &mut Frame,
        dot: &Value,
        receiver: Value,
        idents: &[Rc<str>],
        args: Option<&[Arg]>,
        fin: Option<Value>,
        pos: usize,
        node: &Arg,
    ) -> R<Value> {
        let mut recv = receiver;
        let n = idents.len();
        for ident in &idents[..n - 1] {
            recv = self.eval_field(f, dot, ident, recv, None, None, pos, node)?;
        }
        self.eval_field(f, dot, &idents[n - 1], recv, args, fin, pos, node)
    }

    #[allow(clippy::too_many_arguments, reason = "mirrors Go's evalField parameters")]
    fn eval_field(
        &mut self,
        f: &mut Frame,
        dot: &Value,
        name: &str,
        recv: Value,
        args: Option<&[Arg]>,
        fin: Option<Value>,
        pos: usize,
        node: &Arg,
    ) -> R<Value> {
        let has_args = args.is_some_and(|a| !a.is_empty()) || fin.is_some();
        match &recv {
            Value::Invalid => Ok(Value::Invalid),
            Value::Nil => Err(self.error(f, pos, node, &format!("nil pointer evaluating interface {{}}.{name}"))),
            Value::Map(m) => {
                if has_args {
                    return Err(self.error(f, pos, node, &format!("{name} is not a method but has arguments")));
                }
                Ok(m.borrow().get(name).cloned().unwrap_or(Value::Nil))
            }
            Value::Obj(o) => {
                if let Some((params, variadic)) = objects::method_sig(o, name) {
                    let argv =
                        self.eval_call_args(f, dot, name, params, variadic, args.unwrap_or(&[]), fin, pos, node)?;
                    return objects::call(o, name, &argv)
                        .map_err(|e| self.error(f, pos, node, &format!("error calling {name}: {e}")));
                }
                match objects::field(o, name) {
                    Some(v) => {
                        if has_args {
                            return Err(self.error(
                                f,
                                pos,
                                node,
                                &format!("{name} has arguments but cannot be invoked as function"),
                            ));
                        }
                        Ok(v)
                    }
                    None => Err(self.error(
                        f,
                        pos,
                        node,
                        &format!("can't evaluate field {name} in type {}", recv.type_name()),
                    )),
                }
            }
            other => {
                Err(self.error(f, pos, node, &format!("can't evaluate field {name} in type {}", other.type_name())))
            }
        }
    }

    #[allow(clippy::too_many_arguments, reason = "mirrors Go's evalCall parameters")]
    fn eval_call_args(
        &mut self,
        f: &mut Frame,
        dot: &Value,
        name: &str,
        params: &[P],
        variadic: Option<P>,
        args: &[Arg],
        fin: Option<Value>,
        pos: usize,
        node: &dyn std::fmt::Display,
    ) -> R<Vec<Value>> {
        let num_in = args.len() + usize::from(fin.is_some());
        let fixed = params.len();
        if variadic.is_some() {
            if num_in < fixed {
                return Err(self.error(
                    f,
                    pos,
                    node,
                    &format!("wrong number of args for {name}: want at least {fixed} got {}", args.len()),
                ));
            }
        } else if num_in != fixed {
            return Err(self.error(
                f,
                pos,
                node,
                &format!("wrong number of args for {name}: want {fixed} got {num_in}"),
            ));
        }
        let ptype = |i: usize| if i < fixed { params[i] } else { variadic.unwrap_or(P::Any) };
        let mut argv = Vec::with_capacity(num_in);
        for (i, a) in args.iter().enumerate() {
            argv.push(self.eval_arg(f, dot, a, ptype(i))?);
        }
        if let Some(v) = fin {
            let v = validate(v, ptype(num_in - 1)).map_err(|e| self.error(f, pos, node, &e))?;
            argv.push(v);
        }
        Ok(argv)
    }

    #[allow(clippy::too_many_arguments, reason = "mirrors Go's evalFunction parameters")]
    fn eval_function(
        &mut self,
        f: &mut Frame,
        dot: &Value,
        func: &'static Func,
        name: &str,
        pos: usize,
        node: &dyn std::fmt::Display,
        args: &[Arg],
        fin: Option<Value>,
    ) -> R<Value> {
        if matches!(func.imp, Imp::And | Imp::Or) {
            let is_or = matches!(func.imp, Imp::Or);
            if args.is_empty() && fin.is_none() {
                return Err(self.error(
                    f,
                    pos,
                    node,
                    &format!("wrong number of args for {name}: want at least 1 got 0"),
                ));
            }
            let mut v = Value::Invalid;
            for a in args {
                v = self.eval_arg(f, dot, a, P::Val)?;
                if v.truthy() == is_or {
                    return Ok(v);
                }
            }
            if let Some(fv) = fin {
                v = fv;
            }
            return Ok(v);
        }
        let argv = self.eval_call_args(f, dot, name, func.params, func.variadic, args, fin, pos, node)?;
        let r = match func.imp {
            Imp::Pure(fun) => fun(&mut self.env, &argv),
            Imp::Include => self.include(f, pos, node, &argv),
            Imp::Tpl => self.tpl(f, pos, node, &argv),
            Imp::And | Imp::Or => unreachable!("handled above"),
        };
        r.map_err(|e| self.error(f, pos, node, &format!("error calling {name}: {}", bounded(e))))
    }

    fn eval_arg(&mut self, f: &mut Frame, dot: &Value, arg: &Arg, p: P) -> R<Value> {
        let v = match arg {
            Arg::Dot(_) => dot.clone(),
            Arg::Nil(pos) => {
                return match p {
                    P::Any | P::Val | P::Map | P::List => Ok(Value::Nil),
                    _ => Err(self.error(f, *pos, arg, &format!("cannot assign nil to {}", p.go()))),
                };
            }
            Arg::Field(pos, idents) => self.eval_field_chain(f, dot, dot.clone(), idents, None, None, *pos, arg)?,
            Arg::Var(pos, name, idents) => {
                let v = self.var_value(f, name, *pos)?;
                if idents.is_empty() { v } else { self.eval_field_chain(f, dot, v, idents, None, None, *pos, arg)? }
            }
            Arg::Pipe(_, pp) => self.eval_pipeline(f, dot, pp)?,
            Arg::Func(pos, func, name) => self.eval_function(f, dot, func, name, *pos, arg, &[], None)?,
            Arg::Chain(pos, node, fields) => {
                let recv = self.eval_chain_head(f, dot, node)?;
                self.eval_field_chain(f, dot, recv, fields, None, None, *pos, arg)?
            }
            Arg::Bool(pos, b) => {
                return match p {
                    P::Bool | P::Any | P::Val => Ok(Value::Bool(*b)),
                    _ => Err(self.error(f, *pos, arg, &format!("expected {}; found {b}", p.go()))),
                };
            }
            Arg::Number(pos, n) => {
                return match p {
                    P::Int if n.is_int => Ok(Value::Int(n.int)),
                    P::Int => Err(self.error(f, *pos, arg, &format!("expected integer; found {}", n.text))),
                    P::F64 if n.is_float => Ok(Value::Float(n.float)),
                    P::F64 => Err(self.error(f, *pos, arg, &format!("expected float; found {}", n.text))),
                    P::Any | P::Val => self.ideal_constant(f, *pos, n),
                    P::Str => Err(self.error(f, *pos, arg, &format!("expected string; found {}", n.text))),
                    _ => Err(self.error(f, *pos, arg, &format!("can't handle {} for arg of type {}", n.text, p.go()))),
                };
            }
            Arg::Str(pos, s, raw) => {
                return match p {
                    P::Str | P::Any | P::Val => Ok(Value::Str(s.clone())),
                    P::Int => Err(self.error(f, *pos, arg, &format!("expected integer; found {raw}"))),
                    _ => Err(self.error(f, *pos, arg, &format!("can't handle {raw} for arg of type {}", p.go()))),
                };
            }
        };
        validate(v, p).map_err(|e| self.error(f, arg.pos(), arg, &e))
    }

    fn include(&mut self, f: &Frame, pos: usize, node: &dyn std::fmt::Display, argv: &[Value]) -> R<Value> {
        let name: Rc<str> = Rc::from(argv[0].as_str().unwrap_or(""));
        let count = self.included.entry(name.clone()).or_insert(0);
        if *count > MAX_INCLUDE {
            return Err(format!("rendering template has a nested reference name: {name}: unable to execute template"));
        }
        *count += 1;
        self.enter(f, pos, node)?;
        let mut out = String::new();
        let set = f.set.clone();
        let r = self.execute(&set, &name, argv[1].clone(), &mut out);
        self.depth -= 1;
        if let Some(c) = self.included.get_mut(&name) {
            *c -= 1;
        }
        r.map(|_| Value::string(out))
    }

    fn tpl(&mut self, f: &Frame, pos: usize, node: &dyn std::fmt::Display, argv: &[Value]) -> R<Value> {
        let text: Rc<str> = Rc::from(argv[0].as_str().unwrap_or(""));
        let trees = match self.tpl_cache.get(&text) {
            Some(r) => r.clone(),
            None => {
                let name: Rc<str> = Rc::from("gotpl");
                let r = parse::parse("gotpl", &name, &text)
                    .map(Rc::new)
                    .map_err(|e| format!("template: gotpl:{}: {}", parse::line_of(&text, e.pos), e.message));
                self.tpl_cache.insert(text.clone(), r.clone());
                r
            }
        };
        let trees = trees.map_err(|e| format!("cannot parse template {}: {e}", gofmt::quote(&text)))?;
        let set = Set::child(&f.set);
        set.add(&trees[1..]);
        set.add(&trees[..1]);
        self.enter(f, pos, node)?;
        let mut out = String::new();
        let r = self.execute_tree(&set, trees[0].clone(), argv[1].clone(), &mut out);
        self.depth -= 1;
        r.map_err(|e| format!("error during tpl function execution for {}: {e}", gofmt::quote(&text)))?;
        Ok(Value::string(out.replace("<no value>", "")))
    }
}

/// Errors of nested `include`s wrap each other; past a size, the middle goes (the innermost
/// message, with Helm's `fail`/`required` text, is at the end and stays).
fn bounded(e: String) -> String {
    const KEEP: usize = 8 * 1024;
    if e.len() <= 2 * KEEP {
        return e;
    }
    let mut head = KEEP;
    while !e.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = e.len() - KEEP;
    while !e.is_char_boundary(tail) {
        tail += 1;
    }
    format!("{} ... {}", &e[..head], &e[tail..])
}

/// Go's `validateType`: what a computed value may be passed as.
fn validate(v: Value, p: P) -> Result<Value, String> {
    let wrong = |v: &Value| {
        let got = if matches!(v, Value::Nil) { "interface {}".to_string() } else { v.type_name() };
        Err(format!("wrong type for value; expected {}; got {got}", p.go()))
    };
    match (&v, p) {
        (Value::Invalid, P::Val) => Ok(v),
        (Value::Invalid, P::Any | P::Map | P::List) => Ok(Value::Nil),
        (Value::Invalid, _) => Err(format!("invalid value; expected {}", p.go())),
        (_, P::Any | P::Val) => Ok(v),
        (Value::Str(_), P::Str)
        | (Value::Int(_), P::Int)
        | (Value::Float(_), P::F64)
        | (Value::Bool(_), P::Bool)
        | (Value::Map(_), P::Map)
        | (Value::List(_), P::List) => Ok(v),
        _ => wrong(&v),
    }
}

fn print_value(out: &mut String, v: &Value) {
    match v {
        Value::Invalid => out.push_str("<no value>"),
        Value::Str(s) => out.push_str(s),
        other => out.push_str(&gofmt::to_v(other)),
    }
}
