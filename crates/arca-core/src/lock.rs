//! Advisory locks, for the few operations that must not overlap: two
//! prunes, repairs, key changes. Snapshots, restores and forget take none,
//! so a stale lock never stops a nightly backup.
//!
//! A lock is a sealed file `locks/<name>` holding who took it and when it
//! was last refreshed. Taking one: write our own lock file, then list the
//! others; if one conflicts and is not stale, remove ours and fail (or wait
//! and try again). Two processes racing both see each other and both back
//! off, never both proceed. While held, a background thread refreshes the
//! lock every few minutes by writing a new file and removing the old one.
//!
//! A process stopped by SIGINT or SIGTERM removes its lock file on the way
//! out (see [`arca_backend::cleanup`]).
//!
//! A lock is stale when its last refresh is older than [`STALE_AFTER`], or
//! when it was taken on this host by a process that no longer exists.
//! `unlock` removes stale locks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arca_backend::{Backend, ErrorKind as BackendErrorKind, FileKind, cleanup};
use crossbeam_channel::{Sender, bounded};
use serde::{Deserialize, Serialize};

use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::file;
use crate::format::{AAD_LOCK, MAX_LOCK_LEN};
use crate::id::Id;
use crate::repository::{Owner, Repository};
use crate::time::{Time, Timestamp};

/// How often a held lock is refreshed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// A lock whose last refresh is older than this is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);

/// Whether a lock excludes everything or only exclusive holders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Readers that must not see a repository change under them (check).
    Shared,
    /// Writers that change the index or delete files (prune, repair, keys).
    Exclusive,
}

/// The content of a lock file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockRecord {
    /// Whether the lock is [`LockMode::Exclusive`].
    pub exclusive: bool,
    /// The command holding it, e.g. `prune`.
    pub command: String,
    /// Host of the holding process.
    pub hostname: String,
    /// User of the holding process.
    pub username: String,
    /// Process id of the holder, on its host.
    pub pid: u32,
    /// When the lock was taken.
    pub created: Timestamp,
    /// When the holder last refreshed it.
    pub refreshed: Timestamp,
}

impl LockRecord {
    /// A record for this process, taken now.
    pub fn new(mode: LockMode, command: &str, owner: &Owner) -> LockRecord {
        let now = Time::now().at;
        LockRecord {
            exclusive: mode == LockMode::Exclusive,
            command: command.to_string(),
            hostname: owner.hostname.clone(),
            username: owner.username.clone(),
            pid: std::process::id(),
            created: now,
            refreshed: now,
        }
    }

    /// Seals the record for storage.
    pub fn encode(&self, key: &MasterKey) -> Vec<u8> {
        file::seal(key, AAD_LOCK, self, file::METADATA_COMPRESSION)
    }

    /// Opens a stored record; `object` names it in errors.
    pub fn decode(bytes: &[u8], key: &MasterKey, object: &str) -> Result<LockRecord> {
        file::open(key, AAD_LOCK, bytes, object, MAX_LOCK_LEN)
    }

    /// Whether the holder is gone: no refresh for [`STALE_AFTER`], or a
    /// process of `this_host` that has exited.
    pub fn is_stale(&self, now: Timestamp, this_host: &str) -> bool {
        let age = now.seconds.saturating_sub(self.refreshed.seconds);
        if age > STALE_AFTER.as_secs() as i64 {
            return true;
        }
        self.hostname == this_host && !process_exists(self.pid)
    }

    /// "prune (pid 42 of root on db1, since 2026-11-20 02:00:00)".
    pub fn describe(&self) -> String {
        let since = Time {
            at: self.created,
            offset_seconds: 0,
        };
        format!(
            "{} (pid {} of {} on {}, since {})",
            self.command,
            self.pid,
            self.username,
            self.hostname,
            since.to_local_string()
        )
    }
}

fn process_exists(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks for existence; EPERM means it exists as someone else.
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// One lock file found in `locks/`.
#[derive(Clone, Debug)]
pub struct FoundLock {
    /// The lock file's name in `locks/`.
    pub name: String,
    /// `Err`: the file could not be read or decoded (it is reported, and
    /// treated as held until removed).
    pub record: std::result::Result<LockRecord, String>,
}

/// Every lock in the repository.
pub fn list_locks(repo: &Repository) -> Result<Vec<FoundLock>> {
    let mut found = Vec::new();
    for entry in repo.list(FileKind::Lock)? {
        let record = match read_lock(repo.backend(), repo.key(), &entry.name) {
            Ok(Some(record)) => Ok(record),
            Ok(None) => continue, // removed since the listing
            Err(e) => Err(e.to_string()),
        };
        found.push(FoundLock {
            name: entry.name,
            record,
        });
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found)
}

fn read_lock(backend: &dyn Backend, key: &MasterKey, name: &str) -> Result<Option<LockRecord>> {
    let object = format!("lock {name}");
    let bytes = match backend.size(FileKind::Lock, name) {
        Ok(size) if size > MAX_LOCK_LEN => {
            return Err(Error::corrupt(object, format!("{size} bytes is too large")));
        }
        Ok(_) => match backend.read(FileKind::Lock, name, crate::format::MAX_LOCK_LEN) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == BackendErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        },
        Err(e) if e.kind() == BackendErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    LockRecord::decode(&bytes, key, &object).map(Some)
}

/// Removes stale locks (every lock with `all`); returns the removed ones.
pub fn remove_locks(repo: &Repository, all: bool, this_host: &str) -> Result<Vec<FoundLock>> {
    let now = Time::now().at;
    let mut removed = Vec::new();
    for lock in list_locks(repo)? {
        let stale = match &lock.record {
            Ok(record) => record.is_stale(now, this_host),
            Err(_) => true,
        };
        if all || stale {
            match repo.backend().remove(FileKind::Lock, &lock.name) {
                Err(e) if e.kind() != BackendErrorKind::NotFound => return Err(e.into()),
                _ => removed.push(lock),
            }
        }
    }
    Ok(removed)
}

struct Held {
    backend: Arc<dyn Backend>,
    key: MasterKey,
    /// The current lock file's name and record.
    current: Mutex<(String, LockRecord)>,
    /// When the lock was last written successfully, or why refreshing failed.
    state: Mutex<std::result::Result<Instant, String>>,
    /// Set (under `current`) once the lock file was removed because the
    /// process is being interrupted: no refresh may write a new one.
    released: AtomicBool,
}

impl Held {
    /// Removes the lock file for good (the process is being interrupted).
    fn release(&self) {
        let current = lock(&self.current);
        self.released.store(true, Ordering::SeqCst);
        if !current.0.is_empty() {
            let _ = self.backend.remove(FileKind::Lock, &current.0);
        }
    }

    /// Writes `record` as the lock file and makes it the current one; the
    /// caller holds `current`, so [`Held::release`] waits for the write and
    /// removes what it wrote. Returns false, writing nothing, once the lock
    /// was released for an interrupt.
    fn write(&self, current: &mut (String, LockRecord), record: LockRecord) -> Result<bool> {
        if self.released.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let bytes = record.encode(&self.key);
        let name = Id::of_stored(&bytes).to_hex();
        self.backend.write(FileKind::Lock, &name, &bytes)?;
        *current = (name, record);
        Ok(true)
    }

    fn refresh(&self) -> Result<()> {
        let mut current = lock(&self.current);
        let old = current.0.clone();
        let mut record = current.1.clone();
        record.refreshed = Time::now().at;
        if self.write(&mut current, record)? {
            let _ = self.backend.remove(FileKind::Lock, &old);
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A held lock: refreshed in the background, removed on drop.
pub struct Lock {
    held: Arc<Held>,
    stop: Option<Sender<()>>,
    refresher: Option<JoinHandle<()>>,
    /// Removes the lock file if the process is interrupted.
    _interrupt: cleanup::Guard,
}

impl std::fmt::Debug for Lock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lock")
            .field("name", &lock(&self.held.current).0)
            .finish()
    }
}

impl Lock {
    /// Takes a lock for this process, waiting up to `retry` for holders of
    /// conflicting locks to finish.
    pub fn acquire(
        repo: &Repository,
        mode: LockMode,
        command: &str,
        owner: &Owner,
        retry: Duration,
    ) -> Result<Lock> {
        Lock::acquire_as(repo, LockRecord::new(mode, command, owner), retry, &|_| {})
    }

    /// Takes a lock with the given record (tests use it to stand in for
    /// other hosts and processes); `waiting` is told the holder once, when
    /// the lock is busy and `retry` allows waiting.
    pub fn acquire_as(
        repo: &Repository,
        record: LockRecord,
        retry: Duration,
        waiting: &dyn Fn(&str),
    ) -> Result<Lock> {
        let deadline = Instant::now() + retry;
        let mut pause = Duration::from_millis(200);
        let mut told = false;
        loop {
            let held = Arc::new(Held {
                backend: repo.shared_backend(),
                key: repo.key().clone(),
                current: Mutex::new((String::new(), record.clone())),
                state: Mutex::new(Ok(Instant::now())),
                released: AtomicBool::new(false),
            });
            // Registered before the file is written: an interrupt that comes
            // while it is being written removes it once the write is done.
            let interrupt = {
                let held = held.clone();
                cleanup::on_interrupt(move || held.release())
            };
            let name = {
                let mut current = lock(&held.current);
                if !held.write(&mut current, record.clone())? {
                    return Err(Error::LockLost {
                        location: repo.location(),
                        reason: "the process is being interrupted".into(),
                    });
                }
                current.0.clone()
            };
            match conflict(repo, &name, &record) {
                Ok(None) => return Ok(Lock::start(held, interrupt)),
                Ok(Some(holder)) => {
                    let _ = repo.backend().remove(FileKind::Lock, &name);
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(Error::Locked {
                            location: repo.location(),
                            holder,
                        });
                    }
                    if !told {
                        waiting(&holder);
                        told = true;
                    }
                    // Waiting for another process is what was asked for.
                    std::thread::sleep(pause.min(deadline - now));
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    let _ = repo.backend().remove(FileKind::Lock, &name);
                    return Err(e);
                }
            }
        }
    }

    fn start(held: Arc<Held>, interrupt: cleanup::Guard) -> Lock {
        let (stop, stopped) = bounded::<()>(1);
        let worker = held.clone();
        let refresher = std::thread::spawn(move || {
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(REFRESH_INTERVAL)
            {
                let outcome = worker.refresh().map(|()| Instant::now());
                *lock(&worker.state) = outcome.map_err(|e| e.to_string());
            }
        });
        Lock {
            held,
            stop: Some(stop),
            refresher: Some(refresher),
            _interrupt: interrupt,
        }
    }

    /// Whether this is an exclusive lock.
    pub fn is_exclusive(&self) -> bool {
        lock(&self.held.current).1.exclusive
    }

    /// Fails if the lock may have been lost: a refresh failed, or none
    /// succeeded for so long that others may consider it stale. Call it
    /// before each destructive step.
    pub fn ensure(&self) -> Result<()> {
        let state = lock(&self.held.state).clone();
        let location = self.held.backend.location();
        match state {
            Err(reason) => Err(Error::LockLost { location, reason }),
            Ok(at) if at.elapsed() > STALE_AFTER - REFRESH_INTERVAL => Err(Error::LockLost {
                location,
                reason: "it was not refreshed in time".into(),
            }),
            Ok(_) => Ok(()),
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(refresher) = self.refresher.take() {
            let _ = refresher.join();
        }
        let name = lock(&self.held.current).0.clone();
        let _ = self.held.backend.remove(FileKind::Lock, &name);
    }
}

/// A lock other than `own` that conflicts with `record` and is not stale.
fn conflict(repo: &Repository, own: &str, record: &LockRecord) -> Result<Option<String>> {
    let now = Time::now().at;
    for other in list_locks(repo)? {
        if other.name == own {
            continue;
        }
        match other.record {
            Ok(theirs) => {
                let clash = record.exclusive || theirs.exclusive;
                if clash && !theirs.is_stale(now, &record.hostname) {
                    return Ok(Some(theirs.describe()));
                }
            }
            Err(reason) => {
                return Ok(Some(format!(
                    "an unreadable lock file {} ({reason})",
                    other.name
                )));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::InitOptions;
    use crate::key::TEST_KDF;
    use arca_backend::MemoryBackend;

    fn repo() -> Repository {
        let backend = Arc::new(MemoryBackend::new());
        let options = InitOptions {
            kdf: TEST_KDF,
            ..InitOptions::default()
        };
        Repository::init(backend, b"pw", &options, &Owner::default()).unwrap()
    }

    fn owner(host: &str) -> Owner {
        Owner {
            hostname: host.into(),
            username: "ops".into(),
        }
    }

    #[test]
    fn exclusive_locks_exclude_and_name_the_holder() {
        let repo = repo();
        let first = Lock::acquire(
            &repo,
            LockMode::Exclusive,
            "prune",
            &owner("db1"),
            Duration::ZERO,
        )
        .unwrap();
        let err = Lock::acquire(
            &repo,
            LockMode::Shared,
            "check",
            &owner("db2"),
            Duration::ZERO,
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("prune") && message.contains("db1"),
            "{message}"
        );
        assert_eq!(err.kind(), crate::ErrorKind::Locked);
        // The refused attempt left nothing behind.
        assert_eq!(list_locks(&repo).unwrap().len(), 1);
        first.ensure().unwrap();
        drop(first);
        assert!(list_locks(&repo).unwrap().is_empty());
        Lock::acquire(
            &repo,
            LockMode::Exclusive,
            "prune",
            &owner("db2"),
            Duration::ZERO,
        )
        .unwrap();
    }

    #[test]
    fn shared_locks_coexist_but_block_exclusive_ones() {
        let repo = repo();
        let _a = Lock::acquire(
            &repo,
            LockMode::Shared,
            "check",
            &owner("a"),
            Duration::ZERO,
        )
        .unwrap();
        let _b = Lock::acquire(
            &repo,
            LockMode::Shared,
            "check",
            &owner("b"),
            Duration::ZERO,
        )
        .unwrap();
        assert!(
            Lock::acquire(
                &repo,
                LockMode::Exclusive,
                "prune",
                &owner("c"),
                Duration::ZERO
            )
            .is_err()
        );
    }

    #[test]
    fn stale_locks_are_ignored_and_unlock_removes_only_them() {
        let repo = repo();
        let dead_pid = {
            let mut child = std::process::Command::new("true").spawn().unwrap();
            let pid = child.id();
            child.wait().unwrap();
            pid
        };
        let mut dead = LockRecord::new(LockMode::Exclusive, "prune", &owner("here"));
        dead.pid = dead_pid;
        let mut old = LockRecord::new(LockMode::Exclusive, "repair", &owner("elsewhere"));
        old.refreshed.seconds -= STALE_AFTER.as_secs() as i64 + 1;
        for record in [&dead, &old] {
            let bytes = record.encode(repo.key());
            let name = Id::of_stored(&bytes).to_hex();
            repo.backend().write(FileKind::Lock, &name, &bytes).unwrap();
        }
        // A shared lock taken on "here" ignores the dead process's lock (same
        // host, pid gone) and the one not refreshed for too long.
        let live = LockRecord::new(LockMode::Shared, "check", &owner("here"));
        let held = Lock::acquire_as(&repo, live, Duration::ZERO, &|_| {}).unwrap();
        // Another exclusive lock is refused only because of the live one.
        let err = Lock::acquire(
            &repo,
            LockMode::Exclusive,
            "prune",
            &owner("here"),
            Duration::ZERO,
        )
        .unwrap_err();
        assert!(err.to_string().contains("check"), "{err}");
        let removed = remove_locks(&repo, false, "here").unwrap();
        assert_eq!(removed.len(), 2);
        assert_eq!(list_locks(&repo).unwrap().len(), 1);
        assert_eq!(remove_locks(&repo, true, "here").unwrap().len(), 1);
        drop(held);
        assert!(list_locks(&repo).unwrap().is_empty());
    }

    #[test]
    fn a_retry_waits_for_the_holder() {
        let repo = repo();
        let first = Lock::acquire(
            &repo,
            LockMode::Exclusive,
            "prune",
            &owner("a"),
            Duration::ZERO,
        )
        .unwrap();
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                Lock::acquire(
                    &repo,
                    LockMode::Exclusive,
                    "prune",
                    &owner("b"),
                    Duration::from_secs(120),
                )
            });
            // The waiter can only succeed once the first lock is gone.
            while list_locks(&repo).unwrap().len() < 2 && !waiter.is_finished() {
                std::thread::yield_now();
            }
            drop(first);
            waiter.join().unwrap().unwrap();
        });
    }

    #[test]
    fn lock_records_round_trip_and_reject_other_files() {
        let key = MasterKey::generate();
        let record = LockRecord::new(LockMode::Exclusive, "prune", &owner("db1"));
        let bytes = record.encode(&key);
        assert_eq!(LockRecord::decode(&bytes, &key, "lock").unwrap(), record);
        let err = LockRecord::decode(&bytes, &MasterKey::generate(), "lock ab").unwrap_err();
        assert!(err.to_string().contains("lock ab"));
    }
}
