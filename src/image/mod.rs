//! Image references and their oc-mirror naming. Pure.

mod kind;
pub mod manifest;
pub mod reference;

pub use kind::ImageKind;
pub use reference::{ImageRef, RefError, Transport};
