//! Flows in progress, in the database. Each is found by the digest of its `state`, bound to the
//! browser that started it, and consumed by one atomic DELETE, so a replayed callback finds
//! nothing (RFC 9700 §4.7) and several tabs can run flows side by side.

use std::sync::Arc;
use std::time::SystemTime;

use super::authorization::{digest, PkceVerifier, State, FLOW_LIFETIME};
use crate::server::ids::{OrganizationId, ProviderId};
use crate::server::platform::clock::{from_unix, to_unix};
use crate::server::platform::crypto::{Keyring, Sealed};
use crate::server::platform::db::{on_pool, Db};

/// Whose flow it is: the provider, the OAuth client it is started with (its code may be
/// redeemed by that client only, RFC 6749 §4.1.3) and, for an installation's client, the
/// organization it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowClient {
    pub provider: ProviderId,
    pub client_id: String,
    pub organization_id: Option<OrganizationId>,
}

/// A flow taken back by its callback.
#[derive(Debug)]
pub struct ConsumedFlow {
    pub verifier: PkceVerifier,
    pub return_to: String,
    pub provider: String,
    /// The client the flow started with ('' for flows from before this was recorded: the
    /// configured one).
    pub client_id: String,
    /// The organization an installation's flow is for.
    pub organization_id: Option<OrganizationId>,
}

/// A sign-in flow taken back by its callback (`AUTH_MODE=sso`).
#[derive(Debug)]
pub struct ConsumedSignIn {
    pub verifier: PkceVerifier,
    /// The OpenID Connect nonce the ID token must carry (OIDC Core §3.1.2.1).
    pub nonce: secrecy::SecretString,
    pub return_to: String,
    pub client_id: String,
    pub organization_id: OrganizationId,
}

/// Which callback may consume a flow: a connection's or a sign-in's, never the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Connect,
    SignIn,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Purpose::Connect => "connect",
            Purpose::SignIn => "sign_in",
        }
    }
}

#[derive(thiserror::Error)]
pub enum FlowStoreError {
    #[error("the flow store's database failed")]
    Database(#[from] sqlx::Error),
    #[error("a flow's verifier could not be sealed or opened")]
    Cipher(#[from] crate::server::platform::crypto::CipherError),
}

#[derive(Debug, Clone)]
pub struct FlowStore {
    db: Db,
    keyring: Arc<Keyring>,
}

fn aad(state_digest: &[u8; 32]) -> Vec<u8> {
    let mut aad = b"qentrah-connect/oauth-flow/v1\0verifier\0".to_vec();
    aad.extend_from_slice(state_digest);
    aad
}

impl FlowStore {
    pub fn new(db: Db, keyring: Arc<Keyring>) -> Self {
        Self { db, keyring }
    }

    /// Remembers a new flow for this browser.
    #[tracing::instrument(skip_all)]
    pub async fn remember(
        &self,
        client: &FlowClient,
        state: &State,
        verifier: &PkceVerifier,
        browser_binding: &str,
        return_to: &str,
        now: SystemTime,
    ) -> Result<(), FlowStoreError> {
        self.insert(
            Purpose::Connect,
            client,
            state,
            verifier.expose().as_bytes(),
            browser_binding,
            return_to,
            now,
        )
        .await
    }

    /// Remembers a new sign-in flow for this browser: its verifier and nonce sealed together.
    #[tracing::instrument(skip_all)]
    #[allow(clippy::too_many_arguments)]
    pub async fn remember_sign_in(
        &self,
        client: &FlowClient,
        state: &State,
        verifier: &PkceVerifier,
        nonce: &str,
        browser_binding: &str,
        return_to: &str,
        now: SystemTime,
    ) -> Result<(), FlowStoreError> {
        // A verifier is RFC 7636 unreserved characters, so a newline cannot occur in it.
        let secret = format!("{}\n{nonce}", verifier.expose());
        self.insert(
            Purpose::SignIn,
            client,
            state,
            secret.as_bytes(),
            browser_binding,
            return_to,
            now,
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert(
        &self,
        purpose: Purpose,
        client: &FlowClient,
        state: &State,
        secret: &[u8],
        browser_binding: &str,
        return_to: &str,
        now: SystemTime,
    ) -> Result<(), FlowStoreError> {
        let state_digest = state.digest();
        let sealed = self.keyring.seal(secret, &aad(&state_digest))?;
        // Expired flows go here rather than in a background task: every start sweeps.
        on_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM oauth_flows WHERE expires_at <= $1")
                .bind(to_unix(now))
                .execute(pool)
                .await
                .map(drop)
        })?;
        on_pool!(&self.db, pool => {
            sqlx::query(
                "INSERT INTO oauth_flows (state_hash, browser_hash, provider, key_id, verifier, \
                 return_to, expires_at, client_id, organization_id, purpose) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(state_digest.as_slice())
            .bind(digest(browser_binding).as_slice())
            .bind(client.provider.as_str())
            .bind(&sealed.key_id)
            .bind(&sealed.bytes)
            .bind(return_to)
            .bind(to_unix(now + FLOW_LIFETIME))
            .bind(&client.client_id)
            .bind(client.organization_id.as_ref().map(OrganizationId::as_str))
            .bind(purpose.as_str())
            .execute(pool)
            .await
            .map(drop)
        })?;
        Ok(())
    }

    /// Takes the flow with this state digest if it belongs to this browser and has not expired.
    /// A flow of another browser is left alone (a foreign callback cannot cancel it).
    ///
    /// # Security
    /// The lookup is by SHA-256 digest, so timing reveals nothing about the stored state; the
    /// browser binding is compared inside the same statement.
    #[tracing::instrument(skip_all)]
    pub async fn consume(
        &self,
        state_digest: &[u8; 32],
        browser_binding: &str,
        now: SystemTime,
    ) -> Result<Option<ConsumedFlow>, FlowStoreError> {
        let Some((row, verifier)) = self
            .take(Purpose::Connect, state_digest, browser_binding, now)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(ConsumedFlow {
            verifier: PkceVerifier::from_stored(String::from_utf8_lossy(&verifier).into_owned()),
            return_to: row.return_to,
            provider: row.provider,
            client_id: row.client_id,
            // An id that does not parse was never stored by this app: the flow is no
            // installation's.
            organization_id: row
                .organization_id
                .as_deref()
                .and_then(OrganizationId::parse),
        }))
    }

    /// Takes this browser's live sign-in flow with this state digest, if there is one.
    #[tracing::instrument(skip_all)]
    pub async fn consume_sign_in(
        &self,
        state_digest: &[u8; 32],
        browser_binding: &str,
        now: SystemTime,
    ) -> Result<Option<ConsumedSignIn>, FlowStoreError> {
        let Some((row, secret)) = self
            .take(Purpose::SignIn, state_digest, browser_binding, now)
            .await?
        else {
            return Ok(None);
        };
        let secret = String::from_utf8_lossy(&secret).into_owned();
        let (Some((verifier, nonce)), Some(organization_id)) = (
            secret.split_once('\n'),
            row.organization_id
                .as_deref()
                .and_then(OrganizationId::parse),
        ) else {
            // Not what this app writes for a sign-in: no flow.
            return Ok(None);
        };
        Ok(Some(ConsumedSignIn {
            verifier: PkceVerifier::from_stored(verifier.to_owned()),
            nonce: secrecy::SecretString::from(nonce.to_owned()),
            return_to: row.return_to,
            client_id: row.client_id,
            organization_id,
        }))
    }

    /// The atomic DELETE … RETURNING of a flow of `purpose`, and its opened secret.
    async fn take(
        &self,
        purpose: Purpose,
        state_digest: &[u8; 32],
        browser_binding: &str,
        now: SystemTime,
    ) -> Result<Option<(FlowRow, Vec<u8>)>, FlowStoreError> {
        let row: Option<FlowRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "DELETE FROM oauth_flows WHERE state_hash = $1 AND browser_hash = $2 \
                 AND purpose = $3 RETURNING provider, key_id, verifier, return_to, expires_at, \
                 client_id, organization_id",
            )
            .bind(state_digest.as_slice())
            .bind(digest(browser_binding).as_slice())
            .bind(purpose.as_str())
            .fetch_optional(pool)
            .await
        })?;
        let Some(row) = row else {
            return Ok(None);
        };
        if !super::authorization::flow_is_live(from_unix(row.expires_at), now) {
            return Ok(None);
        }
        let sealed = Sealed {
            key_id: row.key_id.clone(),
            bytes: row.verifier.clone(),
        };
        let secret = self.keyring.open(&sealed, &aad(state_digest))?;
        Ok(Some((row, secret)))
    }

    /// Ends the organization's flows in progress with `client_id` (its installation was
    /// uninstalled): their codes could no longer be redeemed, and must not be.
    pub async fn forget_client(
        &self,
        organization_id: &OrganizationId,
        client_id: &str,
    ) -> Result<u64, FlowStoreError> {
        Ok(on_pool!(&self.db, pool => {
            sqlx::query("DELETE FROM oauth_flows WHERE organization_id = $1 AND client_id = $2")
                .bind(organization_id.as_str())
                .bind(client_id)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }
}

/// A consumed flow's row, as stored.
#[derive(sqlx::FromRow)]
struct FlowRow {
    provider: String,
    key_id: String,
    verifier: Vec<u8>,
    return_to: String,
    expires_at: i64,
    client_id: String,
    organization_id: Option<String>,
}

crate::server::debug_with_causes!(FlowStoreError);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::platform::config::{DatabaseUrl, SessionSecret, VaultKeys};
    use std::time::Duration;

    fn configured() -> FlowClient {
        FlowClient {
            provider: ProviderId::qentrah(),
            client_id: "configured".to_owned(),
            organization_id: None,
        }
    }

    async fn store() -> FlowStore {
        let db =
            crate::server::platform::db::connect(&DatabaseUrl::parse("sqlite::memory:").unwrap())
                .await
                .unwrap();
        let keyring = VaultKeys::default().keyring(&SessionSecret::parse("s".repeat(40)).unwrap());
        FlowStore::new(db, Arc::new(keyring))
    }

    #[tokio::test]
    async fn a_flow_is_consumed_once_by_its_own_browser_before_it_expires() {
        let flows = store().await;
        let now = from_unix(1_800_000_000);
        let (state, verifier) = (
            State::generate().unwrap(),
            PkceVerifier::generate().unwrap(),
        );
        flows
            .remember(
                &configured(),
                &state,
                &verifier,
                "browser-a",
                "/clients",
                now,
            )
            .await
            .unwrap();

        assert!(
            flows
                .consume(&state.digest(), "browser-b", now)
                .await
                .unwrap()
                .is_none(),
            "foreign browser"
        );
        let flow = flows
            .consume(&state.digest(), "browser-a", now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(flow.verifier.expose(), verifier.expose());
        assert_eq!(flow.return_to, "/clients");
        assert!(
            flows
                .consume(&state.digest(), "browser-a", now)
                .await
                .unwrap()
                .is_none(),
            "replay"
        );

        let late = State::generate().unwrap();
        flows
            .remember(&configured(), &late, &verifier, "browser-a", "/", now)
            .await
            .unwrap();
        let after = now + FLOW_LIFETIME + Duration::from_secs(1);
        assert!(
            flows
                .consume(&late.digest(), "browser-a", after)
                .await
                .unwrap()
                .is_none(),
            "expired"
        );
    }

    #[tokio::test]
    async fn two_tabs_keep_separate_flows() {
        let flows = store().await;
        let now = from_unix(1_800_000_000);
        let (s1, v1) = (
            State::generate().unwrap(),
            PkceVerifier::generate().unwrap(),
        );
        let (s2, v2) = (
            State::generate().unwrap(),
            PkceVerifier::generate().unwrap(),
        );
        flows
            .remember(&configured(), &s1, &v1, "b", "/one", now)
            .await
            .unwrap();
        flows
            .remember(&configured(), &s2, &v2, "b", "/two", now)
            .await
            .unwrap();
        let second = flows
            .consume(&s2.digest(), "b", now)
            .await
            .unwrap()
            .unwrap();
        let first = flows
            .consume(&s1.digest(), "b", now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (first.return_to.as_str(), second.return_to.as_str()),
            ("/one", "/two")
        );
        assert_eq!(first.verifier.expose(), v1.expose());
        assert_eq!(second.verifier.expose(), v2.expose());
    }

    #[tokio::test]
    async fn a_flow_keeps_its_client_and_an_uninstall_ends_the_organizations_flows() {
        let flows = store().await;
        let now = from_unix(1_800_000_000);
        let org = OrganizationId::parse("org_acme").unwrap();
        let installed = FlowClient {
            provider: ProviderId::qentrah(),
            client_id: "app_acme".to_owned(),
            organization_id: Some(org.clone()),
        };
        let verifier = PkceVerifier::generate().unwrap();
        let (kept, ended) = (State::generate().unwrap(), State::generate().unwrap());
        flows
            .remember(&installed, &kept, &verifier, "b", "/", now)
            .await
            .unwrap();
        let flow = flows
            .consume(&kept.digest(), "b", now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(flow.client_id, "app_acme");
        assert_eq!(flow.organization_id, Some(org.clone()));

        flows
            .remember(&installed, &ended, &verifier, "b", "/", now)
            .await
            .unwrap();
        flows
            .remember(&configured(), &kept, &verifier, "b", "/", now)
            .await
            .unwrap();
        assert_eq!(flows.forget_client(&org, "app_acme").await.unwrap(), 1);
        assert!(flows
            .consume(&ended.digest(), "b", now)
            .await
            .unwrap()
            .is_none());
        let other = flows
            .consume(&kept.digest(), "b", now)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (other.client_id.as_str(), other.organization_id),
            ("configured", None)
        );
    }
}
