//! Repository statistics: how much the snapshots hold, how much is stored,
//! and what deduplication and compression save. Shared subtrees are walked
//! once (their counts are remembered by tree id).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::blob::BlobKind;
use crate::error::Result;
use crate::id::{BlobId, SnapshotId, TreeId};
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::tree::NodeKind;

/// Statistics of a set of snapshots.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Stats {
    /// Snapshots measured.
    pub snapshots: u64,
    /// Files over all the snapshots (a file in two snapshots counts twice).
    pub files: u64,
    /// Bytes a restore of every snapshot would write.
    pub restore_size: u64,
    /// Distinct data blobs the snapshots reference.
    pub unique_blobs: u64,
    /// Their plaintext size.
    pub unique_bytes: u64,
    /// Their stored (compressed, encrypted) size.
    pub stored_bytes: u64,
    /// Packs in the repository.
    pub packs: u64,
    /// Their total stored size in bytes.
    pub repository_bytes: u64,
    /// unique_bytes / stored_bytes.
    pub compression_ratio: f64,
    /// restore_size / stored_bytes.
    pub dedup_ratio: f64,
}

/// Computes statistics over `snapshots`.
pub fn stats(repo: &Repository, snapshots: &[(SnapshotId, Snapshot)]) -> Result<Stats> {
    let mut s = Stats {
        snapshots: snapshots.len() as u64,
        ..Stats::default()
    };
    let mut totals: HashMap<TreeId, (u64, u64)> = HashMap::new();
    let mut blobs: HashSet<BlobId> = HashSet::new();
    let mut shapes = HashMap::new();
    for (_, snap) in snapshots {
        // Bounded depth and expansion before the recursive totals.
        crate::ops::shape::measure_cached(repo, &snap.tree, &mut shapes)?;
        let (files, bytes) = tree_totals(repo, &snap.tree, &mut totals, &mut blobs)?;
        s.files = s.files.saturating_add(files);
        s.restore_size = s.restore_size.saturating_add(bytes);
    }
    s.unique_blobs = blobs.len() as u64;
    for blob in &blobs {
        if let Some(loc) = repo.index().get(BlobKind::Data, &blob.id()) {
            s.unique_bytes += u64::from(loc.raw_length);
            s.stored_bytes += u64::from(loc.length);
        }
    }
    for pack in repo.index().packs() {
        s.packs += 1;
        s.repository_bytes += pack.size;
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    s.compression_ratio = ratio(s.unique_bytes, s.stored_bytes);
    s.dedup_ratio = ratio(s.restore_size, s.stored_bytes);
    Ok(s)
}

/// Files and bytes below a tree, collecting its data blobs on the way.
fn tree_totals(
    repo: &Repository,
    id: &TreeId,
    totals: &mut HashMap<TreeId, (u64, u64)>,
    blobs: &mut HashSet<BlobId>,
) -> Result<(u64, u64)> {
    if let Some(t) = totals.get(id) {
        return Ok(*t);
    }
    let mut files = 0u64;
    let mut bytes = 0u64;
    for node in repo.read_tree(id)?.nodes {
        match node.kind {
            NodeKind::File => {
                files += 1;
                bytes = bytes.saturating_add(node.size);
                blobs.extend(node.content);
            }
            NodeKind::Dir => {
                if let Some(sub) = node.subtree {
                    let (f, b) = tree_totals(repo, &sub, totals, blobs)?;
                    files = f.saturating_add(files);
                    bytes = b.saturating_add(bytes);
                }
            }
            _ => {}
        }
    }
    totals.insert(*id, (files, bytes));
    Ok((files, bytes))
}
