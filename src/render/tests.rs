use std::collections::BTreeMap;

use serde_json::json;

use super::*;

const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
const D3: &str = "sha256:3333333333333333333333333333333333333333333333333333333333333333";

fn m(kind: ImageKind, origin: &str, destination: &str, digest: &str) -> Mirrored {
    Mirrored {
        kind,
        origin: ImageRef::parse(origin).unwrap(),
        destination: ImageRef::parse(destination).unwrap(),
        digest: digest.into(),
    }
}

/// A mirrored set of every kind, as a mirror-to-mirror run into `mirror.example.com:8443/ns`
/// would leave it.
fn set() -> Vec<Mirrored> {
    let dst = "docker://mirror.example.com:8443/ns";
    vec![
        m(
            ImageKind::Release,
            "quay.io/openshift-release-dev/ocp-release:4.18.1-x86_64",
            &format!("{dst}/openshift/release-images:4.18.1-x86_64"),
            D1,
        ),
        m(
            ImageKind::ReleaseContent,
            &format!("quay.io/openshift-release-dev/ocp-v4.0-art-dev@{D2}"),
            &format!("{dst}/openshift/release:4.18.1-x86_64-etcd"),
            D2,
        ),
        m(
            ImageKind::OperatorBundle,
            &format!("registry.redhat.io/rhel9/foo-bundle@{D3}"),
            &format!("{dst}/rhel9/foo-bundle:sha256-3333"),
            D3,
        ),
        m(
            ImageKind::OperatorRelatedImage,
            &format!("registry.redhat.io/rhel9/foo@{D1}"),
            &format!("{dst}/rhel9/foo:sha256-1111"),
            D1,
        ),
        m(ImageKind::Additional, "registry.redhat.io/ubi9/ubi:latest", &format!("{dst}/ubi9/ubi:latest"), D2),
        m(ImageKind::Additional, &format!("quay.io/app@{D3}"), &format!("{dst}/app:sha256-3333"), D3),
        m(
            ImageKind::OperatorCatalog,
            "registry.redhat.io/redhat/redhat-operator-index:v4.18",
            &format!("{dst}/redhat/redhat-operator-index:v4.18"),
            D1,
        ),
        m(
            ImageKind::Graph,
            "localhost/openshift/graph-image:latest",
            &format!("{dst}/openshift/graph-image:latest"),
            D2,
        ),
    ]
}

fn entries(objs: &[Value], kind: &str, name: &str) -> Vec<(String, Vec<String>)> {
    let field = if kind == "ImageDigestMirrorSet" { "imageDigestMirrors" } else { "imageTagMirrors" };
    let o = objs
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"));
    o["spec"][field]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap().to_string(),
                e["mirrors"].as_array().unwrap().iter().map(|m| m.as_str().unwrap().to_string()).collect(),
            )
        })
        .collect()
}

#[test]
fn mirror_sets_split_by_category_digest_and_tag_with_oc_mirror_scopes() {
    let objs = mirror_sets(&set(), &Naming::default());
    let names: Vec<(&str, &str)> =
        objs.iter().map(|o| (o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap())).collect();
    assert_eq!(
        names,
        [
            ("ImageDigestMirrorSet", "idms-generic-0"),
            ("ImageDigestMirrorSet", "idms-operator-0"),
            ("ImageDigestMirrorSet", "idms-release-0"),
            ("ImageTagMirrorSet", "itms-generic-0"),
            ("ImageTagMirrorSet", "itms-release-0"),
        ]
    );
    let s = |v: &str| v.to_string();
    // Release payload and components: repository scope; the payload in both sets.
    assert_eq!(
        entries(&objs, "ImageDigestMirrorSet", "idms-release-0"),
        [
            (
                s("quay.io/openshift-release-dev/ocp-release"),
                vec![s("mirror.example.com:8443/ns/openshift/release-images")]
            ),
            (
                s("quay.io/openshift-release-dev/ocp-v4.0-art-dev"),
                vec![s("mirror.example.com:8443/ns/openshift/release")]
            ),
        ]
    );
    assert_eq!(
        entries(&objs, "ImageTagMirrorSet", "itms-release-0"),
        [(
            s("quay.io/openshift-release-dev/ocp-release"),
            vec![s("mirror.example.com:8443/ns/openshift/release-images")]
        )]
    );
    // Paths preserved: namespace scope; bundle and related image share one entry.
    assert_eq!(
        entries(&objs, "ImageDigestMirrorSet", "idms-operator-0"),
        [(s("registry.redhat.io/rhel9"), vec![s("mirror.example.com:8443/ns/rhel9")])]
    );
    // A one-component path scopes to the whole source registry.
    assert_eq!(
        entries(&objs, "ImageDigestMirrorSet", "idms-generic-0"),
        [(s("quay.io"), vec![s("mirror.example.com:8443/ns")])]
    );
    assert_eq!(
        entries(&objs, "ImageTagMirrorSet", "itms-generic-0"),
        [(s("registry.redhat.io/ubi9"), vec![s("mirror.example.com:8443/ns/ubi9")])]
    );
    // Catalog and graph images never appear in mirror sets.
    let text = to_yaml(&objs);
    assert!(!text.contains("redhat-operator-index") && !text.contains("graph-image"), "{text}");
}

#[test]
fn folded_paths_force_repository_scope_and_a_prefix_names_objects() {
    let naming = Naming { prefix: "team-a-isc".into(), max_nested_paths: 2 };
    let one = vec![m(
        ImageKind::Additional,
        "registry.redhat.io/ubi9/ubi:latest",
        "docker://mirror:5000/ns-ubi9-ubi:latest",
        D1,
    )];
    let objs = mirror_sets(&one, &naming);
    assert_eq!(objs[0]["metadata"]["name"], "team-a-isc-itms-generic-0");
    assert_eq!(
        entries(&objs, "ImageTagMirrorSet", "team-a-isc-itms-generic-0"),
        [("registry.redhat.io/ubi9/ubi".to_string(), vec!["mirror:5000/ns-ubi9-ubi".to_string()])]
    );
}

#[test]
fn output_is_byte_identical_whatever_the_input_order_and_calm_when_a_namespace_grows() {
    let naming = Naming::default();
    let sigs = BTreeMap::from([(D1.to_string(), vec![b"sig-one".to_vec(), b"sig-two".to_vec()])]);
    let first = to_yaml(&all(&set(), &[], &sigs, &naming).unwrap());
    assert_eq!(first, to_yaml(&all(&set(), &[], &sigs, &naming).unwrap()), "twice, same bytes");
    let mut shuffled = set();
    shuffled.reverse();
    shuffled.swap(1, 5);
    shuffled.push(shuffled[0].clone()); // duplicates collapse too
    assert_eq!(first, to_yaml(&all(&shuffled, &[], &sigs, &naming).unwrap()), "shuffled input, same bytes");
    assert!(!first.contains("createdAt") && !first.contains("creationTimestamp"), "no timestamps");
    // Another related image in rhel9 changes no mirror set, so no node reboots.
    let mut grown = set();
    grown.push(m(
        ImageKind::OperatorRelatedImage,
        &format!("registry.redhat.io/rhel9/bar@{D2}"),
        "docker://mirror.example.com:8443/ns/rhel9/bar:sha256-2222",
        D2,
    ));
    assert_eq!(to_yaml(&mirror_sets(&set(), &naming)), to_yaml(&mirror_sets(&grown, &naming)));
}

#[test]
fn catalog_sources_are_named_like_oc_mirror_and_pinned_by_digest() {
    let objs = catalog_sources(&set(), &[], &Naming::default()).unwrap();
    assert_eq!(objs.len(), 1);
    let cs = &objs[0];
    assert_eq!(cs["metadata"]["name"], "cs-redhat-operator-index-v4-18");
    assert_eq!(cs["metadata"]["namespace"], "openshift-marketplace");
    assert_eq!(cs["spec"]["image"], format!("mirror.example.com:8443/ns/redhat/redhat-operator-index@{D1}"));
    assert_eq!(cs["spec"]["sourceType"], "grpc");
    let by_digest = ImageRef::parse(&format!("mirror:5000/x/certified.index@{D2}")).unwrap();
    assert_eq!(catalog_source_name(&by_digest), "cs-certified-index-222222222222");
}

#[test]
fn catalog_source_templates_are_honoured_and_bad_ones_refused() {
    let template = |text: &str| CatalogTemplate {
        catalog: "registry.redhat.io/redhat/redhat-operator-index:v4.18".into(),
        path: "/tmp/cs-template.yaml".into(),
        text: text.into(),
    };
    let good = "apiVersion: operators.coreos.com/v1alpha1\nkind: CatalogSource\nmetadata:\n  name: ignored\n  namespace: ignored\n  annotations:\n    team: a\nspec:\n  displayName: Mirrored operators\n  image: ignored\n  updateStrategy:\n    registryPoll:\n      interval: 30m\n  grpcPodConfig:\n    securityContextConfig: restricted\n";
    let objs = catalog_sources(&set(), &[template(good)], &Naming::default()).unwrap();
    let cs = &objs[0];
    assert_eq!(cs["metadata"]["name"], "cs-redhat-operator-index-v4-18");
    assert_eq!(cs["metadata"]["annotations"]["team"], "a");
    assert_eq!(cs["spec"]["updateStrategy"], json!({"registryPoll": {"interval": "30m"}}));
    assert_eq!(cs["spec"]["grpcPodConfig"]["securityContextConfig"], "restricted");
    assert_eq!(cs["spec"]["displayName"], "Mirrored operators");
    assert!(cs["spec"]["image"].as_str().unwrap().contains('@'));
    for (text, needle) in [
        ("apiVersion: v1\nkind: CatalogSource\n", "apiVersion must be operators.coreos.com/v1alpha1"),
        ("apiVersion: operators.coreos.com/v1alpha1\nkind: Subscription\n", "kind must be CatalogSource"),
        (
            "apiVersion: operators.coreos.com/v1alpha1\nkind: CatalogSource\nspec:\n  sourceType: configmap\n",
            "spec.sourceType",
        ),
        ("apiVersion: operators.coreos.com/v1alpha1\nkind: CatalogSource\nspec:\n  configMap: x\n", "spec.configMap"),
        ("{{ not yaml", "not YAML"),
    ] {
        let err = catalog_sources(&set(), &[template(text)], &Naming::default()).unwrap_err().to_string();
        assert!(err.contains("/tmp/cs-template.yaml") && err.contains(needle), "{err}");
    }
}

#[test]
fn update_service_and_signature_config_map() {
    let naming = Naming::default();
    let us = update_service(&set(), &naming).expect("graph mirrored");
    assert_eq!(us["metadata"]["name"], "update-service-oc-mirror");
    assert_eq!(us["metadata"]["namespace"], "openshift-update-service");
    assert_eq!(us["spec"]["releases"], "mirror.example.com:8443/ns/openshift/release-images");
    assert_eq!(us["spec"]["graphDataImage"], format!("mirror.example.com:8443/ns/openshift/graph-image@{D2}"));
    let no_graph: Vec<Mirrored> = set().into_iter().filter(|m| m.kind != ImageKind::Graph).collect();
    assert!(update_service(&no_graph, &naming).is_none());
    let sigs =
        BTreeMap::from([(D1.to_string(), vec![b"a".to_vec(), b"b".to_vec()]), (D2.to_string(), vec![b"c".to_vec()])]);
    let cm = signature_config_map(&sigs, &naming).unwrap();
    assert_eq!(cm["metadata"]["namespace"], "openshift-config-managed");
    assert_eq!(cm["metadata"]["labels"]["release.openshift.io/verification-signatures"], "");
    let keys: Vec<&String> = cm["binaryData"].as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [&format!("sha256-{}-1", &D1[7..]), &format!("sha256-{}-2", &D1[7..]), &format!("sha256-{}-1", &D2[7..])]
    );
    assert_eq!(cm["binaryData"][keys[0]], "YQ==");
    assert!(signature_config_map(&BTreeMap::new(), &naming).is_none());
}

#[test]
fn files_follow_oc_mirror_names() {
    let sigs = BTreeMap::from([(D1.to_string(), vec![b"a".to_vec()])]);
    let objs = all(&set(), &[], &sigs, &Naming::default()).unwrap();
    let names: Vec<String> = files(&objs).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "idms-oc-mirror.yaml",
            "itms-oc-mirror.yaml",
            "cs-redhat-operator-index-v4-18.yaml",
            "updateService.yaml",
            "signature-configmap.json",
            "signature-configmap.yaml"
        ]
    );
}
