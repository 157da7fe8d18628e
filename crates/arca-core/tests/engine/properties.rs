//! Properties that must hold for any input: every repository object
//! decodes to what was encoded, a sealed blob opens to its plaintext and
//! to nothing else once a byte changes, and the chunker is deterministic
//! and resynchronises after an insertion.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use arca_core::raw::{
    Chunker, IndexFile, IndexPack, MasterKey, PackEntry, Sealer, decode_wal, encode_wal, open_blob,
};
use arca_core::{
    BlobId, BlobKind, ChunkerParams, Id, Node, NodeKind, PackId, Snapshot, Time, Timestamp, Tree,
    TreeId, WalHeader,
};
use proptest::prelude::*;

use crate::common;

fn id() -> impl Strategy<Value = Id> {
    any::<[u8; 32]>().prop_map(Id)
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    (any::<i64>(), 0..1_000_000_000u32).prop_map(|(seconds, nanos)| Timestamp { seconds, nanos })
}

/// Names a tree may hold: 1 to 40 bytes, no `/` or NUL, not `.` or `..`.
fn name() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1..=255u8, 1..40)
        .prop_map(|mut n| {
            n.iter_mut().filter(|b| **b == b'/').for_each(|b| *b = b'_');
            n
        })
        .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn node() -> impl Strategy<Value = Node> {
    let kinds = prop_oneof![
        Just(NodeKind::File),
        Just(NodeKind::Dir),
        Just(NodeKind::Symlink),
        Just(NodeKind::Fifo),
    ];
    (
        (name(), kinds, any::<u32>(), any::<u32>(), any::<u32>()),
        (timestamp(), timestamp(), timestamp()),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        (
            proptest::collection::vec(id(), 0..5),
            id(),
            proptest::collection::vec(any::<u8>(), 0..30),
        ),
    )
        .prop_map(
            |(
                (name, kind, mode, uid, gid),
                (mtime, atime, ctime),
                (size, inode, device, links),
                (content, sub, target),
            )| Node {
                name,
                kind,
                mode: mode & 0o7777,
                uid,
                gid,
                user: format!("u{uid}"),
                group: String::new(),
                mtime,
                atime,
                ctime,
                size,
                inode,
                device,
                links,
                target: if kind == NodeKind::Symlink {
                    target
                } else {
                    Vec::new()
                },
                rdev: 0,
                xattrs: Vec::new(),
                content: if kind == NodeKind::File {
                    content.into_iter().map(BlobId).collect()
                } else {
                    Vec::new()
                },
                subtree: (kind == NodeKind::Dir).then_some(TreeId(sub)),
            },
        )
}

fn tree() -> impl Strategy<Value = Tree> {
    proptest::collection::vec(node(), 0..20).prop_map(|mut nodes| {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        nodes.dedup_by(|a, b| a.name == b.name);
        Tree { nodes }
    })
}

fn index_file() -> impl Strategy<Value = IndexFile> {
    let pack = (
        id(),
        any::<bool>(),
        proptest::collection::vec((id(), 0..100_000u32, 0..70_000u32), 1..20),
    )
        .prop_map(|(pack, tree, blobs)| {
            let kind = if tree { BlobKind::Tree } else { BlobKind::Data };
            let mut offset = 0u32;
            let blobs: Vec<PackEntry> = blobs
                .into_iter()
                .map(|(id, raw, extra)| {
                    let length = raw + 40 + extra % 2;
                    let entry = if extra % 2 == 0 {
                        PackEntry(kind.to_byte(), id, offset, raw + 40, raw, 0)
                    } else {
                        PackEntry(kind.to_byte(), id, offset, length, raw, 1)
                    };
                    offset += entry.length();
                    entry
                })
                .collect();
            IndexPack {
                id: PackId(pack),
                kind: kind.to_byte(),
                size: u64::from(offset) + 100,
                blobs,
                marked: None,
            }
        });
    (
        proptest::collection::vec(id(), 0..4),
        proptest::collection::vec(pack, 0..6),
    )
        .prop_map(|(supersedes, packs)| IndexFile {
            supersedes: supersedes.into_iter().map(arca_core::IndexId).collect(),
            packs,
        })
}

fn snapshot() -> impl Strategy<Value = Snapshot> {
    (
        id(),
        proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..50), 1..4),
        "[a-z0-9.-]{1,20}",
        proptest::collection::vec("[a-z]{1,8}", 0..4),
        -(1i64 << 35)..(1i64 << 35),
    )
        .prop_map(|(tree, paths, hostname, tags, seconds)| Snapshot {
            time: Time {
                at: Timestamp { seconds, nanos: 0 },
                ..Time::now()
            },
            tree: TreeId(tree),
            paths: paths.into_iter().map(serde_bytes::ByteBuf::from).collect(),
            hostname,
            username: "root".into(),
            tags,
            description: String::new(),
            parent: None,
            program_version: "arca test".into(),
            summary: None,
            original: None,
            copied_from: None,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn trees_round_trip(tree in tree()) {
        let back = Tree::decode(&tree.encode(), "tree t").unwrap();
        prop_assert_eq!(back, tree);
    }

    #[test]
    fn index_files_round_trip(index in index_file()) {
        let key = MasterKey::generate();
        let back = IndexFile::decode(&index.encode(&key), &key, "index i").unwrap();
        prop_assert_eq!(back, index);
    }

    #[test]
    fn snapshots_round_trip(snapshot in snapshot()) {
        let key = MasterKey::generate();
        let back = Snapshot::decode(&snapshot.encode(&key), &key, "snapshot s").unwrap();
        prop_assert_eq!(back, snapshot);
    }

    #[test]
    fn a_sealed_blob_opens_to_its_plaintext_and_any_flip_is_refused(
        plain in proptest::collection::vec(any::<u8>(), 0..5000),
        repeat in 1..50usize,
        level in 0..4i32,
        flip in any::<proptest::sample::Index>(),
    ) {
        // Repetition makes some inputs compressible.
        let plain: Vec<u8> = plain.iter().copied().cycle().take(plain.len() * repeat).collect();
        let key = MasterKey::generate();
        let id = key.blob_id(&plain);
        let mut stored = Vec::new();
        let c = Sealer::default().seal_into(&key, level, BlobKind::Data, &id, &plain, &mut stored);
        let object = || "blob b".to_string();
        let back = open_blob(&key, BlobKind::Data, &id, c, plain.len() as u32, &stored, &object).unwrap();
        prop_assert_eq!(&back, &plain);
        prop_assert!(open_blob(&key, BlobKind::Tree, &id, c, plain.len() as u32, &stored, &object).is_err());
        let mut damaged = stored.clone();
        damaged[flip.index(stored.len())] ^= 1;
        prop_assert!(open_blob(&key, BlobKind::Data, &id, c, plain.len() as u32, &damaged, &object).is_err());
    }

    #[test]
    fn wal_objects_round_trip_and_any_flip_or_cut_is_refused(
        plain in proptest::collection::vec(any::<u8>(), 0..3000),
        repeat in 1..20usize,
        frame_size in 4096..9000u32,
        level in 0..4i32,
        flip in any::<proptest::sample::Index>(),
        cut in any::<proptest::sample::Index>(),
    ) {
        let plain: Vec<u8> = plain.iter().copied().cycle().take(plain.len() * repeat).collect();
        let key = MasterKey::generate();
        let header = WalHeader {
            name: "000000010000000000000001".into(),
            size: 0,
            hash: Id::default(),
            archived: Time::now(),
            frame_size,
        };
        let (name, stored) = encode_wal(&key, &header, &plain, level).unwrap();
        let (back, content) = decode_wal(&key, &name, &stored).unwrap();
        prop_assert_eq!(&content, &plain);
        prop_assert_eq!(back.size, plain.len() as u64);
        prop_assert_eq!(back.frames(), (plain.len() as u64).div_ceil(u64::from(frame_size)).max(1));
        let mut damaged = stored.clone();
        damaged[flip.index(stored.len())] ^= 1;
        prop_assert!(decode_wal(&key, &name, &damaged).is_err());
        prop_assert!(decode_wal(&key, &name, &stored[..cut.index(stored.len())]).is_err());
        let other = key.wal_name("000000010000000000000002").to_hex();
        prop_assert!(decode_wal(&key, &other, &stored).is_err());
    }
}

const PARAMS: ChunkerParams = ChunkerParams {
    min_size: 1024,
    avg_size: 4096,
    max_size: 16 * 1024,
};

/// The end offsets of the chunks of `data`, checking sizes on the way.
fn boundaries(data: &[u8], seed: u64) -> Vec<usize> {
    let mut chunker = Chunker::new(data, PARAMS, seed);
    let mut ends = Vec::new();
    let mut at = 0;
    while let Some(chunk) = chunker.next_chunk().unwrap() {
        assert!(chunk.len() <= PARAMS.max_size as usize);
        assert_eq!(chunk, &data[at..at + chunk.len()]);
        at += chunk.len();
        ends.push(at);
    }
    assert_eq!(at, data.len(), "the chunks cover the input");
    for pair in ends.windows(2).take(ends.len().saturating_sub(2)) {
        assert!(pair[1] - pair[0] >= PARAMS.min_size as usize);
    }
    ends
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn chunking_is_deterministic_and_resynchronises_after_an_insertion(
        data_seed in any::<u64>(),
        chunker_seed in any::<u64>(),
        len in 200_000..600_000usize,
        at in any::<proptest::sample::Index>(),
        inserted in proptest::collection::vec(any::<u8>(), 1..3000),
    ) {
        let data = common::random(len, data_seed);
        let original = boundaries(&data, chunker_seed);
        prop_assert_eq!(&boundaries(&data, chunker_seed), &original, "same input, same cuts");

        let p = at.index(len);
        let mut changed = data[..p].to_vec();
        changed.extend_from_slice(&inserted);
        changed.extend_from_slice(&data[p..]);
        let k = inserted.len();
        let after = boundaries(&changed, chunker_seed);

        // Chunks that end before the insertion are untouched. A cut at `p`
        // itself may move: FastCDC decides a cut at `e` after hashing the
        // byte at `e`, which the insertion replaces.
        let before: Vec<usize> = original.iter().copied().filter(|&e| e < p).collect();
        prop_assert_eq!(&after[..before.len()], &before[..]);
        // After it, the cuts meet the original ones (shifted by the
        // insertion) within a few chunks, and from there on all agree.
        let shifted: Vec<usize> = original.iter().filter(|&&e| e > p).map(|e| e + k).collect();
        let meet = after
            .iter()
            .position(|e| *e > p + k && shifted.binary_search(e).is_ok())
            .expect("the end of the input is always a common cut");
        let differing = meet - before.len();
        prop_assert!(differing <= 64, "{} chunks differ after an insertion of {} bytes", differing, k);
        let from = shifted.binary_search(&after[meet]).unwrap();
        prop_assert_eq!(&after[meet..], &shifted[from..]);
    }
}
