//! Bundle selection, with oc-mirror v2's meaning (its catalog filter): heads of channels by
//! default, `full`, packages, channels, version ranges as minimal replaces chains, bundles by
//! name, and `defaultChannel` overrides. Channel graphs are walked once, with visited sets,
//! so channels with hundreds of skips cost linear time.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use semver::Version;

use super::version::{Range, parse_strict};
use super::{Bundle, Catalog, Entry};
use crate::api::mirror::Operator;

/// What one catalog entry of an image set selects.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// The catalog is taken whole (`full: true` without packages): it is not rebuilt.
    pub whole: bool,
    /// Selected packages by name.
    pub packages: BTreeMap<String, PackageSelection>,
    /// Things worth telling the user (out-of-range bundles kept to keep a chain whole, dropped channels).
    pub warnings: Vec<String>,
    /// Bundles (package, name) added because selected bundles require them.
    pub dependencies: BTreeSet<(String, String)>,
}

/// What is kept of a package.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackageSelection {
    /// Default channel of the filtered package.
    pub default_channel: Option<String>,
    /// Kept channels and the names of their kept entries, in catalog order.
    pub channels: BTreeMap<String, Vec<String>>,
    /// Kept bundle names.
    pub bundles: BTreeSet<String>,
}

/// Why a selection failed, naming the image-set field it comes from.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {message}")]
pub struct FilterError {
    /// Field path, e.g. `mirror.operators[0].packages[1]`.
    pub field: String,
    /// oc-mirror's wording where it has one.
    pub message: String,
}

impl Selection {
    /// The kept bundles, sorted by package then name.
    pub fn bundles<'c>(&self, cat: &'c Catalog) -> Vec<&'c Bundle> {
        let mut out: Vec<&Bundle> = cat
            .bundles
            .iter()
            .filter(|b| self.whole || self.packages.get(&b.package).is_some_and(|p| p.bundles.contains(&b.name)))
            .collect();
        out.sort_by(|a, b| (&a.package, &a.name).cmp(&(&b.package, &b.name)));
        out
    }
}

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
                vec![g.names[g.head].to_string()]
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

/// The head of a channel (the entry nothing replaces or skips), or why it has none.
pub fn head(entries: &[Entry]) -> Result<String, String> {
    Graph::build(entries).map(|g| g.names[g.head].to_string())
}

/// A channel's upgrade graph by index: replaces and skips edges, one head.
pub(crate) struct Graph<'e> {
    names: Vec<&'e str>,
    replaces: Vec<Option<usize>>,
    skips: Vec<Vec<usize>>,
    head: usize,
}

impl<'e> Graph<'e> {
    /// Checks a channel as oc-mirror does: no duplicates, no self edges, one head, no cycle.
    pub(crate) fn build(entries: &'e [Entry]) -> Result<Graph<'e>, String> {
        if entries.is_empty() {
            return Err("channel has no entries".into());
        }
        let mut idx: HashMap<&str, usize> = HashMap::with_capacity(entries.len() * 2);
        let mut names: Vec<&str> = Vec::with_capacity(entries.len());
        let mut errs = Vec::new();
        for e in entries {
            if idx.insert(&e.name, names.len()).is_some() {
                errs.push(format!("duplicate channel entry {:?}", e.name));
            } else {
                names.push(&e.name);
            }
        }
        let n_entries = names.len();
        let mut node = |name: &'e str, names: &mut Vec<&'e str>| -> usize {
            *idx.entry(name).or_insert_with(|| {
                names.push(name);
                names.len() - 1
            })
        };
        let mut replaces = vec![None; n_entries];
        let mut skips = vec![Vec::new(); n_entries];
        let mut edges: HashSet<(usize, usize)> = HashSet::new();
        for e in entries {
            let from = node(&e.name, &mut names);
            if from >= n_entries || replaces[from].is_some() || !skips[from].is_empty() {
                continue; // duplicate, already reported
            }
            if let Some(r) = e.replaces.as_deref().filter(|r| !r.is_empty()) {
                if r == e.name {
                    errs.push(format!("invalid channel entry {:?}: replaces itself", e.name));
                }
                let to = node(r, &mut names);
                replaces[from] = Some(to);
                edges.insert((from, to));
            }
            for s in &e.skips {
                if *s == e.name {
                    errs.push(format!("invalid channel entry {:?}: skips itself", e.name));
                }
                let to = node(s, &mut names);
                if !skips[from].contains(&to) {
                    skips[from].push(to);
                }
                edges.insert((from, to));
            }
        }
        let mut incoming = vec![0usize; names.len()];
        for (_, to) in &edges {
            incoming[*to] += 1;
        }
        let heads: Vec<usize> = (0..n_entries).filter(|i| incoming[*i] == 0).collect();
        match heads.len() {
            0 => errs.push("no channel heads found".into()),
            1 => {}
            _ => {
                let mut h: Vec<&str> = heads.iter().map(|i| names[*i]).collect();
                h.sort();
                errs.push(format!("multiple channel heads found: [{}]", h.join(" ")));
            }
        }
        if !errs.is_empty() {
            return Err(errs.join("\n"));
        }
        // Kahn's walk from the head: every edge is removed once, so this is linear.
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
        for (from, to) in &edges {
            out[*from].push(*to);
        }
        let mut queue = vec![heads[0]];
        let mut left = edges.len();
        while let Some(cur) = queue.pop() {
            for &to in &out[cur] {
                left -= 1;
                incoming[to] -= 1;
                if incoming[to] == 0 {
                    queue.push(to);
                }
            }
        }
        if left > 0 {
            return Err("detected a cycle in the upgrade graph of the channel".into());
        }
        Ok(Graph { names, replaces, skips, head: heads[0] })
    }

    /// The replaces chain from the head (entries only).
    fn chain(&self) -> Vec<usize> {
        let mut out = vec![self.head];
        let mut cur = self.head;
        while let Some(next) = self.replaces.get(cur).copied().flatten() {
            out.push(next);
            cur = next;
        }
        out
    }

    /// The minimal contiguous replaces chain covering every in-range bundle, plus skipped
    /// bundles in range; `>=X <=X` keeps only version X.
    fn in_range(
        &self,
        range: &Range,
        version_of: &dyn Fn(&str) -> Result<Option<Version>, FilterError>,
        warnings: &mut Vec<String>,
    ) -> Result<HashSet<&'e str>, FilterError> {
        let mut versions: Vec<Option<Version>> = Vec::with_capacity(self.names.len());
        for n in &self.names {
            versions.push(version_of(n)?);
        }
        let in_r = |i: usize| versions[i].as_ref().is_some_and(|v| range.matches(v));
        if let Some(x) = range.exact() {
            return Ok((0..self.names.len())
                .filter(|i| versions[*i].as_ref().is_some_and(|v| v.cmp_precedence(x).is_eq()))
                .map(|i| self.names[i])
                .collect());
        }
        let chain = self.chain();
        let mut seen = vec![false; self.names.len()];
        let mut counts = vec![0usize; chain.len()];
        for (k, &i) in chain.iter().enumerate().rev() {
            let mut c = counts.get(k + 1).copied().unwrap_or(0);
            for j in std::iter::once(i).chain(self.skips.get(i).into_iter().flatten().copied()) {
                if !seen[j] && in_r(j) {
                    seen[j] = true;
                    c += 1;
                }
            }
            counts[k] = c;
        }
        let (mut head, mut tail, mut max) = (0, chain.len(), None);
        for (k, &c) in counts.iter().enumerate() {
            if max.is_none_or(|m| c >= m) {
                head = k;
                max = Some(c);
            }
            if c == 0 {
                tail = k;
                break;
            }
        }
        let mut keep = HashSet::new();
        for &i in &chain[head..tail.max(head)] {
            if !in_r(i) {
                warnings.push(match &versions[i] {
                    None => format!("including bundle {:?}: it is unversioned but is required to ensure inclusion of all bundles in the range", self.names[i]),
                    Some(v) => format!("including bundle {:?} with version {v:?}: it falls outside the specified range of {:?} but is required to ensure inclusion of all bundles in the range", self.names[i], range.to_string()),
                });
            }
            keep.insert(self.names[i]);
            for &s in self.skips.get(i).into_iter().flatten() {
                if in_r(s) {
                    keep.insert(self.names[s]);
                }
            }
        }
        Ok(keep)
    }
}
