//! Deliberate tampering with stored objects is detected with an error
//! naming what was tampered with; no tampered bytes ever come back as a
//! file's contents.
//!
//! - two sealed blobs of equal length swapped inside their pack;
//! - a data blob presented as a tree blob (its pack copied among the tree
//!   packs and an index entry pointing at it, written with the key);
//! - an old snapshot file copied under a new name.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use crate::common;

use std::sync::Arc;

use arca_backend::{Backend, FileKind, MemoryBackend};
use arca_core::raw::{IndexFile, IndexPack, PackEntry};
use arca_core::{BlobKind, Id, Repository, SnapshotOptions, SnapshotProgress};
use common::random;

/// A repository with one snapshot of two files of 64 KiB each (one
/// incompressible chunk apiece, so two sealed blobs of equal length in one
/// pack); returns it with the source.
fn repository() -> (MemoryBackend, tempfile::TempDir) {
    let memory = common::init_memory(b"pw", &common::test_options());
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("buy"), random(64 << 10, 1)).unwrap();
    std::fs::write(src.path().join("sell"), random(64 << 10, 2)).unwrap();
    let mut repo = common::open(Arc::new(memory.clone()), b"pw");
    let options = SnapshotOptions {
        paths: vec![src.path().to_path_buf()],
        ..SnapshotOptions::default()
    };
    arca_core::snapshot(&mut repo, &options, &SnapshotProgress::default()).unwrap();
    (memory, src)
}

fn open(memory: &MemoryBackend) -> Repository {
    common::open(Arc::new(memory.clone()), b"pw")
}

/// Restores the only snapshot; the error, or the restored files.
fn restore(memory: &MemoryBackend, src: &std::path::Path) -> Result<[Vec<u8>; 2], String> {
    let repo = open(memory);
    let (_, snapshot) = repo.find_snapshot("latest").map_err(|e| e.to_string())?;
    let target = tempfile::tempdir().unwrap();
    common::restore(&repo, &snapshot, target.path()).map_err(|e| e.to_string())?;
    let dir = target.path().join(src.strip_prefix("/").unwrap());
    Ok([
        std::fs::read(dir.join("buy")).unwrap(),
        std::fs::read(dir.join("sell")).unwrap(),
    ])
}

/// The data pack and its two blobs.
fn data_pack(memory: &MemoryBackend) -> (String, Vec<PackEntry>) {
    let repo = open(memory);
    let mut packs: Vec<IndexPack> = repo
        .read_index_files()
        .unwrap()
        .into_iter()
        .flat_map(|(_, f)| f.packs)
        .filter(|p| p.kind == BlobKind::Data.to_byte())
        .collect();
    assert_eq!(packs.len(), 1);
    let pack = packs.pop().unwrap();
    assert_eq!(pack.blobs.len(), 2);
    (pack.id.to_hex(), pack.blobs)
}

fn replace(memory: &MemoryBackend, kind: FileKind, name: &str, bytes: &[u8]) {
    memory.remove(kind, name).unwrap();
    memory.write(kind, name, bytes).unwrap();
}

#[test]
fn two_blobs_swapped_inside_their_pack_are_detected() {
    let (memory, src) = repository();
    let (name, blobs) = data_pack(&memory);
    let (a, b) = (blobs[0], blobs[1]);
    assert_eq!(
        a.length(),
        b.length(),
        "the two blobs must be the same size"
    );
    let mut bytes = memory.read(FileKind::Data, &name, u64::MAX).unwrap();
    let (a_at, b_at, len) = (
        a.offset() as usize,
        b.offset() as usize,
        a.length() as usize,
    );
    let first = bytes[a_at..a_at + len].to_vec();
    bytes.copy_within(b_at..b_at + len, a_at);
    bytes[b_at..b_at + len].copy_from_slice(&first);
    replace(&memory, FileKind::Data, &name, &bytes);

    // The pack is named, with the files whose data it held.
    let report = common::full_check(&memory);
    let text = format!("{:?}", report.errors);
    assert!(text.contains(&name), "{text}");
    for file in ["buy", "sell"] {
        let path = src.path().join(file).display().to_string();
        assert!(text.contains(&path), "{file} is named as affected: {text}");
    }
    let err = restore(&memory, src.path()).unwrap_err();
    assert!(
        err.contains("authentication") || err.contains("damaged"),
        "{err}"
    );
}

#[test]
fn a_data_blob_presented_as_a_tree_is_refused() {
    let (memory, _src) = repository();
    let (name, blobs) = data_pack(&memory);
    let repo = open(&memory);
    let (_, snapshot) = repo.find_snapshot("latest").unwrap();
    let root = snapshot.tree.id();
    // The data pack, byte for byte, among the tree packs (its name is
    // still the hash of its bytes) ...
    let bytes = memory.read(FileKind::Data, &name, u64::MAX).unwrap();
    memory.write(FileKind::Tree, &name, &bytes).unwrap();
    // ... and an index, written with the key, that says the snapshot's root
    // tree is the first data blob there; it supersedes every other index.
    let old = repo.read_index_files().unwrap();
    let mut packs: Vec<IndexPack> = old.iter().flat_map(|(_, f)| f.packs.clone()).collect();
    for pack in &mut packs {
        pack.blobs.retain(|b| b.id() != root);
    }
    let d = blobs[0];
    packs.push(IndexPack {
        id: arca_core::PackId(Id::from_hex(&name).unwrap()),
        kind: BlobKind::Tree.to_byte(),
        size: bytes.len() as u64,
        blobs: vec![PackEntry(
            BlobKind::Tree.to_byte(),
            root,
            d.offset(),
            d.length(),
            d.raw_length(),
            d.compression(),
        )],
        marked: None,
    });
    repo.save_index(&IndexFile {
        supersedes: old.iter().map(|(id, _)| *id).collect(),
        packs,
    })
    .unwrap();

    let repo = open(&memory);
    let err = repo.read_tree(&snapshot.tree).unwrap_err().to_string();
    assert!(
        err.contains(&root.to_hex()[..8]) && err.contains("authentication"),
        "{err}"
    );
    let report = common::full_check(&memory);
    assert!(
        format!("{:?}", report.errors).contains(&root.to_hex()[..8]),
        "{:?}",
        report.errors
    );
}

#[test]
fn an_old_snapshot_file_under_a_new_name_is_detected() {
    let (memory, src) = repository();
    let name = memory.list(FileKind::Snapshot).unwrap()[0].name.clone();
    let bytes = memory.read(FileKind::Snapshot, &name, u64::MAX).unwrap();
    let other = "ab".repeat(32);
    memory.write(FileKind::Snapshot, &other, &bytes).unwrap();

    let report = common::full_check(&memory);
    let text = format!("{:?}", report.errors);
    assert!(text.contains(&other[..8]), "the copy is named: {text}");
    assert!(!text.contains(&name[..8]), "the original is fine: {text}");
    // The genuine snapshot still restores.
    let repo = open(&memory);
    let (_, snapshot) = repo.find_snapshot(&name).unwrap();
    let target = tempfile::tempdir().unwrap();
    common::restore(&repo, &snapshot, target.path()).unwrap();
    let restored = target.path().join(src.path().strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(restored.join("buy")).unwrap(),
        std::fs::read(src.path().join("buy")).unwrap()
    );
}

#[test]
fn a_key_file_planted_from_another_repository_opens_nothing() {
    let (memory, _src) = repository();
    let other = common::init_memory(b"planted", &common::test_options());
    let planted = other.list(FileKind::Key).unwrap()[0].name.clone();
    let bytes = other.read(FileKind::Key, &planted, u64::MAX).unwrap();
    memory.write(FileKind::Key, &planted, &bytes).unwrap();
    // Its password unwraps its own master secret, which seals nothing here.
    assert!(Repository::open(Arc::new(memory.clone()), b"planted").is_err());
    // The repository's own key still opens it.
    let repo = open(&memory);
    assert_eq!(repo.snapshots().unwrap().len(), 1);
}
