//! What to undo when the process is stopped by a signal: temporary files
//! being written, locks being held. Code that makes such a thing registers
//! how to undo it and keeps the returned [`Guard`] while the thing exists;
//! dropping the guard (the file was renamed into place or removed, the lock
//! released) forgets it. The command line's signal handler calls [`run`]
//! and exits.
//!
//! After [`run`] the registry stays closed: whatever registers later (a
//! thread that had not yet noticed) is undone at once.
//!
//! Some work is worth keeping rather than undoing: a snapshot's packs that
//! are stored but not yet listed in an index file. [`before_interrupt`]
//! registers such a save; [`run`] runs the saves first, while the registry
//! is still open (so that they can write through temporary files), and only
//! then closes it and undoes the rest.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

type Undo = Box<dyn FnOnce() + Send>;

struct Registry {
    next: u64,
    /// Saves, run first and with the registry open.
    saves: BTreeMap<u64, Undo>,
    pending: BTreeMap<u64, Undo>,
    /// [`run`] has begun (saves may still be running).
    stopping: bool,
    closed: bool,
}

type Shared = Mutex<Registry>;

impl Registry {
    const fn new() -> Registry {
        Registry {
            next: 0,
            saves: BTreeMap::new(),
            pending: BTreeMap::new(),
            stopping: false,
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
            let mut inner = locked(self.registry);
            inner.pending.remove(&id);
            inner.saves.remove(&id);
        }
    }
}

/// Registers `undo` with the undo actions; once the registry is closed
/// (the process is ending) it runs at once instead.
fn register(registry: &'static Shared, undo: Undo) -> Guard {
    match insert(registry, undo, |inner| &mut inner.pending) {
        Ok(guard) => guard,
        Err(undo) => {
            undo();
            Guard { registry, id: None }
        }
    }
}

/// Registers `save` with the saves (see the module documentation); once
/// the registry is closed there is nothing left that could write, so a
/// late save is dropped.
fn register_save(registry: &'static Shared, save: Undo) -> Guard {
    insert(registry, save, |inner| &mut inner.saves).unwrap_or(Guard { registry, id: None })
}

/// Puts `action` into the table `table` picks, under a fresh id; gives the
/// action back if the registry is closed.
fn insert(
    registry: &'static Shared,
    action: Undo,
    table: impl FnOnce(&mut Registry) -> &mut BTreeMap<u64, Undo>,
) -> Result<Guard, Undo> {
    let mut inner = locked(registry);
    if inner.closed {
        return Err(action);
    }
    let id = inner.next;
    inner.next += 1;
    table(&mut inner).insert(id, action);
    Ok(Guard {
        registry,
        id: Some(id),
    })
}

fn run_all(registry: &Shared) -> usize {
    let saves = {
        let mut inner = locked(registry);
        inner.stopping = true;
        std::mem::take(&mut inner.saves)
    };
    let saved = saves.len();
    for (_, save) in saves {
        save();
    }
    let pending = {
        let mut inner = locked(registry);
        inner.closed = true;
        std::mem::take(&mut inner.pending)
    };
    let count = pending.len();
    for (_, undo) in pending.into_iter().rev() {
        undo();
    }
    saved + count
}

/// Registers `save` to run first if the process is interrupted while the
/// guard lives, before anything is undone and while writes still work: for
/// recording work done (an index of stored packs) so that a re-run keeps it.
pub fn before_interrupt(save: impl FnOnce() + Send + 'static) -> Guard {
    register_save(&REGISTRY, Box::new(save))
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

/// Creates a temporary file in `dir` (mode 0600, never an existing file,
/// named `prefix` and random characters), registered for removal. The file
/// is created and registered under the registry's lock, so it either exists
/// before an interrupt's cleanup runs, and is removed by it, or is never
/// created (an `Interrupted` error).
pub fn new_temporary_file(
    dir: &Path,
    prefix: &str,
) -> std::io::Result<(tempfile::NamedTempFile, Guard)> {
    new_temporary_file_with(&REGISTRY, dir, prefix)
}

fn new_temporary_file_with(
    registry: &'static Shared,
    dir: &Path,
    prefix: &str,
) -> std::io::Result<(tempfile::NamedTempFile, Guard)> {
    let mut id = None;
    let file = tempfile::Builder::new()
        .prefix(prefix)
        .make_in(dir, |path| {
            let mut inner = locked(registry);
            if inner.closed {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "the process is being interrupted",
                ));
            }
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)?;
            let next = inner.next;
            inner.next += 1;
            inner.pending.insert(next, remove_file(path.to_owned()));
            id = Some(next);
            Ok(file)
        })?;
    Ok((file, Guard { registry, id }))
}

/// Whether [`run`] has begun: the process is being interrupted.
pub fn is_closed() -> bool {
    locked(&REGISTRY).closed
}

/// Whether [`run`] has begun, even while its saves still run: work that
/// would only add to what the saves record (another pack) should stop.
pub fn is_stopping() -> bool {
    locked(&REGISTRY).stopping
}

/// Runs the saves, then every registered undo action, newest first, and
/// closes the registry. Returns how many actions ran.
pub fn run() -> usize {
    run_all(&REGISTRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_run_once_unless_their_guard_was_dropped() {
        use std::os::unix::fs::PermissionsExt;

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
        // A temporary file is registered as it is created.
        let (file, temporary_guard) =
            new_temporary_file_with(registry, dir.path(), ".tmp").unwrap();
        let temporary = file.path().to_owned();
        assert_eq!(
            std::fs::metadata(&temporary).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(run_all(registry), 2);
        assert!(!kept.exists(), "a registered file is removed");
        assert!(!temporary.exists(), "a temporary file is removed");
        assert!(done.exists(), "a forgotten one is left alone");
        drop((guard, file, temporary_guard));

        // Closed: a late registration is undone at once.
        let late = dir.path().join("late");
        std::fs::write(&late, b"x").unwrap();
        let _guard = register(registry, remove_file(late.clone()));
        assert!(!late.exists());
        // And no temporary file is created any more.
        let refused = new_temporary_file_with(registry, dir.path(), ".tmp").unwrap_err();
        assert_eq!(refused.kind(), std::io::ErrorKind::Interrupted);
        assert_eq!(run_all(registry), 0);
        // A late save is dropped: nothing could write any more.
        let _guard = register_save(registry, Box::new(|| panic!("ran after closing")));
        assert_eq!(run_all(registry), 0);
    }
}
