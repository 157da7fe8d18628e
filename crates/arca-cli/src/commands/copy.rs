//! `arca copy`: snapshots of the repository of `-r` into the one of `--to`.

use std::sync::atomic::Ordering;

use anyhow::{Context, Result};
use arca_core::select::{self, SnapshotFilter, Spec};
use arca_core::{
    CopiedSnapshot, CopyOptions, CopyPlan, CopyProgress, CopyReport, Repository, Snapshot,
    SnapshotId,
};
use indicatif::HumanBytes;
use serde::Serialize;

use crate::cli::CopyArgs;
use crate::config::Config;
use crate::password::{PasswordSource, Role};
use crate::{output, progress, session};

/// One source snapshot and its copy (`None` in a dry run).
#[derive(Serialize)]
struct PairJson {
    source: String,
    destination: Option<String>,
}

/// The `--json` document; field names are part of the CLI contract.
#[derive(Serialize)]
struct CopyJson {
    dry_run: bool,
    source: String,
    destination: String,
    copied: Vec<PairJson>,
    skipped: Vec<PairJson>,
    snapshots_copied: usize,
    snapshots_skipped: usize,
    blobs_read: u64,
    bytes_read: u64,
    blobs_remembered: u64,
    blobs_stored: u64,
    bytes_added: u64,
    bytes_stored: u64,
    warnings: Vec<String>,
}

pub fn run(config: &Config, args: CopyArgs) -> Result<i32> {
    let mut src = session::open_unindexed(config).with_context(|| match &config.repo {
        Some(repo) => format!("source repository {repo}"),
        None => "source repository".to_string(),
    })?;
    let mut dst = open_destination(config, &args)?;
    let code = copy_snapshots(config, &args, &mut src, &mut dst)?;
    let wal = copy_wal(config, &src, &dst, args.dry_run)?;
    Ok(code.max(wal))
}

/// Copies the WAL files the destination lacks (all of them: they belong
/// to no snapshot yet), after the snapshots; a damaged one is reported and
/// the others still copied.
fn copy_wal(config: &Config, src: &Repository, dst: &Repository, dry_run: bool) -> Result<i32> {
    let report = arca_core::copy_wal(src, dst, dry_run).context("while copying WAL files")?;
    for (object, message) in &report.failed {
        // On stderr, so that --json keeps stdout one document.
        eprintln!(
            "arca: error: {}: {}",
            output::sanitize(object),
            output::sanitize(message)
        );
    }
    if report.copied > 0 || !report.failed.is_empty() {
        let summary = format!(
            "{} {} WAL file{} ({}), {} already there{}",
            if dry_run { "would copy" } else { "copied" },
            report.copied,
            if report.copied == 1 { "" } else { "s" },
            HumanBytes(report.bytes),
            report.present,
            match report.failed.len() {
                0 => String::new(),
                n => format!(", {n} could not be copied"),
            }
        );
        if config.json {
            config.note(summary);
        } else {
            say(config, summary);
        }
    }
    Ok(if report.failed.is_empty() {
        crate::exit::SUCCESS
    } else {
        crate::exit::ERROR
    })
}

fn copy_snapshots(
    config: &Config,
    args: &CopyArgs,
    src: &mut Repository,
    dst: &mut Repository,
) -> Result<i32> {
    let chosen = choose(src, &args.snapshots, &args.filter.filter())?;
    let plan = arca_core::plan_copy(src, dst, chosen)?;
    let dst_location = dst.location();
    if !config.json {
        for pair in &plan.skip {
            say(
                config,
                format!(
                    "snapshot {} already in {} as {}",
                    pair.source.short(),
                    output::sanitize(&dst_location),
                    pair.destination.short()
                ),
            );
        }
    }
    if args.dry_run {
        report_dry_run(config, src, dst, &plan);
        return Ok(crate::exit::SUCCESS);
    }
    if plan.copy.is_empty() {
        let report = CopyReport {
            skipped: plan.skip,
            ..CopyReport::default()
        };
        finish(config, src, dst, &report);
        return Ok(crate::exit::SUCCESS);
    }
    src.load_index()
        .with_context(|| format!("source repository {}", src.location()))?;
    dst.load_index()
        .with_context(|| format!("destination repository {dst_location}"))?;
    if config.verbose > 0 {
        eprintln!("arca: {}", map_note(config));
    }
    let total = plan.copy.len();
    let options = CopyOptions {
        cache_dir: config.cache_dir.clone(),
        threads: 0,
    };
    let counters = CopyProgress::default();
    let bar = progress::spinner("{spinner} {elapsed} {msg}");
    let printer = bar.clone();
    let mut announce = |pair: &CopiedSnapshot| {
        if !config.json && !config.quiet {
            printer.suspend(|| {
                output::line(format!(
                    "copied snapshot {} → {}",
                    pair.source.short(),
                    pair.destination.short()
                ));
            });
        }
    };
    let report = progress::with_bar(
        config.progress,
        bar,
        |bar| {
            bar.set_message(format!(
                "{}/{total} snapshots, {} read, {} new",
                counters.snapshots.load(Ordering::Relaxed),
                HumanBytes(counters.bytes_read.load(Ordering::Relaxed)),
                HumanBytes(counters.bytes_added.load(Ordering::Relaxed)),
            ));
            bar.tick();
        },
        || arca_core::copy_snapshots(src, dst, plan, &options, &counters, &mut announce),
    )?;
    finish(config, src, dst, &report);
    Ok(crate::exit::SUCCESS)
}

/// Where the map of what earlier copies stored is kept, if anywhere.
fn map_note(config: &Config) -> String {
    let without = "data the destination already has is read from the source again";
    match (&config.cache_dir, config.no_cache) {
        (Some(dir), _) => format!(
            "the copy map is kept in {}",
            output::sanitize(&dir.join("copy").display().to_string())
        ),
        (None, true) => format!("--no-cache: {without}"),
        (None, false) => format!("no cache directory (set ARCA_CACHE_DIR): {without}"),
    }
}

/// Opens the destination with its own password.
fn open_destination(config: &Config, args: &CopyArgs) -> Result<Repository> {
    let context = || format!("destination repository {}", args.to.0);
    let source = if let Some(file) = &args.to_password_file {
        PasswordSource::File(file.clone())
    } else if let Some(cmd) = &args.to_password_command {
        PasswordSource::Command(cmd.clone())
    } else {
        PasswordSource::EnvOrPrompt(Role::Destination)
    };
    let password = zeroize::Zeroizing::new(source.get().with_context(context)?);
    config
        .open_repository(&args.to.0, &password)
        .with_context(context)
}

/// The source snapshots asked for: each SNAP (filters apply to `latest`),
/// or every snapshot matching the filters.
fn choose(
    src: &Repository,
    specs: &[Spec],
    filter: &SnapshotFilter,
) -> Result<Vec<(SnapshotId, Snapshot)>> {
    if specs.is_empty() {
        return Ok(select::matching(src, filter)?);
    }
    Ok(specs
        .iter()
        .map(|spec| select::resolve(src, &spec.which, filter))
        .collect::<arca_core::Result<_>>()?)
}

fn report_dry_run(config: &Config, src: &Repository, dst: &Repository, plan: &CopyPlan) {
    if config.json {
        let report = CopyReport {
            skipped: plan.skip.clone(),
            ..CopyReport::default()
        };
        let mut doc = document(src, dst, &report);
        doc.dry_run = true;
        doc.copied = plan
            .copy
            .iter()
            .map(|(id, _)| PairJson {
                source: id.to_hex(),
                destination: None,
            })
            .collect();
        doc.snapshots_copied = plan.copy.len();
        output::json(&doc);
        return;
    }
    for (id, snap) in &plan.copy {
        say(
            config,
            format!(
                "would copy snapshot {} of {} ({}, {})",
                id.short(),
                snap.time.to_local_string(),
                output::sanitize(&snap.hostname),
                output::sanitize(&snap.path_strings().join(", "))
            ),
        );
    }
    say(
        config,
        format!(
            "dry run: {} to copy, {} already in {}",
            plan.copy.len(),
            plan.skip.len(),
            output::sanitize(&dst.location())
        ),
    );
}

/// Prints the outcome: the JSON document, or the warnings and a summary.
fn finish(config: &Config, src: &Repository, dst: &Repository, report: &CopyReport) {
    for warning in &report.warnings {
        eprintln!("arca: warning: {}", output::sanitize(warning));
    }
    if config.json {
        output::json(&document(src, dst, report));
        return;
    }
    say(
        config,
        format!(
            "{} copied, {} already in {}; {} blobs ({}) stored, {} read from the source",
            count(report.copied.len()),
            report.skipped.len(),
            output::sanitize(&dst.location()),
            report.blobs_stored,
            HumanBytes(report.bytes_stored),
            HumanBytes(report.bytes_read)
        ),
    );
}

/// A result line on stdout, unless quiet.
fn say(config: &Config, text: String) {
    if !config.quiet {
        output::line(text);
    }
}

fn count(n: usize) -> String {
    format!("{n} snapshot{}", if n == 1 { "" } else { "s" })
}

fn document(src: &Repository, dst: &Repository, report: &CopyReport) -> CopyJson {
    let pairs = |list: &[CopiedSnapshot]| {
        list.iter()
            .map(|p| PairJson {
                source: p.source.to_hex(),
                destination: Some(p.destination.to_hex()),
            })
            .collect()
    };
    CopyJson {
        dry_run: false,
        source: src.location(),
        destination: dst.location(),
        copied: pairs(&report.copied),
        skipped: pairs(&report.skipped),
        snapshots_copied: report.copied.len(),
        snapshots_skipped: report.skipped.len(),
        blobs_read: report.blobs_read,
        bytes_read: report.bytes_read,
        blobs_remembered: report.blobs_remembered,
        blobs_stored: report.blobs_stored,
        bytes_added: report.bytes_added,
        bytes_stored: report.bytes_stored,
        warnings: report.warnings.clone(),
    }
}
