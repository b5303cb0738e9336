//! Everything that exists only on the server. Gated once, in `lib.rs`; every server-only
//! dependency is used from here and nowhere else.

/// The injected clock: the only place allowed to read the system time.
pub mod clock;
/// Typed, validated configuration from the environment.
pub mod config;
/// The database pool and embedded migrations.
pub mod db;
/// Plain axum routes (health) and the router that joins them with Leptos.
pub mod routes;
/// Session cookie settings and the session store.
pub mod session;
/// From configuration to a serving application.
pub mod startup;
/// The state every handler and server function shares.
pub mod state;
/// Logging and per-request spans.
pub mod telemetry;

pub use config::AppConfig;
pub use state::AppState;
