use std::{fmt, io};

use crate::FileKind;

/// What went wrong, for callers that need to react differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The object (or the repository) does not exist.
    NotFound,
    /// The object exists and the backend never overwrites; or `create` found a
    /// non-empty target.
    AlreadyExists,
    /// A name outside the contract (not hex, too long).
    InvalidName,
    /// A range read past the end of an object.
    OutOfRange,
    /// A whole object larger than the reader allows for its kind (nothing
    /// past that bound was read).
    TooLarge,
    /// A failure that may pass when the request is made again: a timeout, a
    /// reset connection, throttling, a server error (5xx).
    Transient,
    /// Any other failure of the storage.
    Io,
}

/// A storage failure, naming the object it concerns.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    object: String,
    #[source]
    source: Option<io::Error>,
}

impl Error {
    /// An error of `kind` about one object, with its cause.
    pub fn new(kind: ErrorKind, file: FileKind, name: &str, source: Option<io::Error>) -> Error {
        let object = match file {
            FileKind::Config => "config".to_string(),
            _ => format!("{file} {name}"),
        };
        Error {
            kind,
            object,
            source,
        }
    }

    /// An error about the repository as a whole rather than one object.
    pub(crate) fn repository(kind: ErrorKind, location: &str, source: Option<io::Error>) -> Error {
        Error {
            kind,
            object: format!("repository {location}"),
            source,
        }
    }

    /// A failure to list the objects of one kind.
    pub fn listing(
        kind: ErrorKind,
        file: FileKind,
        location: &str,
        source: Option<io::Error>,
    ) -> Error {
        Error {
            kind,
            object: format!("the {} of repository {location}", file.dir()),
            source,
        }
    }

    /// The same error, naming the repository the object belongs to.
    pub fn within(mut self, location: &str) -> Error {
        self.object = format!("{} of repository {location}", self.object);
        self
    }

    /// An I/O error, classified by its [`io::ErrorKind`].
    pub(crate) fn io(file: FileKind, name: &str, source: io::Error) -> Error {
        let kind = match source.kind() {
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::AlreadyExists => ErrorKind::AlreadyExists,
            io::ErrorKind::UnexpectedEof => ErrorKind::OutOfRange,
            _ => ErrorKind::Io,
        };
        Error::new(kind, file, name, Some(source))
    }

    /// The same failure, reclassified (a retry wrapper gives up on a
    /// transient failure by reporting it as what it now is).
    pub fn with_kind(mut self, kind: ErrorKind) -> Error {
        self.kind = kind;
        self
    }

    /// Whether trying the same request again may succeed.
    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }

    /// The class of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The object this error is about, e.g. `index 3fa2…` or `config`.
    pub fn object(&self) -> &str {
        &self.object
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ErrorKind::NotFound => "does not exist",
            ErrorKind::AlreadyExists => "already exists",
            ErrorKind::InvalidName => "has an invalid name",
            ErrorKind::OutOfRange => "is shorter than the range asked for",
            ErrorKind::TooLarge => "is larger than its kind allows (not read further)",
            ErrorKind::Transient | ErrorKind::Io => "could not be accessed",
        };
        write!(f, "{} {what}", self.object)?;
        if let (Some(source), ErrorKind::Io | ErrorKind::Transient) = (&self.source, self.kind) {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}
