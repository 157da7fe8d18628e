//! Key management: the passwords that open a repository.
//!
//! Every key file wraps the same master key under its own password, so
//! adding, removing or replacing a key touches no other object. Two rules
//! keep the repository openable whatever happens:
//!
//! - a new key file is written, then read back and opened with its password,
//!   before any key file is removed: a password change interrupted between
//!   the two steps leaves two working keys, never none;
//! - the last key file that decodes is never removed, not even with force
//!   (the other files' passwords are unknown, so "decodes" is the best
//!   available stand-in for "opens").
//!
//! Every change runs under the repository's exclusive lock, so two removals
//! cannot each see the other's key as the one that remains.

use arca_backend::{ErrorKind as BackendErrorKind, FileKind};

use crate::error::{Error, Result};
use crate::format::{
    KDF_MAX_ITERATIONS, KDF_MAX_MEMORY_KIB, KDF_MAX_PARALLELISM, KDF_MIN_ITERATIONS,
    KDF_MIN_MEMORY_KIB, KDF_MIN_PARALLELISM,
};
use crate::id::KeyId;
use crate::key::{KdfParams, KeyFile};
use crate::lock::Lock;
use crate::repository::{Owner, Repository};
use crate::time::Time;

/// One key file of a repository.
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// The key file's id.
    pub id: KeyId,
    /// Whether this key opened the repository.
    pub current: bool,
    /// When the key was made; `None` when its file could not be read.
    pub created: Option<Time>,
    /// Host that made it (informational; empty when unreadable).
    pub hostname: String,
    /// User that made it (informational; empty when unreadable).
    pub username: String,
    /// Why the key file could not be read or decoded.
    pub error: Option<String>,
}

/// Every key file, oldest first; unreadable ones last, with the reason.
pub fn list_keys(repo: &Repository) -> Result<Vec<KeyInfo>> {
    let mut keys = Vec::new();
    for id in repo.keys()? {
        let mut info = KeyInfo {
            id,
            current: id == repo.key_id(),
            created: None,
            hostname: String::new(),
            username: String::new(),
            error: None,
        };
        match repo.read_key(&id) {
            Ok(file) => {
                info.created = Some(file.created);
                info.hostname = file.hostname;
                info.username = file.username;
            }
            // Removed since the listing.
            Err(Error::Storage(e)) if e.kind() == BackendErrorKind::NotFound => continue,
            Err(e) => info.error = Some(e.to_string()),
        }
        keys.push(info);
    }
    keys.sort_by_key(|k| (k.created.is_none(), k.created, k.id));
    Ok(keys)
}

/// Adds a key for `password`, wrapping the repository's master key; returns
/// its id.
pub fn add_key(
    repo: &Repository,
    password: &[u8],
    kdf: KdfParams,
    owner: &Owner,
    lock: &Lock,
) -> Result<KeyId> {
    ensure_exclusive(repo, lock)?;
    write_checked_key(repo, password, kdf, owner)
}

/// Removes the key `spec` (an id or unique id prefix); returns its id.
/// Refuses the last key file that decodes, and the key in use unless
/// `force`.
pub fn remove_key(repo: &Repository, spec: &str, force: bool, lock: &Lock) -> Result<KeyId> {
    ensure_exclusive(repo, lock)?;
    let ids = repo.keys()?;
    let target = resolve(repo, &ids, spec)?;
    let short = target.short();
    let location = repo.location();
    let others_usable = ids
        .iter()
        .filter(|id| **id != target)
        .any(|id| repo.read_key(id).is_ok());
    if !others_usable {
        return Err(Error::InvalidInput(format!(
            "key {short} is the last usable key of repository {location}; add another key before removing it"
        )));
    }
    if target == repo.key_id() && !force {
        return Err(Error::KeyInUse {
            key: short,
            location,
        });
    }
    lock.ensure()?;
    repo.backend().remove(FileKind::Key, &target.to_hex())?;
    Ok(target)
}

/// Replaces the key in use with one for `password`: the new key file is
/// written and verified before the old one is removed. Returns the new
/// key's id, which the repository then reports as its key in use.
pub fn change_password(
    repo: &mut Repository,
    password: &[u8],
    kdf: KdfParams,
    owner: &Owner,
    lock: &Lock,
) -> Result<KeyId> {
    ensure_exclusive(repo, lock)?;
    let old = repo.key_id();
    let new = write_checked_key(repo, password, kdf, owner)?;
    lock.ensure()?;
    match repo.backend().remove(FileKind::Key, &old.to_hex()) {
        Err(e) if e.kind() != BackendErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    repo.set_key_id(new);
    Ok(new)
}

/// Resolves a full key id or a unique prefix among `ids`.
fn resolve(repo: &Repository, ids: &[KeyId], spec: &str) -> Result<KeyId> {
    let prefix = spec.to_ascii_lowercase();
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::InvalidInput(format!(
            "{spec:?} is not a key id or id prefix"
        )));
    }
    let found: Vec<KeyId> = ids
        .iter()
        .copied()
        .filter(|id| id.to_hex().starts_with(&prefix))
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::NotFound(format!(
            "no key {spec} in repository {}",
            repo.location()
        ))),
        _ => Err(Error::InvalidInput(format!(
            "key prefix {spec} matches {} keys of repository {}; give more digits",
            found.len(),
            repo.location()
        ))),
    }
}

/// Writes a key file for `password`, then reads it back and opens it; a file
/// that does not open to this repository's master key is removed again.
fn write_checked_key(
    repo: &Repository,
    password: &[u8],
    kdf: KdfParams,
    owner: &Owner,
) -> Result<KeyId> {
    if password.is_empty() {
        return Err(Error::InvalidInput(format!(
            "the new password for repository {} is empty",
            repo.location()
        )));
    }
    check_kdf(kdf)?;
    let file = KeyFile::create(repo.key(), password, kdf, &owner.hostname, &owner.username)?;
    let id = repo.save_key(&file)?;
    if let Err(e) = verify_key(repo, &id, password) {
        let _ = repo.backend().remove(FileKind::Key, &id.to_hex());
        return Err(e);
    }
    Ok(id)
}

fn verify_key(repo: &Repository, id: &KeyId, password: &[u8]) -> Result<()> {
    let object = format!("key {id}");
    match repo.read_key(id)?.open(password, &object)? {
        Some(key) if key.secret() == repo.key().secret() => Ok(()),
        _ => Err(Error::corrupt(
            object,
            "the key file just written does not open with its password",
        )),
    }
}

/// Refuses parameters a reader would reject (format §4.3), before any key
/// file is written with them.
fn check_kdf(kdf: KdfParams) -> Result<()> {
    let KdfParams {
        memory_kib: m,
        iterations: t,
        parallelism: p,
    } = kdf;
    let in_range = (KDF_MIN_ITERATIONS..=KDF_MAX_ITERATIONS).contains(&t)
        && (KDF_MIN_PARALLELISM..=KDF_MAX_PARALLELISM).contains(&p)
        && (KDF_MIN_MEMORY_KIB.max(8 * p)..=KDF_MAX_MEMORY_KIB).contains(&m);
    if in_range {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "KDF parameters m={m} KiB, t={t}, p={p} are outside the allowed ranges (t {KDF_MIN_ITERATIONS}..{KDF_MAX_ITERATIONS}, p {KDF_MIN_PARALLELISM}..{KDF_MAX_PARALLELISM}, m {KDF_MIN_MEMORY_KIB}..{KDF_MAX_MEMORY_KIB} KiB and at least 8 × p)"
    )))
}

fn ensure_exclusive(repo: &Repository, lock: &Lock) -> Result<()> {
    if !lock.is_exclusive() {
        return Err(Error::InvalidInput(format!(
            "changing the keys of repository {} needs its exclusive lock",
            repo.location()
        )));
    }
    lock.ensure()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use arca_backend::{Backend, MemoryBackend};

    use super::*;
    use crate::config::InitOptions;
    use crate::error::ErrorKind;
    use crate::key::TEST_KDF;
    use crate::lock::LockMode;

    fn new_repo() -> (Arc<MemoryBackend>, Repository) {
        let backend = Arc::new(MemoryBackend::new());
        let options = InitOptions {
            kdf: TEST_KDF,
            ..InitOptions::default()
        };
        let repo = Repository::init(backend.clone(), b"pw", &options, &owner()).unwrap();
        (backend, repo)
    }

    fn owner() -> Owner {
        Owner {
            hostname: "db1".into(),
            username: "ops".into(),
        }
    }

    fn exclusive(repo: &Repository) -> Lock {
        Lock::acquire(repo, LockMode::Exclusive, "key", &owner(), Duration::ZERO).unwrap()
    }

    fn open(backend: &Arc<MemoryBackend>, password: &[u8]) -> Result<Repository> {
        Repository::open(backend.clone(), password)
    }

    #[test]
    fn an_added_key_opens_the_same_repository() {
        let (backend, repo) = new_repo();
        let lock = exclusive(&repo);
        let added = add_key(&repo, b"second", TEST_KDF, &owner(), &lock).unwrap();
        assert_ne!(added, repo.key_id());
        let first = open(&backend, b"pw").unwrap();
        let second = open(&backend, b"second").unwrap();
        assert_eq!(first.key_id(), repo.key_id());
        assert_eq!(second.key_id(), added);
        assert_eq!(second.config().id, repo.config().id);
        assert_eq!(second.key().blob_id(b"x"), repo.key().blob_id(b"x"));
        assert_eq!(
            open(&backend, b"third").unwrap_err().kind(),
            ErrorKind::WrongPassword
        );
    }

    #[test]
    fn open_and_init_remember_the_key_in_use() {
        let (backend, repo) = new_repo();
        assert_eq!(repo.keys().unwrap(), vec![repo.key_id()]);
        assert_eq!(open(&backend, b"pw").unwrap().key_id(), repo.key_id());
    }

    #[test]
    fn the_last_key_is_never_removed() {
        let (backend, repo) = new_repo();
        let lock = exclusive(&repo);
        let id = repo.key_id().to_hex();
        for force in [false, true] {
            let err = remove_key(&repo, &id, force, &lock).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.to_string().contains("last usable key"), "{err}");
            assert!(err.to_string().contains(&id[..8]), "{err}");
        }
        // A damaged key file does not count as another key.
        let garbage = b"not a key file";
        let name = crate::id::Id::of_stored(garbage).to_hex();
        backend.write(FileKind::Key, &name, garbage).unwrap();
        let err = remove_key(&repo, &id, true, &lock).unwrap_err();
        assert!(err.to_string().contains("last usable key"), "{err}");
        open(&backend, b"pw").unwrap();
        // The damaged one itself can go.
        assert_eq!(
            remove_key(&repo, &name, false, &lock).unwrap().to_hex(),
            name
        );
    }

    #[test]
    fn the_key_in_use_is_removed_only_with_force() {
        let (backend, repo) = new_repo();
        let lock = exclusive(&repo);
        let other = add_key(&repo, b"other", TEST_KDF, &owner(), &lock).unwrap();
        let current = repo.key_id();
        let err = remove_key(&repo, &current.to_hex(), false, &lock).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("in use"), "{err}");
        assert!(err.to_string().contains(&current.short()), "{err}");
        assert_eq!(repo.keys().unwrap().len(), 2);
        assert_eq!(
            remove_key(&repo, &current.to_hex(), true, &lock).unwrap(),
            current
        );
        assert_eq!(repo.keys().unwrap(), vec![other]);
        assert_eq!(
            open(&backend, b"pw").unwrap_err().kind(),
            ErrorKind::WrongPassword
        );
        open(&backend, b"other").unwrap();
    }

    #[test]
    fn a_key_that_is_not_in_use_is_removed_without_force() {
        let (backend, repo) = new_repo();
        let lock = exclusive(&repo);
        let other = add_key(&repo, b"other", TEST_KDF, &owner(), &lock).unwrap();
        assert_eq!(
            remove_key(&repo, &other.short(), false, &lock).unwrap(),
            other
        );
        assert_eq!(repo.keys().unwrap(), vec![repo.key_id()]);
        assert_eq!(
            open(&backend, b"other").unwrap_err().kind(),
            ErrorKind::WrongPassword
        );
    }

    #[test]
    fn a_password_change_leaves_exactly_the_new_key() {
        let (backend, mut repo) = new_repo();
        let lock = exclusive(&repo);
        let old = repo.key_id();
        let new = change_password(&mut repo, b"new", TEST_KDF, &owner(), &lock).unwrap();
        assert_ne!(new, old);
        assert_eq!(repo.key_id(), new);
        assert_eq!(repo.keys().unwrap(), vec![new]);
        assert_eq!(
            open(&backend, b"pw").unwrap_err().kind(),
            ErrorKind::WrongPassword
        );
        let reopened = open(&backend, b"new").unwrap();
        assert_eq!(reopened.key_id(), new);
        assert_eq!(reopened.key().blob_id(b"x"), repo.key().blob_id(b"x"));
        let listed = list_keys(&repo).unwrap();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].current);
    }

    #[test]
    fn keys_resolve_by_unique_prefix_only() {
        let (_backend, repo) = new_repo();
        let lock = exclusive(&repo);
        // Seventeen ids share a first hex digit somewhere (pigeonhole).
        let mut ids = vec![repo.key_id()];
        let (a, b) = loop {
            let id = add_key(&repo, b"more", TEST_KDF, &owner(), &lock).unwrap();
            let twin = ids.iter().find(|o| o.to_hex()[..1] == id.to_hex()[..1]);
            if let Some(twin) = twin.copied() {
                break (twin, id);
            }
            ids.push(id);
        };
        let all = repo.keys().unwrap();
        let shared = &a.to_hex()[..1];
        let err = resolve(&repo, &all, shared).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("matches 2 keys"), "{err}");
        // Enough digits to tell them apart, in either case.
        let digits = (1..64)
            .find(|&n| a.to_hex()[..n] != b.to_hex()[..n])
            .unwrap();
        let unique = b.to_hex()[..digits].to_ascii_uppercase();
        assert_eq!(resolve(&repo, &all, &unique).unwrap(), b);
        assert_eq!(resolve(&repo, &all, &a.to_hex()).unwrap(), a);
        let missing = crate::id::Id::of_stored(b"never written").to_hex();
        let err = resolve(&repo, &all, &missing).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(err.to_string().contains(&missing), "{err}");
        for bad in ["", "xyz", "12 4"] {
            let err = resolve(&repo, &all, bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
        }
        // Removing by an ambiguous prefix removes nothing.
        let before = repo.keys().unwrap().len();
        assert!(remove_key(&repo, shared, true, &lock).is_err());
        assert_eq!(repo.keys().unwrap().len(), before);
    }

    #[test]
    fn the_list_is_oldest_first_and_shows_damaged_keys() {
        let (backend, repo) = new_repo();
        let lock = exclusive(&repo);
        let garbage = vec![0xc1; 100];
        let damaged = crate::id::Id::of_stored(&garbage).to_hex();
        backend.write(FileKind::Key, &damaged, &garbage).unwrap();
        let mut made = vec![repo.key_id()];
        for _ in 0..3 {
            made.push(add_key(&repo, b"more", TEST_KDF, &owner(), &lock).unwrap());
        }
        let listed = list_keys(&repo).unwrap();
        let ids: Vec<KeyId> = listed.iter().map(|k| k.id).collect();
        assert_eq!(&ids[..4], &made[..]);
        assert_eq!(ids[4].to_hex(), damaged);
        assert!(listed[0].current);
        assert!(listed[1..].iter().all(|k| !k.current));
        assert_eq!(listed[1].hostname, "db1");
        assert_eq!(listed[1].username, "ops");
        assert!(listed[..4].iter().all(|k| k.error.is_none()));
        let broken = &listed[4];
        assert!(broken.created.is_none());
        let note = broken.error.as_deref().unwrap();
        assert!(note.contains(&damaged), "{note}");
    }

    #[test]
    fn changes_need_the_exclusive_lock_and_a_password() {
        let (_backend, mut repo) = new_repo();
        let shared =
            Lock::acquire(&repo, LockMode::Shared, "check", &owner(), Duration::ZERO).unwrap();
        let err = add_key(&repo, b"x", TEST_KDF, &owner(), &shared).unwrap_err();
        assert!(err.to_string().contains("exclusive lock"), "{err}");
        drop(shared);
        let lock = exclusive(&repo);
        let err = change_password(&mut repo, b"", TEST_KDF, &owner(), &lock).unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");
        let absurd = KdfParams {
            memory_kib: u32::MAX,
            ..TEST_KDF
        };
        let err = add_key(&repo, b"x", absurd, &owner(), &lock).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(repo.keys().unwrap(), vec![repo.key_id()]);
    }
}
