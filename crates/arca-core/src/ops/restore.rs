//! Restoring a snapshot into a directory.
//!
//! 1. Walk the snapshot's trees (or the subtree asked for), creating
//!    directories, files at their final length (holes), symlinks and special
//!    files, and noting where each chunk belongs. A file already in the
//!    target is, by default, compared chunk by chunk with the snapshot: only
//!    chunks that differ are planned, so a re-run after an interruption
//!    writes only what is missing.
//! 2. Group the chunks by pack, read each pack's needed ranges once, open
//!    every blob (authenticate, decompress, check its id) and write it at
//!    its offset in every file that holds it; packs are processed in
//!    parallel. Whole blocks of zeros are not written, so holes stay holes.
//! 3. Apply metadata: files and symlinks first, then directories deepest
//!    first (writing into a directory changes its mtime). With `verify`,
//!    re-read every restored file and check each chunk against its id.
//!
//! Damage stays local: a blob that fails authentication, is missing from
//! the index, or lives in a missing or truncated pack costs only the files
//! that hold it. Those are written with every chunk that can be read and
//! holes where the lost ones were, and listed in
//! [`RestoreSummary::damaged`] with the byte ranges lost; a tree that
//! cannot be read costs only that directory's contents. Failures that are
//! not damage (storage out of reach, a full target) still stop the restore.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use rayon::prelude::*;

use crate::blob::{self, BlobKind};
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId, TreeId};
use crate::index::Location;
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::target::{self, Meta};
use crate::tree::{Node, NodeKind};

/// What to do with a file that already exists in the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overwrite {
    /// Replace it.
    Always,
    /// Keep the chunks that already match the snapshot, write the rest.
    #[default]
    IfChanged,
    /// Leave it as it is.
    Never,
}

/// How to restore.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Restore only this path of the snapshot (absolute, as stored); a
    /// directory's contents go straight into the target.
    pub subpath: Option<PathBuf>,
    /// Restore only paths matching these patterns (gitignore rules, matched
    /// against the stored absolute path), and what is below them.
    pub include: Vec<String>,
    /// Leave out paths matching these patterns.
    pub exclude: Vec<String>,
    pub overwrite: Overwrite,
    /// Remove entries of restored directories that the snapshot lacks.
    pub delete: bool,
    /// Re-read what was written and check it against the snapshot's ids.
    pub verify: bool,
}

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
    pub hard_links: u64,
    pub special: u64,
    /// Total size of the restored files.
    pub bytes: u64,
    /// Bytes actually written (less than `bytes` when the target already
    /// held some of the data).
    pub bytes_written: u64,
    /// Files already identical in the target, or left alone (`Never`).
    pub files_unchanged: u64,
    /// Entries removed from the target (`delete`).
    pub deleted: u64,
    /// Files re-read and checked (`verify`).
    pub verified: u64,
    /// False when not running as root: files belong to the restoring user.
    pub owners_restored: bool,
    /// Entries left out and metadata that could not be applied.
    pub warnings: Vec<String>,
    /// Files and directories that lost data to damage in the repository,
    /// by path in the snapshot.
    pub damaged: Vec<DamagedPath>,
}

/// A restored path that lost data to damage in the repository.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DamagedPath {
    /// Its path in the snapshot.
    pub path: String,
    /// `file`: written with holes where `lost` says; `dir`: its listing
    /// could not be read, so it is restored empty.
    pub kind: &'static str,
    /// For a file, the byte ranges lost, in order.
    pub lost: Vec<LostRange>,
    /// What was wrong (the first problem met for this path).
    pub problem: String,
}

/// Bytes `offset..offset + length` of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LostRange {
    pub offset: u64,
    pub length: u64,
}

/// A piece of a file that could not be restored.
struct Lost {
    file: usize,
    offset: u64,
    length: u64,
    problem: String,
}

/// One restored entry: where it is and what its metadata needs.
struct Entry {
    dir: u32,
    name: Box<OsStr>,
    meta: Meta,
}

impl Entry {
    fn path(&self, dirs: &[PathBuf]) -> PathBuf {
        dirs[self.dir as usize].join(&*self.name)
    }
}

/// Where a blob goes: (file number, offset).
/// Most blobs have one place, kept inline; more go to a vector.
struct Targets {
    first: (u32, u64),
    more: Vec<(u32, u64)>,
}

impl Targets {
    fn len(&self) -> usize {
        1 + self.more.len()
    }

    fn iter(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        std::iter::once(&self.first)
            .chain(&self.more)
            .map(|&(file, offset)| (file as usize, offset))
    }
}

/// One pack's blobs to restore: where each is and where it goes.
type PackBlobs = HashMap<BlobId, (Span, Targets)>;

/// Where a blob lies within its pack (the pack is the map's key).
#[derive(Clone, Copy)]
struct Span {
    offset: u32,
    length: u32,
    raw_length: u32,
    compression: u8,
}

impl From<Location> for Span {
    fn from(loc: Location) -> Span {
        Span {
            offset: loc.offset,
            length: loc.length,
            raw_length: loc.raw_length,
            compression: loc.compression,
        }
    }
}

/// Reads of one pack closer than this are merged into one range.
const MERGE_GAP: u32 = 1 << 20;

/// Merged ranges stop growing at this size (a single blob may exceed it):
/// with the blob being written, about what one restoring thread holds.
const MAX_RANGE: u32 = 2 << 20;

#[derive(Default)]
struct Plan {
    /// Restored entries in walk order, with what their metadata needs.
    entries: Vec<Entry>,
    /// Directories holding entries, by number: an entry's path is its
    /// directory's joined with its name, so each full path is kept once.
    dirs: Vec<PathBuf>,
    /// The same directories' paths in the snapshot (for naming damage).
    snap_dirs: Vec<PathBuf>,
    /// Per directory: created empty by this restore, so nothing in it needs
    /// looking at before it is created.
    fresh: Vec<bool>,
    /// The number of the directory now being planned.
    current_dir: u32,
    /// Regular files by number: their place in `entries`.
    files: Vec<usize>,
    /// Per file number: `Some((size, in a fresh directory))` when its
    /// writer creates it (at its first chunk) rather than the plan.
    deferred: Vec<Option<(u64, bool)>>,
    /// Files whose existing copy in the target is kept and patched: lost
    /// ranges must be cleared in them, not just left unwritten.
    reused: HashSet<usize>,
    /// Pieces of files lost while planning (blobs missing from the index).
    lost: Vec<Lost>,
    /// Directories whose tree could not be read: (path in the snapshot,
    /// problem).
    lost_dirs: Vec<(PathBuf, String)>,
    /// Keep each file's node after planning, to verify it.
    keep_content: bool,
    /// With `keep_content`: every regular file and its node.
    checks: Vec<(PathBuf, Node)>,
    /// Per pack: blob, location, and where it goes.
    packs: HashMap<PackId, PackBlobs>,
    /// First restored path of each multiply linked file, by (device, inode).
    links: HashMap<(u64, u64), PathBuf>,
    as_root: bool,
    include: Option<Gitignore>,
    exclude: Option<Gitignore>,
    overwrite: Overwrite,
    delete: bool,
    summary: RestoreSummary,
}

fn matcher(patterns: &[String], what: &str) -> Result<Option<Gitignore>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GitignoreBuilder::new("/");
    for pattern in patterns {
        builder
            .add_line(None, pattern)
            .map_err(|e| Error::InvalidInput(format!("{what} pattern {pattern:?}: {e}")))?;
    }
    let built = builder
        .build()
        .map_err(|e| Error::InvalidInput(format!("{what} patterns: {e}")))?;
    Ok(Some(built))
}

/// Restores `snapshot` under `target` (created if missing).
pub fn restore(
    repo: &Repository,
    snapshot: &Snapshot,
    target: &Path,
    options: &RestoreOptions,
    progress: &RestoreProgress,
) -> Result<RestoreSummary> {
    std::fs::create_dir_all(target).map_err(|e| Error::target(target, e))?;
    let target_empty = std::fs::read_dir(target)
        .map_err(|e| Error::target(target, e))?
        .next()
        .is_none();
    let as_root = running_as_root();
    let mut plan = Plan {
        as_root,
        include: matcher(&options.include, "include")?,
        exclude: matcher(&options.exclude, "exclude")?,
        overwrite: options.overwrite,
        delete: options.delete,
        keep_content: options.verify,
        ..Plan::default()
    };
    plan.summary.owners_restored = as_root;
    match &options.subpath {
        None => {
            plan_tree(
                repo,
                &snapshot.tree,
                target,
                Path::new("/"),
                false,
                target_empty,
                &mut plan,
            )?;
        }
        Some(sub) => {
            let (at, node) = crate::ops::ls::find(repo, snapshot, sub)?;
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(subtree)) => {
                    plan_tree(repo, &subtree, target, &at, false, target_empty, &mut plan)?;
                }
                _ => {
                    let parent = at.parent().unwrap_or(Path::new("/")).to_path_buf();
                    plan.dirs.push(target.to_path_buf());
                    plan.snap_dirs.push(parent.clone());
                    plan.fresh.push(target_empty);
                    plan.current_dir = (plan.dirs.len() - 1) as u32;
                    plan_node(repo, node, target, &parent, false, &mut plan)?;
                }
            }
        }
    }
    let total: u64 = plan
        .packs
        .values()
        .flat_map(|blobs| blobs.values())
        .map(|(loc, targets)| u64::from(loc.raw_length) * targets.len() as u64)
        .sum();
    progress.bytes_total.store(total, Ordering::Relaxed);

    let packs: Vec<_> = plan.packs.iter().collect();
    let files: Vec<&Entry> = plan.files.iter().map(|&e| &plan.entries[e]).collect();
    let written = write_packs(repo, &packs, &files, &plan.dirs, &plan.deferred, progress)?;
    let mut lost = std::mem::take(&mut plan.lost);
    lost.extend(written.lost);
    let damaged_files = settle_lost(&plan, &files, &written.created, &lost)?;
    drop(files);
    let mut summary = std::mem::take(&mut plan.summary);
    let lost_dirs = std::mem::take(&mut plan.lost_dirs);
    summary.damaged = damaged_report(&plan, lost, lost_dirs);
    summary.bytes_written = progress.bytes_written.load(Ordering::Relaxed);

    // Files and symlinks in parallel (each is its own inode), then
    // directories deepest first, one by one.
    let dirs = &plan.dirs;
    let non_dirs: Vec<&Entry> = plan
        .entries
        .iter()
        .rev()
        .filter(|e| e.meta.kind != NodeKind::Dir)
        .collect();
    let applied: Vec<Vec<String>> = non_dirs
        .par_iter()
        .map(|e| target::apply_metadata(&e.path(dirs), &e.meta, as_root))
        .collect::<Result<_>>()?;
    summary.warnings.extend(applied.into_iter().flatten());
    let dir_entries = plan
        .entries
        .iter()
        .rev()
        .filter(|e| e.meta.kind == NodeKind::Dir);
    for e in dir_entries {
        summary
            .warnings
            .extend(target::apply_metadata(&e.path(dirs), &e.meta, as_root)?);
    }
    if options.verify {
        // Damaged files are reported as such; the rest must be exact.
        let files: Vec<&(PathBuf, Node)> = plan
            .checks
            .iter()
            .filter(|(path, _)| !damaged_files.contains(path))
            .collect();
        summary.verified = verify(repo, &files)?;
    }
    Ok(summary)
}

/// Makes every file that lost pieces whole in size, with nothing but holes
/// (or zeros) where the lost pieces were: one whose chunks were all lost
/// was never created by a writer; an existing one being patched may hold
/// old bytes there. Returns the target paths of the damaged files.
fn settle_lost(
    plan: &Plan,
    files: &[&Entry],
    created: &HashSet<usize>,
    lost: &[Lost],
) -> Result<HashSet<PathBuf>> {
    let mut damaged = HashSet::new();
    for piece in lost {
        let path = files[piece.file].path(&plan.dirs);
        if damaged.insert(path.clone())
            && let Some((size, absent)) = plan.deferred[piece.file]
            && !created.contains(&piece.file)
        {
            target::create_open(&path, size, absent)?;
        }
        if plan.reused.contains(&piece.file) {
            target::clear_range(&path, piece.offset, piece.length)?;
        }
    }
    Ok(damaged)
}

/// The damaged paths, files with their lost ranges merged, sorted by path.
fn damaged_report(
    plan: &Plan,
    lost: Vec<Lost>,
    lost_dirs: Vec<(PathBuf, String)>,
) -> Vec<DamagedPath> {
    let mut by_file: HashMap<usize, (Vec<LostRange>, String)> = HashMap::new();
    for piece in lost {
        let (ranges, _) = by_file
            .entry(piece.file)
            .or_insert_with(|| (Vec::new(), piece.problem.clone()));
        ranges.push(LostRange {
            offset: piece.offset,
            length: piece.length,
        });
    }
    let mut out: Vec<DamagedPath> = by_file
        .into_iter()
        .map(|(file, (mut ranges, problem))| {
            let entry = &plan.entries[plan.files[file]];
            let path = plan.snap_dirs[entry.dir as usize].join(&*entry.name);
            DamagedPath {
                path: path.to_string_lossy().into_owned(),
                kind: "file",
                lost: merge_ranges(&mut ranges),
                problem,
            }
        })
        .collect();
    out.extend(lost_dirs.into_iter().map(|(path, problem)| DamagedPath {
        path: path.to_string_lossy().into_owned(),
        kind: "dir",
        lost: Vec::new(),
        problem,
    }));
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// Sorts ranges and joins those that touch or overlap.
fn merge_ranges(ranges: &mut [LostRange]) -> Vec<LostRange> {
    ranges.sort_by_key(|r| r.offset);
    let mut merged: Vec<LostRange> = Vec::new();
    for r in ranges.iter() {
        match merged.last_mut() {
            Some(last) if r.offset <= last.offset + last.length => {
                let end = (r.offset + r.length).max(last.offset + last.length);
                last.length = end - last.offset;
            }
            _ => merged.push(*r),
        }
    }
    merged
}

fn running_as_root() -> bool {
    // Not the owner of /proc/self: a process that is not dumpable (as arca
    // makes itself while it holds keys) sees it owned by root.
    nix::unistd::geteuid().is_root()
}

/// Plans one directory's entries; returns whether anything was restored.
fn plan_tree(
    repo: &Repository,
    tree_id: &TreeId,
    dir: &Path,
    snap_dir: &Path,
    included: bool,
    fresh: bool,
    plan: &mut Plan,
) -> Result<bool> {
    let tree = match repo.read_tree(tree_id) {
        Ok(tree) => tree,
        Err(e) if e.is_damage() => {
            // Its contents are lost; the directory itself is restored.
            plan.lost_dirs.push((snap_dir.to_path_buf(), e.to_string()));
            return Ok(true);
        }
        Err(e) => return Err(e),
    };
    if plan.delete {
        let keep: HashSet<&[u8]> = tree.nodes.iter().map(|n| n.name.as_slice()).collect();
        delete_extra(dir, &keep, plan)?;
    }
    let parent = plan.current_dir;
    plan.dirs.push(dir.to_path_buf());
    plan.snap_dirs.push(snap_dir.to_path_buf());
    plan.fresh.push(fresh);
    plan.current_dir = (plan.dirs.len() - 1) as u32;
    let mut any = false;
    for node in tree.nodes {
        any |= plan_node(repo, node, dir, snap_dir, included, plan)?;
    }
    plan.current_dir = parent;
    Ok(any)
}

/// Removes entries of `dir` whose names the snapshot does not have.
fn delete_extra(dir: &Path, keep: &HashSet<&[u8]>, plan: &mut Plan) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::target(dir, e))?;
        if !keep.contains(entry.file_name().as_bytes()) {
            let path = entry.path();
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(|e| Error::target(&path, e))?;
            plan.summary.deleted += 1;
        }
    }
    Ok(())
}

/// Plans one entry; returns whether it (or anything below it) is restored.
fn plan_node(
    repo: &Repository,
    node: Node,
    dir: &Path,
    snap_dir: &Path,
    included: bool,
    plan: &mut Plan,
) -> Result<bool> {
    let name = OsStr::from_bytes(&node.name);
    let path = dir.join(name);
    let snap_path = snap_dir.join(name);
    let is_dir = node.kind == NodeKind::Dir;
    if plan
        .exclude
        .as_ref()
        .is_some_and(|g| g.matched(&snap_path, is_dir).is_ignore())
    {
        return Ok(false);
    }
    let included = included
        || plan
            .include
            .as_ref()
            .is_none_or(|g| g.matched(&snap_path, is_dir).is_ignore());
    let in_fresh = plan.fresh[plan.current_dir as usize];
    if is_dir {
        let existed = !in_fresh && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if in_fresh {
            target::create_new_dir(&path)?;
        } else {
            target::create_dir(&path)?;
        }
        let any = match &node.subtree {
            Some(subtree) => plan_tree(repo, subtree, &path, &snap_path, included, !existed, plan)?,
            None => false,
        };
        if !included && !any {
            // Only on the way to included entries, and none were below.
            if !existed {
                std::fs::remove_dir(&path).map_err(|e| Error::target(&path, e))?;
            }
            return Ok(false);
        }
        plan.summary.dirs += 1;
        push_entry(plan, node);
        return Ok(true);
    }
    if !included {
        return Ok(false);
    }
    let existing = if in_fresh {
        None
    } else {
        std::fs::symlink_metadata(&path).ok()
    };
    if existing.is_some() && plan.overwrite == Overwrite::Never {
        plan.summary.files_unchanged += u64::from(node.kind == NodeKind::File);
        return Ok(true);
    }
    match node.kind {
        NodeKind::File => {
            let key = (node.device, node.inode);
            if let Some(first) = plan.links.get(&key).filter(|_| node.links > 1) {
                target::create_hard_link(first, &path)?;
                plan.summary.hard_links += 1;
                return Ok(true); // one inode: its metadata is applied once
            }
            if node.links > 1 {
                plan.links.insert(key, path.clone());
            }
            plan_file(repo, &path, &node, existing.as_ref(), plan)?;
        }
        NodeKind::Symlink => {
            let same = existing
                .as_ref()
                .is_some_and(|m| m.file_type().is_symlink())
                && std::fs::read_link(&path).is_ok_and(|t| t.as_os_str().as_bytes() == node.target);
            if !(same && plan.overwrite == Overwrite::IfChanged) {
                target::create_symlink(&path, &node.target)?;
            }
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
            return Ok(false);
        }
        NodeKind::Dir => {}
    }
    if plan.keep_content && node.kind == NodeKind::File {
        plan.checks.push((path.clone(), node.clone()));
    }
    push_entry(plan, node);
    Ok(true)
}

/// Records a restored entry of the directory being planned.
fn push_entry(plan: &mut Plan, mut node: Node) {
    let name = std::ffi::OsString::from_vec(std::mem::take(&mut node.name));
    plan.entries.push(Entry {
        dir: plan.current_dir,
        name: name.into_boxed_os_str(),
        meta: Meta::from(node),
    });
}

/// Plans a regular file's chunks. With `IfChanged`, an existing file of the
/// right size (and no other names) keeps every chunk that already matches.
fn plan_file(
    repo: &Repository,
    path: &Path,
    node: &Node,
    existing: Option<&std::fs::Metadata>,
    plan: &mut Plan,
) -> Result<()> {
    let reusable = plan.overwrite == Overwrite::IfChanged
        && existing.is_some_and(|m| m.is_file() && m.nlink() == 1 && m.len() == node.size);
    let mut have: Option<File> = None;
    if reusable {
        have = File::open(path).ok();
    }
    // A file with chunks is created by the writer of its first chunk, one
    // open fewer; one with other names must exist now, for the links.
    let defer = have.is_none() && !node.content.is_empty() && node.links <= 1;
    if have.is_none() && !defer {
        target::create_file(path, node.size)?;
    }
    let number = plan.files.len();
    // plan_node adds the file's entry right after this.
    plan.files.push(plan.entries.len());
    let fresh = plan.fresh[plan.current_dir as usize];
    plan.deferred.push(defer.then_some((node.size, fresh)));
    if have.is_some() {
        plan.reused.insert(number);
    }
    let locations: Vec<Option<Location>> = node
        .content
        .iter()
        .map(|b| repo.index().get(BlobKind::Data, &b.id()))
        .collect();
    let length = |locs: &[Option<Location>]| -> u64 {
        locs.iter().flatten().map(|l| u64::from(l.raw_length)).sum()
    };
    // Blobs missing from the index have no known length: offsets are known
    // up to the first of them, and (counting back from the file's size)
    // after the last; everything between is lost.
    let mut places: Vec<(usize, u64)> = Vec::with_capacity(node.content.len());
    match (
        locations.iter().position(Option::is_none),
        locations.iter().rposition(Option::is_none),
    ) {
        (Some(first), Some(last)) => {
            let (head, tail) = (length(&locations[..first]), length(&locations[last + 1..]));
            let problem = format!(
                "data blob {} is not in the index of repository {}",
                node.content[first],
                repo.location()
            );
            let (from, to) = if head + tail <= node.size {
                (head, node.size - tail)
            } else {
                (0, node.size)
            };
            if from < to {
                plan.lost.push(Lost {
                    file: number,
                    offset: from,
                    length: to - from,
                    problem,
                });
            }
            if head + tail <= node.size {
                places.extend(offsets(&locations[..first], 0));
                let tail_places = offsets(&locations[last + 1..], to);
                places.extend(tail_places.map(|(i, at)| (i + last + 1, at)));
            }
        }
        _ => {
            let size = length(&locations);
            if size != node.size {
                return Err(Error::corrupt(
                    format!("repository {}", repo.location()),
                    format!(
                        "chunks of {} add up to {size} bytes, not {}",
                        path.display(),
                        node.size
                    ),
                ));
            }
            places.extend(offsets(&locations, 0));
        }
    }
    let mut all_present = places.len() == node.content.len();
    let mut buf = Vec::new();
    for (i, offset) in places {
        let (blob, Some(loc)) = (&node.content[i], locations[i]) else {
            continue;
        };
        let present = match have.as_ref() {
            Some(file) => {
                buf.resize(loc.raw_length as usize, 0);
                std::os::unix::fs::FileExt::read_exact_at(file, &mut buf, offset).is_ok()
                    && repo.key().blob_id(&buf) == blob.id()
            }
            None => false,
        };
        if !present {
            all_present = false;
            let target = (number as u32, offset);
            match plan.packs.entry(loc.pack).or_default().entry(*blob) {
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    o.get_mut().1.more.push(target)
                }
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert((
                        Span::from(loc),
                        Targets {
                            first: target,
                            more: Vec::new(),
                        },
                    ));
                }
            }
        }
    }
    if have.is_some() && all_present {
        plan.summary.files_unchanged += 1;
    }
    plan.summary.files += 1;
    plan.summary.bytes += node.size;
    Ok(())
}

/// The offsets of consecutive blobs starting at `start`: (their number in
/// `locations`, offset).
fn offsets(locations: &[Option<Location>], start: u64) -> impl Iterator<Item = (usize, u64)> + '_ {
    locations.iter().enumerate().scan(start, |at, (i, loc)| {
        let here = *at;
        *at += loc.map_or(0, |l| u64::from(l.raw_length));
        Some((i, here))
    })
}

/// Re-reads every restored file and checks each chunk against its id;
/// returns how many files were checked.
fn verify(repo: &Repository, files: &[&(PathBuf, Node)]) -> Result<u64> {
    let bad: Vec<String> = files
        .par_iter()
        .filter_map(|(path, node)| match verify_file(repo, path, node) {
            Ok(true) => None,
            Ok(false) => Some(path.display().to_string()),
            Err(e) => Some(format!("{}: {e}", path.display())),
        })
        .collect();
    if bad.is_empty() {
        Ok(files.len() as u64)
    } else {
        Err(Error::InvalidInput(format!(
            "verification failed for {} restored file(s): {}",
            bad.len(),
            bad.join(", ")
        )))
    }
}

fn verify_file(repo: &Repository, path: &Path, node: &Node) -> std::io::Result<bool> {
    let mut file = File::open(path)?;
    if file.metadata()?.len() != node.size {
        return Ok(false);
    }
    let mut buf = Vec::new();
    for blob in &node.content {
        let Some(loc) = repo.index().get(BlobKind::Data, &blob.id()) else {
            return Ok(false);
        };
        buf.resize(loc.raw_length as usize, 0);
        file.read_exact(&mut buf)?;
        if repo.key().blob_id(&buf) != blob.id() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Writer threads. Each file is written by one of them only, so two
/// threads never contend for one file's lock in the kernel, while the
/// decoding of blobs runs on every core.
const WRITERS: usize = 2;

/// Decoded blobs waiting for each writer.
const WRITE_QUEUE: usize = 2;

/// One blob's bytes for one place in a file.
struct WriteJob {
    file: usize,
    offset: u64,
    /// `None`: all zeros, already a hole (the file may still need creating).
    data: Option<std::sync::Arc<Vec<u8>>>,
    length: u64,
}

/// What the writing phase leaves to settle.
struct Written {
    /// Pieces of files whose blobs could not be read.
    lost: Vec<Lost>,
    /// Deferred files the writers created.
    created: HashSet<usize>,
}

/// Reads and opens the packs' blobs in parallel and hands them to the
/// writer threads, file by file.
fn write_packs(
    repo: &Repository,
    packs: &[(&PackId, &PackBlobs)],
    files: &[&Entry],
    dirs: &[PathBuf],
    deferred: &[Option<(u64, bool)>],
    progress: &RestoreProgress,
) -> Result<Written> {
    let lost = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        let (senders, writers): (Vec<_>, Vec<_>) = (0..WRITERS)
            .map(|_| {
                let (tx, rx) = crossbeam_channel::bounded::<WriteJob>(WRITE_QUEUE);
                let writer = scope.spawn(move || write_blobs(rx, files, dirs, deferred, progress));
                (tx, writer)
            })
            .collect();
        let read = packs
            .par_iter()
            .try_for_each(|(pack, blobs)| restore_pack(repo, pack, blobs, &senders, &lost));
        drop(senders);
        // A writer's own error explains why sending to it failed.
        let mut created = HashSet::new();
        for writer in writers {
            created.extend(writer.join().unwrap_or_else(|_| {
                Err(Error::InvalidInput("a restore writer panicked".into()))
            })?);
        }
        read?;
        Ok(Written {
            lost: lost.into_inner().unwrap_or_else(|e| e.into_inner()),
            created,
        })
    })
}

/// Writes blobs into their files until the senders are gone; returns the
/// deferred files it created.
fn write_blobs(
    jobs: crossbeam_channel::Receiver<WriteJob>,
    files: &[&Entry],
    dirs: &[PathBuf],
    deferred: &[Option<(u64, bool)>],
    progress: &RestoreProgress,
) -> Result<HashSet<usize>> {
    let mut open_files: HashMap<usize, (File, PathBuf)> = HashMap::new();
    // Deferred files this writer has created (it alone writes them).
    let mut created: HashSet<usize> = HashSet::new();
    for job in jobs {
        if !open_files.contains_key(&job.file) {
            if open_files.len() >= 64 {
                open_files.clear();
            }
            let path = files[job.file].path(dirs);
            let handle = match deferred[job.file] {
                Some((size, absent)) if created.insert(job.file) => {
                    target::create_open(&path, size, absent)?
                }
                _ => target::open_for_write(&path)?,
            };
            open_files.insert(job.file, (handle, path));
        }
        if let (Some((handle, path)), Some(data)) = (open_files.get(&job.file), &job.data) {
            target::write_sparse(handle, path, job.offset, data)?;
        }
        progress
            .bytes_written
            .fetch_add(job.length, Ordering::Relaxed);
    }
    Ok(created)
}

/// One pack's blobs in offset order.
type Order<'p> = [(&'p BlobId, &'p (Span, Targets))];

fn restore_pack(
    repo: &Repository,
    pack: &PackId,
    blobs: &PackBlobs,
    writers: &[crossbeam_channel::Sender<WriteJob>],
    lost: &std::sync::Mutex<Vec<Lost>>,
) -> Result<()> {
    let mut order: Vec<_> = blobs.iter().collect();
    order.sort_by_key(|(_, (loc, _))| loc.offset);
    let mut i = 0;
    while i < order.len() {
        // Extend the range while the next blob starts close enough.
        let start = order[i].1.0.offset;
        let mut end = start + order[i].1.0.length;
        let mut j = i + 1;
        while j < order.len()
            && order[j].1.0.offset <= end.saturating_add(MERGE_GAP)
            && order[j].1.0.offset + order[j].1.0.length - start <= MAX_RANGE
        {
            end = end.max(order[j].1.0.offset + order[j].1.0.length);
            j += 1;
        }
        match restore_range(repo, pack, &order[i..j], start, end, writers) {
            Ok(()) => {}
            Err((_, e)) if !e.is_damage() => return Err(e),
            // The pack is gone: every blob in it is lost.
            Err((_, e)) if e.is_missing() => note_lost(lost, &order[i..j], &e),
            Err((sent, e)) => {
                // Blob by blob, so that only what is damaged is lost.
                for one in i + sent..j {
                    let (offset, length) = (order[one].1.0.offset, order[one].1.0.length);
                    let range = &order[one..one + 1];
                    match restore_range(repo, pack, range, offset, offset + length, writers) {
                        Ok(()) => {}
                        Err((_, e)) if e.is_damage() => note_lost(lost, range, &e),
                        Err((_, e)) => return Err(e),
                    }
                }
                drop(e);
            }
        }
        i = j;
    }
    Ok(())
}

/// Records every place the blobs of `range` should have gone as lost.
fn note_lost(lost: &std::sync::Mutex<Vec<Lost>>, range: &Order<'_>, error: &Error) {
    let mut lost = lost.lock().unwrap_or_else(|e| e.into_inner());
    for (_, (loc, targets)) in range {
        for (file, offset) in targets.iter() {
            lost.push(Lost {
                file,
                offset,
                length: u64::from(loc.raw_length),
                problem: error.to_string(),
            });
        }
    }
}

/// Reads the pack bytes `start..end`, opens the blobs of `range` in them
/// and sends each to its writers. Fails at the first blob that does not
/// open, saying how many of `range` were sent before it.
fn restore_range(
    repo: &Repository,
    pack: &PackId,
    range: &Order<'_>,
    start: u32,
    end: u32,
    writers: &[crossbeam_channel::Sender<WriteJob>],
) -> std::result::Result<(), (usize, Error)> {
    let file_kind = BlobKind::Data.file_kind();
    let name = pack.to_hex();
    let bytes = crate::repository::read_range_exact(
        repo.backend(),
        file_kind,
        &name,
        u64::from(start),
        u64::from(end - start),
    )
    .map_err(|e| (0, e))?;
    for (sent, (id, (loc, targets))) in range.iter().enumerate() {
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
        )
        .map_err(|e| (sent, e))?;
        let length = plain.len() as u64;
        // All zeros: the file is created as a hole, nothing to write.
        let data = (!plain.iter().all(|&b| b == 0)).then(|| std::sync::Arc::new(plain));
        for (file, offset) in targets.iter() {
            let job = WriteJob {
                file,
                offset,
                data: data.clone(),
                length,
            };
            writers[file % writers.len()].send(job).map_err(|_| {
                (
                    sent,
                    Error::InvalidInput("the restore writers stopped".into()),
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::InitOptions;
    use crate::ops::snapshot::{Progress, SnapshotOptions, snapshot};
    use crate::repository::Owner;

    #[test]
    fn verify_catches_a_file_that_differs_from_the_snapshot() {
        let backend = Arc::new(arca_backend::MemoryBackend::new());
        let options = InitOptions {
            kdf: crate::key::TEST_KDF,
            ..InitOptions::default()
        };
        Repository::init(backend.clone(), b"pw", &options, &Owner::default()).unwrap();
        let mut repo = Repository::open(backend, b"pw").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, vec![7u8; 100_000]).unwrap();
        let snap_options = SnapshotOptions {
            paths: vec![file.clone()],
            ..SnapshotOptions::default()
        };
        let outcome = snapshot(&mut repo, &snap_options, &Progress::default()).unwrap();
        let (_, node) = crate::ops::ls::find(&repo, &outcome.snapshot, &file).unwrap();

        assert!(verify_file(&repo, &file, &node).unwrap());
        std::fs::write(&file, vec![8u8; 100_000]).unwrap();
        assert!(
            !verify_file(&repo, &file, &node).unwrap(),
            "same size, other bytes"
        );
        std::fs::write(&file, vec![7u8; 99_999]).unwrap();
        assert!(!verify_file(&repo, &file, &node).unwrap(), "shorter");
        let err = verify(&repo, &[&(file.clone(), node)]).unwrap_err();
        assert!(err.to_string().contains(file.to_str().unwrap()), "{err}");
    }
}
