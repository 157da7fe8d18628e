//! Taking a snapshot: walk → chunk → hash → dedup → compress + seal → pack →
//! store, with the stages overlapping.
//!
//! ```text
//!  walker thread ──jobs (bounded)──▶ N sealing workers ──sealed (bounded)──▶ packer thread ──▶ backend
//!  read, chunk, hash,                 zstd + XChaCha20-Poly1305               fill packs, store them,
//!  dedup, build trees                                                         collect index entries
//! ```
//!
//! The walker hashes each chunk itself, so it knows a file's content list
//! the moment it has read it and decides dedup without any coordination: a
//! blob is new when neither the index nor this run's queue has it. Only new
//! blobs cross to the workers. Memory is bounded by the channel capacities
//! (a few chunks per worker), the chunker's buffer (two maximum chunks) and
//! one pack per kind being filled; no file is ever held whole.
//!
//! Order of writes: packs, then an index file naming them, then the snapshot
//! file. A crash before the snapshot file leaves only unreferenced (and at
//! worst unindexed) packs, never a snapshot pointing at missing data. While
//! a long run goes on, the packer saves an index file for the packs stored
//! so far every few minutes (a checkpoint), so an interrupted run's uploads
//! are found by the index of the next run and not sent again.
//!
//! Change detection: the newest earlier snapshot of the same host and paths
//! is the parent. Its trees are walked alongside the source; a file whose
//! size, mtime, ctime, inode and device match its parent node (and whose
//! blobs are all still indexed) reuses the parent's content list unread.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::blob::{BlobKind, Sealer};
use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::id::{BlobId, Id, IndexId, PackId, SnapshotId, TreeId};
use crate::index::{IndexFile, IndexPack};
use crate::ops::packer::{Packer, Recording};
use crate::paged::{self, NextChunk, PageChunker};
use crate::repository::Repository;
use crate::snapshot::{Snapshot, Summary};
use crate::source::{self, ExcludeOptions, Filter, Names, SourceNode};
use crate::sqlite::{self as sqlite_db, ImageMethod, SqliteMode};
use crate::time::Time;
use crate::time::Timestamp;
use crate::tree::{Node, NodeKind, Tree};

/// What to snapshot and how to label it.
#[derive(Clone, Debug, Default)]
pub struct SnapshotOptions {
    /// The source paths; relative ones are taken from the current directory.
    pub paths: Vec<PathBuf>,
    /// Host recorded in the snapshot (and whose snapshots a parent is
    /// looked for among).
    pub hostname: String,
    /// User recorded in the snapshot.
    pub username: String,
    /// Labels recorded in the snapshot.
    pub tags: Vec<String>,
    /// Free text recorded in the snapshot.
    pub description: String,
    /// Record this time instead of now.
    pub time: Option<Time>,
    /// Sealing workers; 0 means one per core.
    pub threads: usize,
    /// Use this snapshot as the parent instead of finding one.
    pub parent: Option<SnapshotId>,
    /// Read every file, ignoring any parent.
    pub no_parent: bool,
    /// What to leave out of the source.
    pub exclude: ExcludeOptions,
    /// Walk and chunk everything, store nothing.
    pub dry_run: bool,
    /// How often a running snapshot saves an index of the packs stored so
    /// far; `None` means the default of five minutes.
    pub checkpoint_interval: Option<Duration>,
    /// How SQLite databases among the files are read.
    pub sqlite: SqliteMode,
    /// Where a rollback-journal database's temporary copy is made; `None`
    /// means the system's temporary directory.
    pub scratch_dir: Option<PathBuf>,
    /// Tags the snapshot also gets when an SQLite database in it could not
    /// be read consistently (stored as a plain copy, or left out), so that
    /// such snapshots can be told apart, by retention among others.
    pub inconsistent_tags: Vec<String>,
}

/// Stack size of the walking threads: enough for trees thousands of levels deep.
const WALK_STACK: usize = 256 << 20;

/// Default time between index checkpoints of a running snapshot.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(300);

/// Live counters a caller may poll to draw progress, and an optional
/// report of every file as it is done ([`Progress::on_file`]).
#[derive(Default)]
pub struct Progress {
    /// Files done so far.
    pub files: AtomicU64,
    /// Bytes of file content read from the source so far.
    pub bytes_read: AtomicU64,
    /// Plaintext bytes of new blobs so far.
    pub bytes_added: AtomicU64,
    /// The sizes of the unchanged files done so far, whose content was
    /// reused from the parent without reading it. With `bytes_read`, how
    /// far the snapshot is through the bytes a [`scan()`](crate::scan())
    /// counts.
    pub bytes_reused: AtomicU64,
    on_file: std::sync::OnceLock<FileReport>,
}

/// Told each file's path and what became of it.
type FileReport = Box<dyn Fn(&Path, FileChange) + Send + Sync>;

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("files", &self.files)
            .field("bytes_read", &self.bytes_read)
            .field("bytes_added", &self.bytes_added)
            .field("bytes_reused", &self.bytes_reused)
            .finish_non_exhaustive()
    }
}

impl Progress {
    /// Calls `report` with every regular file the snapshot stores (from
    /// several threads, in no particular order), saying whether it is new,
    /// changed since the parent or unchanged; a dry run reports what it
    /// would store. Only the first report set is used.
    pub fn on_file(&self, report: impl Fn(&Path, FileChange) + Send + Sync + 'static) {
        let _ = self.on_file.set(Box::new(report));
    }

    fn report_file(&self, path: &Path, change: FileChange) {
        if let Some(report) = self.on_file.get() {
            report(path, change);
        }
    }
}

/// What became of one file in a snapshot, as [`Progress::on_file`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileChange {
    /// No parent snapshot had it: read and stored.
    New,
    /// The parent had it with other metadata: read again.
    Changed,
    /// As in the parent: its content was reused without reading it.
    Unchanged,
}

/// What went wrong with one source entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarningKind {
    /// It could not be read (or vanished) and was left out.
    Unreadable,
    /// It changed while being read; what was read is stored.
    Changed,
    /// An SQLite database that could not be read consistently (locked
    /// exclusively, damaged): stored as a plain copy, or left out under
    /// [`SqliteMode::Always`].
    Inconsistent,
}

/// A problem with one source entry.
#[derive(Clone, Debug)]
pub struct Warning {
    /// What went wrong.
    pub kind: WarningKind,
    /// The source entry.
    pub path: PathBuf,
    /// The error, in words.
    pub message: String,
}

/// The outcome of a snapshot.
#[derive(Debug)]
pub struct SnapshotOutcome {
    /// The id of the saved snapshot; `None` for a dry run.
    pub id: Option<SnapshotId>,
    /// The snapshot as saved (or as it would have been, for a dry run).
    pub snapshot: Snapshot,
    /// Problems with source entries.
    pub warnings: Vec<Warning>,
}

/// A new blob on its way to the workers.
pub(crate) struct Job {
    pub kind: BlobKind,
    pub id: Id,
    pub plain: Vec<u8>,
}

/// A sealed blob on its way to the packer.
struct Sealed {
    kind: BlobKind,
    id: Id,
    raw_len: u32,
    compression: u8,
    stored: Vec<u8>,
}

/// Takes a snapshot of `options.paths` into `repo` (whose index must be loaded).
pub fn snapshot(
    repo: &mut Repository,
    options: &SnapshotOptions,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    if options.paths.is_empty() {
        return Err(Error::InvalidInput("no source paths given".into()));
    }
    // A source path that does not exist is left out with a warning, as
    // restic does; the snapshot records and holds the others. When none
    // exists there is nothing to save.
    let mut paths: Vec<PathBuf> = Vec::with_capacity(options.paths.len());
    let mut missing: Vec<Warning> = Vec::new();
    let mut first_missing = None;
    for given in &options.paths {
        match source::absolute(given) {
            Ok(path) => paths.push(path),
            Err(Error::Source { path, source })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                missing.push(Warning {
                    kind: WarningKind::Unreadable,
                    path: path.clone(),
                    message: "it does not exist; the snapshot holds the other paths".into(),
                });
                first_missing.get_or_insert(Error::Source { path, source });
            }
            Err(e) => return Err(e),
        }
    }
    if paths.is_empty()
        && let Some(e) = first_missing
    {
        return Err(e);
    }
    paths.sort();
    paths.dedup();
    let root = source::build_root(&paths);
    let filter = Filter::new(&options.exclude, &paths)?;
    let path_bytes: Vec<serde_bytes::ByteBuf> = paths
        .iter()
        .map(|p| serde_bytes::ByteBuf::from(p.as_os_str().as_bytes().to_vec()))
        .collect();
    let parent = find_parent(repo, options, &path_bytes)?;
    let parent_root = parent
        .as_ref()
        .and_then(|(_, snap)| repo.read_tree(&snap.tree).ok());
    let parent_id = parent.map(|(id, _)| id);
    let run = Run {
        options,
        progress,
        filter,
        paths: path_bytes,
        parent: parent_id,
        missing,
        discard_on_failure: false,
    };
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Deep trees recurse deeply; give the walking threads room.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .stack_size(WALK_STACK)
        .build()
        .map_err(|e| Error::InvalidInput(format!("cannot start walker threads: {e}")))?;
    // Blobs found missing from storage at the end are stored again by a
    // second walk (with the index corrected): the source is still there.
    run.execute(
        repo,
        true,
        |walker| pool.install(|| walker.archive_root(&root, parent_root.as_ref())),
        |_| {},
    )
}

/// Takes a snapshot of one stream (standard input, or a command's output)
/// stored as the file `/NAME`. `finish` runs when the stream ends, before
/// anything refers to what was stored: if it fails (the command exited
/// non-zero), no snapshot is saved and its error is returned.
pub fn snapshot_stream(
    repo: &mut Repository,
    options: &SnapshotOptions,
    name: &str,
    reader: &mut dyn Read,
    finish: &mut dyn FnMut() -> Result<()>,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    snapshot_stream_with(
        repo,
        options,
        name,
        reader,
        &mut || finish().map(|()| None),
        progress,
    )
}

/// [`snapshot_stream`], where `finish` may also return a small record,
/// `(RECORD, bytes)`, stored beside the stream as the file `/RECORD` (a
/// PostgreSQL base backup's description, made from what the stream held).
pub(crate) fn snapshot_stream_with(
    repo: &mut Repository,
    options: &SnapshotOptions,
    name: &str,
    reader: &mut dyn Read,
    finish: &mut dyn FnMut() -> Result<Option<(String, Vec<u8>)>>,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    if !crate::tree::is_safe_name(name.as_bytes()) {
        return Err(Error::InvalidInput(format!(
            "{name:?} cannot be a file name in a snapshot"
        )));
    }
    let mut paths = vec![serde_bytes::ByteBuf::from(format!("/{name}").into_bytes())];
    let run = Run {
        options,
        progress,
        filter: Filter::new(&ExcludeOptions::default(), &[])?,
        paths: paths.clone(),
        parent: None,
        missing: Vec::new(),
        discard_on_failure: true,
    };
    // A stream cannot be read a second time: rely only on packs storage
    // lists now, so that a pack gone since it was indexed costs nothing
    // but storing its blobs again.
    if !options.dry_run {
        repo.forget_absent_packs()?;
    }
    let recorded = std::cell::RefCell::new(None);
    // A stream cannot be read twice: missing blobs fail the snapshot.
    let outcome = run.execute(
        repo,
        false,
        |walker| {
            let (content, size) = walker
                .archive_stream(reader)
                .map_err(|e| Error::source(format!("/{name}"), e))?;
            let record = finish()?;
            walker.summary.files_new += 1;
            walker.summary.total_files += 1;
            walker.summary.total_bytes += size;
            let mut nodes = vec![source::stream_node(name, size, content)];
            if let Some((record_name, bytes)) = record {
                if !crate::tree::is_safe_name(record_name.as_bytes()) || record_name == name {
                    return Err(Error::InvalidInput(format!(
                        "{record_name:?} cannot be a record's file name in this snapshot"
                    )));
                }
                let (content, size) = walker
                    .archive_stream(&mut bytes.as_slice())
                    .map_err(|e| Error::source(format!("/{record_name}"), e))?;
                walker.summary.files_new += 1;
                walker.summary.total_files += 1;
                walker.summary.total_bytes += size;
                nodes.push(source::stream_node(&record_name, size, content));
                *recorded.borrow_mut() = Some(record_name);
            }
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            for node in &mut nodes {
                lock(&walker.shared.names).fill(node);
            }
            walker.store_tree(Tree { nodes })
        },
        |snapshot| {
            if let Some(record_name) = recorded.borrow().as_ref() {
                paths.push(serde_bytes::ByteBuf::from(
                    format!("/{record_name}").into_bytes(),
                ));
                paths.sort();
                snapshot.paths = paths.clone();
            }
        },
    )?;
    Ok(outcome)
}

/// One snapshot run: the pipeline around a walk.
struct Run<'a> {
    options: &'a SnapshotOptions,
    progress: &'a Progress,
    filter: Filter,
    paths: Vec<serde_bytes::ByteBuf>,
    parent: Option<SnapshotId>,
    /// Source paths left out because they do not exist.
    missing: Vec<Warning>,
    /// Whether a failed walk deletes the packs it stored and no index file
    /// lists yet: a stream whose producer failed stored nothing worth
    /// keeping, while a walk of files may be resumed from them.
    discard_on_failure: bool,
}

impl Run<'_> {
    /// Starts the workers and the packer, runs `walk` on this thread, then
    /// writes the index and the snapshot file. When packs the walk
    /// deduplicated against turn out to be missing from storage, the walk
    /// runs once more if `rewalk` (storing those blobs again), else the
    /// snapshot fails.
    fn execute(
        self,
        repo: &mut Repository,
        rewalk: bool,
        mut walk: impl FnMut(&mut Walker<'_, '_>) -> Result<TreeId>,
        describe: impl FnOnce(&mut Snapshot),
    ) -> Result<SnapshotOutcome> {
        let started = Instant::now();
        let options = self.options;
        let time = options.time.unwrap_or_else(Time::now);
        let threads = if options.threads == 0 {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        } else {
            options.threads
        };
        let checkpoint = options.checkpoint_interval.unwrap_or(CHECKPOINT_INTERVAL);
        let progress = self.progress;
        let filter = &self.filter;
        let mut attempts = 0;
        let (tree, mut summary, warnings, stored_bytes) = loop {
            attempts += 1;
            let repo_ref: &Repository = repo;
            let (walked, packed) = pipeline(repo_ref, threads, checkpoint, |jobs| {
                let shared = Shared {
                    repo: repo_ref,
                    queued: Mutex::new(HashSet::new()),
                    jobs: (!options.dry_run).then_some(jobs),
                    progress,
                    filter,
                    names: Mutex::new(Names::default()),
                    chunkers: Mutex::new(Vec::new()),
                    sqlite: options.sqlite,
                    scratch: options
                        .scratch_dir
                        .clone()
                        .unwrap_or_else(std::env::temp_dir),
                };
                let mut walker = Walker::new(&shared);
                walk(&mut walker).map(|tree| (tree, walker.summary, walker.warnings, walker.packs))
            });
            // A failed store stops the walker too; report the store's error,
            // which is the cause, rather than the walker's closed channel.
            let packed = packed?;
            let (tree, summary, warnings, packs) = match walked {
                Ok(walked) => walked,
                Err(e) => {
                    if self.discard_on_failure {
                        discard(repo_ref, &packed.unsaved);
                    }
                    return Err(e);
                }
            };
            let stored_bytes = packed.stored_bytes;
            if !options.dry_run {
                let indexed = index_packs(repo, &[tree], packed, Some(packs), "snapshot")?;
                if !indexed.missing.is_empty() {
                    if rewalk && attempts == 1 {
                        continue;
                    }
                    return Err(missing_packs(repo, &indexed.missing, "snapshot"));
                }
            }
            break (tree, summary, warnings, stored_bytes);
        };
        let warnings: Vec<Warning> = self.missing.iter().cloned().chain(warnings).collect();
        summary.bytes_stored = stored_bytes;
        summary.errors = warnings
            .iter()
            .filter(|w| w.kind == WarningKind::Unreadable)
            .count() as u64;
        summary.duration_ms = started.elapsed().as_millis() as u64;
        let mut tags = options.tags.clone();
        if warnings.iter().any(|w| w.kind == WarningKind::Inconsistent) {
            for tag in &options.inconsistent_tags {
                if !tags.contains(tag) {
                    tags.push(tag.clone());
                }
            }
        }
        let mut snapshot = Snapshot {
            time,
            tree,
            paths: self.paths.clone(),
            hostname: options.hostname.clone(),
            username: options.username.clone(),
            tags,
            description: options.description.clone(),
            parent: self.parent,
            program_version: format!("arca {}", env!("CARGO_PKG_VERSION")),
            summary: Some(summary),
            original: None,
            copied_from: None,
        };
        describe(&mut snapshot);
        let id = if options.dry_run {
            None
        } else {
            Some(repo.save_snapshot(&snapshot)?)
        };
        Ok(SnapshotOutcome {
            id,
            snapshot,
            warnings,
        })
    }
}

/// Deletes packs a failed run stored that no index file lists: nothing
/// refers to them and no other process knows them. Best effort: a pack left
/// behind is only a stray that `prune` removes after its grace period.
fn discard(repo: &Repository, packs: &[IndexPack]) {
    for pack in packs {
        if let Some(kind) = BlobKind::from_byte(pack.kind) {
            let _ = repo.backend().remove(kind.file_kind(), &pack.id.to_hex());
        }
    }
}

/// Runs `produce` on this thread with the sending end of a job queue,
/// while `threads` sealing workers compress and seal the blobs it sends and
/// a packer thread stores them in packs of `repo`, saving a checkpoint index
/// of the packs stored so far every `checkpoint`. The queue closes when
/// `produce` returns (it owns the sender); then the packer stores its last
/// packs. Returns what `produce` returned and what the packer stored.
pub(crate) fn pipeline<T>(
    repo: &Repository,
    threads: usize,
    checkpoint: Duration,
    produce: impl FnOnce(Sender<Job>) -> T,
) -> (T, Result<Packed>) {
    let threads = threads.max(1);
    let (job_tx, job_rx) = bounded::<Job>(threads * 2);
    let (sealed_tx, sealed_rx) = bounded::<Sealed>(threads * 2);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let job_rx = job_rx.clone();
            let sealed_tx = sealed_tx.clone();
            scope.spawn(move || seal_worker(repo, job_rx, sealed_tx));
        }
        drop(job_rx);
        drop(sealed_tx);
        let packer = scope.spawn(move || pack_blobs(repo, sealed_rx, checkpoint));
        let produced = produce(job_tx);
        let packed = packer
            .join()
            .unwrap_or_else(|_| Err(Error::Internal("the packer thread panicked".into())));
        (produced, packed)
    })
}

/// What [`index_packs`] did.
pub(crate) struct Indexed {
    /// The index files the run wrote.
    pub files: Vec<IndexId>,
    /// Packs the snapshot's blobs were found in that storage does not
    /// list, whose blobs no other pack holds: the snapshot must not be
    /// saved as it is. Empty when all is well.
    pub missing: Vec<PackId>,
}

/// Indexes the packs a run stored for the snapshots whose root trees are
/// `roots` (one, but for a rewrite of several), once no concurrent prune endangers what it references
/// ([`confirm_references`]), and checks that every pack its blobs live in
/// is in a storage listing taken now ([`confirm_present`]); after this the
/// snapshot file may be written (§7.6 of the format) unless
/// [`Indexed::missing`] says otherwise. `referenced` are the packs the walk
/// found the snapshot's blobs in (`None`: find them through the trees).
/// `rerun` names the command to repeat if a prune removed data it needs.
pub(crate) fn index_packs(
    repo: &mut Repository,
    roots: &[TreeId],
    mut packed: Packed,
    referenced: Option<HashSet<PackId>>,
    rerun: &str,
) -> Result<Indexed> {
    let (rescued, reloaded) =
        confirm_references(repo, roots, &packed.checkpoints, &packed.unsaved, rerun)?;
    packed.unsaved.extend(rescued.iter().cloned());
    packed.all.extend(rescued);
    let mut written = packed.checkpoints;
    if !packed.unsaved.is_empty() {
        written.push(repo.save_index(&IndexFile {
            supersedes: Vec::new(),
            packs: packed.unsaved,
        })?);
    }
    if !packed.all.is_empty() {
        let index = repo.index_mut();
        for pack in &packed.all {
            index.add(pack);
        }
        index.finish();
    }
    repo.note_index_files(&written);
    // After a reload the walk's packs may no longer be where the blobs are.
    let mut referenced = referenced.filter(|_| !reloaded);
    if let Some(packs) = &mut referenced {
        packs.extend(packed.all.iter().map(|p| p.id));
    }
    let missing = confirm_present(repo, roots, referenced)?;
    Ok(Indexed {
        files: written,
        missing,
    })
}

/// Packs one storage listing per kind does not show, among those the
/// snapshot's blobs live in (`referenced`, or found through the trees
/// from `root`). A missing pack is dropped from the in-memory index, so
/// that another copy of its blobs is used where one exists; returned are
/// the missing packs whose blobs are not all held elsewhere. No success is
/// so built on a replayed index file, a listing that lied earlier, or a
/// pack deleted under a running snapshot (§7.6 of the format).
fn confirm_present(
    repo: &mut Repository,
    roots: &[TreeId],
    referenced: Option<HashSet<PackId>>,
) -> Result<Vec<PackId>> {
    let listed = repo.listed_packs()?;
    let mut referenced = match referenced {
        Some(packs) => packs,
        None => packs_of(repo, roots)?.0,
    };
    let mut absent: HashSet<PackId> = HashSet::new();
    // Each round drops the absent packs and looks again: another copy of a
    // blob may itself be in a pack that is gone.
    for _ in 0..CONFIRM_ATTEMPTS {
        // A pack of another size than indexed (truncated) counts as gone.
        let sizes: HashMap<PackId, u64> = repo.index().packs().map(|p| (p.id, p.size)).collect();
        let new: Vec<PackId> = referenced
            .iter()
            .filter(|p| listed.get(p) != sizes.get(p) && !absent.contains(p))
            .copied()
            .collect();
        if new.is_empty() {
            return Ok(Vec::new());
        }
        absent.extend(new);
        // This run's packs are in index files already: the in-memory index
        // loses nothing by being rebuilt from storage.
        let (mut index, read) = repo.read_index()?;
        index.retain_packs(|p| !absent.contains(&p.id));
        index.finish();
        repo.replace_index(index, read);
        let (packs, unindexed) = packs_of(repo, roots)?;
        if unindexed {
            let mut missing: Vec<PackId> = absent.into_iter().collect();
            missing.sort();
            return Ok(missing);
        }
        referenced = packs;
    }
    let mut missing: Vec<PackId> = absent.into_iter().collect();
    missing.sort();
    Ok(missing)
}

/// The packs holding the blobs reachable from `roots`, and whether some
/// blob is in none.
fn packs_of(repo: &Repository, roots: &[TreeId]) -> Result<(HashSet<PackId>, bool)> {
    let mut packs = HashSet::new();
    let mut unindexed = false;
    crate::ops::prune::visit_blobs(repo, roots.iter().copied(), None, |kind, id, position| {
        match position.and_then(|_| repo.index().get(kind, &id)) {
            Some(loc) => {
                packs.insert(loc.pack);
            }
            None => unindexed = true,
        }
        Ok(())
    })?;
    Ok((packs, unindexed))
}

/// The error of a snapshot (or copy) that found packs it needs missing.
pub(crate) fn missing_packs(repo: &Repository, missing: &[PackId], rerun: &'static str) -> Error {
    Error::PacksMissing {
        operation: rerun,
        location: repo.location(),
        packs: missing.to_vec(),
    }
}

/// The parent: the one asked for, or the newest snapshot of the same host
/// and the same paths.
fn find_parent(
    repo: &Repository,
    options: &SnapshotOptions,
    paths: &[serde_bytes::ByteBuf],
) -> Result<Option<(SnapshotId, Snapshot)>> {
    if options.no_parent {
        return Ok(None);
    }
    if let Some(id) = options.parent {
        return repo.load_snapshot(&id).map(|snap| Some((id, snap)));
    }
    Ok(repo
        .snapshots()?
        .into_iter()
        .rev()
        .find(|(_, s)| s.hostname == options.hostname && s.paths == paths))
}

/// How many times a snapshot re-checks its blobs after copying some out of
/// packs a concurrent prune marked, before it gives up.
const CONFIRM_ATTEMPTS: usize = 3;

/// Makes sure, just before the snapshot file is written, that no concurrent
/// prune has marked or deleted a pack the snapshot needs.
///
/// Fast path: if no index file appeared since the index was loaded other
/// than ones that only add packs (and none vanished), no prune has run, and
/// nothing is checked further. Otherwise the index is reloaded and every
/// blob the snapshot reaches is looked up: one only in marked packs is
/// copied into a new pack (returned, to be indexed with the run's packs);
/// one that is gone fails the snapshot cleanly, before anything refers to
/// it. A mark made after this check cannot lead to a deletion before the
/// snapshot file exists, since deletion waits a grace period and then
/// finds the snapshot using the pack.
fn confirm_references(
    repo: &mut Repository,
    roots: &[TreeId],
    checkpoints: &[IndexId],
    unsaved: &[IndexPack],
    rerun: &str,
) -> Result<(Vec<IndexPack>, bool)> {
    let mut known: HashSet<IndexId> = repo.loaded_index_files().iter().copied().collect();
    known.extend(checkpoints.iter().copied());
    let mut rescued: Vec<IndexPack> = Vec::new();
    let mut reloaded = false;
    for _ in 0..CONFIRM_ATTEMPTS {
        let listed: HashSet<IndexId> = repo
            .list(arca_backend::FileKind::Index)?
            .iter()
            .filter_map(|e| Id::from_hex(&e.name).map(IndexId))
            .collect();
        if only_additions(repo, &known, &listed)? {
            return Ok((rescued, reloaded));
        }
        let ours: Vec<&IndexPack> = unsaved.iter().chain(&rescued).collect();
        for pack in &ours {
            let kind = BlobKind::from_byte(pack.kind).unwrap_or(BlobKind::Data);
            if !repo.backend().exists(kind.file_kind(), &pack.id.to_hex())? {
                return Err(removed_under_us(
                    repo,
                    &format!("{} {}", kind.file_kind(), pack.id),
                    rerun,
                ));
            }
        }
        let (mut index, read) = repo.read_index()?;
        for pack in ours {
            index.add(pack);
        }
        index.finish();
        repo.replace_index(index, read);
        reloaded = true;
        let mut endangered = Vec::new();
        let mut seen = HashSet::new();
        let location = repo.location();
        crate::ops::prune::visit_blobs(repo, roots.iter().copied(), None, |kind, id, position| {
            if position.is_none() {
                return Err(removed_under_us_at(
                    &location,
                    &format!("{kind} {id}"),
                    rerun,
                ));
            }
            if let Some(loc) = repo.index().get(kind, &id)
                && loc.marked
                && seen.insert((kind, id))
            {
                endangered.push((kind, id, loc));
            }
            Ok(())
        })?;
        if endangered.is_empty() {
            return Ok((rescued, reloaded));
        }
        rescued.extend(copy_blobs(repo, &endangered, rerun)?);
        known = listed;
    }
    Err(Error::Conflict(format!(
        "snapshot not saved: a concurrent prune of repository {} kept marking data it needs; run the {rerun} again",
        repo.location()
    )))
}

/// Whether every index file in `listed` that is not `known` only adds
/// packs, and every known one is still there: then no prune or repair has
/// marked, replaced or deleted anything since `known` was listed.
pub(crate) fn only_additions(
    repo: &Repository,
    known: &HashSet<IndexId>,
    listed: &HashSet<IndexId>,
) -> Result<bool> {
    if known.iter().any(|id| !listed.contains(id)) {
        return Ok(false);
    }
    for id in listed.difference(known) {
        let name = id.to_hex();
        if repo.is_damaged(arca_backend::FileKind::Index, &name) {
            // Skipped when the index was loaded; its packs were found by
            // their headers then.
            continue;
        }
        match repo.read_index_file(&name) {
            Ok((_, file)) => {
                if !file.supersedes.is_empty() || file.packs.iter().any(|p| p.marked.is_some()) {
                    return Ok(false);
                }
            }
            Err(Error::Storage(e)) if e.kind() == arca_backend::ErrorKind::NotFound => {
                return Ok(false);
            }
            // Damaged since the index was loaded: reloading it copes.
            Err(Error::Corrupt { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn removed_under_us(repo: &Repository, what: &str, rerun: &str) -> Error {
    removed_under_us_at(&repo.location(), what, rerun)
}

fn removed_under_us_at(location: &str, what: &str, rerun: &str) -> Error {
    Error::Conflict(format!(
        "snapshot not saved: {what}, which it needs, was deleted by a concurrent prune of repository {location}; run the {rerun} again"
    ))
}

/// Copies blobs, still sealed, out of marked packs into new packs.
fn copy_blobs(
    repo: &Repository,
    blobs: &[(BlobKind, Id, crate::index::Location)],
    rerun: &str,
) -> Result<Vec<IndexPack>> {
    let mut packer = Packer::new(repo);
    let mut out = Vec::new();
    for &(kind, id, loc) in blobs {
        let name = loc.pack.to_hex();
        let stored = match repo.backend().read_range(
            kind.file_kind(),
            &name,
            u64::from(loc.offset),
            u64::from(loc.length),
        ) {
            Ok(stored) => stored,
            Err(e) if e.kind() == arca_backend::ErrorKind::NotFound => {
                return Err(removed_under_us(repo, &format!("{kind} {id}"), rerun));
            }
            Err(e) => return Err(e.into()),
        };
        crate::blob::open(
            repo.key(),
            kind,
            &id,
            loc.compression,
            loc.raw_length,
            &stored,
            &|| format!("{} {name}", kind.file_kind()),
        )?;
        out.extend(packer.add(kind, id, loc.raw_length, loc.compression, &stored)?);
    }
    out.extend(packer.finish()?);
    Ok(out)
}

fn seal_worker(repo: &Repository, jobs: Receiver<Job>, out: Sender<Sealed>) {
    let mut sealer = Sealer::default();
    let level = repo.config().compression;
    for job in jobs {
        let mut stored = Vec::with_capacity(job.plain.len() + crate::format::SEAL_OVERHEAD);
        let compression = sealer.seal_into(
            repo.key(),
            level,
            job.kind,
            &job.id,
            &job.plain,
            &mut stored,
        );
        let sealed = Sealed {
            kind: job.kind,
            id: job.id,
            raw_len: job.plain.len() as u32,
            compression,
            stored,
        };
        if out.send(sealed).is_err() {
            return; // the packer failed; it reports why
        }
    }
}

/// What the packer stored.
pub(crate) struct Packed {
    /// Every pack stored by this run.
    all: Vec<IndexPack>,
    /// Packs not yet in an index file (the rest went into checkpoints).
    unsaved: Vec<IndexPack>,
    /// The checkpoint index files saved.
    checkpoints: Vec<IndexId>,
    /// Stored (compressed, sealed) bytes of the blobs packed.
    pub stored_bytes: u64,
}

/// Fills one pack per kind, storing each as it reaches the target size, and
/// saves a checkpoint index of the stored packs every `checkpoint`.
///
/// Interrupted (SIGINT, SIGTERM), the run indexes the packs it stored since
/// the last checkpoint before the process exits, so that a re-run of an
/// interrupted first snapshot sends only what is still missing.
fn pack_blobs(repo: &Repository, sealed: Receiver<Sealed>, checkpoint: Duration) -> Result<Packed> {
    let mut packed = Packed {
        all: Vec::new(),
        unsaved: Vec::new(),
        checkpoints: Vec::new(),
        stored_bytes: 0,
    };
    // The packs stored and not yet in an index file, as the interrupt
    // cleanup sees them: the upload workers add each one as it is stored.
    let recording = Arc::new(Recording::default());
    let mut packer = Packer::recording(repo, Some(recording.clone()));
    let _index_on_interrupt = {
        let recording = recording.clone();
        let backend = repo.shared_backend();
        let key = repo.key().clone();
        arca_backend::cleanup::before_interrupt(move || {
            // New stores are refused from now on; those under way get a
            // moment to finish, so that what lands is what is indexed.
            let packs = recording.settle(Duration::from_secs(2));
            if !packs.is_empty() {
                let file = IndexFile {
                    supersedes: Vec::new(),
                    packs,
                };
                let bytes = file.encode(&key);
                let name = Id::of_stored(&bytes).to_hex();
                let _ = crate::repository::write_new(
                    &*backend,
                    arca_backend::FileKind::Index,
                    &name,
                    &bytes,
                );
            }
        })
    };
    let mut last_checkpoint = Instant::now();
    for blob in sealed {
        packed.stored_bytes += blob.stored.len() as u64;
        let full = match packer.add(
            blob.kind,
            blob.id,
            blob.raw_len,
            blob.compression,
            &blob.stored,
        ) {
            Ok(full) => full,
            Err(e) => {
                // Index what did get stored, so a rerun reuses it.
                packed.unsaved.extend(packer.abandon());
                if !packed.unsaved.is_empty() {
                    let _ = repo.save_index(&IndexFile {
                        supersedes: Vec::new(),
                        packs: packed.unsaved,
                    });
                }
                return Err(e);
            }
        };
        let any = !full.is_empty();
        for pack in full {
            packed.all.push(pack.clone());
            packed.unsaved.push(pack);
        }
        if any && last_checkpoint.elapsed() >= checkpoint {
            let saved = std::mem::take(&mut packed.unsaved);
            let ids: HashSet<PackId> = saved.iter().map(|p| p.id).collect();
            let id = repo.save_index(&IndexFile {
                supersedes: Vec::new(),
                packs: saved,
            })?;
            lock(&recording.stored).retain(|p| !ids.contains(&p.id));
            packed.checkpoints.push(id);
            last_checkpoint = Instant::now();
        }
    }
    for pack in packer.finish()? {
        packed.all.push(pack.clone());
        packed.unsaved.push(pack);
    }
    Ok(packed)
}

/// What every walker of one run shares.
struct Shared<'a> {
    repo: &'a Repository,
    /// New blobs of this run, sent or (in a dry run) counted.
    queued: Mutex<HashSet<(BlobKind, Id)>>,
    /// `None` in a dry run: nothing is stored.
    jobs: Option<Sender<Job>>,
    progress: &'a Progress,
    filter: &'a Filter,
    names: Mutex<Names>,
    /// Idle chunkers: each holds a buffer of two maximum chunks, reused
    /// rather than allocated per file; at most one per busy walker exists.
    chunkers: Mutex<Vec<Chunker<File>>>,
    /// How SQLite databases are read.
    sqlite: SqliteMode,
    /// Where temporary copies of databases are made.
    scratch: PathBuf,
}

/// Walks part of the source. Subdirectories are walked in parallel, each by
/// its own walker; their summaries and warnings are merged in name order.
struct Walker<'s, 'a> {
    shared: &'s Shared<'a>,
    summary: Summary,
    warnings: Vec<Warning>,
    /// The packs holding the blobs it referenced without storing them.
    packs: HashSet<PackId>,
    /// How many directories below a source path it walks.
    depth: u32,
    /// The names of the databases in the directory being walked that were
    /// stored as consistent images: their journals are not stored.
    images: Vec<Vec<u8>>,
}

/// A subdirectory waiting for its walk.
struct Subdir {
    /// Its place among the directory's nodes.
    slot: usize,
    path: PathBuf,
    node: Node,
    /// The path that reaches it through its parent's handle.
    at: PathBuf,
    /// What the walk listed there.
    meta: Metadata,
    /// Its tree in the parent snapshot, if any.
    parent: Option<Tree>,
    /// Its node's subtree in the parent snapshot (`None`: it is new).
    before: Option<Option<TreeId>>,
}

/// Locks a mutex whose holders never leave its data half-updated.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The node of `name` in a parent tree.
fn parent_node<'t>(parent: Option<&'t Tree>, name: &[u8]) -> Option<&'t Node> {
    let nodes = &parent?.nodes;
    nodes
        .binary_search_by(|n| n.name.as_slice().cmp(name))
        .ok()
        .map(|i| &nodes[i])
}

impl<'s, 'a> Walker<'s, 'a> {
    fn new(shared: &'s Shared<'a>) -> Self {
        Walker {
            shared,
            summary: Summary::default(),
            warnings: Vec::new(),
            packs: HashSet::new(),
            depth: 0,
            images: Vec::new(),
        }
    }

    fn archive_root(&mut self, root: &SourceNode, parent: Option<&Tree>) -> Result<TreeId> {
        match root {
            SourceNode::Real(path) => self.archive_dir(path, path, None, parent),
            SourceNode::Virtual(_, children) => self.archive_virtual(children, parent),
        }
    }

    /// The subtree of a parent directory node, if it can be read.
    fn parent_subtree(&self, node: Option<&Node>) -> Option<Tree> {
        let node = node.filter(|n| n.kind == NodeKind::Dir)?;
        self.shared.repo.read_tree(node.subtree.as_ref()?).ok()
    }

    /// Counts a directory as new (no parent node), unchanged (same tree as
    /// in the parent) or changed; `before` is the parent node's subtree.
    fn count_dir(&mut self, before: Option<Option<TreeId>>, subtree: TreeId) {
        match before {
            None => self.summary.dirs_new += 1,
            Some(b) if b == Some(subtree) => self.summary.dirs_unchanged += 1,
            Some(_) => self.summary.dirs_changed += 1,
        }
    }

    /// A directory on the way to the source paths: only the listed children.
    fn archive_virtual(
        &mut self,
        children: &std::collections::BTreeMap<Vec<u8>, SourceNode>,
        parent: Option<&Tree>,
    ) -> Result<TreeId> {
        let mut tree = Tree::default();
        for (name, child) in children {
            let path = match child {
                SourceNode::Real(p) | SourceNode::Virtual(p, _) => p,
            };
            let meta = std::fs::symlink_metadata(path).map_err(|e| Error::source(path, e))?;
            let Some(mut node) = source::node_from_metadata(name, &meta) else {
                continue;
            };
            let before = parent_node(parent, name);
            match child {
                SourceNode::Real(p) => {
                    let journal = if meta.is_file() && self.live_journal_at(p) {
                        Journal::Live
                    } else {
                        Journal::None
                    };
                    if !self.fill_node(p, p, &meta, &mut node, before, journal)? {
                        continue;
                    }
                }
                SourceNode::Virtual(_, grandchildren) => {
                    self.fill_metadata(path, path, &mut node, before);
                    let sub_parent = self.parent_subtree(before);
                    let subtree = self.archive_virtual(grandchildren, sub_parent.as_ref())?;
                    node.subtree = Some(subtree);
                    self.count_dir(before.map(|b| b.subtree), subtree);
                }
            }
            tree.nodes.push(node);
        }
        self.store_tree(tree)
    }

    /// A source directory: everything below it, sorted by name bytes. `dir`
    /// is its path (for names, excludes and warnings), `at` the path that
    /// reaches it (through its parent's handle), and `listed` what the walk
    /// listed there: the directory opened must be that one. Its entries are
    /// read through its own handle while it is walked.
    fn archive_dir(
        &mut self,
        dir: &Path,
        at: &Path,
        listed: Option<&Metadata>,
        parent: Option<&Tree>,
    ) -> Result<TreeId> {
        let mut entries: Vec<(Vec<u8>, std::fs::DirEntry)> = Vec::new();
        if self.depth >= crate::format::MAX_TREE_DEPTH {
            // Readers would refuse the snapshot (format §6.1).
            self.warn(
                WarningKind::Unreadable,
                dir,
                format!(
                    "nests more than {} directories deep; its contents are not stored",
                    crate::format::MAX_TREE_DEPTH
                ),
            );
            return self.store_tree(Tree::default());
        }
        let handle = match source::DirHandle::open(at, listed) {
            Ok(handle) => Some(handle),
            Err(e) => {
                self.warn(WarningKind::Unreadable, dir, e.to_string());
                None
            }
        };
        match handle.as_ref().map(|h| std::fs::read_dir(h.path())) {
            None => {}
            Some(Ok(read)) => {
                for entry in read {
                    match entry {
                        Ok(entry) => entries.push((entry.file_name().as_bytes().to_vec(), entry)),
                        Err(e) => self.warn(WarningKind::Unreadable, dir, e.to_string()),
                    }
                }
            }
            Some(Err(e)) => self.warn(WarningKind::Unreadable, dir, e.to_string()),
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        // Files are read here, in order; subdirectories are walked in
        // parallel afterwards and slotted back into their places.
        let mut slots: Vec<Option<Node>> = Vec::with_capacity(entries.len());
        let mut subdirs: Vec<Subdir> = Vec::new();
        let outer_images = std::mem::take(&mut self.images);
        let journals = self.live_journals(&entries);
        for (name, entry) in &entries {
            let name = name.clone();
            if self.is_journal_of_image(&name) {
                continue;
            }
            let path = dir.join(OsStr::from_bytes(&name));
            let at = entry.path();
            // Stats relative to the open directory: no walk of the full path.
            let meta = match entry.metadata() {
                Ok(meta) => meta,
                Err(e) => {
                    self.warn(WarningKind::Unreadable, &path, e.to_string());
                    continue;
                }
            };
            if self.shared.filter.excludes(&path, &meta) {
                continue;
            }
            let Some(mut node) = source::node_from_metadata(&name, &meta) else {
                continue;
            };
            let before = parent_node(parent, &name);
            if node.kind == NodeKind::Dir {
                self.fill_metadata(&path, &at, &mut node, before);
                subdirs.push(Subdir {
                    slot: slots.len(),
                    parent: self.parent_subtree(before),
                    before: before.map(|b| b.subtree),
                    path,
                    at,
                    meta,
                    node,
                });
                slots.push(None);
            } else {
                let journal = journals
                    .binary_search_by(|(db, _)| db.cmp(&name))
                    .map_or(Journal::None, |i| journals[i].1);
                if self.fill_node(&path, &at, &meta, &mut node, before, journal)? {
                    slots.push(Some(node));
                }
            }
        }
        self.images = outer_images;
        let shared = self.shared;
        let depth = self.depth;
        let walked: Vec<Result<(TreeId, Walker<'s, 'a>)>> = {
            use rayon::prelude::*;
            subdirs
                .par_iter()
                .map(|sub| {
                    let mut walker = Walker::new(shared);
                    walker.depth = depth + 1;
                    let tree = walker.archive_dir(
                        &sub.path,
                        &sub.at,
                        Some(&sub.meta),
                        sub.parent.as_ref(),
                    )?;
                    Ok((tree, walker))
                })
                .collect()
        };
        for (mut sub, result) in subdirs.into_iter().zip(walked) {
            let (subtree, walker) = result?;
            self.summary.add(&walker.summary);
            self.warnings.extend(walker.warnings);
            self.packs.extend(walker.packs);
            sub.node.subtree = Some(subtree);
            self.count_dir(sub.before, subtree);
            slots[sub.slot] = Some(sub.node);
        }
        // The handle stays open until every entry below it was read.
        drop(handle);
        self.store_tree(Tree {
            nodes: slots.into_iter().flatten().collect(),
        })
    }

    /// Owner names and extended attributes. Any change to an entry's
    /// xattrs changes its ctime, so an entry whose ctime, inode and device
    /// match its parent node keeps the parent's xattrs without asking.
    fn fill_metadata(&mut self, path: &Path, at: &Path, node: &mut Node, before: Option<&Node>) {
        lock(&self.shared.names).fill(node);
        if let Some(p) = before
            && p.kind == node.kind
            && p.ctime == node.ctime
            && p.inode == node.inode
            && p.device == node.device
        {
            node.xattrs = p.xattrs.clone();
            return;
        }
        match source::read_xattrs(at) {
            Ok(xattrs) => node.xattrs = xattrs,
            Err(e) => self.warn(
                WarningKind::Unreadable,
                path,
                format!("cannot read extended attributes: {e}"),
            ),
        }
    }

    /// Adds content, subtree or link target; false when the entry is skipped.
    fn fill_node(
        &mut self,
        path: &Path,
        at: &Path,
        meta: &Metadata,
        node: &mut Node,
        before: Option<&Node>,
        journal: Journal,
    ) -> Result<bool> {
        self.fill_metadata(path, at, node, before);
        match node.kind {
            NodeKind::File => {
                let progress = self.shared.progress;
                // A database with a live journal may have changed without
                // its own file changing: it is read again.
                let reuse = journal != Journal::Live || self.shared.sqlite == SqliteMode::Never;
                if let Some(content) = reuse
                    .then(|| self.unchanged_content(node, before))
                    .flatten()
                {
                    // An unchanged database whose journals are idle (an
                    // empty log, a shared-memory index) is its committed
                    // state as it is: they are left out as for an image.
                    if journal == Journal::Idle && self.shared.sqlite != SqliteMode::Never {
                        self.note_unread_database(path, at, meta);
                    }
                    node.content = content;
                    self.summary.files_unchanged += 1;
                    progress
                        .bytes_reused
                        .fetch_add(node.size, Ordering::Relaxed);
                    progress.report_file(path, FileChange::Unchanged);
                } else {
                    let Some((content, size)) = self.archive_file(path, at, meta)? else {
                        return Ok(false);
                    };
                    node.content = content;
                    node.size = size;
                    if before.is_some() {
                        self.summary.files_changed += 1;
                        progress.report_file(path, FileChange::Changed);
                    } else {
                        self.summary.files_new += 1;
                        progress.report_file(path, FileChange::New);
                    }
                }
                self.summary.total_files += 1;
                self.summary.total_bytes += node.size;
                self.shared.progress.files.fetch_add(1, Ordering::Relaxed);
            }
            NodeKind::Dir => {
                let sub_parent = self.parent_subtree(before);
                let subtree = self.archive_dir(path, at, Some(meta), sub_parent.as_ref())?;
                node.subtree = Some(subtree);
                self.count_dir(before.map(|b| b.subtree), subtree);
            }
            NodeKind::Symlink => match std::fs::read_link(at) {
                Ok(target) => node.target = target.as_os_str().as_bytes().to_vec(),
                Err(e) => {
                    self.warn(WarningKind::Unreadable, path, e.to_string());
                    return Ok(false);
                }
            },
            _ => {}
        }
        Ok(true)
    }

    /// The parent's content list, if the file is unchanged since and all of
    /// its blobs are still in the repository.
    fn unchanged_content(&mut self, node: &Node, before: Option<&Node>) -> Option<Vec<BlobId>> {
        let p = before?;
        let same = p.kind == NodeKind::File
            && p.size == node.size
            && p.mtime == node.mtime
            && p.ctime == node.ctime
            && p.inode == node.inode
            && p.device == node.device;
        if !same {
            return None;
        }
        let mut packs = Vec::with_capacity(p.content.len());
        for id in &p.content {
            match self.shared.repo.index().get(BlobKind::Data, &id.id()) {
                Some(loc) if !loc.marked => packs.push(loc.pack),
                _ if lock(&self.shared.queued).contains(&(BlobKind::Data, id.id())) => {}
                _ => return None,
            }
        }
        self.packs.extend(packs);
        Some(p.content.clone())
    }

    /// Chunks a file; `None` (with a warning) when it cannot be read. An
    /// SQLite database is stored as a consistent image (unless the mode is
    /// `Never`), a database's pages in page groups.
    fn archive_file(
        &mut self,
        path: &Path,
        at: &Path,
        meta: &Metadata,
    ) -> Result<Option<(Vec<BlobId>, u64)>> {
        let file = match source::open_file(at, meta) {
            Ok(file) => file,
            Err(e) => {
                self.warn(WarningKind::Unreadable, path, e.to_string());
                return Ok(None);
            }
        };
        let mode = self.shared.sqlite;
        if mode != SqliteMode::Never
            && let Some(page_size) = sqlite_header(&file)
        {
            // SQLite takes POSIX locks on the file, which closing any other
            // descriptor of it in this process would drop: close ours first.
            drop(file);
            match self.archive_image(at, meta, page_size) {
                Ok(done) => {
                    if let Some(name) = path.file_name() {
                        self.images.push(name.as_bytes().to_vec());
                    }
                    return Ok(Some(done));
                }
                Err(ChunkError::Store(e)) => return Err(e),
                Err(ChunkError::Read(e)) if mode == SqliteMode::Always => {
                    self.warn(
                        WarningKind::Inconsistent,
                        path,
                        format!(
                            "cannot read the SQLite database consistently ({e}); it is not stored"
                        ),
                    );
                    return Ok(None);
                }
                Err(ChunkError::Read(e)) => {
                    self.warn(
                        WarningKind::Inconsistent,
                        path,
                        format!(
                            "cannot read the SQLite database consistently ({e}); \
                             it is stored as a plain copy, which may be torn"
                        ),
                    );
                    return self.archive_plain(path, at, meta);
                }
            }
        }
        self.chunk_plain(path, at, meta, file)
    }

    /// Opens a file again and chunks it as plain bytes.
    fn archive_plain(
        &mut self,
        path: &Path,
        at: &Path,
        meta: &Metadata,
    ) -> Result<Option<(Vec<BlobId>, u64)>> {
        match source::open_file(at, meta) {
            Ok(file) => self.chunk_plain(path, at, meta, file),
            Err(e) => {
                self.warn(WarningKind::Unreadable, path, e.to_string());
                Ok(None)
            }
        }
    }

    /// Chunks an open file as plain bytes: PostgreSQL relation files in
    /// page groups, everything else content-defined.
    fn chunk_plain(
        &mut self,
        path: &Path,
        at: &Path,
        meta: &Metadata,
        file: File,
    ) -> Result<Option<(Vec<BlobId>, u64)>> {
        let read = if paged::is_pg_relation(path) {
            self.chunk_all(&mut PageChunker::new(file, paged::PG_PAGE_SIZE))
        } else {
            let params = self.shared.repo.config().chunker;
            let seed = self.shared.repo.key().chunker_seed();
            let idle = lock(&self.shared.chunkers).pop();
            let mut chunker = match idle {
                Some(mut chunker) => {
                    chunker.reset(file);
                    chunker
                }
                None => Chunker::new(file, params, seed),
            };
            let read = self.chunk_all(&mut chunker);
            lock(&self.shared.chunkers).push(chunker);
            read
        };
        match read {
            Ok((content, size)) => {
                if changed_since(at, meta, size) {
                    self.warn(
                        WarningKind::Changed,
                        path,
                        "changed while being read; the snapshot holds what was read".into(),
                    );
                }
                Ok(Some((content, size)))
            }
            Err(ChunkError::Read(e)) => {
                self.warn(WarningKind::Unreadable, path, e.to_string());
                Ok(None)
            }
            Err(ChunkError::Store(e)) => Err(e),
        }
    }

    /// Stores a consistent image of the SQLite database at `at`, in page
    /// groups. A read error means it could not be read consistently.
    fn archive_image(
        &mut self,
        at: &Path,
        meta: &Metadata,
        page_size: u32,
    ) -> std::result::Result<(Vec<BlobId>, u64), ChunkError> {
        let failed = |e: String| ChunkError::Read(std::io::Error::other(e));
        let db = sqlite_db::Database::open(at, meta).map_err(failed)?;
        // The header's page size is what the file said; SQLite's is the
        // state read (a vacuum may change it).
        let page_size = if db.page_size == 0 {
            page_size
        } else {
            db.page_size
        };
        match db.method() {
            ImageMethod::Pages => db
                .read_pages(|pages| self.chunk_all(&mut PageChunker::new(pages, page_size)))
                .map_err(failed)?,
            ImageMethod::Copy => {
                if db.journal_mode != "wal"
                    && let Some(done) = self.archive_unwritten(&db, at, meta, page_size)?
                {
                    return Ok(done);
                }
                let scratch = self.shared.scratch.clone();
                db.read_copy(&scratch, |copy| {
                    self.chunk_all(&mut PageChunker::new(copy, page_size))
                })
                .map_err(failed)?
            }
        }
    }

    /// Reads a rollback-journal database directly, holding no lock, and
    /// keeps what was read only when nothing was written to the database
    /// meanwhile; `None` when something was (the read stops as soon as the
    /// file's stamp shows a write, and what was read is dropped: a copy is
    /// read instead). With no writer this costs nothing beyond a plain
    /// read, and writers are never held off.
    fn archive_unwritten(
        &mut self,
        db: &sqlite_db::Database,
        at: &Path,
        meta: &Metadata,
        page_size: u32,
    ) -> std::result::Result<Option<(Vec<BlobId>, u64)>, ChunkError> {
        let failed = |e: String| ChunkError::Read(std::io::Error::other(e));
        let before = db.committed_state().map_err(failed)?;
        let file = source::open_file(at, meta).map_err(ChunkError::Read)?;
        let watched = sqlite_db::Unwritten::new(file, at);
        let read = match self.chunk_all(&mut PageChunker::new(watched, page_size)) {
            Err(ChunkError::Read(e)) if sqlite_db::was_written(&e) => return Ok(None),
            other => other?,
        };
        // The descriptor is closed by now: its closing cannot drop a lock
        // SQLite takes below.
        let after = db.committed_state().map_err(failed)?;
        Ok((before == after).then_some(read))
    }

    /// Chunks a whole stream.
    fn archive_stream(&mut self, reader: &mut dyn Read) -> std::io::Result<(Vec<BlobId>, u64)> {
        let params = self.shared.repo.config().chunker;
        let mut chunker = Chunker::new(reader, params, self.shared.repo.key().chunker_seed());
        match self.chunk_all(&mut chunker) {
            Ok(done) => Ok(done),
            Err(ChunkError::Read(e)) => Err(e),
            Err(ChunkError::Store(e)) => Err(std::io::Error::other(e.to_string())),
        }
    }

    /// Whether a file named `name` in the directory being walked is the
    /// journal of a database stored there as an image.
    fn is_journal_of_image(&self, name: &[u8]) -> bool {
        sqlite_db::JOURNAL_SUFFIXES.iter().any(|suffix| {
            name.strip_suffix(suffix.as_bytes())
                .is_some_and(|db| self.images.iter().any(|image| image == db))
        })
    }

    /// The names among sorted `entries` that have journals beside them
    /// (`NAME-wal`, `NAME-shm`, `NAME-journal`), sorted: live when a
    /// `-wal` or `-journal` is not empty.
    fn live_journals(&self, entries: &[(Vec<u8>, std::fs::DirEntry)]) -> Vec<(Vec<u8>, Journal)> {
        if self.shared.sqlite == SqliteMode::Never {
            return Vec::new();
        }
        let mut names: Vec<(Vec<u8>, Journal)> = entries
            .iter()
            .filter_map(|(name, entry)| {
                let (db, can_be_live) = if let Some(db) = name.strip_suffix(b"-wal") {
                    (db, true)
                } else if let Some(db) = name.strip_suffix(b"-journal") {
                    (db, true)
                } else {
                    (name.strip_suffix(b"-shm")?, false)
                };
                let live =
                    can_be_live && entry.metadata().is_ok_and(|m| m.is_file() && m.len() > 0);
                Some((
                    db.to_vec(),
                    if live { Journal::Live } else { Journal::Idle },
                ))
            })
            .collect();
        // Live before idle for the same name, so that dedup keeps live.
        names.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then((a.1 != Journal::Live).cmp(&(b.1 != Journal::Live)))
        });
        names.dedup_by(|later, first| later.0 == first.0);
        names
    }

    /// Records an unchanged file with idle journals beside it as a database
    /// stored whole, when its header says it is one: its journals are then
    /// left out.
    fn note_unread_database(&mut self, path: &Path, at: &Path, meta: &Metadata) {
        let is_database = source::open_file(at, meta)
            .ok()
            .and_then(|file| sqlite_header(&file))
            .is_some();
        if is_database && let Some(name) = path.file_name() {
            self.images.push(name.as_bytes().to_vec());
        }
    }

    /// Whether the file at `path` (a source path) has a live journal.
    fn live_journal_at(&self, path: &Path) -> bool {
        self.shared.sqlite != SqliteMode::Never
            && ["-wal", "-journal"].iter().any(|suffix| {
                std::fs::symlink_metadata(sqlite_db::sibling(path, suffix))
                    .is_ok_and(|m| m.is_file() && m.len() > 0)
            })
    }

    /// Reads a chunker to the end: hashes each chunk, queues the new ones.
    fn chunk_all(
        &mut self,
        chunker: &mut dyn NextChunk,
    ) -> std::result::Result<(Vec<BlobId>, u64), ChunkError> {
        let key = self.shared.repo.key();
        let mut content = Vec::new();
        let mut size = 0u64;
        while let Some(chunk) = chunker.next_chunk().map_err(ChunkError::Read)? {
            let id = key.blob_id(chunk);
            size += chunk.len() as u64;
            self.shared
                .progress
                .bytes_read
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            content.push(BlobId(id));
            if self.is_new(BlobKind::Data, id) {
                self.queue(BlobKind::Data, id, chunk.to_vec())
                    .map_err(ChunkError::Store)?;
            }
        }
        self.summary.bytes_read += size;
        Ok((content, size))
    }

    fn store_tree(&mut self, mut tree: Tree) -> Result<TreeId> {
        tree.sort();
        let bytes = tree.encode();
        let id = self.shared.repo.key().blob_id(&bytes);
        if self.is_new(BlobKind::Tree, id) {
            self.queue(BlobKind::Tree, id, bytes)?;
        }
        Ok(TreeId(id))
    }

    /// True (once) for a blob neither the index nor this run has.
    fn is_new(&mut self, kind: BlobKind, id: Id) -> bool {
        if let Some(loc) = self.shared.repo.index().get(kind, &id)
            && !loc.marked
        {
            self.packs.insert(loc.pack);
            return false;
        }
        lock(&self.shared.queued).insert((kind, id))
    }

    /// Sends a new blob to the sealing workers (none in a dry run) and
    /// counts it.
    fn queue(&mut self, kind: BlobKind, id: Id, plain: Vec<u8>) -> Result<()> {
        self.summary.blobs_added += 1;
        self.summary.bytes_added += plain.len() as u64;
        self.shared
            .progress
            .bytes_added
            .fetch_add(plain.len() as u64, Ordering::Relaxed);
        match &self.shared.jobs {
            // The packer or the workers are gone; the packer's error says why.
            Some(jobs) => jobs
                .send(Job { kind, id, plain })
                .map_err(|_| Error::Internal("the storage pipeline stopped".into())),
            None => Ok(()),
        }
    }

    fn warn(&mut self, kind: WarningKind, path: &Path, message: String) {
        self.warnings.push(Warning {
            kind,
            path: path.to_path_buf(),
            message,
        });
    }
}

/// What lies beside a file that may be an SQLite database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Journal {
    /// No journal file.
    None,
    /// Journal files, all idle: an empty `-wal` or `-journal`, a `-shm`.
    Idle,
    /// A non-empty `-wal` or `-journal`: the database may have changed
    /// without its own file changing.
    Live,
}

/// Why chunking a source stopped.
enum ChunkError {
    /// The source could not be read.
    Read(std::io::Error),
    /// The storage pipeline failed.
    Store(Error),
}

/// The page size of an SQLite database, when the open file's header says
/// it is one.
fn sqlite_header(file: &File) -> Option<u32> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; sqlite_db::HEADER_LEN];
    file.read_exact_at(&mut head, 0).ok()?;
    sqlite_db::page_size(&head)
}

/// Whether a file changed while it was read: another size than read, or
/// other times or inode than before the read.
fn changed_since(path: &Path, before: &Metadata, read: u64) -> bool {
    let Ok(after) = std::fs::symlink_metadata(path) else {
        return true;
    };
    let stamp = |m: &Metadata| {
        (
            Timestamp::new(m.mtime(), m.mtime_nsec()),
            Timestamp::new(m.ctime(), m.ctime_nsec()),
            m.ino(),
        )
    };
    read != before.len() || after.len() != before.len() || stamp(&after) != stamp(before)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_during_a_read_are_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        let before = std::fs::symlink_metadata(&path).unwrap();
        assert!(!changed_since(&path, &before, 5));
        assert!(
            changed_since(&path, &before, 4),
            "read fewer bytes than the size"
        );
        std::fs::write(&path, b"123456").unwrap();
        assert!(changed_since(&path, &before, 5), "grew");
        std::fs::remove_file(&path).unwrap();
        assert!(changed_since(&path, &before, 5), "vanished");
    }
}
