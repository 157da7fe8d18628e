//! What to undo when the process is stopped by a signal: temporary files
//! being written, locks being held. Code that makes such a thing registers
//! how to undo it and keeps the returned [`Guard`] while the thing exists;
//! dropping the guard (the file was renamed into place or removed, the lock
//! released) forgets it. The command line's signal handler calls [`run`]
//! and exits.
//!
//! After [`run`] the registry stays closed: whatever registers later (a
//! thread that had not yet noticed) is undone at once.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

type Undo = Box<dyn FnOnce() + Send>;

struct Registry {
    next: u64,
    pending: BTreeMap<u64, Undo>,
    closed: bool,
}

type Shared = Mutex<Registry>;

impl Registry {
    const fn new() -> Registry {
        Registry {
            next: 0,
            pending: BTreeMap::new(),
            closed: false,
        }
    }
}

/// The process's registry.
static REGISTRY: Shared = Mutex::new(Registry::new());

fn locked(shared: &Shared) -> std::sync::MutexGuard<'_, Registry> {
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Keeps an undo action registered; dropping it forgets the action.
#[must_use = "the action is forgotten when the guard is dropped"]
pub struct Guard {
    registry: &'static Shared,
    id: Option<u64>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Guard").field(&self.id).finish()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            locked(self.registry).pending.remove(&id);
        }
    }
}

fn register(registry: &'static Shared, undo: Undo) -> Guard {
    let mut inner = locked(registry);
    if inner.closed {
        drop(inner);
        undo();
        return Guard { registry, id: None };
    }
    let id = inner.next;
    inner.next += 1;
    inner.pending.insert(id, undo);
    Guard {
        registry,
        id: Some(id),
    }
}

fn run_all(registry: &Shared) -> usize {
    let pending = {
        let mut inner = locked(registry);
        inner.closed = true;
        std::mem::take(&mut inner.pending)
    };
    let count = pending.len();
    for (_, undo) in pending.into_iter().rev() {
        undo();
    }
    count
}

/// Registers `undo` to run if the process is interrupted while the guard
/// lives.
pub fn on_interrupt(undo: impl FnOnce() + Send + 'static) -> Guard {
    register(&REGISTRY, Box::new(undo))
}

fn remove_file(path: PathBuf) -> Undo {
    Box::new(move || {
        let _ = std::fs::remove_file(path);
    })
}

/// Registers a temporary file to delete if the process is interrupted.
pub fn temporary_file(path: PathBuf) -> Guard {
    register(&REGISTRY, remove_file(path))
}

/// Creates a temporary file in `dir` (mode 0600, never an existing file,
/// named `prefix` and random characters), registered for removal before it
/// exists: there is no moment at which an interrupt could leave it behind.
pub fn new_temporary_file(
    dir: &Path,
    prefix: &str,
) -> std::io::Result<(tempfile::NamedTempFile, Guard)> {
    let mut guard = None;
    let file = tempfile::Builder::new()
        .prefix(prefix)
        .make_in(dir, |path| {
            // Replacing an earlier guard forgets the name tried before it.
            guard = Some(temporary_file(path.to_owned()));
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
        })?;
    let guard = guard.unwrap_or_else(|| temporary_file(file.path().to_owned()));
    Ok((file, guard))
}

/// Whether [`run`] has begun: the process is being interrupted.
pub fn is_closed() -> bool {
    locked(&REGISTRY).closed
}

/// Runs every registered action, newest first, and closes the registry.
/// Returns how many ran.
pub fn run() -> usize {
    run_all(&REGISTRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_run_once_unless_their_guard_was_dropped() {
        // A registry of its own: closing the process's would disturb
        // other tests.
        let registry: &'static Shared = Box::leak(Box::new(Mutex::new(Registry::new())));
        let dir = tempfile::tempdir().unwrap();
        let kept = dir.path().join("kept");
        let done = dir.path().join("done");
        std::fs::write(&kept, b"x").unwrap();
        std::fs::write(&done, b"x").unwrap();
        let guard = register(registry, remove_file(kept.clone()));
        drop(register(registry, remove_file(done.clone())));
        assert_eq!(run_all(registry), 1);
        assert!(!kept.exists(), "a registered file is removed");
        assert!(done.exists(), "a forgotten one is left alone");
        drop(guard);

        // Closed: a late registration is undone at once.
        let late = dir.path().join("late");
        std::fs::write(&late, b"x").unwrap();
        let _guard = register(registry, remove_file(late.clone()));
        assert!(!late.exists());
        assert_eq!(run_all(registry), 0);
    }
}
