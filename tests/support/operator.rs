//! Running `imageset-operator run` in tests against the shared control plane: one operator
//! at a time, image sets left by a failed test cleared, a run waited for, cluster objects read.

use std::time::Duration;

use imageset_operator::api::ImageSetConfiguration;
use kube::api::{Api, DeleteParams};
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
