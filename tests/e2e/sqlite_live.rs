//! Live SQLite databases under a writer that never stops: every snapshot
//! `arca watch` takes restores to a database that passes
//! `PRAGMA integrity_check` and holds exactly a prefix of the writer's
//! transactions; `restore --as-of` finds every transaction committed an
//! interval before the time asked for; and a plain copy of the same live
//! database (`--sqlite never`) is shown to be torn, so the check can fail.
//!
//! The writer is this test binary run again as a process of its own
//! ([`writer_process`]), so that it can be killed with SIGKILL mid-flight
//! and its POSIX locks are those of another process, as in production.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use serde_json::Value;

use crate::util::Env;

/// Accounts between which every transaction moves money: their sum never
/// changes, so a half-applied transaction shows.
const ACCOUNTS: i64 = 100;
const OPENING_BALANCE: i64 = 1_000_000;

/// Rows of about 1 KiB that fill the database to its size; every
/// transaction rewrites one at random, so commits touch pages all over it.
const FILLER_ROW: usize = 1000;

/// The environment variable that makes [`writer_process`] the writer.
const WRITER_VAR: &str = "ARCA_TEST_SQLITE_WRITER";

/// A database of at least `mib` MiB in `journal` mode (`wal` or `delete`):
/// `counter` (the last transaction's id), `log` (one row per transaction),
/// `accounts` and `filler`.
fn make_database(path: &Path, journal: &str, mib: usize) {
    let db = Connection::open(path).unwrap();
    db.execute_batch(
        "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;
         CREATE TABLE counter (one INTEGER PRIMARY KEY CHECK (one = 1), n INTEGER NOT NULL);
         INSERT INTO counter VALUES (1, 0);
         CREATE TABLE log (id INTEGER PRIMARY KEY, at_ns INTEGER NOT NULL, note TEXT NOT NULL);
         CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL);
         CREATE TABLE filler (id INTEGER PRIMARY KEY, v TEXT NOT NULL);
         BEGIN;",
    )
    .unwrap();
    for id in 1..=ACCOUNTS {
        db.execute(
            "INSERT INTO accounts VALUES (?1, ?2)",
            (id, OPENING_BALANCE),
        )
        .unwrap();
    }
    let rows = mib * 1024 * 1024 / FILLER_ROW;
    let mut insert = db
        .prepare("INSERT INTO filler (v) VALUES (substr(hex(randomblob(?1)), 1, ?2))")
        .unwrap();
    for _ in 0..rows {
        insert
            .execute((FILLER_ROW as i64 / 2, FILLER_ROW as i64))
            .unwrap();
    }
    drop(insert);
    db.execute_batch("COMMIT").unwrap();
    db.pragma_update(None, "journal_mode", journal).unwrap();
}

/// What a restored database holds, when it is consistent.
#[derive(Debug)]
struct State {
    /// The last transaction it holds: it holds exactly 1..=last.
    last: i64,
}

/// Checks a restored database: integrity, every transaction whole, the
/// transactions exactly 1..=n. An error says what is wrong.
fn state_of(path: &Path) -> Result<State, String> {
    // Opened as a restore's user would: a journal restored beside a plain
    // copy is rolled back.
    let db = Connection::open(path).map_err(|e| e.to_string())?;
    let check = |sql: &str| -> Result<i64, String> {
        db.query_row(sql, [], |r| r.get(0))
            .map_err(|e| format!("{sql}: {e}"))
    };
    let integrity: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("integrity_check: {e}"))?;
    if integrity != "ok" {
        return Err(format!("integrity_check: {integrity}"));
    }
    let n = check("SELECT n FROM counter")?;
    let rows = check("SELECT count(*) FROM log")?;
    let max = check("SELECT coalesce(max(id), 0) FROM log")?;
    let total = check("SELECT sum(balance) FROM accounts")?;
    if rows != n || max != n {
        return Err(format!(
            "counter says {n} transactions, the log holds {rows} rows up to {max}"
        ));
    }
    if total != ACCOUNTS * OPENING_BALANCE {
        return Err(format!("the accounts sum to {total}"));
    }
    Ok(State { last: n })
}

/// The writer's own record: each committed transaction's id and the time
/// its commit returned, in nanoseconds since the epoch.
fn writer_log(path: &Path) -> Vec<(i64, u128)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|line| {
            let (id, at) = line.split_once(' ')?;
            Some((id.parse().ok()?, at.parse().ok()?))
        })
        .collect()
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Killed {
    /// Kills it with SIGKILL now and reaps it.
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Killed {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the writer on `db`: `rate` transactions a second, each logged to
/// `log` once committed.
fn start_writer(db: &Path, log: &Path, rate: u32) -> Killed {
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "sqlite_live::writer_process",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            WRITER_VAR,
            format!("{}\n{}\n{rate}", db.display(), log.display()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Killed(child)
}

/// The writer, when run by [`start_writer`]; does nothing otherwise.
#[test]
#[ignore = "the writer process of the live-database tests, run by them"]
fn writer_process() {
    let Ok(spec) = std::env::var(WRITER_VAR) else {
        return;
    };
    let mut parts = spec.lines();
    let db_path = PathBuf::from(parts.next().unwrap());
    let log_path = PathBuf::from(parts.next().unwrap());
    let rate: u64 = parts.next().unwrap().parse().unwrap();
    let mut db = Connection::open(&db_path).unwrap();
    db.busy_timeout(Duration::from_secs(120)).unwrap();
    // Commits reach the operating system, not the disk: the test kills the
    // writer, never the machine.
    db.pragma_update(None, "synchronous", "OFF").unwrap();
    let filler: i64 = db
        .query_row("SELECT max(id) FROM filler", [], |r| r.get(0))
        .unwrap();
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .unwrap();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let start = Instant::now();
    let mut id: i64 = 0;
    loop {
        id += 1;
        let (from, to) = (
            (next() % ACCOUNTS as u64) as i64 + 1,
            (next() % ACCOUNTS as u64) as i64 + 1,
        );
        let amount = (next() % 1000) as i64;
        let row = (next() % filler as u64) as i64 + 1;
        let tx = db
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        tx.execute(
            "INSERT INTO log VALUES (?1, ?2, 'transaction ' || ?1)",
            (id, now_ns() as i64),
        )
        .unwrap();
        tx.execute("UPDATE counter SET n = ?1", [id]).unwrap();
        tx.execute(
            "UPDATE accounts SET balance = balance - ?2 WHERE id = ?1",
            (from, amount),
        )
        .unwrap();
        tx.execute(
            "UPDATE accounts SET balance = balance + ?2 WHERE id = ?1",
            (to, amount),
        )
        .unwrap();
        tx.execute(
            "UPDATE filler SET v = substr(hex(randomblob(?2)), 1, ?3) WHERE id = ?1",
            (row, FILLER_ROW as i64 / 2, FILLER_ROW as i64),
        )
        .unwrap();
        tx.commit().unwrap();
        // One write a transaction: a kill loses at most the line of the
        // transaction committed last.
        log.write_all(format!("{id} {}\n", now_ns()).as_bytes())
            .unwrap();
        let due = Duration::from_micros(id as u64 * 1_000_000 / rate);
        if let Some(ahead) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
}

/// Snapshots of the repository, oldest first: (id, time in ns).
fn snapshots(env: &Env) -> Vec<(String, u128)> {
    let list = env.json(&["snapshots"]);
    let mut out: Vec<(String, u128)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let time = jiff::Timestamp::from_str(s["time"].as_str().unwrap()).unwrap();
            (
                s["id"].as_str().unwrap().to_string(),
                time.as_nanosecond() as u128,
            )
        })
        .collect();
    out.sort_by_key(|s| s.1);
    out
}

use std::str::FromStr;

/// Restores `which` (a snapshot id, or `latest --as-of T`) into `target`
/// and returns the restored database's state.
fn restore_state(env: &Env, args: &[&str], target: &Path, db: &Path) -> Result<State, String> {
    let _ = std::fs::remove_dir_all(target);
    let mut all = vec!["restore", "--target", target.to_str().unwrap()];
    all.extend_from_slice(args);
    env.ok(&all);
    let restored = target.join(db.strip_prefix("/").unwrap());
    let dir = restored.parent().unwrap();
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["live.db"], "only the database, no journal");
    let state = state_of(&restored);
    std::fs::remove_dir_all(target).unwrap();
    state
}

/// A thousand transactions a second for a minute against a database of
/// 200 MiB while `arca watch --every 5s` runs; then the writer is killed.
fn watch_under_load(journal: &str) {
    const INTERVAL_S: u64 = 5;
    const RUN: Duration = Duration::from_secs(60);
    let env = Env::with_repo();
    let data = env.path("data");
    std::fs::create_dir(&data).unwrap();
    let db = data.join("live.db");
    make_database(&db, journal, 200);
    let log = env.path("writer.log");
    let mut writer = start_writer(&db, &log, 1000);
    let started = now_ns();
    let mut watch = env
        .cmd(&[
            "watch",
            db.to_str().unwrap(),
            "--every",
            &format!("{INTERVAL_S}s"),
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(env.path("watch.err")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + RUN;
    while Instant::now() < deadline {
        if let Some(status) = writer.0.try_wait().unwrap() {
            panic!("the writer stopped: {status}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    writer.kill();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(watch.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = watch.wait().unwrap();
    let errors = std::fs::read_to_string(env.path("watch.err")).unwrap();
    // 0 between rounds; 143 when the signal came during a snapshot, which
    // is then abandoned (docs/sqlite.md).
    assert!(
        matches!(status.code(), Some(0 | 143)),
        "watch: {status}: {errors}"
    );

    let log = writer_log(&log);
    let committed = log.len();
    assert!(
        committed > 40_000,
        "the writer committed only {committed} transactions in a minute"
    );
    let snaps = snapshots(&env);
    assert!(
        snaps.len() >= 10,
        "{} snapshots in a minute at {INTERVAL_S}s: {errors}",
        snaps.len()
    );
    let target = env.path("restored");
    let mut previous = 0;
    for (id, time) in &snaps {
        let state = restore_state(&env, &[id.as_str()], &target, &db)
            .unwrap_or_else(|e| panic!("snapshot {id}: {e}"));
        // Every transaction whose commit returned before the snapshot
        // began is in it.
        let before = log
            .iter()
            .filter(|(_, at)| at < time)
            .map(|(id, _)| *id)
            .max()
            .unwrap_or(0);
        assert!(
            state.last >= before,
            "snapshot {id} holds {} transactions, {before} had committed before it began",
            state.last
        );
        assert!(state.last >= previous, "snapshot {id} went back in time");
        previous = state.last;
    }

    // The state as of the middle of the minute: every transaction
    // committed an interval before it is there.
    let middle = started + RUN.as_nanos() / 2;
    let as_of = jiff::Timestamp::from_nanosecond(middle as i128).unwrap();
    let state = restore_state(&env, &["--as-of", &as_of.to_string()], &target, &db).unwrap();
    let due = log
        .iter()
        .filter(|(_, at)| *at + u128::from(INTERVAL_S) * 1_000_000_000 <= middle)
        .map(|(id, _)| *id)
        .max()
        .unwrap();
    assert!(
        state.last >= due,
        "as of {as_of}: {} transactions, {due} had committed an interval before",
        state.last
    );
    eprintln!(
        "{journal}: {committed} transactions in {}s, {} snapshots, each a consistent prefix; \
         as of the middle: {} transactions ({due} due)",
        RUN.as_secs(),
        snaps.len(),
        state.last
    );
    let after: Vec<i64> = log
        .iter()
        .filter(|(_, at)| *at > middle)
        .map(|(id, _)| *id)
        .collect();
    assert!(
        after.first().is_none_or(|first| state.last < *first),
        "as of {as_of} holds transactions committed after it"
    );
}

#[test]
fn watch_keeps_a_wal_database_consistent_under_a_thousand_commits_a_second() {
    watch_under_load("wal");
}

#[test]
fn watch_keeps_a_rollback_journal_database_consistent_under_a_thousand_commits_a_second() {
    watch_under_load("delete");
}

/// A plain read of a database being written can be torn, and this test can
/// tell: `--sqlite never` produces at least one copy that fails the checks,
/// while every snapshot arca takes of the same database passes them.
#[test]
fn a_plain_copy_of_a_live_database_is_torn_where_arcas_image_is_not() {
    let env = Env::with_repo();
    let data = env.path("data");
    std::fs::create_dir(&data).unwrap();
    let db = data.join("live.db");
    make_database(&db, "delete", 64);
    let log = env.path("writer.log");
    let mut writer = start_writer(&db, &log, 1000);
    let target = env.path("restored");
    let db_str = db.to_str().unwrap();
    let json_id = |v: Value| v["id"].as_str().unwrap().to_string();

    let mut torn = 0;
    for _ in 0..10 {
        let id = json_id(env.json(&["snapshot", "--sqlite", "never", db_str]));
        if plain_state(&env, &id, &target, &db).is_err() {
            torn += 1;
            break;
        }
    }
    for _ in 0..5 {
        let id = json_id(env.json(&["snapshot", db_str]));
        restore_state(&env, &[id.as_str()], &target, &db)
            .unwrap_or_else(|e| panic!("arca's snapshot {id} is not consistent: {e}"));
    }
    writer.kill();
    assert!(
        torn > 0,
        "ten plain copies of a live database were all consistent"
    );
}

/// Like [`restore_state`] for a plain copy: its journal may come back
/// beside it, and SQLite may roll that back on opening.
fn plain_state(env: &Env, id: &str, target: &Path, db: &Path) -> Result<State, String> {
    let _ = std::fs::remove_dir_all(target);
    env.ok(&["restore", id, "--target", target.to_str().unwrap()]);
    let state = state_of(&target.join(db.strip_prefix("/").unwrap()));
    std::fs::remove_dir_all(target).unwrap();
    state
}
