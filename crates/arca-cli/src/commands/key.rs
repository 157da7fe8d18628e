//! `arca key`: list, add and remove the passwords (keys) that open the
//! repository, and change the one in use.

use anyhow::Result;
use arca_core::{KdfParams, KeyId, KeyInfo, LockMode, Owner};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::cli::{KeyCommand, KeyRemoveArgs, NewKeyArgs};
use crate::config::Config;
use crate::password::NewPasswordSource;
use crate::{exit, output, session};

pub fn run(config: &Config, command: KeyCommand) -> Result<i32> {
    match command {
        KeyCommand::List => list(config),
        KeyCommand::Add(args) => add(config, args),
        KeyCommand::Remove(args) => remove(config, args),
        KeyCommand::Passwd(args) => passwd(config, args),
    }
}

/// A key as `key list --json` shows it; field names are part of the CLI
/// contract.
#[derive(Serialize)]
struct KeyJson<'a> {
    id: String,
    short_id: String,
    current: bool,
    /// `None` for an unreadable key file, like the fields below.
    created: Option<String>,
    hostname: Option<&'a str>,
    username: Option<&'a str>,
    /// Why the key file could not be read.
    error: Option<&'a str>,
}

impl<'a> KeyJson<'a> {
    fn new(key: &'a KeyInfo) -> KeyJson<'a> {
        let readable = key.error.is_none();
        KeyJson {
            id: key.id.to_hex(),
            short_id: key.id.short(),
            current: key.current,
            created: key.created.map(|t| t.to_rfc3339()),
            hostname: readable.then_some(key.hostname.as_str()),
            username: readable.then_some(key.username.as_str()),
            error: key.error.as_deref(),
        }
    }
}

/// What `key add`, `remove` and `passwd` print with `--json`.
#[derive(Serialize)]
struct ChangeJson {
    added: Option<String>,
    removed: Option<String>,
}

fn list(config: &Config) -> Result<i32> {
    output::listing();
    let repo = session::open_unindexed(config)?;
    let keys = arca_core::list_keys(&repo)?;
    if config.json {
        output::json(&keys.iter().map(KeyJson::new).collect::<Vec<_>>());
    } else {
        print_table(&keys);
    }
    Ok(exit::SUCCESS)
}

fn add(config: &Config, args: NewKeyArgs) -> Result<i32> {
    let source = NewPasswordSource::resolve(args.new_password_file.clone())?;
    let repo = session::open_unindexed(config)?;
    let password = Zeroizing::new(source.get()?);
    let lock = session::lock(config, &repo, LockMode::Exclusive, "key add")?;
    let id = arca_core::add_key(&repo, &password, KdfParams::default(), &owner(&args), &lock)?;
    report(config, Some(id), None, || {
        format!("added key {} to repository {}", id.short(), repo.location())
    });
    Ok(exit::SUCCESS)
}

fn remove(config: &Config, args: KeyRemoveArgs) -> Result<i32> {
    let repo = session::open_unindexed(config)?;
    let lock = session::lock(config, &repo, LockMode::Exclusive, "key remove")?;
    let id = arca_core::remove_key(&repo, &args.id, args.force, &lock)?;
    report(config, None, Some(id), || {
        format!(
            "removed key {} from repository {}",
            id.short(),
            repo.location()
        )
    });
    Ok(exit::SUCCESS)
}

fn passwd(config: &Config, args: NewKeyArgs) -> Result<i32> {
    let source = NewPasswordSource::resolve(args.new_password_file.clone())?;
    let mut repo = session::open_unindexed(config)?;
    let password = Zeroizing::new(source.get()?);
    let lock = session::lock(config, &repo, LockMode::Exclusive, "key passwd")?;
    let old = repo.key_id();
    let new = arca_core::change_password(
        &mut repo,
        &password,
        KdfParams::default(),
        &owner(&args),
        &lock,
    )?;
    report(config, Some(new), Some(old), || {
        format!(
            "changed the password of repository {}: key {} replaces key {}",
            repo.location(),
            new.short(),
            old.short()
        )
    });
    Ok(exit::SUCCESS)
}

/// Who the new key records as its maker: this host and user unless the
/// command line says otherwise.
fn owner(args: &NewKeyArgs) -> Owner {
    let mut owner = session::owner();
    if let Some(host) = &args.host {
        owner.hostname.clone_from(host);
    }
    if let Some(user) = &args.user {
        owner.username.clone_from(user);
    }
    owner
}

/// A JSON object on stdout, or a one-line confirmation on stderr.
fn report(
    config: &Config,
    added: Option<KeyId>,
    removed: Option<KeyId>,
    message: impl FnOnce() -> String,
) {
    if config.json {
        output::json(&ChangeJson {
            added: added.map(|id| id.to_hex()),
            removed: removed.map(|id| id.to_hex()),
        });
    } else {
        config.note(output::sanitize(&message()));
    }
}

fn print_table(keys: &[KeyInfo]) {
    let rows: Vec<[String; 4]> = keys
        .iter()
        .map(|k| match &k.error {
            None => [
                k.id.short(),
                k.created.map(|t| t.to_local_string()).unwrap_or_default(),
                output::sanitize(&k.hostname),
                output::sanitize(&k.username),
            ],
            Some(e) => [
                k.id.short(),
                format!("unreadable: {}", output::sanitize(e)),
                String::new(),
                String::new(),
            ],
        })
        .collect();
    let created_w = 19;
    let host_w = rows.iter().map(|r| r[2].len()).max().unwrap_or(0).max(4);
    let header = format!(
        "  {:<8}  {:<created_w$}  {:<host_w$}  User",
        "ID", "Created", "Host"
    );
    output::line(&header);
    output::line("-".repeat(header.len() + 6));
    for (key, [id, created, host, user]) in keys.iter().zip(&rows) {
        let mark = if key.current { '*' } else { ' ' };
        let line = format!("{mark} {id:<8}  {created:<created_w$}  {host:<host_w$}  {user}");
        output::line(line.trim_end());
    }
    output::line("-".repeat(header.len() + 6));
    let n = keys.len();
    output::line(format!(
        "{n} key{} (* opened the repository)",
        if n == 1 { "" } else { "s" }
    ));
}
