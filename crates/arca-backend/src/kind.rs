use std::fmt;

/// The kinds of object a repository stores, each in its own namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// The single `config` object.
    Config,
    /// Password-wrapped copies of the master key, under `keys/`.
    Key,
    /// Packs of data blobs, under `data/<2 hex>/`.
    Data,
    /// Packs of tree blobs, under `tree/<2 hex>/`.
    Tree,
    /// Index files, under `index/`.
    Index,
    /// Snapshot files, under `snapshots/`.
    Snapshot,
    /// Lock files, under `locks/`.
    Lock,
    /// Archived PostgreSQL WAL files, one self-contained object each, under
    /// `wal/`.
    Wal,
}

impl FileKind {
    /// Every kind, in the order `init` creates their directories.
    pub const ALL: [FileKind; 8] = [
        FileKind::Config,
        FileKind::Key,
        FileKind::Data,
        FileKind::Tree,
        FileKind::Index,
        FileKind::Snapshot,
        FileKind::Lock,
        FileKind::Wal,
    ];

    /// The directory holding objects of this kind (empty for `config`).
    pub fn dir(self) -> &'static str {
        match self {
            FileKind::Config => "",
            FileKind::Key => "keys",
            FileKind::Data => "data",
            FileKind::Tree => "tree",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshots",
            FileKind::Lock => "locks",
            FileKind::Wal => "wal",
        }
    }

    /// Whether names of this kind are fanned out by their first two characters.
    pub fn fanned_out(self) -> bool {
        matches!(self, FileKind::Data | FileKind::Tree)
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            FileKind::Config => "config",
            FileKind::Key => "key",
            FileKind::Data => "data pack",
            FileKind::Tree => "tree pack",
            FileKind::Index => "index",
            FileKind::Snapshot => "snapshot",
            FileKind::Lock => "lock",
            FileKind::Wal => "WAL object",
        };
        f.write_str(s)
    }
}
