//! Changing the tags of stored snapshots. Snapshot files are never
//! modified: each changed snapshot is written anew, recording the one it
//! replaces as its `original`, and only then is the old file removed. An
//! interruption at any moment leaves the old snapshot, the new one, or
//! both (the same data twice, which a later run or `forget` tidies), never
//! neither. Like forget, this needs no lock: it only adds and removes
//! snapshot files.

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::repository::Repository;
use crate::snapshot::Snapshot;

/// How tags change: `set` replaces them all; otherwise `remove` goes and
/// `add` comes (a tag both removed and added stays).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TagChange {
    /// Tags to add, when missing.
    pub add: Vec<String>,
    /// Tags to remove, when present.
    pub remove: Vec<String>,
    /// The whole new list of tags, instead of adding and removing.
    pub set: Option<Vec<String>>,
}

impl TagChange {
    /// The tags after the change, in their old order with new ones
    /// appended, each once.
    pub fn apply(&self, tags: &[String]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let wanted: Vec<&String> = match &self.set {
            Some(set) => set.iter().collect(),
            None => tags
                .iter()
                .filter(|t| !self.remove.contains(t))
                .chain(&self.add)
                .collect(),
        };
        for tag in wanted {
            if !out.contains(tag) {
                out.push(tag.clone());
            }
        }
        out
    }

    /// Whether the change does anything at all to any list of tags.
    pub fn is_empty(&self) -> bool {
        self.set.is_none() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// What a tag change will do, before anything is written.
#[derive(Clone, Debug, Default)]
pub struct TagPlan {
    /// Each snapshot whose tags change, and its replacement (not yet
    /// stored).
    pub changes: Vec<(SnapshotId, Snapshot)>,
    /// Snapshots the change leaves as they are.
    pub unchanged: Vec<SnapshotId>,
}

/// Plans `change` for `snapshots` (each once).
pub fn plan(snapshots: &[(SnapshotId, Snapshot)], change: &TagChange) -> Result<TagPlan> {
    if change.is_empty() {
        return Err(Error::InvalidInput(
            "no tag change given: add, remove or set tags".into(),
        ));
    }
    let mut plan = TagPlan::default();
    let mut seen = Vec::new();
    for (id, snapshot) in snapshots {
        if seen.contains(id) {
            continue;
        }
        seen.push(*id);
        let tags = change.apply(&snapshot.tags);
        if tags == snapshot.tags {
            plan.unchanged.push(*id);
            continue;
        }
        let mut replacement = snapshot.clone();
        replacement.tags = tags;
        // The first snapshot of a chain of rewrites stays the original.
        replacement.original = Some(snapshot.original.unwrap_or(*id));
        plan.changes.push((*id, replacement));
    }
    Ok(plan)
}

/// One snapshot replaced by a tag change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retagged {
    /// The snapshot that was replaced (and removed).
    pub old: SnapshotId,
    /// Its replacement.
    pub new: SnapshotId,
}

/// Stores each replacement, then removes the snapshot it replaces.
pub fn execute(repo: &Repository, plan: &TagPlan) -> Result<Vec<Retagged>> {
    let mut done = Vec::with_capacity(plan.changes.len());
    for (old, replacement) in &plan.changes {
        let new = repo.save_snapshot(replacement)?;
        repo.remove_snapshot(old)?;
        done.push(Retagged { old: *old, new });
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn changes_add_remove_and_set_each_tag_once() {
        let old = tags(&["nightly", "db"]);
        let add = TagChange {
            add: tags(&["month-end", "db"]),
            ..TagChange::default()
        };
        assert_eq!(add.apply(&old), tags(&["nightly", "db", "month-end"]));
        let remove = TagChange {
            remove: tags(&["nightly", "absent"]),
            ..TagChange::default()
        };
        assert_eq!(remove.apply(&old), tags(&["db"]));
        let set = TagChange {
            set: Some(tags(&["a", "a", "b"])),
            ..TagChange::default()
        };
        assert_eq!(set.apply(&old), tags(&["a", "b"]));
        assert!(TagChange::default().is_empty());
        assert!(plan(&[], &TagChange::default()).is_err());
    }
}
