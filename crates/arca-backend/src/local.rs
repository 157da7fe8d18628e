//! A repository in a directory of the local filesystem.
//!
//! Durability follows the classic recipe: write to a temporary file in the
//! kind's directory (the destination's filesystem), fsync it, link it into
//! place without replacing an existing name (`renameat2(RENAME_NOREPLACE)`
//! or link+unlink, via `tempfile`'s `persist_noclobber`), then fsync the
//! directory so the new name survives a power cut. A pack can be staged:
//! written into its temporary file as it fills and named when complete, so
//! it is never held in memory whole. Objects are created 0600, directories
//! 0700: the contents are encrypted, but sizes and counts are still nobody
//! else's business.

use std::fs::{self, DirBuilder, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::{Backend, Entry, Error, ErrorKind, FileKind, Staged, check_name, cleanup};

/// Opens a stored object for reading: never through a symbolic link, never
/// blocking on a FIFO, and only a regular file. Whatever else is found
/// under an object's name (a link to `/dev/zero`, a device) is refused
/// before a byte is read. Returns the file and its size.
fn open_object(path: &Path) -> io::Result<(File, u64)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    Ok((file, meta.len()))
}

/// A repository stored under one local directory.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    root: PathBuf,
}

impl LocalBackend {
    /// A backend rooted at `root` (which need not exist until [`Backend::create`]).
    pub fn new(root: impl Into<PathBuf>) -> LocalBackend {
        LocalBackend { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn dir_of(&self, kind: FileKind, name: &str) -> PathBuf {
        let mut dir = self.root.join(kind.dir());
        if kind.fanned_out() {
            dir.push(&name[..name.len().min(2)]);
        }
        dir
    }

    fn path_of(&self, kind: FileKind, name: &str) -> Result<PathBuf, Error> {
        check_name(kind, name)?;
        Ok(self.dir_of(kind, name).join(name))
    }

    /// The directory of `kind`'s objects, made (0700) when it is missing: a
    /// repository copied by a tool that drops empty directories (git, some
    /// sync tools) may have lost `locks/`, and must still take locks.
    fn kind_dir(&self, kind: FileKind) -> io::Result<PathBuf> {
        let dir = self.root.join(kind.dir());
        if kind != FileKind::Config && !dir.is_dir() {
            Self::make_dir(&dir)?;
            sync_dir(&self.root)?;
        }
        Ok(dir)
    }

    fn make_dir(path: &Path) -> io::Result<()> {
        match DirBuilder::new().mode(0o700).create(path) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && path.is_dir() => Ok(()),
            other => other,
        }
    }

    fn list_dir(dir: &Path, kind: FileKind, out: &mut Vec<Entry>) -> Result<(), Error> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io(kind, "", e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(kind, "", e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            // An entry removed since the directory was read (by another
            // process's forget or prune) is simply not there any more.
            let file_type = match entry.file_type() {
                Ok(file_type) => file_type,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(kind, &name, e)),
            };
            if kind.fanned_out() && file_type.is_dir() && name.len() == 2 {
                Self::list_dir(&entry.path(), kind, out)?;
            } else if file_type.is_file() && check_name(kind, &name).is_ok() {
                // Temporary files (".tmp…") fail the name check and are skipped.
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io(kind, &name, e)),
                };
                out.push(Entry {
                    name,
                    size: meta.len(),
                    modified: meta.modified().ok(),
                });
            }
        }
        Ok(())
    }
}

/// Writes of a staged object are gathered into pieces of this size.
const STAGE_BUFFER: usize = 256 << 10;

/// A new object written into a temporary file in its kind's directory.
struct LocalStaged {
    backend: LocalBackend,
    kind: FileKind,
    file: BufWriter<NamedTempFile>,
    /// Deletes the file if the process is interrupted (declared after it,
    /// so it is forgotten only once the file is gone).
    guard: cleanup::Guard,
}

impl LocalStaged {
    fn error(&self, e: io::Error) -> Error {
        let temporary = self.file.get_ref().path().file_name();
        let name = temporary.map_or("(new)".into(), |n| n.to_string_lossy());
        Error::io(self.kind, &name, e)
    }
}

impl Staged for LocalStaged {
    fn write(&mut self, bytes: &[u8]) -> Result<(), Error> {
        self.file.write_all(bytes).map_err(|e| self.error(e))
    }

    fn commit(self: Box<Self>, name: &str) -> Result<(), Error> {
        let LocalStaged {
            backend,
            kind,
            guard: _guard,
            file,
        } = *self;
        let path = backend.path_of(kind, name)?;
        let tmp = file
            .into_inner()
            .map_err(|e| Error::io(kind, name, e.into_error()))?;
        backend.persist(tmp, kind, name, &path)
    }
}

impl LocalBackend {
    /// Makes a complete temporary file the object `name`: fsync, link into
    /// place without replacing anything, fsync the directory.
    fn persist(
        &self,
        tmp: NamedTempFile,
        kind: FileKind,
        name: &str,
        path: &Path,
    ) -> Result<(), Error> {
        let io_err = |e| Error::io(kind, name, e);
        let dir = self.dir_of(kind, name);
        if kind.fanned_out() && !dir.is_dir() {
            Self::make_dir(&dir).map_err(io_err)?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent).map_err(io_err)?;
            }
        }
        tmp.as_file().sync_all().map_err(io_err)?;
        tmp.persist_noclobber(path).map_err(|e| io_err(e.error))?;
        sync_dir(&dir).map_err(io_err)
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Backend for LocalBackend {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> Result<(), Error> {
        let location = self.location();
        let fail = |kind, e| Error::repository(kind, &location, Some(e));
        match fs::read_dir(&self.root) {
            Ok(mut entries) => {
                if entries.next().is_some() {
                    return Err(Error::repository(ErrorKind::AlreadyExists, &location, None));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&self.root)
                    .map_err(|e| fail(ErrorKind::Io, e))?;
            }
            Err(e) => return Err(fail(ErrorKind::Io, e)),
        }
        for kind in FileKind::ALL {
            if kind != FileKind::Config {
                Self::make_dir(&self.root.join(kind.dir())).map_err(|e| fail(ErrorKind::Io, e))?;
            }
        }
        sync_dir(&self.root).map_err(|e| fail(ErrorKind::Io, e))
    }

    fn list(&self, kind: FileKind) -> Result<Vec<Entry>, Error> {
        let mut out = Vec::new();
        if kind == FileKind::Config {
            if let Ok(size) = self.size(kind, "config") {
                out.push(Entry {
                    name: "config".into(),
                    size,
                    modified: None,
                });
            }
            return Ok(out);
        }
        Self::list_dir(&self.root.join(kind.dir()), kind, &mut out)?;
        Ok(out)
    }

    fn read(&self, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>, Error> {
        let path = self.path_of(kind, name)?;
        let io_err = |e| Error::io(kind, name, e);
        let (file, size) = open_object(&path).map_err(io_err)?;
        if size > max {
            return Err(Error::new(ErrorKind::TooLarge, kind, name, None));
        }
        // Never more than one byte past the bound, whatever stat said.
        let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        file.take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        if bytes.len() as u64 > max {
            return Err(Error::new(ErrorKind::TooLarge, kind, name, None));
        }
        Ok(bytes)
    }

    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error> {
        let path = self.path_of(kind, name)?;
        let io_err = |e| Error::io(kind, name, e);
        let (mut file, size) = open_object(&path).map_err(io_err)?;
        if offset.checked_add(length).is_none_or(|end| end > size) {
            return Err(Error::new(ErrorKind::OutOfRange, kind, name, None));
        }
        file.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        let mut buf = vec![
            0;
            usize::try_from(length).map_err(|_| Error::new(
                ErrorKind::OutOfRange,
                kind,
                name,
                None
            ))?
        ];
        file.read_exact(&mut buf).map_err(io_err)?;
        Ok(buf)
    }

    fn write(&self, kind: FileKind, name: &str, bytes: &[u8]) -> Result<(), Error> {
        let path = self.path_of(kind, name)?;
        let io_err = |e| Error::io(kind, name, e);
        let dir = self.kind_dir(kind).map_err(io_err)?;
        let (mut tmp, _guard) = cleanup::new_temporary_file(&dir, ".tmp").map_err(io_err)?;
        tmp.write_all(bytes).map_err(io_err)?;
        self.persist(tmp, kind, name, &path)
    }

    fn stage(&self, kind: FileKind) -> Result<Option<Box<dyn Staged>>, Error> {
        let dir = self
            .kind_dir(kind)
            .map_err(|e| Error::io(kind, "(new)", e))?;
        let (tmp, guard) =
            cleanup::new_temporary_file(&dir, ".tmp").map_err(|e| Error::io(kind, "(new)", e))?;
        Ok(Some(Box::new(LocalStaged {
            backend: self.clone(),
            kind,
            guard,
            file: BufWriter::with_capacity(STAGE_BUFFER, tmp),
        })))
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<(), Error> {
        let path = self.path_of(kind, name)?;
        fs::remove_file(&path).map_err(|e| Error::io(kind, name, e))?;
        sync_dir(&self.dir_of(kind, name)).map_err(|e| Error::io(kind, name, e))
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64, Error> {
        let path = self.path_of(kind, name)?;
        let meta = fs::metadata(path).map_err(|e| Error::io(kind, name, e))?;
        Ok(meta.len())
    }
}
