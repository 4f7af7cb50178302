//! The enclave workflow through registries.conf, with four real registries: a stand-in
//! internet, a hub that mirrors it, and two enclaves the hub feeds. The hub mirrors the
//! internet; then the internet registry is stopped and both enclaves are mirrored from the
//! internet's names, pulled through the hub by `CONTAINERS_REGISTRIES_CONF`, sharing one
//! cache. Digests come from what the test pushed; request counts from the registries' own
//! access logs.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::cli::bin;
use support::content::{Format, Pushed, Pusher};
use support::opm::CatalogFixture;
use support::registry::{Registry, RegistryOptions};
use support::{shared_data, temp_dir};

fn logged() -> Registry {
    Registry::start(RegistryOptions { access_log: true, ..Default::default() })
}

/// `mirror -c ISC docker://DEST` with a workspace and cache under `dir`, plain HTTP, and
/// `conf` as registries.conf.
fn mirror(isc: &Path, dir: &Path, ws: &str, cache: &str, dest: &str, conf: Option<&Path>) -> Output {
    let mut c = bin();
    c.args(["mirror", "-c", isc.to_str().unwrap(), dest])
        .arg("--workspace")
        .arg(format!("file://{}", dir.join(ws).display()))
        .arg("--cache-dir")
        .arg(dir.join(cache))
        .args(["--src-tls-verify=false", "--dest-tls-verify=false"]);
    if let Some(conf) = conf {
        c.env("CONTAINERS_REGISTRIES_CONF", conf);
    }
    c.output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// The digest a registry has for `repo:reference`.
fn digest_at(reg: &Registry, repo: &str, reference: &str) -> Option<String> {
    let r = reg
        .http()
        .head(format!("{}/v2/{repo}/manifests/{reference}", reg.base_url()))
        .header(
            "Accept",
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
             application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json",
        )
        .send()
        .unwrap();
    r.status().is_success().then(|| r.headers()["docker-content-digest"].to_str().unwrap().to_string())
}

/// Blob GETs answered 200 per digest.
fn blob_gets(reg: &Registry) -> BTreeMap<String, usize> {
    let mut n = BTreeMap::new();
    for a in reg.access_log() {
        if a.method == "GET"
            && a.status == 200
            && let Some((_, d)) = a.uri.split_once("/blobs/")
        {
            *n.entry(d.to_string()).or_default() += 1;
        }
    }
    n
}

struct World {
    internet: Registry,
    hub: Registry,
    images: Vec<Pushed>,
    /// The selected bundles at the internet: repository, tag, digest.
    bundles: Vec<(String, String, String)>,
    _catalog: support::opm::Catalog,
    isc: std::path::PathBuf,
    dir: tempfile::TempDir,
}

/// The internet's content (a multi-arch image, an image sharing a layer with it, and a real
/// test catalog whose bundles and related images have stand-ins), and an image set naming it
/// by the internet's names, mirrored to the hub under `hub/mirror`.
fn hub_mirrored() -> World {
    let dir = temp_dir("enclave-");
    let (internet, hub) = (logged(), logged());
    let push = Pusher::new(&internet);
    let web = push.multi_arch("apps/web", "v1", Format::Oci, &[("linux", "amd64"), ("linux", "arm64")], 70);
    let api = push.image("apps/api", "v2", Format::Docker, ("linux", "amd64"), &[(70, 4096), (71, 3000)]);
    let catalog = CatalogFixture::new("catalogs/test-index", "v1")
        .fbc(shared_data().join("fbc/oc-mirror-test-catalogs/test-catalog-latest"))
        .build(&internet);
    let isc = dir.path().join("isc.yaml");
    std::fs::write(
        &isc,
        format!(
            "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  additionalImages:\n  - name: {h}/apps/web:v1\n  - name: {h}/apps/api@{api}\n  operators:\n  - catalog: {cat}\n    targetTag: v1\n    packages:\n    - name: foo\n      minVersion: 0.2.0\n      maxVersion: 0.3.0\n",
            h = internet.host,
            api = api.digest,
            cat = catalog.reference,
        ),
    )
    .unwrap();
    let o = mirror(&isc, dir.path(), "ws-hub", "cache-hub", &format!("docker://{}/mirror", hub.host), None);
    assert!(o.status.success(), "internet -> hub: {}", text(&o));
    let bundles = ["foo-bundle-v0.2.0", "foo-bundle-v0.3.0", "foo-bundle-v0.3.1"]
        .iter()
        .map(|tag| {
            let (_, stand_in) = catalog.images.iter().find(|(o, _)| o.ends_with(&format!(":{tag}"))).unwrap();
            let repo = stand_in.split_once('/').unwrap().1.split(':').next().unwrap().to_string();
            let digest = digest_at(&internet, &repo, tag).expect("stand-in pushed");
            (repo, tag.to_string(), digest)
        })
        .collect();
    World { internet, hub, images: vec![web, api], bundles, _catalog: catalog, isc, dir }
}

fn registries_conf(dir: &Path, body: &str) -> std::path::PathBuf {
    let p = dir.join("registries.conf");
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn enclaves_pull_through_the_hub_with_the_internet_stopped() {
    let mut w = hub_mirrored();
    let internet_gets = blob_gets(&w.internet);
    w.internet.stop();
    let conf = registries_conf(
        w.dir.path(),
        &format!(
            "unqualified-search-registries = []\n\n[[registry]]\nprefix = \"{i}\"\nlocation = \"{i}\"\n\n[[registry.mirror]]\nlocation = \"{h}/mirror\"\ninsecure = true\n",
            i = w.internet.host,
            h = w.hub.host
        ),
    );
    let hub_before = blob_gets(&w.hub);
    let enclaves = [logged(), logged()];
    for (i, e) in enclaves.iter().enumerate() {
        let o = mirror(
            &w.isc,
            w.dir.path(),
            &format!("ws-enclave{i}"),
            "cache-enclaves",
            &format!("docker://{}/mirror", e.host),
            Some(&conf),
        );
        assert!(o.status.success(), "hub -> enclave {i}: {}", text(&o));
    }

    // Every image is in both enclaves under the internet's digests.
    for e in &enclaves {
        for img in &w.images {
            let at = digest_at(e, &format!("mirror/{}", img.repo), &img.digest);
            assert_eq!(at.as_deref(), Some(img.digest.as_str()), "{} at {}", img.repo, e.host);
        }
        let web_by_tag = digest_at(e, "mirror/apps/web", "v1");
        assert_eq!(web_by_tag.as_deref(), Some(w.images[0].digest.as_str()));
        for (repo, tag, digest) in &w.bundles {
            assert_eq!(digest_at(e, &format!("mirror/{repo}"), tag).as_deref(), Some(digest.as_str()), "{repo}:{tag}");
        }
        assert!(digest_at(e, "mirror/catalogs/test-index", "v1").is_some(), "catalog at {}", e.host);
    }

    // The enclaves' IDMS maps the internet's names (what clusters pull) to the enclave.
    for (i, e) in enclaves.iter().enumerate() {
        let idms = std::fs::read_to_string(
            w.dir.path().join(format!("ws-enclave{i}/working-dir/cluster-resources/idms-oc-mirror.yaml")),
        )
        .unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&idms).unwrap();
        let pairs: Vec<(String, String)> = docs
            .iter()
            .flat_map(|d| d["spec"]["imageDigestMirrors"].as_array().cloned().unwrap_or_default())
            .map(|m| (m["source"].as_str().unwrap().to_string(), m["mirrors"][0].as_str().unwrap().to_string()))
            .collect();
        // oc-mirror writes one entry per namespace of the source names.
        for ns in ["apps", "quay.io/oc-mirror"] {
            let want = (format!("{}/{ns}", w.internet.host), format!("{}/mirror/{ns}", e.host));
            assert!(pairs.contains(&want), "{want:?} not in {pairs:?}");
        }
        assert!(!idms.contains(&w.hub.host), "the hub's name leaked into the IDMS: {idms}");
    }

    // The internet served each blob once (to the hub); the hub served each blob once across
    // both enclaves (the shared cache).
    assert!(internet_gets.values().all(|n| *n == 1), "internet: {internet_gets:?}");
    let hub_after = blob_gets(&w.hub);
    let served: BTreeMap<&String, usize> = hub_after
        .iter()
        .map(|(d, n)| (d, n - hub_before.get(d).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert!(!served.is_empty());
    assert!(served.values().all(|n| *n == 1), "hub blob GETs across both enclaves: {served:?}");
    for img in &w.images {
        for b in &img.blobs {
            assert_eq!(served.get(b), Some(&1), "{b} of {} not pulled from the hub once", img.repo);
        }
    }
}

#[test]
fn a_blocked_source_fails_its_images_naming_the_rule() {
    let w = hub_mirrored();
    let conf = registries_conf(
        w.dir.path(),
        &format!("[[registry]]\nprefix = \"{}/apps\"\nblocked = true\n", w.internet.host),
    );
    let enclave = logged();
    let apps_reads = || w.internet.access_log().iter().filter(|a| a.uri.starts_with("/v2/apps/")).count();
    let before = apps_reads();
    let o = mirror(
        &w.isc,
        w.dir.path(),
        "ws-blocked",
        "cache-blocked",
        &format!("docker://{}/m", enclave.host),
        Some(&conf),
    );
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    let rule = format!("is blocked by registries.conf {} line 1", conf.display());
    assert!(out.contains(&rule) && out.contains(&format!("{}/apps/web", w.internet.host)), "{out}");
    // Nothing under the blocked prefix was copied; the catalog, outside it, was.
    assert_eq!(digest_at(&enclave, "m/apps/web", "v1"), None);
    assert!(digest_at(&enclave, "m/catalogs/test-index", "v1").is_some(), "{out}");
    assert_eq!(apps_reads(), before, "the blocked prefix was read anyway");
}

#[test]
fn a_malformed_registries_conf_is_an_error_naming_the_line() {
    let dir = temp_dir("enclave-bad-");
    let isc = dir.path().join("isc.yaml");
    std::fs::write(&isc, "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  additionalImages:\n  - name: 127.0.0.1:1/a/b:v1\n").unwrap();
    let conf = registries_conf(
        dir.path(),
        "[[registry]]\nprefix = \"127.0.0.1:1\"\n\n[[registry.mirror]]\nlocation = \"hub:5000\"\npull-from-mirror = \"sometimes\"\n",
    );
    let o = mirror(&isc, dir.path(), "ws", "cache", "docker://127.0.0.1:2/m", Some(&conf));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains(&format!("registries.conf {}, line 4", conf.display())) && out.contains("sometimes"), "{out}");
    let conf = registries_conf(dir.path(), "[[registry]]\nprefix = \"a\"\nlocation = [\n");
    let o = mirror(&isc, dir.path(), "ws", "cache", "docker://127.0.0.1:2/m", Some(&conf));
    let out = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains("line 3"), "{out}");
}
