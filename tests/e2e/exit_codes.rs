//! The exit codes of the CLI contract, one test each, with the one-line
//! error a script or operator sees on stderr.

use std::fs;

use crate::json_fields::plant_lock;
use crate::util::*;

#[test]
fn exit_0_for_success() {
    let env = Env::with_repo();
    let out = env.run(&["snapshots"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn exit_1_for_an_error() {
    let env = Env::with_repo();
    let target = env.path("restore");
    let out = env.run(&["restore", "deadbeef", "--target", target.to_str().unwrap()]);
    assert!(expect_failure(&out, 1).contains("deadbeef"));
}

#[test]
fn exit_2_for_usage_errors() {
    let env = Env::with_repo();
    // clap adds a usage hint after its one-line error.
    let out = env.run(&["snapshots", "--no-such-flag"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.lines().next().unwrap().contains("--no-such-flag"),
        "{err}"
    );
    let err = expect_failure(&env.run(&["forget", "--keep-last", "x"]), 2);
    assert!(err.contains("--keep-last"), "{err}");
}

#[test]
fn exit_3_when_a_source_file_cannot_be_read() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    write_file(&src.join("readable"), b"fine", 0o644);
    let secret = src.join("locked.db");
    write_file(&secret, b"cannot read me", 0o000);
    let out = without_dac_override(&env, &["-q", "snapshot", src.to_str().unwrap()]);
    assert!(expect_failure(&out, 3).contains(secret.to_str().unwrap()));
    // The snapshot was saved all the same.
    let saved = env.json(&["snapshots"]);
    assert_eq!(saved.as_array().unwrap().len(), 1, "{saved}");
}

#[test]
fn exit_10_when_the_repository_does_not_exist() {
    let env = Env::new();
    let err = expect_failure(&env.run(&["snapshots"]), 10);
    assert!(err.contains("no repository"), "{err}");
}

#[test]
fn exit_11_when_another_process_holds_the_lock() {
    let env = Env::with_repo();
    let _held = plant_lock(&env);
    let err = expect_failure(&env.run(&["prune"]), 11);
    assert!(err.contains("backup-host-2"), "{err}");
}

#[test]
fn exit_12_for_a_wrong_password() {
    let env = Env::with_repo();
    let out = env
        .cmd(&["snapshots"])
        .env("ARCA_PASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(expect_failure(&out, 12).contains("wrong password"));
}
