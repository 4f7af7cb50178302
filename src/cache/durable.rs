//! Durability without an fsync per entry. Entries are made visible by a rename once their
//! bytes match their digest; a process that dies (kill -9, OOM) never leaves a torn entry,
//! since its writes are in the page cache either way. Only a machine that stops before the
//! page cache reaches the disk can tear an entry, so before the first entry of a process is
//! made visible, a marker `unsynced` (this boot's id and the time) is written and synced.
//! When the cache is opened after another boot with the marker still there, every entry
//! renamed into place since that time (by ctime, which a rename sets) is checked against its
//! digest and removed if torn. A sync (an fsync of each entry written since the marker's time)
//! moves the marker's time forward, or removes it when nothing was written meanwhile.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{CacheError, io, replace_file};

/// The marker's name under the cache root.
pub const MARKER: &str = "unsynced";

/// What the marker records.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Eq)]
struct Marker {
    boot_id: String,
    /// Unix seconds: entries renamed into place at or after this may not be on disk.
    since: i64,
}

/// This boot's id, or `None` where the kernel does not say (then every entry is synced).
pub fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// The marker's state for one open cache.
#[derive(Debug)]
pub struct Journal {
    root: PathBuf,
    boot: String,
    /// The time the marker on disk holds, `None` when there is none (guarded: writers create
    /// it at most once).
    since: Mutex<Option<i64>>,
    /// Entries made visible by this process.
    writes: AtomicU64,
}

/// What opening found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Entries checked because another boot left them unsynced.
    pub checked: usize,
    /// Torn entries removed.
    pub removed: Vec<String>,
}

/// Writes the marker durably: its file and the directory entry.
fn write_marker(root: &Path, m: &Marker) -> Result<(), CacheError> {
    replace_file(&root.join(MARKER), &serde_json::to_vec(m).expect("a marker serializes"))?;
    sync_dir(root)
}

fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

impl Journal {
    /// Opens the journal of the cache at `root` on this boot, checking what an earlier boot
    /// left unsynced. `entries` lists the cache's entries (digest, path); `check` tells whether
    /// an entry's bytes match its digest.
    pub fn open(
        root: &Path,
        boot: String,
        entries: impl FnOnce() -> Result<Vec<(String, PathBuf)>, CacheError>,
        check: impl Fn(&str, &Path) -> bool,
    ) -> Result<(Journal, Recovery), CacheError> {
        let path = root.join(MARKER);
        let found = match fs::read(&path) {
            Ok(b) => Some(serde_json::from_slice(&b).unwrap_or(Marker {
                // Unreadable: nothing says when the writes began, so check everything.
                boot_id: String::new(),
                since: 0,
            })),
            Err(_) => None,
        };
        let mut recovery = Recovery::default();
        let mut since = None;
        match found {
            Some(m) if m.boot_id == boot => since = Some(m.since),
            Some(m) => {
                for (digest, p) in entries()? {
                    let Ok(meta) = fs::metadata(&p) else { continue };
                    if meta.ctime() < m.since {
                        continue;
                    }
                    recovery.checked += 1;
                    if !check(&digest, &p) {
                        fs::remove_file(&p).map_err(io(&p))?;
                        recovery.removed.push(digest);
                    }
                }
                fs::remove_file(&path).map_err(io(&path))?;
                sync_dir(root)?;
            }
            None => {}
        }
        let j = Journal { root: root.to_path_buf(), boot, since: Mutex::new(since), writes: AtomicU64::new(0) };
        Ok((j, recovery))
    }

    /// Called before an entry is made visible: the marker is on disk first.
    pub fn before_write(&self) -> Result<(), CacheError> {
        let mut since = self.since.lock().expect("journal lock");
        if since.is_none() {
            let m = Marker { boot_id: self.boot.clone(), since: now() - 1 };
            write_marker(&self.root, &m)?;
            *since = Some(m.since);
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Whether there is a marker and the writes it covers are at least `age` old.
    pub fn settled(&self, age: std::time::Duration) -> bool {
        let since = *self.since.lock().expect("journal lock");
        since.is_some_and(|t| now().saturating_sub(t) >= age.as_secs() as i64)
    }

    /// Syncs every entry renamed into place since the marker's time (cheap for those the
    /// kernel has already written back) and their directory; afterwards only entries written
    /// meanwhile are left to the marker (or none, and it goes). Each fsync touches one file:
    /// nothing else on the file system is waited for.
    pub fn sync(&self, entries: impl FnOnce() -> Result<Vec<(String, PathBuf)>, CacheError>) -> Result<(), CacheError> {
        let Some(since) = *self.since.lock().expect("journal lock") else { return Ok(()) };
        let (before, started) = (self.writes.load(Ordering::Relaxed), now() - 1);
        for (_, p) in entries()? {
            let Ok(meta) = fs::metadata(&p) else { continue };
            if meta.ctime() >= since {
                File::open(&p).and_then(|f| f.sync_all()).map_err(io(&p))?;
            }
        }
        sync_dir(&self.root.join("blobs/sha256"))?;
        let mut marked = self.since.lock().expect("journal lock");
        if self.writes.load(Ordering::Relaxed) == before {
            let path = self.root.join(MARKER);
            fs::remove_file(&path).map_err(io(&path))?;
            sync_dir(&self.root)?;
            *marked = None;
        } else {
            write_marker(&self.root, &Marker { boot_id: self.boot.clone(), since: started })?;
            *marked = Some(started);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Cache;
    use super::*;

    fn digest(b: &[u8]) -> String {
        use sha2::Digest as _;
        format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
    }

    fn marker(root: &Path) -> Option<Marker> {
        fs::read(root.join(MARKER)).ok().map(|b| serde_json::from_slice(&b).unwrap())
    }

    #[test]
    fn a_machine_crash_is_caught_at_the_next_open_and_syncs_clear_the_marker() {
        let Some(boot) = boot_id() else { panic!("this test needs /proc/sys/kernel/random/boot_id") };
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let (a, b) = (b"first entry".to_vec(), b"second entry".to_vec());
        {
            let cache = Cache::open(root).unwrap();
            assert_eq!(marker(root), None, "nothing written, nothing marked");
            cache.put(&digest(&a), &a).unwrap();
            let m = marker(root).expect("the marker precedes the first entry");
            assert_eq!(m.boot_id, boot);
            // A sync with nothing written since removes it; the next write brings it back.
            cache.sync().unwrap();
            assert_eq!(marker(root), None);
            cache.put(&digest(&b), &b).unwrap();
            assert!(marker(root).is_some());
        }
        // Same boot: nothing is checked and the marker stays (its writes may still be unsynced).
        {
            let _cache = Cache::open(root).unwrap();
            assert!(marker(root).is_some());
        }
        // "Another boot", and the second entry torn by it: the open removes it, keeps the
        // first (written before the marker's time) and drops the marker.
        let since = marker(root).unwrap().since;
        let other = Marker { boot_id: "another-boot".into(), since };
        fs::write(root.join(MARKER), serde_json::to_vec(&other).unwrap()).unwrap();
        let torn = root.join("blobs/sha256").join(digest(&b).trim_start_matches("sha256:"));
        fs::write(&torn, b"second ent\0\0").unwrap();
        let cache = Cache::open(root).unwrap();
        assert!(!cache.has(&digest(&b)), "a torn entry survived the check");
        assert!(cache.has(&digest(&a)));
        assert_eq!(marker(root), None);
        assert!(cache.verify().unwrap().corrupt.is_empty());
        // A marker nobody can read: everything is checked.
        fs::write(root.join(MARKER), b"{").unwrap();
        drop(cache);
        let good = root.join("blobs/sha256").join(digest(&a).trim_start_matches("sha256:"));
        fs::write(&good, b"first entrX").unwrap();
        let cache = Cache::open(root).unwrap();
        assert!(!cache.has(&digest(&a)));
        assert_eq!(marker(root), None);
    }

    #[test]
    fn scratch_caches_keep_no_marker() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap().without_fsync();
        cache.put(&digest(b"x"), b"x").unwrap();
        assert_eq!(marker(dir.path()), None);
    }
}
