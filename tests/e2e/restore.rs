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

/// Every entry below `dir`, links not followed: (type, size, mtime, mode,
/// content or link target), by path. What a dry run must leave as it is.
fn listing(dir: &std::path::Path) -> std::collections::BTreeMap<std::path::PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        let meta = fs::symlink_metadata(&at).unwrap();
        let what = if meta.is_dir() {
            for entry in fs::read_dir(&at).unwrap() {
                stack.push(entry.unwrap().path());
            }
            "dir".to_string()
        } else if meta.file_type().is_symlink() {
            format!("link {}", fs::read_link(&at).unwrap().display())
        } else {
            let bytes = fs::read(&at).unwrap();
            format!(
                "file {:x}",
                bytes
                    .iter()
                    .fold(0u64, |h, b| { h.rotate_left(5) ^ u64::from(*b) })
            )
        };
        let stamp = format!(
            "{what} {} {}.{} {:o}",
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec(),
            meta.mode()
        );
        out.insert(at, stamp);
    }
    out
}

/// Paths whose type or content differ between two listings (times and
/// modes aside: a restore gives every entry its snapshot's metadata back),
/// or that are in only one.
fn changed(
    before: &std::collections::BTreeMap<std::path::PathBuf, String>,
    after: &std::collections::BTreeMap<std::path::PathBuf, String>,
) -> Vec<std::path::PathBuf> {
    // Type and content: "file HASH LEN", "link TARGET LEN", "dir".
    let content = |s: &String| {
        let words = if s.starts_with("dir") { 1 } else { 3 };
        s.split(' ').take(words).collect::<Vec<_>>().join(" ")
    };
    let mut out: Vec<std::path::PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|p| before.get(*p).map(content) != after.get(*p).map(content))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `restore --dry-run` changes nothing in the target (nor beyond a link in
/// it), and names exactly what a real restore then writes, overwrites and
/// deletes; `--delete` stays inside the snapshot's own directories in both.
#[test]
fn a_dry_run_changes_nothing_and_names_what_the_restore_then_changes() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::create_dir_all(src.join("e")).unwrap();
    write_file(&src.join("a"), b"a", 0o644);
    write_file(&src.join("d/b"), b"b", 0o644);
    write_file(&src.join("e/c"), b"c", 0o644);
    write_file(&src.join("big"), &random_bytes(4 * MAX_CHUNK, 7), 0o644);
    env.snapshot(&[&src]);
    let target = env.path("out");
    let t = target.to_str().unwrap();

    // Into a target that does not exist: everything is written, nothing made.
    let fresh = env.path("fresh");
    let dry = env.json(&[
        "restore",
        "latest",
        "--target",
        fresh.to_str().unwrap(),
        "-n",
    ]);
    assert_eq!(dry["overwrite"], 0, "{dry}");
    assert_eq!(dry["files"], 4, "{dry}");
    assert!(!fresh.exists(), "the target is not even created");

    env.ok(&["restore", "latest", "--target", t]);
    let root = restored(&target, &src);
    // A changed file, a few bytes flipped in a big one, a stray inside the
    // snapshot's directories, one beside them, and a link where a
    // directory is expected, pointing outside the target.
    write_file(&root.join("a"), b"changed", 0o644);
    let big = fs::OpenOptions::new()
        .write(true)
        .open(root.join("big"))
        .unwrap();
    big.write_all_at(b"flipped", 3 * MAX_CHUNK as u64 + 5)
        .unwrap();
    drop(big);
    write_file(&root.join("stray"), b"x", 0o644);
    write_file(&root.parent().unwrap().join("beside"), b"mine", 0o644);
    let outside = env.path("outside");
    fs::create_dir(&outside).unwrap();
    write_file(&outside.join("c"), b"not yours", 0o644);
    fs::remove_dir_all(root.join("e")).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("e")).unwrap();

    let before = listing(&target);
    let outside_before = listing(&outside);
    let dry = env.json(&["restore", "latest", "--target", t, "--delete", "--dry-run"]);
    crate::json_fields::assert_documented(&dry, "restore --dry-run");
    crate::json_fields::assert_documented(&dry["paths"][0], "restore --dry-run.paths[]");
    assert_eq!(listing(&target), before, "a dry run changes nothing");
    assert_eq!(listing(&outside), outside_before, "nor through a link");
    let human = env.ok(&["restore", "latest", "--target", t, "--delete", "-n"]);
    assert!(human.contains("dry run: would write"), "{human}");
    assert!(
        !human.lines().any(|l| l.starts_with("unchanged")),
        "unchanged paths only at -v: {human}"
    );
    let quiet = env.ok(&["-q", "restore", "latest", "--target", t, "--delete", "-n"]);
    assert!(quiet.is_empty(), "{quiet}");
    assert_eq!(listing(&target), before);

    let planned = |action: &str| -> Vec<std::path::PathBuf> {
        dry["paths"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["action"] == action)
            .map(|p| p["path"].as_str().unwrap().into())
            .collect()
    };
    assert_eq!(planned("delete"), [root.join("stray")], "{dry}");
    assert_eq!(
        planned("overwrite"),
        [root.join("a"), root.join("big"), root.join("e")]
    );
    assert_eq!(planned("write"), [root.join("e/c")]);
    let big_bytes = dry["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"] == root.join("big").to_str().unwrap())
        .unwrap()["bytes"]
        .as_u64()
        .unwrap();
    assert!(
        big_bytes > 0 && big_bytes < 4 * MAX_CHUNK as u64,
        "only the changed chunk: {big_bytes}"
    );
    assert!(planned("unchanged").contains(&root.join("d/b")));

    // The real restore changes exactly those paths (and what is below them).
    env.ok(&["restore", "latest", "--target", t, "--delete"]);
    let after = listing(&target);
    let touched: Vec<std::path::PathBuf> =
        [planned("write"), planned("overwrite"), planned("delete")].concat();
    let real = changed(&before, &after);
    for path in &real {
        assert!(
            touched.iter().any(|t| path.starts_with(t)),
            "{} changed but the dry run did not say so: {dry}",
            path.display()
        );
    }
    for path in &touched {
        assert!(
            real.contains(path),
            "{} was to change and did not",
            path.display()
        );
    }
    assert_eq!(
        fs::read(root.parent().unwrap().join("beside")).unwrap(),
        b"mine"
    );
    assert_eq!(listing(&outside), outside_before);
    assert_same_tree(&src, &root);
}
