//! `arca drill`: a restore drill. Restores a snapshot into a fresh temporary
//! directory with the engine's own verification (every restored file re-read
//! and checked against the snapshot's blob ids), measures how long that took
//! (the recovery time objective actually met) and how old the snapshot is
//! (the recovery point), then removes the directory whatever happened.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use arca_core::select::{self, Which};
use arca_core::{Overwrite, RestoreOptions, RestoreSummary, Snapshot};
use indicatif::HumanBytes;
use serde::Serialize;

use crate::cli::DrillArgs;
use crate::config::Config;
use crate::{exit, output, session, steps, units};

/// `--json`; field names are part of the CLI contract.
#[derive(Serialize)]
struct DrillJson {
    snapshot: String,
    short_id: String,
    time: String,
    files: u64,
    bytes: u64,
    seconds: f64,
    bytes_per_second: u64,
    age_seconds: u64,
    ok: bool,
    errors: Vec<String>,
}

pub fn run(config: &Config, args: DrillArgs) -> Result<i32> {
    let repo = session::open(config)?;
    let which = args.snapshot.map_or(Which::Latest, |s| s.which);
    let (id, snapshot) = select::resolve(&repo, &which, &args.filter.filter())?;
    let parent = args.target_dir.unwrap_or_else(std::env::temp_dir);
    let scratch = tempfile::Builder::new()
        .prefix("arca-drill-")
        .tempdir_in(&parent)
        .with_context(|| {
            format!(
                "cannot create a temporary directory in {}",
                parent.display()
            )
        })?;
    let scratch_name = scratch.path().display().to_string();
    // An interrupted drill leaves no restored data behind.
    let _cleanup = {
        let dir = scratch.path().to_owned();
        arca_backend::cleanup::on_interrupt(move || {
            make_removable(&dir);
            let _ = std::fs::remove_dir_all(&dir);
        })
    };

    let started = Instant::now();
    let restored = restore_verified(config, &repo, &snapshot, scratch.path());
    let seconds = started.elapsed().as_secs_f64();

    let mut errors = Vec::new();
    let summary = match restored {
        Ok(summary) => summary,
        Err(e) => {
            // Name the stored path, not where the drill happened to put it.
            let message = format!("{e:#}").replace(&scratch_name, "");
            errors.push(format!(
                "drill of snapshot {} failed: {message}",
                id.short()
            ));
            RestoreSummary::default()
        }
    };
    for line in steps::damage_lines(&summary.damaged) {
        errors.push(format!("drill of snapshot {}: {line}", id.short()));
    }
    make_removable(scratch.path());
    if let Err(e) = scratch.close() {
        errors.push(format!(
            "cannot remove the drill's temporary directory {scratch_name}: {e}"
        ));
    }
    for warning in &summary.warnings {
        eprintln!(
            "arca: warning: {}",
            output::sanitize(&warning.replace(&scratch_name, ""))
        );
    }
    for error in &errors {
        eprintln!("arca: {}", output::sanitize(error));
    }

    let report = DrillJson {
        snapshot: id.to_hex(),
        short_id: id.short(),
        time: snapshot.time.to_rfc3339(),
        files: summary.files,
        bytes: summary.bytes,
        seconds,
        bytes_per_second: (summary.bytes as f64 / seconds.max(0.001)) as u64,
        age_seconds: units::age_seconds(snapshot.time),
        ok: errors.is_empty(),
        errors,
    };
    if config.json {
        output::json(&report);
    } else if report.ok && !config.quiet {
        print_report(&report, &snapshot);
    }
    Ok(if report.ok {
        exit::SUCCESS
    } else {
        exit::ERROR
    })
}

/// Restores with `verify`, so the check is the one `restore --verify` does.
fn restore_verified(
    config: &Config,
    repo: &arca_core::Repository,
    snapshot: &Snapshot,
    target: &Path,
) -> Result<RestoreSummary> {
    let options = RestoreOptions {
        overwrite: Overwrite::Always,
        verify: true,
        ..RestoreOptions::default()
    };
    steps::restore(config, repo, snapshot, target, &options)
}

/// Gives the owner full access to every directory below `dir`: a snapshot
/// may hold read-only directories, which would otherwise keep their entries
/// from being removed. Best effort; removal reports what remains.
fn make_removable(dir: &Path) {
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            make_removable(&entry.path());
        }
    }
}

fn print_report(report: &DrillJson, snapshot: &Snapshot) {
    output::line(format!(
        "drill of snapshot {} ({}, {} {}): ok",
        report.short_id,
        snapshot.time.to_local_string(),
        output::sanitize(&snapshot.hostname),
        output::sanitize(&snapshot.path_strings().join(","))
    ));
    output::line(format!(
        "restored and verified {} file{}, {} in {:.2} s ({}/s)",
        report.files,
        if report.files == 1 { "" } else { "s" },
        HumanBytes(report.bytes),
        report.seconds,
        HumanBytes(report.bytes_per_second)
    ));
    output::line(format!(
        "snapshot age: {}",
        units::format_age(report.age_seconds)
    ));
}
