//! The Cincinnati update graph and oc-mirror's release selection over it: heads, ranges,
//! `full`, shortest upgrade paths, and the path across channels. Pure: graphs come in as
//! bytes, already fetched.

use std::collections::{BTreeMap, VecDeque};

use semver::Version;
use serde::Deserialize;

use crate::api::mirror::ReleaseChannel;

/// The metadata key listing the channels a release is in.
pub const CHANNELS_KEY: &str = "io.openshift.upgrades.graph.release.channels";

/// A release in the graph.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    /// Its version.
    pub version: Version,
    /// The payload image, normally `quay.io/openshift-release-dev/ocp-release@sha256:...`.
    pub payload: String,
    /// The channels it is in (from its metadata).
    pub channels: Vec<String>,
}

/// An update graph, as served for one channel and architecture.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// The releases.
    pub nodes: Vec<Node>,
    /// Outgoing edges per node, highest version first (oc-mirror's order, so paths are
    /// deterministic).
    out: Vec<Vec<usize>>,
    /// How many edges the graph has.
    pub edge_count: usize,
}

/// Why a graph could not be read or a selection made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum GraphError {
    /// The response is not a Cincinnati graph.
    #[error("invalid update graph: {0}")]
    Invalid(String),
    /// A version is not in the channel.
    #[error("{field}: version {version} not found in the {channel:?} channel")]
    VersionNotFound {
        /// The field naming the version.
        field: String,
        /// The version.
        version: String,
        /// The channel.
        channel: String,
    },
    /// The channel has no releases (for this architecture).
    #[error("{field}: no cluster versions found for {arch:?} in the {channel:?} channel")]
    NoVersions {
        /// The channel's field.
        field: String,
        /// The channel.
        channel: String,
        /// The architecture queried.
        arch: String,
    },
    /// A version that does not parse.
    #[error("{field}: {value:?} is not a version")]
    BadVersion {
        /// The field.
        field: String,
        /// Its value.
        value: String,
    },
    /// minVersion above maxVersion.
    #[error("{field}: minVersion {min} is greater than maxVersion {max}")]
    Inverted {
        /// The channel's field.
        field: String,
        /// minVersion.
        min: String,
        /// maxVersion.
        max: String,
    },
}

#[derive(Deserialize)]
struct RawGraph {
    nodes: Vec<RawNode>,
    #[serde(default)]
    edges: Vec<(usize, usize)>,
}

#[derive(Deserialize)]
struct RawNode {
    version: String,
    payload: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

impl Graph {
    /// Parses a Cincinnati `application/json` graph response.
    pub fn parse(bytes: &[u8]) -> Result<Graph, GraphError> {
        let raw: RawGraph = serde_json::from_slice(bytes).map_err(|e| GraphError::Invalid(e.to_string()))?;
        let mut nodes = Vec::with_capacity(raw.nodes.len());
        for n in raw.nodes {
            let version = Version::parse(&n.version)
                .map_err(|e| GraphError::Invalid(format!("node version {:?}: {e}", n.version)))?;
            let channels = n
                .metadata
                .get(CHANNELS_KEY)
                .map(|c| c.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                .unwrap_or_default();
            nodes.push(Node { version, payload: n.payload, channels });
        }
        let mut out = vec![Vec::new(); nodes.len()];
        for &(from, to) in &raw.edges {
            if from >= nodes.len() || to >= nodes.len() {
                return Err(GraphError::Invalid(format!("edge [{from}, {to}] names a node that does not exist")));
            }
            out[from].push(to);
        }
        for o in &mut out {
            o.sort_by(|a, b| nodes[*b].version.cmp(&nodes[*a].version));
            o.dedup();
        }
        Ok(Graph { nodes, out, edge_count: raw.edges.len() })
    }

    /// The node of a version.
    pub fn find(&self, v: &Version) -> Option<usize> {
        self.nodes.iter().position(|n| &n.version == v)
    }

    /// Lowest and highest versions.
    pub fn bounds(&self) -> Option<(&Version, &Version)> {
        let min = self.nodes.iter().map(|n| &n.version).min()?;
        let max = self.nodes.iter().map(|n| &n.version).max()?;
        Some((min, max))
    }

    /// Versions, ascending.
    pub fn versions(&self) -> Vec<&Version> {
        let mut v: Vec<&Version> = self.nodes.iter().map(|n| &n.version).collect();
        v.sort();
        v
    }

    /// Every node with `min <= version <= max` (edges ignored), ascending.
    pub fn in_range(&self, min: &Version, max: &Version) -> Vec<usize> {
        let mut idx: Vec<usize> =
            (0..self.nodes.len()).filter(|&i| &self.nodes[i].version >= min && &self.nodes[i].version <= max).collect();
        idx.sort_by(|a, b| self.nodes[*a].version.cmp(&self.nodes[*b].version));
        idx
    }

    /// Breadth-first shortest upgrade path, both ends included; each node visited once.
    pub fn shortest_path(&self, from: usize, to: usize) -> Option<Vec<usize>> {
        let mut prev = vec![usize::MAX; self.nodes.len()];
        let mut seen = vec![false; self.nodes.len()];
        let mut queue = VecDeque::from([from]);
        seen[from] = true;
        while let Some(n) = queue.pop_front() {
            if n == to {
                break;
            }
            for &next in &self.out[n] {
                if !seen[next] {
                    seen[next] = true;
                    prev[next] = n;
                    queue.push_back(next);
                }
            }
        }
        if !seen[to] {
            return None;
        }
        let mut path = vec![to];
        while let Some(&last) = path.last() {
            if last == from {
                break;
            }
            path.push(prev[last]);
        }
        path.reverse();
        Some(path)
    }

    /// Outgoing edges of a node (highest version first).
    pub fn edges_from(&self, n: usize) -> &[usize] {
        &self.out[n]
    }
}

/// A version as the configuration writes it: optional `v`, optional minor and patch.
pub fn parse_version(s: &str, field: &str) -> Result<Version, GraphError> {
    let bad = || GraphError::BadVersion { field: field.to_string(), value: s.to_string() };
    let t = s.trim().trim_start_matches('v');
    if let Ok(v) = Version::parse(t) {
        return Ok(v);
    }
    let (core, rest) = t.find(['-', '+']).map_or((t, ""), |i| t.split_at(i));
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 {
        return Err(bad());
    }
    let mut full = parts.join(".");
    for _ in parts.len()..3 {
        full.push_str(".0");
    }
    Version::parse(&format!("{full}{rest}")).map_err(|_| bad())
}

/// The versions a channel entry asks for (oc-mirror's `getChannelDownloads`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// Lowest version.
    pub min: Version,
    /// Highest version.
    pub max: Version,
    /// Take the shortest upgrade path instead of every version in range.
    pub shortest_path: bool,
}

/// Effective min/max of a channel entry over its graph: heads only by default; `full` from the
/// lowest version; only min → up to the head; only max → from the lowest version.
pub fn wanted(graph: &Graph, ch: &ReleaseChannel, arch: &str, field: &str) -> Result<Wanted, GraphError> {
    let (lowest, head) = graph.bounds().ok_or_else(|| GraphError::NoVersions {
        field: field.to_string(),
        channel: ch.name.clone(),
        arch: arch.to_string(),
    })?;
    let min = ch.min_version.as_deref().map(|v| parse_version(v, &format!("{field}.minVersion"))).transpose()?;
    let max = ch.max_version.as_deref().map(|v| parse_version(v, &format!("{field}.maxVersion"))).transpose()?;
    let (min, max) = match (min, max) {
        (None, None) if ch.full => (lowest.clone(), head.clone()),
        (None, None) => (head.clone(), head.clone()),
        (Some(min), None) => (min, head.clone()),
        (None, Some(max)) => (lowest.clone(), max),
        (Some(min), Some(max)) => (min, max),
    };
    if min > max {
        return Err(GraphError::Inverted { field: field.to_string(), min: min.to_string(), max: max.to_string() });
    }
    Ok(Wanted { min, max, shortest_path: ch.shortest_path })
}

/// The releases a channel entry selects, ascending by version, with what the user should
/// hear about them (a shortest path that does not exist: only its two ends are taken).
pub fn select(
    graph: &Graph,
    ch: &ReleaseChannel,
    arch: &str,
    field: &str,
) -> Result<(Vec<Node>, Vec<String>), GraphError> {
    let w = wanted(graph, ch, arch, field)?;
    let mut warnings = Vec::new();
    let idx = if w.shortest_path {
        path(graph, &ch.name, &w.min, &w.max, field, &mut warnings)?
    } else {
        graph.in_range(&w.min, &w.max)
    };
    Ok((idx.into_iter().map(|i| graph.nodes[i].clone()).collect(), warnings))
}

/// The shortest path between two versions of one channel, both of which must be in it. With
/// no upgrade path between them, oc-mirror takes the two versions alone and goes on: so do we,
/// with a warning naming both.
fn path(
    graph: &Graph,
    channel: &str,
    min: &Version,
    max: &Version,
    field: &str,
    warnings: &mut Vec<String>,
) -> Result<Vec<usize>, GraphError> {
    let find = |v: &Version, which: &str| {
        graph.find(v).ok_or_else(|| GraphError::VersionNotFound {
            field: format!("{field}.{which}"),
            version: v.to_string(),
            channel: channel.to_string(),
        })
    };
    let (from, to) = (find(min, "minVersion")?, find(max, "maxVersion")?);
    if let Some(p) = graph.shortest_path(from, to) {
        return Ok(p);
    }
    warnings.push(format!(
        "{field}: no upgrade path from {min} to {max} in the {channel:?} channel; mirroring only {min} and {max}"
    ));
    Ok(if from == to { vec![from] } else { vec![from, to] })
}

/// Whether a channel range spans two or more minors of an EUS channel (oc-mirror warns).
pub fn eus_warning(ch: &ReleaseChannel, w: &Wanted) -> Option<String> {
    (ch.name.contains("eus") && w.max.minor.saturating_sub(w.min.minor) >= 2).then(|| {
        format!(
            "channel {} ({}..{}): Extended Update Support (EUS) channel detected with minor version range >= 2. Please refer to the web console https://access.redhat.com/labs/ocpupgradegraph/update_path To correctly determine the upgrade path for EUS releases",
            ch.name, w.min, w.max
        )
    })
}

/// `(prefix, major, minor)` of a channel name such as `stable-4.13`.
pub fn channel_minor(name: &str) -> Option<(&str, u64, u64)> {
    let (prefix, ver) = name.rsplit_once('-')?;
    let (major, minor) = ver.split_once('.')?;
    Some((prefix, major.parse().ok()?, minor.parse().ok()?))
}

/// The upgrade walk across channels, from the lowest wanted version (in its channel) to the
/// highest (in its channel), through `<prefix>-<major>.<minor+1>` channels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrossChannel {
    /// Where the walk starts.
    pub source: String,
    /// Its version.
    pub start: Version,
    /// Where it ends.
    pub target: String,
    /// Its version.
    pub end: Version,
}

impl CrossChannel {
    /// Channels the walk visits after the source, in order (the last is the target).
    pub fn channels(&self) -> Vec<String> {
        let (Some((prefix, smaj, smin)), Some((_, tmaj, tmin))) =
            (channel_minor(&self.source), channel_minor(&self.target))
        else {
            return vec![self.target.clone()];
        };
        if (smaj, smin) == (tmaj, tmin) || smaj != tmaj || smin > tmin {
            return vec![self.target.clone()];
        }
        let mut out: Vec<String> = (smin + 1..tmin).map(|m| format!("{prefix}-{smaj}.{m}")).collect();
        out.push(self.target.clone());
        out
    }
}

/// The releases of the cross-channel walk, and warnings for blocked steps. `graphs` maps
/// channel name to its graph and must hold the source and every channel of
/// [`CrossChannel::channels`].
pub fn cross_channel(
    walk: &CrossChannel,
    graphs: &BTreeMap<String, Graph>,
    field: &str,
) -> Result<(Vec<Node>, Vec<String>), GraphError> {
    let get = |c: &str| {
        graphs.get(c).ok_or_else(|| GraphError::NoVersions {
            field: field.to_string(),
            channel: c.to_string(),
            arch: String::new(),
        })
    };
    let mut found: Vec<Node> = Vec::new();
    let mut warnings = Vec::new();
    let mut take = |g: &Graph, idx: Vec<usize>| found.extend(idx.into_iter().map(|i| g.nodes[i].clone()));
    let source = get(&walk.source)?;
    let steps = walk.channels();
    let mut start = walk.start.clone();
    let same_minor = steps.len() == 1
        && channel_minor(&walk.source).map(|c| (c.1, c.2)) == channel_minor(&walk.target).map(|c| (c.1, c.2));
    if walk.source != walk.target && !same_minor {
        let head = source.bounds().map(|b| b.1.clone()).unwrap_or_else(|| start.clone());
        take(source, path(source, &walk.source, &start, &head, field, &mut warnings)?);
        start = head;
    }
    for (i, ch) in steps.iter().enumerate() {
        let g = get(ch)?;
        let last = i + 1 == steps.len();
        let goal = if last { walk.end.clone() } else { g.bounds().map(|b| b.1.clone()).unwrap_or(walk.end.clone()) };
        if g.find(&start).is_none() {
            warnings.push(format!("No upgrade path for {start} in target channel {}", walk.target));
            let target = get(&walk.target)?;
            take(target, path(target, &walk.target, &walk.end, &walk.end, field, &mut warnings)?);
            break;
        }
        take(g, path(g, ch, &start, &goal, field, &mut warnings)?);
        start = goal;
    }
    found.sort_by(|a, b| a.version.cmp(&b.version));
    found.dedup_by(|a, b| a.payload == b.payload);
    Ok((found, warnings))
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
