//! Status of both kinds: conditions, observedGeneration, counts, bounded failure lists.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The most failures kept in status; the full list is in the run report.
pub const MAX_LISTED_FAILURES: usize = 50;

/// Condition types beside Ready, Progressing and Degraded. `Reconciling` and `Stalled` are
/// kstatus's (sigs.k8s.io/cli-utils/pkg/kstatus): abnormal-true, present only while true.
pub mod conditions {
    /// A run, resync or delete plan is under way (present only then).
    pub const RECONCILING: &str = "Reconciling";
    /// It cannot progress without a change: to the spec, a Secret, the registry's
    /// permissions or an approval (present only then).
    pub const STALLED: &str = "Stalled";
    /// Cluster-object changes are held for review (`clusterResources.apply: Hold`; present
    /// only then).
    pub const CHANGES_HELD: &str = "ChangesHeld";
}

/// Status of an ImageSetConfiguration.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImageSetStatus {
    /// Ready, Progressing and Degraded, with reasons; Reconciling (a run under way), Stalled
    /// (it cannot progress without a change) and ChangesHeld (cluster-object changes held for
    /// review) only while true.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The generation these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Digest of the copy plan of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
    /// Image counts of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<Counts>,
    /// Progress of the run under way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// Images that failed, at most 50; `counts.failed` has the total.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_images: Vec<FailedImage>,
    /// Operators with a bundle that could not be mirrored completely.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incomplete_operators: Vec<String>,
    /// When a run last finished with every image present (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_run_time: Option<String>,
    /// Cluster-object changes held for review (`spec.clusterResources.apply: Hold`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_changes: Option<PendingChanges>,
    /// The shards of the run under way, or of the last run (`spec.shards` above 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["index"]))]
    pub shards: Vec<ShardStatus>,
}

/// One shard of a run: an index of its Job.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// The Job's completion index.
    pub index: u32,
    /// The Job that runs it.
    pub job: String,
    /// Pending, Running, Succeeded or Failed.
    pub phase: String,
    /// Images done.
    pub images_done: u64,
    /// Images of the shard.
    pub images_total: u64,
    /// Images that failed (a Failed shard: all of its images).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub images_failed: u64,
    /// Pods of this index that failed before (the Job retries an index alone).
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub retries: u32,
    /// Blobs this shard fetched from sources.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub blobs_fetched: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// The most held object changes listed in status.
pub const MAX_LISTED_CHANGES: usize = 50;

/// Cluster-object changes a run produced and the policy holds.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PendingChanges {
    /// Digest of these changes: copy it into `spec.clusterResources.approvedChangesDigest` to
    /// apply them.
    pub digest: String,
    /// Whether applying them reboots nodes (an ImageTagMirrorSet created, or any mirror set
    /// changed or deleted).
    pub reboots_nodes: bool,
    /// The changes, at most 50.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<PendingChange>,
}

/// One object's held change.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PendingChange {
    /// Create, Update or Delete.
    pub action: String,
    /// Kind.
    pub kind: String,
    /// Namespace (empty for cluster-scoped objects).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Fields that differ, as paths (`spec.imageDigestMirrors[2].mirrors`), at most 20.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

/// Image counts by outcome.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Counts {
    /// Images in the plan.
    pub total: u64,
    /// Copied in this run.
    pub copied: u64,
    /// Already at the destination.
    pub already_present: u64,
    /// Failed.
    pub failed: u64,
    /// Skipped (e.g. a bundle whose related image failed).
    pub skipped: u64,
}

/// Progress of a run.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Images finished.
    pub images_done: u64,
    /// Images in the plan.
    pub images_total: u64,
    /// Blob bytes in place at the destination: moved, mounted, or found there already.
    pub bytes_done: u64,
    /// Blob bytes the images need at the destination (each blob once), as far as known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes_total: Option<u64>,
}

/// One failed image.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FailedImage {
    /// Source reference.
    pub source: String,
    /// Destination reference.
    pub destination: String,
    /// Why it failed.
    pub reason: String,
}

/// Status of a DeleteImageSetConfiguration.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DeleteStatus {
    /// Ready, Progressing and Degraded, with reasons; Reconciling (planning or deleting) and
    /// Stalled (it cannot progress without a change) only while true.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// The generation these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Digest of the delete plan: copy it into `spec.approvedPlanDigest` to delete exactly
    /// what it lists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
    /// Name of the ConfigMap (beside this object, owned by it) listing every item of the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_config_map: Option<String>,
    /// Counts of the plan, and of the deletion once it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<DeleteCounts>,
    /// The plan's first items (at most 50; the ConfigMap has them all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<PlannedDeletion>,
    /// Deletions that failed, at most 50.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_images: Vec<FailedImage>,
    /// When the approved plan was carried out (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_time: Option<String>,
}

/// Counts of a delete plan and of its execution.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeleteCounts {
    /// Images the delete names.
    pub total: u64,
    /// Images the plan deletes.
    pub to_delete: u64,
    /// Images kept because a live image set still needs them.
    pub protected: u64,
    /// Images already absent from the registry.
    pub already_gone: u64,
    /// Manifests deleted (after approval).
    pub deleted: u64,
    /// Deletions that failed (after approval).
    pub failed: u64,
}

/// The most plan items listed in status.
pub const MAX_LISTED_PLAN: usize = 50;

/// One item of a delete plan.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PlannedDeletion {
    /// `Delete`, `Protected` or `Gone`.
    pub action: String,
    /// The reference at the registry.
    pub reference: String,
    /// The manifest digest it resolves to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// The image set (`namespace/name`) that keeps a protected image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_by: Option<String>,
}
