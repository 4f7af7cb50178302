//! Our CRDs in a real kube-apiserver: image sets apply and read back; every combination
//! oc-mirror rejects is rejected at admission by CEL with a message naming the field; and
//! `imageset-operator run` reports status with observedGeneration and conditions.

mod support;

use std::time::Duration;

use imageset_operator::api::{DeleteImageSetConfiguration, ImageSetConfiguration};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use support::cluster;

/// Operators watch every namespace: tests that run one take turns.
static OPERATOR: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn isc(name: &str, mirror: serde_json::Value) -> ImageSetConfiguration {
    serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1",
        "kind": "ImageSetConfiguration",
        "metadata": {"name": name},
        "spec": {"destination": "docker://mirror.example.com:5000/ocp", "mirror": mirror},
    }))
    .unwrap()
}

/// Every oc-mirror file in the shared data that oc-mirror v2 accepts goes into the cluster
/// unchanged under spec.mirror, and reads back equal.
#[tokio::test]
async fn oc_mirror_configs_apply_unchanged_and_read_back() {
    // No operator runs meanwhile: these image sets name registries the test world does not have.
    let _turn = OPERATOR.lock().await;
    let client = cluster::shared().client().await;
    cluster::ensure_namespace(&client, "configs").await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client, "configs");
    let root = support::shared_data().join("oc-mirror-configs/v2");
    // oc-mirror rejects these too: a v1 field, min > max, architectures with platforms, and
    // full: true with a package minVersion (its filter refuses that combination).
    let expected_invalid = [
        "isc-generic-error.yaml",
        "isc-operator-invalid-version-range.yaml",
        "isc-platforms-and-archs.yaml",
        "config-valid.yaml",
    ];
    let mut applied = 0;
    let mut rejected = Vec::new();
    for file in walk(&root) {
        let text = std::fs::read_to_string(&file).unwrap();
        if imageset_operator::api::load::kind_of(&text).ok() != Some(imageset_operator::api::load::Kind::ImageSet) {
            continue;
        }
        let loaded = match imageset_operator::api::load::image_set(&text) {
            Ok(l) => l,
            Err(e) => {
                let name = file.file_name().unwrap().to_string_lossy().to_string();
                assert!(expected_invalid.contains(&name.as_str()), "{}: {e}", file.display());
                rejected.push(name);
                continue;
            }
        };
        let name = format!("cfg-{applied}");
        let mut obj = isc(&name, serde_json::to_value(&loaded.mirror).unwrap());
        obj.spec.archive_size = loaded.archive_size;
        let created = api
            .create(&PostParams::default(), &obj)
            .await
            .unwrap_or_else(|e| panic!("{} rejected by the apiserver: {e}", file.display()));
        let back = api.get(&name).await.unwrap();
        assert_eq!(back.spec, created.spec, "{}", file.display());
        assert_eq!(back.spec.mirror, loaded.mirror, "{} did not round-trip", file.display());
        applied += 1;
    }
    assert!(applied >= 20, "only {applied} oc-mirror configs found under {}", root.display());
    rejected.sort();
    let mut expected: Vec<String> = expected_invalid.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(rejected, expected);
    api.delete_collection(&DeleteParams::default(), &Default::default()).await.unwrap();
}

/// `oc get isc` shows a run's images done in the Copying column while it is under way.
#[tokio::test]
async fn the_copying_column_shows_images_done_of_a_run_under_way() {
    // No operator may rewrite the status meanwhile.
    let _turn = OPERATOR.lock().await;
    let client = cluster::shared().client().await;
    cluster::ensure_namespace(&client, "columns").await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), "columns");
    let obj = isc("watched", json!({"additionalImages": [{"name": "quay.io/a/b:1"}]}));
    api.create(&PostParams::default(), &obj).await.unwrap();
    let progress =
        json!({"status": {"progress": {"imagesDone": 7, "imagesTotal": 20, "bytesDone": 1, "bytesTotal": 9}}});
    let pp = kube::api::PatchParams::default();
    api.patch_status("watched", &pp, &kube::api::Patch::Merge(&progress)).await.unwrap();
    let req =
        http::Request::get("/apis/mirror.openshift.io/v2alpha1/namespaces/columns/imagesetconfigurations/watched")
            .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
            .body(Vec::new())
            .unwrap();
    let table: serde_json::Value = client.request(req).await.unwrap();
    let names: Vec<&str> =
        table["columnDefinitions"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    let at = names.iter().position(|n| *n == "Copying").unwrap_or_else(|| panic!("no Copying column: {names:?}"));
    assert_eq!(table["rows"][0]["cells"][at], json!(7), "{table}");
    api.delete("watched", &DeleteParams::default()).await.unwrap();
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The same invalid configurations the CLI rejects are rejected at admission, naming the field.
#[tokio::test]
async fn invalid_combinations_are_rejected_at_admission_naming_the_field() {
    let client = cluster::shared().client().await;
    cluster::ensure_namespace(&client, "invalid").await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client, "invalid");
    let cat = "registry.redhat.io/redhat/redhat-operator-index:v4.18";
    let cases = vec![
        (
            json!({"platform": {"architectures": ["amd64"], "platforms": [{"os": "linux", "architecture": "arm64"}]}}),
            "spec.mirror.platform",
            "platform.platforms and platform.architectures cannot be used together",
        ),
        (
            json!({"platform": {"channels": [{"name": "stable-4.18"}, {"name": "stable-4.18"}]}}),
            "spec.mirror.platform.channels[1]",
            "Duplicate value",
        ),
        (
            json!({"platform": {"channels": [{"name": "stable-4.18", "minVersion": "4.x"}]}}),
            "spec.mirror.platform.channels[0].minVersion",
            "should match",
        ),
        (
            json!({"operators": [{"catalog": cat, "full": true, "packages": [{"name": "p", "minVersion": "1.0.0"}]}]}),
            "spec.mirror.operators[0]",
            "Full: true cannot be mixed with versionRange",
        ),
        (
            json!({"operators": [{"catalog": cat, "packages": [{"name": "p", "minVersion": "1.0.0", "channels": [{"name": "c", "maxVersion": "2.0.0"}]}]}]}),
            "spec.mirror.operators[0].packages[0]",
            "mixing both filtering by minVersion/maxVersion and filtering by channel minVersion/maxVersion is not allowed",
        ),
        (
            json!({"operators": [{"catalog": cat, "packages": [{"name": "p", "channels": [{"name": "c"}], "bundles": [{"name": "p.v1"}]}]}]}),
            "spec.mirror.operators[0].packages[0]",
            "bundles cannot be combined with channels",
        ),
        (
            json!({"operators": [{"catalog": cat, "packages": [{"name": "p"}, {"name": "p"}]}]}),
            "spec.mirror.operators[0].packages[1]",
            "Duplicate value",
        ),
        (
            json!({"operators": [{"catalog": cat}, {"catalog": cat}]}),
            "spec.mirror.operators",
            "duplicate catalog entry",
        ),
        (
            json!({"operators": [{"catalog": cat, "targetCatalog": "Bad:Tag"}]}),
            "spec.mirror.operators[0].targetCatalog",
            "should match",
        ),
        (
            json!({"additionalImages": [{"name": "quay.io/openshifttest/hello-openshift"}]}),
            "spec.mirror.additionalImages[0]",
            "name must have a tag or a digest",
        ),
        (
            json!({"platform": {"platforms": [{"os": "", "architecture": "amd64"}]}}),
            "spec.mirror.platform.platforms[0].os",
            "should be at least 1",
        ),
    ];
    for (i, (mirror, field, message)) in cases.into_iter().enumerate() {
        let obj = isc(&format!("bad-{i}"), mirror.clone());
        let err = api.create(&PostParams::default(), &obj).await.expect_err(&format!("accepted invalid {mirror}"));
        let kube::Error::Api(status) = err else { panic!("unexpected error for {mirror}: {err}") };
        assert_eq!(status.code, 422, "{mirror}: {}", status.message);
        assert!(
            status.message.contains(field) && status.message.contains(message),
            "{mirror}: expected {field:?} and {message:?} in {:?}",
            status.message
        );
        // The CLI's own validation names the same field.
        let file = format!(
            "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmetadata: {{name: x}}\nspec:\n  destination: docker://r.example.com\n  mirror: {mirror}\n"
        );
        let cli_err =
            imageset_operator::api::load::image_set(&file).expect_err(&format!("CLI accepted {mirror}")).to_string();
        let parent = field.trim_end_matches(|c: char| c != '.' && c != '[').trim_end_matches(['.', '[']);
        assert!(cli_err.contains(parent), "CLI error for {mirror} does not name {parent}: {cli_err}");
    }
    // Bad destinations and the DeleteImageSetConfiguration schema too.
    let mut bad_dest = isc("bad-dest", json!({}));
    bad_dest.spec.destination = "registry.example.com".into();
    let err = api.create(&PostParams::default(), &bad_dest).await.unwrap_err().to_string();
    assert!(err.contains("spec.destination"), "{err}");
    let dapi: Api<DeleteImageSetConfiguration> = Api::namespaced(api.clone().into_client(), "invalid");
    let disc: DeleteImageSetConfiguration = serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "DeleteImageSetConfiguration",
        "metadata": {"name": "d"},
        "spec": {"destination": "docker://r.example.com", "delete": {"operators": [{"catalog": cat}, {"catalog": cat}]}},
    }))
    .unwrap();
    let err = dapi.create(&PostParams::default(), &disc).await.unwrap_err().to_string();
    assert!(err.contains("spec.delete.operators") && err.contains("duplicate catalog entry"), "{err}");
}

/// `imageset-operator run` against the real apiserver: a valid image set gets its plan in
/// status; an invalid one is Degraded with the field named; both carry observedGeneration.
#[tokio::test]
async fn run_reports_plan_and_invalid_specs_in_status() {
    let _turn = OPERATOR.lock().await;
    let cp = cluster::shared();
    let client = cp.client().await;
    cluster::ensure_namespace(&client, "controller").await;
    cluster::ensure_namespace(&client, "imageset-operator").await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client, "controller");
    let dir = support::temp_dir("operator-");
    let admin = format!("127.0.0.1:{}", support::free_port());
    // As its ServiceAccount under config/rbac, as a cluster runs it.
    let _operator = support::operator::operator(cp, dir.path(), &admin, &[]).await;
    let mut good = isc(
        "good",
        json!({"additionalImages": [
            {"name": "quay.io/openshifttest/hello-openshift@sha256:61b8f5e1a3b5dbd9e2c35fd448dc5106337d7a299873dd3a6f0cd8d4891ecc27"},
            {"name": "registry.redhat.io/ubi9/ubi:latest"},
            {"name": "registry.redhat.io/ubi9/ubi-debug:latest"}],
            "blockedImages": [{"name": "-debug"}]}),
    );
    // A dry run: these registries are not reachable from the test world.
    good.spec.dry_run = true;
    api.create(&PostParams::default(), &good).await.unwrap();
    // Go's RE2 (admission) accepts `a{`; the operator's regex engine does not: InvalidSpec.
    let mut bad = isc("bad", json!({"blockedImages": [{"name": "a{"}]}));
    bad.spec.destination = "docker://mirror.example.com".into();
    api.create(&PostParams::default(), &bad).await.unwrap();

    let tail = _operator.log_tail();
    let status_of = |name: &'static str| {
        let api = api.clone();
        let tail = &tail;
        async move {
            for _ in 0..300 {
                let obj = api.get(name).await.unwrap();
                if let Some(st) = obj.status.clone()
                    && st.observed_generation == obj.metadata.generation
                    && st.conditions.iter().any(|c| c.type_ == "Degraded" && c.status == "True")
                        | st.conditions.iter().any(|c| c.type_ == "Ready" && c.reason != "Started")
                {
                    return st;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("{name}: no final status written within 30s\n{}", tail());
        }
    };
    let st = status_of("good").await;
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(st.counts.as_ref().unwrap().total, 2, "the -debug image is blocked");
    assert!(st.plan_digest.as_deref().unwrap().starts_with("sha256:"));
    assert_eq!(ready.reason, "DryRun", "{}", ready.message);
    assert!(ready.message.contains("2 images planned (1 blocked)"), "{}", ready.message);
    // The plan itself, in oc-mirror's mapping format, beside the image set.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(api.clone().into_client(), "controller");
    let mapping = cms.get("good-dry-run").await.unwrap().data.unwrap()["mapping.txt"].clone();
    assert_eq!(mapping.lines().count(), 2, "{mapping}");
    assert!(mapping.contains("=docker://mirror.example.com:5000/ocp/ubi9/ubi:latest"), "{mapping}");
    let st = status_of("bad").await;
    let degraded = st.conditions.iter().find(|c| c.type_ == "Degraded").unwrap();
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "InvalidSpec"));
    assert!(degraded.message.contains("spec.mirror.blockedImages[0].name"), "{}", degraded.message);
    api.delete("good", &DeleteParams::default()).await.unwrap();

    // CatalogSource templates come from ConfigMap keys in the image set's namespace, and are
    // checked before anything is collected.
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(api.clone().into_client(), "controller");
    let cm: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "cs-template"},
        "data": {"template.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n"},
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let mut tmpl = isc(
        "tmpl",
        json!({"operators": [{"catalog": "registry.redhat.io/redhat/redhat-operator-index:v4.18",
                              "targetCatalogSourceTemplate": "configmap:cs-template/template.yaml"}]}),
    );
    tmpl.spec.dry_run = true;
    api.create(&PostParams::default(), &tmpl).await.unwrap();
    let st = status_of("tmpl").await;
    let degraded = st.conditions.iter().find(|c| c.type_ == "Degraded").unwrap();
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "AccessError"), "{}", degraded.message);
    assert!(
        degraded.message.starts_with("spec.mirror.operators[0].targetCatalogSourceTemplate: ")
            && degraded.message.contains("CatalogSource"),
        "{}",
        degraded.message
    );
    api.delete("tmpl", &DeleteParams::default()).await.unwrap();
    cms.delete("cs-template", &DeleteParams::default()).await.unwrap();

    // A delete that names nothing is reported as invalid, naming the field, without
    // reaching any registry (the plan and approval flow runs against real registries in
    // tests/controller_delete.rs).
    let dapi: Api<DeleteImageSetConfiguration> = Api::namespaced(api.clone().into_client(), "controller");
    let disc: DeleteImageSetConfiguration = serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "DeleteImageSetConfiguration",
        "metadata": {"name": "cleanup"},
        "spec": {"destination": "docker://mirror.example.com:5000/ocp", "delete": {}},
    }))
    .unwrap();
    dapi.create(&PostParams::default(), &disc).await.unwrap();
    let mut seen = None;
    for _ in 0..300 {
        let d = dapi.get("cleanup").await.unwrap();
        if let Some(st) = d.status.clone()
            && st.observed_generation == Some(1)
            && let Some(c) = st.conditions.iter().find(|c| c.type_ == "Ready")
        {
            seen = Some((st.clone(), c.clone()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (st, ready) = seen.expect("delete status for generation 1 written within 30s");
    assert_eq!(ready.reason, "InvalidSpec", "{}", ready.message);
    assert!(ready.message.starts_with("spec.delete"), "{}", ready.message);
    assert_eq!(st.plan_digest, None, "an invalid delete publishes no plan");
    dapi.delete("cleanup", &DeleteParams::default()).await.unwrap();

    // The admin endpoint answers probes and counts reconciles.
    let http = reqwest::Client::new();
    for path in ["healthz", "readyz"] {
        let r = http.get(format!("http://{admin}/{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200, "/{path}");
    }
    let metrics = http.get(format!("http://{admin}/metrics")).send().await.unwrap().text().await.unwrap();
    let invalid: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("imageset_operator_invalid_specs_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no invalid-spec counter in {metrics}"));
    assert!(invalid >= 1, "{metrics}");
}
