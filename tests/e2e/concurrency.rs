//! Prune alongside snapshots: snapshots never wait for prune, and whatever
//! interleaving happens, every saved snapshot restores and `check` passes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::util::*;

/// Copies the regular files of `from` into `to` (a record of what a
/// snapshot saw).
fn copy_files(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Restores snapshot `id` and compares its files with `expected`.
fn assert_restores(env: &Env, id: &str, source: &Path, expected: &Path) {
    let target = env.path(&format!("restore-{id}"));
    env.ok(&["restore", id, "--target", target.to_str().unwrap()]);
    let root = restored(&target, source);
    let mut names: Vec<_> = fs::read_dir(expected)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let mut got: Vec<_> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    got.sort();
    assert_eq!(names, got, "files of snapshot {id}");
    for name in names {
        assert!(
            fs::read(expected.join(&name)).unwrap() == fs::read(root.join(&name)).unwrap(),
            "{name:?} of snapshot {id} differs"
        );
    }
    fs::remove_dir_all(&target).unwrap();
}

/// One writer: rewrites part of its tree and snapshots it, `rounds` times.
/// Returns the saved snapshots with the directory recording their content,
/// and how many runs failed cleanly because a prune removed data they used.
fn writer(env: &Env, w: u64, rounds: u64) -> (PathBuf, Vec<(String, PathBuf)>, u64) {
    let dir = env.path(&format!("writer{w}"));
    fs::create_dir_all(&dir).unwrap();
    let mut saved = Vec::new();
    let mut failed = 0;
    for r in 0..rounds {
        for f in 0..3u64 {
            if r == 0 || f == r % 3 {
                let seed = w * 1000 + r * 10 + f;
                write_file(
                    &dir.join(format!("f{f}")),
                    &random_bytes(300 << 10, seed),
                    0o644,
                );
            }
        }
        // Shared by all writers: deduplicated across them.
        write_file(&dir.join("common"), &random_bytes(200 << 10, 7 + r), 0o644);
        let out = env.run(&["--json", "snapshot", dir.to_str().unwrap()]);
        match out.status.code() {
            Some(0) => {
                let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let id = value["id"].as_str().unwrap().to_string();
                let record = env.path(&format!("expected-{id}"));
                copy_files(&dir, &record);
                saved.push((id, record));
            }
            _ => {
                let err = expect_failure(&out, 1);
                assert!(err.contains("run the snapshot again"), "{err}");
                failed += 1;
            }
        }
    }
    (dir, saved, failed)
}

#[test]
fn prune_over_and_over_while_snapshots_run_loses_nothing() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1MiB"]);
    let done = AtomicBool::new(false);
    let (outcomes, prunes, deleted) = std::thread::scope(|s| {
        let pruner = s.spawn(|| {
            let (mut prunes, mut deleted) = (0u64, 0u64);
            while !done.load(Ordering::SeqCst) || prunes < 2 {
                env.ok(&["forget", "--keep-last", "2"]);
                let report = env.json(&["prune", "--keep-marked", "2s"]);
                deleted += report["delete_packs"].as_u64().unwrap();
                prunes += 1;
            }
            (prunes, deleted)
        });
        let writers: Vec<_> = (0..3)
            .map(|w| {
                s.spawn({
                    let env = &env;
                    move || writer(env, w, 6)
                })
            })
            .collect();
        // Stop the pruner even when a writer failed, then report.
        let outcomes: Vec<_> = writers.into_iter().map(|h| h.join()).collect();
        done.store(true, Ordering::SeqCst);
        let (prunes, deleted) = pruner.join().unwrap();
        let outcomes: Vec<_> = outcomes
            .into_iter()
            .map(|o| o.unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect();
        (outcomes, prunes, deleted)
    });
    assert!(prunes >= 2, "prune ran {prunes} times");
    let saved: usize = outcomes.iter().map(|o| o.1.len()).sum();
    let failed: u64 = outcomes.iter().map(|o| o.2).sum();
    assert!(
        saved >= 9,
        "{saved} snapshots saved, {failed} failed cleanly"
    );

    // With nothing else running, delete everything marked.
    env.ok(&["forget", "--keep-last", "2"]);
    let last = env.json(&["prune", "--keep-marked", "0"]);
    assert!(
        deleted + last["delete_packs"].as_u64().unwrap() > 0,
        "nothing was ever deleted"
    );
    env.ok(&["check", "--read-data"]);
    let remaining = env.json(&["snapshots"]);
    let remaining: Vec<&str> = remaining
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(remaining.len(), 6, "two per writer are kept");
    for (dir, saved, _) in &outcomes {
        for (id, record) in saved {
            if remaining.contains(&id.as_str()) {
                assert_restores(&env, id, dir, record);
            }
        }
    }
}

/// Waits until process `pid` is stopped (state `T` in /proc).
fn wait_until_stopped(pid: u32) {
    let started = Instant::now();
    loop {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        let state = stat.rsplit(')').next().unwrap().trim_start().chars().next();
        if state == Some('T') {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "process {pid} never stopped: {stat}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A snapshot streams a file whose chunks the repository holds only in
/// data a prune finds unused; it stops itself (SIGSTOP) mid-stream, prunes
/// run, and it resumes. Returns the finished process's output.
fn paused_snapshot(env: &Env, prunes: &[&[&str]]) -> (std::process::Output, Vec<u8>) {
    let source = env.path("src");
    fs::create_dir_all(&source).unwrap();
    let first = random_bytes(8 << 20, 5);
    let second = random_bytes(2 << 20, 6);
    write_file(&source.join("dump"), &first, 0o644);
    write_file(&env.path("tail"), &second, 0o644);
    let old = env.snapshot(&[&source])["id"].as_str().unwrap().to_string();
    env.ok(&["forget", &old]);

    let command = format!(
        "cat {}; kill -STOP $PPID; cat {}",
        source.join("dump").display(),
        env.path("tail").display()
    );
    let mut cmd = env.cmd(&[
        "--json",
        "snapshot",
        "--stdin-from-command",
        &command,
        "--stdin-name",
        "dump.sql",
    ]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().unwrap();
    wait_until_stopped(child.id());
    for args in prunes {
        env.ok(args);
    }
    let resumed = std::process::Command::new("kill")
        .args(["-CONT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(resumed.success());
    let mut whole = first;
    whole.extend_from_slice(&second);
    (child.wait_with_output().unwrap(), whole)
}

#[test]
fn a_snapshot_paused_across_a_marking_prune_saves_what_it_needs() {
    let env = Env::with_repo();
    let (out, whole) = paused_snapshot(&env, &[&["prune"]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = value["id"].as_str().unwrap().to_string();
    // The marked data goes now; the paused snapshot must not need it.
    let deleted = env.json(&["prune", "--keep-marked", "0"]);
    assert!(deleted["delete_packs"].as_u64().unwrap() > 0, "{deleted}");
    env.ok(&["check", "--read-data"]);
    let dumped = env.cmd(&["dump", &id, "/dump.sql"]).output().unwrap();
    assert!(
        dumped.status.success(),
        "{}",
        String::from_utf8_lossy(&dumped.stderr)
    );
    assert!(dumped.stdout == whole, "the dump differs");
}

#[test]
fn a_snapshot_paused_until_its_data_was_deleted_fails_cleanly() {
    let env = Env::with_repo();
    let (out, _) = paused_snapshot(&env, &[&["prune"], &["prune", "--keep-marked", "0"]]);
    let err = expect_failure(&out, 1);
    assert!(err.contains("run the snapshot again"), "{err}");
    assert!(env.json(&["snapshots"]).as_array().unwrap().is_empty());
    env.ok(&["check", "--read-data"]);
    // Running it again works.
    let source = env.path("src");
    env.snapshot(&[&source]);
    env.ok(&["check"]);
}

#[test]
fn two_snapshots_and_a_check_at_once_all_succeed() {
    let env = Env::with_repo();
    let sources: Vec<PathBuf> = (0..2u64)
        .map(|w| {
            let dir = env.path(&format!("src{w}"));
            std::fs::create_dir(&dir).unwrap();
            for i in 0..4 {
                write_file(
                    &dir.join(format!("f{i}")),
                    &random_bytes(3 << 20, w * 10 + i),
                    0o644,
                );
            }
            dir
        })
        .collect();
    // Something for the check to read while the snapshots run.
    env.snapshot(&[&sources[0]]);
    let barrier = std::sync::Barrier::new(3);
    let outputs: Vec<std::process::Output> = std::thread::scope(|s| {
        let mut handles = Vec::new();
        for src in &sources {
            let (env, barrier) = (&env, &barrier);
            handles.push(s.spawn(move || {
                barrier.wait();
                env.run(&["snapshot", src.to_str().unwrap()])
            }));
        }
        let (env, barrier) = (&env, &barrier);
        handles.push(s.spawn(move || {
            barrier.wait();
            env.run(&["check", "--read-data"])
        }));
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for out in &outputs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    env.ok(&["check", "--read-data"]);
    let snapshots = env.json(&["snapshots"]);
    assert_eq!(snapshots.as_array().unwrap().len(), 3);
    for src in &sources {
        let id = snapshots
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s["paths"][0].as_str() == src.to_str())
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let target = env.path(&format!("restore-{}", &id[..8]));
        env.ok(&["restore", &id, "--target", target.to_str().unwrap()]);
        assert_same_tree(src, &restored(&target, src));
    }
}
