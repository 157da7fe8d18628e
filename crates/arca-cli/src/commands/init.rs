use anyhow::Result;
use arca_core::{InitOptions, Repository};
use serde::Serialize;

use crate::cli::InitArgs;
use crate::config::Config;
use crate::output;

#[derive(Serialize)]
struct InitJson {
    id: String,
    location: String,
}

pub fn run(config: &Config, args: InitArgs) -> Result<i32> {
    let backend = config.backend()?;
    let options = InitOptions {
        compression: args.compression,
        pack_size: u32::try_from(super::parse_size(&args.pack_size)?)
            .map_err(|_| anyhow::anyhow!("pack size {} is too large", args.pack_size))?,
        ..InitOptions::default()
    };
    let password = zeroize::Zeroizing::new(config.password.get_new()?);
    let repo = Repository::init(backend, &password, &options, &super::owner())?;
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

#[cfg(test)]
mod tests {
    use super::super::parse_size;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_size("8GiB").unwrap(), 8 << 30);
        assert!(parse_size("99999999999T").is_err());
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn durations_parse_with_units() {
        use super::super::parse_duration;
        use std::time::Duration;
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("1w").unwrap(), Duration::from_secs(604_800));
        for bad in ["", "10", "5x", "h", "99999999999999999999d", "1h-"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
