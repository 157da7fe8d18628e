//! Changing tags rewrites snapshot files: new first, old removed after. A
//! failure at any write or removal leaves, for every snapshot, the old file
//! or its replacement (never neither), and a repository `check` passes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use arca_backend::{Backend, MemoryBackend};
use arca_core::ops::tag::{self, TagChange};
use arca_core::{Repository, SnapshotId, SnapshotOptions};

use crate::common;

fn open(backend: Arc<dyn Backend>) -> Repository {
    let mut repo = Repository::open(backend, b"pw").unwrap();
    repo.load_index().unwrap();
    repo
}

/// A repository with two snapshots of one directory; their ids.
fn two_snapshots() -> (MemoryBackend, Vec<SnapshotId>, tempfile::TempDir) {
    let memory = common::init_memory(b"pw", &common::test_options());
    let dir = tempfile::tempdir().unwrap();
    let mut ids = Vec::new();
    for (n, tag) in [(1, "nightly"), (2, "weekly")] {
        std::fs::write(dir.path().join("data"), common::random(20_000, n)).unwrap();
        let mut repo = open(Arc::new(memory.clone()));
        let options = SnapshotOptions {
            paths: vec![dir.path().to_path_buf()],
            tags: vec![tag.into()],
            ..SnapshotOptions::default()
        };
        let outcome = arca_core::snapshot(&mut repo, &options, &Default::default()).unwrap();
        ids.push(outcome.id.unwrap());
    }
    (memory, ids, dir)
}

fn month_end() -> TagChange {
    TagChange {
        add: vec!["month-end".into()],
        ..TagChange::default()
    }
}

/// Tags every snapshot of `backend`; whether it failed.
fn retag(backend: Arc<dyn Backend>) -> bool {
    let repo = open(backend);
    let all = repo.snapshots().unwrap();
    tag::plan(&all, &month_end())
        .and_then(|plan| tag::execute(&repo, &plan))
        .is_err()
}

#[test]
fn a_failure_at_any_step_leaves_each_snapshot_old_or_new_never_neither() {
    let (memory, ids, _dir) = two_snapshots();
    // Two new snapshot files, then the two old ones removed.
    common::fail_at_every_step(&memory, 4, retag, |k, copy| {
        let repo = open(Arc::new(copy.clone()));
        let now = repo.snapshots().unwrap();
        for id in &ids {
            let old = now.iter().any(|(i, _)| i == id);
            let new = now
                .iter()
                .any(|(_, s)| s.original == Some(*id) && s.tags.contains(&"month-end".to_string()));
            assert!(
                old || new,
                "step {k}: snapshot {id} and its replacement are both gone"
            );
        }
        let report = common::full_check(&copy);
        assert!(report.ok(), "step {k}: {:?}", report.errors);
        // Running it again finishes the job.
        assert!(!retag(Arc::new(copy.clone())));
        let done = open(Arc::new(copy)).snapshots().unwrap();
        assert!(
            done.iter()
                .all(|(_, s)| s.tags.contains(&"month-end".to_string())),
            "step {k}"
        );
        assert!(done.iter().all(|(i, _)| !ids.contains(i)), "step {k}");
    });
}

#[test]
fn a_retagged_snapshot_keeps_everything_else_and_records_its_original() {
    let (memory, ids, _dir) = two_snapshots();
    let repo = open(Arc::new(memory.clone()));
    let before = repo.load_snapshot(&ids[0]).unwrap();
    let chosen = vec![(ids[0], before.clone())];
    let plan = tag::plan(&chosen, &month_end()).unwrap();
    let done = tag::execute(&repo, &plan).unwrap();
    assert_eq!(done.len(), 1);
    let after = repo.load_snapshot(&done[0].new).unwrap();
    assert_eq!(after.tags, ["nightly", "month-end"]);
    assert_eq!(after.original, Some(ids[0]));
    assert_eq!(
        (after.tree, after.time, &after.paths, &after.hostname),
        (before.tree, before.time, &before.paths, &before.hostname)
    );
    assert!(repo.load_snapshot(&ids[0]).is_err(), "the old file is gone");
    // A second change keeps pointing at the first original.
    let chosen = vec![(done[0].new, after)];
    let change = TagChange {
        remove: vec!["nightly".into()],
        ..TagChange::default()
    };
    let again = tag::execute(&repo, &tag::plan(&chosen, &change).unwrap()).unwrap();
    let last = repo.load_snapshot(&again[0].new).unwrap();
    assert_eq!(last.original, Some(ids[0]));
    assert_eq!(last.tags, ["month-end"]);
}
