//! What a registry served during one measured copy, counted from its request log (see
//! `registry`): what was pulled and written, and how many requests it took.

use serde::Serialize;

use super::registry::Response;

/// Requests a registry served during one measured run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Traffic {
    /// Every request.
    pub requests: u64,
    /// Successful blob GETs.
    pub blob_gets: u64,
    /// Distinct digests among them.
    pub unique_blob_gets: u64,
    /// Body bytes sent for them.
    pub blob_bytes: u64,
    /// Manifest GETs.
    pub manifest_gets: u64,
    /// HEAD requests.
    pub heads: u64,
    /// `GET /v2/` pings.
    pub pings: u64,
    /// PUT, POST, PATCH and DELETE requests.
    pub writes: u64,
    /// Completed blob uploads.
    pub uploads: u64,
    /// Successful cross-repository mounts.
    pub mounts: u64,
    /// Successful manifest PUTs.
    pub manifest_puts: u64,
    /// Responses with a 5xx status.
    pub server_errors: u64,
}

impl Traffic {
    /// Counts `responses` (as `LoggedRegistry::responses_since` returns them).
    pub fn count(responses: &[Response]) -> Traffic {
        let mut t = Traffic::default();
        let mut digests = std::collections::HashSet::new();
        for r in responses {
            let (path, ok) = (r.path.as_str(), r.ok());
            t.requests += 1;
            t.server_errors += u64::from(r.status >= 500);
            match r.method.as_str() {
                "GET" if path == "/v2/" => t.pings += 1,
                "GET" if path.contains("/blobs/sha256:") && ok => {
                    t.blob_gets += 1;
                    t.blob_bytes += r.written;
                    digests.insert(path.rsplit('/').next().unwrap_or_default().to_string());
                }
                "GET" if path.contains("/manifests/") => t.manifest_gets += 1,
                "HEAD" => t.heads += 1,
                method @ ("PUT" | "POST" | "PATCH" | "DELETE") => {
                    t.writes += 1;
                    if ok && method == "PUT" && path.contains("/blobs/uploads/") {
                        t.uploads += 1;
                    }
                    if r.status == 201 && method == "POST" && r.uri.contains("mount=") {
                        t.mounts += 1;
                    }
                    if ok && method == "PUT" && path.contains("/manifests/") {
                        t.manifest_puts += 1;
                    }
                }
                _ => {}
            }
        }
        t.unique_blob_gets = digests.len() as u64;
        t
    }
}
