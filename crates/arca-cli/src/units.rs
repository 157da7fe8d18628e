//! The values options take, each a type that parses itself: clap's
//! `value_parser` and the profile's serde both go through `FromStr`, so a
//! bad value is refused the same way from a flag, the environment or a
//! profile, before anything runs. This module imports nothing else of the
//! CLI.
//!
//! Grammars (docs/usage.md, "Option values"):
//! - DURATION: `0`, or whole numbers each followed by a unit, `s`
//!   seconds, `min` minutes, `h` hours, `d` days, `w` weeks, each unit at
//!   most once, largest first: `30s`, `10min`, `1h30min`, `2d`, `1w`. A
//!   bare `m` is refused: in `--keep-within` (restic's grammar) it means
//!   months.
//! - SIZE: a whole number with an optional binary unit, `B`, `K`/`KiB`,
//!   `M`/`MiB`, `G`/`GiB`, `T`/`TiB` (`KB`, `MB`, ... mean the same).
//! - retention spans (`--keep-within*`) are calendar spans with `y`, `m`
//!   months, `d` and `h`: [`arca_core::retention::Span`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// Implements `Deserialize` through `FromStr` for a type read from a
/// profile as a string.
macro_rules! deserialize_from_str {
    ($t:ty) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A value that does not parse: the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(String);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Invalid {}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid(message.into())
}

/// An elapsed time (see the module's DURATION grammar).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration(pub std::time::Duration);

const UNITS: [(&str, u64); 5] = [
    ("w", 7 * 86_400),
    ("d", 86_400),
    ("h", 3600),
    ("min", 60),
    ("s", 1),
];

impl FromStr for Duration {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<Duration, Invalid> {
        let bad = || {
            invalid(format!(
                "{text:?} is not a duration (use s, min, h, d and w: 30s, 10min, 1h30min, 2d)"
            ))
        };
        let t = text.trim();
        if t == "0" {
            return Ok(Duration(std::time::Duration::ZERO));
        }
        if t.is_empty() {
            return Err(bad());
        }
        let mut total: u64 = 0;
        let mut rest = t;
        // Units must come largest first, each once.
        let mut allowed = &UNITS[..];
        while !rest.is_empty() {
            let split = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            let (digits, after) = rest.split_at(split);
            let n: u64 = digits.parse().map_err(|_| bad())?;
            let unit_len = after
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(after.len());
            let unit = &after[..unit_len];
            if unit == "m" {
                return Err(invalid(format!(
                    "{text:?}: the unit m is ambiguous; write min for minutes (m means months, in --keep-within only)"
                )));
            }
            let at = allowed
                .iter()
                .position(|(u, _)| *u == unit)
                .ok_or_else(bad)?;
            let seconds = allowed[at].1;
            allowed = &allowed[at + 1..];
            total = n
                .checked_mul(seconds)
                .and_then(|s| total.checked_add(s))
                .ok_or_else(bad)?;
            rest = &after[unit_len..];
        }
        Ok(Duration(std::time::Duration::from_secs(total)))
    }
}

/// The shortest form the grammar reads back: `0`, `90s` as `1min30s`,
/// `2d`, `1w1d`.
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut left = self.0.as_secs();
        if left == 0 {
            return f.write_str("0");
        }
        for (unit, seconds) in UNITS {
            if left >= seconds {
                write!(f, "{}{unit}", left / seconds)?;
                left %= seconds;
            }
        }
        Ok(())
    }
}

deserialize_from_str!(Duration);

/// The time between rounds of `watch --every`: a [`Duration`] from 1s to 1w.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub std::time::Duration);

impl Interval {
    /// The longest interval: beyond it a clock or a schedule is wanted.
    const MAX: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);
}

impl FromStr for Interval {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<Interval, Invalid> {
        let Duration(d) = text.parse()?;
        if d.is_zero() || d > Interval::MAX {
            return Err(invalid(format!(
                "{text:?} is not an interval from 1s to 1w"
            )));
        }
        Ok(Interval(d))
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Duration(self.0).fmt(f)
    }
}

deserialize_from_str!(Interval);

/// A number of bytes (see the module's SIZE grammar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<Size, Invalid> {
        let t = text.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let bad = || invalid(format!("{text:?} is not a size (try 16MiB)"));
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
            .map(Size)
            .ok_or_else(|| invalid(format!("size {text:?} is too large")))
    }
}

deserialize_from_str!(Size);

/// A repository's target pack size: a [`Size`] from 1 MiB to 1 GiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackSize(pub u32);

impl FromStr for PackSize {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<PackSize, Invalid> {
        let Size(bytes) = text.parse()?;
        let (min, max) = (
            u64::from(arca_core::format::PACK_SIZE_MIN),
            u64::from(arca_core::format::PACK_SIZE_MAX),
        );
        match u32::try_from(bytes) {
            Ok(size) if (min..=max).contains(&bytes) => Ok(PackSize(size)),
            _ => Err(invalid(format!(
                "pack size {text:?} is outside 1MiB to 1GiB"
            ))),
        }
    }
}

/// A share of bytes, `5%` or `5` (0 to 100), or `unlimited`; held as a
/// fraction (`unlimited` is infinite).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Percent(pub f64);

impl FromStr for Percent {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<Percent, Invalid> {
        let t = text.trim();
        if t == "unlimited" {
            return Ok(Percent(f64::INFINITY));
        }
        match t.trim_end_matches('%').trim().parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(Percent(p / 100.0)),
            _ => Err(invalid(format!(
                "{text:?} is not a percentage from 0% to 100% or \"unlimited\""
            ))),
        }
    }
}

deserialize_from_str!(Percent);

/// What share of the packs `check` reads: `N/M` (bucket N of M, by pack
/// id), `P%` (that share, at random) or a [`Size`] (at random, up to it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Subset(pub arca_core::Subset);

impl FromStr for Subset {
    type Err = Invalid;

    fn from_str(spec: &str) -> Result<Subset, Invalid> {
        if let Some((n, m)) = spec.split_once('/') {
            let (n, m): (u32, u32) = match (n.trim().parse(), m.trim().parse()) {
                (Ok(n), Ok(m)) => (n, m),
                _ => return Err(invalid(format!("{spec:?} is not a subset N/M"))),
            };
            if m == 0 || n == 0 || n > m {
                return Err(invalid(format!("subset {spec}: need 1 <= N <= M")));
            }
            return Ok(Subset(arca_core::Subset::Bucket { n, m }));
        }
        if let Some(p) = spec.strip_suffix('%') {
            let p: f64 = p
                .trim()
                .parse()
                .map_err(|_| invalid(format!("{spec:?} is not a percentage")))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(invalid(format!(
                    "subset {spec}: the percentage must be between 0 and 100"
                )));
            }
            return Ok(Subset(arca_core::Subset::Percent(p)));
        }
        let Size(bytes) = spec.parse().map_err(|_| {
            invalid(format!(
                "{spec:?} is not a subset: use N/M, a percentage (5%) or a size (2GiB)"
            ))
        })?;
        Ok(Subset(arca_core::Subset::Bytes(bytes)))
    }
}

deserialize_from_str!(Subset);

/// A retention count: 0 or more, or `unlimited` (also `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count(pub i64);

impl FromStr for Count {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<Count, Invalid> {
        arca_core::retention::parse_count(text)
            .map(Count)
            .map_err(|e| invalid(e.to_string()))
    }
}

/// In a profile a count is a number (`-1`: unlimited) or `"unlimited"`.
impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Number(n) => n.to_string(),
            Raw::Text(t) => t,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A retention span (`--keep-within`), read by the engine's grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub arca_core::retention::Span);

impl FromStr for Span {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<Span, Invalid> {
        text.parse()
            .map(Span)
            .map_err(|e: arca_core::Error| invalid(e.to_string()))
    }
}

deserialize_from_str!(Span);

/// A `--keep-tag` value: comma-separated tags a snapshot must all have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagList(pub Vec<String>);

impl FromStr for TagList {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<TagList, Invalid> {
        arca_core::retention::parse_tag_list(text)
            .map(TagList)
            .map_err(|e| invalid(e.to_string()))
    }
}

deserialize_from_str!(TagList);

/// `--group-by`: any of host, paths, tags, comma-separated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupBy(pub arca_core::retention::GroupBy);

impl FromStr for GroupBy {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<GroupBy, Invalid> {
        text.parse()
            .map(GroupBy)
            .map_err(|e: arca_core::Error| invalid(e.to_string()))
    }
}

deserialize_from_str!(GroupBy);

/// `--sqlite`: auto, always or never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SqliteMode(pub arca_core::sqlite::SqliteMode);

impl FromStr for SqliteMode {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<SqliteMode, Invalid> {
        text.parse()
            .map(SqliteMode)
            .map_err(|e: arca_core::Error| invalid(e.to_string()))
    }
}

deserialize_from_str!(SqliteMode);

/// A point in time: RFC 3339 with an offset, or a local
/// `YYYY-MM-DD[ HH:MM[:SS]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub arca_core::Time);

impl FromStr for Time {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<Time, Invalid> {
        let local = jiff::tz::TimeZone::system();
        if let Ok(ts) = text.parse::<jiff::Timestamp>() {
            return Ok(Time(arca_core::Time::from_zoned(&ts.to_zoned(local))));
        }
        let civil = text.parse::<jiff::civil::DateTime>().or_else(|_| {
            text.parse::<jiff::civil::Date>()
                .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        });
        let Ok(civil) = civil else {
            return Err(invalid(format!(
                "{text:?} is not a time: use RFC 3339 or \"YYYY-MM-DD HH:MM:SS\""
            )));
        };
        let zoned = civil.to_zoned(local).map_err(|_| {
            invalid(format!(
                "time {text:?} does not exist in the local time zone"
            ))
        })?;
        Ok(Time(arca_core::Time::from_zoned(&zoned)))
    }
}

/// A zstd level for new data: 0 (off) to 22.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compression(pub i32);

impl FromStr for Compression {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<Compression, Invalid> {
        let max = arca_core::format::COMPRESSION_MAX;
        match text.trim().parse::<i32>() {
            Ok(level) if (0..=max).contains(&level) => Ok(Compression(level)),
            _ => Err(invalid(format!(
                "{text:?} is not a compression level from 0 to {max}"
            ))),
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Transfers in flight at once: 1 to 256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connections(pub u16);

impl FromStr for Connections {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<Connections, Invalid> {
        match text.trim().parse::<u16>() {
            Ok(n) if (1..=256).contains(&n) => Ok(Connections(n)),
            _ => Err(invalid(format!("{text:?} is not a number from 1 to 256"))),
        }
    }
}

/// In a profile, connections are a number.
impl<'de> Deserialize<'de> for Connections {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Connections, D::Error> {
        let n = i64::deserialize(d)?;
        n.to_string().parse().map_err(serde::de::Error::custom)
    }
}

/// A repository address: a path or `local:PATH`, `s3:…` or `sftp:…`
/// (checked for form only; whether it exists is found out on opening).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address(pub String);

impl FromStr for Address {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<Address, Invalid> {
        if let Some(scheme) = ["rest:", "b2:", "azure:", "gs:"]
            .iter()
            .find(|s| text.starts_with(**s))
        {
            return Err(invalid(format!(
                "{} repositories are not supported; use a local path, s3: or sftp:",
                scheme.trim_end_matches(':')
            )));
        }
        let path = text.strip_prefix("local:").unwrap_or(text);
        if path.is_empty() {
            return Err(invalid("the repository address is empty"));
        }
        #[cfg(feature = "s3")]
        if let Some(rest) = text.strip_prefix("s3:") {
            arca_backend::S3Config::from_address(rest).map_err(|e| invalid(e.to_string()))?;
        }
        #[cfg(feature = "sftp")]
        if let Some(rest) = text.strip_prefix("sftp:") {
            arca_backend::SftpConfig::from_address(rest).map_err(|e| invalid(e.to_string()))?;
        }
        Ok(Address(text.to_string()))
    }
}

deserialize_from_str!(Address);

/// A file name for `--stdin-name`: not empty, no `/`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileName(pub String);

impl FromStr for FileName {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<FileName, Invalid> {
        if text.is_empty() || text == "." || text == ".." || text.contains(['/', '\0']) {
            return Err(invalid(format!(
                "{text:?} is not a file name (no '/', not empty, not . or ..)"
            )));
        }
        Ok(FileName(text.to_string()))
    }
}

/// A snapshot tag: not empty, no commas (a `--keep-tag` list separates
/// tags with them), no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag(pub String);

impl FromStr for Tag {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<Tag, Invalid> {
        if text.trim().is_empty() || text.contains(',') || text.chars().any(char::is_control) {
            return Err(invalid(format!(
                "{text:?} is not a tag (not empty, no commas or control characters)"
            )));
        }
        Ok(Tag(text.to_string()))
    }
}

deserialize_from_str!(Tag);

/// A profile's name (`--profile NAME`): a plain file name, not hidden.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileName(pub String);

impl FromStr for ProfileName {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<ProfileName, Invalid> {
        if text.is_empty() || text.starts_with('.') || text.contains(['/', '\0']) {
            return Err(invalid(format!("{text:?} is not a plain file name")));
        }
        Ok(ProfileName(text.to_string()))
    }
}

/// A gitignore-style pattern (`--exclude`, `--include`), checked by the
/// same matcher the engine uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(pub String);

impl FromStr for Glob {
    type Err = Invalid;

    fn from_str(text: &str) -> Result<Glob, Invalid> {
        let mut builder = ignore::gitignore::GitignoreBuilder::new("/");
        builder
            .add_line(None, text)
            .and_then(|b| b.build().map(drop))
            .map_err(|e| invalid(format!("{text:?} is not a valid pattern: {e}")))?;
        Ok(Glob(text.to_string()))
    }
}

/// How long ago `time` was, in whole seconds; 0 for a time in the future
/// (a clock that was ahead when the snapshot was taken).
pub fn age_seconds(time: arca_core::Time) -> u64 {
    let now = arca_core::Time::now().at.seconds;
    u64::try_from(now.saturating_sub(time.at.seconds)).unwrap_or(0)
}

/// `time` as Unix time in seconds, with its fraction (for metrics).
pub fn unix_seconds(time: arca_core::Time) -> f64 {
    time.at.seconds as f64 + f64::from(time.at.nanos) / 1e9
}

/// An age for people, largest unit hours, in the DURATION units: `45s`,
/// `10min 5s`, `27h 3min`, `26h`.
pub fn format_age(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    let parts: Vec<String> = if h > 0 {
        vec![format!("{h}h"), format!("{m}min")]
    } else if m > 0 {
        vec![format!("{m}min"), format!("{s}s")]
    } else {
        return format!("{s}s");
    };
    let kept: Vec<&str> = parts
        .iter()
        .filter(|p| !p.starts_with('0'))
        .map(String::as_str)
        .collect();
    kept.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration as Std;

    #[test]
    fn intervals_are_durations_from_a_second_to_a_week() {
        assert_eq!("30s".parse::<Interval>().unwrap().0, Std::from_secs(30));
        assert_eq!("1w".parse::<Interval>().unwrap().to_string(), "1w");
        for bad in ["0", "0s", "abc", "", "1w1s", "30m"] {
            assert!(bad.parse::<Interval>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_parse_and_print_back() {
        let d = |s: &str| s.parse::<Duration>().map(|d| d.0);
        assert_eq!(d("0"), Ok(Std::ZERO));
        assert_eq!(d("30s"), Ok(Std::from_secs(30)));
        assert_eq!(d("1h30min"), Ok(Std::from_secs(5400)));
        assert_eq!(d("10min"), Ok(Std::from_secs(600)));
        assert_eq!(d("2d"), Ok(Std::from_secs(172_800)));
        assert_eq!(d("1w"), Ok(Std::from_secs(604_800)));
        for bad in [
            "",
            "10",
            "5x",
            "h",
            "99999999999999999999d",
            "1h-",
            "30min1h",
            "10m",
            "1h30m",
            "1h1h",
        ] {
            assert!(d(bad).is_err(), "{bad}");
        }
        for text in ["0", "45s", "1min30s", "2d", "1w1d", "3h"] {
            assert_eq!(text.parse::<Duration>().unwrap().to_string(), text);
        }
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        let s = |t: &str| t.parse::<Size>().map(|s| s.0);
        assert_eq!(s("16MiB"), Ok(16 << 20));
        assert_eq!(s("512k"), Ok(512 << 10));
        assert_eq!(s("1048576"), Ok(1 << 20));
        assert_eq!(s("8GiB"), Ok(8 << 30));
        assert!(s("99999999999T").is_err());
        assert!(s("lots").is_err());
        assert!("512KiB".parse::<PackSize>().is_err());
        assert!("2GiB".parse::<PackSize>().is_err());
        assert_eq!("16MiB".parse::<PackSize>(), Ok(PackSize(16 << 20)));
    }

    #[test]
    fn percentages_and_subsets_parse_and_reject_nonsense() {
        assert_eq!("5%".parse::<Percent>(), Ok(Percent(0.05)));
        assert_eq!("12.5".parse::<Percent>(), Ok(Percent(0.125)));
        assert!("unlimited".parse::<Percent>().unwrap().0.is_infinite());
        for bad in ["150%", "-1%", "some"] {
            assert!(bad.parse::<Percent>().is_err(), "{bad}");
        }
        let sub = |t: &str| t.parse::<Subset>().map(|s| s.0);
        assert_eq!(sub("2/5"), Ok(arca_core::Subset::Bucket { n: 2, m: 5 }));
        assert_eq!(sub("12.5%"), Ok(arca_core::Subset::Percent(12.5)));
        assert_eq!(sub("1GiB"), Ok(arca_core::Subset::Bytes(1 << 30)));
        for bad in ["0/5", "6/5", "1/0", "x/y", "101%", "lots"] {
            assert!(sub(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_parse_in_every_accepted_form() {
        let t = "2026-03-01T14:30:00.5+02:00".parse::<Time>().unwrap().0;
        assert_eq!(t.at.seconds, 1_772_368_200);
        assert_eq!(t.at.nanos, 500_000_000);
        assert!("2026-03-01 14:30:00".parse::<Time>().is_ok());
        assert!("2026-03-01".parse::<Time>().is_ok());
        assert!("yesterday-ish".parse::<Time>().is_err());
    }

    #[test]
    fn addresses_names_and_levels_are_checked_for_form() {
        assert!("/srv/arca".parse::<Address>().is_ok());
        for bad in ["", "local:", "rest:http://h/x", "b2:bucket"] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
        for bad in ["", ".", "..", "a/b"] {
            assert!(bad.parse::<FileName>().is_err(), "{bad:?}");
        }
        assert!("23".parse::<Compression>().is_err());
        assert!("-1".parse::<Compression>().is_err());
        assert_eq!("0".parse::<Compression>(), Ok(Compression(0)));
        assert!("0".parse::<Connections>().is_err());
        assert!("257".parse::<Connections>().is_err());
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(format_age(0), "0s");
        assert_eq!(format_age(45), "45s");
        assert_eq!(format_age(605), "10min 5s");
        assert_eq!(format_age(600), "10min");
        assert_eq!(format_age(26 * 3600), "26h");
        assert_eq!(format_age(27 * 3600 + 3 * 60 + 59), "27h 3min");
        assert_eq!(format_age(2 * 86_400), "48h");
    }
}
