//! Repairs: rebuilding the index from the packs present, salvaging damaged
//! packs, and rewriting snapshots that reference data no pack holds.
//!
//! Each writes what is new before removing anything old: `repair index`
//! stores the new index file (superseding the old ones) and only then
//! deletes the old files; `repair packs` stores the blobs that still open
//! in new packs and a new index file before it deletes the damaged packs;
//! `repair snapshots` stores the repaired snapshot and only then, with
//! `forget`, removes the original.
//!
//! Each takes the exclusive [`Lock`] as proof that nothing else writes
//! meanwhile; it is checked again before the first change.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use arca_backend::FileKind;
use rayon::prelude::*;
use serde::Serialize;

use crate::blob::{BlobKind, Sealer};
use crate::error::{Error, Result};
use crate::id::{Id, IndexId, PackId, TreeId};
use crate::index::{IndexFile, IndexPack};
use crate::lock::Lock;
use crate::ops::packer::Packer;
use crate::pack::{self, PackEntry, PackWriter};
use crate::repository::Repository;
use crate::tree::{NodeKind, Tree};

/// What `repair index` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairIndexReport {
    /// Packs whose headers were read into the new index.
    pub packs: u64,
    /// Blobs those packs hold.
    pub blobs: u64,
    /// Packs left out because their header could not be read.
    pub unreadable: Vec<String>,
    /// Old index files removed (superseded by the new one).
    pub removed_index_files: u64,
    /// The index file written, in hex (`None` in a dry run).
    pub new_index: Option<String>,
}

/// Rebuilds the index from the headers of the packs present. Index entries
/// of packs that are gone disappear; packs nobody indexed are taken in.
pub fn repair_index(
    repo: &mut Repository,
    dry_run: bool,
    lock: &Lock,
) -> Result<RepairIndexReport> {
    let old: Vec<String> = repo
        .list(FileKind::Index)?
        .into_iter()
        .map(|e| e.name)
        .collect();
    let mut stored = Vec::new();
    for kind in [BlobKind::Data, BlobKind::Tree] {
        for entry in repo.list(kind.file_kind())? {
            stored.push((kind, entry.name, entry.size));
        }
    }
    stored.sort();
    let read: Vec<std::result::Result<IndexPack, String>> = stored
        .par_iter()
        .map(|(kind, name, size)| {
            let file_kind = kind.file_kind();
            let id = Id::from_hex(name)
                .ok_or_else(|| format!("{file_kind} {name}: name is not an id"))?;
            pack::read_header_ranged(repo.backend(), repo.key(), file_kind, name, *size)
                .and_then(|blobs| {
                    if blobs.iter().all(|b| b.kind() == Some(*kind)) {
                        Ok(blobs)
                    } else {
                        Err(crate::Error::corrupt(
                            format!("{file_kind} {name}"),
                            "holds blobs of the other kind",
                        ))
                    }
                })
                .map(|blobs| IndexPack {
                    id: PackId(id),
                    kind: kind.to_byte(),
                    size: *size,
                    blobs,
                    marked: None,
                })
                .map_err(|e| e.to_string())
        })
        .collect();
    let mut report = RepairIndexReport::default();
    let mut packs = Vec::new();
    let mut previous: Option<HashMap<PackId, IndexPack>> = None;
    for ((kind, name, size), r) in stored.iter().zip(read) {
        match r {
            Ok(p) => {
                report.blobs += p.blobs.len() as u64;
                packs.push(p);
            }
            Err(e) => {
                // A pack whose header cannot be read keeps what the index
                // said of it: its blobs may still be readable, and a read
                // that failed for the storage's sake must not unindex them.
                let previous = match &mut previous {
                    Some(previous) => previous,
                    empty => empty.insert(indexed_packs(repo, &old)?),
                };
                // Only blobs that lie within what storage holds: a
                // truncated pack's lost tail must not stay indexed.
                let id = Id::from_hex(name).map(PackId);
                if let Some(pack) = id.and_then(|id| previous.get(&id))
                    && pack.kind == kind.to_byte()
                {
                    let blobs: Vec<PackEntry> = pack
                        .blobs
                        .iter()
                        .filter(|b| u64::from(b.offset()) + u64::from(b.length()) <= *size)
                        .copied()
                        .collect();
                    report.blobs += blobs.len() as u64;
                    packs.push(IndexPack {
                        id: pack.id,
                        kind: pack.kind,
                        size: *size,
                        blobs,
                        marked: None,
                    });
                }
                report.unreadable.push(e);
            }
        }
    }
    // Packs the index knows that the listing left out, though they are
    // there (a listing cut short), keep their entries too.
    let listed: HashSet<&str> = stored.iter().map(|(_, name, _)| name.as_str()).collect();
    let previous = match previous {
        Some(previous) => previous,
        None => indexed_packs(repo, &old)?,
    };
    for pack in previous.values() {
        let name = pack.id.to_hex();
        let Some(kind) = BlobKind::from_byte(pack.kind) else {
            continue;
        };
        if !listed.contains(name.as_str()) && repo.backend().exists(kind.file_kind(), &name)? {
            report.blobs += pack.blobs.len() as u64;
            packs.push(IndexPack {
                marked: None,
                ..pack.clone()
            });
        }
    }
    report.packs = packs.len() as u64;
    if dry_run {
        return Ok(report);
    }
    lock.ensure()?;
    let file = IndexFile {
        supersedes: old
            .iter()
            .filter_map(|n| Id::from_hex(n).map(IndexId))
            .collect(),
        packs,
    };
    let new = repo.save_index(&file)?;
    report.new_index = Some(new.to_hex());
    for name in old.iter().filter(|n| **n != new.to_hex()) {
        repo.backend().remove(FileKind::Index, name)?;
        report.removed_index_files += 1;
    }
    repo.load_index()?;
    Ok(report)
}

/// What `repair packs` found and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairPacksReport {
    /// Packs read.
    pub packs_read: u64,
    /// Damaged or missing packs, and what became of their blobs.
    pub damaged: Vec<SalvagedPack>,
    /// The index file written (`None` in a dry run or when nothing was
    /// damaged).
    pub new_index: Option<String>,
}

/// One damaged (or missing) pack.
#[derive(Clone, Debug, Serialize)]
pub struct SalvagedPack {
    /// `data pack <id>` or `tree pack <id>`.
    pub pack: String,
    /// What is wrong with it.
    pub problem: String,
    /// Blobs that still open, copied into new packs.
    pub salvaged_blobs: u64,
    /// Blobs lost: dropped from the index (`repair snapshots` then
    /// rewrites the snapshots that use them).
    pub lost_blobs: u64,
    /// Whether the damaged pack was deleted (not in a dry run).
    pub deleted: bool,
}

/// Salvages damaged packs: reads each pack asked for (every pack when
/// `only` is empty) and checks it against its name. A pack whose bytes no
/// longer match has every blob it held (by its header and by the index)
/// opened: those that authenticate are copied, still sealed, into new
/// packs; the others are dropped from the index. A pack the index lists
/// that storage lacks loses its listing. Then one index file superseding
/// every other is written, the old index files are removed, and only then
/// the damaged packs. Needs the exclusive lock.
pub fn repair_packs(
    repo: &mut Repository,
    only: &[String],
    dry_run: bool,
    lock: &Lock,
) -> Result<RepairPacksReport> {
    let old_files: Vec<String> = repo
        .list(FileKind::Index)?
        .into_iter()
        .map(|e| e.name)
        .collect();
    let (mut index, _) = repo.read_index()?;
    index.finish();
    // What the index files in force (not superseded ones) list.
    let listings = crate::index::listings(repo.read_index_files()?);
    let mut stored: HashMap<PackId, (BlobKind, String, u64)> = HashMap::new();
    for kind in [BlobKind::Data, BlobKind::Tree] {
        for entry in repo.list(kind.file_kind())? {
            if let Some(id) = Id::from_hex(&entry.name).map(PackId) {
                stored.insert(id, (kind, entry.name, entry.size));
            }
        }
    }
    let wanted = |id: &PackId| {
        only.is_empty()
            || only
                .iter()
                .any(|o| id.to_hex().starts_with(&o.to_ascii_lowercase()))
    };
    let mut report = RepairPacksReport::default();
    let mut packer = Packer::new(repo);
    let mut new_packs: Vec<IndexPack> = Vec::new();
    let mut dropped: HashSet<PackId> = HashSet::new();
    // Packs the index lists that storage lacks.
    let mut missing: Vec<&IndexPack> = listings
        .values()
        .filter(|p| !stored.contains_key(&p.id) && wanted(&p.id))
        .collect();
    missing.sort_by_key(|p| p.id);
    for pack in missing {
        let kind = BlobKind::from_byte(pack.kind).unwrap_or(BlobKind::Data);
        dropped.insert(pack.id);
        report.damaged.push(SalvagedPack {
            pack: format!("{} {}", kind.file_kind(), pack.id),
            problem: "is in the index but missing from storage".into(),
            salvaged_blobs: 0,
            lost_blobs: pack.blobs.len() as u64,
            deleted: false,
        });
    }
    let mut names: Vec<(&PackId, &(BlobKind, String, u64))> =
        stored.iter().filter(|(id, _)| wanted(id)).collect();
    names.sort_by_key(|(id, _)| **id);
    for (id, (kind, name, _)) in names {
        let file_kind = kind.file_kind();
        let bytes = match repo
            .backend()
            .read(file_kind, name, crate::format::MAX_PACK_LEN)
        {
            Err(e) if e.kind() == arca_backend::ErrorKind::TooLarge => {
                // No writer makes such a pack: nothing in it is trusted.
                dropped.insert(*id);
                report.packs_read += 1;
                report.damaged.push(SalvagedPack {
                    pack: format!("{file_kind} {name}"),
                    problem: "is larger than any pack a writer makes".into(),
                    salvaged_blobs: 0,
                    lost_blobs: listings.get(id).map_or(0, |p| p.blobs.len() as u64),
                    deleted: false,
                });
                continue;
            }
            other => other?,
        };
        report.packs_read += 1;
        if Id::of_stored(&bytes).to_hex() == *name {
            continue; // intact: exactly the bytes that were written
        }
        let object = format!("{file_kind} {name}");
        let mut candidates: Vec<PackEntry> = listings
            .get(id)
            .map(|p| p.blobs.clone())
            .unwrap_or_default();
        if let Ok(header) = pack::read_header(repo.key(), &bytes, &object) {
            candidates.extend(header);
        }
        let mut seen = HashSet::new();
        let (mut salvaged, mut lost) = (0, 0);
        for entry in candidates {
            if entry.kind() != Some(*kind) || !seen.insert(entry.id()) {
                continue;
            }
            let start = entry.offset() as usize;
            let sealed = bytes.get(start..start + entry.length() as usize);
            let opens = sealed.is_some_and(|sealed| {
                crate::blob::open(
                    repo.key(),
                    *kind,
                    &entry.id(),
                    entry.compression(),
                    entry.raw_length(),
                    sealed,
                    &|| object.clone(),
                )
                .is_ok()
            });
            match sealed.filter(|_| opens) {
                Some(sealed) if !dry_run => {
                    salvaged += 1;
                    new_packs.extend(packer.add(
                        *kind,
                        entry.id(),
                        entry.raw_length(),
                        entry.compression(),
                        sealed,
                    )?);
                }
                Some(_) => salvaged += 1,
                None => lost += 1,
            }
        }
        dropped.insert(*id);
        report.damaged.push(SalvagedPack {
            pack: object,
            problem: "its contents do not match its name".into(),
            salvaged_blobs: salvaged,
            lost_blobs: lost,
            deleted: false,
        });
    }
    new_packs.extend(packer.finish()?);
    if dry_run || dropped.is_empty() {
        return Ok(report);
    }
    let mut packs: Vec<IndexPack> = listings
        .into_values()
        .filter(|p| !dropped.contains(&p.id) && stored.contains_key(&p.id))
        .collect();
    // Packs found by their headers (a damaged index file described them).
    let listed: HashSet<PackId> = packs.iter().map(|p| p.id).collect();
    for info in index.packs() {
        if !dropped.contains(&info.id)
            && !listed.contains(&info.id)
            && let Some((_, name, size)) = stored.get(&info.id)
            && let Ok(blobs) = pack::read_header_ranged(
                repo.backend(),
                repo.key(),
                info.kind.file_kind(),
                name,
                *size,
            )
        {
            packs.push(IndexPack {
                id: info.id,
                kind: info.kind.to_byte(),
                size: *size,
                blobs,
                marked: None,
            });
        }
    }
    packs.extend(new_packs);
    lock.ensure()?;
    let new = repo.save_index(&IndexFile {
        supersedes: old_files
            .iter()
            .filter_map(|n| Id::from_hex(n).map(IndexId))
            .collect(),
        packs,
    })?;
    report.new_index = Some(new.to_hex());
    for name in old_files.iter().filter(|n| **n != new.to_hex()) {
        match repo.backend().remove(FileKind::Index, name) {
            Err(e) if e.kind() != arca_backend::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    for damaged in &mut report.damaged {
        let Some((kind, name)) = damaged.pack.rsplit_once(' ') else {
            continue;
        };
        let file_kind = if kind.starts_with("tree") {
            FileKind::Tree
        } else {
            FileKind::Data
        };
        match repo.backend().remove(file_kind, name) {
            Ok(()) => damaged.deleted = true,
            Err(e) if e.kind() == arca_backend::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    repo.load_index()?;
    Ok(report)
}

/// What the index files `names` say of each pack. A file that cannot be
/// read from storage stops the repair (nothing was written yet); one that
/// is damaged is passed over, which is what the repair is for.
fn indexed_packs(repo: &Repository, names: &[String]) -> Result<HashMap<PackId, IndexPack>> {
    let mut packs = HashMap::new();
    for name in names {
        match repo.read_index_file(name) {
            Ok((_, file)) => {
                for pack in file.packs {
                    packs.insert(pack.id, pack);
                }
            }
            Err(crate::Error::Corrupt { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(packs)
}

/// Options for `repair snapshots`.
#[derive(Clone, Copy, Debug, Default)]
pub struct RepairSnapshotsOptions {
    /// Remove each original once its repaired copy is saved.
    pub forget: bool,
    /// Report what would be repaired; write nothing.
    pub dry_run: bool,
}

/// One damaged snapshot and its repair.
#[derive(Clone, Debug, Serialize)]
pub struct RepairedSnapshot {
    /// The damaged snapshot's id, in hex.
    pub original: String,
    /// The repaired copy (`None` in a dry run, and for a snapshot file that
    /// cannot be read at all).
    pub repaired: Option<String>,
    /// Files that lost chunks (kept with their readable parts) and
    /// directories whose listing was lost (kept empty).
    pub damaged: Vec<String>,
    /// Why the snapshot file itself cannot be read (nothing of it can be
    /// saved; `forget` removes it).
    pub unreadable: Option<String>,
}

/// Stores tree blobs outside the snapshot pipeline (a handful of rewritten
/// directories): one pack, one index file.
struct TreeSaver<'r> {
    repo: &'r Repository,
    writer: PackWriter,
    sealer: Sealer,
    added: HashSet<Id>,
    dry_run: bool,
    stored: Vec<u8>,
    /// The first failure to add a tree, reported by `finish`.
    failed: Option<Error>,
}

impl<'r> TreeSaver<'r> {
    fn new(repo: &'r Repository, dry_run: bool) -> TreeSaver<'r> {
        TreeSaver {
            repo,
            writer: PackWriter::new(BlobKind::Tree, 1 << 20),
            sealer: Sealer::default(),
            added: HashSet::new(),
            dry_run,
            stored: Vec::new(),
            failed: None,
        }
    }

    fn save(&mut self, tree: &Tree) -> TreeId {
        let plain = tree.encode();
        let id = self.repo.key().blob_id(&plain);
        if !self.dry_run
            && !self.repo.index().contains(BlobKind::Tree, &id)
            && self.added.insert(id)
        {
            self.stored.clear();
            let level = self.repo.config().compression;
            let c = self.sealer.seal_into(
                self.repo.key(),
                level,
                BlobKind::Tree,
                &id,
                &plain,
                &mut self.stored,
            );
            if let Err(e) = self.writer.add(id, plain.len() as u32, c, &self.stored) {
                self.failed.get_or_insert(e);
            }
        }
        TreeId(id)
    }

    /// Stores the pack and its index file, if anything was added.
    fn finish(self) -> Result<()> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if self.writer.is_empty() {
            return Ok(());
        }
        let pack = self.writer.finish(self.repo.key())?;
        let stored = self.repo.write_pack(pack)?;
        self.repo.save_index(&IndexFile {
            supersedes: Vec::new(),
            packs: vec![stored],
        })?;
        Ok(())
    }
}

/// Rewrites every snapshot that references blobs or trees no pack holds.
pub fn repair_snapshots(
    repo: &mut Repository,
    options: RepairSnapshotsOptions,
    lock: &Lock,
) -> Result<Vec<RepairedSnapshot>> {
    let snapshots = repo.decodable_snapshots()?;
    let unreadable: Vec<crate::Damaged> = repo
        .damaged()
        .into_iter()
        .filter(|d| d.kind == FileKind::Snapshot)
        .collect();
    let mut saver = TreeSaver::new(repo, options.dry_run);
    let mut memo: HashMap<TreeId, Rewritten> = HashMap::new();
    let mut plans = Vec::new();
    for (id, snap) in snapshots {
        let rewritten = rewrite(&mut saver, &snap.tree, &mut memo)?;
        if rewritten.tree == snap.tree {
            continue;
        }
        let mut repaired = snap.clone();
        repaired.tree = rewritten.tree;
        repaired.original = Some(id);
        if !repaired.tags.iter().any(|t| t == "repaired") {
            repaired.tags.push("repaired".into());
        }
        let damaged = rewritten
            .damaged
            .iter()
            .map(|p| Path::new("/").join(p).to_string_lossy().into_owned())
            .collect();
        plans.push((id, repaired, damaged));
    }
    saver.finish()?;
    let mut out = Vec::new();
    for (id, repaired, damaged) in plans {
        let new = if options.dry_run {
            None
        } else {
            lock.ensure()?;
            let new = repo.save_snapshot(&repaired)?;
            if options.forget {
                repo.backend().remove(FileKind::Snapshot, &id.to_hex())?;
            }
            Some(new.to_hex())
        };
        out.push(RepairedSnapshot {
            original: id.to_hex(),
            repaired: new,
            damaged,
            unreadable: None,
        });
    }
    for file in unreadable {
        if options.forget && !options.dry_run {
            lock.ensure()?;
            match repo.backend().remove(FileKind::Snapshot, &file.name) {
                Err(e) if e.kind() != arca_backend::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
        }
        out.push(RepairedSnapshot {
            original: file.name,
            repaired: None,
            damaged: Vec::new(),
            unreadable: Some(file.problem),
        });
    }
    if !options.dry_run {
        repo.load_index()?;
    }
    Ok(out)
}

/// A tree after repair, and what in it was damaged (relative paths).
#[derive(Clone)]
struct Rewritten {
    tree: TreeId,
    damaged: Vec<PathBuf>,
}

fn rewrite(
    saver: &mut TreeSaver<'_>,
    id: &TreeId,
    memo: &mut HashMap<TreeId, Rewritten>,
) -> Result<Rewritten> {
    if let Some(done) = memo.get(id) {
        return Ok(done.clone());
    }
    let repo = saver.repo;
    let result = match repo.read_tree(id) {
        Err(e) if !e.is_damage() => return Err(e),
        Err(_) => Rewritten {
            tree: saver.save(&Tree::default()),
            damaged: vec![PathBuf::new()],
        },
        Ok(mut tree) => {
            let mut damaged = Vec::new();
            for node in &mut tree.nodes {
                let name = PathBuf::from(OsStr::from_bytes(&node.name));
                if node.kind == NodeKind::File {
                    let before = node.content.len();
                    node.content
                        .retain(|b| repo.index().contains(BlobKind::Data, &b.id()));
                    if node.content.len() != before {
                        node.size = node
                            .content
                            .iter()
                            .filter_map(|b| repo.index().get(BlobKind::Data, &b.id()))
                            .map(|l| u64::from(l.raw_length))
                            .sum();
                        damaged.push(name.clone());
                    }
                }
                if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                    let inner = rewrite(saver, &sub, memo)?;
                    node.subtree = Some(inner.tree);
                    damaged.extend(inner.damaged.into_iter().map(|p| {
                        if p.as_os_str().is_empty() {
                            name.clone()
                        } else {
                            name.join(p)
                        }
                    }));
                }
            }
            let tree_id = if damaged.is_empty() {
                *id
            } else {
                saver.save(&tree)
            };
            Rewritten {
                tree: tree_id,
                damaged,
            }
        }
    };
    memo.insert(*id, result.clone());
    Ok(result)
}
