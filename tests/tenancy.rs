//! One operator, one cache, several namespaces: what the cache holds is served to an image set
//! only once its own credentials have read it at the source. A namespace without credentials
//! for a private image, or with wrong ones, never gets it, even after another namespace with
//! credentials has mirrored it (and so filled the cache).

mod support;

use std::time::Duration;

use imageset_operator::api::ImageSetConfiguration;
use imageset_operator::api::status::ImageSetStatus;
use k8s_openapi::api::core::v1::{Event, Secret};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;
use support::cluster;
use support::content::{Format, Pusher};
use support::operator::{OPERATOR, OPERATOR_NS, clear_left_behind, finished, service_account_kubeconfig};
use support::registry::{Registry, RegistryOptions};

const USER: &str = "team-b-robot";
const PASSWORD: &str = "only-team-b-knows";

fn secret(host: &str, password: &str) -> Secret {
    use base64::Engine as _;
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    let cfg = json!({"auths": {host: {"auth": b64(format!("{USER}:{password}"))}}}).to_string();
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "pull"},
        "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": b64(cfg)},
    }))
    .unwrap()
}

fn image_set(name: &str, src: &Registry, dst: &Registry, image: &str, creds: bool) -> ImageSetConfiguration {
    let mut spec = json!({
        "destination": format!("docker://{}/{name}", dst.host),
        "registries": [{"host": src.host, "insecure": true}, {"host": dst.host, "insecure": true}],
        "mirror": {"additionalImages": [{"name": image}]},
    });
    if creds {
        spec["authSecretRef"] = json!({"name": "pull"});
    }
    serde_json::from_value(json!({
        "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
        "metadata": {"name": name}, "spec": spec,
    }))
    .unwrap()
}

fn failed_reason(st: &ImageSetStatus) -> String {
    st.failed_images.first().map(|f| f.reason.clone()).unwrap_or_default()
}

/// Runs blocking test-world calls off the async runtime.
fn off<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join().unwrap())
}

fn present(reg: &Registry, repo: &str, digest: &str) -> bool {
    let url = format!("{}/v2/{repo}/manifests/{digest}", reg.base_url());
    let r = reg.http().head(url).header("Accept", "application/vnd.oci.image.manifest.v1+json").send().unwrap();
    r.status().is_success()
}

#[tokio::test]
async fn the_shared_cache_never_serves_a_private_image_to_a_namespace_that_cannot_read_it() {
    let _turn = OPERATOR.lock().await;
    let (src, dst, secret_image) = std::thread::spawn(|| {
        let src = Registry::start(RegistryOptions {
            htpasswd: Some((USER.to_string(), PASSWORD.to_string())),
            access_log: true,
            ..Default::default()
        });
        let dst = Registry::start(RegistryOptions::default());
        let pushed = Pusher::new(&src).image("private/app", "v1", Format::Oci, ("linux", "amd64"), &[(4242, 64 << 10)]);
        (src, dst, pushed)
    })
    .join()
    .unwrap();
    let image = format!("{}/private/app@{}", src.host, secret_image.digest);
    let cp = cluster::shared();
    let admin = cp.client().await;
    clear_left_behind(&admin).await;
    let namespaces = ["tenant-a", "tenant-b", "tenant-c", OPERATOR_NS];
    for ns in namespaces {
        cluster::ensure_namespace(&admin, ns).await;
        let _ = Api::<Secret>::namespaced(admin.clone(), ns).delete("pull", &DeleteParams::default()).await;
    }
    Api::<Secret>::namespaced(admin.clone(), "tenant-b")
        .create(&PostParams::default(), &secret(&src.host, PASSWORD))
        .await
        .unwrap();
    Api::<Secret>::namespaced(admin.clone(), "tenant-c")
        .create(&PostParams::default(), &secret(&src.host, "a-wrong-guess"))
        .await
        .unwrap();
    let dir = support::temp_dir("operator-tenancy-");
    let kubeconfig = service_account_kubeconfig(cp, &admin, dir.path()).await;
    let admin_addr = format!("127.0.0.1:{}", support::free_port());
    let _operator = support::Guarded::spawn_with_env(
        std::path::Path::new(env!("CARGO_BIN_EXE_imageset-operator")),
        &[
            "run".to_string(),
            format!("--admin-addr={admin_addr}"),
            format!("--cache-dir={}", dir.path().join("cache").display()),
            format!("--namespace={OPERATOR_NS}"),
            "--retry-times=0".to_string(),
        ],
        &[("KUBECONFIG", kubeconfig.display().to_string())],
        &dir.path().join("operator.log"),
        None,
    );
    let api = |ns: &str| Api::<ImageSetConfiguration>::namespaced(admin.clone(), ns);
    let run = |ns: &'static str, name: &'static str, creds: bool| {
        let (api, set) = (api(ns), image_set(name, &src, &dst, &image, creds));
        async move {
            let _ = api.delete(name, &DeleteParams::default()).await;
            for _ in 0..100 {
                if api.get_opt(name).await.unwrap().is_none() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            api.create(&PostParams::default(), &set).await.unwrap();
            finished(&api, name, 120).await
        }
    };

    // Without credentials the private image is refused at the source.
    let st = run("tenant-a", "nocreds", false).await;
    assert_eq!(st.counts.as_ref().map(|c| c.failed), Some(1), "{st:?}");
    assert!(failed_reason(&st).starts_with("AccessDenied"), "{st:?}");
    // With them it is mirrored, and so is now in the shared cache.
    let st = run("tenant-b", "withcreds", true).await;
    assert_eq!(st.counts.as_ref().map(|c| (c.copied, c.failed)), Some((1, 0)), "{st:?}");
    assert!(off(|| present(&dst, "withcreds/private/app", &secret_image.digest)));
    // Still refused without credentials, and with wrong ones: nothing reaches their destinations.
    let gets_before = src.requests("GET", "/blobs/");
    for (ns, name, creds) in [("tenant-a", "again", false), ("tenant-c", "wrongpass", true)] {
        let st = run(ns, name, creds).await;
        assert_eq!(st.counts.as_ref().map(|c| (c.copied, c.failed)), Some((0, 1)), "{ns}: {st:?}");
        assert!(failed_reason(&st).starts_with("AccessDenied"), "{ns}: {st:?}");
        let repo = format!("{name}/private/app");
        assert!(!off(|| present(&dst, &repo, &secret_image.digest)), "{ns} got the private image");
        for blob in &secret_image.blobs {
            let url = format!("{}/v2/{repo}/blobs/{blob}", dst.base_url());
            let got = off(|| dst.http().head(url).send().unwrap().status().as_u16());
            assert_eq!(got, 404, "{ns}: blob {blob} of the private image reached its destination");
        }
    }
    assert_eq!(src.requests("GET", "/blobs/"), gets_before, "the refused sets pulled nothing");
    // What the refused namespaces see names nobody else.
    for ns in ["tenant-a", "tenant-c"] {
        let events = Api::<Event>::namespaced(admin.clone(), ns).list(&ListParams::default()).await.unwrap();
        for e in events.items {
            let text = format!("{} {}", e.reason.unwrap_or_default(), e.message.unwrap_or_default());
            assert!(!text.contains("tenant-b") && !text.contains("withcreds"), "{ns} event: {text}");
        }
        for name in ["nocreds", "again", "wrongpass"] {
            if let Some(isc) = api(ns).get_opt(name).await.unwrap() {
                let status = serde_json::to_string(&isc.status).unwrap();
                assert!(!status.contains("tenant-b") && !status.contains("withcreds"), "{ns}/{name}: {status}");
            }
        }
    }
    let metrics = reqwest::get(format!("http://{admin_addr}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("imageset_operator_failures_total"), "{metrics}");
    // The operator's /metrics names an image set only in its per-set series, and only once it
    // succeeded: the refused namespaces have none, and nothing else names a namespace.
    let series = "imageset_operator_last_success_timestamp_seconds{";
    let rest: Vec<&str> = metrics.lines().filter(|l| !l.starts_with(series)).collect();
    assert!(
        rest.iter().all(|l| !l.contains("tenant-") && !l.contains("withcreds")),
        "metrics name a namespace: {metrics}"
    );
    assert!(metrics.contains(&format!("{series}namespace=\"tenant-b\",name=\"withcreds\"}}")), "{metrics}");
    assert!(!metrics.contains("namespace=\"tenant-a\"") && !metrics.contains("namespace=\"tenant-c\""), "{metrics}");
    let log = std::fs::read_to_string(dir.path().join("operator.log")).unwrap();
    assert!(!log.contains(PASSWORD) && !log.contains("a-wrong-guess"), "a password was logged");
    for (ns, name) in
        [("tenant-a", "nocreds"), ("tenant-a", "again"), ("tenant-b", "withcreds"), ("tenant-c", "wrongpass")]
    {
        let _ = api(ns).delete(name, &DeleteParams::default()).await;
    }
}
