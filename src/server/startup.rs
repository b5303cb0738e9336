//! Start-up: from configuration to a serving application. `main` and the integration tests
//! both go through here, so the tests run the very app that ships.

use std::net::SocketAddr;
use std::sync::Arc;

use leptos::config::LeptosOptions;
use tokio::net::TcpListener;

use super::connections::Connections;
use super::providers::{ProviderError, ProviderRegistry};
use super::state::AppState;
use crate::server::connections::{ConnectionStore, TokenManager};
use crate::server::platform::clock::SharedClock;
use crate::server::platform::config::AppConfig;
use crate::server::platform::db::{self, DbError};
use crate::server::platform::http::http_client;
use crate::server::providers::oauth::flow_store::FlowStore;
use crate::server::{identity::session, web};

/// Why the app could not start.
#[derive(thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("could not listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("could not build the HTTP client")]
    HttpClient(#[source] reqwest::Error),
    #[error("the providers cannot be served")]
    Providers(#[from] ProviderError),
    #[error("the server stopped with an error")]
    Serve(#[source] std::io::Error),
}

/// A started application: its database is migrated and its listener bound.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    state: AppState,
}

impl Application {
    /// Opens the database, migrates it and binds `leptos_options.site_addr`.
    pub async fn build(
        config: AppConfig,
        leptos_options: LeptosOptions,
        clock: SharedClock,
    ) -> Result<Self, StartupError> {
        let addr = leptos_options.site_addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartupError::Bind { addr, source })?;
        Self::build_with_listener(config, leptos_options, clock, listener).await
    }

    /// As [`Application::build`], on a listener the caller bound (tests bind port 0 first, so
    /// `PARTNER_APP_URL` can name the port).
    pub async fn build_with_listener(
        config: AppConfig,
        leptos_options: LeptosOptions,
        clock: SharedClock,
        listener: TcpListener,
    ) -> Result<Self, StartupError> {
        let db = db::connect(&config.database).await?;
        session::spawn_expired_session_cleanup(&db);
        let http = http_client(config.http_timeout).map_err(StartupError::HttpClient)?;
        let keyring = Arc::new(config.vault.keyring(&config.session_secret));
        let providers = ProviderRegistry::from_config(&config, &http)?;
        let vault = ConnectionStore::new(db.clone(), keyring.clone());
        let installations =
            crate::server::installations::InstallationStore::new(db.clone(), keyring.clone());
        // The marketplace is Qentrah's: its installations deliver Qentrah clients.
        let clients = providers.clients().with_installations(
            &crate::server::ids::ProviderId::qentrah(),
            Arc::new(installations.clone()),
        );
        let tokens = TokenManager::new(vault, clients.clone(), clock.clone(), config.http_timeout);
        let flows = FlowStore::new(db.clone(), keyring.clone());
        let users = crate::server::identity::users::UserStore::new(db.clone(), keyring);
        // Sign-in's OpenID provider is the Workspace itself: its issuer is the one the connect
        // flow's RFC 9207 check already expects.
        let openid = (config.sign_in.mode == crate::server::platform::config::AuthMode::Sso)
            .then(|| {
                crate::server::identity::oidc::OpenIdProvider::new(
                    &providers.qentrah().profile().issuer,
                    http.clone(),
                    clock.clone(),
                )
            })
            .flatten();
        let purger = crate::server::installations::Purger::new(
            installations.clone(),
            tokens.clone(),
            flows.clone(),
            db.clone(),
            clock.clone(),
            providers.qentrah().oauth().clone(),
        );
        let connections = Connections::new(tokens, providers.clone());
        let auth_rate_limiter = crate::server::web::security::RateLimiter::new(
            config.auth_rate_limit_per_minute,
            std::time::Duration::from_secs(60),
        );
        if !config.webhooks.enabled() {
            tracing::info!(
                "marketplace webhooks are off (QENTRAH_WEBHOOK_SECRETS is not set): /api/webhooks/qentrah is not served"
            );
        }
        let webhook_rate_limiter = crate::server::web::security::RateLimiter::new(
            crate::server::web::WEBHOOK_RATE_LIMIT_PER_MINUTE,
            std::time::Duration::from_secs(60),
        );
        let state = AppState {
            auth_rate_limiter,
            webhook_rate_limiter,
            installations,
            purger,
            clients,
            refused_deliveries: Default::default(),
            openid,
            users,
            leptos_options,
            config: Arc::new(config),
            flows,
            db,
            clock,
            providers,
            connections,
        };
        let router = web::router(state.clone());
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then drains in-flight requests.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let db = self.state.db.clone();
        let tokens = self.state.connections.tokens().clone();
        let drain_limit = self.state.config.http_timeout + std::time::Duration::from_secs(5);
        // The uninstall purge runs beside the server, for as long as it serves; a purge cut off
        // by shutdown keeps its lease until it lapses, and runs again (every step repeats safely).
        let purges = tokio::spawn(self.state.purger.clone().run());
        // Peer addresses feed the per-address rate limit on the OAuth routes. On shutdown the
        // listener closes at once (a load balancer's next probe fails and it stops sending) and
        // requests in flight run to the end; every Workspace call in them is bounded by the
        // HTTP timeout, so the drain is too.
        let served = axum::serve(
            self.listener,
            self.router
                .into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(StartupError::Serve);
        // Refreshes run detached from their requests; let the last ones store their tokens.
        purges.abort();
        if !tokens.drain(drain_limit).await {
            tracing::warn!("a token refresh was still running at shutdown");
        }
        // Then the database sessions end cleanly rather than by the process going away.
        db.close().await;
        served
    }
}

/// Resolves on Ctrl-C or SIGTERM (what orchestrators send before killing an instance).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested; draining in-flight requests");
}

crate::server::debug_with_causes!(StartupError);
