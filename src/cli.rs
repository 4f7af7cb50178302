//! Command-line arguments and environment fallbacks: the only reader of flags and env.
//! Flags of `mirror`, `delete` and `list` follow `oc-mirror --v2`, so existing scripts keep working.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// Mirror OpenShift releases, operator catalogs and images into disconnected registries.
#[derive(Parser, Debug)]
#[command(name = "imageset-operator", version, about, disable_help_subcommand = true)]
pub struct Cli {
    /// Log format.
    #[arg(long, global = true, value_enum, default_value = "plain", env = "LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace) or a tracing filter.
    #[arg(long, global = true, default_value = "info", env = "LOG_LEVEL")]
    pub log_level: String,
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller in a cluster.
    Run(RunArgs),
    /// Print both CustomResourceDefinitions as YAML.
    Crd,
    /// Mirror an image set: to a registry (docker://), to disk (file://), or from disk (--from).
    Mirror(MirrorArgs),
    /// Delete the images of a DeleteImageSetConfiguration from a registry.
    Delete(DeleteArgs),
    /// List releases or operators available upstream.
    #[command(subcommand)]
    List(ListCommand),
    /// Inspect or clean the cache.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Copy one shard of an image set (the command of the operator's shard Jobs).
    #[command(hide = true)]
    Shard(ShardFlags),
    /// Print the version.
    Version,
}

/// `run` flags.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Namespaces whose image sets may produce cluster-wide objects (comma-separated; default: the operator's own).
    #[arg(long, env = "ALLOWED_NAMESPACES", value_delimiter = ',')]
    pub allowed_namespaces: Vec<String>,
    /// The operator's own namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "imageset-operator")]
    pub namespace: String,
    /// Namespaces whose image sets and deletes this installation reconciles (comma-separated;
    /// default: every namespace). Installations side by side must watch disjoint namespaces;
    /// with this set, the operator needs Roles in those namespaces only, not a ClusterRole.
    #[arg(long, env = "WATCH_NAMESPACES", value_delimiter = ',')]
    pub watch_namespaces: Vec<String>,
    /// Cache directory (a PVC in the cluster).
    #[arg(long, env = "CACHE_DIR", default_value = "/var/cache/imageset-operator")]
    pub cache_dir: PathBuf,
    /// Archive directory (a volume): an image set's `file://DIR` destination writes archives to
    /// `<archive-dir>/<namespace>/DIR` and its `spec.from: file://DIR` imports them from there.
    /// Unset: image sets with either are refused (`ArchivesDisabled`).
    #[arg(long, env = "ARCHIVE_DIR")]
    pub archive_dir: Option<PathBuf>,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "ADMIN_ADDR", default_value = "0.0.0.0:8080")]
    pub admin_addr: String,
    /// Take part in leader election (a Lease in --namespace) so that only one replica copies.
    #[arg(long, env = "LEADER_ELECTION", action = clap::ArgAction::Set, default_value_t = true)]
    pub leader_election: bool,
    /// Seconds a leader's lease lasts without renewal before a standby takes over.
    #[arg(long, env = "LEASE_DURATION", default_value_t = 15)]
    pub lease_duration: u64,
    /// Seconds before an image set whose run failed is tried again.
    #[arg(long, env = "RETRY_INTERVAL", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub retry_interval: u64,
    /// Attempts per registry request after the first (oc-mirror's --retry-times).
    #[arg(long, env = "RETRY_TIMES", default_value_t = 5)]
    pub retry_times: u32,
    /// Image sets copied at once (the others wait their turn).
    #[arg(long, env = "MAX_CONCURRENT_RUNS", default_value_t = 2)]
    pub max_concurrent_runs: usize,
    /// Seconds a registry may send nothing before a request is abandoned and retried.
    #[arg(long, env = "STALL_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_timeout: u64,
    /// Seconds a registry may fail every attempt before a run gives up on it (its images
    /// fail at once, and the run ends instead of holding a copy slot).
    #[arg(long, env = "UNREACHABLE_AFTER", default_value_t = 30)]
    pub unreachable_after: u64,
    /// Requests in flight per registry, across every image set and their shard pods (each of
    /// a Job's pods gets its share).
    #[arg(long, env = "REGISTRY_REQUESTS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub registry_requests: u32,
    /// Where releases come from (read once at start; an image set may name its own graph URL).
    #[command(flatten)]
    pub release: ReleaseFlags,
    /// Scale-out on Jobs.
    #[command(flatten)]
    pub shards: ShardSettings,
}

/// `run` flags of scale-out on Jobs (`spec.shards`).
#[derive(Args, Debug, Clone)]
pub struct ShardSettings {
    /// The most shards an image set may ask for (`spec.shards`); 1 turns scale-out off.
    #[arg(long, env = "MAX_SHARDS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_shards: u32,
    /// Shard pods at once across every image set.
    #[arg(long, env = "MAX_SHARD_PODS", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_shard_pods: u32,
    /// The image shard pods run (the operator's own).
    #[arg(long, env = "SHARD_IMAGE")]
    pub shard_image: Option<String>,
    /// The ServiceAccount shard pods run as (the operator's own).
    #[arg(long, env = "SERVICE_ACCOUNT", default_value = "imageset-operator")]
    pub service_account: String,
    /// The shards' cache: `pvc:<claim>` (the operator's ReadWriteMany volume) or `none` (an
    /// emptyDir per pod).
    #[arg(long, env = "SHARD_CACHE", default_value = "none")]
    pub shard_cache: String,
    /// Failed pods per shard before the shard fails.
    #[arg(long, env = "SHARD_BACKOFF", default_value_t = 3)]
    pub shard_backoff: u32,
    /// Seconds a shard Job's pods may be active but not ready (unschedulable, pulling, a claim
    /// their node cannot mount) before the run gives up and deletes the Job.
    #[arg(long, env = "SHARD_START_TIMEOUT", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub shard_start_timeout: u64,
    /// The shard container's resources, as JSON (a ResourceRequirements:
    /// `{"requests":{"cpu":"1","memory":"512Mi"}}`); empty: none.
    #[arg(long, env = "SHARD_RESOURCES", default_value = "")]
    pub shard_resources: String,
}

/// A count, or 0 for an empty value (a fieldRef to an annotation the pod does not have).
fn count_or_none(s: &str) -> Result<u32, std::num::ParseIntError> {
    match s.trim() {
        "" => Ok(0),
        n => n.parse(),
    }
}

/// `shard` flags (what the operator's Jobs pass).
#[derive(Args, Debug, Clone)]
pub struct ShardFlags {
    /// The request ConfigMap.
    #[arg(long)]
    pub request: String,
    /// Its namespace.
    #[arg(long, env = "POD_NAMESPACE")]
    pub namespace: String,
    /// The cache root (the operator's `--cache-dir`).
    #[arg(long, default_value = "/var/cache/imageset-operator")]
    pub cache_dir: PathBuf,
    /// This pod's completion index (set by the Job).
    #[arg(long, env = "JOB_COMPLETION_INDEX")]
    pub index: usize,
    /// This pod's name.
    #[arg(long, env = "POD_NAME", default_value = "")]
    pub pod: String,
    /// Earlier failed pods of this index (from the pod's annotation; empty when it has none).
    #[arg(long, env = "SHARD_FAILURES_BEFORE", default_value = "", value_parser = count_or_none)]
    pub failures_before: u32,
}

/// Flags shared with `oc-mirror --v2`.
#[derive(Args, Debug, Clone)]
pub struct CommonFlags {
    /// Path to the ImageSetConfiguration (oc-mirror file or custom resource).
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// Working directory for mirror-to-mirror: outputs go under DIR/working-dir.
    #[arg(long, value_name = "file://DIR")]
    pub workspace: Option<String>,
    /// Cache directory (default $HOME, or OC_MIRROR_CACHE).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Plan only: write working-dir/dry-run/mapping.txt and touch nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Verify TLS of source registries (false: plain HTTP or unverified TLS).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    pub src_tls_verify: bool,
    /// Verify TLS of the destination registry (false: plain HTTP or unverified TLS).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    pub dest_tls_verify: bool,
    /// Registry credentials (docker config.json); default REGISTRY_AUTH_FILE, then ~/.docker/config.json.
    #[arg(long)]
    pub authfile: Option<PathBuf>,
    /// PEM CA bundle trusted for registries beside the system roots (repeatable).
    #[arg(long, value_name = "PEM")]
    pub registry_ca: Vec<PathBuf>,
    /// Blobs moved at once (1 to 10, at most 8 at once per registry; oc-mirror's default is
    /// 4, ours 8: the copy bench is fastest there). Four times as many images are under way,
    /// so an image waiting for a layer another image is moving holds up no transfer.
    #[arg(long, default_value_t = 8)]
    pub parallel_images: u32,
    /// Layers copied at once per image (1 to 10).
    #[arg(long, default_value_t = 5)]
    pub parallel_layers: u32,
    /// Retries per request.
    #[arg(long, default_value_t = 5)]
    pub retry_times: u32,
    /// No durability work for the cache (not even the marker that lets the next open after
    /// a machine crash find torn entries; `cache verify` still finds them). For scratch
    /// caches such as CI.
    #[arg(long)]
    pub no_cache_fsync: bool,
    /// Seconds a registry may send nothing before the request is abandoned and retried
    /// (a cut download resumes from the byte it reached).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_timeout: u64,
    /// Seconds a registry may fail every attempt (connection errors, timeouts, 5xx) before it
    /// is given up for the rest of the run, so that its images fail at once.
    #[arg(long, default_value_t = 30)]
    pub unreachable_after: u64,
    /// Fold destination paths deeper than this (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub max_nested_paths: u32,
    /// Accepted for compatibility with `oc-mirror --v2` scripts.
    #[arg(long = "v2", hide = true)]
    pub v2: bool,
}

/// `mirror` flags.
#[derive(Args, Debug, Clone)]
pub struct MirrorArgs {
    /// docker://REGISTRY[/PREFIX] or file://DIR.
    pub destination: Option<String>,
    /// Archives to publish (disk-to-mirror).
    #[arg(long, value_name = "file://DIR")]
    pub from: Option<String>,
    /// Mirror-to-disk: only content newer than this date (yyyy-MM-dd).
    #[arg(long)]
    pub since: Option<String>,
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonFlags,
    #[command(flatten)]
    pub release: ReleaseFlags,
}

/// Where releases come from and how they are trusted.
#[derive(Args, Debug, Clone, Default)]
pub struct ReleaseFlags {
    /// OCP update-graph URL (default: the public OpenShift update service).
    #[arg(long, env = "UPDATE_URL_OVERRIDE")]
    pub update_url: Option<String>,
    /// OKD update-graph URL (channels with `type: okd`).
    #[arg(long)]
    pub okd_update_url: Option<String>,
    /// Release signature store base URL (files at <URL>/sha256=<hex>/signature-1).
    #[arg(long, env = "OCP_SIGNATURE_URL")]
    pub release_signature_url: Option<String>,
    /// Armored public key(s) trusted to sign releases, instead of the embedded Red Hat keys.
    #[arg(long, env = "OCP_SIGNATURE_VERIFICATION_PK", value_delimiter = ',')]
    pub release_signature_key: Vec<PathBuf>,
    /// Skip release signature checks (only with `platform.release`).
    #[arg(long)]
    pub ignore_release_signature: bool,
    /// Graph-data tarball URL (for `graph: true`).
    #[arg(long)]
    pub graph_data_url: Option<String>,
    /// Base image of the graph-data image.
    #[arg(long, default_value = "registry.access.redhat.com/ubi9/ubi:latest")]
    pub graph_base_image: String,
    /// Seconds a request to the update graph or signature store may take.
    #[arg(long, default_value_t = 120)]
    pub release_timeout: u64,
}

impl ReleaseFlags {
    /// The release sources these flags name, trusting `ca_files` beside the system roots.
    pub fn sources(&self, ca_files: Vec<PathBuf>) -> crate::pipeline::ReleaseSources {
        crate::pipeline::ReleaseSources {
            update_url: self.update_url.clone(),
            okd_update_url: self.okd_update_url.clone(),
            signature_url: self.release_signature_url.clone(),
            signature_keys: self.release_signature_key.clone(),
            ignore_signatures: self.ignore_release_signature,
            graph_data_url: self.graph_data_url.clone(),
            graph_base_image: self.graph_base_image.clone(),
            timeout_seconds: self.release_timeout,
            ca_files,
            kept_graphs_first: false,
        }
    }
}

/// `delete` flags.
#[derive(Args, Debug, Clone)]
pub struct DeleteArgs {
    /// docker://REGISTRY[/PREFIX] to delete from.
    pub destination: Option<String>,
    /// Write the delete plan (working-dir/delete/) and stop.
    #[arg(long)]
    pub generate: bool,
    /// A delete plan written by --generate, to execute.
    #[arg(long)]
    pub delete_yaml_file: Option<PathBuf>,
    /// Suffix for the generated delete files.
    #[arg(long)]
    pub delete_id: Option<String>,
    /// With --generate: also list the sigstore signature tags (`sha256-<hex>.sig`) of the
    /// images.
    #[arg(long)]
    pub delete_signatures: bool,
    /// When executing: also forget the deleted images in the cache and remove the cache
    /// entries no other image there needs.
    #[arg(long)]
    pub force_cache_delete: bool,
    /// When executing: an ImageSetConfiguration whose images stay (each image it needs in
    /// the registry is kept, with every tag of its digest). Repeatable.
    #[arg(long, value_name = "ISC")]
    pub protect_config: Vec<PathBuf>,
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonFlags,
    /// Release sources (for platform deletes and protected image sets with releases).
    #[command(flatten)]
    pub release: ReleaseFlags,
}

/// `cache` subcommands.
#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// Re-hash every entry and report any whose bytes do not match its digest (exit 1 if so).
    Verify(CacheArgs),
    /// Remove entries no image set references any more.
    Gc(CacheArgs),
}

/// `cache` flags.
#[derive(Args, Debug, Clone)]
pub struct CacheArgs {
    /// The directory given to `mirror --cache-dir` (default $HOME, or OC_MIRROR_CACHE).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
}

/// `list` subcommands.
#[derive(Subcommand, Debug)]
pub enum ListCommand {
    /// Releases of a channel from the update graph.
    Releases(ListReleasesArgs),
    /// Packages, channels and versions of a catalog.
    Operators(ListOperatorsArgs),
    /// The images Helm charts deploy (`.tgz` files or chart directories), found as `mirror`
    /// finds them: default values, oc-mirror's JSONPaths plus `--image-path`. No network.
    HelmImages(ListHelmImagesArgs),
}

/// `list helm-images` flags.
#[derive(Args, Debug, Clone)]
pub struct ListHelmImagesArgs {
    /// Chart archives (`.tgz`) or chart directories.
    #[arg(required = true, value_name = "CHART")]
    pub charts: Vec<PathBuf>,
    /// An extra JSONPath template locating images (oc-mirror's `imagePaths`), e.g.
    /// `{.spec.image}`. Repeatable.
    #[arg(long, value_name = "JSONPATH")]
    pub image_path: Vec<String>,
}

/// `list releases` flags.
#[derive(Args, Debug, Clone)]
pub struct ListReleasesArgs {
    /// Channel (default stable-<version>).
    #[arg(long)]
    pub channel: Option<String>,
    /// OpenShift X.Y version.
    #[arg(long)]
    pub version: Option<String>,
    /// Architectures (amd64, arm64, ppc64le, s390x, multi).
    #[arg(long, value_delimiter = ',', default_value = "amd64")]
    pub filter_by_archs: Vec<String>,
    /// Update-graph URL; default UPDATE_URL_OVERRIDE or the public graph.
    #[arg(long, env = "UPDATE_URL_OVERRIDE")]
    pub update_url: Option<String>,
    /// Accepted for compatibility.
    #[arg(long = "v2", hide = true)]
    pub v2: bool,
}

/// `list operators` flags.
#[derive(Args, Debug, Clone)]
pub struct ListOperatorsArgs {
    /// Catalog image.
    #[arg(long)]
    pub catalog: Option<String>,
    /// Package to show channels of.
    #[arg(long)]
    pub package: Option<String>,
    /// Channel to show versions of (needs --package).
    #[arg(long, requires = "package")]
    pub channel: Option<String>,
    /// Verify TLS of the catalog's registry.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value_t = true, default_missing_value = "true")]
    pub src_tls_verify: bool,
    /// Accepted for compatibility.
    #[arg(long = "v2", hide = true)]
    pub v2: bool,
}

/// Environment the commands read, captured once at the edge.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `OC_MIRROR_CACHE`.
    pub oc_mirror_cache: Option<PathBuf>,
    /// `REGISTRY_AUTH_FILE`.
    pub registry_auth_file: Option<PathBuf>,
    /// `UPDATE_URL_OVERRIDE`.
    pub update_url_override: Option<String>,
    /// `CONTAINERS_REGISTRIES_CONF`.
    pub registries_conf: Option<PathBuf>,
}

impl Env {
    /// Reads the variables the commands use.
    pub fn from_process() -> Self {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        Env {
            home: var("HOME").map(PathBuf::from),
            oc_mirror_cache: var("OC_MIRROR_CACHE").map(PathBuf::from),
            registry_auth_file: var("REGISTRY_AUTH_FILE").map(PathBuf::from),
            update_url_override: var("UPDATE_URL_OVERRIDE").and_then(|v| v.into_string().ok()),
            registries_conf: var("CONTAINERS_REGISTRIES_CONF").map(PathBuf::from),
        }
    }
}
