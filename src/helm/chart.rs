//! A packaged chart as bytes: its `Chart.yaml`, the OCI artifact Helm pushes and pulls
//! (`helm push` / `helm pull oci://`), and a chart directory packaged the way `helm package`
//! does (`.helmignore` honoured, no symbolic links followed). Pure apart from reading the
//! directory being packaged.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

/// Media type of a chart's config blob (Chart.yaml as JSON).
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.cncf.helm.config.v1+json";
/// Media type of a chart's content layer (the `.tgz`).
pub const CONTENT_MEDIA_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// Media type of the artifact's manifest.
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Most bytes read out of a chart archive (gzip bombs stop here).
const MAX_UNPACKED: u64 = 512 << 20;
/// Most bytes packaged from a chart directory.
const MAX_PACKAGED: u64 = 256 << 20;

/// A chart that cannot be read or packaged.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ChartError(pub String);

/// The fields of Chart.yaml the mirror needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    /// `name`.
    pub name: String,
    /// `version`.
    pub version: String,
    /// `type: library`.
    pub library: bool,
}

/// A chart as an OCI artifact: config and manifest bytes (the content layer is the `.tgz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// From Chart.yaml.
    pub meta: Meta,
    /// Chart.yaml as JSON.
    pub config: Vec<u8>,
    /// `sha256:` of the config.
    pub config_digest: String,
    /// `sha256:` of the `.tgz`.
    pub layer_digest: String,
    /// Size of the `.tgz`.
    pub layer_size: u64,
    /// The OCI image manifest.
    pub manifest: Vec<u8>,
    /// `sha256:` of the manifest.
    pub digest: String,
}

/// `sha256:<hex>`.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The registry tag of a chart version: Helm writes `+` (build metadata) as `_`.
pub fn tag(version: &str) -> String {
    version.replace('+', "_")
}

/// The Chart.yaml at the top of a packaged chart (`<dir>/Chart.yaml`).
pub fn chart_yaml(tgz: &[u8]) -> Result<Vec<u8>, ChartError> {
    let gz = flate2::read::GzDecoder::new(tgz).take(MAX_UNPACKED);
    let mut ar = tar::Archive::new(gz);
    let bad = |e: std::io::Error| ChartError(format!("not a chart archive (gzip tar): {e}"));
    for entry in ar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let path = entry.path().map_err(bad)?.to_string_lossy().trim_start_matches("./").to_string();
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if parts.len() == 2 && parts[1] == "Chart.yaml" && entry.header().entry_type().is_file() {
            let mut buf = Vec::new();
            entry.by_ref().take(4 << 20).read_to_end(&mut buf).map_err(bad)?;
            return Ok(buf);
        }
    }
    Err(ChartError("not a chart archive: no Chart.yaml at its top".into()))
}

/// Chart.yaml as a JSON object (Helm's chart config), and its name, version and type.
pub fn meta(chart_yaml: &[u8]) -> Result<(Meta, serde_json::Map<String, serde_json::Value>), ChartError> {
    let text = std::str::from_utf8(chart_yaml).map_err(|e| ChartError(format!("Chart.yaml: {e}")))?;
    let value: serde_json::Value = serde_saphyr::from_str(text).map_err(|e| ChartError(format!("Chart.yaml: {e}")))?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(ChartError("Chart.yaml: not a mapping".into()));
    };
    let text_of = |v: Option<&serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let (name, version) = (text_of(map.get("name")), text_of(map.get("version")));
    if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(ChartError(format!("Chart.yaml: chart name {name:?} is missing or not a name")));
    }
    if version.is_empty() {
        return Err(ChartError(format!("Chart.yaml of {name}: version is missing")));
    }
    // Helm's config has these as strings whatever YAML made of them.
    map.insert("name".into(), name.clone().into());
    map.insert("version".into(), version.clone().into());
    let library = map.get("type").and_then(|t| t.as_str()) == Some("library");
    Ok((Meta { name, version, library }, map))
}

/// The OCI artifact of a packaged chart, as `helm push` lays it out (config = Chart.yaml as
/// JSON, one content layer = the archive). Deterministic: the same archive gives the same
/// digest on every side of the air gap.
pub fn artifact(tgz: &[u8]) -> Result<Artifact, ChartError> {
    let (meta, map) = meta(&chart_yaml(tgz)?)?;
    let config = serde_json::to_vec(&serde_json::Value::Object(map.clone())).expect("JSON serialises");
    let (config_digest, layer_digest) = (sha256(&config), sha256(tgz));
    let mut annotations = serde_json::Map::new();
    if let Some(d) = map.get("description").and_then(|d| d.as_str()) {
        annotations.insert("org.opencontainers.image.description".into(), d.into());
    }
    annotations.insert("org.opencontainers.image.title".into(), meta.name.clone().into());
    annotations.insert("org.opencontainers.image.version".into(), meta.version.clone().into());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": { "mediaType": CONFIG_MEDIA_TYPE, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": CONTENT_MEDIA_TYPE, "digest": layer_digest, "size": tgz.len() }],
        "annotations": annotations,
    });
    let manifest = serde_json::to_vec(&manifest).expect("JSON serialises");
    Ok(Artifact {
        meta,
        config,
        config_digest,
        layer_digest,
        layer_size: tgz.len() as u64,
        digest: sha256(&manifest),
        manifest,
    })
}

/// The chart archive an artifact's manifest names (its content layer digest), if it is a
/// chart's manifest.
pub fn content_layer(manifest: &[u8]) -> Option<(String, u64)> {
    let v: serde_json::Value = serde_json::from_slice(manifest).ok()?;
    if v.pointer("/config/mediaType")?.as_str()? != CONFIG_MEDIA_TYPE {
        return None;
    }
    let layer = v
        .get("layers")?
        .as_array()?
        .iter()
        .find(|l| l.get("mediaType").and_then(|m| m.as_str()) == Some(CONTENT_MEDIA_TYPE))?;
    Some((layer.get("digest")?.as_str()?.to_string(), layer.get("size")?.as_u64()?))
}

/// Packages a chart directory as `helm package` does: every file under `<name>/` except what
/// `.helmignore` (and Helm's default `templates/.?*`) ignores; sorted, with fixed times and
/// modes, so that the same directory always gives the same bytes. Symbolic links are refused:
/// a chart must not carry files from outside its directory.
pub fn package_dir(dir: &Path) -> Result<Vec<u8>, ChartError> {
    let at = |p: &Path, e: &dyn std::fmt::Display| ChartError(format!("{}: {e}", p.display()));
    let chart_yaml = std::fs::read(dir.join("Chart.yaml")).map_err(|e| at(&dir.join("Chart.yaml"), &e))?;
    let (meta, _) = meta(&chart_yaml)?;
    let rules = match std::fs::read_to_string(dir.join(".helmignore")) {
        Ok(text) => Ignore::parse(&text).map_err(|e| at(&dir.join(".helmignore"), &e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
        Err(e) => return Err(at(&dir.join(".helmignore"), &e)),
    };
    let mut files = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(rel) = stack.pop() {
        let here = if rel.is_empty() { dir.to_path_buf() } else { dir.join(&rel) };
        let mut names: Vec<String> = std::fs::read_dir(&here)
            .map_err(|e| at(&here, &e))?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()
            .map_err(|e| at(&here, &e))?;
        names.sort();
        for name in names.into_iter().rev() {
            let path = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
            let full = dir.join(&path);
            let ft = std::fs::symlink_metadata(&full).map_err(|e| at(&full, &e))?.file_type();
            if ft.is_symlink() {
                return Err(at(&full, &"a symbolic link: charts are packaged without following links"));
            }
            if rules.ignored(&path, ft.is_dir()) {
                continue;
            }
            if ft.is_dir() {
                stack.push(path);
            } else if ft.is_file() {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut total = 0u64;
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut b = tar::Builder::new(gz);
    for rel in &files {
        let full = dir.join(rel);
        let data = std::fs::read(&full).map_err(|e| at(&full, &e))?;
        total += data.len() as u64;
        if total > MAX_PACKAGED {
            return Err(at(dir, &format!("more than {} MiB to package", MAX_PACKAGED >> 20)));
        }
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("{}/{rel}", meta.name), data.as_slice()).map_err(|e| at(&full, &e))?;
    }
    let gz = b.into_inner().map_err(|e| at(dir, &e))?;
    gz.finish().map_err(|e| at(dir, &e))
}

/// `.helmignore` rules, read as Helm reads them.
#[derive(Debug)]
pub struct Ignore {
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    pattern: String,
    negate: bool,
    dir_only: bool,
    /// Matched against the whole relative path (the pattern has a `/`), else the last name.
    whole_path: bool,
}

impl Default for Ignore {
    /// Helm's default rule alone: hidden files in `templates/`.
    fn default() -> Self {
        Ignore::parse("").expect("no rules")
    }
}

impl Ignore {
    /// Parses a `.helmignore`: one glob per line, `#` comments, `!` negation, a trailing `/`
    /// for directories only, a leading `/` anchoring at the chart's root; `**` is refused
    /// (Helm refuses it too). Helm's default `templates/.?*` comes last.
    pub fn parse(text: &str) -> Result<Ignore, String> {
        let mut rules = Vec::new();
        for line in text.lines().chain(["templates/.?*"]) {
            let mut p = line.trim();
            if p.is_empty() || p.starts_with('#') {
                continue;
            }
            if p.contains("**") {
                return Err(format!("{p:?}: double-star (**) syntax is not supported"));
            }
            let negate = p.starts_with('!');
            if negate {
                p = &p[1..];
            }
            let dir_only = p.ends_with('/');
            let p = p.trim_end_matches('/');
            let anchored = p.starts_with('/');
            let p = p.trim_start_matches('/');
            if p.is_empty() {
                continue;
            }
            rules.push(Rule { pattern: p.to_string(), negate, dir_only, whole_path: anchored || p.contains('/') });
        }
        Ok(Ignore { rules })
    }

    /// Whether `path` (relative, `/`-separated) is left out. Helm's semantics, quirks kept: a
    /// negated rule that does NOT match ignores the path.
    pub fn ignored(&self, path: &str, is_dir: bool) -> bool {
        let base = path.rsplit('/').next().unwrap_or(path);
        for r in &self.rules {
            let subject = if r.whole_path { path } else { base };
            if r.negate {
                if (r.dir_only && !is_dir) || !glob(&r.pattern, subject) {
                    return true;
                }
                continue;
            }
            if r.dir_only && !is_dir {
                continue;
            }
            if glob(&r.pattern, subject) {
                return true;
            }
        }
        false
    }
}

/// Go's `filepath.Match`: `*` any run of non-`/` characters, `?` one, `[...]` a class
/// (ranges, `^` negation), `\` escapes.
pub fn glob(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    fn at(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).take_while(|&i| i == 0 || n[i - 1] != '/').any(|i| at(&p[1..], &n[i..])),
            Some('?') => n.first().is_some_and(|c| *c != '/') && at(&p[1..], &n[1..]),
            Some('[') => {
                let Some(c) = n.first().filter(|c| **c != '/') else { return false };
                let mut i = 1;
                let negate = p.get(1) == Some(&'^');
                if negate {
                    i += 1;
                }
                let mut hit = false;
                let mut first = true;
                while i < p.len() && (first || p[i] != ']') {
                    first = false;
                    let lo = if p[i] == '\\' && i + 1 < p.len() {
                        i += 1;
                        p[i]
                    } else {
                        p[i]
                    };
                    let hi = if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|h| *h != ']') {
                        i += 2;
                        p[i]
                    } else {
                        lo
                    };
                    hit |= lo <= *c && *c <= hi;
                    i += 1;
                }
                if i >= p.len() {
                    return false;
                }
                hit != negate && at(&p[i + 1..], &n[1..])
            }
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && at(&p[2..], &n[1..]),
            Some(c) => n.first() == Some(c) && at(&p[1..], &n[1..]),
        }
    }
    at(&p, &n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared_chart(name: &str) -> Vec<u8> {
        let p = crate::release::test_data("helm/charts").join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn a_real_chart_becomes_a_helm_oci_artifact() {
        let tgz = shared_chart("podinfo-6.14.1.tgz");
        let a = artifact(&tgz).unwrap();
        assert_eq!(a.meta, Meta { name: "podinfo".into(), version: "6.14.1".into(), library: false });
        let config: serde_json::Value = serde_json::from_slice(&a.config).unwrap();
        assert_eq!(config["name"], "podinfo");
        assert_eq!(config["appVersion"], "6.14.1");
        let m: serde_json::Value = serde_json::from_slice(&a.manifest).unwrap();
        assert_eq!(m["config"]["mediaType"], CONFIG_MEDIA_TYPE);
        assert_eq!(m["config"]["digest"], sha256(&a.config));
        assert_eq!(m["layers"][0]["digest"], sha256(&tgz));
        assert_eq!(m["layers"][0]["size"], tgz.len());
        assert_eq!(content_layer(&a.manifest), Some((sha256(&tgz), tgz.len() as u64)));
        assert_eq!(a.digest, sha256(&a.manifest));
        assert_eq!(artifact(&tgz).unwrap(), a, "the same archive, the same artifact");
        assert_eq!(tag("1.2.3+build.4"), "1.2.3_build.4");
        let lib = shared_chart("nginx-22.1.1.tgz");
        assert!(!artifact(&lib).unwrap().meta.library);
        assert!(artifact(b"not gzip").is_err());
    }

    #[test]
    fn a_packaged_directory_reads_back_and_honours_helmignore() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("src");
        std::fs::create_dir_all(d.join("templates")).unwrap();
        std::fs::create_dir_all(d.join("ci")).unwrap();
        std::fs::write(d.join("Chart.yaml"), "apiVersion: v2\nname: demo\nversion: 0.1.0\ntype: library\n").unwrap();
        std::fs::write(d.join("values.yaml"), "image: x\n").unwrap();
        std::fs::write(d.join("templates/a.yaml"), "kind: A\n").unwrap();
        std::fs::write(d.join("templates/.hidden"), "x").unwrap();
        std::fs::write(d.join("ci/test.yaml"), "x").unwrap();
        std::fs::write(d.join("notes.bak"), "x").unwrap();
        std::fs::write(d.join(".helmignore"), "# comment\n*.bak\nci/\n").unwrap();
        let tgz = package_dir(&d).unwrap();
        assert_eq!(package_dir(&d).unwrap(), tgz, "packaging is deterministic");
        let mut names: Vec<String> = tar::Archive::new(flate2::read::GzDecoder::new(tgz.as_slice()))
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["demo/.helmignore", "demo/Chart.yaml", "demo/templates/a.yaml", "demo/values.yaml"]);
        let a = artifact(&tgz).unwrap();
        assert_eq!((a.meta.name.as_str(), a.meta.version.as_str(), a.meta.library), ("demo", "0.1.0", true));
        std::os::unix::fs::symlink("/etc/passwd", d.join("templates/link.yaml")).unwrap();
        let e = package_dir(&d).unwrap_err();
        assert!(e.0.contains("symbolic link"), "{e}");
    }

    #[test]
    fn globs_and_ignore_rules_follow_go_and_helm() {
        assert!(glob("*.txt", "a.txt"));
        assert!(!glob("*.txt", "d/a.txt"));
        assert!(glob("a?c", "abc"));
        assert!(glob("[a-c]x", "bx"));
        assert!(!glob("[^a-c]x", "bx"));
        assert!(glob("\\*", "*"));
        assert!(glob("templates/.?*", "templates/.x"));
        assert!(!glob("templates/.?*", "templates/."));
        let r = Ignore::parse(".git/\n/top.txt\nsecret*\n").unwrap();
        assert!(r.ignored(".git", true));
        assert!(!r.ignored(".git", false));
        assert!(r.ignored("top.txt", false));
        assert!(!r.ignored("sub/top.txt", false));
        assert!(r.ignored("sub/secret-1", false));
        assert!(Ignore::parse("a/**/b").is_err());
    }
}
