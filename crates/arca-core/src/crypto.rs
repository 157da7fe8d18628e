//! Keys, sealing and blob ids.
//!
//! One random 32-byte master secret per repository. BLAKE3's `derive_key`
//! splits it into an encryption key (XChaCha20-Poly1305), an id key (keyed
//! BLAKE3 of blob plaintext) and the chunker seed. Sealed values are
//! `nonce(24) ‖ ciphertext ‖ tag(16)` with a random nonce each time: 192-bit
//! nonces make collisions negligible without any counter state to keep.
//! Associated data binds each value to what it is (blob kind and id, or the
//! object kind), so storage cannot swap one for another undetected.

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::format::{
    CONTEXT_CHUNKER, CONTEXT_ENCRYPTION, CONTEXT_ID, CONTEXT_WAL, KEY_LEN, NONCE_LEN,
    SEAL_OVERHEAD, TAG_LEN,
};
use crate::id::Id;

/// Fills `buf` from the operating system's random source.
pub(crate) fn random_bytes(buf: &mut [u8]) {
    // Without a working OS RNG no key or nonce can be made safely; there is
    // nothing sensible to fall back to.
    #[allow(clippy::expect_used)]
    getrandom::getrandom(buf).expect("the operating system's random source failed");
}

/// The repository's master secret and the keys derived from it. Zeroed on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    secret: [u8; KEY_LEN],
    encryption: [u8; KEY_LEN],
    id: [u8; KEY_LEN],
    wal: [u8; KEY_LEN],
    chunker_seed: u64,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Authentication failed: wrong key, or bytes that were changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenError;

impl MasterKey {
    /// A new random master key.
    pub fn generate() -> MasterKey {
        let mut secret = [0; KEY_LEN];
        random_bytes(&mut secret);
        let key = MasterKey::from_secret(&secret);
        secret.zeroize();
        key
    }

    /// Derives the keys from a master secret.
    pub fn from_secret(secret: &[u8; KEY_LEN]) -> MasterKey {
        let seed = blake3::derive_key(CONTEXT_CHUNKER, secret);
        let mut seed8 = [0; 8];
        seed8.copy_from_slice(&seed[..8]);
        MasterKey {
            secret: *secret,
            encryption: blake3::derive_key(CONTEXT_ENCRYPTION, secret),
            id: blake3::derive_key(CONTEXT_ID, secret),
            wal: blake3::derive_key(CONTEXT_WAL, secret),
            chunker_seed: u64::from_le_bytes(seed8),
        }
    }

    /// The master secret, for wrapping in a key file.
    pub(crate) fn secret(&self) -> &[u8; KEY_LEN] {
        &self.secret
    }

    /// The chunker's gear-table seed.
    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    /// Keyed BLAKE3 of a blob's plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id, plaintext).as_bytes())
    }

    /// Keyed BLAKE3 of a PostgreSQL WAL file name: the name of the object
    /// that holds the file, which storage cannot map back to the file name.
    pub fn wal_name(&self, file_name: &str) -> Id {
        Id(*blake3::keyed_hash(&self.wal, file_name.as_bytes()).as_bytes())
    }

    /// Seals `plaintext`, appending `nonce ‖ ciphertext ‖ tag` to `out`.
    pub fn seal_into(&self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        seal_into(&self.encryption, aad, plaintext, out);
    }

    /// Seals `plaintext` into a new buffer.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
        self.seal_into(aad, plaintext, &mut out);
        out
    }

    /// Opens a sealed value.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        open(&self.encryption, aad, sealed)
    }

    /// Opens a sealed value into `out`, reusing its memory.
    pub fn open_into(&self, aad: &[u8], sealed: &[u8], out: &mut Vec<u8>) -> Result<(), OpenError> {
        open_into(&self.encryption, aad, sealed, out)
    }
}

thread_local! {
    /// Nonces that [`with_fixed_nonces`] hands to this thread's seals.
    static FIXED_NONCES: std::cell::RefCell<Vec<[u8; NONCE_LEN]>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with the values it seals on this thread taking their nonces
/// from `nonces`, in order, instead of from the random source; once they
/// are used up, seals draw random nonces again. This exists so that tests
/// can rebuild the worked examples of docs/format.md §9 byte for byte. A
/// nonce used twice under one key breaks XChaCha20-Poly1305's security, so
/// nothing but tests may call it.
#[doc(hidden)]
pub fn with_fixed_nonces<T>(nonces: &[[u8; NONCE_LEN]], f: impl FnOnce() -> T) -> T {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            FIXED_NONCES.with(|fixed| fixed.borrow_mut().clear());
        }
    }
    FIXED_NONCES.with(|fixed| *fixed.borrow_mut() = nonces.iter().rev().copied().collect());
    let _reset = Reset;
    f()
}

pub(crate) fn seal_into(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
    let mut nonce = [0; NONCE_LEN];
    match FIXED_NONCES.with(|fixed| fixed.borrow_mut().pop()) {
        Some(fixed) => nonce = fixed,
        None => random_bytes(&mut nonce),
    }
    let cipher = XChaCha20Poly1305::new(key.into());
    out.reserve(plaintext.len() + SEAL_OVERHEAD);
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(plaintext);
    // Encryption in place cannot fail for inputs below the cipher's 256 GiB
    // limit, which every caller stays far under.
    #[allow(clippy::expect_used)]
    let tag = cipher
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut out[start..])
        .expect("plaintext within XChaCha20-Poly1305 limits");
    out.extend_from_slice(&tag);
}

pub(crate) fn open(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
    let mut buf = Vec::new();
    open_into(key, aad, sealed, &mut buf)?;
    Ok(buf)
}

/// Opens a sealed value into `out`, replacing its contents (its memory is
/// reused).
pub(crate) fn open_into(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    sealed: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), OpenError> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(OpenError);
    }
    let (nonce, rest) = sealed.split_at(NONCE_LEN);
    let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
    out.clear();
    out.extend_from_slice(ciphertext);
    let cipher = XChaCha20Poly1305::new(key.into());
    cipher
        .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, out, Tag::from_slice(tag))
        .map_err(|_| OpenError)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_aad_binding() {
        let key = MasterKey::generate();
        let sealed = key.seal(b"aad", b"hello");
        assert_eq!(sealed.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(key.open(b"aad", &sealed).unwrap(), b"hello");
        assert_eq!(key.open(b"other", &sealed), Err(OpenError));
        assert_eq!(MasterKey::generate().open(b"aad", &sealed), Err(OpenError));
        assert_eq!(key.open(b"aad", &sealed[..10]), Err(OpenError));
    }

    #[test]
    fn nonces_are_fresh() {
        let key = MasterKey::generate();
        assert_ne!(key.seal(b"", b"same"), key.seal(b"", b"same"));
    }

    #[test]
    fn fixed_nonces_serve_only_inside_the_closure_and_only_once() {
        let key = MasterKey::generate();
        let fixed = [[1; NONCE_LEN], [2; NONCE_LEN]];
        let sealed = with_fixed_nonces(&fixed, || {
            [b"a", b"b", b"c"].map(|p| key.seal(b"", p)[..NONCE_LEN].to_vec())
        });
        assert_eq!(sealed[0], [1; NONCE_LEN]);
        assert_eq!(sealed[1], [2; NONCE_LEN]);
        assert!(![[1; NONCE_LEN], [2; NONCE_LEN]].contains(&sealed[2][..].try_into().unwrap()));
        let _ = std::panic::catch_unwind(|| with_fixed_nonces(&fixed, || panic!("unwinds")));
        let after = key.seal(b"", b"a");
        assert!(
            ![[1; NONCE_LEN], [2; NONCE_LEN]].contains(&after[..NONCE_LEN].try_into().unwrap())
        );
    }

    #[test]
    fn derived_keys_differ_and_are_deterministic() {
        let secret = [7u8; KEY_LEN];
        let a = MasterKey::from_secret(&secret);
        let b = MasterKey::from_secret(&secret);
        assert_eq!(a.blob_id(b"x"), b.blob_id(b"x"));
        assert_eq!(a.chunker_seed(), b.chunker_seed());
        assert_ne!(a.encryption, a.id);
        assert_ne!(a.wal, a.id);
        assert_ne!(a.wal, a.encryption);
        assert_ne!(a.wal_name("x"), a.blob_id(b"x"));
        assert_ne!(
            a.blob_id(b"x"),
            Id(*blake3::hash(b"x").as_bytes()),
            "ids are keyed"
        );
    }
}
