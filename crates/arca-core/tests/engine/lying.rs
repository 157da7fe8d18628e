//! Storage that acknowledges writes but keeps truncated or altered bytes:
//! with uploads verified, the snapshot fails before it is saved and the
//! repository stays sound; without, the next full check names the damaged
//! object.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use arca_backend::fault::{Fault, FaultBackend, Schedule};
use arca_backend::{FileKind, MemoryBackend};
use arca_core::{SnapshotOptions, SnapshotProgress};
use common::random;

fn source() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..4 {
        std::fs::write(dir.path().join(format!("f{i}")), random(600 << 10, 90 + i)).unwrap();
    }
    dir
}

/// Takes a snapshot through storage that lies about the `nth` write of
/// `kind`; returns the outcome.
fn snapshot_through_liar(
    memory: &MemoryBackend,
    kind: FileKind,
    fault: Fault,
    verify: bool,
) -> arca_core::Result<()> {
    let src = source();
    let liar = FaultBackend::new(
        memory.clone(),
        Schedule::nth(0, fault).only(&[kind]).writes_only(),
    );
    let mut repo = common::open(Arc::new(liar), b"pw");
    repo.set_verify_uploads(verify);
    let options = SnapshotOptions {
        paths: vec![src.path().to_path_buf()],
        checkpoint_interval: Some(Duration::ZERO),
        ..SnapshotOptions::default()
    };
    arca_core::snapshot(&mut repo, &options, &SnapshotProgress::default()).map(drop)
}

#[test]
fn verified_uploads_catch_a_lying_write_before_the_snapshot_is_saved() {
    for kind in [
        FileKind::Data,
        FileKind::Tree,
        FileKind::Index,
        FileKind::Snapshot,
    ] {
        for fault in [Fault::Truncate, Fault::Corrupt] {
            let memory = common::init_memory(b"pw", &common::test_options());
            let err = snapshot_through_liar(&memory, kind, fault, true).unwrap_err();
            assert!(
                err.to_string().contains(&kind.to_string()),
                "{kind} {fault:?}: {err}"
            );
            // Nothing refers to the bad object: the repository checks, and
            // no snapshot was saved (a bad snapshot file is not one).
            let report = common::full_check(&memory);
            assert!(
                report.errors.is_empty(),
                "{kind} {fault:?}: {:?}",
                report.errors
            );
            let repo = common::open(Arc::new(memory.clone()), b"pw");
            assert!(repo.snapshots().unwrap().is_empty(), "{kind} {fault:?}");
        }
    }
}

#[test]
fn without_verification_the_next_check_names_the_damaged_object() {
    for kind in [FileKind::Data, FileKind::Tree, FileKind::Index] {
        let memory = common::init_memory(b"pw", &common::test_options());
        snapshot_through_liar(&memory, kind, Fault::Corrupt, false).unwrap();
        let report = common::full_check(&memory);
        let text = format!("{:?}", report.errors);
        assert!(
            !report.errors.is_empty() && text.contains(&kind.to_string()),
            "{kind}: {text}"
        );
    }
}
