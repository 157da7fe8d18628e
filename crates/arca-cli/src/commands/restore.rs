use std::sync::atomic::Ordering;

use anyhow::Result;
use arca_core::{Overwrite, RestoreOptions, RestoreProgress};
use indicatif::HumanBytes;
use serde::Serialize;

use crate::cli::RestoreArgs;
use crate::config::Config;
use crate::{output, progress};

#[derive(Serialize)]
struct RestoreJson {
    snapshot: String,
    target: String,
    #[serde(flatten)]
    summary: arca_core::RestoreSummary,
}

pub fn run(config: &Config, args: RestoreArgs) -> Result<i32> {
    let as_of = args
        .as_of
        .as_deref()
        .map(super::snapshot::parse_time)
        .transpose()?;
    let repo = super::open_repository(config)?;
    let (spec, subpath) = match args.snapshot.as_deref().map(|s| s.split_once(':')) {
        Some(Some((snap, path))) => (Some(snap), Some(std::path::PathBuf::from(path))),
        Some(None) => (args.snapshot.as_deref(), None),
        None => (None, None),
    };
    let filter = super::SnapshotFilter {
        host: args.host.as_deref(),
        paths: &args.paths,
        tags: &[],
    };
    let (id, snapshot) = super::select_snapshot(&repo, spec, as_of, &filter)?;
    let options = RestoreOptions {
        subpath,
        include: args.includes,
        exclude: args.excludes,
        overwrite: match args.overwrite.as_str() {
            "always" => Overwrite::Always,
            "never" => Overwrite::Never,
            _ => Overwrite::IfChanged,
        },
        delete: args.delete,
        verify: args.verify,
        // Only root gets back what grants privileges, and not even root
        // when asked not to.
        special: nix::unistd::geteuid().is_root() && !args.no_special,
    };
    let counters = RestoreProgress::default();
    let bar = progress::spinner("{spinner} {elapsed} [{wide_bar}] {bytes}/{total_bytes} {eta}");
    let summary = progress::with_bar(
        config.progress,
        bar,
        |bar| {
            bar.set_length(counters.bytes_total.load(Ordering::Relaxed));
            bar.set_position(counters.bytes_written.load(Ordering::Relaxed));
        },
        || arca_core::restore(&repo, &snapshot, &args.target, &options, &counters),
    )?;
    for warning in &summary.warnings {
        eprintln!("arca: warning: {}", output::sanitize(warning));
    }
    if !summary.owners_restored {
        config.note("arca: not running as root: restored files belong to the current user");
    }
    let damaged = super::damage_lines(&summary.damaged);
    for line in &damaged {
        eprintln!("arca: {}", output::sanitize(line));
    }
    let restored_files = summary.files;
    let damaged_count = summary.damaged.len();
    let mut named: Vec<String> = summary
        .damaged
        .iter()
        .take(3)
        .map(|d| output::sanitize(&d.path))
        .collect();
    if damaged_count > named.len() {
        named.push(format!("and {} more", damaged_count - named.len()));
    }
    let exit = if damaged_count == 0 {
        crate::exit::SUCCESS
    } else {
        crate::exit::ERROR
    };
    if config.json {
        output::json(&RestoreJson {
            snapshot: id.to_hex(),
            target: args.target.display().to_string(),
            summary,
        });
    } else {
        config.note(format!(
            "restored snapshot {} to {}: {} files, {} directories, {} symlinks, {}",
            id.short(),
            output::sanitize(&args.target.display().to_string()),
            summary.files,
            summary.dirs,
            summary.symlinks,
            HumanBytes(summary.bytes)
        ));
    }
    if damaged_count > 0 {
        eprintln!(
            "arca: restored {restored_files} files; {damaged_count} damaged: {}; run arca check --read-data",
            named.join(", ")
        );
    }
    Ok(exit)
}
