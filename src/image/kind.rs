//! What an image is part of. Pure.

/// What an image is part of; also the order oc-mirror copies in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum ImageKind {
    /// A release component image.
    ReleaseContent,
    /// A KubeVirt container disk.
    KubeVirt,
    /// A release payload.
    Release,
    /// The Cincinnati graph-data image.
    Graph,
    /// An image an operator bundle refers to.
    OperatorRelatedImage,
    /// An additional image.
    Additional,
    /// An image a helm chart refers to.
    Helm,
    /// An operator bundle image.
    OperatorBundle,
    /// An operator catalog image.
    OperatorCatalog,
}
