//! How a copy plan is cut into shards. Pure.
//!
//! Images of one destination repository stay in one shard (tags of a repository share their
//! big layers, and a shard mounts what it already pushed there). Repositories go to shards
//! largest first, each to the shard with the least to move so far (bytes of distinct blobs,
//! plus a fixed cost per image for the round trips). Blobs that images of several shards need
//! are listed, so that the operator places each once at the destination before the shards
//! start: every shard then mounts it, and the source serves it once.

use std::collections::{BTreeMap, BTreeSet};

use crate::image::ImageRef;
use crate::image::manifest::Descriptor;
use crate::plan::CopyItem;

/// What an image costs beside its bytes: its round trips, counted as this many bytes.
pub const IMAGE_COST: u64 = 1 << 20;

/// A plan cut into shards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// Item indexes of each shard, in plan order; no shard is empty.
    pub shards: Vec<Vec<usize>>,
    /// Blobs images of more than one shard need: the blob and the first item (in plan order)
    /// that needs it, whose source and destination it is placed through.
    pub shared: Vec<(usize, Descriptor)>,
    /// Bytes of distinct blobs each shard moves (shared blobs counted in each shard needing them).
    pub bytes: Vec<u64>,
}

/// The destination repository of an item (`registry/path`).
fn repository(item: &CopyItem) -> String {
    match ImageRef::parse(&item.destination) {
        Ok(r) => format!("{}/{}", r.registry, r.path),
        Err(_) => item.destination.clone(),
    }
}

/// Cuts `items` into at most `n` shards; `needs[i]` are the blobs item `i` needs (`None`:
/// unknown, the item counts its fixed cost only).
pub fn split(items: &[CopyItem], needs: &[Option<Vec<Descriptor>>], n: usize) -> Split {
    let n = n.max(1);
    // Repositories in order of first appearance, with their items and distinct blobs.
    let mut order: Vec<String> = Vec::new();
    let mut groups: BTreeMap<String, (Vec<usize>, BTreeMap<String, u64>)> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let repo = repository(item);
        let g = groups.entry(repo.clone()).or_insert_with(|| {
            order.push(repo);
            Default::default()
        });
        g.0.push(i);
        for d in needs.get(i).and_then(Option::as_ref).into_iter().flatten() {
            g.1.insert(d.digest.clone(), d.size);
        }
    }
    let weight = |repo: &String| {
        let (items, blobs) = &groups[repo];
        blobs.values().sum::<u64>() + items.len() as u64 * IMAGE_COST
    };
    // Largest first; equal weights in plan order (a stable sort keeps it).
    let mut by_weight = order.clone();
    by_weight.sort_by_key(|r| std::cmp::Reverse(weight(r)));
    let mut load = vec![0u64; n.min(by_weight.len()).max(1)];
    let mut shard_of: BTreeMap<&str, usize> = BTreeMap::new();
    for repo in &by_weight {
        let (s, _) = load.iter().enumerate().min_by_key(|(s, l)| (**l, *s)).expect("at least one shard");
        load[s] += weight(repo);
        shard_of.insert(repo.as_str(), s);
    }
    let mut shards: Vec<Vec<usize>> = vec![Vec::new(); load.len()];
    let mut bytes = vec![0u64; load.len()];
    let mut in_shard: Vec<BTreeSet<&str>> = vec![BTreeSet::new(); load.len()];
    for (repo, (idx, blobs)) in &groups {
        let s = shard_of[repo.as_str()];
        shards[s].extend(idx.iter().copied());
        for (d, size) in blobs {
            if in_shard[s].insert(d.as_str()) {
                bytes[s] += size;
            }
        }
    }
    for s in &mut shards {
        s.sort_unstable();
    }
    // Blobs more than one shard needs, each with the first item needing it.
    let mut first: BTreeMap<&str, (usize, &Descriptor)> = BTreeMap::new();
    let mut shards_of: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let s = shard_of[repository(item).as_str()];
        for d in needs.get(i).and_then(Option::as_ref).into_iter().flatten() {
            first.entry(d.digest.as_str()).or_insert((i, d));
            shards_of.entry(d.digest.as_str()).or_default().insert(s);
        }
    }
    let mut shared: Vec<(usize, Descriptor)> =
        shards_of.iter().filter(|(_, s)| s.len() > 1).map(|(d, _)| (first[d].0, first[d].1.clone())).collect();
    shared.sort_by(|a, b| (a.0, &a.1.digest).cmp(&(b.0, &b.1.digest)));
    Split { shards, shared, bytes }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::ImageKind;

    fn item(dest: &str) -> CopyItem {
        CopyItem {
            kind: ImageKind::Additional,
            origin: format!("docker://src.example/{dest}"),
            source: format!("docker://src.example/{dest}"),
            destination: format!("docker://dst.example/{dest}"),
            platforms: vec![],
        }
    }

    fn blob(name: &str, size: u64) -> Descriptor {
        Descriptor {
            digest: crate::image::manifest::sha256_digest(name.as_bytes()),
            size,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        }
    }

    #[test]
    fn a_repository_stays_in_one_shard_and_shards_balance_by_bytes() {
        let items = vec![item("a:1"), item("b:1"), item("a:2"), item("c:1"), item("d:1")];
        let base = blob("base", 100 << 20);
        let needs = vec![
            Some(vec![base.clone(), blob("a1", 50 << 20)]),
            Some(vec![blob("b1", 120 << 20)]),
            Some(vec![base.clone(), blob("a2", 50 << 20)]),
            Some(vec![base.clone(), blob("c1", 10 << 20)]),
            None,
        ];
        let s = split(&items, &needs, 2);
        assert_eq!(s.shards.len(), 2);
        let shard_of = |i: usize| s.shards.iter().position(|sh| sh.contains(&i)).unwrap();
        assert_eq!(shard_of(0), shard_of(2), "tags of one repository stay together");
        // a (200 MiB + 2) is largest and goes first; b (120 + 1) next to the other shard; c and d
        // go where there is least.
        assert_ne!(shard_of(0), shard_of(1));
        let all: BTreeSet<usize> = s.shards.iter().flatten().copied().collect();
        assert_eq!(all, (0..5).collect(), "every item in exactly one shard");
        assert_eq!(s.shards.iter().map(Vec::len).sum::<usize>(), 5);
        // The base layer is needed by a's shard and c's shard only if they differ.
        if shard_of(0) != shard_of(3) {
            assert_eq!(s.shared, vec![(0, base.clone())], "placed through the first item needing it");
        } else {
            assert!(s.shared.is_empty());
        }
    }

    #[test]
    fn fewer_repositories_than_shards_give_fewer_shards_and_one_shard_shares_nothing() {
        let items = vec![item("a:1"), item("a:2")];
        let needs = vec![Some(vec![blob("x", 1)]), Some(vec![blob("x", 1)])];
        let s = split(&items, &needs, 4);
        assert_eq!(s.shards, vec![vec![0, 1]]);
        assert!(s.shared.is_empty());
        assert_eq!(s.bytes, vec![1]);
        assert_eq!(split(&[], &[], 3).shards, vec![Vec::<usize>::new()]);
    }
}
