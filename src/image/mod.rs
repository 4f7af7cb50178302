//! Image references and their oc-mirror naming. Pure.

mod kind;
pub mod manifest;
mod platform;
pub mod reference;

pub use kind::ImageKind;
pub use platform::PlatformSelector;
pub use reference::{ImageRef, RefError, Transport};

/// The registry name oc-mirror gives its local cache (`localhost:55000`): images named under it
/// are in the cache, not in any registry.
pub const DISK_ROOT: &str = "localhost:55000";
