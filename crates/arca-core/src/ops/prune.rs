//! Prune: give back the space of blobs no snapshot uses, without blocking
//! snapshots and without ever risking a snapshot that is kept.
//!
//! Deletion is two-phase. A prune finds every blob reachable from every
//! snapshot, then *marks* the packs holding none (recording the time in its
//! new index) instead of deleting them. Writers do not deduplicate against
//! marked packs, so a snapshot that starts after the mark never comes to
//! depend on one. A later prune deletes a marked pack once the mark is older
//! than the grace period — unless a snapshot written meanwhile uses a blob
//! in it, in which case the pack is unmarked and kept. A snapshot that was
//! already running when the mark was made, and finishes within the grace
//! period, is therefore safe; one that runs longer re-checks its blobs
//! before it saves its snapshot file (see `ops::snapshot`).
//!
//! Packs whose unused share exceeds `max_unused`, and small packs, are
//! repacked: their used blobs are copied, still sealed, into new packs, and
//! the old packs are marked like unused ones. Packs no index lists (left by
//! an interrupted or still-running snapshot) are listed as marked once they
//! are older than the grace period, and so deleted one grace period later.
//!
//! Order of writes: new packs, then one new index file superseding every
//! index file read, then the old index files are removed, then the packs.
//! An interruption anywhere leaves a repository whose index lists every
//! blob any snapshot needs.
//!
//! Planning and carrying out are separate: [`plan_prune`] returns a
//! [`PrunePlan`] that `--dry-run` prints and tests inspect, and
//! [`execute_prune`] carries it out.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arca_backend::{ErrorKind as BackendErrorKind, FileKind};

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::id::{Id, IndexId, PackId, SnapshotId, TreeId};
use crate::index::{self, Index, IndexFile, IndexPack};
use crate::lock::Lock;
use crate::ops::packer::Packer;
use crate::pack::PackEntry;
use crate::pg::{WalPlan, remove_wal};
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::time::{Time, Timestamp};

/// How prune decides.
#[derive(Clone, Debug)]
pub struct PruneOptions {
    /// Repack a pack when more than this share of its bytes is unused.
    pub max_unused: f64,
    /// How long a marked pack (or an unindexed one) is kept before deletion.
    pub keep_marked: Duration,
    /// Delete unused packs now instead of marking them: only safe when no
    /// other process writes to the repository.
    pub instant_delete: bool,
}

/// Default share of unused bytes above which a pack is repacked.
pub const MAX_UNUSED_DEFAULT: f64 = 0.05;

/// Default grace period of marked packs.
pub const KEEP_MARKED_DEFAULT: Duration = Duration::from_secs(24 * 3600);

impl Default for PruneOptions {
    fn default() -> PruneOptions {
        PruneOptions {
            max_unused: MAX_UNUSED_DEFAULT,
            keep_marked: KEEP_MARKED_DEFAULT,
            instant_delete: false,
        }
    }
}

/// What happens to one pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PackAction {
    /// In use; stays as it is.
    Keep,
    /// Was marked, but a snapshot uses it again: unmarked and kept.
    Unmark,
    /// Marked and unused, but its grace period is not over.
    KeepMarked,
    /// Unused: marked now, deleted by a later prune.
    Mark,
    /// Its used blobs are copied to new packs; then it is marked (or
    /// deleted at once with `instant_delete`).
    Repack,
    /// Deleted by this prune.
    Delete,
    /// No index lists it and it is older than the grace period: listed as
    /// marked, deleted by a later prune.
    Adopt,
    /// No index lists it, and it is younger than the grace period (perhaps
    /// a running snapshot's): left alone.
    Wait,
}

impl PackAction {
    /// The action's name, as plans print it (`keep-marked`, `repack`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            PackAction::Keep => "keep",
            PackAction::Unmark => "unmark",
            PackAction::KeepMarked => "keep-marked",
            PackAction::Mark => "mark",
            PackAction::Repack => "repack",
            PackAction::Delete => "delete",
            PackAction::Adopt => "adopt",
            PackAction::Wait => "wait",
        }
    }
}

/// One pack in a plan.
#[derive(Clone, Debug)]
pub struct PackPlan {
    /// The pack.
    pub id: PackId,
    /// Kind of every blob in it.
    pub kind: BlobKind,
    /// Stored size in bytes.
    pub size: u64,
    /// Blobs it holds.
    pub blobs: u64,
    /// Blobs in it that snapshots use.
    pub used_blobs: u64,
    /// Stored bytes of the used blobs.
    pub used_bytes: u64,
    /// When it was marked, if it was.
    pub marked: Option<Timestamp>,
    /// Whether an index file lists it.
    pub indexed: bool,
    /// What the prune does with it.
    pub action: PackAction,
    /// The blobs to copy when repacking.
    copy: Vec<PackEntry>,
}

/// Counts of a plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneStats {
    /// Snapshots whose data is kept.
    pub snapshots: u64,
    /// Distinct blobs in the index.
    pub blobs: u64,
    /// Distinct blobs those snapshots use.
    pub used_blobs: u64,
    /// Stored bytes of all packs (indexed or not).
    pub pack_bytes: u64,
    /// Packs in the plan (indexed or not).
    pub packs: u64,
    /// Packs this run deletes.
    pub delete_packs: u64,
    /// Stored bytes of those packs.
    pub delete_bytes: u64,
    /// Packs this run marks (a later prune deletes them).
    pub mark_packs: u64,
    /// Stored bytes of those packs.
    pub mark_bytes: u64,
    /// Marked packs that snapshots use again, unmarked by this run.
    pub unmark_packs: u64,
    /// Packs repacked.
    pub repack_packs: u64,
    /// Stored bytes of those packs.
    pub repack_bytes: u64,
    /// Stored bytes of the used blobs copied out of them.
    pub copy_bytes: u64,
    /// Marked packs still in their grace period.
    pub waiting_packs: u64,
    /// Stored bytes of those packs.
    pub waiting_bytes: u64,
}

/// What a prune will do.
#[derive(Clone, Debug)]
pub struct PrunePlan {
    /// Taken before the snapshots were listed; grace periods count to it.
    pub started: Timestamp,
    /// Every pack in storage or in the index, with its action.
    pub packs: Vec<PackPlan>,
    /// Every index file present; the new index supersedes them all.
    pub index_files: Vec<IndexId>,
    /// What the plan adds up to.
    pub stats: PruneStats,
    /// Whether carrying the plan out changes anything (packs or WAL).
    pub changes: bool,
    /// What WAL retention removes: the archived WAL no remaining base
    /// backup needs (docs/format.md §7.11).
    pub wal: WalPlan,
    /// Whether the packs or index change (else only WAL may).
    pack_changes: bool,
    /// Damage met while planning, and what the plan does about it (one
    /// sentence each, naming the object).
    pub warnings: Vec<String>,
    /// The blobs of every indexed or adopted pack.
    listings: HashMap<PackId, Vec<PackEntry>>,
    /// The snapshots the plan keeps data for.
    snapshots: HashSet<SnapshotId>,
}

/// What a prune did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneSummary {
    /// Repository size in bytes (packs, index files, snapshots, keys)
    /// before the prune.
    pub size_before: u64,
    /// The same after it.
    pub size_after: u64,
    /// New packs written by repacking.
    pub packs_written: u64,
    /// Packs deleted.
    pub packs_deleted: u64,
    /// Index files written.
    pub index_files_written: u64,
    /// Index files deleted (superseded by the new one).
    pub index_files_deleted: u64,
    /// Archived WAL files removed.
    pub wal_files_deleted: u64,
    /// Packs left as they were because they are damaged.
    pub warnings: Vec<String>,
}

/// Live counters for a progress display.
#[derive(Debug, Default)]
pub struct PruneProgress {
    /// Distinct trees walked to find the used blobs.
    pub trees: AtomicU64,
    /// Stored bytes copied into new packs by repacking.
    pub copied_bytes: AtomicU64,
    /// Packs deleted.
    pub deleted: AtomicU64,
}

/// One bit per distinct blob of an index.
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    /// Sets the bit; returns whether it was clear.
    fn set(&mut self, i: usize) -> bool {
        let was = self.get(i);
        self.0[i / 64] |= 1 << (i % 64);
        !was
    }
}

/// Visits every blob reachable from `roots` once, through `repo`'s index:
/// `found(kind, id, position)` with `None` for a blob the index lacks.
/// Trees the index lacks are not descended into.
pub(crate) fn visit_blobs(
    repo: &Repository,
    roots: impl IntoIterator<Item = TreeId>,
    progress: Option<&PruneProgress>,
    mut found: impl FnMut(BlobKind, Id, Option<usize>) -> Result<()>,
) -> Result<()> {
    let index = repo.index();
    let mut seen = Bits::new(index.len());
    let mut stack: Vec<TreeId> = roots.into_iter().collect();
    while let Some(tree_id) = stack.pop() {
        let position = index.position(BlobKind::Tree, &tree_id.id());
        found(BlobKind::Tree, tree_id.id(), position)?;
        let Some(position) = position else { continue };
        if !seen.set(position) {
            continue;
        }
        let tree = repo.read_tree(&tree_id)?;
        if let Some(p) = progress {
            p.trees.fetch_add(1, Ordering::Relaxed);
        }
        for node in tree.nodes {
            for blob in node.content {
                found(
                    BlobKind::Data,
                    blob.id(),
                    index.position(BlobKind::Data, &blob.id()),
                )?;
            }
            if let Some(subtree) = node.subtree {
                stack.push(subtree);
            }
        }
    }
    Ok(())
}

/// Loads the index and every snapshot and decides what to do with each
/// pack. Nothing is written.
pub fn plan_prune(
    repo: &mut Repository,
    options: &PruneOptions,
    progress: Option<&PruneProgress>,
) -> Result<PrunePlan> {
    let started = Time::now().at;
    // Snapshots before the index: a snapshot saved after this listing
    // either had its index read below, or uses packs too young to touch.
    // Every snapshot that decodes counts, whatever the loaded index says of
    // its tree: one whose tree cannot be found makes the plan delete
    // nothing (below), never its data unused.
    let snapshots = repo.decodable_snapshots()?;
    let files = repo.read_index_files()?;
    // Damaged index files are superseded too: what they described is read
    // from the packs' own headers below and goes into the new index.
    let damaged_files: Vec<IndexId> = repo
        .damaged()
        .iter()
        .filter(|d| d.kind == FileKind::Index)
        .filter_map(|d| Id::from_hex(&d.name).map(IndexId))
        .collect();
    let mut index_files: Vec<IndexId> = files.iter().map(|(id, _)| *id).collect();
    index_files.extend(damaged_files.iter().copied());
    let mut listings = index::listings(files);
    if !damaged_files.is_empty() {
        let mut known = Index::default();
        for pack in listings.values() {
            known.add(pack);
        }
        for (info, blobs) in repo.unindexed_pack_headers(&known)? {
            listings.insert(
                info.id,
                IndexPack {
                    id: info.id,
                    kind: info.kind.to_byte(),
                    size: info.size,
                    blobs,
                    marked: None,
                },
            );
        }
    }
    // Only packs in storage answer for blobs: a listing of a pack that is
    // gone (an index file put back, a lost pack) must not make the copy
    // that does exist look unused.
    let stored = stored_packs(repo)?;
    let mut index = Index::default();
    for pack in listings.values().filter(|p| stored.contains_key(&p.id)) {
        index.add(pack);
    }
    index.finish();
    *repo.index_mut() = index;
    let used = used_blobs(repo, &snapshots, progress)?;

    let mut plan = PrunePlan {
        started,
        packs: Vec::new(),
        index_files,
        stats: PruneStats {
            snapshots: snapshots.len() as u64,
            blobs: repo.index().len() as u64,
            ..PruneStats::default()
        },
        changes: false,
        wal: WalPlan::default(),
        pack_changes: false,
        warnings: used.warnings,
        listings: HashMap::new(),
        snapshots: snapshots.iter().map(|(id, _)| *id).collect(),
    };
    let (used, lost, unknown) = (used.bits, used.lost, used.unknown);
    plan.stats.used_blobs = (0..repo.index().len()).filter(|&i| used.get(i)).count() as u64;
    for pack in listings.values() {
        let mut pack_plan = classify(repo, pack, &used, &stored, started, options)?;
        if pack_plan.action == PackAction::Delete && !stored.contains_key(&pack.id) {
            let kind = pack_plan.kind;
            if pack.blobs.iter().any(|b| lost.contains(&(kind, b.id()))) {
                // Its blobs are nowhere else: keep saying where they were,
                // so that check and repair still name this pack.
                pack_plan.action = PackAction::Keep;
                plan.warnings.push(format!(
                    "{} {} is missing from storage and snapshots need blobs only it held; prune keeps its index entry (run arca check, then arca repair index)",
                    kind.file_kind(),
                    pack.id
                ));
            }
        }
        plan.packs.push(pack_plan);
    }
    for (id, (kind, size, modified)) in &stored {
        if !listings.contains_key(id) {
            plan.packs.push(classify_unindexed(
                *id, *kind, *size, *modified, started, options,
            ));
        }
    }
    merge_small(&mut plan.packs, u64::from(repo.config().pack_size));
    for pack in &mut plan.packs {
        if pack.action != PackAction::Repack {
            pack.copy = Vec::new();
        }
    }
    if options.instant_delete {
        for pack in &mut plan.packs {
            if matches!(pack.action, PackAction::Mark | PackAction::KeepMarked) {
                pack.action = PackAction::Delete;
            }
        }
    }
    plan.packs.sort_by_key(|p| (p.kind, p.id));
    // Only indexed packs have listings (adopted ones get theirs below).
    plan.listings = listings
        .into_iter()
        .map(|(id, pack)| (id, pack.blobs))
        .collect();
    adopt(repo, &mut plan)?;
    if unknown {
        // What an unreadable tree references is unknown: nothing may be
        // marked or deleted on the strength of it being unused.
        for pack in &mut plan.packs {
            pack.action = match pack.action {
                PackAction::Delete | PackAction::Wait | PackAction::Adopt if !pack.indexed => {
                    PackAction::Wait
                }
                _ if pack.marked.is_some() => PackAction::KeepMarked,
                _ => PackAction::Keep,
            };
        }
        plan.warnings.push(
            "prune marks and deletes nothing this time: trees that cannot be read may reference any pack (run arca check, then the repairs it names)".into(),
        );
    }
    plan.stats = count(&plan);
    plan.pack_changes = plan.packs.iter().any(|p| {
        !matches!(
            p.action,
            PackAction::Keep | PackAction::KeepMarked | PackAction::Wait
        )
    }) || plan.index_files.len() > 1;
    let (backups, unreadable) = crate::pg::base_backups(repo, &snapshots);
    plan.wal = crate::pg::plan_wal_retention(
        repo,
        &backups.into_iter().map(|b| b.backup).collect::<Vec<_>>(),
        unreadable.len(),
        &|archived| grace_over(archived, started, options),
    )?;
    plan.warnings
        .extend(unreadable.iter().map(|(_, e)| e.to_string()));
    plan.warnings.extend(plan.wal.warnings.iter().cloned());
    plan.changes = plan.pack_changes || !plan.wal.remove.is_empty();
    Ok(plan)
}

/// What the snapshots use.
struct Used {
    /// Per distinct blob of the index: reachable from a snapshot.
    bits: Bits,
    /// Blobs snapshots reference that no pack in storage holds.
    lost: HashSet<(BlobKind, Id)>,
    /// Some tree could not be read: what it references is unknown.
    unknown: bool,
    warnings: Vec<String>,
}

/// Marks every blob reachable from a snapshot. Damage does not stop the
/// walk: blobs no pack holds are collected as lost, and a tree that
/// cannot be read is reported (the plan then deletes nothing).
fn used_blobs(
    repo: &Repository,
    snapshots: &[(SnapshotId, Snapshot)],
    progress: Option<&PruneProgress>,
) -> Result<Used> {
    let mut used = Used {
        bits: Bits::new(repo.index().len()),
        lost: HashSet::new(),
        unknown: false,
        warnings: Vec::new(),
    };
    for (id, snapshot) in snapshots {
        let visited = visit_blobs(repo, [snapshot.tree], progress, |kind, blob, position| {
            match position {
                Some(p) => {
                    used.bits.set(p);
                }
                None => {
                    used.unknown |= kind == BlobKind::Tree;
                    used.lost.insert((kind, blob));
                }
            }
            Ok(())
        });
        match visited {
            Err(e) if e.is_damage() => {
                used.unknown = true;
                used.warnings.push(format!("snapshot {id}: {e}"));
            }
            other => other?,
        }
    }
    if !used.lost.is_empty() {
        used.warnings.push(format!(
            "{} blob(s) that snapshots reference are in no pack in storage (run arca check)",
            used.lost.len()
        ));
    }
    Ok(used)
}

type Stored = HashMap<PackId, (BlobKind, u64, Option<std::time::SystemTime>)>;

/// Every pack in storage, with kind, size and time.
fn stored_packs(repo: &Repository) -> Result<Stored> {
    let mut stored = HashMap::new();
    for kind in [BlobKind::Data, BlobKind::Tree] {
        for entry in repo.list(kind.file_kind())? {
            if let Some(id) = Id::from_hex(&entry.name) {
                stored.insert(PackId(id), (kind, entry.size, entry.modified));
            }
        }
    }
    Ok(stored)
}

fn classify(
    repo: &Repository,
    pack: &IndexPack,
    used: &Bits,
    stored: &Stored,
    started: Timestamp,
    options: &PruneOptions,
) -> Result<PackPlan> {
    let kind = BlobKind::from_byte(pack.kind).unwrap_or(BlobKind::Data);
    let index = repo.index();
    let mut plan = PackPlan {
        id: pack.id,
        kind,
        size: pack.size,
        blobs: pack.blobs.len() as u64,
        used_blobs: 0,
        used_bytes: 0,
        marked: pack.marked,
        indexed: true,
        action: PackAction::Keep,
        copy: Vec::new(),
    };
    for entry in &pack.blobs {
        let id = entry.id();
        let here = index.position(kind, &id).is_some_and(|p| used.get(p))
            && index
                .get(kind, &id)
                .is_some_and(|loc| loc.pack == pack.id && loc.offset == entry.offset());
        if here {
            plan.used_blobs += 1;
            plan.used_bytes += u64::from(entry.length());
            plan.copy.push(*entry);
        }
    }
    let unused_bytes = pack
        .blobs
        .iter()
        .map(|b| u64::from(b.length()))
        .sum::<u64>()
        .saturating_sub(plan.used_bytes);
    // A pack missing from storage is not in the index prune built, so none
    // of its blobs counts as used here; plan_prune keeps its listing when
    // snapshots need blobs no other pack holds.
    plan.action = if !stored.contains_key(&pack.id) {
        PackAction::Delete
    } else if plan.used_blobs == 0 {
        match pack.marked {
            Some(at) if grace_over(at, started, options) => PackAction::Delete,
            Some(_) => PackAction::KeepMarked,
            None => PackAction::Mark,
        }
    } else if unused_bytes as f64 > options.max_unused * pack.size as f64 {
        PackAction::Repack
    } else if pack.marked.is_some() {
        PackAction::Unmark
    } else {
        PackAction::Keep
    };
    Ok(plan)
}

fn grace_over(at: Timestamp, started: Timestamp, options: &PruneOptions) -> bool {
    let age = started.seconds.saturating_sub(at.seconds);
    options.instant_delete || age >= options.keep_marked.as_secs() as i64
}

fn classify_unindexed(
    id: PackId,
    kind: BlobKind,
    size: u64,
    modified: Option<std::time::SystemTime>,
    started: Timestamp,
    options: &PruneOptions,
) -> PackPlan {
    // Without a time from storage the pack's age is unknown: treat it as
    // young, so only `instant_delete` removes it.
    let old = modified.is_some_and(|m| grace_over(Timestamp::from_system(m), started, options));
    let action = if options.instant_delete {
        PackAction::Delete
    } else if old {
        PackAction::Adopt
    } else {
        PackAction::Wait
    };
    PackPlan {
        id,
        kind,
        size,
        blobs: 0,
        used_blobs: 0,
        used_bytes: 0,
        marked: None,
        indexed: false,
        action,
        copy: Vec::new(),
    }
}

/// Repacks small kept packs of one kind together when there are several.
fn merge_small(packs: &mut [PackPlan], target: u64) {
    for kind in [BlobKind::Data, BlobKind::Tree] {
        let small: Vec<usize> = packs
            .iter()
            .enumerate()
            .filter(|(_, p)| {
                p.kind == kind
                    && matches!(p.action, PackAction::Keep | PackAction::Unmark)
                    && p.size < target / 2
            })
            .map(|(i, _)| i)
            .collect();
        if small.len() < 2 {
            continue;
        }
        for i in small {
            packs[i].action = PackAction::Repack;
        }
    }
}

/// Reads the headers of the packs no index lists that the plan adopts or
/// deletes. One that cannot be read is deleted, since no index can ever
/// list it. One holding blobs of the other kind is a pack in the wrong
/// directory: it is not this prune's to judge, so it is left alone and
/// reported.
fn adopt(repo: &Repository, plan: &mut PrunePlan) -> Result<()> {
    for pack in &mut plan.packs {
        if pack.indexed || !matches!(pack.action, PackAction::Adopt | PackAction::Delete) {
            continue;
        }
        let file_kind = pack.kind.file_kind();
        let name = pack.id.to_hex();
        match crate::pack::read_header_ranged(
            repo.backend(),
            repo.key(),
            file_kind,
            &name,
            pack.size,
        ) {
            Ok(blobs) if blobs.iter().all(|b| b.kind() == Some(pack.kind)) => {
                if pack.action == PackAction::Adopt {
                    pack.blobs = blobs.len() as u64;
                    plan.listings.insert(pack.id, blobs);
                }
            }
            Ok(_) => {
                pack.action = PackAction::Wait;
                plan.warnings.push(format!(
                    "{file_kind} {name} holds blobs of the other kind, so it is in the wrong directory; prune leaves it alone (run arca check)"
                ));
            }
            Err(Error::Storage(e)) if e.kind() != BackendErrorKind::NotFound => {
                return Err(Error::Storage(e));
            }
            Err(_) => pack.action = PackAction::Delete,
        }
    }
    Ok(())
}

fn count(plan: &PrunePlan) -> PruneStats {
    let mut s = PruneStats {
        snapshots: plan.stats.snapshots,
        blobs: plan.stats.blobs,
        used_blobs: plan.stats.used_blobs,
        ..PruneStats::default()
    };
    for p in &plan.packs {
        s.packs += 1;
        s.pack_bytes += p.size;
        match p.action {
            PackAction::Delete => {
                s.delete_packs += 1;
                s.delete_bytes += p.size;
            }
            PackAction::Mark | PackAction::Adopt => {
                s.mark_packs += 1;
                s.mark_bytes += p.size;
            }
            PackAction::Unmark => s.unmark_packs += 1,
            PackAction::Repack => {
                s.repack_packs += 1;
                s.repack_bytes += p.size;
                s.copy_bytes += p.used_bytes;
            }
            PackAction::KeepMarked => {
                s.waiting_packs += 1;
                s.waiting_bytes += p.size;
            }
            PackAction::Keep | PackAction::Wait => {}
        }
    }
    s
}

/// Carries out a plan: new packs, new index, then deletions. `lock` is the
/// proof that this process holds the exclusive lock prune needs; it is
/// checked before each destructive step.
pub fn execute_prune(
    repo: &Repository,
    plan: &PrunePlan,
    options: &PruneOptions,
    lock: &Lock,
    progress: Option<&PruneProgress>,
) -> Result<PruneSummary> {
    let mut summary = PruneSummary {
        size_before: repository_size(repo)?,
        ..PruneSummary::default()
    };
    if !plan.pack_changes {
        summary.wal_files_deleted = remove_wal(repo, &plan.wal, lock)?;
        summary.size_after = summary.size_before;
        return Ok(summary);
    }
    let ensure = || lock.ensure();
    if options.instant_delete {
        unchanged_since_planning(repo, plan)?;
    }
    let (repacked, damaged) = repack(repo, plan, progress)?;
    summary.packs_written = repacked.len() as u64;
    summary.warnings = damaged
        .iter()
        .map(|(pack, e)| format!("pack {pack} was not repacked: {e}"))
        .collect();
    let damaged: HashSet<PackId> = damaged.into_iter().map(|(pack, _)| pack).collect();
    let mut packs = repacked;
    for pack in &plan.packs {
        // A pack that could not be repacked stays as it was.
        let action = if damaged.contains(&pack.id) {
            PackAction::Keep
        } else {
            pack.action
        };
        let marked = match action {
            PackAction::Keep | PackAction::Unmark => None,
            PackAction::KeepMarked => pack.marked,
            PackAction::Mark | PackAction::Adopt => Some(plan.started),
            PackAction::Repack if options.instant_delete => continue,
            PackAction::Repack => Some(plan.started),
            PackAction::Delete | PackAction::Wait => continue,
        };
        let Some(blobs) = plan.listings.get(&pack.id) else {
            continue;
        };
        packs.push(IndexPack {
            id: pack.id,
            kind: pack.kind.to_byte(),
            size: pack.size,
            blobs: blobs.clone(),
            marked,
        });
    }
    ensure()?;
    repo.save_index(&IndexFile {
        supersedes: plan.index_files.clone(),
        packs,
    })?;
    summary.index_files_written = 1;
    for id in &plan.index_files {
        ensure()?;
        remove(repo, FileKind::Index, &id.to_hex())?;
        summary.index_files_deleted += 1;
    }
    for pack in &plan.packs {
        let delete = pack.action == PackAction::Delete
            || (pack.action == PackAction::Repack
                && options.instant_delete
                && !damaged.contains(&pack.id));
        if delete {
            ensure()?;
            remove(repo, pack.kind.file_kind(), &pack.id.to_hex())?;
            summary.packs_deleted += 1;
            if let Some(p) = progress {
                p.deleted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    summary.wal_files_deleted = remove_wal(repo, &plan.wal, lock)?;
    summary.size_after = repository_size(repo)?;
    Ok(summary)
}

/// Before an instant delete, which has no grace period to fall back on:
/// the snapshots and index files must be exactly those the plan was made
/// from. Another writer (which an instant delete does not allow for), or a
/// listing that left something out, stops the prune before it deletes
/// anything.
fn unchanged_since_planning(repo: &Repository, plan: &PrunePlan) -> Result<()> {
    let changed = |what: String| {
        Err(Error::InvalidInput(format!(
            "the repository {} changed while prune was planning ({what}); nothing was deleted: run prune again",
            repo.location()
        )))
    };
    let listed = |kind| -> Result<HashSet<Id>> {
        let entries = repo.list(kind)?;
        Ok(entries
            .iter()
            .filter_map(|e| Id::from_hex(&e.name))
            .collect())
    };
    let planned: HashSet<Id> = plan.snapshots.iter().map(SnapshotId::id).collect();
    if let Some(id) = listed(FileKind::Snapshot)?
        .symmetric_difference(&planned)
        .next()
    {
        return changed(format!("snapshot {id}"));
    }
    let planned: HashSet<Id> = plan.index_files.iter().map(IndexId::id).collect();
    let index_files = listed(FileKind::Index)?;
    if let Some(id) = index_files.symmetric_difference(&planned).next() {
        return changed(format!("index {id}"));
    }
    Ok(())
}

/// Removes one object; one already gone is fine (an earlier, interrupted
/// run got that far).
fn remove(repo: &Repository, kind: FileKind, name: &str) -> Result<()> {
    match repo.backend().remove(kind, name) {
        Err(e) if e.kind() != BackendErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// A pack left out of a repack, and why.
type Skipped = (PackId, Error);

/// Copies the used blobs of the packs to repack into new packs, still
/// sealed, and stores them; returns their index listings, and the packs
/// left alone because they are damaged (with why).
fn repack(
    repo: &Repository,
    plan: &PrunePlan,
    progress: Option<&PruneProgress>,
) -> Result<(Vec<IndexPack>, Vec<Skipped>)> {
    let mut damaged = Vec::new();
    let mut packer = Packer::new(repo);
    let mut stored = Vec::new();
    let mut copied: HashSet<(BlobKind, Id)> = HashSet::new();
    for pack in &plan.packs {
        if pack.action != PackAction::Repack || pack.copy.is_empty() {
            continue;
        }
        let kind = pack.kind;
        // The whole pack, its name checked: nothing damaged is copied.
        // A damaged pack keeps its place (and its damage, for check and
        // repair to deal with).
        let bytes = match repo.read_pack(kind, &pack.id) {
            Ok(bytes) => bytes,
            Err(e) if e.is_damage() => {
                damaged.push((pack.id, e));
                continue;
            }
            Err(e) => return Err(e),
        };
        for entry in &pack.copy {
            if !copied.insert((kind, entry.id())) {
                continue;
            }
            let start = entry.offset() as usize;
            let end = start + entry.length() as usize;
            let Some(blob) = bytes.get(start..end) else {
                return Err(Error::corrupt(
                    format!("{} {}", kind.file_kind(), pack.id),
                    "an index entry lies outside the pack",
                ));
            };
            let full = packer.add(
                kind,
                entry.id(),
                entry.raw_length(),
                entry.compression(),
                blob,
            )?;
            stored.extend(full);
            if let Some(p) = progress {
                p.copied_bytes
                    .fetch_add(blob.len() as u64, Ordering::Relaxed);
            }
        }
    }
    stored.extend(packer.finish()?);
    Ok((stored, damaged))
}

/// Bytes stored in the config, packs, index files, snapshots and keys.
pub fn repository_size(repo: &Repository) -> Result<u64> {
    let mut total = 0;
    for kind in [
        FileKind::Config,
        FileKind::Data,
        FileKind::Tree,
        FileKind::Index,
        FileKind::Snapshot,
        FileKind::Key,
    ] {
        total += repo.list(kind)?.iter().map(|e| e.size).sum::<u64>();
    }
    Ok(total)
}
