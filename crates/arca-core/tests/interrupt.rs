//! What an interrupted process undoes: its lock files and the packs it was
//! writing. One test in a binary of its own, because running the cleanup
//! closes the process's registry for good.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arca_backend::{Backend, FileKind, LocalBackend, cleanup};
use arca_core::{Lock, LockMode, Owner, Repository};

/// Every name below `dir` that starts with `.tmp`.
fn temporaries(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            found.extend(temporaries(&entry.path()));
        } else if name.starts_with(".tmp") {
            found.push(name);
        }
    }
    found
}

#[test]
fn an_interrupt_removes_held_locks_and_packs_being_written() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(&root));
    Repository::init(
        backend.clone(),
        b"pw",
        &common::test_options(),
        &Owner::default(),
    )
    .unwrap();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let lock = Lock::acquire(
        &repo,
        LockMode::Exclusive,
        "prune",
        &Owner::default(),
        Duration::ZERO,
    )
    .unwrap();
    let mut pack = backend.stage(FileKind::Data).unwrap().unwrap();
    pack.write(&[7; 4096]).unwrap();
    assert_eq!(backend.list(FileKind::Lock).unwrap().len(), 1);
    assert_eq!(temporaries(&root).len(), 1);

    assert!(cleanup::run() >= 2);
    assert!(backend.list(FileKind::Lock).unwrap().is_empty());
    assert!(temporaries(&root).is_empty(), "{:?}", temporaries(&root));

    // A pack still being written when the signal came cannot be named
    // any more, and nothing is recreated.
    let _ = pack.write(&[7; 1 << 20]);
    assert!(pack.commit("abcd").is_err());
    assert!(!backend.exists(FileKind::Data, "abcd").unwrap());
    drop(lock);
    assert!(backend.list(FileKind::Lock).unwrap().is_empty());
    assert!(temporaries(&root).is_empty());
}
