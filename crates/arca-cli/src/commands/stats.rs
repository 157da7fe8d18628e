use anyhow::Result;
use indicatif::HumanBytes;

use crate::cli::StatsArgs;
use crate::config::Config;
use crate::{output, session};

pub fn run(config: &Config, args: StatsArgs) -> Result<i32> {
    output::listing();
    let repo = session::open(config)?;
    let filter = args.filter.filter();
    let snapshots = match &args.snapshot {
        Some(spec) => vec![arca_core::select::resolve(&repo, &spec.which, &filter)?],
        None => arca_core::select::matching(&repo, &filter)?,
    };
    let s = arca_core::stats(&repo, &snapshots)?;
    if config.json {
        output::json(&s);
        return Ok(crate::exit::SUCCESS);
    }
    output::line(format!("snapshots:          {}", s.snapshots));
    output::line(format!("files:              {}", s.files));
    output::line(format!(
        "restore size:       {}",
        HumanBytes(s.restore_size)
    ));
    output::line(format!(
        "unique data:        {} in {} blobs",
        HumanBytes(s.unique_bytes),
        s.unique_blobs
    ));
    output::line(format!(
        "stored data:        {}",
        HumanBytes(s.stored_bytes)
    ));
    output::line(format!(
        "repository:         {} in {} packs",
        HumanBytes(s.repository_bytes),
        s.packs
    ));
    output::line(format!("compression ratio:  {:.2}", s.compression_ratio));
    output::line(format!("dedup ratio:        {:.2}", s.dedup_ratio));
    Ok(crate::exit::SUCCESS)
}
