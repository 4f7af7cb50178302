//! A property of admission and validation together: every ImageSetConfiguration spec, admitted
//! by the CRD schema (its OpenAPI patterns, lengths and list bounds, and its CEL rules, restated
//! here) or not, goes through the operator's own spec validation and planning without a panic,
//! and every refusal names a field under `spec.`; and what the schema admits, the operator
//! accepts (but for `minVersion <= maxVersion`, which a ValidatingAdmissionPolicy checks:
//! `tests/admission_parity.rs` runs it in a real apiserver). A tenth of the cases also carry
//! values only an older CRD (or none) would have let through, such as a `resyncInterval` of
//! `99999999999999999999h`: those must be refused the same way, never crash the operator.
//!
//! Deterministic: a fixed seed and a small splitmix64 generator, no external crates. A failing
//! case is printed as YAML with its index.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use imageset_operator::api::isc::{
    ApplyPolicy, ClusterResources, ConfigMapKeyReference, DeletionPolicy, LocalObjectReference, RegistrySettings,
};
use imageset_operator::api::load::{self, LoadError};
use imageset_operator::api::mirror::{
    AdditionalImage, Architecture, BlockedImage, Helm, HelmChart, HelmRepository, IncludeBundle, IncludeChannel,
    IncludePackage, Mirror, Operator, Platform, PlatformSelector, REFERENCE_PATTERN, ReleaseChannel, ReleaseType,
    SampleImage,
};
use imageset_operator::api::validate::{self, FieldError, InvalidConfig};
use imageset_operator::api::{self, ImageSetConfiguration, ImageSetConfigurationSpec};
use imageset_operator::plan::{self, Destination, PlanError};
use kube::CustomResourceExt;
use serde_json::Value;

const SEED: u64 = 0x15C0_2024_0BAD_5EED;
const CASES: usize = 3000;

/// splitmix64, and whether the case under construction keeps to well-formed values (so that
/// the accepting paths are exercised as much as the refusing ones).
struct Rng {
    state: u64,
    clean: bool,
}

impl Rng {
    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 when n is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn percent(&mut self, p: usize) -> bool {
        self.below(100) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// `lo..=hi` characters drawn from `alphabet`.
    fn chars(&mut self, alphabet: &str, lo: usize, hi: usize) -> String {
        let a: Vec<char> = alphabet.chars().collect();
        let n = self.range(lo, hi);
        (0..n).map(|_| a[self.below(a.len())]).collect()
    }

    /// A list length up to `max`: mostly short, sometimes anything, now and then exactly `max`.
    fn len(&mut self, max: usize) -> usize {
        match self.below(500) {
            0 => max,
            1..=5 => self.range(0, max),
            _ => self.range(0, max.min(3)),
        }
    }

    fn maybe<T>(&mut self, p: usize, f: impl FnOnce(&mut Rng) -> T) -> Option<T> {
        if self.percent(p) { Some(f(self)) } else { None }
    }
}

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
const NAME: &str = "abcdefghijklmnopqrstuvwxyz0123456789.-_";
const HEX: &str = "0123456789abcdef";

/// At most `max` characters (the schema counts characters, not bytes), never empty.
fn clip(s: String, max: usize) -> String {
    let s: String = s.chars().take(max).collect();
    if s.is_empty() { "x".into() } else { s }
}

// ---- Values the schema admits -------------------------------------------------------------

const UNITS: [&str; 6] = ["ns", "us", "ms", "s", "m", "h"];

/// Durations worth always trying: the bounds, Go's int64 limits, and odd spellings.
const CURATED_INTERVALS: [&str; 18] = [
    "6h",
    "1h30m",
    "90s",
    "500ms",
    "1.5h",
    "0s",
    "0h0m0.0s",
    "1ns",
    "0.1ns",
    "8784h",
    "8784h1ns",
    "8783h59m59.999999999s",
    "2562047h",
    "2562048h",
    "9223372036854775807ns",
    "9223372036854775808ns",
    "99999999999999999999h",
    "00000000000000000000000000001h",
];

/// `^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`, at most 32 characters.
fn interval(r: &mut Rng) -> String {
    if r.percent(15) {
        return r.pick(&CURATED_INTERVALS).to_string();
    }
    let mut s = String::new();
    for _ in 0..r.range(1, 6) {
        let mut c = match r.below(10) {
            0 => "9".repeat(r.range(1, 24)),
            1 => format!("{}{}", "0".repeat(r.range(1, 12)), r.below(100)),
            2 => r.next().to_string(),
            3 => "0".into(),
            4 | 5 => r.below(100_000).to_string(),
            _ => r.below(100).to_string(),
        };
        if r.percent(20) {
            c.push('.');
            c.push_str(&r.chars("0123456789", 1, 14));
        }
        c.push_str(r.pick(&UNITS));
        if s.len() + c.len() > 32 {
            break;
        }
        s.push_str(&c);
    }
    if s.is_empty() {
        s = format!("{}{}", r.range(1, 99), r.pick(&UNITS));
    }
    s
}

/// `^(docker://[^/\s]+(/[^\s]*)?|file://[^\s]+)$`, at most 1024 characters; a `file://` path
/// may climb (`..`) or be absolute, which CEL refuses.
fn destination(r: &mut Rng) -> String {
    if r.percent(10) {
        let alphabet = if r.clean { "abc_-X" } else { "abc/._-X" };
        return format!("file://{}", r.chars(alphabet, 1, 40));
    }
    let host = r.pick(&[
        "mirror.example.com",
        "mirror.example.com:8443",
        "localhost:5000",
        "[::1]:5000",
        "r",
        "\u{fc}.example",
        "a:b:c",
        "UPPER.example.com",
    ]);
    let prefix = match r.below(4) {
        0 => String::new(),
        1 => format!("/{}", r.chars(LOWER, 1, 12)),
        2 => format!("/{}/{}", r.chars(LOWER, 1, 8), r.chars(LOWER, 1, 8)),
        _ => format!("/{}", r.chars("abc/._-X:@\u{fc}", 0, 30)),
    };
    format!("docker://{host}{prefix}")
}

fn hex(r: &mut Rng, n: usize) -> String {
    r.chars(HEX, n, n)
}

fn path_component(r: &mut Rng) -> String {
    let mut c = r.chars(LOWER, 1, 8);
    for _ in 0..r.below(3) {
        c.push_str(r.pick(&[".", "_", "__", "-", "--"]));
        c.push_str(&r.chars(LOWER, 1, 6));
    }
    c
}

/// PATH_PATTERN, at most 255 characters.
fn repo_path(r: &mut Rng) -> String {
    let parts: Vec<String> = (0..r.range(1, 4)).map(|_| path_component(r)).collect();
    parts.join("/")
}

/// `^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`.
fn tag(r: &mut Rng) -> String {
    let first = r.chars("ABCXYZabcxyz0123456789_", 1, 1);
    let max = if r.percent(3) { 127 } else { 12 };
    format!("{first}{}", r.chars("ABCabc0123456789_.-", 0, max))
}

/// Image references, good and bad: whatever the schema lets through (only lengths).
fn image_ref(r: &mut Rng) -> String {
    if r.clean {
        let registry = r.pick(&["quay.io", "registry.redhat.io", "localhost:5000", "r.example.com:8443"]);
        let path = repo_path(r);
        return match r.below(4) {
            0 => format!("{registry}/{path}@sha256:{}", hex(r, 64)),
            1 => format!("docker://{registry}/{path}:{}", tag(r)),
            _ => format!("{registry}/{path}:{}", tag(r)),
        };
    }
    let registry = r.pick(&[
        "quay.io",
        "registry.redhat.io",
        "localhost:5000",
        "[::1]:5000",
        "r.example.com:8443",
        "Quay.IO",
        "bad_host!",
        "",
    ]);
    let path = match r.below(8) {
        0 => "UPPER/case".to_string(),
        1 => "a//b".to_string(),
        2 => "\u{fc}ber/x".to_string(),
        _ => repo_path(r),
    };
    let name = if registry.is_empty() { path } else { format!("{registry}/{path}") };
    let tag = match r.below(10) {
        0..=4 => Some(tag(r)),
        5 => Some(r.pick(&["", ".bad", "-bad", "a b"]).to_string()),
        6 => Some("t".repeat(129)),
        _ => None,
    };
    let digest = match r.below(6) {
        0 => Some(format!("sha256:{}", hex(r, 64))),
        1 => Some(format!("sha512:{}", hex(r, 128))),
        2 => Some(r.pick(&["sha256:abc", "md5:00", "sha256:", ""]).to_string()),
        _ => None,
    };
    let mut s = name;
    if let Some(t) = tag {
        s = format!("{s}:{t}");
    }
    if let Some(d) = digest {
        s = format!("{s}@{d}");
    }
    let s = match r.below(12) {
        0 => format!("docker://{s}"),
        1 => format!("oci:///{}", r.chars("abc/._-", 0, 30)),
        2 => format!("oci://{}", r.chars("abc/._-", 0, 10)),
        3 => format!("http://{s}"),
        4 => format!("  {s} "),
        _ => s,
    };
    clip(s, 256)
}

/// The CEL rule on additional images: `oci://`, a digest or a tag.
fn cel_additional_name_ok(name: &str) -> bool {
    static TAGGED: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(":[^/]+$").expect("static pattern"));
    name.starts_with("oci://") || name.contains('@') || TAGGED.is_match(name)
}

/// SEMVER_PATTERN: core numbers without leading zeros (some too large for u64), pre-release
/// and build identifiers of `[0-9A-Za-z-]` (some that semver itself refuses, like `01`).
fn version(r: &mut Rng) -> String {
    let num = |r: &mut Rng| match r.below(8) {
        0 => "0".to_string(),
        1 if !r.clean => format!("{}{}", r.range(1, 9), r.chars("0123456789", 19, 30)),
        _ => r.below(50).to_string(),
    };
    let mut v = if r.percent(20) { "v".to_string() } else { String::new() };
    v.push_str(&num(r));
    if r.percent(70) {
        v = format!("{v}.{}", num(r));
        if r.percent(70) {
            v = format!("{v}.{}", num(r));
        }
    }
    let ident = |r: &mut Rng| {
        if r.clean {
            r.pick(&["rc", "0", "1", "alpha-1", "-", "X"]).to_string()
        } else {
            r.pick(&["rc", "0", "01", "1", "alpha-1", "-", "X", "00"]).to_string()
        }
    };
    if r.percent(25) {
        let ids: Vec<String> = (0..r.range(1, 3)).map(|_| ident(r)).collect();
        v = format!("{v}-{}", ids.join("."));
    }
    if r.percent(10) {
        let ids: Vec<String> = (0..r.range(1, 2)).map(|_| ident(r)).collect();
        v = format!("{v}+{}", ids.join("."));
    }
    v
}

/// A name of `1..=max` characters; now and then only whitespace or non-ASCII.
fn name(r: &mut Rng, max: usize) -> String {
    if r.clean {
        return r.chars(NAME, 1, max.min(16));
    }
    match r.below(30) {
        0 => " ".into(),
        1 => "\u{fc}ber".into(),
        2 => clip(r.chars(NAME, max, max), max),
        _ => r.chars(NAME, 1, max.min(16)),
    }
}

fn selectors(r: &mut Rng) -> Vec<PlatformSelector> {
    (0..r.len(16))
        .map(|_| PlatformSelector {
            os: if !r.clean && r.percent(5) { " ".into() } else { r.pick(&["linux", "windows", "x"]).into() },
            architecture: if !r.clean && r.percent(5) {
                "\t".into()
            } else {
                r.pick(&["amd64", "arm64", "s390x"]).into()
            },
        })
        .collect()
}

/// Distinct names (the list-map keys the schema declares).
fn distinct_names(r: &mut Rng, n: usize, max_len: usize) -> Vec<String> {
    let mut seen = HashSet::new();
    (0..n).map(|_| name(r, max_len)).filter(|n| seen.insert(n.clone())).collect()
}

fn platform(r: &mut Rng) -> Platform {
    let n = r.len(32);
    let channels = distinct_names(r, n, 64)
        .into_iter()
        .map(|name| ReleaseChannel {
            name,
            release_type: if r.percent(20) { ReleaseType::Okd } else { ReleaseType::Ocp },
            min_version: r.maybe(40, version),
            max_version: r.maybe(40, version),
            shortest_path: r.percent(20),
            full: r.percent(20),
        })
        .collect();
    // CEL: architectures and platforms are mutually exclusive.
    let (architectures, platforms) = if r.percent(50) {
        let all =
            [Architecture::Amd64, Architecture::Arm64, Architecture::Ppc64le, Architecture::S390x, Architecture::Multi];
        ((0..r.len(5)).map(|_| r.pick(&all)).collect(), Vec::new())
    } else {
        (Vec::new(), selectors(r))
    };
    Platform {
        graph: r.percent(30),
        channels,
        architectures,
        platforms,
        release: r.maybe(20, image_ref),
        kube_virt_container: r.percent(10),
    }
}

fn package(r: &mut Rng, package_name: String, full: bool) -> IncludePackage {
    // CEL: package ranges and channel ranges exclude each other; bundles exclude both and
    // channels; an operator with full: true has no ranges at all.
    let shape = r.below(4);
    let ranged = !full && shape == 1;
    let channel_ranges = !full && shape == 2;
    let bundles = shape == 3;
    let channels = if bundles {
        Vec::new()
    } else {
        let n = r.len(16);
        distinct_names(r, n, 253)
            .into_iter()
            .map(|name| IncludeChannel {
                name,
                min_version: if channel_ranges { r.maybe(50, version) } else { None },
                max_version: if channel_ranges { r.maybe(50, version) } else { None },
            })
            .collect()
    };
    IncludePackage {
        name: package_name,
        channels,
        default_channel: r.maybe(20, |r| name(r, 40)),
        min_version: if ranged { r.maybe(70, version) } else { None },
        max_version: if ranged { r.maybe(70, version) } else { None },
        bundles: if bundles {
            (0..r.len(64)).map(|_| IncludeBundle { name: name(r, 253) }).collect()
        } else {
            Vec::new()
        },
    }
}

fn operator(r: &mut Rng) -> Operator {
    let full = r.percent(30);
    let n = r.len(128);
    let packages = distinct_names(r, n, 253).into_iter().map(|n| package(r, n, full)).collect();
    let template = match r.below(10) {
        0 => Some("configmap:templates/catalog-source.yaml".to_string()),
        1 if !r.clean => Some(
            r.pick(&["configmap:", "configmap:/k", "configmap:n/", "configmap:n/a/b", "/abs/file.yaml", ""]).into(),
        ),
        _ => None,
    };
    Operator {
        catalog: image_ref(r),
        target_catalog: r.maybe(20, repo_path),
        target_tag: r.maybe(20, tag),
        full,
        skip_dependencies: r.percent(10),
        include_dependencies: r.percent(10),
        target_catalog_source_template: template,
        platforms: selectors(r),
        packages,
    }
}

fn additional(r: &mut Rng) -> AdditionalImage {
    let mut name = image_ref(r);
    for _ in 0..8 {
        if cel_additional_name_ok(&name) {
            break;
        }
        name = image_ref(r);
    }
    if !cel_additional_name_ok(&name) {
        name = "quay.io/a/b:1".into();
    }
    AdditionalImage {
        name,
        target_repo: r.maybe(15, repo_path),
        target_tag: r.maybe(15, tag),
        platforms: if r.percent(10) { selectors(r) } else { Vec::new() },
    }
}

/// Regular expressions, valid and not; rarely long (each is compiled several times per case,
/// in a debug build).
fn blocked(r: &mut Rng) -> BlockedImage {
    let fine = ["-debug", "^quay\\.io/", ".*", "ubi", "registry\\.redhat\\.io/ubi9/.*:latest"];
    let name = if r.clean {
        r.pick(&fine).to_string()
    } else {
        match r.below(40) {
            0..=3 => "a(b".to_string(),
            4..=7 => r.pick(&["[", "*", "\\", "(?P<x", "x{2,1}", "\\p{Nope}"]).to_string(),
            8 => "(?:a{8}){8}".to_string(),
            9 => clip(r.chars("ab-_", 1024, 1024), 1024),
            10..=13 => r.chars("ab.*+?()[]|^$\\-", 1, 20),
            _ => r.pick(&fine).to_string(),
        }
    };
    BlockedImage { name }
}

fn blocked_len(r: &mut Rng) -> usize {
    match r.below(1000) {
        0 => 256,
        1..=10 => r.range(0, 64),
        11..=400 => r.range(1, 3),
        _ => 0,
    }
}

fn helm(r: &mut Rng) -> Helm {
    let chart = |r: &mut Rng| HelmChart {
        name: name(r, 20),
        version: r.maybe(50, version),
        path: r.maybe(20, |r| r.chars("abc/._", 0, 20)),
        image_paths: (0..r.len(3)).map(|_| r.chars("{}.[]abc", 0, 20)).collect(),
        platforms: if r.percent(10) { selectors(r) } else { Vec::new() },
    };
    Helm {
        repositories: (0..r.len(3))
            .map(|_| HelmRepository {
                name: name(r, 20),
                url: r.pick(&["https://charts.example.com", "", "not a url"]).into(),
                charts: (0..r.len(3)).map(|_| chart(r)).collect(),
            })
            .collect(),
        local: (0..r.len(2)).map(|_| chart(r)).collect(),
    }
}

fn mirror(r: &mut Rng) -> Mirror {
    // CEL: each (catalog, targetCatalog, targetTag) once.
    let mut seen = HashSet::new();
    let operators = (0..r.len(32))
        .map(|_| operator(r))
        .filter(|o| seen.insert((o.catalog.clone(), o.target_catalog.clone(), o.target_tag.clone())))
        .collect();
    Mirror {
        platform: r.maybe(40, platform),
        operators,
        additional_images: (0..r.len(10_000)).map(|_| additional(r)).collect(),
        helm: r.maybe(10, helm),
        // Each pattern is compiled several times per case: long lists stay rare.
        blocked_images: (0..blocked_len(r)).map(|_| blocked(r)).collect(),
        samples: (0..r.len(2)).map(|_| SampleImage { name: name(r, 10) }).collect(),
    }
}

/// `^[A-Za-z0-9.-]+(:[0-9]+)?$`, distinct.
fn registries(r: &mut Rng) -> Vec<RegistrySettings> {
    let mut seen = HashSet::new();
    (0..r.len(64))
        .map(|_| {
            let mut host = r.chars("abcXYZ019.-", 1, 30);
            if r.percent(30) {
                host = format!("{host}:{}", r.below(70_000));
            }
            host
        })
        .filter(|h| seen.insert(h.clone()))
        .collect::<Vec<String>>()
        .into_iter()
        .map(|host| RegistrySettings {
            host,
            insecure: r.percent(20),
            ca_bundle: r.maybe(20, |r| ConfigMapKeyReference { name: name(r, 253), key: name(r, 253) }),
        })
        .collect()
}

fn spec(r: &mut Rng) -> ImageSetConfigurationSpec {
    let (mirror, destination) = (mirror(r), destination(r));
    // Archives to import: into a registry, from a plain path when the case is well-formed.
    let clean = r.clean;
    let from = r
        .maybe(10, |r| format!("file://{}", r.chars(if clean { "ab" } else { "ab/." }, 1, 12)))
        .filter(|_| !clean || destination.starts_with("docker://"));
    // Shards above 1 copy registry to registry.
    let registry_to_registry = destination.starts_with("docker://") && from.is_none();
    let shards = r
        .maybe(15, |r| if r.percent(10) { 65 } else { r.range(1, 9) as u32 })
        .filter(|s| !clean || *s == 1 || (*s <= 64 && registry_to_registry));
    ImageSetConfigurationSpec {
        mirror,
        destination,
        from,
        registries_conf: None,
        shards,
        archive_size: r.maybe(20, |r| if r.percent(10) { i64::MAX } else { r.below(1000) as i64 }),
        auth_secret_ref: r.maybe(20, |r| LocalObjectReference { name: name(r, 253) }),
        registries: registries(r),
        resync_interval: r.maybe(70, interval),
        dry_run: r.percent(30),
        max_nested_paths: r.maybe(30, |r| r.range(0, 64) as u32),
        update_url: r.maybe(10, |r| format!("{}://{}", r.pick(&["http", "https"]), r.chars("abc./:?=", 0, 40))),
        cluster_resources: r.maybe(20, |r| ClusterResources {
            apply: r.maybe(50, |r| if r.percent(50) { ApplyPolicy::Apply } else { ApplyPolicy::Hold }),
            on_delete: r.maybe(50, |r| if r.percent(50) { DeletionPolicy::Delete } else { DeletionPolicy::Keep }),
            approved_changes_digest: r.maybe(30, |r| format!("sha256:{}", hex(r, 64))),
        }),
    }
}

/// Values the current CRD refuses but an older one (or a cluster without the CRD's rules)
/// might have stored: the operator must refuse them naming the field, not crash.
fn off_schema(r: &mut Rng, s: &mut ImageSetConfigurationSpec) {
    match r.below(5) {
        0 | 1 => {
            s.resync_interval = Some(
                r.pick(&[
                    "", "6", "6x", "-1h", "+1h", " 6h", "1d", "1h\n", "\u{b5}s", "1.h", ".5h", "1e3s", "NaNh", "infh",
                ])
                .to_string(),
            );
            if r.percent(50) {
                let long = match r.below(3) {
                    0 => "1h".repeat(r.range(17, 5000)),
                    1 => format!("{}h", "9".repeat(r.range(33, 5000))),
                    _ => format!("1.{}s", "9".repeat(r.range(33, 5000))),
                };
                s.resync_interval = Some(long);
            }
        }
        2 => {
            s.destination =
                r.pick(&["registry.example.com", "docker://", "docker:///x", "oci://x", "", "file://rel"]).into()
        }
        3 => {
            let p = s.mirror.platform.get_or_insert_with(Platform::default);
            p.channels.push(ReleaseChannel {
                name: "stable-4.18".into(),
                min_version: Some(r.pick(&["4.x", "1.2.3.4", "", "01.2", "v", "1..2", " 1.0", "1.0.0-"]).into()),
                ..Default::default()
            });
        }
        _ => {
            s.mirror.additional_images.push(AdditionalImage { name: "quay.io/a/b".into(), ..Default::default() });
            s.mirror.operators.push(Operator { catalog: String::new(), ..Default::default() });
        }
    }
}

// ---- The schema, checked: the generator must produce what the CRD admits ----------------

fn spec_schema() -> Value {
    let crd = serde_json::to_value(ImageSetConfiguration::crd()).expect("crd serializes");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

/// What the CRD's OpenAPI schema would refuse in `value` (types, patterns, lengths, list
/// bounds, list-map key uniqueness, required fields).
fn schema_violations(
    value: &Value,
    schema: &Value,
    path: &str,
    res: &mut HashMap<String, regex::Regex>,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut bad = |what: String| out.push(format!("{path}: {what}"));
    match value {
        Value::Null => {
            if schema["nullable"] != Value::Bool(true) {
                bad("null".into());
            }
        }
        Value::String(s) => {
            let n = s.chars().count() as u64;
            if schema["type"] != "string" {
                bad(format!("string where the schema has {}", schema["type"]));
            }
            if let Some(max) = schema["maxLength"].as_u64()
                && n > max
            {
                bad(format!("longer than {max}"));
            }
            if let Some(min) = schema["minLength"].as_u64()
                && n < min
            {
                bad(format!("shorter than {min}"));
            }
            if let Some(p) = schema["pattern"].as_str() {
                let re = res.entry(p.to_string()).or_insert_with(|| regex::Regex::new(p).expect("schema pattern"));
                if !re.is_match(s) {
                    bad(format!("{s:?} does not match {p}"));
                }
            }
            if let Some(e) = schema["enum"].as_array()
                && !e.contains(value)
            {
                bad(format!("{s:?} not in {e:?}"));
            }
        }
        Value::Number(x) => {
            if let (Some(min), Some(v)) = (schema["minimum"].as_f64(), x.as_f64())
                && v < min
            {
                bad(format!("below {min}"));
            }
            if let (Some(max), Some(v)) = (schema["maximum"].as_f64(), x.as_f64())
                && v > max
            {
                bad(format!("above {max}"));
            }
        }
        Value::Bool(_) => {}
        Value::Array(items) => {
            if let Some(max) = schema["maxItems"].as_u64()
                && items.len() as u64 > max
            {
                bad(format!("more than {max} items"));
            }
            if schema["x-kubernetes-list-type"] == "map" {
                let keys: Vec<&str> = schema["x-kubernetes-list-map-keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                let mut seen = HashSet::new();
                for item in items {
                    let key: Vec<&Value> = keys.iter().map(|k| &item[*k]).collect();
                    if !seen.insert(format!("{key:?}")) {
                        bad(format!("duplicate key {key:?}"));
                    }
                }
            }
            for (i, item) in items.iter().enumerate() {
                out.extend(schema_violations(item, &schema["items"], &format!("{path}[{i}]"), res));
            }
        }
        Value::Object(map) => {
            for req in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                if !map.contains_key(req) {
                    bad(format!("{req} is required"));
                }
            }
            for (k, v) in map {
                match schema["properties"].get(k) {
                    Some(s) => out.extend(schema_violations(v, s, &format!("{path}.{k}"), res)),
                    None => out.push(format!("{path}.{k}: not in the schema")),
                }
            }
        }
    }
    out
}

/// What the CRD's CEL rules would refuse, other than the resyncInterval bound (checked
/// separately: older CRDs lack it).
fn cel_violations(s: &ImageSetConfigurationSpec) -> Vec<String> {
    let mut out = Vec::new();
    let m = &s.mirror;
    if let Some(p) = &m.platform
        && !p.architectures.is_empty()
        && !p.platforms.is_empty()
    {
        out.push("platform: architectures and platforms".to_string());
    }
    let mut seen = HashSet::new();
    for (i, o) in m.operators.iter().enumerate() {
        if !seen.insert((&o.catalog, &o.target_catalog, &o.target_tag)) {
            out.push(format!("operators[{i}]: duplicate catalog entry"));
        }
        let ranged = |p: &IncludePackage| p.min_version.is_some() || p.max_version.is_some();
        let chan_ranged =
            |p: &IncludePackage| p.channels.iter().any(|c| c.min_version.is_some() || c.max_version.is_some());
        if o.full && o.packages.iter().any(|p| ranged(p) || chan_ranged(p)) {
            out.push(format!("operators[{i}]: full with ranges"));
        }
        for (j, p) in o.packages.iter().enumerate() {
            if ranged(p) && chan_ranged(p) {
                out.push(format!("operators[{i}].packages[{j}]: both ranges"));
            }
            if !p.bundles.is_empty() && (!p.channels.is_empty() || ranged(p)) {
                out.push(format!("operators[{i}].packages[{j}]: bundles with channels or ranges"));
            }
        }
    }
    for (i, a) in m.additional_images.iter().enumerate() {
        if !cel_additional_name_ok(&a.name) {
            out.push(format!("additionalImages[{i}]: no tag or digest"));
        }
        if let Some(at) = a.name.find('@')
            && !a.name.starts_with("oci://")
            && ![72, 136].contains(&(a.name[at..].chars().count()))
        {
            out.push(format!("additionalImages[{i}]: digest length"));
        }
        if blank_platform(&a.platforms) {
            out.push(format!("additionalImages[{i}].platforms: blank"));
        }
    }
    // The reference rules of catalogs and releases, blank names and platforms, regular
    // expressions (as the operator compiles them: Go's syntax, which the apiserver uses, differs
    // at the edges), and ConfigMap templates.
    static REFERENCE: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(REFERENCE_PATTERN).expect("static pattern"));
    if let Some(p) = &m.platform {
        if p.release.as_ref().is_some_and(|r| !REFERENCE.is_match(r)) {
            out.push("platform.release".into());
        }
        if blank_platform(&p.platforms) {
            out.push("platform.platforms: blank".into());
        }
        for (i, c) in p.channels.iter().enumerate() {
            if c.name.trim().is_empty() {
                out.push(format!("platform.channels[{i}].name: blank"));
            }
        }
    }
    for (i, o) in m.operators.iter().enumerate() {
        if !REFERENCE.is_match(&o.catalog) {
            out.push(format!("operators[{i}].catalog"));
        }
        if blank_platform(&o.platforms) {
            out.push(format!("operators[{i}].platforms: blank"));
        }
        if o.target_catalog_source_template.as_ref().is_some_and(|t| {
            let (name, key) = t.strip_prefix("configmap:").and_then(|r| r.split_once('/')).unwrap_or_default();
            name.is_empty() || key.is_empty() || key.contains('/')
        }) {
            out.push(format!("operators[{i}].targetCatalogSourceTemplate"));
        }
        for (j, p) in o.packages.iter().enumerate() {
            if p.name.trim().is_empty() {
                out.push(format!("operators[{i}].packages[{j}].name: blank"));
            }
        }
    }
    for (i, b) in m.blocked_images.iter().enumerate() {
        if regex::Regex::new(&b.name).is_err() {
            out.push(format!("blockedImages[{i}]: not a regular expression"));
        }
    }
    // Archive paths stay under the archive directory; archives are imported into a registry.
    for (field, v) in [("destination", Some(&s.destination)), ("from", s.from.as_ref())] {
        if let Some(path) = v.and_then(|v| v.strip_prefix("file://"))
            && (path.starts_with('/') || path.split('/').any(|c| c == ".."))
        {
            out.push(format!("{field}: leaves the archive directory"));
        }
    }
    if s.shards.is_some_and(|n| n != 1) && (!s.destination.starts_with("docker://") || s.from.is_some()) {
        out.push("shards: registry to registry only".to_string());
    }
    if s.from.is_some() && !s.destination.starts_with("docker://") {
        out.push("from: not into a registry".into());
    }
    out
}

fn blank_platform(platforms: &[PlatformSelector]) -> bool {
    platforms.iter().any(|p| p.os.trim().is_empty() || p.architecture.trim().is_empty())
}

// ---- An independent oracle for the resyncInterval bound ------------------------------------

#[derive(Debug)]
enum Expect {
    /// Accepted, about this many nanoseconds (within `slack`).
    InRange {
        nanos: f64,
        slack: f64,
    },
    Zero,
    TooLong,
    /// Not decided here: outside the schema pattern, or within a nanosecond or so of a bound.
    Unknown,
}

/// What the CEL rule `duration(self) > duration('0s') && duration(self) <= duration('8784h')`
/// decides, computed in floating point from the pattern's components.
fn expect(s: &str) -> Expect {
    static WHOLE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$").expect("static pattern")
    });
    static PART: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)").expect("static pattern")
    });
    if !WHOLE.is_match(s) {
        return Expect::Unknown;
    }
    let mut total = 0f64;
    let mut parts = 0f64;
    for c in PART.captures_iter(s) {
        let n: f64 = c[1].parse().expect("pattern digits");
        let unit = match &c[2] {
            "ns" => 1.0,
            "us" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            _ => 3600e9,
        };
        total += n * unit;
        parts += 1.0;
    }
    let max = api::MAX_INTERVAL.as_nanos() as f64;
    if total < 1.0 {
        Expect::Zero
    } else if total < parts + 1.0 {
        Expect::Unknown // fractions of a nanosecond per component truncate
    } else if total > max * (1.0 + 1e-12) + parts {
        Expect::TooLong
    } else if total < max * (1.0 - 1e-12) - parts {
        Expect::InRange { nanos: total, slack: total * 1e-12 + parts + 1.0 }
    } else {
        Expect::Unknown
    }
}

// ---- The properties -------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Stats {
    cases: usize,
    off_schema: usize,
    /// Cases the schema admits (the rest are refused at admission, and checked all the same).
    admitted: usize,
    valid: usize,
    refused: usize,
    resync_refused: usize,
    resync_accepted: usize,
    planned_images: usize,
    plan_refused: usize,
    /// Time spent per step, to keep the test quick.
    time: [Duration; 8],
}

fn field_paths(e: &InvalidConfig) -> Vec<&str> {
    e.0.iter().map(|f| f.path.as_str()).collect()
}

/// What admission lets in, the operator accepts, but for refusals this file's restatement of
/// the schema cannot foresee: version ranges out of order (the admission policy refuses those;
/// it is not restated here) and resyncInterval bounds (step 2 checks those against their own
/// oracle). `refusal` is `path: message`.
fn not_restated(refusal: &str) -> bool {
    refusal.starts_with("spec.resyncInterval:") || refusal.contains("is greater than maxVersion")
}

/// Runs everything the operator does with a spec before touching the network, checking each
/// property; `Err` says which one failed.
fn check_case(isc: &ImageSetConfiguration, admitted: bool, via_loader: bool, stats: &mut Stats) -> Result<(), String> {
    let spec = &isc.spec;

    let mut mark = std::time::Instant::now();
    // 1. The operator's spec validation: refusals name fields under spec.
    let validated = validate::validate_spec(spec);
    if let Err(e) = &validated {
        if e.0.is_empty() {
            return Err("validate_spec refused with no field".into());
        }
        for FieldError { path, message } in &e.0 {
            if !path.starts_with("spec.") || message.trim().is_empty() {
                return Err(format!("refusal not naming a spec field: {path:?}: {message:?}"));
            }
        }
    }
    let errors: Vec<FieldError> = validated.as_ref().err().map(|e| e.0.clone()).unwrap_or_default();
    if admitted && let Some(f) = errors.iter().find(|f| !not_restated(&f.to_string())) {
        return Err(format!("admitted, but validate_spec refused {f}"));
    }
    let resync_errors: Vec<&FieldError> = errors.iter().filter(|f| f.path == "spec.resyncInterval").collect();

    stats.time[0] += mark.elapsed();
    mark = std::time::Instant::now();
    // 2. resyncInterval: parse_duration never panics, agrees with the validation and with an
    //    independent computation of the CEL rule, and stays within (0, MAX_INTERVAL].
    match &spec.resync_interval {
        None if !resync_errors.is_empty() => return Err("unset resyncInterval refused".into()),
        None => {}
        Some(s) => {
            let parsed = api::parse_duration(s);
            if parsed.is_ok() != resync_errors.is_empty() {
                return Err(format!("parse_duration {parsed:?} but validate_spec reported {resync_errors:?}"));
            }
            match (&parsed, expect(s)) {
                (Ok(d), _) if *d == Duration::ZERO || *d > api::MAX_INTERVAL => {
                    return Err(format!("parse_duration accepted {d:?}, outside (0, MAX_INTERVAL]"));
                }
                (Ok(d), Expect::InRange { nanos, slack }) if (d.as_nanos() as f64 - nanos).abs() > slack => {
                    return Err(format!("parse_duration gave {d:?}, expected about {nanos} ns"));
                }
                (Err(e), Expect::InRange { .. }) => return Err(format!("in-range duration refused: {e}")),
                (Ok(d), Expect::Zero | Expect::TooLong) => {
                    return Err(format!("out-of-range duration accepted as {d:?}"));
                }
                (Err(api::DurationError::TooLong(_)), Expect::Zero)
                | (Err(api::DurationError::Zero(_)), Expect::TooLong) => {
                    return Err(format!("wrong refusal {parsed:?}"));
                }
                _ => {}
            }
            for f in &resync_errors {
                if !f.message.contains("8784h") {
                    return Err(format!("resyncInterval refusal does not give the range: {}", f.message));
                }
            }
            if parsed.is_ok() {
                stats.resync_accepted += 1;
            } else {
                stats.resync_refused += 1;
            }
        }
    }

    stats.time[1] += mark.elapsed();
    mark = std::time::Instant::now();
    // 3. The destination: whatever the schema admits, planning understands.
    let dest = Destination::parse(&spec.destination);
    if admitted && dest.is_err() {
        return Err(format!("admitted destination refused: {dest:?}"));
    }

    stats.time[2] += mark.elapsed();
    mark = std::time::Instant::now();
    // 4. Planning what needs no network: additional images (to a registry and from archives)
    //    and each catalog's own copy. Refusals name the entry under the mirror path, and
    //    validation has already reported it.
    let max_nested = spec.max_nested_paths.unwrap_or(0);
    let reported = |field: &str| errors.iter().any(|f| f.path == format!("spec.mirror.{field}"));
    if let Ok(d) = &dest {
        for from_disk in [false, true] {
            match plan::plan_additional(&spec.mirror, d, max_nested, from_disk) {
                Ok(p) => {
                    if p.items.len() + p.blocked.len() > spec.mirror.additional_images.len() {
                        return Err("more planned images than additional images".into());
                    }
                    stats.planned_images += p.items.len();
                }
                Err(PlanError::Reference { field, source }) => {
                    if !field.starts_with("additionalImages[") || !reported(&field) {
                        return Err(format!("plan refused {field}: {source}, not reported by validate_spec"));
                    }
                    stats.plan_refused += 1;
                }
                Err(e) => return Err(format!("plan_additional: unexpected refusal {e}")),
            }
        }
        for (i, op) in spec.mirror.operators.iter().enumerate() {
            let digest = "sha256:61b8f5e1a3b5dbd9e2c35fd448dc5106337d7a299873dd3a6f0cd8d4891ecc27";
            for rebuilt in [None, Some(digest)] {
                match plan::catalog_item(i, op, rebuilt, d, max_nested) {
                    Ok(item) => {
                        if !item.destination.starts_with("docker://") {
                            return Err(format!("catalog destination {:?}", item.destination));
                        }
                    }
                    Err(PlanError::Reference { field, source }) => {
                        if field != format!("operators[{i}].catalog") || !reported(&field) {
                            return Err(format!(
                                "catalog_item refused {field}: {source}, not reported by validate_spec"
                            ));
                        }
                    }
                    Err(e) => return Err(format!("catalog_item: unexpected refusal {e}")),
                }
            }
        }
    }

    stats.time[3] += mark.elapsed();
    mark = std::time::Instant::now();
    // 5. The controller's own check (what makes a spec InvalidSpec): refusals name a spec
    //    field; anything validation found, it finds too (resyncInterval included).
    match imageset_operator::controller::check_spec(isc) {
        Ok(()) => {
            if let Some(f) = errors.first() {
                return Err(format!("check_spec accepted what validate_spec refused: {f}"));
            }
        }
        Err(msg) => {
            let named = msg.strip_prefix("invalid configuration: ").unwrap_or(&msg);
            if !named.starts_with("spec.") {
                return Err(format!("check_spec refusal does not name a spec field: {msg:?}"));
            }
            if admitted && !not_restated(named) {
                return Err(format!("admitted, but check_spec refused: {msg}"));
            }
        }
    }

    stats.time[4] += mark.elapsed();
    mark = std::time::Instant::now();
    // 6. The same object through the CLI's loader (YAML, strict decoding): the same verdict.
    //    (Every other case: it is the slowest step.)
    if via_loader {
        let yaml = serde_saphyr::to_string(isc).map_err(|e| format!("to YAML: {e}"))?;
        match load::image_set(&yaml) {
            Ok(f) => {
                if let Err(e) = &validated {
                    return Err(format!("the loader accepted what validate_spec refused: {e}"));
                }
                if f.spec.as_ref() != Some(spec) {
                    return Err("the loader changed the spec".into());
                }
            }
            Err(LoadError::Invalid(e)) => {
                if validated.as_ref().err() != Some(&e) {
                    return Err(format!("the loader refused {:?}, validate_spec {:?}", field_paths(&e), errors));
                }
            }
            Err(e) => return Err(format!("the loader refused with no field: {e}")),
        }
    }

    stats.time[5] += mark.elapsed();
    mark = std::time::Instant::now();
    // 7. JSON, as the controller receives the object, round-trips.
    let json = serde_json::to_value(isc).map_err(|e| e.to_string())?;
    let back: ImageSetConfiguration = serde_json::from_value(json).map_err(|e| format!("from JSON: {e}"))?;
    if back.spec != *spec {
        return Err("JSON round trip changed the spec".into());
    }

    stats.time[6] += mark.elapsed();
    match validated {
        Ok(()) => stats.valid += 1,
        Err(_) => stats.refused += 1,
    }
    Ok(())
}

fn report(case: usize, isc: &ImageSetConfiguration, why: &str) -> ! {
    let mut yaml = serde_saphyr::to_string(isc).unwrap_or_else(|e| format!("(no YAML: {e})\n{isc:?}"));
    if yaml.len() > 20_000 {
        let mut end = 20_000;
        while !yaml.is_char_boundary(end) {
            end -= 1;
        }
        yaml.truncate(end);
        yaml.push_str("\n... (truncated)");
    }
    panic!("case {case} (seed {SEED:#x}): {why}\n---\n{yaml}");
}

/// Every admitted spec validates and plans without a panic; every refusal names a field.
#[test]
fn admitted_specs_validate_and_plan_without_panics_and_refusals_name_fields() {
    let schema = spec_schema();
    let mut patterns = HashMap::new();
    let mut rng = Rng { state: SEED, clean: false };
    let mut stats = Stats::default();
    let start = std::time::Instant::now();
    for case in 0..CASES {
        rng.clean = rng.percent(35);
        let mut spec = spec(&mut rng);
        let off = rng.percent(10);
        if off {
            off_schema(&mut rng, &mut spec);
            stats.off_schema += 1;
        }
        let mut isc = ImageSetConfiguration::new(&format!("case-{case}"), spec);
        isc.metadata.namespace = Some("tenant".into());
        let mark = std::time::Instant::now();
        // What the CRD would say (the generator makes values on both sides of its rules).
        let value = serde_json::to_value(&isc.spec).expect("spec serializes");
        let mut refused = schema_violations(&value, &schema, "spec", &mut patterns);
        refused.extend(cel_violations(&isc.spec));
        let admitted = refused.is_empty() && !off;
        if rng.clean && !off && !admitted {
            report(case, &isc, &format!("the generator's well-formed spec is refused by the schema: {refused:?}"));
        }
        if admitted {
            stats.admitted += 1;
        }
        stats.time[7] += mark.elapsed();
        let outcome = catch_unwind(AssertUnwindSafe(|| check_case(&isc, admitted, case % 2 == 0, &mut stats)));
        match outcome {
            Ok(Ok(())) => stats.cases += 1,
            Ok(Err(why)) => report(case, &isc, &why),
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                report(case, &isc, &format!("panicked: {msg}"));
            }
        }
    }
    eprintln!("{stats:?} in {:?}", start.elapsed());
    // The generator reaches both verdicts everywhere it matters.
    assert_eq!(stats.cases, CASES);
    assert!(stats.valid > CASES / 20 && stats.refused > CASES / 20, "{stats:?}");
    assert!(stats.admitted > CASES / 5 && stats.admitted < CASES - CASES / 5, "{stats:?}");
    assert!(stats.resync_refused > 100 && stats.resync_accepted > 100, "{stats:?}");
    assert!(stats.planned_images > 0 && stats.plan_refused > 0, "{stats:?}");
}

/// The reported defect, exactly: admitted by the old pattern-only schema, and now refused by
/// the operator naming the field instead of panicking in `Duration::from_secs_f64`.
#[test]
fn the_huge_resync_interval_is_refused_naming_the_field() {
    let mut isc = ImageSetConfiguration::new(
        "huge",
        serde_json::from_value(serde_json::json!({
            "destination": "docker://mirror.example.com:5000/ocp",
            "mirror": {"additionalImages": [{"name": "quay.io/a/b:1"}]},
            "resyncInterval": "99999999999999999999h",
        }))
        .unwrap(),
    );
    let e = validate::validate_spec(&isc.spec).unwrap_err();
    assert_eq!(field_paths(&e), ["spec.resyncInterval"]);
    assert!(e.to_string().contains("at most 8784h"), "{e}");
    assert!(matches!(expect("99999999999999999999h"), Expect::TooLong));
    isc.spec.resync_interval = Some("1h30m".into());
    assert_eq!(validate::validate_spec(&isc.spec), Ok(()));
    assert_eq!(validate::resync_interval(&isc.spec), Ok(Some(Duration::from_secs(5400))));
}
