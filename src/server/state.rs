use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use super::clock::SharedClock;
use super::config::AppConfig;
use super::db::Db;

/// What every handler and server function shares; `leptos_routes_with_context` provides it
/// to server functions as context, axum extractors take the parts they need via `FromRef`.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub config: Arc<AppConfig>,
    pub db: Db,
    pub clock: SharedClock,
}
