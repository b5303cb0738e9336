//! What the server functions in `crate::api` stand on: the state, the session, the browser's
//! connection, and the HTTP status of a failure.

use super::connections::Connections;
use super::state::AppState;
use crate::api::AppError;
use crate::server::connections::{Binding, ConnectionAccess, ConnectionKey, RequestScope};
use crate::server::identity::session::BrowserSession;
use crate::server::identity::users::SignedInUser;
use crate::server::platform::clock::to_unix;
use crate::server::platform::config::{AppRole, AuthMode};

/// A server function's work for this browser's connection: `work` gets the connections
/// service and the request's handle on the connection (read from the vault once per request,
/// however many calls the page makes). A failure gets its HTTP status
/// ([`AppError::status`]) when the server function was called over HTTP at `path`, its own
/// URL. While a page renders on the server, its resources call server functions in-process:
/// the request is then the page's, and the page's status must not change.
pub async fn for_connection<T, F, Fut>(path: &str, work: F) -> Result<T, AppError>
where
    F: FnOnce(Connections, ConnectionAccess) -> Fut,
    Fut: std::future::Future<Output = Result<T, AppError>>,
{
    let result = async {
        let state = state()?;
        let sso = state.config.sign_in.mode == AuthMode::Sso;
        let result = match connection_access(&state).await {
            Ok(access) => work(state.connections, access).await,
            Err(error) => Err(error),
        };
        match result {
            // AUTH_MODE=sso: only an admin can (re)connect; a member is told to ask one, never
            // offered a button that would be refused.
            Err(
                AppError::NotConnected
                | AppError::ReconnectRequired
                | AppError::WrongOrganization
                | AppError::ScopeDenied { .. },
            ) if sso && !signed_in_user().is_ok_and(|u| u.role == AppRole::Admin) => {
                Err(AppError::AdminMustConnect)
            }
            other => other,
        }
    }
    .await;
    if let Err(error) = &result {
        let called_over_http = leptos::prelude::use_context::<axum::http::request::Parts>()
            .is_some_and(|parts| parts.uri.path() == path);
        if called_over_http {
            if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
                response.set_status(error.status());
            }
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

pub async fn session() -> Result<BrowserSession, AppError> {
    leptos_axum::extract::<BrowserSession>()
        .await
        .map_err(|error| {
            tracing::error!(?error, "no session on a server function request");
            AppError::Internal
        })
}

/// The signed-in user of this request (`AUTH_MODE=sso`), as the guard found them.
pub fn signed_in_user() -> Result<SignedInUser, AppError> {
    leptos::prelude::use_context::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<SignedInUser>().cloned())
        .ok_or(AppError::LoginRequired)
}

/// In `AUTH_MODE=sso`, refuses anyone but a signed-in admin (the guard refuses them first
/// over HTTP; this holds for every caller, in-process ones included). In `connect` mode, the
/// browser that made the connection may do everything with it.
pub fn require_admin(state: &AppState) -> Result<(), AppError> {
    if state.config.sign_in.mode != AuthMode::Sso {
        return Ok(());
    }
    match signed_in_user()?.role {
        AppRole::Admin => Ok(()),
        AppRole::Member => Err(AppError::AdminOnly),
    }
}

/// The connection this browser completed a flow for; nothing else is visible to it. In
/// `AUTH_MODE=sso`, the signed-in user's organization's connection, whoever made it.
///
/// Only a connection to the provider and resource configured now: after
/// `QENTRAH_WORKSPACE_API_URL` is repointed, a connection made with the old Workspace is not
/// connected, and nothing of it (its bearer, its refresh token) is ever sent to the new one.
async fn connection_access(state: &AppState) -> Result<ConnectionAccess, AppError> {
    let provider = state.providers.qentrah().profile();
    let scope = leptos::prelude::use_context::<RequestScope>().unwrap_or_default();
    if state.config.sign_in.mode == AuthMode::Sso {
        let user = signed_in_user()?;
        let key = ConnectionKey::new(
            &provider.name,
            &user.organization_id,
            provider.resource_key(),
        );
        // No row yet reads as NotConnected where the connection is first used.
        return Ok(scope.access(&Binding::organization_wide(key)));
    }
    let session = session().await?;
    let binding = session
        .connection(&provider.name)
        .await
        .map_err(|error| AppError::internal("reading the session", &error))?
        .ok_or(AppError::NotConnected)?;
    if provider.name != *binding.key.provider() || binding.key.resource() != provider.resource_key()
    {
        tracing::info!("the session's connection is for another Workspace than the configured one");
        return Err(AppError::NotConnected);
    }
    let now = to_unix(state.clock.now());
    session
        .keep_alive(now)
        .await
        .map_err(|error| AppError::internal("renewing the session", &error))?;
    // The page request's scope when this runs inside one (see `web::router`).
    Ok(scope.access(&binding))
}
