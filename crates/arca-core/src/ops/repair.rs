//! Repairs: rebuilding the index from the packs present, and rewriting
//! snapshots that reference data no pack holds.
//!
//! Both write what is new before removing anything old: `repair index`
//! stores the new index file (superseding the old ones) and only then
//! deletes the old files; `repair snapshots` stores the repaired snapshot
//! and only then, with `forget`, removes the original.

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
use crate::pack::{self, PackWriter};
use crate::repository::Repository;
use crate::tree::{NodeKind, Tree};

/// What `repair index` did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepairIndexReport {
    /// Packs whose headers were read into the new index.
    pub packs: u64,
    pub blobs: u64,
    /// Packs left out because their header could not be read.
    pub unreadable: Vec<String>,
    /// Old index files removed (superseded by the new one).
    pub removed_index_files: u64,
    pub new_index: Option<String>,
}

/// Rebuilds the index from the headers of the packs present. Index entries
/// of packs that are gone disappear; packs nobody indexed are taken in.
pub fn repair_index(repo: &mut Repository, dry_run: bool) -> Result<RepairIndexReport> {
    let old: Vec<String> = repo
        .backend()
        .list(FileKind::Index)?
        .into_iter()
        .map(|e| e.name)
        .collect();
    let mut stored = Vec::new();
    for kind in [BlobKind::Data, BlobKind::Tree] {
        for entry in repo.backend().list(kind.file_kind())? {
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
    for ((kind, name, _), r) in stored.iter().zip(read) {
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
                let id = Id::from_hex(name).map(PackId);
                if let Some(pack) = id.and_then(|id| previous.get(&id))
                    && pack.kind == kind.to_byte()
                {
                    report.blobs += pack.blobs.len() as u64;
                    packs.push(IndexPack {
                        marked: None,
                        ..pack.clone()
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
    pub original: String,
    /// The repaired copy (`None` in a dry run).
    pub repaired: Option<String>,
    /// Files that lost chunks (kept with their readable parts) and
    /// directories whose listing was lost (kept empty).
    pub damaged: Vec<String>,
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
) -> Result<Vec<RepairedSnapshot>> {
    let snapshots = repo.snapshots()?;
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

/// Whether a failure to read something means it is damaged or gone (what
/// a repair works around), rather than that the storage could not be
/// reached (which stops the repair: nothing healthy may be cut out of a
/// snapshot because of a dropped connection).
fn is_damage(error: &Error) -> bool {
    match error {
        Error::Corrupt { .. } | Error::NotFound(_) => true,
        Error::Storage(e) => matches!(
            e.kind(),
            arca_backend::ErrorKind::NotFound | arca_backend::ErrorKind::OutOfRange
        ),
        _ => false,
    }
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
        Err(e) if !is_damage(&e) => return Err(e),
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
