//! Keys derived from one secret, each under its own label (HKDF-SHA256, RFC 5869 §2), so that
//! no key derived for one use (signing cookies, sealing the vault) is the key of another.

use hkdf::Hkdf;
use sha2::Sha256;

/// The HKDF salt (RFC 5869 §3.1: a non-secret value that separates this application's keys).
const SALT: &[u8] = b"qentrah-connect";

/// Fills `out` with key material for `label` derived from `secret`.
///
/// # Security
/// The secret is read only by the HKDF extract step; `label` is the `info` that keeps
/// derived keys apart (RFC 5869 §3.2).
pub fn derive(secret: &[u8], label: &[u8], out: &mut [u8]) {
    let hkdf = Hkdf::<Sha256>::new(Some(SALT), secret);
    // Every caller asks for at most 64 bytes, far below HKDF-SHA256's limit of 255 * 32, so
    // expansion cannot fail.
    let _ = hkdf.expand(label, out);
}

/// A 32-byte key for `label` derived from `secret`.
pub fn derive_key(secret: &[u8], label: &[u8]) -> super::KeyMaterial {
    let mut key = [0u8; 32];
    derive(secret, label, &mut key);
    super::KeyMaterial::from_bytes(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_per_secret_and_per_label() {
        let key = |secret: &[u8], label: &[u8]| *derive_key(secret, label).expose();
        assert_eq!(key(b"secret", b"a"), key(b"secret", b"a"));
        assert_ne!(key(b"secret", b"a"), key(b"other", b"a"));
        assert_ne!(key(b"secret", b"a"), key(b"secret", b"b"));
    }
}
