//! Real storage servers on loopback for the remote-repository tests: an
//! S3 server (s3s-fs) and OpenSSH's sshd, each started per test as a
//! separate process and stopped when the handle drops.
//!
//! `scripts/test-servers.sh` installs both. Where one is missing, the test
//! says so on stderr and passes without running, unless
//! `ARCA_TEST_REQUIRE_SERVERS` is set (CI sets it), where it fails.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::Env;

pub const S3_ACCESS_KEY: &str = "arca-test-access";
pub const S3_SECRET_KEY: &str = "arca-test-secret-key";
pub const S3_BUCKET: &str = "arca-bucket";

/// Finds a server (or tool) binary, or explains why the test cannot run.
pub fn find(what: &str, candidates: &[PathBuf]) -> Option<PathBuf> {
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return Some(found.clone());
    }
    let message = format!(
        "{what} is not installed (looked at {}); run scripts/test-servers.sh",
        candidates
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if std::env::var_os("ARCA_TEST_REQUIRE_SERVERS").is_some() {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
    None
}

/// A free loopback port (the listener is dropped just before the server
/// binds it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `port` accepts connections or the child exits; bounded.
fn wait_for_port(child: &mut Child, port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "server exited with {status}: {}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "server did not listen on port {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A running server process and its scratch directory.
pub struct Server {
    child: Child,
    pub dir: TempDir,
    pub port: u16,
    /// Environment a client needs to reach it.
    pub vars: Vec<(String, String)>,
    kind: &'static str,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// An S3 server with one bucket, or `None` when s3s-fs is missing.
    pub fn s3() -> Option<Server> {
        let mut candidates = Vec::new();
        if let Some(path) = std::env::var_os("ARCA_TEST_S3S_FS") {
            candidates.push(PathBuf::from(path));
        }
        candidates.push(workspace().join("target/test-servers/bin/s3s-fs"));
        let binary = find("the S3 test server s3s-fs", &candidates)?;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir_all(root.join(S3_BUCKET)).unwrap();
        let port = free_port();
        let log = dir.path().join("server.log");
        let mut child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_ACCESS_KEY, "--secret-key", S3_SECRET_KEY])
            .arg(&root)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(Stdio::from(fs::File::create(&log).unwrap()))
            .spawn()
            .unwrap();
        wait_for_port(&mut child, port, &log);
        let vars = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), S3_ACCESS_KEY.to_string()),
            (
                "AWS_SECRET_ACCESS_KEY".to_string(),
                S3_SECRET_KEY.to_string(),
            ),
            ("AWS_REGION".to_string(), "us-east-1".to_string()),
        ];
        Some(Server {
            child,
            dir,
            port,
            vars,
            kind: "s3",
        })
    }

    /// An sshd on loopback that lets this user in with a generated key,
    /// and an `ssh` on PATH that uses a config naming it `arca-test`; or
    /// `None` when OpenSSH's server is missing.
    pub fn sftp() -> Option<Server> {
        let sshd = find("OpenSSH's sshd", &[PathBuf::from("/usr/sbin/sshd")])?;
        let ssh = find("OpenSSH's ssh", &[PathBuf::from("/usr/bin/ssh")])?;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["host_key", "client_key"] {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", ""])
                .arg("-f")
                .arg(d.join(key))
                .status()
                .unwrap();
            assert!(status.success(), "ssh-keygen failed");
        }
        fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        fs::set_permissions(d.join("authorized_keys"), fs::Permissions::from_mode(0o600)).unwrap();
        // sshd running as root wants its privilege separation directory.
        let _ = fs::create_dir_all("/run/sshd");
        let port = free_port();
        fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nPidFile {dir}/sshd.pid\n\
                 UsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nStrictModes no\n\
                 Subsystem sftp internal-sftp\nLogLevel ERROR\n",
                dir = d.display()
            ),
        )
        .unwrap();
        let host_key = fs::read_to_string(d.join("host_key.pub")).unwrap();
        let host_key: Vec<&str> = host_key.split_whitespace().take(2).collect();
        fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {}\n", host_key.join(" ")),
        )
        .unwrap();
        let user = std::env::var("USER").unwrap_or_else(|_| "root".to_string());
        fs::write(
            d.join("ssh_config"),
            format!(
                "Host arca-test\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n\
                 IdentityFile {dir}/client_key\n  IdentitiesOnly yes\n\
                 UserKnownHostsFile {dir}/known_hosts\n  BatchMode yes\n",
                dir = d.display()
            ),
        )
        .unwrap();
        let bin = d.join("bin");
        fs::create_dir(&bin).unwrap();
        fs::write(
            bin.join("ssh"),
            format!(
                "#!/bin/sh\nexec {} -F {}/ssh_config \"$@\"\n",
                ssh.display(),
                d.display()
            ),
        )
        .unwrap();
        fs::set_permissions(bin.join("ssh"), fs::Permissions::from_mode(0o755)).unwrap();
        let log = d.join("sshd.log");
        let mut child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(&mut child, port, &log);
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Some(Server {
            child,
            dir,
            port,
            vars: vec![("PATH".to_string(), path)],
            kind: "sftp",
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The address of a repository named `name` on this server.
    pub fn address(&self, name: &str) -> String {
        match self.kind {
            "s3" => format!("s3:http://127.0.0.1:{}/{S3_BUCKET}/{name}", self.port),
            _ => format!(
                "sftp:arca-test:{}/{name}",
                self.dir.path().join("files").display()
            ),
        }
    }

    /// An Env for a repository named `name` on this server.
    pub fn env(&self, name: &str) -> Env {
        Env::remote(self.address(name), self.vars.clone())
    }

    /// Where the server keeps the objects of repository `name`, to look at
    /// or damage them directly.
    pub fn storage(&self, name: &str) -> PathBuf {
        match self.kind {
            "s3" => self.dir.path().join("root").join(S3_BUCKET).join(name),
            _ => self.dir.path().join("files").join(name),
        }
    }
}
