//! The contract, checked once against every backend.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn contract(backend: &dyn Backend) {
    backend.create().unwrap();
    assert_eq!(
        backend.create().unwrap_err().kind(),
        ErrorKind::AlreadyExists,
        "create on a non-empty repository"
    );

    backend
        .write(FileKind::Data, "abcdef", b"pack bytes")
        .unwrap();
    backend.write(FileKind::Config, "config", b"cfg").unwrap();
    let again = backend
        .write(FileKind::Data, "abcdef", b"other")
        .unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        backend.read(FileKind::Data, "abcdef", u64::MAX).unwrap(),
        b"pack bytes",
        "no overwrite"
    );

    assert_eq!(
        backend.read_range(FileKind::Data, "abcdef", 5, 5).unwrap(),
        b"bytes"
    );
    assert_eq!(
        backend
            .read_range(FileKind::Data, "abcdef", 6, 5)
            .unwrap_err()
            .kind(),
        ErrorKind::OutOfRange
    );
    assert_eq!(
        backend
            .read_range(FileKind::Data, "abcdef", u64::MAX, 2)
            .unwrap_err()
            .kind(),
        ErrorKind::OutOfRange
    );

    let listed = backend.list(FileKind::Data).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].name.as_str(), listed[0].size), ("abcdef", 10));
    let age = listed[0].modified.unwrap().elapsed().unwrap_or_default();
    assert!(age < std::time::Duration::from_secs(600), "{age:?}");
    assert!(backend.list(FileKind::Tree).unwrap().is_empty());
    assert_eq!(backend.list(FileKind::Config).unwrap().len(), 1);
    assert_eq!(backend.size(FileKind::Data, "abcdef").unwrap(), 10);
    assert!(backend.exists(FileKind::Data, "abcdef").unwrap());
    assert!(!backend.exists(FileKind::Index, "abcdef").unwrap());

    let bad = backend
        .write(FileKind::Index, "../escape", b"x")
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::InvalidName);
    assert_eq!(
        backend
            .read(FileKind::Snapshot, "00", u64::MAX)
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );

    backend.remove(FileKind::Data, "abcdef").unwrap();
    assert_eq!(
        backend.remove(FileKind::Data, "abcdef").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(backend.list(FileKind::Data).unwrap().is_empty());
}

#[test]
fn memory_backend_keeps_the_contract() {
    contract(&MemoryBackend::new());
}

#[test]
fn local_backend_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&LocalBackend::new(dir.path().join("repo")));
}

#[test]
fn local_backend_creates_private_files_and_skips_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let backend = LocalBackend::new(&root);
    backend.create().unwrap();
    backend.write(FileKind::Tree, "77aa", b"tree").unwrap();
    let file = root.join("tree/77/77aa");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(root.join("tree/77"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert_eq!(
        std::fs::metadata(&root).unwrap().permissions().mode() & 0o777,
        0o700
    );
    std::fs::write(root.join("tree/77/.tmpXYZ"), b"partial").unwrap();
    assert_eq!(backend.list(FileKind::Tree).unwrap().len(), 1);
}

#[test]
fn local_listing_reports_objects_only_where_their_names_put_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let backend = LocalBackend::new(&root);
    backend.create().unwrap();
    backend.write(FileKind::Data, "abcdef", b"pack").unwrap();
    backend.write(FileKind::Index, "0123", b"index").unwrap();
    let put = |path: &str| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"stray").unwrap();
    };
    // Hex names in the wrong fan-out directory, beside the fan-out
    // directories, and under a fan-out directory that is not hex; a name
    // that is not hex; a directory where an index file belongs; and the
    // temporary files of writes, which are no one's business.
    for stray in [
        "data/cd/abcd01",
        "data/abcd02",
        "data/zz/zz",
        "data/AB/ab03",
        "index/0123.bak",
        "index/ABCD",
        "index/4567/89",
        "data/.tmpXYZ",
        "index/.tmp-0123-1",
    ] {
        put(stray);
    }
    let names = |kind| -> Vec<String> {
        let mut names: Vec<_> = backend
            .list(kind)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(FileKind::Data), ["abcdef"]);
    assert_eq!(names(FileKind::Index), ["0123"]);
    let strays = |kind| -> Vec<String> {
        let mut strays = backend.strays(kind).unwrap();
        strays.sort();
        strays
    };
    assert_eq!(
        strays(FileKind::Data),
        ["data/AB", "data/abcd02", "data/cd/abcd01", "data/zz"]
    );
    assert_eq!(
        strays(FileKind::Index),
        ["index/0123.bak", "index/4567", "index/ABCD"]
    );
    assert!(strays(FileKind::Tree).is_empty());
    // Every listed name reads by that name.
    for kind in [FileKind::Data, FileKind::Index] {
        for entry in backend.list(kind).unwrap() {
            backend.read(kind, &entry.name, 1024).unwrap();
        }
    }
}

#[test]
fn local_create_refuses_a_non_empty_directory_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keep.txt"), b"mine").unwrap();
    let backend = LocalBackend::new(dir.path());
    assert_eq!(
        backend.create().unwrap_err().kind(),
        ErrorKind::AlreadyExists
    );
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("keep.txt")]);
}

/// Every entry of `dir` and below, as paths relative to it.
fn tree_of(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            out.extend(
                tree_of(&entry.path())
                    .into_iter()
                    .map(|n| format!("{name}/{n}")),
            );
        }
        out.push(name);
    }
    out.sort();
    out
}

#[test]
fn local_staged_objects_appear_only_when_committed_and_never_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let backend = RetryBackend::new(LocalBackend::new(&root), RetryPolicy::default());
    backend.create().unwrap();
    let empty = tree_of(&root);

    // Dropped uncommitted: nothing listed, nothing left behind.
    let mut dropped = backend.stage(FileKind::Data).unwrap().unwrap();
    dropped.write(b"never").unwrap();
    assert!(backend.list(FileKind::Data).unwrap().is_empty());
    drop(dropped);
    assert_eq!(tree_of(&root), empty);

    // Written in pieces larger and smaller than the write buffer.
    let big = vec![0x5a; 700 << 10];
    let mut staged = backend.stage(FileKind::Data).unwrap().unwrap();
    for piece in [&b"head"[..], &big, b"", b"tail"] {
        staged.write(piece).unwrap();
    }
    assert!(backend.list(FileKind::Data).unwrap().is_empty());
    staged.commit("c0ffee").unwrap();
    let stored = backend.read(FileKind::Data, "c0ffee", u64::MAX).unwrap();
    assert_eq!(stored.len(), 8 + big.len());
    assert!(stored.starts_with(b"head") && stored.ends_with(b"tail"));
    assert_eq!(
        std::fs::metadata(root.join("data/c0/c0ffee"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    assert_eq!(backend.stats().counts().written_bytes, stored.len() as u64);

    // A second object under the same name is refused and discarded.
    let mut again = backend.stage(FileKind::Data).unwrap().unwrap();
    again.write(b"other").unwrap();
    let err = again.commit("c0ffee").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        backend.read(FileKind::Data, "c0ffee", u64::MAX).unwrap(),
        stored
    );
    let names = tree_of(&root);
    assert!(!names.iter().any(|n| n.contains(".tmp")), "{names:?}");
}

#[test]
fn memory_backend_does_not_stage() {
    assert!(
        MemoryBackend::new()
            .stage(FileKind::Data)
            .unwrap()
            .is_none()
    );
}
