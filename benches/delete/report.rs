//! The results: one row per tool, the ratio of each wall time to the skopeo loop's, a compact
//! table on stdout and the full figures as JSON.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use super::measure::Measured;
use super::requests::Requests;
use super::tools::Tool;

/// One measured run of one tool.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Which deleter.
    pub tool: Tool,
    /// Images it was given.
    pub images: usize,
    /// Process figures.
    pub measured: Measured,
    /// The last line of its output that mentions "deleted" (our summary).
    pub summary: String,
    /// What the registry served during the run.
    pub requests: Requests,
    /// Images the registry still served afterwards, by tag or digest.
    pub remaining: Vec<String>,
    /// Why the run could not start, if it could not.
    pub error: Option<String>,
}

impl Row {
    /// Ran to the end, exit 0, nothing left behind.
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && !self.measured.timed_out
            && self.measured.exit_code == Some(0)
            && self.remaining.is_empty()
    }

    fn per_image(&self, n: u64) -> f64 {
        n as f64 / self.images.max(1) as f64
    }

    /// Why the row failed, in a line; None when it did not.
    pub fn failure(&self) -> Option<String> {
        if self.ok() {
            return None;
        }
        Some(match &self.error {
            Some(e) => first_line(e),
            None if self.measured.timed_out => "timed out".into(),
            None if self.measured.exit_code != Some(0) => format!(
                "exit {}: {}",
                self.measured.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "signal".into()),
                last_line(&self.measured.error_tail)
            ),
            None => format!(
                "{} of {} images still there, e.g. {}",
                self.remaining.len(),
                self.images,
                first_line(self.remaining.first().map(String::as_str).unwrap_or(""))
            ),
        })
    }
}

/// The skopeo loop's wall time, when it ran to the end.
fn skopeo_wall(rows: &[Row]) -> Option<f64> {
    rows.iter().find(|r| r.tool == Tool::SkopeoLoop && r.ok()).map(|r| r.measured.wall_s)
}

/// Derived figures for one row.
fn derived(r: &Row, all: &[Row]) -> Value {
    let timed = r.error.is_none() && !r.measured.timed_out && r.measured.wall_s > 0.0;
    let vs_skopeo = skopeo_wall(all).filter(|_| timed).map(|s| r.measured.wall_s / s);
    let q = &r.requests;
    json!({
        "wall_vs_skopeo_loop": vs_skopeo,
        "times_faster_than_skopeo_loop": vs_skopeo.filter(|v| *v > 0.0).map(|v| 1.0 / v),
        "images_per_s": timed.then(|| r.images as f64 / r.measured.wall_s),
        "requests_per_image": r.per_image(q.total),
        "heads_per_image": r.per_image(q.heads),
        "gets_per_image": r.per_image(q.gets),
        "pings_per_image": r.per_image(q.pings),
        "deletes_per_image": r.per_image(q.deletes),
        "cpu_ms_per_image": r.measured.cpu_s() * 1000.0 / r.images.max(1) as f64,
        "peak_rss_mib": r.measured.max_rss_kib as f64 / 1024.0,
    })
}

/// The full results as JSON.
pub fn to_json(rows: &[Row], context: Value) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).expect("row json");
            v["ok"] = json!(r.ok());
            v["derived"] = derived(r, rows);
            v
        })
        .collect();
    json!({"context": context, "rows": rows})
}

/// The table, its footnotes and the comparison in a sentence.
pub fn table(rows: &[Row], header: &[String], how: &[String]) -> String {
    let mut s = String::new();
    for line in header {
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(
        s,
        "{:<18} {:>8} {:>5} {:>7} {:>7} {:>7} {:>6} {:>6} {:>6} {:>6} {:>5} {:>4} {:>10} {:>5}  status",
        "tool",
        "wall s",
        "busy",
        "CPU s",
        "RSS MiB",
        "req/img",
        "HEAD",
        "GET",
        "ping",
        "DEL",
        "4xx",
        "5xx",
        "/skopeo",
        "left"
    );
    let dash = || "-".to_string();
    for r in rows {
        let d = derived(r, rows);
        let f = |k: &str, prec: usize| d[k].as_f64().map(|x| format!("{x:.prec$}")).unwrap_or_else(dash);
        let _ = writeln!(
            s,
            "{:<18} {:>8.2} {:>5} {:>7.2} {:>7.1} {:>7} {:>6} {:>6} {:>6} {:>6} {:>5} {:>4} {:>10} {:>5}  {}",
            r.tool.name(),
            r.measured.wall_s,
            format!("{:.0}%", r.measured.machine_busy * 100.0),
            r.measured.cpu_s(),
            r.measured.max_rss_kib as f64 / 1024.0,
            f("requests_per_image", 2),
            f("heads_per_image", 2),
            f("gets_per_image", 2),
            f("pings_per_image", 2),
            f("deletes_per_image", 2),
            r.requests.client_errors,
            r.requests.server_errors,
            f("wall_vs_skopeo_loop", 4),
            r.remaining.len(),
            r.failure().map(|e| format!("FAILED: {e}")).unwrap_or_else(|| "ok".into()),
        );
    }
    let _ = writeln!(
        s,
        "wall: measured around the process; busy: whole machine's CPU in use during the run; CPU s and RSS: \
         GNU time over the process tree (RSS of its largest process); req/img: requests the registry \
         logged during the run / images, HEAD, GET (other than pings), ping (GET /v2/) and DEL per image \
         beside it; 4xx, 5xx: such responses; /skopeo: this wall / the skopeo loop's wall; left: images \
         the registry still served afterwards (HEAD by tag and by digest)"
    );
    for line in how {
        let _ = writeln!(s, "{line}");
    }
    for r in rows.iter().filter(|r| r.tool == Tool::ImagesetOperator && !r.summary.is_empty()) {
        let _ = writeln!(s, "{} said: {}", r.tool.name(), r.summary);
    }
    let ours = rows.iter().find(|r| r.tool == Tool::ImagesetOperator && r.ok());
    match (ours, skopeo_wall(rows)) {
        (Some(o), Some(sk)) => {
            let _ = writeln!(
                s,
                "imageset-operator / skopeo loop: {:.2} s / {:.2} s = {:.4} ({:.1}x faster), {:.2} vs {} requests per image",
                o.measured.wall_s,
                sk,
                o.measured.wall_s / sk,
                sk / o.measured.wall_s,
                o.per_image(o.requests.total),
                rows.iter()
                    .find(|r| r.tool == Tool::SkopeoLoop)
                    .map(|r| format!("{:.2}", r.per_image(r.requests.total)))
                    .unwrap_or_else(dash),
            );
        }
        _ => {
            let _ = writeln!(s, "imageset-operator / skopeo loop: no ratio (one of them did not run to the end)");
        }
    }
    s
}

fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or("").chars().take(160).collect()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(160).collect()
}
