//! Ids: 32-byte BLAKE3 outputs, one type per thing they name.
//!
//! Blob and tree ids are keyed BLAKE3 of the plaintext (so storage cannot test
//! for known content); pack, index, snapshot and key ids are plain BLAKE3 of
//! the stored bytes (so anyone can detect storage corruption without a key).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::format::ID_LEN;

/// A raw 32-byte id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; ID_LEN]);

impl Id {
    /// The plain BLAKE3 hash of `bytes`: the name of a stored object.
    pub fn of_stored(bytes: &[u8]) -> Id {
        Id(*blake3::hash(bytes).as_bytes())
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits, as shown in tables.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Id> {
        let mut id = [0; ID_LEN];
        hex::decode_to_slice(s, &mut id).ok()?;
        Some(Id(id))
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl FromStr for Id {
    type Err = ();
    fn from_str(s: &str) -> Result<Id, ()> {
        Id::from_hex(s).ok_or(())
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Id;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{ID_LEN} bytes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Id, E> {
                v.try_into()
                    .map(Id)
                    .map_err(|_| E::invalid_length(v.len(), &self))
            }
        }
        d.deserialize_bytes(Visitor)
    }
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Id);

        impl $name {
            /// The raw id.
            pub fn id(&self) -> Id {
                self.0
            }
            /// Lowercase hex.
            pub fn to_hex(&self) -> String {
                self.0.to_hex()
            }
            /// The first 8 hex digits.
            pub fn short(&self) -> String {
                self.0.short()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.short())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

typed_id!(
    /// Keyed hash of a data blob's plaintext (one chunk of a file).
    BlobId
);
typed_id!(
    /// Keyed hash of a tree blob's plaintext (one encoded directory).
    TreeId
);
typed_id!(
    /// Hash of a pack's stored bytes; its name under `data/` or `tree/`.
    PackId
);
typed_id!(
    /// Hash of a snapshot file's stored bytes; its name under `snapshots/`.
    SnapshotId
);
typed_id!(
    /// Hash of an index file's stored bytes; its name under `index/`.
    IndexId
);
typed_id!(
    /// Hash of a key file's stored bytes; its name under `keys/`.
    KeyId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_rejects_bad_input() {
        let id = Id::of_stored(b"x");
        assert_eq!(Id::from_hex(&id.to_hex()), Some(id));
        assert_eq!(id.short().len(), 8);
        assert!(id.to_hex().starts_with(&id.short()));
        assert_eq!(Id::from_hex("abc"), None);
        assert_eq!(Id::from_hex(&"zz".repeat(32)), None);
    }

    #[test]
    fn msgpack_round_trip_and_length_check() {
        let id = BlobId(Id::of_stored(b"y"));
        let bytes = rmp_serde::to_vec(&id).unwrap();
        assert_eq!(rmp_serde::from_slice::<BlobId>(&bytes).unwrap(), id);
        let short = rmp_serde::to_vec(&serde_bytes::Bytes::new(&[1, 2, 3])).unwrap();
        assert!(rmp_serde::from_slice::<BlobId>(&short).is_err());
    }
}
