//! Payload manifests, the graph image and release naming over real data: the OCP 4.12.0
//! image-references (183 components), real boot-images ConfigMaps, the graph-data tarball
//! and oc-mirror's own graph-image layer and staging layout.

use std::collections::BTreeMap;
use std::io::Read;

use serde_json::Value;

use super::*;
use crate::catalog::image::SourceImage;
use crate::plan::{Destination, ImageKind};

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(test_data(rel)).unwrap()
}

#[test]
fn image_references_of_a_real_release() {
    let bytes = read("release/ocp-4.12.0-x86_64/release-manifests/image-references");
    let got = payload::image_references(&bytes, "p").unwrap();
    let raw: Value = serde_json::from_slice(&bytes).unwrap();
    let tags = raw["spec"]["tags"].as_array().unwrap();
    assert_eq!(got.len(), tags.len());
    assert_eq!(got.len(), 183);
    for t in tags {
        let c = got.iter().find(|c| c.name == t["name"].as_str().unwrap()).unwrap();
        assert_eq!(c.image, t["from"]["name"].as_str().unwrap());
        assert!(c.image.starts_with("quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:"));
    }
    // The CVO's own file (YAML, before `oc adm release new` fills in the pullspec).
    let cvo = read("release/cvo-install-image-references");
    let e = payload::image_references(&cvo, "p").unwrap_err();
    assert!(e.to_string().contains("component cluster-update-console-plugin"), "{e}");
    let e = payload::image_references(br#"{"kind":"List","spec":{"tags":[]}}"#, "quay.io/x@sha256:1").unwrap_err();
    assert!(e.to_string().contains("kind \"List\", expected ImageStream"), "{e}");
}

#[test]
fn kubevirt_disks_of_real_boot_images() {
    for rel in ["ocp-4.12.0-x86_64", "ocp-4.13.10"] {
        let y = read(&format!("release/{rel}/release-manifests/0000_50_installer_coreos-bootimages.yaml"));
        let text = String::from_utf8(y.clone()).unwrap();
        let got = payload::kubevirt_images(&y, &payload::kubevirt_arches(["amd64"]), "p").unwrap();
        let x86 = &got["x86_64"];
        assert!(x86.contains("@sha256:"), "{x86}");
        // The same reference appears verbatim in the file, as a digest-ref.
        assert!(text.contains(&format!("\"digest-ref\": \"{x86}\"")), "{rel}: {x86}");
        let multi = payload::kubevirt_images(&y, &payload::kubevirt_arches(["multi"]), "p");
        if text.contains("s390x") {
            // oc-mirror's copy of this file has a placeholder s390x digest: refused, named.
            let e = multi.unwrap_err().to_string();
            assert!(e.contains("s390x kubevirt") && e.contains("invalid digest"), "{e}");
        } else {
            assert_eq!(multi.unwrap().keys().collect::<Vec<_>>(), vec!["x86_64"]);
        }
    }
    assert_eq!(payload::kubevirt_arches(["multi"]), vec!["s390x", "x86_64"]);
    assert_eq!(payload::kubevirt_arches(std::iter::empty()), vec!["x86_64"]);
    let none = b"apiVersion: v1\nkind: ConfigMap\ndata:\n  stream: '{\"architectures\":{}}'\n";
    let e = payload::kubevirt_images(none, &["x86_64"], "p").unwrap_err();
    assert!(e.to_string().contains("could not find kubevirt image in this release"), "{e}");
}

fn tar_entries(r: impl Read) -> BTreeMap<String, Vec<u8>> {
    let mut a = tar::Archive::new(r);
    let mut out = BTreeMap::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e.path().unwrap().to_string_lossy().trim_start_matches('/').trim_end_matches('/').to_string();
        let mut b = Vec::new();
        e.read_to_end(&mut b).unwrap();
        out.insert(p, b);
    }
    out
}

#[test]
fn graph_layer_matches_the_layer_oc_mirror_builds() {
    let (gz, diff_id) = graph_image::layer(&read("cincinnati/oc-mirror-graph-image-layer/graph-data.tar.gz")).unwrap();
    let ours = tar_entries(flate2::read::GzDecoder::new(gz.as_slice()));
    let theirs = tar_entries(
        std::fs::File::open(test_data("cincinnati/oc-mirror-graph-image-layer/cincinnati-graph-data.tar")).unwrap(),
    );
    assert_eq!(ours.keys().collect::<Vec<_>>(), theirs.keys().collect::<Vec<_>>());
    assert_eq!(ours, theirs);
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice()).read_to_end(&mut raw).unwrap();
    assert_eq!(diff_id, crate::image::manifest::sha256_digest(&raw));
    // Deterministic: the same tarball gives the same layer.
    assert_eq!(graph_image::layer(&read("cincinnati/oc-mirror-graph-image-layer/graph-data.tar.gz")).unwrap().0, gz);
}

#[test]
fn graph_image_on_a_real_multi_arch_base() {
    let dir = test_data("cincinnati/oc-mirror-graph-image-layer/graph-staging-oci-layout");
    let blob = |d: &str| std::fs::read(dir.join("blobs/sha256").join(d.trim_start_matches("sha256:"))).unwrap();
    let top: Value = serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let index = blob(top["manifests"][0]["digest"].as_str().unwrap());
    let iv: Value = serde_json::from_slice(&index).unwrap();
    let mut images = Vec::new();
    for m in iv["manifests"].as_array().unwrap() {
        let d = m["digest"].as_str().unwrap().to_string();
        let manifest = blob(&d);
        let mv: Value = serde_json::from_slice(&manifest).unwrap();
        let config = blob(mv["config"]["digest"].as_str().unwrap());
        images.push((d, SourceImage { manifest, config }));
    }
    let layer = graph_image::layer(&read("cincinnati/oc-mirror-graph-image-layer/graph-data.tar.gz")).unwrap();
    let built = graph_image::assemble(Some(&index), &images, layer.clone()).unwrap();
    let again = graph_image::assemble(Some(&index), &images, layer.clone()).unwrap();
    assert_eq!(built.top.digest, again.top.digest);
    let new_index: Value = serde_json::from_slice(&built.top.bytes).unwrap();
    let entries = new_index["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), iv["manifests"].as_array().unwrap().len());
    let layer_digest = crate::image::manifest::sha256_digest(&layer.0);
    for (e, old) in entries.iter().zip(iv["manifests"].as_array().unwrap()) {
        assert_eq!(e["platform"], old["platform"]);
        let m = built.manifests.iter().find(|b| b.digest == e["digest"]).unwrap();
        let mv: Value = serde_json::from_slice(&m.bytes).unwrap();
        let old_m: Value = serde_json::from_slice(&blob(old["digest"].as_str().unwrap())).unwrap();
        let layers = mv["layers"].as_array().unwrap();
        assert_eq!(layers.len(), old_m["layers"].as_array().unwrap().len() + 1);
        assert_eq!(layers.last().unwrap()["digest"], layer_digest.as_str());
        let c = built.blobs.iter().find(|b| b.digest == mv["config"]["digest"]).unwrap();
        let cv: Value = serde_json::from_slice(&c.bytes).unwrap();
        assert_eq!(cv["rootfs"]["diff_ids"].as_array().unwrap().last().unwrap(), layer.1.as_str());
        assert_eq!(
            cv["config"]["Cmd"][2],
            "exec cp -rp /var/lib/cincinnati-graph-data/* /var/lib/cincinnati/graph-data"
        );
    }
}

fn release(version: &str, tag: &str, digest: &str, components: &[(&str, &str)]) -> Release {
    Release {
        selected: Selected {
            version: version.into(),
            arch: "amd64".into(),
            payload: format!("quay.io/openshift-release-dev/ocp-release@{digest}"),
        },
        digest: digest.into(),
        tag: tag.into(),
        signature: None,
        components: components
            .iter()
            .map(|(n, i)| payload::Component { name: n.to_string(), image: i.to_string() })
            .collect(),
        kubevirt: BTreeMap::from([("x86_64".to_string(), "quay.io/art@sha256:".to_string() + &"c".repeat(64))]),
    }
}

#[test]
fn release_naming_follows_oc_mirror() {
    let d1 = format!("sha256:{}", "1".repeat(64));
    let d2 = format!("sha256:{}", "2".repeat(64));
    let etcd = format!("quay.io/openshift-release-dev/ocp-v4.0-art-dev@sha256:{}", "e".repeat(64));
    let c = Collected {
        releases: vec![
            release("4.13.1", "4.13.1-x86_64", &d1, &[("etcd", &etcd)]),
            release("4.13.2", "4.13.2-x86_64", &d2, &[("etcd", &etcd)]),
        ],
        graph_image: Some(format!("sha256:{}", "9".repeat(64))),
        warnings: vec![],
    };
    let items =
        crate::plan::plan_releases(&c, &[], &Destination::Registry("mirror.example.com:8443/ns".into()), 0).unwrap();
    let got: Vec<(ImageKind, &str, &str)> =
        items.iter().map(|i| (i.kind, i.source.as_str(), i.destination.as_str())).collect();
    let payload1 = format!("docker://quay.io/openshift-release-dev/ocp-release@{d1}");
    let etcd_src = format!("docker://{etcd}");
    assert!(got.contains(&(
        ImageKind::Release,
        &payload1,
        "docker://mirror.example.com:8443/ns/openshift/release-images:4.13.1-x86_64"
    )));
    assert!(got.contains(&(
        ImageKind::ReleaseContent,
        &etcd_src,
        "docker://mirror.example.com:8443/ns/openshift/release:4.13.1-x86_64-etcd"
    )));
    assert!(got.contains(&(
        ImageKind::ReleaseContent,
        &etcd_src,
        "docker://mirror.example.com:8443/ns/openshift/release:4.13.2-x86_64-etcd"
    )));
    assert!(got.iter().any(|g| g.0 == ImageKind::KubeVirt
        && g.2 == "docker://mirror.example.com:8443/ns/openshift/release:4.13.2-x86_64-kube-virt-container"));
    let graph = items.iter().find(|i| i.kind == ImageKind::Graph).unwrap();
    assert_eq!(graph.destination, "docker://mirror.example.com:8443/ns/openshift/graph-image:latest");
    assert!(graph.source.starts_with("docker://localhost:55000/openshift/graph-image@sha256:"));
    // Mirror to disk names everything under the cache registry.
    let disk = crate::plan::plan_releases(&c, &[], &Destination::Disk, 2).unwrap();
    assert!(disk.iter().all(|i| i.destination.starts_with("docker://localhost:55000/openshift/")));
}
