//! Forgetting deleted images (`delete --force-cache-delete`): their names go, and so do the
//! entries only they needed; what any other recorded image needs stays.

use std::collections::BTreeSet;
use std::fs;

use super::{Cache, CacheError, io, replace_file};
use crate::image::manifest::{self, Parsed};

/// What forgetting removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ForgetReport {
    /// Image names forgotten.
    pub names: usize,
    /// Entries removed.
    pub removed: usize,
    /// Bytes freed.
    pub freed: u64,
}

impl Cache {
    /// Every digest `roots` need from the cache: the manifests themselves, their children,
    /// configs and layers (as far as the cache holds the manifests).
    fn closure(&self, roots: impl IntoIterator<Item = String>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = roots.into_iter().collect();
        while let Some(d) = todo.pop() {
            if !seen.insert(d.clone()) {
                continue;
            }
            let Ok(bytes) = self.read(&d) else { continue };
            match manifest::parse(&bytes, &manifest::media_type_of(&bytes, None)) {
                Ok(Parsed::Image { blobs }) => seen.extend(blobs.into_iter().map(|b| b.digest)),
                Ok(Parsed::Index { children }) => todo.extend(children.into_iter().map(|(c, _)| c.digest)),
                Err(_) => {}
            }
        }
        seen
    }

    /// Forgets the images named `origins` (references as recorded, without transport) and
    /// removes the entries only they needed, also from every image set's record of what it
    /// needs.
    pub fn forget(&self, origins: &[String]) -> Result<ForgetReport, CacheError> {
        let _one = self.names_lock.lock().expect("names lock");
        let mut names = self.names()?;
        let mut roots = Vec::new();
        for o in origins {
            if let Some(d) = names.remove(o.trim_start_matches("docker://")) {
                roots.push(d);
            }
        }
        let mut report = ForgetReport { names: roots.len(), ..Default::default() };
        let keep = self.closure(names.values().cloned());
        let dead: BTreeSet<String> = self.closure(roots).into_iter().filter(|d| !keep.contains(d)).collect();
        let body = serde_json::to_vec_pretty(&names).expect("a map of strings serialises");
        replace_file(&self.root.join("names.json"), &body)?;
        for d in &dead {
            let path = self.path(d)?;
            if let Ok(m) = fs::metadata(&path) {
                fs::remove_file(&path).map_err(io(&path))?;
                report.removed += 1;
                report.freed += m.len();
            }
        }
        let refs_dir = self.root.join("refs");
        if let Ok(rd) = fs::read_dir(&refs_dir) {
            for e in rd {
                let p = e.map_err(io(&refs_dir))?.path();
                if p.extension().is_none_or(|x| x != "json") {
                    continue;
                }
                let bytes = fs::read(&p).map_err(io(&p))?;
                let Ok(set) = serde_json::from_slice::<BTreeSet<String>>(&bytes) else { continue };
                let left: BTreeSet<&String> = set.iter().filter(|d| !dead.contains(*d)).collect();
                if left.len() != set.len() {
                    replace_file(&p, &serde_json::to_vec(&left).expect("a set of strings serialises"))?;
                }
            }
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(cache: &Cache, layers: &[&[u8]]) -> String {
        let mut ls = Vec::new();
        for l in layers {
            let d = manifest::sha256_digest(l);
            cache.put(&d, l).unwrap();
            ls.push(serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": l.len()}));
        }
        let config = format!("{{\"layers\":{:?}}}", layers.iter().map(|l| l.len()).collect::<Vec<_>>());
        let cd = manifest::sha256_digest(config.as_bytes());
        cache.put(&cd, config.as_bytes()).unwrap();
        let m = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
            "layers": ls,
        }))
        .unwrap();
        let md = manifest::sha256_digest(&m);
        cache.put(&md, &m).unwrap();
        md
    }

    #[test]
    fn forgetting_an_image_removes_only_what_no_other_image_needs() {
        let dir = std::env::temp_dir().join(format!("forget-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let cache = Cache::open(&dir).unwrap().without_fsync();
        let gone = image(&cache, &[b"shared layer", b"only gone"]);
        let kept = image(&cache, &[b"shared layer", b"only kept!"]);
        cache.record_names(&[("r/a:1".into(), gone.clone()), ("r/b:1".into(), kept.clone())]).unwrap();
        let all: BTreeSet<String> = cache.closure([gone.clone(), kept.clone()]);
        cache.record_refs("cli-x", &all).unwrap();
        let r = cache.forget(&["docker://r/a:1".to_string(), "r/never:1".to_string()]).unwrap();
        assert_eq!(r.names, 1);
        assert!(!cache.has(&gone));
        assert!(!cache.has(&manifest::sha256_digest(b"only gone")));
        assert!(cache.has(&manifest::sha256_digest(b"shared layer")));
        assert!(cache.has(&kept) && cache.has(&manifest::sha256_digest(b"only kept!")));
        assert_eq!(r.removed, 3, "manifest, its own layer and its own config");
        assert_eq!(cache.names().unwrap().keys().collect::<Vec<_>>(), ["r/b:1"]);
        // The image set's record no longer names what was removed; gc keeps everything else.
        let gc = cache.gc().unwrap();
        assert_eq!(gc.removed, 0);
        let _ = fs::remove_dir_all(&dir);
    }
}
