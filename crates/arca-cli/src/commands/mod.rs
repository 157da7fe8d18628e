//! One file per command; this module dispatches and holds what they share.

mod check;
mod copy;
mod diff;
mod drill;
mod dump;
mod find;
mod forget;
mod init;
mod key;
pub(crate) mod ls;
mod prune;
mod repair;
mod restore;
mod run;
pub(crate) mod snapshot;
mod snapshots;
mod stats;
mod status;
mod unlock;

use anyhow::Result;
use arca_core::{Repository, Snapshot, SnapshotId};
use serde::Serialize;

use crate::cli::Command;
use crate::config::Config;

/// Runs one command; returns the exit code. Snapshot, forget, prune and
/// check then write `--metrics-file`, also when they fail.
pub fn run(config: &Config, command: Command) -> Result<i32> {
    let metered = crate::metrics::command_name(&command);
    let started = std::time::Instant::now();
    let result = dispatch(config, command);
    if let (Some(name), Some(path)) = (metered, &config.metrics_file) {
        let run = crate::metrics::Run {
            command: name,
            profile: config.profile.as_ref().map_or("", |p| p.name.as_str()),
            repository: config.repo.as_deref().unwrap_or(""),
            exit_code: match &result {
                Ok(code) => *code,
                Err(e) => crate::exit::for_error(e),
            },
            duration: started.elapsed(),
            finished: jiff::Timestamp::now().as_duration().as_secs_f64(),
        };
        if let Err(e) = crate::metrics::write(path, &run, &config.metrics) {
            eprintln!(
                "arca: warning: {}",
                crate::output::sanitize(&format!("{e:#}"))
            );
        }
    }
    result
}

fn dispatch(config: &Config, command: Command) -> Result<i32> {
    match command {
        Command::Init(args) => init::run(config, args),
        Command::Snapshot(args) => snapshot::run(config, *args),
        Command::Snapshots(args) => snapshots::run(config, args),
        Command::Ls(args) => ls::run(config, args),
        Command::Restore(args) => restore::run(config, args),
        Command::Check(args) => check::run(config, args),
        Command::Repair(command) => repair::run(config, command),
        Command::Stats(args) => stats::run(config, args),
        Command::Find(args) => find::run(config, args),
        Command::Diff(args) => diff::run(config, args),
        Command::Dump(args) => dump::run(config, args),
        Command::Forget(args) => forget::run(config, *args),
        Command::Prune(args) => prune::run(config, args),
        Command::Unlock(args) => unlock::run(config, args),
        Command::Key(command) => key::run(config, command),
        Command::Copy(args) => copy::run(config, args),
        Command::Status(args) => status::run(config, args),
        Command::Drill(args) => drill::run(config, args),
        Command::Run(args) => run::run(config, args),
    }
}

/// Opens the configured repository and loads its index.
fn open_repository(config: &Config) -> Result<Repository> {
    let mut repo = open_unindexed(config)?;
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

/// Which snapshots a command considers.
pub(crate) struct SnapshotFilter<'a> {
    pub host: Option<&'a str>,
    pub paths: &'a [String],
    pub tags: &'a [String],
}

impl SnapshotFilter<'_> {
    pub fn matches(&self, s: &Snapshot) -> bool {
        let paths = s.path_strings();
        self.host.is_none_or(|h| s.hostname == h)
            && self.tags.iter().all(|t| s.tags.contains(t))
            && self.paths.iter().all(|p| paths.contains(p))
    }
}

/// Resolves a snapshot: an id or prefix; `latest` (newest matching the
/// filter); or, with `as_of`, the newest at or before that time, which must
/// be unambiguous across hosts and path sets.
fn select_snapshot(
    repo: &Repository,
    spec: Option<&str>,
    as_of: Option<arca_core::Time>,
    filter: &SnapshotFilter,
) -> Result<(SnapshotId, Snapshot)> {
    if let Some(spec) = spec.filter(|s| *s != "latest") {
        return Ok(repo.find_snapshot(spec)?);
    }
    let mut candidates: Vec<(SnapshotId, Snapshot)> = repo
        .snapshots()?
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .filter(|(_, s)| as_of.is_none_or(|t| s.time <= t))
        .collect();
    if as_of.is_some() {
        let groups: std::collections::BTreeSet<(String, Vec<String>)> = candidates
            .iter()
            .map(|(_, s)| (s.hostname.clone(), s.path_strings()))
            .collect();
        if groups.len() > 1 {
            let list: Vec<String> = groups
                .iter()
                .map(|(h, p)| format!("{h}:{}", p.join(",")))
                .collect();
            anyhow::bail!(
                "--as-of matches snapshots of {} hosts or path sets ({}); narrow it with --host or --path",
                groups.len(),
                list.join("; ")
            );
        }
    }
    candidates.pop().ok_or_else(|| match as_of {
        Some(t) => anyhow::anyhow!("no snapshot taken at or before {t} matches"),
        None => anyhow::anyhow!("repository {} has no matching snapshots", repo.location()),
    })
}

/// One line per path a restore could not bring back whole: the path, the
/// byte ranges lost (for a file) and why.
fn damage_lines(damaged: &[arca_core::DamagedPath]) -> Vec<String> {
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

/// Parses `16MiB`, `512KiB`, `2G`, `1T`, `1048576`.
fn parse_size(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let bad = || anyhow::anyhow!("{text:?} is not a size (try 16MiB)");
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        "t" | "tib" | "tb" => 40,
        _ => return Err(bad()),
    };
    let n: u64 = digits.parse().map_err(|_| bad())?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| anyhow::anyhow!("size {text:?} is too large"))
}

/// Parses a duration: `0`, or numbers with units s, m (minutes), h, d, w,
/// e.g. `30s`, `10m`, `24h`, `1h30m`, `2d`.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration> {
    let bad = || anyhow::anyhow!("{text:?} is not a duration (try 30s, 10m, 24h or 2d)");
    let t = text.trim();
    if t == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    let mut total: u64 = 0;
    let mut rest = t;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let split = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (digits, after) = rest.split_at(split);
        let n: u64 = digits.parse().map_err(|_| bad())?;
        let unit = after.chars().next().ok_or_else(bad)?;
        let seconds = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(seconds)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        rest = &after[unit.len_utf8()..];
    }
    Ok(std::time::Duration::from_secs(total))
}

/// How long ago `time` was, in whole seconds; 0 for a time in the future
/// (a clock that was ahead when the snapshot was taken).
fn age_seconds(time: arca_core::Time) -> u64 {
    let now = arca_core::Time::now().at.seconds;
    u64::try_from(now.saturating_sub(time.at.seconds)).unwrap_or(0)
}

/// A duration for people, largest unit hours: `45s`, `10m 5s`, `27h 3m`,
/// `26h`.
fn format_age(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let parts: Vec<String> = if h > 0 {
        vec![format!("{h}h"), format!("{m}m")]
    } else if m > 0 {
        vec![format!("{m}m"), format!("{s}s")]
    } else {
        return format!("{s}s");
    };
    let kept: Vec<&String> = parts.iter().filter(|p| !p.starts_with('0')).collect();
    kept.iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Who this process is, as locks and key files record it.
fn owner() -> arca_core::Owner {
    arca_core::Owner {
        hostname: hostname(),
        username: username(),
    }
}

/// Takes a lock on the repository for `command`, waiting `--retry-lock`.
fn lock(
    config: &Config,
    repo: &Repository,
    mode: arca_core::LockMode,
    command: &str,
) -> Result<arca_core::Lock> {
    let record = arca_core::LockRecord::new(mode, command, &owner());
    let waiting = |holder: &str| {
        eprintln!(
            "arca: repository {} is locked by {}; waiting up to {} s",
            repo.location(),
            crate::output::sanitize(holder),
            config.retry_lock.as_secs()
        );
    };
    Ok(arca_core::Lock::acquire_as(
        repo,
        record,
        config.retry_lock,
        &waiting,
    )?)
}

/// Opens the configured repository without loading its index: for the
/// commands that check or rebuild the index itself.
fn open_unindexed(config: &Config) -> Result<Repository> {
    let Some(address) = config.repo.as_deref() else {
        anyhow::bail!("no repository given: use -r REPO or set ARCA_REPOSITORY");
    };
    let password = zeroize::Zeroizing::new(config.password.get()?);
    config.open_repository(address, &password)
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
    /// `None` only for a dry run, which saves no snapshot.
    id: Option<String>,
    short_id: Option<String>,
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
    /// For a repaired snapshot: the damaged original.
    original: Option<String>,
    /// For a copied snapshot: the repository and snapshot it came from.
    copied_from: Option<OriginJson>,
}

/// `{"repository": hex, "snapshot": hex}`.
#[derive(Serialize)]
struct OriginJson {
    repository: String,
    snapshot: String,
}

impl<'a> SnapshotJson<'a> {
    fn new(id: Option<&SnapshotId>, snap: &'a Snapshot) -> SnapshotJson<'a> {
        SnapshotJson {
            id: id.map(SnapshotId::to_hex),
            short_id: id.map(SnapshotId::short),
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
            original: snap.original.map(|o| o.to_hex()),
            copied_from: snap.copied_from.map(|o| OriginJson {
                repository: o.repository.to_hex(),
                snapshot: o.snapshot.to_hex(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_naturally() {
        assert_eq!(format_age(0), "0s");
        assert_eq!(format_age(45), "45s");
        assert_eq!(format_age(605), "10m 5s");
        assert_eq!(format_age(600), "10m");
        assert_eq!(format_age(26 * 3600), "26h");
        assert_eq!(format_age(27 * 3600 + 3 * 60 + 59), "27h 3m");
        assert_eq!(format_age(2 * 86_400), "48h");
    }
}
