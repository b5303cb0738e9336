//! The uninstall purge: what an uninstalled installation left behind is made unusable and then
//! deleted. A durable job: each tombstone's purge row is written in the transaction that
//! tombstones it (`store`), leased by one instance at a time, run at least once, and every step
//! is safe to repeat:
//! 1. the organization's grant issued to the old client is revoked with the old credentials
//!    (RFC 7009, best effort: the outcome is recorded and the revocation is never made again,
//!    so a Workspace that no longer knows the client cannot hold the purge forever);
//! 2. its connection is deleted, then its flows in progress and the sessions bound to it;
//! 3. the sealed client secret is erased (the tombstone keeps ids and times only).

use std::sync::Arc;
use std::time::Duration;

use super::store::{InstallationError, InstallationStore, PurgeTask};
use crate::server::connections::{ConnectionKey, Purged, TokenError, TokenManager};
use crate::server::identity::session;
use crate::server::ids::ProviderId;
use crate::server::platform::clock::SharedClock;
use crate::server::platform::db::Db;
use crate::server::providers::oauth::flow_store::FlowStore;
use crate::server::providers::oauth::OAuthClient;

/// How long one instance holds a purge: far more than its revocation call (bounded by the HTTP
/// timeout) and its deletes take. An instance that dies holding it leaves it to another after.
pub const PURGE_LEASE: Duration = Duration::from_secs(120);

/// How often each instance looks for due purges when nothing wakes it (another instance's
/// webhook, a retry that came due).
pub const PURGE_POLL: Duration = Duration::from_secs(15);

/// The pause before attempt `attempt + 1` of a purge whose database work failed: doubling from
/// 10 s up to an hour.
pub fn retry_pause(attempt: i64) -> Duration {
    let exponent = u32::try_from(attempt.clamp(1, 20) - 1).unwrap_or(0);
    Duration::from_secs(10u64.saturating_mul(1 << exponent.min(9))).min(Duration::from_secs(3600))
}

#[derive(Debug, thiserror::Error)]
pub enum PurgeError {
    #[error(transparent)]
    Installations(#[from] InstallationError),
    #[error("the connection could not be purged")]
    Connection(#[source] TokenError),
    #[error("the flows could not be deleted")]
    Flows(#[source] crate::server::providers::oauth::flow_store::FlowStoreError),
    #[error("the sessions could not be deleted")]
    Sessions(#[source] session::SessionError),
    #[error("the sign-ins could not be ended")]
    SignIns(#[source] crate::server::identity::users::UserStoreError),
}

/// Runs the purges. Cloned into the webhook route (to wake it) and the worker task.
#[derive(Clone)]
pub struct Purger {
    installations: InstallationStore,
    tokens: TokenManager,
    flows: FlowStore,
    db: Db,
    clock: SharedClock,
    /// The provider installations are of, its configured client (whose endpoints the old
    /// credentials are used on) and the resource its connections are keyed by.
    provider: ProviderId,
    configured: OAuthClient,
    resource: String,
    wake: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for Purger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Purger")
    }
}

impl Purger {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        installations: InstallationStore,
        tokens: TokenManager,
        flows: FlowStore,
        db: Db,
        clock: SharedClock,
        configured: OAuthClient,
    ) -> Self {
        let profile = configured.provider();
        Self {
            provider: profile.name.clone(),
            resource: profile.resource_key().to_owned(),
            installations,
            tokens,
            flows,
            db,
            clock,
            configured,
            wake: Arc::default(),
        }
    }

    /// Asks the worker to look for due purges now (an uninstall was just recorded).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs every due purge, then waits for a wake-up or the next poll; forever.
    pub async fn run(self) {
        loop {
            loop {
                match self.run_one().await {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(error) => {
                        tracing::warn!(error = %crate::server::Causes(&error), "the purge queue could not be read");
                        break;
                    }
                }
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(PURGE_POLL) => {}
            }
        }
    }

    /// Takes one due purge and runs it; `false` when none was due.
    pub async fn run_one(&self) -> Result<bool, InstallationError> {
        let Some(task) = self
            .installations
            .lease_purge(self.clock.now(), PURGE_LEASE)
            .await?
        else {
            return Ok(false);
        };
        let span = tracing::info_span!("uninstall_purge", org = %task.organization_id, attempt = task.attempt);
        match tracing::Instrument::instrument(self.purge(&task), span).await {
            Ok(()) => {
                self.installations
                    .complete_purge(&task, self.clock.now())
                    .await?;
                tracing::info!(org = %task.organization_id, "uninstall purge completed");
            }
            Err(error) => {
                let shown = crate::server::Causes(&error).to_string();
                tracing::warn!(org = %task.organization_id, error = %shown, "uninstall purge failed; it will run again");
                let retry_at = self.clock.now() + retry_pause(task.attempt);
                self.installations
                    .postpone_purge(&task, &shown, retry_at)
                    .await?;
            }
        }
        Ok(true)
    }

    async fn purge(&self, task: &PurgeTask) -> Result<(), PurgeError> {
        let org = &task.organization_id;
        let credentials = self.installations.purge_credentials(task).await?;
        let oauth = credentials.map(|c| self.configured.with_credentials(c));
        let key = ConnectionKey::new(&self.provider, org, &self.resource);
        let revoke = task.revocation.is_none();
        let (kept_grant, revocation) = match self
            .tokens
            .purge(&key, &task.client_id, oauth, revoke)
            .await
            .map_err(PurgeError::Connection)?
        {
            Purged::Nothing => (None, None),
            Purged::OtherClient { grant_id } => (Some(grant_id), None),
            Purged::Deleted { revocation } => (None, revocation),
        };
        if revoke {
            let outcome = match revocation {
                None => "nothing to revoke".to_owned(),
                Some(Ok(())) => "revoked".to_owned(),
                Some(Err(error)) => {
                    tracing::warn!(%error, "revoking the uninstalled installation's grant failed; deleted anyway");
                    format!("failed: {error}")
                }
            };
            self.installations.record_revocation(task, &outcome).await?;
        }
        self.flows
            .forget_client(org, &task.client_id)
            .await
            .map_err(PurgeError::Flows)?;
        session::delete_sessions_bound_to(&self.db, &self.provider, org, kept_grant.as_deref())
            .await
            .map_err(PurgeError::Sessions)?;
        // Sign-ins made with the uninstalled client end too (AUTH_MODE=sso): found by the
        // sign-in index, so each of those sessions is signed out wherever it is used next.
        crate::server::identity::users::UserStore::end_for_client(&self.db, org, &task.client_id)
            .await
            .map_err(PurgeError::SignIns)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(retry_pause(1), Duration::from_secs(10));
        assert_eq!(retry_pause(2), Duration::from_secs(20));
        assert_eq!(retry_pause(4), Duration::from_secs(80));
        assert_eq!(retry_pause(9), Duration::from_secs(2560));
        assert_eq!(retry_pause(10), Duration::from_secs(3600));
        assert_eq!(retry_pause(1000), Duration::from_secs(3600));
        assert_eq!(retry_pause(0), Duration::from_secs(10));
    }
}
