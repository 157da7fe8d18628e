use anyhow::Result;
use arca_core::{Finder, Pattern};
use serde::Serialize;

use crate::cli::FindArgs;
use crate::config::Config;
use crate::json::kind_name;
use crate::{output, session};

/// One match as `find --json` prints it (one object a line).
#[derive(Serialize)]
struct MatchJson<'a> {
    snapshot: String,
    time: String,
    hostname: &'a str,
    path: String,
    #[serde(rename = "type")]
    kind: &'static str,
    size: u64,
    mtime: String,
}

pub fn run(config: &Config, args: FindArgs) -> Result<i32> {
    output::listing();
    let repo = session::open(config)?;
    let filter = args.filter.filter();
    let snapshots = if args.snapshots.is_empty() {
        arca_core::select::matching(&repo, &filter)?
    } else {
        args.snapshots
            .iter()
            .map(|spec| arca_core::select::resolve(&repo, &spec.which, &filter))
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut finder = Finder::new(&repo, Pattern::new(&args.pattern)?);
    let mut total = 0;
    for (id, snap) in &snapshots {
        let found = finder.find(&snap.tree)?;
        if found.is_empty() {
            continue;
        }
        total += found.len();
        if !config.json {
            output::line(format!(
                "snapshot {} of {} at {}:",
                id.short(),
                output::sanitize(&snap.hostname),
                snap.time.to_local_string()
            ));
        }
        for (path, node) in &found {
            let mtime = arca_core::Time {
                at: node.mtime,
                offset_seconds: 0,
            };
            let shown = path.to_string_lossy().into_owned();
            if config.json {
                output::json_line(&MatchJson {
                    snapshot: id.to_hex(),
                    time: snap.time.to_rfc3339(),
                    hostname: &snap.hostname,
                    path: shown,
                    kind: kind_name(node.kind),
                    size: node.size,
                    mtime: mtime.to_rfc3339(),
                });
            } else {
                output::line(output::sanitize(&format!(
                    "  {:>12}  {}  {shown}",
                    node.size,
                    mtime.to_local_string()
                )));
            }
        }
    }
    if !config.json {
        config.note(format!(
            "{total} match(es) in {} snapshot(s) searched",
            snapshots.len()
        ));
    }
    Ok(crate::exit::SUCCESS)
}
