//! The copy engine end to end through the real CLI: real registries, skopeo as the judge.

mod support;

use support::cli::{bin, mirror_to_mirror, ok, write_isc};

use std::process::Output;

use support::content::{Format, Pushed, Pusher};
use support::registry::{Registry, RegistryOptions};
use support::{sha256, skopeo, temp_dir};

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run imageset-operator")
}

fn raw(reg: &Registry, reference: &str) -> Vec<u8> {
    let mut args: Vec<String> = vec!["inspect".into(), "--raw".into()];
    args.extend(reg.skopeo_flags());
    args.push(format!("docker://{}/{reference}", reg.host));
    skopeo(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Every manifest of `p` (top and children) and every blob is at `reg` under `repo`, by digest.
fn assert_mirrored(reg: &Registry, repo: &str, tag: &str, p: &Pushed) {
    let top = raw(reg, &format!("{repo}:{tag}"));
    assert_eq!(sha256(&top), p.digest, "{repo}:{tag} has another digest at {}", reg.host);
    let v: serde_json::Value = serde_json::from_slice(&top).unwrap();
    for child in v["manifests"].as_array().into_iter().flatten() {
        let d = child["digest"].as_str().unwrap();
        assert_eq!(sha256(&raw(reg, &format!("{repo}@{d}"))), d);
    }
    let http = reg.http();
    for b in &p.blobs {
        let r = reg.authorize(repo, http.get(format!("{}/v2/{repo}/blobs/{b}", reg.base_url()))).send().unwrap();
        assert!(r.status().is_success(), "blob {b} missing from {repo}");
        assert_eq!(sha256(&r.bytes().unwrap()), *b);
    }
}

struct World {
    src: Registry,
    images: Vec<(String, String, Pushed)>,
}

/// A source registry with a Docker manifest list, an OCI index, a single image sharing a layer
/// with another repository, and an image referenced by digest only.
fn world() -> World {
    let src = Registry::start(RegistryOptions::default());
    let push = Pusher::new(&src);
    let list = push.multi_arch(
        "apps/list",
        "v1",
        Format::Docker,
        &[("linux", "amd64"), ("linux", "arm64"), ("linux", "s390x")],
        11,
    );
    let index = push.multi_arch("apps/index", "v2", Format::Oci, &[("linux", "amd64"), ("linux", "ppc64le")], 21);
    let single = push.image("base/single", "1.0", Format::Docker, ("linux", "amd64"), &[(31, 300_000), (32, 70_000)]);
    let shared = push.image("other/shared", "2.0", Format::Oci, ("linux", "amd64"), &[(31, 300_000), (33, 1000)]);
    let by_digest = push.image("pinned/img", "unused", Format::Oci, ("linux", "amd64"), &[(41, 5000)]);
    let h = &src.host;
    let images = vec![
        (format!("{h}/apps/list:v1"), "apps/list".to_string(), list),
        (format!("{h}/apps/index:v2"), "apps/index".into(), index),
        (format!("{h}/base/single:1.0"), "base/single".into(), single),
        (format!("{h}/other/shared:2.0"), "other/shared".into(), shared),
        (format!("{h}/pinned/img@{}", by_digest.digest), "pinned/img".into(), by_digest),
    ];
    World { src, images }
}

fn dest_tag(name: &str, p: &Pushed) -> String {
    if name.contains('@') { format!("sha256-{}", &p.digest[7..]) } else { p.tag.clone() }
}

#[test]
fn mirror_to_mirror_copies_every_kind_by_digest_and_a_rerun_touches_nothing() {
    let w = world();
    let dst = Registry::start(RegistryOptions::default());
    let tmp = temp_dir("m2m-");
    let names: Vec<String> = w.images.iter().map(|i| i.0.clone()).collect();
    let isc = write_isc(tmp.path(), &names);
    let cache = tmp.path().join("cache").display().to_string();
    let dest = format!("docker://{}/mirror", dst.host);
    let run_it = || ok(mirror_to_mirror(&isc, tmp.path(), &dest, &[]).output().unwrap());
    let out = run_it();
    assert!(out.contains("✓ 5 / 5 additional images mirrored successfully (0 already present)"), "{out}");
    for (name, repo, p) in &w.images {
        assert_mirrored(&dst, &format!("mirror/{repo}"), &dest_tag(name, p), p);
    }
    // The shared layer went up once and was mounted into the second repository.
    assert!(out.contains(" 1 mounted"), "{out}");
    let again = run_it();
    assert!(again.contains("(5 already present)"), "{again}");
    assert!(again.contains("0 blobs fetched (0 MB), 0 MB uploaded"), "{again}");
    let verify = ok(run(&["cache", "verify", "--cache-dir", &cache]));
    assert!(verify.contains("cache is clean"), "{verify}");
    drop(w.src);
}

#[test]
fn mirror_to_disk_then_disk_to_mirror_round_trips_and_archives_are_incremental() {
    let w = world();
    let dst = Registry::start(RegistryOptions::default());
    let tmp = temp_dir("m2d-");
    let (first, rest) = w.images.split_at(2);
    let isc1 = write_isc(tmp.path(), &first.iter().map(|i| i.0.clone()).collect::<Vec<_>>());
    let archives = tmp.path().join("archives");
    let file_dest = format!("file://{}", archives.display());
    let cache = tmp.path().join("cache").display().to_string();
    let out = ok(run(&["mirror", "-c", &isc1, &file_dest, "--cache-dir", &cache, "--src-tls-verify=false"]));
    assert!(out.contains("mirror_000001.tar"), "{out}");
    let count_before = |out: &str, marker: &str| -> usize {
        let at = out.find(marker).unwrap_or_else(|| panic!("{marker:?} not in {out}"));
        out[..at].rsplit(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty()).unwrap().parse().unwrap()
    };
    let archived_first = count_before(&out, " new blobs");
    // A second run with more images archives only the new blobs, in the next part.
    let all: Vec<String> = w.images.iter().map(|i| i.0.clone()).collect();
    let isc2 = write_isc(&tmp.path().join("second").tap_mkdir(), &all);
    let out = ok(run(&["mirror", "-c", &isc2, &file_dest, "--cache-dir", &cache, "--src-tls-verify=false"]));
    assert!(out.contains("mirror_000002.tar"), "{out}");
    let first_blobs: usize = first.iter().map(|i| i.2.blobs.len()).sum();
    assert_eq!(count_before(&out, " already in earlier archives"), archived_first, "{out}");
    assert!(!out.contains(&format!(" {first_blobs} new blobs")), "{out}");

    // The receiving side: a fresh cache, only the archives.
    let cache2 = tmp.path().join("cache2").display().to_string();
    let from = format!("file://{}", archives.display());
    let dest = format!("docker://{}/enclave", dst.host);
    let out =
        ok(run(&["mirror", "-c", &isc2, "--from", &from, &dest, "--cache-dir", &cache2, "--dest-tls-verify=false"]));
    assert!(out.contains("✓ 5 / 5 additional images mirrored successfully"), "{out}");
    assert!(out.contains("0 blobs fetched"), "disk-to-mirror never reaches upstream: {out}");
    for (name, repo, p) in rest.iter().chain(first) {
        assert_mirrored(&dst, &format!("enclave/{repo}"), &dest_tag(name, p), p);
    }
}

#[test]
fn tampered_or_hostile_archives_are_refused_before_use() {
    let w = world();
    let tmp = temp_dir("bad-archive-");
    let isc = write_isc(tmp.path(), &[w.images[2].0.clone()]);
    let archives = tmp.path().join("archives");
    let cache = tmp.path().join("cache").display().to_string();
    ok(run(&[
        "mirror",
        "-c",
        &isc,
        &format!("file://{}", archives.display()),
        "--cache-dir",
        &cache,
        "--src-tls-verify=false",
    ]));
    let tar = archives.join("mirror_000001.tar");
    let good = std::fs::read(&tar).unwrap();
    let from = format!("file://{}", archives.display());
    let attempt = |label: &str| {
        let cache = tmp.path().join(format!("cache-{label}")).display().to_string();
        let o = run(&["mirror", "-c", &isc, "--from", &from, "docker://127.0.0.1:1/x", "--cache-dir", &cache]);
        assert!(!o.status.success(), "{label}: accepted");
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    // One flipped byte deep inside the 300 kB layer.
    let mut bent = good.clone();
    let at = good.len() / 2;
    bent[at] ^= 0xff;
    std::fs::write(&tar, &bent).unwrap();
    let err = attempt("bent");
    assert!(err.contains("hashes to") || err.contains("does not match"), "{err}");
    // A member escaping the tree.
    let mut b = tar::Builder::new(Vec::new());
    let mut ar = tar::Archive::new(good.as_slice());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let mut h = e.header().clone();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        let path = e.path().unwrap().to_path_buf();
        b.append_data(&mut h, path, data.as_slice()).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_entry_type(tar::EntryType::Regular);
    h.as_gnu_mut().unwrap().name[..16].copy_from_slice(b"../../escaped.sh");
    h.set_cksum();
    b.append(&h, b"hi\n".as_slice()).unwrap();
    std::fs::write(&tar, b.into_inner().unwrap()).unwrap();
    let err = attempt("escape");
    assert!(err.contains("unexpected member"), "{err}");
    assert!(!tmp.path().join("escaped.sh").exists());
}

trait Mkdir {
    fn tap_mkdir(self) -> Self;
}

impl Mkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}

#[test]
fn a_second_destination_is_fed_from_the_cache_without_fetching_again() {
    let w = world();
    let dst = Registry::start(RegistryOptions::default());
    let tmp = temp_dir("two-dest-");
    let isc = write_isc(tmp.path(), &w.images.iter().map(|i| i.0.clone()).collect::<Vec<_>>());
    let unique: std::collections::BTreeSet<&String> = w.images.iter().flat_map(|i| &i.2.blobs).collect();
    for (prefix, fetched) in
        [("first", format!("{} blobs fetched", unique.len())), ("second", "0 blobs fetched".into())]
    {
        let dest = format!("docker://{}/{prefix}", dst.host);
        let out = ok(mirror_to_mirror(&isc, tmp.path(), &dest, &[]).output().unwrap());
        assert!(out.contains(&fetched), "{prefix}: {out}");
    }
    for (name, repo, p) in &w.images {
        assert_mirrored(&dst, &format!("second/{repo}"), &dest_tag(name, p), p);
    }
}

#[test]
fn a_platform_filter_copies_a_sparse_index() {
    use imageset_operator::api::mirror::PlatformSelector;
    use imageset_operator::copy::{Engine, Options, Outcome, Source, Target};
    use imageset_operator::plan::{CopyItem, ImageKind};
    use imageset_operator::registry::{Client, ClientOptions};
    use std::sync::Arc;

    let src = Registry::start(RegistryOptions::default());
    let dst = Registry::start(RegistryOptions::default());
    let platforms = [("linux", "amd64"), ("linux", "arm64"), ("linux", "s390x")];
    let full = Pusher::new(&src).multi_arch("rel/payload", "4.18", Format::Oci, &platforms, 70);
    let tmp = temp_dir("sparse-");
    let client = Client::new(ClientOptions { insecure: vec!["*".into()], ..Default::default() }).unwrap();
    let cache = imageset_operator::cache::Cache::open(tmp.path()).unwrap();
    let engine = Engine::new(Arc::new(cache), 2);
    let engine = engine.session(Arc::new(client), Options { parallel_images: 2, parallel_layers: 4 });
    let keep = |os: &str, arch: &str| PlatformSelector { os: os.into(), architecture: arch.into() };
    let item = CopyItem {
        kind: ImageKind::Release,
        origin: format!("docker://{}/rel/payload:4.18", src.host),
        source: format!("docker://{}/rel/payload:4.18", src.host),
        destination: format!("docker://{}/ocp/rel/payload:4.18", dst.host),
        platforms: vec![keep("linux", "amd64"), keep("linux", "arm64")],
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let results = rt.block_on(engine.run(std::slice::from_ref(&item), &Source::Registry, Target::Registry));
    assert_eq!(results[0].outcome, Outcome::Copied, "{:?}", results[0].outcome);
    let top = raw(&dst, "ocp/rel/payload:4.18");
    assert_eq!(Some(sha256(&top)), results[0].digest, "the sparse index is what the destination holds");
    assert_ne!(sha256(&top), full.digest, "a filtered index has its own digest");
    let v: serde_json::Value = serde_json::from_slice(&top).unwrap();
    let archs: Vec<&str> =
        v["manifests"].as_array().unwrap().iter().map(|m| m["platform"]["architecture"].as_str().unwrap()).collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    // The s390x manifest and its own layer stayed behind.
    let full_index: serde_json::Value = serde_json::from_slice(&full.manifest).unwrap();
    let s390x = full_index["manifests"][2]["digest"].as_str().unwrap();
    let http = dst.http();
    let head = http.head(format!("{}/v2/ocp/rel/payload/manifests/{s390x}", dst.base_url())).send().unwrap();
    assert_eq!(head.status().as_u16(), 404);
    let mut kept_blobs = std::collections::BTreeMap::new();
    for child in v["manifests"].as_array().unwrap() {
        let d = child["digest"].as_str().unwrap();
        let m = raw(&dst, &format!("ocp/rel/payload@{d}"));
        assert_eq!(sha256(&m), d);
        let m: serde_json::Value = serde_json::from_slice(&m).unwrap();
        for b in std::iter::once(&m["config"]).chain(m["layers"].as_array().unwrap()) {
            kept_blobs.insert(b["digest"].as_str().unwrap().to_string(), b["size"].as_u64().unwrap());
        }
    }
    // Progress: the distinct blobs of the two platforms kept, each once, all in place.
    let bytes = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    let kept: u64 = kept_blobs.values().sum();
    assert_eq!(bytes(&engine.progress.bytes_needed), kept, "blobs needed: {kept_blobs:?}");
    assert_eq!(bytes(&engine.progress.bytes_placed), kept);
    // Copying again finds it present, and needs nothing more.
    let again = rt.block_on(engine.run(&[item], &Source::Registry, Target::Registry));
    assert_eq!(again[0].outcome, Outcome::AlreadyPresent);
    assert_eq!(bytes(&engine.progress.bytes_needed), kept);
}

#[test]
fn a_mirror_to_disk_dry_run_lists_what_the_cache_lacks_in_missing_txt() {
    let w = world();
    let tmp = temp_dir("missing-");
    let archives = format!("file://{}", tmp.path().join("archives").display());
    let cache = tmp.path().join("cache").display().to_string();
    let all: Vec<String> = w.images.iter().map(|i| i.0.clone()).collect();
    let isc_all = write_isc(tmp.path(), &all);
    let dry = |isc: &str| ok(run(&["mirror", "-c", isc, &archives, "--cache-dir", &cache, "--dry-run"]));
    let missing = tmp.path().join("archives/working-dir/dry-run/missing.txt");
    let out = dry(&isc_all);
    assert!(out.contains("5/5 images necessary for mirroring are not available in the cache"), "{out}");
    let mapping = std::fs::read_to_string(tmp.path().join("archives/working-dir/dry-run/mapping.txt")).unwrap();
    assert_eq!(std::fs::read_to_string(&missing).unwrap(), mapping, "nothing cached: every line is missing");
    // Cache two of them with a real run, then ask again: the other three are missing.
    let first = tmp.path().join("first");
    std::fs::create_dir_all(&first).unwrap();
    let isc_two = write_isc(&first, &all[..2]);
    ok(run(&["mirror", "-c", &isc_two, &archives, "--cache-dir", &cache, "--src-tls-verify=false"]));
    let out = dry(&isc_all);
    assert!(out.contains("3/5 images necessary"), "{out}");
    let lines: Vec<String> = mapping.lines().skip(2).map(|l| format!("{l}\n")).collect();
    assert_eq!(std::fs::read_to_string(&missing).unwrap(), lines.concat());
    assert!(lines.iter().all(|l| l.starts_with("docker://") && l.contains("=docker://localhost:55000/")), "{lines:?}");
    // The two cached ones alone: oc-mirror's words for a cache that holds everything.
    let out = dry(&isc_two);
    assert!(out.lines().any(|l| l == "workflow mode: mirrorToDisk"), "{out}");
    assert!(out.lines().any(|l| l == "images to copy 2"), "{out}");
    assert!(
        out.contains("all 2 images required for mirroring are available in local cache. You may proceed with mirroring from disk to disconnected registry"),
        "{out}"
    );
}

#[test]
fn real_layouts_and_an_oci_artifact_mirror_byte_for_byte_through_every_workflow() {
    let src = Registry::start(RegistryOptions::default());
    let dst = Registry::start(RegistryOptions::default());
    let push = Pusher::new(&src);
    let root = support::shared_data().join("oci/oc-mirror");
    let mut pushed = Vec::new();
    for layout in [
        "hello-world-manifestlist",
        "multi-platform-container-latest",
        "oci-image",
        "simple-test-bundle",
        "single-arch-empty-image",
        "single-arch-empty-image-sig",
    ] {
        pushed.push(push.oci_layout(&root.join(layout), &format!("real/{layout}"), "v1"));
    }
    // An OCI artifact: empty config, an artifactType, a layer of its own media type.
    let empty = push.blob("real/artifact", b"{}");
    let payload = push.blob("real/artifact", b"an sbom, say");
    let artifact = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/vnd.example.sbom.v1+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/vnd.example.sbom.v1+json", "digest": payload, "size": 12}],
    }))
    .unwrap();
    let digest = push.manifest("real/artifact", "v1", &artifact, "application/vnd.oci.image.manifest.v1+json");
    pushed.push(Pushed {
        repo: "real/artifact".into(),
        tag: "v1".into(),
        digest,
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        manifest: artifact,
        blobs: vec![empty, payload],
    });
    let tmp = temp_dir("real-");
    let isc = write_isc(tmp.path(), &pushed.iter().map(|p| format!("{}/{}:v1", src.host, p.repo)).collect::<Vec<_>>());
    let cache = tmp.path().join("cache").display().to_string();
    let ws = format!("file://{}", tmp.path().join("ws").display());
    let flags = ["--src-tls-verify=false", "--dest-tls-verify=false"];
    let mut args = vec!["mirror", "-c", &isc, "--workspace", &ws, "--cache-dir", &cache];
    let m2m = format!("docker://{}/m2m", dst.host);
    args.push(&m2m);
    args.extend(flags);
    let out = ok(run(&args));
    assert!(out.contains("✓ 7 / 7"), "{out}");
    let archives = format!("file://{}", tmp.path().join("archives").display());
    ok(run(&["mirror", "-c", &isc, &archives, "--cache-dir", &cache, "--src-tls-verify=false"]));
    let cache2 = tmp.path().join("cache2").display().to_string();
    let d2m = format!("docker://{}/d2m", dst.host);
    ok(run(&["mirror", "-c", &isc, "--from", &archives, &d2m, "--cache-dir", &cache2, "--dest-tls-verify=false"]));
    for p in &pushed {
        for prefix in ["m2m", "d2m"] {
            assert_mirrored(&dst, &format!("{prefix}/{}", p.repo), "v1", p);
        }
    }
}

/// An image that cannot be copied is named in its error as references are written: a digest
/// after `@`, never `repo:sha256:...`.
#[test]
fn errors_name_digest_references_with_an_at_sign() {
    let src = Registry::start(RegistryOptions::default());
    let dst = Registry::start(RegistryOptions::default());
    let dir = temp_dir("digest-named-");
    let digest = format!("sha256:{}", "0".repeat(64));
    let isc = write_isc(dir.path(), &[format!("{}/gone/img@{digest}", src.host)]);
    let out = mirror_to_mirror(&isc, dir.path(), &format!("docker://{}/m", dst.host), &[]).output().unwrap();
    assert!(!out.status.success(), "a missing image mirrored");
    let logs = dir.path().join("ws/working-dir/logs");
    let log = std::fs::read_dir(&logs).unwrap().flatten().next().expect("an error log").path();
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains(&format!("{}/gone/img@{digest}", src.host)), "{text}");
    assert!(!text.contains("img:sha256:"), "{text}");
}
