//! Key changes interrupted at any of their writes or removes never leave a
//! repository that no password opens.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common;

use arca_backend::{Backend, Entry, Error, FileKind, MemoryBackend};
use arca_core::{ErrorKind, InitOptions, KdfParams, Lock, LockMode, Owner, Repository};
use common::Failing;

const KDF: KdfParams = KdfParams {
    memory_kib: 8 * 1024,
    iterations: 1,
    parallelism: 1,
};

fn new_repo() -> MemoryBackend {
    let memory = MemoryBackend::new();
    let options = InitOptions {
        kdf: KDF,
        ..InitOptions::default()
    };
    Repository::init(
        Arc::new(memory.clone()),
        b"old",
        &options,
        &Owner::default(),
    )
    .unwrap();
    memory
}

fn opens(memory: &MemoryBackend, password: &[u8]) -> bool {
    Repository::open(Arc::new(memory.clone()), password).is_ok()
}

/// Changes the password on a copy of `memory` whose `fail_at`-th change to
/// a key file (1-based) and every later one fail; returns the copy, whether
/// the change succeeded, and how many key changes it attempted.
fn passwd_failing_at(memory: &MemoryBackend, fail_at: usize) -> (MemoryBackend, bool, usize) {
    let copy = memory.duplicate();
    let changes = Arc::new(AtomicUsize::new(0));
    let counter = changes.clone();
    let failing = Failing::new(copy.clone(), move |kind, _| {
        kind == FileKind::Key && counter.fetch_add(1, Ordering::SeqCst) + 1 >= fail_at
    });
    let backend: Arc<dyn Backend> = Arc::new(failing);
    let mut repo = Repository::open(backend, b"old").unwrap();
    let lock = Lock::acquire(
        &repo,
        LockMode::Exclusive,
        "key passwd",
        &Owner::default(),
        Duration::ZERO,
    )
    .unwrap();
    let done = arca_core::change_password(&mut repo, b"new", KDF, &Owner::default(), &lock);
    (copy, done.is_ok(), changes.load(Ordering::SeqCst))
}

#[test]
fn an_interrupted_password_change_leaves_a_working_key() {
    let memory = new_repo();
    let (copy, done, total) = passwd_failing_at(&memory, usize::MAX);
    assert!(done);
    assert_eq!(total, 2, "one key written, one removed");
    assert!(opens(&copy, b"new") && !opens(&copy, b"old"));
    for k in 1..=total {
        let (copy, done, _) = passwd_failing_at(&memory, k);
        assert!(!done, "a failure at key change {k} went unnoticed");
        assert!(opens(&copy, b"old"), "the old password fails after {k}");
        // Failing at the removal (the second change) leaves both working.
        assert_eq!(opens(&copy, b"new"), k == 2, "failure at {k}");
    }
}

/// Lists one key file more than it holds: one removed by a key change
/// between another process's listing and its reading.
struct Vanished(MemoryBackend);

impl Backend for Vanished {
    fn location(&self) -> String {
        self.0.location()
    }
    fn create(&self) -> Result<(), Error> {
        self.0.create()
    }
    fn list(&self, kind: FileKind) -> Result<Vec<Entry>, Error> {
        let mut entries = self.0.list(kind)?;
        if kind == FileKind::Key {
            entries.push(Entry {
                name: "0".repeat(64),
                size: 100,
                modified: None,
            });
        }
        Ok(entries)
    }
    fn read(&self, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>, Error> {
        self.0.read(kind, name, max)
    }
    fn read_range(&self, kind: FileKind, name: &str, at: u64, len: u64) -> Result<Vec<u8>, Error> {
        self.0.read_range(kind, name, at, len)
    }
    fn write(&self, kind: FileKind, name: &str, bytes: &[u8]) -> Result<(), Error> {
        self.0.write(kind, name, bytes)
    }
    fn remove(&self, kind: FileKind, name: &str) -> Result<(), Error> {
        self.0.remove(kind, name)
    }
    fn size(&self, kind: FileKind, name: &str) -> Result<u64, Error> {
        self.0.size(kind, name)
    }
}

#[test]
fn a_key_removed_while_opening_counts_as_absent() {
    let backend = Arc::new(Vanished(new_repo()));
    Repository::open(backend.clone(), b"old").unwrap();
    let err = Repository::open(backend, b"other").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::WrongPassword, "{err}");
}
