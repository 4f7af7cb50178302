//! Medians, ratios and targets of the catalog benchmark, as Markdown tables and JSON.

use std::fmt::Write;

use serde_json::{Value, json};

use super::child::Case;
use super::measure::Sample;
use super::prepare::{Form, Prepared};

/// Targets, as the project set them.
const C_PARSE_FACTOR: f64 = 3.0;
const RSS_FACTOR: f64 = 3.0;

/// Medians of the successful samples of one tool on one catalog form.
#[derive(Default)]
struct Median {
    n: usize,
    wall: f64,
    cpu: f64,
    rss_kib: f64,
    parse: f64,
    filter: f64,
    total: f64,
    detail: Option<Value>,
    error: Option<String>,
}

fn median(samples: &[Sample], catalog: &str, form: Form, tool: &str) -> Median {
    let all: Vec<&Sample> =
        samples.iter().filter(|s| s.catalog == catalog && s.form == form.name() && s.tool == tool).collect();
    let ok: Vec<&Sample> = all.iter().copied().filter(|s| s.error.is_none()).collect();
    let error = all.iter().find_map(|s| s.error.clone());
    if ok.is_empty() {
        return Median { error, ..Default::default() };
    }
    let mid = |f: &dyn Fn(&Sample) -> f64| mid_of(ok.iter().map(|s| f(s)).collect());
    Median {
        n: ok.len(),
        wall: mid(&|s| s.wall_s),
        cpu: mid(&|s| s.cpu_s),
        rss_kib: mid(&|s| s.rss_kib as f64),
        parse: mid(&|s| s.parse_s.unwrap_or(0.0)),
        filter: mid(&|s| s.filter_s.unwrap_or(0.0)),
        total: mid(&|s| s.parse_s.unwrap_or(0.0) + s.filter_s.unwrap_or(0.0)),
        detail: ok[0].detail.clone(),
        error,
    }
}

fn ms(s: f64) -> String {
    if s >= 0.1 { format!("{:.0} ms", s * 1e3) } else { format!("{:.1} ms", s * 1e3) }
}

fn mib(kib: f64) -> String {
    format!("{:.1} MiB", kib / 1024.0)
}

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 { format!("{:.2}", a / b) } else { "n/a".into() }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "UNMET" }
}

/// The printed report: side by side (catalog only), every case, then the targets.
pub fn table(
    catalogs: &[Prepared],
    forms: &[Form],
    cases: &[Case],
    samples: &[Sample],
    runs: usize,
    machine: &str,
) -> String {
    let mut t = String::new();
    let heads = cases.first().copied().unwrap_or(Case::Heads);
    let (prefix, label) = labels(catalogs);
    let _ = writeln!(t, "\nCatalog benchmark, median of {runs} run(s); {machine}");
    if !prefix.is_empty() {
        let _ = writeln!(t, "catalogs: {prefix}*.tar.gz");
    }
    let _ = writeln!(
        t,
        "ours = load_dir + select ({}) + filtered_files, timed inside the process; C parse = Python's \
         libyaml CSafeLoader (yaml) or json C decoder (json), timed inside the process; opm = `opm render \
         <dir> -o json` wall time; wall = whole process under GNU time; RSS = its peak.\n",
        heads.name()
    );
    let _ = writeln!(
        t,
        "| catalog | form | size | ours parse | ours filter | ours total | ours wall | ours RSS | RSS / size | C parse | C RSS | C / ours | opm wall | opm RSS | opm / ours |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let mut targets = String::new();
    let mut notes = Vec::new();
    for (cat, name) in catalogs.iter().zip(&label) {
        for &form in forms {
            let size_kib = cat.bytes(form) as f64 / 1024.0;
            let ours = median(samples, &cat.name, form, &format!("ours-{}", heads.name()));
            let py = median(samples, &cat.name, form, "python-c");
            let opm = median(samples, &cat.name, form, "opm-render");
            for (who, m) in [("ours", &ours), ("C parse", &py), ("opm", &opm)] {
                if let Some(e) = &m.error {
                    notes.push(format!("{name} {} {who}: {e}", form.name()));
                }
            }
            let total = ours.total;
            let cell = |m: &Median, v: String| if m.n > 0 { v } else { "n/a".into() };
            let _ = writeln!(
                t,
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                form.name(),
                mib(size_kib),
                cell(&ours, ms(ours.parse)),
                cell(&ours, ms(ours.filter)),
                cell(&ours, ms(total)),
                cell(&ours, ms(ours.wall)),
                cell(&ours, mib(ours.rss_kib)),
                cell(&ours, ratio(ours.rss_kib, size_kib)),
                cell(&py, ms(py.parse)),
                cell(&py, mib(py.rss_kib)),
                cell(&py, ratio(py.parse, total)),
                cell(&opm, ms(opm.wall)),
                cell(&opm, mib(opm.rss_kib)),
                cell(&opm, ratio(opm.wall, ours.wall)),
            );
            if ours.n == 0 {
                continue;
            }
            let mut parts = Vec::new();
            // The target's yardstick is libyaml parsing the catalog (its YAML form), whichever
            // form we read; the JSON decoder's figure is shown beside it.
            let libyaml = median(samples, &cat.name, Form::Yaml, "python-c");
            if libyaml.n > 0 {
                let r = libyaml.parse / total;
                parts.push(format!(
                    ">= {C_PARSE_FACTOR}x faster than the libyaml parse: {} ({r:.2}x on total, {:.2}x parse alone)",
                    verdict(r >= C_PARSE_FACTOR),
                    libyaml.parse / ours.parse
                ));
            }
            if form == Form::Json && py.n > 0 {
                parts.push(format!("{:.2}x the C json decoder (no target)", py.parse / total));
            }
            if opm.n > 0 {
                let r = opm.wall / ours.wall;
                parts.push(format!("faster than opm render: {} ({r:.2}x)", verdict(r > 1.0)));
            }
            let r = ours.rss_kib / size_kib;
            parts.push(format!("peak RSS < {RSS_FACTOR}x size: {} ({r:.2}x)", verdict(r < RSS_FACTOR)));
            let _ = writeln!(targets, "- {name} {}: {}", form.name(), parts.join("; "));
        }
    }

    let _ = writeln!(t, "\nEvery case (ours; filter = select + filtered_files):\n");
    let _ = writeln!(
        t,
        "| catalog | form | case | selection | bundles kept | written | parse | select | filter | total | wall | CPU | peak RSS |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (cat, name) in catalogs.iter().zip(&label) {
        for &form in forms {
            for &case in cases {
                let m = median(samples, &cat.name, form, &format!("ours-{}", case.name()));
                let Some(d) = &m.detail else {
                    let _ = writeln!(t, "| {name} | {} | {} | failed | | | | | | | | | |", form.name(), case.name());
                    continue;
                };
                let tool = format!("ours-{}", case.name());
                let select = mid_of(
                    samples
                        .iter()
                        .filter(|s| {
                            s.catalog == cat.name && s.form == form.name() && s.tool == tool && s.error.is_none()
                        })
                        .filter_map(|s| s.detail.as_ref()?["select_s"].as_f64())
                        .collect(),
                );
                let _ = writeln!(
                    t,
                    "| {name} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    form.name(),
                    case.name(),
                    d["what"].as_str().unwrap_or(""),
                    d["kept"],
                    d["bundles"],
                    mib(d["out_bytes"].as_f64().unwrap_or(0.0) / 1024.0),
                    ms(m.parse),
                    ms(select),
                    ms(m.filter),
                    ms(m.total),
                    ms(m.wall),
                    ms(m.cpu),
                    mib(m.rss_kib),
                );
            }
        }
    }
    let _ = writeln!(t, "\nTargets (ours = catalog-only case):\n{targets}");
    for n in notes {
        let _ = writeln!(t, "note: {n}");
    }
    t
}

/// Catalog names for the tables: without the prefix they all share (up to a `-`), which
/// is returned too, so `community-operators-prod-catalogs-v4.16` shows as `v4.16`.
fn labels(catalogs: &[Prepared]) -> (String, Vec<String>) {
    let names: Vec<&str> = catalogs.iter().map(|c| c.name.as_str()).collect();
    let mut prefix = names.first().copied().unwrap_or("");
    for n in &names {
        let common = prefix.bytes().zip(n.bytes()).take_while(|(a, b)| a == b).count();
        prefix = &prefix[..common];
    }
    let cut = if names.len() > 1 { prefix.rfind('-').map_or(0, |i| i + 1) } else { 0 };
    (names.first().map_or("", |n| &n[..cut]).to_string(), names.iter().map(|n| n[cut..].to_string()).collect())
}

/// The median; an even count takes the mean of the middle two.
fn mid_of(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Every sample and each catalog's shape, for later comparison.
pub fn to_json(catalogs: &[Prepared], samples: &[Sample], context: Value) -> Value {
    let cats: Vec<Value> = catalogs
        .iter()
        .map(|c| json!({"name": c.name, "files": c.files, "yaml_bytes": c.yaml_bytes, "json_bytes": c.json_bytes}))
        .collect();
    json!({ "context": context, "catalogs": cats, "samples": samples })
}
