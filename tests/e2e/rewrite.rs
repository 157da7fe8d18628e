//! `arca rewrite`: a snapshot without the paths asked for replaces the old
//! one (kept unless `--forget`); a dry run writes nothing; the removed data
//! goes at the prune after the old snapshot is forgotten.

use std::fs;
use std::path::PathBuf;

use crate::json_fields::assert_documented;
use crate::util::*;

/// Every file below the repository with its size: what a command wrote.
fn repo_files(env: &Env) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<(PathBuf, u64)> = files_below(&env.repo)
        .into_iter()
        .map(|p| {
            let size = fs::metadata(&p).unwrap().len();
            (p, size)
        })
        .collect();
    files.sort();
    files
}

fn data_bytes(env: &Env) -> u64 {
    files_below(&env.repo.join("data"))
        .iter()
        .map(|p| fs::metadata(p).unwrap().len())
        .sum()
}

fn ids(env: &Env) -> Vec<String> {
    env.json(&["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn ls(env: &Env, snap: &str) -> String {
    env.ok(&["ls", snap])
}

/// A source with a 3 MiB secret beside kept files; its canonical path.
fn source(env: &Env) -> PathBuf {
    let src = env.path("src");
    fs::create_dir_all(src.join("keep")).unwrap();
    write_file(&src.join("keep/data"), &random_bytes(1 << 20, 1), 0o644);
    write_file(&src.join("secret.key"), &random_bytes(3 << 20, 2), 0o600);
    src.canonicalize().unwrap()
}

#[test]
fn rewrite_removes_a_file_from_a_new_snapshot_and_prune_frees_its_data() {
    let env = Env::with_repo();
    let src = source(&env);
    let snap = env.snapshot(&[&src]);
    let old = snap["id"].as_str().unwrap().to_string();
    let secret = src.join("secret.key").display().to_string();

    // A dry run lists what would go and changes nothing.
    let files_before = repo_files(&env);
    let listing = env.ok(&["rewrite", &old[..8], "--exclude", "*.key", "--dry-run"]);
    assert!(listing.contains(&secret), "{listing}");
    assert!(listing.contains("would remove 1 path(s)"), "{listing}");
    let dry = env.json(&["rewrite", &old[..8], "--exclude", "*.key", "-n"]);
    assert_documented(&dry, "rewrite");
    assert_documented(&dry["rewritten"][0], "rewrite.rewritten[]");
    assert_documented(
        &dry["rewritten"][0]["removed"][0],
        "rewrite.rewritten[].removed[]",
    );
    assert_eq!(dry["rewritten"][0]["new"], serde_json::Value::Null);
    assert_eq!(dry["rewritten"][0]["bytes_removed"], 3 << 20);
    assert_eq!(ids(&env), std::slice::from_ref(&old));
    assert_eq!(repo_files(&env), files_before, "a dry run writes nothing");

    // Without --forget the old snapshot stays beside the new one.
    let out = env.json(&["rewrite", &old[..8], "--exclude", "*.key"]);
    let new = out["rewritten"][0]["new"].as_str().unwrap().to_string();
    assert_eq!(out["rewritten"][0]["forgotten"], false);
    assert_eq!(
        out["rewritten"][0]["removed"][0]["path"],
        secret.as_str(),
        "{out}"
    );
    assert!(!ls(&env, &new[..8]).contains("secret.key"));
    assert!(ls(&env, &new[..8]).contains("keep/data"));
    assert!(ls(&env, &old[..8]).contains("secret.key"));
    // Of the two, taken at the same time, the replacement is the latest.
    assert!(!ls(&env, "latest").contains("secret.key"));
    assert_eq!(ids(&env), [old.clone(), new.clone()]);
    let listed = env.json(&["snapshots"]);
    let replacement = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == new.as_str())
        .unwrap()
        .clone();
    assert_eq!(replacement["original"], old.as_str());
    assert_eq!(replacement["time"], snap["time"], "the time stays");
    assert_eq!(replacement["summary"]["total_files"], 1);

    // The new snapshot restores without the secret.
    let target = env.path("target");
    env.ok(&["restore", &new[..8], "--target", target.to_str().unwrap()]);
    let restored = restored(&target, &src);
    assert_same_tree(&src.join("keep"), &restored.join("keep"));
    assert!(!restored.join("secret.key").exists());

    // Nothing left to remove: no change; quiet prints nothing.
    let again = env.run(&["-q", "rewrite", &new[..8], "--exclude", "*.key"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(
        again.stdout.is_empty() && again.stderr.is_empty(),
        "{again:?}"
    );
    let unchanged = env.ok(&["rewrite", &new[..8], "--exclude", "*.key"]);
    assert!(unchanged.contains("no change"), "{unchanged}");

    // The data goes once the old snapshot is forgotten and a prune runs.
    let before = data_bytes(&env);
    env.ok(&["forget", &old]);
    env.ok(&["prune", "--instant-delete"]);
    let after = data_bytes(&env);
    assert!(
        before - after >= 3 << 20,
        "the secret's data is gone: {before} -> {after}"
    );
    let report = env.ok(&["check", "--read-data"]);
    assert!(report.is_empty(), "{report}");
}

#[test]
fn rewrite_forget_replaces_every_matching_snapshot_and_leaves_the_rest() {
    let env = Env::with_repo();
    let src = source(&env);
    let other = env.path("other");
    fs::create_dir(&other).unwrap();
    write_file(&other.join("plain"), b"plain", 0o644);
    env.ok(&["snapshot", src.to_str().unwrap(), "--tag", "nightly"]);
    write_file(&src.join("keep/more"), b"more", 0o644);
    env.ok(&["snapshot", src.to_str().unwrap(), "--tag", "nightly"]);
    env.ok(&["snapshot", other.to_str().unwrap(), "--tag", "nightly"]);
    let before = ids(&env);

    // Without SNAP: every snapshot the filters let through; a pattern is required.
    let usage = env.run(&["rewrite", "--forget"]);
    assert_eq!(usage.status.code(), Some(2));
    let file = env.path("excludes");
    fs::write(&file, "# secrets\n*.key\n").unwrap();
    let out = env.json(&[
        "rewrite",
        "--tag",
        "nightly",
        "--exclude-file",
        file.to_str().unwrap(),
        "--forget",
    ]);
    let rewritten = out["rewritten"].as_array().unwrap();
    assert_eq!(rewritten.len(), 2, "{out}");
    assert!(rewritten.iter().all(|r| r["forgotten"] == true), "{out}");
    assert_eq!(out["unchanged"], serde_json::json!([before[2]]), "{out}");
    let after = ids(&env);
    assert_eq!(after.len(), 3);
    assert!(!after.contains(&before[0]) && !after.contains(&before[1]));
    assert!(
        after.contains(&before[2]),
        "the snapshot with no match stays"
    );
    for id in &after {
        assert!(!ls(&env, &id[..8]).contains("secret.key"), "{id}");
    }
    let report = env.ok(&["check", "--read-data"]);
    assert!(report.is_empty(), "{report}");
}

#[test]
fn a_damaged_tree_stops_the_rewrite_with_one_line_naming_it() {
    let env = Env::with_repo();
    let src = source(&env);
    let old = env.snapshot(&[&src])["id"].as_str().unwrap().to_string();
    // Damage every tree pack: the snapshot's trees cannot be read.
    for pack in files_below(&env.repo.join("tree")) {
        let mut bytes = fs::read(&pack).unwrap();
        for b in bytes.iter_mut().take(200).skip(30) {
            *b ^= 0x55;
        }
        let mut perms = fs::metadata(&pack).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
        fs::set_permissions(&pack, perms).unwrap();
        fs::write(&pack, bytes).unwrap();
    }
    let files_before = repo_files(&env);
    let out = env.run(&["rewrite", "latest", "--exclude", "*.key", "--forget"]);
    let err = expect_failure(&out, 1);
    assert!(err.contains(&old[..8]) && err.contains("tree"), "{err}");
    assert_eq!(repo_files(&env), files_before, "nothing was written");
    assert_eq!(ids(&env), [old]);
}
