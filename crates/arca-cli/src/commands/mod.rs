//! One file per command; this module dispatches and holds what they share.

mod init;
mod ls;
mod restore;
mod snapshot;
mod snapshots;

use anyhow::Result;
use arca_core::{Repository, Snapshot, SnapshotId};
use serde::Serialize;

use crate::cli::Command;
use crate::config::Config;

/// Runs one command; returns the exit code.
pub fn run(config: &Config, command: Command) -> Result<i32> {
    match command {
        Command::Init(args) => init::run(config, args),
        Command::Snapshot(args) => snapshot::run(config, args),
        Command::Snapshots(args) => snapshots::run(config, args),
        Command::Ls(args) => ls::run(config, args),
        Command::Restore(args) => restore::run(config, args),
    }
}

/// Opens the configured repository and loads its index.
fn open_repository(config: &Config) -> Result<Repository> {
    let backend = config.backend()?;
    let password = zeroize::Zeroizing::new(config.password.get()?);
    let mut repo = Repository::open(backend, &password)?;
    repo.load_index()?;
    if config.verbose > 0 {
        eprintln!(
            "opened repository {} at {}: {} blobs indexed",
            repo.config().id.short(),
            repo.location(),
            repo.index().len()
        );
    }
    Ok(repo)
}

/// The machine's host name.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The user running arca.
fn username() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default()
}

/// A snapshot as `--json` shows it; field names are part of the CLI contract.
#[derive(Serialize)]
struct SnapshotJson<'a> {
    id: String,
    short_id: String,
    time: String,
    tree: String,
    paths: Vec<String>,
    hostname: &'a str,
    username: &'a str,
    tags: &'a [String],
    description: &'a str,
    parent: Option<String>,
    program_version: &'a str,
    summary: Option<&'a arca_core::Summary>,
}

impl<'a> SnapshotJson<'a> {
    fn new(id: &SnapshotId, snap: &'a Snapshot) -> SnapshotJson<'a> {
        SnapshotJson {
            id: id.to_hex(),
            short_id: id.short(),
            time: snap.time.to_rfc3339(),
            tree: snap.tree.to_hex(),
            paths: snap.path_strings(),
            hostname: &snap.hostname,
            username: &snap.username,
            tags: &snap.tags,
            description: &snap.description,
            parent: snap.parent.map(|p| p.to_hex()),
            program_version: &snap.program_version,
            summary: snap.summary.as_ref(),
        }
    }
}
