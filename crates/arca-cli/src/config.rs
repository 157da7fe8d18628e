//! The one resolved configuration every command receives: where the
//! repository is, how to get its password, and how to talk to the user.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arca_backend::{Backend, LocalBackend};

use crate::cli::GlobalArgs;
use crate::password::{PasswordSource, Role};

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
    /// The local cache directory (`ARCA_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/arca`, else `~/.cache/arca`); `None` with
    /// `--no-cache` or when none of them is known.
    pub cache_dir: Option<PathBuf>,
}

impl Config {
    pub fn resolve(args: GlobalArgs) -> Result<Config> {
        let password = if let Some(file) = args.password_file {
            PasswordSource::File(file)
        } else if let Some(cmd) = args.password_command {
            PasswordSource::Command(cmd)
        } else {
            PasswordSource::EnvOrPrompt(Role::Repository)
        };
        let retry_lock = match args.retry_lock.as_deref() {
            Some(text) => crate::commands::parse_duration(text)
                .with_context(|| "invalid --retry-lock".to_string())?,
            None => std::time::Duration::ZERO,
        };
        Ok(Config {
            retry_lock,
            no_cache: args.no_cache,
            cache_dir: if args.no_cache {
                None
            } else {
                cache_dir(|name| std::env::var_os(name))
            },
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

#[cfg(test)]
mod tests {
    use super::cache_dir;
    use std::path::PathBuf;

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
