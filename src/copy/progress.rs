//! Live progress of a copy: images done of those planned, and the bytes of the distinct blobs
//! the images need at their destinations, counted once each, and of those in place.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::image::manifest::Descriptor;

/// Live progress.
#[derive(Debug, Default)]
pub struct Progress {
    /// Items finished.
    pub done: AtomicU64,
    /// Items planned.
    pub total: AtomicU64,
    /// Blob bytes uploaded or stored.
    pub bytes: AtomicU64,
    /// Bytes of the distinct blobs the images to copy need at their destination (each blob
    /// once per destination registry), as far as the survey got.
    pub bytes_needed: AtomicU64,
    /// Of those, the bytes in place: moved, mounted, or found there already.
    pub bytes_placed: AtomicU64,
    /// (destination registry, digest) of every blob counted as needed: placed yet or not.
    blobs: Mutex<HashMap<(String, String), bool>>,
}

impl Progress {
    /// Counts `blobs` as needed at `place` (a destination registry; "" for the cache), each
    /// digest once.
    pub(super) fn need(&self, place: &str, blobs: &[Descriptor]) {
        let mut map = self.blobs.lock().expect("progress");
        for b in blobs {
            if let std::collections::hash_map::Entry::Vacant(v) = map.entry((place.to_string(), b.digest.clone())) {
                v.insert(false);
                self.bytes_needed.fetch_add(b.size, Ordering::Relaxed);
            }
        }
    }

    /// Counts a needed blob as in place at `place` (once; blobs never counted as needed, e.g.
    /// of an image the survey could not read, are left out of both figures).
    pub(super) fn placed(&self, place: &str, desc: &Descriptor) {
        let mut map = self.blobs.lock().expect("progress");
        if let Some(done) = map.get_mut(&(place.to_string(), desc.digest.clone()))
            && !*done
        {
            *done = true;
            self.bytes_placed.fetch_add(desc.size, Ordering::Relaxed);
        }
    }
}

/// "1.76/2.40 GB (73%)": blob bytes in place of those needed; "surveying" while no blob is
/// known to be needed yet (before the survey of the first images ends), rather than a
/// meaningless "0.0/0.0 MB (100%)".
pub fn bytes_of(placed: u64, needed: u64) -> String {
    if needed == 0 {
        return "surveying".to_string();
    }
    let pct = (placed * 100).checked_div(needed).unwrap_or(100);
    if needed >= 1_000_000_000 {
        format!("{:.2}/{:.2} GB ({pct}%)", placed as f64 / 1e9, needed as f64 / 1e9)
    } else {
        format!("{:.1}/{:.1} MB ({pct}%)", placed as f64 / 1e6, needed as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(digest: &str, size: u64) -> Descriptor {
        Descriptor { digest: digest.into(), size, media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into() }
    }

    #[test]
    fn progress_counts_each_blob_once_per_destination() {
        let p = Progress::default();
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // Two tags sharing a layer; the second needs it too, and its own app layer.
        p.need("dst:5000", &[blob("sha256:base", 100), blob("sha256:app1", 10)]);
        p.need("dst:5000", &[blob("sha256:base", 100), blob("sha256:app2", 20)]);
        // Another registry needs the base layer as well.
        p.need("other:5000", &[blob("sha256:base", 100)]);
        assert_eq!(get(&p.bytes_needed), 230);
        p.placed("dst:5000", &blob("sha256:base", 100));
        // Mounted into a second repository of the same registry: still once.
        p.placed("dst:5000", &blob("sha256:base", 100));
        assert_eq!(get(&p.bytes_placed), 100);
        // A blob needed again after it was placed stays placed, and is not needed twice.
        p.need("dst:5000", &[blob("sha256:base", 100)]);
        assert_eq!(get(&p.bytes_needed), 230);
        // Blobs never counted as needed are not counted in place either.
        p.placed("dst:5000", &blob("sha256:unsurveyed", 7));
        for (place, d, size) in [("dst:5000", "sha256:app1", 10), ("dst:5000", "sha256:app2", 20)] {
            p.placed(place, &blob(d, size));
        }
        assert_eq!(get(&p.bytes_placed), 130);
        p.placed("other:5000", &blob("sha256:base", 100));
        assert_eq!((get(&p.bytes_placed), get(&p.bytes_needed)), (230, 230));
    }

    #[test]
    fn progress_reads_as_bytes_in_place_of_needed() {
        assert_eq!(bytes_of(1_760_000_000, 2_400_000_000), "1.76/2.40 GB (73%)");
        assert_eq!(bytes_of(5_500_000, 120_000_000), "5.5/120.0 MB (4%)");
        assert_eq!(bytes_of(0, 0), "surveying");
        assert_eq!(bytes_of(0, 1_000_000), "0.0/1.0 MB (0%)");
    }
}
