use anyhow::{Context, Result, bail};
use arca_core::{
    ExcludeOptions, FileChange, SnapshotOptions, SnapshotProgress, SnapshotWarningKind,
};
use serde::Serialize;

use crate::cli::SnapshotArgs;
use crate::config::Config;
use crate::json::SnapshotJson;
use crate::{exit, output, progress, session, steps};

#[derive(Serialize)]
struct Warning {
    kind: &'static str,
    path: String,
    error: String,
}

#[derive(Serialize)]
struct SnapshotResultJson<'a> {
    dry_run: bool,
    #[serde(flatten)]
    snapshot: SnapshotJson<'a>,
    warnings: Vec<Warning>,
}

pub fn run(config: &Config, args: SnapshotArgs) -> Result<i32> {
    // Check the sources before asking for a password or touching anything:
    // a missing one is left out with a warning (exit 3), but when none is
    // there, there is nothing to save.
    let unusable: Vec<arca_core::Error> = args
        .paths
        .iter()
        .filter_map(|p| arca_core::absolute(p).err())
        .collect();
    if unusable.len() == args.paths.len()
        && let Some(first) = unusable.into_iter().next()
    {
        return Err(first.into());
    }
    if args.stdin && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("--stdin reads standard input, but it is a terminal; pipe the data in");
    }
    let exclude = ExcludeOptions {
        patterns: args.excludes.into_iter().map(|g| g.0).collect(),
        pattern_files: args.exclude_files,
        if_present: args.exclude_if_present,
        larger_than: args.exclude_larger_than.map(|s| s.0),
        one_file_system: args.one_file_system,
    };
    // Counting the sources starts before the repository opens (a password
    // to derive keys from, an index to load), so the bar's total is there
    // sooner. A stream has no total.
    let stream = args.stdin || args.stdin_from_command.is_some();
    let scan = if stream {
        progress::Scan::none()
    } else {
        steps::scan(config, &args.paths, &exclude)
    };
    let mut repo = session::open(config)?;
    repo.set_verify_uploads(args.verify_upload);
    let parent = match &args.parent {
        Some(spec) => Some(arca_core::select::resolve(&repo, &spec.which, &Default::default())?.0),
        None => None,
    };
    let options = SnapshotOptions {
        paths: args.paths,
        hostname: args.host.unwrap_or_else(session::hostname),
        username: session::username(),
        tags: args.tags,
        description: args.description.unwrap_or_default(),
        time: args.time.map(|t| t.0),
        threads: 0,
        parent,
        no_parent: args.force,
        exclude,
        dry_run: args.dry_run,
        checkpoint_interval: None,
        sqlite: args.sqlite.0,
        scratch_dir: session::scratch_dir(config),
        inconsistent_tags: Vec::new(),
    };
    let counters = SnapshotProgress::default();
    if config.verbose > 0 && !config.json {
        // -v: every file stored (or, in a dry run, to store) as new or
        // changed; -vv: unchanged ones too.
        let verbose = config.verbose;
        counters.on_file(move |path, change| {
            let what = match change {
                FileChange::New => "new",
                FileChange::Changed => "changed",
                FileChange::Unchanged if verbose > 1 => "unchanged",
                FileChange::Unchanged => return,
            };
            // A reader that goes away stops the list, not the backup.
            output::line(format!(
                "{what:<9} {}",
                output::sanitize(&path.display().to_string())
            ));
        });
    }
    let name = &args.stdin_name.0;
    let (outcome, unreadable) = steps::snapshot(config, &counters, scan, || {
        match (&args.stdin_from_command, args.stdin) {
            (Some(cmd), _) => snapshot_command(&mut repo, &options, name, cmd, &counters),
            (None, true) => {
                let mut stdin = std::io::stdin().lock();
                arca_core::snapshot_stream(
                    &mut repo,
                    &options,
                    name,
                    &mut stdin,
                    &mut || Ok(()),
                    &counters,
                )
                .map_err(anyhow::Error::from)
            }
            (None, false) => {
                arca_core::snapshot(&mut repo, &options, &counters).map_err(anyhow::Error::from)
            }
        }
    })?;
    if config.json {
        output::json(&SnapshotResultJson {
            snapshot: SnapshotJson::new(outcome.id.as_ref(), &outcome.snapshot),
            dry_run: args.dry_run,
            warnings: outcome
                .warnings
                .iter()
                .map(|w| Warning {
                    kind: match w.kind {
                        SnapshotWarningKind::Unreadable => "unreadable",
                        SnapshotWarningKind::Changed => "changed",
                        SnapshotWarningKind::Inconsistent => "inconsistent",
                    },
                    path: w.path.display().to_string(),
                    error: w.message.clone(),
                })
                .collect(),
        });
    } else if !config.quiet {
        let s = outcome.snapshot.summary.clone().unwrap_or_default();
        match &outcome.id {
            Some(id) => output::line(format!("snapshot {} saved", id.short())),
            None => output::line("dry run: nothing was stored"),
        }
        output::line(format!(
            "files: {} new, {} changed, {} unchanged",
            s.files_new, s.files_changed, s.files_unchanged
        ));
        output::line(format!(
            "dirs:  {} new, {} changed, {} unchanged",
            s.dirs_new, s.dirs_changed, s.dirs_unchanged
        ));
        output::line(steps::transfer_line(&s));
    }
    if unreadable == 0 {
        Ok(exit::SUCCESS)
    } else {
        config.note(format!(
            "arca: {unreadable} source entries could not be read, or not consistently; the snapshot holds everything else"
        ));
        Ok(exit::PARTIAL)
    }
}

/// Stores the output of `sh -c CMD`; a failing command saves nothing.
fn snapshot_command(
    repo: &mut arca_core::Repository,
    options: &SnapshotOptions,
    name: &str,
    cmd: &str,
    counters: &SnapshotProgress,
) -> Result<arca_core::SnapshotOutcome> {
    use std::process::{Command, Stdio};
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run {cmd:?}"))?;
    let Some(mut stdout) = child.stdout.take() else {
        bail!("cannot read the output of {cmd:?}");
    };
    let shown = format!("command {cmd:?}");
    let mut finish = || steps::command_finished(&mut child, &shown, "snapshot");
    Ok(arca_core::snapshot_stream(
        repo,
        options,
        name,
        &mut stdout,
        &mut finish,
        counters,
    )?)
}
