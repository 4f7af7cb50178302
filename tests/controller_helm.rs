//! Helm charts in the cluster: `imageset-operator run --archive-dir` as its ServiceAccount,
//! against the real apiserver, registries and a chart repository served from loopback. An
//! image set with `mirror.helm` (a repository chart, its index naming the archive by a relative
//! URL, and a local chart under the namespace's archive directory) mirrors the charts' images
//! by digest, pushes the charts (pulled back with real helm) and applies its IDMS; a local
//! chart outside the archive directory is refused naming the field.

mod support;

use imageset_operator::api::ImageSetConfiguration;
use kube::api::{Api, ListParams, PostParams};
use serde_json::{Value, json};
use support::charts::{self, ChartServer, ServerOptions};
use support::cluster;
use support::content::{Format, Pusher};
use support::operator::{OPERATOR, clear_left_behind, dynamic, finished, image_set_in, operator, ready};
use support::registry::{Registry, RegistryOptions};

const NS: &str = "helm-ops";

fn image_set(name: &str, spec: Value) -> ImageSetConfiguration {
    image_set_in(NS, name, spec)
}

#[tokio::test]
async fn an_image_set_with_helm_charts_mirrors_their_images_and_pushes_the_charts() {
    let _turn = OPERATOR.lock().await;
    let dir = support::temp_dir("operator-helm-");
    let home = dir.path().join("helm-home");
    let archives = dir.path().join("archives");
    let (src, dst, server, (app, init, tool)) = {
        let (dir, home, archives) = (dir.path().to_path_buf(), home.clone(), archives.clone());
        std::thread::spawn(move || {
            let src = Registry::start(RegistryOptions::default());
            let dst = Registry::start(RegistryOptions::default());
            let push = Pusher::new(&src);
            let app = push.image("apps/app", "1.0", Format::Oci, ("linux", "amd64"), &[(301, 4096)]);
            let init = push.image("apps/init", "build", Format::Docker, ("linux", "amd64"), &[(302, 2048)]);
            let tool = push.image("tools/cli", "2", Format::Oci, ("linux", "amd64"), &[(303, 3000)]);
            let repo = dir.join("repo");
            std::fs::create_dir_all(&repo).unwrap();
            let server = ChartServer::start(&repo, ServerOptions::default());
            let values = |repository: &str, tag: &str| {
                format!(
                    "image:\n  registry: {h}\n  repository: {repository}\n  tag: \"{tag}\"\ninit:\n  registry: {h}\n  repository: apps/init\n  digest: {}\nhookImage: {h}/apps/hook:1\n",
                    init.digest,
                    h = src.host
                )
            };
            let sources = dir.join("sources");
            let demo = charts::write_chart(&sources, "demo", "1.2.3", &values("apps/app", ""), &[]);
            charts::helm_ok(&home, &["package", demo.to_str().unwrap(), "-d", repo.to_str().unwrap()]);
            // Without --url: the index names its archives relative to the repository.
            charts::helm_ok(&home, &["repo", "index", repo.to_str().unwrap()]);
            let index = std::fs::read_to_string(repo.join("index.yaml")).unwrap();
            assert!(index.contains("- demo-1.2.3.tgz"), "{index}");
            let tools = charts::write_chart(&sources, "tools", "0.1.0", &values("tools/cli", "2"), &[]);
            let local = archives.join(NS).join("charts");
            std::fs::create_dir_all(&local).unwrap();
            charts::helm_ok(&home, &["package", tools.to_str().unwrap(), "-d", local.to_str().unwrap()]);
            (src, dst, server, (app, init, tool))
        })
        .join()
        .unwrap()
    };

    let cp = cluster::shared();
    let client = cp.client().await;
    clear_left_behind(&client).await;
    cluster::ensure_namespace(&client, NS).await;
    let admin = format!("127.0.0.1:{}", support::free_port());
    let archive_flag = format!("--archive-dir={}", archives.display());
    let _operator = operator(cp, dir.path(), &admin, &[&format!("--namespace={NS}"), &archive_flag]).await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), NS);
    let spec = |local: &str| {
        json!({
            "destination": format!("docker://{}/mirror", dst.host),
            "registries": [{"host": src.host, "insecure": true}, {"host": dst.host, "insecure": true}],
            "mirror": {"helm": {
                "repositories": [{"name": "demo", "url": server.url, "charts": [{"name": "demo", "version": "1.2.3"}]}],
                "local": [{"name": "tools", "path": local}],
            }},
        })
    };
    api.create(&PostParams::default(), &image_set("charts", spec("charts/tools-0.1.0.tgz"))).await.unwrap();
    let st = finished(&api, "charts", 120).await;
    let (status, reason, message) = ready(&st);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Mirrored"), "{message}");
    let counts = st.counts.clone().unwrap();
    assert_eq!((counts.total, counts.failed), (3, 0), "{message}");
    assert_eq!(charts::digest_at(&dst.host, "mirror/apps/app:1.0"), Some(app.digest.clone()));
    assert_eq!(
        charts::digest_at(&dst.host, &format!("mirror/apps/init:{}", init.digest.replace(':', "-"))),
        Some(init.digest)
    );
    assert_eq!(charts::digest_at(&dst.host, "mirror/tools/cli:2"), Some(tool.digest));
    assert_eq!(charts::digest_at(&dst.host, "mirror/apps/hook:1"), None, "a hook's image is not mirrored");
    for (name, version, image) in [("demo", "1.2.3", "apps/app:1.0"), ("tools", "0.1.0", "tools/cli:2")] {
        let (_, rendered) = charts::pull_and_template(&home, &dst.host, name, version);
        assert!(rendered.contains(&format!("image: \"{}/{image}\"", src.host)), "{rendered}");
    }
    let label = ListParams::default().labels(&format!("mirror.openshift.io/owned-by={NS}.charts"));
    let idms = dynamic(&client, "config.openshift.io", "v1", "ImageDigestMirrorSet").list(&label).await.unwrap();
    assert_eq!(idms.items.len(), 1);
    let mirrors = idms.items[0].data["spec"].to_string();
    assert!(
        mirrors.contains(&format!("\"{}/apps\"", src.host))
            && mirrors.contains(&format!("\"{}/mirror/apps\"", dst.host)),
        "{mirrors}"
    );
    assert!(server.served().iter().any(|r| r.path == "/demo-1.2.3.tgz" && r.status == 200), "{:?}", server.served());

    // A local chart outside the namespace's archive directory is refused, naming the field.
    std::fs::write(archives.join("other.tgz"), b"not for this namespace").unwrap();
    api.create(&PostParams::default(), &image_set("escape", spec("../other.tgz"))).await.unwrap();
    let st = finished(&api, "escape", 60).await;
    let (status, reason, message) = ready(&st);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidSpec"), "{message}");
    assert!(message.contains("spec.mirror.helm.local[0].path"), "{message}");
}
