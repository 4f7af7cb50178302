//! Step 0 of the pipeline: the checks oc-mirror makes on a configuration (and the CRDs' CEL
//! rules make at admission), each naming the field. Pure.

use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use super::duration::parse_duration;
use super::isc::ImageSetConfigurationSpec;
use super::mirror::{
    AdditionalImage, Delete, IncludePackage, Mirror, Operator, PATH_PATTERN, Platform, PlatformSelector,
};
use crate::image::ImageRef;

/// One invalid field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// JSON path of the field, e.g. `spec.mirror.operators[0].packages[1].minVersion`.
    pub path: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// All invalid fields of a configuration, in document order.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct InvalidConfig(pub Vec<FieldError>);

impl fmt::Display for InvalidConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(f, "invalid configuration: {}", parts.join("; "))
    }
}

/// Parses a version as oc-mirror does (Masterminds semver: `v` prefix and missing parts allowed).
pub fn parse_version(v: &str) -> Option<semver::Version> {
    let s = v.strip_prefix('v').unwrap_or(v);
    let split = s.find(['-', '+']).unwrap_or(s.len());
    let (core, rest) = s.split_at(split);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut full = parts.join(".");
    for _ in parts.len()..3 {
        full.push_str(".0");
    }
    semver::Version::parse(&format!("{full}{rest}")).ok()
}

/// oc-mirror's repository-path rule, compiled once.
static PATH_RE: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new(PATH_PATTERN).expect("static pattern"));

/// Whether `s` is a destination repository path (oc-mirror's `targetRepo` rule).
pub fn is_path(s: &str) -> bool {
    PATH_RE.is_match(s)
}

struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError { path: path.into(), message: message.into() });
    }

    fn version_range(&mut self, path: &str, min: &Option<String>, max: &Option<String>) {
        let mut parsed = [None, None];
        for (i, (field, v)) in [("minVersion", min), ("maxVersion", max)].into_iter().enumerate() {
            if let Some(v) = v {
                match parse_version(v) {
                    Some(p) => parsed[i] = Some(p),
                    None => self.err(
                        format!("{path}.{field}"),
                        format!("{field} {v:?} must respect semantic versioning notation"),
                    ),
                }
            }
        }
        if let [Some(lo), Some(hi)] = &parsed
            && lo > hi
        {
            self.err(format!("{path}.minVersion"), format!("minVersion {lo} is greater than maxVersion {hi}"));
        }
    }

    fn platforms(&mut self, path: &str, platforms: &[PlatformSelector]) {
        for (i, p) in platforms.iter().enumerate() {
            if p.os.trim().is_empty() {
                self.err(format!("{path}[{i}].os"), "os must not be empty");
            }
            if p.architecture.trim().is_empty() {
                self.err(format!("{path}[{i}].architecture"), "architecture must not be empty");
            }
        }
    }

    fn platform(&mut self, path: &str, p: &Platform) {
        let Platform { graph: _, channels, architectures, platforms, release, kube_virt_container: _ } = p;
        if !architectures.is_empty() && !platforms.is_empty() {
            self.err(format!("{path}.platforms"), "architectures and platforms are mutually exclusive: use platforms");
        }
        self.platforms(&format!("{path}.platforms"), platforms);
        let mut seen = HashSet::new();
        for (i, c) in channels.iter().enumerate() {
            let cp = format!("{path}.channels[{i}]");
            if c.name.trim().is_empty() {
                self.err(format!("{cp}.name"), "name must not be empty");
            }
            if !seen.insert(c.name.as_str()) {
                self.err(format!("{cp}.name"), format!("duplicate channel entry {:?}", c.name));
            }
            self.version_range(&cp, &c.min_version, &c.max_version);
        }
        if let Some(r) = release
            && let Err(e) = ImageRef::parse(r)
        {
            self.err(format!("{path}.release"), e.to_string());
        }
    }

    fn operator(&mut self, path: &str, op: &Operator) {
        let Operator {
            catalog,
            target_catalog,
            target_tag: _,
            full,
            skip_dependencies: _,
            include_dependencies: _,
            target_catalog_source_template: _,
            platforms,
            packages,
        } = op;
        if let Err(e) = ImageRef::parse(catalog) {
            self.err(format!("{path}.catalog"), e.to_string());
        }
        if let Some(tc) = target_catalog
            && !PATH_RE.is_match(tc)
        {
            self.err(
                format!("{path}.targetCatalog"),
                format!("targetCatalog {tc:?} must be a repository path (lowercase components, no tag or digest)"),
            );
        }
        self.platforms(&format!("{path}.platforms"), platforms);
        let mut seen = HashSet::new();
        for (i, pkg) in packages.iter().enumerate() {
            let pp = format!("{path}.packages[{i}]");
            if !seen.insert(pkg.name.as_str()) {
                self.err(format!("{pp}.name"), format!("duplicate package entry {:?}", pkg.name));
            }
            self.package(&pp, pkg, *full);
        }
    }

    fn package(&mut self, path: &str, pkg: &IncludePackage, full: bool) {
        let IncludePackage { name, channels, default_channel: _, min_version, max_version, bundles } = pkg;
        if name.trim().is_empty() {
            self.err(format!("{path}.name"), "name must not be empty");
        }
        let pkg_range = min_version.is_some() || max_version.is_some();
        let chan_range = channels.iter().any(|c| c.min_version.is_some() || c.max_version.is_some());
        if full && (pkg_range || chan_range) {
            self.err(
                path.to_string(),
                "Full: true cannot be mixed with versionRange (minVersion/maxVersion in packages or channels)",
            );
        }
        if pkg_range && chan_range {
            self.err(
                path.to_string(),
                "mixing both filtering by minVersion/maxVersion and filtering by channel minVersion/maxVersion is not allowed",
            );
        }
        if !bundles.is_empty() && (!channels.is_empty() || pkg_range) {
            self.err(format!("{path}.bundles"), "bundles cannot be combined with channels or minVersion/maxVersion");
        }
        self.version_range(path, min_version, max_version);
        let mut seen = HashSet::new();
        for (i, c) in channels.iter().enumerate() {
            let cp = format!("{path}.channels[{i}]");
            if !seen.insert(c.name.as_str()) {
                self.err(format!("{cp}.name"), format!("duplicate channel entry {:?}", c.name));
            }
            self.version_range(&cp, &c.min_version, &c.max_version);
        }
    }

    fn operators(&mut self, path: &str, ops: &[Operator]) {
        let mut seen = HashSet::new();
        for (i, op) in ops.iter().enumerate() {
            let op_path = format!("{path}[{i}]");
            let key = (op.catalog.as_str(), op.target_catalog.as_deref(), op.target_tag.as_deref());
            if !seen.insert(key) {
                self.err(format!("{op_path}.catalog"), format!("duplicate catalog entry {:?}", op.catalog));
            }
            self.operator(&op_path, op);
        }
    }

    fn additional(&mut self, path: &str, imgs: &[AdditionalImage]) {
        for (i, img) in imgs.iter().enumerate() {
            let ip = format!("{path}[{i}]");
            if let Err(e) = ImageRef::parse(&img.name) {
                self.err(format!("{ip}.name"), e.to_string());
            }
            if let Some(t) = &img.target_repo
                && !PATH_RE.is_match(t)
            {
                self.err(format!("{ip}.targetRepo"), format!("targetRepo {t:?} must be a repository path"));
            }
            self.platforms(&format!("{ip}.platforms"), &img.platforms);
        }
    }
}

/// Validates a `mirror:` block; `path` is where it sits (`mirror` in a file, `spec.mirror` in a CR).
pub fn validate_mirror(path: &str, m: &Mirror) -> Result<(), InvalidConfig> {
    let Mirror { platform, operators, additional_images, helm: _, blocked_images, samples: _ } = m;
    let mut c = Checker { errors: Vec::new() };
    if let Some(p) = platform {
        c.platform(&format!("{path}.platform"), p);
    }
    c.operators(&format!("{path}.operators"), operators);
    c.additional(&format!("{path}.additionalImages"), additional_images);
    for (i, b) in blocked_images.iter().enumerate() {
        if let Err(e) = regex::Regex::new(&b.name) {
            let first = e.to_string().lines().last().unwrap_or_default().trim().to_string();
            c.err(
                format!("{path}.blockedImages[{i}].name"),
                format!("blocked image {:?}: invalid regular expression: {first}", b.name),
            );
        }
    }
    finish(c)
}

/// Validates the spec of an ImageSetConfiguration custom resource: its `mirror:` block (at
/// `spec.mirror`) and the operator's own fields that admission may not have checked (a CRD
/// installed before a rule was added admits values the operator cannot use).
pub fn validate_spec(spec: &ImageSetConfigurationSpec) -> Result<(), InvalidConfig> {
    let mut errors = match validate_mirror("spec.mirror", &spec.mirror) {
        Ok(()) => Vec::new(),
        Err(InvalidConfig(errors)) => errors,
    };
    if let Err(e) = resync_interval(spec) {
        errors.push(e);
    }
    if errors.is_empty() { Ok(()) } else { Err(InvalidConfig(errors)) }
}

/// `spec.resyncInterval`, parsed and bounded (see [`parse_duration`]); `None` when unset.
pub fn resync_interval(spec: &ImageSetConfigurationSpec) -> Result<Option<Duration>, FieldError> {
    spec.resync_interval
        .as_deref()
        .map(parse_duration)
        .transpose()
        .map_err(|e| FieldError { path: "spec.resyncInterval".into(), message: e.to_string() })
}

/// Validates a `delete:` block.
pub fn validate_delete(path: &str, d: &Delete) -> Result<(), InvalidConfig> {
    let Delete { platform, operators, additional_images, helm: _, samples: _ } = d;
    let mut c = Checker { errors: Vec::new() };
    if let Some(p) = platform {
        c.platform(&format!("{path}.platform"), p);
    }
    c.operators(&format!("{path}.operators"), operators);
    c.additional(&format!("{path}.additionalImages"), additional_images);
    finish(c)
}

fn finish(c: Checker) -> Result<(), InvalidConfig> {
    if c.errors.is_empty() { Ok(()) } else { Err(InvalidConfig(c.errors)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(yaml: &str) -> Mirror {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn paths(m: &Mirror) -> Vec<String> {
        validate_mirror("mirror", m).err().map(|e| e.0.into_iter().map(|f| f.path).collect()).unwrap_or_default()
    }

    #[test]
    fn loose_semver_like_oc_mirror() {
        assert_eq!(parse_version("4.18").unwrap().to_string(), "4.18.0");
        assert_eq!(parse_version("v1.2.3-rc.1").unwrap().to_string(), "1.2.3-rc.1");
        assert!(parse_version("abc").is_none());
        assert!(parse_version("1.2.3.4").is_none());
    }

    #[test]
    fn each_rejected_combination_names_its_field() {
        let cases = [
            (
                "platform: {architectures: [amd64], platforms: [{os: linux, architecture: arm64}]}",
                "mirror.platform.platforms",
            ),
            ("platform: {channels: [{name: a}, {name: a}]}", "mirror.platform.channels[1].name"),
            ("platform: {channels: [{name: a, minVersion: x.y}]}", "mirror.platform.channels[0].minVersion"),
            (
                "operators: [{catalog: 'q.io/a/b:1', full: true, packages: [{name: p, minVersion: 1.0.0}]}]",
                "mirror.operators[0].packages[0]",
            ),
            (
                "operators: [{catalog: 'q.io/a/b:1', packages: [{name: p, minVersion: 1.0.0, channels: [{name: c, maxVersion: 2.0.0}]}]}]",
                "mirror.operators[0].packages[0]",
            ),
            (
                "operators: [{catalog: 'q.io/a/b:1', packages: [{name: p, channels: [{name: c}], bundles: [{name: b}]}]}]",
                "mirror.operators[0].packages[0].bundles",
            ),
            (
                "operators: [{catalog: 'q.io/a/b:1', packages: [{name: p}, {name: p}]}]",
                "mirror.operators[0].packages[1].name",
            ),
            ("operators: [{catalog: 'q.io/a/b:1'}, {catalog: 'q.io/a/b:1'}]", "mirror.operators[1].catalog"),
            ("operators: [{catalog: 'q.io/a/b:1', targetCatalog: 'Bad:tag'}]", "mirror.operators[0].targetCatalog"),
            (
                "operators: [{catalog: 'q.io/a/b:1', packages: [{name: p, minVersion: 2.0.0, maxVersion: 1.0.0}]}]",
                "mirror.operators[0].packages[0].minVersion",
            ),
            ("additionalImages: [{name: quay.io/a/b}]", "mirror.additionalImages[0].name"),
            ("blockedImages: [{name: 'a(b'}]", "mirror.blockedImages[0].name"),
        ];
        for (yaml, path) in cases {
            let got = paths(&mirror(yaml));
            assert!(got.contains(&path.to_string()), "{yaml}: expected an error at {path}, got {got:?}");
        }
    }

    #[test]
    fn resync_interval_is_bounded_and_named() {
        let spec = |interval: &str| -> ImageSetConfigurationSpec {
            serde_saphyr::from_str(&format!(
                "destination: docker://r.example.com\nmirror: {{}}\nresyncInterval: '{interval}'\n"
            ))
            .unwrap()
        };
        assert_eq!(resync_interval(&spec("1h30m")), Ok(Some(Duration::from_secs(5400))));
        assert_eq!(validate_spec(&spec("6h")), Ok(()));
        let unset: ImageSetConfigurationSpec =
            serde_saphyr::from_str("destination: docker://r.example.com\nmirror: {}\n").unwrap();
        assert_eq!(resync_interval(&unset), Ok(None));
        for bad in ["99999999999999999999h", "0s", "6", "8785h", ""] {
            let e = validate_spec(&spec(bad)).unwrap_err();
            assert_eq!(e.0.len(), 1, "{bad:?}: {e}");
            assert_eq!(e.0[0].path, "spec.resyncInterval", "{bad:?}");
            assert!(e.0[0].message.contains("at most 8784h"), "{bad:?}: {e}");
        }
        // Errors in spec.mirror come first, in document order.
        let mut both = spec("0s");
        both.mirror.blocked_images.push(super::super::mirror::BlockedImage { name: "a(b".into() });
        let paths: Vec<String> = validate_spec(&both).unwrap_err().0.into_iter().map(|f| f.path).collect();
        assert_eq!(paths, ["spec.mirror.blockedImages[0].name", "spec.resyncInterval"]);
    }

    #[test]
    fn distinct_target_catalogs_are_not_duplicates() {
        let m = mirror("operators: [{catalog: 'q.io/a/b:1'}, {catalog: 'q.io/a/b:1', targetCatalog: other/b}]");
        assert_eq!(paths(&m), Vec::<String>::new());
    }

    #[test]
    fn full_with_a_range_is_refused_in_oc_mirrors_words() {
        let m = mirror("operators: [{catalog: 'q.io/a/b:1', full: true, packages: [{name: p, minVersion: 1.0.0}]}]");
        let e = validate_mirror("mirror", &m).unwrap_err().to_string();
        assert!(e.contains("mirror.operators[0]"), "{e}");
        assert!(e.contains("Full: true cannot be mixed with versionRange"), "{e}");
    }
}
