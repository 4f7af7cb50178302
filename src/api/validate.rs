//! Step 0 of the pipeline: the checks oc-mirror makes on a configuration, each naming the
//! field. Pure.
//!
//! Admission makes the same checks (`tests/admission_parity.rs` compares the two on every case
//! of [`cases`]): the CRDs' OpenAPI patterns and CEL rules (`api::mirror`, `api::isc`), and,
//! for `minVersion <= maxVersion`, the ValidatingAdmissionPolicy of [`admission_policy`].

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use super::duration::parse_duration;
use super::isc::ImageSetConfigurationSpec;
use super::mirror::{
    AdditionalImage, Delete, IncludePackage, Mirror, Operator, PATH_PATTERN, Platform, PlatformSelector,
    SEMVER_PATTERN, TAG_PATTERN,
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

/// The most digits a version number may have: every such number fits in 64 bits, as
/// oc-mirror's semver library requires, and admission's pattern can say it.
pub const MAX_VERSION_DIGITS: usize = 19;

/// Parses a version as oc-mirror does (Masterminds semver: `v` prefix and missing parts
/// allowed), with numbers of at most [`MAX_VERSION_DIGITS`] digits.
pub fn parse_version(v: &str) -> Option<semver::Version> {
    let s = v.strip_prefix('v').unwrap_or(v);
    let split = s.find(['-', '+']).unwrap_or(s.len());
    let (core, rest) = s.split_at(split);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts.iter().any(|p| p.is_empty() || p.len() > MAX_VERSION_DIGITS || !p.bytes().all(|b| b.is_ascii_digit()))
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

/// The destination tag rule, compiled once.
static TAG_RE: LazyLock<regex::Regex> = LazyLock::new(|| regex::Regex::new(TAG_PATTERN).expect("static pattern"));

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
        // Semver precedence: build metadata does not order versions.
        if let ([Some(lo), Some(hi)], Some(min), Some(max)) = (&parsed, min, max)
            && lo.cmp_precedence(hi) == Ordering::Greater
        {
            self.err(format!("{path}.minVersion"), format!("minVersion {min:?} is greater than maxVersion {max:?}"));
        }
    }

    /// An image reference: no spaces around it, and what [`ImageRef::parse`] accepts.
    fn reference(&mut self, path: String, field: &str, value: &str) {
        if value.trim() != value {
            self.err(path, format!("{field} {value:?} must not start or end with spaces"));
        } else if let Err(e) = ImageRef::parse(value) {
            self.err(path, e.to_string());
        }
    }

    fn target_tag(&mut self, path: &str, tag: &Option<String>) {
        if let Some(t) = tag
            && !TAG_RE.is_match(t)
        {
            self.err(
                format!("{path}.targetTag"),
                format!("targetTag {t:?} must be a tag: letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-'"),
            );
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
            self.err(
                format!("{path}.platforms"),
                "platform.platforms and platform.architectures cannot be used together; use platform.platforms",
            );
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
        if let Some(r) = release {
            self.reference(format!("{path}.release"), "release", r);
        }
    }

    fn operator(&mut self, path: &str, op: &Operator) {
        let Operator {
            catalog,
            target_catalog,
            target_tag,
            full,
            skip_dependencies: _,
            include_dependencies: _,
            target_catalog_source_template: _,
            platforms,
            packages,
        } = op;
        self.reference(format!("{path}.catalog"), "catalog", catalog);
        self.target_tag(path, target_tag);
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
            self.reference(format!("{ip}.name"), "name", &img.name);
            self.target_tag(&ip, &img.target_tag);
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
    errors.extend(archive_url("spec.destination", &spec.destination).err());
    if let Some(from) = &spec.from {
        if !from.starts_with("file://") {
            errors.push(FieldError { path: "spec.from".into(), message: format!("{from:?} must be file://DIR") });
        } else if let Err(e) = archive_url("spec.from", from) {
            errors.push(e);
        }
        if !spec.destination.starts_with("docker://") {
            errors.push(FieldError { path: "spec.from".into(), message: FROM_NEEDS_REGISTRY.into() });
        }
    }
    match spec.shards {
        Some(0) | Some(65..) => errors.push(FieldError {
            path: "spec.shards".into(),
            message: format!("{} must be between 1 and 64", spec.shards.unwrap_or(0)),
        }),
        Some(2..) if !spec.destination.starts_with("docker://") || spec.from.is_some() => {
            errors.push(FieldError { path: "spec.shards".into(), message: SHARDS_NEED_MIRROR_TO_MIRROR.into() })
        }
        _ => {}
    }
    if errors.is_empty() { Ok(()) } else { Err(InvalidConfig(errors)) }
}

/// Why an absolute `file://` path is refused (admission says the same).
pub const ABSOLUTE_ARCHIVE_PATH: &str =
    "a file:// path names a directory under the operator's archive directory (file://DIR): it must not start with /";
/// Why a `file://` path with `..` is refused (admission says the same).
pub const CLIMBING_ARCHIVE_PATH: &str =
    "a file:// path must stay inside the operator's archive directory: it must not have a '..' component";
/// Why `spec.from` with another destination than a registry is refused.
pub const FROM_NEEDS_REGISTRY: &str = "archives are imported into a registry: spec.from needs a docker:// destination";
/// Why `spec.shards` above 1 is refused for archives.
pub const SHARDS_NEED_MIRROR_TO_MIRROR: &str =
    "shards copy registry to registry: above 1 it needs a docker:// destination and no spec.from";

/// A `file://` value of `field` (`spec.destination`, `spec.from`): a non-empty path relative to
/// the operator's archive directory that never climbs out of it. Other values pass.
pub fn archive_url(field: &str, url: &str) -> Result<(), FieldError> {
    let Some(path) = url.strip_prefix("file://") else { return Ok(()) };
    let err = |message: &str| Err(FieldError { path: field.into(), message: format!("{url:?}: {message}") });
    if path.starts_with('/') {
        return err(ABSOLUTE_ARCHIVE_PATH);
    }
    if path.is_empty() {
        return err("a file:// path names a directory under the operator's archive directory (file://DIR)");
    }
    if path.split('/').any(|c| c == "..") {
        return err(CLIMBING_ARCHIVE_PATH);
    }
    Ok(())
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

// ---- minVersion <= maxVersion at admission ---------------------------------------------------

/// Name of the ValidatingAdmissionPolicy (and its binding) that refuses version ranges whose
/// `minVersion` is greater than their `maxVersion`.
pub const POLICY_NAME: &str = "imageset-operator-version-ranges";

/// Longest lists the messages of [`admission_policy`] give indices in: the CRDs' `maxItems`
/// of `platform.channels`, `operators`, `operators[].packages` and `packages[].channels`.
pub const POLICY_LIST_BOUNDS: [(&str, usize); 4] =
    [("platform.channels", 32), ("operators", 32), ("operators[].packages", 128), ("packages[].channels", 16)];

/// A CEL expression turning the version string `v` (which matches [`SEMVER_PATTERN`]) into a
/// string whose order is semver precedence, so that `key(a) <= key(b)` compares versions:
/// each number becomes the digit count of its length, its length and its digits (so longer
/// numbers sort after shorter ones and equal lengths compare digit by digit); missing minor and
/// patch numbers are 0; no pre-release sorts after any (`~` > `!`); pre-release identifiers
/// are numeric (`0` + number) or not (`1` + text), joined by `,`, which sorts before every
/// identifier character, so a shorter list of equal identifiers sorts first; build metadata is
/// dropped.
fn version_key(v: &str) -> String {
    let num = |x: &str| format!("string(size(string(size({x})))) + string(size({x})) + {x}");
    let no_build = format!("{v}.split('+')[0]");
    let core = format!("({no_build}.split('-')[0].replace('v', '') + '.0.0').split('.')");
    let numbers: Vec<String> = (0..3).map(|i| format!("({})", num(&format!("{core}[{i}]")))).collect();
    let pre = format!(
        "({no_build}.contains('-') ? '!' + {no_build}.substring({no_build}.indexOf('-') + 1).split('.').map(pid, pid.matches('^[0-9]+$') ? '0' + {} : '1' + pid).join(',') : '~')",
        num("pid")
    );
    format!("({} + {pre})", numbers.join(" + "))
}

/// A CEL expression: the object `x` has no version range, or one that is not semver (the
/// schema's pattern refuses that), or one in order.
fn range_in_order(x: &str) -> String {
    let (min, max) = (format!("{x}.minVersion"), format!("{x}.maxVersion"));
    format!(
        "(!has({min}) || !has({max}) || !{min}.matches(r'{SEMVER_PATTERN}') || !{max}.matches(r'{SEMVER_PATTERN}') || {} <= {})",
        version_key(&min),
        version_key(&max)
    )
}

/// `[0, 1, ..., n-1]` as a CEL list: CEL has no range function in every apiserver version.
fn indices(n: usize) -> String {
    let all: Vec<String> = (0..n).map(|i| i.to_string()).collect();
    format!("[{}]", all.join(", "))
}

/// The message of a range out of order at `path` (a CEL string expression) in object `x`.
fn range_message(path: &str, x: &str) -> String {
    format!(
        "{path} + '.minVersion: minVersion \"' + {x}.minVersion + '\" is greater than maxVersion \"' + {x}.maxVersion + '\"'"
    )
}

/// The ValidatingAdmissionPolicy and its binding that refuse, in both kinds, a `minVersion`
/// greater than its `maxVersion` (semver precedence, as [`validate_mirror`] compares them) in
/// release channels, packages and package channels, naming the field as the CLI does.
///
/// Why a policy and not a CRD rule: a CRD rule's cost is estimated for the largest object the
/// schema allows (32 catalogs x 128 packages x 16 channels = 65,536 ranges, each version up to
/// its maximum length), and any comparison of two versions in CEL exceeds the per-rule budget
/// at that count; Kubernetes' semver CEL library would fit, but apiservers before 1.34 do not
/// have it and would refuse the whole CRD. A policy is evaluated with the actual object's cost,
/// and needs Kubernetes 1.30 (`admissionregistration.k8s.io/v1`). Without it the operator still
/// reports such a range as `InvalidSpec`. Only a changed spec is checked, so an object stored
/// before the policy can still have its finalizer removed.
pub fn admission_policy() -> [serde_json::Value; 2] {
    let [(_, release_channels), (_, operators), (_, packages), (_, channels)] = POLICY_LIST_BOUNDS;
    let ops = "variables.operators";
    let bad_op = format!("variables.{}", "badPackageOperator");
    let validations = serde_json::json!([
        {
            "expression": format!("variables.releaseChannels.all(c, {})", range_in_order("c")),
            "message": "a release channel's minVersion is greater than its maxVersion",
            "messageExpression": range_message(
                "'spec.' + variables.block + '.platform.channels[' + string(variables.badReleaseChannel[0]) + ']'",
                "variables.releaseChannels[variables.badReleaseChannel[0]]",
            ),
            "reason": "Invalid",
        },
        {
            "expression": format!("{ops}.all(o, !has(o.packages) || o.packages.all(p, {}))", range_in_order("p")),
            "message": "a package's minVersion is greater than its maxVersion",
            "messageExpression": range_message(
                &format!("'spec.' + variables.block + '.operators[' + string({bad_op}[0]) + '].packages[' + string(variables.badPackage[0]) + ']'"),
                &format!("{ops}[{bad_op}[0]].packages[variables.badPackage[0]]"),
            ),
            "reason": "Invalid",
        },
        {
            "expression": format!(
                "{ops}.all(o, !has(o.packages) || o.packages.all(p, !has(p.channels) || p.channels.all(c, {})))",
                range_in_order("c")
            ),
            "message": "a package channel's minVersion is greater than its maxVersion",
            "messageExpression": range_message(
                "'spec.' + variables.block + '.operators[' + string(variables.badChannelOperator[0]) + '].packages[' + string(variables.badChannelPackage[0]) + '].channels[' + string(variables.badChannel[0]) + ']'",
                &format!("{ops}[variables.badChannelOperator[0]].packages[variables.badChannelPackage[0]].channels[variables.badChannel[0]]"),
            ),
            "reason": "Invalid",
        },
    ]);
    let channel_ok = |p: &str| format!("(!has({p}.channels) || {p}.channels.all(c, {}))", range_in_order("c"));
    let bad_package = format!("{ops}[variables.badChannelOperator[0]].packages[variables.badChannelPackage[0]]");
    let bad_channel = format!(
        "{}.filter(k, k < size({bad_package}.channels) && !{})",
        indices(channels),
        range_in_order(&format!("{bad_package}.channels[k]"))
    );
    // The bad* variables are the indices of the first offender, for the messages only (a
    // variable is evaluated when it is used, that is when a validation failed).
    let variables = serde_json::json!([
        {"name": "block", "expression": "has(object.spec.mirror) ? 'mirror' : 'delete'"},
        {"name": "spec", "expression": "has(object.spec.mirror) ? object.spec.mirror : (has(object.spec.delete) ? object.spec.delete : {})"},
        {"name": "releaseChannels", "expression": "has(variables.spec.platform) && has(variables.spec.platform.channels) ? variables.spec.platform.channels : []"},
        {"name": "operators", "expression": "has(variables.spec.operators) ? variables.spec.operators : []"},
        {"name": "badReleaseChannel", "expression": format!(
            "{}.filter(i, i < size(variables.releaseChannels) && !{})", indices(release_channels), range_in_order("variables.releaseChannels[i]"))},
        {"name": "badPackageOperator", "expression": format!(
            "{}.filter(i, i < size({ops}) && has({ops}[i].packages) && {ops}[i].packages.exists(p, !{}))", indices(operators), range_in_order("p"))},
        {"name": "badPackage", "expression": format!(
            "{}.filter(j, j < size({ops}[{bad_op}[0]].packages) && !{})", indices(packages), range_in_order(&format!("{ops}[{bad_op}[0]].packages[j]")))},
        {"name": "badChannelOperator", "expression": format!(
            "{}.filter(i, i < size({ops}) && has({ops}[i].packages) && {ops}[i].packages.exists(p, !{}))", indices(operators), channel_ok("p"))},
        {"name": "badChannelPackage", "expression": format!(
            "{}.filter(j, j < size({ops}[variables.badChannelOperator[0]].packages) && !{})", indices(packages), channel_ok(&format!("{ops}[variables.badChannelOperator[0]].packages[j]")))},
        {"name": "badChannel", "expression": bad_channel},
    ]);
    let policy = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [super::GROUP],
                "apiVersions": [super::VERSION],
                "operations": ["CREATE", "UPDATE"],
                "resources": ["imagesetconfigurations", "deleteimagesetconfigurations"],
            }]},
            // Only a new or changed spec: metadata and status writes of an object stored
            // before the policy (the operator's finalizer) are not held up by it.
            "matchConditions": [{"name": "spec-changed", "expression": "oldObject == null || object.spec != oldObject.spec"}],
            "variables": variables,
            "validations": validations,
        },
    });
    let binding = serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY_NAME},
        "spec": {"policyName": POLICY_NAME, "validationActions": ["Deny"]},
    });
    [policy, binding]
}

/// [`admission_policy`] as a multi-document YAML stream, for `kubectl apply -f`.
pub fn admission_policy_yaml() -> String {
    let mut out = String::new();
    for doc in admission_policy() {
        out.push_str("---\n");
        out.push_str(&super::to_yaml_lines(&doc).expect("policy serializes to YAML"));
    }
    out
}

/// Configurations the CLI refuses and near misses it accepts, shared by the unit tests below
/// and `tests/admission_parity.rs`, which feeds each to the apiserver as well.
#[doc(hidden)]
pub mod cases {
    /// A `mirror:` block (YAML) and where its error is: a path below the block, or `None` when
    /// the CLI accepts it.
    #[derive(Clone, Debug)]
    pub struct Case {
        /// The block, as a YAML flow mapping.
        pub block: String,
        /// The field the CLI's error names, below the block (`platform.channels[0].name`).
        pub path: Option<&'static str>,
    }

    const D64: &str = "61b8f5e1a3b5dbd9e2c35fd448dc5106337d7a299873dd3a6f0cd8d4891ecc27";
    const CAT: &str = "registry.redhat.io/redhat/redhat-operator-index:v4.18";

    fn image(name: &str) -> String {
        format!("{{additionalImages: [{{name: {}}}]}}", quote(name))
    }

    fn catalog(name: &str) -> String {
        format!("{{operators: [{{catalog: {}}}]}}", quote(name))
    }

    fn blocked(pattern: &str) -> String {
        format!("{{blockedImages: [{{name: {}}}]}}", quote(pattern))
    }

    /// A YAML double-quoted scalar (JSON's escaping is YAML's).
    fn quote(s: &str) -> String {
        serde_json::to_string(s).expect("a string serializes")
    }

    /// The three places a version range sits: a release channel, a package, a package channel.
    fn ranges(min: &str, max: &str) -> [(String, &'static str); 3] {
        let (min, max) = (quote(min), quote(max));
        [
            (
                format!("{{platform: {{channels: [{{name: stable-4.18, minVersion: {min}, maxVersion: {max}}}]}}}}"),
                "platform.channels[0].minVersion",
            ),
            (
                format!(
                    "{{operators: [{{catalog: {CAT}, packages: [{{name: p, minVersion: {min}, maxVersion: {max}}}]}}]}}"
                ),
                "operators[0].packages[0].minVersion",
            ),
            (
                format!(
                    "{{operators: [{{catalog: {CAT}, packages: [{{name: p, channels: [{{name: c, minVersion: {min}, maxVersion: {max}}}]}}]}}]}}"
                ),
                "operators[0].packages[0].channels[0].minVersion",
            ),
        ]
    }

    /// Every configuration the CLI refuses, one mistake each: oc-mirror's own rules (the
    /// reference's section 1) and the operator's.
    pub fn rejections() -> Vec<Case> {
        let mut out: Vec<(String, &'static str)> = [
            // oc-mirror: architectures and platforms exclude each other; channels, packages
            // and catalogs appear once; versions are semver; ranges are not mixed; full: true
            // takes no range; bundles take no channels or range; paths are oc-mirror's.
            ("{platform: {architectures: [amd64], platforms: [{os: linux, architecture: arm64}]}}", "platform.platforms"),
            ("{platform: {channels: [{name: a}, {name: a}]}}", "platform.channels[1].name"),
            ("{platform: {channels: [{name: a, minVersion: x.y}]}}", "platform.channels[0].minVersion"),
            ("{platform: {channels: [{name: a, maxVersion: '4.18.1.2'}]}}", "platform.channels[0].maxVersion"),
            (
                "{operators: [{catalog: 'q.io/a/b:1', full: true, packages: [{name: p, minVersion: 1.0.0}]}]}",
                "operators[0].packages[0]",
            ),
            (
                "{operators: [{catalog: 'q.io/a/b:1', full: true, packages: [{name: p, channels: [{name: c, maxVersion: 1.0.0}]}]}]}",
                "operators[0].packages[0]",
            ),
            (
                "{operators: [{catalog: 'q.io/a/b:1', packages: [{name: p, minVersion: 1.0.0, channels: [{name: c, maxVersion: 2.0.0}]}]}]}",
                "operators[0].packages[0]",
            ),
            (
                "{operators: [{catalog: 'q.io/a/b:1', packages: [{name: p, channels: [{name: c}], bundles: [{name: b}]}]}]}",
                "operators[0].packages[0].bundles",
            ),
            ("{operators: [{catalog: 'q.io/a/b:1', packages: [{name: p}, {name: p}]}]}", "operators[0].packages[1].name"),
            (
                "{operators: [{catalog: 'q.io/a/b:1', packages: [{name: p, channels: [{name: c}, {name: c}]}]}]}",
                "operators[0].packages[0].channels[1].name",
            ),
            ("{operators: [{catalog: 'q.io/a/b:1'}, {catalog: 'q.io/a/b:1'}]}", "operators[1].catalog"),
            ("{operators: [{catalog: 'q.io/a/b:1', targetCatalog: 'Bad:tag'}]}", "operators[0].targetCatalog"),
            ("{operators: [{catalog: 'q.io/a/b:1', targetCatalog: 'ns/cat@sha256:00'}]}", "operators[0].targetCatalog"),
            ("{additionalImages: [{name: 'quay.io/a/b:1', targetRepo: 'Bad/Repo'}]}", "additionalImages[0].targetRepo"),
            ("{operators: [{catalog: 'q.io/a/b:1', targetTag: 'bad tag'}]}", "operators[0].targetTag"),
            ("{additionalImages: [{name: 'quay.io/a/b:1', targetTag: '.hidden'}]}", "additionalImages[0].targetTag"),
            // Blank names and platforms.
            ("{platform: {channels: [{name: '  '}]}}", "platform.channels[0].name"),
            ("{operators: [{catalog: 'q.io/a/b:1', packages: [{name: \"\\t\"}]}]}", "operators[0].packages[0].name"),
            ("{platform: {platforms: [{os: ' ', architecture: amd64}]}}", "platform.platforms[0].os"),
            (
                "{operators: [{catalog: 'q.io/a/b:1', platforms: [{os: linux, architecture: \"\\u3000\"}]}]}",
                "operators[0].platforms[0].architecture",
            ),
            (
                "{additionalImages: [{name: 'quay.io/a/b:1', platforms: [{os: \"\\n\", architecture: amd64}]}]}",
                "additionalImages[0].platforms[0].os",
            ),
        ]
        .into_iter()
        .map(|(b, p)| (b.to_string(), p))
        .collect();
        // References: a tag or a digest, digests of the right length and alphabet, lowercase
        // paths, no other transport, no spaces around.
        let bad_refs = [
            "quay.io/openshifttest/hello-openshift".to_string(),
            // The digest of a real oc-mirror QE configuration: 66 hex digits.
            format!("quay.io/openshifttest/hello-openshift@sha256:{D64}ab"),
            format!("quay.io/a/b@sha256:{}", &D64[..63]),
            format!("quay.io/a/b@sha256:{}", D64.to_uppercase()),
            format!("quay.io/a/b@sha512:{D64}"),
            format!("quay.io/a/b@md5:{}", &D64[..32]),
            "quay.io/a/b@sha256:".into(),
            format!("quay.io/a/b:1@@sha256:{D64}"),
            "quay.io/A/b:1".into(),
            "quay.io//a:1".into(),
            "quay.io/a/:1".into(),
            "bad_host/a:1".into(),
            "quay.io/a/b:".into(),
            "quay.io/a/b:.hidden".into(),
            "quay.io/a/b:-x".into(),
            format!("quay.io/a/b:{}", "t".repeat(129)),
            "quay.io/a/b:v1:v2".into(),
            "http://quay.io/a/b:1".into(),
            "docker://".into(),
            "oci://".into(),
            "oci://  ".into(),
            " quay.io/a/b:1".into(),
            "quay.io/a/b:1\n".into(),
            "\u{a0}quay.io/a/b:1".into(),
            "quay.io/a b:1".into(),
        ];
        for r in &bad_refs {
            out.push((image(r), "additionalImages[0].name"));
        }
        for r in ["registry.redhat.io/redhat/redhat-operator-index", "q.io/a/b@sha256:abc", " q.io/a/b:1"] {
            out.push((catalog(r), "operators[0].catalog"));
        }
        for r in ["quay.io/openshift-release-dev/ocp-release@sha256:abc", "quay.io/ocp-release", "Quay.io/Ocp:4.18"] {
            out.push((format!("{{platform: {{release: {}}}}}", quote(r)), "platform.release"));
        }
        // Versions: semver's identifiers and numbers that fit in 64 bits.
        for v in [
            "01.2.3",
            "1.02",
            "1.0.0-01",
            "1.0.0-rc.00",
            "1.0.0-",
            "1.0.0+",
            "1.0.0-a_b",
            "1.0.0+x+y",
            "V1.0.0",
            "vv1",
            "1..2",
            " 1.0.0",
            "",
            "10000000000000000000.0.0",
            "1.18446744073709551616.0",
        ] {
            out.push((
                format!("{{operators: [{{catalog: {CAT}, packages: [{{name: p, maxVersion: {}}}]}}]}}", quote(v)),
                "operators[0].packages[0].maxVersion",
            ));
        }
        // minVersion greater than maxVersion, by semver precedence, in each place.
        for (min, max) in [
            ("4.18.5", "4.18.1"),
            ("v2", "1.999.999"),
            ("4.19", "4.18.99"),
            ("10.0.0", "9.0.0"),
            ("1.0.0", "1.0.0-rc.1"),
            ("1.0.0-rc.10", "1.0.0-rc.9"),
            ("1.0.0-beta", "1.0.0-alpha"),
            ("1.0.0-alpha.1", "1.0.0-alpha"),
            ("1.0.0-alpha.beta", "1.0.0-alpha.1"),
            ("1.0.0-b", "1.0.0-a-"),
            ("1.0.0-1", "1.0.0-0"),
            ("1.0.0-Z", "1.0.0-10"),
            ("1.0.0-a", "1.0.0-Z"),
            ("1.0.0-100", "1.0.0-99"),
            ("1.0.0-x.10", "1.0.0-x.9.9"),
            ("1.0.1+a", "1.0.0+b"),
        ] {
            out.extend(ranges(min, max));
        }
        // Regular expressions oc-mirror and the operator both refuse.
        for p in ["a(b", "[", "*", "\\", "(?P<x", "x{2,1}", "\\p{Nope}", "[z-a]", "a)", "(?<>a)", "\\8", "\\y"] {
            out.push((blocked(p), "blockedImages[0].name"));
        }
        out.into_iter().map(|(block, path)| Case { block, path: Some(path) }).collect()
    }

    /// Near misses the CLI accepts: odd but valid references, versions, ranges, names and
    /// regular expressions.
    pub fn acceptances() -> Vec<Case> {
        let mut out = Vec::new();
        for r in [
            format!("quay.io/openshifttest/hello-openshift@sha256:{D64}"),
            format!("quay.io/a/b:v1@sha256:{D64}"),
            format!("docker://quay.io/a/b@sha512:{D64}{D64}"),
            "localhost:5000/a/b:v1".into(),
            "[::1]:5000/a/b:latest".into(),
            "ubi8/ubi:latest".into(),
            "a:1".into(),
            "/a:1".into(),
            "Quay.IO:443/a.b/c_d/e-f/g__h:_T.1-x".into(),
            format!("quay.io/a/b:{}", "t".repeat(128)),
            "oci:///tmp/layout".into(),
            "oci://relative dir/with spaces".into(),
        ] {
            out.push(image(&r));
            out.push(catalog(&r));
        }
        out.push(format!("{{platform: {{release: quay.io/openshift-release-dev/ocp-release@sha256:{D64}}}}}"));
        for (min, max) in [
            ("4.18", "4.18.0"),
            ("4.18.0", "4.18"),
            ("v1", "1.0.0"),
            ("1.0.0-rc.9", "1.0.0-rc.10"),
            ("1.0.0-alpha", "1.0.0-alpha.1"),
            ("1.0.0-alpha.1", "1.0.0-alpha.beta"),
            ("1.0.0-rc.1", "1.0.0"),
            ("1.0.0+b", "1.0.0+a"),
            ("1.0.0-0", "1.0.0-a"),
            ("1.0.0-10", "1.0.0-Z"),
            ("1.0.0--", "1.0.0-0a"),
            ("1.0.0-x.9.9", "1.0.0-x.10"),
            ("9999999999999999999.0.0", "9999999999999999999.0.1"),
            ("0.0.0-0", "0.0.0"),
        ] {
            out.extend(ranges(min, max).into_iter().map(|(b, _)| b));
        }
        for n in ["a b", " x", "\u{200b}"] {
            out.push(format!("{{operators: [{{catalog: {CAT}, packages: [{{name: {}}}]}}]}}", quote(n)));
            out.push(format!("{{platform: {{channels: [{{name: {}}}]}}}}", quote(n)));
        }
        for p in ["-debug", "^quay\\.io/", "(?i)UBI", "\\d+", "[[:alpha:]]", "(?P<n>a)|(?<m>b)", "\\<", "a{1000}"] {
            out.push(blocked(p));
        }
        out.into_iter().map(|block| Case { block, path: None }).collect()
    }

    /// An image set's archive fields: `spec.destination` and `spec.from`, and the field the
    /// CLI's refusal names (`None`: accepted).
    #[derive(Clone, Debug)]
    pub struct ArchiveCase {
        /// `spec.destination`.
        pub destination: &'static str,
        /// `spec.from`.
        pub from: Option<&'static str>,
        /// `spec.destination` or `spec.from`, or `None`.
        pub path: Option<&'static str>,
    }

    /// Archive paths that leave the archive directory or cannot be imported, and near misses.
    pub fn archive_cases() -> Vec<ArchiveCase> {
        const REGISTRY: &str = "docker://mirror.example.com:5000/ocp";
        let dest = |destination, path| ArchiveCase { destination, from: None, path };
        let from = |destination, from, path| ArchiveCase { destination, from: Some(from), path };
        let d = Some("spec.destination");
        let f = Some("spec.from");
        vec![
            dest("file:///etc", d),
            dest("file:///", d),
            dest("file:////x", d),
            dest("file://..", d),
            dest("file://../x", d),
            dest("file://a/../../x", d),
            dest("file://a/..", d),
            dest("file://./../x", d),
            from(REGISTRY, "file:///etc", f),
            from(REGISTRY, "file://../x", f),
            from(REGISTRY, "file://x/../../y", f),
            from(REGISTRY, "file://x/..", f),
            from("file://y", "file://x", f),
            // Near misses: names that only look like climbing, and plain directories.
            dest("file://out", None),
            dest("file://a/b/c/", None),
            dest("file://..a/b..", None),
            dest("file://a/./b", None),
            dest("file://a..b/...", None),
            dest("file://.", None),
            from(REGISTRY, "file://out", None),
            from(REGISTRY, "file://a/.../b", None),
            from("docker://r.example.com", "file://team/2024-06", None),
        ]
    }
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

    /// Every case of the shared table: refused naming its field, or accepted.
    #[test]
    fn each_rejected_combination_names_its_field() {
        let rejections = cases::rejections();
        assert!(rejections.len() > 100, "{}", rejections.len());
        for case in rejections {
            let path = format!("mirror.{}", case.path.unwrap());
            let got = paths(&mirror(&case.block));
            assert!(got.contains(&path), "{}: expected an error at {path}, got {got:?}", case.block);
        }
        for case in cases::acceptances() {
            assert_eq!(validate_mirror("mirror", &mirror(&case.block)), Ok(()), "{}", case.block);
        }
    }

    /// The schema's reference pattern says what the operator's reference check says, on the
    /// table's references and on every short string over an alphabet of the characters that
    /// matter (`ImageRef::parse` and the whitespace rule are the specification).
    #[test]
    fn the_reference_pattern_is_the_reference_check() {
        let re = regex::Regex::new(super::super::mirror::REFERENCE_PATTERN).unwrap();
        let cli = |s: &str| {
            let mut c = Checker { errors: Vec::new() };
            c.reference("x".into(), "x", s);
            c.errors.is_empty()
        };
        let mut checked = 0;
        let mut agree = |s: &str| {
            assert_eq!(re.is_match(s), cli(s), "{s:?}");
            checked += 1;
        };
        for case in cases::rejections().into_iter().chain(cases::acceptances()) {
            let m = mirror(&case.block);
            for img in &m.additional_images {
                agree(&img.name);
            }
            for op in &m.operators {
                agree(&op.catalog);
            }
        }
        // Every string of up to 5 characters over this alphabet.
        let alphabet: Vec<char> = "a/:@A_ .".chars().collect();
        let mut words = vec![String::new()];
        for _ in 0..5 {
            let next: Vec<String> =
                words.iter().flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}"))).collect();
            for w in &next {
                agree(w);
                agree(&format!("docker://{w}"));
                agree(&format!("oci://{w}"));
                agree(&format!("q.io/{w}@sha256:{}", "0".repeat(64)));
            }
            words = next;
        }
        assert!(checked > 100_000, "{checked}");
    }

    /// The schema's version pattern accepts exactly what [`parse_version`] parses, on a corpus
    /// of every short string over the characters that matter.
    #[test]
    fn the_version_pattern_is_parse_version() {
        let re = regex::Regex::new(SEMVER_PATTERN).unwrap();
        let alphabet: Vec<char> = "v01.-+a".chars().collect();
        let mut words = vec![String::new()];
        let mut checked = 0;
        for _ in 0..7 {
            words = words.iter().flat_map(|w| alphabet.iter().map(move |c| format!("{w}{c}"))).collect();
            for w in &words {
                assert_eq!(re.is_match(w), parse_version(w).is_some(), "{w:?}");
                checked += 1;
            }
        }
        for v in ["9999999999999999999", "10000000000000000000", "1.0.0-99999999999999999999999", "1.0.0+007"] {
            assert_eq!(re.is_match(v), parse_version(v).is_some(), "{v:?}");
        }
        assert!(checked > 900_000, "{checked}");
    }

    /// The policy's index lists are as long as the CRDs' lists may be.
    #[test]
    fn the_policy_bounds_are_the_schema_bounds() {
        use kube::CustomResourceExt;
        for crd in [super::super::ImageSetConfiguration::crd(), super::super::DeleteImageSetConfiguration::crd()] {
            let v = serde_json::to_value(&crd).unwrap();
            let spec = &v["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
            let block = spec.get("mirror").unwrap_or(&spec["delete"]);
            let ops = &block["properties"]["operators"];
            let pkgs = &ops["items"]["properties"]["packages"];
            let found = [
                block["properties"]["platform"]["properties"]["channels"]["maxItems"].as_u64(),
                ops["maxItems"].as_u64(),
                pkgs["maxItems"].as_u64(),
                pkgs["items"]["properties"]["channels"]["maxItems"].as_u64(),
            ];
            let want: Vec<Option<u64>> = POLICY_LIST_BOUNDS.iter().map(|(_, n)| Some(*n as u64)).collect();
            assert_eq!(found.to_vec(), want);
        }
        let yaml = admission_policy_yaml();
        assert!(yaml.contains("kind: ValidatingAdmissionPolicy\n") && yaml.contains(POLICY_NAME), "{yaml}");
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

    /// Archive paths are refused naming their field, and the near misses accepted.
    #[test]
    fn archive_paths_stay_in_the_archive_directory() {
        let cases = cases::archive_cases();
        assert!(cases.iter().filter(|c| c.path.is_some()).count() >= 10);
        for c in cases {
            let mut spec: ImageSetConfigurationSpec =
                serde_saphyr::from_str("destination: docker://r.example.com\nmirror: {}\n").unwrap();
            spec.destination = c.destination.into();
            spec.from = c.from.map(Into::into);
            let got: Vec<String> =
                validate_spec(&spec).err().map(|e| e.0.into_iter().map(|f| f.path).collect()).unwrap_or_default();
            match c.path {
                Some(p) => assert_eq!(got, [p], "{c:?}"),
                None => assert!(got.is_empty(), "{c:?}: {got:?}"),
            }
        }
        let e = archive_url("spec.from", "file:///etc").unwrap_err();
        assert_eq!(e.to_string(), format!("spec.from: \"file:///etc\": {ABSOLUTE_ARCHIVE_PATH}"));
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
