//! Opening the repository a command works on, taking its lock, and who
//! this process is: what every command does before its one engine call.

use anyhow::Result;
use arca_core::{Lock, LockMode, LockRecord, Owner, Repository};

use crate::config::Config;

/// Opens the configured repository and loads its index.
pub fn open(config: &Config) -> Result<Repository> {
    let mut repo = open_unindexed(config)?;
    repo.load_index()?;
    if config.verbose > 0 {
        eprintln!(
            "opened repository {} at {}: {} blobs indexed",
            repo.config().id.short(),
            repo.location(),
            repo.index().len()
        );
    }
    Ok(repo)
}

/// Opens the configured repository without loading its index: for the
/// commands that read only snapshot files, or check or rebuild the index
/// themselves.
pub fn open_unindexed(config: &Config) -> Result<Repository> {
    let Some(address) = config.repo.as_deref() else {
        anyhow::bail!("no repository given: use -r REPO or set ARCA_REPOSITORY");
    };
    let password = zeroize::Zeroizing::new(config.password.get()?);
    config.open_repository(address, &password)
}

/// Where a snapshot makes the temporary copy of a rollback-journal SQLite
/// database: the cache directory, made (mode 0700) if it is missing;
/// `None` (the system's temporary directory) without one or when it cannot
/// be made.
pub fn scratch_dir(config: &Config) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = config.cache_dir.as_ref()?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .ok()
        .map(|()| dir.clone())
}

/// Takes a lock on the repository for `command`, waiting `--retry-lock`.
pub fn lock(config: &Config, repo: &Repository, mode: LockMode, command: &str) -> Result<Lock> {
    let record = LockRecord::new(mode, command, &owner());
    let waiting = |holder: &str| {
        eprintln!(
            "arca: repository {} is locked by {}; waiting up to {} s",
            repo.location(),
            crate::output::sanitize(holder),
            config.retry_lock.as_secs()
        );
    };
    Ok(Lock::acquire_as(repo, record, config.retry_lock, &waiting)?)
}

/// Who this process is, as locks, key files and snapshots record it.
pub fn owner() -> Owner {
    Owner {
        hostname: hostname(),
        username: username(),
    }
}

/// The machine's host name (`localhost` when it has none).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The name of the user arca runs as: the password database's entry for
/// the effective user id, else `$USER` or `$LOGNAME`, else the number.
pub fn username() -> String {
    let uid = nix::unistd::geteuid();
    if let Ok(Some(user)) = nix::unistd::User::from_uid(uid) {
        return user.name;
    }
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| uid.to_string())
}

/// The global options that make another arca process (PostgreSQL's
/// restore_command, the WAL agent) open this run's repository the same
/// way: profile, repository and password file or command, paths made
/// absolute. A password from the environment is left to the environment.
pub fn repository_args(config: &Config) -> Vec<String> {
    use crate::password::PasswordSource;
    let absolute = |p: &std::path::Path| {
        std::path::absolute(p)
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    let mut args = Vec::new();
    if let Some(profile) = &config.profile {
        args.extend(["--config".to_string(), absolute(&profile.path)]);
    }
    if let Some(repo) = &config.repo {
        args.extend(["-r".to_string(), repo.clone()]);
    }
    match &config.password {
        PasswordSource::File(path) => {
            args.extend(["--password-file".to_string(), absolute(path)]);
        }
        PasswordSource::Command(command) => {
            args.extend(["--password-command".to_string(), command.clone()]);
        }
        PasswordSource::EnvOrPrompt(_) => {}
    }
    args
}
