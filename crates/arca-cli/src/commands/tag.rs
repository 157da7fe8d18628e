//! `arca tag`: add, remove or set the tags of snapshots.

use anyhow::Result;
use arca_core::ops::tag::{self, TagChange};
use arca_core::select;
use serde::Serialize;

use crate::cli::TagArgs;
use crate::config::Config;
use crate::{exit, output, session};

/// One changed snapshot in `tag --json`.
#[derive(Serialize)]
struct RetaggedJson {
    /// The snapshot replaced (and removed).
    old: String,
    /// Its replacement.
    new: String,
    tags: Vec<String>,
}

/// `tag --json`.
#[derive(Serialize)]
struct TagJson {
    changed: Vec<RetaggedJson>,
    /// Snapshots whose tags already were as asked.
    unchanged: Vec<String>,
}

pub fn run(config: &Config, args: TagArgs) -> Result<i32> {
    let strings = |tags: Vec<crate::units::Tag>| tags.into_iter().map(|t| t.0).collect();
    let change = TagChange {
        set: (!args.set.is_empty()).then(|| strings(args.set)),
        add: strings(args.add),
        remove: strings(args.remove),
    };
    let repo = session::open(config)?;
    let filter = args.filter.filter();
    let chosen = args
        .snapshots
        .iter()
        .map(|spec| select::resolve(&repo, &spec.which, &filter))
        .collect::<arca_core::Result<Vec<_>>>()?;
    let plan = tag::plan(&chosen, &change)?;
    let done = tag::execute(&repo, &plan)?;
    if config.json {
        output::json(&TagJson {
            changed: done
                .iter()
                .zip(&plan.changes)
                .map(|(r, (_, snapshot))| RetaggedJson {
                    old: r.old.to_hex(),
                    new: r.new.to_hex(),
                    tags: snapshot.tags.clone(),
                })
                .collect(),
            unchanged: plan.unchanged.iter().map(|id| id.to_hex()).collect(),
        });
    } else {
        for (r, (_, snapshot)) in done.iter().zip(&plan.changes) {
            config.note(format!(
                "snapshot {} is now {}, tags {}",
                r.old.short(),
                r.new.short(),
                output::sanitize(&snapshot.tags.join(","))
            ));
        }
        for id in &plan.unchanged {
            config.note(format!("snapshot {} already has those tags", id.short()));
        }
    }
    Ok(exit::SUCCESS)
}
