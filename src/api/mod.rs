//! Server functions: thin. Each reads the session, asks the server modules, and returns a view
//! model or an [`AppError`] that says what the UI should do.

mod error;

pub use error::AppError;

use leptos::prelude::*;

use crate::domain::{ConnectionView, DashboardView, ListKind, OrganizationView, RecordPage};

/// The browser's connection, or why there is none.
#[server(endpoint = "connection_status")]
pub async fn connection_status() -> Result<ConnectionView, AppError> {
    use crate::server::api_support::{connection_key, state, with_status};
    with_status(async { state()?.connection_view(&connection_key().await?).await }.await)
}

/// The connected organization's profile (`me`).
#[server(endpoint = "organization_overview")]
pub async fn organization_overview() -> Result<OrganizationView, AppError> {
    use crate::server::api_support::{connection_key, state, with_status};
    with_status(async { state()?.organization(&connection_key().await?).await }.await)
}

/// The organization with the first page of its clients and properties, loaded concurrently.
#[server(endpoint = "dashboard")]
pub async fn dashboard() -> Result<DashboardView, AppError> {
    use crate::server::api_support::{connection_key, state, with_status};
    with_status(async { state()?.dashboard(&connection_key().await?).await }.await)
}

/// The first upstream page of a list, for an overview (one call to the Workspace).
#[server(endpoint = "first_page")]
pub async fn first_page(list: ListKind) -> Result<RecordPage, AppError> {
    use crate::server::api_support::{connection_key, state, with_status};
    with_status(async { state()?.first_page(&connection_key().await?, list).await }.await)
}

/// One page of the organization's clients, from `cursor` (the first page without one).
#[server(endpoint = "clients")]
pub async fn list_clients(cursor: Option<String>) -> Result<RecordPage, AppError> {
    use crate::server::api_support::{connection_key, state, with_status};
    use crate::server::workspace::ListResource;
    with_status(
        async {
            state()?
                .page(&connection_key().await?, ListResource::Clients, cursor)
                .await
        }
        .await,
    )
}

/// One page of the organization's properties, from `cursor` (the first page without one).
#[server(endpoint = "properties")]
pub async fn list_properties(cursor: Option<String>) -> Result<RecordPage, AppError> {
    use crate::server::api_support::{connection_key, state, with_status};
    use crate::server::workspace::ListResource;
    with_status(
        async {
            state()?
                .page(&connection_key().await?, ListResource::Properties, cursor)
                .await
        }
        .await,
    )
}

/// Revokes and deletes the browser's connection; works even when the Workspace is down.
#[server(endpoint = "disconnect")]
pub async fn disconnect() -> Result<(), AppError> {
    use crate::server::api_support::{connection_key, session, state, with_status};
    with_status(
        async {
            state()?.disconnect(&connection_key().await?).await?;
            crate::server::session::unbind_connection(&session().await?)
                .await
                .map_err(|error| AppError::internal("unbinding the session", &error))
        }
        .await,
    )
}
