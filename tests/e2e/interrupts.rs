//! SIGINT and SIGTERM stop a command at once: exit 128 + the signal, no
//! temporary files left, every stored snapshot intact, and a re-run
//! completes.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use crate::servers::Server;
use crate::util::*;

/// Starts `snapshot --stdin` of `orders.db`; its stdin to feed, stderr kept.
fn stdin_snapshot(env: &Env) -> (std::process::Child, std::process::ChildStdin) {
    let mut child = env
        .cmd(&[
            "--no-progress",
            "snapshot",
            "--stdin",
            "--stdin-name",
            "orders.db",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    (child, stdin)
}

/// Feeds `snapshot --stdin` one MiB at a time until a pack is being
/// written (a temporary file in `data/`), then sends `signal`.
fn interrupt_snapshot(signal: libc::c_int, expected_code: i32) {
    let env = Env::with_repo();
    env.ok(&["snapshot", "--stdin", "--stdin-name", "first.db"]);
    let before = env.json(&["snapshots"]);
    let (child, mut stdin) = stdin_snapshot(&env);
    let mut fed = 0u64;
    // Writes block while arca is busy, so each step waits for real
    // progress; a pack is being written nearly all the time.
    while temporaries(&env.repo.join("data")).is_empty() {
        assert!(fed < 2048, "no pack was ever being written after {fed} MiB");
        stdin.write_all(&random_bytes(1 << 20, fed)).unwrap();
        fed += 1;
    }
    // SAFETY: kill sends a signal to the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(expected_code), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(
        temporaries(env.dir.path()).is_empty(),
        "{:?}",
        temporaries(env.dir.path())
    );

    // Nothing stored was harmed, and the interrupted snapshot was not
    // committed.
    env.ok(&["check", "--read-data"]);
    assert_eq!(env.json(&["snapshots"]), before);

    // A re-run stores the same stream and reuses what had landed.
    let (child, mut stdin) = stdin_snapshot(&env);
    for step in 0..fed {
        stdin.write_all(&random_bytes(1 << 20, step)).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dumped = env.cmd(&["dump", "latest", "orders.db"]).output().unwrap();
    assert!(dumped.status.success());
    assert_eq!(dumped.stdout.len() as u64, fed << 20);
    for step in 0..fed as usize {
        let piece = &dumped.stdout[step << 20..(step + 1) << 20];
        assert!(
            piece == random_bytes(1 << 20, step as u64),
            "MiB {step} differs"
        );
    }
    env.ok(&["check", "--read-data"]);
}

#[test]
fn sigint_stops_a_snapshot_with_130_and_leaves_nothing_behind() {
    interrupt_snapshot(libc::SIGINT, 130);
}

#[test]
fn sigterm_stops_a_snapshot_with_143_and_leaves_nothing_behind() {
    interrupt_snapshot(libc::SIGTERM, 143);
}

/// Starts `restore` of a snapshot of `size` bytes and sends SIGINT as soon
/// as its first file appears in the target; the exit status, or `None`
/// when the restore ended before the signal could land.
fn interrupt_restore(env: &Env, id: &str, target: &Path) -> Option<std::process::ExitStatus> {
    let mut child = env
        .cmd(&[
            "--no-progress",
            "restore",
            id,
            "--target",
            target.to_str().unwrap(),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Polling for a condition, not a time: the file shows up once the
    // restore has started writing.
    while files_below(target).is_empty() {
        if child.try_wait().unwrap().is_some() {
            eprintln!("the restore ended before it could be interrupted");
            return None;
        }
        std::thread::yield_now();
    }
    // SAFETY: kill sends a signal to the child this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let status = child.wait().unwrap();
    (status.code() != Some(0)).then_some(status)
}

#[test]
fn sigint_stops_a_restore_and_a_rerun_completes_it() {
    let env = Env::with_repo();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    for i in 0..24u64 {
        write_file(
            &src.join(format!("trades-{i:02}.db")),
            &random_bytes(8 << 20, i),
            0o644,
        );
    }
    let id = env.snapshot(&[&src])["id"].as_str().unwrap().to_string();
    let target = env.path("target");
    std::fs::create_dir(&target).unwrap();
    // A restore of 192 MiB outlasts the signal; should one ever finish
    // first, there is nothing to interrupt and the rest still holds.
    if let Some(status) = interrupt_restore(&env, &id, &target) {
        assert_eq!(status.code(), Some(130));
        assert!(temporaries(env.dir.path()).is_empty());
    }
    env.ok(&["restore", &id, "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&target, &src));
}

#[test]
fn sigint_stops_a_prune_holding_its_lock_and_a_rerun_completes_it() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1MiB"]);
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    // Many packs, most of them partly used after the forget: prune has
    // a good deal of repacking to do.
    for round in 0..4u64 {
        for i in 0..12u64 {
            let data = random_bytes(3 << 20, round * 100 + i);
            write_file(&src.join(format!("positions-{i:02}.db")), &data, 0o644);
        }
        env.ok(&["snapshot", src.to_str().unwrap()]);
    }
    env.ok(&["forget", "--keep-last", "1"]);
    let kept = env.json(&["snapshots"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut child = env
        .cmd(&["--no-progress", "prune", "--max-unused", "0%"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once its lock file is there, the prune holds the repository.
    let locks = env.repo.join("locks");
    let mut finished = false;
    while std::fs::read_dir(&locks).unwrap().next().is_none() {
        if child.try_wait().unwrap().is_some() {
            finished = true;
            break;
        }
        std::thread::yield_now();
    }
    // SAFETY: kill sends a signal to the child this test started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    if !finished && out.status.code() != Some(0) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        let left: Vec<_> = std::fs::read_dir(&locks)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(
            left.is_empty(),
            "the prune's lock was left behind: {left:?}"
        );
        assert!(temporaries(env.dir.path()).is_empty());
    } else {
        eprintln!("the prune ended before it could be interrupted");
    }
    // Nothing was lost, and a re-run (no `unlock` needed) finishes.
    env.ok(&["check", "--read-data"]);
    env.ok(&["prune", "--max-unused", "0%"]);
    env.ok(&["check", "--read-data"]);
    let target = env.path("target");
    env.ok(&["restore", &kept, "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&target, &src));
}

/// Every process below `pid` (children, their children, ...).
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // The parent is the second field after the parenthesised name.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        if let Some(parent) = rest.split_whitespace().nth(1) {
            parents.push((child, parent.parse::<u32>().unwrap_or(0)));
        }
    }
    let mut found = vec![pid];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}

/// Feeds `snapshot --stdin` on an SFTP repository until `ready` holds for
/// the repository's storage, then sends SIGINT; returns the exit and stderr.
fn interrupt_sftp_snapshot(
    server: &Server,
    env: &Env,
    ready: impl Fn(&Path) -> bool,
    before_signal: impl FnOnce(),
) -> (Option<i32>, String, std::time::Duration) {
    let storage = server.storage("repo");
    let (child, mut stdin) = stdin_snapshot(env);
    let mut fed = 0u64;
    while !ready(&storage) {
        assert!(fed < 4096, "the storage never got ready after {fed} MiB");
        stdin.write_all(&random_bytes(1 << 20, fed)).unwrap();
        fed += 1;
    }
    before_signal();
    let started = std::time::Instant::now();
    // SAFETY: kill sends a signal to the child this test started.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let out = child.wait_with_output().unwrap();
    let took = started.elapsed();
    drop(stdin);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        took,
    )
}

#[test]
fn sigint_during_an_sftp_upload_removes_its_temporary_file() {
    let Some(server) = Server::sftp() else { return };
    let env = server.env("repo");
    // Large packs: each upload takes long enough to be caught in flight.
    env.ok(&["init", "--pack-size", "64MiB"]);
    let (code, stderr, _) = interrupt_sftp_snapshot(
        &server,
        &env,
        |storage| !temporaries(&storage.join("data")).is_empty(),
        || {},
    );
    assert_eq!(code, Some(130), "{stderr}");
    assert!(
        stderr.contains("temporary files and locks removed"),
        "{stderr}"
    );
    let storage = server.storage("repo");
    assert!(
        temporaries(&storage).is_empty(),
        "{:?}",
        temporaries(&storage)
    );
    assert_eq!(std::fs::read_dir(storage.join("locks")).unwrap().count(), 0);
    env.ok(&["check", "--read-data"]);
}

#[test]
fn sigint_with_storage_stalled_exits_within_the_cleanup_limit() {
    let Some(server) = Server::sftp() else { return };
    let env = server.env("repo");
    env.ok(&["init", "--pack-size", "64MiB"]);
    // Once a pack is being uploaded, every process serving the connection
    // is stopped: its temporary file can no longer be removed.
    let mut stopped = Vec::new();
    let (code, stderr, took) = interrupt_sftp_snapshot(
        &server,
        &env,
        |storage| !temporaries(&storage.join("data")).is_empty(),
        || {
            stopped = descendants(server.pid());
            assert!(!stopped.is_empty(), "no sshd session process");
            for pid in &stopped {
                // SAFETY: stops a process the test server started.
                unsafe { libc::kill(*pid as libc::pid_t, libc::SIGSTOP) };
            }
        },
    );
    for pid in &stopped {
        // SAFETY: resumes a process stopped above.
        unsafe { libc::kill(*pid as libc::pid_t, libc::SIGCONT) };
    }
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("stopped before cleaning up"), "{stderr}");
    // The limit is 5 s; the margin is for a loaded machine.
    assert!(took.as_secs() < 30, "took {took:?}");
    // What was left is ignored: the repository checks.
    env.ok(&["check", "--read-data"]);
}

/// The packs fully stored in `data/` (named by their hash), and their bytes.
fn stored_data_packs(repo: &Path) -> (usize, u64) {
    let mut count = 0;
    let mut bytes = 0;
    for sub in std::fs::read_dir(repo.join("data"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for pack in std::fs::read_dir(sub.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = pack.file_name();
            let name = name.to_string_lossy();
            if name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()) {
                count += 1;
                bytes += pack.metadata().unwrap().len();
            }
        }
    }
    (count, bytes)
}

/// A first snapshot interrupted after some packs landed indexes them on
/// the way out, so the re-run reads everything again but sends only what
/// had not landed, and leaves no unindexed pack behind.
#[test]
fn an_interrupted_first_snapshot_resumes_without_sending_again() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1MiB"]);
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    let total: u64 = 24 << 20;
    for i in 0..12u64 {
        write_file(
            &src.join(format!("part-{i:02}.db")),
            &random_bytes(2 << 20, 500 + i),
            0o644,
        );
    }
    let mut child = env
        .cmd(&["--no-progress", "snapshot", src.to_str().unwrap()])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Polling for a condition, not a time: packs land as the run goes.
    while stored_data_packs(&env.repo).0 < 3 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the snapshot ended before it could be interrupted"
        );
        std::thread::yield_now();
    }
    // SAFETY: kill sends a signal to the child this test started.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) },
        0
    );
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, landed) = stored_data_packs(&env.repo);
    assert!(landed >= 3 << 20, "{landed}");

    let rerun = env.json(&["snapshot", src.to_str().unwrap()]);
    let sent = rerun["summary"]["bytes_stored"].as_u64().unwrap();
    assert!(
        sent + landed * 9 / 10 <= total,
        "the re-run sent {sent} bytes of {total}, though {landed} had landed"
    );
    // Every pack that landed was indexed on the way out: none is a stray.
    let check = env.run(&["check", "--read-data"]);
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(
        check.status.success() && !stderr.contains("warning"),
        "{stderr}"
    );
}
