//! The release world: the internet parts `oc mirror --v2` uses for OpenShift releases, on
//! loopback and built from real data.
//!
//! * Release payloads `<reg>/openshift-release-dev/ocp-release:<v>-x86_64` (Docker v2
//!   schema 2, linux/amd64) and, when asked, `<v>-multi` (a manifest list over linux/amd64 and
//!   linux/arm64), labelled `io.openshift.release=<v>`. Layers: a placeholder
//!   `usr/bin/cluster-version-operator`; `release-manifests/` with the real 4.12.0
//!   image-references (metadata.name = version, each `from.name` pointing at a synthetic
//!   component), a release-metadata of the real shape (version, `previous` by the edge rule of
//!   `release/graph.rs`, errata url when the real graph has one), the upstream
//!   coreos-bootimages ConfigMap and CVO fixture manifests; then a layer that replaces the
//!   bootimages with one whose KubeVirt `digest-ref`s point at synthetic disks, and whites out
//!   `0000_20_a_exclude.yml`, so only a correctly flattened payload reads right.
//! * Components in `<reg>/openshift-release-dev/ocp-v4.0-art-dev`, by digest only: one small
//!   layer and a config, linux/amd64 for amd64 payloads and a two-arch list (whose amd64
//!   entry is the amd64 image) for multi ones. A component's content depends on its name,
//!   the minor and a rebuild counter that bumps in about one z-stream in five, so most
//!   digests recur across versions as in real z-streams.
//! * A Cincinnati graph service, the graph-data tarball and the release signature store
//!   (real OpenPGP messages made by gpg with a key generated per world); `release/graph.rs`
//!   says how graphs are answered, `release/serve.rs` what each endpoint answers.
//! * A tiny two-architecture base image `<reg>/ubi9/ubi:latest` for building graph images.

mod graph;
mod serve;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use semver::Version;
use serde_json::{Value, json};

use super::content::Format;
use super::gpg::GpgKey;
use super::image::{layer, push_image};
use super::registry::Registry;
use super::{sha256, shared_data, temp_dir};

/// Where payloads live in the registry.
pub const RELEASE_REPO: &str = "openshift-release-dev/ocp-release";
/// Where component images live in the registry.
pub const COMPONENT_REPO: &str = "openshift-release-dev/ocp-v4.0-art-dev";

const MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const THREADS: usize = 4;

/// What to synthesize.
#[derive(Clone, Debug, Default)]
pub struct ReleaseWorldOptions {
    /// Versions to push payloads for, e.g. the 4.13.z of the real stable-4.13 graph.
    pub versions: Vec<String>,
    /// Also push multi-arch payloads (`<v>-multi`, answered for `arch=multi`).
    pub multi: bool,
    /// How many tags of the real image-references to keep, in file order (0 = all 183).
    pub components: usize,
}

/// A synthesized release payload.
#[derive(Clone, Debug)]
pub struct Payload {
    /// `4.13.5`.
    pub version: String,
    /// `<reg>/openshift-release-dev/ocp-release@sha256:..`.
    pub reference: String,
    /// Digest of its top manifest (the manifest list for multi).
    pub digest: String,
    /// `4.13.5-x86_64` or `4.13.5-multi`.
    pub tag: String,
    /// Component name -> `<reg>/openshift-release-dev/ocp-v4.0-art-dev@sha256:..`, as its
    /// image-references names them.
    pub components: BTreeMap<String, String>,
    /// `x86_64` and `s390x` -> the KubeVirt container disk its coreos-bootimages names.
    pub kubevirt: BTreeMap<String, String>,
}

/// A running release world; its server stops when dropped.
pub struct ReleaseWorld {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// `{url}/api/upgrades_info/v1/graph`.
    pub graph_url: String,
    /// `{url}/api/upgrades_info/graph-data`.
    pub graph_data_url: String,
    /// `{url}/pub/openshift-v4/signatures/openshift/release`: signatures are at
    /// `sha256=<hex>/signature-1` below it.
    pub signature_url: String,
    /// The armored public key of the key that signs the payloads.
    pub public_key: PathBuf,
    /// (version, `amd64` | `multi`) -> payload.
    pub payloads: BTreeMap<(String, String), Payload>,
    /// `<reg>/ubi9/ubi:latest`, an OCI index over linux/amd64 and linux/arm64.
    pub base_image: String,
    state: Arc<serve::State>,
    addr: SocketAddr,
    key: GpgKey,
    _dir: tempfile::TempDir,
}

/// Blobs and manifests to push to the component repository, deduplicated by digest.
#[derive(Default)]
struct Plan {
    blobs: BTreeMap<String, Vec<u8>>,
    manifests: BTreeMap<String, Vec<u8>>,
    lists: BTreeMap<String, Vec<u8>>,
    images: HashMap<(String, String), (String, usize)>,
    /// `name@build` -> (digest, size, diff_id) of its layer.
    layers: HashMap<String, (String, usize, String)>,
}

impl Plan {
    /// A one-layer linux/`arch` image whose content is named by `name` and `build` (the
    /// layer is the same for every arch); returns its digest and manifest size.
    fn image(&mut self, name: &str, build: &str, arch: &str, labels: &Value) -> (String, usize) {
        let key = (format!("{name}@{build}"), arch.to_string());
        if let Some(found) = self.images.get(&key) {
            return found.clone();
        }
        let (layer_digest, layer_size, diff_id) = self.layers.entry(key.0.clone()).or_insert_with(|| {
            let info = format!("component: {name}\nbuild: {build}\n");
            let l = layer(&[(&format!("usr/share/openshift/release/{name}"), Some(info.as_bytes()))]);
            let found = (sha256(&l.gz), l.gz.len(), l.diff_id);
            self.blobs.insert(found.0.clone(), l.gz);
            found
        });
        let (layer_digest, layer_size) = (layer_digest.clone(), *layer_size);
        let config = serde_json::to_vec(&json!({
            "architecture": arch, "os": "linux", "created": "1970-01-01T00:00:00Z",
            "config": {"Labels": labels}, "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))
        .unwrap();
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2, "mediaType": MANIFEST,
            "config": {"mediaType": CONFIG, "digest": sha256(&config), "size": config.len()},
            "layers": [{"mediaType": LAYER, "digest": layer_digest, "size": layer_size}],
        }))
        .unwrap();
        let found = (sha256(&manifest), manifest.len());
        self.blobs.insert(sha256(&config), config);
        self.manifests.insert(found.0.clone(), manifest);
        self.images.insert(key, found.clone());
        found
    }

    /// A component as a payload of `multi` names it: one image, or a list over two.
    fn component(&mut self, name: &str, build: &str, labels: &Value, multi: bool) -> String {
        if !multi {
            return self.image(name, build, "amd64", labels).0;
        }
        let entries: Vec<Value> = ["amd64", "arm64"]
            .iter()
            .map(|arch| {
                let (digest, size) = self.image(name, build, arch, labels);
                json!({"mediaType": MANIFEST, "digest": digest, "size": size,
                    "platform": {"os": "linux", "architecture": arch}})
            })
            .collect();
        let list =
            serde_json::to_vec_pretty(&json!({"schemaVersion": 2, "mediaType": LIST, "manifests": entries})).unwrap();
        let digest = sha256(&list);
        self.lists.insert(digest.clone(), list);
        digest
    }

    /// Writes every blob and manifest into the registry's storage in the layout
    /// Distribution's filesystem driver keeps (blobs by digest, links per repository), the
    /// files a push leaves. Over HTTP each tiny push costs the registry a few milliseconds of
    /// CPU, which for hundreds of components is most of the world's start-up; the files take
    /// a fraction of that. One manifest and one blob are then fetched over HTTP, so a registry
    /// that keeps its files otherwise fails here rather than in a test.
    fn store(&self, reg: &Registry) {
        let v2 = reg.storage.join("docker/registry/v2");
        let repo = v2.join("repositories").join(COMPONENT_REPO);
        let put = |bytes: &[u8], links: &str| {
            let digest = sha256(bytes);
            let hex = &digest[7..];
            let data = v2.join("blobs/sha256").join(&hex[..2]).join(hex).join("data");
            if !data.exists() {
                std::fs::create_dir_all(data.parent().unwrap()).expect("blob directory");
                let partial = data.with_extension("partial");
                std::fs::write(&partial, bytes).expect("write blob");
                std::fs::rename(&partial, &data).expect("place blob");
            }
            let link = repo.join(links).join(hex).join("link");
            std::fs::create_dir_all(link.parent().unwrap()).expect("link directory");
            std::fs::write(&link, &digest).expect("write link");
        };
        let blobs = self.blobs.values().map(|b| (b, "_layers/sha256"));
        let manifests = self.manifests.values().chain(self.lists.values()).map(|m| (m, "_manifests/revisions/sha256"));
        let all: Vec<(&Vec<u8>, &str)> = blobs.chain(manifests).collect();
        parallel(&all, |(bytes, links)| put(bytes, links));
        let http = reg.http();
        let (Some((blob, blob_bytes)), Some((manifest, manifest_bytes))) =
            (self.blobs.iter().next(), self.manifests.iter().next())
        else {
            return;
        };
        for (kind, digest, bytes) in [("blobs", blob, blob_bytes), ("manifests", manifest, manifest_bytes)] {
            let url = format!("{}/v2/{COMPONENT_REPO}/{kind}/{digest}", reg.base_url());
            let resp = reg.authorize(COMPONENT_REPO, http.get(&url)).header("Accept", MANIFEST).send().expect("GET");
            assert!(resp.status().is_success(), "the registry does not serve stored {kind}: {url}: {}", resp.status());
            assert_eq!(resp.bytes().unwrap().as_ref(), &bytes[..], "{url}");
        }
    }
}

/// Runs `f` on every item over a few threads.
fn parallel<T: Sync>(items: &[T], f: impl Fn(&T) + Sync) {
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..THREADS.min(items.len()) {
            s.spawn(|| {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::SeqCst)) {
                    f(item);
                }
            });
        }
    });
}

/// How often `name` was rebuilt up to `v` in its minor: a deterministic bump in about one
/// z-stream in five. Prereleases count as builds of their own.
fn build_id(name: &str, v: &Version) -> String {
    if !v.pre.is_empty() {
        return v.to_string();
    }
    let bumps = (1..=v.patch)
        .filter(|z| {
            let h = sha256(format!("{name}@{}.{}.{z}", v.major, v.minor).as_bytes());
            u64::from_str_radix(&h[7..23], 16).unwrap().is_multiple_of(5)
        })
        .count();
    format!("{}.{}-r{bumps}", v.major, v.minor)
}

/// The real coreos-bootimages ConfigMap with its KubeVirt `digest-ref`s replaced by `refs`
/// (by arch). The stream is JSON inside the YAML: the old values are read from it and
/// replaced in place, so the file keeps its real form, then checked by parsing again.
fn rewrite_bootimages(text: &str, refs: &BTreeMap<String, String>) -> String {
    let stream = |text: &str| -> Value {
        let cm: Value = serde_saphyr::from_str(text).expect("coreos-bootimages YAML");
        serde_json::from_str(cm["data"]["stream"].as_str().expect("data.stream")).expect("stream JSON")
    };
    let old = stream(text);
    let mut out = text.to_string();
    for (arch, new) in refs {
        let was = old["architectures"][arch]["images"]["kubevirt"]["digest-ref"].as_str().expect("digest-ref");
        assert_eq!(out.matches(was).count(), 1, "{was} is not unique in coreos-bootimages");
        out = out.replace(was, new);
    }
    let now = stream(&out);
    for (arch, new) in refs {
        assert_eq!(now["architectures"][arch]["images"]["kubevirt"]["digest-ref"], json!(new));
    }
    out
}

impl ReleaseWorld {
    /// Pushes the payloads, components and base image to `reg`, generates the signing key,
    /// signs every payload and starts serving.
    pub fn start(reg: &Registry, opts: ReleaseWorldOptions) -> ReleaseWorld {
        let data = shared_data();
        let dir = temp_dir("release-world-");
        let key_dir = dir.path().to_path_buf();
        let keygen = std::thread::spawn(move || GpgKey::generate(&key_dir));
        let read = |p: &str| std::fs::read(data.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
        let tarball = read("cincinnati/cincinnati-graph-data-731d042.tar.gz");
        let graph_data = std::thread::spawn(move || graph::GraphData::load(tarball));
        let real: Value =
            serde_json::from_slice(&read("cincinnati/graph-api-responses/amd64-stable-4.13.json")).unwrap();
        let urls = graph::errata_urls(&real);
        let rm = "release/ocp-4.12.0-x86_64/release-manifests";
        let stream: Value = serde_json::from_slice(&read(&format!("{rm}/image-references"))).unwrap();
        let metadata: Value = serde_json::from_slice(&read(&format!("{rm}/release-metadata"))).unwrap();
        let bootimages = String::from_utf8(read(&format!("{rm}/0000_50_installer_coreos-bootimages.yaml")))
            .expect("bootimages is UTF-8");
        let mut tags = stream["spec"]["tags"].as_array().expect("image-references tags").clone();
        if opts.components > 0 {
            tags.truncate(opts.components);
        }
        let fixtures_dir = data.join("release/cvo-testdata/payloadtest/release-manifests");
        let mut fixtures: Vec<(String, Vec<u8>)> = std::fs::read_dir(&fixtures_dir)
            .expect("CVO fixtures")
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("0000_")))
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
            .collect();
        fixtures.sort();

        // Components and KubeVirt disks for every payload, pushed once each.
        let flavours: &[(&str, bool)] =
            if opts.multi { &[("amd64", false), ("multi", true)] } else { &[("amd64", false)] };
        let mut plan = Plan::default();
        let mut planned = Vec::new();
        for v in &opts.versions {
            let semver = Version::parse(v).unwrap_or_else(|e| panic!("version {v}: {e}"));
            let mut kubevirt = BTreeMap::new();
            for (arch, docker_arch) in [("x86_64", "amd64"), ("s390x", "s390x")] {
                let name = format!("rhcos-kubevirt-{arch}");
                let labels = json!({"io.k8s.display-name": name});
                let digest = plan.image(&name, &build_id("rhcos-kubevirt", &semver), docker_arch, &labels).0;
                kubevirt.insert(arch.to_string(), format!("{}/{COMPONENT_REPO}@{digest}", reg.host));
            }
            for (flavour, multi) in flavours {
                let mut components = BTreeMap::new();
                for t in &tags {
                    let name = t["name"].as_str().expect("tag name");
                    let a = &t["annotations"];
                    let labels = json!({
                        "io.k8s.display-name": name,
                        "io.openshift.build.commit.id": a["io.openshift.build.commit.id"],
                        "io.openshift.build.source-location": a["io.openshift.build.source-location"],
                    });
                    let digest = plan.component(name, &build_id(name, &semver), &labels, *multi);
                    components.insert(name.to_string(), format!("{}/{COMPONENT_REPO}@{digest}", reg.host));
                }
                planned.push((v.clone(), flavour.to_string(), components, kubevirt.clone()));
            }
        }
        plan.store(reg);

        let base = layer(&[
            ("bin", None),
            ("bin/bash", Some(b"#!/bin/sh\n# placeholder\n")),
            ("var", None),
            ("var/lib", None),
        ]);
        push_image(reg, "ubi9/ubi", "latest", Format::Oci, &["amd64", "arm64"], &[base], json!({"Cmd": ["/bin/bash"]}));

        let graph_data = graph_data.join().expect("graph data");
        let payloads = Mutex::new(BTreeMap::new());
        parallel(&planned, |(v, flavour, components, kubevirt)| {
            let (v, flavour, components, kubevirt) = (v.clone(), flavour.clone(), components.clone(), kubevirt.clone());
            let multi = flavour == "multi";
            let tag = format!("{v}-{}", if multi { "multi" } else { "x86_64" });
            let mut refs = stream.clone();
            refs["metadata"]["name"] = json!(v);
            refs["spec"]["tags"] = json!(tags);
            for t in refs["spec"]["tags"].as_array_mut().unwrap() {
                t["from"]["name"] = json!(components[t["name"].as_str().unwrap()]);
            }
            let mut meta = metadata.clone();
            meta["version"] = json!(v);
            meta["previous"] = json!(graph_data.previous(&v));
            meta["metadata"] = json!({});
            if let Some(url) = urls.get(&v) {
                meta["metadata"]["url"] = json!(url);
            }
            if multi {
                meta["metadata"]["release.openshift.io/architecture"] = json!("multi");
            }
            let refs = serde_json::to_vec_pretty(&refs).unwrap();
            let meta = serde_json::to_vec_pretty(&meta).unwrap();
            let boot = rewrite_bootimages(&bootimages, &kubevirt);
            let minor = Version::parse(&v).map(|s| format!("{}.{}", s.major, s.minor)).unwrap();
            let cvo = format!("#!/bin/sh\n# cluster-version-operator {minor} (placeholder)\n");
            let mut manifests: Vec<(String, Option<&[u8]>)> = vec![
                ("release-manifests".into(), None),
                ("release-manifests/image-references".into(), Some(&refs[..])),
                ("release-manifests/release-metadata".into(), Some(&meta[..])),
                // The upstream file, replaced by the next layer: only a flattened view is right.
                ("release-manifests/0000_50_installer_coreos-bootimages.yaml".into(), Some(bootimages.as_bytes())),
            ];
            manifests.extend(fixtures.iter().map(|(n, b)| (format!("release-manifests/{n}"), Some(&b[..]))));
            let layers = [
                layer(&[("usr", None), ("usr/bin", None), ("usr/bin/cluster-version-operator", Some(cvo.as_bytes()))]),
                layer(&manifests.iter().map(|(p, c)| (p.as_str(), *c)).collect::<Vec<_>>()),
                layer(&[
                    ("release-manifests/0000_50_installer_coreos-bootimages.yaml", Some(boot.as_bytes())),
                    ("release-manifests/.wh.0000_20_a_exclude.yml", Some(b"")),
                ]),
            ];
            let mut labels = json!({"io.openshift.release": v});
            if multi {
                labels["release.openshift.io/architecture"] = json!("multi");
            }
            let config = json!({"Entrypoint": ["/usr/bin/cluster-version-operator"], "Labels": labels});
            let archs: &[&str] = if multi { &["amd64", "arm64"] } else { &["amd64"] };
            let pushed = push_image(reg, RELEASE_REPO, &tag, Format::Docker, archs, &layers, config);
            let reference = format!("{}/{RELEASE_REPO}@{}", reg.host, pushed.digest);
            let p = Payload { version: v.clone(), reference, digest: pushed.digest, tag, components, kubevirt };
            payloads.lock().unwrap().insert((v, flavour), p);
        });
        let payloads = payloads.into_inner().unwrap();

        let key = keygen.join().expect("gpg key generation");
        let list: Vec<&Payload> = payloads.values().collect();
        let signed = Mutex::new(BTreeMap::new());
        parallel(&list, |p| {
            let claim = json!({
                "critical": {
                    "image": {"docker-manifest-digest": p.digest},
                    "type": "atomic container signature",
                    "identity": {"docker-reference": format!("{}/{RELEASE_REPO}:{}", reg.host, p.tag)},
                },
                "optional": {"creator": "imageset-operator test world"},
            });
            let sig = key.sign(&serde_json::to_vec(&claim).unwrap());
            signed.lock().unwrap().insert(p.digest.trim_start_matches("sha256:").to_string(), sig);
        });

        let refs: BTreeMap<(String, String), (String, String)> =
            payloads.iter().map(|(k, p)| (k.clone(), (p.reference.clone(), p.digest.clone()))).collect();
        let amd64 = |v: &str| refs.get(&(v.to_string(), "amd64".to_string())).cloned();
        let real_stable_413 = serde_json::to_vec(&graph::rewrite_real(&real, amd64)).unwrap();
        let state = Arc::new(serve::State {
            graph_data,
            real_stable_413,
            payloads: refs,
            urls,
            signatures: signed.into_inner().unwrap(),
            tampered: Mutex::new(BTreeSet::new()),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
        });
        let addr = serve::listen(state.clone());
        let url = format!("http://{addr}");
        ReleaseWorld {
            graph_url: format!("{url}/api/upgrades_info/v1/graph"),
            graph_data_url: format!("{url}/api/upgrades_info/graph-data"),
            signature_url: format!("{url}/pub/openshift-v4/signatures/openshift/release"),
            url,
            public_key: key.public_key_path().to_path_buf(),
            payloads,
            base_image: format!("{}/ubi9/ubi:latest", reg.host),
            state,
            addr,
            key,
            _dir: dir,
        }
    }

    /// The command-line flags that point a run at this world's update graph, signature store,
    /// signing key, graph data and graph base image.
    pub fn release_flags(&self) -> Vec<String> {
        vec![
            format!("--update-url={}", self.graph_url),
            format!("--release-signature-url={}", self.signature_url),
            format!("--release-signature-key={}", self.public_key.display()),
            format!("--graph-data-url={}", self.graph_data_url),
            format!("--graph-base-image={}", self.base_image),
        ]
    }

    /// Every request answered so far, oldest first, as `GET /path?query`.
    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    /// From now on, serves the signature of `digest` (`sha256:<hex>` or `<hex>`) with bytes
    /// altered, so it no longer verifies.
    pub fn tamper_signature(&self, digest: &str) {
        let hex = digest.trim_start_matches("sha256:").to_string();
        assert!(self.state.signatures.contains_key(&hex), "no signature for {digest}");
        self.state.tampered.lock().unwrap().insert(hex);
    }

    /// Signs `payload_json` with the world's key, in the served (binary) form.
    pub fn sign(&self, payload_json: &[u8]) -> Vec<u8> {
        self.key.sign(payload_json)
    }
}

impl Drop for ReleaseWorld {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}
