//! The restore target: creating entries on the local filesystem and giving
//! them back their metadata. Knows nothing about repositories.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use filetime::FileTime;

use crate::error::{Error, Result};
use crate::tree::{Node, NodeKind};

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

/// Creates a regular file of `size` bytes: a hole until its chunks are
/// written, so all-zero chunks need no writing at all. Whatever was at the
/// path is replaced, never written through (it may be a hard link or a
/// symlink to something outside the target).
pub(crate) fn create_file(path: &Path, size: u64) -> Result<()> {
    remove_existing(path)?;
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::target(path, e))?;
    file.set_len(size).map_err(|e| Error::target(path, e))
}

/// Opens a created file for writing chunks.
pub(crate) fn open_for_write(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::target(path, e))
}

/// Writes one chunk at its offset.
pub(crate) fn write_at(file: &File, path: &Path, offset: u64, data: &[u8]) -> Result<()> {
    file.write_all_at(data, offset)
        .map_err(|e| Error::target(path, e))
}

/// Creates a symlink, replacing whatever was there.
pub(crate) fn create_symlink(path: &Path, target: &[u8]) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    remove_existing(path)?;
    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), path)
        .map_err(|e| Error::target(path, e))
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

/// Applies owner (when running as root), mode and times.
pub(crate) fn apply_metadata(path: &Path, node: &Node, as_root: bool) -> Result<()> {
    let err = |e| Error::target(path, e);
    if as_root {
        std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)).map_err(err)?;
    }
    if node.kind != NodeKind::Symlink {
        fs::set_permissions(path, fs::Permissions::from_mode(node.mode & 0o7777)).map_err(err)?;
    }
    let mtime = FileTime::from_unix_time(node.mtime.seconds, node.mtime.nanos);
    let atime = FileTime::from_unix_time(node.atime.seconds, node.atime.nanos);
    filetime::set_symlink_file_times(path, atime, mtime).map_err(err)
}
