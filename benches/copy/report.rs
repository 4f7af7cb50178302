//! The results: one row per tool and phase, ratios against skopeo sync and the bare copier
//! (wall time, requests per image, client CPU, peak RSS), a compact table on stdout and the
//! full figures as JSON.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Value, json};

use super::generate::Stats;
use super::measure::Measured;
use super::tools::Tool;
use super::traffic::Traffic;
use super::workload::human_bytes;

/// Cold copy into an empty destination, or the re-run right after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Into an empty destination.
    Cold,
    /// The same command again: nothing should move.
    Noop,
}

impl Phase {
    /// Name in tables and file names.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Cold => "cold",
            Phase::Noop => "noop",
        }
    }
}

/// One measured run.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Which copier.
    pub tool: Tool,
    /// Which phase.
    pub phase: Phase,
    /// Repetition, from 1.
    pub run: usize,
    /// Process figures.
    pub measured: Measured,
    /// What the source served.
    pub source: Traffic,
    /// What the destination served.
    pub dest: Traffic,
    /// Tags missing from the destination or with another digest afterwards.
    pub failed_images: Vec<String>,
    /// Why the run could not start, if it could not.
    pub error: Option<String>,
}

impl Row {
    fn ok(&self) -> bool {
        self.error.is_none() && self.measured.exit_code == Some(0) && self.failed_images.is_empty()
    }
}

/// Rows of each (tool, phase) with the median wall time, in tool order.
pub fn medians(rows: &[Row]) -> Vec<Row> {
    let mut out = Vec::new();
    for tool in Tool::ALL {
        for phase in [Phase::Cold, Phase::Noop] {
            let mut group: Vec<&Row> = rows.iter().filter(|r| r.tool == tool && r.phase == phase).collect();
            group.sort_by(|a, b| a.measured.wall_s.total_cmp(&b.measured.wall_s));
            if let Some(r) = group.get((group.len().saturating_sub(1)) / 2) {
                out.push((*r).clone());
            }
        }
    }
    out
}

fn wall_of(rows: &[Row], tool: Tool, phase: Phase) -> Option<f64> {
    ok_row(rows, tool, phase).map(|r| r.measured.wall_s)
}

fn ok_row(rows: &[Row], tool: Tool, phase: Phase) -> Option<&Row> {
    rows.iter().find(|r| r.tool == tool && r.phase == phase && r.ok())
}

/// Requests both registries served during the run, per tag in the set.
fn requests_per_image(r: &Row, stats: &Stats) -> f64 {
    (r.source.requests + r.dest.requests) as f64 / stats.tags.max(1) as f64
}

/// Derived figures for one row.
fn derived(r: &Row, all: &[Row], stats: &Stats) -> Value {
    let unique_mb = stats.unique_bytes() as f64 / 1e6;
    let wall = r.measured.wall_s;
    // A run that finished with a few failed images still has a meaningful time (the table
    // says it failed); one that never started or was killed does not.
    let timed = r.error.is_none() && !r.measured.timed_out && wall > 0.0;
    let ratio = |t: Tool, inverse: bool| {
        wall_of(all, t, r.phase).filter(|_| timed).map(|w| if inverse { w / wall } else { wall / w })
    };
    // This row's figure over the bare copier's in the same phase, when both ran to the end.
    let bare = ok_row(all, Tool::Bare, r.phase).filter(|_| timed);
    let vs_bare = |f: &dyn Fn(&Row) -> f64| bare.map(f).filter(|b| *b > 0.0).map(|b| f(r) / b);
    json!({
        "unique_mb_per_s": (r.phase == Phase::Cold && timed).then(|| unique_mb / wall),
        "times_faster_than_skopeo_sync": ratio(Tool::SkopeoSync, true),
        "wall_vs_bare": ratio(Tool::Bare, false),
        "requests_per_image": requests_per_image(r, stats),
        "requests_vs_bare": vs_bare(&|x| requests_per_image(x, stats)),
        "cpu_vs_bare": vs_bare(&|x| x.measured.cpu_s()),
        "rss_vs_bare": vs_bare(&|x| x.measured.max_rss_kib as f64),
        "blob_gets_per_unique_blob": r.source.blob_gets as f64 / stats.unique_blobs() as f64,
        "bytes_pulled_per_unique_byte": r.source.blob_bytes as f64 / stats.unique_bytes() as f64,
        "cpu_ms_per_unique_mb": r.measured.cpu_s() * 1000.0 / unique_mb,
        "peak_rss_mib": r.measured.max_rss_kib as f64 / 1024.0,
    })
}

/// The full results as JSON.
pub fn to_json(rows: &[Row], stats: &Stats, context: Value) -> Value {
    let med = medians(rows);
    let with = |rs: &[Row]| -> Vec<Value> {
        rs.iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).expect("row json");
                v["ok"] = json!(r.ok());
                v["derived"] = derived(r, &med, stats);
                v
            })
            .collect()
    };
    json!({"context": context, "workload": stats, "summary": with(&med), "runs": with(rows)})
}

/// The compact table of the median rows.
pub fn table(rows: &[Row], stats: &Stats, runs: usize, machine: &str) -> String {
    let med = medians(rows);
    let unique_mb = stats.unique_bytes() as f64 / 1e6;
    let mut s = String::new();
    let _ = writeln!(s, "{machine}");
    let _ = writeln!(
        s,
        "workload: {} tags in {} repositories, {} manifests; {} unique blobs ({} layers + {} configs), {}; \
         per image {:.1}x, per repository {:.2}x; {} run(s), median shown",
        stats.tags,
        stats.repos,
        stats.manifests,
        stats.unique_blobs(),
        stats.layers,
        stats.configs,
        human_bytes(stats.unique_bytes()),
        stats.per_image_bytes as f64 / stats.layer_bytes as f64,
        stats.per_repo_bytes as f64 / stats.layer_bytes as f64,
        runs,
    );
    let _ = writeln!(
        s,
        "{:<18} {:<5} {:>7} {:>5} {:>6} {:>8} {:>6} {:>7} {:>12} {:>7} {:>6} {:>6} {:>7} {:>15} {:>4} {:>6}  status",
        "tool",
        "phase",
        "wall s",
        "busy",
        "MB/s",
        "x skopeo",
        "/bare",
        "req/img",
        "blob GETs",
        "pulled",
        "CPU s",
        "ms/MB",
        "RSS MiB",
        "dst up/mnt/wr",
        "5xx",
        "failed"
    );
    let dash = "-".to_string();
    for r in &med {
        let d = derived(r, &med, stats);
        let f = |k: &str, prec: usize| d[k].as_f64().map(|x| format!("{x:.prec$}")).unwrap_or_else(|| dash.clone());
        let status = match (&r.error, r.ok()) {
            (Some(e), _) => format!("FAILED: {}", first_line(e)),
            (None, true) => "ok".to_string(),
            (None, false) if r.measured.timed_out => "FAILED: timed out".to_string(),
            (None, false) if r.measured.exit_code == Some(0) => format!(
                "FAILED: {} tags missing or wrong, e.g. {}",
                r.failed_images.len(),
                first_line(r.failed_images.first().map(String::as_str).unwrap_or(""))
            ),
            (None, false) => format!(
                "FAILED (exit {}): {}",
                r.measured.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "signal".into()),
                last_line(&r.measured.error_tail)
            ),
        };
        let _ = writeln!(
            s,
            "{:<18} {:<5} {:>7.2} {:>5} {:>6} {:>8} {:>6} {:>7} {:>12} {:>7} {:>6.1} {:>6} {:>7.1} {:>15} {:>4} {:>6}  {}",
            r.tool.name(),
            r.phase.name(),
            r.measured.wall_s,
            format!("{:.0}%", r.measured.machine_busy * 100.0),
            f("unique_mb_per_s", 0),
            f("times_faster_than_skopeo_sync", 2),
            f("wall_vs_bare", 2),
            f("requests_per_image", 2),
            format!("{} ({:.2}x)", r.source.blob_gets, d["blob_gets_per_unique_blob"].as_f64().unwrap_or(0.0)),
            format!("{:.2}x", r.source.blob_bytes as f64 / 1e6 / unique_mb),
            r.measured.cpu_s(),
            if r.phase == Phase::Cold { f("cpu_ms_per_unique_mb", 2) } else { dash.clone() },
            r.measured.max_rss_kib as f64 / 1024.0,
            format!("{}/{}/{}", r.dest.uploads, r.dest.mounts, r.dest.writes),
            r.dest.server_errors + r.source.server_errors,
            r.failed_images.len(),
            status,
        );
    }
    let _ = writeln!(
        s,
        "busy: whole machine's CPU in use during the run; x skopeo: skopeo-sync wall / this wall (same phase); /bare: this wall / bare wall; \
         req/img: requests source and destination served / tags; pulled: source blob bytes / \
         unique bytes; ms/MB: client CPU per unique MB; RSS: largest single process; dst up/mnt/wr: blob uploads, \
         mounts and all writes the destination saw"
    );
    // The same rows against the bare copier in the same phase: what each tool spends beyond
    // the practical limit, per figure.
    if med.iter().any(|r| r.tool == Tool::Bare && r.ok()) {
        let _ = writeln!(s, "against bare (same phase), this / bare:");
        let _ = writeln!(s, "{:<18} {:<5} {:>7} {:>8} {:>7} {:>7}", "tool", "phase", "wall", "req/img", "CPU", "RSS");
        for r in med.iter().filter(|r| r.tool != Tool::Bare) {
            let d = derived(r, &med, stats);
            let f = |k: &str| d[k].as_f64().map(|x| format!("{x:.2}x")).unwrap_or_else(|| dash.clone());
            let _ = writeln!(
                s,
                "{:<18} {:<5} {:>7} {:>8} {:>7} {:>7}",
                r.tool.name(),
                r.phase.name(),
                f("wall_vs_bare"),
                f("requests_vs_bare"),
                f("cpu_vs_bare"),
                f("rss_vs_bare"),
            );
        }
    }
    s
}

fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or("").chars().take(140).collect()
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(140).collect()
}
