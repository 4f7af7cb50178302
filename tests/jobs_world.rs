//! The Jobs part of the test world: kube-controller-manager's real Job controller creates and
//! retries Pods, and the test kubelet runs them as local processes with their volumes,
//! environment and ServiceAccount token mapped onto this machine.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use serde_json::{Value, json};
use support::controllers::{self, ControllerManager};
use support::kubelet::{Kubelet, KubeletOptions, PodRun};

/// A namespace with its own kubelet, its claim `data` a local directory.
struct World {
    kcm: &'static ControllerManager,
    client: kube::Client,
    kubelet: Kubelet,
    data: PathBuf,
    ns: String,
    _dir: tempfile::TempDir,
}

async fn world(ns: &str) -> World {
    let kcm = controllers::shared();
    let cp = support::cluster::shared();
    let client = cp.client().await;
    controllers::ready_namespace(&client, ns, kcm).await;
    let dir = support::temp_dir("jobs-world-");
    let data = dir.path().join("data");
    let kubelet = Kubelet::start(cp, ns, KubeletOptions::new(&dir.path().join("kubelet")).claim("data", &data));
    World { kcm, client, kubelet, data, ns: ns.to_string(), _dir: dir }
}

impl World {
    fn jobs(&self) -> Api<Job> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    async fn create(&self, job: Value) -> String {
        let job: Job = serde_json::from_value(job).unwrap();
        let name = job.metadata.name.clone().unwrap();
        self.jobs().create(&PostParams::default(), &job).await.unwrap_or_else(|e| panic!("create Job {name}: {e}"));
        name
    }

    fn diag(&self) -> String {
        format!("kubelet runs:\n{}\nkube-controller-manager:\n{}", self.kubelet.describe(), self.kcm.log_tail())
    }

    /// Polls (every 200 ms) until `ready` holds, failing with the runs and the controller
    /// manager's log after `secs`.
    async fn wait<F, Fut>(&self, what: &str, secs: u64, mut ready: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for _ in 0..secs * 5 {
            if ready().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{what}: not within {secs}s\n{}", self.diag());
    }

    /// Waits for Job `name` to be Complete; fails at once if it Failed.
    async fn complete(&self, name: &str) -> Job {
        let jobs = self.jobs();
        for _ in 0..90 * 5 {
            let job = jobs.get(name).await.unwrap();
            let conditions = job.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
            if conditions.iter().any(|c| c.type_ == "Complete" && c.status == "True") {
                return job;
            }
            if let Some(c) = conditions.iter().find(|c| c.type_ == "Failed" && c.status == "True") {
                panic!("Job {name} failed: {:?} {:?}\n{}", c.reason, c.message, self.diag());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("Job {name} not complete within 90s: {:?}\n{}", jobs.get(name).await.unwrap().status, self.diag());
    }

    /// The kubelet's runs of Job `job`, by completion index.
    fn runs_by_index(&self, job: &str) -> BTreeMap<u32, Vec<PodRun>> {
        let mut by: BTreeMap<u32, Vec<PodRun>> = BTreeMap::new();
        for r in self.kubelet.runs().into_iter().filter(|r| r.job.as_deref() == Some(job)) {
            by.entry(r.index.expect("an indexed Job's Pod has an index")).or_default().push(r);
        }
        by
    }
}

/// An Indexed Job of `n` Pods at once, one retry per index, each Pod running `script` under
/// `/bin/sh` with the claim `data` mounted at /data and `$DATA` naming it (the kubelet maps
/// paths in arguments and environment values, not in a script's body); a failed Pod's
/// termination message is its log tail.
fn indexed_job(name: &str, n: i32, script: &str) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "completionMode": "Indexed", "completions": n, "parallelism": n,
            "backoffLimitPerIndex": 1, "podReplacementPolicy": "Failed",
            "template": {"spec": {
                "restartPolicy": "Never",
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
                "containers": [{
                    "name": "work", "image": "example.com/shell:1", "command": ["/bin/sh", "-c", script],
                    "env": [{"name": "DATA", "value": "/data"}],
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }],
            }},
        },
    })
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_indexed_job_retries_only_the_index_that_failed() {
    let w = world("jobs-retry").await;
    let script = r#"if [ "$JOB_COMPLETION_INDEX" = 1 ] && [ ! -e "$DATA/tried-1" ]; then
  touch "$DATA/tried-1"; echo "index 1 fails once" >&2; exit 3
fi
echo "$JOB_COMPLETION_INDEX" > "$DATA/done-$JOB_COMPLETION_INDEX""#;
    let name = w.create(indexed_job("retry", 3, script)).await;
    let job = w.complete(&name).await;

    for i in 0..3 {
        assert_eq!(read(&w.data.join(format!("done-{i}"))).trim(), i.to_string());
    }
    let by = w.runs_by_index(&name);
    let exits: BTreeMap<u32, Vec<Option<i32>>> =
        by.iter().map(|(i, runs)| (*i, runs.iter().map(|r| r.exit_code).collect())).collect();
    assert_eq!(
        exits,
        BTreeMap::from([(0, vec![Some(0)]), (1, vec![Some(3), Some(0)]), (2, vec![Some(0)])]),
        "{}",
        w.diag()
    );
    let first = &by[&1][0];
    assert!(w.kubelet.log(&first.pod).contains("index 1 fails once"));
    let st = job.status.unwrap();
    assert_eq!((st.succeeded, st.failed), (Some(3), Some(1)));
    assert_eq!(st.completed_indexes.as_deref(), Some("0-2"));

    // The failed Pod's status is what a kubelet reports.
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), &w.ns);
    let failed = pods.get(&first.pod).await.unwrap().status.unwrap();
    assert_eq!(failed.phase.as_deref(), Some("Failed"));
    let terminated = failed.container_statuses.unwrap()[0].state.clone().unwrap().terminated.unwrap();
    assert_eq!((terminated.exit_code, terminated.reason.as_deref()), (3, Some("Error")));
    assert!(terminated.message.unwrap_or_default().contains("index 1 fails once"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pod_is_retried_for_its_index_only() {
    let w = world("jobs-kill").await;
    let script = r#"if [ "$JOB_COMPLETION_INDEX" = 0 ] && [ ! -e "$DATA/started-0" ]; then
  touch "$DATA/started-0"; exec sleep 30
fi
echo ok > "$DATA/done-$JOB_COMPLETION_INDEX""#;
    let name = w.create(indexed_job("kill", 2, script)).await;
    let started = w.data.join("started-0");
    w.wait("index 0's first Pod sleeping", 60, || async {
        started.exists() && w.runs_by_index(&name).get(&0).is_some_and(|runs| runs[0].running())
    })
    .await;
    let victim = w.runs_by_index(&name)[&0][0].clone();
    assert!(w.kubelet.kill(&victim.pod), "{}", w.diag());
    let job = w.complete(&name).await;

    let by = w.runs_by_index(&name);
    assert_eq!(by[&0].len(), 2, "{}", w.diag());
    assert_eq!(by[&1].len(), 1, "{}", w.diag());
    let (first, second) = (&by[&0][0], &by[&0][1]);
    assert!(first.killed);
    assert_eq!(first.exit_code, Some(128 + libc::SIGKILL));
    assert_eq!(second.exit_code, Some(0));
    assert!(!second.killed);
    let st = job.status.unwrap();
    assert_eq!((st.succeeded, st.failed), (Some(2), Some(1)));
    assert!(w.data.join("done-0").exists() && w.data.join("done-1").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_sees_its_volumes_fields_and_service_account() {
    let w = world("jobs-pod-view").await;
    let cms: Api<ConfigMap> = Api::namespaced(w.client.clone(), &w.ns);
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "settings"},
        "data": {"greeting": "hello from a ConfigMap"},
        "binaryData": {"blob": "AAEC/w=="},
    }))
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let secrets: Api<Secret> = Api::namespaced(w.client.clone(), &w.ns);
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "creds"}, "stringData": {"password": "pa55"}})).unwrap();
    secrets.create(&PostParams::default(), &secret).await.unwrap();

    let script = r#"set -e
out="$2"
printf %s "$POD_NAME" > "$out/pod-name"
printf %s "$APP" > "$out/app"
printf %s "$GREETING" > "$out/greeting-env"
printf %s "$PASSWORD" > "$out/password-env"
printf %s "$NESTED" > "$out/nested-env"
cp "${1#--greeting=}" "$out/greeting-file"
cp "$SETTINGS/blob" "$out/blob"
cp "$SECRETS/password" "$out/password-file"
cp "$KUBECONFIG" "$out/kubeconfig"
pwd > "$out/pwd""#;
    let job = json!({
        "metadata": {"name": "view"},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app": "jobs-world"}},
                "spec": {
                    "restartPolicy": "Never",
                    "volumes": [
                        {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                        {"name": "greeting", "configMap": {"name": "settings", "items": [{"key": "greeting", "path": "sub/greeting.txt"}]}},
                        {"name": "settings", "configMap": {"name": "settings"}},
                        {"name": "creds", "secret": {"secretName": "creds"}},
                    ],
                    "containers": [{
                        "name": "view", "image": "example.com/shell:1",
                        "command": ["/bin/sh", "-c", script, "sh"],
                        "args": ["--greeting=/etc/greeting/sub/greeting.txt", "/data"],
                        "workingDir": "/data",
                        "env": [
                            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                            {"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "greeting"}}},
                            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
                            {"name": "NESTED", "value": "$(APP)/$(POD_NAME)"},
                            {"name": "SETTINGS", "value": "/etc/settings"},
                            {"name": "SECRETS", "value": "/etc/creds"},
                        ],
                        "volumeMounts": [
                            {"name": "data", "mountPath": "/data"},
                            {"name": "greeting", "mountPath": "/etc/greeting"},
                            {"name": "settings", "mountPath": "/etc/settings"},
                            {"name": "creds", "mountPath": "/etc/creds"},
                        ],
                    }],
                },
            },
        },
    });
    let name = w.create(job).await;
    w.complete(&name).await;

    let runs: Vec<PodRun> = w.kubelet.runs().into_iter().filter(|r| r.job.as_deref() == Some("view")).collect();
    assert_eq!(runs.len(), 1, "{}", w.diag());
    let pod = &runs[0].pod;
    let out = |f: &str| read(&w.data.join(f));
    assert_eq!(out("pod-name"), *pod);
    assert_eq!(out("app"), "jobs-world");
    assert_eq!(out("greeting-env"), "hello from a ConfigMap");
    assert_eq!(out("greeting-file"), "hello from a ConfigMap");
    assert_eq!(std::fs::read(w.data.join("blob")).unwrap(), [0u8, 1, 2, 255]);
    assert_eq!(out("password-env"), "pa55");
    assert_eq!(out("password-file"), "pa55");
    assert_eq!(out("nested-env"), format!("jobs-world/{pod}"));
    assert_eq!(Path::new(out("pwd").trim()).canonicalize().unwrap(), w.data.canonicalize().unwrap());

    // The kubeconfig the process was given acts as the Pod's ServiceAccount, bound to the Pod.
    let client = support::operator::client_for(&w.data.join("kubeconfig")).await;
    let reviews: Api<SelfSubjectReview> = Api::all(client);
    let review = reviews.create(&PostParams::default(), &SelfSubjectReview::default()).await.unwrap();
    let user = review.status.and_then(|s| s.user_info).expect("user info");
    assert_eq!(user.username.as_deref(), Some(format!("system:serviceaccount:{}:default", w.ns).as_str()));
    let extra = user.extra.unwrap_or_default();
    assert_eq!(extra.get("authentication.kubernetes.io/pod-name"), Some(&vec![pod.clone()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_job_stops_its_running_pod_and_an_unknown_claim_fails_the_pod() {
    let w = world("jobs-delete").await;
    let name = w.create(indexed_job("sleeper", 1, r#"touch "$DATA/sleeping"; exec sleep 30"#)).await;
    let sleeping = w.data.join("sleeping");
    w.wait("the sleeper running", 60, || async { sleeping.exists() }).await;
    let pod = w.runs_by_index(&name)[&0][0].pod.clone();
    let dp = DeleteParams { propagation_policy: Some(PropagationPolicy::Background), ..Default::default() };
    w.jobs().delete(&name, &dp).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(w.client.clone(), &w.ns);
    w.wait("the sleeper's Pod gone", 60, || async { pods.get_opt(&pod).await.unwrap().is_none() }).await;
    let run = w.kubelet.run(&pod).unwrap();
    assert!(run.killed);
    assert_eq!(run.exit_code, Some(128 + libc::SIGTERM), "{}", w.diag());

    let mut job = indexed_job("lost", 1, "true");
    job["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] = json!("nowhere");
    job["spec"]["backoffLimitPerIndex"] = json!(0);
    let name = w.create(job).await;
    let lp = ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}"));
    let mut message = None;
    for _ in 0..60 * 5 {
        message = pods.list(&lp).await.unwrap().items.into_iter().find_map(|p| {
            let st = p.status?;
            (st.phase.as_deref() == Some("Failed")).then(|| st.message.unwrap_or_default())
        });
        if message.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let message = message.unwrap_or_else(|| panic!("no failed Pod of Job {name}\n{}", w.diag()));
    assert!(message.contains("PersistentVolumeClaim \"nowhere\""), "{message}");
}
