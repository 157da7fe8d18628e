//! Damage met while reading a repository, kept local.
//!
//! A snapshot or index file that does not load must not take the rest of
//! the repository down: readers skip it and carry on with what is healthy.
//! What they skipped is recorded here, once per object, and handed to the
//! caller's reporter the first time it is met, so a command warns once per
//! damaged file however often it lists snapshots.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arca_backend::FileKind;

/// One repository object that readers skip because it is damaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damaged {
    /// A snapshot or index file.
    pub kind: FileKind,
    /// Its name in storage.
    pub name: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Receives each damaged object the first time a reader skips it.
pub type DamageReporter = Arc<dyn Fn(&Damaged) + Send + Sync>;

/// The damaged objects met so far.
#[derive(Default)]
pub(crate) struct DamageLog {
    seen: Mutex<BTreeMap<(String, String), Damaged>>,
    reporter: Option<DamageReporter>,
}

impl DamageLog {
    pub fn set_reporter(&mut self, reporter: DamageReporter) {
        self.reporter = Some(reporter);
    }

    /// Records a damaged object; the reporter hears of it once.
    pub fn note(&self, kind: FileKind, name: &str, problem: String) {
        let key = (kind.to_string(), name.to_string());
        let damaged = Damaged {
            kind,
            name: name.to_string(),
            problem,
        };
        let new = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            seen.insert(key, damaged.clone()).is_none()
        };
        if new && let Some(report) = &self.reporter {
            report(&damaged);
        }
    }

    /// Every damaged object met so far, by kind and name.
    pub fn all(&self) -> Vec<Damaged> {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.values().cloned().collect()
    }

    /// Whether `name` of `kind` was found damaged.
    pub fn contains(&self, kind: FileKind, name: &str) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.contains_key(&(kind.to_string(), name.to_string()))
    }
}

impl std::fmt::Debug for DamageLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.all()).finish()
    }
}
