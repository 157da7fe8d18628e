//! What the engine's integration tests share.

#![allow(dead_code)] // each test crate uses its own part

use std::sync::Arc;

use arca_backend::{Backend, Entry, Error, FileKind, MemoryBackend};
use arca_core::{ChunkerParams, InitOptions, KdfParams, Lock, LockMode, Owner, Repository};

/// Options for a test repository: a KDF that costs nothing, 1 MiB packs.
pub fn test_options() -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            memory_kib: 8 * 1024,
            iterations: 1,
            parallelism: 1,
        },
        pack_size: 1 << 20,
        ..InitOptions::default()
    }
}

/// Chunks of 4 to 64 KiB, so that small test files make many blobs.
pub fn small_chunks() -> ChunkerParams {
    ChunkerParams {
        min_size: 4 << 10,
        avg_size: 16 << 10,
        max_size: 64 << 10,
    }
}

/// A new repository in memory.
pub fn init_memory(password: &[u8], options: &InitOptions) -> MemoryBackend {
    let memory = MemoryBackend::new();
    Repository::init(
        Arc::new(memory.clone()),
        password,
        options,
        &Owner::default(),
    )
    .expect("a test repository initialises");
    memory
}

/// Opens a repository and loads its index.
pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Repository {
    let mut repo = Repository::open(backend, password).expect("the test repository opens");
    repo.load_index().expect("its index loads");
    repo
}

/// The exclusive lock that prune, the repairs and key changes require,
/// taken at once.
pub fn exclusive(repo: &Repository) -> arca_core::Result<Lock> {
    Lock::acquire(
        repo,
        LockMode::Exclusive,
        "test",
        &Owner::default(),
        std::time::Duration::ZERO,
    )
}

/// A memory backend whose writes and removes fail when `fails(kind,
/// is_write)` says so (asked once per change, in order), like storage that
/// goes away or a machine that dies.
pub struct Failing {
    pub inner: MemoryBackend,
    fails: Box<dyn Fn(FileKind, bool) -> bool + Send + Sync>,
}

impl Failing {
    pub fn new(
        inner: MemoryBackend,
        fails: impl Fn(FileKind, bool) -> bool + Send + Sync + 'static,
    ) -> Failing {
        Failing {
            inner,
            fails: Box::new(fails),
        }
    }
}

impl Backend for Failing {
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
        // An invalid name makes the inner backend fail the way storage would.
        let name = if (self.fails)(kind, true) {
            "not hex"
        } else {
            name
        };
        self.inner.write(kind, name, bytes)
    }
    fn remove(&self, kind: FileKind, name: &str) -> Result<(), Error> {
        let name = if (self.fails)(kind, false) {
            "not hex"
        } else {
            name
        };
        self.inner.remove(kind, name)
    }
    fn size(&self, kind: FileKind, name: &str) -> Result<u64, Error> {
        self.inner.size(kind, name)
    }
}

/// The crash sweep of an operation that changes the repository: `run` (on
/// the backend given; true if it failed) first runs on a copy of `memory`
/// that counts its changes (writes and removals), which must number
/// `steps`; then, for each `k` in 1..=steps, on a fresh copy whose `k`-th
/// change fails, which it must notice. `after(k, copy)` then inspects what
/// that failure left.
pub fn fail_at_every_step(
    memory: &MemoryBackend,
    steps: usize,
    run: impl Fn(Arc<dyn Backend>) -> bool,
    mut after: impl FnMut(usize, MemoryBackend),
) {
    let changes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = changes.clone();
    let counting = Failing::new(memory.duplicate(), move |_, _| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        false
    });
    assert!(!run(Arc::new(counting)), "the clean run failed");
    assert_eq!(
        changes.load(std::sync::atomic::Ordering::SeqCst),
        steps,
        "changes made by the clean run"
    );
    for k in 1..=steps {
        let copy = memory.duplicate();
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let failing = Failing::new(copy.clone(), move |_, _| {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 >= k
        });
        assert!(
            run(Arc::new(failing)),
            "a failure at step {k} went unnoticed"
        );
        after(k, copy);
    }
}

/// Deterministic pseudo-random bytes (xorshift); distinct seeds give
/// distinct bytes.
pub fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A memory backend that records every range read (kind, name, offset),
/// to tell which blobs an operation fetched.
pub struct Counting {
    pub inner: MemoryBackend,
    pub reads: std::sync::Mutex<Vec<(FileKind, String, u64)>>,
}

impl Counting {
    pub fn new(inner: MemoryBackend) -> Counting {
        Counting {
            inner,
            reads: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Range reads of one kind so far.
    pub fn reads_of(&self, kind: FileKind) -> Vec<(String, u64)> {
        self.reads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|r| r.0 == kind)
            .map(|r| (r.1.clone(), r.2))
            .collect()
    }

    pub fn clear(&self) {
        self.reads.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Backend for Counting {
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
        self.reads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((kind, name.to_string(), offset));
        self.inner.read_range(kind, name, offset, len)
    }
    fn write(&self, kind: FileKind, name: &str, bytes: &[u8]) -> Result<(), Error> {
        self.inner.write(kind, name, bytes)
    }
    fn remove(&self, kind: FileKind, name: &str) -> Result<(), Error> {
        self.inner.remove(kind, name)
    }
    fn size(&self, kind: FileKind, name: &str) -> Result<u64, Error> {
        self.inner.size(kind, name)
    }
}

/// A full check of the repository in `memory`, every pack read. Opened
/// without loading the index: check reads the index files itself and
/// reports damaged ones.
pub fn full_check(memory: &MemoryBackend) -> arca_core::CheckReport {
    let mut repo =
        Repository::open(Arc::new(memory.clone()), b"pw").expect("the test repository opens");
    arca_core::check(
        &mut repo,
        &arca_core::CheckOptions {
            read_data: Some(arca_core::Subset::All),
        },
        &arca_core::CheckProgress::default(),
    )
    .expect("check runs")
}

/// Restores `snapshot` into `target` with default options.
/// Restores with the default options; a restore that names damaged
/// paths (and restored the rest) is an error here, made of the problems.
pub fn restore(
    repo: &Repository,
    snapshot: &arca_core::Snapshot,
    target: &std::path::Path,
) -> arca_core::Result<arca_core::RestoreSummary> {
    let summary = arca_core::restore(
        repo,
        snapshot,
        target,
        &arca_core::RestoreOptions::default(),
        &arca_core::RestoreProgress::default(),
    )?;
    if summary.damaged.is_empty() {
        return Ok(summary);
    }
    let problems: Vec<String> = summary
        .damaged
        .iter()
        .map(|d| format!("{}: {}", d.path, d.problem))
        .collect();
    Err(arca_core::Error::InvalidInput(problems.join("; ")))
}
