//! A run of the workflow as data: serialisable, so that it can be handed to another process.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::plan::Destination;

/// The three workflows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mode {
    /// Registry to registry, through the cache.
    MirrorToMirror,
    /// Registry to archives.
    MirrorToDisk,
    /// Archives to registry.
    DiskToMirror,
}

/// Where releases come from and how they are trusted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseSources {
    /// OCP update-graph URL (None: the public OpenShift update service).
    pub update_url: Option<String>,
    /// OKD update-graph URL.
    pub okd_update_url: Option<String>,
    /// Release signature store base URL.
    pub signature_url: Option<String>,
    /// Armored public keys trusted to sign releases (empty: the embedded Red Hat keys).
    pub signature_keys: Vec<PathBuf>,
    /// Skip release signature checks (only with `platform.release`).
    pub ignore_signatures: bool,
    /// Graph-data tarball URL.
    pub graph_data_url: Option<String>,
    /// Base image of the graph-data image.
    pub graph_base_image: String,
    /// Seconds a request to the update graph or signature store may take.
    pub timeout_seconds: u64,
    /// PEM CA bundles trusted beside the system roots.
    pub ca_files: Vec<PathBuf>,
    /// Read update graphs the working directory kept before asking the update service
    /// (deletes).
    #[serde(default)]
    pub kept_graphs_first: bool,
}

/// Which files a run writes into its working directory beside what the next run needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outputs {
    /// `cluster-resources/` (oc-mirror's YAML for `oc apply`).
    pub cluster_resources: bool,
    /// `logs/mirroring_errors_<time>.txt`.
    pub error_log: bool,
}

/// One run of the workflow, as data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Workflow.
    pub mode: Mode,
    /// Destination.
    pub destination: Destination,
    /// Disk-to-mirror: the directory holding the archives.
    pub from: Option<PathBuf>,
    /// Mirror-to-disk: the directory archives are written to.
    pub archive_dir: Option<PathBuf>,
    /// Mirror-to-disk: only content newer than this date (yyyy-MM-dd).
    pub since: Option<String>,
    /// `<root>/working-dir`.
    pub working_dir: PathBuf,
    /// Who asks (an image set's `namespace/name`, or a configuration file): names what the run
    /// records in the cache.
    pub requester: String,
    /// Fold destination paths deeper than this (0: no limit).
    pub max_nested_paths: u32,
    /// Images under way (blobs moved at once).
    pub parallel_images: usize,
    /// Blobs at once per image.
    pub parallel_layers: usize,
    /// Where releases come from.
    pub releases: ReleaseSources,
    /// Prefix of generated object names (empty: oc-mirror's names).
    pub naming_prefix: String,
    /// Files written beside what the next run needs.
    pub outputs: Outputs,
}

impl Request {
    /// A registry-to-registry request that writes none of oc-mirror's files: how a delete is
    /// collected (and the image sets it protects), on the command line and in the cluster.
    /// 8 images and 5 layers at once; callers change what differs.
    pub fn collecting(
        destination: Destination,
        working_dir: PathBuf,
        requester: String,
        releases: ReleaseSources,
        max_nested_paths: u32,
    ) -> Request {
        Request {
            mode: Mode::MirrorToMirror,
            destination,
            from: None,
            archive_dir: None,
            since: None,
            working_dir,
            requester,
            max_nested_paths,
            parallel_images: 8,
            parallel_layers: 5,
            releases,
            naming_prefix: String::new(),
            outputs: Outputs { cluster_resources: false, error_log: false },
        }
    }
}
