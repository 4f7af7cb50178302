//! `includeDependencies` over real catalogs in ../shared/data/fbc; expected sets are worked out
//! by hand from the catalog files (comments show the reasoning).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use super::tests::{data, kept, latest, op, set};
use super::*;

/// The packages of the community catalog snapshot (v4.18) whose directory is in `only` (all
/// when empty).
fn community(only: &[&str]) -> Catalog {
    let gz = std::fs::read(data("bench/community-operators-prod-catalogs-v4.18.tar.gz")).unwrap();
    let mut files = Vec::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&gz[..]));
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let Some(rel) = path.strip_prefix("configs/") else { continue };
        let pkg = rel.split('/').next().unwrap_or_default();
        if !e.header().entry_type().is_file() || (!only.is_empty() && !only.contains(&pkg)) {
            continue;
        }
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).unwrap();
        files.push((rel.to_string(), bytes));
    }
    Catalog::from_files(files).unwrap()
}

/// Channels of the filtered catalog as written (package, channel) -> entry names, after
/// checking that opm would load every channel and find every default channel.
fn written(cat: &Catalog, sel: &Selection) -> BTreeMap<(String, String), Vec<String>> {
    let back = Catalog::from_files(write::filtered_files(cat, sel).unwrap()).unwrap();
    for p in &back.packages {
        let d = p.default_channel.as_deref().unwrap();
        assert!(back.channels.iter().any(|c| c.package == p.name && c.name == d), "{}: default {d}", p.name);
    }
    let mut out = BTreeMap::new();
    for c in &back.channels {
        channel::check(&c.entries.iter().collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("{} {}: {e}", c.package, c.name));
        let mut names: Vec<String> = c.entries.iter().map(|e| e.name.clone()).collect();
        names.sort();
        out.insert((c.package.clone(), c.name.clone()), names);
    }
    for b in &back.bundles {
        assert!(out.iter().any(|((p, _), e)| *p == b.package && e.contains(&b.name)), "{} in no channel", b.name);
    }
    out
}

fn chan(entries: &[(&str, &str, &[&str])]) -> Vec<(String, String, Vec<String>)> {
    entries.iter().map(|(p, c, e)| (p.to_string(), c.to_string(), e.iter().map(|s| s.to_string()).collect())).collect()
}

fn as_map(v: Vec<(String, String, Vec<String>)>) -> BTreeMap<(String, String), Vec<String>> {
    v.into_iter().map(|(p, c, e)| ((p, c), e)).collect()
}

#[test]
fn the_field_is_off_by_default_and_absent_from_written_configs() {
    let plain = op("packages:\n- name: foo\n");
    assert!(!plain.include_dependencies);
    assert!(serde_json::to_value(&plain).unwrap().get("includeDependencies").is_none());
    let on = op("includeDependencies: true\npackages:\n- name: foo\n");
    assert!(on.include_dependencies);
    assert_ne!(crate::plan::filter_id(&plain), crate::plan::filter_id(&on), "a different filter, a different tag");
    // Off: foo's head alone, although it requires bar.
    assert_eq!(kept(&latest(), "packages:\n- name: foo\n"), set(&["foo.v0.3.1"]));
}

#[test]
fn heads_with_dependencies_match_opm_heads_only_fixture() {
    // operator-registry's diff fixture: heads of every channel are bar.v1.0.0 (alpha and
    // stable), baz.v1.1.0 and foo.v0.3.1. foo.v0.3.1 requires package bar <0.2.0: no selected
    // bar is in range; bar's default channel (stable) holds only 1.0.0, so any channel: alpha
    // has 0.1.0 (0.2.0 is not < 0.2.0) -> bar.v0.1.0. alpha is already kept with its head
    // 1.0.0, so the chain 1.0.0 -> 0.2.0 -> 0.1.0 comes along. Its API test.bar/v1alpha1 Bar
    // is provided by the selected bar.v1.0.0. bar has no requirements: closed.
    let dir = data("operator-registry-diff-expected");
    let c = Catalog::load_dir(&dir.join("latest")).unwrap();
    let sel = select(&c, &op("includeDependencies: true"), "f").unwrap();
    let names: BTreeSet<String> = sel.bundles(&c).iter().map(|b| b.name.clone()).collect();
    assert_eq!(names, set(&["bar.v0.1.0", "bar.v0.2.0", "bar.v1.0.0", "baz.v1.1.0", "foo.v0.3.1"]));
    let deps: Vec<&str> = sel.dependencies.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(deps, vec!["bar.v0.1.0", "bar.v0.2.0"]);
    assert!(sel.warnings.is_empty(), "{:?}", sel.warnings);
    let want = as_map(chan(&[
        ("bar", "alpha", &["bar.v0.1.0", "bar.v0.2.0", "bar.v1.0.0"]),
        ("bar", "stable", &["bar.v1.0.0"]),
        ("baz", "stable", &["baz.v1.1.0"]),
        ("foo", "beta", &["foo.v0.3.1"]),
    ]));
    assert_eq!(written(&c, &sel), want);
    // opm's own heads-only output with dependencies has the same bundles and channels.
    let exp = std::fs::read_to_string(dir.join("exp-headsonly/index.yaml")).unwrap();
    // The fixture repeats a key (`packageName` in foo.v0.3.1's olm.package.required); Go's
    // YAML keeps the last one.
    let mut options = parse::yaml_options();
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::LastWins;
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple_with_options(&exp, options).unwrap();
    let mut opm_channels = BTreeMap::new();
    let mut opm_bundles = BTreeSet::new();
    for d in docs.iter().filter(|d| !d.is_null()) {
        let s = |k: &str| d[k].as_str().unwrap_or_default().to_string();
        match d["schema"].as_str() {
            Some("olm.channel") => {
                let mut e: Vec<String> =
                    d["entries"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_string()).collect();
                e.sort();
                opm_channels.insert((s("package"), s("name")), e);
            }
            Some("olm.bundle") => {
                opm_bundles.insert(s("name"));
            }
            _ => {}
        }
    }
    assert_eq!(opm_channels, want);
    assert_eq!(opm_bundles, names);
}

#[test]
fn a_package_alone_brings_only_the_bundles_it_needs() {
    let c = latest();
    // oc-mirror's test catalog: foo's head foo.v0.3.1 requires package bar <0.2.0 (met by
    // bar.v0.1.0, from alpha since stable only has 1.0.0) and API test.bar/v1alpha1 Bar, which
    // bar.v0.1.0 provides. bar was not selected: alpha comes with that one entry and becomes
    // bar's default channel (stable is not kept).
    let y = "includeDependencies: true\npackages:\n- name: foo\n";
    let sel = select(&c, &op(y), "f").unwrap();
    assert_eq!(kept(&c, y), set(&["bar.v0.1.0", "foo.v0.3.1"]));
    assert_eq!(sel.packages["bar"].default_channel.as_deref(), Some("alpha"));
    let want = chan(&[("bar", "alpha", &["bar.v0.1.0"]), ("foo", "beta", &["foo.v0.3.1"])]);
    assert_eq!(written(&c, &sel), as_map(want));
    // A range: foo 0.2.0 (bar <0.2.0 -> bar.v0.1.0), 0.3.0 (bar <0.3.0, already met by
    // 0.1.0), 0.3.1 (met too). Requirements already met bring nothing more.
    let y = "includeDependencies: true\npackages:\n- name: foo\n  minVersion: 0.2.0\n  maxVersion: 0.3.0\n";
    assert_eq!(kept(&c, y), set(&["bar.v0.1.0", "foo.v0.2.0", "foo.v0.3.0", "foo.v0.3.1"]));
    // Taken whole: nothing to add.
    let whole = select(&c, &op("full: true\nincludeDependencies: true"), "f").unwrap();
    assert!(whole.whole && whole.dependencies.is_empty());
}

#[test]
fn real_community_dependencies_are_closed_and_unmet_ones_warned() {
    let c = community(&[
        "rabbitmq-cluster-operator",
        "rabbitmq-messaging-topology-operator",
        "alloydb-omni-operator",
        "shipwright-operator",
    ]);
    // rabbitmq-messaging-topology-operator's head v1.19.3 requires package
    // rabbitmq-cluster-operator >2.0.0: its default channel stable is one replaces chain up to
    // v2.22.3, the highest in range. That bundle provides rabbitmq.com/v1beta1 RabbitmqCluster,
    // the API required next, and requires nothing.
    let y = "includeDependencies: true\npackages:\n- name: rabbitmq-messaging-topology-operator\n";
    let sel = select(&c, &op(y), "f").unwrap();
    assert_eq!(
        kept(&c, y),
        set(&["rabbitmq-cluster-operator.v2.22.3", "rabbitmq-messaging-topology-operator.v1.19.3"])
    );
    assert!(sel.warnings.is_empty(), "{:?}", sel.warnings);
    let w = written(&c, &sel);
    assert_eq!(w[&("rabbitmq-cluster-operator".into(), "stable".into())], vec!["rabbitmq-cluster-operator.v2.22.3"]);
    // Three topology versions with the same requirement still bring one cluster operator.
    let y =
        "includeDependencies: true\npackages:\n- name: rabbitmq-messaging-topology-operator\n  minVersion: 1.18.2\n";
    assert_eq!(kept(&c, y).iter().filter(|b| b.starts_with("rabbitmq-cluster-operator.")).count(), 1);

    // alloydb-omni-operator 1.3.0 requires package cert-manager >=1.12.2, and both 1.3.0 and
    // 1.4.0 require cert-manager's APIs; shipwright's head requires cert-manager and tekton
    // APIs. This catalog has none of them: warnings, one per package and requirement.
    let y = "includeDependencies: true\npackages:\n- name: alloydb-omni-operator\n  minVersion: 1.3.0\n  maxVersion: 1.4.0\n- name: shipwright-operator\n";
    let sel = select(&c, &op(y), "f").unwrap();
    assert!(sel.dependencies.is_empty());
    let w = |needle: &str| sel.warnings.iter().find(|w| w.contains(needle)).cloned().unwrap_or_default();
    let pkg = w("requires package \"cert-manager\"");
    assert!(pkg.starts_with("package \"alloydb-omni-operator\" requires package \"cert-manager\" in range \">=1.12.2\" (alloydb-omni-operator.v1.3.0): the catalog has no such package"), "{:?}", sel.warnings);
    let api = w("alloydb-omni-operator\" requires API cert-manager.io/v1 Certificate");
    assert!(
        api.contains(
            "(alloydb-omni-operator.v1.3.0, alloydb-omni-operator.v1.4.0): no bundle of the catalog provides it"
        ),
        "{api}"
    );
    assert!(!w("\"shipwright-operator\" requires API operator.tekton.dev/v1alpha1 TektonConfig").is_empty());
    assert_eq!(sel.warnings.len(), 3 + 1 + 2, "{:#?}", sel.warnings);
}

#[test]
fn every_head_of_the_community_catalog_with_its_dependencies_loads() {
    // All 35 packages: the closure ends, and every channel written stays valid for opm.
    let c = community(&[]);
    let sel = select(&c, &op("includeDependencies: true"), "f").unwrap();
    written(&c, &sel);
    // Heads alone already meet every requirement this catalog can meet (each head of
    // rabbitmq-cluster-operator is 2.22.3); only unmet ones are reported.
    assert!(sel.dependencies.is_empty(), "{:?}", sel.dependencies);
    assert!(sel.warnings.iter().all(|w| w.contains("cert-manager") || w.contains("tekton")), "{:#?}", sel.warnings);
}

fn catalog(yaml: &str) -> Catalog {
    Catalog::from_files(vec![("c/catalog.yaml".into(), yaml.as_bytes().to_vec())]).unwrap()
}

/// A package with one channel `stable` (its default) holding `entries` (name, replaces), each
/// a bundle `name` with version `v` and properties `props` (YAML list items).
fn package(name: &str, entries: &[(&str, Option<&str>, &str, &str)]) -> String {
    let mut y = format!(
        "---\nschema: olm.package\nname: {name}\ndefaultChannel: stable\n---\nschema: olm.channel\npackage: {name}\nname: stable\nentries:\n"
    );
    for (b, r, _, _) in entries {
        y.push_str(&format!("- name: {b}\n"));
        if let Some(r) = r {
            y.push_str(&format!("  replaces: {r}\n"));
        }
    }
    for (b, _, v, props) in entries {
        y.push_str(&format!(
            "---\nschema: olm.bundle\npackage: {name}\nname: {b}\nimage: r.example.com/{b}:1\nproperties:\n- type: olm.package\n  value: {{packageName: {name}, version: {v}}}\n{props}"
        ));
    }
    y
}

fn gvk(t: &str, kind: &str) -> String {
    format!("- type: {t}\n  value: {{group: example.com, version: v1, kind: {kind}}}\n")
}

#[test]
fn cycles_end_and_apis_prefer_a_default_channel_head() {
    let req =
        |p: &str| format!("- type: olm.package.required\n  value: {{packageName: {p}, versionRange: '>=1.0.0'}}\n");
    let mut y = package("a", &[("a.v1", None, "1.0.0", &req("b"))]);
    y += &package("b", &[("b.v1", None, "1.0.0", &req("a"))]);
    // c needs X and Y. X: p's default head p.v2 provides it (so do p.v1 and q.v9, a higher
    // version in another package: the head of p, first by name, wins). Y: only r.v1 provides
    // it, not r's head.
    y += &package("c", &[("c.v1", None, "1.0.0", &(gvk("olm.gvk.required", "X") + &gvk("olm.gvk.required", "Y")))]);
    y += &package(
        "p",
        &[("p.v1", None, "1.0.0", &gvk("olm.gvk", "X")), ("p.v2", Some("p.v1"), "2.0.0", &gvk("olm.gvk", "X"))],
    );
    y += &package("q", &[("q.v9", None, "9.0.0", &gvk("olm.gvk", "X"))]);
    y += &package("r", &[("r.v1", None, "1.0.0", &gvk("olm.gvk", "Y")), ("r.v2", Some("r.v1"), "2.0.0", "")]);
    let c = catalog(&y);
    let on = |pkgs: &str| kept(&c, &format!("includeDependencies: true\npackages:\n{pkgs}"));
    // a needs b, b needs a (already there): both, once.
    assert_eq!(on("- name: a\n"), set(&["a.v1", "b.v1"]));
    assert_eq!(on("- name: c\n"), set(&["c.v1", "p.v2", "r.v1"]));
    let sel = select(&c, &op("includeDependencies: true\npackages:\n- name: c\n"), "f").unwrap();
    // r's only channel comes with r.v1 alone, which is then its head.
    assert_eq!(sel.packages["r"].channels["stable"], vec!["r.v1"]);
    written(&c, &sel);
}

#[test]
fn connecting_an_entry_brings_the_chain_between_and_its_skippers() {
    // foo/beta: 0.3.1 replaces 0.2.0 and skips 0.3.0 (off the replaces chain); 0.3.0 and
    // 0.2.0 replace the entries below; 0.2.0 replaces 0.1.0.
    let c = latest();
    let beta = &c.channels.iter().find(|ch| ch.package == "foo" && ch.name == "beta").unwrap().entries;
    let head = vec!["foo.v0.3.1".to_string()];
    assert_eq!(channel::connect(beta, &head, "foo.v0.3.0").unwrap(), vec!["foo.v0.3.0", "foo.v0.3.1"]);
    assert_eq!(channel::connect(beta, &head, "foo.v0.1.0").unwrap(), vec!["foo.v0.1.0", "foo.v0.2.0", "foo.v0.3.1"]);
    // From the bottom up: the head joins the tail through the chain.
    let tail = vec!["foo.v0.1.0".to_string()];
    assert_eq!(
        channel::connect(beta, &tail, "foo.v0.3.0").unwrap(),
        vec!["foo.v0.1.0", "foo.v0.2.0", "foo.v0.3.0", "foo.v0.3.1"]
    );
}
