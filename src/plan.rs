//! Step 3: an image set and a destination become a copy plan with oc-mirror's naming.
//! Pure: no client, no clock, no environment.

use sha2::{Digest, Sha256};

use crate::api::mirror::{AdditionalImage, BlockedImage, Delete, Mirror, Operator, PlatformSelector};
use crate::image::{ImageRef, RefError, Transport};

pub use crate::image::ImageKind;

/// Where images go.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Destination {
    /// A registry, with an optional path prefix: `host[:port][/prefix]`.
    Registry(String),
    /// Archives in a directory (mirror-to-disk); images are named under oc-mirror's
    /// `localhost:55000` cache registry, as in its mapping files.
    Disk,
}

/// The registry root oc-mirror names images under when mirroring to disk.
pub const DISK_ROOT: &str = crate::image::DISK_ROOT;

impl Destination {
    /// Parses a `docker://` or `file://` argument.
    pub fn parse(arg: &str) -> Result<Self, PlanError> {
        if let Some(rest) = arg.strip_prefix("docker://") {
            let rest = rest.trim_end_matches('/');
            if rest.is_empty() || rest.starts_with('/') {
                return Err(PlanError::Destination(arg.to_string()));
            }
            Ok(Destination::Registry(rest.to_string()))
        } else if arg.starts_with("file://") {
            Ok(Destination::Disk)
        } else {
            Err(PlanError::Destination(arg.to_string()))
        }
    }

    fn root(&self) -> &str {
        match self {
            Destination::Registry(r) => r,
            Destination::Disk => DISK_ROOT,
        }
    }
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Bad destination argument.
    #[error(
        "destination {0:?} must have either file:// (mirror to disk) or docker:// (mirror to registry) protocol prefixes"
    )]
    Destination(String),
    /// Bad image reference.
    #[error("{field}: {source}")]
    Reference {
        /// Field holding the reference.
        field: String,
        /// Parse error.
        source: RefError,
    },
    /// Nothing left to copy.
    #[error("no images to copy")]
    Empty,
}

/// One image to copy.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CopyItem {
    /// What it is part of.
    pub kind: ImageKind,
    /// The upstream reference it stands for (what IDMS/ITMS map from), with transport prefix.
    pub origin: String,
    /// Where it is copied from: the origin, or its name in the archives for disk-to-mirror.
    pub source: String,
    /// Destination, with transport prefix.
    pub destination: String,
    /// Platforms to keep (all when empty).
    pub platforms: Vec<PlatformSelector>,
}

/// The images of a run, in copy order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyPlan {
    /// Items to copy.
    pub items: Vec<CopyItem>,
    /// Items removed by `blockedImages`, with the pattern that matched.
    pub blocked: Vec<(CopyItem, String)>,
}

impl CopyPlan {
    /// oc-mirror's `mapping.txt`: `<source>=<destination>` per line.
    pub fn mapping_txt(&self) -> String {
        self.items.iter().map(|i| format!("{}={}\n", i.source, i.destination)).collect()
    }

    /// `sha256:` of the mapping and platform filters: equal plans, equal digests.
    pub fn digest(&self) -> String {
        let mut h = Sha256::new();
        for i in &self.items {
            h.update(i.source.as_bytes());
            h.update(b"=");
            h.update(i.destination.as_bytes());
            for p in &i.platforms {
                h.update(format!(" {}/{}", p.os, p.architecture).as_bytes());
            }
            h.update(b"\n");
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }
}

/// Folds a destination path deeper than `max` components (oc-mirror's `--max-nested-paths`):
/// the first `max - 1` are kept and the rest joined with `-`.
pub fn fold_nested_paths(path: &str, max: u32) -> String {
    let parts: Vec<&str> = path.split('/').collect();
    let max = max as usize;
    if max == 0 || parts.len() <= max {
        return path.to_string();
    }
    let mut out: Vec<String> = parts[..max - 1].iter().map(|s| s.to_string()).collect();
    out.push(parts[max - 1..].join("-"));
    out.join("/")
}

fn destination_for(root: &str, path: &str, tag: &str, max_nested: u32) -> String {
    let (host, prefix) = root.split_once('/').map_or((root, ""), |(h, p)| (h, p));
    let full = if prefix.is_empty() { path.to_string() } else { format!("{prefix}/{path}") };
    format!("docker://{host}/{}:{tag}", fold_nested_paths(&full, max_nested))
}

/// Where an image is pulled from: itself, or by digest alone when it names both a tag and a
/// digest (oc-mirror pulls by digest and keeps the tag for the destination).
fn pull_source(r: &ImageRef) -> String {
    if r.tag.is_some() && r.digest.is_some() { ImageRef { tag: None, ..r.clone() }.to_string() } else { r.to_string() }
}

/// oc-mirror's warning for each planned image that names both a tag and a digest. Pure.
pub fn tag_and_digest_warnings(items: &[CopyItem]) -> Vec<String> {
    items
        .iter()
        .filter_map(|i| {
            let r = ImageRef::parse(&i.origin).ok()?;
            (r.tag.is_some() && r.digest.is_some() && r.transport == Transport::Docker).then(|| {
                format!(
                    "{} has both tag and digest : using digest to pull, but tag only for mirroring",
                    i.origin.trim_start_matches("docker://")
                )
            })
        })
        .collect()
}

fn additional_item(
    img: &AdditionalImage,
    idx: usize,
    dest: &Destination,
    max_nested: u32,
    from_disk: bool,
) -> Result<CopyItem, PlanError> {
    let r = ImageRef::parse(&img.name)
        .map_err(|source| PlanError::Reference { field: format!("additionalImages[{idx}].name"), source })?;
    let path = match (&img.target_repo, r.transport) {
        (Some(t), _) => t.clone(),
        (None, Transport::Oci) => r.path.trim_start_matches('/').to_string(),
        (None, Transport::Docker) => r.path.clone(),
    };
    let tag = img.target_tag.clone().unwrap_or_else(|| r.destination_tag());
    Ok(generic_item(ImageKind::Additional, &r, (&path, &tag), dest, max_nested, from_disk, &img.platforms))
}

/// An image named by oc-mirror's generic rule (additional and helm images): `path:tag` below
/// the destination root; pulled from its origin, or (`from_disk`) from its name in the archives.
fn generic_item(
    kind: ImageKind,
    r: &ImageRef,
    (path, tag): (&str, &str),
    dest: &Destination,
    max_nested: u32,
    from_disk: bool,
    platforms: &[PlatformSelector],
) -> CopyItem {
    let max_nested = if matches!(dest, Destination::Disk) { 0 } else { max_nested };
    let source = if from_disk { destination_for(DISK_ROOT, path, tag, 0) } else { pull_source(r) };
    CopyItem {
        kind,
        origin: r.to_string(),
        source,
        destination: destination_for(dest.root(), path, tag, max_nested),
        platforms: platforms.to_vec(),
    }
}

/// Where charts go below the destination root, one repository per chart
/// (`<root>/helm-charts/<name>:<version>`): what `helm pull oci://<root>/helm-charts/<name>
/// --version <version>` reads.
pub const CHARTS_REPO: &str = "helm-charts";

/// The destination of a chart pushed as an OCI artifact (`tag` is the version as a tag).
pub fn chart_destination(dest: &Destination, name: &str, tag: &str, max_nested: u32) -> String {
    let max_nested = if matches!(dest, Destination::Disk) { 0 } else { max_nested };
    destination_for(dest.root(), &format!("{CHARTS_REPO}/{name}"), tag, max_nested)
}

/// Plans the images a chart deploys, named as additional images are (oc-mirror's 4.1);
/// `from_disk` (disk-to-mirror) takes each from its name in the archives. Returns the items
/// and the images that are not references the copy can use, with why.
pub fn plan_helm(
    images: &[String],
    platforms: &[PlatformSelector],
    dest: &Destination,
    max_nested: u32,
    from_disk: bool,
) -> (Vec<CopyItem>, Vec<(String, RefError)>) {
    let mut items = Vec::new();
    let mut refused = Vec::new();
    for image in images {
        match ImageRef::parse(image) {
            Ok(r) if r.transport == Transport::Docker && !r.registry.is_empty() => {
                let tag = r.destination_tag();
                items.push(generic_item(ImageKind::Helm, &r, (&r.path, &tag), dest, max_nested, from_disk, platforms));
            }
            Ok(_) => refused.push((image.clone(), RefError::Format(image.clone()))),
            Err(e) => refused.push((image.clone(), e)),
        }
    }
    (items, refused)
}

/// A catalog entry of an image set, after fetch and selection: what planning needs.
#[derive(Clone, Debug)]
pub struct CatalogInput<'a> {
    /// Index of the entry in `mirror.operators`.
    pub index: usize,
    /// The entry.
    pub op: &'a Operator,
    /// Selected bundles: (package, bundle name, bundle image, related images).
    pub bundles: Vec<(String, String, String, Vec<String>)>,
    /// Digest of the rebuilt (filtered) catalog in the cache; None when the catalog is taken whole.
    pub rebuilt: Option<String>,
    /// Digest of a catalog taken whole from an `oci://` layout, imported into the cache.
    pub imported: Option<String>,
}

/// What a bundle needs: the items that must be present before it is worth copying.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleNeeds {
    /// Index of its catalog entry in `mirror.operators`.
    pub catalog: usize,
    /// Package (operator) name.
    pub package: String,
    /// Bundle name.
    pub bundle: String,
    /// Origin of the bundle image.
    pub image: String,
    /// Origins of its related images.
    pub related: Vec<String>,
}

/// A short, stable name for a catalog filter: the entry without its destination fields.
/// Two image sets filtering one catalog differently get different rebuilt catalogs.
pub fn filter_id(op: &Operator) -> String {
    let mut o = op.clone();
    o.target_catalog = None;
    o.target_tag = None;
    o.target_catalog_source_template = None;
    let bytes = serde_json::to_vec(&o).expect("an operator entry serializes");
    hex::encode(Sha256::digest(&bytes))[..12].to_string()
}

/// Destination repository path and tag of a catalog (rebuilt or whole).
pub fn catalog_destination(op: &Operator, rebuilt: Option<&str>) -> Result<(String, String), RefError> {
    let r = ImageRef::parse(&op.catalog)?;
    let path = match (&op.target_catalog, r.transport) {
        (Some(t), _) => t.clone(),
        (None, Transport::Oci) => r.path.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string(),
        (None, Transport::Docker) => r.path.clone(),
    };
    let tag = match (&op.target_tag, rebuilt, &r.tag, r.transport) {
        (Some(t), _, _, _) => t.clone(),
        (None, None, _, Transport::Oci) => "latest".to_string(),
        (None, None, _, Transport::Docker) => r.destination_tag(),
        (None, Some(_), Some(t), _) => format!("{t}-{}", filter_id(op)),
        (None, Some(_), None, Transport::Oci) => format!("latest-{}", filter_id(op)),
        (None, Some(d), None, Transport::Docker) => d.replacen(':', "-", 1),
    };
    Ok((path, tag))
}

/// Plans the images of operator catalogs: related images, bundles and the catalog itself
/// (the rebuilt one comes from the cache, named under oc-mirror's cache registry).
pub fn plan_operators(
    catalogs: &[CatalogInput],
    dest: &Destination,
    max_nested: u32,
) -> Result<(Vec<CopyItem>, Vec<BundleNeeds>), PlanError> {
    let max_nested = if matches!(dest, Destination::Disk) { 0 } else { max_nested };
    let mut items = Vec::new();
    let mut needs = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for c in catalogs {
        let field = format!("operators[{}]", c.index);
        let generic = |image: &str, kind: ImageKind| -> Result<CopyItem, PlanError> {
            let r = ImageRef::parse(image)
                .map_err(|source| PlanError::Reference { field: format!("{field} (image {image})"), source })?;
            Ok(CopyItem {
                kind,
                origin: r.to_string(),
                source: pull_source(&r),
                destination: destination_for(dest.root(), &r.path, &r.destination_tag(), max_nested),
                platforms: c.op.platforms.clone(),
            })
        };
        for (package, bundle, image, related) in &c.bundles {
            let mut need = BundleNeeds {
                catalog: c.index,
                package: package.clone(),
                bundle: bundle.clone(),
                image: String::new(),
                related: vec![],
            };
            if !image.is_empty() {
                let item = generic(image, ImageKind::OperatorBundle)?;
                need.image = item.origin.clone();
                if seen.insert(item.origin.clone()) {
                    items.push(item);
                }
            }
            for rel in related.iter().filter(|r| !r.is_empty() && *r != image) {
                let item = generic(rel, ImageKind::OperatorRelatedImage)?;
                need.related.push(item.origin.clone());
                if seen.insert(item.origin.clone()) {
                    items.push(item);
                }
            }
            needs.push(need);
        }
        let mut item = catalog_item(c.index, c.op, c.rebuilt.as_deref(), dest, max_nested)?;
        if let (Some(d), None) = (&c.imported, &c.rebuilt) {
            // Served from the cache, like a rebuilt catalog: a layout is no registry.
            let field = format!("operators[{}].catalog", c.index);
            let (path, _) = catalog_destination(c.op, None).map_err(|source| PlanError::Reference { field, source })?;
            item.source = format!("docker://{DISK_ROOT}/{path}@{d}");
        }
        items.push(item);
    }
    Ok((items, needs))
}

/// The copy of a catalog entry's catalog: the rebuilt image from the cache (by digest), or the
/// original when the catalog is taken whole.
pub fn catalog_item(
    index: usize,
    op: &Operator,
    rebuilt: Option<&str>,
    dest: &Destination,
    max_nested: u32,
) -> Result<CopyItem, PlanError> {
    let max_nested = if matches!(dest, Destination::Disk) { 0 } else { max_nested };
    let field = format!("operators[{index}].catalog");
    let r = ImageRef::parse(&op.catalog).map_err(|source| PlanError::Reference { field: field.clone(), source })?;
    let (path, tag) = catalog_destination(op, rebuilt).map_err(|source| PlanError::Reference { field, source })?;
    let source = match rebuilt {
        Some(d) => format!("docker://{DISK_ROOT}/{path}@{d}"),
        None => r.to_string(),
    };
    Ok(CopyItem {
        kind: ImageKind::OperatorCatalog,
        origin: r.to_string(),
        source,
        destination: destination_for(dest.root(), &path, &tag, max_nested),
        platforms: Vec::new(),
    })
}

/// The release repositories below the destination root (oc-mirror's names).
pub const RELEASE_IMAGES_REPO: &str = "openshift/release-images";
/// Where every release component goes, told apart by tag.
pub const RELEASE_REPO: &str = "openshift/release";

/// Plans release payloads, their components and KubeVirt disks (oc-mirror's naming: payloads
/// in `openshift/release-images:<release tag>`, components in `openshift/release:<release
/// tag>-<name>`), and the graph image built into the cache.
pub fn plan_releases(
    collected: &crate::release::Collected,
    platforms: &[PlatformSelector],
    dest: &Destination,
    max_nested: u32,
) -> Result<Vec<CopyItem>, PlanError> {
    let max_nested = if matches!(dest, Destination::Disk) { 0 } else { max_nested };
    let mut items = Vec::new();
    for r in &collected.releases {
        let field = format!("release {}", r.selected.version);
        let parsed = |image: &str| {
            ImageRef::parse(image)
                .map_err(|source| PlanError::Reference { field: format!("{field} (image {image})"), source })
        };
        let p = parsed(&r.selected.payload)?;
        let pinned = format!("docker://{}/{}@{}", p.registry, p.path, r.digest);
        items.push(CopyItem {
            kind: ImageKind::Release,
            origin: pinned.clone(),
            source: pinned,
            destination: destination_for(dest.root(), RELEASE_IMAGES_REPO, &r.tag, max_nested),
            platforms: platforms.to_vec(),
        });
        for c in &r.components {
            let img = parsed(&c.image)?;
            items.push(CopyItem {
                kind: ImageKind::ReleaseContent,
                origin: img.to_string(),
                source: img.to_string(),
                destination: destination_for(dest.root(), RELEASE_REPO, &format!("{}-{}", r.tag, c.name), max_nested),
                platforms: platforms.to_vec(),
            });
        }
        let several = r.kubevirt.len() > 1;
        for (arch, image) in &r.kubevirt {
            let img = parsed(image)?;
            let tag = if several {
                format!("{}-kube-virt-container-{arch}", r.tag)
            } else {
                format!("{}-kube-virt-container", r.tag)
            };
            items.push(CopyItem {
                kind: ImageKind::KubeVirt,
                origin: img.to_string(),
                source: img.to_string(),
                destination: destination_for(dest.root(), RELEASE_REPO, &tag, max_nested),
                platforms: Vec::new(),
            });
        }
    }
    if let Some(d) = &collected.graph_image {
        let source = format!("docker://{DISK_ROOT}/{}@{d}", crate::release::graph_image::REPOSITORY);
        items.push(CopyItem {
            kind: ImageKind::Graph,
            origin: source.clone(),
            source,
            destination: destination_for(
                dest.root(),
                crate::release::graph_image::REPOSITORY,
                crate::release::graph_image::TAG,
                max_nested,
            ),
            platforms: Vec::new(),
        });
    }
    Ok(items)
}

/// Disk-to-mirror: the release images an archive holds (named under the disk root by the
/// mirror-to-disk run), planned to the destination with the same names. Archives that record
/// kinds are read by kind; older ones by oc-mirror's release repositories.
pub fn plan_archived_releases(
    images: &[crate::cache::archive::ArchivedImage],
    dest: &Destination,
    max_nested: u32,
) -> Vec<CopyItem> {
    let release = [ImageKind::Release, ImageKind::ReleaseContent, ImageKind::KubeVirt, ImageKind::Graph];
    plan_archived(images, dest, max_nested, |img, path, tag| match img.kind {
        Some(k) => release.contains(&k).then_some(k),
        None => match path {
            RELEASE_IMAGES_REPO => Some(ImageKind::Release),
            RELEASE_REPO if tag.contains("-kube-virt-container") => Some(ImageKind::KubeVirt),
            RELEASE_REPO => Some(ImageKind::ReleaseContent),
            p if p == crate::release::graph_image::REPOSITORY => Some(ImageKind::Graph),
            _ => None,
        },
    })
}

/// Disk-to-mirror: the images an archive recorded as `kinds` (by the mirror-to-disk run that
/// wrote it), planned to the destination under the same names.
pub fn plan_archived_kinds(
    images: &[crate::cache::archive::ArchivedImage],
    kinds: &[ImageKind],
    dest: &Destination,
    max_nested: u32,
) -> Vec<CopyItem> {
    plan_archived(images, dest, max_nested, |img, _, _| img.kind.filter(|k| kinds.contains(k)))
}

/// Archived images that `kind_of(image, path, tag)` keeps, from their disk-root names to the
/// destination.
fn plan_archived(
    images: &[crate::cache::archive::ArchivedImage],
    dest: &Destination,
    max_nested: u32,
    kind_of: impl Fn(&crate::cache::archive::ArchivedImage, &str, &str) -> Option<ImageKind>,
) -> Vec<CopyItem> {
    let mut items = Vec::new();
    for img in images {
        let Some(rest) = img.name.strip_prefix(&format!("{DISK_ROOT}/")) else { continue };
        let Some((path, tag)) = rest.rsplit_once(':') else { continue };
        let Some(kind) = kind_of(img, path, tag) else { continue };
        items.push(CopyItem {
            kind,
            origin: img.origin.clone(),
            source: format!("docker://{}", img.name),
            destination: destination_for(dest.root(), path, tag, max_nested),
            platforms: Vec::new(),
        });
    }
    items
}

/// Whether a reference is blocked: the pattern matches anywhere in origin or destination,
/// transport prefix stripped (oc-mirror's unanchored match).
fn blocked_by<'a>(item: &CopyItem, patterns: &'a [(regex::Regex, String)]) -> Option<&'a str> {
    let strip = |s: &str| s.split_once("://").map_or(s, |(_, r)| r).to_string();
    let (src, dst) = (strip(&item.origin), strip(&item.destination));
    patterns.iter().find(|(re, _)| re.is_match(&src) || re.is_match(&dst)).map(|(_, p)| p.as_str())
}

/// Plans the parts of an image set that need no network: additional images, minus blocked
/// images. `from_disk` (disk-to-mirror) takes each image from its name in the archives.
pub fn plan_additional(
    mirror: &Mirror,
    dest: &Destination,
    max_nested: u32,
    from_disk: bool,
) -> Result<CopyPlan, PlanError> {
    let mut items = Vec::new();
    for (i, img) in mirror.additional_images.iter().enumerate() {
        items.push(additional_item(img, i, dest, max_nested, from_disk)?);
    }
    Ok(apply_blocked(items, &mirror.blocked_images))
}

/// Plans what a `delete:` block removes from a registry (its additional images; no blocking).
pub fn plan_delete(delete: &Delete, dest: &Destination, max_nested: u32) -> Result<CopyPlan, PlanError> {
    let m = Mirror { additional_images: delete.additional_images.clone(), ..Default::default() };
    plan_additional(&m, dest, max_nested, false)
}

/// Removes blocked images, drops exact duplicates and sorts by kind (stable within a kind).
pub fn apply_blocked(items: Vec<CopyItem>, blocked: &[BlockedImage]) -> CopyPlan {
    let patterns: Vec<(regex::Regex, String)> =
        blocked.iter().filter_map(|b| regex::Regex::new(&b.name).ok().map(|re| (re, b.name.clone()))).collect();
    let mut plan = CopyPlan::default();
    let mut seen = std::collections::HashSet::new();
    for item in items {
        if let Some(p) = blocked_by(&item, &patterns) {
            let p = p.to_string();
            plan.blocked.push((item, p));
        } else if seen.insert((item.origin.clone(), item.destination.clone())) {
            plan.items.push(item);
        }
    }
    plan.items.sort_by_key(|i| i.kind);
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:61b8f5e1a3b5dbd9e2c35fd448dc5106337d7a299873dd3a6f0cd8d4891ecc27";

    fn mirror(yaml: &str) -> Mirror {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn an_image_with_tag_and_digest_is_pulled_by_digest_and_mirrored_under_its_tag() {
        let both = format!("quay.io/ns/rel:1.2@{D}");
        let op = Operator { catalog: "quay.io/cat/index:v1".into(), ..Default::default() };
        let bundles = vec![("p".to_string(), "p.v1".to_string(), format!("quay.io/ns/bundle@{D}"), vec![both.clone()])];
        let input = CatalogInput { index: 0, op: &op, bundles, rebuilt: None, imported: None };
        let dest = Destination::Registry("r.example.com/m".into());
        let (items, _) = plan_operators(&[input], &dest, 0).unwrap();
        let rel = items.iter().find(|i| i.kind == ImageKind::OperatorRelatedImage).unwrap();
        assert_eq!(rel.source, format!("docker://quay.io/ns/rel@{D}"));
        assert_eq!(rel.origin, format!("docker://{both}"));
        assert_eq!(rel.destination, "docker://r.example.com/m/ns/rel:1.2");
        assert_eq!(
            tag_and_digest_warnings(&items),
            [format!("{both} has both tag and digest : using digest to pull, but tag only for mirroring")]
        );
        let m = mirror(&format!("additionalImages:\n- name: {both}\n"));
        let p = plan_additional(&m, &dest, 0, false).unwrap();
        assert_eq!(p.items[0].source, format!("docker://quay.io/ns/rel@{D}"));
        assert_eq!(p.items[0].destination, "docker://r.example.com/m/ns/rel:1.2");
    }

    #[test]
    fn oc_mirror_naming_for_additional_images() {
        let m = mirror(&format!(
            "additionalImages:\n- name: registry.redhat.io/ubi9/ubi:latest\n- name: quay.io/openshifttest/hello-openshift@{D}\n- name: quay.io/a/b:1\n  targetRepo: base/b\n  targetTag: v1\n"
        ));
        let plan =
            plan_additional(&m, &Destination::parse("docker://mirror.example.com:8443/ns").unwrap(), 0, false).unwrap();
        let hex = D.trim_start_matches("sha256:");
        assert_eq!(
            plan.mapping_txt(),
            format!(
                "docker://registry.redhat.io/ubi9/ubi:latest=docker://mirror.example.com:8443/ns/ubi9/ubi:latest\n\
                 docker://quay.io/openshifttest/hello-openshift@{D}=docker://mirror.example.com:8443/ns/openshifttest/hello-openshift:sha256-{hex}\n\
                 docker://quay.io/a/b:1=docker://mirror.example.com:8443/ns/base/b:v1\n"
            )
        );
        let disk = plan_additional(&m, &Destination::Disk, 2, false).unwrap();
        assert_eq!(disk.items[0].destination, "docker://localhost:55000/ubi9/ubi:latest");
    }

    #[test]
    fn helm_images_are_named_like_additional_images_and_charts_get_their_own_repository() {
        let images = [
            "ghcr.io/stefanprodan/podinfo:6.14.1".to_string(),
            format!("registry.k8s.io/ingress-nginx/controller:v1.15.1@{D}"),
            "nginx:1.25".to_string(),
            "giantswarm/tiny-tools".to_string(),
        ];
        let dest = Destination::Registry("mirror.example.com:8443/ns".into());
        let (items, refused) = plan_helm(&images, &[], &dest, 0, false);
        let pairs: Vec<(&str, &str)> = items.iter().map(|i| (i.source.as_str(), i.destination.as_str())).collect();
        assert_eq!(
            pairs,
            [
                (
                    "docker://ghcr.io/stefanprodan/podinfo:6.14.1",
                    "docker://mirror.example.com:8443/ns/stefanprodan/podinfo:6.14.1"
                ),
                (
                    &*format!("docker://registry.k8s.io/ingress-nginx/controller@{D}"),
                    "docker://mirror.example.com:8443/ns/ingress-nginx/controller:v1.15.1"
                ),
            ]
        );
        assert!(items.iter().all(|i| i.kind == ImageKind::Helm));
        assert_eq!(items[1].origin, format!("docker://{}", images[1]));
        let refused: Vec<&str> = refused.iter().map(|(i, _)| i.as_str()).collect();
        assert_eq!(refused, ["nginx:1.25", "giantswarm/tiny-tools"]);
        let m = mirror("additionalImages:\n- name: ghcr.io/stefanprodan/podinfo:6.14.1\n");
        assert_eq!(plan_additional(&m, &dest, 0, false).unwrap().items[0].destination, items[0].destination);
        let (disk, _) = plan_helm(&images[..1], &[], &dest, 0, true);
        assert_eq!(disk[0].source, "docker://localhost:55000/stefanprodan/podinfo:6.14.1");
        assert_eq!(
            chart_destination(&dest, "podinfo", "6.14.1", 0),
            "docker://mirror.example.com:8443/ns/helm-charts/podinfo:6.14.1"
        );
        assert_eq!(
            chart_destination(&Destination::Disk, "podinfo", "6.14.1", 2),
            "docker://localhost:55000/helm-charts/podinfo:6.14.1"
        );
        assert_eq!(
            chart_destination(&dest, "podinfo", "6.14.1", 2),
            "docker://mirror.example.com:8443/ns/helm-charts-podinfo:6.14.1"
        );
    }

    #[test]
    fn nested_paths_fold_like_oc_mirror() {
        assert_eq!(fold_nested_paths("ns/openshift/release", 2), "ns/openshift-release");
        assert_eq!(fold_nested_paths("a/b", 2), "a/b");
        assert_eq!(fold_nested_paths("a/b/c/d", 3), "a/b/c-d");
        assert_eq!(fold_nested_paths("a/b/c", 0), "a/b/c");
    }

    #[test]
    fn blocked_images_match_anywhere_in_source_or_destination() {
        let m = mirror(
            "additionalImages:\n- name: quay.io/x/ubi8-debug:1\n- name: quay.io/x/keep:1\n  targetRepo: blocked/keep\n- name: quay.io/x/ok:1\nblockedImages:\n- name: '-debug'\n- name: '^mirror.example.com/blocked'\n",
        );
        let plan = plan_additional(&m, &Destination::Registry("mirror.example.com".into()), 0, false).unwrap();
        assert_eq!(plan.items.len(), 1);
        assert_eq!(plan.blocked.len(), 2);
        assert_eq!(plan.items[0].source, "docker://quay.io/x/ok:1");
    }

    #[test]
    fn disk_to_mirror_takes_archive_names_and_blocks_by_origin_or_destination() {
        let m = mirror(
            "additionalImages:\n- name: quay.io/x/a:1\n- name: quay.io/x/b:1\nblockedImages:\n- name: '^reg.example.com/ns/x/b'\n",
        );
        let plan = plan_additional(&m, &Destination::Registry("reg.example.com/ns".into()), 0, true).unwrap();
        assert_eq!(plan.blocked.len(), 1);
        assert_eq!(plan.items.len(), 1);
        assert_eq!(plan.items[0].source, "docker://localhost:55000/x/a:1");
        assert_eq!(plan.items[0].origin, "docker://quay.io/x/a:1");
        assert_eq!(plan.items[0].destination, "docker://reg.example.com/ns/x/a:1");
    }

    #[test]
    fn plan_digest_is_stable_and_sensitive() {
        let m = mirror("additionalImages:\n- name: quay.io/a/b:1\n");
        let d = Destination::Registry("r".into());
        let a = plan_additional(&m, &d, 0, false).unwrap().digest();
        assert_eq!(a, plan_additional(&m, &d, 0, false).unwrap().digest());
        assert_ne!(a, plan_additional(&m, &Destination::Registry("s".into()), 0, false).unwrap().digest());
    }
}
