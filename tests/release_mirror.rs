//! Platform releases end to end through the CLI: the release world (a Cincinnati graph
//! service with the real stable-4.13 graph, synthetic payloads carrying a real-shaped
//! image-references, a gpg-signed signature store, the graph-data tarball) mirrored into a
//! second registry. Expected sets are derived here from the graph the world serves.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;
use support::cli::{bin, mirror_to_mirror};
use support::registry::{Registry, RegistryOptions};
use support::release::{ReleaseWorld, ReleaseWorldOptions};
use support::{sha256, skopeo, temp_dir};

/// The 4.13.z the world synthesizes payloads for (4.13.7 is not in the real graph).
const VERSIONS: &[&str] = &["4.13.0", "4.13.1", "4.13.2", "4.13.3", "4.13.4", "4.13.5", "4.13.6", "4.13.8", "4.13.9"];

fn world(src: &Registry) -> ReleaseWorld {
    ReleaseWorld::start(
        src,
        ReleaseWorldOptions {
            versions: VERSIONS.iter().map(|v| v.to_string()).collect(),
            multi: false,
            components: 40,
        },
    )
}

/// The graph the world serves for a channel, as raw JSON.
fn served_graph(w: &ReleaseWorld, channel: &str) -> Value {
    let url = format!("{}?channel={channel}&arch=amd64", w.graph_url);
    let r = reqwest::blocking::Client::new().get(url).header("Accept", "application/json").send().unwrap();
    assert!(r.status().is_success());
    r.json().unwrap()
}

fn triple(v: &str) -> (u64, u64, u64) {
    let p: Vec<u64> = v.split('.').map(|x| x.parse().unwrap()).collect();
    (p[0], p[1], p[2])
}

fn write(dir: &Path, name: &str, yaml: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, yaml).unwrap();
    p.display().to_string()
}

fn digest_at(reg: &str, reference: &str) -> String {
    sha256(&skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{reg}/{reference}")]))
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split("\n---")
        .filter(|d| !d.trim().trim_start_matches("---").trim().is_empty())
        .map(|d| serde_saphyr::from_str(d.trim_start_matches("---")).unwrap())
        .collect()
}

#[test]
fn a_channel_range_is_mirrored_with_its_components_signatures_and_graph_image() {
    let src = Registry::start(RegistryOptions::default());
    let dst = Registry::start(RegistryOptions::default());
    let w = world(&src);
    let dir = temp_dir("release-e2e");
    let isc = write(
        dir.path(),
        "isc.yaml",
        "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  platform:\n    graph: true\n    channels:\n    - name: stable-4.13\n      minVersion: 4.13.3\n      maxVersion: 4.13.6\n",
    );
    // Expected: every node of the served graph in [4.13.3, 4.13.6].
    let graph = served_graph(&w, "stable-4.13");
    let expected: BTreeSet<String> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["version"].as_str().unwrap().to_string())
        .filter(|v| triple(v) >= (4, 13, 3) && triple(v) <= (4, 13, 6))
        .collect();
    assert_eq!(expected.len(), 4, "{expected:?}");
    let dest = format!("docker://{}/mirror", dst.host);
    let flags = w.release_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let out = mirror_to_mirror(&isc, dir.path(), &dest, &flags).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let ws = dir.path().join("ws/working-dir");
    // oc-mirror's line per release collected, naming its payload.
    for v in &expected {
        let p = &w.payloads[&(v.clone(), "amd64".to_string())];
        let line = stdout.lines().find(|l| l.starts_with("Success collecting release ") && l.contains(&p.digest));
        assert!(line.is_some(), "no 'Success collecting release' for {v}: {stdout}");
    }

    let mut signatures = BTreeMap::new();
    for v in &expected {
        let p = &w.payloads[&(v.clone(), "amd64".to_string())];
        assert_eq!(digest_at(&dst.host, &format!("mirror/openshift/release-images:{}", p.tag)), p.digest);
        for (name, image) in &p.components {
            let want = image.rsplit_once('@').unwrap().1;
            assert_eq!(digest_at(&dst.host, &format!("mirror/openshift/release:{}-{name}", p.tag)), want, "{v} {name}");
        }
        let sig = reqwest::blocking::get(format!(
            "{}/sha256={}/signature-1",
            w.signature_url,
            p.digest.trim_start_matches("sha256:")
        ))
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec();
        signatures.insert(format!("{}-1", p.digest.replace(':', "-")), sig);
        // Kept for later runs, readable by the owner only.
        let kept = ws.join("signatures").join(format!("{}-{}", p.tag, p.digest.replace(':', "-")));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&kept).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // Versions outside the range were not mirrored.
    let tags =
        skopeo(&["list-tags", "--tls-verify=false", &format!("docker://{}/mirror/openshift/release-images", dst.host)]);
    let tags: Value = serde_json::from_slice(&tags).unwrap();
    let got: BTreeSet<String> = tags["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().trim_end_matches("-x86_64").to_string())
        .collect();
    assert_eq!(got, expected);

    // Cluster resources: IDMS for payloads and components, UpdateService, signatures.
    let res = ws.join("cluster-resources");
    let idms = yaml_docs(&res.join("idms-oc-mirror.yaml"));
    let mirrors: BTreeMap<String, Vec<String>> = idms
        .iter()
        .flat_map(|d| d["spec"]["imageDigestMirrors"].as_array().unwrap().clone())
        .map(|m| {
            let ms = m["mirrors"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
            (m["source"].as_str().unwrap().to_string(), ms)
        })
        .collect();
    assert_eq!(
        mirrors[&format!("{}/openshift-release-dev/ocp-release", src.host)],
        vec![format!("{}/mirror/openshift/release-images", dst.host)]
    );
    assert_eq!(
        mirrors[&format!("{}/openshift-release-dev/ocp-v4.0-art-dev", src.host)],
        vec![format!("{}/mirror/openshift/release", dst.host)]
    );
    let us = &yaml_docs(&res.join("updateService.yaml"))[0];
    assert_eq!(us["spec"]["releases"], format!("{}/mirror/openshift/release-images", dst.host));
    let graph_ref = us["spec"]["graphDataImage"].as_str().unwrap().to_string();
    let graph_digest = graph_ref.rsplit_once('@').unwrap().1.to_string();
    assert_eq!(digest_at(&dst.host, "mirror/openshift/graph-image:latest"), graph_digest);
    let cm: Value = serde_json::from_slice(&std::fs::read(res.join("signature-configmap.json")).unwrap()).unwrap();
    assert_eq!(cm["metadata"]["namespace"], "openshift-config-managed");
    let data = cm["binaryData"].as_object().unwrap();
    assert_eq!(data.keys().cloned().collect::<BTreeSet<_>>(), signatures.keys().cloned().collect());
    use base64::Engine as _;
    for (k, sig) in &signatures {
        assert_eq!(&base64::engine::general_purpose::STANDARD.decode(data[k].as_str().unwrap()).unwrap(), sig);
    }

    // The graph image: the base's platforms, each with the graph data as its last layer.
    let index: Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/mirror/openshift/graph-image:latest", dst.host),
    ]))
    .unwrap();
    let base: Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}", w.base_image),
    ]))
    .unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), base["manifests"].as_array().unwrap().len());
    let config: Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--config",
        "--tls-verify=false",
        &format!(
            "docker://{}/mirror/openshift/graph-image@{}",
            dst.host,
            index["manifests"][0]["digest"].as_str().unwrap()
        ),
    ]))
    .unwrap();
    assert_eq!(
        config["config"]["Cmd"][2],
        "exec cp -rp /var/lib/cincinnati-graph-data/* /var/lib/cincinnati/graph-data"
    );

    // A second run finds everything in place.
    let again = mirror_to_mirror(&isc, dir.path(), &dest, &flags).output().unwrap();
    let again_out = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(again.status.success(), "{again_out}");
    assert!(again_out.contains("already present"), "{again_out}");
}

#[test]
fn a_bad_signature_stops_the_releases_and_the_rest_goes_on() {
    let src = Registry::start(RegistryOptions::default());
    let dst = Registry::start(RegistryOptions::default());
    let w = world(&src);
    let bad = &w.payloads[&("4.13.5".to_string(), "amd64".to_string())];
    w.tamper_signature(&bad.digest);
    let extra = bad.components.values().next().unwrap().clone();
    let dir = temp_dir("release-badsig");
    let isc = write(
        dir.path(),
        "isc.yaml",
        &format!(
            "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  platform:\n    channels:\n    - name: stable-4.13\n      minVersion: 4.13.4\n      maxVersion: 4.13.6\n  additionalImages:\n  - name: {extra}\n"
        ),
    );
    let dest = format!("docker://{}/mirror", dst.host);
    let flags = w.release_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let out = mirror_to_mirror(&isc, dir.path(), &dest, &flags).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(2), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("signature not trusted") && stdout.contains(&bad.digest), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("✗ releases: collection error: ")), "{stdout}");
    let logs: Vec<_> =
        std::fs::read_dir(dir.path().join("ws/working-dir/logs")).unwrap().map(|e| e.unwrap().path()).collect();
    let log = std::fs::read_to_string(&logs[0]).unwrap();
    assert!(log.contains("mirror.platform") && log.contains(&bad.digest), "{log}");
    // The additional image went through; no release image did.
    let want = extra.rsplit_once('@').unwrap().1;
    let path = extra.split_once('/').unwrap().1.split('@').next().unwrap();
    assert_eq!(digest_at(&dst.host, &format!("mirror/{path}@{want}")), want);
    let listed = std::process::Command::new("skopeo")
        .args(["list-tags", "--tls-verify=false", &format!("docker://{}/mirror/openshift/release-images", dst.host)])
        .output()
        .unwrap();
    assert!(!listed.status.success(), "release images were mirrored despite the bad signature");
}

#[test]
fn shortest_path_across_channels_and_list_releases_follow_the_graph() {
    let src = Registry::start(RegistryOptions::default());
    let w = world(&src);
    let dir = temp_dir("release-plan");
    // list releases: the versions of the channel, as the graph lists them.
    let out =
        bin().args(["list", "releases", "--channel", "stable-4.13", "--update-url", &w.graph_url]).output().unwrap();
    let text = support::cli::ok(out);
    let graph = served_graph(&w, "stable-4.13");
    let mut all: Vec<(u64, u64, u64)> =
        graph["nodes"].as_array().unwrap().iter().map(|n| triple(n["version"].as_str().unwrap())).collect();
    all.sort();
    let listed: Vec<(u64, u64, u64)> =
        text.lines().filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit())).map(triple).collect();
    assert_eq!(listed, all);
    let head = all.last().unwrap();
    assert!(text.contains(&format!("Latest: {}.{}.{}", head.0, head.1, head.2)), "{text}");
    // --version X.Y lists the whole stable-X.Y channel, other minors included, as oc-mirror does.
    let by_version =
        bin().args(["list", "releases", "--version", "4.13", "--update-url", &w.graph_url]).output().unwrap();
    let by_version = support::cli::ok(by_version);
    let listed: Vec<(u64, u64, u64)> =
        by_version.lines().filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit())).map(triple).collect();
    assert_eq!(listed, all, "{by_version}");
    assert!(by_version.starts_with("Channel: stable-4.13\n"), "{by_version}");
    assert!(all.iter().any(|v| v.1 != 13), "the served stable-4.13 holds only 4.13.z: nothing shows the whole channel");
    // A channel without versions is an error, in oc-mirror's words.
    let empty =
        bin().args(["list", "releases", "--channel", "stable-9.99", "--update-url", &w.graph_url]).output().unwrap();
    assert!(!empty.status.success(), "an empty channel listed successfully");
    assert_eq!(
        String::from_utf8_lossy(&empty.stderr).trim_end(),
        "imageset-operator: error: channel \"stable-9.99\": no versions found"
    );

    // A shortest path in one channel, as a dry run: the mapping names exactly its payloads.
    let (from, to) = ("4.13.0", "4.13.9");
    let nodes = graph["nodes"].as_array().unwrap();
    let idx = |v: &str| nodes.iter().position(|n| n["version"] == v).unwrap();
    let edges: Vec<(usize, usize)> = serde_json::from_value(graph["edges"].clone()).unwrap();
    // Hop distance by relaxation (independent of the product's BFS).
    let mut d = vec![usize::MAX; nodes.len()];
    d[idx(from)] = 0;
    for _ in 0..nodes.len() {
        for &(a, b) in &edges {
            if d[a] != usize::MAX && d[a] + 1 < d[b] {
                d[b] = d[a] + 1;
            }
        }
    }
    let hops = d[idx(to)];
    assert!(hops != usize::MAX && hops >= 1);
    let isc = write(
        dir.path(),
        "isc.yaml",
        &format!(
            "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  platform:\n    kubeVirtContainer: true\n    channels:\n    - name: stable-4.13\n      minVersion: {from}\n      maxVersion: {to}\n      shortestPath: true\n      type: okd\n"
        ),
    );
    // `type: okd` asks the OKD graph: the OCP one points nowhere.
    let mut flags: Vec<String> = w.release_flags().into_iter().filter(|f| !f.starts_with("--update-url=")).collect();
    flags.push("--update-url=http://127.0.0.1:9/not-this-one".into());
    flags.push(format!("--okd-update-url={}", w.graph_url));
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.push("--dry-run");
    let out = mirror_to_mirror(&isc, dir.path(), "docker://mirror.example.com:5000", &args).output().unwrap();
    support::cli::ok(out);
    let mapping = std::fs::read_to_string(dir.path().join("ws/working-dir/dry-run/mapping.txt")).unwrap();
    let payloads: Vec<&str> = mapping.lines().filter(|l| l.contains("/openshift/release-images:")).collect();
    assert_eq!(payloads.len(), hops + 1, "{mapping}");
    for v in [from, to] {
        assert!(mapping.contains(&format!("/openshift/release-images:{v}-x86_64")), "{v}: {mapping}");
    }
    let consecutive = payloads
        .iter()
        .map(|l| l.rsplit(':').next().unwrap().trim_end_matches("-x86_64").to_string())
        .collect::<Vec<_>>();
    let names: BTreeSet<(String, String)> = edges
        .iter()
        .map(|(a, b)| {
            (nodes[*a]["version"].as_str().unwrap().to_string(), nodes[*b]["version"].as_str().unwrap().to_string())
        })
        .collect();
    let mut sorted = consecutive.clone();
    sorted.sort_by_key(|v| triple(v));
    for pair in sorted.windows(2) {
        assert!(names.contains(&(pair[0].clone(), pair[1].clone())), "{pair:?} is not an edge");
    }
    // kubeVirtContainer: each release's x86_64 disk, under the release's tag.
    for v in &sorted {
        let p = &w.payloads[&(v.clone(), "amd64".to_string())];
        let line = format!(
            "docker://{}=docker://mirror.example.com:5000/openshift/release:{}-kube-virt-container",
            p.kubevirt["x86_64"], p.tag
        );
        assert!(mapping.contains(&line), "{line}\n{mapping}");
    }
}

#[test]
fn releases_go_to_disk_and_from_disk_into_a_disconnected_registry() {
    let src = Registry::start(RegistryOptions::default());
    let dst = Registry::start(RegistryOptions::default());
    let w = world(&src);
    let dir = temp_dir("release-d2m");
    let isc = write(
        dir.path(),
        "isc.yaml",
        "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  platform:\n    graph: true\n    channels:\n    - name: stable-4.13\n      minVersion: 4.13.8\n      maxVersion: 4.13.9\n",
    );
    let archives = dir.path().join("archives");
    let flags = w.release_flags();
    let out = bin()
        .args(["mirror", "-c", &isc, &format!("file://{}", archives.display()), "--src-tls-verify=false"])
        .arg("--cache-dir")
        .arg(dir.path().join("cache-online"))
        .args(&flags)
        .output()
        .unwrap();
    support::cli::ok(out);
    let payloads: Vec<_> =
        ["4.13.8", "4.13.9"].iter().map(|v| w.payloads[&(v.to_string(), "amd64".to_string())].clone()).collect();
    let key_copy = dir.path().join("release-key.asc");
    std::fs::copy(&w.public_key, &key_copy).unwrap();
    // The disconnected side: no update graph, no signature store, no source registry.
    drop(w);
    drop(src);
    let out = bin()
        .args(["mirror", "-c", &isc, "--from", &format!("file://{}", archives.display())])
        .arg(format!("docker://{}/enclave", dst.host))
        .arg("--cache-dir")
        .arg(dir.path().join("cache-enclave"))
        .args(["--dest-tls-verify=false", &format!("--release-signature-key={}", key_copy.display())])
        .output()
        .unwrap();
    let text = support::cli::ok(out);
    for p in &payloads {
        assert_eq!(digest_at(&dst.host, &format!("enclave/openshift/release-images:{}", p.tag)), p.digest, "{text}");
        for (name, image) in &p.components {
            assert_eq!(
                digest_at(&dst.host, &format!("enclave/openshift/release:{}-{name}", p.tag)),
                image.rsplit_once('@').unwrap().1
            );
        }
    }
    let res = archives.join("working-dir/cluster-resources");
    let cm: Value = serde_json::from_slice(&std::fs::read(res.join("signature-configmap.json")).unwrap()).unwrap();
    let keys: BTreeSet<String> = cm["binaryData"].as_object().unwrap().keys().cloned().collect();
    let want: BTreeSet<String> = payloads.iter().map(|p| format!("{}-1", p.digest.replace(':', "-"))).collect();
    assert_eq!(keys, want);
    let us = &yaml_docs(&res.join("updateService.yaml"))[0];
    let graph = us["spec"]["graphDataImage"].as_str().unwrap().rsplit_once('@').unwrap().1.to_string();
    assert_eq!(digest_at(&dst.host, "enclave/openshift/graph-image:latest"), graph);

    // The archives carry the update graph: an image set naming one of the two versions
    // imports that release alone (its payload, components and signature), with no graph service.
    let only = write(
        dir.path(),
        "only.yaml",
        "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  platform:\n    channels:\n    - name: stable-4.13\n      minVersion: 4.13.9\n      maxVersion: 4.13.9\n",
    );
    let subset = Registry::start(RegistryOptions::default());
    let out = bin()
        .args(["mirror", "-c", &only, "--from", &format!("file://{}", archives.display())])
        .arg(format!("docker://{}/enclave", subset.host))
        .arg("--cache-dir")
        .arg(dir.path().join("cache-enclave"))
        .args(["--dest-tls-verify=false", &format!("--release-signature-key={}", key_copy.display())])
        .args(["--update-url", "http://127.0.0.1:1/graph"])
        .output()
        .unwrap();
    let subset_text = support::cli::ok(out);
    let tags = skopeo(&[
        "list-tags",
        "--tls-verify=false",
        &format!("docker://{}/enclave/openshift/release-images", subset.host),
    ]);
    let tags: Value = serde_json::from_slice(&tags).unwrap();
    assert_eq!(tags["Tags"], serde_json::json!([payloads[1].tag]), "{subset_text}");
    let components =
        skopeo(&["list-tags", "--tls-verify=false", &format!("docker://{}/enclave/openshift/release", subset.host)]);
    let components: Value = serde_json::from_slice(&components).unwrap();
    let got: BTreeSet<String> =
        components["Tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_string()).collect();
    let want: BTreeSet<String> = payloads[1].components.keys().map(|n| format!("{}-{n}", payloads[1].tag)).collect();
    assert_eq!(got, want, "{subset_text}");
    let res = archives.join("working-dir/cluster-resources");
    let cm: Value = serde_json::from_slice(&std::fs::read(res.join("signature-configmap.json")).unwrap()).unwrap();
    let keys: Vec<&String> = cm["binaryData"].as_object().unwrap().keys().collect();
    assert_eq!(keys, [&format!("{}-1", payloads[1].digest.replace(':', "-"))]);
    let graph_tags =
        reqwest::blocking::get(format!("http://{}/v2/enclave/openshift/graph-image/tags/list", subset.host)).unwrap();
    assert_eq!(graph_tags.status().as_u16(), 404, "graph: false imports no graph image");
}

#[test]
fn an_explicit_multi_arch_release_is_copied_for_the_requested_platform_only() {
    let src = Registry::start(RegistryOptions::default());
    let dst = Registry::start(RegistryOptions::default());
    let w =
        ReleaseWorld::start(&src, ReleaseWorldOptions { versions: vec!["4.13.2".into()], multi: true, components: 8 });
    let p = &w.payloads[&("4.13.2".to_string(), "multi".to_string())];
    let dir = temp_dir("release-explicit");
    let isc = write(
        dir.path(),
        "isc.yaml",
        &format!(
            "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  platform:\n    release: {}/openshift-release-dev/ocp-release:{}\n    platforms:\n    - os: linux\n      architecture: arm64\n",
            src.host, p.tag
        ),
    );
    let dest = format!("docker://{}/m", dst.host);
    let flags = w.release_flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    support::cli::ok(mirror_to_mirror(&isc, dir.path(), &dest, &flags).output().unwrap());
    // The payload and every component arrive as sparse indexes holding arm64 only.
    let mut checked = 0;
    for reference in std::iter::once(format!("m/openshift/release-images:{}", p.tag))
        .chain(p.components.keys().map(|n| format!("m/openshift/release:{}-{n}", p.tag)))
    {
        let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{}/{reference}", dst.host)]);
        let v: Value = serde_json::from_slice(&raw).unwrap();
        let archs: Vec<&str> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["platform"]["architecture"].as_str().unwrap())
            .collect();
        assert_eq!(archs, vec!["arm64"], "{reference}");
        checked += 1;
    }
    assert_eq!(checked, 1 + p.components.len());
}

/// An enclave has no route to the graph data: a hub whose cache holds the graph image built
/// by an earlier run mirrors that image to the next registry, with a warning, as oc-mirror's
/// enclave mode does; with nothing built before, the run fails.
#[test]
fn without_graph_data_the_graph_image_in_the_cache_is_reused() {
    let src = Registry::start(RegistryOptions::default());
    let (first, second) = (Registry::start(RegistryOptions::default()), Registry::start(RegistryOptions::default()));
    let w = world(&src);
    let dir = temp_dir("release-graph-reuse");
    let isc = write(
        dir.path(),
        "isc.yaml",
        "apiVersion: mirror.openshift.io/v2alpha1\nkind: ImageSetConfiguration\nmirror:\n  platform:\n    graph: true\n    channels:\n    - name: stable-4.13\n      minVersion: 4.13.5\n      maxVersion: 4.13.6\n",
    );
    let flags = w.release_flags();
    let online: Vec<&str> = flags.iter().map(String::as_str).collect();
    let unreachable = format!("--graph-data-url=http://127.0.0.1:{}/graph-data", support::free_port());
    let offline: Vec<&str> = flags
        .iter()
        .map(|f| if f.starts_with("--graph-data-url=") { unreachable.as_str() } else { f.as_str() })
        .collect();

    // Nothing built into this cache yet: the run cannot make a graph image.
    let fresh = temp_dir("release-graph-fresh");
    let out =
        mirror_to_mirror(&isc, fresh.path(), &format!("docker://{}/mirror", second.host), &offline).output().unwrap();
    assert!(!out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));

    let out = mirror_to_mirror(&isc, dir.path(), &format!("docker://{}/mirror", first.host), &online).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let built = digest_at(&first.host, "mirror/openshift/graph-image:latest");
    let out =
        mirror_to_mirror(&isc, dir.path(), &format!("docker://{}/mirror", second.host), &offline).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("graph data could not be downloaded") && text.contains(&built), "{text}");
    assert_eq!(digest_at(&second.host, "mirror/openshift/graph-image:latest"), built);
}
