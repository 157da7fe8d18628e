//! The engine calls that more than one command makes (`run` makes most of
//! them), each with its progress bar, its warnings and its figures for
//! `--metrics-file`.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use anyhow::Result;
use arca_core::ops::forget::{self, ForgetPlan};
use arca_core::{
    CheckOptions, CheckProgress, CheckReport, ExcludeOptions, LockMode, PruneOptions,
    PruneProgress, Repository, RestoreOptions, RestoreProgress, RestoreSummary, Snapshot,
    SnapshotOutcome, SnapshotProgress, SnapshotWarningKind, Subset,
};
use indicatif::HumanBytes;

use crate::config::Config;
use crate::json::PruneJson;
use crate::{metrics, output, progress, session, units};

/// Starts counting what a snapshot of `paths` with `exclude` will hold, for
/// the bar's totals, when a bar will be drawn (else does nothing). Start it
/// before opening the repository, so the total is there sooner.
pub fn scan(config: &Config, paths: &[PathBuf], exclude: &ExcludeOptions) -> progress::Scan {
    if draws_snapshot_bar(config) {
        progress::Scan::start(paths, exclude)
    } else {
        progress::Scan::none()
    }
}

/// At -v the list of files is the progress.
fn draws_snapshot_bar(config: &Config) -> bool {
    config.progress && config.verbose == 0
}

/// Runs `work` (one of the engine's snapshot calls, reporting to
/// `counters`) under a progress bar; prints its warnings and records the
/// saved snapshot's figures. Returns the outcome and how many source
/// entries could not be read. With a [`scan`] of the sources (none for a
/// stream), the bar shows totals, a percentage and the time left; the scan
/// stops when the work ends.
pub fn snapshot(
    config: &Config,
    counters: &SnapshotProgress,
    scan: progress::Scan,
    work: impl FnOnce() -> Result<SnapshotOutcome>,
) -> Result<(SnapshotOutcome, usize)> {
    let bar = progress::spinner("{spinner} {elapsed} {msg}");
    let started = std::time::Instant::now();
    let outcome = progress::with_bar(
        draws_snapshot_bar(config),
        bar,
        |bar| {
            let done = progress::Done {
                files: counters.files.load(Ordering::Relaxed),
                bytes: counters.bytes_read.load(Ordering::Relaxed)
                    + counters.bytes_reused.load(Ordering::Relaxed),
                added: counters.bytes_added.load(Ordering::Relaxed),
            };
            bar.set_message(progress::snapshot_message(
                done,
                scan.totals(),
                started.elapsed(),
            ));
            bar.tick();
        },
        work,
    );
    drop(scan);
    let outcome = outcome?;
    let unreadable = report_warnings(&outcome);
    if outcome.id.is_some() {
        record_snapshot(config, &outcome.snapshot);
    }
    Ok((outcome, unreadable))
}

/// Prints a snapshot's warnings on stderr; returns how many source entries
/// could not be read, or not consistently.
pub fn report_warnings(outcome: &SnapshotOutcome) -> usize {
    for w in &outcome.warnings {
        let what = match w.kind {
            SnapshotWarningKind::Unreadable => "cannot read",
            SnapshotWarningKind::Changed => "file changed",
            SnapshotWarningKind::Inconsistent => "not consistent",
        };
        eprintln!(
            "arca: warning: {what} {}: {}",
            output::sanitize(&w.path.display().to_string()),
            w.message
        );
    }
    outcome
        .warnings
        .iter()
        .filter(|w| {
            matches!(
                w.kind,
                SnapshotWarningKind::Unreadable | SnapshotWarningKind::Inconsistent
            )
        })
        .count()
}

/// The saved snapshot's figures for `--metrics-file`.
pub fn record_snapshot(config: &Config, snapshot: &Snapshot) {
    use metrics::*;
    let m = &config.metrics;
    m.set(&SNAPSHOT_TIME, units::unix_seconds(snapshot.time));
    if let Some(s) = &snapshot.summary {
        m.set(&SNAPSHOT_BYTES_ADDED, s.bytes_added as f64);
        m.set(&SNAPSHOT_BYTES_PROCESSED, s.total_bytes as f64);
        m.set(&SNAPSHOT_FILES_PROCESSED, s.total_files as f64);
        m.set(&SNAPSHOT_ERRORS, s.errors as f64);
    }
}

/// Carries out a forget plan; records how many snapshots were removed and
/// (for a policy) kept.
pub fn forget(config: &Config, repo: &Repository, plan: &ForgetPlan) -> Result<usize> {
    let removed = forget::execute(repo, plan)?;
    let m = &config.metrics;
    m.set(&metrics::SNAPSHOTS_REMOVED, removed as f64);
    // Snapshots named by id are removed without a policy keeping any.
    if plan.policy.is_some() {
        m.set(&metrics::SNAPSHOTS_KEPT, plan.kept() as f64);
    }
    Ok(removed)
}

/// Plans and (unless `dry_run`) carries out a prune under an exclusive lock.
pub fn prune(
    config: &Config,
    repo: &mut Repository,
    options: &PruneOptions,
    dry_run: bool,
) -> Result<PruneJson> {
    let lock = if dry_run {
        None
    } else {
        Some(session::lock(config, repo, LockMode::Exclusive, "prune")?)
    };
    let counters = PruneProgress::default();
    let bar = progress::spinner("{spinner} {elapsed} {msg}");
    let plan = progress::with_bar(
        config.progress,
        bar,
        |bar| {
            bar.set_message(format!(
                "finding used data: {} trees",
                counters.trees.load(Ordering::Relaxed)
            ))
        },
        || arca_core::plan_prune(repo, options, Some(&counters)),
    )?;
    for warning in &plan.warnings {
        eprintln!("arca: warning: {}", output::sanitize(warning));
    }
    let size_before = arca_core::repository_size(repo)?;
    let later = plan.stats.mark_bytes
        + if options.instant_delete {
            0
        } else {
            plan.stats.repack_bytes
        };
    let mut report = PruneJson::new(&plan, dry_run, size_before, later);
    let Some(lock) = lock else {
        let freed_now = plan.stats.delete_bytes
            + if options.instant_delete {
                plan.stats
                    .repack_bytes
                    .saturating_sub(plan.stats.copy_bytes)
            } else {
                0
            };
        report.bytes_freed = freed_now;
        report.size_after = size_before.saturating_sub(freed_now)
            + if options.instant_delete {
                0
            } else {
                plan.stats.copy_bytes
            };
        return Ok(report);
    };
    let bar = progress::spinner("{spinner} {elapsed} {msg}");
    let summary = progress::with_bar(
        config.progress,
        bar,
        |bar| {
            bar.set_message(format!(
                "repacked {}, deleted {} packs",
                HumanBytes(counters.copied_bytes.load(Ordering::Relaxed)),
                counters.deleted.load(Ordering::Relaxed)
            ))
        },
        || arca_core::execute_prune(repo, &plan, options, &lock, Some(&counters)),
    )?;
    for warning in &summary.warnings {
        eprintln!("arca: warning: {}", output::sanitize(warning));
    }
    report.size_before = summary.size_before;
    report.size_after = summary.size_after;
    report.bytes_freed = summary.size_before.saturating_sub(summary.size_after);
    let m = &config.metrics;
    m.set(&metrics::REPOSITORY_SIZE, report.size_after as f64);
    m.set(&metrics::PRUNE_BYTES_FREED, report.bytes_freed as f64);
    Ok(report)
}

/// The human report of a prune: for a dry run every pack that changes,
/// then totals.
pub fn print_prune(config: &Config, r: &PruneJson, options: &PruneOptions) {
    if config.quiet {
        return;
    }
    let would = if r.dry_run { "would " } else { "" };
    if r.dry_run {
        for p in &r.changes {
            output::line(format!(
                "{would}{} {} pack {} ({}, {} used)",
                p.action,
                p.kind,
                &p.id[..16],
                HumanBytes(p.size),
                HumanBytes(p.used_bytes)
            ));
        }
    }
    let row = |what: &str, n: u64, bytes: u64, note: String| {
        if n > 0 {
            output::line(format!(
                "  {what:<8}{n:>7} packs {:>12}{note}",
                HumanBytes(bytes).to_string()
            ));
        }
    };
    output::line(format!(
        "{} snapshots use {} of {} blobs; {} packs, {}",
        r.snapshots,
        r.used_blobs,
        r.blobs,
        r.packs,
        HumanBytes(r.size_before)
    ));
    row("delete", r.delete_packs, r.delete_bytes, String::new());
    row(
        "repack",
        r.repack_packs,
        r.repack_bytes,
        format!("  (copying {} still used)", HumanBytes(r.copy_bytes)),
    );
    let grace = match options.keep_marked.as_secs() {
        0 => "any time".to_string(),
        _ => units::Duration(options.keep_marked).to_string(),
    };
    row(
        "mark",
        r.mark_packs,
        r.mark_bytes,
        format!("  (deleted by a prune {grace} from now)"),
    );
    row("unmark", r.unmark_packs, 0, "  (used again)".into());
    if r.dry_run {
        for file in &r.wal_removed {
            output::line(format!("{would}remove WAL {file}"));
        }
    }
    if !r.wal_removed.is_empty() {
        output::line(format!(
            "  {:<8}{:>7} WAL files {:>8}  (no remaining base backup needs them)",
            "remove",
            r.wal_removed.len(),
            HumanBytes(r.wal_bytes_freed).to_string()
        ));
    }
    row(
        "waiting",
        r.waiting_packs,
        r.waiting_bytes,
        "  (marked earlier, grace period not over)".into(),
    );
    output::line(format!(
        "{would}free {} now: repository {} -> {}{}",
        HumanBytes(r.bytes_freed),
        HumanBytes(r.size_before),
        HumanBytes(r.size_after),
        if r.bytes_freed_later > 0 {
            format!(
                "; up to {} more after the grace period",
                HumanBytes(r.bytes_freed_later)
            )
        } else {
            String::new()
        }
    ));
}

/// Checks `repo` under a shared lock (a prune deleting packs mid-check
/// would look like damage), reading `read_data` of the packs; records the
/// outcome for `--metrics-file`.
pub fn check(
    config: &Config,
    repo: &mut Repository,
    read_data: Option<Subset>,
) -> Result<CheckReport> {
    let _lock = session::lock(config, repo, LockMode::Shared, "check")?;
    let counters = CheckProgress::default();
    let bar = progress::spinner(
        "{spinner} {elapsed} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
    );
    let report = progress::with_bar(
        config.progress,
        bar,
        |bar| {
            bar.set_length(counters.bytes_total.load(Ordering::Relaxed));
            bar.set_position(counters.bytes_read.load(Ordering::Relaxed));
        },
        || arca_core::check(repo, &CheckOptions { read_data }, &counters),
    )?;
    let m = &config.metrics;
    m.set(&metrics::CHECK_ERRORS, report.errors.len() as f64);
    m.set(&metrics::CHECK_WARNINGS, report.warnings.len() as f64);
    m.set(&metrics::CHECK_SUCCESS, if report.ok() { 1.0 } else { 0.0 });
    Ok(report)
}

/// Restores `snapshot` into `target` under a progress bar.
pub fn restore(
    config: &Config,
    repo: &Repository,
    snapshot: &Snapshot,
    target: &std::path::Path,
    options: &RestoreOptions,
) -> Result<RestoreSummary> {
    let counters = RestoreProgress::default();
    let bar = progress::spinner("{spinner} {elapsed} [{wide_bar}] {bytes}/{total_bytes} {eta}");
    Ok(progress::with_bar(
        config.progress,
        bar,
        |bar| {
            bar.set_length(counters.bytes_total.load(Ordering::Relaxed));
            bar.set_position(counters.bytes_written.load(Ordering::Relaxed));
        },
        || arca_core::restore(repo, snapshot, target, options, &counters),
    )?)
}

/// One line per path a restore could not bring back whole: the path, the
/// byte ranges lost (for a file) and why.
pub fn damage_lines(damaged: &[arca_core::DamagedPath]) -> Vec<String> {
    damaged
        .iter()
        .map(|d| {
            let what = if d.kind == "dir" {
                "its contents were lost".to_string()
            } else if d.kind == "refused" {
                "not restored".to_string()
            } else {
                let ranges: Vec<String> = d
                    .lost
                    .iter()
                    .map(|r| format!("{}-{}", r.offset, r.offset + r.length))
                    .collect();
                format!("bytes {} lost (left as holes)", ranges.join(", "))
            };
            format!("damaged: {}: {what}: {}", d.path, d.problem)
        })
        .collect()
}

/// Waits for a command whose output a snapshot stored: `Ok` when it exited
/// 0, else an error naming it (`shown`) and saying that no `what` was saved.
pub fn command_finished(
    child: &mut std::process::Child,
    shown: &str,
    what: &str,
) -> arca_core::Result<()> {
    let status = child
        .wait()
        .map_err(|e| arca_core::Error::InvalidInput(format!("{shown}: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(arca_core::Error::InvalidInput(format!(
            "{shown} failed ({status}); no {what} was saved"
        )))
    }
}

/// The closing line of a snapshot's report: what was read and added, and
/// how long it took.
pub fn transfer_line(s: &arca_core::Summary) -> String {
    format!(
        "read {}, added {} ({} stored) in {:.1} s",
        HumanBytes(s.bytes_read),
        HumanBytes(s.bytes_added),
        HumanBytes(s.bytes_stored),
        s.duration_ms as f64 / 1000.0
    )
}
