//! Lock files, as stored and as the plaintext behind a valid seal.
#![no_main]
use arca_core::{LockRecord, format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = arca_core::raw::MasterKey::from_secret(&[7; 32]);
    let _ = LockRecord::decode(data, &key, "lock fuzz");
    let _ = LockRecord::decode(&key.seal(format::AAD_LOCK, data), &key, "lock fuzz");
});
