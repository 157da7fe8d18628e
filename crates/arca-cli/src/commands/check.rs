use std::sync::atomic::Ordering;

use anyhow::{Result, bail};
use arca_core::{CheckOptions, CheckProgress, CheckReport, Repository, Subset};
use indicatif::HumanBytes;

use crate::cli::CheckArgs;
use crate::config::Config;
use crate::{exit, output, progress};

pub fn run(config: &Config, args: CheckArgs) -> Result<i32> {
    let read_data = match (&args.read_data_subset, args.read_data) {
        (Some(spec), _) => Some(parse_subset(spec)?),
        (None, true) => Some(Subset::All),
        (None, false) => None,
    };
    // The index is rebuilt by the check itself from what decodes, so a
    // damaged index file is reported rather than stopping the command.
    let mut repo = super::open_unindexed(config)?;
    let started = std::time::Instant::now();
    let report = check(config, &mut repo, read_data)?;
    let seconds = started.elapsed().as_secs_f64();
    {
        use crate::metrics::*;
        config
            .metrics
            .set(&CHECK_ERRORS, report.errors.len() as f64);
        config
            .metrics
            .set(&CHECK_WARNINGS, report.warnings.len() as f64);
        config
            .metrics
            .set(&CHECK_SUCCESS, if report.ok() { 1.0 } else { 0.0 });
    }
    if config.json {
        output::json(&report);
    } else {
        for w in &report.warnings {
            eprintln!(
                "arca: warning: {}: {}",
                output::sanitize(&w.object),
                output::sanitize(&w.message)
            );
        }
        for e in &report.errors {
            output::line(format!(
                "error: {}: {}",
                output::sanitize(&e.object),
                output::sanitize(&e.message)
            ));
            for a in &e.affects {
                output::line(format!(
                    "  hurts snapshot {} {}",
                    &a.snapshot[..8],
                    output::sanitize(&a.path)
                ));
            }
        }
        config.note(format!(
            "checked {} index files, {} snapshots, {} trees, {} packs{}",
            report.index_files,
            report.snapshots,
            report.trees,
            report.packs,
            if read_data.is_some() {
                format!(
                    "; read {} packs, {} in {:.1} s ({}/s)",
                    report.packs_read,
                    HumanBytes(report.bytes_read),
                    seconds,
                    HumanBytes((report.bytes_read as f64 / seconds.max(0.001)) as u64)
                )
            } else {
                String::new()
            }
        ));
        if report.ok() {
            config.note("no errors were found");
        } else {
            config.note(format!("{} error(s) found", report.errors.len()));
        }
    }
    Ok(if report.ok() {
        exit::SUCCESS
    } else {
        exit::ERROR
    })
}

/// Checks `repo` under a shared lock (a prune deleting packs mid-check
/// would look like damage), reading `read_data` of the packs.
pub(crate) fn check(
    config: &Config,
    repo: &mut Repository,
    read_data: Option<Subset>,
) -> Result<CheckReport> {
    let _lock = super::lock(config, repo, arca_core::LockMode::Shared, "check")?;
    let counters = CheckProgress::default();
    let bar = progress::spinner(
        "{spinner} {elapsed} [{wide_bar}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
    );
    Ok(progress::with_bar(
        config.progress,
        bar,
        |bar| {
            bar.set_length(counters.bytes_total.load(Ordering::Relaxed));
            bar.set_position(counters.bytes_read.load(Ordering::Relaxed));
        },
        || arca_core::check(repo, &CheckOptions { read_data }, &counters),
    )?)
}

/// `N/M`, `P%` or a size.
pub(crate) fn parse_subset(spec: &str) -> Result<Subset> {
    if let Some((n, m)) = spec.split_once('/') {
        let (n, m): (u32, u32) = match (n.trim().parse(), m.trim().parse()) {
            (Ok(n), Ok(m)) => (n, m),
            _ => bail!("{spec:?} is not a subset N/M"),
        };
        if m == 0 || n == 0 || n > m {
            bail!("subset {spec}: need 1 <= N <= M");
        }
        return Ok(Subset::Bucket { n, m });
    }
    if let Some(p) = spec.strip_suffix('%') {
        let p: f64 = p
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("{spec:?} is not a percentage"))?;
        if !(0.0..=100.0).contains(&p) {
            bail!("subset {spec}: the percentage must be between 0 and 100");
        }
        return Ok(Subset::Percent(p));
    }
    Ok(Subset::Bytes(super::parse_size(spec)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_parse_and_reject_nonsense() {
        assert_eq!(parse_subset("2/5").unwrap(), Subset::Bucket { n: 2, m: 5 });
        assert_eq!(parse_subset("12.5%").unwrap(), Subset::Percent(12.5));
        assert_eq!(parse_subset("1GiB").unwrap(), Subset::Bytes(1 << 30));
        for bad in ["0/5", "6/5", "1/0", "x/y", "101%", "lots"] {
            assert!(parse_subset(bad).is_err(), "{bad}");
        }
    }
}
