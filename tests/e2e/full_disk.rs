//! Full disks: a repository on a small filesystem that fills up during a
//! snapshot, and a restore onto one. Each uses a tmpfs the test mounts
//! (as root); where mounting is not permitted the test says so and passes.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::*;

/// A tmpfs mounted for the test's lifetime.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status();
        if status.is_ok_and(|s| s.success()) {
            Some(Tmpfs(at.to_path_buf()))
        } else {
            eprintln!(
                "cannot mount a tmpfs at {} (not root?): skipped",
                at.display()
            );
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_snapshot_that_fills_the_repository_disk_fails_cleanly_and_harms_nothing() {
    let env = Env::new();
    let Some(_disk) = Tmpfs::mount(&env.repo, "24m") else {
        return;
    };
    env.ok(&["init"]);
    let small = env.path("small");
    std::fs::create_dir(&small).unwrap();
    write_file(
        &small.join("positions.json"),
        &random_bytes(300 << 10, 1),
        0o644,
    );
    let first = env.snapshot(&[&small]);
    let first_id = first["id"].as_str().unwrap().to_string();

    let big = env.path("big");
    std::fs::create_dir(&big).unwrap();
    for i in 0..6 {
        write_file(
            &big.join(format!("orders-{i}.db")),
            &random_bytes(8 << 20, 10 + i),
            0o644,
        );
    }
    let out = env.run(&["snapshot", big.to_str().unwrap()]);
    let stderr = expect_failure(&out, 1);
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(
        temporaries(&env.repo).is_empty(),
        "{:?}",
        temporaries(&env.repo)
    );

    // The repository still checks, and the first snapshot restores.
    env.ok(&["check", "--read-data"]);
    let target = env.path("target");
    env.ok(&["restore", &first_id, "--target", target.to_str().unwrap()]);
    assert_same_tree(&small, &restored(&target, &small));
}

#[test]
fn restoring_onto_a_full_disk_names_the_path_it_could_not_write() {
    let env = Env::with_repo();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    write_file(&src.join("trades.db"), &random_bytes(12 << 20, 5), 0o644);
    let snap = env.snapshot(&[&src]);
    let target = env.path("target");
    let Some(_disk) = Tmpfs::mount(&target, "4m") else {
        return;
    };
    let out = env.run(&[
        "restore",
        snap["id"].as_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ]);
    let stderr = expect_failure(&out, 1);
    assert!(
        stderr.contains("No space left on device") && stderr.contains(target.to_str().unwrap()),
        "{stderr}"
    );
}

/// Fills the file system of `dir` with one file (returned) until it
/// refuses another byte.
fn fill(dir: &Path) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let block = vec![0x5a; 64 << 10];
    while file.write_all(&block).is_ok() {}
    let small = [0x5a; 512];
    while file.write_all(&small).is_ok() {}
    let _ = file.sync_all();
    path
}

#[test]
fn a_rewrite_on_a_full_repository_disk_fails_and_leaves_the_old_snapshot() {
    let env = Env::new();
    let Some(_disk) = Tmpfs::mount(&env.repo, "16m") else {
        return;
    };
    env.ok(&["init"]);
    let src = env.path("src");
    std::fs::create_dir_all(src.join("keep")).unwrap();
    write_file(&src.join("keep/data"), &random_bytes(200 << 10, 1), 0o644);
    write_file(&src.join("secret.key"), &random_bytes(50 << 10, 2), 0o600);
    let old = env.snapshot(&[&src])["id"].as_str().unwrap().to_string();

    let filler = fill(&env.repo);
    let out = env.run(&["rewrite", &old, "--exclude", "*.key", "--forget"]);
    let stderr = expect_failure(&out, 1);
    assert!(stderr.contains("No space left on device"), "{stderr}");
    let ids: Vec<String> = env
        .json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, std::slice::from_ref(&old), "the old snapshot stays");
    assert!(temporaries(&env.repo).is_empty());

    std::fs::remove_file(filler).unwrap();
    env.ok(&["check", "--read-data"]);
    let done = env.json(&["rewrite", &old, "--exclude", "*.key", "--forget"]);
    assert_eq!(done["rewritten"][0]["forgotten"], true, "{done}");
    env.ok(&["check", "--read-data"]);
}
