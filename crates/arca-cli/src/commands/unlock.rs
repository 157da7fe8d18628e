use anyhow::Result;
use serde::Serialize;

use crate::cli::UnlockArgs;
use crate::config::Config;
use crate::{exit, output, session};

#[derive(Serialize)]
struct Removed {
    name: String,
    /// Who held it, or why it could not be read.
    holder: String,
}

pub fn run(config: &Config, args: UnlockArgs) -> Result<i32> {
    let repo = session::open_unindexed(config)?;
    let removed = arca_core::remove_locks(&repo, args.remove_all, &session::hostname())?;
    let removed: Vec<Removed> = removed
        .into_iter()
        .map(|lock| Removed {
            holder: match &lock.record {
                Ok(record) => record.describe(),
                Err(reason) => format!("unreadable: {reason}"),
            },
            name: lock.name,
        })
        .collect();
    if config.json {
        output::json(&removed);
    } else if !config.quiet {
        for r in &removed {
            output::line(format!(
                "removed lock {} held by {}",
                &r.name[..r.name.len().min(16)],
                output::sanitize(&r.holder)
            ));
        }
        config.note(format!("removed {} lock(s)", removed.len()));
    }
    Ok(exit::SUCCESS)
}
