//! Blobs: a value sealed with a blob's associated data whose plaintext is
//! the input after a compression marker and a claimed raw length (the
//! first five bytes), so zstd frames that lie about their size or expand
//! without bound reach the decompressor.
#![no_main]
use arca_core::{BlobKind};
use arca_core::raw::{open_blob};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = data.split_at_checked(5) else {
        return;
    };
    let key = arca_core::raw::MasterKey::from_secret(&[7; 32]);
    let compression = head[0] & 1;
    let raw_length = u32::from_le_bytes([head[1], head[2], head[3], head[4]]);
    let id = key.blob_id(body);
    let object = || "blob fuzz".to_string();
    let _ = open_blob(&key, BlobKind::Data, &id, compression, raw_length, body, &object);
    let mut aad = vec![BlobKind::Data.to_byte()];
    aad.extend_from_slice(&id.0);
    let stored = key.seal(&aad, body);
    let _ = open_blob(&key, BlobKind::Data, &id, compression, raw_length, &stored, &object);
});
