//! Where a source image is pulled from: containers-registries.conf(5) version 2, the file
//! oc-mirror's copies honour (`CONTAINERS_REGISTRIES_CONF`). A `[[registry]]` table matches
//! references by `prefix` (longest first, `*.example.com` wildcards after exact prefixes); its
//! `[[registry.mirror]]` entries are tried in order, then its `location` (the prefix itself by
//! default), unless `blocked` refuses the source outright. Names never change: only where the
//! bytes come from does, so mapping, IDMS and the cache keep the original references. Pure.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A parsed registries.conf.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistriesConf {
    /// Where it was read from (for messages).
    pub file: String,
    /// The `[[registry]]` tables, in file order.
    pub registries: Vec<Rule>,
}

/// One `[[registry]]` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The references it covers (`host[:port][/path]`, or `*.domain`).
    pub prefix: String,
    /// Where the source itself is reached (`prefix` rewritten to it).
    pub location: String,
    /// The location may be reached over plain HTTP or unverified TLS.
    pub insecure: bool,
    /// Images under the prefix may not be pulled at all.
    pub blocked: bool,
    /// Mirrors are used only for references by digest (deprecated form of `pull-from-mirror`).
    pub mirror_by_digest_only: bool,
    /// The mirrors, in order.
    pub mirrors: Vec<Mirror>,
    /// The line of the table in the file (1-based).
    pub line: usize,
}

/// One `[[registry.mirror]]` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mirror {
    /// Where the mirror keeps the prefix's images.
    pub location: String,
    /// The mirror may be reached over plain HTTP or unverified TLS.
    pub insecure: bool,
    /// Which references the mirror serves.
    pub pull_from: PullFrom,
}

/// `pull-from-mirror`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullFrom {
    /// Every reference (the default).
    All,
    /// References by digest only.
    DigestOnly,
    /// References by tag only.
    TagOnly,
}

/// One place to try for a source image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullSource {
    /// Registry host.
    pub registry: String,
    /// Repository path there.
    pub repo: String,
    /// A mirror (not the source's own location).
    pub mirror: bool,
}

/// A registries.conf that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfError {
    /// Unreadable.
    #[error("reading registries.conf {file}: {message}")]
    Read {
        /// The file.
        file: String,
        /// Why.
        message: String,
    },
    /// Not valid TOML or not the v2 schema.
    #[error("registries.conf {file}, line {line}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// 1-based line (0: the whole file).
        line: usize,
        /// What to fix.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV2 {
    #[serde(default, rename = "registry")]
    registries: Vec<RegistryToml>,
    // Accepted, not used: short names are not resolved by a mirror tool (every reference
    // it is given is fully qualified).
    #[serde(default, rename = "unqualified-search-registries")]
    _unqualified: Vec<String>,
    #[serde(default, rename = "short-name-mode")]
    _short_name_mode: Option<String>,
    #[serde(default, rename = "credential-helpers")]
    _credential_helpers: Vec<String>,
    #[serde(default, rename = "aliases")]
    _aliases: Option<toml::Table>,
    #[serde(default, rename = "additional-layer-store-auth-helper")]
    _layer_store_helper: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryToml {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default, rename = "mirror-by-digest-only")]
    mirror_by_digest_only: bool,
    #[serde(default, rename = "mirror")]
    mirrors: Vec<MirrorToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MirrorToml {
    location: String,
    #[serde(default)]
    insecure: bool,
    #[serde(default, rename = "pull-from-mirror")]
    pull_from_mirror: Option<String>,
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|b| **b == b'\n').count() + 1
}

/// Lines where `[[<name>]]` tables start, in order.
fn table_lines(text: &str, name: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t: String = l.chars().filter(|c| !c.is_whitespace() && *c != '"').collect();
            t.starts_with(&format!("[[{name}]]"))
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// A prefix or location: `host[:port][/path]` with no scheme, no trailing slash.
fn check_location(what: &str, s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{what} is empty"));
    }
    if s.contains("://") {
        return Err(format!("{what} {s:?} must not have a scheme (write host[:port][/path])"));
    }
    if s.ends_with('/') || s.contains(char::is_whitespace) {
        return Err(format!("{what} {s:?} is not a registry location (host[:port][/path])"));
    }
    Ok(())
}

impl RegistriesConf {
    /// Parses a registries.conf (version 2). `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<RegistriesConf, ConfError> {
        let invalid = |line, message: String| ConfError::Invalid { file: file.to_string(), line, message };
        let raw: toml::Table = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            invalid(line, e.message().to_string())
        })?;
        if raw.contains_key("registries") {
            let line = text.lines().position(|l| l.trim_start().starts_with("[registries")).map_or(0, |i| i + 1);
            return Err(invalid(
                line,
                "this is the version 1 format ([registries.search] ...); write [[registry]] tables (containers-registries.conf(5) version 2)".into(),
            ));
        }
        let parsed: FileV2 = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            invalid(line, e.message().to_string())
        })?;
        let lines = table_lines(text, "registry");
        let mut mirror_lines = table_lines(text, "registry.mirror").into_iter();
        let mut registries = Vec::new();
        for (i, r) in parsed.registries.into_iter().enumerate() {
            let line = lines.get(i).copied().unwrap_or(0);
            let prefix = match (&r.prefix, &r.location) {
                (Some(p), _) if !p.is_empty() => p.clone(),
                (_, Some(l)) if !l.is_empty() => l.clone(),
                _ => return Err(invalid(line, "[[registry]] needs a prefix or a location".into())),
            };
            let wildcard = prefix.starts_with("*.");
            if wildcard {
                if prefix[2..].contains(['/', '*']) || prefix.len() == 2 {
                    return Err(invalid(line, format!("wildcard prefix {prefix:?} must be *.domain, with no path")));
                }
                if r.location.as_deref().is_some_and(|l| !l.is_empty()) {
                    return Err(invalid(line, format!("prefix {prefix:?} is a wildcard: it cannot have a location")));
                }
            } else {
                check_location("prefix", &prefix).map_err(|m| invalid(line, m))?;
            }
            let location = r.location.clone().filter(|l| !l.is_empty()).unwrap_or_else(|| prefix.clone());
            if !wildcard {
                check_location("location", &location).map_err(|m| invalid(line, m))?;
            }
            let mut mirrors = Vec::new();
            for m in r.mirrors {
                let line = mirror_lines.next().unwrap_or(line);
                check_location("mirror location", &m.location).map_err(|msg| invalid(line, msg))?;
                let pull_from = match m.pull_from_mirror.as_deref() {
                    None | Some("") | Some("all") => PullFrom::All,
                    Some("digest-only") => PullFrom::DigestOnly,
                    Some("tag-only") => PullFrom::TagOnly,
                    Some(other) => {
                        return Err(invalid(
                            line,
                            format!("pull-from-mirror {other:?} is not one of \"all\", \"digest-only\", \"tag-only\""),
                        ));
                    }
                };
                if r.mirror_by_digest_only && m.pull_from_mirror.as_deref().is_some_and(|p| !p.is_empty()) {
                    return Err(invalid(
                        line,
                        format!(
                            "prefix {prefix:?}: pull-from-mirror cannot be set together with mirror-by-digest-only"
                        ),
                    ));
                }
                mirrors.push(Mirror { location: m.location, insecure: m.insecure, pull_from });
            }
            if let Some(first) = registries.iter().find(|x: &&Rule| x.prefix == prefix) {
                return Err(invalid(
                    line,
                    format!("prefix {prefix:?} is already defined by the [[registry]] table at line {}", first.line),
                ));
            }
            registries.push(Rule {
                prefix,
                location,
                insecure: r.insecure,
                blocked: r.blocked,
                mirror_by_digest_only: r.mirror_by_digest_only,
                mirrors,
                line,
            });
        }
        Ok(RegistriesConf { file: file.to_string(), registries })
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<RegistriesConf, ConfError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfError::Read { file: file.clone(), message: e.to_string() })?;
        RegistriesConf::parse(&text, &file)
    }

    /// The file the command line reads, as oc-mirror's copies find it: `CONTAINERS_REGISTRIES_CONF`
    /// when set (`env`), else `$HOME/.config/containers/registries.conf` when it exists, else
    /// `/etc/containers/registries.conf` when it exists. None: no file.
    pub fn default_path(env: Option<&str>, home: Option<&Path>) -> Option<PathBuf> {
        if let Some(p) = env.filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        let user = home.map(|h| h.join(".config/containers/registries.conf"));
        user.filter(|p| p.is_file()).or_else(|| {
            let system = PathBuf::from("/etc/containers/registries.conf");
            system.is_file().then_some(system)
        })
    }

    /// The rule covering `name` (`host/repo`, with `:tag` or `@digest` when known): the longest
    /// exact prefix that matches at a path boundary, else the longest matching wildcard.
    pub fn rule_for(&self, name: &str) -> Option<&Rule> {
        let host = name.split('/').next().unwrap_or_default();
        let exact = self
            .registries
            .iter()
            .filter(|r| !r.prefix.starts_with("*.") && matches_prefix(name, &r.prefix))
            .max_by_key(|r| r.prefix.len());
        exact.or_else(|| {
            self.registries
                .iter()
                .filter(|r| r.prefix.strip_prefix('*').is_some_and(|d| host.ends_with(d)))
                .max_by_key(|r| r.prefix.len())
        })
    }

    /// Where to try `registry/repo` in order. `reference` is the tag or digest asked for
    /// (None: a blob, served by every mirror since its digest is checked). An image under a
    /// `blocked` rule is an error naming the rule.
    pub fn sources(&self, registry: &str, repo: &str, reference: Option<&str>) -> Result<Vec<PullSource>, String> {
        let by_digest = reference.is_none_or(|r| r.contains(':'));
        let name = match reference {
            Some(r) if r.contains(':') => format!("{registry}/{repo}@{r}"),
            Some(r) => format!("{registry}/{repo}:{r}"),
            None => format!("{registry}/{repo}"),
        };
        let Some(rule) = self.rule_for(&name) else {
            return Ok(vec![PullSource { registry: registry.into(), repo: repo.into(), mirror: false }]);
        };
        if rule.blocked {
            return Err(format!(
                "{registry}/{repo} is blocked by registries.conf {} line {} ([[registry]] prefix = {:?}, blocked = true)",
                self.file, rule.line, rule.prefix
            ));
        }
        let repo_name = format!("{registry}/{repo}");
        let mut out = Vec::new();
        for m in &rule.mirrors {
            let allowed = if reference.is_none() {
                true
            } else if rule.mirror_by_digest_only {
                by_digest
            } else {
                match m.pull_from {
                    PullFrom::All => true,
                    PullFrom::DigestOnly => by_digest,
                    PullFrom::TagOnly => !by_digest,
                }
            };
            if allowed && let Some(s) = rewrite(&repo_name, &rule.prefix, &m.location, true) {
                out.push(s);
            }
        }
        let own = if rule.prefix.starts_with("*.") {
            Some(PullSource { registry: registry.into(), repo: repo.into(), mirror: false })
        } else {
            rewrite(&repo_name, &rule.prefix, &rule.location, false)
        };
        out.extend(own);
        Ok(out)
    }

    /// Hosts the file marks insecure (locations and mirrors).
    pub fn insecure_hosts(&self) -> Vec<String> {
        let host = |l: &str| l.split('/').next().unwrap_or_default().to_string();
        self.registries
            .iter()
            .flat_map(|r| {
                let own = (r.insecure && !r.prefix.starts_with("*.")).then(|| host(&r.location));
                own.into_iter().chain(r.mirrors.iter().filter(|m| m.insecure).map(|m| host(&m.location)))
            })
            .collect()
    }
}

/// `name` starts with `prefix` at a boundary (`/`, `:`, `@` or the end).
fn matches_prefix(name: &str, prefix: &str) -> bool {
    name.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', ':', '@']))
}

/// `repo_name` (`host/repo`) with `prefix` replaced by `location`; for a wildcard prefix the
/// host is replaced. None when the prefix covered a tag or digest (the rewritten name would
/// lose it).
fn rewrite(repo_name: &str, prefix: &str, location: &str, mirror: bool) -> Option<PullSource> {
    let rest = if prefix.starts_with("*.") {
        repo_name.split_once('/').map(|(_, r)| format!("/{r}"))?
    } else {
        repo_name.strip_prefix(prefix).map(str::to_string).unwrap_or_default()
    };
    let full = format!("{location}{rest}");
    let (registry, repo) = full.split_once('/')?;
    Some(PullSource { registry: registry.to_string(), repo: repo.to_string(), mirror })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"
unqualified-search-registries = ["registry.example.com"]

[[registry]]
prefix = "quay.io/openshift-release-dev"
location = "quay.io/openshift-release-dev"

[[registry.mirror]]
location = "hub.internal:5000/openshift"

[[registry.mirror]]
location = "backup.internal/openshift"
pull-from-mirror = "digest-only"

[[registry]]
location = "registry.redhat.io"
mirror-by-digest-only = true

[[registry.mirror]]
location = "hub.internal:5000/redhat"
insecure = true

[[registry]]
prefix = "docker.io/blocked"
blocked = true

[[registry]]
prefix = "*.example.org"
[[registry.mirror]]
location = "hub.internal:5000/example"
"#;

    fn conf() -> RegistriesConf {
        RegistriesConf::parse(CONF, "test.conf").expect("parses")
    }

    fn names(s: &[PullSource]) -> Vec<String> {
        s.iter().map(|p| format!("{}/{}", p.registry, p.repo)).collect()
    }

    #[test]
    fn mirrors_first_then_the_source() {
        let s = conf().sources("quay.io", "openshift-release-dev/ocp-release", Some("sha256:abc")).unwrap();
        assert_eq!(
            names(&s),
            [
                "hub.internal:5000/openshift/ocp-release",
                "backup.internal/openshift/ocp-release",
                "quay.io/openshift-release-dev/ocp-release"
            ]
        );
        assert!(s[0].mirror && !s[2].mirror);
    }

    #[test]
    fn pull_from_mirror_and_digest_only_filter_tags() {
        let c = conf();
        let tag = c.sources("quay.io", "openshift-release-dev/ocp-release", Some("4.18.1-x86_64")).unwrap();
        assert_eq!(
            names(&tag),
            ["hub.internal:5000/openshift/ocp-release", "quay.io/openshift-release-dev/ocp-release"]
        );
        let tag = c.sources("registry.redhat.io", "ubi9/ubi", Some("latest")).unwrap();
        assert_eq!(names(&tag), ["registry.redhat.io/ubi9/ubi"]);
        let digest = c.sources("registry.redhat.io", "ubi9/ubi", Some("sha256:1")).unwrap();
        assert_eq!(names(&digest), ["hub.internal:5000/redhat/ubi9/ubi", "registry.redhat.io/ubi9/ubi"]);
        // Blobs are checked against their digest: every mirror may serve them.
        let blob = c.sources("quay.io", "openshift-release-dev/ocp-release", None).unwrap();
        assert_eq!(blob.len(), 3);
    }

    #[test]
    fn prefixes_match_at_path_boundaries_only() {
        let c = conf();
        let s = c.sources("quay.io", "openshift-release-dev-other/x", Some("v1")).unwrap();
        assert_eq!(names(&s), ["quay.io/openshift-release-dev-other/x"]);
        let s = c.sources("a.example.org", "team/app", Some("v1")).unwrap();
        assert_eq!(names(&s), ["hub.internal:5000/example/team/app", "a.example.org/team/app"]);
        assert_eq!(c.sources("example.org", "team/app", Some("v1")).unwrap().len(), 1);
    }

    #[test]
    fn blocked_names_the_rule() {
        let e = conf().sources("docker.io", "blocked/app", Some("v1")).unwrap_err();
        assert!(e.contains("test.conf line 23") && e.contains("docker.io/blocked"), "{e}");
    }

    #[test]
    fn location_rewrites_the_source_itself() {
        let c = RegistriesConf::parse("[[registry]]\nprefix = \"old.io/team\"\nlocation = \"new.io/moved\"\n", "f")
            .unwrap();
        let s = c.sources("old.io", "team/app", Some("v1")).unwrap();
        assert_eq!(names(&s), ["new.io/moved/app"]);
    }

    #[test]
    fn insecure_hosts_are_listed() {
        assert_eq!(conf().insecure_hosts(), ["hub.internal:5000"]);
    }

    #[test]
    fn errors_name_the_line() {
        let e = RegistriesConf::parse("[[registry]]\nprefix = \"a.io\"\n\n[[registry.mirror]]\nlocation = 5\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 5"), "{e}");
        let e = RegistriesConf::parse("[[registry]]\nprefix = \"a.io\"\nbogus = true\n", "f").unwrap_err().to_string();
        assert!(e.contains("line 3") && e.contains("bogus"), "{e}");
        let e = RegistriesConf::parse(
            "[[registry]]\nprefix = \"a.io\"\n[[registry.mirror]]\nlocation = \"b.io\"\n\n[[registry]]\nprefix = \"c.io\"\n[[registry.mirror]]\nlocation = \"d.io\"\npull-from-mirror = \"x\"\n",
            "f",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("line 8"), "{e}");
        let e = RegistriesConf::parse("[registries.search]\nregistries = []\n", "f").unwrap_err().to_string();
        assert!(e.contains("version 1") && e.contains("line 1"), "{e}");
        let e = RegistriesConf::parse("[[registry]]\nprefix = \"a.io\"\n[[registry]]\nprefix = \"a.io\"\n", "f")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3") && e.contains("line 1"), "{e}");
        let e = RegistriesConf::parse(
            "[[registry]]\nprefix = \"a.io\"\nmirror-by-digest-only = true\n[[registry.mirror]]\nlocation = \"b.io\"\npull-from-mirror = \"all\"\n",
            "f",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("mirror-by-digest-only"), "{e}");
        let e = RegistriesConf::parse("[[registry]]\nprefix = \"https://a.io\"\n", "f").unwrap_err().to_string();
        assert!(e.contains("scheme"), "{e}");
    }
}
