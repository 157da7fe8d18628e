//! The bad day: one damaged object never stops backups, listings or the
//! rest of a restore (issue 16). For each kind of damage, on a repository
//! holding three snapshots of a tree of 200+ files, every command is run as
//! an operator would: listings carry on, a new snapshot succeeds and
//! restores exactly, old snapshots restore every file the damage does not
//! touch and name exactly the ones it does, forget/prune/run work, check
//! names the damage, and the repair docs/usage.md gives ends in a clean
//! `check --read-data`.
//!
//! Which files the damage hits is not taken from arca: each restore is
//! compared with a copy of the source as it was snapshotted, and the files
//! that differ must be exactly the ones the restore names.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::util::*;

/// A repository with three snapshots of a changing tree.
struct Scene {
    env: Env,
    /// The live source (as of the last snapshot).
    src: PathBuf,
    /// Per snapshot, oldest first: its id and a copy of the source as it
    /// was snapshotted.
    versions: Vec<(String, PathBuf)>,
}

const DIRS: usize = 12;
const FILES_PER_DIR: usize = 20;

fn scene() -> Scene {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1MiB"]);
    let src = env.path("src");
    for d in 0..DIRS {
        fs::create_dir_all(src.join(format!("d{d:02}"))).unwrap();
        for f in 0..FILES_PER_DIR {
            let n = (d * FILES_PER_DIR + f) as u64;
            let len = 1024 + (n as usize * 397) % (24 * 1024);
            write_file(&src.join(file_name(d, f)), &random_bytes(len, n), 0o644);
        }
    }
    // A few files of several chunks.
    fs::create_dir_all(src.join("big")).unwrap();
    for b in 0..3u64 {
        write_file(
            &src.join(format!("big/table{b}.db")),
            &random_bytes(3 << 20, 1000 + b),
            0o644,
        );
    }
    let mut versions = Vec::new();
    for v in 0..3usize {
        if v > 0 {
            // Each night changes some files and adds one.
            for d in 0..DIRS {
                for f in (v..FILES_PER_DIR).step_by(7) {
                    let seed = 10_000 * v as u64 + (d * FILES_PER_DIR + f) as u64;
                    write_file(&src.join(file_name(d, f)), &random_bytes(2048, seed), 0o644);
                }
            }
            write_file(
                &src.join(format!("d00/new{v}")),
                &random_bytes(5000, 77 + v as u64),
                0o644,
            );
            write_file(
                &src.join("big/table0.db"),
                &random_bytes(3 << 20, 2000 + v as u64),
                0o644,
            );
        }
        let id = env.snapshot(&[&src])["id"].as_str().unwrap().to_string();
        let copy = env.path(&format!("v{v}"));
        let status = Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(&copy)
            .status()
            .unwrap();
        assert!(status.success());
        versions.push((id, copy));
    }
    assert!(files_below(&src).len() >= 200);
    Scene { env, src, versions }
}

fn file_name(d: usize, f: usize) -> String {
    format!("d{d:02}/f{f:02}.dat")
}

/// What one restore did.
struct Restored {
    code: Option<i32>,
    stderr: String,
    /// Paths the restore named as damaged (`file` or `dir`).
    named_files: BTreeSet<String>,
    named_dirs: BTreeSet<String>,
    /// Paths (as stored) whose restored bytes differ from the source's, or
    /// that are missing.
    differing: BTreeSet<String>,
}

/// Restores snapshot `id` into a new directory and compares it with
/// `expected`, the source as it was snapshotted.
fn restore_and_compare(scene: &Scene, id: &str, expected: &Path) -> Restored {
    let target = scene.env.path(&format!("restore-{id}-{}", unique()));
    let out = scene.env.run(&[
        "--json",
        "restore",
        id,
        "--target",
        target.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    let mut named_files = BTreeSet::new();
    let mut named_dirs = BTreeSet::new();
    if let Ok(doc) = serde_json::from_slice::<Value>(&out.stdout) {
        for d in doc["damaged"].as_array().into_iter().flatten() {
            let path = d["path"].as_str().unwrap().to_string();
            match d["kind"].as_str().unwrap() {
                "file" => {
                    assert!(!d["lost"].as_array().unwrap().is_empty(), "{d}");
                    named_files.insert(path);
                }
                _ => {
                    named_dirs.insert(path);
                }
            }
        }
    }
    let stored = scene.src.canonicalize().unwrap();
    let root = restored(&target, &scene.src);
    let mut differing = BTreeSet::new();
    for file in files_below(expected) {
        let rel = file.strip_prefix(expected).unwrap();
        let back = fs::read(root.join(rel)).ok();
        if back.as_deref() != Some(fs::read(&file).unwrap().as_slice()) {
            differing.insert(stored.join(rel).display().to_string());
        }
    }
    let _ = fs::remove_dir_all(&target);
    Restored {
        code: out.status.code(),
        stderr,
        named_files,
        named_dirs,
        differing,
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The restore names exactly the files that came back wrong: every named
/// file differs, every differing file is named (or lies in a directory
/// named as lost), every named directory lost something, and the exit code
/// is 1 exactly when something was named. Returns whether damage was named.
fn assert_exact(r: &Restored, what: &str) -> bool {
    for file in &r.named_files {
        assert!(
            r.differing.contains(file),
            "{what}: {file} named as damaged but restored whole"
        );
    }
    for file in &r.differing {
        let under_dir = r.named_dirs.iter().any(|d| Path::new(file).starts_with(d));
        assert!(
            r.named_files.contains(file) || under_dir,
            "{what}: {file} came back wrong without being named\n{}",
            r.stderr
        );
    }
    for dir in &r.named_dirs {
        assert!(
            r.differing.iter().any(|f| Path::new(f).starts_with(dir)),
            "{what}: directory {dir} named as lost but nothing below it is missing"
        );
    }
    let damaged = !r.named_files.is_empty() || !r.named_dirs.is_empty();
    if damaged {
        assert_eq!(r.code, Some(1), "{what}: {}", r.stderr);
        assert!(
            r.stderr.contains("run arca check --read-data"),
            "{what}: {}",
            r.stderr
        );
    } else {
        assert_eq!(r.code, Some(0), "{what}: {}", r.stderr);
    }
    damaged
}

/// Restores every old snapshot (except `skip`, whose file is damaged) and
/// checks each names exactly what it lost; returns how many lost anything.
fn restore_old_snapshots(scene: &Scene, skip: Option<&str>) -> usize {
    let mut hurt = 0;
    for (id, copy) in &scene.versions {
        if Some(id.as_str()) == skip {
            continue;
        }
        let r = restore_and_compare(scene, id, copy);
        hurt += usize::from(assert_exact(&r, &format!("restore of {}", &id[..8])));
    }
    hurt
}

/// `snapshots` lists the healthy snapshots and exits 0.
fn assert_listing(scene: &Scene, healthy: usize) {
    let out = scene.env.run(&["--json", "snapshots"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), healthy, "{list}");
}

/// A new snapshot of the live source succeeds and restores byte for byte.
fn assert_new_snapshot_restores(scene: &Scene) {
    let id = scene.env.snapshot(&[&scene.src])["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = restore_and_compare(scene, &id, &scene.src);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.differing.is_empty(), "{:?}", r.differing);
}

/// `forget` (a policy keeping everything), `prune` and a profile's `run`
/// all succeed.
fn assert_maintenance_works(scene: &Scene) {
    let env = &scene.env;
    let out = env.run(&["forget", "--keep-last", "100"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "forget: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = env.run(&["prune"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "prune: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let profile = env.path("nightly.toml");
    fs::write(
        &profile,
        format!(
            "repository = {:?}\n\n[snapshot]\nsources = [{:?}]\n\n[forget]\nkeep_last = 100\n",
            env.address(),
            scene.src.display().to_string()
        ),
    )
    .unwrap();
    let out = env
        .cmd(&["--json", "--config", profile.to_str().unwrap(), "run"])
        .env_remove("ARCA_REPOSITORY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Tonight's snapshot and the retention succeed; run's check step
    // reports the damage (and so the exit code) until it is repaired.
    for step in report["steps"].as_array().unwrap() {
        let (name, status) = (step["step"].as_str(), step["status"].as_str().unwrap());
        if name != Some("check") {
            assert_ne!(status, "failed", "run: {step}\n{stderr}");
        }
    }
    let snapshot = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "snapshot")
        .unwrap();
    assert_eq!(snapshot["status"], "ok", "run: {stderr}");
}

/// `check` (with `read_data`: `--read-data`) exits 1 and names `object`.
fn assert_check_names(scene: &Scene, read_data: bool, object: &str) {
    let mut args = vec!["--json", "check"];
    if read_data {
        args.push("--read-data");
    }
    let out = scene.env.run(&args);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = report["errors"].to_string();
    assert!(errors.contains(object), "{object} not named: {errors}");
}

/// Runs the documented repair commands, then requires a clean
/// `check --read-data`.
fn repair(scene: &Scene, steps: &[&[&str]]) {
    for step in steps {
        scene.env.ok(step);
    }
    let out = scene.env.run(&["--json", "check", "--read-data"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "after {steps:?}: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn objects(scene: &Scene, dir: &str) -> Vec<PathBuf> {
    let mut all = files_below(&scene.env.repo.join(dir));
    all.sort();
    all
}

fn name_of(path: &Path) -> String {
    path.file_name().unwrap().to_str().unwrap().to_string()
}

fn flip(path: &Path, at: usize) {
    let mut bytes = fs::read(path).unwrap();
    let at = at % bytes.len();
    bytes[at] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

fn truncate_to_half(path: &Path) {
    let len = fs::metadata(path).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
}

/// The data pack holding the most bytes: damage there hurts several files.
fn largest_data_pack(scene: &Scene) -> PathBuf {
    objects(scene, "data")
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap()
}

#[test]
fn a_flipped_byte_in_a_snapshot_file() {
    let scene = scene();
    let (middle, _) = &scene.versions[1];
    let file = scene.env.repo.join("snapshots").join(middle);
    flip(&file, 40);

    assert_listing(&scene, 2);
    // Named, with the repair, once per command.
    let out = scene.env.run(&["snapshots"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches(middle.as_str()).count(), 1, "{stderr}");
    assert!(stderr.contains("arca repair snapshots"), "{stderr}");
    // The damaged one is refused by name; the others restore whole.
    let out = scene
        .env
        .run(&["restore", &middle[..12], "--target", "/nonexistent"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(middle.as_str()));
    assert_eq!(restore_old_snapshots(&scene, Some(middle)), 0);
    assert_check_names(&scene, false, middle);
    // latest is the newest healthy one, and a new snapshot finds its parent.
    assert_new_snapshot_restores(&scene);
    assert_maintenance_works(&scene);
    repair(&scene, &[&["repair", "snapshots", "--forget"]]);
    assert!(!file.exists());
    assert_new_snapshot_restores(&scene);
}

#[test]
fn forget_removes_a_damaged_snapshot_file_by_its_id_prefix() {
    let scene = scene();
    let (oldest, _) = &scene.versions[0];
    let file = scene.env.repo.join("snapshots").join(oldest);
    flip(&file, 7);
    let out = scene.env.run(&["forget", "--keep-last", "1"]);
    assert_eq!(out.status.code(), Some(0));
    // The policy left the damaged file alone and said so.
    assert!(file.exists());
    assert!(String::from_utf8_lossy(&out.stderr).contains(oldest.as_str()));
    scene.env.ok(&["forget", &oldest[..10]]);
    assert!(!file.exists());
    scene.env.ok(&["check"]);
}

#[test]
fn a_flipped_byte_in_an_index_file() {
    let scene = scene();
    let file = objects(&scene, "index").remove(0);
    let name = name_of(&file);
    flip(&file, 100);

    assert_listing(&scene, 3);
    let out = scene.env.run(&["snapshots"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains(&name));
    // Its packs are read from their headers: nothing is lost.
    assert_eq!(restore_old_snapshots(&scene, None), 0);
    assert_new_snapshot_restores(&scene);
    assert_check_names(&scene, false, &name);
    assert_maintenance_works(&scene);
    // prune replaced the damaged file by one it wrote from the headers.
    assert!(!file.exists());
    repair(&scene, &[&["repair", "index"]]);
}

/// A fresh scene with its first index file damaged by `damage`; returns it
/// and the file's name.
fn scene_with_damaged_index(damage: fn(&Path)) -> (Scene, String) {
    let scene = scene();
    let file = objects(&scene, "index").remove(0);
    damage(&file);
    let name = name_of(&file);
    (scene, name)
}

#[test]
fn an_index_file_truncated_to_half() {
    let (scene, name) = scene_with_damaged_index(truncate_to_half);
    assert_listing(&scene, 3);
    assert_eq!(restore_old_snapshots(&scene, None), 0);
    assert_check_names(&scene, false, &name);
    assert_new_snapshot_restores(&scene);
    assert_maintenance_works(&scene);
    repair(&scene, &[&["repair", "index"]]);
}

#[test]
fn a_flipped_byte_in_a_data_pack() {
    let scene = scene();
    let pack = largest_data_pack(&scene);
    let name = name_of(&pack);
    // Inside the blobs, far from the header at the end.
    flip(&pack, 4096);

    assert_listing(&scene, 3);
    assert!(restore_old_snapshots(&scene, None) >= 1);
    assert_check_names(&scene, true, &name);
    assert_maintenance_works(&scene);
    repair(
        &scene,
        &[&["repair", "packs"], &["repair", "snapshots", "--forget"]],
    );
    // The lost data is stored anew from the source.
    assert_new_snapshot_restores(&scene);
    assert!(!pack.exists());
}

/// A data pack damaged by `damage`: restores name what it held, `check`
/// names it, and `repair` (the documented commands) cleans up. A new
/// snapshot finds the pack gone or cut short before it saves anything and
/// stores that data anew.
fn data_pack_case(damage: fn(&Path), repair_steps: &[&[&str]]) {
    let scene = scene();
    let pack = largest_data_pack(&scene);
    let name = name_of(&pack);
    damage(&pack);

    assert_listing(&scene, 3);
    assert!(restore_old_snapshots(&scene, None) >= 1);
    assert_dump_and_drill_name_the_damage(&scene);
    assert_check_names(&scene, false, &name);
    assert_new_snapshot_restores(&scene);
    assert_maintenance_works(&scene);
    repair(&scene, repair_steps);
    assert_new_snapshot_restores(&scene);
}

/// For a snapshot that lost a file: `dump` of that file exits 1 naming it,
/// and `drill` reports it among its errors.
fn assert_dump_and_drill_name_the_damage(scene: &Scene) {
    let (id, file) = scene
        .versions
        .iter()
        .find_map(|(id, copy)| {
            let lost = restore_and_compare(scene, id, copy).named_files;
            lost.into_iter().next().map(|file| (id, file))
        })
        .expect("some snapshot lost a file");
    let out = scene.env.run(&["dump", id, &file]);
    let stderr = expect_failure(&out, 1);
    assert!(
        stderr.contains(&file) && stderr.contains("damaged"),
        "{stderr}"
    );
    let out = scene.env.run(&["--json", "drill", id]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let errors = report["errors"].to_string();
    assert!(
        errors.contains("damaged:") && errors.contains(&file),
        "{errors}"
    );
}

fn remove(path: &Path) {
    fs::remove_file(path).unwrap();
}

#[test]
fn a_deleted_data_pack() {
    data_pack_case(
        remove,
        &[&["repair", "index"], &["repair", "snapshots", "--forget"]],
    );
}

#[test]
fn a_truncated_data_pack() {
    data_pack_case(
        truncate_to_half,
        &[&["repair", "packs"], &["repair", "snapshots", "--forget"]],
    );
}

#[test]
fn a_deleted_tree_pack() {
    let scene = scene();
    // The first snapshot's trees: later snapshots share its unchanged ones.
    let pack = objects(&scene, "tree")
        .into_iter()
        .min_by_key(|p| fs::metadata(p).unwrap().modified().unwrap())
        .unwrap();
    let name = name_of(&pack);
    fs::remove_file(&pack).unwrap();

    assert_listing(&scene, 3);
    assert!(restore_old_snapshots(&scene, None) >= 1);
    assert_check_names(&scene, false, &name);
    assert_new_snapshot_restores(&scene);
    assert_maintenance_works(&scene);
    repair(
        &scene,
        &[&["repair", "index"], &["repair", "snapshots", "--forget"]],
    );
    assert_new_snapshot_restores(&scene);
}

#[test]
fn a_superseded_index_file_put_back_after_a_prune_deleted_its_packs() {
    let scene = scene();
    let env = &scene.env;
    let old: Vec<(PathBuf, Vec<u8>)> = objects(&scene, "index")
        .into_iter()
        .map(|p| {
            let bytes = fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    env.ok(&["forget", "--keep-last", "1"]);
    env.ok(&["prune", "--instant-delete"]);
    // A second prune replaces the first one's index file, so nothing
    // present supersedes the old files any more.
    assert_new_snapshot_restores(&scene);
    env.ok(&["prune", "--instant-delete"]);
    for (path, bytes) in &old {
        fs::write(path, bytes).unwrap();
    }
    let replayed = name_of(&old[0].0);

    assert_listing(&scene, 2);
    let (latest, copy) = scene.versions.last().unwrap();
    let r = restore_and_compare(&scene, latest, copy);
    assert!(!assert_exact(&r, "restore of the kept snapshot"));
    let out = env.run(&["--json", "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("missing from storage"),
        "the replayed file's packs are named as missing ({replayed})"
    );
    assert_new_snapshot_restores(&scene);
    assert_maintenance_works(&scene);
    repair(&scene, &[&["repair", "index"]]);
    assert_new_snapshot_restores(&scene);
}
