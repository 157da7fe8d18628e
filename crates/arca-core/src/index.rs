//! Index files and the in-memory index.
//!
//! An index file lists packs and the blobs each holds, plus the index files
//! it supersedes (so a later prune can replace many files with one). In
//! memory every blob costs one fixed-size [`Entry`] of 48 bytes in a sorted
//! array: the 32-byte id, the pack's number in a pack table, offset, stored
//! length, and raw length with the kind and compression in its top bits.
//! Lookups are binary searches; there is no per-entry allocation or hash-map
//! overhead.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::blob::BlobKind;
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::file;
use crate::format::*;
use crate::id::{Id, IndexId, PackId};
use crate::pack::PackEntry;

/// One pack as an index file lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: PackId,
    /// Kind of every blob in the pack (and so its directory).
    pub kind: u8,
    /// Stored size of the whole pack.
    pub size: u64,
    pub blobs: Vec<PackEntry>,
}

/// The decoded body of `index/<id>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    pub supersedes: Vec<IndexId>,
    pub packs: Vec<IndexPack>,
}

impl IndexFile {
    pub fn encode(&self, key: &MasterKey) -> Vec<u8> {
        file::seal(key, AAD_INDEX, self, COMPRESSION_DEFAULT)
    }

    /// Opens and validates an index file.
    pub fn decode(bytes: &[u8], key: &MasterKey, object: &str) -> Result<IndexFile> {
        let index: IndexFile = file::open(key, AAD_INDEX, bytes, object, MAX_INDEX_LEN)?;
        for pack in &index.packs {
            let Some(kind) = BlobKind::from_byte(pack.kind) else {
                return Err(Error::corrupt(
                    object,
                    format!("pack {} has unknown kind", pack.id),
                ));
            };
            for blob in &pack.blobs {
                if blob.validate(pack.size, object)? != kind {
                    return Err(Error::corrupt(
                        object,
                        format!("pack {} mixes blob kinds", pack.id),
                    ));
                }
            }
        }
        Ok(index)
    }
}

const TREE_BIT: u32 = 1 << 31;
const ZSTD_BIT: u32 = 1 << 30;
const RAW_MASK: u32 = ZSTD_BIT - 1;

/// One blob in memory: 48 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Entry {
    id: [u8; ID_LEN],
    pack: u32,
    offset: u32,
    length: u32,
    raw_and_flags: u32,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 48);

impl Entry {
    fn key(&self) -> ([u8; ID_LEN], bool) {
        (self.id, self.raw_and_flags & TREE_BIT != 0)
    }
}

/// Orders by (id, kind) like `Entry::key`, deciding on the first eight id
/// bytes as one integer when they differ (almost always: ids are uniform).
fn cmp_key(a: &([u8; ID_LEN], bool), b: &([u8; ID_LEN], bool)) -> std::cmp::Ordering {
    let prefix = |k: &([u8; ID_LEN], bool)| {
        let mut p = [0; 8];
        p.copy_from_slice(&k.0[..8]);
        u64::from_be_bytes(p)
    };
    prefix(a).cmp(&prefix(b)).then_with(|| a.cmp(b))
}

/// Where a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    pub pack: PackId,
    pub offset: u32,
    pub length: u32,
    pub raw_length: u32,
    pub compression: u8,
}

/// Every blob the repository holds, for lookups.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<(PackId, BlobKind, u64)>,
    entries: Vec<Entry>,
    /// `buckets[p]..buckets[p + 1]` are the entries whose id starts with the
    /// two bytes `p`: a lookup bisects a handful of entries, not all of them.
    /// Empty until [`Index::finish`].
    buckets: Vec<u32>,
}

const BUCKETS: usize = 1 << 16;

fn bucket(id: &[u8; ID_LEN]) -> usize {
    usize::from(u16::from_be_bytes([id[0], id[1]]))
}

impl Index {
    /// Bytes of memory per blob entry (plus a fixed 256 KiB bucket table).
    pub const BYTES_PER_BLOB: usize = std::mem::size_of::<Entry>();

    /// Adds every pack of an index file (call [`Index::finish`] after the last).
    pub fn add_file(&mut self, file: &IndexFile) {
        for pack in &file.packs {
            if let Some(kind) = BlobKind::from_byte(pack.kind) {
                self.add_pack(pack.id, kind, pack.size, &pack.blobs);
            }
        }
    }

    /// Adds one pack's blobs (call [`Index::finish`] before lookups).
    pub fn add_pack(&mut self, id: PackId, kind: BlobKind, size: u64, blobs: &[PackEntry]) {
        let number = self.packs.len() as u32;
        self.packs.push((id, kind, size));
        let tree = if kind == BlobKind::Tree { TREE_BIT } else { 0 };
        self.entries.extend(blobs.iter().map(|b| Entry {
            id: b.id().0,
            pack: number,
            offset: b.offset(),
            length: b.length(),
            raw_and_flags: (b.raw_length() & RAW_MASK)
                | tree
                | if b.compression() == COMPRESSION_ZSTD {
                    ZSTD_BIT
                } else {
                    0
                },
        }));
    }

    /// Sorts the entries for lookup; duplicates keep one (any) location.
    pub fn finish(&mut self) {
        self.entries
            .sort_unstable_by(|a, b| cmp_key(&a.key(), &b.key()));
        self.entries.dedup_by_key(|e| e.key());
        self.entries.shrink_to_fit();
        self.buckets.clear();
        self.buckets.reserve_exact(BUCKETS + 1);
        let mut at = 0;
        for p in 0..BUCKETS {
            self.buckets.push(at as u32);
            while at < self.entries.len() && bucket(&self.entries[at].id) == p {
                at += 1;
            }
        }
        self.buckets.push(at as u32);
    }

    /// Where a blob is, if the repository has it.
    pub fn get(&self, kind: BlobKind, id: &Id) -> Option<Location> {
        let key = (id.0, kind == BlobKind::Tree);
        let b = bucket(&id.0);
        let (lo, hi) = match self.buckets.get(b..b + 2) {
            Some(&[lo, hi]) => (lo as usize, hi as usize),
            _ => (0, self.entries.len()),
        };
        let slice = &self.entries[lo..hi];
        let e = &slice[slice.binary_search_by(|e| cmp_key(&e.key(), &key)).ok()?];
        let (pack, _, _) = self.packs[e.pack as usize];
        Some(Location {
            pack,
            offset: e.offset,
            length: e.length,
            raw_length: e.raw_and_flags & RAW_MASK,
            compression: if e.raw_and_flags & ZSTD_BIT != 0 {
                COMPRESSION_ZSTD
            } else {
                COMPRESSION_NONE
            },
        })
    }

    pub fn contains(&self, kind: BlobKind, id: &Id) -> bool {
        self.get(kind, id).is_some()
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The packs the index knows, with kind and size.
    pub fn packs(&self) -> impl Iterator<Item = (PackId, BlobKind, u64)> + '_ {
        let mut seen = HashSet::new();
        self.packs.iter().copied().filter(move |p| seen.insert(p.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: BlobKind, n: u8, offset: u32) -> PackEntry {
        PackEntry(
            kind.to_byte(),
            Id([n; 32]),
            offset,
            100,
            60,
            COMPRESSION_ZSTD,
        )
    }

    #[test]
    fn index_file_round_trip() {
        let key = MasterKey::generate();
        let file = IndexFile {
            supersedes: vec![IndexId(Id([9; 32]))],
            packs: vec![IndexPack {
                id: PackId(Id([1; 32])),
                kind: BLOB_DATA,
                size: 1000,
                blobs: vec![entry(BlobKind::Data, 3, 0), entry(BlobKind::Data, 4, 100)],
            }],
        };
        let bytes = file.encode(&key);
        assert_eq!(IndexFile::decode(&bytes, &key, "index").unwrap(), file);
    }

    #[test]
    fn decode_rejects_entries_outside_their_pack() {
        let key = MasterKey::generate();
        let file = IndexFile {
            supersedes: vec![],
            packs: vec![IndexPack {
                id: PackId(Id([1; 32])),
                kind: BLOB_DATA,
                size: 150,
                blobs: vec![entry(BlobKind::Data, 3, 100)],
            }],
        };
        let err = IndexFile::decode(&file.encode(&key), &key, "index ab").unwrap_err();
        assert!(err.to_string().contains("index ab"), "{err}");
    }

    #[test]
    fn lookups_distinguish_kinds_and_find_every_blob() {
        let mut index = Index::default();
        let data: Vec<_> = (0..50)
            .map(|n| entry(BlobKind::Data, n, u32::from(n) * 100))
            .collect();
        index.add_pack(PackId(Id([1; 32])), BlobKind::Data, 10_000, &data);
        index.add_pack(
            PackId(Id([2; 32])),
            BlobKind::Tree,
            200,
            &[entry(BlobKind::Tree, 7, 0)],
        );
        index.finish();
        assert_eq!(index.len(), 51);
        for n in 0..50u8 {
            let loc = index.get(BlobKind::Data, &Id([n; 32])).unwrap();
            assert_eq!(
                (loc.pack, loc.offset, loc.raw_length),
                (PackId(Id([1; 32])), u32::from(n) * 100, 60)
            );
            assert_eq!(loc.compression, COMPRESSION_ZSTD);
        }
        assert_eq!(
            index.get(BlobKind::Tree, &Id([7; 32])).unwrap().pack,
            PackId(Id([2; 32]))
        );
        assert!(index.get(BlobKind::Tree, &Id([8; 32])).is_none());
        assert!(index.get(BlobKind::Tree, &Id([3; 32])).is_none());
        assert_eq!(Index::BYTES_PER_BLOB, 48);
    }

    #[test]
    fn bucketed_lookups_find_every_blob_and_nothing_else() {
        let mut index = Index::default();
        let ids: Vec<Id> = (0u32..20_000)
            .map(|n| Id::of_stored(&n.to_le_bytes()))
            .collect();
        let blobs: Vec<PackEntry> = ids
            .iter()
            .map(|id| PackEntry(BLOB_DATA, *id, 0, 100, 60, COMPRESSION_NONE))
            .collect();
        index.add_pack(PackId(Id([1; 32])), BlobKind::Data, 200, &blobs);
        index.finish();
        for id in &ids {
            assert!(index.contains(BlobKind::Data, id));
            assert!(!index.contains(BlobKind::Tree, id));
        }
        for n in 20_000u32..30_000 {
            assert!(!index.contains(BlobKind::Data, &Id::of_stored(&n.to_le_bytes())));
        }
        assert!(!index.contains(BlobKind::Data, &Id([0xff; 32])));
        assert!(!index.contains(BlobKind::Data, &Id([0; 32])));
    }
}
