//! The generated cluster resources against the real OpenShift CRDs: what the command line
//! writes after a real mirror run, and every kind rendered from a full mirrored set, is
//! accepted by kube-apiserver (server-side apply, dry run) and comes back unpruned.

mod support;

use std::collections::BTreeMap;

use imageset_operator::image::ImageRef;
use imageset_operator::plan::ImageKind;
use imageset_operator::render::{self, Mirrored, Naming};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{Scope, pinned_kind};
use serde_json::{Value, json};
use support::cli::{mirror_to_mirror, ok, write_isc};
use support::cluster;
use support::content::{Format, Pusher};
use support::registry::{Registry, RegistryOptions};
use support::temp_dir;

/// Server-side applies `obj` as a dry run; returns what the apiserver would store.
async fn dry_apply(client: &kube::Client, obj: &Value) -> Value {
    let (group, version) = match obj["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), obj["apiVersion"].as_str().unwrap().to_string()),
    };
    let gvk = kube::api::GroupVersionKind::gvk(&group, &version, obj["kind"].as_str().unwrap());
    let (ar, caps) = pinned_kind(client, &gvk).await.unwrap_or_else(|e| panic!("{gvk:?} not served: {e}"));
    let api: Api<DynamicObject> = match (&caps.scope, obj["metadata"]["namespace"].as_str()) {
        (Scope::Namespaced, Some(ns)) => {
            cluster::ensure_namespace(client, ns).await;
            Api::namespaced_with(client.clone(), ns, &ar)
        }
        (Scope::Cluster, None) => Api::all_with(client.clone(), &ar),
        (scope, ns) => panic!("{} has namespace {ns:?} but is {scope:?}", obj["metadata"]["name"]),
    };
    let name = obj["metadata"]["name"].as_str().unwrap();
    let params = PatchParams::apply("imageset-operator").dry_run();
    let stored =
        api.patch(name, &params, &Patch::Apply(obj)).await.unwrap_or_else(|e| panic!("{name} refused: {e}\n{obj:#}"));
    serde_json::to_value(stored).unwrap()
}

async fn assert_accepted(client: &kube::Client, objects: &[Value]) {
    for obj in objects {
        let stored = dry_apply(client, obj).await;
        for field in ["spec", "binaryData"] {
            if obj.get(field).is_some() {
                assert_eq!(
                    stored[field], obj[field],
                    "{} {}: {field} changed by the apiserver",
                    obj["kind"], obj["metadata"]["name"]
                );
            }
        }
    }
}

#[test]
fn what_a_real_mirror_run_writes_is_accepted_by_the_apiserver() {
    let (src, dst) = (Registry::start(RegistryOptions::default()), Registry::start(RegistryOptions::default()));
    let push = Pusher::new(&src);
    let tagged = push.multi_arch("team/app", "1.0", Format::Oci, &[("linux", "amd64"), ("linux", "arm64")], 3);
    let pinned = push.image("team/lib", "x", Format::Docker, ("linux", "amd64"), &[(9, 1000)]);
    let tmp = temp_dir("resources-");
    let isc = write_isc(
        tmp.path(),
        &[format!("{}/team/app:1.0", src.host), format!("{}/team/lib@{}", src.host, pinned.digest)],
    );
    let out = ok(mirror_to_mirror(&isc, tmp.path(), &format!("docker://{}/mirror", dst.host), &[]).output().unwrap());
    let dir = tmp.path().join("ws/working-dir/cluster-resources");
    for file in ["idms-oc-mirror.yaml", "itms-oc-mirror.yaml"] {
        let line = format!("{} file created", dir.join(file).display());
        assert!(out.lines().any(|l| l == line), "{line:?} not in {out}");
    }
    let mut objects = Vec::new();
    for file in ["idms-oc-mirror.yaml", "itms-oc-mirror.yaml"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        for doc in text.split("---\n").filter(|d| !d.trim().is_empty()) {
            objects.push(serde_saphyr::from_str::<Value>(doc).unwrap());
        }
    }
    // The tagged image went to ITMS, the digest-pinned one to IDMS, namespace-scoped.
    let itms = objects.iter().find(|o| o["kind"] == "ImageTagMirrorSet").unwrap();
    assert_eq!(
        itms["spec"]["imageTagMirrors"],
        json!([{"source": format!("{}/team", src.host), "mirrors": [format!("{}/mirror/team", dst.host)]}])
    );
    let idms = objects.iter().find(|o| o["kind"] == "ImageDigestMirrorSet").unwrap();
    assert_eq!(idms["spec"]["imageDigestMirrors"][0]["source"], format!("{}/team", src.host));
    assert_eq!(tagged.tag, "1.0");
    let plane = cluster::shared();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = plane.client().await;
        assert_accepted(&client, &objects).await;
    });
}

#[tokio::test]
async fn every_kind_rendered_from_a_full_set_is_accepted_by_the_apiserver() {
    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";
    // (kind, origin, path under the mirror, digest): one image of every kind that renders.
    let table = [
        (
            ImageKind::Release,
            "quay.io/openshift-release-dev/ocp-release:4.18.1-x86_64",
            "openshift/release-images:4.18.1-x86_64",
            D1,
        ),
        (
            ImageKind::ReleaseContent,
            &format!("quay.io/openshift-release-dev/ocp-v4.0-art-dev@{D2}"),
            "openshift/release:4.18.1-x86_64-etcd",
            D2,
        ),
        (
            ImageKind::OperatorBundle,
            &format!("registry.redhat.io/rhel9/foo-bundle@{D1}"),
            "rhel9/foo-bundle:sha256-1111",
            D1,
        ),
        (ImageKind::Additional, "registry.redhat.io/ubi9/ubi:latest", "ubi9/ubi:latest", D2),
        (
            ImageKind::OperatorCatalog,
            "registry.redhat.io/redhat/redhat-operator-index:v4.18",
            "redhat/redhat-operator-index:v4.18",
            D1,
        ),
        (ImageKind::Graph, "localhost/openshift/graph-image:latest", "openshift/graph-image:latest", D2),
    ];
    let set: Vec<Mirrored> = table
        .iter()
        .map(|(kind, origin, path, digest)| Mirrored {
            kind: *kind,
            origin: ImageRef::parse(origin).unwrap(),
            destination: ImageRef::parse(&format!("mirror.example.com:8443/ocp/{path}")).unwrap(),
            digest: digest.to_string(),
        })
        .collect();
    let template = render::CatalogTemplate {
        catalog: "registry.redhat.io/redhat/redhat-operator-index:v4.18".into(),
        path: "template.yaml".into(),
        text: "apiVersion: operators.coreos.com/v1alpha1\nkind: CatalogSource\nspec:\n  displayName: Mirrored\n  updateStrategy:\n    registryPoll:\n      interval: 30m\n".into(),
    };
    let sigs = BTreeMap::from([(D1.to_string(), vec![b"-----signature-bytes-----".to_vec()])]);
    let naming = Naming { prefix: "ns-isc".into(), max_nested_paths: 0 };
    let objects = render::all(&set, &[template], &sigs, &naming).unwrap();
    let kinds: std::collections::BTreeSet<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["CatalogSource", "ConfigMap", "ImageDigestMirrorSet", "ImageTagMirrorSet", "UpdateService"].into()
    );
    let client = cluster::shared().client().await;
    assert_accepted(&client, &objects).await;
    // A broken mirror set is refused, so the acceptance above means something.
    let mut bad = objects.iter().find(|o| o["kind"] == "ImageDigestMirrorSet").unwrap().clone();
    bad["metadata"]["name"] = json!("bad");
    bad["spec"]["imageDigestMirrors"][0]["source"] = json!("not a valid source!");
    let gvk = kube::api::GroupVersionKind::gvk("config.openshift.io", "v1", "ImageDigestMirrorSet");
    let (ar, _) = pinned_kind(&client, &gvk).await.unwrap();
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let err = api.patch("bad", &PatchParams::apply("imageset-operator").dry_run(), &Patch::Apply(&bad)).await;
    match err {
        Err(kube::Error::Api(s)) => assert!(s.code == 422 && s.message.contains("source"), "{s:?}"),
        other => panic!("an invalid source was not refused by validation: {other:?}"),
    }
}
