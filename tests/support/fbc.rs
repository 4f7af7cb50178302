//! Filtered catalogs judged by real opm without building an image: the files the product
//! writes for a selection, loaded by `opm validate` (opm's own model checks: one head per
//! channel, no stranded entries, a default channel that exists, every bundle in a channel).

use std::process::Command;

use imageset_operator::api::mirror::Operator;
use imageset_operator::catalog::{self, Catalog, write};

use super::{require, shared_data, temp_dir};

/// A catalog entry from YAML (the `catalog:` field is filled in).
pub fn operator(yaml: &str) -> Operator {
    serde_saphyr::from_str(&format!("catalog: example.com/catalog:v1\n{yaml}")).expect("operator entry")
}

/// Runs `opm validate` on files (path relative to the catalog root, bytes).
pub fn opm_validate(files: &[(String, Vec<u8>)]) -> Result<(), String> {
    let dir = temp_dir("opm-validate-");
    for (path, bytes) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("a parent")).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    let out = Command::new(require("opm")).arg("validate").arg(dir.path()).output().expect("run opm");
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

/// Selects from `cat` as `yaml` asks, writes the filtered catalog, and has opm validate it;
/// returns the selection.
pub fn select_valid(cat: &Catalog, yaml: &str) -> catalog::Selection {
    let sel = catalog::select(cat, &operator(yaml), "mirror.operators[0]").unwrap_or_else(|e| panic!("{yaml}: {e}"));
    let files = write::filtered_files(cat, &sel).unwrap();
    opm_validate(&files).unwrap_or_else(|e| panic!("opm validate ({yaml}): {e}"));
    sel
}

/// The community catalog snapshot (v4.18, 35 packages) from the shared data, unpacked.
pub fn community_catalog() -> Catalog {
    let dir = temp_dir("community-");
    let gz = std::fs::read(shared_data().join("fbc/bench/community-operators-prod-catalogs-v4.18.tar.gz")).unwrap();
    tar::Archive::new(flate2::read::GzDecoder::new(&gz[..])).unpack(dir.path()).unwrap();
    Catalog::load_dir(&dir.path().join("configs")).unwrap()
}
