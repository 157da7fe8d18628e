//! Filling packs with sealed blobs: one pack per kind being filled, each
//! stored as soon as it reaches the repository's target size. Snapshots
//! feed it freshly sealed blobs; prune and a snapshot that outlived a prune
//! feed it blobs copied, still sealed, out of other packs.

use crate::blob::BlobKind;
use crate::error::Result;
use crate::id::Id;
use crate::index::IndexPack;
use crate::pack::PackWriter;
use crate::repository::Repository;

pub(crate) struct Packer<'r> {
    repo: &'r Repository,
    target: usize,
    /// Data, tree.
    writers: [PackWriter; 2],
}

impl<'r> Packer<'r> {
    pub fn new(repo: &'r Repository) -> Packer<'r> {
        let target = repo.config().pack_size as usize;
        Packer {
            repo,
            target,
            writers: [
                PackWriter::new(BlobKind::Data, target),
                PackWriter::new(BlobKind::Tree, target),
            ],
        }
    }

    /// Adds one sealed blob; returns the pack it completed, once stored.
    pub fn add(
        &mut self,
        kind: BlobKind,
        id: Id,
        raw_length: u32,
        compression: u8,
        stored: &[u8],
    ) -> Result<Option<IndexPack>> {
        let slot = usize::from(kind == BlobKind::Tree);
        self.writers[slot].add(id, raw_length, compression, stored);
        if self.writers[slot].len() < self.target {
            return Ok(None);
        }
        let full = std::mem::replace(&mut self.writers[slot], PackWriter::new(kind, self.target));
        store(self.repo, full).map(Some)
    }

    /// Stores the packs still being filled.
    pub fn finish(self) -> Result<Vec<IndexPack>> {
        let mut out = Vec::new();
        for writer in self.writers {
            if !writer.is_empty() {
                out.push(store(self.repo, writer)?);
            }
        }
        Ok(out)
    }
}

fn store(repo: &Repository, writer: PackWriter) -> Result<IndexPack> {
    let pack = writer.finish(repo.key());
    repo.write_pack(&pack)?;
    Ok(IndexPack {
        id: pack.id,
        kind: pack.kind.to_byte(),
        size: pack.bytes.len() as u64,
        blobs: pack.entries,
        marked: None,
    })
}
