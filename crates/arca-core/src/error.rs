use std::io;
use std::path::PathBuf;

use crate::id::PackId;

/// What kind of failure, for callers that map errors to exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No repository at the given location.
    NoRepository,
    /// `init` on a location that is not empty.
    RepositoryExists,
    /// No key of the repository opens with the given password.
    WrongPassword,
    /// Repository bytes failed authentication or decoding.
    Corrupt,
    /// The repository uses a format this build does not read.
    UnsupportedVersion,
    /// A snapshot, path or object that was asked for does not exist.
    NotFound,
    /// A request that cannot be carried out as given.
    InvalidInput,
    /// Reading the backup source failed.
    Source,
    /// Writing the restore target failed.
    Target,
    /// The storage failed.
    Storage,
    /// Another process holds a conflicting lock.
    Locked,
    /// A concurrent operation removed data this one needed; nothing was
    /// saved, and running it again is safe.
    Conflict,
    /// A bug or broken invariant in arca itself, not the fault of the
    /// repository or of the caller.
    Internal,
}

/// An error of the engine; each variant names the thing it concerns.
///
/// Messages state what went wrong in the engine's terms; what to type about
/// it is for the program embedding the engine to add.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No repository at the location (the string).
    #[error("there is no repository at {0}")]
    NoRepository(String),
    /// `init` found the location (the string) not empty.
    #[error("{0} is not empty; a new repository needs an empty or missing directory")]
    RepositoryExists(String),
    /// No key of the repository at the location (the string) opens with the
    /// password.
    #[error("wrong password: no key of repository {0} opens with it")]
    WrongPassword(String),
    /// Repository bytes failed authentication or decoding.
    #[error("{object} is damaged or was tampered with: {reason}")]
    Corrupt {
        /// The object, such as `snapshot <id>` or `data pack <id>`.
        object: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The repository's config has a format version this build does not read.
    #[error(
        "repository {location} has format version {found} in its config, but this arca reads only version {supported}"
    )]
    UnsupportedVersion {
        /// Where the repository is.
        location: String,
        /// The version in its config.
        found: u32,
        /// The version this build reads.
        supported: u32,
    },
    /// Something asked for does not exist; the string says what.
    #[error("{0}")]
    NotFound(String),
    /// A request that cannot be carried out as given; the string says why.
    #[error("{0}")]
    InvalidInput(String),
    /// Reading the backup source failed.
    #[error("cannot read {}: {source}", path.display())]
    Source {
        /// The path that could not be read.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// Writing the restore target failed.
    #[error("cannot write {}: {source}", path.display())]
    Target {
        /// The path that could not be written.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The storage failed.
    #[error(transparent)]
    Storage(arca_backend::Error),
    /// Another process holds a conflicting lock.
    #[error("repository {location} is locked by {holder}")]
    Locked {
        /// Where the repository is.
        location: String,
        /// Who holds the lock: command, pid, user, host and since when.
        holder: String,
    },
    /// A lock this process holds could not be kept (removed by someone
    /// else, not refreshed in time), or taking it was interrupted.
    #[error("lost the lock on repository {location}: {reason}")]
    LockLost {
        /// Where the repository is.
        location: String,
        /// What happened to the lock.
        reason: String,
    },
    /// A concurrent operation removed data this one needed; nothing was
    /// saved, and running it again is safe. The string says what happened.
    #[error("{0}")]
    Conflict(String),
    /// Packs that the index lists, and that a snapshot or copy needs, are
    /// missing from storage; nothing was saved.
    #[error(
        "{operation} not saved: pack(s) {}, which hold data it needs, are missing from the storage of repository {location} although the index lists them; run the {operation} again",
        name_some(packs)
    )]
    PacksMissing {
        /// The operation that was not saved: `snapshot` or `copy`.
        operation: &'static str,
        /// Where the repository is.
        location: String,
        /// The missing packs.
        packs: Vec<PackId>,
    },
    /// Removing the key that opened the repository was not forced.
    #[error("key {key} is the key in use for repository {location}")]
    KeyInUse {
        /// The key's short id.
        key: String,
        /// Where the repository is.
        location: String,
    },
    /// A bug or broken invariant in arca itself; the string says what.
    #[error("internal error (a bug in arca): {0}")]
    Internal(String),
    /// An error of one of the two repositories an operation works on
    /// (`copy`'s source and destination).
    #[error("{role} repository {location}: {source}")]
    InRepository {
        /// Which repository: `source` or `destination`.
        role: &'static str,
        /// Where it is.
        location: String,
        /// The error.
        source: Box<Error>,
    },
}

impl Error {
    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoRepository(_) => ErrorKind::NoRepository,
            Error::RepositoryExists(_) => ErrorKind::RepositoryExists,
            Error::WrongPassword(_) => ErrorKind::WrongPassword,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::InvalidInput(_) => ErrorKind::InvalidInput,
            Error::Source { .. } => ErrorKind::Source,
            Error::Target { .. } => ErrorKind::Target,
            Error::Storage(_) => ErrorKind::Storage,
            Error::Locked { .. } => ErrorKind::Locked,
            Error::LockLost { .. } => ErrorKind::Locked,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::PacksMissing { .. } => ErrorKind::Conflict,
            Error::KeyInUse { .. } => ErrorKind::InvalidInput,
            Error::Internal(_) => ErrorKind::Internal,
            Error::InRepository { source, .. } => source.kind(),
        }
    }

    /// Whether this says that something in the repository is damaged or
    /// gone (what readers work around, keeping the damage local), rather
    /// than that the storage could not be reached (which stops them:
    /// nothing healthy may be given up for a dropped connection).
    pub fn is_damage(&self) -> bool {
        match self {
            Error::Corrupt { .. } | Error::NotFound(_) => true,
            Error::Storage(e) => matches!(
                e.kind(),
                arca_backend::ErrorKind::NotFound | arca_backend::ErrorKind::OutOfRange
            ),
            Error::InRepository { source, .. } => source.is_damage(),
            _ => false,
        }
    }

    /// Whether this says that an object is missing from storage.
    pub fn is_missing(&self) -> bool {
        match self {
            Error::Storage(e) => e.kind() == arca_backend::ErrorKind::NotFound,
            Error::InRepository { source, .. } => source.is_missing(),
            _ => false,
        }
    }

    /// A "damaged or tampered" error about `object`.
    pub(crate) fn corrupt(object: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            object: object.into(),
            reason: reason.into(),
        }
    }

    /// Says which repository (`role`: "source", "destination") `self`
    /// concerns; its kind stays the same.
    pub(crate) fn in_repository(self, role: &'static str, location: &str) -> Error {
        Error::InRepository {
            role,
            location: location.to_string(),
            source: Box::new(self),
        }
    }

    pub(crate) fn source(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Source {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn target(path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Target {
            path: path.into(),
            source,
        }
    }
}

impl From<arca_backend::Error> for Error {
    fn from(e: arca_backend::Error) -> Error {
        Error::Storage(e)
    }
}

/// The first three of `packs`, and how many more there are.
fn name_some(packs: &[PackId]) -> String {
    let names: Vec<String> = packs.iter().take(3).map(PackId::to_hex).collect();
    match packs.len() - names.len() {
        0 => names.join(", "),
        more => format!("{} and {more} more", names.join(", ")),
    }
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
