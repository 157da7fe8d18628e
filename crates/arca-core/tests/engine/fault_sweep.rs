//! Every operation against storage that fails, or lies on a read, at each
//! of its requests in turn: the operation ends with an error or succeeds,
//! never panics, and afterwards the repository checks with every pack read
//! and every snapshot it holds restores to the files it was taken of.
//!
//! For each operation a clean run counts its requests; then one run per
//! request injects one fault there, for every request.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use crate::common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arca_backend::fault::{Fault, FaultBackend, Schedule};
use arca_backend::{Backend, MemoryBackend, RetryBackend, RetryPolicy};
use arca_core::{
    CheckOptions, CheckProgress, CopyOptions, CopyProgress, PruneOptions, RepairSnapshotsOptions,
    Repository, SnapshotOptions, SnapshotProgress, Subset,
};
use common::random;

#[derive(Clone, Copy, Debug)]
enum Op {
    Snapshot,
    Restore,
    Check,
    Forget,
    Prune,
    RepairIndex,
    RepairSnapshots,
    Copy,
}

const OPS: [Op; 8] = [
    Op::Snapshot,
    Op::Restore,
    Op::Check,
    Op::Forget,
    Op::Prune,
    Op::RepairIndex,
    Op::RepairSnapshots,
    Op::Copy,
];

/// The starting point: a repository with two snapshots of two sources and
/// a forgotten third one (so prune has work), plus the sources.
struct World {
    memory: MemoryBackend,
    /// Source directory of every snapshot path.
    sources: HashMap<PathBuf, tempfile::TempDir>,
    /// A source no snapshot has yet, for the snapshot operation.
    fresh: tempfile::TempDir,
}

fn source(seed: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..3 {
        std::fs::write(
            dir.path().join(format!("f{i}")),
            random(200 << 10, seed * 10 + i),
        )
        .unwrap();
    }
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    std::fs::write(dir.path().join("sub/state"), format!("positions {seed}")).unwrap();
    dir
}

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    }
}

fn open(backend: Arc<dyn Backend>) -> arca_core::Result<Repository> {
    let mut repo = Repository::open(backend, b"pw")?;
    repo.load_index()?;
    Ok(repo)
}

/// The exclusive lock the destructive operations need, taken through the
/// fault-free view so that the faults hit only the operation itself.
fn exclusive(clean: &MemoryBackend) -> arca_core::Result<arca_core::Lock> {
    common::exclusive(&Repository::open(Arc::new(clean.clone()), b"pw")?)
}

fn take(repo: &mut Repository, path: &Path) -> arca_core::Result<()> {
    let options = SnapshotOptions {
        paths: vec![path.to_path_buf()],
        checkpoint_interval: Some(Duration::ZERO),
        ..SnapshotOptions::default()
    };
    arca_core::snapshot(repo, &options, &SnapshotProgress::default()).map(drop)
}

fn world() -> World {
    let memory = common::init_memory(b"pw", &common::test_options());
    let mut sources = HashMap::new();
    let mut repo = open(Arc::new(memory.clone())).unwrap();
    for seed in [1, 2, 3] {
        let src = source(seed);
        take(&mut repo, src.path()).unwrap();
        sources.insert(src.path().to_path_buf(), src);
    }
    // Forget the newest: its data stays until a prune.
    let snapshots = repo.snapshots().unwrap();
    let newest = snapshots.iter().max_by_key(|(_, s)| s.time.at).unwrap().0;
    repo.remove_snapshot(&newest).unwrap();
    World {
        memory,
        sources,
        fresh: source(4),
    }
}

/// Runs `op` against `backend` (the faulty side); `clean` is the
/// repository's state seen without faults, for `copy`'s source.
fn run(
    op: Op,
    world: &World,
    backend: Arc<dyn Backend>,
    clean: &MemoryBackend,
) -> arca_core::Result<()> {
    match op {
        Op::Snapshot => take(&mut open(backend)?, world.fresh.path()),
        Op::Restore => {
            let repo = open(backend)?;
            let (_, snapshot) = repo.find_snapshot("latest")?;
            let target = tempfile::tempdir().unwrap();
            common::restore(&repo, &snapshot, target.path())?;
            // A restore that reports success restored the right bytes.
            let what = "a restore that succeeded";
            assert_restored(target.path(), &snapshot.paths[0], world, what, false);
            Ok(())
        }
        Op::Check => {
            let mut repo = open(backend)?;
            arca_core::check(
                &mut repo,
                &CheckOptions {
                    read_data: Some(Subset::All),
                },
                &CheckProgress::default(),
            )
            .map(drop)
        }
        Op::Forget => {
            let repo = open(backend)?;
            let (id, _) = repo.find_snapshot("latest")?;
            repo.remove_snapshot(&id)
        }
        Op::Prune => {
            let mut repo = open(backend)?;
            let options = PruneOptions {
                max_unused: 0.0,
                keep_marked: Duration::ZERO,
                instant_delete: true,
            };
            let plan = arca_core::plan_prune(&mut repo, &options, None)?;
            let lock = exclusive(clean)?;
            arca_core::execute_prune(&repo, &plan, &options, &lock, None).map(drop)
        }
        Op::RepairIndex => {
            let mut repo = open(backend)?;
            let lock = exclusive(clean)?;
            arca_core::repair_index(&mut repo, false, &lock).map(drop)
        }
        Op::RepairSnapshots => {
            let mut repo = open(backend)?;
            let lock = exclusive(clean)?;
            arca_core::repair_snapshots(&mut repo, RepairSnapshotsOptions::default(), &lock)
                .map(drop)
        }
        Op::Copy => {
            // Faults on the destination; the source is read cleanly.
            let src = open(Arc::new(clean.clone()))?;
            let mut dst = open(backend)?;
            let plan = arca_core::plan_copy(&src, &dst, src.snapshots()?)?;
            let options = CopyOptions {
                cache_dir: None,
                threads: 2,
            };
            arca_core::copy_snapshots(
                &src,
                &mut dst,
                plan,
                &options,
                &CopyProgress::default(),
                &mut |_| {},
            )
            .map(drop)
        }
    }
}

/// The repository `op` works on: the world's, or for `copy` a new
/// destination.
fn subject(op: Op, world: &World) -> MemoryBackend {
    match op {
        Op::Copy => common::init_memory(b"pw", &common::test_options()),
        _ => world.memory.duplicate(),
    }
}

/// Every file restored equals its source; all of them are there unless
/// the snapshot is a repair's (`partial`), which leaves out what it found
/// damaged.
fn assert_restored(target: &Path, stored_path: &[u8], world: &World, what: &str, partial: bool) {
    let path = PathBuf::from(std::str::from_utf8(stored_path).unwrap());
    let source = &world
        .sources
        .get(&path)
        .map(|d| d.path())
        .unwrap_or_else(|| world.fresh.path());
    let restored = target.join(path.strip_prefix("/").unwrap());
    for name in ["f0", "f1", "f2", "sub/state"] {
        let back = match std::fs::read(restored.join(name)) {
            Err(e) if partial && e.kind() == std::io::ErrorKind::NotFound => continue,
            other => other.unwrap_or_else(|e| panic!("{what}: {name} of {}: {e}", path.display())),
        };
        assert!(
            back == std::fs::read(source.join(name)).unwrap(),
            "{what}: {name} of {} differs",
            path.display()
        );
    }
}

/// The repository checks with every pack read, and each of its snapshots
/// restores to its source.
fn assert_sound(memory: &MemoryBackend, world: &World, what: &str) {
    let report = common::full_check(memory);
    assert!(report.errors.is_empty(), "{what}: {:?}", report.errors);
    let repo = open(Arc::new(memory.clone())).unwrap();
    for (_, snapshot) in repo.snapshots().unwrap() {
        let target = tempfile::tempdir().unwrap();
        common::restore(&repo, &snapshot, target.path()).unwrap_or_else(|e| panic!("{what}: {e}"));
        // A repair that met an altered read takes it for damage and saves
        // a repaired copy beside the original; the copy restores what it
        // kept.
        let partial = snapshot.original.is_some();
        assert_restored(target.path(), &snapshot.paths[0], world, what, partial);
    }
}

fn sweep(fault: Fault, schedule: impl Fn(u64) -> Schedule) {
    let world = world();
    for op in OPS {
        // A clean run counts the requests.
        let memory = subject(op, &world);
        let counting = Arc::new(FaultBackend::new(memory.clone(), schedule(u64::MAX)));
        run(op, &world, counting.clone(), &world.memory).unwrap_or_else(|e| panic!("{op:?}: {e}"));
        let requests = counting.requests();
        if requests == 0 {
            continue; // nothing of this kind to fail (a restore writes nothing)
        }
        let mut failed = 0;
        for k in 0..requests {
            let memory = subject(op, &world);
            let faulty = FaultBackend::new(memory.clone(), schedule(k));
            let backend = Arc::new(RetryBackend::new(faulty, quick_retries()));
            let what = format!("{op:?} with {fault:?} at request {k} of {requests}");
            if let Err(e) = run(op, &world, backend, &world.memory) {
                assert!(!e.to_string().is_empty(), "{what}");
                failed += 1;
            }
            assert_sound(&memory, &world, &what);
        }
        eprintln!("{op:?} with {fault:?}: {requests} requests, {failed} runs ended in an error");
        // A fault that nothing notices was not injected where it matters.
        if matches!(fault, Fault::Permanent) {
            assert!(failed > 0, "{op:?}: no permanent fault made it fail");
        }
    }
}

#[test]
fn permanent_failures_at_any_request_leave_a_sound_repository() {
    sweep(Fault::Permanent, |k| Schedule::nth(k, Fault::Permanent));
}

#[test]
fn writes_that_land_but_report_failure_leave_a_sound_repository() {
    sweep(Fault::TransientAfter, |k| {
        Schedule::nth(k, Fault::TransientAfter).writes_only()
    });
}

#[test]
fn corrupted_and_truncated_reads_are_errors_and_change_nothing() {
    sweep(Fault::Corrupt, |k| {
        Schedule::nth(k, Fault::Corrupt).reads_only()
    });
    sweep(Fault::Truncate, |k| {
        Schedule::nth(k, Fault::Truncate).reads_only()
    });
}
