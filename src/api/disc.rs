//! The DeleteImageSetConfiguration custom resource.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::isc::{LocalObjectReference, RegistrySettings};
use super::mirror::Delete;
use super::status::DeleteStatus;

/// What to remove from a mirror registry. Nothing is deleted until the plan shown in
/// status is approved by copying its digest into `approvedPlanDigest`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mirror.openshift.io",
    version = "v2alpha1",
    kind = "DeleteImageSetConfiguration",
    namespaced,
    status = "DeleteStatus",
    shortname = "disc",
    category = "mirror",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Registry","type":"string","jsonPath":".spec.destination"}"#,
    printcolumn = r#"{"name":"To Delete","type":"integer","jsonPath":".status.counts.toDelete"}"#,
    printcolumn = r#"{"name":"Protected","type":"integer","jsonPath":".status.counts.protected"}"#,
    printcolumn = r#"{"name":"Deleted","type":"integer","jsonPath":".status.counts.deleted"}"#,
    printcolumn = r#"{"name":"Plan","type":"string","jsonPath":".status.planDigest","priority":1}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct DeleteImageSetConfigurationSpec {
    /// What to delete: oc-mirror v2's `delete:` block, field for field.
    pub delete: Delete,
    /// The registry to delete from: `docker://registry[:port][/prefix]`.
    #[schemars(regex(pattern = r"^docker://[^/\s]+(/[^\s]*)?$"), length(max = 1024))]
    pub destination: String,
    /// A `kubernetes.io/dockerconfigjson` Secret in this namespace with delete credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<LocalObjectReference>,
    /// Per-registry connection settings (TLS, insecure).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["host"]))]
    pub registries: Vec<RegistrySettings>,
    /// Deletion runs only when this equals `status.planDigest`: review the plan, then approve it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^sha256:[a-f0-9]{64}$"))]
    pub approved_plan_digest: Option<String>,
    /// Fold destination paths deeper than this many components (as when the images were mirrored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 64))]
    pub max_nested_paths: Option<u32>,
}
