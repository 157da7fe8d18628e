//! Writing to stdout: JSON documents and human text, with a closed pipe
//! (`arca snapshots | head`) treated as success rather than a panic.

use std::io::{self, Write};

/// Prints one line on stdout; exits quietly if the reader went away.
pub fn line(text: impl std::fmt::Display) {
    let mut out = io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}")
        && e.kind() == io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// Prints a value as one JSON document.
pub fn json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => line(text),
        Err(e) => eprintln!("arca: cannot encode JSON: {e}"),
    }
}

/// Prints a value as one compact JSON line (for streams).
pub fn json_line(value: &impl serde::Serialize) {
    match serde_json::to_string(value) {
        Ok(text) => line(text),
        Err(e) => eprintln!("arca: cannot encode JSON: {e}"),
    }
}

/// Makes text safe for a terminal: control characters are escaped so that a
/// file name cannot move the cursor or change colours.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}
