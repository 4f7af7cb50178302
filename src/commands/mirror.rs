//! `mirror`: validate flags as oc-mirror does, read the image set, plan, and (dry run) write
//! `working-dir/dry-run/mapping.txt`.

use std::path::PathBuf;

use super::{CliError, io_err, working_dir, write_atomic};
use crate::api::load;
use std::collections::BTreeMap;

use crate::api::mirror::{BlockedImage, Mirror, Operator, Platform};
use crate::cli::{Env, MirrorArgs};
use crate::plan::{self, BundleNeeds, CopyPlan, Destination, ImageKind};
use crate::render::CatalogTemplate;

/// The three workflows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Registry to registry, through the cache.
    MirrorToMirror,
    /// Registry to archives.
    MirrorToDisk,
    /// Archives to registry.
    DiskToMirror,
}

/// Words oc-mirror refuses in a `file://` path (they collide with working-dir entries).
const RESERVED_PATH_WORDS: &[&str] = &[
    "cluster-resources",
    "dry-run",
    "graph-preparation",
    "helm",
    "hold-operator",
    "hold-release",
    "delete",
    "logs",
    "operator-catalogs",
    "release-images",
    "signatures",
];

/// What a validated `mirror` invocation will do.
#[derive(Debug)]
pub struct Invocation {
    /// Workflow.
    pub mode: Mode,
    /// Destination.
    pub destination: Destination,
    /// `<root>/working-dir`.
    pub working_dir: PathBuf,
    /// Cache directory.
    pub cache_dir: PathBuf,
    /// The configuration file.
    pub config: PathBuf,
}

/// Checks flags the way oc-mirror does, with its messages where users know them.
pub fn validate_flags(args: &MirrorArgs, env: &Env) -> Result<Invocation, CliError> {
    let c = &args.common;
    let usage = |m: &str| Err(CliError::Usage(m.to_string()));
    let Some(config) = c.config.clone() else {
        return usage("use the --config flag it is mandatory");
    };
    let Some(dest_arg) = args.destination.as_deref() else {
        return usage("a destination is required: docker://REGISTRY[/PREFIX] or file://DIR");
    };
    let destination = Destination::parse(dest_arg)?;
    for (flag, v) in [("parallel-images", c.parallel_images), ("parallel-layers", c.parallel_layers)] {
        if !(1..=10).contains(&v) {
            return Err(CliError::Usage(format!("the flag {flag} must be between the range 1 to 10")));
        }
    }
    if let Some(w) = &c.workspace
        && !w.starts_with("file://")
    {
        return usage("when using --workspace, the file:// prefix is mandatory");
    }
    if let Some(f) = &args.from
        && !f.contains("file://")
    {
        return usage("when using --from, the file:// prefix is mandatory");
    }
    let (mode, root) = match (&destination, &args.from, &c.workspace) {
        (Destination::Disk, Some(_), _) => {
            return usage("when destination is file://, --from is not allowed");
        }
        (Destination::Disk, _, Some(_)) => {
            return usage("when destination is file://, --workspace is not allowed");
        }
        (Destination::Disk, None, None) => (Mode::MirrorToDisk, dest_arg.to_string()),
        (Destination::Registry(_), Some(_), Some(_)) => {
            return usage("--from and --workspace are mutually exclusive");
        }
        (Destination::Registry(_), Some(from), None) => (Mode::DiskToMirror, from.clone()),
        (Destination::Registry(_), None, Some(ws)) => (Mode::MirrorToMirror, ws.clone()),
        (Destination::Registry(_), None, None) => {
            return usage(
                "when destination is docker://, either --from (assumes disk to mirror workflow) or --workspace (assumes mirror to mirror workflow) need to be provided",
            );
        }
    };
    if mode == Mode::MirrorToDisk
        && let Some(w) = RESERVED_PATH_WORDS.iter().find(|w| dest_arg.contains(*w))
    {
        return Err(CliError::Usage(format!("the file:// path must not contain {w:?}")));
    }
    if let Some(since) = &args.since {
        if mode != Mode::MirrorToDisk {
            return usage("--since is only valid for mirror to disk");
        }
        let ok = since.len() == 10
            && since.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
        if !ok {
            return Err(CliError::Usage(format!("--since {since:?} must be a date in the format yyyy-MM-dd")));
        }
    }
    let cache_dir = match (&c.cache_dir, &env.oc_mirror_cache) {
        (Some(_), Some(_)) => return usage("use either --cache-dir or OC_MIRROR_CACHE, not both"),
        (Some(d), None) | (None, Some(d)) => d.clone(),
        (None, None) => env.home.clone().unwrap_or_else(|| PathBuf::from(".")),
    };
    Ok(Invocation { mode, destination, working_dir: working_dir(&root), cache_dir, config })
}

/// What planning an invocation yields.
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
    pub rebuilt: Vec<super::operators::Rebuilt>,
    /// Platform releases still to collect.
    pub platform: Option<Platform>,
    /// Verified release signatures by payload digest (for the signature ConfigMap).
    pub signatures: BTreeMap<String, Vec<Vec<u8>>>,
    /// Parts that failed before copying (release collection): kind and message.
    pub failures: Vec<(ImageKind, String)>,
    /// Prefix of generated object names (empty: oc-mirror's names).
    pub naming_prefix: String,
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

/// Disk-to-mirror: the `--from` directory and the contents of its newest archive (which lists
/// every image of the run that wrote it). `field` names the part asking, for the error.
pub fn newest_archive(args: &MirrorArgs, field: &str) -> Result<(PathBuf, crate::cache::archive::Contents), CliError> {
    use crate::cache::archive;
    let from = PathBuf::from(args.from.as_deref().unwrap_or_default().trim_start_matches("file://"));
    let parts = archive::list(&from).map_err(|e| CliError::Setup(e.to_string()))?;
    let Some((_, newest)) = parts.last() else {
        return Err(CliError::Setup(format!("{field}: no archives in {}", from.display())));
    };
    let contents = archive::read_contents(newest).map_err(|e| CliError::Setup(e.to_string()))?;
    Ok((from, contents))
}

/// Plans the image set for the invocation.
pub fn plan(inv: &Invocation, max_nested: u32) -> Result<Planned, CliError> {
    let text = std::fs::read_to_string(&inv.config).map_err(io_err(&inv.config))?;
    let isc = load::image_set(&text).map_err(|source| CliError::Config { path: inv.config.clone(), source })?;
    let mut planned = plan_mirror(&isc.mirror, inv, max_nested)?;
    planned.archive_size = isc.archive_size;
    for op in &isc.mirror.operators {
        if let Some(path) = &op.target_catalog_source_template {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CliError::Setup(format!("targetCatalogSourceTemplate {path}: {e}")))?;
            let t = CatalogTemplate { catalog: op.catalog.clone(), path: path.clone(), text };
            crate::render::check_template(&t).map_err(|e| CliError::Setup(e.to_string()))?;
            planned.templates.push(t);
        }
    }
    Ok(planned)
}

/// Plans a `mirror:` block (the part that needs no network); releases and catalogs are
/// collected afterwards by [`collect`].
pub fn plan_mirror(mirror: &Mirror, inv: &Invocation, max_nested: u32) -> Result<Planned, CliError> {
    let mut left_out = Vec::new();
    let platform = mirror.platform.clone().filter(|p| !p.channels.is_empty() || p.release.is_some());
    if mirror.helm.as_ref().is_some_and(|h| !h.repositories.is_empty() || !h.local.is_empty()) {
        left_out.push("mirror.helm: chart collection is not available in this build".to_string());
    }
    let plan = plan::plan_additional(mirror, &inv.destination, max_nested, inv.mode == Mode::DiskToMirror)?;
    if plan.items.is_empty() && left_out.is_empty() && mirror.operators.is_empty() && platform.is_none() {
        return Err(plan::PlanError::Empty.into());
    }
    Ok(Planned {
        plan,
        archive_size: None,
        left_out,
        templates: Vec::new(),
        operators: mirror.operators.clone(),
        blocked_images: mirror.blocked_images.clone(),
        needs: Vec::new(),
        rebuilt: Vec::new(),
        platform,
        signatures: BTreeMap::new(),
        failures: Vec::new(),
        naming_prefix: String::new(),
    })
}

/// Collects releases and operator catalogs into the plan (network: graphs, payloads,
/// catalog images); returns summary lines.
pub async fn collect(
    inv: &Invocation,
    args: &MirrorArgs,
    client: &std::sync::Arc<crate::registry::Client>,
    cache: &std::sync::Arc<crate::cache::Cache>,
    planned: &mut Planned,
) -> Result<Vec<String>, CliError> {
    let mut lines = Vec::new();
    if planned.platform.is_some() {
        lines.extend(super::releases::collect(inv, client, cache, planned, args).await?);
    }
    if !planned.operators.is_empty() {
        lines.extend(super::operators::collect(inv, client, cache, planned, args).await?);
    }
    if planned.plan.items.is_empty() {
        if let Some((_, why)) = planned.failures.first() {
            return Err(CliError::Setup(why.clone()));
        }
        return Err(plan::PlanError::Empty.into());
    }
    Ok(lines)
}

/// Runs `mirror`; returns the lines of its summary.
pub fn run(args: &MirrorArgs, env: &Env) -> Result<Vec<String>, CliError> {
    let inv = validate_flags(args, env)?;
    let mut planned = plan(&inv, args.common.max_nested_paths)?;
    let mut summary: Vec<String> = planned.left_out.iter().map(|l| format!("warning: {l}")).collect();
    if !args.common.dry_run || !planned.operators.is_empty() || planned.platform.is_some() {
        let rt = tokio::runtime::Runtime::new().map_err(|e| CliError::Unsupported(format!("tokio runtime: {e}")))?;
        let copied = rt.block_on(async {
            let client = super::copy::open_client(&inv, args, env, &planned)?;
            let cache = super::copy::open_cache(&inv, args)?;
            summary.extend(collect(&inv, args, &client, &cache, &mut planned).await?);
            if args.common.dry_run {
                return Ok(None);
            }
            // What collection found is shown before the copy, which prints its own lines
            // even when it fails.
            for l in summary.drain(..) {
                println!("{l}");
            }
            super::copy::run(&inv, args, &mut planned, client, cache).await.map(Some)
        })?;
        if let Some(lines) = copied {
            summary.extend(lines);
            return Ok(summary);
        }
    }
    let plan = &planned.plan;
    let dir = inv.working_dir.join("dry-run");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    let mapping = dir.join("mapping.txt");
    write_atomic(&mapping, plan.mapping_txt().as_bytes())?;
    summary.push(format!(
        "dry run ({:?}): {} images planned, {} blocked; plan {}",
        inv.mode,
        plan.items.len(),
        plan.blocked.len(),
        plan.digest()
    ));
    summary.push(format!("mapping written to {}", mapping.display()));
    if inv.mode == Mode::MirrorToDisk {
        let missing = missing_from_cache(&inv, plan)?;
        summary.push(format!(
            "{}/{} images necessary for mirroring are not available in the cache",
            missing.items.len(),
            plan.items.len()
        ));
        if !missing.items.is_empty() {
            let path = dir.join("missing.txt");
            write_atomic(&path, missing.mapping_txt().as_bytes())?;
            summary.push(format!("missing images written to {}", path.display()));
        }
    }
    Ok(summary)
}

/// The plan's images whose manifest is not in the cache (by the names earlier runs recorded).
fn missing_from_cache(inv: &Invocation, plan: &CopyPlan) -> Result<CopyPlan, CliError> {
    let dir = inv.cache_dir.join(super::copy::CACHE_SUBDIR);
    let cache = dir
        .is_dir()
        .then(|| crate::cache::Cache::open(&dir))
        .transpose()
        .map_err(|e| CliError::Setup(e.to_string()))?;
    let names = match &cache {
        Some(c) => c.names().map_err(|e| CliError::Setup(e.to_string()))?,
        None => Default::default(),
    };
    let present = |origin: &str| {
        let d = names.get(origin.trim_start_matches("docker://"));
        d.zip(cache.as_ref()).is_some_and(|(d, c)| c.has(d))
    };
    let items = plan.items.iter().filter(|i| !present(&i.origin)).cloned().collect();
    Ok(CopyPlan { items, blocked: Vec::new() })
}
