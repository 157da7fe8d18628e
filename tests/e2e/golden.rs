//! The golden repository: `tests/fixtures/golden-v1/repo`, a version 1
//! repository committed once and never regenerated. Every build must open
//! it, list it, restore both its snapshots exactly and check it clean, so a
//! change to any wire constant or encoder that breaks existing repositories
//! fails here.
//!
//! It holds two snapshots of the tree [`source`] builds (at
//! `/tmp/arca-golden-src`), data and tree packs, an index file that a newer
//! one supersedes (left as by an interrupted prune) and a pack a prune
//! marked. Password: `golden`; its key uses the cheapest KDF the format
//! allows. The `#[ignore]`d test below made it; it is kept to show how, not
//! to be run again (the README says why).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use arca_backend::LocalBackend;
use arca_core::{
    InitOptions, KdfParams, Owner, PruneOptions, Repository, SnapshotOptions, SnapshotProgress,
    Time,
};
use serde_json::Value;

use crate::util::*;

const GOLDEN_PASSWORD: &str = "golden";
const SOURCE: &str = "/tmp/arca-golden-src";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/golden-v1/repo")
}

/// The files of snapshot `version` (1 or 2): (relative path, bytes, mode).
fn source(version: u32) -> Vec<(&'static str, Vec<u8>, u32)> {
    let mut orders = String::from("id,symbol,side,qty,price\n");
    for i in 0..400 {
        orders.push_str(&format!(
            "{i},ES,{},{},{}.25\n",
            ["buy", "sell"][i % 2],
            i % 7 + 1,
            4200 + i
        ));
    }
    let mut files = vec![
        ("orders.csv", orders.clone().into_bytes(), 0o640),
        (
            "positions.json",
            b"{\"ES\": 3, \"NQ\": -1}\n".to_vec(),
            0o600,
        ),
        (
            "strategy/params.toml",
            b"risk = 0.02\nlookback = 20\n".to_vec(),
            0o644,
        ),
        ("strategy/model.bin", random_bytes(64 << 10, 11), 0o644),
    ];
    if version == 2 {
        orders.push_str("400,NQ,buy,2,15000.50\n");
        files[0].1 = orders.into_bytes();
        files[1].1 = b"{\"ES\": 2, \"NQ\": 1}\n".to_vec();
        files.push(("fills.csv", b"order,qty\n400,2\n".to_vec(), 0o640));
    }
    files
}

/// Writes snapshot `version`'s tree at `root`, with fixed times.
fn write_source(root: &Path, version: u32) {
    let _ = fs::remove_dir_all(root);
    for (name, bytes, mode) in source(version) {
        let path = root.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_file(&path, &bytes, mode);
        let t = filetime::FileTime::from_unix_time(1_700_000_000 + i64::from(version), 5);
        filetime::set_file_times(&path, t, t).unwrap();
    }
}

/// Made the golden repository once (kept to show how). Never run again: a
/// new repository would have other keys and names, and the point of the
/// fixture is that it was written by an older build.
#[test]
#[ignore]
fn generate_golden_v1() {
    let repo_dir = fixture();
    assert!(
        !repo_dir.exists(),
        "the golden repository exists: never regenerate it"
    );
    let backend = Arc::new(LocalBackend::new(&repo_dir));
    let options = InitOptions {
        kdf: KdfParams {
            memory_kib: 8 * 1024,
            iterations: 1,
            parallelism: 1,
        },
        pack_size: 1 << 20,
        ..InitOptions::default()
    };
    Repository::init(
        backend.clone(),
        GOLDEN_PASSWORD.as_bytes(),
        &options,
        &Owner::default(),
    )
    .unwrap();
    let mut repo = Repository::open(backend, GOLDEN_PASSWORD.as_bytes()).unwrap();
    repo.load_index().unwrap();
    let at = |version: i64| {
        let mut t = Time::now();
        t.at.seconds = 1_700_000_000 + version * 86_400;
        t.at.nanos = 0;
        t.offset_seconds = 0;
        t
    };
    let root = Path::new(SOURCE);
    for version in 1..=2 {
        write_source(root, version);
        let options = SnapshotOptions {
            paths: vec![root.to_path_buf()],
            hostname: "golden".into(),
            username: "trader".into(),
            tags: vec!["nightly".into()],
            time: Some(at(i64::from(version))),
            ..SnapshotOptions::default()
        };
        arca_core::snapshot(&mut repo, &options, &SnapshotProgress::default()).unwrap();
    }
    // A third snapshot, forgotten: a prune marks the pack only it used.
    let scratch = Path::new("/tmp/arca-golden-scratch");
    let _ = fs::remove_dir_all(scratch);
    fs::create_dir_all(scratch).unwrap();
    write_file(&scratch.join("tmp.bin"), &random_bytes(20 << 10, 12), 0o600);
    let options = SnapshotOptions {
        paths: vec![scratch.to_path_buf()],
        hostname: "golden".into(),
        time: Some(at(3)),
        ..SnapshotOptions::default()
    };
    let third = arca_core::snapshot(&mut repo, &options, &SnapshotProgress::default()).unwrap();
    repo.remove_snapshot(&third.id.unwrap()).unwrap();
    let index_dir = repo_dir.join("index");
    let before: Vec<(PathBuf, Vec<u8>)> = files_below(&index_dir)
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    let prune = PruneOptions::default();
    let plan = arca_core::plan_prune(&mut repo, &prune, None).unwrap();
    let lock = arca_core::Lock::acquire(
        &repo,
        arca_core::LockMode::Exclusive,
        "prune",
        &arca_core::Owner::default(),
        std::time::Duration::ZERO,
    )
    .unwrap();
    arca_core::execute_prune(&repo, &plan, &prune, &lock, None).unwrap();
    drop(lock);
    // As if the prune had been stopped before removing an old index file.
    let (path, bytes) = &before[0];
    fs::write(path, bytes).unwrap();
    let _ = fs::remove_dir_all(root);
    let _ = fs::remove_dir_all(scratch);
}

/// A copy of the golden repository to work on (a check writes a lock).
fn golden_copy(env: &Env) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(fixture())
        .arg(&env.repo)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn the_golden_repository_opens_lists_restores_and_checks_clean() {
    let mut env = Env::new();
    env.vars
        .push(("ARCA_PASSWORD".into(), GOLDEN_PASSWORD.into()));
    golden_copy(&env);
    let listed = env.json(&["snapshots"]);
    let snapshots = listed.as_array().unwrap();
    assert_eq!(snapshots.len(), 2, "{listed}");
    for (i, snap) in snapshots.iter().enumerate() {
        let version = i as u32 + 1;
        assert_eq!(snap["hostname"], "golden");
        assert_eq!(snap["paths"][0], SOURCE);
        assert_eq!(snap["tags"][0], "nightly");
        let id = snap["id"].as_str().unwrap();
        let target = env.path(&format!("restore-{version}"));
        env.ok(&["restore", id, "--target", target.to_str().unwrap()]);
        let root = target.join(SOURCE.trim_start_matches('/'));
        let expected = source(version);
        assert_eq!(files_below(&root).len(), expected.len());
        for (name, bytes, mode) in expected {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let path = root.join(name);
            assert!(
                fs::read(&path).unwrap() == bytes,
                "{name} of snapshot {version}"
            );
            let meta = fs::metadata(&path).unwrap();
            assert_eq!(meta.permissions().mode() & 0o7777, mode, "{name}");
            assert_eq!(meta.mtime(), 1_700_000_000 + i64::from(version), "{name}");
        }
    }
    let out = env.run(&["--json", "check", "--read-data"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["snapshots"], 2);
    assert!(report["index_files"].as_u64().unwrap() >= 2, "{report}");
}
