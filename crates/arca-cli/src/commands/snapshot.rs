use anyhow::{Context, Result, bail};
use arca_core::{ExcludeOptions, Progress, SnapshotOptions, Time, WarningKind};
use indicatif::HumanBytes;
use serde::Serialize;
use std::sync::atomic::Ordering;

use super::SnapshotJson;
use crate::cli::SnapshotArgs;
use crate::config::Config;
use crate::{exit, output, progress};

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
    // Check the sources before asking for a password or touching anything.
    for path in &args.paths {
        arca_core::absolute(path)?;
    }
    if args.stdin && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        bail!("--stdin reads standard input, but it is a terminal; pipe the data in");
    }
    let time = args.time.as_deref().map(parse_time).transpose()?;
    let larger_than = args
        .exclude_larger_than
        .as_deref()
        .map(super::parse_size)
        .transpose()?;
    let mut repo = super::open_repository(config)?;
    repo.set_verify_uploads(args.verify_upload);
    let parent = match &args.parent {
        Some(spec) => Some(repo.find_snapshot(spec)?.0),
        None => None,
    };
    let options = SnapshotOptions {
        paths: args.paths,
        hostname: args.host.unwrap_or_else(super::hostname),
        username: super::username(),
        tags: args.tags,
        description: args.description.unwrap_or_default(),
        time,
        threads: 0,
        parent,
        no_parent: args.force,
        exclude: ExcludeOptions {
            patterns: args.excludes,
            pattern_files: args.exclude_files,
            if_present: args.exclude_if_present,
            larger_than,
            one_file_system: args.one_file_system,
        },
        dry_run: args.dry_run,
        checkpoint_interval: None,
    };
    let counters = Progress::default();
    let outcome = with_progress(config, &counters, || {
        match (&args.stdin_from_command, args.stdin) {
            (Some(cmd), _) => {
                snapshot_command(&mut repo, &options, &args.stdin_name, cmd, &counters)
            }
            (None, true) => {
                let mut stdin = std::io::stdin().lock();
                arca_core::snapshot_stream(
                    &mut repo,
                    &options,
                    &args.stdin_name,
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
    let unreadable = warn(&outcome);
    if outcome.id.is_some() {
        record(config, &outcome.snapshot);
    }
    if config.json {
        output::json(&SnapshotResultJson {
            snapshot: SnapshotJson::new(outcome.id.as_ref(), &outcome.snapshot),
            dry_run: args.dry_run,
            warnings: outcome
                .warnings
                .iter()
                .map(|w| Warning {
                    kind: match w.kind {
                        WarningKind::Unreadable => "unreadable",
                        WarningKind::Changed => "changed",
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
        output::line(format!(
            "read {}, added {} ({} stored) in {:.1} s",
            HumanBytes(s.bytes_read),
            HumanBytes(s.bytes_added),
            HumanBytes(s.bytes_stored),
            s.duration_ms as f64 / 1000.0
        ));
    }
    if unreadable == 0 {
        Ok(exit::SUCCESS)
    } else {
        config.note(format!(
            "arca: {unreadable} source entries could not be read; the snapshot holds everything else"
        ));
        Ok(exit::PARTIAL)
    }
}

/// The saved snapshot's figures for `--metrics-file`.
pub(crate) fn record(config: &Config, snapshot: &arca_core::Snapshot) {
    use crate::metrics::*;
    let m = &config.metrics;
    let time = snapshot.time.at;
    m.set(
        &SNAPSHOT_TIME,
        time.seconds as f64 + f64::from(time.nanos) / 1e9,
    );
    if let Some(s) = &snapshot.summary {
        m.set(&SNAPSHOT_BYTES_ADDED, s.bytes_added as f64);
        m.set(&SNAPSHOT_BYTES_PROCESSED, s.total_bytes as f64);
        m.set(&SNAPSHOT_FILES_PROCESSED, s.total_files as f64);
        m.set(&SNAPSHOT_ERRORS, s.errors as f64);
    }
}

/// Runs `work` (one of the engine's snapshot calls, reporting to
/// `counters`) under a progress spinner.
pub(crate) fn with_progress(
    config: &Config,
    counters: &Progress,
    work: impl FnOnce() -> Result<arca_core::SnapshotOutcome>,
) -> Result<arca_core::SnapshotOutcome> {
    let bar = progress::spinner("{spinner} {elapsed} {msg}");
    let started = std::time::Instant::now();
    progress::with_bar(
        config.progress,
        bar,
        |bar| {
            let read = counters.bytes_read.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64().max(0.001);
            bar.set_message(format!(
                "{} files, {} read ({}/s), {} new",
                counters.files.load(Ordering::Relaxed),
                HumanBytes(read),
                HumanBytes((read as f64 / secs) as u64),
                HumanBytes(counters.bytes_added.load(Ordering::Relaxed)),
            ));
            bar.tick();
        },
        work,
    )
}

/// Prints the outcome's warnings on stderr; returns how many source
/// entries could not be read.
pub(crate) fn warn(outcome: &arca_core::SnapshotOutcome) -> usize {
    for w in &outcome.warnings {
        let what = match w.kind {
            WarningKind::Unreadable => "cannot read",
            WarningKind::Changed => "file changed",
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
        .filter(|w| w.kind == WarningKind::Unreadable)
        .count()
}

/// Stores the output of `sh -c CMD`; a failing command saves nothing.
fn snapshot_command(
    repo: &mut arca_core::Repository,
    options: &SnapshotOptions,
    name: &str,
    cmd: &str,
    counters: &Progress,
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
    let mut finish = || {
        let status = child
            .wait()
            .map_err(|e| arca_core::Error::InvalidInput(format!("{cmd:?}: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(arca_core::Error::InvalidInput(format!(
                "command {cmd:?} failed ({status}); no snapshot was saved"
            )))
        }
    };
    Ok(arca_core::snapshot_stream(
        repo,
        options,
        name,
        &mut stdout,
        &mut finish,
        counters,
    )?)
}

/// Parses RFC 3339 (with offset) or a local "YYYY-MM-DD[ HH:MM[:SS]]".
pub fn parse_time(text: &str) -> Result<Time> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(Time::from_zoned(&ts.to_zoned(jiff::tz::TimeZone::system())));
    }
    let civil = text.parse::<jiff::civil::DateTime>().or_else(|_| {
        text.parse::<jiff::civil::Date>()
            .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
    });
    match civil {
        Ok(dt) => {
            let zoned = dt
                .to_zoned(jiff::tz::TimeZone::system())
                .with_context(|| format!("time {text:?} does not exist in the local time zone"))?;
            Ok(Time::from_zoned(&zoned))
        }
        Err(_) => bail!("{text:?} is not a time: use RFC 3339 or \"YYYY-MM-DD HH:MM:SS\""),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_parse_in_every_accepted_form() {
        let t = parse_time("2026-03-01T14:30:00.5+02:00").unwrap();
        assert_eq!(t.at.seconds, 1_772_368_200);
        assert_eq!(t.at.nanos, 500_000_000);
        assert!(parse_time("2026-03-01 14:30:00").is_ok());
        assert!(parse_time("2026-03-01").is_ok());
        assert!(parse_time("yesterday-ish").is_err());
    }
}
