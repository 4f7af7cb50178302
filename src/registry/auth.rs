//! Registry credentials and challenges: docker `config.json` / `kubernetes.io/dockerconfigjson`
//! reading, `WWW-Authenticate` parsing, bearer tokens cached per scope until they expire.
//! Credentials never reach `Debug`, logs or errors.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A user and password (or identity token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({}, <redacted>)", self.username)
    }
}

/// Credentials by registry, as read from a docker config.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct DockerAuth {
    entries: Vec<(String, Credential)>,
}

impl fmt::Debug for DockerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.entries.iter().map(|(k, _)| k.as_str()).collect();
        write!(f, "DockerAuth({keys:?})")
    }
}

/// Why a docker config could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    /// Not JSON of the right shape.
    #[error("not a docker config.json: {0}")]
    Json(String),
    /// An `auth` field that is not base64 of `user:password`.
    #[error("auths.{0}.auth is not base64 of user:password")]
    Auth(String),
}

impl DockerAuth {
    /// Parses `{"auths": {"host": {"auth": base64(user:pass)} | {"username","password"}}}`.
    pub fn parse(bytes: &[u8]) -> Result<Self, AuthFileError> {
        #[derive(serde::Deserialize)]
        struct File {
            #[serde(default)]
            auths: HashMap<String, Entry>,
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            auth: Option<String>,
            username: Option<String>,
            password: Option<String>,
            identitytoken: Option<String>,
        }
        let file: File = serde_json::from_slice(bytes).map_err(|e| AuthFileError::Json(e.to_string()))?;
        let mut entries = Vec::new();
        for (key, e) in file.auths {
            let cred = if let Some(a) = e.auth.filter(|a| !a.is_empty()) {
                let raw = STANDARD.decode(a.trim()).map_err(|_| AuthFileError::Auth(key.clone()))?;
                let text = String::from_utf8(raw).map_err(|_| AuthFileError::Auth(key.clone()))?;
                let (u, p) = text.split_once(':').ok_or_else(|| AuthFileError::Auth(key.clone()))?;
                Credential { username: u.to_string(), password: p.to_string() }
            } else if let (Some(u), Some(p)) = (e.username, e.password.or(e.identitytoken)) {
                Credential { username: u, password: p }
            } else {
                continue;
            };
            entries.push((normalise_key(&key), cred));
        }
        // Longest key first: `host/ns/repo` entries win over `host`.
        entries.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
        Ok(DockerAuth { entries })
    }

    /// Adds another file's entries (earlier ones win on equal keys).
    pub fn merge(&mut self, other: DockerAuth) {
        for (k, c) in other.entries {
            if !self.entries.iter().any(|(e, _)| *e == k) {
                self.entries.push((k, c));
            }
        }
        self.entries.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    }

    /// The credential for a repository of a registry, matching `host/path` prefixes like podman.
    pub fn lookup(&self, host: &str, repo: &str) -> Option<&Credential> {
        let full = format!("{host}/{repo}");
        self.entries
            .iter()
            .find(|(k, _)| *k == host || (full.starts_with(k.as_str()) && full[k.len()..].starts_with('/')))
            .map(|(_, c)| c)
    }
}

fn normalise_key(key: &str) -> String {
    let k = key.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
    let k = k.strip_suffix("/v1").or_else(|| k.strip_suffix("/v2")).unwrap_or(k);
    match k {
        "index.docker.io" | "registry-1.docker.io" => "docker.io".to_string(),
        _ => k.to_string(),
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// No auth needed.
    None,
    /// HTTP basic.
    Basic,
    /// Token service.
    Bearer {
        /// Token endpoint.
        realm: String,
        /// `service` parameter.
        service: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` header value.
pub fn parse_challenge(header: &str) -> Challenge {
    let (scheme, rest) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if scheme.eq_ignore_ascii_case("basic") {
        return Challenge::Basic;
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Challenge::None;
    }
    let mut params = HashMap::new();
    let mut s = rest;
    while let Some((k, after)) = s.split_once('=') {
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (&q[..end], q.get(end + 1..).unwrap_or(""))
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(k, v.to_string());
        s = next;
    }
    match params.remove("realm") {
        Some(realm) => Challenge::Bearer { realm, service: params.remove("service") },
        None => Challenge::None,
    }
}

/// `Authorization: Basic` value.
pub fn basic_header(c: &Credential) -> String {
    format!("Basic {}", STANDARD.encode(format!("{}:{}", c.username, c.password)))
}

/// A bearer token and when to stop using it.
#[derive(Clone)]
pub struct Token {
    /// The token.
    pub value: String,
    /// Refresh after this instant.
    pub refresh_at: Instant,
}

/// The token endpoint's answer.
#[derive(serde::Deserialize)]
pub struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
}

impl TokenResponse {
    /// The token, refreshed a little before it expires (60 s when the server does not say).
    pub fn into_token(self, now: Instant) -> Option<Token> {
        let value = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        let life = Duration::from_secs(self.expires_in.unwrap_or(60).max(1));
        let margin = (life / 5).min(Duration::from_secs(30));
        Some(Token { value, refresh_at: now + life - margin })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_lookup_prefers_the_longest_key() {
        let cfg = br#"{"auths":{
            "quay.io":{"auth":"dXNlcjpwYXNz"},
            "https://quay.io/org":{"username":"org","password":"p:w"},
            "https://index.docker.io/v1/":{"auth":"ZDpw"},
            "empty.io":{}
        }}"#;
        let a = DockerAuth::parse(cfg).unwrap();
        assert_eq!(a.lookup("quay.io", "org/app").unwrap().username, "org");
        assert_eq!(a.lookup("quay.io", "org/app").unwrap().password, "p:w");
        assert_eq!(a.lookup("quay.io", "orgx/app").unwrap().username, "user");
        assert_eq!(a.lookup("docker.io", "library/x").unwrap().username, "d");
        assert!(a.lookup("empty.io", "x").is_none());
        assert!(!format!("{a:?}").contains("pass"), "no secrets in Debug");
        assert!(!format!("{:?}", a.lookup("quay.io", "x").unwrap()).contains("pass"));
        assert!(DockerAuth::parse(br#"{"auths":{"x":{"auth":"!!"}}}"#).unwrap_err().to_string().contains("auths.x"));
    }

    #[test]
    fn tokens_are_refreshed_before_they_expire() {
        let now = Instant::now();
        let t: TokenResponse = serde_json::from_str(r#"{"token":"a","expires_in":300}"#).unwrap();
        assert_eq!(t.into_token(now).unwrap().refresh_at, now + Duration::from_secs(270));
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"b","expires_in":10}"#).unwrap();
        let t = t.into_token(now).unwrap();
        assert_eq!((t.value.as_str(), t.refresh_at), ("b", now + Duration::from_secs(8)));
        let t: TokenResponse = serde_json::from_str(r#"{"token":"c"}"#).unwrap();
        assert_eq!(t.into_token(now).unwrap().refresh_at, now + Duration::from_secs(48), "60 s when unsaid");
        let t: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert!(t.into_token(now).is_none());
    }

    #[test]
    fn challenges() {
        assert_eq!(parse_challenge("Basic realm=\"r\""), Challenge::Basic);
        assert_eq!(
            parse_challenge("Bearer realm=\"https://auth.example/token\",service=\"reg\",scope=\"repository:a:pull\""),
            Challenge::Bearer { realm: "https://auth.example/token".into(), service: Some("reg".into()) }
        );
        assert_eq!(
            parse_challenge("bearer realm=https://a/t,service=s"),
            Challenge::Bearer { realm: "https://a/t".into(), service: Some("s".into()) }
        );
        assert_eq!(parse_challenge("Negotiate"), Challenge::None);
    }
}
