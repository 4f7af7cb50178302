//! The two pattern languages Helm uses: gobwas/glob with `/` as separator for `.Files.Glob`
//! (`*`, `**`, `?`, `[a-z]`, `[!x]`, `{a,b}`) and Go's `filepath.Match` for `.helmignore`
//! (`*`, `?`, `[^x]`), with Helm's ignore rules on top.

#[derive(Debug, Clone)]
enum Tok {
    Lit(char),
    Star,
    SuperStar,
    One,
    Class(bool, Vec<(char, char)>),
    Alt(Vec<Vec<Tok>>),
}

/// A compiled `.Files.Glob` pattern.
#[derive(Debug)]
pub struct Glob(Vec<Tok>);

impl Glob {
    /// Compiles a pattern; `None` when it is malformed.
    pub fn new(pattern: &str) -> Option<Glob> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        let toks = parse(&chars, &mut i, false)?;
        if i != chars.len() {
            return None;
        }
        Some(Glob(toks))
    }

    /// Whether the whole of `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        let chars: Vec<char> = s.chars().collect();
        matches(&self.0, &chars)
    }
}

fn parse(c: &[char], i: &mut usize, in_alt: bool) -> Option<Vec<Tok>> {
    let mut out = Vec::new();
    while *i < c.len() {
        match c[*i] {
            '*' => {
                if *i + 1 < c.len() && c[*i + 1] == '*' {
                    out.push(Tok::SuperStar);
                    *i += 2;
                } else {
                    out.push(Tok::Star);
                    *i += 1;
                }
            }
            '?' => {
                out.push(Tok::One);
                *i += 1;
            }
            '\\' => {
                *i += 1;
                out.push(Tok::Lit(*c.get(*i)?));
                *i += 1;
            }
            '[' => {
                *i += 1;
                let neg = c.get(*i) == Some(&'!');
                if neg {
                    *i += 1;
                }
                let mut items = Vec::new();
                while *c.get(*i)? != ']' {
                    let lo = c[*i];
                    if c.get(*i + 1) == Some(&'-') && c.get(*i + 2).is_some_and(|x| *x != ']') {
                        items.push((lo, c[*i + 2]));
                        *i += 3;
                    } else {
                        items.push((lo, lo));
                        *i += 1;
                    }
                }
                *i += 1;
                out.push(Tok::Class(neg, items));
            }
            '{' => {
                *i += 1;
                let mut alts = Vec::new();
                loop {
                    alts.push(parse(c, i, true)?);
                    match c.get(*i)? {
                        ',' => *i += 1,
                        '}' => {
                            *i += 1;
                            break;
                        }
                        _ => return None,
                    }
                }
                out.push(Tok::Alt(alts));
            }
            ',' | '}' if in_alt => return Some(out),
            ch => {
                out.push(Tok::Lit(ch));
                *i += 1;
            }
        }
    }
    if in_alt { None } else { Some(out) }
}

fn matches(p: &[Tok], s: &[char]) -> bool {
    let Some((first, rest)) = p.split_first() else { return s.is_empty() };
    match first {
        Tok::Lit(c) => s.first() == Some(c) && matches(rest, &s[1..]),
        Tok::One => s.first().is_some_and(|c| *c != '/') && matches(rest, &s[1..]),
        Tok::Class(neg, items) => {
            s.first().is_some_and(|c| items.iter().any(|(lo, hi)| lo <= c && c <= hi) != *neg) && matches(rest, &s[1..])
        }
        Tok::Star => {
            for k in 0..=s.len() {
                if matches(rest, &s[k..]) {
                    return true;
                }
                if k < s.len() && s[k] == '/' {
                    return false;
                }
            }
            false
        }
        Tok::SuperStar => (0..=s.len()).any(|k| matches(rest, &s[k..])),
        Tok::Alt(alts) => alts.iter().any(|a| {
            let mut joined = a.clone();
            joined.extend(rest.iter().cloned());
            matches(&joined, s)
        }),
    }
}

/// Go's `filepath.Match` (separator `/`); `Err` for a malformed pattern.
pub fn path_match(pattern: &str, name: &str) -> Result<bool, String> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    path_match_at(&p, &n)
}

fn class_match(p: &[char], c: char) -> Result<(bool, usize), String> {
    // p starts after '['; returns (matched, length consumed including ']').
    let mut i = 0;
    let neg = p.first() == Some(&'^');
    if neg {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let Some(&ch) = p.get(i) else { return Err("syntax error in pattern".into()) };
        if ch == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let mut lo = ch;
        i += 1;
        if lo == '\\' {
            lo = *p.get(i).ok_or("syntax error in pattern")?;
            i += 1;
        }
        let mut hi = lo;
        if p.get(i) == Some(&'-') && p.get(i + 1).is_some_and(|x| *x != ']') {
            hi = p[i + 1];
            i += 2;
            if hi == '\\' {
                hi = *p.get(i).ok_or("syntax error in pattern")?;
                i += 1;
            }
        }
        if lo <= c && c <= hi {
            matched = true;
        }
    }
    Ok((matched != neg, i))
}

fn path_match_at(p: &[char], n: &[char]) -> Result<bool, String> {
    let Some((&first, rest)) = p.split_first() else { return Ok(n.is_empty()) };
    match first {
        '*' => {
            for k in 0..=n.len() {
                if path_match_at(rest, &n[k..])? {
                    return Ok(true);
                }
                if k < n.len() && n[k] == '/' {
                    break;
                }
            }
            // Validate the rest of the pattern as Go does.
            path_match_at(rest, &[]).map(|_| false)
        }
        '?' => Ok(n.first().is_some_and(|c| *c != '/') && path_match_at(rest, &n[1..])?),
        '[' => {
            let Some(&c) = n.first() else {
                class_match(rest, '\0')?;
                return Ok(false);
            };
            let (ok, used) = class_match(rest, c)?;
            Ok(ok && c != '/' && path_match_at(&rest[used..], &n[1..])?)
        }
        '\\' => {
            let (&lit, rest) = rest.split_first().ok_or("syntax error in pattern")?;
            Ok(n.first() == Some(&lit) && path_match_at(rest, &n[1..])?)
        }
        c => Ok(n.first() == Some(&c) && path_match_at(rest, &n[1..])?),
    }
}

struct Rule {
    negate: bool,
    must_dir: bool,
    kind: RuleKind,
    pattern: String,
}

enum RuleKind {
    Root,
    Path,
    Base,
}

/// Helm's `.helmignore` rules (plus its default `templates/.?*`).
pub struct Ignore(Vec<Rule>);

impl Ignore {
    /// Parses a `.helmignore` file.
    pub fn parse(text: &str) -> Result<Ignore, String> {
        let mut rules = Ignore(Vec::new());
        for line in text.lines() {
            rules.add(line)?;
        }
        rules.add("templates/.?*")?;
        Ok(rules)
    }

    fn add(&mut self, rule: &str) -> Result<(), String> {
        let mut rule = rule.trim();
        if rule.is_empty() || rule.starts_with('#') {
            return Ok(());
        }
        if rule.contains("**") {
            return Err("double-star (**) syntax is not supported".into());
        }
        path_match(rule, "abc")?;
        let negate = rule.starts_with('!');
        if negate {
            rule = &rule[1..];
        }
        let must_dir = rule.ends_with('/');
        if must_dir {
            rule = &rule[..rule.len() - 1];
        }
        let kind = if rule.starts_with('/') {
            rule = &rule[1..];
            RuleKind::Root
        } else if rule.contains('/') {
            RuleKind::Path
        } else {
            RuleKind::Base
        };
        self.0.push(Rule { negate, must_dir, kind, pattern: rule.to_string() });
        Ok(())
    }

    /// Whether the path (relative, `/`-separated) is ignored.
    pub fn ignored(&self, path: &str, is_dir: bool) -> bool {
        if path.is_empty() || path == "." || path == "./" {
            return false;
        }
        for r in &self.0 {
            let m = || {
                let name = match r.kind {
                    RuleKind::Root | RuleKind::Path => path,
                    RuleKind::Base => path.rsplit('/').next().unwrap_or(path),
                };
                path_match(&r.pattern, name).unwrap_or(false)
            };
            if r.negate {
                if r.must_dir && !is_dir {
                    return true;
                }
                if !m() {
                    return true;
                }
                continue;
            }
            if r.must_dir && !is_dir {
                continue;
            }
            if m() {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_glob() {
        let g = |p: &str, s: &str| Glob::new(p).unwrap().matches(s);
        assert!(g("files/*.yaml", "files/a.yaml"));
        assert!(!g("files/*.yaml", "files/x/a.yaml"));
        assert!(g("files/**.yaml", "files/x/a.yaml"));
        assert!(g("dashboards/{a,b}.json", "dashboards/b.json"));
        assert!(g("f?le[0-9].txt", "file7.txt"));
        assert!(!g("[!a]bc", "abc"));
        assert!(Glob::new("{a,b").is_none());
    }

    #[test]
    fn helmignore() {
        let r = Ignore::parse("# comment\n.git/\n*.tmp\n/ci\ndocs/*.md\n").unwrap();
        assert!(r.ignored(".git", true));
        assert!(!r.ignored(".git", false));
        assert!(r.ignored("templates/x.tmp", false));
        assert!(r.ignored("ci", true));
        assert!(r.ignored("docs/a.md", false));
        assert!(!r.ignored("README.md", false));
        assert!(r.ignored("templates/.hidden", false));
        assert!(Ignore::parse("a/**/b").is_err());
        assert!(path_match("a[", "a").is_err());
    }
}
