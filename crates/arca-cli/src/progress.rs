//! Progress bars on stderr, drawn only on a terminal. The engine exposes
//! atomic counters; a ticker thread polls them while the work runs.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use arca_core::{ExcludeOptions, ScanTotals};
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

/// A scan of a snapshot's sources ([`arca_core::scan`]) on a thread of its
/// own, at lower priority, giving the bar its totals. Dropping it stops the
/// scan and waits for the thread.
pub struct Scan {
    shared: Option<Arc<Scanned>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A scan's running totals, shared between its thread and the bar.
#[derive(Default)]
struct Scanned {
    files: AtomicU64,
    bytes: AtomicU64,
    finished: AtomicBool,
    stop: AtomicBool,
}

impl Scan {
    /// Starts counting what a snapshot of `paths` with `exclude` will hold.
    pub fn start(paths: &[PathBuf], exclude: &ExcludeOptions) -> Scan {
        let shared = Arc::new(Scanned::default());
        let (paths, exclude, scanned) = (paths.to_vec(), exclude.clone(), shared.clone());
        let thread = std::thread::Builder::new()
            .name("scan".into())
            .spawn(move || {
                lower_priority();
                let store = |t: ScanTotals| {
                    scanned.files.store(t.files, Ordering::Relaxed);
                    scanned.bytes.store(t.bytes, Ordering::Relaxed);
                };
                // An unusable exclude file is the snapshot's error to report.
                let done = arca_core::scan(&paths, &exclude, &scanned.stop, store);
                if let Ok(Some(t)) = done {
                    store(t);
                    scanned.finished.store(true, Ordering::Relaxed);
                }
            });
        Scan {
            shared: Some(shared),
            // Without a thread the bar just shows no total.
            thread: thread.ok(),
        }
    }

    /// No scan: a stream, or nothing drawn.
    pub fn none() -> Scan {
        Scan {
            shared: None,
            thread: None,
        }
    }

    /// The totals so far and whether they are final; `None` without a scan.
    pub fn totals(&self) -> Option<(ScanTotals, bool)> {
        let s = self.shared.as_ref()?;
        let finished = s.finished.load(Ordering::Relaxed);
        let totals = ScanTotals {
            files: s.files.load(Ordering::Relaxed),
            bytes: s.bytes.load(Ordering::Relaxed),
        };
        Some((totals, finished))
    }
}

impl Drop for Scan {
    fn drop(&mut self) {
        if let Some(s) = &self.shared {
            s.stop.store(true, Ordering::Relaxed);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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
fn lower_priority() {
    // SAFETY: nice touches no memory; a failure leaves the priority as it was.
    let _ = unsafe { libc::nice(10) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The snapshot step drops its scan when the work ends: that stops it
    /// at once, however much is left to count (here the whole file system).
    #[test]
    fn dropping_a_scan_stops_it() {
        let scan = Scan::start(&[PathBuf::from("/")], &ExcludeOptions::default());
        let (sender, dropped) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(scan);
            let _ = sender.send(());
        });
        assert!(
            dropped.recv_timeout(Duration::from_secs(20)).is_ok(),
            "the scan did not stop"
        );
    }

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
