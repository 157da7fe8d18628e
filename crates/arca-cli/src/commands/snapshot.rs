use anyhow::{Context, Result, bail};
use arca_core::{Progress, SnapshotOptions, Time};
use indicatif::HumanBytes;
use serde::Serialize;
use std::sync::atomic::Ordering;

use super::SnapshotJson;
use crate::cli::SnapshotArgs;
use crate::config::Config;
use crate::{exit, output, progress};

#[derive(Serialize)]
struct Warning {
    path: String,
    error: String,
}

#[derive(Serialize)]
struct SnapshotResultJson<'a> {
    #[serde(flatten)]
    snapshot: SnapshotJson<'a>,
    warnings: Vec<Warning>,
}

pub fn run(config: &Config, args: SnapshotArgs) -> Result<i32> {
    // Check the sources before asking for a password or touching anything.
    for path in &args.paths {
        arca_core::absolute(path)?;
    }
    let time = args.time.as_deref().map(parse_time).transpose()?;
    let mut repo = super::open_repository(config)?;
    let options = SnapshotOptions {
        paths: args.paths,
        hostname: args.host.unwrap_or_else(super::hostname),
        username: super::username(),
        tags: args.tags,
        description: args.description.unwrap_or_default(),
        time,
        threads: 0,
    };
    let counters = Progress::default();
    let bar = progress::spinner("{spinner} {elapsed} {msg}");
    let outcome = progress::with_bar(
        config.progress,
        bar,
        |bar| {
            bar.set_message(format!(
                "{} files, {} read, {} new",
                counters.files.load(Ordering::Relaxed),
                HumanBytes(counters.bytes_read.load(Ordering::Relaxed)),
                HumanBytes(counters.bytes_added.load(Ordering::Relaxed)),
            ));
            bar.tick();
        },
        || arca_core::snapshot(&mut repo, &options, &counters),
    )?;
    for w in &outcome.warnings {
        eprintln!(
            "arca: warning: cannot read {}: {}",
            output::sanitize(&w.path.display().to_string()),
            w.message
        );
    }
    if config.json {
        output::json(&SnapshotResultJson {
            snapshot: SnapshotJson::new(&outcome.id, &outcome.snapshot),
            warnings: outcome
                .warnings
                .iter()
                .map(|w| Warning {
                    path: w.path.display().to_string(),
                    error: w.message.clone(),
                })
                .collect(),
        });
    } else if !config.quiet {
        let s = outcome.snapshot.summary.clone().unwrap_or_default();
        output::line(format!("snapshot {} saved", outcome.id.short()));
        output::line(format!(
            "files: {} new, {} changed, {} unchanged",
            s.files_new, s.files_changed, s.files_unchanged
        ));
        output::line(format!(
            "dirs:  {} new, {} changed, {} unchanged",
            s.dirs_new, s.dirs_changed, s.dirs_unchanged
        ));
        output::line(format!(
            "read {}, added {} ({} stored) in {:.1} s",
            HumanBytes(s.bytes_read),
            HumanBytes(s.bytes_added),
            HumanBytes(s.bytes_stored),
            s.duration_ms as f64 / 1000.0
        ));
    }
    if outcome.warnings.is_empty() {
        Ok(exit::SUCCESS)
    } else {
        config.note(format!(
            "arca: {} source entries could not be read; the snapshot holds everything else",
            outcome.warnings.len()
        ));
        Ok(exit::PARTIAL)
    }
}

/// Parses RFC 3339 (with offset) or a local "YYYY-MM-DD[ HH:MM[:SS]]".
pub fn parse_time(text: &str) -> Result<Time> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(Time::from_zoned(&ts.to_zoned(jiff::tz::TimeZone::system())));
    }
    let civil = text.parse::<jiff::civil::DateTime>().or_else(|_| {
        text.parse::<jiff::civil::Date>()
            .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
    });
    match civil {
        Ok(dt) => {
            let zoned = dt
                .to_zoned(jiff::tz::TimeZone::system())
                .with_context(|| format!("time {text:?} does not exist in the local time zone"))?;
            Ok(Time::from_zoned(&zoned))
        }
        Err(_) => bail!("{text:?} is not a time: use RFC 3339 or \"YYYY-MM-DD HH:MM:SS\""),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn times_parse_in_every_accepted_form() {
        let t = parse_time("2026-03-01T14:30:00.5+02:00").unwrap();
        assert_eq!(t.at.seconds, 1_772_368_200);
        assert_eq!(t.at.nanos, 500_000_000);
        assert!(parse_time("2026-03-01 14:30:00").is_ok());
        assert!(parse_time("2026-03-01").is_ok());
        assert!(parse_time("yesterday-ish").is_err());
    }
}
