//! oc-mirror v2's `mirror:` / `delete:` schema, field for field, so a user's existing block
//! pastes into `spec.mirror` unchanged. Pure data: no I/O.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Semantic version as oc-mirror accepts it (Masterminds semver: optional `v`, optional
/// minor/patch), with semver's rules for identifiers: no leading zeros in numbers, pre-release
/// and build identifiers of `[0-9A-Za-z-]`. Version numbers have at most 19 digits, so that
/// every one fits the 64 bits oc-mirror and the operator compare them in.
pub const SEMVER_PATTERN: &str = r"^v?(0|[1-9][0-9]{0,18})(\.(0|[1-9][0-9]{0,18}))?(\.(0|[1-9][0-9]{0,18}))?(-(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)(\.(0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*)?(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$";
/// Destination path components (oc-mirror's targetRepo / targetCatalog rule).
pub const PATH_PATTERN: &str = r"^[a-z0-9]+((?:[._]|__|[-]*)[a-z0-9]+)*(/[a-z0-9]+((?:[._]|__|[-]*)[a-z0-9]+)*)*$";
/// A destination tag (targetTag): what a registry accepts as a tag.
pub const TAG_PATTERN: &str = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$";
/// An image reference as the operator parses it (`image::ImageRef::parse`), with no spaces
/// around it: `oci://` and a path, or an optional `docker://`, then `registry/path` (the part
/// before the first `/` is the registry: letters, digits, `.`, `-`, `:`, `[`, `]`; the path is
/// lowercase components) or a single lowercase component, then a tag, a digest
/// (`sha256:` and 64 lowercase hex digits, or `sha512:` and 128), or both. The syntax is Go's
/// (RE2) and Rust's alike, and `\s\v\x{85}\p{Z}` is Unicode's whitespace in both.
pub const REFERENCE_PATTERN: &str = r"^(oci://[\s\S]*[^\s\v\x{85}\p{Z}]|(docker://)?([A-Za-z0-9.:\[\]-]*/[a-z0-9._-]+(/[a-z0-9._-]+)*|[a-z0-9._-]+)(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}(@(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}))?|@(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})))$";
/// What a reference must look like, for messages.
pub const REFERENCE_SYNTAX: &str = "an image reference with a tag or a digest, without spaces around it: [docker://]registry/path:tag, registry/path@sha256:<64 lowercase hex digits> (or sha512:<128>), registry/path:tag@digest, or oci://<path>; the path is lowercase";

/// The CEL rule of a reference field: the whole of [`REFERENCE_PATTERN`], with a message
/// saying what is expected (affordable on fields with few values: a catalog, a release).
fn reference_rule(field: &str) -> kube::core::Rule {
    kube::core::Rule::new(format!("self.matches(r'{REFERENCE_PATTERN}')"))
        .message(kube::core::Message::Message(format!("{field} must be {REFERENCE_SYNTAX}")))
}

/// The CEL rule of a list of platforms: os and architecture must not be blank (whitespace
/// alone, in Unicode's sense, is blank: CEL's `trim()` and Rust's `trim()` agree on it).
fn platforms_rule() -> kube::core::Rule {
    kube::core::Rule::new("self.all(p, p.os.trim() != '' && p.architecture.trim() != '')")
        .message("each platform needs an os and an architecture that are not blank")
}

/// The CEL rule of a name that must not be blank.
fn not_blank_rule(field: &str) -> kube::core::Rule {
    kube::core::Rule::new("self.trim() != ''")
        .message(kube::core::Message::Message(format!("{field} must not be blank")))
}

/// What to mirror: the `mirror:` block of an oc-mirror ImageSetConfiguration.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Mirror {
    /// OpenShift releases, resolved from the Cincinnati update graph.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Operator catalogs and the packages to take from them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.catalog == a.catalog && (has(b.targetCatalog) ? b.targetCatalog : '') == (has(a.targetCatalog) ? a.targetCatalog : '') && (has(b.targetTag) ? b.targetTag : '') == (has(a.targetTag) ? a.targetTag : '')))").message("duplicate catalog entry: each catalog (with its targetCatalog and targetTag) may appear once"))]
    #[schemars(length(max = 32))]
    pub operators: Vec<Operator>,
    /// Extra images, by tag or digest (up to 10,000: real mirrors are thousands of images).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000))]
    pub additional_images: Vec<AdditionalImage>,
    /// Helm charts whose images are mirrored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<Helm>,
    /// Images never mirrored: each name is a regular expression matched anywhere in the reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub blocked_images: Vec<BlockedImage>,
    /// Declared by oc-mirror and accepted for compatibility; oc-mirror does not implement it either.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<SampleImage>,
}

/// Platform releases.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.architectures) && size(self.architectures) > 0 && has(self.platforms) && size(self.platforms) > 0)").message("platform.platforms and platform.architectures cannot be used together; use platform.platforms"))]
pub struct Platform {
    /// Build and mirror the Cincinnati graph-data image and produce an UpdateService.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub graph: bool,
    /// Release channels to take versions from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub channels: Vec<ReleaseChannel>,
    /// Deprecated: architectures used verbatim as Cincinnati `arch` (amd64 when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<Architecture>,
    /// Platforms to keep: the multi payload is queried and every image copied as a sparse index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = platforms_rule())]
    pub platforms: Vec<PlatformSelector>,
    /// One explicit release payload (tag or digest); channels are then ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    #[x_kube(validation = reference_rule("release"))]
    pub release: Option<String>,
    /// Also mirror the KubeVirt container-disk images named by the payload.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub kube_virt_container: bool,
}

/// A Cincinnati architecture value.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    /// x86_64
    Amd64,
    /// aarch64
    Arm64,
    /// POWER little-endian
    Ppc64le,
    /// IBM Z
    S390x,
    /// The multi-architecture payload
    Multi,
}

pub use crate::image::PlatformSelector;

/// The release type of a channel.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseType {
    /// OpenShift Container Platform (the default).
    #[default]
    Ocp,
    /// OKD.
    Okd,
}

/// A release channel and the versions to take from it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseChannel {
    /// Channel name, e.g. stable-4.18.
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = not_blank_rule("name"))]
    pub name: String,
    /// ocp (default) or okd.
    #[serde(default, rename = "type", skip_serializing_if = "is_default")]
    pub release_type: ReleaseType,
    /// Lowest version to take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SEMVER_PATTERN))]
    pub min_version: Option<String>,
    /// Highest version to take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SEMVER_PATTERN))]
    pub max_version: Option<String>,
    /// Take only the shortest upgrade path from minVersion to maxVersion.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shortest_path: bool,
    /// Take every version of the channel instead of its head.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
}

/// An operator catalog and what to take from it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.full) && self.full && has(self.packages) && self.packages.exists(p, has(p.minVersion) || has(p.maxVersion) || (has(p.channels) && p.channels.exists(c, has(c.minVersion) || has(c.maxVersion)))))").message("Full: true cannot be mixed with versionRange (minVersion/maxVersion in packages or channels)"))]
pub struct Operator {
    /// Catalog image (`registry/ns/name:tag`, `...@sha256:...`) or `oci:///abs/path`.
    #[schemars(length(min = 1, max = 256))]
    #[x_kube(validation = reference_rule("catalog"))]
    pub catalog: String,
    /// Destination repository path for the catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PATH_PATTERN), length(max = 255))]
    pub target_catalog: Option<String>,
    /// Destination tag for the catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = TAG_PATTERN), length(max = 128))]
    pub target_tag: Option<String>,
    /// Without packages: the whole catalog unfiltered. With packages: all bundles of the selected channels.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub full: bool,
    /// Accepted for compatibility; oc-mirror v2 ignores it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_dependencies: bool,
    /// Not in oc-mirror: also take from this catalog what the selected bundles require, and
    /// what that requires in turn. For `olm.package.required`, the highest version in the
    /// range from the package's default channel (else any channel); for `olm.gvk.required`, the
    /// head of the default channel of a package providing the API (else the highest version
    /// providing it). Added bundles come with the channel entries that keep the rebuilt catalog
    /// valid. A requirement the catalog cannot meet is a warning. Off by default.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub include_dependencies: bool,
    /// CatalogSource template (a file path for the CLI, a ConfigMap key for the controller).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub target_catalog_source_template: Option<String>,
    /// Copy every image of this catalog as a sparse index with only these platforms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = platforms_rule())]
    pub platforms: Vec<PlatformSelector>,
    /// Packages to take (all packages when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub packages: Vec<IncludePackage>,
}

/// A package of a catalog.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!((has(self.minVersion) || has(self.maxVersion)) && has(self.channels) && self.channels.exists(c, has(c.minVersion) || has(c.maxVersion)))").message("mixing both filtering by minVersion/maxVersion and filtering by channel minVersion/maxVersion is not allowed"))]
#[x_kube(validation = Rule::new("!(has(self.bundles) && size(self.bundles) > 0 && ((has(self.channels) && size(self.channels) > 0) || has(self.minVersion) || has(self.maxVersion)))").message("bundles cannot be combined with channels or minVersion/maxVersion"))]
pub struct IncludePackage {
    /// Package name.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = not_blank_rule("name"))]
    pub name: String,
    /// Channels to take (all channels when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub channels: Vec<IncludeChannel>,
    /// Default channel of the filtered package, when the original one is filtered out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_channel: Option<String>,
    /// Lowest bundle version, across the package's channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SEMVER_PATTERN))]
    pub min_version: Option<String>,
    /// Highest bundle version, across the package's channels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SEMVER_PATTERN))]
    pub max_version: Option<String>,
    /// Bundles selected by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub bundles: Vec<IncludeBundle>,
}

/// A channel of a package.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IncludeChannel {
    /// Channel name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Lowest bundle version in this channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SEMVER_PATTERN))]
    pub min_version: Option<String>,
    /// Highest bundle version in this channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = SEMVER_PATTERN))]
    pub max_version: Option<String>,
}

/// A bundle selected by name.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IncludeBundle {
    /// Bundle name, e.g. foo.v0.3.1.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// An additional image.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
// The whole syntax is the schema's pattern (a CEL regular expression over 10,000 names of up to
// 256 characters would exceed the apiserver's cost estimate); these two cheap rules say in
// words what is wrong in the commonest mistakes, beside the pattern's own error.
#[x_kube(validation = Rule::new("self.name.startsWith('oci://') || self.name.contains('@') || self.name.matches(':[^/]+$')").message("name must have a tag or a digest").field_path(".name"))]
#[x_kube(validation = Rule::new("self.name.startsWith('oci://') || !self.name.contains('@') || size(self.name) - self.name.indexOf('@') == 72 || size(self.name) - self.name.indexOf('@') == 136").message("the digest after @ must be sha256: and 64 lowercase hex digits, or sha512: and 128").field_path(".name"))]
pub struct AdditionalImage {
    /// Image reference with a tag or digest (`docker://` implied), or `oci://` layout.
    #[schemars(regex(pattern = REFERENCE_PATTERN), length(min = 1, max = 256))]
    pub name: String,
    /// Destination repository path override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = PATH_PATTERN), length(max = 255))]
    pub target_repo: Option<String>,
    /// Destination tag override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = TAG_PATTERN), length(max = 128))]
    pub target_tag: Option<String>,
    /// Copy as a sparse index with only these platforms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = platforms_rule())]
    pub platforms: Vec<PlatformSelector>,
}

/// A blocked image pattern.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlockedImage {
    /// Regular expression, matched unanchored against source and destination references.
    // CEL cannot ask whether a string is a regular expression, but matching with an invalid
    // one is an evaluation error, which the apiserver reports as a refusal of this field with
    // Go's parse error and this message: the same check oc-mirror makes (Go's regexp).
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new("''.matches(self) || !''.matches(self)").message("name must be a valid regular expression (Go RE2 syntax, as oc-mirror reads it)"))]
    pub name: String,
}

/// A samples entry (accepted, unused, as in oc-mirror).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SampleImage {
    /// Sample name.
    pub name: String,
}

/// Helm charts.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Helm {
    /// Chart repositories.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<HelmRepository>,
    /// Local chart archives.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub local: Vec<HelmChart>,
}

/// A chart repository.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HelmRepository {
    /// Repository name.
    pub name: String,
    /// Repository URL (its index.yaml is read).
    pub url: String,
    /// Charts to take (every non-library chart when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub charts: Vec<HelmChart>,
}

/// A chart.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HelmChart {
    /// Chart name.
    pub name: String,
    /// Chart version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Path of a local chart archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Extra JSONPath templates locating images in rendered manifests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_paths: Vec<String>,
    /// Copy the chart's images as sparse indexes with only these platforms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub platforms: Vec<PlatformSelector>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// What to delete: the `delete:` block of an oc-mirror DeleteImageSetConfiguration.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Delete {
    /// Releases to delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Operators to delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, b.catalog == a.catalog && (has(b.targetCatalog) ? b.targetCatalog : '') == (has(a.targetCatalog) ? a.targetCatalog : '') && (has(b.targetTag) ? b.targetTag : '') == (has(a.targetTag) ? a.targetTag : '')))").message("duplicate catalog entry: each catalog (with its targetCatalog and targetTag) may appear once"))]
    #[schemars(length(max = 32))]
    pub operators: Vec<Operator>,
    /// Additional images to delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10000))]
    pub additional_images: Vec<AdditionalImage>,
    /// Helm chart images to delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<Helm>,
    /// Accepted for compatibility.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<SampleImage>,
}
