//! Blobs: one chunk of file data or one encoded directory, compressed and
//! sealed.
//!
//! Stored form: `nonce(24) ‖ XChaCha20-Poly1305(payload) ‖ tag(16)` with
//! associated data `kind byte ‖ id(32)`, where payload is the zstd-compressed
//! plaintext, or the plaintext itself when compression does not make it
//! smaller (incompressible data costs one failed attempt, never growth).

use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::format::*;
use crate::id::Id;

/// The two kinds of blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobKind {
    /// A chunk of file content.
    Data,
    /// One directory's listing ([`Tree`](crate::Tree)).
    Tree,
}

impl BlobKind {
    /// The byte stored for this kind.
    pub fn to_byte(self) -> u8 {
        match self {
            BlobKind::Data => BLOB_DATA,
            BlobKind::Tree => BLOB_TREE,
        }
    }

    /// Parses a stored kind byte.
    pub fn from_byte(b: u8) -> Option<BlobKind> {
        match b {
            BLOB_DATA => Some(BlobKind::Data),
            BLOB_TREE => Some(BlobKind::Tree),
            _ => None,
        }
    }

    /// The largest raw blob of this kind a reader accepts.
    pub fn max_raw_len(self) -> u32 {
        match self {
            BlobKind::Data => MAX_DATA_BLOB_LEN,
            BlobKind::Tree => MAX_TREE_BLOB_LEN,
        }
    }

    /// Where packs of this kind live.
    pub fn file_kind(self) -> arca_backend::FileKind {
        match self {
            BlobKind::Data => arca_backend::FileKind::Data,
            BlobKind::Tree => arca_backend::FileKind::Tree,
        }
    }
}

impl std::fmt::Display for BlobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BlobKind::Data => "data blob",
            BlobKind::Tree => "tree blob",
        })
    }
}

fn aad(kind: BlobKind, id: &Id) -> [u8; 33] {
    let mut aad = [0; 33];
    aad[0] = kind.to_byte();
    aad[1..].copy_from_slice(&id.0);
    aad
}

/// Reusable per-thread state for sealing blobs.
#[derive(Default)]
pub struct Sealer {
    compressor: Option<zstd::bulk::Compressor<'static>>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

impl Sealer {
    /// Compresses (when it helps) and seals `plain`, appending the stored form
    /// to `out`; returns the compression marker used.
    pub fn seal_into(
        &mut self,
        key: &MasterKey,
        level: i32,
        kind: BlobKind,
        id: &Id,
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> u8 {
        let aad = aad(kind, id);
        if level > 0 && self.compress(level, plain) {
            key.seal_into(&aad, &self.scratch, out);
            COMPRESSION_ZSTD
        } else {
            key.seal_into(&aad, plain, out);
            COMPRESSION_NONE
        }
    }

    /// Compresses into the scratch buffer; true when the result is smaller.
    fn compress(&mut self, level: i32, plain: &[u8]) -> bool {
        if self.compressor.is_none() {
            self.compressor = zstd::bulk::Compressor::new(level).ok();
        }
        let Some(compressor) = self.compressor.as_mut() else {
            return false;
        };
        self.scratch.clear();
        // Room for the worst case; on overflow the data is incompressible.
        self.scratch
            .reserve(zstd::zstd_safe::compress_bound(plain.len()));
        match compressor.compress_to_buffer(plain, &mut self.scratch) {
            Ok(n) => n < plain.len(),
            Err(_) => false,
        }
    }
}

/// Opens a stored blob: authenticates, decompresses within `raw_len`, and
/// checks that the plaintext hashes to `id`. `object` names it in errors.
pub fn open(
    key: &MasterKey,
    kind: BlobKind,
    id: &Id,
    compression: u8,
    raw_len: u32,
    stored: &[u8],
    object: &dyn Fn() -> String,
) -> Result<Vec<u8>> {
    let mut buffers = Buffers::default();
    open_with(
        key,
        kind,
        id,
        compression,
        raw_len,
        stored,
        &mut buffers,
        object,
    )?;
    Ok(if compression == COMPRESSION_NONE {
        buffers.payload
    } else {
        buffers.plain
    })
}

/// Reusable memory for [`open_with`]: a loop over many blobs allocates
/// once, not twice per blob.
#[derive(Debug, Default)]
pub struct Buffers {
    payload: Vec<u8>,
    plain: Vec<u8>,
}

/// [`open`] into reusable buffers; returns the plaintext, borrowed from
/// `buffers` until the next call.
#[allow(clippy::too_many_arguments)]
pub fn open_with<'b>(
    key: &MasterKey,
    kind: BlobKind,
    id: &Id,
    compression: u8,
    raw_len: u32,
    stored: &[u8],
    buffers: &'b mut Buffers,
    object: &dyn Fn() -> String,
) -> Result<&'b [u8]> {
    if raw_len > kind.max_raw_len() {
        return Err(Error::corrupt(
            object(),
            format!("{kind} claims {raw_len} bytes"),
        ));
    }
    key.open_into(&aad(kind, id), stored, &mut buffers.payload)
        .map_err(|_| Error::corrupt(object(), format!("{kind} {id} fails authentication")))?;
    let plain: &[u8] = match compression {
        COMPRESSION_NONE => &buffers.payload,
        COMPRESSION_ZSTD => {
            let bad = |e: String| {
                Error::corrupt(object(), format!("{kind} {id} does not decompress: {e}"))
            };
            crate::file::single_frame(&buffers.payload).map_err(bad)?;
            decompress_into(&buffers.payload, raw_len as usize, &mut buffers.plain)
                .map_err(|e| bad(e.to_string()))?;
            &buffers.plain
        }
        other => {
            return Err(Error::corrupt(
                object(),
                format!("{kind} {id} has unknown compression {other}"),
            ));
        }
    };
    if plain.len() != raw_len as usize {
        return Err(Error::corrupt(
            object(),
            format!("{kind} {id} is {} bytes, index says {raw_len}", plain.len()),
        ));
    }
    if key.blob_id(plain) != *id {
        return Err(Error::corrupt(
            object(),
            format!("{kind} {id} does not match its id"),
        ));
    }
    Ok(plain)
}

thread_local! {
    /// One zstd decompression context per thread: creating one costs more
    /// than decompressing a typical tree blob.
    static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

/// Decompresses at most `capacity` bytes into `out` (replacing its
/// contents) with this thread's context.
fn decompress_into(data: &[u8], capacity: usize, out: &mut Vec<u8>) -> std::io::Result<()> {
    out.clear();
    out.reserve(capacity);
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        match slot.as_mut() {
            Some(d) => d.decompress_to_buffer(data, out).map(drop),
            None => zstd::bulk::Decompressor::new()?
                .decompress_to_buffer(data, out)
                .map(drop),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(level: i32, plain: &[u8]) -> u8 {
        let key = MasterKey::generate();
        let id = key.blob_id(plain);
        let mut out = Vec::new();
        let c = Sealer::default().seal_into(&key, level, BlobKind::Data, &id, plain, &mut out);
        let name = || "pack x".to_string();
        let back = open(
            &key,
            BlobKind::Data,
            &id,
            c,
            plain.len() as u32,
            &out,
            &name,
        )
        .unwrap();
        assert_eq!(back, plain);
        // Wrong kind in the AAD fails.
        assert!(
            open(
                &key,
                BlobKind::Tree,
                &id,
                c,
                plain.len() as u32,
                &out,
                &name
            )
            .is_err()
        );
        c
    }

    #[test]
    fn compressible_data_is_compressed_and_random_is_not() {
        assert_eq!(round_trip(3, &[b'a'; 10_000]), COMPRESSION_ZSTD);
        let mut random = vec![0; 10_000];
        crate::crypto::random_bytes(&mut random);
        assert_eq!(round_trip(3, &random), COMPRESSION_NONE);
        assert_eq!(round_trip(0, &[b'a'; 100]), COMPRESSION_NONE);
        assert_eq!(round_trip(3, b""), COMPRESSION_NONE);
    }

    #[test]
    fn a_compressed_blob_is_exactly_one_zstd_frame() {
        let key = MasterKey::generate();
        let plain = vec![b'a'; 1000];
        let id = key.blob_id(&plain);
        let frame = zstd::bulk::compress(&plain, 3).unwrap();
        let halves = [
            zstd::bulk::compress(&plain[..500], 3).unwrap(),
            zstd::bulk::compress(&plain[500..], 3).unwrap(),
        ]
        .concat();
        let mut skippable = 0x184D_2A5Fu32.to_le_bytes().to_vec();
        skippable.extend_from_slice(&[2, 0, 0, 0, 0xab, 0xcd]);
        let open = |payload: &[u8]| {
            let stored = key.seal(&aad(BlobKind::Data, &id), payload);
            open(
                &key,
                BlobKind::Data,
                &id,
                COMPRESSION_ZSTD,
                1000,
                &stored,
                &|| "data pack p".into(),
            )
        };
        assert_eq!(open(&frame).unwrap(), plain);
        let hostile = [
            (
                "a trailing skippable frame",
                [frame.clone(), skippable.clone()].concat(),
            ),
            (
                "a leading skippable frame",
                [skippable.clone(), frame.clone()].concat(),
            ),
            ("the content split over two frames", halves),
            ("a trailing byte", [frame.clone(), vec![0]].concat()),
        ];
        for (what, payload) in hostile {
            let err = open(&payload).unwrap_err();
            assert!(err.is_damage(), "{what}: {err}");
            let shown = err.to_string();
            assert!(
                shown.contains("data pack p") && shown.contains(&id.to_string()),
                "{what}: {shown}"
            );
        }
    }

    #[test]
    fn a_blob_under_the_wrong_id_is_rejected() {
        let key = MasterKey::generate();
        let other = key.blob_id(b"other");
        let mut out = Vec::new();
        // Sealed under the id of different content: authentic but wrong.
        Sealer::default().seal_into(&key, 0, BlobKind::Data, &other, b"data", &mut out);
        let err = open(&key, BlobKind::Data, &other, 0, 4, &out, &|| {
            "pack p".into()
        })
        .unwrap_err();
        assert!(err.to_string().contains("does not match its id"), "{err}");
    }
}
