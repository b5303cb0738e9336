//! OAuth 2.1 authorization code flow with PKCE against each configured provider, done as RFC
//! 9700 asks. `authorization` is the network-free part (what to send, what to accept);
//! `client` makes the token calls; `flow_store` keeps flows in progress. Its routes are the web
//! layer's (`web::oauth`), which joins this protocol to the vault and the session, so the
//! vault (which refreshes through `client`) and this module do not import each other.

pub mod authorization;
pub mod client;
pub mod flow_store;
pub mod provider;

pub use client::{ClientRegistry, OAuthClient, Revocable, TokenCallError};
pub use provider::{ProviderConfig, TenantSource};
