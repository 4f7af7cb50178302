//! `list releases` / `list operators`: flags checked as oc-mirror does.

use super::CliError;
use crate::cache::Cache;
use crate::catalog::Catalog;
use crate::cli::{Env, ListCommand};
use crate::registry::{Client, ClientOptions};

const ARCHS: &[&str] = &["amd64", "arm64", "ppc64le", "s390x", "multi"];

/// Runs `list`; returns the lines to print.
pub fn run(cmd: &ListCommand, env: &Env) -> Result<Vec<String>, CliError> {
    match cmd {
        ListCommand::Releases(a) => {
            for arch in &a.filter_by_archs {
                if !ARCHS.contains(&arch.as_str()) {
                    return Err(CliError::Usage(format!(
                        "--filter-by-archs: {arch:?} is not one of {}",
                        ARCHS.join(", ")
                    )));
                }
            }
            if a.channel.is_none() && a.version.is_none() {
                return Err(CliError::Usage("list releases needs --channel or --version".into()));
            }
            releases(a, env)
        }
        ListCommand::Operators(a) => {
            let Some(catalog) = &a.catalog else {
                return Err(CliError::Usage("list operators needs --catalog".into()));
            };
            let cat = read_catalog(catalog, a.src_tls_verify, env)?;
            operators(&cat, a.package.as_deref(), a.channel.as_deref())
        }
        ListCommand::HelmImages(a) => super::helm::images(a),
    }
}

/// oc-mirror's `list releases`: the versions of a channel (default `stable-<version>`) per
/// architecture, from the update graph: the whole channel, as oc-mirror lists it (`--version
/// 4.8` shows the 4.7.z versions `stable-4.8` holds too). A channel without versions is an
/// error, in oc-mirror's words.
fn releases(a: &crate::cli::ListReleasesArgs, env: &Env) -> Result<Vec<String>, CliError> {
    if let Some(v) = &a.version {
        crate::release::graph::parse_version(v, "--version").map_err(|e| CliError::Usage(e.to_string()))?;
    }
    let channel = match (&a.channel, &a.version) {
        (Some(c), _) => c.clone(),
        (None, Some(v)) => format!("stable-{v}"),
        (None, None) => unreachable!("checked above"),
    };
    let flags = crate::pipeline::ReleaseSources {
        update_url: a.update_url.clone().or_else(|| env.update_url_override.clone()),
        timeout_seconds: 120,
        ..Default::default()
    };
    let up = crate::pipeline::releases::upstream(&flags)?;
    let rt = tokio::runtime::Runtime::new().map_err(|e| CliError::Unsupported(format!("tokio runtime: {e}")))?;
    let mut out = Vec::new();
    for arch in &a.filter_by_archs {
        let bytes = rt
            .block_on(up.graph(crate::api::mirror::ReleaseType::Ocp, &channel, arch))
            .map_err(|e| CliError::Setup(e.to_string()))?;
        let g = crate::release::graph::Graph::parse(&bytes).map_err(|e| CliError::Setup(e.to_string()))?;
        out.push(format!("Channel: {channel}"));
        out.push(format!("Architecture: {arch}"));
        let versions = g.versions();
        let Some(head) = versions.last() else {
            return Err(CliError::Setup(format!("channel {channel:?}: no versions found")));
        };
        out.push(format!("Latest: {head}"));
        out.extend(versions.iter().map(|v| v.to_string()));
        out.push(String::new());
    }
    Ok(out)
}

fn read_catalog(catalog: &str, tls_verify: bool, env: &Env) -> Result<Catalog, CliError> {
    let r = crate::image::ImageRef::parse(catalog).map_err(|e| CliError::Usage(format!("--catalog {catalog}: {e}")))?;
    let opts = ClientOptions {
        insecure: if tls_verify { vec![] } else { vec![r.registry.clone()] },
        auth: super::access::credentials(None, env)?,
        sources: super::access::registries_conf(env)?,
        ..Default::default()
    };
    let client = Client::new(opts).map_err(|e| CliError::Setup(e.to_string()))?;
    let root = env.oc_mirror_cache.clone().or_else(|| env.home.clone()).unwrap_or_else(|| ".".into());
    let cache =
        Cache::open(&root.join(crate::pipeline::copy::CACHE_SUBDIR)).map_err(|e| CliError::Setup(e.to_string()))?;
    let rt = tokio::runtime::Runtime::new().map_err(|e| CliError::Unsupported(format!("tokio runtime: {e}")))?;
    Ok(rt.block_on(crate::pipeline::operators::read(&client, &cache, catalog))?)
}

/// oc-mirror's `list operators` tables: packages; a package's channels and heads; a
/// channel's versions.
pub fn operators(cat: &Catalog, package: Option<&str>, channel: Option<&str>) -> Result<Vec<String>, CliError> {
    let mut out = Vec::new();
    let Some(pkg) = package else {
        out.push(format!("{:<50} {}", "NAME", "DEFAULT CHANNEL"));
        let mut pkgs: Vec<_> = cat.packages.iter().collect();
        pkgs.sort_by(|a, b| a.name.cmp(&b.name));
        for p in pkgs {
            out.push(format!("{:<50} {}", p.name, p.default_channel.as_deref().unwrap_or("")));
        }
        return Ok(out);
    };
    let p = cat.package(pkg).ok_or_else(|| CliError::Setup(format!("package {pkg:?} is not in the catalog")))?;
    let mut channels: Vec<_> = cat.channels.iter().filter(|c| c.package == pkg).collect();
    channels.sort_by(|a, b| a.name.cmp(&b.name));
    let versions = |c: &crate::catalog::Channel| -> Vec<String> {
        let index = cat.bundle_index();
        let mut vs: Vec<(semver::Version, String)> = c
            .entries
            .iter()
            .filter_map(|e| index.get(&(pkg, e.name.as_str()))?.version.clone())
            .map(|v| (semver::Version::parse(&v).unwrap_or(semver::Version::new(0, 0, 0)), v))
            .collect();
        vs.sort();
        vs.into_iter().map(|(_, v)| v).collect()
    };
    if let Some(ch) = channel {
        let c = channels
            .iter()
            .find(|c| c.name == ch)
            .ok_or_else(|| CliError::Setup(format!("channel {ch:?} is not in package {pkg:?}")))?;
        out.push("VERSIONS".to_string());
        out.extend(versions(c));
        return Ok(out);
    }
    out.push(format!("{:<50} {}", "NAME", "DEFAULT CHANNEL"));
    out.push(format!("{:<50} {}", p.name, p.default_channel.as_deref().unwrap_or("")));
    out.push(String::new());
    out.push(format!("{:<50} {:<30} {}", "PACKAGE", "CHANNEL", "HEAD"));
    for c in channels {
        let head = crate::catalog::upgrades::head(&c.entries).unwrap_or_else(|e| format!("({e})"));
        out.push(format!("{:<50} {:<30} {}", pkg, c.name, head));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_operators_shows_packages_heads_and_versions() {
        let base = std::env::var_os("IMAGESET_SHARED_DATA")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
        let dir = base.join("fbc/oc-mirror-test-catalogs/test-catalog-latest");
        let cat = Catalog::load_dir(&dir).unwrap();
        let pkgs = operators(&cat, None, None).unwrap();
        assert_eq!(pkgs.len(), 4);
        assert!(pkgs[1].starts_with("bar") && pkgs[1].ends_with("stable"), "{pkgs:?}");
        let bar = operators(&cat, Some("bar"), None).unwrap();
        assert!(bar.iter().any(|l| l.contains("alpha") && l.ends_with("bar.v1.0.0")), "{bar:?}");
        let v = operators(&cat, Some("foo"), Some("beta")).unwrap();
        assert_eq!(v, vec!["VERSIONS", "0.1.0", "0.2.0", "0.3.0", "0.3.1"]);
        assert!(operators(&cat, Some("nope"), None).is_err());
    }
}
