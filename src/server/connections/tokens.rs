//! Access tokens on demand: refreshed ahead of expiry or when the Workspace says the token is no
//! longer good, one refresh at a time per connection however many requests, and however many
//! app instances, need it.
//!
//! Two locks make it single-flight. In each instance, a queue per connection
//! ([`KeyedQueue`]) lines up that instance's requests, so at most one of them asks the database. Across instances, the vault's
//! [`RefreshLease`](super::RefreshLease) (a PostgreSQL row lock) queues the instances. Sending
//! one refresh token twice is not just waste: with rotation, the second use is a reuse and
//! the authorization server may revoke the whole grant (RFC 9700 §4.14.2).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::access::{ConnectionAccess, RowRead};
use super::queue::KeyedQueue;
use super::{
    AccessToken, Binding, ConnectionInfo, ConnectionKey, ConnectionState, ConnectionStore,
    TokenSet, VaultError,
};
use crate::server::platform::clock::SharedClock;
use crate::server::providers::oauth::client::ClientChoice;
use crate::server::providers::oauth::{ClientRegistry, OAuthClient, Revocable, TokenCallError};

/// Refresh this long before the access token expires, so a request never leaves with a token
/// that dies on the way; for short-lived tokens, half their lifetime instead (see
/// [`refresh_margin`]).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// How long before its expiry a token that lives `lifetime` is refreshed: [`REFRESH_MARGIN`],
/// or half the lifetime if that is less. With a fixed margin, a token living 60 s or less
/// would be "due" the moment it arrives, and every request would refresh it again.
pub fn refresh_margin(lifetime: Duration) -> Duration {
    REFRESH_MARGIN.min(lifetime / 2)
}

/// Whether the stored access token is still good for its margin at `now`.
fn is_fresh(info: &ConnectionInfo, now: std::time::SystemTime) -> bool {
    let issued_at = info.refreshed_at.unwrap_or(info.connected_at);
    let lifetime = info
        .access_expires_at
        .duration_since(issued_at)
        .unwrap_or_default();
    now + refresh_margin(lifetime) < info.access_expires_at
}

/// Why the Workspace refused a token, as far as the refresh is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// `connection_expired`: the Workspace's own word that the token is no longer good.
    Expired,
    /// A 401 without a code (a proxy's, a stripped header): worth one refresh, but not proof
    /// that the grant is over.
    Bare,
}

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
    /// `unauthorized_client` / `access_denied` at the token endpoint: a Workspace admin must
    /// approve the app.
    #[error("the authorization server says this app is not approved")]
    NotApproved(#[source] TokenCallError),
    /// A 401 without the Workspace's word on why, for a grant that cannot be refreshed: this
    /// request fails, the connection stays.
    #[error("the Workspace refused the token without saying why")]
    RejectedWithoutReason,
    /// A refresh response named another organization than the connection's.
    #[error("the authorization server issued tokens for another organization")]
    WrongOrganization,
    /// The grant's client belonged to an installation that was uninstalled: the Workspace
    /// removed the app; nothing of the grant may be used (only a new install helps).
    #[error("the app was uninstalled from this Workspace")]
    Uninstalled,
    /// The installed clients could not be read (their database failed): try again later.
    #[error("the installed clients could not be read")]
    Installations(#[source] crate::server::providers::oauth::client::ClientLookupError),
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
            // A key removed from the keyring, or a tampered row: these tokens are gone for
            // good, and only a new authorization helps. Ours to investigate, hence an error.
            error @ (VaultError::Cipher(_) | VaultError::Encoding) => {
                tracing::error!(
                    ?error,
                    "a stored connection cannot be decrypted; it needs a new authorization"
                );
                TokenError::ReconnectRequired
            }
            error => TokenError::Vault(error),
        }
    }
}

/// What a request holds after a refresh handed it `leased`.
fn refreshed(mut info: ConnectionInfo, leased: &LeasedToken) -> RowRead {
    info.generation = leased.generation;
    RowRead {
        info,
        token: leased.token.clone(),
        refreshed_here: true,
    }
}

/// How a provider's API answered a call made with a bearer token.
#[derive(Debug)]
pub enum BearerRefused<E> {
    /// The token was refused in a way a refresh can cure; the provider's error code, if any.
    Token(Rejection, Option<String>),
    /// Anything else: the call's own failure.
    Other(E),
}

/// Why [`TokenManager::call_with_bearer`] got no answer.
#[derive(Debug)]
pub enum BearerCallError<E> {
    /// No usable token: not connected, refresh refused, vault trouble.
    Token(TokenError),
    /// The provider refused a token it had just issued; its error code, if any.
    RefusedAfterRefresh(Option<String>),
    Other(E),
}

/// What [`TokenManager::purge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purged {
    /// No connection.
    Nothing,
    /// The connection holds a grant of another client (`grant_id`); left alone.
    OtherClient { grant_id: String },
    /// Deleted; what the revocation came to, if one was made.
    Deleted {
        revocation: Option<Result<(), String>>,
    },
}

/// A usable access token and the vault generation it came from.
#[derive(Debug, Clone)]
pub struct LeasedToken {
    pub token: AccessToken,
    pub generation: i64,
}

/// How often a write of tokens the Workspace has just issued is tried, and the pause between:
/// a locked or briefly unreachable database must not cost a grant.
const STORE_ATTEMPTS: u32 = 3;
const STORE_RETRY_PAUSE: Duration = Duration::from_millis(250);

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
    /// The OAuth client of each connection's provider, looked up per connection.
    clients: ClientRegistry,
    clock: SharedClock,
    /// How long a refresh may hold, or wait for, the cross-instance lock: the token call's
    /// timeout plus a margin for the database round trips.
    lock_bound: Duration,
    queue: KeyedQueue<ConnectionKey>,
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

impl JustRefreshed {
    fn is_recent(&self, now: std::time::Instant) -> bool {
        now.saturating_duration_since(self.at) <= JUST_REFRESHED_WINDOW
    }
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
        clients: ClientRegistry,
        clock: SharedClock,
        token_call_timeout: Duration,
    ) -> Self {
        Self {
            store,
            clients,
            clock,
            lock_bound: token_call_timeout + LOCK_MARGIN,
            queue: KeyedQueue::default(),
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

    /// The OAuth client `key`'s grant was issued to (`client_id`); a connection whose provider
    /// or client is no longer configured is not connected (nothing of it is sent anywhere), one
    /// whose installation was uninstalled is [`TokenError::Uninstalled`].
    async fn client_for(
        &self,
        key: &ConnectionKey,
        client_id: &str,
    ) -> Result<OAuthClient, TokenError> {
        match self
            .clients
            .for_connection(&key.provider, &key.organization_id, client_id)
            .await
            .map_err(TokenError::Installations)?
        {
            ClientChoice::Client(client) => Ok(client),
            ClientChoice::Uninstalled => Err(TokenError::Uninstalled),
            ClientChoice::NotConfigured => {
                tracing::warn!(provider = %key.provider, client_id, "a connection of a provider or client that is not configured");
                Err(TokenError::NotConnected)
            }
        }
    }

    /// Connections queued in this instance now (held or waited for).
    pub fn queued_connections(&self) -> usize {
        self.queue.len()
    }

    /// A token that will still be valid for at least its margin ([`refresh_margin`]), for the
    /// session holding the access's binding. The row is read once per request
    /// ([`ConnectionAccess`]): the request's other calls wait for that read and share it.
    #[tracing::instrument(skip_all, fields(org = %access.key().organization_id))]
    pub async fn access_token(&self, access: &ConnectionAccess) -> Result<LeasedToken, TokenError> {
        let mut read = access.read.lock().await;
        let current = match read.as_ref() {
            Some(current) => current.clone(),
            None => {
                let current = self.read_usable(access.binding()).await?;
                *read = Some(current.clone());
                current
            }
        };
        let leased = LeasedToken {
            token: current.token,
            generation: current.info.generation,
        };
        // A grant without a refresh token cannot be renewed: its token is used until the
        // Workspace refuses it (see `refresh_under_lease`), without queueing for a lease.
        if current.refreshed_here
            || !current.info.has_refresh_token
            || is_fresh(&current.info, self.clock.now())
        {
            return Ok(leased);
        }
        let leased = self
            .refresh(access.binding(), leased.generation, None)
            .await?;
        *read = Some(refreshed(current.info, &leased));
        Ok(leased)
    }

    /// The Workspace refused the token from `stale_generation` (401): refresh once, unless
    /// another request already did. The request's later calls use the new token.
    #[tracing::instrument(skip_all, fields(org = %access.key().organization_id))]
    pub async fn refresh_after_rejection(
        &self,
        access: &ConnectionAccess,
        stale_generation: i64,
        rejection: Rejection,
    ) -> Result<LeasedToken, TokenError> {
        let leased = self
            .refresh(access.binding(), stale_generation, Some(rejection))
            .await;
        let mut read = access.read.lock().await;
        *read = match (leased.as_ref(), read.take()) {
            (Ok(leased), Some(current)) => Some(refreshed(current.info, leased)),
            // Not refreshed: the row is read again by the request's next call.
            _ => None,
        };
        leased
    }

    /// The connection's facts, and whether its tokens can be decrypted, from the request's read
    /// when it made one. `None`: no connection, or another grant's.
    pub async fn facts(
        &self,
        access: &ConnectionAccess,
    ) -> Result<Option<(ConnectionInfo, bool)>, VaultError> {
        let mut read = access.read.lock().await;
        if let Some(current) = read.as_ref() {
            return Ok(Some((current.info.clone(), true)));
        }
        let binding = access.binding();
        let (info, readable) = match self.store.access(&binding.key).await {
            Ok(Some((info, token))) => {
                if binding.holds(&info) && info.state == ConnectionState::Active {
                    *read = Some(RowRead {
                        info: info.clone(),
                        token,
                        refreshed_here: false,
                    });
                }
                (info, true)
            }
            Ok(None) => return Ok(None),
            Err(VaultError::Cipher(_) | VaultError::Encoding) => {
                tracing::error!(
                    "a stored connection cannot be decrypted; it needs a new authorization"
                );
                match self.store.info(&binding.key).await? {
                    Some(info) => (info, false),
                    None => return Ok(None),
                }
            }
            Err(error) => return Err(error),
        };
        Ok(binding.holds(&info).then_some((info, readable)))
    }

    /// Runs `call` with the connection's bearer token: the one provider-independent part of
    /// calling a partner API. When the provider refuses the token (RFC 6750 §3.1
    /// `invalid_token`), the token is refreshed once, single-flight, and the call retried once:
    /// never a loop. The answer comes with the vault generation of the token that got it.
    pub async fn call_with_bearer<T, E, F, Fut>(
        &self,
        access: &ConnectionAccess,
        mut call: F,
    ) -> (Result<T, BearerCallError<E>>, Option<i64>)
    where
        F: FnMut(AccessToken) -> Fut,
        Fut: std::future::Future<Output = Result<T, BearerRefused<E>>>,
    {
        let leased = match self.access_token(access).await {
            Ok(leased) => leased,
            Err(error) => return (Err(BearerCallError::Token(error)), None),
        };
        let rejection = match call(leased.token).await {
            Ok(value) => return (Ok(value), Some(leased.generation)),
            Err(BearerRefused::Other(error)) => {
                return (Err(BearerCallError::Other(error)), Some(leased.generation))
            }
            Err(BearerRefused::Token(rejection, _)) => rejection,
        };
        let leased = match self
            .refresh_after_rejection(access, leased.generation, rejection)
            .await
        {
            Ok(leased) => leased,
            Err(error) => return (Err(BearerCallError::Token(error)), Some(leased.generation)),
        };
        let outcome = match call(leased.token).await {
            Ok(value) => Ok(value),
            // Refused again, with a token fresh from the provider itself.
            Err(BearerRefused::Token(_, code)) => Err(BearerCallError::RefusedAfterRefresh(code)),
            Err(BearerRefused::Other(error)) => Err(BearerCallError::Other(error)),
        };
        (outcome, Some(leased.generation))
    }

    /// Stores a completed authorization, queued like a refresh (so it never writes under a
    /// refresh of the grant it replaces), and returns the new grant's id. The grant it
    /// replaces is revoked afterwards (RFC 7009, best effort): nothing will use it again, and
    /// a grant left live at the Workspace is one more credential to leak.
    /// `oauth` is the client that redeemed the code (and revokes the grant if it cannot be
    /// stored).
    pub async fn connect(
        &self,
        key: &ConnectionKey,
        oauth: &OAuthClient,
        tokens: TokenSet,
        requested_scopes: Vec<String>,
    ) -> Result<String, TokenError> {
        let key = key.clone();
        let oauth = oauth.clone();
        self.detached(move |this| async move {
            let _turn = this.queue.turn(&key).await;
            let _permit = this.lease_permit().await?;
            let (mut lease, row) = this
                .store
                .lease_for_replacing(&key, this.lock_bound)
                .await?;
            let previous = match row {
                Some((_, Some(previous))) => Some(previous),
                Some((_, None)) => {
                    tracing::error!("replacing a connection that cannot be decrypted, unrevoked");
                    None
                }
                None => None,
            };
            let mut stored = Err(VaultError::Random);
            for attempt in 0..STORE_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(STORE_RETRY_PAUSE).await;
                }
                stored = this
                    .store
                    .save_connected_under(
                        &mut lease,
                        &key,
                        &tokens,
                        &requested_scopes,
                        this.clock.now(),
                    )
                    .await;
                if !matches!(stored, Err(VaultError::Database(_))) {
                    break;
                }
                tracing::warn!(attempt, "storing the new connection failed");
            }
            let released = lease.release().await;
            let grant_id = match (stored, released) {
                (Ok(grant_id), Ok(())) => grant_id,
                (Err(error), _) | (Ok(_), Err(error)) => {
                    // Redeemed but not stored: nothing would ever use or revoke this grant.
                    tracing::error!(
                        ?error,
                        "the new connection could not be stored; revoking its grant"
                    );
                    let token =
                        Revocable::best_of(tokens.refresh_token.as_ref(), &tokens.access_token);
                    if let Err(revocation) = oauth.revoke(token).await {
                        tracing::warn!(%revocation, "could not revoke the unstored grant");
                    }
                    return Err(error.into());
                }
            };
            // A new grant replaces the old one: nothing remembered of the old tokens may be reused.
            this.forget(&key);
            if let Some(previous) = previous {
                // Revoked by the client it was issued to; off the person's way back to the
                // app; shutdown still waits for it.
                match this.client_for(&key, &previous.info.client_id).await {
                    Ok(oauth) => {
                        let running = RunningGuard::enter(&this.running);
                        tokio::spawn(async move {
                            let _running = running;
                            let token = Revocable::best_of(
                                previous.refresh_token.as_ref(),
                                &previous.access_token,
                            );
                            if let Err(error) = oauth.revoke(token).await {
                                tracing::warn!(%error, "could not revoke the grant this authorization replaced");
                            }
                        });
                    }
                    Err(_) => tracing::warn!("the replaced grant's client is not configured; unrevoked"),
                }
            }
            Ok(grant_id)
        })
        .await
    }

    /// Revokes the grant `binding` holds and deletes the connection, queued like a refresh:
    /// a refresh under way finishes first, and the refresh token revoked is the one stored now,
    /// not one a refresh has just rotated out (which a server may ignore, RFC 7009 §2.2,
    /// leaving the grant live). The row is deleted whatever the Workspace answers: the tokens
    /// are purged locally even when it is unreachable.
    pub async fn disconnect(&self, binding: &Binding) -> Result<(), TokenError> {
        let binding = binding.clone();
        self.detached(move |this| async move {
            let key = &binding.key;
            let _turn = this.queue.turn(key).await;
            let _permit = this.lease_permit().await?;
            let (mut lease, row) = this
                .store
                .lease_for_replacing(key, this.lock_bound)
                .await?;
            if let Some((info, connection)) = &row {
                // Another grant of the organization (authorized again since this session's):
                // not this session's to end.
                if !binding.holds(info) {
                    lease.release().await?;
                    return Err(TokenError::NotConnected);
                }
                match connection {
                    Some(connection) => {
                        let token = Revocable::best_of(
                            connection.refresh_token.as_ref(),
                            &connection.access_token,
                        );
                        match this.client_for(key, &info.client_id).await {
                            Ok(oauth) => {
                                if let Err(error) = oauth.revoke(token).await {
                                    tracing::warn!(%error, "revocation failed; deleting the connection anyway");
                                }
                            }
                            Err(error) => tracing::warn!(
                                %error, "its client cannot be used; deleting it unrevoked"
                            ),
                        }
                    }
                    None => tracing::error!(
                        "disconnecting a connection that cannot be decrypted; deleting it unrevoked"
                    ),
                }
            }
            let deleted = this.store.delete_under(&mut lease, key).await;
            lease.release().await?;
            deleted?;
            this.forget(key);
            Ok(())
        })
        .await
    }

    /// Ends `key`'s connection if its grant was issued to `client_id` (an uninstalled
    /// installation's client), queued like a refresh: the grant is revoked once with `oauth`
    /// (best effort, RFC 7009; `revoke` false when an earlier attempt already did), then the row
    /// is deleted whatever the Workspace answered. A connection of another client (the
    /// organization's new installation) is left alone.
    pub async fn purge(
        &self,
        key: &ConnectionKey,
        client_id: &str,
        oauth: Option<OAuthClient>,
        revoke: bool,
    ) -> Result<Purged, TokenError> {
        let (key, client_id) = (key.clone(), client_id.to_owned());
        self.detached(move |this| async move {
            let _turn = this.queue.turn(&key).await;
            let _permit = this.lease_permit().await?;
            let (mut lease, row) = this
                .store
                .lease_for_replacing(&key, this.lock_bound)
                .await?;
            let Some((info, connection)) = row else {
                lease.release().await?;
                return Ok(Purged::Nothing);
            };
            if info.client_id != client_id {
                lease.release().await?;
                return Ok(Purged::OtherClient {
                    grant_id: info.grant_id,
                });
            }
            let revocation = match (revoke, oauth, connection) {
                (false, _, _) => None,
                (true, Some(oauth), Some(connection)) => {
                    let token = Revocable::best_of(
                        connection.refresh_token.as_ref(),
                        &connection.access_token,
                    );
                    Some(oauth.revoke(token).await.map_err(|error| error.to_string()))
                }
                (true, None, _) => Some(Err("the installation's credentials are gone".to_owned())),
                (true, _, None) => Some(Err("the stored tokens cannot be decrypted".to_owned())),
            };
            let deleted = this.store.delete_under(&mut lease, &key).await;
            lease.release().await?;
            deleted?;
            this.forget(&key);
            Ok(Purged::Deleted { revocation })
        })
        .await
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
        access: &ConnectionAccess,
        generation: i64,
    ) -> Result<(), TokenError> {
        // The request's later calls read the row again (and find it refused).
        access.read.lock().await.take();
        let key = access.key().clone();
        self.detached(move |this| async move {
            let _turn = this.queue.turn(&key).await;
            let _permit = this.lease_permit().await?;
            let (mut lease, _) = this
                .store
                .lease_without_reading(&key, this.lock_bound)
                .await?;
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
        })
        .await
    }

    /// Runs `work` in a task of its own and waits for it. The request may go away meanwhile (a
    /// closed browser, a sibling call's failure cancelling a join); the work must not: cut off
    /// between a token call and storing its result, it would lose what the Workspace just
    /// issued. Shutdown waits for it ([`Self::drain`]).
    async fn detached<T, F>(&self, work: impl FnOnce(TokenManager) -> F) -> Result<T, TokenError>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, TokenError>> + Send + 'static,
    {
        let running = RunningGuard::enter(&self.running);
        let work = work(self.clone());
        let task = tokio::spawn(async move {
            let _running = running;
            work.await
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
        if !entry.is_recent(self.clock.monotonic()) {
            recent.remove(key);
            return None;
        }
        (entry.from_generation == seen_generation).then(|| entry.leased.clone())
    }

    fn remember_refreshed(&self, key: &ConnectionKey, leased: &LeasedToken, from_generation: i64) {
        let now = self.clock.monotonic();
        let mut recent = self
            .just_refreshed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        // What nobody took within its window goes, so the map holds only recent refreshes.
        recent.retain(|_, entry| entry.is_recent(now));
        recent.insert(
            key.clone(),
            JustRefreshed {
                leased: leased.clone(),
                from_generation,
                at: now,
            },
        );
    }

    /// Refreshes in a task of its own and waits for it. The request may go away meanwhile (a
    /// closed browser, a sibling call's failure cancelling a join); the refresh must not: cut
    /// off between the token call and storing its result, it would lose the rotated refresh
    /// token, and the old one is then a reused one (RFC 9700 §4.14.2).
    async fn refresh(
        &self,
        binding: &Binding,
        seen_generation: i64,
        rejected: Option<Rejection>,
    ) -> Result<LeasedToken, TokenError> {
        let binding = binding.clone();
        self.detached(move |this| async move {
            this.refresh_detached(&binding, seen_generation, rejected)
                .await
        })
        .await
    }

    async fn refresh_detached(
        &self,
        binding: &Binding,
        seen_generation: i64,
        rejected: Option<Rejection>,
    ) -> Result<LeasedToken, TokenError> {
        let key = &binding.key;
        // This instance's requests queue here; only the first goes on to the database.
        let _turn = self.queue.turn(key).await;

        // A refresh of the generation we saw finished while we waited: use its token.
        if let Some(leased) = self.take_just_refreshed(key, seen_generation) {
            return Ok(leased);
        }

        let _permit = self.lease_permit().await?;
        // Instances queue here; the row is re-read under the lease, since whoever held it
        // before us (here or in another instance) may have refreshed already.
        let (mut lease, connection) = self.store.lease_for_refresh(key, self.lock_bound).await?;
        let result = self
            .refresh_under_lease(&mut lease, binding, connection, seen_generation, rejected)
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
        binding: &Binding,
        connection: Option<super::Connection>,
        seen_generation: i64,
        rejected: Option<Rejection>,
    ) -> Result<(LeasedToken, Option<i64>), TokenError> {
        let key = &binding.key;
        let connection = connection.ok_or(TokenError::NotConnected)?;
        // The row holds another grant now (disconnected and authorized again): it is not this
        // session's to use, fresh or not.
        if !binding.holds(&connection.info) {
            return Err(TokenError::NotConnected);
        }
        match connection.info.state {
            ConnectionState::ReconnectRequired => return Err(TokenError::ReconnectRequired),
            ConnectionState::Uninstalled => return Err(TokenError::Uninstalled),
            ConnectionState::Active => {}
        }
        let generation = connection.info.generation;
        let fresh = is_fresh(&connection.info, self.clock.now());
        // Another request refreshed while we waited (its token is fresh, or at least not the one
        // that was refused), or nothing needs doing: use what the vault holds.
        let refreshed_elsewhere = generation != seen_generation && (fresh || rejected.is_some());
        if refreshed_elsewhere || (fresh && rejected.is_none()) {
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
            return match rejected {
                None => {
                    let leased = LeasedToken {
                        token: connection.access_token,
                        generation,
                    };
                    Ok((leased, None))
                }
                // A bare 401 (a proxy's, a stripped header) is not the Workspace's word.
                Some(Rejection::Bare) => Err(TokenError::RejectedWithoutReason),
                Some(Rejection::Expired) => self
                    .give_up_or_take_newer(lease, binding, generation, "no refresh token")
                    .await
                    .map(|leased| (leased, None)),
            };
        };

        let oauth = self.client_for(key, &connection.info.client_id).await?;
        match oauth.refresh(&refresh_token).await {
            Ok(tokens) => {
                // RFC 6749 §6 issues a refresh for the same grant: a response naming another
                // organization is not this connection's. Its tokens are revoked, not stored,
                // and the connection needs a new authorization.
                if let Some(named) = tokens.organization_id.as_ref() {
                    if *named != key.organization_id {
                        tracing::error!(%named, "a refresh response named another organization; the connection is ended");
                        let token =
                            Revocable::best_of(tokens.refresh_token.as_ref(), &tokens.access_token);
                        if let Err(error) = oauth.revoke(token).await {
                            tracing::warn!(%error, "could not revoke the mismatching tokens");
                        }
                        self.store
                            .mark_reconnect_required(lease, key, generation, self.clock.now())
                            .await?;
                        self.forget(key);
                        return Err(TokenError::WrongOrganization);
                    }
                }
                // The rotated refresh token is stored before the new access token is used. The
                // Workspace has spent the old one: losing the new one to a moment's database
                // trouble would end the grant, so the write is tried again, briefly.
                let mut attempt = 0;
                let stored = loop {
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
                        .await;
                    attempt += 1;
                    match stored {
                        Err(VaultError::Database(error)) if attempt < STORE_ATTEMPTS => {
                            tracing::warn!(%error, attempt, "storing the refreshed tokens failed");
                            tokio::time::sleep(STORE_RETRY_PAUSE).await;
                        }
                        Err(error) => {
                            tracing::error!(?error, "the refreshed tokens could not be stored");
                            return Err(error.into());
                        }
                        Ok(stored) => break stored,
                    }
                };
                let Some(stored_generation) = stored else {
                    // The connection was authorized again (or removed) while we refreshed the
                    // old grant: the new connection's tokens win.
                    return self
                        .current_active(binding)
                        .await
                        .map(|leased| (leased, None));
                };
                tracing::info!("access token refreshed");
                let leased = LeasedToken {
                    token: tokens.access_token,
                    generation: stored_generation,
                };
                Ok((leased, Some(generation)))
            }
            Err(TokenCallError::InvalidGrant) => self
                .give_up_or_take_newer(lease, binding, generation, "refresh token refused")
                .await
                .map(|leased| (leased, None)),
            Err(error @ TokenCallError::Unavailable { .. }) => {
                tracing::warn!(%error, "refresh failed; will retry on the next request");
                Err(TokenError::Unavailable(error))
            }
            Err(error @ TokenCallError::NotApproved { .. }) => {
                tracing::warn!(%error, "refresh refused: the app is not approved");
                Err(TokenError::NotApproved(error))
            }
            // RFC 6749 §5.2 `invalid_client` for an installation's client: the Workspace deleted
            // the client, which it does when the app is uninstalled. The connection is over for
            // good (a reconnect would use the same dead client): marked so, never a loop.
            Err(TokenCallError::Refused { error })
                if error == "invalid_client" && oauth.installed_for().is_some() =>
            {
                tracing::warn!("the installation's client was deleted at the Workspace; the connection is marked uninstalled");
                self.store
                    .mark_uninstalled(lease, key, generation, self.clock.now())
                    .await?;
                self.forget(key);
                Err(TokenError::Uninstalled)
            }
            Err(
                error @ (TokenCallError::Refused { .. } | TokenCallError::UnusableResponse { .. }),
            ) => {
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
        binding: &Binding,
        generation: i64,
        why: &'static str,
    ) -> Result<LeasedToken, TokenError> {
        let key = &binding.key;
        let marked = self
            .store
            .mark_reconnect_required(lease, key, generation, self.clock.now())
            .await?;
        if !marked {
            return self.current_active(binding).await;
        }
        tracing::warn!(why, "the connection needs a new authorization");
        self.forget(key);
        Err(TokenError::ReconnectRequired)
    }

    /// What the vault holds now, if it is usable.
    async fn current_active(&self, binding: &Binding) -> Result<LeasedToken, TokenError> {
        self.read_usable(binding).await.map(|read| LeasedToken {
            token: read.token,
            generation: read.info.generation,
        })
    }

    /// The session's connection as the vault holds it, if this session may use it now.
    async fn read_usable(&self, binding: &Binding) -> Result<RowRead, TokenError> {
        let (info, token) = self
            .store
            .access(&binding.key)
            .await?
            .ok_or(TokenError::NotConnected)?;
        if !binding.holds(&info) {
            return Err(TokenError::NotConnected);
        }
        match info.state {
            ConnectionState::ReconnectRequired => return Err(TokenError::ReconnectRequired),
            ConnectionState::Uninstalled => return Err(TokenError::Uninstalled),
            ConnectionState::Active => {}
        }
        Ok(RowRead {
            info,
            token,
            refreshed_here: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::ids::OrganizationId;

    #[test]
    fn the_margin_shrinks_with_the_lifetime() {
        assert_eq!(refresh_margin(Duration::from_secs(3600)), REFRESH_MARGIN);
        assert_eq!(refresh_margin(Duration::from_secs(120)), REFRESH_MARGIN);
        assert_eq!(
            refresh_margin(Duration::from_secs(60)),
            Duration::from_secs(30)
        );
        assert_eq!(
            refresh_margin(Duration::from_secs(20)),
            Duration::from_secs(10)
        );
        assert_eq!(refresh_margin(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn a_short_lived_token_is_fresh_when_it_arrives() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let info = |lifetime: u64| ConnectionInfo {
            key: ConnectionKey::new(
                &crate::server::ids::ProviderId::qentrah(),
                &OrganizationId::parse("org").unwrap(),
                "r",
            ),
            scopes: vec![],
            state: ConnectionState::Active,
            access_expires_at: now + Duration::from_secs(lifetime),
            connected_at: now,
            refreshed_at: None,
            has_refresh_token: true,
            generation: 1,
            grant_id: String::new(),
            client_id: String::new(),
        };
        // A 20 s token is good for its first 10 s; with a fixed 60 s margin it never was.
        assert!(is_fresh(&info(20), now));
        assert!(is_fresh(&info(20), now + Duration::from_secs(9)));
        assert!(!is_fresh(&info(20), now + Duration::from_secs(10)));
        assert!(is_fresh(&info(3600), now + Duration::from_secs(3539)));
        assert!(!is_fresh(&info(3600), now + Duration::from_secs(3540)));
    }
}
