//! `imageset-operator run` copying for real against the real apiserver and registries of
//! the test world: mirroring and applying, following spec changes, tenancy, finalizers,
//! leader election, registry outages and recovery, and resuming after kill -9.

mod support;

use std::time::Duration;

use imageset_operator::api::ImageSetConfiguration;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use support::cluster;
use support::operator::{
    OPERATOR, clear_left_behind, dynamic, finished, operator, operator_as, service_account_kubeconfig_in,
};

/// A source and a destination registry, and what `fill` puts in the source. Registries and
/// pushes are blocking code: they run off the async runtime.
fn registries<T: Send + 'static>(
    fill: impl FnOnce(&support::registry::Registry) -> T + Send + 'static,
) -> (support::registry::Registry, support::registry::Registry, T) {
    std::thread::spawn(|| {
        use support::registry::{Registry, RegistryOptions};
        let src = Registry::start(RegistryOptions::default());
        let dst = Registry::start(RegistryOptions::default());
        let filled = fill(&src);
        (src, dst, filled)
    })
    .join()
    .unwrap()
}

/// An image set of `images` copied to `destination`, with `insecure` registries marked so.
fn image_set(name: &str, destination: String, insecure: &[&str], images: &[String]) -> ImageSetConfiguration {
    let registries: Vec<_> = insecure.iter().map(|h| json!({"host": h, "insecure": true})).collect();
    let images: Vec<_> = images.iter().map(|i| json!({"name": i})).collect();
    serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
        "metadata": {"name": name},
        "spec": {"destination": destination, "registries": registries, "mirror": {"additionalImages": images}},
    }))
    .unwrap()
}

/// `imageset-operator run` copies for real: an image set's images land in the destination
/// registry, its IDMS/ITMS are applied with the owner label, a spec change is followed (stale
/// objects pruned), an image set of a namespace not allowed mirrors but applies nothing, and
/// deleting the image set removes what it produced.
#[tokio::test]
async fn run_mirrors_applies_prunes_and_cleans_up() {
    let _turn = OPERATOR.lock().await;
    use support::content::{Format, Pusher};
    let (src, dst, (tagged, pinned)) = registries(|src| {
        let push = Pusher::new(src);
        let tagged = push.image("apps/web", "v1", Format::Oci, ("linux", "amd64"), &[(71, 2048), (72, 4096)]);
        let pinned = push.image("apps/db", "v2", Format::Docker, ("linux", "amd64"), &[(73, 3000)]);
        (tagged, pinned)
    });
    let cp = cluster::shared();
    let client = cp.client().await;
    clear_left_behind(&client).await;
    for ns in ["mirror-ops", "tenant-ns"] {
        cluster::ensure_namespace(&client, ns).await;
    }
    let dir = support::temp_dir("operator-run-");
    let admin = format!("127.0.0.1:{}", support::free_port());
    let _operator = operator(cp, dir.path(), &admin, &["--namespace=mirror-ops"]).await;
    let spec = |images: Vec<String>| {
        json!({
            "destination": format!("docker://{}/mirror", dst.host),
            "registries": [{"host": src.host, "insecure": true}, {"host": dst.host, "insecure": true}],
            "mirror": {"additionalImages": images.into_iter().map(|n| json!({"name": n})).collect::<Vec<_>>()},
        })
    };
    let web = format!("{}/apps/web:v1", src.host);
    let db = format!("{}/apps/db@{}", src.host, pinned.digest);
    let obj = |ns: &str, images: Vec<String>| -> ImageSetConfiguration {
        serde_json::from_value(json!({
            "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
            "metadata": {"name": "apps", "namespace": ns}, "spec": spec(images),
        }))
        .unwrap()
    };
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), "mirror-ops");
    api.create(&PostParams::default(), &obj("mirror-ops", vec![web.clone(), db.clone()])).await.unwrap();
    let st = finished(&api, "apps", 90).await;
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "Mirrored"), "{}", ready.message);
    let counts = st.counts.clone().unwrap();
    assert_eq!((counts.total, counts.copied + counts.already_present, counts.failed), (2, 2, 0));
    assert!(st.last_successful_run_time.is_some());
    let at_dst = |repo: &str, reference: &str| {
        support::sha256(&support::skopeo(&[
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}/mirror/{repo}:{reference}", dst.host),
        ]))
    };
    assert_eq!(at_dst("apps/web", "v1"), tagged.digest);
    assert_eq!(at_dst("apps/db", &pinned.digest.replace(':', "-")), pinned.digest);

    let owned = kube::api::ListParams::default().labels("mirror.openshift.io/owned-by=mirror-ops.apps");
    let idms = dynamic(&client, "config.openshift.io", "v1", "ImageDigestMirrorSet");
    let itms = dynamic(&client, "config.openshift.io", "v1", "ImageTagMirrorSet");
    let list = idms.list(&owned).await.unwrap();
    assert_eq!(list.items.len(), 1);
    assert!(
        list.items[0].metadata.name.as_deref().unwrap().starts_with("mirror-ops-apps-"),
        "{:?}",
        list.items[0].metadata.name
    );
    let mirrors = serde_json::to_string(&list.items[0].data["spec"]).unwrap();
    assert!(
        // oc-mirror's mirror sets are per parent namespace of the images.
        mirrors.contains(&format!("\"{}/apps\"", src.host))
            && mirrors.contains(&format!("\"{}/mirror/apps\"", dst.host)),
        "{mirrors}"
    );
    assert_eq!(itms.list(&owned).await.unwrap().items.len(), 1);
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "mirror-ops");
    let reasons: Vec<String> =
        events.list(&Default::default()).await.unwrap().items.into_iter().filter_map(|e| e.reason).collect();
    assert!(reasons.iter().any(|r| r == "Started") && reasons.iter().any(|r| r == "Mirrored"), "{reasons:?}");

    // The spec changes: the tagged image goes, so its ITMS is pruned; the IDMS stays.
    let patch = json!({"spec": spec(vec![db.clone()])});
    api.patch("apps", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let st = finished(&api, "apps", 60).await;
    assert_eq!(st.observed_generation, Some(2));
    assert_eq!(st.counts.unwrap().total, 1);
    assert!(itms.list(&owned).await.unwrap().items.is_empty(), "stale ITMS not pruned");
    assert_eq!(idms.list(&owned).await.unwrap().items.len(), 1);

    // Another namespace's image set mirrors, but cannot change cluster-wide objects.
    let tenant: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), "tenant-ns");
    tenant.create(&PostParams::default(), &obj("tenant-ns", vec![db.clone()])).await.unwrap();
    let st = finished(&tenant, "apps", 60).await;
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True", "{}", ready.message);
    assert!(ready.message.contains("not applied") && ready.message.contains("tenant-ns"), "{}", ready.message);
    let theirs = kube::api::ListParams::default().labels("mirror.openshift.io/owned-by=tenant-ns.apps");
    assert!(idms.list(&theirs).await.unwrap().items.is_empty());
    assert!(tenant.get("apps").await.unwrap().metadata.finalizers.unwrap_or_default().is_empty());

    // Deleting the image set removes what it produced, then the image set itself.
    api.delete("apps", &DeleteParams::default()).await.unwrap();
    for _ in 0..300 {
        if api.get_opt("apps").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(api.get_opt("apps").await.unwrap().is_none(), "finalizer not removed");
    assert!(idms.list(&owned).await.unwrap().items.is_empty(), "IDMS left behind");
    tenant.delete("apps", &DeleteParams::default()).await.unwrap();
}

fn runs_started(admin: &str) -> Option<u64> {
    let text = reqwest::blocking::get(format!("http://{admin}/metrics")).ok()?.text().ok()?;
    text.lines().find_map(|l| l.strip_prefix("imageset_operator_runs_total ")).and_then(|v| v.parse().ok())
}

/// Two replicas: only the one holding the Lease reconciles and copies; when it goes, the
/// other takes over.
#[tokio::test]
async fn two_replicas_only_the_leader_copies() {
    let _turn = OPERATOR.lock().await;
    use support::content::{Format, Pusher};
    let (src, dst, ()) = registries(|src| {
        let push = Pusher::new(src);
        push.image("ha/one", "v1", Format::Oci, ("linux", "amd64"), &[(81, 1024)]);
        push.image("ha/two", "v1", Format::Oci, ("linux", "amd64"), &[(82, 1024)]);
    });
    let cp = cluster::shared();
    let client = cp.client().await;
    clear_left_behind(&client).await;
    cluster::ensure_namespace(&client, "ha-ops").await;
    let dir = support::temp_dir("operator-ha-");
    let kubeconfig = service_account_kubeconfig_in(cp, &client, dir.path(), "ha-ops").await;
    let start = |n: usize| {
        let admin = format!("127.0.0.1:{}", support::free_port());
        let own = dir.path().join(format!("replica-{n}"));
        std::fs::create_dir_all(&own).unwrap();
        let flags = ["--namespace=ha-ops", "--lease-duration=3"];
        let g = operator_as(&kubeconfig, &own, &admin, &flags, &[("POD_NAME", format!("replica-{n}"))], "operator");
        (g, admin)
    };
    let (first, admin1) = start(1);
    let (second, admin2) = start(2);
    let spec = |images: &[&str]| {
        json!({
            "destination": format!("docker://{}/ha", dst.host),
            "registries": [{"host": src.host, "insecure": true}, {"host": dst.host, "insecure": true}],
            "mirror": {"additionalImages": images.iter().map(|i| json!({"name": format!("{}/{i}", src.host)})).collect::<Vec<_>>()},
        })
    };
    let obj: ImageSetConfiguration = serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
        "metadata": {"name": "ha"}, "spec": spec(&["ha/one:v1"]),
    }))
    .unwrap();
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), "ha-ops");
    api.create(&PostParams::default(), &obj).await.unwrap();
    let st = finished(&api, "ha", 60).await;
    assert_eq!(st.counts.unwrap().failed, 0);
    let (a1, a2) = (admin1.clone(), admin2.clone());
    let (r1, r2) = tokio::task::spawn_blocking(move || (runs_started(&a1), runs_started(&a2))).await.unwrap();
    let (leader, standby) = match (r1.unwrap_or(0), r2.unwrap_or(0)) {
        (n, 0) if n > 0 => ((first, admin1), (second, admin2)),
        (0, n) if n > 0 => ((second, admin2), (first, admin1)),
        other => panic!("runs started by the two replicas: {other:?} (exactly one should copy)"),
    };
    // The leader goes; the standby takes the Lease and follows the next change.
    drop(leader);
    let patch = json!({"spec": spec(&["ha/one:v1", "ha/two:v1"])});
    api.patch("ha", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let st = finished(&api, "ha", 60).await;
    assert_eq!((st.observed_generation, st.counts.unwrap().total), (Some(2), 2));
    let a = standby.1.clone();
    let runs = tokio::task::spawn_blocking(move || runs_started(&a)).await.unwrap();
    assert!(runs.unwrap_or(0) >= 1, "the standby did not take over");
    api.delete("ha", &DeleteParams::default()).await.unwrap();
    drop(standby);
}

/// A source registry that answers 503: the run ends Degraded with the reason and the failed
/// images listed; when the registry is back the image set recovers by itself. An invalid
/// spec is reported once and not retried.
#[tokio::test]
async fn a_registry_outage_degrades_then_recovers_and_invalid_specs_wait() {
    let _turn = OPERATOR.lock().await;
    use support::content::{Format, Pusher};
    use support::proxy::{Fault, FaultAction, Proxy};
    let (src, dst, (proxy, image)) = registries(|src| {
        let image = Pusher::new(src).image("outage/app", "v1", Format::Oci, ("linux", "amd64"), &[(91, 2048)]);
        (Proxy::start(&src.host), image)
    });
    proxy.add_fault(Fault::new(None, "/v2/", usize::MAX, FaultAction::Status(503)));
    let cp = cluster::shared();
    let client = cp.client().await;
    clear_left_behind(&client).await;
    cluster::ensure_namespace(&client, "outage").await;
    let dir = support::temp_dir("operator-outage-");
    let admin = format!("127.0.0.1:{}", support::free_port());
    let flags = ["--namespace=outage", "--leader-election=false", "--retry-interval=2", "--retry-times=1"];
    let _operator = operator(cp, dir.path(), &admin, &flags).await;
    let obj = image_set(
        "app",
        format!("docker://{}/m", dst.host),
        &[&proxy.host, &dst.host],
        &[format!("{}/outage/app:v1", proxy.host)],
    );
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), "outage");
    api.create(&PostParams::default(), &obj).await.unwrap();
    let st = finished(&api, "app", 60).await;
    let degraded = st.conditions.iter().find(|c| c.type_ == "Degraded").unwrap();
    assert_eq!((degraded.status.as_str(), degraded.reason.as_str()), ("True", "ImagesFailed"), "{}", degraded.message);
    assert_eq!(st.counts.as_ref().unwrap().failed, 1);
    assert!(st.failed_images[0].reason.contains("503"), "{:?}", st.failed_images);
    assert!(st.failed_images[0].source.contains("outage/app:v1"));
    // The registry comes back: the next attempt (after --retry-interval) succeeds unaided.
    proxy.clear_faults();
    let mut ready = None;
    for _ in 0..600 {
        let st = api.get("app").await.unwrap().status.unwrap_or_default();
        if st.conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True") {
            ready = Some(st);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let st = ready.expect("not Ready within 60s of the registry's return");
    assert!(st.conditions.iter().any(|c| c.type_ == "Degraded" && c.status == "False"));
    assert!(st.failed_images.is_empty());
    let got = support::sha256(&support::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/m/outage/app:v1", dst.host),
    ]));
    assert_eq!(got, image.digest);

    // An invalid spec: Degraded naming the field, and no reconcile loop. Admission refuses
    // most invalid specs; a version range upside down is refused by a ValidatingAdmissionPolicy
    // this control plane does not have (as a cluster without it, or an image set admitted
    // before it was installed), so it reaches the controller.
    let channel = json!({"name": "stable-4.18", "minVersion": "4.18.5", "maxVersion": "4.18.1"});
    let bad = json!({"spec": {"mirror": {"platform": {"channels": [channel]}}}});
    api.patch("app", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&bad)).await.unwrap();
    let mut msg = String::new();
    for _ in 0..300 {
        let obj = api.get("app").await.unwrap();
        let st = obj.status.unwrap_or_default();
        if st.observed_generation == obj.metadata.generation
            && let Some(c) = st.conditions.iter().find(|c| c.type_ == "Degraded" && c.reason == "InvalidSpec")
        {
            msg = c.message.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(msg.contains("spec.mirror.platform.channels[0].minVersion"), "{msg:?}");
    let reconciles = || {
        let admin = admin.clone();
        tokio::task::spawn_blocking(move || {
            let text = reqwest::blocking::get(format!("http://{admin}/metrics")).unwrap().text().unwrap();
            text.lines()
                .find_map(|l| l.strip_prefix("imageset_operator_reconciles_total "))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap()
        })
    };
    let metrics = {
        let admin = admin.clone();
        tokio::task::spawn_blocking(move || {
            reqwest::blocking::get(format!("http://{admin}/metrics")).unwrap().text().unwrap()
        })
        .await
        .unwrap()
    };
    assert!(metrics.contains("imageset_operator_failures_total{reason=\"ImagesFailed\"} "), "{metrics}");
    assert!(metrics.contains("imageset_operator_failures_total{reason=\"InvalidSpec\"} "), "{metrics}");
    let bytes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("imageset_operator_bytes_copied_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(bytes >= 2048, "{metrics}");
    assert!(metrics.contains("imageset_operator_runs_active 0"), "{metrics}");
    let before = reconciles().await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = reconciles().await.unwrap();
    api.delete("app", &DeleteParams::default()).await.unwrap();
    assert!(after - before <= 1, "an invalid spec was reconciled {} times in 5s", after - before);
    drop(src);
}

/// The operator process, killed with SIGKILL when dropped or asked.
struct Operator(std::process::Child);

impl Operator {
    fn start(kubeconfig: &std::path::Path, cache: &std::path::Path, log: &std::path::Path) -> Operator {
        let out = std::fs::File::create(log).unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_imageset-operator"))
            .args(["run", &format!("--admin-addr=127.0.0.1:{}", support::free_port())])
            .arg(format!("--cache-dir={}", cache.display()))
            .args(["--namespace=resume", "--leader-election=false"])
            .env("KUBECONFIG", kubeconfig)
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Operator(child)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// kill -9 mid-copy, start again with the same cache: the run completes and the layer that
/// was half downloaded is not fetched again from the start (only its tail, by Range).
#[tokio::test]
async fn a_killed_operator_resumes_and_fetches_nothing_twice() {
    let _turn = OPERATOR.lock().await;
    use support::content::{Format, Pusher, seeded_bytes};
    use support::proxy::{Fault, FaultAction, Proxy};
    const BIG: usize = 8 << 20;
    let (src, dst, (proxy, image)) = registries(|src| {
        let image =
            Pusher::new(src).image("resume/big", "v1", Format::Oci, ("linux", "amd64"), &[(95, BIG), (96, 1024)]);
        (Proxy::start(&src.host), image)
    });
    let layer = support::sha256(&seeded_bytes(95, BIG));
    let stall = FaultAction::Stall { after: Some(3 << 20), duration: Duration::from_secs(120) };
    proxy.add_fault(Fault::new(Some("GET"), &format!("/blobs/{layer}"), 1, stall));
    let cp = cluster::shared();
    let client = cp.client().await;
    clear_left_behind(&client).await;
    cluster::ensure_namespace(&client, "resume").await;
    let dir = support::temp_dir("operator-resume-");
    let cache = dir.path().join("cache");
    let kubeconfig = service_account_kubeconfig_in(cp, &client, dir.path(), "resume").await;
    let first = Operator::start(&kubeconfig, &cache, &dir.path().join("first.log"));
    let obj = image_set(
        "big",
        format!("docker://{}/r", dst.host),
        &[&proxy.host, &dst.host],
        &[format!("{}/resume/big:v1", proxy.host)],
    );
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), "resume");
    api.create(&PostParams::default(), &obj).await.unwrap();
    let mut reached = 0;
    for _ in 0..600 {
        reached = proxy.bytes_sent_for(&layer);
        if reached >= 3 << 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reached >= 3 << 20, "the layer download never reached the stall ({reached} bytes)");
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(first); // SIGKILL mid-download
    proxy.clear_faults();
    let _second = Operator::start(&kubeconfig, &cache, &dir.path().join("second.log"));
    let st = finished(&api, "big", 90).await;
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True", "{}", ready.message);
    // Sent before the kill, then the rest from what the first operator had kept: a download
    // started over would make it at least BIG + sent. Bytes in flight at the kill (socket and
    // write buffers) are fetched again, so allow up to 2 MiB of them.
    let total = proxy.bytes_sent_for(&layer);
    // Delete first, so that a failure below leaves no image set retrying for the next test.
    api.delete("big", &DeleteParams::default()).await.unwrap();
    assert!(
        total >= BIG as u64 && total + (1 << 20) <= BIG as u64 + reached,
        "{total} bytes of an {BIG}-byte layer sent in all, {reached} of them before the kill"
    );
    let got = support::sha256(&support::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/r/resume/big:v1", dst.host),
    ]));
    assert_eq!(got, image.digest);
    drop(src);
}

/// The shell-guarded operator's exit once asked to stop (SIGTERM; SIGKILL 2 s later).
fn stop(g: support::Guarded) -> String {
    let log = g.log.clone();
    drop(g);
    std::fs::read_to_string(log).unwrap()
}

/// A registry that hangs (accepts, never answers) is given up after `--unreachable-after`,
/// so its image set's run ends instead of holding the only copy slot and the healthy image
/// set behind it gets its turn. Credentials from the image sets' Secrets never reach the log,
/// status or events, even when refused. SIGTERM stops a run under way and the operator exits
/// at once.
#[tokio::test]
async fn a_hanging_registry_holds_no_slot_and_secrets_stay_out_of_sight() {
    let _turn = OPERATOR.lock().await;
    use base64::Engine as _;
    use support::content::{Format, Pusher};
    use support::proxy::{Fault, FaultAction, Proxy};
    use support::registry::{Registry, RegistryOptions};
    const PASSWORD: &str = "pw-6c1f0e-never-shown";
    const WRONG: &str = "wrong-9b27d4-never-shown";
    let (src, dst, (private, proxy, images)) = registries(|src| {
        let private = Registry::start(RegistryOptions {
            htpasswd: Some(("mirror".into(), PASSWORD.into())),
            ..Default::default()
        });
        let healthy = Pusher::new(&private).image("slot/app", "v1", Format::Oci, ("linux", "amd64"), &[(71, 1024)]);
        let push = Pusher::new(src);
        for i in 0..5u64 {
            push.image(&format!("slot/hang{i}"), "v1", Format::Oci, ("linux", "amd64"), &[(72 + i, 1024)]);
        }
        (private, Proxy::start(&src.host), healthy)
    });
    let hang = FaultAction::Stall { after: None, duration: Duration::from_secs(600) };
    proxy.add_fault(Fault::new(None, "/v2/", usize::MAX, hang));
    let cp = cluster::shared();
    let client = cp.client().await;
    clear_left_behind(&client).await;
    cluster::ensure_namespace(&client, "slots").await;
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(client.clone(), "slots");
    for (name, password) in [("good", PASSWORD), ("bad", WRONG)] {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("mirror:{password}"));
        let config = json!({"auths": {private.host.clone(): {"auth": auth}}}).to_string();
        let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
            "metadata": {"name": name}, "type": "kubernetes.io/dockerconfigjson",
            "stringData": {".dockerconfigjson": config},
        }))
        .unwrap();
        let _ = secrets.delete(name, &DeleteParams::default()).await;
        secrets.create(&PostParams::default(), &secret).await.unwrap();
    }
    let dir = support::temp_dir("operator-slots-");
    let flags = [
        // Image sets in "slots" may not apply cluster objects: no finalizer to wait on.
        "--namespace=slots-operator",
        "--leader-election=false",
        "--max-concurrent-runs=1",
        "--stall-timeout=1",
        "--unreachable-after=2",
        "--retry-times=12",
        "--retry-interval=600",
        "--log-level=imageset_operator=debug,info",
    ];
    let admin = format!("127.0.0.1:{}", support::free_port());
    let operator = operator(cp, dir.path(), &admin, &flags).await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), "slots");
    // Five images behind the hanging proxy, and one from the private registry with a wrong
    // password.
    let mut hanging: Vec<String> = (0..5).map(|i| format!("{}/slot/hang{i}:v1", proxy.host)).collect();
    hanging.push(format!("{}/slot/app:v1", private.host));
    let mut dead =
        image_set("dead", format!("docker://{}/d", dst.host), &[&proxy.host, &private.host, &dst.host], &hanging);
    dead.spec.auth_secret_ref = Some(serde_json::from_value(json!({"name": "bad"})).unwrap());
    api.create(&PostParams::default(), &dead).await.unwrap();
    for _ in 0..300 {
        let st = api.get("dead").await.unwrap().status.unwrap_or_default();
        if st.conditions.iter().any(|c| c.type_ == "Progressing" && c.status == "True") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = std::time::Instant::now();
    let mut healthy = image_set(
        "healthy",
        format!("docker://{}/h", dst.host),
        &[&private.host, &dst.host],
        &[format!("{}/slot/app:v1", private.host)],
    );
    healthy.spec.auth_secret_ref = Some(serde_json::from_value(json!({"name": "good"})).unwrap());
    api.create(&PostParams::default(), &healthy).await.unwrap();
    let st = finished(&api, "healthy", 120).await;
    let waited = started.elapsed();
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.status, "True", "{}", ready.message);
    // Without giving up on the registry the dead set would hold the slot for 12 retries of
    // each hanging request (over two minutes).
    assert!(waited < Duration::from_secs(60), "the healthy image set waited {waited:?} for a copy slot");
    let st = finished(&api, "dead", 60).await;
    assert_eq!(st.counts.as_ref().unwrap().failed, 6, "{:?}", st.failed_images);
    let unreachable = st.failed_images.iter().filter(|f| f.reason.contains("unreachable")).count();
    assert!(unreachable >= 1, "{:?}", st.failed_images);
    let denied = st.failed_images.iter().find(|f| f.source.contains(&private.host)).unwrap();
    assert!(denied.reason.contains("access denied"), "{denied:?}");
    let got = support::sha256(&support::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/h/slot/app:v1", dst.host),
    ]));
    assert_eq!(got, images.digest);

    // A run under way when SIGTERM comes is stopped and the operator exits within the 2 s the
    // guard allows before SIGKILL (whose exit status would show in the log's absence of the
    // shutdown line).
    let patch = json!({"spec": {"mirror": {"additionalImages": [{"name": format!("{}/slot/hang0:v1", proxy.host)}]}}});
    api.patch("dead", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let mut running = false;
    for _ in 0..300 {
        let obj = api.get("dead").await.unwrap();
        let st = obj.status.unwrap_or_default();
        if st.observed_generation == obj.metadata.generation
            && st.conditions.iter().any(|c| c.type_ == "Progressing" && c.status == "True")
        {
            running = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(running, "the second run of the dead image set never started");
    let log = stop(operator);
    assert!(log.contains("runs under way stopped"), "no graceful stop in the log:\n{log}");

    // No secret anywhere: log, status, events.
    let encoded: Vec<String> = [PASSWORD, WRONG]
        .iter()
        .map(|p| base64::engine::general_purpose::STANDARD.encode(format!("mirror:{p}")))
        .collect();
    let status = serde_json::to_string(&api.list(&Default::default()).await.unwrap().items).unwrap();
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), "slots");
    let events = serde_json::to_string(&events.list(&Default::default()).await.unwrap().items).unwrap();
    assert!(events.contains("ImagesFailed"), "no failure event: {events}");
    for (what, text) in [("operator log", &log), ("image sets", &status), ("events", &events)] {
        for secret in [PASSWORD, WRONG, &encoded[0], &encoded[1]] {
            assert!(!text.contains(secret), "{what} shows a credential");
        }
    }
    api.delete("dead", &DeleteParams::default()).await.unwrap();
    api.delete("healthy", &DeleteParams::default()).await.unwrap();
    drop(src);
}

/// `clusterResources.apply: Hold`: nothing is applied; status lists the pending changes (what
/// each would create or change, field by field, and whether it reboots nodes) under a digest;
/// approving that digest applies exactly those changes, and the next change is held again.
#[tokio::test]
async fn held_changes_wait_for_approval_of_their_digest() {
    let _turn = OPERATOR.lock().await;
    use support::content::{Format, Pusher};
    let (src, dst, (web, db)) = registries(|src| {
        let push = Pusher::new(src);
        let web = push.image("held/web", "v1", Format::Oci, ("linux", "amd64"), &[(61, 1024)]);
        let db = push.image("other/db", "v1", Format::Oci, ("linux", "amd64"), &[(62, 1024)]);
        (web, db)
    });
    let cp = cluster::shared();
    let client = cp.client().await;
    clear_left_behind(&client).await;
    cluster::ensure_namespace(&client, "held-ops").await;
    let dir = support::temp_dir("operator-held-");
    let admin = format!("127.0.0.1:{}", support::free_port());
    let _operator = operator(cp, dir.path(), &admin, &["--namespace=held-ops", "--leader-election=false"]).await;
    let by_digest = |name: &str, digest: &str| format!("{}/{name}@{digest}", src.host);
    let spec = |images: Vec<String>, approved: Option<&str>| {
        json!({
            "destination": format!("docker://{}/held", dst.host),
            "registries": [{"host": src.host, "insecure": true}, {"host": dst.host, "insecure": true}],
            "clusterResources": {"apply": "Hold", "approvedChangesDigest": approved},
            "mirror": {"additionalImages": images.into_iter().map(|n| json!({"name": n})).collect::<Vec<_>>()},
        })
    };
    let obj: ImageSetConfiguration = serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
        "metadata": {"name": "held"}, "spec": spec(vec![by_digest("held/web", &web.digest)], None),
    }))
    .unwrap();
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), "held-ops");
    api.create(&PostParams::default(), &obj).await.unwrap();
    let owned = kube::api::ListParams::default().labels("mirror.openshift.io/owned-by=held-ops.held");
    let idms = dynamic(&client, "config.openshift.io", "v1", "ImageDigestMirrorSet");

    // Held: one IDMS to create (creating an IDMS reboots no node), nothing applied.
    let st = finished(&api, "held", 60).await;
    let p = st.pending_changes.clone().expect("pending changes in status");
    assert_eq!(p.objects.len(), 1, "{p:?}");
    assert_eq!((p.objects[0].action.as_str(), p.objects[0].kind.as_str()), ("Create", "ImageDigestMirrorSet"));
    assert!(!p.reboots_nodes);
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert!(ready.message.contains(&p.digest) && ready.message.contains("held for review"), "{}", ready.message);
    assert!(idms.list(&owned).await.unwrap().items.is_empty(), "a held IDMS was applied");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "held-ops");
    let reasons: Vec<String> =
        events.list(&Default::default()).await.unwrap().items.into_iter().filter_map(|e| e.reason).collect();
    assert!(reasons.iter().any(|r| r == "ChangesHeld"), "{reasons:?}");

    // Approved: applied, nothing pending.
    let approve = |images: Vec<String>, digest: &str| json!({"spec": spec(images, Some(digest))});
    let patch = approve(vec![by_digest("held/web", &web.digest)], &p.digest);
    api.patch("held", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let st = finished(&api, "held", 60).await;
    assert_eq!(st.pending_changes, None);
    let list = idms.list(&owned).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let applied = list.items[0].clone();

    // A new image in another namespace changes the IDMS: held, named field by field, and
    // marked as rebooting nodes; the old approval does not cover it.
    let both = vec![by_digest("held/web", &web.digest), by_digest("other/db", &db.digest)];
    let patch = approve(both.clone(), &p.digest);
    api.patch("held", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let st = finished(&api, "held", 60).await;
    let p2 = st.pending_changes.clone().expect("the change is held");
    assert_ne!(p2.digest, p.digest);
    assert!(p2.reboots_nodes);
    assert_eq!(p2.objects[0].action, "Update");
    assert!(p2.objects[0].fields.iter().any(|f| f.starts_with("spec.imageDigestMirrors[")), "{:?}", p2.objects[0]);
    let now = idms.list(&owned).await.unwrap().items[0].clone();
    assert_eq!(now.metadata.resource_version, applied.metadata.resource_version, "a held change was applied");
    let patch = approve(both, &p2.digest);
    api.patch("held", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await.unwrap();
    let st = finished(&api, "held", 60).await;
    assert_eq!(st.pending_changes, None);
    let mirrors = serde_json::to_string(&idms.list(&owned).await.unwrap().items[0].data["spec"]).unwrap();
    assert!(mirrors.contains(&format!("\"{}/other\"", src.host)), "{mirrors}");

    // Later runs took manifests from the cache.
    let metrics = tokio::task::spawn_blocking(move || {
        reqwest::blocking::get(format!("http://{admin}/metrics")).unwrap().text().unwrap()
    })
    .await
    .unwrap();
    let value = |name: &str| -> u64 {
        metrics.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.parse().ok()).unwrap()
    };
    assert!(value("imageset_operator_cache_misses_total") >= 4, "{metrics}");
    assert!(value("imageset_operator_cache_hits_total") >= 1, "{metrics}");
    api.delete("held", &DeleteParams::default()).await.unwrap();
    for _ in 0..300 {
        if api.get_opt("held").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(idms.list(&owned).await.unwrap().items.is_empty(), "IDMS left behind");
}
