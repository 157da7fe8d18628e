//! `arca rewrite`: remove paths from stored snapshots.

use anyhow::Result;
use arca_core::ops::rewrite::{self, RemovedPath, RewriteOptions, RewritePlan, Rewritten};
use arca_core::select;
use arca_core::{NodeKind, SnapshotId};
use indicatif::HumanBytes;
use serde::Serialize;

use crate::cli::RewriteArgs;
use crate::config::Config;
use crate::json::kind_name;
use crate::{exit, output, session};

/// One removed entry in `rewrite --json`.
#[derive(Serialize)]
struct RemovedJson {
    path: String,
    #[serde(rename = "type")]
    kind: &'static str,
    files: u64,
    dirs: u64,
    bytes: u64,
}

/// One rewritten snapshot in `rewrite --json`.
#[derive(Serialize)]
struct RewrittenJson {
    old: String,
    /// `None` in a dry run.
    new: Option<String>,
    forgotten: bool,
    files_removed: u64,
    bytes_removed: u64,
    removed: Vec<RemovedJson>,
}

/// `rewrite --json`.
#[derive(Serialize)]
struct RewriteJson {
    dry_run: bool,
    rewritten: Vec<RewrittenJson>,
    /// Snapshots in which nothing matched.
    unchanged: Vec<String>,
}

pub fn run(config: &Config, args: RewriteArgs) -> Result<i32> {
    let options = RewriteOptions {
        patterns: args.excludes.into_iter().map(|g| g.0).collect(),
        pattern_files: args.exclude_files,
    };
    let mut repo = session::open(config)?;
    let filter = args.filter.filter();
    let chosen = if args.snapshots.is_empty() {
        select::matching(&repo, &filter)?
    } else {
        args.snapshots
            .iter()
            .map(|spec| select::resolve(&repo, &spec.which, &filter))
            .collect::<arca_core::Result<Vec<_>>>()?
    };
    if chosen.is_empty() && !config.json {
        config.note("no snapshot matches: nothing to rewrite");
    }
    let plan = rewrite::plan(&repo, &chosen, &options)?;
    if !config.json && !config.quiet {
        print_plan(&plan, args.dry_run);
    }
    let done = if args.dry_run {
        config.note("dry run: nothing was written");
        Vec::new()
    } else {
        rewrite::execute(&mut repo, &plan, args.forget, &mut |r| {
            if !config.json {
                config.note(done_line(r));
            }
        })?
    };
    if config.json {
        output::json(&document(&plan, &done, args.dry_run));
    }
    Ok(exit::SUCCESS)
}

/// Per snapshot, what goes (or would go), and which are left alone.
fn print_plan(plan: &RewritePlan, dry_run: bool) {
    let verb = if dry_run { "would remove" } else { "removing" };
    for change in &plan.changes {
        let snap = &change.snapshot;
        output::line(format!(
            "snapshot {} of {} ({}: {}): {verb} {} path(s), {} file(s), {}",
            change.old.short(),
            snap.time.to_local_string(),
            output::sanitize(&snap.hostname),
            output::sanitize(&snap.path_strings().join(", ")),
            change.removed.len(),
            change.files_removed(),
            HumanBytes(change.bytes_removed())
        ));
        for removed in &change.removed {
            output::line(format!("  - {}", describe(removed)));
        }
    }
    for id in &plan.unchanged {
        output::line(format!(
            "snapshot {}: no change (nothing matches)",
            id.short()
        ));
    }
}

/// `/srv/cache/ (2 files, 1.5 MiB)` or `/srv/a.key (4.0 KiB)`.
fn describe(removed: &RemovedPath) -> String {
    let path = output::sanitize(&removed.path.display().to_string());
    match removed.kind {
        NodeKind::Dir => format!(
            "{path}/ ({} file(s), {})",
            removed.files,
            HumanBytes(removed.bytes)
        ),
        NodeKind::File => format!("{path} ({})", HumanBytes(removed.bytes)),
        kind => format!("{path} ({})", kind_name(kind)),
    }
}

fn done_line(r: &Rewritten) -> String {
    if r.forgotten {
        format!(
            "snapshot {} is now {}; {} removed",
            r.old.short(),
            r.new.short(),
            r.old.short()
        )
    } else {
        format!(
            "snapshot {} is now {} (the old one stays: forget it, or use --forget)",
            r.old.short(),
            r.new.short()
        )
    }
}

fn document(plan: &RewritePlan, done: &[Rewritten], dry_run: bool) -> RewriteJson {
    let new_of = |old: SnapshotId| done.iter().find(|r| r.old == old);
    RewriteJson {
        dry_run,
        rewritten: plan
            .changes
            .iter()
            .filter(|c| dry_run || new_of(c.old).is_some())
            .map(|c| RewrittenJson {
                old: c.old.to_hex(),
                new: new_of(c.old).map(|r| r.new.to_hex()),
                forgotten: new_of(c.old).is_some_and(|r| r.forgotten),
                files_removed: c.files_removed(),
                bytes_removed: c.bytes_removed(),
                removed: c
                    .removed
                    .iter()
                    .map(|r| RemovedJson {
                        path: r.path.to_string_lossy().into_owned(),
                        kind: kind_name(r.kind),
                        files: r.files,
                        dirs: r.dirs,
                        bytes: r.bytes,
                    })
                    .collect(),
            })
            .collect(),
        unchanged: plan.unchanged.iter().map(|id| id.to_hex()).collect(),
    }
}
