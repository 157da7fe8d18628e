//! What a restore would do, without doing it (`restore --dry-run`).
//!
//! The preview walks the snapshot's trees against the target exactly as
//! the restore plans them ([`crate::restore`]): the same placement (every
//! entry under its full stored path, or a `SNAP:PATH`'s contents straight
//! into the target), the same include and exclude matching, the same
//! `--overwrite` rules (with `if-changed`, an existing regular file of the
//! right size is compared chunk by chunk and only differing chunks count),
//! and `--delete` only in the directories at or below the snapshot's own
//! paths. It changes nothing: the target is not even created, and it is
//! read only through directory handles (`openat` with `O_NOFOLLOW |
//! O_DIRECTORY`, `fstatat` without following links). An entry that is not
//! a directory where the snapshot has one (a symlink in particular) is
//! never entered: the restore would replace it, so the preview reports it
//! overwritten and everything below as new.
//!
//! Not foreseen: names the target's file system folds together (the
//! restore refuses them when it meets them) and damage in data packs (the
//! restore names what it loses); a tree that cannot be read is listed in
//! [`RestorePreview::damaged`], as the restore would restore it empty.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use ignore::gitignore::Gitignore;
use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::TreeId;
use crate::ops::restore::{Overwrite, RestoreOptions, matcher, running_as_root};
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::target;
use crate::tree::{Node, NodeKind};

/// What a restore would do to one path of the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Create it: nothing is there.
    Write,
    /// Replace what is there, or (a file kept with `if-changed`) write the
    /// chunks that differ.
    Overwrite,
    /// Remove it, with everything below it (`delete`).
    Delete,
    /// Leave it as it is: already as in the snapshot, or `never`.
    Unchanged,
}

impl Action {
    /// The action's name: `write`, `overwrite`, `delete`, `unchanged`.
    pub fn name(self) -> &'static str {
        match self {
            Action::Write => "write",
            Action::Overwrite => "overwrite",
            Action::Delete => "delete",
            Action::Unchanged => "unchanged",
        }
    }
}

/// One path and what a restore would do to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedPath {
    /// What would be done.
    pub action: Action,
    /// The path in the target.
    pub path: PathBuf,
    /// The snapshot's entry (for `delete`: what is in the target, as far
    /// as a regular file, directory or symlink tells; else `None`).
    pub kind: Option<NodeKind>,
    /// File bytes that would be written (for `overwrite` with
    /// `if-changed`, only the chunks that differ); 0 for anything else.
    pub bytes: u64,
}

/// What `restore` would do, path by path, in the order it walks them
/// (a directory before its entries).
#[derive(Clone, Debug, Default)]
pub struct RestorePreview {
    /// Every path the restore would write, overwrite, delete or leave.
    pub paths: Vec<PlannedPath>,
    /// Paths in the snapshot whose directory listing cannot be read (the
    /// restore would restore them empty), with the problem.
    pub damaged: Vec<(String, String)>,
}

impl RestorePreview {
    /// How many paths get `action`.
    pub fn count(&self, action: Action) -> u64 {
        self.paths.iter().filter(|p| p.action == action).count() as u64
    }

    /// How many regular files get `action`.
    pub fn files(&self, action: Action) -> u64 {
        self.paths
            .iter()
            .filter(|p| p.action == action && p.kind == Some(NodeKind::File))
            .count() as u64
    }

    /// File bytes the restore would write in all.
    pub fn bytes(&self) -> u64 {
        self.paths.iter().map(|p| p.bytes).sum()
    }
}

/// Plans the restore of `snapshot` into `target` with `options`, and
/// reports what it would do; nothing is written (`verify` plays no part).
pub fn preview_restore(
    repo: &Repository,
    snapshot: &Snapshot,
    target: &Path,
    options: &RestoreOptions,
) -> Result<RestorePreview> {
    let mut walk = Walk {
        repo,
        include: matcher(&options.include, "include")?,
        exclude: matcher(&options.exclude, "exclude")?,
        overwrite: options.overwrite,
        delete: options.delete,
        special: options.special,
        as_root: running_as_root(),
        own: snapshot
            .paths
            .iter()
            .map(|p| PathBuf::from(OsStr::from_bytes(p)))
            .collect(),
        links: HashSet::new(),
        out: RestorePreview::default(),
    };
    let root = open_target(target)?;
    let top = Place {
        shown: target.to_path_buf(),
        fd: root,
    };
    match &options.subpath {
        None => {
            crate::ops::shape::measure(repo, &snapshot.tree)?;
            walk.dir(&snapshot.tree, Path::new("/"), &top, false)?;
        }
        Some(sub) => {
            let (at, node) = crate::ops::ls::find(repo, snapshot, sub)?;
            match (node.kind, node.subtree) {
                (NodeKind::Dir, Some(subtree)) => {
                    crate::ops::shape::measure(repo, &subtree)?;
                    walk.dir(&subtree, &at, &top, false)?;
                }
                _ => {
                    let parent = at.parent().unwrap_or(Path::new("/")).to_path_buf();
                    walk.node(node, &parent, &top, false)?;
                }
            }
        }
    }
    Ok(walk.out)
}

/// A directory of the target as the preview sees it: its path, and a
/// handle when it exists (`None`: the restore would create it empty).
struct Place {
    shown: PathBuf,
    fd: Option<OwnedFd>,
}

/// The target directory itself, if it exists (the restore creates it).
fn open_target(path: &Path) -> Result<Option<OwnedFd>> {
    match nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(Error::target(
            path,
            std::io::Error::from_raw_os_error(e as i32),
        )),
    }
}

fn stat_at(dir: &OwnedFd, name: &OsStr) -> Option<FileStat> {
    nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()
}

fn file_type(stat: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT
}

/// The kind of an existing entry, as far as the preview names kinds.
fn kind_of(stat: &FileStat) -> Option<NodeKind> {
    match file_type(stat) {
        SFlag::S_IFREG => Some(NodeKind::File),
        SFlag::S_IFDIR => Some(NodeKind::Dir),
        SFlag::S_IFLNK => Some(NodeKind::Symlink),
        SFlag::S_IFIFO => Some(NodeKind::Fifo),
        SFlag::S_IFSOCK => Some(NodeKind::Socket),
        SFlag::S_IFCHR => Some(NodeKind::Chardev),
        SFlag::S_IFBLK => Some(NodeKind::Blockdev),
        _ => None,
    }
}

struct Walk<'a> {
    repo: &'a Repository,
    include: Option<Gitignore>,
    exclude: Option<Gitignore>,
    overwrite: Overwrite,
    delete: bool,
    special: bool,
    as_root: bool,
    own: Vec<PathBuf>,
    /// Multiply linked files met so far, by (device, inode) in the snapshot.
    links: HashSet<(u64, u64)>,
    out: RestorePreview,
}

impl Walk<'_> {
    fn push(&mut self, action: Action, path: PathBuf, kind: Option<NodeKind>, bytes: u64) {
        self.out.paths.push(PlannedPath {
            action,
            path,
            kind,
            bytes,
        });
    }

    /// One directory of the snapshot (`snap` its stored path) at `place`;
    /// returns whether anything in it would be restored.
    fn dir(&mut self, tree: &TreeId, snap: &Path, place: &Place, included: bool) -> Result<bool> {
        let tree = match self.repo.read_tree(tree) {
            Ok(tree) => tree,
            Err(e) if e.is_damage() => {
                let path = snap.display().to_string();
                self.out.damaged.push((path, e.to_string()));
                return Ok(true);
            }
            Err(e) => return Err(e),
        };
        if self.delete
            && self.own.iter().any(|own| snap.starts_with(own))
            && let Some(fd) = &place.fd
        {
            let keep: HashSet<&[u8]> = tree.nodes.iter().map(|n| n.name.as_slice()).collect();
            let mut names = target::list_names(fd, &place.shown)?;
            names.sort();
            for name in names {
                if !keep.contains(name.as_bytes()) {
                    let kind = stat_at(fd, &name).as_ref().and_then(kind_of);
                    self.push(Action::Delete, place.shown.join(&name), kind, 0);
                }
            }
        }
        let mut any = false;
        for node in tree.nodes {
            any |= self.node(node, snap, place, included)?;
        }
        Ok(any)
    }

    /// One entry of the directory `snap` at `place`; returns whether it
    /// (or anything below it) would be restored.
    fn node(&mut self, node: Node, snap: &Path, place: &Place, included: bool) -> Result<bool> {
        let name = OsStr::from_bytes(&node.name).to_os_string();
        let snap_path = snap.join(&name);
        let shown = place.shown.join(&name);
        let is_dir = node.kind == NodeKind::Dir;
        if self
            .exclude
            .as_ref()
            .is_some_and(|g| g.matched(&snap_path, is_dir).is_ignore())
        {
            return Ok(false);
        }
        let included = included
            || self
                .include
                .as_ref()
                .is_none_or(|g| g.matched(&snap_path, is_dir).is_ignore());
        let existing = place.fd.as_ref().and_then(|fd| stat_at(fd, &name));
        if is_dir {
            return self.directory(&node, &name, snap_path, shown, place, existing, included);
        }
        if !included {
            return Ok(false);
        }
        if existing.is_some() && self.overwrite == Overwrite::Never {
            self.push(Action::Unchanged, shown, Some(node.kind), 0);
            return Ok(true);
        }
        let replace = |bytes| match existing {
            Some(_) => (Action::Overwrite, bytes),
            None => (Action::Write, bytes),
        };
        let (action, bytes) = match node.kind {
            NodeKind::File => {
                let first = node.links <= 1 || self.links.insert((node.device, node.inode));
                if !first {
                    // Another name of a file already restored: a link.
                    replace(0)
                } else {
                    self.file(&node, place, &name, existing)?
                }
            }
            NodeKind::Symlink => {
                let same = existing
                    .as_ref()
                    .is_some_and(|s| file_type(s) == SFlag::S_IFLNK)
                    && place
                        .fd
                        .as_ref()
                        .and_then(|fd| target::read_link_at(fd, &name))
                        == Some(node.target.clone());
                if same && self.overwrite == Overwrite::IfChanged {
                    (Action::Unchanged, 0)
                } else {
                    replace(0)
                }
            }
            NodeKind::Fifo if self.special => replace(0),
            NodeKind::Chardev | NodeKind::Blockdev if self.special && self.as_root => replace(0),
            // Left out by the restore, with a warning.
            _ => return Ok(false),
        };
        self.push(action, shown, Some(node.kind), bytes);
        Ok(true)
    }

    /// A directory entry: entered when the target has a directory there,
    /// else (nothing, or anything else, a link included) made anew.
    #[allow(clippy::too_many_arguments)]
    fn directory(
        &mut self,
        node: &Node,
        name: &OsStr,
        snap_path: PathBuf,
        shown: PathBuf,
        place: &Place,
        existing: Option<FileStat>,
        included: bool,
    ) -> Result<bool> {
        let is_dir = existing
            .as_ref()
            .is_some_and(|s| file_type(s) == SFlag::S_IFDIR);
        let fd = match (&place.fd, is_dir) {
            (Some(parent), true) => Some(open_child_dir(parent, name, &shown)?),
            _ => None,
        };
        let at = self.out.paths.len();
        if !is_dir {
            let action = if existing.is_some() {
                Action::Overwrite
            } else {
                Action::Write
            };
            self.push(action, shown.clone(), Some(NodeKind::Dir), 0);
        }
        let child = Place { shown, fd };
        let any = match &node.subtree {
            Some(subtree) => self.dir(subtree, &snap_path, &child, included)?,
            None => false,
        };
        if !included && !any {
            // Only on the way to included entries, and none were below:
            // the restore leaves what stands there alone, or removes the
            // directory it made for nothing.
            if !is_dir && at < self.out.paths.len() {
                self.out.paths.remove(at);
            }
            return Ok(false);
        }
        Ok(true)
    }

    /// A regular file: written, or with `if-changed` compared chunk by
    /// chunk when an existing file can be kept and patched (a regular file
    /// of the right size with no other names, as the restore decides).
    fn file(
        &mut self,
        node: &Node,
        place: &Place,
        name: &OsStr,
        existing: Option<FileStat>,
    ) -> Result<(Action, u64)> {
        let Some(stat) = existing else {
            return Ok((Action::Write, node.size));
        };
        let reusable = self.overwrite == Overwrite::IfChanged
            && file_type(&stat) == SFlag::S_IFREG
            && stat.st_nlink == 1
            && stat.st_size as u64 == node.size;
        let file = match (&place.fd, reusable) {
            (Some(fd), true) => target::open_existing(fd, name).map(|(file, _)| file),
            _ => None,
        };
        let Some(file) = file else {
            return Ok((Action::Overwrite, node.size));
        };
        let differing = self.differing_bytes(node, &file);
        Ok(if differing == 0 {
            (Action::Unchanged, 0)
        } else {
            (Action::Overwrite, differing)
        })
    }

    /// Bytes of the chunks of `node` that `file` does not already hold
    /// (all of them past a chunk the index does not know).
    fn differing_bytes(&self, node: &Node, file: &File) -> u64 {
        let mut offset = 0u64;
        let mut differing = 0u64;
        let mut buf = Vec::new();
        for blob in &node.content {
            let Some(loc) = self.repo.index().get(BlobKind::Data, &blob.id()) else {
                // The restore cannot place what follows: count it all.
                return differing + node.size.saturating_sub(offset).max(1);
            };
            let len = u64::from(loc.raw_length);
            buf.resize(loc.raw_length as usize, 0);
            let same = file.read_exact_at(&mut buf, offset).is_ok()
                && self.repo.key().blob_id(&buf) == blob.id();
            if !same {
                differing += len;
            }
            offset += len;
        }
        differing
    }
}

/// Opens a directory of the target below `dir`, never through a link.
fn open_child_dir(dir: &OwnedFd, name: &OsStr, shown: &Path) -> Result<OwnedFd> {
    nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::target(shown, std::io::Error::from_raw_os_error(e as i32)))
}
