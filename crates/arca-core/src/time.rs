//! Times as stored: seconds and nanoseconds since the Unix epoch (any sign,
//! so times before 1970 and after 2038 survive), plus the UTC offset for
//! snapshot times so they display as they were taken.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A point in time with nanosecond precision; stored as `[seconds, nanos]`.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(try_from = "(i64, u32)", into = "(i64, u32)")]
pub struct Timestamp {
    /// Seconds since 1970-01-01T00:00:00Z.
    pub seconds: i64,
    /// Nanoseconds within the second, below 1 000 000 000.
    pub nanos: u32,
}

impl TryFrom<(i64, u32)> for Timestamp {
    type Error = String;
    fn try_from((seconds, nanos): (i64, u32)) -> Result<Timestamp, String> {
        if nanos >= 1_000_000_000 {
            return Err(format!("nanoseconds {nanos} out of range"));
        }
        Ok(Timestamp { seconds, nanos })
    }
}

impl From<Timestamp> for (i64, u32) {
    fn from(t: Timestamp) -> (i64, u32) {
        (t.seconds, t.nanos)
    }
}

impl Timestamp {
    /// Converts from `std::fs::Metadata`-style fields.
    pub fn new(seconds: i64, nanos: i64) -> Timestamp {
        Timestamp {
            seconds,
            nanos: nanos.clamp(0, 999_999_999) as u32,
        }
    }

    /// From a system time, to the second (for storage listings).
    pub fn from_system(t: std::time::SystemTime) -> Timestamp {
        let seconds = match t.duration_since(std::time::SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_secs() as i64,
            Err(e) => -(e.duration().as_secs() as i64),
        };
        Timestamp { seconds, nanos: 0 }
    }

    fn to_jiff(self) -> Option<jiff::Timestamp> {
        jiff::Timestamp::new(self.seconds, self.nanos as i32).ok()
    }
}

/// A snapshot's time: a timestamp and the UTC offset where it was taken;
/// stored as `[seconds, nanos, offset_seconds]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "(i64, u32, i32)", into = "(i64, u32, i32)")]
pub struct Time {
    /// The instant.
    pub at: Timestamp,
    /// Offset from UTC in seconds, within ±24 h.
    pub offset_seconds: i32,
}

impl TryFrom<(i64, u32, i32)> for Time {
    type Error = String;
    fn try_from((s, ns, offset): (i64, u32, i32)) -> Result<Time, String> {
        if offset.unsigned_abs() >= 86_400 {
            return Err(format!("UTC offset {offset} s out of range"));
        }
        let at = Timestamp::try_from((s, ns))?;
        if at.to_jiff().is_none() {
            return Err(format!("time {s} s out of range"));
        }
        Ok(Time {
            at,
            offset_seconds: offset,
        })
    }
}

impl From<Time> for (i64, u32, i32) {
    fn from(t: Time) -> (i64, u32, i32) {
        (t.at.seconds, t.at.nanos, t.offset_seconds)
    }
}

impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Time) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Time {
    fn cmp(&self, other: &Time) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

impl Time {
    /// Now, with the local offset.
    pub fn now() -> Time {
        Time::from_zoned(&jiff::Zoned::now())
    }

    /// From a zoned time.
    pub fn from_zoned(z: &jiff::Zoned) -> Time {
        let ts = z.timestamp();
        Time {
            at: Timestamp {
                seconds: ts.as_second(),
                nanos: ts.subsec_nanosecond().max(0) as u32,
            },
            offset_seconds: z.offset().seconds(),
        }
    }

    /// As a jiff zoned time in its own offset.
    pub fn to_zoned(self) -> jiff::Zoned {
        let offset =
            jiff::tz::Offset::from_seconds(self.offset_seconds).unwrap_or(jiff::tz::Offset::UTC);
        self.at
            .to_jiff()
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(jiff::tz::TimeZone::fixed(offset))
    }

    /// RFC 3339 with nanoseconds and the original offset.
    pub fn to_rfc3339(self) -> String {
        self.to_zoned()
            .strftime("%Y-%m-%dT%H:%M:%S%.f%:z")
            .to_string()
    }

    /// `YYYY-MM-DD HH:MM:SS` in the local time zone, for tables.
    pub fn to_local_string(self) -> String {
        let ts = self.at.to_jiff().unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        ts.to_zoned(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M:%S")
            .to_string()
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_out_of_range_fields() {
        let t = Time {
            at: Timestamp {
                seconds: -86_400 * 365,
                nanos: 123_456_789,
            },
            offset_seconds: 3600,
        };
        let bytes = rmp_serde::to_vec(&t).unwrap();
        assert_eq!(rmp_serde::from_slice::<Time>(&bytes).unwrap(), t);
        assert_eq!(t.to_rfc3339(), "1969-01-01T01:00:00.123456789+01:00");
        let bad = rmp_serde::to_vec(&(0i64, 1_000_000_000u32, 0i32)).unwrap();
        assert!(rmp_serde::from_slice::<Time>(&bad).is_err());
        for offset in [90_000i32, i32::MIN, i32::MAX] {
            let bad = rmp_serde::to_vec(&(0i64, 0u32, offset)).unwrap();
            assert!(
                rmp_serde::from_slice::<Time>(&bad).is_err(),
                "offset {offset}"
            );
        }
        let bad = rmp_serde::to_vec(&(i64::MAX, 0u32, 0i32)).unwrap();
        assert!(rmp_serde::from_slice::<Time>(&bad).is_err());
    }
}
