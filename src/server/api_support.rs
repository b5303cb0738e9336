//! What the server functions in `crate::api` stand on: the state, the session, the browser's
//! connection, and the conversion of server errors into the browser-safe [`AppError`].

use tower_sessions::Session;

use super::state::AppState;
use super::vault::store::to_unix;
use super::vault::{ConnectionKey, ConnectionState};
use super::workspace::WorkspaceError;
use crate::api::AppError;
use crate::domain::{self, ConnectionView, DashboardView, OrganizationView, RecordView};

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
pub async fn connection_key() -> Result<ConnectionKey, AppError> {
    let session = session().await?;
    let key = super::session::current_connection(&session)
        .await
        .map_err(|error| AppError::internal("reading the session", &error))?
        .ok_or(AppError::NotConnected)?;
    let now = to_unix(state()?.clock.now());
    super::session::keep_alive(&session, now)
        .await
        .map_err(|error| AppError::internal("renewing the session", &error))?;
    Ok(key)
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
    pub async fn connection_view(&self, key: &ConnectionKey) -> Result<ConnectionView, AppError> {
        let info = self
            .vault
            .info(key)
            .await
            .map_err(|e| vault_failure("reading the vault", &e))?
            .ok_or(AppError::NotConnected)?;
        Ok(ConnectionView {
            organization_id: info.key.organization_id.clone(),
            state: match info.state {
                ConnectionState::Active => domain::ConnectionState::Connected,
                ConnectionState::ReconnectRequired => domain::ConnectionState::ReconnectRequired,
            },
            scopes: info.scopes,
            connected_at: to_unix(info.connected_at),
            refreshed_at: info.refreshed_at.map(to_unix),
        })
    }

    pub async fn organization(&self, key: &ConnectionKey) -> Result<OrganizationView, AppError> {
        Ok(self.workspace.organization(key).await?)
    }

    pub async fn dashboard(&self, key: &ConnectionKey) -> Result<DashboardView, AppError> {
        Ok(self.workspace.dashboard(key).await?)
    }

    pub async fn list(
        &self,
        key: &ConnectionKey,
        resource: &str,
    ) -> Result<Vec<RecordView>, AppError> {
        Ok(self.workspace.list(key, resource).await?)
    }

    /// Revokes the grant (RFC 7009: its refresh token, or its access token when it has none),
    /// then deletes the connection whatever the Workspace answered: the tokens are purged
    /// locally even when it is unreachable.
    pub async fn disconnect(&self, key: &ConnectionKey) -> Result<(), AppError> {
        match self.vault.load(key).await {
            Ok(Some(connection)) => {
                let token = crate::server::oauth::Revocable::best_of(
                    connection.refresh_token.as_ref(),
                    &connection.access_token,
                );
                if let Err(error) = self.oauth.revoke(token).await {
                    tracing::warn!(%error, "revocation failed; deleting the connection anyway");
                }
            }
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(error = %super::error_chain(&error), "could not read the connection to revoke it")
            }
        }
        self.workspace.tokens().forget(key);
        self.vault
            .delete(key)
            .await
            .map_err(|e| AppError::internal("deleting the connection", &e))?;
        Ok(())
    }
}
