use anyhow::Result;
use arca_core::{InitOptions, Repository};
use serde::Serialize;

use crate::cli::InitArgs;
use crate::config::Config;
use crate::{output, session};

#[derive(Serialize)]
struct InitJson {
    id: String,
    location: String,
}

pub fn run(config: &Config, args: InitArgs) -> Result<i32> {
    let backend = config.backend()?;
    let options = InitOptions {
        compression: args.compression.0,
        pack_size: args.pack_size.0,
        ..InitOptions::default()
    };
    let password = zeroize::Zeroizing::new(config.password.get_new()?);
    let repo = Repository::init(backend, &password, &options, &session::owner())?;
    if config.json {
        output::json(&InitJson {
            id: repo.config().id.to_hex(),
            location: repo.location(),
        });
    } else {
        config.note(format!(
            "created repository {} at {}\nKeep the password safe: without it the data cannot be read.",
            repo.config().id.short(),
            repo.location()
        ));
    }
    Ok(crate::exit::SUCCESS)
}
