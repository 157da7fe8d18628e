//! Which snapshot the user means: one resolver for every command.
//!
//! A snapshot is named by a full id or a unique id prefix, by `latest` (the
//! newest snapshot that a [`SnapshotFilter`] lets through), or by a time
//! (`--as-of`: the newest at or before it). A [`Spec`] may carry a path
//! inside the snapshot (`SNAP:PATH`). An id names its snapshot whatever the
//! filter says; the filter narrows only `latest` and times.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::time::Time;

/// Which snapshots a command considers: all of the given conditions hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotFilter {
    /// Only snapshots of this host.
    pub host: Option<String>,
    /// Only snapshots that carry every one of these tags.
    pub tags: Vec<String>,
    /// Only snapshots whose paths include every one of these.
    pub paths: Vec<String>,
}

impl SnapshotFilter {
    /// A filter that lets every snapshot through.
    pub fn all() -> SnapshotFilter {
        SnapshotFilter::default()
    }

    /// Whether the filter has no condition.
    pub fn is_empty(&self) -> bool {
        self.host.is_none() && self.tags.is_empty() && self.paths.is_empty()
    }

    /// Whether `snapshot` passes every condition.
    pub fn matches(&self, snapshot: &Snapshot) -> bool {
        let paths = snapshot.path_strings();
        self.host.as_ref().is_none_or(|h| snapshot.hostname == *h)
            && self.tags.iter().all(|t| snapshot.tags.contains(t))
            && self.paths.iter().all(|p| paths.contains(p))
    }

    /// The conditions in words, for messages: `host db1, tag nightly`.
    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(host) = &self.host {
            parts.push(format!("host {host}"));
        }
        parts.extend(self.tags.iter().map(|t| format!("tag {t}")));
        parts.extend(self.paths.iter().map(|p| format!("path {p}")));
        parts.join(", ")
    }
}

/// How a snapshot is named, before it is looked up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Which {
    /// The newest snapshot the filter lets through.
    Latest,
    /// A full id or a unique id prefix (hexadecimal).
    Id(String),
    /// The newest snapshot taken at or before this time that the filter
    /// lets through; it must be the only (host, paths) group with one.
    AsOf(Time),
}

/// A snapshot name with an optional path inside the snapshot: what
/// `SNAP` or `SNAP:PATH` on a command line says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    /// Which snapshot.
    pub which: Which,
    /// A stored path inside it (`SNAP:PATH`); `None` for the whole snapshot.
    pub path: Option<PathBuf>,
}

impl Spec {
    /// `latest`, without a path.
    pub fn latest() -> Spec {
        Spec {
            which: Which::Latest,
            path: None,
        }
    }

    /// The newest snapshot at or before `time`, without a path.
    pub fn as_of(time: Time) -> Spec {
        Spec {
            which: Which::AsOf(time),
            path: None,
        }
    }

    /// Parses `latest`, an id or id prefix, or either followed by `:PATH`
    /// when `with_path` allows it.
    pub fn parse(text: &str, with_path: bool) -> Result<Spec> {
        let (name, path) = match text.split_once(':') {
            Some((name, path)) if with_path => (name, Some(PathBuf::from(path))),
            _ => (text, None),
        };
        let which = if name == "latest" {
            Which::Latest
        } else if !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            Which::Id(name.to_ascii_lowercase())
        } else {
            return Err(Error::InvalidInput(format!(
                "{text:?} is not a snapshot id, id prefix or \"latest\""
            )));
        };
        Ok(Spec { which, path })
    }
}

impl std::str::FromStr for Spec {
    type Err = Error;

    /// Parses a snapshot name without a path (see [`Spec::parse`]).
    fn from_str(text: &str) -> Result<Spec> {
        Spec::parse(text, false)
    }
}

/// The snapshots `filter` lets through, oldest first.
pub fn matching(repo: &Repository, filter: &SnapshotFilter) -> Result<Vec<(SnapshotId, Snapshot)>> {
    Ok(repo
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .collect())
}

/// Looks up the snapshot `which` names. An id names its snapshot whatever
/// `filter` says; `latest` and times are narrowed by it.
pub fn resolve(
    repo: &Repository,
    which: &Which,
    filter: &SnapshotFilter,
) -> Result<(SnapshotId, Snapshot)> {
    match which {
        Which::Id(prefix) => {
            let id = repo.resolve_snapshot_id(prefix)?;
            Ok((id, repo.load_snapshot(&id)?))
        }
        Which::Latest => matching(repo, filter)?
            .pop()
            .ok_or_else(|| none_match(repo, filter)),
        Which::AsOf(time) => {
            let mut candidates = matching(repo, filter)?;
            candidates.retain(|(_, s)| s.time <= *time);
            let groups = newest_per_group(candidates.clone());
            if groups.len() > 1 {
                let list: Vec<String> = groups
                    .iter()
                    .map(|g| format!("{}:{}", g.hostname, g.paths.join(",")))
                    .collect();
                return Err(Error::InvalidInput(format!(
                    "--as-of matches snapshots of {} hosts or path sets ({}); narrow it with --host or --path",
                    groups.len(),
                    list.join("; ")
                )));
            }
            candidates.pop().ok_or_else(|| {
                Error::NotFound(format!(
                    "no snapshot taken at or before {time} matches in repository {}",
                    repo.location()
                ))
            })
        }
    }
}

/// The error for a filter that no snapshot passes.
fn none_match(repo: &Repository, filter: &SnapshotFilter) -> Error {
    if filter.is_empty() {
        Error::NotFound(format!("repository {} has no snapshots", repo.location()))
    } else {
        Error::NotFound(format!(
            "repository {} has no snapshot matching {}",
            repo.location(),
            filter.describe()
        ))
    }
}

/// The newest snapshot of one (host, paths) group.
#[derive(Clone, Debug)]
pub struct GroupNewest {
    /// The host the group's snapshots were taken on.
    pub hostname: String,
    /// The group's backed-up paths, as stored.
    pub paths: Vec<String>,
    /// The newest snapshot's id.
    pub id: SnapshotId,
    /// The newest snapshot.
    pub snapshot: Snapshot,
}

/// Groups snapshots by host and paths and keeps the newest of each; groups
/// come sorted by host, then paths. `snapshots` must be oldest first (as
/// [`Repository::snapshots`] returns them).
pub fn newest_per_group(snapshots: Vec<(SnapshotId, Snapshot)>) -> Vec<GroupNewest> {
    let mut newest: BTreeMap<(String, Vec<String>), (SnapshotId, Snapshot)> = BTreeMap::new();
    for (id, snap) in snapshots {
        newest.insert((snap.hostname.clone(), snap.path_strings()), (id, snap));
    }
    newest
        .into_iter()
        .map(|((hostname, paths), (id, snapshot))| GroupNewest {
            hostname,
            paths,
            id,
            snapshot,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_names_and_paths() {
        assert_eq!(Spec::parse("latest", false).unwrap(), Spec::latest());
        let s = Spec::parse("1A2b:/srv/db", true).unwrap();
        assert_eq!(s.which, Which::Id("1a2b".into()));
        assert_eq!(s.path, Some(PathBuf::from("/srv/db")));
        let s = Spec::parse("latest:/etc", true).unwrap();
        assert_eq!(s.which, Which::Latest);
        assert!(Spec::parse("1a2b:/srv", false).is_err());
        for bad in ["", "newest", "xyz", ":/srv"] {
            assert!(Spec::parse(bad, true).is_err(), "{bad}");
        }
    }
}
