//! ImageDigestMirrorSet and ImageTagMirrorSet, grouped and scoped as oc-mirror does, but sorted
//! and stable so that re-rendering the same set is byte-identical and a new image in an already
//! mirrored namespace changes nothing (any change to these objects reboots every node).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use super::{Mirrored, Naming, metadata};
use crate::plan::ImageKind;

/// How much of a repository path an entry covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// The parent namespace (or the whole registry for a one-component path).
    Namespace,
    /// Exactly one repository.
    Repository,
}

/// The object an image's entry lands in; `None` for images the cluster never pulls by name
/// through a mirror set (catalogs are named by their CatalogSource, the graph image by the
/// UpdateService).
fn category(kind: ImageKind) -> Option<&'static str> {
    match kind {
        ImageKind::Release | ImageKind::ReleaseContent | ImageKind::KubeVirt => Some("release"),
        ImageKind::OperatorBundle | ImageKind::OperatorRelatedImage => Some("operator"),
        ImageKind::Additional | ImageKind::Helm => Some("generic"),
        ImageKind::OperatorCatalog | ImageKind::Graph => None,
    }
}

fn parent(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(p, _)| p)
}

/// `(source, mirror, scope)` for one image: namespace scope when the destination keeps the
/// source path, repository scope otherwise (renames, release components, folded paths).
pub fn entry(m: &Mirrored, max_nested_paths: u32) -> (String, String, Scope) {
    let (o, d) = (&m.origin, &m.destination);
    let lines_up = d.path == o.path || d.path.ends_with(&format!("/{}", o.path));
    let release = matches!(m.kind, ImageKind::Release | ImageKind::ReleaseContent);
    if max_nested_paths == 0 && lines_up && !release {
        let source = match parent(&o.path) {
            Some(p) => format!("{}/{p}", o.registry),
            None => o.registry.clone(),
        };
        let mirror = match parent(&d.path) {
            Some(p) => format!("{}/{p}", d.registry),
            None => d.registry.clone(),
        };
        return (source, mirror, Scope::Namespace);
    }
    (o.name(), d.name(), Scope::Repository)
}

/// The IDMS and ITMS objects: per category one of each at most, named `idms-<category>-0`
/// and `itms-<category>-0` (with the naming prefix). IDMS takes images pulled by digest (and
/// release payloads, which the installer needs); ITMS those pulled by tag (and payloads).
pub fn mirror_sets(mirrored: &[Mirrored], naming: &Naming) -> Vec<Value> {
    type Groups = BTreeMap<&'static str, BTreeMap<String, BTreeSet<String>>>;
    let (mut digests, mut tags): (Groups, Groups) = (BTreeMap::new(), BTreeMap::new());
    for m in mirrored {
        let Some(cat) = category(m.kind) else { continue };
        let (source, mirror, _) = entry(m, naming.max_nested_paths);
        let payload = m.kind == ImageKind::Release;
        if m.origin.digest.is_some() || payload {
            digests.entry(cat).or_default().entry(source.clone()).or_default().insert(mirror.clone());
        }
        if m.origin.tag.is_some() || payload {
            tags.entry(cat).or_default().entry(source).or_default().insert(mirror);
        }
    }
    let mut out = Vec::new();
    for (groups, kind, short, field) in [
        (&digests, "ImageDigestMirrorSet", "idms", "imageDigestMirrors"),
        (&tags, "ImageTagMirrorSet", "itms", "imageTagMirrors"),
    ] {
        for (cat, entries) in groups {
            let list: Vec<Value> = entries.iter().map(|(s, ms)| json!({ "source": s, "mirrors": ms })).collect();
            out.push(json!({
                "apiVersion": "config.openshift.io/v1",
                "kind": kind,
                "metadata": metadata(&naming.name(&format!("{short}-{cat}-0")), None),
                "spec": { field: list },
            }));
        }
    }
    out
}
