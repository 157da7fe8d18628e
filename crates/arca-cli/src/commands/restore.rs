use std::path::Path;

use anyhow::Result;
use arca_core::select::{self, Spec};
use arca_core::{NodeKind, Overwrite, RestoreAction, RestoreOptions, RestorePreview};
use indicatif::HumanBytes;
use serde::Serialize;

use crate::cli::RestoreArgs;
use crate::config::Config;
use crate::json::kind_name;
use crate::{output, session, steps};

#[derive(Serialize)]
struct RestoreJson {
    snapshot: String,
    target: String,
    #[serde(flatten)]
    summary: arca_core::RestoreSummary,
}

/// One path in `restore --dry-run --json`.
#[derive(Serialize)]
struct PlannedJson {
    action: RestoreAction,
    path: String,
    #[serde(rename = "type")]
    kind: Option<&'static str>,
    bytes: u64,
}

/// `restore --dry-run --json`.
#[derive(Serialize)]
struct PreviewJson {
    dry_run: bool,
    snapshot: String,
    target: String,
    paths: Vec<PlannedJson>,
    write: u64,
    overwrite: u64,
    delete: u64,
    unchanged: u64,
    files: u64,
    bytes: u64,
    damaged: Vec<String>,
}

pub fn run(config: &Config, args: RestoreArgs) -> Result<i32> {
    let repo = session::open(config)?;
    let spec = match (args.snapshot, args.as_of) {
        (Some(spec), _) => spec,
        (None, Some(time)) => Spec::as_of(time.0),
        (None, None) => Spec::latest(),
    };
    let (id, snapshot) = select::resolve(&repo, &spec.which, &args.filter.filter())?;
    let options = RestoreOptions {
        subpath: spec.path,
        include: args.includes.into_iter().map(|g| g.0).collect(),
        exclude: args.excludes.into_iter().map(|g| g.0).collect(),
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
    if args.dry_run {
        let preview = arca_core::preview_restore(&repo, &snapshot, &args.target, &options)?;
        report_preview(config, &id.to_hex(), &args.target, &preview);
        return Ok(crate::exit::SUCCESS);
    }
    let summary = steps::restore(config, &repo, &snapshot, &args.target, &options)?;
    for warning in &summary.warnings {
        eprintln!("arca: warning: {}", output::sanitize(warning));
    }
    if !summary.owners_restored {
        config.note("arca: not running as root: restored files belong to the current user");
    }
    let damaged = steps::damage_lines(&summary.damaged);
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

/// Prints a dry run: one line per path (unchanged ones at -v), then the
/// totals; `-q` prints nothing.
fn report_preview(config: &Config, snapshot: &str, target: &Path, preview: &RestorePreview) {
    let files = preview.files(RestoreAction::Write) + preview.files(RestoreAction::Overwrite);
    if config.json {
        output::json(&PreviewJson {
            dry_run: true,
            snapshot: snapshot.to_string(),
            target: target.display().to_string(),
            paths: preview
                .paths
                .iter()
                .map(|p| PlannedJson {
                    action: p.action,
                    path: p.path.to_string_lossy().into_owned(),
                    kind: p.kind.map(kind_name),
                    bytes: p.bytes,
                })
                .collect(),
            write: preview.count(RestoreAction::Write),
            overwrite: preview.count(RestoreAction::Overwrite),
            delete: preview.count(RestoreAction::Delete),
            unchanged: preview.count(RestoreAction::Unchanged),
            files,
            bytes: preview.bytes(),
            damaged: preview
                .damaged
                .iter()
                .map(|(path, _)| path.clone())
                .collect(),
        });
        return;
    }
    if config.quiet {
        return;
    }
    for p in &preview.paths {
        if p.action == RestoreAction::Unchanged && config.verbose == 0 {
            continue;
        }
        let mut line = format!(
            "{:<9} {}",
            p.action.name(),
            output::sanitize(&p.path.display().to_string())
        );
        if p.kind == Some(NodeKind::Dir) {
            line.push('/');
        }
        if p.bytes > 0 {
            line.push_str(&format!(" ({})", HumanBytes(p.bytes)));
        }
        output::line(line);
    }
    for (path, problem) in &preview.damaged {
        eprintln!(
            "arca: damaged: {}: {}",
            output::sanitize(path),
            output::sanitize(problem)
        );
    }
    output::line(format!(
        "dry run: would write {}, overwrite {}, delete {} and leave {} unchanged ({} file(s), {} of file data); nothing was changed",
        preview.count(RestoreAction::Write),
        preview.count(RestoreAction::Overwrite),
        preview.count(RestoreAction::Delete),
        preview.count(RestoreAction::Unchanged),
        files,
        HumanBytes(preview.bytes())
    ));
}
