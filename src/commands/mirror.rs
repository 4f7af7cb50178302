//! `mirror`: validate flags as oc-mirror does, read the image set, build the pipeline request,
//! run it, and print the summary; a dry run writes `working-dir/dry-run/mapping.txt`.

use std::path::PathBuf;

use super::{CliError, io_err, working_dir, write_atomic};
use crate::api::load;
use crate::cli::{Env, MirrorArgs};
use crate::pipeline::{self, Mode, Outputs, Planned, Request};
use crate::plan::{CopyPlan, Destination};
use crate::render::CatalogTemplate;

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
    /// The pipeline request.
    pub request: Request,
    /// Cache directory (the root `--cache-dir` names).
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
    let cache_dir = super::access::cache_root(c, env)?;
    let from = args.from.as_deref().map(|f| PathBuf::from(f.trim_start_matches("file://")));
    let archive_dir = (mode == Mode::MirrorToDisk).then(|| PathBuf::from(dest_arg.trim_start_matches("file://")));
    let request = Request {
        mode,
        destination,
        from,
        archive_dir,
        since: args.since.clone(),
        working_dir: working_dir(&root),
        requester: config.to_string_lossy().into_owned(),
        max_nested_paths: c.max_nested_paths,
        parallel_images: c.parallel_images as usize,
        parallel_layers: c.parallel_layers as usize,
        releases: args.release.sources(c.registry_ca.clone()),
        naming_prefix: String::new(),
        outputs: Outputs { cluster_resources: true, error_log: true },
    };
    Ok(Invocation { request, cache_dir, config })
}

/// Plans the image set for the invocation.
pub fn plan(inv: &Invocation) -> Result<Planned, CliError> {
    let text = std::fs::read_to_string(&inv.config).map_err(io_err(&inv.config))?;
    let isc = load::image_set(&text).map_err(|source| CliError::Config { path: inv.config.clone(), source })?;
    let mut planned = pipeline::plan(&isc.mirror, &inv.request)?;
    planned.archive_size = isc.archive_size;
    for s in &isc.warnings {
        tracing::warn!("{s}");
        planned.left_out.push(s.clone());
    }
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

/// Runs `mirror`; returns the lines of its summary.
pub fn run(args: &MirrorArgs, env: &Env) -> Result<Vec<String>, CliError> {
    let inv = validate_flags(args, env)?;
    let mut planned = plan(&inv)?;
    let mode = match inv.request.mode {
        Mode::MirrorToMirror => "mirrorToMirror",
        Mode::MirrorToDisk => "mirrorToDisk",
        Mode::DiskToMirror => "diskToMirror",
    };
    let mut summary = vec![format!("workflow mode: {mode}")];
    summary.extend(planned.left_out.iter().chain(&planned.warnings).map(|l| format!("warning: {l}")));
    let collects = !planned.operators.is_empty() || planned.platform.is_some() || planned.helm.is_some();
    if !args.common.dry_run || collects {
        let rt = tokio::runtime::Runtime::new().map_err(|e| CliError::Unsupported(format!("tokio runtime: {e}")))?;
        let copied = rt.block_on(async {
            let client = super::access::open_client(&args.common, env, &mut planned, &inv.request.destination)?;
            let cache = super::access::open_cache(&inv.cache_dir, &args.common)?;
            summary.extend(pipeline::collect(&inv.request, &client, &cache, &mut planned).await?);
            summary.push(format!("images to copy {}", planned.plan.items.len()));
            if args.common.dry_run {
                return Ok(None);
            }
            // What collection found is shown before the copy, which prints its own lines
            // even when it fails.
            for l in summary.drain(..) {
                println!("{l}");
            }
            let transfers = (args.common.parallel_images as usize).min(client.max_in_flight());
            let engine = crate::copy::Engine::new(cache, transfers);
            let report = pipeline::copy::execute(&inv.request, &mut planned, &engine, client, None).await?;
            match report.failure {
                None => Ok(Some(report.lines)),
                Some(e) => {
                    for l in &report.lines {
                        println!("{l}");
                    }
                    Err(CliError::from(e))
                }
            }
        })?;
        if let Some(lines) = copied {
            summary.extend(lines);
            return Ok(summary);
        }
    }
    let plan = &planned.plan;
    if !summary.iter().any(|l| l.starts_with("images to copy ")) {
        summary.push(format!("images to copy {}", plan.items.len()));
    }
    let dir = inv.request.working_dir.join("dry-run");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    let mapping = dir.join("mapping.txt");
    write_atomic(&mapping, plan.mapping_txt().as_bytes())?;
    summary.push(format!(
        "dry run ({:?}): {} images planned, {} blocked; plan {}",
        inv.request.mode,
        plan.items.len(),
        plan.blocked.len(),
        plan.digest()
    ));
    summary.push(format!("mapping written to {}", mapping.display()));
    if inv.request.mode == Mode::MirrorToDisk {
        let missing = missing_from_cache(&inv, plan)?;
        summary.push(if missing.items.is_empty() {
            format!(
                "all {} images required for mirroring are available in local cache. You may proceed with mirroring from disk to disconnected registry",
                plan.items.len()
            )
        } else {
            format!(
                "{}/{} images necessary for mirroring are not available in the cache",
                missing.items.len(),
                plan.items.len()
            )
        });
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
    let dir = inv.cache_dir.join(pipeline::copy::CACHE_SUBDIR);
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
