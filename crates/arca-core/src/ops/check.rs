//! Verification: `check` proves that every snapshot can be restored.
//!
//! Structure (always): every index file, snapshot and tree decodes; every
//! blob a tree references is indexed; every indexed pack exists with the
//! indexed size. Packs no index mentions are warnings: an interrupted
//! snapshot leaves them. Trees are walked once each, however many snapshots
//! share them, so the cost follows unique trees.
//!
//! Data (`read_data`): each selected pack is read once, whole; its name is
//! checked against the BLAKE3 of its bytes, its header is decrypted and
//! compared with the index, and every blob is decrypted, decompressed and
//! its id recomputed. Packs are checked in parallel, one whole pack in
//! memory per thread.
//!
//! Every problem names the object; damaged or missing blobs and trees are
//! traced back to the snapshots and paths they hurt.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use arca_backend::FileKind;
use rayon::prelude::*;
use serde::Serialize;

use crate::blob::{self, BlobKind};
use crate::error::Result;
use crate::format::MAX_INDEX_LEN;
use crate::id::{Id, IndexId, PackId, SnapshotId, TreeId};
use crate::index::{Index, IndexFile};
use crate::pack::{self, PackEntry};
use crate::repository::Repository;
use crate::snapshot::Snapshot;
use crate::tree::NodeKind;
use crate::wal::WalHeader;

/// Which packs `check` reads in full.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Subset {
    /// Every pack.
    All,
    /// The packs in bucket `n` (1-based) of `m`, by pack id: `m` runs with
    /// `n` = 1..=m read every pack exactly once.
    Bucket {
        /// Which bucket, from 1 to `m`.
        n: u32,
        /// How many buckets.
        m: u32,
    },
    /// A random share of the packs, in percent.
    Percent(f64),
    /// Random packs up to this many bytes.
    Bytes(u64),
}

/// What to check.
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    /// Read pack data too (`None`: structure only).
    pub read_data: Option<Subset>,
}

/// Live counters for a progress bar.
#[derive(Debug, Default)]
pub struct CheckProgress {
    /// Pack bytes read so far.
    pub bytes_read: AtomicU64,
    /// Pack bytes the check reads in all (0 until known).
    pub bytes_total: AtomicU64,
}

/// A snapshot path hurt by a problem.
#[derive(Clone, Debug, Serialize)]
pub struct Affected {
    /// The snapshot's id, in hex.
    pub snapshot: String,
    /// The path in the snapshot.
    pub path: String,
}

/// One problem, naming the object it is about.
#[derive(Clone, Debug, Serialize)]
pub struct Problem {
    /// The object, such as `snapshot <id>` or `data pack <id>`.
    pub object: String,
    /// What is wrong with it.
    pub message: String,
    /// Snapshot paths it hurts (at most 100 per problem).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub affects: Vec<Affected>,
}

/// The outcome of a check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    /// Damage found.
    pub errors: Vec<Problem>,
    /// Findings that are not damage (packs no index lists).
    pub warnings: Vec<Problem>,
    /// Key files checked.
    pub keys: u64,
    /// Index files listed.
    pub index_files: u64,
    /// Snapshot files listed.
    pub snapshots: u64,
    /// Distinct trees walked.
    pub trees: u64,
    /// Packs the index lists.
    pub packs: u64,
    /// Packs read in full.
    pub packs_read: u64,
    /// Pack bytes read.
    pub bytes_read: u64,
    /// Blobs stored in more than one pack.
    pub duplicate_blobs: u64,
    /// Packs in storage that no index lists.
    pub unindexed_packs: u64,
    /// WAL objects listed (each header is opened and checked).
    pub wal_objects: u64,
    /// WAL objects read in full (every frame and the content hash).
    pub wal_read: u64,
}

impl CheckReport {
    /// Whether no damage was found (warnings aside).
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Blobs and trees found damaged or missing, to trace back to paths.
#[derive(Default)]
struct Damage {
    blobs: HashMap<Id, usize>,
    trees: HashMap<TreeId, usize>,
}

fn problem(object: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        object: object.into(),
        message: message.into(),
        affects: Vec::new(),
    }
}

/// What the index files say each pack holds.
struct Expected {
    kind: BlobKind,
    size: u64,
    blobs: Vec<PackEntry>,
}

/// Checks `repo`. The repository's in-memory index is replaced by one built
/// from the index files that decode.
pub fn check(
    repo: &mut Repository,
    options: &CheckOptions,
    progress: &CheckProgress,
) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let mut damage = Damage::default();
    check_keys(repo, &mut report)?;
    report_strays(repo, &mut report)?;
    let expected = load_indexes(repo, &mut report)?;
    check_packs_exist(repo, &expected, &mut report, &mut damage)?;
    let snapshots = load_snapshots(repo, &mut report)?;
    check_shapes(repo, &snapshots, &mut report)?;
    check_trees(repo, &snapshots, &mut report, &mut damage);
    if let Some(subset) = options.read_data {
        read_data(repo, &expected, subset, progress, &mut report, &mut damage)?;
    }
    let archived = check_wal(repo, options.read_data, &mut report)?;
    check_base_backups(repo, &snapshots, &archived, &mut report);
    if !damage.blobs.is_empty() || !damage.trees.is_empty() {
        trace_damage(repo, &snapshots, &damage, &mut report);
    }
    Ok(report)
}

/// Files in the repository's directories that are no object: a name that
/// is not 64 lowercase hex digits, a pack under another fan-out directory
/// than its name's. Every command ignores them and none removes them
/// (format.md §2.2), so they are warnings, left for a person to look at.
fn report_strays(repo: &Repository, report: &mut CheckReport) -> Result<()> {
    for kind in FileKind::ALL.into_iter().filter(|k| *k != FileKind::Config) {
        let mut strays = repo.backend().strays(kind)?;
        for entry in repo.backend().list(kind)? {
            if !crate::repository::is_object_name(&entry.name) {
                strays.push(format!("{}/{}", kind.dir(), entry.name));
            }
        }
        strays.sort();
        for path in strays {
            report.warnings.push(problem(
                path,
                "is not an object of the repository (not a 64-digit lowercase hex name where that name belongs): ignored, and never removed by arca",
            ));
        }
    }
    Ok(())
}

/// Every key file must decode (the one in use opened the repository; the
/// others may belong to other people, so only their structure is checked).
fn check_keys(repo: &Repository, report: &mut CheckReport) -> Result<()> {
    for entry in repo.list(FileKind::Key)? {
        let object = format!("key {}", entry.name);
        let decoded = repo
            .read_verified(FileKind::Key, &entry.name, crate::format::MAX_KEY_FILE_LEN)
            .and_then(|bytes| crate::key::KeyFile::decode(&bytes, &object));
        if let Err(e) = decoded {
            report.errors.push(problem(&object, e.to_string()));
        }
        report.keys += 1;
    }
    Ok(())
}

fn load_indexes(
    repo: &mut Repository,
    report: &mut CheckReport,
) -> Result<HashMap<PackId, Expected>> {
    let entries = repo.list(FileKind::Index)?;
    report.index_files = entries.len() as u64;
    let decoded: Vec<std::result::Result<(IndexId, IndexFile), Problem>> = entries
        .par_iter()
        .map(|entry| {
            let object = format!("index {}", entry.name);
            let id = Id::from_hex(&entry.name).map(IndexId);
            repo.read_verified(FileKind::Index, &entry.name, MAX_INDEX_LEN)
                .and_then(|bytes| IndexFile::decode(&bytes, repo.key(), &object))
                .map(|file| (id.unwrap_or_default(), file))
                .map_err(|e| {
                    problem(
                        &object,
                        format!(
                            "{e}; its packs are read from their headers (run arca repair index)"
                        ),
                    )
                })
        })
        .collect();
    // Files another one supersedes (left by an interrupted prune) were
    // checked above; like every reader, the index ignores them.
    let superseded: HashSet<IndexId> = decoded
        .iter()
        .flatten()
        .flat_map(|(_, f)| f.supersedes.iter().copied())
        .collect();
    let mut index = Index::default();
    let mut expected: HashMap<PackId, Expected> = HashMap::new();
    let mut total = 0u64;
    let damaged = decoded.iter().any(|f| f.is_err());
    for file in decoded {
        match file {
            Ok((id, _)) if superseded.contains(&id) => {}
            Ok((_, file)) => {
                index.add_file(&file);
                for pack in file.packs {
                    let Some(kind) = BlobKind::from_byte(pack.kind) else {
                        continue;
                    };
                    total += pack.blobs.len() as u64;
                    expected.entry(pack.id).or_insert(Expected {
                        kind,
                        size: pack.size,
                        blobs: pack.blobs,
                    });
                }
            }
            Err(p) => report.errors.push(p),
        }
    }
    if damaged {
        // What the damaged files described is still in the packs: the
        // rest of the check goes on with what their headers say.
        for (info, blobs) in repo.unindexed_pack_headers(&index)? {
            total += blobs.len() as u64;
            index.add_pack(info, &blobs);
            expected.insert(
                info.id,
                Expected {
                    kind: info.kind,
                    size: info.size,
                    blobs,
                },
            );
        }
    }
    index.finish();
    report.duplicate_blobs = total.saturating_sub(index.len() as u64);
    *repo.index_mut() = index;
    report.packs = expected.len() as u64;
    Ok(expected)
}

fn check_packs_exist(
    repo: &Repository,
    expected: &HashMap<PackId, Expected>,
    report: &mut CheckReport,
    damage: &mut Damage,
) -> Result<()> {
    let mut stored: HashMap<(BlobKind, String), u64> = HashMap::new();
    for kind in [BlobKind::Data, BlobKind::Tree] {
        for entry in repo.list(kind.file_kind())? {
            stored.insert((kind, entry.name), entry.size);
        }
    }
    let mut names: Vec<(&PackId, &Expected)> = expected.iter().collect();
    names.sort_by_key(|(id, _)| **id);
    for (id, pack) in names {
        let object = format!("{} {id}", pack.kind.file_kind());
        match stored.remove(&(pack.kind, id.to_hex())) {
            None => {
                for blob in &pack.blobs {
                    damage.blobs.entry(blob.id()).or_insert(report.errors.len());
                }
                report
                    .errors
                    .push(problem(object, "is in the index but missing from storage (run arca repair index, then arca repair snapshots --forget)"));
            }
            Some(size) if size != pack.size => report.errors.push(problem(
                object,
                format!("is {size} bytes, the index says {}", pack.size),
            )),
            Some(_) => {}
        }
    }
    let mut extra: Vec<_> = stored.into_keys().collect();
    extra.sort();
    report.unindexed_packs = extra.len() as u64;
    for (kind, name) in extra {
        report.warnings.push(problem(
            format!("{} {name}", kind.file_kind()),
            "is not in any index (an interrupted snapshot leaves such packs; prune removes them)",
        ));
    }
    Ok(())
}

fn load_snapshots(
    repo: &Repository,
    report: &mut CheckReport,
) -> Result<Vec<(SnapshotId, Snapshot)>> {
    let entries = repo.list(FileKind::Snapshot)?;
    report.snapshots = entries.len() as u64;
    let loaded: Vec<std::result::Result<(SnapshotId, Snapshot), Problem>> = entries
        .par_iter()
        .map(|entry| {
            let object = format!("snapshot {}", entry.name);
            let id =
                Id::from_hex(&entry.name).ok_or_else(|| problem(&object, "name is not an id"))?;
            repo.load_snapshot(&SnapshotId(id))
                .map(|snap| (SnapshotId(id), snap))
                .map_err(|e| {
                    let hint = if e.is_damage() {
                        "; every command skips it (run arca repair snapshots --forget)"
                    } else {
                        ""
                    };
                    problem(&object, format!("{e}{hint}"))
                })
        })
        .collect();
    let mut snapshots = Vec::new();
    for s in loaded {
        match s {
            Ok(s) => snapshots.push(s),
            Err(p) => report.errors.push(p),
        }
    }
    snapshots.sort_by_key(|s| s.1.time);
    Ok(snapshots)
}

/// Every snapshot must stay within the depth and expansion readers walk
/// ([`crate::ops::shape`]): one that does cannot be listed or restored.
fn check_shapes(
    repo: &Repository,
    snapshots: &[(SnapshotId, Snapshot)],
    report: &mut CheckReport,
) -> Result<()> {
    let mut shapes = HashMap::new();
    for (id, snapshot) in snapshots {
        match crate::ops::shape::measure_cached(repo, &snapshot.tree, &mut shapes) {
            Ok(_) => {}
            Err(e @ crate::Error::Corrupt { .. }) => report
                .errors
                .push(problem(format!("snapshot {id}"), e.to_string())),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Walks every distinct tree once: each must decode, and every blob it
/// references must be indexed.
fn check_trees(
    repo: &Repository,
    snapshots: &[(SnapshotId, Snapshot)],
    report: &mut CheckReport,
    damage: &mut Damage,
) {
    let mut seen: HashSet<TreeId> = HashSet::new();
    let mut stack: Vec<TreeId> = snapshots.iter().map(|(_, s)| s.tree).collect();
    while let Some(id) = stack.pop() {
        if !seen.insert(id) {
            continue;
        }
        let tree = match repo.read_tree(&id) {
            Ok(tree) => tree,
            Err(e) => {
                damage.trees.insert(id, report.errors.len());
                report
                    .errors
                    .push(problem(format!("tree {id}"), e.to_string()));
                continue;
            }
        };
        for node in tree.nodes {
            for blob in &node.content {
                if !repo.index().contains(BlobKind::Data, &blob.id())
                    && !damage.blobs.contains_key(&blob.id())
                {
                    damage.blobs.insert(blob.id(), report.errors.len());
                    report.errors.push(problem(
                        format!("data blob {blob}"),
                        "is referenced but not in any index",
                    ));
                }
            }
            if let Some(subtree) = node.subtree {
                stack.push(subtree);
            }
        }
    }
    report.trees = seen.len() as u64;
}

/// Chooses the packs to read, sorted by id.
fn select(expected: &HashMap<PackId, Expected>, subset: Subset) -> Vec<PackId> {
    let mut ids: Vec<PackId> = expected.keys().copied().collect();
    ids.sort();
    // One random key per run: which packs a random subset picks differs
    // from run to run, so repeated runs cover the repository.
    let mut key = [0u8; 32];
    crate::crypto::random_bytes(&mut key);
    let random = |id: &PackId| {
        let h = blake3::keyed_hash(&key, &id.id().0);
        let mut first = [0u8; 8];
        first.copy_from_slice(&h.as_bytes()[..8]);
        u64::from_le_bytes(first)
    };
    match subset {
        Subset::All => ids,
        Subset::Bucket { n, m } => ids
            .into_iter()
            .filter(|id| bucket_of(id, m) == n.saturating_sub(1))
            .collect(),
        Subset::Percent(p) => {
            let threshold = (p.clamp(0.0, 100.0) / 100.0 * u64::MAX as f64) as u64;
            ids.into_iter()
                .filter(|id| random(id) <= threshold)
                .collect()
        }
        Subset::Bytes(budget) => {
            let mut shuffled: Vec<(u64, PackId)> =
                ids.into_iter().map(|id| (random(&id), id)).collect();
            shuffled.sort();
            let mut used = 0u64;
            let mut chosen: Vec<PackId> = shuffled
                .into_iter()
                .filter(|(_, id)| {
                    let size = expected[id].size;
                    let take = used + size <= budget;
                    if take {
                        used += size;
                    }
                    take
                })
                .map(|(_, id)| id)
                .collect();
            chosen.sort();
            chosen
        }
    }
}

/// The bucket (0-based) of a pack among `m`: its id's first four bytes.
pub fn bucket_of(id: &PackId, m: u32) -> u32 {
    let b = id.id().0;
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) % m.max(1)
}

fn read_data(
    repo: &Repository,
    expected: &HashMap<PackId, Expected>,
    subset: Subset,
    progress: &CheckProgress,
    report: &mut CheckReport,
    damage: &mut Damage,
) -> Result<()> {
    let chosen = select(expected, subset);
    let total: u64 = chosen.iter().map(|id| expected[id].size).sum();
    progress.bytes_total.store(total, Ordering::Relaxed);
    let results: Vec<(Vec<Problem>, Vec<Id>)> = chosen
        .par_iter()
        .map(|id| check_pack(repo, id, &expected[id], progress, READ_WINDOW))
        .collect();
    report.packs_read = chosen.len() as u64;
    report.bytes_read = progress.bytes_read.load(Ordering::Relaxed);
    for (problems, damaged) in results {
        for id in damaged {
            damage.blobs.entry(id).or_insert(report.errors.len());
        }
        report.errors.extend(problems);
    }
    Ok(())
}

/// Every WAL object's header opens and belongs to its name; with
/// `--read-data` (all, or the objects of bucket n/m, or a random share),
/// every frame and the content hash are verified too (format.md §4.11).
/// A subset by size reads packs only: WAL objects get their header check.
fn check_wal(
    repo: &Repository,
    subset: Option<Subset>,
    report: &mut CheckReport,
) -> Result<Vec<WalHeader>> {
    let mut key = [0u8; 32];
    crate::crypto::random_bytes(&mut key);
    let names: Vec<(String, bool)> = repo
        .list(FileKind::Wal)?
        .into_iter()
        .filter(|e| crate::repository::is_object_name(&e.name))
        .map(|e| {
            let id = Id::from_hex(&e.name).unwrap_or_default();
            let full = match subset {
                None | Some(Subset::Bytes(_)) => false,
                Some(Subset::All) => true,
                Some(Subset::Bucket { n, m }) => bucket_of(&PackId(id), m) == n.saturating_sub(1),
                Some(Subset::Percent(p)) => {
                    let h = blake3::keyed_hash(&key, &id.0);
                    let first =
                        u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or_default());
                    first <= (p.clamp(0.0, 100.0) / 100.0 * u64::MAX as f64) as u64
                }
            };
            (e.name, full)
        })
        .collect();
    let results: Vec<std::result::Result<WalHeader, Problem>> = names
        .par_iter()
        .map(|(name, full)| {
            crate::wal::verify_wal(repo, name, *full)
                .map_err(|e| problem(format!("WAL object {name}"), e.to_string()))
        })
        .collect();
    report.wal_objects = names.len() as u64;
    report.wal_read = names.iter().filter(|(_, full)| *full).count() as u64;
    let mut headers = Vec::new();
    for result in results {
        match result {
            Ok(header) => headers.push(header),
            Err(problem) => report.errors.push(problem),
        }
    }
    Ok(headers)
}

/// Every base backup (format.md §7.11) has a readable record, and the
/// archive holds (readable) every WAL segment from its start to its stop,
/// without which it cannot become consistent: a backup that fails this
/// cannot be restored, however sound its own data.
fn check_base_backups(
    repo: &Repository,
    snapshots: &[(SnapshotId, Snapshot)],
    archived: &[WalHeader],
    report: &mut CheckReport,
) {
    let (backups, unreadable) = crate::pg::base_backups(repo, snapshots);
    for (id, e) in unreadable {
        // The snapshot is named once, as the problem's object.
        let why = match e {
            crate::Error::Corrupt { reason, .. } => reason,
            other => other.to_string(),
        };
        report.errors.push(problem(
            format!("snapshot {id}"),
            format!("no usable base backup: {why}"),
        ));
    }
    let names: HashSet<&str> = archived.iter().map(|h| h.name.as_str()).collect();
    // Every segment has the cluster's segment size.
    let segment_size = archived
        .iter()
        .find(|h| h.name.len() == 24 && h.size.is_power_of_two())
        .map(|h| h.size);
    for backup in backups {
        let needed = crate::pg::segments_between(&backup.backup, segment_size);
        let missing: Vec<&String> = needed
            .iter()
            .filter(|n| !names.contains(n.as_str()))
            .collect();
        if let Some(first) = missing.first() {
            report.errors.push(problem(
                format!("snapshot {}", backup.id),
                format!(
                    "the base backup needs WAL file {first}{}, which the repository does not hold readable: it cannot be restored",
                    match missing.len() {
                        1 => String::new(),
                        n => format!(" and {} more", n - 1),
                    }
                ),
            ));
        }
    }
}

/// Bytes of a pack read at a time by a data check: with the largest blob,
/// about what one checking thread holds, whatever the pack size.
const READ_WINDOW: u64 = 1 << 20;

/// Reads one pack in full, window by window, and checks everything about
/// it: its hash against its name, its header against the index, and every
/// blob it should hold.
fn check_pack(
    repo: &Repository,
    id: &PackId,
    expected: &Expected,
    progress: &CheckProgress,
    window: u64,
) -> (Vec<Problem>, Vec<Id>) {
    let file_kind = expected.kind.file_kind();
    let name = id.to_hex();
    let object = format!("{file_kind} {name}");
    let all = |message: String| {
        let blobs = expected.blobs.iter().map(PackEntry::id).collect();
        (vec![problem(&object, message)], blobs)
    };
    let size = match repo.backend().size(file_kind, &name) {
        Ok(size) => size,
        Err(e) => return all(e.to_string()),
    };
    let mut blobs = expected.blobs.clone();
    blobs.sort_by_key(PackEntry::offset);
    let mut problems = Vec::new();
    let mut damaged = Vec::new();
    let mut hasher = blake3::Hasher::new();
    // Bytes from `held_from` on: the window just read and any blob begun
    // in an earlier one.
    let mut held: Vec<u8> = Vec::new();
    let mut held_from = 0u64;
    let mut next = 0;
    let mut pos = 0u64;
    let mut buffers = blob::Buffers::default();
    while pos < size {
        let want = window.min(size - pos);
        let bytes = match repo.backend().read_range(file_kind, &name, pos, want) {
            Ok(bytes) if bytes.len() as u64 == want => bytes,
            Ok(_) => return all("shorter than its listed size".into()),
            Err(e) => return all(e.to_string()),
        };
        progress.bytes_read.fetch_add(want, Ordering::Relaxed);
        hasher.update(&bytes);
        held.extend_from_slice(&bytes);
        pos += want;
        while let Some(entry) = blobs.get(next) {
            let (start, end) = (
                u64::from(entry.offset()),
                u64::from(entry.offset()) + u64::from(entry.length()),
            );
            if end > pos {
                break;
            }
            let stored = &held[(start - held_from) as usize..(end - held_from) as usize];
            let opened = blob::open_with(
                repo.key(),
                expected.kind,
                &entry.id(),
                entry.compression(),
                entry.raw_length(),
                stored,
                &mut buffers,
                &|| object.clone(),
            );
            if let Err(e) = opened {
                problems.push(problem(&object, e.to_string()));
                damaged.push(entry.id());
            }
            next += 1;
        }
        let keep_from = blobs
            .get(next)
            .map_or(pos, |e| u64::from(e.offset()).min(pos));
        held.drain(..(keep_from - held_from) as usize);
        held_from = keep_from;
    }
    if Id(*hasher.finalize().as_bytes()) != id.id() {
        return all("contents do not match the name (storage corruption)".into());
    }
    for entry in &blobs[next..] {
        problems.push(problem(&object, "blob extends past the end"));
        damaged.push(entry.id());
    }
    match pack::read_header_ranged(repo.backend(), repo.key(), file_kind, &name, size) {
        Ok(mut header) => {
            header.sort_by_key(PackEntry::offset);
            if header != blobs {
                problems.push(problem(
                    &object,
                    "its header and the index disagree about its blobs",
                ));
            }
        }
        Err(e) => problems.push(problem(&object, e.to_string())),
    }
    (problems, damaged)
}

/// Adds to each damage problem the snapshots and paths it hurts (at most
/// 100 per problem, so a lost pack does not flood the report).
fn trace_damage(
    repo: &Repository,
    snapshots: &[(SnapshotId, Snapshot)],
    damage: &Damage,
    report: &mut CheckReport,
) {
    for (id, snap) in snapshots {
        let mut hits: Vec<(usize, PathBuf)> = Vec::new();
        if let Some(&p) = damage.trees.get(&snap.tree) {
            hits.push((p, PathBuf::from("/")));
        }
        trace_tree(
            repo,
            &snap.tree,
            Path::new("/"),
            damage,
            &mut hits,
            &mut HashSet::new(),
        );
        for (problem, path) in hits {
            let affects = &mut report.errors[problem].affects;
            if affects.len() < 100 {
                affects.push(Affected {
                    snapshot: id.to_hex(),
                    path: path.to_string_lossy().into_owned(),
                });
            }
        }
    }
}

fn trace_tree(
    repo: &Repository,
    tree: &TreeId,
    at: &Path,
    damage: &Damage,
    hits: &mut Vec<(usize, PathBuf)>,
    clean: &mut HashSet<TreeId>,
) -> bool {
    if clean.contains(tree) {
        return false;
    }
    let Ok(decoded) = repo.read_tree(tree) else {
        return true;
    };
    let mut hurt = false;
    for node in decoded.nodes {
        let path = at.join(OsStr::from_bytes(&node.name));
        if let Some(&p) = node.content.iter().find_map(|b| damage.blobs.get(&b.id())) {
            hits.push((p, path.clone()));
            hurt = true;
        }
        if let (NodeKind::Dir, Some(subtree)) = (node.kind, node.subtree) {
            if let Some(&p) = damage.trees.get(&subtree) {
                hits.push((p, path.clone()));
                hurt = true;
            } else {
                hurt |= trace_tree(repo, &subtree, &path, damage, hits, clean);
            }
        }
    }
    if !hurt {
        clean.insert(*tree);
    }
    hurt
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::blob::Sealer;
    use crate::config::InitOptions;
    use crate::pack::PackWriter;
    use crate::repository::Owner;

    /// A repository holding one data pack of blobs of 1 to 40 KiB; returns
    /// it with the pack's id and what its index says.
    fn repository_with_pack() -> (Repository, PackId, Expected) {
        let backend = Arc::new(arca_backend::MemoryBackend::new());
        let options = InitOptions {
            kdf: crate::key::TEST_KDF,
            ..InitOptions::default()
        };
        Repository::init(backend.clone(), b"pw", &options, &Owner::default()).unwrap();
        let repo = Repository::open(backend, b"pw").unwrap();
        let mut writer = PackWriter::new(BlobKind::Data, 1 << 20);
        let mut sealer = Sealer::default();
        for n in 1..=40u32 {
            // Half compressible, half not.
            let plain: Vec<u8> = (0..n * 1024)
                .map(|i| {
                    if n % 2 == 0 {
                        (i % 7) as u8
                    } else {
                        (i.wrapping_mul(2_654_435_761) >> 13) as u8
                    }
                })
                .collect();
            let id = repo.key().blob_id(&plain);
            let mut stored = Vec::new();
            let c = sealer.seal_into(repo.key(), 3, BlobKind::Data, &id, &plain, &mut stored);
            writer.add(id, plain.len() as u32, c, &stored).unwrap();
        }
        let pack = writer.finish(repo.key()).unwrap();
        let id = pack.id;
        let stored = repo.write_pack(pack).unwrap();
        let expected = Expected {
            kind: BlobKind::Data,
            size: stored.size,
            blobs: stored.blobs,
        };
        (repo, id, expected)
    }

    #[test]
    fn packs_read_in_windows_of_any_size_check_clean() {
        let (repo, id, expected) = repository_with_pack();
        // Windows smaller than a blob, around a blob's size, and larger
        // than the pack: blobs start, span and end in every position.
        for window in [7, 1000, 4096, 33_333, 1 << 20] {
            let progress = CheckProgress::default();
            let (problems, damaged) = check_pack(&repo, &id, &expected, &progress, window);
            assert!(problems.is_empty(), "window {window}: {problems:?}");
            assert!(damaged.is_empty());
            assert_eq!(progress.bytes_read.load(Ordering::Relaxed), expected.size);
        }
    }

    #[test]
    fn a_blob_the_index_misdescribes_is_the_one_reported() {
        let (repo, id, mut expected) = repository_with_pack();
        // The index claims another id for blob 17: that blob, and only it,
        // is damaged (and the header no longer agrees with the index).
        let wrong = Id::of_stored(b"another blob");
        let PackEntry(kind, _, offset, length, raw, compression) = expected.blobs[17];
        expected.blobs[17] = PackEntry(kind, wrong, offset, length, raw, compression);
        for window in [7, 4096, 1 << 20] {
            let (problems, damaged) =
                check_pack(&repo, &id, &expected, &CheckProgress::default(), window);
            assert_eq!(damaged, vec![wrong], "window {window}");
            assert_eq!(problems.len(), 2, "{problems:?}");
        }
    }

    #[test]
    fn buckets_partition_the_packs() {
        let expected: HashMap<PackId, Expected> = (0u32..500)
            .map(|n| {
                let id = PackId(Id::of_stored(&n.to_le_bytes()));
                (
                    id,
                    Expected {
                        kind: BlobKind::Data,
                        size: 10,
                        blobs: Vec::new(),
                    },
                )
            })
            .collect();
        let mut seen: Vec<PackId> = (1..=7)
            .flat_map(|n| select(&expected, Subset::Bucket { n, m: 7 }))
            .collect();
        seen.sort();
        let mut all: Vec<PackId> = expected.keys().copied().collect();
        all.sort();
        assert_eq!(seen, all, "every pack exactly once");
        assert_eq!(select(&expected, Subset::Bytes(95)).len(), 9);
        assert_eq!(select(&expected, Subset::Percent(100.0)).len(), 500);
    }
}
