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

use crate::{
    Backend, Entry, Error, ErrorKind, FileKind, Staged, check_name, cleanup, is_temporary,
    object_at,
};

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

    /// The objects of `kind` and, when `strays` is given, the paths of
    /// the other entries of its directory (temporary files left out).
    fn scan(
        &self,
        kind: FileKind,
        mut strays: Option<&mut Vec<String>>,
    ) -> Result<Vec<Entry>, Error> {
        let mut objects = Vec::new();
        let dir = kind.dir();
        for (name, file_type) in Self::entries(&self.root.join(dir), kind)? {
            let path = format!("{dir}/{name}");
            if kind.fanned_out() && file_type.is_dir() && is_fan_out(&name) {
                for (inner, file_type) in Self::entries(&self.root.join(&path), kind)? {
                    let path = format!("{path}/{inner}");
                    self.sort_entry(kind, path, file_type, &mut objects, strays.as_deref_mut())?;
                }
            } else {
                self.sort_entry(kind, path, file_type, &mut objects, strays.as_deref_mut())?;
            }
        }
        Ok(objects)
    }

    /// Adds the entry at `path` to `objects` if it is an object of `kind`
    /// where its name puts it, else to `strays` (unless temporary).
    fn sort_entry(
        &self,
        kind: FileKind,
        path: String,
        file_type: fs::FileType,
        objects: &mut Vec<Entry>,
        strays: Option<&mut Vec<String>>,
    ) -> Result<(), Error> {
        match object_at(kind, &path).filter(|_| file_type.is_file()) {
            Some(name) => {
                // An entry removed since the directory was read (by another
                // process's forget or prune) is simply not there any more.
                let meta = match fs::symlink_metadata(self.root.join(&path)) {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                    Err(e) => return Err(Error::io(kind, name, e)),
                };
                objects.push(Entry {
                    name: name.to_string(),
                    size: meta.len(),
                    modified: meta.modified().ok(),
                });
            }
            None => {
                let last = path.rsplit('/').next().unwrap_or_default();
                if let Some(strays) = strays
                    && !is_temporary(last)
                {
                    strays.push(path);
                }
            }
        }
        Ok(())
    }

    /// The entries of `dir` (none when it is missing) with their types; a
    /// name that is not UTF-8 is given lossily (it is no object's name).
    fn entries(dir: &Path, kind: FileKind) -> Result<Vec<(String, fs::FileType)>, Error> {
        let listing = match fs::read_dir(dir) {
            Ok(listing) => listing,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(kind, "", e)),
        };
        let mut entries = Vec::new();
        for entry in listing {
            let entry = entry.map_err(|e| Error::io(kind, "", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            match entry.file_type() {
                Ok(file_type) => entries.push((name, file_type)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(kind, &name, e)),
            }
        }
        Ok(entries)
    }
}

/// A fan-out directory's name: two lowercase hex digits.
fn is_fan_out(name: &str) -> bool {
    name.len() == 2
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
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
        self.scan(kind, None)
    }

    fn strays(&self, kind: FileKind) -> Result<Vec<String>, Error> {
        let mut strays = Vec::new();
        if kind != FileKind::Config {
            self.scan(kind, Some(&mut strays))?;
        }
        Ok(strays)
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
