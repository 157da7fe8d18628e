//! Helpers for driving the real `arca` binary against temporary trees.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse battery staple";
pub const MIN_CHUNK: usize = 512 * 1024;
pub const MAX_CHUNK: usize = 8 * 1024 * 1024;

/// A scratch directory with a repository path inside it (or, for remote
/// storage, a repository address and the environment that reaches it).
pub struct Env {
    pub dir: TempDir,
    pub repo: PathBuf,
    /// A remote repository's address, used instead of `repo`.
    pub address: Option<String>,
    /// Extra environment for every command.
    pub vars: Vec<(String, String)>,
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        Env {
            dir,
            repo,
            address: None,
            vars: Vec::new(),
        }
    }

    /// An Env whose repository is `address`, reached with `vars`.
    pub fn remote(address: String, vars: Vec<(String, String)>) -> Env {
        Env {
            address: Some(address),
            vars,
            ..Env::new()
        }
    }

    /// The repository address commands get.
    pub fn address(&self) -> String {
        self.address
            .clone()
            .unwrap_or_else(|| self.repo.display().to_string())
    }

    /// An Env with an initialised repository.
    pub fn with_repo() -> Env {
        let env = Env::new();
        env.ok(&["init"]);
        env
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A command with the repository and password in the environment.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_arca"));
        cmd.args(args)
            .env_remove("ARCA_PASSWORD_FILE")
            .env_remove("ARCA_PASSWORD_COMMAND")
            .env_remove("ARCA_TO_REPOSITORY")
            .env_remove("ARCA_TO_PASSWORD")
            .env_remove("ARCA_TO_PASSWORD_FILE")
            .env_remove("ARCA_TO_PASSWORD_COMMAND")
            .env("ARCA_REPOSITORY", self.address())
            .env("ARCA_PASSWORD", PASSWORD)
            // Caches stay inside the test's scratch directory.
            .env("ARCA_CACHE_DIR", self.dir.path().join("cache"))
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and requires exit code 0; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "arca {args:?} failed\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs with --json and parses stdout.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}): {text}"))
    }

    /// Takes a snapshot and returns its JSON result.
    pub fn snapshot(&self, paths: &[&Path]) -> Value {
        let mut args = vec!["snapshot"];
        let owned: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        args.extend(owned.iter().map(String::as_str));
        self.json(&args)
    }
}

/// Asserts an exit code and returns stderr; stderr must be one line with no
/// panic or backtrace.
pub fn expect_failure(out: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{stderr}"
    );
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr}"
    );
    stderr
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn write_file(path: &Path, bytes: &[u8], mode: u32) {
    fs::write(path, bytes).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Compares two trees entry by entry: kind, bytes, mode, mtime (ns) and
/// symlink targets. Panics naming the first difference.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let a = fs::symlink_metadata(expected).unwrap();
    let b = fs::symlink_metadata(actual)
        .unwrap_or_else(|e| panic!("{} missing: {e}", actual.display()));
    let what = actual.display();
    assert_eq!(a.file_type(), b.file_type(), "type of {what}");
    if !a.file_type().is_symlink() {
        assert_eq!(a.mode() & 0o7777, b.mode() & 0o7777, "mode of {what}");
    }
    assert_eq!(
        (a.mtime(), a.mtime_nsec()),
        (b.mtime(), b.mtime_nsec()),
        "mtime of {what}"
    );
    if a.is_file() {
        assert_eq!(a.len(), b.len(), "size of {what}");
        assert!(
            fs::read(expected).unwrap() == fs::read(actual).unwrap(),
            "content of {what}"
        );
    } else if a.file_type().is_symlink() {
        assert_eq!(
            fs::read_link(expected).unwrap(),
            fs::read_link(actual).unwrap(),
            "target of {what}"
        );
    } else if a.is_dir() {
        let mut names: Vec<_> = fs::read_dir(expected)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let mut got: Vec<_> = fs::read_dir(actual)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        got.sort();
        assert_eq!(names, got, "entries of {what}");
        for name in names {
            assert_same_tree(&expected.join(&name), &actual.join(&name));
        }
    }
}

/// Where a source path lands under a restore target.
pub fn restored(target: &Path, source: &Path) -> PathBuf {
    let source = source.canonicalize().unwrap();
    target.join(source.strip_prefix("/").unwrap())
}

/// Every regular file below `dir`.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_below(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Whether the tests run as root (the owner of /proc/self is the effective
/// user of this process, which is dumpable).
pub fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Runs arca without the capabilities that let root read any file, so a
/// mode-000 file is unreadable whoever runs the tests.
pub fn without_dac_override(env: &Env, args: &[&str]) -> Output {
    let root = running_as_root();
    let mut cmd = env.cmd(args);
    if !root {
        return cmd.output().unwrap();
    }
    let mut wrapped = Command::new("setpriv");
    wrapped
        .args([
            "--inh-caps=-dac_override,-dac_read_search",
            "--bounding-set=-dac_override,-dac_read_search",
        ])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .stdin(Stdio::null());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped.output().unwrap()
}

/// Every file below `dir` whose name starts with `.tmp` (what an atomic
/// write leaves while it is under way).
pub fn temporaries(dir: &Path) -> Vec<PathBuf> {
    if !dir.exists() {
        return Vec::new();
    }
    files_below(dir)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(".tmp"))
        })
        .collect()
}

/// The `-v` transfer summary line for the repository: (data pack reads,
/// bytes read, bytes written).
pub fn transfers(stderr: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains(" requests, "))
        .unwrap_or_else(|| panic!("no transfer summary in: {stderr}"));
    let number_before = |label: &str| -> u64 {
        let end = line
            .find(label)
            .unwrap_or_else(|| panic!("{label} in {line}"));
        line[..end]
            .trim_end()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        number_before(" data pack reads"),
        number_before(" bytes read"),
        number_before(" bytes written"),
    )
}

/// A stand-in for pg_basebackup: writes a tar stream shaped like its
/// output (or, with `FAIL` in its environment, half of one and fails).
pub fn fake_pg_basebackup(env: &Env) -> String {
    let data = env.path("fake-data");
    std::fs::create_dir_all(data.join("base/1")).unwrap();
    std::fs::write(
        data.join("backup_label"),
        "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nSTART TIMELINE: 1\n",
    )
    .unwrap();
    std::fs::write(data.join("PG_VERSION"), "16\n").unwrap();
    std::fs::write(data.join("base/1/1259"), random_bytes(200_000, 9)).unwrap();
    std::fs::write(
        data.join("backup_manifest"),
        "{ \"Files\": [],\n\"WAL-Ranges\": [\n{ \"Timeline\": 1, \"Start-LSN\": \"0/2000028\", \"End-LSN\": \"0/2000100\" }\n],\n\"Manifest-Checksum\": \"00\"}\n",
    )
    .unwrap();
    let script = env.path("pg_basebackup");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncd {}\nif [ -n \"$FAIL\" ]; then tar -cf - base | head -c 3000; exit 1; fi\nexec tar --owner=4321 --group=4321 -cf - backup_label PG_VERSION base backup_manifest\n",
            data.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script.display().to_string()
}
