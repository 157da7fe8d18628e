//! The arca engine: a content-addressed, deduplicating, encrypted snapshot
//! repository (format v1, specified in `docs/format.md`).
//!
//! - [`Repository`]: open or create a repository on any
//!   [`arca_backend::Backend`]; read snapshots, trees and blobs. Damaged
//!   snapshot and index files are skipped and recorded
//!   ([`Repository::damaged`], [`Repository::on_damage`]).
//! - [`snapshot()`]: take a snapshot of local paths ([`SnapshotOptions`]).
//! - [`restore()`]: write a snapshot back to a directory, through directory
//!   handles, past damage ([`RestoreSummary::damaged`]).
//! - [`check()`], [`repair_index()`], [`repair_packs()`],
//!   [`repair_snapshots()`]: find damage and repair it.
//! - [`measure_tree()`]: how deep a snapshot nests and how many paths it
//!   expands to, within the format's limits.
//! - [`plan_copy()`] and [`copy_snapshots()`]: copy snapshots to another
//!   repository.
//! - [`list()`] and [`walk()`]: browse a snapshot's trees.
//! - [`list_keys()`], [`add_key()`], [`remove_key()`],
//!   [`change_password()`]: the passwords that open a repository.
//! - The format objects: [`Config`], [`KeyFile`], [`PackWriter`],
//!   [`IndexFile`], [`Tree`], [`Snapshot`]; their constants live in
//!   [`format`].
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
mod ops;
mod pack;
mod repository;
pub mod retention;
mod snapshot;
mod source;
mod target;
mod time;
mod tree;

pub use blob::{BlobKind, Sealer, open as open_blob};
pub use cache::CachedBackend;
pub use chunker::Chunker;
pub use config::{ChunkerParams, Config, InitOptions};
pub use crypto::MasterKey;
#[doc(hidden)]
pub use crypto::with_fixed_nonces;
pub use damage::{DamageReporter, Damaged};
pub use error::{Error, ErrorKind, Result};
pub use exact::ExactReader;
pub use id::{BlobId, Id, IndexId, KeyId, PackId, SnapshotId, TreeId};
pub use index::{Index, IndexFile, IndexPack, Location, PackInfo};
pub use key::{KdfParams, KeyFile};
pub use lock::{
    FoundLock, Lock, LockMode, LockRecord, REFRESH_INTERVAL, STALE_AFTER, list_locks, remove_locks,
};
pub use ops::browse::{Change, Difference, Finder, Pattern, diff, write_content};
pub use ops::check::{
    Affected, CheckOptions, CheckProgress, CheckReport, Problem, Subset, bucket_of, check,
};
pub use ops::copy::{
    CopiedSnapshot, CopyOptions, CopyPlan, CopyProgress, CopyReport, copy_snapshots, plan_copy,
};
pub use ops::keys::{KeyInfo, add_key, change_password, list_keys, remove_key};
pub use ops::ls::{find as find_node, list, walk};
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
pub use ops::shape::{Shape, measure as measure_tree, measure_with as measure_tree_with};
pub use ops::snapshot::{
    CHECKPOINT_INTERVAL, Progress, SnapshotOptions, SnapshotOutcome, Warning, WarningKind,
    snapshot, snapshot_stream,
};
pub use ops::stats::{Stats, stats};
pub use pack::{FinishedPack, PackBody, PackEntry, PackWriter, read_header};
pub use repository::{Owner, Repository};
pub use snapshot::{Origin, Snapshot, Summary};
pub use source::{ExcludeOptions, absolute};
pub use time::{Time, Timestamp};
pub use tree::{Node, NodeKind, Tree, Xattr};
