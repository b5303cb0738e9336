//! Everything that exists only on the server. Gated once, in `lib.rs`; every server-only
//! dependency is used from here and nowhere else.

/// What the server functions in `crate::api` stand on.
pub mod api_support;
/// The injected clock: the only place allowed to read the system time.
pub mod clock;
/// Typed, validated configuration from the environment.
pub mod config;
/// The database pool and embedded migrations.
pub mod db;
/// OAuth 2.1 + PKCE: authorization URL, callback, token calls, flows in progress.
pub mod oauth;
/// Plain axum routes (health) and the router that joins them with Leptos.
pub mod routes;
/// Security headers, cross-site refusal, rate limits.
pub mod security;
/// Session cookie settings and the session store.
pub mod session;
/// From configuration to a serving application.
pub mod startup;
/// The state every handler and server function shares.
pub mod state;
/// Logging and per-request spans.
pub mod telemetry;
/// The token vault: the only place token plaintext exists.
pub mod vault;
/// The Workspace partner API client.
pub mod workspace;

pub use config::AppConfig;
pub use state::AppState;

/// An error with its causes, on one line, for logs.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}
