//! Live SQLite databases: a snapshot stores one committed state of each,
//! with its write-ahead log folded in, read through SQLite; a database that
//! cannot be read so is stored plainly (or, under `always`, not at all)
//! with a warning; database pages are chunked in page groups.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arca_core::sqlite::SqliteMode;
use arca_core::{
    Repository, SnapshotOptions, SnapshotOutcome, SnapshotProgress, SnapshotWarningKind,
};
use rusqlite::Connection;

use crate::common;

const PASSWORD: &[u8] = b"pw";

fn repository() -> Repository {
    let memory = common::init_memory(PASSWORD, &common::test_options());
    common::open(Arc::new(memory), PASSWORD)
}

fn take(repo: &mut Repository, src: &Path, mode: SqliteMode) -> SnapshotOutcome {
    take_with_scratch(repo, src, mode, src.parent().unwrap())
}

fn take_with_scratch(
    repo: &mut Repository,
    src: &Path,
    mode: SqliteMode,
    scratch: &Path,
) -> SnapshotOutcome {
    let options = SnapshotOptions {
        paths: vec![src.to_path_buf()],
        hostname: "h".into(),
        sqlite: mode,
        scratch_dir: Some(scratch.to_path_buf()),
        ..Default::default()
    };
    arca_core::snapshot(repo, &options, &SnapshotProgress::default()).unwrap()
}

/// Restores `outcome`'s snapshot and returns the directory `src` came back as.
fn restored(repo: &Repository, outcome: &SnapshotOutcome, src: &Path, into: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(into);
    common::restore(repo, &outcome.snapshot, into).unwrap();
    into.join(src.strip_prefix("/").unwrap())
}

/// A temporary directory holding an empty source directory `src`.
fn source_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    (dir, src)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn count(path: &Path) -> i64 {
    let db = Connection::open(path).unwrap();
    let ok: String = db
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "{}", path.display());
    db.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

/// A database with `rows` committed rows of about 200 bytes.
fn database(path: &Path, journal: &str, rows: i64) -> Connection {
    let db = Connection::open(path).unwrap();
    db.pragma_update(None, "journal_mode", journal).unwrap();
    db.execute_batch(
        "PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);",
    )
    .unwrap();
    insert(&db, rows);
    db
}

fn insert(db: &Connection, rows: i64) {
    db.execute_batch("BEGIN").unwrap();
    for _ in 0..rows {
        db.execute(
            "INSERT INTO t (v) VALUES (printf('%.200c', 'x') || random())",
            [],
        )
        .unwrap();
    }
    db.execute_batch("COMMIT").unwrap();
}

#[test]
fn a_wal_database_is_stored_as_its_committed_state_with_the_log_folded_in() {
    let (dir, src) = source_dir();
    let path = src.join("trades.db");
    let writer = database(&path, "wal", 3000);
    // Everything is in the log, nothing checkpointed; a transaction is
    // under way and must not be seen.
    assert!(std::fs::metadata(src.join("trades.db-wal")).unwrap().len() > 500_000);
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    writer
        .execute("INSERT INTO t (v) VALUES ('uncommitted')", [])
        .unwrap();
    std::fs::write(src.join("notes.txt"), b"beside").unwrap();

    let mut repo = repository();
    let outcome = take(&mut repo, &src, SqliteMode::Auto);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    let back = restored(&repo, &outcome, &src, &dir.path().join("out"));
    assert_eq!(
        names(&back),
        ["notes.txt", "trades.db"],
        "no -wal or -shm stored"
    );
    assert_eq!(count(&back.join("trades.db")), 3000);
    writer.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn a_rollback_journal_database_is_copied_consistently_past_a_pending_writer() {
    let (dir, src) = source_dir();
    let path = src.join("orders.db");
    let writer = database(&path, "delete", 2000);
    // A writer with changes of its own not yet committed (a reserved lock,
    // which readers may share): the image holds the committed rows only.
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    insert_uncommitted(&writer);

    let mut repo = repository();
    let outcome = take(&mut repo, &src, SqliteMode::Auto);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    let back = restored(&repo, &outcome, &src, &dir.path().join("out"));
    assert_eq!(names(&back), ["orders.db"]);
    assert_eq!(count(&back.join("orders.db")), 2000);
    writer.execute_batch("ROLLBACK").unwrap();
    // The temporary copy is gone.
    assert_eq!(names(dir.path()), ["out", "src"]);
}

fn insert_uncommitted(db: &Connection) {
    for _ in 0..500 {
        db.execute("INSERT INTO t (v) VALUES ('pending')", [])
            .unwrap();
    }
}

#[test]
fn never_stores_database_files_as_they_are() {
    let (dir, src) = source_dir();
    let _writer = database(&src.join("t.db"), "wal", 500);
    let mut repo = repository();
    let outcome = take(&mut repo, &src, SqliteMode::Never);
    let back = restored(&repo, &outcome, &src, &dir.path().join("out"));
    assert_eq!(names(&back), ["t.db", "t.db-shm", "t.db-wal"]);
    assert_eq!(
        std::fs::read(back.join("t.db-wal")).unwrap(),
        std::fs::read(src.join("t.db-wal")).unwrap()
    );
}

#[test]
fn a_database_sqlite_cannot_read_is_stored_plainly_with_a_warning_or_left_out_under_always() {
    let (dir, src) = source_dir();
    drop(database(&src.join("t.db"), "delete", 300));
    // Damage SQLite refuses to read: a file format it does not know.
    let mut bytes = std::fs::read(src.join("t.db")).unwrap();
    bytes[19] = 9;
    std::fs::write(src.join("t.db"), &bytes).unwrap();

    let mut repo = repository();
    let outcome = take(&mut repo, &src, SqliteMode::Auto);
    assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
    let warning = &outcome.warnings[0];
    assert_eq!(warning.kind, SnapshotWarningKind::Inconsistent);
    assert!(warning.path.ends_with("t.db"));
    assert!(
        warning.message.contains("plain copy"),
        "{}",
        warning.message
    );
    let back = restored(&repo, &outcome, &src, &dir.path().join("out"));
    assert_eq!(std::fs::read(back.join("t.db")).unwrap(), bytes);

    // Written again, so that it is read again.
    std::fs::remove_file(src.join("t.db")).unwrap();
    std::fs::write(src.join("t.db"), &bytes).unwrap();
    let outcome = take(&mut repo, &src, SqliteMode::Always);
    assert_eq!(outcome.warnings.len(), 1, "{:?}", outcome.warnings);
    assert!(outcome.warnings[0].message.contains("not stored"));
    let back = restored(&repo, &outcome, &src, &dir.path().join("out2"));
    assert!(names(&back).is_empty());
}

#[test]
fn an_unchanged_database_is_not_read_again_unless_its_log_is_live() {
    let (dir, src) = source_dir();
    drop(database(&src.join("quiet.db"), "delete", 200));
    let live = database(&src.join("live.db"), "wal", 200);

    let mut repo = repository();
    take(&mut repo, &src, SqliteMode::Auto);
    let second = take(&mut repo, &src, SqliteMode::Auto);
    let summary = second.snapshot.summary.clone().unwrap();
    // The quiet one is reused unread; the live one's log may hold commits
    // its file does not show, so it is read again (and adds nothing).
    assert_eq!(summary.files_unchanged, 1);
    assert_eq!(summary.files_changed, 1);
    assert!(summary.bytes_added < 4096, "{}", summary.bytes_added);

    // A commit that only reaches the log is in the next snapshot.
    insert(&live, 10);
    let third = take(&mut repo, &src, SqliteMode::Auto);
    let back = restored(&repo, &third, &src, &dir.path().join("out"));
    let db = Connection::open(back.join("live.db")).unwrap();
    let n: i64 = db
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 210);
}

#[test]
fn a_changed_page_costs_one_page_group() {
    let (_dir, src) = source_dir();
    let db = database(&src.join("t.db"), "delete", 20_000);
    let mut repo = repository();
    let first = take(&mut repo, &src, SqliteMode::Auto);
    let stored = first.snapshot.summary.clone().unwrap().total_bytes;
    assert!(stored > 4_000_000, "{stored}");
    db.execute("UPDATE t SET v = 'changed' WHERE id = 10000", [])
        .unwrap();
    let second = take(&mut repo, &src, SqliteMode::Auto);
    let added = second.snapshot.summary.clone().unwrap().bytes_added;
    // Page 1 (the header's change counter) and the row's page: two groups
    // of 32 KiB, plus the trees of the directories on the way (a few KiB).
    // Content-defined chunks of 1 MiB would cost four times as much.
    assert!(added <= 2 * 32 * 1024 + 16 * 1024, "{added} bytes added");
}

#[test]
fn postgresql_relation_files_are_chunked_in_page_groups() {
    let dir = tempfile::tempdir().unwrap();
    let rel = dir.path().join("pgdata/base/16384");
    std::fs::create_dir_all(&rel).unwrap();
    let mut bytes = common::random(4 << 20, 7);
    std::fs::write(rel.join("16385"), &bytes).unwrap();
    std::fs::write(rel.join("notes"), &bytes).unwrap();
    let src = dir.path().join("pgdata");
    let mut repo = repository();
    take(&mut repo, &src, SqliteMode::Auto);
    bytes[2 * 1024 * 1024 + 100] ^= 0xFF;
    std::fs::write(rel.join("16385"), &bytes).unwrap();
    let second = take(&mut repo, &src, SqliteMode::Auto);
    let added = second.snapshot.summary.unwrap().bytes_added;
    assert!(added <= 32 * 1024 + 8192, "{added} bytes added");
}

#[test]
fn a_rollback_journal_database_nobody_writes_is_read_without_a_copy() {
    let (dir, src) = source_dir();
    drop(database(&src.join("orders.db"), "delete", 1000));
    // Nowhere to copy to: a copy would fail and fall back, with a warning.
    let nowhere = dir.path().join("no such directory");
    let mut repo = repository();
    let outcome = take_with_scratch(&mut repo, &src, SqliteMode::Auto, &nowhere);
    assert!(outcome.warnings.is_empty(), "{:?}", outcome.warnings);
    let back = restored(&repo, &outcome, &src, &dir.path().join("out"));
    assert_eq!(count(&back.join("orders.db")), 1000);
}

#[test]
fn an_unchanged_database_leaves_its_idle_journals_out_too() {
    let (dir, src) = source_dir();
    let db = database(&src.join("t.db"), "wal", 300);
    // Everything checkpointed: the log is empty, the index stays while the
    // connection is open.
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    assert_eq!(std::fs::metadata(src.join("t.db-wal")).unwrap().len(), 0);
    assert!(src.join("t.db-shm").exists());
    let mut repo = repository();
    let first = take(&mut repo, &src, SqliteMode::Auto);
    let second = take(&mut repo, &src, SqliteMode::Auto);
    assert_eq!(second.snapshot.summary.clone().unwrap().files_unchanged, 1);
    for (which, outcome) in [("first", first), ("second", second)] {
        let back = restored(&repo, &outcome, &src, &dir.path().join(which));
        assert_eq!(names(&back), ["t.db"], "{which}");
        assert_eq!(count(&back.join("t.db")), 300);
    }
}

/// A database's change stamp moves with every commit, and not with what a
/// reader does: the empty log and index SQLite creates beside a WAL
/// database nobody had open (this snapshot's own reader among them).
#[test]
fn the_change_stamp_moves_with_commits_not_with_a_readers_empty_log() {
    use arca_core::sqlite::ChangeStamp;
    let (_dir, src) = source_dir();
    let path = src.join("t.db");
    drop(database(&path, "wal", 10));
    // The last connection closed: the log was checkpointed and deleted.
    assert!(!src.join("t.db-wal").exists());
    let before = ChangeStamp::read(&path).unwrap();
    let mut repo = repository();
    take(&mut repo, &src, SqliteMode::Auto);
    assert!(src.join("t.db-wal").exists(), "the reader made a log");
    assert_eq!(ChangeStamp::read(&path).unwrap(), before);

    // A commit kept in the log, then the same log emptied by a checkpoint.
    let db = Connection::open(&path).unwrap();
    db.execute_batch("PRAGMA wal_autocheckpoint = 0").unwrap();
    insert(&db, 1);
    let logged = ChangeStamp::read(&path).unwrap();
    assert_ne!(logged, before);
    db.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    assert_eq!(std::fs::metadata(src.join("t.db-wal")).unwrap().len(), 0);
    let checkpointed = ChangeStamp::read(&path).unwrap();
    assert_ne!(checkpointed, logged);
    assert_ne!(checkpointed, before);
}

/// `inconsistent_tags` mark a snapshot holding a database that could not
/// be read consistently, and only such a snapshot.
#[test]
fn a_snapshot_with_an_inconsistent_database_gets_the_inconsistent_tags() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    drop(database(&db, "delete", 10));
    let mut repo = repository();
    let options = SnapshotOptions {
        paths: vec![db.clone()],
        hostname: "h".into(),
        tags: vec!["watch".into(), "torn".into()],
        inconsistent_tags: vec!["torn".into(), "inconsistent".into()],
        scratch_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    };
    let take = |repo: &mut Repository| {
        arca_core::snapshot(repo, &options, &SnapshotProgress::default()).unwrap()
    };
    assert_eq!(take(&mut repo).snapshot.tags, ["watch", "torn"]);
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[19] = 9; // a file format SQLite does not know
    std::fs::write(&db, &bytes).unwrap();
    let outcome = take(&mut repo);
    assert_eq!(outcome.warnings[0].kind, SnapshotWarningKind::Inconsistent);
    assert_eq!(outcome.snapshot.tags, ["watch", "torn", "inconsistent"]);
    let stored = repo.load_snapshot(&outcome.id.unwrap()).unwrap();
    assert_eq!(stored.tags, outcome.snapshot.tags);
}

/// A database restored where a crashed server left it: the log and index
/// beside the old file are not the restored database's, and SQLite would
/// apply that log to it. They are moved aside, kept under a new name.
#[test]
fn a_restored_database_is_not_joined_to_the_stale_log_beside_it() {
    let (dir, src) = source_dir();
    let db = database(&src.join("t.db"), "wal", 10);
    let mut repo = repository();
    let outcome = take(&mut repo, &src, SqliteMode::Auto);

    // Later commits, still in the log, as a crashed server leaves them.
    insert(&db, 50);
    let out = dir.path().join("out");
    let back = out.join(src.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&back).unwrap();
    for name in ["t.db", "t.db-wal", "t.db-shm"] {
        std::fs::copy(src.join(name), back.join(name)).unwrap();
    }
    let stale = std::fs::read(back.join("t.db-wal")).unwrap();
    assert!(!stale.is_empty());
    drop(db);

    let summary = common::restore(&repo, &outcome.snapshot, &out).unwrap();
    assert_eq!(summary.journals_set_aside, 2, "{:?}", summary.warnings);
    assert!(
        summary.warnings.iter().any(|w| w.contains("t.db-wal")),
        "{:?}",
        summary.warnings
    );
    let mut left = names(&back);
    left.retain(|n| n != "t.db");
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(
        left.iter().all(|n| n.contains(".before-restore")),
        "{left:?}"
    );
    // Kept, byte for byte.
    let wal_aside = left.iter().find(|n| n.starts_with("t.db-wal")).unwrap();
    assert_eq!(std::fs::read(back.join(wal_aside)).unwrap(), stale);
    assert_eq!(count(&back.join("t.db")), 10);

    // A log the snapshot holds itself (a plain copy) is restored, not set
    // aside; a file that is no database keeps the names beside it.
    let db = Connection::open(src.join("t.db")).unwrap();
    db.execute_batch("PRAGMA wal_autocheckpoint = 0").unwrap();
    insert(&db, 5);
    std::fs::write(src.join("notes"), b"plain text").unwrap();
    let outcome = take(&mut repo, &src, SqliteMode::Never);
    let logged = std::fs::read(src.join("t.db-wal")).unwrap();
    std::fs::write(back.join("notes"), b"old").unwrap();
    std::fs::write(back.join("notes-wal"), b"mine").unwrap();
    let summary = common::restore(&repo, &outcome.snapshot, &out).unwrap();
    assert_eq!(summary.journals_set_aside, 0, "{:?}", summary.warnings);
    assert_eq!(std::fs::read(back.join("t.db-wal")).unwrap(), logged);
    assert_eq!(std::fs::read(back.join("notes-wal")).unwrap(), b"mine");
    drop(db);
}
