//! SIGINT and SIGTERM. Both are blocked in every thread from the start and
//! taken by one thread that waits for them; when one arrives it undoes what
//! [`arca_backend::cleanup`] holds (temporary files being written, lock
//! files held, a drill's scratch directory), restores the terminal if a
//! password prompt had turned echo off, and exits at once with 128 + the
//! signal's number: 130 for SIGINT, 143 for SIGTERM. Whatever was stored
//! before stays valid (every write is atomic, new objects come before the
//! deletion of old ones), so a re-run continues where this one stopped.
//!
//! The cleanup is bounded: a second signal, or [`CLEANUP_LIMIT`] passing
//! (a lock on unreachable storage cannot be removed), ends the process at
//! once, saying what may be left.
//!
//! Child processes (password commands, hooks, `--stdin-from-command`)
//! start with the signals unblocked and the default dispositions.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};

/// Set while a password prompt has the terminal's echo turned off.
static PROMPTING: AtomicBool = AtomicBool::new(false);

/// Where the next SIGINT or SIGTERM goes instead of ending the process.
static REDIRECT: Mutex<Option<Sender<Signal>>> = Mutex::new(None);

/// Starts the thread that handles SIGINT and SIGTERM. Call before any other
/// thread is started, so that all of them inherit the blocked signals.
pub fn install() {
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    if signals.thread_block().is_err() {
        return; // the default dispositions stay: killed, not cleaned up
    }
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(signal) = signals.wait() {
                let redirect = REDIRECT.lock().unwrap_or_else(|e| e.into_inner()).take();
                if redirect.is_some_and(|to| to.send(signal).is_ok()) {
                    continue;
                }
                stop(signal, signals);
            }
        });
    if spawned.is_err() {
        let _ = signals.thread_unblock();
    }
}

/// Hands the next SIGINT or SIGTERM to the caller instead of ending the
/// process: for a command whose normal end is a signal (`mount` unmounts
/// and exits 0). A second signal ends the process as usual.
pub fn redirect() -> Receiver<Signal> {
    let (to, from) = channel();
    *REDIRECT.lock().unwrap_or_else(|e| e.into_inner()) = Some(to);
    from
}

/// SIGINT and SIGTERM held for a command that ends cleanly on one at the
/// next convenient point (`watch`, between and within its rounds). While
/// held, the first signal is queued here and the process goes on; a second
/// one ends it as usual. [`Held::release_during`] lets a signal end the
/// process as usual while some work runs (a snapshot is abandoned, not
/// waited for). Dropping it releases the signals.
#[derive(Debug)]
pub struct Held {
    to: Sender<Signal>,
    from: Receiver<Signal>,
}

impl Held {
    /// Starts holding the signals.
    pub fn new() -> Held {
        let (to, from) = channel();
        let held = Held { to, from };
        held.arm();
        held
    }

    fn arm(&self) {
        *REDIRECT.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.to.clone());
    }

    /// Waits up to `timeout` for a signal; returns it, or `None` when none
    /// came.
    pub fn wait(&self, timeout: Duration) -> Option<Signal> {
        self.from.recv_timeout(timeout).ok()
    }

    /// The signal that came, if one did.
    pub fn received(&self) -> Option<Signal> {
        self.from.try_recv().ok()
    }

    /// Runs `work` with the signals not held: one ends the process the
    /// usual way (temporary files removed, exit 128 + the signal). A signal
    /// taken just before, as the hold ended, is queued instead and comes
    /// from [`Held::received`] afterwards.
    pub fn release_during<T>(&self, work: impl FnOnce() -> T) -> T {
        REDIRECT.lock().unwrap_or_else(|e| e.into_inner()).take();
        let result = work();
        // An error the interrupt caused is not reported as a failure.
        defer_to_interrupt();
        self.arm();
        result
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        REDIRECT.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// When an interrupt is being handled, waits for the signal thread to end
/// the process: an error the interrupt caused (its lock removed under it,
/// a temporary file gone, a pack refused while its saves run) is not the
/// command's outcome, the interrupt is. The interrupt has begun as soon as
/// its saves start, before the registry closes.
pub fn defer_to_interrupt() {
    if arca_backend::cleanup::is_stopping() {
        loop {
            std::thread::park();
        }
    }
}

/// Marks a password prompt as running; the terminal's echo is restored if
/// the process is interrupted before the guard is dropped.
pub fn prompting() -> PromptGuard {
    PROMPTING.store(true, Ordering::SeqCst);
    PromptGuard
}

#[derive(Debug)]
pub struct PromptGuard;

impl Drop for PromptGuard {
    fn drop(&mut self) {
        PROMPTING.store(false, Ordering::SeqCst);
    }
}

/// How long the cleanup may take before the process exits without it.
pub const CLEANUP_LIMIT: Duration = Duration::from_secs(5);

fn stop(signal: Signal, signals: SigSet) -> ! {
    if PROMPTING.load(Ordering::SeqCst) {
        restore_echo();
    }
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || cut_short(signal, signals));
    let undone = arca_backend::cleanup::run();
    let what = if undone > 0 {
        "; temporary files and locks removed"
    } else {
        ""
    };
    // Below a progress bar's line, if one is drawn.
    let lead = if std::io::stderr().is_terminal() {
        "\n"
    } else {
        ""
    };
    eprintln!(
        "{lead}arca: interrupted by {signal}{what}; a re-run continues where this one stopped"
    );
    // Not process::exit: other threads may hold locks an orderly exit
    // would wait for; everything that must be undone was undone above.
    // SAFETY: _exit ends the process immediately; nothing runs after it.
    unsafe { libc::_exit(128 + signal as i32) }
}

/// Waits for a second signal or the end of [`CLEANUP_LIMIT`], then exits
/// at once.
fn cut_short(signal: Signal, signals: SigSet) {
    let limit = libc::timespec {
        tv_sec: CLEANUP_LIMIT.as_secs() as libc::time_t,
        tv_nsec: 0,
    };
    // SAFETY: sigtimedwait with a valid signal set, no info wanted, and a
    // valid timeout; the signals are blocked in every thread.
    unsafe { libc::sigtimedwait(signals.as_ref(), std::ptr::null_mut(), &limit) };
    eprintln!(
        "arca: interrupted by {signal}; stopped before cleaning up: temporary files may be left (later runs ignore them), and a lock (`arca unlock` removes it)"
    );
    // SAFETY: as in `stop`.
    unsafe { libc::_exit(128 + signal as i32) }
}

/// Turns the terminal's echo back on (a prompt turned it off).
fn restore_echo() {
    // SAFETY: tcgetattr/tcsetattr on standard input with a termios value
    // that tcgetattr filled in.
    unsafe {
        let mut mode: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(libc::STDIN_FILENO, &mut mode) == 0 {
            mode.c_lflag |= libc::ECHO;
            libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &mode);
        }
    }
}
