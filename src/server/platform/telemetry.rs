//! Logs and per-request spans.

use axum::http::Request;
use tower_http::request_id::RequestId;
use tracing_subscriber::EnvFilter;

/// The filter used when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,qentrah_connect=debug";

/// Installs the global subscriber (`RUST_LOG` honoured). Safe to call more than once.
pub fn init() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .try_init();
}

/// The span every request runs in.
///
/// Records the path and never the query: the OAuth callback's query carries the authorization
/// code and state, which must not reach a log (RFC 9700 §4.2.4).
pub fn request_span<B>(request: &Request<B>) -> tracing::Span {
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        request_id = %request_id,
    )
}
