//! Conversions (spf13/cast as sprig uses it), defaults, type tests and arithmetic.

use std::rc::Rc;

use super::{Env, Imp, P, Row, int, s};
use crate::helm::render::gofmt;
use crate::helm::render::value::{Obj, Value};
use crate::helm::render::yaml_in::go_parse_int;

/// sprig's `strval`: strings as they are, `[]byte` as text, anything else `%v`.
pub fn strval(v: &Value) -> String {
    match v {
        Value::Str(s) => s.to_string(),
        Value::Obj(o) => match &**o {
            Obj::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
            _ => gofmt::to_v(v),
        },
        other => gofmt::to_v(other),
    }
}

fn trim_zero_decimal(s: &str) -> &str {
    let b = s.as_bytes();
    let mut found_zero = false;
    let mut i = b.len();
    while i > 0 {
        match b[i - 1] {
            b'.' => {
                if found_zero {
                    return &s[..i - 1];
                }
            }
            b'0' => found_zero = true,
            _ => return s,
        }
        i -= 1;
    }
    s
}

/// `cast.ToInt64` (0 when it cannot convert).
pub fn to_int64(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::Str(s) => go_parse_int(trim_zero_decimal(s)).unwrap_or(0),
        _ => 0,
    }
}

/// `cast.ToFloat64` (0 when it cannot convert).
pub fn to_float64(v: &Value) -> f64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::Str(s) => s.parse::<f64>().ok().filter(|_| !s.contains(['i', 'I', 'n', 'N'])).unwrap_or(0.0),
        _ => 0.0,
    }
}

/// sprig's `empty`.
pub fn empty(v: &Value) -> bool {
    !v.truthy()
}

fn dfault(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    if a.len() < 2 || empty(&a[1]) {
        return Ok(a[0].clone());
    }
    Ok(a[1].clone())
}

fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Invalid | Value::Nil, Value::Invalid | Value::Nil) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) | (Value::Int64(x), Value::Int64(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::List(x), Value::List(y)) | (Value::Strings(x), Value::Strings(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| deep_equal(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            let (x, y) = (x.borrow(), y.borrow());
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        (Value::Obj(x), Value::Obj(y)) => {
            Rc::ptr_eq(x, y) || gofmt::to_v(a) == gofmt::to_v(b) && a.type_name() == b.type_name()
        }
        _ => false,
    }
}

/// `reflect.DeepEqual` as sprig's list functions use it.
pub fn equal(a: &Value, b: &Value) -> bool {
    deep_equal(a, b)
}

fn kind_name(v: &Value) -> &'static str {
    v.kind()
}

fn arith(a: &[Value], f: fn(i64, i64) -> Option<i64>) -> Result<Value, String> {
    let mut acc = to_int64(&a[0]);
    for b in &a[1..] {
        acc = f(acc, to_int64(b)).ok_or("runtime error: integer divide by zero")?;
    }
    Ok(Value::Int64(acc))
}

fn until_step(start: i64, stop: i64, step: i64) -> Value {
    let mut v = Vec::new();
    if step == 0 {
        return Value::list(v);
    }
    let mut i = start;
    if step > 0 {
        while i < stop {
            v.push(Value::Int(i));
            i += step;
        }
    } else {
        while i > stop {
            v.push(Value::Int(i));
            i += step;
        }
    }
    Value::list(v)
}

fn seq(a: &[Value]) -> Result<Value, String> {
    let n: Vec<i64> = a.iter().map(to_int64).collect();
    let (start, end, step) = match n.as_slice() {
        [] => return Ok(Value::str("")),
        [e] => (1, *e, 1),
        [s, e] => (*s, *e, if s <= e { 1 } else { -1 }),
        [s, st, e, ..] => (*s, *e, *st),
    };
    let mut out = Vec::new();
    if step == 0 || (step > 0 && start > end) || (step < 0 && start < end) {
        return Ok(Value::str(""));
    }
    let mut i = start;
    while (step > 0 && i <= end) || (step < 0 && i >= end) {
        out.push(i.to_string());
        i += step;
    }
    Ok(Value::string(out.join(" ")))
}

fn minmax(a: &[Value], want_max: bool) -> Value {
    let mut acc = to_int64(&a[0]);
    for b in &a[1..] {
        let x = to_int64(b);
        if (want_max && x > acc) || (!want_max && x < acc) {
            acc = x;
        }
    }
    Value::Int64(acc)
}

fn minmaxf(a: &[Value], want_max: bool) -> Value {
    let mut acc = to_float64(&a[0]);
    for b in &a[1..] {
        let x = to_float64(b);
        acc = if want_max { acc.max(x) } else { acc.min(x) };
    }
    Value::Float(acc)
}

fn round(a: &[Value]) -> Value {
    let x = to_float64(&a[0]);
    let p = to_int64(&a[1]) as i32;
    let r = a.get(2).map(to_float64).unwrap_or(0.5);
    let pow = 10f64.powi(p);
    let digit = pow * x;
    let (int, frac) = (digit.trunc(), digit.fract());
    let rounded = if frac.abs() >= r { int + frac.signum() } else { int };
    Value::Float(rounded / pow)
}

fn float_op(a: &[Value], f: fn(f64, f64) -> f64) -> Value {
    let mut acc = to_float64(&a[0]);
    for b in &a[1..] {
        acc = f(acc, to_float64(b));
    }
    Value::Float(acc)
}

pub const FUNCS: &[Row] = &[
    ("toString", &[P::Any], None, Imp::Pure(|_, a| Ok(Value::string(strval(&a[0]))))),
    ("int", &[P::Any], None, Imp::Pure(|_, a| Ok(Value::Int(to_int64(&a[0]))))),
    ("int64", &[P::Any], None, Imp::Pure(|_, a| Ok(Value::Int64(to_int64(&a[0]))))),
    ("float64", &[P::Any], None, Imp::Pure(|_, a| Ok(Value::Float(to_float64(&a[0]))))),
    ("atoi", &[P::Str], None, Imp::Pure(|_, a| Ok(Value::Int(s(&a[0]).parse::<i64>().unwrap_or(0))))),
    (
        "toDecimal",
        &[P::Any],
        None,
        Imp::Pure(|_, a| Ok(Value::Int64(i64::from_str_radix(&strval(&a[0]), 8).unwrap_or(0)))),
    ),
    ("default", &[P::Any], Some(P::Any), Imp::Pure(dfault)),
    ("empty", &[P::Any], None, Imp::Pure(|_, a| Ok(Value::Bool(empty(&a[0]))))),
    ("coalesce", &[], Some(P::Any), Imp::Pure(|_, a| Ok(a.iter().find(|v| !empty(v)).cloned().unwrap_or(Value::Nil)))),
    ("all", &[], Some(P::Any), Imp::Pure(|_, a| Ok(Value::Bool(a.iter().all(|v| !empty(v)))))),
    ("any", &[], Some(P::Any), Imp::Pure(|_, a| Ok(Value::Bool(a.iter().any(|v| !empty(v)))))),
    (
        "ternary",
        &[P::Any, P::Any, P::Bool],
        None,
        Imp::Pure(|_, a| Ok(if matches!(a[2], Value::Bool(true)) { a[0].clone() } else { a[1].clone() })),
    ),
    ("typeOf", &[P::Any], None, Imp::Pure(|_, a| Ok(Value::string(a[0].type_name())))),
    ("typeIs", &[P::Str, P::Any], None, Imp::Pure(|_, a| Ok(Value::Bool(s(&a[0]) == a[1].type_name())))),
    (
        "typeIsLike",
        &[P::Str, P::Any],
        None,
        Imp::Pure(|_, a| {
            let t = a[1].type_name();
            Ok(Value::Bool(s(&a[0]) == t || s(&a[0]) == format!("*{t}")))
        }),
    ),
    ("kindOf", &[P::Any], None, Imp::Pure(|_, a| Ok(Value::str(kind_name(&a[0]))))),
    ("kindIs", &[P::Str, P::Any], None, Imp::Pure(|_, a| Ok(Value::Bool(s(&a[0]) == kind_name(&a[1]))))),
    ("deepEqual", &[P::Any, P::Any], None, Imp::Pure(|_, a| Ok(Value::Bool(deep_equal(&a[0], &a[1]))))),
    (
        "add",
        &[],
        Some(P::Any),
        Imp::Pure(|_, a| Ok(Value::Int64(a.iter().map(to_int64).fold(0i64, i64::wrapping_add)))),
    ),
    ("add1", &[P::Any], None, Imp::Pure(|_, a| Ok(Value::Int64(to_int64(&a[0]).wrapping_add(1))))),
    ("sub", &[P::Any, P::Any], None, Imp::Pure(|_, a| arith(a, |x, y| Some(x.wrapping_sub(y))))),
    ("mul", &[P::Any], Some(P::Any), Imp::Pure(|_, a| arith(a, |x, y| Some(x.wrapping_mul(y))))),
    ("div", &[P::Any, P::Any], None, Imp::Pure(|_, a| arith(a, |x, y| x.checked_div(y)))),
    ("mod", &[P::Any, P::Any], None, Imp::Pure(|_, a| arith(a, |x, y| x.checked_rem(y)))),
    ("max", &[P::Any], Some(P::Any), Imp::Pure(|_, a| Ok(minmax(a, true)))),
    ("biggest", &[P::Any], Some(P::Any), Imp::Pure(|_, a| Ok(minmax(a, true)))),
    ("min", &[P::Any], Some(P::Any), Imp::Pure(|_, a| Ok(minmax(a, false)))),
    ("maxf", &[P::Any], Some(P::Any), Imp::Pure(|_, a| Ok(minmaxf(a, true)))),
    ("minf", &[P::Any], Some(P::Any), Imp::Pure(|_, a| Ok(minmaxf(a, false)))),
    ("addf", &[], Some(P::Any), Imp::Pure(|_, a| Ok(Value::Float(a.iter().map(to_float64).sum())))),
    ("add1f", &[P::Any], None, Imp::Pure(|_, a| Ok(Value::Float(to_float64(&a[0]) + 1.0)))),
    ("subf", &[P::Any], Some(P::Any), Imp::Pure(|_, a| Ok(float_op(a, |x, y| x - y)))),
    ("mulf", &[P::Any], Some(P::Any), Imp::Pure(|_, a| Ok(float_op(a, |x, y| x * y)))),
    ("divf", &[P::Any], Some(P::Any), Imp::Pure(|_, a| Ok(float_op(a, |x, y| x / y)))),
    ("ceil", &[P::Any], None, Imp::Pure(|_, a| Ok(Value::Float(to_float64(&a[0]).ceil())))),
    ("floor", &[P::Any], None, Imp::Pure(|_, a| Ok(Value::Float(to_float64(&a[0]).floor())))),
    ("round", &[P::Any, P::Int], Some(P::F64), Imp::Pure(|_, a| Ok(round(a)))),
    ("until", &[P::Int], None, Imp::Pure(|_, a| Ok(until_step(0, int(&a[0]), if int(&a[0]) < 0 { -1 } else { 1 })))),
    (
        "untilStep",
        &[P::Int, P::Int, P::Int],
        None,
        Imp::Pure(|_, a| Ok(until_step(int(&a[0]), int(&a[1]), int(&a[2])))),
    ),
    ("seq", &[], Some(P::Int), Imp::Pure(|_, a| seq(a))),
    (
        "randInt",
        &[P::Int, P::Int],
        None,
        Imp::Pure(|env, a| {
            let (lo, hi) = (int(&a[0]), int(&a[1]));
            if hi <= lo {
                return Err("invalid argument to Intn".into());
            }
            Ok(Value::Int(lo + (env.next_u64() % (hi - lo) as u64) as i64))
        }),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cast_rules() {
        assert_eq!(to_int64(&Value::str("010")), 8);
        assert_eq!(to_int64(&Value::str("12.00")), 12);
        assert_eq!(to_int64(&Value::str("x")), 0);
        assert_eq!(to_int64(&Value::Float(3.9)), 3);
        assert_eq!(to_float64(&Value::str("1.5")), 1.5);
        assert_eq!(strval(&Value::Float(8080.0)), "8080");
        assert_eq!(strval(&Value::Nil), "<nil>");
    }
}
