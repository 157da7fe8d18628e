//! The engine's integration tests, one module per subject, built as one
//! binary so that the dependency tree is linked once rather than once per
//! file. (`interrupt.rs` stays a binary of its own: running the cleanup
//! closes the process's registry for good.)
//!
//! One subject: `cargo test -p arca-core --test engine fault_sweep`.

#[path = "../common/mod.rs"]
mod common;

mod absent;
mod copy;
mod damage;
mod fault_sweep;
mod faults;
mod format_examples;
mod fuzz_seeds;
mod hostile;
mod keys;
mod lying;
mod pg;
mod preview;
mod properties;
mod prune;
mod resume;
mod rewrite;
mod sqlite;
mod strays;
mod tag;
mod tampering;
mod wal;
