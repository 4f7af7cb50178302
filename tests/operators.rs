//! Operator catalogs end to end: a catalog image built from a real file-based catalog (its
//! images rewritten to synthetic ones in a loopback registry, its opm cache pre-built by real
//! opm, as catalog images ship) is mirrored through the CLI; the rebuilt catalog is served by
//! real opm and answers with exactly the selection, less any bundle whose images could not be
//! mirrored.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::cli::mirror_to_mirror;
use support::content::{Format, Pusher};
use support::registry::{Registry, RegistryOptions};
use support::{Guarded, free_port, require, sha256, shared_data, temp_dir, wait_until};

const LABEL: &str = "operators.operatorframework.io.index.configs.v1";

fn tar_gz(root: &Path, under: &str) -> (Vec<u8>, String) {
    let mut t = tar::Builder::new(Vec::new());
    t.append_dir_all(under, root).unwrap();
    let raw = t.into_inner().unwrap();
    let diff = sha256(&raw);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).unwrap();
    (gz.finish().unwrap(), diff)
}

/// Every image reference of the catalog (bundle images and related images).
fn references(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for f in walk(dir) {
        let text = std::fs::read_to_string(&f).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for d in docs {
            if d["schema"] == "olm.bundle" {
                out.insert(d["image"].as_str().unwrap().to_string());
                for r in d["relatedImages"].as_array().into_iter().flatten() {
                    out.insert(r["image"].as_str().unwrap().to_string());
                }
            }
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out.sort();
    out
}

struct Catalog {
    reference: String,
    /// Original reference -> rewritten reference in the source registry.
    map: BTreeMap<String, String>,
}

/// Pushes a synthetic image per reference of `fbc` (except `missing`, which points nowhere),
/// rewrites the catalog to them, pre-builds opm's cache, and pushes the catalog image.
fn build_catalog(src: &Registry, fbc: &Path, work: &Path, missing: &str) -> Catalog {
    let push = Pusher::new(src);
    let mut map = BTreeMap::new();
    for (i, r) in references(fbc).iter().enumerate() {
        let path = r.split_once('/').unwrap().1.split(['@', ':']).next().unwrap();
        let new = if r == missing {
            format!("{}/{path}@sha256:{}", src.host, "0".repeat(64))
        } else {
            let p = push.image(path, &format!("t{i}"), Format::Oci, ("linux", "amd64"), &[(1000 + i as u64, 2000)]);
            format!("{}/{path}@{}", src.host, p.digest)
        };
        map.insert(r.clone(), new);
    }
    let root = work.join("rootfs");
    for f in walk(fbc) {
        let rel = f.strip_prefix(fbc).unwrap();
        let mut text = std::fs::read_to_string(&f).unwrap();
        for (old, new) in &map {
            text = text.replace(old, new);
        }
        let out = root.join("configs").join(rel);
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::write(out, text).unwrap();
    }
    let cache = root.join("tmp/cache");
    let o = Command::new(require("opm"))
        .args(["serve", root.join("configs").to_str().unwrap(), "--cache-dir", cache.to_str().unwrap(), "--cache-only"])
        // opm's defaults collide on a shared host: a fixed profiling port and /dev/termination-log.
        .args(["--pprof-addr=", "--termination-log", work.join("opm-termination.log").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "opm --cache-only: {}", String::from_utf8_lossy(&o.stderr));
    let base = work.join("base");
    std::fs::create_dir_all(base.join("bin")).unwrap();
    std::fs::write(base.join("bin/README"), "opm lives here in a real catalog image").unwrap();
    let layers =
        [tar_gz(&base.join("bin"), "bin"), tar_gz(&root.join("configs"), "configs"), tar_gz(&cache, "tmp/cache")];
    let repo = "catalogs/test-index";
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/opm"], "Cmd": ["serve", "/configs", "--cache-dir=/tmp/cache"], "Labels": {LABEL: "/configs"}},
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.1.clone()).collect::<Vec<_>>()},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let cd = push.blob(repo, &config);
    let descs: Vec<Value> = layers
        .iter()
        .map(|(gz, _)| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": push.blob(repo, gz), "size": gz.len()}))
        .collect();
    let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": descs});
    let mt = "application/vnd.oci.image.manifest.v1+json";
    push.manifest(repo, "v1", &serde_json::to_vec(&manifest).unwrap(), mt);
    Catalog { reference: format!("{}/{repo}:v1", src.host), map }
}

fn get(reg: &Registry, path: &str) -> reqwest::blocking::Response {
    let http = reg.http();
    let repo = path.split("/manifests/").next().unwrap().split("/blobs/").next().unwrap();
    reg.authorize(
        repo,
        http.get(format!("{}/v2/{path}", reg.base_url())).header(
            "Accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json",
        ),
    )
    .send()
    .unwrap()
}

/// Unpacks an image from the registry into a directory, honouring whiteouts (independently
/// of the code under test); returns its config.
fn unpack(reg: &Registry, repo: &str, reference: &str, into: &Path) -> Value {
    let m: Value = get(reg, &format!("{repo}/manifests/{reference}")).json().unwrap();
    let config: Value = get(reg, &format!("{repo}/blobs/{}", m["config"]["digest"].as_str().unwrap())).json().unwrap();
    for l in m["layers"].as_array().unwrap() {
        let bytes = get(reg, &format!("{repo}/blobs/{}", l["digest"].as_str().unwrap())).bytes().unwrap();
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut raw).unwrap();
        let mut a = tar::Archive::new(&raw[..]);
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_path_buf();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if let Some(gone) = name.strip_prefix(".wh.") {
                let target = into.join(path.parent().unwrap()).join(gone);
                let _ = std::fs::remove_dir_all(&target);
                let _ = std::fs::remove_file(&target);
                continue;
            }
            e.unpack_in(into).unwrap();
        }
    }
    config
}

fn grpc(port: u16, method: &str, body: Option<&str>) -> Vec<Value> {
    let mut c = Command::new(require("grpcurl"));
    c.arg("-plaintext");
    if let Some(b) = body {
        c.args(["-d", b]);
    }
    let o = c.args([&format!("127.0.0.1:{port}"), method]).output().unwrap();
    assert!(o.status.success(), "grpcurl {method}: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::Deserializer::from_slice(&o.stdout).into_iter::<Value>().map(Result::unwrap).collect()
}

/// Starts opm with the image's own command, paths mapped into the unpacked root.
fn serve(root: &Path, config: &Value, log: &Path) -> (Guarded, u16) {
    let port = free_port();
    let mut args: Vec<String> = config["config"]["Cmd"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let a = a.as_str().unwrap();
            match a.split_once("=/") {
                Some((flag, path)) => format!("{flag}={}", root.join(path).display()),
                None if a.starts_with('/') => root.join(&a[1..]).display().to_string(),
                None => a.to_string(),
            }
        })
        .collect();
    args.extend(["-p".into(), port.to_string(), "--pprof-addr=".into()]);
    args.extend(["--termination-log".into(), log.with_extension("termination").display().to_string()]);
    let mut opm = Guarded::spawn(&require("opm"), &args, log, None);
    let tail = opm.log_tail();
    let mut alive = true;
    wait_until(
        "opm serve answers",
        Duration::from_secs(60),
        || {
            alive = opm.alive();
            !alive || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        },
        tail,
    );
    assert!(alive, "opm exited: {}", (opm.log_tail())());
    (opm, port)
}

#[test]
fn a_filtered_catalog_is_mirrored_with_its_images_and_serves_only_the_selection_under_opm() {
    let dir = temp_dir("operators");
    let (src, dst) = (Registry::start(RegistryOptions::default()), Registry::start(RegistryOptions::default()));
    // oc-mirror's test catalog (foo, bar, baz) plus a real community package.
    let fbc = dir.path().join("fbc");
    let data = shared_data().join("fbc");
    for (from, to) in [
        ("oc-mirror-test-catalogs/test-catalog-latest", ""),
        ("community-operators-prod/v4.18/ecr-secret-operator", "ecr-secret-operator"),
    ] {
        for f in walk(&data.join(from)) {
            let rel = f.strip_prefix(data.join(from)).unwrap();
            let out = fbc.join(to).join(rel);
            std::fs::create_dir_all(out.parent().unwrap()).unwrap();
            std::fs::copy(&f, out).unwrap();
        }
    }
    // The head of ecr-secret-operator (v0.5.0) has a related image missing upstream; from 0.4.0
    // the channel alpha is v0.5.0 -> v0.4.1 -> v0.4.0 (v0.5.0 also skips v0.4.0).
    let broken = "quay.io/rh-mobb/ecr-secret-operator:v0.5.0".to_string();
    let cat = build_catalog(&src, &fbc, dir.path(), &broken);
    let isc = dir.path().join("isc.yaml");
    std::fs::write(
        &isc,
        format!(
            "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  operators:\n  - catalog: {}\n    packages:\n    - name: foo\n      minVersion: 0.2.0\n      maxVersion: 0.3.0\n    - name: baz\n    - name: ecr-secret-operator\n      minVersion: 0.4.0\n",
            cat.reference
        ),
    )
    .unwrap();
    let dest = format!("docker://{}/mirror", dst.host);
    let out = mirror_to_mirror(isc.to_str().unwrap(), dir.path(), &dest, &[]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(4), "operator bit only: {stdout} {}", String::from_utf8_lossy(&out.stderr));
    let logs = dir.path().join("ws/working-dir/logs");
    let log = std::fs::read_to_string(walk(&logs).pop().unwrap()).unwrap();
    assert!(log.contains("bundle ecr-secret-operator.v0.5.0 of operator ecr-secret-operator skipped"), "{log}");
    assert!(stdout.contains("rebuilt without ecr-secret-operator.v0.5.0 (not mirrored)"), "{stdout}");

    // Selected: foo 0.2.0, 0.3.0 (in range) and 0.3.1 (the chain needs it); baz's head.
    let selected = ["foo-bundle-v0.2.0", "foo-bundle-v0.3.0", "foo-bundle-v0.3.1", "baz-bundle-v1.1.0"];
    let present = |original: &str| {
        let new = &cat.map[original];
        let (name, digest) = new.split_once('@').unwrap();
        let path = name.split_once('/').unwrap().1;
        get(&dst, &format!("mirror/{path}/manifests/{digest}")).status().is_success()
    };
    for old in cat.map.keys() {
        let tag = old.rsplit(':').next().unwrap();
        if old.contains(":foo-bundle-") || old.contains(":bar-bundle-") || old.contains(":baz-bundle-") {
            let want = selected.contains(&tag);
            assert_eq!(present(old), want, "{old} mirrored: expected {want}");
        }
    }
    assert!(!present(&broken));
    // ecr-secret-operator: its head bundle is skipped (a related image failed), 0.4.1 and 0.4.0
    // are mirrored, 0.3.2 is not selected.
    for (old, _) in cat.map.iter().filter(|(o, _)| o.contains("/ecr-secret-operator@sha256:")) {
        let want = ["sha256:53e73c53", "sha256:90342c48"].iter().any(|d| old.contains(d));
        assert_eq!(present(old), want, "{old} mirrored: expected {want}");
    }
    assert!(present(
        "quay.io/brancz/kube-rbac-proxy:v0.21.0@sha256:059a43ab03f230eedb7dde2eb0d910a41e9d7ee04efff0f5cdc7ee614111397a"
    ));
    // Related images of the selected foo bundles are there.
    let foo = std::fs::read_to_string(fbc.join("foo/bundles.yaml")).unwrap();
    for (old, _) in cat.map.iter().filter(|(o, _)| o.contains("@sha256:") && foo.contains(o.as_str())) {
        assert!(present(old), "related image {old} missing");
    }

    // The rebuilt catalog: tagged per filter, served by real opm with only the selection, less
    // the skipped bundle: its channel's head is now its predecessor.
    let tags: Value = get(&dst, "mirror/catalogs/test-index/tags/list").json().unwrap();
    let tag = tags["tags"].as_array().unwrap()[0].as_str().unwrap().to_string();
    assert!(tag.starts_with("v1-") && tag.len() == 15, "{tag}");
    let root = dir.path().join("served");
    std::fs::create_dir_all(&root).unwrap();
    let config = unpack(&dst, "mirror/catalogs/test-index", &tag, &root);
    assert!(!root.join("tmp/cache").exists(), "the stale opm cache is removed");
    let (_opm, port) = serve(&root, &config, &dir.path().join("opm.log"));
    let packages: BTreeSet<String> =
        grpc(port, "api.Registry/ListPackages", None).iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
    assert_eq!(packages, BTreeSet::from(["baz".into(), "ecr-secret-operator".into(), "foo".into()]));
    let bundles: BTreeSet<(String, String)> = grpc(port, "api.Registry/ListBundles", None)
        .iter()
        .map(|b| (b["packageName"].as_str().unwrap().to_string(), b["csvName"].as_str().unwrap().to_string()))
        .collect();
    let want: BTreeSet<(String, String)> = [
        ("baz", "baz.v1.1.0"),
        ("ecr-secret-operator", "ecr-secret-operator.v0.4.0"),
        ("ecr-secret-operator", "ecr-secret-operator.v0.4.1"),
        ("foo", "foo.v0.2.0"),
        ("foo", "foo.v0.3.0"),
        ("foo", "foo.v0.3.1"),
    ]
    .iter()
    .map(|(p, b)| (p.to_string(), b.to_string()))
    .collect();
    assert_eq!(bundles, want);
    let foo_pkg = grpc(port, "api.Registry/GetPackage", Some(r#"{"name":"foo"}"#));
    assert_eq!(foo_pkg[0]["channels"][0]["csvName"], "foo.v0.3.1", "{foo_pkg:?}");
    let ecr = grpc(port, "api.Registry/GetPackage", Some(r#"{"name":"ecr-secret-operator"}"#));
    assert_eq!(ecr[0]["channels"][0]["csvName"], "ecr-secret-operator.v0.4.1", "{ecr:?}");
    assert_eq!(ecr[0]["defaultChannelName"], "alpha", "{ecr:?}");
    let served_images: BTreeSet<String> = grpc(port, "api.Registry/ListBundles", None)
        .iter()
        .map(|b| b["bundlePath"].as_str().unwrap().to_string())
        .collect();
    assert!(
        served_images.iter().all(|i| i.starts_with(&src.host)),
        "bundle paths as written upstream: {served_images:?}"
    );

    // The CatalogSource points at the catalog that was pushed (rebuilt without the skipped
    // bundle) by digest.
    let before = sha256(&get(&dst, &format!("mirror/catalogs/test-index/manifests/{tag}")).bytes().unwrap());
    let res = dir.path().join("ws/working-dir/cluster-resources");
    let cs = walk(&res).into_iter().find(|p| p.file_name().unwrap().to_string_lossy().starts_with("cs-")).unwrap();
    let cs = std::fs::read_to_string(cs).unwrap();
    assert!(cs.contains(&format!("{}/mirror/catalogs/test-index@{before}", dst.host)), "{cs}");

    // A re-run copies nothing new: the rebuilt catalog has the same digest.
    let again = mirror_to_mirror(isc.to_str().unwrap(), dir.path(), &dest, &[]).output().unwrap();
    assert_eq!(again.status.code(), Some(4));
    let after = sha256(&get(&dst, &format!("mirror/catalogs/test-index/manifests/{tag}")).bytes().unwrap());
    assert_eq!(before, after);
    let tags: Value = get(&dst, "mirror/catalogs/test-index/tags/list").json().unwrap();
    assert_eq!(tags["tags"].as_array().unwrap().len(), 1);
}

/// Mirror-to-disk, then disk-to-mirror with the source registry gone: the rebuilt catalog,
/// its bundles and their related images reach the disconnected registry by digest, and the
/// CatalogSource points at the rebuilt catalog there.
/// A catalog in an `oci://` layout on disk: filtered, it is rebuilt like a registry's; taken
/// whole (`full: true` without packages), it is copied as it is, digest unchanged, with every
/// bundle. No registry holds the catalog image.
#[test]
fn catalogs_from_oci_layouts_are_mirrored_filtered_and_whole() {
    let dir = temp_dir("operators-oci");
    let (src, dst) = (Registry::start(RegistryOptions::default()), Registry::start(RegistryOptions::default()));
    let fbc = shared_data().join("fbc/oc-mirror-test-catalogs/test-catalog-latest");
    let cat = build_catalog(&src, &fbc, dir.path(), "");
    let layout = dir.path().join("layouts/test-index");
    std::fs::create_dir_all(layout.parent().unwrap()).unwrap();
    support::skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{}", cat.reference),
        &format!("oci:{}", layout.display()),
    ]);
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let top = index["manifests"][0]["digest"].as_str().unwrap().to_string();
    // One layout filtered, a copy of it taken whole (an image set names a catalog once).
    let whole_layout = dir.path().join("layouts/test-index-all");
    let o = Command::new("cp").arg("-r").arg(&layout).arg(&whole_layout).output().unwrap();
    assert!(o.status.success());
    let isc = dir.path().join("isc.yaml");
    std::fs::write(
        &isc,
        format!(
            "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  operators:\n  - catalog: oci://{0}\n    packages:\n    - name: baz\n  - catalog: oci://{1}\n    full: true\n",
            layout.display(),
            whole_layout.display()
        ),
    )
    .unwrap();
    let dest = format!("docker://{}/mirror", dst.host);
    let out = mirror_to_mirror(isc.to_str().unwrap(), dir.path(), &dest, &[]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout} {}", String::from_utf8_lossy(&out.stderr));
    // Bundles, related images and catalogs are one oc-mirror content type: one result line.
    let results: Vec<&str> = stdout.lines().filter(|l| l.contains(" images mirrored")).collect();
    assert_eq!(results.len(), 1, "{stdout}");
    assert!(results[0].starts_with("✓ ") && results[0].contains(" operator images mirrored successfully"), "{stdout}");
    let tags = |repo: &str| -> Vec<String> {
        let v: Value = get(&dst, &format!("mirror/{repo}/tags/list")).json().unwrap();
        v["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().into()).collect()
    };
    assert_eq!(tags("test-index-all"), ["latest"]);
    let filtered = tags("test-index");
    assert!(filtered.len() == 1 && filtered[0].starts_with("latest-"), "{filtered:?}");
    // Whole: the layout's image, byte for byte.
    let whole = get(&dst, "mirror/test-index-all/manifests/latest");
    assert_eq!(whole.headers()["docker-content-digest"].to_str().unwrap(), top);
    // Filtered: only baz's head, and the whole catalog brought every bundle.
    let root = dir.path().join("filtered");
    std::fs::create_dir_all(&root).unwrap();
    unpack(&dst, "mirror/test-index", &filtered[0], &root);
    let packages: BTreeSet<String> = walk(&root.join("configs"))
        .iter()
        .map(|p| p.strip_prefix(root.join("configs")).unwrap().iter().next().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(packages, BTreeSet::from(["baz".to_string()]));
    for (old, new) in &cat.map {
        let (name, digest) = new.split_once('@').unwrap();
        let path = name.split_once('/').unwrap().1;
        let present = get(&dst, &format!("mirror/{path}/manifests/{digest}")).status().is_success();
        assert!(present, "{old} (a bundle or related image of the whole catalog) not mirrored");
    }
    // A filter that selects nothing (a channel the package does not have) is an operator
    // error: oc-mirror's operator bit, 4, not a generic 1.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!(
            "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  operators:\n  - catalog: oci://{}\n    packages:\n    - name: baz\n      channels:\n      - name: no-such-channel\n",
            layout.display()
        ),
    )
    .unwrap();
    let out = mirror_to_mirror(bad.to_str().unwrap(), dir.path(), &dest, &["--dry-run"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains("collection error: ") && stderr.contains("no-such-channel"), "{stderr}");
}

/// `mirror -c ISC file://ARCHIVES` from plain-HTTP sources.
fn to_disk(isc: &Path, archives: &Path, cache: &Path) -> std::process::Output {
    support::cli::bin()
        .args(["mirror", "-c", isc.to_str().unwrap(), &format!("file://{}", archives.display())])
        .arg("--src-tls-verify=false")
        .arg("--cache-dir")
        .arg(cache)
        .output()
        .unwrap()
}

/// `mirror -c ISC --from file://ARCHIVES docker://DST/enclave` to a plain-HTTP registry.
fn from_disk(isc: &Path, archives: &Path, dst: &Registry, cache: &Path) -> std::process::Output {
    support::cli::bin()
        .args(["mirror", "-c", isc.to_str().unwrap(), "--from", &format!("file://{}", archives.display())])
        .arg(format!("docker://{}/enclave", dst.host))
        .arg("--cache-dir")
        .arg(cache)
        .arg("--dest-tls-verify=false")
        .output()
        .unwrap()
}

/// oc-mirror's test catalog (packages foo, bar, baz) built into `src`, every image a stand-in.
fn test_catalog(src: &Registry, work: &Path) -> Catalog {
    let fbc = work.join("fbc");
    let data = shared_data().join("fbc/oc-mirror-test-catalogs/test-catalog-latest");
    for f in walk(&data) {
        let out = fbc.join(f.strip_prefix(&data).unwrap());
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        std::fs::copy(&f, out).unwrap();
    }
    build_catalog(src, &fbc, work, "none.example.com/nothing:missing")
}

#[test]
fn a_filtered_catalog_goes_through_archives_to_a_disconnected_registry() {
    let dir = temp_dir("operators-d2m");
    let (src, dst) = (Registry::start(RegistryOptions::default()), Registry::start(RegistryOptions::default()));
    let cat = test_catalog(&src, dir.path());
    let isc = dir.path().join("isc.yaml");
    std::fs::write(
        &isc,
        format!(
            "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  operators:\n  - catalog: {}\n    packages:\n    - name: foo\n      minVersion: 0.2.0\n      maxVersion: 0.3.0\n",
            cat.reference
        ),
    )
    .unwrap();
    let archives = dir.path().join("archives");
    support::cli::ok(to_disk(&isc, &archives, &dir.path().join("cache-online")));
    drop(src);
    let text = support::cli::ok(from_disk(&isc, &archives, &dst, &dir.path().join("cache-enclave")));
    for bundle in ["foo-bundle-v0.2.0", "foo-bundle-v0.3.0", "foo-bundle-v0.3.1"] {
        let (old, new) = cat.map.iter().find(|(o, _)| o.ends_with(&format!(":{bundle}"))).unwrap();
        let (name, digest) = new.split_once('@').unwrap();
        let path = name.split_once('/').unwrap().1;
        assert!(get(&dst, &format!("enclave/{path}/manifests/{digest}")).status().is_success(), "{old}: {text}");
    }
    let tags: Value = get(&dst, "enclave/catalogs/test-index/tags/list").json().unwrap();
    let tag = tags["tags"][0].as_str().unwrap().to_string();
    assert!(tag.starts_with("v1-"), "{tag}");
    let res = archives.join("working-dir/cluster-resources");
    let cs = walk(&res)
        .into_iter()
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("cs-"))
        .unwrap_or_else(|| panic!("no CatalogSource in {}: {text}", res.display()));
    let cs = std::fs::read_to_string(cs).unwrap();
    assert!(cs.contains(&format!("{}/enclave/catalogs/test-index@sha256:", dst.host)), "{cs}");
}

/// Disk to mirror selects again from the catalog the archives hold: an image set naming one of
/// the two archived packages imports that package's bundles and a catalog listing it alone;
/// a catalog the archives do not hold is an error naming it.
#[test]
fn disk_to_mirror_imports_only_the_packages_the_image_set_names() {
    let dir = temp_dir("operators-d2m-subset");
    let (src, dst) = (Registry::start(RegistryOptions::default()), Registry::start(RegistryOptions::default()));
    let cat = test_catalog(&src, dir.path());
    let isc = |name: &str, catalog: &str, packages: &str| {
        let p = dir.path().join(name);
        std::fs::write(
            &p,
            format!(
                "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  operators:\n  - catalog: {catalog}\n    packages:\n{packages}"
            ),
        )
        .unwrap();
        p
    };
    let both = "    - name: foo\n      minVersion: 0.2.0\n      maxVersion: 0.3.0\n    - name: bar\n";
    let foo = "    - name: foo\n      minVersion: 0.2.0\n      maxVersion: 0.3.0\n";
    let archives = dir.path().join("archives");
    support::cli::ok(to_disk(&isc("both.yaml", &cat.reference, both), &archives, &dir.path().join("cache-online")));
    drop(src);
    let d2m = |isc: &Path| from_disk(isc, &archives, &dst, &dir.path().join("cache-enclave"));
    let text = support::cli::ok(d2m(&isc("foo.yaml", &cat.reference, foo)));
    let at_dst = |bundle: &str| {
        let (_, new) = cat.map.iter().find(|(o, _)| o.ends_with(&format!(":{bundle}"))).unwrap();
        let (name, digest) = new.split_once('@').unwrap();
        let path = name.split_once('/').unwrap().1;
        get(&dst, &format!("enclave/{path}/manifests/{digest}")).status().is_success()
    };
    for bundle in ["foo-bundle-v0.2.0", "foo-bundle-v0.3.0", "foo-bundle-v0.3.1"] {
        assert!(at_dst(bundle), "{bundle} not imported: {text}");
    }
    for bundle in ["bar-bundle-v0.1.0", "bar-bundle-v0.2.0", "bar-bundle-v1.0.0"] {
        assert!(!at_dst(bundle), "{bundle} imported although the image set does not name bar: {text}");
    }
    // The catalog pushed lists foo alone.
    let tags: Value = get(&dst, "enclave/catalogs/test-index/tags/list").json().unwrap();
    let tag = tags["tags"][0].as_str().unwrap().to_string();
    let root = dir.path().join("pushed-catalog");
    std::fs::create_dir_all(&root).unwrap();
    unpack(&dst, "enclave/catalogs/test-index", &tag, &root);
    let packages: BTreeSet<String> = support::opm::fbc_documents(&root.join("configs"))
        .into_iter()
        .filter(|d| d["schema"] == "olm.package")
        .map(|d| d["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(packages, BTreeSet::from(["foo".to_string()]), "{text}");

    // A catalog the archives do not hold.
    let other = cat.reference.replace(":v1", ":v2");
    let out = d2m(&isc("other.yaml", &other, foo));
    let err = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains(&format!("catalog {other} is not in the archives")), "{err}");
}

/// Filtered catalogs with `includeDependencies` load in real opm: added bundles come with the
/// channel entries that keep every channel valid, in oc-mirror's test catalog, opm's own
/// fixture and the community catalog snapshot.
#[test]
fn filtered_catalogs_with_dependencies_pass_opm_validate() {
    use imageset_operator::catalog::Catalog;
    use support::fbc::select_valid;
    let data = shared_data().join("fbc");
    let fixture = Catalog::load_dir(&data.join("operator-registry-diff-expected/latest")).unwrap();
    assert_eq!(select_valid(&fixture, "includeDependencies: true").dependencies.len(), 2);
    let latest = Catalog::load_dir(&data.join("oc-mirror-test-catalogs/test-catalog-latest")).unwrap();
    for y in [
        "packages:\n- name: foo\n",
        "packages:\n- name: foo\n  minVersion: 0.2.0\n  maxVersion: 0.3.0\n",
        // bar's heads are kept: bar.v0.1.0 joins alpha with the chain down from bar.v1.0.0.
        "packages:\n- name: foo\n  maxVersion: 0.2.0\n- name: bar\n",
    ] {
        let sel = select_valid(&latest, &format!("includeDependencies: true\n{y}"));
        assert!(sel.dependencies.contains(&("bar".into(), "bar.v0.1.0".into())), "{y}");
    }
    let community = support::fbc::community_catalog();
    let sel = select_valid(
        &community,
        "includeDependencies: true\npackages:\n- name: rabbitmq-messaging-topology-operator\n  minVersion: 1.18.2\n",
    );
    let cluster = ("rabbitmq-cluster-operator".to_string(), "rabbitmq-cluster-operator.v2.22.3".to_string());
    assert_eq!(sel.dependencies.iter().collect::<Vec<_>>(), vec![&cluster]);
    select_valid(&community, "includeDependencies: true");
}

/// Catalogs rebuilt without bundles that could not be mirrored load in real opm: every
/// package of the community snapshot taken in full, then the head and a middle entry of every
/// channel taken out.
#[test]
fn catalogs_without_unmirrored_bundles_pass_opm_validate() {
    use imageset_operator::catalog::{prune, write};
    let c = support::fbc::community_catalog();
    let packages: String = c.packages.iter().map(|p| format!("- name: {}\n", p.name)).collect();
    let sel = support::fbc::select_valid(&c, &format!("full: true\npackages:\n{packages}"));
    let mut gone = BTreeSet::new();
    for ch in &c.channels {
        let refs: Vec<_> = ch.entries.iter().collect();
        let head = imageset_operator::catalog::channel::head(&refs).unwrap();
        gone.insert((ch.package.clone(), head.name.clone()));
        gone.insert((ch.package.clone(), ch.entries[ch.entries.len() / 2].name.clone()));
    }
    let pruned = prune::without(&c, &sel, &gone);
    let left: BTreeSet<(String, String)> =
        pruned.bundles(&c).iter().map(|b| (b.package.clone(), b.name.clone())).collect();
    assert!(left.is_disjoint(&gone));
    assert!(
        left.len() > 100 && pruned.packages.len() > 10,
        "{} bundles in {} packages",
        left.len(),
        pruned.packages.len()
    );
    support::fbc::opm_validate(&write::filtered_files(&c, &pruned).unwrap()).unwrap();
}
