//! What happens in the operator's namespace while a sharded run goes, seen the moment the API
//! server tells (watches, on a thread of their own, timed with `Instant`s comparable to the
//! test kubelet's): when each shard Job and each of its Pods was created, when the Job was
//! Complete, when each shard
//! wrote its first progress (it has read its request, the image set and its credentials, and
//! starts copying) and its report (its copy is done), and each shard's request (which images
//! it has, and which blobs the operator placed for the shards).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use futures::StreamExt as _;
use imageset_operator::shard::{JOB_LABEL, PROGRESS_KEY, REQUEST_KEY, ShardProgress, ShardRequest};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::Api;
use kube::runtime::{WatchStreamExt as _, watcher};

/// What was seen of one shard Job.
#[derive(Clone, Debug, Default)]
pub struct JobSeen {
    /// When the Job appeared, and when it was seen Complete.
    pub created: Option<Instant>,
    pub complete: Option<Instant>,
    /// When each of its Pods appeared, by name.
    pub pods: BTreeMap<String, Instant>,
    /// Its requests (one per completion index), once read.
    pub requests: BTreeMap<usize, ShardRequest>,
    /// By completion index: the first progress written, and the final one (report written).
    pub first_progress: BTreeMap<usize, Instant>,
    pub done: BTreeMap<usize, (Instant, ShardProgress)>,
}

type Seen = Arc<Mutex<BTreeMap<String, JobSeen>>>;

/// Watches running on a thread of their own until dropped.
pub struct Observer {
    seen: Seen,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Observer {
    /// Starts watching `namespace` with the credentials of `kubeconfig`; returns once every
    /// watch has listed.
    pub fn start(kubeconfig: &std::path::Path, namespace: &str) -> Result<Observer> {
        let seen: Seen = Arc::default();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let (kubeconfig, ns, s) = (kubeconfig.to_path_buf(), namespace.to_string(), seen.clone());
        let thread = std::thread::Builder::new().name("observer".into()).spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
            rt.block_on(async move {
                let client = crate::support::operator::client_for(&kubeconfig).await;
                let cfg = watcher::Config::default().labels(JOB_LABEL);
                let jobs = watcher(Api::<Job>::namespaced(client.clone(), &ns), cfg.clone()).default_backoff();
                let pods = watcher(Api::<Pod>::namespaced(client.clone(), &ns), cfg.clone()).default_backoff();
                let cms = watcher(Api::<ConfigMap>::namespaced(client.clone(), &ns), cfg).default_backoff();
                let jobs = jobs.map(|e| e.map(|e| Ev::of(e, |o| Obj::Job(Box::new(o)))));
                let pods = pods.map(|e| e.map(|e| Ev::of(e, |o| Obj::Pod(Box::new(o)))));
                let cms = cms.map(|e| e.map(|e| Ev::of(e, |o| Obj::Cm(Box::new(o)))));
                let mut events = futures::stream::select(futures::stream::select(jobs, pods), cms).boxed();
                let mut listed = 0;
                let mut ready = Some(ready_tx);
                let mut stop = stop_rx;
                loop {
                    let event = tokio::select! {
                        _ = &mut stop => return,
                        e = events.next() => e,
                    };
                    let now = Instant::now();
                    match event {
                        Some(Ok(Ev::Apply(o))) => record(&s, o, now),
                        Some(Ok(Ev::Listed)) => {
                            listed += 1;
                            if listed == 3
                                && let Some(r) = ready.take()
                            {
                                let _ = r.send(());
                            }
                        }
                        Some(Ok(Ev::Other)) => {}
                        Some(Err(e)) => eprintln!("bench: observer: {e}"),
                        None => return,
                    }
                }
            });
        })?;
        ready_rx.recv_timeout(Duration::from_secs(60)).map_err(|e| anyhow!("the watches did not list: {e}"))?;
        Ok(Observer { seen, stop: Some(stop_tx), thread: Some(thread) })
    }

    /// What was seen of Job `name`.
    pub fn job(&self, name: &str) -> JobSeen {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).get(name).cloned().unwrap_or_default()
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

enum Obj {
    Job(Box<Job>),
    Pod(Box<Pod>),
    Cm(Box<ConfigMap>),
}

/// A watch event of any of the three kinds.
enum Ev {
    Apply(Obj),
    Listed,
    Other,
}

impl Ev {
    fn of<K>(e: watcher::Event<K>, f: fn(K) -> Obj) -> Ev {
        match e {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => Ev::Apply(f(o)),
            watcher::Event::InitDone => Ev::Listed,
            _ => Ev::Other,
        }
    }
}

fn job_of(labels: Option<&BTreeMap<String, String>>) -> Option<String> {
    labels?.get(JOB_LABEL).cloned()
}

fn record(seen: &Seen, o: Obj, now: Instant) {
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    match o {
        Obj::Job(j) => {
            let Some(name) = j.metadata.name else { return };
            let entry = seen.entry(name).or_default();
            entry.created.get_or_insert(now);
            let conditions = j.status.and_then(|s| s.conditions).unwrap_or_default();
            if conditions.iter().any(|c| c.type_ == "Complete" && c.status == "True") {
                entry.complete.get_or_insert(now);
            }
        }
        Obj::Pod(p) => {
            let (Some(job), Some(name)) = (job_of(p.metadata.labels.as_ref()), p.metadata.name) else { return };
            seen.entry(job).or_default().pods.entry(name).or_insert(now);
        }
        Obj::Cm(cm) => {
            let (Some(job), Some(name)) = (job_of(cm.metadata.labels.as_ref()), cm.metadata.name.clone()) else {
                return;
            };
            let entry = seen.entry(job.clone()).or_default();
            let request = format!("{}-", imageset_operator::shard::request_prefix(&job));
            if let Some(index) = name.strip_prefix(&request).and_then(|i| i.parse::<usize>().ok()) {
                if !entry.requests.contains_key(&index)
                    && let Some(bytes) = cm.binary_data.as_ref().and_then(|b| b.get(REQUEST_KEY))
                    && let Ok(r) = imageset_operator::shard::unpack::<ShardRequest>(&bytes.0)
                {
                    entry.requests.insert(index, r);
                }
                return;
            }
            let Some(index) = name.strip_prefix(&format!("{job}-report-")).and_then(|i| i.parse::<usize>().ok()) else {
                return;
            };
            let Some(p) = cm.data.as_ref().and_then(|d| d.get(PROGRESS_KEY)) else { return };
            let Ok(p) = serde_json::from_str::<ShardProgress>(p) else { return };
            entry.first_progress.entry(index).or_insert(now);
            if p.done {
                entry.done.entry(index).or_insert((now, p));
            }
        }
    }
}
