//! The operations a command runs, each on an open repository.

pub mod browse;
pub mod check;
pub mod copy;
pub mod forget;
pub mod keys;
pub mod ls;
pub mod mount;
mod packer;
pub mod preview;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod rewrite;
pub mod scan;
pub mod shape;
pub mod snapshot;
pub mod stats;
pub mod tag;
