//! OAuth 2.1 authorization code flow with PKCE against the configured Workspace, done as RFC 9700
//! asks. `flow` is the network-free part (what to send, what to accept); `client` makes the token
//! calls; `flows` keeps flows in progress; `routes` is the thin HTTP layer.

pub mod client;
pub mod flow;
pub mod flows;
pub mod provider;
pub mod routes;

pub use client::{ClientRegistry, OAuthClient, Revocable, TokenCallError};
pub use provider::ProviderConfig;
