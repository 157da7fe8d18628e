//! Key files are the one object read before any key exists: decoding and
//! validating one (KDF caps and floors included) must never panic or
//! allocate on the file's say-so.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = arca_core::raw::KeyFile::decode(data, "key fuzz");
});
