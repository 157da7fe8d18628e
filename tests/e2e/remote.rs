//! Repositories on real remote storage: an S3 server and an SFTP host on
//! loopback (see servers.rs), driven through the binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::servers::Server;
use crate::util::{Env, assert_same_tree, random_bytes, restored, transfers, write_file};

/// A small tree: a few MiB of incompressible data, small files, a subdir.
fn make_source(root: &Path, seed: u64) -> PathBuf {
    let src = root.join(format!("src-{seed}"));
    fs::create_dir_all(src.join("db/2026")).unwrap();
    write_file(
        &src.join("db/trades.bin"),
        &random_bytes(3 << 20, seed),
        0o640,
    );
    write_file(
        &src.join("db/2026/orders.bin"),
        &random_bytes(700_000, seed + 1),
        0o600,
    );
    for i in 0..20 {
        write_file(
            &src.join(format!("config-{i}.toml")),
            format!("strategy = {i}\nseed = {seed}\n").as_bytes(),
            0o644,
        );
    }
    src
}

/// Runs with `-v` and returns the transfer summary.
fn measured(env: &Env, args: &[&str]) -> (u64, u64, u64) {
    let mut all = vec!["-v"];
    all.extend_from_slice(args);
    let out = env.run(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "arca {args:?}: {stderr}");
    transfers(&stderr)
}

/// init → snapshot → snapshots → restore → check --read-data →
/// forget/prune → restore again.
fn round_trip(server: &Server) {
    let env = server.env("round-trip");
    let src = make_source(env.dir.path(), 1);
    env.ok(&["init"]);
    assert!(server.storage("round-trip").join("config").is_file());
    let first = env.snapshot(&[&src]);
    let listed = env.json(&["snapshots"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], first["id"]);

    let target = env.path("restore-1");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&target, &src));
    env.ok(&["check", "--read-data"]);

    write_file(&src.join("db/trades.bin"), &random_bytes(1 << 20, 9), 0o640);
    env.snapshot(&[&src]);
    env.ok(&["forget", "--keep-last", "1", "--prune"]);
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
    env.ok(&["check", "--read-data"]);
    let target = env.path("restore-2");
    env.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&target, &src));
}

#[test]
fn s3_round_trip() {
    let Some(server) = Server::s3() else { return };
    round_trip(&server);
}

#[test]
fn sftp_round_trip() {
    let Some(server) = Server::sftp() else { return };
    round_trip(&server);
}

/// With a warm metadata cache, listing, browsing and re-snapshotting an
/// unchanged tree read no data pack and next to nothing else; without the
/// cache the same commands download the metadata.
#[test]
fn warm_cache_transfers_no_data_packs() {
    let Some(server) = Server::s3() else { return };
    let env = server.env("cached");
    let src = make_source(env.dir.path(), 2);
    let repo_id = env.json(&["init"])["id"].as_str().unwrap().to_string();
    env.snapshot(&[&src]);
    let id = env.json(&["snapshots"])[0]["short_id"]
        .as_str()
        .unwrap()
        .to_string();
    let cache = env.dir.path().join("cache");
    assert!(cache.join("CACHEDIR.TAG").is_file());

    let (packs, read, _) = measured(&env, &["snapshots"]);
    assert_eq!(packs, 0);
    // The config and the key file, nothing else.
    assert!(read < 2048, "{read} bytes read with a warm cache");

    for args in [
        vec!["ls", id.as_str()],
        vec!["find", "orders.bin"],
        vec!["diff", id.as_str(), "latest"],
    ] {
        let (packs, read, _) = measured(&env, &args);
        assert_eq!((packs, read < 2048), (0, true), "{args:?}: {read} bytes");
    }
    let (packs, read, written) = measured(&env, &["snapshot", src.to_str().unwrap()]);
    assert_eq!(packs, 0);
    assert!(read < 2048, "{read} bytes read re-snapshotting");
    // The new snapshot file and its index, no pack.
    assert!(written < 4096, "{written} bytes written");

    let (packs, cold, _) = measured(&env, &["--no-cache", "ls", id.as_str()]);
    assert_eq!(packs, 0, "trees live in tree packs");
    assert!(
        cold > read + 1024,
        "without the cache ls read only {cold} bytes"
    );

    // A snapshot removed by another client leaves the cache at the next
    // listing.
    let cached = cache.join(&repo_id).join("snapshots");
    let count = |dir: &Path| fs::read_dir(dir).unwrap().count();
    assert_eq!(count(&cached), 2);
    let stored = server.storage("cached").join("snapshots");
    let victim = fs::read_dir(&stored)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::remove_file(&victim).unwrap();
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);
    assert_eq!(count(&cached), 1);
    assert!(!cached.join(victim.file_name().unwrap()).exists());
}

/// Two hosts snapshotting into one bucket at the same moment both succeed,
/// and both snapshots check and restore.
#[test]
fn concurrent_writers_share_an_s3_repository() {
    let Some(server) = Server::s3() else { return };
    let env = server.env("shared");
    env.ok(&["init"]);
    let a = make_source(env.dir.path(), 3);
    let b = make_source(env.dir.path(), 4);
    let spawn = |src: &Path, host: &str| {
        env.cmd(&["snapshot", "--host", host, src.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn(&a, "alpha");
    let second = spawn(&b, "beta");
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    env.ok(&["check", "--read-data"]);
    for (src, host) in [(&a, "alpha"), (&b, "beta")] {
        let target = env.path(&format!("restore-{host}"));
        env.ok(&[
            "restore",
            "latest",
            "--host",
            host,
            "--target",
            target.to_str().unwrap(),
        ]);
        assert_same_tree(src, &restored(&target, src));
    }
}

/// Wrong credentials end in one clear line naming the repository.
#[test]
fn s3_wrong_credentials_fail_cleanly() {
    let Some(server) = Server::s3() else { return };
    let mut env = server.env("denied");
    for (key, value) in env.vars.iter_mut() {
        if key == "AWS_SECRET_ACCESS_KEY" {
            *value = "not-the-secret".to_string();
        }
    }
    let out = env.run(&["init"]);
    let stderr = crate::util::expect_failure(&out, 1);
    assert!(stderr.contains(&server.address("denied")), "{stderr}");
    assert!(stderr.contains("access denied"), "{stderr}");

    let address = format!("s3:http://127.0.0.1:{}/no-such-bucket/x", server.port);
    let env = Env::remote(address.clone(), server.vars.clone());
    let stderr = crate::util::expect_failure(&env.run(&["init"]), 1);
    assert!(stderr.contains(&address), "{stderr}");
    assert!(stderr.contains("bucket does not exist"), "{stderr}");
}

/// A snapshot travels local → S3 → SFTP → local, re-encrypted at each hop;
/// the last copy checks and restores to the original bytes, and running a
/// hop again copies nothing.
#[test]
fn copies_between_local_s3_and_sftp() {
    let (Some(s3), Some(sftp)) = (Server::s3(), Server::sftp()) else {
        return;
    };
    let mut vars = s3.vars.clone();
    vars.extend(sftp.vars.clone());
    let origin = Env::with_repo();
    let src = make_source(origin.dir.path(), 5);
    let snap = origin.snapshot(&[&src]);
    let on_s3 = Env::remote(s3.address("copies"), vars.clone());
    let on_sftp = Env::remote(sftp.address("copies"), vars.clone());
    let back = Env::with_repo();
    on_s3.ok(&["init"]);
    on_sftp.ok(&["init"]);

    let copy = |from: &Env, to: &Env| -> serde_json::Value {
        let out = from
            .cmd(&["--json", "copy", "--to", &to.address()])
            .envs(vars.iter().map(|(k, v)| (k, v)))
            .env("ARCA_TO_PASSWORD", crate::util::PASSWORD)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "copy to {}: {}",
            to.address(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let mut source_id = snap["id"].clone();
    for (from, to) in [(&origin, &on_s3), (&on_s3, &on_sftp), (&on_sftp, &back)] {
        let report = copy(from, to);
        assert_eq!(report["snapshots_copied"], 1, "{report}");
        assert_eq!(report["copied"][0]["source"], source_id);
        let again = copy(from, to);
        assert_eq!(again["snapshots_copied"], 0, "{again}");
        assert_eq!(again["snapshots_skipped"], 1, "{again}");
        let listed = to.json(&["snapshots"]);
        assert_eq!(listed.as_array().unwrap().len(), 1);
        assert_eq!(listed[0]["copied_from"]["snapshot"], source_id);
        source_id = listed[0]["id"].clone();
    }
    back.ok(&["check", "--read-data"]);
    let target = back.path("restore");
    back.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_same_tree(&src, &restored(&target, &src));
}
