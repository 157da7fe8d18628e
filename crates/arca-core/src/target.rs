//! The restore target: creating entries on the local file system and giving
//! them back their metadata, through directory handles. Knows nothing about
//! repositories.
//!
//! Everything happens below one directory opened once ([`Target::open`]).
//! A directory is reached from it with `openat2` under `RESOLVE_BENEATH |
//! RESOLVE_NO_SYMLINKS`, and must then be the very directory (device and
//! inode) this restore created or found when it planned it; every entry is
//! then created, opened or changed relative to that handle, with calls that
//! do not follow a link in the last component (`O_NOFOLLOW`,
//! `AT_SYMLINK_NOFOLLOW`), and metadata is applied to an open descriptor.
//! A path is resolved once. So a link put anywhere in the target, by a
//! hostile tree or by a local user racing the restore, is never followed,
//! and a directory swapped for another is never entered or changed.
//!
//! Names that the file system folds together (case-insensitive or
//! normalising file systems) show up as an entry that exists although this
//! restore did not create it in a directory it made empty, or as an entry
//! this restore created where it was about to replace something: both are
//! refused ([`Error::Collision`]) rather than letting one name stand for
//! another.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

use crate::error::{Error, Result};
use crate::time::Timestamp;
use crate::tree::{Node, NodeKind, Xattr};

/// Which file: device and inode.
pub(crate) type FileId = (u64, u64);

fn id_of(stat: &FileStat) -> FileId {
    (stat.st_dev, stat.st_ino)
}

fn io_err(e: Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

/// The directory a restore writes into, and what it created there.
pub(crate) struct Target {
    root: OwnedFd,
    path: PathBuf,
    /// Every entry this restore created (directories included).
    created: Mutex<HashSet<FileId>>,
}

/// How an entry was refused.
/// The names in the open directory `dir` (`shown` in errors), `.` and
/// `..` left out.
pub(crate) fn list_names(dir: &OwnedFd, shown: &Path) -> Result<Vec<std::ffi::OsString>> {
    let err = |e: Errno| Error::target(shown, io_err(e));
    // Its own open file description: a dup would share (and move) the read
    // position of `dir` itself.
    let mut listing = nix::dir::Dir::openat(
        dir,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err)?;
    let mut names = Vec::new();
    for entry in listing.iter() {
        let entry = entry.map_err(err)?;
        let name = OsStr::from_bytes(entry.file_name().to_bytes());
        if name != "." && name != ".." {
            names.push(name.to_os_string());
        }
    }
    Ok(names)
}

/// The target of the symlink `name` in `dir`, if it is one.
pub(crate) fn read_link_at(dir: &OwnedFd, name: &OsStr) -> Option<Vec<u8>> {
    nix::fcntl::readlinkat(dir, name)
        .ok()
        .map(|t| t.as_bytes().to_vec())
}

/// Opens an existing regular file `name` in `dir` for reading, never
/// through a link; `None` when there is none.
pub(crate) fn open_existing(dir: &OwnedFd, name: &OsStr) -> Option<(File, FileStat)> {
    let fd = nix::fcntl::openat(
        dir,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let stat = nix::sys::stat::fstat(&fd).ok()?;
    (SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG)
        .then(|| (File::from(fd), stat))
}

/// Whether `stat` is of a directory.
pub(crate) fn is_dir(stat: &FileStat) -> bool {
    SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
}

pub(crate) enum Refused {
    /// Another entry already stands under that name on this file system.
    Collision(String),
    /// Anything else, naming the path.
    Error(Error),
}

impl From<Error> for Refused {
    fn from(e: Error) -> Refused {
        Refused::Error(e)
    }
}

/// A planned entry creation: refused for a collision, or done.
pub(crate) type Made<T> = std::result::Result<T, Refused>;

impl Target {
    /// Opens (creating it if missing) the directory at `path`.
    pub fn open(path: &Path) -> Result<Target> {
        std::fs::create_dir_all(path).map_err(|e| Error::target(path, e))?;
        let root = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::target(path, io_err(e)))?;
        Ok(Target {
            root,
            path: path.to_path_buf(),
            created: Mutex::new(HashSet::new()),
        })
    }

    /// The path of `rel` below the target, for messages.
    pub fn shown(&self, rel: &Path) -> PathBuf {
        self.path.join(rel)
    }

    fn note_created(&self, id: FileId) {
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id);
    }

    fn was_created(&self, id: FileId) -> bool {
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&id)
    }

    /// The target directory itself, and its identity.
    pub fn root(&self) -> Result<(OwnedFd, FileId)> {
        let fd = self
            .root
            .try_clone()
            .map_err(|e| Error::target(&self.path, e))?;
        let stat = nix::sys::stat::fstat(&fd).map_err(|e| Error::target(&self.path, io_err(e)))?;
        Ok((fd, id_of(&stat)))
    }

    /// Opens the directory `rel` (relative to the target) without following
    /// any link on the way, and only if it is the directory `id`.
    pub fn dir(&self, rel: &Path, id: FileId) -> Result<OwnedFd> {
        let shown = || self.shown(rel);
        let fd = if rel.as_os_str().is_empty() {
            self.root().map(|(fd, _)| fd)?
        } else {
            use nix::fcntl::{OpenHow, ResolveFlag};
            let how = OpenHow::new()
                .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
                .resolve(
                    ResolveFlag::RESOLVE_BENEATH
                        | ResolveFlag::RESOLVE_NO_SYMLINKS
                        | ResolveFlag::RESOLVE_NO_MAGICLINKS,
                );
            nix::fcntl::openat2(&self.root, rel, how).map_err(|e| replaced(shown(), e))?
        };
        let stat = nix::sys::stat::fstat(&fd).map_err(|e| Error::target(shown(), io_err(e)))?;
        if id_of(&stat) != id {
            return Err(replaced(shown(), Errno::ESTALE));
        }
        Ok(fd)
    }

    /// What is at `name` in `dir`, without following a link.
    pub fn stat(&self, dir: &OwnedFd, name: &OsStr) -> Option<FileStat> {
        nix::sys::stat::fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW).ok()
    }

    /// Makes `name` in `dir` a directory (private until its metadata is
    /// applied) and opens it. In a `fresh` directory nothing is looked for
    /// first. An existing directory that this restore did not create is
    /// entered (restoring over an earlier restore); anything else there is
    /// removed first. Returns the handle, its identity, and whether it was
    /// there before.
    pub fn mkdir(
        &self,
        dir: &OwnedFd,
        shown: &Path,
        name: &OsStr,
        fresh: bool,
    ) -> Made<(OwnedFd, FileId, bool)> {
        let path = shown.join(name);
        if !fresh && let Some(stat) = self.stat(dir, name) {
            if self.was_created(id_of(&stat)) {
                return Err(collision(&path));
            }
            if is_dir(&stat) {
                let fd = self.open_child_dir(dir, &path, name)?;
                let opened =
                    nix::sys::stat::fstat(&fd).map_err(|e| Error::target(&path, io_err(e)))?;
                if id_of(&opened) != id_of(&stat) {
                    return Err(Refused::Error(replaced(path, Errno::ESTALE)));
                }
                return Ok((fd, id_of(&stat), true));
            }
            self.remove(dir, shown, name)?;
        }
        match nix::sys::stat::mkdirat(dir, name, Mode::from_bits_truncate(0o700)) {
            Ok(()) => {}
            Err(Errno::EEXIST) => return Err(collision(&path)),
            Err(e) => return Err(Refused::Error(Error::target(&path, io_err(e)))),
        }
        let fd = self.open_child_dir(dir, &path, name)?;
        let stat = nix::sys::stat::fstat(&fd).map_err(|e| Error::target(&path, io_err(e)))?;
        self.note_created(id_of(&stat));
        Ok((fd, id_of(&stat), false))
    }

    fn open_child_dir(&self, dir: &OwnedFd, path: &Path, name: &OsStr) -> Result<OwnedFd> {
        nix::fcntl::openat(
            dir,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| replaced(path.to_path_buf(), e))
    }

    /// Creates `name` in `dir` as a regular file of `size` bytes (a hole
    /// until its chunks are written, so all-zero chunks need no writing) and
    /// opens it for writing. Whatever was there is replaced, never written
    /// through (it may be a hard link or a link to outside the target).
    pub fn create_file(
        &self,
        dir: &OwnedFd,
        shown: &Path,
        name: &OsStr,
        size: u64,
        fresh: bool,
    ) -> Made<(File, FileId)> {
        let path = shown.join(name);
        self.make_room(dir, shown, name, fresh)?;
        let fd = match nix::fcntl::openat(
            dir,
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(fd) => fd,
            Err(Errno::EEXIST) => return Err(collision(&path)),
            Err(e) => return Err(Refused::Error(Error::target(&path, io_err(e)))),
        };
        let file = File::from(fd);
        file.set_len(size).map_err(|e| Error::target(&path, e))?;
        let id = file_id(&file, &path)?;
        self.note_created(id);
        Ok((file, id))
    }

    /// Opens the file `name` in `dir` for writing, if it is the file `id`.
    pub fn open_for_write(
        &self,
        dir: &OwnedFd,
        shown: &Path,
        name: &OsStr,
        id: FileId,
    ) -> Result<File> {
        self.open_checked(dir, shown, name, OFlag::O_WRONLY, id)
    }

    /// Opens the file `name` in `dir` for reading, if it is the file `id`.
    pub fn open_file(&self, dir: &OwnedFd, shown: &Path, name: &OsStr, id: FileId) -> Result<File> {
        self.open_checked(dir, shown, name, OFlag::O_RDONLY, id)
    }

    /// Opens an existing regular file `name` in `dir` for reading (to
    /// compare it with the snapshot); `None` when there is none.
    pub fn open_existing(&self, dir: &OwnedFd, name: &OsStr) -> Option<(File, FileStat)> {
        open_existing(dir, name)
    }

    fn open_checked(
        &self,
        dir: &OwnedFd,
        shown: &Path,
        name: &OsStr,
        mode: OFlag,
        id: FileId,
    ) -> Result<File> {
        let path = shown.join(name);
        let fd = nix::fcntl::openat(
            dir,
            name,
            mode | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| replaced(path.clone(), e))?;
        let file = File::from(fd);
        if file_id(&file, &path)? != id {
            return Err(replaced(path, Errno::ESTALE));
        }
        Ok(file)
    }

    /// Creates a symlink `name` in `dir` pointing at `target`.
    pub fn symlink(
        &self,
        dir: &OwnedFd,
        shown: &Path,
        name: &OsStr,
        target: &[u8],
        fresh: bool,
    ) -> Made<()> {
        let path = shown.join(name);
        self.make_room(dir, shown, name, fresh)?;
        match nix::unistd::symlinkat(OsStr::from_bytes(target), dir, name) {
            Ok(()) => {}
            Err(Errno::EEXIST) => return Err(collision(&path)),
            Err(e) => return Err(Refused::Error(Error::target(&path, io_err(e)))),
        }
        self.note_created_at(dir, name);
        Ok(())
    }

    /// Creates a FIFO or device node `name` in `dir`.
    pub fn special(
        &self,
        dir: &OwnedFd,
        shown: &Path,
        name: &OsStr,
        node: &Node,
        fresh: bool,
    ) -> Made<()> {
        let path = shown.join(name);
        self.make_room(dir, shown, name, fresh)?;
        let kind = match node.kind {
            NodeKind::Fifo => SFlag::S_IFIFO,
            NodeKind::Chardev => SFlag::S_IFCHR,
            NodeKind::Blockdev => SFlag::S_IFBLK,
            _ => return Ok(()),
        };
        let mode = Mode::from_bits_truncate(node.mode & 0o777);
        match nix::sys::stat::mknodat(dir, name, kind, mode, node.rdev) {
            Ok(()) => {}
            Err(Errno::EEXIST) => return Err(collision(&path)),
            Err(e) => return Err(Refused::Error(Error::target(&path, io_err(e)))),
        }
        self.note_created_at(dir, name);
        Ok(())
    }

    /// Makes `name` in `dir` another name of the file `first_name` in
    /// `first_dir`, which this restore created as `first_id`.
    #[allow(clippy::too_many_arguments)]
    pub fn hard_link(
        &self,
        first_dir: &OwnedFd,
        first_name: &OsStr,
        first_id: FileId,
        dir: &OwnedFd,
        shown: &Path,
        name: &OsStr,
        fresh: bool,
    ) -> Made<()> {
        let path = shown.join(name);
        match self.stat(first_dir, first_name) {
            Some(stat) if id_of(&stat) == first_id => {}
            _ => return Err(Refused::Error(replaced(path, Errno::ESTALE))),
        }
        self.make_room(dir, shown, name, fresh)?;
        match nix::unistd::linkat(first_dir, first_name, dir, name, AtFlags::empty()) {
            Ok(()) => Ok(()),
            Err(Errno::EEXIST) => Err(collision(&path)),
            Err(e) => Err(Refused::Error(Error::target(&path, io_err(e)))),
        }
    }

    fn note_created_at(&self, dir: &OwnedFd, name: &OsStr) {
        if let Some(stat) = self.stat(dir, name) {
            self.note_created(id_of(&stat));
        }
    }

    /// Clears `name` in `dir` for a new entry: nothing to do in a fresh
    /// directory; an entry this restore created there means two names of
    /// the snapshot fold into one on this file system.
    fn make_room(&self, dir: &OwnedFd, shown: &Path, name: &OsStr, fresh: bool) -> Made<()> {
        if fresh {
            return Ok(());
        }
        if let Some(stat) = self.stat(dir, name) {
            if self.was_created(id_of(&stat)) {
                return Err(collision(&shown.join(name)));
            }
            self.remove(dir, shown, name)?;
        }
        Ok(())
    }

    /// Removes `name` from `dir`, a directory with everything below it,
    /// through handles: nothing it holds is followed.
    pub fn remove(&self, dir: &OwnedFd, shown: &Path, name: &OsStr) -> Result<()> {
        let path = shown.join(name);
        let Some(stat) = self.stat(dir, name) else {
            return Ok(());
        };
        let is_dir = is_dir(&stat);
        if is_dir {
            let child = self.open_child_dir(dir, &path, name)?;
            // Entries may be read-only: the owner needs write access to empty it.
            let _ = nix::sys::stat::fchmod(&child, Mode::from_bits_truncate(0o700));
            for entry in self.list(&child, &path)? {
                self.remove(&child, &path, &entry)?;
            }
        }
        let flag = if is_dir {
            nix::unistd::UnlinkatFlags::RemoveDir
        } else {
            nix::unistd::UnlinkatFlags::NoRemoveDir
        };
        match nix::unistd::unlinkat(dir, name, flag) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(Error::target(&path, io_err(e))),
        }
    }

    /// Renames `name` in `dir` to `new` in the same directory, never
    /// replacing an entry already called `new` (`Ok(false)` then): with
    /// `renameat2(RENAME_NOREPLACE)`, or a hard link and an unlink where
    /// the file system lacks that.
    pub fn rename_new(
        &self,
        dir: &OwnedFd,
        shown: &Path,
        name: &OsStr,
        new: &OsStr,
    ) -> Result<bool> {
        use nix::fcntl::{RenameFlags, renameat2};
        let path = shown.join(name);
        let renamed = match renameat2(dir, name, dir, new, RenameFlags::RENAME_NOREPLACE) {
            Err(Errno::EINVAL | Errno::ENOSYS) => {
                nix::unistd::linkat(dir, name, dir, new, AtFlags::empty()).and_then(|()| {
                    nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
                })
            }
            other => other,
        };
        match renamed {
            Ok(()) => Ok(true),
            Err(Errno::EEXIST) => Ok(false),
            Err(e) => Err(Error::target(&path, io_err(e))),
        }
    }

    /// The names in the open directory `dir`.
    pub fn list(&self, dir: &OwnedFd, shown: &Path) -> Result<Vec<std::ffi::OsString>> {
        list_names(dir, shown)
    }

    /// Reads the target of the symlink `name` in `dir`.
    pub fn read_link(&self, dir: &OwnedFd, name: &OsStr) -> Option<Vec<u8>> {
        read_link_at(dir, name)
    }

    /// Overwrites `length` bytes at `offset` of the file `name` in `dir`
    /// (which must be the file `id`) with zeros: a lost piece of a file
    /// patched in place must not keep older bytes.
    pub fn clear_range(
        &self,
        dir: &OwnedFd,
        shown: &Path,
        name: &OsStr,
        id: FileId,
        offset: u64,
        length: u64,
    ) -> Result<()> {
        let path = shown.join(name);
        let file = self.open_for_write(dir, shown, name, id)?;
        let zeros = vec![0u8; length.min(1 << 20) as usize];
        let end = offset + length;
        let mut at = offset;
        while at < end {
            let n = (end - at).min(zeros.len() as u64);
            file.write_all_at(&zeros[..n as usize], at)
                .map_err(|e| Error::target(&path, e))?;
            at += n;
        }
        Ok(())
    }

    /// Applies an entry's metadata (see [`apply_to_fd`]): a regular file
    /// through a descriptor opened without following links (and only if it
    /// is the entry `id`, when known); a symlink, FIFO or device by name
    /// with calls that do not follow a link in its place. In a `private`
    /// directory (made by this restore and not yet given its final owner
    /// and mode, so no one else can change its entries) a regular file
    /// without extended attributes is also handled by name, which spares
    /// opening it.
    #[allow(clippy::too_many_arguments)]
    pub fn apply_metadata(
        &self,
        dir: &OwnedFd,
        shown: &Path,
        name: &OsStr,
        meta: &Meta,
        id: Option<FileId>,
        how: Apply,
        private: bool,
    ) -> Result<Vec<String>> {
        let path = shown.join(name);
        match meta.kind {
            NodeKind::File if !(private && meta.xattrs.is_empty()) => {
                let fd = nix::fcntl::openat(
                    dir,
                    name,
                    OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| replaced(path.clone(), e))?;
                let file = File::from(fd);
                if let Some(id) = id
                    && file_id(&file, &path)? != id
                {
                    return Err(replaced(path, Errno::ESTALE));
                }
                apply_to_fd(&file, &path, meta, how)
            }
            _ => apply_by_name(dir, &path, name, meta, how),
        }
    }

    /// Applies a directory's metadata through its own handle.
    pub fn apply_dir_metadata(
        &self,
        fd: &OwnedFd,
        shown: &Path,
        meta: &Meta,
        how: Apply,
    ) -> Result<Vec<String>> {
        apply_to_fd(fd, shown, meta, how)
    }
}

/// What applying metadata may give back.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Apply {
    /// Set owners (running as root).
    pub owners: bool,
    /// Keep setuid/setgid bits and file capabilities; without, they are
    /// dropped (`--no-special`).
    pub special: bool,
}

fn file_id(file: &File, path: &Path) -> Result<FileId> {
    let stat = nix::sys::stat::fstat(file).map_err(|e| Error::target(path, io_err(e)))?;
    Ok(id_of(&stat))
}

fn collision(path: &Path) -> Refused {
    Refused::Collision(format!(
        "{}: not restored: another entry of this restore already has this name on this file system (it folds case or normalises names)",
        path.display()
    ))
}

/// A directory or file that is not what this restore made or found there.
fn replaced(path: PathBuf, e: Errno) -> Error {
    let why = match e {
        Errno::ELOOP | Errno::EXDEV | Errno::ENOTDIR | Errno::ESTALE => io::Error::other(
            "it was replaced (by a link or another entry) during the restore; nothing there was touched",
        ),
        other => io_err(other),
    };
    Error::target(path, why)
}

/// The capability extended attribute, which grants privileges to whoever
/// runs the file.
const CAPABILITY_XATTR: &[u8] = b"security.capability";

/// Owner (as root), extended attributes, mode and times on an open
/// descriptor, in that order: a chown clears setuid bits, and setting
/// xattrs may need write permission the final mode takes away. Extended
/// attributes the file system refuses are returned as warnings.
fn apply_to_fd<F: AsFd>(fd: &F, path: &Path, meta: &Meta, how: Apply) -> Result<Vec<String>> {
    let err = |e: Errno| Error::target(path, io_err(e));
    let mut warnings = Vec::new();
    if how.owners {
        nix::unistd::fchown(
            fd,
            Some(nix::unistd::Uid::from_raw(meta.uid)),
            Some(nix::unistd::Gid::from_raw(meta.gid)),
        )
        .map_err(err)?;
    }
    // SAFETY: the descriptor stays open (borrowed) for the duration of the
    // xattr calls; ManuallyDrop keeps the File from closing it.
    let file = std::mem::ManuallyDrop::new(unsafe { File::from_raw_fd(fd.as_fd().as_raw_fd()) });
    for xattr in &meta.xattrs {
        if !how.special && xattr.name == CAPABILITY_XATTR {
            continue;
        }
        let name = OsStr::from_bytes(&xattr.name);
        if let Err(e) = xattr::FileExt::set_xattr(&*file, name, &xattr.value) {
            warnings.push(format!(
                "{}: cannot set extended attribute {}: {e}",
                path.display(),
                String::from_utf8_lossy(&xattr.name)
            ));
        }
    }
    nix::sys::stat::fchmod(fd, Mode::from_bits_truncate(mode_of(meta, how))).map_err(err)?;
    let (atime, mtime) = times(meta);
    nix::sys::stat::futimens(fd, &atime, &mtime).map_err(err)?;
    Ok(warnings)
}

/// The same for a symlink, FIFO or device node, by name: owner and times
/// with `AT_SYMLINK_NOFOLLOW`; the mode of a FIFO or device through an
/// `O_PATH` descriptor checked to be no link (chmod has no such flag).
fn apply_by_name(
    dir: &OwnedFd,
    path: &Path,
    name: &OsStr,
    meta: &Meta,
    how: Apply,
) -> Result<Vec<String>> {
    let err = |e: Errno| Error::target(path, io_err(e));
    if how.owners {
        nix::unistd::fchownat(
            dir,
            name,
            Some(nix::unistd::Uid::from_raw(meta.uid)),
            Some(nix::unistd::Gid::from_raw(meta.gid)),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(err)?;
    }
    if meta.kind != NodeKind::Symlink && !chmod_no_follow(dir, path, name, mode_of(meta, how))? {
        let fd = nix::fcntl::openat(
            dir,
            name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| replaced(path.to_path_buf(), e))?;
        let stat = nix::sys::stat::fstat(&fd).map_err(err)?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK {
            return Err(replaced(path.to_path_buf(), Errno::ELOOP));
        }
        let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            proc.as_str(),
            Mode::from_bits_truncate(mode_of(meta, how)),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(err)?;
    }
    let (atime, mtime) = times(meta);
    nix::sys::stat::utimensat(
        dir,
        name,
        &atime,
        &mtime,
        nix::sys::stat::UtimensatFlags::NoFollowSymlink,
    )
    .map_err(err)?;
    Ok(Vec::new())
}

/// `fchmodat2` with `AT_SYMLINK_NOFOLLOW` (Linux 6.6): sets the mode of
/// `name` in `dir` unless it is a link. False when the kernel lacks it (the
/// caller then goes through an `O_PATH` descriptor); an error when `name`
/// is a link where something else was made.
fn chmod_no_follow(dir: &OwnedFd, path: &Path, name: &OsStr, mode: u32) -> Result<bool> {
    let Ok(c_name) = std::ffi::CString::new(name.as_bytes()) else {
        return Ok(false);
    };
    // SAFETY: a plain system call on a borrowed descriptor and a
    // NUL-terminated name that outlives it.
    let done = unsafe {
        nix::libc::syscall(
            nix::libc::SYS_fchmodat2,
            dir.as_raw_fd(),
            c_name.as_ptr(),
            mode as nix::libc::mode_t,
            nix::libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if done == 0 {
        return Ok(true);
    }
    match Errno::last() {
        Errno::ENOSYS | Errno::EINVAL | Errno::EPERM => Ok(false),
        // A link where a file was made: its mode cannot be set, and the
        // link's target is never touched.
        Errno::EOPNOTSUPP => Err(replaced(path.to_path_buf(), Errno::ELOOP)),
        e => Err(Error::target(path, io_err(e))),
    }
}

fn mode_of(meta: &Meta, how: Apply) -> u32 {
    let mode = meta.mode & 0o7777;
    if how.special { mode } else { mode & !0o6000 }
}

fn times(meta: &Meta) -> (nix::sys::time::TimeSpec, nix::sys::time::TimeSpec) {
    let spec = |t: Timestamp| nix::sys::time::TimeSpec::new(t.seconds, i64::from(t.nanos));
    (spec(meta.atime), spec(meta.mtime))
}

/// File-system block size assumed for holes.
const BLOCK: u64 = 4096;

/// Writes one chunk at its offset into a file created as a hole, skipping
/// every whole block of zeros so that holes in the source stay holes.
pub(crate) fn write_sparse(file: &File, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
    let end = offset + data.len() as u64;
    let mut pos = offset;
    let mut run_start: Option<u64> = None;
    while pos < end {
        let next = ((pos / BLOCK) + 1) * BLOCK;
        let block_end = next.min(end);
        let block = &data[(pos - offset) as usize..(block_end - offset) as usize];
        let zero = block.iter().all(|&b| b == 0);
        match (zero, run_start) {
            (false, None) => run_start = Some(pos),
            (true, Some(start)) => {
                write_run(file, path, offset, data, start, pos)?;
                run_start = None;
            }
            _ => {}
        }
        pos = block_end;
    }
    if let Some(start) = run_start {
        write_run(file, path, offset, data, start, end)?;
    }
    Ok(())
}

fn write_run(
    file: &File,
    path: &Path,
    offset: u64,
    data: &[u8],
    start: u64,
    end: u64,
) -> Result<()> {
    let bytes = &data[(start - offset) as usize..(end - offset) as usize];
    file.write_all_at(bytes, start)
        .map_err(|e| Error::target(path, e))
}

/// What applying an entry's metadata needs of its node: a restore keeps
/// this for every entry until the data is written, not the whole node.
#[derive(Debug)]
pub(crate) struct Meta {
    pub kind: NodeKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timestamp,
    pub atime: Timestamp,
    pub xattrs: Vec<Xattr>,
}

impl From<Node> for Meta {
    fn from(node: Node) -> Meta {
        Meta {
            kind: node.kind,
            mode: node.mode,
            uid: node.uid,
            gid: node.gid,
            mtime: node.mtime,
            atime: node.atime,
            xattrs: node.xattrs,
        }
    }
}
