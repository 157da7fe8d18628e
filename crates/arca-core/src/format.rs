//! Every magic number, label, version and limit of repository format v1.
//!
//! ============================ DO NOT MODIFY ============================
//! These values are the on-disk format. Changing any of them makes existing
//! repositories unreadable. A new format gets a new version number and new
//! constants beside these; docs/format.md is the normative description and
//! must change in the same commit.
//! =======================================================================

/// The format version written by this build and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;

/// First bytes of the `config` object, before the sealed part.
pub const CONFIG_MAGIC: &[u8; 8] = b"ARCAREPO";

// Associated data of the sealed parts of each object kind. Binding the kind
// into the AEAD means an attacker cannot pass one kind off as another.

/// Associated data of the sealed `config` body (followed by its header).
pub const AAD_CONFIG: &[u8] = b"arca.v1.config";
/// Associated data of the master secret sealed in a key file.
pub const AAD_KEY: &[u8] = b"arca.v1.key";
/// Associated data of an index file.
pub const AAD_INDEX: &[u8] = b"arca.v1.index";
/// Associated data of a snapshot file.
pub const AAD_SNAPSHOT: &[u8] = b"arca.v1.snapshot";
/// Associated data of a lock file.
pub const AAD_LOCK: &[u8] = b"arca.v1.lock";
/// Associated data of a pack's header.
pub const AAD_PACK_HEADER: &[u8] = b"arca.v1.pack-header";
/// Associated data of a copy's translation map: a local cache file, kept
/// outside every repository but sealed with the destination's key, so its
/// label must differ from every object's.
pub const AAD_COPY_MAP: &[u8] = b"arca.v1.copy-map";

/// Associated data of a WAL object's header, followed by the object's
/// 32-byte name.
pub const AAD_WAL_HEADER: &[u8] = b"arca.v1.wal-header";
/// Associated data of a WAL object's frame, followed by the object's
/// 32-byte name, the frame's index (u64 LE) and 1 for the last frame or 0.
pub const AAD_WAL_FRAME: &[u8] = b"arca.v1.wal-frame";

// BLAKE3 `derive_key` contexts splitting the 32-byte master secret.

/// Context of the XChaCha20-Poly1305 key.
pub const CONTEXT_ENCRYPTION: &str = "arca v1 encryption key";
/// Context of the keyed-BLAKE3 key that makes blob ids.
pub const CONTEXT_ID: &str = "arca v1 blob id key";
/// Context of the seed of the chunker's gear table.
pub const CONTEXT_CHUNKER: &str = "arca v1 chunker seed";
/// Context of the keyed-BLAKE3 key that names WAL objects.
pub const CONTEXT_WAL: &str = "arca v1 wal name key";

// Blob kinds, as stored in pack headers, index entries and blob AAD.

/// Kind byte of a data blob (a chunk of file content).
pub const BLOB_DATA: u8 = 0;
/// Kind byte of a tree blob (one directory's listing).
pub const BLOB_TREE: u8 = 1;

// Compression markers, in pack headers, index entries and sealed files.

/// Marker of bytes stored uncompressed.
pub const COMPRESSION_NONE: u8 = 0;
/// Marker of bytes stored as one zstd frame.
pub const COMPRESSION_ZSTD: u8 = 1;

/// Bytes of an XChaCha20-Poly1305 nonce, stored before each sealed value.
pub const NONCE_LEN: usize = 24;
/// Bytes of the Poly1305 tag that ends each sealed value.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed value adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// The master secret and every derived key are 32 bytes.
pub const KEY_LEN: usize = 32;
/// Length of every id (BLAKE3 output).
pub const ID_LEN: usize = 32;

/// Version of the key file layout.
pub const KEY_FILE_VERSION: u32 = 1;
/// Name of the only KDF key files use.
pub const KDF_ARGON2ID: &str = "argon2id";

// Caps on KDF parameters read from a key file. Key files are not
// authenticated before the KDF runs, so an attacker could ask for terabytes
// of memory; anything beyond these is refused before allocating.

/// Most memory a key file may ask the KDF for, in KiB (4 GiB).
pub const KDF_MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
/// Most passes a key file may ask for.
pub const KDF_MAX_ITERATIONS: u32 = 64;
/// Most lanes a key file may ask for.
pub const KDF_MAX_PARALLELISM: u32 = 64;

// Floors: a key file asking for less is refused as damaged (nothing
// arca writes is that weak, so it was edited, or made by a careless tool),
// as is one below Argon2's own minimum of 8 KiB per lane.

/// Least memory a key file may ask the KDF for, in KiB (8 MiB).
pub const KDF_MIN_MEMORY_KIB: u32 = 8 * 1024;
/// Fewest passes a key file may ask for.
pub const KDF_MIN_ITERATIONS: u32 = 1;
/// Fewest lanes a key file may ask for.
pub const KDF_MIN_PARALLELISM: u32 = 1;
/// Shortest salt a key file may hold, in bytes.
pub const KDF_MIN_SALT_LEN: usize = 16;
/// Longest salt a key file may hold, in bytes.
pub const KDF_MAX_SALT_LEN: usize = 64;

// Bounds a config's chunker parameters must respect (those of FastCDC
// v2020), in bytes.

/// Lowest minimum chunk size.
pub const CHUNK_MIN_LOWEST: u32 = 64;
/// Highest minimum chunk size.
pub const CHUNK_MIN_HIGHEST: u32 = 1024 * 1024;
/// Lowest average chunk size.
pub const CHUNK_AVG_LOWEST: u32 = 256;
/// Highest average chunk size.
pub const CHUNK_AVG_HIGHEST: u32 = 4 * 1024 * 1024;
/// Lowest maximum chunk size.
pub const CHUNK_MAX_LOWEST: u32 = 1024;
/// Highest maximum chunk size.
pub const CHUNK_MAX_HIGHEST: u32 = 16 * 1024 * 1024;

/// Smallest target pack size a config may hold, in bytes (1 MiB).
pub const PACK_SIZE_MIN: u32 = 1024 * 1024;
/// Largest target pack size a config may hold, in bytes (1 GiB).
pub const PACK_SIZE_MAX: u32 = 1024 * 1024 * 1024;

/// Highest zstd level a config may hold (0 stores blobs uncompressed).
pub const COMPRESSION_MAX: i32 = 22;

// Limits applied when decoding repository bytes: for sealed files, both
// the stored size and the decompressed body.

/// Largest `config` object, in bytes.
pub const MAX_CONFIG_LEN: u64 = 64 * 1024;
/// Largest key file, in bytes.
pub const MAX_KEY_FILE_LEN: u64 = 64 * 1024;
/// Largest snapshot file, in bytes.
pub const MAX_SNAPSHOT_LEN: u64 = 64 * 1024 * 1024;
/// Largest index file, in bytes.
pub const MAX_INDEX_LEN: u64 = 1024 * 1024 * 1024;
/// Largest lock file, in bytes.
pub const MAX_LOCK_LEN: u64 = 64 * 1024;
/// Largest copy map read, in bytes; a larger one is ignored (about 16
/// million blobs).
pub const MAX_COPY_MAP_LEN: u64 = 1024 * 1024 * 1024;
/// A pack header may not exceed this many stored bytes.
pub const MAX_PACK_HEADER_LEN: u32 = 64 * 1024 * 1024;
/// Largest raw (uncompressed) data blob: the chunker's highest maximum.
pub const MAX_DATA_BLOB_LEN: u32 = CHUNK_MAX_HIGHEST;
/// Largest raw tree blob: one directory's listing.
pub const MAX_TREE_BLOB_LEN: u32 = 512 * 1024 * 1024;
/// Deepest nesting of directories below a snapshot's root that readers
/// walk (a path of that many levels of one-byte names is already past
/// Linux's PATH_MAX of 4096 bytes).
pub const MAX_TREE_DEPTH: u32 = 2048;
/// Most paths a snapshot may expand to (its trees walked with every shared
/// subtree repeated).
pub const MAX_SNAPSHOT_ENTRIES: u64 = 1 << 32;
/// Largest pack a whole read accepts: the largest target, one blob of the
/// largest kind past it, and the largest header with its length.
pub const MAX_PACK_LEN: u64 =
    PACK_SIZE_MAX as u64 + MAX_TREE_BLOB_LEN as u64 + MAX_PACK_HEADER_LEN as u64 + 4;

// WAL objects (archived PostgreSQL WAL files).

/// Content bytes per frame that writers use (1 MiB).
pub const WAL_FRAME_SIZE: u32 = 1024 * 1024;
/// Smallest frame size a WAL header may declare (4 KiB).
pub const WAL_MIN_FRAME_SIZE: u32 = 4 * 1024;
/// Largest frame size a WAL header may declare (16 MiB): what a reader
/// holds in memory at once.
pub const WAL_MAX_FRAME_SIZE: u32 = 16 * 1024 * 1024;
/// Largest archived file (1 GiB: PostgreSQL's largest WAL segment size).
pub const WAL_MAX_FILE_LEN: u64 = 1024 * 1024 * 1024;
/// Largest sealed WAL header, in bytes.
pub const WAL_MAX_HEADER_LEN: u32 = 64 * 1024;
/// Longest PostgreSQL file name a WAL object may hold, in bytes.
pub const WAL_MAX_NAME_LEN: usize = 64;

// PostgreSQL base backups (§7.11): ordinary snapshots of this shape.

/// The tag of a base backup snapshot.
pub const PG_BASE_TAG: &str = "pg-base";
/// The file holding pg_basebackup's tar stream.
pub const PG_BASE_STREAM: &str = "base.tar";
/// The file holding the backup's record.
pub const PG_BASE_RECORD: &str = "base.json";
/// The record's `format`.
pub const PG_RECORD_FORMAT: u32 = 1;
/// Largest record, in bytes.
pub const PG_MAX_RECORD_LEN: u64 = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_label_sealed_with_the_encryption_key_is_distinct() {
        // A blob's associated data is its kind byte (0 or 1) and its id;
        // every other value sealed with K_enc has its own text label, so no
        // sealed value can pass for another kind.
        let labels = [
            AAD_CONFIG,
            AAD_INDEX,
            AAD_SNAPSHOT,
            AAD_LOCK,
            AAD_PACK_HEADER,
            AAD_COPY_MAP,
            AAD_WAL_HEADER,
            AAD_WAL_FRAME,
        ];
        for (i, a) in labels.iter().enumerate() {
            assert!(a.starts_with(b"arca.v1."), "{a:?}");
            assert!(![BLOB_DATA, BLOB_TREE].contains(&a[0]));
            for b in &labels[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(AAD_COPY_MAP, b"arca.v1.copy-map");
    }
}
