//! A read-only file system over a repository, as `arca mount` serves it:
//! the model without any FUSE types, so that it can be tested in memory.
//!
//! ```text
//! /snapshots/<time>_<short id>/…   every snapshot, its tree as stored
//! /hosts/<host>/<time>_<short id>  the snapshots of one host (and latest)
//! /tags/<tag>/<time>_<short id>    the snapshots carrying one tag (and latest)
//! /latest -> snapshots/<newest>
//! ```
//!
//! Inodes: the table holds an entry only while the kernel does, the way
//! FUSE counts references: each [`SnapshotFs::lookup`] adds one to the
//! entry's count, [`SnapshotFs::forget`] takes the kernel's count away, and
//! an entry whose count reaches zero is dropped (the root never is). So
//! memory follows the kernel's own inode cache, which it trims under
//! pressure, not the number of entries ever visited: a walk of ten million
//! files does not keep ten million nodes here. A listing hands out numbers
//! without keeping anything; the kernel looks a name up before it uses one.
//!
//! An entry's number is a hash of its parent's number and its name (never
//! 0 or [`ROOT`]), so a name looked up again after it was dropped gets the
//! number it had, and the number a listing shows is the one a lookup gives
//! (tools compare `st_ino`). Should the hash land on a number another live
//! entry holds, the next free one is taken; such an entry may come back
//! under another number once both were dropped (odds about 2^-64 per pair).
//! What an entry is never changes under its name: names below `snapshots/`
//! carry the snapshot's id, trees are content-addressed, and `latest` is
//! resolved when it is read.
//!
//! The snapshot list is read again when a directory above the snapshots is
//! listed or searched and the last read is older than
//! [`MountOptions::refresh`]; when index files were added or replaced
//! (a snapshot or a prune ran) the index is reloaded first, so that new
//! snapshots can be read and repacked blobs found.
//!
//! Reads: a file's blob lengths come from the index (its raw lengths), so
//! a read at an offset fetches only the blobs that cover the range, through
//! a cache bounded in bytes (least recently used goes first). A sequential
//! reader gets the next few blobs fetched ahead in the background. A file
//! whose blob lengths do not add up to its size, a blob not in the index,
//! or one that does not open is an error for that read only (the adapter
//! answers EIO); nothing read from the repository can panic the mount or
//! index past a buffer.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{Duration, Instant};

use arca_backend::FileKind;

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::{BlobId, Id, IndexId, SnapshotId, TreeId};
use crate::repository::Repository;
use crate::select::SnapshotFilter;
use crate::snapshot::Snapshot;
use crate::time::Timestamp;
use crate::tree::{Node, NodeKind, Tree, Xattr, is_safe_name};

/// The inode number of the file system's root.
pub const ROOT: u64 = 1;

/// How far a reader must have read in order, when it did not start at the
/// beginning of the file, before blobs are fetched ahead for it.
const SEQUENTIAL_RUN: u64 = 4 << 20;

/// How a [`SnapshotFs`] is set up.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// The most bytes of blobs (file chunks and decoded directories) kept
    /// in memory.
    pub cache_size: u64,
    /// How old the snapshot list may be before a listing reads it again.
    pub refresh: Duration,
    /// Which snapshots are shown.
    pub filter: SnapshotFilter,
    /// Owner of the directories the file system makes up (the root,
    /// `snapshots/`, `hosts/`, …).
    pub uid: u32,
    /// Group of those directories.
    pub gid: u32,
    /// How many blobs past the one read last are fetched ahead for a
    /// reader that reads a file in order (0: none).
    pub read_ahead: usize,
}

impl Default for MountOptions {
    fn default() -> MountOptions {
        MountOptions {
            cache_size: 64 << 20,
            refresh: Duration::from_secs(2),
            filter: SnapshotFilter::all(),
            uid: 0,
            gid: 0,
            read_ahead: 4,
        }
    }
}

/// What `stat` shows for an entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attr {
    /// The entry's inode number.
    pub ino: u64,
    /// What the entry is.
    pub kind: NodeKind,
    /// Permission bits (`mode & 0o7777`).
    pub perm: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (a symlink: its target's length).
    pub size: u64,
    /// Hard link count.
    pub links: u64,
    /// Device number of a device node.
    pub rdev: u64,
    /// Modification time.
    pub mtime: Timestamp,
    /// Access time.
    pub atime: Timestamp,
    /// Status change time.
    pub ctime: Timestamp,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Its inode number.
    pub ino: u64,
    /// Its name, raw bytes.
    pub name: Vec<u8>,
    /// What it is.
    pub kind: NodeKind,
}

/// Which grouping directory: `hosts/` or `tags/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Grouping {
    Hosts,
    Tags,
}

/// What an inode stands for.
#[derive(Clone, Debug)]
enum What {
    Root,
    Snapshots,
    Groups(Grouping),
    Group(Grouping, String),
    /// `latest` in the root (None) or in one group's directory.
    Latest(Option<(Grouping, String)>),
    Snapshot(Arc<Snapshot>),
    Node(Box<Node>),
}

impl What {
    fn kind(&self) -> NodeKind {
        match self {
            What::Latest(_) => NodeKind::Symlink,
            What::Node(node) => node.kind,
            _ => NodeKind::Dir,
        }
    }
}

#[derive(Debug)]
struct Inode {
    ino: u64,
    parent: u64,
    /// Its name in `parent` (the root: empty).
    name: Vec<u8>,
    what: What,
    /// Files: where each blob ends in the file, once a read computed it.
    ends: OnceLock<Arc<[u64]>>,
    /// Files: where the last read ended, to tell an in-order reader.
    read_end: AtomicU64,
    /// Files: where the current run of in-order reads began.
    run_start: AtomicU64,
}

/// The inode table: the entries the kernel holds, and the root.
#[derive(Debug, Default)]
struct Inodes {
    /// By number, with the lookups the kernel has not forgotten yet.
    live: HashMap<u64, Counted>,
    /// (parent, name) → number, for the live entries.
    by_name: HashMap<(u64, Vec<u8>), u64>,
}

#[derive(Debug)]
struct Counted {
    inode: Arc<Inode>,
    lookups: u64,
}

impl Inodes {
    /// The number of `key`: its live entry's, else the first number from
    /// `home` on that is neither 0, [`ROOT`] nor held by a live entry.
    fn number(&self, key: &(u64, Vec<u8>), home: u64) -> u64 {
        if let Some(&ino) = self.by_name.get(key) {
            return ino;
        }
        let mut ino = home;
        while ino == 0 || ino == ROOT || self.live.contains_key(&ino) {
            ino = ino.wrapping_add(1);
        }
        ino
    }
}

/// Where the number of `name` in `parent` is looked for first: the first
/// 8 bytes of a BLAKE3 hash of both.
fn home(parent: u64, name: &[u8]) -> u64 {
    let mut hasher = blake3::Hasher::new_derive_key("arca mount inode number v1");
    hasher.update(&parent.to_le_bytes());
    hasher.update(name);
    let mut first = [0; 8];
    first.copy_from_slice(&hasher.finalize().as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// The snapshot list as last read.
#[derive(Debug)]
struct Listing {
    read_at: Option<Instant>,
    snapshots: Arc<Vec<Listed>>,
}

/// One snapshot as the file system names it.
#[derive(Debug)]
struct Listed {
    name: Vec<u8>,
    id: SnapshotId,
    snapshot: Arc<Snapshot>,
}

/// A read-only file system view of a repository's snapshots; shared by the
/// threads that serve requests (clones share everything).
#[derive(Clone, Debug)]
pub struct SnapshotFs {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    repo: RwLock<Repository>,
    options: MountOptions,
    inodes: Mutex<Inodes>,
    listing: Mutex<Listing>,
    cache: BlobCache,
    started: Timestamp,
    /// Blobs fetched from the repository (cache misses), for tests and
    /// reports.
    fetched: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl SnapshotFs {
    /// A view of `repo` (its index loaded); nothing is read until asked.
    pub fn new(repo: Repository, options: MountOptions) -> SnapshotFs {
        let root = Arc::new(Inode {
            ino: ROOT,
            parent: ROOT,
            name: Vec::new(),
            what: What::Root,
            ends: OnceLock::new(),
            read_end: AtomicU64::new(0),
            run_start: AtomicU64::new(0),
        });
        SnapshotFs {
            inner: Arc::new(Inner {
                repo: RwLock::new(repo),
                cache: BlobCache::new(options.cache_size),
                options,
                inodes: Mutex::new(Inodes {
                    live: HashMap::from([(
                        ROOT,
                        Counted {
                            inode: root,
                            lookups: 1,
                        },
                    )]),
                    by_name: HashMap::new(),
                }),
                listing: Mutex::new(Listing {
                    read_at: None,
                    snapshots: Arc::new(Vec::new()),
                }),
                started: Timestamp::from_system(std::time::SystemTime::now()),
                fetched: AtomicU64::new(0),
            }),
        }
    }

    /// The entry `name` in the directory `parent`. Its inode is kept
    /// until [`SnapshotFs::forget`] took back this lookup and every other
    /// one (the kernel counts the lookups it was answered and forgets them
    /// when it drops the inode).
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        let dir = self.inode(parent)?;
        let what = self
            .inner
            .child(&dir, name)?
            .ok_or_else(|| not_found(name))?;
        let inode = self.inner.intern(parent, name.to_vec(), what);
        Ok(self.inner.attr(&inode))
    }

    /// Takes back `lookups` lookups of `ino`; the inode is dropped when
    /// none is left, and its number is then unknown until its name is
    /// looked up again (which gives it the same number). The root is never
    /// dropped; a number not held is ignored.
    pub fn forget(&self, ino: u64, lookups: u64) {
        if ino == ROOT {
            return;
        }
        let mut guard = lock(&self.inner.inodes);
        let inodes = &mut *guard;
        let Some(counted) = inodes.live.get_mut(&ino) else {
            return;
        };
        counted.lookups = counted.lookups.saturating_sub(lookups);
        if counted.lookups > 0 {
            return;
        }
        if let Some(Counted { inode, .. }) = inodes.live.remove(&ino) {
            inodes.by_name.remove(&(inode.parent, inode.name.clone()));
        }
    }

    /// How many inodes the table holds now, the root included: a
    /// diagnostic, for tests and reports.
    pub fn inode_count(&self) -> usize {
        lock(&self.inner.inodes).live.len()
    }

    /// The attributes of inode `ino`.
    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        let inode = self.inode(ino)?;
        Ok(self.inner.attr(&inode))
    }

    /// The entries of the directory `ino` (without `.` and `..`), in name
    /// order, with the numbers a lookup gives them; the table keeps none
    /// of them.
    pub fn readdir(&self, ino: u64) -> Result<Vec<DirEntry>> {
        let dir = self.inode(ino)?;
        let children = self.inner.children(&dir)?;
        let homes: Vec<u64> = children.iter().map(|(name, _)| home(ino, name)).collect();
        let inodes = lock(&self.inner.inodes);
        Ok(children
            .into_iter()
            .zip(homes)
            .map(|((name, what), home)| {
                let key = (ino, name);
                DirEntry {
                    ino: inodes.number(&key, home),
                    name: key.1,
                    kind: what.kind(),
                }
            })
            .collect())
    }

    /// The parent directory of `ino` (the root is its own parent).
    pub fn parent(&self, ino: u64) -> Result<u64> {
        Ok(self.inode(ino)?.parent)
    }

    /// The target of the symlink `ino`.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let inode = self.inode(ino)?;
        match &inode.what {
            What::Node(node) if node.kind == NodeKind::Symlink => Ok(node.target.clone()),
            What::Latest(group) => {
                let listed = self.inner.snapshots()?;
                let newest = listed
                    .iter()
                    .rev()
                    .find(|l| {
                        group
                            .as_ref()
                            .is_none_or(|(g, v)| in_group(&l.snapshot, *g, v))
                    })
                    .ok_or_else(|| Error::NotFound("there is no snapshot".into()))?;
                Ok(match group {
                    None => [&b"snapshots/"[..], &newest.name].concat(),
                    Some(_) => newest.name.clone(),
                })
            }
            _ => Err(Error::InvalidInput(format!("inode {ino} is not a symlink"))),
        }
    }

    /// The extended attributes stored with `ino` (none for the directories
    /// the file system makes up).
    pub fn xattrs(&self, ino: u64) -> Result<Vec<Xattr>> {
        let inode = self.inode(ino)?;
        Ok(match &inode.what {
            What::Node(node) => node.xattrs.clone(),
            _ => Vec::new(),
        })
    }

    /// Up to `size` bytes of the file `ino` from `offset` (fewer at its
    /// end, none past it).
    pub fn read(&self, ino: u64, offset: u64, size: u32) -> Result<Vec<u8>> {
        let inode = self.inode(ino)?;
        let What::Node(node) = &inode.what else {
            return Err(Error::InvalidInput(format!("inode {ino} is not a file")));
        };
        if node.kind != NodeKind::File {
            return Err(Error::InvalidInput(format!("inode {ino} is not a file")));
        }
        let ends = self.inner.blob_ends(&inode, node)?;
        let end = offset.saturating_add(u64::from(size)).min(node.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let in_order = self.in_order(&inode, offset, end);
        let mut out = Vec::with_capacity((end - offset) as usize);
        let mut at = offset;
        let mut i = ends.partition_point(|&e| e <= offset);
        while at < end {
            let (blob, start, stop) = blob_span(node, &ends, i)?;
            let bytes = self.inner.data_blob(blob, stop - start)?;
            let from = (at - start) as usize;
            let to = (end.min(stop) - start) as usize;
            out.extend_from_slice(&bytes[from..to]);
            at = end.min(stop);
            i += 1;
        }
        if in_order {
            self.read_ahead(node, &ends, i);
        }
        Ok(out)
    }

    /// How many blobs were fetched from the repository so far (reads the
    /// cache did not answer).
    pub fn blobs_fetched(&self) -> u64 {
        self.inner.fetched.load(Ordering::Relaxed)
    }

    /// The bytes the blob cache holds now (at most
    /// [`MountOptions::cache_size`]).
    pub fn cached_bytes(&self) -> u64 {
        self.inner.cache.bytes()
    }

    fn inode(&self, ino: u64) -> Result<Arc<Inode>> {
        let inodes = lock(&self.inner.inodes);
        inodes
            .live
            .get(&ino)
            .map(|counted| counted.inode.clone())
            .ok_or_else(|| {
                Error::NotFound(format!("no inode {ino} (never looked up or forgotten)"))
            })
    }

    /// Whether a read of `offset..end` continues a reader that goes through
    /// the file in order: from its start, or for [`SEQUENTIAL_RUN`] bytes
    /// (the kernel's own read-ahead of one random read is not such a
    /// reader, and must not cost a fetch of blobs nobody asked for).
    fn in_order(&self, inode: &Inode, offset: u64, end: u64) -> bool {
        if inode.read_end.swap(end, Ordering::Relaxed) != offset {
            inode.run_start.store(offset, Ordering::Relaxed);
            return false;
        }
        let start = inode.run_start.load(Ordering::Relaxed);
        start == 0 || end - start.min(end) >= SEQUENTIAL_RUN
    }

    /// Fetches blobs `first..` of `node` in the background, as many as
    /// [`MountOptions::read_ahead`] says and a quarter of the cache holds.
    fn read_ahead(&self, node: &Node, ends: &Arc<[u64]>, first: usize) {
        let budget = self.inner.options.cache_size / 4;
        let mut bytes = 0;
        let last = first
            .saturating_add(self.inner.options.read_ahead)
            .min(node.content.len());
        for i in first..last {
            let Ok((blob, start, stop)) = blob_span(node, ends, i) else {
                return;
            };
            bytes += stop - start;
            if bytes > budget {
                return;
            }
            let key = (BlobKind::Data, blob.id());
            if self.inner.cache.holds(&key) {
                continue;
            }
            let inner = self.inner.clone();
            rayon::spawn(move || {
                let _ = inner.data_blob(blob, stop - start);
            });
        }
    }
}

/// Blob `i` of a file and where it starts and stops in it.
fn blob_span(node: &Node, ends: &[u64], i: usize) -> Result<(BlobId, u64, u64)> {
    let (Some(blob), Some(stop)) = (node.content.get(i), ends.get(i)) else {
        return Err(Error::corrupt("file", "a read went past its last blob"));
    };
    let start = if i == 0 { 0 } else { ends[i - 1] };
    Ok((*blob, start, *stop))
}

fn not_found(name: &[u8]) -> Error {
    Error::NotFound(format!("no entry {}", String::from_utf8_lossy(name)))
}

fn in_group(snapshot: &Snapshot, grouping: Grouping, value: &str) -> bool {
    match grouping {
        Grouping::Hosts => snapshot.hostname == value,
        Grouping::Tags => snapshot.tags.iter().any(|t| t == value),
    }
}

/// `2026-12-06T20:41:03+01:00_1a2b3c4d`: the snapshot's time where it was
/// taken, then its short id (so that names are unique and never change).
fn snapshot_name(id: &SnapshotId, snapshot: &Snapshot) -> Vec<u8> {
    let time = snapshot.time.to_zoned().strftime("%Y-%m-%dT%H:%M:%S%:z");
    format!("{time}_{}", id.short()).into_bytes()
}

impl Inner {
    /// The inode for `name` in `parent`, made when it is not live, with
    /// one more lookup counted.
    fn intern(&self, parent: u64, name: Vec<u8>, what: What) -> Arc<Inode> {
        let home = home(parent, &name);
        let mut guard = lock(&self.inodes);
        let inodes = &mut *guard;
        let key = (parent, name);
        let ino = inodes.number(&key, home);
        if let Some(counted) = inodes.live.get_mut(&ino) {
            counted.lookups += 1;
            return counted.inode.clone();
        }
        let inode = Arc::new(Inode {
            ino,
            parent,
            name: key.1.clone(),
            what,
            ends: OnceLock::new(),
            read_end: AtomicU64::new(0),
            run_start: AtomicU64::new(0),
        });
        inodes.live.insert(
            ino,
            Counted {
                inode: inode.clone(),
                lookups: 1,
            },
        );
        inodes.by_name.insert(key, ino);
        inode
    }

    /// A directory's entries, names sorted.
    fn children(&self, dir: &Inode) -> Result<Vec<(Vec<u8>, What)>> {
        let mut out: Vec<(Vec<u8>, What)> = match &dir.what {
            What::Root => {
                let mut out = vec![
                    (b"hosts".to_vec(), What::Groups(Grouping::Hosts)),
                    (b"snapshots".to_vec(), What::Snapshots),
                    (b"tags".to_vec(), What::Groups(Grouping::Tags)),
                ];
                if !self.snapshots()?.is_empty() {
                    out.push((b"latest".to_vec(), What::Latest(None)));
                }
                out
            }
            What::Snapshots => self
                .snapshots()?
                .iter()
                .map(|l| (l.name.clone(), What::Snapshot(l.snapshot.clone())))
                .collect(),
            What::Groups(grouping) => {
                let listed = self.snapshots()?;
                let mut values: Vec<&str> = match grouping {
                    Grouping::Hosts => listed
                        .iter()
                        .map(|l| l.snapshot.hostname.as_str())
                        .collect(),
                    Grouping::Tags => listed
                        .iter()
                        .flat_map(|l| l.snapshot.tags.iter().map(String::as_str))
                        .collect(),
                };
                // Names come from the repository: one that is not a safe
                // file name (empty, `..`, with a `/`) is left out.
                values.retain(|v| is_safe_name(v.as_bytes()));
                values.sort_unstable();
                values.dedup();
                values
                    .into_iter()
                    .map(|v| (v.as_bytes().to_vec(), What::Group(*grouping, v.to_string())))
                    .collect()
            }
            What::Group(grouping, value) => {
                let listed = self.snapshots()?;
                let mut out: Vec<_> = listed
                    .iter()
                    .filter(|l| in_group(&l.snapshot, *grouping, value))
                    .map(|l| (l.name.clone(), What::Snapshot(l.snapshot.clone())))
                    .collect();
                if !out.is_empty() {
                    out.push((
                        b"latest".to_vec(),
                        What::Latest(Some((*grouping, value.clone()))),
                    ));
                }
                out
            }
            What::Snapshot(snapshot) => self.tree_entries(&snapshot.tree)?,
            What::Node(node) => match (node.kind, &node.subtree) {
                (NodeKind::Dir, Some(tree)) => self.tree_entries(tree)?,
                _ => return Err(Error::InvalidInput("not a directory".into())),
            },
            What::Latest(_) => return Err(Error::InvalidInput("not a directory".into())),
        };
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The entry `name` of `dir`, as [`Inner::children`] lists it, found
    /// without copying the others: a directory's tree is searched (its
    /// names are sorted, §4.8), so looking up each of a million files is
    /// not a million copies of the list each.
    fn child(&self, dir: &Inode, name: &[u8]) -> Result<Option<What>> {
        let tree = match &dir.what {
            What::Snapshot(snapshot) => snapshot.tree,
            What::Node(node) => match (node.kind, &node.subtree) {
                (NodeKind::Dir, Some(tree)) => *tree,
                _ => return Err(Error::InvalidInput("not a directory".into())),
            },
            What::Snapshots => {
                let listed = self.snapshots()?;
                return Ok(listed
                    .iter()
                    .find(|l| l.name == name)
                    .map(|l| What::Snapshot(l.snapshot.clone())));
            }
            _ => {
                let children = self.children(dir)?;
                return Ok(children
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, what)| what));
            }
        };
        if !is_safe_name(name) {
            return Ok(None);
        }
        let tree = self.tree(&tree)?;
        Ok(tree
            .nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|at| What::Node(Box::new(tree.nodes[at].clone()))))
    }

    fn tree_entries(&self, tree: &TreeId) -> Result<Vec<(Vec<u8>, What)>> {
        let tree = self.tree(tree)?;
        Ok(tree
            .nodes
            .iter()
            // Tree::decode refuses such names already; a view must never
            // serve one, whatever changes there.
            .filter(|n| is_safe_name(&n.name))
            .map(|n| (n.name.clone(), What::Node(Box::new(n.clone()))))
            .collect())
    }

    fn attr(&self, inode: &Inode) -> Attr {
        let made_up = |time: Timestamp| Attr {
            ino: inode.ino,
            kind: NodeKind::Dir,
            perm: 0o555,
            uid: self.options.uid,
            gid: self.options.gid,
            size: 0,
            links: 2,
            rdev: 0,
            mtime: time,
            atime: time,
            ctime: time,
        };
        match &inode.what {
            What::Node(node) => Attr {
                ino: inode.ino,
                kind: node.kind,
                perm: node.mode & 0o7777,
                uid: node.uid,
                gid: node.gid,
                size: node.size,
                links: node.links.max(1),
                rdev: node.rdev,
                mtime: node.mtime,
                atime: node.atime,
                ctime: node.ctime,
            },
            What::Snapshot(snapshot) => made_up(snapshot.time.at),
            What::Latest(_) => Attr {
                kind: NodeKind::Symlink,
                perm: 0o777,
                size: self.latest_len(inode),
                links: 1,
                ..made_up(self.started)
            },
            _ => made_up(self.started),
        }
    }

    /// The length of a `latest` symlink's target (0 when there is none).
    fn latest_len(&self, inode: &Inode) -> u64 {
        let What::Latest(group) = &inode.what else {
            return 0;
        };
        let Ok(listed) = self.snapshots() else {
            return 0;
        };
        let newest = listed.iter().rev().find(|l| {
            group
                .as_ref()
                .is_none_or(|(g, v)| in_group(&l.snapshot, *g, v))
        });
        let prefix = if group.is_none() { 10 } else { 0 }; // "snapshots/"
        newest.map_or(0, |l| (prefix + l.name.len()) as u64)
    }

    /// The snapshot list, read again when older than the refresh interval.
    fn snapshots(&self) -> Result<Arc<Vec<Listed>>> {
        let mut listing = lock(&self.listing);
        if let Some(at) = listing.read_at
            && at.elapsed() < self.options.refresh
        {
            return Ok(listing.snapshots.clone());
        }
        // Snapshots first, then the index: a writer stores its index file
        // before its snapshot file, so every snapshot listed here finds its
        // trees in an index loaded after the listing.
        let snapshots = self
            .repo
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .snapshots()?;
        self.reload_index_if_changed()?;
        let mut listed: Vec<Listed> = snapshots
            .into_iter()
            .filter(|(_, s)| self.options.filter.matches(s))
            .map(|(id, snapshot)| Listed {
                name: snapshot_name(&id, &snapshot),
                id,
                snapshot: Arc::new(snapshot),
            })
            .collect();
        // Oldest first (as listed), so that the newest is last.
        listed.dedup_by(|a, b| a.id == b.id);
        listing.snapshots = Arc::new(listed);
        listing.read_at = Some(Instant::now());
        Ok(listing.snapshots.clone())
    }

    /// Reloads the index when the index files in storage are not the ones
    /// it was loaded from; says whether it did.
    fn reload_index_if_changed(&self) -> Result<bool> {
        let changed = {
            let repo = self.repo.read().unwrap_or_else(|e| e.into_inner());
            let mut present: Vec<IndexId> = repo
                .list(FileKind::Index)?
                .into_iter()
                .filter_map(|e| Id::from_hex(&e.name).map(IndexId))
                .collect();
            let mut loaded = repo.loaded_index_files().to_vec();
            present.sort_unstable();
            loaded.sort_unstable();
            present != loaded
        };
        if changed {
            let mut repo = self.repo.write().unwrap_or_else(|e| e.into_inner());
            repo.load_index()?;
        }
        Ok(changed)
    }

    /// `fetch` of a blob, tried once more after an index reload when it
    /// failed and the index files changed meanwhile (a prune repacked the
    /// blob, or a snapshot newer than the loaded index is read).
    fn fetch_blob(&self, key: Key, fetch: impl Fn() -> Result<Cached>) -> Result<Cached> {
        match self.cache.fetch(key, &fetch) {
            Err(e) if self.reload_index_if_changed().unwrap_or(false) => {
                self.cache.fetch(key, &fetch).map_err(|_| e)
            }
            outcome => outcome,
        }
    }

    fn tree(&self, id: &TreeId) -> Result<Arc<Tree>> {
        let key = (BlobKind::Tree, id.id());
        let value = self.fetch_blob(key, || {
            self.fetched.fetch_add(1, Ordering::Relaxed);
            let repo = self.repo.read().unwrap_or_else(|e| e.into_inner());
            let tree = repo.read_tree(id)?;
            Ok(Cached::Tree(Arc::new(tree)))
        })?;
        match value {
            Cached::Tree(tree) => Ok(tree),
            Cached::Data(_) => Err(Error::corrupt(format!("tree {id}"), "not a tree")),
        }
    }

    /// A data blob that must be `length` bytes long.
    fn data_blob(&self, blob: BlobId, length: u64) -> Result<Arc<[u8]>> {
        let key = (BlobKind::Data, blob.id());
        let value = self.fetch_blob(key, || {
            self.fetched.fetch_add(1, Ordering::Relaxed);
            let repo = self.repo.read().unwrap_or_else(|e| e.into_inner());
            let bytes = repo.read_blob(BlobKind::Data, &blob.id())?;
            Ok(Cached::Data(bytes.into()))
        })?;
        match value {
            Cached::Data(bytes) if bytes.len() as u64 == length => Ok(bytes),
            Cached::Data(bytes) => Err(Error::corrupt(
                format!("data blob {blob}"),
                format!("{} bytes, the index says {length}", bytes.len()),
            )),
            Cached::Tree(_) => Err(Error::corrupt(format!("data blob {blob}"), "not data")),
        }
    }

    /// Where each blob of a file ends, from the index's raw lengths;
    /// refuses a file whose blobs do not add up to its size.
    fn blob_ends(&self, inode: &Inode, node: &Node) -> Result<Arc<[u64]>> {
        if let Some(ends) = inode.ends.get() {
            return Ok(ends.clone());
        }
        let name = String::from_utf8_lossy(&node.name);
        let repo = self.repo.read().unwrap_or_else(|e| e.into_inner());
        let mut ends = Vec::with_capacity(node.content.len());
        let mut total: u64 = 0;
        for blob in &node.content {
            let location = repo
                .index()
                .get(BlobKind::Data, &blob.id())
                .ok_or_else(|| {
                    Error::corrupt(
                        format!("file {name}"),
                        format!("its data blob {blob} is not in the index"),
                    )
                })?;
            total += u64::from(location.raw_length);
            ends.push(total);
        }
        if total != node.size {
            return Err(Error::corrupt(
                format!("file {name}"),
                format!("its blobs hold {total} bytes, its size is {}", node.size),
            ));
        }
        Ok(inode.ends.get_or_init(|| ends.into()).clone())
    }
}

/// A cached blob: a data chunk or a decoded directory.
#[derive(Clone, Debug)]
enum Cached {
    Data(Arc<[u8]>),
    Tree(Arc<Tree>),
}

impl Cached {
    /// Roughly the memory it holds.
    fn cost(&self) -> u64 {
        match self {
            Cached::Data(bytes) => bytes.len() as u64,
            Cached::Tree(tree) => tree
                .nodes
                .iter()
                .map(|n| {
                    (std::mem::size_of::<Node>()
                        + n.name.len()
                        + n.target.len()
                        + n.user.len()
                        + n.group.len()
                        + n.content.len() * std::mem::size_of::<BlobId>()
                        + n.xattrs
                            .iter()
                            .map(|x| x.name.len() + x.value.len())
                            .sum::<usize>()) as u64
                })
                .sum(),
        }
    }
}

type Key = (BlobKind, Id);

/// Fetch in progress: the first reader fetches, the others wait for it.
type Pending = Arc<OnceLock<std::result::Result<Cached, String>>>;

/// Blobs by id, at most `capacity` bytes, the least recently used evicted
/// first. A blob is fetched once however many readers want it at the same
/// time.
#[derive(Debug)]
struct BlobCache {
    capacity: u64,
    state: Mutex<Lru>,
    pending: Mutex<HashMap<Key, Pending>>,
}

#[derive(Debug, Default)]
struct Lru {
    bytes: u64,
    tick: u64,
    entries: HashMap<Key, (Cached, u64, u64)>,
    /// Last use → key.
    order: BTreeMap<u64, Key>,
}

impl BlobCache {
    fn new(capacity: u64) -> BlobCache {
        BlobCache {
            capacity,
            state: Mutex::new(Lru::default()),
            pending: Mutex::new(HashMap::new()),
        }
    }

    fn bytes(&self) -> u64 {
        lock(&self.state).bytes
    }

    fn holds(&self, key: &Key) -> bool {
        lock(&self.state).entries.contains_key(key) || lock(&self.pending).contains_key(key)
    }

    fn get(&self, key: &Key) -> Option<Cached> {
        let mut lru = lock(&self.state);
        lru.tick += 1;
        let tick = lru.tick;
        let (value, used) = {
            let (value, _, used) = lru.entries.get_mut(key)?;
            let old = *used;
            *used = tick;
            (value.clone(), old)
        };
        lru.order.remove(&used);
        lru.order.insert(tick, *key);
        Some(value)
    }

    /// The cached value, or the one `fetch` returns (stored if it fits).
    fn fetch(&self, key: Key, fetch: impl FnOnce() -> Result<Cached>) -> Result<Cached> {
        if let Some(value) = self.get(&key) {
            return Ok(value);
        }
        let pending = lock(&self.pending).entry(key).or_default().clone();
        let mut mine = None;
        let outcome = pending.get_or_init(|| match fetch() {
            Ok(value) => {
                self.insert(key, value.clone());
                Ok(value)
            }
            Err(e) => {
                let text = e.to_string();
                mine = Some(e);
                Err(text)
            }
        });
        {
            let mut all = lock(&self.pending);
            if all.get(&key).is_some_and(|p| Arc::ptr_eq(p, &pending)) {
                all.remove(&key);
            }
        }
        match (outcome, mine) {
            (Ok(value), _) => Ok(value.clone()),
            (Err(_), Some(e)) => Err(e),
            (Err(text), None) => Err(Error::corrupt(
                format!("{} blob {}", key.0, key.1),
                text.clone(),
            )),
        }
    }

    fn insert(&self, key: Key, value: Cached) {
        let cost = value.cost();
        if cost > self.capacity {
            return;
        }
        let mut lru = lock(&self.state);
        lru.tick += 1;
        let tick = lru.tick;
        if let Some((_, old_cost, used)) = lru.entries.insert(key, (value, cost, tick)) {
            lru.bytes -= old_cost;
            lru.order.remove(&used);
        }
        lru.order.insert(tick, key);
        lru.bytes += cost;
        while lru.bytes > self.capacity {
            let Some((_, oldest)) = lru.order.pop_first() else {
                break;
            };
            if let Some((_, cost, _)) = lru.entries.remove(&oldest) {
                lru.bytes -= cost;
            }
        }
    }
}

#[cfg(test)]
mod tests;
