//! The values templates work on, modelled on what Helm hands Go's `text/template`: maps are
//! `map[string]interface{}` shared by reference (a `set` is seen by every holder), lists are
//! `[]interface{}` or `[]string`, numbers keep Go's types (`int`, `int64`, `float64`), and a few
//! typed objects (`.Chart`, `.Files`, `.Capabilities`, ...) have fields and methods.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

/// A map key.
pub type Key = Rc<str>;
/// `map[string]interface{}`: shared and mutable, iterated in key order (Go sorts keys when it
/// ranges over or prints a map).
pub type MapRef = Rc<RefCell<BTreeMap<Key, Value>>>;

/// A template value.
#[derive(Clone, Debug, Default)]
pub enum Value {
    /// Go's invalid `reflect.Value`: what a pipeline yields for a missing key. Prints as
    /// `<no value>`; a field of it is again `Invalid`.
    #[default]
    Invalid,
    /// A nil `interface{}` (YAML null, a missing map key inside a field chain).
    Nil,
    /// `bool`.
    Bool(bool),
    /// Go `int`.
    Int(i64),
    /// Go `int64`.
    Int64(i64),
    /// `float64` (every number read from YAML or JSON).
    Float(f64),
    /// `string`.
    Str(Rc<str>),
    /// `[]interface{}`.
    List(Rc<Vec<Value>>),
    /// `[]string` (every element is a `Str`).
    Strings(Rc<Vec<Value>>),
    /// `map[string]interface{}`.
    Map(MapRef),
    /// A typed Go value with fields or methods.
    Obj(Rc<Obj>),
}

/// Typed Go values other than the JSON-like ones.
#[derive(Debug)]
pub enum Obj {
    /// A struct: its Go type name and exported fields in declaration order.
    Struct(Struct),
    /// `map[string]string` (`.Chart.Annotations`).
    StrMap(BTreeMap<Key, Rc<str>>),
    /// Helm's `files` (`map[string][]byte` with methods).
    Files(Rc<BTreeMap<Key, Arc<[u8]>>>),
    /// `chartutil.VersionSet` (`[]string` with `Has`).
    VersionSet(Rc<Vec<Rc<str>>>),
    /// `[]byte`.
    Bytes(Arc<[u8]>),
    /// `*semver.Version` from sprig's `semver`.
    Semver(crate::helm::render::semver::Version),
    /// `time.Time` (seconds since the epoch, UTC) from `now`, `toDate`, ...
    Time(i64),
}

/// A struct value.
#[derive(Debug)]
pub struct Struct {
    /// Go type name, as `%T` / `typeOf` print it.
    pub ty: &'static str,
    /// Exported fields.
    pub fields: Vec<(&'static str, Value)>,
    /// Printed through a `String()` method (e.g. `KubeVersion`).
    pub stringer: Option<Rc<str>>,
    /// Reached through a pointer (printed with a leading `&`).
    pub pointer: bool,
}

impl Value {
    /// A string value.
    pub fn str(s: &str) -> Value {
        Value::Str(Rc::from(s))
    }

    /// A string value from an owned string.
    pub fn string(s: String) -> Value {
        Value::Str(Rc::from(s))
    }

    /// A new empty map.
    pub fn new_map() -> Value {
        Value::Map(Rc::new(RefCell::new(BTreeMap::new())))
    }

    /// A map from entries.
    pub fn map_from(m: BTreeMap<Key, Value>) -> Value {
        Value::Map(Rc::new(RefCell::new(m)))
    }

    /// A `[]interface{}`.
    pub fn list(v: Vec<Value>) -> Value {
        Value::List(Rc::new(v))
    }

    /// A struct object.
    pub fn structure(ty: &'static str, fields: Vec<(&'static str, Value)>) -> Value {
        Value::Obj(Rc::new(Obj::Struct(Struct { ty, fields, stringer: None, pointer: false })))
    }

    /// `Invalid` and `Nil` both read as Go's nil when handed to a function.
    pub fn is_nil(&self) -> bool {
        matches!(self, Value::Invalid | Value::Nil)
    }

    /// What a pipeline stage yields: a nil interface becomes the invalid value.
    pub fn unwrap_interface(self) -> Value {
        match self {
            Value::Nil => Value::Invalid,
            v => v,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The elements, if this is a slice (`[]interface{}` or `[]string`).
    pub fn as_slice(&self) -> Option<&Rc<Vec<Value>>> {
        match self {
            Value::List(l) | Value::Strings(l) => Some(l),
            _ => None,
        }
    }

    /// Go's truth (`if`, `with`, `and`, `or`, `not`): false, 0, nil, empty string, slice or map.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Invalid | Value::Nil => false,
            Value::Bool(b) => *b,
            Value::Int(i) | Value::Int64(i) => *i != 0,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) | Value::Strings(l) => !l.is_empty(),
            Value::Map(m) => !m.borrow().is_empty(),
            Value::Obj(o) => match &**o {
                Obj::StrMap(m) => !m.is_empty(),
                Obj::Files(f) => !f.is_empty(),
                Obj::VersionSet(v) => !v.is_empty(),
                Obj::Bytes(b) => !b.is_empty(),
                _ => true,
            },
        }
    }

    /// Go's `reflect.Kind` name (sprig's `kindOf`).
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Invalid | Value::Nil => "invalid",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Int64(_) => "int64",
            Value::Float(_) => "float64",
            Value::Str(_) => "string",
            Value::List(_) | Value::Strings(_) => "slice",
            Value::Map(_) => "map",
            Value::Obj(o) => match &**o {
                Obj::Struct(s) if s.pointer => "ptr",
                Obj::Struct(_) | Obj::Time(_) => "struct",
                Obj::StrMap(_) | Obj::Files(_) => "map",
                Obj::VersionSet(_) | Obj::Bytes(_) => "slice",
                Obj::Semver(_) => "ptr",
            },
        }
    }

    /// Go's type name as `%T` prints it (sprig's `typeOf`).
    pub fn type_name(&self) -> String {
        match self {
            Value::Invalid | Value::Nil => "<nil>".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) => "int".into(),
            Value::Int64(_) => "int64".into(),
            Value::Float(_) => "float64".into(),
            Value::Str(_) => "string".into(),
            Value::List(_) => "[]interface {}".into(),
            Value::Strings(_) => "[]string".into(),
            Value::Map(_) => "map[string]interface {}".into(),
            Value::Obj(o) => match &**o {
                Obj::Struct(s) if s.pointer => format!("*{}", s.ty),
                Obj::Struct(s) => s.ty.into(),
                Obj::StrMap(_) => "map[string]string".into(),
                Obj::Files(_) => "engine.files".into(),
                Obj::VersionSet(_) => "chartutil.VersionSet".into(),
                Obj::Bytes(_) => "[]uint8".into(),
                Obj::Semver(_) => "*semver.Version".into(),
                Obj::Time(_) => "time.Time".into(),
            },
        }
    }

    /// A map's entry, for code that walks maps (`None` when not a map or no such key).
    pub fn get(&self, key: &str) -> Option<Value> {
        match self {
            Value::Map(m) => m.borrow().get(key).cloned(),
            _ => None,
        }
    }

    /// A copy sharing nothing mutable with the original (sprig's `deepCopy`, Helm's copies of
    /// chart values).
    pub fn deep_copy(&self) -> Value {
        match self {
            Value::Map(m) => {
                let copy: BTreeMap<Key, Value> = m.borrow().iter().map(|(k, v)| (k.clone(), v.deep_copy())).collect();
                Value::map_from(copy)
            }
            Value::List(l) => Value::list(l.iter().map(Value::deep_copy).collect()),
            v => v.clone(),
        }
    }
}

impl Struct {
    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// Builds a `map[string]interface{}` from pairs.
pub fn map_of(pairs: Vec<(&str, Value)>) -> Value {
    Value::map_from(pairs.into_iter().map(|(k, v)| (Key::from(k), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truth_follows_go() {
        assert!(!Value::Int(0).truthy());
        assert!(Value::Float(0.5).truthy());
        assert!(!Value::str("").truthy());
        assert!(!Value::new_map().truthy());
        assert!(!Value::Invalid.truthy());
        assert!(Value::list(vec![Value::Nil]).truthy());
    }

    #[test]
    fn maps_are_shared_and_deep_copies_are_not() {
        let m = Value::new_map();
        let alias = m.clone();
        if let Value::Map(inner) = &m {
            inner.borrow_mut().insert("a".into(), Value::Int(1));
        }
        assert!(alias.get("a").is_some());
        let copy = m.deep_copy();
        if let Value::Map(inner) = &m {
            inner.borrow_mut().insert("b".into(), Value::Int(2));
        }
        assert!(copy.get("b").is_none());
    }
}
