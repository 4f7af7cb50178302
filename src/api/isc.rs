//! The ImageSetConfiguration custom resource.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::mirror::Mirror;
use super::status::ImageSetStatus;
use super::validate::{
    ABSOLUTE_ARCHIVE_PATH, CLIMBING_ARCHIVE_PATH, FROM_NEEDS_REGISTRY, SHARDS_NEED_MIRROR_TO_MIRROR,
};

/// The CEL rule of a `file://` field: a relative path (archives live under the operator's
/// archive directory; `validate::archive_url` says the same).
fn absolute_rule(field: &str) -> kube::core::Rule {
    kube::core::Rule::new("!self.startsWith('file:///')")
        .message(kube::core::Message::Message(format!("{field}: {ABSOLUTE_ARCHIVE_PATH}")))
}

/// The CEL rule of the spec: archives are imported into a registry.
fn from_rule() -> kube::core::Rule {
    kube::core::Rule::new("!has(self.from) || self.destination.startsWith('docker://')")
        .message(kube::core::Message::Message(format!("spec.from: {FROM_NEEDS_REGISTRY}")))
        .field_path(".from")
}

/// The CEL rule of `shards`: shards copy registry to registry.
fn shards_rule() -> kube::core::Rule {
    kube::core::Rule::new(
        "!has(self.shards) || self.shards == 1 || (self.destination.startsWith('docker://') && !has(self.from))",
    )
    .message(kube::core::Message::Message(format!("spec.shards: {SHARDS_NEED_MIRROR_TO_MIRROR}")))
    .field_path(".shards")
}

/// The CEL rule of a `file://` field: no `..` component.
fn climb_rule(field: &str) -> kube::core::Rule {
    kube::core::Rule::new("!self.matches('^file://(.*/)?[.][.](/.*)?$')")
        .message(kube::core::Message::Message(format!("{field}: {CLIMBING_ARCHIVE_PATH}")))
}

/// What to mirror (`mirror`, oc-mirror's block unchanged), where to, and how the operator runs it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mirror.openshift.io",
    version = "v2alpha1",
    kind = "ImageSetConfiguration",
    namespaced,
    status = "ImageSetStatus",
    shortname = "isc",
    category = "mirror",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Destination","type":"string","jsonPath":".spec.destination"}"#,
    printcolumn = r#"{"name":"Images","type":"integer","jsonPath":".status.counts.total"}"#,
    printcolumn = r#"{"name":"Failed","type":"integer","jsonPath":".status.counts.failed"}"#,
    printcolumn = r#"{"name":"Copying","type":"integer","description":"Images done so far in the run under way","jsonPath":".status.progress.imagesDone"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = from_rule())]
#[x_kube(validation = shards_rule())]
pub struct ImageSetConfigurationSpec {
    /// What to mirror: oc-mirror v2's `mirror:` block, field for field.
    // In the cluster a CatalogSource template is a ConfigMap key (the controller's
    // `template_ref`); a file path is the command line's and means nothing here.
    #[x_kube(validation = Rule::new("!has(self.operators) || self.operators.all(o, !has(o.targetCatalogSourceTemplate) || o.targetCatalogSourceTemplate.matches('^configmap:[^/]+/[^/]+$'))").message("operators[].targetCatalogSourceTemplate must be configmap:<name>/<key>: a key of a ConfigMap in the image set's namespace"))]
    pub mirror: Mirror,
    /// Where to: `docker://registry[:port][/prefix]`, or `file://DIR` to write archives
    /// (mirror to disk) into DIR under the operator's archive directory (`--archive-dir`), in
    /// the image set's namespace's directory there: `<archive-dir>/<namespace>/DIR`. DIR is
    /// relative: no leading `/`, no `..`.
    #[schemars(regex(pattern = r"^(docker://[^/\s]+(/[^\s]*)?|file://[^\s]+)$"), length(max = 1024))]
    #[x_kube(validation = absolute_rule("spec.destination"))]
    #[x_kube(validation = climb_rule("spec.destination"))]
    pub destination: String,
    /// Disk to mirror: `file://DIR`, a directory of archives (`mirror_NNNNNN.tar`) under the
    /// operator's archive directory, `<archive-dir>/<namespace>/DIR`, imported into
    /// `spec.destination`, which must then be a registry. Archives written by an image set's
    /// `file://` destination or by `imageset-operator mirror ... file://DIR` are both read; they
    /// carry the release signatures (older ones have them beside, in `working-dir/signatures`,
    /// also read). Additional images are imported as `spec.mirror` names them; releases and
    /// operators as the archives hold them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^file://[^\s]+$"), length(max = 1024))]
    #[x_kube(validation = absolute_rule("spec.from"))]
    #[x_kube(validation = climb_rule("spec.from"))]
    pub from: Option<String>,
    /// Archive chunk size in GiB for `file://` destinations (0 or unset: 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub archive_size: Option<i64>,
    /// A `kubernetes.io/dockerconfigjson` Secret in this namespace with pull and push credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<LocalObjectReference>,
    /// Per-registry connection settings (TLS, insecure).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["host"]))]
    pub registries: Vec<RegistrySettings>,
    /// How often a finished image set is checked again for new upstream content: a Go duration
    /// (e.g. 6h, 1h30m) greater than 0 and at most 8784h (366 days). Unset: 6h.
    // The pattern and length come first; the CEL rule bounds what matches the pattern (so a
    // malformed value gets one error, not two) to what `api::parse_duration` accepts. CEL's
    // duration() fails on values beyond Go's ~292 years: the apiserver then refuses with this
    // rule's message as well. The length keeps the rule's cost estimate small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new("!self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$') || (duration(self) > duration('0s') && duration(self) <= duration('8784h'))").message("spec.resyncInterval must be a duration greater than 0s and at most 8784h (366 days), e.g. 6h or 1h30m"))]
    pub resync_interval: Option<String>,
    /// Plan only: status and a ConfigMap show what would be mirrored and applied.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Fold destination paths deeper than this many components (oc-mirror's --max-nested-paths).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 64))]
    pub max_nested_paths: Option<u32>,
    /// Cincinnati update-graph URL (oc-mirror's UPDATE_URL_OVERRIDE).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"), length(max = 2048))]
    pub update_url: Option<String>,
    /// Where source images are pulled from: a containers-registries.conf(5) version 2 file
    /// (`[[registry]]` mirrors tried in order before the source itself, `blocked` sources
    /// refused), as a key of a ConfigMap in this namespace, written `configmap:<name>/<key>`.
    /// Credentials for the mirrors come from `authSecretRef`, their TLS settings from
    /// `registries` (or `insecure` in the file). Image names never change: IDMS, ITMS and
    /// CatalogSources keep the original names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^configmap:[^/]+/[^/]+$"), length(max = 512))]
    pub registries_conf: Option<String>,
    /// How generated cluster resources are applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_resources: Option<ClusterResources>,
    /// Copy in this many pods at once: the images before bundles (release payloads and
    /// components, related, additional and chart images) are split into shards, a destination
    /// repository never split, and run as one Indexed Job in the operator's namespace. 1 (the
    /// default): in the operator's own pod. At most the operator's `--max-shards`;
    /// mirror-to-mirror only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub shards: Option<u32>,
}

/// A reference to an object in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectReference {
    /// Object name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Connection settings for one registry host.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RegistrySettings {
    /// Host and optional port, e.g. `mirror.example.com:8443`.
    #[schemars(regex(pattern = r"^[A-Za-z0-9.-]+(:[0-9]+)?$"), length(min = 1, max = 253))]
    pub host: String,
    /// Plain HTTP, or HTTPS without certificate verification. Only for registries you trust.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure: bool,
    /// A ConfigMap key in this namespace holding extra PEM CA certificates for this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<ConfigMapKeyReference>,
}

/// A key of a ConfigMap in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyReference {
    /// ConfigMap name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within it.
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Policy for the cluster objects an image set produces.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterResources {
    /// Apply (default) or Hold: hold changes for review; status shows the pending difference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apply: Option<ApplyPolicy>,
    /// Delete (default) or Keep the produced objects when the image set is deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<DeletionPolicy>,
    /// With `apply: Hold`: the held changes to apply once, as `status.pendingChanges.digest`
    /// shows them. Changes with another digest stay held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_changes_digest: Option<String>,
}

/// Whether generated objects are applied automatically.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ApplyPolicy {
    /// Apply as soon as a run produces them.
    #[default]
    Apply,
    /// Keep them pending until the policy changes.
    Hold,
}

/// What happens to produced objects when the image set is deleted.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Remove them.
    #[default]
    Delete,
    /// Leave them in the cluster.
    Keep,
}
