//! The token vault: the only module that holds token plaintext. Tokens arrive from the OAuth
//! client as the newtypes below, are sealed before they touch the database, and leave only as an
//! `Authorization` header value built by the Workspace client.
//!
//! Connections are keyed by (provider, organization, resource), so other providers and
//! resources (marketplace installs, other hubs) fit beside Qentrah's partner API.

pub mod access;
pub mod cipher;
mod queue;
pub mod store;
pub mod tokens;

use std::fmt;
use std::time::SystemTime;

use secrecy::{ExposeSecret, SecretString};

pub use access::{ConnectionAccess, RequestScope};
pub use cipher::{CipherError, Keyring};
pub use store::{ConnectionStore, RefreshLease};
pub use tokens::{BearerCallError, BearerRefused, TokenError, TokenManager};

/// The provider this app connects to today.
pub const QENTRAH: &str = "qentrah";

/// What a connection is keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionKey {
    pub provider: String,
    pub organization_id: String,
    pub resource: String,
}

impl ConnectionKey {
    pub fn new(provider: &str, organization_id: &str, resource: &str) -> Self {
        Self {
            provider: provider.to_owned(),
            organization_id: organization_id.to_owned(),
            resource: resource.to_owned(),
        }
    }

    /// Associated data for a sealed field of this connection: moving a ciphertext to another
    /// row or column makes it fail to decrypt.
    fn aad(&self, field: &str) -> Vec<u8> {
        format!(
            "qentrah-connect/vault/v1\0{}\0{}\0{}\0{}",
            self.provider, self.organization_id, self.resource, field
        )
        .into_bytes()
    }
}

/// An OAuth access token.
///
/// # Security
/// Redacted in `Debug`, no `Display`, never `Serialize`: it cannot reach a log or the browser
/// by accident. Exposed only to build the `Authorization` header.
#[derive(Clone)]
pub struct AccessToken(SecretString);

/// An OAuth refresh token. Same guarantees as [`AccessToken`].
#[derive(Clone)]
pub struct RefreshToken(SecretString);

impl AccessToken {
    pub fn new(value: String) -> Self {
        Self(SecretString::from(value))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl RefreshToken {
    pub fn new(value: String) -> Self {
        Self(SecretString::from(value))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([redacted])")
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

/// What a token endpoint returned, already out of the oauth2 crate's `Serialize` types.
#[derive(Debug, Clone)]
pub struct TokenSet {
    pub access_token: AccessToken,
    pub refresh_token: Option<RefreshToken>,
    /// `None` when the server sent no `expires_in`.
    pub expires_in: Option<std::time::Duration>,
    /// `None` when the server sent no `scope` (RFC 6749 §5.1: then it is the requested set).
    pub scopes: Option<Vec<String>>,
    pub organization_id: Option<String>,
}

/// Whether a connection can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    Active,
    /// The Workspace refused the refresh token: only a new authorization helps.
    ReconnectRequired,
}

impl ConnectionState {
    fn parse(value: &str) -> Self {
        match value {
            "active" => ConnectionState::Active,
            _ => ConnectionState::ReconnectRequired,
        }
    }
}

/// A connection's facts without its secrets: safe to turn into a view model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub key: ConnectionKey,
    pub scopes: Vec<String>,
    pub state: ConnectionState,
    pub access_expires_at: SystemTime,
    pub connected_at: SystemTime,
    pub refreshed_at: Option<SystemTime>,
    pub has_refresh_token: bool,
    pub generation: i64,
    /// The grant the row holds now (see [`Binding`]).
    pub grant_id: String,
}

/// What a browser session holds: a connection, and the grant it completed itself. The row may
/// be used for this session only while it still holds that grant: after a disconnect and a new
/// authorization by someone else, the row is another grant, and this session is not connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub key: ConnectionKey,
    pub grant_id: String,
}

impl Binding {
    /// Whether the row's facts belong to this session's grant.
    pub fn holds(&self, info: &ConnectionInfo) -> bool {
        info.grant_id == self.grant_id
    }
}

/// A connection with its tokens decrypted. Lives only in memory, briefly.
#[derive(Debug, Clone)]
pub struct Connection {
    pub info: ConnectionInfo,
    pub access_token: AccessToken,
    pub refresh_token: Option<RefreshToken>,
}

/// Errors of the vault's storage.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the vault's database failed")]
    Database(#[from] sqlx::Error),
    #[error("a vault value could not be decrypted")]
    Cipher(#[from] CipherError),
    #[error("a decrypted token is not valid UTF-8")]
    Encoding,
    /// Another refresh of the same connection held its lock past the bound.
    #[error("another refresh of this connection is still running")]
    Busy,
    #[error("the system random number generator failed")]
    Random,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let access = AccessToken::new("qat_very_secret".to_owned());
        let refresh = RefreshToken::new("qrt_very_secret".to_owned());
        let printed = format!("{access:?} {refresh:?}");
        assert!(!printed.contains("very_secret"));
        let set = TokenSet {
            access_token: access,
            refresh_token: Some(refresh),
            expires_in: None,
            scopes: None,
            organization_id: Some("org_1".to_owned()),
        };
        assert!(!format!("{set:?}").contains("very_secret"));
    }
}
