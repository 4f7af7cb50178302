//! The measured side of the catalog benchmark: `--child <case> <dir>` loads the catalog,
//! selects one case and writes the filtered catalog (in memory, as a rebuild would before
//! packing it), then prints its own timings as one JSON line. Run as a fresh process so GNU
//! time's peak RSS belongs to this one measurement.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use imageset_operator::api::mirror::Operator;
use imageset_operator::catalog::{Catalog, select, write};
use serde_json::json;

/// Which selection is timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// `catalog: x` alone: the heads of every channel of every package.
    Heads,
    /// Every package listed with `full: true`: every bundle of every channel, rebuilt.
    Full,
    /// `minVersion` at the median version of the package with most bundles.
    Range,
}

impl Case {
    /// Every case, in table order.
    pub const ALL: [Case; 3] = [Case::Heads, Case::Full, Case::Range];

    /// Short name, as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Case::Heads => "heads",
            Case::Full => "full",
            Case::Range => "range",
        }
    }

    /// Case by its short name.
    pub fn parse(s: &str) -> Option<Case> {
        Case::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// Entry point of `--child`; returns the exit code.
pub fn main(args: &[String]) -> i32 {
    let (Some(case), Some(dir)) = (args.first().and_then(|c| Case::parse(c)), args.get(1)) else {
        eprintln!("usage: --child heads|full|range <catalog dir>");
        return 2;
    };
    match run(case, Path::new(dir)) {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(e) => {
            eprintln!("child: {e:#}");
            1
        }
    }
}

fn run(case: Case, dir: &Path) -> Result<serde_json::Value> {
    let t0 = Instant::now();
    let cat = Catalog::load_dir(dir).with_context(|| format!("load {}", dir.display()))?;
    let parsed = t0.elapsed();
    let (op, what) = operator(case, &cat)?;
    let t1 = Instant::now();
    let sel = select(&cat, &op, "mirror.operators[0]").map_err(|e| anyhow::anyhow!("{e}"))?;
    let selected = t1.elapsed();
    let files = write::filtered_files(&cat, &sel).context("write the filtered catalog")?;
    let filtered = t1.elapsed();
    let kept: usize = sel.packages.values().map(|p| p.bundles.len()).sum();
    let out_bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    let line = json!({
        "parse_s": parsed.as_secs_f64(),
        "select_s": selected.as_secs_f64(),
        "filter_s": filtered.as_secs_f64(),
        "packages": cat.packages.len(),
        "bundles": cat.bundles.len(),
        "kept": kept,
        "out_bytes": out_bytes,
        "what": what,
    });
    // Not freed, as opm and Python do not free theirs before exiting: the measurement is
    // load + select + write, not the allocator's teardown.
    std::mem::forget((cat, sel, files));
    Ok(line)
}

/// The image-set entry of a case, built from YAML as a user would write it.
fn operator(case: Case, cat: &Catalog) -> Result<(Operator, String)> {
    let (yaml, what) = match case {
        Case::Heads => ("catalog: x\n".to_string(), "catalog only".to_string()),
        Case::Full => {
            let mut y = "catalog: x\nfull: true\npackages:\n".to_string();
            for p in &cat.packages {
                y.push_str(&format!("- name: {:?}\n", p.name));
            }
            (y, format!("{} packages, full", cat.packages.len()))
        }
        Case::Range => {
            // The package with most versioned bundles makes the range walk the longest chain.
            let mut best: Option<(&str, Vec<semver::Version>)> = None;
            for p in &cat.packages {
                let mut vs: Vec<semver::Version> = cat
                    .bundles
                    .iter()
                    .filter(|b| b.package == p.name)
                    .filter_map(|b| b.version.as_deref().and_then(|v| semver::Version::parse(v).ok()))
                    .collect();
                if vs.len() > best.as_ref().map_or(0, |b| b.1.len()) {
                    vs.sort();
                    best = Some((&p.name, vs));
                }
            }
            let Some((name, vs)) = best else { bail!("no package has versioned bundles") };
            let min = &vs[vs.len() / 2];
            (
                format!("catalog: x\npackages:\n- name: {name:?}\n  minVersion: \"{min}\"\n"),
                format!("{name} >= {min} ({} versions)", vs.len()),
            )
        }
    };
    let op: Operator = serde_saphyr::from_str(&yaml).with_context(|| format!("operator entry {yaml:?}"))?;
    Ok((op, what))
}
