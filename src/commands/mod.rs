//! The command-line workflows: the effectful shell around the pure pipeline for people
//! without a cluster. Reads files and flags, writes oc-mirror's working-dir outputs.

pub mod access;
pub mod cache;
pub mod delete;
pub mod helm;
pub mod list;
pub mod mirror;

use std::path::{Path, PathBuf};

/// A command failure, printed as one line.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Flags that do not fit together.
    #[error("{0}")]
    Usage(String),
    /// The configuration file.
    #[error("{path}: {source}")]
    Config {
        /// File path.
        path: PathBuf,
        /// What is wrong.
        source: crate::api::load::LoadError,
    },
    /// Reading or writing files.
    #[error("{path}: {source}")]
    Io {
        /// File path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Planning.
    #[error(transparent)]
    Plan(#[from] crate::plan::PlanError),
    /// The pipeline.
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::Error),
    /// A capability this build does not have yet.
    #[error("{0}")]
    Unsupported(String),
    /// Setting up the copy (credentials, TLS, cache, archives).
    #[error("{0}")]
    Setup(String),
    /// Helm charts that could not be read or rendered (the others were).
    #[error("{0}")]
    Helm(String),
}

impl CliError {
    /// Process exit code: oc-mirror's bits of the content type that failed (2 release, 4
    /// operator, 8 additional, 16 helm), 1 for anything else.
    pub fn exit_code(&self) -> i32 {
        use crate::pipeline::Error;
        match self {
            CliError::Pipeline(Error::CopyFailed { bits, .. }) => *bits,
            CliError::Pipeline(Error::Releases(_)) => 2,
            CliError::Pipeline(Error::Catalog(_) | Error::CatalogFetch(_)) => 4,
            CliError::Helm(_) => 16,
            _ => 1,
        }
    }
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Io { path: path.to_path_buf(), source }
}

/// Strips `file://` and resolves oc-mirror's working-dir rule (appended unless already last).
pub fn working_dir(file_url: &str) -> PathBuf {
    let p = PathBuf::from(file_url.trim_start_matches("file://"));
    if p.file_name().is_some_and(|n| n == "working-dir") { p } else { p.join("working-dir") }
}

/// Writes a file atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), CliError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("out")));
    std::fs::write(&tmp, contents).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}
