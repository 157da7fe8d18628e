//! Unpacking a base backup's tar stream into an empty data directory.
//!
//! The stream is repository data, so it is hostile input: only regular
//! files and directories are made, every name is checked to be one plain
//! path component, nothing is ever followed through a link (directories are
//! opened beneath the target with no symlinks resolved), and nothing is
//! written outside the target. The target must be empty or not yet exist.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{BASE_STREAM_NAME, BaseBackupSnapshot, base_file};
use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::repository::Repository;
use crate::target::{Apply, FileId, Meta, Refused, Target, list_names};
use crate::time::Timestamp;
use crate::tree::NodeKind;

/// What [`unpack_base_backup`] made.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Regular files written.
    pub files: u64,
    /// Directories made.
    pub dirs: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// The owner (uid, gid) of the backup's files: that of its first entry
    /// as the stream records it. Running as root, every file and directory
    /// was given it.
    pub owner: Option<(u32, u32)>,
}

/// Unpacks `/base.tar` of the base backup `base` into `target`, which must
/// be an empty directory or not exist yet (then it is made, mode 0700, in
/// an existing parent). As root, every entry and the target get the owner
/// the stream records for its first entry (the server's user).
pub fn unpack_base_backup(
    repo: &Repository,
    base: &BaseBackupSnapshot,
    target: &Path,
) -> Result<UnpackReport> {
    let object = format!("snapshot {}", base.id.short());
    let node = base_file(repo, &base.snapshot, BASE_STREAM_NAME, &object)?;
    check_target(target)?;
    if std::fs::symlink_metadata(target).is_err() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(target)
            .map_err(|e| Error::target(target, e))?;
    }
    let out = Target::open(target)?;
    let (root, root_id) = out.root()?;
    // Checked again through the handle: the directory opened is empty.
    if !list_names(&root, target)?.is_empty() {
        return Err(not_empty(target));
    }
    let how = Apply {
        owners: nix::unistd::geteuid().is_root(),
        special: false,
    };
    let mut unpacker = Unpacker {
        out: &out,
        how,
        dirs: HashMap::from([(PathBuf::new(), root_id)]),
        made_dirs: Vec::new(),
        report: UnpackReport::default(),
    };
    let broken = |e: std::io::Error| {
        Error::corrupt(
            &object,
            format!("its {BASE_STREAM_NAME} is not a readable tar stream: {e}"),
        )
    };
    // The stream's blobs are fetched ahead, a window at a time in
    // parallel, while the entries are written in order.
    let window = repo.backend().connections().clamp(2, 16);
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = crossbeam_channel::bounded(window);
        let blobs = &node.content;
        scope.spawn(move || fetch_in_order(repo, blobs, window, &tx));
        let mut content = Content::new(rx, node.size, &object);
        {
            let mut archive = tar::Archive::new(&mut content);
            for entry in archive.entries().map_err(broken)? {
                let mut entry = entry.map_err(broken)?;
                unpacker.entry(&mut entry, &object)?;
            }
        }
        content.finish()
    })?;
    // Directories last, deepest first: their times stay as recorded.
    let mut made = std::mem::take(&mut unpacker.made_dirs);
    made.sort_by_key(|d| std::cmp::Reverse(d.0.components().count()));
    for (rel, id, meta) in made {
        let fd = out.dir(&rel, id)?;
        out.apply_dir_metadata(&fd, &out.shown(&rel), &meta, how)?;
    }
    let report = unpacker.report;
    if let Some((uid, gid)) = report.owner {
        let meta = Meta {
            kind: NodeKind::Dir,
            mode: 0o700,
            uid,
            gid,
            mtime: Timestamp::new(jiff::Timestamp::now().as_second(), 0),
            atime: Timestamp::new(jiff::Timestamp::now().as_second(), 0),
            xattrs: Vec::new(),
        };
        out.apply_dir_metadata(&root, target, &meta, how)?;
    }
    Ok(report)
}

/// Whether `target` can take a base backup: it does not exist (its parent
/// does), or it is an empty directory (not a link to one).
pub fn check_target(target: &Path) -> Result<()> {
    match std::fs::symlink_metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let parent = target.parent().filter(|p| !p.as_os_str().is_empty());
            match parent.map(std::fs::metadata) {
                Some(Err(e)) => Err(Error::target(parent.unwrap_or(target), e)),
                _ => Ok(()),
            }
        }
        Err(e) => Err(Error::target(target, e)),
        Ok(meta) if !meta.is_dir() => Err(Error::InvalidInput(format!(
            "{} is not a directory",
            target.display()
        ))),
        Ok(_) => {
            let mut entries = std::fs::read_dir(target).map_err(|e| Error::target(target, e))?;
            if entries.next().is_some() {
                Err(not_empty(target))
            } else {
                Ok(())
            }
        }
    }
}

fn not_empty(target: &Path) -> Error {
    Error::InvalidInput(format!(
        "{} is not empty; a base backup is unpacked only into an empty directory",
        target.display()
    ))
}

struct Unpacker<'t> {
    out: &'t Target,
    how: Apply,
    /// Directories made so far (and the root, as ""), by relative path.
    dirs: HashMap<PathBuf, FileId>,
    /// Their recorded metadata, applied at the end.
    made_dirs: Vec<(PathBuf, FileId, Meta)>,
    report: UnpackReport,
}

impl Unpacker<'_> {
    fn entry(&mut self, entry: &mut tar::Entry<'_, impl Read>, object: &str) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let refuse = |why: &str| {
            Error::corrupt(
                object,
                format!("its {BASE_STREAM_NAME} holds {shown:?}, which {why}"),
            )
        };
        let rel = relative(&raw).ok_or_else(|| refuse("is not a plain relative path"))?;
        let header = entry.header();
        let mode = header.mode().map_err(|_| refuse("has no valid mode"))? & 0o777;
        let uid = u32::try_from(header.uid().map_err(|_| refuse("has no valid owner"))?)
            .map_err(|_| refuse("has no valid owner"))?;
        let gid = u32::try_from(header.gid().map_err(|_| refuse("has no valid group"))?)
            .map_err(|_| refuse("has no valid group"))?;
        // One owner for the whole data directory, the server's: that of
        // the first entry (pg_basebackup adds its manifest with made-up ids).
        let (uid, gid) = *self.report.owner.get_or_insert((uid, gid));
        let mtime = header.mtime().map_err(|_| refuse("has no valid time"))?;
        let mtime = Timestamp::new(i64::try_from(mtime).unwrap_or(i64::MAX), 0);
        let meta = |kind| Meta {
            kind,
            mode,
            uid,
            gid,
            mtime,
            atime: mtime,
            xattrs: Vec::new(),
        };
        match header.entry_type() {
            tar::EntryType::Directory => {
                if rel.as_os_str().is_empty() {
                    return Ok(());
                }
                let id = self.dir(&rel)?;
                self.made_dirs.push((rel, id, meta(NodeKind::Dir)));
                Ok(())
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
                    return Err(refuse("is not a file name"));
                };
                let size = entry.size();
                let dir = self.dir_fd(parent)?;
                let shown_dir = self.out.shown(parent);
                let (mut file, id) = match self.out.create_file(&dir, &shown_dir, name, size, true)
                {
                    Ok(made) => made,
                    Err(Refused::Collision(_)) => return Err(refuse("appears twice")),
                    Err(Refused::Error(e)) => return Err(e),
                };
                let path = self.out.shown(&rel);
                // A failed read is the stream's (damaged, cut short); a
                // failed write, the target's.
                let mut copied = 0u64;
                let mut buf = vec![0u8; 256 * 1024];
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            return Err(Error::corrupt(
                                object,
                                format!("its {BASE_STREAM_NAME} cannot be read in {shown:?}: {e}"),
                            ));
                        }
                    };
                    file.write_all(&buf[..n])
                        .map_err(|e| Error::target(&path, e))?;
                    copied += n as u64;
                }
                if copied != size {
                    return Err(refuse("is shorter than its header says"));
                }
                drop(file);
                self.out.apply_metadata(
                    &dir,
                    &shown_dir,
                    name,
                    &meta(NodeKind::File),
                    Some(id),
                    self.how,
                    false,
                )?;
                self.report.files += 1;
                self.report.bytes += size;
                Ok(())
            }
            other => Err(refuse(&format!(
                "is a {other:?} entry; a base backup is unpacked only from files and directories"
            ))),
        }
    }

    /// The directory `rel`, made (with its parents) if it is not yet.
    fn dir(&mut self, rel: &Path) -> Result<FileId> {
        if let Some(id) = self.dirs.get(rel) {
            return Ok(*id);
        }
        let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
            return Err(Error::Internal(format!("{} has no parent", rel.display())));
        };
        let parent_fd = self.dir_fd(parent)?;
        let (_, id, _) = match self
            .out
            .mkdir(&parent_fd, &self.out.shown(parent), name, true)
        {
            Ok(made) => made,
            Err(Refused::Collision(message)) => return Err(Error::InvalidInput(message)),
            Err(Refused::Error(e)) => return Err(e),
        };
        self.report.dirs += 1;
        self.dirs.insert(rel.to_path_buf(), id);
        Ok(id)
    }

    fn dir_fd(&mut self, rel: &Path) -> Result<OwnedFd> {
        let id = self.dir(rel)?;
        self.out.dir(rel, id)
    }
}

/// A tar entry name as a path of plain components (`.` and empty ones
/// dropped); `None` for an absolute path, `..`, or an unsafe name.
fn relative(raw: &[u8]) -> Option<PathBuf> {
    if raw.first() == Some(&b'/') {
        return None;
    }
    let mut path = PathBuf::new();
    for part in raw.split(|&b| b == b'/') {
        if part.is_empty() || part == b"." {
            continue;
        }
        if !crate::tree::is_safe_name(part) {
            return None;
        }
        path.push(OsStr::from_bytes(part));
    }
    Some(path)
}

/// Sends the plaintext of `blobs` in order, fetching `window` of them at a
/// time in parallel; stops at the first error (sent) or when the reader
/// goes away.
fn fetch_in_order(
    repo: &Repository,
    blobs: &[crate::id::BlobId],
    window: usize,
    tx: &crossbeam_channel::Sender<Result<Vec<u8>>>,
) {
    use rayon::prelude::*;
    for batch in blobs.chunks(window) {
        let fetched: Vec<Result<Vec<u8>>> = batch
            .par_iter()
            .map(|blob| repo.read_blob(BlobKind::Data, &blob.id()))
            .collect();
        for result in fetched {
            let failed = result.is_err();
            if tx.send(result).is_err() || failed {
                return;
            }
        }
    }
}

/// The content of a stored file, as [`fetch_in_order`] sends it.
struct Content<'o> {
    rx: crossbeam_channel::Receiver<Result<Vec<u8>>>,
    size: u64,
    object: &'o str,
    buf: Vec<u8>,
    at: usize,
    total: u64,
}

impl<'o> Content<'o> {
    fn new(
        rx: crossbeam_channel::Receiver<Result<Vec<u8>>>,
        size: u64,
        object: &'o str,
    ) -> Content<'o> {
        Content {
            rx,
            size,
            object,
            buf: Vec::new(),
            at: 0,
            total: 0,
        }
    }

    /// Checks that the whole content was read and had the recorded size.
    fn finish(mut self) -> Result<()> {
        let mut rest = [0u8; 4096];
        while self
            .read(&mut rest)
            .map_err(|e| Error::corrupt(self.object, e.to_string()))?
            > 0
        {}
        if self.total != self.size {
            return Err(Error::corrupt(
                self.object,
                format!(
                    "its {BASE_STREAM_NAME} holds {} bytes, not the {} it records",
                    self.total, self.size
                ),
            ));
        }
        Ok(())
    }
}

impl Read for Content<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.buf.len() {
            let Ok(next) = self.rx.recv() else {
                return Ok(0);
            };
            self.buf = next.map_err(|e| std::io::Error::other(e.to_string()))?;
            self.at = 0;
            self.total += self.buf.len() as u64;
            if self.total > self.size {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} holds more bytes than it records", self.object),
                ));
            }
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::relative;
    use std::path::PathBuf;

    #[test]
    fn only_plain_relative_names_pass() {
        assert_eq!(relative(b"base/1/1259"), Some(PathBuf::from("base/1/1259")));
        assert_eq!(relative(b"./global/"), Some(PathBuf::from("global")));
        assert_eq!(relative(b"/etc/passwd"), None);
        assert_eq!(relative(b"base/../../x"), None);
        assert_eq!(relative(b".."), None);
    }
}
