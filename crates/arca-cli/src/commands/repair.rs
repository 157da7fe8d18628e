use anyhow::Result;
use arca_core::RepairSnapshotsOptions;

use crate::cli::RepairCommand;
use crate::config::Config;
use crate::output;

pub fn run(config: &Config, command: RepairCommand) -> Result<i32> {
    // The index may be what is broken: open without loading it.
    let mut repo = super::open_unindexed(config)?;
    let _lock = super::lock(config, &repo, arca_core::LockMode::Exclusive, "repair")?;
    match command {
        RepairCommand::Index { dry_run } => {
            let report = arca_core::repair_index(&mut repo, dry_run)?;
            for bad in &report.unreadable {
                eprintln!("arca: warning: left out: {}", output::sanitize(bad));
            }
            if config.json {
                output::json(&report);
            } else {
                config.note(format!(
                    "{} {} packs with {} blobs{}",
                    if dry_run { "would index" } else { "indexed" },
                    report.packs,
                    report.blobs,
                    if dry_run {
                        String::new()
                    } else {
                        format!("; replaced {} old index files", report.removed_index_files)
                    }
                ));
            }
        }
        RepairCommand::Snapshots { forget, dry_run } => {
            repo.load_index()?;
            let repaired =
                arca_core::repair_snapshots(&mut repo, RepairSnapshotsOptions { forget, dry_run })?;
            if config.json {
                output::json(&repaired);
            } else {
                for r in &repaired {
                    let new = r
                        .repaired
                        .as_deref()
                        .map_or("(dry run)".to_string(), |id| id[..8].to_string());
                    output::line(format!("snapshot {} -> {new}", &r.original[..8]));
                    for path in &r.damaged {
                        output::line(format!("  damaged: {}", output::sanitize(path)));
                    }
                }
                config.note(format!("{} snapshot(s) needed repair", repaired.len()));
            }
        }
    }
    Ok(crate::exit::SUCCESS)
}
