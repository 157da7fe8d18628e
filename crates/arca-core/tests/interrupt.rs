//! What an interrupted process undoes: its lock files, also one that has
//! just been written, and the packs it was writing. One test in a binary of
//! its own, because running the cleanup closes the process's registry for
//! good.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use arca_backend::{Backend, Entry, Error, FileKind, LocalBackend, cleanup};
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

/// A backend on which the interrupt comes the moment a lock file has been
/// written, before the writer has returned: another thread runs the
/// cleanup, and reports how many actions it ran and the lock files there
/// were when it had finished.
struct InterruptAfterLockWrite {
    inner: Arc<dyn Backend>,
    interrupt: Mutex<Option<JoinHandle<(usize, usize)>>>,
}

impl Backend for InterruptAfterLockWrite {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<(), Error> {
        self.inner.create()
    }
    fn list(&self, kind: FileKind) -> Result<Vec<Entry>, Error> {
        self.inner.list(kind)
    }
    fn read(&self, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>, Error> {
        self.inner.read(kind, name, max)
    }
    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, Error> {
        self.inner.read_range(kind, name, offset, len)
    }
    fn write(&self, kind: FileKind, name: &str, bytes: &[u8]) -> Result<(), Error> {
        self.inner.write(kind, name, bytes)?;
        let mut interrupt = self.interrupt.lock().unwrap();
        if kind == FileKind::Lock && interrupt.is_none() {
            let inner = self.inner.clone();
            *interrupt = Some(std::thread::spawn(move || {
                let ran = cleanup::run();
                (ran, inner.list(FileKind::Lock).unwrap().len())
            }));
            // The cleanup has taken what was registered before this write
            // returns.
            while !cleanup::is_closed() {
                std::thread::yield_now();
            }
        }
        Ok(())
    }
    fn remove(&self, kind: FileKind, name: &str) -> Result<(), Error> {
        self.inner.remove(kind, name)
    }
    fn size(&self, kind: FileKind, name: &str) -> Result<u64, Error> {
        self.inner.size(kind, name)
    }
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

    // A second lock, interrupted the moment its file is written.
    let interrupting = Arc::new(InterruptAfterLockWrite {
        inner: backend.clone(),
        interrupt: Mutex::new(None),
    });
    let second = Repository::open(interrupting.clone(), b"pw").unwrap();
    let late = Lock::acquire(
        &second,
        LockMode::Shared,
        "snapshot",
        &Owner::default(),
        Duration::ZERO,
    );
    let interrupt = interrupting.interrupt.lock().unwrap().take().unwrap();
    let (ran, locks_left) = interrupt.join().unwrap();
    assert!(ran >= 3, "the held lock, the pack and the new lock: {ran}");
    assert_eq!(locks_left, 0, "a lock file outlived the cleanup");
    drop(late);
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
