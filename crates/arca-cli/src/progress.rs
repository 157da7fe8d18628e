//! Progress bars on stderr, drawn only on a terminal. The engine exposes
//! atomic counters; a ticker thread polls them while the work runs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

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
