use anyhow::Result;
use arca_core::select::{self, Spec};
use arca_core::{Overwrite, RestoreOptions};
use indicatif::HumanBytes;
use serde::Serialize;

use crate::cli::RestoreArgs;
use crate::config::Config;
use crate::{output, session, steps};

#[derive(Serialize)]
struct RestoreJson {
    snapshot: String,
    target: String,
    #[serde(flatten)]
    summary: arca_core::RestoreSummary,
}

pub fn run(config: &Config, args: RestoreArgs) -> Result<i32> {
    let repo = session::open(config)?;
    let spec = match (args.snapshot, args.as_of) {
        (Some(spec), _) => spec,
        (None, Some(time)) => Spec::as_of(time.0),
        (None, None) => Spec::latest(),
    };
    let (id, snapshot) = select::resolve(&repo, &spec.which, &args.filter.filter())?;
    let options = RestoreOptions {
        subpath: spec.path,
        include: args.includes.into_iter().map(|g| g.0).collect(),
        exclude: args.excludes.into_iter().map(|g| g.0).collect(),
        overwrite: match args.overwrite.as_str() {
            "always" => Overwrite::Always,
            "never" => Overwrite::Never,
            _ => Overwrite::IfChanged,
        },
        delete: args.delete,
        verify: args.verify,
        // Only root gets back what grants privileges, and not even root
        // when asked not to.
        special: nix::unistd::geteuid().is_root() && !args.no_special,
    };
    let summary = steps::restore(config, &repo, &snapshot, &args.target, &options)?;
    for warning in &summary.warnings {
        eprintln!("arca: warning: {}", output::sanitize(warning));
    }
    if !summary.owners_restored {
        config.note("arca: not running as root: restored files belong to the current user");
    }
    let damaged = steps::damage_lines(&summary.damaged);
    for line in &damaged {
        eprintln!("arca: {}", output::sanitize(line));
    }
    let restored_files = summary.files;
    let damaged_count = summary.damaged.len();
    let mut named: Vec<String> = summary
        .damaged
        .iter()
        .take(3)
        .map(|d| output::sanitize(&d.path))
        .collect();
    if damaged_count > named.len() {
        named.push(format!("and {} more", damaged_count - named.len()));
    }
    let exit = if damaged_count == 0 {
        crate::exit::SUCCESS
    } else {
        crate::exit::ERROR
    };
    if config.json {
        output::json(&RestoreJson {
            snapshot: id.to_hex(),
            target: args.target.display().to_string(),
            summary,
        });
    } else {
        config.note(format!(
            "restored snapshot {} to {}: {} files, {} directories, {} symlinks, {}",
            id.short(),
            output::sanitize(&args.target.display().to_string()),
            summary.files,
            summary.dirs,
            summary.symlinks,
            HumanBytes(summary.bytes)
        ));
    }
    if damaged_count > 0 {
        eprintln!(
            "arca: restored {restored_files} files; {damaged_count} damaged: {}; run arca check --read-data",
            named.join(", ")
        );
    }
    Ok(exit)
}
