//! The benchmark's inputs: each tarball extracted once (the YAML form) and rendered once to
//! JSON streams (the JSON form), cached and rebuilt only when the tarball or the renderer
//! changes.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// How the catalog's files are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// YAML documents, as community catalogs keep them in git.
    Yaml,
    /// JSON streams, as opm renders them into catalog images.
    Json,
}

impl Form {
    /// Short name, as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Form::Yaml => "yaml",
            Form::Json => "json",
        }
    }

    /// Form by its short name.
    pub fn parse(s: &str) -> Option<Form> {
        [Form::Yaml, Form::Json].into_iter().find(|f| f.name() == s)
    }
}

/// How the JSON form is produced from the YAML.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonFrom {
    /// `opm render <package dir> -o json`: opm's own (indented) output.
    Opm,
    /// Each YAML document read with serde-saphyr and written as one compact JSON line.
    Serde,
}

impl JsonFrom {
    /// For the report.
    pub fn describe(self) -> &'static str {
        match self {
            JsonFrom::Opm => "`opm render <package> -o json` per package",
            JsonFrom::Serde => "serde (each YAML document as one compact JSON line)",
        }
    }

    fn dir_name(self) -> &'static str {
        match self {
            JsonFrom::Opm => "json-opm",
            JsonFrom::Serde => "json-serde",
        }
    }
}

/// One catalog, ready in both forms.
pub struct Prepared {
    /// Tarball name without `.tar.gz`.
    pub name: String,
    yaml: PathBuf,
    json: PathBuf,
    /// Bytes of the catalog files of the YAML form.
    pub yaml_bytes: u64,
    /// Bytes of the catalog files of the JSON form.
    pub json_bytes: u64,
    /// Files of the YAML form.
    pub files: usize,
}

impl Prepared {
    /// The catalog root of a form.
    pub fn dir(&self, form: Form) -> PathBuf {
        match form {
            Form::Yaml => self.yaml.clone(),
            Form::Json => self.json.clone(),
        }
    }

    /// Size of a form's catalog files.
    pub fn bytes(&self, form: Form) -> u64 {
        match form {
            Form::Yaml => self.yaml_bytes,
            Form::Json => self.json_bytes,
        }
    }
}

/// The `.tar.gz` files of `data` whose names contain one of `filters` (all when empty), sorted.
pub fn tarballs(data: &Path, filters: &[String]) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(data)
        .with_context(|| format!("read {}", data.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let n = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            n.ends_with(".tar.gz") && (filters.is_empty() || filters.iter().any(|f| n.contains(f.as_str())))
        })
        .collect();
    out.sort();
    if out.is_empty() {
        bail!("no catalog tarball (*.tar.gz) in {} matches {filters:?}", data.display());
    }
    Ok(out)
}

/// Extracts and renders a tarball unless the cache already holds it.
pub fn ensure(tarball: &Path, cache: &Path, json_from: JsonFrom, opm: Option<&Path>) -> Result<Prepared> {
    let file = tarball.file_name().context("tarball name")?.to_string_lossy();
    let name = file.trim_end_matches(".tar.gz").to_string();
    let base = cache.join("catalog").join(&name);
    std::fs::create_dir_all(&base)?;
    let meta = std::fs::metadata(tarball)?;
    let mtime = meta.modified()?.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let key = format!("{} {} {mtime}", tarball.display(), meta.len());

    let yaml = base.join("yaml");
    if !fresh(&base.join("yaml.stamp"), &key) {
        eprintln!("bench: extracting {}", tarball.display());
        rebuild(&yaml, |tmp| {
            let gz = flate2::read::GzDecoder::new(std::fs::File::open(tarball)?);
            tar::Archive::new(gz).unpack(tmp).with_context(|| format!("extract {}", tarball.display()))
        })?;
        std::fs::write(base.join("yaml.stamp"), &key)?;
    }

    let json = base.join(json_from.dir_name());
    let json_key = match (json_from, opm) {
        (JsonFrom::Opm, Some(opm)) => format!("{key}\n{}", super::measure::opm_version(opm)),
        _ => key.clone(),
    };
    let json_stamp = base.join(format!("{}.stamp", json_from.dir_name()));
    if !fresh(&json_stamp, &json_key) {
        eprintln!("bench: rendering {name} to JSON with {}", json_from.describe());
        rebuild(&json, |tmp| convert(&yaml, &yaml, tmp, json_from, opm))?;
        std::fs::write(&json_stamp, &json_key)?;
    }

    let (yaml_bytes, files) = catalog_bytes(&yaml)?;
    let (json_bytes, _) = catalog_bytes(&json)?;
    Ok(Prepared { name, yaml, json, yaml_bytes, json_bytes, files })
}

fn fresh(stamp: &Path, key: &str) -> bool {
    std::fs::read_to_string(stamp).is_ok_and(|s| s == key)
}

/// Builds `dir` in a sibling temporary directory and swaps it in, so an interrupted run
/// never leaves a half-written catalog that looks complete.
fn rebuild(dir: &Path, build: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    build(&tmp)?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&tmp, dir)?;
    Ok(())
}

/// Mirrors `dir` (under the YAML root `root`) into `out`: with opm, each package directory
/// (a directory holding catalog files) becomes one `catalog.json`; with serde, each file
/// becomes a `.json` file beside where it was.
fn convert(root: &Path, dir: &Path, out: &Path, how: JsonFrom, opm: Option<&Path>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
    entries.sort();
    let has_files = entries.iter().any(|p| p.is_file() && is_catalog_file(p));
    let rel = dir.strip_prefix(root).unwrap_or(dir);
    if how == JsonFrom::Opm && has_files {
        // opm renders everything under a directory as one stream, as it does per package
        // when building an image from `configs/`.
        let opm = opm.context("opm")?;
        std::fs::create_dir_all(out.join(rel))?;
        let dest = out.join(rel).join("catalog.json");
        let status = Command::new(opm)
            .arg("render")
            .arg(dir)
            .args(["-o", "json"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&dest)?)
            .status()
            .with_context(|| format!("run {}", opm.display()))?;
        if !status.success() {
            bail!("opm render {} failed: {status}", dir.display());
        }
        return Ok(());
    }
    for p in entries {
        if p.is_dir() {
            convert(root, &p, out, how, opm)?;
        } else if is_catalog_file(&p) {
            std::fs::create_dir_all(out.join(rel))?;
            let dest = out.join(rel).join(p.with_extension("json").file_name().context("file name")?);
            std::fs::write(&dest, to_json_stream(&p)?)?;
        }
    }
    Ok(())
}

/// Every YAML document of a file as one compact JSON line.
fn to_json_stream(path: &Path) -> Result<Vec<u8>> {
    let text = std::fs::read_to_string(path)?;
    if path.extension().is_some_and(|e| e == "json") {
        return Ok(text.into_bytes());
    }
    // Catalog documents exceed the parser's default budgets.
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple_with_options(&text, imageset_operator::catalog::yaml_options())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for d in docs.iter().filter(|d| !d.is_null()) {
        serde_json::to_writer(&mut out, d)?;
        out.push(b'\n');
    }
    Ok(out)
}

fn is_catalog_file(p: &Path) -> bool {
    let n = p.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    !n.starts_with('.') && (n.ends_with(".yaml") || n.ends_with(".yml") || n.ends_with(".json"))
}

/// Total size and number of the catalog files under `dir`.
fn catalog_bytes(dir: &Path) -> Result<(u64, usize)> {
    let mut total = (0, 0);
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            let (b, n) = catalog_bytes(&p)?;
            total = (total.0 + b, total.1 + n);
        } else if is_catalog_file(&p) {
            total = (total.0 + std::fs::metadata(&p)?.len(), total.1 + 1);
        }
    }
    Ok(total)
}
