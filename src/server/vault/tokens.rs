//! Access tokens on demand: refreshed ahead of expiry or when the Workspace says the token is no
//! longer good, one refresh at a time per connection however many requests need it.

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
    #[error(transparent)]
    Vault(#[from] VaultError),
}

/// A usable access token and the vault generation it came from.
#[derive(Debug, Clone)]
pub struct LeasedToken {
    pub token: AccessToken,
    pub generation: i64,
}

/// How long a refresh's result is handed straight to the requests that queued behind it.
const JUST_REFRESHED_WINDOW: Duration = Duration::from_secs(2);

/// Hands out access tokens, refreshing them single-flight.
#[derive(Clone)]
pub struct TokenManager {
    store: ConnectionStore,
    oauth: OAuthClient,
    clock: SharedClock,
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
    pub fn new(store: ConnectionStore, oauth: OAuthClient, clock: SharedClock) -> Self {
        Self {
            store,
            oauth,
            clock,
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
        let connection = self
            .store
            .load(key)
            .await?
            .ok_or(TokenError::NotConnected)?;
        if connection.info.state == ConnectionState::ReconnectRequired {
            return Err(TokenError::ReconnectRequired);
        }
        if self.clock.now() + REFRESH_MARGIN < connection.info.access_expires_at {
            return Ok(LeasedToken {
                token: connection.access_token,
                generation: connection.info.generation,
            });
        }
        self.refresh(key, connection.info.generation, false).await
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

    async fn refresh(
        &self,
        key: &ConnectionKey,
        seen_generation: i64,
        rejected: bool,
    ) -> Result<LeasedToken, TokenError> {
        let lock = self.lock_for(key);
        let _guard = lock.lock().await;

        // A refresh finished while we waited: its token is newer than the one we saw.
        if let Some(leased) = self.take_just_refreshed(key, seen_generation) {
            return Ok(leased);
        }

        // Re-read under the lock: whoever held it before us may have refreshed already.
        let connection = self
            .store
            .load(key)
            .await?
            .ok_or(TokenError::NotConnected)?;
        if connection.info.state == ConnectionState::ReconnectRequired {
            return Err(TokenError::ReconnectRequired);
        }
        let now = self.clock.now();
        let fresh = now + REFRESH_MARGIN < connection.info.access_expires_at;
        // Another request refreshed while we waited (its token is fresh, or at least not the one
        // that was refused), or nothing needs doing: use what the vault holds.
        let refreshed_elsewhere =
            connection.info.generation != seen_generation && (fresh || rejected);
        if refreshed_elsewhere || (fresh && !rejected) {
            return Ok(LeasedToken {
                token: connection.access_token,
                generation: connection.info.generation,
            });
        }
        let Some(refresh_token) = connection.refresh_token.clone() else {
            self.store.mark_reconnect_required(key, now).await?;
            return Err(TokenError::ReconnectRequired);
        };

        match self.oauth.refresh(&refresh_token).await {
            Ok(tokens) => {
                // The rotated refresh token is stored before the new access token is used.
                self.store
                    .save_refreshed(key, Some(&refresh_token), &tokens, self.clock.now())
                    .await?;
                tracing::info!("access token refreshed");
                let info = self
                    .store
                    .info(key)
                    .await?
                    .ok_or(TokenError::NotConnected)?;
                Ok(LeasedToken {
                    token: tokens.access_token,
                    generation: info.generation,
                })
            }
            Err(TokenCallError::InvalidGrant) => {
                // Another instance may have rotated the refresh token meanwhile: only if the
                // vault still holds the one that was refused is the connection dead.
                let current = self
                    .store
                    .load(key)
                    .await?
                    .ok_or(TokenError::NotConnected)?;
                let still_same = current
                    .refresh_token
                    .as_ref()
                    .is_some_and(|t| t.expose() == refresh_token.expose());
                if !still_same && current.info.state == ConnectionState::Active {
                    return Ok(LeasedToken {
                        token: current.access_token,
                        generation: current.info.generation,
                    });
                }
                tracing::warn!("refresh token refused; the connection needs a new authorization");
                self.forget(key);
                self.store
                    .mark_reconnect_required(key, self.clock.now())
                    .await?;
                Err(TokenError::ReconnectRequired)
            }
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
}
