//! A chart repository's `index.yaml`: the chart versions it offers, which one an image set's
//! entry names (Helm's rules: the exact version, else the highest stable one, or a semver
//! range), where its archive is (relative or absolute `urls`) and the digest it must have.
//! Pure: bytes in, answers out.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The largest index read (real ones reach a few MiB; 64 MiB is a corrupt or hostile file).
pub const MAX_INDEX_BYTES: u64 = 64 << 20;

/// Why an index or one of its charts cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IndexError {
    /// Not an index.
    #[error("not a chart repository index: {0}")]
    Parse(String),
    /// The chart is not in the index.
    #[error("chart {0:?} is not in the repository index")]
    NoChart(String),
    /// No version matches.
    #[error("chart {name:?}: no version {wanted} in the repository index (it has {have})")]
    NoVersion {
        /// Chart name.
        name: String,
        /// What was asked for.
        wanted: String,
        /// Versions offered (the first few).
        have: String,
    },
    /// The entry names no archive.
    #[error("chart {0}: the repository index names no archive (urls is empty)")]
    NoUrl(String),
    /// An archive URL that cannot be read.
    #[error("chart {chart}: bad archive URL {url:?}: {message}")]
    Url {
        /// Chart name and version.
        chart: String,
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The archive is not what the index says.
    #[error(
        "chart {chart}: digest mismatch: the repository index says sha256:{expected}, the archive is sha256:{actual}"
    )]
    Digest {
        /// Chart name and version.
        chart: String,
        /// The index's digest.
        expected: String,
        /// The archive's.
        actual: String,
    },
}

/// A repository index (the fields that matter here; the rest is ignored).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Index {
    /// Chart versions by chart name.
    #[serde(default)]
    pub entries: BTreeMap<String, Vec<Entry>>,
}

/// One chart version of an index (plain scalars read as text: `version: 1.0` is "1.0").
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct Entry {
    /// Chart name.
    #[serde(default)]
    pub name: String,
    /// Chart version.
    #[serde(default)]
    pub version: String,
    /// Where the archive is: absolute, or relative to the repository URL.
    #[serde(default)]
    pub urls: Vec<String>,
    /// sha256 (hex) of the archive.
    #[serde(default)]
    pub digest: Option<String>,
    /// `application` or `library`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

impl Entry {
    /// `name-version`, for messages and file names.
    pub fn id(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }

    /// A library chart (templates for other charts, nothing to deploy).
    pub fn is_library(&self) -> bool {
        self.kind.as_deref() == Some("library")
    }
}

/// Parses an index; each chart's versions are sorted highest first (Helm sorts them so on load).
pub fn parse(bytes: &[u8]) -> Result<Index, IndexError> {
    let text = std::str::from_utf8(bytes).map_err(|e| IndexError::Parse(e.to_string()))?;
    let mut budget = serde_saphyr::Budget::default();
    // Large public indexes have hundreds of thousands of nodes; the size cap bounds the rest.
    budget.max_events = 64 << 20;
    budget.max_nodes = 32 << 20;
    budget.max_total_scalar_bytes = MAX_INDEX_BYTES as usize;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    let mut index: Index =
        serde_saphyr::from_str_with_options(text, options).map_err(|e| IndexError::Parse(e.to_string()))?;
    for (name, versions) in index.entries.iter_mut() {
        for v in versions.iter_mut() {
            if v.name.is_empty() {
                v.name = name.clone();
            }
        }
        versions.sort_by(|a, b| order(&b.version, &a.version));
    }
    Ok(index)
}

/// A version as Helm's semver library reads it: an optional `v`, missing minor and patch
/// taken as 0.
pub fn semver(v: &str) -> Option<semver::Version> {
    let v = v.trim().trim_start_matches('v');
    let end = v.find(['-', '+']).unwrap_or(v.len());
    let (core, rest) = v.split_at(end);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let mut full: Vec<String> = parts.iter().map(|p| p.trim_start_matches('0').to_string()).collect();
    for p in full.iter_mut() {
        if p.is_empty() {
            *p = "0".into();
        }
    }
    full.resize(3, "0".into());
    semver::Version::parse(&format!("{}{rest}", full.join("."))).ok()
}

/// Helm's order of versions: by semver; a version that is not semver sorts below every one
/// that is, and among themselves by text.
fn order(a: &str, b: &str) -> std::cmp::Ordering {
    match (semver(a), semver(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        (Some(_), None) => std::cmp::Ordering::Greater,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (None, None) => a.cmp(b),
    }
}

/// Whether `wanted` is a range (`^1.2`, `>=1.0 <2`, `1.x`) rather than one version.
fn is_range(wanted: &str) -> bool {
    wanted.starts_with(['^', '~', '>', '<', '=', '!']) || wanted.contains(['*', 'x', 'X', ' ', ',', '|'])
}

impl Index {
    /// Every chart version that is not a library chart, by name then highest version first:
    /// what oc-mirror takes from a repository entry without `charts`.
    pub fn all(&self) -> Vec<&Entry> {
        self.entries.values().flatten().filter(|e| !e.is_library()).collect()
    }

    /// The version of `name` an image set's chart entry names, as Helm's downloader picks it:
    /// `version` exactly as written in the index; without one, the highest version without a
    /// pre-release; a range (`^6.0`, `>=6.1 <7`), its highest match; else the version equal
    /// to it as semver (`v6.14.1` for `6.14.1`).
    pub fn select(&self, name: &str, version: Option<&str>) -> Result<&Entry, IndexError> {
        let versions =
            self.entries.get(name).filter(|v| !v.is_empty()).ok_or_else(|| IndexError::NoChart(name.into()))?;
        let wanted = version.map(str::trim).filter(|v| !v.is_empty());
        let found = match wanted {
            None => versions.iter().find(|e| semver(&e.version).is_some_and(|v| v.pre.is_empty())),
            Some(w) => versions.iter().find(|e| e.version == w).or_else(|| {
                if is_range(w) {
                    let req = semver::VersionReq::parse(&w.replace(['x', 'X'], "*").replace("||", ",")).ok()?;
                    versions.iter().find(|e| semver(&e.version).is_some_and(|v| req.matches(&v)))
                } else {
                    let w = semver(w)?;
                    versions.iter().find(|e| semver(&e.version).as_ref() == Some(&w))
                }
            }),
        };
        found.ok_or_else(|| {
            let mut have: Vec<&str> = versions.iter().take(5).map(|e| e.version.as_str()).collect();
            if versions.len() > 5 {
                have.push("...");
            }
            IndexError::NoVersion {
                name: name.into(),
                wanted: wanted.map_or("without a pre-release".into(), |w| format!("{w:?}")),
                have: have.join(", "),
            }
        })
    }
}

/// `<url>/index.yaml` (a URL already naming `index.yaml` is taken as it is).
pub fn index_url(repo_url: &str) -> String {
    let u = repo_url.trim();
    if u.ends_with("/index.yaml") { u.to_string() } else { format!("{}/index.yaml", u.trim_end_matches('/')) }
}

/// Where oc-mirror keeps a repository's index under `working-dir/helm/indexes/`: the index
/// URL without its scheme and file name (`charts.example.com/stable`). Components that would
/// leave the directory are refused.
pub fn index_dir(index_url: &str) -> Result<PathBuf, String> {
    let parts: Vec<&str> = index_url.split('/').collect();
    if parts.len() < 4 {
        return Err(format!("{index_url}: not a repository URL"));
    }
    let mut dir = PathBuf::new();
    for p in &parts[2..parts.len() - 1] {
        if p.is_empty() || *p == "." || *p == ".." {
            return Err(format!("{index_url}: the path component {p:?} cannot name a directory"));
        }
        dir.push(p);
    }
    Ok(dir)
}

/// The archive URL of an entry: its first `urls` value, resolved against the repository URL
/// as Helm does (the repository URL taken as a directory, its query kept).
pub fn chart_url(repo_url: &str, entry: &Entry) -> Result<reqwest::Url, IndexError> {
    let first = entry.urls.first().ok_or_else(|| IndexError::NoUrl(entry.id()))?;
    let bad = |url: &str, e: &dyn std::fmt::Display| IndexError::Url {
        chart: entry.id(),
        url: url.to_string(),
        message: e.to_string(),
    };
    if let Ok(abs) = reqwest::Url::parse(first) {
        return Ok(abs);
    }
    let mut base = reqwest::Url::parse(repo_url.trim()).map_err(|e| bad(repo_url, &e))?;
    let query = base.query().map(str::to_string);
    base.set_query(None);
    let dir = base.path().trim_end_matches("/index.yaml").trim_end_matches('/').to_string();
    base.set_path(&format!("{dir}/"));
    let mut url = base.join(first).map_err(|e| bad(first, &e))?;
    if url.query().is_none() {
        url.set_query(query.as_deref());
    }
    Ok(url)
}

/// Checks an archive against the entry's digest (hex sha256, with or without `sha256:`); an
/// entry without a digest accepts any archive, as Helm does.
pub fn check_digest(entry: &Entry, bytes: &[u8]) -> Result<(), IndexError> {
    let Some(expected) = entry.digest.as_deref().map(|d| d.trim().trim_start_matches("sha256:")) else {
        return Ok(());
    };
    if expected.is_empty() {
        return Ok(());
    }
    let actual = hex::encode(Sha256::digest(bytes));
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(IndexError::Digest { chart: entry.id(), expected: expected.to_string(), actual })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(path: &str) -> Vec<u8> {
        let p = crate::release::test_data("helm").join(path);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn a_real_published_index_reads_with_every_version_highest_first() {
        let index = parse(&shared("real-index.yaml")).unwrap();
        let podinfo = &index.entries["podinfo"];
        assert_eq!(podinfo.len(), 108);
        assert_eq!(podinfo[0].version, "6.14.1");
        assert_eq!(podinfo.last().unwrap().version, "0.1.0");
        let e = index.select("podinfo", None).unwrap();
        assert_eq!(e.version, "6.14.1");
        assert_eq!(
            chart_url("https://stefanprodan.github.io/podinfo", e).unwrap().as_str(),
            "https://stefanprodan.github.io/podinfo/podinfo-6.14.1.tgz"
        );
        // The published archive of that entry is the one in the shared data.
        check_digest(e, &shared("charts/podinfo-6.14.1.tgz")).unwrap();
        let wrong = check_digest(e, b"not the chart").unwrap_err();
        assert!(wrong.to_string().contains("digest mismatch"), "{wrong}");
        assert_eq!(index.select("podinfo", Some("6.13.0")).unwrap().version, "6.13.0");
        assert_eq!(index.select("podinfo", Some("v6.13.0")).unwrap().version, "6.13.0");
        assert_eq!(index.select("podinfo", Some("^5.0")).unwrap().version, "5.2.1");
        assert_eq!(index.select("podinfo", Some(">=6.0.0, <6.1.0")).unwrap().version, "6.0.4");
        let none = index.select("podinfo", Some("9.9.9")).unwrap_err();
        assert!(matches!(none, IndexError::NoVersion { .. }), "{none}");
        assert_eq!(index.select("other", None).unwrap_err(), IndexError::NoChart("other".into()));
    }

    #[test]
    fn the_test_repository_offers_ten_charts_with_relative_or_absolute_urls() {
        let index = parse(&shared("repo/index.yaml")).unwrap();
        let all = index.all();
        assert_eq!(all.len(), 10);
        let e = index.select("podinfo", Some("6.14.1")).unwrap();
        let mut rel = e.clone();
        rel.urls = vec!["podinfo-6.14.1.tgz".into()];
        for base in
            ["http://127.0.0.1:8080/charts", "http://127.0.0.1:8080/charts/", "http://127.0.0.1:8080/charts/index.yaml"]
        {
            assert_eq!(chart_url(base, &rel).unwrap().as_str(), "http://127.0.0.1:8080/charts/podinfo-6.14.1.tgz");
        }
        rel.urls = vec!["../other/podinfo-6.14.1.tgz".into()];
        assert_eq!(
            chart_url("http://h/a/b?sig=1", &rel).unwrap().as_str(),
            "http://h/a/other/podinfo-6.14.1.tgz?sig=1"
        );
        assert_eq!(
            chart_url("http://ignored/", e).unwrap().as_str(),
            "http://helm_repo_url/podinfo-6.14.1.tgz",
            "an absolute URL is taken as it is"
        );
    }

    #[test]
    fn library_charts_and_pre_releases_are_left_out_unless_named() {
        let index = parse(
            b"apiVersion: v1\nentries:\n  common:\n  - {name: common, version: 2.31.4, type: library, urls: [common-2.31.4.tgz]}\n  app:\n  - {version: 1.0, urls: [a.tgz]}\n  - {version: 1.1.0-rc.1, urls: [b.tgz]}\n  - {version: not-semver, urls: [c.tgz]}\n",
        )
        .unwrap();
        let all: Vec<String> = index.all().iter().map(|e| e.id()).collect();
        assert_eq!(all, ["app-1.1.0-rc.1", "app-1.0", "app-not-semver"]);
        assert_eq!(index.select("app", None).unwrap().version, "1.0");
        assert_eq!(index.select("app", Some("1.1.0-rc.1")).unwrap().version, "1.1.0-rc.1");
        assert_eq!(index.select("common", None).unwrap().version, "2.31.4");
    }

    #[test]
    fn index_directories_follow_oc_mirror_and_never_climb() {
        assert_eq!(
            index_dir("https://charts.example.com/stable/index.yaml").unwrap(),
            PathBuf::from("charts.example.com/stable")
        );
        assert_eq!(index_dir("http://127.0.0.1:8080/index.yaml").unwrap(), PathBuf::from("127.0.0.1:8080"));
        assert!(index_dir("http://h/../x/index.yaml").is_err());
        assert_eq!(index_url("http://h/charts/"), "http://h/charts/index.yaml");
        assert_eq!(index_url("http://h/charts/index.yaml"), "http://h/charts/index.yaml");
    }
}
