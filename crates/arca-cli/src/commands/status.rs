//! `arca status`: the newest snapshot of each host and path set and how old
//! it is (the recovery point objective actually met), for people and for
//! monitoring. Reads snapshot files only, so it needs no index and no lock.

use std::collections::BTreeMap;

use anyhow::Result;
use arca_core::{Snapshot, SnapshotId};
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::config::Config;
use crate::{exit, output};

#[derive(Serialize)]
struct StatusJson {
    groups: Vec<GroupJson>,
    max_age_seconds: Option<u64>,
    ok: bool,
}

#[derive(Serialize)]
struct GroupJson {
    hostname: String,
    paths: Vec<String>,
    latest: LatestJson,
    age_seconds: u64,
    stale: bool,
}

#[derive(Serialize)]
struct LatestJson {
    id: String,
    short_id: String,
    time: String,
}

/// The newest snapshot of one (host, paths) group.
struct Group {
    hostname: String,
    paths: Vec<String>,
    id: SnapshotId,
    snapshot: Snapshot,
    age_seconds: u64,
}

pub fn run(config: &Config, args: StatusArgs) -> Result<i32> {
    let max_age = args
        .max_age
        .as_deref()
        .map(super::parse_duration)
        .transpose()?
        .map(|d| d.as_secs());
    let repo = super::open_unindexed(config)?;
    let filter = args.filter.filter();
    let groups = newest_per_group(repo.snapshots()?, &filter);
    let is_stale = |g: &Group| max_age.is_some_and(|max| g.age_seconds > max);
    let ok = !groups.iter().any(is_stale) && (max_age.is_none() || !groups.is_empty());

    if config.json {
        output::json(&StatusJson {
            groups: groups
                .iter()
                .map(|g| GroupJson {
                    hostname: g.hostname.clone(),
                    paths: g.paths.clone(),
                    latest: LatestJson {
                        id: g.id.to_hex(),
                        short_id: g.id.short(),
                        time: g.snapshot.time.to_rfc3339(),
                    },
                    age_seconds: g.age_seconds,
                    stale: is_stale(g),
                })
                .collect(),
            max_age_seconds: max_age,
            ok,
        });
    } else {
        print_table(&groups);
    }
    if groups.is_empty() {
        let message = format!(
            "arca: repository {} has no matching snapshots",
            output::sanitize(&repo.location())
        );
        // Only a failure under --max-age; otherwise just information.
        if max_age.is_some() {
            eprintln!("{message}");
        } else {
            config.note(message);
        }
    }
    for g in groups.iter().filter(|g| is_stale(g)) {
        eprintln!(
            "arca: {} {}: newest snapshot {} is {} old, more than {}",
            output::sanitize(&g.hostname),
            output::sanitize(&g.paths.join(",")),
            g.id.short(),
            super::format_age(g.age_seconds),
            super::format_age(max_age.unwrap_or(0)),
        );
    }
    Ok(if ok { exit::SUCCESS } else { exit::ERROR })
}

/// Groups the matching snapshots by host and paths and keeps the newest of
/// each; `snapshots` come oldest first.
fn newest_per_group(
    snapshots: Vec<(SnapshotId, Snapshot)>,
    filter: &super::SnapshotFilter,
) -> Vec<Group> {
    let mut newest: BTreeMap<(String, Vec<String>), (SnapshotId, Snapshot)> = BTreeMap::new();
    for (id, snap) in snapshots.into_iter().filter(|(_, s)| filter.matches(s)) {
        newest.insert((snap.hostname.clone(), snap.path_strings()), (id, snap));
    }
    newest
        .into_iter()
        .map(|((hostname, paths), (id, snapshot))| Group {
            hostname,
            paths,
            id,
            age_seconds: super::age_seconds(snapshot.time),
            snapshot,
        })
        .collect()
}

fn print_table(groups: &[Group]) {
    let rows: Vec<[String; 5]> = groups
        .iter()
        .map(|g| {
            [
                output::sanitize(&g.hostname),
                output::sanitize(&g.paths.join(",")),
                g.id.short(),
                g.snapshot.time.to_local_string(),
                super::format_age(g.age_seconds),
            ]
        })
        .collect();
    let host_w = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max(4);
    let paths_w = rows.iter().map(|r| r[1].len()).max().unwrap_or(0).max(5);
    output::line(format!(
        "{:<host_w$}  {:<paths_w$}  {:<8}  {:<19}  Age",
        "Host", "Paths", "Latest", "Time"
    ));
    for [host, paths, id, time, age] in &rows {
        output::line(format!(
            "{host:<host_w$}  {paths:<paths_w$}  {id:<8}  {time:<19}  {age}"
        ));
    }
}
