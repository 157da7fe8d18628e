//! `arca status`: the newest snapshot per host and paths, its age, and the
//! exit code monitoring relies on with `--max-age`.

use std::fs;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::util::*;

/// RFC 3339 (UTC) for `seconds` before now.
fn ago(seconds: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t = now - seconds;
    let (days, rest) = ((t / 86_400) as i64, t % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Takes a snapshot of `dir` as `host`, `seconds` ago.
fn snapshot_at(env: &Env, dir: &str, host: &str, seconds: u64) {
    env.ok(&["snapshot", dir, "--host", host, "--time", &ago(seconds)]);
}

fn source(env: &Env, name: &str) -> String {
    let dir = env.path(name);
    fs::create_dir_all(&dir).unwrap();
    write_file(&dir.join("positions.csv"), name.as_bytes(), 0o644);
    dir.display().to_string()
}

#[test]
fn max_age_passes_for_a_fresh_snapshot_and_fails_for_a_stale_one() {
    let env = Env::with_repo();
    let trades = source(&env, "trades");
    snapshot_at(&env, &trades, "db1", 27 * 3600);

    let out = env.run(&["status", "--max-age", "26h"]);
    let stderr = expect_failure(&out, 1);
    assert!(
        stderr.contains("db1")
            && stderr.contains(&trades)
            && stderr.contains("27h")
            && stderr.contains("more than 26h"),
        "{stderr}"
    );
    // The table still shows the group.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("db1") && stdout.contains("27h"), "{stdout}");

    // A longer limit, or no limit, passes.
    env.ok(&["status", "--max-age", "2d"]);
    env.ok(&["status"]);

    snapshot_at(&env, &trades, "db1", 60);
    let stdout = env.ok(&["status", "--max-age", "26h"]);
    assert!(stdout.contains("1m") && !stdout.contains("27h"), "{stdout}");
}

#[test]
fn no_matching_snapshot_fails_with_max_age() {
    let env = Env::with_repo();
    let stderr = expect_failure(&env.run(&["status", "--max-age", "26h"]), 1);
    assert!(stderr.contains("no matching snapshots"), "{stderr}");

    let trades = source(&env, "trades");
    snapshot_at(&env, &trades, "db1", 60);
    env.ok(&["status", "--max-age", "26h"]);
    let stderr = expect_failure(
        &env.run(&["status", "--max-age", "26h", "--host", "db2"]),
        1,
    );
    assert!(stderr.contains("no matching snapshots"), "{stderr}");
}

#[test]
fn json_reports_each_group_and_the_host_filter_narrows_them() {
    let env = Env::with_repo();
    let trades = source(&env, "trades");
    let configs = source(&env, "configs");
    snapshot_at(&env, &trades, "db1", 30 * 3600);
    snapshot_at(&env, &trades, "db1", 2 * 3600);
    snapshot_at(&env, &configs, "db1", 40 * 3600);
    snapshot_at(&env, &trades, "db2", 600);

    let out = env.run(&["--json", "status", "--max-age", "26h"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["max_age_seconds"], 26 * 3600);
    let groups = doc["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 3, "{doc}");
    let find = |host: &str, path: &str| {
        groups
            .iter()
            .find(|g| g["hostname"] == host && g["paths"][0] == path)
            .unwrap_or_else(|| panic!("no group {host} {path}: {doc}"))
    };
    let db1_trades = find("db1", &trades);
    let age = db1_trades["age_seconds"].as_u64().unwrap();
    assert!((2 * 3600..2 * 3600 + 120).contains(&age), "{age}");
    assert_eq!(db1_trades["stale"], false);
    assert_eq!(db1_trades["latest"]["id"].as_str().unwrap().len(), 64);
    assert!(
        db1_trades["latest"]["id"]
            .as_str()
            .unwrap()
            .starts_with(db1_trades["latest"]["short_id"].as_str().unwrap())
    );
    assert!(db1_trades["latest"]["time"].as_str().unwrap().contains('T'));
    assert_eq!(find("db1", &configs)["stale"], true);
    assert_eq!(find("db2", &trades)["stale"], false);

    // Only db2's group: fresh, so the check passes.
    let doc = env.json(&["status", "--max-age", "26h", "--host", "db2"]);
    assert_eq!(doc["ok"], true);
    let groups = doc["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0]["hostname"], "db2");

    // Without --max-age nothing is stale and the limit is null.
    let doc = env.json(&["status"]);
    assert_eq!(doc["ok"], true);
    assert!(doc["max_age_seconds"].is_null());
}
