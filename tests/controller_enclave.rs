//! Enclaves in the cluster: image sets name the internet's images and pull them through their
//! own registries.conf (a ConfigMap key, `spec.registriesConf`) from a hub that needs the
//! image set's Secret, while the internet registry is stopped; two of them, feeding two
//! enclave registries, share the operator's cache, so the hub serves each blob once. The operator runs as its
//! ServiceAccount under the shipped RBAC, against the real apiserver and registries.

mod support;

use imageset_operator::api::ImageSetConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use serde_json::json;
use support::cluster;
use support::content::{Format, Pushed, Pusher};
use support::operator::{OPERATOR, clear_left_behind, dynamic, finished, operator};
use support::registry::{Registry, RegistryOptions};

const NS: &str = "enclave-ops";

struct World {
    internet: Registry,
    hub: Registry,
    enclaves: [Registry; 2],
    images: Vec<Pushed>,
}

/// The internet has `apps/web:v1` and `apps/api:v1`, sharing their base layer; the hub
/// (basic auth) holds the same images under `mirror/apps/...`, as a hub mirror run leaves
/// them; the internet is then stopped.
fn world() -> World {
    std::thread::spawn(|| {
        let internet = Registry::start(RegistryOptions::default());
        let hub = Registry::start(RegistryOptions {
            htpasswd: Some(("hubuser".into(), "hub-secret-pw".into())),
            access_log: true,
            ..Default::default()
        });
        let logged = || Registry::start(RegistryOptions { access_log: true, ..Default::default() });
        let enclaves = [logged(), logged()];
        let mut images = Vec::new();
        for (repo, own) in [("apps/web", 82), ("apps/api", 83)] {
            let layers = [(81, 200_000), (own, 2048)];
            let image = Pusher::new(&internet).image(repo, "v1", Format::Oci, ("linux", "amd64"), &layers);
            let copy =
                Pusher::new(&hub).image(&format!("mirror/{repo}"), "v1", Format::Oci, ("linux", "amd64"), &layers);
            assert_eq!(copy.digest, image.digest, "the hub holds the internet's image");
            images.push(image);
        }
        let mut w = World { internet, hub, enclaves, images };
        w.internet.stop();
        w
    })
    .join()
    .unwrap()
}

fn image_set(name: &str, w: &World, enclave: usize, conf: &str) -> ImageSetConfiguration {
    let dest = &w.enclaves[enclave].host;
    let images: Vec<_> =
        w.images.iter().map(|i| json!({"name": format!("{}/{}:v1", w.internet.host, i.repo)})).collect();
    serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "destination": format!("docker://{dest}/mirror"),
            "registriesConf": format!("configmap:{conf}/registries.conf"),
            "authSecretRef": {"name": "hub-pull"},
            "registries": [{"host": dest, "insecure": true}],
            "mirror": {"additionalImages": images},
        },
    }))
    .unwrap()
}

async fn config_map(client: &kube::Client, name: &str, text: String) {
    let cm: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS}, "data": {"registries.conf": text},
    }))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), NS).create(&PostParams::default(), &cm).await.unwrap();
}

#[tokio::test]
async fn an_image_set_pulls_through_its_registries_conf_with_its_own_secret() {
    let _turn = OPERATOR.lock().await;
    let w = world();
    let cp = cluster::shared();
    let client = cp.client().await;
    clear_left_behind(&client).await;
    cluster::ensure_namespace(&client, NS).await;
    let auth = json!({"auths": {(w.hub.host.clone()): {"auth": base64_encode("hubuser:hub-secret-pw")}}});
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "hub-pull", "namespace": NS}, "type": "kubernetes.io/dockerconfigjson",
        "stringData": {".dockerconfigjson": auth.to_string()},
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), NS).create(&PostParams::default(), &secret).await.unwrap();
    let mirror = format!(
        "[[registry]]\nprefix = \"{i}\"\n\n[[registry.mirror]]\nlocation = \"{h}/mirror\"\ninsecure = true\n",
        i = w.internet.host,
        h = w.hub.host
    );
    config_map(&client, "through-hub", mirror).await;
    config_map(&client, "blocked", format!("[[registry]]\nprefix = \"{}/apps\"\nblocked = true\n", w.internet.host))
        .await;
    config_map(&client, "malformed", "[[registry]]\nprefix = \"a.io\"\nmirror = 7\n".into()).await;

    let dir = support::temp_dir("operator-enclave-");
    let admin = format!("127.0.0.1:{}", support::free_port());
    let _operator = operator(cp, dir.path(), &admin, &[&format!("--namespace={NS}")]).await;
    let api: Api<ImageSetConfiguration> = Api::namespaced(client.clone(), NS);
    let sets = [
        ("through-hub", 0, "through-hub"),
        ("second-enclave", 1, "through-hub"),
        ("blocked", 0, "blocked"),
        ("malformed", 0, "malformed"),
    ];
    for (name, enclave, conf) in sets {
        api.create(&PostParams::default(), &image_set(name, &w, enclave, conf)).await.unwrap();
    }

    // Through the hub: the images reach both enclaves by the internet's digests, and the hub
    // was read with the image sets' credentials, each blob once across both enclaves (the
    // shared cache); inside each enclave the shared base layer is pushed once and mounted
    // into the other repository.
    for (name, enclave) in [("through-hub", 0), ("second-enclave", 1)] {
        let st = finished(&api, name, 120).await;
        let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "Mirrored"), "{name}: {}", ready.message);
        let e = &w.enclaves[enclave];
        for img in &w.images {
            let reference = format!("docker://{}/mirror/{}:v1", e.host, img.repo);
            let at = support::skopeo(&["inspect", "--raw", "--tls-verify=false", &reference]);
            assert_eq!(support::sha256(&at), img.digest, "{reference}");
        }
        let base = &w.images[0].blobs[0];
        assert_eq!(e.requests("PUT", &format!("digest={base}")), 1, "base layer uploaded once at {name}");
        let mounted = e
            .access_log()
            .iter()
            .filter(|a| a.method == "POST" && a.uri.contains("mount=") && a.uri.contains(&base[7..]) && a.status == 201)
            .count();
        assert_eq!(mounted, 1, "base layer mounted into the other repository at {name}: {:?}", e.access_log());
    }
    let blobs: std::collections::BTreeSet<&String> = w.images.iter().flat_map(|i| &i.blobs).collect();
    let log = w.hub.access_log();
    for b in blobs {
        let served = log
            .iter()
            .filter(|a| a.method == "GET" && a.status == 200 && a.uri.ends_with(&format!("/blobs/{b}")))
            .count();
        assert_eq!(served, 1, "{b} served by the hub {served} times across both enclaves");
    }
    let ready = finished(&api, "through-hub", 10).await.conditions.into_iter().find(|c| c.type_ == "Ready").unwrap();
    assert!(!ready.message.contains("not applied"), "{}", ready.message);
    let owned = kube::api::ListParams::default().labels("mirror.openshift.io/owned-by=enclave-ops.through-hub");
    let itms = dynamic(&client, "config.openshift.io", "v1", "ImageTagMirrorSet").list(&owned).await.unwrap();
    assert_eq!(itms.items.len(), 1);
    let spec = serde_json::to_string(&itms.items[0].data["spec"]).unwrap();
    assert!(spec.contains(&format!("\"{}/apps\"", w.internet.host)), "{spec}");
    assert!(!spec.contains(&w.hub.host), "{spec}");

    // A blocked source fails its images with a reason naming the rule.
    let st = finished(&api, "blocked", 60).await;
    let failed = &st.failed_images;
    assert_eq!(failed.len(), w.images.len(), "{st:?}");
    for f in failed {
        let rule = "configmap:blocked/registries.conf line 1";
        assert!(f.reason.starts_with("SourceBlocked") && f.reason.contains(rule), "{}", f.reason);
    }

    // A malformed file stops the image set before anything runs, naming the field and line.
    let st = finished(&api, "malformed", 60).await;
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason, "AccessError", "{}", ready.message);
    assert!(ready.message.contains("spec.registriesConf") && ready.message.contains("line 3"), "{}", ready.message);

    for (name, _, _) in sets {
        api.delete(name, &Default::default()).await.unwrap();
    }
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
