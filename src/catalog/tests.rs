//! Selection over the real catalogs in ../shared/data/fbc; expected sets are worked out by
//! hand from the channel files (comments show the reasoning).

use std::collections::BTreeSet;
use std::path::PathBuf;

use super::*;
use crate::api::mirror::Operator;

pub(super) fn data(rel: &str) -> PathBuf {
    let base = std::env::var_os("IMAGESET_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    base.join("fbc").join(rel)
}

pub(super) fn latest() -> Catalog {
    Catalog::load_dir(&data("oc-mirror-test-catalogs/test-catalog-latest")).unwrap()
}

pub(super) fn op(yaml: &str) -> Operator {
    serde_saphyr::from_str(&format!("catalog: example.com/catalog:v1\n{yaml}")).unwrap()
}

pub(super) fn kept(cat: &Catalog, yaml: &str) -> BTreeSet<String> {
    let sel = select(cat, &op(yaml), "mirror.operators[0]").unwrap();
    sel.bundles(cat).iter().map(|b| b.name.clone()).collect()
}

pub(super) fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn fails(cat: &Catalog, yaml: &str) -> String {
    select(cat, &op(yaml), "mirror.operators[0]").unwrap_err().to_string()
}

#[test]
fn reads_split_yaml_json_and_bundle_object_layouts() {
    let c = latest();
    assert_eq!(c.packages.len(), 3);
    assert_eq!(c.channels.len(), 4);
    assert_eq!(c.bundles.len(), 10);
    let foo = c.bundles.iter().find(|b| b.name == "foo.v0.3.1").unwrap();
    assert_eq!(foo.version.as_deref(), Some("0.3.1"));
    assert_eq!(foo.image, "quay.io/oc-mirror/oc-mirror-dev:foo-bundle-v0.3.1");
    assert!(foo.related_images.iter().any(|r| r.name == "operator"));

    // package.yaml + channels/ + bundles/ (split layout).
    let sub = Catalog::load_dir(&data("redhat-products/submariner/catalog-4-18")).unwrap();
    assert_eq!(sub.packages.len(), 1);
    assert!(sub.channels.len() > 1 && sub.bundles.len() > 1);
    assert!(sub.bundles.iter().all(|b| b.version.is_some() && !b.image.is_empty()));

    // JSON stream with olm.bundle.object properties (large base64 values skipped, not kept).
    let alb = Catalog::load_dir(&data("redhat-operator-index/aws-load-balancer-operator")).unwrap();
    assert_eq!(alb.bundles.len(), 1);
    assert!(alb.bundles[0].version.is_some());
    assert!(!alb.bundles[0].related_images.is_empty());
    assert_eq!(alb.channels.len(), 2);

    // olm.csv.metadata, one file per package, hundreds of documents.
    let quay = Catalog::load_dir(&data("community-operators-prod/v4.18/project-quay")).unwrap();
    assert_eq!(quay.bundles.len(), 152);
    assert_eq!(quay.channels.len(), 12);
}

#[test]
fn json_and_yaml_of_the_same_blobs_agree() {
    let yaml = latest();
    let mut files = Vec::new();
    for f in &yaml.files {
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(std::str::from_utf8(&f.bytes).unwrap()).unwrap();
        let mut out = Vec::new();
        for d in docs {
            serde_json::to_writer_pretty(&mut out, &d).unwrap();
            out.push(b'\n');
        }
        files.push((f.path.replace(".yaml", ".json"), out));
    }
    let json = Catalog::from_files(files).unwrap();
    let strip = |c: &Catalog| {
        c.bundles.iter().map(|b| (b.name.clone(), b.version.clone(), b.image.clone())).collect::<Vec<_>>()
    };
    assert_eq!(strip(&yaml), strip(&json));
    assert_eq!(
        yaml.channels.iter().map(|c| &c.entries).collect::<Vec<_>>(),
        json.channels.iter().map(|c| &c.entries).collect::<Vec<_>>()
    );
}

#[test]
fn catalog_only_keeps_the_head_of_every_channel() {
    // foo/beta: v0.3.1 skips v0.3.0 and replaces v0.2.0 -> head v0.3.1.
    // bar/alpha: v1.0.0 -> v0.2.0 -> v0.1.0; bar/stable: only v1.0.0.
    // baz/stable: v1.1.0 replaces v1.0.1, which skips v1.0.0 -> head v1.1.0.
    let c = latest();
    assert_eq!(kept(&c, ""), set(&["bar.v1.0.0", "baz.v1.1.0", "foo.v0.3.1"]));
    let sel = select(&c, &op(""), "f").unwrap();
    assert!(!sel.whole);
    assert_eq!(sel.packages["bar"].channels.len(), 2, "every channel, not only the default");
}

#[test]
fn full_without_packages_takes_the_catalog_whole() {
    let c = latest();
    let sel = select(&c, &op("full: true"), "f").unwrap();
    assert!(sel.whole);
    assert_eq!(sel.bundles(&c).len(), c.bundles.len());
}

#[test]
fn packages_channels_and_full() {
    let c = latest();
    assert_eq!(kept(&c, "packages:\n- name: bar\n"), set(&["bar.v1.0.0"]));
    // alpha is not bar's default channel (stable): oc-mirror's error, then the override.
    let e = fails(&c, "packages:\n- name: bar\n  channels:\n  - name: alpha\n");
    assert!(e.contains("the default channel \"stable\" was filtered out"), "{e}");
    assert!(
        e.starts_with("mirror.operators[0].packages[0]: invalid default channel configuration for package \"bar\""),
        "{e}"
    );
    assert_eq!(
        kept(&c, "packages:\n- name: bar\n  defaultChannel: alpha\n  channels:\n  - name: alpha\n"),
        set(&["bar.v1.0.0"])
    );
    let e = fails(&c, "packages:\n- name: bar\n  defaultChannel: nope\n");
    assert!(e.contains("specified default channel override \"nope\" does not exist in the filtered output"), "{e}");
    assert_eq!(kept(&c, "full: true\npackages:\n- name: bar\n"), set(&["bar.v0.1.0", "bar.v0.2.0", "bar.v1.0.0"]));
    let sel = select(&c, &op("packages:\n- name: bar\n  defaultChannel: alpha\n  channels:\n  - name: alpha\n"), "f")
        .unwrap();
    assert_eq!(sel.packages["bar"].default_channel.as_deref(), Some("alpha"));
    let e = fails(&c, "packages:\n- name: nope\n");
    assert_eq!(e, "mirror.operators[0].packages[0].name: package \"nope\" is not in the catalog");
    let e = fails(&c, "packages:\n- name: foo\n  channels:\n  - name: stable\n");
    assert!(e.starts_with("mirror.operators[0].packages[0].channels[0].name: channel \"stable\""), "{e}");
}

#[test]
fn version_ranges_keep_the_minimal_chain() {
    let c = latest();
    // foo/beta chain v0.3.1 -> v0.2.0 -> v0.1.0, v0.3.1 skips v0.3.0. In [0.2.0, 0.3.0]:
    // v0.2.0 and v0.3.0 (skipped by v0.3.1), so v0.3.1 is kept to reach v0.3.0 although out of range.
    assert_eq!(
        kept(&c, "packages:\n- name: foo\n  minVersion: 0.2.0\n  maxVersion: 0.3.0\n"),
        set(&["foo.v0.2.0", "foo.v0.3.0", "foo.v0.3.1"])
    );
    let sel = select(&c, &op("packages:\n- name: foo\n  minVersion: 0.2.0\n  maxVersion: 0.3.0\n"), "f").unwrap();
    assert!(sel.warnings.iter().any(|w| w.contains("foo.v0.3.1") && w.contains("outside the specified range")));
    // Only a minimum: the chain from the head down to v0.2.0.
    assert_eq!(
        kept(&c, "packages:\n- name: foo\n  minVersion: 0.2.0\n"),
        set(&["foo.v0.2.0", "foo.v0.3.0", "foo.v0.3.1"])
    );
    // Only a maximum: v0.2.0 and v0.1.0 (heads above them are not needed).
    assert_eq!(kept(&c, "packages:\n- name: foo\n  maxVersion: 0.2.0\n"), set(&["foo.v0.1.0", "foo.v0.2.0"]));
    // Channel range in a non-default channel.
    assert_eq!(
        kept(
            &c,
            "packages:\n- name: bar\n  defaultChannel: alpha\n  channels:\n  - name: alpha\n    minVersion: 0.2.0\n"
        ),
        set(&["bar.v0.2.0", "bar.v1.0.0"])
    );
    // min == max: exactly that version.
    assert_eq!(kept(&c, "packages:\n- name: foo\n  minVersion: 0.2.0\n  maxVersion: 0.2.0\n"), set(&["foo.v0.2.0"]));
    let e = fails(&c, "packages:\n- name: foo\n  minVersion: 0.2.5\n  maxVersion: 0.2.5\n");
    assert!(e.contains("0.2.5"), "{e}");
    // Empty default channel: oc-mirror's error.
    let e = fails(&c, "packages:\n- name: foo\n  minVersion: 5.0.0\n");
    assert!(
        e.contains("package \"foo\" channel \"beta\" has version range \">=5.0.0\" that results in an empty channel"),
        "{e}"
    );
    // A package range applies to every channel: alpha keeps only v1.0.0, stable keeps it too.
    let sel = select(&c, &op("packages:\n- name: bar\n  minVersion: 1.0.0\n"), "f").unwrap();
    assert_eq!(sel.packages["bar"].channels.keys().collect::<Vec<_>>(), vec!["alpha", "stable"]);
}

#[test]
fn bundles_by_name_keep_channels_valid() {
    let c = latest();
    assert_eq!(
        kept(&c, "packages:\n- name: baz\n  bundles:\n  - name: baz.v1.0.1\n  - name: baz.v1.1.0\n"),
        set(&["baz.v1.0.1", "baz.v1.1.0"])
    );
    // v1.0.0 and v1.1.0 without v1.0.1 leaves two heads.
    let e = fails(&c, "packages:\n- name: baz\n  bundles:\n  - name: baz.v1.0.0\n  - name: baz.v1.1.0\n");
    assert!(e.contains("multiple channel heads found: [baz.v1.0.0 baz.v1.1.0]"), "{e}");
}

#[test]
fn broken_channels_are_reported() {
    let e = |entries: Vec<Entry>| super::upgrades::Graph::build(&entries).err().unwrap();
    let en = |n: &str, r: Option<&str>, s: &[&str]| Entry {
        name: n.into(),
        replaces: r.map(Into::into),
        skips: s.iter().map(|x| x.to_string()).collect(),
        skip_range: None,
    };
    assert!(e(vec![en("a", Some("b"), &[]), en("b", Some("a"), &[])]).contains("no channel heads found"));
    assert!(e(vec![en("a", None, &[]), en("a", None, &[])]).contains("duplicate channel entry \"a\""));
    assert!(e(vec![en("a", Some("a"), &[])]).contains("replaces itself"));
    assert!(e(vec![en("h", Some("b"), &[]), en("b", Some("c"), &[]), en("c", Some("b"), &[])]).contains("cycle"));
    assert!(e(vec![]).contains("no entries"));
}

#[test]
fn channels_with_many_skips_are_walked_once() {
    // 2000 entries, each replacing the previous and skipping the 150 before it: 300k edges,
    // above the YAML parser's default node budget.
    let n: usize = 2000;
    let mut yaml = String::from(
        "schema: olm.package\nname: p\ndefaultChannel: c\n---\nschema: olm.channel\npackage: p\nname: c\nentries:\n",
    );
    for i in 0..n {
        yaml.push_str(&format!("- name: p.v{i}.0.0\n"));
        if i > 0 {
            yaml.push_str(&format!("  replaces: p.v{}.0.0\n", i - 1));
            yaml.push_str("  skips:\n");
            for j in i.saturating_sub(150)..i.saturating_sub(1) {
                yaml.push_str(&format!("  - p.v{j}.0.0\n"));
            }
        }
    }
    for i in 0..n {
        yaml.push_str(&format!(
            "---\nschema: olm.bundle\npackage: p\nname: p.v{i}.0.0\nimage: r/p:{i}\nproperties:\n- type: olm.package\n  value: {{packageName: p, version: {i}.0.0}}\n"
        ));
    }
    let c = Catalog::from_files(vec![("p/catalog.yaml".into(), yaml.into_bytes())]).unwrap();
    assert_eq!(kept(&c, "packages:\n- name: p\n"), set(&["p.v1999.0.0"]));
    // [1000, 1100]: the head must reach down to 1100; 1100 skips 950..1098, so every
    // in-range bundle below it is reached through skips and the chain stops at 1100.
    let k = kept(&c, "packages:\n- name: p\n  minVersion: 1000.0.0\n  maxVersion: 1100.0.0\n");
    assert_eq!(k.len(), 101);
    assert!(k.contains("p.v1100.0.0") && k.contains("p.v1000.0.0") && !k.contains("p.v1101.0.0"));
}

#[test]
fn real_community_catalogs_select_the_heads_of_their_channels() {
    // Independent check: a head is the entry no other entry of its channel replaces or skips.
    for pkg in ["infinispan", "opendatahub-operator", "project-quay", "sailoperator", "hive-operator", "clusterpulse"] {
        let c = Catalog::load_dir(&data(&format!("community-operators-prod/v4.18/{pkg}"))).unwrap();
        let mut heads = BTreeSet::new();
        for ch in &c.channels {
            let referenced: BTreeSet<&str> =
                ch.entries.iter().flat_map(|e| e.replaces.iter().chain(e.skips.iter()).map(String::as_str)).collect();
            let h: Vec<&str> = ch.entries.iter().map(|e| e.name.as_str()).filter(|n| !referenced.contains(n)).collect();
            assert_eq!(h.len(), 1, "{pkg} {}", ch.name);
            heads.insert(h[0].to_string());
        }
        assert_eq!(kept(&c, ""), heads, "{pkg}");
        let full = select(&c, &op(&format!("full: true\npackages:\n- name: {pkg}\n")), "f").unwrap();
        let all: BTreeSet<String> =
            c.channels.iter().flat_map(|ch| ch.entries.iter().map(|e| e.name.clone())).collect();
        let present: BTreeSet<String> = c.bundles.iter().map(|b| b.name.clone()).collect();
        assert_eq!(full.bundles(&c).len(), all.intersection(&present).count(), "{pkg}");
    }
}

#[test]
fn filtered_catalog_files_hold_only_the_selection() {
    let c = latest();
    let sel = select(
        &c,
        &op("packages:\n- name: bar\n  defaultChannel: alpha\n  channels:\n  - name: alpha\n    minVersion: 0.2.0\n"),
        "f",
    )
    .unwrap();
    let files = write::filtered_files(&c, &sel).unwrap();
    assert_eq!(files.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(), vec!["bar/catalog.json"]);
    let back = Catalog::from_files(files).unwrap();
    assert_eq!(back.packages[0].default_channel.as_deref(), Some("alpha"));
    assert_eq!(back.channels.len(), 1);
    assert_eq!(
        back.channels[0].entries.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
        vec!["bar.v0.2.0", "bar.v1.0.0"]
    );
    assert_eq!(back.bundles.iter().map(|b| b.name.as_str()).collect::<Vec<_>>(), vec!["bar.v0.2.0", "bar.v1.0.0"]);
    // The kept bundle blobs are unchanged.
    let orig = c.bundles.iter().find(|b| b.name == "bar.v1.0.0").unwrap();
    let again = back.bundles.iter().find(|b| b.name == "bar.v1.0.0").unwrap();
    assert_eq!(
        (&orig.image, &orig.related_images, &orig.version),
        (&again.image, &again.related_images, &again.version)
    );
}

#[test]
fn parse_errors_name_file_and_line() {
    let e = Catalog::from_files(vec![("p/c.yaml".into(), b"schema: olm.package\nname: p\n---\nname: [\n".to_vec())])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("p/c.yaml:3"), "{e}");
    let e = Catalog::from_files(vec![(
        "p/c.json".into(),
        b"{\"schema\":\"olm.package\",\"name\":\"p\"}\n{\"schema\": }".to_vec(),
    )])
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("p/c.json:2"), "{e}");
    let e = Catalog::from_files(vec![("p/c.yaml".into(), b"schema: olm.bundle\nname: x\n".to_vec())])
        .unwrap_err()
        .to_string();
    assert!(e.contains("olm.bundle blob has no package"), "{e}");
}

#[test]
fn rebuilt_images_replace_the_catalog_and_drop_the_stale_cache() {
    use image::{SourceImage, extract_dir, rebuild};
    let tar_gz = |files: &[(&str, &[u8])]| {
        let mut t = tar::Builder::new(Vec::new());
        for (p, b) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(b.len() as u64);
            h.set_mode(0o644);
            t.append_data(&mut h, p, *b).unwrap();
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &t.into_inner().unwrap()).unwrap();
        gz.finish().unwrap()
    };
    let base = tar_gz(&[("bin/opm", b"binary"), ("configs/old/catalog.json", b"{}"), ("tmp/cache/x", b"stale")]);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/opm"], "Cmd": ["serve", "/configs", "--cache-dir=/tmp/cache"],
                   "Labels": {image::CONFIGS_LABEL: "/configs"}},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:00"]},
        "history": [{"created_by": "base"}]
    });
    let config = serde_json::to_vec(&config).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:c", "size": 1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:l", "size": 1}]
    }))
    .unwrap();
    assert_eq!(image::configs_dir(&config).unwrap(), "configs");
    let files = vec![("bar/catalog.json".to_string(), b"{\"schema\":\"olm.package\",\"name\":\"bar\"}\n".to_vec())];
    let img = SourceImage { manifest: manifest.clone(), config: config.clone() };
    let r = rebuild(None, &[("sha256:m".into(), img)], &files).unwrap();
    let again = rebuild(None, &[("sha256:m".into(), SourceImage { manifest, config })], &files).unwrap();
    assert_eq!(r.top.digest, again.top.digest, "deterministic");
    let m: serde_json::Value = serde_json::from_slice(&r.top.bytes).unwrap();
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    let blob = |d: &str| r.blobs.iter().find(|b| b.digest == d).unwrap().bytes.clone();
    let mut all = vec![("base".to_string(), base.clone())];
    for l in &layers[1..] {
        all.push((l["digest"].as_str().unwrap().to_string(), blob(l["digest"].as_str().unwrap())));
    }
    let out = extract_dir(all.iter().map(|(d, b)| (d.clone(), b.as_slice())), "configs").unwrap();
    assert_eq!(out, files);
    let cache = extract_dir(all.iter().map(|(d, b)| (d.clone(), b.as_slice())), "tmp").unwrap();
    assert!(cache.is_empty(), "stale opm cache removed: {cache:?}");
    let c: serde_json::Value = serde_json::from_slice(&blob(m["config"]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(c["config"]["Cmd"], serde_json::json!(["serve", "/configs"]));
    assert_eq!(c["rootfs"]["diff_ids"].as_array().unwrap().len(), 3);
    assert_eq!(c["config"]["Labels"][image::CONFIGS_LABEL], "/configs");
}
