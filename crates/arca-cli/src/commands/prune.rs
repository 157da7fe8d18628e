//! `arca prune`: give back the space of data no snapshot uses.

use anyhow::Result;
use arca_core::PruneOptions;

use crate::cli::PruneArgs;
use crate::config::Config;
use crate::{exit, output, session, steps};

pub fn run(config: &Config, args: PruneArgs) -> Result<i32> {
    let options = PruneOptions {
        max_unused: args.options.max_unused.0,
        keep_marked: args.options.keep_marked.0,
        instant_delete: args.options.instant_delete,
    };
    let mut repo = session::open_unindexed(config)?;
    let report = steps::prune(config, &mut repo, &options, args.dry_run)?;
    if config.json {
        output::json(&report);
    } else {
        steps::print_prune(config, &report, &options);
    }
    Ok(exit::SUCCESS)
}
