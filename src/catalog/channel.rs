//! Channel rules as opm loads them, for changing a filtered channel without breaking it:
//! exactly one head (an entry that no other entry replaces or skips), and every entry either
//! on the replaces chain walked from the head or skipped by an entry of the channel (opm stops
//! that walk at a replaced entry which something skips). `skipRange` plays no part in either
//! rule, so an entry reached only through a skip range would be a second head.

use std::collections::{HashMap, HashSet, VecDeque};

use semver::Version;

use super::Entry;

/// Whether opm would load a channel made of these entries; the error says why not.
pub fn check(entries: &[&Entry]) -> Result<(), String> {
    if entries.is_empty() {
        return Err("channel has no entries".into());
    }
    let heads = heads(entries);
    match heads.as_slice() {
        [] => return Err("no channel head found".into()),
        [_] => {}
        _ => {
            let mut names: Vec<&str> = heads.iter().map(|e| e.name.as_str()).collect();
            names.sort();
            return Err(format!("multiple channel heads found: [{}]", names.join(" ")));
        }
    }
    let allowed = reached(heads[0], entries);
    let mut stranded: Vec<&str> = entries.iter().map(|e| e.name.as_str()).filter(|n| !allowed.contains(n)).collect();
    if !stranded.is_empty() {
        stranded.sort();
        return Err(format!("channel contains stranded bundles: [{}]", stranded.join(" ")));
    }
    Ok(())
}

/// The head of a set of entries, when it has exactly one.
pub fn head<'e>(entries: &[&'e Entry]) -> Option<&'e Entry> {
    match heads(entries).as_slice() {
        [h] => Some(h),
        _ => None,
    }
}

/// Entries that no other entry of the set replaces or skips, in the set's order.
fn heads<'e>(entries: &[&'e Entry]) -> Vec<&'e Entry> {
    let incoming: HashSet<&str> =
        entries.iter().flat_map(|e| e.replaces.iter().chain(e.skips.iter())).map(String::as_str).collect();
    entries.iter().filter(|e| !incoming.contains(e.name.as_str())).copied().collect()
}

/// The names opm accepts under `head`: the replaces chain from it (stopping at an entry that
/// something skips, or at one outside the set) and every skipped name.
fn reached<'e>(head: &'e Entry, entries: &[&'e Entry]) -> HashSet<&'e str> {
    let by_name: HashMap<&str, &Entry> = entries.iter().map(|e| (e.name.as_str(), *e)).collect();
    let mut out: HashSet<&str> = entries.iter().flat_map(|e| e.skips.iter()).map(String::as_str).collect();
    let skipped = out.clone();
    out.insert(&head.name);
    let mut cur = head;
    while let Some(r) = cur.replaces.as_deref().filter(|r| !r.is_empty() && !skipped.contains(r)) {
        let Some(next) = by_name.get(r) else { break };
        if !out.insert(&next.name) {
            break;
        }
        cur = next;
    }
    out
}

/// What is left of a channel once some of its entries are gone: the remaining head with the
/// highest version, and the entries still reachable from it through replaces and skips in a
/// way opm accepts (anything else would be a second head or a stranded entry). `version`
/// gives an entry's bundle version (None sorts lowest; ties go to the greater name).
pub fn prune<'e>(entries: &[&'e Entry], version: &dyn Fn(&str) -> Option<Version>) -> Vec<&'e Entry> {
    let Some(head) = heads(entries).into_iter().max_by(|a, b| {
        let (va, vb) = (version(&a.name), version(&b.name));
        let by_version = match (&va, &vb) {
            (Some(x), Some(y)) => x.cmp_precedence(y),
            _ => va.is_some().cmp(&vb.is_some()),
        };
        by_version.then_with(|| a.name.cmp(&b.name))
    }) else {
        // Every entry has an incoming edge: a cycle, which no channel opm served can have.
        return entries.to_vec();
    };
    let mut keep: Vec<&Entry> = entries.to_vec();
    loop {
        let by_name: HashMap<&str, &Entry> = keep.iter().map(|e| (e.name.as_str(), *e)).collect();
        let mut seen: HashSet<&str> = HashSet::from([head.name.as_str()]);
        let mut queue = VecDeque::from([head]);
        while let Some(e) = queue.pop_front() {
            for t in e.replaces.iter().chain(e.skips.iter()) {
                if let Some(next) = by_name.get(t.as_str())
                    && seen.insert(&next.name)
                {
                    queue.push_back(next);
                }
            }
        }
        let reachable: Vec<&Entry> = keep.iter().filter(|e| seen.contains(e.name.as_str())).copied().collect();
        let allowed = reached(head, &reachable);
        let next: Vec<&Entry> = reachable.into_iter().filter(|e| allowed.contains(e.name.as_str())).collect();
        if next.len() == keep.len() {
            return keep;
        }
        keep = next;
    }
}

/// The entries to keep so that `kept` (a valid part of the channel) also holds `add`: the
/// stretch of the channel's replaces chain that covers both, and for entries off that chain
/// the entries that skip them. Returned in the channel's order.
pub fn connect<'a>(full: &'a [Entry], kept: &'a [String], add: &'a str) -> Result<Vec<String>, String> {
    let all: Vec<&Entry> = full.iter().collect();
    check(&all)?;
    let head = heads(&all)[0];
    let skipped: HashSet<&str> = full.iter().flat_map(|e| e.skips.iter()).map(String::as_str).collect();
    let by_name: HashMap<&str, &Entry> = full.iter().map(|e| (e.name.as_str(), e)).collect();
    let mut chain = vec![head.name.as_str()];
    let mut on_chain = HashSet::from([head.name.as_str()]);
    let mut cur = head;
    while let Some(next) =
        cur.replaces.as_deref().filter(|r| !skipped.contains(r)).and_then(|r| by_name.get(r)).copied()
    {
        if !on_chain.insert(&next.name) {
            break;
        }
        chain.push(&next.name);
        cur = next;
    }
    let pos: HashMap<&str, usize> = chain.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut skippers: HashMap<&str, Vec<&str>> = HashMap::new();
    for e in full {
        for s in &e.skips {
            skippers.entry(s.as_str()).or_default().push(&e.name);
        }
    }
    let wanted: Vec<&str> = kept.iter().map(String::as_str).chain(std::iter::once(add)).collect();
    let mut window: Option<(usize, usize)> = None;
    let widen = |w: Option<(usize, usize)>, i: usize| Some(w.map_or((i, i), |(lo, hi)| (lo.min(i), hi.max(i))));
    for n in &wanted {
        if let Some(&i) = pos.get(n) {
            window = widen(window, i);
        }
    }
    let mut extra: HashSet<&str> = HashSet::new();
    for n in wanted.iter().filter(|n| !pos.contains_key(*n)) {
        let w = window;
        let outside = |i: usize| w.map_or(0, |(lo, hi)| lo.saturating_sub(i) + i.saturating_sub(hi));
        let (i, path) = anchors(n, &skippers, &pos)
            .into_iter()
            .min_by_key(|(i, path)| (outside(*i), path.len(), *i))
            .ok_or_else(|| format!("entry {n:?} is neither on the replaces chain nor skipped"))?;
        window = widen(window, i);
        extra.extend(path);
    }
    let (lo, hi) = window.ok_or_else(|| format!("entry {add:?} is not in the channel"))?;
    let keep: HashSet<&str> = wanted.iter().copied().chain(chain[lo..=hi].iter().copied()).chain(extra).collect();
    let out: Vec<&Entry> = full.iter().filter(|e| keep.contains(e.name.as_str())).collect();
    check(&out)?;
    Ok(out.into_iter().map(|e| e.name.clone()).collect())
}

/// For an entry off the replaces chain: each chain entry above it through skips (its position
/// on the chain) with the entries between them.
fn anchors<'a>(
    x: &'a str,
    skippers: &HashMap<&'a str, Vec<&'a str>>,
    pos: &HashMap<&'a str, usize>,
) -> Vec<(usize, Vec<&'a str>)> {
    let mut out = Vec::new();
    let mut parent: HashMap<&str, &str> = HashMap::new();
    let mut queue = VecDeque::from([x]);
    while let Some(n) = queue.pop_front() {
        for &s in skippers.get(n).into_iter().flatten() {
            if s == x || parent.contains_key(s) {
                continue;
            }
            parent.insert(s, n);
            match pos.get(s) {
                Some(&i) => {
                    let mut path = Vec::new();
                    let mut p = n;
                    while p != x {
                        path.push(p);
                        p = parent[p];
                    }
                    out.push((i, path));
                }
                None => queue.push_back(s),
            }
        }
    }
    out
}
