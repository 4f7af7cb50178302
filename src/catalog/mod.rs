//! File-based catalogs (FBC): reading every layout real catalogs use, selecting bundles as
//! oc-mirror does, and writing the filtered catalog back out. Pure, apart from `load_dir`.
//!
//! A catalog keeps the bytes of its files and, per blob, only what selection needs (names,
//! channel edges, versions, images). Filtered blobs are re-read from those bytes when written,
//! so memory stays close to the catalog's size.

pub mod channel;
mod deps;
pub mod filter;
pub mod image;
mod parse;
pub mod prune;
pub mod selection;
pub mod upgrades;
pub mod version;
pub mod write;

use std::collections::HashMap;
use std::path::Path;

pub use filter::select;
pub use parse::yaml_options;
pub use selection::{FilterError, Selection};

/// Where a blob's text lives: a file of the catalog and a byte range in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// Index into the catalog's files.
    pub file: u32,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// A file of the catalog, as read.
#[derive(Debug)]
pub struct SourceFile {
    /// Path relative to the catalog root.
    pub path: String,
    /// Whether the file is YAML (else a JSON stream).
    pub yaml: bool,
    /// The file's bytes.
    pub bytes: Vec<u8>,
}

/// An `olm.package` blob.
#[derive(Clone, Debug, PartialEq)]
pub struct Package {
    /// Package name.
    pub name: String,
    /// Default channel, if any.
    pub default_channel: Option<String>,
    /// Where the blob is.
    pub span: Span,
}

/// An entry of a channel: a bundle name and its upgrade edges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    /// Bundle name.
    pub name: String,
    /// The bundle it replaces.
    pub replaces: Option<String>,
    /// Bundles it skips.
    pub skips: Vec<String>,
    /// Versions it skips (not used for selection, as in oc-mirror).
    pub skip_range: Option<String>,
}

/// An `olm.channel` blob.
#[derive(Clone, Debug, PartialEq)]
pub struct Channel {
    /// Package name.
    pub package: String,
    /// Channel name.
    pub name: String,
    /// Entries in file order.
    pub entries: Vec<Entry>,
    /// Where the blob is.
    pub span: Span,
}

/// An image a bundle refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelatedImage {
    /// Optional name of the image in the bundle.
    pub name: String,
    /// Image reference.
    pub image: String,
}

/// A dependency a bundle declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    /// `olm.package.required`: a package within a version range.
    Package {
        /// Package name.
        name: String,
        /// Masterminds-style range.
        range: String,
    },
    /// `olm.gvk.required`: some package must provide this group/version/kind.
    Gvk(Gvk),
}

/// A group/version/kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gvk {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Kind.
    pub kind: String,
}

/// An `olm.bundle` blob.
#[derive(Clone, Debug, PartialEq)]
pub struct Bundle {
    /// Package name.
    pub package: String,
    /// Bundle name (usually the CSV name).
    pub name: String,
    /// Bundle image.
    pub image: String,
    /// Version from the `olm.package` property, as written.
    pub version: Option<String>,
    /// Related images.
    pub related_images: Vec<RelatedImage>,
    /// What the bundle needs from other packages.
    pub requires: Vec<Requirement>,
    /// APIs the bundle provides (`olm.gvk`).
    pub provides: Vec<Gvk>,
    /// Where the blob is.
    pub span: Span,
}

/// An `olm.deprecations` blob.
#[derive(Clone, Debug, PartialEq)]
pub struct Deprecation {
    /// Package name.
    pub package: String,
    /// Where the blob is.
    pub span: Span,
}

/// A blob of another schema.
#[derive(Clone, Debug, PartialEq)]
pub struct Other {
    /// Its schema.
    pub schema: String,
    /// Package it belongs to ("" for none).
    pub package: String,
    /// Where the blob is.
    pub span: Span,
}

/// A file-based catalog.
#[derive(Debug, Default)]
pub struct Catalog {
    /// The files the blobs come from.
    pub files: Vec<SourceFile>,
    /// `olm.package` blobs.
    pub packages: Vec<Package>,
    /// `olm.channel` blobs.
    pub channels: Vec<Channel>,
    /// `olm.bundle` blobs.
    pub bundles: Vec<Bundle>,
    /// `olm.deprecations` blobs.
    pub deprecations: Vec<Deprecation>,
    /// Blobs of any other schema.
    pub others: Vec<Other>,
}

/// Why a catalog could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// A file could not be read.
    #[error("read {path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// OS error.
        source: std::io::Error,
    },
    /// A blob could not be parsed.
    #[error("{path}: {message}")]
    Parse {
        /// File path (relative to the catalog root), with line when known.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The catalog has no blobs.
    #[error("no file-based catalog content found under {0}")]
    Empty(String),
    /// Two blobs define the same thing.
    #[error("duplicate {0}")]
    Duplicate(String),
}

impl Catalog {
    /// Builds a catalog from files (relative path, bytes). Files other than `.json`, `.yaml`
    /// and `.yml` are ignored, as opm does.
    pub fn from_files(files: Vec<(String, Vec<u8>)>) -> Result<Catalog, CatalogError> {
        let files: Vec<SourceFile> = files
            .into_iter()
            .filter_map(|(path, bytes)| {
                let lower = path.to_ascii_lowercase();
                let yaml = lower.ends_with(".yaml") || lower.ends_with(".yml");
                (yaml || lower.ends_with(".json")).then_some(SourceFile { path, yaml, bytes })
            })
            .collect();
        let blobs = parse::parse_files(&files)?;
        let mut cat = Catalog { files, ..Default::default() };
        for blob in blobs {
            cat.add(blob)?;
        }
        cat.check()?;
        Ok(cat)
    }

    /// Reads every catalog file under `root` (any layout: one file per package, split
    /// `package.yaml` + `channels/` + `bundles/`, or a single stream).
    pub fn load_dir(root: &Path) -> Result<Catalog, CatalogError> {
        let mut files = Vec::new();
        walk(root, root, &mut files)?;
        files.sort_by(|a, b| a.0.cmp(&b.0));
        if files.is_empty() {
            return Err(CatalogError::Empty(root.display().to_string()));
        }
        let cat = Catalog::from_files(files)?;
        if cat.packages.is_empty() && cat.bundles.is_empty() && cat.channels.is_empty() {
            return Err(CatalogError::Empty(root.display().to_string()));
        }
        Ok(cat)
    }

    /// The text of a blob.
    pub fn text(&self, span: Span) -> &[u8] {
        &self.files[span.file as usize].bytes[span.start..span.end]
    }

    /// Whether a blob came from a YAML file.
    pub fn is_yaml(&self, span: Span) -> bool {
        self.files[span.file as usize].yaml
    }

    /// Where a blob is, for messages: `path:line`.
    pub fn locate(&self, span: Span) -> String {
        let f = &self.files[span.file as usize];
        let line = f.bytes[..span.start].iter().filter(|b| **b == b'\n').count() + 1;
        format!("{}:{line}", f.path)
    }

    /// Package by name.
    pub fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name == name)
    }

    /// Bundles by (package, name).
    pub fn bundle_index(&self) -> HashMap<(&str, &str), &Bundle> {
        self.bundles.iter().map(|b| ((b.package.as_str(), b.name.as_str()), b)).collect()
    }

    fn add(&mut self, blob: parse::Blob) -> Result<(), CatalogError> {
        let parse::Blob { meta, span } = blob;
        let need = |what: &str, v: &str| -> Result<(), CatalogError> {
            if v.is_empty() {
                return Err(CatalogError::Parse {
                    path: self.locate(span),
                    message: format!("{} blob has no {what}", meta.schema),
                });
            }
            Ok(())
        };
        match meta.schema.as_str() {
            "olm.package" => {
                need("name", &meta.name)?;
                self.packages.push(Package { name: meta.name, default_channel: meta.default_channel, span });
            }
            "olm.channel" => {
                need("package", &meta.package)?;
                need("name", &meta.name)?;
                let entries = meta
                    .entries
                    .into_iter()
                    .map(|e| Entry { name: e.name, replaces: e.replaces, skips: e.skips, skip_range: e.skip_range })
                    .collect();
                self.channels.push(Channel { package: meta.package, name: meta.name, entries, span });
            }
            "olm.bundle" => {
                need("package", &meta.package)?;
                need("name", &meta.name)?;
                let mut b = Bundle {
                    package: meta.package,
                    name: meta.name,
                    image: meta.image,
                    version: None,
                    related_images: meta
                        .related_images
                        .into_iter()
                        .map(|r| RelatedImage { name: r.name, image: r.image })
                        .collect(),
                    requires: Vec::new(),
                    provides: Vec::new(),
                    span,
                };
                for p in meta.properties {
                    let v = p.value;
                    match p.kind.as_str() {
                        "olm.package" => b.version = v.version,
                        "olm.package.required" => b.requires.push(Requirement::Package {
                            name: v.package_name.unwrap_or_default(),
                            range: v.version_range.unwrap_or_default(),
                        }),
                        "olm.gvk" => b.provides.push(v.gvk()),
                        "olm.gvk.required" => b.requires.push(Requirement::Gvk(v.gvk())),
                        _ => {}
                    }
                }
                self.bundles.push(b);
            }
            "olm.deprecations" => {
                need("package", &meta.package)?;
                self.deprecations.push(Deprecation { package: meta.package, span });
            }
            "" => {
                return Err(CatalogError::Parse { path: self.locate(span), message: "blob has no schema".into() });
            }
            _ => self.others.push(Other { schema: meta.schema, package: meta.package, span }),
        }
        Ok(())
    }

    /// opm's load-time checks that selection relies on: unique packages, channels, bundles.
    fn check(&self) -> Result<(), CatalogError> {
        let mut seen = std::collections::HashSet::new();
        for p in &self.packages {
            if !seen.insert(("package", p.name.as_str(), "")) {
                return Err(CatalogError::Duplicate(format!("package {:?} ({})", p.name, self.locate(p.span))));
            }
        }
        for c in &self.channels {
            if !seen.insert(("channel", c.package.as_str(), c.name.as_str())) {
                return Err(CatalogError::Duplicate(format!(
                    "channel {:?} of package {:?} ({})",
                    c.name,
                    c.package,
                    self.locate(c.span)
                )));
            }
        }
        for b in &self.bundles {
            if !seen.insert(("bundle", b.package.as_str(), b.name.as_str())) {
                return Err(CatalogError::Duplicate(format!(
                    "bundle {:?} of package {:?} ({})",
                    b.name,
                    b.package,
                    self.locate(b.span)
                )));
            }
        }
        Ok(())
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), CatalogError> {
    let io = |path: &Path, source| CatalogError::Io { path: path.display().to_string(), source };
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).map_err(|e| io(dir, e))?.collect::<Result<_, _>>().map_err(|e| io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name();
        // Hidden files and opm's ignore file are never catalog content.
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let ft = std::fs::metadata(&path).map_err(|e| io(&path, e))?;
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().into_owned();
            let lower = rel.to_ascii_lowercase();
            if lower.ends_with(".json") || lower.ends_with(".yaml") || lower.ends_with(".yml") {
                out.push((rel, std::fs::read(&path).map_err(|e| io(&path, e))?));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod deps_tests;
#[cfg(test)]
mod tests;
