//! What goes into a snapshot: parents, excludes, dry runs and sources that
//! misbehave.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::util::*;

fn listed(env: &Env, snapshot: &str) -> Vec<String> {
    env.ok(&["ls", snapshot])
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn excludes_follow_gitignore_rules() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir_all(src.join("logs")).unwrap();
    fs::create_dir_all(src.join("cache/deep")).unwrap();
    fs::create_dir_all(src.join("scratch")).unwrap();
    write_file(&src.join("trades.db"), b"db", 0o644);
    write_file(&src.join("logs/a.log"), b"log", 0o644);
    write_file(&src.join("logs/keep.log"), b"keep", 0o644);
    write_file(&src.join("cache/deep/x"), b"x", 0o644);
    write_file(&src.join("scratch/.nobackup"), b"", 0o644);
    write_file(&src.join("scratch/tmp.bin"), b"t", 0o644);
    write_file(&src.join("big.bin"), &vec![1; 5000], 0o644);
    let patterns = env.path("patterns");
    fs::write(&patterns, "# caches are rebuilt\ncache/\n").unwrap();
    let src_arg = src.to_str().unwrap();
    let result = env.json(&[
        "snapshot",
        src_arg,
        "--exclude",
        "*.log",
        "--exclude",
        "!keep.log",
        "--exclude-file",
        patterns.to_str().unwrap(),
        "--exclude-if-present",
        ".nobackup",
        "--exclude-larger-than",
        "4KiB",
    ]);
    let names = listed(&env, result["id"].as_str().unwrap());
    let has = |suffix: &str| names.iter().any(|n| n.ends_with(suffix));
    assert!(
        has("/src/trades.db") && has("/src/logs/keep.log"),
        "{names:?}"
    );
    for gone in [
        "/src/logs/a.log",
        "/src/cache",
        "/src/scratch",
        "/src/big.bin",
    ] {
        assert!(!has(gone), "{gone} should be excluded: {names:?}");
    }
}

#[test]
fn dry_run_reports_but_stores_nothing() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    write_file(&src.join("f"), &random_bytes(100_000, 1), 0o644);
    let before = files_below(&env.repo).len();
    let result = env.json(&["snapshot", src.to_str().unwrap(), "--dry-run"]);
    assert_eq!(result["dry_run"], true);
    assert!(result["id"].is_null());
    assert!(result["summary"]["bytes_added"].as_u64().unwrap() >= 100_000);
    assert_eq!(
        files_below(&env.repo).len(),
        before,
        "a dry run wrote to the repository"
    );
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 0);
}

#[test]
fn explicit_parent_and_force() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    write_file(&src.join("f"), b"content", 0o644);
    let first = env.snapshot(&[&src]);
    let src_arg = src.to_str().unwrap();
    let forced = env.json(&["snapshot", src_arg, "--force"]);
    assert_eq!(forced["summary"]["bytes_read"], 7);
    assert!(forced["parent"].is_null());
    let with = env.json(&[
        "snapshot",
        src_arg,
        "--parent",
        &first["short_id"].as_str().unwrap()[..6],
    ]);
    assert_eq!(with["parent"], first["id"]);
    assert_eq!(with["summary"]["bytes_read"], 0);
}

#[test]
fn an_unreadable_file_is_named_and_gives_exit_3_with_the_snapshot_saved() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    write_file(&src.join("readable"), b"fine", 0o644);
    let secret = src.join("locked.db");
    write_file(&secret, b"cannot read me", 0o000);
    let out = without_dac_override(&env, &["snapshot", src.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(secret.to_str().unwrap()), "{stderr}");
    assert!(!stderr.contains("panicked"));
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    let names = listed(&env, "latest");
    assert!(
        names.iter().any(|n| n.ends_with("/src/readable")),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.ends_with("/src/locked.db")),
        "{names:?}"
    );
}

#[test]
fn a_missing_source_path_is_left_out_with_a_warning_and_exit_3() {
    let env = Env::with_repo();
    let present = env.path("present");
    fs::create_dir(&present).unwrap();
    write_file(&present.join("kept.txt"), b"kept", 0o644);
    let missing = env.path("gone");
    let out = env.run(&[
        "-q",
        "snapshot",
        present.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    let err = expect_failure(&out, 3);
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    // The snapshot was saved with the path that exists.
    let list = env.json(&["snapshots"]);
    let snaps = list.as_array().unwrap();
    assert_eq!(snaps.len(), 1, "{list}");
    assert_eq!(
        snaps[0]["paths"],
        serde_json::json!([present.to_str().unwrap()])
    );
    assert_eq!(snaps[0]["summary"]["errors"], 1, "{list}");
    let file = present.join("kept.txt");
    assert_eq!(env.ok(&["dump", "latest", file.to_str().unwrap()]), "kept");

    // When no path exists there is nothing to save: exit 1, no snapshot.
    let other = env.path("also-gone");
    let out = env.run(&[
        "snapshot",
        missing.to_str().unwrap(),
        other.to_str().unwrap(),
    ]);
    let err = expect_failure(&out, 1);
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
}

/// `-v` lists every file a snapshot stores as new or changed, a dry run
/// included, so excludes can be checked before they are trusted; `--json`
/// keeps stdout one document.
#[test]
fn verbose_snapshots_list_new_and_changed_files() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir_all(src.join("logs")).unwrap();
    write_file(&src.join("trades.db"), b"one", 0o644);
    write_file(&src.join("logs/app.log"), b"log", 0o644);
    let s = src.to_str().unwrap();
    let lines = |out: String| -> Vec<String> {
        out.lines()
            .filter(|l| {
                l.starts_with("new ") || l.starts_with("changed ") || l.starts_with("unchanged ")
            })
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let dry = lines(env.ok(&["-v", "snapshot", s, "--dry-run", "--exclude", "*.log"]));
    assert_eq!(
        dry,
        [format!("new {s}/trades.db")],
        "the excluded log is not listed"
    );
    assert!(env.json(&["snapshots"]).as_array().unwrap().is_empty());

    env.ok(&["snapshot", s]);
    write_file(&src.join("trades.db"), b"two", 0o644);
    write_file(&src.join("positions.csv"), b"p", 0o644);
    let mut listed = lines(env.ok(&["-v", "snapshot", s]));
    listed.sort();
    assert_eq!(
        listed,
        [
            format!("changed {s}/trades.db"),
            format!("new {s}/positions.csv")
        ]
    );
    let all = lines(env.ok(&["-vv", "snapshot", s]));
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all.iter().all(|l| l.starts_with("unchanged ")), "{all:?}");
    let json = env.ok(&["-v", "--json", "snapshot", s]);
    serde_json::from_str::<serde_json::Value>(&json).expect("stdout is one JSON document");
}

/// The list `-v` prints is a side show: a reader that goes away (`| head`)
/// must not stop the backup, which is saved all the same.
#[test]
fn a_closed_pipe_under_verbose_listing_does_not_stop_the_snapshot() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    for i in 0..300 {
        write_file(&src.join(format!("f{i}")), format!("{i}").as_bytes(), 0o644);
    }
    let mut child = env
        .cmd(&["-v", "snapshot", src.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The reader is gone before the first file is listed.
    drop(child.stdout.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let snapshots = env.json(&["snapshots"]);
    assert_eq!(snapshots.as_array().unwrap().len(), 1, "{snapshots}");
    assert_eq!(snapshots[0]["summary"]["files_new"], 300);
}
