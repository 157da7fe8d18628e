//! Exit codes, as the CLI contract lists them, and the one place errors map
//! to them.

use arca_core::ErrorKind;

pub const SUCCESS: i32 = 0;
pub const ERROR: i32 = 1;
pub const USAGE: i32 = 2;
/// The snapshot was saved, but some source files could not be read.
pub const PARTIAL: i32 = 3;
pub const NO_REPOSITORY: i32 = 10;
pub const LOCKED: i32 = 11;
pub const WRONG_PASSWORD: i32 = 12;

/// A command line that cannot work as given, found only once the command
/// runs (a missing new password, say): exit code 2, like clap's own errors.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// The exit code for an error: a [`Usage`] error, or else the engine error
/// in its chain, decides.
pub fn for_error(error: &anyhow::Error) -> i32 {
    if error.chain().any(|e| e.is::<Usage>()) {
        return USAGE;
    }
    let kind = error
        .chain()
        .find_map(|e| e.downcast_ref::<arca_core::Error>())
        .map(arca_core::Error::kind);
    match kind {
        Some(ErrorKind::NoRepository) => NO_REPOSITORY,
        Some(ErrorKind::WrongPassword) => WRONG_PASSWORD,
        Some(ErrorKind::Locked) => LOCKED,
        _ => ERROR,
    }
}

/// What to do about an engine error, in this program's terms (the engine's
/// messages name no commands or options); `None` when the message is enough.
pub fn hint(error: &anyhow::Error) -> Option<&'static str> {
    use arca_core::Error;
    error
        .chain()
        .filter_map(|e| e.downcast_ref::<Error>())
        .find_map(|e| match e {
            Error::Locked { .. } => Some(
                "wait for it (--retry-lock DURATION), or run `arca unlock` if that process is gone",
            ),
            Error::KeyInUse { .. } => Some("pass --force to remove it anyway"),
            Error::PacksMissing { .. } => {
                Some("run arca check, and arca repair index if they are still missing")
            }
            _ => None,
        })
}
