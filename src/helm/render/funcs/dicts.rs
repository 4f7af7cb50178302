//! Dictionary functions of sprig, with `merge`/`mergeOverwrite` following mergo v1.0.1's rules
//! for `map[string]interface{}` (an empty destination value — `""`, `0`, `false`, nil — is
//! filled; nested maps are merged in place; lists are taken whole).

use std::collections::BTreeMap;
use std::rc::Rc;

use super::{Env, Imp, P, Row, s, strval};
use crate::helm::render::value::{Key, MapRef, Value};

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Invalid | Value::Nil => true,
        Value::Bool(b) => !b,
        Value::Int(i) | Value::Int64(i) => *i == 0,
        Value::Float(f) => *f == 0.0,
        Value::Str(s) => s.is_empty(),
        Value::List(l) | Value::Strings(l) => l.is_empty(),
        Value::Map(m) => m.borrow().is_empty(),
        Value::Obj(_) => false,
    }
}

/// mergo's `deepMerge` of two `map[string]interface{}` values.
fn merge_maps(dst: &MapRef, src: &MapRef, overwrite: bool, depth: usize) {
    if depth > 1000 {
        return;
    }
    let entries: Vec<(Key, Value)> = src.borrow().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    for (key, src_el) in entries {
        let dst_el = dst.borrow().get(&key).cloned();
        if src_el.is_nil() {
            if overwrite {
                dst.borrow_mut().insert(key, Value::Nil);
            }
            continue;
        }
        match &src_el {
            Value::Map(sm) => {
                if let Some(Value::Map(dm)) = &dst_el
                    && !Rc::ptr_eq(dm, sm)
                {
                    merge_maps(dm, sm, overwrite, depth + 1);
                }
            }
            Value::List(_) | Value::Strings(_) => {
                let dst_empty = dst.borrow().is_empty();
                let slice = if overwrite || dst_empty {
                    src_el.clone()
                } else {
                    match &dst_el {
                        None | Some(Value::Nil) => match &src_el {
                            Value::Strings(_) => Value::Strings(Rc::new(Vec::new())),
                            _ => Value::list(Vec::new()),
                        },
                        Some(v) => v.clone(),
                    }
                };
                dst.borrow_mut().insert(key.clone(), slice);
            }
            _ => {}
        }
        if let Some(d) = &dst_el
            && !is_empty_value(d)
        {
            if matches!(src_el, Value::List(_) | Value::Strings(_)) {
                continue;
            }
            if matches!(src_el, Value::Map(_)) && matches!(d, Value::Map(_)) {
                continue;
            }
        }
        if overwrite || dst_el.as_ref().is_none_or(is_empty_value) {
            dst.borrow_mut().insert(key, src_el);
        }
    }
}

fn merge(a: &[Value], overwrite: bool) -> Result<Value, String> {
    let dst = match &a[0] {
        Value::Map(m) => m.clone(),
        _ => match Value::new_map() {
            Value::Map(m) => m,
            _ => unreachable!("new_map is a map"),
        },
    };
    for src in &a[1..] {
        if let Value::Map(sm) = src
            && !Rc::ptr_eq(&dst, sm)
        {
            merge_maps(&dst, sm, overwrite, 0);
        }
    }
    Ok(Value::Map(dst))
}

fn dict(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    let mut m = BTreeMap::new();
    let mut i = 0;
    while i < a.len() {
        let key = Key::from(strval(&a[i]));
        let val = a.get(i + 1).cloned().unwrap_or_else(|| Value::str(""));
        m.insert(key, val);
        i += 2;
    }
    Ok(Value::map_from(m))
}

fn map_of(v: &Value, func: &str) -> Result<Option<MapRef>, String> {
    match v {
        Value::Map(m) => Ok(Some(m.clone())),
        Value::Nil | Value::Invalid => Ok(None),
        other => Err(format!(
            "{func}: interface conversion: interface {{}} is {}, not map[string]interface {{}}",
            other.type_name()
        )),
    }
}

fn dig(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    if a.len() < 3 {
        return Err("dig needs at least three arguments".into());
    }
    let n = a.len();
    let default = a[n - 2].clone();
    let mut keys = Vec::new();
    for k in &a[..n - 2] {
        match k {
            Value::Str(s) => keys.push(s.clone()),
            other => return Err(format!("interface conversion: interface {{}} is {}, not string", other.type_name())),
        }
    }
    let Some(mut cur) = map_of(&a[n - 1], "dig")? else {
        return Err("interface conversion: interface {} is nil, not map[string]interface {}".into());
    };
    for (i, k) in keys.iter().enumerate() {
        let step = cur.borrow().get(&**k).cloned();
        let Some(step) = step else { return Ok(default) };
        if i + 1 == keys.len() {
            return Ok(step);
        }
        cur = match map_of(&step, "dig")? {
            Some(m) => m,
            None => return Err("interface conversion: interface {} is nil, not map[string]interface {}".into()),
        };
    }
    Ok(default)
}

fn keys(_: &mut Env, a: &[Value]) -> Result<Value, String> {
    let mut out = Vec::new();
    for d in a {
        if let Value::Map(m) = d {
            out.extend(m.borrow().keys().map(|k| Value::Str(k.clone())));
        }
    }
    Ok(Value::Strings(Rc::new(out)))
}

fn pick_omit(a: &[Value], keep: bool) -> Result<Value, String> {
    let mut out = BTreeMap::new();
    if let Value::Map(m) = &a[0] {
        let names: Vec<&str> = a[1..].iter().map(s).collect();
        for (k, v) in m.borrow().iter() {
            if names.contains(&&**k) == keep {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(Value::map_from(out))
}

pub const FUNCS: &[Row] = &[
    ("dict", &[], Some(P::Any), Imp::Pure(dict)),
    (
        "get",
        &[P::Map, P::Str],
        None,
        Imp::Pure(|_, a| {
            let m = map_of(&a[0], "get")?;
            Ok(m.and_then(|m| m.borrow().get(s(&a[1])).cloned()).unwrap_or_else(|| Value::str("")))
        }),
    ),
    (
        "set",
        &[P::Map, P::Str, P::Any],
        None,
        Imp::Pure(|_, a| {
            let m = map_of(&a[0], "set")?.ok_or("assignment to entry in nil map")?;
            m.borrow_mut().insert(Key::from(s(&a[1])), a[2].clone());
            Ok(Value::Map(m))
        }),
    ),
    (
        "unset",
        &[P::Map, P::Str],
        None,
        Imp::Pure(|_, a| {
            if let Some(m) = map_of(&a[0], "unset")? {
                m.borrow_mut().remove(s(&a[1]));
            }
            Ok(a[0].clone())
        }),
    ),
    (
        "hasKey",
        &[P::Map, P::Str],
        None,
        Imp::Pure(|_, a| Ok(Value::Bool(map_of(&a[0], "hasKey")?.is_some_and(|m| m.borrow().contains_key(s(&a[1])))))),
    ),
    (
        "pluck",
        &[P::Str],
        Some(P::Map),
        Imp::Pure(|_, a| {
            let mut out = Vec::new();
            for d in &a[1..] {
                if let Value::Map(m) = d
                    && let Some(v) = m.borrow().get(s(&a[0]))
                {
                    out.push(v.clone());
                }
            }
            Ok(Value::list(out))
        }),
    ),
    ("keys", &[], Some(P::Map), Imp::Pure(keys)),
    (
        "values",
        &[P::Map],
        None,
        Imp::Pure(|_, a| {
            Ok(Value::list(
                map_of(&a[0], "values")?.map(|m| m.borrow().values().cloned().collect()).unwrap_or_default(),
            ))
        }),
    ),
    ("pick", &[P::Map], Some(P::Str), Imp::Pure(|_, a| pick_omit(a, true))),
    ("omit", &[P::Map], Some(P::Str), Imp::Pure(|_, a| pick_omit(a, false))),
    ("merge", &[P::Map], Some(P::Map), Imp::Pure(|_, a| merge(a, false))),
    ("mustMerge", &[P::Map], Some(P::Map), Imp::Pure(|_, a| merge(a, false))),
    ("mergeOverwrite", &[P::Map], Some(P::Map), Imp::Pure(|_, a| merge(a, true))),
    ("mustMergeOverwrite", &[P::Map], Some(P::Map), Imp::Pure(|_, a| merge(a, true))),
    ("dig", &[], Some(P::Any), Imp::Pure(dig)),
    ("deepCopy", &[P::Any], None, Imp::Pure(|_, a| Ok(a[0].deep_copy()))),
    ("mustDeepCopy", &[P::Any], None, Imp::Pure(|_, a| Ok(a[0].deep_copy()))),
];

#[cfg(test)]
mod tests {
    use super::super::super::yaml_in::parse_value;
    use super::super::super::yaml_out::to_json;
    use super::*;

    fn run(dst: &str, src: &str, overwrite: bool) -> String {
        let d = parse_value(dst).unwrap();
        let s = parse_value(src).unwrap();
        let out = merge(&[d, s], overwrite).unwrap();
        to_json(&out, false, false).unwrap()
    }

    #[test]
    fn mergo_rules() {
        // Non-empty destination values win; empty ones ("", false, 0, null) are filled.
        assert_eq!(
            run("{a: 1, b: '', c: false, d: {x: 1}}", "{a: 2, b: s, c: true, d: {x: 2, w: 3}, e: [1]}", false),
            r#"{"a":1,"b":"s","c":true,"d":{"w":3,"x":1},"e":[1]}"#
        );
        // Overwrite takes every source value, even empty ones, but keeps destination maps merged.
        assert_eq!(
            run("{a: 1, b: x, d: {x: 1, z: 0}, l: [1, 2]}", "{a: 2, b: '', d: {x: 2}, l: [3], nn: null}", true),
            r#"{"a":2,"b":"","d":{"x":2,"z":0},"l":[3],"nn":null}"#
        );
        // A list never merges into a non-empty list without overwrite.
        assert_eq!(run("{l: [1]}", "{l: [2, 3]}", false), r#"{"l":[1]}"#);
    }

    #[test]
    fn dig_and_get() {
        let mut e = Env::default();
        let m = parse_value("a: {b: {c: 1}}\n").unwrap();
        let v = dig(&mut e, &[Value::str("a"), Value::str("b"), Value::str("c"), Value::str("d"), m.clone()]).unwrap();
        assert!(matches!(v, Value::Float(f) if f == 1.0));
        let v = dig(&mut e, &[Value::str("a"), Value::str("x"), Value::str("d"), m]).unwrap();
        assert_eq!(v.as_str(), Some("d"));
    }
}
