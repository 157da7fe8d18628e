//! A hostile repository (made by someone holding its key) cannot make a
//! restore write outside its target: entry names that climb out or carry
//! separators are refused when their tree is decoded, and what is already
//! in the target (a symlink pointing outside) is replaced, never written
//! through. Every case restores into `sentinel/target` and checks that
//! nothing but the target changed below `sentinel`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use crate::common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arca_backend::MemoryBackend;
use arca_core::raw::{IndexFile, PackWriter, Sealer};
use arca_core::{BlobId, BlobKind, Node, NodeKind, Repository, Snapshot, Time, Tree, TreeId};

fn repository() -> Repository {
    let memory = common::init_memory(b"pw", &common::test_options());
    common::open(Arc::new(memory) as Arc<MemoryBackend>, b"pw")
}

fn node(name: &[u8], kind: NodeKind) -> Node {
    Node::new(name, kind)
}

/// Stores blobs of one kind in one pack with its index file, without any
/// of the checks the snapshot pipeline makes; returns their ids.
fn store(repo: &mut Repository, kind: BlobKind, blobs: &[Vec<u8>]) -> Vec<arca_core::Id> {
    let mut writer = PackWriter::new(kind, 1 << 20);
    let mut sealer = Sealer::default();
    let mut ids = Vec::new();
    for plain in blobs {
        let id = repo.key().blob_id(plain);
        let mut stored = Vec::new();
        let c = sealer.seal_into(repo.key(), 3, kind, &id, plain, &mut stored);
        writer.add(id, plain.len() as u32, c, &stored).unwrap();
        ids.push(id);
    }
    let entry = repo.write_pack(writer.finish(repo.key()).unwrap()).unwrap();
    repo.save_index(&IndexFile {
        supersedes: Vec::new(),
        packs: vec![entry],
    })
    .unwrap();
    repo.load_index().unwrap();
    ids
}

/// A file node holding `content`.
fn file(repo: &mut Repository, name: &[u8], content: &[u8]) -> Node {
    let id = store(repo, BlobKind::Data, &[content.to_vec()])[0];
    Node {
        size: content.len() as u64,
        content: vec![BlobId(id)],
        mode: 0o644,
        ..node(name, NodeKind::File)
    }
}

/// Stores `nodes` as one tree, in the order given (not sorted, not checked).
fn tree(repo: &mut Repository, nodes: Vec<Node>) -> TreeId {
    let plain = Tree { nodes }.encode();
    TreeId(store(repo, BlobKind::Tree, &[plain])[0])
}

fn dir(name: &[u8], subtree: TreeId) -> Node {
    Node {
        subtree: Some(subtree),
        ..node(name, NodeKind::Dir)
    }
}

fn snapshot_of(root: TreeId) -> Snapshot {
    Snapshot {
        time: Time::now(),
        tree: root,
        paths: vec![serde_bytes::ByteBuf::from(b"/data".to_vec())],
        hostname: "h".into(),
        username: "u".into(),
        tags: Vec::new(),
        description: String::new(),
        parent: None,
        program_version: "test".into(),
        summary: None,
        original: None,
        copied_from: None,
    }
}

/// Every path below `dir` (symlinks not followed), with file contents.
fn listing(dir: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            out.push((path.clone(), None));
            out.extend(listing(&path));
        } else if kind.is_file() {
            out.push((path.clone(), Some(std::fs::read(&path).unwrap())));
        } else {
            out.push((path, None));
        }
    }
    out.sort();
    out
}

/// A sentinel directory with an `outside/` directory and file that no
/// restore may touch, and the target path below it.
fn sentinel() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("outside")).unwrap();
    std::fs::write(dir.path().join("outside/keep"), b"precious").unwrap();
    std::fs::write(dir.path().join("escape"), b"precious too").unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    (dir, target)
}

/// The listing of `sentinel` except what lies inside `target`.
fn outside_target(sentinel: &Path, target: &Path) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    listing(sentinel)
        .into_iter()
        .filter(|(p, _)| !p.starts_with(target) || p == target)
        .collect()
}

fn restore_into(repo: &Repository, snapshot: &Snapshot, target: &Path) -> arca_core::Result<()> {
    common::restore(repo, snapshot, target).map(drop)
}

#[test]
fn names_that_leave_the_target_are_refused_and_nothing_is_written_outside() {
    let hostile: [&[u8]; 7] = [
        b"..",
        b".",
        b"/escape",
        b"../escape",
        b"a/../../escape",
        b"nul\0",
        b"",
    ];
    for name in hostile {
        let mut repo = repository();
        let payload = file(&mut repo, b"escape", b"overwritten");
        let inner = tree(&mut repo, vec![payload.clone()]);
        // The hostile name as a directory holding `escape`, and as a file.
        for bad in [
            dir(name, inner),
            Node {
                name: name.to_vec(),
                ..payload.clone()
            },
        ] {
            let root = tree(&mut repo, vec![bad]);
            let (sentinel, target) = sentinel();
            let before = outside_target(sentinel.path(), &target);
            let err = restore_into(&repo, &snapshot_of(root), &target).unwrap_err();
            assert!(
                err.to_string().contains("unsafe entry name") && err.to_string().contains("tree"),
                "{:?}: {err}",
                String::from_utf8_lossy(name)
            );
            assert_eq!(outside_target(sentinel.path(), &target), before);
            assert!(listing(&target).is_empty(), "{:?}", listing(&target));
        }
    }
}

#[test]
fn duplicate_names_cannot_make_a_symlink_and_a_directory_share_a_path() {
    let mut repo = repository();
    let payload = file(&mut repo, b"keep", b"overwritten");
    let inner = tree(&mut repo, vec![payload]);
    let (sentinel, target) = sentinel();
    let link = Node {
        target: sentinel
            .path()
            .join("outside")
            .into_os_string()
            .into_encoded_bytes(),
        ..node(b"link", NodeKind::Symlink)
    };
    let root = tree(&mut repo, vec![link, dir(b"link", inner)]);
    let before = outside_target(sentinel.path(), &target);
    let err = restore_into(&repo, &snapshot_of(root), &target).unwrap_err();
    assert!(err.to_string().contains("not sorted"), "{err}");
    assert_eq!(outside_target(sentinel.path(), &target), before);
}

#[test]
fn symlinks_already_in_the_target_are_replaced_not_followed() {
    let mut repo = repository();
    let (sentinel, target) = sentinel();
    // A first restore leaves symlinks to the outside: `link` to the
    // directory, `keep` to the file.
    let outside = sentinel.path().join("outside");
    let to_dir = Node {
        target: outside.clone().into_os_string().into_encoded_bytes(),
        ..node(b"link", NodeKind::Symlink)
    };
    let to_file = Node {
        target: outside.join("keep").into_os_string().into_encoded_bytes(),
        ..node(b"keep", NodeKind::Symlink)
    };
    let first = tree(&mut repo, vec![to_file, to_dir]);
    restore_into(&repo, &snapshot_of(first), &target).unwrap();
    assert!(target.join("link").symlink_metadata().unwrap().is_symlink());
    let before = outside_target(sentinel.path(), &target);

    // A later snapshot has a directory `link` with a file `keep`, and a
    // file `keep`: restored over the symlinks, neither goes through them.
    let payload = file(&mut repo, b"keep", b"overwritten");
    let inner = tree(&mut repo, vec![payload.clone()]);
    let second = tree(&mut repo, vec![payload, dir(b"link", inner)]);
    restore_into(&repo, &snapshot_of(second), &target).unwrap();
    assert_eq!(outside_target(sentinel.path(), &target), before);
    assert_eq!(std::fs::read(outside.join("keep")).unwrap(), b"precious");
    assert!(target.join("link").symlink_metadata().unwrap().is_dir());
    assert_eq!(
        std::fs::read(target.join("link/keep")).unwrap(),
        b"overwritten"
    );
    assert!(target.join("keep").symlink_metadata().unwrap().is_file());
}
