//! List functions of sprig (every one returns a new list; none changes its argument) and Go's
//! `index`, `len`, `slice`, comparisons and `not`.

use std::rc::Rc;

use super::conv::{empty, equal, to_int64};
use super::{Env, Imp, P, Row, int, strval};
use crate::helm::render::gofmt::to_v;
use crate::helm::render::value::{Obj, Value};

fn items(v: &Value, what: &str) -> Result<Rc<Vec<Value>>, String> {
    match v {
        Value::List(l) | Value::Strings(l) => Ok(l.clone()),
        Value::Obj(o) => match &**o {
            Obj::VersionSet(l) => Ok(Rc::new(l.iter().map(|s| Value::Str(s.clone())).collect())),
            Obj::Bytes(b) => Ok(Rc::new(b.iter().map(|c| Value::Int(*c as i64)).collect())),
            _ => Err(format!("Cannot {what} on type {}", v.kind())),
        },
        _ => Err(format!("Cannot {what} on type {}", v.kind())),
    }
}

fn list(v: Vec<Value>) -> Result<Value, String> {
    Ok(Value::list(v))
}

/// sprig's `strslice`: the elements as strings, nils left out.
pub fn strslice(v: &Value) -> Vec<String> {
    match v {
        Value::List(l) | Value::Strings(l) => l.iter().filter(|e| !e.is_nil()).map(strval).collect(),
        Value::Obj(o) if matches!(&**o, Obj::VersionSet(_) | Obj::Bytes(_)) => {
            items(v, "").map(|l| l.iter().map(strval).collect()).unwrap_or_default()
        }
        Value::Invalid | Value::Nil => Vec::new(),
        other => vec![strval(other)],
    }
}

fn uniq(l: &[Value]) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for e in l {
        if !out.iter().any(|o| equal(o, e)) {
            out.push(e.clone());
        }
    }
    out
}

fn go_slice(a: &[Value]) -> Result<Value, String> {
    let l = items(&a[0], "slice").map_err(|_| format!("list should be type of slice or array but {}", a[0].kind()))?;
    if l.is_empty() {
        return Ok(Value::Nil);
    }
    let start = a.get(1).map(|v| to_int64(v) as usize).unwrap_or(0);
    let end = a.get(2).map(|v| to_int64(v) as usize).unwrap_or(l.len());
    if start > end || end > l.len() {
        return Err(format!("runtime error: slice bounds out of range [{start}:{end}] with capacity {}", l.len()));
    }
    let part = l[start..end].to_vec();
    Ok(match &a[0] {
        Value::Strings(_) => Value::Strings(Rc::new(part)),
        _ => Value::list(part),
    })
}

/// Go's builtin `index`.
fn index(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    let mut item = a[0].clone();
    if item.is_nil() {
        return Err("index of untyped nil".into());
    }
    for idx in &a[1..] {
        item = match &item {
            Value::Invalid | Value::Nil => return Err("index of nil pointer".into()),
            Value::Map(m) => match idx {
                Value::Str(k) => m.borrow().get(&**k).cloned().unwrap_or(Value::Nil),
                Value::Invalid | Value::Nil => return Err("value is nil; should be of type string".into()),
                other => return Err(format!("value has type {}; should be string", other.type_name())),
            },
            Value::Obj(o) if matches!(&**o, Obj::StrMap(_) | Obj::Files(_)) => match idx {
                Value::Str(k) => crate::helm::render::objects::field(o, k).unwrap_or(Value::Nil),
                other => return Err(format!("value has type {}; should be string", other.type_name())),
            },
            Value::Str(s) => {
                let i = index_arg(idx, s.len())?;
                Value::Int(s.as_bytes()[i] as i64)
            }
            other => {
                let l = items(other, "index").map_err(|_| format!("can't index item of type {}", other.type_name()))?;
                let i = index_arg(idx, l.len())?;
                l[i].clone()
            }
        };
    }
    Ok(item)
}

fn index_arg(idx: &Value, len: usize) -> Result<usize, String> {
    let x = match idx {
        Value::Int(i) | Value::Int64(i) => *i,
        Value::Invalid | Value::Nil => return Err("cannot index slice/array with nil".into()),
        other => return Err(format!("cannot index slice/array with type {}", other.type_name())),
    };
    if x < 0 || x as usize >= len {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

/// Go's builtin `len`.
fn len(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    let n = match &a[0] {
        Value::Invalid | Value::Nil => return Err("len of nil pointer".into()),
        Value::Str(s) => s.len(),
        Value::List(l) | Value::Strings(l) => l.len(),
        Value::Map(m) => m.borrow().len(),
        Value::Obj(o) => match &**o {
            Obj::StrMap(m) => m.len(),
            Obj::Files(f) => f.len(),
            Obj::VersionSet(v) => v.len(),
            Obj::Bytes(b) => b.len(),
            _ => return Err(format!("len of type {}", a[0].type_name())),
        },
        other => return Err(format!("len of type {}", other.type_name())),
    };
    Ok(Value::Int(n as i64))
}

#[derive(PartialEq, Clone, Copy)]
enum Kind {
    Bool,
    Int,
    Float,
    Str,
    Other,
}

fn basic(v: &Value) -> Kind {
    match v {
        Value::Bool(_) => Kind::Bool,
        Value::Int(_) | Value::Int64(_) => Kind::Int,
        Value::Float(_) => Kind::Float,
        Value::Str(_) => Kind::Str,
        _ => Kind::Other,
    }
}

fn eq2(a: &Value, b: &Value) -> Result<bool, String> {
    let (k1, k2) = (basic(a), basic(b));
    if k1 != k2 {
        if !a.is_nil() && !b.is_nil() {
            return Err("incompatible types for comparison".into());
        }
        return Ok(false);
    }
    Ok(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x) | Value::Int64(x), Value::Int(y) | Value::Int64(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        _ if a.is_nil() || b.is_nil() => a.is_nil() && b.is_nil(),
        _ if a.kind() != b.kind() => {
            return Err(format!("non-comparable types {}: {}, {}: {}", to_v(a), a.type_name(), b.type_name(), to_v(b)));
        }
        (Value::Obj(x), Value::Obj(y))
            if !matches!(&**x, Obj::StrMap(_) | Obj::Files(_) | Obj::VersionSet(_) | Obj::Bytes(_)) =>
        {
            Rc::ptr_eq(x, y) || (to_v(a) == to_v(b) && a.type_name() == b.type_name())
        }
        _ => return Err(format!("non-comparable type {}: {}", to_v(b), b.type_name())),
    })
}

fn eq(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    if a.len() < 2 {
        return Err("missing argument for comparison".into());
    }
    for b in &a[1..] {
        if eq2(&a[0], b)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

fn lt2(a: &Value, b: &Value) -> Result<bool, String> {
    let (k1, k2) = (basic(a), basic(b));
    if k1 == Kind::Other || k2 == Kind::Other {
        return Err("invalid type for comparison".into());
    }
    if k1 != k2 {
        return Err("incompatible types for comparison".into());
    }
    Ok(match (a, b) {
        (Value::Int(x) | Value::Int64(x), Value::Int(y) | Value::Int64(y)) => x < y,
        (Value::Float(x), Value::Float(y)) => x < y,
        (Value::Str(x), Value::Str(y)) => x < y,
        _ => return Err("invalid type for comparison".into()),
    })
}

fn cmp(a: &[Value], f: fn(&Value, &Value) -> Result<bool, String>) -> Result<Value, String> {
    f(&a[0], &a[1]).map(Value::Bool)
}

fn sort_alpha(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    let mut v = match &a[0] {
        Value::List(_) | Value::Strings(_) => strslice(&a[0]),
        Value::Obj(o) if matches!(&**o, Obj::VersionSet(_)) => strslice(&a[0]),
        other => vec![strval(other)],
    };
    v.sort();
    Ok(Value::Strings(Rc::new(v.into_iter().map(Value::string).collect())))
}

fn push(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    let mut l = items(&a[0], "push")?.to_vec();
    l.push(a[1].clone());
    list(l)
}

fn prepend(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    let mut l = vec![a[1].clone()];
    l.extend(items(&a[0], "prepend")?.iter().cloned());
    list(l)
}

fn first(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    Ok(items(&a[0], "find first")?.first().cloned().unwrap_or(Value::Nil))
}

fn last(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    Ok(items(&a[0], "find last")?.last().cloned().unwrap_or(Value::Nil))
}

fn rest(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    let l = items(&a[0], "find rest")?;
    if l.is_empty() { Ok(Value::Nil) } else { list(l[1..].to_vec()) }
}

fn initial(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    let l = items(&a[0], "find initial")?;
    if l.is_empty() { Ok(Value::Nil) } else { list(l[..l.len() - 1].to_vec()) }
}

fn reverse(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    list(items(&a[0], "find reverse")?.iter().rev().cloned().collect())
}

fn uniq_list(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    list(uniq(&items(&a[0], "find uniq")?))
}

fn compact(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    list(items(&a[0], "compact")?.iter().filter(|v| !empty(v)).cloned().collect())
}

fn without(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    list(items(&a[0], "find without")?.iter().filter(|v| !a[1..].iter().any(|o| equal(o, v))).cloned().collect())
}

fn has(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    if a[1].is_nil() {
        return Ok(Value::Bool(false));
    }
    Ok(Value::Bool(items(&a[1], "find has")?.iter().any(|v| equal(v, &a[0]))))
}

fn concat(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    let mut out = Vec::new();
    for l in a {
        out.extend(items(l, "concat").map_err(|_| format!("Cannot concat type {} as list", l.kind()))?.iter().cloned());
    }
    list(out)
}

const ONE: &[P] = &[P::Any];
const TWO: &[P] = &[P::Any, P::Any];
const VALS: &[P] = &[P::Val, P::Val];

pub const FUNCS: &[Row] = &[
    ("index", &[P::Val], Some(P::Val), Imp::Pure(index)),
    ("len", &[P::Val], None, Imp::Pure(len)),
    ("not", &[P::Val], None, Imp::Pure(|_, a| Ok(Value::Bool(!a[0].truthy())))),
    ("eq", &[P::Val], Some(P::Val), Imp::Pure(eq)),
    ("ne", VALS, None, Imp::Pure(|_, a| eq2(&a[0], &a[1]).map(|b| Value::Bool(!b)))),
    ("lt", VALS, None, Imp::Pure(|_, a| cmp(a, lt2))),
    ("le", VALS, None, Imp::Pure(|_, a| cmp(a, |x, y| Ok(lt2(x, y)? || eq2(x, y)?)))),
    ("gt", VALS, None, Imp::Pure(|_, a| cmp(a, |x, y| Ok(!(lt2(x, y)? || eq2(x, y)?))))),
    ("ge", VALS, None, Imp::Pure(|_, a| cmp(a, |x, y| Ok(!lt2(x, y)?)))),
    ("list", &[], Some(P::Any), Imp::Pure(|_, a| list(a.to_vec()))),
    ("tuple", &[], Some(P::Any), Imp::Pure(|_, a| list(a.to_vec()))),
    ("append", TWO, None, Imp::Pure(push)),
    ("push", TWO, None, Imp::Pure(push)),
    ("mustAppend", TWO, None, Imp::Pure(push)),
    ("mustPush", TWO, None, Imp::Pure(push)),
    ("prepend", TWO, None, Imp::Pure(prepend)),
    ("mustPrepend", TWO, None, Imp::Pure(prepend)),
    ("first", ONE, None, Imp::Pure(first)),
    ("mustFirst", ONE, None, Imp::Pure(first)),
    ("last", ONE, None, Imp::Pure(last)),
    ("mustLast", ONE, None, Imp::Pure(last)),
    ("rest", ONE, None, Imp::Pure(rest)),
    ("mustRest", ONE, None, Imp::Pure(rest)),
    ("initial", ONE, None, Imp::Pure(initial)),
    ("mustInitial", ONE, None, Imp::Pure(initial)),
    ("reverse", ONE, None, Imp::Pure(reverse)),
    ("mustReverse", ONE, None, Imp::Pure(reverse)),
    ("uniq", ONE, None, Imp::Pure(uniq_list)),
    ("mustUniq", ONE, None, Imp::Pure(uniq_list)),
    ("compact", ONE, None, Imp::Pure(compact)),
    ("mustCompact", ONE, None, Imp::Pure(compact)),
    ("without", ONE, Some(P::Any), Imp::Pure(without)),
    ("mustWithout", ONE, Some(P::Any), Imp::Pure(without)),
    ("has", TWO, None, Imp::Pure(has)),
    ("mustHas", TWO, None, Imp::Pure(has)),
    ("slice", ONE, Some(P::Any), Imp::Pure(|_, a| go_slice(a))),
    ("mustSlice", ONE, Some(P::Any), Imp::Pure(|_, a| go_slice(a))),
    ("concat", &[], Some(P::Any), Imp::Pure(concat)),
    (
        "chunk",
        &[P::Int, P::Any],
        None,
        Imp::Pure(|_, a| {
            let size = int(&a[0]).max(1) as usize;
            list(items(&a[1], "chunk")?.chunks(size).map(|c| Value::list(c.to_vec())).collect())
        }),
    ),
    ("sortAlpha", ONE, None, Imp::Pure(sort_alpha)),
    (
        "toStrings",
        ONE,
        None,
        Imp::Pure(|_, a| Ok(Value::Strings(Rc::new(strslice(&a[0]).into_iter().map(Value::string).collect())))),
    ),
    (
        "join",
        &[P::Str, P::Any],
        None,
        Imp::Pure(|_, a| Ok(Value::string(strslice(&a[1]).join(a[0].as_str().unwrap_or(""))))),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_follow_go() {
        let mut e = Env::default();
        assert!(matches!(eq(&mut e, &[Value::Int(1), Value::Int64(1)]), Ok(Value::Bool(true))));
        assert!(eq(&mut e, &[Value::Int(1), Value::Float(1.0)]).is_err());
        assert!(matches!(eq(&mut e, &[Value::Nil, Value::str("x")]), Ok(Value::Bool(false))));
        assert!(matches!(eq(&mut e, &[Value::str("b"), Value::str("a"), Value::str("b")]), Ok(Value::Bool(true))));
        assert!(lt2(&Value::Nil, &Value::Int(1)).is_err());
        assert!(lt2(&Value::str("a"), &Value::str("b")).unwrap());
    }

    #[test]
    fn index_and_len() {
        let mut e = Env::default();
        let l = Value::list(vec![Value::str("a"), Value::str("b")]);
        assert_eq!(index(&mut e, &[l.clone(), Value::Int(1)]).unwrap().as_str(), Some("b"));
        assert!(index(&mut e, &[l.clone(), Value::Int(2)]).is_err());
        assert!(matches!(len(&mut e, &[l]), Ok(Value::Int(2))));
        assert!(index(&mut e, &[Value::Nil, Value::Int(0)]).is_err());
    }
}
