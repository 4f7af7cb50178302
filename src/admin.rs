//! The admin endpoint: `/healthz`, `/readyz` and `/metrics` (Prometheus text format).
//! A few fixed paths over plain HTTP/1.1, so no web framework is pulled in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counters the controller updates and `/metrics` reports.
#[derive(Default)]
pub struct Metrics {
    /// Reconciles run.
    pub reconciles: AtomicU64,
    /// Reconciles that failed.
    pub reconcile_errors: AtomicU64,
    /// Image sets found invalid.
    pub invalid_specs: AtomicU64,
    /// Runs started.
    pub runs_started: AtomicU64,
    /// Runs that ended incomplete or failed.
    pub runs_failed: AtomicU64,
    /// Images copied.
    pub images_copied: AtomicU64,
    /// Images that failed.
    pub images_failed: AtomicU64,
    /// Manifests deleted by approved delete plans.
    pub images_deleted: AtomicU64,
    /// Images a delete kept because a live image set needs them.
    pub images_protected: AtomicU64,
    /// Blob bytes runs uploaded to destinations or stored in the cache.
    pub bytes_copied: AtomicU64,
    /// Runs under way (including those waiting for a slot).
    pub runs_active: AtomicU64,
    /// Runs waiting for a slot.
    pub runs_queued: AtomicU64,
    /// Shard Jobs created.
    pub shard_jobs: AtomicU64,
    /// Shard pods that failed (each retried for its index, up to the backoff per index).
    pub shard_pods_failed: AtomicU64,
    /// Shard pods the Jobs under way may run at once.
    pub shard_pods: AtomicU64,
    /// Failed runs and reconciles by reason.
    pub failures: std::sync::Mutex<std::collections::BTreeMap<String, u64>>,
    /// Set once the controller's watches are running.
    pub ready: AtomicBool,
    /// The shared cache, for its hit and miss counts.
    pub cache: std::sync::OnceLock<Arc<crate::cache::Cache>>,
    /// How long runs took, from getting a copy slot to their end.
    pub run_seconds: Histogram,
    /// When each image set (namespace, name) last finished a complete run, seconds since the
    /// epoch.
    pub last_success: std::sync::Mutex<std::collections::BTreeMap<(String, String), f64>>,
}

/// Upper bounds of the run duration buckets, in seconds: runs take from seconds (nothing new)
/// to hours (a release's first mirror).
pub const RUN_BUCKETS: [f64; 12] =
    [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0];

/// A Prometheus histogram over [`RUN_BUCKETS`].
#[derive(Default)]
pub struct Histogram {
    /// Observations per bucket (not cumulative), the sum and the count.
    state: std::sync::Mutex<([u64; RUN_BUCKETS.len()], f64, u64)>,
}

impl Histogram {
    /// Records one observation.
    pub fn observe(&self, secs: f64) {
        let mut s = self.state.lock().expect("histogram");
        if let Some(i) = RUN_BUCKETS.iter().position(|b| secs <= *b) {
            s.0[i] += 1;
        }
        s.1 += secs;
        s.2 += 1;
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let (buckets, sum, count) = *self.state.lock().expect("histogram");
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} histogram\n"));
        let mut cumulative = 0;
        for (bound, n) in RUN_BUCKETS.iter().zip(buckets) {
            cumulative += n;
            out.push_str(&format!("{name}_bucket{{le=\"{bound}\"}} {cumulative}\n"));
        }
        out.push_str(&format!("{name}_bucket{{le=\"+Inf\"}} {count}\n{name}_sum {sum}\n{name}_count {count}\n"));
    }
}

/// A label value in the exposition format: backslash, quote and newline escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, help, v) in [
            ("imageset_operator_reconciles_total", "Reconciles run.", &self.reconciles),
            ("imageset_operator_reconcile_errors_total", "Reconciles that failed.", &self.reconcile_errors),
            ("imageset_operator_invalid_specs_total", "Reconciles that found an invalid spec.", &self.invalid_specs),
            ("imageset_operator_runs_total", "Mirror runs started.", &self.runs_started),
            ("imageset_operator_runs_failed_total", "Mirror runs that ended incomplete or failed.", &self.runs_failed),
            ("imageset_operator_images_copied_total", "Images copied.", &self.images_copied),
            ("imageset_operator_images_failed_total", "Images that failed to copy.", &self.images_failed),
            (
                "imageset_operator_images_deleted_total",
                "Manifests deleted by approved delete plans.",
                &self.images_deleted,
            ),
            (
                "imageset_operator_images_protected_total",
                "Images a delete kept because a live image set needs them.",
                &self.images_protected,
            ),
            (
                "imageset_operator_bytes_copied_total",
                "Blob bytes runs uploaded to destination registries or stored in the cache.",
                &self.bytes_copied,
            ),
            ("imageset_operator_shard_jobs_total", "Shard Jobs created (spec.shards above 1).", &self.shard_jobs),
            (
                "imageset_operator_shard_pods_failed_total",
                "Shard pods that failed; the Job retried their index.",
                &self.shard_pods_failed,
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                v.load(Ordering::Relaxed)
            ));
        }
        for (name, help, v) in [
            ("imageset_operator_runs_active", "Runs under way, queued ones included.", &self.runs_active),
            ("imageset_operator_runs_queued", "Runs waiting for a copy slot.", &self.runs_queued),
            (
                "imageset_operator_shard_pods",
                "Shard pods the Jobs under way may run at once (at most --max-shard-pods).",
                &self.shard_pods,
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}\n", v.load(Ordering::Relaxed)));
        }
        if let Some(c) = self.cache.get() {
            for (name, help, v) in [
                ("imageset_operator_cache_hits_total", "Blobs and manifests taken from the cache.", &c.hits),
                ("imageset_operator_cache_misses_total", "Blobs and manifests fetched into the cache.", &c.misses),
            ] {
                out.push_str(&format!(
                    "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                    v.load(Ordering::Relaxed)
                ));
            }
        }
        let name = "imageset_operator_failures_total";
        out.push_str(&format!("# HELP {name} Failed runs and reconciles by reason.\n# TYPE {name} counter\n"));
        for (reason, n) in self.failures.lock().expect("failures").iter() {
            out.push_str(&format!("{name}{{reason=\"{reason}\"}} {n}\n"));
        }
        self.run_seconds.render(
            "imageset_operator_run_duration_seconds",
            "How long mirror runs took, from getting a copy slot to their end.",
            &mut out,
        );
        let name = "imageset_operator_last_success_timestamp_seconds";
        out.push_str(&format!(
            "# HELP {name} When the image set last finished a complete run (seconds since the epoch).\n# TYPE {name} gauge\n"
        ));
        for ((ns, set), at) in self.last_success.lock().expect("last success").iter() {
            out.push_str(&format!("{name}{{namespace=\"{}\",name=\"{}\"}} {at}\n", label(ns), label(set)));
        }
        let name = "imageset_operator_build_info";
        out.push_str(&format!(
            "# HELP {name} The running binary's version, commit and build date (always 1).\n# TYPE {name} gauge\n{name}{{version=\"{}\",commit=\"{}\",build_date=\"{}\"}} 1\n",
            label(crate::telemetry::VERSION),
            label(crate::telemetry::COMMIT),
            label(crate::telemetry::BUILD_DATE)
        ));
        out
    }

    /// Records that an image set finished a complete run at `at` (seconds since the epoch).
    pub fn succeeded(&self, namespace: &str, name: &str, at: f64) {
        self.last_success.lock().expect("last success").insert((namespace.to_string(), name.to_string()), at);
    }

    /// Drops a deleted image set's series.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.last_success.lock().expect("last success").remove(&(namespace.to_string(), name.to_string()));
    }

    /// Counts a failure under its reason.
    pub fn failed(&self, reason: &str) {
        *self.failures.lock().expect("failures").entry(reason.to_string()).or_default() += 1;
    }
}

fn response(path: &str, metrics: &Metrics) -> (u16, &'static str, String) {
    match path {
        "/healthz" | "/livez" => (200, "text/plain", "ok\n".into()),
        "/readyz" if metrics.ready.load(Ordering::Relaxed) => (200, "text/plain", "ok\n".into()),
        "/readyz" => (503, "text/plain", "not ready\n".into()),
        "/metrics" => (200, "text/plain; version=0.0.4", metrics.render()),
        _ => (404, "text/plain", "not found\n".into()),
    }
}

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 2048];
            let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await;
            let Ok(Ok(n)) = read else { return };
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("/").split('?').next().unwrap_or("/").to_string();
            let (code, ctype, body) = response(&path, &metrics);
            let reason = match code {
                200 => "OK",
                503 => "Service Unavailable",
                _ => "Not Found",
            };
            let msg = format!(
                "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(msg.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_the_controller_and_metrics_render() {
        let m = Metrics::default();
        assert_eq!(response("/readyz", &m).0, 503);
        m.ready.store(true, Ordering::Relaxed);
        m.reconciles.fetch_add(3, Ordering::Relaxed);
        assert_eq!(response("/readyz", &m).0, 200);
        assert_eq!(response("/healthz", &m).0, 200);
        assert!(response("/metrics", &m).2.contains("imageset_operator_reconciles_total 3\n"));
        assert_eq!(response("/nope", &m).0, 404);
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_image_sets_have_their_series() {
        let m = Metrics::default();
        for secs in [0.5, 4.0, 4.5, 100_000.0] {
            m.run_seconds.observe(secs);
        }
        m.succeeded("team-a", "nightly", 1_700_000_000.0);
        m.succeeded("team-b", "we\"ird", 1_700_000_001.5);
        let text = m.render();
        for line in [
            "imageset_operator_run_duration_seconds_bucket{le=\"1\"} 1\n",
            "imageset_operator_run_duration_seconds_bucket{le=\"5\"} 3\n",
            "imageset_operator_run_duration_seconds_bucket{le=\"86400\"} 3\n",
            "imageset_operator_run_duration_seconds_bucket{le=\"+Inf\"} 4\n",
            "imageset_operator_run_duration_seconds_sum 100009\n",
            "imageset_operator_run_duration_seconds_count 4\n",
            "imageset_operator_last_success_timestamp_seconds{namespace=\"team-a\",name=\"nightly\"} 1700000000\n",
            "imageset_operator_last_success_timestamp_seconds{namespace=\"team-b\",name=\"we\\\"ird\"} 1700000001.5\n",
            "# TYPE imageset_operator_build_info gauge\n",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        m.forget("team-a", "nightly");
        assert!(!m.render().contains("team-a"));
    }
}
