//! Progress bars as a terminal sees them: `arca` runs with stderr on a
//! pseudo-terminal, and what it drew there is read back.

use std::fs;
use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::util::{Env, random_bytes, write_file};

/// How long one command may take before the test gives up on it.
const DEADLINE: Duration = Duration::from_secs(180);

/// Runs `arca ARGS` with stderr on a fresh pseudo-terminal 200 columns
/// wide (stdout is a pipe); returns its exit code and everything drawn on
/// the terminal, once the command has ended and closed the terminal.
fn on_terminal(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let (mut master, slave) = open_pty();
    let mut child = env
        .cmd(args)
        .env("TERM", "xterm")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    // The child holds the only other end: reading ends when it exits.
    let (sender, drawn) = mpsc::channel();
    std::thread::spawn(move || {
        let mut text = Vec::new();
        let mut buf = [0u8; 4096];
        // Linux answers EIO once the last holder of the other end is gone.
        while let Ok(n @ 1..) = master.read(&mut buf) {
            text.extend_from_slice(&buf[..n]);
        }
        let _ = sender.send(text);
    });
    let Ok(text) = drawn.recv_timeout(DEADLINE) else {
        let _ = child.kill();
        panic!("arca {args:?} did not end within {DEADLINE:?}");
    };
    let status = child.wait().unwrap();
    (status.code(), String::from_utf8_lossy(&text).into_owned())
}

/// A pseudo-terminal pair, 200 columns wide so that no bar is cut short.
fn open_pty() -> (fs::File, OwnedFd) {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 200,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes the two descriptors it opens, which are then
    // owned here, and reads only the window size given.
    let opened = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and nothing else owns them.
    unsafe { (fs::File::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) }
}

/// The bar counts against the total found by the scan running beside the
/// snapshot, with a percentage and an ETA; with -q nothing is drawn.
#[test]
fn snapshot_on_a_terminal_shows_totals_a_rate_and_an_eta() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    // Enough to read for the bar to be drawn several times (ten a second)
    // after the scan, which only stats 12 files, has its total.
    for n in 0..12u64 {
        let file = src.join(format!("f{n:02}"));
        write_file(&file, &random_bytes(8 << 20, n + 1), 0o644);
    }
    let src = src.to_str().unwrap();
    let (code, drawn) = on_terminal(&env, &["snapshot", src]);
    assert_eq!(code, Some(0), "{drawn}");
    let with_total = drawn
        .split(['\r', '\n'])
        .find(|l| l.contains("/12 files, ") && l.contains("/96.00 MiB, ") && l.contains("ETA "));
    assert!(
        with_total.is_some_and(|l| l.contains("% ") && l.contains("/s, ")),
        "no bar with the total, a rate and an ETA: {drawn:?}"
    );

    let (code, drawn) = on_terminal(&env, &["-q", "snapshot", src, "--force"]);
    assert_eq!(code, Some(0), "{drawn}");
    assert_eq!(drawn, "", "-q draws nothing, even on a terminal");
}
