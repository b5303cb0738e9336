//! OAuth 2.1 authorization code flow with PKCE against each configured provider, done as RFC
//! 9700 asks. `authorization` is the network-free part (what to send, what to accept);
//! `client` makes the token calls; `flow_store` keeps flows in progress; `routes` is the thin
//! HTTP layer.

pub mod authorization;
pub mod client;
pub mod flow_store;
pub mod provider;
pub mod routes;

pub use client::{ClientRegistry, OAuthClient, Revocable, TokenCallError};
pub use provider::ProviderConfig;
