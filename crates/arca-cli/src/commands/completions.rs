//! `arca completions SHELL`: a completion script, generated from the clap
//! definition so it always knows every command and option.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::{exit, output};

pub fn run(args: CompletionsArgs) -> Result<i32> {
    output::listing();
    let mut command = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "arca", &mut script);
    // Through output, so that a closed pipe ends quietly.
    output::line(String::from_utf8_lossy(&script).trim_end());
    Ok(exit::SUCCESS)
}
