//! Release signatures: the "atomic container signature" of each payload, fetched from the
//! signature store (or working-dir/signatures), verified against the release keys, and
//! checked to name the payload's digest. Its identity gives the release tag.

use std::path::Path;

use serde::Deserialize;

use super::pgp::{Keyring, PgpError};

/// The Red Hat release keys, embedded (what `oc adm release` and oc-mirror trust by default).
pub const DEFAULT_KEYS: &[&[u8]] = &[
    include_bytes!("../../config/release-keys/redhat-release.asc"),
    include_bytes!("../../config/release-keys/redhat-release-auxiliary.asc"),
];

/// The default signature store.
pub const DEFAULT_STORE: &str = "https://mirror.openshift.com/pub/openshift-v4/signatures/openshift/release";

/// Why a signature was refused.
#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    /// Not verifiable by the trusted keys.
    #[error("release {digest}: signature not trusted: {source}")]
    Untrusted {
        /// The payload digest.
        digest: String,
        /// Why.
        source: PgpError,
    },
    /// Verified, but not a usable atomic signature.
    #[error("release {digest}: signature content: {message}")]
    Content {
        /// The payload digest.
        digest: String,
        /// What is wrong.
        message: String,
    },
    /// Verified, but for another image.
    #[error("release {digest}: the signature is for {signed}, not this payload")]
    Mismatch {
        /// The payload digest.
        digest: String,
        /// The digest it signs.
        signed: String,
    },
}

/// What a verified signature says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// `critical.identity.docker-reference`, e.g. `quay.io/openshift-release-dev/ocp-release:4.18.1-x86_64`.
    pub reference: String,
    /// Its tag (the release tag used for destination naming), when it has one.
    pub tag: Option<String>,
    /// The signing key's ID.
    pub key_id: String,
}

#[derive(Deserialize)]
struct Atomic {
    critical: Critical,
}
#[derive(Deserialize)]
struct Critical {
    #[serde(rename = "type")]
    kind: String,
    image: SignedImage,
    identity: SignedIdentity,
}
#[derive(Deserialize)]
struct SignedImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}
#[derive(Deserialize)]
struct SignedIdentity {
    #[serde(rename = "docker-reference")]
    reference: String,
}

/// The keyring from `--release-signature-key` files, or the embedded Red Hat keys.
pub fn keyring(files: &[impl AsRef<Path>]) -> Result<Keyring, String> {
    let mut ring: Option<Keyring> = None;
    let mut add = |bytes: &[u8], what: &str| -> Result<(), String> {
        let k = Keyring::parse(bytes).map_err(|e| format!("{what}: {e}"))?;
        match &mut ring {
            Some(r) => r.extend(k),
            None => ring = Some(k),
        }
        Ok(())
    };
    if files.is_empty() {
        for k in DEFAULT_KEYS {
            add(k, "embedded release key")?;
        }
    }
    for f in files {
        let p = f.as_ref();
        let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
        add(&bytes, &p.display().to_string())?;
    }
    ring.ok_or_else(|| "no release keys".to_string())
}

/// Verifies a payload's signature and returns what it signs; refuses a signature for any
/// other digest (oc-mirror trusts the identity alone; a replayed signature must not pass).
pub fn check(keys: &Keyring, signature: &[u8], digest: &str) -> Result<Identity, SignatureError> {
    let v = keys.verify(signature).map_err(|source| SignatureError::Untrusted { digest: digest.into(), source })?;
    let content = |message: String| SignatureError::Content { digest: digest.into(), message };
    let a: Atomic = serde_json::from_slice(&v.payload).map_err(|e| content(e.to_string()))?;
    if a.critical.kind != "atomic container signature" {
        return Err(content(format!("type {:?}", a.critical.kind)));
    }
    if a.critical.image.digest != digest {
        return Err(SignatureError::Mismatch { digest: digest.into(), signed: a.critical.image.digest });
    }
    let r = crate::image::ImageRef::parse(&a.critical.identity.reference)
        .map_err(|e| content(format!("docker-reference: {e}")))?;
    Ok(Identity { reference: a.critical.identity.reference, tag: r.tag, key_id: v.key_id })
}

/// The store URL of a payload's first signature.
pub fn store_url(base: &str, digest: &str) -> String {
    format!("{}/sha256={}/signature-1", base.trim_end_matches('/'), digest.trim_start_matches("sha256:"))
}

/// A signature kept in working-dir/signatures from an earlier run (or placed there for
/// an offline run): the file whose name holds the digest's hex.
pub fn from_dir(dir: &Path, digest: &str) -> Option<Vec<u8>> {
    let hex = digest.trim_start_matches("sha256:");
    let rd = std::fs::read_dir(dir).ok()?;
    rd.filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().contains(hex))
        .and_then(|e| std::fs::read(e.path()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(p: &str) -> Vec<u8> {
        std::fs::read(crate::release::test_data("release/signatures").join(p)).unwrap()
    }

    const REAL: &str = "sha256:0da6316466d60a3a4535d5fed3589feb0391989982fba59d47d4c729912d6363";

    #[test]
    fn the_real_signature_verifies_with_the_embedded_keys() {
        let keys = keyring(&[] as &[&Path]).unwrap();
        let id = check(&keys, &data("oc-mirror-e2e-signature-1"), REAL).unwrap();
        assert_eq!(id.reference, "quay.io/openshift-release-dev/ocp-release:4.15.0-x86_64");
        assert_eq!(id.tag.as_deref(), Some("4.15.0-x86_64"));
        assert_eq!(id.key_id, "199E2F91FD431D51");
    }

    #[test]
    fn refused_for_another_digest_or_an_untrusted_key() {
        let keys = keyring(&[] as &[&Path]).unwrap();
        let other = format!("sha256:{}", "1".repeat(64));
        let e = check(&keys, &data("oc-mirror-e2e-signature-1"), &other).unwrap_err();
        assert!(matches!(e, SignatureError::Mismatch { .. }), "{e}");
        // Red Hat's beta and auxiliary keys did not sign this release.
        let dir = crate::release::test_data("release/signatures/redhat-public-keys");
        let others = keyring(&[
            dir.join("verifier-public-key-redhat-beta-2"),
            dir.join("verifier-public-key-redhat-release-auxiliary"),
        ])
        .unwrap();
        let e = check(&others, &data("oc-mirror-e2e-signature-1"), REAL).unwrap_err();
        assert!(e.to_string().contains("199E2F91FD431D51"), "{e}");
        let mut sig = data("oc-mirror-e2e-signature-1");
        let n = sig.len();
        sig[n - 40] ^= 0x55;
        assert!(check(&keys, &sig, REAL).is_err());
    }

    #[test]
    fn store_urls_and_files() {
        assert_eq!(store_url("https://s/x/", "sha256:ab"), "https://s/x/sha256=ab/signature-1");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("4.15.0-x86_64-sha256-0da63164"), b"sig").unwrap();
        assert_eq!(from_dir(dir.path(), "sha256:0da63164"), Some(b"sig".to_vec()));
        assert_eq!(from_dir(dir.path(), "sha256:ffff"), None);
    }
}
