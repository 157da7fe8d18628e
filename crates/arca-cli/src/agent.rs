//! The WAL archiving agent behind `pg archive-wal --agent` (and `pg agent`,
//! the hidden command it runs as).
//!
//! Each `archive-wal` call opens the repository, and opening derives the
//! key from the password (Argon2id): most of a call's time. With
//! `--agent`, a call hands its file to a resident process of the same user
//! that keeps the repository open, and exits with that process's answer,
//! given only once the file is durably stored (or found stored) — the
//! same promise a call without the agent makes. When no agent answers, the
//! call starts one in the background for the next calls and archives the
//! file itself, so a missing, crashed or hung-up agent costs one key
//! derivation, never a file.
//!
//! The agent listens on a Unix socket in a directory of the cache
//! directory that only its user can enter (mode 0700, socket 0600), serves
//! only connections from its own uid (checked with `SO_PEERCRED`) that show
//! a key derived from the password it opened the repository with ([`proof`];
//! another password makes it leave), and does one thing: archive a WAL file
//! it is given the path of. No key or
//! password is ever written anywhere; the key lives in the agent's memory
//! as in any arca process, until the agent exits after ten idle minutes,
//! when its socket is removed, or on SIGTERM. The socket's name is a hash
//! of the repository address and password source, so an agent serves only
//! calls that would have opened the same repository the same way, and
//! before each file it checks that the repository's config object is still
//! the one it opened (a repository made anew at the same address is not
//! written to with the old key).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use arca_backend::FileKind;
use arca_core::Archived;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::password::PasswordSource;
use crate::session;

/// How long an agent waits for the next file before it exits.
const IDLE: Duration = Duration::from_secs(600);
/// How often the agent looks whether it should exit.
const TICK: Duration = Duration::from_secs(1);
/// Longest request or reply line.
const MAX_LINE: u64 = 64 * 1024;
/// After an agent failed to open the repository, calls start no new agent
/// for this long (each attempt would cost a key derivation).
const BACKOFF: Duration = Duration::from_secs(60);
/// Unix socket paths are limited to 108 bytes.
const MAX_SOCKET_PATH: usize = 100;

#[derive(Serialize, Deserialize)]
struct Request {
    path: PathBuf,
    verify_upload: bool,
    /// [`proof`] of the caller's password, hex.
    proof: String,
}

/// What a caller shows the agent to be served: a key derived from the
/// password it would have opened the repository with (fast to compute,
/// never written anywhere). The agent serves only callers whose password
/// is the one it opened the repository with, so it gives no process of its
/// user more than that process could do with its own password; a caller
/// with another one makes it leave.
fn proof(password: &[u8]) -> blake3::Hash {
    blake3::Hash::from(blake3::derive_key("arca v1 wal agent caller", password))
}

/// What the agent did with one file.
#[derive(Serialize, Deserialize)]
pub struct Reply {
    /// `None` on success; else the error, one sentence, and the exit code
    /// it calls for.
    pub error: Option<(String, i32)>,
    /// Whether the file was stored (false: it was there already).
    pub stored: bool,
    /// The name of its object under `wal/`.
    pub object: String,
}

/// The agent's socket for this run's repository and password source, or
/// `None` when there is no cache directory to put it in.
fn socket_path(config: &Config) -> Option<PathBuf> {
    let dir = config.cache_dir.as_ref()?.join("agents");
    let identity = format!(
        "{}\0{}\0{}",
        config.repo.as_deref()?,
        match &config.password {
            PasswordSource::File(p) => format!("file:{}", std::path::absolute(p).ok()?.display()),
            PasswordSource::Command(c) => format!("command:{c}"),
            PasswordSource::EnvOrPrompt(_) => "environment".to_string(),
        },
        nix::unistd::getuid()
    );
    let hash = blake3::hash(identity.as_bytes()).to_hex();
    let path = dir.join(format!("{}.sock", &hash[..16]));
    (path.as_os_str().len() <= MAX_SOCKET_PATH).then_some(path)
}

/// Hands `path` to the agent; `None` when no agent answered (one is then
/// started for the next calls, and the caller archives the file itself).
pub fn archive(config: &Config, path: &Path, verify_upload: bool) -> Option<Reply> {
    let socket = socket_path(config)?;
    let Ok(mut stream) = UnixStream::connect(&socket) else {
        start(config, &socket);
        return None;
    };
    if peer_uid(&stream) != Some(nix::unistd::getuid().as_raw()) {
        return None;
    }
    let password = zeroize::Zeroizing::new(config.password.get().ok()?);
    let request = Request {
        path: std::path::absolute(path).ok()?,
        verify_upload,
        proof: proof(&password).to_hex().to_string(),
    };
    let mut line = serde_json::to_vec(&request).ok()?;
    line.push(b'\n');
    stream.write_all(&line).ok()?;
    let mut reply = String::new();
    let _ = BufReader::new(stream.take(MAX_LINE)).read_line(&mut reply);
    let reply = serde_json::from_str(&reply).ok();
    if reply.is_none() {
        // The agent went away mid-request (killed, or it found another
        // repository at this address): the caller archives the file
        // itself (archiving is idempotent), and a new agent takes over.
        start(config, &socket);
    }
    reply
}

fn peer_uid(stream: &UnixStream) -> Option<u32> {
    nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .ok()
        .map(|c| c.uid())
}

/// Starts an agent in the background, detached from this process, unless
/// one failed to open the repository a moment ago.
fn start(config: &Config, socket: &Path) {
    let failed = socket.with_extension("failed");
    if let Ok(meta) = std::fs::metadata(&failed)
        && meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age < BACKOFF)
    {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut command = std::process::Command::new(exe);
    command.args(global_args(config));
    command.args(["-q", "pg", "agent"]);
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork
    // and exec. A session of its own keeps the agent out of the caller's
    // process group (PostgreSQL's archiver and its shell).
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let _ = command.spawn();
}

/// The global options that make another arca process open this run's
/// repository the same way and find the same agent socket.
fn global_args(config: &Config) -> Vec<String> {
    let mut args = session::repository_args(config);
    if let Some(dir) = &config.cache_dir {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        args.extend(["--cache-dir".to_string(), dir.display().to_string()]);
    }
    args
}

/// `arca pg agent`: serves `archive-wal --agent` calls until idle.
pub fn serve(config: &Config) -> Result<i32> {
    let Some(socket) = socket_path(config) else {
        anyhow::bail!("the agent needs a cache directory (not --no-cache) with a short path");
    };
    let dir = socket.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot make {}", dir.display()))?;
    // Only this user may reach the socket, whatever made the directory.
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir()
        || std::os::unix::fs::MetadataExt::uid(&meta) != nix::unistd::getuid().as_raw()
    {
        anyhow::bail!("{} is not a directory of this user", dir.display());
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    // One agent per socket: the lock is held for the agent's life.
    let lock = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(socket.with_extension("lock"))?
    };
    if lock.try_lock().is_err() {
        return Ok(crate::exit::SUCCESS);
    }
    let opened = config.password.get().and_then(|password| {
        let password = zeroize::Zeroizing::new(password);
        let address = config
            .repo
            .as_deref()
            .context("no repository given: use -r REPO or set ARCA_REPOSITORY")?;
        Ok((
            config.open_repository(address, &password)?,
            proof(&password),
        ))
    });
    let (mut repo, expected) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            let _ = std::fs::write(socket.with_extension("failed"), format!("{e:#}\n"));
            return Err(e);
        }
    };
    let _ = std::fs::remove_file(socket.with_extension("failed"));
    let opened_config = read_config(&repo)?;
    let _ = std::fs::remove_file(&socket);
    let listener = UnixListener::bind(&socket)
        .with_context(|| format!("cannot listen on {}", socket.display()))?;
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))?;
    let bound =
        std::fs::symlink_metadata(&socket).map(|m| std::os::unix::fs::MetadataExt::ino(&m))?;

    let busy = Mutex::new(());
    let last = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        // The watchdog ends the process between files: once idle for too
        // long, or once the socket is gone or replaced (its directory
        // removed, another agent in its place).
        scope.spawn(|| {
            loop {
                std::thread::sleep(TICK);
                let idle = started.elapsed().as_secs() - last.load(Ordering::Relaxed);
                let ours = std::fs::symlink_metadata(&socket)
                    .is_ok_and(|m| std::os::unix::fs::MetadataExt::ino(&m) == bound);
                if idle >= IDLE.as_secs() || !ours {
                    let _guard = busy.lock().unwrap_or_else(|e| e.into_inner());
                    if ours {
                        let _ = std::fs::remove_file(&socket);
                    }
                    std::process::exit(crate::exit::SUCCESS);
                }
            }
        });
        for stream in listener.incoming() {
            let Ok(stream) = stream else {
                // Out of descriptors, say: try again a moment later rather
                // than spin.
                std::thread::sleep(TICK / 10);
                continue;
            };
            if peer_uid(&stream) != Some(nix::unistd::getuid().as_raw()) {
                continue;
            }
            let _guard = busy.lock().unwrap_or_else(|e| e.into_inner());
            handle(&mut repo, &opened_config, &expected, &socket, stream);
            last.store(started.elapsed().as_secs(), Ordering::Relaxed);
        }
    });
    Ok(crate::exit::SUCCESS)
}

fn read_config(repo: &arca_core::Repository) -> Result<Vec<u8>> {
    Ok(repo.backend().read(FileKind::Config, "config", MAX_LINE)?)
}

/// Archives the one file a connection asks for and answers.
fn handle(
    repo: &mut arca_core::Repository,
    opened_config: &[u8],
    expected: &blake3::Hash,
    socket: &Path,
    stream: UnixStream,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut line = String::new();
    if BufReader::new((&stream).take(MAX_LINE))
        .read_line(&mut line)
        .is_err()
    {
        return;
    }
    let reply = match serde_json::from_str::<Request>(&line) {
        Err(_) => return,
        // Another password than the one this agent opened the repository
        // with (changed since, or a caller that does not know it): answer
        // nothing, so the caller works with its own password, and make way
        // for an agent started with it. (blake3::Hash compares in constant
        // time.)
        Ok(request) if blake3::Hash::from_hex(&request.proof).ok().as_ref() != Some(expected) => {
            let _ = std::fs::remove_file(socket);
            std::process::exit(crate::exit::SUCCESS);
        }
        Ok(request) => archive_one(repo, opened_config, Some(socket), &request),
    };
    if let Ok(mut bytes) = serde_json::to_vec(&reply) {
        bytes.push(b'\n');
        let _ = (&stream).write_all(&bytes);
    }
}

fn archive_one(
    repo: &mut arca_core::Repository,
    opened_config: &[u8],
    socket: Option<&Path>,
    request: &Request,
) -> Reply {
    let failed = |e: anyhow::Error| Reply {
        error: Some((crate::message(&e), crate::exit::for_error(&e))),
        stored: false,
        object: String::new(),
    };
    match read_config(repo) {
        Ok(now) if now == opened_config => {}
        Ok(_) => {
            // Another repository at this address: this agent's key is not
            // its key. Answer nothing (the caller archives the file itself)
            // and make way for an agent of the new repository.
            if let Some(socket) = socket {
                let _ = std::fs::remove_file(socket);
            }
            std::process::exit(crate::exit::SUCCESS);
        }
        Err(e) => return failed(e),
    }
    repo.set_verify_uploads(request.verify_upload);
    let name = request
        .path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let done = arca_core::archive_wal(repo, &request.path)
        .with_context(|| format!("while archiving {}", request.path.display()))
        .and_then(|done| Ok((done, arca_core::wal_object_name(repo, name)?)));
    match done {
        Ok((done, object)) => Reply {
            error: None,
            stored: done == Archived::Stored,
            object,
        },
        Err(e) => failed(e),
    }
}
