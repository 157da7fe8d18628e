//! One file per command, none importing another: each turns its typed
//! arguments into one engine call (through `session` and `steps`) and
//! renders the outcome. This module only dispatches.

mod check;
mod completions;
mod copy;
mod diff;
mod drill;
mod dump;
mod find;
mod forget;
mod init;
mod key;
mod ls;
mod man;
mod mount;
mod pg;
mod prune;
mod repair;
mod restore;
mod rewrite;
mod run;
mod snapshot;
mod snapshots;
mod stats;
mod status;
mod tag;
mod unlock;
mod version;
mod watch;

use anyhow::Result;

use crate::cli::Command;
use crate::config::Config;

/// Runs one command; returns the exit code. The commands that write
/// `--metrics-file` ([`crate::metrics::command_name`]) then write it, also
/// when they fail, unless the command left the run out.
pub fn run(config: &Config, command: Command) -> Result<i32> {
    let metered = crate::metrics::command_name(&command);
    let started = std::time::Instant::now();
    let result = dispatch(config, command);
    if let (Some(name), Some(path)) = (metered, &config.metrics_file)
        && !config.metrics.is_discarded()
    {
        let run = crate::metrics::Run {
            command: name,
            profile: config.profile.as_ref().map_or("", |p| p.name.as_str()),
            repository: config.repo.as_deref().unwrap_or(""),
            exit_code: match &result {
                Ok(code) => *code,
                Err(e) => crate::exit::for_error(e),
            },
            duration: started.elapsed(),
            finished: jiff::Timestamp::now().as_duration().as_secs_f64(),
        };
        if let Err(e) = crate::metrics::write(path, &run, &config.metrics) {
            eprintln!(
                "arca: warning: {}",
                crate::output::sanitize(&format!("{e:#}"))
            );
        }
    }
    result
}

fn dispatch(config: &Config, command: Command) -> Result<i32> {
    match command {
        Command::Init(args) => init::run(config, args),
        Command::Snapshot(args) => snapshot::run(config, *args),
        Command::Snapshots(args) => snapshots::run(config, args),
        Command::Ls(args) => ls::run(config, args),
        Command::Restore(args) => restore::run(config, args),
        Command::Check(args) => check::run(config, args),
        Command::Repair(command) => repair::run(config, command),
        Command::Stats(args) => stats::run(config, args),
        Command::Find(args) => find::run(config, args),
        Command::Diff(args) => diff::run(config, args),
        Command::Dump(args) => dump::run(config, args),
        Command::Forget(args) => forget::run(config, *args),
        Command::Prune(args) => prune::run(config, args),
        Command::Unlock(args) => unlock::run(config, args),
        Command::Key(command) => key::run(config, command),
        Command::Copy(args) => copy::run(config, args),
        Command::Status(args) => status::run(config, args),
        Command::Drill(args) => drill::run(config, args),
        Command::Run(args) => run::run(config, args),
        Command::Tag(args) => tag::run(config, args),
        Command::Mount(args) => mount::run(config, args),
        Command::Rewrite(args) => rewrite::run(config, args),
        Command::Completions(args) => completions::run(args),
        Command::Watch(args) => watch::run(config, *args),
        Command::Pg(command) => pg::run(config, command),
        Command::Man(args) => man::run(config, args),
        Command::Version => version::run(config),
    }
}

#[cfg(test)]
mod tests {
    /// The CLI is a stack: no command reaches into another, and the layers
    /// below the commands (arguments, configuration) know nothing of them.
    #[test]
    fn no_command_imports_another_and_nothing_below_imports_a_command() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut offenders = Vec::new();
        for entry in std::fs::read_dir(dir.join("commands")).unwrap() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == "mod.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            // `use super::*;` in a unit test module reaches only the file itself.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            if code.contains("super::") || code.contains("crate::commands") {
                offenders.push(path.display().to_string());
            }
        }
        for layer in [
            "cli.rs",
            "config.rs",
            "units.rs",
            "session.rs",
            "steps.rs",
            "json.rs",
            "profile.rs",
        ] {
            let text = std::fs::read_to_string(dir.join(layer)).unwrap();
            if text.contains("commands::") {
                offenders.push(layer.to_string());
            }
        }
        assert!(offenders.is_empty(), "{offenders:?}");
    }
}
