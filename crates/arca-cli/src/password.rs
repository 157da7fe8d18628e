//! Where a repository password comes from: `--password-file`,
//! `--password-command`, `ARCA_PASSWORD`, or a prompt without echo on the
//! terminal (for `copy`'s destination: `--to-password-file`,
//! `--to-password-command`, `ARCA_TO_PASSWORD`, or a prompt); and where a
//! new one (`key add`, `key passwd`) comes from: `--new-password-file`,
//! `ARCA_NEW_PASSWORD`, or a prompt asked twice. Passwords never travel in
//! process arguments.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use zeroize::{Zeroize, Zeroizing};

use crate::exit::Usage;

#[derive(Debug)]
pub enum PasswordSource {
    File(PathBuf),
    Command(String),
    /// The environment variable of `Role`, else a prompt on the terminal.
    EnvOrPrompt(Role),
}

/// Which repository a password opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The repository of `-r` (for `copy`, the source).
    Repository,
    /// `copy`'s destination (`--to`).
    Destination,
}

impl Role {
    /// The prefix of its environment variables.
    fn env_prefix(self) -> &'static str {
        match self {
            Role::Repository => "ARCA_",
            Role::Destination => "ARCA_TO_",
        }
    }

    /// How messages name it, before "password".
    fn label(self) -> &'static str {
        match self {
            Role::Repository => "",
            Role::Destination => "destination ",
        }
    }
}

impl PasswordSource {
    /// The password for an existing repository.
    pub fn get(&self) -> Result<Vec<u8>> {
        self.obtain(false)
    }

    /// A password for a new repository: prompted twice when typed.
    pub fn get_new(&self) -> Result<Vec<u8>> {
        self.obtain(true)
    }

    fn obtain(&self, confirm: bool) -> Result<Vec<u8>> {
        let password = match self {
            PasswordSource::File(path) => {
                let text = std::fs::read(path)
                    .with_context(|| format!("cannot read password file {}", path.display()))?;
                first_line(text)
            }
            PasswordSource::Command(cmd) => run_command(cmd)?,
            PasswordSource::EnvOrPrompt(role) => {
                match std::env::var_os(format!("{}PASSWORD", role.env_prefix())) {
                    Some(pw) => std::os::unix::ffi::OsStringExt::into_vec(pw),
                    None => prompt(
                        &format!("enter {}repository password: ", role.label()),
                        confirm,
                        *role,
                    )?,
                }
            }
        };
        if password.is_empty() {
            bail!("the password is empty");
        }
        Ok(password)
    }
}

/// The first line of `text`, without its line ending; the rest is wiped.
fn first_line(mut text: Vec<u8>) -> Vec<u8> {
    if let Some(end) = text.iter().position(|&b| b == b'\n') {
        text[end..].zeroize();
        text.truncate(end);
    }
    if text.last() == Some(&b'\r') {
        text.pop();
    }
    text
}

fn run_command(cmd: &str) -> Result<Vec<u8>> {
    let output = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run password command {cmd:?}"))?;
    if !output.status.success() {
        bail!("password command {cmd:?} failed ({})", output.status);
    }
    Ok(first_line(output.stdout))
}

/// Where a new password comes from, settled before the repository is
/// opened so that a script without one fails at once.
#[derive(Debug)]
pub enum NewPasswordSource {
    File(PathBuf),
    Env,
    Prompt,
}

impl NewPasswordSource {
    /// `--new-password-file`, else `ARCA_NEW_PASSWORD`, else the terminal;
    /// with none of them, a usage error.
    pub fn resolve(file: Option<PathBuf>) -> Result<NewPasswordSource> {
        if let Some(file) = file {
            Ok(NewPasswordSource::File(file))
        } else if std::env::var_os(NEW_PASSWORD_ENV).is_some() {
            Ok(NewPasswordSource::Env)
        } else if std::io::stdin().is_terminal() {
            Ok(NewPasswordSource::Prompt)
        } else {
            Err(Usage(format!(
                "no new password given: use --new-password-file FILE, set {NEW_PASSWORD_ENV}, or run on a terminal"
            ))
            .into())
        }
    }

    /// The new password; an empty one is refused.
    pub fn get(&self) -> Result<Vec<u8>> {
        let password = match self {
            NewPasswordSource::File(path) => first_line(
                std::fs::read(path)
                    .with_context(|| format!("cannot read new password file {}", path.display()))?,
            ),
            NewPasswordSource::Env => std::env::var_os(NEW_PASSWORD_ENV)
                .map(std::os::unix::ffi::OsStringExt::into_vec)
                .unwrap_or_default(),
            NewPasswordSource::Prompt => {
                prompt("enter the new password: ", true, Role::Repository)?
            }
        };
        if password.is_empty() {
            return Err(Usage("the new password is empty".into()).into());
        }
        Ok(password)
    }
}

const NEW_PASSWORD_ENV: &str = "ARCA_NEW_PASSWORD";

fn prompt(question: &str, confirm: bool, role: Role) -> Result<Vec<u8>> {
    // Only prompt when a person is plausibly there: a cron job or a script
    // with no password source must fail at once, not wait on /dev/tty.
    if !std::io::stdin().is_terminal() {
        let p = role.env_prefix();
        bail!(
            "no {}password given: set {p}PASSWORD_FILE, {p}PASSWORD_COMMAND or {p}PASSWORD, or run on a terminal",
            role.label()
        );
    }
    let _echo = crate::interrupt::prompting();
    let first = Zeroizing::new(
        rpassword::prompt_password(question)
            .context("cannot read the password from the terminal")?,
    );
    if confirm {
        let again = Zeroizing::new(
            rpassword::prompt_password("enter the password again: ")
                .context("cannot read the password from the terminal")?,
        );
        if *again != *first {
            bail!("the passwords do not match");
        }
    }
    Ok(first.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::first_line;

    #[test]
    fn first_line_strips_the_line_ending_only() {
        assert_eq!(first_line(b"pw\n".to_vec()), b"pw");
        assert_eq!(first_line(b"pw\r\nrest".to_vec()), b"pw");
        assert_eq!(first_line(b" pw ".to_vec()), b" pw ");
    }
}
