//! An in-memory backend for tests: same contract, no disk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use crate::{Backend, Entry, Error, ErrorKind, FileKind, check_name};

/// Each object's bytes and the time it was stored.
type Objects = HashMap<(FileKind, String), (Arc<Vec<u8>>, SystemTime)>;

/// A repository held in a map; cloning shares the same objects.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    objects: Arc<Mutex<Option<Objects>>>,
}

impl MemoryBackend {
    /// An empty backend; [`Backend::create`] makes it a repository.
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    fn lock(&self) -> MutexGuard<'_, Option<Objects>> {
        // A panic while holding the lock cannot leave the map half-updated
        // (every operation is a single insert or remove), so poison is moot.
        self.objects.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with<T>(
        &self,
        kind: FileKind,
        name: &str,
        f: impl FnOnce(&mut Objects) -> Result<T, Error>,
    ) -> Result<T, Error> {
        check_name(kind, name)?;
        let mut guard = self.lock();
        match guard.as_mut() {
            Some(objects) => f(objects),
            None => Err(Error::repository(
                ErrorKind::NotFound,
                &self.location(),
                None,
            )),
        }
    }

    /// An independent copy of the current contents (tests branch a
    /// repository's state with it).
    pub fn duplicate(&self) -> MemoryBackend {
        MemoryBackend {
            objects: Arc::new(Mutex::new(self.lock().clone())),
        }
    }

    /// Replaces an object's bytes, bypassing the no-overwrite rule: tests use
    /// it to simulate damage done by storage.
    pub fn tamper(&self, kind: FileKind, name: &str, bytes: Vec<u8>) {
        if let Some(objects) = self.lock().as_mut() {
            objects.insert(
                (kind, name.to_string()),
                (Arc::new(bytes), SystemTime::now()),
            );
        }
    }
}

impl Backend for MemoryBackend {
    fn location(&self) -> String {
        "memory".to_string()
    }

    fn create(&self) -> Result<(), Error> {
        let mut guard = self.lock();
        if guard.is_some() {
            return Err(Error::repository(ErrorKind::AlreadyExists, "memory", None));
        }
        *guard = Some(HashMap::new());
        Ok(())
    }

    fn list(&self, kind: FileKind) -> Result<Vec<Entry>, Error> {
        let guard = self.lock();
        let Some(objects) = guard.as_ref() else {
            return Err(Error::repository(ErrorKind::NotFound, "memory", None));
        };
        Ok(objects
            .iter()
            .filter(|((k, _), _)| *k == kind)
            .map(|((_, name), (bytes, modified))| Entry {
                name: name.clone(),
                size: bytes.len() as u64,
                modified: Some(*modified),
            })
            .collect())
    }

    fn read(&self, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>, Error> {
        self.with(kind, name, |objects| {
            let (bytes, _) = objects
                .get(&(kind, name.to_string()))
                .ok_or_else(|| Error::new(ErrorKind::NotFound, kind, name, None))?;
            if bytes.len() as u64 > max {
                return Err(Error::new(ErrorKind::TooLarge, kind, name, None));
            }
            Ok(bytes.to_vec())
        })
    }

    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error> {
        let bytes = self.read(kind, name, u64::MAX)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(usize::try_from(length).unwrap_or(usize::MAX));
        bytes
            .get(start..end)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::new(ErrorKind::OutOfRange, kind, name, None))
    }

    fn write(&self, kind: FileKind, name: &str, bytes: &[u8]) -> Result<(), Error> {
        self.with(kind, name, |objects| {
            let key = (kind, name.to_string());
            if objects.contains_key(&key) {
                return Err(Error::new(ErrorKind::AlreadyExists, kind, name, None));
            }
            objects.insert(key, (Arc::new(bytes.to_vec()), SystemTime::now()));
            Ok(())
        })
    }

    fn remove(&self, kind: FileKind, name: &str) -> Result<(), Error> {
        self.with(kind, name, |objects| {
            objects
                .remove(&(kind, name.to_string()))
                .map(|_| ())
                .ok_or_else(|| Error::new(ErrorKind::NotFound, kind, name, None))
        })
    }

    fn size(&self, kind: FileKind, name: &str) -> Result<u64, Error> {
        self.with(kind, name, |objects| {
            objects
                .get(&(kind, name.to_string()))
                .map(|(bytes, _)| bytes.len() as u64)
                .ok_or_else(|| Error::new(ErrorKind::NotFound, kind, name, None))
        })
    }
}
