//! Hostile repositories, made by someone who holds the key: what they can
//! make the CLI do stays inside its promises (docs/security.md).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use arca_backend::LocalBackend;
use arca_core::raw::{IndexFile, PackWriter, Sealer};
use arca_core::{BlobId, BlobKind, Node, NodeKind, Repository, Snapshot, Time, Tree, TreeId};

use crate::util::*;

/// Writes crafted objects into an `Env`'s local repository.
pub struct Forge {
    repo: Repository,
}

impl Forge {
    pub fn new(env: &Env) -> Forge {
        let repo =
            Repository::open(Arc::new(LocalBackend::new(&env.repo)), PASSWORD.as_bytes()).unwrap();
        Forge { repo }
    }

    /// Stores blobs of one kind in one pack with its index file, with none
    /// of the checks a snapshot makes; returns their ids.
    pub fn store(&mut self, kind: BlobKind, blobs: &[Vec<u8>]) -> Vec<arca_core::Id> {
        let mut writer = PackWriter::new(kind, 1 << 20);
        let mut sealer = Sealer::default();
        let mut ids = Vec::new();
        for plain in blobs {
            let id = self.repo.key().blob_id(plain);
            let mut stored = Vec::new();
            let c = sealer.seal_into(self.repo.key(), 3, kind, &id, plain, &mut stored);
            writer.add(id, plain.len() as u32, c, &stored).unwrap();
            ids.push(id);
        }
        let entry = self
            .repo
            .write_pack(writer.finish(self.repo.key()).unwrap())
            .unwrap();
        self.repo
            .save_index(&IndexFile {
                supersedes: Vec::new(),
                packs: vec![entry],
            })
            .unwrap();
        ids
    }

    /// A file node whose content is `content` but whose recorded size is
    /// `size`.
    pub fn file(&mut self, name: &[u8], content: &[u8], size: u64) -> Node {
        let id = self.store(BlobKind::Data, &[content.to_vec()])[0];
        Node {
            size,
            content: vec![BlobId(id)],
            mode: 0o644,
            ..node(name, NodeKind::File)
        }
    }

    /// Stores `nodes` as one tree, in the order given.
    pub fn tree(&mut self, nodes: Vec<Node>) -> TreeId {
        TreeId(self.store(BlobKind::Tree, &[Tree { nodes }.encode()])[0])
    }

    /// Saves a snapshot of `/data` whose root is `root`; returns its id.
    pub fn snapshot(&mut self, root: TreeId) -> String {
        let snapshot = Snapshot {
            time: Time::now(),
            tree: root,
            paths: vec![serde_bytes::ByteBuf::from(b"/data".to_vec())],
            hostname: "h".into(),
            username: "u".into(),
            tags: Vec::new(),
            description: String::new(),
            parent: None,
            program_version: "forged".into(),
            summary: None,
            original: None,
            copied_from: None,
        };
        self.repo.save_snapshot(&snapshot).unwrap().to_hex()
    }
}

pub fn node(name: &[u8], kind: NodeKind) -> Node {
    Node::new(name, kind)
}

pub fn dir(name: &[u8], subtree: TreeId) -> Node {
    Node {
        subtree: Some(subtree),
        ..node(name, NodeKind::Dir)
    }
}

/// A tar archive holding one member `name` with `content`, as a smuggler
/// would hide it in a file's bytes.
fn tar_member(name: &str, content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o4755);
    header.set_entry_type(tar::EntryType::Regular);
    // The tar crate refuses `..`; a smuggler writes the bytes directly.
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_cksum();
    builder.append(&header, content).unwrap();
    builder.into_inner().unwrap()
}

/// Finding 3 of issue 17: a file recorded with size 0 whose chunks hold tar
/// headers must not smuggle members into `dump`'s tar stream.
#[test]
fn dump_writes_exactly_the_recorded_size_and_refuses_other_content() {
    let env = Env::with_repo();
    let mut forge = Forge::new(&env);
    let smuggled = tar_member("../escape", b"#!/bin/sh\necho owned\n");
    for size in [0, 10, smuggled.len() as u64 + 100] {
        let liar = forge.file(b"innocent.txt", &smuggled, size);
        let honest = forge.file(b"honest.txt", b"plain", 5);
        let inner = forge.tree(vec![honest, liar]);
        let root = forge.tree(vec![dir(b"data", inner)]);
        let id = forge.snapshot(root);

        let out = env.run(&["dump", &id, "/data"]);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "size {size}: {stderr}");
        assert!(stderr.contains("/data/innocent.txt"), "{stderr}");
        // Whatever was written before the error holds no smuggled member.
        let dir = env.path(&format!("x{size}"));
        fs::create_dir_all(&dir).unwrap();
        let archive = env.path(&format!("dump{size}.tar"));
        fs::write(&archive, &out.stdout).unwrap();
        let _ = Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&dir)
            .output()
            .unwrap();
        assert!(!env.path("escape").exists(), "size {size}");
        assert!(!files_below(&dir).iter().any(|p| p.ends_with("escape")));
        let mut members = tar::Archive::new(out.stdout.as_slice());
        if let Ok(entries) = members.entries() {
            for entry in entries.flatten() {
                let path = entry.path().unwrap().into_owned();
                assert!(
                    path.starts_with("data"),
                    "size {size}: member {} smuggled",
                    path.display()
                );
            }
        }
    }
}

/// The content of a file that is what its entry says comes out whole.
#[test]
fn dump_of_an_honest_file_in_a_tar_stream_is_exact() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let bytes = random_bytes(3 << 20, 4);
    write_file(&src.join("f"), &bytes, 0o644);
    env.snapshot(&[&src]);
    let stored = src.canonicalize().unwrap();
    let out = env.run(&["dump", "latest", stored.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0));
    let mut archive = tar::Archive::new(out.stdout.as_slice());
    let out_dir = env.path("out");
    archive.unpack(&out_dir).unwrap();
    let name = stored.file_name().unwrap();
    assert!(fs::read(out_dir.join(name).join("f")).unwrap() == bytes);
    assert!(Path::new(&out_dir).exists());
}

/// Finding 5 of issue 17: a link planted where the metrics file or the log
/// goes is refused, never written or read through; a new log is 0600.
#[test]
fn output_files_are_never_opened_through_planted_links() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    write_file(&src.join("a"), b"a", 0o644);
    let secret = env.path("shadow");
    write_file(&secret, b"root:$6$secret-hash:19000::::::\n", 0o600);
    let metrics = env.path("arca.prom");
    let log = env.path("arca.log");
    symlink(&secret, &metrics).unwrap();
    symlink(&secret, &log).unwrap();
    let out = env.run(&[
        "--metrics-file",
        metrics.to_str().unwrap(),
        "--log-file",
        log.to_str().unwrap(),
        "snapshot",
        src.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(
        fs::read(&secret).unwrap(),
        b"root:$6$secret-hash:19000::::::\n"
    );
    assert!(fs::symlink_metadata(&metrics).unwrap().is_symlink());
    assert!(fs::symlink_metadata(&log).unwrap().is_symlink());

    // Without links: the log is created private, the metrics file readable.
    fs::remove_file(&metrics).unwrap();
    fs::remove_file(&log).unwrap();
    env.ok(&[
        "--metrics-file",
        metrics.to_str().unwrap(),
        "--log-file",
        log.to_str().unwrap(),
        "snapshot",
        src.to_str().unwrap(),
    ]);
    assert_eq!(
        fs::metadata(&log).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!fs::read_to_string(&metrics).unwrap().contains("secret"));
    // A hard link to another file at the metrics path is refused too.
    fs::remove_file(&metrics).unwrap();
    fs::hard_link(&secret, &metrics).unwrap();
    let out = env.run(&[
        "--metrics-file",
        metrics.to_str().unwrap(),
        "snapshot",
        src.to_str().unwrap(),
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("other names"));
    assert_eq!(
        fs::read(&secret).unwrap(),
        b"root:$6$secret-hash:19000::::::\n"
    );
}

/// Names printed for people carry no control or bidirectional characters
/// (issue 17, finding 10): a name cannot pose as another on the terminal.
#[test]
fn listed_names_escape_bidirectional_and_control_characters() {
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    write_file(&src.join("invoice\u{202e}fdp.exe"), b"x", 0o644);
    write_file(&src.join("bell\u{7}"), b"y", 0o644);
    env.snapshot(&[&src]);
    for args in [vec!["ls", "latest"], vec!["find", "*"]] {
        let out = env.ok(&args);
        assert!(out.contains("invoice\\u{202e}fdp.exe"), "{args:?}: {out}");
        assert!(
            !out.contains('\u{202e}') && !out.contains('\u{7}'),
            "{args:?}: {out}"
        );
    }
}

/// Runs arca and returns its output and its own peak resident set (KiB).
#[allow(clippy::zombie_processes)] // reaped by wait4, which also reports the peak
fn run_measured(env: &Env, args: &[&str]) -> (std::process::Output, i64) {
    use std::os::unix::process::ExitStatusExt;
    let child = env
        .cmd(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.unwrap();
    let mut stderr = child.stderr.unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut text).unwrap();
        text
    });
    let mut out_bytes = Vec::new();
    std::io::Read::read_to_end(&mut stdout, &mut out_bytes).unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data written by the kernel; pid is our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let output = std::process::Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: out_bytes,
        stderr: err_reader.join().unwrap(),
    };
    (output, usage.ru_maxrss)
}

/// Finding 7 of issue 17: key files planted in storage, asking for a lot of
/// key-derivation work and sorting before the real one, are not tried: the
/// real key opens the repository and the command never allocates what they
/// ask for.
#[test]
fn planted_expensive_key_files_are_not_tried() {
    let env = Env::with_repo();
    let keys = env.repo.join("keys");
    let real = files_below(&keys).pop().unwrap();
    let real_name = real.file_name().unwrap().to_str().unwrap().to_string();
    let mut planted = 0;
    let mut attempt = 0u32;
    while planted < 4 {
        attempt += 1;
        let mut file = arca_core::raw::KeyFile::decode(&fs::read(&real).unwrap(), "key").unwrap();
        // 1 GiB, 2 passes: each alone more than a command spends.
        file.memory_kib = 1024 * 1024;
        file.iterations = 2;
        file.hostname = format!("planted-{attempt}");
        let bytes = file.encode();
        let name = blake3::hash(&bytes).to_hex().to_string();
        if name < real_name {
            fs::write(keys.join(&name), &bytes).unwrap();
            planted += 1;
        }
    }
    let (out, peak_kib) = run_measured(&env, &["snapshots"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The real key's 64 MiB and the rest of the command, far below 1 GiB.
    assert!(peak_kib < 400 * 1024, "peak {peak_kib} KiB");
}

/// Finding 6 of issue 17: every read of a repository object is bounded by
/// what its kind allows, whatever storage says. Locally: an object that is
/// a link to /dev/zero, a FIFO, or a sparse file far over the limit.
#[test]
fn local_objects_that_are_not_what_they_seem_are_refused_without_reading_them() {
    use std::os::unix::fs::symlink;
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    write_file(&src.join("a"), b"a", 0o644);
    env.snapshot(&[&src]);

    // The config a link to an endless stream.
    let config = env.repo.join("config");
    let saved = fs::read(&config).unwrap();
    fs::remove_file(&config).unwrap();
    symlink("/dev/zero", &config).unwrap();
    let (out, peak_kib) = run_measured(&env, &["snapshots"]);
    let stderr = expect_failure(&out, 1);
    assert!(stderr.contains("config"), "{stderr}");
    assert!(peak_kib < 200 * 1024, "peak {peak_kib} KiB");
    fs::remove_file(&config).unwrap();
    fs::write(&config, saved).unwrap();

    // A snapshot file as a FIFO (a read would block forever) is no object
    // at all; an index file as a sparse file of 2 GiB is skipped as
    // damaged without being read.
    let snapshots = env.repo.join("snapshots");
    let fifo = snapshots.join("ab".repeat(32));
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let huge = env.repo.join("index").join("cd".repeat(32));
    fs::File::create(&huge).unwrap().set_len(2 << 30).unwrap();
    let (out, peak_kib) = run_measured(&env, &["snapshots"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&"cd".repeat(32)), "{stderr}");
    assert!(peak_kib < 200 * 1024, "peak {peak_kib} KiB");
}

/// An S3 server that announces 179 bytes and then sends without end (and
/// ignores any range asked for): arca takes no more than the config's limit
/// from it.
#[test]
fn a_server_sending_more_than_asked_cannot_exhaust_memory() {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::atomic::{AtomicU64, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(16) {
            let Ok(stream) = stream else { return };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                let _ = reader.read_line(&mut request);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let mut stream = stream;
                // It announces 179 bytes, then sends without end.
                if request.starts_with("HEAD") {
                    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 179\r\n\r\n";
                    let _ = stream.write_all(head.as_bytes());
                    return;
                }
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n";
                if stream.write_all(head.as_bytes()).is_err() {
                    return;
                }
                let zeros = vec![0u8; 64 << 10];
                // At most 4 GiB; stops as soon as the client hangs up.
                for _ in 0..(4u64 << 30) / zeros.len() as u64 {
                    if stream.write_all(&zeros).is_err() {
                        return;
                    }
                    counter.fetch_add(zeros.len() as u64, Ordering::Relaxed);
                }
            });
        }
    });
    let env = Env::remote(
        format!("s3:http://127.0.0.1:{port}/bucket/repo"),
        vec![
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
        ],
    );
    let (out, peak_kib) = run_measured(&env, &["snapshots"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("config"), "{stderr}");
    assert!(peak_kib < 300 * 1024, "peak {peak_kib} KiB: {stderr}");
    // What the server managed to push before arca hung up: socket buffers,
    // not the 4 GiB it announced.
    let pushed = sent.load(Ordering::Relaxed);
    assert!(pushed < 256 << 20, "the server sent {pushed} bytes");
}

/// Everything below `dir` with type, mode, owner and content: what a race
/// must never change.
fn state_of(dir: &Path) -> Vec<(String, u32, u32, Option<Vec<u8>>)> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let meta = fs::symlink_metadata(dir).unwrap();
    out.push((dir.display().to_string(), meta.mode(), meta.uid(), None));
    if meta.is_dir() {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for path in names {
            out.extend(state_of(&path));
        }
    } else if meta.is_file() {
        out.last_mut().unwrap().3 = Some(fs::read(dir).unwrap());
    }
    out
}

/// Finding 2 of issue 17: a local user racing a root restore, swapping a
/// directory they own in the target for a link to elsewhere, never gets
/// anything outside the target chowned, chmodded or written (200 attempts).
#[test]
fn a_racing_user_swapping_directories_for_links_never_reaches_outside_the_target() {
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::sync::atomic::{AtomicBool, Ordering};
    if !running_as_root() {
        eprintln!("skipping: restoring owners needs root");
        return;
    }
    let env = Env::with_repo();
    let src = env.path("src");
    let user = src.join("home/user");
    for d in 0..100 {
        fs::create_dir_all(user.join(format!("filler/{d:03}"))).unwrap();
    }
    fs::create_dir_all(user.join("sub/deeper")).unwrap();
    write_file(&user.join("sub/deeper/file"), b"user data", 0o666);
    write_file(&user.join("sub/file"), b"user data", 0o4777);
    for dir in [user.join("sub/deeper"), user.join("sub"), user.clone()] {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    }
    std::os::unix::fs::chown(user.join("sub/file"), Some(65534), Some(65534)).unwrap();
    env.snapshot(&[&src]);

    let outside = env.path("outside");
    fs::create_dir_all(outside.join("etc")).unwrap();
    write_file(&outside.join("etc/shadow"), b"root:secret", 0o600);
    write_file(&outside.join("file"), b"root file", 0o600);
    fs::set_permissions(&outside, fs::Permissions::from_mode(0o700)).unwrap();
    let before = state_of(&outside);

    let target = env.path("target");
    let restored_user = restored(&target, &src).join("home/user");
    // The racer swaps only while a restore runs, not while the target is
    // cleared between attempts.
    let (stop, racing) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let idle = Arc::new(AtomicBool::new(true));
    let racer = {
        let (stop, racing, idle) = (stop.clone(), racing.clone(), idle.clone());
        let (sub, outside) = (restored_user.join("sub"), outside.clone());
        std::thread::spawn(move || {
            let aside = sub.with_file_name("sub.aside");
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if !racing.load(Ordering::Acquire) {
                    idle.store(true, Ordering::Release);
                    std::hint::spin_loop();
                    continue;
                }
                idle.store(false, Ordering::Release);
                if fs::symlink_metadata(&sub).is_ok_and(|m| m.is_dir())
                    && fs::rename(&sub, &aside).is_ok()
                {
                    let _ = symlink(&outside, &sub);
                    std::thread::yield_now();
                    let _ = fs::remove_file(&sub);
                    let _ = fs::rename(&aside, &sub);
                    swaps += 1;
                }
            }
            swaps
        })
    };
    for attempt in 0..200 {
        racing.store(true, Ordering::Release);
        let out = env.run(&["restore", "latest", "--target", target.to_str().unwrap()]);
        racing.store(false, Ordering::Release);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(state_of(&outside), before, "attempt {attempt}: {stderr}");
        // A swap in progress finishes before the target goes.
        while !idle.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        let _ = Command::new("rm").arg("-rf").arg(&target).status();
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    assert!(swaps > 0, "the racer never got a swap in");
}

/// A case-insensitive file system (tests/fixtures/casefold_fs.py over FUSE)
/// mounted for one test, unmounted when dropped.
struct CaseFolding {
    mountpoint: std::path::PathBuf,
    server: std::process::Child,
}

impl CaseFolding {
    /// `None` (the test skips) without root, /dev/fuse or python3-fusepy,
    /// unless the servers are required (CI).
    fn mount(env: &Env) -> Option<CaseFolding> {
        let required = std::env::var("ARCA_TEST_REQUIRE_SERVERS").is_ok_and(|v| v == "1");
        let usable = running_as_root()
            && Path::new("/dev/fuse").exists()
            && Command::new("/usr/bin/python3")
                .args(["-c", "import fusepy"])
                .status()
                .is_ok_and(|s| s.success());
        if !usable {
            assert!(!required, "a FUSE case-insensitive file system is required");
            eprintln!("skipping: needs root, /dev/fuse and python3-fusepy");
            return None;
        }
        let backing = env.path("casefold-backing");
        let mountpoint = env.path("casefold");
        fs::create_dir_all(&backing).unwrap();
        fs::create_dir_all(&mountpoint).unwrap();
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/casefold_fs.py");
        let server = Command::new("/usr/bin/python3")
            .arg(script)
            .arg(&backing)
            .arg(&mountpoint)
            .spawn()
            .unwrap();
        let mounted = CaseFolding { mountpoint, server };
        // Ready once the kernel lists the mount (bounded wait).
        for _ in 0..400 {
            let mounts = fs::read_to_string("/proc/mounts").unwrap();
            if mounts.contains(mounted.mountpoint.to_str().unwrap()) {
                return Some(mounted);
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("the case-insensitive file system did not mount");
    }
}

impl Drop for CaseFolding {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mountpoint).status();
        let _ = self.server.kill();
        let _ = self.server.wait();
    }
}

/// Finding 1 of issue 17: on a target that folds case, a tree holding a
/// directory `A` and a symlink `a` (or the other way round) to elsewhere
/// cannot make the restore write, chmod or chown anything outside its
/// target: the second name is refused, not allowed to replace the first.
#[test]
fn a_case_folding_target_cannot_turn_a_directory_into_a_link_to_elsewhere() {
    let env = Env::with_repo();
    let Some(mount) = CaseFolding::mount(&env) else {
        return;
    };
    let outside = env.path("outside");
    fs::create_dir_all(&outside).unwrap();
    write_file(&outside.join("keep"), b"precious", 0o600);
    let before = state_of(&outside);
    let link_to_outside = |name: &[u8]| Node {
        target: outside.as_os_str().as_encoded_bytes().to_vec(),
        ..node(name, NodeKind::Symlink)
    };
    let mut forge = Forge::new(&env);
    for (round, (dir_name, link_name)) in [(b"A", b"a"), (b"a", b"A")].into_iter().enumerate() {
        let mut victim = forge.file(b"victim", b"#!/bin/sh\necho owned\n", 21);
        victim.mode = 0o4755;
        let inner = forge.tree(vec![victim]);
        // Names in byte order, as a tree must hold them.
        let mut nodes = vec![dir(dir_name, inner), link_to_outside(link_name)];
        nodes.sort_by(|x, y| x.name.cmp(&y.name));
        let data = forge.tree(nodes);
        let root = forge.tree(vec![dir(b"data", data)]);
        let id = forge.snapshot(root);
        let target = mount.mountpoint.join(format!("restore-{round}"));
        let out = env.run(&["restore", &id, "--target", target.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(state_of(&outside), before, "{stderr}");
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("not restored"), "{stderr}");
    }
}

impl Forge {
    /// Stores trees that refer to each other, all in one pack: `build`
    /// gets the id of the tree made before it (`None` for the first) and
    /// returns the next. Returns the last tree's id.
    pub fn tree_chain(
        &mut self,
        count: usize,
        mut build: impl FnMut(Option<TreeId>) -> Tree,
    ) -> TreeId {
        let mut plains = Vec::with_capacity(count);
        let mut last = None;
        for _ in 0..count {
            let plain = build(last).encode();
            last = Some(TreeId(self.repo.key().blob_id(&plain)));
            plains.push(plain);
        }
        self.store(BlobKind::Tree, &plains);
        last.unwrap()
    }
}

/// Finding 8 of issue 17: hostile tree shapes. Trees nested 15,000 levels
/// deep, and 64 levels of a directory holding the level below twice (2^64
/// paths from a few kilobytes), are refused by every command that walks a
/// snapshot, with one line naming the tree: no stack overflow, no endless
/// walk; `check` reports both.
#[test]
fn hostile_tree_shapes_are_refused_by_every_walk() {
    let env = Env::with_repo();
    let mut forge = Forge::new(&env);
    let deep = forge.tree_chain(15_000, |below| Tree {
        nodes: below.map(|t| vec![dir(b"d", t)]).unwrap_or_default(),
    });
    let wide = forge.tree_chain(64, |below| Tree {
        nodes: below
            .map(|t| vec![dir(b"a", t), dir(b"b", t)])
            .unwrap_or_default(),
    });
    for (root, what) in [(deep, "nest more than"), (wide, "expands to more than")] {
        let top = forge.tree(vec![dir(b"data", root)]);
        let id = forge.snapshot(top);
        let target = env.path(&format!("restore-{}", &id[..8]));
        for args in [
            vec!["ls", &id],
            vec!["find", "zzz"],
            vec!["dump", &id, "/data"],
            vec!["stats", &id],
            vec!["restore", &id, "--target", target.to_str().unwrap()],
        ] {
            let out = env.run(&args);
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(stderr.contains(what), "{args:?}: {stderr}");
        }
        let out = env.run(&["--json", "check"]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stdout).contains(what));
        // Nothing was restored of it.
        assert!(!target.exists() || files_below(&target).is_empty());
        fs::remove_file(env.repo.join("snapshots").join(&id)).unwrap();
    }
}

/// Finding 9 of issue 17: `--no-special` (the default without root) leaves
/// out device nodes and FIFOs and drops setuid/setgid bits; root without it
/// gets them back.
#[test]
fn no_special_leaves_out_devices_fifos_and_privilege_bits() {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if !running_as_root() {
        eprintln!("skipping: device nodes need root");
        return;
    }
    let env = Env::with_repo();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    write_file(&src.join("tool"), b"#!/bin/sh\n", 0o6755);
    nix::unistd::mkfifo(
        &src.join("pipe"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    nix::sys::stat::mknod(
        &src.join("null"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::from_bits_truncate(0o666),
        nix::sys::stat::makedev(1, 3),
    )
    .unwrap();
    env.snapshot(&[&src]);

    let safe = env.path("safe");
    let out = env.run(&[
        "restore",
        "latest",
        "--no-special",
        "--target",
        safe.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let back = restored(&safe, &src);
    let mode = fs::metadata(back.join("tool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755, "setuid/setgid dropped: {mode:o}");
    assert!(!back.join("pipe").exists() && !back.join("null").exists());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pipe") && stderr.contains("null"),
        "{stderr}"
    );

    let full = env.path("full");
    env.ok(&["restore", "latest", "--target", full.to_str().unwrap()]);
    let back = restored(&full, &src);
    let mode = fs::metadata(back.join("tool"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o6755);
    assert!(
        fs::symlink_metadata(back.join("pipe"))
            .unwrap()
            .file_type()
            .is_fifo()
    );
    assert!(
        fs::symlink_metadata(back.join("null"))
            .unwrap()
            .file_type()
            .is_char_device()
    );
}
