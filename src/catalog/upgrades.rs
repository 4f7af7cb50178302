//! A channel's upgrade graph (replaces and skips edges) checked as oc-mirror checks it, and
//! its head. Pure.

use std::collections::{HashMap, HashSet};

use semver::Version;

use super::Entry;
use super::selection::FilterError;
use super::version::Range;

/// The head of a channel (the entry nothing replaces or skips), or why it has none.
pub fn head(entries: &[Entry]) -> Result<String, String> {
    Graph::build(entries).map(|g| g.head_name().to_string())
}

/// A channel's upgrade graph by index: replaces and skips edges, one head.
pub struct Graph<'e> {
    names: Vec<&'e str>,
    replaces: Vec<Option<usize>>,
    skips: Vec<Vec<usize>>,
    head: usize,
}

impl<'e> Graph<'e> {
    /// The head's name.
    pub fn head_name(&self) -> &'e str {
        self.names[self.head]
    }

    /// Checks a channel as oc-mirror does: no duplicates, no self edges, one head, no cycle.
    pub fn build(entries: &'e [Entry]) -> Result<Graph<'e>, String> {
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
    pub(super) fn in_range(
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
