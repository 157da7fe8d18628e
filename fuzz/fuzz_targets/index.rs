//! Index files, as stored and as the plaintext behind a valid seal.
#![no_main]
use arca_core::{format};
use arca_core::raw::{IndexFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = arca_core::raw::MasterKey::from_secret(&[7; 32]);
    let _ = IndexFile::decode(data, &key, "index fuzz");
    let _ = IndexFile::decode(&key.seal(format::AAD_INDEX, data), &key, "index fuzz");
});
