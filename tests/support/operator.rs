//! Running `imageset-operator run` in tests against the shared control plane: one operator
//! at a time, image sets left by a failed test cleared, a run waited for, cluster objects read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;

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

/// An image set named `name` in namespace `ns` with this `spec`.
pub fn image_set_in(ns: &str, name: &str, spec: serde_json::Value) -> ImageSetConfiguration {
    serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
        "metadata": {"name": name, "namespace": ns}, "spec": spec,
    }))
    .unwrap()
}

/// An image set's Ready condition: (status, reason, message).
pub fn ready(st: &imageset_operator::api::status::ImageSetStatus) -> (String, String, String) {
    let c = st.conditions.iter().find(|c| c.type_ == "Ready").expect("a Ready condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
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

/// `imageset-operator run` under a guard as its ServiceAccount, under the RBAC of
/// `config/rbac` (see [`service_account_kubeconfig_in`]; its leader-election Role goes to the
/// `--namespace` in `flags`), with its cache in `dir`/cache, its admin endpoint on `admin`,
/// and `flags` beside; logs to `dir`/operator.log.
pub async fn operator(
    cp: &super::cluster::ControlPlane,
    dir: &std::path::Path,
    admin: &str,
    flags: &[&str],
) -> super::Guarded {
    let ns = flags.iter().find_map(|f| f.strip_prefix("--namespace=")).unwrap_or(OPERATOR_NS);
    let kubeconfig = service_account_kubeconfig_in(cp, &cp.client().await, dir, ns).await;
    operator_as(&kubeconfig, dir, admin, flags, &[], "operator")
}

/// `imageset-operator run` under a guard with `kubeconfig`'s credentials, its cache in
/// `dir`/cache, `env` beside KUBECONFIG; logs to `dir`/`name`.log.
pub fn operator_as(
    kubeconfig: &Path,
    dir: &std::path::Path,
    admin: &str,
    flags: &[&str],
    env: &[(&str, String)],
    name: &str,
) -> super::Guarded {
    let mut args = vec!["run".to_string(), format!("--admin-addr={admin}")];
    args.push(format!("--cache-dir={}", dir.join("cache").display()));
    args.extend(flags.iter().map(|f| f.to_string()));
    let mut env = env.to_vec();
    env.push(("KUBECONFIG", kubeconfig.display().to_string()));
    super::Guarded::spawn_with_env(
        std::path::Path::new(env!("CARGO_BIN_EXE_imageset-operator")),
        &args,
        &env,
        &dir.join(format!("{name}.log")),
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

/// What `config/rbac` installs: every document of the files its kustomization lists.
pub fn config_rbac() -> Vec<serde_json::Value> {
    let rbac = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rbac");
    let read = |name: &str| std::fs::read_to_string(rbac.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let kustomization: serde_json::Value = serde_saphyr::from_str(&read("kustomization.yaml")).expect("kustomization");
    let files = kustomization["resources"].as_array().expect("kustomization resources");
    files.iter().flat_map(|f| documents(&read(f.as_str().expect("a file name")))).collect()
}

/// The documents of a multi-document YAML text.
pub fn documents(text: &str) -> Vec<serde_json::Value> {
    text.split("\n---")
        .map(|d| d.trim_start_matches("---"))
        .filter(|d| d.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')))
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect()
}

/// Applies ServiceAccounts, roles and bindings as the admin, creating the namespaces they go
/// to.
pub async fn apply_rbac(admin: &kube::Client, docs: &[serde_json::Value]) {
    let apply = PatchParams::apply("imageset-operator-tests").force();
    for doc in docs {
        let kind = doc["kind"].as_str().expect("kind");
        let (group, version) = doc["apiVersion"].as_str().expect("apiVersion").split_once('/').unwrap_or(("", "v1"));
        let ar = kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(group, version, kind));
        let name = doc["metadata"]["name"].as_str().expect("name");
        let api: Api<kube::api::DynamicObject> = match doc["metadata"]["namespace"].as_str() {
            Some(ns) => {
                super::cluster::ensure_namespace(admin, ns).await;
                Api::namespaced_with(admin.clone(), ns, &ar)
            }
            None => Api::all_with(admin.clone(), &ar),
        };
        api.patch(name, &apply, &Patch::Apply(doc)).await.unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
    }
}

/// Applies `config/rbac` (what a deployment installs) with its leader-election Role moved to
/// `namespace` (the operator's `--namespace`, as a kustomize namespace override would put
/// it; the ServiceAccount stays where `config/rbac` has it) and writes a kubeconfig holding a
/// token of that ServiceAccount; returns its path.
pub async fn service_account_kubeconfig_in(
    cp: &super::cluster::ControlPlane,
    admin: &kube::Client,
    dir: &Path,
    namespace: &str,
) -> PathBuf {
    let mut docs = config_rbac();
    let sa = docs.iter().find(|d| d["kind"] == "ServiceAccount").expect("a ServiceAccount in config/rbac");
    assert_eq!(
        (sa["metadata"]["namespace"].as_str(), sa["metadata"]["name"].as_str()),
        (Some(OPERATOR_NS), Some(OPERATOR_SA)),
        "config/rbac names another ServiceAccount"
    );
    for d in docs.iter_mut().filter(|d| d["kind"] == "Role" || d["kind"] == "RoleBinding") {
        if d["metadata"]["namespace"] == OPERATOR_NS {
            d["metadata"]["namespace"] = json!(namespace);
        }
    }
    apply_rbac(admin, &docs).await;
    token_kubeconfig(cp, admin, dir, OPERATOR_NS, OPERATOR_SA).await
}

/// [`service_account_kubeconfig_in`] the operator's namespace of `config/rbac`.
pub async fn service_account_kubeconfig(
    cp: &super::cluster::ControlPlane,
    admin: &kube::Client,
    dir: &Path,
) -> PathBuf {
    service_account_kubeconfig_in(cp, admin, dir, OPERATOR_NS).await
}

/// An installation of its own: its ServiceAccount, and the roles and bindings
/// `imageset_operator::controller::rbac::manifests` gives it (what the chart renders for
/// it); returns the path of a kubeconfig of that ServiceAccount.
pub async fn installation_kubeconfig(
    cp: &super::cluster::ControlPlane,
    admin: &kube::Client,
    dir: &Path,
    install: &imageset_operator::controller::rbac::Install<'_>,
) -> PathBuf {
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": install.service_account, "namespace": install.namespace}});
    let (roles, bindings) = imageset_operator::controller::rbac::manifests(install);
    let mut docs = vec![sa];
    docs.extend(documents(&roles));
    docs.extend(documents(&bindings));
    apply_rbac(admin, &docs).await;
    token_kubeconfig(cp, admin, dir, install.namespace, install.service_account).await
}

/// A kubeconfig holding a token of ServiceAccount `ns`/`sa`, written in `dir`; its path.
async fn token_kubeconfig(
    cp: &super::cluster::ControlPlane,
    admin: &kube::Client,
    dir: &Path,
    ns: &str,
    sa: &str,
) -> PathBuf {
    let sas: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    // Empty audiences: the apiserver's own.
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"audiences": [], "expirationSeconds": 3600}})).unwrap();
    let token = sas
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .expect("a token for the operator's ServiceAccount")
        .status
        .and_then(|s| s.token)
        .expect("a token in the token request's status");
    let ca = base64::engine::general_purpose::STANDARD.encode(&cp.ca_pem);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: operator\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: operator\n    namespace: {ns}\ncurrent-context: test\n",
        cp.url
    );
    let path = dir.join(format!("{ns}.{sa}.kubeconfig"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A client from a kubeconfig file.
pub async fn client_for(path: &Path) -> kube::Client {
    let kc = kube::config::Kubeconfig::read_from(path).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await.expect("kubeconfig");
    kube::Client::try_from(config).expect("kube client")
}
