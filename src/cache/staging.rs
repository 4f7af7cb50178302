//! The staging file of a download under way: bytes are gathered in aligned buffers and
//! written with direct I/O where the filesystem allows it, hashed on a blocking thread while
//! the next buffer fills.
//!
//! Direct I/O matters on the copy path: a buffered write copies every byte into the page
//! cache, which on a virtual machine's fresh memory costs more CPU than hashing it. Written
//! directly, the bytes go from our buffer to the device and the same buffer is shared
//! (reference-counted) with an upload streaming them on, so each byte is copied once in
//! user space. The file always holds a prefix of the blob: an unaligned tail, written at the
//! end of a download or where it was cut, goes through an ordinary buffered handle.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

/// Size of one staging write (and of the chunks handed to a streamed upload).
pub const WRITE_BUF: usize = 256 * 1024;
/// Alignment of buffers, offsets and lengths for direct I/O (covers 512 and 4096-byte sectors).
const ALIGN: usize = 4096;

/// A buffer whose bytes start at an `ALIGN`ed address.
struct Buf {
    vec: Vec<u8>,
    start: usize,
    fill: usize,
}

impl Buf {
    fn new() -> Buf {
        // Never grown past its capacity, so its bytes never move; nothing is zeroed but the
        // few bytes before the aligned start.
        let mut vec: Vec<u8> = Vec::with_capacity(WRITE_BUF + ALIGN);
        let start = vec.as_ptr().align_offset(ALIGN);
        vec.resize(start, 0);
        Buf { vec, start, fill: 0 }
    }

    fn room(&self) -> usize {
        WRITE_BUF - self.fill
    }

    fn extend(&mut self, b: &[u8]) {
        assert!(b.len() <= self.room(), "a staging buffer never grows");
        self.vec.extend_from_slice(b);
        self.fill += b.len();
    }

    /// The filled bytes, shared without a copy.
    fn freeze(self) -> Bytes {
        let (start, fill) = (self.start, self.fill);
        Bytes::from(self.vec).slice(start..start + fill)
    }
}

/// True for the errors a filesystem gives when it does not do direct I/O (tmpfs refuses the
/// open, some network filesystems the write).
fn refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::EOPNOTSUPP))
}

/// Buffers written together: one direct write of a MiB, not four of 256 KiB.
const BATCH: usize = 4;

/// What travels to the blocking thread and back: the file and the hash so far.
struct Sink {
    path: PathBuf,
    file: File,
    direct: bool,
    /// A buffered handle for unaligned tails (and everything once direct I/O is refused).
    plain: File,
    hasher: Sha256,
}

impl Sink {
    /// Hashes the buffers (the first from `hash_from`) and writes them from `at` (aligned):
    /// the aligned part directly, the rest buffered. Only the last buffer may be partial.
    fn write(mut self, bufs: Vec<Bytes>, at: u64, hash_from: usize) -> io::Result<Sink> {
        let mut from = hash_from;
        for b in &bufs {
            self.hasher.update(&b[from..]);
            from = 0;
        }
        let total: usize = bufs.iter().map(Bytes::len).sum();
        let aligned = if self.direct { total / ALIGN * ALIGN } else { 0 };
        if aligned > 0 {
            match self.write_direct(&bufs, at, aligned) {
                Ok(()) => {}
                Err(e) if refused(&e) => {
                    // The filesystem refused direct I/O after all: write through the cache.
                    tracing::debug!(path = %self.path.display(), "direct I/O refused; buffered writes");
                    self.direct = false;
                    self.file = self.plain.try_clone()?;
                    return self.write_plain(&bufs, at, 0).map(|()| self);
                }
                Err(e) => return Err(e),
            }
        }
        self.write_plain(&bufs, at, aligned)?;
        Ok(self)
    }

    /// Writes the first `n` bytes of `bufs` at `at` in one vectored direct write (where the
    /// kernel takes it all at once).
    fn write_direct(&mut self, bufs: &[Bytes], at: u64, n: usize) -> io::Result<()> {
        let mut left = n;
        let mut slices: Vec<io::IoSlice<'_>> = Vec::with_capacity(bufs.len());
        for b in bufs {
            let k = b.len().min(left);
            if k > 0 {
                slices.push(io::IoSlice::new(&b[..k]));
            }
            left -= k;
        }
        self.file.seek(SeekFrom::Start(at))?;
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let k = self.file.write_vectored(rest)?;
            if k == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            io::IoSlice::advance_slices(&mut rest, k);
        }
        Ok(())
    }

    /// Writes `bufs` from byte `skip` on, at `at + skip`, through the page cache.
    fn write_plain(&self, bufs: &[Bytes], at: u64, skip: usize) -> io::Result<()> {
        let mut pos = 0usize;
        for b in bufs {
            let end = pos + b.len();
            if end > skip {
                let from = skip.saturating_sub(pos);
                self.plain.write_all_at(&b[from..], at + (pos + from) as u64)?;
            }
            pos = end;
        }
        Ok(())
    }
}

/// A download's staging file.
pub struct Staging {
    sink: Option<Sink>,
    inflight: Option<tokio::task::JoinHandle<io::Result<Sink>>>,
    /// Bytes received so far (written, being written, or waiting).
    len: u64,
    /// File offset (aligned) of the first byte waiting: `queued`, then `buf`.
    at: u64,
    /// Bytes at the start of what is waiting that were hashed already (the unaligned tail of
    /// an earlier write, rewritten aligned with what follows it).
    hashed: usize,
    /// Full buffers waiting to be written.
    queued: Vec<Bytes>,
    buf: Buf,
}

fn joined(r: Result<io::Result<Sink>, tokio::task::JoinError>) -> io::Result<Sink> {
    r.map_err(io::Error::other)?
}

impl Staging {
    /// Opens the staging file, hashing what an earlier attempt (or run) left there; more than
    /// `size` bytes there is nonsense and is dropped.
    pub fn open(path: &Path, size: u64) -> io::Result<Staging> {
        Staging::open_with(path, size, true)
    }

    fn open_with(path: &Path, size: u64, try_direct: bool) -> io::Result<Staging> {
        let mut plain = File::options().create(true).truncate(false).read(true).write(true).open(path)?;
        if plain.metadata()?.len() > size {
            plain.set_len(0)?;
        }
        let direct = if try_direct {
            match File::options().write(true).custom_flags(libc::O_DIRECT).open(path) {
                Ok(f) => Some(f),
                Err(e) if refused(&e) => None,
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let (file, direct) = match direct {
            Some(f) => (f, true),
            None => (plain.try_clone()?, false),
        };
        let mut hasher = Sha256::new();
        let len = super::hash_into(&plain, &mut hasher)?;
        // The unaligned tail goes back into the buffer, to be rewritten with what follows.
        let at = len / ALIGN as u64 * ALIGN as u64;
        let tail = (len - at) as usize;
        let mut buf = Buf::new();
        if tail > 0 {
            let mut bytes = [0u8; ALIGN];
            plain.seek(SeekFrom::Start(at))?;
            plain.read_exact(&mut bytes[..tail])?;
            buf.extend(&bytes[..tail]);
        }
        let sink = Sink { path: path.to_path_buf(), file, direct, plain, hasher };
        Ok(Staging { sink: Some(sink), inflight: None, len, at, hashed: tail, queued: Vec::new(), buf })
    }

    /// Bytes received so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True before any byte arrived.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Waits for the write in flight, if any.
    async fn settle(&mut self) -> io::Result<&mut Sink> {
        if let Some(h) = self.inflight.take() {
            self.sink = Some(joined(h.await)?);
        }
        Ok(self.sink.as_mut().expect("a sink when nothing is in flight"))
    }

    /// Where the bytes new to this download start in the next buffer to wait.
    fn new_from(&self) -> usize {
        if self.queued.is_empty() { self.hashed } else { 0 }
    }

    /// Adds received bytes; each buffer filled is handed to `full` (the bytes in it new to
    /// the download, shared with the write, never copied).
    pub async fn push(&mut self, mut b: &[u8], full: &mut Vec<Bytes>) -> io::Result<()> {
        while !b.is_empty() {
            let k = b.len().min(self.buf.room());
            self.buf.extend(&b[..k]);
            self.len += k as u64;
            b = &b[k..];
            if self.buf.room() == 0 {
                let from = self.new_from();
                let filled = std::mem::replace(&mut self.buf, Buf::new()).freeze();
                full.push(filled.slice(from..));
                self.queued.push(filled);
                if self.queued.len() >= BATCH {
                    self.dispatch(0).await?;
                }
            }
        }
        Ok(())
    }

    /// Writes the queued buffers (after the previous write), of which the last `tail` bytes
    /// stay waiting in `buf` as well.
    async fn dispatch(&mut self, tail: usize) -> io::Result<()> {
        self.settle().await?;
        let sink = self.sink.take().expect("settled");
        let bufs = std::mem::take(&mut self.queued);
        let total: usize = bufs.iter().map(Bytes::len).sum();
        let (at, from) = (self.at, self.hashed);
        self.at += (total - tail) as u64;
        self.hashed = tail;
        self.inflight = Some(tokio::task::spawn_blocking(move || sink.write(bufs, at, from)));
        Ok(())
    }

    /// Writes everything received and waits for it; returns the bytes new since the last
    /// buffer handed on (empty when there are none).
    pub async fn flush(&mut self) -> io::Result<Bytes> {
        let from = self.new_from();
        let mut new = Bytes::new();
        if self.buf.fill > from || !self.queued.is_empty() {
            let last = std::mem::replace(&mut self.buf, Buf::new()).freeze();
            let tail = last.len() % ALIGN;
            self.buf.extend(&last[last.len() - tail..]);
            new = last.slice(from.min(last.len())..);
            if !last.is_empty() {
                self.queued.push(last);
            }
            self.dispatch(tail).await?;
        }
        self.settle().await?;
        Ok(new)
    }

    /// Forgets everything received: the download starts again from byte 0.
    pub async fn restart(&mut self) -> io::Result<()> {
        let sink = self.settle().await?;
        sink.file.set_len(0)?;
        sink.hasher = Sha256::new();
        self.buf = Buf::new();
        self.queued.clear();
        (self.len, self.at, self.hashed) = (0, 0, 0);
        Ok(())
    }

    /// The digest of everything received, once [`flush`](Self::flush) has returned.
    pub fn digest(&self) -> String {
        let sink = self.sink.as_ref().expect("flushed");
        format!("sha256:{}", hex::encode(sink.hasher.clone().finalize()))
    }

    /// Whether writes still go direct (once flushed).
    #[cfg(test)]
    fn is_direct(&self) -> bool {
        self.sink.as_ref().expect("flushed").direct
    }

    /// The file, once flushed, for the cache to commit.
    pub fn into_file(self) -> File {
        self.sink.expect("flushed").file
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes that do not repeat at any alignment.
    fn data(n: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn sha(b: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(b)))
    }

    /// Pushes `src` in chunks of uneven sizes; returns the bytes handed on.
    async fn push_all(s: &mut Staging, src: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut full = Vec::new();
        let (mut at, mut k) = (0, 1usize);
        while at < src.len() {
            let n = (k * 7919 % 70_000 + 1).min(src.len() - at);
            s.push(&src[at..at + n], &mut full).await.unwrap();
            for b in full.drain(..) {
                out.extend_from_slice(&b);
            }
            (at, k) = (at + n, k + 1);
        }
        out
    }

    #[tokio::test]
    async fn streamed_bytes_land_whole_hashed_and_handed_on_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.partial");
        let src = data(3 * WRITE_BUF + 12_345);
        let mut s = Staging::open(&path, src.len() as u64).unwrap();
        let mut handed = push_all(&mut s, &src).await;
        handed.extend_from_slice(&s.flush().await.unwrap());
        assert_eq!(handed, src, "every byte handed on once, in order");
        assert_eq!(s.len(), src.len() as u64);
        assert_eq!(s.digest(), sha(&src));
        drop(s.into_file());
        assert_eq!(std::fs::read(&path).unwrap(), src);
    }

    #[tokio::test]
    async fn cuts_at_unaligned_offsets_resume_in_the_same_and_in_a_new_process() {
        for direct in [true, false] {
            cuts_resume(direct).await;
        }
    }

    async fn cuts_resume(direct: bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.partial");
        let src = data(6 * WRITE_BUF + 777);
        let size = src.len() as u64;
        // A first attempt cut after 100 001 bytes, then after 300 003.
        let mut s = Staging::open_with(&path, size, direct).unwrap();
        let direct_at_open = s.sink.as_ref().unwrap().direct;
        let mut handed = push_all(&mut s, &src[..100_001]).await;
        handed.extend_from_slice(&s.flush().await.unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), &src[..100_001], "the file holds exactly what arrived");
        handed.extend_from_slice(&push_all(&mut s, &src[100_001..300_003]).await);
        handed.extend_from_slice(&s.flush().await.unwrap());
        assert_eq!(handed, &src[..300_003]);
        // Writes after an unaligned cut start aligned again (the tail is rewritten with what
        // follows), so a file system that takes direct I/O keeps taking it.
        assert_eq!(s.is_direct(), direct_at_open, "direct I/O fell back after a cut");
        drop(s);
        assert_eq!(std::fs::read(&path).unwrap(), &src[..300_003]);
        // A new process takes over from the file.
        let mut s = Staging::open_with(&path, size, direct).unwrap();
        assert_eq!(s.len(), 300_003);
        let mut handed = push_all(&mut s, &src[300_003..]).await;
        handed.extend_from_slice(&s.flush().await.unwrap());
        assert_eq!(handed, &src[300_003..], "only new bytes are handed on");
        assert_eq!(s.digest(), sha(&src));
        assert_eq!(s.is_direct(), direct_at_open, "direct I/O fell back after a resume");
        drop(s.into_file());
        assert_eq!(std::fs::read(&path).unwrap(), src);
    }

    #[tokio::test]
    async fn restart_forgets_everything_and_oversized_leftovers_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.partial");
        let src = data(WRITE_BUF + 5);
        std::fs::write(&path, data(WRITE_BUF + 6)).unwrap();
        let mut s = Staging::open(&path, src.len() as u64).unwrap();
        assert_eq!(s.len(), 0, "more bytes than the blob has cannot be a prefix of it");
        push_all(&mut s, &data(70_000)[1..]).await;
        s.flush().await.unwrap();
        s.restart().await.unwrap();
        assert!(s.is_empty());
        push_all(&mut s, &src).await;
        s.flush().await.unwrap();
        assert_eq!(s.digest(), sha(&src));
        drop(s.into_file());
        assert_eq!(std::fs::read(&path).unwrap(), src);
    }
}
