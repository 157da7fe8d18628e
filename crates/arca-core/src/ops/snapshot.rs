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
//! worst unindexed) packs, never a snapshot pointing at missing data.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::blob::{BlobKind, Sealer};
use crate::chunker::Chunker;
use crate::error::{Error, Result};
use crate::id::{BlobId, Id, SnapshotId, TreeId};
use crate::index::{IndexFile, IndexPack};
use crate::pack::PackWriter;
use crate::repository::Repository;
use crate::snapshot::{Snapshot, Summary};
use crate::source::{self, SourceNode};
use crate::time::Time;
use crate::tree::{Node, NodeKind, Tree};

/// What to snapshot and how to label it.
#[derive(Clone, Debug, Default)]
pub struct SnapshotOptions {
    pub paths: Vec<PathBuf>,
    pub hostname: String,
    pub username: String,
    pub tags: Vec<String>,
    pub description: String,
    /// Record this time instead of now.
    pub time: Option<Time>,
    /// Sealing workers; 0 means one per core.
    pub threads: usize,
}

/// Live counters a caller may poll to draw progress.
#[derive(Debug, Default)]
pub struct Progress {
    pub files: AtomicU64,
    pub bytes_read: AtomicU64,
    pub bytes_added: AtomicU64,
}

/// A source entry that could not be read and was left out.
#[derive(Clone, Debug)]
pub struct Warning {
    pub path: PathBuf,
    pub message: String,
}

/// The outcome of a snapshot.
#[derive(Debug)]
pub struct SnapshotOutcome {
    pub id: SnapshotId,
    pub snapshot: Snapshot,
    pub warnings: Vec<Warning>,
}

/// A new blob on its way to the workers.
struct Job {
    kind: BlobKind,
    id: Id,
    plain: Vec<u8>,
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
    let started = Instant::now();
    let time = options.time.unwrap_or_else(Time::now);
    if options.paths.is_empty() {
        return Err(Error::InvalidInput("no source paths given".into()));
    }
    let mut paths: Vec<PathBuf> = options
        .paths
        .iter()
        .map(|p| source::absolute(p))
        .collect::<Result<_>>()?;
    paths.sort();
    paths.dedup();
    let root = source::build_root(&paths);

    let threads = if options.threads == 0 {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    } else {
        options.threads
    };
    let (job_tx, job_rx) = bounded::<Job>(threads * 2);
    let (sealed_tx, sealed_rx) = bounded::<Sealed>(threads * 2);

    let repo_ref: &Repository = repo;
    let (walk, packed) = std::thread::scope(|scope| {
        for _ in 0..threads {
            let job_rx = job_rx.clone();
            let sealed_tx = sealed_tx.clone();
            scope.spawn(move || seal_worker(repo_ref, job_rx, sealed_tx));
        }
        drop(job_rx);
        drop(sealed_tx);
        let packer = scope.spawn(move || pack_blobs(repo_ref, sealed_rx));
        let mut walker = Walker {
            repo: repo_ref,
            queued: HashSet::new(),
            jobs: job_tx,
            summary: Summary::default(),
            warnings: Vec::new(),
            progress,
            chunker: None,
        };
        let walk = walker
            .archive_root(&root)
            .map(|tree| (tree, walker.summary, walker.warnings));
        drop(walker.jobs);
        let packed = packer
            .join()
            .unwrap_or_else(|_| Err(Error::InvalidInput("packer thread panicked".into())));
        (walk, packed)
    });
    // A failed store stops the walker too; report the store's error, which is
    // the cause, rather than the walker's closed channel.
    let (packs, bytes_stored) = packed?;
    let (tree, mut summary, warnings) = walk?;

    if !packs.is_empty() {
        repo.save_index(&IndexFile {
            supersedes: Vec::new(),
            packs: packs.clone(),
        })?;
        let index = repo.index_mut();
        for pack in &packs {
            if let Some(kind) = BlobKind::from_byte(pack.kind) {
                index.add_pack(pack.id, kind, pack.size, &pack.blobs);
            }
        }
        index.finish();
    }
    summary.bytes_stored = bytes_stored;
    summary.errors = warnings.len() as u64;
    summary.duration_ms = started.elapsed().as_millis() as u64;
    let snapshot = Snapshot {
        time,
        tree,
        paths: paths
            .iter()
            .map(|p| serde_bytes::ByteBuf::from(p.as_os_str().as_bytes().to_vec()))
            .collect(),
        hostname: options.hostname.clone(),
        username: options.username.clone(),
        tags: options.tags.clone(),
        description: options.description.clone(),
        parent: None,
        program_version: format!("arca {}", env!("CARGO_PKG_VERSION")),
        summary: Some(summary),
    };
    let id = repo.save_snapshot(&snapshot)?;
    Ok(SnapshotOutcome {
        id,
        snapshot,
        warnings,
    })
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

/// Fills one pack per kind, storing each as it reaches the target size.
fn pack_blobs(repo: &Repository, sealed: Receiver<Sealed>) -> Result<(Vec<IndexPack>, u64)> {
    let target = repo.config().pack_size as usize;
    let mut writers = [
        PackWriter::new(BlobKind::Data, target),
        PackWriter::new(BlobKind::Tree, target),
    ];
    let mut packs = Vec::new();
    let mut stored_bytes = 0;
    for blob in sealed {
        let slot = usize::from(blob.kind == BlobKind::Tree);
        stored_bytes += blob.stored.len() as u64;
        writers[slot].add(blob.id, blob.raw_len, blob.compression, &blob.stored);
        if writers[slot].len() >= target {
            let full = std::mem::replace(&mut writers[slot], PackWriter::new(blob.kind, target));
            packs.push(store_pack(repo, full)?);
        }
    }
    for writer in writers {
        if !writer.is_empty() {
            packs.push(store_pack(repo, writer)?);
        }
    }
    Ok((packs, stored_bytes))
}

fn store_pack(repo: &Repository, writer: PackWriter) -> Result<IndexPack> {
    let pack = writer.finish(repo.key());
    repo.write_pack(&pack)?;
    Ok(IndexPack {
        id: pack.id,
        kind: pack.kind.to_byte(),
        size: pack.bytes.len() as u64,
        blobs: pack.entries,
    })
}

struct Walker<'a> {
    repo: &'a Repository,
    queued: HashSet<(BlobKind, Id)>,
    jobs: Sender<Job>,
    summary: Summary,
    warnings: Vec<Warning>,
    progress: &'a Progress,
    /// One chunker (and its buffer) for every file.
    chunker: Option<Chunker<File>>,
}

/// Sends a new blob to the sealing workers and counts it. (A free function
/// so the walker can call it while its chunker's buffer is borrowed.)
fn queue(
    jobs: &Sender<Job>,
    summary: &mut Summary,
    progress: &Progress,
    kind: BlobKind,
    id: Id,
    plain: Vec<u8>,
) -> Result<()> {
    summary.blobs_added += 1;
    summary.bytes_added += plain.len() as u64;
    progress
        .bytes_added
        .fetch_add(plain.len() as u64, Ordering::Relaxed);
    jobs.send(Job { kind, id, plain })
        // The packer or the workers are gone; the packer's error says why.
        .map_err(|_| Error::InvalidInput("the storage pipeline stopped".into()))
}

impl Walker<'_> {
    fn archive_root(&mut self, root: &SourceNode) -> Result<TreeId> {
        match root {
            SourceNode::Real(path) => self.archive_dir(path),
            SourceNode::Virtual(_, children) => self.archive_virtual(children),
        }
    }

    /// A directory on the way to the source paths: only the listed children.
    fn archive_virtual(
        &mut self,
        children: &std::collections::BTreeMap<Vec<u8>, SourceNode>,
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
            match child {
                SourceNode::Real(p) => {
                    if !self.fill_node(p, &mut node)? {
                        continue;
                    }
                }
                SourceNode::Virtual(_, grandchildren) => {
                    node.subtree = Some(self.archive_virtual(grandchildren)?);
                    self.summary.dirs_new += 1;
                }
            }
            tree.nodes.push(node);
        }
        self.store_tree(tree)
    }

    /// A source directory: everything below it, sorted by name bytes.
    fn archive_dir(&mut self, dir: &Path) -> Result<TreeId> {
        let mut names: Vec<Vec<u8>> = Vec::new();
        match std::fs::read_dir(dir) {
            Ok(entries) => {
                for entry in entries {
                    match entry {
                        Ok(entry) => names.push(entry.file_name().as_bytes().to_vec()),
                        Err(e) => self.warn(dir, &e),
                    }
                }
            }
            Err(e) => self.warn(dir, &e),
        }
        names.sort();
        let mut tree = Tree::default();
        for name in names {
            let path = dir.join(std::ffi::OsStr::from_bytes(&name));
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                Err(e) => {
                    self.warn(&path, &e);
                    continue;
                }
            };
            let Some(mut node) = source::node_from_metadata(&name, &meta) else {
                continue;
            };
            if self.fill_node(&path, &mut node)? {
                tree.nodes.push(node);
            }
        }
        self.store_tree(tree)
    }

    /// Adds content, subtree or link target; false when the entry is skipped.
    fn fill_node(&mut self, path: &Path, node: &mut Node) -> Result<bool> {
        match node.kind {
            NodeKind::File => match self.archive_file(path) {
                Ok(Some((content, size))) => {
                    node.content = content;
                    node.size = size;
                    self.summary.files_new += 1;
                    self.summary.total_files += 1;
                    self.summary.total_bytes += size;
                }
                Ok(None) => return Ok(false),
                Err(e) => return Err(e),
            },
            NodeKind::Dir => {
                node.subtree = Some(self.archive_dir(path)?);
                self.summary.dirs_new += 1;
            }
            NodeKind::Symlink => match std::fs::read_link(path) {
                Ok(target) => node.target = target.as_os_str().as_bytes().to_vec(),
                Err(e) => {
                    self.warn(path, &e);
                    return Ok(false);
                }
            },
            _ => {}
        }
        Ok(true)
    }

    /// Chunks a file; `None` (with a warning) when it cannot be read.
    fn archive_file(&mut self, path: &Path) -> Result<Option<(Vec<BlobId>, u64)>> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) => {
                self.warn(path, &e);
                return Ok(None);
            }
        };
        let key = self.repo.key();
        let chunker = match &mut self.chunker {
            Some(chunker) => {
                chunker.reset(file);
                chunker
            }
            none => none.insert(Chunker::new(
                file,
                self.repo.config().chunker,
                key.chunker_seed(),
            )),
        };
        let mut content = Vec::new();
        let mut size = 0u64;
        loop {
            let chunk = match chunker.next_chunk() {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    self.warnings.push(Warning {
                        path: path.to_path_buf(),
                        message: e.to_string(),
                    });
                    return Ok(None);
                }
            };
            let id = key.blob_id(chunk);
            size += chunk.len() as u64;
            self.progress
                .bytes_read
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            content.push(BlobId(id));
            if !self.repo.index().contains(BlobKind::Data, &id)
                && self.queued.insert((BlobKind::Data, id))
            {
                let plain = chunk.to_vec();
                queue(
                    &self.jobs,
                    &mut self.summary,
                    self.progress,
                    BlobKind::Data,
                    id,
                    plain,
                )?;
            }
        }
        self.summary.bytes_read += size;
        self.progress.files.fetch_add(1, Ordering::Relaxed);
        Ok(Some((content, size)))
    }

    fn store_tree(&mut self, mut tree: Tree) -> Result<TreeId> {
        tree.sort();
        let bytes = tree.encode();
        let id = self.repo.key().blob_id(&bytes);
        if !self.repo.index().contains(BlobKind::Tree, &id)
            && self.queued.insert((BlobKind::Tree, id))
        {
            queue(
                &self.jobs,
                &mut self.summary,
                self.progress,
                BlobKind::Tree,
                id,
                bytes,
            )?;
        }
        Ok(TreeId(id))
    }

    fn warn(&mut self, path: &Path, error: &std::io::Error) {
        self.warnings.push(Warning {
            path: path.to_path_buf(),
            message: error.to_string(),
        });
    }
}
