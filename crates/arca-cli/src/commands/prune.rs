use std::sync::atomic::Ordering;

use anyhow::{Context, Result, bail};
use arca_core::{LockMode, PackAction, PruneOptions, PrunePlan, PruneProgress, Repository};
use indicatif::HumanBytes;
use serde::Serialize;

use crate::cli::{PruneArgs, PruneOptionsArgs};
use crate::config::Config;
use crate::{exit, output, progress};

pub fn run(config: &Config, args: PruneArgs) -> Result<i32> {
    let options = resolve(&args.options)?;
    let mut repo = super::open_unindexed(config)?;
    let report = prune(config, &mut repo, &options, args.dry_run)?;
    if config.json {
        output::json(&report);
    } else {
        print(config, &report, &options);
    }
    Ok(exit::SUCCESS)
}

/// The prune options from the command line.
pub(crate) fn resolve(args: &PruneOptionsArgs) -> Result<PruneOptions> {
    options(&args.max_unused, &args.keep_marked, args.instant_delete)
}

/// Prune options from their texts (`5%`, `24h`).
pub(crate) fn options(
    max_unused: &str,
    keep_marked: &str,
    instant_delete: bool,
) -> Result<PruneOptions> {
    let max_unused = parse_percent(max_unused)?;
    let keep_marked = super::parse_duration(keep_marked).context("invalid --keep-marked")?;
    Ok(PruneOptions {
        max_unused,
        keep_marked,
        instant_delete,
    })
}

/// `5%`, `5` or `unlimited` as a fraction.
fn parse_percent(text: &str) -> Result<f64> {
    let t = text.trim();
    if t == "unlimited" {
        return Ok(f64::INFINITY);
    }
    match t.trim_end_matches('%').trim().parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
        _ => bail!("--max-unused {text:?} is not a percentage from 0% to 100% or \"unlimited\""),
    }
}

/// One pack whose fate changes, as `--json` and `--dry-run` show it.
#[derive(Serialize)]
pub(crate) struct PackJson {
    id: String,
    kind: String,
    size: u64,
    used_bytes: u64,
    action: &'static str,
}

/// What a prune did (or, for a dry run, would do); field names are part of
/// the CLI contract.
#[derive(Serialize)]
pub(crate) struct PruneJson {
    dry_run: bool,
    snapshots: u64,
    blobs: u64,
    used_blobs: u64,
    packs: u64,
    pub(crate) delete_packs: u64,
    delete_bytes: u64,
    pub(crate) mark_packs: u64,
    mark_bytes: u64,
    unmark_packs: u64,
    repack_packs: u64,
    repack_bytes: u64,
    copy_bytes: u64,
    waiting_packs: u64,
    waiting_bytes: u64,
    /// Bytes this run frees (for a dry run: would free).
    pub(crate) bytes_freed: u64,
    /// Bytes a later prune frees once the marks are older than the grace period.
    bytes_freed_later: u64,
    size_before: u64,
    /// For a dry run: an estimate.
    pub(crate) size_after: u64,
    changes: Vec<PackJson>,
}

/// Plans and (unless `dry_run`) carries out a prune under an exclusive lock.
pub(crate) fn prune(
    config: &Config,
    repo: &mut Repository,
    options: &PruneOptions,
    dry_run: bool,
) -> Result<PruneJson> {
    let lock = if dry_run {
        None
    } else {
        Some(super::lock(config, repo, LockMode::Exclusive, "prune")?)
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
        eprintln!("arca: warning: {}", crate::output::sanitize(warning));
    }
    let size_before = arca_core::repository_size(repo)?;
    let later = plan.stats.mark_bytes
        + if options.instant_delete {
            0
        } else {
            plan.stats.repack_bytes
        };
    let mut report = report(&plan, dry_run, size_before, later);
    if dry_run {
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
    }
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
        || arca_core::execute_prune(repo, &plan, options, lock.as_ref(), Some(&counters)),
    )?;
    for warning in &summary.warnings {
        eprintln!("arca: warning: {}", crate::output::sanitize(warning));
    }
    report.size_before = summary.size_before;
    report.size_after = summary.size_after;
    report.bytes_freed = summary.size_before.saturating_sub(summary.size_after);
    let m = &config.metrics;
    m.set(&crate::metrics::REPOSITORY_SIZE, report.size_after as f64);
    m.set(
        &crate::metrics::PRUNE_BYTES_FREED,
        report.bytes_freed as f64,
    );
    Ok(report)
}

fn report(plan: &PrunePlan, dry_run: bool, size_before: u64, later: u64) -> PruneJson {
    let s = &plan.stats;
    PruneJson {
        dry_run,
        snapshots: s.snapshots,
        blobs: s.blobs,
        used_blobs: s.used_blobs,
        packs: s.packs,
        delete_packs: s.delete_packs,
        delete_bytes: s.delete_bytes,
        mark_packs: s.mark_packs,
        mark_bytes: s.mark_bytes,
        unmark_packs: s.unmark_packs,
        repack_packs: s.repack_packs,
        repack_bytes: s.repack_bytes,
        copy_bytes: s.copy_bytes,
        waiting_packs: s.waiting_packs,
        waiting_bytes: s.waiting_bytes,
        bytes_freed: 0,
        bytes_freed_later: later,
        size_before,
        size_after: size_before,
        changes: plan
            .packs
            .iter()
            .filter(|p| {
                !matches!(
                    p.action,
                    PackAction::Keep | PackAction::KeepMarked | PackAction::Wait
                )
            })
            .map(|p| PackJson {
                id: p.id.to_hex(),
                kind: p.kind.to_string(),
                size: p.size,
                used_bytes: p.used_bytes,
                action: p.action.as_str(),
            })
            .collect(),
    }
}

/// The human report: for a dry run every pack that changes, then totals.
pub(crate) fn print(config: &Config, r: &PruneJson, options: &PruneOptions) {
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
    if config.quiet {
        return;
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
    let grace = humantime(options.keep_marked);
    row(
        "mark",
        r.mark_packs,
        r.mark_bytes,
        format!("  (deleted by a prune {grace} from now)"),
    );
    row("unmark", r.unmark_packs, 0, "  (used again)".into());
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

fn humantime(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "any time".into(),
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_percent;

    #[test]
    fn percentages_parse() {
        assert_eq!(parse_percent("5%").unwrap(), 0.05);
        assert_eq!(parse_percent("12.5").unwrap(), 0.125);
        assert!(parse_percent("unlimited").unwrap().is_infinite());
        assert!(parse_percent("150%").is_err());
        assert!(parse_percent("-1%").is_err());
        assert!(parse_percent("some").is_err());
    }
}
