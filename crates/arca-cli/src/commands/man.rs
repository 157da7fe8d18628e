//! `arca man [DIR]`: the manual pages, generated from the clap definition:
//! arca.1, and arca-COMMAND.1 (arca-key-add.1, ...) for every command.

use std::path::Path;

use anyhow::{Context, Result};
use clap::CommandFactory;

use crate::cli::{Cli, ManArgs};
use crate::config::Config;
use crate::{exit, output};

pub fn run(config: &Config, args: ManArgs) -> Result<i32> {
    let command = Cli::command().version(env!("ARCA_VERSION_LINE"));
    let Some(dir) = args.dir else {
        // Only prints: a closed pipe (`arca man | head`) ends it quietly.
        output::listing();
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .render(&mut page)
            .context("cannot render the manual page")?;
        output::line(String::from_utf8_lossy(&page).trim_end());
        return Ok(exit::SUCCESS);
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let written = write_pages(&command, "arca", &dir)?;
    config.note(format!(
        "wrote {written} manual pages into {}",
        dir.display()
    ));
    Ok(exit::SUCCESS)
}

/// Writes `name.1` for `command` and, below it, one page per subcommand;
/// returns how many pages were written. `name` is the page's name
/// (`arca-key-add`), which is also how its synopsis spells the command.
fn write_pages(command: &clap::Command, name: &str, dir: &Path) -> Result<usize> {
    let page = dir.join(format!("{name}.1"));
    let mut bytes = Vec::new();
    // The page's NAME is the page's name; clap takes a static name, and
    // these few strings live until the process ends anyway.
    let static_name: &'static str = Box::leak(name.to_string().into_boxed_str());
    let shown = command
        .clone()
        .name(static_name)
        .bin_name(name.replace('-', " "));
    clap_mangen::Man::new(shown)
        .title(name.to_ascii_uppercase())
        .render(&mut bytes)
        .context("cannot render a manual page")?;
    std::fs::write(&page, bytes).with_context(|| format!("cannot write {}", page.display()))?;
    let mut written = 1;
    for sub in command
        .get_subcommands()
        .filter(|s| s.get_name() != "help" && !s.is_hide_set())
    {
        written += write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}
