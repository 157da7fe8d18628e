//! Restore options: point in time, subpaths, filters, overwrite modes,
//! resuming an interrupted restore, delete and verify.

use std::fs;
use std::os::unix::fs::FileExt;

use crate::util::*;

fn restore_json(env: &Env, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["restore"];
    all.extend_from_slice(args);
    env.json(&all)
}

#[test]
fn as_of_picks_the_newest_snapshot_at_or_before_the_time() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let s = src.to_str().unwrap();
    for (day, text) in [("01", "v1"), ("02", "v2"), ("03", "v3")] {
        write_file(&src.join("positions.csv"), text.as_bytes(), 0o644);
        env.ok(&[
            "snapshot",
            s,
            "--host",
            "db1",
            "--time",
            &format!("2026-03-{day}T14:30:00Z"),
        ]);
    }
    let pick = |time: &str| {
        let target = env.path(&format!("t-{}", time.replace([':', ' '], "_")));
        env.ok(&[
            "restore",
            "--as-of",
            time,
            "--target",
            target.to_str().unwrap(),
        ]);
        fs::read_to_string(restored(&target, &src).join("positions.csv")).unwrap()
    };
    assert_eq!(pick("2026-03-02T14:30:00Z"), "v2", "exactly at the time");
    assert_eq!(pick("2026-03-02T23:59:59Z"), "v2");
    assert_eq!(pick("2026-03-01T14:30:00.000000001Z"), "v1");
    assert_eq!(pick("2030-01-01T00:00:00Z"), "v3");
    let out = env.run(&[
        "restore",
        "--as-of",
        "2026-02-28T00:00:00Z",
        "--target",
        "/tmp/never-used",
    ]);
    assert!(expect_failure(&out, 1).contains("no snapshot"));

    // Another host makes the time ambiguous until a host is named.
    env.ok(&[
        "snapshot",
        s,
        "--host",
        "db2",
        "--time",
        "2026-03-02T20:00:00Z",
    ]);
    let out = env.run(&[
        "restore",
        "--as-of",
        "2026-03-02T21:00:00Z",
        "--target",
        "/tmp/never-used",
    ]);
    assert!(expect_failure(&out, 1).contains("--host"));
    let target = env.path("db1-at-21");
    env.ok(&[
        "restore",
        "--as-of",
        "2026-03-02T21:00:00Z",
        "--host",
        "db1",
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(
        fs::read_to_string(restored(&target, &src).join("positions.csv")).unwrap(),
        "v2"
    );
}

fn sample(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    fs::create_dir_all(src.join("db/wal")).unwrap();
    fs::create_dir_all(src.join("conf")).unwrap();
    write_file(&src.join("db/trades.db"), &random_bytes(24 << 20, 1), 0o644);
    write_file(
        &src.join("db/wal/0001.wal"),
        &random_bytes(200_000, 2),
        0o644,
    );
    write_file(&src.join("conf/app.toml"), b"limit = 5\n", 0o600);
    write_file(&src.join("README"), b"read me", 0o644);
    env.snapshot(&[&src]);
    src
}

#[test]
fn subpath_include_and_exclude_select_what_is_restored() {
    let env = Env::with_repo();
    let src = sample(&env);
    let s = src.canonicalize().unwrap();

    let target = env.path("sub");
    let spec = format!("latest:{}", s.join("db").display());
    env.ok(&["restore", &spec, "--target", target.to_str().unwrap()]);
    assert_same_tree(&src.join("db/wal"), &target.join("wal"));
    assert!(target.join("trades.db").is_file());
    assert!(!target.join("conf").exists());

    let target = env.path("filtered");
    let t = target.to_str().unwrap();
    env.ok(&[
        "restore",
        "latest",
        "--target",
        t,
        "--include",
        "*.toml",
        "--include",
        "README",
    ]);
    let root = restored(&target, &src);
    assert_eq!(
        fs::read(root.join("conf/app.toml")).unwrap(),
        b"limit = 5\n"
    );
    assert!(root.join("README").is_file());
    assert!(
        !root.join("db").exists(),
        "directories without included entries are not created"
    );

    let target = env.path("excluded");
    env.ok(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--exclude",
        "wal/",
    ]);
    let root = restored(&target, &src);
    assert!(root.join("db/trades.db").is_file());
    assert!(!root.join("db/wal").exists());
}

#[test]
fn a_rerun_writes_only_what_is_missing_or_different() {
    let env = Env::with_repo();
    let src = sample(&env);
    let target = env.path("out");
    let t = target.to_str().unwrap();
    let first = restore_json(&env, &["latest", "--target", t, "--verify"]);
    assert_eq!(first["verified"], 4);
    let total = first["bytes_written"].as_u64().unwrap();
    assert_eq!(total, first["bytes"].as_u64().unwrap());

    // Unchanged target: nothing to write.
    let again = restore_json(&env, &["latest", "--target", t]);
    assert_eq!(again["bytes_written"], 0);
    assert_eq!(again["files_unchanged"], 4);

    // Damage: one byte changed in the big file, one file gone, one truncated.
    let root = restored(&target, &src);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(root.join("db/trades.db"))
        .unwrap();
    f.write_all_at(b"X", 12345).unwrap();
    drop(f);
    fs::remove_file(root.join("README")).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(root.join("db/wal/0001.wal"))
        .unwrap()
        .set_len(10)
        .unwrap();
    let repair = restore_json(&env, &["latest", "--target", t, "--verify"]);
    let written = repair["bytes_written"].as_u64().unwrap();
    // One chunk around the changed byte, plus the two other files.
    assert!(
        written <= 200_007 + MAX_CHUNK as u64,
        "rewrote {written} of {total} bytes"
    );
    assert!(written < total / 2, "rewrote {written} of {total} bytes");
    assert!(
        written >= 200_000 + 7,
        "the missing and truncated files are written: {written}"
    );
    assert_eq!(repair["files_unchanged"], 1, "conf/app.toml");
    assert_same_tree(&src, &root);

    // never: a changed file is left alone; always: everything is rewritten.
    write_file(&root.join("README"), b"local edit", 0o644);
    env.ok(&["restore", "latest", "--target", t, "--overwrite", "never"]);
    assert_eq!(fs::read(root.join("README")).unwrap(), b"local edit");
    let all = restore_json(&env, &["latest", "--target", t, "--overwrite", "always"]);
    assert_eq!(all["bytes_written"].as_u64().unwrap(), total);
    assert_same_tree(&src, &root);
}

#[test]
fn delete_removes_what_the_snapshot_does_not_have() {
    let env = Env::with_repo();
    let src = sample(&env);
    let target = env.path("out");
    let t = target.to_str().unwrap();
    env.ok(&["restore", "latest", "--target", t]);
    let root = restored(&target, &src);
    write_file(&root.join("db/stray.tmp"), b"x", 0o644);
    fs::create_dir(root.join("conf/old")).unwrap();
    env.ok(&["restore", "latest", "--target", t]);
    assert!(root.join("db/stray.tmp").exists(), "kept without --delete");
    let result = restore_json(&env, &["latest", "--target", t, "--delete"]);
    assert_eq!(result["deleted"], 2);
    assert_same_tree(&src, &root);
}

/// `--delete` acts inside the snapshot's own directories only: what sits
/// beside them in the target (in the directories the snapshot holds just to
/// reach its paths, up to the target itself) is left alone.
#[test]
fn delete_leaves_what_is_beside_the_snapshots_directories_alone() {
    let env = Env::with_repo();
    let src = sample(&env);
    let target = env.path("out");
    let t = target.to_str().unwrap();
    env.ok(&["restore", "latest", "--target", t]);
    let root = restored(&target, &src);
    let beside_root = target.join("notes.txt");
    let beside_src = root.parent().unwrap().join("sibling.txt");
    write_file(&beside_root, b"mine", 0o644);
    write_file(&beside_src, b"mine too", 0o644);
    write_file(&root.join("db/stray.tmp"), b"x", 0o644);
    let result = restore_json(&env, &["latest", "--target", t, "--delete"]);
    assert_eq!(result["deleted"], 1, "only the stray inside: {result}");
    assert!(!root.join("db/stray.tmp").exists());
    assert_eq!(fs::read(&beside_root).unwrap(), b"mine");
    assert_eq!(fs::read(&beside_src).unwrap(), b"mine too");
    assert_same_tree(&src, &root);
}

/// Kills a restore once it has started writing, then re-runs it: the re-run
/// completes the tree and does not rewrite what the first run finished.
#[test]
fn a_killed_restore_completes_on_rerun() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    for i in 0..12 {
        write_file(
            &src.join(format!("part{i:02}.bin")),
            &random_bytes(8 << 20, 100 + i),
            0o644,
        );
    }
    env.snapshot(&[&src]);
    let target = env.path("out");
    let t = target.to_str().unwrap();
    let mut child = env
        .cmd(&["restore", "latest", "--target", t])
        .spawn()
        .unwrap();
    let root = restored(&target, &src);
    // Wait (bounded) until a third of the data is on disk, then kill.
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            break;
        }
        // Bytes on disk so far (the files exist from the start as holes).
        let on_disk: u64 = fs::read_dir(&root)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| {
                        use std::os::unix::fs::MetadataExt;
                        m.blocks() * 512
                    })
                    .sum()
            })
            .unwrap_or(0);
        if on_disk >= 32 << 20 {
            child.kill().unwrap();
            child.wait().unwrap();
            break;
        }
        assert!(started.elapsed().as_secs() < 60, "restore made no progress");
        std::thread::yield_now();
    }
    let rerun = restore_json(&env, &["latest", "--target", t]);
    assert!(
        rerun["bytes_written"].as_u64().unwrap() < rerun["bytes"].as_u64().unwrap(),
        "{rerun}"
    );
    assert_same_tree(&src, &root);
}
