//! The arca engine: a content-addressed, deduplicating, encrypted snapshot
//! repository (format v1, specified in `docs/format.md`).
//!
//! - [`Repository`]: open or create a repository on any
//!   [`arca_backend::Backend`]; read snapshots, trees and blobs. Damaged
//!   snapshot and index files are skipped and recorded
//!   ([`Repository::damaged`], [`Repository::on_damage`]).
//! - [`snapshot()`]: take a snapshot of local paths ([`SnapshotOptions`]).
//!   [`scan()`] counts what it will hold, for a total beside its progress.
//! - [`restore()`]: write a snapshot back to a directory, through directory
//!   handles, past damage ([`RestoreSummary::damaged`]);
//!   [`preview_restore()`] says what it would write, overwrite and delete.
//! - [`check()`], [`repair_index()`], [`repair_packs()`],
//!   [`repair_snapshots()`]: find damage and repair it.
//! - [`measure_tree()`]: how deep a snapshot nests and how many paths it
//!   expands to, within the format's limits.
//! - [`plan_copy()`] and [`copy_snapshots()`]: copy snapshots to another
//!   repository.
//! - [`archive_wal()`] and [`restore_wal()`]: PostgreSQL WAL files, one
//!   self-contained object each beside the packs ([`verify_wal()`],
//!   [`copy_wal()`], [`list_wal()`]); [`wal_summary()`] says how far the
//!   archive reaches without reading every object.
//! - [`list()`] and [`walk()`]: browse a snapshot's trees.
//! - [`SnapshotFs`]: the repository as a read-only file system
//!   (`snapshots/`, `hosts/`, `tags/`, `latest`) for a FUSE adapter:
//!   lookups, listings, attributes and reads at an offset through a
//!   bounded blob cache.
//! - [`list_keys()`], [`add_key()`], [`remove_key()`],
//!   [`change_password()`]: the passwords that open a repository.
//! - [`select`]: which snapshot a name (`latest`, an id prefix, a time)
//!   means, under a [`select::SnapshotFilter`].
//! - [`ops::tag`]: change the tags of stored snapshots (each replaced by a
//!   new snapshot that records its `original`).
//! - [`ops::rewrite`]: remove paths from stored snapshots (each replaced
//!   by a new snapshot that records its `original`; the data goes at the
//!   next prune).
//! - [`ops::forget`]: decide which snapshots to forget (by a [`retention`]
//!   policy or by id), then remove them. Every destructive operation is
//!   planned first and carried out second, and the carrying out takes the
//!   [`Lock`] it needs ([`execute_prune()`], the repairs, key removal).
//! - The objects as a program sees them: [`RepositoryConfig`], [`Tree`],
//!   [`Node`], [`Snapshot`]; the format's building blocks (packs, index and
//!   key files, sealing) are in [`raw`], its constants in [`mod@format`].
//!
//! ```
//! use std::sync::Arc;
//! use arca_backend::MemoryBackend;
//! use arca_core::{InitOptions, KdfParams, Owner, Repository};
//!
//! let backend = Arc::new(MemoryBackend::new());
//! let options = InitOptions {
//!     kdf: KdfParams { memory_kib: 8 * 1024, iterations: 1, parallelism: 1 },
//!     ..InitOptions::default()
//! };
//! Repository::init(backend.clone(), b"secret", &options, &Owner::default()).unwrap();
//! let mut repo = Repository::open(backend, b"secret").unwrap();
//! repo.load_index().unwrap();
//! assert!(repo.snapshots().unwrap().is_empty());
//! ```

#![warn(missing_docs)]

mod blob;
mod cache;
mod chunker;
mod config;
mod crypto;
mod damage;
mod error;
mod exact;
mod file;
pub mod format;
mod id;
mod index;
mod key;
mod lock;
pub mod ops;
mod pack;
mod paged;
pub mod pg;
mod repository;
pub mod retention;
pub mod select;
mod snapshot;
mod source;
pub mod sqlite;
mod target;
mod time;
mod tree;
mod wal;

// The repository, its objects as a program sees them, and errors.
pub use blob::BlobKind;
pub use config::{ChunkerParams, Config as RepositoryConfig, InitOptions};
#[doc(hidden)]
pub use crypto::with_fixed_nonces;
pub use damage::{DamageReporter, Damaged};
pub use error::{Error, ErrorKind, Result};
pub use id::{BlobId, Id, IndexId, KeyId, PackId, SnapshotId, TreeId};
pub use key::KdfParams;
pub use lock::{FoundLock, Lock, LockMode, LockRecord, list_locks, remove_locks};
pub use repository::{Owner, Repository};
pub use snapshot::{Origin, Snapshot, Summary};
pub use source::{ExcludeOptions, absolute};
pub use time::{Time, Timestamp};
pub use tree::{Node, NodeKind, Tree, Xattr};

// The operations (each also under `ops::`), with their options and reports.
pub use ops::browse::{Change, Difference, Finder, Pattern, diff, write_content};
pub use ops::check::{Affected, CheckOptions, CheckProgress, CheckReport, Problem, Subset, check};
pub use ops::copy::{
    CopiedSnapshot, CopyOptions, CopyPlan, CopyProgress, CopyReport, copy_snapshots, plan_copy,
};
pub use ops::keys::{KeyInfo, add_key, change_password, list_keys, remove_key};
pub use ops::ls::{find as find_node, list, walk};
pub use ops::mount::{Attr, DirEntry, MountOptions, SnapshotFs};
pub use ops::preview::{Action as RestoreAction, PlannedPath, RestorePreview, preview_restore};
pub use ops::prune::{
    KEEP_MARKED_DEFAULT, MAX_UNUSED_DEFAULT, PackAction, PackPlan, PruneOptions, PrunePlan,
    PruneProgress, PruneStats, PruneSummary, execute_prune, plan_prune, repository_size,
};
pub use ops::repair::{
    RepairIndexReport, RepairPacksReport, RepairSnapshotsOptions, RepairedSnapshot, SalvagedPack,
    repair_index, repair_packs, repair_snapshots,
};
pub use ops::restore::{
    DamagedPath, LostRange, Overwrite, RestoreOptions, RestoreProgress, RestoreSummary, restore,
};
pub use ops::scan::{ScanTotals, scan};
pub use ops::shape::{Shape, measure as measure_tree};
pub use ops::snapshot::{
    CHECKPOINT_INTERVAL, FileChange, Progress as SnapshotProgress, SnapshotOptions,
    SnapshotOutcome, Warning as SnapshotWarning, WarningKind as SnapshotWarningKind, snapshot,
    snapshot_stream,
};
pub use ops::stats::{Stats, stats};
pub use wal::{
    Archived, WalCopyReport, WalHeader, WalSummary, archive_wal, copy_wal, is_wal_file_name,
    list_wal, restore_wal, verify_wal, wal_object_name, wal_summary,
};

/// The format's building blocks, below [`Repository`]: sealing blobs,
/// chunking, packs, index and key files, the metadata cache, and lock
/// timing. For tools that read or write repository objects directly
/// (tests, forensics, other implementations); a program that backs up and
/// restores needs none of it.
pub mod raw {
    pub use crate::blob::{Sealer, open as open_blob};
    pub use crate::cache::CachedBackend;
    pub use crate::chunker::Chunker;
    pub use crate::crypto::MasterKey;
    pub use crate::exact::ExactReader;
    pub use crate::index::{Index, IndexFile, IndexPack, Location, PackInfo};
    pub use crate::key::KeyFile;
    pub use crate::lock::{REFRESH_INTERVAL, STALE_AFTER};
    pub use crate::ops::check::bucket_of;
    pub use crate::ops::shape::measure_with as measure_tree_with;
    pub use crate::pack::{FinishedPack, PackBody, PackEntry, PackWriter, read_header};
    pub use crate::paged::{PageChunker, group_size as page_group_size};
    pub use crate::wal::{decode_wal, encode_wal};
}
