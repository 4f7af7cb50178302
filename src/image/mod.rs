//! Image references and their oc-mirror naming. Pure.

pub mod manifest;
pub mod reference;

pub use reference::{ImageRef, RefError, Transport};
