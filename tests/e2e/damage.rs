//! Damaged repository bytes: every command fails with one sentence naming
//! the object; nothing panics and no wrong data is restored.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::*;

fn repo_with_snapshot() -> (Env, PathBuf) {
    let env = Env::with_repo();
    let source = env.path("source");
    fs::create_dir_all(source.join("d")).unwrap();
    write_file(&source.join("d/data.bin"), &random_bytes(3 << 20, 5), 0o644);
    write_file(&source.join("note.txt"), b"hello", 0o644);
    env.snapshot(&[&source]);
    (env, source)
}

fn objects(repo: &Path, dir: &str) -> Vec<PathBuf> {
    let path = repo.join(dir);
    if path.is_file() {
        vec![path]
    } else {
        files_below(&path)
    }
}

fn flip(path: &Path, at: usize) -> Vec<u8> {
    let original = fs::read(path).unwrap();
    let mut damaged = original.clone();
    let i = at % damaged.len();
    damaged[i] ^= 0x01;
    fs::write(path, &damaged).unwrap();
    original
}

/// Flips bytes at several places of each object kind and runs a restore
/// that reads it: the config and keys stop every command (one line naming
/// the object); a damaged index or snapshot file is skipped with a warning
/// naming it; damaged packs cost only what they hold, named too. Nothing
/// panics, and what is restored is exactly right.
#[test]
fn flipped_bytes_in_any_object_are_named_and_stay_local() {
    let (env, source) = repo_with_snapshot();
    let cases = [
        ("config", "config"),
        ("keys", "key"),
        ("index", "index"),
        ("snapshots", "snapshot"),
        ("data", "data pack"),
        ("tree", "tree pack"),
    ];
    for (dir, label) in cases {
        for file in objects(&env.repo, dir) {
            let name = file.file_name().unwrap().to_str().unwrap().to_string();
            let len = fs::metadata(&file).unwrap().len() as usize;
            for at in [0, 1, 13, len / 2, len.saturating_sub(20), len - 1] {
                let original = flip(&file, at);
                let target = env.path("restore-attempt");
                let _ = fs::remove_dir_all(&target);
                let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                assert!(!stderr.contains("panicked"), "{stderr}");
                match dir {
                    "config" | "keys" => {
                        let stderr = expect_failure(&out, 1);
                        assert!(
                            stderr.contains(label) && (dir == "config" || stderr.contains(&name)),
                            "{label} flip at {at}: {stderr}"
                        );
                    }
                    // Skipped with a warning naming it; its packs are read
                    // from their headers, so the restore is whole.
                    "index" => {
                        assert_eq!(out.status.code(), Some(0), "{stderr}");
                        assert!(stderr.contains(&name), "index flip at {at}: {stderr}");
                        assert_same_tree(&source, &restored(&target, &source));
                    }
                    // The only snapshot is skipped: there is no latest.
                    "snapshots" => {
                        assert_eq!(out.status.code(), Some(1), "{stderr}");
                        assert!(
                            stderr.contains(&name) && stderr.contains("repair snapshots"),
                            "snapshot flip at {at}: {stderr}"
                        );
                    }
                    // Bytes restore never reads (a pack header) may pass;
                    // the data must then be exactly right. Otherwise the
                    // damage is named and the rest restored.
                    _ if out.status.success() => {
                        assert_same_tree(&source, &restored(&target, &source));
                    }
                    _ => {
                        assert_eq!(out.status.code(), Some(1), "{stderr}");
                        assert!(
                            stderr.contains(label) && stderr.contains(&name),
                            "{label} flip at {at}: {stderr}"
                        );
                        assert!(stderr.contains("damaged:"), "{stderr}");
                    }
                }
                fs::write(&file, original).unwrap();
            }
        }
    }
    // Intact again: restore works.
    let target = env.path("final");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&source, &restored(&target, &source));
}

#[test]
fn a_repository_of_an_unknown_version_is_refused_clearly() {
    let (env, _) = repo_with_snapshot();
    let config = env.repo.join("config");
    let mut bytes = fs::read(&config).unwrap();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    fs::write(&config, bytes).unwrap();
    let out = env.run(&["snapshots"]);
    let stderr = expect_failure(&out, 1);
    assert!(
        stderr.contains("format version 7") && stderr.contains("version 1"),
        "{stderr}"
    );
}

/// Rewrites the key file's `memory_kib` to `value` and renames the file to
/// the hash of its new bytes, so that only the parameter checks can refuse
/// it; returns the new name.
fn set_kdf_memory(repo: &Path, value: u32) -> String {
    let key = objects(repo, "keys").pop().unwrap();
    let mut bytes = fs::read(&key).unwrap();
    // memory_kib follows its key name as a msgpack uint16 (0xcd + 2 bytes)
    // or uint32 (0xce + 4 bytes); write it back as a uint32.
    let field = b"memory_kib";
    let at = bytes.windows(field.len()).position(|w| w == field).unwrap() + field.len();
    let width = match bytes[at] {
        0xcd => 2,
        0xce => 4,
        other => panic!("memory_kib encoded with marker {other:#x}"),
    };
    let mut encoded = vec![0xce];
    encoded.extend_from_slice(&value.to_be_bytes());
    bytes.splice(at..at + 1 + width, encoded);
    let name = blake3_hex(&bytes);
    fs::remove_file(&key).unwrap();
    fs::write(key.with_file_name(&name), &bytes).unwrap();
    name
}

#[test]
fn a_key_file_asking_for_absurd_kdf_memory_is_refused_before_use() {
    let (env, _) = repo_with_snapshot();
    let name = set_kdf_memory(&env.repo, u32::MAX);
    let out = env.run(&["snapshots"]);
    let stderr = expect_failure(&out, 1);
    assert!(
        stderr.contains("exceed the caps") && stderr.contains(&name),
        "{stderr}"
    );
}

#[test]
fn a_key_file_with_kdf_memory_lowered_below_the_floor_is_refused() {
    let (env, _) = repo_with_snapshot();
    for memory in [8, 8 * 1024 - 1] {
        let name = set_kdf_memory(&env.repo, memory);
        let out = env.run(&["snapshots"]);
        let stderr = expect_failure(&out, 1);
        assert!(
            stderr.contains("below the minimum") && stderr.contains(&name),
            "{memory} KiB: {stderr}"
        );
    }
}

fn blake3_hex(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}
