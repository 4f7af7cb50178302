//! kube-controller-manager against the shared control plane, with only the controllers that
//! make Jobs run: the Job controller, the TTL-after-finished controller, the garbage
//! collector, and the ServiceAccount controller (which gives each namespace its `default`
//! ServiceAccount; the apiserver's ServiceAccount admission refuses Pods without theirs).
//! Nothing schedules or runs Pods: a [`super::kubelet::Kubelet`] does, per namespace.
//! One per test binary, shared by its tests, started on first use.

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use serde_json::json;

use super::cluster::ControlPlane;
use super::{Guarded, require};

/// The controllers this test world runs (names as kube-controller-manager v1.37 spells them).
pub const CONTROLLERS: &[&str] =
    &["job-controller", "ttl-after-finished-controller", "garbage-collector-controller", "serviceaccount-controller"];

/// A running kube-controller-manager.
pub struct ControllerManager {
    /// Its log (stdout and stderr).
    pub log: PathBuf,
    guard: Mutex<Guarded>,
}

static SHARED: OnceLock<ControllerManager> = OnceLock::new();

/// The controller manager of this test binary (and the control plane it runs against),
/// started on first use and working: a probe Job has had its Pod created.
pub fn shared() -> &'static ControllerManager {
    // Started on a plain thread: tests call this from inside their async runtime.
    SHARED.get_or_init(|| {
        std::thread::spawn(|| ControllerManager::start(super::cluster::shared()))
            .join()
            .expect("controller manager started")
    })
}

impl ControllerManager {
    fn start(cp: &'static ControlPlane) -> ControllerManager {
        let bin = require("kube-controller-manager");
        // Lives until the process stops: its watchdog removes it.
        let dir = super::temp_dir("controller-manager-").keep();
        let log = dir.join("kube-controller-manager.log");
        let guard = Guarded::spawn(
            &bin,
            &[
                format!("--kubeconfig={}", cp.kubeconfig.display()),
                format!("--controllers={}", CONTROLLERS.join(",")),
                "--leader-elect=false".into(),
                "--use-service-account-credentials=false".into(),
                "--secure-port=0".into(),
                // Informer resyncs only matter when a watch event is lost; keep them short anyway.
                "--min-resync-period=30s".into(),
                "--concurrent-job-syncs=5".into(),
                "--concurrent-gc-syncs=5".into(),
                "--v=2".into(),
            ],
            &log,
            Some(&dir),
        );
        let kcm = ControllerManager { log, guard: Mutex::new(guard) };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(kcm.probe(cp));
        kcm
    }

    /// Waits until a trivial Job in namespace `kcm-probe` gets its Pod, then deletes the Job
    /// (its Pod goes with it: the garbage collector, the Job controller's finalizer removal).
    async fn probe(&self, cp: &ControlPlane) {
        let client = cp.client().await;
        let ns = "kcm-probe";
        ready_namespace(&client, ns, self).await;
        let jobs: Api<Job> = Api::namespaced(client.clone(), ns);
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "probe"},
            "spec": {"template": {"spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "probe", "image": "probe"}],
            }}},
        }))
        .unwrap();
        jobs.create(&PostParams::default(), &job).await.expect("create the probe Job");
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let lp = ListParams::default().labels("batch.kubernetes.io/job-name=probe");
        self.wait("the probe Job's Pod", Duration::from_secs(120), || async {
            !pods.list(&lp).await.map(|l| l.items.is_empty()).unwrap_or(true)
        })
        .await;
        let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
        jobs.delete("probe", &dp).await.expect("delete the probe Job");
    }

    /// Polls `ready` every 100 ms until it holds, failing with the log tail after `timeout`;
    /// fails at once if the controller manager exited.
    pub async fn wait<F, Fut>(&self, what: &str, timeout: Duration, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            self.guard.lock().unwrap_or_else(|e| e.into_inner()).alive();
            if ready().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what} not ready after {timeout:?}; kube-controller-manager:\n{}", self.log_tail());
    }

    /// The tail of its log (errors first), for failure messages.
    pub fn log_tail(&self) -> String {
        (self.guard.lock().unwrap_or_else(|e| e.into_inner()).log_tail())()
    }
}

/// Creates namespace `name` (unless it exists) and waits for its `default` ServiceAccount,
/// which Pods there need before they can be created.
pub async fn ready_namespace(client: &kube::Client, name: &str, kcm: &ControllerManager) {
    super::cluster::ensure_namespace(client, name).await;
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), name);
    kcm.wait(&format!("ServiceAccount {name}/default"), Duration::from_secs(60), || async {
        sas.get_opt("default").await.ok().flatten().is_some()
    })
    .await;
}
