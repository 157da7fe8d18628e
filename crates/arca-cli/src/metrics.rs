//! `--metrics-file`: Prometheus text-format metrics for node_exporter's
//! textfile collector.
//!
//! Several commands (snapshot, forget, prune, check, run, status, watch,
//! and PostgreSQL's archive and restore commands) write the same file, so each
//! write is a merge: the existing file is read, every series this command
//! writes replaces the series with the same name and labels, every other
//! line survives, and the result is written to a temporary file in the same
//! directory, fsynced and renamed over the old one, so the collector never
//! sees half a file. Writers are serialised by an advisory lock on the
//! directory, so two arca processes finishing at once do not lose each
//! other's series; a counter (WAL archive failures, watch's failures and
//! skipped rounds) is read and increased under that lock, so it keeps
//! counting across runs. Most commands write once, when they end; `watch`
//! also writes its values after every round ([`write_values`]).
//!
//! A series is identified by its name and its label text exactly as written;
//! arca always writes labels in the same order and escaping, so its own
//! series match. Format: <https://prometheus.io/docs/instrumenting/exposition_formats/>.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

use crate::cli::{Command, PgCommand};

/// One metric arca can write.
#[derive(Debug)]
pub struct Metric {
    pub name: &'static str,
    help: &'static str,
    /// `gauge`, or `counter` for one that only grows across runs.
    kind: &'static str,
}

const fn gauge(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        help,
        kind: "gauge",
    }
}

const fn counter(name: &'static str, help: &'static str) -> Metric {
    Metric {
        name,
        help,
        kind: "counter",
    }
}

pub const LAST_RUN: Metric = gauge(
    "arca_last_run_timestamp_seconds",
    "When the command last finished, successful or not (Unix time).",
);
pub const LAST_SUCCESS: Metric = gauge(
    "arca_last_success_timestamp_seconds",
    "When the command last finished with exit code 0 (Unix time).",
);
pub const DURATION: Metric = gauge(
    "arca_run_duration_seconds",
    "How long the command's last run took.",
);
pub const EXIT_CODE: Metric = gauge(
    "arca_run_exit_code",
    "Exit code of the command's last run (0 success).",
);
pub const SNAPSHOT_BYTES_ADDED: Metric = gauge(
    "arca_snapshot_bytes_added",
    "Plaintext bytes of new data the last snapshot added to the repository.",
);
pub const SNAPSHOT_BYTES_PROCESSED: Metric = gauge(
    "arca_snapshot_bytes_processed",
    "Total size of the files in the last snapshot.",
);
pub const SNAPSHOT_FILES_PROCESSED: Metric = gauge(
    "arca_snapshot_files_processed",
    "Number of files in the last snapshot.",
);
pub const SNAPSHOT_ERRORS: Metric = gauge(
    "arca_snapshot_errors",
    "Source entries the last snapshot could not read and left out.",
);
pub const SNAPSHOT_TIME: Metric = gauge(
    "arca_snapshot_timestamp_seconds",
    "Time recorded in the last snapshot (Unix time).",
);
pub const CHECK_ERRORS: Metric = gauge("arca_check_errors", "Errors the last check found.");
pub const CHECK_WARNINGS: Metric = gauge("arca_check_warnings", "Warnings the last check found.");
pub const CHECK_SUCCESS: Metric = gauge(
    "arca_check_success",
    "1 when the last check found no error, else 0.",
);
pub const REPOSITORY_SIZE: Metric = gauge(
    "arca_repository_size_bytes",
    "Stored size of the repository after the last prune.",
);
pub const PRUNE_BYTES_FREED: Metric =
    gauge("arca_prune_bytes_freed", "Bytes the last prune deleted.");
pub const SNAPSHOTS_REMOVED: Metric = gauge(
    "arca_snapshots_removed",
    "Snapshots the last forget removed.",
);
pub const SNAPSHOTS_KEPT: Metric = gauge(
    "arca_snapshots_kept",
    "Snapshots the last forget's policy kept.",
);

pub const WAL_ARCHIVE_FAILURES: Metric = counter(
    "arca_wal_archive_failures_total",
    "Failed pg archive-wal runs (each one PostgreSQL retries), over all runs.",
);
pub const WAL_LAST_ARCHIVED: Metric = gauge(
    "arca_wal_last_archived_timestamp_seconds",
    "When pg archive-wal last succeeded (Unix time).",
);
pub const WAL_NEWEST_ARCHIVED: Metric = gauge(
    "arca_wal_newest_archived_timestamp_seconds",
    "When the newest WAL file in the repository was archived, as status found it (Unix time).",
);
pub const RECOVERY_WINDOW_START: Metric = gauge(
    "arca_recovery_window_start_timestamp_seconds",
    "Start of the point-in-time recovery window: the oldest base backup's time (Unix time).",
);
pub const RECOVERY_WINDOW_END: Metric = gauge(
    "arca_recovery_window_end_timestamp_seconds",
    "End of the point-in-time recovery window: the newest archived WAL file's time (Unix time).",
);
pub const RECOVERY_WINDOW: Metric = gauge(
    "arca_recovery_window_seconds",
    "Length of the point-in-time recovery window.",
);
pub const WATCH_LAST_ROUND: Metric = gauge(
    "arca_watch_last_round_timestamp_seconds",
    "When watch last started a round (Unix time): it is alive.",
);
pub const WATCH_LAST_SNAPSHOT: Metric = gauge(
    "arca_watch_last_snapshot_timestamp_seconds",
    "Time recorded in the database's last watch snapshot (Unix time).",
);
pub const WATCH_SNAPSHOT_DURATION: Metric = gauge(
    "arca_watch_snapshot_duration_seconds",
    "How long the database's last watch snapshot took.",
);
pub const WATCH_SNAPSHOT_BYTES_ADDED: Metric = gauge(
    "arca_watch_snapshot_bytes_added",
    "Plaintext bytes of new data the database's last watch snapshot added.",
);
pub const WATCH_FAILURES: Metric = counter(
    "arca_watch_failures_total",
    "Watch snapshots of the database that failed (each retried next round), over all runs.",
);
pub const WATCH_TICKS_SKIPPED: Metric = counter(
    "arca_watch_ticks_skipped_total",
    "Watch rounds not started on time because the round before ran past them, over all runs.",
);
pub const NEWEST_SNAPSHOT: Metric = gauge(
    "arca_newest_snapshot_timestamp_seconds",
    "Time of the host's newest snapshot, as status found it (Unix time).",
);

/// The name under which a command's runs are recorded, for the commands
/// that write metrics; dry runs change nothing and record nothing.
pub fn command_name(command: &Command) -> Option<&'static str> {
    match command {
        Command::Snapshot(a) if !a.dry_run => Some("snapshot"),
        Command::Forget(a) if !a.dry_run => Some("forget"),
        Command::Prune(a) if !a.dry_run => Some("prune"),
        Command::Check(_) => Some("check"),
        Command::Run(_) => Some("run"),
        Command::Status(_) => Some("status"),
        Command::Watch(_) => Some("watch"),
        Command::Pg(PgCommand::Backup(_)) => Some("pg-backup"),
        Command::Pg(PgCommand::ArchiveWal { .. }) => Some("pg-archive-wal"),
        Command::Pg(PgCommand::RestoreWal { .. }) => Some("pg-restore-wal"),
        _ => None,
    }
}

/// How a recorded value changes its series.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Change {
    /// The value replaces the series'.
    Set(f64),
    /// Added to the value the file holds (a counter).
    Add(f64),
}

/// One recorded series: its metric, the labels beyond profile and
/// repository, and its change.
#[derive(Debug)]
struct Value {
    metric: &'static Metric,
    labels: Vec<(&'static str, String)>,
    change: Change,
}

/// The values a command reports while it runs; written once it ends.
#[derive(Debug, Default)]
pub struct Recorder {
    values: Mutex<Vec<Value>>,
    /// The run is not recorded at all.
    discarded: AtomicBool,
}

impl Recorder {
    /// Records `metric` (the latest value wins).
    pub fn set(&self, metric: &'static Metric, value: f64) {
        self.record(metric, Vec::new(), Change::Set(value));
    }

    /// Records the series of `metric` with `labels` besides profile and
    /// repository (the latest value wins).
    pub fn set_labelled(
        &self,
        metric: &'static Metric,
        labels: &[(&'static str, &str)],
        value: f64,
    ) {
        let labels = labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        self.record(metric, labels, Change::Set(value));
    }

    /// Adds `amount` to the counter `metric` as the file holds it (0 makes
    /// the series exist, as counters should from the first run).
    pub fn add(&self, metric: &'static Metric, amount: f64) {
        self.record(metric, Vec::new(), Change::Add(amount));
    }

    /// [`Recorder::add`] to the series of `metric` with `labels`. Amounts
    /// recorded for the same series before a write add up.
    pub fn add_labelled(
        &self,
        metric: &'static Metric,
        labels: &[(&'static str, &str)],
        amount: f64,
    ) {
        let labels: Vec<(&'static str, String)> =
            labels.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let earlier = {
            let values = self.values.lock().unwrap_or_else(|e| e.into_inner());
            values
                .iter()
                .find(|v| v.metric.name == metric.name && v.labels == labels)
                .map_or(0.0, |v| match v.change {
                    Change::Add(amount) => amount,
                    Change::Set(_) => 0.0,
                })
        };
        self.record(metric, labels, Change::Add(earlier + amount));
    }

    /// Leaves this run out of the file: nothing is written for it.
    pub fn discard(&self) {
        self.discarded.store(true, Ordering::Relaxed);
    }

    /// Whether [`Recorder::discard`] was called.
    pub fn is_discarded(&self) -> bool {
        self.discarded.load(Ordering::Relaxed)
    }

    fn record(&self, metric: &'static Metric, labels: Vec<(&'static str, String)>, change: Change) {
        let mut values = self.values.lock().unwrap_or_else(|e| e.into_inner());
        values.retain(|v| v.metric.name != metric.name || v.labels != labels);
        values.push(Value {
            metric,
            labels,
            change,
        });
    }

    fn take(&self) -> Vec<Value> {
        std::mem::take(&mut *self.values.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// How a command run ended.
#[derive(Debug)]
pub struct Run<'a> {
    pub command: &'static str,
    pub profile: &'a str,
    pub repository: &'a str,
    pub exit_code: i32,
    pub duration: std::time::Duration,
    /// When it ended, as Unix time.
    pub finished: f64,
}

/// Merges the run and the values recorded for it into the file at `path`.
pub fn write(path: &Path, run: &Run, recorder: &Recorder) -> Result<()> {
    let values = recorder.take();
    merge_into(path, |existing| render(run, &values, existing))
}

/// Merges the values recorded so far into the file at `path` without a
/// run's series: for a command that reports while it runs (`watch`, once
/// a round). They are labelled with `profile` and `repository` as the
/// run's series will be.
pub fn write_values(
    path: &Path,
    profile: &str,
    repository: &str,
    recorder: &Recorder,
) -> Result<()> {
    let values = recorder.take();
    let base = base_labels(profile, repository);
    merge_into(path, |existing| render_values(&values, &base, existing))
}

/// Replaces the file at `path` with its text merged with what `ours`
/// makes of it, under the directory's lock.
fn merge_into(path: &Path, ours: impl FnOnce(&str) -> String) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir_handle = std::fs::File::open(dir)
        .with_context(|| format!("cannot open the metrics directory {}", dir.display()))?;
    dir_handle
        .lock()
        .with_context(|| format!("cannot lock the metrics directory {}", dir.display()))?;
    // Never through a link: what is merged would land in a file others
    // may read.
    let existing = crate::outfile::read_own(path)
        .with_context(|| format!("cannot read metrics file {}", path.display()))?
        .unwrap_or_default();
    let text = merge(&existing, &ours(&existing));
    replace(path, dir, text.as_bytes())?;
    dir_handle
        .sync_all()
        .with_context(|| format!("cannot sync the metrics directory {}", dir.display()))
}

/// The sum of `metric`'s series for `repository` (over every profile) in
/// the file at `path`; `None` when the file or the series is not there.
pub fn read_sum(path: &Path, metric: &Metric, repository: &str) -> Result<Option<f64>> {
    let text = crate::outfile::read_own(path)
        .with_context(|| format!("cannot read metrics file {}", path.display()))?
        .unwrap_or_default();
    let prefix = format!("{}{{", metric.name);
    let suffix = format!("repository=\"{}\"}}", escape(repository));
    let values: Vec<f64> = text
        .lines()
        .filter(|l| {
            let key = series_key(l);
            key.starts_with(&prefix) && key.ends_with(&suffix)
        })
        .filter_map(sample_value)
        .collect();
    Ok((!values.is_empty()).then(|| values.iter().sum()))
}

/// Writes `bytes` to a temporary file in `dir` and renames it over `path`.
fn replace(path: &Path, dir: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let context = || format!("cannot write metrics file {}", path.display());
    // The textfile collector reads only `*.prom`, so it skips the temp file.
    let mut tmp = tempfile::Builder::new()
        .prefix(".arca-metrics-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(context)?;
    // node_exporter runs as its own user: the file must be readable to it,
    // not 0600 as temporary files are created.
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .with_context(context)?;
    tmp.write_all(bytes).with_context(context)?;
    tmp.as_file().sync_all().with_context(context)?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(context)?;
    Ok(())
}

/// The labels every series has: `profile` and `repository`.
fn base_labels(profile: &str, repository: &str) -> String {
    format!(
        "profile=\"{}\",repository=\"{}\"",
        escape(profile),
        escape(repository)
    )
}

/// `labels` (escaped) before `base`, as a series' label text.
fn labelled(labels: &[(&str, String)], base: &str) -> String {
    let mut text = String::new();
    for (name, value) in labels {
        let _ = write!(text, "{name}=\"{}\",", escape(value));
    }
    text + base
}

/// The run's series and the recorded values as text, labelled alike.
fn render(run: &Run, values: &[Value], existing: &str) -> String {
    let base = base_labels(run.profile, run.repository);
    render_run(run, &base) + &render_values(values, &base, existing)
}

/// The run's own series as text.
fn render_run(run: &Run, base: &str) -> String {
    let with_command = labelled(&[("command", run.command.to_string())], base);
    let mut series: Vec<(&Metric, String, f64)> =
        vec![(&LAST_RUN, with_command.clone(), run.finished)];
    if run.exit_code == 0 {
        series.push((&LAST_SUCCESS, with_command.clone(), run.finished));
    }
    series.push((&DURATION, with_command.clone(), run.duration.as_secs_f64()));
    series.push((&EXIT_CODE, with_command, f64::from(run.exit_code)));
    lines(series)
}

/// The recorded values as text; a counter's new value is what `existing`
/// holds plus the amount recorded.
fn render_values(values: &[Value], base: &str, existing: &str) -> String {
    let mut series: Vec<(&Metric, String, f64)> = Vec::new();
    for v in values {
        let labels = labelled(&v.labels, base);
        let value = match v.change {
            Change::Set(value) => value,
            Change::Add(amount) => {
                let key = format!("{}{{{labels}}}", v.metric.name);
                counter_value(existing, &key) + amount
            }
        };
        series.push((v.metric, labels, value));
    }
    lines(series)
}

/// Each series with its HELP and TYPE lines.
fn lines(series: Vec<(&Metric, String, f64)>) -> String {
    let mut text = String::new();
    for (m, labels, value) in series {
        let _ = writeln!(text, "# HELP {} {}", m.name, m.help);
        let _ = writeln!(text, "# TYPE {} {}", m.name, m.kind);
        let _ = writeln!(text, "{}{{{labels}}} {}", m.name, number(value));
    }
    text
}

/// The value of the series `key` in `text` as a counter: 0 when it is
/// missing or not a count (a counter that restarts is what Prometheus
/// expects after a reset).
fn counter_value(text: &str, key: &str) -> f64 {
    text.lines()
        .find(|l| series_key(l) == key)
        .and_then(sample_value)
        .filter(|v| v.is_finite() && *v >= 0.0)
        .unwrap_or(0.0)
}

/// A sample line's value (the first field after the series key).
fn sample_value(line: &str) -> Option<f64> {
    let key = series_key(line);
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// A sample value: Rust's shortest exact form (never an exponent), or the
/// exposition format's spelling of the non-finite ones.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// A label value escaped as the text format requires.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// One metric family: its HELP and TYPE lines and its samples, each with
/// the key (name and label text) that identifies its series.
#[derive(Debug, Default)]
struct Family {
    help: Option<String>,
    kind: Option<String>,
    samples: Vec<(String, String)>,
}

/// Families in the order they first appear.
#[derive(Debug, Default)]
struct Exposition {
    order: Vec<String>,
    families: BTreeMap<String, Family>,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut out = Exposition::default();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let line = line.trim_end();
            if line.is_empty() {
                continue;
            }
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = first_word(rest);
                out.family(name).help = Some(line.to_string());
                current = Some(name.to_string());
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = first_word(rest);
                out.family(name).kind = Some(line.to_string());
                current = Some(name.to_string());
            } else if line.starts_with('#') {
                // Other comments carry nothing the collector reads.
            } else {
                let key = series_key(line);
                let name = &key[..key.find('{').unwrap_or(key.len())];
                // `_bucket`, `_sum`, `_count` of a histogram or summary stay
                // with the family declared above them.
                let family = match &current {
                    Some(c) if belongs(name, c) => c.clone(),
                    _ => name.to_string(),
                };
                out.family(&family)
                    .samples
                    .push((key.to_string(), line.to_string()));
            }
        }
        out
    }

    fn family(&mut self, name: &str) -> &mut Family {
        if !self.families.contains_key(name) {
            self.order.push(name.to_string());
        }
        self.families.entry(name.to_string()).or_default()
    }

    /// Takes `ours`' HELP/TYPE lines and samples, replacing samples of the
    /// same series.
    fn update(&mut self, ours: Exposition) {
        for name in ours.order {
            let Some(new) = ours.families.get(&name) else {
                continue;
            };
            let family = self.family(&name);
            family.help = new.help.clone().or(family.help.take());
            family.kind = new.kind.clone().or(family.kind.take());
            for (key, line) in &new.samples {
                match family.samples.iter_mut().find(|(k, _)| k == key) {
                    Some(sample) => sample.1 = line.clone(),
                    None => family.samples.push((key.clone(), line.clone())),
                }
            }
        }
    }

    fn render(&self) -> String {
        let mut text = String::new();
        for name in &self.order {
            let Some(f) = self.families.get(name) else {
                continue;
            };
            for line in f.help.iter().chain(&f.kind) {
                text.push_str(line);
                text.push('\n');
            }
            for (_, line) in &f.samples {
                text.push_str(line);
                text.push('\n');
            }
        }
        text
    }
}

/// The existing file's text with the series in `ours` replaced or added.
fn merge(existing: &str, ours: &str) -> String {
    let mut all = Exposition::parse(existing);
    all.update(Exposition::parse(ours));
    all.render()
}

/// Whether a sample named `name` is part of the family `family`.
fn belongs(name: &str, family: &str) -> bool {
    name.strip_prefix(family).is_some_and(|suffix| {
        ["", "_bucket", "_sum", "_count", "_total", "_created"].contains(&suffix)
    })
}

fn first_word(text: &str) -> &str {
    text.split_whitespace().next().unwrap_or("")
}

/// A sample line's name and label set, up to the closing brace (quotes and
/// escapes inside label values respected); the whole line if it is broken.
fn series_key(line: &str) -> &str {
    let end_of_name = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    if !line[end_of_name..].starts_with('{') {
        return &line[..end_of_name];
    }
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in line.char_indices().skip_while(|(i, _)| *i <= end_of_name) {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return &line[..=i],
            _ => {}
        }
    }
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn run(command: &'static str, exit_code: i32, finished: f64) -> Run<'static> {
        Run {
            command,
            profile: "",
            repository: "/srv/arca",
            exit_code,
            duration: std::time::Duration::from_millis(1500),
            finished,
        }
    }

    fn value(text: &str, key: &str) -> Option<String> {
        text.lines()
            .find(|l| series_key(l) == key)
            .map(|l| l[key.len()..].trim().to_string())
    }

    const SNAP: &str = "{command=\"snapshot\",profile=\"\",repository=\"/srv/arca\"}";
    const CHECK: &str = "{command=\"check\",profile=\"\",repository=\"/srv/arca\"}";

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape("two\nlines"), "two\\nlines");
        assert_eq!(escape("s3:h/b/p"), "s3:h/b/p");
    }

    #[test]
    fn series_keys_respect_quotes_and_escapes() {
        assert_eq!(series_key("up 1"), "up");
        assert_eq!(series_key("up{a=\"}\"} 1"), "up{a=\"}\"}");
        assert_eq!(
            series_key(r#"up{a="x\"}",b="y"} 1 123"#),
            r#"up{a="x\"}",b="y"}"#
        );
        assert_eq!(series_key("up{a=\"broken"), "up{a=\"broken");
    }

    #[test]
    fn a_write_keeps_other_commands_series_and_replaces_its_own() {
        let recorder = Recorder::default();
        recorder.set(&SNAPSHOT_BYTES_ADDED, 100.0);
        let first = merge(
            "",
            &render(&run("snapshot", 0, 1000.0), &recorder.take(), ""),
        );
        let second = merge(&first, &render(&run("check", 0, 2000.0), &[], ""));
        recorder.set(&SNAPSHOT_BYTES_ADDED, 7.0);
        let third = merge(
            &second,
            &render(&run("snapshot", 0, 3000.0), &recorder.take(), ""),
        );
        let last_success = format!("{}{CHECK}", LAST_SUCCESS.name);
        assert_eq!(value(&third, &last_success).as_deref(), Some("2000"));
        let last_success = format!("{}{SNAP}", LAST_SUCCESS.name);
        assert_eq!(value(&third, &last_success).as_deref(), Some("3000"));
        let added = "arca_snapshot_bytes_added{profile=\"\",repository=\"/srv/arca\"}";
        assert_eq!(value(&third, added).as_deref(), Some("7"));
        assert_eq!(third.matches(added).count(), 1, "{third}");
        // One HELP and one TYPE per family, before its samples.
        for name in [LAST_RUN.name, LAST_SUCCESS.name, SNAPSHOT_BYTES_ADDED.name] {
            assert_eq!(third.matches(&format!("# HELP {name} ")).count(), 1);
            assert_eq!(third.matches(&format!("# TYPE {name} ")).count(), 1);
            let lines: Vec<&str> = third.lines().collect();
            let help = lines
                .iter()
                .position(|l| l.starts_with(&format!("# HELP {name} ")))
                .unwrap();
            let samples: Vec<usize> = (0..lines.len())
                .filter(|&i| series_key(lines[i]).starts_with(&format!("{name}{{")))
                .collect();
            assert!(!samples.is_empty() && samples.iter().all(|&i| i > help + 1));
            // Samples of a family are contiguous.
            assert_eq!(samples.last().unwrap() - samples[0] + 1, samples.len());
        }
    }

    #[test]
    fn a_failure_keeps_the_last_success_and_sets_the_exit_code() {
        let ok = merge("", &render(&run("check", 0, 1000.0), &[], ""));
        let failed = merge(&ok, &render(&run("check", 1, 2000.0), &[], ""));
        let key = |g: &Metric| format!("{}{CHECK}", g.name);
        assert_eq!(value(&failed, &key(&LAST_SUCCESS)).as_deref(), Some("1000"));
        assert_eq!(value(&failed, &key(&LAST_RUN)).as_deref(), Some("2000"));
        assert_eq!(value(&failed, &key(&EXIT_CODE)).as_deref(), Some("1"));
        assert_eq!(value(&failed, &key(&DURATION)).as_deref(), Some("1.5"));
    }

    #[test]
    fn foreign_lines_survive_a_merge() {
        let existing = "# HELP other_seconds Something else.\n# TYPE other_seconds gauge\nother_seconds{job=\"x\"} 5\n# HELP h A histogram.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\nh_sum 4\nh_count 3\n";
        let merged = merge(existing, &render(&run("prune", 0, 1.0), &[], ""));
        assert!(merged.starts_with(existing), "{merged}");
        assert!(merged.contains("arca_run_exit_code{command=\"prune\""));
    }

    #[test]
    fn the_file_is_replaced_with_the_merge() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arca.prom");
        std::fs::write(&path, "other 1\n").unwrap();
        let recorder = Recorder::default();
        recorder.set(&CHECK_SUCCESS, 1.0);
        let mut r = run("check", 0, 5.0);
        r.repository = "odd \"repo\"\nname";
        write(&path, &r, &recorder).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("other 1\n"), "{text}");
        assert!(
            text.contains(
                "arca_check_success{profile=\"\",repository=\"odd \\\"repo\\\"\\nname\"} 1\n"
            ),
            "{text}"
        );
        // Nothing but the file itself is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
    }

    #[test]
    fn a_counter_adds_to_the_file_and_survives_other_writes() {
        let key = "arca_wal_archive_failures_total{profile=\"\",repository=\"/srv/arca\"}";
        let step = |existing: &str, amount: f64| {
            let recorder = Recorder::default();
            recorder.add(&WAL_ARCHIVE_FAILURES, amount);
            merge(
                existing,
                &render(&run("pg-archive-wal", 1, 1.0), &recorder.take(), existing),
            )
        };
        let first = step("", 0.0);
        assert_eq!(value(&first, key).as_deref(), Some("0"));
        assert!(first.contains("# TYPE arca_wal_archive_failures_total counter\n"));
        let third = step(&step(&first, 1.0), 1.0);
        assert_eq!(value(&third, key).as_deref(), Some("2"));
        let other = merge(&third, &render(&run("check", 0, 2.0), &[], &third));
        assert_eq!(value(&step(&other, 0.0), key).as_deref(), Some("2"));
        // A value that is no count starts the counter again.
        let broken = third.replace(&format!("{key} 2"), &format!("{key} NaN"));
        assert_eq!(value(&step(&broken, 1.0), key).as_deref(), Some("1"));
        assert_eq!(counter_value(&third, key), 2.0);
    }

    #[test]
    fn values_written_while_running_keep_the_run_series_and_add_to_counters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arca.prom");
        let recorder = Recorder::default();
        write(&path, &run("check", 0, 5.0), &recorder).unwrap();
        let key =
            "arca_watch_failures_total{database=\"/a.db\",profile=\"\",repository=\"/srv/arca\"}";
        for _ in 0..2 {
            recorder.add_labelled(&WATCH_FAILURES, &[("database", "/a.db")], 1.0);
            recorder.add_labelled(&WATCH_FAILURES, &[("database", "/a.db")], 1.0);
            recorder.set(&WATCH_LAST_ROUND, 7.0);
            write_values(&path, "", "/srv/arca", &recorder).unwrap();
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(value(&text, key).as_deref(), Some("4"), "{text}");
        assert!(text.contains("# TYPE arca_watch_failures_total counter\n"));
        let round =
            "arca_watch_last_round_timestamp_seconds{profile=\"\",repository=\"/srv/arca\"}";
        assert_eq!(value(&text, round).as_deref(), Some("7"), "{text}");
        // The check's series are still there; no run series for watch yet.
        assert!(
            text.contains(&format!("{}{CHECK}", LAST_RUN.name)),
            "{text}"
        );
        assert!(!text.contains("command=\"watch\""), "{text}");
    }

    #[test]
    fn labelled_series_and_sums_over_profiles() {
        let recorder = Recorder::default();
        recorder.set_labelled(&NEWEST_SNAPSHOT, &[("hostname", "db\"1")], 5.0);
        recorder.set_labelled(&NEWEST_SNAPSHOT, &[("hostname", "db2")], 6.0);
        recorder.set_labelled(&NEWEST_SNAPSHOT, &[("hostname", "db2")], 7.0);
        let text = merge("", &render(&run("status", 0, 1.0), &recorder.take(), ""));
        let db1 = "arca_newest_snapshot_timestamp_seconds{hostname=\"db\\\"1\",profile=\"\",repository=\"/srv/arca\"}";
        assert_eq!(value(&text, db1).as_deref(), Some("5"), "{text}");
        assert_eq!(text.matches("hostname=\"db2\"").count(), 1, "{text}");
        assert_eq!(
            text.matches("# HELP arca_newest_snapshot").count(),
            1,
            "{text}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("arca.prom");
        assert_eq!(
            read_sum(&path, &WAL_ARCHIVE_FAILURES, "/srv/arca").unwrap(),
            None
        );
        let lines = "arca_wal_archive_failures_total{profile=\"a\",repository=\"/srv/arca\"} 2\n\
                     arca_wal_archive_failures_total{profile=\"b\",repository=\"/srv/arca\"} 3\n\
                     arca_wal_archive_failures_total{profile=\"a\",repository=\"/srv/arca2\"} 7\n";
        std::fs::write(&path, lines).unwrap();
        assert_eq!(
            read_sum(&path, &WAL_ARCHIVE_FAILURES, "/srv/arca").unwrap(),
            Some(5.0)
        );
        assert_eq!(
            read_sum(&path, &WAL_ARCHIVE_FAILURES, "/srv").unwrap(),
            None
        );
    }
}
