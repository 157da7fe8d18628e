//! Live SQLite databases: recognising them, reading a transactionally
//! consistent image of one through SQLite itself, and telling cheaply
//! whether one changed.
//!
//! An image is the database's pages 1..N as one committed state sees them,
//! with whatever of that state is still in the write-ahead log folded in:
//! the file a restore writes opens as that state, with no `-wal` beside it.
//! It is read one of two ways, both SQLite's own:
//!
//! - **Pages** (WAL mode): one read transaction streams the pages through
//!   the `sqlite_dbpage` virtual table. In WAL mode a reader never blocks a
//!   writer, and no copy is made anywhere.
//! - **Copy** (rollback-journal mode, or a SQLite built without
//!   `sqlite_dbpage`): the online backup API copies the database into a
//!   temporary file in one step, which is then read like any file. A
//!   rollback-journal reader holds writers off for as long as it reads, so
//!   this keeps them waiting for a local copy only, not for the upload.
//!   A rollback-journal database is first read directly, without any lock
//!   held, and what was read is kept only when SQLite's `data_version` and
//!   the file's stamp show that nothing was written while it was read
//!   (`Database::committed_state`); otherwise (and the read stops as soon
//!   as the file shows a write, `Unwritten`) the copy is made.
//!
//! Nothing here writes to the database: it is opened read-only. See
//! docs/sqlite.md.

use std::fs::Metadata;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

/// The first 16 bytes of every SQLite database file.
pub const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Bytes of the database header, at the start of page 1.
pub const HEADER_LEN: usize = 100;

/// How long opening a database waits for a writer's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How `snapshot` reads files that are SQLite databases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SqliteMode {
    /// A file whose header says it is a database is stored as a consistent
    /// image; when that fails it is read as a plain file, with a warning.
    #[default]
    Auto,
    /// As `Auto`, but a database that cannot be read consistently is left
    /// out (with a warning) rather than stored as a possibly torn copy.
    Always,
    /// Every file is read as plain bytes.
    Never,
}

impl std::str::FromStr for SqliteMode {
    type Err = crate::Error;

    fn from_str(text: &str) -> crate::Result<SqliteMode> {
        match text {
            "auto" => Ok(SqliteMode::Auto),
            "always" => Ok(SqliteMode::Always),
            "never" => Ok(SqliteMode::Never),
            _ => Err(crate::Error::InvalidInput(format!(
                "{text:?} is not an SQLite mode: use auto, always or never"
            ))),
        }
    }
}

/// The page size the header declares, when `head` (the file's first
/// [`HEADER_LEN`] bytes or more) is an SQLite database header.
pub fn page_size(head: &[u8]) -> Option<u32> {
    if head.len() < HEADER_LEN || !head.starts_with(MAGIC) {
        return None;
    }
    let raw = u16::from_be_bytes([head[16], head[17]]);
    let size = if raw == 1 { 65536 } else { u32::from(raw) };
    (size.is_power_of_two() && (512..=65536).contains(&size)).then_some(size)
}

/// The names a database's journals take beside it.
pub const JOURNAL_SUFFIXES: [&str; 3] = ["-wal", "-shm", "-journal"];

/// How an image was read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageMethod {
    /// Streamed page by page inside one read transaction.
    Pages,
    /// Copied with the online backup API into a temporary file first.
    Copy,
}

/// A database opened read-only for an image.
pub(crate) struct Database {
    conn: Connection,
    /// Its page size in bytes.
    pub page_size: u32,
    /// Its journal mode as SQLite reports it (`wal`, `delete`, …).
    pub journal_mode: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("page_size", &self.page_size)
            .field("journal_mode", &self.journal_mode)
            .finish_non_exhaustive()
    }
}

/// Why a consistent image could not be read; the caller falls back.
pub(crate) fn describe(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(code, Some(msg)) => {
            format!("{msg} ({})", code.extended_code)
        }
        other => other.to_string(),
    }
}

impl Database {
    /// Opens the database at `at` (reached through its directory's handle)
    /// read-only. SQLite resolves the path itself, so the file it opened is
    /// checked to be the one the walk listed.
    pub(crate) fn open(at: &Path, listed: &Metadata) -> Result<Database, String> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(at, flags).map_err(|e| describe(&e))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| describe(&e))?;
        // The database may be anyone's: nothing its schema says (views,
        // triggers, functions) is trusted, and no statement may corrupt it.
        for (setting, on) in [
            (DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false),
            (DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true),
        ] {
            conn.set_db_config(setting, on).map_err(|e| describe(&e))?;
        }
        let page_size: u32 = conn
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(|e| describe(&e))?;
        let journal_mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .map_err(|e| describe(&e))?;
        let db = Database {
            conn,
            page_size,
            journal_mode: journal_mode.to_ascii_lowercase(),
        };
        db.check_identity(listed)?;
        Ok(db)
    }

    /// The file SQLite has open is the one listed (same device and inode).
    fn check_identity(&self, listed: &Metadata) -> Result<(), String> {
        let path = self
            .conn
            .path()
            .filter(|p| !p.is_empty())
            .ok_or("SQLite did not say which file it opened")?;
        let now = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?;
        if now.dev() != listed.dev() || now.ino() != listed.ino() {
            return Err(
                "it was replaced between listing and opening, and is not stored".to_string(),
            );
        }
        Ok(())
    }

    /// How an image of this database is read: pages in WAL mode when this
    /// SQLite has `sqlite_dbpage`, a copy otherwise.
    pub(crate) fn method(&self) -> ImageMethod {
        let has_dbpage = self
            .conn
            .prepare("SELECT 1 FROM sqlite_dbpage WHERE pgno = 1")
            .is_ok();
        if self.journal_mode == "wal" && has_dbpage {
            ImageMethod::Pages
        } else {
            ImageMethod::Copy
        }
    }

    /// Streams the image page by page inside one read transaction, giving
    /// `read` a reader of exactly pages 1..N. The transaction ends when
    /// `read` returns.
    pub(crate) fn read_pages<T>(&self, read: impl FnOnce(&mut dyn Read) -> T) -> Result<T, String> {
        self.in_read_transaction(|conn| {
            let count: i64 = conn
                .query_row("PRAGMA page_count", [], |r| r.get(0))
                .map_err(|e| describe(&e))?;
            let count = u64::try_from(count).map_err(|_| format!("page count {count}"))?;
            let mut stmt = conn
                .prepare("SELECT pgno, data FROM sqlite_dbpage ORDER BY pgno")
                .map_err(|e| describe(&e))?;
            let rows = stmt.query([]).map_err(|e| describe(&e))?;
            let mut pages = PageReader {
                rows,
                page: Vec::with_capacity(self.page_size as usize),
                at: 0,
                next: 1,
                count,
                page_size: self.page_size as usize,
            };
            Ok(read(&mut pages))
        })
    }

    /// Runs `work` inside one read transaction, ended however it returns.
    fn in_read_transaction<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, String>,
    ) -> Result<T, String> {
        let conn = &self.conn;
        conn.execute_batch("BEGIN").map_err(|e| describe(&e))?;
        let result = work(conn);
        // A read-only transaction: ending it cannot lose anything.
        let _ = conn.execute_batch("COMMIT");
        result
    }

    /// What says no transaction committed in between: SQLite's
    /// `data_version` (which changes whenever another connection commits)
    /// and the file's size, modification time and inode (which change with any write,
    /// committed or not), both taken inside a read transaction, when no
    /// writer is half-way through a commit.
    pub(crate) fn committed_state(&self) -> Result<CommittedState, String> {
        self.in_read_transaction(|conn| {
            // Reading the schema takes the shared lock: a writer that holds
            // the database is waited for, a hot journal is an error.
            let _: i64 = conn
                .query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))
                .map_err(|e| describe(&e))?;
            let version: i64 = conn
                .query_row("PRAGMA data_version", [], |r| r.get(0))
                .map_err(|e| describe(&e))?;
            let path = Path::new(self.conn.path().unwrap_or_default());
            let stamp = file_stamp(path).ok_or("cannot read the database file's times")?;
            Ok(CommittedState { version, stamp })
        })
    }

    /// Copies the database into a temporary file in `scratch` with the
    /// online backup API (one step: the source's read lock is held for the
    /// local copy only), and gives `read` that file.
    pub(crate) fn read_copy<T>(
        &self,
        scratch: &Path,
        read: impl FnOnce(std::fs::File) -> T,
    ) -> Result<T, String> {
        let temp = tempfile::Builder::new()
            .prefix(".arca-sqlite-")
            .tempfile_in(scratch)
            .map_err(|e| format!("cannot make a temporary copy in {}: {e}", scratch.display()))?;
        // Removed by a signal's cleanup too: it may be as big as the database.
        let name = temp.path().to_path_buf();
        let _interrupt = arca_backend::cleanup::on_interrupt(move || {
            let _ = std::fs::remove_file(&name);
        });
        {
            let mut copy = Connection::open(temp.path()).map_err(|e| describe(&e))?;
            copy.execute_batch("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF")
                .map_err(|e| describe(&e))?;
            let backup =
                rusqlite::backup::Backup::new(&self.conn, &mut copy).map_err(|e| describe(&e))?;
            let start = Instant::now();
            loop {
                use rusqlite::backup::StepResult;
                match backup.step(-1).map_err(|e| describe(&e))? {
                    StepResult::Done => break,
                    // A writer holds the database: try again shortly, as
                    // the backup API asks, within the busy timeout.
                    StepResult::Busy | StepResult::Locked | StepResult::More
                        if start.elapsed() < BUSY_TIMEOUT =>
                    {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    _ => return Err("the database stayed locked by a writer".to_string()),
                }
            }
        }
        let file = temp.reopen().map_err(|e| e.to_string())?;
        // The name goes now; the open file lives until `read` is done.
        drop(temp);
        Ok(read(file))
    }
}

/// A reader of a database file that fails, with an error
/// [`was_written`] recognises, as soon as the file's size, modification time
/// or inode show a write since it started: a direct read that would be
/// dropped anyway stops early.
pub(crate) struct Unwritten<R> {
    inner: R,
    path: PathBuf,
    stamp: Option<Stamp>,
    unchecked: u64,
    look_every: u64,
}

/// How many bytes an [`Unwritten`] reads between two looks at the stamp.
const LOOK_EVERY: u64 = 16 << 20;

/// The error of an [`Unwritten`] reader that saw a write.
#[derive(Debug)]
struct WrittenWhileRead;

impl std::fmt::Display for WrittenWhileRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the database was written while it was read")
    }
}

impl std::error::Error for WrittenWhileRead {}

/// A file's size, modification time and inode: what any write to it
/// changes. Not its change time: SQLite, running as root, gives the log
/// and index files it opens their database's owner, which changes their
/// change time without a write.
type Stamp = (u64, i64, i64, u64);

fn stamp_of(m: &Metadata) -> Stamp {
    (m.len(), m.mtime(), m.mtime_nsec(), m.ino())
}

fn file_stamp(path: &Path) -> Option<Stamp> {
    std::fs::symlink_metadata(path).ok().map(|m| stamp_of(&m))
}

impl<R: Read> Unwritten<R> {
    /// Reads `inner`, the open file at `path`.
    pub(crate) fn new(inner: R, path: &Path) -> Unwritten<R> {
        Unwritten {
            inner,
            path: path.to_path_buf(),
            stamp: file_stamp(path),
            unchecked: 0,
            look_every: LOOK_EVERY,
        }
    }
}

/// Whether `e` is the error of an [`Unwritten`] reader that saw a write.
pub(crate) fn was_written(e: &io::Error) -> bool {
    e.get_ref()
        .is_some_and(|inner| inner.is::<WrittenWhileRead>())
}

impl<R: Read> Read for Unwritten<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.unchecked >= self.look_every {
            self.unchecked = 0;
            if self.stamp.is_none() || file_stamp(&self.path) != self.stamp {
                return Err(io::Error::other(WrittenWhileRead));
            }
        }
        let n = self.inner.read(buf)?;
        self.unchecked += n as u64;
        Ok(n)
    }
}

/// A database's committed state, as [`Database::committed_state`] saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CommittedState {
    version: i64,
    stamp: Stamp,
}

/// The image's pages in order, from `SELECT pgno, data FROM sqlite_dbpage`.
struct PageReader<'s> {
    rows: rusqlite::Rows<'s>,
    page: Vec<u8>,
    at: usize,
    /// The page number expected next.
    next: u64,
    /// The page count the transaction saw.
    count: u64,
    page_size: usize,
}

impl PageReader<'_> {
    fn fetch(&mut self) -> io::Result<bool> {
        if self.next > self.count {
            return Ok(false);
        }
        let row = self
            .rows
            .next()
            .map_err(|e| io::Error::other(describe(&e)))?
            .ok_or_else(|| io::Error::other(format!("page {} is missing", self.next)))?;
        let pgno: i64 = row.get(0).map_err(|e| io::Error::other(describe(&e)))?;
        let data = row
            .get_ref(1)
            .map_err(|e| io::Error::other(describe(&e)))?
            .as_blob()
            .map_err(|e| io::Error::other(e.to_string()))?;
        if u64::try_from(pgno).ok() != Some(self.next) || data.len() != self.page_size {
            return Err(io::Error::other(format!(
                "page {pgno} of {} bytes where page {} of {} was expected",
                data.len(),
                self.next,
                self.page_size
            )));
        }
        self.page.clear();
        self.page.extend_from_slice(data);
        self.at = 0;
        self.next += 1;
        Ok(true)
    }
}

impl Read for PageReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at == self.page.len() && !self.fetch()? {
            return Ok(0);
        }
        let n = buf.len().min(self.page.len() - self.at);
        buf[..n].copy_from_slice(&self.page[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// What tells whether a database changed: its header's file change
/// counter and page count, the file's own stamp, and its write-ahead
/// log's size, stamp and header (whose salts change at every reset).
/// Reading it opens no SQLite connection and takes no lock. It can be
/// kept across runs (serde), compared with a stamp read later.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChangeStamp {
    header: [u8; 8],
    file: Stamp,
    wal: Option<(Stamp, [u8; 32])>,
}

impl ChangeStamp {
    /// Reads the stamp of the database at `path`; an error when it cannot
    /// be read or is not an SQLite database.
    pub fn read(path: &Path) -> io::Result<ChangeStamp> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(path)?;
        let meta = file.metadata()?;
        let mut head = [0u8; HEADER_LEN];
        file.read_exact_at(&mut head, 0)?;
        if page_size(&head).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "not an SQLite database",
            ));
        }
        let mut header = [0u8; 8];
        // File change counter (24..28) and database size in pages (28..32).
        header.copy_from_slice(&head[24..32]);
        let wal = match std::fs::File::open(sibling(path, "-wal")) {
            // An empty log holds nothing: a reader (this one's snapshot
            // among them) creates one where none was, and a log emptied by
            // a checkpoint leaves its pages written to the database file.
            Ok(wal) => {
                let m = wal.metadata()?;
                let mut wal_head = [0u8; 32];
                let _ = wal.read_at(&mut wal_head, 0)?;
                (m.len() > 0).then_some((stamp_of(&m), wal_head))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        Ok(ChangeStamp {
            header,
            file: stamp_of(&meta),
            wal,
        })
    }
}

/// `path` with `suffix` appended to its file name (`db` → `db-wal`).
pub fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_committed_state_changes_with_every_commit_of_another_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
        let listed = std::fs::metadata(&path).unwrap();
        let db = Database::open(&path, &listed).unwrap();
        assert_eq!(db.journal_mode, "delete");
        assert_eq!(db.method(), ImageMethod::Copy);
        let first = db.committed_state().unwrap();
        assert_eq!(db.committed_state().unwrap(), first);
        writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
        assert_ne!(db.committed_state().unwrap(), first);
    }

    #[test]
    fn a_direct_read_stops_at_the_first_look_after_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        std::fs::write(&path, vec![7u8; 64 * 1024]).unwrap();
        let read_all = |write_after: Option<usize>| {
            let mut r = Unwritten::new(std::fs::File::open(&path).unwrap(), &path);
            r.look_every = 4096;
            let mut buf = [0u8; 1024];
            let mut done = 0;
            loop {
                if write_after == Some(done) {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    std::fs::OpenOptions::new()
                        .append(true)
                        .open(&path)
                        .unwrap()
                        .write_all(b"x")
                        .unwrap();
                }
                match r.read(&mut buf) {
                    Ok(0) => return Ok(done),
                    Ok(n) => done += n,
                    Err(e) => return Err(e),
                }
            }
        };
        assert_eq!(read_all(None).unwrap(), 64 * 1024);
        let err = read_all(Some(10 * 1024)).unwrap_err();
        assert!(was_written(&err), "{err}");
        let plain = io::Error::other("disk on fire");
        assert!(!was_written(&plain));
    }

    /// The bundled SQLite has `sqlite_dbpage` (`.cargo/config.toml`): a
    /// WAL-mode database is streamed, never copied.
    #[test]
    fn a_wal_database_is_read_page_by_page() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);",
            )
            .unwrap();
        let listed = std::fs::metadata(&path).unwrap();
        let db = Database::open(&path, &listed).unwrap();
        assert_eq!(db.journal_mode, "wal");
        assert_eq!(db.method(), ImageMethod::Pages);
        let mut image = Vec::new();
        db.read_pages(|pages| pages.read_to_end(&mut image).unwrap())
            .unwrap();
        assert_eq!(image.len() % db.page_size as usize, 0);
        assert!(image.starts_with(MAGIC));
    }

    #[test]
    fn a_file_swapped_for_another_is_not_opened_as_the_listed_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Connection::open(&path)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let listed = std::fs::metadata(&path).unwrap();
        std::fs::copy(&path, dir.path().join("other.db")).unwrap();
        std::fs::rename(dir.path().join("other.db"), &path).unwrap();
        let err = Database::open(&path, &listed).unwrap_err();
        assert!(err.contains("replaced"), "{err}");
    }

    #[test]
    fn headers_are_recognised_with_their_page_size() {
        let mut head = [0u8; 100];
        head[..16].copy_from_slice(MAGIC);
        for (raw, size) in [(512u16, Some(512)), (4096, Some(4096)), (1, Some(65536))] {
            head[16..18].copy_from_slice(&raw.to_be_bytes());
            assert_eq!(page_size(&head), size);
        }
        for bad in [0u16, 3000, 256] {
            head[16..18].copy_from_slice(&bad.to_be_bytes());
            assert_eq!(page_size(&head), None, "{bad}");
        }
        assert_eq!(page_size(&head[..50]), None);
        assert_eq!(page_size(&[0u8; 100]), None);
    }
}
