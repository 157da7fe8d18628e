//! `arca pg`: PostgreSQL's archive_command and restore_command.

use anyhow::{Context, Result};
use arca_core::Archived;
use serde::Serialize;

use crate::cli::PgCommand;
use crate::config::Config;
use crate::{exit, metrics, output, session};

#[derive(Serialize)]
struct ArchiveJson<'a> {
    file: &'a str,
    object: String,
    stored: bool,
}

#[derive(Serialize)]
struct RestoreJson<'a> {
    file: &'a str,
    size: u64,
    archived: String,
}

pub fn run(config: &Config, command: PgCommand) -> Result<i32> {
    match command {
        PgCommand::ArchiveWal {
            path,
            verify_upload,
        } => {
            let result = archive(config, &path, verify_upload);
            // Every failure counts, whatever stopped the run (a wrong
            // password as much as full storage): PostgreSQL retries each.
            let failed = !matches!(result, Ok(exit::SUCCESS));
            config
                .metrics
                .add(&metrics::WAL_ARCHIVE_FAILURES, f64::from(u8::from(failed)));
            result
        }
        PgCommand::RestoreWal { name, path } => restore(config, &name, &path),
    }
}

/// A name PostgreSQL would not pass is a mistake in the command line:
/// refused before the repository is opened (and its key derived).
fn check_name(name: &str) -> Result<()> {
    if arca_core::is_wal_file_name(name) {
        Ok(())
    } else {
        Err(exit::Usage(format!(
            "{} is not a PostgreSQL WAL file name (a segment, .history, .backup or .partial file)",
            output::sanitize(name)
        ))
        .into())
    }
}

fn archive(config: &Config, path: &std::path::Path, verify_upload: bool) -> Result<i32> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    check_name(name)?;
    let mut repo = session::open_unindexed(config)?;
    repo.set_verify_uploads(verify_upload);
    let outcome = arca_core::archive_wal(&repo, path)
        .with_context(|| format!("while archiving {}", path.display()))?;
    if config.json {
        output::json(&ArchiveJson {
            file: name,
            object: arca_core::wal_object_name(&repo, name)?,
            stored: outcome == Archived::Stored,
        });
    } else {
        config.note(match outcome {
            Archived::Stored => format!("archived {name}"),
            Archived::AlreadyPresent => {
                format!("{name} was already archived with the same content")
            }
        });
    }
    config.metrics.set(&metrics::WAL_LAST_ARCHIVED, unix_now());
    config.report_transfers();
    Ok(exit::SUCCESS)
}

fn unix_now() -> f64 {
    jiff::Timestamp::now().as_duration().as_secs_f64()
}

fn restore(config: &Config, name: &str, path: &std::path::Path) -> Result<i32> {
    check_name(name)?;
    let repo = session::open_unindexed(config)?;
    let restored = arca_core::restore_wal(&repo, name, path)
        .with_context(|| format!("while restoring {name}"))?;
    let Some(header) = restored else {
        // PostgreSQL asks for files past the end of the archive all the
        // time: absence is an answer, not an error worth a line in its log,
        // nor a run worth recording (a standby asks every few seconds, and
        // its exit code 1 would look like a failure).
        config.metrics.discard();
        return Ok(exit::ERROR);
    };
    if config.json {
        output::json(&RestoreJson {
            file: name,
            size: header.size,
            archived: header.archived.to_rfc3339(),
        });
    } else {
        config.note(format!("restored {name} ({} bytes)", header.size));
    }
    config.report_transfers();
    Ok(exit::SUCCESS)
}
