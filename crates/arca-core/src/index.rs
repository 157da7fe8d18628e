//! Index files and the in-memory index.
//!
//! An index file lists packs and the blobs each holds, plus the index files
//! it supersedes (so a later prune can replace many files with one). A pack
//! can be *marked*: prune found nothing using it and will delete it in a
//! later run, after a grace period. Marked packs stay readable, but writers
//! do not deduplicate against them.
//!
//! In memory every blob costs one fixed-size [`Entry`] of 40 bytes in a
//! sorted array: the first 24 bytes of its id, the pack's number in a pack
//! table, offset, stored length, and raw length with the kind and
//! compression in its top bits. Lookups are binary searches within a bucket
//! of the first two id bytes; there is no per-entry allocation or hash-map
//! overhead.
//!
//! Keying on 192 of the id's 256 bits is safe: ids are keyed BLAKE3, which
//! nobody without the repository key can steer, and two distinct blobs of
//! one repository share their first 24 bytes with probability below
//! n²/2¹⁹³ (about 10⁻³⁸ for ten billion blobs). Every read still checks
//! the blob against its full id, so even such a match would surface as an
//! error, never as wrong data.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::blob::BlobKind;
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::file;
use crate::format::*;
use crate::id::{Id, IndexId, PackId};
use crate::pack::PackEntry;
use crate::time::Timestamp;

/// One pack as an index file lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    /// The pack's id (the hash of its stored bytes).
    pub id: PackId,
    /// Kind of every blob in the pack (and so its directory).
    pub kind: u8,
    /// Stored size of the whole pack, in bytes.
    pub size: u64,
    /// Its blobs, as its header lists them.
    pub blobs: Vec<PackEntry>,
    /// When a prune marked the pack for deletion; `None`: in use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marked: Option<Timestamp>,
}

/// The decoded body of `index/<id>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexFile {
    /// Index files this one replaces; readers ignore them.
    pub supersedes: Vec<IndexId>,
    /// The packs it lists.
    pub packs: Vec<IndexPack>,
}

impl IndexFile {
    /// Seals the index file for storage.
    pub fn encode(&self, key: &MasterKey) -> Vec<u8> {
        file::seal(key, AAD_INDEX, self, file::METADATA_COMPRESSION)
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

/// Drops the files another present file supersedes: their content is in
/// that file, which a maintenance run wrote before it could delete them.
/// Returns the files to use and the ids of the superseded ones still present.
pub fn effective(files: Vec<(IndexId, IndexFile)>) -> (Vec<(IndexId, IndexFile)>, Vec<IndexId>) {
    let superseded: HashSet<IndexId> = files
        .iter()
        .flat_map(|(_, f)| f.supersedes.iter().copied())
        .collect();
    let (stale, live): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(id, _)| superseded.contains(id));
    (live, stale.into_iter().map(|(id, _)| id).collect())
}

/// Every pack the files in force list (those no other present file
/// supersedes), once each: marked if any listing marks it, as of its latest
/// mark.
pub(crate) fn listings(
    files: Vec<(IndexId, IndexFile)>,
) -> std::collections::HashMap<PackId, IndexPack> {
    let (live, _) = effective(files);
    let mut listings: std::collections::HashMap<PackId, IndexPack> =
        std::collections::HashMap::new();
    for (_, file) in live {
        for pack in file.packs {
            let entry = listings.entry(pack.id).or_insert_with(|| IndexPack {
                marked: None,
                ..pack.clone()
            });
            entry.marked = entry.marked.max(pack.marked);
        }
    }
    listings
}

const TREE_BIT: u32 = 1 << 31;
const ZSTD_BIT: u32 = 1 << 30;
const RAW_MASK: u32 = ZSTD_BIT - 1;

/// Leading id bytes an in-memory entry keeps.
const KEY_LEN: usize = 24;

type Key = ([u8; KEY_LEN], bool);

fn key_of(id: &Id, kind: BlobKind) -> Key {
    let mut k = [0; KEY_LEN];
    k.copy_from_slice(&id.0[..KEY_LEN]);
    (k, kind == BlobKind::Tree)
}

/// One blob in memory: 40 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
struct Entry {
    id: [u8; KEY_LEN],
    pack: u32,
    offset: u32,
    length: u32,
    raw_and_flags: u32,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 40);

impl Entry {
    fn key(&self) -> Key {
        (self.id, self.raw_and_flags & TREE_BIT != 0)
    }
}

/// Orders by (id, kind) like `Entry::key`, deciding on the first eight id
/// bytes as one integer when they differ (almost always: ids are uniform).
fn cmp_key(a: &Key, b: &Key) -> std::cmp::Ordering {
    prefix(a).cmp(&prefix(b)).then_with(|| a.cmp(b))
}

/// The first eight id bytes as one integer.
fn prefix(key: &Key) -> u64 {
    let mut p = [0; 8];
    p.copy_from_slice(&key.0[..8]);
    u64::from_be_bytes(p)
}

/// Finds `key` in a sorted slice. Ids are uniform, so the position is
/// first guessed from where the key's leading bytes fall between the
/// slice's first and last; the search then gallops outward from the guess
/// and bisects what is left. A lookup so touches a few neighbouring cache
/// lines instead of one line per bisection step of a large bucket.
fn search(slice: &[Entry], key: &Key) -> Option<usize> {
    let (first, last) = (slice.first()?, slice.last()?);
    let (low, high, target) = (prefix(&first.key()), prefix(&last.key()), prefix(key));
    if target < low || target > high {
        return None;
    }
    let guess = match high - low {
        0 => 0,
        span => {
            ((u128::from(target - low) * (slice.len() - 1) as u128) / u128::from(span)) as usize
        }
    };
    let (mut lo, mut hi) = (0, slice.len());
    let mut step = 1;
    match cmp_key(&slice[guess].key(), key) {
        std::cmp::Ordering::Equal => return Some(guess),
        std::cmp::Ordering::Less => {
            lo = guess + 1;
            while lo + step < hi {
                match cmp_key(&slice[lo + step].key(), key) {
                    std::cmp::Ordering::Less => lo += step + 1,
                    std::cmp::Ordering::Equal => return Some(lo + step),
                    std::cmp::Ordering::Greater => {
                        hi = lo + step;
                        break;
                    }
                }
                step *= 2;
            }
        }
        std::cmp::Ordering::Greater => {
            hi = guess;
            while hi > lo + step {
                match cmp_key(&slice[hi - step - 1].key(), key) {
                    std::cmp::Ordering::Greater => hi -= step + 1,
                    std::cmp::Ordering::Equal => return Some(hi - step - 1),
                    std::cmp::Ordering::Less => {
                        lo = hi - step;
                        break;
                    }
                }
                step *= 2;
            }
        }
    }
    let at = slice[lo..hi]
        .binary_search_by(|e| cmp_key(&e.key(), key))
        .ok()?;
    Some(lo + at)
}

/// Where a blob is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Location {
    /// The pack holding the blob.
    pub pack: PackId,
    /// Where the stored blob starts in the pack, in bytes.
    pub offset: u32,
    /// Stored (sealed) length in bytes.
    pub length: u32,
    /// Length of the plaintext in bytes.
    pub raw_length: u32,
    /// Compression marker ([`COMPRESSION_NONE`] or [`COMPRESSION_ZSTD`]).
    pub compression: u8,
    /// The pack is marked for deletion (and no unmarked copy exists).
    pub marked: bool,
}

/// One pack as the in-memory index knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackInfo {
    /// The pack's id.
    pub id: PackId,
    /// Kind of every blob in it.
    pub kind: BlobKind,
    /// Stored size in bytes.
    pub size: u64,
    /// Whether an index file marks it for deletion.
    pub marked: bool,
}

/// Every blob the repository holds, for lookups.
#[derive(Debug, Default)]
pub struct Index {
    packs: Vec<PackInfo>,
    entries: Vec<Entry>,
    /// `buckets[p]..buckets[p + 1]` are the entries whose id starts with the
    /// two bytes `p`: a lookup bisects a handful of entries, not all of them.
    /// Empty until [`Index::finish`].
    buckets: Vec<u32>,
    /// Index files added by [`Index::add_file_from`], with the files each
    /// supersedes; cleared by [`Index::finish`].
    files: Vec<(IndexId, Vec<IndexId>)>,
    /// Per pack, parallel to `packs`: the number of the file in `files`
    /// that listed it, or [`NO_FILE`].
    sources: Vec<u32>,
    /// Blobs [`Index::finish`] found in more than one unmarked pack.
    duplicates: usize,
}

const NO_FILE: u32 = u32::MAX;

const BUCKETS: usize = 1 << 16;

fn bucket(id: &[u8]) -> usize {
    usize::from(u16::from_be_bytes([id[0], id[1]]))
}

impl Index {
    /// Bytes of memory per blob entry (plus a fixed 256 KiB bucket table).
    pub const BYTES_PER_BLOB: usize = std::mem::size_of::<Entry>();

    /// Adds every pack of an index file (call [`Index::finish`] after the last).
    pub fn add_file(&mut self, file: &IndexFile) {
        for pack in &file.packs {
            self.add(pack);
        }
    }

    /// Adds every pack of the index file `id`, remembering what it
    /// supersedes: [`Index::finish`] drops the packs of every added file
    /// that another added file supersedes. Files can so be added one by one
    /// as they are decoded, in any order, without holding them all.
    pub fn add_file_from(&mut self, id: IndexId, file: &IndexFile) {
        let number = self.files.len() as u32;
        self.files.push((id, file.supersedes.clone()));
        for pack in &file.packs {
            let before = self.packs.len();
            self.add(pack);
            if self.packs.len() > before
                && let Some(source) = self.sources.last_mut()
            {
                *source = number;
            }
        }
    }

    /// Bytes of memory the index holds (capacity, not just length).
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.packs.capacity() * std::mem::size_of::<PackInfo>()
            + (self.buckets.capacity() + self.sources.capacity()) * std::mem::size_of::<u32>()
    }

    /// Adds one pack as an index file lists it.
    pub fn add(&mut self, pack: &IndexPack) {
        if let Some(kind) = BlobKind::from_byte(pack.kind) {
            let info = PackInfo {
                id: pack.id,
                kind,
                size: pack.size,
                marked: pack.marked.is_some(),
            };
            self.add_pack(info, &pack.blobs);
        }
    }

    /// Adds one pack's blobs (call [`Index::finish`] before lookups).
    pub fn add_pack(&mut self, info: PackInfo, blobs: &[PackEntry]) {
        let number = self.packs.len() as u32;
        let kind = info.kind;
        self.packs.push(info);
        self.sources.push(NO_FILE);
        let tree = if kind == BlobKind::Tree { TREE_BIT } else { 0 };
        self.entries.extend(blobs.iter().map(|b| Entry {
            id: key_of(&b.id(), kind).0,
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

    /// Sorts the entries for lookup. Of several locations of one blob, one
    /// in an unmarked pack is kept. A pack that any index file marks is
    /// marked.
    pub fn finish(&mut self) {
        self.drop_superseded();
        let marked: HashSet<PackId> = self
            .packs
            .iter()
            .filter(|p| p.marked)
            .map(|p| p.id)
            .collect();
        for pack in &mut self.packs {
            pack.marked = marked.contains(&pack.id);
        }
        let packs = &self.packs;
        self.entries.sort_unstable_by(|a, b| {
            cmp_key(&a.key(), &b.key()).then_with(|| {
                packs[a.pack as usize]
                    .marked
                    .cmp(&packs[b.pack as usize].marked)
            })
        });
        self.duplicates = self
            .entries
            .windows(2)
            .filter(|w| w[0].key() == w[1].key() && !packs[w[1].pack as usize].marked)
            .count();
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

    /// Leaves out every pack `keep` rejects, with its blobs (call before
    /// [`Index::finish`], which then picks among the copies that remain).
    pub(crate) fn retain_packs(&mut self, keep: impl Fn(&PackInfo) -> bool) {
        let mut renumber = vec![u32::MAX; self.packs.len()];
        let mut kept = 0;
        for (i, number) in renumber.iter_mut().enumerate() {
            if keep(&self.packs[i]) {
                self.packs[kept] = self.packs[i];
                self.sources[kept] = self.sources[i];
                *number = kept as u32;
                kept += 1;
            }
        }
        self.packs.truncate(kept);
        self.sources.truncate(kept);
        self.entries.retain_mut(|e| {
            e.pack = renumber[e.pack as usize];
            e.pack != u32::MAX
        });
    }

    /// Drops the packs listed by added files that another added file
    /// supersedes, renumbering the rest.
    fn drop_superseded(&mut self) {
        let files = std::mem::take(&mut self.files);
        let superseded: HashSet<IndexId> =
            files.iter().flat_map(|(_, s)| s.iter().copied()).collect();
        let gone =
            |source: u32| source != NO_FILE && superseded.contains(&files[source as usize].0);
        if !self.sources.iter().any(|&s| gone(s)) {
            self.sources.fill(NO_FILE);
            return;
        }
        let mut renumber = vec![u32::MAX; self.packs.len()];
        let mut kept = 0;
        for (i, &source) in self.sources.iter().enumerate() {
            if !gone(source) {
                self.packs[kept] = self.packs[i];
                renumber[i] = kept as u32;
                kept += 1;
            }
        }
        self.packs.truncate(kept);
        self.sources = vec![NO_FILE; kept];
        self.entries.retain_mut(|e| {
            e.pack = renumber[e.pack as usize];
            e.pack != u32::MAX
        });
    }

    /// How many blobs [`Index::finish`] found in more than one pack not
    /// marked for deletion: of those copies it kept one, which may be in a
    /// pack that storage no longer has (an index file put back, say).
    pub fn unmarked_duplicates(&self) -> usize {
        self.duplicates
    }

    /// The position of a blob among the distinct blobs (`0..len()`).
    pub fn position(&self, kind: BlobKind, id: &Id) -> Option<usize> {
        let key = key_of(id, kind);
        let b = bucket(&id.0);
        let (lo, hi) = match self.buckets.get(b..b + 2) {
            Some(&[lo, hi]) => (lo as usize, hi as usize),
            _ => (0, self.entries.len()),
        };
        Some(lo + search(&self.entries[lo..hi], &key)?)
    }

    /// Where a blob is, if the repository has it: in an unmarked pack
    /// when there is such a copy.
    pub fn get(&self, kind: BlobKind, id: &Id) -> Option<Location> {
        let e = &self.entries[self.position(kind, id)?];
        let pack = self.packs[e.pack as usize];
        Some(Location {
            pack: pack.id,
            marked: pack.marked,
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

    /// Whether the repository has the blob, in any pack.
    pub fn contains(&self, kind: BlobKind, id: &Id) -> bool {
        self.get(kind, id).is_some()
    }

    /// Whether a writer may reference the blob without storing it again:
    /// it is in a pack that is not marked for deletion.
    pub fn usable(&self, kind: BlobKind, id: &Id) -> bool {
        self.get(kind, id).is_some_and(|loc| !loc.marked)
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index knows no blob.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The packs the index knows.
    pub fn packs(&self) -> impl Iterator<Item = PackInfo> + '_ {
        let mut seen = HashSet::new();
        self.packs
            .iter()
            .copied()
            .filter(move |p| seen.insert(p.id))
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

    fn info(n: u8, kind: BlobKind, size: u64, marked: bool) -> PackInfo {
        PackInfo {
            id: PackId(Id([n; 32])),
            kind,
            size,
            marked,
        }
    }

    #[test]
    fn marked_copies_lose_to_unmarked_ones_and_marks_apply_per_pack() {
        let mut index = Index::default();
        // Blob 3 is in marked pack 1 and unmarked pack 2; blob 4 only in
        // pack 1; pack 5 is listed twice, marked by one listing only.
        index.add_pack(
            info(1, BlobKind::Data, 1000, true),
            &[entry(BlobKind::Data, 3, 0), entry(BlobKind::Data, 4, 100)],
        );
        index.add_pack(
            info(2, BlobKind::Data, 1000, false),
            &[entry(BlobKind::Data, 3, 200)],
        );
        index.add_pack(
            info(5, BlobKind::Data, 1000, false),
            &[entry(BlobKind::Data, 6, 0)],
        );
        index.add_pack(
            info(5, BlobKind::Data, 1000, true),
            &[entry(BlobKind::Data, 6, 0)],
        );
        index.finish();
        let three = index.get(BlobKind::Data, &Id([3; 32])).unwrap();
        assert_eq!(
            (three.pack, three.offset, three.marked),
            (PackId(Id([2; 32])), 200, false)
        );
        assert!(index.usable(BlobKind::Data, &Id([3; 32])));
        let four = index.get(BlobKind::Data, &Id([4; 32])).unwrap();
        assert!(four.marked);
        assert!(index.contains(BlobKind::Data, &Id([4; 32])));
        assert!(!index.usable(BlobKind::Data, &Id([4; 32])));
        assert!(!index.usable(BlobKind::Data, &Id([6; 32])));
        let packs: Vec<(u8, bool)> = index.packs().map(|p| (p.id.0.0[0], p.marked)).collect();
        assert_eq!(packs, vec![(1, true), (2, false), (5, true)]);
    }

    #[test]
    fn files_added_one_by_one_drop_what_another_supersedes() {
        let file = |supersedes: Vec<u8>, packs: Vec<(u8, Vec<u8>)>| IndexFile {
            supersedes: supersedes
                .into_iter()
                .map(|n| IndexId(Id([n; 32])))
                .collect(),
            packs: packs
                .into_iter()
                .map(|(pack, blobs)| IndexPack {
                    id: PackId(Id([pack; 32])),
                    kind: BLOB_DATA,
                    size: 1000,
                    blobs: blobs
                        .into_iter()
                        .map(|b| entry(BlobKind::Data, b, u32::from(b)))
                        .collect(),
                    marked: None,
                })
                .collect(),
        };
        // File 2 supersedes file 1: pack 10 (only in file 1) is gone, and
        // blob 3 is found where file 2 says. File 2's own mark stands;
        // file 1's mark of pack 30 does not count.
        let one = file(vec![], vec![(10, vec![3, 4]), (30, vec![6])]);
        let mut one_marked = one.clone();
        one_marked.packs[1].marked = Some(Timestamp::new(1, 0));
        let two = file(vec![1], vec![(20, vec![3]), (30, vec![6])]);
        let three = file(vec![], vec![(40, vec![5])]);
        for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2]] {
            let files = [
                (IndexId(Id([1; 32])), &one_marked),
                (IndexId(Id([2; 32])), &two),
                (IndexId(Id([3; 32])), &three),
            ];
            let mut index = Index::default();
            for i in order {
                index.add_file_from(files[i].0, files[i].1);
            }
            index.finish();
            assert_eq!(index.len(), 3, "{order:?}");
            let three_at = index.get(BlobKind::Data, &Id([3; 32])).unwrap();
            assert_eq!(three_at.pack, PackId(Id([20; 32])));
            assert!(index.get(BlobKind::Data, &Id([4; 32])).is_none());
            assert!(index.usable(BlobKind::Data, &Id([6; 32])));
            assert!(index.contains(BlobKind::Data, &Id([5; 32])));
            let mut packs: Vec<u8> = index.packs().map(|p| p.id.0.0[0]).collect();
            packs.sort_unstable();
            assert_eq!(packs, vec![20, 30, 40]);
        }
    }

    #[test]
    fn memory_stays_within_forty_bytes_a_blob() {
        let mut index = Index::default();
        let n = 200_000u32;
        let blobs: Vec<PackEntry> = (0..n)
            .map(|i| PackEntry(BLOB_DATA, Id::of_stored(&i.to_le_bytes()), i, 100, 60, 0))
            .collect();
        // Packs of 1,000 blobs, as small packs of ~1 KiB chunks would hold.
        for (p, chunk) in blobs.chunks(1000).enumerate() {
            index.add_pack(
                info(p as u8, BlobKind::Data, u64::from(n) * 100, false),
                chunk,
            );
        }
        index.finish();
        let per_blob = index.memory_bytes() as f64 / f64::from(n);
        assert!(per_blob <= 42.0, "{per_blob} bytes a blob");
        assert!(index.memory_bytes() >= n as usize * Index::BYTES_PER_BLOB);
    }

    #[test]
    fn superseded_files_are_dropped() {
        let file = |supersedes: Vec<u8>| IndexFile {
            supersedes: supersedes
                .into_iter()
                .map(|n| IndexId(Id([n; 32])))
                .collect(),
            packs: vec![],
        };
        let files = vec![
            (IndexId(Id([1; 32])), file(vec![])),
            (IndexId(Id([2; 32])), file(vec![1, 9])),
            (IndexId(Id([3; 32])), file(vec![])),
        ];
        let (live, stale) = effective(files);
        let live: Vec<u8> = live.iter().map(|(id, _)| id.0.0[0]).collect();
        assert_eq!(live, vec![2, 3]);
        assert_eq!(stale, vec![IndexId(Id([1; 32]))]);
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
                marked: Some(Timestamp::new(1_700_000_000, 5)),
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
                marked: None,
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
        index.add_pack(info(1, BlobKind::Data, 10_000, false), &data);
        index.add_pack(
            info(2, BlobKind::Tree, 200, false),
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
        assert_eq!(Index::BYTES_PER_BLOB, 40);
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
        index.add_pack(info(1, BlobKind::Data, 200, false), &blobs);
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
