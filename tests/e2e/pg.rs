//! `arca pg archive-wal` and `arca pg restore-wal`: first as commands on
//! their own (idempotence, conflicts, refusals, silence for an absent
//! file), then as a real PostgreSQL server's archive_command, its archived
//! segments fetched back and compared byte for byte with its pg_wal.
//!
//! The server test needs Debian's postgresql package
//! (`scripts/test-servers.sh`); without it the test says so and passes,
//! unless `ARCA_TEST_REQUIRE_SERVERS` is set. As root (CI) the server and
//! every arca command it runs run as the `postgres` user, as PostgreSQL
//! refuses to run as root.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::util::{Env, expect_failure, random_bytes, running_as_root};

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

/// The newest installed PostgreSQL's bin directory.
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    found.sort();
    let candidate = [found
        .last()
        .map(|(_, bin)| bin.join("initdb"))
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/<version>/bin/initdb"))];
    crate::servers::find("PostgreSQL", &candidate).map(|initdb| initdb.parent().unwrap().into())
}

/// Runs commands as the user PostgreSQL runs as: `postgres` under root,
/// else this user.
struct As {
    root: bool,
}

impl As {
    fn cmd(&self, program: &Path) -> Command {
        if self.root {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    fn ok(&self, program: &Path, args: &[&str]) -> Output {
        let out = self.cmd(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{} {args:?} failed\nstdout: {}\nstderr: {}",
            program.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

/// A running server, stopped at once when dropped (also when the test
/// fails).
struct Server<'a> {
    user: &'a As,
    pg_ctl: PathBuf,
    data: PathBuf,
}

impl Drop for Server<'_> {
    fn drop(&mut self) {
        let _ = self
            .user
            .cmd(&self.pg_ctl)
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&self.data)
            .output();
    }
}

#[test]
fn pg_archive_command_of_a_real_server_archives_every_segment() {
    let Some(bin) = postgres_bin() else {
        return;
    };
    let user = As {
        root: running_as_root(),
    };
    let scratch = tempfile::tempdir().unwrap();
    fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let work = scratch.path().join("work");
    fs::create_dir(&work).unwrap();
    // The binary and everything the server's archive_command touches must
    // be reachable by the postgres user.
    let arca = work.join("arca");
    fs::copy(env!("CARGO_BIN_EXE_arca"), &arca).unwrap();
    fs::set_permissions(&arca, fs::Permissions::from_mode(0o755)).unwrap();
    let password = work.join("password");
    fs::write(&password, "pg archive password\n").unwrap();
    fs::set_permissions(&password, fs::Permissions::from_mode(0o600)).unwrap();
    if user.root {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&work)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let (repo, data) = (work.join("repo"), work.join("data"));
    let s = |p: &Path| p.display().to_string();
    let arca_args = |args: &[&str]| {
        let mut all = vec![
            "-r".to_string(),
            s(&repo),
            "--password-file".into(),
            s(&password),
            "--no-cache".into(),
        ];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    };
    let run_arca = |args: &[&str]| {
        user.cmd(&arca)
            .args(arca_args(args))
            .env_remove("ARCA_REPOSITORY")
            .env_remove("ARCA_PASSWORD")
            .output()
            .unwrap()
    };
    let out = run_arca(&["init"]);
    assert!(out.status.success(), "{out:?}");
    user.ok(
        &bin.join("initdb"),
        &["-D", &s(&data), "-A", "trust", "-U", "postgres"],
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let archive_command = format!(
        "{} -q -r {} --password-file {} --no-cache pg archive-wal %p",
        s(&arca),
        s(&repo),
        s(&password)
    );
    let conf = format!(
        "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
         archive_mode = on\narchive_command = '{archive_command}'\narchive_timeout = 0\n\
         checkpoint_timeout = 1h\nmax_wal_size = 4GB\nfsync = off\n",
        s(&work)
    );
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .unwrap();
    std::io::Write::write_all(&mut file, conf.as_bytes()).unwrap();
    drop(file);
    let pg_ctl = bin.join("pg_ctl");
    user.ok(
        &pg_ctl,
        &[
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            &s(&data),
            "-l",
            &s(&work.join("log")),
        ],
    );
    let _server = Server {
        user: &user,
        pg_ctl,
        data: data.clone(),
    };
    let psql = |sql: &str| -> String {
        let out = user.ok(
            &bin.join("psql"),
            &[
                "-h",
                &s(&work),
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atqc",
                sql,
            ],
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    psql("create table trades (id bigint, note text)");
    let mut switched = Vec::new();
    for round in 0..4 {
        psql(&format!(
            "insert into trades select g, repeat('x', 300) from generate_series({}, {}) g",
            round * 20_000,
            round * 20_000 + 19_999
        ));
        switched.push(psql("select pg_walfile_name(pg_switch_wal())"));
    }
    switched.dedup();
    let last = switched.last().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let row = psql(
            "select archived_count, failed_count, coalesce(last_archived_wal, '') from pg_stat_archiver",
        );
        let fields: Vec<&str> = row.split('|').collect();
        assert_eq!(
            fields[1],
            "0",
            "archive_command failed: {row}; see {}",
            s(&work.join("log"))
        );
        if fields[2] >= last.as_str() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not archived in time: {row}, waiting for {last}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let out_dir = work.join("out");
    user.ok(Path::new("mkdir"), &[&s(&out_dir)]);
    for name in &switched {
        let target = out_dir.join(name);
        let out = run_arca(&["-q", "pg", "restore-wal", name, &s(&target)]);
        assert!(out.status.success(), "restore-wal {name}: {out:?}");
        assert!(out.stderr.is_empty(), "{out:?}");
        let original = fs::read(data.join("pg_wal").join(name)).unwrap();
        assert_eq!(original.len(), 16 << 20, "a default-sized segment");
        assert!(
            fs::read(&target).unwrap() == original,
            "{name} differs from pg_wal"
        );
    }
    let absent = run_arca(&[
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
    let check = run_arca(&["check", "--read-data"]);
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
