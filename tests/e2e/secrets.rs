//! How arca treats what must stay private: file modes of a local
//! repository (the cache's are checked in arca-core, cache.rs), no core
//! dumps, and child processes (password commands, hooks) that start with a
//! normal signal mask.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::util::*;

/// Every entry below `dir` with its permission bits.
fn modes(dir: &Path) -> Vec<(String, bool, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let path = entry.path();
        out.push((
            path.display().to_string(),
            meta.is_dir(),
            meta.permissions().mode() & 0o777,
        ));
        if meta.is_dir() {
            out.extend(modes(&path));
        }
    }
    out
}

#[test]
fn a_local_repository_is_private_to_its_owner() {
    let env = Env::with_repo();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    write_file(&src.join("portfolio.json"), b"{\"ES\": 3}", 0o644);
    env.snapshot(&[&src]);
    env.ok(&["check"]);
    let mut seen_key = false;
    for (path, is_dir, mode) in modes(&env.repo) {
        let wanted = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(mode, wanted, "{path} has mode {mode:o}");
        seen_key |= path.contains("/keys/");
    }
    assert!(seen_key);
}

#[test]
fn no_core_dumps_and_children_start_with_signals_unblocked() {
    let env = Env::with_repo();
    // The password command is a child of arca: it inherits the resource
    // limits and the signal mask arca gives it.
    let command =
        format!("echo core=$(ulimit -c) >&2; grep SigBlk /proc/self/status >&2; echo '{PASSWORD}'");
    let out = env
        .cmd(&["--password-command", &command, "snapshots"])
        .env_remove("ARCA_PASSWORD")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("core=0"), "{stderr}");
    assert!(stderr.contains("SigBlk:\t0000000000000000"), "{stderr}");
}

#[test]
fn the_password_appears_in_no_output_and_no_log() {
    let env = Env::with_repo();
    let src = env.path("src");
    std::fs::create_dir(&src).unwrap();
    write_file(&src.join("orders.csv"), b"1,ES,4200.25\n", 0o644);
    let log = env.path("arca.log");
    let log_arg = log.to_str().unwrap();
    let mut seen = String::new();
    for args in [
        vec![
            "-v",
            "--log-file",
            log_arg,
            "snapshot",
            src.to_str().unwrap(),
        ],
        vec!["-v", "--log-file", log_arg, "check", "--read-data"],
        vec!["-v", "--log-file", log_arg, "--json", "snapshots"],
    ] {
        let out = env.cmd(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        seen.push_str(&String::from_utf8_lossy(&out.stdout));
        seen.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    // A wrong password is refused without being echoed either.
    let wrong = "hunter2-wrong-password";
    let out = env
        .cmd(&["-v", "--log-file", log_arg, "snapshots"])
        .env("ARCA_PASSWORD", wrong)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(12));
    seen.push_str(&String::from_utf8_lossy(&out.stderr));
    seen.push_str(&std::fs::read_to_string(&log).unwrap());
    assert!(
        seen.contains("snapshot"),
        "the log and output were captured"
    );
    assert!(!seen.contains(PASSWORD), "the password leaked: {seen}");
    assert!(!seen.contains(wrong), "the wrong password leaked: {seen}");
}

/// While arca holds keys it is not dumpable (issue 17, finding 10): no core
/// file through a core pattern that pipes to a program, which the resource
/// limit does not bind, and no other process of the same user may attach to
/// it or read its memory. Seen from a child: /proc of a process that is not
/// dumpable has its files (environ, mem, …) owned by root, not by the
/// user it runs as.
#[test]
fn arca_is_not_dumpable_while_it_holds_secrets() {
    let env = Env::with_repo();
    let command = format!("echo owner=$(stat -c %u /proc/$PPID/environ) >&2; echo '{PASSWORD}'");
    let arca = env.cmd(&["--password-command", &command, "snapshots"]);
    let root = running_as_root();
    // As root, run it as nobody: a dumpable process's /proc would then
    // belong to nobody.
    let mut cmd = if root {
        let mut wrapped = std::process::Command::new("setpriv");
        wrapped
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(arca.get_program())
            .args(arca.get_args());
        for (key, value) in arca.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        wrapped
    } else {
        arca
    };
    let out = cmd.env_remove("ARCA_PASSWORD").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("owner=0"), "{stderr}");
}
