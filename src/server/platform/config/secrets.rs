//! The app's own secrets: the session secret and the vault's keys. Each is a redacting
//! newtype; a refusal names the variable, never the value.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::{var, ConfigError};
use crate::server::platform::crypto::{kdf, KeyMaterial, Keyring};

/// The minimum length of `SESSION_SECRET`, in characters.
pub const SESSION_SECRET_MIN_CHARS: usize = 32;

/// The development `SESSION_SECRET` shipped in `.env.example`: public, so refused for any
/// https `PARTNER_APP_URL`.
pub const DEVELOPMENT_SESSION_SECRET: &str = "dev-only-session-secret-change-me-0123456789";

/// Keys for the token vault: the current one (absent: derived from `SESSION_SECRET`) and
/// earlier ones that still decrypt rows written before a rotation.
#[derive(Debug, Clone, Default)]
pub struct VaultKeys {
    pub current: Option<KeyMaterial>,
    pub previous: Vec<KeyMaterial>,
}

impl VaultKeys {
    /// `TOKEN_VAULT_KEY` (or, unset, a key derived from `SESSION_SECRET` under its own label,
    /// so the vault key is never the cookie key) and `TOKEN_VAULT_PREVIOUS_KEYS`.
    pub fn from_env(env: &super::Env<'_>) -> Result<Self, ConfigError> {
        let current = env
            .optional(var::TOKEN_VAULT_KEY)
            .map(|value| parse_key(var::TOKEN_VAULT_KEY, &value))
            .transpose()?;
        let previous = env
            .optional(var::TOKEN_VAULT_PREVIOUS_KEYS)
            .unwrap_or_default()
            .split(',')
            .filter(|key| !key.trim().is_empty())
            .map(|key| parse_key(var::TOKEN_VAULT_PREVIOUS_KEYS, key))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { current, previous })
    }

    /// The keyring these keys make.
    pub fn keyring(&self, session_secret: &SessionSecret) -> Keyring {
        let derived;
        let current = match &self.current {
            Some(material) => material,
            None => {
                derived =
                    kdf::derive_key(session_secret.expose().as_bytes(), b"token-vault-key-v1");
                &derived
            }
        };
        Keyring::new(current, &self.previous)
    }
}

/// Parses base64 (standard or URL-safe, padding optional) of exactly 32 bytes.
pub fn parse_key(name: &'static str, raw: &str) -> Result<KeyMaterial, ConfigError> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use base64::Engine;
    let trimmed = raw.trim().trim_end_matches('=');
    STANDARD_NO_PAD
        .decode(trimmed)
        .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
        .map(KeyMaterial::from_bytes)
        .ok_or_else(|| {
            ConfigError::new(
                name,
                "must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)",
            )
        })
}

/// The secret from which the session-cookie signing key (and later the vault key) is derived.
///
/// # Security
/// Never printed, never serialized; only key derivation reads it.
#[derive(Clone)]
pub struct SessionSecret(SecretString);

impl SessionSecret {
    pub fn parse(raw: String) -> Result<Self, ConfigError> {
        if raw.chars().count() < SESSION_SECRET_MIN_CHARS {
            return Err(ConfigError::new(
                var::SESSION_SECRET,
                format!("must be at least {SESSION_SECRET_MIN_CHARS} characters long"),
            ));
        }
        Ok(Self(SecretString::from(raw)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret([redacted])")
    }
}
