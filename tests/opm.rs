//! The catalog fixture judged by real opm: catalog images built from the shared FBC, pulled
//! back by an independent client and served by opm with their own Cmd, answer over gRPC with
//! exactly the packages, channels and bundles of their FBC; and opm refuses a cache that no
//! longer matches its configs, which is why rebuilt catalogs must regenerate or drop it.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::content::Format;
use support::image::{ImageConfig, extract_image, layer, push_image};
use support::opm::{CONFIGS_LABEL, CatalogFixture, OpmServer, PackageInfo, fbc_documents, image_refs};
use support::registry::{Registry, RegistryOptions};
use support::{sha256, shared_data, temp_dir};

/// What opm must serve, derived from the FBC documents themselves.
struct Expected {
    packages: BTreeSet<String>,
    info: BTreeMap<String, PackageInfo>,
    /// `(package, channel, bundle)` for every channel entry.
    bundles: BTreeSet<(String, String, String)>,
    /// `(package, bundle)` -> the bundle's image.
    images: BTreeMap<(String, String), String>,
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn expected(docs: &[Value]) -> Expected {
    let of = |schema: &'static str| docs.iter().filter(move |d| d["schema"] == schema);
    let mut info: BTreeMap<String, PackageInfo> = of("olm.package")
        .map(|p| {
            let name = s(&p["name"]);
            (name.clone(), PackageInfo { name, default_channel: s(&p["defaultChannel"]), channels: BTreeMap::new() })
        })
        .collect();
    let mut bundles = BTreeSet::new();
    for c in of("olm.channel") {
        let (package, channel) = (s(&c["package"]), s(&c["name"]));
        let entries = c["entries"].as_array().expect("channel entries");
        // The head is the one entry no other entry replaces or skips, as opm's model has it.
        let mut incoming = BTreeSet::new();
        for e in entries {
            incoming.insert(s(&e["replaces"]));
            incoming.extend(e["skips"].as_array().into_iter().flatten().map(s));
        }
        let heads: Vec<String> = entries.iter().map(|e| s(&e["name"])).filter(|n| !incoming.contains(n)).collect();
        assert_eq!(heads.len(), 1, "{package}/{channel} has heads {heads:?}");
        info.get_mut(&package).expect("channel of a known package").channels.insert(channel.clone(), heads[0].clone());
        bundles.extend(entries.iter().map(|e| (package.clone(), channel.clone(), s(&e["name"]))));
    }
    let images = of("olm.bundle").map(|b| ((s(&b["package"]), s(&b["name"])), s(&b["image"]))).collect();
    Expected { packages: info.keys().cloned().collect(), info, bundles, images }
}

/// Every file under `dir` with its bytes, by relative path.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.strip_prefix(dir).unwrap().to_path_buf(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Fetches a manifest of `reference` (`host/repo:tag`, `host/repo@digest` or both) from `reg`.
fn manifest(reg: &Registry, reference: &str) -> Vec<u8> {
    let rest = reference.strip_prefix(&format!("{}/", reg.host)).expect("a reference into the registry");
    let (repo, r) = match rest.split_once('@') {
        Some((name, digest)) => (name.rsplit_once(':').filter(|(_, t)| !t.contains('/')).map_or(name, |n| n.0), digest),
        None => rest.rsplit_once(':').expect("a tag"),
    };
    let resp = reg
        .authorize(repo, reg.http().get(format!("{}/v2/{repo}/manifests/{r}", reg.base_url())))
        .header("Accept", imageset_operator::image::manifest::ACCEPT)
        .send()
        .unwrap();
    assert!(resp.status().is_success(), "{reference}: {}", resp.status());
    resp.bytes().unwrap().to_vec()
}

fn fbc(path: &str) -> PathBuf {
    shared_data().join("fbc").join(path)
}

#[test]
fn a_catalog_image_serves_exactly_its_fbc_under_its_own_cmd() {
    let reg = Registry::start(RegistryOptions::default());
    // oc-mirror's test catalog (YAML, several files per package), a community package (one
    // YAML stream) and a Red Hat package (a JSON stream).
    let dirs = [
        fbc("oc-mirror-test-catalogs/test-catalog-latest"),
        fbc("community-operators-prod/v4.18/ecr-secret-operator"),
        fbc("redhat-operator-index/aws-load-balancer-operator"),
    ];
    let cat = dirs
        .iter()
        .fold(CatalogFixture::new("redhat/redhat-operator-index", "v4.18").multi_arch(true), |f, d| f.fbc(d))
        .build(&reg);
    let docs: Vec<Value> = dirs.iter().flat_map(|d| fbc_documents(d)).collect();
    let want = expected(&docs);

    // Every image the FBC names has a stand-in, pinned by digest when the original was.
    assert_eq!(cat.images.keys().cloned().collect::<BTreeSet<_>>(), image_refs(&docs));
    assert!(cat.images.len() > 10, "only {} images", cat.images.len());
    for (old, new) in &cat.images {
        assert_eq!(old.contains('@'), new.contains('@'), "{old} -> {new}");
        let raw = manifest(&reg, new);
        if let Some((_, digest)) = new.split_once('@') {
            assert_eq!(sha256(&raw), digest, "{new}");
        }
    }
    assert_eq!(cat.digest, sha256(&manifest(&reg, &format!("{}@{}", cat.reference, cat.digest))));

    let root = temp_dir("catalog-rootfs-");
    let config = extract_image(&reg, &cat.reference, root.path());
    assert_eq!(config.platform, ("linux".to_string(), "amd64".to_string()));
    assert_eq!(config.entrypoint, ["/bin/opm"]);
    assert_eq!(config.cmd, ["serve", "/configs", "--cache-dir=/tmp/cache"]);
    assert_eq!(config.labels[CONFIGS_LABEL], "/configs");
    // The image carries the fixture's rewritten FBC and cache byte for byte.
    assert_eq!(tree(&root.path().join("configs")), tree(&cat.configs));
    assert_eq!(tree(&root.path().join("tmp/cache")), tree(&cat.cache));
    assert!(root.path().join("bin/README").is_file());

    let opm = OpmServer::start(root.path(), &config).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(opm.packages().into_iter().collect::<BTreeSet<_>>(), want.packages);
    for p in &want.packages {
        assert_eq!(opm.package(p), want.info[p], "GetPackage {p}");
    }
    let bundles = opm.bundles();
    assert_eq!(bundles.len(), want.bundles.len(), "ListBundles repeats a bundle");
    assert_eq!(bundles.into_iter().collect::<BTreeSet<_>>(), want.bundles);
    // What OLM would pull is the stand-in in the registry, not the original.
    for b in opm.grpc("api.Registry/ListBundles", None) {
        let original = &want.images[&(s(&b["packageName"]), s(&b["csvName"]))];
        assert_eq!(s(&b["bundlePath"]), cat.images[original], "{}", b["csvName"]);
    }
}

/// test-catalog-latest as an OCI image, pulled by digest, its configs cut down to `foo` with
/// the cache left as shipped (for foo, bar and baz).
fn stale_rootfs(reg: &Registry) -> (tempfile::TempDir, ImageConfig) {
    let cat = CatalogFixture::new("test/catalog", "v1")
        .fbc(fbc("oc-mirror-test-catalogs/test-catalog-latest"))
        .format(Format::Oci)
        .build(reg);
    let root = temp_dir("stale-rootfs-");
    let config = extract_image(reg, &format!("test/catalog@{}", cat.digest), root.path());
    for gone in ["bar", "baz"] {
        std::fs::remove_dir_all(root.path().join("configs").join(gone)).unwrap();
    }
    (root, config)
}

#[test]
fn opm_refuses_a_cache_that_does_not_match_its_configs() {
    let reg = Registry::start(RegistryOptions::default());
    let (root, config) = stale_rootfs(&reg);
    let err = OpmServer::start(root.path(), &config).err().expect("opm served a stale cache");
    assert!(err.contains("integrity check failed") && err.contains("cache requires rebuild"), "{err}");
}

#[test]
fn opm_rebuilds_a_stale_cache_when_its_cmd_does_not_enforce_integrity() {
    let reg = Registry::start(RegistryOptions::default());
    let (root, config) = stale_rootfs(&reg);
    let digest = root.path().join("tmp/cache/pogreb.v1/digest");
    let shipped = std::fs::read(&digest).unwrap();

    // --cache-enforce-integrity=false: opm rebuilds the shipped cache in place at start.
    let mut relaxed = config.clone();
    relaxed.cmd.push("--cache-enforce-integrity=false".into());
    let opm = OpmServer::start(root.path(), &relaxed).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(opm.packages(), ["foo"]);
    drop(opm);
    assert_ne!(std::fs::read(&digest).unwrap(), shipped, "the cache was not rebuilt in place");

    // Without --cache-dir opm builds a throwaway cache at start.
    let (root, config) = stale_rootfs(&reg);
    let mut bare = config.clone();
    bare.cmd.retain(|a| !a.starts_with("--cache-dir"));
    let opm = OpmServer::start(root.path(), &bare).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(opm.packages(), ["foo"]);
    assert_eq!(opm.package("foo").channels.len(), 1);
}

#[test]
fn extraction_applies_layers_in_order_and_honours_whiteouts() {
    let reg = Registry::start(RegistryOptions::default());
    let lower = layer(&[
        ("etc", None),
        ("etc/keep", Some(b"1")),
        ("etc/gone", Some(b"2")),
        ("opt", None),
        ("opt/old", Some(b"3")),
        ("opt/sub", None),
        ("opt/sub/x", Some(b"4")),
        ("was-a-file", Some(b"5")),
    ]);
    // The opaque marker comes after this layer's own entry in opt/: it hides only what is below.
    let upper = layer(&[
        ("etc/.wh.gone", Some(b"")),
        ("opt", None),
        ("opt/new", Some(b"6")),
        ("opt/.wh..wh..opq", Some(b"")),
        ("was-a-file", None),
        ("was-a-file/inner", Some(b"7")),
    ]);
    let top = layer(&[("etc/keep", Some(b"8"))]);
    // arm64 first: extraction must pick linux/amd64, not the first entry.
    push_image(
        &reg,
        "test/layers",
        "v1",
        Format::Docker,
        &["arm64", "amd64"],
        &[lower, upper, top],
        json!({"Cmd": ["/bin/true"]}),
    );
    let root = temp_dir("layers-rootfs-");
    let config = extract_image(&reg, &format!("{}/test/layers:v1", reg.host), root.path());
    assert_eq!(config.platform.1, "amd64");
    assert_eq!(config.cmd, ["/bin/true"]);
    let want: BTreeMap<PathBuf, Vec<u8>> = [("etc/keep", b"8"), ("opt/new", b"6"), ("was-a-file/inner", b"7")]
        .into_iter()
        .map(|(p, c)| (PathBuf::from(p), c.to_vec()))
        .collect();
    assert_eq!(tree(root.path()), want);
    assert!(!root.path().join("opt/sub").exists());
}
