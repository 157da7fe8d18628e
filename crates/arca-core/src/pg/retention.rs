//! WAL retention: which archived WAL files no kept base backup needs
//! (docs/format.md §7.11).
//!
//! Replaying from a base backup that started on timeline `T` at segment
//! `S` reads WAL of timeline `T` from `S` on, then of every later timeline
//! it follows, from where that timeline branched (always after `S`). So a
//! WAL file of timeline `t` at segment `s` is needed when some kept backup
//! has `T ≤ t` and `S ≤ s`; every other segment, partial segment and backup
//! history file may go. Timeline history files are always kept (they are
//! tiny and recovery reads them to follow timelines). Nothing is removed
//! while there is no base backup, or when the record of one cannot be
//! read: then which WAL it needs is unknown. Nor is a file archived within
//! the grace period: a base backup that started before an older one ended
//! and is still running may need it before its snapshot is saved.

use arca_backend::FileKind;
use rayon::prelude::*;

use super::BaseBackup;
use crate::error::Result;
use crate::lock::Lock;
use crate::repository::{Repository, is_object_name};
use crate::time::Timestamp;

/// One archived WAL file retention removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRemoval {
    /// The object's name in `wal/`.
    pub object: String,
    /// The PostgreSQL file name it holds.
    pub file: String,
    /// Its stored size in bytes.
    pub size: u64,
}

/// What WAL retention will do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalPlan {
    /// WAL objects to remove, by file name.
    pub remove: Vec<WalRemoval>,
    /// WAL objects kept.
    pub kept: u64,
    /// Why nothing or not everything could be decided (one sentence each,
    /// naming the object or snapshot); objects concerned are kept.
    pub warnings: Vec<String>,
}

impl WalPlan {
    /// Stored bytes the removals free.
    pub fn bytes(&self) -> u64 {
        self.remove.iter().map(|r| r.size).sum()
    }
}

/// Decides which WAL objects `backups` (the records of every base backup
/// kept) leave unneeded. `unreadable` counts base backup snapshots whose
/// record could not be read: with any, nothing is removed. `old_enough`
/// says whether a file archived at a time is past the grace period: a
/// younger one is kept, as a base backup still running (whose snapshot is
/// not saved yet) may need it. Reads the header of every WAL object;
/// writes nothing.
pub fn plan_wal_retention(
    repo: &Repository,
    backups: &[BaseBackup],
    unreadable: usize,
    old_enough: &(dyn Fn(Timestamp) -> bool + Sync),
) -> Result<WalPlan> {
    let entries: Vec<_> = repo
        .backend()
        .list(FileKind::Wal)?
        .into_iter()
        .filter(|e| is_object_name(&e.name))
        .collect();
    let mut plan = WalPlan::default();
    if entries.is_empty() {
        return Ok(plan);
    }
    if unreadable > 0 || backups.is_empty() {
        plan.kept = entries.len() as u64;
        if unreadable > 0 {
            plan.warnings.push(format!(
                "no WAL was removed: the record of {unreadable} base backup snapshot(s) cannot be read, so which WAL they need is unknown"
            ));
        }
        return Ok(plan);
    }
    let headers: Vec<_> = entries
        .par_iter()
        .map(|e| crate::wal::read_header(repo, &e.name))
        .collect();
    for (entry, header) in entries.into_iter().zip(headers) {
        match header {
            Ok(header) if !needed(&header.name, backups) && old_enough(header.archived.at) => {
                plan.remove.push(WalRemoval {
                    object: entry.name,
                    file: header.name,
                    size: entry.size,
                })
            }
            Ok(_) => plan.kept += 1,
            Err(e) => {
                plan.kept += 1;
                plan.warnings.push(format!("{e}; it is kept"));
            }
        }
    }
    plan.remove.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(plan)
}

/// Whether some backup of `backups` needs the WAL file `name` (§7.11).
pub(crate) fn needed(name: &str, backups: &[BaseBackup]) -> bool {
    if name.ends_with(".history") || name.len() < 24 {
        return true;
    }
    let Ok(timeline) = u32::from_str_radix(&name[..8], 16) else {
        return true;
    };
    let position = &name[8..24];
    backups
        .iter()
        .any(|b| b.timeline <= timeline && b.start_position() <= position)
}

/// Removes the objects of `plan`, checking before each that this process
/// still holds `lock`. An object already gone counts as removed. Returns
/// how many were removed.
pub fn remove_wal(repo: &Repository, plan: &WalPlan, lock: &Lock) -> Result<u64> {
    let mut removed = 0;
    for removal in &plan.remove {
        lock.ensure()?;
        match repo.backend().remove(FileKind::Wal, &removal.object) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == arca_backend::ErrorKind::NotFound => removed += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pg::Lsn;

    fn backup(start_wal: &str) -> BaseBackup {
        BaseBackup {
            format: 1,
            pg_version: "16".into(),
            timeline: u32::from_str_radix(&start_wal[..8], 16).unwrap_or(0),
            start_lsn: Lsn(0),
            start_wal: start_wal.into(),
            stop_lsn: Lsn(0),
            stop_timeline: 1,
            start_time: "2026-01-01T00:00:00Z".into(),
            stop_time: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn keeps_what_a_kept_backup_replays_and_history_files() {
        let b = [backup("000000020000000100000010")];
        // Timeline 2 from the start segment on.
        assert!(needed("000000020000000100000010", &b));
        assert!(needed("000000020000000200000000", &b));
        assert!(needed("000000020000000100000010.00000028.backup", &b));
        // Later timelines from there on.
        assert!(needed("000000030000000100000011", &b));
        assert!(needed("000000030000000100000011.partial", &b));
        // Before the start, or on an earlier timeline: not needed.
        assert!(!needed("00000002000000010000000F", &b));
        assert!(!needed("00000002000000000000FFFF", &b));
        assert!(!needed("000000010000000100000011", &b));
        assert!(!needed("00000001000000010000000F.partial", &b));
        // History files always.
        assert!(needed("00000001.history", &b));
        // Two backups: the union.
        let two = [backup("000000010000000000000005"), b[0].clone()];
        assert!(needed("000000010000000000000005", &two));
        assert!(!needed("000000010000000000000004", &two));
        assert!(needed("000000020000000000000006", &two));
    }
}
