//! The delete workflow as a library. A `delete:` block is planned through the same collectors
//! as a mirror (releases from the update graph, operators from their catalogs, additional
//! images); catalog images are never listed. Each listed image is then resolved, at the
//! registry, to the manifest digest deleting it would remove; an image a live image set still
//! needs there is `Protected`; the rest are removed with one manifest `DELETE` each.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::Error;
use super::planned::Planned;
use super::request::Request;
use crate::api::mirror::{Delete, Mirror};
use crate::cache::Cache;
use crate::image::manifest::{self, Parsed};
use crate::image::{ImageRef, Transport};
use crate::plan::{CopyItem, ImageKind};
use crate::registry::{Client, RegistryError};

/// oc-mirror's `DeleteImageList` (`working-dir/delete/delete-images.yaml`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeleteImageList {
    /// `mirror.openshift.io/v2alpha1`.
    pub api_version: String,
    /// `DeleteImageList`.
    pub kind: String,
    /// Images to delete, sorted by `imageReference`, one per reference.
    #[serde(default)]
    pub items: Vec<DeleteItem>,
}

/// One image of a delete list.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct DeleteItem {
    /// The upstream reference the image stands for.
    pub image_name: String,
    /// The reference to delete, `docker://` included.
    pub image_reference: String,
    /// oc-mirror's image type (`ocpRelease`, `operatorBundle`, `generic`, ...).
    #[serde(rename = "type")]
    pub image_type: String,
}

impl DeleteImageList {
    /// A list of `items`, sorted by reference and one per reference (oc-mirror's order).
    pub fn new(mut items: Vec<DeleteItem>) -> Self {
        items.sort_by(|a, b| a.image_reference.cmp(&b.image_reference));
        items.dedup_by(|a, b| a.image_reference == b.image_reference);
        DeleteImageList { api_version: crate::api::API_VERSION.into(), kind: "DeleteImageList".into(), items }
    }

    /// Reads a list written by `delete --generate` (or by oc-mirror).
    pub fn parse(text: &str) -> Result<Self, String> {
        let list: DeleteImageList = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
        if list.kind != "DeleteImageList" {
            return Err(format!("kind {:?}: expected DeleteImageList", list.kind));
        }
        Ok(list)
    }

    /// The list as YAML.
    pub fn to_yaml(&self) -> String {
        crate::api::to_yaml_lines(self).expect("a delete list serialises")
    }
}

/// oc-mirror's name of an image type in delete lists.
pub fn type_name(k: ImageKind) -> &'static str {
    match k {
        ImageKind::ReleaseContent | ImageKind::KubeVirt => "ocpReleaseContent",
        ImageKind::Release => "ocpRelease",
        ImageKind::Graph => "cincinnatiGraph",
        ImageKind::OperatorRelatedImage => "operatorRelatedImage",
        ImageKind::Additional => "generic",
        ImageKind::Helm => "helmImage",
        ImageKind::OperatorBundle => "operatorBundle",
        ImageKind::OperatorCatalog => "operatorCatalog",
    }
}

/// The mirror block a `delete:` block is collected as (oc-mirror coerces it the same way).
pub fn as_mirror(d: &Delete) -> Mirror {
    Mirror {
        platform: d.platform.clone(),
        operators: d.operators.clone(),
        additional_images: d.additional_images.clone(),
        helm: d.helm.clone(),
        ..Default::default()
    }
}

/// Plans a `delete:` block: collects it like a mirror (best effort: what could be collected
/// is listed, with a warning for what could not) and lists every image except catalogs.
/// Returns the list and summary lines.
pub async fn generate(
    delete: &Delete,
    req: &Request,
    client: &Arc<Client>,
    cache: &Arc<Cache>,
) -> Result<(DeleteImageList, Vec<String>), Error> {
    generate_with(delete, req, client, cache, None).await
}

/// [`generate`], reaching chart repositories with `access` (the run's TLS rules, CAs and
/// credentials; None: system roots, no credentials).
pub async fn generate_with(
    delete: &Delete,
    req: &Request,
    client: &Arc<Client>,
    cache: &Arc<Cache>,
    access: Option<crate::registry::ClientOptions>,
) -> Result<(DeleteImageList, Vec<String>), Error> {
    // What was mirrored was selected from the graphs the mirror run kept: read those first.
    let mut req = req.clone();
    req.releases.kept_graphs_first = true;
    let req = &req;
    let mut planned: Planned = super::plan(&as_mirror(delete), req)?;
    planned.access = access;
    let mut lines: Vec<String> = planned.left_out.iter().map(|l| format!("warning: {l}")).collect();
    match super::collect(req, client, cache, &mut planned).await {
        Ok(l) => lines.extend(l),
        Err(e) if planned.plan.items.is_empty() => return Err(e),
        Err(e) => lines.push(format!("warning: {e}")),
    }
    for w in &planned.warnings {
        lines.push(format!("warning: {w}"));
    }
    if !planned.failures.is_empty() {
        for (_, _, m) in &planned.failures {
            lines.push(format!("warning: {m}"));
        }
        lines.push("warning: the delete list may be incomplete: some images could not be collected".into());
    }
    let items = list_items(&planned.plan.items);
    Ok((DeleteImageList::new(items), lines))
}

/// The delete items of planned images: every image but operator catalogs (deleting a
/// package never deletes its catalog).
pub fn list_items(items: &[CopyItem]) -> Vec<DeleteItem> {
    items
        .iter()
        .filter(|i| i.kind != ImageKind::OperatorCatalog)
        .map(|i| DeleteItem {
            image_name: i.origin.trim_start_matches("docker://").to_string(),
            image_reference: i.destination.clone(),
            image_type: type_name(i.kind).to_string(),
        })
        .collect()
}

/// `--delete-signatures`: the sigstore signature tags (`sha256-<hex>.sig`) of each listed
/// image but the graph image: of its digest (from its name, or as the cache recorded it)
/// and of each child of its index when the cache holds the index.
pub fn signature_items(list: &DeleteImageList, cache: Option<&Cache>) -> Vec<DeleteItem> {
    let names = cache.and_then(|c| c.names().ok()).unwrap_or_default();
    let mut out = Vec::new();
    for item in &list.items {
        if item.image_type == "cincinnatiGraph" || item.image_type == "operatorCatalog" {
            continue;
        }
        let Ok(origin) = ImageRef::parse(&item.image_name) else { continue };
        let Ok(dest) = ImageRef::parse(&item.image_reference) else { continue };
        let digest = origin.digest.clone().or_else(|| names.get(&item.image_name).cloned());
        let Some(digest) = digest else { continue };
        let mut digests = vec![digest.clone()];
        if let Some(c) = cache
            && let Ok(bytes) = c.read(&digest)
            && let Ok(Parsed::Index { children }) = manifest::parse(&bytes, &manifest::media_type_of(&bytes, None))
        {
            digests.extend(children.into_iter().map(|(d, _)| d.digest));
        }
        for d in digests {
            let tag = format!("{}.sig", d.replacen(':', "-", 1));
            out.push(DeleteItem {
                image_name: format!("{}:{tag}", origin.name()),
                image_reference: format!("docker://{}:{tag}", dest.name()),
                image_type: item.image_type.clone(),
            });
        }
    }
    out
}

/// Where one item is: its registry, repository, and the tag or digest it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// Registry host (and port).
    pub host: String,
    /// Repository path below the host.
    pub repo: String,
    /// The tag or digest the item names.
    pub reference: String,
}

impl Target {
    /// `host/repo`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.host, self.repo)
    }
}

/// oc-mirror's safety checks: the item's destination is a `docker://` reference under the
/// given registry (`host[:port][/prefix]`); release components lie exactly in
/// `<registry>/openshift/release` and release payloads in `<registry>/openshift/release-images`.
pub fn check_item(item: &DeleteItem, registry: &str) -> Result<Target, String> {
    let r = &item.image_reference;
    if !r.starts_with("docker://") {
        return Err("a delete reference must use the docker:// transport".into());
    }
    let parsed = ImageRef::parse(r).map_err(|e| e.to_string())?;
    if parsed.transport != Transport::Docker {
        return Err("a delete reference must use the docker:// transport".into());
    }
    let registry = registry.trim_start_matches("docker://").trim_end_matches('/');
    let name = parsed.name();
    let exact = match item.image_type.as_str() {
        "ocpReleaseContent" => Some(format!("{registry}/openshift/release")),
        "ocpRelease" => Some(format!("{registry}/openshift/release-images")),
        _ => None,
    };
    match exact {
        Some(want) if name != want => {
            return Err(format!("{} images must be in {want}", item.image_type));
        }
        None if !name.starts_with(&format!("{registry}/")) => {
            return Err(format!("not under the registry {registry} given on the command line"));
        }
        _ => {}
    }
    let reference = parsed.digest.clone().or(parsed.tag.clone()).unwrap_or_else(|| "latest".into());
    Ok(Target { host: parsed.registry, repo: parsed.path, reference })
}

/// What a plan does with one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Delete the manifest.
    Delete,
    /// Kept: an image set still needs this digest in this repository (its name).
    Protected(String),
    /// Not there (any more).
    Gone,
    /// Refused by the safety checks (why).
    Invalid(String),
    /// The registry could not be read for it (why): the plan is incomplete.
    Unreadable(String),
}

/// One item of a plan, resolved at the registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The listed item.
    pub item: DeleteItem,
    /// Where it is (None when the safety checks refused it).
    pub target: Option<Target>,
    /// The manifest digest deleting it removes (None when gone or refused).
    pub digest: Option<String>,
    /// What happens to it.
    pub action: Action,
}

/// Digests image sets still need, by repository (`host/repo`), with who needs each.
#[derive(Clone, Debug, Default)]
pub struct Protection(BTreeMap<(String, String), String>);

impl Protection {
    /// Records that `who` needs `digest` in `repository` (`host/repo`); the first name stays.
    pub fn add(&mut self, repository: &str, digest: &str, who: &str) {
        self.0.entry((repository.to_string(), digest.to_string())).or_insert_with(|| who.to_string());
    }

    /// Who needs `digest` in `repository`, if anyone.
    pub fn who(&self, repository: &str, digest: &str) -> Option<&str> {
        self.0.get(&(repository.to_string(), digest.to_string())).map(String::as_str)
    }

    /// Records what a mirror record says `who` put at its destination.
    pub fn add_record(&mut self, record: &Record, who: &str) {
        for i in &record.images {
            if let Ok(r) = ImageRef::parse(&i.reference) {
                self.add(&r.name(), &i.digest, who);
            }
        }
    }

    /// Resolves the destinations of `items` (an image set's plan) at the registry and
    /// records each digest found there as needed by `who`. Returns the references that could
    /// not be read (absent ones need no protection).
    pub async fn add_planned(
        &mut self,
        items: &[CopyItem],
        client: &Client,
        who: &str,
        parallel: usize,
    ) -> Vec<(String, String)> {
        let found: Vec<_> = futures::stream::iter(items.iter().map(|i| async move {
            let r = ImageRef::parse(&i.destination).map_err(|e| e.to_string())?;
            if let Some(d) = &r.digest {
                return Ok(Some((r.name(), d.clone())));
            }
            let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
            match client.manifest_head(&r.registry, &r.path, &tag).await {
                Ok(Some((d, _))) => Ok(Some((r.name(), d))),
                Ok(None) => Ok(None),
                Err(e) => Err(format!("{}: {e}", i.destination)),
            }
        }))
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
        let mut failed = Vec::new();
        for (f, i) in found.into_iter().zip(items) {
            match f {
                Ok(Some((repo, digest))) => self.add(&repo, &digest, who),
                Ok(None) => {}
                Err(e) => failed.push((i.destination.clone(), e)),
            }
        }
        failed
    }
}

/// What a mirror run left at its destination, kept in its working directory
/// (`mirrored-images.json`) so that deletes know what a live image set needs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The destination (`docker://...`).
    pub destination: String,
    /// Every image at the destination after the run, with its manifest digest.
    pub images: Vec<RecordedImage>,
}

/// One image of a [`Record`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RecordedImage {
    /// Destination reference (`host/repo:tag` or `host/repo@digest`).
    pub reference: String,
    /// Its manifest digest.
    pub digest: String,
}

/// The file name of a [`Record`] in a working directory.
pub const RECORD_FILE: &str = "mirrored-images.json";

/// Reads the record a mirror run left in `working_dir`, if any.
pub fn read_record(working_dir: &std::path::Path) -> Option<Record> {
    let bytes = std::fs::read(working_dir.join(RECORD_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Resolves every item at the registry: the safety checks, then the digest its reference
/// names there (HEAD), then protection. Items keep their order.
pub async fn resolve(
    list: &DeleteImageList,
    registry: &str,
    client: &Client,
    protection: &Protection,
    parallel: usize,
) -> Vec<Resolved> {
    futures::stream::iter(list.items.iter().map(|item| async move {
        let target = match check_item(item, registry) {
            Ok(t) => t,
            Err(why) => {
                return Resolved { item: item.clone(), target: None, digest: None, action: Action::Invalid(why) };
            }
        };
        let head = client.manifest_head(&target.host, &target.repo, &target.reference).await;
        let (digest, action) = match head {
            Ok(None) => (None, Action::Gone),
            Err(RegistryError::NotFound { .. }) => (None, Action::Gone),
            Err(e) => (None, Action::Unreadable(e.to_string())),
            Ok(Some((d, _))) => {
                let action = match protection.who(&target.repository(), &d) {
                    Some(who) => Action::Protected(who.to_string()),
                    None => Action::Delete,
                };
                (Some(d), action)
            }
        };
        Resolved { item: item.clone(), target: Some(target), digest, action }
    }))
    .buffered(parallel.max(1))
    .collect()
    .await
}

/// One line per item: `<action> <reference> <digest> [<who>]`. Pure.
pub fn plan_lines(resolved: &[Resolved]) -> Vec<String> {
    resolved
        .iter()
        .map(|r| {
            let d = r.digest.as_deref().unwrap_or("-");
            let reference = &r.item.image_reference;
            match &r.action {
                Action::Delete => format!("delete {reference} {d}"),
                Action::Protected(who) => format!("protected {reference} {d} {who}"),
                Action::Gone => format!("gone {reference} -"),
                Action::Invalid(why) => format!("invalid {reference} - {why}"),
                Action::Unreadable(why) => format!("unreadable {reference} - {why}"),
            }
        })
        .collect()
}

/// `sha256:` of the plan: what is deleted, kept and why, digest by digest. A plan whose
/// digest equals an approved one deletes exactly what was reviewed. Pure.
pub fn plan_digest(resolved: &[Resolved]) -> String {
    let mut lines = plan_lines(resolved);
    lines.sort();
    let mut h = Sha256::new();
    for l in lines {
        h.update(l.as_bytes());
        h.update(b"\n");
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// What deleting did to one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Its manifest was deleted.
    Deleted,
    /// It was not there (before, or by the time of the `DELETE`).
    AlreadyGone,
    /// Kept for an image set (its name).
    Protected(String),
    /// Not deleted (why).
    Failed(String),
}

/// Counts of an execution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Manifests deleted.
    pub deleted: u64,
    /// Already absent.
    pub gone: u64,
    /// Kept for image sets.
    pub protected: u64,
    /// Failed.
    pub failed: u64,
}

impl Tally {
    /// Counts outcomes.
    pub fn of(outcomes: &[(Resolved, Outcome)]) -> Tally {
        let mut t = Tally::default();
        for (_, o) in outcomes {
            match o {
                Outcome::Deleted => t.deleted += 1,
                Outcome::AlreadyGone => t.gone += 1,
                Outcome::Protected(_) => t.protected += 1,
                Outcome::Failed(_) => t.failed += 1,
            }
        }
        t
    }
}

/// The registry refuses deletes: nothing was deleted and nothing more is tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "registry {host} refuses to delete manifests ({status}): enable deletion in its configuration (Distribution: storage.delete.enabled: true, or REGISTRY_STORAGE_DELETE_ENABLED=true) and run again"
)]
pub struct Refused {
    /// The registry.
    pub host: String,
    /// What it answered.
    pub status: String,
}

fn refusal(host: &str, e: &RegistryError) -> Option<Refused> {
    match e {
        RegistryError::Status { status: 405, body, .. } => Some(Refused {
            host: host.to_string(),
            status: if body.contains("UNSUPPORTED") { "405 UNSUPPORTED".into() } else { "405".into() },
        }),
        _ => None,
    }
}

/// Deletes what the plan says to delete, `parallel` at a time; one failed item never stops
/// the others. The first `DELETE` goes alone: a registry that refuses deletes (405) stops
/// the execution before anything else is tried.
pub async fn execute(
    resolved: Vec<Resolved>,
    client: &Client,
    parallel: usize,
) -> Result<Vec<(Resolved, Outcome)>, Refused> {
    let mut out: Vec<(Resolved, Outcome)> = Vec::new();
    let mut todo = Vec::new();
    for r in resolved {
        match &r.action {
            Action::Delete => todo.push(r),
            Action::Gone => out.push((r, Outcome::AlreadyGone)),
            Action::Protected(who) => {
                let who = who.clone();
                out.push((r, Outcome::Protected(who)));
            }
            Action::Invalid(why) | Action::Unreadable(why) => {
                let why = why.clone();
                out.push((r, Outcome::Failed(why)));
            }
        }
    }
    let one = |r: Resolved| async move {
        let (Some(t), Some(d)) = (&r.target, &r.digest) else {
            return (r, Ok(Outcome::Failed("nothing to delete".into())));
        };
        let done = match client.manifest_delete(&t.host, &t.repo, d).await {
            Ok(()) => Ok(Outcome::Deleted),
            Err(RegistryError::NotFound { .. }) => Ok(Outcome::AlreadyGone),
            Err(e) => match refusal(&t.host, &e) {
                Some(refused) => Err(refused),
                None => Ok(Outcome::Failed(e.to_string())),
            },
        };
        (r, done)
    };
    let mut rest = todo.into_iter();
    if let Some(first) = rest.next() {
        let (r, done) = one(first).await;
        out.push((r, done?));
    }
    let results: Vec<_> = futures::stream::iter(rest.map(one)).buffer_unordered(parallel.max(1)).collect().await;
    // A registry that starts refusing midway (its configuration changed) fails those items.
    out.extend(results.into_iter().map(|(r, done)| {
        let o = done.unwrap_or_else(|refused| Outcome::Failed(refused.to_string()));
        (r, o)
    }));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(reference: &str, ty: &str) -> DeleteItem {
        DeleteItem { image_name: "quay.io/x/y:1".into(), image_reference: reference.into(), image_type: ty.into() }
    }

    #[test]
    fn long_references_stay_on_their_line() {
        let long = format!("docker://registry.example.com:5000/{}/bundle:v1", "deep/".repeat(30));
        let yaml = DeleteImageList::new(vec![item(&long, "operatorBundle")]).to_yaml();
        assert!(yaml.contains(&format!("  imageReference: {long}\n")), "{yaml}");
    }

    #[test]
    fn lists_are_sorted_by_reference_and_deduplicated_in_oc_mirror_field_order() {
        let list = DeleteImageList::new(vec![
            item("docker://r:5000/b/c:1", "generic"),
            item("docker://r:5000/a/c:1", "generic"),
            item("docker://r:5000/b/c:1", "generic"),
        ]);
        let yaml = list.to_yaml();
        assert_eq!(
            yaml,
            "apiVersion: mirror.openshift.io/v2alpha1\nkind: DeleteImageList\nitems:\n- imageName: quay.io/x/y:1\n  imageReference: docker://r:5000/a/c:1\n  type: generic\n- imageName: quay.io/x/y:1\n  imageReference: docker://r:5000/b/c:1\n  type: generic\n"
        );
        assert_eq!(DeleteImageList::parse(&yaml).unwrap(), list);
        assert!(DeleteImageList::parse("apiVersion: v1\nkind: ConfigMap\n").unwrap_err().contains("DeleteImageList"));
    }

    #[test]
    fn safety_checks_follow_oc_mirror() {
        let reg = "docker://r:5000/mirror";
        let t = check_item(&item("docker://r:5000/mirror/ns/app:1", "generic"), reg).unwrap();
        assert_eq!((t.host.as_str(), t.repo.as_str(), t.reference.as_str()), ("r:5000", "mirror/ns/app", "1"));
        let d = format!("sha256:{}", "a".repeat(64));
        let t = check_item(&item(&format!("docker://r:5000/mirror/openshift/release@{d}"), "ocpReleaseContent"), reg)
            .unwrap();
        assert_eq!(t.reference, d);
        for (r, ty, why) in [
            ("docker://other:5000/mirror/ns/app:1", "generic", "not under the registry r:5000/mirror"),
            ("docker://r:5000/mirrorx/app:1", "generic", "not under the registry"),
            ("r:5000/mirror/ns/app:1", "generic", "docker:// transport"),
            ("docker://r:5000/mirror/openshift/release-images:4.1", "ocpReleaseContent", "must be in"),
            ("docker://r:5000/mirror/openshift/release:4.1", "ocpRelease", "r:5000/mirror/openshift/release-images"),
        ] {
            let e = check_item(&item(r, ty), reg).unwrap_err();
            assert!(e.contains(why), "{r}: {e}");
        }
    }

    fn resolved(reference: &str, digest: Option<&str>, action: Action) -> Resolved {
        let i = item(reference, "generic");
        Resolved { target: check_item(&i, "docker://r").ok(), item: i, digest: digest.map(str::to_string), action }
    }

    #[test]
    fn the_plan_digest_changes_with_any_digest_or_protection_and_not_with_order() {
        let d1 = format!("sha256:{}", "1".repeat(64));
        let d2 = format!("sha256:{}", "2".repeat(64));
        let a = resolved("docker://r/a:1", Some(&d1), Action::Delete);
        let b = resolved("docker://r/b:1", None, Action::Gone);
        let base = plan_digest(&[a.clone(), b.clone()]);
        assert_eq!(base, plan_digest(&[b.clone(), a.clone()]));
        let moved = resolved("docker://r/a:1", Some(&d2), Action::Delete);
        assert_ne!(base, plan_digest(&[moved, b.clone()]));
        let kept = resolved("docker://r/a:1", Some(&d1), Action::Protected("ns/set".into()));
        assert_ne!(base, plan_digest(&[kept, b]));
    }

    #[test]
    fn protection_is_by_repository_and_digest() {
        let mut p = Protection::default();
        let d = format!("sha256:{}", "3".repeat(64));
        p.add_record(
            &Record {
                destination: "docker://r".into(),
                images: vec![RecordedImage { reference: "r/ns/app:1".into(), digest: d.clone() }],
            },
            "team-b/keep",
        );
        assert_eq!(p.who("r/ns/app", &d), Some("team-b/keep"));
        assert_eq!(p.who("r/ns/other", &d), None);
        p.add("r/ns/app", &d, "someone-else");
        assert_eq!(p.who("r/ns/app", &d), Some("team-b/keep"));
    }

    #[test]
    fn catalogs_are_never_listed_and_types_are_oc_mirror_names() {
        let mk = |kind, d: &str| CopyItem {
            kind,
            origin: "docker://quay.io/a/b:1".into(),
            source: "docker://quay.io/a/b:1".into(),
            destination: d.into(),
            platforms: vec![],
        };
        let items = list_items(&[
            mk(ImageKind::OperatorCatalog, "docker://r/a/cat:1"),
            mk(ImageKind::OperatorBundle, "docker://r/a/bundle:1"),
            mk(ImageKind::Graph, "docker://r/openshift/graph-image:latest"),
            mk(ImageKind::KubeVirt, "docker://r/openshift/release:x"),
        ]);
        let types: Vec<&str> = items.iter().map(|i| i.image_type.as_str()).collect();
        assert_eq!(types, ["operatorBundle", "cincinnatiGraph", "ocpReleaseContent"]);
        assert_eq!(items[0].image_name, "quay.io/a/b:1");
    }

    #[test]
    fn signature_tags_come_from_the_origin_digest() {
        let d = format!("sha256:{}", "4".repeat(64));
        let list = DeleteImageList::new(vec![
            DeleteItem {
                image_name: format!("quay.io/a/b@{d}"),
                image_reference: format!("docker://r/a/b:sha256-{}", "4".repeat(64)),
                image_type: "operatorBundle".into(),
            },
            DeleteItem {
                image_name: "quay.io/a/g:latest".into(),
                image_reference: "docker://r/openshift/graph-image:latest".into(),
                image_type: "cincinnatiGraph".into(),
            },
        ]);
        let sigs = signature_items(&list, None);
        assert_eq!(sigs.len(), 1);
        assert_eq!(sigs[0].image_reference, format!("docker://r/a/b:sha256-{}.sig", "4".repeat(64)));
        assert_eq!(sigs[0].image_type, "operatorBundle");
    }
}
