//! The copy engine under trouble: HTTPS, basic and bearer-token auth, a fault-injecting proxy
//! (5xx, 429 with Retry-After, a connection cut mid-blob, a stalled response), and kill -9 in
//! the middle of a run. Every run must end with every digest right.

mod support;

use support::cli::{bin, mirror_to_mirror, ok, write_isc};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use support::content::{Format, Pushed, Pusher};
use support::proxy::{Fault, FaultAction, Proxy};
use support::registry::{Registry, RegistryOptions};
use support::{sha256, skopeo, temp_dir, wait_until};

fn authfile(dir: &Path, entries: &[(&str, &str, &str)]) -> String {
    let auths: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(host, u, p)| {
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            (host.to_string(), serde_json::json!({ "auth": auth }))
        })
        .collect();
    let p = dir.join("auth.json");
    std::fs::write(&p, serde_json::to_vec(&serde_json::json!({ "auths": auths })).unwrap()).unwrap();
    p.display().to_string()
}

fn digest_at(reg: &Registry, reference: &str) -> String {
    let mut args: Vec<String> = vec!["inspect".into(), "--raw".into()];
    args.extend(reg.skopeo_flags());
    args.push(format!("docker://{}/{reference}", reg.host));
    sha256(&skopeo(&args.iter().map(String::as_str).collect::<Vec<_>>()))
}

fn cache_entries(cache: &Path) -> Vec<String> {
    let dir = cache.join(".imageset-operator/cache/blobs/sha256");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| Some(format!("sha256:{}", e.ok()?.file_name().to_str()?))).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn https_with_a_private_ca_and_basic_auth_on_both_sides() {
    let creds = || Some(("mirror".to_string(), "s3cret-pw".to_string()));
    let src = Registry::start(RegistryOptions { tls: true, htpasswd: creds(), ..Default::default() });
    let dst = Registry::start(RegistryOptions { tls: true, htpasswd: creds(), ..Default::default() });
    let img =
        Pusher::new(&src).multi_arch("team/app", "1.2", Format::Oci, &[("linux", "amd64"), ("linux", "arm64")], 5);
    let tmp = temp_dir("https-");
    let isc = write_isc(tmp.path(), &[format!("{}/team/app:1.2", src.host)]);
    let auth = authfile(tmp.path(), &[(&src.host, "mirror", "s3cret-pw"), (&dst.host, "mirror", "s3cret-pw")]);
    let (ca1, ca2) = (tmp.path().join("ca1.pem"), tmp.path().join("ca2.pem"));
    std::fs::write(&ca1, &src.ca.as_ref().unwrap().ca_pem).unwrap();
    std::fs::write(&ca2, &dst.ca.as_ref().unwrap().ca_pem).unwrap();
    let cache = tmp.path().join("cache");
    let ws = format!("file://{}", tmp.path().join("ws").display());
    let dest = format!("docker://{}/m", dst.host);
    let base = |extra: &[&str]| {
        let mut c = bin();
        c.args(["mirror", "-c", &isc, "--workspace", &ws, &dest, "--cache-dir"]).arg(&cache).args(extra);
        c.output().unwrap()
    };
    // Without the CA, TLS is verified and fails; the message says so and leaks no password.
    let o = base(&["--authfile", &auth]);
    assert!(!o.status.success());
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("certificate") || text.contains("Certificate"), "{text}");
    assert!(!text.contains("s3cret-pw"), "password in output: {text}");
    // Without credentials: access denied, naming the registry.
    let ca_args = ["--registry-ca", ca1.to_str().unwrap(), "--registry-ca", ca2.to_str().unwrap()];
    let o = base(&ca_args);
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!o.status.success() && text.contains("access denied"), "{text}");
    let mut args = ca_args.to_vec();
    args.extend(["--authfile", &auth]);
    let out = ok(base(&args));
    assert!(out.contains("✓ 1 / 1"), "{out}");
    assert_eq!(digest_at(&dst, "m/team/app:1.2"), img.digest);
}

#[test]
fn bearer_tokens_are_fetched_per_scope_and_reused() {
    let token = || Some(("robot".to_string(), "t0ken-pw".to_string()));
    let src = Registry::start(RegistryOptions { token: token(), ..Default::default() });
    let dst = Registry::start(RegistryOptions { token: token(), ..Default::default() });
    let push = Pusher::new(&src);
    let a = push.image("ns/a", "v1", Format::Docker, ("linux", "amd64"), &[(1, 100_000), (2, 2000)]);
    let b = push.image("ns/b", "v1", Format::Oci, ("linux", "amd64"), &[(1, 100_000), (3, 3000)]);
    let c = push.image("ns/b", "v2", Format::Oci, ("linux", "amd64"), &[(1, 100_000), (4, 4000)]);
    let tmp = temp_dir("token-");
    let names = ["ns/a:v1", "ns/b:v1", "ns/b:v2"].map(|n| format!("{}/{n}", src.host));
    let isc = write_isc(tmp.path(), &names);
    let auth = authfile(tmp.path(), &[(&src.host, "robot", "t0ken-pw"), (&dst.host, "robot", "t0ken-pw")]);
    let (src_tokens, dst_tokens) = (src.token.as_ref().unwrap(), dst.token.as_ref().unwrap());
    let (s0, d0) = (src_tokens.requests().len(), dst_tokens.requests().len());
    let dest = format!("docker://{}/m", dst.host);
    let out = ok(mirror_to_mirror(&isc, tmp.path(), &dest, &["--authfile", &auth]).output().unwrap());
    let ours =
        [("source", src_tokens.requests()[s0..].to_vec()), ("destination", dst_tokens.requests()[d0..].to_vec())];
    assert!(out.contains("✓ 3 / 3"), "{out}");
    assert!(out.contains("1 mounted"), "the shared layer is mounted from ns/a into ns/b: {out}");
    for (r, p) in [("m/ns/a:v1", &a), ("m/ns/b:v1", &b), ("m/ns/b:v2", &c)] {
        assert_eq!(digest_at(&dst, r), p.digest, "{r}");
    }
    // One token per scope set: never asked twice for the same scopes, and only as the robot.
    for (label, reqs) in &ours {
        assert!(!reqs.is_empty(), "{label}: no token requests");
        let mut seen = std::collections::BTreeSet::new();
        for r in reqs {
            assert_eq!(r.user.as_deref(), Some("robot"), "{label}: anonymous token request");
            assert_eq!(r.status, 200);
            let mut scopes = r.scopes.clone();
            scopes.sort();
            assert!(
                seen.insert(scopes.clone()),
                "{label}: token for {scopes:?} fetched twice: {:?}",
                reqs.iter().map(|r| r.scopes.clone()).collect::<Vec<_>>()
            );
        }
        // Per repository at most pull and pull+push, plus one mount scope pair.
        assert!(seen.len() <= 5, "{label}: {seen:?}");
    }
}

struct Faulty {
    src: Registry,
    dst: Registry,
    big: Pushed,
    small: Vec<Pushed>,
    tmp: tempfile::TempDir,
}

const BIG: usize = 24 << 20;

fn faulty_world() -> Faulty {
    let src = Registry::start(RegistryOptions::default());
    let dst = Registry::start(RegistryOptions::default());
    let push = Pusher::new(&src);
    let big = push.image("big/app", "v1", Format::Docker, ("linux", "amd64"), &[(900, BIG), (901, 10_000)]);
    let small = (0..4)
        .map(|i| {
            push.image(&format!("small/s{i}"), "v1", Format::Oci, ("linux", "amd64"), &[(800 + i, 50_000 + i as usize)])
        })
        .collect();
    Faulty { src, dst, big, small, tmp: temp_dir("faults-") }
}

impl Faulty {
    fn names(&self, src_host: &str) -> Vec<String> {
        std::iter::once(&self.big).chain(&self.small).map(|p| format!("{src_host}/{}:{}", p.repo, p.tag)).collect()
    }

    fn command(&self, src_host: &str, dst_host: &str, extra: &[&str]) -> Command {
        let isc = write_isc(self.tmp.path(), &self.names(src_host));
        let mut c = bin();
        c.args(["mirror", "-c", &isc, "--workspace", &format!("file://{}", self.tmp.path().join("ws").display())])
            .arg(format!("docker://{dst_host}/m"))
            .arg("--cache-dir")
            .arg(self.cache())
            .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
            .args(extra);
        c
    }

    fn cache(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    fn assert_all_mirrored(&self) {
        for p in std::iter::once(&self.big).chain(&self.small) {
            assert_eq!(digest_at(&self.dst, &format!("m/{}:{}", p.repo, p.tag)), p.digest, "{}", p.repo);
        }
        let verify = ok(bin().args(["cache", "verify", "--cache-dir"]).arg(self.cache()).output().unwrap());
        assert!(verify.contains("cache is clean"), "{verify}");
    }
}

#[test]
fn server_errors_rate_limits_cuts_and_stalls_are_retried_and_a_cut_blob_resumes() {
    let w = faulty_world();
    let sp = Proxy::start(&w.src.host);
    let dp = Proxy::start(&w.dst.host);
    let big_layer = w.big.blobs[0].clone();
    let small_layer = w.small[0].blobs[0].clone();
    let faults = [
        sp.add_fault(Fault::new(
            Some("GET"),
            &format!("/blobs/{big_layer}"),
            1,
            FaultAction::Cut { after: 5 << 20, reset: false },
        )),
        sp.add_fault(Fault::new(
            Some("GET"),
            &format!("/blobs/{}", w.small[2].blobs[0]),
            1,
            FaultAction::Cut { after: 20_000, reset: true },
        )),
        sp.add_fault(Fault::new(Some("GET"), &format!("/blobs/{small_layer}"), 1, FaultAction::Status(503))),
        sp.add_fault(Fault::new(Some("HEAD"), "/manifests/", 1, FaultAction::Status(502))),
        sp.add_fault(Fault::new(
            Some("GET"),
            &format!("/blobs/{}", w.small[1].blobs[0]),
            1,
            FaultAction::Stall { after: Some(1000), duration: Duration::from_secs(6) },
        )),
        dp.add_fault(Fault::new(Some("HEAD"), "/blobs/", 1, FaultAction::TooManyRequests { retry_after: 1 })),
        dp.add_fault(Fault::new(Some("PUT"), "/blobs/uploads/", 1, FaultAction::Status(500))),
        dp.add_fault(Fault::new(Some("PUT"), "/manifests/", 1, FaultAction::Status(503))),
    ];
    let out = ok(w.command(&sp.host, &dp.host, &["--stall-timeout", "2"]).output().unwrap());
    assert!(out.contains("✓ 5 / 5"), "{out}");
    for id in faults {
        assert_eq!(if id < 5 { sp.fired(id) } else { dp.fired(id) }, 1, "fault {id} did not fire");
    }
    // The cut layer was fetched twice, the second time only from where it stopped.
    assert_eq!(sp.blob_gets(&big_layer), 2);
    assert_eq!(sp.bytes_sent_for(&big_layer), BIG as u64, "bytes re-sent beyond the cut");
    let resumed =
        sp.log().into_iter().filter(|e| e.path().contains(&big_layer)).filter_map(|e| e.range).collect::<Vec<_>>();
    assert_eq!(resumed.len(), 1, "one Range request");
    // Every other blob exactly once.
    for p in std::iter::once(&w.big).chain(&w.small) {
        for b in &p.blobs {
            let faulted = [&big_layer, &small_layer, &w.small[1].blobs[0], &w.small[2].blobs[0]];
            let want = if faulted.contains(&b) { 2 } else { 1 };
            assert_eq!(sp.blob_gets(b), want, "{b} of {}", p.repo);
        }
    }
    w.assert_all_mirrored();
}

#[test]
fn kill_9_mid_run_then_rerun_resumes_and_refetches_nothing_verified() {
    let w = faulty_world();
    let sp = Proxy::start(&w.src.host);
    let big_layer = w.big.blobs[0].clone();
    let cut_at: u64 = 9 << 20;
    sp.add_fault(Fault::new(
        Some("GET"),
        &format!("/blobs/{big_layer}"),
        1,
        FaultAction::Stall { after: Some(cut_at), duration: Duration::from_secs(60) },
    ));
    let mut child = w
        .command(&sp.host, &w.dst.host, &["--stall-timeout", "120"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = w.cache().join(format!(".imageset-operator/cache/staging/{}.partial", &big_layer[7..]));
    let small_blobs: Vec<String> = w.small.iter().flat_map(|p| p.blobs.clone()).collect();
    let cache = w.cache();
    wait_until(
        "the big layer stalled mid-way and the small images cached",
        Duration::from_secs(60),
        || {
            sp.bytes_sent_for(&big_layer) >= cut_at
                && std::fs::metadata(&partial).map(|m| m.len() > 0).unwrap_or(false)
                && small_blobs.iter().all(|b| cache_entries(&cache).contains(b))
        },
        || {
            let have = cache_entries(&cache);
            let missing: Vec<&String> = small_blobs.iter().filter(|b| !have.contains(b)).collect();
            format!(
                "sent {} of the big layer; cache {have:?}; missing {missing:?}; proxy {:?}",
                sp.bytes_sent_for(&big_layer),
                sp.log().iter().map(|e| (e.method.clone(), e.target.clone(), e.status)).collect::<Vec<_>>()
            )
        },
    );
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept > 0 && kept <= cut_at, "partial holds {kept} bytes");
    let verified = cache_entries(&w.cache());
    assert!(!verified.contains(&big_layer));

    sp.clear_faults();
    sp.reset_stats();
    let out = ok(w.command(&sp.host, &w.dst.host, &[]).output().unwrap());
    assert!(out.contains("✓ 5 / 5"), "{out}");
    for d in &verified {
        assert_eq!(sp.blob_gets(d), 0, "{d} was verified in the cache yet fetched again");
    }
    assert_eq!(sp.blob_gets(&big_layer), 1);
    assert_eq!(sp.bytes_sent_for(&big_layer), BIG as u64 - kept, "only the bytes after the partial are pulled again");
    w.assert_all_mirrored();
}
