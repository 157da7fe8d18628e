//! Progress bars on stderr, drawn only on a terminal. The engine exposes
//! atomic counters; a ticker thread polls them while the work runs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arca_core::ScanTotals;
use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Runs `work` while a ticker redraws `bar` from `update` ten times a second.
pub fn with_bar<T>(
    enabled: bool,
    bar: ProgressBar,
    update: impl Fn(&ProgressBar) + Sync,
    work: impl FnOnce() -> T,
) -> T {
    if !enabled {
        return work();
    }
    bar.set_draw_target(ProgressDrawTarget::stderr());
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                update(&bar);
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        });
        let result = work();
        done.store(true, Ordering::Relaxed);
        result
    })
}

/// A spinner showing bytes and a message.
pub fn spinner(template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// A scan's running totals, shared between the scanning thread and the bar.
#[derive(Default)]
pub struct Scanned {
    files: AtomicU64,
    bytes: AtomicU64,
    finished: AtomicBool,
}

impl Scanned {
    /// Records the totals so far; `finished` once the scan is complete.
    pub fn set(&self, totals: ScanTotals, finished: bool) {
        self.files.store(totals.files, Ordering::Relaxed);
        self.bytes.store(totals.bytes, Ordering::Relaxed);
        self.finished.store(finished, Ordering::Relaxed);
    }

    /// The totals so far, and whether they are final.
    pub fn get(&self) -> (ScanTotals, bool) {
        let finished = self.finished.load(Ordering::Relaxed);
        let totals = ScanTotals {
            files: self.files.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        };
        (totals, finished)
    }
}

/// How far a snapshot is: files done, bytes done (read, or reused from
/// unchanged files), and bytes new to the repository.
#[derive(Clone, Copy, Debug)]
pub struct Done {
    pub files: u64,
    pub bytes: u64,
    pub added: u64,
}

/// The snapshot bar's text. Without a total (a stream): what is done and
/// the rate. While the scan runs: done against the totals found so far,
/// marked `+` and "scanning…". Once it is complete: a percentage of the
/// bytes and the time left at the rate so far.
pub fn snapshot_message(
    done: Done,
    total: Option<(ScanTotals, bool)>,
    elapsed: Duration,
) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = done.bytes as f64 / secs;
    let speed = format!("{}/s", HumanBytes(rate as u64));
    let new = format!("{} new", HumanBytes(done.added));
    match total {
        None => format!(
            "{} files, {} read ({speed}), {new}",
            done.files,
            HumanBytes(done.bytes)
        ),
        Some((t, false)) => format!(
            "{}/{}+ files, {}/{}+ (scanning…), {speed}, {new}",
            done.files,
            t.files,
            HumanBytes(done.bytes),
            HumanBytes(t.bytes)
        ),
        Some((t, true)) => {
            let left = t.bytes.saturating_sub(done.bytes);
            let percent = (done.bytes.min(t.bytes) * 100)
                .checked_div(t.bytes)
                .unwrap_or(100);
            let eta = if left == 0 {
                clock(Duration::ZERO)
            } else if rate >= 1.0 {
                clock(Duration::from_secs_f64(left as f64 / rate))
            } else {
                "-:--".to_string()
            };
            format!(
                "{percent}% {}/{} files, {}/{}, {speed}, {new}, ETA {eta}",
                done.files,
                t.files,
                HumanBytes(done.bytes),
                HumanBytes(t.bytes)
            )
        }
    }
}

/// A duration as m:ss, or h:mm:ss from an hour on.
fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// Lowers the calling thread's CPU priority (a thread's nice value is its
/// own on Linux), for work that only makes the display better.
pub fn lower_priority() {
    // SAFETY: nice touches no memory; a failure leaves the priority as it was.
    let _ = unsafe { libc::nice(10) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(files: u64, bytes: u64) -> ScanTotals {
        ScanTotals { files, bytes }
    }

    #[test]
    fn the_snapshot_bar_shows_totals_once_known_and_then_a_percentage_and_eta() {
        let done = Done {
            files: 10,
            bytes: 25 << 20,
            added: 1 << 20,
        };
        let ten = Duration::from_secs(10);
        assert_eq!(
            snapshot_message(done, None, ten),
            "10 files, 25.00 MiB read (2.50 MiB/s), 1.00 MiB new"
        );
        assert_eq!(
            snapshot_message(done, Some((totals(40, 60 << 20), false)), ten),
            "10/40+ files, 25.00 MiB/60.00 MiB+ (scanning…), 2.50 MiB/s, 1.00 MiB new"
        );
        assert_eq!(
            snapshot_message(done, Some((totals(40, 100 << 20), true)), ten),
            "25% 10/40 files, 25.00 MiB/100.00 MiB, 2.50 MiB/s, 1.00 MiB new, ETA 0:30"
        );
        // 3723 s more at 2.5 MiB/s.
        let later = (25 << 20) + 3723 * 2_621_440;
        assert!(
            snapshot_message(done, Some((totals(40, later), true)), ten).ends_with("ETA 1:02:03")
        );
        let nothing = Done {
            files: 0,
            bytes: 0,
            added: 0,
        };
        assert!(snapshot_message(nothing, Some((totals(1, 5), true)), ten).ends_with("ETA -:--"));
        // Files that grew since the scan: never past 100%.
        assert!(snapshot_message(done, Some((totals(5, 5), true)), ten).starts_with("100% "));
    }
}
