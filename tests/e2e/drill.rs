//! `arca drill`: restore into a temporary directory, verify, report, and
//! leave nothing behind, whether the repository is sound or damaged.

use std::fs;
use std::path::Path;

use crate::util::*;

const DATA_LEN: usize = 3 << 20;

/// A repository with one snapshot of a tree holding a read-only directory
/// (which the drill must still be able to remove); returns the snapshot id.
fn repo_with_snapshot() -> (Env, String) {
    let env = Env::with_repo();
    let source = env.path("source");
    fs::create_dir_all(source.join("locked")).unwrap();
    write_file(&source.join("data.bin"), &random_bytes(DATA_LEN, 9), 0o644);
    write_file(&source.join("locked/note.txt"), b"hello", 0o444);
    fs::set_permissions(
        source.join("locked"),
        std::os::unix::fs::PermissionsExt::from_mode(0o555),
    )
    .unwrap();
    let snap = env.snapshot(&[&source]);
    (env, snap["id"].as_str().unwrap().to_string())
}

fn scratch(env: &Env) -> String {
    let dir = env.path("scratch");
    fs::create_dir_all(&dir).unwrap();
    dir.display().to_string()
}

fn assert_empty(dir: &str) {
    let left: Vec<_> = fs::read_dir(Path::new(dir)).unwrap().collect();
    assert!(left.is_empty(), "left behind in {dir}: {left:?}");
}

#[test]
fn a_sound_repository_passes_and_the_numbers_add_up() {
    let (env, id) = repo_with_snapshot();
    let dir = scratch(&env);
    let doc = env.json(&["drill", "--target-dir", &dir]);
    assert_eq!(doc["ok"], true, "{doc}");
    assert_eq!(doc["snapshot"], id.as_str());
    assert_eq!(doc["short_id"], &id[..8]);
    assert_eq!(doc["files"], 2);
    assert_eq!(doc["bytes"], (DATA_LEN + 5) as u64);
    assert!(doc["errors"].as_array().unwrap().is_empty());
    let seconds = doc["seconds"].as_f64().unwrap();
    assert!(seconds > 0.0 && seconds < 300.0, "{seconds}");
    let rate = doc["bytes_per_second"].as_u64().unwrap();
    assert!(rate > 0, "{doc}");
    assert!(doc["age_seconds"].as_u64().unwrap() < 600, "{doc}");
    assert_empty(&dir);

    // The human report, with the snapshot given by id prefix.
    let out = env.ok(&["drill", &id[..8], "--target-dir", &dir]);
    assert!(
        out.contains(&id[..8]) && out.contains("2 files") && out.contains("ok"),
        "{out}"
    );
    assert_empty(&dir);
}

#[test]
fn a_damaged_data_pack_fails_naming_the_snapshot_and_the_pack() {
    let (env, id) = repo_with_snapshot();
    let dir = scratch(&env);
    let packs = files_below(&env.repo.join("data"));
    assert_eq!(packs.len(), 1, "{packs:?}");
    let pack = &packs[0];
    let mut bytes = fs::read(pack).unwrap();
    // Inside the big file's blobs, far from the header at the end.
    bytes[DATA_LEN / 2] ^= 0x01;
    fs::write(pack, &bytes).unwrap();
    let name = pack.file_name().unwrap().to_str().unwrap();

    let stderr = expect_failure(&env.run(&["drill", "--target-dir", &dir]), 1);
    assert!(
        stderr.contains(&id[..8]) && stderr.contains("data pack") && stderr.contains(name),
        "{stderr}"
    );
    assert!(!stderr.contains("arca-drill-"), "{stderr}");
    assert_empty(&dir);

    let out = env.run(&["--json", "drill", "--target-dir", &dir]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    let errors = doc["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{doc}");
    assert!(errors[0].as_str().unwrap().contains(name), "{doc}");
    assert_empty(&dir);
}
