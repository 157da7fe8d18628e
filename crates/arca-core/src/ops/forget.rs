//! Forgetting snapshots: decide first ([`plan`] by a retention policy, or
//! [`plan_ids`] for snapshots named by id), show the decision, then carry
//! it out ([`execute`]).
//!
//! Forgetting removes snapshot files only; the data they alone used stays
//! until a prune. A snapshot file that does not decode can still be named
//! by id and removed.

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::repository::Repository;
use crate::retention::{self, GroupBy, GroupKey, Policy};
use crate::select::{SnapshotFilter, Spec, Which};
use crate::snapshot::Snapshot;

/// One snapshot in a plan.
#[derive(Clone, Debug)]
pub struct Planned {
    /// The snapshot's id.
    pub id: SnapshotId,
    /// The snapshot; `None` for a damaged file named by id, which is
    /// removed by its name alone.
    pub snapshot: Option<Snapshot>,
    /// Why it is kept, in rule order; empty for a snapshot to remove.
    pub reasons: Vec<String>,
}

/// What a plan decides for one group of snapshots.
#[derive(Clone, Debug)]
pub struct PlannedGroup {
    /// What the group's snapshots share (every field `None` for snapshots
    /// named by id).
    pub key: GroupKey,
    /// The snapshots kept, newest first.
    pub keep: Vec<Planned>,
    /// The snapshots to remove, newest first.
    pub remove: Vec<Planned>,
}

/// A decision on which snapshots to remove, before anything is removed.
#[derive(Clone, Debug)]
pub struct ForgetPlan {
    /// The policy decided by; `None` when snapshots were named by id.
    pub policy: Option<Policy>,
    /// The decision, group by group.
    pub groups: Vec<PlannedGroup>,
}

impl ForgetPlan {
    /// The ids of the snapshots to remove.
    pub fn removed(&self) -> Vec<SnapshotId> {
        self.groups
            .iter()
            .flat_map(|g| g.remove.iter().map(|p| p.id))
            .collect()
    }

    /// How many snapshots the plan keeps.
    pub fn kept(&self) -> usize {
        self.groups.iter().map(|g| g.keep.len()).sum()
    }
}

/// Decides by `policy`, group by group (`group_by`), for the snapshots
/// `filter` lets through; `now` is the reference for the policy's calendar
/// (pass `jiff::Zoned::now()`). Refuses a policy without any rule, which
/// would remove every snapshot.
pub fn plan(
    repo: &Repository,
    policy: &Policy,
    group_by: GroupBy,
    filter: &SnapshotFilter,
    now: &jiff::Zoned,
) -> Result<ForgetPlan> {
    if policy.is_empty() {
        return Err(Error::InvalidInput(
            "the policy has no rule: it would remove every snapshot".into(),
        ));
    }
    let considered = crate::select::matching(repo, filter)?;
    // By id: a repository of 5-minute snapshots holds tens of thousands.
    let by_id: std::collections::HashMap<SnapshotId, &Snapshot> =
        considered.iter().map(|(id, s)| (*id, s)).collect();
    let groups = retention::apply(&considered, policy, group_by, now)
        .into_iter()
        .map(|group| {
            let mut planned = PlannedGroup {
                key: group.key,
                keep: Vec::new(),
                remove: Vec::new(),
            };
            for d in group.decisions {
                let entry = Planned {
                    id: d.id,
                    snapshot: by_id.get(&d.id).map(|s| (*s).clone()),
                    reasons: d.reasons,
                };
                if d.keep {
                    planned.keep.push(entry);
                } else {
                    planned.remove.push(entry);
                }
            }
            planned
        })
        .collect();
    Ok(ForgetPlan {
        policy: Some(policy.clone()),
        groups,
    })
}

/// Plans the removal of the snapshots named by id or unique id prefix, as
/// one group. `latest` is refused: removing by a moving name is a mistake
/// waiting to happen. A snapshot file that does not decode is planned by
/// its name, with `snapshot` `None`; `damaged` is told its error.
pub fn plan_ids(
    repo: &Repository,
    specs: &[String],
    damaged: &mut dyn FnMut(&Error),
) -> Result<ForgetPlan> {
    let mut remove: Vec<Planned> = Vec::new();
    for text in specs {
        let spec = Spec::parse(text, false)?;
        let Which::Id(prefix) = spec.which else {
            return Err(Error::InvalidInput(
                "forget needs snapshot ids, not \"latest\"".into(),
            ));
        };
        let id = repo.resolve_snapshot_id(&prefix)?;
        if remove.iter().any(|p| p.id == id) {
            continue;
        }
        let snapshot = match repo.load_snapshot(&id) {
            Ok(snapshot) => Some(snapshot),
            Err(e @ Error::Corrupt { .. }) => {
                damaged(&e);
                None
            }
            Err(e) => return Err(e),
        };
        remove.push(Planned {
            id,
            snapshot,
            reasons: Vec::new(),
        });
    }
    Ok(ForgetPlan {
        policy: None,
        groups: vec![PlannedGroup {
            key: GroupKey {
                hostname: None,
                paths: None,
                tags: None,
            },
            keep: Vec::new(),
            remove,
        }],
    })
}

/// Removes the snapshots the plan removes; returns how many. Forgetting
/// needs no lock: it only removes snapshot files, which every other
/// operation already tolerates disappearing (docs/concurrency.md), so a
/// nightly forget never waits for another host's prune. A snapshot already
/// gone counts as removed.
pub fn execute(repo: &Repository, plan: &ForgetPlan) -> Result<usize> {
    let removed = plan.removed();
    for id in &removed {
        repo.remove_snapshot(id)?;
    }
    Ok(removed.len())
}
