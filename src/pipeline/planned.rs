//! What planning a request yields, and what collection and the copy add to it.

use std::collections::BTreeMap;

use crate::api::mirror::{BlockedImage, Helm, Operator, Platform};
use crate::catalog;
use crate::collect::FetchedCatalog;
use crate::plan::{self, BundleNeeds, CopyPlan, ImageKind};
use crate::render::CatalogTemplate;

/// What planning a request yields, and what collection and the copy add to it.
#[derive(Debug)]
pub struct Planned {
    /// The copy plan.
    pub plan: CopyPlan,
    /// `archiveSize` (GiB).
    pub archive_size: Option<i64>,
    /// Parts of the image set left out, with why.
    pub left_out: Vec<String>,
    /// CatalogSource templates, read and checked before anything is copied.
    pub templates: Vec<CatalogTemplate>,
    /// Operator catalogs still to collect (fetch, select, rebuild) before copying.
    pub operators: Vec<Operator>,
    /// `blockedImages`, applied again to what collection adds.
    pub blocked_images: Vec<BlockedImage>,
    /// What each selected bundle needs (filled by collection).
    pub needs: Vec<BundleNeeds>,
    /// Rebuilt catalogs (filled by collection), to rebuild again without bundles the copy
    /// could not mirror.
    pub rebuilt: Vec<Rebuilt>,
    /// Platform releases still to collect.
    pub platform: Option<Platform>,
    /// Helm charts still to collect.
    pub helm: Option<Helm>,
    /// Helm charts collected (filled by collection): pushed to the destination after the
    /// images, or archived.
    pub charts: Vec<super::helm::Chart>,
    /// How collection reaches servers that are not registries (chart repositories): the run's
    /// TLS rules, CAs and credentials. None: system roots, no credentials.
    pub access: Option<crate::registry::ClientOptions>,
    /// Disk to mirror: the images of the archives, unpacked into the cache during collection
    /// (name -> digest, media type), so that the copy does not unpack them again.
    pub archived: Option<std::collections::HashMap<String, (String, String)>>,
    /// Verified release signatures by payload digest (for the signature ConfigMap).
    pub signatures: BTreeMap<String, Vec<Vec<u8>>>,
    /// What collection wants the user to hear (a missing upgrade path, an EUS range).
    pub warnings: Vec<String>,
    /// Parts that failed before copying (release collection): kind, stable reason (for
    /// conditions and metrics) and message.
    pub failures: Vec<(ImageKind, &'static str, String)>,
}

impl Planned {
    /// Adds what collection found, minus blocked images (kept sorted by kind).
    pub fn add(&mut self, items: Vec<plan::CopyItem>) {
        let mut all = std::mem::take(&mut self.plan.items);
        all.extend(items);
        let blocked = std::mem::take(&mut self.plan.blocked);
        self.plan = plan::apply_blocked(all, &self.blocked_images);
        self.plan.blocked.splice(0..0, blocked);
    }
}

/// A filtered catalog rebuilt into the cache, kept so that it can be rebuilt again without
/// bundles the copy could not mirror.
#[derive(Debug)]
pub struct Rebuilt {
    /// Index of its entry in `mirror.operators`.
    pub index: usize,
    /// The catalog as fetched.
    pub fetched: FetchedCatalog,
    /// What is selected from it.
    pub selection: catalog::Selection,
    /// Digest of the rebuilt image in the cache.
    pub digest: String,
}
