//! Running `imageset-operator run` in tests against the shared control plane: one operator
//! at a time, image sets left by a failed test cleared, a run waited for, cluster objects read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};

use imageset_operator::api::ImageSetConfiguration;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

/// Operators watch every namespace: tests that run one take turns, from their first step (a
/// test setting up registries meanwhile would starve a running operator on two cores and
/// delay its lease renewals).
pub static OPERATOR: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Removes image sets an earlier failed test may have left behind (finalizers cleared), so
/// that they cannot run under this test's operator. Called holding [`OPERATOR`].
pub async fn clear_left_behind(client: &kube::Client) {
    let all: Api<ImageSetConfiguration> = Api::all(client.clone());
    for isc in all.list(&Default::default()).await.unwrap().items {
        let ns = isc.metadata.namespace.clone().unwrap_or_default();
        let name = isc.metadata.name.clone().unwrap_or_default();
        let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), &ns);
        let clear = json!({"metadata": {"finalizers": null}});
        let _ = api.patch(&name, &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&clear)).await;
        let _ = api.delete(&name, &DeleteParams::default()).await;
    }
}

/// Waits for an image set's run to finish for its current generation; returns its status.
pub async fn finished(
    api: &Api<ImageSetConfiguration>,
    name: &str,
    secs: u64,
) -> imageset_operator::api::status::ImageSetStatus {
    for _ in 0..secs * 10 {
        let obj = api.get(name).await.unwrap();
        if let Some(st) = obj.status.clone()
            && st.observed_generation == obj.metadata.generation
            && st.conditions.iter().any(|c| c.type_ == "Progressing" && c.status == "False")
            && st.conditions.iter().any(|c| c.type_ == "Ready" && c.reason != "Started")
        {
            return st;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name}: run not finished within {secs}s: {:?}", api.get(name).await.unwrap().status);
}

/// `imageset-operator run` under a guard, with its cache in `dir`/cache, its admin endpoint
/// on `admin`, and `flags` beside; logs to `dir`/operator.log.
pub fn operator(
    cp: &super::cluster::ControlPlane,
    dir: &std::path::Path,
    admin: &str,
    flags: &[&str],
) -> super::Guarded {
    let mut args = vec!["run".to_string(), format!("--admin-addr={admin}")];
    args.push(format!("--cache-dir={}", dir.join("cache").display()));
    args.extend(flags.iter().map(|f| f.to_string()));
    super::Guarded::spawn_with_env(
        std::path::Path::new(env!("CARGO_BIN_EXE_imageset-operator")),
        &args,
        &[("KUBECONFIG", cp.kubeconfig.display().to_string())],
        &dir.join("operator.log"),
        None,
    )
}

pub fn dynamic(client: &kube::Client, group: &str, version: &str, kind: &str) -> Api<kube::api::DynamicObject> {
    let ar = kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(group, version, kind));
    Api::all_with(client.clone(), &ar)
}

/// The operator's namespace and ServiceAccount, as `config/rbac` ships them.
pub const OPERATOR_NS: &str = "imageset-operator";
/// See [`OPERATOR_NS`].
pub const OPERATOR_SA: &str = "imageset-operator";

/// Applies the operator's ServiceAccount, ClusterRole and ClusterRoleBinding from
/// `config/rbac` (what a deployment installs) and writes a kubeconfig holding a token of that
/// ServiceAccount; returns its path.
pub async fn service_account_kubeconfig(
    cp: &super::cluster::ControlPlane,
    admin: &kube::Client,
    dir: &Path,
) -> PathBuf {
    let rbac = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rbac");
    let read = |name: &str| std::fs::read_to_string(rbac.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let apply = PatchParams::apply("imageset-operator-tests").force();
    let sa: ServiceAccount = serde_saphyr::from_str(&read("service_account.yaml")).expect("service_account.yaml");
    let role: ClusterRole = serde_saphyr::from_str(&read("role.yaml")).expect("role.yaml");
    let binding: ClusterRoleBinding = serde_saphyr::from_str(&read("role_binding.yaml")).expect("role_binding.yaml");
    assert_eq!(
        (sa.metadata.namespace.as_deref(), sa.metadata.name.as_deref()),
        (Some(OPERATOR_NS), Some(OPERATOR_SA)),
        "config/rbac names another ServiceAccount"
    );
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), OPERATOR_NS);
    sas.patch(OPERATOR_SA, &apply, &Patch::Apply(&sa)).await.expect("apply the ServiceAccount");
    let roles: Api<ClusterRole> = Api::all(admin.clone());
    roles.patch(role.metadata.name.as_deref().unwrap(), &apply, &Patch::Apply(&role)).await.expect("apply the role");
    let bindings: Api<ClusterRoleBinding> = Api::all(admin.clone());
    bindings
        .patch(binding.metadata.name.as_deref().unwrap(), &apply, &Patch::Apply(&binding))
        .await
        .expect("apply the role binding");
    // Empty audiences: the apiserver's own.
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}})).unwrap();
    let token = sas
        .create_token_request(OPERATOR_SA, &PostParams::default(), &request)
        .await
        .expect("a token for the operator's ServiceAccount")
        .status
        .and_then(|s| s.token)
        .expect("a token in the token request's status");
    let ca = base64::engine::general_purpose::STANDARD.encode(&cp.ca_pem);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: operator\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: operator\n    namespace: {OPERATOR_NS}\ncurrent-context: test\n",
        cp.url
    );
    let path = dir.join("operator.kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

/// A client from a kubeconfig file.
pub async fn client_for(path: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kubeconfig");
    kube::Client::try_from(config).expect("kube client")
}
