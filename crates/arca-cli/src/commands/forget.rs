//! `arca forget`: decide which snapshots go (by a policy, or by id), show
//! the decision, then remove them; with `--prune`, prune afterwards.

use anyhow::Result;
use arca_core::PruneOptions;
use arca_core::ops::forget;

use crate::cli::ForgetArgs;
use crate::config::Config;
use crate::json::{ForgetJson, ForgetSnapshotJson};
use crate::{exit, output, session, steps};

pub fn run(config: &Config, args: ForgetArgs) -> Result<i32> {
    let prune_options = PruneOptions {
        max_unused: args.prune_options.max_unused.0,
        keep_marked: args.prune_options.keep_marked.0,
        instant_delete: args.prune_options.instant_delete,
    };
    let policy = args.keep.policy();
    if args.ids.is_empty() && policy.is_empty() {
        eprintln!(
            "arca: no policy given: name snapshot ids or give at least one --keep-* option (an empty policy would forget every snapshot)"
        );
        return Ok(exit::USAGE);
    }
    let mut repo = session::open_unindexed(config)?;
    let plan = if args.ids.is_empty() {
        let now = jiff::Zoned::now();
        forget::plan(&repo, &policy, args.group_by.0, &args.filter.filter(), &now)?
    } else {
        forget::plan_ids(&repo, &args.ids, &mut |e| {
            eprintln!(
                "arca: warning: {}; removing it by name",
                output::sanitize(&e.to_string())
            );
        })?
    };
    let mut report = ForgetJson::new(&plan, args.dry_run);
    if !config.json && !config.quiet {
        print(config, &report);
    }
    if !args.dry_run {
        let removed = steps::forget(config, &repo, &plan)?;
        if !config.json && removed > 0 {
            config.note(format!("removed {removed} snapshot(s)"));
        }
    }
    if args.prune {
        if args.dry_run {
            config.note("prune skipped: this was a dry run");
        } else {
            let pruned = steps::prune(config, &mut repo, &prune_options, false)?;
            if !config.json {
                steps::print_prune(config, &pruned, &prune_options);
            }
            report.prune = Some(pruned);
        }
    }
    if config.json {
        output::json(&report);
    }
    Ok(exit::SUCCESS)
}

fn print(config: &Config, report: &ForgetJson) {
    let would = if report.dry_run { "would " } else { "" };
    for group in &report.groups {
        if report.policy.is_some() {
            output::line(format!(
                "snapshots of {}:",
                output::sanitize(&group.key.to_string())
            ));
        }
        if !group.keep.is_empty() {
            output::line(format!("keep {} snapshot(s):", group.keep.len()));
            table(&group.keep, true);
        }
        if !group.remove.is_empty() {
            output::line(format!("{would}remove {} snapshot(s):", group.remove.len()));
            table(&group.remove, false);
        }
        output::line("");
    }
    if report.removed.is_empty() {
        config.note("no snapshots to remove");
    }
}

fn table(rows: &[ForgetSnapshotJson], reasons: bool) {
    for s in rows {
        let tags = if s.tags.is_empty() {
            "-".to_string()
        } else {
            s.tags.join(",")
        };
        let mut line = format!(
            "  {}  {}  {:<12} {:<16}",
            s.short_id,
            s.local_time,
            output::sanitize(&s.hostname),
            output::sanitize(&tags)
        );
        if reasons {
            line.push_str(&s.reasons.join(", "));
        }
        output::line(line.trim_end());
    }
}
