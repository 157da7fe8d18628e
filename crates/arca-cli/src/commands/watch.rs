//! `arca watch`: continuous protection of live SQLite databases.
//!
//! The repository is opened once (deriving the key is the expensive part)
//! and kept open. Every `--every`, counted from the previous round's start
//! so rounds do not drift, a round reads each database's
//! [`ChangeStamp`]: a few bytes of its header and its write-ahead log's,
//! without opening it through SQLite or taking any lock. A database whose
//! stamp differs from the one read just before its last snapshot (or that
//! has none yet) gets a snapshot of its own: one snapshot per database, so
//! `restore --as-of TIME --path DB` picks it. The stamp is read before the
//! snapshot starts, so a commit made while it runs makes the next round
//! take another. An idle database costs one stamp read and no repository
//! access.
//!
//! Before a snapshot the index is refreshed when other processes changed
//! the index files (a nightly `run`, a prune), so deduplication never
//! relies on packs a prune marked or deleted meanwhile; a snapshot that
//! still fails (storage unreachable, packs removed under it) is reported in
//! one line, counted, and retried in the next round with a fully reloaded
//! index. After a snapshot (at most every five minutes) the retention
//! policy forgets that database's older watch snapshots of this host, and
//! nothing else. The snapshot's parent is the database's previous watch
//! snapshot, so a round reads no other snapshot file.
//!
//! What a round knows of a database (the stamp before its last snapshot,
//! and that snapshot) is also kept in the cache directory, so a restarted
//! watch, or `--once` from cron, snapshots only the databases that changed
//! since. It is a hint checked on start: the snapshot it names must still
//! be in the repository, of that database and host, or the database is
//! snapshotted again.
//!
//! SIGTERM and SIGINT are held ([`interrupt::Held`]): between rounds, and
//! between databases within one, a signal ends the command at once with
//! exit code 0. While a snapshot runs it is not held: the snapshot is
//! abandoned the usual way (`interrupt.rs`: temporary files removed,
//! nothing half-written, exit 128 + the signal).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use arca_core::ops::forget;
use arca_core::retention::{GroupBy, Policy};
use arca_core::select::SnapshotFilter;
use arca_core::sqlite::{ChangeStamp, SqliteMode};
use arca_core::{Repository, SnapshotId, SnapshotOptions, SnapshotProgress};
use indicatif::HumanBytes;
use serde::{Deserialize, Serialize};

use crate::cli::WatchArgs;
use crate::config::Config;
use crate::exit::{self, Usage};
use crate::metrics;
use crate::profile::WatchSection;
use crate::{interrupt, output, session, steps, units};

/// The tag every watch snapshot has; retention looks only at these.
const WATCH_TAG: &str = "watch";

/// The tag a watch snapshot also has when its database could not be read
/// consistently. Retention groups by tags, so such snapshots are kept by
/// the policy among themselves and never push a consistent one out.
const INCONSISTENT_TAG: &str = "inconsistent";

/// How often the retention policy is applied to a database's snapshots.
const FORGET_EVERY: Duration = Duration::from_secs(300);

/// The interval without `--every` or the profile's `every`.
const DEFAULT_EVERY: Duration = Duration::from_secs(30);

/// The command line and the profile's `[watch]`, settled.
struct Settings {
    databases: Vec<PathBuf>,
    every: Duration,
    tags: Vec<String>,
    host: String,
    sqlite: SqliteMode,
    /// `None`: keep every snapshot.
    policy: Option<Policy>,
    once: bool,
}

impl Settings {
    /// The command line wins over the profile, key by key.
    fn resolve(args: WatchArgs, profile: &WatchSection) -> Result<Settings> {
        let given = if args.databases.is_empty() {
            profile.databases.clone()
        } else {
            args.databases
        };
        if given.is_empty() {
            return Err(Usage(
                "watch needs a database: name one, or set databases in the profile's [watch]"
                    .into(),
            )
            .into());
        }
        let mut databases: Vec<PathBuf> = Vec::new();
        for path in given {
            // Without touching the file: it may not exist yet.
            let path = std::path::absolute(&path)
                .map_err(|e| Usage(format!("database {}: {e}", path.display())))?;
            if !databases.contains(&path) {
                databases.push(path);
            }
        }
        let mut tags = vec![WATCH_TAG.to_string()];
        let extra = if args.tags.is_empty() {
            &profile.tags
        } else {
            &args.tags
        };
        for tag in extra {
            if !tags.contains(&tag.0) {
                tags.push(tag.0.clone());
            }
        }
        let cli_policy = args.keep.policy();
        let policy = if cli_policy.is_empty() {
            profile.policy()
        } else {
            cli_policy
        };
        Ok(Settings {
            databases,
            every: args.every.or(profile.every).map_or(DEFAULT_EVERY, |i| i.0),
            tags,
            host: args
                .host
                .or_else(|| profile.host.clone())
                .unwrap_or_else(session::hostname),
            sqlite: args.sqlite.or(profile.sqlite).unwrap_or_default().0,
            policy: (!policy.is_empty()).then_some(policy),
            once: args.once,
        })
    }
}

pub fn run(config: &Config, args: WatchArgs) -> Result<i32> {
    let empty = WatchSection::default();
    let section = config.profile.as_ref().map_or(&empty, |l| &l.profile.watch);
    let settings = Settings::resolve(args, section)?;
    let repo = session::open(config)?;
    let memory = config
        .cache_dir
        .as_ref()
        .map(|dir| dir.join(repo.config().id.to_hex()).join("watch"));
    let mut watch = Watch {
        signals: interrupt::Held::new(),
        stopped: None,
        config,
        databases: settings
            .databases
            .iter()
            .map(|path| Database {
                shown: output::sanitize(&path.display().to_string()),
                path: path.clone(),
                saved: None,
                problem: None,
                last: None,
                forgotten_at: None,
            })
            .collect(),
        settings,
        repo,
        reload: false,
        scratch: session::scratch_dir(config),
        memory,
        rounds: 0,
    };
    watch.recall();
    watch.announce();
    let every = watch.settings.every;
    let mut tick = Instant::now();
    let mut skipped = 0;
    loop {
        let worst = watch.round(skipped);
        if let Some(signal) = watch.stopped {
            return Ok(watch.stop(signal));
        }
        if watch.settings.once {
            return Ok(worst);
        }
        (tick, skipped) = next_tick(tick, every, Instant::now());
        if skipped > 0 {
            watch.skipped(skipped);
        }
        let wait = tick.saturating_duration_since(Instant::now());
        if let Some(signal) = watch.signals.wait(wait) {
            return Ok(watch.stop(signal));
        }
    }
}

/// The start of the next round after the one that started at `tick`: one
/// interval later, or, when `now` is past that, the first tick of the
/// schedule still ahead. Returns it and how many ticks were missed.
fn next_tick(tick: Instant, every: Duration, now: Instant) -> (Instant, u64) {
    let next = tick + every;
    if next >= now {
        return (next, 0);
    }
    let behind = now.duration_since(next).as_nanos() / every.as_nanos().max(1);
    let missed = u64::try_from(behind).unwrap_or(u64::MAX - 1) + 1;
    let ahead = every.saturating_mul(u32::try_from(missed).unwrap_or(u32::MAX));
    (next + ahead, missed)
}

/// One database being watched.
struct Database {
    path: PathBuf,
    /// The path as printed.
    shown: String,
    /// The stamp read just before its last snapshot in this process.
    saved: Option<ChangeStamp>,
    /// Why its stamp could not be read, last time it could not: warned
    /// about when it changes, not every round.
    problem: Option<String>,
    /// Its newest watch snapshot in this process: the parent of the next,
    /// so that a round does not read every snapshot file to find it.
    last: Option<SnapshotId>,
    /// When the policy was last applied to its snapshots in this process.
    forgotten_at: Option<Instant>,
}

/// What one round did with one database.
enum Outcome {
    Unchanged,
    /// It does not exist or is not an SQLite database ([`Database::problem`]
    /// says which); `news` when that is new since the last round.
    Unavailable {
        news: bool,
    },
    Saved(Saved),
    Failed(String),
}

struct Saved {
    id: SnapshotId,
    time: arca_core::Time,
    bytes_added: u64,
    duration: Duration,
    /// Old watch snapshots the policy removed.
    forgotten: usize,
    /// Source entries not read, or not consistently (warned about).
    unreadable: usize,
    /// Why forgetting old snapshots failed, when it did.
    forget_error: Option<String>,
}

/// One round as `--json` prints it (one line per round).
#[derive(Serialize)]
struct RoundJson<'a> {
    round: u64,
    time: String,
    ticks_skipped: u64,
    duration_seconds: f64,
    databases: Vec<DatabaseJson<'a>>,
}

#[derive(Serialize)]
struct DatabaseJson<'a> {
    path: &'a str,
    status: &'static str,
    id: Option<String>,
    bytes_added: Option<u64>,
    duration_seconds: Option<f64>,
    forgotten: Option<usize>,
    error: Option<String>,
}

struct Watch<'a> {
    config: &'a Config,
    /// SIGTERM and SIGINT, held but while a snapshot runs.
    signals: interrupt::Held,
    /// The signal that stopped the round, if one did.
    stopped: Option<nix::sys::signal::Signal>,
    settings: Settings,
    databases: Vec<Database>,
    repo: Repository,
    /// A snapshot failed: reload the whole index before the next one.
    reload: bool,
    /// Where rollback-journal databases are copied for their image.
    scratch: Option<PathBuf>,
    /// Where what is known of each database is kept between runs (the
    /// cache's directory for this repository); `None` without a cache.
    memory: Option<PathBuf>,
    rounds: u64,
}

impl Watch<'_> {
    fn announce(&self) {
        let s = &self.settings;
        let policy = s.policy.as_ref().map_or_else(
            || "keeping every snapshot".to_string(),
            |p| format!("keeping {p}"),
        );
        let line = format!(
            "watching {} database(s) every {} into repository {}, {policy}",
            s.databases.len(),
            units::Duration(s.every),
            self.repo.location()
        );
        self.config
            .note(format!("arca: watch: {}", output::sanitize(&line)));
        self.config.log(&format!("watch: {line}"));
    }

    /// Reads every stamp and snapshots the databases that changed; reports
    /// the round. Returns the round's exit code as `--once` gives it.
    fn round(&mut self, ticks_skipped: u64) -> i32 {
        self.rounds += 1;
        let started = Instant::now();
        let time = arca_core::Time::now();
        let m = &self.config.metrics;
        m.set(&metrics::WATCH_LAST_ROUND, units::unix_seconds(time));
        if self.rounds == 1 {
            // Counters exist from the first round, as Prometheus expects.
            m.add(&metrics::WATCH_TICKS_SKIPPED, 0.0);
        }
        let mut outcomes = Vec::with_capacity(self.databases.len());
        for at in 0..self.databases.len() {
            if let Some(signal) = self.signals.received() {
                // The databases not visited yet are not listed.
                self.stopped = Some(signal);
                break;
            }
            let outcome = self.visit(at);
            self.report(&self.databases[at], &outcome);
            outcomes.push(outcome);
        }
        if self.config.json {
            let databases = self
                .databases
                .iter()
                .zip(&outcomes)
                .map(|(db, o)| database_json(db, o))
                .collect();
            output::json_line(&RoundJson {
                round: self.rounds,
                time: time.to_rfc3339(),
                ticks_skipped,
                duration_seconds: started.elapsed().as_secs_f64(),
                databases,
            });
        }
        self.write_metrics();
        outcomes
            .iter()
            .map(exit_code)
            .max_by_key(|&c| rank(c))
            .unwrap_or(exit::SUCCESS)
    }

    /// One database in one round.
    fn visit(&mut self, at: usize) -> Outcome {
        let db = &mut self.databases[at];
        if self.rounds == 1 {
            // Counters exist from the first round, as Prometheus expects.
            let labels = [("database", db.shown.as_str())];
            self.config
                .metrics
                .add_labelled(&metrics::WATCH_FAILURES, &labels, 0.0);
        }
        let stamp = match ChangeStamp::read(&db.path) {
            Ok(stamp) => stamp,
            Err(e) => {
                use std::io::ErrorKind;
                let problem = match e.kind() {
                    ErrorKind::NotFound => "it does not exist".to_string(),
                    // Shorter than a database header, or another header.
                    ErrorKind::UnexpectedEof | ErrorKind::InvalidData => {
                        "it is not an SQLite database".to_string()
                    }
                    _ => e.to_string(),
                };
                let news = db.problem.as_ref() != Some(&problem);
                db.problem = Some(problem);
                return Outcome::Unavailable { news };
            }
        };
        if db.problem.take().is_some() {
            let line = format!("{}: readable as an SQLite database again", db.shown);
            self.config.note(format!("arca: watch: {line}"));
            self.config.log(&format!("watch: {line}"));
        }
        if db.saved.as_ref() == Some(&stamp) {
            return Outcome::Unchanged;
        }
        let path = db.path.clone();
        let parent = db.last;
        // Applying the policy reads every snapshot file: once every few
        // minutes is enough, whatever the interval.
        let forget = db
            .forgotten_at
            .is_none_or(|at| at.elapsed() >= FORGET_EVERY);
        let result = self.snapshot(&path, parent, forget);
        let db = &mut self.databases[at];
        match result {
            Ok(saved) => {
                // Also when it was not read consistently: an unchanged
                // database would fail the same way, and a changed one is
                // taken again.
                db.saved = Some(stamp);
                // A policy may forget even the newest snapshot (one that
                // keeps only other tags): then the next round looks for its
                // parent the usual way.
                db.last = (saved.forgotten == 0).then_some(saved.id);
                if forget && saved.forget_error.is_none() {
                    db.forgotten_at = Some(Instant::now());
                }
                self.remember(at, saved.id);
                Outcome::Saved(saved)
            }
            Err(e) => {
                self.reload = true;
                // The parent may be what failed (removed by another process).
                db.last = None;
                Outcome::Failed(crate::message(&e))
            }
        }
    }

    /// Takes what the cache remembers of each database from an earlier run,
    /// when the snapshot it names is still there and is one of this
    /// database's watch snapshots on this host.
    fn recall(&mut self) {
        let Some(dir) = &self.memory else {
            return;
        };
        for db in &mut self.databases {
            let Some(known) =
                Remembered::read(&remembered_path(dir, &self.settings.host, &db.path))
            else {
                continue;
            };
            let Some(id) = arca_core::Id::from_hex(&known.snapshot).map(SnapshotId) else {
                continue;
            };
            let ours = self.repo.load_snapshot(&id).is_ok_and(|s| {
                s.hostname == self.settings.host
                    && s.tags.iter().any(|t| t == WATCH_TAG)
                    && s.paths.len() == 1
                    && s.paths[0].as_slice() == db.path.as_os_str().as_encoded_bytes()
            });
            if !ours {
                continue;
            }
            db.saved = Some(known.stamp);
            db.last = Some(id);
        }
    }

    /// Keeps what is known of the database at `at` after its snapshot `id`
    /// for the next run. The cache is a hint: failing to write it costs
    /// one more snapshot then, so it is not reported.
    fn remember(&self, at: usize, id: SnapshotId) {
        let (Some(dir), db) = (&self.memory, &self.databases[at]) else {
            return;
        };
        let Some(stamp) = &db.saved else {
            return;
        };
        let known = Remembered {
            snapshot: id.to_hex(),
            stamp: stamp.clone(),
        };
        let _ = known.write(dir, &remembered_path(dir, &self.settings.host, &db.path));
    }

    /// Snapshots one database (on `parent`, when known), then, if
    /// `forget`, applies the policy to its watch snapshots.
    fn snapshot(&mut self, path: &Path, parent: Option<SnapshotId>, forget: bool) -> Result<Saved> {
        if std::mem::take(&mut self.reload) {
            self.repo.load_index()?;
        } else {
            self.repo.refresh_index()?;
        }
        // Another process may have forgotten it: then the parent is found
        // the usual way. (One snapshot file read, not all of them.)
        let parent = parent.filter(|id| self.repo.load_snapshot(id).is_ok());
        let s = &self.settings;
        let options = SnapshotOptions {
            paths: vec![path.to_path_buf()],
            hostname: s.host.clone(),
            username: session::username(),
            tags: s.tags.clone(),
            sqlite: s.sqlite,
            scratch_dir: self.scratch.clone(),
            inconsistent_tags: vec![INCONSISTENT_TAG.to_string()],
            parent,
            ..SnapshotOptions::default()
        };
        let started = Instant::now();
        let repo = &mut self.repo;
        let outcome = self
            .signals
            .release_during(|| arca_core::snapshot(repo, &options, &SnapshotProgress::default()))?;
        let duration = started.elapsed();
        let unreadable = steps::report_warnings(&outcome);
        let Some(id) = outcome.id else {
            anyhow::bail!("the snapshot was not saved");
        };
        let snapshot = &outcome.snapshot;
        let forgot = if forget {
            self.signals
                .release_during(|| self.forget(&snapshot.hostname, snapshot.path_strings()))
        } else {
            Ok(0)
        };
        let (forgotten, forget_error) = match forgot {
            Ok(n) => (n, None),
            Err(e) => (0, Some(crate::message(&e))),
        };
        Ok(Saved {
            id,
            time: snapshot.time,
            bytes_added: snapshot.summary.as_ref().map_or(0, |s| s.bytes_added),
            duration,
            forgotten,
            unreadable,
            forget_error,
        })
    }

    /// Applies the policy to the watch snapshots of exactly these paths on
    /// this host; returns how many it removed.
    fn forget(&self, host: &str, paths: Vec<String>) -> Result<usize> {
        let Some(policy) = &self.settings.policy else {
            return Ok(0);
        };
        let filter = SnapshotFilter {
            host: Some(host.to_string()),
            tags: vec![WATCH_TAG.to_string()],
            paths: paths.clone(),
        };
        let now = jiff::Zoned::now();
        let by = GroupBy {
            tags: true,
            ..GroupBy::default()
        };
        let mut plan = forget::plan(&self.repo, policy, by, &filter, &now)?;
        // The filter lets through snapshots of more paths than these too.
        plan.groups.retain(|g| g.key.paths.as_ref() == Some(&paths));
        Ok(forget::execute(&self.repo, &plan)?)
    }

    /// Says what became of a database: a line per snapshot, failure or
    /// new problem (nothing for an unchanged one); records its metrics.
    fn report(&self, db: &Database, outcome: &Outcome) {
        let config = self.config;
        let m = &config.metrics;
        let labels = [("database", db.shown.as_str())];
        let location = self.repo.location();
        match outcome {
            Outcome::Unchanged => {}
            Outcome::Unavailable { news: false } => {}
            Outcome::Unavailable { news: true } => {
                let problem = db.problem.as_deref().unwrap_or_default();
                let line = format!(
                    "{}: {problem}; waiting for a readable SQLite database there",
                    db.shown
                );
                eprintln!("arca: warning: watch: {}", output::sanitize(&line));
                config.log(&format!("watch: warning: {line}"));
            }
            Outcome::Failed(error) => self.failure(
                &labels,
                &format!(
                    "snapshot of {} into repository {} failed: {error}; trying again next round",
                    db.shown, location
                ),
            ),
            Outcome::Saved(s) => {
                m.set_labelled(
                    &metrics::WATCH_LAST_SNAPSHOT,
                    &labels,
                    units::unix_seconds(s.time),
                );
                m.set_labelled(
                    &metrics::WATCH_SNAPSHOT_DURATION,
                    &labels,
                    s.duration.as_secs_f64(),
                );
                m.set_labelled(
                    &metrics::WATCH_SNAPSHOT_BYTES_ADDED,
                    &labels,
                    s.bytes_added as f64,
                );
                let forgot = match s.forgotten {
                    0 => String::new(),
                    n => format!("; forgot {n} older watch snapshot(s)"),
                };
                let line = format!(
                    "{}: snapshot {} saved, {} added in {:.1} s{forgot}",
                    db.shown,
                    s.id.short(),
                    HumanBytes(s.bytes_added),
                    s.duration.as_secs_f64()
                );
                if !config.json && !config.quiet {
                    output::line(&line);
                }
                config.log(&format!("watch: {line}"));
                if s.unreadable > 0 {
                    self.failure(
                        &labels,
                        &format!(
                            "{}: not read consistently; the snapshot is tagged {INCONSISTENT_TAG}, and the database is taken again when it changes",
                            db.shown
                        ),
                    );
                }
                if let Some(error) = &s.forget_error {
                    self.failure(
                        &labels,
                        &format!(
                            "{}: forgetting older watch snapshots in repository {} failed: {error}; trying again after the next snapshot",
                            db.shown, location
                        ),
                    );
                }
            }
        }
    }

    /// Counts a failure of one database and says `line` on stderr and in
    /// the log.
    fn failure(&self, labels: &[(&'static str, &str)], line: &str) {
        self.config
            .metrics
            .add_labelled(&metrics::WATCH_FAILURES, labels, 1.0);
        eprintln!("arca: watch: {}", output::sanitize(line));
        self.config.log(&format!("watch: error: {line}"));
    }

    /// Says that a signal stopped the command; its exit code.
    fn stop(&self, signal: nix::sys::signal::Signal) -> i32 {
        self.config
            .note(format!("arca: watch: stopped by {signal}"));
        self.config.log(&format!("watch: stopped by {signal}"));
        exit::SUCCESS
    }

    /// Records rounds that did not start on time.
    fn skipped(&self, ticks: u64) {
        let line = format!(
            "the round took longer than {}: {ticks} round(s) skipped",
            units::Duration(self.settings.every)
        );
        self.config.note(format!("arca: watch: {line}"));
        self.config.log(&format!("watch: {line}"));
        self.config
            .metrics
            .add(&metrics::WATCH_TICKS_SKIPPED, ticks as f64);
    }

    /// Writes what the round recorded into `--metrics-file`, if any.
    fn write_metrics(&self) {
        let config = self.config;
        let Some(path) = &config.metrics_file else {
            return;
        };
        let profile = config.profile.as_ref().map_or("", |p| p.name.as_str());
        let repository = config.repo.as_deref().unwrap_or("");
        if let Err(e) = metrics::write_values(path, profile, repository, &config.metrics) {
            eprintln!("arca: warning: {}", output::sanitize(&format!("{e:#}")));
        }
    }
}

/// What a watch keeps of one database between runs.
#[derive(Serialize, Deserialize)]
struct Remembered {
    /// Its last watch snapshot, in hex.
    snapshot: String,
    /// Its stamp, read just before that snapshot.
    stamp: ChangeStamp,
}

/// The largest file of what a watch remembers that is read.
const MAX_REMEMBERED: u64 = 64 << 10;

/// The file under `dir` holding what is known of `database` watched as
/// `host`: named by a hash of both, so any path fits.
fn remembered_path(dir: &Path, host: &str, database: &Path) -> PathBuf {
    let mut hasher = blake3::Hasher::new();
    hasher.update(host.as_bytes());
    hasher.update(&[0]);
    hasher.update(database.as_os_str().as_encoded_bytes());
    dir.join(format!("{}.json", &hasher.finalize().to_hex()[..32]))
}

impl Remembered {
    /// The file at `path`; `None` when it is missing, not this user's own
    /// regular file, too large or not what [`Remembered::write`] writes.
    fn read(path: &Path) -> Option<Remembered> {
        use std::io::Read;
        let file = crate::outfile::open_own(path).ok()??;
        let mut text = Vec::new();
        file.take(MAX_REMEMBERED + 1).read_to_end(&mut text).ok()?;
        if text.len() as u64 > MAX_REMEMBERED {
            return None;
        }
        serde_json::from_slice(&text).ok()
    }

    /// Replaces the file at `path` in `dir` (made 0700 if missing): a
    /// temporary file renamed into place, so a reader never sees half.
    fn write(&self, dir: &Path, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut file = tempfile::Builder::new()
            .prefix(".watch-")
            .tempfile_in(dir)?;
        file.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        file.as_file().sync_all()?;
        file.persist(path).map_err(|e| e.error)?;
        Ok(())
    }
}

fn database_json<'a>(db: &'a Database, outcome: &Outcome) -> DatabaseJson<'a> {
    let mut json = DatabaseJson {
        path: &db.shown,
        status: "unchanged",
        id: None,
        bytes_added: None,
        duration_seconds: None,
        forgotten: None,
        error: None,
    };
    match outcome {
        Outcome::Unchanged => {}
        Outcome::Unavailable { .. } => {
            json.status = "unavailable";
            json.error = db.problem.clone();
        }
        Outcome::Failed(error) => {
            json.status = "failed";
            json.error = Some(error.clone());
        }
        Outcome::Saved(s) => {
            json.status = if s.unreadable > 0 { "partial" } else { "saved" };
            json.id = Some(s.id.to_hex());
            json.bytes_added = Some(s.bytes_added);
            json.duration_seconds = Some(s.duration.as_secs_f64());
            json.forgotten = Some(s.forgotten);
            json.error = s.forget_error.clone();
        }
    }
    json
}

/// The exit code `--once` gives for a database's outcome.
fn exit_code(outcome: &Outcome) -> i32 {
    match outcome {
        Outcome::Unchanged => exit::SUCCESS,
        Outcome::Saved(s) if s.unreadable > 0 || s.forget_error.is_some() => exit::PARTIAL,
        Outcome::Saved(_) => exit::SUCCESS,
        Outcome::Unavailable { .. } | Outcome::Failed(_) => exit::ERROR,
    }
}

/// Worse codes rank higher: 0, then 3, then 1.
fn rank(code: i32) -> u8 {
    match code {
        exit::SUCCESS => 0,
        exit::PARTIAL => 1,
        _ => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_keep_to_the_schedule_and_skip_missed_ticks() {
        let start = Instant::now();
        let every = Duration::from_secs(30);
        let s = Duration::from_secs;
        assert_eq!(next_tick(start, every, start + s(5)), (start + s(30), 0));
        // A round of 45 s: the tick at 30 s is missed, the next is at 60 s.
        assert_eq!(next_tick(start, every, start + s(45)), (start + s(60), 1));
        assert_eq!(next_tick(start, every, start + s(30)), (start + s(30), 0));
        assert_eq!(next_tick(start, every, start + s(95)), (start + s(120), 3));
    }
}
