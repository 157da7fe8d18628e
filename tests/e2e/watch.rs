//! `arca watch`: a consistent snapshot of each live SQLite database when it
//! changed, never of an idle one; retention of its own snapshots only;
//! metrics; a clean stop on SIGTERM; recovery with `restore --as-of`.
//!
//! Running watchers are followed through their `--json` lines (one per
//! round), with a deadline, never by sleeping and hoping.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use serde_json::Value;

use crate::util::*;

/// How long a test waits for a round it expects before failing.
const DEADLINE: Duration = Duration::from_secs(60);

/// A database with a table of numbers, in rollback-journal mode.
fn database(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch("CREATE TABLE IF NOT EXISTS t (n INTEGER, pad BLOB)")
        .unwrap();
    conn
}

/// Adds the row `n` (one committed transaction).
fn insert(conn: &Connection, n: i64) {
    conn.execute(
        "INSERT INTO t VALUES (?1, zeroblob(3000))",
        rusqlite::params![n],
    )
    .unwrap();
}

/// The numbers a database file holds.
fn numbers(path: &Path) -> Vec<i64> {
    let conn = Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT n FROM t ORDER BY n").unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The snapshots tagged watch of `db` (their JSON objects, oldest first).
fn watch_snapshots(env: &Env, db: &Path) -> Vec<Value> {
    env.json(&["snapshots", "--tag", "watch", "--path", arg(db)])
        .as_array()
        .unwrap()
        .clone()
}

/// A running `arca --json watch`: its rounds arrive on a channel; stderr
/// goes to a file.
struct Watcher {
    child: Child,
    rounds: Receiver<Value>,
    stderr: PathBuf,
}

impl Watcher {
    fn start(env: &Env, args: &[&str]) -> Watcher {
        let stderr = (0..)
            .map(|i| env.path(&format!("watch-{i}.err")))
            .find(|p| !p.exists())
            .unwrap();
        let mut all = vec!["--json", "watch"];
        all.extend_from_slice(args);
        let mut child = env
            .cmd(&all)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(fs::File::create(&stderr).unwrap()))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (to, rounds) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("bad JSON line ({e}): {line}"));
                if to.send(value).is_err() {
                    return;
                }
            }
        });
        Watcher {
            child,
            rounds,
            stderr,
        }
    }

    /// The next round's line.
    fn round(&self) -> Value {
        self.rounds
            .recv_timeout(DEADLINE)
            .unwrap_or_else(|e| panic!("no round within {DEADLINE:?} ({e}): {}", self.stderr()))
    }

    /// The status of `db` in the next round.
    fn next_status(&self, db: &Path) -> String {
        status(&self.round(), db)
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends `signal` and waits for the exit; returns the exit code and how
    /// long the exit took.
    fn stop(mut self, signal: libc::c_int) -> (Option<i32>, Duration, String) {
        let sent = Instant::now();
        // SAFETY: kill sends a signal to the child this test started.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) },
            0
        );
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), sent.elapsed(), self.stderr());
            }
            assert!(sent.elapsed() < DEADLINE, "no exit: {}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a round line says of `db`.
fn status(round: &Value, db: &Path) -> String {
    round["databases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["path"] == arg(db))
        .unwrap_or_else(|| panic!("{} not in {round}", db.display()))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn an_idle_database_is_not_snapshotted_again_and_each_change_is_once() {
    let env = Env::with_repo();
    let busy = env.path("busy.db");
    let idle = env.path("idle.db");
    let writer = database(&busy);
    insert(&writer, 1);
    insert(&database(&idle), 1);
    // A write-ahead-log database with its writer connected throughout.
    let wal = env.path("wal.db");
    let wal_writer = database(&wal);
    wal_writer
        .pragma_update(None, "journal_mode", "wal")
        .unwrap();
    insert(&wal_writer, 1);

    let watcher = Watcher::start(&env, &["--every", "1s", arg(&busy), arg(&idle), arg(&wal)]);
    let first = watcher.round();
    crate::json_fields::assert_documented(&first, "watch");
    for db in [&busy, &idle, &wal] {
        assert_eq!(status(&first, db), "saved", "{first}");
    }
    for d in first["databases"].as_array().unwrap() {
        crate::json_fields::assert_documented(d, "watch.databases[]");
    }
    // Idle rounds touch nothing.
    for _ in 0..2 {
        let round = watcher.round();
        for db in [&busy, &idle, &wal] {
            assert_eq!(status(&round, db), "unchanged", "{round}");
        }
    }
    // One commit to each of two databases: one snapshot each, in the round
    // after it (or the one after that, should a round start between the
    // two commits), and nothing after it.
    insert(&writer, 2);
    insert(&wal_writer, 2);
    let mut saves = [0, 0, 0];
    for _ in 0..2 {
        let round = watcher.round();
        for (n, db) in [&busy, &idle, &wal].iter().enumerate() {
            match status(&round, db).as_str() {
                "saved" => saves[n] += 1,
                "unchanged" => {}
                other => panic!("{other}: {round}"),
            }
        }
        if saves[0] == 1 && saves[2] == 1 {
            break;
        }
    }
    assert_eq!(saves, [1, 0, 1]);
    for _ in 0..2 {
        let round = watcher.round();
        for db in [&busy, &idle, &wal] {
            assert_eq!(status(&round, db), "unchanged", "{round}");
        }
    }
    let (code, _, stderr) = watcher.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "{stderr}");

    assert_eq!(watch_snapshots(&env, &busy).len(), 2);
    assert_eq!(watch_snapshots(&env, &wal).len(), 2);
    assert_eq!(watch_snapshots(&env, &idle).len(), 1);
    // The WAL database's newest image holds the commit still in its log.
    let newest = watch_snapshots(&env, &wal).pop().unwrap();
    let target = env.path("restored");
    env.ok(&[
        "restore",
        newest["id"].as_str().unwrap(),
        "--target",
        arg(&target),
    ]);
    let restored = restored(&target, &wal);
    assert!(!Path::new(&format!("{}-wal", restored.display())).exists());
    assert_eq!(numbers(&restored), [1, 2]);
}

#[test]
fn once_snapshots_each_database_and_restore_as_of_brings_it_back() {
    let env = Env::with_repo();
    let orders = env.path("orders.db");
    let fills = env.path("fills.db");
    let conn = database(&orders);
    insert(&conn, 1);
    insert(&database(&fills), 7);
    env.ok(&[
        "watch",
        "--once",
        "--tag",
        "trading",
        arg(&orders),
        arg(&fills),
    ]);
    for db in [&orders, &fills] {
        let snaps = watch_snapshots(&env, db);
        assert_eq!(snaps.len(), 1, "{snaps:?}");
        // One snapshot per database, of that path alone.
        assert_eq!(snaps[0]["paths"], serde_json::json!([arg(db)]));
        assert_eq!(snaps[0]["tags"], serde_json::json!(["watch", "trading"]));
    }
    let first = watch_snapshots(&env, &orders)[0]["time"]
        .as_str()
        .unwrap()
        .to_string();
    insert(&conn, 2);
    let rounds = crate::json_fields::json_lines(&env, &["watch", "--once", arg(&orders)]);
    assert_eq!(rounds.len(), 1);
    assert_eq!(status(&rounds[0], &orders), "saved");

    // The database as it was between the two snapshots, then the newest.
    for (time, expected) in [(first.as_str(), vec![1]), ("2100-01-01 00:00", vec![1, 2])] {
        let target = env.path(&format!("as-of-{}", expected.len()));
        env.ok(&[
            "restore",
            "--as-of",
            time,
            "--path",
            arg(&orders),
            "--tag",
            "watch",
            "--target",
            arg(&target),
        ]);
        assert_eq!(numbers(&restored(&target, &orders)), expected);
    }
}

/// The numbers in the newest watch snapshot of `db`, restored.
fn latest_watch_numbers(env: &Env, db: &Path) -> Vec<i64> {
    let target = env.path("latest");
    let _ = fs::remove_dir_all(&target);
    env.ok(&[
        "restore",
        "latest",
        "--tag",
        "watch",
        "--path",
        arg(db),
        "--target",
        arg(&target),
    ]);
    numbers(&restored(&target, db))
}

/// What one `watch --once` did with `db`.
fn once(env: &Env, db: &Path) -> String {
    let rounds = crate::json_fields::json_lines(env, &["watch", "--once", arg(db)]);
    assert_eq!(rounds.len(), 1);
    status(&rounds[0], db)
}

/// A restarted watch (here `--once`, as from cron) knows from the cache
/// which databases are unchanged since their last watch snapshot; it
/// trusts that only while the snapshot is still in the repository.
#[test]
fn a_restarted_watch_snapshots_only_what_changed_since_the_last_run() {
    let env = Env::with_repo();
    let db = env.path("orders.db");
    let conn = database(&db);
    insert(&conn, 1);
    assert_eq!(once(&env, &db), "saved");
    assert_eq!(once(&env, &db), "unchanged");
    assert_eq!(watch_snapshots(&env, &db).len(), 1);

    insert(&conn, 2);
    assert_eq!(once(&env, &db), "saved");
    assert_eq!(once(&env, &db), "unchanged");

    // A commit that is only in the write-ahead log is a change too.
    conn.execute_batch("PRAGMA journal_mode=WAL").unwrap();
    assert_eq!(once(&env, &db), "saved");
    assert_eq!(once(&env, &db), "unchanged");
    insert(&conn, 3);
    assert_eq!(once(&env, &db), "saved");
    assert_eq!(once(&env, &db), "unchanged");

    // The snapshot the cache names was forgotten: taken again.
    let snaps = watch_snapshots(&env, &db);
    let newest = snaps.last().unwrap()["id"].as_str().unwrap();
    env.ok(&["forget", newest]);
    assert_eq!(once(&env, &db), "saved");
    assert_eq!(once(&env, &db), "unchanged");

    // A damaged cache entry is not trusted either.
    let mut entries = 0;
    for dir in fs::read_dir(env.path("cache")).unwrap() {
        let watch = dir.unwrap().path().join("watch");
        for entry in fs::read_dir(&watch).into_iter().flatten() {
            fs::write(entry.unwrap().path(), b"{\"snapshot\": 1").unwrap();
            entries += 1;
        }
    }
    assert_eq!(entries, 1);
    assert_eq!(once(&env, &db), "saved");

    // Without a cache every run takes a snapshot.
    let rounds = crate::json_fields::json_lines(&env, &["--no-cache", "watch", "--once", arg(&db)]);
    assert_eq!(status(&rounds[0], &db), "saved");
    drop(conn);
    assert_eq!(latest_watch_numbers(&env, &db), [1, 2, 3]);
}

#[test]
fn retention_forgets_only_the_databases_own_watch_snapshots() {
    let env = Env::with_repo();
    let db = env.path("orders.db");
    let other = env.path("other.db");
    let conn = database(&db);
    insert(&database(&other), 1);
    env.ok(&["watch", "--once", arg(&other)]);
    // A snapshot of the same path that watch did not take.
    insert(&conn, 0);
    let nightly = env.snapshot(&[&db]);
    for n in 1..=4 {
        insert(&conn, n);
        env.ok(&["watch", "--once", "--keep-last", "2", arg(&db)]);
    }
    let kept = watch_snapshots(&env, &db);
    assert_eq!(kept.len(), 2, "{kept:?}");
    let all = env.json(&["snapshots", "--path", arg(&db)]);
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&nightly["id"].as_str().unwrap()), "{all}");
    assert_eq!(ids.len(), 3);
    assert_eq!(watch_snapshots(&env, &other).len(), 1);
    // The newest two are the ones kept.
    assert_eq!(latest_watch_numbers(&env, &db), [0, 1, 2, 3, 4]);
}

/// A database SQLite cannot read is stored as a plain copy tagged
/// `inconsistent`; such copies are kept by the policy among themselves, so
/// however many come they never push a consistent snapshot out. An idle
/// one is not taken again.
#[test]
fn torn_copies_never_push_consistent_snapshots_out_of_retention() {
    let env = Env::with_repo();
    let db = env.path("orders.db");
    let conn = database(&db);
    let keep = ["watch", "--once", "--keep-last", "2"];
    let once_keeping = |expected: i32| {
        let mut args = vec!["--json"];
        args.extend(keep);
        args.push(arg(&db));
        let out = env.run(&args);
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let round: Value = serde_json::from_slice(&out.stdout).unwrap();
        status(&round, &db)
    };
    for n in 1..=3 {
        insert(&conn, n);
        assert_eq!(once_keeping(0), "saved");
    }
    drop(conn);
    let consistent: Vec<String> = watch_snapshots(&env, &db)
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(consistent.len(), 2);

    // Damage SQLite refuses to read (a file format it does not know), then
    // more writes to the damaged file.
    let mut bytes = fs::read(&db).unwrap();
    bytes[19] = 9;
    for round in 0..4u8 {
        bytes[200] = round;
        fs::write(&db, &bytes).unwrap();
        assert_eq!(once_keeping(3), "partial");
    }
    // Idle: not taken again.
    assert_eq!(once_keeping(0), "unchanged");

    let snaps = watch_snapshots(&env, &db);
    let (torn, kept): (Vec<&Value>, Vec<&Value>) = snaps.iter().partition(|s| {
        s["tags"]
            .as_array()
            .unwrap()
            .contains(&"inconsistent".into())
    });
    let kept: Vec<&str> = kept.iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(kept, consistent, "{snaps:?}");
    assert_eq!(torn.len(), 2, "{snaps:?}");
}

#[test]
fn the_profile_names_the_databases_and_the_policy_and_flags_win() {
    let env = Env::with_repo();
    let db = env.path("orders.db");
    let conn = database(&db);
    let profile = env.path("db.toml");
    fs::write(
        &profile,
        format!(
            "[watch]\ndatabases = [{:?}]\nevery = \"1h\"\ntags = [\"orders\"]\nkeep_last = 1\n",
            arg(&db)
        ),
    )
    .unwrap();
    let config = ["--config", arg(&profile)];
    for n in 1..=2 {
        insert(&conn, n);
        env.ok(&[config[0], config[1], "watch", "--once"]);
    }
    let kept = watch_snapshots(&env, &db);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["tags"], serde_json::json!(["watch", "orders"]));
    for n in 3..=4 {
        insert(&conn, n);
        env.ok(&[config[0], config[1], "watch", "--once", "--keep-last", "3"]);
    }
    assert_eq!(watch_snapshots(&env, &db).len(), 3);
}

#[test]
fn sigterm_while_idle_stops_at_once_with_exit_0_and_no_lock() {
    let env = Env::with_repo();
    let db = env.path("orders.db");
    insert(&database(&db), 1);
    // An hour between rounds: only the signal can end the wait.
    let watcher = Watcher::start(&env, &["--every", "1h", arg(&db)]);
    assert_eq!(watcher.next_status(&db), "saved");
    let (code, took, stderr) = watcher.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    let locks = fs::read_dir(env.repo.join("locks")).unwrap().count();
    assert_eq!(locks, 0);
    assert!(temporaries(env.dir.path()).is_empty());
    env.ok(&["check"]);
}

#[test]
fn a_missing_database_is_warned_about_once_and_watched_for() {
    let env = Env::with_repo();
    let db = env.path("orders.db");
    let later = env.path("later.db");
    insert(&database(&db), 1);
    let watcher = Watcher::start(&env, &["--every", "1s", arg(&db), arg(&later)]);
    for _ in 0..3 {
        assert_eq!(watcher.next_status(&later), "unavailable");
    }
    insert(&database(&later), 1);
    let mut seen = watcher.next_status(&later);
    if seen == "unavailable" {
        seen = watcher.next_status(&later);
    }
    assert_eq!(seen, "saved");
    let (code, _, stderr) = watcher.stop(libc::SIGINT);
    assert_eq!(code, Some(0), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("later.db") && l.contains("does not exist"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert_eq!(watch_snapshots(&env, &later).len(), 1);
    assert_eq!(watch_snapshots(&env, &db).len(), 1);
}

#[test]
fn a_failed_round_is_reported_counted_and_retried() {
    let env = Env::with_repo();
    let db = env.path("orders.db");
    let conn = database(&db);
    insert(&conn, 1);
    let metrics = env.path("arca.prom");
    let watcher = Watcher::start(
        &env,
        &["--metrics-file", arg(&metrics), "--every", "1s", arg(&db)],
    );
    assert_eq!(watcher.next_status(&db), "saved");
    // Storage fails: the data directory is a file now.
    let data = env.repo.join("data");
    let away = env.repo.join("data.away");
    fs::rename(&data, &away).unwrap();
    fs::write(&data, b"not a directory").unwrap();
    insert(&conn, 2);
    let mut seen = watcher.next_status(&db);
    if seen == "unchanged" {
        seen = watcher.next_status(&db);
    }
    assert_eq!(seen, "failed");
    // It is retried every round while it fails, and succeeds once storage
    // is back.
    assert_eq!(watcher.next_status(&db), "failed");
    fs::remove_file(&data).unwrap();
    fs::rename(&away, &data).unwrap();
    let mut seen = watcher.next_status(&db);
    if seen == "failed" {
        seen = watcher.next_status(&db);
    }
    assert_eq!(seen, "saved");
    let (code, _, stderr) = watcher.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "{stderr}");
    let failure = stderr
        .lines()
        .find(|l| l.contains("failed"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        failure.contains(arg(&db)) && failure.contains(&env.repo.display().to_string()),
        "{failure}"
    );
    let text = fs::read_to_string(&metrics).unwrap();
    let failures = text
        .lines()
        .find(|l| l.starts_with("arca_watch_failures_total{"))
        .unwrap_or_else(|| panic!("{text}"));
    let count: f64 = failures.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(count >= 2.0, "{failures}");
    assert_eq!(latest_watch_numbers(&env, &db), [1, 2]);
    env.ok(&["check", "--read-data"]);
}

#[test]
fn watch_keeps_working_across_a_prune_that_deleted_its_packs() {
    let env = Env::with_repo();
    let db = env.path("orders.db");
    let conn = database(&db);
    for n in 0..20 {
        insert(&conn, n);
    }
    let watcher = Watcher::start(&env, &["--every", "1s", arg(&db)]);
    assert_eq!(watcher.next_status(&db), "saved");
    // Another process forgets that snapshot and prunes its data at once:
    // the packs the watcher's index knows are gone.
    let first = watch_snapshots(&env, &db)[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    env.ok(&["forget", &first]);
    env.ok(&["prune", "--instant-delete"]);
    insert(&conn, 20);
    let mut seen = watcher.next_status(&db);
    if seen == "unchanged" {
        seen = watcher.next_status(&db);
    }
    assert_eq!(seen, "saved", "{}", watcher.stderr());
    let (code, _, stderr) = watcher.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "{stderr}");
    env.ok(&["check", "--read-data"]);
    let target = env.path("r");
    env.ok(&["restore", "latest", "--target", arg(&target)]);
    assert_eq!(
        numbers(&restored(&target, &db)),
        (0..=20).collect::<Vec<_>>()
    );
}

/// The metrics operations.md lists as written by watch.
fn documented_watch_metrics() -> Vec<String> {
    let text = include_str!("../../docs/operations.md");
    text.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.len() > 3 && cells[2].split(", ").any(|c| c == "watch"))
                .then(|| cells[1].trim_matches('`').to_string())
        })
        .collect()
}

#[test]
fn the_metrics_file_holds_every_documented_watch_metric() {
    let env = Env::with_repo();
    let db = env.path("orders.db");
    insert(&database(&db), 1);
    let metrics = env.path("arca.prom");
    env.ok(&["--metrics-file", arg(&metrics), "watch", "--once", arg(&db)]);
    let text = fs::read_to_string(&metrics).unwrap();
    let documented = documented_watch_metrics();
    assert!(documented.len() >= 6, "{documented:?}");
    for name in &documented {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name}{{"))),
            "{name} not written:\n{text}"
        );
    }
    let database = format!("database=\"{}\"", arg(&db));
    for name in [
        "arca_watch_last_snapshot_timestamp_seconds",
        "arca_watch_snapshot_duration_seconds",
        "arca_watch_snapshot_bytes_added",
        "arca_watch_failures_total",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("{name}{{{database},"))),
            "{name}:\n{text}"
        );
    }
    assert!(
        text.contains("arca_run_exit_code{command=\"watch\""),
        "{text}"
    );
}

#[test]
fn bad_intervals_and_no_database_are_usage_errors() {
    let env = Env::with_repo();
    let db = env.path("orders.db");
    insert(&database(&db), 1);
    for every in ["0", "abc", "2w", "10m"] {
        let out = env.run(&["watch", "--every", every, arg(&db)]);
        let stderr = expect_failure(&out, 2);
        assert!(stderr.contains("--every"), "{stderr}");
    }
    let out = env.run(&["watch", "--once"]);
    let stderr = expect_failure(&out, 2);
    assert!(stderr.contains("database"), "{stderr}");
    // Nothing was stored.
    assert!(watch_snapshots(&env, &db).is_empty());
}

#[test]
fn sigterm_during_a_snapshot_abandons_it_with_nothing_half_written() {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1MiB"]);
    let db = env.path("orders.db");
    let conn = database(&db);
    conn.execute_batch("BEGIN").unwrap();
    for n in 0..48 {
        conn.execute(
            "INSERT INTO t VALUES (?1, ?2)",
            rusqlite::params![n, random_bytes(512 << 10, n as u64)],
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
    let mut watcher = Watcher::start(&env, &["--every", "1h", arg(&db)]);
    // Polling for a condition: a pack of the first snapshot is being
    // written.
    let started = Instant::now();
    while temporaries(&env.repo.join("data")).is_empty() {
        assert!(
            watcher.child.try_wait().unwrap().is_none(),
            "the snapshot ended before it could be interrupted"
        );
        assert!(started.elapsed() < DEADLINE, "no pack was ever written");
        std::thread::yield_now();
    }
    let (code, _, stderr) = watcher.stop(libc::SIGTERM);
    assert_eq!(code, Some(143), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(temporaries(env.dir.path()).is_empty());
    assert!(watch_snapshots(&env, &db).is_empty());
    assert_eq!(fs::read_dir(env.repo.join("locks")).unwrap().count(), 0);
    // A restart takes the snapshot.
    env.ok(&["watch", "--once", arg(&db)]);
    assert_eq!(watch_snapshots(&env, &db).len(), 1);
}
