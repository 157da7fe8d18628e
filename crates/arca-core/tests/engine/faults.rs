//! Storage that misbehaves: a snapshot over a backend that fails a fifth of
//! its requests transiently completes, checks and restores; one over a
//! backend that fails for good ends with an error naming the object and
//! leaves a repository that checks, with every earlier snapshot intact.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use crate::common;

use arca_backend::fault::{Fault, FaultBackend, Schedule};
use arca_backend::{Backend, FileKind, MemoryBackend, RetryBackend, RetryPolicy};
use arca_core::{Repository, SnapshotOptions, SnapshotProgress};
use common::random;

fn init() -> MemoryBackend {
    common::init_memory(b"pw", &common::test_options())
}

fn source(seed: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..6 {
        std::fs::write(
            dir.path().join(format!("f{i}")),
            random(1 << 20, seed * 10 + i),
        )
        .unwrap();
    }
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/small"), b"portfolio state").unwrap();
    dir
}

fn open(backend: Arc<dyn Backend>) -> Repository {
    common::open(backend, b"pw")
}

fn snapshot(
    repo: &mut Repository,
    path: &std::path::Path,
) -> arca_core::Result<arca_core::SnapshotId> {
    let options = SnapshotOptions {
        paths: vec![path.to_path_buf()],
        checkpoint_interval: Some(Duration::ZERO),
        ..SnapshotOptions::default()
    };
    arca_core::snapshot(repo, &options, &SnapshotProgress::default()).map(|o| o.id.unwrap())
}

/// A full check with every pack read, through a backend that behaves.
fn assert_checks(memory: &MemoryBackend) {
    let report = common::full_check(memory);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 12,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

#[test]
fn a_snapshot_over_storage_failing_a_fifth_of_requests_completes() {
    let memory = init();
    let src = source(1);
    for fault in [Fault::Transient, Fault::TransientAfter] {
        let faulty = FaultBackend::new(memory.clone(), Schedule::random(0.2, 42, fault));
        let retrying = Arc::new(RetryBackend::new(faulty, quick_retries()));
        let stats = retrying.stats();
        let mut repo = open(retrying);
        let id = snapshot(&mut repo, src.path()).unwrap();
        assert!(stats.counts().retries > 0, "no failure was injected");

        assert_checks(&memory);
        let repo = open(Arc::new(memory.clone()));
        let target = tempfile::tempdir().unwrap();
        let (_, snap) = repo.find_snapshot(&id.to_hex()).unwrap();
        common::restore(&repo, &snap, target.path()).unwrap();
        let restored = target.path().join(src.path().strip_prefix("/").unwrap());
        for i in 0..6 {
            let name = format!("f{i}");
            assert!(
                std::fs::read(restored.join(&name)).unwrap()
                    == std::fs::read(src.path().join(&name)).unwrap(),
                "{name} differs after {fault:?}"
            );
        }
    }
}

#[test]
fn storage_that_fails_for_good_ends_the_snapshot_cleanly() {
    let memory = init();
    let first_src = source(2);
    let first = snapshot(&mut open(Arc::new(memory.clone())), first_src.path()).unwrap();

    // Fail writes of one kind for good from some point on, through the
    // retry wrapper (which must not retry them): data packs from the third,
    // index files from the second (the first is a checkpoint), the snapshot
    // file itself.
    let cases: [(&[FileKind], u64); 3] = [
        (&[FileKind::Data], 2),
        (&[FileKind::Index], 1),
        (&[FileKind::Snapshot], 0),
    ];
    for (seed, (kinds, start)) in (3..).zip(cases) {
        let src = source(seed);
        let faulty = FaultBackend::new(
            memory.clone(),
            Schedule::from(start, Fault::Permanent)
                .only(kinds)
                .writes_only(),
        );
        let retrying = Arc::new(RetryBackend::new(faulty, quick_retries()));
        let stats = retrying.stats();
        let mut repo = open(retrying);
        let err = snapshot(&mut repo, src.path()).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&kinds[0].to_string()),
            "error does not name the {} : {text}",
            kinds[0]
        );
        assert_eq!(stats.counts().retries, 0, "a permanent failure was retried");
        assert_checks(&memory);
        let snapshots = open(Arc::new(memory.clone())).snapshots().unwrap();
        assert!(snapshots.iter().any(|(id, _)| *id == first));
    }
}
