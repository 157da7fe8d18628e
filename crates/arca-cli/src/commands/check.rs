//! `arca check`: verify the repository's structure, and with
//! `--read-data` its bytes.

use anyhow::Result;
use arca_core::Subset;
use indicatif::HumanBytes;

use crate::cli::CheckArgs;
use crate::config::Config;
use crate::{exit, output, session, steps};

pub fn run(config: &Config, args: CheckArgs) -> Result<i32> {
    let read_data = match (&args.read_data_subset, args.read_data) {
        (Some(subset), _) => Some(subset.0),
        (None, true) => Some(Subset::All),
        (None, false) => None,
    };
    // The index is rebuilt by the check itself from what decodes, so a
    // damaged index file is reported rather than stopping the command.
    let mut repo = session::open_unindexed(config)?;
    let started = std::time::Instant::now();
    let report = steps::check(config, &mut repo, read_data)?;
    let seconds = started.elapsed().as_secs_f64();
    if config.json {
        output::json(&report);
    } else {
        for w in &report.warnings {
            eprintln!(
                "arca: warning: {}: {}",
                output::sanitize(&w.object),
                output::sanitize(&w.message)
            );
        }
        for e in &report.errors {
            output::line(format!(
                "error: {}: {}",
                output::sanitize(&e.object),
                output::sanitize(&e.message)
            ));
            for a in &e.affects {
                output::line(format!(
                    "  hurts snapshot {} {}",
                    &a.snapshot[..8],
                    output::sanitize(&a.path)
                ));
            }
        }
        config.note(format!(
            "checked {} index files, {} snapshots, {} trees, {} packs{}{}",
            report.index_files,
            report.snapshots,
            report.trees,
            report.packs,
            match report.wal_objects {
                0 => String::new(),
                n => format!(", {n} WAL objects"),
            },
            if read_data.is_some() {
                format!(
                    "; read {} packs{}, {} in {:.1} s ({}/s)",
                    report.packs_read,
                    match report.wal_read {
                        0 => String::new(),
                        n => format!(" and {n} WAL objects"),
                    },
                    HumanBytes(report.bytes_read),
                    seconds,
                    HumanBytes((report.bytes_read as f64 / seconds.max(0.001)) as u64)
                )
            } else {
                String::new()
            }
        ));
        if report.ok() {
            config.note("no errors were found");
        } else {
            config.note(format!("{} error(s) found", report.errors.len()));
        }
    }
    Ok(if report.ok() {
        exit::SUCCESS
    } else {
        exit::ERROR
    })
}
