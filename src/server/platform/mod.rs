//! The bottom layer: what every feature stands on and that knows none of them.

/// The injected clock: the only place allowed to read the system time.
pub mod clock;
/// Typed, validated configuration from the environment (and a provider profiles file).
pub mod config;
/// Sealing secrets at rest (keyring: AEAD, key ids, rotation) and key derivation.
pub mod crypto;
/// The database pool and embedded migrations.
pub mod db;
/// The shared outbound HTTP client (timeouts, no redirects, no proxy) and capped reads.
pub mod http;
/// Logging and per-request spans.
pub mod telemetry;
