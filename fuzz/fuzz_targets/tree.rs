//! Tree blobs (plaintext MessagePack after a blob is opened): names,
//! kinds and field combinations are all checked on decode.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = arca_core::Tree::decode(data, "tree fuzz");
});
