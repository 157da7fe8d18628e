//! Files in a repository's directories that are no object of it (format.md
//! §2.2): names that are not 64 lowercase hex digits, a pack under another
//! fan-out directory than its name's, a pack of data blobs among the tree
//! packs. Every command ignores them, none removes them (not prune, even
//! without a grace period, nor any repair), and check names each.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arca_backend::LocalBackend;
use arca_core::raw::{PackWriter, Sealer};
use arca_core::{
    BlobKind, CheckOptions, CheckProgress, Owner, PruneOptions, RepairSnapshotsOptions, Repository,
    SnapshotOptions,
};

use crate::common;

/// A data pack holding one blob, sealed with `repo`'s key but stored
/// nowhere: its bytes and name.
fn loose_pack(repo: &Repository, content: &[u8]) -> (Vec<u8>, String) {
    let id = repo.key().blob_id(content);
    let mut stored = Vec::new();
    let compression =
        Sealer::default().seal_into(repo.key(), 0, BlobKind::Data, &id, content, &mut stored);
    let mut writer = PackWriter::new(BlobKind::Data, 1 << 10);
    writer
        .add(id, content.len() as u32, compression, &stored)
        .unwrap();
    let pack = writer.finish(repo.key()).unwrap();
    (pack.bytes().unwrap().to_vec(), pack.id.to_hex())
}

/// Every file below `root`, with its bytes.
fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    out
}

#[test]
fn files_that_are_no_object_are_ignored_never_removed_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let backend = Arc::new(LocalBackend::new(&root));
    Repository::init(
        backend.clone(),
        b"pw",
        &common::test_options(),
        &Owner::default(),
    )
    .unwrap();
    let source = dir.path().join("source");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("a"), common::random(50_000, 1)).unwrap();
    let mut repo = common::open(backend.clone(), b"pw");
    let options = SnapshotOptions {
        paths: vec![source.clone()],
        ..SnapshotOptions::default()
    };
    arca_core::snapshot(&mut repo, &options, &arca_core::SnapshotProgress::default()).unwrap();

    // Two real packs no index lists: one under a fan-out directory that is
    // not its name's, one (of data blobs) among the tree packs.
    let (misplaced, misplaced_name) = loose_pack(&repo, b"misplaced");
    let wrong_fan_out = if misplaced_name.starts_with("00") {
        "01"
    } else {
        "00"
    };
    let (other_kind, other_kind_name) = loose_pack(&repo, b"other kind");
    let strays: Vec<(String, Vec<u8>)> = vec![
        (format!("data/{wrong_fan_out}/{misplaced_name}"), misplaced),
        (
            format!("tree/{}/{other_kind_name}", &other_kind_name[..2]),
            other_kind,
        ),
        ("index/abc".into(), b"not an index".to_vec()),
        ("snapshots/0123".into(), b"not a snapshot".to_vec()),
        ("locks/ab".into(), b"not a lock".to_vec()),
        ("keys/ff".into(), b"not a key".to_vec()),
        ("index/notes.txt".into(), b"a note".to_vec()),
    ];
    for (path, bytes) in &strays {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    let planted = |root: &Path| {
        let all = files(root);
        strays
            .iter()
            .map(|(path, _)| all.get(Path::new(path)).cloned())
            .collect::<Vec<_>>()
    };
    let before = planted(&root);
    assert!(before.iter().all(Option::is_some));

    // Readers see no damage, and a lock is taken as if they were not there.
    let mut repo = Repository::open(backend.clone(), b"pw").unwrap();
    repo.load_index().unwrap();
    assert_eq!(repo.snapshots().unwrap().len(), 1);
    assert!(repo.damaged().is_empty(), "{:?}", repo.damaged());
    let lock = common::exclusive(&repo).unwrap();

    // Check names every one of them, as a warning.
    let report = arca_core::check(
        &mut repo,
        &CheckOptions {
            read_data: Some(arca_core::Subset::All),
        },
        &CheckProgress::default(),
    )
    .unwrap();
    assert!(report.ok(), "{:?}", report.errors);
    let warned: Vec<&str> = report.warnings.iter().map(|w| w.object.as_str()).collect();
    // The pack of data blobs among the tree packs is where its name puts
    // it: only its header tells, and check finds it in no index.
    let other_kind_pack = format!("tree pack {other_kind_name}");
    for (path, _) in &strays[..1] {
        assert!(warned.contains(&path.as_str()), "{path}: {warned:?}");
    }
    for path in [
        "index/abc",
        "snapshots/0123",
        "locks/ab",
        "keys/ff",
        "index/notes.txt",
        &other_kind_pack,
    ] {
        assert!(warned.contains(&path), "{path}: {warned:?}");
    }

    // Prune, with no grace period and then deleting at once, and every
    // repair leave them all as they were.
    repo.load_index().unwrap();
    for instant_delete in [false, true] {
        let options = PruneOptions {
            keep_marked: Duration::ZERO,
            instant_delete,
            ..PruneOptions::default()
        };
        let plan = arca_core::plan_prune(&mut repo, &options, None).unwrap();
        arca_core::execute_prune(&repo, &plan, &options, &lock, None).unwrap();
        repo.load_index().unwrap();
    }
    arca_core::repair_index(&mut repo, false, &lock).unwrap();
    arca_core::repair_packs(&mut repo, &[], false, &lock).unwrap();
    arca_core::repair_snapshots(
        &mut repo,
        RepairSnapshotsOptions {
            forget: true,
            ..RepairSnapshotsOptions::default()
        },
        &lock,
    )
    .unwrap();
    drop(lock);
    assert_eq!(planted(&root), before);

    // And the snapshot still restores.
    let repo = common::open(backend, b"pw");
    let (_, snapshot) = repo.find_snapshot("latest").unwrap();
    let target = dir.path().join("target");
    common::restore(&repo, &snapshot, &target).unwrap();
    let restored = target.join(source.strip_prefix("/").unwrap()).join("a");
    assert_eq!(std::fs::read(restored).unwrap(), common::random(50_000, 1));
}
