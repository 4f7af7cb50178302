//! Scale-out on Jobs: an image set with `spec.shards: 3` is copied by an Indexed Job that the
//! real kube-controller-manager's Job controller drives, whose Pods the test kubelet runs as
//! local processes of the real binary (`imageset-operator shard`), as the operator's
//! ServiceAccount under the shipped RBAC, reading the image set's own Secret. The copy ends
//! with the digests of a single-process run, the source serves each blob once, a shard killed
//! mid-run is retried for its index only, and status merges the shards.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use imageset_operator::api::ImageSetConfiguration;
use imageset_operator::shard::{JOB_LABEL, PLAN_ANNOTATION, SET_ANNOTATION, SET_UID_LABEL};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use support::content::{Format, Pushed, Pusher};
use support::controllers;
use support::kubelet::{Kubelet, KubeletOptions};
use support::operator::{OPERATOR, OPERATOR_NS, OPERATOR_SA, clear_left_behind, finished, image_set_in, operator};
use support::proxy::{Fault, FaultAction, Proxy};
use support::registry::{Registry, RegistryOptions};

const NS: &str = "shards-team";
/// The image shard Pods run (the kubelet runs the test binary for it).
const IMAGE: &str = "registry.example/imageset-operator:test";
/// The operator's cache claim (the kubelet maps it onto the operator's own cache directory:
/// a ReadWriteMany volume).
const CLAIM: &str = "imageset-operator-cache";
const REPOS: usize = 8;
/// The shard pods' resources (`--shard-resources`).
const RESOURCES: &str = r#"{"requests":{"cpu":"100m","memory":"128Mi"}}"#;

struct World {
    source: Registry,
    /// What image sets name as the source: a proxy in front of `source`.
    proxy: Proxy,
    dests: [Registry; 2],
    images: Vec<Pushed>,
}

/// `apps/r0..r7`, tags v1 and v2, every image on one shared base layer, each with layers of
/// its own; the source needs basic auth.
fn world() -> World {
    std::thread::spawn(|| {
        let source = Registry::start(RegistryOptions {
            htpasswd: Some(("puller".into(), "shard-secret-pw".into())),
            access_log: true,
            ..Default::default()
        });
        let dests = [Registry::start(RegistryOptions::default()), Registry::start(RegistryOptions::default())];
        let push = Pusher::new(&source);
        let mut images = Vec::new();
        for r in 0..REPOS {
            for (t, tag) in ["v1", "v2"].iter().enumerate() {
                let own = 1000 + (r * 10 + t) as u64;
                let layers = [(81, 300_000), (own, 40_000 + r * 1000)];
                images.push(push.image(&format!("apps/r{r}"), tag, Format::Oci, ("linux", "amd64"), &layers));
            }
        }
        let proxy = Proxy::start(&source.host);
        World { source, proxy, dests, images }
    })
    .join()
    .unwrap()
}

fn spec(w: &World, dest: usize, shards: Option<u32>) -> serde_json::Value {
    let d = &w.dests[dest].host;
    let images: Vec<_> =
        w.images.iter().map(|i| json!({"name": format!("{}/{}:{}", w.proxy.host, i.repo, i.tag)})).collect();
    let mut spec = json!({
        "destination": format!("docker://{d}/mirror"),
        "authSecretRef": {"name": "source-pull"},
        "registries": [{"host": w.proxy.host, "insecure": true}, {"host": d, "insecure": true}],
        "mirror": {"additionalImages": images},
    });
    if let Some(n) = shards {
        spec["shards"] = json!(n);
    }
    spec
}

async fn secret(client: &kube::Client, w: &World) {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode("puller:shard-secret-pw");
    let config = json!({"auths": {(w.proxy.host.clone()): {"auth": auth}}});
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "source-pull", "namespace": NS}, "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": config.to_string()},
    }))
    .unwrap();
    let api = Api::<Secret>::namespaced(client.clone(), NS);
    let _ = api.delete("source-pull", &Default::default()).await;
    api.create(&PostParams::default(), &secret).await.unwrap();
}

/// The manifest digest a registry holds under `repo:tag`.
fn digest_at(reg: &Registry, repo: &str, tag: &str) -> String {
    let at =
        support::skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{}/{repo}:{tag}", reg.host)]);
    support::sha256(&at)
}

/// The Jobs of the image set `uid`.
async fn jobs_of(jobs: &Api<Job>, uid: &str) -> Vec<Job> {
    jobs.list(&ListParams::default().labels(&format!("{SET_UID_LABEL}={uid}"))).await.unwrap().items
}

/// The operator's `/metrics` at `admin`.
async fn metrics(admin: &str) -> String {
    reqwest::get(format!("http://{admin}/metrics")).await.unwrap().text().await.unwrap()
}

/// The operator's flags that turn shards on (their cache `cache`), `extra` beside.
fn shard_flags(cache: &str, extra: &[&str]) -> Vec<String> {
    let mut flags = vec![
        format!("--shard-image={IMAGE}"),
        format!("--shard-cache={cache}"),
        "--max-shards=4".to_string(),
        "--shard-backoff=2".to_string(),
        format!("--shard-resources={RESOURCES}"),
    ];
    flags.extend(extra.iter().map(|f| f.to_string()));
    flags
}

/// Starts the Job controller and the operator (shards on, their cache `cache`, `extra` flags
/// beside); returns the operator's guard and its admin address.
async fn operator_with_shards(dir: &Path, cache: &str, extra: &[&str]) -> (support::Guarded, String) {
    let cp = support::cluster::shared();
    let client = cp.client().await;
    let kcm = controllers::shared();
    let admin = format!("127.0.0.1:{}", support::free_port());
    let flags = shard_flags(cache, extra);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let guard = operator(cp, dir, &admin, &flags).await;
    controllers::ready_namespace(&client, OPERATOR_NS, kcm).await;
    (guard, admin)
}

/// Starts the Job controller, the operator's namespace's kubelet and the operator (shards on,
/// their cache `cache`, its admin endpoint on the address returned); returns the kubelet, the
/// operator's guard and that address.
async fn cluster_with_shards(dir: &Path, cache: &str) -> (Kubelet, support::Guarded, String) {
    let (guard, admin) = operator_with_shards(dir, cache, &[]).await;
    let opts = KubeletOptions::new(&dir.join("kubelet"))
        .claim(CLAIM, &dir.join("cache"))
        .entrypoint(IMAGE, Path::new(env!("CARGO_BIN_EXE_imageset-operator")));
    (Kubelet::start(support::cluster::shared(), OPERATOR_NS, opts), guard, admin)
}

/// The shared control plane with the test's namespace cleared and the source's Secret in it.
async fn prepared(w: &World) -> kube::Client {
    let client = support::cluster::shared().client().await;
    clear_left_behind(&client).await;
    support::cluster::ensure_namespace(&client, NS).await;
    secret(&client, w).await;
    client
}

/// Makes the first read of `repo:tag`'s own layer stall for `secs` (then the connection
/// closes); returns the layer and the fault.
fn stall_own_layer(w: &World, repo: &str, tag: &str, secs: u64) -> (String, usize) {
    let image = w.images.iter().find(|i| i.repo == repo && i.tag == tag).unwrap();
    let own = |b: &&String| w.images.iter().filter(|i| i.blobs.contains(b)).count() == 1;
    let layer = image.blobs.iter().find(own).unwrap().clone();
    let stall = FaultAction::Stall { after: Some(8192), duration: Duration::from_secs(secs) };
    let fault = w.proxy.add_fault(Fault::new(Some("GET"), &format!("/blobs/{layer}"), 1, stall));
    (layer, fault)
}

/// The name of the image set `uid`'s Job once `fault` has fired (a shard is stalled on it).
async fn stalled_job(w: &World, jobs: &Api<Job>, uid: &str, fault: usize) -> Option<String> {
    for _ in 0..1200 {
        if w.proxy.fired(fault) == 1
            && let Some(j) = jobs_of(jobs, uid).await.into_iter().next()
        {
            return j.metadata.name;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Runs by completion index: exit codes in order.
fn runs_by_index(k: &Kubelet, job: &str) -> BTreeMap<u32, Vec<Option<i32>>> {
    let mut out: BTreeMap<u32, Vec<Option<i32>>> = BTreeMap::new();
    let mut runs: Vec<_> = k.runs().into_iter().filter(|r| r.job.as_deref() == Some(job)).collect();
    runs.sort_by_key(|r| r.started);
    for r in runs {
        out.entry(r.index.expect("an indexed pod")).or_default().push(r.exit_code);
    }
    out
}

#[tokio::test]
async fn three_shards_copy_what_one_process_copies_and_pull_each_blob_once() {
    let _turn = OPERATOR.lock().await;
    let w = world();
    let client = prepared(&w).await;
    let dir = support::temp_dir("operator-shards-");
    let (kubelet, _operator, admin) = cluster_with_shards(dir.path(), &format!("pvc:{CLAIM}")).await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), NS);
    let created = api.create(&PostParams::default(), &image_set_in(NS, "sharded", spec(&w, 0, Some(3)))).await.unwrap();
    let uid = created.metadata.uid.clone().unwrap();

    // The Job, caught while it runs.
    let jobs: Api<Job> = Api::namespaced(client.clone(), OPERATOR_NS);
    let mut job = None;
    for _ in 0..1200 {
        if let Some(j) = jobs_of(&jobs, &uid).await.into_iter().next() {
            job = Some(j);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let job = job.unwrap_or_else(|| panic!("no shard Job; operator log:\n{}", read(&dir.path().join("operator.log"))));
    let name = job.metadata.name.clone().unwrap();
    let st = finished(&api, "sharded", 240).await;
    let diag = || format!("{}\noperator log:\n{}", kubelet.describe(), read(&dir.path().join("operator.log")));
    let (ready, reason, message) = support::operator::ready(&st);
    assert_eq!((ready.as_str(), reason.as_str()), ("True", "Mirrored"), "{message}\n{}", diag());

    // Its shape.
    let js = job.spec.clone().unwrap();
    assert_eq!(js.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!((js.completions, js.parallelism), (Some(3), Some(3)));
    assert_eq!(js.backoff_limit_per_index, Some(2));
    assert_eq!(js.pod_replacement_policy.as_deref(), Some("Failed"));
    assert!(js.ttl_seconds_after_finished.is_some_and(|t| t > 0));
    let labels = job.metadata.labels.clone().unwrap();
    assert_eq!(labels.get(SET_UID_LABEL), Some(&uid));
    assert_eq!(labels.get(JOB_LABEL), Some(&name));
    let annotations = job.metadata.annotations.clone().unwrap();
    assert_eq!(annotations.get(SET_ANNOTATION).map(String::as_str), Some("shards-team/sharded"));
    assert_eq!(annotations.get(PLAN_ANNOTATION), st.plan_digest.as_ref());
    let pod = js.template.spec.clone().unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(pod.service_account_name.as_deref(), Some(OPERATOR_SA), "the operator's ServiceAccount");
    assert_eq!(pod.security_context.as_ref().and_then(|s| s.run_as_non_root), Some(true));
    let c = &pod.containers[0];
    assert_eq!(c.image.as_deref(), Some(IMAGE));
    assert_eq!(c.args.as_ref().unwrap()[0], "shard");
    let requests = c.resources.clone().and_then(|r| r.requests).unwrap_or_default();
    assert_eq!(requests.get("cpu").map(|q| q.0.as_str()), Some("100m"), "--shard-resources");
    let spread = pod.topology_spread_constraints.clone().unwrap_or_default();
    assert_eq!(spread.len(), 1, "shards spread over nodes");
    assert_eq!(spread[0].topology_key, "kubernetes.io/hostname");
    let sc = c.security_context.clone().unwrap();
    assert_eq!((sc.read_only_root_filesystem, sc.allow_privilege_escalation), (Some(true), Some(false)));
    assert_eq!(sc.capabilities.unwrap().drop, Some(vec!["ALL".to_string()]));
    let volumes = pod.volumes.clone().unwrap();
    let cache = volumes.iter().find(|v| v.name == "cache").unwrap();
    assert_eq!(cache.persistent_volume_claim.as_ref().map(|p| p.claim_name.as_str()), Some(CLAIM));
    assert!(
        volumes.iter().all(|v| v.secret.is_none() && v.projected.is_none()),
        "no Secret is copied into the operator's namespace: shards read the image set's own"
    );

    // Each index ran once, and succeeded.
    let runs = runs_by_index(&kubelet, &name);
    assert_eq!(runs, BTreeMap::from([(0, vec![Some(0)]), (1, vec![Some(0)]), (2, vec![Some(0)])]), "{}", diag());

    // Merged status.
    let counts = st.counts.clone().unwrap();
    let n = w.images.len() as u64;
    assert_eq!((counts.total, counts.copied, counts.failed), (n, n, 0), "{counts:?}");
    assert_eq!(st.shards.len(), 3, "{:?}", st.shards);
    for s in &st.shards {
        assert_eq!((s.phase.as_str(), s.job.as_str()), ("Succeeded", name.as_str()), "{s:?}");
        assert_eq!((s.images_done, s.images_failed, s.retries), (s.images_total, 0, 0), "{s:?}");
        assert!(s.images_total >= 2 && s.images_total % 2 == 0, "a repository's two tags stay together: {s:?}");
    }
    assert_eq!(st.shards.iter().map(|s| s.images_total).sum::<u64>(), n);

    // The source served each blob once: the shared base layer from the operator (placed at the
    // destination before the shards started, which mounted it), the others from their shard.
    let mut blobs: Vec<&String> = w.images.iter().flat_map(|i| i.blobs.iter()).collect();
    blobs.sort();
    blobs.dedup();
    for b in blobs {
        assert_eq!(w.source.requests("GET", &format!("/blobs/{b}")), 1, "GETs of {b}\n{}", diag());
    }

    // The cache records everything the copied images need (what `cache gc` keeps for the set),
    // though the shards copied them.
    let refs = dir
        .path()
        .join("cache")
        .join(imageset_operator::pipeline::copy::CACHE_SUBDIR)
        .join("refs")
        .join(format!("{}.json", imageset_operator::pipeline::copy::refs_name("shards-team/sharded")));
    let refs = std::fs::read_to_string(&refs).unwrap_or_else(|e| panic!("{}: {e}", refs.display()));
    for img in &w.images {
        for d in img.blobs.iter().chain([&img.digest]) {
            assert!(refs.contains(d.as_str()), "{d} of {}:{} not recorded", img.repo, img.tag);
        }
    }

    // Merged, the Job and its ConfigMaps are deleted.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), OPERATOR_NS);
    for _ in 0..300 {
        let left = cms.list(&ListParams::default().labels(&format!("{JOB_LABEL}={name}"))).await.unwrap().items;
        if jobs_of(&jobs, &uid).await.is_empty() && left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(jobs_of(&jobs, &uid).await.is_empty(), "Job {name} not deleted");

    let m = metrics(&admin).await;
    for line in [
        "imageset_operator_shard_jobs_total 1",
        "imageset_operator_shard_pods_failed_total 0",
        "imageset_operator_shard_pods 0",
    ] {
        assert!(m.lines().any(|l| l == line), "{line} in\n{m}");
    }

    // The same set copied in the operator's own pod gives the same digests.
    api.create(&PostParams::default(), &image_set_in(NS, "single", spec(&w, 1, None))).await.unwrap();
    let st1 = finished(&api, "single", 240).await;
    assert_eq!(support::operator::ready(&st1).0, "True", "{:?}", st1.conditions);
    assert!(st1.shards.is_empty());
    for img in &w.images {
        let repo = format!("mirror/{}", img.repo);
        let (a, b) = (digest_at(&w.dests[0], &repo, &img.tag), digest_at(&w.dests[1], &repo, &img.tag));
        assert_eq!((&a, &b), (&img.digest, &img.digest), "{repo}:{}", img.tag);
    }
    clear_left_behind(&client).await;
}

#[tokio::test]
async fn a_shard_killed_mid_run_is_retried_for_its_index_only() {
    let _turn = OPERATOR.lock().await;
    let w = world();
    let client = prepared(&w).await;
    // One image's own layer stalls the first time it is read: its shard is still running when
    // the others are done, and is killed then (as a node failing would).
    let (layer, fault) = stall_own_layer(&w, "apps/r5", "v1", 120);
    let dir = support::temp_dir("operator-shards-kill-");
    // No shared cache: each shard pod has its own emptyDir.
    let (kubelet, _operator, admin) = cluster_with_shards(dir.path(), "none").await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), NS);
    let created = api.create(&PostParams::default(), &image_set_in(NS, "killed", spec(&w, 0, Some(3)))).await.unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), OPERATOR_NS);
    let diag = || format!("{}\noperator log:\n{}", kubelet.describe(), read(&dir.path().join("operator.log")));

    // Wait until the stalled shard is the only one left running, then kill it.
    let mut name = String::new();
    let mut victim = None;
    for _ in 0..1200 {
        if name.is_empty()
            && let Some(j) = jobs_of(&jobs, &uid).await.into_iter().next()
        {
            name = j.metadata.name.unwrap();
        }
        let runs: Vec<_> = kubelet.runs().into_iter().filter(|r| r.job.as_deref() == Some(name.as_str())).collect();
        let running: Vec<_> = runs.iter().filter(|r| r.running()).collect();
        let succeeded = runs.iter().filter(|r| r.exit_code == Some(0)).count();
        if w.proxy.fired(fault) == 1 && running.len() == 1 && succeeded == 2 {
            victim = Some(running[0].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let victim = victim.unwrap_or_else(|| panic!("the stalled shard was never alone\n{}", diag()));
    assert!(kubelet.kill(&victim.pod), "killed {}", victim.pod);
    let killed = victim.index.unwrap();

    let st = finished(&api, "killed", 240).await;
    let (ready, reason, message) = support::operator::ready(&st);
    assert_eq!((ready.as_str(), reason.as_str()), ("True", "Mirrored"), "{message}\n{}", diag());
    // The killed index ran twice (137, then 0); the others once.
    let runs = runs_by_index(&kubelet, &name);
    for i in 0..3u32 {
        let want = if i == killed { vec![Some(137), Some(0)] } else { vec![Some(0)] };
        assert_eq!(runs.get(&i), Some(&want), "index {i}\n{}", diag());
    }
    let m = metrics(&admin).await;
    assert!(m.lines().any(|l| l == "imageset_operator_shard_pods_failed_total 1"), "{m}");
    let s = st.shards.iter().find(|s| s.index == killed).unwrap();
    assert_eq!((s.phase.as_str(), s.retries, s.images_done), ("Succeeded", 1, s.images_total), "{s:?}");
    assert!(st.shards.iter().filter(|s| s.index != killed).all(|s| s.retries == 0 && s.phase == "Succeeded"));
    // What the killed pod pushed before it died, its retry finds there.
    let counts = st.counts.clone().unwrap();
    assert_eq!((counts.copied + counts.already_present, counts.failed), (w.images.len() as u64, 0), "{counts:?}");
    for img in &w.images {
        let repo = format!("mirror/{}", img.repo);
        assert_eq!(digest_at(&w.dests[0], &repo, &img.tag), img.digest, "{repo}:{}", img.tag);
    }
    // Without a shared cache too, every other blob came from the source once.
    let mut blobs: Vec<&String> = w.images.iter().flat_map(|i| i.blobs.iter()).collect();
    blobs.sort();
    blobs.dedup();
    for b in blobs.into_iter().filter(|b| **b != layer) {
        assert_eq!(w.source.requests("GET", &format!("/blobs/{b}")), 1, "GETs of {b}\n{}", diag());
    }
    clear_left_behind(&client).await;
}

fn read(p: &Path) -> String {
    let text = std::fs::read_to_string(p).unwrap_or_default();
    let start = text.len().saturating_sub(6000);
    text[text.floor_char_boundary(start)..].to_string()
}

/// At the size users have: 2,000 images in 50 repositories, in four shards.
#[tokio::test]
async fn two_thousand_images_in_four_shards_land_once_each() {
    use support::storage::{missing_at, small_images};
    const IMAGES: usize = 2000;
    let _turn = OPERATOR.lock().await;
    let (src, dst, images) = std::thread::spawn(|| {
        let src = Registry::start(RegistryOptions { access_log: true, ..Default::default() });
        let dst = Registry::start(RegistryOptions::default());
        let images = small_images(&src.storage, 50, IMAGES, 4096, 29);
        (src, dst, images)
    })
    .join()
    .unwrap();
    let cp = support::cluster::shared();
    let client = cp.client().await;
    clear_left_behind(&client).await;
    support::cluster::ensure_namespace(&client, NS).await;
    let dir = support::temp_dir("operator-shards-scale-");
    let (kubelet, _operator, _) = cluster_with_shards(dir.path(), &format!("pvc:{CLAIM}")).await;
    let names: Vec<_> = images.iter().map(|w| json!({"name": format!("{}/{}:{}", src.host, w.repo, w.tag)})).collect();
    let spec = json!({
        "destination": format!("docker://{}/mirror", dst.host),
        "registries": [{"host": src.host, "insecure": true}, {"host": dst.host, "insecure": true}],
        "mirror": {"additionalImages": names},
        "shards": 4,
    });
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), NS);
    api.create(&PostParams::default(), &image_set_in(NS, "scale", spec)).await.unwrap();
    let st = finished(&api, "scale", 600).await;
    let diag = || format!("{}\noperator log:\n{}", kubelet.describe(), read(&dir.path().join("operator.log")));
    let (ready, reason, message) = support::operator::ready(&st);
    assert_eq!((ready.as_str(), reason.as_str()), ("True", "Mirrored"), "{message}\n{}", diag());
    let counts = st.counts.clone().unwrap();
    assert_eq!((counts.total, counts.copied, counts.failed), (IMAGES as u64, IMAGES as u64, 0), "{counts:?}");
    assert_eq!(st.shards.len(), 4, "{:?}", st.shards);
    assert!(st.shards.iter().all(|s| s.phase == "Succeeded" && s.images_done == s.images_total));
    // 50 repositories of 40 images: whole repositories per shard, balanced.
    let mut sizes: Vec<u64> = st.shards.iter().map(|s| s.images_total).collect();
    sizes.sort();
    assert_eq!(sizes.iter().sum::<u64>(), IMAGES as u64);
    assert!(sizes.iter().all(|n| n % 40 == 0) && sizes[3] - sizes[0] <= 40, "{sizes:?}");
    let missing = std::thread::spawn(move || missing_at(&dst, "mirror", &images)).join().unwrap();
    assert!(
        missing.is_empty(),
        "{} images missing or wrong, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // Every blob (a config and a layer per image) was read from the source once.
    let mut gets: BTreeMap<String, usize> = BTreeMap::new();
    for a in src.access_log().iter().filter(|a| a.method == "GET" && a.uri.contains("/blobs/")) {
        *gets.entry(a.uri.rsplit('/').next().unwrap_or_default().to_string()).or_default() += 1;
    }
    assert_eq!(gets.len(), 2 * IMAGES, "distinct blobs read");
    let twice: Vec<_> = gets.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "blobs read more than once: {twice:?}");
    clear_left_behind(&client).await;
}

/// A spec change while a Job runs stops that run: its Job goes (and with it its pods), and the
/// new generation's run copies in a Job of its own.
#[tokio::test]
async fn a_spec_change_mid_run_deletes_the_old_generations_job() {
    let _turn = OPERATOR.lock().await;
    let w = world();
    let client = prepared(&w).await;
    let (layer, fault) = stall_own_layer(&w, "apps/r2", "v2", 120);
    let dir = support::temp_dir("operator-shards-change-");
    let (kubelet, _operator, _) = cluster_with_shards(dir.path(), &format!("pvc:{CLAIM}")).await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), NS);
    let created = api.create(&PostParams::default(), &image_set_in(NS, "changed", spec(&w, 0, Some(2)))).await.unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), OPERATOR_NS);
    let diag = || format!("{}\noperator log:\n{}", kubelet.describe(), read(&dir.path().join("operator.log")));
    let first = stalled_job(&w, &jobs, &uid, fault).await;
    let first = first.unwrap_or_else(|| panic!("no Job stalled on {layer}\n{}", diag()));
    let patch = json!({"spec": {"resyncInterval": "7h"}});
    api.patch("changed", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let st = finished(&api, "changed", 240).await;
    let (ready, reason, message) = support::operator::ready(&st);
    assert_eq!((ready.as_str(), reason.as_str()), ("True", "Mirrored"), "{message}\n{}", diag());
    assert_eq!(st.observed_generation, Some(2));
    assert!(jobs.get_opt(&first).await.unwrap().is_none(), "the first generation's Job {first} is gone");
    let second = st.shards.first().map(|s| s.job.clone()).unwrap_or_default();
    assert!(!second.is_empty() && second != first, "the new generation ran in a Job of its own: {second}");
    let stopped: Vec<_> = kubelet.runs().into_iter().filter(|r| r.job.as_deref() == Some(first.as_str())).collect();
    assert!(stopped.iter().all(|r| !r.running()), "{}", diag());
    assert!(stopped.iter().any(|r| r.exit_code != Some(0)), "a pod of the first Job was stopped mid-run\n{}", diag());
    for img in &w.images {
        let repo = format!("mirror/{}", img.repo);
        assert_eq!(digest_at(&w.dests[0], &repo, &img.tag), img.digest, "{repo}:{}", img.tag);
    }
    clear_left_behind(&client).await;
}

/// The operator stopped (SIGTERM, as a rolling update does) while a Job runs leaves it running;
/// the operator started after it takes the same Job over instead of starting another.
#[tokio::test]
async fn a_restarted_operator_takes_over_the_running_job() {
    let _turn = OPERATOR.lock().await;
    let w = world();
    let client = prepared(&w).await;
    // Held long enough for the operator to stop and start again; then the read is retried.
    let (layer, fault) = stall_own_layer(&w, "apps/r6", "v1", 10);
    let dir = support::temp_dir("operator-shards-restart-");
    let (kubelet, mut first, _) = cluster_with_shards(dir.path(), &format!("pvc:{CLAIM}")).await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), NS);
    let created =
        api.create(&PostParams::default(), &image_set_in(NS, "restarted", spec(&w, 0, Some(2)))).await.unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    let jobs: Api<Job> = Api::namespaced(client.clone(), OPERATOR_NS);
    let diag = || {
        format!(
            "{}\nfirst operator:\n{}\nsecond operator:\n{}",
            kubelet.describe(),
            read(&dir.path().join("operator.log")),
            read(&dir.path().join("operator-2.log"))
        )
    };
    let job = stalled_job(&w, &jobs, &uid, fault).await;
    let job = job.unwrap_or_else(|| panic!("no Job stalled on {layer}\n{}", diag()));
    first.stop();
    assert!(jobs.get_opt(&job).await.unwrap().is_some(), "the stopped operator left its Job running\n{}", diag());
    let kubeconfig = dir.path().join(format!("{OPERATOR_NS}.{OPERATOR_SA}.kubeconfig"));
    let admin = format!("127.0.0.1:{}", support::free_port());
    let flags = shard_flags(&format!("pvc:{CLAIM}"), &[]);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let _second = support::operator::operator_as(&kubeconfig, dir.path(), &admin, &flags, &[], "operator-2");
    let st = finished(&api, "restarted", 240).await;
    let (ready, reason, message) = support::operator::ready(&st);
    assert_eq!((ready.as_str(), reason.as_str()), ("True", "Mirrored"), "{message}\n{}", diag());
    assert!(st.shards.iter().all(|s| s.job == job), "the same Job, taken over: {:?}", st.shards);
    let runs = runs_by_index(&kubelet, &job);
    assert_eq!(runs, BTreeMap::from([(0, vec![Some(0)]), (1, vec![Some(0)])]), "each index ran once\n{}", diag());
    let log = read(&dir.path().join("operator-2.log"));
    assert!(log.contains("taking over the shard Job"), "{log}");
    for img in &w.images {
        let repo = format!("mirror/{}", img.repo);
        assert_eq!(digest_at(&w.dests[0], &repo, &img.tag), img.digest, "{repo}:{}", img.tag);
    }
    clear_left_behind(&client).await;
}

/// Pods that never start (here: no kubelet runs them, as when no node can mount the cache
/// claim) fail the run after --shard-start-timeout, naming the Job and where to look, and the
/// Job is deleted.
#[tokio::test]
async fn pods_that_never_start_fail_the_run_and_their_job_goes() {
    let _turn = OPERATOR.lock().await;
    let w = world();
    let client = prepared(&w).await;
    let dir = support::temp_dir("operator-shards-pending-");
    let (_operator, _) = operator_with_shards(dir.path(), &format!("pvc:{CLAIM}"), &["--shard-start-timeout=5"]).await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), NS);
    let created = api.create(&PostParams::default(), &image_set_in(NS, "pending", spec(&w, 0, Some(2)))).await.unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    let st = finished(&api, "pending", 120).await;
    let (ready, reason, message) = support::operator::ready(&st);
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "ShardJobFailed"), "{message}");
    assert!(message.contains("did not start within 5s") && message.contains("describe pods -l"), "{message}");
    let jobs: Api<Job> = Api::namespaced(client.clone(), OPERATOR_NS);
    assert!(jobs_of(&jobs, &uid).await.is_empty(), "the Job was deleted");
    clear_left_behind(&client).await;
}
