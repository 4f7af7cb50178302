//! The functions templates may call: Go's builtins, sprig v3.3 and Helm's own, each with the Go
//! signature that decides how arguments are checked (`contains` takes two strings; an `int64`
//! is not an `int`). Every name Helm defines is known to the parser, as in Go, where a call to
//! an unknown function is a parse error.

mod builtin;
mod conv;
mod crypto;
mod dicts;
mod helm;
mod lists;
mod strings;
mod time;

use std::collections::HashMap;
use std::sync::OnceLock;

pub use conv::{strval, to_int64};
pub use helm::clean as path_clean;
pub use time::{time_format, time_rfc3339, time_string, time_year};

use super::value::Value;

/// A parameter type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum P {
    /// `interface{}`.
    Any,
    /// `reflect.Value` (builtins that see the value unconverted).
    Val,
    /// `string`.
    Str,
    /// `int`.
    Int,
    /// `float64`.
    F64,
    /// `bool`.
    Bool,
    /// `map[string]interface{}`.
    Map,
    /// `[]interface{}`.
    List,
}

impl P {
    /// The Go type name, for error messages.
    pub fn go(self) -> &'static str {
        match self {
            P::Any => "interface {}",
            P::Val => "reflect.Value",
            P::Str => "string",
            P::Int => "int",
            P::F64 => "float64",
            P::Bool => "bool",
            P::Map => "map[string]interface {}",
            P::List => "[]interface {}",
        }
    }
}

/// State functions may use: a deterministic random source.
pub struct Env {
    rng: u64,
}

impl Default for Env {
    fn default() -> Self {
        Env { rng: 0x9E37_79B9_7F4A_7C15 }
    }
}

impl Env {
    /// The next pseudo-random number (xorshift64*): random names differ per call, not per run.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// A pure function.
pub type PureFn = fn(&mut Env, &[Value]) -> Result<Value, String>;

/// How a function is carried out.
#[derive(Clone, Copy)]
pub enum Imp {
    /// Computed from its arguments.
    Pure(PureFn),
    /// `and`/`or`: short-circuit, evaluated by the executor.
    And,
    Or,
    /// Helm's `include`.
    Include,
    /// Helm's `tpl`.
    Tpl,
}

/// A function: its Go signature and implementation.
pub struct Func {
    pub name: &'static str,
    pub params: &'static [P],
    pub variadic: Option<P>,
    pub imp: Imp,
}

impl std::fmt::Debug for Func {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// The function named `name`, if Helm defines it.
pub fn lookup(name: &str) -> Option<&'static Func> {
    static TABLE: OnceLock<HashMap<&'static str, Func>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let mut m = HashMap::new();
            for (name, params, variadic, imp) in builtin::FUNCS
                .iter()
                .chain(strings::FUNCS)
                .chain(conv::FUNCS)
                .chain(lists::FUNCS)
                .chain(dicts::FUNCS)
                .chain(crypto::FUNCS)
                .chain(time::FUNCS)
                .chain(helm::FUNCS)
            {
                m.insert(*name, Func { name, params, variadic: *variadic, imp: *imp });
            }
            m
        })
        .get(name)
}

/// A table row: name, fixed parameters, variadic parameter, implementation.
pub type Row = (&'static str, &'static [P], Option<P>, Imp);

/// Helm's marker around `fail` and `required` messages, which it extracts from the error.
pub fn warn_wrap(msg: &str) -> String {
    format!("HELM_ERR_START{msg}HELM_ERR_END")
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) | Value::Int64(i) => *i,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_the_charts_use_is_known() {
        for name in [
            "include",
            "tpl",
            "required",
            "fail",
            "toYaml",
            "fromYaml",
            "toJson",
            "default",
            "dict",
            "list",
            "merge",
            "mergeOverwrite",
            "semverCompare",
            "lookup",
            "printf",
            "index",
            "and",
            "or",
            "not",
            "eq",
            "trunc",
            "trimSuffix",
            "nindent",
            "quote",
            "hasKey",
            "dig",
            "ternary",
            "sha256sum",
            "randAlphaNum",
            "b64enc",
            "mustUniq",
            "mustRegexReplaceAllLiteral",
            "fromYamlArray",
            "kindIs",
            "typeIs",
            "concat",
            "uniq",
            "sortAlpha",
            "keys",
            "omit",
            "pick",
            "get",
            "set",
            "unset",
            "append",
            "has",
            "without",
            "first",
            "last",
            "compact",
            "splitList",
            "split",
            "join",
            "empty",
            "coalesce",
            "toString",
            "int",
            "int64",
            "float64",
            "atoi",
            "add",
            "sub",
            "mul",
            "div",
            "mod",
            "max",
            "min",
            "until",
            "cat",
            "now",
            "date",
            "shuffle",
            "substr",
            "slice",
            "len",
            "print",
            "println",
            "urlquery",
            "html",
            "js",
        ] {
            assert!(lookup(name).is_some(), "{name} missing");
        }
        assert!(lookup("env").is_none(), "Helm removes env");
        assert!(lookup("expandenv").is_none(), "Helm removes expandenv");
    }
}
