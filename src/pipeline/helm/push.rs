//! Charts to the destination: pushed from the cache as Helm's OCI artifacts (mirror to mirror,
//! disk to mirror), or recorded in the archive as such (mirror to disk).

use super::Chart;
use crate::cache::{Cache, archive};
use crate::helm::chart;
use crate::plan::ImageKind;
use crate::registry::Client;

/// Pushes each chart to the destination registry from the cache (its blobs when the registry
/// lacks them, then the manifest under the version's tag). Returns per chart whether it was
/// already there, or why it failed.
pub async fn push(charts: &[Chart], client: &Client, cache: &Cache) -> Vec<Result<bool, String>> {
    let mut out = Vec::new();
    for c in charts {
        out.push(
            push_one(c, client, cache)
                .await
                .map_err(|e| format!("{}: chart {} to {}: {e}", c.field, c.id(), c.destination)),
        );
    }
    out
}

async fn push_one(c: &Chart, client: &Client, cache: &Cache) -> Result<bool, String> {
    let r = crate::image::ImageRef::parse(&c.destination).map_err(|e| e.to_string())?;
    let tag = r.tag.clone().unwrap_or_else(|| chart::tag(&c.artifact.meta.version));
    let (registry, repo) = (r.registry.as_str(), r.path.as_str());
    let present = client.manifest_head(registry, repo, &tag).await.map_err(|e| e.to_string())?;
    if present.is_some_and(|(d, _)| d == c.artifact.digest) {
        return Ok(true);
    }
    for d in &c.blobs()[1..] {
        if client.blob_head(registry, repo, &d.digest).await.map_err(|e| e.to_string())?.is_none() {
            let path = cache.path(&d.digest).map_err(|e| e.to_string())?;
            client.blob_upload(registry, repo, &d.digest, d.size, &path, None).await.map_err(|e| e.to_string())?;
        }
    }
    client
        .manifest_put(registry, repo, &tag, &c.artifact.manifest, chart::MANIFEST_MEDIA_TYPE)
        .await
        .map_err(|e| e.to_string())?;
    Ok(false)
}

/// Mirror to disk: the charts as archived images (kind `helmImage`, origin the chart's URL or
/// `file://` path, never `docker://`, which is how disk to mirror tells them from the images)
/// and their blobs.
pub fn archived(charts: &[Chart]) -> (Vec<archive::ArchivedImage>, Vec<crate::image::manifest::Descriptor>) {
    let images = charts
        .iter()
        .map(|c| archive::ArchivedImage {
            name: c.destination.trim_start_matches("docker://").to_string(),
            origin: c.origin.clone(),
            digest: c.artifact.digest.clone(),
            media_type: chart::MANIFEST_MEDIA_TYPE.to_string(),
            kind: Some(ImageKind::Helm),
        })
        .collect();
    (images, charts.iter().flat_map(|c| c.blobs()).collect())
}

/// The result lines of the charts: pushed (`pushed` holds one outcome per chart), or archived;
/// then each chart that could not be pushed.
pub fn summary(charts: &[Chart], pushed: &[Result<bool, String>], archived: bool) -> Vec<String> {
    if charts.is_empty() {
        return Vec::new();
    }
    if pushed.is_empty() {
        return if archived { vec![format!("✓ {} helm charts archived", charts.len())] } else { Vec::new() };
    }
    let ok = pushed.iter().filter(|p| p.is_ok()).count();
    let present = pushed.iter().filter(|p| matches!(p, Ok(true))).count();
    let (mark, how) = if ok == charts.len() {
        ("✓", " successfully".to_string())
    } else {
        ("✗", ": Some helm charts failed to be mirrored - please check the logs".to_string())
    };
    let mut lines =
        vec![format!("{mark} {ok} / {} helm charts mirrored{how} ({present} already present)", charts.len())];
    lines.extend(pushed.iter().filter_map(|p| p.as_ref().err()).map(|e| format!("✗ {e}")));
    lines
}
