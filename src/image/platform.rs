//! Platforms: which entries of a multi-arch index an image set keeps. Pure.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// An `{os, architecture}` pair selecting entries of a multi-arch index.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct PlatformSelector {
    /// Operating system, e.g. linux.
    #[schemars(length(min = 1, max = 32))]
    pub os: String,
    /// Architecture, e.g. amd64 or arm64.
    #[schemars(length(min = 1, max = 32))]
    pub architecture: String,
}
