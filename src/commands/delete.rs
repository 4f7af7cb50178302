//! `delete`: phase 1 (`--generate`) collects a DeleteImageSetConfiguration through the
//! pipeline and writes oc-mirror's `working-dir/delete/delete-images.yaml`; phase 2
//! (`--delete-yaml-file`) resolves each listed image at the registry, keeps what the image
//! sets given with `--protect-config` still need, and deletes the rest.

use std::path::{Path, PathBuf};

use super::{CliError, access, io_err, working_dir, write_atomic};
use crate::api::load;
use crate::cli::{DeleteArgs, Env};
use crate::pipeline::delete::{self, DeleteImageList, Outcome, Protection, Tally};
use crate::pipeline::{self, Request};
use crate::plan::{CopyItem, CopyPlan, Destination, ImageKind};
use crate::registry::Client;

/// Runs `delete`; returns the summary lines.
pub fn run(args: &DeleteArgs, env: &Env) -> Result<Vec<String>, CliError> {
    let usage = |m: &str| Err(CliError::Usage(m.to_string()));
    let Some(dest_arg) = args.destination.as_deref() else {
        return usage("a destination is required: docker://REGISTRY[/PREFIX]");
    };
    let destination = Destination::parse(dest_arg)?;
    if destination == Destination::Disk {
        return usage("delete needs a docker:// destination");
    }
    match (args.generate, &args.delete_yaml_file) {
        (true, Some(_)) => usage("--generate and --delete-yaml-file are mutually exclusive"),
        (true, None) => generate(args, env, destination),
        (false, Some(file)) => execute(args, env, dest_arg, destination, file),
        (false, None) => usage("use --generate to write a delete plan, or --delete-yaml-file to execute one"),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Runtime::new().map_err(|e| CliError::Setup(format!("tokio runtime: {e}")))
}

/// The pipeline request of a delete (or of an image set it protects): collected from
/// registries and the cache into `working_dir`, with oc-mirror's naming.
fn request(args: &DeleteArgs, destination: Destination, working_dir: PathBuf, requester: &Path) -> Request {
    let c = &args.common;
    let requester = requester.to_string_lossy().into_owned();
    let releases = args.release.sources(c.registry_ca.clone());
    let mut req = Request::collecting(destination, working_dir, requester, releases, c.max_nested_paths);
    req.parallel_images = c.parallel_images as usize;
    req.parallel_layers = c.parallel_layers as usize;
    req
}

fn generate(args: &DeleteArgs, env: &Env, destination: Destination) -> Result<Vec<String>, CliError> {
    let c = &args.common;
    let Some(config) = c.config.clone() else {
        return Err(CliError::Usage("use the --config flag it is mandatory".into()));
    };
    let Some(ws) = c.workspace.as_deref() else {
        return Err(CliError::Usage("--generate needs --workspace file://DIR".into()));
    };
    if !ws.starts_with("file://") {
        return Err(CliError::Usage("when using --workspace, the file:// prefix is mandatory".into()));
    }
    let text = std::fs::read_to_string(&config).map_err(io_err(&config))?;
    let disc = load::delete_set(&text).map_err(|source| CliError::Config { path: config.clone(), source })?;
    let req = request(args, destination.clone(), working_dir(ws), &config);
    let mut planned = pipeline::plan(&delete::as_mirror(&disc.delete), &req)?;
    let cache = access::open_cache(&access::cache_root(c, env)?, c)?;
    let (mut list, mut lines) = runtime()?.block_on(async {
        let client = access::open_client(&args.common, env, &mut planned, &destination)?;
        Ok::<_, CliError>(delete::generate_with(&disc.delete, &req, &client, &cache, planned.access.take()).await?)
    })?;
    if args.delete_signatures {
        let mut items = list.items.clone();
        items.extend(delete::signature_items(&list, Some(&cache)));
        list = DeleteImageList::new(items);
    }
    let suffix = args.delete_id.as_deref().map(|id| format!("-{id}")).unwrap_or_default();
    let dir = req.working_dir.join("delete");
    let out = dir.join(format!("delete-images{suffix}.yaml"));
    write_atomic(&out, list.to_yaml().as_bytes())?;
    write_atomic(&dir.join(format!("delete-imageset-config{suffix}.yaml")), text.as_bytes())?;
    lines.push(format!("delete plan: {} images; written to {}", list.items.len(), out.display()));
    lines.push(format!(
        "review it, then run: imageset-operator delete --delete-yaml-file {} {}",
        out.display(),
        args.destination.as_deref().unwrap_or_default()
    ));
    Ok(lines)
}

/// What each `--protect-config` image set needs in the registry, resolved there.
async fn protection(args: &DeleteArgs, env: &Env, destination: &Destination) -> Result<Protection, CliError> {
    let mut p = Protection::default();
    let c = &args.common;
    if args.protect_config.is_empty() {
        return Ok(p);
    }
    let cache = access::open_cache(&access::cache_root(c, env)?, c)?;
    for path in &args.protect_config {
        let text = std::fs::read_to_string(path).map_err(io_err(path))?;
        let isc = load::image_set(&text).map_err(|source| CliError::Config { path: path.clone(), source })?;
        // Without a workspace, what collection keeps goes beside the cache.
        let wd = match &c.workspace {
            Some(ws) => working_dir(ws),
            None => access::cache_root(c, env)?.join(".imageset-operator/protect/working-dir"),
        };
        let req = request(args, destination.clone(), wd, path);
        let mut planned = pipeline::plan(&isc.mirror, &req)?;
        let client = access::open_client(&args.common, env, &mut planned, destination)?;
        pipeline::collect(&req, &client, &cache, &mut planned).await?;
        let who = path.display().to_string();
        let unreadable = p.add_planned(&planned.plan.items, &client, &who, c.parallel_images as usize).await;
        if let Some((reference, why)) = unreadable.first() {
            return Err(CliError::Setup(format!(
                "--protect-config {who}: cannot read {reference} in the registry ({why}): nothing deleted"
            )));
        }
    }
    Ok(p)
}

fn execute(
    args: &DeleteArgs,
    env: &Env,
    dest_arg: &str,
    destination: Destination,
    file: &Path,
) -> Result<Vec<String>, CliError> {
    let text = std::fs::read_to_string(file).map_err(io_err(file))?;
    let list = DeleteImageList::parse(&text).map_err(|e| CliError::Setup(format!("{}: {e}", file.display())))?;
    let c = &args.common;
    let parallel = c.parallel_images as usize;
    // Only the destination is reached (its TLS flags apply); the origins are not.
    let plan = CopyPlan {
        items: list
            .items
            .iter()
            .map(|i| CopyItem {
                kind: ImageKind::Additional,
                origin: i.image_reference.clone(),
                source: i.image_reference.clone(),
                destination: i.image_reference.clone(),
                platforms: Vec::new(),
            })
            .collect(),
        blocked: Vec::new(),
    };
    let opts = access::client_options(c, env, &plan, &[], &destination)?;
    let outcomes = runtime()?.block_on(async {
        let protect = protection(args, env, &destination).await?;
        let client = Client::new(opts).map_err(|e| CliError::Setup(e.to_string()))?;
        let resolved = delete::resolve(&list, dest_arg, &client, &protect, parallel).await;
        let outcomes = delete::execute(resolved, &client, parallel)
            .await
            .map_err(|e| CliError::Setup(format!("{e}; nothing was deleted")))?;
        Ok::<_, CliError>(outcomes)
    })?;
    let t = Tally::of(&outcomes);
    let mut summary = Vec::new();
    for (r, o) in &outcomes {
        match o {
            Outcome::Protected(who) => summary.push(format!(
                "kept {} ({}): {who} still needs it",
                r.item.image_reference,
                r.digest.as_deref().unwrap_or("-")
            )),
            Outcome::Failed(why) => summary.push(format!("error deleting {}: {why}", r.item.image_reference)),
            _ => {}
        }
    }
    if args.force_cache_delete {
        let cache = access::open_cache(&access::cache_root(c, env)?, c)?;
        let gone: Vec<String> = outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Deleted | Outcome::AlreadyGone))
            .map(|(r, _)| r.item.image_name.clone())
            .collect();
        let f = cache.forget(&gone).map_err(|e| CliError::Setup(format!("--force-cache-delete: {e}")))?;
        summary.push(format!(
            "cache: {} images forgotten, {} entries ({} MB) removed",
            f.names,
            f.removed,
            f.freed / 1_000_000
        ));
    }
    summary.push(format!(
        "{} deleted, {} already gone, {} protected, {} failed (of {} listed)",
        t.deleted,
        t.gone,
        t.protected,
        t.failed,
        outcomes.len()
    ));
    summary.push(
        "Remember to execute a garbage collect (or similar) on your remote repository: blobs stay until then".into(),
    );
    if t.failed > 0 {
        for l in &summary {
            println!("{l}");
        }
        return Err(CliError::Setup(format!("{} of {} images could not be deleted", t.failed, outcomes.len())));
    }
    Ok(summary)
}
