//! forget, prune and locks, through the binary.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arca_backend::LocalBackend;
use arca_core::{Lock, LockMode, LockRecord, Owner, Repository};
use serde_json::Value;

use crate::util::*;

fn ids(value: &Value) -> Vec<String> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Takes a snapshot of `dir` recorded at `time` with extra args; returns its id.
fn snapshot_at(env: &Env, dir: &Path, time: &str, extra: &[&str]) -> String {
    let dir = dir.display().to_string();
    let mut args = vec!["snapshot", dir.as_str(), "--time", time];
    args.extend_from_slice(extra);
    env.json(&args)["id"].as_str().unwrap().to_string()
}

fn snapshot_ids(env: &Env) -> Vec<String> {
    let list = env.json(&["snapshots"]);
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn forget_applies_the_policy_per_group_and_explains_what_it_keeps() {
    let env = Env::with_repo();
    let source = env.path("src");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("positions.csv"), b"AAPL,100\n").unwrap();
    // Nightly snapshots of host db1 from 2026-10-25 to 2026-11-05 (the
    // 31st tagged month-end), plus two of host db2.
    let mut db1 = Vec::new();
    for day in 0..12 {
        let date = jiff::civil::date(2026, 10, 25)
            .checked_add(jiff::Span::new().days(day))
            .unwrap();
        let time = format!("{date} 23:30:00");
        let tags: &[&str] = if date.day() == 31 {
            &["--host", "db1", "--tag", "month-end"]
        } else {
            &["--host", "db1"]
        };
        db1.push((date, snapshot_at(&env, &source, &time, tags)));
    }
    let db2_old = snapshot_at(&env, &source, "2026-11-01 01:00:00", &["--host", "db2"]);
    let db2_new = snapshot_at(&env, &source, "2026-11-02 01:00:00", &["--host", "db2"]);

    let plan = env.json(&[
        "forget",
        "--keep-daily",
        "3",
        "--keep-weekly",
        "2",
        "--keep-tag",
        "month-end",
        "--dry-run",
    ]);
    assert_eq!(plan["dry_run"], true);
    let groups = plan["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "{plan}");
    let db1_group = groups
        .iter()
        .find(|g| g["key"]["hostname"] == "db1")
        .unwrap();
    let kept: Vec<&str> = db1_group["keep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    // Daily: Nov 5, 4, 3. Weekly (ISO weeks): Nov 5 (W45), Nov 1 (W44).
    // Tag: Oct 31.
    let id_of = |m: i8, d: i8| {
        db1.iter()
            .find(|(date, _)| date.month() == m && date.day() == d)
            .unwrap()
            .1
            .as_str()
    };
    let expected = vec![
        id_of(11, 5),
        id_of(11, 4),
        id_of(11, 3),
        id_of(11, 1),
        id_of(10, 31),
    ];
    assert_eq!(kept, expected, "{db1_group}");
    let newest = &db1_group["keep"][0]["reasons"];
    assert_eq!(
        newest,
        &serde_json::json!(["daily snapshot", "weekly snapshot"])
    );
    let tagged = &db1_group["keep"][4]["reasons"];
    assert!(
        tagged[0].as_str().unwrap().contains("month-end"),
        "{tagged}"
    );
    // db2 has two snapshots on different days: both kept as dailies.
    let db2_group = groups
        .iter()
        .find(|g| g["key"]["hostname"] == "db2")
        .unwrap();
    assert_eq!(db2_group["keep"].as_array().unwrap().len(), 2);
    assert_eq!(snapshot_ids(&env).len(), 14, "a dry run removes nothing");

    let done = env.json(&[
        "forget",
        "--keep-daily",
        "3",
        "--keep-weekly",
        "2",
        "--keep-tag",
        "month-end",
    ]);
    let removed = ids(&done["removed"]);
    assert_eq!(removed.len(), 7);
    let mut left = snapshot_ids(&env);
    left.sort();
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.extend([db2_old.clone(), db2_new.clone()]);
    want.sort();
    assert_eq!(left, want);

    // Without grouping, --keep-last 1 keeps one snapshot in all.
    let one = env.json(&["forget", "--keep-last", "1", "--group-by", "", "--dry-run"]);
    assert_eq!(one["groups"].as_array().unwrap().len(), 1);
    assert_eq!(ids(&one["removed"]).len(), 6);

    // By id, and an empty policy is refused.
    env.ok(&["forget", &db2_old[..10]]);
    assert!(!snapshot_ids(&env).contains(&db2_old));
    let refused = env.run(&["forget"]);
    let err = expect_failure(&refused, 2);
    assert!(err.contains("policy"), "{err}");
    assert_eq!(snapshot_ids(&env).len(), 6);
}

/// Sum of the sizes of every file below `dir`.
fn disk_usage(dir: &Path) -> u64 {
    files_below(dir)
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

#[test]
fn forgetting_a_history_and_pruning_leaves_about_one_snapshot_of_data() {
    let env = Env::with_repo();
    let source = env.path("src");
    fs::create_dir_all(&source).unwrap();
    let files = 20;
    for i in 0..files {
        write_file(
            &source.join(format!("f{i:02}")),
            &random_bytes(1 << 20, i),
            0o644,
        );
    }
    env.snapshot(&[&source]);
    // Nine more versions, each rewriting 10 % of the data.
    for v in 1..10u64 {
        for k in 0..2 {
            let i = (v * 2 + k) % files;
            write_file(
                &source.join(format!("f{i:02}")),
                &random_bytes(1 << 20, 1000 + v * 10 + k),
                0o644,
            );
        }
        env.snapshot(&[&source]);
    }
    let before = disk_usage(&env.repo);
    env.ok(&["forget", "--keep-last", "1"]);
    let pruned = env.json(&["prune", "--instant-delete"]);
    let after = disk_usage(&env.repo);
    assert_eq!(pruned["size_after"].as_u64().unwrap(), after, "{pruned}");
    assert!(pruned["bytes_freed"].as_u64().unwrap() > 0);

    let fresh = Env::with_repo();
    fresh.snapshot(&[&source]);
    let reference = disk_usage(&fresh.repo);
    assert!(
        after * 10 <= reference * 11,
        "pruned repository {after} bytes, fresh one {reference} (before prune {before})"
    );
    env.ok(&["check", "--read-data"]);
    let target = env.path("restore");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&source, &restored(&target, &source));
}

#[test]
fn two_phase_prune_marks_first_and_deletes_after_the_grace_period() {
    let env = Env::with_repo();
    let source = env.path("src");
    fs::create_dir_all(&source).unwrap();
    write_file(&source.join("a"), &random_bytes(3 << 20, 1), 0o644);
    let old = env.snapshot(&[&source])["id"].as_str().unwrap().to_string();
    write_file(&source.join("a"), &random_bytes(3 << 20, 2), 0o644);
    env.snapshot(&[&source]);
    env.ok(&["forget", &old]);

    let dry = env.json(&["prune", "--dry-run"]);
    assert!(dry["mark_packs"].as_u64().unwrap() >= 1, "{dry}");
    let packs = |env: &Env| disk_usage(&env.repo.join("data")) + disk_usage(&env.repo.join("tree"));
    let size = packs(&env);
    let marked = env.json(&["prune"]);
    assert_eq!(marked["delete_packs"], 0, "{marked}");
    assert!(
        marked["bytes_freed_later"].as_u64().unwrap() >= 3 << 20,
        "{marked}"
    );
    assert!(packs(&env) >= size, "the marking prune deleted data");
    // Within the grace period nothing goes.
    let again = env.json(&["prune"]);
    assert_eq!(again["delete_packs"], 0, "{again}");
    assert!(again["waiting_packs"].as_u64().unwrap() >= 1, "{again}");
    // Past it (a zero grace period), the marked packs go.
    let deleted = env.json(&["prune", "--keep-marked", "0"]);
    assert!(deleted["delete_packs"].as_u64().unwrap() >= 1, "{deleted}");
    assert!(packs(&env) + (3 << 20) <= size);
    env.ok(&["check", "--read-data"]);
    let target = env.path("restore");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&source, &restored(&target, &source));
}

fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

fn open_repo(env: &Env) -> Repository {
    Repository::open(Arc::new(LocalBackend::new(&env.repo)), PASSWORD.as_bytes()).unwrap()
}

#[test]
fn a_held_lock_stops_a_second_prune_but_never_a_snapshot() {
    let env = Env::with_repo();
    let source = env.path("src");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("a"), b"x").unwrap();
    let repo = open_repo(&env);
    let elsewhere = Owner {
        hostname: "backup-host-2".into(),
        username: "ops".into(),
    };
    let record = LockRecord::new(LockMode::Exclusive, "prune", &elsewhere);
    let held = Lock::acquire_as(&repo, record, Duration::ZERO, &|_| {}).unwrap();

    let refused = env.run(&["prune"]);
    let err = expect_failure(&refused, 11);
    assert!(
        err.contains("backup-host-2") && err.contains("prune"),
        "{err}"
    );
    // One line, ending with what to do about it.
    assert!(
        err.trim_end().ends_with(
            "; wait for it (--retry-lock DURATION), or run `arca unlock` if that process is gone"
        ) && err.trim_end().lines().count() == 1,
        "{err}"
    );
    expect_failure(&env.run(&["repair", "index"]), 11);
    // Snapshots and forget take no lock.
    env.snapshot(&[&source]);
    env.ok(&["forget", "--keep-last", "5"]);
    // unlock leaves a live lock of another host alone.
    assert_eq!(env.json(&["unlock"]).as_array().unwrap().len(), 0);

    // A prune told to wait gets the lock once the holder lets go.
    let mut waiting = env.cmd(&["prune", "--retry-lock", "5min"]);
    waiting.stderr(std::process::Stdio::piped());
    let mut child = waiting.spawn().unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert!(line.contains("waiting"), "{line}");
    drop(held);
    assert!(child.wait().unwrap().success());
}

#[test]
fn stale_locks_are_ignored_and_unlock_removes_them() {
    let env = Env::with_repo();
    let repo = open_repo(&env);
    let here = Owner {
        hostname: hostname(),
        username: "ops".into(),
    };
    // A lock of a process of this host that has exited.
    let dead_pid = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let mut record = LockRecord::new(LockMode::Exclusive, "prune", &here);
    record.pid = dead_pid;
    let lock = Lock::acquire_as(&repo, record, Duration::ZERO, &|_| {}).unwrap();
    std::mem::forget(lock); // left behind, as by a killed process

    env.ok(&["prune"]);
    let removed = env.json(&["unlock"]);
    assert_eq!(removed.as_array().unwrap().len(), 1, "{removed}");
    assert!(
        fs::read_dir(env.repo.join("locks"))
            .unwrap()
            .next()
            .is_none()
    );
}
