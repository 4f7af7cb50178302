//! The archive directory (`--archive-dir`) in the cluster: where an image set's `file://` paths
//! lie (one directory per namespace, never left), and the release signatures that archives
//! written before they carried signatures have beside them, in `working-dir/signatures`.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::run::Failure;
use crate::api::validate;

/// The largest signature file taken from an archive directory (real ones are about 1 KiB).
const MAX_SIGNATURE: u64 = 64 << 10;
/// The most signature files taken from one archive directory.
const MAX_SIGNATURES: usize = 10_000;

/// Where an image set's `file://` value lies: `<archives>/<namespace>/<path>`, each component
/// resolved (symbolic links followed) and refused once it leaves `<archives>/<namespace>`, so
/// that no spec reaches another namespace's archives or anything else of the operator's
/// filesystem. `field` (`spec.destination`, `spec.from`) is named in refusals. `create`: missing
/// directories are made (mirror to disk); otherwise the directory must exist (disk to mirror).
/// Returns the resolved path.
pub fn path(
    archives: Option<&Path>,
    namespace: &str,
    field: &str,
    url: &str,
    create: bool,
) -> Result<PathBuf, Failure> {
    let Some(archives) = archives else {
        return Err(Failure {
            reason: "ArchivesDisabled",
            message: format!(
                "{field}: {url}: archives are disabled: the operator runs without --archive-dir (env ARCHIVE_DIR; the chart's archive.enabled)"
            ),
            retryable: false,
        });
    };
    validate::archive_url(field, url).map_err(|e| Failure {
        reason: "InvalidSpec",
        message: e.to_string(),
        retryable: false,
    })?;
    let failed = |p: &Path, e: &dyn std::fmt::Display| Failure {
        reason: "ArchiveFailed",
        message: format!("{field}: {url}: {}: {e}", p.display()),
        retryable: true,
    };
    let base = archives.canonicalize().map_err(|e| failed(archives, &e))?;
    let home = base.join(namespace);
    let rel = url.trim_start_matches("file://");
    let mut at = base.clone();
    for part in Path::new(namespace).components().chain(Path::new(rel).components()) {
        let std::path::Component::Normal(part) = part else { continue };
        let next = at.join(part);
        let missing = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
        if create && std::fs::symlink_metadata(&next).is_err_and(|e| missing(&e)) {
            match std::fs::create_dir(&next) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(failed(&next, &e)),
                _ => {}
            }
        }
        let meta = std::fs::symlink_metadata(&next).map_err(|e| match missing(&e) {
            true => failed(&next, &"no such directory: the archives go there"),
            false => failed(&next, &e),
        })?;
        if meta.file_type().is_symlink() {
            let real = next.canonicalize().map_err(|e| failed(&next, &e))?;
            if !real.starts_with(&home) {
                return Err(Failure {
                    reason: "InvalidSpec",
                    message: format!(
                        "{field}: {url}: {} is a symbolic link to {}, outside the archive directory of namespace {namespace}",
                        next.display(),
                        real.display()
                    ),
                    retryable: false,
                });
            }
            at = real;
        } else {
            at = next;
        }
        if !at.is_dir() {
            return Err(failed(&at, &"not a directory"));
        }
    }
    Ok(at)
}

/// The image set's mirror block with each local chart (`spec.mirror.helm.local[i].path`, a
/// chart directory or `.tgz`) resolved under the namespace's archive directory as `file://`
/// values are (see [`path`]; the chart itself may not be a link out of it either). Absolute
/// paths, `..` and charts without `--archive-dir` are refused naming the field.
pub fn local_charts(
    archives: Option<&Path>,
    namespace: &str,
    mirror: &crate::api::mirror::Mirror,
) -> Result<crate::api::mirror::Mirror, Failure> {
    let mut m = mirror.clone();
    let Some(helm) = m.helm.as_mut() else { return Ok(m) };
    for (i, c) in helm.local.iter_mut().enumerate() {
        let field = format!("spec.mirror.helm.local[{i}].path");
        let value = c.path.clone().unwrap_or_default();
        let refuse = |why: &str| Failure {
            reason: "InvalidSpec",
            message: format!("{field}: {value:?}: {why}"),
            retryable: false,
        };
        let rel = Path::new(&value);
        if value.starts_with('/') || rel.components().any(|c| c == std::path::Component::ParentDir) {
            return Err(refuse(
                "a local chart is named relative to the namespace's archive directory, without '/' at the start or '..'",
            ));
        }
        let Some(name) = rel.file_name() else { return Err(refuse("names no chart")) };
        let parent = rel.parent().map(|p| p.display().to_string()).filter(|p| !p.is_empty());
        let dir = path(archives, namespace, &field, &format!("file://{}", parent.as_deref().unwrap_or(".")), false)?;
        let chart = dir.join(name);
        let meta = std::fs::symlink_metadata(&chart).map_err(|e| Failure {
            reason: "ArchiveFailed",
            message: format!("{field}: {value:?}: {}: {e}", chart.display()),
            retryable: true,
        })?;
        let home = archives.and_then(|a| a.canonicalize().ok()).map(|a| a.join(namespace)).unwrap_or_default();
        if meta.file_type().is_symlink() && !chart.canonicalize().is_ok_and(|real| real.starts_with(&home)) {
            return Err(refuse("a symbolic link out of the namespace's archive directory"));
        }
        c.path = Some(chart.display().to_string());
    }
    Ok(m)
}

/// Disk to mirror: the release signatures beside the archives in `from`
/// (`<from>/working-dir/signatures`, where the command line's mirror to disk keeps them, and
/// where archives written before archives carried signatures have them) go into the image set's
/// own working directory, where the pipeline looks for a signature the archives do not carry
/// (and checks each against the trusted keys). Only regular files of a signature's size are
/// taken; none there is no error.
pub fn take_signatures(from: &Path, working_dir: &Path) -> Result<usize, String> {
    copy_signatures(&from.join("working-dir").join("signatures"), &working_dir.join("signatures"))
}

/// Copies the signature files of `src` into `dst` (made if missing): regular files only, each
/// written to a new temporary file and renamed into place, so that nothing in `dst` is
/// followed. Returns how many.
fn copy_signatures(src: &Path, dst: &Path) -> Result<usize, String> {
    let entries = match std::fs::read_dir(src) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(format!("{}: {e}", src.display())),
    };
    let mut n = 0;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", src.display()))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| !n.starts_with('.')) else { continue };
        if !meta.is_file() || meta.len() > MAX_SIGNATURE {
            continue;
        }
        if n == MAX_SIGNATURES {
            return Err(format!("{}: more than {MAX_SIGNATURES} signature files", src.display()));
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::create_dir_all(dst).map_err(|e| format!("{}: {e}", dst.display()))?;
        let tmp = dst.join(format!(".{name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| format!("{}: {e}", tmp.display()))?;
        f.write_all(&bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, dst.join(name)).map_err(|e| format!("{}: {e}", dst.display()))?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(r: Result<PathBuf, Failure>) -> (&'static str, String) {
        let f = r.unwrap_err();
        (f.reason, f.message)
    }

    #[test]
    fn paths_stay_in_the_namespace_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("archives");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&base).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let p = |url: &str, create: bool| path(Some(&base), "team", "spec.destination", url, create);

        let (r, m) = reason(path(None, "team", "spec.from", "file://out", false));
        assert_eq!(r, "ArchivesDisabled");
        assert!(m.starts_with("spec.from: ") && m.contains("--archive-dir"), "{m}");
        for url in ["file:///etc", "file://../x", "file://a/../../x"] {
            let (r, m) = reason(p(url, true));
            assert_eq!(r, "InvalidSpec", "{url}");
            assert!(m.starts_with("spec.destination: "), "{m}");
        }
        assert!(std::fs::read_dir(&base).unwrap().next().is_none(), "a refused path made a directory");

        let out = p("file://out/2024", true).unwrap();
        assert_eq!(out, base.canonicalize().unwrap().join("team/out/2024"));
        assert!(out.is_dir());
        assert_eq!(p("file://./out/2024/", false).unwrap(), out);

        // A link out of the namespace's directory, to another namespace's, or as the
        // namespace's directory itself: refused, and nothing made through it.
        std::os::unix::fs::symlink(&outside, base.join("team/escape")).unwrap();
        std::fs::create_dir_all(base.join("other/secret")).unwrap();
        std::os::unix::fs::symlink(base.join("other/secret"), base.join("team/peek")).unwrap();
        for url in ["file://escape", "file://escape/x", "file://peek"] {
            for create in [true, false] {
                let (r, m) = reason(p(url, create));
                assert_eq!(r, "InvalidSpec", "{url}");
                assert!(m.starts_with("spec.destination: ") && m.contains("symbolic link"), "{m}");
            }
        }
        assert!(std::fs::read_dir(&outside).unwrap().next().is_none(), "written through a link");
        std::os::unix::fs::symlink(&outside, base.join("linked")).unwrap();
        let (r, _) = reason(path(Some(&base), "linked", "spec.from", "file://x", true));
        assert_eq!(r, "InvalidSpec");

        // A link that stays inside is followed.
        std::os::unix::fs::symlink(base.join("team/out"), base.join("team/alias")).unwrap();
        assert_eq!(p("file://alias/2024", false).unwrap(), out);

        // Importing from a directory that is not there waits for it.
        let f = path(Some(&base), "team", "spec.from", "file://absent", false).unwrap_err();
        assert_eq!((f.reason, f.retryable), ("ArchiveFailed", true), "{}", f.message);
        assert!(!base.join("team/absent").exists());
    }

    #[test]
    fn signatures_beside_the_archives_are_taken_as_regular_files() {
        let tmp = tempfile::tempdir().unwrap();
        let (archive, work) = (tmp.path().join("archive"), tmp.path().join("work"));
        assert_eq!(take_signatures(&archive, &work).unwrap(), 0, "none there is no error");
        let beside = archive.join("working-dir/signatures");
        std::fs::create_dir_all(&beside).unwrap();
        std::fs::write(beside.join("4.18.1-x86_64-sha256-ab"), b"sig").unwrap();
        std::fs::write(tmp.path().join("secret"), b"secret").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), beside.join("link-sha256-cd")).unwrap();
        std::fs::write(beside.join("huge-sha256-ef"), vec![0u8; MAX_SIGNATURE as usize + 1]).unwrap();
        assert_eq!(take_signatures(&archive, &work).unwrap(), 1);
        assert_eq!(std::fs::read(work.join("signatures/4.18.1-x86_64-sha256-ab")).unwrap(), b"sig");
        assert!(!work.join("signatures/link-sha256-cd").exists(), "a link was followed");
        assert!(!work.join("signatures/huge-sha256-ef").exists());
    }

    #[test]
    fn local_charts_lie_in_the_namespace_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("archives");
        std::fs::create_dir_all(base.join("team/charts/demo")).unwrap();
        std::fs::write(base.join("team/charts/podinfo.tgz"), b"tgz").unwrap();
        std::fs::write(tmp.path().join("outside.tgz"), b"secret").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside.tgz"), base.join("team/charts/leak.tgz")).unwrap();
        let with = |paths: &[&str]| {
            let local = paths
                .iter()
                .map(|p| crate::api::mirror::HelmChart {
                    name: "c".into(),
                    path: Some(p.to_string()),
                    ..Default::default()
                })
                .collect();
            let helm = crate::api::mirror::Helm { local, ..Default::default() };
            crate::api::mirror::Mirror { helm: Some(helm), ..Default::default() }
        };
        let resolved =
            local_charts(Some(&base), "team", &with(&["charts/podinfo.tgz", "charts/demo", "./charts/demo/"]))
                .unwrap()
                .helm
                .unwrap();
        let real = base.canonicalize().unwrap().join("team/charts");
        let paths: Vec<String> = resolved.local.iter().map(|c| c.path.clone().unwrap()).collect();
        assert_eq!(
            paths,
            [real.join("podinfo.tgz"), real.join("demo"), real.join("demo")].map(|p| p.display().to_string())
        );
        for (p, reason) in [
            ("/etc/passwd", "InvalidSpec"),
            ("charts/../../x.tgz", "InvalidSpec"),
            ("charts/leak.tgz", "InvalidSpec"),
            ("charts/absent.tgz", "ArchiveFailed"),
        ] {
            let f = local_charts(Some(&base), "team", &with(&[p])).unwrap_err();
            assert_eq!(f.reason, reason, "{p}: {}", f.message);
            assert!(f.message.starts_with("spec.mirror.helm.local[0].path: "), "{}", f.message);
        }
        let f = local_charts(None, "team", &with(&["charts/podinfo.tgz"])).unwrap_err();
        assert_eq!(f.reason, "ArchivesDisabled");
        // An image set without local charts needs no archive directory.
        assert!(local_charts(None, "team", &crate::api::mirror::Mirror::default()).is_ok());
    }
}
