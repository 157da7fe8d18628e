//! Repairs after a lost pack, and statistics.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use crate::util::*;

fn repository() -> (Env, PathBuf) {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1MiB"]);
    let src = env.path("src");
    fs::create_dir_all(src.join("db")).unwrap();
    for i in 0..6u64 {
        write_file(
            &src.join(format!("db/table{i}.db")),
            &random_bytes(2 << 20, 50 + i),
            0o644,
        );
    }
    write_file(&src.join("config.toml"), b"risk = 1\n", 0o600);
    env.snapshot(&[&src]);
    write_file(&src.join("config.toml"), b"risk = 2\n", 0o600);
    env.snapshot(&[&src]);
    (env, src)
}

#[test]
fn after_a_lost_pack_repair_leaves_a_repository_that_checks_and_restores() {
    let (env, src) = repository();
    let pack = files_below(&env.repo.join("data"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    fs::remove_file(&pack).unwrap();

    // Structure check names the pack and the files it hurts.
    let out = env.run(&["--json", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let name = pack.file_name().unwrap().to_str().unwrap();
    let missing = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["object"].as_str().unwrap().contains(name))
        .unwrap();
    assert!(
        missing["affects"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["path"].as_str().unwrap().contains("/db/table")),
        "{report}"
    );

    let index = env.json(&["repair", "index"]);
    assert!(index["removed_index_files"].as_u64().unwrap() >= 1);
    let repaired = env.json(&["repair", "snapshots", "--forget"]);
    let repaired = repaired.as_array().unwrap();
    assert_eq!(repaired.len(), 2, "both snapshots hold the lost data");
    // Repairs come in snapshot time order: the last is the latest source state.
    let latest = repaired.last().unwrap();
    let damaged: HashSet<String> = latest["damaged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert!(!damaged.is_empty());

    let out = env.run(&["--json", "check", "--read-data"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let snapshots = env.json(&["snapshots"]);
    assert!(snapshots.as_array().unwrap().iter().all(|s| {
        s["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "repaired")
    }));
    assert!(snapshots[0]["original"].is_null() || snapshots[0]["original"].is_string());

    let target = env.path("out");
    let copy = latest["repaired"].as_str().unwrap();
    env.ok(&["restore", copy, "--target", target.to_str().unwrap()]);
    let root = restored(&target, &src);
    let src_abs = src.canonicalize().unwrap();
    let mut intact = 0;
    for file in files_below(&src) {
        let rel = file.strip_prefix(&src).unwrap();
        let stored = src_abs.join(rel).display().to_string();
        if damaged.contains(&stored) {
            assert!(
                fs::metadata(root.join(rel)).unwrap().len() < fs::metadata(&file).unwrap().len()
            );
        } else {
            assert!(
                fs::read(root.join(rel)).unwrap() == fs::read(&file).unwrap(),
                "{stored}"
            );
            intact += 1;
        }
    }
    assert!(intact >= 4, "{intact} intact files");
}

#[test]
fn repair_dry_runs_change_nothing_and_stats_add_up() {
    let (env, _) = repository();
    let before = files_below(&env.repo).len();
    env.json(&["repair", "index", "--dry-run"]);
    let none = env.json(&["repair", "snapshots", "--dry-run"]);
    assert_eq!(none.as_array().unwrap().len(), 0, "nothing to repair");
    assert_eq!(files_below(&env.repo).len(), before);

    let stats = env.json(&["stats"]);
    let snaps = env.json(&["snapshots"]);
    let total: u64 = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["summary"]["total_bytes"].as_u64().unwrap())
        .sum();
    assert_eq!(stats["restore_size"].as_u64().unwrap(), total);
    assert_eq!(stats["snapshots"], 2);
    assert_eq!(stats["files"], 14);
    assert!(stats["dedup_ratio"].as_f64().unwrap() > 1.8, "{stats}");
    let one = env.json(&["stats", "latest"]);
    assert_eq!(one["snapshots"], 1);
    assert!(env.ok(&["stats"]).contains("dedup ratio"));
}
