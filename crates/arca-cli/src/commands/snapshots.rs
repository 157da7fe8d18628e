use anyhow::Result;
use serde::Serialize;

use crate::cli::SnapshotsArgs;
use crate::config::Config;
use crate::json::SnapshotJson;
use crate::{output, session};

pub fn run(config: &Config, args: SnapshotsArgs) -> Result<i32> {
    let repo = session::open(config)?;
    let snapshots = arca_core::select::matching(&repo, &args.filter.filter())?;
    if config.json {
        let list: Vec<SnapshotJson> = snapshots
            .iter()
            .map(|(id, s)| SnapshotJson::new(Some(id), s))
            .collect();
        output::json(&list);
        return Ok(crate::exit::SUCCESS);
    }
    print_table(&snapshots);
    Ok(crate::exit::SUCCESS)
}

#[derive(Serialize)]
struct Row {
    id: String,
    time: String,
    host: String,
    tags: String,
    paths: Vec<String>,
}

fn print_table(snapshots: &[(arca_core::SnapshotId, arca_core::Snapshot)]) {
    let rows: Vec<Row> = snapshots
        .iter()
        .map(|(id, s)| Row {
            id: id.short(),
            time: s.time.to_local_string(),
            host: output::sanitize(&s.hostname),
            tags: output::sanitize(&s.tags.join(",")),
            paths: s
                .path_strings()
                .iter()
                .map(|p| output::sanitize(p))
                .collect(),
        })
        .collect();
    let host_w = rows.iter().map(|r| r.host.len()).max().unwrap_or(0).max(4);
    let tags_w = rows.iter().map(|r| r.tags.len()).max().unwrap_or(0).max(4);
    let header = format!(
        "{:<8}  {:<19}  {:<host_w$}  {:<tags_w$}  Paths",
        "ID", "Time", "Host", "Tags"
    );
    output::line(&header);
    output::line("-".repeat(header.len() + 10));
    for row in &rows {
        let mut paths = row.paths.iter();
        let first = paths.next().map(String::as_str).unwrap_or("");
        output::line(format!(
            "{:<8}  {:<19}  {:<host_w$}  {:<tags_w$}  {first}",
            row.id, row.time, row.host, row.tags
        ));
        for more in paths {
            output::line(format!(
                "{:<8}  {:<19}  {:<host_w$}  {:<tags_w$}  {more}",
                "", "", "", ""
            ));
        }
    }
    output::line("-".repeat(header.len() + 10));
    let n = rows.len();
    output::line(format!("{n} snapshot{}", if n == 1 { "" } else { "s" }));
}
