//! `check`: each kind of damage is found by the right mode, named, and
//! gives exit 1; a clean repository gives exit 0.

use std::fs;
use std::path::PathBuf;

use serde_json::Value;

use crate::util::*;

/// A repository with small packs and three snapshots.
fn repository() -> (Env, PathBuf) {
    let env = Env::new();
    env.ok(&["init", "--pack-size", "1MiB"]);
    let src = env.path("src");
    fs::create_dir_all(src.join("db")).unwrap();
    for round in 0..3u64 {
        write_file(
            &src.join(format!("db/day{round}.db")),
            &random_bytes(3 << 20, round + 1),
            0o644,
        );
        write_file(
            &src.join("positions.csv"),
            format!("round {round}\n").as_bytes(),
            0o644,
        );
        env.snapshot(&[&src]);
    }
    (env, src)
}

fn objects(env: &Env, dir: &str) -> Vec<PathBuf> {
    files_below(&env.repo.join(dir))
}

fn check(env: &Env, args: &[&str]) -> (i32, Value) {
    let mut all = vec!["--json", "check"];
    all.extend_from_slice(args);
    let out = env.run(&all);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    (out.status.code().unwrap(), report)
}

fn names(report: &Value, needle: &str) -> bool {
    report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["object"].as_str().unwrap().contains(needle))
}

fn flip_middle(path: &std::path::Path) {
    let mut bytes = fs::read(path).unwrap();
    let at = bytes.len() / 3;
    bytes[at] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

fn name_of(path: &std::path::Path) -> String {
    path.file_name().unwrap().to_str().unwrap().to_string()
}

#[test]
fn a_clean_repository_checks_with_exit_0() {
    let (env, _) = repository();
    let (code, report) = check(&env, &[]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["snapshots"], 3);
    let (code, report) = check(&env, &["--read-data"]);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["packs_read"], report["packs"]);
    assert!(report["bytes_read"].as_u64().unwrap() > 9 << 20);
    let text = env.ok(&["check", "--read-data"]);
    assert!(text.is_empty(), "no errors printed: {text}");
}

#[test]
fn a_flipped_byte_in_a_data_pack_is_found_by_read_data_and_traced_to_files() {
    let (env, _) = repository();
    let pack = objects(&env, "data")
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap();
    flip_middle(&pack);
    let (code, report) = check(&env, &["--read-data"]);
    assert_eq!(code, 1);
    assert!(names(&report, &name_of(&pack)), "{report}");
    let affects = report["errors"][0]["affects"].as_array().unwrap();
    assert!(
        !affects.is_empty() && affects[0]["path"].as_str().unwrap().contains("/db/day"),
        "{report}"
    );
    let text = String::from_utf8_lossy(&env.run(&["check", "--read-data"]).stdout).into_owned();
    assert!(
        text.contains(&name_of(&pack)) && text.contains("hurts snapshot"),
        "{text}"
    );
}

#[test]
fn a_flipped_byte_in_a_tree_pack_is_found_by_the_structure_check() {
    let (env, _) = repository();
    let pack = objects(&env, "tree").pop().unwrap();
    flip_middle(&pack);
    let (code, report) = check(&env, &[]);
    assert_eq!(code, 1);
    assert!(
        names(&report, "tree ") && report.to_string().contains(&name_of(&pack)),
        "{report}"
    );
}

#[test]
fn a_flipped_byte_in_an_index_or_snapshot_file_is_found() {
    for dir in ["index", "snapshots"] {
        let (env, _) = repository();
        let file = objects(&env, dir).pop().unwrap();
        flip_middle(&file);
        let (code, report) = check(&env, &[]);
        assert_eq!(code, 1, "{dir}");
        assert!(names(&report, &name_of(&file)), "{dir}: {report}");
    }
}

#[test]
fn deleted_truncated_and_misnamed_packs_are_found() {
    let (env, _) = repository();
    let packs = objects(&env, "data");
    fs::remove_file(&packs[0]).unwrap();
    let (code, report) = check(&env, &[]);
    assert_eq!(code, 1);
    assert!(names(&report, &name_of(&packs[0])), "{report}");
    assert!(report.to_string().contains("missing"), "{report}");

    let (env, _) = repository();
    let pack = objects(&env, "data").pop().unwrap();
    let bytes = fs::read(&pack).unwrap();
    fs::write(&pack, &bytes[..bytes.len() - 100]).unwrap();
    let (code, report) = check(&env, &[]);
    assert_eq!(code, 1);
    assert!(names(&report, &name_of(&pack)), "{report}");

    let (env, _) = repository();
    let pack = objects(&env, "data").pop().unwrap();
    let wrong = pack.with_file_name("ab".repeat(32));
    fs::rename(&pack, &wrong).unwrap();
    let (code, report) = check(&env, &[]);
    assert_eq!(code, 1);
    assert!(names(&report, &name_of(&pack)), "{report}");
    assert!(
        report["warnings"].to_string().contains(&"ab".repeat(32)),
        "{report}"
    );
}

#[test]
fn subsets_one_to_five_of_five_read_every_pack_once() {
    let (env, _) = repository();
    let (_, full) = check(&env, &["--read-data"]);
    let total = full["packs"].as_u64().unwrap();
    assert!(total >= 5, "want several packs, have {total}");
    let read: u64 = (1..=5)
        .map(|n| {
            check(&env, &["--read-data-subset", &format!("{n}/5")]).1["packs_read"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(read, total);
    let (code, report) = check(&env, &["--read-data-subset", "100%"]);
    assert_eq!((code, report["packs_read"].as_u64().unwrap()), (0, total));
    let (_, report) = check(&env, &["--read-data-subset", "0%"]);
    assert_eq!(report["packs_read"], 0);
}

#[test]
fn a_damaged_second_key_is_reported() {
    let (env, _) = repository();
    // A second key file (a copy under its own name) that is then damaged:
    // the repository still opens with the first, and check names the second.
    let key = files_below(&env.repo.join("keys")).pop().unwrap();
    let mut bytes = fs::read(&key).unwrap();
    bytes[10] ^= 0x01;
    let name = blake3::hash(&bytes).to_hex().to_string();
    fs::write(key.with_file_name(&name), &bytes).unwrap();
    let (code, report) = check(&env, &[]);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["keys"], 2);
    assert!(names(&report, &name), "{report}");
}
