//! A local cache of a remote repository's metadata.
//!
//! Index files, snapshot files and tree packs are small next to the data and
//! are read by nearly every command; keeping copies on local disk lets
//! `snapshots`, `ls`, `find`, `diff` and a snapshot of an unchanged tree run
//! without downloading them again. Data packs are never cached.
//!
//! The cache is a [`Backend`] wrapper, so the engine does not know it is
//! there. Its rules:
//! - Every cached object is content-named, so a cached file is used only if
//!   its BLAKE3 hash is its name (checked once per file and process); a file
//!   that fails is deleted and fetched again.
//! - A listing of a cached kind drops the cached files the repository no
//!   longer has.
//! - A tree pack is fetched whole on its first ranged read, so reading many
//!   trees of one pack costs one request.
//! - The cache is an optimisation only: any failure to read or write it
//!   falls back to the repository.
//!
//! Layout: `<cache dir>/<repository id>/{index,snapshots,tree/<2 hex>}/<name>`,
//! directories 0700, and a `CACHEDIR.TAG` in the cache dir so backup tools
//! skip it.

use std::collections::HashSet;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arca_backend::{Backend, Entry, Error as BackendError, FileKind, Staged};

use crate::id::Id;

const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file marks the directory as a cache (see https://bford.info/cachedir/).\n";

/// A backend whose metadata is cached in a local directory.
pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    dir: PathBuf,
    /// Cached files whose hash was checked in this process.
    verified: Mutex<HashSet<(FileKind, String)>>,
}

impl std::fmt::Debug for CachedBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedBackend")
            .field("location", &self.inner.location())
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Whether objects of this kind are cached.
fn cached(kind: FileKind) -> bool {
    matches!(kind, FileKind::Index | FileKind::Snapshot | FileKind::Tree)
}

impl CachedBackend {
    /// Caches `inner`'s metadata under `root/<repository id>`, creating the
    /// directories (0700) as needed.
    pub fn new(
        inner: Arc<dyn Backend>,
        root: &Path,
        repository: &str,
    ) -> std::io::Result<CachedBackend> {
        make_dir(root)?;
        let tag = root.join("CACHEDIR.TAG");
        if !tag.exists() {
            let _ = fs::write(&tag, CACHEDIR_TAG);
        }
        let dir = root.join(repository);
        make_dir(&dir)?;
        for kind in [FileKind::Index, FileKind::Snapshot, FileKind::Tree] {
            make_dir(&dir.join(kind.dir()))?;
        }
        Ok(CachedBackend {
            inner,
            dir,
            verified: Mutex::default(),
        })
    }

    /// Where the cached copy of an object lives.
    fn path(&self, kind: FileKind, name: &str) -> Option<PathBuf> {
        if !cached(kind) || name.len() < 2 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let base = self.dir.join(kind.dir());
        Some(if kind.fanned_out() {
            base.join(&name[..2]).join(name)
        } else {
            base.join(name)
        })
    }

    fn is_verified(&self, kind: FileKind, name: &str) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&(kind, name.to_string()))
    }

    fn set_verified(&self, kind: FileKind, name: &str, yes: bool) {
        let mut set = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if yes {
            set.insert((kind, name.to_string()));
        } else {
            set.remove(&(kind, name.to_string()));
        }
    }

    /// The cached bytes of an object, if present and intact.
    fn load(&self, kind: FileKind, name: &str, max: u64) -> Option<Vec<u8>> {
        let path = self.path(kind, name)?;
        let mut bytes = Vec::new();
        fs::File::open(&path)
            .ok()?
            .take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .ok()?;
        if bytes.len() as u64 > max {
            self.forget(kind, name);
            return None;
        }
        if Id::of_stored(&bytes).to_hex() == name {
            self.set_verified(kind, name, true);
            Some(bytes)
        } else {
            self.forget(kind, name);
            None
        }
    }

    /// Makes sure a cached file is intact before ranges are read from it.
    fn ensure_verified(&self, kind: FileKind, name: &str) -> bool {
        self.is_verified(kind, name) || self.load(kind, name, WHOLE_TREE_PACK_MAX).is_some()
    }

    /// Stores a copy (best effort): written to a temporary file, then
    /// renamed into place so a reader never sees half a file.
    fn store(&self, kind: FileKind, name: &str, bytes: &[u8]) {
        let Some(path) = self.path(kind, name) else {
            return;
        };
        if Id::of_stored(bytes).to_hex() != name {
            return;
        }
        let Some(parent) = path.parent() else {
            return;
        };
        let stored = make_dir(parent).and_then(|()| {
            let (mut file, _guard) = arca_backend::cleanup::new_temporary_file(parent, ".tmp-")?;
            file.write_all(bytes)?;
            file.persist(&path).map_err(|e| e.error)?;
            Ok(())
        });
        if stored.is_ok() {
            self.set_verified(kind, name, true);
        }
    }

    fn forget(&self, kind: FileKind, name: &str) {
        if let Some(path) = self.path(kind, name) {
            let _ = fs::remove_file(path);
        }
        self.set_verified(kind, name, false);
    }

    /// A range of a cached, verified file.
    fn load_range(&self, kind: FileKind, name: &str, offset: u64, length: u64) -> Option<Vec<u8>> {
        let path = self.path(kind, name)?;
        if !self.ensure_verified(kind, name) {
            return None;
        }
        let mut file = fs::File::open(path).ok()?;
        let size = file.metadata().ok()?.len();
        if offset.checked_add(length)? > size {
            return None;
        }
        file.seek(SeekFrom::Start(offset)).ok()?;
        let mut out = vec![0; usize::try_from(length).ok()?];
        file.read_exact(&mut out).ok()?;
        Some(out)
    }

    /// Drops cached files of `kind` that are not in `present`.
    fn drop_missing(&self, kind: FileKind, present: &[Entry]) {
        let names: HashSet<&str> = present.iter().map(|e| e.name.as_str()).collect();
        let base = self.dir.join(kind.dir());
        let dirs: Vec<PathBuf> = if kind.fanned_out() {
            fs::read_dir(&base)
                .map(|rd| rd.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        } else {
            vec![base]
        };
        for dir in dirs {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let file_name = entry.file_name();
                let Some(name) = file_name.to_str() else {
                    continue;
                };
                if name.starts_with(".tmp-") {
                    // Another process may be writing it right now; one left
                    // by a killed process is removed once it is old.
                    let old = entry
                        .metadata()
                        .and_then(|m| m.modified())
                        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > STALE_TEMPORARY));
                    if old {
                        let _ = fs::remove_file(entry.path());
                    }
                } else if !names.contains(name) {
                    let _ = fs::remove_file(entry.path());
                    self.set_verified(kind, name, false);
                }
            }
        }
    }
}

impl Backend for CachedBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn create(&self) -> Result<(), BackendError> {
        self.inner.create()
    }

    fn list(&self, kind: FileKind) -> Result<Vec<Entry>, BackendError> {
        let entries = self.inner.list(kind)?;
        if cached(kind) {
            self.drop_missing(kind, &entries);
        }
        Ok(entries)
    }

    fn read(&self, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>, BackendError> {
        if let Some(bytes) = self.load(kind, name, max) {
            return Ok(bytes);
        }
        let bytes = self.inner.read(kind, name, max)?;
        self.store(kind, name, &bytes);
        Ok(bytes)
    }

    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, BackendError> {
        if kind != FileKind::Tree {
            return self.inner.read_range(kind, name, offset, length);
        }
        if let Some(bytes) = self.load_range(kind, name, offset, length) {
            return Ok(bytes);
        }
        // Fetch the whole pack: its other trees are likely wanted next. A
        // pack larger than a writer makes of trees is read by range only.
        let whole = match self.inner.read(kind, name, WHOLE_TREE_PACK_MAX) {
            Err(e) if e.kind() == arca_backend::ErrorKind::TooLarge => {
                return self.inner.read_range(kind, name, offset, length);
            }
            other => other?,
        };
        self.store(kind, name, &whole);
        let start = usize::try_from(offset).ok();
        let end = offset
            .checked_add(length)
            .and_then(|e| usize::try_from(e).ok());
        match (start, end) {
            (Some(start), Some(end)) if end <= whole.len() => Ok(whole[start..end].to_vec()),
            _ => Err(BackendError::new(
                arca_backend::ErrorKind::OutOfRange,
                kind,
                name,
                None,
            )),
        }
    }

    fn write(&self, kind: FileKind, name: &str, bytes: &[u8]) -> Result<(), BackendError> {
        self.inner.write(kind, name, bytes)?;
        self.store(kind, name, bytes);
        Ok(())
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<(), BackendError> {
        self.forget(kind, name);
        self.inner.remove(kind, name)
    }

    /// Index and snapshot files are sized from the cache (their readers list
    /// them first, which drops what the repository no longer has). Packs
    /// are asked about at the repository: a snapshot checks with `exists`
    /// that a concurrent prune left its new packs alone.
    fn size(&self, kind: FileKind, name: &str) -> Result<u64, BackendError> {
        if kind != FileKind::Tree
            && let Some(path) = self.path(kind, name)
            && self.ensure_verified(kind, name)
            && let Ok(meta) = fs::metadata(path)
        {
            return Ok(meta.len());
        }
        self.inner.size(kind, name)
    }

    fn connections(&self) -> usize {
        self.inner.connections()
    }

    /// Kinds the cache keeps a copy of are written whole, so the copy can
    /// be taken; data packs are staged where the repository can.
    fn stage(&self, kind: FileKind) -> Result<Option<Box<dyn Staged>>, BackendError> {
        if cached(kind) {
            return Ok(None);
        }
        self.inner.stage(kind)
    }
}

/// A temporary file in the cache older than this was left by a process
/// that was killed.
/// Tree packs up to this size are fetched whole on first use and cached;
/// a larger one (no writer makes one with the default pack size) is read
/// by range.
const WHOLE_TREE_PACK_MAX: u64 = 64 << 20;

const STALE_TEMPORARY: std::time::Duration = std::time::Duration::from_secs(3600);

fn make_dir(dir: &Path) -> std::io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(test)]
mod tests {
    use arca_backend::{MemoryBackend, RetryBackend, RetryPolicy};

    use super::*;

    fn setup() -> (
        MemoryBackend,
        Arc<arca_backend::TransferStats>,
        CachedBackend,
        tempfile::TempDir,
    ) {
        let memory = MemoryBackend::new();
        memory.create().unwrap();
        let counted = RetryBackend::new(memory.clone(), RetryPolicy::default());
        let stats = counted.stats();
        let dir = tempfile::tempdir().unwrap();
        let cached = CachedBackend::new(Arc::new(counted), dir.path(), "repo").unwrap();
        (memory, stats, cached, dir)
    }

    fn named(bytes: &[u8]) -> String {
        Id::of_stored(bytes).to_hex()
    }

    #[test]
    fn cached_files_are_private_to_their_owner() {
        use std::os::unix::fs::PermissionsExt;
        let (_memory, _stats, cached, dir) = setup();
        let bytes = b"a snapshot file".to_vec();
        cached
            .write(FileKind::Snapshot, &named(&bytes), &bytes)
            .unwrap();
        let tree = b"a tree pack".to_vec();
        cached.write(FileKind::Tree, &named(&tree), &tree).unwrap();
        let mut seen = 0;
        let mut stack = vec![dir.path().join("repo")];
        while let Some(path) = stack.pop() {
            let meta = std::fs::metadata(&path).unwrap();
            let wanted = if meta.is_dir() { 0o700 } else { 0o600 };
            assert_eq!(
                meta.permissions().mode() & 0o777,
                wanted,
                "{}",
                path.display()
            );
            if meta.is_dir() {
                stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else {
                seen += 1;
            }
        }
        assert_eq!(seen, 2);
    }

    #[test]
    fn a_second_read_comes_from_disk_and_a_damaged_copy_is_fetched_again() {
        let (memory, stats, cached, dir) = setup();
        let bytes = b"an index file".to_vec();
        let name = named(&bytes);
        memory.write(FileKind::Index, &name, &bytes).unwrap();
        assert_eq!(
            cached.read(FileKind::Index, &name, u64::MAX).unwrap(),
            bytes
        );
        let after_first = stats.counts().requests;
        assert_eq!(
            cached.read(FileKind::Index, &name, u64::MAX).unwrap(),
            bytes
        );
        assert_eq!(
            stats.counts().requests,
            after_first,
            "served from the cache"
        );

        let file = dir.path().join("repo/index").join(&name);
        std::fs::write(&file, b"damaged").unwrap();
        let fresh = CachedBackend::new(cached.inner.clone(), dir.path(), "repo").unwrap();
        assert_eq!(fresh.read(FileKind::Index, &name, u64::MAX).unwrap(), bytes);
        assert_eq!(stats.counts().requests, after_first + 1, "refetched");
        assert_eq!(std::fs::read(&file).unwrap(), bytes, "repaired");
    }

    #[test]
    fn tree_ranges_cost_one_download_per_pack() {
        let (memory, stats, cached, _dir) = setup();
        let pack: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        let name = named(&pack);
        memory.write(FileKind::Tree, &name, &pack).unwrap();
        for (offset, length) in [(0, 10), (500, 1000), (9_990, 10)] {
            let got = cached
                .read_range(FileKind::Tree, &name, offset, length)
                .unwrap();
            assert_eq!(got, pack[offset as usize..(offset + length) as usize]);
        }
        assert_eq!(stats.counts().requests, 1);
        assert!(cached.read_range(FileKind::Tree, &name, 9_995, 10).is_err());
    }

    #[test]
    fn listing_drops_what_the_repository_no_longer_has() {
        let (memory, _stats, cached, dir) = setup();
        let (a, b) = (b"snapshot a".to_vec(), b"snapshot b".to_vec());
        for bytes in [&a, &b] {
            cached
                .write(FileKind::Snapshot, &named(bytes), bytes)
                .unwrap();
        }
        let dir = dir.path().join("repo/snapshots");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 2);
        memory.remove(FileKind::Snapshot, &named(&a)).unwrap();
        assert_eq!(cached.list(FileKind::Snapshot).unwrap().len(), 1);
        assert!(!dir.join(named(&a)).exists());
        assert!(dir.join(named(&b)).exists());

        // A temporary file another process is writing stays; one left by a
        // killed process long ago goes.
        let (writing, left) = (dir.join(".tmp-writing"), dir.join(".tmp-left"));
        std::fs::write(&writing, b"x").unwrap();
        std::fs::write(&left, b"x").unwrap();
        let long_ago = std::time::SystemTime::now() - 2 * STALE_TEMPORARY;
        filetime::set_file_mtime(&left, filetime::FileTime::from_system_time(long_ago)).unwrap();
        cached.list(FileKind::Snapshot).unwrap();
        assert!(writing.exists());
        assert!(!left.exists());
    }

    #[test]
    fn data_packs_are_never_cached() {
        let (memory, stats, cached, _dir) = setup();
        let bytes = b"data".to_vec();
        memory
            .write(FileKind::Data, &named(&bytes), &bytes)
            .unwrap();
        for _ in 0..2 {
            cached
                .read(FileKind::Data, &named(&bytes), u64::MAX)
                .unwrap();
        }
        assert_eq!(stats.counts().data_pack_reads, 2);
    }
}
