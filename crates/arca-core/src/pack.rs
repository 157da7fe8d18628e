//! Packs: many sealed blobs of one kind in one stored object.
//!
//! ```text
//! pack   = blob* ‖ sealed_header ‖ header_len:u32le
//! header = MessagePack array of [kind, id, offset, length, raw_length, compression]
//! ```
//!
//! The header sits at the end so a pack can be written in one pass while
//! blobs arrive; it is sealed (associated data `"arca.v1.pack-header"`) so
//! storage learns nothing about the blobs beyond the pack's size. The pack's
//! name is the plain BLAKE3 of all its bytes.

use serde::{Deserialize, Serialize};

use crate::blob::BlobKind;
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::format::*;
use crate::id::{Id, PackId};

/// One blob's place in a pack; the same tuple appears in pack headers and in
/// index files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackEntry(
    /// Blob kind byte.
    pub u8,
    /// Blob id.
    pub Id,
    /// Offset of the stored blob in the pack.
    pub u32,
    /// Stored length (nonce, ciphertext and tag).
    pub u32,
    /// Raw (plaintext) length.
    pub u32,
    /// Compression marker.
    pub u8,
);

impl PackEntry {
    pub fn kind(&self) -> Option<BlobKind> {
        BlobKind::from_byte(self.0)
    }
    pub fn id(&self) -> Id {
        self.1
    }
    pub fn offset(&self) -> u32 {
        self.2
    }
    pub fn length(&self) -> u32 {
        self.3
    }
    pub fn raw_length(&self) -> u32 {
        self.4
    }
    pub fn compression(&self) -> u8 {
        self.5
    }

    /// Checks the entry against the bounds of a pack whose blobs end at
    /// `blobs_end`; `object` names the pack or index in errors.
    pub fn validate(&self, blobs_end: u64, object: &str) -> Result<BlobKind> {
        let bad = |why: &str| {
            Err(Error::corrupt(
                object,
                format!("entry for blob {}: {why}", self.1),
            ))
        };
        let Some(kind) = self.kind() else {
            return bad("unknown blob kind");
        };
        if self.5 != COMPRESSION_NONE && self.5 != COMPRESSION_ZSTD {
            return bad("unknown compression");
        }
        if (self.3 as usize) < SEAL_OVERHEAD {
            return bad("shorter than a sealed value");
        }
        if u64::from(self.2) + u64::from(self.3) > blobs_end {
            return bad("extends past the blobs of its pack");
        }
        if self.4 > kind.max_raw_len() {
            return bad("raw length above the format's limit");
        }
        if self.5 == COMPRESSION_NONE && self.4 as usize + SEAL_OVERHEAD != self.3 as usize {
            return bad("raw and stored lengths disagree");
        }
        Ok(kind)
    }
}

/// Assembles one pack in memory.
#[derive(Debug)]
pub struct PackWriter {
    kind: BlobKind,
    bytes: Vec<u8>,
    entries: Vec<PackEntry>,
}

/// A finished pack, ready to store.
#[derive(Debug)]
pub struct FinishedPack {
    pub id: PackId,
    pub kind: BlobKind,
    pub bytes: Vec<u8>,
    pub entries: Vec<PackEntry>,
}

impl PackWriter {
    pub fn new(kind: BlobKind, capacity: usize) -> PackWriter {
        PackWriter::with_buffer(kind, Vec::with_capacity(capacity))
    }

    /// A writer filling `buffer` (cleared first), so that the memory of a
    /// stored pack serves the next one.
    pub fn with_buffer(kind: BlobKind, mut buffer: Vec<u8>) -> PackWriter {
        buffer.clear();
        PackWriter {
            kind,
            bytes: buffer,
            entries: Vec::new(),
        }
    }

    /// Appends one sealed blob.
    pub fn add(&mut self, id: Id, raw_length: u32, compression: u8, stored: &[u8]) {
        let offset = self.bytes.len() as u32;
        self.bytes.extend_from_slice(stored);
        self.entries.push(PackEntry(
            self.kind.to_byte(),
            id,
            offset,
            stored.len() as u32,
            raw_length,
            compression,
        ));
    }

    /// Bytes of blobs so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seals the header, appends it and its length, and names the pack.
    pub fn finish(mut self, key: &MasterKey) -> FinishedPack {
        // Serialising plain owned data into a Vec cannot fail.
        #[allow(clippy::expect_used)]
        let header = rmp_serde::to_vec(&self.entries).expect("pack header encodes");
        let start = self.bytes.len();
        key.seal_into(AAD_PACK_HEADER, &header, &mut self.bytes);
        let header_len = (self.bytes.len() - start) as u32;
        self.bytes.extend_from_slice(&header_len.to_le_bytes());
        FinishedPack {
            id: PackId(Id::of_stored(&self.bytes)),
            kind: self.kind,
            bytes: self.bytes,
            entries: self.entries,
        }
    }
}

/// Reads the header of a whole stored pack and validates every entry.
pub fn read_header(key: &MasterKey, pack: &[u8], object: &str) -> Result<Vec<PackEntry>> {
    let size = pack.len() as u64;
    let trailer = pack
        .get(pack.len().saturating_sub(4)..)
        .filter(|t| t.len() == 4)
        .ok_or_else(|| Error::corrupt(object, "too short to hold a header"))?;
    let (start, len) = header_range(size, trailer, object)?;
    decode_header(
        key,
        &pack[start as usize..(start + len) as usize],
        start,
        object,
    )
}

/// Reads only the header of a stored pack of `size` bytes: two range reads
/// (the trailer, then the header) instead of the whole pack.
pub fn read_header_ranged(
    backend: &dyn arca_backend::Backend,
    key: &MasterKey,
    kind: arca_backend::FileKind,
    name: &str,
    size: u64,
) -> Result<Vec<PackEntry>> {
    let object = format!("{kind} {name}");
    if size < 4 {
        return Err(Error::corrupt(&object, "too short to hold a header"));
    }
    let trailer = backend.read_range(kind, name, size - 4, 4)?;
    let (start, len) = header_range(size, &trailer, &object)?;
    let sealed = backend.read_range(kind, name, start, len)?;
    decode_header(key, &sealed, start, &object)
}

/// Where the sealed header lies, from the pack's size and its trailer.
fn header_range(size: u64, trailer: &[u8], object: &str) -> Result<(u64, u64)> {
    let mut len = [0; 4];
    len.copy_from_slice(trailer);
    let header_len = u32::from_le_bytes(len);
    if header_len > MAX_PACK_HEADER_LEN || u64::from(header_len) + 4 > size {
        return Err(Error::corrupt(
            object,
            format!("header length {header_len} does not fit the pack"),
        ));
    }
    Ok((size - 4 - u64::from(header_len), u64::from(header_len)))
}

/// Opens a sealed header and validates its entries against the end of the
/// blob region (where the header starts).
fn decode_header(
    key: &MasterKey,
    sealed: &[u8],
    blobs_end: u64,
    object: &str,
) -> Result<Vec<PackEntry>> {
    let header = key
        .open(AAD_PACK_HEADER, sealed)
        .map_err(|_| Error::corrupt(object, "pack header fails authentication"))?;
    let entries: Vec<PackEntry> = crate::file::decode(&header)
        .map_err(|e| Error::corrupt(object, format!("cannot decode pack header: {e}")))?;
    for entry in &entries {
        entry.validate(blobs_end, object)?;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::{self, Sealer};

    fn pack_of(key: &MasterKey, blobs: &[&[u8]]) -> FinishedPack {
        let mut writer = PackWriter::new(BlobKind::Data, 1024);
        let mut sealer = Sealer::default();
        for plain in blobs {
            let id = key.blob_id(plain);
            let mut stored = Vec::new();
            let c = sealer.seal_into(key, 3, BlobKind::Data, &id, plain, &mut stored);
            writer.add(id, plain.len() as u32, c, &stored);
        }
        writer.finish(key)
    }

    #[test]
    fn header_round_trip_and_blobs_open() {
        let key = MasterKey::generate();
        let blobs: [&[u8]; 3] = [b"one", &[b'z'; 5000], b""];
        let pack = pack_of(&key, &blobs);
        assert_eq!(pack.id.id(), Id::of_stored(&pack.bytes));
        let entries = read_header(&key, &pack.bytes, "pack").unwrap();
        assert_eq!(entries, pack.entries);
        for (entry, plain) in entries.iter().zip(blobs) {
            let stored = &pack.bytes[entry.offset() as usize..][..entry.length() as usize];
            let back = blob::open(
                &key,
                BlobKind::Data,
                &entry.id(),
                entry.compression(),
                entry.raw_length(),
                stored,
                &|| "pack".into(),
            )
            .unwrap();
            assert_eq!(back, plain);
        }
    }

    /// Every single flipped byte is caught by the header's or a blob's
    /// authentication (without relying on the pack-name hash).
    #[test]
    fn every_flipped_byte_is_detected() {
        let key = MasterKey::generate();
        let pack = pack_of(&key, &[b"alpha", &[7; 300]]);
        for i in 0..pack.bytes.len() {
            let mut damaged = pack.bytes.clone();
            damaged[i] ^= 0x40;
            let result = read_header(&key, &damaged, "pack p").and_then(|entries| {
                for e in &entries {
                    let Some(stored) =
                        damaged.get(e.offset() as usize..(e.offset() + e.length()) as usize)
                    else {
                        return Err(Error::corrupt("pack p", "range"));
                    };
                    blob::open(
                        &key,
                        BlobKind::Data,
                        &e.id(),
                        e.compression(),
                        e.raw_length(),
                        stored,
                        &|| "pack p".into(),
                    )?;
                }
                Ok(())
            });
            let err = result.expect_err("flip must be detected");
            assert!(err.to_string().contains("pack p"), "byte {i}: {err}");
        }
    }

    #[test]
    fn truncated_and_garbage_packs_are_errors() {
        let key = MasterKey::generate();
        for bytes in [&b""[..], b"\xff\xff\xff\xff", b"abc\x02\x00\x00\x00"] {
            assert!(read_header(&key, bytes, "pack").is_err());
        }
    }
}
