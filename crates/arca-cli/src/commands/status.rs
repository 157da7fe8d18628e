//! `arca status`: the newest snapshot of each host and path set and how old
//! it is (the recovery point objective actually met), for people and for
//! monitoring. Reads snapshot files only, so it needs no index and no lock.

use anyhow::Result;
use arca_core::select::{self, GroupNewest};
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::config::Config;
use crate::{exit, output, session, units};

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

/// The newest snapshot of one (host, paths) group, and its age.
struct Group {
    newest: GroupNewest,
    age_seconds: u64,
}

pub fn run(config: &Config, args: StatusArgs) -> Result<i32> {
    let max_age = args.max_age.map(|d| d.0.as_secs());
    let repo = session::open_unindexed(config)?;
    let groups: Vec<Group> =
        select::newest_per_group(select::matching(&repo, &args.filter.filter())?)
            .into_iter()
            .map(|newest| Group {
                age_seconds: units::age_seconds(newest.snapshot.time),
                newest,
            })
            .collect();
    let is_stale = |g: &Group| max_age.is_some_and(|max| g.age_seconds > max);
    let ok = !groups.iter().any(is_stale) && (max_age.is_none() || !groups.is_empty());

    if config.json {
        output::json(&StatusJson {
            groups: groups
                .iter()
                .map(|g| GroupJson {
                    hostname: g.newest.hostname.clone(),
                    paths: g.newest.paths.clone(),
                    latest: LatestJson {
                        id: g.newest.id.to_hex(),
                        short_id: g.newest.id.short(),
                        time: g.newest.snapshot.time.to_rfc3339(),
                    },
                    age_seconds: g.age_seconds,
                    stale: is_stale(g),
                })
                .collect(),
            max_age_seconds: max_age,
            ok,
        });
    } else if !config.quiet {
        // Under -q a monitoring check says only what is wrong.
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
            output::sanitize(&g.newest.hostname),
            output::sanitize(&g.newest.paths.join(",")),
            g.newest.id.short(),
            units::format_age(g.age_seconds),
            units::format_age(max_age.unwrap_or(0)),
        );
    }
    Ok(if ok { exit::SUCCESS } else { exit::ERROR })
}

fn print_table(groups: &[Group]) {
    let rows: Vec<[String; 5]> = groups
        .iter()
        .map(|g| {
            [
                output::sanitize(&g.newest.hostname),
                output::sanitize(&g.newest.paths.join(",")),
                g.newest.id.short(),
                g.newest.snapshot.time.to_local_string(),
                units::format_age(g.age_seconds),
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
