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

use arca_backend::Staged;
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
    /// The blob's kind; `None` for an unknown kind byte.
    pub fn kind(&self) -> Option<BlobKind> {
        BlobKind::from_byte(self.0)
    }
    /// The blob's id.
    pub fn id(&self) -> Id {
        self.1
    }
    /// Where the stored blob starts in the pack, in bytes.
    pub fn offset(&self) -> u32 {
        self.2
    }
    /// Stored length in bytes.
    pub fn length(&self) -> u32 {
        self.3
    }
    /// Plaintext length in bytes.
    pub fn raw_length(&self) -> u32 {
        self.4
    }
    /// Compression marker.
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

/// Assembles one pack: in memory, or straight into a staged object of the
/// repository ([`PackWriter::staged`]) so that no whole pack is ever held.
pub struct PackWriter {
    kind: BlobKind,
    sink: Sink,
    /// Bytes so far.
    len: usize,
    entries: Vec<PackEntry>,
}

enum Sink {
    Memory(Vec<u8>),
    Staged {
        object: Box<dyn Staged>,
        /// The pack's name is the hash of every byte written.
        hasher: Box<blake3::Hasher>,
    },
}

impl Sink {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match self {
            Sink::Memory(buffer) => buffer.extend_from_slice(bytes),
            Sink::Staged { object, hasher } => {
                object.write(bytes)?;
                hasher.update(bytes);
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for PackWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackWriter")
            .field("kind", &self.kind)
            .field("len", &self.len)
            .field("blobs", &self.entries.len())
            .field("staged", &matches!(self.sink, Sink::Staged { .. }))
            .finish()
    }
}

/// The bytes of a finished pack.
pub enum PackBody {
    /// Assembled in memory.
    Memory(Vec<u8>),
    /// Written to the repository, waiting for [`Staged::commit`].
    Staged(Box<dyn Staged>),
}

impl std::fmt::Debug for PackBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackBody::Memory(bytes) => write!(f, "Memory({} bytes)", bytes.len()),
            PackBody::Staged(_) => f.write_str("Staged"),
        }
    }
}

/// A finished pack, ready to store.
pub struct FinishedPack {
    /// The pack's id (the hash of its bytes).
    pub id: PackId,
    /// Kind of every blob in it.
    pub kind: BlobKind,
    /// Its size in bytes.
    pub size: u64,
    /// Its bytes.
    pub body: PackBody,
    /// Its blobs, as its header lists them.
    pub entries: Vec<PackEntry>,
}

impl std::fmt::Debug for FinishedPack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FinishedPack")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("size", &self.size)
            .field("blobs", &self.entries.len())
            .finish()
    }
}

impl FinishedPack {
    /// The bytes of a pack assembled in memory (`None` once staged).
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.body {
            PackBody::Memory(bytes) => Some(bytes),
            PackBody::Staged(_) => None,
        }
    }
}

impl PackWriter {
    /// A writer assembling a pack of `kind` in memory, with room for
    /// `capacity` bytes.
    pub fn new(kind: BlobKind, capacity: usize) -> PackWriter {
        PackWriter::with_buffer(kind, Vec::with_capacity(capacity))
    }

    /// A writer filling `buffer` (cleared first), so that the memory of a
    /// stored pack serves the next one.
    pub fn with_buffer(kind: BlobKind, mut buffer: Vec<u8>) -> PackWriter {
        buffer.clear();
        PackWriter::with_sink(kind, Sink::Memory(buffer))
    }

    /// A writer that writes every blob straight into `object`, a new
    /// object staged by the repository's backend.
    pub fn staged(kind: BlobKind, object: Box<dyn Staged>) -> PackWriter {
        PackWriter::with_sink(
            kind,
            Sink::Staged {
                object,
                hasher: Box::default(),
            },
        )
    }

    fn with_sink(kind: BlobKind, sink: Sink) -> PackWriter {
        PackWriter {
            kind,
            sink,
            len: 0,
            entries: Vec::new(),
        }
    }

    /// Appends one sealed blob. Fails only when a staged pack cannot be
    /// written (a full disk); the pack is then useless.
    pub fn add(&mut self, id: Id, raw_length: u32, compression: u8, stored: &[u8]) -> Result<()> {
        let offset = self.len as u32;
        self.sink.write(stored)?;
        self.len += stored.len();
        self.entries.push(PackEntry(
            self.kind.to_byte(),
            id,
            offset,
            stored.len() as u32,
            raw_length,
            compression,
        ));
        Ok(())
    }

    /// Bytes of blobs so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Seals the header, appends it and its length, and names the pack.
    pub fn finish(self, key: &MasterKey) -> Result<FinishedPack> {
        // Serialising plain owned data into a Vec cannot fail.
        #[allow(clippy::expect_used)]
        let header = rmp_serde::to_vec(&self.entries).expect("pack header encodes");
        let mut tail = Vec::with_capacity(header.len() + SEAL_OVERHEAD + 4);
        key.seal_into(AAD_PACK_HEADER, &header, &mut tail);
        let header_len = tail.len() as u32;
        tail.extend_from_slice(&header_len.to_le_bytes());
        let mut sink = self.sink;
        sink.write(&tail)?;
        let size = (self.len + tail.len()) as u64;
        let (id, body) = match sink {
            Sink::Memory(bytes) => (Id::of_stored(&bytes), PackBody::Memory(bytes)),
            Sink::Staged { object, hasher } => {
                (Id(*hasher.finalize().as_bytes()), PackBody::Staged(object))
            }
        };
        Ok(FinishedPack {
            id: PackId(id),
            kind: self.kind,
            size,
            body,
            entries: self.entries,
        })
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
    let trailer = crate::repository::read_range_exact(backend, kind, name, size - 4, 4)?;
    let (start, len) = header_range(size, &trailer, &object)?;
    let sealed = crate::repository::read_range_exact(backend, kind, name, start, len)?;
    decode_header(key, &sealed, start, &object)
}

/// Where the sealed header lies, from the pack's size and its trailer.
fn header_range(size: u64, trailer: &[u8], object: &str) -> Result<(u64, u64)> {
    let len: [u8; 4] = trailer
        .try_into()
        .map_err(|_| Error::corrupt(object, "too short to hold a header"))?;
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

    /// Blobs sealed once (nonces are random, so sealing again would give
    /// other bytes): id, raw length, compression, stored bytes.
    fn seal(key: &MasterKey, blobs: &[&[u8]]) -> Vec<(Id, u32, u8, Vec<u8>)> {
        let mut sealer = Sealer::default();
        blobs
            .iter()
            .map(|plain| {
                let id = key.blob_id(plain);
                let mut stored = Vec::new();
                let c = sealer.seal_into(key, 3, BlobKind::Data, &id, plain, &mut stored);
                (id, plain.len() as u32, c, stored)
            })
            .collect()
    }

    fn fill(
        key: &MasterKey,
        mut writer: PackWriter,
        sealed: &[(Id, u32, u8, Vec<u8>)],
    ) -> FinishedPack {
        for (id, raw, c, stored) in sealed {
            writer.add(*id, *raw, *c, stored).unwrap();
        }
        writer.finish(key).unwrap()
    }

    /// A pack assembled in memory, and its bytes.
    fn pack_of(key: &MasterKey, blobs: &[&[u8]]) -> (FinishedPack, Vec<u8>) {
        let pack = fill(
            key,
            PackWriter::new(BlobKind::Data, 1024),
            &seal(key, blobs),
        );
        let bytes = pack.bytes().unwrap().to_vec();
        (pack, bytes)
    }

    /// A pack written blob by blob into a staged object of a local
    /// repository is byte for byte the pack assembled in memory, with the
    /// same name, and nothing is visible before it is committed.
    #[test]
    fn staged_pack_is_the_pack_assembled_in_memory() {
        use arca_backend::{Backend, FileKind, LocalBackend};
        let dir = tempfile::tempdir().unwrap();
        let backend = LocalBackend::new(dir.path().join("repo"));
        backend.create().unwrap();
        let key = MasterKey::generate();
        let sealed = seal(&key, &[b"one", &[b'z'; 300_000], b"", &[9; 70_000]]);
        let memory = fill(&key, PackWriter::new(BlobKind::Data, 1024), &sealed);
        let bytes = memory.bytes().unwrap().to_vec();
        let object = backend.stage(FileKind::Data).unwrap().unwrap();
        let staged = fill(&key, PackWriter::staged(BlobKind::Data, object), &sealed);
        assert!(staged.bytes().is_none());
        assert_eq!(staged.size, bytes.len() as u64);
        assert_eq!(staged.entries, memory.entries);
        assert!(backend.list(FileKind::Data).unwrap().is_empty());
        let name = staged.id.to_hex();
        let PackBody::Staged(object) = staged.body else {
            panic!("a staged writer finishes a staged pack");
        };
        object.commit(&name).unwrap();
        let stored = backend.read(FileKind::Data, &name, u64::MAX).unwrap();
        assert_eq!(Id::of_stored(&stored), staged.id.id());
        // Same blobs, but the header is sealed under a fresh nonce.
        let header_start = bytes.len() - 4 - read_header_len(&bytes);
        assert_eq!(stored[..header_start], bytes[..header_start]);
        assert_eq!(read_header(&key, &stored, "pack").unwrap(), memory.entries);
    }

    fn read_header_len(pack: &[u8]) -> usize {
        let trailer: [u8; 4] = pack[pack.len() - 4..].try_into().unwrap();
        u32::from_le_bytes(trailer) as usize
    }

    #[test]
    fn header_round_trip_and_blobs_open() {
        let key = MasterKey::generate();
        let blobs: [&[u8]; 3] = [b"one", &[b'z'; 5000], b""];
        let (pack, bytes) = pack_of(&key, &blobs);
        assert_eq!(pack.id.id(), Id::of_stored(&bytes));
        let entries = read_header(&key, &bytes, "pack").unwrap();
        assert_eq!(entries, pack.entries);
        for (entry, plain) in entries.iter().zip(blobs) {
            let stored = &bytes[entry.offset() as usize..][..entry.length() as usize];
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
        let (_, bytes) = pack_of(&key, &[b"alpha", &[7; 300]]);
        for i in 0..bytes.len() {
            let mut damaged = bytes.clone();
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

    /// Storage that returns fewer bytes than a range read asked for gets
    /// an error naming the pack, not a panic (a regression: the trailer
    /// was copied into a 4-byte array unchecked).
    #[test]
    fn a_short_range_read_of_the_header_is_an_error() {
        use arca_backend::fault::{Fault, FaultBackend, Schedule};
        use arca_backend::{Backend, FileKind, MemoryBackend};
        let key = MasterKey::generate();
        let (pack, bytes) = pack_of(&key, &[b"alpha", &[7; 300]]);
        let memory = MemoryBackend::new();
        memory.create().unwrap();
        let name = pack.id.to_hex();
        memory.write(FileKind::Data, &name, &bytes).unwrap();
        let size = bytes.len() as u64;
        for k in 0..2 {
            let short = FaultBackend::new(memory.clone(), Schedule::nth(k, Fault::Truncate));
            let err = read_header_ranged(&short, &key, FileKind::Data, &name, size).unwrap_err();
            assert!(err.to_string().contains(&name), "{err}");
        }
        let whole = read_header_ranged(&memory, &key, FileKind::Data, &name, size).unwrap();
        assert_eq!(whole, pack.entries);
    }

    #[test]
    fn truncated_and_garbage_packs_are_errors() {
        let key = MasterKey::generate();
        for bytes in [&b""[..], b"\xff\xff\xff\xff", b"abc\x02\x00\x00\x00"] {
            assert!(read_header(&key, bytes, "pack").is_err());
        }
    }
}
