//! Retention policies: which snapshots `forget` keeps and why.
//!
//! A pure computation with no I/O. Snapshots are split into groups
//! ([`GroupBy`], [`group`]); a [`Policy`] then runs over each group on its
//! own, newest snapshot first, and every snapshot gets a [`Decision`]: kept
//! with the reasons of every rule that kept it, or forgotten. The rules,
//! their buckets and the calendar arithmetic of `--keep-within*` are
//! described in `docs/retention.md`.
//!
//! In short:
//! - Calendar buckets (hour, day, ISO week, month, year) are read from the
//!   wall clock at which a snapshot was taken, in the UTC offset it recorded;
//!   the time zone of the machine running `forget` does not move them.
//! - `within` durations count back from the newest snapshot of the group
//!   that is not in the future, with calendar arithmetic: years and months
//!   change the month fields and keep the day number (a day past the end of
//!   the month rolls into the next one), then days, then hours as elapsed
//!   time. A snapshot is within when it is strictly newer than the result.
//! - Counted rules keep the newest snapshot of each bucket until the count
//!   runs out; while counts remain, the oldest snapshot of the group is kept
//!   too.
//!
//! A policy without any rule keeps nothing; callers refuse it
//! ([`Policy::is_empty`]) unless removing everything is what was asked for.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::error::{Error, Result};
use crate::id::SnapshotId;
use crate::snapshot::Snapshot;
use crate::time::Time;

/// The count that keeps every bucket: `--keep-daily unlimited`.
pub const UNLIMITED: i64 = -1;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// A calendar duration for the `within` rules, such as `1y6m` or `7d12h`.
///
/// Years and months move the calendar fields, days move the date, hours are
/// elapsed time; see the module documentation. All fields zero means the
/// rule is off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// Calendar years.
    pub years: i32,
    /// Calendar months.
    pub months: i32,
    /// Calendar days.
    pub days: i32,
    /// Hours of elapsed time.
    pub hours: i32,
}

impl Span {
    /// Whether every field is zero (a rule with this span keeps nothing).
    pub fn is_zero(&self) -> bool {
        *self == Span::default()
    }
}

impl FromStr for Span {
    type Err = Error;

    /// Parses numbers each followed by a unit: `y` years, `m` months, `d`
    /// days, `h` hours, in any order, each unit at most once (`2y5m7d3h`).
    fn from_str(s: &str) -> Result<Span> {
        let invalid = |why: String| {
            Error::InvalidInput(format!(
                "invalid duration {s:?}: {why} (write numbers with the units y, m, d and h, as in 1y6m or 7d12h)"
            ))
        };
        let text = s.trim();
        if text.is_empty() {
            return Err(invalid("it is empty".into()));
        }
        let mut span = Span::default();
        let mut seen = [false; 4];
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(invalid(format!("expected a number at {rest:?}")));
            }
            let (number, tail) = rest.split_at(digits);
            let value: i32 = number
                .parse()
                .map_err(|_| invalid(format!("{number} is too large")))?;
            let Some(unit) = tail.chars().next() else {
                return Err(invalid(format!("the number {number} has no unit")));
            };
            let (slot, field) = match unit {
                'y' => (0, &mut span.years),
                'm' => (1, &mut span.months),
                'd' => (2, &mut span.days),
                'h' => (3, &mut span.hours),
                other => return Err(invalid(format!("{other:?} is not a unit"))),
            };
            if seen[slot] {
                return Err(invalid(format!("the unit {unit:?} appears twice")));
            }
            seen[slot] = true;
            *field = value;
            rest = &tail[unit.len_utf8()..];
        }
        Ok(span)
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0d");
        }
        for (value, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if value != 0 {
                write!(f, "{value}{unit}")?;
            }
        }
        Ok(())
    }
}

impl Serialize for Span {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Parses a `--keep-*` count: a number of 0 or more, or `unlimited` (also
/// written `-1`), which gives [`UNLIMITED`].
pub fn parse_count(s: &str) -> Result<i64> {
    let text = s.trim();
    if text == "unlimited" || text == "-1" {
        return Ok(UNLIMITED);
    }
    match text.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(Error::InvalidInput(format!(
            "invalid count {s:?}: give a number of 0 or more, or \"unlimited\""
        ))),
    }
}

/// Parses a `--keep-tag` value: tags separated by commas, all of which a
/// snapshot must have. Blanks around each tag are dropped.
pub fn parse_tag_list(s: &str) -> Result<Vec<String>> {
    let tags: Vec<String> = s.split(',').map(|t| t.trim().to_string()).collect();
    if tags.iter().any(String::is_empty) {
        return Err(Error::InvalidInput(format!(
            "invalid tag list {s:?}: it has an empty tag (separate tags with single commas)"
        )));
    }
    Ok(tags)
}

/// The rules of a retention policy. A snapshot is kept when any rule keeps
/// it.
///
/// Counts: `Some(n)` with `n > 0` keeps the newest snapshot of each of the
/// `n` newest buckets; [`UNLIMITED`] keeps every bucket; `None` and
/// `Some(0)` are no rule. Spans: `None` and a zero span are no rule.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// The newest `n` snapshots.
    pub last: Option<i64>,
    /// The newest snapshot of each of the `n` newest hours.
    pub hourly: Option<i64>,
    /// The newest snapshot of each of the `n` newest days.
    pub daily: Option<i64>,
    /// The newest snapshot of each of the `n` newest ISO weeks.
    pub weekly: Option<i64>,
    /// The newest snapshot of each of the `n` newest months.
    pub monthly: Option<i64>,
    /// The newest snapshot of each of the `n` newest years.
    pub yearly: Option<i64>,
    /// Every snapshot strictly newer than the newest minus this span.
    pub within: Option<Span>,
    /// The newest snapshot of each hour within the span.
    pub within_hourly: Option<Span>,
    /// The newest snapshot of each day within the span.
    pub within_daily: Option<Span>,
    /// The newest snapshot of each ISO week within the span.
    pub within_weekly: Option<Span>,
    /// The newest snapshot of each month within the span.
    pub within_monthly: Option<Span>,
    /// The newest snapshot of each year within the span.
    pub within_yearly: Option<Span>,
    /// Snapshots that have all tags of at least one of these lists. They
    /// are kept without using up any count.
    pub tags: Vec<Vec<String>>,
}

fn count_active(count: Option<i64>) -> Option<i64> {
    count.filter(|&n| n > 0 || n == UNLIMITED)
}

fn span_active(span: Option<Span>) -> Option<Span> {
    span.filter(|s| !s.is_zero())
}

impl Policy {
    /// Whether the policy has no rule at all, so that [`apply`] would forget
    /// every snapshot.
    pub fn is_empty(&self) -> bool {
        self.counts()
            .iter()
            .all(|(_, n)| count_active(*n).is_none())
            && span_active(self.within).is_none()
            && self
                .within_spans()
                .iter()
                .all(|(_, s)| span_active(*s).is_none())
            && self.tags.is_empty()
    }

    fn counts(&self) -> [(Bucket, Option<i64>); 6] {
        [
            (Bucket::Last, self.last),
            (Bucket::Hour, self.hourly),
            (Bucket::Day, self.daily),
            (Bucket::Week, self.weekly),
            (Bucket::Month, self.monthly),
            (Bucket::Year, self.yearly),
        ]
    }

    fn within_spans(&self) -> [(Bucket, Option<Span>); 5] {
        [
            (Bucket::Hour, self.within_hourly),
            (Bucket::Day, self.within_daily),
            (Bucket::Week, self.within_weekly),
            (Bucket::Month, self.within_monthly),
            (Bucket::Year, self.within_yearly),
        ]
    }
}

/// A one-line summary such as `daily 7, weekly 4, tags [month-end]`.
impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for (bucket, count) in self.counts() {
            if let Some(n) = count_active(count) {
                let name = bucket.adjective();
                if n == UNLIMITED {
                    parts.push(format!("{name} unlimited"));
                } else {
                    parts.push(format!("{name} {n}"));
                }
            }
        }
        if let Some(span) = span_active(self.within) {
            parts.push(format!("within {span}"));
        }
        for (bucket, span) in self.within_spans() {
            if let Some(span) = span_active(span) {
                parts.push(format!("{} within {span}", bucket.adjective()));
            }
        }
        for list in &self.tags {
            parts.push(format!("tags [{}]", list.join(", ")));
        }
        if parts.is_empty() {
            f.write_str("no rules")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// Which snapshot fields split snapshots into groups; the rules run on each
/// group separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GroupBy {
    /// Snapshots of different hosts are in different groups.
    pub host: bool,
    /// Snapshots of different sets of source paths are in different groups.
    pub paths: bool,
    /// Snapshots with different sets of tags are in different groups.
    pub tags: bool,
}

impl Default for GroupBy {
    /// By host and paths.
    fn default() -> GroupBy {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl FromStr for GroupBy {
    type Err = Error;

    /// Parses `host`, `paths` and `tags` separated by commas (`hosts`,
    /// `path` and `tag` also work); the empty string means no grouping.
    fn from_str(s: &str) -> Result<GroupBy> {
        let mut by = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        for part in s.split(',') {
            match part.trim() {
                "host" | "hosts" => by.host = true,
                "path" | "paths" => by.paths = true,
                "tag" | "tags" => by.tags = true,
                "" => {}
                other => {
                    return Err(Error::InvalidInput(format!(
                        "unknown grouping {other:?} in {s:?}: use host, paths and tags separated by commas, or \"\" for no grouping"
                    )));
                }
            }
        }
        Ok(by)
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.host {
            parts.push("host");
        }
        if self.paths {
            parts.push("paths");
        }
        if self.tags {
            parts.push("tags");
        }
        f.write_str(&parts.join(","))
    }
}

/// What the snapshots of one group share; `None` for fields not grouped by.
/// Paths and tags are sorted.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct GroupKey {
    /// The host, when grouping by host.
    pub hostname: Option<String>,
    /// The source paths, when grouping by paths.
    pub paths: Option<Vec<String>>,
    /// The tags, when grouping by tags.
    pub tags: Option<Vec<String>>,
}

/// A heading such as `host db1, paths [/srv/a, /srv/b]`, or `all snapshots`
/// without grouping.
impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(host) = &self.hostname {
            parts.push(format!("host {host}"));
        }
        if let Some(paths) = &self.paths {
            parts.push(format!("paths [{}]", paths.join(", ")));
        }
        if let Some(tags) = &self.tags {
            parts.push(format!("tags [{}]", tags.join(", ")));
        }
        if parts.is_empty() {
            f.write_str("all snapshots")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// What the policy says about one snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The snapshot.
    #[serde(serialize_with = "hex_id")]
    pub id: SnapshotId,
    /// When it was taken.
    #[serde(serialize_with = "rfc3339")]
    pub time: Time,
    /// Whether any rule keeps it.
    pub keep: bool,
    /// Why it is kept, in rule order: `has tags [a, b]`, `within 1m`,
    /// `last snapshot`, `daily snapshot`, `oldest monthly snapshot`,
    /// `daily within 7d`, ... Empty when forgotten.
    pub reasons: Vec<String>,
}

fn hex_id<S: Serializer>(id: &SnapshotId, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&id.to_hex())
}

fn rfc3339<S: Serializer>(time: &Time, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&time.to_rfc3339())
}

/// The decisions for one group, newest snapshot first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Group {
    /// What the group's snapshots share.
    pub key: GroupKey,
    /// One decision per snapshot of the group.
    pub decisions: Vec<Decision>,
}

impl Group {
    /// The snapshots kept, newest first.
    pub fn kept(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.keep)
    }

    /// The snapshots to forget, newest first.
    pub fn forgotten(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| !d.keep)
    }
}

/// What the rules look at in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    /// The snapshot.
    pub id: SnapshotId,
    /// When it was taken, with its UTC offset (which decides its buckets).
    pub time: Time,
    /// Its tags.
    pub tags: Vec<String>,
}

/// Groups snapshots by the fields of `by`. Groups come sorted by key, the
/// snapshots of each newest first (equal times by id).
pub fn group(
    snapshots: &[(SnapshotId, Snapshot)],
    by: GroupBy,
) -> Vec<(GroupKey, Vec<(SnapshotId, Snapshot)>)> {
    group_refs(snapshots, by)
        .into_iter()
        .map(|(key, members)| (key, members.into_iter().cloned().collect()))
        .collect()
}

/// Groups the snapshots ([`group`]) and runs the policy on each group
/// ([`decide`]).
pub fn apply(
    snapshots: &[(SnapshotId, Snapshot)],
    policy: &Policy,
    by: GroupBy,
    now: &jiff::Zoned,
) -> Vec<Group> {
    group_refs(snapshots, by)
        .into_iter()
        .map(|(key, members)| {
            let items: Vec<Item> = members
                .iter()
                .map(|(id, snap)| Item {
                    id: *id,
                    time: snap.time,
                    tags: snap.tags.clone(),
                })
                .collect();
            Group {
                key,
                decisions: decide(&items, policy, now),
            }
        })
        .collect()
}

/// The grouping key before display: raw path bytes, so paths that are not
/// UTF-8 never merge.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct RawKey {
    hostname: Option<String>,
    paths: Option<Vec<Vec<u8>>>,
    tags: Option<Vec<String>>,
}

fn group_refs(
    snapshots: &[(SnapshotId, Snapshot)],
    by: GroupBy,
) -> Vec<(GroupKey, Vec<&(SnapshotId, Snapshot)>)> {
    let mut groups: BTreeMap<RawKey, Vec<&(SnapshotId, Snapshot)>> = BTreeMap::new();
    for entry in snapshots {
        let snap = &entry.1;
        let key = RawKey {
            hostname: by.host.then(|| snap.hostname.clone()),
            paths: by.paths.then(|| {
                let mut paths: Vec<Vec<u8>> = snap.paths.iter().map(|p| p.to_vec()).collect();
                paths.sort();
                paths
            }),
            tags: by.tags.then(|| {
                let mut tags = snap.tags.clone();
                tags.sort();
                tags
            }),
        };
        groups.entry(key).or_default().push(entry);
    }
    groups
        .into_iter()
        .map(|(raw, mut members)| {
            members.sort_by(|a, b| b.1.time.at.cmp(&a.1.time.at).then(a.0.cmp(&b.0)));
            let key = GroupKey {
                hostname: raw.hostname,
                paths: raw.paths.map(|paths| {
                    paths
                        .iter()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .collect()
                }),
                tags: raw.tags,
            };
            (key, members)
        })
        .collect()
}

/// Runs the policy over the snapshots of one group.
///
/// Returns one decision per item, newest first (equal times ordered by id).
/// `now` serves twice: snapshots newer than it are not taken as the newest
/// snapshot that `within` spans count back from, and its time zone is the
/// local zone for that calendar arithmetic (used when the newest snapshot
/// was taken at the offset the zone had then; otherwise the snapshot's own
/// offset is used). Pass `jiff::Zoned::now()`.
pub fn decide(items: &[Item], policy: &Policy, now: &jiff::Zoned) -> Vec<Decision> {
    let mut order: Vec<&Item> = items.iter().collect();
    order.sort_by(|a, b| b.time.at.cmp(&a.time.at).then(a.id.cmp(&b.id)));
    if order.is_empty() {
        return Vec::new();
    }
    let oldest = order.len() - 1;

    let reference = newest_before(&order, now.timestamp().as_nanosecond());
    let local = now.time_zone();
    let count_back = |span: Span| cutoff(reference, span, local);

    let within = span_active(policy.within).map(|span| (span, count_back(span)));
    let mut counted: Vec<Counter> = policy
        .counts()
        .into_iter()
        .filter_map(|(bucket, count)| {
            count_active(count).map(|remaining| Counter {
                bucket,
                remaining,
                last: None,
            })
        })
        .collect();
    let mut windowed: Vec<Window> = policy
        .within_spans()
        .into_iter()
        .filter_map(|(bucket, span)| {
            span_active(span).map(|span| Window {
                bucket,
                span,
                cutoff: count_back(span),
                last: None,
            })
        })
        .collect();

    let mut decisions = Vec::with_capacity(order.len());
    for (nr, item) in order.iter().enumerate() {
        let is_oldest = nr == oldest;
        let at = nanos(item.time);
        let mut reasons = Vec::new();

        for list in &policy.tags {
            if list.iter().all(|tag| item.tags.contains(tag)) {
                reasons.push(format!("has tags [{}]", list.join(", ")));
            }
        }

        if let Some((span, limit)) = within
            && at > limit
        {
            reasons.push(format!("within {span}"));
        }

        for counter in &mut counted {
            if counter.remaining == 0 {
                continue;
            }
            let value = counter.bucket.value(item.time, nr);
            let repeated = counter.last == Some(value);
            if !repeated || is_oldest {
                counter.last = Some(value);
                if counter.remaining > 0 {
                    counter.remaining -= 1;
                }
                let prefix = if repeated { "oldest " } else { "" };
                reasons.push(format!("{prefix}{} snapshot", counter.bucket.adjective()));
            }
        }

        for window in &mut windowed {
            if at <= window.cutoff {
                continue;
            }
            let value = window.bucket.value(item.time, nr);
            let repeated = window.last == Some(value);
            if !repeated || is_oldest {
                window.last = Some(value);
                let prefix = if repeated { "oldest " } else { "" };
                reasons.push(format!(
                    "{prefix}{} within {}",
                    window.bucket.adjective(),
                    window.span
                ));
            }
        }

        decisions.push(Decision {
            id: item.id,
            time: item.time,
            keep: !reasons.is_empty(),
            reasons,
        });
    }
    decisions
}

/// A counted rule while it runs.
struct Counter {
    bucket: Bucket,
    /// Counts left; [`UNLIMITED`] never runs out.
    remaining: i64,
    last: Option<[i64; 4]>,
}

/// A `within_*` bucket rule while it runs.
struct Window {
    bucket: Bucket,
    span: Span,
    /// Kept snapshots are strictly newer (nanoseconds since the epoch).
    cutoff: i128,
    last: Option<[i64; 4]>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bucket {
    /// Every snapshot is a bucket of its own.
    Last,
    Hour,
    Day,
    /// ISO 8601 week: Monday to Sunday, numbered within the ISO year.
    Week,
    Month,
    Year,
}

impl Bucket {
    fn adjective(self) -> &'static str {
        match self {
            Bucket::Last => "last",
            Bucket::Hour => "hourly",
            Bucket::Day => "daily",
            Bucket::Week => "weekly",
            Bucket::Month => "monthly",
            Bucket::Year => "yearly",
        }
    }

    /// The bucket of the snapshot at position `nr` (newest first), read on
    /// the wall clock of its recorded offset.
    fn value(self, time: Time, nr: usize) -> [i64; 4] {
        let wall = time.to_zoned().datetime();
        let date = wall.date();
        let (year, month, day) = (
            i64::from(date.year()),
            i64::from(date.month()),
            i64::from(date.day()),
        );
        match self {
            Bucket::Last => [nr as i64, 0, 0, 0],
            Bucket::Hour => [year, month, day, i64::from(wall.hour())],
            Bucket::Day => [year, month, day, 0],
            Bucket::Week => {
                let week = date.iso_week_date();
                [i64::from(week.year()), i64::from(week.week()), 0, 0]
            }
            Bucket::Month => [year, month, 0, 0],
            Bucket::Year => [year, 0, 0, 0],
        }
    }
}

/// Nanoseconds since the epoch.
fn nanos(time: Time) -> i128 {
    i128::from(time.at.seconds) * NANOS_PER_SECOND + i128::from(time.at.nanos)
}

/// 0001-01-01T00:00:00Z: the reference when every snapshot is in the future.
const EARLIEST_REFERENCE: Time = Time {
    at: crate::time::Timestamp {
        seconds: -62_135_596_800,
        nanos: 0,
    },
    offset_seconds: 0,
};

/// The newest snapshot strictly before `now`; the first of equal times in
/// `order` (newest first) wins, which decides the offset used.
fn newest_before(order: &[&Item], now: i128) -> Time {
    let mut newest = EARLIEST_REFERENCE;
    for item in order {
        let at = nanos(item.time);
        if at > nanos(newest) && at < now {
            newest = item.time;
        }
    }
    newest
}

/// The calendar on which `within` spans are counted back.
enum Calendar<'a> {
    Fixed(i128),
    Zone(&'a jiff::tz::TimeZone),
}

impl Calendar<'_> {
    /// The offset in seconds at an instant given in seconds.
    fn offset_at(&self, unix: i128) -> i128 {
        match self {
            Calendar::Fixed(offset) => *offset,
            Calendar::Zone(tz) => {
                let min = i128::from(jiff::Timestamp::MIN.as_second());
                let max = i128::from(jiff::Timestamp::MAX.as_second());
                let second = unix.clamp(min, max) as i64;
                let ts =
                    jiff::Timestamp::from_second(second).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
                i128::from(tz.to_offset(ts).seconds())
            }
        }
    }

    /// The instant of a wall clock (seconds, read as UTC). A wall clock that
    /// a transition skips or repeats resolves by guessing the offset at the
    /// wall clock read as UTC, then taking the offset in force at the
    /// instant that guess gives.
    fn resolve(&self, wall: i128) -> i128 {
        let guess = self.offset_at(wall);
        wall - self.offset_at(wall - guess)
    }
}

/// The instant (nanoseconds) that `span` counts back to from `reference`;
/// snapshots strictly newer are within the span.
fn cutoff(reference: Time, span: Span, local: &jiff::tz::TimeZone) -> i128 {
    let offset = i128::from(reference.offset_seconds);
    let at = i128::from(reference.at.seconds);
    // A zero offset is UTC; another offset is the local zone when that zone
    // had it at the time, otherwise a fixed offset.
    let calendar = if offset == 0 {
        Calendar::Fixed(0)
    } else if Calendar::Zone(local).offset_at(at) == offset {
        Calendar::Zone(local)
    } else {
        Calendar::Fixed(offset)
    };

    // Years and months move the month and keep the day number; past the
    // end of the month it rolls on (jiff's month arithmetic would clamp
    // instead), so count the months from the first of the month and add the
    // day back as days.
    let mut whole = reference;
    whole.at.nanos = 0;
    let wall = whole.to_zoned().datetime();
    let months = i64::from(span.years) * 12 + i64::from(span.months);
    let days = i64::from(wall.day()) - 1 - i64::from(span.days);
    let moved = jiff::Span::new()
        .try_months(months)
        .and_then(|months| wall.date().first_of_month().checked_sub(months))
        .and_then(|date| date.checked_add(jiff::Span::new().try_days(days)?));
    // Spans are never negative, so a date before the calendar's range
    // (year -9999) is before every snapshot.
    let Ok(moved) = moved else {
        return i128::MIN;
    };
    let epoch = jiff::civil::date(1970, 1, 1).at(0, 0, 0, 0);
    let wall = moved
        .to_datetime(wall.time())
        .duration_since(epoch)
        .as_secs();
    let unix = calendar.resolve(i128::from(wall)) - i128::from(span.hours) * 3600;
    unix * NANOS_PER_SECOND + i128::from(reference.at.nanos)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{Id, TreeId};
    use crate::time::Timestamp;
    use jiff::tz::TimeZone;

    fn id(n: usize) -> SnapshotId {
        let mut bytes = [0u8; 32];
        bytes[..8].copy_from_slice(&(n as u64).to_be_bytes());
        SnapshotId(Id(bytes))
    }

    fn index(id: SnapshotId) -> usize {
        u64::from_be_bytes(id.0.0[..8].try_into().unwrap()) as usize
    }

    /// An RFC 3339 time with its offset (`Z` for UTC).
    fn time(s: &str) -> Time {
        let ts: jiff::Timestamp = s.parse().unwrap();
        let offset_seconds = if s.ends_with('Z') {
            0
        } else {
            let tail = &s[s.len() - 6..];
            let sign = if tail.starts_with('-') { -1 } else { 1 };
            sign * (tail[1..3].parse::<i32>().unwrap() * 3600
                + tail[4..6].parse::<i32>().unwrap() * 60)
        };
        Time {
            at: Timestamp {
                seconds: ts.as_second(),
                nanos: ts.subsec_nanosecond() as u32,
            },
            offset_seconds,
        }
    }

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn now_in(s: &str, tz: &str) -> jiff::Zoned {
        s.parse::<jiff::Timestamp>().unwrap().to_zoned(zone(tz))
    }

    fn later() -> jiff::Zoned {
        now_in("2100-01-01T00:00:00Z", "UTC")
    }

    /// Items with ids 0, 1, ... in the order given.
    fn items(times: &[&str]) -> Vec<Item> {
        times
            .iter()
            .enumerate()
            .map(|(i, t)| Item {
                id: id(i),
                time: time(t),
                tags: Vec::new(),
            })
            .collect()
    }

    fn tagged(entries: &[(&str, &[&str])]) -> Vec<Item> {
        entries
            .iter()
            .enumerate()
            .map(|(i, (t, tags))| Item {
                id: id(i),
                time: time(t),
                tags: tags.iter().map(|t| t.to_string()).collect(),
            })
            .collect()
    }

    /// The kept items as (index, reasons), newest first.
    fn kept(items: &[Item], policy: &Policy, now: &jiff::Zoned) -> Vec<(usize, Vec<String>)> {
        let decisions = decide(items, policy, now);
        assert_eq!(decisions.len(), items.len());
        for d in &decisions {
            assert_eq!(d.keep, !d.reasons.is_empty(), "{d:?}");
        }
        decisions
            .into_iter()
            .filter(|d| d.keep)
            .map(|d| (index(d.id), d.reasons))
            .collect()
    }

    fn kept_ids(items: &[Item], policy: &Policy, now: &jiff::Zoned) -> Vec<usize> {
        kept(items, policy, now)
            .into_iter()
            .map(|(i, _)| i)
            .collect()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn span(s: &str) -> Span {
        s.parse().unwrap()
    }

    /// The instant a span counts back to, as RFC 3339 in UTC.
    fn cutoff_utc(reference: &str, s: &str, local: &str) -> String {
        let nanos = cutoff(time(reference), span(s), &zone(local));
        let ts = jiff::Timestamp::from_nanosecond(nanos).unwrap();
        ts.strftime("%Y-%m-%dT%H:%M:%S%.fZ").to_string()
    }

    // ---- parsing and display ----

    #[test]
    fn span_parses_and_displays() {
        let s = span("2y5m7d3h");
        assert_eq!(
            s,
            Span {
                years: 2,
                months: 5,
                days: 7,
                hours: 3
            }
        );
        assert_eq!(s.to_string(), "2y5m7d3h");
        assert_eq!(span("3h1y").to_string(), "1y3h");
        assert_eq!(span(" 7d ").to_string(), "7d");
        assert_eq!(span("1m").months, 1);
        assert!(span("0d").is_zero());
        assert_eq!(Span::default().to_string(), "0d");
        assert!(span(&Span::default().to_string()).is_zero());
        for bad in [
            "",
            "5",
            "5w",
            "d",
            "1d2d",
            "-1d",
            "1.5d",
            "99999999999d",
            "1dd",
        ] {
            let err = bad.parse::<Span>().unwrap_err();
            assert_eq!(err.kind(), crate::error::ErrorKind::InvalidInput);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn counts_and_tag_lists_parse() {
        assert_eq!(parse_count("7").unwrap(), 7);
        assert_eq!(parse_count("0").unwrap(), 0);
        assert_eq!(parse_count("unlimited").unwrap(), UNLIMITED);
        assert_eq!(parse_count("-1").unwrap(), UNLIMITED);
        for bad in ["-2", "x", "", "1.5"] {
            let err = parse_count(bad).unwrap_err();
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        assert_eq!(parse_tag_list("a, b").unwrap(), strings(&["a", "b"]));
        assert_eq!(
            parse_tag_list("month-end").unwrap(),
            strings(&["month-end"])
        );
        for bad in ["", "a,,b", "a,"] {
            assert!(parse_tag_list(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn group_by_parses_and_displays() {
        let none = GroupBy {
            host: false,
            paths: false,
            tags: false,
        };
        assert_eq!("".parse::<GroupBy>().unwrap(), none);
        assert_eq!(none.to_string(), "");
        assert_eq!("host,paths".parse::<GroupBy>().unwrap(), GroupBy::default());
        assert_eq!(GroupBy::default().to_string(), "host,paths");
        let all = "tags,hosts,path".parse::<GroupBy>().unwrap();
        assert_eq!(all.to_string(), "host,paths,tags");
        assert_eq!(
            "tag,host".parse::<GroupBy>().unwrap().to_string(),
            "host,tags"
        );
        let err = "host,bogus".parse::<GroupBy>().unwrap_err();
        assert!(err.to_string().contains("\"bogus\""), "{err}");
    }

    #[test]
    fn policy_displays_and_knows_when_it_is_empty() {
        assert!(Policy::default().is_empty());
        assert_eq!(Policy::default().to_string(), "no rules");
        let inert = Policy {
            last: Some(0),
            daily: Some(-2),
            within: Some(Span::default()),
            within_weekly: Some(Span::default()),
            ..Policy::default()
        };
        assert!(inert.is_empty());
        for policy in [
            Policy {
                last: Some(1),
                ..Policy::default()
            },
            Policy {
                yearly: Some(UNLIMITED),
                ..Policy::default()
            },
            Policy {
                within: Some(span("1h")),
                ..Policy::default()
            },
            Policy {
                within_monthly: Some(span("1y")),
                ..Policy::default()
            },
            Policy {
                tags: vec![vec![]],
                ..Policy::default()
            },
        ] {
            assert!(!policy.is_empty(), "{policy:?}");
        }
        let policy = Policy {
            daily: Some(7),
            weekly: Some(4),
            monthly: Some(UNLIMITED),
            within: Some(span("1y")),
            within_daily: Some(span("30d")),
            tags: vec![strings(&["a", "b"]), strings(&["month-end"])],
            ..Policy::default()
        };
        assert_eq!(
            policy.to_string(),
            "daily 7, weekly 4, monthly unlimited, within 1y, daily within 30d, tags [a, b], tags [month-end]"
        );
    }

    // ---- the rules ----

    #[test]
    fn empty_policy_keeps_nothing() {
        let list = items(&["2024-01-02T00:00:00Z", "2024-01-01T00:00:00Z"]);
        let decisions = decide(&list, &Policy::default(), &later());
        assert_eq!(decisions.len(), 2);
        assert!(decisions.iter().all(|d| !d.keep && d.reasons.is_empty()));
        assert!(decide(&[], &Policy::default(), &later()).is_empty());
        let last = Policy {
            last: Some(3),
            ..Policy::default()
        };
        assert!(decide(&[], &last, &later()).is_empty());
    }

    #[test]
    fn ties_are_ordered_by_id_whatever_the_input_order() {
        let mut list = items(&[
            "2024-01-01T09:00:00Z",
            "2024-01-01T10:00:00Z",
            "2024-01-01T10:00:00+01:00",
            "2024-01-01T10:00:00Z",
        ]);
        let last = Policy {
            last: Some(1),
            ..Policy::default()
        };
        assert_eq!(kept_ids(&list, &last, &later()), vec![1]);
        list.reverse();
        assert_eq!(kept_ids(&list, &last, &later()), vec![1]);
        let order: Vec<usize> = decide(&list, &last, &later())
            .iter()
            .map(|d| index(d.id))
            .collect();
        assert_eq!(order, vec![1, 3, 0, 2]);
        // Two snapshots in one hour: the first in order takes the bucket,
        // the other is the oldest and is kept while counts remain.
        let pair = items(&["2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"]);
        let hourly = Policy {
            hourly: Some(2),
            ..Policy::default()
        };
        assert_eq!(
            kept(&pair, &hourly, &later()),
            vec![
                (0, strings(&["hourly snapshot"])),
                (1, strings(&["oldest hourly snapshot"]))
            ]
        );
        let hourly = Policy {
            hourly: Some(1),
            ..Policy::default()
        };
        assert_eq!(kept_ids(&pair, &hourly, &later()), vec![0]);
    }

    #[test]
    fn a_snapshot_kept_by_several_rules_lists_every_reason() {
        let list = tagged(&[
            ("2024-06-15T12:00:00Z", &["x"]),
            ("2024-06-14T12:00:00Z", &[]),
        ]);
        let day = Some(span("1d"));
        let policy = Policy {
            last: Some(1),
            hourly: Some(1),
            daily: Some(1),
            weekly: Some(1),
            monthly: Some(1),
            yearly: Some(1),
            within: day,
            within_hourly: day,
            within_daily: day,
            within_weekly: day,
            within_monthly: day,
            within_yearly: day,
            tags: vec![strings(&["x"])],
        };
        assert_eq!(
            kept(&list, &policy, &later()),
            vec![(
                0,
                strings(&[
                    "has tags [x]",
                    "within 1d",
                    "last snapshot",
                    "hourly snapshot",
                    "daily snapshot",
                    "weekly snapshot",
                    "monthly snapshot",
                    "yearly snapshot",
                    "hourly within 1d",
                    "daily within 1d",
                    "weekly within 1d",
                    "monthly within 1d",
                    "yearly within 1d",
                ])
            )]
        );
    }

    #[test]
    fn iso_week_53_is_one_bucket_across_the_new_year() {
        let days = [
            "2021-01-05T12:00:00Z",
            "2021-01-04T12:00:00Z",
            "2021-01-03T12:00:00Z",
            "2021-01-02T12:00:00Z",
            "2021-01-01T12:00:00Z",
            "2020-12-31T12:00:00Z",
            "2020-12-30T12:00:00Z",
            "2020-12-29T12:00:00Z",
            "2020-12-28T12:00:00Z",
            "2020-12-27T12:00:00Z",
            "2020-12-26T12:00:00Z",
        ];
        let list = items(&days);
        let weekly = Policy {
            weekly: Some(3),
            ..Policy::default()
        };
        // 2021-W01, then 2020-W53 (Dec 28 to Jan 3), then 2020-W52.
        assert_eq!(kept_ids(&list, &weekly, &later()), vec![0, 2, 9]);
        let yearly = Policy {
            yearly: Some(2),
            ..Policy::default()
        };
        assert_eq!(kept_ids(&list, &yearly, &later()), vec![0, 5]);
        let within_weekly = Policy {
            within_weekly: Some(span("7d")),
            ..Policy::default()
        };
        // Newer than 2020-12-29T12:00: Jan 5 (W01) and Jan 3 (W53).
        assert_eq!(kept_ids(&list, &within_weekly, &later()), vec![0, 2]);
        for (date, year, week) in [
            ("2020-12-31", 2020, 53),
            ("2021-01-03", 2020, 53),
            ("2021-01-04", 2021, 1),
            ("2024-12-30", 2025, 1),
            ("2027-01-01", 2026, 53),
            ("2026-01-01", 2026, 1),
        ] {
            let at = time(&format!("{date}T12:00:00Z"));
            assert_eq!(Bucket::Week.value(at, 0), [year, week, 0, 0], "{date}");
        }
    }

    #[test]
    fn leap_days() {
        // 2023-02-29 does not exist: it rolls over to 2023-03-01.
        assert_eq!(
            cutoff_utc("2024-02-29T10:00:00Z", "1y", "UTC"),
            "2023-03-01T10:00:00Z"
        );
        assert_eq!(
            cutoff_utc("2028-02-29T10:00:00Z", "4y", "UTC"),
            "2024-02-29T10:00:00Z"
        );
        assert_eq!(
            cutoff_utc("2025-02-28T10:00:00Z", "1y", "UTC"),
            "2024-02-28T10:00:00Z"
        );
        let list = items(&[
            "2024-02-29T10:00:00Z",
            "2023-03-01T10:00:01Z",
            "2023-03-01T10:00:00Z",
            "2023-02-28T23:00:00Z",
        ]);
        let within = Policy {
            within: Some(span("1y")),
            ..Policy::default()
        };
        assert_eq!(kept_ids(&list, &within, &later()), vec![0, 1]);

        let list = items(&[
            "2024-03-01T00:00:00Z",
            "2024-02-29T23:00:00Z",
            "2024-02-29T01:00:00Z",
            "2024-02-28T12:00:00Z",
        ]);
        let monthly = Policy {
            monthly: Some(2),
            ..Policy::default()
        };
        assert_eq!(kept_ids(&list, &monthly, &later()), vec![0, 1]);
        let daily = Policy {
            daily: Some(3),
            ..Policy::default()
        };
        assert_eq!(kept_ids(&list, &daily, &later()), vec![0, 1, 3]);
    }

    #[test]
    fn months_are_subtracted_like_go_add_date() {
        // The day number stays and overflows into the next month.
        for (reference, s, expected) in [
            ("2024-03-31T12:00:00Z", "1m", "2024-03-02T12:00:00Z"),
            ("2023-03-31T12:00:00Z", "1m", "2023-03-03T12:00:00Z"),
            ("2024-05-31T12:00:00Z", "1m", "2024-05-01T12:00:00Z"),
            ("2024-12-31T12:00:00Z", "1y1m", "2023-12-01T12:00:00Z"),
            ("2024-01-15T12:00:00Z", "13m", "2022-12-15T12:00:00Z"),
            ("2024-03-31T12:00:00Z", "1m30d", "2024-02-01T12:00:00Z"),
            ("2024-03-01T00:30:00Z", "1h", "2024-02-29T23:30:00Z"),
            ("2024-03-01T00:30:00Z", "1d1h", "2024-02-28T23:30:00Z"),
            ("2024-03-31T12:00:00.5Z", "1d", "2024-03-30T12:00:00.5Z"),
        ] {
            assert_eq!(
                cutoff_utc(reference, s, "UTC"),
                expected,
                "{reference} - {s}"
            );
        }
        let list = items(&[
            "2024-03-31T12:00:00Z",
            "2024-03-02T12:00:01Z",
            "2024-03-02T12:00:00Z",
            "2024-03-01T12:00:00Z",
        ]);
        let within = Policy {
            within: Some(span("1m")),
            ..Policy::default()
        };
        assert_eq!(kept_ids(&list, &within, &later()), vec![0, 1]);
    }

    #[test]
    fn within_is_strictly_after_the_cutoff() {
        let list = items(&[
            "2024-05-10T12:00:00.25Z",
            "2024-05-09T12:00:00.250000001Z",
            "2024-05-09T12:00:00.25Z",
            "2024-05-09T12:00:01Z",
            "2024-05-09T11:59:59Z",
        ]);
        let within = Policy {
            within: Some(span("1d")),
            ..Policy::default()
        };
        assert_eq!(kept_ids(&list, &within, &later()), vec![0, 3, 1]);
        let daily = Policy {
            within_daily: Some(span("1d")),
            ..Policy::default()
        };
        // 2024-05-09 is one bucket; the oldest in the window (the one a
        // nanosecond past the cutoff) is the oldest of the list only if it
        // is last, which it is not here.
        assert_eq!(kept_ids(&list, &daily, &later()), vec![0, 3]);
    }

    #[test]
    fn hourly_and_daily_buckets_across_berlin_summer_time_changes() {
        let berlin = zone("Europe/Berlin");
        let every_half_hour = |from: &str, n: i64| -> Vec<Item> {
            let start: jiff::Timestamp = from.parse().unwrap();
            (0..n)
                .map(|i| Item {
                    id: id(i as usize),
                    time: Time::from_zoned(
                        &(start + jiff::SignedDuration::from_mins(30 * (n - 1 - i)))
                            .to_zoned(berlin.clone()),
                    ),
                    tags: Vec::new(),
                })
                .collect()
        };
        // Spring forward, 2024-03-31: 01:00+01:00, 01:30+01:00, 03:00+02:00,
        // 03:30+02:00, 04:00+02:00 (newest first: ids 0 to 4 from 04:00).
        let spring = every_half_hour("2024-03-31T00:00:00Z", 5);
        assert_eq!(spring[0].time.to_rfc3339(), "2024-03-31T04:00:00+02:00");
        assert_eq!(spring[4].time.to_rfc3339(), "2024-03-31T01:00:00+01:00");
        let hourly = Policy {
            hourly: Some(3),
            ..Policy::default()
        };
        assert_eq!(kept_ids(&spring, &hourly, &later()), vec![0, 1, 3]);
        // Fall back, 2024-10-27: 02:00+02:00, 02:30+02:00, 02:00+01:00,
        // 02:30+01:00, 03:00+01:00 — the four 02:xx share one hour bucket.
        let fall = every_half_hour("2024-10-27T00:00:00Z", 5);
        assert_eq!(fall[1].time.to_rfc3339(), "2024-10-27T02:30:00+01:00");
        assert_eq!(fall[3].time.to_rfc3339(), "2024-10-27T02:30:00+02:00");
        let hourly = Policy {
            hourly: Some(24),
            ..Policy::default()
        };
        let result = kept(&fall, &hourly, &later());
        assert_eq!(
            result,
            vec![
                (0, strings(&["hourly snapshot"])),
                (1, strings(&["hourly snapshot"])),
                (4, strings(&["oldest hourly snapshot"])),
            ]
        );
        let within_hourly = Policy {
            within_hourly: Some(span("1h")),
            ..Policy::default()
        };
        assert_eq!(kept_ids(&fall, &within_hourly, &later()), vec![0, 1]);

        // Days end at midnight on the recorded wall clock, wherever forget
        // runs.
        let nights = items(&[
            "2024-10-28T00:30:00+01:00",
            "2024-10-27T23:30:00+01:00",
            "2024-10-27T00:30:00+02:00",
            "2024-10-26T23:30:00+02:00",
        ]);
        let daily = Policy {
            daily: Some(3),
            ..Policy::default()
        };
        for tz in ["Europe/Berlin", "UTC", "America/New_York"] {
            let now = now_in("2030-01-01T00:00:00Z", tz);
            assert_eq!(kept_ids(&nights, &daily, &now), vec![0, 1, 3], "{tz}");
        }
    }

    #[test]
    fn within_counts_back_on_the_local_calendar_across_dst() {
        // Berlin: 2024-03-31T12:00+02:00 minus one day is 12:00+01:00 the
        // day before, 23 hours earlier.
        assert_eq!(
            cutoff_utc("2024-03-31T12:00:00+02:00", "1d", "Europe/Berlin"),
            "2024-03-30T11:00:00Z"
        );
        // On a machine elsewhere, the newest snapshot's fixed offset: 24 h.
        assert_eq!(
            cutoff_utc("2024-03-31T12:00:00+02:00", "1d", "UTC"),
            "2024-03-30T10:00:00Z"
        );
        assert_eq!(
            cutoff_utc("2024-03-31T12:00:00+02:00", "1d", "America/New_York"),
            "2024-03-30T10:00:00Z"
        );
        let list = items(&["2024-03-31T12:00:00+02:00", "2024-03-30T11:30:00+01:00"]);
        let within = Policy {
            within: Some(span("1d")),
            ..Policy::default()
        };
        assert_eq!(
            kept_ids(
                &list,
                &within,
                &now_in("2030-01-01T00:00:00Z", "Europe/Berlin")
            ),
            vec![0]
        );
        assert_eq!(
            kept_ids(&list, &within, &now_in("2030-01-01T00:00:00Z", "UTC")),
            vec![0, 1]
        );
        // Hours are elapsed time, after the days.
        assert_eq!(
            cutoff_utc("2024-03-31T12:00:00+02:00", "24h", "Europe/Berlin"),
            "2024-03-30T10:00:00Z"
        );
        // A day count landing in the skipped hour: 2024-03-31T02:30 does not
        // exist in Berlin and resolves to 03:30+02:00.
        assert_eq!(
            cutoff_utc("2024-04-01T02:30:00+02:00", "1d", "Europe/Berlin"),
            "2024-03-31T01:30:00Z"
        );
        // ... but in New York the skipped 2024-03-10T02:30 resolves to
        // 01:30-05:00.
        assert_eq!(
            cutoff_utc("2024-03-11T02:30:00-04:00", "1d", "America/New_York"),
            "2024-03-10T06:30:00Z"
        );
        // A repeated hour: 2024-10-27T02:30 in Berlin resolves to the
        // second one, 02:30+01:00.
        assert_eq!(
            cutoff_utc("2024-10-28T02:30:00+01:00", "1d", "Europe/Berlin"),
            "2024-10-27T01:30:00Z"
        );
        // A zero offset is always UTC, even where the local zone has it:
        // three months back from January in London is 12:00 UTC, not
        // 12:00 summer time.
        assert_eq!(
            cutoff_utc("2024-01-15T12:00:00Z", "3m", "Europe/London"),
            "2023-10-15T12:00:00Z"
        );
        // Other offsets follow the local zone: 12:00+01:00 in April is
        // 12:00+00:00 a month earlier in London.
        assert_eq!(
            cutoff_utc("2024-04-15T12:00:00+01:00", "1m", "Europe/London"),
            "2024-03-15T12:00:00Z"
        );
        assert_eq!(
            cutoff_utc("2024-04-15T12:00:00+01:00", "1m", "UTC"),
            "2024-03-15T11:00:00Z"
        );
    }

    #[test]
    fn snapshots_in_the_future_are_not_the_reference() {
        let list = items(&[
            "2031-01-01T00:00:00Z",
            "2024-03-31T12:00:00Z",
            "2024-03-31T00:00:00Z",
            "2024-03-30T06:00:00Z",
            "2024-03-29T00:00:00Z",
        ]);
        let within = Policy {
            within: Some(span("1d")),
            ..Policy::default()
        };
        // Counted back from 2024-03-31T12:00; the future one is within.
        let now = now_in("2024-04-01T00:00:00Z", "UTC");
        assert_eq!(kept_ids(&list, &within, &now), vec![0, 1, 2]);
        // A snapshot at exactly `now` is not before it: from 00:00.
        let now = now_in("2024-03-31T12:00:00Z", "UTC");
        assert_eq!(kept_ids(&list, &within, &now), vec![0, 1, 2, 3]);
        // When every snapshot is in the future, all are within.
        let now = now_in("2020-01-01T00:00:00Z", "UTC");
        assert_eq!(kept_ids(&list, &within, &now), vec![0, 1, 2, 3, 4]);
        let within_daily = Policy {
            within_daily: Some(span("1d")),
            ..Policy::default()
        };
        assert_eq!(kept_ids(&list, &within_daily, &now), vec![0, 1, 3, 4]);
    }

    #[test]
    fn tags_match_all_of_a_list_and_any_list() {
        let list = tagged(&[
            ("2024-01-06T00:00:00Z", &[]),
            ("2024-01-05T00:00:00Z", &["a"]),
            ("2024-01-04T00:00:00Z", &["b", "a"]),
            ("2024-01-03T00:00:00Z", &["b"]),
            ("2024-01-02T00:00:00Z", &["c", "z"]),
            ("2024-01-01T00:00:00Z", &["A"]),
        ]);
        let policy = Policy {
            tags: vec![strings(&["a", "b"]), strings(&["c"])],
            ..Policy::default()
        };
        assert_eq!(
            kept(&list, &policy, &later()),
            vec![
                (2, strings(&["has tags [a, b]"])),
                (4, strings(&["has tags [c]"])),
            ]
        );
        let both = Policy {
            tags: vec![strings(&["a"]), strings(&["b"])],
            ..Policy::default()
        };
        assert_eq!(
            kept(&list, &both, &later())[1],
            (2, strings(&["has tags [a]", "has tags [b]"]))
        );
        // An empty list is had by every snapshot.
        let empty = Policy {
            tags: vec![vec![]],
            ..Policy::default()
        };
        assert_eq!(kept_ids(&list, &empty, &later()), vec![0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn tags_keep_without_a_count_but_counted_rules_still_see_tagged_snapshots() {
        let list = tagged(&[
            ("2024-01-04T00:00:00Z", &["x"]),
            ("2024-01-03T00:00:00Z", &[]),
            ("2024-01-02T00:00:00Z", &["x"]),
            ("2024-01-01T00:00:00Z", &[]),
        ]);
        let tags = vec![strings(&["x"])];
        let policy = Policy {
            last: Some(1),
            tags: tags.clone(),
            ..Policy::default()
        };
        // The tag keeps 0 and 2; the single count goes to 0, the newest.
        assert_eq!(
            kept(&list, &policy, &later()),
            vec![
                (0, strings(&["has tags [x]", "last snapshot"])),
                (2, strings(&["has tags [x]"])),
            ]
        );
        // Removing the tag rule keeps the same counted snapshots: tags
        // never change which snapshots the counts go to.
        let counts_only = Policy {
            tags: Vec::new(),
            ..policy.clone()
        };
        assert_eq!(kept_ids(&list, &counts_only, &later()), vec![0]);
        let policy = Policy {
            last: Some(2),
            tags,
            ..Policy::default()
        };
        assert_eq!(kept_ids(&list, &policy, &later()), vec![0, 1, 2]);
    }

    #[test]
    fn unlimited_counts_keep_every_bucket() {
        let list = items(&[
            "2024-01-03T12:00:00Z",
            "2024-01-03T08:00:00Z",
            "2024-01-02T12:00:00Z",
            "2024-01-02T08:00:00Z",
            "2024-01-01T12:00:00Z",
            "2023-12-31T12:00:00Z",
        ]);
        let daily = Policy {
            daily: Some(UNLIMITED),
            ..Policy::default()
        };
        assert_eq!(kept_ids(&list, &daily, &later()), vec![0, 2, 4, 5]);
        let last = Policy {
            last: Some(UNLIMITED),
            ..Policy::default()
        };
        assert_eq!(kept_ids(&list, &last, &later()), vec![0, 1, 2, 3, 4, 5]);
        let yearly = Policy {
            yearly: Some(UNLIMITED),
            ..Policy::default()
        };
        assert_eq!(
            kept(&list, &yearly, &later()),
            vec![
                (0, strings(&["yearly snapshot"])),
                (5, strings(&["yearly snapshot"]))
            ]
        );
        // Unlimited still takes one snapshot per bucket, and the oldest.
        let list = items(&[
            "2024-01-03T12:00:00Z",
            "2024-01-03T08:00:00Z",
            "2024-01-03T04:00:00Z",
        ]);
        assert_eq!(
            kept(&list, &daily, &later()),
            vec![
                (0, strings(&["daily snapshot"])),
                (2, strings(&["oldest daily snapshot"]))
            ]
        );
    }

    #[test]
    fn the_oldest_snapshot_is_kept_while_counts_remain() {
        let list = items(&[
            "2024-01-03T12:00:00Z",
            "2024-01-02T12:00:00Z",
            "2024-01-02T08:00:00Z",
        ]);
        let monthly = Policy {
            monthly: Some(2),
            ..Policy::default()
        };
        assert_eq!(
            kept(&list, &monthly, &later()),
            vec![
                (0, strings(&["monthly snapshot"])),
                (2, strings(&["oldest monthly snapshot"]))
            ]
        );
        // When the count runs out first, the oldest goes.
        let monthly = Policy {
            monthly: Some(1),
            ..Policy::default()
        };
        assert_eq!(kept_ids(&list, &monthly, &later()), vec![0]);
        // The oldest in a new bucket gets the plain reason.
        let daily = Policy {
            daily: Some(2),
            ..Policy::default()
        };
        assert_eq!(
            kept(&list, &daily, &later()),
            vec![
                (0, strings(&["daily snapshot"])),
                (1, strings(&["daily snapshot"]))
            ]
        );
        let daily = Policy {
            daily: Some(5),
            ..Policy::default()
        };
        assert_eq!(
            kept(&list, &daily, &later())[2],
            (2, strings(&["oldest daily snapshot"]))
        );
        // Window rules keep the oldest when it lies in the window.
        let within_monthly = Policy {
            within_monthly: Some(span("1m")),
            ..Policy::default()
        };
        assert_eq!(
            kept(&list, &within_monthly, &later()),
            vec![
                (0, strings(&["monthly within 1m"])),
                (2, strings(&["oldest monthly within 1m"]))
            ]
        );
        let within_monthly = Policy {
            within_monthly: Some(span("1d")),
            ..Policy::default()
        };
        assert_eq!(kept_ids(&list, &within_monthly, &later()), vec![0]);
    }

    // ---- grouping ----

    fn snap(host: &str, paths: &[&[u8]], tags: &[&str], at: &str) -> Snapshot {
        Snapshot {
            time: time(at),
            tree: TreeId(Id([0; 32])),
            paths: paths
                .iter()
                .map(|p| serde_bytes::ByteBuf::from(p.to_vec()))
                .collect(),
            hostname: host.into(),
            username: "root".into(),
            tags: strings(tags),
            description: String::new(),
            parent: None,
            program_version: "arca test".into(),
            summary: None,
            original: None,
            copied_from: None,
        }
    }

    fn fleet() -> Vec<(SnapshotId, Snapshot)> {
        vec![
            (
                id(0),
                snap("db1", &[b"/srv/b", b"/srv/a"], &[], "2024-05-01T00:00:00Z"),
            ),
            (
                id(1),
                snap(
                    "db1",
                    &[b"/srv/a", b"/srv/b"],
                    &["x"],
                    "2024-05-02T00:00:00Z",
                ),
            ),
            (
                id(2),
                snap("db1", &[b"/srv/a"], &[], "2024-05-03T00:00:00Z"),
            ),
            (
                id(3),
                snap("web", &[b"/srv/a"], &["x"], "2024-05-04T00:00:00Z"),
            ),
            (
                id(4),
                snap("db1", &[b"/srv/\xff"], &[], "2024-05-05T00:00:00Z"),
            ),
            (
                id(5),
                snap("db1", &[b"/srv/\xfe"], &[], "2024-05-06T00:00:00Z"),
            ),
        ]
    }

    fn grouped(by: &str) -> Vec<(String, Vec<usize>)> {
        group(&fleet(), by.parse().unwrap())
            .into_iter()
            .map(|(key, members)| {
                (
                    key.to_string(),
                    members.iter().map(|(id, _)| index(*id)).collect(),
                )
            })
            .collect()
    }

    fn owned(groups: &[(&str, &[usize])]) -> Vec<(String, Vec<usize>)> {
        groups
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn groups_by_any_subset_of_host_paths_and_tags() {
        let odd = "\u{fffd}";
        assert_eq!(
            grouped("host,paths"),
            owned(&[
                ("host db1, paths [/srv/a]", &[2]),
                ("host db1, paths [/srv/a, /srv/b]", &[1, 0]),
                (&format!("host db1, paths [/srv/{odd}]"), &[5]),
                (&format!("host db1, paths [/srv/{odd}]"), &[4]),
                ("host web, paths [/srv/a]", &[3]),
            ])
        );
        assert_eq!(
            grouped("host"),
            owned(&[("host db1", &[5, 4, 2, 1, 0]), ("host web", &[3])])
        );
        assert_eq!(
            grouped("paths"),
            owned(&[
                ("paths [/srv/a]", &[3, 2]),
                ("paths [/srv/a, /srv/b]", &[1, 0]),
                (&format!("paths [/srv/{odd}]"), &[5]),
                (&format!("paths [/srv/{odd}]"), &[4]),
            ])
        );
        assert_eq!(
            grouped("tags"),
            owned(&[("tags []", &[5, 4, 2, 0]), ("tags [x]", &[3, 1])])
        );
        assert_eq!(
            grouped("host,tags"),
            owned(&[
                ("host db1, tags []", &[5, 4, 2, 0]),
                ("host db1, tags [x]", &[1]),
                ("host web, tags [x]", &[3]),
            ])
        );
        assert_eq!(
            grouped(""),
            owned(&[("all snapshots", &[5, 4, 3, 2, 1, 0])])
        );
        let keys = group(&fleet(), "host,paths,tags".parse().unwrap());
        assert_eq!(
            keys[2].0,
            GroupKey {
                hostname: Some("db1".into()),
                paths: Some(strings(&["/srv/a", "/srv/b"])),
                tags: Some(strings(&["x"])),
            }
        );
        let none = group(&fleet(), "".parse().unwrap());
        assert_eq!(
            none[0].0,
            GroupKey {
                hostname: None,
                paths: None,
                tags: None
            }
        );
        assert!(group(&[], GroupBy::default()).is_empty());
    }

    #[test]
    fn apply_runs_the_policy_on_each_group() {
        let last = Policy {
            last: Some(1),
            ..Policy::default()
        };
        let groups = apply(&fleet(), &last, GroupBy::default(), &later());
        let kept: Vec<Vec<usize>> = groups
            .iter()
            .map(|g| g.kept().map(|d| index(d.id)).collect())
            .collect();
        assert_eq!(kept, vec![vec![2], vec![1], vec![5], vec![4], vec![3]]);
        let forgotten: Vec<usize> = groups
            .iter()
            .flat_map(|g| g.forgotten().map(|d| index(d.id)))
            .collect();
        assert_eq!(forgotten, vec![0]);
        assert_eq!(groups[1].decisions[1].time, time("2024-05-01T00:00:00Z"));

        let tagged = Policy {
            last: Some(1),
            tags: vec![strings(&["x"])],
            ..Policy::default()
        };
        let groups = apply(&fleet(), &tagged, "host".parse().unwrap(), &later());
        assert_eq!(groups.len(), 2);
        let db1: Vec<(usize, bool)> = groups[0]
            .decisions
            .iter()
            .map(|d| (index(d.id), d.keep))
            .collect();
        assert_eq!(
            db1,
            vec![(5, true), (4, false), (2, false), (1, true), (0, false)]
        );
        assert_eq!(groups[0].decisions[3].reasons, strings(&["has tags [x]"]));
    }

    // ---- properties over random histories ----

    /// A small deterministic xorshift generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    const TAGS: [&str; 3] = ["a", "b", "c"];

    fn random_time(rng: &mut Rng) -> Time {
        // Spread over three years from 2023, at any second.
        let seconds = 1_672_531_200 + rng.below(3 * 366 * 86_400) as i64;
        let offsets = [0, 3600, 7200, -18_000, 19_800, -36_000];
        Time {
            at: Timestamp {
                seconds,
                nanos: if rng.chance(20) {
                    rng.below(1_000_000_000) as u32
                } else {
                    0
                },
            },
            offset_seconds: offsets[rng.below(offsets.len() as u64) as usize],
        }
    }

    fn random_items(rng: &mut Rng) -> Vec<Item> {
        let n = rng.below(40) as usize;
        let mut list: Vec<Item> = Vec::with_capacity(n);
        for i in 0..n {
            let time = if i > 0 && rng.chance(10) {
                list[rng.below(i as u64) as usize].time
            } else if i > 0 && rng.chance(30) {
                // Close to an earlier one: same hour or day, often.
                let mut t = list[rng.below(i as u64) as usize].time;
                t.at.seconds += rng.below(2 * 86_400) as i64 - 86_400;
                t
            } else {
                random_time(rng)
            };
            let tags = TAGS
                .iter()
                .filter(|_| rng.chance(25))
                .map(|t| t.to_string())
                .collect();
            list.push(Item {
                id: id(i),
                time,
                tags,
            });
        }
        list
    }

    fn random_count(rng: &mut Rng) -> i64 {
        match rng.below(6) {
            0 => UNLIMITED,
            _ => rng.below(8) as i64,
        }
    }

    fn random_span(rng: &mut Rng) -> Span {
        let mut s = Span::default();
        match rng.below(4) {
            0 => s.hours = rng.below(72) as i32,
            1 => s.days = rng.below(60) as i32,
            2 => s.months = rng.below(14) as i32,
            _ => {
                s.years = rng.below(2) as i32;
                s.months = rng.below(12) as i32;
                s.days = rng.below(31) as i32;
                s.hours = rng.below(24) as i32;
            }
        }
        s
    }

    fn random_tag_list(rng: &mut Rng) -> Vec<String> {
        TAGS.iter()
            .filter(|_| rng.chance(50))
            .map(|t| t.to_string())
            .collect()
    }

    /// Sets rule `slot` (0 to 12) to a random value; false if it was set.
    fn add_rule(policy: &mut Policy, slot: usize, rng: &mut Rng) -> bool {
        let counts = [
            &mut policy.last,
            &mut policy.hourly,
            &mut policy.daily,
            &mut policy.weekly,
            &mut policy.monthly,
            &mut policy.yearly,
        ];
        if slot < 6 {
            let count = counts.into_iter().nth(slot).unwrap();
            if count.is_some() {
                return false;
            }
            *count = Some(random_count(rng));
            return true;
        }
        if slot == 12 {
            policy.tags.push(random_tag_list(rng));
            return true;
        }
        let spans = [
            &mut policy.within,
            &mut policy.within_hourly,
            &mut policy.within_daily,
            &mut policy.within_weekly,
            &mut policy.within_monthly,
            &mut policy.within_yearly,
        ];
        let span = spans.into_iter().nth(slot - 6).unwrap();
        if span.is_some() {
            return false;
        }
        *span = Some(random_span(rng));
        true
    }

    fn random_policy(rng: &mut Rng) -> Policy {
        let mut policy = Policy::default();
        for slot in 0..13 {
            if rng.chance(25) {
                add_rule(&mut policy, slot, rng);
            }
        }
        policy
    }

    fn random_now(rng: &mut Rng) -> jiff::Zoned {
        let zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"];
        // Mostly after every snapshot, sometimes among them.
        let second = if rng.chance(80) {
            1_800_000_000
        } else {
            1_672_531_200 + rng.below(3 * 366 * 86_400) as i64
        };
        jiff::Timestamp::from_second(second)
            .unwrap()
            .to_zoned(zone(zones[rng.below(zones.len() as u64) as usize]))
    }

    fn kept_set(items: &[Item], policy: &Policy, now: &jiff::Zoned) -> Vec<bool> {
        let mut keep = vec![false; items.len()];
        for d in decide(items, policy, now) {
            keep[index(d.id)] = d.keep;
        }
        keep
    }

    #[test]
    fn property_adding_a_rule_never_forgets_a_kept_snapshot() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut grew = 0;
        for _ in 0..600 {
            let list = random_items(&mut rng);
            let policy = random_policy(&mut rng);
            let now = random_now(&mut rng);
            let before = kept_set(&list, &policy, &now);
            for slot in 0..13 {
                let mut wider = policy.clone();
                if !add_rule(&mut wider, slot, &mut rng) {
                    continue;
                }
                let after = kept_set(&list, &wider, &now);
                for (i, (b, a)) in before.iter().zip(&after).enumerate() {
                    assert!(
                        !b || *a,
                        "snapshot {i} lost by adding rule {slot}: {policy:?} -> {wider:?}"
                    );
                }
                if after != before {
                    grew += 1;
                }
            }
        }
        // The property is not vacuous: added rules often keep more.
        assert!(grew > 500, "{grew}");
    }

    #[test]
    fn property_keep_last_n_keeps_exactly_the_newest_n_of_each_group() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let hosts = ["db1", "db2", "web"];
        for _ in 0..300 {
            let list = random_items(&mut rng);
            let snapshots: Vec<(SnapshotId, Snapshot)> = list
                .iter()
                .map(|item| {
                    let mut s = snap(
                        hosts[rng.below(3) as usize],
                        &[b"/srv"],
                        &[],
                        "2024-01-01T00:00:00Z",
                    );
                    s.time = item.time;
                    s.tags = item.tags.clone();
                    (item.id, s)
                })
                .collect();
            let n = rng.below(10) as usize;
            let policy = Policy {
                last: Some(n as i64),
                ..Policy::default()
            };
            let now = random_now(&mut rng);
            let groups = apply(&snapshots, &policy, GroupBy::default(), &now);
            let mut seen = 0;
            for g in &groups {
                seen += g.decisions.len();
                let times: Vec<Time> = g.decisions.iter().map(|d| d.time).collect();
                assert!(times.windows(2).all(|w| w[0].at >= w[1].at));
                let expected = n.min(g.decisions.len());
                for (i, d) in g.decisions.iter().enumerate() {
                    assert_eq!(d.keep, i < expected, "{} of {}: {d:?}", i, g.key);
                    if d.keep {
                        assert_eq!(d.reasons, strings(&["last snapshot"]));
                    }
                }
            }
            assert_eq!(seen, snapshots.len());
        }
    }

    #[test]
    fn property_decisions_do_not_depend_on_input_order() {
        let mut rng = Rng(0x0dd_c0ffee);
        for _ in 0..300 {
            let mut list = random_items(&mut rng);
            let policy = random_policy(&mut rng);
            let now = random_now(&mut rng);
            let first = decide(&list, &policy, &now);
            // Fisher-Yates.
            for i in (1..list.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                list.swap(i, j);
            }
            assert_eq!(decide(&list, &policy, &now), first);
        }
    }

    #[test]
    fn property_unlimited_keeps_at_least_what_a_count_keeps() {
        let mut rng = Rng(0xfeed_beef_1234);
        for _ in 0..300 {
            let list = random_items(&mut rng);
            let now = random_now(&mut rng);
            let n = 1 + rng.below(6) as i64;
            let slot = rng.below(6) as usize;
            let with = |count: i64| {
                let mut p = Policy::default();
                *[
                    &mut p.last,
                    &mut p.hourly,
                    &mut p.daily,
                    &mut p.weekly,
                    &mut p.monthly,
                    &mut p.yearly,
                ]
                .into_iter()
                .nth(slot)
                .unwrap() = Some(count);
                p
            };
            let counted = kept_set(&list, &with(n), &now);
            let all = kept_set(&list, &with(UNLIMITED), &now);
            assert!(counted.iter().zip(&all).all(|(c, a)| !c || *a));
            // A count keeps at most n bucket snapshots plus the oldest.
            let k = counted.iter().filter(|k| **k).count() as i64;
            assert!(k <= n + 1, "{k} > {n} + 1");
        }
    }

    // ---- the worked examples of docs/retention.md ----

    const DOC: &str = include_str!("../../../docs/retention.md");

    fn render_rows(decisions: &[Decision], indent: &str) -> String {
        let mut out = String::new();
        for d in decisions {
            let line = format!(
                "{indent}{}  {:<6}  {}",
                d.time.to_zoned().strftime("%Y-%m-%d %a %H:%M %:z"),
                if d.keep { "keep" } else { "forget" },
                d.reasons.join(", ")
            );
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    fn render_groups(groups: &[Group]) -> String {
        let mut out = String::new();
        for g in groups {
            out.push_str(&format!("{}\n", g.key));
            out.push_str(&render_rows(&g.decisions, "  "));
        }
        out
    }

    fn assert_documented(rendered: &str) {
        assert!(
            DOC.contains(rendered),
            "docs/retention.md does not show this result:\n{rendered}"
        );
    }

    #[test]
    fn doc_example_1_nightly_rotation() {
        let mut list = Vec::new();
        let mut day = jiff::civil::date(2024, 3, 15);
        while day >= jiff::civil::date(2024, 2, 24) {
            let stamp = format!("{day}T23:00:00Z");
            let tags = if day.day() == 29 {
                strings(&["month-end"])
            } else {
                Vec::new()
            };
            list.push(Item {
                id: id(list.len()),
                time: time(&stamp),
                tags,
            });
            day = day.yesterday().unwrap();
        }
        assert_eq!(list.len(), 21);
        let policy = Policy {
            daily: Some(7),
            weekly: Some(4),
            monthly: Some(12),
            tags: vec![strings(&["month-end"])],
            ..Policy::default()
        };
        let decisions = decide(&list, &policy, &later());
        assert_eq!(decisions.iter().filter(|d| d.keep).count(), 11);
        assert_documented(&render_rows(&decisions, ""));
    }

    #[test]
    fn doc_example_2_keep_within_a_month() {
        let list = items(&[
            "2024-06-01T00:00:00Z",
            "2024-03-31T12:00:00Z",
            "2024-03-15T12:00:00Z",
            "2024-03-02T18:00:00Z",
            "2024-03-02T12:00:00Z",
            "2024-03-01T12:00:00Z",
            "2024-02-29T12:00:00Z",
        ]);
        let policy = Policy {
            within: Some(span("1m")),
            ..Policy::default()
        };
        let now = now_in("2024-04-01T00:00:00Z", "UTC");
        let decisions = decide(&list, &policy, &now);
        assert_eq!(kept_ids(&list, &policy, &now), vec![0, 1, 2, 3]);
        assert_documented(&render_rows(&decisions, ""));
    }

    fn example_3_snapshots() -> Vec<(SnapshotId, Snapshot)> {
        vec![
            (
                id(0),
                snap("db1", &[b"/srv/db"], &[], "2024-05-03T02:00:00Z"),
            ),
            (
                id(1),
                snap("db1", &[b"/srv/db"], &["manual"], "2024-05-02T02:00:00Z"),
            ),
            (
                id(2),
                snap(
                    "db1",
                    &[b"/srv/db"],
                    &["important", "manual"],
                    "2024-05-01T02:00:00Z",
                ),
            ),
            (
                id(3),
                snap("web1", &[b"/var/www"], &[], "2024-05-03T03:00:00Z"),
            ),
            (
                id(4),
                snap(
                    "web1",
                    &[b"/var/www"],
                    &["important"],
                    "2024-05-02T03:00:00Z",
                ),
            ),
        ]
    }

    #[test]
    fn doc_example_3_groups_and_tags() {
        let policy = Policy {
            last: Some(1),
            tags: vec![strings(&["manual", "important"])],
            ..Policy::default()
        };
        let snapshots = example_3_snapshots();
        let groups = apply(&snapshots, &policy, GroupBy::default(), &later());
        assert_eq!(groups.len(), 2);
        assert_documented(&render_groups(&groups));
        let groups = apply(&snapshots, &policy, "".parse().unwrap(), &later());
        assert_eq!(groups.len(), 1);
        assert_documented(&render_groups(&groups));
    }

    #[test]
    fn doc_example_4_hourly_across_the_autumn_change() {
        let berlin = zone("Europe/Berlin");
        let start: jiff::Timestamp = "2024-10-26T23:30:00Z".parse().unwrap();
        let list: Vec<Item> = (0..6)
            .rev()
            .map(|i| Item {
                id: id(5 - i as usize),
                time: Time::from_zoned(
                    &(start + jiff::SignedDuration::from_mins(30 * i)).to_zoned(berlin.clone()),
                ),
                tags: Vec::new(),
            })
            .collect();
        let policy = Policy {
            hourly: Some(3),
            ..Policy::default()
        };
        let decisions = decide(
            &list,
            &policy,
            &now_in("2030-01-01T00:00:00Z", "Europe/Berlin"),
        );
        assert_eq!(kept_ids(&list, &policy, &later()), vec![0, 1, 5]);
        assert_documented(&render_rows(&decisions, ""));
    }
}
