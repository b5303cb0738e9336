//! Server functions: thin. Each reads the session, asks the server modules, and returns a view
//! model or an [`AppError`] that says what the UI should do.

mod error;

pub use error::AppError;

use leptos::prelude::*;

use crate::domain::{ConnectionView, DashboardView, OrganizationView, RecordView};

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

/// The organization with its clients and properties, loaded concurrently.
#[server(endpoint = "dashboard")]
pub async fn dashboard() -> Result<DashboardView, AppError> {
    use crate::server::api_support::{connection_key, state, with_status};
    with_status(async { state()?.dashboard(&connection_key().await?).await }.await)
}

/// Every client of the organization (pagination followed on the server).
#[server(endpoint = "clients")]
pub async fn list_clients() -> Result<Vec<RecordView>, AppError> {
    use crate::server::api_support::{connection_key, state, with_status};
    with_status(async { state()?.list(&connection_key().await?, "clients").await }.await)
}

/// Every property of the organization (pagination followed on the server).
#[server(endpoint = "properties")]
pub async fn list_properties() -> Result<Vec<RecordView>, AppError> {
    use crate::server::api_support::{connection_key, state, with_status};
    with_status(async { state()?.list(&connection_key().await?, "properties").await }.await)
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
