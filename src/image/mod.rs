//! Image references and their oc-mirror naming. Pure.

mod kind;
pub mod manifest;
mod platform;
pub mod reference;

pub use kind::ImageKind;
pub use platform::PlatformSelector;
pub use reference::{ImageRef, RefError, Transport};
