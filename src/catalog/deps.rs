//! Dependency closure, beyond oc-mirror (which ignores dependencies and leaves users to list
//! them by hand): with `includeDependencies`, what every selected bundle requires is taken
//! from the same catalog, and what that requires in turn, until nothing more is needed.
//!
//! - `olm.package.required` (package, range): met by a selected bundle of the package in the
//!   range; otherwise the highest version in range from the package's default channel, else
//!   from any channel.
//! - `olm.gvk.required`: met by a selected bundle providing the API; otherwise the head of the
//!   default channel of a package providing it, else the highest version providing it.
//!
//! An added bundle joins a channel of its package the selection does not have yet (alone, so
//! the channel has one head), or else a kept channel together with the entries that connect
//! it to what the channel keeps; a package new to the selection gets a default channel it
//! has. A requirement the catalog cannot meet is a warning, never an error.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use semver::Version;

use super::version::{Range, parse_loose, parse_strict};
use super::{Bundle, Catalog, Channel, Gvk, Requirement, Selection, channel};

/// Adds to `sel` the bundles its bundles require, transitively; unmet requirements become
/// warnings.
pub(crate) fn include(cat: &Catalog, sel: &mut Selection) {
    let ctx = Context::new(cat);
    let mut provided: HashSet<&Gvk> = HashSet::new();
    let mut queue: VecDeque<&Bundle> = VecDeque::new();
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for b in sel.bundles(cat) {
        provided.extend(&b.provides);
        seen.insert((&b.package, &b.name));
        queue.push_back(b);
    }
    // (requiring package, requirement) -> (why unmet, requiring bundles)
    let mut unmet: BTreeMap<(String, String), (String, Vec<String>)> = BTreeMap::new();
    while let Some(b) = queue.pop_front() {
        // Package requirements first: the bundle they bring often provides the APIs asked for.
        let mut reqs: Vec<&Requirement> = b.requires.iter().collect();
        reqs.sort_by_key(|r| matches!(r, Requirement::Gvk(_)));
        for r in reqs {
            let picked = match r {
                Requirement::Package { name, range } => match Range::parse(range) {
                    Err(e) => Err(e),
                    Ok(range) if ctx.has_in_range(sel, name, &range) => continue,
                    Ok(range) => ctx.pick_package(name, &range),
                },
                Requirement::Gvk(g) if provided.contains(g) => continue,
                Requirement::Gvk(g) => ctx.pick_gvk(g),
            };
            let added = picked.and_then(|dep| Ok((dep, add(&ctx, sel, dep)?)));
            match added {
                Ok((dep, names)) => {
                    for n in names {
                        let Some(nb) = ctx.index.get(&(dep.package.as_str(), n.as_str())).copied() else { continue };
                        provided.extend(&nb.provides);
                        sel.dependencies.insert((nb.package.clone(), nb.name.clone()));
                        if seen.insert((&nb.package, &nb.name)) {
                            queue.push_back(nb);
                        }
                    }
                }
                Err(why) => {
                    let e = unmet.entry((b.package.clone(), describe(r))).or_insert_with(|| (why, Vec::new()));
                    e.1.push(b.name.clone());
                }
            }
        }
    }
    for ((pkg, req), (why, mut bundles)) in unmet {
        bundles.sort();
        sel.warnings.push(format!(
            "package {pkg:?} requires {req} ({}): {why}; the dependency is left out",
            bundles.join(", ")
        ));
    }
}

fn describe(r: &Requirement) -> String {
    match r {
        Requirement::Package { name, range } => format!("package {name:?} in range {range:?}"),
        Requirement::Gvk(g) => format!("API {}/{} {}", g.group, g.version, g.kind),
    }
}

/// What the closure looks things up in.
struct Context<'c> {
    cat: &'c Catalog,
    index: HashMap<(&'c str, &'c str), &'c Bundle>,
    versions: HashMap<(&'c str, &'c str), Version>,
}

impl<'c> Context<'c> {
    fn new(cat: &'c Catalog) -> Self {
        let versions = cat
            .bundles
            .iter()
            .filter_map(|b| {
                let v = b.version.as_deref()?;
                let v = parse_strict(v).or_else(|_| parse_loose(v)).ok()?;
                Some(((b.package.as_str(), b.name.as_str()), v))
            })
            .collect();
        Context { cat, index: cat.bundle_index(), versions }
    }

    fn version(&self, b: &'c Bundle) -> Option<&Version> {
        self.versions.get(&(b.package.as_str(), b.name.as_str()))
    }

    fn channels_of(&self, package: &str) -> impl Iterator<Item = &'c Channel> {
        self.cat.channels.iter().filter(move |c| c.package == package)
    }

    fn default_channel(&self, package: &str) -> Option<&'c Channel> {
        let d = self.cat.package(package)?.default_channel.as_deref()?;
        self.channels_of(package).find(|c| c.name == d)
    }

    /// Whether a selected bundle of `package` has a version in `range`.
    fn has_in_range(&self, sel: &Selection, package: &str, range: &Range) -> bool {
        sel.packages.get(package).is_some_and(|ps| {
            ps.bundles.iter().any(|n| self.versions.get(&(package, n.as_str())).is_some_and(|v| range.matches(v)))
        })
    }

    /// The highest version in `range`: from the default channel, else from any channel.
    fn pick_package(&self, package: &str, range: &Range) -> Result<&'c Bundle, String> {
        if self.cat.package(package).is_none() {
            return Err("the catalog has no such package".into());
        }
        let highest = |channels: &[&Channel]| {
            let mut best: Option<(&Version, &'c Bundle)> = None;
            for e in channels.iter().flat_map(|c| c.entries.iter()) {
                let Some(&b) = self.index.get(&(package, e.name.as_str())) else { continue };
                let Some(v) = self.version(b).filter(|v| range.matches(v)) else { continue };
                if best.is_none_or(|(bv, bb)| v.cmp_precedence(bv).then_with(|| b.name.cmp(&bb.name)).is_gt()) {
                    best = Some((v, b));
                }
            }
            best.map(|(_, b)| b)
        };
        let default: Vec<&Channel> = self.default_channel(package).into_iter().collect();
        let all: Vec<&Channel> = self.channels_of(package).collect();
        highest(&default)
            .or_else(|| highest(&all))
            .ok_or_else(|| format!("no bundle of package {package:?} in a channel is in that range"))
    }

    /// The default-channel head of a package providing `gvk` (packages by name), else the
    /// highest version providing it (default-channel bundles first).
    fn pick_gvk(&self, gvk: &Gvk) -> Result<&'c Bundle, String> {
        let in_channel: HashSet<(&str, &str)> = self
            .cat
            .channels
            .iter()
            .flat_map(|c| c.entries.iter().map(move |e| (c.package.as_str(), e.name.as_str())))
            .collect();
        let providers: Vec<&'c Bundle> = self
            .cat
            .bundles
            .iter()
            .filter(|b| b.provides.contains(gvk) && in_channel.contains(&(b.package.as_str(), b.name.as_str())))
            .collect();
        let mut packages: Vec<&str> = providers.iter().map(|b| b.package.as_str()).collect();
        packages.sort();
        packages.dedup();
        for p in packages {
            let head = self.default_channel(p).and_then(|c| super::upgrades::head(&c.entries).ok());
            if let Some(b) = head.and_then(|h| providers.iter().find(|b| b.package == p && b.name == h)) {
                return Ok(b);
            }
        }
        let in_default =
            |b: &Bundle| self.default_channel(&b.package).is_some_and(|c| c.entries.iter().any(|e| e.name == b.name));
        providers
            .into_iter()
            .max_by(|a, b| {
                in_default(a)
                    .cmp(&in_default(b))
                    .then_with(|| match (self.version(a), self.version(b)) {
                        (Some(x), Some(y)) => x.cmp_precedence(y),
                        (x, y) => x.is_some().cmp(&y.is_some()),
                    })
                    .then_with(|| (&b.package, &b.name).cmp(&(&a.package, &a.name)))
            })
            .ok_or_else(|| "no bundle of the catalog provides it".into())
    }
}

/// Puts `dep` into the selection with channel entries that keep its package valid; returns
/// the entry names newly kept (`dep` and what connects it).
fn add(ctx: &Context, sel: &mut Selection, dep: &Bundle) -> Result<Vec<String>, String> {
    let holding: Vec<(usize, &Channel)> = ctx
        .channels_of(&dep.package)
        .enumerate()
        .filter(|(_, c)| c.entries.iter().any(|e| e.name == dep.name))
        .collect();
    if holding.is_empty() {
        return Err(format!("bundle {:?} is in no channel", dep.name));
    }
    let default = ctx.cat.package(&dep.package).and_then(|p| p.default_channel.as_deref());
    let ps = sel.packages.entry(dep.package.clone()).or_default();
    let rank = |i: usize, c: &Channel| (Some(c.name.as_str()) != default, i);
    // A channel the selection does not keep yet takes the bundle alone: nothing else to bring.
    let fresh = holding.iter().filter(|(_, c)| !ps.channels.contains_key(&c.name)).min_by_key(|(i, c)| rank(*i, c));
    let (channel, kept) = match fresh {
        Some((_, c)) => (*c, vec![dep.name.clone()]),
        None => {
            // Else the kept channel that needs the fewest entries to connect it.
            let mut why = String::new();
            let mut options = Vec::new();
            for (i, c) in &holding {
                match channel::connect(&c.entries, &ps.channels[&c.name], &dep.name) {
                    Ok(k) => options.push((k.len() - ps.channels[&c.name].len(), rank(*i, c), *c, k)),
                    Err(e) => why = format!("channel {:?}: {e}", c.name),
                }
            }
            let (_, _, c, k) = options.into_iter().min_by_key(|o| (o.0, o.1)).ok_or(why)?;
            (c, k)
        }
    };
    let before = ps.channels.get(&channel.name);
    let added: Vec<String> = kept.iter().filter(|n| before.is_none_or(|b| !b.contains(n))).cloned().collect();
    for n in &added {
        if ctx.index.contains_key(&(dep.package.as_str(), n.as_str())) {
            ps.bundles.insert(n.clone());
        }
    }
    ps.channels.insert(channel.name.clone(), kept);
    if ps.default_channel.as_ref().is_none_or(|d| !ps.channels.contains_key(d)) {
        let keep_default = default.filter(|d| ps.channels.contains_key(*d));
        ps.default_channel = Some(keep_default.unwrap_or(&channel.name).to_string());
    }
    Ok(added)
}
