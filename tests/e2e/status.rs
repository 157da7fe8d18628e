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

const SEGMENT: &str = "000000010000000000000001";
const NEXT_SEGMENT: &str = "000000010000000000000002";

/// Stores the WAL file `name` as archived `seconds` ago, as only a key
/// holder could (`pg archive-wal` records the current time).
fn archived_ago(env: &Env, name: &str, seconds: i64) {
    use arca_core::{Time, Timestamp, WalHeader};
    let backend = std::sync::Arc::new(arca_backend::LocalBackend::new(&env.repo));
    let repo = arca_core::Repository::open(backend.clone(), PASSWORD.as_bytes()).unwrap();
    let header = WalHeader {
        name: name.into(),
        size: 0,
        hash: arca_core::Id([0; 32]),
        archived: Time {
            at: Timestamp::new(Time::now().at.seconds - seconds, 0),
            offset_seconds: 0,
        },
        frame_size: arca_core::format::WAL_FRAME_SIZE,
    };
    let (object, bytes) = arca_core::raw::encode_wal(repo.key(), &header, b"wal", 0).unwrap();
    arca_backend::Backend::write(&*backend, arca_backend::FileKind::Wal, &object, &bytes).unwrap();
}

/// Archives a fresh WAL file `name` with `pg archive-wal`.
fn archive_now(env: &Env, name: &str) {
    let file = env.path(name);
    fs::write(&file, name.as_bytes()).unwrap();
    env.ok(&["pg", "archive-wal", file.to_str().unwrap()]);
}

#[test]
fn status_max_wal_age_fails_without_wal_and_passes_for_fresh_wal() {
    let env = Env::with_repo();
    let repo = env.repo.display().to_string();
    // No WAL at all: one line naming the repository.
    let stderr = expect_failure(&env.run(&["-q", "status", "--max-wal-age", "1h"]), 1);
    assert!(
        stderr.contains(&repo) && stderr.contains("has no archived WAL file"),
        "{stderr}"
    );
    // Without the flag an empty archive is not shown and not a failure.
    let stdout = env.ok(&["status"]);
    assert!(!stdout.contains("WAL"), "{stdout}");

    archive_now(&env, SEGMENT);
    let out = env.run(&["-q", "status", "--max-wal-age", "1h"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{out:?}");
    let stdout = env.ok(&["status", "--max-wal-age", "1h"]);
    assert!(
        stdout.contains("WAL archive: 1 file,")
            && stdout.contains(&format!("newest file:        {SEGMENT}, archived"))
            && stdout.contains("none (no base backup tagged pg-base)")
            && stdout.contains("not known: no metrics file"),
        "{stdout}"
    );
    // Shown whenever the repository holds WAL.
    assert!(env.ok(&["status"]).contains("WAL archive: 1 file,"));
}

#[test]
fn status_max_wal_age_fails_when_the_newest_wal_file_is_stale() {
    let env = Env::with_repo();
    archived_ago(&env, SEGMENT, 72 * 3600 + 5 * 60);
    let out = env.run(&["-q", "status", "--max-wal-age", "26h"]);
    let stderr = expect_failure(&out, 1);
    assert!(out.stdout.is_empty(), "-q prints only the problem");
    assert!(
        stderr.contains(&env.repo.display().to_string())
            && stderr.contains(&format!("newest archived WAL file {SEGMENT}"))
            && stderr.contains("72h 5min ago, more than 26h"),
        "{stderr}"
    );
    let doc: serde_json::Value = serde_json::from_slice(
        &env.run(&["--json", "status", "--max-wal-age", "26h"])
            .stdout,
    )
    .unwrap();
    assert_eq!(doc["ok"], false);
    assert_eq!(doc["wal"]["stale"], true);
    assert_eq!(doc["wal"]["max_age_seconds"], 26 * 3600);
    env.ok(&["-q", "status", "--max-wal-age", "4d"]);

    // A file archived since is the newest: fresh again.
    archive_now(&env, NEXT_SEGMENT);
    env.ok(&["-q", "status", "--max-wal-age", "26h"]);
    let doc = env.json(&["status", "--max-wal-age", "26h"]);
    assert_eq!(doc["wal"]["newest"]["file"], NEXT_SEGMENT);
    assert_eq!(doc["wal"]["objects"], 2);
}

#[test]
fn status_json_reports_the_wal_archive_and_the_recovery_window() {
    let env = Env::with_repo();
    let db = source(&env, "pgdata");
    let base = |host: &str, seconds: u64| {
        env.ok(&[
            "snapshot",
            &db,
            "--host",
            host,
            "--tag",
            "pg-base",
            "--time",
            &ago(seconds),
        ]);
    };
    // Older than every base backup, but not one itself.
    snapshot_at(&env, &db, "db1", 5 * 86_400);
    base("db1", 2 * 86_400);
    base("db1", 86_400);
    base("db2", 3 * 86_400);
    archived_ago(&env, SEGMENT, 3600);
    archive_now(&env, NEXT_SEGMENT);

    let doc = env.json(&["status", "--host", "db1"]);
    let wal = &doc["wal"];
    assert_eq!(wal["objects"], 2, "{doc}");
    assert!(wal["bytes"].as_u64().unwrap() > 0);
    assert_eq!(wal["newest"]["file"], NEXT_SEGMENT);
    assert!(wal["newest"]["age_seconds"].as_u64().unwrap() < 120);
    assert_eq!(wal["damaged"], 0);
    assert!(wal["archive_failures"].is_null(), "no metrics file");
    assert_eq!(wal["stale"], false);
    assert!(wal["max_age_seconds"].is_null());
    let window = &doc["recovery_window"];
    let seconds = window["seconds"].as_u64().unwrap();
    assert!(
        (2 * 86_400..2 * 86_400 + 120).contains(&seconds),
        "from db1's oldest base backup: {window}"
    );
    assert_eq!(window["to"], wal["newest"]["archived"]);
    let db2 = env.json(&["status", "--host", "db2"]);
    let seconds = db2["recovery_window"]["seconds"].as_u64().unwrap();
    assert!((3 * 86_400..3 * 86_400 + 120).contains(&seconds), "{db2}");
    let none = env.json(&["status", "--host", "db3"]);
    assert!(none["recovery_window"].is_null(), "{none}");

    // Failed archive-wal runs counted in the metrics file status reads.
    let metrics = env.path("arca.prom");
    let flag = metrics.to_str().unwrap();
    let missing = env.path("gone").join(SEGMENT);
    for _ in 0..2 {
        let out = env.run(&[
            "--metrics-file",
            flag,
            "pg",
            "archive-wal",
            missing.to_str().unwrap(),
        ]);
        assert_eq!(out.status.code(), Some(1));
    }
    let doc = env.json(&["--metrics-file", flag, "status"]);
    assert_eq!(doc["wal"]["archive_failures"], 2, "{doc}");
    let stdout = env.ok(&["--metrics-file", flag, "status"]);
    assert!(
        stdout.contains(&format!("archive failures:   2 (counted in {flag})")),
        "{stdout}"
    );

    // A header that cannot be read is a warning, and counted.
    fs::write(env.repo.join("wal").join("ab".repeat(32)), b"garbage").unwrap();
    let out = env.run(&["--json", "status"]);
    assert_eq!(out.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["wal"]["damaged"], 1);
    assert_eq!(doc["wal"]["objects"], 3);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning") && stderr.contains(&"ab".repeat(32)),
        "{stderr}"
    );
}
