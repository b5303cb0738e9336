use std::sync::Arc;

use axum::extract::FromRef;
use leptos::config::LeptosOptions;

use super::connections::Connections;
use super::providers::ProviderRegistry;
use crate::server::platform::clock::SharedClock;
use crate::server::platform::config::AppConfig;
use crate::server::platform::db::Db;
use crate::server::providers::oauth::flow_store::FlowStore;

/// What every handler and server function shares; `leptos_routes_with_context` provides it
/// to server functions as context, axum extractors take the parts they need via `FromRef`.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub config: Arc<AppConfig>,
    pub db: Db,
    pub clock: SharedClock,
    /// The providers (Qentrah first): profiles, OAuth clients, partner API clients.
    pub providers: ProviderRegistry,
    /// Flows in progress.
    pub flows: FlowStore,
    /// Connections: the token manager and the partner API client, side by side.
    pub connections: Connections,
    /// Per-address limit on the OAuth routes.
    pub auth_rate_limiter: crate::server::web::security::RateLimiter,
    /// Per-address limit on the webhook route, a budget of its own (not an extractor: two
    /// limiters of one type).
    #[from_ref(skip)]
    pub webhook_rate_limiter: crate::server::web::security::RateLimiter,
    /// Marketplace installations, as delivered by signed webhooks.
    pub installations: crate::server::installations::InstallationStore,
    /// The uninstall purge (the webhook route wakes it).
    pub purger: crate::server::installations::Purger,
    /// Every provider's OAuth clients: configured, and delivered by installations.
    pub clients: crate::server::providers::oauth::ClientRegistry,
    /// Deliveries this instance refused before they could be attributed (no valid signature,
    /// an unreadable payload): when and why, for `/admin/installations`.
    pub refused_deliveries: crate::server::web::webhooks::RefusedDeliveries,
    /// The Workspace as an OpenID provider (`AUTH_MODE=sso` only).
    pub openid: Option<crate::server::identity::oidc::OpenIdProvider>,
    /// Signed-in users and their sign-ins.
    pub users: crate::server::identity::users::UserStore,
}
