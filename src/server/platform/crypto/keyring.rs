//! Authenticated encryption for every secret kept at rest: XChaCha20-Poly1305 with a random
//! 192-bit nonce per value, a key id stored beside each ciphertext, and associated data that
//! binds a ciphertext to the row and field it belongs to (a ciphertext moved elsewhere fails).

//!
//! Knows nothing of configuration: the vault, the flow store and anything else that seals a
//! secret at rest hand it [`KeyMaterial`] and name their own associated data.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

const NONCE_LEN: usize = 24;

/// Why a value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("no key with id {0} is configured (was it removed from the previous keys?)")]
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
    /// A keyring that writes with `current` and still reads what `previous` keys wrote.
    pub fn new<'a>(
        current: &KeyMaterial,
        previous: impl IntoIterator<Item = &'a KeyMaterial>,
    ) -> Self {
        let current = entry(current.expose());
        let previous = previous
            .into_iter()
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

/// 32 bytes of key material for the AEAD.
///
/// # Security
/// Never printed, never serialized; only a [`Keyring`] reads it.
pub struct KeyMaterial(secrecy::SecretBox<[u8; 32]>);

impl KeyMaterial {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(secrecy::SecretBox::new(Box::new(bytes)))
    }

    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl Clone for KeyMaterial {
    fn clone(&self) -> Self {
        Self::from_bytes(*self.expose())
    }
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyMaterial([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(current: [u8; 32], previous: &[[u8; 32]]) -> Keyring {
        let previous: Vec<_> = previous
            .iter()
            .copied()
            .map(KeyMaterial::from_bytes)
            .collect();
        Keyring::new(&KeyMaterial::from_bytes(current), &previous)
    }

    #[test]
    fn round_trip_with_matching_aad() {
        let ring = ring([7; 32], &[]);
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
        let ring = ring([7; 32], &[]);
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
        let old = ring([1; 32], &[]);
        let sealed = old.seal(b"token", b"aad").unwrap();

        let rotated = ring([2; 32], &[[1; 32]]);
        assert_eq!(rotated.open(&sealed, b"aad").unwrap(), b"token");
        let resealed = rotated.seal(b"token", b"aad").unwrap();
        assert_ne!(resealed.key_id, sealed.key_id);
        assert_eq!(resealed.key_id, rotated.current_key_id());

        let forgotten = ring([2; 32], &[]);
        assert!(matches!(
            forgotten.open(&sealed, b"aad"),
            Err(CipherError::UnknownKey(_))
        ));
    }

    #[test]
    fn key_ids_name_keys_without_revealing_them() {
        let (a, b) = (ring([1; 32], &[]), ring([2; 32], &[]));
        assert_ne!(a.current_key_id(), b.current_key_id());
        assert_eq!(a.current_key_id(), ring([1; 32], &[]).current_key_id());
        assert!(format!("{a:?}").starts_with("Keyring"));
        assert!(!format!("{:?}", KeyMaterial::from_bytes([1; 32])).contains('1'));
    }

    #[test]
    fn malformed_ciphertext_is_refused() {
        let ring = ring([7; 32], &[]);
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
