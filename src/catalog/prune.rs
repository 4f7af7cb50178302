//! A selection without some of its bundles (bundles that could not be mirrored), every channel
//! still loadable by opm: a channel that loses an entry keeps its remaining head with the
//! highest version and what is reachable from it; bundles in no channel, empty channels and
//! packages without channels go; a default channel that went is replaced by the channel whose
//! head has the highest version.

use std::collections::{BTreeSet, HashMap, HashSet};

use semver::Version;

use super::version::{parse_loose, parse_strict};
use super::{Catalog, Entry, Selection, channel};

/// `sel` without the bundles `gone` names (package, bundle); what else had to go, and any
/// default channel that changed, is told in the returned selection's warnings (only those of
/// this step).
pub fn without(cat: &Catalog, sel: &Selection, gone: &BTreeSet<(String, String)>) -> Selection {
    let mut out = sel.clone();
    out.warnings = Vec::new();
    let versions: HashMap<(&str, &str), Version> = cat
        .bundles
        .iter()
        .filter_map(|b| {
            let v = b.version.as_deref()?;
            Some(((b.package.as_str(), b.name.as_str()), parse_strict(v).or_else(|_| parse_loose(v)).ok()?))
        })
        .collect();
    let touched: BTreeSet<&str> = gone.iter().map(|(p, _)| p.as_str()).collect();
    for pkg in touched {
        let Some(ps) = out.packages.get_mut(pkg) else { continue };
        let is_gone = |n: &str| gone.contains(&(pkg.to_string(), n.to_string()));
        let version = |n: &str| versions.get(&(pkg, n)).cloned();
        let mut heads: Vec<(String, Option<Version>)> = Vec::new();
        for (name, kept) in ps.channels.iter_mut() {
            let Some(full) = cat.channels.iter().find(|c| c.package == pkg && c.name == *name) else { continue };
            let entries: Vec<&Entry> = full.entries.iter().filter(|e| kept.contains(&e.name)).collect();
            let left: Vec<&Entry> = entries.iter().filter(|e| !is_gone(&e.name)).copied().collect();
            if left.len() < entries.len() {
                let pruned = channel::prune(&left, &version);
                let still: HashSet<&str> = pruned.iter().map(|e| e.name.as_str()).collect();
                let lost: Vec<&str> = left.iter().map(|e| e.name.as_str()).filter(|n| !still.contains(n)).collect();
                if !lost.is_empty() {
                    out.warnings.push(format!(
                        "package {pkg:?} channel {name:?}: {} left out too, no longer reachable from the channel head",
                        lost.join(", ")
                    ));
                }
                *kept = pruned.iter().map(|e| e.name.clone()).collect();
            }
            if let Some(h) =
                channel::head(&entries.iter().filter(|e| kept.contains(&e.name)).copied().collect::<Vec<_>>())
            {
                heads.push((name.clone(), version(&h.name)));
            }
        }
        let emptied: Vec<String> = ps.channels.iter().filter(|(_, k)| k.is_empty()).map(|(n, _)| n.clone()).collect();
        for name in &emptied {
            out.warnings.push(format!("package {pkg:?} channel {name:?}: no bundle left, channel left out"));
            ps.channels.remove(name);
        }
        let in_channels: HashSet<&String> = ps.channels.values().flatten().collect();
        ps.bundles.retain(|b| in_channels.contains(b));
        if ps.channels.is_empty() {
            out.warnings.push(format!("package {pkg:?}: no bundle left, package left out"));
        } else if let Some(d) = ps.default_channel.clone().filter(|d| !ps.channels.contains_key(d)) {
            // The remaining channel whose head is newest (then by name, for a stable choice).
            let pick = heads
                .iter()
                .filter(|(n, _)| ps.channels.contains_key(n))
                .max_by(|a, b| {
                    let by_version = match (&a.1, &b.1) {
                        (Some(x), Some(y)) => x.cmp_precedence(y),
                        (x, y) => x.is_some().cmp(&y.is_some()),
                    };
                    by_version.then_with(|| b.0.cmp(&a.0))
                })
                .map(|(n, _)| n.clone());
            out.warnings.push(format!(
                "package {pkg:?}: default channel {d:?} has no bundle left; {} is the default channel now",
                pick.as_deref().map(|p| format!("{p:?}")).unwrap_or_default()
            ));
            ps.default_channel = pick;
        }
    }
    out.packages.retain(|_, ps| !ps.channels.is_empty());
    out.dependencies.retain(|(p, b)| out.packages.get(p).is_some_and(|ps| ps.bundles.contains(b)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A channel entry: bundle, replaces, skips.
    type E<'a> = (&'a str, Option<&'a str>, &'a [&'a str]);

    /// A catalog of one package `p`: channels (name, entries), bundle `p.vX` having version
    /// `X.0.0`; `default` is the default channel.
    fn catalog(default: &str, channels: &[(&str, &[E])]) -> Catalog {
        let mut y = format!("schema: olm.package\nname: p\ndefaultChannel: {default}\n");
        let mut bundles = BTreeSet::new();
        for (c, entries) in channels {
            y.push_str(&format!("---\nschema: olm.channel\npackage: p\nname: {c}\nentries:\n"));
            for (n, r, s) in entries.iter() {
                y.push_str(&format!("- name: {n}\n"));
                if let Some(r) = r {
                    y.push_str(&format!("  replaces: {r}\n"));
                }
                if !s.is_empty() {
                    y.push_str(&format!("  skips: [{}]\n", s.join(", ")));
                }
                bundles.insert(*n);
            }
        }
        for b in bundles {
            let v = b.trim_start_matches("p.v");
            y.push_str(&format!(
                "---\nschema: olm.bundle\npackage: p\nname: {b}\nimage: r.example.com/p:{v}\nproperties:\n- type: olm.package\n  value: {{packageName: p, version: {v}.0.0}}\n"
            ));
        }
        Catalog::from_files(vec![("p/catalog.yaml".into(), y.into_bytes())]).unwrap()
    }

    fn full(cat: &Catalog) -> Selection {
        let op = serde_saphyr::from_str("catalog: example.com/c:1\nfull: true\npackages:\n- name: p\n").unwrap();
        super::super::select(cat, &op, "f").unwrap()
    }

    fn gone(names: &[&str]) -> BTreeSet<(String, String)> {
        names.iter().map(|n| ("p".to_string(), n.to_string())).collect()
    }

    fn channels(sel: &Selection) -> Vec<(String, Vec<String>)> {
        sel.packages.get("p").map(|ps| ps.channels.clone().into_iter().collect()).unwrap_or_default()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_middle_entry_takes_what_only_it_reached() {
        // p.v3 -> p.v2 -> p.v1; p.v2 goes: p.v3 and p.v1 are both heads, p.v3 is newer and
        // reaches nothing any more, so p.v1 goes too.
        let c =
            catalog("s", &[("s", &[("p.v1", None, &[]), ("p.v2", Some("p.v1"), &[]), ("p.v3", Some("p.v2"), &[])])]);
        let sel = without(&c, &full(&c), &gone(&["p.v2"]));
        assert_eq!(channels(&sel), vec![("s".into(), names(&["p.v3"]))]);
        assert_eq!(sel.packages["p"].bundles.iter().collect::<Vec<_>>(), vec!["p.v3"]);
        assert!(sel.warnings[0].contains("p.v1 left out too"), "{:?}", sel.warnings);
        // With p.v3 also skipping p.v1, p.v1 stays (skipped entries need not be on the chain).
        let c = catalog(
            "s",
            &[("s", &[("p.v1", None, &[]), ("p.v2", Some("p.v1"), &[]), ("p.v3", Some("p.v2"), &["p.v1"])])],
        );
        let sel = without(&c, &full(&c), &gone(&["p.v2"]));
        assert_eq!(channels(&sel), vec![("s".into(), names(&["p.v1", "p.v3"]))]);
        assert!(sel.warnings.is_empty(), "{:?}", sel.warnings);
    }

    #[test]
    fn a_head_hands_over_to_its_predecessor() {
        // p.v3 replaces p.v2 and skips p.v1; p.v2 replaces p.v1. Without p.v3: p.v2 heads
        // p.v1 through replaces.
        let c = catalog(
            "s",
            &[("s", &[("p.v1", None, &[]), ("p.v2", Some("p.v1"), &[]), ("p.v3", Some("p.v2"), &["p.v1"])])],
        );
        let sel = without(&c, &full(&c), &gone(&["p.v3"]));
        assert_eq!(channels(&sel), vec![("s".into(), names(&["p.v1", "p.v2"]))]);
        // Two entries skipped by the head, neither replacing the other: the newer one stays.
        let c = catalog("s", &[("s", &[("p.v1", None, &[]), ("p.v2", None, &[]), ("p.v3", None, &["p.v1", "p.v2"])])]);
        let sel = without(&c, &full(&c), &gone(&["p.v3"]));
        assert_eq!(channels(&sel), vec![("s".into(), names(&["p.v2"]))]);
    }

    #[test]
    fn an_only_entry_takes_its_channel_and_package() {
        // p.v1 is alone in `a`, and also in `s` with p.v2: `a` goes, `s` keeps p.v2.
        let c =
            catalog("s", &[("a", &[("p.v1", None, &[])]), ("s", &[("p.v1", None, &[]), ("p.v2", Some("p.v1"), &[])])]);
        let sel = without(&c, &full(&c), &gone(&["p.v1"]));
        assert_eq!(channels(&sel), vec![("s".into(), names(&["p.v2"]))]);
        assert!(sel.warnings.iter().any(|w| w.contains("channel \"a\": no bundle left")), "{:?}", sel.warnings);
        // The last bundle of the package: the package goes.
        let c = catalog("s", &[("s", &[("p.v1", None, &[])])]);
        let sel = without(&c, &full(&c), &gone(&["p.v1"]));
        assert!(sel.packages.is_empty());
        assert!(sel.warnings.iter().any(|w| w.contains("package \"p\": no bundle left")), "{:?}", sel.warnings);
    }

    #[test]
    fn a_lost_default_channel_goes_to_the_newest_head() {
        // Default `s` holds only p.v4; `a` heads at p.v2, `b` at p.v3: `b` becomes the default.
        let c = catalog(
            "s",
            &[
                ("a", &[("p.v1", None, &[]), ("p.v2", Some("p.v1"), &[])]),
                ("b", &[("p.v1", None, &[]), ("p.v3", Some("p.v1"), &[])]),
                ("s", &[("p.v4", None, &[])]),
            ],
        );
        let sel = without(&c, &full(&c), &gone(&["p.v4"]));
        assert_eq!(sel.packages["p"].default_channel.as_deref(), Some("b"));
        assert!(
            sel.warnings.iter().any(|w| w.contains("default channel \"s\" has no bundle left; \"b\" is the default")),
            "{:?}",
            sel.warnings
        );
        // Nothing gone: the same selection.
        assert_eq!(without(&c, &full(&c), &BTreeSet::new()), full(&c));
    }
}
