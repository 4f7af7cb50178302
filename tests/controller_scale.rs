//! `imageset-operator run` at the size users have: 2,000 small images copied between two real
//! registries, against the real apiserver of the test world, the operator running under its
//! own ServiceAccount with the RBAC of `config/rbac` (never as cluster admin). Progress in
//! status keeps moving while it copies, status stays small however many images a set holds,
//! and every image lands with its source digest.
//!
//! The images go in one image set when the installed CRD allows that many
//! `spec.mirror.additionalImages`; otherwise in as few sets as its `maxItems` allows, each
//! at that maximum, all applied at once.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use imageset_operator::api::ImageSetConfiguration;
use imageset_operator::api::status::ImageSetStatus;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use support::cluster;
use support::registry::{Registry, RegistryOptions};
use support::storage::{Written, missing_at, small_images};

use support::operator::OPERATOR_NS;
const IMAGES: usize = 2000;
const REPOS: usize = 50;
const LAYER_BYTES: usize = 4096;
/// Serialized status stays under this at every sample: its lists are bounded, whatever the
/// number of images.
const STATUS_BOUND: usize = 16 << 10;
const READY_WITHIN: Duration = Duration::from_secs(240);
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

/// The most `spec.mirror.additionalImages` the installed ImageSetConfiguration CRD admits in
/// one image set (None: no limit).
async fn additional_images_cap(admin: &kube::Client) -> Option<usize> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(admin.clone());
    let crd = crds.get("imagesetconfigurations.mirror.openshift.io").await.expect("the ImageSetConfiguration CRD");
    let crd = serde_json::to_value(crd).unwrap();
    let versions = crd["spec"]["versions"].as_array().expect("CRD versions");
    let served = versions.iter().find(|v| v["storage"] == true).expect("a storage version");
    let path = "/schema/openAPIV3Schema/properties/spec/properties/mirror/properties/additionalImages";
    let schema = served.pointer(path).expect("spec.mirror.additionalImages in the CRD schema");
    schema["maxItems"].as_u64().map(|n| n as usize)
}

/// One reading of an image set while it runs.
#[derive(Debug)]
struct Sample {
    at_s: f64,
    images_done: u64,
    bytes_done: u64,
    status_bytes: usize,
}

/// Whether `st` is the finished run of `generation` (Progressing=False, Ready no longer
/// "Started"), as tests/controller.rs waits for it.
fn finished(st: &ImageSetStatus, generation: Option<i64>) -> bool {
    st.observed_generation == generation
        && st.conditions.iter().any(|c| c.type_ == "Progressing" && c.status == "False")
        && st.conditions.iter().any(|c| c.type_ == "Ready" && c.reason != "Started")
}

/// 2,000 images, in one image set if the CRD admits that many (else in sets at its cap, all
/// at once): each set Ready=True with all its images copied, progress moving in status all
/// along, status under 16 KiB at every reading, every image at the destination by digest.
#[tokio::test]
async fn two_thousand_images_progress_and_land_with_small_status() {
    // Registries and the images written into the source's storage: blocking code, off the
    // async runtime.
    let (src, dst, images) = std::thread::spawn(|| {
        let src = Registry::start(RegistryOptions::default());
        let dst = Registry::start(RegistryOptions::default());
        let images = small_images(&src.storage, REPOS, IMAGES, LAYER_BYTES, 23);
        (src, dst, images)
    })
    .join()
    .unwrap();
    let cp = cluster::shared();
    let admin = cp.client().await;
    cluster::ensure_namespace(&admin, OPERATOR_NS).await;
    let per_set = additional_images_cap(&admin).await.unwrap_or(IMAGES).min(IMAGES);
    let sets: Vec<(String, Vec<Written>)> =
        images.chunks(per_set).enumerate().map(|(i, chunk)| (format!("scale-{i}"), chunk.to_vec())).collect();
    eprintln!(
        "{IMAGES} images in {} image set(s) of up to {per_set} (the CRD's maxItems of spec.mirror.additionalImages)",
        sets.len()
    );
    let dir = support::temp_dir("operator-scale-");
    let kubeconfig = support::operator::service_account_kubeconfig(cp, &admin, dir.path()).await;
    // The operator's credentials are its ServiceAccount's, not an admin's: it may not list nodes.
    let as_operator = support::operator::client_for(&kubeconfig).await;
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(as_operator);
    match nodes.list(&Default::default()).await {
        Err(kube::Error::Api(s)) if s.code == 403 => {}
        other => panic!("the operator's ServiceAccount lists nodes: {:?}", other.map(|l| l.items.len())),
    }
    let admin_addr = format!("127.0.0.1:{}", support::free_port());
    let operator = support::Guarded::spawn_with_env(
        Path::new(env!("CARGO_BIN_EXE_imageset-operator")),
        &[
            "run".to_string(),
            format!("--admin-addr={admin_addr}"),
            format!("--cache-dir={}", dir.path().join("cache").display()),
            format!("--namespace={OPERATOR_NS}"),
        ],
        &[("KUBECONFIG", kubeconfig.display().to_string())],
        &dir.path().join("operator.log"),
        None,
    );
    let log_tail = operator.log_tail();

    let api: Api<ImageSetConfiguration> = Api::namespaced(admin.clone(), OPERATOR_NS);
    let started = Instant::now();
    let mut generations = Vec::new();
    for (name, chunk) in &sets {
        let names: Vec<_> =
            chunk.iter().map(|w| json!({"name": format!("{}/{}:{}", src.host, w.repo, w.tag)})).collect();
        let obj: ImageSetConfiguration = serde_json::from_value(json!({
            "apiVersion": "mirror.openshift.io/v2alpha1", "kind": "ImageSetConfiguration",
            "metadata": {"name": name},
            "spec": {
                "destination": format!("docker://{}/mirror", dst.host),
                "registries": [{"host": src.host, "insecure": true}, {"host": dst.host, "insecure": true}],
                "mirror": {"additionalImages": names},
            },
        }))
        .unwrap();
        let created = api.create(&PostParams::default(), &obj).await.expect("create the image set");
        generations.push(created.metadata.generation);
    }

    // Read each set's status every second until the runs of their generations have finished.
    let mut samples: Vec<Vec<Sample>> = sets.iter().map(|_| Vec::new()).collect();
    let mut last: Vec<Option<(f64, ImageSetStatus)>> = sets.iter().map(|_| None).collect();
    let mut largest = 0usize;
    while last.iter().any(Option::is_none) {
        for (i, (name, chunk)) in sets.iter().enumerate() {
            if last[i].is_some() {
                continue;
            }
            let st = api.get(name).await.expect("get the image set").status.unwrap_or_default();
            let at_s = started.elapsed().as_secs_f64();
            let size = serde_json::to_vec(&st).unwrap().len();
            largest = largest.max(size);
            assert!(
                size < STATUS_BOUND,
                "{name}: status is {size} bytes after {at_s:.1} s (bound {STATUS_BOUND}): {}",
                serde_json::to_string(&st).unwrap().chars().take(2000).collect::<String>()
            );
            if st.observed_generation == generations[i]
                && let Some(p) = &st.progress
            {
                assert_eq!(p.images_total, chunk.len() as u64, "{name}: {p:?}");
                samples[i].push(Sample {
                    at_s,
                    images_done: p.images_done,
                    bytes_done: p.bytes_done,
                    status_bytes: size,
                });
            }
            if finished(&st, generations[i]) {
                last[i] = Some((at_s, st));
            }
        }
        assert!(
            started.elapsed() < READY_WITHIN,
            "not all finished within {READY_WITHIN:?}: {:?}\nprogress samples: {samples:?}\noperator log:\n{}",
            last.iter().map(Option::is_some).collect::<Vec<_>>(),
            log_tail()
        );
        if last.iter().any(Option::is_none) {
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    }
    eprintln!(
        "{IMAGES} images: create -> every run finished in {:.1} s; largest status {largest} bytes",
        started.elapsed().as_secs_f64()
    );

    for (i, (name, chunk)) in sets.iter().enumerate() {
        let (done_s, st) = last[i].take().unwrap();
        let samples = &samples[i];
        eprintln!(
            "{name} ({} images): finished after {done_s:.1} s, status at the end {} bytes",
            chunk.len(),
            serde_json::to_vec(&st).unwrap().len()
        );
        for s in samples {
            eprintln!(
                "  {:6.1} s: {:5} images done, {:9} blob bytes in place, status {} bytes",
                s.at_s, s.images_done, s.bytes_done, s.status_bytes
            );
        }
        let n = chunk.len() as u64;
        let ready = st.conditions.iter().find(|c| c.type_ == "Ready").expect("a Ready condition");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str(), ready.observed_generation),
            ("True", "Mirrored", generations[i]),
            "{name}: {}\noperator log:\n{}",
            ready.message,
            log_tail()
        );
        let counts = st.counts.clone().expect("counts in status");
        assert_eq!(
            (counts.total, counts.copied, counts.already_present, counts.failed, counts.skipped),
            (n, n, 0, 0, 0),
            "{name}: {:?}",
            st.failed_images
        );
        assert!(st.failed_images.is_empty() && st.progress.is_none(), "{name}: {st:?}");

        // Progress kept moving: never backwards, and rising across several readings before
        // the end (status is written every few seconds while a run copies).
        assert!(
            samples.windows(2).all(|w| w[0].images_done <= w[1].images_done),
            "{name}: imagesDone went backwards: {samples:?}"
        );
        let rises = samples.windows(2).filter(|w| w[0].images_done < w[1].images_done).count();
        let mut partial: Vec<u64> = samples.iter().map(|s| s.images_done).filter(|&d| d > 0 && d < n).collect();
        partial.dedup();
        assert!(
            rises >= 3 && partial.len() >= 3,
            "{name}: progress seen moving {rises} times ({} distinct partial values) in {} readings: {samples:?}",
            partial.len(),
            samples.len()
        );
    }
    let copied: u64 = sets.iter().map(|(_, c)| c.len() as u64).sum();
    assert_eq!(copied, IMAGES as u64);

    // Every image at the destination with its source digest.
    let (dst, wrong) = tokio::task::spawn_blocking(move || {
        let wrong = missing_at(&dst, "mirror", &images);
        (dst, wrong)
    })
    .await
    .unwrap();
    assert!(
        wrong.is_empty(),
        "{} of {IMAGES} images missing or wrong at the destination, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );

    // Deleting the image sets removes what they produced, then the image sets themselves.
    for (name, _) in &sets {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for _ in 0..300 {
        if api.list(&Default::default()).await.unwrap().items.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(api.list(&Default::default()).await.unwrap().items.is_empty(), "finalizers not removed:\n{}", log_tail());
    drop(operator);
    drop((src, dst));
}
