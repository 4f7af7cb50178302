//! Archives in the cluster: `imageset-operator run --archive-dir` against the real apiserver
//! and registries of the test world, as its ServiceAccount. An image set with a `file://`
//! destination writes archives under `<archive-dir>/<namespace>/`; another with `spec.from`
//! imports them (or archives the command line wrote, copied there) into an empty registry with
//! the source registry stopped, and its cluster objects are applied; release signatures travel
//! beside the archives; paths that leave the archive directory are refused, at admission where
//! a CEL rule can tell and when the image set runs otherwise, and nothing is written.

mod support;

use std::path::Path;
use std::time::Duration;

use imageset_operator::api::ImageSetConfiguration;
use imageset_operator::api::status::ImageSetStatus;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};
use support::cluster;
use support::content::{Format, Pusher};
use support::operator::{OPERATOR, clear_left_behind, dynamic, finished, image_set_in, operator, ready};
use support::registry::{Registry, RegistryOptions};

/// The operator's namespace: its image sets may produce cluster-wide objects.
const NS: &str = "archive-ops";

fn image_set(name: &str, spec: Value) -> ImageSetConfiguration {
    image_set_in(NS, name, spec)
}

fn additional(images: &[&String]) -> Value {
    json!({"additionalImages": images.iter().map(|i| json!({"name": i})).collect::<Vec<_>>()})
}

fn insecure(hosts: &[&str]) -> Value {
    json!(hosts.iter().map(|h| json!({"host": h, "insecure": true})).collect::<Vec<_>>())
}

/// Creates an image set and waits for its run to end; returns its status.
async fn run(api: &Api<ImageSetConfiguration>, isc: ImageSetConfiguration, secs: u64) -> ImageSetStatus {
    let name = isc.metadata.name.clone().unwrap();
    api.create(&PostParams::default(), &isc).await.unwrap_or_else(|e| panic!("create {name}: {e}"));
    finished(api, &name, secs).await
}

/// Deletes image sets and waits until they are gone (their finalizer removes what they made).
async fn delete(api: &Api<ImageSetConfiguration>, names: &[&str]) {
    for name in names {
        let _ = api.delete(name, &DeleteParams::default()).await;
    }
    for _ in 0..300 {
        let mut left = 0;
        for name in names {
            left += usize::from(api.get_opt(name).await.unwrap().is_some());
        }
        if left == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("image sets {names:?} not deleted");
}

/// The digest of `reference` at `host` (plain HTTP), as skopeo reads it.
fn digest_at(host: &str, reference: &str) -> String {
    support::sha256(&support::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{host}/{reference}"),
    ]))
}

fn absent(host: &str, reference: &str) -> bool {
    let out = std::process::Command::new(support::require("skopeo"))
        .args(["inspect", "--raw", "--tls-verify=false", &format!("docker://{host}/{reference}")])
        .output()
        .unwrap();
    !out.status.success()
}

/// The objects of a kind an image set of [`NS`] owns (by its owner label), as JSON.
async fn owned(client: &kube::Client, group: &str, kind: &str, name: &str) -> Vec<Value> {
    let label = ListParams::default().labels(&format!("mirror.openshift.io/owned-by={NS}.{name}"));
    let items = dynamic(client, group, "v1", kind).list(&label).await.unwrap().items;
    items.into_iter().map(|o| serde_json::to_value(o).unwrap()).collect()
}

/// Copies a directory tree (regular files and directories).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Files in a directory (none when it does not exist).
fn files_in(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// (a) An image set writes `mirror_000001.tar` under the archive directory and applies
/// nothing; (b) with the source registry stopped, another imports them into an empty registry
/// (every digest as at the source), reaches Ready and its IDMS is applied, and a third naming
/// only one of the images imports only that one; (c) archives the command line wrote, copied
/// under the archive directory, are imported too.
#[tokio::test]
async fn archives_written_in_the_cluster_or_by_the_cli_are_imported_and_applied() {
    let _turn = OPERATOR.lock().await;
    let (mut src, dst, cli_dst, (web, db, tool)) = std::thread::spawn(|| {
        let src = Registry::start(RegistryOptions::default());
        let dst = Registry::start(RegistryOptions::default());
        let cli_dst = Registry::start(RegistryOptions::default());
        let push = Pusher::new(&src);
        let web = push.image("apps/web", "v1", Format::Oci, ("linux", "amd64"), &[(91, 4096), (92, 2048)]);
        let db = push.image("apps/db", "v2", Format::Docker, ("linux", "amd64"), &[(93, 3000)]);
        let tool = push.image("tools/cli", "v3", Format::Oci, ("linux", "amd64"), &[(94, 5000)]);
        (src, dst, cli_dst, (web, db, tool))
    })
    .join()
    .unwrap();
    let web_ref = format!("{}/apps/web:v1", src.host);
    let db_ref = format!("{}/apps/db@{}", src.host, db.digest);
    let tool_ref = format!("{}/tools/cli@{}", src.host, tool.digest);
    let dir = support::temp_dir("operator-archives-");
    let archives = dir.path().join("archives");
    std::fs::create_dir_all(&archives).unwrap();

    // (c), first half: the command line's mirror to disk, elsewhere, while the source is up.
    let cli_out = dir.path().join("cli-out");
    let isc = support::cli::write_isc(dir.path(), std::slice::from_ref(&tool_ref));
    support::cli::ok(
        support::cli::bin()
            .args(["mirror", "-c", &isc, &format!("file://{}", cli_out.display()), "--src-tls-verify=false"])
            .arg("--cache-dir")
            .arg(dir.path().join("cli-cache"))
            .output()
            .unwrap(),
    );
    assert!(cli_out.join("mirror_000001.tar").is_file(), "{:?}", files_in(&cli_out));
    copy_tree(&cli_out, &archives.join(NS).join("from-cli"));

    let cp = cluster::shared();
    let client = cp.client().await;
    clear_left_behind(&client).await;
    cluster::ensure_namespace(&client, NS).await;
    let admin = format!("127.0.0.1:{}", support::free_port());
    let archive_flag = format!("--archive-dir={}", archives.display());
    let _operator = operator(cp, dir.path(), &admin, &[&format!("--namespace={NS}"), &archive_flag]).await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), NS);

    // (a) Mirror to disk: the archive lands in the namespace's directory; nothing is applied.
    let spec = json!({"destination": "file://out", "registries": insecure(&[&src.host]),
                      "mirror": additional(&[&web_ref, &db_ref])});
    let st = run(&api, image_set("to-disk", spec), 120).await;
    let (status, reason, message) = ready(&st);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Mirrored"), "{message}");
    let out = archives.join(NS).join("out");
    assert!(out.join("mirror_000001.tar").is_file(), "{:?}", files_in(&out));
    assert_eq!(st.counts.unwrap().total, 2);
    assert!(owned(&client, "config.openshift.io", "ImageDigestMirrorSet", "to-disk").await.is_empty());
    assert!(owned(&client, "config.openshift.io", "ImageTagMirrorSet", "to-disk").await.is_empty());

    // The far side has no source registry.
    src.stop();

    // (b) Disk to mirror into an empty registry: every digest as at the source, IDMS applied.
    let spec = json!({"from": "file://out", "destination": format!("docker://{}/mirror", dst.host),
                      "registries": insecure(&[&dst.host]), "mirror": additional(&[&web_ref, &db_ref])});
    let st = run(&api, image_set("from-disk", spec), 120).await;
    let (status, reason, message) = ready(&st);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Mirrored"), "{message}");
    let counts = st.counts.clone().unwrap();
    assert_eq!((counts.total, counts.copied, counts.failed), (2, 2, 0), "{message}");
    assert_eq!(digest_at(&dst.host, "mirror/apps/web:v1"), web.digest);
    assert_eq!(digest_at(&dst.host, &format!("mirror/apps/db:{}", db.digest.replace(':', "-"))), db.digest);
    let idms = owned(&client, "config.openshift.io", "ImageDigestMirrorSet", "from-disk").await;
    assert_eq!(idms.len(), 1, "{idms:?}");
    let mirrors = idms[0]["spec"].to_string();
    assert!(
        mirrors.contains(&format!("\"{}/apps\"", src.host))
            && mirrors.contains(&format!("\"{}/mirror/apps\"", dst.host)),
        "the IDMS maps the source's names to the mirror: {mirrors}"
    );
    assert_eq!(owned(&client, "config.openshift.io", "ImageTagMirrorSet", "from-disk").await.len(), 1);

    // An archive holding more than an image set names: only what it names is imported.
    let spec = json!({"from": "file://out", "destination": format!("docker://{}/subset", dst.host),
                      "registries": insecure(&[&dst.host]), "mirror": additional(&[&db_ref])});
    let st = run(&api, image_set("subset", spec), 120).await;
    let (status, _, message) = ready(&st);
    assert_eq!(status, "True", "{message}");
    assert_eq!(st.counts.unwrap().total, 1);
    assert_eq!(digest_at(&dst.host, &format!("subset/apps/db:{}", db.digest.replace(':', "-"))), db.digest);
    assert!(absent(&dst.host, "subset/apps/web:v1"), "an image the image set does not name was imported");

    // (c) The command line's archives, placed under the archive directory.
    let spec = json!({"from": "file://from-cli", "destination": format!("docker://{}/enclave", cli_dst.host),
                      "registries": insecure(&[&cli_dst.host]), "mirror": additional(&[&tool_ref])});
    let st = run(&api, image_set("from-cli", spec), 120).await;
    let (status, reason, message) = ready(&st);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Mirrored"), "{message}");
    let tag = tool.digest.replace(':', "-");
    assert_eq!(digest_at(&cli_dst.host, &format!("enclave/tools/cli:{tag}")), tool.digest);
    let idms = owned(&client, "config.openshift.io", "ImageDigestMirrorSet", "from-cli").await;
    assert_eq!(idms.len(), 1, "{idms:?}");
    let mirrors = idms[0]["spec"].to_string();
    assert!(
        mirrors.contains(&format!("\"{}/tools\"", src.host))
            && mirrors.contains(&format!("\"{}/enclave/tools\"", cli_dst.host)),
        "{mirrors}"
    );

    delete(&api, &["to-disk", "from-disk", "subset", "from-cli"]).await;
    assert!(owned(&client, "config.openshift.io", "ImageDigestMirrorSet", "from-disk").await.is_empty());
}

/// (d) Paths that leave the archive directory: an absolute path and `..` are refused by the
/// apiserver (CEL), naming the field; a symbolic link out of the namespace's directory (to
/// elsewhere, or to another namespace's) is refused when the image set runs, `InvalidSpec`
/// naming the field, and nothing is written through it. Without `--archive-dir`, `file://`
/// destinations and `spec.from` are refused as `ArchivesDisabled`, naming the flag.
#[tokio::test]
async fn paths_leaving_the_archive_directory_and_disabled_archives_are_refused() {
    let _turn = OPERATOR.lock().await;
    let cp = cluster::shared();
    let client = cp.client().await;
    clear_left_behind(&client).await;
    cluster::ensure_namespace(&client, NS).await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), NS);
    let image = "127.0.0.1:9/never/contacted:1".to_string();
    let registry = "docker://127.0.0.1:9/mirror";
    let to = |name: &str, destination: &str| {
        image_set(name, json!({"destination": destination, "mirror": additional(&[&image])}))
    };
    let from = |name: &str, from: &str, destination: &str| {
        image_set(name, json!({"from": from, "destination": destination, "mirror": additional(&[&image])}))
    };

    // At admission: absolute paths and '..', in either field.
    for (isc, field) in [
        (to("abs", "file:///etc"), "spec.destination"),
        (to("up", "file://../x"), "spec.destination"),
        (to("deep-up", "file://a/../../x"), "spec.destination"),
        (from("abs-from", "file:///etc", registry), "spec.from"),
        (from("up-from", "file://../x", registry), "spec.from"),
        (from("to-disk-from", "file://x", "file://y"), "spec.from"),
    ] {
        let name = isc.metadata.name.clone().unwrap();
        match api.create(&PostParams::default(), &isc).await {
            Err(kube::Error::Api(e)) => {
                assert_eq!(e.code, 422, "{name}: {e:?}");
                assert!(e.message.contains(field), "{name}: the refusal does not name {field}: {}", e.message);
            }
            other => panic!("{name}: admitted: {other:?}"),
        }
    }

    let dir = support::temp_dir("operator-archive-guard-");
    let archives = dir.path().join("archives");
    let outside = dir.path().join("outside");
    let other = archives.join("other-team").join("secret");
    let (without, with) = (dir.path().join("without"), dir.path().join("with"));
    for d in [&archives.join(NS), &outside, &other, &without, &with] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::os::unix::fs::symlink(&outside, archives.join(NS).join("escape")).unwrap();
    std::os::unix::fs::symlink(&other, archives.join(NS).join("peek")).unwrap();

    // Without --archive-dir: refused, naming the flag and the field.
    {
        let admin = format!("127.0.0.1:{}", support::free_port());
        let _operator = operator(cp, &without, &admin, &[&format!("--namespace={NS}")]).await;
        for (isc, field) in [
            (to("disabled", "file://out"), "spec.destination"),
            (from("disabled-from", "file://out", registry), "spec.from"),
        ] {
            let st = run(&api, isc, 60).await;
            let (status, reason, message) = ready(&st);
            assert_eq!((status.as_str(), reason.as_str()), ("False", "ArchivesDisabled"), "{message}");
            assert!(message.starts_with(&format!("{field}: ")) && message.contains("--archive-dir"), "{message}");
        }
        delete(&api, &["disabled", "disabled-from"]).await;
    }
    assert!(files_in(&archives.join(NS)).iter().all(|f| f == "escape" || f == "peek"), "written while disabled");

    // With it: links out of the namespace's directory are refused when the image set runs.
    let admin = format!("127.0.0.1:{}", support::free_port());
    let archive_flag = format!("--archive-dir={}", archives.display());
    let _operator = operator(cp, &with, &admin, &[&format!("--namespace={NS}"), &archive_flag]).await;
    let cases = [
        (to("escape", "file://escape"), "spec.destination"),
        (to("escape-below", "file://escape/archives"), "spec.destination"),
        (from("escape-from", "file://escape", registry), "spec.from"),
        (from("peek-from", "file://peek", registry), "spec.from"),
        (to("peek", "file://peek/mine"), "spec.destination"),
    ];
    let names: Vec<String> = cases.iter().map(|(i, _)| i.metadata.name.clone().unwrap()).collect();
    for (isc, field) in cases {
        let st = run(&api, isc, 60).await;
        let (status, reason, message) = ready(&st);
        assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"), "{message}");
        assert!(message.starts_with(&format!("{field}: ")) && message.contains("symbolic link"), "{message}");
    }
    assert!(files_in(&outside).is_empty(), "written outside the archive directory: {:?}", files_in(&outside));
    assert!(files_in(&other).is_empty(), "written into another namespace's archives: {:?}", files_in(&other));
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    delete(&api, &names).await;
}

/// Release signatures travel inside the archives an image set writes: mirror to disk of two
/// releases (with the graph image) in the cluster, then, with the mirror-to-disk image set and
/// its working directory gone, the source registry, update graph and signature store stopped,
/// disk to mirror from those archives verifies each payload's signature with the operator's
/// key and applies the signature ConfigMap, the UpdateService and the IDMS.
#[tokio::test]
async fn release_signatures_travel_with_the_archives_and_disk_to_mirror_applies_them() {
    use support::release::{ReleaseWorld, ReleaseWorldOptions};
    let _turn = OPERATOR.lock().await;
    let versions = ["4.13.8", "4.13.9"];
    let (mut src, dst, world) = std::thread::spawn(move || {
        let src = Registry::start(RegistryOptions::default());
        let dst = Registry::start(RegistryOptions::default());
        let opts = ReleaseWorldOptions { versions: versions.map(String::from).to_vec(), multi: false, components: 6 };
        let world = ReleaseWorld::start(&src, opts);
        (src, dst, world)
    })
    .join()
    .unwrap();
    let payloads: Vec<_> =
        versions.iter().map(|v| world.payloads[&(v.to_string(), "amd64".to_string())].clone()).collect();
    let dir = support::temp_dir("operator-archive-releases-");
    let archives = dir.path().join("archives");
    std::fs::create_dir_all(&archives).unwrap();
    // The key outlives the world: the operator reads it when each run starts.
    let key = dir.path().join("release-key.asc");
    std::fs::copy(&world.public_key, &key).unwrap();
    let mut flags: Vec<String> =
        world.release_flags().into_iter().filter(|f| !f.starts_with("--release-signature-key=")).collect();
    flags.push(format!("--release-signature-key={}", key.display()));
    flags.push(format!("--archive-dir={}", archives.display()));
    flags.push(format!("--namespace={NS}"));
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();

    let cp = cluster::shared();
    let client = cp.client().await;
    clear_left_behind(&client).await;
    cluster::ensure_namespace(&client, NS).await;
    let admin = format!("127.0.0.1:{}", support::free_port());
    let _operator = operator(cp, dir.path(), &admin, &flags).await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), NS);
    let platform = json!({"platform": {"graph": true, "channels": [
        {"name": "stable-4.13", "minVersion": versions[0], "maxVersion": versions[1]}]}});

    let spec = json!({"destination": "file://releases", "registries": insecure(&[&src.host]), "mirror": platform});
    let st = run(&api, image_set("releases-out", spec), 300).await;
    let (status, reason, message) = ready(&st);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Mirrored"), "{message}");
    let out = archives.join(NS).join("releases");
    assert!(out.join("mirror_000001.tar").is_file(), "{:?}", files_in(&out));
    // The signatures are in the archive, and nothing else is beside it.
    let contents = imageset_operator::cache::archive::read_contents(&out.join("mirror_000001.tar")).unwrap();
    let carried: std::collections::BTreeSet<&str> = contents.signatures.iter().map(|s| s.digest.as_str()).collect();
    let payload_digests: std::collections::BTreeSet<&str> = payloads.iter().map(|p| p.digest.as_str()).collect();
    assert_eq!(carried, payload_digests);
    assert_eq!(files_in(&out), ["mirror_000001.tar"]);
    // The far side: no working directory of the run that wrote the archives, no source
    // registry, no update graph, no signature store.
    delete(&api, &["releases-out"]).await;
    drop(world);
    src.stop();

    let spec = json!({"from": "file://releases", "destination": format!("docker://{}/enclave", dst.host),
                      "registries": insecure(&[&dst.host]), "mirror": platform});
    let st = run(&api, image_set("releases-in", spec), 300).await;
    let (status, reason, message) = ready(&st);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Mirrored"), "{message}");
    for p in &payloads {
        assert_eq!(digest_at(&dst.host, &format!("enclave/openshift/release-images:{}", p.tag)), p.digest);
    }
    let cms = owned(&client, "", "ConfigMap", "releases-in").await;
    let cm =
        cms.iter().find(|c| c["metadata"]["namespace"] == "openshift-config-managed").expect("a signature ConfigMap");
    let keys: std::collections::BTreeSet<String> = cm["binaryData"].as_object().unwrap().keys().cloned().collect();
    let want: std::collections::BTreeSet<String> =
        payloads.iter().map(|p| format!("{}-1", p.digest.replace(':', "-"))).collect();
    assert_eq!(keys, want);
    let us = owned(&client, "updateservice.operator.openshift.io", "UpdateService", "releases-in").await;
    assert_eq!(us.len(), 1, "{us:?}");
    let graph = us[0]["spec"]["graphDataImage"].as_str().unwrap().rsplit_once('@').unwrap().1.to_string();
    assert_eq!(digest_at(&dst.host, "enclave/openshift/graph-image:latest"), graph);
    assert!(!owned(&client, "config.openshift.io", "ImageDigestMirrorSet", "releases-in").await.is_empty());
    delete(&api, &["releases-in"]).await;
}
