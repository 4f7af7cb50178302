//! DeleteImageSetConfiguration end to end: the operator, as its ServiceAccount under the RBAC
//! of `config/rbac`, plans a delete against real registries, publishes the plan, and deletes
//! only once the plan it recomputes equals the approved one. Every `DELETE` the registry
//! receives is counted in its own access log.

mod support;

use std::time::Duration;

use imageset_operator::api::status::DeleteStatus;
use imageset_operator::api::{DeleteImageSetConfiguration, ImageSetConfiguration};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::cluster;
use support::content::{Format, Pusher};
use support::operator::{OPERATOR, OPERATOR_NS, clear_left_behind, client_for, finished, service_account_kubeconfig};
use support::registry::{Registry, RegistryOptions};

const USER: &str = "mirror-admin";
const PASSWORD: &str = "s3cret-for-deletes";

fn ready(st: &DeleteStatus) -> Condition {
    st.conditions.iter().find(|c| c.type_ == "Ready").cloned().expect("a Ready condition")
}

/// Waits until the delete's status describes its current generation with a Ready reason in
/// `reasons`; returns it.
async fn settled(api: &Api<DeleteImageSetConfiguration>, name: &str, reasons: &[&str]) -> DeleteStatus {
    for _ in 0..1200 {
        let d = api.get(name).await.unwrap();
        if let Some(st) = d.status.clone()
            && st.observed_generation == d.metadata.generation
            && st.conditions.iter().any(|c| c.type_ == "Ready" && reasons.contains(&c.reason.as_str()))
        {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name}: no Ready reason in {reasons:?} within 120s: {:?}", api.get(name).await.unwrap().status);
}

/// Runs blocking test-world calls (registries over blocking HTTP) off the async runtime.
fn off<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

fn docker_config_json(host: &str) -> String {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    json!({"auths": {host: {"auth": auth}}}).to_string()
}

fn docker_config(host: &str) -> Secret {
    use base64::Engine as _;
    let cfg = docker_config_json(host);
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "registry-creds"},
        "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64::engine::general_purpose::STANDARD.encode(cfg)},
    }))
    .unwrap()
}

fn manifest_present(reg: &Registry, repo: &str, reference: &str) -> bool {
    let url = format!("{}/v2/{repo}/manifests/{reference}", reg.base_url());
    let rb = reg.http().head(url).header(
        "Accept",
        "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
    );
    let status = reg.authorize(repo, rb).send().unwrap().status().as_u16();
    assert!(status == 200 || status == 404, "HEAD {repo}:{reference}: {status}");
    status == 200
}

async fn approve(api: &Api<DeleteImageSetConfiguration>, name: &str, digest: &str) {
    let patch = json!({"spec": {"approvedPlanDigest": digest}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
}

/// The whole review cycle against a registry with basic auth: a plan with one image protected
/// by a live image set in another namespace, nothing deleted before approval, a stale
/// approval (a tag moved after the plan was shown) deleting nothing, the approved plan
/// deleting exactly its images (a second tag of the protected digest surviving), no second
/// execution, and a registry with deletion disabled giving one clear condition.
#[tokio::test]
async fn deletes_wait_for_approval_of_the_current_plan_and_spare_what_live_sets_need() {
    let _turn = OPERATOR.lock().await;
    let (src, dst, refused) = std::thread::spawn(|| {
        let src = Registry::start(RegistryOptions::default());
        let auth = Some((USER.to_string(), PASSWORD.to_string()));
        let dst = Registry::start(RegistryOptions { htpasswd: auth.clone(), access_log: true, ..Default::default() });
        let refused =
            Registry::start(RegistryOptions { deletion_disabled: true, access_log: true, ..Default::default() });
        let p = Pusher::new(&src);
        for (i, name) in ["apps/one", "apps/two", "apps/kept"].iter().enumerate() {
            p.image(name, "v1", Format::Oci, ("linux", "amd64"), &[(300 + i as u64, 2048)]);
        }
        (src, dst, refused)
    })
    .join()
    .unwrap();
    let cp = cluster::shared();
    let admin = cp.client().await;
    clear_left_behind(&admin).await;
    for ns in ["team-a", "team-b", OPERATOR_NS] {
        cluster::ensure_namespace(&admin, ns).await;
        let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
        let _ = secrets.delete("registry-creds", &DeleteParams::default()).await;
    }
    for ns in ["team-a", "team-b"] {
        let secrets: Api<Secret> = Api::namespaced(admin.clone(), ns);
        secrets.create(&PostParams::default(), &docker_config(&dst.host)).await.unwrap();
    }
    let discs_a: Api<DeleteImageSetConfiguration> = Api::namespaced(admin.clone(), "team-a");
    for d in discs_a.list(&Default::default()).await.unwrap().items {
        let _ = discs_a.delete(&d.metadata.name.unwrap_or_default(), &DeleteParams::default()).await;
    }
    let dir = support::temp_dir("operator-delete-");
    let kubeconfig = service_account_kubeconfig(cp, &admin, dir.path()).await;
    let _operator = support::Guarded::spawn_with_env(
        std::path::Path::new(env!("CARGO_BIN_EXE_imageset-operator")),
        &[
            "run".to_string(),
            format!("--admin-addr=127.0.0.1:{}", support::free_port()),
            format!("--cache-dir={}", dir.path().join("cache").display()),
            format!("--namespace={OPERATOR_NS}"),
            "--retry-interval=2".to_string(),
        ],
        &[("KUBECONFIG", kubeconfig.display().to_string())],
        &dir.path().join("operator.log"),
        None,
    );
    let _as_operator = client_for(&kubeconfig).await;
    let registries = json!([{"host": src.host, "insecure": true}, {"host": dst.host, "insecure": true},
                            {"host": refused.host, "insecure": true}]);
    let origin = |name: &str| format!("{}/{name}:v1", src.host);

    // team-b's live set mirrors apps/kept. team-a's old set mirrored apps/one and apps/two
    // (through the CLI here) and is gone; its images are still in the registry.
    let isc_b: Api<ImageSetConfiguration> = Api::namespaced(admin.clone(), "team-b");
    let keep: ImageSetConfiguration = serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
        "metadata": {"name": "keep"},
        "spec": {"destination": format!("docker://{}/mirror", dst.host), "registries": registries,
                 "authSecretRef": {"name": "registry-creds"},
                 "mirror": {"additionalImages": [{"name": origin("apps/kept")}]}},
    }))
    .unwrap();
    let _ = isc_b.delete("keep", &DeleteParams::default()).await;
    isc_b.create(&PostParams::default(), &keep).await.unwrap();
    let st = finished(&isc_b, "keep", 120).await;
    assert_eq!(st.counts.as_ref().map(|c| c.failed), Some(0), "{st:?}");
    let authfile = dir.path().join("auth.json");
    std::fs::write(&authfile, docker_config_json(&dst.host)).unwrap();
    let cli_dir = support::temp_dir("delete-cli-");
    let isc = support::cli::write_isc(cli_dir.path(), &[origin("apps/one"), origin("apps/two")]);
    support::cli::ok(
        support::cli::mirror_to_mirror(
            &isc,
            cli_dir.path(),
            &format!("docker://{}/mirror", dst.host),
            &["--authfile", authfile.to_str().unwrap()],
        )
        .output()
        .unwrap(),
    );
    // A second tag shares the protected digest.
    let kept_digest = off(|| {
        let repo = "mirror/apps/kept";
        let url = format!("{}/v2/{repo}/manifests/v1", dst.base_url());
        let rb = dst.http().get(url).header("Accept", "application/vnd.oci.image.manifest.v1+json");
        let bytes = dst.authorize(repo, rb).send().unwrap().bytes().unwrap().to_vec();
        Pusher::new(&dst).manifest(repo, "alias", &bytes, "application/vnd.oci.image.manifest.v1+json")
    });
    for (repo, tag) in [("mirror/apps/one", "v1"), ("mirror/apps/two", "v1"), ("mirror/apps/kept", "alias")] {
        assert!(off(|| manifest_present(&dst, repo, tag)), "{repo}:{tag} before the delete");
    }

    // The delete names all three (and the alias, by its own reference).
    let disc: DeleteImageSetConfiguration = serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "DeleteImageSetConfiguration",
        "metadata": {"name": "cleanup"},
        "spec": {"destination": format!("docker://{}/mirror", dst.host), "registries": registries,
                 "authSecretRef": {"name": "registry-creds"},
                 "delete": {"additionalImages": [{"name": origin("apps/one")}, {"name": origin("apps/two")},
                                                 {"name": origin("apps/kept")}]}},
    }))
    .unwrap();
    discs_a.create(&PostParams::default(), &disc).await.unwrap();
    let st = settled(&discs_a, "cleanup", &["AwaitingApproval"]).await;
    let counts = st.counts.clone().unwrap();
    assert_eq!((counts.total, counts.to_delete, counts.protected, counts.already_gone), (3, 2, 1, 0), "{st:?}");
    let protected = st.planned.iter().find(|p| p.action == "Protected").expect("a protected item");
    assert_eq!(protected.protected_by.as_deref(), Some("team-b/keep"));
    assert_eq!(protected.digest.as_deref(), Some(kept_digest.as_str()));
    let first = st.plan_digest.clone().unwrap();
    assert!(ready(&st).message.contains(&first), "{}", ready(&st).message);
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), "team-a");
    let cm = cms.get(st.plan_config_map.as_deref().unwrap()).await.unwrap();
    let plan = cm.data.clone().unwrap_or_default();
    let lines: Vec<&str> = plan["plan.txt"].lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines.iter().filter(|l| l.starts_with("delete ")).count(), 2, "{lines:?}");
    assert!(lines.iter().any(|l| l.starts_with("protected ") && l.ends_with(" team-b/keep")), "{lines:?}");
    assert!(plan["delete-images.yaml"].contains("kind: DeleteImageList"));
    assert_eq!(cm.metadata.owner_references.unwrap_or_default().len(), 1, "the plan goes with its delete");
    assert_eq!(dst.requests("DELETE", "/manifests/"), 0, "nothing is deleted before approval");

    // The tag apps/one:v1 moves after the plan was shown: approving the shown plan deletes
    // nothing and says why.
    let other =
        off(|| Pusher::new(&dst).image("mirror/apps/one", "v1", Format::Oci, ("linux", "amd64"), &[(998, 2048)]));
    approve(&discs_a, "cleanup", &first).await;
    let st = settled(&discs_a, "cleanup", &["ApprovalStale"]).await;
    let msg = ready(&st).message;
    assert!(msg.starts_with("nothing deleted") && msg.contains(&first), "{msg}");
    let second = st.plan_digest.clone().unwrap();
    assert_ne!(first, second);
    assert_eq!(dst.requests("DELETE", "/manifests/"), 0, "a stale approval deletes nothing");

    // Approving the plan as it now stands deletes exactly its two images.
    approve(&discs_a, "cleanup", &second).await;
    let st = settled(&discs_a, "cleanup", &["Deleted", "DeleteIncomplete"]).await;
    let counts = st.counts.clone().unwrap();
    assert_eq!((counts.deleted, counts.protected, counts.failed), (2, 1, 0), "{st:?}");
    assert_eq!(ready(&st).reason, "Deleted");
    assert!(st.completion_time.is_some());
    assert_eq!(dst.requests("DELETE", "/manifests/"), 2);
    assert!(!off(|| manifest_present(&dst, "mirror/apps/one", &other.digest)));
    assert!(!off(|| manifest_present(&dst, "mirror/apps/two", "v1")));
    assert!(off(|| manifest_present(&dst, "mirror/apps/kept", "v1")), "protected by team-b/keep");
    assert!(off(|| manifest_present(&dst, "mirror/apps/kept", "alias")), "a tag sharing a protected digest survives");

    // Done for this generation: a touch that is not a spec change runs nothing again.
    let touch = json!({"metadata": {"annotations": {"touched": "yes"}}});
    discs_a.patch("cleanup", &PatchParams::default(), &Patch::Merge(&touch)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(dst.requests("DELETE", "/manifests/"), 2, "a finished delete does not run again");
    assert_eq!(ready(&discs_a.get("cleanup").await.unwrap().status.unwrap()).reason, "Deleted");

    // A registry with deletion disabled: one clear condition, its images untouched.
    off(|| Pusher::new(&refused).image("mirror/apps/two", "v1", Format::Oci, ("linux", "amd64"), &[(7, 512)]));
    let no: DeleteImageSetConfiguration = serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "DeleteImageSetConfiguration",
        "metadata": {"name": "refused"},
        "spec": {"destination": format!("docker://{}/mirror", refused.host), "registries": registries,
                 "delete": {"additionalImages": [{"name": origin("apps/two")}]}},
    }))
    .unwrap();
    discs_a.create(&PostParams::default(), &no).await.unwrap();
    let st = settled(&discs_a, "refused", &["AwaitingApproval"]).await;
    assert_eq!(st.counts.clone().unwrap().to_delete, 1, "{st:?}");
    approve(&discs_a, "refused", st.plan_digest.as_deref().unwrap()).await;
    let st = settled(&discs_a, "refused", &["DeleteUnsupported"]).await;
    let msg = ready(&st).message;
    assert!(msg.contains(&refused.host) && msg.contains("storage.delete.enabled"), "{msg}");
    assert!(st.conditions.iter().any(|c| c.type_ == "Degraded" && c.status == "True"));
    assert!(off(|| manifest_present(&refused, "mirror/apps/two", "v1")));
    assert!(refused.requests("DELETE", "/manifests/") <= 1);

    // The operator never logged the password.
    let log = std::fs::read_to_string(dir.path().join("operator.log")).unwrap();
    assert!(!log.contains(PASSWORD));
    for name in ["cleanup", "refused"] {
        discs_a.delete(name, &DeleteParams::default()).await.unwrap();
    }
    isc_b.delete("keep", &DeleteParams::default()).await.unwrap();
}
