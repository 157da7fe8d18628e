//! Archived PostgreSQL WAL files: one self-contained object per file
//! (docs/format.md §4.11).
//!
//! A WAL object is `u32le(header length) ‖ sealed header`, then one frame
//! per `frame_size` bytes of content (at least one), each `u32le(length) ‖
//! Seal(compression marker ‖ content or zstd(content))`. The object's name
//! is the keyed BLAKE3 of the PostgreSQL file name, so `restore-wal NAME`
//! is a single lookup and storage never sees the file names. The header's
//! associated data binds it to that name; each frame's binds it to the
//! name, its index and whether it is the last, so frames cannot be
//! dropped, reordered, repeated, cut off or moved between objects.
//!
//! WAL objects live beside the packs, not in them: no index lists them, so
//! prune and repair never see them, and retention will later delete whole
//! objects. Both directions stream: memory stays at a few frames whatever
//! the segment size (up to 1 GiB), except that a backend that cannot stage
//! an object piece by piece (object stores) gets it assembled in memory.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use arca_backend::{Backend, ErrorKind as BackendErrorKind, FileKind, Staged};
use serde::{Deserialize, Serialize};

use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::file;
use crate::format::{
    AAD_WAL_FRAME, AAD_WAL_HEADER, COMPRESSION_NONE, COMPRESSION_ZSTD, SEAL_OVERHEAD,
    WAL_FRAME_SIZE, WAL_MAX_FILE_LEN, WAL_MAX_FRAME_SIZE, WAL_MAX_HEADER_LEN, WAL_MAX_NAME_LEN,
    WAL_MIN_FRAME_SIZE,
};
use crate::id::Id;
use crate::repository::Repository;
use crate::time::{Time, Timestamp};

/// Bytes fetched from storage per request while reading a WAL object.
const READ_WINDOW: u64 = 4 * 1024 * 1024;
/// Bytes fetched by the first request: enough for a header, so that
/// listing, comparing and retention read a few KiB per object, not a window.
const HEADER_WINDOW: u64 = 4096;

/// The sealed header of a WAL object: what the archived file was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalHeader {
    /// The PostgreSQL file name, such as `000000010000000000000001`.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
    /// BLAKE3 of its content (unkeyed: the header is sealed).
    pub hash: Id,
    /// When it was archived.
    pub archived: Time,
    /// Content bytes per frame (the last frame holds the rest).
    pub frame_size: u32,
}

impl WalHeader {
    /// How many frames the object holds: one per `frame_size` bytes, and
    /// one (empty) for an empty file.
    pub fn frames(&self) -> u64 {
        self.size.div_ceil(u64::from(self.frame_size)).max(1)
    }

    /// Content bytes of frame `index`.
    fn frame_len(&self, index: u64) -> usize {
        let start = index * u64::from(self.frame_size);
        // At most frame_size (≤ 16 MiB), so it fits.
        (self.size - start).min(u64::from(self.frame_size)) as usize
    }
}

/// What [`archive_wal`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Archived {
    /// The file was stored.
    Stored,
    /// The repository already held the same file (same name, size and
    /// content hash); nothing was written.
    AlreadyPresent,
}

/// Whether `name` is a file name PostgreSQL archives: a WAL segment (24
/// uppercase hex digits), a timeline history file (`XXXXXXXX.history`), a
/// backup history file (`<segment>.XXXXXXXX.backup`) or a partial segment
/// (`<segment>.partial`).
pub fn is_wal_file_name(name: &str) -> bool {
    fn hex(s: &str, n: usize) -> bool {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    }
    let parts: Vec<&str> = name.split('.').collect();
    match parts.as_slice() {
        [segment] => hex(segment, 24),
        [timeline, "history"] => hex(timeline, 8),
        [segment, "partial"] => hex(segment, 24),
        [segment, offset, "backup"] => hex(segment, 24) && hex(offset, 8),
        _ => false,
    }
}

/// The hex name of the object that holds the PostgreSQL file `file_name`.
pub fn wal_object_name(repo: &Repository, file_name: &str) -> Result<String> {
    check_file_name(file_name)?;
    Ok(repo.key().wal_name(file_name).to_hex())
}

fn check_file_name(name: &str) -> Result<()> {
    if is_wal_file_name(name) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "{name:?} is not a PostgreSQL WAL file name (a segment, .history, .backup or .partial file)"
        )))
    }
}

fn label(object: &str, file_name: Option<&str>) -> String {
    match file_name {
        Some(file) => format!("WAL object {object} ({file})"),
        None => format!("WAL object {object}"),
    }
}

fn header_aad(name: &Id) -> Vec<u8> {
    [AAD_WAL_HEADER, &name.0].concat()
}

fn frame_aad(name: &Id, index: u64, last: bool) -> Vec<u8> {
    [
        AAD_WAL_FRAME,
        &name.0,
        &index.to_le_bytes(),
        &[u8::from(last)],
    ]
    .concat()
}

/// Archives the file at `path` under its last path component's name
/// (PostgreSQL's `%p`). Returns once the object is stored durably, or when
/// the repository already holds the same file; a different file under the
/// same name is [`Error::Conflict`] and leaves the stored one as it is.
pub fn archive_wal(repo: &Repository, path: &Path) -> Result<Archived> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::InvalidInput(format!("{} names no file", path.display())))?;
    check_file_name(file_name)?;
    let mut file = File::open(path).map_err(|e| Error::source(path, e))?;
    let size = file.metadata().map_err(|e| Error::source(path, e))?.len();
    if size > WAL_MAX_FILE_LEN {
        return Err(Error::InvalidInput(format!(
            "{} is larger than {WAL_MAX_FILE_LEN} bytes, the largest WAL file",
            path.display()
        )));
    }
    let hash = hash_file(&mut file, path, size)?;
    let header = WalHeader {
        name: file_name.to_string(),
        size,
        hash,
        archived: Time::now(),
        frame_size: WAL_FRAME_SIZE,
    };
    let name = repo.key().wal_name(file_name);
    if repo.backend().exists(FileKind::Wal, &name.to_hex())? {
        return compare_existing(repo, &name, &header);
    }
    let encoder = encode_file(repo, &mut file, path, name, &header)?;
    match encoder.commit(repo.backend()) {
        Ok(()) => verify_upload(repo, &name, &header).map(|()| Archived::Stored),
        // Another archiver stored it first.
        Err(Error::Storage(e)) if e.kind() == BackendErrorKind::AlreadyExists => {
            compare_existing(repo, &name, &header)
        }
        Err(e) => Err(e),
    }
}

/// With uploads verified ([`Repository::set_verify_uploads`]), reads the
/// object just stored back from storage and verifies it in full; one that
/// does not verify is removed (it is this run's own, and a retry should
/// find the name free) and reported.
fn verify_upload(repo: &Repository, name: &Id, header: &WalHeader) -> Result<()> {
    let Some(storage) = repo.upload_verifier() else {
        return Ok(());
    };
    let object = name.to_hex();
    let stored =
        Reader::open(&*storage, repo.key(), &object).and_then(|r| r.read_frames(|_| Ok(())));
    match stored {
        Ok(back) if back.size == header.size && back.hash == header.hash => Ok(()),
        Ok(_) => Err(Error::corrupt(
            label(&object, Some(&header.name)),
            "the storage holds another file than was written",
        )),
        Err(e) => {
            let _ = storage.remove(FileKind::Wal, &object);
            Err(e)
        }
    }
}

/// Reads `file` again, frame by frame, into a new object for `header`;
/// the content must hash as the header says (the file must not have
/// changed since it was hashed).
fn encode_file<'a>(
    repo: &'a Repository,
    file: &mut File,
    path: &Path,
    name: Id,
    header: &WalHeader,
) -> Result<Encoder<'a>> {
    let io = |e| Error::source(path, e);
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let sink = Sink::on(repo.backend())?;
    let mut encoder = Encoder::new(sink, repo.key(), name, header, level(repo))?;
    let mut content = Vec::new();
    let mut hasher = blake3::Hasher::new();
    for index in 0..header.frames() {
        content.resize(header.frame_len(index), 0);
        file.read_exact(&mut content).map_err(io)?;
        hasher.update(&content);
        encoder.frame(&content)?;
    }
    let more = file.read(&mut [0]).map_err(io)?;
    if Id(*hasher.finalize().as_bytes()) != header.hash || more != 0 {
        return Err(Error::source(
            path,
            std::io::Error::other("the file changed while it was being archived"),
        ));
    }
    Ok(encoder)
}

fn level(repo: &Repository) -> i32 {
    repo.config().compression
}

fn hash_file(file: &mut File, path: &Path, size: u64) -> Result<Id> {
    let mut hasher = blake3::Hasher::new();
    let read =
        std::io::copy(&mut file.take(size + 1), &mut hasher).map_err(|e| Error::source(path, e))?;
    if read != size {
        return Err(Error::source(
            path,
            std::io::Error::other("the file changed size while it was being archived"),
        ));
    }
    Ok(Id(*hasher.finalize().as_bytes()))
}

/// The stored object of the same name: the same file (done), another one
/// (a conflict PostgreSQL must hear of), or damaged (reported, never
/// overwritten).
fn compare_existing(repo: &Repository, name: &Id, header: &WalHeader) -> Result<Archived> {
    let stored = Reader::open(repo.backend(), repo.key(), &name.to_hex())?.header;
    if stored.name == header.name && stored.size == header.size && stored.hash == header.hash {
        Ok(Archived::AlreadyPresent)
    } else {
        Err(Error::Conflict(format!(
            "WAL file {} is already archived with different content ({} bytes, archived {}) as WAL object {}; the stored file is kept",
            header.name,
            stored.size,
            stored.archived.to_rfc3339(),
            name.to_hex()
        )))
    }
}

/// Restores the archived file `file_name` to `dest`: every frame and the
/// whole content are verified into a temporary file beside `dest`, which is
/// fsynced and renamed into place only then. `None` when the repository
/// does not hold the file (nothing is written).
pub fn restore_wal(repo: &Repository, file_name: &str, dest: &Path) -> Result<Option<WalHeader>> {
    let name = wal_object_name(repo, file_name)?;
    let reader = match Reader::open(repo.backend(), repo.key(), &name) {
        Ok(reader) => reader,
        Err(e) if e.is_missing() => return Ok(None),
        Err(e) => return Err(e),
    };
    if reader.header.name != file_name {
        return Err(Error::corrupt(
            &reader.label,
            format!("holds {:?}, not {file_name:?}", reader.header.name),
        ));
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // Registered for removal, so that an interrupt (PostgreSQL stops
    // recovery with a signal) leaves no temporary file in pg_wal.
    let (mut tmp, _guard) = arca_backend::cleanup::new_temporary_file(&dir, ".arca-wal-")
        .map_err(|e| Error::target(&dir, e))?;
    let header = reader.read_frames(|content| {
        tmp.write_all(content)
            .map_err(|e| Error::target(tmp.path(), e))
    })?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::target(dest, e))?;
    tmp.persist(dest)
        .map_err(|e| Error::target(dest, e.error))?;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::target(&dir, e))?;
    Ok(Some(header))
}

/// Verifies the WAL object `object` (its hex name): its header opens, is
/// valid and belongs to this name; with `read_data`, every frame opens and
/// the content has the recorded size and hash.
pub fn verify_wal(repo: &Repository, object: &str, read_data: bool) -> Result<WalHeader> {
    let reader = Reader::open(repo.backend(), repo.key(), object)?;
    if read_data {
        reader.read_frames(|_| Ok(()))
    } else {
        Ok(reader.header)
    }
}

/// The header of the WAL object `object` (its hex name), validated
/// (§4.11 steps 1–3); reads only the object's first few KiB.
pub(crate) fn read_header(repo: &Repository, object: &str) -> Result<WalHeader> {
    Reader::open(repo.backend(), repo.key(), object).map(|r| r.header)
}

/// The headers of every WAL object, by object name; damaged ones are
/// returned as errors in their place.
pub fn list_wal(repo: &Repository) -> Result<Vec<(String, Result<WalHeader>)>> {
    let mut out = Vec::new();
    for entry in repo.backend().list(FileKind::Wal)? {
        if !crate::repository::is_object_name(&entry.name) {
            continue;
        }
        let header = read_header(repo, &entry.name);
        out.push((entry.name, header));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// How many of the most recently stored WAL objects [`wal_summary`] opens
/// at least.
const SUMMARY_NEWEST: usize = 8;

/// How far storage's clock may run behind the archiving host's, in
/// seconds, for [`wal_summary`]'s bound to hold.
const SUMMARY_CLOCK_SKEW: i64 = 600;

/// What the WAL archive holds, as [`wal_summary`] finds it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalSummary {
    /// WAL objects under `wal/`.
    pub objects: u64,
    /// Their stored (compressed, encrypted) size.
    pub bytes: u64,
    /// The header of the most recently archived file among those opened,
    /// by [`WalHeader::archived`]; `None` when there is no object or none
    /// of those opened could be read.
    pub newest: Option<WalHeader>,
    /// Headers opened.
    pub opened: u64,
    /// Headers that failed to open, each error naming its object; they are
    /// skipped (`check` examines every object).
    pub damaged: Vec<String>,
}

/// Summarises the WAL archive without reading every header: the objects
/// are listed, and headers are opened newest stored first, at least the
/// eight newest, then on while an object was stored no earlier than the
/// newest archive time found so far (less ten minutes for clocks). An object is always stored after its file was archived
/// ([`archive_wal`] takes the time before it writes; [`copy_wal`] keeps
/// the original time and stores later), so one stored earlier cannot hold
/// a newer file. A freshly copied archive, whose objects were all stored
/// after every file's archive time, is therefore read in full, as is one
/// on storage that reports no times.
///
/// A header that fails to open counts as damaged and is skipped; an
/// object removed since the listing is skipped; storage errors are
/// errors.
pub fn wal_summary(repo: &Repository) -> Result<WalSummary> {
    let mut entries: Vec<arca_backend::Entry> = repo
        .backend()
        .list(FileKind::Wal)?
        .into_iter()
        .filter(|e| crate::repository::is_object_name(&e.name))
        .collect();
    let mut summary = WalSummary {
        objects: entries.len() as u64,
        bytes: entries.iter().map(|e| e.size).sum(),
        ..WalSummary::default()
    };
    // Newest stored first; objects without a time last (and all read).
    entries.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.name.cmp(&b.name)));
    for (i, entry) in entries.iter().enumerate() {
        if i >= SUMMARY_NEWEST
            && let (Some(newest), Some(stored)) = (&summary.newest, entry.modified)
            && Timestamp::from_system(stored).seconds
                < newest
                    .archived
                    .at
                    .seconds
                    .saturating_sub(SUMMARY_CLOCK_SKEW)
        {
            // Sorted: every later object with a time is older still.
            continue;
        }
        match Reader::open(repo.backend(), repo.key(), &entry.name) {
            Ok(reader) => {
                summary.opened += 1;
                let header = reader.header;
                if summary
                    .newest
                    .as_ref()
                    .is_none_or(|n| header.archived > n.archived)
                {
                    summary.newest = Some(header);
                }
            }
            Err(e) if e.is_missing() => {}
            Err(e) if e.is_damage() => summary.damaged.push(e.to_string()),
            Err(e) => return Err(e),
        }
    }
    Ok(summary)
}

/// Encodes a whole WAL object holding `content` in memory, with
/// `header`'s name, archive time and frame size (its size and hash are
/// taken from `content`); returns the object's name and bytes. For tests,
/// fuzzing and other tools: [`archive_wal`] streams instead.
pub fn encode_wal(
    key: &MasterKey,
    header: &WalHeader,
    content: &[u8],
    level: i32,
) -> Result<(String, Vec<u8>)> {
    check_file_name(&header.name)?;
    if !(WAL_MIN_FRAME_SIZE..=WAL_MAX_FRAME_SIZE).contains(&header.frame_size) {
        return Err(Error::InvalidInput(format!(
            "frame size {} is outside {WAL_MIN_FRAME_SIZE} ‥ {WAL_MAX_FRAME_SIZE}",
            header.frame_size
        )));
    }
    let header = WalHeader {
        size: content.len() as u64,
        hash: Id(*blake3::hash(content).as_bytes()),
        ..header.clone()
    };
    let name = key.wal_name(&header.name);
    let mut encoder = Encoder::new(Sink::Memory(Vec::new()), key, name, &header, level)?;
    for chunk in content.chunks(header.frame_size as usize) {
        encoder.frame(chunk)?;
    }
    if content.is_empty() {
        encoder.frame(&[])?;
    }
    match encoder.sink {
        Sink::Memory(bytes) => Ok((name.to_hex(), bytes)),
        Sink::Staged(_) => Err(Error::Internal(
            "a WAL object encoded in memory was staged".into(),
        )),
    }
}

/// Decodes and verifies a whole WAL object held in memory (§4.11 steps
/// 1–6) stored under the name `object`; returns its header and content.
/// For tests, fuzzing and other tools: [`restore_wal`] streams instead.
pub fn decode_wal(key: &MasterKey, object: &str, bytes: &[u8]) -> Result<(WalHeader, Vec<u8>)> {
    let memory = arca_backend::MemoryBackend::new();
    memory
        .create()
        .and_then(|()| memory.write(FileKind::Wal, object, bytes))
        .map_err(|e| Error::InvalidInput(e.to_string()))?;
    let mut content = Vec::new();
    let header = Reader::open(&memory, key, object)?.read_frames(|frame| {
        content.extend_from_slice(frame);
        Ok(())
    })?;
    Ok((header, content))
}

/// What [`copy_wal`] did.
#[derive(Clone, Debug, Default)]
pub struct WalCopyReport {
    /// Files copied (or, in a dry run, to copy).
    pub copied: u64,
    /// Their content bytes.
    pub bytes: u64,
    /// Files the destination already held.
    pub present: u64,
    /// Source objects that could not be copied, with why (damage, or a
    /// different file under the same name in the destination).
    pub failed: Vec<(String, String)>,
}

/// Copies every WAL file of `source` that `dest` lacks, re-sealed under
/// `dest`'s keys and name. Idempotent: files `dest` holds are skipped.
pub fn copy_wal(source: &Repository, dest: &Repository, dry_run: bool) -> Result<WalCopyReport> {
    let mut report = WalCopyReport::default();
    for entry in source.backend().list(FileKind::Wal)? {
        if !crate::repository::is_object_name(&entry.name) {
            continue;
        }
        match copy_one(source, dest, &entry.name, dry_run) {
            Ok(Some(size)) => {
                report.copied += 1;
                report.bytes += size;
            }
            Ok(None) => report.present += 1,
            Err(e) if e.is_damage() || matches!(e, Error::Conflict(_)) => {
                report
                    .failed
                    .push((label(&entry.name, None), e.to_string()));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}

fn copy_one(
    source: &Repository,
    dest: &Repository,
    object: &str,
    dry_run: bool,
) -> Result<Option<u64>> {
    let reader = Reader::open(source.backend(), source.key(), object)?;
    let name = dest.key().wal_name(&reader.header.name);
    if dest.backend().exists(FileKind::Wal, &name.to_hex())? {
        compare_existing(dest, &name, &reader.header)?;
        return Ok(None);
    }
    if dry_run {
        return Ok(Some(reader.header.size));
    }
    let header = reader.header.clone();
    let sink = Sink::on(dest.backend())?;
    let mut encoder = Encoder::new(sink, dest.key(), name, &header, level(dest))?;
    reader.read_frames(|content| encoder.frame(content))?;
    match encoder.commit(dest.backend()) {
        Ok(()) => verify_upload(dest, &name, &header).map(|()| Some(header.size)),
        Err(Error::Storage(e)) if e.kind() == BackendErrorKind::AlreadyExists => {
            compare_existing(dest, &name, &header).map(|_| None)
        }
        Err(e) => Err(e),
    }
}

/// Where an object being written goes: a staged object on storage, or
/// memory when the backend cannot stage.
enum Sink {
    Staged(Box<dyn Staged>),
    Memory(Vec<u8>),
}

/// Writes one WAL object frame by frame.
struct Encoder<'a> {
    key: &'a MasterKey,
    name: Id,
    frames: u64,
    index: u64,
    level: i32,
    sink: Sink,
    sealed: Vec<u8>,
}

impl Sink {
    /// A staged object on `backend` when it can stage one, else memory.
    fn on(backend: &dyn Backend) -> Result<Sink> {
        Ok(match backend.stage(FileKind::Wal)? {
            Some(staged) => Sink::Staged(staged),
            None => Sink::Memory(Vec::new()),
        })
    }
}

impl<'a> Encoder<'a> {
    /// Starts an object named `name` in `sink` with its sealed `header`.
    fn new(
        sink: Sink,
        key: &'a MasterKey,
        name: Id,
        header: &WalHeader,
        level: i32,
    ) -> Result<Encoder<'a>> {
        let mut encoder = Encoder {
            key,
            name,
            frames: header.frames(),
            index: 0,
            level,
            sink,
            sealed: Vec::new(),
        };
        let sealed = file::seal(key, &header_aad(&name), header, file::METADATA_COMPRESSION);
        encoder.put(&sealed)?;
        Ok(encoder)
    }

    /// Appends `u32le(len) ‖ bytes`.
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| Error::Internal("WAL frame over 4 GiB".into()))?;
        match &mut self.sink {
            Sink::Staged(staged) => {
                staged.write(&len.to_le_bytes())?;
                staged.write(bytes)?;
            }
            Sink::Memory(buf) => {
                buf.extend_from_slice(&len.to_le_bytes());
                buf.extend_from_slice(bytes);
            }
        }
        Ok(())
    }

    /// Seals and appends the next frame's content.
    fn frame(&mut self, content: &[u8]) -> Result<()> {
        if self.index >= self.frames {
            return Err(Error::Internal(
                "more WAL frames than the header says".into(),
            ));
        }
        let aad = frame_aad(&self.name, self.index, self.index + 1 == self.frames);
        let mut payload = Vec::with_capacity(content.len() + 1);
        match file::compress(content, self.level) {
            Some(small) => {
                payload.push(COMPRESSION_ZSTD);
                payload.extend_from_slice(&small);
            }
            None => {
                payload.push(COMPRESSION_NONE);
                payload.extend_from_slice(content);
            }
        }
        let mut sealed = std::mem::take(&mut self.sealed);
        sealed.clear();
        self.key.seal_into(&aad, &payload, &mut sealed);
        self.put(&sealed)?;
        self.sealed = sealed;
        self.index += 1;
        Ok(())
    }

    /// Stores the object under its name, atomically and durably.
    fn commit(self, backend: &dyn Backend) -> Result<()> {
        if self.index != self.frames {
            return Err(Error::Internal(
                "fewer WAL frames than the header says".into(),
            ));
        }
        let name = self.name.to_hex();
        match self.sink {
            Sink::Staged(staged) => staged.commit(&name)?,
            Sink::Memory(bytes) => backend.write(FileKind::Wal, &name, &bytes)?,
        }
        Ok(())
    }
}

/// Reads a stored object sequentially, a window at a time.
struct Window<'a> {
    backend: &'a dyn Backend,
    object: String,
    size: u64,
    /// Offset of `buf[0]` in the object.
    start: u64,
    buf: Vec<u8>,
    used: usize,
}

impl Window<'_> {
    fn position(&self) -> u64 {
        self.start + self.used as u64
    }

    /// The next `n` bytes, or an error naming `label` if the object ends first.
    fn take(&mut self, n: usize, label: &str, out: &mut Vec<u8>) -> Result<()> {
        out.clear();
        if self.position() + n as u64 > self.size {
            return Err(Error::corrupt(label, "ends early (truncated)"));
        }
        while out.len() < n {
            if self.used == self.buf.len() {
                self.start += self.buf.len() as u64;
                self.used = 0;
                let window = if self.start == 0 {
                    HEADER_WINDOW
                } else {
                    READ_WINDOW
                };
                let length = window.min(self.size - self.start);
                self.buf =
                    self.backend
                        .read_range(FileKind::Wal, &self.object, self.start, length)?;
                if self.buf.len() as u64 != length {
                    return Err(Error::corrupt(label, "short read from storage"));
                }
            }
            let want = (n - out.len()).min(self.buf.len() - self.used);
            out.extend_from_slice(&self.buf[self.used..self.used + want]);
            self.used += want;
        }
        Ok(())
    }

    fn take_u32(&mut self, label: &str) -> Result<u32> {
        let mut b = Vec::with_capacity(4);
        self.take(4, label, &mut b)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// An opened WAL object: its header verified, its frames still to read.
struct Reader<'a> {
    key: &'a MasterKey,
    name: Id,
    header: WalHeader,
    label: String,
    window: Window<'a>,
}

impl<'a> Reader<'a> {
    /// Opens the header of `object` and validates it (§4.11).
    fn open(backend: &'a dyn Backend, key: &'a MasterKey, object: &str) -> Result<Reader<'a>> {
        let label0 = label(object, None);
        let name = Id::from_hex(object)
            .ok_or_else(|| Error::corrupt(&label0, "is not named by 64 hex digits"))?;
        let size = backend.size(FileKind::Wal, object)?;
        let mut window = Window {
            backend,
            object: object.to_string(),
            size,
            start: 0,
            buf: Vec::new(),
            used: 0,
        };
        let len = window.take_u32(&label0)?;
        if len > WAL_MAX_HEADER_LEN {
            return Err(Error::corrupt(
                &label0,
                format!("header of {len} bytes is over the {WAL_MAX_HEADER_LEN}-byte limit"),
            ));
        }
        let mut sealed = Vec::new();
        window.take(len as usize, &label0, &mut sealed)?;
        let header: WalHeader = file::open(
            key,
            &header_aad(&name),
            &sealed,
            &label0,
            u64::from(WAL_MAX_HEADER_LEN),
        )?;
        let label = check_header(key, &name, object, &header)?;
        Ok(Reader {
            key,
            name,
            header,
            label,
            window,
        })
    }

    /// Opens every frame in order, handing its content to `sink`, then
    /// checks the end of the object and the content's size and hash.
    fn read_frames(mut self, mut sink: impl FnMut(&[u8]) -> Result<()>) -> Result<WalHeader> {
        let mut hasher = blake3::Hasher::new();
        let mut buffers = (Vec::new(), Vec::new());
        for index in 0..self.header.frames() {
            let content = self.frame(index, &mut buffers)?;
            hasher.update(&content);
            sink(&content)?;
        }
        let rest = self.window.size - self.window.position();
        if rest != 0 {
            return Err(Error::corrupt(
                &self.label,
                format!("{rest} bytes follow the last frame"),
            ));
        }
        if Id(*hasher.finalize().as_bytes()) != self.header.hash {
            return Err(Error::corrupt(
                &self.label,
                "content does not match the recorded hash",
            ));
        }
        Ok(self.header)
    }

    /// §4.11 step 4 for frame `index`: its content, of exactly the length
    /// the header implies. `buffers` (sealed, payload) are reused.
    fn frame(&mut self, index: u64, buffers: &mut (Vec<u8>, Vec<u8>)) -> Result<Vec<u8>> {
        let (sealed, payload) = buffers;
        let frames = self.header.frames();
        let label = format!("{}, frame {index} of {frames}", self.label);
        let max_sealed = self.header.frame_size as usize + 1 + SEAL_OVERHEAD;
        let len = self.window.take_u32(&label)? as usize;
        if !(1 + SEAL_OVERHEAD..=max_sealed).contains(&len) {
            return Err(Error::corrupt(
                &label,
                format!("stored length {len} is outside 41 ‥ {max_sealed}"),
            ));
        }
        self.window.take(len, &label, sealed)?;
        let aad = frame_aad(&self.name, index, index + 1 == frames);
        self.key.open_into(&aad, sealed, payload).map_err(|_| {
            Error::corrupt(
                &label,
                "authentication failed (damaged, or not this object's frame at this place)",
            )
        })?;
        let expected = self.header.frame_len(index);
        let content = match payload.split_first() {
            Some((&COMPRESSION_NONE, raw)) => raw.to_vec(),
            Some((&COMPRESSION_ZSTD, packed)) => {
                file::decompress_bounded(packed, expected as u64, &label)?
            }
            _ => return Err(Error::corrupt(&label, "unknown compression marker")),
        };
        if content.len() != expected {
            return Err(Error::corrupt(
                &label,
                format!("holds {} bytes, not {expected}", content.len()),
            ));
        }
        Ok(content)
    }
}

/// §4.11 step 3: the header holds a WAL file name whose keyed hash is the
/// object's name, and a size and frame size in range. Returns the label
/// that names the object and its file in errors.
fn check_header(key: &MasterKey, name: &Id, object: &str, header: &WalHeader) -> Result<String> {
    if header.name.len() > WAL_MAX_NAME_LEN || !is_wal_file_name(&header.name) {
        return Err(Error::corrupt(
            label(object, None),
            format!("holds {:?}, which is not a WAL file name", header.name),
        ));
    }
    let label = label(object, Some(&header.name));
    if key.wal_name(&header.name) != *name {
        return Err(Error::corrupt(
            &label,
            "its name is not the keyed hash of the file name it holds",
        ));
    }
    if header.size > WAL_MAX_FILE_LEN {
        return Err(Error::corrupt(
            &label,
            format!(
                "claims {} bytes, over the {WAL_MAX_FILE_LEN}-byte limit",
                header.size
            ),
        ));
    }
    if !(WAL_MIN_FRAME_SIZE..=WAL_MAX_FRAME_SIZE).contains(&header.frame_size) {
        return Err(Error::corrupt(
            &label,
            format!(
                "frame size {} is outside {WAL_MIN_FRAME_SIZE} ‥ {WAL_MAX_FRAME_SIZE}",
                header.frame_size
            ),
        ));
    }
    Ok(label)
}
