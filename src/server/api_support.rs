//! What the server functions in `crate::api` stand on: the state, the session, the browser's
//! connection, and the conversion of server errors into the browser-safe [`AppError`].

use tower_sessions::Session;

use super::state::AppState;
use super::vault::store::to_unix;
use super::vault::{Binding, ConnectionState};
use super::workspace::WorkspaceError;
use crate::api::AppError;
use crate::domain::{self, ConnectionView, DashboardView, OrganizationView, RecordPage};

/// Gives an error its HTTP status (a server function's error is otherwise a 500): the caller's
/// state is a 4xx, the Workspace's trouble a 503, only our own failure a 500.
///
/// Only when the server function was called over HTTP: while a page renders on the server, its
/// resources call server functions in-process, and the page's own status must not change.
pub fn with_status<T>(result: Result<T, AppError>) -> Result<T, AppError> {
    let called_over_http = leptos::prelude::use_context::<axum::http::request::Parts>()
        .is_some_and(|parts| parts.uri.path().starts_with("/api/"));
    if let (Err(error), true) = (&result, called_over_http) {
        use axum::http::StatusCode;
        let status = match error {
            AppError::NotConnected | AppError::ReconnectRequired => StatusCode::UNAUTHORIZED,
            AppError::AskWorkspaceAdmin
            | AppError::ScopeDenied { .. }
            | AppError::WrongOrganization => StatusCode::FORBIDDEN,
            AppError::Retry => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            AppError::Request => StatusCode::BAD_REQUEST,
        };
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            response.set_status(status);
        }
    }
    result
}

pub fn state() -> Result<AppState, AppError> {
    leptos::prelude::use_context::<AppState>().ok_or_else(|| {
        tracing::error!("AppState missing from the server function context");
        AppError::Internal
    })
}

pub async fn session() -> Result<Session, AppError> {
    leptos_axum::extract::<Session>().await.map_err(|error| {
        tracing::error!(?error, "no session on a server function request");
        AppError::Internal
    })
}

/// The connection this browser completed a flow for; nothing else is visible to it.
///
/// Only a connection to the provider and resource configured now: after
/// `QENTRAH_WORKSPACE_API_URL` is repointed, a connection made with the old Workspace is not
/// connected, and nothing of it (its bearer, its refresh token) is ever sent to the new one.
pub async fn connection_key() -> Result<Binding, AppError> {
    let session = session().await?;
    let binding = super::session::current_connection(&session)
        .await
        .map_err(|error| AppError::internal("reading the session", &error))?
        .ok_or(AppError::NotConnected)?;
    let state = state()?;
    let provider = state.oauth.provider();
    if binding.key.provider != provider.name || binding.key.resource != provider.resource {
        tracing::info!("the session's connection is for another Workspace than the configured one");
        return Err(AppError::NotConnected);
    }
    let now = to_unix(state.clock.now());
    super::session::keep_alive(&session, now)
        .await
        .map_err(|error| AppError::internal("renewing the session", &error))?;
    Ok(binding)
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
fn vault_failure(context: &str, error: &crate::server::vault::VaultError) -> AppError {
    use crate::server::vault::VaultError;
    match error {
        VaultError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) | VaultError::Busy => {
            tracing::warn!(%error, "{context}: the database is busy or unreachable");
            AppError::Retry
        }
        _ => AppError::internal(context, error),
    }
}

impl AppState {
    /// The Connection page's facts. A row whose tokens cannot be decrypted (its key removed
    /// from the keyring, or tampered with) reads as needing a new authorization, which is all
    /// that can help it.
    pub async fn connection_view(&self, binding: &Binding) -> Result<ConnectionView, AppError> {
        use crate::server::vault::VaultError;
        let (info, readable) = match self.vault.access(&binding.key).await {
            Ok(Some((info, _token))) => (info, true),
            Ok(None) => return Err(AppError::NotConnected),
            Err(VaultError::Cipher(_) | VaultError::Encoding) => {
                tracing::error!(
                    "a stored connection cannot be decrypted; it needs a new authorization"
                );
                let info = self
                    .vault
                    .info(&binding.key)
                    .await
                    .map_err(|e| vault_failure("reading the vault", &e))?
                    .ok_or(AppError::NotConnected)?;
                (info, false)
            }
            Err(error) => return Err(vault_failure("reading the vault", &error)),
        };
        if !binding.holds(&info) {
            return Err(AppError::NotConnected);
        }
        Ok(ConnectionView {
            organization_id: info.key.organization_id.clone(),
            state: match info.state {
                ConnectionState::Active if readable => domain::ConnectionState::Connected,
                _ => domain::ConnectionState::ReconnectRequired,
            },
            missing_scopes: self
                .oauth
                .provider()
                .scopes
                .iter()
                .filter(|wanted| !info.scopes.contains(wanted))
                .cloned()
                .collect(),
            scopes: info.scopes,
            connected_at: to_unix(info.connected_at),
            refreshed_at: info.refreshed_at.map(to_unix),
        })
    }

    pub async fn organization(&self, binding: &Binding) -> Result<OrganizationView, AppError> {
        Ok(self.workspace.organization(binding).await?)
    }

    pub async fn dashboard(&self, binding: &Binding) -> Result<DashboardView, AppError> {
        Ok(self.workspace.dashboard(binding).await?)
    }

    /// The first upstream page of a list.
    pub async fn first_page(
        &self,
        binding: &Binding,
        list: domain::ListKind,
    ) -> Result<RecordPage, AppError> {
        Ok(self.workspace.first_page(binding, list.into()).await?)
    }

    /// One page of a list. A cursor is the browser's input: one too long to be the
    /// Workspace's is refused here (400); one the Workspace refuses is refused too.
    pub async fn page(
        &self,
        binding: &Binding,
        resource: crate::server::workspace::ListResource,
        cursor: Option<String>,
    ) -> Result<RecordPage, AppError> {
        let cursor = cursor.filter(|c| !c.is_empty());
        if cursor.as_ref().is_some_and(|c| c.len() > 2048) {
            return Err(AppError::Request);
        }
        Ok(self
            .workspace
            .page(binding, resource, cursor.as_deref())
            .await?)
    }

    /// Revokes the grant (RFC 7009: its refresh token, or its access token when it has none),
    /// then deletes the connection whatever the Workspace answered, queued behind any refresh
    /// of it (see [`crate::server::vault::TokenManager::disconnect`]).
    pub async fn disconnect(&self, binding: &Binding) -> Result<(), AppError> {
        use crate::server::vault::TokenError;
        match self.workspace.tokens().disconnect(binding).await {
            Ok(()) | Err(TokenError::NotConnected) => Ok(()),
            Err(TokenError::Busy) => Err(AppError::Retry),
            Err(TokenError::Vault(error)) => Err(vault_failure("deleting the connection", &error)),
            Err(error) => Err(AppError::internal("deleting the connection", &error)),
        }
    }
}
