//! The restore target: creating entries on the local filesystem and giving
//! them back their metadata. Knows nothing about repositories.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use filetime::FileTime;

use crate::error::{Error, Result};
use crate::time::Timestamp;
use crate::tree::{Node, NodeKind, Xattr};

/// Creates a directory (private until its metadata is applied at the end).
pub(crate) fn create_dir(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => {
            fs::remove_file(path).map_err(|e| Error::target(path, e))?;
            create_dir(path)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::DirBuilder::new()
            .mode(0o700)
            .create(path)
            .map_err(|e| Error::target(path, e)),
        Err(e) => Err(Error::target(path, e)),
    }
}

/// Creates a directory where nothing is (its parent was created empty by
/// this restore).
pub(crate) fn create_new_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(path)
        .map_err(|e| Error::target(path, e))
}

/// Creates a regular file of `size` bytes: a hole until its chunks are
/// written, so all-zero chunks need no writing at all. Whatever was at the
/// path is replaced, never written through (it may be a hard link or a
/// symlink to something outside the target).
pub(crate) fn create_file(path: &Path, size: u64) -> Result<()> {
    create_open(path, size, false).map(drop)
}

/// [`create_file`], keeping the file open for writing its chunks. With
/// `absent` (its directory was created empty by this restore) nothing is
/// looked for first; the exclusive create still refuses whatever might be
/// there.
pub(crate) fn create_open(path: &Path, size: u64, absent: bool) -> Result<File> {
    if !absent {
        remove_existing(path)?;
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::target(path, e))?;
    file.set_len(size).map_err(|e| Error::target(path, e))?;
    Ok(file)
}

/// Opens a created file for writing chunks.
pub(crate) fn open_for_write(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::target(path, e))
}

/// Overwrites `length` bytes at `offset` of an existing file with zeros:
/// a lost piece of a file patched in place must not keep older bytes.
pub(crate) fn clear_range(path: &Path, offset: u64, length: u64) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let file = open_for_write(path)?;
    let zeros = vec![0u8; length.min(1 << 20) as usize];
    let end = offset + length;
    let mut at = offset;
    while at < end {
        let n = (end - at).min(zeros.len() as u64);
        file.write_all_at(&zeros[..n as usize], at)
            .map_err(|e| Error::target(path, e))?;
        at += n;
    }
    Ok(())
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

/// Creates a symlink, replacing whatever was there.
pub(crate) fn create_symlink(path: &Path, target: &[u8]) -> Result<()> {
    remove_existing(path)?;
    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), path)
        .map_err(|e| Error::target(path, e))
}

/// Creates a FIFO or device node. Devices need root; the caller decides.
pub(crate) fn create_special(path: &Path, node: &Node) -> Result<()> {
    use nix::sys::stat::{Mode, SFlag};
    remove_existing(path)?;
    let mode = Mode::from_bits_truncate(node.mode & 0o777);
    let made = match node.kind {
        NodeKind::Fifo => nix::unistd::mkfifo(path, mode),
        NodeKind::Chardev => nix::sys::stat::mknod(path, SFlag::S_IFCHR, mode, node.rdev),
        NodeKind::Blockdev => nix::sys::stat::mknod(path, SFlag::S_IFBLK, mode, node.rdev),
        _ => return Ok(()),
    };
    made.map_err(|e| Error::target(path, e.into()))
}

/// Makes `path` a hard link to the already restored `first`.
pub(crate) fn create_hard_link(first: &Path, path: &Path) -> Result<()> {
    remove_existing(path)?;
    fs::hard_link(first, path).map_err(|e| Error::target(path, e))
}

/// Removes whatever is at `path`, if anything.
fn remove_existing(path: &Path) -> Result<()> {
    let removed = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    removed.map_err(|e| Error::target(path, e))
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

/// Applies owner (when running as root), extended attributes, mode and
/// times, in that order: a chown clears setuid bits, and setting xattrs may
/// need write permission the final mode takes away. Extended attributes the
/// target file system refuses are returned as warnings, not errors.
pub(crate) fn apply_metadata(path: &Path, node: &Meta, as_root: bool) -> Result<Vec<String>> {
    let err = |e| Error::target(path, e);
    let mut warnings = Vec::new();
    if as_root {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)).map_err(err)?;
    }
    for xattr in &node.xattrs {
        let name = std::ffi::OsStr::from_bytes(&xattr.name);
        if let Err(e) = xattr::set(path, name, &xattr.value) {
            warnings.push(format!(
                "{}: cannot set extended attribute {}: {e}",
                path.display(),
                String::from_utf8_lossy(&xattr.name)
            ));
        }
    }
    if node.kind != NodeKind::Symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(node.mode & 0o7777)).map_err(err)?;
    }
    let mtime = FileTime::from_unix_time(node.mtime.seconds, node.mtime.nanos);
    let atime = FileTime::from_unix_time(node.atime.seconds, node.atime.nanos);
    filetime::set_symlink_file_times(path, atime, mtime).map_err(err)?;
    Ok(warnings)
}
