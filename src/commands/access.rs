//! How the command line reaches registries: credentials from the authfile, TLS from the
//! flags, the registry client and the cache of a run.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::CliError;
use crate::cache::Cache;
use crate::cli::{CommonFlags, Env};
use crate::image::ImageRef;
use crate::pipeline::Planned;
use crate::pipeline::copy::CACHE_SUBDIR;
use crate::plan::{CopyPlan, Destination};
use crate::registry::sources::RegistriesConf;
use crate::registry::{Client, ClientOptions, DockerAuth};

/// Reads credentials: `--authfile`, else `REGISTRY_AUTH_FILE`, else `~/.docker/config.json`.
pub fn credentials(authfile: Option<&Path>, env: &Env) -> Result<DockerAuth, CliError> {
    let explicit = authfile.map(Path::to_path_buf).or_else(|| env.registry_auth_file.clone());
    let path = match explicit {
        Some(p) => p,
        None => match env.home.as_ref().map(|h| h.join(".docker/config.json")).filter(|p| p.is_file()) {
            Some(p) => p,
            None => return Ok(DockerAuth::default()),
        },
    };
    let bytes = std::fs::read(&path).map_err(|e| CliError::Setup(format!("{}: {e}", path.display())))?;
    DockerAuth::parse(&bytes).map_err(|e| CliError::Setup(format!("{}: {e}", path.display())))
}

/// The registries.conf of the command line: `CONTAINERS_REGISTRIES_CONF`, else the user's or
/// the system's file (see [`RegistriesConf::default_path`]); None when there is none.
pub fn registries_conf(env: &Env) -> Result<Option<Arc<RegistriesConf>>, CliError> {
    let env_path = env.registries_conf.as_ref().map(|p| p.display().to_string());
    let Some(path) = RegistriesConf::default_path(env_path.as_deref(), env.home.as_deref()) else {
        return Ok(None);
    };
    let conf = RegistriesConf::load(&path).map_err(|e| CliError::Setup(e.to_string()))?;
    if !conf.registries.is_empty() {
        tracing::info!(file = %path.display(), rules = conf.registries.len(), "pulling sources through registries.conf");
    }
    Ok(Some(Arc::new(conf)))
}

/// Client options for a run: the hosts marked insecure by the TLS flags (sources are the
/// plan's sources and the catalogs), credentials, CAs.
pub fn client_options(
    c: &CommonFlags,
    env: &Env,
    plan: &CopyPlan,
    catalogs: &[String],
    dest: &Destination,
) -> Result<ClientOptions, CliError> {
    let mut insecure = BTreeSet::new();
    let sources = plan.items.iter().map(|i| i.source.as_str()).chain(catalogs.iter().map(String::as_str));
    for source in sources {
        if let (false, Ok(r)) = (c.src_tls_verify, ImageRef::parse(source)) {
            insecure.insert(r.registry);
        }
    }
    for item in &plan.items {
        if let (false, Ok(r)) = (c.dest_tls_verify, ImageRef::parse(&item.destination)) {
            insecure.insert(r.registry);
        }
    }
    // Catalog and release collection add items after the client exists: the destination host
    // counts too, and with --src-tls-verify=false so does every source host found later.
    let dest_host = match dest {
        Destination::Registry(root) => Some(root.split('/').next().unwrap_or_default().to_string()),
        Destination::Disk => None,
    };
    if let (false, Some(h)) = (c.dest_tls_verify, &dest_host) {
        insecure.insert(h.clone());
    }
    let mut verified = Vec::new();
    if !c.src_tls_verify {
        insecure.insert("*".to_string());
        if c.dest_tls_verify {
            verified.extend(dest_host);
        }
    }
    let mut ca_pems = Vec::new();
    for p in &c.registry_ca {
        ca_pems.push(std::fs::read(p).map_err(|e| CliError::Setup(format!("{}: {e}", p.display())))?);
    }
    Ok(ClientOptions {
        insecure: insecure.into_iter().collect(),
        verified,
        ca_pems,
        auth: credentials(c.authfile.as_deref(), env)?,
        backoff: crate::registry::Backoff { retries: c.retry_times, ..Default::default() },
        stall_timeout: Duration::from_secs(c.stall_timeout),
        breaker_window: Duration::from_secs(c.unreachable_after),
        sources: registries_conf(env)?,
        ..Default::default()
    })
}

/// The registry client for a run; its options are kept in `planned.access`, where collection
/// reaches chart repositories with them.
pub fn open_client(
    c: &CommonFlags,
    env: &Env,
    planned: &mut Planned,
    dest: &Destination,
) -> Result<Arc<Client>, CliError> {
    let catalogs: Vec<String> = planned.operators.iter().map(|o| o.catalog.clone()).collect();
    let opts = client_options(c, env, &planned.plan, &catalogs, dest)?;
    planned.access = Some(opts.clone());
    Ok(Arc::new(Client::new(opts).map_err(|e| CliError::Setup(e.to_string()))?))
}

/// The cache directory `--cache-dir` or `OC_MIRROR_CACHE` names (default `$HOME`).
pub fn cache_root(c: &CommonFlags, env: &Env) -> Result<PathBuf, CliError> {
    match (&c.cache_dir, &env.oc_mirror_cache) {
        (Some(_), Some(_)) => Err(CliError::Usage("use either --cache-dir or OC_MIRROR_CACHE, not both".into())),
        (Some(d), None) | (None, Some(d)) => Ok(d.clone()),
        (None, None) => Ok(env.home.clone().unwrap_or_else(|| PathBuf::from("."))),
    }
}

/// The cache for a run (created if missing).
pub fn open_cache(cache_dir: &Path, c: &CommonFlags) -> Result<Arc<Cache>, CliError> {
    let cache = Cache::open(&cache_dir.join(CACHE_SUBDIR)).map_err(|e| CliError::Setup(e.to_string()))?;
    let cache = Arc::new(if c.no_cache_fsync { cache.without_fsync() } else { cache });
    // What earlier runs wrote (long written back by the kernel) is confirmed on disk while
    // this run works, so the journal's marker moves on.
    cache.sync_in_background(std::time::Duration::from_secs(120));
    Ok(cache)
}
