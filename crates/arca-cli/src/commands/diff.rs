use anyhow::Result;
use arca_core::Change;
use serde::Serialize;

use crate::cli::DiffArgs;
use crate::config::Config;
use crate::{output, session};

#[derive(Serialize, Default)]
struct Counts {
    added: usize,
    removed: usize,
    modified: usize,
    metadata: usize,
    #[serde(rename = "type")]
    kind: usize,
}

#[derive(Serialize)]
struct DiffJson {
    first: String,
    second: String,
    changes: Vec<arca_core::Difference>,
    counts: Counts,
}

pub fn run(config: &Config, args: DiffArgs) -> Result<i32> {
    output::listing();
    let repo = session::open(config)?;
    let filter = args.filter.filter();
    let (a_id, a) = arca_core::select::resolve(&repo, &args.first.which, &filter)?;
    let (b_id, b) = arca_core::select::resolve(&repo, &args.second.which, &filter)?;
    let changes = arca_core::diff(&repo, &a.tree, &b.tree)?;
    let mut counts = Counts::default();
    for c in &changes {
        match c.change {
            Change::Added => counts.added += 1,
            Change::Removed => counts.removed += 1,
            Change::Modified => counts.modified += 1,
            Change::Metadata => counts.metadata += 1,
            Change::Type => counts.kind += 1,
        }
    }
    if config.json {
        output::json(&DiffJson {
            first: a_id.to_hex(),
            second: b_id.to_hex(),
            changes,
            counts,
        });
        return Ok(crate::exit::SUCCESS);
    }
    for c in &changes {
        let mark = match c.change {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Metadata => 'U',
            Change::Type => 'T',
        };
        output::line(output::sanitize(&format!(
            "{mark}  {}",
            c.path.to_string_lossy()
        )));
    }
    config.note(format!(
        "{} added, {} removed, {} modified, {} metadata only, {} type changed",
        counts.added, counts.removed, counts.modified, counts.metadata, counts.kind
    ));
    Ok(crate::exit::SUCCESS)
}
