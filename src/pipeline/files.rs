//! Files of a run: atomic writes, and the archives disk-to-mirror reads.

use std::path::{Path, PathBuf};

use super::error::Error;
use super::request::Request;

/// Disk-to-mirror: the archive directory and the contents of its newest archive (which lists
/// every image of the run that wrote it). `field` names the part asking, for the error.
pub fn newest_archive(req: &Request, field: &str) -> Result<(PathBuf, crate::cache::archive::Contents), Error> {
    use crate::cache::archive;
    let from = req.from.clone().unwrap_or_default();
    let parts = archive::list(&from).map_err(|e| Error::Archive(e.to_string()))?;
    let Some((_, newest)) = parts.last() else {
        return Err(Error::Archive(format!("{field}: {}", archive::no_archives(&from))));
    };
    let contents = archive::read_contents(newest).map_err(|e| Error::Archive(e.to_string()))?;
    Ok((from, contents))
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io { path: path.to_path_buf(), source }
}

/// Writes a file atomically (temporary file in the same directory, then rename).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("out")));
    std::fs::write(&tmp, contents).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}
