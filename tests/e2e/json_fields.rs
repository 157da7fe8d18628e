//! Every `--json` document has exactly the fields docs/json.md lists. The
//! tables are read from the page itself, so docs and binary cannot drift.

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arca_backend::LocalBackend;
use arca_core::{Lock, LockMode, LockRecord, Owner, Repository};
use serde_json::Value;

use crate::util::*;

type Fields = BTreeSet<String>;

/// Table name (the first backticked text of a heading) → the backticked
/// names in the first column of the tables under it.
fn documented() -> HashMap<String, Fields> {
    let mut tables: HashMap<String, Fields> = HashMap::new();
    let mut current = None;
    for line in include_str!("../../docs/json.md").lines() {
        if line.starts_with('#') {
            current = line.split('`').nth(1).map(str::to_string);
        } else if let (Some(name), Some(cell)) = (&current, line.strip_prefix("| `")) {
            let field = cell.split('`').next().unwrap().to_string();
            tables.entry(name.clone()).or_default().insert(field);
        }
    }
    tables
}

fn doc(table: &str) -> Fields {
    documented()
        .remove(table)
        .unwrap_or_else(|| panic!("docs/json.md has no table `{table}`"))
}

fn union(tables: &[&str]) -> Fields {
    tables.iter().flat_map(|t| doc(t)).collect()
}

fn keys(value: &Value) -> Fields {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

/// `value` has exactly the fields docs/json.md lists under `table`.
pub fn assert_documented(value: &Value, table: &str) {
    assert_fields(value, &doc(table), table);
}

/// `value` has exactly the fields of all these docs/json.md tables.
pub fn assert_documented_union(value: &Value, tables: &[&str]) {
    assert_fields(value, &union(tables), &tables.join(" + "));
}

fn assert_fields(value: &Value, expected: &Fields, what: &str) {
    assert_eq!(&keys(value), expected, "{what}: {value}");
}

/// The items of an array, which must not be empty (an empty one tests nothing).
fn items<'a>(value: &'a Value, what: &str) -> &'a [Value] {
    let list = value
        .as_array()
        .unwrap_or_else(|| panic!("{what} is not an array: {value}"));
    assert!(!list.is_empty(), "{what} is empty");
    list
}

/// The JSON objects, one a line, that `--json` ARGS prints.
pub fn json_lines(env: &Env, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    env.ok(&all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON ({e}): {l}")))
        .collect()
}

fn source(env: &Env, content: &[u8]) -> std::path::PathBuf {
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    write_file(&src.join("a.txt"), content, 0o644);
    let link = src.join("link");
    if !link.exists() {
        std::os::unix::fs::symlink("a.txt", link).unwrap();
    }
    src
}

fn arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

fn open_repo(env: &Env) -> Repository {
    Repository::open(Arc::new(LocalBackend::new(&env.repo)), PASSWORD.as_bytes()).unwrap()
}

/// Leaves an exclusive lock of another host behind, as a killed prune would.
pub fn plant_lock(env: &Env) -> Lock {
    let owner = Owner {
        hostname: "backup-host-2".into(),
        username: "ops".into(),
    };
    let record = LockRecord::new(LockMode::Exclusive, "prune", &owner);
    Lock::acquire_as(&open_repo(env), record, Duration::ZERO, &|_| {}).unwrap()
}

#[test]
fn snapshot_and_browsing_documents_have_the_documented_fields() {
    let env = Env::new();
    assert_fields(&env.json(&["init"]), &doc("init"), "init");
    let src = source(&env, b"first");
    let snapshot_fields = union(&["snapshot-object", "snapshot"]);
    let first = env.snapshot(&[&src]);
    assert_fields(&first, &snapshot_fields, "snapshot");
    let summary = doc("snapshot-object.summary");
    assert_fields(&first["summary"], &summary, "snapshot summary");

    // A warning item needs an unreadable file (exit 3).
    let locked = src.join("locked.db");
    write_file(&locked, b"secret", 0o000);
    let out = without_dac_override(&env, &["--json", "snapshot", arg(&src)]);
    assert_eq!(out.status.code(), Some(3));
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o644)).unwrap();
    let partial: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_fields(&partial, &snapshot_fields, "partial snapshot");
    for w in items(&partial["warnings"], "warnings") {
        assert_fields(w, &doc("snapshot.warnings[]"), "snapshot warning");
    }

    source(&env, b"second, longer");
    let second = env.snapshot(&[&src]);
    for s in items(&env.json(&["snapshots"]), "snapshots") {
        assert_fields(s, &doc("snapshot-object"), "snapshots item");
    }

    let entries = json_lines(&env, &["ls", "latest"]);
    let mut ls_plain = doc("ls");
    ls_plain.remove("target");
    for e in items(&Value::from(entries), "ls") {
        let expected = if e["type"] == "symlink" {
            doc("ls")
        } else {
            ls_plain.clone()
        };
        assert_fields(e, &expected, "ls entry");
    }
    let found = json_lines(&env, &["find", "a.txt"]);
    for f in items(&Value::from(found), "find") {
        assert_fields(f, &doc("find"), "find match");
    }

    let id = |s: &Value| s["id"].as_str().unwrap().to_string();
    let diff = env.json(&["diff", &id(&first), &id(&second)]);
    assert_fields(&diff, &doc("diff"), "diff");
    assert_fields(&diff["counts"], &doc("diff.counts"), "diff counts");
    for c in items(&diff["changes"], "diff changes") {
        assert_fields(c, &doc("diff.changes[]"), "diff change");
    }
    assert_fields(&env.json(&["stats"]), &doc("stats"), "stats");

    let target = env.path("restore");
    let restore = env.json(&["restore", "latest", "--target", arg(&target)]);
    assert_fields(&restore, &doc("restore"), "restore");
    assert_fields(&env.json(&["drill"]), &doc("drill"), "drill");

    let status = env.json(&["status"]);
    assert_fields(&status, &doc("status"), "status");
    for g in items(&status["groups"], "status groups") {
        assert_fields(g, &doc("status.groups[]"), "status group");
        assert_fields(&g["latest"], &doc("status.groups[].latest"), "latest");
    }
    assert_fields(&status["wal"], &doc("status.wal"), "status wal");
    assert!(status["wal"]["newest"].is_null() && status["recovery_window"].is_null());

    // A base backup, then a WAL file archived after it: a recovery window.
    env.ok(&["snapshot", arg(&src), "--tag", "pg-base"]);
    let segment = env.path("000000010000000000000001");
    fs::write(&segment, b"wal").unwrap();
    env.ok(&["pg", "archive-wal", arg(&segment)]);
    let status = env.json(&["status", "--max-wal-age", "1h"]);
    assert_fields(&status, &doc("status"), "status with WAL");
    assert_fields(&status["wal"], &doc("status.wal"), "status wal");
    let newest = &status["wal"]["newest"];
    assert_fields(newest, &doc("status.wal.newest"), "newest WAL");
    let window = &status["recovery_window"];
    assert_fields(window, &doc("status.recovery_window"), "recovery window");
}

#[test]
fn key_and_unlock_documents_have_the_documented_fields() {
    let env = Env::with_repo();
    let with_new = |args: &[&str]| {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = env
            .cmd(&all)
            .env("ARCA_NEW_PASSWORD", "another password")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let added = with_new(&["key", "add"]);
    assert_fields(&added, &doc("key add"), "key add");
    for k in items(&env.json(&["key", "list"]), "key list") {
        assert_fields(k, &doc("key list"), "key list item");
    }
    let removed = env.json(&["key", "remove", added["added"].as_str().unwrap()]);
    assert_fields(&removed, &doc("key add"), "key remove");
    std::mem::forget(plant_lock(&env));
    for l in items(&env.json(&["unlock", "--remove-all"]), "unlock") {
        assert_fields(l, &doc("unlock"), "unlock item");
    }
    assert_fields(&with_new(&["key", "passwd"]), &doc("key add"), "key passwd");
}

#[test]
fn forget_prune_copy_check_and_repair_documents_have_the_documented_fields() {
    let env = Env::with_repo();
    let src = source(&env, &random_bytes(4096, 1));
    env.snapshot(&[&src]);
    source(&env, &random_bytes(4096, 2));
    env.snapshot(&[&src]);

    let offsite = env.path("offsite");
    let password_file = env.path("offsite.password");
    fs::write(&password_file, "offsite password\n").unwrap();
    let to = |args: &[&str]| {
        env.cmd(args)
            .env("ARCA_REPOSITORY", &offsite)
            .env("ARCA_PASSWORD", "offsite password")
            .output()
            .unwrap()
    };
    assert_eq!(to(&["init"]).status.code(), Some(0));
    let out = env
        .cmd(&["--json", "copy", "--to", arg(&offsite)])
        .env("ARCA_TO_PASSWORD_FILE", &password_file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let copy: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_fields(&copy, &doc("copy"), "copy");
    for p in items(&copy["copied"], "copied") {
        assert_fields(p, &doc("copy.copied[]"), "copied pair");
    }
    let copied = to(&["--json", "snapshots"]);
    let copied: Value = serde_json::from_slice(&copied.stdout).unwrap();
    let origin = &items(&copied, "copied snapshots")[0]["copied_from"];
    assert_fields(origin, &doc("snapshot-object.copied_from"), "copied_from");

    let forget = env.json(&["forget", "--keep-last", "1", "--prune"]);
    assert_fields(&forget, &doc("forget"), "forget");
    for g in items(&forget["groups"], "forget groups") {
        assert_fields(g, &doc("forget.groups[]"), "forget group");
        assert_fields(&g["key"], &doc("forget.groups[].key"), "group key");
        for s in items(&g["keep"], "keep")
            .iter()
            .chain(items(&g["remove"], "remove"))
        {
            assert_fields(s, &doc("forget.groups[].keep[]"), "forget snapshot");
        }
    }
    let prune = &forget["prune"];
    assert_fields(prune, &doc("prune"), "forget's prune");
    for c in items(&prune["changes"], "prune changes") {
        assert_fields(c, &doc("prune.changes[]"), "prune change");
    }
    let dry = env.json(&["prune", "--dry-run"]);
    assert_fields(&dry, &doc("prune"), "prune");

    assert_fields(&env.json(&["check"]), &doc("check"), "check");
    let index = env.json(&["repair", "index", "--dry-run"]);
    assert_fields(&index, &doc("repair index"), "repair index");

    // Damage: a data pack under a wrong name is both missing (an error
    // that hurts files) and unindexed (a warning).
    let data = env.repo.join("data");
    let packs: Vec<_> = fs::read_dir(&data)
        .unwrap()
        .flat_map(|d| fs::read_dir(d.unwrap().path()).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    for pack in packs {
        let name = pack.file_name().unwrap().to_str().unwrap();
        let reversed: String = name.chars().rev().collect();
        fs::rename(&pack, pack.with_file_name(reversed)).unwrap();
    }
    let out = env.run(&["--json", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_fields(&check, &doc("check"), "damaged check");
    let problem = doc("check.errors[]");
    let mut without_affects = problem.clone();
    without_affects.remove("affects");
    let hurting: Vec<&Value> = items(&check["errors"], "errors")
        .iter()
        .filter(|e| e.get("affects").is_some())
        .collect();
    assert!(!hurting.is_empty(), "{check}");
    for e in hurting {
        assert_fields(e, &problem, "check error");
        for a in items(&e["affects"], "affects") {
            assert_fields(a, &doc("check.errors[].affects[]"), "affected path");
        }
    }
    for w in items(&check["warnings"], "warnings") {
        assert_fields(w, &without_affects, "check warning");
    }
    // Repair works from the index: drop the packs, then the index entries.
    fs::remove_dir_all(&data).unwrap();
    env.json(&["repair", "index"]);
    let repaired = env.json(&["repair", "snapshots", "--dry-run"]);
    for r in items(&repaired, "repair snapshots") {
        assert_fields(r, &doc("repair snapshots"), "repaired snapshot");
    }
}

#[test]
fn run_documents_have_the_documented_fields() {
    let env = Env::with_repo();
    let src = source(&env, b"nightly");
    let profile = env.path("nightly.toml");
    let text = format!(
        "repository = {repo:?}\n\n[snapshot]\nsources = [{src:?}]\n\n[forget]\nkeep_last = 2\n\n[prune]\nevery = \"1s\"\n\n[hooks]\nbefore = [\"true\"]\nafter = [\"false\"]\n",
        repo = env.address(),
        src = src.display().to_string(),
    );
    fs::write(&profile, text).unwrap();
    let out = env
        .cmd(&["--json", "--config", arg(&profile), "run"])
        .env_remove("ARCA_REPOSITORY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let run: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_fields(&run, &doc("run"), "run");
    let tables = documented();
    let mut seen = BTreeSet::new();
    for step in items(&run["steps"], "steps") {
        let kind = step["step"].as_str().unwrap();
        let status = step["status"].as_str().unwrap();
        let mut expected = doc("run.steps[]");
        let has_own = status == "ok" || (status == "failed" && matches!(kind, "hook" | "check"));
        if has_own {
            expected.extend(tables[&format!("run.steps[] {kind}")].clone());
        }
        if status != "ok" {
            expected.extend(tables[&format!("run.steps[] {status}")].clone());
        }
        assert_fields(step, &expected, &format!("{kind} step ({status})"));
        seen.insert(format!("{kind} {status}"));
    }
    // The profile runs every kind of step, and one hook fails.
    for wanted in [
        "hook ok",
        "hook failed",
        "snapshot ok",
        "forget ok",
        "prune ok",
        "check ok",
    ] {
        assert!(seen.contains(wanted), "{wanted}: {seen:?}");
    }
}
