//! The mirror workflow as a library: a typed, serialisable [`Request`] (what to mirror, the
//! workflow and destination, the working directory, naming, parallelism, release sources)
//! goes through plan -> collect (releases, catalogs) -> copy -> render and comes back as a
//! [`copy::Report`]. No flags and no environment in here: the command line and the controller
//! each build a request and call [`plan`], [`collect`] and [`copy::execute`].

pub mod copy;
pub mod delete;
mod error;
mod files;
pub mod helm;
pub mod operators;
mod planned;
pub mod releases;
mod request;

use std::collections::BTreeMap;

pub use error::Error;
pub use files::{newest_archive, write_atomic};
pub use planned::{Planned, Rebuilt};
pub use request::{Mode, Outputs, ReleaseSources, Request};

use crate::api::mirror::Mirror;
use crate::plan::{self, ImageKind};

/// Plans a `mirror:` block (the part that needs no network); releases and catalogs are
/// collected afterwards by [`collect`].
pub fn plan(mirror: &Mirror, req: &Request) -> Result<Planned, Error> {
    let platform = mirror.platform.clone().filter(|p| !p.channels.is_empty() || p.release.is_some());
    let helm = mirror.helm.clone().filter(|h| !h.repositories.is_empty() || !h.local.is_empty());
    let plan = plan::plan_additional(mirror, &req.destination, req.max_nested_paths, req.mode == Mode::DiskToMirror)?;
    let warnings = plan::tag_and_digest_warnings(&plan.items);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    if plan.items.is_empty() && mirror.operators.is_empty() && platform.is_none() && helm.is_none() {
        return Err(plan::PlanError::Empty.into());
    }
    Ok(Planned {
        plan,
        archive_size: None,
        left_out: Vec::new(),
        templates: Vec::new(),
        operators: mirror.operators.clone(),
        blocked_images: mirror.blocked_images.clone(),
        needs: Vec::new(),
        rebuilt: Vec::new(),
        platform,
        helm,
        charts: Vec::new(),
        access: None,
        archived: None,
        signatures: BTreeMap::new(),
        failures: Vec::new(),
        warnings,
    })
}

/// Collects releases and operator catalogs into the plan (network: graphs, payloads,
/// catalog images); returns summary lines.
pub async fn collect(
    req: &Request,
    client: &std::sync::Arc<crate::registry::Client>,
    cache: &std::sync::Arc<crate::cache::Cache>,
    planned: &mut Planned,
) -> Result<Vec<String>, Error> {
    let mut lines = Vec::new();
    if planned.platform.is_some() {
        lines.extend(releases::collect(req, client, cache, planned).await?);
    }
    if !planned.operators.is_empty() {
        lines.extend(operators::collect(req, client, cache, planned).await?);
    }
    if planned.helm.is_some() {
        lines.extend(helm::collect(req, cache, planned).await?);
    }
    // Charts are copied too (after the images); charts that failed are reported by the copy
    // stage with helm's exit bit, never as "no images to copy".
    let helm_failed = planned.failures.iter().any(|(k, _, _)| *k == ImageKind::Helm);
    if planned.plan.items.is_empty() && planned.charts.is_empty() && !helm_failed {
        if let Some((kind, _, why)) = planned.failures.first() {
            return Err(match kind {
                ImageKind::Release | ImageKind::ReleaseContent | ImageKind::KubeVirt | ImageKind::Graph => {
                    Error::Releases(why.clone())
                }
                _ => Error::Setup(why.clone()),
            });
        }
        return Err(plan::PlanError::Empty.into());
    }
    Ok(lines)
}
