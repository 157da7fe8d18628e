use anyhow::Result;
use arca_core::RepairSnapshotsOptions;

use crate::cli::RepairCommand;
use crate::config::Config;
use crate::{output, session};

pub fn run(config: &Config, command: RepairCommand) -> Result<i32> {
    // The index may be what is broken: open without loading it.
    let mut repo = session::open_unindexed(config)?;
    let lock = session::lock(config, &repo, arca_core::LockMode::Exclusive, "repair")?;
    match command {
        RepairCommand::Index { dry_run } => {
            let report = arca_core::repair_index(&mut repo, dry_run, &lock)?;
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
        RepairCommand::Packs { packs, dry_run } => {
            let report = arca_core::repair_packs(&mut repo, &packs, dry_run, &lock)?;
            if config.json {
                output::json(&report);
            } else {
                for d in &report.damaged {
                    output::line(format!(
                        "{} {}: {} blob(s) {}, {} lost{}",
                        d.pack,
                        d.problem,
                        d.salvaged_blobs,
                        if dry_run {
                            "can be salvaged"
                        } else {
                            "salvaged"
                        },
                        d.lost_blobs,
                        if d.deleted { "; deleted" } else { "" }
                    ));
                }
                config.note(format!(
                    "read {} pack(s); {} damaged or missing{}",
                    report.packs_read,
                    report.damaged.len(),
                    if report.damaged.is_empty() || dry_run {
                        String::new()
                    } else {
                        "; next: arca repair snapshots --forget".to_string()
                    }
                ));
            }
        }
        RepairCommand::Snapshots { forget, dry_run } => {
            repo.load_index()?;
            let repaired = arca_core::repair_snapshots(
                &mut repo,
                RepairSnapshotsOptions { forget, dry_run },
                &lock,
            )?;
            if config.json {
                output::json(&repaired);
            } else {
                for r in &repaired {
                    if r.unreadable.is_some() {
                        let done = match (forget, dry_run) {
                            (true, false) => "removed",
                            (true, true) => "would be removed",
                            (false, _) => "cannot be read (--forget removes it)",
                        };
                        output::line(format!("snapshot {} {done}", &r.original[..8]));
                        continue;
                    }
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
