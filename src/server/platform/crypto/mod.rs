//! Primitives for secrets at rest: the keyring (AEAD with key ids and rotation) and key
//! derivation. Below everything that seals or signs; depends on nothing of the app.

pub mod kdf;
pub mod keyring;

pub use keyring::{CipherError, KeyMaterial, Keyring, Sealed};
