//! Key files: the master secret wrapped under a password.
//!
//! `keys/<id>` is an *unencrypted* MessagePack map (the KDF parameters must
//! be readable before any key exists) holding argon2id parameters, a salt,
//! and the master secret sealed with the password-derived key. Several key
//! files may wrap the same secret, one per password. Because an attacker can
//! edit a key file, its KDF parameters are checked against caps before the
//! KDF allocates anything.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{self, MasterKey, random_bytes};
use crate::error::{Error, Result};
use crate::format::{
    AAD_KEY, KDF_ARGON2ID, KDF_MAX_ITERATIONS, KDF_MAX_MEMORY_KIB, KDF_MAX_PARALLELISM,
    KDF_MAX_SALT_LEN, KDF_MIN_ITERATIONS, KDF_MIN_MEMORY_KIB, KDF_MIN_PARALLELISM,
    KDF_MIN_SALT_LEN, KEY_FILE_VERSION, KEY_LEN, SEAL_OVERHEAD,
};
use crate::time::Time;

/// Salt length of new keys in bytes; readers accept any length from
/// `KDF_MIN_SALT_LEN` to `KDF_MAX_SALT_LEN`.
const SALT_LEN: usize = 32;

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl KdfParams {
    /// The parameters of new keys: 64 MiB, 3 passes, 1 lane. The password
    /// is what protects an offsite copy from whoever holds the bucket, so
    /// the cost of a guess is set with the tools operators compare arca with
    /// (borg 2 uses 64 MiB), not lowered to shave the memory a command holds
    /// for a moment while it opens the repository.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        iterations: 3,
        parallelism: 1,
    };
}

impl Default for KdfParams {
    fn default() -> KdfParams {
        KdfParams::DEFAULT
    }
}

/// A decoded key file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    /// Key file version ([`KEY_FILE_VERSION`]).
    pub version: u32,
    /// The KDF's name ([`KDF_ARGON2ID`]).
    pub kdf: String,
    /// Argon2id memory in KiB.
    pub memory_kib: u32,
    /// Argon2id passes over memory.
    pub iterations: u32,
    /// Argon2id lanes.
    pub parallelism: u32,
    /// The KDF's salt.
    #[serde(with = "serde_bytes")]
    pub salt: Vec<u8>,
    /// The master secret sealed with the password-derived key.
    #[serde(with = "serde_bytes")]
    pub sealed_secret: Vec<u8>,
    /// When the key was made.
    pub created: Time,
    /// Host that made the key.
    pub hostname: String,
    /// User that made the key.
    pub username: String,
}

impl KeyFile {
    /// Wraps `key` under `password`.
    pub fn create(
        key: &MasterKey,
        password: &[u8],
        params: KdfParams,
        hostname: &str,
        username: &str,
    ) -> Result<KeyFile> {
        let mut salt = vec![0; SALT_LEN];
        random_bytes(&mut salt);
        let kek = derive(password, &salt, params, "new key")?;
        let mut sealed_secret = Vec::new();
        crypto::seal_into(&kek, AAD_KEY, key.secret(), &mut sealed_secret);
        Ok(KeyFile {
            version: KEY_FILE_VERSION,
            kdf: KDF_ARGON2ID.to_string(),
            memory_kib: params.memory_kib,
            iterations: params.iterations,
            parallelism: params.parallelism,
            salt,
            sealed_secret,
            created: Time::now(),
            hostname: hostname.to_string(),
            username: username.to_string(),
        })
    }

    /// Encodes the key file.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain owned data into a Vec cannot fail.
        #[allow(clippy::expect_used)]
        rmp_serde::to_vec_named(self).expect("key file encodes")
    }

    /// Decodes and validates a key file; `object` names it in errors.
    pub fn decode(bytes: &[u8], object: &str) -> Result<KeyFile> {
        let file: KeyFile = crate::file::decode(bytes)
            .map_err(|e| Error::corrupt(object, format!("cannot decode key file: {e}")))?;
        file.validate(object)?;
        Ok(file)
    }

    fn validate(&self, object: &str) -> Result<()> {
        let bad = |reason: String| Err(Error::corrupt(object, reason));
        if self.version != KEY_FILE_VERSION {
            return bad(format!("unknown key file version {}", self.version));
        }
        if self.kdf != KDF_ARGON2ID {
            return bad(format!("unknown key derivation function {:?}", self.kdf));
        }
        if self.memory_kib > KDF_MAX_MEMORY_KIB
            || self.iterations > KDF_MAX_ITERATIONS
            || self.parallelism > KDF_MAX_PARALLELISM
        {
            return bad(format!(
                "KDF parameters m={} KiB, t={}, p={} exceed the caps m={KDF_MAX_MEMORY_KIB} KiB, t={KDF_MAX_ITERATIONS}, p={KDF_MAX_PARALLELISM}",
                self.memory_kib, self.iterations, self.parallelism
            ));
        }
        if self.memory_kib < KDF_MIN_MEMORY_KIB.max(8 * self.parallelism)
            || self.iterations < KDF_MIN_ITERATIONS
            || self.parallelism < KDF_MIN_PARALLELISM
        {
            return bad(format!(
                "KDF parameters m={} KiB, t={}, p={} are below the minimum m={KDF_MIN_MEMORY_KIB} KiB, t={KDF_MIN_ITERATIONS}, p={KDF_MIN_PARALLELISM}",
                self.memory_kib, self.iterations, self.parallelism
            ));
        }
        if !(KDF_MIN_SALT_LEN..=KDF_MAX_SALT_LEN).contains(&self.salt.len()) {
            return bad(format!("salt of {} bytes", self.salt.len()));
        }
        if self.sealed_secret.len() != KEY_LEN + SEAL_OVERHEAD {
            return bad(format!("sealed key of {} bytes", self.sealed_secret.len()));
        }
        Ok(())
    }

    fn params(&self) -> KdfParams {
        KdfParams {
            memory_kib: self.memory_kib,
            iterations: self.iterations,
            parallelism: self.parallelism,
        }
    }

    /// Unwraps the master key; `Ok(None)` when the password does not fit.
    pub fn open(&self, password: &[u8], object: &str) -> Result<Option<MasterKey>> {
        self.validate(object)?;
        let kek = derive(password, &self.salt, self.params(), object)?;
        let Ok(secret) = crypto::open(&kek, AAD_KEY, &self.sealed_secret) else {
            return Ok(None);
        };
        let secret = Zeroizing::new(secret);
        let mut fixed = Zeroizing::new([0; KEY_LEN]);
        fixed.copy_from_slice(&secret);
        Ok(Some(MasterKey::from_secret(&fixed)))
    }
}

fn derive(
    password: &[u8],
    salt: &[u8],
    params: KdfParams,
    object: &str,
) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let argon_params = argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(KEY_LEN),
    )
    .map_err(|e| Error::corrupt(object, format!("invalid KDF parameters: {e}")))?;
    let argon = argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon_params,
    );
    let mut out = Zeroizing::new([0; KEY_LEN]);
    argon
        .hash_password_into(password, salt, out.as_mut())
        .map_err(|e| Error::corrupt(object, format!("key derivation failed: {e}")))?;
    Ok(out)
}

#[cfg(test)]
pub(crate) const TEST_KDF: KdfParams = KdfParams {
    memory_kib: crate::format::KDF_MIN_MEMORY_KIB,
    iterations: 1,
    parallelism: 1,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_and_unwraps_the_master_key() {
        let key = MasterKey::generate();
        let file = KeyFile::create(&key, b"pw", TEST_KDF, "h", "u").unwrap();
        let decoded = KeyFile::decode(&file.encode(), "key").unwrap();
        assert_eq!(decoded, file);
        let opened = decoded.open(b"pw", "key").unwrap().unwrap();
        assert_eq!(opened.blob_id(b"a"), key.blob_id(b"a"));
        assert!(decoded.open(b"wrong", "key").unwrap().is_none());
    }

    #[test]
    fn refuses_kdf_parameters_above_the_caps() {
        let key = MasterKey::generate();
        let mut file = KeyFile::create(&key, b"pw", TEST_KDF, "h", "u").unwrap();
        file.memory_kib = u32::MAX;
        let err = KeyFile::decode(&file.encode(), "key abc").unwrap_err();
        assert!(err.to_string().contains("key abc"), "{err}");
        assert!(err.to_string().contains("exceed the caps"), "{err}");
        file.memory_kib = TEST_KDF.memory_kib;
        file.iterations = KDF_MAX_ITERATIONS + 1;
        assert!(KeyFile::decode(&file.encode(), "key").is_err());
    }
}
