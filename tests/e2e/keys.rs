//! `arca key`: several passwords for one repository, password changes, and
//! the rules that keep at least one working key.

use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use arca_backend::LocalBackend;
use arca_core::{Lock, LockMode, LockRecord, Owner, Repository};
use serde_json::Value;

use crate::util::*;

/// Runs arca opening the repository with `password`, and with
/// `ARCA_NEW_PASSWORD` set to `new` when given.
fn run_as(env: &Env, password: &str, new: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = env.cmd(args);
    cmd.env("ARCA_PASSWORD", password)
        .env_remove("ARCA_NEW_PASSWORD");
    if let Some(new) = new {
        cmd.env("ARCA_NEW_PASSWORD", new);
    }
    cmd.output().unwrap()
}

/// Like [`run_as`], requiring success; returns stdout parsed as JSON.
fn json_as(env: &Env, password: &str, new: Option<&str>, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = run_as(env, password, new, &all);
    assert_eq!(
        out.status.code(),
        Some(0),
        "arca {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `key list --json`, opened with `password`.
fn keys(env: &Env, password: &str) -> Vec<Value> {
    json_as(env, password, None, &["key", "list"])
        .as_array()
        .unwrap()
        .clone()
}

fn opens(env: &Env, password: &str) -> bool {
    let out = run_as(env, password, None, &["snapshots"]);
    match out.status.code() {
        Some(0) => true,
        _ => {
            let err = expect_failure(&out, 12);
            assert!(err.contains("wrong password"), "{err}");
            false
        }
    }
}

#[test]
fn an_added_key_opens_the_repository_with_its_own_password() {
    let env = Env::with_repo();
    let added = json_as(
        &env,
        PASSWORD,
        Some("second password"),
        &["key", "add", "--host", "db2", "--user", "ops"],
    );
    assert!(added["removed"].is_null(), "{added}");
    let id = added["added"].as_str().unwrap();
    assert_eq!(id.len(), 64);
    assert!(opens(&env, "second password"));
    assert!(opens(&env, PASSWORD));
    assert!(!opens(&env, "third password"));

    let listed = keys(&env, "second password");
    assert_eq!(listed.len(), 2, "{listed:?}");
    let (first, second) = (&listed[0], &listed[1]);
    // Oldest first: the key from init, then the added one, which is the
    // one this listing opened the repository with.
    assert_eq!(second["id"], id);
    assert_eq!(second["short_id"], &id[..8]);
    assert_eq!(second["current"], true);
    assert_eq!(first["current"], false);
    assert_eq!(second["hostname"], "db2");
    assert_eq!(second["username"], "ops");
    assert!(second["error"].is_null());
    for key in &listed {
        let created = key["created"].as_str().unwrap();
        // RFC 3339: 2026-11-20T02:00:00.123+01:00
        assert_eq!(&created[4..5], "-", "{created}");
        assert_eq!(&created[10..11], "T", "{created}");
        assert!(
            created.ends_with('Z') || created[created.len() - 6..].starts_with(['+', '-']),
            "{created}"
        );
    }
    assert!(first["created"].as_str() <= second["created"].as_str());

    // The table marks the key in use.
    let table = run_as(&env, PASSWORD, None, &["key", "list"]);
    let text = String::from_utf8(table.stdout).unwrap();
    let marked: Vec<&str> = text.lines().filter(|l| l.starts_with('*')).collect();
    assert_eq!(marked.len(), 1, "{text}");
    assert!(
        marked[0].contains(first["short_id"].as_str().unwrap()),
        "{text}"
    );
    assert!(text.contains("db2"), "{text}");
}

#[test]
fn passwd_replaces_the_password_in_use() {
    let env = Env::with_repo();
    let old = keys(&env, PASSWORD)[0]["id"].as_str().unwrap().to_string();
    let file = env.path("new-password");
    std::fs::write(&file, "new password\n").unwrap();
    let out = run_as(
        &env,
        PASSWORD,
        None,
        &[
            "key",
            "passwd",
            "--new-password-file",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    let note = String::from_utf8(out.stderr).unwrap();
    assert!(note.contains(&old[..8]), "{note}");

    let out = run_as(&env, PASSWORD, None, &["snapshots"]);
    let err = expect_failure(&out, 12);
    assert!(err.contains("wrong password"), "{err}");
    assert!(opens(&env, "new password"));
    let listed = keys(&env, "new password");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["current"], true);
    assert_ne!(listed[0]["id"], old.as_str());
    assert!(
        note.contains(listed[0]["short_id"].as_str().unwrap()),
        "{note}"
    );

    // With --json: the key added and the key removed.
    let changed = json_as(&env, "new password", Some("newer"), &["key", "passwd"]);
    assert_eq!(changed["removed"], listed[0]["id"]);
    assert_eq!(keys(&env, "newer")[0]["id"], changed["added"]);
    assert!(!opens(&env, "new password"));
}

#[test]
fn a_key_is_removed_by_a_unique_prefix() {
    let env = Env::with_repo();
    let added = json_as(&env, PASSWORD, Some("second"), &["key", "add"]);
    let id = added["added"].as_str().unwrap();
    let out = run_as(&env, PASSWORD, None, &["key", "remove", &id[..6]]);
    assert_eq!(out.status.code(), Some(0));
    let note = String::from_utf8(out.stderr).unwrap();
    assert!(
        note.contains("removed key") && note.contains(&id[..8]),
        "{note}"
    );
    assert!(!opens(&env, "second"));
    assert_eq!(keys(&env, PASSWORD).len(), 1);

    // Quiet: no confirmation.
    let added = json_as(&env, PASSWORD, Some("third"), &["key", "add"]);
    let id = added["added"].as_str().unwrap();
    let out = run_as(&env, PASSWORD, None, &["-q", "key", "remove", id]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = run_as(&env, PASSWORD, None, &["key", "remove", "not-hex"]);
    let err = expect_failure(&out, 1);
    assert!(err.contains("not-hex"), "{err}");
}

#[test]
fn the_key_in_use_needs_force_and_the_last_key_stays() {
    let env = Env::with_repo();
    let first = keys(&env, PASSWORD)[0]["id"].as_str().unwrap().to_string();

    // The only key: refused, with or without --force.
    for force in [false, true] {
        let mut args = vec!["key", "remove", &first[..8]];
        if force {
            args.push("--force");
        }
        let out = run_as(&env, PASSWORD, None, &args);
        let err = expect_failure(&out, 1);
        assert!(err.contains("last") && err.contains(&first[..8]), "{err}");
    }
    assert!(opens(&env, PASSWORD));

    json_as(&env, PASSWORD, Some("second"), &["key", "add"]);
    let out = run_as(&env, PASSWORD, None, &["key", "remove", &first]);
    let err = expect_failure(&out, 1);
    assert!(err.contains("in use") && err.contains(&first[..8]), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert!(opens(&env, PASSWORD));

    let removed = json_as(&env, PASSWORD, None, &["key", "remove", &first, "--force"]);
    assert_eq!(removed["removed"], first.as_str());
    assert!(removed["added"].is_null());
    assert!(!opens(&env, PASSWORD));
    assert!(opens(&env, "second"));
}

#[test]
fn a_new_password_must_be_given_and_not_empty() {
    let env = Env::with_repo();
    // No file, no ARCA_NEW_PASSWORD, no terminal: a usage error.
    let out = run_as(&env, PASSWORD, None, &["key", "add"]);
    let err = expect_failure(&out, 2);
    assert!(err.contains("--new-password-file"), "{err}");
    let out = run_as(&env, PASSWORD, Some(""), &["key", "passwd"]);
    let err = expect_failure(&out, 2);
    assert!(err.contains("empty"), "{err}");
    let missing = env.path("missing");
    let out = run_as(
        &env,
        PASSWORD,
        None,
        &[
            "key",
            "add",
            "--new-password-file",
            missing.to_str().unwrap(),
        ],
    );
    let err = expect_failure(&out, 1);
    assert!(err.contains(missing.to_str().unwrap()), "{err}");
    assert_eq!(keys(&env, PASSWORD).len(), 1);
    assert!(opens(&env, PASSWORD));
}

#[test]
fn key_changes_wait_for_the_exclusive_lock() {
    let env = Env::with_repo();
    let repo =
        Repository::open(Arc::new(LocalBackend::new(&env.repo)), PASSWORD.as_bytes()).unwrap();
    let elsewhere = Owner {
        hostname: "backup-host-2".into(),
        username: "ops".into(),
    };
    let record = LockRecord::new(LockMode::Exclusive, "prune", &elsewhere);
    let held = Lock::acquire_as(&repo, record, Duration::ZERO, &|_| {}).unwrap();
    let first = keys(&env, PASSWORD)[0]["id"].as_str().unwrap().to_string();

    for args in [
        &["key", "add"][..],
        &["key", "passwd"],
        &["key", "remove", &first, "--force"],
    ] {
        let out = run_as(&env, PASSWORD, Some("other"), args);
        let err = expect_failure(&out, 11);
        assert!(
            err.contains("backup-host-2") && err.contains("prune"),
            "{args:?}: {err}"
        );
    }
    // Listing takes no lock; nothing changed.
    assert_eq!(keys(&env, PASSWORD).len(), 1);
    assert!(!opens(&env, "other"));

    drop(held);
    json_as(&env, PASSWORD, Some("other"), &["key", "add"]);
    assert!(opens(&env, "other"));
}
