//! Fields and methods of the typed values Helm hands templates: `.Files` (`Get`, `GetBytes`,
//! `Glob`, `AsConfig`, `AsSecrets`, `Lines`), `.Capabilities.APIVersions.Has`,
//! `.Capabilities.KubeVersion.GitVersion`, struct fields such as `.Chart.AppVersion`, and the
//! methods of sprig's `semver` and `now` results.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use base64::Engine;

use super::funcs::P;
use super::glob::Glob;
use super::value::{Key, Obj, Value};

/// The signature of method `name`, if the value has one.
pub fn method_sig(o: &Obj, name: &str) -> Option<(&'static [P], Option<P>)> {
    const NONE: &[P] = &[];
    const STR: &[P] = &[P::Str];
    const ANY: &[P] = &[P::Any];
    Some(match (o, name) {
        (Obj::Files(_), "Get" | "GetBytes" | "Glob" | "Lines") => (STR, None),
        (Obj::Files(_), "AsConfig" | "AsSecrets") => (NONE, None),
        (Obj::VersionSet(_), "Has") => (STR, None),
        (Obj::Struct(s), "String" | "GitVersion") if s.stringer.is_some() => (NONE, None),
        (Obj::Semver(_), "Major" | "Minor" | "Patch" | "Prerelease" | "Metadata" | "Original" | "String") => {
            (NONE, None)
        }
        (Obj::Semver(_), "Compare" | "LessThan" | "GreaterThan" | "Equal") => (ANY, None),
        (Obj::Time(_), "Unix" | "UTC" | "Year" | "String" | "Local") => (NONE, None),
        (Obj::Time(_), "Format") => (STR, None),
        _ => return None,
    })
}

/// Calls method `name` (after `method_sig` said it exists).
pub fn call(o: &Obj, name: &str, args: &[Value]) -> Result<Value, String> {
    let arg = || args.first().and_then(|a| a.as_str()).unwrap_or("").to_string();
    Ok(match (o, name) {
        (Obj::Files(f), "Get") => {
            Value::string(String::from_utf8_lossy(f.get(arg().as_str()).map(|b| &b[..]).unwrap_or(b"")).into_owned())
        }
        (Obj::Files(f), "GetBytes") => {
            Value::Obj(Rc::new(Obj::Bytes(f.get(arg().as_str()).cloned().unwrap_or_else(|| Arc::from(&b""[..])))))
        }
        (Obj::Files(f), "Glob") => {
            let g = Glob::new(&arg()).unwrap_or_else(|| Glob::new("**").expect("valid glob"));
            let m: BTreeMap<Key, Arc<[u8]>> =
                f.iter().filter(|(k, _)| g.matches(k)).map(|(k, v)| (k.clone(), v.clone())).collect();
            Value::Obj(Rc::new(Obj::Files(Rc::new(m))))
        }
        (Obj::Files(f), "AsConfig") => {
            let m: BTreeMap<Key, Value> =
                f.iter().map(|(k, v)| (base(k), Value::string(String::from_utf8_lossy(v).into_owned()))).collect();
            Value::string(super::yaml_out::to_yaml(&Value::map_from(m)).unwrap_or_default())
        }
        (Obj::Files(f), "AsSecrets") => {
            let m: BTreeMap<Key, Value> = f
                .iter()
                .map(|(k, v)| (base(k), Value::string(base64::engine::general_purpose::STANDARD.encode(v))))
                .collect();
            Value::string(super::yaml_out::to_yaml(&Value::map_from(m)).unwrap_or_default())
        }
        (Obj::Files(f), "Lines") => {
            let data = f.get(arg().as_str()).map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            if data.is_empty() {
                return Ok(Value::Strings(Rc::new(Vec::new())));
            }
            let data = data.strip_suffix('\n').unwrap_or(&data);
            Value::Strings(Rc::new(data.split('\n').map(Value::str).collect()))
        }
        (Obj::VersionSet(v), "Has") => {
            let want = arg();
            Value::Bool(v.iter().any(|x| **x == *want))
        }
        (Obj::Struct(s), "String" | "GitVersion") => Value::Str(s.stringer.clone().unwrap_or_else(|| Rc::from(""))),
        (Obj::Semver(v), _) => semver_method(v, name, args)?,
        (Obj::Time(t), "Unix") => Value::Int64(*t),
        (Obj::Time(t), "UTC" | "Local") => Value::Obj(Rc::new(Obj::Time(*t))),
        (Obj::Time(t), "Year") => Value::Int(super::funcs::time_year(*t)),
        (Obj::Time(t), "String") => Value::string(super::funcs::time_string(*t)),
        (Obj::Time(t), "Format") => Value::string(super::funcs::time_format(*t, &arg())),
        _ => return Err(format!("no method {name}")),
    })
}

fn semver_method(v: &super::semver::Version, name: &str, args: &[Value]) -> Result<Value, String> {
    let other = || -> Result<super::semver::Version, String> {
        match args.first() {
            Some(Value::Obj(o)) => match &**o {
                Obj::Semver(s) => Ok(s.clone()),
                _ => Err("wrong type for value; expected *semver.Version".into()),
            },
            _ => Err("wrong type for value; expected *semver.Version".into()),
        }
    };
    Ok(match name {
        "Major" => Value::Int(v.major as i64),
        "Minor" => Value::Int(v.minor as i64),
        "Patch" => Value::Int(v.patch as i64),
        "Prerelease" => Value::str(&v.pre),
        "Metadata" => Value::str(&v.metadata),
        "Original" => Value::str(&v.original),
        "String" => Value::string(v.to_string()),
        "Compare" => Value::Int(v.compare(&other()?) as i64),
        "LessThan" => Value::Bool(v.compare(&other()?).is_lt()),
        "GreaterThan" => Value::Bool(v.compare(&other()?).is_gt()),
        "Equal" => Value::Bool(v.compare(&other()?).is_eq()),
        _ => return Err(format!("no method {name}")),
    })
}

fn base(path: &str) -> Key {
    Key::from(path.rsplit('/').next().unwrap_or(path))
}

/// A field (or, for typed maps, an entry); `None` when the type has no such field.
pub fn field(o: &Obj, name: &str) -> Option<Value> {
    match o {
        Obj::Struct(s) => s.field(name).cloned(),
        Obj::StrMap(m) => Some(Value::Str(m.get(name).cloned().unwrap_or_else(|| Rc::from("")))),
        Obj::Files(f) => {
            Some(Value::Obj(Rc::new(Obj::Bytes(f.get(name).cloned().unwrap_or_else(|| Arc::from(&b""[..]))))))
        }
        _ => None,
    }
}

/// What `range` walks over in a typed value (key or index, element).
pub fn range_items(o: &Obj) -> Option<Vec<(Value, Value)>> {
    Some(match o {
        Obj::StrMap(m) => m.iter().map(|(k, v)| (Value::Str(k.clone()), Value::Str(v.clone()))).collect(),
        Obj::Files(f) => {
            f.iter().map(|(k, v)| (Value::Str(k.clone()), Value::Obj(Rc::new(Obj::Bytes(v.clone()))))).collect()
        }
        Obj::VersionSet(v) => {
            v.iter().enumerate().map(|(i, s)| (Value::Int(i as i64), Value::Str(s.clone()))).collect()
        }
        Obj::Bytes(b) => b.iter().enumerate().map(|(i, c)| (Value::Int(i as i64), Value::Int(*c as i64))).collect(),
        _ => return None,
    })
}
