//! The config: as stored (magic, version, sealed body), and with the input
//! as the plaintext of a body sealed under the fuzzing key, so the decoder
//! behind the authentication is reached too.
#![no_main]
use arca_core::{RepositoryConfig, format};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = arca_core::raw::MasterKey::from_secret(&[7; 32]);
    let _ = RepositoryConfig::decode(data, &key);
    let mut header = format::CONFIG_MAGIC.to_vec();
    header.extend_from_slice(&format::FORMAT_VERSION.to_le_bytes());
    let mut aad = format::AAD_CONFIG.to_vec();
    aad.extend_from_slice(&header);
    let mut stored = header;
    stored.extend_from_slice(&key.seal(&aad, data));
    let _ = RepositoryConfig::decode(&stored, &key);
});
