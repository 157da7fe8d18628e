//! Writing to stdout: JSON documents and human text, with a closed pipe
//! (`arca snapshots | head`) treated as success rather than a panic.
//!
//! A command that only lists (see [`listing`]) ends at once when its reader
//! goes away. Every other command carries on with its work (a forget whose
//! table nobody reads still forgets, a snapshot still saves) and just stops
//! printing.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set by [`listing`]: a closed pipe ends the process.
static LISTING: AtomicBool = AtomicBool::new(false);

/// Marks the command as one whose whole work is what it prints, so that a
/// reader going away ends it (exit 0) instead of letting it run on unread.
pub fn listing() {
    LISTING.store(true, Ordering::Relaxed);
}

/// Prints one line on stdout. If the reader went away: a listing exits
/// quietly, anything else goes on without printing.
pub fn line(text: impl std::fmt::Display) {
    let mut out = io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}")
        && e.kind() == io::ErrorKind::BrokenPipe
        && LISTING.load(Ordering::Relaxed)
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
/// file name cannot move the cursor or change colours, and so are the
/// bidirectional and invisible formatting characters that can make a name
/// display as another (`evil\u{202e}txt.sh` shown as `evilhs.txt`).
pub fn sanitize(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else if is_invisible_format(c) {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Bidirectional controls and zero-width or other invisible formatting
/// characters (Unicode's Cf category, as far as they affect display).
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{00ad}'
            | '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{206f}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

#[cfg(test)]
mod tests {
    use super::sanitize;

    #[test]
    fn names_cannot_steer_the_terminal_or_hide_behind_bidi_controls() {
        assert_eq!(sanitize("plain/name.txt"), "plain/name.txt");
        assert_eq!(sanitize("a\u{1b}[31mred"), "a\\u{1b}[31mred");
        assert_eq!(sanitize("evil\u{202e}txt.sh"), "evil\\u{202e}txt.sh");
        assert_eq!(sanitize("x\u{2066}y\u{2069}"), "x\\u{2066}y\\u{2069}");
        assert_eq!(sanitize("zero\u{200b}width"), "zero\\u{200b}width");
        assert_eq!(sanitize("line\nbreak"), "line\\nbreak");
        assert_eq!(sanitize("ünïcödé ☃"), "ünïcödé ☃");
    }
}
