//! WAL objects (format.md §4.11): hostile and damaged objects are refused
//! with an error naming the object and leave nothing at the target;
//! archiving is idempotent and never overwrites; a failed write leaves no
//! object; check, copy, prune and the repairs handle `wal/` as specified.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::common;

use arca_backend::{Backend, FileKind, LocalBackend, MemoryBackend};
use arca_core::format::{AAD_WAL_FRAME, AAD_WAL_HEADER};
use arca_core::{
    Archived, CheckOptions, CheckProgress, Error, PruneOptions, Repository, Subset, Time, WalHeader,
};
use common::{Failing, random};

const SEGMENT: &str = "000000010000000000000001";
const MIB: usize = 1 << 20;

fn new_repo() -> (MemoryBackend, Repository) {
    let memory = common::init_memory(b"pw", &common::test_options());
    let repo = Repository::open(Arc::new(memory.clone()), b"pw").unwrap();
    (memory, repo)
}

fn write(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

/// The object of `file` in `repo`, as stored.
fn stored(memory: &MemoryBackend, repo: &Repository, file: &str) -> (String, Vec<u8>) {
    let name = arca_core::wal_object_name(repo, file).unwrap();
    let bytes = memory.read(FileKind::Wal, &name, u64::MAX).unwrap();
    (name, bytes)
}

/// An object split into its pieces, each with its length prefix: the
/// header first, then the frames.
fn pieces(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        out.push(bytes[pos..pos + 4 + len].to_vec());
        pos += 4 + len;
    }
    out
}

/// Restores `file` into a fresh directory: the error, and whether any
/// file was left there.
fn restore_err(repo: &Repository, file: &str) -> (Error, bool) {
    let dir = tempfile::tempdir().unwrap();
    let err = arca_core::restore_wal(repo, file, &dir.path().join(file)).unwrap_err();
    let left = std::fs::read_dir(dir.path()).unwrap().count() > 0;
    (err, left)
}

fn assert_refused(
    memory: &MemoryBackend,
    repo: &Repository,
    name: &str,
    bytes: Vec<u8>,
    what: &str,
) {
    memory.tamper(FileKind::Wal, name, bytes);
    let (err, left) = restore_err(repo, SEGMENT);
    assert!(err.is_damage(), "{what}: {err}");
    assert!(err.to_string().contains(name), "{what}: {err}");
    assert!(!left, "{what}: a file was left at the target");
    let err = arca_core::verify_wal(repo, name, true).unwrap_err();
    assert!(err.is_damage(), "{what}: {err}");
}

#[test]
fn files_of_every_shape_round_trip() {
    let (memory, repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    let shapes: [(usize, usize); 6] = [
        (0, 1),
        (1, 1),
        (MIB, 1),
        (MIB + 1, 2),
        (3 * MIB + MIB / 2, 4),
        (16 * MIB, 16),
    ];
    for (i, (size, frames)) in shapes.into_iter().enumerate() {
        let name = format!("0000000100000000000000{i:02X}");
        // Half compressible, half not.
        let mut content = vec![0u8; size / 2];
        content.extend(random(size - size / 2, i as u64));
        let path = write(dir.path(), &name, &content);
        assert_eq!(
            arca_core::archive_wal(&repo, &path).unwrap(),
            Archived::Stored
        );
        let (object, bytes) = stored(&memory, &repo, &name);
        assert_eq!(pieces(&bytes).len(), 1 + frames, "{size} bytes");
        let out = dir.path().join("out");
        let header = arca_core::restore_wal(&repo, &name, &out).unwrap().unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), content, "{size} bytes");
        assert_eq!(header.size, size as u64);
        assert_eq!(header.name, name);
        assert_eq!(arca_core::verify_wal(&repo, &object, true).unwrap(), header);
    }
    assert!(common::full_check(&memory).ok());
}

#[test]
fn the_object_name_is_the_keyed_hash_of_the_file_name_and_hides_it() {
    let (_, repo) = new_repo();
    let name = arca_core::wal_object_name(&repo, SEGMENT).unwrap();
    assert_eq!(name, repo.key().wal_name(SEGMENT).to_hex());
    assert_ne!(name, blake3::hash(SEGMENT.as_bytes()).to_hex().to_string());
    let (_, other) = new_repo();
    assert_ne!(name, arca_core::wal_object_name(&other, SEGMENT).unwrap());
}

#[test]
fn only_postgresql_file_names_are_accepted() {
    for good in [
        SEGMENT,
        "00000002.history",
        "000000010000000000000001.00000028.backup",
        "000000010000000000000001.partial",
        "FFFFFFFFFFFFFFFFFFFFFFFF",
    ] {
        assert!(arca_core::is_wal_file_name(good), "{good}");
    }
    for bad in [
        "",
        "00000001000000000000000",
        "0000000100000000000000010",
        "00000001000000000000000a",
        "pg_wal/000000010000000000000001",
        "../000000010000000000000001",
        "00000002.History",
        "0000002.history",
        "000000010000000000000001.backup",
        "000000010000000000000001.partial.partial",
        "RECOVERYXLOG",
        "archive_status",
    ] {
        assert!(!arca_core::is_wal_file_name(bad), "{bad}");
    }
    let (memory, repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "RECOVERYXLOG", b"x");
    let err = arca_core::archive_wal(&repo, &path).unwrap_err();
    assert_eq!(err.kind(), arca_core::ErrorKind::InvalidInput, "{err}");
    assert!(memory.list(FileKind::Wal).unwrap().is_empty());
}

#[test]
fn a_flipped_byte_anywhere_is_found_and_named() {
    let (memory, repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), SEGMENT, &random(2 * MIB + 5, 1));
    arca_core::archive_wal(&repo, &path).unwrap();
    let (name, good) = stored(&memory, &repo, SEGMENT);
    let parts = pieces(&good);
    assert_eq!(parts.len(), 4);
    let mut offsets = vec![0, 3, 4, 20, parts[0].len() - 1];
    let mut start = parts[0].len();
    for part in &parts[1..] {
        offsets.extend([
            start,
            start + 2,
            start + 4,
            start + 40,
            start + part.len() - 1,
        ]);
        start += part.len();
    }
    for at in offsets {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        assert_refused(&memory, &repo, &name, bad, &format!("byte {at}"));
    }
}

#[test]
fn dropped_repeated_reordered_cut_or_added_frames_are_refused() {
    let (memory, repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), SEGMENT, &random(3 * MIB, 2));
    arca_core::archive_wal(&repo, &path).unwrap();
    let (name, good) = stored(&memory, &repo, SEGMENT);
    let p = pieces(&good);
    let (h, f0, f1, f2) = (&p[0][..], &p[1][..], &p[2][..], &p[3][..]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a middle frame dropped", [h, f0, f2].concat()),
        ("the last frame dropped", [h, f0, f1].concat()),
        ("a frame repeated", [h, f0, f0, f1, f2].concat()),
        ("frames swapped", [h, f1, f0, f2].concat()),
        (
            "the last frame repeated at the end",
            [h, f0, f1, f2, f2].concat(),
        ),
        ("a byte appended", [h, f0, f1, f2, &[0u8][..]].concat()),
        ("cut inside the last frame", good[..good.len() - 7].to_vec()),
        ("only the header", h.to_vec()),
        ("empty", Vec::new()),
        ("cut inside the header", h[..10].to_vec()),
    ];
    for (what, bytes) in cases {
        assert_refused(&memory, &repo, &name, bytes, what);
    }
}

#[test]
fn an_object_or_a_frame_moved_from_another_object_is_refused() {
    let (memory, repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    let other = "000000010000000000000002";
    arca_core::archive_wal(&repo, &write(dir.path(), SEGMENT, &random(MIB + 9, 3))).unwrap();
    arca_core::archive_wal(&repo, &write(dir.path(), other, &random(MIB + 9, 4))).unwrap();
    let (name, mine) = stored(&memory, &repo, SEGMENT);
    let (_, theirs) = stored(&memory, &repo, other);
    let (m, t) = (pieces(&mine), pieces(&theirs));
    assert_refused(
        &memory,
        &repo,
        &name,
        theirs.clone(),
        "another object's bytes",
    );
    assert_refused(
        &memory,
        &repo,
        &name,
        [&m[0][..], &t[1], &m[2]].concat(),
        "another object's frame",
    );
    assert_refused(
        &memory,
        &repo,
        &name,
        [&t[0][..], &m[1], &m[2]].concat(),
        "another object's header",
    );
}

/// A header sealed with the repository's key (as only a key holder could)
/// but claiming what no writer writes.
fn forged(repo: &Repository, name: &str, header: &WalHeader) -> Vec<u8> {
    let id = arca_core::Id::from_hex(name).unwrap();
    let mut plain = vec![0u8];
    plain.extend(rmp_serde::to_vec_named(header).unwrap());
    let sealed = repo.key().seal(&[AAD_WAL_HEADER, &id.0].concat(), &plain);
    [(sealed.len() as u32).to_le_bytes().to_vec(), sealed].concat()
}

#[test]
fn huge_claims_are_refused_before_anything_is_allocated() {
    let (memory, repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    arca_core::archive_wal(&repo, &write(dir.path(), SEGMENT, b"tiny")).unwrap();
    let (name, good) = stored(&memory, &repo, SEGMENT);
    let frames = pieces(&good)[1..].concat();
    let header = WalHeader {
        name: SEGMENT.into(),
        size: 4,
        hash: arca_core::Id(*blake3::hash(b"tiny").as_bytes()),
        archived: Time::now(),
        frame_size: 1 << 20,
    };
    let cases = [
        (
            "a size of 1 TiB",
            WalHeader {
                size: 1 << 40,
                ..header.clone()
            },
        ),
        (
            "a frame of 2 GiB",
            WalHeader {
                frame_size: 1 << 31,
                ..header.clone()
            },
        ),
        (
            "a frame of 0 bytes",
            WalHeader {
                frame_size: 0,
                ..header.clone()
            },
        ),
        (
            "another file's name",
            WalHeader {
                name: "000000010000000000000002".into(),
                ..header.clone()
            },
        ),
        (
            "a name that is no WAL file",
            WalHeader {
                name: "../../etc/passwd".into(),
                ..header.clone()
            },
        ),
        (
            "a wrong hash",
            WalHeader {
                hash: arca_core::Id([7; 32]),
                ..header.clone()
            },
        ),
        (
            "a wrong size",
            WalHeader {
                size: 5,
                ..header.clone()
            },
        ),
    ];
    for (what, bad) in cases {
        assert_refused(
            &memory,
            &repo,
            &name,
            [forged(&repo, &name, &bad), frames.clone()].concat(),
            what,
        );
    }
    // A header length or frame length of 4 GiB.
    let huge = u32::MAX.to_le_bytes().to_vec();
    assert_refused(
        &memory,
        &repo,
        &name,
        [huge.clone(), good[4..].to_vec()].concat(),
        "a 4 GiB header",
    );
    let header_part = pieces(&good)[0].clone();
    assert_refused(
        &memory,
        &repo,
        &name,
        [header_part, huge, frames[4..].to_vec()].concat(),
        "a 4 GiB frame",
    );
    // The genuine header still opens: the forgeries differed only as stated.
    memory.tamper(
        FileKind::Wal,
        &name,
        [forged(&repo, &name, &header), frames].concat(),
    );
    arca_core::verify_wal(&repo, &name, true).unwrap();
}

#[test]
fn a_frame_sealed_with_the_key_but_with_the_wrong_length_is_refused() {
    let (memory, repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    arca_core::archive_wal(&repo, &write(dir.path(), SEGMENT, b"four")).unwrap();
    let (name, good) = stored(&memory, &repo, SEGMENT);
    let id = arca_core::Id::from_hex(&name).unwrap();
    let aad = [AAD_WAL_FRAME, &id.0, &0u64.to_le_bytes(), &[1]].concat();
    for (what, payload) in [
        ("a longer frame", b"\x00fourx".to_vec()),
        ("a shorter frame", b"\x00fou".to_vec()),
        ("an unknown marker", b"\x07four".to_vec()),
    ] {
        let sealed = repo.key().seal(&aad, &payload);
        let frame = [(sealed.len() as u32).to_le_bytes().to_vec(), sealed].concat();
        assert_refused(
            &memory,
            &repo,
            &name,
            [pieces(&good)[0].clone(), frame].concat(),
            what,
        );
    }
}

#[test]
fn archiving_again_is_idempotent_and_different_content_is_refused() {
    let (memory, repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), SEGMENT, &random(MIB, 5));
    assert_eq!(
        arca_core::archive_wal(&repo, &path).unwrap(),
        Archived::Stored
    );
    let (_, before) = stored(&memory, &repo, SEGMENT);
    assert_eq!(
        arca_core::archive_wal(&repo, &path).unwrap(),
        Archived::AlreadyPresent
    );
    write(dir.path(), SEGMENT, &random(MIB, 6));
    let err = arca_core::archive_wal(&repo, &path).unwrap_err();
    assert_eq!(err.kind(), arca_core::ErrorKind::Conflict, "{err}");
    assert!(err.to_string().contains(SEGMENT), "{err}");
    let (_, after) = stored(&memory, &repo, SEGMENT);
    assert_eq!(before, after, "the stored object is unchanged");
    assert_eq!(memory.list(FileKind::Wal).unwrap().len(), 1);
}

#[test]
fn a_damaged_stored_object_is_reported_and_never_overwritten() {
    let (memory, repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), SEGMENT, b"content");
    arca_core::archive_wal(&repo, &path).unwrap();
    let (name, mut bytes) = stored(&memory, &repo, SEGMENT);
    bytes[10] ^= 1;
    memory.tamper(FileKind::Wal, &name, bytes.clone());
    let err = arca_core::archive_wal(&repo, &path).unwrap_err();
    assert!(err.is_damage() && err.to_string().contains(&name), "{err}");
    assert_eq!(memory.read(FileKind::Wal, &name, u64::MAX).unwrap(), bytes);
}

#[test]
fn a_failed_write_leaves_no_object_and_a_retry_stores_it() {
    let memory = common::init_memory(b"pw", &common::test_options());
    let failing = Arc::new(Failing::new(memory.clone(), |kind, _| {
        kind == FileKind::Wal
    }));
    let repo = Repository::open(failing, b"pw").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), SEGMENT, &random(MIB + 1, 7));
    assert!(arca_core::archive_wal(&repo, &path).is_err());
    assert!(memory.list(FileKind::Wal).unwrap().is_empty());
    let repo = Repository::open(Arc::new(memory.clone()), b"pw").unwrap();
    assert_eq!(
        arca_core::archive_wal(&repo, &path).unwrap(),
        Archived::Stored
    );
}

#[test]
fn on_local_storage_objects_are_staged_and_nothing_temporary_remains() {
    let root = tempfile::tempdir().unwrap();
    let backend = Arc::new(LocalBackend::new(root.path().join("repo")));
    Repository::init(
        backend.clone(),
        b"pw",
        &common::test_options(),
        &Default::default(),
    )
    .unwrap();
    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let content = random(3 * MIB + 3, 8);
    let path = write(dir.path(), SEGMENT, &content);
    arca_core::archive_wal(&repo, &path).unwrap();
    let out = dir.path().join("restored");
    arca_core::restore_wal(&repo, SEGMENT, &out)
        .unwrap()
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), content);
    let names: Vec<_> = std::fs::read_dir(root.path().join("repo/wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, [arca_core::wal_object_name(&repo, SEGMENT).unwrap()]);
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 2, "only the source and the restored file");
}

#[test]
fn an_absent_file_is_none_and_writes_nothing() {
    let (_, repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(SEGMENT);
    assert!(
        arca_core::restore_wal(&repo, SEGMENT, &out)
            .unwrap()
            .is_none()
    );
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[test]
fn restoring_replaces_an_existing_file_only_once_verified() {
    let (memory, repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    arca_core::archive_wal(&repo, &write(dir.path(), SEGMENT, b"archived")).unwrap();
    let out = write(dir.path(), "RECOVERYXLOG", b"old");
    let (name, mut bytes) = stored(&memory, &repo, SEGMENT);
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    memory.tamper(FileKind::Wal, &name, bytes);
    assert!(arca_core::restore_wal(&repo, SEGMENT, &out).is_err());
    assert_eq!(std::fs::read(&out).unwrap(), b"old");
}

fn check(memory: &MemoryBackend, read_data: Option<Subset>) -> arca_core::CheckReport {
    let mut repo = Repository::open(Arc::new(memory.clone()), b"pw").unwrap();
    arca_core::check(
        &mut repo,
        &CheckOptions { read_data },
        &CheckProgress::default(),
    )
    .unwrap()
}

#[test]
fn check_reads_headers_always_and_frames_with_read_data() {
    let (memory, repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    for i in 1..=3 {
        let name = format!("00000001000000000000000{i}");
        arca_core::archive_wal(&repo, &write(dir.path(), &name, &random(MIB + i, i as u64)))
            .unwrap();
    }
    let report = check(&memory, Some(Subset::All));
    assert!(report.ok(), "{:?}", report.errors);
    assert_eq!((report.wal_objects, report.wal_read), (3, 3));

    let (name, mut bytes) = stored(&memory, &repo, "000000010000000000000002");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    memory.tamper(FileKind::Wal, &name, bytes.clone());
    let report = check(&memory, None);
    assert!(report.ok(), "a frame is read only with --read-data");
    assert_eq!(report.wal_read, 0);
    let report = check(&memory, Some(Subset::All));
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    assert!(report.errors[0].object.contains(&name));
    assert!(
        report.errors[0]
            .message
            .contains("000000010000000000000002")
    );
    // Buckets 1..=3 of 3 read every object exactly once between them.
    let read: u64 = (1..=3)
        .map(|n| check(&memory, Some(Subset::Bucket { n, m: 3 })).wal_read)
        .sum();
    assert_eq!(read, 3);

    bytes[10] ^= 1;
    memory.tamper(FileKind::Wal, &name, bytes);
    assert_eq!(
        check(&memory, None).errors.len(),
        1,
        "a damaged header is found always"
    );
    // A stray in wal/ is a warning, never an error.
    memory.tamper(FileKind::Wal, "abcd", b"stray".to_vec());
    let report = check(&memory, None);
    assert_eq!(report.errors.len(), 1);
}

#[test]
fn copy_reseals_under_the_destination_and_is_idempotent() {
    let (src_memory, src) = new_repo();
    let (dst_memory, dst) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    let mut contents = Vec::new();
    for i in 1..=3 {
        let name = format!("00000001000000000000000{i}");
        let content = random(MIB * i + 17, 10 + i as u64);
        arca_core::archive_wal(&src, &write(dir.path(), &name, &content)).unwrap();
        contents.push((name, content));
    }
    arca_core::archive_wal(
        &dst,
        &write(dir.path(), "000000010000000000000001", &contents[0].1),
    )
    .unwrap();
    let dry = arca_core::copy_wal(&src, &dst, true).unwrap();
    assert_eq!((dry.copied, dry.present), (2, 1));
    assert_eq!(dst_memory.list(FileKind::Wal).unwrap().len(), 1);
    let report = arca_core::copy_wal(&src, &dst, false).unwrap();
    assert_eq!(
        (report.copied, report.present, report.failed.len()),
        (2, 1, 0)
    );
    let again = arca_core::copy_wal(&src, &dst, false).unwrap();
    assert_eq!((again.copied, again.present), (0, 3));
    for (name, content) in &contents {
        let out = dir.path().join("out");
        arca_core::restore_wal(&dst, name, &out).unwrap().unwrap();
        assert_eq!(&std::fs::read(&out).unwrap(), content);
        assert_ne!(
            arca_core::wal_object_name(&src, name).unwrap(),
            arca_core::wal_object_name(&dst, name).unwrap()
        );
    }
    assert!(common::full_check(&dst_memory).ok());
    // A damaged source object is reported; the others are still copied.
    let (third_dst, _) = new_repo();
    let third = Repository::open(Arc::new(third_dst.clone()), b"pw").unwrap();
    let (name, mut bytes) = stored(&src_memory, &src, "000000010000000000000002");
    bytes[50] ^= 1;
    src_memory.tamper(FileKind::Wal, &name, bytes);
    let report = arca_core::copy_wal(&src, &third, false).unwrap();
    assert_eq!((report.copied, report.failed.len()), (2, 1));
    assert!(report.failed[0].0.contains(&name));
}

#[test]
fn prune_and_the_repairs_leave_wal_objects_alone() {
    let (memory, repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    let content = random(2 * MIB, 20);
    arca_core::archive_wal(&repo, &write(dir.path(), SEGMENT, &content)).unwrap();
    let source = tempfile::tempdir().unwrap();
    write(source.path(), "file", &random(100_000, 21));
    let mut indexed = common::open(Arc::new(memory.clone()), b"pw");
    let options = arca_core::SnapshotOptions {
        paths: vec![source.path().to_path_buf()],
        hostname: "h".into(),
        ..Default::default()
    };
    let id = arca_core::snapshot(&mut indexed, &options, &Default::default())
        .unwrap()
        .id
        .unwrap();
    indexed.remove_snapshot(&id).unwrap();
    let before = memory.list(FileKind::Wal).unwrap();
    let prune = PruneOptions {
        max_unused: 0.0,
        keep_marked: Duration::ZERO,
        instant_delete: true,
    };
    let lock = common::exclusive(&indexed).unwrap();
    let plan = arca_core::plan_prune(&mut indexed, &prune, None).unwrap();
    arca_core::execute_prune(&indexed, &plan, &prune, &lock, None).unwrap();
    arca_core::repair_index(&mut indexed, false, &lock).unwrap();
    arca_core::repair_packs(&mut indexed, &[], false, &lock).unwrap();
    drop(lock);
    assert!(memory.list(FileKind::Data).unwrap().is_empty(), "prune ran");
    let after = memory.list(FileKind::Wal).unwrap();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].name, after[0].name);
    let out = dir.path().join("out");
    arca_core::restore_wal(&repo, SEGMENT, &out)
        .unwrap()
        .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), content);
    assert!(common::full_check(&memory).ok());
}

#[test]
fn a_file_over_one_gib_is_refused_before_it_is_read() {
    let (memory, repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SEGMENT);
    let file = std::fs::File::create(&path).unwrap();
    file.set_len((1 << 30) + 1).unwrap(); // sparse: nothing is written
    let err = arca_core::archive_wal(&repo, &path).unwrap_err();
    assert_eq!(err.kind(), arca_core::ErrorKind::InvalidInput, "{err}");
    assert!(memory.list(FileKind::Wal).unwrap().is_empty());
}

/// Every request to `wal/` of one archive fails in turn, in each way
/// storage can fail or lie, with uploads verified: what is left is no
/// object or a complete one, never one that fails to restore, and success
/// is reported only for a complete one. A retry (PostgreSQL's) then stores
/// the file.
#[test]
fn archiving_against_failing_storage_leaves_no_object_or_a_complete_one() {
    use arca_backend::fault::{Fault, FaultBackend, Schedule};
    let content = random(3 * MIB + 11, 30);
    let faults = [
        Fault::Permanent,
        Fault::TransientAfter,
        Fault::Truncate,
        Fault::Corrupt,
    ];
    for fault in faults {
        for k in 0..8 {
            let memory = common::init_memory(b"pw", &common::test_options());
            let schedule = Schedule::nth(k, fault).only(&[FileKind::Wal]);
            let faulty = Arc::new(FaultBackend::new(memory.clone(), schedule));
            let mut repo = Repository::open(faulty, b"pw").unwrap();
            repo.set_verify_uploads(true);
            let dir = tempfile::tempdir().unwrap();
            let path = write(dir.path(), SEGMENT, &content);
            let result = arca_core::archive_wal(&repo, &path);
            let clean = Repository::open(Arc::new(memory.clone()), b"pw").unwrap();
            let out = dir.path().join("out");
            let what = format!("{fault:?} at request {k} (archive: {result:?})");
            match arca_core::restore_wal(&clean, SEGMENT, &out) {
                Ok(Some(_)) => assert!(std::fs::read(&out).unwrap() == content, "{what}"),
                Ok(None) => assert!(result.is_err(), "{what}: success without an object"),
                Err(e) => panic!("{what}: a damaged object was left: {e}"),
            }
            arca_core::archive_wal(&clean, &path).unwrap();
            arca_core::restore_wal(&clean, SEGMENT, &out)
                .unwrap()
                .unwrap();
            assert!(std::fs::read(&out).unwrap() == content, "{what}");
        }
    }
}

/// Every read of one restore fails or lies in turn: the restore either
/// writes exactly the archived file or fails and leaves nothing at the
/// target.
#[test]
fn restoring_from_failing_storage_writes_the_file_or_nothing() {
    use arca_backend::fault::{Fault, FaultBackend, Schedule};
    let (memory, repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    let content = random(5 * MIB + 1, 31);
    arca_core::archive_wal(&repo, &write(dir.path(), SEGMENT, &content)).unwrap();
    for fault in [Fault::Permanent, Fault::Truncate, Fault::Corrupt] {
        for k in 0..6 {
            let schedule = Schedule::nth(k, fault).only(&[FileKind::Wal]);
            let faulty = Arc::new(FaultBackend::new(memory.clone(), schedule));
            let repo = Repository::open(faulty, b"pw").unwrap();
            let out = dir.path().join(format!("out-{fault:?}-{k}"));
            match arca_core::restore_wal(&repo, SEGMENT, &out) {
                Ok(Some(_)) => assert!(std::fs::read(&out).unwrap() == content),
                Ok(None) => panic!("{fault:?} at read {k}: reported absent"),
                Err(_) => assert!(!out.exists(), "{fault:?} at read {k}: a file was left"),
            }
        }
    }
    let temporaries = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".arca-wal")
        })
        .count();
    assert_eq!(temporaries, 0);
}

/// Storage that reports the stored times a test chooses (none for an
/// object it gives none) and counts the WAL headers opened: opening one
/// asks for the object's size first.
struct Stamped {
    inner: MemoryBackend,
    times: std::collections::HashMap<String, std::time::SystemTime>,
    opened: std::sync::atomic::AtomicU64,
}

impl Stamped {
    fn new(
        inner: MemoryBackend,
        times: std::collections::HashMap<String, std::time::SystemTime>,
    ) -> Arc<Stamped> {
        Arc::new(Stamped {
            inner,
            times,
            opened: Default::default(),
        })
    }

    fn opened(&self) -> u64 {
        self.opened.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Backend for Stamped {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> Result<(), arca_backend::Error> {
        self.inner.create()
    }
    fn list(&self, kind: FileKind) -> Result<Vec<arca_backend::Entry>, arca_backend::Error> {
        let mut entries = self.inner.list(kind)?;
        for e in &mut entries {
            e.modified = self.times.get(&e.name).copied();
        }
        Ok(entries)
    }
    fn read(&self, kind: FileKind, name: &str, max: u64) -> Result<Vec<u8>, arca_backend::Error> {
        self.inner.read(kind, name, max)
    }
    fn read_range(
        &self,
        kind: FileKind,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>, arca_backend::Error> {
        self.inner.read_range(kind, name, offset, len)
    }
    fn write(&self, kind: FileKind, name: &str, bytes: &[u8]) -> Result<(), arca_backend::Error> {
        self.inner.write(kind, name, bytes)
    }
    fn remove(&self, kind: FileKind, name: &str) -> Result<(), arca_backend::Error> {
        self.inner.remove(kind, name)
    }
    fn size(&self, kind: FileKind, name: &str) -> Result<u64, arca_backend::Error> {
        if kind == FileKind::Wal {
            self.opened
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        self.inner.size(kind, name)
    }
}

const HOUR: i64 = 3600;

fn segment(i: u64) -> String {
    format!("0000000100000000000000{i:02X}")
}

fn at(seconds: i64) -> Time {
    Time {
        at: arca_core::Timestamp { seconds, nanos: 0 },
        offset_seconds: 0,
    }
}

fn system(seconds: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(seconds as u64)
}

/// An archive of `n` segments, segment `i` archived at `start + i` hours;
/// returns each one's object name.
fn archive_of(memory: &MemoryBackend, repo: &Repository, n: u64, start: i64) -> Vec<String> {
    (0..n)
        .map(|i| {
            let header = WalHeader {
                name: segment(i),
                size: 0,
                hash: arca_core::Id([0; 32]),
                archived: at(start + i as i64 * HOUR),
                frame_size: 1 << 20,
            };
            let content = random(100 + i as usize, i);
            let (name, bytes) =
                arca_core::raw::encode_wal(repo.key(), &header, &content, 0).unwrap();
            memory.write(FileKind::Wal, &name, &bytes).unwrap();
            name
        })
        .collect()
}

fn summary(stamped: &Arc<Stamped>) -> arca_core::WalSummary {
    let repo = Repository::open(stamped.clone(), b"pw").unwrap();
    arca_core::wal_summary(&repo).unwrap()
}

#[test]
fn the_wal_summary_opens_only_the_newest_stored_headers() {
    let (memory, repo) = new_repo();
    let start = Time::now().at.seconds - 10 * 86_400;
    let names = archive_of(&memory, &repo, 20, start);
    // Each stored a second after it was archived, except that the newest
    // file was stored when the sixth newest would have been, and the
    // reverse: the newest archive time wins, not the newest storage time.
    let mut times: std::collections::HashMap<_, _> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), system(start + i as i64 * HOUR + 1)))
        .collect();
    let (newest, sixth) = (times[&names[19]], times[&names[14]]);
    times.insert(names[19].clone(), sixth);
    times.insert(names[14].clone(), newest);
    // Not an object: neither counted nor opened.
    memory.tamper(FileKind::Wal, "abcd", b"stray".to_vec());
    let stamped = Stamped::new(memory.clone(), times.clone());
    let s = summary(&stamped);
    assert_eq!(s.objects, 20);
    let stored: u64 = names
        .iter()
        .map(|n| memory.size(FileKind::Wal, n).unwrap())
        .sum();
    assert_eq!(s.bytes, stored);
    assert_eq!(s.newest.as_ref().unwrap().name, segment(19));
    assert_eq!(s.newest.unwrap().archived, at(start + 19 * HOUR));
    assert_eq!((s.opened, stamped.opened()), (8, 8));
    assert!(s.damaged.is_empty());

    // A copied archive: every object stored after every archive time, so
    // storage order says nothing and every header is opened.
    let copied = times.keys().map(|n| (n.clone(), system(start + 30 * HOUR)));
    let stamped = Stamped::new(memory.clone(), copied.collect());
    let s = summary(&stamped);
    assert_eq!(s.newest.unwrap().name, segment(19));
    assert_eq!((s.opened, stamped.opened()), (20, 20));

    // Storage that reports no times: every header is opened.
    let stamped = Stamped::new(memory.clone(), Default::default());
    let s = summary(&stamped);
    assert_eq!(s.newest.unwrap().name, segment(19));
    assert_eq!((s.opened, stamped.opened()), (20, 20));
}

#[test]
fn the_wal_summary_skips_and_counts_damaged_headers() {
    let (memory, repo) = new_repo();
    let start = Time::now().at.seconds - 10 * 86_400;
    let names = archive_of(&memory, &repo, 12, start);
    let times = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), system(start + i as i64 * HOUR + 1)));
    let times: std::collections::HashMap<_, _> = times.collect();
    // The eight newest damaged in as many ways: truncated, empty, flipped,
    // another object's bytes, a 4 GiB header length.
    let good = memory.read(FileKind::Wal, &names[0], u64::MAX).unwrap();
    let mut flipped = memory.read(FileKind::Wal, &names[11], u64::MAX).unwrap();
    flipped[20] ^= 1;
    let huge = [u32::MAX.to_le_bytes().to_vec(), good[4..].to_vec()].concat();
    let damage: [Vec<u8>; 8] = [
        b"garbage".to_vec(),
        Vec::new(),
        flipped,
        good.clone(),
        huge,
        good[..3].to_vec(),
        good[..good.len() / 2].to_vec(),
        vec![0xff; 64],
    ];
    for (name, bytes) in names[4..].iter().rev().zip(damage) {
        memory.tamper(FileKind::Wal, name, bytes);
    }
    let stamped = Stamped::new(memory.clone(), times);
    let s = summary(&stamped);
    assert_eq!(s.objects, 12);
    assert_eq!(s.damaged.len(), 8, "{:?}", s.damaged);
    for (problem, name) in s.damaged.iter().zip(names[4..].iter().rev()) {
        assert!(problem.contains(name.as_str()), "{problem}");
    }
    // Past the damage, the newest file that opens; nothing older is read.
    assert_eq!(s.newest.unwrap().name, segment(3));
    assert_eq!((s.opened, stamped.opened()), (1, 9));
}

#[test]
fn the_wal_summary_of_real_archiving_names_the_last_file() {
    let (memory, repo) = new_repo();
    let empty = arca_core::wal_summary(&repo).unwrap();
    assert_eq!(empty, arca_core::WalSummary::default());
    let dir = tempfile::tempdir().unwrap();
    let before = Time::now();
    for i in 1..=3 {
        arca_core::archive_wal(&repo, &write(dir.path(), &segment(i), &random(1000, i))).unwrap();
    }
    let s = arca_core::wal_summary(&repo).unwrap();
    assert_eq!((s.objects, s.opened), (3, 3));
    let newest = s.newest.unwrap();
    assert_eq!(newest.name, segment(3));
    assert!(newest.archived >= before && newest.archived <= Time::now());
    let listed: u64 = memory
        .list(FileKind::Wal)
        .unwrap()
        .iter()
        .map(|e| e.size)
        .sum();
    assert_eq!(s.bytes, listed);
}
