//! Everything that exists only on the server. Gated once, in `lib.rs`; every server-only
//! dependency is used from here and nowhere else.

/// What the server functions in `crate::api` stand on.
pub mod api_support;
/// The injected clock: the only place allowed to read the system time.
pub mod clock;
/// Typed, validated configuration from the environment (and a provider profiles file).
pub mod config;
/// The connections service: a session's connection, its data, disconnecting it.
pub mod connections;
/// OAuth tokens as secret newtypes (redacting `Debug`, never `Serialize`).
pub mod credentials;
/// Sealing secrets at rest (keyring: AEAD, key ids, rotation) and key derivation.
pub mod crypto;
/// The database pool and embedded migrations.
pub mod db;
/// The shared outbound HTTP client (timeouts, no redirects, no proxy) and capped reads.
pub mod http;
/// Identifiers parsed at the edge (`OrganizationId`, `ProviderId`).
pub mod ids;
/// OAuth 2.1 + PKCE: authorization URL, callback, token calls, flows in progress.
pub mod oauth;
/// The providers as data: profiles, OAuth clients, partner API clients.
pub mod providers;
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

/// Writes an error and its causes on one line (`a: b: c`).
pub fn write_causes(
    f: &mut std::fmt::Formatter<'_>,
    error: &dyn std::error::Error,
) -> std::fmt::Result {
    write!(f, "{error}")?;
    let mut source = error.source();
    while let Some(cause) = source {
        write!(f, ": {cause}")?;
        source = cause.source();
    }
    Ok(())
}

/// An error and its causes on one line, for a log field (`error = %Causes(&e)`) where the error
/// is only known as `dyn Error`.
pub struct Causes<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write_causes(f, self.0)
    }
}

/// `Debug` for our error types as their message and causes on one line, so that a log line
/// with `?error` (or a start-up failure printed with `{error:?}`) says everything.
macro_rules! debug_with_causes {
    ($($error:ty),+ $(,)?) => {$(
        impl std::fmt::Debug for $error {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                $crate::server::write_causes(f, self)
            }
        }
    )+};
}
pub(crate) use debug_with_causes;
