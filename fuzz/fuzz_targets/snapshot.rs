//! Snapshot files, as stored and as the plaintext behind a valid seal.
#![no_main]
use arca_core::{Snapshot, format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = arca_core::raw::MasterKey::from_secret(&[7; 32]);
    let _ = Snapshot::decode(data, &key, "snapshot fuzz");
    let _ = Snapshot::decode(&key.seal(format::AAD_SNAPSHOT, data), &key, "snapshot fuzz");
});
