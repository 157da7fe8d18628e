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
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use nix::sys::stat::FileStat;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use rayon::prelude::*;

use crate::blob::{self, BlobKind};
use crate::error::{Error, Result};
use crate::id::{BlobId, PackId, TreeId};
use crate::index::Location;
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::target::{self, FileId, Meta, Refused, Target};
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
    /// What to do with files that already exist in the target.
    pub overwrite: Overwrite,
    /// Remove entries the snapshot lacks from the restored directories at
    /// or below the snapshot's own paths (never beside them).
    pub delete: bool,
    /// Re-read what was written and check it against the snapshot's ids.
    pub verify: bool,
    /// Recreate what grants more than plain data: FIFOs and device nodes,
    /// setuid and setgid bits, and file capabilities
    /// (`security.capability`). Without it they are left out and the bits
    /// dropped, with a warning for each entry left out. Device nodes need
    /// root in any case.
    pub special: bool,
}

/// Live counters for progress.
#[derive(Debug, Default)]
pub struct RestoreProgress {
    /// File bytes written so far.
    pub bytes_written: AtomicU64,
    /// File bytes the restore writes in all (0 until planned).
    pub bytes_total: AtomicU64,
}

/// What a restore did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct RestoreSummary {
    /// Regular files restored.
    pub files: u64,
    /// Directories restored.
    pub dirs: u64,
    /// Symbolic links restored.
    pub symlinks: u64,
    /// Extra names of hard-linked files, made as links.
    pub hard_links: u64,
    /// FIFOs and device nodes restored.
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
    /// SQLite journals (`-wal`, `-shm`, `-journal`) that stood beside a
    /// restored database without being restored themselves, renamed to
    /// `NAME.before-restore` so that SQLite does not apply them to it.
    pub journals_set_aside: u64,
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
    /// Where the range starts, in bytes.
    pub offset: u64,
    /// Its length in bytes.
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
    /// For a directory, its number in [`Plan::dirs`]; for a regular file,
    /// its number in [`Plan::files`]; otherwise [`NONE`].
    own: u32,
}

const NONE: u32 = u32::MAX;

/// A directory of the restore, as planned.
struct Dir {
    /// Its path below the target ("" for the target itself).
    rel: PathBuf,
    /// Its path in the snapshot.
    snap: PathBuf,
    /// The directory it must be whenever it is reopened.
    id: FileId,
    /// Created empty by this restore: nothing in it needs looking at
    /// before an entry is created.
    fresh: bool,
}

#[derive(Default)]
struct Plan {
    /// Restored entries in walk order (post-order: a directory after
    /// everything below it), with what their metadata needs.
    entries: Vec<Entry>,
    /// Directories holding entries, by number: an entry's path is its
    /// directory's joined with its name, so each full path is kept once.
    dirs: Vec<Dir>,
    /// The number of the directory now being planned.
    current_dir: u32,
    /// Regular files by number: their place in `entries`.
    files: Vec<usize>,
    /// Per file number: the file it must be whenever it is reopened (not
    /// yet known for a file its writer creates).
    file_ids: Vec<Option<FileId>>,
    /// Per file number: `Some(size)` when its writer creates it (at its
    /// first chunk) rather than the plan; only in fresh directories.
    deferred: Vec<Option<u64>>,
    /// Files whose existing copy in the target is kept and patched: lost
    /// ranges must be cleared in them, not just left unwritten.
    reused: HashSet<usize>,
    /// Pieces of files lost while planning (blobs missing from the index).
    lost: Vec<Lost>,
    /// Directories whose tree could not be read: (path in the snapshot,
    /// problem).
    lost_dirs: Vec<(PathBuf, String)>,
    /// Entries refused because another one already has their name on the
    /// target's file system (it folds case or normalises names).
    refused: Vec<(PathBuf, String)>,
    /// Keep each file's node after planning, to verify it.
    keep_content: bool,
    /// With `keep_content`: every regular file (by number) and its node.
    checks: Vec<(usize, Node)>,
    /// Per pack: blob, location, and where it goes.
    packs: HashMap<PackId, PackBlobs>,
    /// The file number restored first of each multiply linked file, by
    /// (device, inode) in the snapshot.
    links: HashMap<(u64, u64), usize>,
    as_root: bool,
    special: bool,
    include: Option<Gitignore>,
    exclude: Option<Gitignore>,
    overwrite: Overwrite,
    delete: bool,
    /// The snapshot's own paths: `delete` acts only in directories at or
    /// below one of them, never in the directories above them that the
    /// snapshot holds only to reach them.
    own: Vec<PathBuf>,
    summary: RestoreSummary,
}

impl Plan {
    /// The path below the target of an entry `name` of directory `dir`.
    fn rel(&self, dir: u32, name: &OsStr) -> PathBuf {
        self.dirs[dir as usize].rel.join(name)
    }

    /// The directory `dir` and the name of file `file`.
    fn file_place(&self, file: usize) -> (u32, &OsStr) {
        let entry = &self.entries[self.files[file]];
        (entry.dir, &entry.name)
    }
}

/// Directory handles by number, reopened (and checked) when not at hand.
struct Handles<'p> {
    target: &'p Target,
    dirs: &'p [Dir],
    open: HashMap<u32, std::os::fd::OwnedFd>,
}

impl<'p> Handles<'p> {
    fn new(target: &'p Target, dirs: &'p [Dir]) -> Handles<'p> {
        Handles {
            target,
            dirs,
            open: HashMap::new(),
        }
    }

    fn get(&mut self, dir: u32) -> Result<&std::os::fd::OwnedFd> {
        if !self.open.contains_key(&dir) {
            if self.open.len() >= 64 {
                self.open.clear();
            }
            let d = &self.dirs[dir as usize];
            self.open.insert(dir, self.target.dir(&d.rel, d.id)?);
        }
        Ok(&self.open[&dir])
    }

    /// The path of directory `dir`, for messages.
    fn shown(&self, dir: u32) -> PathBuf {
        self.target.shown(&self.dirs[dir as usize].rel)
    }
}

/// Restores `snapshot` under `target` (created if missing).
pub fn restore(
    repo: &Repository,
    snapshot: &Snapshot,
    target_path: &Path,
    options: &RestoreOptions,
    progress: &RestoreProgress,
) -> Result<RestoreSummary> {
    let target = Target::open(target_path)?;
    let (root, root_id) = target.root()?;
    let target_empty = target.list(&root, target_path)?.is_empty();
    let as_root = running_as_root();
    let mut plan = Plan {
        as_root,
        special: options.special,
        include: matcher(&options.include, "include")?,
        exclude: matcher(&options.exclude, "exclude")?,
        overwrite: options.overwrite,
        delete: options.delete,
        own: snapshot
            .paths
            .iter()
            .map(|p| PathBuf::from(OsStr::from_bytes(p)))
            .collect(),
        keep_content: options.verify,
        ..Plan::default()
    };
    plan.summary.owners_restored = as_root;
    let top = |snap: PathBuf| Dir {
        rel: PathBuf::new(),
        snap,
        id: root_id,
        fresh: target_empty,
    };
    // Bounded depth and expansion of what is restored, before anything of
    // it is created.
    match &options.subpath {
        None => {
            crate::ops::shape::measure(repo, &snapshot.tree)?;
            plan.dirs.push(top(PathBuf::from("/")));
            plan_dir(repo, &target, &snapshot.tree, &root, 0, false, &mut plan)?;
        }
        Some(sub) => {
            let (at, node) = crate::ops::ls::find(repo, snapshot, sub)?;
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(subtree)) => {
                    crate::ops::shape::measure(repo, &subtree)?;
                    plan.dirs.push(top(at));
                    plan_dir(repo, &target, &subtree, &root, 0, false, &mut plan)?;
                }
                _ => {
                    let parent = at.parent().unwrap_or(Path::new("/")).to_path_buf();
                    plan.dirs.push(top(parent));
                    plan_node(repo, &target, node, &root, false, &mut plan)?;
                }
            }
        }
    }
    drop(root);
    let total: u64 = plan
        .packs
        .values()
        .flat_map(|blobs| blobs.values())
        .map(|(loc, targets)| u64::from(loc.raw_length) * targets.len() as u64)
        .sum();
    progress.bytes_total.store(total, Ordering::Relaxed);

    let packs: Vec<_> = plan.packs.iter().collect();
    let written = write_packs(repo, &target, &plan, &packs, progress)?;
    drop(packs);
    for (file, id) in &written.created {
        plan.file_ids[*file] = Some(*id);
    }
    let mut lost = std::mem::take(&mut plan.lost);
    lost.extend(written.lost);
    let mut refused: HashSet<usize> = HashSet::new();
    for (file, why) in written.refused {
        refused.insert(file);
        let (dir, name) = plan.file_place(file);
        let path = plan.dirs[dir as usize].snap.join(name);
        plan.refused.push((path, why));
    }
    lost.retain(|piece| !refused.contains(&piece.file));
    let damaged_files = settle_lost(&target, &mut plan, &lost)?;
    set_aside_journals(&target, &mut plan, &refused)?;
    let mut summary = std::mem::take(&mut plan.summary);
    let lost_dirs = std::mem::take(&mut plan.lost_dirs);
    summary.damaged = damaged_report(&plan, lost, lost_dirs);
    summary.bytes_written = progress.bytes_written.load(Ordering::Relaxed);

    let how = target::Apply {
        owners: as_root,
        special: plan.special,
    };
    summary
        .warnings
        .extend(apply_file_metadata(&target, &plan, &refused, how)?);
    summary
        .warnings
        .extend(apply_dir_metadata(&target, &plan, how)?);
    for (path, why) in std::mem::take(&mut plan.refused) {
        summary.damaged.push(DamagedPath {
            path: path.to_string_lossy().into_owned(),
            kind: "refused",
            lost: Vec::new(),
            problem: why,
        });
    }
    summary.damaged.sort_by(|a, b| a.path.cmp(&b.path));
    if options.verify {
        // Damaged files are reported as such; the rest must be exact.
        let files: Vec<&(usize, Node)> = plan
            .checks
            .iter()
            .filter(|(file, _)| !damaged_files.contains(file) && !refused.contains(file))
            .collect();
        summary.verified = verify(repo, &target, &plan, &files)?;
    }
    Ok(summary)
}

/// Renames aside the SQLite journals found beside each database this
/// restore wrote into a directory it did not make empty, unless the
/// restore put them there itself. They belong to the file that was there
/// before (a crashed server leaves its log behind), and SQLite would take
/// them for the restored database's and apply them to it. Each keeps its
/// bytes under the first free name of `NAME.before-restore`,
/// `NAME.before-restore-2`, ...; one that cannot be moved is a warning.
fn set_aside_journals(target: &Target, plan: &mut Plan, refused: &HashSet<usize>) -> Result<()> {
    let mut by_dir: std::collections::BTreeMap<u32, Vec<usize>> = Default::default();
    for file in 0..plan.files.len() {
        let (dir, _) = plan.file_place(file);
        if !refused.contains(&file) && !plan.dirs[dir as usize].fresh {
            by_dir.entry(dir).or_default().push(file);
        }
    }
    let restored: HashSet<(u32, &[u8])> = plan
        .entries
        .iter()
        .map(|e| (e.dir, e.name.as_bytes()))
        .collect();
    let (mut moved, mut warnings) = (0, Vec::new());
    for (dir, files) in by_dir {
        let d = &plan.dirs[dir as usize];
        let (fd, shown) = (target.dir(&d.rel, d.id)?, target.shown(&d.rel));
        let present: HashSet<std::ffi::OsString> = target.list(&fd, &shown)?.into_iter().collect();
        for file in files {
            let (_, name) = plan.file_place(file);
            let journals: Vec<std::ffi::OsString> = crate::sqlite::JOURNAL_SUFFIXES
                .iter()
                .map(|suffix| with_suffix(name, suffix))
                .filter(|j| present.contains(j) && !restored.contains(&(dir, j.as_bytes())))
                .filter(|j| target.stat(&fd, j).is_some_and(|s| !target::is_dir(&s)))
                .collect();
            let database = || {
                let id = plan.file_ids[file]?;
                let file = target.open_file(&fd, &shown, name, id).ok()?;
                let mut head = [0u8; crate::sqlite::HEADER_LEN];
                std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 0).ok()?;
                crate::sqlite::page_size(&head)
            };
            if journals.is_empty() || database().is_none() {
                continue;
            }
            for journal in journals {
                let path = shown.join(&journal);
                match set_aside(target, &fd, &shown, &journal) {
                    Ok(aside) => {
                        moved += 1;
                        warnings.push(format!(
                            "{}: a journal beside the restored SQLite database, not from the snapshot (SQLite would apply it to the restored database): renamed to {}",
                            path.display(),
                            aside.to_string_lossy()
                        ));
                    }
                    Err(e) => warnings.push(format!(
                        "{}: a journal beside the restored SQLite database, not from the snapshot, could not be renamed ({e}): remove it before opening the database",
                        path.display()
                    )),
                }
            }
        }
    }
    plan.summary.journals_set_aside += moved;
    plan.summary.warnings.extend(warnings);
    Ok(())
}

/// `name` followed by `suffix`.
fn with_suffix(name: &OsStr, suffix: &str) -> std::ffi::OsString {
    let mut out = name.to_os_string();
    out.push(suffix);
    out
}

/// Renames `name` in `dir` to the first free `NAME.before-restore[-N]`;
/// returns that name.
fn set_aside(
    target: &Target,
    dir: &OwnedFd,
    shown: &Path,
    name: &OsStr,
) -> Result<std::ffi::OsString> {
    for n in 1..=100 {
        let suffix = match n {
            1 => ".before-restore".to_string(),
            n => format!(".before-restore-{n}"),
        };
        let aside = with_suffix(name, &suffix);
        if target.rename_new(dir, shown, name, &aside)? {
            return Ok(aside);
        }
    }
    Err(Error::target(
        shown.join(name),
        std::io::Error::other("no free name to rename it to"),
    ))
}

/// File and symlink metadata, in parallel, one directory's entries at a
/// time through one handle of it.
fn apply_file_metadata(
    target: &Target,
    plan: &Plan,
    refused: &HashSet<usize>,
    how: target::Apply,
) -> Result<Vec<String>> {
    let mut by_dir: HashMap<u32, Vec<&Entry>> = HashMap::new();
    for e in &plan.entries {
        let skip = e.meta.kind == NodeKind::Dir
            || (e.meta.kind == NodeKind::File && refused.contains(&(e.own as usize)));
        if !skip {
            by_dir.entry(e.dir).or_default().push(e);
        }
    }
    let groups: Vec<(u32, Vec<&Entry>)> = by_dir.into_iter().collect();
    let applied: Vec<Vec<String>> = groups
        .par_iter()
        .map(|(dir, entries)| {
            let mut handles = Handles::new(target, &plan.dirs);
            let shown = handles.shown(*dir);
            let fd = handles.get(*dir)?;
            // Made by this restore and still 0700 until its own metadata
            // comes, after this: no one else can change its entries.
            let private = plan.dirs[*dir as usize].fresh && *dir != 0;
            let mut warnings = Vec::new();
            for e in entries {
                let id = if e.meta.kind == NodeKind::File {
                    plan.file_ids[e.own as usize]
                } else {
                    None
                };
                warnings
                    .extend(target.apply_metadata(fd, &shown, &e.name, &e.meta, id, how, private)?);
            }
            Ok(warnings)
        })
        .collect::<Result<_>>()?;
    Ok(applied.into_iter().flatten().collect())
}

/// Directory metadata, deepest first (the entries are in post-order), each
/// through a handle of the directory itself, checked to be the one this
/// restore made: its owner gets it back only when everything below it is
/// finished, and nothing it could have swapped in is touched.
fn apply_dir_metadata(target: &Target, plan: &Plan, how: target::Apply) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    for e in plan.entries.iter().filter(|e| e.meta.kind == NodeKind::Dir) {
        let dir = &plan.dirs[e.own as usize];
        let fd = target.dir(&dir.rel, dir.id)?;
        warnings.extend(target.apply_dir_metadata(&fd, &target.shown(&dir.rel), &e.meta, how)?);
    }
    Ok(warnings)
}

/// Makes every file that lost pieces whole in size, with nothing but holes
/// (or zeros) where the lost pieces were: one whose chunks were all lost
/// was never created by a writer; an existing one being patched may hold
/// old bytes there. Returns the numbers of the damaged files.
fn settle_lost(target: &Target, plan: &mut Plan, lost: &[Lost]) -> Result<HashSet<usize>> {
    let mut damaged = HashSet::new();
    for piece in lost {
        let (dir, name) = plan.file_place(piece.file);
        let name = name.to_os_string();
        let d = &plan.dirs[dir as usize];
        let fd = target.dir(&d.rel, d.id)?;
        let shown = target.shown(&d.rel);
        if damaged.insert(piece.file)
            && let Some(size) = plan.deferred[piece.file]
            && plan.file_ids[piece.file].is_none()
        {
            match target.create_file(&fd, &shown, &name, size, true) {
                Ok((_, id)) => plan.file_ids[piece.file] = Some(id),
                Err(Refused::Collision(why)) => {
                    return Err(Error::target(shown.join(&name), std::io::Error::other(why)));
                }
                Err(Refused::Error(e)) => return Err(e),
            }
        }
        if plan.reused.contains(&piece.file)
            && let Some(id) = plan.file_ids[piece.file]
        {
            target.clear_range(&fd, &shown, &name, id, piece.offset, piece.length)?;
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
            let (dir, name) = plan.file_place(file);
            let path = plan.dirs[dir as usize].snap.join(name);
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

pub(crate) fn matcher(patterns: &[String], what: &str) -> Result<Option<Gitignore>> {
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

pub(crate) fn running_as_root() -> bool {
    // Not the owner of /proc/self: a process that is not dumpable (as arca
    // makes itself while it holds keys) sees it owned by root.
    nix::unistd::geteuid().is_root()
}

/// Plans one directory (number `number`, open as `fd`): its entries are
/// created through `fd`. Returns whether anything was restored.
fn plan_dir(
    repo: &Repository,
    target: &Target,
    tree_id: &TreeId,
    fd: &OwnedFd,
    number: u32,
    included: bool,
    plan: &mut Plan,
) -> Result<bool> {
    let snap_dir = plan.dirs[number as usize].snap.clone();
    let tree = match repo.read_tree(tree_id) {
        Ok(tree) => tree,
        Err(e) if e.is_damage() => {
            // Its contents are lost; the directory itself is restored.
            plan.lost_dirs.push((snap_dir, e.to_string()));
            return Ok(true);
        }
        Err(e) => return Err(e),
    };
    if plan.delete && plan.own.iter().any(|own| snap_dir.starts_with(own)) {
        let keep: HashSet<&[u8]> = tree.nodes.iter().map(|n| n.name.as_slice()).collect();
        delete_extra(target, fd, number, &keep, plan)?;
    }
    let parent = plan.current_dir;
    plan.current_dir = number;
    let mut any = false;
    for node in tree.nodes {
        any |= plan_node(repo, target, node, fd, included, plan)?;
    }
    plan.current_dir = parent;
    Ok(any)
}

/// Removes entries of directory `number` whose names the snapshot lacks.
fn delete_extra(
    target: &Target,
    fd: &OwnedFd,
    number: u32,
    keep: &HashSet<&[u8]>,
    plan: &mut Plan,
) -> Result<()> {
    if plan.dirs[number as usize].fresh {
        return Ok(());
    }
    let shown = target.shown(&plan.dirs[number as usize].rel);
    for name in target.list(fd, &shown)? {
        if !keep.contains(name.as_bytes()) {
            target.remove(fd, &shown, &name)?;
            plan.summary.deleted += 1;
        }
    }
    Ok(())
}

/// Whether the include filter takes anything below directory `node` (at
/// `snap_path` in the snapshot) that the exclude filter leaves. A tree that
/// cannot be read counts as taken: the restore then reports it lost.
fn includes_below(repo: &Repository, node: &Node, snap_path: &Path, plan: &Plan) -> Result<bool> {
    let Some(subtree) = &node.subtree else {
        return Ok(false);
    };
    let tree = match repo.read_tree(subtree) {
        Ok(tree) => tree,
        Err(e) if e.is_damage() => return Ok(true),
        Err(e) => return Err(e),
    };
    for child in &tree.nodes {
        let path = snap_path.join(OsStr::from_bytes(&child.name));
        let is_dir = child.kind == NodeKind::Dir;
        if plan
            .exclude
            .as_ref()
            .is_some_and(|g| g.matched(&path, is_dir).is_ignore())
        {
            continue;
        }
        if plan
            .include
            .as_ref()
            .is_none_or(|g| g.matched(&path, is_dir).is_ignore())
            || (is_dir && includes_below(repo, child, &path, plan)?)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Records an entry refused for its name (see [`Refused::Collision`]).
fn refuse(plan: &mut Plan, name: &OsStr, why: String) {
    let path = plan.dirs[plan.current_dir as usize].snap.join(name);
    plan.refused.push((path, why));
}

/// Plans one entry of the current directory (open as `dir_fd`); returns
/// whether it (or anything below it) is restored.
fn plan_node(
    repo: &Repository,
    target: &Target,
    node: Node,
    dir_fd: &OwnedFd,
    included: bool,
    plan: &mut Plan,
) -> Result<bool> {
    let name = OsStr::from_bytes(&node.name).to_os_string();
    let here = plan.current_dir;
    let (fresh, shown, snap_path) = {
        let d = &plan.dirs[here as usize];
        (d.fresh, target.shown(&d.rel), d.snap.join(&name))
    };
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
    if is_dir {
        if !included
            && !fresh
            && target
                .stat(dir_fd, &name)
                .is_some_and(|s| !target::is_dir(&s))
            && !includes_below(repo, &node, &snap_path, plan)?
        {
            // Something else stands where a directory the filter leaves
            // out would be: not the restore's to replace.
            return Ok(false);
        }
        let (fd, id, existed) = match target.mkdir(dir_fd, &shown, &name, fresh) {
            Ok(made) => made,
            Err(Refused::Collision(why)) => {
                refuse(plan, &name, why);
                return Ok(false);
            }
            Err(Refused::Error(e)) => return Err(e),
        };
        let number = plan.dirs.len() as u32;
        plan.dirs.push(Dir {
            rel: plan.rel(here, &name),
            snap: snap_path,
            id,
            fresh: !existed,
        });
        let any = match &node.subtree {
            Some(subtree) => plan_dir(repo, target, subtree, &fd, number, included, plan)?,
            None => false,
        };
        drop(fd);
        if !included && !any {
            // Only on the way to included entries, and none were below.
            if !existed {
                target.remove(dir_fd, &shown, &name)?;
            }
            return Ok(false);
        }
        plan.summary.dirs += 1;
        push_entry(plan, node, number);
        return Ok(true);
    }
    if !included {
        return Ok(false);
    }
    let existing = if fresh {
        None
    } else {
        target.stat(dir_fd, &name)
    };
    if existing.is_some() && plan.overwrite == Overwrite::Never {
        plan.summary.files_unchanged += u64::from(node.kind == NodeKind::File);
        return Ok(true);
    }
    let made = match node.kind {
        NodeKind::File => {
            let key = (node.device, node.inode);
            if let Some(&first) = plan.links.get(&key).filter(|_| node.links > 1) {
                let (first_dir, first_name) = plan.file_place(first);
                let first_name = first_name.to_os_string();
                let first_id = plan.file_ids[first];
                let d = &plan.dirs[first_dir as usize];
                let first_fd = target.dir(&d.rel, d.id)?;
                let linked = match first_id {
                    Some(id) => {
                        target.hard_link(&first_fd, &first_name, id, dir_fd, &shown, &name, fresh)
                    }
                    None => Ok(()),
                };
                if linked.is_ok() {
                    plan.summary.hard_links += 1;
                }
                // One inode: its metadata is applied once.
                return settle(plan, &name, linked.map(|()| true));
            }
            let planned = plan_file(repo, target, dir_fd, &shown, &name, &node, existing, plan);
            match settle(plan, &name, planned)? {
                false => return Ok(false),
                true => {
                    if node.links > 1 {
                        plan.links.insert(key, plan.files.len() - 1);
                    }
                    Ok(())
                }
            }
        }
        NodeKind::Symlink => {
            let same = existing
                .as_ref()
                .is_some_and(|s| s.st_mode & nix::libc::S_IFMT == nix::libc::S_IFLNK)
                && target.read_link(dir_fd, &name).as_deref() == Some(node.target.as_slice());
            plan.summary.symlinks += 1;
            if same && plan.overwrite == Overwrite::IfChanged {
                Ok(())
            } else {
                target.symlink(dir_fd, &shown, &name, &node.target, fresh)
            }
        }
        NodeKind::Fifo | NodeKind::Chardev | NodeKind::Blockdev if !plan.special => {
            plan.summary.warnings.push(format!(
                "{}: not restored: special files are restored only as root and without --no-special",
                shown.join(&name).display()
            ));
            return Ok(false);
        }
        NodeKind::Fifo => {
            plan.summary.special += 1;
            target.special(dir_fd, &shown, &name, &node, fresh)
        }
        NodeKind::Chardev | NodeKind::Blockdev if plan.as_root => {
            plan.summary.special += 1;
            target.special(dir_fd, &shown, &name, &node, fresh)
        }
        NodeKind::Chardev | NodeKind::Blockdev | NodeKind::Socket => {
            let why = if node.kind == NodeKind::Socket {
                "sockets cannot be restored"
            } else {
                "device nodes need root"
            };
            plan.summary.warnings.push(format!(
                "{}: not restored: {why}",
                shown.join(&name).display()
            ));
            return Ok(false);
        }
        NodeKind::Dir => Ok(()),
    };
    if !settle(plan, &name, made.map(|()| true))? {
        return Ok(false);
    }
    let own = if node.kind == NodeKind::File {
        (plan.files.len() - 1) as u32
    } else {
        NONE
    };
    if plan.keep_content && node.kind == NodeKind::File {
        plan.checks.push((own as usize, node.clone()));
    }
    push_entry(plan, node, own);
    Ok(true)
}

/// A creation's outcome: a collision is recorded and reads as "not
/// restored"; any other failure stops the restore.
fn settle(plan: &mut Plan, name: &OsStr, made: target::Made<bool>) -> Result<bool> {
    match made {
        Ok(done) => Ok(done),
        Err(Refused::Collision(why)) => {
            refuse(plan, name, why);
            Ok(false)
        }
        Err(Refused::Error(e)) => Err(e),
    }
}

/// Records a restored entry of the directory being planned.
fn push_entry(plan: &mut Plan, mut node: Node, own: u32) {
    let name = std::ffi::OsString::from_vec(std::mem::take(&mut node.name));
    plan.entries.push(Entry {
        dir: plan.current_dir,
        name: name.into_boxed_os_str(),
        meta: Meta::from(node),
        own,
    });
}

/// Plans a regular file's chunks. With `IfChanged`, an existing file of the
/// right size (and no other names) keeps every chunk that already matches.
/// Returns false when the file was refused.
#[allow(clippy::too_many_arguments)]
fn plan_file(
    repo: &Repository,
    target: &Target,
    dir_fd: &OwnedFd,
    shown: &Path,
    name: &OsStr,
    node: &Node,
    existing: Option<FileStat>,
    plan: &mut Plan,
) -> target::Made<bool> {
    let reusable = plan.overwrite == Overwrite::IfChanged
        && existing.is_some_and(|s| {
            s.st_mode & nix::libc::S_IFMT == nix::libc::S_IFREG
                && s.st_nlink == 1
                && s.st_size as u64 == node.size
        });
    let mut have: Option<File> = None;
    let mut id = None;
    if reusable && let Some((file, stat)) = target.open_existing(dir_fd, name) {
        id = Some((stat.st_dev, stat.st_ino));
        have = Some(file);
    }
    let fresh = plan.dirs[plan.current_dir as usize].fresh;
    // A file with chunks in a directory this restore made empty is created
    // by the writer of its first chunk, one open fewer; one with other
    // names must exist now, for the links.
    let defer = fresh && have.is_none() && !node.content.is_empty() && node.links <= 1;
    if have.is_none() && !defer {
        id = Some(target.create_file(dir_fd, shown, name, node.size, fresh)?.1);
    }
    let number = plan.files.len();
    // plan_node adds the file's entry right after this.
    plan.files.push(plan.entries.len());
    plan.file_ids.push(id);
    plan.deferred.push(defer.then_some(node.size));
    if have.is_some() {
        plan.reused.insert(number);
    }
    plan_chunks(repo, shown, name, node, have.as_ref(), number, plan)?;
    plan.summary.files += 1;
    plan.summary.bytes += node.size;
    Ok(true)
}

/// Plans where each chunk of file `number` goes, leaving out those that
/// `have` (the existing copy) already holds.
fn plan_chunks(
    repo: &Repository,
    shown: &Path,
    name: &OsStr,
    node: &Node,
    have: Option<&File>,
    number: usize,
    plan: &mut Plan,
) -> Result<()> {
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
                        shown.join(name).display(),
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
        let present = match have {
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
fn verify(
    repo: &Repository,
    target: &Target,
    plan: &Plan,
    files: &[&(usize, Node)],
) -> Result<u64> {
    let bad: Vec<String> = files
        .par_iter()
        .filter_map(|(file, node)| {
            let (dir, name) = plan.file_place(*file);
            let d = &plan.dirs[dir as usize];
            let shown = target.shown(&d.rel).join(name);
            let opened = plan.file_ids[*file].ok_or_else(|| {
                Error::target(&shown, std::io::Error::other("it was never created"))
            });
            let checked = opened.and_then(|id| {
                let fd = target.dir(&d.rel, d.id)?;
                let file = target.open_file(&fd, &target.shown(&d.rel), name, id)?;
                verify_file(repo, file, node).map_err(|e| Error::target(&shown, e))
            });
            match checked {
                Ok(true) => None,
                Ok(false) => Some(shown.display().to_string()),
                Err(e) => Some(format!("{}: {e}", shown.display())),
            }
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

fn verify_file(repo: &Repository, mut file: File, node: &Node) -> std::io::Result<bool> {
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
    /// Deferred files the writers created, and what they are.
    created: HashMap<usize, FileId>,
    /// Deferred files refused for their names, and why.
    refused: Vec<(usize, String)>,
}

/// What one writer thread leaves.
#[derive(Default)]
struct Wrote {
    created: HashMap<usize, FileId>,
    refused: Vec<(usize, String)>,
}

/// Reads and opens the packs' blobs in parallel and hands them to the
/// writer threads, file by file.
fn write_packs(
    repo: &Repository,
    target: &Target,
    plan: &Plan,
    packs: &[(&PackId, &PackBlobs)],
    progress: &RestoreProgress,
) -> Result<Written> {
    let lost = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        let (senders, writers): (Vec<_>, Vec<_>) = (0..WRITERS)
            .map(|_| {
                let (tx, rx) = crossbeam_channel::bounded::<WriteJob>(WRITE_QUEUE);
                let writer = scope.spawn(move || write_blobs(rx, target, plan, progress));
                (tx, writer)
            })
            .collect();
        let read = packs
            .par_iter()
            .try_for_each(|(pack, blobs)| restore_pack(repo, pack, blobs, &senders, &lost));
        drop(senders);
        // A writer's own error explains why sending to it failed.
        let mut created = HashMap::new();
        let mut refused = Vec::new();
        for writer in writers {
            let wrote = writer
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("a restore writer panicked".into())))?;
            created.extend(wrote.created);
            refused.extend(wrote.refused);
        }
        read?;
        Ok(Written {
            lost: lost.into_inner().unwrap_or_else(|e| e.into_inner()),
            created,
            refused,
        })
    })
}

/// Writes blobs into their files until the senders are gone; returns the
/// deferred files it created (and those refused for their names).
fn write_blobs(
    jobs: crossbeam_channel::Receiver<WriteJob>,
    target: &Target,
    plan: &Plan,
    progress: &RestoreProgress,
) -> Result<Wrote> {
    let mut handles = Handles::new(target, &plan.dirs);
    let mut open_files: HashMap<usize, (File, PathBuf)> = HashMap::new();
    let mut wrote = Wrote::default();
    let mut refused: HashSet<usize> = HashSet::new();
    for job in jobs {
        progress
            .bytes_written
            .fetch_add(job.length, Ordering::Relaxed);
        if refused.contains(&job.file) {
            continue;
        }
        if !open_files.contains_key(&job.file) {
            if open_files.len() >= 64 {
                open_files.clear();
            }
            let (dir, name) = plan.file_place(job.file);
            let shown = handles.shown(dir);
            let fd = handles.get(dir)?;
            let known = wrote
                .created
                .get(&job.file)
                .copied()
                .or(plan.file_ids[job.file]);
            let handle = match (plan.deferred[job.file], known) {
                (_, Some(id)) => target.open_for_write(fd, &shown, name, id)?,
                (Some(size), None) => match target.create_file(fd, &shown, name, size, true) {
                    Ok((file, id)) => {
                        wrote.created.insert(job.file, id);
                        file
                    }
                    Err(Refused::Collision(why)) => {
                        refused.insert(job.file);
                        wrote.refused.push((job.file, why));
                        continue;
                    }
                    Err(Refused::Error(e)) => return Err(e),
                },
                (None, None) => {
                    return Err(Error::target(
                        shown.join(name),
                        std::io::Error::other("planned but never created"),
                    ));
                }
            };
            open_files.insert(job.file, (handle, shown.join(name)));
        }
        if let (Some((handle, path)), Some(data)) = (open_files.get(&job.file), &job.data) {
            target::write_sparse(handle, path, job.offset, data)?;
        }
    }
    Ok(wrote)
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
            writers[file % writers.len()]
                .send(job)
                .map_err(|_| (sent, Error::Internal("the restore writers stopped".into())))?;
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

        let open = || File::open(&file).unwrap();
        assert!(verify_file(&repo, open(), &node).unwrap());
        std::fs::write(&file, vec![8u8; 100_000]).unwrap();
        assert!(
            !verify_file(&repo, open(), &node).unwrap(),
            "same size, other bytes"
        );
        std::fs::write(&file, vec![7u8; 99_999]).unwrap();
        assert!(!verify_file(&repo, open(), &node).unwrap(), "shorter");
    }
}
