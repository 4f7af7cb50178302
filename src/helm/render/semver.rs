//! Masterminds/semver v3 as Helm and sprig use it: lenient versions (`v1.20`, `1.2.3-rc.1`)
//! and constraints (`>=1.21-0`, `~1.2`, `^0.3`, `2.x.x`, `1.2 - 1.4`, `a || b`, `a, b`),
//! including its rule that a prerelease only satisfies a range that names a prerelease.

use std::cmp::Ordering;
use std::fmt;
use std::sync::OnceLock;

use regex::Regex;

/// A parsed version (`semver.NewVersion`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// Major.
    pub major: u64,
    /// Minor.
    pub minor: u64,
    /// Patch.
    pub patch: u64,
    /// Prerelease (after `-`).
    pub pre: String,
    /// Build metadata (after `+`).
    pub metadata: String,
    /// The text parsed.
    pub original: String,
}

const CV: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";

struct Res {
    loose: Regex,
    constraint: Regex,
    range: Regex,
    find: Regex,
    valid: Regex,
}

fn res() -> &'static Res {
    static R: OnceLock<Res> = OnceLock::new();
    R.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("semver regex");
        Res {
            loose: re(r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?$"),
            constraint: re(&format!(r"^\s*({OPS})\s*({CV})\s*$")),
            range: re(&format!(r"\s*({CV})\s+-\s+({CV})\s*")),
            find: re(&format!(r"({OPS})\s*({CV})")),
            valid: re(&format!(r"^(\s*({OPS})\s*({CV})\s*)((?:\s+|,\s*)({OPS})\s*({CV})\s*)*$")),
        }
    })
}

fn only(s: &str, f: impl Fn(char) -> bool) -> bool {
    s.chars().all(f)
}

fn valid_pre(p: &str) -> Result<(), String> {
    for part in p.split('.') {
        if part.is_empty() {
            return Err("invalid prerelease string".into());
        } else if only(part, |c| c.is_ascii_digit()) {
            if part.len() > 1 && part.starts_with('0') {
                return Err("version segment starts with 0".into());
            }
        } else if !only(part, |c| c.is_ascii_alphanumeric() || c == '-') {
            return Err("invalid prerelease string".into());
        }
    }
    Ok(())
}

impl Version {
    /// `semver.NewVersion` (coercing: leading zeros and missing minor/patch allowed).
    pub fn parse(v: &str) -> Result<Version, String> {
        let m = res().loose.captures(v).ok_or_else(|| "invalid semantic version".to_string())?;
        let num = |i: usize| -> Result<u64, String> {
            match m.get(i) {
                None => Ok(0),
                Some(g) => g
                    .as_str()
                    .trim_start_matches('.')
                    .parse::<u64>()
                    .map_err(|e| format!("error parsing version segment: {e}")),
            }
        };
        let out = Version {
            major: num(1)?,
            minor: num(2)?,
            patch: num(3)?,
            pre: m.get(5).map(|g| g.as_str().to_string()).unwrap_or_default(),
            metadata: m.get(8).map(|g| g.as_str().to_string()).unwrap_or_default(),
            original: v.to_string(),
        };
        if !out.pre.is_empty() {
            valid_pre(&out.pre)?;
        }
        Ok(out)
    }

    /// `Version.Compare` (build metadata ignored).
    pub fn compare(&self, o: &Version) -> Ordering {
        let c = (self.major, self.minor, self.patch).cmp(&(o.major, o.minor, o.patch));
        if c != Ordering::Equal {
            return c;
        }
        match (self.pre.is_empty(), o.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => compare_pre(&self.pre, &o.pre),
        }
    }
}

fn compare_pre(a: &str, b: &str) -> Ordering {
    let sa: Vec<&str> = a.split('.').collect();
    let sb: Vec<&str> = b.split('.').collect();
    for i in 0..sa.len().max(sb.len()) {
        let d = compare_pre_part(sa.get(i).copied().unwrap_or(""), sb.get(i).copied().unwrap_or(""));
        if d != Ordering::Equal {
            return d;
        }
    }
    Ordering::Equal
}

fn compare_pre_part(s: &str, o: &str) -> Ordering {
    if s == o {
        return Ordering::Equal;
    }
    if s.is_empty() {
        return Ordering::Less;
    }
    if o.is_empty() {
        return Ordering::Greater;
    }
    match (s.parse::<u64>(), o.parse::<u64>()) {
        (Err(_), Err(_)) => {
            if s > o {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Ok(a), Ok(b)) => {
            if a > b {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if !self.pre.is_empty() {
            write!(f, "-{}", self.pre)?;
        }
        if !self.metadata.is_empty() {
            write!(f, "+{}", self.metadata)?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct Constraint {
    con: Version,
    op: String,
    minor_dirty: bool,
    patch_dirty: bool,
    dirty: bool,
}

/// Parsed constraints (`semver.NewConstraint`).
#[derive(Debug)]
pub struct Constraints {
    ors: Vec<(Vec<Constraint>, bool)>,
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

fn parse_one(c: &str) -> Result<Constraint, String> {
    let m = res().constraint.captures(c).ok_or_else(|| format!("improper constraint: {c:?}"))?;
    let g = |i: usize| m.get(i).map(|x| x.as_str()).unwrap_or("");
    let (major, minor, patch, pre) = (g(3), g(4), g(5), g(6));
    let (ver, dirty, minor_dirty, patch_dirty) = if is_x(major) || major.is_empty() {
        (format!("0.0.0{pre}"), true, false, false)
    } else if is_x(minor.trim_start_matches('.')) || minor.is_empty() {
        (format!("{major}.0.0{pre}"), true, true, false)
    } else if is_x(patch.trim_start_matches('.')) || patch.is_empty() {
        (format!("{major}{minor}.0{pre}"), true, false, true)
    } else {
        (g(2).to_string(), false, false, false)
    };
    let con = Version::parse(&ver).map_err(|_| "constraint parser error".to_string())?;
    Ok(Constraint { con, op: g(1).to_string(), minor_dirty, patch_dirty, dirty })
}

impl Constraints {
    /// `semver.NewConstraint`.
    pub fn parse(c: &str) -> Result<Constraints, String> {
        let mut text = c.to_string();
        let ranges: Vec<(String, String, String)> =
            res().range.captures_iter(c).map(|m| (m[0].to_string(), m[1].to_string(), m[11].to_string())).collect();
        for (whole, lo, hi) in ranges {
            text = text.replacen(&whole, &format!(">= {lo}, <= {hi} "), 1);
        }
        let mut ors = Vec::new();
        for part in text.split("||") {
            if !res().valid.is_match(part) {
                return Err(format!("improper constraint: {part:?}"));
            }
            let mut found: Vec<&str> = res().find.find_iter(part).map(|m| m.as_str()).collect();
            if found.is_empty() {
                found.push(part);
            }
            let cs = found.into_iter().map(parse_one).collect::<Result<Vec<_>, _>>()?;
            let has_pre = cs.iter().any(|c| !c.con.pre.is_empty());
            ors.push((cs, has_pre));
        }
        Ok(Constraints { ors })
    }

    /// `Constraints.Check`.
    pub fn check(&self, v: &Version) -> bool {
        self.ors.iter().any(|(cs, pre)| cs.iter().all(|c| c.check(v, *pre)))
    }
}

impl Constraint {
    fn check(&self, v: &Version, include_pre: bool) -> bool {
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let c = &self.con;
        match self.op.as_str() {
            "" | "=" => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    v.compare(c) == Ordering::Equal
                }
            }
            "!=" => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return true;
                    } else if self.minor_dirty {
                        return false;
                    } else if c.patch != v.patch && !self.patch_dirty {
                        return true;
                    } else if self.patch_dirty {
                        if !v.pre.is_empty() || !c.pre.is_empty() {
                            return compare_pre(&v.pre, &c.pre) != Ordering::Equal;
                        }
                        return false;
                    }
                }
                v.compare(c) != Ordering::Equal
            }
            ">" => {
                if !self.dirty {
                    return v.compare(c) == Ordering::Greater;
                }
                if v.major > c.major {
                    true
                } else if v.major < c.major || self.minor_dirty {
                    false
                } else if self.patch_dirty {
                    v.minor > c.minor
                } else {
                    v.compare(c) == Ordering::Greater
                }
            }
            "<" => v.compare(c) == Ordering::Less,
            ">=" | "=>" => v.compare(c) != Ordering::Less,
            "<=" | "=<" => {
                if !self.dirty {
                    return v.compare(c) != Ordering::Greater;
                }
                !(v.major > c.major || (v.major == c.major && v.minor > c.minor && !self.minor_dirty))
            }
            "~" | "~>" => self.tilde(v),
            "^" => {
                if v.compare(c) == Ordering::Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                c.patch == v.patch
            }
            _ => false,
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.con;
        if v.compare(c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        v.minor == c.minor || self.minor_dirty
    }
}

/// Sprig's `semverCompare`.
pub fn semver_compare(constraint: &str, version: &str) -> Result<bool, String> {
    let c = Constraints::parse(constraint)?;
    let v = Version::parse(version)?;
    Ok(c.check(&v))
}

/// Helm's `IsCompatibleRange`.
pub fn compatible(constraint: &str, version: &str) -> bool {
    semver_compare(constraint, version).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_version_checks() {
        let k = "v1.20.0";
        assert!(semver_compare(">=1.16-0", k).unwrap());
        assert!(!semver_compare(">=1.21-0", k).unwrap());
        assert!(semver_compare("<1.25.0-0", k).unwrap());
        assert!(semver_compare(">= 1.19.x", k).unwrap());
        assert!(!semver_compare("^1.21", k).unwrap());
        assert!(semver_compare("~1.20.0", k).unwrap());
        assert!(!semver_compare(">=1.21", "v1.21.0-gke.1").unwrap());
        assert!(semver_compare(">=1.21-0", "v1.21.0-gke.1").unwrap());
        assert!(semver_compare(">1.19 || <1.0", k).unwrap());
        assert!(semver_compare("1.18 - 1.22", k).unwrap());
        assert!(semver_compare(">=1.18, <1.21", k).unwrap());
        assert!(semver_compare(">= 1.18 < 1.21", k).unwrap());
        assert!(semver_compare("*", k).unwrap());
        assert!(semver_compare("", k).is_err());
        assert!(semver_compare(">=1.2", "not-a-version").is_err());
    }

    #[test]
    fn dependency_ranges() {
        assert!(compatible("0.12.*", "0.12.8"));
        assert!(compatible("2.x.x", "2.31.4"));
        assert!(!compatible("2.x.x", "3.0.0"));
        assert!(compatible("*", "v0.6.0"));
        assert!(compatible("^0.3.1", "0.3.9"));
        assert!(!compatible("^0.3.1", "0.4.0"));
        assert!(compatible("12.11.1", "12.11.1"));
        assert_eq!(Version::parse("v1.2").unwrap().to_string(), "1.2.0");
    }
}
