//! The one resolved configuration every command receives: where the
//! repository is, how to get its password, and how to talk to the user.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arca_backend::{Backend, LocalBackend};

use crate::cli::GlobalArgs;
use crate::password::PasswordSource;

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
}

impl Config {
    pub fn resolve(args: GlobalArgs) -> Result<Config> {
        let password = if let Some(file) = args.password_file {
            PasswordSource::File(file)
        } else if let Some(cmd) = args.password_command {
            PasswordSource::Command(cmd)
        } else {
            PasswordSource::EnvOrPrompt
        };
        let retry_lock = match args.retry_lock.as_deref() {
            Some(text) => crate::commands::parse_duration(text)
                .with_context(|| "invalid --retry-lock".to_string())?,
            None => std::time::Duration::ZERO,
        };
        Ok(Config {
            retry_lock,
            repo: args.repo,
            password,
            json: args.json,
            quiet: args.quiet,
            verbose: args.verbose,
            progress: !args.no_progress
                && !args.quiet
                && !args.json
                && std::io::stderr().is_terminal(),
        })
    }

    /// The backend for `-r`/`ARCA_REPOSITORY`.
    pub fn backend(&self) -> Result<Arc<dyn Backend>> {
        let Some(repo) = self.repo.as_deref() else {
            bail!("no repository given: use -r REPO or set ARCA_REPOSITORY");
        };
        open_backend(repo)
    }

    /// Prints a human message on stderr unless quiet.
    pub fn note(&self, message: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }
}

/// Parses a repository address into a backend.
pub fn open_backend(repo: &str) -> Result<Arc<dyn Backend>> {
    if let Some(scheme) = ["s3:", "sftp:", "rest:", "b2:"]
        .iter()
        .find(|s| repo.starts_with(**s))
    {
        bail!(
            "repository {repo}: {} repositories are not supported by this build; use a local path",
            scheme.trim_end_matches(':')
        );
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
