//! Bundle selection, with oc-mirror v2's meaning (its catalog filter): heads of channels by
//! default, `full`, packages, channels, version ranges as minimal replaces chains, bundles by
//! name, and `defaultChannel` overrides. Channel graphs are walked once, with visited sets,
//! so channels with hundreds of skips cost linear time.

use std::collections::{BTreeMap, HashMap, HashSet};

use semver::Version;

use super::selection::{FilterError, PackageSelection, Selection};
use super::upgrades::Graph;
use super::version::{Range, parse_strict};
use super::{Catalog, Entry};
use crate::api::mirror::Operator;

/// Selects the bundles of `cat` that an operator entry asks for. `field` prefixes errors.
pub fn select(cat: &Catalog, op: &Operator, field: &str) -> Result<Selection, FilterError> {
    let err = |f: String, message: String| FilterError { field: f, message };
    let mut sel = Selection::default();
    if op.full && op.packages.is_empty() {
        sel.whole = true;
        for p in &cat.packages {
            let ps = sel.packages.entry(p.name.clone()).or_default();
            ps.default_channel = p.default_channel.clone();
        }
        for c in &cat.channels {
            let ps = sel.packages.entry(c.package.clone()).or_default();
            ps.channels.insert(c.name.clone(), c.entries.iter().map(|e| e.name.clone()).collect());
        }
        for b in &cat.bundles {
            sel.packages.entry(b.package.clone()).or_default().bundles.insert(b.name.clone());
        }
        return Ok(sel);
    }
    let versions = versions_by_name(cat);
    // (package, its field path, channels asked for, package range, bundles asked for, default override)
    struct Want<'a> {
        field: String,
        channels: Vec<(&'a str, Option<Range>, String)>,
        range: Option<Range>,
        bundles: HashSet<&'a str>,
        default: Option<&'a str>,
    }
    let mut wants: BTreeMap<&str, Want> = BTreeMap::new();
    if op.packages.is_empty() {
        for p in &cat.packages {
            wants.insert(
                &p.name,
                Want {
                    field: field.to_string(),
                    channels: vec![],
                    range: None,
                    bundles: HashSet::new(),
                    default: None,
                },
            );
        }
    }
    for (i, p) in op.packages.iter().enumerate() {
        let pf = format!("{field}.packages[{i}]");
        if cat.package(&p.name).is_none() {
            return Err(err(format!("{pf}.name"), format!("package {:?} is not in the catalog", p.name)));
        }
        let range =
            Range::between(p.min_version.as_deref(), p.max_version.as_deref()).map_err(|m| err(pf.clone(), m))?;
        let mut channels = Vec::new();
        for (j, c) in p.channels.iter().enumerate() {
            let cf = format!("{pf}.channels[{j}]");
            if !cat.channels.iter().any(|ch| ch.package == p.name && ch.name == c.name) {
                return Err(err(
                    format!("{cf}.name"),
                    format!("channel {:?} is not in package {:?} of the catalog", c.name, p.name),
                ));
            }
            let r =
                Range::between(c.min_version.as_deref(), c.max_version.as_deref()).map_err(|m| err(cf.clone(), m))?;
            channels.push((c.name.as_str(), r, cf));
        }
        let bundles: HashSet<&str> = p.bundles.iter().map(|b| b.name.as_str()).collect();
        if op.full && (range.is_some() || channels.iter().any(|c| c.1.is_some())) {
            return Err(err(pf, "Full: true cannot be mixed with versionRange".into()));
        }
        if op.full && !bundles.is_empty() {
            return Err(err(pf, "Full: true cannot be mixed with filtering by bundle selection".into()));
        }
        if !bundles.is_empty() && (range.is_some() || channels.iter().any(|c| c.1.is_some())) {
            return Err(err(pf, "filtering by versionRange cannot be mixed with filtering by bundle selection".into()));
        }
        wants.insert(&p.name, Want { field: pf, channels, range, bundles, default: p.default_channel.as_deref() });
    }

    for (pkg, want) in &wants {
        let package = cat.package(pkg).expect("selected packages exist");
        let mut ps = PackageSelection { default_channel: package.default_channel.clone(), ..Default::default() };
        let original_default = package.default_channel.as_deref();
        for ch in cat.channels.iter().filter(|c| c.package == *pkg) {
            let asked = want.channels.iter().find(|c| c.0 == ch.name);
            if !want.channels.is_empty() && asked.is_none() {
                continue;
            }
            let (range, cf) = match asked {
                Some((_, Some(r), cf)) => (Some(r), cf.as_str()),
                Some((_, None, cf)) => (want.range.as_ref(), cf.as_str()),
                None => (want.range.as_ref(), want.field.as_str()),
            };
            let in_channel = |m: String| format!("package {pkg:?} channel {:?}: {m}", ch.name);
            let kept: Vec<String> = if !want.bundles.is_empty() {
                let entries: Vec<Entry> =
                    ch.entries.iter().filter(|e| want.bundles.contains(e.name.as_str())).cloned().collect();
                if entries.is_empty() {
                    continue;
                }
                Graph::build(&entries).map_err(|m| {
                    err(
                        want.field.clone(),
                        format!(
                            "filtering on the selected bundles leads to invalidating channel {:?} for package {pkg:?}: {m}",
                            ch.name
                        ),
                    )
                })?;
                entries.into_iter().map(|e| e.name).collect()
            } else if op.full {
                ch.entries.iter().map(|e| e.name.clone()).collect()
            } else if let Some(range) = range {
                let g = Graph::build(&ch.entries).map_err(|m| err(cf.to_string(), in_channel(m)))?;
                let version_of = |name: &str| -> Result<Option<Version>, FilterError> {
                    match versions.get(&(pkg.to_string(), name.to_string())) {
                        None => Ok(None),
                        Some(Ok(v)) => Ok(Some(v.clone())),
                        Some(Err(m)) => Err(err(cf.to_string(), format!("bundle {name:?} of package {pkg:?}: {m}"))),
                    }
                };
                let keep = g.in_range(range, &version_of, &mut sel.warnings)?;
                if keep.is_empty() {
                    if original_default == Some(ch.name.as_str()) && want.default.is_none() {
                        return Err(err(
                            cf.to_string(),
                            format!(
                                "package {pkg:?} channel {:?} has version range {:?} that results in an empty channel",
                                ch.name,
                                range.to_string()
                            ),
                        ));
                    }
                    sel.warnings.push(format!(
                        "package {pkg:?} channel {:?}: no bundle in range {range}; channel left out",
                        ch.name
                    ));
                    continue;
                }
                ch.entries.iter().filter(|e| keep.contains(e.name.as_str())).map(|e| e.name.clone()).collect()
            } else {
                let g = Graph::build(&ch.entries).map_err(|m| {
                    err(
                        cf.to_string(),
                        format!("package {pkg:?} channel {:?} unable to filter head of channel: {m}", ch.name),
                    )
                })?;
                vec![g.head_name().to_string()]
            };
            ps.bundles.extend(kept.iter().cloned());
            ps.channels.insert(ch.name.clone(), kept);
        }
        if let Some(exact) = want.range.as_ref().and_then(Range::exact)
            && ps.channels.is_empty()
        {
            return Err(err(want.field.clone(), format!("specific version {exact} not found in bundles")));
        }
        check_default(&mut ps, original_default, want.default, !op.packages.is_empty()).map_err(|m| {
            err(want.field.clone(), format!("invalid default channel configuration for package {pkg:?}: {m}"))
        })?;
        // Entries may name bundles the catalog lacks; only real bundles are kept.
        let present: HashSet<&str> =
            cat.bundles.iter().filter(|b| b.package == *pkg).map(|b| b.name.as_str()).collect();
        ps.bundles.retain(|b| present.contains(b.as_str()));
        sel.packages.insert(pkg.to_string(), ps);
    }
    if op.include_dependencies {
        super::deps::include(cat, &mut sel);
    }
    Ok(sel)
}

fn check_default(
    ps: &mut PackageSelection,
    original: Option<&str>,
    wanted: Option<&str>,
    listed: bool,
) -> Result<(), String> {
    if let Some(w) = wanted {
        if !ps.channels.contains_key(w) {
            return Err(format!("specified default channel override {w:?} does not exist in the filtered output"));
        }
        ps.default_channel = Some(w.to_string());
        return Ok(());
    }
    match original {
        Some(d) if listed && !ps.channels.contains_key(d) => Err(format!(
            "the default channel {d:?} was filtered out, a new default channel must be configured for this package"
        )),
        _ => Ok(()),
    }
}

type Versions = HashMap<(String, String), Result<Version, String>>;

fn versions_by_name(cat: &Catalog) -> Versions {
    cat.bundles
        .iter()
        .map(|b| {
            let v = match &b.version {
                Some(s) => parse_strict(s),
                None => Err("has no olm.package property with a version".to_string()),
            };
            ((b.package.clone(), b.name.clone()), v)
        })
        .collect()
}
