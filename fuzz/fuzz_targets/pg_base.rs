//! A pg_basebackup tar stream as `pg backup` reads it on the way into the
//! repository, and a base backup record as `pg restore` and prune read it.
#![no_main]
use arca_core::pg::{describe_stream, parse_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = describe_stream(&mut &data[..]);
    let _ = parse_record(data, "snapshot 00000000");
});
