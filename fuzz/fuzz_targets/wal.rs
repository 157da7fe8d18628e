//! WAL objects, as stored and with the header plaintext behind a valid
//! seal.
#![no_main]
use arca_core::format;
use arca_core::raw::{MasterKey, decode_wal};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_secret(&[7; 32]);
    let name = key.wal_name("000000010000000000000001");
    let object = name.to_hex();
    let _ = decode_wal(&key, &object, data);
    let aad = [format::AAD_WAL_HEADER, &name.0].concat();
    let sealed = key.seal(&aad, data);
    let mut stored = (sealed.len() as u32).to_le_bytes().to_vec();
    stored.extend_from_slice(&sealed);
    let _ = decode_wal(&key, &object, &stored);
});
