//! PostgreSQL: base backups as snapshots, and point-in-time recovery from
//! them with the WAL archived beside them (docs/format.md §7.11).
//!
//! A base backup is a snapshot of the tar stream `pg_basebackup -D - -Ft`
//! writes, stored as `/base.tar` without ever touching local disk, beside a
//! small record `/base.json` ([`BaseBackup`]) that says where in the WAL the
//! backup starts and stops. Such snapshots carry the tag
//! [`BASE_BACKUP_TAG`]. Recovery unpacks `/base.tar` into an empty data
//! directory ([`unpack_base_backup`]) and writes the settings that make
//! PostgreSQL replay the archived WAL up to a time ([`write_recovery`]).
//! WAL retention ([`plan_wal_retention`]) keeps every WAL file a kept base
//! backup needs.

mod retention;
mod unpack;
mod watch;

use std::cell::RefCell;
use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::blob::BlobKind;
use crate::error::{Error, Result};
use crate::format::{self, PG_MAX_RECORD_LEN as MAX_RECORD_LEN, PG_RECORD_FORMAT as RECORD_FORMAT};
use crate::id::SnapshotId;
use crate::ops::snapshot::{Progress, SnapshotOptions, SnapshotOutcome, snapshot_stream_with};
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::time::Time;
use crate::tree::NodeKind;

pub use retention::{WalPlan, WalRemoval, plan_wal_retention, remove_wal};
pub use unpack::{UnpackReport, check_target, unpack_base_backup};

/// The tag every base backup snapshot carries.
pub const BASE_BACKUP_TAG: &str = format::PG_BASE_TAG;
/// The name of the tar stream in a base backup snapshot.
pub const BASE_STREAM_NAME: &str = format::PG_BASE_STREAM;
/// The name of the backup's record in a base backup snapshot.
pub const BASE_RECORD_NAME: &str = format::PG_BASE_RECORD;

/// A position in the WAL: PostgreSQL's LSN, written `X/Y` in hex.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

impl std::str::FromStr for Lsn {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Lsn, String> {
        let bad = || format!("{text:?} is not a WAL position (X/Y in hexadecimal)");
        let (high, low) = text.split_once('/').ok_or_else(bad)?;
        let part = |s: &str| {
            if s.is_empty() || s.len() > 8 {
                return Err(bad());
            }
            u32::from_str_radix(s, 16).map_err(|_| bad())
        };
        Ok(Lsn((u64::from(part(high)?) << 32) | u64::from(part(low)?)))
    }
}

impl Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Lsn, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// The record `/base.json` of a base backup snapshot: what the backup
/// needs from the WAL archive to become consistent, and when it was taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseBackup {
    /// The record's format: 1.
    pub format: u32,
    /// The server's major version (its `PG_VERSION`), e.g. `"16"`.
    pub pg_version: String,
    /// The timeline the backup started on.
    pub timeline: u32,
    /// Where replay starts (`START WAL LOCATION` of its `backup_label`).
    pub start_lsn: Lsn,
    /// The WAL segment file holding `start_lsn`: every WAL file this
    /// backup needs sorts at or after it on its timeline.
    pub start_wal: String,
    /// Where the backup becomes consistent (the end of its manifest's
    /// `WAL-Ranges`).
    pub stop_lsn: Lsn,
    /// The timeline `stop_lsn` is on.
    pub stop_timeline: u32,
    /// When the backup started (RFC 3339).
    pub start_time: String,
    /// When the stream ended, at or after the server finished the backup
    /// (RFC 3339): recovery to any later time can start from it.
    pub stop_time: String,
}

impl BaseBackup {
    /// When the backup ended.
    pub fn stopped(&self) -> Result<Time> {
        parse_time(&self.stop_time)
    }

    /// The segment part (log and segment number) of `start_wal`, compared
    /// with other WAL files of a timeline by text.
    pub(crate) fn start_position(&self) -> &str {
        self.start_wal.get(8..24).unwrap_or("")
    }

    fn check(&self, object: &str) -> Result<()> {
        let bad = |what: &str| Error::corrupt(object, format!("its base backup record {what}"));
        if self.format != RECORD_FORMAT {
            return Err(bad(&format!("has format {}, not 1", self.format)));
        }
        if self.start_wal.len() != 24 || !crate::wal::is_wal_file_name(&self.start_wal) {
            return Err(bad("names no WAL segment as its start"));
        }
        if u32::from_str_radix(&self.start_wal[..8], 16).ok() != Some(self.timeline) {
            return Err(bad("has a start segment on another timeline"));
        }
        if self.stop_lsn < self.start_lsn || self.stop_timeline < self.timeline {
            return Err(bad("stops before it starts"));
        }
        parse_time(&self.start_time)?;
        parse_time(&self.stop_time)?;
        Ok(())
    }
}

fn parse_time(text: &str) -> Result<Time> {
    let ts: jiff::Timestamp = text
        .parse()
        .map_err(|e| Error::InvalidInput(format!("{text:?} is not a time: {e}")))?;
    Ok(Time::from_zoned(&ts.to_zoned(jiff::tz::TimeZone::UTC)))
}

/// Stores the tar stream `pg_basebackup -D - -Ft` writes to `stream` as a
/// base backup snapshot, tagged [`BASE_BACKUP_TAG`] besides `options`'
/// tags. `finish` runs when the stream ends (it waits for the command and
/// fails when it failed); then the stream's `backup_label` and manifest
/// are read for the record. Nothing is saved when either fails. Returns
/// the snapshot and its record.
pub fn backup(
    repo: &mut Repository,
    options: &SnapshotOptions,
    stream: &mut dyn Read,
    finish: &mut dyn FnMut() -> Result<()>,
    progress: &Progress,
) -> Result<(SnapshotOutcome, BaseBackup)> {
    let mut options = options.clone();
    if !options.tags.iter().any(|t| t == BASE_BACKUP_TAG) {
        options.tags.push(BASE_BACKUP_TAG.to_string());
        options.tags.sort();
    }
    let started = Time::now();
    let watch = RefCell::new(watch::TarWatch::new(stream));
    let record = RefCell::new(None);
    let outcome = snapshot_stream_with(
        repo,
        &options,
        BASE_STREAM_NAME,
        &mut Shared(&watch),
        &mut || {
            finish()?;
            let described = describe(&watch.borrow(), started, Time::now())?;
            let bytes = serde_json::to_vec_pretty(&described)
                .map_err(|e| Error::Internal(format!("cannot encode a base backup record: {e}")))?;
            *record.borrow_mut() = Some(described);
            Ok(Some((BASE_RECORD_NAME.to_string(), bytes)))
        },
        progress,
    )?;
    let record = record
        .into_inner()
        .ok_or_else(|| Error::Internal("a base backup was stored without its record".into()))?;
    Ok((outcome, record))
}

/// The record a pg_basebackup tar stream describes, read to its end
/// without storing it: what [`backup`] would record (its times now). For
/// tests and fuzzing; an error for anything but a complete base backup.
pub fn describe_stream(stream: &mut dyn Read) -> Result<BaseBackup> {
    let mut watch = watch::TarWatch::new(stream);
    std::io::copy(&mut watch, &mut std::io::sink())
        .map_err(|e| Error::source("the pg_basebackup stream", e))?;
    let now = Time::now();
    describe(&watch, now, now)
}

/// Parses and checks a base backup record (`/base.json`); `object` names
/// it in errors.
pub fn parse_record(bytes: &[u8], object: &str) -> Result<BaseBackup> {
    let backup: BaseBackup = serde_json::from_slice(bytes).map_err(|e| {
        Error::corrupt(
            object,
            format!("its {BASE_RECORD_NAME} does not parse: {e}"),
        )
    })?;
    backup.check(object)?;
    Ok(backup)
}

/// Reads through a watch another closure looks at when the stream ends.
struct Shared<'w, 'r>(&'w RefCell<watch::TarWatch<'r>>);

impl Read for Shared<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().read(buf)
    }
}

/// The record of a stream that has ended, from its `backup_label`,
/// `PG_VERSION` and manifest.
fn describe(watch: &watch::TarWatch<'_>, started: Time, stopped: Time) -> Result<BaseBackup> {
    let bad = |what: String| {
        Error::InvalidInput(format!(
            "the pg_basebackup stream is not a usable base backup: {what}"
        ))
    };
    let seen = watch.seen().map_err(bad)?;
    let label = String::from_utf8_lossy(&seen.label);
    let field = |name: &str| {
        label
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .ok_or_else(|| bad(format!("its backup_label has no {name:?} line")))
    };
    // START WAL LOCATION: 0/2000028 (file 000000010000000000000002)
    let location = field("START WAL LOCATION:")?;
    let (lsn, file) = location
        .split_once(" (file ")
        .and_then(|(lsn, rest)| Some((lsn, rest.strip_suffix(')')?)))
        .ok_or_else(|| {
            bad(format!(
                "its START WAL LOCATION {location:?} is not understood"
            ))
        })?;
    let start_lsn: Lsn = lsn.parse().map_err(bad)?;
    let timeline: u32 = field("START TIMELINE:")?
        .parse()
        .map_err(|_| bad("its START TIMELINE is not a number".into()))?;
    if !seen.manifest_seen {
        return Err(bad(
            "it has no backup_manifest (pg_basebackup must not be run with --no-manifest)".into(),
        ));
    }
    let (stop_timeline, stop_lsn) = manifest_stop(&seen.manifest_tail).map_err(bad)?;
    let pg_version = String::from_utf8_lossy(&seen.version).trim().to_string();
    if pg_version.is_empty() || !pg_version.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(bad("it has no PG_VERSION".into()));
    }
    let record = BaseBackup {
        format: RECORD_FORMAT,
        pg_version,
        timeline,
        start_lsn,
        start_wal: file.to_string(),
        stop_lsn,
        stop_timeline,
        start_time: started.to_rfc3339(),
        stop_time: stopped.to_rfc3339(),
    };
    record
        .check("the pg_basebackup stream")
        .map_err(|e| bad(e.to_string()))?;
    Ok(record)
}

/// The last `WAL-Ranges` entry's timeline and end, from the end of a
/// backup manifest.
fn manifest_stop(tail: &[u8]) -> std::result::Result<(u32, Lsn), String> {
    #[derive(Deserialize)]
    struct Range {
        #[serde(rename = "Timeline")]
        timeline: u32,
        #[serde(rename = "End-LSN")]
        end: Lsn,
    }
    let text = String::from_utf8_lossy(tail);
    let missing = || "its backup_manifest has no WAL-Ranges".to_string();
    let at = text.rfind("\"WAL-Ranges\"").ok_or_else(missing)?;
    let rest = &text[at..];
    let open = rest.find('[').ok_or_else(missing)?;
    let close = rest.find(']').ok_or_else(missing)?;
    if close < open {
        return Err(missing());
    }
    let ranges: Vec<Range> = serde_json::from_str(&rest[open..=close])
        .map_err(|e| format!("its backup_manifest's WAL-Ranges do not parse: {e}"))?;
    let last = ranges.last().ok_or_else(missing)?;
    Ok((last.timeline, last.end))
}

/// The WAL segment files a base backup needs to become consistent: from
/// its start segment to the one holding its stop position, on its
/// timeline. `segment_size` is the cluster's WAL segment size (the size of
/// any archived segment); without it, or when the backup crossed a
/// timeline, only the start segment is known.
pub fn segments_between(backup: &BaseBackup, segment_size: Option<u64>) -> Vec<String> {
    let Some(size) = segment_size.filter(|s| s.is_power_of_two() && *s >= 1 << 20) else {
        return vec![backup.start_wal.clone()];
    };
    if backup.stop_timeline != backup.timeline {
        return vec![backup.start_wal.clone()];
    }
    let per_log = 0x1_0000_0000 / size;
    let first = backup.start_lsn.0 / size;
    // The stop position is just past the last record the backup needs.
    let last = backup.stop_lsn.0.saturating_sub(1).max(backup.start_lsn.0) / size;
    // A record that breaks a range beyond any real backup stays one name.
    if last.saturating_sub(first) > 1 << 20 {
        return vec![backup.start_wal.clone()];
    }
    let names: Vec<String> = (first..=last)
        .map(|n| {
            format!(
                "{:08X}{:08X}{:08X}",
                backup.timeline,
                n / per_log,
                n % per_log
            )
        })
        .collect();
    // Another segment size than the cluster's would name other files.
    if names.first() != Some(&backup.start_wal) {
        return vec![backup.start_wal.clone()];
    }
    names
}

/// A base backup snapshot and its record.
#[derive(Clone, Debug)]
pub struct BaseBackupSnapshot {
    /// The snapshot's id.
    pub id: SnapshotId,
    /// The snapshot.
    pub snapshot: Snapshot,
    /// Its record.
    pub backup: BaseBackup,
}

/// Every snapshot tagged [`BASE_BACKUP_TAG`] among `snapshots`, with its
/// record, oldest first; and those whose record cannot be read, with the
/// error naming the snapshot. Reads trees and blobs: the index must be
/// loaded.
pub fn base_backups(
    repo: &Repository,
    snapshots: &[(SnapshotId, Snapshot)],
) -> (Vec<BaseBackupSnapshot>, Vec<(SnapshotId, Error)>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for (id, snapshot) in snapshots {
        if !snapshot.tags.iter().any(|t| t == BASE_BACKUP_TAG) {
            continue;
        }
        match read_record(repo, id, snapshot) {
            Ok(backup) => good.push(BaseBackupSnapshot {
                id: *id,
                snapshot: snapshot.clone(),
                backup,
            }),
            Err(e) => bad.push((*id, e)),
        }
    }
    good.sort_by_key(|b| b.snapshot.time);
    (good, bad)
}

/// Reads `/base.json` of a base backup snapshot.
pub fn read_record(repo: &Repository, id: &SnapshotId, snapshot: &Snapshot) -> Result<BaseBackup> {
    let object = format!("snapshot {}", id.short());
    let node = base_file(repo, snapshot, BASE_RECORD_NAME, &object)?;
    if node.size > MAX_RECORD_LEN {
        return Err(Error::corrupt(
            &object,
            format!(
                "its {BASE_RECORD_NAME} is {} bytes, more than a record can be",
                node.size
            ),
        ));
    }
    let mut bytes = Vec::new();
    for blob in &node.content {
        bytes.extend_from_slice(&repo.read_blob(BlobKind::Data, &blob.id())?);
        if bytes.len() as u64 > node.size {
            break;
        }
    }
    if bytes.len() as u64 != node.size {
        return Err(Error::corrupt(
            &object,
            format!("its {BASE_RECORD_NAME} does not have the size it records"),
        ));
    }
    let backup: BaseBackup = serde_json::from_slice(&bytes).map_err(|e| {
        Error::corrupt(
            &object,
            format!("its {BASE_RECORD_NAME} does not parse: {e}"),
        )
    })?;
    backup.check(&object)?;
    Ok(backup)
}

/// The file `name` at the root of a base backup snapshot.
fn base_file(
    repo: &Repository,
    snapshot: &Snapshot,
    name: &str,
    object: &str,
) -> Result<crate::tree::Node> {
    let root = repo.read_tree(&snapshot.tree)?;
    root.nodes
        .into_iter()
        .find(|n| n.name == name.as_bytes() && n.kind == NodeKind::File)
        .ok_or_else(|| {
            Error::corrupt(
                object,
                format!("it is tagged {BASE_BACKUP_TAG} but has no file {name}"),
            )
        })
}

/// The base backup to recover from: the newest that ended at or before
/// `as_of`, or the newest of all when `as_of` is `None`.
pub fn choose(backups: &[BaseBackupSnapshot], as_of: Option<Time>) -> Option<&BaseBackupSnapshot> {
    backups
        .iter()
        .filter(|b| match as_of {
            None => true,
            Some(t) => b.backup.stopped().is_ok_and(|stopped| stopped <= t),
        })
        .max_by_key(|b| (b.backup.stopped().ok(), b.snapshot.time))
}

/// How recovery proceeds once the data directory is unpacked.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// The shell command PostgreSQL runs to fetch one WAL file; `%f` and
    /// `%p` are its placeholders.
    pub restore_command: String,
    /// Stop replay at this time (inclusive); `None`: at the end of the
    /// archive.
    pub target_time: Option<Time>,
}

/// Makes the unpacked data directory `datadir` start in recovery: writes
/// `recovery.signal` and adds to `postgresql.auto.conf` the restore
/// command, the target time and `recovery_target_action = 'promote'`.
pub fn write_recovery(datadir: &std::path::Path, recovery: &Recovery) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let quote = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
    let mut lines = String::from("\n# Added by arca pg restore.\n");
    lines.push_str(&format!(
        "restore_command = {}\n",
        quote(&recovery.restore_command)
    ));
    if let Some(t) = recovery.target_time {
        let utc = t.to_zoned().with_time_zone(jiff::tz::TimeZone::UTC);
        lines.push_str(&format!(
            "recovery_target_time = {}\n",
            quote(&utc.strftime("%Y-%m-%d %H:%M:%S%.6f+00").to_string())
        ));
        lines.push_str("recovery_target_inclusive = on\n");
    }
    lines.push_str("recovery_target_timeline = 'latest'\n");
    lines.push_str("recovery_target_action = 'promote'\n");
    let conf = datadir.join("postgresql.auto.conf");
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&conf)
        .map_err(|e| Error::target(&conf, e))?;
    file.write_all(lines.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::target(&conf, e))?;
    let signal = datadir.join("recovery.signal");
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&signal)
        .map_err(|e| Error::target(&signal, e))?;
    // Made by root, it still belongs to the server, which removes it when
    // recovery ends: the data directory's owner.
    if nix::unistd::geteuid().is_root() {
        let dir = std::fs::metadata(datadir).map_err(|e| Error::target(datadir, e))?;
        use std::os::unix::fs::MetadataExt;
        nix::unistd::fchown(
            &made,
            Some(nix::unistd::Uid::from_raw(dir.uid())),
            Some(nix::unistd::Gid::from_raw(dir.gid())),
        )
        .map_err(|e| Error::target(&signal, std::io::Error::from_raw_os_error(e as i32)))?;
    }
    made.sync_all().map_err(|e| Error::target(&signal, e))?;
    Ok(())
}
