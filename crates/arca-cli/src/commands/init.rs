use anyhow::{Result, bail};
use arca_core::{InitOptions, Owner, Repository};
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
        pack_size: parse_size(&args.pack_size)?,
        ..InitOptions::default()
    };
    let password = zeroize::Zeroizing::new(config.password.get_new()?);
    let owner = Owner {
        hostname: super::hostname(),
        username: super::username(),
    };
    let repo = Repository::init(backend, &password, &options, &owner)?;
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

/// Parses `16MiB`, `512KiB`, `1G`, `1048576`.
fn parse_size(text: &str) -> Result<u32> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        _ => bail!("{text:?} is not a size (try 16MiB)"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| anyhow::anyhow!("{text:?} is not a size (try 16MiB)"))?;
    n.checked_mul(factor)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| anyhow::anyhow!("size {text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("512k").unwrap(), 512 << 10);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert!(parse_size("8GiB").is_err());
        assert!(parse_size("lots").is_err());
    }
}
