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

/// The exit code for an error: decided by the engine error in its chain.
pub fn for_error(error: &anyhow::Error) -> i32 {
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
