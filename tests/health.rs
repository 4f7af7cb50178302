//! Health as GitOps tools read it, from the objects the operator really writes: every
//! version of each image set and delete that a watch saw during real runs, resyncs, held
//! changes, failures and a delete's review, fed to
//! - kstatus (`status.Compute` of sigs.k8s.io/cli-utils, what Flux and cli-utils wait on),
//!   built from its Go module by scripts/install-test-deps as `kstatus`
//!   (tests/tools/kstatus/main.go), and
//! - the Argo CD health check of config/argocd, run by Debian's Lua 5.1 (Argo CD runs its
//!   checks in gopher-lua, a Lua 5.1).
//!
//! The operator runs as its ServiceAccount under config/rbac, against the shared control
//! plane and registries of the test world.

mod support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use imageset_operator::api::{DeleteImageSetConfiguration, ImageSetConfiguration};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::{Value, json};
use support::cluster;
use support::content::{Format, Pusher};
use support::operator::{OPERATOR, OPERATOR_NS, clear_left_behind, service_account_kubeconfig};
use support::proxy::{Fault, FaultAction, Proxy};
use support::registry::{Registry, RegistryOptions};

const NS: &str = "health";

/// Every version of the objects of one kind in [`NS`], in the order the watch saw them.
#[derive(Clone, Default)]
struct Versions(Arc<Mutex<Vec<Value>>>);

impl Versions {
    /// Starts recording `kind`; returns once the watch has listed.
    async fn record(client: &kube::Client, kind: &str) -> (Versions, tokio::task::JoinHandle<()>) {
        let ar = kube::core::ApiResource::from_gvk(&kube::core::GroupVersionKind::gvk(
            "mirror.openshift.io",
            "v2alpha1",
            kind,
        ));
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NS, &ar);
        let versions = Versions::default();
        let (listed_tx, listed_rx) = tokio::sync::oneshot::channel();
        let into = versions.clone();
        let task = tokio::spawn(async move {
            let mut listed = Some(listed_tx);
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(ev) = stream.next().await {
                match ev {
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        let v = serde_json::to_value(&o).unwrap();
                        let mut all = into.0.lock().unwrap();
                        let rv = |x: &Value| x["metadata"]["resourceVersion"].clone();
                        if !all.iter().any(|x| rv(x) == rv(&v)) {
                            all.push(v);
                        }
                    }
                    Ok(watcher::Event::InitDone) => {
                        if let Some(tx) = listed.take() {
                            let _ = tx.send(());
                        }
                    }
                    _ => {}
                }
            }
        });
        listed_rx.await.expect("the watch listed");
        (versions, task)
    }

    /// The versions of `name` so far.
    fn of(&self, name: &str) -> Vec<Value> {
        self.0.lock().unwrap().iter().filter(|v| v["metadata"]["name"] == name).cloned().collect()
    }

    /// Waits for a version of `name` that `ok` accepts; returns the first such. `diag` tells
    /// what the operator logged, on failure.
    async fn wait(
        &self,
        name: &str,
        what: &str,
        secs: u64,
        diag: &dyn Fn() -> String,
        ok: impl Fn(&Value) -> bool,
    ) -> Value {
        for _ in 0..secs * 10 {
            if let Some(v) = self.of(name).into_iter().find(|v| ok(v)) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let last = self.of(name).pop().map(|v| v["status"].clone());
        panic!("{name}: no version {what} within {secs}s; last status: {last:#?}\n{}", diag());
    }
}

fn condition<'a>(v: &'a Value, type_: &str) -> Option<&'a Value> {
    v["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)
}

fn holds(v: &Value, type_: &str) -> bool {
    condition(v, type_).is_some_and(|c| c["status"] == "True")
}

fn reason<'a>(v: &'a Value, type_: &str) -> &'a str {
    condition(v, type_).and_then(|c| c["reason"].as_str()).unwrap_or_default()
}

/// Whether the status describes the object's current generation.
fn observed(v: &Value) -> bool {
    v["status"]["observedGeneration"] == v["metadata"]["generation"]
}

/// kstatus's status of each object, as `(status, message)`.
fn kstatus(objects: &[Value]) -> Vec<(String, String)> {
    let out = run(&support::require("kstatus"), &[], &serde_json::to_vec(objects).unwrap());
    let results: Vec<Value> = serde_json::from_slice(&out).unwrap();
    assert_eq!(results.len(), objects.len());
    results
        .into_iter()
        .map(|r| (r["status"].as_str().unwrap().to_string(), r["message"].as_str().unwrap().to_string()))
        .collect()
}

fn health_lua() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config/argocd/health.lua")
}

/// A JSON value as a Lua 5.1 constructor, as Argo CD hands an object to its health scripts:
/// objects as tables keyed by name, arrays as sequences from 1, null as absent.
fn lua(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let mut out = String::from("\"");
            for b in s.bytes() {
                match b {
                    b'"' | b'\\' => {
                        out.push('\\');
                        out.push(b as char);
                    }
                    0x20..=0x7e => out.push(b as char),
                    // Control characters and UTF-8 bytes: Lua's decimal escapes, byte for byte.
                    _ => out.push_str(&format!("\\{b}")),
                }
            }
            out.push('"');
            out
        }
        Value::Array(items) => format!("{{{}}}", items.iter().map(lua).collect::<Vec<_>>().join(",")),
        Value::Object(m) => {
            let fields: Vec<String> = m.iter().map(|(k, x)| format!("[{}]={}", lua(&json!(k)), lua(x))).collect();
            format!("{{{}}}", fields.join(","))
        }
    }
}

/// The Argo CD health of each object, as `(status, message)`: config/argocd/health.lua run
/// with the object as the global `obj`, as Argo CD runs it.
fn argo(objects: &[Value]) -> Vec<(String, String)> {
    let script = health_lua();
    let mut chunk = String::new();
    for o in objects {
        chunk.push_str(&format!(
            "obj = {}\nlocal hs = dofile({})\nio.write(hs.status, \"\\0\", hs.message or \"\", \"\\0\")\n",
            lua(o),
            lua(&json!(script.display().to_string()))
        ));
    }
    let out = String::from_utf8(run(&support::require("lua5.1"), &["-"], chunk.as_bytes())).unwrap();
    let parts: Vec<&str> = out.split('\0').collect();
    assert_eq!(parts.len(), objects.len() * 2 + 1, "{out}");
    parts.chunks(2).take(objects.len()).map(|p| (p[0].to_string(), p[1].to_string())).collect()
}

fn run(program: &Path, args: &[&str], stdin: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}: {}", program.display(), String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// What README's table says kstatus reads from our conditions (kstatus's generic rules,
/// sigs.k8s.io/cli-utils/pkg/kstatus/status generic.go and status.go, applied to the
/// conditions we write): an object the operator has not written yet is Current (kstatus's
/// rule for any object without status: it cannot tell), a generation not yet observed or
/// `Reconciling` is InProgress, `Stalled` is Failed, `Ready=True` is Current, anything else
/// InProgress.
fn documented(v: &Value) -> &'static str {
    if v["status"].is_null() {
        "Current"
    } else if !observed(v) || holds(v, "Reconciling") {
        "InProgress"
    } else if holds(v, "Stalled") {
        "Failed"
    } else if holds(v, "Ready") {
        "Current"
    } else {
        "InProgress"
    }
}

/// The rules every version written must keep, whatever the tools make of it.
fn check_rules(name: &str, versions: &[Value]) {
    let mut had_ready = false;
    for (i, v) in versions.iter().enumerate() {
        let at = || format!("{name} version {i}: {:#}", v["status"]);
        let has_ready = condition(v, "Ready").is_some_and(|c| !c["reason"].as_str().unwrap_or_default().is_empty());
        // A write never drops Ready, nor its reason.
        assert!(has_ready || !had_ready, "Ready dropped: {}", at());
        had_ready |= has_ready;
        assert!(!(holds(v, "Reconciling") && holds(v, "Stalled")), "Reconciling and Stalled: {}", at());
        assert_eq!(holds(v, "Reconciling"), holds(v, "Progressing"), "Reconciling is Progressing: {}", at());
        // observedGeneration names a generation only when status describes it: a run of it
        // under way, or its outcome.
        if observed(v) && v["status"]["conditions"].is_array() {
            let ready_of_it =
                condition(v, "Ready").is_some_and(|c| c["observedGeneration"] == v["metadata"]["generation"]);
            assert!(
                holds(v, "Reconciling") || holds(v, "Stalled") || ready_of_it,
                "observedGeneration moved ahead of the status: {}",
                at()
            );
        }
        // Abnormal-true: kstatus's conditions are present only while true.
        for t in ["Reconciling", "Stalled", "ChangesHeld"] {
            assert!(condition(v, t).is_none() || holds(v, t), "{t} present but not true: {}", at());
        }
    }
}

/// What a tool says of an object: its status and message.
type Verdict = (String, String);

/// One version of an object with what kstatus and Argo CD make of it.
struct Assessed {
    version: Value,
    kstatus: Verdict,
    argo: Verdict,
}

/// kstatus and Argo CD over every version of `name`, after the rules every write keeps;
/// kstatus's verdict checked against the documented mapping for each.
fn assess(name: &str, versions: &[Value]) -> Vec<Assessed> {
    check_rules(name, versions);
    let k = kstatus(versions);
    let a = argo(versions);
    for (i, (v, (status, message))) in versions.iter().zip(&k).enumerate() {
        assert_eq!(status, documented(v), "{name} version {i}: kstatus says {status} ({message}): {:#}", v["status"]);
    }
    versions
        .iter()
        .cloned()
        .zip(k)
        .zip(a)
        .map(|((version, kstatus), argo)| Assessed { version, kstatus, argo })
        .collect()
}

/// The first assessed version `pick` accepts, with what both tools said.
fn find<'a>(
    assessed: &'a [Assessed],
    what: &str,
    pick: impl Fn(&Value) -> bool,
) -> (&'a str, &'a str, &'a str, &'a str) {
    let a = assessed.iter().find(|a| pick(&a.version)).unwrap_or_else(|| panic!("no version {what}"));
    (&a.kstatus.0, &a.kstatus.1, &a.argo.0, &a.argo.1)
}

fn image_set(name: &str, spec: Value) -> ImageSetConfiguration {
    serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

/// Image sets through a run (slowed by a stalled blob so that progress is written), a
/// resync, a spec change, held changes, images that fail, a missing Secret and an invalid
/// spec; a delete through its review: what kstatus and Argo CD make of every version.
#[tokio::test]
async fn kstatus_and_argo_cd_read_every_status_the_operator_writes() {
    let _turn = OPERATOR.lock().await;
    let (src, dst, old) = std::thread::spawn(|| {
        let src = Registry::start(RegistryOptions::default());
        let dst = Registry::start(RegistryOptions::default());
        let p = Pusher::new(&src);
        p.image("apps/web", "v1", Format::Oci, ("linux", "amd64"), &[(401, 256 * 1024), (402, 4096)]);
        p.image("apps/db", "v1", Format::Docker, ("linux", "amd64"), &[(403, 8192)]);
        p.image("apps/extra", "v1", Format::Oci, ("linux", "amd64"), &[(404, 2048)]);
        // Left at the destination by an earlier mirror, named by no live image set.
        let old = Pusher::new(&dst).image("mirror/apps/old", "v1", Format::Oci, ("linux", "amd64"), &[(405, 1024)]);
        (src, dst, old)
    })
    .join()
    .unwrap();
    // The first run is held up by one blob that stalls for a while, so that it is seen
    // under way, with its progress written.
    let proxy = Proxy::start(&src.host);
    let stall = proxy.add_fault(Fault::new(
        Some("GET"),
        "/blobs/",
        1,
        FaultAction::Stall { after: None, duration: Duration::from_secs(7) },
    ));
    let cp = cluster::shared();
    let admin = cp.client().await;
    clear_left_behind(&admin).await;
    cluster::ensure_namespace(&admin, NS).await;
    // Deletes an earlier failed run left (with the finalizer that holds one in deletion).
    let dapi: Api<DeleteImageSetConfiguration> = Api::namespaced(admin.clone(), NS);
    for d in dapi.list(&Default::default()).await.unwrap() {
        let name = d.metadata.name.unwrap_or_default();
        let clear = json!({"metadata": {"finalizers": null}});
        let _ = dapi.patch(&name, &PatchParams::default(), &Patch::Merge(&clear)).await;
        let _ = dapi.delete(&name, &Default::default()).await;
    }
    let (sets, _w1) = Versions::record(&admin, "ImageSetConfiguration").await;
    let (deletes, _w2) = Versions::record(&admin, "DeleteImageSetConfiguration").await;
    let dir = support::temp_dir("operator-health-");
    let kubeconfig = service_account_kubeconfig(cp, &admin, dir.path()).await;
    let operator = support::Guarded::spawn_with_env(
        Path::new(env!("CARGO_BIN_EXE_imageset-operator")),
        &[
            "run".to_string(),
            format!("--admin-addr=127.0.0.1:{}", support::free_port()),
            format!("--cache-dir={}", dir.path().join("cache").display()),
            format!("--namespace={OPERATOR_NS}"),
            format!("--allowed-namespaces={NS}"),
            "--leader-election=false".to_string(),
            // Failed runs stay as they are for the length of the test.
            "--retry-interval=600".to_string(),
        ],
        &[("KUBECONFIG", kubeconfig.display().to_string())],
        &dir.path().join("operator.log"),
        None,
    );
    let tail = operator.log_tail();
    let registries = json!([{"host": proxy.host, "insecure": true}, {"host": dst.host, "insecure": true},
                            {"host": src.host, "insecure": true}]);
    let destination = format!("docker://{}/mirror", dst.host);
    let images = |names: &[&str]| -> Value {
        json!({"additionalImages": names.iter().map(|n| json!({"name": format!("{}/apps/{n}:v1", proxy.host)})).collect::<Vec<_>>()})
    };
    let api: Api<ImageSetConfiguration> = Api::namespaced(admin.clone(), NS);

    // A run (changes held for review), its resync, a spec change with its run, the approval
    // of what it holds, and a resync with nothing held.
    let spec = |names: &[&str], approved: Option<&str>| {
        json!({"destination": destination, "registries": registries, "resyncInterval": "6s",
               "clusterResources": {"apply": "Hold", "approvedChangesDigest": approved}, "mirror": images(names)})
    };
    let done = |generation: i64| {
        move |v: &Value| {
            v["metadata"]["generation"] == generation
                && observed(v)
                && reason(v, "Ready") == "Mirrored"
                && !holds(v, "Progressing")
        }
    };
    let resyncing = |generation: i64| {
        move |v: &Value| v["metadata"]["generation"] == generation && reason(v, "Progressing") == "Resync"
    };
    api.create(&PostParams::default(), &image_set("mirror", spec(&["web", "db"], None))).await.unwrap();
    let copying = sets
        .wait("mirror", "copying with its progress", 60, &tail, |v| {
            reason(v, "Progressing") == "Copying" && observed(v)
        })
        .await;
    assert_eq!(copying["status"]["progress"]["imagesTotal"], 2, "{:#}", copying["status"]);
    sets.wait("mirror", "finished", 90, &tail, done(1)).await;
    assert_eq!(proxy.fired(stall), 1, "the stalled blob never held the run up");
    sets.wait("mirror", "resyncing", 60, &tail, resyncing(1)).await;
    let patch = json!({"spec": spec(&["web", "db", "extra"], None)});
    api.patch("mirror", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    let held = sets.wait("mirror", "finished generation 2", 90, &tail, done(2)).await;
    let digest = held["status"]["pendingChanges"]["digest"].as_str().expect("changes held").to_string();
    let patch = json!({"spec": spec(&["web", "db", "extra"], Some(&digest))});
    api.patch("mirror", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    sets.wait("mirror", "applied", 90, &tail, done(3)).await;
    sets.wait("mirror", "resyncing with nothing held", 60, &tail, resyncing(3)).await;

    let assessed = assess("mirror", &sets.of("mirror"));
    let (k, km, a, _) = find(&assessed, "copying", |v| reason(v, "Progressing") == "Copying");
    assert_eq!((k, a), ("InProgress", "Progressing"), "{km}");
    assert!(km.contains("of 2 images"), "kstatus shows the run's progress: {km}");
    let (k, km, a, am) = find(&assessed, "held", |v| done(2)(v));
    assert_eq!((k, a), ("Current", "Suspended"), "the mirror is complete, its cluster objects wait: {km} / {am}");
    assert!(am.starts_with("AwaitingApproval: ") && am.contains(&digest), "{am}");
    assert!(condition(&held, "ChangesHeld").unwrap()["message"].as_str().unwrap().contains(&digest));
    assert_eq!(reason(&held, "Ready"), "Mirrored", "Ready still says the mirror is complete");
    let (k, _, a, am) = find(&assessed, "resyncing while held", resyncing(1));
    assert_eq!((k, a), ("InProgress", "Suspended"), "a resync changes nothing for Argo CD: {am}");
    let (k, km, a, _) =
        find(&assessed, "of generation 2 not yet observed", |v| v["metadata"]["generation"] == 2 && !observed(v));
    assert_eq!((k, a), ("InProgress", "Progressing"));
    assert!(km.contains("generation is 2, but latest observed generation is 1"), "{km}");
    let (k, _, a, am) = find(&assessed, "running generation 2", |v| {
        v["metadata"]["generation"] == 2 && observed(v) && holds(v, "Reconciling")
    });
    assert_eq!((k, a), ("InProgress", "Progressing"), "{am}");
    let (k, _, a, am) = find(&assessed, "applied", |v| done(3)(v));
    assert_eq!((k, a), ("Current", "Healthy"), "{am}");
    let (k, _, a, am) = find(&assessed, "resyncing with nothing held", resyncing(3));
    assert_eq!((k, a), ("InProgress", "Healthy"), "{am}");
    assert!(am.contains("Resync: "), "{am}");
    let applied = assessed.iter().position(|a| done(3)(&a.version)).unwrap();
    assert!(assessed[applied..].iter().all(|a| condition(&a.version, "ChangesHeld").is_none()), "held after approval");

    // Images that fail (a tag missing at the source): Degraded, retried, so not stalled.
    let missing = json!({"destination": destination, "registries": registries, "mirror": images(&["gone"])});
    api.create(&PostParams::default(), &image_set("missing", missing)).await.unwrap();
    // A Secret that does not exist: stalled until it does.
    let mut no_secret = json!({"destination": destination, "registries": registries, "mirror": images(&["db"])});
    no_secret["authSecretRef"] = json!({"name": "not-created"});
    api.create(&PostParams::default(), &image_set("no-secret", no_secret)).await.unwrap();
    // Every image it names blocked: nothing to copy, an invalid spec found by the run
    // (admission cannot tell: it would have to match the patterns against the names).
    let mut invalid = json!({"destination": destination, "registries": registries, "mirror": images(&["db"])});
    invalid["mirror"]["blockedImages"] = json!([{"name": "apps/db"}]);
    api.create(&PostParams::default(), &image_set("invalid", invalid)).await.unwrap();
    for (name, want) in [("missing", "ImagesFailed"), ("no-secret", "AccessError"), ("invalid", "InvalidSpec")] {
        sets.wait(name, want, 90, &tail, |v| observed(v) && reason(v, "Ready") == want && !holds(v, "Progressing"))
            .await;
    }
    let cases = [
        ("missing", "ImagesFailed", "InProgress", "Degraded", false),
        ("no-secret", "AccessError", "Failed", "Degraded", true),
        ("invalid", "InvalidSpec", "Failed", "Degraded", true),
    ];
    for (name, want, kstatus_says, argo_says, stalled) in cases {
        let assessed = assess(name, &sets.of(name));
        let (k, km, a, am) = find(&assessed, want, |v| reason(v, "Ready") == want && !holds(v, "Reconciling"));
        assert_eq!((k, a), (kstatus_says, argo_says), "{name}: {km} / {am}");
        let last = &assessed.last().unwrap().version;
        assert_eq!(holds(last, "Stalled"), stalled, "{name}: {:#}", last["status"]);
        if stalled {
            assert_eq!(reason(last, "Stalled"), want);
            assert!(am.starts_with(&format!("{want}: ")), "{am}");
        }
    }

    for name in ["missing", "no-secret", "invalid"] {
        api.delete(name, &Default::default()).await.unwrap();
    }

    // A delete through its review.
    let disc: DeleteImageSetConfiguration = serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "DeleteImageSetConfiguration",
        "metadata": {"name": "cleanup"},
        "spec": {"destination": destination, "registries": registries,
                 "delete": {"additionalImages": [{"name": format!("{}/apps/old:v1", src.host)}]}},
    }))
    .unwrap();
    dapi.create(&PostParams::default(), &disc).await.unwrap();
    let awaiting = deletes
        .wait("cleanup", "awaiting approval", 90, &tail, |v| observed(v) && reason(v, "Ready") == "AwaitingApproval")
        .await;
    // Its own status events plan nothing again: no version follows for a while.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let seen = deletes.of("cleanup");
    assert_eq!(
        seen.last().unwrap()["metadata"]["resourceVersion"],
        awaiting["metadata"]["resourceVersion"],
        "{seen:#?}"
    );
    let plan = awaiting["status"]["planDigest"].as_str().unwrap().to_string();
    let approve = |digest: String| json!({"spec": {"approvedPlanDigest": digest}});
    let wrong = format!("sha256:{}", "0".repeat(64));
    dapi.patch("cleanup", &PatchParams::default(), &Patch::Merge(&approve(wrong))).await.unwrap();
    deletes
        .wait("cleanup", "with a stale approval", 90, &tail, |v| observed(v) && reason(v, "Ready") == "ApprovalStale")
        .await;
    dapi.patch("cleanup", &PatchParams::default(), &Patch::Merge(&approve(plan))).await.unwrap();
    deletes.wait("cleanup", "deleted", 90, &tail, |v| observed(v) && reason(v, "Ready") == "Deleted").await;
    let assessed = assess("cleanup", &deletes.of("cleanup"));
    let (k, _, a, am) = find(&assessed, "planning", |v| reason(v, "Reconciling") == "Planning");
    assert_eq!((k, a), ("InProgress", "Progressing"), "{am}");
    let (k, _, a, am) = find(&assessed, "awaiting approval", |v| {
        reason(v, "Ready") == "AwaitingApproval" && observed(v) && !holds(v, "Reconciling")
    });
    assert_eq!((k, a), ("InProgress", "Suspended"), "waiting for a person: {am}");
    assert!(am.contains(awaiting["status"]["planDigest"].as_str().unwrap()), "{am}");
    let (k, _, a, am) = find(&assessed, "stale", |v| reason(v, "Ready") == "ApprovalStale" && !holds(v, "Reconciling"));
    assert_eq!((k, a), ("Failed", "Degraded"), "{am}");
    let (k, _, a, am) = find(&assessed, "deleting", |v| reason(v, "Reconciling") == "Deleting");
    assert_eq!((k, a), ("InProgress", "Progressing"), "{am}");
    let (k, _, a, am) = find(&assessed, "deleted", |v| reason(v, "Ready") == "Deleted" && observed(v));
    assert_eq!((k, a), ("Current", "Healthy"), "{am}");
    let gone = std::thread::scope(|s| {
        s.spawn(|| {
            let url = format!("{}/v2/mirror/apps/old/manifests/{}", dst.base_url(), old.digest);
            dst.http().head(url).send().unwrap().status().as_u16()
        })
        .join()
        .unwrap()
    });
    assert_eq!(gone, 404, "the approved plan deleted its image");

    // An object being deleted is Terminating to kstatus, whatever its conditions.
    let finalizer = json!({"metadata": {"finalizers": ["health.test/hold"]}});
    dapi.patch("cleanup", &PatchParams::default(), &Patch::Merge(&finalizer)).await.unwrap();
    dapi.delete("cleanup", &Default::default()).await.unwrap();
    let going =
        deletes.wait("cleanup", "being deleted", 30, &tail, |v| !v["metadata"]["deletionTimestamp"].is_null()).await;
    assert_eq!(kstatus(&[going])[0].0, "Terminating");
    dapi.patch("cleanup", &PatchParams::default(), &Patch::Merge(&json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    api.delete("mirror", &Default::default()).await.unwrap();
    // The operator removes what the sets produced (their finalizer) before it stops.
    for _ in 0..300 {
        if api.list(&Default::default()).await.unwrap().items.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("image sets not cleaned up within 30s\n{}", tail());
}

/// The argocd-cm patch installs config/argocd/health.lua, unchanged, for both kinds.
#[test]
fn the_argocd_cm_patch_carries_the_health_script_for_both_kinds() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/argocd");
    let patch: Value = serde_saphyr::from_str(&std::fs::read_to_string(dir.join("argocd-cm.yaml")).unwrap()).unwrap();
    let script = std::fs::read_to_string(health_lua()).unwrap();
    let data = patch["data"].as_object().expect("data");
    let keys: Vec<&str> = data.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "resource.customizations.health.mirror.openshift.io_DeleteImageSetConfiguration",
            "resource.customizations.health.mirror.openshift.io_ImageSetConfiguration"
        ]
    );
    for (k, v) in data {
        assert_eq!(v.as_str(), Some(script.as_str()), "{k} differs from health.lua");
    }
}
