//! Selection over the real stable-4.13 graph (98 releases, 1171 edges). Expected sets are
//! derived here from the raw JSON with independent code (integer triples, relaxation
//! distances), never from the code under test.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::*;

fn raw() -> (Vec<u8>, Value) {
    let p = crate::release::test_data("cincinnati/graph-api-responses/amd64-stable-4.13.json");
    let bytes = std::fs::read(&p).unwrap();
    let v = serde_json::from_slice(&bytes).unwrap();
    (bytes, v)
}

fn triple(s: &str) -> (u64, u64, u64) {
    let p: Vec<u64> = s.split('.').map(|x| x.parse().unwrap()).collect();
    (p[0], p[1], p[2])
}

/// The raw versions as triples (all are plain x.y.z in this graph).
fn versions(v: &Value) -> Vec<(u64, u64, u64)> {
    v["nodes"].as_array().unwrap().iter().map(|n| triple(n["version"].as_str().unwrap())).collect()
}

fn chan(name: &str, min: Option<&str>, max: Option<&str>, full: bool, shortest: bool) -> ReleaseChannel {
    ReleaseChannel {
        name: name.into(),
        min_version: min.map(Into::into),
        max_version: max.map(Into::into),
        full,
        shortest_path: shortest,
        ..Default::default()
    }
}

fn picked(nodes: &[Node]) -> BTreeSet<(u64, u64, u64)> {
    nodes.iter().map(|n| (n.version.major, n.version.minor, n.version.patch)).collect()
}

/// Hop distances from `from` over the raw edges, by repeated relaxation (Bellman-Ford style).
fn distances(v: &Value, from: usize) -> Vec<Option<usize>> {
    let n = v["nodes"].as_array().unwrap().len();
    let edges: Vec<(usize, usize)> = serde_json::from_value(v["edges"].clone()).unwrap();
    let mut d = vec![None; n];
    d[from] = Some(0);
    for _ in 0..n {
        for &(a, b) in &edges {
            if let Some(da) = d[a]
                && d[b].is_none_or(|db| da + 1 < db)
            {
                d[b] = Some(da + 1);
            }
        }
    }
    d
}

fn index_of(v: &Value, version: &str) -> usize {
    v["nodes"].as_array().unwrap().iter().position(|n| n["version"] == version).unwrap()
}

#[test]
fn parses_the_real_graph() {
    let (bytes, v) = raw();
    let g = Graph::parse(&bytes).unwrap();
    assert_eq!(g.nodes.len(), v["nodes"].as_array().unwrap().len());
    assert_eq!(g.edge_count, v["edges"].as_array().unwrap().len());
    assert!(g.nodes.iter().all(|n| n.channels.iter().any(|c| c == "stable-4.13")));
    assert!(g.nodes.iter().all(|n| n.payload.starts_with("quay.io/openshift-release-dev/ocp-release@sha256:")));
}

#[test]
fn heads_full_and_ranges_match_the_raw_versions() {
    let (bytes, v) = raw();
    let g = Graph::parse(&bytes).unwrap();
    let all = versions(&v);
    let head = *all.iter().max().unwrap();
    let sel = |c: ReleaseChannel| picked(&select(&g, &c, "amd64", "channels[0]").unwrap().0);
    assert_eq!(sel(chan("stable-4.13", None, None, false, false)), BTreeSet::from([head]));
    assert_eq!(sel(chan("stable-4.13", None, None, true, false)), all.iter().copied().collect());
    let from = |lo: (u64, u64, u64)| all.iter().copied().filter(|t| *t >= lo).collect::<BTreeSet<_>>();
    assert_eq!(sel(chan("stable-4.13", Some("4.13.10"), None, false, false)), from((4, 13, 10)));
    let upto: BTreeSet<_> = all.iter().copied().filter(|t| *t <= (4, 12, 30)).collect();
    assert_eq!(sel(chan("stable-4.13", None, Some("4.12.30"), false, false)), upto);
    let between: BTreeSet<_> = all.iter().copied().filter(|t| *t >= (4, 12, 40) && *t <= (4, 13, 5)).collect();
    assert!(between.len() > 5);
    assert_eq!(sel(chan("stable-4.13", Some("4.12.40"), Some("4.13.5"), false, false)), between);
    // Loose versions as the schema allows them.
    assert_eq!(sel(chan("stable-4.13", Some("v4.13"), Some("4.13.0"), false, false)), BTreeSet::from([(4, 13, 0)]));
}

#[test]
fn shortest_path_is_a_real_path_of_minimal_length() {
    let (bytes, v) = raw();
    let g = Graph::parse(&bytes).unwrap();
    let edges: BTreeSet<(String, String)> = {
        let nodes = v["nodes"].as_array().unwrap();
        let e: Vec<(usize, usize)> = serde_json::from_value(v["edges"].clone()).unwrap();
        e.iter()
            .map(|(a, b)| {
                (nodes[*a]["version"].as_str().unwrap().into(), nodes[*b]["version"].as_str().unwrap().into())
            })
            .collect()
    };
    for (min, max) in [("4.12.30", "4.13.42"), ("4.12.0", "4.13.43"), ("4.13.0", "4.13.15"), ("4.12.10", "4.12.10")] {
        let (got, warnings) =
            select(&g, &chan("stable-4.13", Some(min), Some(max), false, true), "amd64", "c").unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        let names: Vec<String> = got.iter().map(|n| n.version.to_string()).collect();
        assert_eq!(names.first().map(String::as_str), Some(min));
        assert_eq!(names.last().map(String::as_str), Some(max));
        for w in names.windows(2) {
            assert!(edges.contains(&(w[0].clone(), w[1].clone())), "{} -> {} is not an edge", w[0], w[1]);
        }
        let d = distances(&v, index_of(&v, min))[index_of(&v, max)].expect("reachable");
        assert_eq!(names.len(), d + 1, "{min} -> {max}: {names:?}");
    }
    // The real graph has no edge chain from 4.12.30 to 4.13.21 (relaxation agrees).
    assert_eq!(distances(&v, index_of(&v, "4.12.30"))[index_of(&v, "4.13.21")], None);
    // As oc-mirror does, the two ends are taken alone, and the user is told.
    let (got, warnings) =
        select(&g, &chan("stable-4.13", Some("4.12.30"), Some("4.13.21"), false, true), "amd64", "c").unwrap();
    let names: Vec<String> = got.iter().map(|n| n.version.to_string()).collect();
    assert_eq!(names, ["4.12.30", "4.13.21"]);
    assert_eq!(
        warnings,
        [
            "c: no upgrade path from 4.12.30 to 4.13.21 in the \"stable-4.13\" channel; mirroring only 4.12.30 and 4.13.21"
        ]
    );
}

#[test]
fn errors_name_the_field() {
    let (bytes, _) = raw();
    let g = Graph::parse(&bytes).unwrap();
    let e = select(&g, &chan("stable-4.13", Some("4.13.99"), Some("4.13.100"), false, true), "amd64", "channels[1]")
        .unwrap_err();
    assert_eq!(e.to_string(), "channels[1].minVersion: version 4.13.99 not found in the \"stable-4.13\" channel");
    let e = select(&g, &chan("stable-4.13", Some("4.13.9"), Some("4.13.2"), false, false), "amd64", "c").unwrap_err();
    assert!(matches!(e, GraphError::Inverted { .. }), "{e}");
    let e = select(&g, &chan("stable-4.13", Some("4.x"), None, false, false), "amd64", "c").unwrap_err();
    assert_eq!(e.to_string(), "c.minVersion: \"4.x\" is not a version");
    let empty = Graph::parse(br#"{"nodes":[],"edges":[]}"#).unwrap();
    let e = select(&empty, &chan("stable-9.9", None, None, false, false), "arm64", "c").unwrap_err();
    assert_eq!(e.to_string(), "c: no cluster versions found for \"arm64\" in the \"stable-9.9\" channel");
    assert!(Graph::parse(br#"{"nodes":[{"version":"1.0.0","payload":"x"}],"edges":[[0,3]]}"#).is_err());
}

/// The stable-4.12 channel as its own graph: the real nodes listed in stable-4.12 and the real
/// edges between them.
fn sub_channel(v: &Value, channel: &str, drop: &[&str]) -> (Graph, Vec<String>) {
    let nodes = v["nodes"].as_array().unwrap();
    let keep: Vec<usize> = (0..nodes.len())
        .filter(|&i| {
            let chans = nodes[i]["metadata"][CHANNELS_KEY].as_str().unwrap_or("");
            chans.split(',').any(|c| c == channel) && !drop.contains(&nodes[i]["version"].as_str().unwrap())
        })
        .collect();
    let renum: BTreeMap<usize, usize> = keep.iter().enumerate().map(|(n, o)| (*o, n)).collect();
    let edges: Vec<(usize, usize)> = serde_json::from_value(v["edges"].clone()).unwrap();
    let sub = serde_json::json!({
        "nodes": keep.iter().map(|i| nodes[*i].clone()).collect::<Vec<_>>(),
        "edges": edges.iter().filter_map(|(a, b)| Some([*renum.get(a)?, *renum.get(b)?])).collect::<Vec<_>>(),
    });
    let names = keep.iter().map(|i| nodes[*i]["version"].as_str().unwrap().to_string()).collect();
    (Graph::parse(&serde_json::to_vec(&sub).unwrap()).unwrap(), names)
}

#[test]
fn cross_channel_walks_through_the_source_head() {
    let (bytes, v) = raw();
    let (g412, names412) = sub_channel(&v, "stable-4.12", &[]);
    let head412 = names412.iter().map(|s| triple(s)).max().unwrap();
    let head412s = format!("{}.{}.{}", head412.0, head412.1, head412.2);
    let mut graphs =
        BTreeMap::from([("stable-4.12".to_string(), g412), ("stable-4.13".to_string(), Graph::parse(&bytes).unwrap())]);
    let walk = CrossChannel {
        source: "stable-4.12".into(),
        start: Version::parse("4.12.10").unwrap(),
        target: "stable-4.13".into(),
        end: Version::parse("4.13.43").unwrap(),
    };
    assert_eq!(walk.channels(), vec!["stable-4.13".to_string()]);
    let (nodes, warnings) = cross_channel(&walk, &graphs, "platform.channels").unwrap();
    assert!(warnings.is_empty());
    let got = picked(&nodes);
    // Independent expectation: both segments' lengths are the relaxation distances.
    let d1 = distances(&v, index_of(&v, "4.12.10"))[index_of(&v, &head412s)].unwrap();
    let d2 = distances(&v, index_of(&v, &head412s))[index_of(&v, "4.13.43")].unwrap();
    assert_eq!(got.len(), d1 + d2 + 1, "{got:?}");
    for t in [(4, 12, 10), head412, (4, 13, 43)] {
        assert!(got.contains(&t), "{t:?} missing from {got:?}");
    }
    // The source head missing from the target channel: warn, then only the requested end.
    let (g413, _) = sub_channel(&v, "stable-4.13", &[&head412s]);
    graphs.insert("stable-4.13".into(), g413);
    let (nodes, warnings) = cross_channel(&walk, &graphs, "platform.channels").unwrap();
    assert_eq!(warnings, vec![format!("No upgrade path for {head412s} in target channel stable-4.13")]);
    assert!(picked(&nodes).contains(&(4, 13, 43)));
    let far = CrossChannel { source: "fast-4.12".into(), target: "stable-4.15".into(), ..walk };
    assert_eq!(far.channels(), vec!["fast-4.13", "fast-4.14", "stable-4.15"]);
}

#[test]
fn synthetic_graph_of_oc_mirror_parses() {
    let p = crate::release::test_data("cincinnati/oc-mirror-synthetic/graph_data.json");
    let g = Graph::parse(&std::fs::read(p).unwrap()).unwrap();
    let heads = select(&g, &chan("stable-4.20", None, None, false, false), "amd64", "c").unwrap().0;
    assert_eq!(heads.iter().map(|n| n.version.to_string()).collect::<Vec<_>>(), vec!["4.20.2"]);
    assert_eq!(g.nodes[0].channels, vec!["stable-4.20", "eus-4.20"]);
}

/// oc-mirror's EUS warning, in the words its users' checks grep for; only for an EUS channel
/// whose range spans two minors or more.
#[test]
fn eus_ranges_over_two_minors_warn_in_oc_mirrors_words() {
    let v = |s: &str| Version::parse(s).unwrap();
    let w = |min: &str, max: &str| Wanted { min: v(min), max: v(max), shortest_path: false };
    let eus = chan("eus-4.16", Some("4.14.10"), Some("4.16.3"), false, false);
    let msg = eus_warning(&eus, &w("4.14.10", "4.16.3")).expect("a warning");
    assert!(msg.contains("To correctly determine the upgrade path for EUS releases"), "{msg}");
    assert!(msg.contains("Extended Update Support (EUS) channel detected with minor version range >= 2"), "{msg}");
    assert!(msg.starts_with("channel eus-4.16 (4.14.10..4.16.3): "), "{msg}");
    assert_eq!(eus_warning(&eus, &w("4.15.1", "4.16.3")), None);
    let stable = chan("stable-4.16", Some("4.14.10"), Some("4.16.3"), false, false);
    assert_eq!(eus_warning(&stable, &w("4.14.10", "4.16.3")), None);
}
