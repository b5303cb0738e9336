use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use super::clock::SharedClock;
use super::config::AppConfig;
use super::db::Db;
use super::oauth::flows::FlowStore;
use super::oauth::OAuthClient;
use super::vault::ConnectionStore;
use super::workspace::WorkspaceClient;

/// What every handler and server function shares; `leptos_routes_with_context` provides it
/// to server functions as context, axum extractors take the parts they need via `FromRef`.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub config: Arc<AppConfig>,
    pub db: Db,
    pub clock: SharedClock,
    /// OAuth client for the configured Workspace (on the shared `reqwest::Client`).
    pub oauth: OAuthClient,
    /// Flows in progress.
    pub flows: FlowStore,
    /// The token vault's storage.
    pub vault: ConnectionStore,
    /// The partner API client (refreshes through the vault's token manager).
    pub workspace: WorkspaceClient,
    /// Per-address limit on the OAuth routes.
    pub auth_rate_limiter: super::security::RateLimiter,
}
