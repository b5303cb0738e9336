//! Connections, and the token vault inside them: the only module that holds token plaintext.
//! Tokens arrive from the OAuth client as the credential newtypes, are sealed before they touch
//! the database (`store`), are refreshed single-flight in and across instances (`tokens`), and
//! leave only as an `Authorization` header value built by a partner API client. A request
//! holds one handle on its connection (`access`); the service (`service`) is what the server
//! functions, and later the public API, call.
//!
//! Connections are keyed by (provider, organization, resource), so other providers and
//! resources (marketplace installs, other hubs) fit beside Qentrah's partner API.

pub mod access;
mod queue;
mod service;
pub mod store;
pub mod tokens;

use std::time::SystemTime;

use crate::server::ids::{OrganizationId, ProviderId};

pub use crate::server::credentials::{AccessToken, RefreshToken, TokenSet};
pub use crate::server::platform::crypto::{CipherError, Keyring};
pub use access::{ConnectionAccess, RequestScope};
pub use service::Connections;
pub use store::{ConnectionStore, RefreshLease};
pub use tokens::{BearerCallError, BearerRefused, Purged, TokenError, TokenManager};

/// The provider this app connects to today.
pub use crate::vocabulary::QENTRAH;

/// What a connection is keyed by. Built only from a checked [`OrganizationId`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConnectionKey {
    provider: String,
    organization_id: OrganizationId,
    resource: String,
}

impl ConnectionKey {
    pub fn new(provider: &ProviderId, organization_id: &OrganizationId, resource: &str) -> Self {
        Self {
            provider: provider.as_str().to_owned(),
            organization_id: organization_id.clone(),
            resource: resource.to_owned(),
        }
    }

    /// The provider's name (`qentrah`).
    pub fn provider(&self) -> &str {
        &self.provider
    }

    pub fn organization_id(&self) -> &OrganizationId {
        &self.organization_id
    }

    /// The resource indicator the grant is for (RFC 8707).
    pub fn resource(&self) -> &str {
        &self.resource
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

/// Whether a connection can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    Active,
    /// The Workspace refused the refresh token: only a new authorization helps.
    ReconnectRequired,
    /// The grant's client was deleted at the Workspace (the app was uninstalled): only a new
    /// install helps.
    Uninstalled,
}

impl ConnectionState {
    fn parse(value: &str) -> Self {
        match value {
            "active" => ConnectionState::Active,
            "uninstalled" => ConnectionState::Uninstalled,
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
    /// The OAuth client the grant was issued to ('' for rows from before this was recorded).
    pub client_id: String,
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
    /// The grant id of an organization-wide binding ([`Binding::organization_wide`]); grant ids
    /// are random tokens, never this.
    const ANY_GRANT: &'static str = "*";

    /// `AUTH_MODE=sso`: the organization's connection, whichever grant it holds now (it serves
    /// every member of the organization, whoever authorized it).
    pub fn organization_wide(key: ConnectionKey) -> Self {
        Self {
            key,
            grant_id: Self::ANY_GRANT.to_owned(),
        }
    }

    /// Whether the row's facts belong to this session's grant.
    pub fn holds(&self, info: &ConnectionInfo) -> bool {
        self.grant_id == Self::ANY_GRANT || info.grant_id == self.grant_id
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
