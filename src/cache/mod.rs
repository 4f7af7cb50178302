//! The content-addressed cache (a directory; a PVC in the cluster). Blobs and manifests live
//! under `blobs/sha256/<hex>` and only get there verified (temporary file, rename), so a crash
//! never leaves a corrupt entry visible: a killed process leaves its writes in the page cache,
//! and what a machine crash may have torn is checked when the cache is next opened (see
//! [`durable`]). Downloads in progress sit in `staging/` and
//! are resumed from where they stopped. `refs/<name>.json` records what each image set
//! needs, so garbage collection keeps only referenced entries. One process owns a cache at a
//! time (an exclusive lock on `.lock`); shard workers of that owner open it beside it
//! ([`Cache::open_worker`]). Every download of an entry holds that entry's lock
//! (`staging/<hex>.lock`) across processes, so writers sharing a volume fetch each digest once.

pub mod archive;
pub mod durable;
pub mod fetch;
mod forget;
pub mod staging;

pub use forget::ForgetReport;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

/// Why the cache failed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// File system trouble.
    #[error("cache {path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Another process holds the cache.
    #[error("cache {0} is in use by another process")]
    Busy(PathBuf),
    /// Bytes that do not match their digest (never stored).
    #[error("content for {expected} hashes to {actual}; not stored")]
    Mismatch {
        /// Wanted.
        expected: String,
        /// Got.
        actual: String,
    },
    /// Not a `sha256:<hex>` digest.
    #[error("invalid digest {0:?}")]
    Digest(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError::Io { path: path.to_path_buf(), source }
}

/// What `verify` found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries hashed.
    pub checked: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Entries whose bytes do not match their name: `(digest, actual)`.
    pub corrupt: Vec<(String, String)>,
}

/// What `gc` removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Entries removed.
    pub removed: u64,
    /// Bytes freed.
    pub freed: u64,
    /// Entries kept.
    pub kept: u64,
    /// Bytes kept.
    pub kept_bytes: u64,
}

/// An open cache.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    /// The owner's lock on `.lock` (`None`: a worker beside the owner).
    _lock: Option<File>,
    /// Sync each entry before its rename (where the kernel gives no boot id to journal by).
    durable: bool,
    /// The unsynced-writes marker; `None` for scratch caches and where there is no boot id.
    journal: Option<durable::Journal>,
    /// One download at a time per digest, for every user of this cache.
    flights: crate::flight::Flights<String>,
    names_lock: std::sync::Mutex<()>,
    /// Blobs and manifests taken from the cache instead of a registry.
    pub hits: std::sync::atomic::AtomicU64,
    /// Blobs and manifests fetched from a registry into the cache.
    pub misses: std::sync::atomic::AtomicU64,
}

/// The turn to download one entry: this process's single flight and, across processes, the
/// entry's file lock (released when dropped, or when the process dies).
pub struct Turn<'a> {
    _flight: crate::flight::Flight<'a, String>,
    _file: Option<File>,
}

/// Replaces `path` with `body` whole: written beside it (`<name>.tmp`), synced, renamed over it.
fn replace_file(path: &Path, body: &[u8]) -> Result<(), CacheError> {
    let tmp = beside(path, "tmp");
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(body).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    fs::rename(&tmp, path).map_err(io(path))
}

/// A temporary name beside `path` that no other writer (thread or process) uses at the same
/// time: concurrent writers of one entry each rename their own complete file into place, so
/// none truncates another's or finds its temporary file gone.
fn beside(path: &Path, what: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}-{n}.{what}", std::process::id()));
    path.with_file_name(name)
}

fn hex_of(digest: &str) -> Result<&str, CacheError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) => Ok(h),
        _ => Err(CacheError::Digest(digest.to_string())),
    }
}

/// Streams a reader through sha256; returns `(sha256:<hex>, length)`.
pub fn hash_reader(r: impl Read) -> std::io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let n = hash_into(r, &mut h)?;
    Ok((format!("sha256:{}", hex::encode(h.finalize())), n))
}

/// Feeds everything `r` yields into `h`; returns how many bytes that was.
pub fn hash_into(mut r: impl Read, h: &mut Sha256) -> std::io::Result<u64> {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf)?;
        if k == 0 {
            return Ok(n);
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

impl Cache {
    /// Counts an entry taken from the cache (`true`) or fetched into it (`false`).
    pub fn count(&self, hit: bool) {
        let c = if hit { &self.hits } else { &self.misses };
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Opens (creating) a cache directory and takes its lock.
    pub fn open(root: &Path) -> Result<Cache, CacheError> {
        let mut cache = Cache::unlocked(root)?;
        let lock_path = root.join(".lock");
        let lock = File::options().create(true).truncate(false).write(true).open(&lock_path).map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(CacheError::Busy(root.to_path_buf())),
            Err(fs::TryLockError::Error(e)) => return Err(CacheError::Io { path: lock_path, source: e }),
        }
        cache._lock = Some(lock);
        if let Some(boot) = durable::boot_id() {
            let check = |digest: &str, p: &Path| {
                File::open(p).ok().and_then(|f| hash_reader(f).ok()).is_some_and(|(d, _)| d == digest)
            };
            let (journal, found) = durable::Journal::open(root, boot, || cache.entries(), check)?;
            if found.checked > 0 {
                tracing::warn!(
                    cache = %root.display(),
                    checked = found.checked,
                    removed = found.removed.len(),
                    "entries written before the machine restarted were checked; torn ones removed (fetched again when needed)"
                );
            }
            cache.journal = Some(journal);
            cache.durable = false;
        }
        Ok(cache)
    }

    /// Opens a cache another process owns, as one of its shard workers: no owner lock, no
    /// journal (each entry is synced before its rename), nothing recorded (`refs/` and
    /// `names.json` are the owner's). Entries are written beside and renamed, and downloads hold
    /// their entry's lock, so several workers and the owner share the directory safely.
    pub fn open_worker(root: &Path) -> Result<Cache, CacheError> {
        Cache::unlocked(root)
    }

    /// The directory (created), with no lock and no journal.
    fn unlocked(root: &Path) -> Result<Cache, CacheError> {
        for d in ["blobs/sha256", "staging", "refs"] {
            let p = root.join(d);
            fs::create_dir_all(&p).map_err(io(&p))?;
        }
        Ok(Cache {
            root: root.to_path_buf(),
            _lock: None,
            durable: true,
            journal: None,
            flights: Default::default(),
            names_lock: Default::default(),
            hits: Default::default(),
            misses: Default::default(),
        })
    }

    /// Syncs the entries written since the journal's marker so that they need no check after
    /// a machine crash (the marker moves on). Blocking; slow when much is not written back yet.
    pub fn sync(&self) -> Result<(), CacheError> {
        match &self.journal {
            Some(j) => j.sync(|| self.entries()),
            None => Ok(()),
        }
    }

    /// [`Cache::sync`] on a thread of its own once what the marker covers is at least
    /// `settled` old (by then the kernel has written it back, so the fsyncs are quick and a
    /// process exiting meanwhile is not held up); a failure is logged.
    pub fn sync_in_background(self: &std::sync::Arc<Self>, settled: std::time::Duration) {
        if !self.journal.as_ref().is_some_and(|j| j.settled(settled)) {
            return;
        }
        let me = self.clone();
        std::thread::spawn(move || {
            if let Err(e) = me.sync() {
                tracing::warn!(error = %e, "cache sync failed");
            }
        });
    }

    /// No durability work at all (no marker, no fsync): a killed process still never leaves
    /// a torn entry (the page cache survives it), but a machine crash might, unchecked. For
    /// scratch caches; `verify` finds what a crash tore.
    pub fn without_fsync(mut self) -> Self {
        self.durable = false;
        self.journal = None;
        self
    }

    /// Waits for the turn to download `digest` into this cache: single flight per digest in
    /// this process, then the entry's lock across the processes sharing the directory (shard
    /// workers). A lock that cannot be taken (a filesystem without locks) leaves the in-process
    /// turn alone: entries are still written beside and renamed, so at worst a digest is
    /// fetched twice.
    pub async fn flight(&self, digest: &str) -> Turn<'_> {
        let flight = self.flights.enter(digest.to_string()).await;
        let Ok(hex) = hex_of(digest) else { return Turn { _flight: flight, _file: None } };
        let path = self.root.join("staging").join(format!("{hex}.lock"));
        let file = match File::options().create(true).truncate(false).write(true).open(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "no entry lock");
                return Turn { _flight: flight, _file: None };
            }
        };
        let mut wait = std::time::Duration::from_millis(5);
        loop {
            match file.try_lock() {
                Ok(()) => return Turn { _flight: flight, _file: Some(file) },
                Err(fs::TryLockError::WouldBlock) => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_millis(200));
                }
                Err(fs::TryLockError::Error(e)) => {
                    tracing::debug!(path = %path.display(), error = %e, "no entry lock");
                    return Turn { _flight: flight, _file: None };
                }
            }
        }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a verified entry lives.
    pub fn path(&self, digest: &str) -> Result<PathBuf, CacheError> {
        Ok(self.root.join("blobs/sha256").join(hex_of(digest)?))
    }

    /// Where a download in progress is kept.
    pub fn staging(&self, digest: &str) -> Result<PathBuf, CacheError> {
        Ok(self.root.join("staging").join(format!("{}.partial", hex_of(digest)?)))
    }

    /// True when a verified entry exists.
    pub fn has(&self, digest: &str) -> bool {
        self.path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Reads a (small) entry, such as a manifest.
    pub fn read(&self, digest: &str) -> Result<Vec<u8>, CacheError> {
        let p = self.path(digest)?;
        fs::read(&p).map_err(io(&p))
    }

    /// Stores bytes after checking them against the digest.
    pub fn put(&self, digest: &str, bytes: &[u8]) -> Result<(), CacheError> {
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(bytes)));
        if actual != digest {
            return Err(CacheError::Mismatch { expected: digest.to_string(), actual });
        }
        if self.has(digest) {
            return Ok(());
        }
        let tmp = beside(&self.root.join("staging").join(hex_of(digest)?), "put");
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        self.commit(&tmp, f, digest)
    }

    /// Stores a stream (an archive member) under its digest, verifying as it goes.
    pub fn put_reader(&self, digest: &str, mut r: impl Read) -> Result<u64, CacheError> {
        let tmp = beside(&self.root.join("staging").join(hex_of(digest)?), "import");
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = r.read(&mut buf).map_err(io(&tmp))?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            f.write_all(&buf[..k]).map_err(io(&tmp))?;
            n += k as u64;
        }
        let actual = format!("sha256:{}", hex::encode(h.finalize()));
        if actual != digest {
            drop(f);
            let _ = fs::remove_file(&tmp);
            return Err(CacheError::Mismatch { expected: digest.to_string(), actual });
        }
        self.commit(&tmp, f, digest)?;
        Ok(n)
    }

    /// Makes a verified temporary file visible (see [`Cache::committer`]).
    pub fn commit(&self, tmp: &Path, file: File, digest: &str) -> Result<(), CacheError> {
        self.committer(tmp, file, digest)?()
    }

    /// The same as `commit`, as an owned closure to run where blocking is allowed (an fsync
    /// of a large blob must not stall an async worker). With a journal the marker is on disk
    /// before the rename (a machine crash is then caught at the next open); without one the
    /// file is synced before the rename. Either way a visible entry is never a torn one; an
    /// entry lost with the machine is simply fetched again.
    pub fn committer(
        &self,
        tmp: &Path,
        file: File,
        digest: &str,
    ) -> Result<impl FnOnce() -> Result<(), CacheError> + Send + 'static, CacheError> {
        if let Some(j) = &self.journal {
            j.before_write()?;
        }
        let (tmp, dst, durable) = (tmp.to_path_buf(), self.path(digest)?, self.durable);
        Ok(move || {
            if durable {
                file.sync_data().map_err(io(&tmp))?;
            }
            drop(file);
            fs::rename(&tmp, &dst).map_err(io(&dst))
        })
    }

    /// Records the digests an image set (or run) needs, for garbage collection.
    pub fn record_refs(&self, name: &str, digests: &BTreeSet<String>) -> Result<(), CacheError> {
        let path = self.refs_path(name);
        replace_file(&path, &serde_json::to_vec(digests).expect("a set of strings serialises"))
    }

    fn refs_path(&self, name: &str) -> PathBuf {
        let safe: String =
            name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect();
        self.root.join("refs").join(format!("{safe}.json"))
    }

    /// Forgets what an image set (or run) needed: `cache gc` may then remove it.
    pub fn remove_refs(&self, name: &str) -> Result<(), CacheError> {
        let path = self.refs_path(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(CacheError::Io { path, source: e }),
            _ => Ok(()),
        }
    }

    /// Remembers which manifest each image reference resolved to (merged into `names.json`),
    /// so a dry run can tell what is already here without asking any registry.
    pub fn record_names(&self, names: &[(String, String)]) -> Result<(), CacheError> {
        // Runs of several image sets finish at once: one merge at a time, none lost.
        let _one = self.names_lock.lock().expect("names lock");
        let mut all = self.names()?;
        all.extend(names.iter().cloned());
        let body = serde_json::to_vec_pretty(&all).expect("a map of strings serialises");
        replace_file(&self.root.join("names.json"), &body)
    }

    /// Image reference -> manifest digest, as recorded by earlier runs.
    pub fn names(&self) -> Result<std::collections::BTreeMap<String, String>, CacheError> {
        let path = self.root.join("names.json");
        match fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| CacheError::Io { path, source: std::io::Error::other(e) }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
            Err(e) => Err(CacheError::Io { path, source: e }),
        }
    }

    fn entries(&self) -> Result<Vec<(String, PathBuf)>, CacheError> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io(&dir))? {
            let e = e.map_err(io(&dir))?;
            if let Some(name) = e.file_name().to_str() {
                out.push((format!("sha256:{name}"), e.path()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// Re-hashes every entry and reports those whose bytes do not match their name.
    pub fn verify(&self) -> Result<VerifyReport, CacheError> {
        let mut report = VerifyReport::default();
        for (digest, path) in self.entries()? {
            let f = File::open(&path).map_err(io(&path))?;
            let (actual, n) = hash_reader(f).map_err(io(&path))?;
            report.checked += 1;
            report.bytes += n;
            if actual != digest {
                report.corrupt.push((digest, actual));
            }
        }
        Ok(report)
    }

    /// Removes entries no `refs/*.json` names, and stale staging files.
    pub fn gc(&self) -> Result<GcReport, CacheError> {
        let refs_dir = self.root.join("refs");
        let mut keep = BTreeSet::new();
        for e in fs::read_dir(&refs_dir).map_err(io(&refs_dir))? {
            let p = e.map_err(io(&refs_dir))?.path();
            if p.extension().is_some_and(|x| x == "json") {
                let bytes = fs::read(&p).map_err(io(&p))?;
                let set: BTreeSet<String> = serde_json::from_slice(&bytes)
                    .map_err(|e| CacheError::Io { path: p.clone(), source: std::io::Error::other(e) })?;
                keep.extend(set);
            }
        }
        let mut report = GcReport::default();
        for (digest, path) in self.entries()? {
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if keep.contains(&digest) {
                report.kept += 1;
                report.kept_bytes += len;
            } else {
                fs::remove_file(&path).map_err(io(&path))?;
                report.removed += 1;
                report.freed += len;
            }
        }
        let staging = self.root.join("staging");
        for e in fs::read_dir(&staging).map_err(io(&staging))? {
            let p = e.map_err(io(&staging))?.path();
            report.freed += fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&p).map_err(io(&p))?;
        }
        Ok(report)
    }

    /// Number of entries and their bytes.
    pub fn usage(&self) -> Result<(u64, u64), CacheError> {
        let mut n = 0;
        let mut bytes = 0;
        for (_, p) in self.entries()? {
            n += 1;
            bytes += fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
        }
        Ok((n, bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(b: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(b)))
    }

    #[test]
    fn put_verifies_and_gc_keeps_referenced_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        assert!(matches!(Cache::open(dir.path()), Err(CacheError::Busy(_))), "one owner at a time");
        let (a, b) = (b"alpha".as_slice(), b"beta".as_slice());
        cache.put(&digest(a), a).unwrap();
        assert!(matches!(cache.put(&digest(a), b), Err(CacheError::Mismatch { .. })));
        assert_eq!(cache.put_reader(&digest(b), b).unwrap(), 4);
        assert!(cache.put_reader(&digest(a), b).is_err());
        assert!(!cache.has(&digest(b"nothing")));
        assert_eq!(cache.read(&digest(a)).unwrap(), a);
        assert_eq!(cache.verify().unwrap(), VerifyReport { checked: 2, bytes: 9, corrupt: vec![] });
        // Corrupt an entry behind the cache's back: verify names it.
        fs::write(cache.path(&digest(b)).unwrap(), b"bent").unwrap();
        assert_eq!(cache.verify().unwrap().corrupt, vec![(digest(b), digest(b"bent"))]);
        cache.record_refs("ns/isc", &BTreeSet::from([digest(a)])).unwrap();
        let gc = cache.gc().unwrap();
        assert_eq!((gc.removed, gc.kept), (1, 1));
        assert!(cache.has(&digest(a)) && !cache.has(&digest(b)));
        assert!(matches!(cache.path("sha256:../../etc"), Err(CacheError::Digest(_))));
    }

    /// Several writers of one entry at once (two image sets storing the same manifest, or the
    /// same names): every write succeeds and the entry is whole; no merge of names is lost.
    #[test]
    fn concurrent_writers_of_one_entry_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let body = vec![7u8; 256 * 1024];
        let d = digest(&body);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (cache, body, d) = (&cache, &body, &d);
                s.spawn(move || {
                    for i in 0..20 {
                        cache.put(d, body).unwrap();
                        cache.record_names(&[(format!("t{t}/{i}"), d.clone())]).unwrap();
                    }
                });
            }
        });
        assert_eq!(cache.read(&d).unwrap(), body);
        assert_eq!(cache.names().unwrap().len(), 160);
        assert_eq!(cache.verify().unwrap().corrupt, vec![]);
    }

    /// A worker opens the cache its owner holds, and a download's turn is exclusive across
    /// both: the second waits until the first lets go.
    #[tokio::test]
    async fn a_workers_turn_waits_for_the_owners_turn_on_the_same_entry() {
        let dir = tempfile::tempdir().unwrap();
        let owner = Cache::open(dir.path()).unwrap();
        assert!(matches!(Cache::open(dir.path()), Err(CacheError::Busy(_))));
        let worker = Cache::open_worker(dir.path()).unwrap();
        let d = digest(b"layer");
        let held = owner.flight(&d).await;
        let other = digest(b"other");
        // Another entry is free.
        drop(tokio::time::timeout(std::time::Duration::from_secs(5), worker.flight(&other)).await.unwrap());
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(300), worker.flight(&d)).await;
        assert!(waiting.is_err(), "the worker waited for the owner's turn");
        let put = async {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            owner.put(&d, b"layer").unwrap();
            drop(held);
        };
        let (_, turn) = tokio::join!(put, worker.flight(&d));
        assert!(worker.has(&d), "after its turn the worker finds the owner's entry");
        drop(turn);
    }
}
