//! What an image set selects of a catalog: packages, channels, bundles. Pure data.

use std::collections::{BTreeMap, BTreeSet};

use super::{Bundle, Catalog};

/// What one catalog entry of an image set selects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// The catalog is taken whole (`full: true` without packages): it is not rebuilt.
    pub whole: bool,
    /// Selected packages by name.
    pub packages: BTreeMap<String, PackageSelection>,
    /// Things worth telling the user (out-of-range bundles kept to keep a chain whole, dropped channels).
    pub warnings: Vec<String>,
    /// Bundles (package, name) added because selected bundles require them.
    pub dependencies: BTreeSet<(String, String)>,
}

/// What is kept of a package.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackageSelection {
    /// Default channel of the filtered package.
    pub default_channel: Option<String>,
    /// Kept channels and the names of their kept entries, in catalog order.
    pub channels: BTreeMap<String, Vec<String>>,
    /// Kept bundle names.
    pub bundles: BTreeSet<String>,
}

impl Selection {
    /// The kept bundles, sorted by package then name.
    pub fn bundles<'c>(&self, cat: &'c Catalog) -> Vec<&'c Bundle> {
        let mut out: Vec<&Bundle> = cat
            .bundles
            .iter()
            .filter(|b| self.whole || self.packages.get(&b.package).is_some_and(|p| p.bundles.contains(&b.name)))
            .collect();
        out.sort_by(|a, b| (&a.package, &a.name).cmp(&(&b.package, &b.name)));
        out
    }
}

/// Why a selection failed, naming the image-set field it comes from.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct FilterError {
    /// Field path, e.g. `mirror.operators[0].packages[1]`.
    pub field: String,
    /// oc-mirror's wording where it has one.
    pub message: String,
}
