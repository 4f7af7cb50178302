//! An enclave in the cluster: an image set names the internet's images and pulls them through
//! its own registries.conf (a ConfigMap key, `spec.registriesConf`) from a hub that needs the
//! image set's Secret, while the internet registry is stopped. The operator runs as its
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
    enclave: Registry,
    image: Pushed,
}

/// The internet has `apps/web:v1`; the hub (basic auth) holds the same image under
/// `mirror/apps/web`, as a hub mirror run leaves it; the internet is then stopped.
fn world() -> World {
    std::thread::spawn(|| {
        let internet = Registry::start(RegistryOptions::default());
        let hub = Registry::start(RegistryOptions {
            htpasswd: Some(("hubuser".into(), "hub-secret-pw".into())),
            access_log: true,
            ..Default::default()
        });
        let enclave = Registry::start(RegistryOptions::default());
        let layers = [(81, 4096), (82, 2048)];
        let image = Pusher::new(&internet).image("apps/web", "v1", Format::Oci, ("linux", "amd64"), &layers);
        let copy = Pusher::new(&hub).image("mirror/apps/web", "v1", Format::Oci, ("linux", "amd64"), &layers);
        assert_eq!(copy.digest, image.digest, "the hub holds the internet's image");
        let mut w = World { internet, hub, enclave, image };
        w.internet.stop();
        w
    })
    .join()
    .unwrap()
}

fn image_set(name: &str, w: &World, conf: &str) -> ImageSetConfiguration {
    serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "destination": format!("docker://{}/mirror", w.enclave.host),
            "registriesConf": format!("configmap:{conf}/registries.conf"),
            "authSecretRef": {"name": "hub-pull"},
            "registries": [{"host": w.enclave.host, "insecure": true}],
            "mirror": {"additionalImages": [{"name": format!("{}/apps/web:v1", w.internet.host)}]},
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
    for (name, conf) in [("through-hub", "through-hub"), ("blocked", "blocked"), ("malformed", "malformed")] {
        api.create(&PostParams::default(), &image_set(name, &w, conf)).await.unwrap();
    }

    // Through the hub: the image reaches the enclave by the internet's digest, the ITMS (a
    // tagged image) maps
    // the internet's names, and the hub was read with the image set's credentials.
    let st = finished(&api, "through-hub", 120).await;
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("True", "Mirrored"), "{}", ready.message);
    let at = support::skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/mirror/apps/web:v1", w.enclave.host),
    ]);
    assert_eq!(support::sha256(&at), w.image.digest);
    assert!(w.hub.requests("GET", "/v2/mirror/apps/web/blobs/") >= 1, "nothing read from the hub");
    assert!(!ready.message.contains("not applied"), "{}", ready.message);
    let owned = kube::api::ListParams::default().labels("mirror.openshift.io/owned-by=enclave-ops.through-hub");
    let itms = dynamic(&client, "config.openshift.io", "v1", "ImageTagMirrorSet").list(&owned).await.unwrap();
    assert_eq!(itms.items.len(), 1);
    let spec = serde_json::to_string(&itms.items[0].data["spec"]).unwrap();
    assert!(spec.contains(&format!("\"{}/apps\"", w.internet.host)), "{spec}");
    assert!(!spec.contains(&w.hub.host), "{spec}");

    // A blocked source fails its image with a reason naming the rule.
    let st = finished(&api, "blocked", 60).await;
    let failed = &st.failed_images;
    assert_eq!(failed.len(), 1, "{st:?}");
    assert!(
        failed[0].reason.starts_with("SourceBlocked")
            && failed[0].reason.contains("configmap:blocked/registries.conf line 1"),
        "{}",
        failed[0].reason
    );

    // A malformed file stops the image set before anything runs, naming the field and line.
    let st = finished(&api, "malformed", 60).await;
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason, "AccessError", "{}", ready.message);
    assert!(ready.message.contains("spec.registriesConf") && ready.message.contains("line 3"), "{}", ready.message);

    for name in ["through-hub", "blocked", "malformed"] {
        api.delete(name, &Default::default()).await.unwrap();
    }
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}
