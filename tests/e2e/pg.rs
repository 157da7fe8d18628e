//! `arca pg archive-wal` and `arca pg restore-wal`: first as commands on
//! their own (idempotence, conflicts, refusals, silence for an absent
//! file), then as a real PostgreSQL server's archive_command, its archived
//! segments fetched back and compared byte for byte with its pg_wal.
//!
//! The server test runs a real server (see `pgcluster`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::pgcluster::{Cluster, s};
use crate::util::{Env, expect_failure, random_bytes};

const SEGMENT: &str = "000000010000000000000001";

#[test]
fn pg_archive_wal_is_idempotent_and_refuses_conflicts_and_other_names() {
    let env = Env::with_repo();
    let wal = env.path("pg_wal");
    fs::create_dir(&wal).unwrap();
    let file = wal.join(SEGMENT);
    fs::write(&file, random_bytes(3 << 20, 1)).unwrap();
    let path = file.display().to_string();
    let out = env.run(&["-q", "pg", "archive-wal", "--verify-upload", &path]);
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    // -v ends with one transfer summary.
    let verbose = env.run(&["-v", "pg", "archive-wal", &path]);
    let said = String::from_utf8_lossy(&verbose.stderr);
    assert_eq!(said.matches(" requests, ").count(), 1, "{said}");
    // Archiving the same file again (PostgreSQL retries after a crash).
    let again = env.json(&["pg", "archive-wal", &path]);
    crate::json_fields::assert_documented(&again, "pg archive-wal");
    assert_eq!(again["stored"], false);
    let stored: Vec<_> = fs::read_dir(env.repo.join("wal")).unwrap().collect();
    assert_eq!(stored.len(), 1);

    fs::write(&file, random_bytes(3 << 20, 2)).unwrap();
    let err = expect_failure(&env.run(&["pg", "archive-wal", &path]), 1);
    assert!(
        err.contains(SEGMENT) && err.contains("different content"),
        "{err}"
    );

    let other = wal.join("RECOVERYXLOG");
    fs::write(&other, b"x").unwrap();
    let err = expect_failure(
        &env.run(&["pg", "archive-wal", &other.display().to_string()]),
        2,
    );
    assert!(err.contains("RECOVERYXLOG"), "{err}");
    let err = expect_failure(&env.run(&["pg", "restore-wal", "../x", "out"]), 2);
    assert!(err.contains("../x"), "{err}");
}

#[test]
fn pg_restore_wal_is_silent_when_absent_and_leaves_nothing_when_damaged() {
    let env = Env::with_repo();
    let content = random_bytes((1 << 20) + 7, 3);
    let file = env.path(SEGMENT);
    fs::write(&file, &content).unwrap();
    env.ok(&["pg", "archive-wal", &file.display().to_string()]);
    let out = env.path("out");
    let target = out.display().to_string();
    let quiet = env.run(&["-q", "pg", "restore-wal", SEGMENT, &target]);
    assert_eq!(quiet.status.code(), Some(0));
    assert!(quiet.stdout.is_empty() && quiet.stderr.is_empty());
    assert_eq!(fs::read(&out).unwrap(), content);
    let json = env.json(&["pg", "restore-wal", SEGMENT, &target]);
    crate::json_fields::assert_documented(&json, "pg restore-wal");
    assert_eq!(json["size"], content.len() as u64);

    let absent = env.run(&["pg", "restore-wal", "000000010000000000000002", &target]);
    assert_eq!(absent.status.code(), Some(1));
    assert!(absent.stdout.is_empty() && absent.stderr.is_empty());

    let object = fs::read_dir(env.repo.join("wal"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut bytes = fs::read(&object).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::set_permissions(&object, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&object, bytes).unwrap();
    let fresh = env.path("fresh");
    let err = expect_failure(
        &env.run(&["pg", "restore-wal", SEGMENT, &fresh.display().to_string()]),
        1,
    );
    let name = object.file_name().unwrap().to_str().unwrap();
    assert!(err.contains(name) && err.contains(SEGMENT), "{err}");
    assert!(!fresh.exists());
    let leftovers: Vec<_> = fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with(".arca-wal"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let check = env.run(&["check", "--read-data"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&check.stdout).contains(name));
}

#[test]
fn copy_copies_wal_files_once() {
    let env = Env::with_repo();
    let file = env.path(SEGMENT);
    fs::write(&file, random_bytes(2 << 20, 4)).unwrap();
    env.ok(&["pg", "archive-wal", &file.display().to_string()]);
    let to = env.path("offsite");
    let to_arg = to.display().to_string();
    let pw = env.path("pw");
    fs::write(&pw, crate::util::PASSWORD).unwrap();
    let pw_arg = pw.display().to_string();
    env.ok(&["--password-file", &pw_arg, "-r", &to_arg, "init"]);
    let copy = ["copy", "--to", &to_arg, "--to-password-file", &pw_arg];
    let out = env.run(&copy);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("copied 1 WAL file (2.00 MiB), 0 already there"),
        "{out:?}"
    );
    let json = env.json(&copy);
    assert_eq!(
        json["snapshots_copied"], 0,
        "stdout stays one JSON document"
    );
    env.ok(&copy);
    assert_eq!(fs::read_dir(to.join("wal")).unwrap().count(), 1);
    let restored = env.path("restored");
    env.ok(&[
        "-r",
        &to_arg,
        "pg",
        "restore-wal",
        SEGMENT,
        &restored.display().to_string(),
    ]);
    assert_eq!(fs::read(&restored).unwrap(), fs::read(&file).unwrap());
}

#[test]
fn pg_archive_command_of_a_real_server_archives_every_segment() {
    let Some(cluster) = Cluster::new() else {
        return;
    };
    let mut node = cluster.initdb(
        "data",
        &cluster.archive_command(),
        "archive_timeout = 0\ncheckpoint_timeout = 1h\nmax_wal_size = 4GB\nfsync = off",
    );
    node.start(&[]);
    node.psql("create table trades (id bigint, note text)");
    let mut switched = Vec::new();
    for round in 0..4 {
        node.psql(&format!(
            "insert into trades select g, repeat('x', 300) from generate_series({}, {}) g",
            round * 20_000,
            round * 20_000 + 19_999
        ));
        switched.push(node.psql("select pg_walfile_name(pg_switch_wal())"));
    }
    switched.dedup();
    node.wait_archived(switched.last().unwrap(), false);
    let out_dir = cluster.work.join("out");
    cluster.user.ok(Path::new("mkdir"), &[&s(&out_dir)]);
    for name in &switched {
        let target = out_dir.join(name);
        let out = cluster.arca(&["-q", "pg", "restore-wal", name, &s(&target)]);
        assert!(out.status.success(), "restore-wal {name}: {out:?}");
        assert!(out.stderr.is_empty(), "{out:?}");
        let original = fs::read(node.data.join("pg_wal").join(name)).unwrap();
        assert_eq!(original.len(), 16 << 20, "a default-sized segment");
        assert!(
            fs::read(&target).unwrap() == original,
            "{name} differs from pg_wal"
        );
    }
    let absent = cluster.arca(&[
        "pg",
        "restore-wal",
        "0000000100000000000000FF",
        &s(&out_dir.join("x")),
    ]);
    assert_eq!(absent.status.code(), Some(1));
    assert!(
        absent.stdout.is_empty() && absent.stderr.is_empty(),
        "{absent:?}"
    );
    let check = cluster.arca(&["check", "--read-data"]);
    assert!(check.status.success(), "{check:?}");
    let said = String::from_utf8_lossy(&check.stderr);
    assert!(said.contains("WAL objects"), "{said}");
}

/// On remote storage (no staging: the object is assembled in memory and
/// stored with one write; read back in ranges).
fn remote_round_trip(server: &crate::servers::Server) {
    let env = server.env("wal");
    env.ok(&["init"]);
    let wal = env.path("pg_wal");
    fs::create_dir(&wal).unwrap();
    let files = [
        (SEGMENT, random_bytes((5 << 20) + 3, 7)),
        (
            "00000002.history",
            b"1\t0/3000000\tno recovery target specified\n".to_vec(),
        ),
        ("000000010000000000000002", Vec::new()),
    ];
    for (name, content) in &files {
        let path = wal.join(name);
        fs::write(&path, content).unwrap();
        let path = path.display().to_string();
        env.ok(&["pg", "archive-wal", &path]);
        env.ok(&["pg", "archive-wal", &path]);
    }
    for (name, content) in &files {
        let out = env.path(&format!("restored-{name}"));
        env.ok(&["pg", "restore-wal", name, &out.display().to_string()]);
        assert!(fs::read(&out).unwrap() == *content, "{name}");
    }
    let absent = env.run(&["pg", "restore-wal", "00000003.history", "x"]);
    assert_eq!(absent.status.code(), Some(1));
    assert!(
        absent.stdout.is_empty() && absent.stderr.is_empty(),
        "{absent:?}"
    );
    env.ok(&["check", "--read-data"]);
    assert_eq!(
        fs::read_dir(server.storage("wal").join("wal"))
            .unwrap()
            .count(),
        3
    );
}

#[test]
fn pg_wal_on_s3() {
    let Some(server) = crate::servers::Server::s3() else {
        return;
    };
    remote_round_trip(&server);
}

#[test]
fn pg_wal_on_sftp() {
    let Some(server) = crate::servers::Server::sftp() else {
        return;
    };
    remote_round_trip(&server);
}

/// The agent's socket in `env`'s cache directory, once there is one.
fn agent_socket(env: &Env) -> Option<std::path::PathBuf> {
    fs::read_dir(env.path("cache").join("agents"))
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "sock"))
}

/// Waits (bounded) until `ready` holds.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !ready() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Whether an agent holds the lock beside `socket`.
fn agent_running(socket: &Path) -> bool {
    let lock = fs::File::open(socket.with_extension("lock")).unwrap();
    let free = lock.try_lock_shared().is_ok();
    !free
}

#[test]
fn pg_archive_wal_through_the_agent_answers_as_a_direct_call_would() {
    let env = Env::with_repo();
    let wal = env.path("pg_wal");
    fs::create_dir(&wal).unwrap();
    let file = |name: &str, seed: u64| {
        let path = wal.join(name);
        fs::write(&path, random_bytes(3 << 20, seed)).unwrap();
        path.display().to_string()
    };
    // No agent yet: the call archives the file itself and starts one.
    let first = env.json(&["pg", "archive-wal", "--agent", &file(SEGMENT, 1)]);
    crate::json_fields::assert_documented(&first, "pg archive-wal");
    assert_eq!(
        (&first["stored"], &first["agent"]),
        (&true.into(), &false.into())
    );
    wait_for("the agent never listened", || {
        agent_socket(&env).is_some_and(|s| std::os::unix::net::UnixStream::connect(s).is_ok())
    });
    let socket = agent_socket(&env).unwrap();
    let mode = fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    let dir_mode = fs::metadata(socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!((mode, dir_mode), (0o600, 0o700));

    let second_name = "000000010000000000000002";
    let second = env.json(&["pg", "archive-wal", "--agent", &file(second_name, 2)]);
    assert_eq!(
        (&second["stored"], &second["agent"]),
        (&true.into(), &true.into())
    );
    let again = env.json(&["pg", "archive-wal", "--agent", &file(second_name, 2)]);
    assert_eq!(
        (&again["stored"], &again["agent"]),
        (&false.into(), &true.into())
    );
    assert_eq!(again["object"], second["object"]);
    // Another file under a stored name: the agent's refusal, word for word.
    let err = expect_failure(
        &env.run(&["pg", "archive-wal", "--agent", &file(second_name, 3)]),
        1,
    );
    assert!(
        err.contains(second_name) && err.contains("different content"),
        "{err}"
    );
    let out = env.path("out");
    fs::write(wal.join(second_name), random_bytes(3 << 20, 2)).unwrap();
    env.ok(&["pg", "restore-wal", second_name, &out.display().to_string()]);
    assert_eq!(fs::read(&out).unwrap(), random_bytes(3 << 20, 2));

    // A repository made anew at the same address: the agent's key is not
    // its key. It answers nothing and leaves; the call archives the file
    // into the new repository itself.
    fs::remove_dir_all(&env.repo).unwrap();
    env.ok(&["init"]);
    let third_name = "000000010000000000000003";
    let third = env.json(&["pg", "archive-wal", "--agent", &file(third_name, 4)]);
    assert_eq!(
        (&third["stored"], &third["agent"]),
        (&true.into(), &false.into())
    );
    env.ok(&["pg", "restore-wal", third_name, &out.display().to_string()]);
    env.ok(&["check", "--read-data"]);

    // A new agent serves the new repository.
    wait_for("no new agent took over", || {
        let again = env.json(&[
            "pg",
            "archive-wal",
            "--agent",
            &wal.join(third_name).display().to_string(),
        ]);
        again["agent"] == true
    });
    // Its cache directory removed, an agent exits at once.
    let socket = agent_socket(&env).unwrap();
    let lock = fs::File::open(socket.with_extension("lock")).unwrap();
    assert!(agent_running(&socket));
    fs::remove_dir_all(env.path("cache")).unwrap();
    wait_for("the agent did not exit", || lock.try_lock_shared().is_ok());

    // A caller with another password is not served: it fails as it would
    // without the agent, and the agent leaves.
    let fourth = file("000000010000000000000004", 5);
    env.ok(&["pg", "archive-wal", "--agent", &fourth]);
    wait_for("no agent started", || {
        agent_socket(&env).is_some_and(|s| std::os::unix::net::UnixStream::connect(s).is_ok())
    });
    let socket = agent_socket(&env).unwrap();
    let mut stranger = env.cmd(&["pg", "archive-wal", "--agent", &fourth]);
    let refused = stranger
        .env("ARCA_PASSWORD", "not the password")
        .output()
        .unwrap();
    expect_failure(&refused, 12);
    wait_for("the agent did not leave", || !agent_running(&socket));
}

#[test]
fn pg_backup_and_restore_refuse_what_cannot_work_and_change_nothing() {
    let env = Env::with_repo();
    let fake = crate::util::fake_pg_basebackup(&env);
    // A time before anything in the repository.
    let before = "2001-01-01T00:00:00Z";
    let backup = env.json(&["pg", "backup", "--pg-basebackup", &fake]);
    crate::json_fields::assert_documented_union(&backup, &["snapshot-object", "pg backup"]);
    assert_eq!(backup["backup"]["start_wal"], "000000010000000000000002");
    assert_eq!(backup["backup"]["stop_lsn"], "0/2000100");

    // A failing pg_basebackup saves nothing.
    let mut failing = env.cmd(&["pg", "backup", "--pg-basebackup", &fake]);
    let out = failing.env("FAIL", "1").output().unwrap();
    let err = expect_failure(&out, 1);
    assert!(
        err.contains("failed") && err.contains("no base backup was saved"),
        "{err}"
    );
    assert_eq!(env.json(&["snapshots"]).as_array().unwrap().len(), 1);

    // No base backup ended by then.
    let err = expect_failure(
        &env.run(&[
            "pg",
            "restore",
            "--as-of",
            before,
            "--target",
            &env.path("early").display().to_string(),
        ]),
        1,
    );
    assert!(err.contains("no base backup that ended by"), "{err}");
    assert!(!env.path("early").exists());

    // A target that is not empty is refused and left as it is.
    let full = env.path("full");
    fs::create_dir(&full).unwrap();
    fs::write(full.join("mine"), b"keep").unwrap();
    let err = expect_failure(
        &env.run(&[
            "pg",
            "restore",
            "--latest",
            "--target",
            &full.display().to_string(),
        ]),
        1,
    );
    assert!(err.contains("is not empty"), "{err}");
    assert_eq!(fs::read_dir(&full).unwrap().count(), 1);

    // A snapshot that is no base backup.
    let src = env.path("src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let plain = env.snapshot(&[&src]);
    let err = expect_failure(
        &env.run(&[
            "pg",
            "restore",
            "--latest",
            "--snapshot",
            plain["short_id"].as_str().unwrap(),
            "--target",
            &env.path("plain").display().to_string(),
        ]),
        1,
    );
    assert!(err.contains("is not a base backup"), "{err}");

    let target = env.path("recovered");
    let done = env.json(&[
        "pg",
        "restore",
        "--latest",
        "--target",
        &target.display().to_string(),
    ]);
    crate::json_fields::assert_documented(&done, "pg restore");
    assert_eq!(done["snapshot"], backup["id"]);
    assert!(done["target_time"].is_null());
    assert_eq!(
        fs::read(target.join("base/1/1259")).unwrap(),
        random_bytes(200_000, 9)
    );
    assert!(target.join("recovery.signal").is_file());
    let conf = fs::read_to_string(target.join("postgresql.auto.conf")).unwrap();
    let command = done["restore_command"].as_str().unwrap();
    assert!(
        command.contains("pg restore-wal --error-exit 255 %f \"%p\""),
        "{command}"
    );
    assert!(
        conf.contains("recovery_target_action = 'promote'"),
        "{conf}"
    );
    assert!(!conf.contains("recovery_target_time ="), "{conf}");
    assert!(done["start_command"].as_str().unwrap().contains("pg_ctl"));
    // The restore command works as written: it finds the repository and
    // says "absent" the quiet way.
    let shell = command
        .replace("%f", "000000010000000000000002")
        .replace("%p", &env.path("got").display().to_string());
    let out = std::process::Command::new("sh")
        .args(["-c", &shell])
        .env("ARCA_PASSWORD", crate::util::PASSWORD)
        .env("ARCA_REPOSITORY", "/nonexistent")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.is_empty(), "{out:?}");
    let mode = fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    // As root, everything (recovery.signal too) belongs to the backup's
    // owner, as the server that recovers runs as that user.
    if crate::util::running_as_root() {
        use std::os::unix::fs::MetadataExt;
        for path in [
            target.clone(),
            target.join("base/1/1259"),
            target.join("recovery.signal"),
        ] {
            assert_eq!(
                fs::metadata(&path).unwrap().uid(),
                4321,
                "{}",
                path.display()
            );
        }
    }
}
