//! What the server functions in `crate::api` stand on: the state, the session, the browser's
//! connection, and the HTTP status of a failure.

use super::connections::Connections;
use super::state::AppState;
use crate::api::AppError;
use crate::server::connections::{ConnectionAccess, RequestScope};
use crate::server::identity::session::BrowserSession;
use crate::server::platform::clock::to_unix;

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
        let access = connection_access(&state).await?;
        work(state.connections, access).await
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

/// The connection this browser completed a flow for; nothing else is visible to it.
///
/// Only a connection to the provider and resource configured now: after
/// `QENTRAH_WORKSPACE_API_URL` is repointed, a connection made with the old Workspace is not
/// connected, and nothing of it (its bearer, its refresh token) is ever sent to the new one.
async fn connection_access(state: &AppState) -> Result<ConnectionAccess, AppError> {
    let session = session().await?;
    let provider = state.providers.qentrah().profile();
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
    let scope = leptos::prelude::use_context::<RequestScope>().unwrap_or_default();
    Ok(scope.access(&binding))
}
