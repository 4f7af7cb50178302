//! Scale-out on Kubernetes Jobs: the copy of an image set split into shards that run as the
//! indexes of one Indexed Job, each pod `imageset-operator shard` over its part of the plan
//! (`controller::shard_worker`). What they exchange, how a plan is cut, the Job: no I/O here.
//!
//! What travels between the operator and its shard pods goes through the API server, in the
//! operator's namespace: each index's request as a ConfigMap the operator writes (gzip JSON), each
//! shard's progress and report as a ConfigMap the shard writes. The cache is the operator's
//! volume when it is ReadWriteMany, or the pod's own `emptyDir`. Credentials are never in
//! either: each shard reads the image set's own Secret through the API, as the operator does.

pub mod job;
pub mod split;

use std::io::{Read as _, Write as _};

use serde::{Deserialize, Serialize};

use crate::copy::{ItemResult, Outcome};
use crate::image::PlatformSelector;
use crate::pipeline::Request;
use crate::plan::{CopyItem, ImageKind};

/// Key of the request in its ConfigMap.
pub const REQUEST_KEY: &str = "request.json.gz";
/// Key of a shard's progress in its report ConfigMap (plain JSON, small).
pub const PROGRESS_KEY: &str = "progress.json";
/// Key of a shard's final report in its report ConfigMap.
pub const REPORT_KEY: &str = "report.json.gz";
/// Label of every object of a shard Job: the Job's name.
pub const JOB_LABEL: &str = "mirror.openshift.io/shard-job";
/// Label naming the image set's uid.
pub const SET_UID_LABEL: &str = "mirror.openshift.io/image-set-uid";
/// Annotation naming the image set (`namespace/name`).
pub const SET_ANNOTATION: &str = "mirror.openshift.io/image-set";
/// Annotation naming the plan digest a Job copies.
pub const PLAN_ANNOTATION: &str = "mirror.openshift.io/plan-digest";

/// The image set a shard works for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRef {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid: a shard refuses to work for a namesake created after the plan.
    pub uid: String,
}

/// One image of a shard, as the plan has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// What it is part of.
    pub kind: ImageKind,
    /// The reference it stands for.
    pub origin: String,
    /// Where it is read.
    pub source: String,
    /// Where it goes.
    pub destination: String,
    /// Platforms kept (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<PlatformSelector>,
}

impl From<&CopyItem> for Item {
    fn from(i: &CopyItem) -> Self {
        Item {
            kind: i.kind,
            origin: i.origin.clone(),
            source: i.source.clone(),
            destination: i.destination.clone(),
            platforms: i.platforms.clone(),
        }
    }
}

impl From<Item> for CopyItem {
    fn from(i: Item) -> Self {
        CopyItem {
            kind: i.kind,
            origin: i.origin,
            source: i.source,
            destination: i.destination,
            platforms: i.platforms,
        }
    }
}

/// Everything the shards of one Job need, but credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardRequest {
    /// The image set.
    pub image_set: SetRef,
    /// The Job's name (reports are named after it).
    pub job: String,
    /// The run's pipeline request (destination, naming, parallelism).
    pub request: Request,
    /// The completion index this request is for (one request per index).
    pub index: usize,
    /// Its images.
    pub items: Vec<Item>,
    /// Where the operator placed blobs several shards need: `(registry, digest, repository)`.
    #[serde(default)]
    pub homes: Vec<(String, String, String)>,
    /// Request slots per registry of each shard pod (the operator's cap divided by the pods
    /// that run at once).
    pub max_in_flight: usize,
    /// Attempts per registry request after the first.
    pub retry_times: u32,
    /// Seconds a registry may send nothing before a request is abandoned.
    pub stall_timeout_secs: u64,
    /// Seconds a registry may fail every attempt before a shard gives up on it.
    pub unreachable_after_secs: u64,
    /// Whether the cache volume is the operator's own (shared), so that what it holds is
    /// proved readable with the image set's credentials before it is used.
    pub shared_cache: bool,
}

/// What became of one image in a shard (reports list them in the shard's order, so the image
/// itself is not repeated: reports stay small at thousands of images).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemReport {
    /// `Copied`, `AlreadyPresent` or `Failed`.
    pub outcome: String,
    /// Stable reason of a failure.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// What went wrong.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// Digest now at the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Its media type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// Progress of a shard, written every few seconds while it runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardProgress {
    /// The pod writing it.
    pub pod: String,
    /// Earlier attempts of this index that failed (the Job's per-index failure count).
    pub failures_before: u32,
    /// Images done.
    pub images_done: u64,
    /// Images of the shard.
    pub images_total: u64,
    /// Blob bytes in place.
    pub bytes_done: u64,
    /// Blob bytes needed.
    pub bytes_total: u64,
    /// Blobs fetched from sources.
    pub blobs_fetched: u64,
    /// True once the report is written.
    pub done: bool,
}

/// A shard's final report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardReport {
    /// Completion index.
    pub index: usize,
    /// Per image, in the order of the shard's images in the request.
    pub results: Vec<ItemReport>,
}

/// `Failed` reasons a report may carry, as the engine names them; anything else reads back as
/// `ShardFailed`.
const REASONS: &[&str] = &[
    "Transport",
    "RegistryStatus",
    "AccessDenied",
    "NotFound",
    "DigestMismatch",
    "UnsupportedManifest",
    "RegistryUnreachable",
    "SourceBlocked",
    "Io",
    "BundleSkipped",
    "CatalogRebuildFailed",
    "ShardFailed",
];

/// Characters of a failure's message a report keeps.
pub const MAX_MESSAGE: usize = 1000;

/// The stable reason a report names.
pub fn reason_of(s: &str) -> &'static str {
    REASONS.iter().find(|r| **r == s).copied().unwrap_or("ShardFailed")
}

impl ItemReport {
    /// A result as a report carries it.
    pub fn of(r: &ItemResult) -> ItemReport {
        let (outcome, reason, message) = match &r.outcome {
            Outcome::Copied => ("Copied", "", String::new()),
            Outcome::AlreadyPresent => ("AlreadyPresent", "", String::new()),
            Outcome::Failed { reason, message } => ("Failed", *reason, message.clone()),
        };
        // A registry's error body can be long; the start says what went wrong.
        let message = match message.char_indices().nth(MAX_MESSAGE) {
            Some((at, _)) => format!("{}...", &message[..at]),
            None => message,
        };
        ItemReport {
            outcome: outcome.into(),
            reason: reason.into(),
            message,
            digest: r.digest.clone(),
            media_type: r.media_type.clone(),
        }
    }

    /// The result it reports for `item` (contents left empty: the operator knows them).
    pub fn result(self, item: CopyItem) -> ItemResult {
        let outcome = match self.outcome.as_str() {
            "Copied" => Outcome::Copied,
            "AlreadyPresent" => Outcome::AlreadyPresent,
            _ => Outcome::Failed { reason: reason_of(&self.reason), message: self.message },
        };
        ItemResult { item, outcome, digest: self.digest, media_type: self.media_type, contents: Vec::new() }
    }
}

/// JSON, gzipped.
pub fn pack<T: Serialize>(value: &T) -> Vec<u8> {
    let json = serde_json::to_vec(value).expect("serialisable");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&json).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

/// The reverse of [`pack`].
pub fn unpack<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut json).map_err(|e| format!("gzip: {e}"))?;
    serde_json::from_slice(&json).map_err(|e| format!("json: {e}"))
}

/// The name of a shard's report ConfigMap.
pub fn report_name(job: &str, index: usize) -> String {
    format!("{job}-report-{index}")
}

/// The prefix of a Job's request ConfigMaps (its pods' `--request`).
pub fn request_prefix(job: &str) -> String {
    format!("{job}-request")
}

/// The name of the request ConfigMap of index `index` of a Job (`--request` names the prefix).
pub fn request_name(prefix: &str, index: usize) -> String {
    format!("{prefix}-{index}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_survive_a_report_and_unknown_reasons_read_as_shard_failed() {
        let item = CopyItem {
            kind: ImageKind::Additional,
            origin: "docker://src/a:1".into(),
            source: "docker://src/a:1".into(),
            destination: "docker://dst/a:1".into(),
            platforms: vec![],
        };
        let failed = ItemResult {
            item: item.clone(),
            outcome: Outcome::Failed { reason: "NotFound", message: "gone".into() },
            digest: None,
            media_type: None,
            contents: vec![],
        };
        let back: ItemReport = unpack(&pack(&ItemReport::of(&failed))).unwrap();
        let r = back.result(item.clone());
        assert_eq!(r.item, item);
        let long = ItemResult {
            outcome: Outcome::Failed { reason: "RegistryStatus", message: "x".repeat(5000) },
            ..failed.clone()
        };
        assert_eq!(ItemReport::of(&long).message.len(), MAX_MESSAGE + 3);
        assert_eq!(r.outcome, Outcome::Failed { reason: "NotFound", message: "gone".into() });
        assert_eq!(reason_of("SomethingNew"), "ShardFailed");
    }

    /// Requests and reports travel in ConfigMaps (1 MiB): 10,000 release components with
    /// digests that share nothing fit in one request, and a shard's report of them too.
    #[test]
    fn ten_thousand_images_fit_in_a_request_and_a_report() {
        let items: Vec<Item> = (0..10_000u32)
            .map(|i| {
                let d = crate::image::manifest::sha256_digest(&i.to_le_bytes());
                let src = format!("docker://quay.io/openshift-release-dev/ocp-v4.0-art-dev@{d}");
                Item {
                    kind: ImageKind::ReleaseContent,
                    origin: src.clone(),
                    source: src,
                    destination: format!(
                        "docker://registry.example.com:5000/mirror/openshift-release-dev/ocp-v4.0-art-dev:{}",
                        &d[7..]
                    ),
                    platforms: vec![],
                }
            })
            .collect();
        let items_len = items.len();
        let request = ShardRequest {
            image_set: SetRef { namespace: "ns".into(), name: "n".into(), uid: "u".into() },
            job: "j".into(),
            request: crate::pipeline::Request::collecting(
                crate::plan::Destination::Registry("registry.example.com:5000/mirror".into()),
                "/w".into(),
                "ns/n".into(),
                Default::default(),
                0,
            ),
            index: 0,
            items,
            homes: vec![],
            max_in_flight: 4,
            retry_times: 5,
            stall_timeout_secs: 30,
            unreachable_after_secs: 30,
            shared_cache: true,
        };
        let packed = pack(&request).len();
        assert!(packed / 3 * 4 < 900 * 1024, "request of 10,000 images: {packed} bytes gzipped");
        let report = ShardReport {
            index: 0,
            results: (0..10_000u32)
                .map(|i| ItemReport {
                    outcome: "Copied".into(),
                    reason: String::new(),
                    message: String::new(),
                    digest: Some(crate::image::manifest::sha256_digest(&i.to_be_bytes())),
                    media_type: Some("application/vnd.docker.distribution.manifest.v2+json".into()),
                })
                .collect(),
        };
        let packed_report = pack(&report).len();
        assert!(packed_report / 3 * 4 < 900 * 1024, "report of 10,000 images: {packed_report} bytes gzipped");
        assert_eq!(items_len, 10_000);
        eprintln!("10,000 images: request {packed} bytes, report {packed_report} bytes (gzip)");
    }
}
