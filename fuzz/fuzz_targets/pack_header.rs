//! Pack headers: a whole stored pack, and a pack whose sealed header holds
//! the input as plaintext behind a valid seal (entries pointing anywhere).
#![no_main]
use arca_core::format;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = arca_core::raw::MasterKey::from_secret(&[7; 32]);
    let _ = arca_core::raw::read_header(&key, data, "pack fuzz");
    let mut pack = vec![0u8; 256];
    let sealed = key.seal(format::AAD_PACK_HEADER, data);
    pack.extend_from_slice(&sealed);
    pack.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    let _ = arca_core::raw::read_header(&key, &pack, "pack fuzz");
});
