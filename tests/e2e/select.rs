//! `latest` is narrowed by `--host`, `--tag` and `--path` in every command
//! that takes a snapshot, the same way everywhere (one resolver): with a
//! filter, `latest` is the newest snapshot that matches it. An explicit id
//! is that snapshot whatever the filters say, as in restic.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use crate::json_fields::json_lines;
use crate::util::*;

/// A repository with an older snapshot of A (host alpha, tag t1) and a
/// newer one of B (host beta, tag t2).
struct Two {
    env: Env,
    /// Directory A as given to snapshot.
    a: PathBuf,
    /// A's path as the snapshot stores it.
    a_stored: String,
    b_stored: String,
    alpha: String,
    beta: String,
}

fn two_hosts() -> Two {
    let env = Env::with_repo();
    let a = env.path("A");
    fs::create_dir_all(a.join("sub")).unwrap();
    fs::write(a.join("a1.txt"), "alpha one").unwrap();
    fs::write(a.join("sub/a2.txt"), "alpha two").unwrap();
    let b = env.path("B");
    fs::create_dir_all(&b).unwrap();
    fs::write(b.join("b1.txt"), "beta one").unwrap();
    for (dir, host, tag, time) in [
        (&a, "alpha", "t1", "2026-11-02 10:00:00"),
        (&b, "beta", "t2", "2026-11-03 10:00:00"),
    ] {
        let dir = dir.to_str().unwrap();
        let args = [
            "snapshot", dir, "--host", host, "--tag", tag, "--time", time,
        ];
        env.ok(&args);
    }
    let list = env.json(&["snapshots"]);
    let of = |host: &str| -> &Value {
        list.as_array()
            .unwrap()
            .iter()
            .find(|s| s["hostname"] == host)
            .unwrap_or_else(|| panic!("no snapshot of {host}: {list}"))
    };
    let alpha = of("alpha");
    assert_eq!(alpha["tags"], serde_json::json!(["t1"]), "{alpha}");
    let stored = |s: &Value| s["paths"][0].as_str().unwrap().to_string();
    Two {
        a_stored: stored(alpha),
        b_stored: stored(of("beta")),
        alpha: alpha["id"].as_str().unwrap().to_string(),
        beta: of("beta")["id"].as_str().unwrap().to_string(),
        a,
        env,
    }
}

/// The sum of diff's counts: 0 when nothing changed.
fn changed(diff: &Value) -> u64 {
    let counts = diff["counts"].as_object().unwrap();
    counts.values().map(|n| n.as_u64().unwrap()).sum()
}

#[test]
fn ls_latest_with_host() {
    let two = two_hosts();
    let all = two.env.ok(&["ls", "latest"]);
    assert!(all.contains("b1.txt") && !all.contains("a1.txt"), "{all}");
    let alpha = two.env.ok(&["ls", "latest", "--host", "alpha"]);
    assert!(alpha.contains("a1.txt"), "{alpha}");
    assert!(!alpha.contains("b1.txt"), "{alpha}");
}

#[test]
fn dump_latest_with_tag() {
    let two = two_hosts();
    let file = format!("{}/a1.txt", two.a_stored);
    let out = two.env.ok(&["dump", "latest", &file, "--tag", "t1"]);
    assert_eq!(out, "alpha one");
}

#[test]
fn diff_against_latest_with_host() {
    let two = two_hosts();
    let unfiltered = two.env.json(&["diff", &two.alpha, "latest"]);
    assert!(changed(&unfiltered) > 0, "{unfiltered}");
    let same = two
        .env
        .json(&["diff", &two.alpha, "latest", "--host", "alpha"]);
    assert_eq!(changed(&same), 0, "{same}");
    assert_eq!(same["second"], two.alpha.as_str(), "{same}");
}

#[test]
fn stats_latest_with_path() {
    let two = two_hosts();
    let beta = two.env.json(&["stats", "latest"]);
    assert_eq!(
        (beta["snapshots"].as_u64(), beta["files"].as_u64()),
        (Some(1), Some(1))
    );
    let alpha = two.env.json(&["stats", "latest", "--path", &two.a_stored]);
    assert_eq!(alpha["snapshots"], 1, "{alpha}");
    assert_eq!(alpha["files"], 2, "a1.txt and sub/a2.txt: {alpha}");
}

#[test]
fn restore_latest_with_tag() {
    let two = two_hosts();
    let target = two.env.path("target");
    let t = target.to_str().unwrap();
    two.env
        .ok(&["restore", "latest", "--target", t, "--tag", "t1"]);
    let a1 = restored(&target, &two.a).join("a1.txt");
    assert_eq!(fs::read_to_string(&a1).unwrap(), "alpha one");
    let names: Vec<_> = files_below(&target)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n == "b1.txt"), "{names:?}");
}

#[test]
fn find_in_latest_with_host() {
    let two = two_hosts();
    let none = json_lines(&two.env, &["find", "a1.txt", "--snapshot", "latest"]);
    assert!(none.is_empty(), "beta's snapshot has no a1.txt: {none:?}");
    let found = json_lines(
        &two.env,
        &["find", "a1.txt", "--snapshot", "latest", "--host", "alpha"],
    );
    assert!(
        found.iter().any(|m| m["snapshot"] == two.alpha.as_str()
            && m["path"].as_str().unwrap().ends_with("/a1.txt")),
        "{found:?}"
    );
}

#[test]
fn copy_latest_with_tag() {
    let two = two_hosts();
    let other = two.env.path("other");
    let offsite = "an offsite password";
    let out = two
        .env
        .cmd(&["init"])
        .env("ARCA_REPOSITORY", &other)
        .env("ARCA_PASSWORD", offsite)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let to = other.to_str().unwrap();
    let out = two
        .env
        .cmd(&["copy", "latest", "--tag", "t1", "--to", to])
        .env("ARCA_TO_PASSWORD", offsite)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = two
        .env
        .cmd(&["--json", "snapshots"])
        .env("ARCA_REPOSITORY", &other)
        .env("ARCA_PASSWORD", offsite)
        .output()
        .unwrap();
    let copied: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts: Vec<_> = copied
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["hostname"])
        .collect();
    assert_eq!(hosts, ["alpha"], "{copied}");
}

#[test]
fn drill_with_host() {
    let two = two_hosts();
    let drill = two.env.json(&["drill", "--host", "alpha"]);
    assert_eq!(drill["snapshot"], two.alpha.as_str(), "{drill}");
    assert_eq!(drill["files"], 2, "{drill}");
}

#[test]
fn status_with_tag() {
    let two = two_hosts();
    let status = two.env.json(&["status", "--tag", "t1"]);
    let groups = status["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1, "{status}");
    assert_eq!(groups[0]["hostname"], "alpha", "{status}");
    assert_eq!(groups[0]["latest"]["id"], two.alpha.as_str(), "{status}");
}

#[test]
fn a_filter_matching_nothing_is_an_error_naming_the_repository() {
    let two = two_hosts();
    let out = two.env.run(&["ls", "latest", "--host", "nobody"]);
    let err = expect_failure(&out, 1);
    assert!(err.contains(&two.env.address()), "{err}");
    assert!(err.contains("match"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn an_explicit_id_wins_over_filters_that_contradict_it() {
    let two = two_hosts();
    let listed = two.env.ok(&["ls", &two.beta, "--host", "alpha"]);
    assert!(listed.contains("b1.txt"), "{listed}");
    let b1 = format!("{}/b1.txt", two.b_stored);
    let dumped = two.env.ok(&["dump", &two.beta[..8], &b1, "--tag", "t1"]);
    assert_eq!(dumped, "beta one");
}
