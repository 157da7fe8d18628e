//! Browsing history: find, diff, dump.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;

use crate::util::*;

fn two_snapshots(env: &Env) -> (std::path::PathBuf, Value, Value) {
    let src = env.path("src");
    fs::create_dir_all(src.join("logs")).unwrap();
    fs::create_dir_all(src.join("old")).unwrap();
    write_file(&src.join("orders.csv"), b"id,qty\n1,100\n", 0o644);
    write_file(&src.join("logs/fills.log"), b"fill 1\n", 0o644);
    write_file(&src.join("old/gone.txt"), b"bye", 0o644);
    write_file(&src.join("big.bin"), &random_bytes(3 << 20, 4), 0o644);
    let first = env.snapshot(&[&src]);
    write_file(&src.join("orders.csv"), b"id,qty\n1,100\n2,50\n", 0o644);
    fs::set_permissions(
        src.join("logs/fills.log"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::remove_dir_all(src.join("old")).unwrap();
    write_file(&src.join("logs/new.log"), b"new", 0o644);
    let second = env.snapshot(&[&src]);
    (src, first, second)
}

#[test]
fn diff_names_added_removed_modified_and_metadata_changes() {
    let env = Env::with_repo();
    let (src, first, second) = two_snapshots(&env);
    let a = first["id"].as_str().unwrap();
    let b = second["id"].as_str().unwrap();
    let result = env.json(&["diff", a, b]);
    let src = src.canonicalize().unwrap();
    let change_of = |rel: &str| {
        let path = src.join(rel).display().to_string();
        result["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["path"] == path.as_str())
            .map(|c| c["change"].as_str().unwrap().to_string())
    };
    assert_eq!(change_of("orders.csv").as_deref(), Some("modified"));
    assert_eq!(change_of("logs/fills.log").as_deref(), Some("metadata"));
    assert_eq!(change_of("logs/new.log").as_deref(), Some("added"));
    assert_eq!(change_of("old").as_deref(), Some("removed"));
    assert_eq!(change_of("old/gone.txt").as_deref(), Some("removed"));
    assert_eq!(change_of("big.bin"), None, "unchanged files are not listed");
    assert_eq!(result["counts"]["added"], 1);
    assert_eq!(result["counts"]["removed"], 2);
    assert_eq!(result["counts"]["modified"], 1);

    let text = env.ok(&["diff", a, b]);
    assert!(
        text.lines()
            .any(|l| l.starts_with("M ") && l.ends_with("/orders.csv")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("+ ") && l.ends_with("/logs/new.log")),
        "{text}"
    );
    assert!(
        env.ok(&["diff", a, a]).trim().is_empty(),
        "a snapshot equals itself"
    );
}

#[test]
fn find_lists_matches_per_snapshot() {
    let env = Env::with_repo();
    let (_, first, second) = two_snapshots(&env);
    let lines: Vec<Value> = env
        .ok(&["--json", "find", "*.log"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let in_snapshot = |snap: &Value| {
        let mut paths: Vec<String> = lines
            .iter()
            .filter(|m| m["snapshot"] == snap["id"])
            .map(|m| {
                m["path"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect();
        paths.sort();
        paths
    };
    assert_eq!(in_snapshot(&first), ["fills.log"]);
    assert_eq!(in_snapshot(&second), ["fills.log", "new.log"]);
    assert!(
        lines
            .iter()
            .all(|m| m["type"] == "file" && m["size"].as_u64().unwrap() > 0)
    );

    let only_first = env.ok(&[
        "--json",
        "find",
        "**/old/*",
        "--snapshot",
        first["short_id"].as_str().unwrap(),
    ]);
    assert_eq!(only_first.lines().count(), 1, "{only_first}");
    assert!(
        env.ok(&["--json", "find", "nothing-matches-*"])
            .trim()
            .is_empty()
    );
}

#[test]
fn dump_writes_a_file_and_a_directory_as_tar() {
    let env = Env::with_repo();
    let (src, _, _) = two_snapshots(&env);
    let src = src.canonicalize().unwrap();
    let out = env.run(&["dump", "latest", src.join("big.bin").to_str().unwrap()]);
    assert!(out.status.success());
    assert!(out.stdout == fs::read(src.join("big.bin")).unwrap());

    let out = env.run(&["dump", "latest", src.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tar = env.path("src.tar");
    fs::write(&tar, &out.stdout).unwrap();
    let unpacked = env.path("unpacked");
    fs::create_dir(&unpacked).unwrap();
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(status.success());
    for rel in ["orders.csv", "logs/fills.log", "logs/new.log", "big.bin"] {
        assert!(
            fs::read(unpacked.join("src").join(rel)).unwrap() == fs::read(src.join(rel)).unwrap(),
            "{rel}"
        );
    }
    let out = env.run(&["dump", "latest", "/no/such/path"]);
    assert!(expect_failure(&out, 1).contains("not in the snapshot"));
}
