use anyhow::{Context, Result, bail};
use arca_core::retention::{self, GroupBy, GroupKey, Policy, Span};
use arca_core::{Snapshot, SnapshotId};
use serde::Serialize;

use super::SnapshotFilter;
use crate::cli::ForgetArgs;
use crate::config::Config;
use crate::{exit, output};

/// One snapshot in `forget --json`.
#[derive(Serialize)]
struct SnapJson {
    id: String,
    short_id: String,
    time: String,
    /// The time in the local zone, for the table.
    #[serde(skip)]
    local_time: String,
    hostname: String,
    paths: Vec<String>,
    tags: Vec<String>,
    /// Why it is kept (empty for removed snapshots).
    reasons: Vec<String>,
}

#[derive(Serialize)]
pub(crate) struct GroupJson {
    key: GroupKey,
    keep: Vec<SnapJson>,
    remove: Vec<SnapJson>,
}

/// `forget --json`; field names are part of the CLI contract.
#[derive(Serialize)]
struct ForgetJson {
    dry_run: bool,
    /// The policy applied (absent when snapshots were named by id).
    policy: Option<String>,
    groups: Vec<GroupJson>,
    /// Ids of the snapshots removed (or, for a dry run, to remove).
    removed: Vec<String>,
    prune: Option<super::prune::PruneJson>,
}

pub fn run(config: &Config, args: ForgetArgs) -> Result<i32> {
    let prune_options = super::prune::resolve(&args.prune_options)?;
    // A bad --keep-* value is a usage error (exit 2), like clap's own.
    let policy = policy(&args).map_err(|e| exit::Usage(format!("{e:#}")))?;
    if args.ids.is_empty() && policy.is_empty() {
        eprintln!(
            "arca: no policy given: name snapshot ids or give at least one --keep-* option (an empty policy would forget every snapshot)"
        );
        return Ok(exit::USAGE);
    }
    let group_by: GroupBy = args
        .group_by
        .parse()
        .with_context(|| format!("invalid --group-by {:?}", args.group_by))?;
    let mut repo = super::open_unindexed(config)?;
    let snapshots = repo.snapshots()?;
    let groups = if args.ids.is_empty() {
        let filter = SnapshotFilter {
            host: args.host.as_deref(),
            paths: &args.paths,
            tags: &args.tags,
        };
        by_policy(&snapshots, &policy, group_by, &filter)
    } else {
        by_id(&repo, &args.ids)?
    };
    let removed = removed(&groups);
    let mut report = ForgetJson {
        dry_run: args.dry_run,
        policy: args.ids.is_empty().then(|| policy.to_string()),
        groups,
        removed,
        prune: None,
    };
    if !config.json {
        print(config, &report);
    }
    if !args.dry_run {
        remove(&repo, &report.removed)?;
        let m = &config.metrics;
        m.set(
            &crate::metrics::SNAPSHOTS_REMOVED,
            report.removed.len() as f64,
        );
        // Snapshots named by id are removed without a policy keeping any.
        if report.policy.is_some() {
            let kept: usize = report.groups.iter().map(|g| g.keep.len()).sum();
            m.set(&crate::metrics::SNAPSHOTS_KEPT, kept as f64);
        }
        if !config.json && !report.removed.is_empty() {
            config.note(format!("removed {} snapshot(s)", report.removed.len()));
        }
    }
    if args.prune {
        if args.dry_run {
            config.note("prune skipped: this was a dry run");
        } else {
            let pruned = super::prune::prune(config, &mut repo, &prune_options, false)?;
            if !config.json {
                super::prune::print(config, &pruned, &prune_options);
            }
            report.prune = Some(pruned);
        }
    }
    if config.json {
        output::json(&report);
    }
    Ok(exit::SUCCESS)
}

/// What `policy` decides for the snapshots `filter` selects, group by group.
pub(crate) fn by_policy(
    snapshots: &[(SnapshotId, Snapshot)],
    policy: &Policy,
    group_by: GroupBy,
    filter: &SnapshotFilter,
) -> Vec<GroupJson> {
    let considered: Vec<(SnapshotId, Snapshot)> = snapshots
        .iter()
        .filter(|(_, s)| filter.matches(s))
        .cloned()
        .collect();
    retention::apply(&considered, policy, group_by, &jiff::Zoned::now())
        .iter()
        .map(|g| group_json(g, snapshots))
        .collect()
}

/// The ids (hex) of the snapshots the groups remove.
pub(crate) fn removed(groups: &[GroupJson]) -> Vec<String> {
    groups
        .iter()
        .flat_map(|g| g.remove.iter().map(|s| s.id.clone()))
        .collect()
}

/// How many snapshots the groups keep.
pub(crate) fn kept(groups: &[GroupJson]) -> usize {
    groups.iter().map(|g| g.keep.len()).sum()
}

/// Removes the snapshots with these ids (hex).
pub(crate) fn remove(repo: &arca_core::Repository, ids: &[String]) -> Result<()> {
    for id in ids {
        let id = arca_core::Id::from_hex(id)
            .map(SnapshotId)
            .with_context(|| format!("snapshot id {id:?}"))?;
        repo.remove_snapshot(&id)?;
    }
    Ok(())
}

/// The policy from the `--keep-*` options.
fn policy(args: &ForgetArgs) -> Result<Policy> {
    let count = |value: &Option<String>, flag: &str| -> Result<Option<i64>> {
        value
            .as_deref()
            .map(|v| retention::parse_count(v).with_context(|| format!("invalid --keep-{flag}")))
            .transpose()
    };
    let span = |value: &Option<String>, flag: &str| -> Result<Option<Span>> {
        value
            .as_deref()
            .map(|v| {
                v.parse::<Span>()
                    .with_context(|| format!("invalid --keep-{flag}"))
            })
            .transpose()
    };
    Ok(Policy {
        last: count(&args.keep_last, "last")?,
        hourly: count(&args.keep_hourly, "hourly")?,
        daily: count(&args.keep_daily, "daily")?,
        weekly: count(&args.keep_weekly, "weekly")?,
        monthly: count(&args.keep_monthly, "monthly")?,
        yearly: count(&args.keep_yearly, "yearly")?,
        within: span(&args.keep_within, "within")?,
        within_hourly: span(&args.keep_within_hourly, "within-hourly")?,
        within_daily: span(&args.keep_within_daily, "within-daily")?,
        within_weekly: span(&args.keep_within_weekly, "within-weekly")?,
        within_monthly: span(&args.keep_within_monthly, "within-monthly")?,
        within_yearly: span(&args.keep_within_yearly, "within-yearly")?,
        tags: args
            .keep_tags
            .iter()
            .map(|t| retention::parse_tag_list(t).context("invalid --keep-tag"))
            .collect::<Result<_>>()?,
    })
}

fn snap_json(id: &SnapshotId, snap: &Snapshot, reasons: Vec<String>) -> SnapJson {
    SnapJson {
        id: id.to_hex(),
        short_id: id.short(),
        time: snap.time.to_rfc3339(),
        local_time: snap.time.to_local_string(),
        hostname: snap.hostname.clone(),
        paths: snap.path_strings(),
        tags: snap.tags.clone(),
        reasons,
    }
}

/// A snapshot file that does not load: only its id is known.
fn damaged_json(id: &SnapshotId) -> SnapJson {
    SnapJson {
        id: id.to_hex(),
        short_id: id.short(),
        time: String::new(),
        local_time: "(damaged)".into(),
        hostname: String::new(),
        paths: Vec::new(),
        tags: Vec::new(),
        reasons: Vec::new(),
    }
}

fn group_json(group: &retention::Group, snapshots: &[(SnapshotId, Snapshot)]) -> GroupJson {
    let find = |id: &SnapshotId| snapshots.iter().find(|(i, _)| i == id).map(|(_, s)| s);
    let mut out = GroupJson {
        key: group.key.clone(),
        keep: Vec::new(),
        remove: Vec::new(),
    };
    for d in &group.decisions {
        let Some(snap) = find(&d.id) else { continue };
        if d.keep {
            out.keep.push(snap_json(&d.id, snap, d.reasons.clone()));
        } else {
            out.remove.push(snap_json(&d.id, snap, Vec::new()));
        }
    }
    out
}

/// The snapshots named on the command line, as one group to remove.
fn by_id(repo: &arca_core::Repository, ids: &[String]) -> Result<Vec<GroupJson>> {
    let mut remove: Vec<SnapJson> = Vec::new();
    for spec in ids {
        if spec == "latest" {
            bail!("forget needs snapshot ids, not \"latest\"");
        }
        let id = repo.resolve_snapshot_id(spec)?;
        if remove.iter().any(|s| s.id == id.to_hex()) {
            continue;
        }
        match repo.load_snapshot(&id) {
            Ok(snap) => remove.push(snap_json(&id, &snap, Vec::new())),
            // A damaged snapshot file is removed by its name alone.
            Err(e @ arca_core::Error::Corrupt { .. }) => {
                eprintln!(
                    "arca: warning: {}; removing it by name",
                    output::sanitize(&e.to_string())
                );
                remove.push(damaged_json(&id));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(vec![GroupJson {
        key: GroupKey {
            hostname: None,
            paths: None,
            tags: None,
        },
        keep: Vec::new(),
        remove,
    }])
}

fn print(config: &Config, report: &ForgetJson) {
    let would = if report.dry_run { "would " } else { "" };
    for group in &report.groups {
        if report.policy.is_some() {
            output::line(format!(
                "snapshots of {}:",
                output::sanitize(&group.key.to_string())
            ));
        }
        if !group.keep.is_empty() {
            output::line(format!("keep {} snapshot(s):", group.keep.len()));
            table(&group.keep, true);
        }
        if !group.remove.is_empty() {
            output::line(format!("{would}remove {} snapshot(s):", group.remove.len()));
            table(&group.remove, false);
        }
        output::line("");
    }
    if report.removed.is_empty() {
        config.note("no snapshots to remove");
    }
}

fn table(rows: &[SnapJson], reasons: bool) {
    for s in rows {
        let tags = if s.tags.is_empty() {
            "-".to_string()
        } else {
            s.tags.join(",")
        };
        let mut line = format!(
            "  {}  {}  {:<12} {:<16}",
            s.short_id,
            s.local_time,
            output::sanitize(&s.hostname),
            output::sanitize(&tags)
        );
        if reasons {
            line.push_str(&s.reasons.join(", "));
        }
        output::line(line.trim_end());
    }
}
