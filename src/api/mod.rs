//! Server functions: thin. Each reads the session, asks the server modules, and returns a view
//! model or an [`AppError`] that says what the UI should do.

mod error;

pub use error::AppError;

use leptos::prelude::*;
#[cfg(feature = "ssr")]
use leptos::server_fn::ServerFn;

use crate::domain::{
    ConnectionView, DashboardView, ListKind, OrganizationView, RecordPage, UserView,
};

// Each server function names its own URL (`<Struct as ServerFn>::PATH`): only a call to that
// URL gets the failure's HTTP status (see `for_connection`).

/// The browser's connection, or why there is none.
#[server(endpoint = "connection_status")]
pub async fn connection_status() -> Result<ConnectionView, AppError> {
    use crate::server::api_support::for_connection;
    for_connection(
        <ConnectionStatus as ServerFn>::PATH,
        |connections, access| async move { connections.view(&access).await },
    )
    .await
}

/// The connected organization's profile (`me`).
#[server(endpoint = "organization_overview")]
pub async fn organization_overview() -> Result<OrganizationView, AppError> {
    use crate::server::api_support::for_connection;
    for_connection(
        <OrganizationOverview as ServerFn>::PATH,
        |connections, access| async move { connections.organization(&access).await },
    )
    .await
}

/// The organization with the first page of its clients and properties, loaded concurrently.
#[server(endpoint = "dashboard")]
pub async fn dashboard() -> Result<DashboardView, AppError> {
    use crate::server::api_support::for_connection;
    for_connection(
        <Dashboard as ServerFn>::PATH,
        |connections, access| async move { connections.dashboard(&access).await },
    )
    .await
}

/// The first upstream page of a list, for an overview (one call to the Workspace).
#[server(endpoint = "first_page")]
pub async fn first_page(list: ListKind) -> Result<RecordPage, AppError> {
    use crate::server::api_support::for_connection;
    for_connection(
        <FirstPage as ServerFn>::PATH,
        |connections, access| async move { connections.first_page(&access, list).await },
    )
    .await
}

/// One page of the organization's clients, from `cursor` (the first page without one).
#[server(endpoint = "clients")]
pub async fn list_clients(cursor: Option<String>) -> Result<RecordPage, AppError> {
    use crate::server::api_support::for_connection;
    for_connection(<ListClients as ServerFn>::PATH, |connections, access| async move {
        connections.page(&access, ListKind::Clients, cursor).await
    })
    .await
}

/// One page of the organization's properties, from `cursor` (the first page without one).
#[server(endpoint = "properties")]
pub async fn list_properties(cursor: Option<String>) -> Result<RecordPage, AppError> {
    use crate::server::api_support::for_connection;
    for_connection(
        <ListProperties as ServerFn>::PATH,
        |connections, access| async move {
            connections
                .page(&access, ListKind::Properties, cursor)
                .await
        },
    )
    .await
}

/// Revokes and deletes the browser's connection; works even when the Workspace is down.
#[server(endpoint = "disconnect")]
pub async fn disconnect() -> Result<(), AppError> {
    use crate::server::api_support::{for_connection, require_admin, session, state};
    require_admin(&state()?)?;
    for_connection(
        <Disconnect as ServerFn>::PATH,
        |connections, access| async move {
            connections.disconnect(access.binding()).await?;
            session()
                .await?
                .unbind_connection(access.key().provider())
                .await
                .map_err(|error| AppError::internal("unbinding the session", &error))
        },
    )
    .await
}

/// The Workspace's issuer, for `/login`'s form (it starts `/auth/login`, which requires `iss`).
/// Not a secret: the Workspace's own URL. `None` in `AUTH_MODE=connect`, which has no sign-in.
#[server(endpoint = "sign_in_issuer")]
pub async fn sign_in_issuer() -> Result<Option<String>, AppError> {
    use crate::server::api_support::state;
    Ok(state()?.openid.map(|openid| openid.issuer().to_owned()))
}

/// The signed-in admin's organization's users (`/admin/users`): admins only.
#[server(endpoint = "organization_users")]
pub async fn organization_users() -> Result<Vec<UserView>, AppError> {
    use crate::server::api_support::{require_admin, signed_in_user, state};
    let state = state()?;
    require_admin(&state)?;
    let user = signed_in_user()?;
    let users = state
        .users
        .users_of(&user.organization_id)
        .await
        .map_err(|error| AppError::internal("listing the organization's users", &error))?;
    Ok(users
        .into_iter()
        .map(|u| UserView {
            name: u.name,
            email: u.email,
            workspace_role: u.workspace_role,
            app_role: u.app_role,
            last_sign_in_at: u.last_sign_in_at,
        })
        .collect())
}
