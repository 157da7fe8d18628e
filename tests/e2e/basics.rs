//! The first path a user walks: init, snapshot, snapshots, ls, restore.

use std::fs;
use std::os::unix::fs::symlink;

use filetime::FileTime;

use crate::util::*;

/// A tree with the edge cases of chunking and metadata.
fn generate_tree(root: &std::path::Path) {
    fs::create_dir_all(root.join("nested/deeper/deepest")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    write_file(&root.join("zero.bin"), b"", 0o644);
    write_file(&root.join("one.bin"), b"x", 0o600);
    write_file(
        &root.join("min-chunk.bin"),
        &random_bytes(MIN_CHUNK, 1),
        0o644,
    );
    write_file(
        &root.join("max-chunk.bin"),
        &random_bytes(MAX_CHUNK, 2),
        0o644,
    );
    write_file(
        &root.join("max-chunk-plus-one.bin"),
        &random_bytes(MAX_CHUNK + 1, 3),
        0o755,
    );
    write_file(
        &root.join("nested/deeper/random-50m.bin"),
        &random_bytes(50 << 20, 4),
        0o444,
    );
    write_file(
        &root.join("nested/config.toml"),
        b"[trading]\nvenue = \"X\"\n",
        0o600,
    );
    write_file(
        &root.join("nested/deeper/deepest/run.sh"),
        b"#!/bin/sh\necho hi\n",
        0o755,
    );
    write_file(&root.join("zeros.bin"), &vec![0; 3 << 20], 0o644);
    symlink("nested/config.toml", root.join("link-to-config")).unwrap();
    symlink("/does/not/exist", root.join("dangling")).unwrap();
    symlink("deeper", root.join("nested/dir-link")).unwrap();
    // Nanosecond mtimes, including one before 1970.
    let t = FileTime::from_unix_time(1_700_000_000, 123_456_789);
    filetime::set_file_mtime(root.join("one.bin"), t).unwrap();
    let old = FileTime::from_unix_time(-86_400 * 400, 987_654_321);
    filetime::set_file_mtime(root.join("zero.bin"), old).unwrap();
    filetime::set_symlink_file_times(root.join("dangling"), t, t).unwrap();
    filetime::set_file_mtime(root.join("nested/deeper"), t).unwrap();
}

#[test]
fn snapshot_and_restore_a_generated_tree_exactly() {
    let env = Env::with_repo();
    let source = env.path("source");
    generate_tree(&source);

    let result = env.snapshot(&[&source]);
    let summary = &result["summary"];
    assert_eq!(summary["total_files"], 9);
    assert_eq!(result["warnings"].as_array().unwrap().len(), 0);

    let target = env.path("restore");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&source, &restored(&target, &source));
}

#[test]
fn restore_leaves_holes_for_zero_chunks() {
    use std::os::unix::fs::MetadataExt;
    let env = Env::with_repo();
    let source = env.path("source");
    fs::create_dir(&source).unwrap();
    write_file(&source.join("sparse.bin"), &vec![0; 16 << 20], 0o644);
    env.snapshot(&[&source]);
    let target = env.path("restore");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    let file = restored(&target, &source).join("sparse.bin");
    let meta = fs::metadata(&file).unwrap();
    assert_eq!(meta.len(), 16 << 20);
    assert!(fs::read(&file).unwrap().iter().all(|&b| b == 0));
    assert!(
        meta.blocks() * 512 < 1 << 20,
        "{} blocks allocated",
        meta.blocks()
    );
}

#[test]
fn several_paths_and_a_single_file_are_restored_under_their_full_paths() {
    let env = Env::with_repo();
    let a = env.path("a");
    let b = env.path("b.txt");
    fs::create_dir(&a).unwrap();
    write_file(&a.join("inside"), b"in a", 0o640);
    write_file(&b, b"file b", 0o600);
    let result = env.snapshot(&[&a, &b]);
    let paths: Vec<&str> = result["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), 2);
    let target = env.path("out");
    env.ok(&[
        "restore",
        result["short_id"].as_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_same_tree(&a, &restored(&target, &a));
    assert_same_tree(&b, &restored(&target, &b));
}

#[test]
fn snapshots_lists_json_and_table_and_resolves_ids() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    write_file(&src.join("f"), b"one", 0o644);
    let src_arg = src.to_str().unwrap();
    env.ok(&[
        "snapshot",
        src_arg,
        "--tag",
        "nightly",
        "--host",
        "db1",
        "--time",
        "2026-01-02T03:04:05Z",
    ]);
    write_file(&src.join("f"), b"two", 0o644);
    env.ok(&[
        "snapshot",
        src_arg,
        "--time",
        "2026-01-03T03:04:05Z",
        "--description",
        "after change",
    ]);

    let list = env.json(&["snapshots"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["hostname"], "db1");
    assert_eq!(list[0]["tags"][0], "nightly");
    assert_eq!(list[0]["time"], "2026-01-02T03:04:05+00:00");
    assert_eq!(list[1]["description"], "after change");
    for field in [
        "id",
        "short_id",
        "tree",
        "paths",
        "username",
        "program_version",
        "summary",
    ] {
        assert!(!list[0][field].is_null(), "missing {field}");
    }
    assert_eq!(
        env.json(&["snapshots", "--tag", "nightly"])
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        env.json(&["snapshots", "--host", "nobody"])
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let table = env.ok(&["snapshots"]);
    assert!(
        table.contains(list[0]["short_id"].as_str().unwrap()),
        "{table}"
    );
    assert!(table.contains("2 snapshots"), "{table}");

    // latest is the newest by time; a prefix resolves; ls shows the file.
    let target = env.path("latest");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(fs::read(restored(&target, &src).join("f")).unwrap(), b"two");
    let first_id = list[0]["id"].as_str().unwrap();
    let listing = env.ok(&["ls", &first_id[..12]]);
    assert!(listing.lines().any(|l| l.ends_with("/src/f")), "{listing}");
    let long = env.ok(&["ls", "latest", src_arg, "--long"]);
    assert!(
        long.lines()
            .any(|l| l.starts_with("-rw-r--r--") && l.ends_with("/src/f")),
        "{long}"
    );
    let lines: Vec<serde_json::Value> = env
        .ok(&["--json", "ls", "latest", src_arg])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "dir");
    assert_eq!(lines[1]["size"], 3);

    let missing = env.run(&["restore", "ffffffffffff", "--target", "/tmp/never"]);
    assert!(expect_failure(&missing, 1).contains("no snapshot ffffffffffff"));
}

#[test]
fn password_sources_file_and_command() {
    let env = Env::new();
    let pw = env.path("pw");
    fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let out = env
        .cmd(&["init"])
        .env_remove("ARCA_PASSWORD")
        .env("ARCA_PASSWORD_FILE", &pw)
        .output()
        .unwrap();
    assert!(out.status.success());
    let cmd = format!("echo '{PASSWORD}'");
    let out = env
        .cmd(&["snapshots", "--password-command", &cmd])
        .env_remove("ARCA_PASSWORD")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same password from the environment opens it too.
    env.ok(&["snapshots"]);
    // No password source and no terminal: a clear error, not a hang.
    let out = env
        .cmd(&["snapshots"])
        .env_remove("ARCA_PASSWORD")
        .output()
        .unwrap();
    assert!(expect_failure(&out, 1).contains("no password given"));
}

#[test]
fn exit_codes_and_one_line_errors() {
    let env = Env::with_repo();
    let out = env
        .cmd(&["snapshots"])
        .env("ARCA_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(expect_failure(&out, 12).contains("wrong password"));

    let out = env
        .cmd(&["snapshots"])
        .env("ARCA_REPOSITORY", env.path("nothing-here"))
        .output()
        .unwrap();
    assert!(expect_failure(&out, 10).contains("no repository"));

    let missing = env.path("no-such-source");
    let out = env.run(&["snapshot", missing.to_str().unwrap()]);
    assert!(expect_failure(&out, 1).contains(missing.to_str().unwrap()));

    let out = env.run(&["snapshot"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
    let out = env.run(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
}

#[test]
fn init_refuses_a_non_empty_directory_and_touches_nothing() {
    let env = Env::new();
    fs::create_dir(&env.repo).unwrap();
    write_file(&env.repo.join("precious.db"), b"do not touch", 0o644);
    let out = env.run(&["init"]);
    assert!(expect_failure(&out, 1).contains("not empty"));
    let names: Vec<_> = fs::read_dir(&env.repo)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("precious.db")]);
    assert_eq!(
        fs::read(env.repo.join("precious.db")).unwrap(),
        b"do not touch"
    );

    // A second init over an existing repository is refused as well.
    let env = Env::with_repo();
    let out = env.run(&["init"]);
    expect_failure(&out, 1);
}

#[test]
fn repository_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    write_file(&src.join("f"), b"data", 0o644);
    env.snapshot(&[&src]);
    for file in files_below(&env.repo) {
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
        let dir_mode = fs::metadata(file.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700, "{}", file.parent().unwrap().display());
    }
}

#[test]
fn restore_replaces_existing_entries_without_writing_through_links() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    write_file(&src.join("f"), b"from the snapshot", 0o644);
    write_file(&src.join("g"), b"second", 0o644);
    env.snapshot(&[&src]);

    let target = env.path("out");
    let dest = restored(&target, &src);
    fs::create_dir_all(&dest).unwrap();
    // An outside file hard-linked into the target, and a symlink where a
    // file will go: neither outside file may change.
    let outside = env.path("outside");
    write_file(&outside, b"outside, keep me", 0o644);
    fs::hard_link(&outside, dest.join("f")).unwrap();
    let outside2 = env.path("outside2");
    write_file(&outside2, b"also keep me", 0o644);
    symlink(&outside2, dest.join("g")).unwrap();

    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &dest);
    assert_eq!(fs::read(&outside).unwrap(), b"outside, keep me");
    assert_eq!(fs::read(&outside2).unwrap(), b"also keep me");
}

/// `-q` leaves only errors and warnings: a command that succeeds without
/// any prints nothing at all, so cron mails nothing. Every command in
/// `arca --help` is run; those whose output is what was asked for (the
/// listings, `dump`, a completion script, a manual page on stdout, the
/// version) print it and nothing else: stderr stays empty.
#[test]
fn quiet_commands_print_nothing_on_success() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    write_file(&src.join("a.txt"), b"alpha", 0o644);
    let file = src.join("a.txt");
    let file = file.to_str().unwrap();
    let src = src.to_str().unwrap();
    let target = env.path("target");
    let other = env.path("other");
    let other_repo = other.to_str().unwrap();
    let man = env.path("man");
    let profile = env.path("nightly.toml");
    fs::write(
        &profile,
        format!(
            "repository = {:?}\n[snapshot]\nsources = [{src:?}]\n[forget]\nkeep_last = 2\n[check]\nread_data_subset = \"1/1\"\n",
            env.address()
        ),
    )
    .unwrap();
    let covered = std::cell::RefCell::new(std::collections::BTreeSet::new());
    // Runs `arca -q ARGS`: it must succeed with nothing on stderr, and
    // with nothing on stdout unless it is a listing.
    let run = |args: &[&str], extra: &[(&str, &str)], listing: bool| {
        let mut argv = vec!["-q"];
        argv.extend_from_slice(args);
        let out = env.cmd(&argv).envs(extra.iter().copied()).output().unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success() && (listing || stdout.is_empty()) && stderr.is_empty(),
            "arca -q {args:?}: {:?}\nstdout: {stdout}\nstderr: {stderr}",
            out.status
        );
        let command = args
            .iter()
            .find(|a| !a.starts_with('-') && !a.contains('/'));
        covered.borrow_mut().insert(command.unwrap().to_string());
    };
    let quiet = |args: &[&str], extra: &[(&str, &str)]| run(args, extra, false);
    let listing = |args: &[&str]| run(args, &[], true);
    quiet(&["init"], &[]);
    quiet(&["snapshot", src], &[]);
    quiet(&["snapshot", src, "--tag", "second"], &[]);
    quiet(&["snapshot", src, "--dry-run"], &[]);
    quiet(
        &["restore", "latest", "--target", target.to_str().unwrap()],
        &[],
    );
    let segment = env.path("000000010000000000000001");
    write_file(&segment, b"a WAL segment", 0o600);
    quiet(&["pg", "archive-wal", segment.to_str().unwrap()], &[]);
    quiet(&["pg", "archive-wal", segment.to_str().unwrap()], &[]);
    quiet(
        &[
            "pg",
            "restore-wal",
            "000000010000000000000001",
            env.path("restored-segment").to_str().unwrap(),
        ],
        &[],
    );
    quiet(&["check", "--read-data"], &[]);
    quiet(&["drill"], &[]);
    quiet(&["tag", "latest", "--add", "extra"], &[]);
    quiet(&["tag", "latest", "--remove", "extra"], &[]);
    quiet(&["tag", "latest", "--set", "only"], &[]);
    quiet(&["forget", "--keep-last", "1", "--dry-run"], &[]);
    quiet(&["forget", "--keep-last", "1"], &[]);
    quiet(&["prune", "--dry-run"], &[]);
    quiet(&["prune", "--keep-marked", "0"], &[]);
    quiet(&["repair", "index"], &[]);
    quiet(&["repair", "packs"], &[]);
    quiet(&["repair", "snapshots"], &[]);
    quiet(&["unlock"], &[]);
    quiet(&["key", "add"], &[("ARCA_NEW_PASSWORD", "second password")]);
    let keys = env.json(&["key", "list"]);
    let added = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    quiet(&["key", "remove", &added], &[]);
    quiet(&["-r", other_repo, "init"], &[]);
    quiet(
        &["copy", "--to", other_repo],
        &[("ARCA_TO_PASSWORD", PASSWORD)],
    );
    quiet(&["status", "--max-age", "1d"], &[]);
    let db = env.path("orders.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("CREATE TABLE t (n INTEGER)")
        .unwrap();
    quiet(&["watch", "--once", db.to_str().unwrap()], &[]);
    quiet(&["--config", profile.to_str().unwrap(), "run"], &[]);
    quiet(&["man", man.to_str().unwrap()], &[]);
    listing(&["snapshots"]);
    listing(&["ls", "latest"]);
    listing(&["find", "a.txt"]);
    listing(&["diff", "latest", "latest"]);
    listing(&["dump", "latest", file]);
    listing(&["stats"]);
    listing(&["key", "list"]);
    listing(&["completions", "bash"]);
    listing(&["man"]);
    listing(&["version"]);
    quiet(
        &["rewrite", "latest", "--exclude", "a.txt", "--dry-run"],
        &[],
    );
    quiet(
        &["rewrite", "latest", "--exclude", "a.txt", "--forget"],
        &[],
    );
    quiet(&["rewrite", "--exclude", "*.absent"], &[]);
    // mount runs until a signal and needs FUSE: mount.rs runs it with -q
    // (mount_prints_nothing_with_q).
    covered.borrow_mut().insert("mount".to_string());
    // Last: the repository's password changes.
    quiet(
        &["key", "passwd"],
        &[("ARCA_NEW_PASSWORD", "third password")],
    );

    let help = env.ok(&["--help"]);
    let commands: std::collections::BTreeSet<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect();
    assert!(commands.len() > 20, "{help}");
    let missed: Vec<_> = commands.difference(&covered.borrow()).cloned().collect();
    assert!(missed.is_empty(), "commands not run with -q: {missed:?}");
}

#[test]
fn snapshots_shows_the_newest_of_each_group_and_lists_group_by_group() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    let src = src.to_str().unwrap();
    for (n, host) in [(0, "db1"), (1, "db1"), (2, "db2"), (3, "db1"), (4, "db2")] {
        write_file(&env.path("src/f"), format!("version {n}").as_bytes(), 0o644);
        env.ok(&["snapshot", src, "--host", host]);
    }
    let all = env.json(&["snapshots"]);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 5);
    let latest = env.json(&["snapshots", "--latest", "1"]);
    let latest: Vec<&str> = latest
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = [3, 4]
        .iter()
        .map(|&i| all[i]["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        latest, expected,
        "the newest of db1 and of db2, oldest first"
    );

    let grouped = env.json(&["snapshots", "--group-by", "host", "--latest", "2"]);
    let grouped = grouped.as_array().unwrap();
    assert_eq!(grouped.len(), 2, "{grouped:?}");
    assert_eq!(grouped[0]["key"]["hostname"], "db1");
    crate::json_fields::assert_documented(&grouped[0], "snapshots --group-by");
    let db1: Vec<&str> = grouped[0]["snapshots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    let expected: Vec<&str> = [1, 3]
        .iter()
        .map(|&i| all[i]["id"].as_str().unwrap())
        .collect();
    assert_eq!(db1, expected);

    // The table has a column of what each snapshot added.
    let table = env.ok(&["snapshots"]);
    assert!(table.lines().next().unwrap().contains("Added"), "{table}");
    let err = expect_failure(&env.run(&["snapshots", "--latest", "0"]), 2);
    assert!(err.contains("--latest"), "{err}");
}

/// Only a listing ends when its reader goes away; a command that acts
/// (here forget, whose table comes before the removal) still does its work.
#[test]
fn a_closed_pipe_ends_a_listing_but_not_a_forget() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    for n in 0..3 {
        write_file(&src.join("f"), format!("version {n}").as_bytes(), 0o644);
        env.ok(&["snapshot", src.to_str().unwrap()]);
    }
    let mut child = env
        .cmd(&["forget", "--keep-last", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    assert!(child.wait().unwrap().success());
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
}

/// `arca man | head` and the like: a command that only prints ends with
/// success, and says nothing, when its reader has gone away.
#[test]
fn printing_commands_end_quietly_on_a_closed_pipe() {
    let env = Env::new();
    for args in [&["man"][..], &["completions", "bash"], &["version"]] {
        // The reader is gone before the command starts.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = env
            .cmd(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "arca {args:?}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
