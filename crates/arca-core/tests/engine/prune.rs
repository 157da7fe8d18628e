//! Prune: interrupted at every write or delete it makes, the repository
//! still checks clean and every kept snapshot restores; a snapshot that ran
//! across prunes either saves data that is really there or fails cleanly.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common;

use arca_backend::{Backend, FileKind, MemoryBackend};
use arca_core::{
    CheckOptions, CheckProgress, ErrorKind, InitOptions, PackAction, PruneOptions, PrunePlan,
    Repository, SnapshotId, SnapshotOptions, SnapshotProgress, Subset,
};
use common::{Failing, random};

fn new_repo() -> MemoryBackend {
    common::init_memory(
        b"pw",
        &InitOptions {
            chunker: common::small_chunks(),
            ..common::test_options()
        },
    )
}

fn open(backend: Arc<dyn Backend>) -> Repository {
    let mut repo = Repository::open(backend, b"pw").unwrap();
    repo.load_index().unwrap();
    repo
}

/// The files of one version of the source: (name, content).
type Version = Vec<(String, Vec<u8>)>;

/// Writes `version` into `dir` (replacing what was there).
fn write_version(dir: &Path, version: &Version) {
    for entry in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    for (name, content) in version {
        std::fs::write(dir.join(name), content).unwrap();
    }
}

fn take(memory: &MemoryBackend, dir: &Path, version: &Version) -> SnapshotId {
    write_version(dir, version);
    let mut repo = open(Arc::new(memory.clone()));
    arca_core::snapshot(
        &mut repo,
        &snapshot_options(dir),
        &SnapshotProgress::default(),
    )
    .unwrap()
    .id
    .unwrap()
}

/// Four versions of three files; each version rewrites one file.
fn versions() -> Vec<Version> {
    let mut files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("f{i}"), random(400 << 10, i)))
        .collect();
    let mut out = vec![files.clone()];
    for v in 1..4u64 {
        files[(v % 3) as usize].1 = random(400 << 10, 100 + v);
        out.push(files.clone());
    }
    out
}

/// `check --read-data` passes and every kept snapshot restores exactly.
fn assert_sound(
    memory: &MemoryBackend,
    kept: &[(SnapshotId, &Version)],
    dir: &Path,
    context: &str,
) {
    let mut repo = open(Arc::new(memory.clone()));
    let report = arca_core::check(
        &mut repo,
        &CheckOptions {
            read_data: Some(Subset::All),
        },
        &CheckProgress::default(),
    )
    .unwrap();
    assert!(report.ok(), "{context}: check failed: {:?}", report.errors);
    for (id, version) in kept {
        let snapshot = repo.load_snapshot(id).unwrap();
        let target = tempfile::tempdir().unwrap();
        common::restore(&repo, &snapshot, target.path())
            .unwrap_or_else(|e| panic!("{context}: restore of {id} failed: {e}"));
        let root = target.path().join(dir.strip_prefix("/").unwrap());
        for (name, content) in *version {
            let restored = std::fs::read(root.join(name)).unwrap();
            assert!(restored == *content, "{context}: {name} of {id} differs");
        }
    }
}

/// Plans and carries out a prune of `backend`; returns the plan.
fn prune(backend: Arc<dyn Backend>, options: &PruneOptions) -> arca_core::Result<PrunePlan> {
    prune_locked_through(backend.clone(), backend, options)
}

/// Plans and carries out a prune of `backend` under the exclusive lock,
/// taken through `lock_on` (the same storage seen without faults, so that
/// the lock's own writes are not among the changes a test interrupts).
fn prune_locked_through(
    backend: Arc<dyn Backend>,
    lock_on: Arc<dyn Backend>,
    options: &PruneOptions,
) -> arca_core::Result<PrunePlan> {
    let lock = common::exclusive(&open(lock_on))?;
    let mut repo = open(backend);
    let plan = arca_core::plan_prune(&mut repo, options, None)?;
    arca_core::execute_prune(&repo, &plan, options, &lock, None)?;
    Ok(plan)
}

/// Plans a prune of `memory` without carrying it out.
fn plan(memory: &MemoryBackend, options: &PruneOptions) -> PrunePlan {
    let mut repo = open(Arc::new(memory.clone()));
    arca_core::plan_prune(&mut repo, options, None).unwrap()
}

/// Runs `prune` on a copy of `memory` whose `fail_at`-th write or remove
/// (1-based) and every later one fail; returns the copy, whether the prune
/// failed, and how many changes it attempted.
fn prune_failing_at(
    memory: &MemoryBackend,
    options: &PruneOptions,
    fail_at: usize,
) -> (MemoryBackend, bool, usize) {
    let copy = memory.duplicate();
    let changes = Arc::new(AtomicUsize::new(0));
    let counter = changes.clone();
    let failing = Failing::new(copy.clone(), move |_, _| {
        counter.fetch_add(1, Ordering::SeqCst) + 1 >= fail_at
    });
    let failed = prune_locked_through(Arc::new(failing), Arc::new(copy.clone()), options).is_err();
    (copy, failed, changes.load(Ordering::SeqCst))
}

fn snapshot_options(dir: &Path) -> SnapshotOptions {
    SnapshotOptions {
        paths: vec![dir.to_path_buf()],
        hostname: "h".into(),
        no_parent: true,
        ..SnapshotOptions::default()
    }
}

const DELETING: PruneOptions = PruneOptions {
    max_unused: arca_core::MAX_UNUSED_DEFAULT,
    keep_marked: Duration::ZERO,
    instant_delete: false,
};

/// Sets up four snapshots, forgets the first two, and returns the
/// repository, the kept snapshots, the versions and the source directory.
fn history() -> (
    MemoryBackend,
    Vec<SnapshotId>,
    Vec<Version>,
    tempfile::TempDir,
) {
    let memory = new_repo();
    let dir = tempfile::tempdir().unwrap();
    let versions = versions();
    let ids: Vec<SnapshotId> = versions
        .iter()
        .map(|v| take(&memory, dir.path(), v))
        .collect();
    for id in &ids[..2] {
        memory.remove(FileKind::Snapshot, &id.to_hex()).unwrap();
    }
    (memory, ids, versions, dir)
}

fn interrupt_everywhere(
    memory: &MemoryBackend,
    options: &PruneOptions,
    kept: &[(SnapshotId, &Version)],
    dir: &Path,
) {
    let (_, failed, total) = prune_failing_at(memory, options, usize::MAX);
    assert!(!failed);
    assert!(total >= 3, "the prune made only {total} changes");
    for k in 1..=total {
        let (copy, failed, _) = prune_failing_at(memory, options, k);
        assert!(failed, "a failure at change {k} of {total} went unnoticed");
        assert_sound(
            &copy,
            kept,
            dir,
            &format!("interrupted at change {k} of {total}"),
        );
        // And a prune run afterwards finishes the job.
        let (copy, failed, _) = prune_failing_at(&copy, options, usize::MAX);
        assert!(!failed);
        assert_sound(
            &copy,
            kept,
            dir,
            &format!("prune after interruption at {k}"),
        );
    }
}

#[test]
fn instant_prune_interrupted_at_every_change_leaves_a_sound_repository() {
    let (memory, ids, versions, dir) = history();
    let kept = [(ids[2], &versions[2]), (ids[3], &versions[3])];
    let options = PruneOptions {
        instant_delete: true,
        ..PruneOptions::default()
    };
    interrupt_everywhere(&memory, &options, &kept, dir.path());
}

#[test]
fn two_phase_prune_interrupted_at_every_change_leaves_a_sound_repository() {
    let (memory, ids, versions, dir) = history();
    let kept = [(ids[2], &versions[2]), (ids[3], &versions[3])];
    let marking = PruneOptions::default();
    // Phase one: marking.
    interrupt_everywhere(&memory, &marking, &kept, dir.path());
    let (marked, failed, _) = prune_failing_at(&memory, &marking, usize::MAX);
    assert!(!failed);
    // Phase two, past the grace period: deleting.
    interrupt_everywhere(&marked, &DELETING, &kept, dir.path());
}

#[test]
fn marked_packs_wait_for_the_grace_period_and_come_back_when_used() {
    let (memory, ids, versions, dir) = history();
    let size =
        |m: &MemoryBackend| -> u64 { m.list(FileKind::Data).unwrap().iter().map(|e| e.size).sum() };
    let before = size(&memory);
    let marking = prune(Arc::new(memory.clone()), &PruneOptions::default()).unwrap();
    let stats = &marking.stats;
    assert!(stats.mark_packs + stats.repack_packs > 0, "{stats:?}");
    assert_eq!(stats.delete_packs, 0);
    assert!(size(&memory) >= before, "a marking prune deleted data");

    // Within the grace period a second prune deletes nothing.
    let waiting = plan(&memory, &PruneOptions::default());
    assert_eq!(waiting.stats.delete_packs, 0);
    assert!(waiting.stats.waiting_packs > 0);

    // A snapshot of the first version again uses blobs only marked packs
    // hold: it stores them anew rather than depend on those packs.
    let again = take(&memory, dir.path(), &versions[0]);
    let deleted = prune(Arc::new(memory.clone()), &DELETING).unwrap();
    assert!(deleted.stats.delete_packs > 0, "{:?}", deleted.stats);
    let kept = [
        (ids[2], &versions[2]),
        (ids[3], &versions[3]),
        (again, &versions[0]),
    ];
    assert_sound(&memory, &kept, dir.path(), "after the deleting prune");
}

#[test]
fn a_snapshot_that_ran_across_a_marking_prune_copies_what_it_needs() {
    let (memory, ids, versions, dir) = history();
    // This handle loads the index before the prune: like a snapshot that
    // started before it, it will deduplicate against packs the prune marks.
    let mut early = open(Arc::new(memory.clone()));
    prune(Arc::new(memory.clone()), &PruneOptions::default()).unwrap();

    write_version(dir.path(), &versions[0]);
    let outcome = arca_core::snapshot(
        &mut early,
        &snapshot_options(dir.path()),
        &SnapshotProgress::default(),
    )
    .unwrap();
    let late = outcome.id.unwrap();
    // It depends on no marked pack: a prune finds nothing to unmark.
    let next = plan(&memory, &PruneOptions::default());
    let unmarked: Vec<_> = next
        .packs
        .iter()
        .filter(|p| p.action == PackAction::Unmark)
        .collect();
    assert!(unmarked.is_empty(), "{unmarked:?}");
    assert!(next.stats.waiting_packs > 0);
    // Now delete everything still marked: the late snapshot must not need it.
    let deleted = prune(Arc::new(memory.clone()), &DELETING).unwrap();
    assert!(deleted.packs.iter().any(|p| p.action == PackAction::Delete));
    let kept = [
        (ids[2], &versions[2]),
        (ids[3], &versions[3]),
        (late, &versions[0]),
    ];
    assert_sound(&memory, &kept, dir.path(), "after a snapshot across prunes");
}

#[test]
fn a_snapshot_whose_data_was_deleted_meanwhile_fails_cleanly() {
    let (memory, ids, versions, dir) = history();
    let mut early = open(Arc::new(memory.clone()));
    let instant = PruneOptions {
        instant_delete: true,
        ..PruneOptions::default()
    };
    prune(Arc::new(memory.clone()), &instant).unwrap();

    let snapshots_before = memory.list(FileKind::Snapshot).unwrap().len();
    write_version(dir.path(), &versions[0]);
    let err = arca_core::snapshot(
        &mut early,
        &snapshot_options(dir.path()),
        &SnapshotProgress::default(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains("run the snapshot again"), "{err}");
    assert_eq!(
        memory.list(FileKind::Snapshot).unwrap().len(),
        snapshots_before
    );
    let kept = [(ids[2], &versions[2]), (ids[3], &versions[3])];
    assert_sound(&memory, &kept, dir.path(), "after the failed snapshot");
}

#[test]
fn a_repository_kept_open_refreshes_its_index_after_a_prune() {
    let (memory, ids, versions, dir) = history();
    // A long-running process (`arca watch`) keeps this handle open while
    // another process prunes with instant deletion.
    let mut early = open(Arc::new(memory.clone()));
    assert!(!early.refresh_index().unwrap(), "nothing changed yet");
    let instant = PruneOptions {
        instant_delete: true,
        ..PruneOptions::default()
    };
    prune(Arc::new(memory.clone()), &instant).unwrap();

    assert!(
        early.refresh_index().unwrap(),
        "the prune replaced the index"
    );
    assert!(!early.refresh_index().unwrap(), "loaded already");
    // With the fresh index the snapshot stores what the prune deleted,
    // instead of failing as in the test above.
    write_version(dir.path(), &versions[0]);
    let outcome = arca_core::snapshot(
        &mut early,
        &snapshot_options(dir.path()),
        &SnapshotProgress::default(),
    )
    .unwrap();
    // Its own index file is known: no reload for it.
    assert!(!early.refresh_index().unwrap());
    let kept = [
        (ids[2], &versions[2]),
        (ids[3], &versions[3]),
        (outcome.id.unwrap(), &versions[0]),
    ];
    assert_sound(&memory, &kept, dir.path(), "after a refreshed snapshot");
}
