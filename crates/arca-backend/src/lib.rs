//! Storage backends for arca.
//!
//! A backend moves opaque bytes by [`FileKind`] and name. It knows nothing
//! about encryption, packs or indexes: everything it stores was sealed by the
//! engine before it got here, and every name is already the hex BLAKE3 hash
//! of the bytes (except the single `config` object).
//!
//! - [`Backend`]: the trait and its contract.
//! - [`LocalBackend`]: a directory on a local filesystem.
//! - [`MemoryBackend`]: an in-process map, for tests.
//! - `RemoteBackend`: S3-compatible object stores and SFTP hosts through
//!   Apache OpenDAL (cargo features `s3` and `sftp`, both on by default).
//! - [`RetryBackend`]: wraps any backend; retries transient failures with
//!   exponential backoff and counts requests and bytes.
//! - [`fault::FaultBackend`]: wraps any backend; fails on a schedule, for
//!   tests.
//! - [`cleanup`]: temporary files and locks to undo when a signal stops the
//!   process.
//!
//! ```
//! use arca_backend::{Backend, FileKind, MemoryBackend};
//!
//! let backend = MemoryBackend::new();
//! backend.create().unwrap();
//! backend.write(FileKind::Snapshot, "ab12", b"sealed bytes").unwrap();
//! assert_eq!(backend.read(FileKind::Snapshot, "ab12", 1024).unwrap(), b"sealed bytes");
//! ```

pub mod cleanup;
mod error;
pub mod fault;
mod kind;
mod local;
mod memory;
#[cfg(feature = "remote")]
mod remote;
mod retry;

pub use error::{Error, ErrorKind};
pub use kind::FileKind;
pub use local::LocalBackend;
pub use memory::MemoryBackend;
#[cfg(feature = "remote")]
pub use remote::RemoteBackend;
#[cfg(feature = "s3")]
pub use remote::S3Config;
#[cfg(feature = "sftp")]
pub use remote::SftpConfig;
pub use retry::{Log, RetryBackend, RetryPolicy, TransferCounts, TransferStats};

/// One stored object as [`Backend::list`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The object's name within its kind (for data and tree packs, without the
    /// two-character fan-out directory).
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// When it was stored, where the storage tells (prune leaves alone
    /// unindexed packs younger than its grace period).
    pub modified: Option<std::time::SystemTime>,
}

/// Where repository objects live.
///
/// # Contract
///
/// - **Names.** An object is addressed by its kind and a name. For every kind
///   but [`FileKind::Config`] the name is lowercase hex (the engine uses the
///   BLAKE3 hash of the stored bytes); the backend may fan names out into
///   sub-directories but reports and accepts the plain name.
/// - **Listing** reports only objects, each where its name puts it, so that
///   every listed name can be read and removed by that name. Anything else
///   in a kind's directory — a file under the wrong fan-out directory or
///   beside them, a name that is not valid, a link or directory where a
///   file belongs — is not an object: it is never listed, and so never read
///   or removed. [`Backend::strays`] names such entries, for reports.
/// - **No overwrite.** [`Backend::write`] never replaces an existing object: if
///   the name exists it fails with [`ErrorKind::AlreadyExists`] and the stored
///   object is untouched. Content addressing makes a second write of the same
///   name redundant, and refusing it means no command can damage an object
///   another one relies on.
/// - **Atomic, durable writes.** When `write` returns `Ok`, the whole object is
///   stored durably (for the local backend: written to a temporary name,
///   fsynced, renamed into place, directory fsynced). A crash at any point
///   leaves either the complete object or no object under that name; leftover
///   temporary files are never listed.
/// - **Reads** return exactly the bytes written, or an error; a range read
///   past the end of the object is an error, not a short read. A whole read
///   names the most bytes the caller accepts, and no more than one byte past
///   that is ever taken from storage, whatever the object's size or what
///   the storage says of it (a local path that is a link to `/dev/zero`, a
///   server that sends more than it announced): a larger object is
///   [`ErrorKind::TooLarge`].
/// - **Remove** deletes one object. Removing a missing object is
///   [`ErrorKind::NotFound`] where the storage can tell; object stores
///   cannot, and report success.
/// - **Transient failures** (timeouts, dropped connections, throttling,
///   server errors) are reported as [`ErrorKind::Transient`], so that
///   [`RetryBackend`] knows what is worth trying again.
/// - **Thread safety.** All methods take `&self`; callers may use one backend
///   from many threads at once.
pub trait Backend: Send + Sync {
    /// A human-readable address of this repository, for messages.
    fn location(&self) -> String;

    /// Prepares an empty repository layout. Fails with
    /// [`ErrorKind::AlreadyExists`] when the target exists and is not empty,
    /// leaving it untouched.
    fn create(&self) -> Result<(), Error>;

    /// Lists the objects of one kind, in no particular order.
    fn list(&self, kind: FileKind) -> Result<Vec<Entry>, Error>;

    /// Entries in the directory of `kind` that are not objects (see
    /// **Listing** above), as paths from the repository's root; temporary
    /// files of writes in progress are left out. Only for reporting: they
    /// are nobody's to remove. Backends that cannot tell report none.
    fn strays(&self, kind: FileKind) -> Result<Vec<String>, Error> {
        let _ = kind;
        Ok(Vec::new())
    }

    /// Reads a whole object of at most `max` bytes.
    fn read(&self, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>, Error>;

    /// Reads `length` bytes at `offset` of an object.
    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error>;

    /// Stores a new object atomically and durably; never overwrites.
    fn write(&self, kind: FileKind, name: &str, bytes: &[u8]) -> Result<(), Error>;

    /// Removes one object.
    fn remove(&self, kind: FileKind, name: &str) -> Result<(), Error>;

    /// The size of an object in bytes ([`ErrorKind::NotFound`] when missing).
    /// Callers use it to bound what they are about to read.
    fn size(&self, kind: FileKind, name: &str) -> Result<u64, Error>;

    /// How many requests are worth having in flight at once.
    fn connections(&self) -> usize {
        2
    }

    /// Starts a new object of `kind` that is written piece by piece and
    /// named only when complete (a pack, whose name is the hash of all its
    /// bytes), so that it never has to be held in memory whole. `None` when
    /// the backend cannot do that better than [`Backend::write`]; callers
    /// then assemble the object in memory.
    fn stage(&self, kind: FileKind) -> Result<Option<Box<dyn Staged>>, Error> {
        let _ = kind;
        Ok(None)
    }

    /// Whether an object exists.
    fn exists(&self, kind: FileKind, name: &str) -> Result<bool, Error> {
        match self.size(kind, name) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A shared backend is a backend, so wrappers can hold one.
impl<T: Backend + ?Sized> Backend for std::sync::Arc<T> {
    fn location(&self) -> String {
        (**self).location()
    }
    fn create(&self) -> Result<(), Error> {
        (**self).create()
    }
    fn list(&self, kind: FileKind) -> Result<Vec<Entry>, Error> {
        (**self).list(kind)
    }
    fn strays(&self, kind: FileKind) -> Result<Vec<String>, Error> {
        (**self).strays(kind)
    }
    fn read(&self, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>, Error> {
        (**self).read(kind, name, max)
    }
    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error> {
        (**self).read_range(kind, name, offset, length)
    }
    fn write(&self, kind: FileKind, name: &str, bytes: &[u8]) -> Result<(), Error> {
        (**self).write(kind, name, bytes)
    }
    fn remove(&self, kind: FileKind, name: &str) -> Result<(), Error> {
        (**self).remove(kind, name)
    }
    fn size(&self, kind: FileKind, name: &str) -> Result<u64, Error> {
        (**self).size(kind, name)
    }
    fn exists(&self, kind: FileKind, name: &str) -> Result<bool, Error> {
        (**self).exists(kind, name)
    }
    fn connections(&self) -> usize {
        (**self).connections()
    }
    fn stage(&self, kind: FileKind) -> Result<Option<Box<dyn Staged>>, Error> {
        (**self).stage(kind)
    }
}

/// A new object being written piece by piece (see [`Backend::stage`]).
/// Nothing is visible under any name until [`Staged::commit`]; dropping it
/// uncommitted discards what was written.
pub trait Staged: Send {
    /// Appends bytes to the object.
    fn write(&mut self, bytes: &[u8]) -> Result<(), Error>;

    /// Stores everything written under `name`, with the guarantees of
    /// [`Backend::write`]: atomic, durable, and never replacing an existing
    /// object ([`ErrorKind::AlreadyExists`], the staged bytes discarded).
    fn commit(self: Box<Self>, name: &str) -> Result<(), Error>;
}

/// Checks a name against the contract: `config` for the config object,
/// 1 to 128 lowercase hex characters otherwise.
fn check_name(kind: FileKind, name: &str) -> Result<(), Error> {
    let ok = match kind {
        FileKind::Config => name == "config",
        _ => {
            !name.is_empty()
                && name.len() <= 128
                && name
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::new(ErrorKind::InvalidName, kind, name, None))
    }
}

/// The name of the object of `kind` stored at `path` (from the repository's
/// root, `/`-separated), if `path` is exactly where the object of that name
/// lives: `<dir>/<name>`, or `<dir>/<nn>/<name>` for packs, where `<nn>` is
/// the name's first two characters.
fn object_at(kind: FileKind, path: &str) -> Option<&str> {
    let name = match kind {
        FileKind::Config => path,
        _ => {
            let rest = path.strip_prefix(kind.dir())?.strip_prefix('/')?;
            if kind.fanned_out() {
                let (fan, name) = rest.split_once('/')?;
                (name.get(..name.len().min(2)) == Some(fan)).then_some(name)?
            } else {
                rest
            }
        }
    };
    check_name(kind, name).ok().map(|()| name)
}

/// Whether `name` is a temporary file of a write in progress (or of one a
/// crash interrupted): never an object, never worth reporting.
fn is_temporary(name: &str) -> bool {
    name.starts_with(".tmp")
}

#[cfg(test)]
mod tests;
