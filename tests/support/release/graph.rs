//! Cincinnati update graphs for the release world, from real data: the saved
//! api.openshift.com answer for stable-4.13/amd64, and graphs built from the real
//! cincinnati-graph-data tarball for every other channel and architecture.
//!
//! The edge rule (the world's stand-in for Cincinnati's graph builder, which reads each
//! payload's release-metadata `previous` list): among the versions a channel file lists,
//! `u -> v` when `u < v` (semver) and both have the same major and either the same minor or
//! `v.minor == u.minor + 1`. Then every blocked-edges file whose `to` is `v` and whose `from`
//! regex matches the whole of `u` (or of `u+<arch>`, the form Cincinnati matches against
//! and some files spell out with `[+]`) takes the edge out: into `conditionalEdges` with the
//! file's risk (`url`, `name`, `message`, `matchingRules`) when it declares one, else it is
//! dropped. An edge blocked by several risks carries all of them; an edge blocked by any file
//! without a risk is dropped. Conditional edges are grouped by their set of risks, as the real
//! service answers. Nodes are the channel's versions in semver order, named in the channels
//! metadata of every channel file that lists them; a version with a synthesized payload for
//! the requested arch points at it, any other at
//! `quay.io/openshift-release-dev/ocp-release@sha256(<arch>/<version>)`, the same in every
//! channel as a real release's digest is.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::OnceLock;

use semver::Version;
use serde_json::{Value, json};

/// One blocked-edges file.
struct Blocked {
    to: String,
    from: String,
    regex: OnceLock<regex::Regex>,
    /// `{url, name, message, matchingRules}` when the file declares a risk.
    risk: Option<Value>,
}

impl Blocked {
    fn blocks(&self, from: &str, arch: &str) -> bool {
        let re = self.regex.get_or_init(|| {
            let src = self.from.split(" #").next().unwrap_or_default().trim();
            regex::Regex::new(&format!("^(?:{src})$"))
                .unwrap_or_else(|e| panic!("blocked edge to {}: from {src:?}: {e}", self.to))
        });
        re.is_match(from) || re.is_match(&format!("{from}+{arch}"))
    }
}

/// The parsed graph-data tarball.
pub(super) struct GraphData {
    /// The tarball as the graph-data endpoint serves it: rooted at `./` (the repository's
    /// top directory stripped), like the real download.
    pub tarball: Vec<u8>,
    /// Channel name -> its versions, as listed.
    pub channels: BTreeMap<String, Vec<String>>,
    /// Version -> every channel listing it, in the order the real service names them.
    memberships: HashMap<String, Vec<String>>,
    /// Blocked edges by their `to` version.
    blocked: HashMap<String, Vec<Blocked>>,
}

/// Whether the edge rule lets `u` update to `v` (see the module docs).
pub(super) fn may_update(u: &Version, v: &Version) -> bool {
    u < v && u.major == v.major && (u.minor == v.minor || u.minor + 1 == v.minor)
}

fn parse_version(v: &str) -> Version {
    Version::parse(v).unwrap_or_else(|e| panic!("graph-data version {v:?}: {e}"))
}

/// `stable-4.13` sorts by `4.13` then name, as the real channel metadata lists them.
fn channel_key(name: &str) -> (Vec<u64>, String) {
    let suffix = name.rsplit('-').next().unwrap_or_default();
    (suffix.split('.').map(|p| p.parse().unwrap_or(u64::MAX)).collect(), name.to_string())
}

/// The tar with its first path component (`cincinnati-graph-data/`) replaced by `./`, gzipped.
fn rerooted(tar: &[u8]) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    for entry in tar::Archive::new(tar).entries().expect("graph data tar") {
        let mut entry = entry.expect("graph data entry");
        let path = entry.path().expect("entry path").to_string_lossy().into_owned();
        let rest = path.split_once('/').map_or("", |(_, r)| r);
        let mut h = entry.header().clone();
        out.append_data(&mut h, format!("./{rest}"), &mut entry).expect("tar into memory");
    }
    let raw = out.into_inner().expect("tar into memory");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &raw).expect("gzip");
    gz.finish().expect("gzip")
}

impl GraphData {
    /// Reads `cincinnati-graph-data-*.tar.gz`: `channels/*.yaml` and `blocked-edges/*.yaml`.
    pub fn load(tarball: Vec<u8>) -> GraphData {
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(&tarball[..]).read_to_end(&mut tar).expect("gunzip graph data");
        let mut channels = BTreeMap::new();
        let mut blocked: HashMap<String, Vec<Blocked>> = HashMap::new();
        for entry in tar::Archive::new(&tar[..]).entries().expect("graph data tar") {
            let mut entry = entry.expect("graph data entry");
            let path = entry.path().expect("entry path").to_string_lossy().into_owned();
            let mut parts = path.rsplit('/');
            let (file, dir) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            if !file.ends_with(".yaml") || !matches!(dir, "channels" | "blocked-edges") {
                continue;
            }
            let mut text = String::new();
            entry.read_to_string(&mut text).expect("graph data file is UTF-8");
            let doc: Value = serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
            if dir == "channels" {
                let name = doc["name"].as_str().unwrap_or_else(|| panic!("{path}: no name")).to_string();
                let versions: Vec<String> =
                    serde_json::from_value(doc["versions"].clone()).unwrap_or_else(|e| panic!("{path}: versions: {e}"));
                channels.insert(name, versions);
            } else {
                let text = |k: &str| doc[k].as_str().map(str::to_string);
                let to = text("to").unwrap_or_else(|| panic!("{path}: no to"));
                let from = text("from").unwrap_or_else(|| panic!("{path}: no from"));
                let risk = doc.get("matchingRules").map(|rules| {
                    json!({"url": doc["url"], "name": doc["name"], "message": doc["message"], "matchingRules": rules})
                });
                blocked.entry(to.clone()).or_default().push(Blocked { to, from, regex: OnceLock::new(), risk });
            }
        }
        assert!(!channels.is_empty(), "no channels in the graph data");
        let mut memberships: HashMap<String, Vec<String>> = HashMap::new();
        for (name, versions) in &channels {
            for v in versions {
                memberships.entry(v.clone()).or_default().push(name.clone());
            }
        }
        for names in memberships.values_mut() {
            names.sort_by_key(|n| channel_key(n));
        }
        GraphData { tarball: rerooted(&tar), channels, memberships, blocked }
    }

    /// Every version of any channel that the edge rule lets update to `v` (a release's
    /// `previous`), oldest first.
    pub fn previous(&self, v: &str) -> Vec<String> {
        let target = parse_version(v);
        let mut out: Vec<Version> =
            self.memberships.keys().map(|u| parse_version(u)).filter(|u| may_update(u, &target)).collect();
        out.sort();
        out.iter().map(Version::to_string).collect()
    }

    /// The graph of `channel` for `arch`, or `None` for a channel the data does not have.
    /// `payload(version)` gives the `(reference, digest)` of a synthesized payload; other
    /// versions get a stable stand-in digest on quay.io. `urls` are errata links by version.
    pub fn graph(
        &self,
        channel: &str,
        arch: &str,
        payload: impl Fn(&str) -> Option<(String, String)>,
        urls: &BTreeMap<String, String>,
    ) -> Option<Value> {
        let listed = self.channels.get(channel)?;
        let mut versions: Vec<(Version, &String)> = listed.iter().map(|v| (parse_version(v), v)).collect();
        versions.sort();
        versions.dedup_by(|a, b| a.1 == b.1);
        let nodes: Vec<Value> = versions
            .iter()
            .map(|(_, v)| {
                let (reference, digest) = payload(v).unwrap_or_else(|| {
                    let digest = super::super::sha256(format!("{arch}/{v}").as_bytes());
                    (format!("quay.io/openshift-release-dev/ocp-release@{digest}"), digest)
                });
                let mut metadata = json!({
                    "io.openshift.upgrades.graph.release.channels": self.memberships[*v].join(","),
                    "io.openshift.upgrades.graph.release.manifestref": digest,
                });
                if let Some(url) = urls.get(*v) {
                    metadata["url"] = json!(url);
                }
                json!({"version": v, "payload": reference, "metadata": metadata})
            })
            .collect();
        let mut edges = Vec::new();
        let mut conditional: BTreeMap<Vec<String>, (Vec<Value>, Vec<Value>)> = BTreeMap::new();
        for (j, (to, to_name)) in versions.iter().enumerate() {
            let blockers = self.blocked.get(*to_name).map(Vec::as_slice).unwrap_or_default();
            for (i, (from, from_name)) in versions.iter().enumerate() {
                if !may_update(from, to) {
                    continue;
                }
                let hits: Vec<&Blocked> = blockers.iter().filter(|b| b.blocks(from_name, arch)).collect();
                if hits.is_empty() {
                    edges.push(json!([i, j]));
                    continue;
                }
                if hits.iter().any(|b| b.risk.is_none()) {
                    continue;
                }
                let mut risks: Vec<&Value> = hits.iter().filter_map(|b| b.risk.as_ref()).collect();
                risks.sort_by_key(|r| r["name"].as_str().unwrap_or_default().to_string());
                risks.dedup_by_key(|r| r["name"].clone());
                let names: Vec<String> = risks.iter().map(|r| r["name"].as_str().unwrap_or_default().into()).collect();
                let group = conditional.entry(names).or_insert_with(|| (risks.into_iter().cloned().collect(), vec![]));
                group.1.push(json!({"from": from_name, "to": to_name}));
            }
        }
        let conditional: Vec<Value> =
            conditional.into_values().map(|(risks, edges)| json!({"edges": edges, "risks": risks})).collect();
        Some(json!({"version": 1, "nodes": nodes, "edges": edges, "conditionalEdges": conditional}))
    }
}

/// The saved real response with each synthesized version's `payload` and `manifestref`
/// pointing at its synthetic payload; other nodes stay as they were.
pub(super) fn rewrite_real(real: &Value, payload: impl Fn(&str) -> Option<(String, String)>) -> Value {
    let mut out = real.clone();
    for node in out["nodes"].as_array_mut().expect("real graph nodes") {
        let version = node["version"].as_str().expect("node version").to_string();
        if let Some((reference, digest)) = payload(&version) {
            node["payload"] = json!(reference);
            node["metadata"]["io.openshift.upgrades.graph.release.manifestref"] = json!(digest);
        }
    }
    out
}

/// Errata links of the real response, by version.
pub(super) fn errata_urls(real: &Value) -> BTreeMap<String, String> {
    let nodes = real["nodes"].as_array().into_iter().flatten();
    nodes
        .filter_map(|n| Some((n["version"].as_str()?.to_string(), n["metadata"]["url"].as_str()?.to_string())))
        .collect()
}
