//! Copying snapshots from one repository (the source) to another (the
//! destination), for an offsite copy under another password.
//!
//! Each repository has its own master key, so the same content has a
//! different blob id in each (ids are keyed) and the copy re-identifies
//! every blob (docs/format.md §7.9): data blobs are read from the source
//! one at a time (authenticated, id checked), given their destination id
//! and, unless the destination already has them, queued to the snapshot
//! pipeline's sealing workers and packer; chunk boundaries are kept. Trees
//! are rewritten bottom-up with their nodes' ids translated. The
//! destination is then written exactly as a snapshot writes: packs, the
//! reference check against concurrent prunes, one index file, the snapshot
//! file, which records its origin (`copied_from`). The source is only read.
//!
//! What is never done twice:
//!
//! - a snapshot the destination already holds a copy of is skipped;
//! - within a run, a source tree is translated once and a blob is read
//!   once (an in-memory map from source to destination ids), and a blob the
//!   destination has is not stored again;
//! - between runs, that map is kept in a local cache file
//!   (`<cache>/copy/<source id>-<destination id>`), sealed with the
//!   destination's key, so a copy of a mostly unchanged snapshot reads from
//!   the source only the data the destination lacks. A damaged, tampered
//!   or foreign map fails to open or to match and is ignored.
//!
//! Trust in the map: a data entry is used only when the destination's
//! index has the mapped blob in an unmarked pack. A tree entry would let the
//! copy skip a whole subtree, which is only right if every blob below it is
//! still there; an indexed tree alone does not prove that (a prune keeps a
//! pack for its other blobs while deleting a child's). So tree entries are
//! saved only when the destination's index files changed by additions alone
//! during the run, together with the list of those files, and used only
//! while that still holds: no prune or repair since. Otherwise the trees are
//! read from the source again, which costs tree reads but no data reads.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::Sender;
use serde::{Deserialize, Serialize};

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::file;
use crate::format::{AAD_COPY_MAP, ID_LEN, MAX_COPY_MAP_LEN};
use crate::id::{BlobId, Id, IndexId, SnapshotId, TreeId};
use crate::ops::snapshot::{
    CHECKPOINT_INTERVAL, Job, index_packs, missing_packs, only_additions, pipeline,
};
use crate::repository::Repository;
use crate::snapshot::{Origin, Snapshot};
use crate::tree::Tree;

/// How to copy.
#[derive(Clone, Debug, Default)]
pub struct CopyOptions {
    /// The local cache directory; the translation map is kept in its
    /// `copy/` subdirectory. `None`: no map is read or written.
    pub cache_dir: Option<PathBuf>,
    /// Sealing workers; 0 means one per core.
    pub threads: usize,
}

/// Live counters a caller may poll to draw progress.
#[derive(Debug, Default)]
pub struct CopyProgress {
    /// Snapshots copied so far.
    pub snapshots: AtomicU64,
    /// Stored bytes read from the source.
    pub bytes_read: AtomicU64,
    /// Plaintext bytes of the blobs queued for the destination.
    pub bytes_added: AtomicU64,
}

/// A source snapshot and its copy in the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CopiedSnapshot {
    /// The snapshot in the source repository.
    pub source: SnapshotId,
    /// Its copy in the destination.
    pub destination: SnapshotId,
}

/// Which snapshots a copy writes, and which the destination already holds.
#[derive(Debug)]
pub struct CopyPlan {
    /// To copy, oldest first.
    pub copy: Vec<(SnapshotId, Snapshot)>,
    /// Already in the destination: each source snapshot with its copy.
    pub skip: Vec<CopiedSnapshot>,
    /// Every source snapshot the destination has a copy of, with the copy.
    origins: HashMap<SnapshotId, SnapshotId>,
}

/// What a copy did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CopyReport {
    /// Snapshots this copy wrote.
    pub copied: Vec<CopiedSnapshot>,
    /// Snapshots the destination already held a copy of.
    pub skipped: Vec<CopiedSnapshot>,
    /// Blobs read from the source.
    pub blobs_read: u64,
    /// Stored bytes read from the source.
    pub bytes_read: u64,
    /// Blobs (data and trees) whose destination id came from the map of
    /// earlier copies: not read from the source.
    pub blobs_remembered: u64,
    /// Blobs stored in the destination.
    pub blobs_stored: u64,
    /// Plaintext bytes of those blobs.
    pub bytes_added: u64,
    /// Stored (compressed, sealed) bytes of those blobs.
    pub bytes_stored: u64,
    /// Problems with the local map; the copy itself is complete.
    pub warnings: Vec<String>,
}

/// Decides which of `snapshots` (of `src`) to copy into `dst`: all but
/// those the destination already holds a copy of (a snapshot whose origin
/// is this source snapshot, or the snapshot a source snapshot was itself
/// copied from). Nothing is read but snapshot files.
pub fn plan_copy(
    src: &Repository,
    dst: &Repository,
    mut snapshots: Vec<(SnapshotId, Snapshot)>,
) -> Result<CopyPlan> {
    let src_id = src.config().id;
    let dst_id = dst.config().id;
    if src_id == dst_id {
        return Err(Error::InvalidInput(format!(
            "{} and {} are the same repository (id {}); copy needs another one",
            src.location(),
            dst.location(),
            src_id.short()
        )));
    }
    let held = dst
        .snapshots()
        .map_err(|e| e.in_repository("destination", &dst.location()))?;
    let mut origins = HashMap::new();
    for (id, snap) in &held {
        if let Some(origin) = snap.copied_from
            && origin.repository == src_id
        {
            origins.entry(origin.snapshot).or_insert(*id);
        }
    }
    let held: HashSet<SnapshotId> = held.into_iter().map(|(id, _)| id).collect();
    snapshots.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    snapshots.dedup_by_key(|(id, _)| *id);
    let mut plan = CopyPlan {
        copy: Vec::new(),
        skip: Vec::new(),
        origins,
    };
    for (id, snap) in snapshots {
        let copy = plan.origins.get(&id).copied().or_else(|| {
            snap.copied_from
                .filter(|o| o.repository == dst_id && held.contains(&o.snapshot))
                .map(|o| o.snapshot)
        });
        match copy {
            Some(destination) => plan.skip.push(CopiedSnapshot {
                source: id,
                destination,
            }),
            None => plan.copy.push((id, snap)),
        }
    }
    Ok(plan)
}

/// Copies the snapshots of `plan` from `src` into `dst` (both with their
/// index loaded), oldest first, each saved as soon as its data is; `done`
/// hears of each. The map of the snapshots saved is kept even when a later
/// one fails.
pub fn copy_snapshots(
    src: &Repository,
    dst: &mut Repository,
    plan: CopyPlan,
    options: &CopyOptions,
    progress: &CopyProgress,
    done: &mut dyn FnMut(&CopiedSnapshot),
) -> Result<CopyReport> {
    let mut report = CopyReport {
        skipped: plan.skip,
        ..CopyReport::default()
    };
    let map_path = options
        .cache_dir
        .as_deref()
        .map(|dir| map_path(dir, src, dst));
    let mut run = Run {
        src,
        threads: match options.threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        },
        progress,
        map: match &map_path {
            Some(path) => load_map(path, src, dst, &mut report.warnings),
            None => Translation::default(),
        },
        origins: plan.origins,
    };
    let mut known_files: Vec<IndexId> = dst.loaded_index_files().to_vec();
    let mut failure = None;
    for (id, snap) in plan.copy {
        match run.copy_one(dst, id, &snap) {
            Ok((copy, written, counts)) => {
                known_files.extend(written);
                counts.add_to(&mut report);
                let pair = CopiedSnapshot {
                    source: id,
                    destination: copy,
                };
                report.copied.push(pair);
                progress.snapshots.fetch_add(1, Ordering::Relaxed);
                done(&pair);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if let Some(path) = &map_path
        && !report.copied.is_empty()
        && let Err(e) = save_map(path, src, dst, run.map, &known_files)
    {
        report
            .warnings
            .push(format!("cannot save the copy map {}: {e}", path.display()));
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// What the copies of one run share.
struct Run<'a> {
    src: &'a Repository,
    threads: usize,
    progress: &'a CopyProgress,
    /// Entries of earlier runs and of the snapshots saved in this one.
    map: Translation,
    /// Source snapshots with their copies in the destination.
    origins: HashMap<SnapshotId, SnapshotId>,
}

impl Run<'_> {
    /// Copies one snapshot; returns its new id, the index files written
    /// and what it read and stored. Its map entries join the run's once it
    /// is saved.
    fn copy_one(
        &mut self,
        dst: &mut Repository,
        id: SnapshotId,
        snap: &Snapshot,
    ) -> Result<(SnapshotId, Vec<IndexId>, Counts)> {
        let src_location = self.src.location();
        let dst_location = dst.location();
        let destination = |e: Error| e.in_repository("destination", &dst_location);
        let dst_ref: &Repository = dst;
        let (translated, packed) = pipeline(dst_ref, self.threads, CHECKPOINT_INTERVAL, |jobs| {
            let mut translator = Translator {
                src: self.src,
                src_location: &src_location,
                dst: dst_ref,
                map: &self.map,
                pending: Translation::default(),
                queued: HashSet::new(),
                jobs,
                progress: self.progress,
                counts: Counts::default(),
            };
            let root = translator.translate(snap.tree);
            (root, translator.pending, translator.counts)
        });
        // A failed store stops the translation too; its error is the cause.
        let packed = packed.map_err(destination)?;
        let (root, pending, mut counts) = translated;
        let root = root?;
        counts.bytes_stored = packed.stored_bytes;
        let indexed = index_packs(dst, &[root], packed, None, "copy").map_err(destination)?;
        if !indexed.missing.is_empty() {
            return Err(destination(missing_packs(dst, &indexed.missing, "copy")));
        }
        let written = indexed.files;
        let copy = Snapshot {
            time: snap.time,
            tree: root,
            paths: snap.paths.clone(),
            hostname: snap.hostname.clone(),
            username: snap.username.clone(),
            tags: snap.tags.clone(),
            description: snap.description.clone(),
            parent: snap.parent.and_then(|p| self.origins.get(&p).copied()),
            program_version: snap.program_version.clone(),
            summary: snap.summary.clone(),
            original: None,
            copied_from: Some(Origin {
                repository: self.src.config().id,
                snapshot: id,
            }),
        };
        let copy_id = dst.save_snapshot(&copy).map_err(destination)?;
        self.map.absorb(pending);
        self.origins.insert(id, copy_id);
        Ok((copy_id, written, counts))
    }
}

/// What one snapshot's copy read and stored.
#[derive(Default)]
struct Counts {
    blobs_read: u64,
    bytes_read: u64,
    blobs_remembered: u64,
    blobs_stored: u64,
    bytes_added: u64,
    bytes_stored: u64,
}

impl Counts {
    fn add_to(&self, report: &mut CopyReport) {
        report.blobs_read += self.blobs_read;
        report.bytes_read += self.bytes_read;
        report.blobs_remembered += self.blobs_remembered;
        report.blobs_stored += self.blobs_stored;
        report.bytes_added += self.bytes_added;
        report.bytes_stored += self.bytes_stored;
    }
}

/// Source blob ids → destination blob ids, per kind.
#[derive(Debug, Default)]
struct Translation {
    data: HashMap<Id, Id>,
    trees: HashMap<Id, Id>,
}

impl Translation {
    fn of(&self, kind: BlobKind) -> &HashMap<Id, Id> {
        match kind {
            BlobKind::Data => &self.data,
            BlobKind::Tree => &self.trees,
        }
    }

    fn insert(&mut self, kind: BlobKind, source: Id, destination: Id) {
        match kind {
            BlobKind::Data => self.data.insert(source, destination),
            BlobKind::Tree => self.trees.insert(source, destination),
        };
    }

    fn absorb(&mut self, other: Translation) {
        self.data.extend(other.data);
        self.trees.extend(other.trees);
    }
}

/// Translates one snapshot's trees, feeding new blobs to the pipeline.
struct Translator<'a> {
    src: &'a Repository,
    src_location: &'a str,
    dst: &'a Repository,
    /// Entries of earlier runs and of the snapshots saved in this one.
    map: &'a Translation,
    /// Entries of this snapshot.
    pending: Translation,
    /// Destination blobs queued for storing by this snapshot.
    queued: HashSet<(BlobKind, Id)>,
    jobs: Sender<Job>,
    progress: &'a CopyProgress,
    counts: Counts,
}

/// A source tree being translated: its nodes, and the first one not done.
struct Frame {
    source: TreeId,
    tree: Tree,
    next: usize,
}

impl Translator<'_> {
    /// The destination id of the tree `root` and everything below it.
    /// Depth first with an explicit stack: trees may nest thousands deep.
    fn translate(&mut self, root: TreeId) -> Result<TreeId> {
        if let Some(known) = self.known(BlobKind::Tree, root.id()) {
            return Ok(TreeId(known));
        }
        let mut stack = vec![self.open(root)?];
        while let Some(frame) = stack.last_mut() {
            let Some(node) = frame.tree.nodes.get_mut(frame.next) else {
                // Every node is translated: store the tree, hand its id up.
                let Some(frame) = stack.pop() else { break };
                let id = self.store_tree(frame.source, &frame.tree)?;
                match stack.last_mut() {
                    Some(parent) => {
                        if let Some(node) = parent.tree.nodes.get_mut(parent.next) {
                            node.subtree = Some(id);
                        }
                        parent.next += 1;
                    }
                    None => return Ok(id),
                }
                continue;
            };
            for blob in &mut node.content {
                *blob = BlobId(self.translate_data(blob.id())?);
            }
            let Some(subtree) = node.subtree else {
                frame.next += 1;
                continue;
            };
            match self.known(BlobKind::Tree, subtree.id()) {
                Some(known) => {
                    node.subtree = Some(TreeId(known));
                    frame.next += 1;
                }
                // Its node is finished when the subtree's frame is popped.
                None => {
                    let child = self.open(subtree)?;
                    stack.push(child);
                }
            }
        }
        Err(Error::Internal("tree translation ended early".into()))
    }

    /// Reads a source tree.
    fn open(&mut self, id: TreeId) -> Result<Frame> {
        let bytes = self.read(BlobKind::Tree, id.id())?;
        let tree = Tree::decode(&bytes, &format!("tree {id}"))
            .map_err(|e| e.in_repository("source", self.src_location))?;
        Ok(Frame {
            source: id,
            tree,
            next: 0,
        })
    }

    /// Re-encodes a translated tree, identifies it with the destination's
    /// key and queues it if the destination lacks it. Names are unchanged,
    /// so the nodes are still sorted and the encoding canonical.
    fn store_tree(&mut self, source: TreeId, tree: &Tree) -> Result<TreeId> {
        let bytes = tree.encode();
        let id = self.dst.key().blob_id(&bytes);
        self.pending.insert(BlobKind::Tree, source.id(), id);
        self.queue(BlobKind::Tree, id, bytes)?;
        Ok(TreeId(id))
    }

    /// The destination id of a data blob: remembered, or read and queued.
    fn translate_data(&mut self, source: Id) -> Result<Id> {
        if let Some(known) = self.known(BlobKind::Data, source) {
            return Ok(known);
        }
        let plain = self.read(BlobKind::Data, source)?;
        let id = self.dst.key().blob_id(&plain);
        self.pending.insert(BlobKind::Data, source, id);
        self.queue(BlobKind::Data, id, plain)?;
        Ok(id)
    }

    /// The destination id of a source blob translated before, if the
    /// destination has that blob usable or this snapshot queued it.
    fn known(&mut self, kind: BlobKind, source: Id) -> Option<Id> {
        let present =
            |t: &Self, id: Id| t.dst.index().usable(kind, &id) || t.queued.contains(&(kind, id));
        if let Some(&id) = self.pending.of(kind).get(&source) {
            return present(self, id).then_some(id);
        }
        let id = *self.map.of(kind).get(&source)?;
        if !present(self, id) {
            return None;
        }
        self.counts.blobs_remembered += 1;
        self.pending.insert(kind, source, id);
        Some(id)
    }

    /// Reads and checks one blob of the source.
    fn read(&mut self, kind: BlobKind, id: Id) -> Result<Vec<u8>> {
        let plain = self
            .src
            .read_blob(kind, &id)
            .map_err(|e| e.in_repository("source", self.src_location))?;
        let stored = self
            .src
            .index()
            .get(kind, &id)
            .map_or(0, |loc| u64::from(loc.length));
        self.counts.blobs_read += 1;
        self.counts.bytes_read += stored;
        self.progress
            .bytes_read
            .fetch_add(stored, Ordering::Relaxed);
        Ok(plain)
    }

    /// Sends a blob to the sealing workers unless the destination has it
    /// (in an unmarked pack) or this snapshot already queued it.
    fn queue(&mut self, kind: BlobKind, id: Id, plain: Vec<u8>) -> Result<()> {
        if self.dst.index().usable(kind, &id) || !self.queued.insert((kind, id)) {
            return Ok(());
        }
        self.counts.blobs_stored += 1;
        self.counts.bytes_added += plain.len() as u64;
        self.progress
            .bytes_added
            .fetch_add(plain.len() as u64, Ordering::Relaxed);
        // The packer or the workers are gone; the packer's error says why.
        self.jobs
            .send(Job { kind, id, plain })
            .map_err(|_| Error::Internal("the storage pipeline stopped".into()))
    }
}

/// The map file's body (MessagePack), sealed with the destination's
/// encryption key and [`AAD_COPY_MAP`].
#[derive(Serialize, Deserialize)]
struct MapFile {
    /// Source and destination repository ids: a map of another pair of
    /// repositories is not used.
    source: Id,
    destination: Id,
    /// The destination's index files when the map was saved; empty when
    /// `trees` is.
    index_files: Vec<IndexId>,
    /// Data blobs: source id ‖ destination id, 64 bytes per entry.
    #[serde(with = "serde_bytes")]
    data: Vec<u8>,
    /// Trees, the same way; only saved when valid (see the module doc).
    #[serde(with = "serde_bytes")]
    trees: Vec<u8>,
}

/// `<cache>/copy/<source id>-<destination id>`.
fn map_path(cache_dir: &Path, src: &Repository, dst: &Repository) -> PathBuf {
    cache_dir.join("copy").join(format!(
        "{}-{}",
        src.config().id.to_hex(),
        dst.config().id.to_hex()
    ))
}

/// Reads the map for this pair of repositories; an empty map when there is
/// none, and (with a warning) when it cannot be trusted.
fn load_map(
    path: &Path,
    src: &Repository,
    dst: &Repository,
    warnings: &mut Vec<String>,
) -> Translation {
    match read_map(path, src, dst) {
        Ok(map) => map.unwrap_or_default(),
        Err(reason) => {
            warnings.push(format!(
                "ignoring the copy map {}: {reason}; reading everything from the source",
                path.display()
            ));
            Translation::default()
        }
    }
}

/// The map, `None` if there is none, or why it is not used.
fn read_map(
    path: &Path,
    src: &Repository,
    dst: &Repository,
) -> std::result::Result<Option<Translation>, String> {
    let size = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if size > MAX_COPY_MAP_LEN {
        return Err(format!(
            "{size} bytes exceeds the limit of {MAX_COPY_MAP_LEN}"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let object = format!("copy map {}", path.display());
    let file: MapFile = file::open(dst.key(), AAD_COPY_MAP, &bytes, &object, MAX_COPY_MAP_LEN)
        .map_err(|_| "it is damaged, or not sealed with this destination's key".to_string())?;
    if file.source != src.config().id || file.destination != dst.config().id {
        return Err("it belongs to other repositories".into());
    }
    let mut map = Translation {
        data: pairs(&file.data)?,
        trees: HashMap::new(),
    };
    // Trees only while no prune or repair changed the index since (see the
    // module doc); data entries are checked one by one against the index.
    let known: HashSet<IndexId> = file.index_files.iter().copied().collect();
    let current: HashSet<IndexId> = dst.loaded_index_files().iter().copied().collect();
    if !known.is_empty() && only_additions(dst, &known, &current).unwrap_or(false) {
        map.trees = pairs(&file.trees)?;
    }
    Ok(Some(map))
}

/// Splits `source ‖ destination` pairs.
fn pairs(bytes: &[u8]) -> std::result::Result<HashMap<Id, Id>, String> {
    if !bytes.len().is_multiple_of(2 * ID_LEN) {
        return Err("an entry is cut short".into());
    }
    let id = |b: &[u8]| {
        let mut id = [0; ID_LEN];
        id.copy_from_slice(b);
        Id(id)
    };
    Ok(bytes
        .chunks_exact(2 * ID_LEN)
        .map(|pair| (id(&pair[..ID_LEN]), id(&pair[ID_LEN..])))
        .collect())
}

fn join_pairs(map: &HashMap<Id, Id>) -> Vec<u8> {
    let mut out = Vec::with_capacity(map.len() * 2 * ID_LEN);
    for (source, destination) in map {
        out.extend_from_slice(&source.0);
        out.extend_from_slice(&destination.0);
    }
    out
}

/// Saves the map: written to a temporary file, synced, renamed into place.
/// Its trees are kept only if the destination's index files changed by
/// additions alone since `known` (those loaded, and those this run wrote).
fn save_map(
    path: &Path,
    src: &Repository,
    dst: &Repository,
    map: Translation,
    known: &[IndexId],
) -> Result<()> {
    let listed: HashSet<IndexId> = dst
        .list(arca_backend::FileKind::Index)?
        .iter()
        .filter_map(|e| Id::from_hex(&e.name).map(IndexId))
        .collect();
    let known: HashSet<IndexId> = known.iter().copied().collect();
    let trees_valid = only_additions(dst, &known, &listed).unwrap_or(false);
    let mut index_files: Vec<IndexId> = Vec::new();
    let mut trees = Vec::new();
    if trees_valid {
        index_files = listed.into_iter().collect();
        index_files.sort();
        trees = join_pairs(&map.trees);
    }
    let file = MapFile {
        source: src.config().id,
        destination: dst.config().id,
        index_files,
        data: join_pairs(&map.data),
        trees,
    };
    drop(map);
    // Ids do not compress.
    let sealed = file::seal(dst.key(), AAD_COPY_MAP, &file, 0);
    if sealed.len() as u64 > MAX_COPY_MAP_LEN {
        return Err(Error::InvalidInput(format!(
            "the map would be {} bytes, more than the limit of {MAX_COPY_MAP_LEN}",
            sealed.len()
        )));
    }
    write_private(path, &sealed).map_err(|e| Error::target(path, e))
}

/// Writes a file readable by its owner only, atomically: a temporary file
/// in the same directory (created 0700 with its parents), synced, then
/// renamed over the old one.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (mut out, _guard) =
        arca_backend::cleanup::new_temporary_file(dir, &format!(".tmp-{name}-"))?;
    out.write_all(bytes)?;
    out.as_file().sync_all()?;
    out.persist(path).map(|_| ()).map_err(|e| e.error)
}
