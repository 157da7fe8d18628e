//! The documented `--json` views (docs/json.md) that more than one command
//! prints; their field names are part of the CLI contract. Views of one
//! command only live with that command.

use arca_core::ops::forget::{ForgetPlan, Planned};
use arca_core::retention::GroupKey;
use arca_core::{NodeKind, PackAction, PrunePlan, Snapshot, SnapshotId};
use serde::Serialize;

/// A snapshot as `snapshots`, `snapshot` and `copy` show it.
#[derive(Serialize)]
pub struct SnapshotJson<'a> {
    /// `None` only for a dry run, which saves no snapshot.
    pub id: Option<String>,
    pub short_id: Option<String>,
    pub time: String,
    pub tree: String,
    pub paths: Vec<String>,
    pub hostname: &'a str,
    pub username: &'a str,
    pub tags: &'a [String],
    pub description: &'a str,
    pub parent: Option<String>,
    pub program_version: &'a str,
    pub summary: Option<&'a arca_core::Summary>,
    /// For a repaired snapshot: the damaged original.
    pub original: Option<String>,
    /// For a copied snapshot: the repository and snapshot it came from.
    pub copied_from: Option<OriginJson>,
}

/// `{"repository": hex, "snapshot": hex}`.
#[derive(Serialize)]
pub struct OriginJson {
    pub repository: String,
    pub snapshot: String,
}

impl<'a> SnapshotJson<'a> {
    pub fn new(id: Option<&SnapshotId>, snap: &'a Snapshot) -> SnapshotJson<'a> {
        SnapshotJson {
            id: id.map(SnapshotId::to_hex),
            short_id: id.map(SnapshotId::short),
            time: snap.time.to_rfc3339(),
            tree: snap.tree.to_hex(),
            paths: snap.path_strings(),
            hostname: &snap.hostname,
            username: &snap.username,
            tags: &snap.tags,
            description: &snap.description,
            parent: snap.parent.map(|p| p.to_hex()),
            program_version: &snap.program_version,
            summary: snap.summary.as_ref(),
            original: snap.original.map(|o| o.to_hex()),
            copied_from: snap.copied_from.map(|o| OriginJson {
                repository: o.repository.to_hex(),
                snapshot: o.snapshot.to_hex(),
            }),
        }
    }
}

/// The `type` of a tree entry in `ls` and `find`.
pub fn kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::Socket => "socket",
        NodeKind::Chardev => "chardev",
        NodeKind::Blockdev => "blockdev",
    }
}

/// One snapshot in `forget --json`.
#[derive(Serialize)]
pub struct ForgetSnapshotJson {
    pub id: String,
    pub short_id: String,
    pub time: String,
    /// The time in the local zone, for the table.
    #[serde(skip)]
    pub local_time: String,
    pub hostname: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    /// Why it is kept (empty for removed snapshots).
    pub reasons: Vec<String>,
}

impl ForgetSnapshotJson {
    fn new(planned: &Planned) -> ForgetSnapshotJson {
        let id = planned.id;
        match &planned.snapshot {
            Some(snap) => ForgetSnapshotJson {
                id: id.to_hex(),
                short_id: id.short(),
                time: snap.time.to_rfc3339(),
                local_time: snap.time.to_local_string(),
                hostname: snap.hostname.clone(),
                paths: snap.path_strings(),
                tags: snap.tags.clone(),
                reasons: planned.reasons.clone(),
            },
            // A snapshot file that does not load: only its id is known.
            None => ForgetSnapshotJson {
                id: id.to_hex(),
                short_id: id.short(),
                time: String::new(),
                local_time: "(damaged)".into(),
                hostname: String::new(),
                paths: Vec::new(),
                tags: Vec::new(),
                reasons: Vec::new(),
            },
        }
    }
}

/// One group of `forget --json`.
#[derive(Serialize)]
pub struct ForgetGroupJson {
    pub key: GroupKey,
    pub keep: Vec<ForgetSnapshotJson>,
    pub remove: Vec<ForgetSnapshotJson>,
}

/// `forget --json`.
#[derive(Serialize)]
pub struct ForgetJson {
    pub dry_run: bool,
    /// The policy applied (absent when snapshots were named by id).
    pub policy: Option<String>,
    pub groups: Vec<ForgetGroupJson>,
    /// Ids of the snapshots removed (or, for a dry run, to remove).
    pub removed: Vec<String>,
    pub prune: Option<PruneJson>,
}

impl ForgetJson {
    pub fn new(plan: &ForgetPlan, dry_run: bool) -> ForgetJson {
        let list = |v: &[Planned]| v.iter().map(ForgetSnapshotJson::new).collect();
        ForgetJson {
            dry_run,
            policy: plan.policy.as_ref().map(ToString::to_string),
            groups: plan
                .groups
                .iter()
                .map(|g| ForgetGroupJson {
                    key: g.key.clone(),
                    keep: list(&g.keep),
                    remove: list(&g.remove),
                })
                .collect(),
            removed: plan.removed().iter().map(SnapshotId::to_hex).collect(),
            prune: None,
        }
    }
}

/// One pack whose fate changes, as `prune --json` and `--dry-run` show it.
#[derive(Serialize)]
pub struct PackJson {
    pub id: String,
    pub kind: String,
    pub size: u64,
    pub used_bytes: u64,
    pub action: &'static str,
}

/// What a prune did (or, for a dry run, would do).
#[derive(Serialize)]
pub struct PruneJson {
    pub dry_run: bool,
    pub snapshots: u64,
    pub blobs: u64,
    pub used_blobs: u64,
    pub packs: u64,
    pub delete_packs: u64,
    pub delete_bytes: u64,
    pub mark_packs: u64,
    pub mark_bytes: u64,
    pub unmark_packs: u64,
    pub repack_packs: u64,
    pub repack_bytes: u64,
    pub copy_bytes: u64,
    pub waiting_packs: u64,
    pub waiting_bytes: u64,
    /// Bytes this run frees (for a dry run: would free).
    pub bytes_freed: u64,
    /// Bytes a later prune frees once the marks are older than the grace period.
    pub bytes_freed_later: u64,
    pub size_before: u64,
    /// For a dry run: an estimate.
    pub size_after: u64,
    pub changes: Vec<PackJson>,
    /// Archived WAL files removed (for a dry run: to remove), by name.
    pub wal_removed: Vec<String>,
    /// Their stored bytes.
    pub wal_bytes_freed: u64,
    /// Archived WAL files kept.
    pub wal_kept: u64,
}

impl PruneJson {
    /// The view of a plan, before it is carried out: sizes as they are.
    pub fn new(plan: &PrunePlan, dry_run: bool, size_before: u64, later: u64) -> PruneJson {
        let s = &plan.stats;
        PruneJson {
            dry_run,
            snapshots: s.snapshots,
            blobs: s.blobs,
            used_blobs: s.used_blobs,
            packs: s.packs,
            delete_packs: s.delete_packs,
            delete_bytes: s.delete_bytes,
            mark_packs: s.mark_packs,
            mark_bytes: s.mark_bytes,
            unmark_packs: s.unmark_packs,
            repack_packs: s.repack_packs,
            repack_bytes: s.repack_bytes,
            copy_bytes: s.copy_bytes,
            waiting_packs: s.waiting_packs,
            waiting_bytes: s.waiting_bytes,
            bytes_freed: 0,
            bytes_freed_later: later,
            size_before,
            size_after: size_before,
            changes: plan
                .packs
                .iter()
                .filter(|p| {
                    !matches!(
                        p.action,
                        PackAction::Keep | PackAction::KeepMarked | PackAction::Wait
                    )
                })
                .map(|p| PackJson {
                    id: p.id.to_hex(),
                    kind: p.kind.to_string(),
                    size: p.size,
                    used_bytes: p.used_bytes,
                    action: p.action.as_str(),
                })
                .collect(),
            wal_removed: plan.wal.remove.iter().map(|r| r.file.clone()).collect(),
            wal_bytes_freed: plan.wal.bytes(),
            wal_kept: plan.wal.kept,
        }
    }
}
