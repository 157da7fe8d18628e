//! Every single flipped byte of every stored object is caught: reading the
//! object fails with an error that names it, never a panic, never wrong data.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::sync::Arc;

use arca_backend::{Backend, FileKind, MemoryBackend};
use arca_core::{
    BlobKind, Id, InitOptions, KdfParams, Owner, PackId, Repository, SnapshotOptions,
    SnapshotProgress,
};

use crate::common;

const PASSWORD: &[u8] = b"pw";

/// Takes a snapshot of `source` into the repository in `backend`.
fn take(backend: &MemoryBackend, source: &std::path::Path) {
    let mut repo = Repository::open(Arc::new(backend.clone()), PASSWORD).unwrap();
    repo.load_index().unwrap();
    let options = SnapshotOptions {
        paths: vec![source.to_path_buf()],
        ..Default::default()
    };
    arca_core::snapshot(&mut repo, &options, &SnapshotProgress::default()).unwrap();
}

fn repository_with_snapshot() -> (MemoryBackend, tempfile::TempDir) {
    let backend = MemoryBackend::new();
    let options = InitOptions {
        kdf: KdfParams {
            memory_kib: 8 * 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..InitOptions::default()
    };
    Repository::init(
        Arc::new(backend.clone()),
        PASSWORD,
        &options,
        &Owner::default(),
    )
    .unwrap();
    let source = tempfile::tempdir().unwrap();
    std::fs::write(source.path().join("a.txt"), b"alpha alpha alpha").unwrap();
    std::fs::write(source.path().join("b.bin"), [7u8; 3000]).unwrap();
    take(&backend, source.path());
    (backend, source)
}

/// Opens the repository and reads everything: index, snapshots, every tree
/// and every pack (name, header, every blob).
fn read_everything(backend: &MemoryBackend) -> arca_core::Result<()> {
    let mut repo = Repository::open(Arc::new(backend.clone()), PASSWORD)?;
    repo.load_index()?;
    let snapshots = repo.snapshots()?;
    // Damaged index and snapshot files are skipped, and recorded as such.
    if let Some(damaged) = repo.damaged().first() {
        return Err(arca_core::Error::InvalidInput(damaged.problem.clone()));
    }
    for (_, snapshot) in snapshots {
        arca_core::walk(
            &repo,
            &snapshot.tree,
            std::path::Path::new("/"),
            &mut |_, _| Ok(()),
        )?;
    }
    for (kind, file_kind) in [
        (BlobKind::Data, FileKind::Data),
        (BlobKind::Tree, FileKind::Tree),
    ] {
        for entry in backend.list(file_kind)? {
            let id = PackId(Id::from_hex(&entry.name).unwrap());
            let bytes = repo.read_pack(kind, &id)?;
            let object = format!("{file_kind} {}", entry.name);
            for e in arca_core::raw::read_header(repo.key(), &bytes, &object)? {
                let stored = &bytes[e.offset() as usize..(e.offset() + e.length()) as usize];
                arca_core::raw::open_blob(
                    repo.key(),
                    kind,
                    &e.id(),
                    e.compression(),
                    e.raw_length(),
                    stored,
                    &|| object.clone(),
                )?;
            }
        }
    }
    Ok(())
}

#[test]
fn every_flipped_byte_of_every_object_is_an_error_naming_it() {
    let (backend, _source) = repository_with_snapshot();
    read_everything(&backend).unwrap();
    let kinds = [
        FileKind::Config,
        FileKind::Key,
        FileKind::Index,
        FileKind::Snapshot,
        FileKind::Data,
        FileKind::Tree,
    ];
    let mut checked = 0;
    for kind in kinds {
        let entries = backend.list(kind).unwrap();
        assert!(!entries.is_empty(), "no {kind} objects");
        for entry in entries {
            let original = backend.read(kind, &entry.name, u64::MAX).unwrap();
            for i in 0..original.len() {
                let mut damaged = original.clone();
                damaged[i] ^= 1 << (i % 8);
                backend.tamper(kind, &entry.name, damaged);
                let err = read_everything(&backend).expect_err("damage must be detected");
                let message = err.to_string();
                let named = if kind == FileKind::Config {
                    "config".to_string()
                } else {
                    format!("{kind} {}", entry.name)
                };
                assert!(message.contains(&named), "{kind} byte {i}: {message}");
                checked += 1;
            }
            backend.tamper(kind, &entry.name, original);
        }
    }
    read_everything(&backend).unwrap();
    assert!(checked > 1000, "only {checked} flips checked");
}

/// An interrupted prune's leftovers: index files A and B, and C that
/// supersedes them and holds all they held; then A is damaged in storage.
/// Returns the repository, A's and C's names, and the source directory.
fn superseded_and_damaged() -> (MemoryBackend, String, String, tempfile::TempDir) {
    let (backend, source) = repository_with_snapshot();
    std::fs::write(source.path().join("c.txt"), b"gamma").unwrap();
    take(&backend, source.path());
    let repo = Repository::open(Arc::new(backend.clone()), PASSWORD).unwrap();
    let files = repo.read_index_files().unwrap();
    assert_eq!(files.len(), 2);
    let superseding = arca_core::raw::IndexFile {
        supersedes: files.iter().map(|(id, _)| *id).collect(),
        packs: files.iter().flat_map(|(_, f)| f.packs.clone()).collect(),
    };
    let c = repo.save_index(&superseding).unwrap().to_hex();
    let a = files[0].0.to_hex();
    let mut bytes = backend.read(FileKind::Index, &a, u64::MAX).unwrap();
    bytes[30] ^= 1;
    backend.tamper(FileKind::Index, &a, bytes);
    (backend, a, c, source)
}

fn full_check(backend: &MemoryBackend) -> arca_core::CheckReport {
    let mut repo = Repository::open(Arc::new(backend.clone()), PASSWORD).unwrap();
    let options = arca_core::CheckOptions {
        read_data: Some(arca_core::Subset::All),
    };
    arca_core::check(&mut repo, &options, &arca_core::CheckProgress::default()).unwrap()
}

#[test]
fn a_damaged_index_file_that_another_supersedes_costs_nothing_and_maintenance_removes_it() {
    for maintenance in ["prune", "repair index"] {
        let (backend, a, c, source) = superseded_and_damaged();
        // Readers skip it and report it; both snapshots are whole.
        let mut repo = Repository::open(Arc::new(backend.clone()), PASSWORD).unwrap();
        repo.load_index().unwrap();
        let damaged: Vec<String> = repo.damaged().into_iter().map(|d| d.name).collect();
        assert_eq!(damaged, std::slice::from_ref(&a));
        let snapshots = repo.snapshots().unwrap();
        assert_eq!(snapshots.len(), 2);
        let target = tempfile::tempdir().unwrap();
        crate::common::restore(&repo, &snapshots[1].1, target.path()).unwrap();
        let restored = target
            .path()
            .join(source.path().strip_prefix("/").unwrap())
            .join("c.txt");
        assert_eq!(std::fs::read(restored).unwrap(), b"gamma");
        // Check names it as an error.
        let report = full_check(&backend);
        let errors: Vec<&str> = report.errors.iter().map(|e| e.object.as_str()).collect();
        assert_eq!(errors, [format!("index {a}")], "{:?}", report.errors);

        let lock = common::exclusive(&repo).unwrap();
        match maintenance {
            "prune" => {
                let options = arca_core::PruneOptions::default();
                let plan = arca_core::plan_prune(&mut repo, &options, None).unwrap();
                arca_core::execute_prune(&repo, &plan, &options, &lock, None).unwrap();
            }
            _ => {
                arca_core::repair_index(&mut repo, false, &lock).unwrap();
            }
        }
        drop(lock);
        let left: Vec<String> = backend
            .list(FileKind::Index)
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(left.len(), 1, "{maintenance}: {left:?}");
        assert!(!left.contains(&a) && !left.contains(&c), "{maintenance}");
        let report = full_check(&backend);
        assert!(report.ok(), "{maintenance}: {:?}", report.errors);
        let mut repo = Repository::open(Arc::new(backend.clone()), PASSWORD).unwrap();
        repo.load_index().unwrap();
        assert_eq!(repo.snapshots().unwrap().len(), 2);
        assert!(repo.damaged().is_empty(), "{maintenance}");
    }
}
