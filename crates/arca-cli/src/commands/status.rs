//! `arca status`: the newest snapshot of each host and path set and how old
//! it is (the recovery point objective actually met), and for PostgreSQL
//! the WAL archive: its newest file, the point-in-time recovery window and
//! the archiving failures counted in the metrics file; for people and for
//! monitoring. Reads snapshot files and a few WAL headers only, so it needs
//! no index and no lock.

use std::path::PathBuf;

use anyhow::Result;
use arca_core::select::{self, GroupNewest};
use arca_core::{Repository, Snapshot, SnapshotId, Time, WalHeader, WalSummary};
use indicatif::HumanBytes;
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::config::Config;
use crate::{exit, metrics, output, session, units};

// The tag `arca pg backup` gives base backups; the oldest one starts the
// recovery window.
use arca_core::pg::BASE_BACKUP_TAG;

#[derive(Serialize)]
struct StatusJson {
    groups: Vec<GroupJson>,
    max_age_seconds: Option<u64>,
    wal: WalJson,
    recovery_window: Option<WindowJson>,
    ok: bool,
}

#[derive(Serialize)]
struct GroupJson {
    hostname: String,
    paths: Vec<String>,
    latest: LatestJson,
    age_seconds: u64,
    stale: bool,
}

#[derive(Serialize)]
struct LatestJson {
    id: String,
    short_id: String,
    time: String,
}

#[derive(Serialize)]
struct WalJson {
    objects: u64,
    bytes: u64,
    newest: Option<NewestWalJson>,
    damaged: usize,
    archive_failures: Option<u64>,
    stale: bool,
    max_age_seconds: Option<u64>,
}

#[derive(Serialize)]
struct NewestWalJson {
    file: String,
    archived: String,
    age_seconds: u64,
}

#[derive(Serialize)]
struct WindowJson {
    from: String,
    to: String,
    seconds: u64,
}

/// The newest snapshot of one (host, paths) group, and its age.
struct Group {
    newest: GroupNewest,
    age_seconds: u64,
}

/// The WAL archive as status reports it.
struct Wal {
    summary: WalSummary,
    /// The newest file's age.
    age_seconds: Option<u64>,
    /// `--max-wal-age` in seconds.
    max_age: Option<u64>,
    failures: Failures,
}

/// What the metrics file says of archiving failures.
enum Failures {
    /// No metrics file is in use.
    NoFile,
    /// The file holds no count for this repository.
    NotRecorded(PathBuf),
    /// The count, and the file it is from.
    Counted(u64, PathBuf),
    /// The file could not be read.
    Unreadable(String),
}

impl Wal {
    fn newest(&self) -> Option<&WalHeader> {
        self.summary.newest.as_ref()
    }

    /// Shown when there is WAL or it was asked about.
    fn shown(&self) -> bool {
        self.summary.objects > 0 || self.max_age.is_some()
    }

    /// No readable WAL file, or the newest older than `--max-wal-age`.
    fn stale(&self) -> bool {
        self.max_age
            .is_some_and(|max| self.age_seconds.is_none_or(|age| age > max))
    }
}

/// From the oldest base backup to the newest archived WAL file.
struct Window {
    from: Time,
    to: Time,
}

impl Window {
    fn seconds(&self) -> u64 {
        u64::try_from(self.to.at.seconds - self.from.at.seconds).unwrap_or(0)
    }
}

pub fn run(config: &Config, args: StatusArgs) -> Result<i32> {
    let max_age = args.max_age.map(|d| d.0.as_secs());
    let repo = session::open_unindexed(config)?;
    let filter = args.filter.filter();
    let snapshots = repo.snapshots()?;
    let window_from = oldest_base_backup(&snapshots, filter.host.as_deref());
    let matching = snapshots
        .into_iter()
        .filter(|(_, s)| filter.matches(s))
        .collect();
    let groups: Vec<Group> = select::newest_per_group(matching)
        .into_iter()
        .map(|newest| Group {
            age_seconds: units::age_seconds(newest.snapshot.time),
            newest,
        })
        .collect();
    let wal = find_wal(config, &repo, args.max_wal_age.map(|d| d.0.as_secs()))?;
    let window = match (window_from, wal.newest()) {
        // A window needs WAL from the base backup on; none archived since
        // it started is no window yet.
        (Some(from), Some(newest)) if newest.archived >= from => Some(Window {
            from,
            to: newest.archived,
        }),
        _ => None,
    };
    record(config, &groups, &wal, window.as_ref());
    let is_stale = |g: &Group| max_age.is_some_and(|max| g.age_seconds > max);
    let ok =
        !groups.iter().any(is_stale) && (max_age.is_none() || !groups.is_empty()) && !wal.stale();

    if config.json {
        output::json(&StatusJson {
            groups: groups
                .iter()
                .map(|g| GroupJson {
                    hostname: g.newest.hostname.clone(),
                    paths: g.newest.paths.clone(),
                    latest: LatestJson {
                        id: g.newest.id.to_hex(),
                        short_id: g.newest.id.short(),
                        time: g.newest.snapshot.time.to_rfc3339(),
                    },
                    age_seconds: g.age_seconds,
                    stale: is_stale(g),
                })
                .collect(),
            max_age_seconds: max_age,
            wal: wal_json(&wal),
            recovery_window: window.as_ref().map(|w| WindowJson {
                from: w.from.to_rfc3339(),
                to: w.to.to_rfc3339(),
                seconds: w.seconds(),
            }),
            ok,
        });
    } else if !config.quiet {
        // Under -q a monitoring check says only what is wrong.
        print_table(&groups);
        if wal.shown() {
            print_wal(&wal, window.as_ref(), window_from.is_some());
        }
    }
    if groups.is_empty() {
        let message = format!(
            "arca: repository {} has no matching snapshots",
            output::sanitize(&repo.location())
        );
        // Only a failure under --max-age; otherwise just information.
        if max_age.is_some() {
            eprintln!("{message}");
        } else {
            config.note(message);
        }
    }
    for g in groups.iter().filter(|g| is_stale(g)) {
        eprintln!(
            "arca: {} {}: newest snapshot {} is {} old, more than {}",
            output::sanitize(&g.newest.hostname),
            output::sanitize(&g.newest.paths.join(",")),
            g.newest.id.short(),
            units::format_age(g.age_seconds),
            units::format_age(max_age.unwrap_or(0)),
        );
    }
    report_wal_problems(&repo, &wal);
    Ok(if ok { exit::SUCCESS } else { exit::ERROR })
}

/// The time of the oldest snapshot tagged as a base backup (of `host`,
/// when given); `snapshots` come oldest first.
fn oldest_base_backup(snapshots: &[(SnapshotId, Snapshot)], host: Option<&str>) -> Option<Time> {
    snapshots
        .iter()
        .map(|(_, s)| s)
        .find(|s| {
            s.tags.iter().any(|t| t == BASE_BACKUP_TAG) && host.is_none_or(|h| s.hostname == h)
        })
        .map(|s| s.time)
}

fn find_wal(config: &Config, repo: &Repository, max_age: Option<u64>) -> Result<Wal> {
    let summary = arca_core::wal_summary(repo)?;
    let age_seconds = summary
        .newest
        .as_ref()
        .map(|h| units::age_seconds(h.archived));
    let failures = match &config.metrics_file {
        None => Failures::NoFile,
        Some(path) => {
            let repository = config.repo.as_deref().unwrap_or("");
            match metrics::read_sum(path, &metrics::WAL_ARCHIVE_FAILURES, repository) {
                Ok(Some(count)) => Failures::Counted(count as u64, path.clone()),
                Ok(None) => Failures::NotRecorded(path.clone()),
                Err(e) => Failures::Unreadable(format!("{e:#}")),
            }
        }
    };
    Ok(Wal {
        summary,
        age_seconds,
        max_age,
        failures,
    })
}

/// The WAL and recovery window figures, and each host's newest snapshot,
/// for `--metrics-file`.
fn record(config: &Config, groups: &[Group], wal: &Wal, window: Option<&Window>) {
    let m = &config.metrics;
    let mut hosts: Vec<(&str, Time)> = Vec::new();
    for g in groups {
        let time = g.newest.snapshot.time;
        match hosts.iter_mut().find(|(h, _)| *h == g.newest.hostname) {
            Some((_, newest)) => *newest = (*newest).max(time),
            None => hosts.push((&g.newest.hostname, time)),
        }
    }
    for (host, time) in hosts {
        let labels = [("hostname", host)];
        m.set_labelled(
            &metrics::NEWEST_SNAPSHOT,
            &labels,
            units::unix_seconds(time),
        );
    }
    if let Some(newest) = wal.newest() {
        let archived = units::unix_seconds(newest.archived);
        m.set(&metrics::WAL_NEWEST_ARCHIVED, archived);
    }
    if let Some(w) = window {
        m.set(&metrics::RECOVERY_WINDOW_START, units::unix_seconds(w.from));
        m.set(&metrics::RECOVERY_WINDOW_END, units::unix_seconds(w.to));
        m.set(&metrics::RECOVERY_WINDOW, w.seconds() as f64);
    }
}

fn wal_json(wal: &Wal) -> WalJson {
    WalJson {
        objects: wal.summary.objects,
        bytes: wal.summary.bytes,
        newest: wal.newest().map(|h| NewestWalJson {
            file: h.name.clone(),
            archived: h.archived.to_rfc3339(),
            age_seconds: wal.age_seconds.unwrap_or(0),
        }),
        damaged: wal.summary.damaged.len(),
        archive_failures: match wal.failures {
            Failures::Counted(n, _) => Some(n),
            _ => None,
        },
        stale: wal.stale(),
        max_age_seconds: wal.max_age,
    }
}

/// Damaged headers (always), and a missing or stale WAL archive under
/// `--max-wal-age`, one line each on stderr.
fn report_wal_problems(repo: &Repository, wal: &Wal) {
    for problem in &wal.summary.damaged {
        eprintln!(
            "arca: warning: {}; run arca check",
            output::sanitize(problem)
        );
    }
    if !wal.stale() {
        return;
    }
    let location = output::sanitize(&repo.location());
    let max = units::format_age(wal.max_age.unwrap_or(0));
    match (wal.newest(), wal.age_seconds) {
        (Some(newest), Some(age)) => eprintln!(
            "arca: repository {location}: newest archived WAL file {} was archived {} ago, more than {max}",
            output::sanitize(&newest.name),
            units::format_age(age),
        ),
        _ if wal.summary.objects == 0 => {
            eprintln!("arca: repository {location} has no archived WAL file");
        }
        _ => eprintln!(
            "arca: repository {location}: none of its {} WAL objects could be read",
            wal.summary.objects
        ),
    }
}

fn print_table(groups: &[Group]) {
    let rows: Vec<[String; 5]> = groups
        .iter()
        .map(|g| {
            [
                output::sanitize(&g.newest.hostname),
                output::sanitize(&g.newest.paths.join(",")),
                g.newest.id.short(),
                g.newest.snapshot.time.to_local_string(),
                units::format_age(g.age_seconds),
            ]
        })
        .collect();
    let host_w = rows.iter().map(|r| r[0].len()).max().unwrap_or(0).max(4);
    let paths_w = rows.iter().map(|r| r[1].len()).max().unwrap_or(0).max(5);
    output::line(format!(
        "{:<host_w$}  {:<paths_w$}  {:<8}  {:<19}  Age",
        "Host", "Paths", "Latest", "Time"
    ));
    for [host, paths, id, time, age] in &rows {
        output::line(format!(
            "{host:<host_w$}  {paths:<paths_w$}  {id:<8}  {time:<19}  {age}"
        ));
    }
}

fn print_wal(wal: &Wal, window: Option<&Window>, has_base_backup: bool) {
    let s = &wal.summary;
    let files = if s.objects == 1 { "file" } else { "files" };
    output::line(format!(
        "\nWAL archive: {} {files}, {}",
        s.objects,
        HumanBytes(s.bytes)
    ));
    let newest = match (wal.newest(), wal.age_seconds) {
        (Some(h), Some(age)) => format!(
            "{}, archived {} ({} ago)",
            output::sanitize(&h.name),
            h.archived.to_local_string(),
            units::format_age(age)
        ),
        _ => "none".into(),
    };
    output::line(format!("  newest file:        {newest}"));
    let window = match window {
        Some(w) => format!(
            "{} to {} ({})",
            w.from.to_local_string(),
            w.to.to_local_string(),
            units::format_age(w.seconds())
        ),
        None if !has_base_backup => format!("none (no base backup tagged {BASE_BACKUP_TAG})"),
        None => "none (no WAL archived since the oldest base backup)".into(),
    };
    output::line(format!("  recovery window:    {window}"));
    let failures = match &wal.failures {
        Failures::Counted(n, path) => format!("{n} (counted in {})", path.display()),
        Failures::NotRecorded(path) => {
            format!("none recorded in {} yet", path.display())
        }
        Failures::NoFile => {
            "not known: no metrics file (pg archive-wal counts them in --metrics-file)".into()
        }
        Failures::Unreadable(why) => format!("not known: {why}"),
    };
    output::line(format!(
        "  archive failures:   {}",
        output::sanitize(&failures)
    ));
}
