//! Rewriting snapshots without some paths: new trees only on the way to
//! what goes, the rest shared; the old snapshot removed (with `forget`)
//! only after the new one is stored. A failure at any write or removal
//! leaves, for every snapshot, the old one or its replacement, and a full
//! check passes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::Path;
use std::sync::Arc;

use arca_backend::{Backend, FileKind, MemoryBackend};
use arca_core::ops::rewrite::{self, RewriteOptions};
use arca_core::{BlobKind, NodeKind, Repository, Snapshot, SnapshotId, SnapshotOptions};

use crate::common;

fn open(backend: Arc<dyn Backend>) -> Repository {
    common::open(backend, b"pw")
}

/// A source with a secret file and a cache directory beside kept data.
fn source() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("keep/deep")).unwrap();
    std::fs::create_dir_all(root.join("cache/sub")).unwrap();
    std::fs::write(root.join("keep/deep/data"), common::random(30_000, 1)).unwrap();
    std::fs::write(root.join("keep/notes"), b"notes").unwrap();
    std::fs::write(root.join("secret.key"), common::random(5_000, 2)).unwrap();
    std::fs::write(root.join("cache/a"), common::random(7_000, 3)).unwrap();
    std::fs::write(root.join("cache/sub/b"), common::random(9_000, 4)).unwrap();
    dir
}

/// A repository with two snapshots of `source()` (the second with one more
/// file); their ids.
fn two_snapshots() -> (MemoryBackend, Vec<SnapshotId>, tempfile::TempDir) {
    let memory = common::init_memory(b"pw", &common::test_options());
    let dir = source();
    let mut ids = Vec::new();
    for n in 0..2 {
        if n == 1 {
            std::fs::write(dir.path().join("keep/later"), b"later").unwrap();
        }
        let mut repo = open(Arc::new(memory.clone()));
        let options = SnapshotOptions {
            paths: vec![dir.path().to_path_buf()],
            hostname: "db1".into(),
            username: "ops".into(),
            tags: vec!["nightly".into()],
            ..SnapshotOptions::default()
        };
        let outcome = arca_core::snapshot(&mut repo, &options, &Default::default()).unwrap();
        ids.push(outcome.id.unwrap());
    }
    (memory, ids, dir)
}

fn secrets() -> RewriteOptions {
    RewriteOptions {
        patterns: vec!["*.key".into(), "cache/".into()],
        ..RewriteOptions::default()
    }
}

/// Every path of a snapshot, as stored.
fn paths(repo: &Repository, snapshot: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    arca_core::list(repo, snapshot, Path::new("/"), &mut |p, _| {
        out.push(p.display().to_string());
        Ok(())
    })
    .unwrap();
    out
}

fn holds_secrets(repo: &Repository, snapshot: &Snapshot) -> bool {
    paths(repo, snapshot)
        .iter()
        .any(|p| p.ends_with("secret.key") || p.contains("/cache"))
}

/// Rewrites every snapshot of `backend` that still holds a secret;
/// whether it failed.
fn rewrite_all(backend: Arc<dyn Backend>, forget: bool) -> bool {
    let mut repo = open(backend);
    let all = repo.snapshots().unwrap();
    rewrite::plan(&repo, &all, &secrets())
        .and_then(|plan| rewrite::execute(&mut repo, &plan, forget, &mut |_| {}))
        .is_err()
}

#[test]
fn a_failure_at_any_step_leaves_each_snapshot_old_or_new_never_neither() {
    let (memory, ids, _dir) = two_snapshots();
    // One tree pack and one index file for both, then per snapshot the new
    // file and the removal of the old one.
    let run = |backend| rewrite_all(backend, true);
    common::fail_at_every_step(&memory, 6, run, |k, copy| {
        let repo = open(Arc::new(copy.clone()));
        let now = repo.snapshots().unwrap();
        for id in &ids {
            let old = now.iter().any(|(i, _)| i == id);
            let new = now
                .iter()
                .any(|(_, s)| s.original == Some(*id) && !holds_secrets(&repo, s));
            assert!(
                old || new,
                "step {k}: snapshot {id} and its replacement are both gone"
            );
        }
        let report = common::full_check(&copy);
        assert!(report.ok(), "step {k}: {:?}", report.errors);
        // Running it again finishes the job.
        assert!(!rewrite_all(Arc::new(copy.clone()), true), "step {k}");
        let repo = open(Arc::new(copy.clone()));
        let done = repo.snapshots().unwrap();
        assert!(
            done.iter().all(|(_, s)| !holds_secrets(&repo, s)),
            "step {k}"
        );
        assert!(done.iter().all(|(i, _)| !ids.contains(i)), "step {k}");
        let report = common::full_check(&copy);
        assert!(report.ok(), "step {k}: {:?}", report.errors);
    });
}

#[test]
fn a_rewritten_snapshot_loses_only_the_matches_and_shares_every_other_tree() {
    let (memory, ids, dir) = two_snapshots();
    let mut repo = open(Arc::new(memory.clone()));
    let before = repo.load_snapshot(&ids[1]).unwrap();
    let plan = rewrite::plan(&repo, &[(ids[1], before.clone())], &secrets()).unwrap();
    assert!(plan.unchanged.is_empty());
    let change = &plan.changes[0];
    let root = dir.path();
    let removed: Vec<_> = change
        .removed
        .iter()
        .map(|r| (r.path.clone(), r.kind, r.files, r.dirs, r.bytes))
        .collect();
    assert_eq!(
        removed,
        [
            (root.join("cache"), NodeKind::Dir, 2, 2, 16_000),
            (root.join("secret.key"), NodeKind::File, 1, 0, 5_000),
        ]
    );
    assert_eq!(
        (change.files_removed(), change.bytes_removed()),
        (3, 21_000)
    );

    let done = rewrite::execute(&mut repo, &plan, false, &mut |_| {}).unwrap();
    assert_eq!(done.len(), 1);
    assert!(!done[0].forgotten);
    let after = repo.load_snapshot(&done[0].new).unwrap();
    assert_eq!(after.original, Some(ids[1]));
    assert_eq!(
        (&after.time, &after.paths, &after.hostname, &after.username),
        (
            &before.time,
            &before.paths,
            &before.hostname,
            &before.username
        )
    );
    assert_eq!((&after.tags, &after.parent), (&before.tags, &before.parent));
    let summary = after.summary.clone().unwrap();
    let old_summary = before.summary.clone().unwrap();
    assert_eq!(summary.total_files, old_summary.total_files - 3);
    assert_eq!(summary.total_bytes, old_summary.total_bytes - 21_000);
    assert_eq!((summary.files_new, summary.bytes_read), (0, 0));
    assert!(summary.blobs_added > 0, "the changed trees were stored");

    let old_paths = paths(&repo, &before);
    let new_paths = paths(&repo, &after);
    let kept: Vec<&String> = old_paths
        .iter()
        .filter(|p| !p.ends_with("secret.key") && !p.contains("/cache"))
        .collect();
    assert_eq!(new_paths.iter().collect::<Vec<_>>(), kept);
    // The kept directory's tree is the very same blob.
    let keep = root.join("keep");
    let subtree = |s: &Snapshot| arca_core::find_node(&repo, s, &keep).unwrap().1.subtree;
    assert_eq!(subtree(&before), subtree(&after));
    assert!(repo.load_snapshot(&ids[1]).is_ok(), "the old one stays");

    // The new snapshot restores, without what was removed.
    let target = tempfile::tempdir().unwrap();
    common::restore(&repo, &after, target.path()).unwrap();
    let restored = target.path().join(root.strip_prefix("/").unwrap());
    assert!(restored.join("keep/deep/data").exists());
    assert!(!restored.join("secret.key").exists());
    assert!(!restored.join("cache").exists());

    // A second rewrite keeps pointing at the first original; nothing
    // matches any more.
    let plan = rewrite::plan(&repo, &[(done[0].new, after)], &secrets()).unwrap();
    assert_eq!(plan.unchanged, [done[0].new]);
    assert!(common::full_check(&memory).ok());
}

#[test]
fn patterns_mean_what_they_mean_to_snapshot() {
    let (memory, ids, dir) = two_snapshots();
    let repo = open(Arc::new(memory.clone()));
    let snap = repo.load_snapshot(&ids[0]).unwrap();
    let root = dir.path().display().to_string();
    let removed = |patterns: &[&str]| -> Vec<String> {
        let options = RewriteOptions {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            ..RewriteOptions::default()
        };
        let plan = rewrite::plan(&repo, &[(ids[0], snap.clone())], &options).unwrap();
        plan.changes
            .iter()
            .flat_map(|c| &c.removed)
            .map(|r| r.path.display().to_string().replace(&root, "R"))
            .collect()
    };
    // Anchored at the absolute path, as snapshot matches it.
    assert_eq!(removed(&[&format!("{root}/keep/notes")]), ["R/keep/notes"]);
    assert!(
        removed(&["/keep/notes"]).is_empty(),
        "not relative to the source"
    );
    // A trailing slash means directories only; ** crosses directories.
    assert_eq!(removed(&["notes/"]), Vec::<String>::new());
    assert_eq!(removed(&["**/deep/*"]), ["R/keep/deep/data"]);
    // A negation re-includes.
    assert_eq!(removed(&["**/cache/*", "!**/cache/a"]), ["R/cache/sub"]);
    // An exclude file works like the same patterns given one by one.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "# secrets\n*.key\n").unwrap();
    let options = RewriteOptions {
        pattern_files: vec![file.path().to_path_buf()],
        ..RewriteOptions::default()
    };
    let plan = rewrite::plan(&repo, &[(ids[0], snap.clone())], &options).unwrap();
    assert_eq!(plan.changes[0].removed.len(), 1);
    // No pattern at all is refused.
    assert!(rewrite::plan(&repo, &[(ids[0], snap)], &RewriteOptions::default()).is_err());
}

#[test]
fn a_damaged_tree_fails_the_plan_naming_snapshot_and_tree_and_writes_nothing() {
    let (memory, ids, dir) = two_snapshots();
    let repo = open(Arc::new(memory.clone()));
    let snap = repo.load_snapshot(&ids[0]).unwrap();
    let keep = dir.path().join("keep");
    let tree = arca_core::find_node(&repo, &snap, &keep)
        .unwrap()
        .1
        .subtree
        .unwrap();
    let loc = repo.index().get(BlobKind::Tree, &tree.id()).unwrap();
    let name = loc.pack.to_hex();
    let mut bytes = memory.read(FileKind::Tree, &name, u64::MAX).unwrap();
    bytes[loc.offset as usize + 30] ^= 0x40;
    memory.tamper(FileKind::Tree, &name, bytes);
    let files = |m: &MemoryBackend| {
        [FileKind::Tree, FileKind::Index, FileKind::Snapshot].map(|k| m.list(k).unwrap().len())
    };
    let before = files(&memory);

    let repo = open(Arc::new(memory.clone()));
    let all = repo.snapshots().unwrap();
    let err = rewrite::plan(&repo, &all, &secrets()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("tree {tree}")), "{text}");
    assert!(text.contains(&ids[0].short()), "{text}");
    assert!(text.contains(&keep.display().to_string()), "{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    assert_eq!(err.kind(), arca_core::ErrorKind::Corrupt);
    assert_eq!(files(&memory), before, "nothing was written");
}

#[test]
fn directories_shared_by_several_snapshots_are_read_once() {
    let (memory, ids, _dir) = two_snapshots();
    let counting = Arc::new(common::Counting::new(memory.clone()));
    let repo = open(counting.clone());
    let all = repo.snapshots().unwrap();
    let reads = |chosen: &[(SnapshotId, Snapshot)]| {
        counting.clear();
        let plan = rewrite::plan(&repo, chosen, &secrets()).unwrap();
        (counting.reads_of(FileKind::Tree).len(), plan)
    };
    let (first, _) = reads(&all[..1]);
    let (second, _) = reads(&all[1..]);
    let (both, plan) = reads(&all);
    assert!(
        both < first + second,
        "{both} reads, {first} + {second} apart"
    );
    // The shared answers are the same as the separate ones.
    let (_, apart) = reads(&all[1..]);
    assert_eq!(
        plan.changes[1].snapshot.tree,
        apart.changes[0].snapshot.tree
    );
    assert_eq!(plan.changes[1].removed, apart.changes[0].removed);
    assert_eq!(
        plan.changes[1].snapshot.summary,
        apart.changes[0].snapshot.summary
    );
    assert_eq!(plan.changes[1].old, ids[1]);
}
