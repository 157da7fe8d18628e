//! `arca version`: the version, the commit it was built from, its features.

use anyhow::Result;
use serde::Serialize;

use crate::config::Config;
use crate::{exit, output};

/// `version --json`.
#[derive(Serialize)]
struct VersionJson {
    version: &'static str,
    commit: &'static str,
    features: Vec<&'static str>,
}

pub fn run(config: &Config) -> Result<i32> {
    output::listing();
    if config.json {
        output::json(&VersionJson {
            version: env!("CARGO_PKG_VERSION"),
            commit: env!("ARCA_COMMIT"),
            features: env!("ARCA_FEATURES")
                .split(',')
                .filter(|f| *f != "none")
                .collect(),
        });
    } else {
        output::line(format!("arca {}", env!("ARCA_VERSION_LINE")));
    }
    Ok(exit::SUCCESS)
}
