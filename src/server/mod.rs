//! Everything that exists only on the server. Gated once, in `lib.rs`; every server-only
//! dependency is used from here and nowhere else.

/// What the server functions in `crate::api` stand on.
pub mod api_support;
/// Connections: sealed rows, single-flight refresh, a request's handle, and the service the
/// server functions (and later the public API) call. The only place token plaintext exists.
pub mod connections;
/// OAuth tokens as secret newtypes (redacting `Debug`, never `Serialize`).
pub mod credentials;
/// Who is asking: the typed browser session (ready for a signed-in user).
pub mod identity;
/// Identifiers parsed at the edge (`OrganizationId`, `ProviderId`).
pub mod ids;
/// Marketplace installs: signed install webhooks, their lifecycle, the delivered clients.
pub mod installations;
/// The bottom layer: configuration, the database, the clock, telemetry, the HTTP client,
/// crypto. Knows nothing of providers or connections.
pub mod platform;
/// The providers as data: profiles, OAuth (flows, token calls), partner API clients.
pub mod providers;
/// From configuration to a serving application.
pub mod startup;
/// The state every handler and server function shares.
pub mod state;
/// The HTTP surface: one router per surface with its own layers, security headers, the OAuth
/// routes.
pub mod web;

pub use platform::config::AppConfig;
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
