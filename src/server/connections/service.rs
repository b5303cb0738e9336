//! The connections service: what can be done with a session's connection (its view, its data
//! from the partner API, disconnecting it), in the browser-safe terms of [`AppError`]. Server
//! functions call it today; the public API will call the same service. It stands on the token
//! manager and the partner API client, side by side: the client holds no tokens.

use crate::api::AppError;
use crate::domain::{self, ConnectionView, DashboardView, ListKind, OrganizationView, RecordPage};
use crate::server::connections::{
    Binding, ConnectionAccess, ConnectionState, TokenError, TokenManager, VaultError,
};
use crate::server::platform::clock::to_unix;
use crate::server::providers::qentrah::{AuthorizedWorkspace, WorkspaceError};
use crate::server::providers::ProviderRegistry;

/// A list cursor longer than this is not one the Workspace issued: refused as the caller's
/// mistake before anything is sent.
const MAX_CURSOR_LEN: usize = 2048;

#[derive(Debug, Clone)]
pub struct Connections {
    tokens: TokenManager,
    providers: ProviderRegistry,
}

impl Connections {
    pub fn new(tokens: TokenManager, providers: ProviderRegistry) -> Self {
        Self { tokens, providers }
    }

    pub fn tokens(&self) -> &TokenManager {
        &self.tokens
    }

    /// The partner API of the connection's provider; a provider no longer configured has none
    /// (the connection is not connected).
    fn partner_api<'a>(
        &'a self,
        access: &'a ConnectionAccess,
    ) -> Result<AuthorizedWorkspace<'a>, AppError> {
        let provider = self
            .providers
            .get(access.key().provider())
            .ok_or(AppError::NotConnected)?;
        Ok(provider.api().for_connection(&self.tokens, access))
    }

    /// The Connection page's facts. A row whose tokens cannot be decrypted (its key removed
    /// from the keyring, or tampered with) reads as needing a new authorization, which is all
    /// that can help it.
    pub async fn view(&self, access: &ConnectionAccess) -> Result<ConnectionView, AppError> {
        let (info, readable) = self
            .tokens
            .facts(access)
            .await
            .map_err(|error| vault_failure("reading the vault", &error))?
            .ok_or(AppError::NotConnected)?;
        // The scopes its provider is asked for now, to show which of them the grant lacks.
        let wanted = self
            .providers
            .get(info.key.provider())
            .map(|provider| provider.profile().scopes.as_slice())
            .unwrap_or_default();
        Ok(ConnectionView {
            organization_id: info.key.organization_id().to_string(),
            state: match info.state {
                ConnectionState::Active if readable => domain::ConnectionState::Connected,
                ConnectionState::Uninstalled => domain::ConnectionState::Uninstalled,
                _ => domain::ConnectionState::ReconnectRequired,
            },
            missing_scopes: wanted
                .iter()
                .filter(|wanted| !info.scopes.contains(wanted))
                .cloned()
                .collect(),
            scopes: info.scopes,
            connected_at: to_unix(info.connected_at),
            refreshed_at: info.refreshed_at.map(to_unix),
        })
    }

    pub async fn organization(
        &self,
        access: &ConnectionAccess,
    ) -> Result<OrganizationView, AppError> {
        Ok(self.partner_api(access)?.organization().await?)
    }

    pub async fn dashboard(&self, access: &ConnectionAccess) -> Result<DashboardView, AppError> {
        Ok(self.partner_api(access)?.dashboard().await?)
    }

    /// The first upstream page of a list.
    pub async fn first_page(
        &self,
        access: &ConnectionAccess,
        list: ListKind,
    ) -> Result<RecordPage, AppError> {
        Ok(self.partner_api(access)?.first_page(list.into()).await?)
    }

    /// One page of a list. A cursor is the browser's input: one too long to be the
    /// Workspace's is refused here (400); one the Workspace refuses is refused too.
    pub async fn page(
        &self,
        access: &ConnectionAccess,
        list: ListKind,
        cursor: Option<String>,
    ) -> Result<RecordPage, AppError> {
        let cursor = cursor.filter(|c| !c.is_empty());
        if cursor.as_ref().is_some_and(|c| c.len() > MAX_CURSOR_LEN) {
            return Err(AppError::Request);
        }
        Ok(self
            .partner_api(access)?
            .page(list.into(), cursor.as_deref())
            .await?)
    }

    /// Revokes the grant (RFC 7009: its refresh token, or its access token when it has none),
    /// then deletes the connection whatever the Workspace answered, queued behind any refresh
    /// of it (see [`TokenManager::disconnect`]).
    pub async fn disconnect(&self, binding: &Binding) -> Result<(), AppError> {
        match self.tokens.disconnect(binding).await {
            Ok(()) | Err(TokenError::NotConnected) => Ok(()),
            Err(TokenError::Busy) => Err(AppError::Retry),
            Err(TokenError::Vault(error)) => Err(vault_failure("deleting the connection", &error)),
            Err(error) => Err(AppError::internal("deleting the connection", &error)),
        }
    }
}

impl From<WorkspaceError> for AppError {
    fn from(error: WorkspaceError) -> Self {
        match error {
            WorkspaceError::NotConnected => AppError::NotConnected,
            WorkspaceError::ReconnectRequired { code } => {
                tracing::info!(%code, "connection needs a new authorization");
                AppError::ReconnectRequired
            }
            WorkspaceError::AppNotApproved => AppError::AskWorkspaceAdmin,
            WorkspaceError::Uninstalled => AppError::Uninstalled,
            WorkspaceError::Installations => AppError::Retry,
            WorkspaceError::ScopeDenied { scope } => AppError::ScopeDenied { scope },
            WorkspaceError::WrongOrganization => AppError::WrongOrganization,
            WorkspaceError::Unavailable { detail } => {
                tracing::warn!(%detail, "Workspace unavailable");
                AppError::Retry
            }
            WorkspaceError::Misconfigured => {
                tracing::error!("the Workspace refused our client registration");
                AppError::Retry
            }
            WorkspaceError::BearerNotReceived => AppError::Retry,
            WorkspaceError::CursorRefused => AppError::Request,
            WorkspaceError::Vault(error) => vault_failure("token vault", &error),
        }
    }
}

/// A vault failure for the browser: a database that is busy or unreachable for a moment (every
/// pooled connection taken, a dropped connection) is worth a retry (503); anything else is ours.
fn vault_failure(context: &str, error: &VaultError) -> AppError {
    match error {
        VaultError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) | VaultError::Busy => {
            tracing::warn!(%error, "{context}: the database is busy or unreachable");
            AppError::Retry
        }
        _ => AppError::internal(context, error),
    }
}
