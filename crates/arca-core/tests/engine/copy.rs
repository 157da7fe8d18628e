//! Copying snapshots between repositories with different keys: the copy
//! restores to the same bytes, a re-run copies nothing, and with the local
//! map a later copy reads from the source only what the destination lacks.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common;

use arca_backend::{Backend, FileKind, MemoryBackend};
use arca_core::{
    BlobKind, CheckOptions, CheckProgress, CopyOptions, CopyProgress, CopyReport, ErrorKind, Id,
    InitOptions, Repository, SnapshotId, SnapshotOptions, SnapshotProgress, Subset,
};
use common::{Counting, open, random};

const SOURCE_PW: &[u8] = b"source password";
const DEST_PW: &[u8] = b"offsite password";

fn init(password: &[u8]) -> MemoryBackend {
    common::init_memory(
        password,
        &InitOptions {
            chunker: common::small_chunks(),
            ..common::test_options()
        },
    )
}

/// The files of a source tree and their contents, as a snapshot of it
/// should hold them. Tests keep this rather than read the source again:
/// reading would change access times, and so the next snapshot's trees.
type Contents = Vec<(&'static str, Vec<u8>)>;

/// A source tree: duplicate content, an empty file, a symlink and a
/// subdirectory that later versions leave alone.
fn write_source(dir: &Path) -> Contents {
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    let a = random(300 << 10, 1);
    let files: Contents = vec![
        ("a", a.clone()),
        ("same-as-a", a),
        ("b", random(300 << 10, 2)),
        ("empty", Vec::new()),
        ("sub/c", random(200 << 10, 3)),
        ("sub/deeper/d", random(100 << 10, 4)),
    ];
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    std::os::unix::fs::symlink("a", dir.join("link")).unwrap();
    files
}

/// The source of a later snapshot: `b` rewritten, everything else as before.
fn change_b(dir: &Path, files: &mut Contents, seed: u64) {
    let b = random(300 << 10, seed);
    std::fs::write(dir.join("b"), &b).unwrap();
    for (name, bytes) in files.iter_mut() {
        if *name == "b" {
            *bytes = b.clone();
        }
    }
}

fn take(memory: &MemoryBackend, dir: &Path) -> SnapshotId {
    let mut repo = open(Arc::new(memory.clone()), SOURCE_PW);
    let options = SnapshotOptions {
        paths: vec![dir.to_path_buf()],
        hostname: "db1".into(),
        username: "ops".into(),
        tags: vec!["nightly".into()],
        description: "positions".into(),
        ..SnapshotOptions::default()
    };
    arca_core::snapshot(&mut repo, &options, &SnapshotProgress::default())
        .unwrap()
        .id
        .unwrap()
}

/// Copies every snapshot of `src` into `dst`.
fn copy(src: &Repository, dst: &mut Repository, cache: Option<&Path>) -> CopyReport {
    copy_only(src, dst, src.snapshots().unwrap(), cache)
}

/// Copies some snapshots of `src` into `dst`.
fn copy_only(
    src: &Repository,
    dst: &mut Repository,
    snapshots: Vec<(SnapshotId, arca_core::Snapshot)>,
    cache: Option<&Path>,
) -> CopyReport {
    let plan = arca_core::plan_copy(src, dst, snapshots).unwrap();
    let options = CopyOptions {
        cache_dir: cache.map(Path::to_path_buf),
        threads: 2,
    };
    let mut heard = Vec::new();
    let report = arca_core::copy_snapshots(
        src,
        dst,
        plan,
        &options,
        &CopyProgress::default(),
        &mut |c| heard.push(*c),
    )
    .unwrap();
    assert_eq!(heard, report.copied, "every copy is announced");
    report
}

/// The distinct data blobs a snapshot's files refer to.
fn data_blobs(repo: &Repository, id: &SnapshotId) -> HashSet<Id> {
    let snapshot = repo.load_snapshot(id).unwrap();
    let mut out = HashSet::new();
    arca_core::walk(repo, &snapshot.tree, Path::new("/"), &mut |_, node| {
        out.extend(node.content.iter().map(|b| b.id()));
        Ok(())
    })
    .unwrap();
    out
}

/// Data blobs listed by the live index files.
fn indexed_data_blobs(repo: &Repository) -> usize {
    let files = repo.read_index_files().unwrap();
    let superseded: HashSet<_> = files
        .iter()
        .flat_map(|(_, f)| f.supersedes.iter().copied())
        .collect();
    let ids: HashSet<Id> = files
        .iter()
        .filter(|(id, _)| !superseded.contains(id))
        .flat_map(|(_, f)| &f.packs)
        .filter(|p| p.kind == 0)
        .flat_map(|p| p.blobs.iter().map(|b| b.id()))
        .collect();
    ids.len()
}

/// Restores `id` from `repo` and compares it with the source `dir` as it
/// was (`expected`).
fn assert_restores(repo: &Repository, id: &SnapshotId, dir: &Path, expected: &Contents) {
    let snapshot = repo.load_snapshot(id).unwrap();
    let target = tempfile::tempdir().unwrap();
    common::restore(repo, &snapshot, target.path()).unwrap();
    let restored: PathBuf = target.path().join(dir.strip_prefix("/").unwrap());
    for (name, bytes) in expected {
        assert!(
            *bytes == std::fs::read(restored.join(name)).unwrap(),
            "{name} differs"
        );
    }
    assert_eq!(
        std::fs::read_link(restored.join("link")).unwrap(),
        Path::new("a")
    );
}

fn check_all(repo: &mut Repository) {
    let report = arca_core::check(
        repo,
        &CheckOptions {
            read_data: Some(Subset::All),
        },
        &CheckProgress::default(),
    )
    .unwrap();
    assert!(report.ok(), "check failed: {:?}", report.errors);
}

#[test]
fn a_copy_restores_to_the_same_bytes_and_records_its_origin() {
    let (src_mem, dst_mem) = (init(SOURCE_PW), init(DEST_PW));
    let source = tempfile::tempdir().unwrap();
    let dir = source.path().canonicalize().unwrap();
    let expected = write_source(&dir);
    let snap = take(&src_mem, &dir);

    let counting = Arc::new(Counting::new(src_mem.clone()));
    let src = open(counting.clone(), SOURCE_PW);
    let distinct = data_blobs(&src, &snap).len();
    counting.clear();
    let mut dst = open(Arc::new(dst_mem.clone()), DEST_PW);
    let report = copy(&src, &mut dst, None);
    assert_eq!(report.copied.len(), 1);
    assert!(report.skipped.is_empty());
    assert_eq!(report.copied[0].source, snap);
    // a and same-as-a share their blobs: each is read once, stored once.
    assert_eq!(counting.reads_of(FileKind::Data).len(), distinct);
    assert_eq!(
        report.blobs_read as usize,
        distinct + counting.reads_of(FileKind::Tree).len()
    );
    assert_eq!(indexed_data_blobs(&dst), distinct);
    assert!(report.bytes_stored > 0 && report.bytes_read > 0);

    let copy_id = report.copied[0].destination;
    let original = src.load_snapshot(&snap).unwrap();
    let copied = dst.load_snapshot(&copy_id).unwrap();
    assert_ne!(copied.tree, original.tree, "trees are re-identified");
    assert_eq!(copied.time, original.time);
    assert_eq!(copied.paths, original.paths);
    assert_eq!(copied.hostname, "db1");
    assert_eq!(copied.username, "ops");
    assert_eq!(copied.tags, vec!["nightly".to_string()]);
    assert_eq!(copied.description, "positions");
    assert_eq!(copied.summary, original.summary);
    let origin = copied.copied_from.unwrap();
    assert_eq!(origin.repository, src.config().id);
    assert_eq!(origin.snapshot, snap);

    // Nothing in the destination is readable with the source's key: it is
    // another repository, not a byte copy.
    assert!(data_blobs(&dst, &copy_id).is_disjoint(&data_blobs(&src, &snap)));
    assert_restores(&dst, &copy_id, &dir, &expected);
    check_all(&mut dst);
}

#[test]
fn a_second_copy_stores_nothing_and_skips() {
    let (src_mem, dst_mem) = (init(SOURCE_PW), init(DEST_PW));
    let source = tempfile::tempdir().unwrap();
    write_source(source.path());
    let snap = take(&src_mem, source.path());
    let src = open(Arc::new(src_mem.clone()), SOURCE_PW);
    let mut dst = open(Arc::new(dst_mem.clone()), DEST_PW);
    let first = copy(&src, &mut dst, None);

    let before: Vec<_> = FileKind::ALL
        .iter()
        .map(|k| dst_mem.list(*k).unwrap().len())
        .collect();
    let mut dst = open(Arc::new(dst_mem.clone()), DEST_PW);
    let plan = arca_core::plan_copy(&src, &dst, src.snapshots().unwrap()).unwrap();
    assert!(plan.copy.is_empty());
    let again = copy(&src, &mut dst, None);
    assert!(again.copied.is_empty());
    assert_eq!(again.skipped.len(), 1);
    assert_eq!(again.skipped[0].source, snap);
    assert_eq!(again.skipped[0].destination, first.copied[0].destination);
    assert_eq!(
        (again.blobs_read, again.blobs_stored, again.bytes_stored),
        (0, 0, 0)
    );
    let after: Vec<_> = FileKind::ALL
        .iter()
        .map(|k| dst_mem.list(*k).unwrap().len())
        .collect();
    assert_eq!(before, after, "the destination is unchanged");
}

#[test]
fn copying_back_recognises_the_original() {
    let (a_mem, b_mem) = (init(SOURCE_PW), init(DEST_PW));
    let source = tempfile::tempdir().unwrap();
    write_source(source.path());
    let snap = take(&a_mem, source.path());
    let a = open(Arc::new(a_mem.clone()), SOURCE_PW);
    let mut b = open(Arc::new(b_mem.clone()), DEST_PW);
    copy(&a, &mut b, None);
    let mut a = open(Arc::new(a_mem.clone()), SOURCE_PW);
    let back = copy(&b, &mut a, None);
    assert!(back.copied.is_empty());
    assert_eq!(back.skipped[0].destination, snap);
}

#[test]
fn a_repository_is_not_copied_into_itself() {
    let memory = init(SOURCE_PW);
    let src = open(Arc::new(memory.clone()), SOURCE_PW);
    let dst = open(Arc::new(memory.clone()), SOURCE_PW);
    let err = arca_core::plan_copy(&src, &dst, Vec::new()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("same repository"), "{err}");
}

/// Where the source keeps the tree of `sub` in a snapshot: (pack, offset).
fn sub_tree_location(src: &Repository, snap: &SnapshotId, dir: &Path) -> (String, u64) {
    let snapshot = src.load_snapshot(snap).unwrap();
    let (_, node) = arca_core::find_node(src, &snapshot, &dir.join("sub")).unwrap();
    let loc = src
        .index()
        .get(BlobKind::Tree, &node.subtree.unwrap().id())
        .unwrap();
    (loc.pack.to_hex(), u64::from(loc.offset))
}

#[test]
fn with_the_map_a_later_copy_reads_only_new_data() {
    let (src_mem, dst_mem) = (init(SOURCE_PW), init(DEST_PW));
    let source = tempfile::tempdir().unwrap();
    let dir = source.path().canonicalize().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut expected = write_source(&dir);
    let first = take(&src_mem, &dir);
    let src = open(Arc::new(src_mem.clone()), SOURCE_PW);
    let mut dst = open(Arc::new(dst_mem.clone()), DEST_PW);
    let copied = copy(&src, &mut dst, Some(cache.path()));
    assert!(copied.warnings.is_empty(), "{:?}", copied.warnings);
    let map = cache.path().join("copy").join(format!(
        "{}-{}",
        src.config().id.to_hex(),
        dst.config().id.to_hex()
    ));
    assert!(map.is_file(), "the map is saved");
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&map), 0o600);
    assert_eq!(mode(&cache.path().join("copy")), 0o700);

    change_b(&dir, &mut expected, 20);
    let second = take(&src_mem, &dir);
    let counting = Arc::new(Counting::new(src_mem.clone()));
    let src = open(counting.clone(), SOURCE_PW);
    let new: HashSet<Id> = data_blobs(&src, &second)
        .difference(&data_blobs(&src, &first))
        .copied()
        .collect();
    assert!(!new.is_empty());
    let sub = sub_tree_location(&src, &second, &dir);
    counting.clear();
    let data_packs = dst_mem.list(FileKind::Data).unwrap().len();
    let data_blobs_before = indexed_data_blobs(&dst);

    let mut dst = open(Arc::new(dst_mem.clone()), DEST_PW);
    let report = copy(&src, &mut dst, Some(cache.path()));
    assert_eq!(report.copied.len(), 1);
    assert_eq!(report.skipped.len(), 1);
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(
        counting.reads_of(FileKind::Data).len(),
        new.len(),
        "only the new data blobs are read"
    );
    assert!(report.blobs_remembered > 0);
    assert!(
        !counting.reads_of(FileKind::Tree).contains(&sub),
        "the unchanged subtree is not read"
    );
    assert_eq!(indexed_data_blobs(&dst), data_blobs_before + new.len());
    assert!(dst_mem.list(FileKind::Data).unwrap().len() > data_packs);
    let copy_id = report.copied[0].destination;
    let first_copy = copied.copied[0].destination;
    assert_eq!(
        dst.load_snapshot(&copy_id).unwrap().parent,
        Some(first_copy),
        "the parent is the parent's copy"
    );
    assert_restores(&dst, &copy_id, &dir, &expected);

    // After a repair of the destination's index (as after a prune), a
    // remembered tree no longer proves its blobs are there: trees are read
    // again, data still is not.
    let lock = common::exclusive(&dst).unwrap();
    arca_core::repair_index(&mut dst, false, &lock).unwrap();
    drop(lock);
    change_b(&dir, &mut expected, 30);
    let third = take(&src_mem, &dir);
    let src = open(counting.clone(), SOURCE_PW);
    let new: HashSet<Id> = data_blobs(&src, &third)
        .difference(&data_blobs(&src, &second))
        .copied()
        .collect();
    let sub = sub_tree_location(&src, &third, &dir);
    counting.clear();
    let mut dst = open(Arc::new(dst_mem.clone()), DEST_PW);
    let report = copy(&src, &mut dst, Some(cache.path()));
    assert_eq!(report.copied.len(), 1);
    assert_eq!(counting.reads_of(FileKind::Data).len(), new.len());
    assert!(counting.reads_of(FileKind::Tree).contains(&sub));
    assert_restores(&dst, &report.copied[0].destination, &dir, &expected);
    check_all(&mut dst);
}

#[test]
fn without_the_map_unchanged_data_is_read_but_not_stored_again() {
    let (src_mem, dst_mem) = (init(SOURCE_PW), init(DEST_PW));
    let source = tempfile::tempdir().unwrap();
    let mut files = write_source(source.path());
    let first = take(&src_mem, source.path());
    let src = open(Arc::new(src_mem.clone()), SOURCE_PW);
    let mut dst = open(Arc::new(dst_mem.clone()), DEST_PW);
    copy(&src, &mut dst, None);

    change_b(source.path(), &mut files, 20);
    let second = take(&src_mem, source.path());
    let counting = Arc::new(Counting::new(src_mem.clone()));
    let src = open(counting.clone(), SOURCE_PW);
    let all = data_blobs(&src, &second);
    let new = all.difference(&data_blobs(&src, &first)).count();
    let before = indexed_data_blobs(&dst);
    counting.clear();
    let mut dst = open(Arc::new(dst_mem.clone()), DEST_PW);
    let report = copy(&src, &mut dst, None);
    assert_eq!(counting.reads_of(FileKind::Data).len(), all.len());
    assert_eq!(report.blobs_remembered, 0);
    assert_eq!(indexed_data_blobs(&dst), before + new);
}

#[test]
fn a_tampered_or_foreign_map_is_ignored() {
    let (src_mem, dst_mem, other_mem) = (init(SOURCE_PW), init(DEST_PW), init(DEST_PW));
    let source = tempfile::tempdir().unwrap();
    let dir = source.path().canonicalize().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut expected = write_source(&dir);
    take(&src_mem, &dir);
    let src = open(Arc::new(src_mem.clone()), SOURCE_PW);
    let mut dst = open(Arc::new(dst_mem.clone()), DEST_PW);
    let mut other = open(Arc::new(other_mem.clone()), DEST_PW);
    copy(&src, &mut dst, Some(cache.path()));
    copy(&src, &mut other, Some(cache.path()));
    let map_of = |d: &Repository| {
        cache.path().join("copy").join(format!(
            "{}-{}",
            src.config().id.to_hex(),
            d.config().id.to_hex()
        ))
    };
    // One map with a flipped bit; the other replaced by the first's, which
    // is sealed with another destination's key.
    let mut bytes = std::fs::read(map_of(&dst)).unwrap();
    std::fs::write(map_of(&other), &bytes).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(map_of(&dst), &bytes).unwrap();

    change_b(&dir, &mut expected, 20);
    let second = take(&src_mem, &dir);
    change_b(&dir, &mut expected, 40);
    let third = take(&src_mem, &dir);
    for (memory, map) in [(&dst_mem, map_of(&dst)), (&other_mem, map_of(&other))] {
        let counting = Arc::new(Counting::new(src_mem.clone()));
        let src = open(counting.clone(), SOURCE_PW);
        let all = data_blobs(&src, &second);
        let new = data_blobs(&src, &third).difference(&all).count();
        let one = |id: &SnapshotId| vec![(*id, src.load_snapshot(id).unwrap())];
        counting.clear();
        let mut repo = open(Arc::new(memory.clone()), DEST_PW);
        let report = copy_only(&src, &mut repo, one(&second), Some(cache.path()));
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("ignoring the copy map")
                    && w.contains(&map.display().to_string())),
            "{:?}",
            report.warnings
        );
        assert_eq!(counting.reads_of(FileKind::Data).len(), all.len());
        assert_eq!(report.blobs_remembered, 0);

        // The run saved a good map again.
        counting.clear();
        let report = copy_only(&src, &mut repo, one(&third), Some(cache.path()));
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert_eq!(counting.reads_of(FileKind::Data).len(), new);
        assert!(report.blobs_remembered > 0);
        assert_restores(&repo, &report.copied[0].destination, &dir, &expected);
    }
}
