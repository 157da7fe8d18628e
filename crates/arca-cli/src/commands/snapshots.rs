//! `arca snapshots`: the snapshots, oldest first, as a table or JSON;
//! optionally the newest few of each group, or group by group.

use anyhow::Result;
use arca_core::retention::{self, GroupBy, GroupKey};
use arca_core::{Snapshot, SnapshotId};
use indicatif::HumanBytes;
use serde::Serialize;

use crate::cli::SnapshotsArgs;
use crate::config::Config;
use crate::json::SnapshotJson;
use crate::{output, session};

/// One group of `snapshots --group-by --json`.
#[derive(Serialize)]
struct GroupJson<'a> {
    key: &'a GroupKey,
    snapshots: Vec<SnapshotJson<'a>>,
}

pub fn run(config: &Config, args: SnapshotsArgs) -> Result<i32> {
    output::listing();
    let repo = session::open(config)?;
    let snapshots = arca_core::select::matching(&repo, &args.filter.filter())?;
    let by = args.group_by.map_or_else(GroupBy::default, |g| g.0);
    // Each group oldest first, keeping the newest `latest` of it.
    let groups: Vec<(GroupKey, Vec<(SnapshotId, Snapshot)>)> = retention::group(&snapshots, by)
        .into_iter()
        .map(|(key, mut members)| {
            if let Some(n) = args.latest {
                members.truncate(n as usize);
            }
            members.reverse();
            (key, members)
        })
        .collect();
    if args.group_by.is_some() {
        if config.json {
            let list: Vec<GroupJson> = groups
                .iter()
                .map(|(key, members)| GroupJson {
                    key,
                    snapshots: members
                        .iter()
                        .map(|(id, s)| SnapshotJson::new(Some(id), s))
                        .collect(),
                })
                .collect();
            output::json(&list);
        } else {
            for (key, members) in &groups {
                output::line(format!(
                    "snapshots of {}:",
                    output::sanitize(&key.to_string())
                ));
                print_table(members);
                output::line("");
            }
        }
        return Ok(crate::exit::SUCCESS);
    }
    let mut shown: Vec<(SnapshotId, Snapshot)> = if args.latest.is_some() {
        groups
            .into_iter()
            .flat_map(|(_, members)| members)
            .collect()
    } else {
        snapshots
    };
    // The repository's order: by time, a replacement after what it replaces.
    shown.sort_by(|a, b| {
        a.1.time
            .cmp(&b.1.time)
            .then(a.1.original.is_some().cmp(&b.1.original.is_some()))
            .then(a.0.cmp(&b.0))
    });
    if config.json {
        let list: Vec<SnapshotJson> = shown
            .iter()
            .map(|(id, s)| SnapshotJson::new(Some(id), s))
            .collect();
        output::json(&list);
        return Ok(crate::exit::SUCCESS);
    }
    print_table(&shown);
    Ok(crate::exit::SUCCESS)
}

#[derive(Serialize)]
struct Row {
    id: String,
    time: String,
    host: String,
    tags: String,
    added: String,
    paths: Vec<String>,
}

fn print_table(snapshots: &[(SnapshotId, Snapshot)]) {
    let rows: Vec<Row> = snapshots
        .iter()
        .map(|(id, s)| Row {
            id: id.short(),
            time: s.time.to_local_string(),
            host: output::sanitize(&s.hostname),
            tags: output::sanitize(&s.tags.join(",")),
            added: s.summary.as_ref().map_or_else(
                || "-".to_string(),
                |sum| HumanBytes(sum.bytes_added).to_string(),
            ),
            paths: s
                .path_strings()
                .iter()
                .map(|p| output::sanitize(p))
                .collect(),
        })
        .collect();
    let host_w = rows.iter().map(|r| r.host.len()).max().unwrap_or(0).max(4);
    let tags_w = rows.iter().map(|r| r.tags.len()).max().unwrap_or(0).max(4);
    let added_w = rows.iter().map(|r| r.added.len()).max().unwrap_or(0).max(5);
    let header = format!(
        "{:<8}  {:<19}  {:<host_w$}  {:<tags_w$}  {:>added_w$}  Paths",
        "ID", "Time", "Host", "Tags", "Added"
    );
    output::line(&header);
    output::line("-".repeat(header.len() + 10));
    for row in &rows {
        let mut paths = row.paths.iter();
        let first = paths.next().map(String::as_str).unwrap_or("");
        output::line(format!(
            "{:<8}  {:<19}  {:<host_w$}  {:<tags_w$}  {:>added_w$}  {first}",
            row.id, row.time, row.host, row.tags, row.added
        ));
        for more in paths {
            output::line(format!(
                "{:<8}  {:<19}  {:<host_w$}  {:<tags_w$}  {:>added_w$}  {more}",
                "", "", "", "", ""
            ));
        }
    }
    output::line("-".repeat(header.len() + 10));
    let n = rows.len();
    output::line(format!("{n} snapshot{}", if n == 1 { "" } else { "s" }));
}
