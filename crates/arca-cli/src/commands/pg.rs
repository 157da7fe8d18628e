//! `arca pg`: PostgreSQL's archive_command and restore_command, base
//! backups and point-in-time recovery.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use arca_core::pg::{self, BaseBackup, BaseBackupSnapshot, Recovery};
use arca_core::{Archived, SnapshotOptions, SnapshotProgress};
use indicatif::HumanBytes;
use serde::Serialize;

use crate::cli::{PgBackupArgs, PgCommand, PgRestoreArgs};
use crate::config::Config;
use crate::json::SnapshotJson;
use crate::password::PasswordSource;
use crate::{exit, metrics, output, session, steps};

/// The exit code the restore command `pg restore` writes asks for on any
/// failure but absence: above 125, so PostgreSQL stops recovery.
const RECOVERY_ERROR_EXIT: u8 = 255;

#[derive(Serialize)]
struct ArchiveJson<'a> {
    file: &'a str,
    object: String,
    stored: bool,
    agent: bool,
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
            agent,
        } => {
            let result = archive(config, &path, verify_upload, agent);
            // Every failure counts, whatever stopped the run (a wrong
            // password as much as full storage): PostgreSQL retries each.
            let failed = !matches!(result, Ok(exit::SUCCESS));
            config
                .metrics
                .add(&metrics::WAL_ARCHIVE_FAILURES, f64::from(u8::from(failed)));
            result
        }
        PgCommand::RestoreWal {
            name,
            path,
            error_exit,
        } => match restore(config, &name, &path) {
            Err(e) if error_exit.is_some() && exit::for_error(&e) != exit::USAGE => {
                eprintln!("arca: {}", output::sanitize(&crate::message(&e)));
                Ok(i32::from(error_exit.unwrap_or(1)))
            }
            other => other,
        },
        PgCommand::Agent => crate::agent::serve(config),
        PgCommand::Backup(args) => backup(config, args),
        PgCommand::Restore(args) => recover(config, args),
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

fn archive(
    config: &Config,
    path: &std::path::Path,
    verify_upload: bool,
    agent: bool,
) -> Result<i32> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    check_name(name)?;
    let through_agent = agent
        .then(|| crate::agent::archive(config, path, verify_upload))
        .flatten();
    let via_agent = through_agent.is_some();
    let (outcome, object) = match through_agent {
        Some(reply) => {
            if let Some((message, code)) = reply.error {
                eprintln!("arca: {}", output::sanitize(&message));
                return Ok(code);
            }
            let outcome = if reply.stored {
                Archived::Stored
            } else {
                Archived::AlreadyPresent
            };
            (outcome, reply.object)
        }
        None => {
            let mut repo = session::open_unindexed(config)?;
            repo.set_verify_uploads(verify_upload);
            let outcome = arca_core::archive_wal(&repo, path)
                .with_context(|| format!("while archiving {}", path.display()))?;
            (outcome, arca_core::wal_object_name(&repo, name)?)
        }
    };
    if config.json {
        output::json(&ArchiveJson {
            file: name,
            object,
            stored: outcome == Archived::Stored,
            agent: via_agent,
        });
    } else {
        let by = if via_agent { " (by the agent)" } else { "" };
        config.note(match outcome {
            Archived::Stored => format!("archived {name}{by}"),
            Archived::AlreadyPresent => {
                format!("{name} was already archived with the same content{by}")
            }
        });
    }
    config.metrics.set(&metrics::WAL_LAST_ARCHIVED, unix_now());
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
    Ok(exit::SUCCESS)
}

#[derive(Serialize)]
struct BackupJson<'a> {
    #[serde(flatten)]
    snapshot: SnapshotJson<'a>,
    backup: &'a BaseBackup,
}

/// `pg backup`: pg_basebackup's tar stream straight into a snapshot.
fn backup(config: &Config, args: PgBackupArgs) -> Result<i32> {
    let program = args
        .pg_basebackup
        .clone()
        .unwrap_or_else(find_pg_basebackup);
    let mut repo = session::open(config)?;
    repo.set_verify_uploads(args.verify_upload);
    let options = SnapshotOptions {
        paths: Vec::new(),
        hostname: args.host.clone().unwrap_or_else(session::hostname),
        username: session::username(),
        tags: args.tags.clone(),
        description: "PostgreSQL base backup".into(),
        time: None,
        threads: 0,
        parent: None,
        no_parent: true,
        exclude: Default::default(),
        dry_run: false,
        ..Default::default()
    };
    let mut command = Command::new(&program);
    command.args([
        "-D",
        "-",
        "--format=tar",
        "--wal-method=none",
        "--no-password",
    ]);
    command.arg(if args.fast {
        "--checkpoint=fast"
    } else {
        "--checkpoint=spread"
    });
    command.args(["--label", "arca base backup"]);
    if let Some(host) = &args.pg_host {
        command.args(["-h", host]);
    }
    if let Some(port) = args.pg_port {
        command.args(["-p", &port.to_string()]);
    }
    if let Some(user) = &args.pg_user {
        command.args(["-U", user]);
    }
    command.args(&args.extra);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot run {}", program.display()))?;
    let Some(mut stdout) = child.stdout.take() else {
        bail!("cannot read the output of {}", program.display());
    };
    let shown = program.display().to_string();
    let mut finish = || steps::command_finished(&mut child, &shown, "base backup");
    let progress = SnapshotProgress::default();
    let result = pg::backup(&mut repo, &options, &mut stdout, &mut finish, &progress);
    drop(stdout);
    let (outcome, record) = match result {
        Ok(done) => done,
        Err(e) => {
            // The stream is not wanted any more: do not leave the command
            // running (it ends on the closed pipe, or here).
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.into());
        }
    };
    steps::record_snapshot(config, &outcome.snapshot);
    let id = outcome
        .id
        .ok_or_else(|| anyhow::anyhow!("the base backup was not saved"))?;
    if config.json {
        output::json(&BackupJson {
            snapshot: SnapshotJson::new(Some(&id), &outcome.snapshot),
            backup: &record,
        });
    } else if !config.quiet {
        let s = outcome.snapshot.summary.clone().unwrap_or_default();
        output::line(format!(
            "base backup {} saved: PostgreSQL {}, timeline {}, WAL {} to {} (from {})",
            id.short(),
            record.pg_version,
            record.timeline,
            record.start_lsn,
            record.stop_lsn,
            record.start_wal
        ));
        output::line(steps::transfer_line(&s));
    }
    Ok(exit::SUCCESS)
}

/// `pg_basebackup` on PATH, else the newest under /usr/lib/postgresql.
fn find_pg_basebackup() -> PathBuf {
    let name = "pg_basebackup";
    let on_path = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()));
    if on_path {
        return PathBuf::from(name);
    }
    let newest = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let path = e.path().join("bin").join(name);
            path.is_file().then_some((version, path))
        })
        .max();
    newest.map_or_else(|| PathBuf::from(name), |(_, path)| path)
}

#[derive(Serialize)]
struct RecoverJson<'a> {
    snapshot: String,
    backup: &'a BaseBackup,
    target: String,
    target_time: Option<String>,
    files: u64,
    bytes: u64,
    restore_command: &'a str,
    start_command: &'a str,
}

/// `pg restore`: a base backup unpacked and set to recover to a time.
fn recover(config: &Config, args: PgRestoreArgs) -> Result<i32> {
    let target_time = args.as_of.as_ref().map(|t| t.0);
    // Refused before the repository is opened (and its key derived).
    pg::check_target(&args.target)?;
    let restore_command = restore_command(config)?;
    let repo = session::open(config)?;
    let mut snapshots = repo.snapshots()?;
    if let Some(host) = &args.host {
        snapshots.retain(|(_, s)| s.hostname == *host);
    }
    let (backups, unreadable) = pg::base_backups(&repo, &snapshots);
    for (id, e) in &unreadable {
        config.note(format!(
            "arca: warning: base backup {} is left out: {}",
            id.short(),
            output::sanitize(&e.to_string())
        ));
    }
    let chosen: &BaseBackupSnapshot = match &args.snapshot {
        Some(spec) => {
            let id = repo.resolve_snapshot_id(spec)?;
            backups.iter().find(|b| b.id == id).ok_or_else(|| {
                anyhow::anyhow!(
                    "snapshot {} is not a base backup (tag {}) with a readable record",
                    id.short(),
                    pg::BASE_BACKUP_TAG
                )
            })?
        }
        None => pg::choose(&backups, target_time).ok_or_else(|| {
            let location = output::sanitize(&repo.location());
            match (target_time, backups.first()) {
                (_, None) => anyhow::anyhow!("repository {location} holds no base backup"),
                (Some(t), Some(oldest)) => anyhow::anyhow!(
                    "repository {location} holds no base backup that ended by {}; the oldest ended at {}",
                    t.to_local_string(),
                    oldest.backup.stop_time
                ),
                (None, Some(_)) => anyhow::anyhow!("repository {location} holds no usable base backup"),
            }
        })?,
    };
    if let (Some(t), Ok(stopped)) = (target_time, chosen.backup.stopped())
        && stopped > t
    {
        bail!(
            "base backup {} ended at {}, after {}; recovery cannot stop before a backup's end",
            chosen.id.short(),
            stopped.to_local_string(),
            t.to_local_string()
        );
    }
    let report = pg::unpack_base_backup(&repo, chosen, &args.target).with_context(|| {
        format!(
            "while unpacking base backup {} into {} (what is there now is incomplete: empty it before trying again)",
            chosen.id.short(),
            args.target.display()
        )
    })?;
    pg::write_recovery(
        &args.target,
        &Recovery {
            restore_command: restore_command.clone(),
            target_time,
        },
    )?;
    let start = start_command(&args.target, &chosen.backup, report.owner);
    if config.json {
        output::json(&RecoverJson {
            snapshot: chosen.id.to_hex(),
            backup: &chosen.backup,
            target: args.target.display().to_string(),
            target_time: target_time.map(|t| t.to_rfc3339()),
            files: report.files,
            bytes: report.bytes,
            restore_command: &restore_command,
            start_command: &start,
        });
        return Ok(exit::SUCCESS);
    }
    config.note(format!(
        "unpacked base backup {} (PostgreSQL {}, ended {}) into {}: {} files, {}",
        chosen.id.short(),
        chosen.backup.pg_version,
        chosen
            .backup
            .stopped()
            .map_or_else(|_| chosen.backup.stop_time.clone(), |t| t.to_local_string()),
        args.target.display(),
        report.files,
        HumanBytes(report.bytes)
    ));
    config.note(match target_time {
        Some(t) => format!(
            "the server will replay the archived WAL up to {} and then open; start it with:",
            t.to_local_string()
        ),
        None => "the server will replay all archived WAL and then open; start it with:".into(),
    });
    output::line(&start);
    if matches!(config.password, PasswordSource::EnvOrPrompt(_)) {
        config.note(
            "arca: note: the restore command reads the password from ARCA_PASSWORD in the server's environment; give --password-file with a file the server's user can read instead",
        );
    }
    Ok(exit::SUCCESS)
}

/// The restore_command for recovery: this arca, with this run's
/// repository, profile and password source, quoted for the shell.
fn restore_command(config: &Config) -> Result<String> {
    let exe = std::env::current_exe().context("cannot tell where this arca program is")?;
    let mut parts: Vec<String> = vec![exe.display().to_string()];
    parts.extend(session::repository_args(config));
    parts.extend(["-q", "pg", "restore-wal", "--error-exit"].map(String::from));
    parts.push(RECOVERY_ERROR_EXIT.to_string());
    let mut line: Vec<String> = parts.iter().map(|p| shell_quote(p)).collect();
    line.push("%f".into());
    line.push("\"%p\"".into());
    Ok(line.join(" "))
}

/// `text` as one shell word.
fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=:,@+".contains(&b));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// The command that starts the recovered server: pg_ctl of the backup's
/// version, as the files' owner when that is not who runs this.
fn start_command(datadir: &Path, backup: &BaseBackup, owner: Option<(u32, u32)>) -> String {
    let versioned = PathBuf::from(format!(
        "/usr/lib/postgresql/{}/bin/pg_ctl",
        backup.pg_version
    ));
    let pg_ctl = if versioned.is_file() {
        versioned.display().to_string()
    } else {
        "pg_ctl".to_string()
    };
    let datadir = std::path::absolute(datadir).unwrap_or_else(|_| datadir.to_path_buf());
    let command = format!(
        "{} -D {} -l {} start",
        shell_quote(&pg_ctl),
        shell_quote(&datadir.display().to_string()),
        shell_quote(&datadir.join("recovery.log").display().to_string())
    );
    let me = nix::unistd::geteuid().as_raw();
    match owner {
        Some((uid, _)) if uid != me => {
            match nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) {
                Ok(Some(user)) => format!("runuser -u {} -- {command}", shell_quote(&user.name)),
                _ => command,
            }
        }
        _ => command,
    }
}
