//! A test kubelet: a fake node that runs the Pods of one namespace as local processes, so
//! that the real Job controller (see [`super::controllers`]) drives their completions and
//! retries.
//!
//! What it does, and no more:
//! - Pods that are new (no deletionTimestamp, phase Pending or unset) are run once each,
//!   whatever their nodeName (nothing schedules them). One container, no init containers.
//! - Volumes become local directories under the Pod's root: `persistentVolumeClaim` maps
//!   through [`KubeletOptions::claims`], `emptyDir` is a fresh directory, `configMap`,
//!   `secret` and `downwardAPI` are written out as files, `hostPath` is the path itself.
//!   `projected` volumes (the ServiceAccount token mount) are left out: see `KUBECONFIG`.
//! - Arguments, environment values, the working directory and the program naming a mount
//!   path (equal to it, under it, or as `--flag=<mount path>...`) are rewritten to the local
//!   directory. Other text (a shell script's body, say) is left as it is.
//! - The program is `command[0]` when that is a local program, else the image's entrypoint
//!   from [`KubeletOptions::entrypoints`] (with `command[1..]`, then `args`).
//! - The environment is the container's (`value`, `fieldRef`, `configMapKeyRef`,
//!   `secretKeyRef`, `envFrom`, with `$(VAR)` expansion) over PATH, HOME (the Pod's root),
//!   HOSTNAME and [`KubeletOptions::env`]. Unless the token is not automounted, `KUBECONFIG`
//!   names a kubeconfig with a token of the Pod's ServiceAccount bound to the Pod: the local
//!   stand-in for the in-cluster service-account mount.
//! - Status goes to `pods/status`: Running, then Succeeded or Failed with the container's
//!   exit code (128 + signal when killed) and, under `FallbackToLogsOnError`, the log tail.
//! - A Pod being deleted has its process stopped (SIGTERM, SIGKILL after
//!   [`KubeletOptions::grace`]), is marked terminal, and is deleted with grace period 0.
//!   Finalizers are left to their owners (the Job controller's `job-tracking`).
//!
//! What cannot be run (an unknown claim or image, an unsupported field) fails the Pod with
//! the reason in its status message and in [`PodRun::error`].

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt as _;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher;
use serde_json::{Value, json};

use super::cluster::ControlPlane;

/// The annotation the Job controller puts the completion index in.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// The label naming a Pod's Job.
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";

/// How the kubelet maps Pods onto this machine.
#[derive(Clone, Debug)]
pub struct KubeletOptions {
    /// Pod roots (`pods/<pod>`) and logs (`<pod>.log`).
    pub dir: PathBuf,
    /// The local program standing for each image's entrypoint, by image reference as the
    /// Pod spells it.
    pub entrypoints: BTreeMap<String, PathBuf>,
    /// The local directory standing for each PersistentVolumeClaim, by claim name.
    pub claims: BTreeMap<String, PathBuf>,
    /// Environment given to every process, under the container's own.
    pub env: BTreeMap<String, String>,
    /// Between SIGTERM and SIGKILL when a Pod is deleted while running.
    pub grace: Duration,
}

impl KubeletOptions {
    /// Options with pod roots and logs in `dir`, no entrypoints, claims or extra env, and a
    /// grace of 2 s.
    pub fn new(dir: &Path) -> KubeletOptions {
        KubeletOptions {
            dir: dir.to_path_buf(),
            entrypoints: BTreeMap::new(),
            claims: BTreeMap::new(),
            env: BTreeMap::new(),
            grace: Duration::from_secs(2),
        }
    }

    /// Maps claim `name` to the local directory `dir`.
    pub fn claim(mut self, name: &str, dir: &Path) -> KubeletOptions {
        self.claims.insert(name.to_string(), dir.to_path_buf());
        self
    }

    /// Maps image `image`'s entrypoint to the local program `program`.
    pub fn entrypoint(mut self, image: &str, program: &Path) -> KubeletOptions {
        self.entrypoints.insert(image.to_string(), program.to_path_buf());
        self
    }
}

/// One Pod the kubelet took on.
#[derive(Clone, Debug)]
pub struct PodRun {
    pub pod: String,
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// Its Job (label `batch.kubernetes.io/job-name`, or `job-name`).
    pub job: Option<String>,
    /// Its completion index (annotation `batch.kubernetes.io/job-completion-index`).
    pub index: Option<u32>,
    /// The process (and its process group), once started.
    pub pid: Option<u32>,
    pub started: Option<Instant>,
    pub finished: Option<Instant>,
    /// 128 + signal when killed by a signal.
    pub exit_code: Option<i32>,
    /// Stopped by [`Kubelet::kill`] or because the Pod was deleted.
    pub killed: bool,
    /// Why the kubelet could not run it.
    pub error: Option<String>,
}

impl PodRun {
    /// Whether its process is running.
    pub fn running(&self) -> bool {
        self.pid.is_some() && self.finished.is_none()
    }
}

type Runs = Arc<Mutex<Vec<PodRun>>>;

/// A running test kubelet; stops its processes when dropped.
pub struct Kubelet {
    namespace: String,
    dir: PathBuf,
    runs: Runs,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Ctx {
    client: kube::Client,
    namespace: String,
    opts: KubeletOptions,
    url: String,
    ca_pem: String,
    runs: Runs,
}

impl Kubelet {
    /// Starts a kubelet for the Pods of `namespace` on a thread of its own; returns once it
    /// has listed them.
    pub fn start(cp: &ControlPlane, namespace: &str, opts: KubeletOptions) -> Kubelet {
        std::fs::create_dir_all(opts.dir.join("pods")).expect("create the kubelet's dir");
        let runs: Runs = Arc::default();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (kubeconfig, url, ca_pem) = (cp.kubeconfig.clone(), cp.url.clone(), cp.ca_pem.clone());
        let (ns, dir, thread_runs) = (namespace.to_string(), opts.dir.clone(), runs.clone());
        let thread = std::thread::Builder::new()
            .name(format!("kubelet-{namespace}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async move {
                    let client = super::operator::client_for(&kubeconfig).await;
                    let ctx = Arc::new(Ctx { client, namespace: ns, opts, url, ca_pem, runs: thread_runs });
                    serve(ctx, stop_rx, ready_tx).await;
                });
                // Dropping the runtime drops the Pods' tasks, which kill their processes.
            })
            .expect("start the kubelet thread");
        match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => {}
            Err(e) => panic!("kubelet for namespace {namespace} did not list its Pods: {e}"),
        }
        Kubelet { namespace: namespace.to_string(), dir, runs, stop: Some(stop_tx), thread: Some(thread) }
    }

    /// The namespace it runs Pods of.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Every Pod it took on, in the order it took them on.
    pub fn runs(&self) -> Vec<PodRun> {
        self.runs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The run of Pod `pod`, if it took it on.
    pub fn run(&self, pod: &str) -> Option<PodRun> {
        self.runs().into_iter().find(|r| r.pod == pod)
    }

    /// SIGKILLs the running process of Pod `pod` (and its process group), as a node crash
    /// would; false if it has none running.
    pub fn kill(&self, pod: &str) -> bool {
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(run) = runs.iter_mut().find(|r| r.pod == pod && r.running()) else {
            return false;
        };
        if signal(run.pid.unwrap(), libc::SIGKILL) {
            run.killed = true;
            true
        } else {
            false
        }
    }

    /// Where Pod `pod`'s output (stdout and stderr) goes.
    pub fn log_path(&self, pod: &str) -> PathBuf {
        self.dir.join(format!("{pod}.log"))
    }

    /// Pod `pod`'s output so far.
    pub fn log(&self, pod: &str) -> String {
        std::fs::read_to_string(self.log_path(pod)).unwrap_or_default()
    }

    /// Every run with the tail of its log, for failure messages.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for r in self.runs() {
            out.push_str(&format!(
                "{} job={:?} index={:?} pid={:?} exit={:?} killed={} error={:?}\n{}\n",
                r.pod,
                r.job,
                r.index,
                r.pid,
                r.exit_code,
                r.killed,
                r.error,
                tail(&self.log_path(&r.pod), 512)
            ));
        }
        out
    }
}

impl Drop for Kubelet {
    fn drop(&mut self) {
        for r in self.runs().iter().filter(|r| r.running()) {
            signal(r.pid.unwrap(), libc::SIGKILL);
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Sends `sig` to the process group `pid` leads; whether it was delivered.
fn signal(pid: u32, sig: libc::c_int) -> bool {
    // SAFETY: kill(2) has no memory effects; a negative pid names the process group.
    unsafe { libc::kill(-(pid as libc::pid_t), sig) == 0 }
}

/// Watches the namespace's Pods until `stop`; takes on new ones, stops deleted ones.
async fn serve(ctx: Arc<Ctx>, mut stop: tokio::sync::oneshot::Receiver<()>, ready: std::sync::mpsc::Sender<()>) {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let mut events = watcher(api, watcher::Config::default()).default_backoff().boxed();
    let mut ready = Some(ready);
    // By uid: the Pods taken on, each with its way to be told to stop.
    let mut pods: HashMap<String, tokio::sync::watch::Sender<bool>> = HashMap::new();
    loop {
        let event = tokio::select! {
            _ = &mut stop => return,
            event = events.next() => event,
        };
        match event {
            Some(Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod))) => {
                let uid = pod.metadata.uid.clone().unwrap_or_default();
                if pod.metadata.deletion_timestamp.is_some() {
                    if let Some(stop) = pods.get(&uid) {
                        stop.send_replace(true);
                    }
                    continue;
                }
                let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
                if phase != "Pending" || pods.contains_key(&uid) {
                    continue;
                }
                let (tx, rx) = tokio::sync::watch::channel(false);
                pods.insert(uid, tx);
                tokio::spawn(run_pod(ctx.clone(), pod, rx));
            }
            Some(Ok(watcher::Event::Delete(pod))) => {
                if let Some(stop) = pods.get(pod.metadata.uid.as_deref().unwrap_or_default()) {
                    stop.send_replace(true);
                }
            }
            Some(Ok(watcher::Event::InitDone)) => {
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
            }
            Some(Ok(watcher::Event::Init)) => {}
            Some(Err(e)) => eprintln!("kubelet {}: watching Pods: {e}", ctx.namespace),
            None => return,
        }
    }
}

fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// What a Pod's process is made of.
struct Prepared {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: PathBuf,
    container: String,
    image: String,
    logs_on_error: bool,
}

/// Runs one Pod to its end, reporting its status.
async fn run_pod(ctx: Arc<Ctx>, pod: Pod, mut stop: tokio::sync::watch::Receiver<bool>) {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    ctx.runs.lock().unwrap_or_else(|e| e.into_inner()).push(PodRun {
        pod: name.clone(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        job: labels.get(JOB_NAME).or_else(|| labels.get("job-name")).cloned(),
        index: annotations.get(COMPLETION_INDEX).and_then(|i| i.parse().ok()),
        labels,
        pid: None,
        started: None,
        finished: None,
        exit_code: None,
        killed: false,
        error: None,
    });
    let update = |f: &dyn Fn(&mut PodRun)| {
        let mut runs = ctx.runs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = runs.iter_mut().rev().find(|r| r.pod == name) {
            f(r);
        }
    };
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let started_at = now();
    let spec = serde_json::to_value(&pod).unwrap_or_default();
    let container = spec["spec"]["containers"][0]["name"].as_str().unwrap_or_default().to_string();
    let image = spec["spec"]["containers"][0]["image"].as_str().unwrap_or_default().to_string();

    let prepared = prepare(&ctx, &pod, &spec).await;
    let stop_now = *stop.borrow();
    let (mut child, logs_on_error) = match prepared {
        Err(msg) => return fail(&ctx, &api, &name, &container, &image, &started_at, &msg, &update).await,
        Ok(_) if stop_now => {
            update(&|r| r.killed = true);
            return stopped(&api, &name, &container, &image, &started_at, &update).await;
        }
        Ok(p) => match spawn(&ctx, &name, &p) {
            Err(msg) => return fail(&ctx, &api, &name, &container, &image, &started_at, &msg, &update).await,
            Ok(child) => (child, p.logs_on_error),
        },
    };
    let pid = child.id().unwrap_or_default();
    let t0 = Instant::now();
    update(&|r| {
        r.pid = Some(pid);
        r.started = Some(t0);
    });
    let running = json!({"status": {
        "phase": "Running",
        "startTime": started_at,
        "conditions": conditions(true, &started_at, None),
        "containerStatuses": [{
            "name": container, "image": image, "imageID": "", "containerID": format!("test-kubelet://{pid}"),
            "ready": true, "started": true, "restartCount": 0,
            "state": {"running": {"startedAt": started_at}},
        }],
    }});
    patch_status(&api, &name, &running).await;

    let mut deleted = false;
    let status = tokio::select! {
        status = child.wait() => status,
        () = stopping(&mut stop) => {
            deleted = true;
            update(&|r| r.killed = true);
            signal(pid, libc::SIGTERM);
            match tokio::time::timeout(ctx.opts.grace, child.wait()).await {
                Ok(status) => status,
                Err(_) => {
                    signal(pid, libc::SIGKILL);
                    child.wait().await
                }
            }
        }
    };
    let code = match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(e) => {
            eprintln!("kubelet: wait for {name}: {e}");
            128
        }
    };
    // The group may outlive its leader: a container's processes end with it.
    signal(pid, libc::SIGKILL);
    update(&|r| {
        r.finished = Some(Instant::now());
        r.exit_code = Some(code);
    });
    let finished_at = now();
    let mut terminated = json!({
        "exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" },
        "startedAt": started_at, "finishedAt": finished_at,
    });
    if code != 0 && logs_on_error {
        terminated["message"] = json!(tail(&ctx.opts.dir.join(format!("{name}.log")), 2048));
    }
    let done = json!({"status": {
        "phase": if code == 0 { "Succeeded" } else { "Failed" },
        "startTime": started_at,
        "conditions": conditions(false, &started_at, Some(&finished_at)),
        "containerStatuses": [{
            "name": container, "image": image, "imageID": "", "containerID": format!("test-kubelet://{pid}"),
            "ready": false, "started": false, "restartCount": 0,
            "state": {"terminated": terminated},
        }],
    }});
    patch_status(&api, &name, &done).await;
    if deleted {
        remove(&api, &name).await;
    }
}

/// Resolves once the Pod is to stop (never if the kubelet went away first: its runtime's
/// end drops this).
async fn stopping(stop: &mut tokio::sync::watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The Pod's conditions: running (all true) or finished (not ready, `PodCompleted`).
fn conditions(running: bool, started_at: &str, finished_at: Option<&str>) -> Value {
    let at = finished_at.unwrap_or(started_at);
    let ready = if running {
        json!({"status": "True", "lastTransitionTime": at})
    } else {
        json!({"status": "False", "reason": "PodCompleted", "lastTransitionTime": at})
    };
    let with = |t: &str, v: &Value| {
        let mut c = v.clone();
        c["type"] = json!(t);
        c
    };
    let yes = json!({"status": "True", "lastTransitionTime": started_at});
    json!([
        with("PodScheduled", &yes),
        with("Initialized", &yes),
        with("ContainersReady", &ready),
        with("Ready", &ready),
    ])
}

async fn patch_status(api: &Api<Pod>, name: &str, patch: &Value) {
    match api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch)).await {
        Ok(_) => {}
        // Gone already: an unscheduled Pod is deleted at once, once its finalizers are.
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => eprintln!("kubelet: status of Pod {name}: {e}"),
    }
}

/// Deletes the Pod with grace period 0 (finalizers still hold it until their owners go).
async fn remove(api: &Api<Pod>, name: &str) {
    let dp = DeleteParams { grace_period_seconds: Some(0), ..Default::default() };
    match api.delete(name, &dp).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => eprintln!("kubelet: delete Pod {name}: {e}"),
    }
}

/// Fails a Pod the kubelet cannot run, saying why.
#[allow(clippy::too_many_arguments)]
async fn fail(
    ctx: &Ctx,
    api: &Api<Pod>,
    name: &str,
    container: &str,
    image: &str,
    started_at: &str,
    msg: &str,
    update: &impl Fn(&dyn Fn(&mut PodRun)),
) {
    eprintln!("kubelet {}: Pod {name}: {msg}", ctx.namespace);
    update(&|r| {
        r.error = Some(msg.to_string());
        r.exit_code = Some(128);
        r.finished = Some(Instant::now());
    });
    let done = json!({"status": {
        "phase": "Failed", "reason": "TestKubeletError", "message": msg,
        "startTime": started_at,
        "conditions": conditions(false, started_at, Some(&now())),
        "containerStatuses": [{
            "name": container, "image": image, "imageID": "",
            "ready": false, "started": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 128, "reason": "StartError", "message": msg,
                                      "startedAt": started_at, "finishedAt": now()}},
        }],
    }});
    patch_status(api, name, &done).await;
}

/// A Pod deleted before its process started: marked failed and removed.
async fn stopped(
    api: &Api<Pod>,
    name: &str,
    container: &str,
    image: &str,
    started_at: &str,
    update: &impl Fn(&dyn Fn(&mut PodRun)),
) {
    update(&|r| r.finished = Some(Instant::now()));
    let done = json!({"status": {
        "phase": "Failed", "reason": "Terminated", "message": "deleted before its container started",
        "startTime": started_at,
        "conditions": conditions(false, started_at, Some(&now())),
        "containerStatuses": [{
            "name": container, "image": image, "imageID": "",
            "ready": false, "started": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 137, "reason": "Error", "startedAt": started_at, "finishedAt": now()}},
        }],
    }});
    patch_status(api, name, &done).await;
    remove(api, name).await;
}

/// Starts the prepared process in a process group of its own, its output to the Pod's log.
fn spawn(ctx: &Ctx, pod: &str, p: &Prepared) -> Result<tokio::process::Child, String> {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(ctx.opts.dir.join(format!("{pod}.log")))
        .map_err(|e| format!("open the log: {e}"))?;
    let log2 = log.try_clone().map_err(|e| format!("open the log: {e}"))?;
    let mut cmd = tokio::process::Command::new(&p.program);
    cmd.args(&p.args)
        .env_clear()
        .envs(p.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&p.cwd)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: prctl is async-signal-safe; it only sets this child's parent-death signal.
    unsafe {
        cmd.pre_exec(|| {
            // The process dies with the kubelet's thread (and so with the test process).
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .map_err(|e| format!("container {} (image {}): start {}: {e}", p.container, p.image, p.program.display()))
}

/// The last `max` bytes of a file, as text.
fn tail(path: &Path, max: usize) -> String {
    let bytes = std::fs::read(path).unwrap_or_default();
    String::from_utf8_lossy(&bytes[bytes.len().saturating_sub(max)..]).into_owned()
}

/// Materialises the Pod's volumes and token and works out its process.
async fn prepare(ctx: &Ctx, pod: &Pod, spec: &Value) -> Result<Prepared, String> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let s = &spec["spec"];
    let containers = s["containers"].as_array().cloned().unwrap_or_default();
    if containers.len() != 1 {
        return Err(format!("the test kubelet runs Pods of one container, not {}", containers.len()));
    }
    if s["initContainers"].as_array().is_some_and(|a| !a.is_empty()) {
        return Err("the test kubelet does not run init containers".into());
    }
    let c = &containers[0];
    let root = ctx.opts.dir.join("pods").join(&name);
    let home = root.join("home");
    std::fs::create_dir_all(&home).map_err(|e| format!("create {}: {e}", home.display()))?;

    let mut volumes: BTreeMap<String, PathBuf> = BTreeMap::new();
    for v in s["volumes"].as_array().into_iter().flatten() {
        let vname = v["name"].as_str().unwrap_or_default();
        if let Some(dir) = volume(ctx, pod, v, &root.join("volumes").join(vname)).await? {
            volumes.insert(vname.to_string(), dir);
        }
    }
    // Longest mount path first, so that nested mounts win.
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        let vname = m["name"].as_str().unwrap_or_default();
        let Some(dir) = volumes.get(vname) else { continue };
        let mut dir = dir.clone();
        if let Some(sub) = m["subPath"].as_str().filter(|s| !s.is_empty()) {
            dir = dir.join(sub);
            std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        }
        let path = m["mountPath"].as_str().unwrap_or_default().trim_end_matches('/');
        mounts.push((path.to_string(), dir));
    }
    mounts.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    let local = |text: &str| rewrite(text, &mounts);

    // The environment: the node's, then the container's in order, `$(VAR)` expanded.
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())),
        ("HOME".into(), home.display().to_string()),
        ("HOSTNAME".into(), s["hostname"].as_str().unwrap_or(&name).to_string()),
    ];
    if let Some(kubeconfig) = token_kubeconfig(ctx, pod, s, &root).await? {
        env.push(("KUBECONFIG".into(), kubeconfig.display().to_string()));
    }
    env.extend(ctx.opts.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut own: Vec<(String, String)> = Vec::new();
    for from in c["envFrom"].as_array().into_iter().flatten() {
        let prefix = from["prefix"].as_str().unwrap_or_default();
        let optional = |r: &Value| r["optional"].as_bool().unwrap_or(false);
        let data = if from["configMapRef"].is_object() {
            let r = &from["configMapRef"];
            config_map_data(ctx, r["name"].as_str().unwrap_or_default(), optional(r)).await?
        } else if from["secretRef"].is_object() {
            let r = &from["secretRef"];
            secret_data(ctx, r["name"].as_str().unwrap_or_default(), optional(r)).await?
        } else {
            return Err(format!("unsupported envFrom {from}"));
        };
        for (k, v) in data {
            own.push((format!("{prefix}{k}"), String::from_utf8_lossy(&v).into_owned()));
        }
    }
    for e in c["env"].as_array().into_iter().flatten() {
        let key = e["name"].as_str().unwrap_or_default().to_string();
        let value = if let Some(v) = e.get("value").and_then(Value::as_str) {
            let defined: BTreeMap<&str, &str> = own.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            expand(v, &defined)
        } else if let Some(from) = e.get("valueFrom") {
            match env_from(ctx, spec, from).await? {
                Some(v) => v,
                None => continue,
            }
        } else {
            String::new()
        };
        own.retain(|(k, _)| *k != key);
        own.push((key, value));
    }
    for (_, v) in own.iter_mut() {
        *v = local(v);
    }
    for (k, v) in own {
        env.retain(|(e, _)| *e != k);
        env.push((k, v));
    }
    let defined: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().into_iter().flatten().map(|a| local(&expand(a.as_str().unwrap_or_default(), &defined))).collect()
    };
    let (command, args) = (strings(&c["command"]), strings(&c["args"]));
    let image = c["image"].as_str().unwrap_or_default().to_string();
    let entrypoint = || {
        ctx.opts
            .entrypoints
            .get(&image)
            .cloned()
            .ok_or_else(|| format!("no local entrypoint for image {image:?} (KubeletOptions::entrypoints)"))
    };
    let (program, args) = match command.split_first() {
        None => (entrypoint()?, args),
        Some((first, rest)) => {
            let program = if is_local_program(first) { PathBuf::from(first) } else { entrypoint()? };
            (program, rest.iter().cloned().chain(args).collect())
        }
    };
    let cwd = match c["workingDir"].as_str().filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(local(d)),
        None => root.clone(),
    };
    Ok(Prepared {
        program,
        args,
        env,
        cwd,
        container: c["name"].as_str().unwrap_or_default().to_string(),
        image,
        logs_on_error: c["terminationMessagePolicy"] == "FallbackToLogsOnError",
    })
}

/// Whether `program` runs here as it is: a path to a file, or a name on PATH.
fn is_local_program(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).any(|d| d.join(program).is_file())
}

/// `text` with a leading mount path (or one after `=`) replaced by its local directory.
fn rewrite(text: &str, mounts: &[(String, PathBuf)]) -> String {
    let under = |rest: &str| rest.is_empty() || rest.starts_with('/');
    for (path, dir) in mounts {
        if path.is_empty() {
            continue;
        }
        if let Some(rest) = text.strip_prefix(path.as_str())
            && under(rest)
        {
            return format!("{}{rest}", dir.display());
        }
        if let Some(at) = text.find(&format!("={path}")) {
            let rest = &text[at + 1 + path.len()..];
            if under(rest) {
                return format!("{}{}{rest}", &text[..=at], dir.display());
            }
        }
    }
    text.to_string()
}

/// Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is `$`, the rest stays.
fn expand(text: &str, defined: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('(')
            && let Some(end) = r.find(')')
        {
            match defined.get(&r[..end]) {
                Some(v) => out.push_str(v),
                None => out.push_str(&rest[at..at + 2 + end + 1]),
            }
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// An env `valueFrom`; None when an optional source is missing.
async fn env_from(ctx: &Ctx, spec: &Value, from: &Value) -> Result<Option<String>, String> {
    if let Some(path) = from["fieldRef"]["fieldPath"].as_str() {
        return field(spec, path).map(Some);
    }
    for (kind, r) in [("configMap", &from["configMapKeyRef"]), ("secret", &from["secretKeyRef"])] {
        if !r.is_object() {
            continue;
        }
        let (name, key) = (r["name"].as_str().unwrap_or_default(), r["key"].as_str().unwrap_or_default());
        let optional = r["optional"].as_bool().unwrap_or(false);
        let data = if kind == "configMap" {
            config_map_data(ctx, name, optional).await?
        } else {
            secret_data(ctx, name, optional).await?
        };
        return match data.get(key) {
            Some(v) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
            None if optional => Ok(None),
            None => Err(format!("{kind} {name} has no key {key:?}")),
        };
    }
    Err(format!("unsupported env valueFrom {from}"))
}

/// A downward-API field of the Pod.
fn field(spec: &Value, path: &str) -> Result<String, String> {
    let meta = &spec["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let map = |v: &Value| {
        let mut lines: Vec<String> =
            v.as_object().into_iter().flatten().map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or(""))).collect();
        lines.sort();
        lines.join("\n")
    };
    for (prefix, key) in [("metadata.labels", "labels"), ("metadata.annotations", "annotations")] {
        if path == prefix {
            return Ok(map(&meta[key]));
        }
        if let Some(k) = path.strip_prefix(prefix).and_then(|r| r.strip_prefix("['")).and_then(|r| r.strip_suffix("']"))
        {
            return Ok(text(&meta[key][k]));
        }
    }
    Ok(match path {
        "metadata.name" => text(&meta["name"]),
        "metadata.namespace" => text(&meta["namespace"]),
        "metadata.uid" => text(&meta["uid"]),
        "spec.serviceAccountName" => text(&spec["spec"]["serviceAccountName"]),
        "spec.nodeName" => text(&spec["spec"]["nodeName"]),
        "status.hostIP" | "status.podIP" => "127.0.0.1".into(),
        _ => return Err(format!("the test kubelet does not resolve fieldRef {path:?}")),
    })
}

async fn config_map_data(ctx: &Ctx, name: &str, optional: bool) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    match api.get_opt(name).await.map_err(|e| format!("get ConfigMap {name}: {e}"))? {
        Some(cm) => {
            let mut data: BTreeMap<String, Vec<u8>> =
                cm.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.into_bytes())).collect();
            data.extend(cm.binary_data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)));
            Ok(data)
        }
        None if optional => Ok(BTreeMap::new()),
        None => Err(format!("ConfigMap {name} not found")),
    }
}

async fn secret_data(ctx: &Ctx, name: &str, optional: bool) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    match api.get_opt(name).await.map_err(|e| format!("get Secret {name}: {e}"))? {
        Some(s) => Ok(s.data.unwrap_or_default().into_iter().map(|(k, v)| (k, v.0)).collect()),
        None if optional => Ok(BTreeMap::new()),
        None => Err(format!("Secret {name} not found")),
    }
}

/// A volume's local directory (`fresh` for those made here); None for those left out.
async fn volume(ctx: &Ctx, pod: &Pod, v: &Value, fresh: &Path) -> Result<Option<PathBuf>, String> {
    let vname = v["name"].as_str().unwrap_or_default();
    let make = |dir: &Path| std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()));
    if let Some(claim) = v["persistentVolumeClaim"]["claimName"].as_str() {
        let dir = ctx.opts.claims.get(claim).ok_or_else(|| {
            format!("volume {vname}: no local directory for PersistentVolumeClaim {claim:?} (KubeletOptions::claims)")
        })?;
        make(dir)?;
        return Ok(Some(dir.clone()));
    }
    if let Some(path) = v["hostPath"]["path"].as_str() {
        return Ok(Some(PathBuf::from(path)));
    }
    if v["projected"].is_object() {
        return Ok(None);
    }
    make(fresh)?;
    if v["emptyDir"].is_object() {
        return Ok(Some(fresh.to_path_buf()));
    }
    let files: Vec<(String, Vec<u8>, Option<i64>)>;
    let default_mode;
    if v["configMap"].is_object() || v["secret"].is_object() {
        let (src, data) = if v["configMap"].is_object() {
            let src = &v["configMap"];
            let optional = src["optional"].as_bool().unwrap_or(false);
            (src, config_map_data(ctx, src["name"].as_str().unwrap_or_default(), optional).await?)
        } else {
            let src = &v["secret"];
            let optional = src["optional"].as_bool().unwrap_or(false);
            (src, secret_data(ctx, src["secretName"].as_str().unwrap_or_default(), optional).await?)
        };
        default_mode = src["defaultMode"].as_i64();
        files = match src["items"].as_array() {
            None => data.into_iter().map(|(k, v)| (k, v, None)).collect(),
            Some(items) => {
                let mut files = Vec::new();
                for item in items {
                    let key = item["key"].as_str().unwrap_or_default();
                    match data.get(key) {
                        Some(bytes) => files.push((
                            item["path"].as_str().unwrap_or(key).to_string(),
                            bytes.clone(),
                            item["mode"].as_i64(),
                        )),
                        None if src["optional"].as_bool().unwrap_or(false) => {}
                        None => return Err(format!("volume {vname}: no key {key:?}")),
                    }
                }
                files
            }
        };
    } else if v["downwardAPI"].is_object() {
        let spec = serde_json::to_value(pod).unwrap_or_default();
        default_mode = v["downwardAPI"]["defaultMode"].as_i64();
        let mut out = Vec::new();
        for item in v["downwardAPI"]["items"].as_array().into_iter().flatten() {
            let Some(path) = item["fieldRef"]["fieldPath"].as_str() else {
                return Err(format!("volume {vname}: unsupported downwardAPI item {item}"));
            };
            out.push((
                item["path"].as_str().unwrap_or_default().to_string(),
                field(&spec, path)?.into_bytes(),
                item["mode"].as_i64(),
            ));
        }
        files = out;
    } else {
        return Err(format!("volume {vname}: the test kubelet does not support {v}"));
    }
    for (path, bytes, mode) in files {
        let file = fresh.join(&path);
        if let Some(parent) = file.parent() {
            make(parent)?;
        }
        std::fs::write(&file, bytes).map_err(|e| format!("write {}: {e}", file.display()))?;
        let mode = mode.or(default_mode).unwrap_or(0o644) as u32;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {}: {e}", file.display()))?;
    }
    Ok(Some(fresh.to_path_buf()))
}

/// A kubeconfig with a token of the Pod's ServiceAccount bound to the Pod, unless the Pod (or
/// else its ServiceAccount) turns automounting off.
async fn token_kubeconfig(ctx: &Ctx, pod: &Pod, s: &Value, root: &Path) -> Result<Option<PathBuf>, String> {
    let sa = s["serviceAccountName"].as_str().filter(|n| !n.is_empty()).unwrap_or("default");
    let sas: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let automount = match s["automountServiceAccountToken"].as_bool() {
        Some(a) => a,
        None => sas
            .get_opt(sa)
            .await
            .map_err(|e| format!("get ServiceAccount {sa}: {e}"))?
            .ok_or_else(|| format!("ServiceAccount {sa} not found"))?
            .automount_service_account_token
            .unwrap_or(true),
    };
    if !automount {
        return Ok(None);
    }
    let request: TokenRequest = serde_json::from_value(json!({"spec": {
        "audiences": [], "expirationSeconds": 3600,
        "boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod.metadata.name, "uid": pod.metadata.uid},
    }}))
    .unwrap();
    let token = sas
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .map_err(|e| format!("a token for ServiceAccount {sa}: {e}"))?
        .status
        .and_then(|s| s.token)
        .ok_or_else(|| format!("no token in the token request for ServiceAccount {sa}"))?;
    let ca = base64::engine::general_purpose::STANDARD.encode(&ctx.ca_pem);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: {sa}\n  user:\n    token: {token}\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: {sa}\n    namespace: {}\ncurrent-context: test\n",
        ctx.url, ctx.namespace
    );
    let path = root.join("kubeconfig");
    std::fs::write(&path, text).map_err(|e| format!("write {}: {e}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(|e| format!("chmod: {e}"))?;
    Ok(Some(path))
}
