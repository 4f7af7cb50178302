//! Image sets sharing one operator: names that flatten alike never share a cluster object,
//! an object the operator did not create for an image set is left alone (and the set says
//! so), and two sets pushing the same blobs to one registry at once both finish.

mod support;

use std::time::Duration;

use imageset_operator::api::ImageSetConfiguration;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use support::cluster;
use support::operator::{OPERATOR, clear_left_behind, dynamic, finished, operator};

fn image_set(ns: &str, name: &str, destination: String, hosts: &[&str], images: &[String]) -> ImageSetConfiguration {
    let registries: Vec<_> = hosts.iter().map(|h| json!({"host": h, "insecure": true})).collect();
    let images: Vec<_> = images.iter().map(|i| json!({"name": i})).collect();
    serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"destination": destination, "registries": registries, "mirror": {"additionalImages": images}},
    }))
    .unwrap()
}

fn ready(
    st: &imageset_operator::api::status::ImageSetStatus,
) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    st.conditions.iter().find(|c| c.type_ == "Ready").expect("a Ready condition")
}

/// A source registry holding one image (`repo`:`tag`, one layer from `seed`), an empty
/// destination, and the control plane's admin with `namespaces` created and no image set
/// left behind.
async fn world(
    repo: &'static str,
    tag: &'static str,
    seed: u64,
    namespaces: &[&str],
) -> (support::registry::Registry, support::registry::Registry, support::content::Pushed, kube::Client) {
    use support::content::{Format, Pusher};
    let (src, dst, image) = std::thread::spawn(move || {
        use support::registry::{Registry, RegistryOptions};
        let src = Registry::start(RegistryOptions::default());
        let dst = Registry::start(RegistryOptions::default());
        let image = Pusher::new(&src).image(repo, tag, Format::Oci, ("linux", "amd64"), &[(seed, 3000)]);
        (src, dst, image)
    })
    .join()
    .unwrap();
    let client = cluster::shared().client().await;
    clear_left_behind(&client).await;
    for ns in namespaces {
        cluster::ensure_namespace(&client, ns).await;
    }
    (src, dst, image, client)
}

/// `team-a/x` and `team/a-x` flatten to the same `team-a-x`: each keeps its own IDMS pointing
/// at its own destination. An IDMS an admin created under the name a third set would use is
/// not touched, and that set reports `Conflict` naming it.
#[tokio::test]
async fn sets_named_alike_keep_their_own_objects_and_foreign_objects_are_left_alone() {
    let _turn = OPERATOR.lock().await;
    let (src, dst, pinned, client) = world("apps/db", "v2", 81, &["team-a", "team"]).await;
    let cp = cluster::shared();
    let dir = support::temp_dir("operator-shared-");
    let _operator = operator(
        cp,
        dir.path(),
        &format!("127.0.0.1:{}", support::free_port()),
        &["--namespace=team", "--allowed-namespaces=team,team-a"],
    )
    .await;
    let db = format!("{}/apps/db@{}", src.host, pinned.digest);
    let hosts = [src.host.as_str(), dst.host.as_str()];
    let a: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), "team-a");
    let b: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), "team");
    a.create(
        &PostParams::default(),
        &image_set("team-a", "x", format!("docker://{}/one", dst.host), &hosts, std::slice::from_ref(&db)),
    )
    .await
    .unwrap();
    b.create(
        &PostParams::default(),
        &image_set("team", "a-x", format!("docker://{}/two", dst.host), &hosts, std::slice::from_ref(&db)),
    )
    .await
    .unwrap();
    for (api, name) in [(&a, "x"), (&b, "a-x")] {
        let st = finished(api, name, 90).await;
        assert_eq!(ready(&st).status, "True", "{name}: {} {:?}", ready(&st).message, st.failed_images);
    }
    let idms = dynamic(&client, "config.openshift.io", "v1", "ImageDigestMirrorSet");
    for (owner, prefix) in [("team-a.x", "one"), ("team.a-x", "two")] {
        let lp = kube::api::ListParams::default().labels(&format!("mirror.openshift.io/owned-by={owner}"));
        let list = idms.list(&lp).await.unwrap().items;
        assert_eq!(list.len(), 1, "{owner}: {:?}", list.iter().map(|o| o.metadata.name.clone()).collect::<Vec<_>>());
        let spec = serde_json::to_string(&list[0].data["spec"]).unwrap();
        assert!(spec.contains(&format!("\"{}/{prefix}/apps\"", dst.host)), "{owner}'s IDMS: {spec}");
    }

    // An admin's IDMS under the name the set `team/z` would use.
    let name = format!("{}-idms-generic-0", imageset_operator::controller::naming_prefix("team", "z"));
    let admins: kube::api::DynamicObject = serde_json::from_value(json!({
        "apiVersion": "config.openshift.io/v1", "kind": "ImageDigestMirrorSet",
        "metadata": {"name": name},
        "spec": {"imageDigestMirrors": [{"source": "example.com/admin", "mirrors": ["mirror.example.com/admin"]}]},
    }))
    .unwrap();
    let created = idms.create(&PostParams::default(), &admins).await.unwrap();
    b.create(&PostParams::default(), &image_set("team", "z", format!("docker://{}/three", dst.host), &hosts, &[db]))
        .await
        .unwrap();
    let st = finished(&b, "z", 90).await;
    let r = ready(&st);
    assert_eq!((r.status.as_str(), r.reason.as_str()), ("False", "Conflict"), "{}", r.message);
    assert!(r.message.contains(&name), "the Conflict does not name the object: {}", r.message);
    let after = idms.get(&name).await.unwrap();
    assert_eq!(after.metadata.resource_version, created.metadata.resource_version, "the admin's IDMS was modified");
    assert!(after.metadata.labels.unwrap_or_default().is_empty());
    idms.delete(&name, &DeleteParams::default()).await.unwrap();
    // What a deleted set kept on the volume goes with it: its record of what it needs from
    // the cache (so `cache gc` may free it) and its working directory.
    let refs = dir.path().join("cache/.imageset-operator/cache/refs");
    let record = |key: &str| refs.join(format!("{}.json", imageset_operator::pipeline::copy::refs_name(key)));
    let keys = ["team-a/x", "team/a-x", "team/z"];
    assert!(keys.iter().all(|k| record(k).is_file()), "no cache records in {refs:?}");
    for (api, name) in [(&a, "x"), (&b, "a-x"), (&b, "z")] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    let runs = dir.path().join("cache/runs");
    for _ in 0..100 {
        if keys.iter().all(|k| !record(k).exists() && !runs.join(k.replace('/', "_")).exists()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("left behind: {:?}", std::fs::read_dir(&refs).unwrap().flatten().map(|e| e.file_name()).collect::<Vec<_>>());
}

/// Two image sets pushing the same blobs into one registry at the same time (the operator's
/// one copy engine keeps each blob's upload single): both finish with no failed image, and
/// the source served each blob once.
#[tokio::test]
async fn two_sets_pushing_the_same_blobs_at_once_both_finish() {
    let _turn = OPERATOR.lock().await;
    use support::content::{Format, Pusher};
    let (src, dst, images) = std::thread::spawn(|| {
        use support::registry::{Registry, RegistryOptions};
        let src = Registry::start(RegistryOptions::default());
        let dst = Registry::start(RegistryOptions::default());
        let push = Pusher::new(&src);
        // Six tags sharing a 3 MB base layer, each with a small layer of its own.
        let images: Vec<String> = (0..6)
            .map(|i| {
                push.image(
                    "shared/app",
                    &format!("v{i}"),
                    Format::Oci,
                    ("linux", "amd64"),
                    &[(90, 3_000_000), (91 + i, 4096)],
                );
                format!("{}/shared/app:v{i}", src.host)
            })
            .collect();
        (src, dst, images)
    })
    .join()
    .unwrap();
    let cp = cluster::shared();
    let client = cp.client().await;
    clear_left_behind(&client).await;
    for ns in ["race-a", "race-b"] {
        cluster::ensure_namespace(&client, ns).await;
    }
    let dir = support::temp_dir("operator-race-");
    let _operator = operator(
        cp,
        dir.path(),
        &format!("127.0.0.1:{}", support::free_port()),
        &["--namespace=race-a", "--max-concurrent-runs=2"],
    )
    .await;
    let hosts = [src.host.as_str(), dst.host.as_str()];
    let apis: Vec<Api<ImageSetConfiguration>> =
        ["race-a", "race-b"].iter().map(|ns| Api::namespaced(client.clone(), ns)).collect();
    for (api, ns) in apis.iter().zip(["race-a", "race-b"]) {
        let set = image_set(ns, "same", format!("docker://{}/{ns}", dst.host), &hosts, &images);
        api.create(&PostParams::default(), &set).await.unwrap();
    }
    for api in &apis {
        let st = finished(api, "same", 120).await;
        let counts = st.counts.clone().expect("counts");
        assert_eq!((counts.total, counts.failed), (6, 0), "{:?} {:?}", ready(&st), st.failed_images);
        assert_eq!(ready(&st).status, "True", "{}", ready(&st).message);
    }
    for api in &apis {
        api.delete("same", &DeleteParams::default()).await.unwrap();
    }
}

fn metric(admin: &str, name: &str) -> u64 {
    let text = reqwest::blocking::get(format!("http://{admin}/metrics")).unwrap().text().unwrap();
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.parse().ok()).unwrap()
}

/// Two installations side by side, each watching its own namespace (`--watch-namespaces`):
/// each reconciles its namespace's image set only (one run each, one `Started` event and one
/// finalizer per set, neither named in the other's log), and an image set in a namespace
/// neither watches is left untouched. One runs under Roles in its own namespace only (what
/// the chart renders with `watchNamespaces`), the other under the cluster-wide `config/rbac`,
/// so that the flag alone keeps it out of the other's namespace.
#[tokio::test]
async fn installations_watching_disjoint_namespaces_never_share_an_image_set() {
    let _turn = OPERATOR.lock().await;
    use imageset_operator::controller::rbac::Install;
    use support::operator::{installation_kubeconfig, operator_as, service_account_kubeconfig_in};
    let namespaces = ["watch-a", "watch-b", "watch-none"];
    let (src, dst, pinned, client) = world("watch/app", "v1", 85, &namespaces).await;
    let cp = cluster::shared();
    let dir = support::temp_dir("operator-watch-");
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    for d in [&dir_a, &dir_b] {
        std::fs::create_dir_all(d).unwrap();
    }
    let watched = ["watch-a".to_string()];
    let install = Install {
        name: "watch-a-operator",
        namespace: "watch-a",
        service_account: "operator",
        watch_namespaces: &watched,
    };
    let kubeconfig_a = installation_kubeconfig(cp, &client, &dir_a, &install).await;
    let kubeconfig_b = service_account_kubeconfig_in(cp, &client, &dir_b, "watch-b").await;
    let (admin_a, admin_b) =
        (format!("127.0.0.1:{}", support::free_port()), format!("127.0.0.1:{}", support::free_port()));
    let flags = |ns: &str| [format!("--namespace={ns}"), format!("--watch-namespaces={ns}")];
    let (fa, fb) = (flags("watch-a"), flags("watch-b"));
    let a = operator_as(&kubeconfig_a, &dir_a, &admin_a, &[&fa[0], &fa[1]], &[], "operator");
    let b = operator_as(&kubeconfig_b, &dir_b, &admin_b, &[&fb[0], &fb[1]], &[], "operator");
    let hosts = [src.host.as_str(), dst.host.as_str()];
    let image = format!("{}/watch/app@{}", src.host, pinned.digest);
    let apis: Vec<Api<ImageSetConfiguration>> =
        namespaces.iter().map(|ns| Api::namespaced(client.clone(), ns)).collect();
    // The unwatched namespace's set first: an operator watching it would meet it before the
    // others.
    for (api, ns) in apis.iter().rev().zip(namespaces.iter().rev()) {
        let set = image_set(ns, "x", format!("docker://{}/{ns}", dst.host), &hosts, std::slice::from_ref(&image));
        api.create(&PostParams::default(), &set).await.unwrap();
    }
    for api in &apis[..2] {
        let st = finished(api, "x", 90).await;
        assert_eq!(ready(&st).status, "True", "{} {:?}", ready(&st).message, st.failed_images);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let untouched = apis[2].get("x").await.unwrap();
    assert!(untouched.status.is_none(), "an unwatched image set was reconciled: {:?}", untouched.status);
    assert!(untouched.metadata.finalizers.unwrap_or_default().is_empty());
    let (ma, mb) = (admin_a.clone(), admin_b.clone());
    let runs = tokio::task::spawn_blocking(move || {
        (metric(&ma, "imageset_operator_runs_total"), metric(&mb, "imageset_operator_runs_total"))
    })
    .await
    .unwrap();
    assert_eq!(runs, (1, 1), "runs started by the two installations");
    for (api, ns) in apis.iter().zip(namespaces) {
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
        let events = events.list(&Default::default()).await.unwrap().items;
        let about_x: Vec<_> =
            events.iter().filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("x")).collect();
        let started = about_x.iter().filter(|e| e.reason.as_deref() == Some("Started")).count();
        let finalizers = api.get("x").await.unwrap().metadata.finalizers.unwrap_or_default();
        let ours = finalizers.iter().filter(|f| *f == imageset_operator::api::names::FINALIZER).count();
        if ns == "watch-none" {
            assert!(about_x.is_empty(), "events about an unwatched image set: {about_x:?}");
        } else {
            assert_eq!((started, ours), (1, 1), "{ns}: Started events and finalizers");
        }
    }
    let owned = |owner: &str| kube::api::ListParams::default().labels(&format!("mirror.openshift.io/owned-by={owner}"));
    let idms = dynamic(&client, "config.openshift.io", "v1", "ImageDigestMirrorSet");
    for owner in ["watch-a.x", "watch-b.x"] {
        assert_eq!(idms.list(&owned(owner)).await.unwrap().items.len(), 1, "{owner}'s IDMS");
    }
    for api in &apis {
        api.delete("x", &DeleteParams::default()).await.unwrap();
    }
    // Each installation removes its own set's objects and finalizer.
    for _ in 0..300 {
        if apis[0].get_opt("x").await.unwrap().is_none() && apis[1].get_opt("x").await.unwrap().is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for owner in ["watch-a.x", "watch-b.x"] {
        assert!(idms.list(&owned(owner)).await.unwrap().items.is_empty(), "{owner}'s IDMS left behind");
    }
    let (log_a, log_b) = (std::fs::read_to_string(&a.log).unwrap(), std::fs::read_to_string(&b.log).unwrap());
    assert!(log_a.contains("watch-a/x") && !log_a.contains("watch-b/x"), "A's log:\n{log_a}");
    assert!(log_b.contains("watch-b/x") && !log_b.contains("watch-a/x"), "B's log:\n{log_b}");
    assert!(!log_a.contains("watch-none") && !log_b.contains("watch-none"));
}
