//! Access tokens on demand: refreshed ahead of expiry or when the Workspace says the token is no
//! longer good, one refresh at a time per connection however many requests, and however many
//! app instances, need it.
//!
//! Two locks make it single-flight. In each instance, a mutex per connection queues that
//! instance's requests, so at most one of them asks the database. Across instances, the vault's
//! [`RefreshLease`](super::RefreshLease) (a PostgreSQL row lock) queues the instances. Sending
//! one refresh token twice is not just waste: with rotation, the second use is a reuse and
//! the authorization server may revoke the whole grant (RFC 9700 §4.14.2).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::{AccessToken, ConnectionKey, ConnectionState, ConnectionStore, VaultError};
use crate::server::clock::SharedClock;
use crate::server::oauth::{OAuthClient, TokenCallError};

/// Refresh this long before the access token expires, so a request never leaves with a token
/// that dies on the way.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// Why no access token could be had.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no connection exists for this organization")]
    NotConnected,
    /// The refresh token was refused (or there is none and the access token is dead).
    #[error("the connection must be authorized again")]
    ReconnectRequired,
    /// Timeouts, 5xx: the connection stays; try again later.
    #[error("the authorization server is unavailable")]
    Unavailable(#[source] TokenCallError),
    /// `invalid_client` and the like: our registration is wrong.
    #[error("the authorization server refused this app's request")]
    Refused(#[source] TokenCallError),
    /// Another instance's refresh of this connection outlasted the lock's bound.
    #[error("another refresh of this connection is still running")]
    Busy,
    #[error(transparent)]
    Vault(VaultError),
}

impl From<VaultError> for TokenError {
    fn from(error: VaultError) -> Self {
        match error {
            VaultError::Busy => TokenError::Busy,
            error => TokenError::Vault(error),
        }
    }
}

/// A usable access token and the vault generation it came from.
#[derive(Debug, Clone)]
pub struct LeasedToken {
    pub token: AccessToken,
    pub generation: i64,
}

/// How long a refresh's result is handed straight to the requests that queued behind it.
const JUST_REFRESHED_WINDOW: Duration = Duration::from_secs(2);

/// Added to the token call's timeout to bound the cross-instance lock: the database statements
/// around the call.
const LOCK_MARGIN: Duration = Duration::from_secs(5);

/// Hands out access tokens, refreshing them single-flight.
#[derive(Clone)]
pub struct TokenManager {
    store: ConnectionStore,
    oauth: OAuthClient,
    clock: SharedClock,
    /// How long a refresh may hold, or wait for, the cross-instance lock: the token call's
    /// timeout plus a margin for the database round trips.
    lock_bound: Duration,
    locks: Arc<Mutex<HashMap<ConnectionKey, Arc<tokio::sync::Mutex<()>>>>>,
    /// The token a refresh just produced, with when: the requests that waited on the lock take
    /// it from here instead of each re-reading and decrypting the row in turn.
    just_refreshed: Arc<Mutex<HashMap<ConnectionKey, (LeasedToken, std::time::Instant)>>>,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager").finish_non_exhaustive()
    }
}

impl TokenManager {
    /// `token_call_timeout` is the HTTP client's timeout: it bounds how long any refresh can
    /// hold the cross-instance lock.
    pub fn new(
        store: ConnectionStore,
        oauth: OAuthClient,
        clock: SharedClock,
        token_call_timeout: Duration,
    ) -> Self {
        Self {
            store,
            oauth,
            clock,
            lock_bound: token_call_timeout + LOCK_MARGIN,
            locks: Arc::default(),
            just_refreshed: Arc::default(),
        }
    }

    pub fn store(&self) -> &ConnectionStore {
        &self.store
    }

    pub fn oauth(&self) -> &OAuthClient {
        &self.oauth
    }

    fn lock_for(&self, key: &ConnectionKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(PoisonError::into_inner);
        locks.entry(key.clone()).or_default().clone()
    }

    /// A token that will still be valid for at least [`REFRESH_MARGIN`].
    #[tracing::instrument(skip_all, fields(org = %key.organization_id))]
    pub async fn access_token(&self, key: &ConnectionKey) -> Result<LeasedToken, TokenError> {
        let (info, token) = self
            .store
            .access(key)
            .await?
            .ok_or(TokenError::NotConnected)?;
        if info.state == ConnectionState::ReconnectRequired {
            return Err(TokenError::ReconnectRequired);
        }
        if self.clock.now() + REFRESH_MARGIN < info.access_expires_at {
            return Ok(LeasedToken {
                token,
                generation: info.generation,
            });
        }
        self.refresh(key, info.generation, false).await
    }

    /// The Workspace refused the token from `stale_generation` (401): refresh once, unless
    /// another request already did.
    #[tracing::instrument(skip_all, fields(org = %key.organization_id))]
    pub async fn refresh_after_rejection(
        &self,
        key: &ConnectionKey,
        stale_generation: i64,
    ) -> Result<LeasedToken, TokenError> {
        self.refresh(key, stale_generation, true).await
    }

    /// Drops what this instance remembers of a connection (it was replaced or deleted).
    pub fn forget(&self, key: &ConnectionKey) {
        self.just_refreshed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    fn take_just_refreshed(
        &self,
        key: &ConnectionKey,
        seen_generation: i64,
    ) -> Option<LeasedToken> {
        let mut recent = self
            .just_refreshed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let (leased, at) = recent.get(key)?;
        if at.elapsed() > JUST_REFRESHED_WINDOW {
            recent.remove(key);
            return None;
        }
        (leased.generation != seen_generation).then(|| leased.clone())
    }

    fn remember_refreshed(&self, key: &ConnectionKey, leased: &LeasedToken) {
        self.just_refreshed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key.clone(), (leased.clone(), std::time::Instant::now()));
    }

    async fn refresh(
        &self,
        key: &ConnectionKey,
        seen_generation: i64,
        rejected: bool,
    ) -> Result<LeasedToken, TokenError> {
        // This instance's requests queue here; only the first goes on to the database.
        let lock = self.lock_for(key);
        let _guard = lock.lock().await;

        // A refresh finished while we waited: its token is newer than the one we saw.
        if let Some(leased) = self.take_just_refreshed(key, seen_generation) {
            return Ok(leased);
        }

        // Instances queue here; the row is re-read under the lease, since whoever held it
        // before us (here or in another instance) may have refreshed already.
        let (mut lease, connection) = self.store.lease_for_refresh(key, self.lock_bound).await?;
        let result = self
            .refresh_under_lease(&mut lease, key, connection, seen_generation, rejected)
            .await;
        // Released on every path; a failed refresh wrote nothing, so its commit is a no-op.
        lease.release().await?;
        let (leased, refreshed_here) = result?;
        // Only once the rotated tokens are committed may the queue behind us use them.
        if refreshed_here {
            self.remember_refreshed(key, &leased);
        }
        Ok(leased)
    }

    async fn refresh_under_lease(
        &self,
        lease: &mut super::RefreshLease,
        key: &ConnectionKey,
        connection: Option<super::Connection>,
        seen_generation: i64,
        rejected: bool,
    ) -> Result<(LeasedToken, bool), TokenError> {
        let connection = connection.ok_or(TokenError::NotConnected)?;
        if connection.info.state == ConnectionState::ReconnectRequired {
            return Err(TokenError::ReconnectRequired);
        }
        let generation = connection.info.generation;
        let now = self.clock.now();
        let fresh = now + REFRESH_MARGIN < connection.info.access_expires_at;
        // Another request refreshed while we waited (its token is fresh, or at least not the one
        // that was refused), or nothing needs doing: use what the vault holds.
        let refreshed_elsewhere = generation != seen_generation && (fresh || rejected);
        if refreshed_elsewhere || (fresh && !rejected) {
            let leased = LeasedToken {
                token: connection.access_token,
                generation,
            };
            return Ok((leased, false));
        }
        let Some(refresh_token) = connection.refresh_token.clone() else {
            return self
                .give_up_or_take_newer(lease, key, generation, "no refresh token")
                .await
                .map(|leased| (leased, false));
        };

        match self.oauth.refresh(&refresh_token).await {
            Ok(tokens) => {
                // The rotated refresh token is stored before the new access token is used.
                let stored = self
                    .store
                    .save_refreshed(
                        lease,
                        key,
                        generation,
                        Some(&refresh_token),
                        &tokens,
                        self.clock.now(),
                    )
                    .await?;
                let Some(generation) = stored else {
                    // The connection was authorized again (or removed) while we refreshed the
                    // old grant: the new connection's tokens win.
                    return self.current_active(key).await.map(|leased| (leased, false));
                };
                tracing::info!("access token refreshed");
                let leased = LeasedToken {
                    token: tokens.access_token,
                    generation,
                };
                Ok((leased, true))
            }
            Err(TokenCallError::InvalidGrant) => self
                .give_up_or_take_newer(lease, key, generation, "refresh token refused")
                .await
                .map(|leased| (leased, false)),
            Err(error @ TokenCallError::Unavailable { .. }) => {
                tracing::warn!(%error, "refresh failed; will retry on the next request");
                Err(TokenError::Unavailable(error))
            }
            Err(error @ TokenCallError::Refused { .. }) => {
                tracing::error!(%error, "refresh refused; check the client registration");
                Err(TokenError::Refused(error))
            }
        }
    }

    /// The refresh token is gone or was refused (`invalid_grant`). Race-aware: only if the row
    /// is still the one this refresh started from is the connection dead; if it changed
    /// meanwhile (a new authorization, or a refresh that did not hold the lease), its tokens
    /// are used instead.
    async fn give_up_or_take_newer(
        &self,
        lease: &mut super::RefreshLease,
        key: &ConnectionKey,
        generation: i64,
        why: &'static str,
    ) -> Result<LeasedToken, TokenError> {
        let marked = self
            .store
            .mark_reconnect_required(lease, key, generation, self.clock.now())
            .await?;
        if !marked {
            return self.current_active(key).await;
        }
        tracing::warn!(why, "the connection needs a new authorization");
        self.forget(key);
        Err(TokenError::ReconnectRequired)
    }

    /// What the vault holds now, if it is usable.
    async fn current_active(&self, key: &ConnectionKey) -> Result<LeasedToken, TokenError> {
        let (info, token) = self
            .store
            .access(key)
            .await?
            .ok_or(TokenError::NotConnected)?;
        if info.state == ConnectionState::ReconnectRequired {
            return Err(TokenError::ReconnectRequired);
        }
        Ok(LeasedToken {
            token,
            generation: info.generation,
        })
    }
}
