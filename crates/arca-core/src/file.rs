//! Sealed files: config body, index, snapshot and lock objects.
//!
//! Plaintext = one compression byte (0 none, 1 zstd) ‖ body, where body is
//! MessagePack; sealed with the object kind's associated data. Decoding
//! bounds both the stored size and the decompressed size.

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io::Read;

use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::format::{COMPRESSION_NONE, COMPRESSION_ZSTD};

/// zstd level of index, snapshot and lock files, whatever the config says
/// (a writer's choice: readers accept any level).
pub(crate) const METADATA_COMPRESSION: i32 = 3;

/// Encodes `value` as MessagePack, compresses it at `level` when that helps
/// (0: never) and seals it.
pub(crate) fn seal<T: Serialize>(key: &MasterKey, aad: &[u8], value: &T, level: i32) -> Vec<u8> {
    // Serialising plain owned data into a Vec cannot fail.
    #[allow(clippy::expect_used)]
    let body = rmp_serde::to_vec_named(value).expect("value encodes");
    let mut plain = Vec::with_capacity(body.len() + 1);
    match compress(&body, level) {
        Some(small) => {
            plain.push(COMPRESSION_ZSTD);
            plain.extend_from_slice(&small);
        }
        None => {
            plain.push(COMPRESSION_NONE);
            plain.extend_from_slice(&body);
        }
    }
    key.seal(aad, &plain)
}

/// zstd at `level` if the result is smaller, else `None`.
pub(crate) fn compress(data: &[u8], level: i32) -> Option<Vec<u8>> {
    if level <= 0 {
        return None;
    }
    zstd::bulk::compress(data, level)
        .ok()
        .filter(|c| c.len() < data.len())
}

/// Opens and decodes a sealed file; `object` names it in errors and
/// `max_plain` caps the decompressed body.
pub(crate) fn open<T: DeserializeOwned>(
    key: &MasterKey,
    aad: &[u8],
    sealed: &[u8],
    object: &str,
    max_plain: u64,
) -> Result<T> {
    let plain = key
        .open(aad, sealed)
        .map_err(|_| Error::corrupt(object, "authentication failed"))?;
    let body = match plain.split_first() {
        Some((&COMPRESSION_NONE, body)) => body.to_vec(),
        Some((&COMPRESSION_ZSTD, body)) => decompress_bounded(body, max_plain, object)?,
        Some((other, _)) => {
            return Err(Error::corrupt(
                object,
                format!("unknown compression {other}"),
            ));
        }
        None => return Err(Error::corrupt(object, "empty")),
    };
    decode(&body).map_err(|e| Error::corrupt(object, format!("cannot decode: {e}")))
}

/// Decodes exactly one MessagePack value filling all of `bytes`: trailing
/// bytes are an error, so every value has one encoding. Lengths claimed in
/// the input never allocate more than the input actually holds.
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
    let mut de = rmp_serde::Deserializer::new(bytes);
    let value = T::deserialize(&mut de).map_err(|e| e.to_string())?;
    match de.get_ref().len() {
        0 => Ok(value),
        n => Err(format!("{n} unexpected bytes after the value")),
    }
}

/// The magic number that opens a zstd frame (RFC 8878, §3.1.1).
const ZSTD_FRAME_MAGIC: u32 = 0xFD2F_B528;

/// Checks that `data` is exactly one zstd frame and nothing else: no
/// skippable frame, no second frame, no trailing bytes. Decoders accept
/// all of these (and would concatenate several frames' content), but arca
/// writes exactly one frame, so anything else was not written by a writer
/// of the format and is refused before it is decoded.
pub(crate) fn single_frame(data: &[u8]) -> std::result::Result<(), String> {
    let magic = data
        .first_chunk::<4>()
        .map(|m| u32::from_le_bytes(*m))
        .ok_or("too short for a zstd frame")?;
    if magic != ZSTD_FRAME_MAGIC {
        return Err(format!(
            "does not start with a zstd frame (magic {magic:#010x})"
        ));
    }
    match zstd::zstd_safe::find_frame_compressed_size(data) {
        Ok(n) if n == data.len() => Ok(()),
        Ok(n) => Err(format!(
            "{} bytes follow its zstd frame",
            data.len().saturating_sub(n)
        )),
        Err(code) => Err(format!(
            "incomplete zstd frame: {}",
            zstd::zstd_safe::get_error_name(code)
        )),
    }
}

/// Decompresses one zstd frame, refusing output beyond `max`; memory grows
/// only with what actually decodes, whatever the frame header claims.
pub(crate) fn decompress_bounded(data: &[u8], max: u64, object: &str) -> Result<Vec<u8>> {
    single_frame(data).map_err(|e| Error::corrupt(object, format!("bad zstd stream: {e}")))?;
    let decoder = zstd::stream::read::Decoder::with_buffer(data)
        .map_err(|e| Error::corrupt(object, format!("bad zstd stream: {e}")))?;
    let mut out = Vec::new();
    decoder
        .take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::corrupt(object, format!("bad zstd stream: {e}")))?;
    if out.len() as u64 > max {
        return Err(Error::corrupt(
            object,
            format!("decompresses to more than {max} bytes"),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::AAD_SNAPSHOT;

    /// A skippable frame (RFC 8878, §3.1.2) holding `content`.
    fn skippable_frame(content: &[u8]) -> Vec<u8> {
        let mut frame = 0x184D_2A50u32.to_le_bytes().to_vec();
        frame.extend_from_slice(&(content.len() as u32).to_le_bytes());
        frame.extend_from_slice(content);
        frame
    }

    fn sealed(key: &MasterKey, body: &[u8]) -> Vec<u8> {
        let mut plain = vec![COMPRESSION_ZSTD];
        plain.extend_from_slice(body);
        key.seal(AAD_SNAPSHOT, &plain)
    }

    #[test]
    fn a_sealed_file_is_exactly_one_zstd_frame() {
        let key = MasterKey::generate();
        let value = vec![7u32; 1000];
        let msgpack = rmp_serde::to_vec(&value).unwrap();
        let frame = zstd::bulk::compress(&msgpack, 3).unwrap();
        let open = |body: &[u8]| {
            open::<Vec<u32>>(
                &key,
                AAD_SNAPSHOT,
                &sealed(&key, body),
                "snapshot s",
                1 << 20,
            )
        };
        assert_eq!(open(&frame).unwrap(), value);

        let half = rmp_serde::to_vec(&vec![7u32; 500]).unwrap();
        let halves = [
            zstd::bulk::compress(&half[..half.len() / 2], 3).unwrap(),
            zstd::bulk::compress(&half[half.len() / 2..], 3).unwrap(),
        ]
        .concat();
        let hostile = [
            ("a second frame", [frame.clone(), frame.clone()].concat()),
            (
                "a trailing skippable frame",
                [frame.clone(), skippable_frame(b"x")].concat(),
            ),
            (
                "a leading skippable frame",
                [skippable_frame(b"x"), frame.clone()].concat(),
            ),
            ("a trailing byte", [frame.clone(), vec![0]].concat()),
            ("a value split over two frames", halves),
            ("a truncated frame", frame[..frame.len() - 1].to_vec()),
        ];
        for (what, body) in hostile {
            let err = open(&body).unwrap_err();
            assert!(err.is_damage(), "{what}: {err}");
            assert!(err.to_string().contains("snapshot s"), "{what}: {err}");
        }
    }
}
