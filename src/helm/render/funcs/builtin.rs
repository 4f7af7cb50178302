//! Go's `and`, `or` (short-circuiting, carried out by the executor) and `call`.

use super::{Imp, P, Row};

pub const FUNCS: &[Row] = &[
    ("and", &[P::Val], Some(P::Val), Imp::And),
    ("or", &[P::Val], Some(P::Val), Imp::Or),
    ("call", &[P::Val], Some(P::Val), Imp::Pure(|_, _| Err("call of nil".into()))),
];
