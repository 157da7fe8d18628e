//! An opened repository: backend, master key, config and index.

use std::sync::Arc;

use arca_backend::{Backend, Entry, ErrorKind as BackendErrorKind, FileKind};
use rayon::prelude::*;

use crate::blob::{self, BlobKind};
use crate::config::{Config, InitOptions};
use crate::crypto::MasterKey;
use crate::damage::{DamageLog, DamageReporter, Damaged};
use crate::error::{Error, Result};
use crate::format::*;
use crate::id::{Id, IndexId, KeyId, PackId, SnapshotId, TreeId};
use crate::index::{Index, IndexFile, IndexPack, PackInfo};
use crate::key::{KdfParams, KeyFile};
use crate::pack::{FinishedPack, PackBody, PackEntry};
use crate::snapshot::Snapshot;
use crate::tree::Tree;

/// One snapshot file as a listing found it.
enum Loaded {
    /// Removed since the listing, or damaged (recorded).
    Gone,
    Ok(SnapshotId, Snapshot),
    /// Decodes, but its tree is not in the loaded index.
    TreeUnindexed(SnapshotId, Snapshot),
}

/// Who is creating a key or taking a lock: recorded in the key or lock
/// file.
#[derive(Clone, Debug, Default)]
pub struct Owner {
    /// The host's name.
    pub hostname: String,
    /// The user's name.
    pub username: String,
}

/// An open repository.
pub struct Repository {
    backend: Arc<dyn Backend>,
    /// The storage itself, without the metadata cache: what
    /// `verify_uploads` reads back.
    storage: Arc<dyn Backend>,
    /// Read every object back after writing it and check its hash.
    verify_uploads: bool,
    key: MasterKey,
    /// The key file that opened the repository (or that `init` wrote).
    key_id: KeyId,
    config: Config,
    index: Index,
    /// The index files present when the index was loaded.
    index_files: Vec<IndexId>,
    /// Whether the index was loaded (a snapshot whose tree it lacks is
    /// then damaged).
    index_loaded: bool,
    /// Snapshot and index files skipped because they are damaged.
    damage: DamageLog,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("location", &self.backend.location())
            .field("config", &self.config)
            .finish()
    }
}

impl Repository {
    /// Creates a repository with one key for `password`. Refuses a location
    /// that is not empty, without touching it.
    pub fn init(
        backend: Arc<dyn Backend>,
        password: &[u8],
        options: &InitOptions,
        owner: &Owner,
    ) -> Result<Repository> {
        let config = Config::new(options)?;
        backend.create().map_err(|e| match e.kind() {
            BackendErrorKind::AlreadyExists => Error::RepositoryExists(backend.location()),
            _ => Error::Storage(e),
        })?;
        let key = MasterKey::generate();
        let key_file = KeyFile::create(
            &key,
            password,
            options.kdf,
            &owner.hostname,
            &owner.username,
        )?;
        let key_id = write_key(&*backend, &key_file)?;
        // The config goes last: its presence is what makes a repository.
        backend.write(FileKind::Config, "config", &config.encode(&key))?;
        Ok(Repository {
            storage: backend.clone(),
            verify_uploads: false,
            backend,
            key,
            key_id,
            config,
            index: Index::default(),
            index_files: Vec::new(),
            index_loaded: false,
            damage: DamageLog::default(),
        })
    }

    /// Opens a repository with `password` (the index is loaded separately).
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Repository> {
        let location = backend.location();
        let config_bytes = match read_bounded(&*backend, FileKind::Config, "config", MAX_CONFIG_LEN)
        {
            Err(Error::Storage(e)) if e.kind() == BackendErrorKind::NotFound => {
                return Err(Error::NoRepository(location));
            }
            other => other?,
        };
        let version = Config::peek_version(&config_bytes)?;
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                location,
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let (key_id, key) = open_key(&*backend, password)?;
        let config = Config::decode(&config_bytes, &key)?;
        Ok(Repository {
            storage: backend.clone(),
            verify_uploads: false,
            backend,
            key,
            key_id,
            config,
            index: Index::default(),
            index_files: Vec::new(),
            index_loaded: false,
            damage: DamageLog::default(),
        })
    }

    /// Calls `reporter` the first time a reader skips a damaged snapshot or
    /// index file (see [`Repository::damaged`]).
    pub fn on_damage(&mut self, reporter: DamageReporter) {
        self.damage.set_reporter(reporter);
    }

    /// The snapshot and index files skipped so far because they are
    /// damaged: listings leave such snapshots out, and the packs a damaged
    /// index file described are read from their own headers instead.
    pub fn damaged(&self) -> Vec<Damaged> {
        self.damage.all()
    }

    /// Whether a reader skipped `name` of `kind` as damaged.
    pub(crate) fn is_damaged(&self, kind: FileKind, name: &str) -> bool {
        self.damage.contains(kind, name)
    }

    /// Records a damaged object that readers skip.
    pub(crate) fn note_damage(&self, kind: FileKind, name: &str, problem: String) {
        self.damage.note(kind, name, problem);
    }

    /// Keeps a local cache of this repository's metadata under
    /// `root/<repository id>` (see [`crate::raw::CachedBackend`]). Fails only if
    /// the cache directory cannot be created.
    pub fn use_cache(&mut self, root: &std::path::Path) -> std::io::Result<()> {
        let cached =
            crate::cache::CachedBackend::new(self.backend.clone(), root, &self.config.id.to_hex())?;
        self.backend = Arc::new(cached);
        Ok(())
    }

    /// From now on, reads every object back from storage after writing it
    /// (bypassing the cache) and fails unless its bytes hash to its name:
    /// storage that acknowledges a write but keeps other bytes is caught
    /// before anything refers to them.
    pub fn set_verify_uploads(&mut self, on: bool) {
        self.verify_uploads = on;
    }

    /// The storage to read written objects back from, when uploads are
    /// verified.
    pub(crate) fn upload_verifier(&self) -> Option<Arc<dyn Backend>> {
        self.verify_uploads.then(|| self.storage.clone())
    }

    /// The repository's decoded config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The master key the repository was opened with.
    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    /// The key file this repository was opened with (for a new one: its
    /// only key).
    pub fn key_id(&self) -> KeyId {
        self.key_id
    }

    /// Records that `id` is now the key in use (after a password change).
    pub(crate) fn set_key_id(&mut self, id: KeyId) {
        self.key_id = id;
    }

    /// The storage, with the metadata cache if one is in use.
    pub fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// The objects of `kind` in storage (see [`list_objects`]).
    pub(crate) fn list(&self, kind: FileKind) -> Result<Vec<Entry>> {
        list_objects(&*self.backend, kind)
    }

    /// The backend, for work that outlives a borrow (lock refreshing).
    pub(crate) fn shared_backend(&self) -> Arc<dyn Backend> {
        self.backend.clone()
    }

    /// The blob index, empty until [`Repository::load_index`].
    pub fn index(&self) -> &Index {
        &self.index
    }

    pub(crate) fn index_mut(&mut self) -> &mut Index {
        &mut self.index
    }

    /// Where the repository is.
    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// Reads every index file into the in-memory index, skipping files
    /// that another present file supersedes, and damaged ones (recorded;
    /// the packs they described are then read from their own headers).
    pub fn load_index(&mut self) -> Result<()> {
        let (mut index, files) = self.read_index()?;
        index.finish();
        if index.unmarked_duplicates() > 0 {
            // Of two copies the index may have kept one in a pack that is
            // gone (an old index file put back, or a pack a snapshot found
            // missing and stored again): only copies in packs that storage
            // lists may answer. Costs one listing per pack kind,
            // and only while such copies exist (a prune removes them).
            // A pack of another size than indexed (truncated) counts as
            // gone too.
            self.replace_index(index, files);
            return self.forget_absent_packs();
        }
        self.replace_index(index, files);
        Ok(())
    }

    /// Reads every index file present into a new, unfinished index (the
    /// caller may add packs of its own before [`Index::finish`], which
    /// leaves out what superseded files list). Files are decoded in
    /// parallel and added one by one, so memory holds the index and a few
    /// decoded files, never all of them. Returns the files read.
    ///
    /// A file that does not decode is skipped and recorded as damaged;
    /// the packs it may have described are then found in storage and
    /// read from their own headers, so every pack present is still known.
    pub(crate) fn read_index(&self) -> Result<(Index, Vec<IndexId>)> {
        self.retry_vanished(|| {
            let entries = self.list(FileKind::Index)?;
            let index = std::sync::Mutex::new(Index::default());
            let read: Vec<Option<IndexId>> = entries
                .par_iter()
                .map(|entry| {
                    let Some((id, file)) = self.read_index_file_or_skip(&entry.name)? else {
                        return Ok(None);
                    };
                    index
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .add_file_from(id, &file);
                    Ok(Some(id))
                })
                .collect::<Result<_>>()?;
            let mut index = index.into_inner().unwrap_or_else(|e| e.into_inner());
            if read.iter().any(Option::is_none) {
                for (info, blobs) in self.unindexed_pack_headers(&index)? {
                    index.add_pack(info, &blobs);
                }
            }
            Ok((index, read.into_iter().flatten().collect()))
        })
    }

    /// Leaves out of the loaded index every pack that storage does not
    /// list with its indexed size (one listing per pack kind); copies of
    /// their blobs in other packs then answer, and the rest are unknown.
    pub(crate) fn forget_absent_packs(&mut self) -> Result<()> {
        let listed = self.listed_packs()?;
        let present = |p: &PackInfo| listed.get(&p.id) == Some(&p.size);
        if self.index.packs().all(|p| present(&p)) {
            return Ok(());
        }
        let (mut index, read) = self.read_index()?;
        index.retain_packs(present);
        index.finish();
        self.replace_index(index, read);
        Ok(())
    }

    /// Every pack in storage, with its size: one listing per pack kind.
    pub(crate) fn listed_packs(&self) -> Result<std::collections::HashMap<PackId, u64>> {
        let mut listed = std::collections::HashMap::new();
        for kind in [FileKind::Data, FileKind::Tree] {
            for entry in self.list(kind)? {
                if let Some(id) = Id::from_hex(&entry.name) {
                    listed.insert(PackId(id), entry.size);
                }
            }
        }
        Ok(listed)
    }

    /// Reads and decodes every index file present, leaving out (and
    /// recording) damaged ones.
    pub fn read_index_files(&self) -> Result<Vec<(IndexId, IndexFile)>> {
        self.retry_vanished(|| {
            let entries = self.list(FileKind::Index)?;
            let read: Vec<Option<(IndexId, IndexFile)>> = entries
                .par_iter()
                .map(|entry| self.read_index_file_or_skip(&entry.name))
                .collect::<Result<_>>()?;
            Ok(read.into_iter().flatten().collect())
        })
    }

    /// Reads one index file; `None` when it is damaged (recorded as such).
    fn read_index_file_or_skip(&self, name: &str) -> Result<Option<(IndexId, IndexFile)>> {
        match self.read_index_file(name) {
            Ok(read) => Ok(Some(read)),
            Err(e @ Error::Corrupt { .. }) => {
                self.note_damage(FileKind::Index, name, e.to_string());
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The headers of the packs in storage that `index` does not list (a
    /// pack whose header cannot be read has nothing to offer and is left
    /// out). Used when an index file is damaged: its packs are still there.
    pub(crate) fn unindexed_pack_headers(
        &self,
        index: &Index,
    ) -> Result<Vec<(PackInfo, Vec<PackEntry>)>> {
        let known: std::collections::HashSet<PackId> = index.packs().map(|p| p.id).collect();
        let mut found = Vec::new();
        for kind in [BlobKind::Data, BlobKind::Tree] {
            let file_kind = kind.file_kind();
            let listed = self.list(file_kind)?;
            let headers: Vec<Option<(PackInfo, Vec<PackEntry>)>> = listed
                .par_iter()
                .map(|entry| {
                    let Some(id) = Id::from_hex(&entry.name).map(PackId) else {
                        return Ok(None);
                    };
                    if known.contains(&id) {
                        return Ok(None);
                    }
                    let header = crate::pack::read_header_ranged(
                        &*self.backend,
                        &self.key,
                        file_kind,
                        &entry.name,
                        entry.size,
                    );
                    match header {
                        Ok(blobs) if blobs.iter().all(|b| b.kind() == Some(kind)) => {
                            let info = PackInfo {
                                id,
                                kind,
                                size: entry.size,
                                marked: false,
                            };
                            Ok(Some((info, blobs)))
                        }
                        Err(Error::Storage(e)) if e.kind() != BackendErrorKind::NotFound => {
                            Err(Error::Storage(e))
                        }
                        _ => Ok(None),
                    }
                })
                .collect::<Result<_>>()?;
            found.extend(headers.into_iter().flatten());
        }
        Ok(found)
    }

    /// Runs `read` over the index files again when one vanished between
    /// listing and reading: it was superseded by one written before it was
    /// removed (§7.8 of the format), so a new listing includes that one.
    fn retry_vanished<T>(&self, read: impl Fn() -> Result<T>) -> Result<T> {
        let mut attempt = 0;
        loop {
            match read() {
                Err(Error::Storage(e))
                    if e.kind() == BackendErrorKind::NotFound && attempt < 10 =>
                {
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Reads and decodes one index file.
    pub fn read_index_file(&self, name: &str) -> Result<(IndexId, IndexFile)> {
        let object = format!("index {name}");
        let id = Id::from_hex(name).ok_or_else(|| Error::corrupt(&object, "name is not an id"))?;
        let bytes = self.read_verified(FileKind::Index, name, MAX_INDEX_LEN)?;
        Ok((IndexId(id), IndexFile::decode(&bytes, &self.key, &object)?))
    }

    /// The index files present when [`Repository::load_index`] ran (and
    /// those this process wrote since).
    pub fn loaded_index_files(&self) -> &[IndexId] {
        &self.index_files
    }

    /// Reloads the index when the index files in storage are not the ones
    /// it was loaded from (another process saved a snapshot, or a prune or
    /// repair replaced index files); says whether it did. Costs one
    /// listing of the index files. For a process that keeps a repository
    /// open between operations: a prune run meanwhile may have marked or
    /// deleted packs the loaded index still offers for deduplication.
    pub fn refresh_index(&mut self) -> Result<bool> {
        let mut present: Vec<IndexId> = self
            .list(FileKind::Index)?
            .into_iter()
            .filter_map(|e| Id::from_hex(&e.name).map(IndexId))
            .collect();
        let mut loaded = self.index_files.clone();
        present.sort_unstable();
        loaded.sort_unstable();
        if self.index_loaded && present == loaded {
            return Ok(false);
        }
        self.load_index()?;
        Ok(true)
    }

    /// Records index files whose packs are already in the in-memory index.
    pub(crate) fn note_index_files(&mut self, ids: &[IndexId]) {
        self.index_files.extend_from_slice(ids);
    }

    /// Replaces the in-memory index with one built from `files`.
    pub(crate) fn replace_index(&mut self, index: Index, files: Vec<IndexId>) {
        self.index = index;
        self.index_files = files;
        self.index_loaded = true;
    }

    /// Reads an object whose name must be the BLAKE3 of its bytes.
    pub(crate) fn read_verified(&self, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>> {
        let bytes = read_bounded(&*self.backend, kind, name, max)?;
        if Id::of_stored(&bytes).to_hex() != name {
            return Err(Error::corrupt(
                format!("{kind} {name}"),
                "contents do not match the name (storage corruption)",
            ));
        }
        Ok(bytes)
    }

    /// Every snapshot that loads, oldest first. One removed (by a
    /// concurrent forget) between listing and reading is left out. So is a
    /// damaged one (it does not decode, its name does not match its bytes,
    /// or its tree is not indexed): it is recorded (see
    /// [`Repository::damaged`]), never chosen as `latest` or as a parent.
    pub fn snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        self.list_snapshots(true)
    }

    /// Every snapshot file that decodes, whether or not its tree is
    /// indexed (for repairs); oldest first.
    pub(crate) fn decodable_snapshots(&self) -> Result<Vec<(SnapshotId, Snapshot)>> {
        self.list_snapshots(false)
    }

    fn list_snapshots(&self, need_tree: bool) -> Result<Vec<(SnapshotId, Snapshot)>> {
        let entries = self.list(FileKind::Snapshot)?;
        let loaded: Vec<Loaded> = entries
            .par_iter()
            .map(|entry| self.load_listed_snapshot(&entry.name, need_tree))
            .collect::<Result<_>>()?;
        let mut newer: Option<Index> = None;
        let mut loaded_ok = Vec::with_capacity(loaded.len());
        for item in loaded {
            match item {
                Loaded::Gone => {}
                Loaded::Ok(id, snap) => loaded_ok.push(Some((id, snap))),
                Loaded::TreeUnindexed(id, snap) => {
                    // Saved after the index was loaded? Its writer stored
                    // the index file first (§7.6): look there before
                    // calling it damaged.
                    let newer = match &mut newer {
                        Some(index) => index,
                        none => none.insert(self.index_of_newer_files()?),
                    };
                    if newer.contains(BlobKind::Tree, &snap.tree.id()) {
                        loaded_ok.push(Some((id, snap)));
                    } else {
                        let name = id.to_hex();
                        let problem = Error::corrupt(
                            format!("snapshot {name}"),
                            format!("its tree {} is not in the index", snap.tree),
                        );
                        self.note_damage(FileKind::Snapshot, &name, problem.to_string());
                    }
                }
            }
        }
        let loaded = loaded_ok;
        let mut snaps: Vec<(SnapshotId, Snapshot)> = loaded.into_iter().flatten().collect();
        // At one time, a replacement (`tag`, `rewrite` without `--forget`)
        // comes after a snapshot that replaces none: `latest` and the
        // retention buckets then see the replacement as the newer.
        snaps.sort_by(|a, b| {
            a.1.time
                .cmp(&b.1.time)
                .then(a.1.original.is_some().cmp(&b.1.original.is_some()))
                .then(a.0.cmp(&b.0))
        });
        Ok(snaps)
    }

    /// Loads one snapshot file for a listing: `Gone` when it is gone or
    /// damaged (then recorded).
    fn load_listed_snapshot(&self, name: &str, need_tree: bool) -> Result<Loaded> {
        match self.load_snapshot_named(name) {
            Err(Error::Storage(e)) if e.kind() == BackendErrorKind::NotFound => Ok(Loaded::Gone),
            Err(e @ Error::Corrupt { .. }) => {
                self.note_damage(FileKind::Snapshot, name, e.to_string());
                Ok(Loaded::Gone)
            }
            Err(e) => Err(e),
            Ok((id, snap))
                if need_tree
                    && self.index_loaded
                    && !self.index.contains(BlobKind::Tree, &snap.tree.id()) =>
            {
                Ok(Loaded::TreeUnindexed(id, snap))
            }
            Ok((id, snap)) => Ok(Loaded::Ok(id, snap)),
        }
    }

    /// The index files present that were not read when the index was
    /// loaded, as an index of their own.
    fn index_of_newer_files(&self) -> Result<Index> {
        let known: std::collections::HashSet<IndexId> = self.index_files.iter().copied().collect();
        let mut index = Index::default();
        for entry in self.list(FileKind::Index)? {
            let Some(id) = Id::from_hex(&entry.name).map(IndexId) else {
                continue;
            };
            if known.contains(&id) {
                continue;
            }
            match self.read_index_file(&entry.name) {
                Ok((_, file)) => index.add_file(&file),
                Err(Error::Storage(e)) if e.kind() == BackendErrorKind::NotFound => {}
                Err(Error::Corrupt { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        index.finish();
        Ok(index)
    }

    /// Reads one snapshot by id.
    pub fn load_snapshot(&self, id: &SnapshotId) -> Result<Snapshot> {
        self.load_snapshot_named(&id.to_hex()).map(|(_, s)| s)
    }

    fn load_snapshot_named(&self, name: &str) -> Result<(SnapshotId, Snapshot)> {
        let object = format!("snapshot {name}");
        let id = Id::from_hex(name).ok_or_else(|| Error::corrupt(&object, "name is not an id"))?;
        let bytes = self.read_verified(FileKind::Snapshot, name, MAX_SNAPSHOT_LEN)?;
        let snapshot = Snapshot::decode(&bytes, &self.key, &object)?;
        Ok((SnapshotId(id), snapshot))
    }

    /// Resolves `latest` (the newest snapshot that loads), a full id or a
    /// unique id prefix.
    pub fn find_snapshot(&self, spec: &str) -> Result<(SnapshotId, Snapshot)> {
        if spec == "latest" {
            return self.snapshots()?.pop().ok_or_else(|| {
                Error::NotFound(format!("repository {} has no snapshots", self.location()))
            });
        }
        let id = self.resolve_snapshot_id(spec)?;
        self.load_snapshot_named(&id.to_hex())
    }

    /// The snapshot file named by a full id or a unique id prefix, without
    /// reading it: a damaged one can so still be removed by name.
    pub fn resolve_snapshot_id(&self, spec: &str) -> Result<SnapshotId> {
        let spec_lower = spec.to_ascii_lowercase();
        if spec_lower.is_empty() || !spec_lower.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::InvalidInput(format!(
                "{spec:?} is not a snapshot id, id prefix or \"latest\""
            )));
        }
        let names: Vec<SnapshotId> = self
            .list(FileKind::Snapshot)?
            .into_iter()
            .filter(|e| e.name.starts_with(&spec_lower))
            .filter_map(|e| Id::from_hex(&e.name).map(SnapshotId))
            .collect();
        match names.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::NotFound(format!(
                "no snapshot {spec} in repository {}",
                self.location()
            ))),
            _ => Err(Error::InvalidInput(format!(
                "snapshot prefix {spec} matches {} snapshots; give more digits",
                names.len()
            ))),
        }
    }

    /// Reads and opens one blob through the index.
    pub fn read_blob(&self, kind: BlobKind, id: &Id) -> Result<Vec<u8>> {
        let loc = self.index.get(kind, id).ok_or_else(|| {
            Error::corrupt(
                format!("repository {}", self.location()),
                format!("{kind} {id} is referenced but not in the index"),
            )
        })?;
        let file_kind = kind.file_kind();
        let name = loc.pack.to_hex();
        let stored = read_range_exact(
            &*self.backend,
            file_kind,
            &name,
            u64::from(loc.offset),
            u64::from(loc.length),
        )?;
        blob::open(
            &self.key,
            kind,
            id,
            loc.compression,
            loc.raw_length,
            &stored,
            &|| format!("{file_kind} {name}"),
        )
    }

    /// Reads and decodes a tree.
    pub fn read_tree(&self, id: &TreeId) -> Result<Tree> {
        let bytes = self.read_blob(BlobKind::Tree, &id.id())?;
        Tree::decode(&bytes, &format!("tree {id}"))
    }

    /// Stores a finished pack under its name; returns its index entry.
    pub fn write_pack(&self, pack: FinishedPack) -> Result<IndexPack> {
        let verifier = self.upload_verifier();
        Ok(store_pack(&*self.backend, pack, verifier.as_deref())?.0)
    }

    /// Stores an index file; returns its id.
    pub fn save_index(&self, file: &IndexFile) -> Result<IndexId> {
        let bytes = file.encode(&self.key);
        let id = Id::of_stored(&bytes);
        self.write_new(FileKind::Index, &id.to_hex(), &bytes)?;
        Ok(IndexId(id))
    }

    /// Removes a snapshot file (its data stays until a prune); one already
    /// gone is fine.
    pub fn remove_snapshot(&self, id: &SnapshotId) -> Result<()> {
        match self.backend.remove(FileKind::Snapshot, &id.to_hex()) {
            Err(e) if e.kind() != BackendErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Stores a snapshot file; returns its id.
    pub fn save_snapshot(&self, snapshot: &Snapshot) -> Result<SnapshotId> {
        let bytes = snapshot.encode(&self.key);
        let id = Id::of_stored(&bytes);
        self.write_new(FileKind::Snapshot, &id.to_hex(), &bytes)?;
        Ok(SnapshotId(id))
    }

    fn write_new(&self, kind: FileKind, name: &str, bytes: &[u8]) -> Result<()> {
        write_new(&*self.backend, kind, name, bytes)?;
        match self.upload_verifier() {
            Some(storage) => {
                verify_stored(&*self.backend, &*storage, kind, name, bytes.len() as u64)
            }
            None => Ok(()),
        }
    }

    /// Ids of the key files.
    pub fn keys(&self) -> Result<Vec<KeyId>> {
        Ok(self
            .list(FileKind::Key)?
            .into_iter()
            .filter_map(|e| Id::from_hex(&e.name).map(KeyId))
            .collect())
    }

    /// Reads, verifies and decodes one key file.
    pub(crate) fn read_key(&self, id: &KeyId) -> Result<KeyFile> {
        read_key(&*self.backend, &id.to_hex()).map(|(_, file)| file)
    }

    /// Stores a key file; returns its id.
    pub(crate) fn save_key(&self, file: &KeyFile) -> Result<KeyId> {
        write_key(&*self.backend, file)
    }

    /// Reads a whole pack, checking its name.
    pub fn read_pack(&self, kind: BlobKind, id: &PackId) -> Result<Vec<u8>> {
        self.read_verified(kind.file_kind(), &id.to_hex(), MAX_PACK_LEN)
    }
}

/// Writes a content-named object; an existing one with that name already
/// holds these very bytes, so that is success.
pub(crate) fn write_new(
    backend: &dyn Backend,
    kind: FileKind,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    match backend.write(kind, name, bytes) {
        Err(e) if e.kind() == BackendErrorKind::AlreadyExists => Ok(()),
        other => Ok(other?),
    }
}

/// Stores a finished pack under its name (one already there is fine: the
/// name is the hash of the bytes); returns its index entry and, for a pack
/// assembled in memory, the buffer for the next one.
/// With `verify`, the pack is then read back from that storage and checked.
pub(crate) fn store_pack(
    backend: &dyn Backend,
    pack: FinishedPack,
    verify: Option<&dyn Backend>,
) -> Result<(IndexPack, Option<Vec<u8>>)> {
    // Once an interrupt has begun, its saves record the packs stored so
    // far; one stored now would land unrecorded.
    if arca_backend::cleanup::is_stopping() {
        return Err(Error::Conflict(format!(
            "pack {} was not stored in {}: the process is being interrupted",
            pack.id,
            backend.location()
        )));
    }
    let kind = pack.kind.file_kind();
    let name = pack.id.to_hex();
    let buffer = match pack.body {
        PackBody::Memory(bytes) => {
            write_new(backend, kind, &name, &bytes)?;
            Some(bytes)
        }
        PackBody::Staged(object) => match object.commit(&name) {
            Err(e) if e.kind() == BackendErrorKind::AlreadyExists => None,
            other => {
                other?;
                None
            }
        },
    };
    if let Some(storage) = verify {
        verify_stored(backend, storage, kind, &name, pack.size)?;
    }
    let entry = IndexPack {
        id: pack.id,
        kind: pack.kind.to_byte(),
        size: pack.size,
        blobs: pack.entries,
        marked: None,
    };
    Ok((entry, buffer))
}

/// A range read held to the storage contract: exactly `length` bytes, or
/// an error naming the object (storage that returns fewer is treated as
/// damage, never trusted to index into).
pub(crate) fn read_range_exact(
    backend: &dyn Backend,
    kind: FileKind,
    name: &str,
    offset: u64,
    length: u64,
) -> Result<Vec<u8>> {
    let bytes = backend.read_range(kind, name, offset, length)?;
    if bytes.len() as u64 != length {
        return Err(Error::corrupt(
            format!("{kind} {name}"),
            format!(
                "the storage returned {} bytes of the {length} asked for at offset {offset}",
                bytes.len()
            ),
        ));
    }
    Ok(bytes)
}

/// Reads an object back from `storage` piece by piece and checks that it
/// has `size` bytes that hash to its name. An object that does not is
/// removed through `backend`: whatever is stored under the name is damaged,
/// and nothing may come to refer to it.
pub(crate) fn verify_stored(
    backend: &dyn Backend,
    storage: &dyn Backend,
    kind: FileKind,
    name: &str,
    size: u64,
) -> Result<()> {
    const WINDOW: u64 = 4 << 20;
    let object = format!("{kind} {name}");
    let stored = storage.size(kind, name)?;
    let problem = if stored != size {
        Some(format!(
            "the storage holds {stored} bytes of the {size} written"
        ))
    } else {
        let mut hasher = blake3::Hasher::new();
        let mut at = 0;
        while at < size {
            let length = WINDOW.min(size - at);
            hasher.update(&read_range_exact(storage, kind, name, at, length)?);
            at += length;
        }
        (hasher.finalize().to_hex().as_str() != name)
            .then(|| "the storage returned other bytes than were written".to_string())
    };
    match problem {
        None => Ok(()),
        Some(problem) => {
            let _ = backend.remove(kind, name);
            Err(Error::corrupt(
                &object,
                format!("{problem} (verified upload; the object was removed)"),
            ))
        }
    }
}

/// Reads a whole object of at most `max` bytes (no more is ever taken
/// from storage); a larger one is damaged.
fn read_bounded(backend: &dyn Backend, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>> {
    match backend.read(kind, name, max) {
        Err(e) if e.kind() == BackendErrorKind::TooLarge => Err(Error::corrupt(
            format!("{kind} {name}"),
            format!("it is larger than the limit of {max} bytes for its kind"),
        )),
        other => Ok(other?),
    }
}

/// Reads the key file `name`, checks that its name is the hash of its bytes,
/// and decodes it.
fn read_key(backend: &dyn Backend, name: &str) -> Result<(KeyId, KeyFile)> {
    let object = format!("key {name}");
    let bytes = read_bounded(backend, FileKind::Key, name, MAX_KEY_FILE_LEN)?;
    let id = Id::of_stored(&bytes);
    if id.to_hex() != name {
        return Err(Error::corrupt(&object, "contents do not match the name"));
    }
    Ok((KeyId(id), KeyFile::decode(&bytes, &object)?))
}

/// Stores a key file under the hash of its bytes.
fn write_key(backend: &dyn Backend, file: &KeyFile) -> Result<KeyId> {
    let bytes = file.encode();
    let id = Id::of_stored(&bytes);
    backend.write(FileKind::Key, &id.to_hex(), &bytes)?;
    Ok(KeyId(id))
}

/// The most key-derivation work (KiB of memory × passes, summed over the
/// key files tried) one opening of a repository spends: eight key files at
/// the default cost. Key files are not authenticated before their KDF runs,
/// so anyone who can write to storage can plant some; tried cheapest first
/// and within this budget, they cost a command at most a few seconds.
pub const KDF_BUDGET: u64 =
    8 * KdfParams::DEFAULT.memory_kib as u64 * KdfParams::DEFAULT.iterations as u64;

/// Key files asking for more memory than this are not tried: an
/// allocation that large could take the machine down.
pub const KDF_MAX_TRIED_MEMORY_KIB: u32 = 1024 * 1024;

/// The objects of `kind` in storage: the backend's listing without the
/// names that are no object's, not being 64 lowercase hex digits (format.md
/// §2.2). Every command ignores those files and none removes them; only
/// `check` reports them.
pub(crate) fn list_objects(backend: &dyn Backend, kind: FileKind) -> Result<Vec<Entry>> {
    let mut entries = backend.list(kind)?;
    entries.retain(|e| kind == FileKind::Config || is_object_name(&e.name));
    Ok(entries)
}

/// Whether `name` can name a stored object: the hex of a 32-byte id.
pub(crate) fn is_object_name(name: &str) -> bool {
    name.len() == 2 * ID_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Tries the password against the key files, cheapest first, within
/// [`KDF_BUDGET`]; returns the one that fits.
fn open_key(backend: &dyn Backend, password: &[u8]) -> Result<(KeyId, MasterKey)> {
    let mut names: Vec<String> = list_objects(backend, FileKind::Key)?
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    let mut first_error = None;
    let mut keys: Vec<(u64, String, KeyId, KeyFile)> = Vec::new();
    for name in names {
        match read_key(backend, &name) {
            Ok((id, file)) => {
                let cost = u64::from(file.memory_kib) * u64::from(file.iterations);
                keys.push((cost, name, id, file));
            }
            // Removed since the listing (a key change): as if never listed.
            Err(Error::Storage(e)) if e.kind() == BackendErrorKind::NotFound => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    keys.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut spent = 0u64;
    let mut passed_over = Vec::new();
    for (cost, name, id, file) in keys {
        if file.memory_kib > KDF_MAX_TRIED_MEMORY_KIB || spent + cost > KDF_BUDGET {
            passed_over.push(name);
            continue;
        }
        spent += cost;
        match file.open(password, &format!("key {name}")) {
            Ok(Some(key)) => return Ok((id, key)),
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    // A damaged key is reported only when no key opened: with several keys,
    // one bad file must not lock everybody out.
    if let Some(e) = first_error {
        return Err(e);
    }
    if !passed_over.is_empty() {
        return Err(Error::Corrupt {
            object: format!("repository {}", backend.location()),
            reason: format!(
                "no key file it tried opens with this password, and {} key file(s) asking for more key-derivation work than arca spends were not tried: {}",
                passed_over.len(),
                passed_over.join(", ")
            ),
        });
    }
    Err(Error::WrongPassword(backend.location()))
}
