//! End-to-end tests: they run the built `arca` binary the way an operator
//! or a cron script would, and check what lands on disk.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod util;

mod bad_day;
mod basics;
mod browse;
mod check;
mod concurrency;
mod contrib;
mod copy;
mod crash;
mod damage;
mod dedup;
mod drill;
mod exit_codes;
mod fidelity;
mod full_disk;
mod golden;
mod hostile;
mod interrupts;
mod json_fields;
mod keys;
mod metrics;
mod mount;
mod options;
mod pg;
mod pgcluster;
mod pitr;
mod progress;
mod prune;
mod remote;
mod repair;
mod restore;
mod rewrite;
mod run;
mod secrets;
mod select;
mod servers;
mod sources;
mod sqlite_live;
mod status;
mod streams;
mod tags;
mod tooling;
mod watch;
