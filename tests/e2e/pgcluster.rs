//! A real PostgreSQL server for the tests: made with initdb in a
//! temporary directory, listening on a free loopback port and a socket in
//! that directory, archiving through a copy of the arca binary; and the
//! commands around it. Needs Debian's postgresql package
//! (`scripts/test-servers.sh`); without it [`Cluster::new`] says so and
//! gives `None`, unless `ARCA_TEST_REQUIRE_SERVERS` is set. As root (CI)
//! the server and every command it runs run as the `postgres` user, as
//! PostgreSQL refuses to run as root.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::util::running_as_root;

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
pub struct As {
    pub root: bool,
}

impl As {
    pub fn cmd(&self, program: &Path) -> Command {
        if self.root {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    pub fn ok(&self, program: &Path, args: &[&str]) -> Output {
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

pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A scratch directory the postgres user can reach, with an arca binary,
/// a password file and a repository in it; servers made with
/// [`Cluster::initdb`] archive into that repository.
pub struct Cluster {
    pub user: As,
    pub bin: PathBuf,
    _scratch: tempfile::TempDir,
    pub work: PathBuf,
    pub arca: PathBuf,
    pub password: PathBuf,
    pub repo: PathBuf,
}

impl Cluster {
    /// `None` when PostgreSQL is not installed (and not required).
    pub fn new() -> Option<Cluster> {
        let bin = postgres_bin()?;
        let user = As {
            root: running_as_root(),
        };
        let scratch = tempfile::tempdir().unwrap();
        fs::set_permissions(scratch.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let work = scratch.path().join("work");
        fs::create_dir(&work).unwrap();
        // The binary and everything the server's commands touch must be
        // reachable by the postgres user.
        let arca = work.join("arca");
        fs::copy(env!("CARGO_BIN_EXE_arca"), &arca).unwrap();
        fs::set_permissions(&arca, fs::Permissions::from_mode(0o755)).unwrap();
        let password = work.join("password");
        fs::write(&password, "pg archive password\n").unwrap();
        fs::set_permissions(&password, fs::Permissions::from_mode(0o600)).unwrap();
        let cluster = Cluster {
            user,
            bin,
            repo: work.join("repo"),
            _scratch: scratch,
            work,
            arca,
            password,
        };
        cluster.chown(&cluster.work);
        let out = cluster.arca(&["init"]);
        assert!(out.status.success(), "{out:?}");
        Some(cluster)
    }

    /// Gives `path` (recursively) to the postgres user when running as root.
    pub fn chown(&self, path: &Path) {
        if self.user.root {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(path)
                .status()
                .unwrap();
            assert!(status.success());
        }
    }

    /// The global options that reach the repository.
    pub fn repo_args(&self) -> Vec<String> {
        vec![
            "-r".into(),
            s(&self.repo),
            "--password-file".into(),
            s(&self.password),
            "--cache-dir".into(),
            s(&self.work.join("cache")),
        ]
    }

    /// Runs arca as the postgres user on the repository.
    pub fn arca(&self, args: &[&str]) -> Output {
        self.user
            .cmd(&self.arca)
            .args(self.repo_args())
            .args(args)
            .env_remove("ARCA_REPOSITORY")
            .env_remove("ARCA_PASSWORD")
            .env_remove("ARCA_PASSWORD_FILE")
            .output()
            .unwrap()
    }

    /// The archive_command that stores into the repository.
    pub fn archive_command(&self) -> String {
        format!(
            "{} {} -q pg archive-wal %p",
            s(&self.arca),
            self.repo_args().join(" ")
        )
    }

    /// Makes a server's data directory `name` in the scratch directory,
    /// with `conf` appended to its postgresql.conf (after the port, socket
    /// directory and `archive_command`).
    pub fn initdb(&self, name: &str, archive_command: &str, conf: &str) -> Node<'_> {
        let data = self.work.join(name);
        self.user.ok(
            &self.bin.join("initdb"),
            &["-D", &s(&data), "-A", "trust", "-U", "postgres"],
        );
        let port = free_port();
        let text = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             archive_mode = on\narchive_command = '{archive_command}'\n{conf}\n",
            s(&self.work)
        );
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
        Node {
            cluster: self,
            data,
            port,
            running: false,
        }
    }

    /// A data directory made some other way (a recovery), to be started
    /// on its own port with `options` for the server.
    pub fn node(&self, data: &Path) -> Node<'_> {
        Node {
            cluster: self,
            data: data.to_path_buf(),
            port: free_port(),
            running: false,
        }
    }
}

/// One server's data directory; stopped at once when dropped (also when
/// the test fails).
pub struct Node<'a> {
    pub cluster: &'a Cluster,
    pub data: PathBuf,
    pub port: u16,
    running: bool,
}

impl Node<'_> {
    pub fn log(&self) -> PathBuf {
        self.data.with_extension("log")
    }

    /// `pg_ctl start` with the port and socket directory given on the
    /// command line and `settings` (`-c name=value`); its output.
    pub fn try_start(&mut self, settings: &[&str]) -> Output {
        let mut options = format!("-p {} -k {}", self.port, s(&self.cluster.work));
        for setting in settings {
            options.push_str(&format!(" -c {setting}"));
        }
        let out = self
            .cluster
            .user
            .cmd(&self.cluster.bin.join("pg_ctl"))
            .args(["start", "-w", "-t", "120", "-D"])
            .arg(&self.data)
            .arg("-l")
            .arg(self.log())
            .args(["-o", &options])
            .output()
            .unwrap();
        self.running = true;
        out
    }

    pub fn start(&mut self, settings: &[&str]) {
        let out = self.try_start(settings);
        assert!(
            out.status.success(),
            "server did not start: {out:?}\n{}",
            fs::read_to_string(self.log()).unwrap_or_default()
        );
    }

    /// Runs one statement; the rows, `|`-separated.
    pub fn psql(&self, sql: &str) -> String {
        let out = self.try_psql(sql);
        assert!(
            out.status.success(),
            "psql {sql:?} failed: {}\nserver log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            fs::read_to_string(self.log()).unwrap_or_default()
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    fn try_psql(&self, sql: &str) -> Output {
        self.cluster
            .user
            .cmd(&self.cluster.bin.join("psql"))
            .args([
                "-h",
                &s(&self.cluster.work),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atqc",
                sql,
            ])
            .output()
            .unwrap()
    }

    /// Waits until the archiver has archived `file` (or a later one);
    /// fails the test on any archiving failure unless `failures_allowed`.
    pub fn wait_archived(&self, file: &str, failures_allowed: bool) {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let row = self.psql(
                "select archived_count, failed_count, coalesce(last_archived_wal, '') from pg_stat_archiver",
            );
            let fields: Vec<&str> = row.split('|').collect();
            if !failures_allowed {
                assert_eq!(
                    fields[1],
                    "0",
                    "archive_command failed: {row}; see {}",
                    s(&self.log())
                );
            }
            if fields[2] >= file {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not archived in time: {row}, waiting for {file}; see {}",
                s(&self.log())
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the server has finished recovery and is open for writes.
    pub fn wait_promoted(&self) {
        let deadline = Instant::now() + Duration::from_secs(180);
        while self.psql("select pg_is_in_recovery()") != "f" {
            assert!(
                Instant::now() < deadline,
                "recovery did not finish; see {}",
                s(&self.log())
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Node<'_> {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .cluster
                .user
                .cmd(&self.cluster.bin.join("pg_ctl"))
                .args(["stop", "-m", "immediate", "-D"])
                .arg(&self.data)
                .output();
        }
    }
}
