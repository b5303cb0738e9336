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
    /// The refresh task ended without an answer (the runtime is shutting down).
    #[error("the refresh was interrupted")]
    Interrupted,
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

/// Refreshes that may hold a database lease at once in this instance. On PostgreSQL a lease
/// holds a pooled connection for the whole token call; this keeps most of the pool for the
/// requests that only read, however slow the token endpoint gets.
const MAX_CONCURRENT_LEASES: usize = 4;

/// Refreshes running now (they run detached from the requests that started them); shutdown
/// waits for them.
#[derive(Debug, Default)]
struct RunningRefreshes {
    count: std::sync::atomic::AtomicUsize,
    idle: tokio::sync::Notify,
}

struct RunningGuard(Arc<RunningRefreshes>);

impl RunningGuard {
    fn enter(running: &Arc<RunningRefreshes>) -> Self {
        running
            .count
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Self(running.clone())
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        if self
            .0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst)
            == 1
        {
            self.0.idle.notify_waiters();
        }
    }
}

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
    /// The token a refresh just produced, the generation it refreshed, and when: the requests
    /// that waited on the lock having seen that generation take it from here instead of each
    /// re-reading and decrypting the row in turn.
    just_refreshed: Arc<Mutex<HashMap<ConnectionKey, JustRefreshed>>>,
    leases: Arc<tokio::sync::Semaphore>,
    running: Arc<RunningRefreshes>,
}

#[derive(Clone)]
struct JustRefreshed {
    leased: LeasedToken,
    from_generation: i64,
    at: std::time::Instant,
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
            leases: Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_LEASES)),
            running: Arc::default(),
        }
    }

    /// Waits (at most `limit`) for the refreshes still running to finish: at shutdown, after
    /// the last request, so that none is cut off between the token call and storing its result.
    pub async fn drain(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Created before the check, so a refresh ending in between still wakes us.
            let idle = self.running.idle.notified();
            if self.running.count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return false;
            }
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
        let (leased, expires_at, renewable) = self.stored(key).await?;
        // A grant without a refresh token cannot be renewed: its token is used until the
        // Workspace refuses it (see `refresh_under_lease`), without queueing for a lease.
        if !renewable || self.clock.now() + REFRESH_MARGIN < expires_at {
            return Ok(leased);
        }
        self.refresh(key, leased.generation, false).await
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

    /// The Workspace says the grant whose access token was `generation` is gone (the
    /// connection was deleted, or it refused a freshly refreshed token): the stored connection is
    /// marked for reconnection, so the Connection page says so instead of "Connected". As with
    /// `invalid_grant`, a newer grant stored meanwhile is left alone.
    ///
    /// It queues exactly as a refresh does (this instance's lock for the connection, a lease
    /// permit, the row's lease) and in a task of its own: a refresh of the same generation that
    /// is under way finishes and stores its rotated tokens first, and the mark, no longer
    /// matching the generation, then changes nothing.
    pub async fn mark_refused(
        &self,
        key: &ConnectionKey,
        generation: i64,
    ) -> Result<(), TokenError> {
        let this = self.clone();
        let key = key.clone();
        let running = RunningGuard::enter(&self.running);
        let task = tokio::spawn(async move {
            let _running = running;
            let _guard = this.lock_for(&key).lock_owned().await;
            let _permit = this.lease_permit().await?;
            let (mut lease, _) = this.store.lease_for_refresh(&key, this.lock_bound).await?;
            let marked = this
                .store
                .mark_reconnect_required(&mut lease, &key, generation, this.clock.now())
                .await;
            lease.release().await?;
            if marked? {
                tracing::warn!(
                    "the Workspace refused the connection; it needs a new authorization"
                );
                this.forget(&key);
            }
            Ok(())
        });
        task.await.unwrap_or(Err(TokenError::Interrupted))
    }

    /// One of this instance's [`MAX_CONCURRENT_LEASES`] permits, waited for at most the lock
    /// bound.
    async fn lease_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, TokenError> {
        tokio::time::timeout(self.lock_bound, self.leases.acquire())
            .await
            .map_err(|_| TokenError::Busy)?
            .map_err(|_| TokenError::Interrupted)
    }

    /// Drops what this instance remembers of a connection (it was replaced or deleted).
    pub fn forget(&self, key: &ConnectionKey) {
        self.just_refreshed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }

    /// The token a refresh of exactly the generation this request saw produced, if recent.
    fn take_just_refreshed(
        &self,
        key: &ConnectionKey,
        seen_generation: i64,
    ) -> Option<LeasedToken> {
        let mut recent = self
            .just_refreshed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = recent.get(key)?;
        if entry.at.elapsed() > JUST_REFRESHED_WINDOW {
            recent.remove(key);
            return None;
        }
        (entry.from_generation == seen_generation).then(|| entry.leased.clone())
    }

    fn remember_refreshed(&self, key: &ConnectionKey, leased: &LeasedToken, from_generation: i64) {
        self.just_refreshed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key.clone(),
                JustRefreshed {
                    leased: leased.clone(),
                    from_generation,
                    at: std::time::Instant::now(),
                },
            );
    }

    /// Refreshes in a task of its own and waits for it. The request may go away meanwhile (a
    /// closed browser, a sibling call's failure cancelling a join); the refresh must not: cut
    /// off between the token call and storing its result, it would lose the rotated refresh
    /// token, and the old one is then a reused one (RFC 9700 §4.14.2).
    async fn refresh(
        &self,
        key: &ConnectionKey,
        seen_generation: i64,
        rejected: bool,
    ) -> Result<LeasedToken, TokenError> {
        let this = self.clone();
        let key = key.clone();
        let running = RunningGuard::enter(&self.running);
        let task = tokio::spawn(async move {
            let _running = running;
            this.refresh_detached(&key, seen_generation, rejected).await
        });
        task.await.unwrap_or(Err(TokenError::Interrupted))
    }

    async fn refresh_detached(
        &self,
        key: &ConnectionKey,
        seen_generation: i64,
        rejected: bool,
    ) -> Result<LeasedToken, TokenError> {
        // This instance's requests queue here; only the first goes on to the database.
        let lock = self.lock_for(key);
        let _guard = lock.lock().await;

        // A refresh of the generation we saw finished while we waited: use its token.
        if let Some(leased) = self.take_just_refreshed(key, seen_generation) {
            return Ok(leased);
        }

        let _permit = self.lease_permit().await?;
        // Instances queue here; the row is re-read under the lease, since whoever held it
        // before us (here or in another instance) may have refreshed already.
        let (mut lease, connection) = self.store.lease_for_refresh(key, self.lock_bound).await?;
        let result = self
            .refresh_under_lease(&mut lease, key, connection, seen_generation, rejected)
            .await;
        // Released on every path; a failed refresh wrote nothing, so its commit is a no-op.
        lease.release().await?;
        let (leased, refreshed_from) = result?;
        // Only once the rotated tokens are committed may the queue behind us use them.
        if let Some(from_generation) = refreshed_from {
            self.remember_refreshed(key, &leased, from_generation);
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
    ) -> Result<(LeasedToken, Option<i64>), TokenError> {
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
            return Ok((leased, None));
        }
        let Some(refresh_token) = connection.refresh_token.clone() else {
            // A grant without a refresh token (no offline_access) cannot be renewed, but its
            // expiry is only our reading (or, without `expires_in`, our guess): the token is
            // used until the Workspace itself refuses it, and only then is the connection over.
            if !rejected {
                let leased = LeasedToken {
                    token: connection.access_token,
                    generation,
                };
                return Ok((leased, None));
            }
            return self
                .give_up_or_take_newer(lease, key, generation, "no refresh token")
                .await
                .map(|leased| (leased, None));
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
                let Some(stored_generation) = stored else {
                    // The connection was authorized again (or removed) while we refreshed the
                    // old grant: the new connection's tokens win.
                    return self.current_active(key).await.map(|leased| (leased, None));
                };
                tracing::info!("access token refreshed");
                let leased = LeasedToken {
                    token: tokens.access_token,
                    generation: stored_generation,
                };
                Ok((leased, Some(generation)))
            }
            Err(TokenCallError::InvalidGrant) => self
                .give_up_or_take_newer(lease, key, generation, "refresh token refused")
                .await
                .map(|leased| (leased, None)),
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
        self.stored(key).await.map(|(leased, _, _)| leased)
    }

    /// The stored access token of an active connection, when it expires, and whether the grant
    /// can be refreshed.
    async fn stored(
        &self,
        key: &ConnectionKey,
    ) -> Result<(LeasedToken, std::time::SystemTime, bool), TokenError> {
        let (info, token) = self
            .store
            .access(key)
            .await?
            .ok_or(TokenError::NotConnected)?;
        if info.state == ConnectionState::ReconnectRequired {
            return Err(TokenError::ReconnectRequired);
        }
        let leased = LeasedToken {
            token,
            generation: info.generation,
        };
        Ok((leased, info.access_expires_at, info.has_refresh_token))
    }
}
