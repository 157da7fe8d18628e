//! No success built on absent data (§7.6 of the format): before a snapshot
//! file is written, every pack the snapshot's blobs live in must be in a
//! storage listing taken during the run. A pack the index lists but storage
//! lacks (deleted under the run, an index file put back, a listing that
//! lied earlier) is never trusted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use crate::common;

use std::sync::Arc;

use arca_backend::{Backend, FileKind, MemoryBackend};
use arca_core::{ErrorKind, SnapshotOptions, SnapshotProgress};
use common::random;

/// Stores `data` as the stream `/dump.sql`; `meanwhile` runs when the
/// stream has ended, before anything refers to what was stored.
fn stream_snapshot(
    memory: &MemoryBackend,
    data: &[u8],
    meanwhile: impl Fn(&MemoryBackend),
) -> arca_core::Result<arca_core::Snapshot> {
    let mut repo = common::open(Arc::new(memory.clone()), b"pw");
    let mut reader = data;
    arca_core::snapshot_stream(
        &mut repo,
        &SnapshotOptions::default(),
        "dump.sql",
        &mut reader,
        &mut || {
            meanwhile(memory);
            Ok(())
        },
        &SnapshotProgress::default(),
    )
    .map(|outcome| outcome.snapshot)
}

fn data_packs(memory: &MemoryBackend) -> Vec<String> {
    memory
        .list(FileKind::Data)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}

fn remove_data_packs(memory: &MemoryBackend) {
    for name in data_packs(memory) {
        memory.remove(FileKind::Data, &name).unwrap();
    }
}

fn truncate_data_packs(memory: &MemoryBackend) {
    for name in data_packs(memory) {
        let bytes = memory.read(FileKind::Data, &name, u64::MAX).unwrap();
        memory.tamper(FileKind::Data, &name, bytes[..bytes.len() / 2].to_vec());
    }
}

/// The packs the second snapshot deduplicated against vanish (or are
/// truncated) while it runs: it must not be saved.
#[test]
fn a_snapshot_whose_packs_vanish_under_it_is_not_saved() {
    for (what, damage) in [
        ("removed", remove_data_packs as fn(&MemoryBackend)),
        ("truncated", truncate_data_packs),
    ] {
        let memory = common::init_memory(b"pw", &common::test_options());
        let data = random(3 << 20, 11);
        stream_snapshot(&memory, &data, |_| {}).unwrap();
        let err = stream_snapshot(&memory, &data, damage).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Conflict, "{what}: {err}");
        assert!(
            err.to_string().contains("missing from the storage")
                && err.to_string().contains("again"),
            "{what}: {err}"
        );
        let repo = common::open(Arc::new(memory.clone()), b"pw");
        assert_eq!(repo.snapshots().unwrap().len(), 1, "{what}: nothing saved");
    }
}

/// Packs gone before a stream snapshot starts cost only storing their
/// blobs again: it restores whole.
#[test]
fn a_stream_snapshot_stores_what_absent_packs_held_anew() {
    for damage in [remove_data_packs as fn(&MemoryBackend), truncate_data_packs] {
        let memory = common::init_memory(b"pw", &common::test_options());
        let data = random(3 << 20, 12);
        stream_snapshot(&memory, &data, |_| {}).unwrap();
        damage(&memory);
        let snapshot = stream_snapshot(&memory, &data, |_| {}).unwrap();
        let repo = common::open(Arc::new(memory.clone()), b"pw");
        let target = tempfile::tempdir().unwrap();
        common::restore(&repo, &snapshot, target.path()).unwrap();
        assert!(std::fs::read(target.path().join("dump.sql")).unwrap() == data);
    }
}

#[test]
fn a_snapshot_of_files_stores_what_an_absent_pack_held_anew() {
    let memory = common::init_memory(b"pw", &common::test_options());
    let src = tempfile::tempdir().unwrap();
    for i in 0..4 {
        std::fs::write(src.path().join(format!("f{i}")), random(700 << 10, 20 + i)).unwrap();
    }
    let options = SnapshotOptions {
        paths: vec![src.path().to_path_buf()],
        ..SnapshotOptions::default()
    };
    let mut repo = common::open(Arc::new(memory.clone()), b"pw");
    arca_core::snapshot(&mut repo, &options, &SnapshotProgress::default()).unwrap();
    for name in data_packs(&memory) {
        memory.remove(FileKind::Data, &name).unwrap();
    }
    let mut repo = common::open(Arc::new(memory.clone()), b"pw");
    let outcome = arca_core::snapshot(&mut repo, &options, &SnapshotProgress::default()).unwrap();
    // Fresh from storage: the new snapshot restores whole.
    let repo = common::open(Arc::new(memory.clone()), b"pw");
    let target = tempfile::tempdir().unwrap();
    common::restore(&repo, &outcome.snapshot, target.path()).unwrap();
    let back = target.path().join(src.path().strip_prefix("/").unwrap());
    for i in 0..4 {
        let name = format!("f{i}");
        assert!(
            std::fs::read(back.join(&name)).unwrap()
                == std::fs::read(src.path().join(&name)).unwrap(),
            "{name}"
        );
    }
}
