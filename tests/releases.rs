//! The release world, judged by real clients: reqwest for the Cincinnati graph and the
//! signature store, skopeo for the payload and component images, gpg for the signatures.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use semver::Version;
use serde_json::Value;
use support::gpg;
use support::registry::{Registry, RegistryOptions};
use support::release::{ReleaseWorld, ReleaseWorldOptions};
use support::{sha256, shared_data, skopeo, temp_dir};

const GRAPH_DATA: &str = "cincinnati/cincinnati-graph-data-731d042.tar.gz";

/// `skopeo inspect --raw` of `reference` (plain HTTP registry); returns the manifest bytes.
fn raw(reference: &str) -> Vec<u8> {
    skopeo(&["inspect", "--raw", "--tls-verify=false", &format!("docker://{reference}")])
}

/// The digest a `name@sha256:..` reference pins.
fn pinned(reference: &str) -> &str {
    reference.split_once('@').expect("a digest reference").1
}

/// `channels/*.yaml` and `blocked-edges/*.yaml` of the real graph-data tarball, by path.
fn graph_data_files() -> BTreeMap<String, Value> {
    let gz = std::fs::read(shared_data().join(GRAPH_DATA)).unwrap();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut tar).unwrap();
    let mut out = BTreeMap::new();
    for e in tar::Archive::new(&tar[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        if path.ends_with(".yaml") && (path.contains("/channels/") || path.contains("/blocked-edges/")) {
            let mut text = String::new();
            e.read_to_string(&mut text).unwrap();
            let short = path.split_once('/').unwrap().1.to_string();
            out.insert(short, serde_saphyr::from_str(&text).unwrap());
        }
    }
    out
}

/// Path -> content of the regular files of a gzip tar.
fn tar_files(gz: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in tar::Archive::new(flate2::read::GzDecoder::new(gz)).entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type().is_file() {
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut b = Vec::new();
            e.read_to_end(&mut b).unwrap();
            out.insert(path, b);
        }
    }
    out
}

/// A GET over a bare connection, so the request carries exactly the headers given (clients
/// add an Accept of their own); returns status, lower-cased headers and body.
fn get_raw(url: &str, accept: Option<&str>) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let rest = url.strip_prefix("http://").unwrap();
    let (host, target) = rest.split_at(rest.find('/').unwrap());
    let mut conn = std::net::TcpStream::connect(host).unwrap();
    let accept = accept.map(|a| format!("Accept: {a}\r\n")).unwrap_or_default();
    write!(conn, "GET {target} HTTP/1.1\r\nHost: {host}\r\n{accept}Connection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    conn.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head");
    let head = String::from_utf8(response[..split].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, response[split + 4..].to_vec())
}

/// Plain and conditional edges of a graph answer, as version pairs.
type Edges = BTreeSet<(String, String)>;

fn edges(graph: &Value) -> (Edges, BTreeMap<(String, String), BTreeSet<String>>) {
    let nodes = graph["nodes"].as_array().unwrap();
    let name = |i: &Value| nodes[i.as_u64().unwrap() as usize]["version"].as_str().unwrap().to_string();
    let plain = graph["edges"].as_array().unwrap().iter().map(|e| (name(&e[0]), name(&e[1]))).collect();
    let mut conditional: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for group in graph["conditionalEdges"].as_array().unwrap() {
        let risks: BTreeSet<String> =
            group["risks"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap().to_string()).collect();
        for e in group["edges"].as_array().unwrap() {
            let key = (e["from"].as_str().unwrap().to_string(), e["to"].as_str().unwrap().to_string());
            conditional.entry(key).or_default().extend(risks.iter().cloned());
        }
    }
    (plain, conditional)
}

/// The `from` regex of a blocked-edges file, anchored as the world documents.
fn from_regex(file: &Value) -> regex::Regex {
    let src = file["from"].as_str().unwrap();
    regex::Regex::new(&format!("^(?:{})$", src.split(" #").next().unwrap().trim())).unwrap()
}

#[test]
fn world_serves_graphs_payloads_and_signatures() {
    let reg = Registry::start(RegistryOptions::default());
    let data = shared_data();
    let real: Value = serde_json::from_slice(
        &std::fs::read(data.join("cincinnati/graph-api-responses/amd64-stable-4.13.json")).unwrap(),
    )
    .unwrap();
    let (lo, hi) = (Version::new(4, 13, 0), Version::new(4, 13, 10));
    let mut versions: Vec<Version> = real["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| Version::parse(n["version"].as_str().unwrap()).unwrap())
        .filter(|v| *v >= lo && *v <= hi)
        .collect();
    versions.sort();
    let versions: Vec<String> = versions.iter().map(Version::to_string).collect();
    eprintln!("4.13.0..=4.13.10 in the real stable-4.13 graph: {versions:?}");
    assert!(versions.len() >= 5, "the real graph has 4.13.z releases");

    let started = Instant::now();
    let opts = ReleaseWorldOptions { versions: versions.clone(), multi: true, components: 40 };
    let world = ReleaseWorld::start(&reg, opts);
    eprintln!("ReleaseWorld::start took {:?} for {} payloads", started.elapsed(), world.payloads.len());
    assert_eq!(world.payloads.len(), versions.len() * 2);

    let http = reqwest::blocking::Client::new();
    let graph = |channel: &str, arch: &str| -> Value {
        let url = format!("{}?channel={channel}&arch={arch}", world.graph_url);
        let resp = http.get(&url).header("Accept", "application/json").send().unwrap();
        assert_eq!(resp.status().as_u16(), 200, "GET {url}");
        resp.json().unwrap()
    };

    // The real stable-4.13 graph, with the synthesized versions pointing at the registry.
    let served = graph("stable-4.13", "amd64");
    assert_eq!(served["nodes"].as_array().unwrap().len(), 98);
    assert_eq!(served["edges"].as_array().unwrap().len(), 1171);
    assert_eq!(served["edges"], real["edges"]);
    assert_eq!(served["conditionalEdges"], real["conditionalEdges"]);
    for (node, original) in served["nodes"].as_array().unwrap().iter().zip(real["nodes"].as_array().unwrap()) {
        let v = node["version"].as_str().unwrap();
        match world.payloads.get(&(v.to_string(), "amd64".to_string())) {
            Some(p) => {
                assert_eq!(node["payload"], p.reference.as_str());
                assert!(p.reference.starts_with(&format!("{}/openshift-release-dev/ocp-release@sha256:", reg.host)));
                assert_eq!(node["metadata"]["io.openshift.upgrades.graph.release.manifestref"], p.digest.as_str());
            }
            None => assert_eq!(node, original, "{v} is not synthesized and stays as served upstream"),
        }
    }

    // Payloads resolve by digest, hold a flattened release-manifests, and name real images.
    let work = temp_dir("releases-");
    for ((v, arch), p) in &world.payloads {
        let manifest: Value = serde_json::from_slice(&{
            let bytes = raw(&p.reference);
            assert_eq!(sha256(&bytes), p.digest, "{} resolves to its digest", p.reference);
            bytes
        })
        .unwrap();
        let by_tag = raw(&format!("{}/openshift-release-dev/ocp-release:{}", reg.host, p.tag));
        assert_eq!(sha256(&by_tag), p.digest);
        let root = work.path().join(&p.tag);
        let config = support::image::extract_image(&reg, &p.reference, &root);
        assert_eq!(config.labels["io.openshift.release"], *v);
        let refs: Value =
            serde_json::from_slice(&std::fs::read(root.join("release-manifests/image-references")).unwrap()).unwrap();
        assert_eq!(refs["kind"], "ImageStream");
        assert_eq!(refs["metadata"]["name"], v.as_str());
        let tags = refs["spec"]["tags"].as_array().unwrap();
        assert_eq!(tags.len(), 40);
        let named: BTreeMap<String, String> = tags
            .iter()
            .map(|t| (t["name"].as_str().unwrap().to_string(), t["from"]["name"].as_str().unwrap().to_string()))
            .collect();
        assert_eq!(named, p.components);
        let metadata: Value =
            serde_json::from_slice(&std::fs::read(root.join("release-manifests/release-metadata")).unwrap()).unwrap();
        assert_eq!(metadata["kind"], "cincinnati-metadata-v0");
        assert_eq!(metadata["version"], v.as_str());
        assert!(!metadata["previous"].as_array().unwrap().is_empty());
        // The later layer replaced the bootimages and whited out a fixture.
        let boot: Value = serde_saphyr::from_str(
            &std::fs::read_to_string(root.join("release-manifests/0000_50_installer_coreos-bootimages.yaml")).unwrap(),
        )
        .unwrap();
        let stream: Value = serde_json::from_str(boot["data"]["stream"].as_str().unwrap()).unwrap();
        for (a, r) in &p.kubevirt {
            assert_eq!(stream["architectures"][a]["images"]["kubevirt"]["digest-ref"], r.as_str());
        }
        assert!(!root.join("release-manifests/0000_20_a_exclude.yml").exists());
        assert!(root.join("release-manifests/0000_10_a_file.yaml").exists());

        let multi = arch == "multi";
        let list_type = "application/vnd.docker.distribution.manifest.list.v2+json";
        assert_eq!(manifest["mediaType"] == list_type, multi, "{} media type", p.tag);
        if multi {
            let platforms: BTreeSet<&str> = manifest["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["platform"]["architecture"].as_str().unwrap())
                .collect();
            assert_eq!(platforms, BTreeSet::from(["amd64", "arm64"]));
        }
        // A sample of ten components, spread over the list, and the KubeVirt disks exist.
        let sample = named.values().step_by(named.len() / 10).take(10);
        for r in sample.chain(p.kubevirt.values()) {
            let bytes = raw(r);
            assert_eq!(sha256(&bytes), pinned(r), "{r}");
            let m: Value = serde_json::from_slice(&bytes).unwrap();
            let is_list = m["mediaType"] == list_type;
            assert_eq!(is_list, multi && !p.kubevirt.values().any(|k| k == r), "{r} media type");
        }
    }

    // Most components stay the same between z-streams; some are rebuilt.
    let amd64: Vec<_> = world.payloads.iter().filter(|((_, a), _)| a == "amd64").map(|(_, p)| p).collect();
    let distinct: BTreeSet<&String> = amd64.iter().flat_map(|p| p.components.values()).collect();
    let total = amd64.len() * 40;
    eprintln!("{} distinct component images over {total} references", distinct.len());
    assert!(distinct.len() > 40 && distinct.len() * 2 < total);

    // Graphs built from the real graph data, for other channels and arches.
    let files = graph_data_files();
    for (channel, arch) in
        [("stable-4.14", "amd64"), ("fast-4.13", "multi"), ("stable-4.13", "multi"), ("stable-4.10", "amd64")]
    {
        let g = graph(channel, arch);
        let listed: BTreeSet<String> =
            serde_json::from_value(files[&format!("channels/{channel}.yaml")]["versions"].clone()).unwrap();
        let nodes: BTreeSet<String> =
            g["nodes"].as_array().unwrap().iter().map(|n| n["version"].as_str().unwrap().to_string()).collect();
        assert_eq!(nodes, listed, "{channel}/{arch} nodes are the channel's versions");
        let (plain, conditional) = edges(&g);
        assert!(!plain.is_empty(), "{channel}/{arch} has edges");
        for (u, v) in plain.iter().chain(conditional.keys()) {
            let (a, b) = (Version::parse(u).unwrap(), Version::parse(v).unwrap());
            assert!(a < b && a.major == b.major && (b.minor == a.minor || b.minor == a.minor + 1), "{u} -> {v}");
        }
        assert!(plain.iter().all(|e| !conditional.contains_key(e)));
        for n in g["nodes"].as_array().unwrap() {
            let v = n["version"].as_str().unwrap();
            let channels = n["metadata"]["io.openshift.upgrades.graph.release.channels"].as_str().unwrap();
            assert!(channels.split(',').any(|c| c == channel));
            if let Some(p) = world.payloads.get(&(v.to_string(), arch.to_string())) {
                assert_eq!(n["payload"], p.reference.as_str());
            }
        }
        // Every blocked edge of the data is honoured: dropped, or conditional with its risk.
        for (path, file) in files.iter().filter(|(p, _)| p.starts_with("blocked-edges/")) {
            let to = file["to"].as_str().unwrap();
            if !nodes.contains(to) {
                continue;
            }
            let re = from_regex(file);
            for from in nodes.iter().filter(|u| re.is_match(u) || re.is_match(&format!("{u}+{arch}"))) {
                let edge = (from.clone(), to.to_string());
                assert!(!plain.contains(&edge), "{path} blocks {from} -> {to} in {channel}/{arch}");
                match (conditional.get(&edge), file["name"].as_str()) {
                    (Some(risks), Some(name)) => assert!(risks.contains(name), "{path}: {from} -> {to}"),
                    (Some(_), None) => panic!("{path} has no risk, yet {from} -> {to} is conditional"),
                    (None, _) => {}
                }
            }
        }
        eprintln!("{channel}/{arch}: {} nodes, {} edges, {} conditional", nodes.len(), plain.len(), conditional.len());
    }

    // Signatures: real OpenPGP messages naming the payload digest; tampered ones fail.
    let sig_url = |digest: &str| format!("{}/sha256={}/signature-1", world.signature_url, &digest[7..]);
    let fetch = |digest: &str| http.get(sig_url(digest)).send().unwrap();
    for p in world.payloads.values() {
        let resp = fetch(&p.digest);
        assert_eq!(resp.status().as_u16(), 200);
        let content = gpg::verify(&world.public_key, &resp.bytes().unwrap()).expect("a good signature");
        let claim: Value = serde_json::from_slice(&content).unwrap();
        assert_eq!(claim["critical"]["image"]["docker-manifest-digest"], p.digest.as_str());
        assert_eq!(claim["critical"]["type"], "atomic container signature");
        let identity = format!("{}/openshift-release-dev/ocp-release:{}", reg.host, p.tag);
        assert_eq!(claim["critical"]["identity"]["docker-reference"], identity.as_str());
    }
    assert_eq!(fetch(&sha256(b"no such payload")).status().as_u16(), 404);
    let victim = &world.payloads[&(versions[0].clone(), "amd64".to_string())];
    world.tamper_signature(&victim.digest);
    let refused = gpg::verify(&world.public_key, &fetch(&victim.digest).bytes().unwrap());
    assert!(refused.expect_err("gpg accepted a tampered signature").contains("[GNUPG:] BADSIG"));
    let other = &world.payloads[&(versions[1].clone(), "amd64".to_string())];
    assert!(gpg::verify(&world.public_key, &fetch(&other.digest).bytes().unwrap()).is_ok());
    let signed = world.sign(b"{\"any\":\"bytes\"}");
    assert_eq!(gpg::verify(&world.public_key, &signed).unwrap(), b"{\"any\":\"bytes\"}");

    // Media types as Cincinnati negotiates them; unknown channels are empty; graph-data is
    // the tarball.
    let url = format!("{}?channel=stable-4.13&arch=amd64", world.graph_url);
    for (accept, status, media_type) in [
        (Some("text/html"), 406, "application/json"),
        (Some("application/json, text/plain"), 406, "application/json"),
        (Some("*/*"), 200, "application/json"),
        (None, 200, "application/vnd.redhat.cincinnati.v1+json"),
    ] {
        let (got, headers, body) = get_raw(&url, accept);
        assert_eq!((got, headers.get("content-type").map(String::as_str)), (status, Some(media_type)), "{accept:?}");
        let body: Value = serde_json::from_slice(&body).unwrap();
        if status == 406 {
            assert_eq!(body["kind"], "invalid_content_type");
        } else {
            assert_eq!(body["nodes"].as_array().unwrap().len(), 98);
        }
    }
    let no_channel = format!("{}?arch=amd64", world.graph_url);
    assert_eq!(get_raw(&no_channel, Some("application/json")).0, 400);
    assert_eq!(graph("no-such-channel", "amd64")["nodes"].as_array().unwrap().len(), 0);
    let resp = http.get(&world.graph_data_url).send().unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["content-type"], "application/gzip");
    // The real endpoint's layout: the repository's files rooted at `./`.
    let served: BTreeMap<String, Vec<u8>> = tar_files(&resp.bytes().unwrap())
        .into_iter()
        .map(|(p, b)| (p.trim_start_matches("./").to_string(), b))
        .collect();
    let original: BTreeMap<String, Vec<u8>> = tar_files(&std::fs::read(data.join(GRAPH_DATA)).unwrap())
        .into_iter()
        .map(|(p, b)| (p.split_once('/').map_or("", |(_, r)| r).to_string(), b))
        .collect();
    assert_eq!(served.keys().collect::<Vec<_>>(), original.keys().collect::<Vec<_>>());
    assert!(served == original, "the served graph data differs from the repository's files");
    let log = world.requests();
    assert!(log.contains(&"GET /api/upgrades_info/v1/graph?channel=stable-4.13&arch=amd64".to_string()));
    assert!(log.contains(&"GET /api/upgrades_info/graph-data".to_string()));

    // The base image for graph images: an OCI index over amd64 and arm64.
    let index: Value = serde_json::from_slice(&raw(&world.base_image)).unwrap();
    assert_eq!(index["mediaType"], "application/vnd.oci.image.index.v1+json");
    let archs: BTreeSet<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, BTreeSet::from(["amd64", "arm64"]));
    let base = support::image::extract_image(&reg, &world.base_image, &work.path().join("ubi"));
    assert!(base.labels.is_empty() && Path::new(&work.path().join("ubi/bin/bash")).exists());
    assert!(work.path().join("ubi/var/lib").is_dir());
}
