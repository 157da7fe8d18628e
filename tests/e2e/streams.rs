//! Snapshots of streams: standard input and a command's output.

use std::fs;
use std::io::Write;
use std::process::Stdio;

use crate::util::*;

#[test]
fn stdin_is_stored_as_one_file() {
    let env = Env::with_repo();
    let data = random_bytes(3 << 20, 33);
    let mut child = env
        .cmd(&[
            "--json",
            "snapshot",
            "--stdin",
            "--stdin-name",
            "trades.sql",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["paths"][0], "/trades.sql");
    assert_eq!(result["summary"]["bytes_read"], data.len());

    let target = env.path("out");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert!(fs::read(target.join("trades.sql")).unwrap() == data);
}

#[test]
fn command_output_is_stored_and_a_failing_command_saves_nothing() {
    let env = Env::with_repo();
    let ok = env.json(&[
        "snapshot",
        "--stdin-from-command",
        "printf 'CREATE TABLE trades;\\n'",
        "--stdin-name",
        "dump.sql",
    ]);
    assert_eq!(ok["summary"]["total_bytes"], 21);
    let target = env.path("out");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(
        fs::read(target.join("dump.sql")).unwrap(),
        b"CREATE TABLE trades;\n"
    );

    let out = env.run(&["snapshot", "--stdin-from-command", "false"]);
    let stderr = expect_failure(&out, 1);
    assert!(
        stderr.contains("failed") && stderr.contains("no snapshot"),
        "{stderr}"
    );

    let out = env.run(&[
        "snapshot",
        "--stdin-from-command",
        "echo partial; echo 'pg_dump: connection refused' >&2; exit 2",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pg_dump: connection refused"),
        "the command's stderr is shown: {stderr}"
    );
    assert_eq!(
        env.json(&["snapshots"]).as_array().unwrap().len(),
        1,
        "only the good snapshot exists"
    );
}

/// What a failing command produced is thrown away whole: no pack of it is
/// left in the repository, so check has no stray to warn about.
#[test]
fn a_failed_stream_command_leaves_no_pack_behind() {
    let env = Env::with_repo();
    let packs = |env: &Env| -> Vec<std::path::PathBuf> {
        let mut found = Vec::new();
        for kind in ["data", "tree"] {
            let dir = env.repo.join(kind);
            for sub in fs::read_dir(&dir).into_iter().flatten().flatten() {
                found.extend(
                    fs::read_dir(sub.path())
                        .unwrap()
                        .flatten()
                        .map(|e| e.path()),
                );
            }
        }
        found
    };
    let before = packs(&env);
    // Enough output (random, so incompressible and unique) to fill packs.
    let out = env.run(&[
        "snapshot",
        "--stdin-from-command",
        "head -c 3000000 /dev/urandom; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        packs(&env),
        before,
        "the failed stream's packs were deleted"
    );
    let out = env.run(&["check"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("warning"),
        "{stderr}"
    );
}
