//! Authenticated encryption for everything the vault keeps: XChaCha20-Poly1305 with a random
//! 192-bit nonce per value, a key id stored beside each ciphertext, and associated data that
//! binds a ciphertext to the row and field it belongs to (a ciphertext moved elsewhere fails).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use crate::server::config::{SessionSecret, VaultKeyMaterial, VaultKeys};

const NONCE_LEN: usize = 24;

/// Why a value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error(
        "no vault key with id {0} is configured (was it removed from TOKEN_VAULT_PREVIOUS_KEYS?)"
    )]
    UnknownKey(String),
    #[error("the ciphertext is malformed")]
    Malformed,
    #[error("decryption failed: wrong key, tampered ciphertext, or a ciphertext moved to another row or field")]
    Decrypt,
    #[error("the random number generator failed")]
    Random,
}

/// A sealed value: `nonce || ciphertext+tag`, opened with the key named `key_id`.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sealed(key {}, {} bytes)", self.key_id, self.bytes.len())
    }
}

struct KeyEntry {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// The current key (used for every write) and earlier keys (still read).
pub struct Keyring {
    current: KeyEntry,
    previous: Vec<KeyEntry>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl Keyring {
    /// `TOKEN_VAULT_KEY` when set, otherwise a key derived from `SESSION_SECRET` with HKDF
    /// (RFC 5869) under its own `info`, so the vault key is never the cookie key.
    pub fn from_config(keys: &VaultKeys, session_secret: &SessionSecret) -> Self {
        let current = match &keys.current {
            Some(material) => entry(material.expose()),
            None => entry(derive_from_session_secret(session_secret).expose()),
        };
        let previous = keys
            .previous
            .iter()
            .map(|material| entry(material.expose()))
            .filter(|e| e.id != current.id)
            .collect();
        Self { current, previous }
    }

    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// Encrypts `plaintext`, binding `aad` (RFC 8439 §2.8 associated data) to it.
    ///
    /// # Security
    /// `aad` must name the row and field, so that a ciphertext copied to another row fails.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, CipherError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| CipherError::Random)?;
        let ciphertext = self
            .current
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| CipherError::Decrypt)?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Ok(Sealed {
            key_id: self.current.id.clone(),
            bytes,
        })
    }

    /// Decrypts a value sealed with any configured key under the same `aad`.
    pub fn open(&self, sealed: &Sealed, aad: &[u8]) -> Result<Vec<u8>, CipherError> {
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| CipherError::UnknownKey(sealed.key_id.clone()))?;
        if sealed.bytes.len() < NONCE_LEN + 16 {
            return Err(CipherError::Malformed);
        }
        let (nonce, ciphertext) = sealed.bytes.split_at(NONCE_LEN);
        key.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| CipherError::Decrypt)
    }
}

fn entry(key: &[u8; 32]) -> KeyEntry {
    // The id names the key without revealing it: a truncated hash under its own label.
    let digest = Sha256::new()
        .chain_update(b"qentrah-connect vault key id v1\0")
        .chain_update(key)
        .finalize();
    let id: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    KeyEntry {
        id: format!("k{id}"),
        cipher: XChaCha20Poly1305::new(key.into()),
    }
}

fn derive_from_session_secret(secret: &SessionSecret) -> VaultKeyMaterial {
    let hkdf = Hkdf::<Sha256>::new(Some(b"qentrah-connect"), secret.expose().as_bytes());
    let mut key = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's output limit, so expansion cannot fail.
    let _ = hkdf.expand(b"token-vault-key-v1", &mut key);
    VaultKeyMaterial::from_bytes(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(current: Option<[u8; 32]>, previous: &[[u8; 32]]) -> VaultKeys {
        VaultKeys {
            current: current.map(VaultKeyMaterial::from_bytes),
            previous: previous
                .iter()
                .copied()
                .map(VaultKeyMaterial::from_bytes)
                .collect(),
        }
    }

    fn secret() -> SessionSecret {
        SessionSecret::parse("x".repeat(40)).unwrap()
    }

    #[test]
    fn round_trip_with_matching_aad() {
        let ring = Keyring::from_config(&keys(None, &[]), &secret());
        let sealed = ring.seal(b"qat_secret", b"row-1|access_token").unwrap();
        assert!(!sealed
            .bytes
            .windows(b"qat_secret".len())
            .any(|w| w == b"qat_secret"));
        assert_eq!(
            ring.open(&sealed, b"row-1|access_token").unwrap(),
            b"qat_secret"
        );
        // Same plaintext twice: different ciphertexts (random nonces).
        assert_ne!(
            sealed,
            ring.seal(b"qat_secret", b"row-1|access_token").unwrap()
        );
    }

    #[test]
    fn aad_swap_is_refused() {
        let ring = Keyring::from_config(&keys(None, &[]), &secret());
        let sealed = ring.seal(b"token", b"org_a|access_token").unwrap();
        assert!(matches!(
            ring.open(&sealed, b"org_b|access_token"),
            Err(CipherError::Decrypt)
        ));
        assert!(matches!(
            ring.open(&sealed, b"org_a|refresh_token"),
            Err(CipherError::Decrypt)
        ));
    }

    #[test]
    fn rotation_reads_old_keys_and_writes_with_the_new_one() {
        let old = Keyring::from_config(&keys(Some([1; 32]), &[]), &secret());
        let sealed = old.seal(b"token", b"aad").unwrap();

        let rotated = Keyring::from_config(&keys(Some([2; 32]), &[[1; 32]]), &secret());
        assert_eq!(rotated.open(&sealed, b"aad").unwrap(), b"token");
        let resealed = rotated.seal(b"token", b"aad").unwrap();
        assert_ne!(resealed.key_id, sealed.key_id);
        assert_eq!(resealed.key_id, rotated.current_key_id());

        let forgotten = Keyring::from_config(&keys(Some([2; 32]), &[]), &secret());
        assert!(matches!(
            forgotten.open(&sealed, b"aad"),
            Err(CipherError::UnknownKey(_))
        ));
    }

    #[test]
    fn derived_key_differs_per_secret_and_from_explicit_keys() {
        let a = Keyring::from_config(&keys(None, &[]), &secret());
        let b = Keyring::from_config(
            &keys(None, &[]),
            &SessionSecret::parse("y".repeat(40)).unwrap(),
        );
        assert_ne!(a.current_key_id(), b.current_key_id());
        assert!(format!("{a:?}").starts_with("Keyring"));
    }

    #[test]
    fn malformed_ciphertext_is_refused() {
        let ring = Keyring::from_config(&keys(None, &[]), &secret());
        let sealed = Sealed {
            key_id: ring.current_key_id().to_owned(),
            bytes: vec![0; 10],
        };
        assert!(matches!(
            ring.open(&sealed, b""),
            Err(CipherError::Malformed)
        ));
    }
}
