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
    let reg = Registry::start(RegistryOptions {
        tls: true,
        htpasswd: Some(("mirror".into(), "s3cret-pass".into())),
        ..Default::default()
    });
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

/// The claims of a JWT, unverified.
fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn skopeo_fails(args: &[String]) -> String {
    let out = std::process::Command::new(support::require("skopeo")).args(args).output().unwrap();
    assert!(!out.status.success(), "skopeo {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn token_registry_issues_scoped_jwts_and_refuses_wrong_credentials() {
    let reg = Registry::start(RegistryOptions {
        token: Some(("mirror".into(), "t0ken-pass".into())),
        token_expires_in: Some(3),
        ..Default::default()
    });
    let server = reg.token.as_ref().unwrap();
    let http = reg.http();
    let base = reg.base_url();

    // The registry challenges for a bearer token from our token server.
    let challenge = http.get(format!("{base}/v2/")).send().unwrap();
    assert_eq!(challenge.status().as_u16(), 401);
    let www = challenge.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(www.starts_with(&format!("Bearer realm=\"{}\"", server.realm)), "{www}");
    assert!(www.contains(&format!("service=\"{}\"", support::token::SERVICE)), "{www}");

    // The Pusher goes through the token flow; skopeo does it on its own with --creds.
    let img = Pusher::new(&reg).image("token/app", "v1", Format::Oci, ("linux", "amd64"), &[(11, 50_000)]);
    assert_eq!(skopeo_digest(&reg, "token/app:v1"), img.digest);
    let layout = support::shared_data().join("oci/oc-mirror/oci-image");
    let layout_digest = sha256(
        &std::fs::read(layout.join("blobs/sha256/b5632fc886395e5595e9aed61f2e8473079fb81666f229ec5c3772d2ee64c389"))
            .unwrap(),
    );
    let mut copy: Vec<String> = vec!["copy".into(), "--preserve-digests".into(), "--dest-tls-verify=false".into()];
    copy.push("--dest-creds=mirror:t0ken-pass".into());
    copy.push(format!("oci:{}", layout.display()));
    copy.push(format!("docker://{}/token/layout:latest", reg.host));
    skopeo(&copy.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(skopeo_digest(&reg, "token/layout:latest"), layout_digest);
    let pushes = server.requests();
    assert!(
        pushes.iter().any(|r| r.status == 200 && r.scopes.iter().any(|s| s == "repository:token/layout:pull,push")),
        "skopeo asked for a push token: {pushes:?}"
    );

    // A token granting several scopes at once (a cross-repository mount asks for push on the
    // target and pull on the source), signed with an x5c chain the registry trusts.
    let token = server
        .fetch(Some(("mirror", "t0ken-pass")), &["repository:token/copy:pull,push", "repository:token/app:pull"])
        .expect("token for the right credentials");
    let claims = jwt_claims(&token);
    assert_eq!(
        claims["access"][0],
        serde_json::json!({"type": "repository", "name": "token/copy", "actions": ["pull", "push"]})
    );
    assert_eq!(
        claims["access"][1],
        serde_json::json!({"type": "repository", "name": "token/app", "actions": ["pull"]})
    );
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 3);
    let mount = http
        .post(format!("{base}/v2/token/copy/blobs/uploads/?mount={}&from=token/app", img.blobs[0]))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(mount.status().as_u16(), 201, "mount with a two-scope token: {:?}", mount.text());
    let manifest_url = format!("{base}/v2/token/app/manifests/v1");
    let accept = "application/vnd.oci.image.manifest.v1+json";
    let ok = http.get(&manifest_url).header("Accept", accept).bearer_auth(&token).send().unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(sha256(&ok.bytes().unwrap()), img.digest);

    // Anonymous callers get a token that grants nothing; wrong credentials get no token.
    let anonymous = server.fetch(None, &["repository:token/app:pull"]).expect("anonymous token");
    assert_eq!(jwt_claims(&anonymous)["access"], serde_json::json!([]));
    let denied = http.get(&manifest_url).bearer_auth(&anonymous).send().unwrap();
    assert_eq!(denied.status().as_u16(), 401);
    let www = denied.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(www.contains("error=\"insufficient_scope\""), "{www}");
    assert!(www.contains("scope=\"repository:token/app:pull\""), "{www}");
    assert_eq!(server.fetch(Some(("mirror", "wrong")), &["repository:token/app:pull"]), None);
    assert_eq!(server.requests().last().unwrap().status, 401);
    let stderr = skopeo_fails(&[
        "inspect".into(),
        "--raw".into(),
        "--tls-verify=false".into(),
        "--creds=mirror:wrong".into(),
        format!("docker://{}/token/app:v1", reg.host),
    ]);
    assert!(stderr.contains("401") || stderr.contains("nauthorized"), "{stderr}");

    // The fault proxy fronts a token registry too: the challenge still names the token server.
    let proxy = support::proxy::Proxy::start(&reg.host);
    let through = skopeo(&[
        "inspect",
        "--format={{.Digest}}",
        "--tls-verify=false",
        "--creds=mirror:t0ken-pass",
        &format!("docker://{}/token/app:v1", proxy.host),
    ]);
    assert_eq!(String::from_utf8(through).unwrap().trim(), img.digest);
    assert!(proxy.stats().count("GET", "/manifests/v1") >= 1);

    // Tokens are counted; the harness reuses one per scope until `expires_in` runs out.
    let scope = "repository:token/app:pull,push";
    let before = server.issued();
    let first = reg.bearer(scope);
    assert_eq!(reg.bearer(scope), first);
    assert!(server.issued() <= before + 1);
    let counter = server.issued_counter();
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert_ne!(reg.bearer(scope), first, "an expired token is replaced");
    assert_eq!(counter.load(std::sync::atomic::Ordering::SeqCst), server.issued());
    assert!(server.issued() > before);
}

/// Reads a response body until it ends or fails; returns the bytes and whether it failed.
fn read_until_error(mut resp: reqwest::blocking::Response) -> (Vec<u8>, bool) {
    use std::io::Read;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match resp.read(&mut buf) {
            Ok(0) => return (got, false),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => return (got, true),
        }
    }
}

#[test]
fn fault_proxy_forwards_counts_and_breaks_requests_on_demand() {
    use std::time::Duration;
    use support::proxy::{Fault, FaultAction, Proxy};

    let reg = Registry::start(RegistryOptions::default());
    let size = 3 * 1024 * 1024 + 17;
    let img = Pusher::new(&reg).image("proxied/app", "v1", Format::Docker, ("linux", "amd64"), &[(21, size)]);
    let layer = &img.blobs[0];
    let proxy = Proxy::start(&reg.host);
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let blob_url = format!("{}/v2/proxied/app/blobs/{layer}", proxy.base_url());
    let blob_path = format!("/v2/proxied/app/blobs/{layer}");

    // Plain forwarding over one keep-alive connection: manifest, then the whole blob.
    let m = http
        .get(format!("{}/v2/proxied/app/manifests/v1", proxy.base_url()))
        .header("Accept", img.media_type.as_str())
        .send()
        .unwrap();
    assert_eq!(m.status().as_u16(), 200);
    assert_eq!(sha256(&m.bytes().unwrap()), img.digest);
    let whole = http.get(&blob_url).send().unwrap().bytes().unwrap();
    assert_eq!(sha256(&whole), *layer);
    assert_eq!(proxy.blob_gets(layer), 1);
    assert_eq!(proxy.bytes_sent_for(layer), size as u64);
    let stats = proxy.stats();
    assert_eq!(stats.requests, 2);
    assert_eq!(stats.paths[&blob_path].methods["GET"], 1);
    assert_eq!(stats.count("GET", "/manifests/v1"), 1);

    // A 503 answers once, then requests pass again.
    let id = proxy.add_fault(Fault::new(Some("GET"), layer, 1, FaultAction::Status(503)));
    let failed = http.get(&blob_url).send().unwrap();
    assert_eq!(failed.status().as_u16(), 503);
    assert!(failed.bytes().unwrap().is_empty());
    assert_eq!(http.head(&blob_url).send().unwrap().status().as_u16(), 200, "the rule is for GET only");
    assert_eq!(sha256(&http.get(&blob_url).send().unwrap().bytes().unwrap()), *layer);
    assert_eq!(proxy.fired(id), 1);

    // 429 with Retry-After.
    proxy.add_fault(Fault::new(None, "/manifests/", 1, FaultAction::TooManyRequests { retry_after: 7 }));
    let limited = http.get(format!("{}/v2/proxied/app/manifests/v1", proxy.base_url())).send().unwrap();
    assert_eq!(limited.status().as_u16(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");

    // A cut after K bytes gives a short read; `Range: bytes=K-` then sends exactly the tail.
    proxy.reset_stats();
    let k = 1_000_000u64;
    proxy.add_fault(Fault::new(Some("GET"), layer, 1, FaultAction::Cut { after: k, reset: false }));
    let cut = http.get(&blob_url).send().unwrap();
    assert_eq!(cut.status().as_u16(), 200);
    assert_eq!(cut.content_length(), Some(size as u64));
    let (head, failed) = read_until_error(cut);
    assert!(failed, "a body cut short is an error for the client");
    assert_eq!(head.len() as u64, k);
    let tail = http.get(&blob_url).header("Range", format!("bytes={k}-")).send().unwrap();
    assert_eq!(tail.status().as_u16(), 206);
    let want_range = format!("bytes {k}-{}/{size}", size - 1);
    assert_eq!(tail.headers()["content-range"], want_range.as_str());
    let tail = tail.bytes().unwrap();
    assert_eq!(tail.len() as u64, size as u64 - k);
    assert_eq!(sha256(&[head, tail.to_vec()].concat()), *layer);
    assert_eq!(proxy.bytes_sent_for(layer), size as u64, "K bytes, then only the tail again");
    let log = proxy.log();
    assert_eq!(log[1].range.as_deref(), Some(format!("bytes={k}-").as_str()));
    assert_eq!((log[0].status, log[1].status), (200, 206));

    // A reset cuts the same way, with at most K bytes arriving.
    proxy.add_fault(Fault::new(Some("GET"), layer, 1, FaultAction::Cut { after: 4096, reset: true }));
    let (got, failed) = read_until_error(http.get(&blob_url).send().unwrap());
    assert!(failed && got.len() <= 4096, "reset after {} bytes, failed: {failed}", got.len());

    // Stalls: before anything is sent, and in the middle of the body.
    let impatient = reqwest::blocking::Client::builder().timeout(Duration::from_millis(800)).build().unwrap();
    let stall = Duration::from_secs(2);
    proxy.add_fault(Fault::new(Some("GET"), layer, 1, FaultAction::Stall { after: None, duration: stall }));
    let err = impatient.get(&blob_url).send().unwrap_err();
    assert!(err.is_timeout(), "{err}");
    proxy.add_fault(Fault::new(Some("GET"), layer, 1, FaultAction::Stall { after: Some(10_000), duration: stall }));
    let (got, failed) = read_until_error(impatient.get(&blob_url).send().unwrap());
    assert!(failed && got.len() <= 10_000, "stalled after {} bytes, failed: {failed}", got.len());
    assert_eq!(sha256(&impatient.get(&blob_url).send().unwrap().bytes().unwrap()), *layer, "rules are spent");
}

#[test]
fn fault_proxy_forwards_chunked_uploads_and_rewrites_locations() {
    use support::proxy::Proxy;

    let reg = Registry::start(RegistryOptions::default());
    let proxy = Proxy::start(&reg.host);
    let http = reqwest::blocking::Client::new();
    let base = proxy.base_url();
    let bytes = support::content::seeded_bytes(99, 5 * 1024 * 1024 + 3);
    let digest = sha256(&bytes);

    // The registry builds absolute upload URLs; through the proxy they name the proxy.
    let start = http.post(format!("{base}/v2/proxied/upload/blobs/uploads/")).send().unwrap();
    assert_eq!(start.status().as_u16(), 202);
    let loc = start.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with(&base), "{loc}");
    assert!(!loc.contains(&reg.host), "{loc}");
    // A body of unknown length goes out chunked.
    let patch = http
        .patch(&loc)
        .header("Content-Type", "application/octet-stream")
        .body(reqwest::blocking::Body::new(std::io::Cursor::new(bytes.clone())))
        .send()
        .unwrap();
    assert_eq!(patch.status().as_u16(), 202, "{:?}", patch.text());
    let loc = patch.headers()["location"].to_str().unwrap().to_string();
    let sep = if loc.contains('?') { '&' } else { '?' };
    let put = http.put(format!("{loc}{sep}digest={digest}")).send().unwrap();
    assert_eq!(put.status().as_u16(), 201, "{:?}", put.text());
    let back = http.get(format!("{base}/v2/proxied/upload/blobs/{digest}")).send().unwrap().bytes().unwrap();
    assert_eq!(sha256(&back), digest);
    // Straight from the registry too: the proxy changed nothing on the way.
    let direct = reg.http().get(format!("{}/v2/proxied/upload/blobs/{digest}", reg.base_url())).send().unwrap();
    assert_eq!(sha256(&direct.bytes().unwrap()), digest);
    assert_eq!(proxy.stats().count("PATCH", "/blobs/uploads/"), 1);
    assert!(proxy.log().iter().any(|e| e.method == "PATCH" && e.chunked_request), "{:?}", proxy.log());
}
