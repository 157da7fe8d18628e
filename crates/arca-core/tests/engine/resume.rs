//! An interrupted snapshot's uploads are reused by the next run: the
//! checkpoint index files written while it ran make them known.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common;

use arca_backend::{Backend, FileKind};
use arca_core::{Repository, SnapshotOptions, SnapshotProgress};
use common::{Failing, random};

#[test]
fn an_interrupted_snapshot_is_resumed_without_resending() {
    let memory = common::init_memory(b"pw", &common::test_options());
    let source = tempfile::tempdir().unwrap();
    // Eight distinct MiB: whatever the (key-seeded) chunk boundaries, they
    // need at least five 1 MiB packs, so the fifth write always fails.
    for i in 0..8 {
        std::fs::write(
            source.path().join(format!("f{i}")),
            random(1 << 20, 2 * i + 1),
        )
        .unwrap();
    }
    let snap_options = SnapshotOptions {
        paths: vec![source.path().to_path_buf()],
        checkpoint_interval: Some(Duration::ZERO),
        ..SnapshotOptions::default()
    };

    // Every data pack write after the first four fails, like a network that
    // goes away.
    let data_writes = AtomicUsize::new(0);
    let flaky = Arc::new(Failing::new(memory.clone(), move |kind, write| {
        write && kind == FileKind::Data && data_writes.fetch_add(1, Ordering::SeqCst) >= 4
    }));
    let mut repo = Repository::open(flaky, b"pw").unwrap();
    repo.load_index().unwrap();
    let err =
        arca_core::snapshot(&mut repo, &snap_options, &SnapshotProgress::default()).unwrap_err();
    assert!(err.to_string().contains("data pack"), "{err}");
    assert!(
        memory.list(FileKind::Snapshot).unwrap().is_empty(),
        "no snapshot from a failed run"
    );
    let stored_packs = memory.list(FileKind::Data).unwrap().len();
    assert_eq!(stored_packs, 4);
    assert!(
        !memory.list(FileKind::Index).unwrap().is_empty(),
        "checkpoints were saved"
    );

    let mut repo = Repository::open(Arc::new(memory.clone()), b"pw").unwrap();
    repo.load_index().unwrap();
    let outcome =
        arca_core::snapshot(&mut repo, &snap_options, &SnapshotProgress::default()).unwrap();
    let summary = outcome.snapshot.summary.unwrap();
    assert_eq!(summary.bytes_read, 8 << 20);
    // At least four of the eight MiB (four full packs) were stored before
    // the failure and are reused; the rest is still to send.
    assert!(
        summary.bytes_added <= (4 << 20) + (64 << 10),
        "re-sent data: {} bytes added",
        summary.bytes_added
    );
    assert!(summary.bytes_added > 0, "nothing was left to send");
}
