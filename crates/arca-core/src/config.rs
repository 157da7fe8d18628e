//! The repository's `config` object.
//!
//! Stored bytes: `"ARCAREPO"` ‖ u32 LE format version ‖ sealed MessagePack
//! body, where the associated data is `"arca.v1.config"` followed by the
//! twelve header bytes. The version is readable without a key, so a build that
//! does not know it refuses the repository with a clear message before trying
//! any password; the AAD makes the header tamper-evident once a key opens it.

use serde::{Deserialize, Serialize};

use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::file;
use crate::format::*;
use crate::id::Id;

/// Chunker parameters (FastCDC v2020, normalisation level 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// Smallest chunk in bytes (only a file's last chunk may be smaller).
    pub min_size: u32,
    /// Average chunk size in bytes the cut points aim for.
    pub avg_size: u32,
    /// Largest chunk in bytes.
    pub max_size: u32,
}

impl ChunkerParams {
    /// The parameters of new repositories: chunks of 512 KiB to 8 MiB,
    /// 1 MiB on average.
    pub const DEFAULT: ChunkerParams = ChunkerParams {
        min_size: 512 * 1024,
        avg_size: 1024 * 1024,
        max_size: 8 * 1024 * 1024,
    };
}

impl Default for ChunkerParams {
    fn default() -> ChunkerParams {
        ChunkerParams::DEFAULT
    }
}

/// The decoded body of `config`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u32,
    /// The repository's random id.
    pub id: Id,
    /// How file content is cut into chunks.
    pub chunker: ChunkerParams,
    /// zstd level for new blobs; 0 stores blobs uncompressed. (Index and
    /// snapshot files are small and always compressed at the default level.)
    pub compression: i32,
    /// Target size of a pack in bytes.
    pub pack_size: u32,
}

/// Choices made at `init`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InitOptions {
    /// zstd level for new blobs, 0 (uncompressed) to [`COMPRESSION_MAX`].
    pub compression: i32,
    /// Target pack size in bytes, [`PACK_SIZE_MIN`] to [`PACK_SIZE_MAX`].
    pub pack_size: u32,
    /// How file content is cut into chunks.
    pub chunker: ChunkerParams,
    /// Cost of the first key's password derivation.
    pub kdf: crate::key::KdfParams,
}

impl InitOptions {
    /// Default zstd level of new repositories' blobs. Level 2 spends a fifth
    /// less CPU than level 3 for about 1.5 % more bytes on database files
    /// (docs/performance.md).
    pub const DEFAULT_COMPRESSION: i32 = 2;
    /// Default target pack size in bytes (16 MiB).
    pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;
}

impl Default for InitOptions {
    fn default() -> InitOptions {
        InitOptions {
            compression: InitOptions::DEFAULT_COMPRESSION,
            pack_size: InitOptions::DEFAULT_PACK_SIZE,
            chunker: ChunkerParams::default(),
            kdf: crate::key::KdfParams::default(),
        }
    }
}

impl Config {
    /// A new config with a random repository id.
    pub fn new(options: &InitOptions) -> Result<Config> {
        let mut id = [0; ID_LEN];
        crate::crypto::random_bytes(&mut id);
        let config = Config {
            version: FORMAT_VERSION,
            id: Id(id),
            chunker: options.chunker,
            compression: options.compression,
            pack_size: options.pack_size,
        };
        config.validate().map_err(Error::InvalidInput)?;
        Ok(config)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let c = self.chunker;
        let within = |v: u32, lo: u32, hi: u32| (lo..=hi).contains(&v) && v.is_multiple_of(2);
        if !(within(c.min_size, CHUNK_MIN_LOWEST, CHUNK_MIN_HIGHEST)
            && within(c.avg_size, CHUNK_AVG_LOWEST, CHUNK_AVG_HIGHEST)
            && within(c.max_size, CHUNK_MAX_LOWEST, CHUNK_MAX_HIGHEST)
            && c.min_size <= c.avg_size
            && c.avg_size <= c.max_size)
        {
            return Err(format!(
                "chunker sizes min {} / avg {} / max {} are out of range",
                c.min_size, c.avg_size, c.max_size
            ));
        }
        if !(0..=COMPRESSION_MAX).contains(&self.compression) {
            return Err(format!(
                "compression level {} is not between 0 and {COMPRESSION_MAX}",
                self.compression
            ));
        }
        if !(PACK_SIZE_MIN..=PACK_SIZE_MAX).contains(&self.pack_size) {
            return Err(format!(
                "pack size {} is not between {PACK_SIZE_MIN} and {PACK_SIZE_MAX} bytes",
                self.pack_size
            ));
        }
        Ok(())
    }

    fn header() -> [u8; 12] {
        let mut h = [0; 12];
        h[..8].copy_from_slice(CONFIG_MAGIC);
        h[8..].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        h
    }

    fn aad(header: &[u8]) -> Vec<u8> {
        [AAD_CONFIG, header].concat()
    }

    /// Encodes and seals the config.
    pub fn encode(&self, key: &MasterKey) -> Vec<u8> {
        let header = Config::header();
        let mut out = header.to_vec();
        out.extend(file::seal(key, &Config::aad(&header), self, 0));
        out
    }

    /// Reads the format version from stored bytes without any key.
    pub fn peek_version(bytes: &[u8]) -> Result<u32> {
        if bytes.len() < 12 || &bytes[..8] != CONFIG_MAGIC {
            return Err(Error::corrupt(
                "config",
                "not an arca repository config (bad magic)",
            ));
        }
        let mut v = [0; 4];
        v.copy_from_slice(&bytes[8..12]);
        Ok(u32::from_le_bytes(v))
    }

    /// Opens and validates the config.
    pub fn decode(bytes: &[u8], key: &MasterKey) -> Result<Config> {
        let version = Config::peek_version(bytes)?;
        let config: Config = file::open(
            key,
            &Config::aad(&bytes[..12]),
            &bytes[12..],
            "config",
            MAX_CONFIG_LEN,
        )?;
        if config.version != version {
            return Err(Error::corrupt("config", "inner and outer versions differ"));
        }
        config.validate().map_err(|e| Error::corrupt("config", e))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_peek() {
        let key = MasterKey::generate();
        let config = Config::new(&InitOptions::default()).unwrap();
        let bytes = config.encode(&key);
        assert_eq!(Config::peek_version(&bytes).unwrap(), FORMAT_VERSION);
        assert_eq!(Config::decode(&bytes, &key).unwrap(), config);
        assert!(Config::decode(&bytes, &MasterKey::generate()).is_err());
    }

    #[test]
    fn rejects_out_of_range_options() {
        let options = InitOptions {
            compression: 23,
            ..InitOptions::default()
        };
        assert!(Config::new(&options).is_err());
        let options = InitOptions {
            pack_size: 10,
            ..InitOptions::default()
        };
        assert!(Config::new(&options).is_err());
    }
}
