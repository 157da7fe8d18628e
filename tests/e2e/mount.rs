//! `arca mount`: the repository as a read-only FUSE file system, checked
//! through the kernel like any program would see it: the whole `latest`
//! tree against its source, a single byte read from the middle of a large
//! file (counting data pack reads at the storage boundary, from `-v`), a
//! snapshot taken while mounted appearing in `snapshots/`, SIGINT or
//! SIGTERM unmounting with exit code 0, and every entry of a few thousand
//! showing one inode number in listings and `stat`, walk after walk and
//! mount after mount.
//!
//! Needs /dev/fuse and fusermount3 (scripts/test-servers.sh installs
//! Debian's fuse3); without them the tests say so and pass, unless
//! `ARCA_TEST_REQUIRE_SERVERS` is set.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{DirEntryExt, FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use crate::servers::Server;
use crate::util::{Env, assert_same_tree, random_bytes, restored, transfers, write_file};

const BIG: usize = 50 << 20;

/// The time both snapshots of [`exercise`] record.
const SAME_SECOND: &str = "2026-12-01T10:00:00Z";

/// Whether FUSE can be used here; panics instead of skipping when the
/// servers (and tools) are required.
fn fuse_available() -> bool {
    let fusermount = ["fusermount3", "fusermount"].iter().any(|name| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
    });
    if Path::new("/dev/fuse").exists() && fusermount {
        return true;
    }
    let message =
        "FUSE is not available (/dev/fuse and fusermount3 are needed; run scripts/test-servers.sh)";
    if std::env::var_os("ARCA_TEST_REQUIRE_SERVERS").is_some() {
        panic!("{message}");
    }
    eprintln!("skipping: {message}");
    false
}

/// Whether `point` is a mount point now (from /proc/self/mountinfo).
fn is_mounted(point: &Path) -> bool {
    let info = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let wanted = point.to_str().unwrap();
    info.lines()
        .any(|line| line.split_whitespace().nth(4) == Some(wanted))
}

/// A running `arca -v mount`; killed and lazily unmounted if a test fails
/// before it ends it.
struct Mounted {
    child: Child,
    point: PathBuf,
    log: PathBuf,
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if is_mounted(&self.point) {
            let _ = std::process::Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&self.point)
                .status();
        }
    }
}

impl Mounted {
    /// Mounts the repository of `env` on `point` with `-v` and waits
    /// (bounded) until the file system answers.
    fn start(env: &Env, point: &Path) -> Mounted {
        Mounted::start_with(env, point, "-v")
    }

    /// [`Mounted::start`] with `flag` (`-v` or `-q`) before the command;
    /// stdout goes to the same log as stderr.
    fn start_with(env: &Env, point: &Path, flag: &str) -> Mounted {
        fs::create_dir_all(point).unwrap();
        let point = point.canonicalize().unwrap();
        let log = env.path(&format!(
            "mount-{}.log",
            point.file_name().unwrap().to_string_lossy()
        ));
        let out = fs::File::create(&log).unwrap();
        let child = env
            .cmd(&[flag, "mount", point.to_str().unwrap()])
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut mounted = Mounted { child, point, log };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if is_mounted(&mounted.point) && mounted.point.join("snapshots").is_dir() {
                return mounted;
            }
            if let Some(status) = mounted.child.try_wait().unwrap() {
                panic!("arca mount exited with {status}: {}", mounted.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "not mounted within 60 s: {}",
                mounted.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` and waits (bounded) for the process to end; returns
    /// its exit status and stderr.
    fn stop(mut self, signal: libc::c_int) -> (ExitStatus, String) {
        // SAFETY: kill sends a signal to the child this test started.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) },
            0
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "still running 30 s after the signal: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(!is_mounted(&self.point), "still mounted after it exited");
        (status, self.stderr())
    }
}

/// A tree with a 50 MiB file, small files of several modes, an empty
/// file, a symlink and a nested directory.
fn make_source(root: &Path) -> PathBuf {
    let src = root.join("src");
    fs::create_dir_all(src.join("db/2026")).unwrap();
    write_file(&src.join("db/big.bin"), &random_bytes(BIG, 7), 0o640);
    write_file(&src.join("db/2026/orders.csv"), b"id,qty\n1,5\n", 0o600);
    write_file(&src.join("run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
    write_file(&src.join("empty"), b"", 0o644);
    std::os::unix::fs::symlink("db/2026/orders.csv", src.join("orders")).unwrap();
    src
}

fn snapshot_names(point: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(point.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// The directory under `point/snapshots/` of the snapshot that holds the
/// source path `path`. Names give the time to the second, and two
/// snapshots of one second sort by id: each is found by what it holds.
fn holding(point: &Path, path: &Path) -> PathBuf {
    snapshot_names(point)
        .into_iter()
        .map(|name| point.join("snapshots").join(name))
        .find(|dir| restored(dir, path).is_dir())
        .unwrap_or_else(|| panic!("no snapshot holds {}", path.display()))
}

/// The whole check, on the repository of `env` (initialised here).
fn exercise(env: &Env) {
    let src = make_source(env.dir.path());
    env.ok(&["init"]);
    // Both snapshots of this test record one time: their directories
    // differ only in the id, as when two land in the same second.
    env.ok(&["snapshot", src.to_str().unwrap(), "--time", SAME_SECOND]);

    let mounted = Mounted::start(env, &env.path("mnt"));
    let point = mounted.point.clone();
    // The newest snapshot, through `latest`, is the source: content,
    // modes, mtimes, symlinks.
    let latest = point.join("latest");
    assert!(fs::read_link(&latest).unwrap().starts_with("snapshots/"));
    assert_same_tree(&src, &restored(&latest, &src));
    let host = fs::read_dir(point.join("hosts")).unwrap().count();
    assert_eq!(host, 1, "one host directory");

    // A snapshot taken while mounted shows up in snapshots/.
    let other = env.path("other");
    fs::create_dir(&other).unwrap();
    write_file(&other.join("note.txt"), b"taken while mounted\n", 0o644);
    env.ok(&["snapshot", other.to_str().unwrap(), "--time", SAME_SECOND]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while snapshot_names(&point).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the new snapshot did not appear: {:?}",
            snapshot_names(&point)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        fs::read(restored(&holding(&point, &other), &other).join("note.txt")).unwrap(),
        b"taken while mounted\n"
    );

    // A file still open does not keep it mounted.
    let open = fs::File::open(restored(&holding(&point, &src), &src).join("run.sh")).unwrap();
    let (status, stderr) = mounted.stop(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "{stderr}");
    drop(open);

    // A fresh mount reads one byte from the middle of the big file: one
    // data pack read (two if the kernel's read straddles a chunk
    // boundary), nowhere near the whole file.
    let mounted = Mounted::start(env, &env.path("mnt"));
    let big = restored(&holding(&mounted.point, &src), &src).join("db/big.bin");
    let file = fs::File::open(&big).unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(file.read_at(&mut byte, (BIG / 2) as u64).unwrap(), 1);
    assert_eq!(byte[0], random_bytes(BIG, 7)[BIG / 2]);
    drop(file);
    let (status, stderr) = mounted.stop(libc::SIGTERM);
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM also unmounts cleanly: {stderr}"
    );
    let (pack_reads, bytes_read, _) = transfers(&stderr);
    assert!(
        (1..=2).contains(&pack_reads),
        "{pack_reads} data pack reads for one byte: {stderr}"
    );
    assert!(
        bytes_read < (BIG / 3) as u64,
        "{bytes_read} bytes read for one byte of a {BIG}-byte file"
    );
}

#[test]
fn mount_serves_the_repository_and_unmounts_on_a_signal() {
    if !fuse_available() {
        return;
    }
    exercise(&Env::new());
}

#[test]
fn mount_serves_an_s3_repository() {
    if !fuse_available() {
        return;
    }
    let Some(server) = Server::s3() else { return };
    exercise(&server.env("mounted"));
}

/// `-q` leaves a mount that ends on Ctrl-C without a word (the quiet test
/// in basics.rs counts on this one for mount).
#[test]
fn mount_prints_nothing_with_q() {
    if !fuse_available() {
        return;
    }
    let env = Env::with_repo();
    let mounted = Mounted::start_with(&env, &env.path("quiet"), "-q");
    let (status, output) = mounted.stop(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "{output}");
    assert_eq!(output, "", "arca -q mount printed");
}

#[test]
fn mount_refuses_a_mountpoint_that_is_not_a_directory() {
    let env = Env::with_repo();
    let out = env.run(&["mount", env.path("missing").to_str().unwrap()]);
    let stderr = crate::util::expect_failure(&out, 1);
    assert!(stderr.contains("not a directory"), "{stderr}");
}

#[test]
fn mount_serves_an_sftp_repository() {
    if !fuse_available() {
        return;
    }
    let Some(server) = Server::sftp() else { return };
    exercise(&server.env("mounted"));
}

/// The inode number of every entry below `root` (paths relative to it), as
/// `stat` shows it, checked against the number its directory listing gave;
/// `backwards` walks each directory's entries last to first.
fn inode_numbers(root: &Path, backwards: bool) -> BTreeMap<PathBuf, u64> {
    let mut numbers = BTreeMap::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let mut entries: Vec<fs::DirEntry> = fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap())
            .collect();
        entries.sort_by_key(|entry| entry.file_name());
        // Popped from the end: forwards pushes the last entry first.
        if !backwards {
            entries.reverse();
        }
        for entry in entries {
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            assert_eq!(
                entry.ino(),
                meta.ino(),
                "{}: listed and looked up under different numbers",
                path.display()
            );
            if meta.is_dir() {
                pending.push(path.clone());
            }
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            numbers.insert(relative, meta.ino());
        }
    }
    numbers
}

/// Tools that compare `st_ino` (`find`, `du`, `tar`, rsync) see one number
/// per entry: the same in a second walk, once the kernel looked every name
/// up again, and in another mount walked in the other order.
#[test]
fn mount_keeps_inode_numbers_across_walks_and_mounts() {
    if !fuse_available() {
        return;
    }
    let env = Env::new();
    let src = env.path("many");
    for d in 0..4 {
        let dir = src.join(format!("d{d}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..600 {
            write_file(&dir.join(format!("f{f:03}")), b"x", 0o644);
        }
    }
    env.ok(&["init"]);
    env.ok(&["snapshot", src.to_str().unwrap(), "--tag", "t"]);

    let mounted = Mounted::start(&env, &env.path("mnt"));
    let first = inode_numbers(&mounted.point, false);
    assert!(first.len() > 2 * 2400, "{} entries", first.len());
    let distinct: BTreeSet<u64> = first.values().copied().collect();
    assert_eq!(distinct.len(), first.len(), "two entries share a number");
    // Past the kernel's time to live for names and attributes.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        inode_numbers(&mounted.point, true) == first,
        "the second walk saw other numbers"
    );
    let (status, stderr) = mounted.stop(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "{stderr}");

    let mounted = Mounted::start(&env, &env.path("mnt"));
    assert!(
        inode_numbers(&mounted.point, true) == first,
        "another mount gave other numbers"
    );
    let (status, stderr) = mounted.stop(libc::SIGINT);
    assert_eq!(status.code(), Some(0), "{stderr}");
}
