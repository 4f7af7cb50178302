//! Platform releases for `mirror`: resolve versions from the update graph, verify and read
//! each payload, build the graph image, and add payloads, components and the graph image to
//! the plan. A release failure stops the release part only; the rest of the image set goes on.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use super::error::Error;
use super::files::newest_archive;
use super::planned::Planned;
use super::request::{Mode, ReleaseSources, Request};
use crate::api::mirror::Platform;
use crate::cache::Cache;
use crate::plan::{self, ImageKind};
use crate::registry::Client;
use crate::release::{self, Settings, signature, upstream};

/// The release services of a request.
pub fn upstream(r: &ReleaseSources) -> Result<upstream::Upstream, Error> {
    let mut o = upstream::UpstreamOptions::default();
    if let Some(u) = &r.update_url {
        o.graph_url = u.clone();
    }
    if let Some(u) = &r.okd_update_url {
        o.okd_graph_url = u.clone();
    }
    if let Some(u) = &r.signature_url {
        o.signature_url = u.clone();
    }
    if let Some(u) = &r.graph_data_url {
        o.graph_data_url = u.clone();
    }
    o.timeout = Duration::from_secs(r.timeout_seconds.max(1));
    for p in &r.ca_files {
        o.ca_pems.push(std::fs::read(p).map_err(|e| Error::Access(format!("{}: {e}", p.display())))?);
    }
    upstream::Upstream::new(o).map_err(|e| Error::Access(e.to_string()))
}

/// Collects the releases of the image set into the plan; returns summary lines. A release
/// error is recorded in `planned.failures` (exit bit 2, error log) instead of stopping the run.
pub async fn collect(
    inv: &Request,
    client: &Arc<Client>,
    cache: &Arc<Cache>,
    planned: &mut Planned,
) -> Result<Vec<String>, Error> {
    let Some(platform) = planned.platform.clone() else { return Ok(vec![]) };
    if inv.mode == Mode::DiskToMirror {
        return from_archives(inv, &platform, planned).await;
    }
    if inv.releases.ignore_signatures && platform.release.is_none() {
        return Err(Error::Invalid("--ignore-release-signature is only allowed with mirror.platform.release".into()));
    }
    let up = upstream(&inv.releases)?;
    let keys = signature::keyring(&inv.releases.signature_keys).map_err(Error::Access)?;
    let settings = Settings {
        upstream: &up,
        keys: &keys,
        working_dir: Some(&inv.working_dir),
        graph_base_image: inv.releases.graph_base_image.clone(),
        ignore_signatures: inv.releases.ignore_signatures,
        parallel: inv.parallel_images,
        kept_graphs_first: inv.releases.kept_graphs_first,
    };
    let collected = match release::collect(client, cache, &settings, &platform).await {
        Ok(c) => c,
        Err(e) => {
            let reason = e.reason();
            // oc-mirror's words when a channel yields nothing, which its tests grep.
            let e = match &e {
                release::ReleaseError::Graph(release::graph::GraphError::NoVersions { .. }) => {
                    format!("no release images found: {e}")
                }
                _ => e.to_string(),
            };
            tracing::error!(reason, "mirror.platform: {e}");
            planned.failures.push((ImageKind::Release, reason, format!("mirror.platform: {e}")));
            return Ok(vec![format!("✗ releases: collection error: {e}")]);
        }
    };
    for w in &collected.warnings {
        tracing::warn!("mirror.platform: {w}");
        planned.warnings.push(format!("mirror.platform: {w}"));
    }
    let items = plan::plan_releases(&collected, &platform.platforms, &inv.destination, inv.max_nested_paths)?;
    let mut lines = summary(&collected, &platform);
    lines.extend(collected.warnings.iter().map(|w| format!("warning: mirror.platform: {w}")));
    for r in &collected.releases {
        if let Some(s) = &r.signature {
            planned.signatures.entry(r.digest.clone()).or_default().push(s.clone());
        }
    }
    lines.push(format!("{} release images planned", items.len()));
    planned.add(items);
    Ok(lines)
}

/// Disk-to-mirror: the release images the archives hold, and their signatures (verified again
/// here): those the archives carry, else those the mirror-to-disk run kept in
/// working-dir/signatures (archives written before they carried them).
async fn from_archives(inv: &Request, platform: &Platform, planned: &mut Planned) -> Result<Vec<String>, Error> {
    let (_, contents) = newest_archive(inv, "mirror.platform")?;
    let mut items = plan::plan_archived_releases(&contents.images, &inv.destination, inv.max_nested_paths);
    if !contents.graphs.is_empty() {
        match archived_selection(inv, platform, &contents).await {
            Ok(keep) => items.retain(|i| keep(i)),
            Err(e) => {
                planned.failures.push((ImageKind::Release, e.reason(), format!("mirror.platform: {e}")));
                return Ok(vec![format!("✗ releases: collection error: {e}")]);
            }
        }
    }
    if items.is_empty() {
        planned.failures.push((
            ImageKind::Release,
            "NoReleases",
            "mirror.platform: the archives hold no release images".into(),
        ));
        return Ok(vec!["✗ releases: the archives hold no release images".into()]);
    }
    let keys = signature::keyring(&inv.releases.signature_keys).map_err(Error::Access)?;
    let sigdir = inv.working_dir.join("signatures");
    let mut lines = Vec::new();
    for img in
        contents.images.iter().filter(|i| items.iter().any(|it| it.kind == ImageKind::Release && it.origin == i.origin))
    {
        let carried = contents.signatures.iter().filter(|s| s.digest == img.digest).find_map(|s| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(&s.signature).ok()
        });
        let found = carried.or_else(|| signature::from_dir(&sigdir, &img.digest));
        match found.map(|b| (signature::check(&keys, &b, &img.digest), b)) {
            Some((Ok(_), bytes)) => planned.signatures.entry(img.digest.clone()).or_default().push(bytes),
            Some((Err(e), _)) => {
                planned.failures.push((ImageKind::Release, "ReleaseSignatureInvalid", format!("mirror.platform: {e}")));
                lines.push(format!("✗ releases: {e}"));
                return Ok(lines);
            }
            None => {
                lines.push(format!("warning: no signature for {} in the archives or in {}", img.name, sigdir.display()))
            }
        }
    }
    lines.push(format!("{} release images found in the archives", items.len()));
    planned.add(items);
    Ok(lines)
}

/// Which archived release images the platform block selects: its releases resolved again
/// from the update graphs the archives carry (no update service is asked), each payload with
/// the components and KubeVirt disks of its release tag; the graph image when `graph: true`.
async fn archived_selection(
    inv: &Request,
    platform: &Platform,
    contents: &crate::cache::archive::Contents,
) -> Result<impl Fn(&plan::CopyItem) -> bool, release::ReleaseError> {
    let kept = inv.working_dir.join(release::KEPT_GRAPHS);
    std::fs::create_dir_all(&kept).map_err(|e| release::ReleaseError::Local(format!("{}: {e}", kept.display())))?;
    for (name, text) in &contents.graphs {
        // Names are `<arch>-<channel>.json` as the writing run made them; nothing else is written.
        if name.contains('/') || name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        std::fs::write(kept.join(name), text)
            .map_err(|e| release::ReleaseError::Local(format!("{}: {e}", kept.join(name).display())))?;
    }
    let up = upstream(&inv.releases).map_err(|e| release::ReleaseError::Local(e.to_string()))?;
    let (selected, _) = release::resolve(&up, platform, Some(&inv.working_dir), true).await?;
    let bare = |s: &str| s.trim_start_matches("docker://").to_string();
    let payloads: BTreeSet<String> = selected.iter().map(|s| bare(&s.payload)).collect();
    // The release tag of each selected payload, from its name in the archives.
    let tags: BTreeSet<String> = contents
        .images
        .iter()
        .filter(|i| i.kind == Some(ImageKind::Release) && payloads.contains(&bare(&i.origin)))
        .filter_map(|i| i.name.rsplit_once(':').map(|(_, t)| t.to_string()))
        .collect();
    let graph = platform.graph;
    Ok(move |i: &plan::CopyItem| match i.kind {
        ImageKind::Release => payloads.contains(&bare(&i.origin)),
        ImageKind::ReleaseContent | ImageKind::KubeVirt => {
            let tag = i.destination.rsplit_once(':').map(|(_, t)| t).unwrap_or_default();
            tags.iter().any(|t| tag.starts_with(&format!("{t}-")))
        }
        ImageKind::Graph => graph,
        _ => true,
    })
}

fn summary(c: &release::Collected, p: &Platform) -> Vec<String> {
    let mut lines = Vec::new();
    for r in &c.releases {
        lines.push(format!("Success collecting release {}", r.selected.payload));
        lines.push(format!(
            "release {} ({}): {} components{}{}",
            r.selected.version,
            r.tag,
            r.components.len(),
            if r.kubevirt.is_empty() { String::new() } else { format!(", {} kubevirt disks", r.kubevirt.len()) },
            if r.signature.is_some() { ", signature verified" } else { ", signature not checked" },
        ));
    }
    if p.graph {
        lines.push(format!("graph image built: {}", c.graph_image.as_deref().unwrap_or("-")));
    }
    lines
}
