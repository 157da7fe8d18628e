//! Restoring a snapshot into a directory.
//!
//! 1. Walk the snapshot's trees, creating directories, empty files of the
//!    right length, and symlinks, and noting where each chunk belongs.
//! 2. Group the chunks by pack, read each pack's needed ranges once, open
//!    every blob (authenticate, decompress, check its id) and write it at its
//!    offset in every file that holds it; packs are processed in parallel.
//!    All-zero chunks are not written, so holes stay holes.
//! 3. Apply metadata: files and symlinks first, then directories deepest
//!    first (writing into a directory changes its mtime).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::blob::{self, BlobKind};
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId, TreeId};
use crate::index::Location;
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::target;
use crate::tree::{Node, NodeKind};

/// Live counters for progress.
#[derive(Debug, Default)]
pub struct RestoreProgress {
    pub bytes_written: AtomicU64,
    pub bytes_total: AtomicU64,
}

/// What a restore did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RestoreSummary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub hard_links: u64,
    pub special: u64,
    /// False when not running as root: files belong to the restoring user.
    pub owners_restored: bool,
    /// Entries left out and metadata that could not be applied.
    pub warnings: Vec<String>,
}

/// Where a blob goes: (file number, offset).
type Targets = Vec<(usize, u64)>;

/// Reads of one pack closer than this are merged into one range.
const MERGE_GAP: u32 = 1 << 20;

#[derive(Default)]
struct Plan {
    /// Restored entries in walk order, with their node.
    entries: Vec<(PathBuf, Node)>,
    /// Paths of regular files by number.
    files: Vec<PathBuf>,
    /// Per pack: blob, location, and where it goes.
    packs: HashMap<PackId, HashMap<BlobId, (Location, Targets)>>,
    /// First restored path of each multiply linked file, by (device, inode).
    links: HashMap<(u64, u64), PathBuf>,
    as_root: bool,
    summary: RestoreSummary,
}

/// Restores `snapshot` under `target` (created if missing).
pub fn restore(
    repo: &Repository,
    snapshot: &Snapshot,
    target: &Path,
    progress: &RestoreProgress,
) -> Result<RestoreSummary> {
    std::fs::create_dir_all(target).map_err(|e| Error::target(target, e))?;
    let as_root = running_as_root();
    let mut plan = Plan {
        as_root,
        ..Plan::default()
    };
    plan.summary.owners_restored = as_root;
    plan_tree(repo, &snapshot.tree, target, &mut plan)?;
    progress
        .bytes_total
        .store(plan.summary.bytes, Ordering::Relaxed);

    let packs: Vec<_> = plan.packs.iter().collect();
    packs
        .par_iter()
        .try_for_each(|(pack, blobs)| restore_pack(repo, pack, blobs, &plan.files, progress))?;

    let mut summary = plan.summary;
    let non_dirs = plan
        .entries
        .iter()
        .rev()
        .filter(|(_, n)| n.kind != NodeKind::Dir);
    let dirs = plan
        .entries
        .iter()
        .rev()
        .filter(|(_, n)| n.kind == NodeKind::Dir);
    for (path, node) in non_dirs.chain(dirs) {
        summary
            .warnings
            .extend(target::apply_metadata(path, node, as_root)?);
    }
    Ok(summary)
}

fn running_as_root() -> bool {
    // The owner of /proc/self is the process's effective uid.
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn plan_tree(repo: &Repository, tree_id: &TreeId, dir: &Path, plan: &mut Plan) -> Result<()> {
    let tree = repo.read_tree(tree_id)?;
    for node in tree.nodes {
        let path = dir.join(OsStr::from_bytes(&node.name));
        match node.kind {
            NodeKind::Dir => {
                target::create_dir(&path)?;
                plan.summary.dirs += 1;
                if let Some(subtree) = &node.subtree {
                    plan_tree(repo, subtree, &path, plan)?;
                }
            }
            NodeKind::File => {
                let key = (node.device, node.inode);
                match plan.links.get(&key).filter(|_| node.links > 1) {
                    Some(first) => {
                        target::create_hard_link(first, &path)?;
                        plan.summary.hard_links += 1;
                        continue; // one inode: its metadata is applied once
                    }
                    None => {
                        if node.links > 1 {
                            plan.links.insert(key, path.clone());
                        }
                        plan_file(repo, &path, &node, plan)?;
                    }
                }
            }
            NodeKind::Symlink => {
                target::create_symlink(&path, &node.target)?;
                plan.summary.symlinks += 1;
            }
            NodeKind::Fifo => {
                target::create_special(&path, &node)?;
                plan.summary.special += 1;
            }
            NodeKind::Chardev | NodeKind::Blockdev if plan.as_root => {
                target::create_special(&path, &node)?;
                plan.summary.special += 1;
            }
            NodeKind::Chardev | NodeKind::Blockdev | NodeKind::Socket => {
                let why = if node.kind == NodeKind::Socket {
                    "sockets cannot be restored"
                } else {
                    "device nodes need root"
                };
                plan.summary
                    .warnings
                    .push(format!("{}: not restored: {why}", path.display()));
                continue;
            }
        }
        plan.entries.push((path, node));
    }
    Ok(())
}

fn plan_file(repo: &Repository, path: &Path, node: &Node, plan: &mut Plan) -> Result<()> {
    target::create_file(path, node.size)?;
    let number = plan.files.len();
    plan.files.push(path.to_path_buf());
    let mut offset = 0u64;
    for blob in &node.content {
        let loc = repo
            .index()
            .get(BlobKind::Data, &blob.id())
            .ok_or_else(|| {
                Error::corrupt(
                    format!("repository {}", repo.location()),
                    format!("data blob {blob} of {} is not in the index", path.display()),
                )
            })?;
        plan.packs
            .entry(loc.pack)
            .or_default()
            .entry(*blob)
            .or_insert_with(|| (loc, Vec::new()))
            .1
            .push((number, offset));
        offset += u64::from(loc.raw_length);
    }
    if offset != node.size {
        return Err(Error::corrupt(
            format!("repository {}", repo.location()),
            format!(
                "chunks of {} add up to {offset} bytes, not {}",
                path.display(),
                node.size
            ),
        ));
    }
    plan.summary.files += 1;
    plan.summary.bytes += node.size;
    Ok(())
}

fn restore_pack(
    repo: &Repository,
    pack: &PackId,
    blobs: &HashMap<BlobId, (Location, Targets)>,
    files: &[PathBuf],
    progress: &RestoreProgress,
) -> Result<()> {
    let mut order: Vec<_> = blobs.iter().collect();
    order.sort_by_key(|(_, (loc, _))| loc.offset);
    let file_kind = BlobKind::Data.file_kind();
    let name = pack.to_hex();
    let mut open_files: HashMap<usize, File> = HashMap::new();
    let mut i = 0;
    while i < order.len() {
        // Extend the range while the next blob starts close enough.
        let start = order[i].1.0.offset;
        let mut end = start + order[i].1.0.length;
        let mut j = i + 1;
        while j < order.len() && order[j].1.0.offset <= end.saturating_add(MERGE_GAP) {
            end = end.max(order[j].1.0.offset + order[j].1.0.length);
            j += 1;
        }
        let bytes = repo.backend().read_range(
            file_kind,
            &name,
            u64::from(start),
            u64::from(end - start),
        )?;
        for (id, (loc, targets)) in &order[i..j] {
            let at = (loc.offset - start) as usize;
            let stored = &bytes[at..at + loc.length as usize];
            let plain = blob::open(
                repo.key(),
                BlobKind::Data,
                &id.id(),
                loc.compression,
                loc.raw_length,
                stored,
                &|| format!("{file_kind} {name}"),
            )?;
            let zero = plain.iter().all(|&b| b == 0);
            for &(file, offset) in targets {
                if !zero {
                    let path = &files[file];
                    let handle = match open_files.entry(file) {
                        std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
                        std::collections::hash_map::Entry::Vacant(v) => {
                            v.insert(target::open_for_write(path)?)
                        }
                    };
                    target::write_sparse(handle, path, offset, &plain)?;
                }
                progress
                    .bytes_written
                    .fetch_add(plain.len() as u64, Ordering::Relaxed);
            }
        }
        if open_files.len() > 64 {
            open_files.clear();
        }
        i = j;
    }
    Ok(())
}
