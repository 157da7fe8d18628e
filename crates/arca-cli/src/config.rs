//! The one resolved configuration every command receives: where the
//! repository is, how to get its password, and how to talk to the user.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use arca_backend::{Backend, LocalBackend, RetryBackend, RetryPolicy, TransferStats};
use arca_core::Repository;

use crate::cli::GlobalArgs;
use crate::password::{PasswordSource, Role};
use crate::profile::{self, Loaded, Profile};

/// Settled global options.
#[derive(Debug)]
pub struct Config {
    pub repo: Option<String>,
    pub password: PasswordSource,
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    /// Draw progress bars (stderr is a terminal; not quiet, not JSON).
    pub progress: bool,
    /// How long to wait for a lock held by another process.
    pub retry_lock: std::time::Duration,
    /// `--no-cache`: keep nothing in the local cache directory.
    pub no_cache: bool,
    /// Where remote repositories' metadata (and `copy`'s map) is cached:
    /// `--cache-dir`/`ARCA_CACHE_DIR`, else `$XDG_CACHE_HOME/arca`, else
    /// `~/.cache/arca`; `None` with `--no-cache` or when none is known.
    pub cache_dir: Option<PathBuf>,
    /// `--connections`: overrides the backend's own number.
    pub connections: Option<usize>,
    /// The profile of `--profile`/`--config`, if any.
    pub profile: Option<Loaded>,
    /// `--metrics-file` (or the profile's `metrics_file`): where the
    /// commands [`crate::metrics::command_name`] names write their
    /// Prometheus metrics.
    pub metrics_file: Option<PathBuf>,
    /// Values the command reports for the metrics file.
    pub metrics: crate::metrics::Recorder,
    /// `--log-file`, when it could be opened.
    log: Option<Mutex<std::fs::File>>,
    /// What each opened repository moved, for `-v`'s closing summary.
    transfers: Mutex<Vec<(String, Arc<TransferStats>)>>,
}

impl Config {
    /// Settles the global options: flags and environment first, then the
    /// profile, then defaults.
    pub fn resolve(args: GlobalArgs) -> Result<Config> {
        let loaded = profile::select(args.profile.as_ref(), args.config.as_deref())?;
        let empty = Profile::default();
        let p = loaded.as_ref().map_or(&empty, |l| &l.profile);
        let password = password_source(
            args.password_file,
            args.password_command,
            std::env::var_os("ARCA_PASSWORD").is_some(),
            p,
        );
        let retry_lock = args.retry_lock.map_or(std::time::Duration::ZERO, |d| d.0);
        // --cache-dir also arrives from ARCA_CACHE_DIR through clap.
        let cache_dir = if args.no_cache {
            None
        } else {
            args.cache_dir
                .filter(|d| !d.as_os_str().is_empty())
                .or_else(|| p.cache_dir.clone())
                .or_else(|| cache_dir(|name| std::env::var_os(name)))
        };
        let log = args.log_file.as_deref().and_then(open_log);
        Ok(Config {
            retry_lock,
            no_cache: args.no_cache,
            repo: args.repo.or_else(|| p.repository.clone()).map(|a| a.0),
            password,
            json: args.json,
            quiet: args.quiet,
            verbose: args.verbose,
            progress: !args.no_progress
                && !args.quiet
                && !args.json
                && std::io::stderr().is_terminal(),
            cache_dir,
            connections: args.connections.or(p.connections).map(|c| usize::from(c.0)),
            metrics_file: args
                .metrics_file
                .filter(|f| !f.as_os_str().is_empty())
                .or_else(|| p.metrics_file.clone()),
            profile: loaded,
            metrics: crate::metrics::Recorder::default(),
            log,
            transfers: Mutex::default(),
        })
    }

    /// Appends `line` to `--log-file`, after the local time (RFC 3339).
    pub fn log(&self, line: &str) {
        let Some(file) = &self.log else { return };
        let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
        let text = format!("{} {line}\n", arca_core::Time::now().to_rfc3339());
        if let Err(e) = std::io::Write::write_all(&mut *file, text.as_bytes()) {
            eprintln!("arca: warning: cannot write to the log file: {e}");
        }
    }

    /// The backend for `-r`/`ARCA_REPOSITORY`.
    pub fn backend(&self) -> Result<Arc<dyn Backend>> {
        let Some(repo) = self.repo.as_deref() else {
            bail!("no repository given: use -r REPO or set ARCA_REPOSITORY");
        };
        self.open_backend(repo)
    }

    /// The backend for a repository address, retrying transient failures
    /// (each retry reported unless `-q`, each request at `-vv`).
    pub fn open_backend(&self, address: &str) -> Result<Arc<dyn Backend>> {
        if let Some(host) = plain_http_host(address)
            && !is_loopback(host)
        {
            eprintln!(
                "arca: warning: {} is reached over plain http: the credentials and every request go over the network unencrypted (use https)",
                crate::output::sanitize(address)
            );
        }
        let raw = open_backend(address)?;
        let mut backend = RetryBackend::new(raw, RetryPolicy::default());
        if let Some(n) = self.connections {
            backend = backend.with_connections(n);
        }
        if !self.quiet {
            backend = backend.with_log(
                Arc::new(|line: &str| eprintln!("arca: {}", crate::output::sanitize(line))),
                self.verbose > 1,
            );
        }
        self.transfers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((backend.location(), backend.stats()));
        Ok(Arc::new(backend))
    }

    /// Opens the repository at `address` with `password`, with the metadata
    /// cache for a remote one.
    pub fn open_repository(&self, address: &str, password: &[u8]) -> Result<Repository> {
        let backend = self.open_backend(address)?;
        let mut repo = Repository::open(backend, password)?;
        repo.on_damage(std::sync::Arc::new(warn_damaged));
        if is_remote(address)
            && let Some(dir) = &self.cache_dir
            && let Err(e) = repo.use_cache(dir)
        {
            self.note(format!(
                "arca: warning: cannot use the cache directory {}: {e}; going on without it",
                dir.display()
            ));
        }
        Ok(repo)
    }

    /// Prints a human message on stderr unless quiet.
    pub fn note(&self, message: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }

    /// At `-v`, what each repository's storage moved during the command.
    pub fn report_transfers(&self) {
        if self.verbose == 0 {
            return;
        }
        for (location, stats) in self
            .transfers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let c = stats.counts();
            eprintln!(
                "arca: {}: {} requests, {} retries, {} data pack reads, {} bytes read, {} bytes written",
                crate::output::sanitize(location),
                c.requests,
                c.retries,
                c.data_pack_reads,
                c.read_bytes,
                c.written_bytes
            );
        }
    }

    /// How many threads reading and writing may keep busy: at least the
    /// cores, more for a remote repository whose requests mostly wait.
    pub fn io_threads(&self) -> Option<usize> {
        let remote = self.repo.as_deref().is_some_and(is_remote);
        let wanted = self.connections.or(remote.then_some(8))?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Some(wanted.max(cores))
    }
}

/// The password source: `--password-file`, `--password-command` (flags or
/// their variables), `ARCA_PASSWORD`, then the profile's, then a prompt.
fn password_source(
    file: Option<PathBuf>,
    command: Option<String>,
    env_password: bool,
    profile: &Profile,
) -> PasswordSource {
    if let Some(file) = file {
        PasswordSource::File(file)
    } else if let Some(cmd) = command {
        PasswordSource::Command(cmd)
    } else if env_password {
        PasswordSource::EnvOrPrompt(Role::Repository)
    } else if let Some(file) = &profile.password_file {
        PasswordSource::File(file.clone())
    } else if let Some(cmd) = &profile.password_command {
        PasswordSource::Command(cmd.clone())
    } else {
        PasswordSource::EnvOrPrompt(Role::Repository)
    }
}

/// Opens `--log-file` for appending; a failure is a warning, not an error,
/// so that a full log disk never stops a backup.
fn open_log(path: &std::path::Path) -> Option<Mutex<std::fs::File>> {
    match crate::outfile::open_append(path) {
        Ok(file) => Some(Mutex::new(file)),
        Err(e) => {
            eprintln!(
                "arca: warning: cannot open log file {}: {e}; going on without it",
                path.display()
            );
            None
        }
    }
}

/// The host (with its port) of an `s3:http://` address.
fn plain_http_host(address: &str) -> Option<&str> {
    let rest = address.strip_prefix("s3:")?;
    let rest = rest.strip_prefix("http://")?;
    Some(rest.split('/').next().unwrap_or(rest))
}

/// Whether `host[:port]` is this machine: `localhost`, 127.0.0.0/8 or ::1.
fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether an address names remote storage.
pub fn is_remote(address: &str) -> bool {
    address.starts_with("s3:") || address.starts_with("sftp:")
}

/// The cache directory from the environment: `ARCA_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/arca`, else `$HOME/.cache/arca`. Empty and (for the XDG
/// variable, as its specification says) relative values are ignored.
fn cache_dir(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Option<PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("ARCA_CACHE_DIR") {
        return Some(dir);
    }
    if let Some(xdg) = set("XDG_CACHE_HOME").filter(|p| p.is_absolute()) {
        return Some(xdg.join("arca"));
    }
    set("HOME").map(|home| home.join(".cache").join("arca"))
}

/// Parses a repository address into a backend.
pub fn open_backend(repo: &str) -> Result<Arc<dyn Backend>> {
    if let Some(rest) = repo.strip_prefix("s3:") {
        return open_s3(repo, rest);
    }
    if let Some(rest) = repo.strip_prefix("sftp:") {
        return open_sftp(repo, rest);
    }
    let path = repo.strip_prefix("local:").unwrap_or(repo);
    if path.is_empty() {
        bail!("the repository path is empty");
    }
    let path = PathBuf::from(path);
    let path = if path.is_absolute() {
        path
    } else {
        std::env::current_dir()
            .context("cannot determine the current directory")?
            .join(path)
    };
    Ok(Arc::new(LocalBackend::new(path)))
}

#[cfg(feature = "s3")]
fn open_s3(repo: &str, rest: &str) -> Result<Arc<dyn Backend>> {
    let config = arca_backend::S3Config::from_address(rest)
        .map_err(|e| anyhow::anyhow!("repository {repo}: {e}"))?;
    Ok(Arc::new(arca_backend::RemoteBackend::s3(&config)?))
}

#[cfg(not(feature = "s3"))]
fn open_s3(repo: &str, _: &str) -> Result<Arc<dyn Backend>> {
    bail!("repository {repo}: this build of arca has no S3 support (cargo feature s3)")
}

#[cfg(feature = "sftp")]
fn open_sftp(repo: &str, rest: &str) -> Result<Arc<dyn Backend>> {
    let config = arca_backend::SftpConfig::from_address(rest)
        .map_err(|e| anyhow::anyhow!("repository {repo}: {e}"))?;
    Ok(Arc::new(arca_backend::RemoteBackend::sftp(&config)?))
}

#[cfg(not(feature = "sftp"))]
fn open_sftp(repo: &str, _: &str) -> Result<Arc<dyn Backend>> {
    bail!("repository {repo}: this build of arca has no SFTP support (cargo feature sftp)")
}

/// Warns, once per object and even when quiet, about a damaged snapshot or
/// index file that the command leaves out, with the repair that removes it.
fn warn_damaged(damaged: &arca_core::Damaged) {
    let remedy = match damaged.kind {
        arca_backend::FileKind::Index => {
            "its packs are read from their own headers; run arca repair index"
        }
        _ => "it is skipped; run arca repair snapshots --forget",
    };
    eprintln!(
        "arca: warning: {}; {remedy}",
        crate::output::sanitize(&damaged.problem)
    );
}

#[cfg(test)]
mod tests {
    #[test]
    fn plain_http_is_told_apart_from_loopback() {
        use super::{is_loopback, plain_http_host};
        for (address, warned) in [
            ("s3:http://127.0.0.1:9000/b", false),
            ("s3:http://127.3.4.5/b/p", false),
            ("s3:http://localhost:9000/b", false),
            ("s3:http://[::1]:9000/b", false),
            ("s3:http://minio.lan:9000/b", true),
            ("s3:http://10.0.0.5/b", true),
            ("s3:http://[2001:db8::1]:9000/b", true),
            ("s3:https://s3.amazonaws.com/b", false),
            ("s3:s3.amazonaws.com/b", false),
        ] {
            let warns = plain_http_host(address).is_some_and(|h| !is_loopback(h));
            assert_eq!(warns, warned, "{address}");
        }
    }

    use super::{Config, Profile, cache_dir, password_source};
    use crate::cli::Cli;
    use crate::password::PasswordSource;
    use clap::Parser;
    use std::path::{Path, PathBuf};

    fn profile(text: &str) -> Profile {
        Profile::parse(text, Path::new("p.toml")).unwrap()
    }

    #[test]
    fn flags_and_environment_win_over_the_profile_password() {
        let p = profile("password_file = \"/p\"\npassword_command = \"pass show arca\"\n");
        let file = |s: &PasswordSource| match s {
            PasswordSource::File(f) => Some(f.clone()),
            _ => None,
        };
        let flag = password_source(Some("/flag".into()), None, true, &p);
        assert_eq!(file(&flag), Some("/flag".into()));
        let cmd = password_source(None, Some("cmd".into()), false, &p);
        assert!(matches!(cmd, PasswordSource::Command(c) if c == "cmd"));
        let env = password_source(None, None, true, &p);
        assert!(matches!(env, PasswordSource::EnvOrPrompt(_)));
        let from_profile = password_source(None, None, false, &p);
        assert_eq!(file(&from_profile), Some("/p".into()));
        let only_command = profile("password_command = \"pass show arca\"\n");
        let c = password_source(None, None, false, &only_command);
        assert!(matches!(c, PasswordSource::Command(c) if c == "pass show arca"));
    }

    #[test]
    fn flags_win_over_the_profile_and_the_profile_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db1.toml");
        std::fs::write(
            &path,
            "repository = \"/from/profile\"\ncache_dir = \"/cache/profile\"\nconnections = 3\n",
        )
        .unwrap();
        let config_arg = path.display().to_string();
        let resolve = |extra: &[&str]| {
            let mut argv = vec!["arca", "--config", &config_arg];
            argv.extend_from_slice(extra);
            argv.push("snapshots");
            Config::resolve(Cli::try_parse_from(argv).unwrap().global).unwrap()
        };
        let from_profile = resolve(&[]);
        assert_eq!(from_profile.connections, Some(3));
        assert_eq!(from_profile.profile.as_ref().unwrap().name, "db1");
        let flags = resolve(&[
            "-r",
            "/from/flag",
            "--connections",
            "5",
            "--cache-dir",
            "/c",
        ]);
        assert_eq!(flags.repo.as_deref(), Some("/from/flag"));
        assert_eq!(flags.connections, Some(5));
        assert_eq!(flags.cache_dir, Some(PathBuf::from("/c")));
        // Unless the environment sets them, the profile's values apply.
        if std::env::var_os("ARCA_REPOSITORY").is_none() {
            assert_eq!(from_profile.repo.as_deref(), Some("/from/profile"));
        }
        if std::env::var_os("ARCA_CACHE_DIR").is_none() {
            assert_eq!(
                from_profile.cache_dir,
                Some(PathBuf::from("/cache/profile"))
            );
        }
    }

    #[test]
    fn a_broken_profile_stops_resolution_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "repositry = \"/x\"\n").unwrap();
        let argv = ["arca", "--config", path.to_str().unwrap(), "snapshots"];
        let e = Config::resolve(Cli::try_parse_from(argv).unwrap().global).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("bad.toml") && text.contains("repositry"),
            "{text}"
        );
        let missing = ["arca", "--config", "/nonexistent/arca.toml", "snapshots"];
        let e = Config::resolve(Cli::try_parse_from(missing).unwrap().global).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/arca.toml"), "{e}");
    }

    fn from(vars: &[(&str, &str)]) -> Option<PathBuf> {
        cache_dir(|name| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| v.into()))
    }

    #[test]
    fn the_cache_directory_follows_the_environment() {
        let all = [
            ("ARCA_CACHE_DIR", "/var/cache/arca"),
            ("XDG_CACHE_HOME", "/home/u/.xdg"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(from(&all), Some("/var/cache/arca".into()));
        assert_eq!(from(&all[1..]), Some("/home/u/.xdg/arca".into()));
        assert_eq!(from(&all[2..]), Some("/home/u/.cache/arca".into()));
        assert_eq!(
            from(&[
                ("ARCA_CACHE_DIR", ""),
                ("XDG_CACHE_HOME", "rel"),
                ("HOME", "/h")
            ]),
            Some("/h/.cache/arca".into())
        );
        assert_eq!(from(&[]), None);
    }
}
