//! Registry call failures, with the retry classification and stable reasons.

use std::time::Duration;

use crate::image::manifest::ManifestError;

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Connection refused, reset, timed out, TLS failures.
    #[error("{what}: {message}")]
    Transport {
        /// The operation.
        what: String,
        /// The cause (no URL, no credentials).
        message: String,
    },
    /// An unexpected status.
    #[error("{what}: registry answered {status}{}", if body.is_empty() { String::new() } else { format!(": {body}") })]
    Status {
        /// The operation.
        what: String,
        /// HTTP status.
        status: u16,
        /// `Retry-After`, if sent.
        retry_after: Option<Duration>,
        /// Start of the error body.
        body: String,
    },
    /// 401/403 after authenticating.
    #[error("{what}: access denied (check the credentials for {host})")]
    Denied {
        /// The operation.
        what: String,
        /// Registry.
        host: String,
    },
    /// 404.
    #[error("{what}: not found")]
    NotFound {
        /// The operation.
        what: String,
    },
    /// Content did not hash to its digest.
    #[error("{what}: content does not match its digest (expected {expected}, got {actual})")]
    DigestMismatch {
        /// The operation.
        what: String,
        /// Wanted.
        expected: String,
        /// Got.
        actual: String,
    },
    /// A manifest we cannot use.
    #[error("{what}: {source}")]
    Manifest {
        /// The operation.
        what: String,
        /// Why.
        source: ManifestError,
    },
    /// The registry failed every attempt for a while (its breaker is open): not tried again
    /// in this run.
    #[error(
        "{what}: registry {host} unreachable ({failures} attempts in a row failed over {secs} s); not tried again in this run"
    )]
    Unreachable {
        /// The operation.
        what: String,
        /// Registry.
        host: String,
        /// Attempts that failed in a row.
        failures: u32,
        /// Seconds since the first of them.
        secs: u64,
    },
    /// registries.conf forbids pulling the image (`blocked = true`).
    #[error("{what}: {rule}")]
    Blocked {
        /// The operation.
        what: String,
        /// The rule, with its file and line.
        rule: String,
    },
    /// Local files.
    #[error("{what}: {message}")]
    Io {
        /// The operation.
        what: String,
        /// Cause.
        message: String,
    },
}

impl RegistryError {
    /// `Some(hint)` when worth retrying (with the registry's `Retry-After` if any).
    pub fn retry_hint(&self) -> Option<Option<Duration>> {
        match self {
            RegistryError::Transport { .. } => Some(None),
            RegistryError::Status { status, retry_after, .. }
                if *status == 429 || *status == 408 || (*status >= 500 && *status != 501 && *status != 505) =>
            {
                Some(*retry_after)
            }
            _ => None,
        }
    }

    /// A short stable label for metrics and reports.
    pub fn reason(&self) -> &'static str {
        match self {
            RegistryError::Transport { .. } => "Transport",
            RegistryError::Status { .. } => "RegistryStatus",
            RegistryError::Denied { .. } => "AccessDenied",
            RegistryError::NotFound { .. } => "NotFound",
            RegistryError::DigestMismatch { .. } => "DigestMismatch",
            RegistryError::Manifest { .. } => "UnsupportedManifest",
            RegistryError::Unreachable { .. } => "RegistryUnreachable",
            RegistryError::Blocked { .. } => "SourceBlocked",
            RegistryError::Io { .. } => "Io",
        }
    }

    pub(crate) fn transport(what: &str, e: reqwest::Error) -> Self {
        let e = e.without_url();
        let mut message = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            message.push_str(": ");
            message.push_str(&s.to_string());
            src = s.source();
        }
        if let Some(go) = go_words(&message) {
            message.push_str(&format!(" ({go})"));
        }
        if let Some(hint) = hint(&message) {
            message.push_str(&format!("; {hint}"));
        }
        RegistryError::Transport { what: what.to_string(), message }
    }
}

/// The words oc-mirror (Go's net and crypto/x509) uses for the common connection failures,
/// which scripts and runbooks grep for. Pure.
pub fn go_words(message: &str) -> Option<&'static str> {
    let m = message.to_ascii_lowercase();
    if m.contains("connection refused") {
        Some("connect: connection refused")
    } else if m.contains("dns error")
        || m.contains("failed to lookup address")
        || m.contains("name or service not known")
    {
        Some("no such host")
    } else if m.contains("unknownissuer") || m.contains("unknown issuer") {
        Some("x509: certificate signed by unknown authority")
    } else if plain_http(message) {
        Some("http: server gave HTTP response to HTTPS client")
    } else if m.contains("invalid peer certificate") {
        Some("tls: failed to verify certificate")
    } else {
        None
    }
}

/// What to do about a connection failure whose cause is a setting, not the registry. Pure.
pub fn hint(message: &str) -> Option<&'static str> {
    plain_http(message).then_some(PLAIN_HTTP_HINT)
}

/// The hint for a registry that answers plain HTTP to a TLS handshake.
pub const PLAIN_HTTP_HINT: &str = "the registry answered plain HTTP, not TLS: if it serves only HTTP, mark it \
     insecure (--src-tls-verify=false or --dest-tls-verify=false on the command line, \
     spec.registries[].insecure: true in an image set)";

/// A TLS handshake answered with plain HTTP: rustls reads the start of an HTTP response
/// ("HTTP/1.1 400") as a record of an unknown content type.
fn plain_http(message: &str) -> bool {
    message.contains("InvalidContentType") || message.contains("invalid content type")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_failures_carry_go_words() {
        assert_eq!(
            go_words("tcp connect error: Connection refused (os error 111)"),
            Some("connect: connection refused")
        );
        assert_eq!(
            go_words(
                "client error (Connect): dns error: failed to lookup address information: Name or service not known"
            ),
            Some("no such host")
        );
        assert_eq!(
            go_words("invalid peer certificate: UnknownIssuer"),
            Some("x509: certificate signed by unknown authority")
        );
        assert_eq!(go_words("registry answered 500"), None);
        let plain = "client error (Connect): received corrupt message of type InvalidContentType";
        assert_eq!(go_words(plain), Some("http: server gave HTTP response to HTTPS client"));
        assert_eq!(hint(plain), Some(PLAIN_HTTP_HINT));
        assert_eq!(hint("tcp connect error: Connection refused (os error 111)"), None);
    }
}
