//! End-to-end tests: they run the built `arca` binary the way an operator
//! or a cron script would, and check what lands on disk.

mod util;

mod basics;
mod damage;
mod dedup;
