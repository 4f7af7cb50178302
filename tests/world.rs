//! The test world itself: real registries (plain, HTTPS, basic auth) hold synthetic and real
//! content, and skopeo, an independent client, reads back the same digests.

mod support;

use support::content::{Format, Pusher};
use support::registry::{Registry, RegistryOptions};
use support::{sha256, skopeo};

fn skopeo_raw(reg: &Registry, reference: &str) -> Vec<u8> {
    let mut args: Vec<String> = vec!["inspect".into(), "--raw".into()];
    args.extend(reg.skopeo_flags());
    args.push(format!("docker://{}/{reference}", reg.host));
    skopeo(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

fn skopeo_digest(reg: &Registry, reference: &str) -> String {
    let mut args: Vec<String> = vec!["inspect".into(), "--format={{.Digest}}".into()];
    args.extend(reg.skopeo_flags());
    args.push(format!("docker://{}/{reference}", reg.host));
    String::from_utf8(skopeo(&args.iter().map(String::as_str).collect::<Vec<_>>())).unwrap().trim().to_string()
}

#[test]
fn multi_arch_images_read_back_by_skopeo_with_the_same_digest() {
    let reg = Registry::start(RegistryOptions::default());
    let push = Pusher::new(&reg);
    for (format, repo) in [(Format::Docker, "synthetic/docker-list"), (Format::Oci, "synthetic/oci-index")] {
        let img = push.multi_arch(repo, "v1", format, &[("linux", "amd64"), ("linux", "arm64"), ("linux", "s390x")], 7);
        let raw = skopeo_raw(&reg, &format!("{repo}:v1"));
        assert_eq!(raw, img.manifest, "{repo}: skopeo sees other manifest bytes");
        assert_eq!(sha256(&raw), img.digest);
        let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(index["manifests"].as_array().unwrap().len(), 3);
        // Each child resolves by digest too, and the shared base layer is one blob.
        for child in index["manifests"].as_array().unwrap() {
            let d = child["digest"].as_str().unwrap();
            assert_eq!(sha256(&skopeo_raw(&reg, &format!("{repo}@{d}"))), d);
        }
        assert_eq!(img.blobs.len(), 1 + 3 + 3, "one shared layer, one own layer and one config per platform");
    }
}

#[test]
fn https_registry_with_a_ca_generated_for_the_run() {
    let reg = Registry::start(RegistryOptions { tls: true, ..Default::default() });
    assert!(reg.base_url().starts_with("https://"));
    let img = Pusher::new(&reg).image("tls/app", "1.0", Format::Oci, ("linux", "amd64"), &[(1, 10_000), (2, 20_000)]);
    assert_eq!(skopeo_digest(&reg, "tls/app:1.0"), img.digest);
    // Without the CA, verification fails: TLS is really checked.
    let out = std::process::Command::new(support::require("skopeo"))
        .args(["inspect", "--raw", &format!("docker://{}/tls/app:1.0", reg.host)])
        .output()
        .unwrap();
    assert!(!out.status.success(), "skopeo trusted a certificate it had no CA for");
    assert!(String::from_utf8_lossy(&out.stderr).contains("certificate"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn htpasswd_registry_requires_credentials() {
    let reg = Registry::start(RegistryOptions { tls: true, htpasswd: Some(("mirror".into(), "s3cret-pass".into())) });
    let anonymous = reg.http().get(format!("{}/v2/", reg.base_url())).send().unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    assert!(anonymous.headers()["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    let img = Pusher::new(&reg).image("auth/app", "v2", Format::Docker, ("linux", "amd64"), &[(3, 4096)]);
    assert_eq!(skopeo_digest(&reg, "auth/app:v2"), img.digest);
    let out = std::process::Command::new(support::require("skopeo"))
        .args([
            "inspect",
            "--raw",
            &format!("--cert-dir={}", reg.cert_dir.as_ref().unwrap().display()),
            "--creds=mirror:wrong",
            &format!("docker://{}/auth/app:v2", reg.host),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "wrong credentials were accepted");
}

#[test]
fn real_oci_layouts_from_the_shared_data_push_unchanged() {
    let reg = Registry::start(RegistryOptions::default());
    let root = support::shared_data().join("oci/oc-mirror");
    let push = Pusher::new(&reg);
    for (layout, repo) in
        [("multi-platform-container-latest", "sample/multi-platform"), ("oci-image", "sample/oci-image")]
    {
        let pushed = push.oci_layout(&root.join(layout), repo, "latest");
        assert_eq!(skopeo_digest(&reg, &format!("{repo}:latest")), pushed.digest, "{layout}");
        assert_eq!(sha256(&skopeo_raw(&reg, &format!("{repo}:latest"))), pushed.digest);
    }
}
