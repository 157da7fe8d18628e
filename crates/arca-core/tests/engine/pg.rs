//! PostgreSQL base backups (format.md §7.11): a pg_basebackup tar stream
//! becomes a snapshot with its record, or nothing when the stream is not a
//! whole backup; unpacking refuses anything but plain files and
//! directories and never writes outside the target; WAL retention keeps
//! exactly what the remaining base backups need.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arca_backend::{Backend, FileKind, MemoryBackend};
use arca_core::pg::{self, BaseBackupSnapshot};
use arca_core::{PruneOptions, Repository, SnapshotOptions};

use crate::common;

/// A pg_basebackup-like tar stream whose backup starts in `start_wal`,
/// with `extra` entries (name, type, content) after the data files.
fn stream(start_wal: &str, extra: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let timeline = u32::from_str_radix(&start_wal[..8], 16).unwrap();
    let seg = u64::from_str_radix(&start_wal[16..24], 16).unwrap();
    let lsn = format!("0/{:X}", (seg << 24) + 0x28);
    let label = format!(
        "START WAL LOCATION: {lsn} (file {start_wal})\nCHECKPOINT LOCATION: {lsn}\nBACKUP METHOD: streamed\nSTART TIMELINE: {timeline}\n"
    );
    let manifest = format!(
        "{{ \"PostgreSQL-Backup-Manifest-Version\": 1,\n\"Files\": [],\n\"WAL-Ranges\": [\n{{ \"Timeline\": {timeline}, \"Start-LSN\": \"{lsn}\", \"End-LSN\": \"0/{:X}\" }}\n],\n\"Manifest-Checksum\": \"00\"}}\n",
        (seg << 24) + 0x100
    );
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, data: &[u8], mode: u32| {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_size(if kind == tar::EntryType::Regular {
            data.len() as u64
        } else {
            0
        });
        header.set_mode(mode);
        header.set_mtime(1_700_000_000);
        let me = (nix_ids().0, nix_ids().1);
        header.set_uid(me.0);
        header.set_gid(me.1);
        if kind == tar::EntryType::Symlink || kind == tar::EntryType::Link {
            header
                .set_link_name(std::str::from_utf8(data).unwrap())
                .unwrap();
            header.set_path(name).unwrap();
            header.set_cksum();
            builder.append(&header, &[][..]).unwrap();
        } else {
            // Set the raw name field, so that hostile names go in as given.
            let field = &mut header.as_old_mut().name;
            field.fill(0);
            field[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            let body: &[u8] = if kind == tar::EntryType::Regular {
                data
            } else {
                &[]
            };
            builder.append(&header, body).unwrap();
        }
    };
    add(
        "backup_label",
        tar::EntryType::Regular,
        label.as_bytes(),
        0o600,
    );
    add("PG_VERSION", tar::EntryType::Regular, b"16\n", 0o600);
    add("base", tar::EntryType::Directory, b"", 0o700);
    add("base/1", tar::EntryType::Directory, b"", 0o700);
    add(
        "base/1/1259",
        tar::EntryType::Regular,
        &common::random(300_000, 1),
        0o600,
    );
    add(
        "global/pg_control",
        tar::EntryType::Regular,
        &[7u8; 8192],
        0o600,
    );
    add("pg_wal", tar::EntryType::Directory, b"", 0o700);
    for (name, kind, data) in extra {
        add(name, *kind, data, 0o644);
    }
    add(
        "backup_manifest",
        tar::EntryType::Regular,
        manifest.as_bytes(),
        0o600,
    );
    builder.into_inner().unwrap()
}

/// This process's uid and gid: what a restore not run as root can give.
fn nix_ids() -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::NamedTempFile::new().unwrap();
    let m = probe.as_file().metadata().unwrap();
    (u64::from(m.uid()), u64::from(m.gid()))
}

fn new_repo() -> (MemoryBackend, Repository) {
    let memory = common::init_memory(b"pw", &common::test_options());
    let repo = common::open(Arc::new(memory.clone()), b"pw");
    (memory, repo)
}

fn options() -> SnapshotOptions {
    SnapshotOptions {
        hostname: "db1".into(),
        ..Default::default()
    }
}

fn backup(repo: &mut Repository, bytes: &[u8]) -> arca_core::Result<BaseBackupSnapshot> {
    let (outcome, backup) = pg::backup(
        repo,
        &options(),
        &mut &bytes[..],
        &mut || Ok(()),
        &Default::default(),
    )?;
    Ok(BaseBackupSnapshot {
        id: outcome.id.unwrap(),
        snapshot: outcome.snapshot,
        backup,
    })
}

#[test]
fn a_base_backup_is_stored_with_its_record_and_unpacks_as_it_was() {
    let (memory, mut repo) = new_repo();
    let tar = stream("000000010000000000000005", &[]);
    let base = backup(&mut repo, &tar).unwrap();
    assert!(
        base.snapshot
            .tags
            .contains(&pg::BASE_BACKUP_TAG.to_string())
    );
    assert_eq!(base.snapshot.path_strings(), ["/base.json", "/base.tar"]);
    let b = &base.backup;
    assert_eq!((b.timeline, b.pg_version.as_str()), (1, "16"));
    assert_eq!(b.start_wal, "000000010000000000000005");
    assert_eq!(
        (b.start_lsn.to_string(), b.stop_lsn.to_string()),
        ("0/5000028".into(), "0/5000100".into())
    );
    // Read back from the repository, the record is the same.
    let snapshots = repo.snapshots().unwrap();
    let (found, bad) = pg::base_backups(&repo, &snapshots);
    assert!(bad.is_empty());
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].backup, base.backup);

    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("data");
    let report = pg::unpack_base_backup(&repo, &found[0], &target).unwrap();
    assert_eq!((report.files, report.dirs), (5, 4));
    assert_eq!(std::fs::read(target.join("PG_VERSION")).unwrap(), b"16\n");
    assert_eq!(
        std::fs::read(target.join("base/1/1259")).unwrap(),
        common::random(300_000, 1)
    );
    let mode = |p: &str| {
        std::fs::metadata(target.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(
        (mode("base/1/1259"), mode("base"), mode("")),
        (0o600, 0o700, 0o700)
    );
    let mtime = std::fs::metadata(target.join("base/1")).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::mtime(&mtime), 1_700_000_000);

    pg::write_recovery(
        &target,
        &pg::Recovery {
            restore_command: "arca -r '/r e' pg restore-wal %f \"%p\"".into(),
            target_time: Some(
                "2026-03-03T14:30:00.25+01:00"
                    .parse::<jiff::Timestamp>()
                    .map(|t| arca_core::Time::from_zoned(&t.to_zoned(jiff::tz::TimeZone::UTC)))
                    .unwrap(),
            ),
        },
    )
    .unwrap();
    let conf = std::fs::read_to_string(target.join("postgresql.auto.conf")).unwrap();
    assert!(
        conf.contains("restore_command = 'arca -r ''/r e'' pg restore-wal %f \"%p\"'"),
        "{conf}"
    );
    assert!(
        conf.contains("recovery_target_time = '2026-03-03 13:30:00.250000+00'"),
        "{conf}"
    );
    assert!(
        conf.contains("recovery_target_action = 'promote'"),
        "{conf}"
    );
    assert!(target.join("recovery.signal").is_file());

    // Without the WAL from its start to its stop, the backup cannot be
    // restored: check says so, naming the snapshot and the first file.
    let report = common::full_check(&memory);
    assert!(!report.ok());
    let problem = &report.errors[0];
    assert!(problem.object.contains(&base.id.to_hex()), "{problem:?}");
    assert!(
        problem.message.contains("000000010000000000000005"),
        "{problem:?}"
    );
    let wal = tempfile::tempdir().unwrap();
    archive(&repo, wal.path(), &["000000010000000000000005"]);
    assert!(common::full_check(&memory).ok());
}

#[test]
fn a_base_backup_needs_every_segment_from_its_start_to_its_stop() {
    let record = |start: &str, stop: u64| pg::BaseBackup {
        format: 1,
        pg_version: "16".into(),
        timeline: 1,
        start_lsn: start.parse().unwrap(),
        start_wal: "000000010000000000000002".into(),
        stop_lsn: pg::Lsn(stop),
        stop_timeline: 1,
        start_time: "2026-01-01T00:00:00Z".into(),
        stop_time: "2026-01-01T00:00:00Z".into(),
    };
    let seg = 16 << 20;
    // Within one segment; ending exactly at the next one's start.
    assert_eq!(
        pg::segments_between(&record("0/2000028", 0x2000100), Some(seg)),
        ["000000010000000000000002"]
    );
    assert_eq!(
        pg::segments_between(&record("0/2000028", 0x3000000), Some(seg)),
        ["000000010000000000000002"]
    );
    assert_eq!(
        pg::segments_between(&record("0/2000028", 0x4000010), Some(seg)),
        [
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000004"
        ]
    );
    // Across a log boundary (256 segments of 16 MiB a log).
    let mut r = record("0/FF000028", 0x1_0100_0000 + 8);
    r.start_wal = "0000000100000000000000FF".into();
    assert_eq!(
        pg::segments_between(&r, Some(seg)),
        [
            "0000000100000000000000FF",
            "000000010000000100000000",
            "000000010000000100000001"
        ]
    );
    // An unknown or inconsistent segment size: only the start is known.
    assert_eq!(
        pg::segments_between(&record("0/2000028", 0x4000010), None).len(),
        1
    );
    assert_eq!(
        pg::segments_between(&record("0/2000028", 0x4000010), Some(64 << 20)).len(),
        1
    );
}

#[test]
fn a_stream_that_is_not_a_whole_backup_saves_nothing() {
    let (memory, mut repo) = new_repo();
    let good = stream("000000010000000000000005", &[]);
    let no_manifest = {
        // Cut the stream before the manifest's header: still a tar stream
        // once two zero blocks end it.
        let cut = good
            .windows(15)
            .position(|w| w == b"backup_manifest")
            .unwrap();
        [&good[..cut], &[0u8; 1024][..]].concat()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "not a tar stream",
            b"garbage that is no tar header".repeat(40),
        ),
        ("cut inside an entry", good[..good.len() / 2].to_vec()),
        ("no backup_manifest", no_manifest),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in cases {
        let err = backup(&mut repo, &bytes).unwrap_err().to_string();
        assert!(err.contains("not a usable base backup"), "{what}: {err}");
    }
    let err = pg::backup(
        &mut repo,
        &options(),
        &mut &good[..],
        &mut || {
            Err(arca_core::Error::InvalidInput(
                "pg_basebackup failed (exit status: 1)".into(),
            ))
        },
        &Default::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("pg_basebackup failed"), "{err}");
    assert!(memory.list(FileKind::Snapshot).unwrap().is_empty());
    assert!(common::full_check(&memory).ok());
}

#[test]
fn unpacking_refuses_hostile_entries_and_writes_nothing_outside_the_target() {
    use tar::EntryType::{Block, Char, Fifo, Link, Regular, Symlink};
    let cases: Vec<(&str, tar::EntryType, &[u8])> = vec![
        ("../outside", Regular, b"x"),
        ("/tmp/absolute", Regular, b"x"),
        ("base/../../outside", Regular, b"x"),
        ("pg_tblspc/16384", Symlink, b"/etc"),
        ("hard", Link, b"PG_VERSION"),
        ("fifo", Fifo, b""),
        ("dev", Char, b""),
        ("blk", Block, b""),
        ("global/pg_control", Regular, b"twice"),
    ];
    for (name, kind, data) in cases {
        let (_memory, mut repo) = new_repo();
        let base = backup(
            &mut repo,
            &stream("000000010000000000000005", &[(name, kind, data)]),
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("a").join("data");
        std::fs::create_dir(dir.path().join("a")).unwrap();
        let err = pg::unpack_base_backup(&repo, &base, &target)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&base.id.short()) && err.contains(name.trim_start_matches('/')),
            "{name}: {err}"
        );
        for outside in [
            dir.path().join("outside"),
            dir.path().join("a/outside"),
            "/tmp/absolute".into(),
        ] {
            assert!(
                !outside.exists(),
                "{name}: {} was written",
                outside.display()
            );
        }
    }
}

#[test]
fn unpacking_needs_an_empty_directory_and_follows_no_link_to_it() {
    let (_memory, mut repo) = new_repo();
    let base = backup(&mut repo, &stream("000000010000000000000005", &[])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("keep"), b"mine").unwrap();
    let err = pg::unpack_base_backup(&repo, &base, &full)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not empty"), "{err}");
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1);
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let err = pg::unpack_base_backup(&repo, &base, &link)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not a directory"), "{err}");
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

fn archive(repo: &Repository, dir: &Path, names: &[&str]) {
    for name in names {
        let path = dir.join(name);
        std::fs::write(&path, name.as_bytes()).unwrap();
        arca_core::archive_wal(repo, &path).unwrap();
    }
}

fn archived(repo: &Repository) -> Vec<String> {
    let mut names: Vec<String> = arca_core::list_wal(repo)
        .unwrap()
        .into_iter()
        .map(|(_, h)| h.unwrap().name)
        .collect();
    names.sort();
    names
}

fn prune(repo: &mut Repository) -> arca_core::PrunePlan {
    let options = PruneOptions {
        max_unused: 0.0,
        keep_marked: Duration::ZERO,
        instant_delete: true,
    };
    let lock = common::exclusive(repo).unwrap();
    let plan = arca_core::plan_prune(repo, &options, None).unwrap();
    let summary = arca_core::execute_prune(repo, &plan, &options, &lock, None).unwrap();
    assert_eq!(summary.wal_files_deleted, plan.wal.remove.len() as u64);
    plan
}

#[test]
fn prune_removes_the_wal_no_remaining_base_backup_needs() {
    let (memory, mut repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    let wal = [
        "000000010000000000000001",
        "000000010000000000000002",
        "000000010000000000000003",
        "000000010000000000000003.00000028.backup",
        "000000010000000000000004",
        "000000010000000000000005",
        "000000010000000000000006.partial",
        "00000002.history",
        "000000020000000000000006",
    ];
    archive(&repo, dir.path(), &wal);
    // No base backup yet: nothing is removed.
    assert!(prune(&mut repo).wal.remove.is_empty());
    let first = backup(&mut repo, &stream("000000010000000000000003", &[])).unwrap();
    let second = backup(&mut repo, &stream("000000010000000000000005", &[])).unwrap();
    // Within the grace period, nothing goes: a base backup that started
    // before the first ended may still be running.
    let graced = PruneOptions {
        max_unused: 0.0,
        keep_marked: Duration::from_secs(3600),
        instant_delete: false,
    };
    let plan = arca_core::plan_prune(&mut repo, &graced, None).unwrap();
    assert!(plan.wal.remove.is_empty());
    let plan = prune(&mut repo);
    let removed: Vec<&str> = plan.wal.remove.iter().map(|r| r.file.as_str()).collect();
    assert_eq!(
        removed,
        ["000000010000000000000001", "000000010000000000000002"]
    );
    // The first backup forgotten: WAL before the second goes, its own and
    // everything after it (later timelines too) stays.
    repo.remove_snapshot(&first.id).unwrap();
    prune(&mut repo);
    assert_eq!(
        archived(&repo),
        [
            "000000010000000000000005",
            "000000010000000000000006.partial",
            "00000002.history",
            "000000020000000000000006",
        ]
    );
    // Recovery from the remaining backup still finds its WAL.
    let out = dir.path().join("restored");
    assert!(
        arca_core::restore_wal(&repo, &second.backup.start_wal, &out)
            .unwrap()
            .is_some()
    );
    assert!(common::full_check(&memory).ok());
}

#[test]
fn prune_removes_no_wal_while_a_base_backup_record_cannot_be_read() {
    let (memory, mut repo) = new_repo();
    let dir = tempfile::tempdir().unwrap();
    archive(
        &repo,
        dir.path(),
        &["000000010000000000000001", "000000010000000000000009"],
    );
    backup(&mut repo, &stream("000000010000000000000005", &[])).unwrap();
    // A second base backup whose record is lost: its data pack damaged.
    let second = backup(&mut repo, &stream("000000010000000000000007", &[])).unwrap();
    let record_blob = {
        let tree = repo.read_tree(&second.snapshot.tree).unwrap();
        tree.nodes
            .iter()
            .find(|n| n.name == b"base.json")
            .unwrap()
            .content[0]
            .id()
    };
    let location = repo
        .index()
        .get(arca_core::BlobKind::Data, &record_blob)
        .unwrap();
    let pack = location.pack;
    let mut bytes = memory
        .read(FileKind::Data, &pack.to_hex(), u64::MAX)
        .unwrap();
    bytes[location.offset as usize + location.length as usize / 2] ^= 1;
    memory.tamper(FileKind::Data, &pack.to_hex(), bytes);
    let plan = prune(&mut repo);
    assert!(plan.wal.remove.is_empty());
    assert!(
        plan.warnings
            .iter()
            .any(|w| w.contains("no WAL was removed")),
        "{:?}",
        plan.warnings
    );
    assert_eq!(archived(&repo).len(), 2);
}

#[test]
fn the_newest_backup_that_ended_by_the_time_is_chosen() {
    let (_memory, mut repo) = new_repo();
    let a = backup(&mut repo, &stream("000000010000000000000003", &[])).unwrap();
    let b = backup(&mut repo, &stream("000000010000000000000005", &[])).unwrap();
    let all = [a.clone(), b.clone()];
    assert_eq!(pg::choose(&all, None).unwrap().id, b.id);
    let between = b.backup.stopped().unwrap();
    assert_eq!(pg::choose(&all, Some(between)).unwrap().id, b.id);
    let before_b = a.backup.stopped().unwrap();
    assert_eq!(pg::choose(&all, Some(before_b)).unwrap().id, a.id);
    let earlier = arca_core::Time::from_zoned(
        &jiff::Timestamp::from_second(1_000_000_000)
            .unwrap()
            .to_zoned(jiff::tz::TimeZone::UTC),
    );
    assert!(pg::choose(&all, Some(earlier)).is_none());
}

#[test]
fn a_damaged_base_backup_fails_to_unpack_naming_it() {
    let (memory, mut repo) = new_repo();
    let big = common::random(3 << 20, 7);
    let tar = stream(
        "000000010000000000000005",
        &[("base/1/big", tar::EntryType::Regular, &big)],
    );
    let base = backup(&mut repo, &tar).unwrap();
    let root = repo.read_tree(&base.snapshot.tree).unwrap();
    let node = root.nodes.iter().find(|n| n.name == b"base.tar").unwrap();
    // Damage the last blob of the stream: the entries before it are
    // written, then the unpacking stops.
    let blob = node.content.last().unwrap().id();
    let location = repo.index().get(arca_core::BlobKind::Data, &blob).unwrap();
    let mut bytes = memory
        .read(FileKind::Data, &location.pack.to_hex(), u64::MAX)
        .unwrap();
    bytes[location.offset as usize + location.length as usize / 2] ^= 1;
    memory.tamper(FileKind::Data, &location.pack.to_hex(), bytes);
    let dir = tempfile::tempdir().unwrap();
    let err = pg::unpack_base_backup(&repo, &base, &dir.path().join("data"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&base.id.short()), "{err}");
    assert!(!common::full_check(&memory).ok());
}
