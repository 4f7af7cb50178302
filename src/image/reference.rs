//! Parsing image references the way oc-mirror does: the part before the first `/` is the
//! registry (no `docker.io/library` normalisation), then the repository path, then an optional
//! tag and an optional digest.

use std::fmt;

/// Where a reference points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// A registry (`docker://`, implied when absent).
    Docker,
    /// A local OCI layout directory (`oci://`).
    Oci,
}

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    /// Transport.
    pub transport: Transport,
    /// Registry host and port (empty for `oci://`).
    pub registry: String,
    /// Repository path below the registry (the directory for `oci://`).
    pub path: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Digest (`algo:hex`), if any.
    pub digest: Option<String>,
}

/// Why a reference could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RefError {
    /// Empty input.
    #[error("image reference is empty")]
    Empty,
    /// Neither tag nor digest.
    #[error("{0} unable to parse image correctly : tag and digest are empty")]
    NoTagOrDigest(String),
    /// Unsupported `xxx://` prefix.
    #[error("{0}: unsupported transport (use docker:// or oci://)")]
    Transport(String),
    /// Malformed digest.
    #[error("{0} unable to parse image correctly : invalid digest (expected sha256:<64 hex> or sha512:<128 hex>)")]
    Digest(String),
    /// Malformed name or tag.
    #[error("{0} unable to parse image correctly : invalid reference format")]
    Format(String),
}

impl ImageRef {
    /// Parses a reference that must carry a tag or a digest (`oci://` needs neither).
    pub fn parse(input: &str) -> Result<Self, RefError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(RefError::Empty);
        }
        let (transport, rest) = if let Some(r) = s.strip_prefix("docker://") {
            (Transport::Docker, r)
        } else if let Some(r) = s.strip_prefix("oci://") {
            (Transport::Oci, r)
        } else if s.contains("://") {
            return Err(RefError::Transport(s.to_string()));
        } else {
            (Transport::Docker, s)
        };
        if transport == Transport::Oci {
            if rest.is_empty() {
                return Err(RefError::Format(s.to_string()));
            }
            return Ok(ImageRef {
                transport,
                registry: String::new(),
                path: rest.to_string(),
                tag: None,
                digest: None,
            });
        }
        let (name_tag, digest) = match rest.split_once('@') {
            Some((n, d)) => {
                if !is_digest(d) {
                    return Err(RefError::Digest(s.to_string()));
                }
                (n, Some(d.to_string()))
            }
            None => (rest, None),
        };
        let last_slash = name_tag.rfind('/');
        let (name, tag) = match name_tag.rfind(':') {
            Some(i) if last_slash.is_none_or(|j| i > j) => (&name_tag[..i], Some(name_tag[i + 1..].to_string())),
            _ => (name_tag, None),
        };
        if let Some(t) = &tag {
            let ok = !t.is_empty()
                && t.len() <= 128
                && t.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                && !t.starts_with(['.', '-']);
            if !ok {
                return Err(RefError::Format(s.to_string()));
            }
        }
        if tag.is_none() && digest.is_none() {
            return Err(RefError::NoTagOrDigest(s.to_string()));
        }
        let (registry, path) = match name.split_once('/') {
            Some((r, p)) => (r.to_string(), p.to_string()),
            None => (String::new(), name.to_string()),
        };
        let valid_path = !path.is_empty()
            && path.split('/').all(|c| {
                !c.is_empty()
                    && c.chars().all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
            });
        let valid_registry =
            registry.is_empty() || registry.chars().all(|ch| ch.is_ascii_alphanumeric() || ".-:[]".contains(ch));
        if !valid_path || !valid_registry {
            return Err(RefError::Format(s.to_string()));
        }
        Ok(ImageRef { transport, registry, path, tag, digest })
    }

    /// `registry/path` without tag or digest.
    pub fn name(&self) -> String {
        if self.registry.is_empty() { self.path.clone() } else { format!("{}/{}", self.registry, self.path) }
    }

    /// The tag oc-mirror gives this image at the destination: its tag, else `sha256-<hex>`
    /// (truncated to 127 characters), else `latest` for `oci://` sources.
    pub fn destination_tag(&self) -> String {
        if let Some(t) = &self.tag {
            return t.clone();
        }
        match &self.digest {
            Some(d) => {
                let t = d.replacen(':', "-", 1);
                if t.len() > 128 { t[..127].to_string() } else { t }
            }
            None => "latest".to_string(),
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.transport {
            Transport::Oci => write!(f, "oci://{}", self.path),
            Transport::Docker => {
                write!(f, "docker://{}", self.name())?;
                if let Some(t) = &self.tag {
                    write!(f, ":{t}")?;
                }
                if let Some(d) = &self.digest {
                    write!(f, "@{d}")?;
                }
                Ok(())
            }
        }
    }
}

/// Whether `d` is `sha256:<64 hex>` or `sha512:<128 hex>`.
pub fn is_digest(d: &str) -> bool {
    let Some((algo, hex)) = d.split_once(':') else {
        return false;
    };
    let len = match algo {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    hex.len() == len && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:61b8f5e1a3b5dbd9e2c35fd448dc5106337d7a299873dd3a6f0cd8d4891ecc27";

    #[test]
    fn parses_tag_digest_and_both() {
        let r = ImageRef::parse("registry.redhat.io/ubi9/ubi:latest").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.path.as_str(), r.tag.as_deref()),
            ("registry.redhat.io", "ubi9/ubi", Some("latest"))
        );
        let r = ImageRef::parse(&format!("quay.io/openshifttest/hello-openshift@{D}")).unwrap();
        assert_eq!(r.digest.as_deref(), Some(D));
        assert_eq!(r.destination_tag(), D.replace(':', "-"));
        let r = ImageRef::parse(&format!("docker://localhost:5000/a/b:v1@{D}")).unwrap();
        assert_eq!((r.registry.as_str(), r.tag.as_deref()), ("localhost:5000", Some("v1")));
        assert_eq!(r.to_string(), format!("docker://localhost:5000/a/b:v1@{D}"));
    }

    #[test]
    fn registry_is_first_component_without_normalisation() {
        let r = ImageRef::parse("ubi8/ubi:latest").unwrap();
        assert_eq!((r.registry.as_str(), r.path.as_str()), ("ubi8", "ubi"));
    }

    #[test]
    fn rejects_bare_names_and_bad_digests() {
        assert_eq!(ImageRef::parse("quay.io/a/b"), Err(RefError::NoTagOrDigest("quay.io/a/b".into())));
        assert!(matches!(ImageRef::parse("quay.io/a/b@sha256:abc"), Err(RefError::Digest(_))));
        assert!(matches!(ImageRef::parse("quay.io/A/b:1"), Err(RefError::Format(_))));
        assert!(matches!(ImageRef::parse("http://quay.io/a:1"), Err(RefError::Transport(_))));
        assert!(ImageRef::parse("oci:///tmp/layout").is_ok());
    }
}
