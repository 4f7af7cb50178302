//! What the deletes did, as the registry saw it: the requests it logged during a run (see
//! `registry`), and which images it still serves afterwards.

use serde::Serialize;

use crate::registry::{LoggedRegistry, Response, head_manifest};
use crate::support::storage::Written;

/// The images among `images` the registry still serves, by tag or by digest, as
/// `repo:tag (what answered)`. One HEAD per tag and one per digest, from a few threads.
pub fn still_there(reg: &LoggedRegistry, images: &[Written]) -> Vec<String> {
    let http = client();
    each(images, |w| {
        let mut found = Vec::new();
        for reference in [&w.tag, &w.digest] {
            match head_manifest(&http, &reg.host, &w.repo, reference) {
                Ok((404, _)) => {}
                Ok((status, _)) => found.push(format!("{reference}: {status}")),
                Err(e) => found.push(format!("{reference}: {e}")),
            }
        }
        (!found.is_empty()).then(|| format!("{}:{} ({})", w.repo, w.tag, found.join(", ")))
    })
}

/// The images among `images` the registry does not serve by tag with their digest, as
/// `repo:tag (status digest)`: the check before a run that the set is in place.
pub fn not_served(reg: &LoggedRegistry, images: &[Written]) -> Vec<String> {
    let http = client();
    each(images, |w| match head_manifest(&http, &reg.host, &w.repo, &w.tag) {
        Ok((200, Some(d))) if d == w.digest => None,
        Ok((status, digest)) => {
            Some(format!("{}:{} ({status} {})", w.repo, w.tag, digest.as_deref().unwrap_or("no digest")))
        }
        Err(e) => Some(format!("{}:{} ({e})", w.repo, w.tag)),
    })
}

/// `check` over `images` from four threads; the findings in image order.
fn each(images: &[Written], check: impl Fn(&Written) -> Option<String> + Sync) -> Vec<String> {
    let chunk = images.len().div_ceil(4).max(1);
    std::thread::scope(|s| {
        let handles: Vec<_> = images
            .chunks(chunk)
            .map(|part| {
                let check = &check;
                s.spawn(move || part.iter().filter_map(check).collect::<Vec<_>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("check thread")).collect()
    })
}

/// A client for the checks: a HEAD that hangs fails after 30 s rather than the bench.
fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(30)).build().expect("http client")
}

/// Requests the registry served during one measured run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Requests {
    /// Every request.
    pub total: u64,
    /// `GET /v2/` pings (version checks and auth probes).
    pub pings: u64,
    /// HEAD requests.
    pub heads: u64,
    /// GET requests other than pings (manifests, blobs, tag lists).
    pub gets: u64,
    /// DELETE requests.
    pub deletes: u64,
    /// DELETEs answered 202 Accepted: a manifest removed.
    pub deletes_accepted: u64,
    /// Any other method.
    pub other: u64,
    /// Responses with a 4xx status.
    pub client_errors: u64,
    /// Responses with a 5xx status.
    pub server_errors: u64,
}

impl Requests {
    /// Counts `responses` (as `LoggedRegistry::responses_since` returns them).
    pub fn count(responses: &[Response]) -> Requests {
        let mut t = Requests::default();
        for r in responses {
            t.total += 1;
            t.client_errors += u64::from((400..500).contains(&r.status));
            t.server_errors += u64::from(r.status >= 500);
            match r.method.as_str() {
                "GET" if r.path == "/v2/" => t.pings += 1,
                "GET" => t.gets += 1,
                "HEAD" => t.heads += 1,
                "DELETE" => {
                    t.deletes += 1;
                    t.deletes_accepted += u64::from(r.status == 202);
                }
                _ => t.other += 1,
            }
        }
        t
    }
}
