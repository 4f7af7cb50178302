//! What can stop a run, by stage: each error has a stable reason (for conditions, events and
//! metrics) and says whether trying again unchanged can help.

use std::path::PathBuf;

/// A run that could not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request does not make sense (a field of the image set, or a combination of flags).
    #[error("{0}")]
    Invalid(String),
    /// Planning.
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// A capability this build does not have yet.
    #[error("{0}")]
    Unsupported(String),
    /// Credentials, TLS, CA files: how registries are reached.
    #[error("{0}")]
    Access(String),
    /// An operator catalog could not be fetched or read.
    #[error("{0}")]
    CatalogFetch(String),
    /// An operator catalog could not be filtered or rebuilt.
    #[error("{0}")]
    Catalog(String),
    /// Releases could not be resolved or verified (and nothing else was left to copy).
    #[error("{0}")]
    Releases(String),
    /// Reading or writing archives.
    #[error("{0}")]
    Archive(String),
    /// Setting up the run (cache, runtime).
    #[error("{0}")]
    Setup(String),
    /// Reading or writing files.
    #[error("{path}: {source}")]
    Io {
        /// File path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Some images could not be copied; the others were.
    #[error("some errors occurred during the mirroring: {failed} of {total} images failed; see {log}")]
    CopyFailed {
        /// Images that failed.
        failed: usize,
        /// Images planned.
        total: usize,
        /// The error log.
        log: PathBuf,
        /// oc-mirror's exit-code bits of the content types that lost images.
        bits: i32,
    },
}

impl Error {
    /// A stable label: the reason of the `Degraded` condition, events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Invalid(_) | Error::Plan(_) => "InvalidSpec",
            Error::Unsupported(_) => "Unsupported",
            Error::Access(_) => "AccessError",
            Error::CatalogFetch(_) => "CatalogFetchFailed",
            Error::Catalog(_) => "CatalogRebuildFailed",
            Error::Releases(_) => "ReleaseCollectionFailed",
            Error::Archive(_) => "ArchiveFailed",
            Error::Setup(_) | Error::Io { .. } => "SetupFailed",
            Error::CopyFailed { .. } => "ImagesFailed",
        }
    }

    /// Whether the same request may succeed later (registries come back, files appear).
    /// A request that is wrong in itself waits for a change.
    pub fn retryable(&self) -> bool {
        !matches!(self, Error::Invalid(_) | Error::Plan(_) | Error::Unsupported(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_errors_wait_for_a_change_and_the_rest_are_retried() {
        assert!(!Error::Plan(crate::plan::PlanError::Empty).retryable());
        assert!(!Error::Invalid("spec.x".into()).retryable());
        assert_eq!(Error::Plan(crate::plan::PlanError::Empty).reason(), "InvalidSpec");
        assert!(Error::CatalogFetch("catalog down".into()).retryable());
        assert_eq!(Error::CatalogFetch(String::new()).reason(), "CatalogFetchFailed");
        assert!(Error::Access("bad CA file".into()).retryable());
    }
}
