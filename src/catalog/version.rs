//! Version ranges as oc-mirror's catalog filter reads them (Masterminds semver constraints):
//! `>=1.2.0 <=1.4.0`, `||` alternatives, `~`/`^`, loose versions (`v1.2`). Pre-release
//! versions only match a constraint that itself names a pre-release.

use semver::Version;

/// A parsed range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    any_of: Vec<Vec<(Op, Version)>>,
    text: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A version written loosely (`v1`, `1.2`, `1.2.3-rc.1`): missing parts are zero.
pub fn parse_loose(s: &str) -> Result<Version, String> {
    let t = s.trim().trim_start_matches(['v', 'V']);
    let (core, rest) = match t.find(['-', '+']) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let mut parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("invalid semantic version {s:?}"));
    }
    while parts.len() < 3 {
        parts.push("0");
    }
    let nums: Vec<String> = parts.iter().map(|p| p.trim_start_matches('0').to_string()).collect();
    let nums: Vec<&str> = nums.iter().map(|n| if n.is_empty() { "0" } else { n.as_str() }).collect();
    Version::parse(&format!("{}{rest}", nums.join("."))).map_err(|e| format!("invalid semantic version {s:?}: {e}"))
}

/// A bundle version: strict semantic version, as the catalog filter requires.
pub fn parse_strict(s: &str) -> Result<Version, String> {
    Version::parse(s).map_err(|e| format!("invalid semantic version {s:?}: {e}"))
}

impl Range {
    /// Parses a range; the error names the offending part.
    pub fn parse(text: &str) -> Result<Range, String> {
        let mut any_of = Vec::new();
        for alt in text.split("||") {
            let mut all = Vec::new();
            let mut toks = alt.split([' ', ',']).filter(|t| !t.is_empty()).peekable();
            while let Some(tok) = toks.next() {
                // `>= 1.2` with a space between operator and version.
                let tok = if matches!(tok, ">=" | "<=" | ">" | "<" | "=" | "!=" | "~" | "^") {
                    format!(
                        "{tok}{}",
                        toks.next().ok_or_else(|| format!("range {text:?}: operator {tok} without a version"))?
                    )
                } else {
                    tok.to_string()
                };
                all.extend(constraint(&tok).map_err(|e| format!("range {text:?}: {e}"))?);
            }
            if all.is_empty() {
                return Err(format!("range {text:?} is empty"));
            }
            any_of.push(all);
        }
        Ok(Range { any_of, text: text.to_string() })
    }

    /// `>=min <=max` from optional bounds (oc-mirror's minVersion/maxVersion).
    pub fn between(min: Option<&str>, max: Option<&str>) -> Result<Option<Range>, String> {
        let text = match (min, max) {
            (None, None) => return Ok(None),
            (Some(a), None) => format!(">={a}"),
            (None, Some(b)) => format!("<={b}"),
            (Some(a), Some(b)) => format!(">={a} <={b}"),
        };
        Range::parse(&text).map(Some)
    }

    /// The single version this range pins, when it is `>=X <=X`.
    pub fn exact(&self) -> Option<&Version> {
        match self.any_of.as_slice() {
            [all] => match all.as_slice() {
                [(Op::Ge, a), (Op::Le, b)] if a == b => Some(a),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether `v` is in the range.
    pub fn matches(&self, v: &Version) -> bool {
        self.any_of.iter().any(|all| {
            let pre_ok = v.pre.is_empty() || all.iter().any(|(_, c)| !c.pre.is_empty());
            pre_ok
                && all.iter().all(|(op, c)| {
                    let ord = v.cmp_precedence(c);
                    match op {
                        Op::Eq => ord.is_eq(),
                        Op::Ne => !ord.is_eq(),
                        Op::Gt => ord.is_gt(),
                        Op::Ge => ord.is_ge(),
                        Op::Lt => ord.is_lt(),
                        Op::Le => ord.is_le(),
                    }
                })
        })
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

fn constraint(tok: &str) -> Result<Vec<(Op, Version)>, String> {
    let ops = [(">=", Op::Ge), ("<=", Op::Le), ("!=", Op::Ne), (">", Op::Gt), ("<", Op::Lt), ("=", Op::Eq)];
    for (p, op) in ops {
        if let Some(v) = tok.strip_prefix(p) {
            return Ok(vec![(op, parse_loose(v)?)]);
        }
    }
    if let Some(v) = tok.strip_prefix('~') {
        let lo = parse_loose(v)?;
        let hi = Version::new(lo.major, lo.minor + 1, 0);
        return Ok(vec![(Op::Ge, lo), (Op::Lt, hi)]);
    }
    if let Some(v) = tok.strip_prefix('^') {
        let lo = parse_loose(v)?;
        let hi = if lo.major > 0 { Version::new(lo.major + 1, 0, 0) } else { Version::new(0, lo.minor + 1, 0) };
        return Ok(vec![(Op::Ge, lo), (Op::Lt, hi)]);
    }
    Ok(vec![(Op::Eq, parse_loose(tok)?)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn ranges_read_like_masterminds() {
        let r = Range::between(Some("0.2.0"), Some("1.0")).unwrap().unwrap();
        assert!(r.matches(&v("0.2.0")) && r.matches(&v("1.0.0")) && r.matches(&v("0.5.1")));
        assert!(!r.matches(&v("1.0.1")) && !r.matches(&v("0.1.9")));
        assert!(!r.matches(&v("0.5.0-rc.1")), "pre-releases only match ranges naming one");
        assert!(Range::parse(">=0.5.0-rc.0").unwrap().matches(&v("0.5.0-rc.1")));
        assert!(Range::parse(">=1.0.0 <2.0.0 || >=3.0.0").unwrap().matches(&v("3.1.0")));
        assert!(Range::parse(">= 1.0.0, < 2.0.0").unwrap().matches(&v("1.5.0")));
        assert!(Range::parse("~1.2").unwrap().matches(&v("1.2.9")));
        assert!(!Range::parse("^1.2").unwrap().matches(&v("2.0.0")));
        assert_eq!(Range::between(Some("v4.2"), Some("4.2.0")).unwrap().unwrap().exact(), Some(&v("4.2.0")));
        assert!(Range::parse(">=x").is_err());
        assert_eq!(Range::between(None, None).unwrap(), None);
        assert_eq!(parse_loose("v01.2").unwrap(), v("1.2.0"));
        assert!(parse_strict("v1.2.0").is_err());
    }
}
