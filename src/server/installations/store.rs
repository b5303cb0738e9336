//! Installations in the database. A delivery is applied in one transaction: its id recorded
//! (a known id is a duplicate and changes nothing), the organization's installations read
//! (under a per-organization lock on PostgreSQL; SQLite has one writer at a time), the
//! lifecycle judged, the writes made. The delivered client secret is sealed with the keyring,
//! bound to its installation.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use secrecy::SecretString;

use super::lifecycle::{self, Change, Fact, Known, Organization, Reason};
use super::payload::Event;
use crate::server::ids::OrganizationId;
use crate::server::platform::clock::to_unix;
use crate::server::platform::crypto::{CipherError, Keyring, Sealed};
use crate::server::platform::db::{on_pool, Db};
use crate::server::providers::oauth::client::{
    ClientLookupError, Installed, InstalledClients, InstalledCredentials,
};

/// How long a delivery id is remembered: longer than a sender's retry schedule (days).
pub const DELIVERY_ID_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum InstallationError {
    #[error("the installations database failed")]
    Database(#[from] sqlx::Error),
    #[error("the delivered client secret could not be sealed or opened")]
    Cipher(#[from] CipherError),
    #[error("a stored client secret is not UTF-8")]
    Encoding,
    #[error("the delivery was not applied within the answer budget")]
    TimedOut,
}

/// What a delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Receipt {
    pub applied: bool,
    pub reason: Reason,
}

/// An installation as the admin sees it: ids, status and times, never its secret.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InstallationRow {
    pub organization_id: String,
    pub client_id: String,
    pub installation_id: Option<String>,
    pub status: String,
    pub installed_at: Option<i64>,
    pub uninstalled_at: Option<i64>,
    /// Whether a sealed secret is still held (until the uninstall purge).
    pub holds_secret: bool,
    /// Deliveries that named this installation.
    pub deliveries: i64,
    pub last_refused_at: Option<i64>,
    pub last_refused_reason: Option<String>,
    /// The uninstall purge: when it finished, what revocation came to, why it must run again.
    pub purged_at: Option<i64>,
    pub purge_revocation: Option<String>,
    pub purge_error: Option<String>,
}

/// A tombstoned installation whose purge is due, leased to this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeTask {
    pub organization_id: OrganizationId,
    pub client_id: String,
    /// This attempt's number (1 for the first).
    pub attempt: i64,
    /// What the revocation came to if an earlier attempt made it (it is made once).
    pub revocation: Option<String>,
}

#[derive(Clone)]
pub struct InstallationStore {
    db: Db,
    keyring: Arc<Keyring>,
}

impl std::fmt::Debug for InstallationStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InstallationStore")
    }
}

/// Associated data binding a sealed client secret to its installation.
fn aad(organization_id: &OrganizationId, client_id: &str) -> Vec<u8> {
    format!("qentrah-connect/installation/v1\0{organization_id}\0{client_id}\0client_secret")
        .into_bytes()
}

#[derive(sqlx::FromRow)]
struct KnownRow {
    client_id: String,
    status: String,
    installed_event_at: Option<i64>,
}

impl InstallationStore {
    pub fn new(db: Db, keyring: Arc<Keyring>) -> Self {
        Self { db, keyring }
    }

    /// Applies the delivery `delivery_id` saying `event`, once.
    pub async fn receive(
        &self,
        delivery_id: &str,
        event: &Event,
        now: SystemTime,
    ) -> Result<Receipt, InstallationError> {
        let now_unix = to_unix(now);
        let forget_before = to_unix(now.checked_sub(DELIVERY_ID_RETENTION).unwrap_or(now));
        let (organization_id, fact) = match event {
            Event::Installed(i) => (
                Some(&i.organization_id),
                Some(Fact::Installed {
                    client_id: &i.client_id,
                    at: i.occurred_at.map(to_unix),
                }),
            ),
            Event::Uninstalled(u) => (
                Some(&u.organization_id),
                Some(Fact::Uninstalled {
                    client_id: u.client_id.as_deref(),
                    at: u.occurred_at.map(to_unix),
                }),
            ),
            Event::Unknown => (None, None),
        };
        // Sealed before the transaction: no cipher work while holding the write lock.
        let sealed = match event {
            Event::Installed(i) => Some(self.keyring.seal(
                i.client_secret.expose().as_bytes(),
                &aad(&i.organization_id, &i.client_id),
            )?),
            _ => None,
        };
        let is_postgres = matches!(self.db, Db::Postgres(_));
        on_pool!(&self.db, pool => {
            let mut transaction = pool.begin().await?;
            sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
                .bind(forget_before)
                .execute(&mut *transaction)
                .await?;
            let recorded = sqlx::query(
                "INSERT INTO webhook_deliveries (webhook_id, received_at) VALUES ($1, $2) \
                 ON CONFLICT (webhook_id) DO NOTHING",
            )
            .bind(delivery_id)
            .bind(now_unix)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
            if recorded == 0 {
                transaction.commit().await?;
                return Ok(Receipt { applied: false, reason: Reason::Duplicate });
            }
            let (Some(organization_id), Some(fact)) = (organization_id, fact) else {
                transaction.commit().await?;
                return Ok(Receipt { applied: false, reason: Reason::UnknownType });
            };
            if is_postgres {
                // One organization's deliveries are judged one at a time across instances.
                sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                    .bind(format!("installations/{organization_id}"))
                    .execute(&mut *transaction)
                    .await?;
            }
            let last_uninstall: Option<i64> = sqlx::query_scalar(
                "SELECT uninstalled_event_at FROM installation_organizations \
                 WHERE organization_id = $1",
            )
            .bind(organization_id.as_str())
            .fetch_optional(&mut *transaction)
            .await?
            .flatten();
            let installations: Vec<Known> = sqlx::query_as::<_, KnownRow>(
                "SELECT client_id, status, installed_event_at FROM installations \
                 WHERE organization_id = $1",
            )
            .bind(organization_id.as_str())
            .fetch_all(&mut *transaction)
            .await?
            .into_iter()
            .map(|row| Known {
                client_id: row.client_id,
                active: row.status == "active",
                installed_event_at: row.installed_event_at,
            })
            .collect();
            let judgement = lifecycle::judge(
                &fact,
                &Organization {
                    installations,
                    uninstalled_event_at: last_uninstall,
                },
            );
            let uninstalled_event_at = match &fact {
                Fact::Uninstalled { at, .. } => *at,
                Fact::Installed { .. } => None,
            };
            let named_client = match &fact {
                Fact::Installed { client_id, .. } => Some(*client_id),
                Fact::Uninstalled { client_id, .. } => *client_id,
            };
            if let Some(client_id) = named_client {
                sqlx::query(
                    "UPDATE installations SET deliveries = deliveries + 1 \
                     WHERE organization_id = $1 AND client_id = $2",
                )
                .bind(organization_id.as_str())
                .bind(client_id)
                .execute(&mut *transaction)
                .await?;
            }
            // Tombstones first: the one-active index holds at every statement.
            for change in &judgement.changes {
                match change {
                    Change::Tombstone(client_id) => {
                        // Its purge is recorded with the tombstone: no uninstall is forgotten
                        // if this process dies after answering.
                        sqlx::query(
                            "INSERT INTO installation_purges (organization_id, client_id, due_at) \
                             VALUES ($1, $2, $3) ON CONFLICT (organization_id, client_id) DO NOTHING",
                        )
                        .bind(organization_id.as_str())
                        .bind(client_id)
                        .bind(now_unix)
                        .execute(&mut *transaction)
                        .await?;
                        sqlx::query(
                            "UPDATE installations SET status = 'uninstalled', uninstalled_at = $1, \
                             uninstalled_event_at = $2 \
                             WHERE organization_id = $3 AND client_id = $4",
                        )
                        .bind(now_unix)
                        .bind(uninstalled_event_at)
                        .bind(organization_id.as_str())
                        .bind(client_id)
                        .execute(&mut *transaction)
                        .await?;
                    }
                    Change::TombstoneUnseen(client_id) => {
                        sqlx::query(
                            "INSERT INTO installations (organization_id, client_id, status, \
                             uninstalled_at, uninstalled_event_at, deliveries) \
                             VALUES ($1, $2, 'uninstalled', $3, $4, 1)",
                        )
                        .bind(organization_id.as_str())
                        .bind(client_id)
                        .bind(now_unix)
                        .bind(uninstalled_event_at)
                        .execute(&mut *transaction)
                        .await?;
                    }
                    Change::UninstalledAt(at) => {
                        sqlx::query(
                            "INSERT INTO installation_organizations (organization_id, uninstalled_event_at) \
                             VALUES ($1, $2) ON CONFLICT (organization_id) \
                             DO UPDATE SET uninstalled_event_at = excluded.uninstalled_event_at",
                        )
                        .bind(organization_id.as_str())
                        .bind(*at)
                        .execute(&mut *transaction)
                        .await?;
                    }
                    Change::Activate => {}
                }
            }
            if judgement.changes.contains(&Change::Activate) {
                if let (Event::Installed(installed), Some(sealed)) = (event, &sealed) {
                    sqlx::query(
                        "INSERT INTO installations (organization_id, client_id, installation_id, \
                         status, installed_event_at, installed_at, deliveries, key_id, client_secret) \
                         VALUES ($1, $2, $3, 'active', $4, $5, 1, $6, $7)",
                    )
                    .bind(organization_id.as_str())
                    .bind(&installed.client_id)
                    .bind(&installed.installation_id)
                    .bind(installed.occurred_at.map(to_unix))
                    .bind(now_unix)
                    .bind(&sealed.key_id)
                    .bind(&sealed.bytes)
                    .execute(&mut *transaction)
                    .await?;
                }
            }
            if let (false, Some(client_id)) = (judgement.applied, named_client) {
                sqlx::query(
                    "UPDATE installations SET last_refused_at = $1, last_refused_reason = $2 \
                     WHERE organization_id = $3 AND client_id = $4",
                )
                .bind(now_unix)
                .bind(judgement.reason.as_str())
                .bind(organization_id.as_str())
                .bind(client_id)
                .execute(&mut *transaction)
                .await?;
            }
            transaction.commit().await?;
            Ok(Receipt { applied: judgement.applied, reason: judgement.reason })
        })
    }

    /// Every installation, newest first: ids, status, times, deliveries and purge, never a
    /// secret.
    /// The organization whose active installation's client is `client_id`, if any.
    pub async fn active_organization_of(
        &self,
        client_id: &str,
    ) -> Result<Option<OrganizationId>, InstallationError> {
        let organization: Option<String> = on_pool!(&self.db, pool => {
            sqlx::query_scalar(
                "SELECT organization_id FROM installations WHERE client_id = $1 AND status = 'active'",
            )
            .bind(client_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(organization.as_deref().and_then(OrganizationId::parse))
    }

    pub async fn list(&self) -> Result<Vec<InstallationRow>, InstallationError> {
        let query = "SELECT i.organization_id, i.client_id, i.installation_id, i.status, \
                     i.installed_at, i.uninstalled_at, (i.client_secret IS NOT NULL) AS holds_secret, \
                     i.deliveries, i.last_refused_at, i.last_refused_reason, \
                     p.completed_at AS purged_at, p.revocation AS purge_revocation, \
                     p.last_error AS purge_error \
                     FROM installations i LEFT JOIN installation_purges p \
                     ON p.organization_id = i.organization_id AND p.client_id = i.client_id \
                     ORDER BY COALESCE(i.uninstalled_at, i.installed_at, 0) DESC, \
                     i.organization_id, i.client_id";
        Ok(on_pool!(&self.db, pool => {
            sqlx::query_as::<_, InstallationRow>(query).fetch_all(pool).await?
        }))
    }

    /// The sealed secret of the organization's installation `client_id`, opened, if still held
    /// (active, or tombstoned and not yet purged: the purge revokes with it).
    async fn credentials(
        &self,
        organization_id: &OrganizationId,
        client_id: &str,
    ) -> Result<Option<InstalledCredentials>, InstallationError> {
        let row: Option<(Option<String>, Option<Vec<u8>>)> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT key_id, client_secret FROM installations \
                 WHERE organization_id = $1 AND client_id = $2",
            )
            .bind(organization_id.as_str())
            .bind(client_id)
            .fetch_optional(pool)
            .await?
        });
        let Some((Some(key_id), Some(bytes))) = row else {
            return Ok(None);
        };
        let secret = self
            .keyring
            .open(&Sealed { key_id, bytes }, &aad(organization_id, client_id))?;
        let secret = String::from_utf8(secret).map_err(|_| InstallationError::Encoding)?;
        Ok(Some(InstalledCredentials {
            organization_id: organization_id.clone(),
            client_id: client_id.to_owned(),
            client_secret: SecretString::from(secret),
        }))
    }

    /// The organization's installation of `client_id` (or its active one), as the client
    /// registry asks.
    async fn standing(
        &self,
        organization_id: &OrganizationId,
        client_id: Option<&str>,
    ) -> Result<Installed, InstallationError> {
        let rows: Vec<(String, String)> = on_pool!(&self.db, pool => {
            sqlx::query_as("SELECT client_id, status FROM installations WHERE organization_id = $1")
                .bind(organization_id.as_str())
                .fetch_all(pool)
                .await?
        });
        let active = rows
            .iter()
            .find(|(id, status)| status == "active" && client_id.is_none_or(|c| c == id));
        if let Some((active, _)) = active {
            return Ok(match self.credentials(organization_id, active).await? {
                Some(credentials) => Installed::Active(credentials),
                // An active installation always holds its secret; without it nothing is usable.
                None => Installed::Uninstalled,
            });
        }
        let known = rows.iter().any(|(id, _)| client_id.is_none_or(|c| c == id));
        Ok(if known {
            Installed::Uninstalled
        } else {
            Installed::Unknown
        })
    }

    /// Takes the oldest due purge for `lease` (no other instance takes it meanwhile); `None`
    /// when none is due or another instance just took it.
    pub async fn lease_purge(
        &self,
        now: SystemTime,
        lease: Duration,
    ) -> Result<Option<PurgeTask>, InstallationError> {
        let now_unix = to_unix(now);
        let until = to_unix(now + lease);
        // A compare-and-set: the row is taken only if still free when updated, so two instances
        // that picked the same row take it once (PostgreSQL re-checks the condition on the
        // locked row; SQLite has one writer).
        let row: Option<(String, String, i64, Option<String>)> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "UPDATE installation_purges SET leased_until = $1, attempts = attempts + 1 \
                 WHERE (organization_id, client_id) = (\
                   SELECT organization_id, client_id FROM installation_purges \
                   WHERE completed_at IS NULL AND due_at <= $2 \
                   AND (leased_until IS NULL OR leased_until <= $2) \
                   ORDER BY due_at LIMIT 1) \
                 AND completed_at IS NULL AND (leased_until IS NULL OR leased_until <= $2) \
                 RETURNING organization_id, client_id, attempts, revocation",
            )
            .bind(until)
            .bind(now_unix)
            .fetch_optional(pool)
            .await?
        });
        Ok(
            row.and_then(|(organization_id, client_id, attempt, revocation)| {
                Some(PurgeTask {
                    organization_id: OrganizationId::parse(&organization_id)?,
                    client_id,
                    attempt,
                    revocation,
                })
            }),
        )
    }

    /// The credentials a purge revokes with (the tombstone's, until the purge completes).
    pub async fn purge_credentials(
        &self,
        task: &PurgeTask,
    ) -> Result<Option<InstalledCredentials>, InstallationError> {
        self.credentials(&task.organization_id, &task.client_id)
            .await
    }

    /// Records what the purge's one revocation came to: it is not made again.
    pub async fn record_revocation(
        &self,
        task: &PurgeTask,
        outcome: &str,
    ) -> Result<(), InstallationError> {
        on_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE installation_purges SET revocation = $1 \
                 WHERE organization_id = $2 AND client_id = $3",
            )
            .bind(outcome)
            .bind(task.organization_id.as_str())
            .bind(&task.client_id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Ends a purge: the sealed secret is erased (the tombstone keeps ids and times only).
    pub async fn complete_purge(
        &self,
        task: &PurgeTask,
        now: SystemTime,
    ) -> Result<(), InstallationError> {
        on_pool!(&self.db, pool => {
            let mut transaction = pool.begin().await?;
            sqlx::query(
                "UPDATE installations SET client_secret = NULL, key_id = NULL \
                 WHERE organization_id = $1 AND client_id = $2 AND status = 'uninstalled'",
            )
            .bind(task.organization_id.as_str())
            .bind(&task.client_id)
            .execute(&mut *transaction)
            .await?;
            sqlx::query(
                "UPDATE installation_purges SET completed_at = $1, leased_until = NULL, \
                 last_error = NULL WHERE organization_id = $2 AND client_id = $3",
            )
            .bind(to_unix(now))
            .bind(task.organization_id.as_str())
            .bind(&task.client_id)
            .execute(&mut *transaction)
            .await?;
            transaction.commit().await?;
        });
        Ok(())
    }

    /// A purge attempt failed (its database work): tried again at `retry_at`.
    pub async fn postpone_purge(
        &self,
        task: &PurgeTask,
        error: &str,
        retry_at: SystemTime,
    ) -> Result<(), InstallationError> {
        on_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE installation_purges SET last_error = $1, due_at = $2, leased_until = NULL \
                 WHERE organization_id = $3 AND client_id = $4",
            )
            .bind(error)
            .bind(to_unix(retry_at))
            .bind(task.organization_id.as_str())
            .bind(&task.client_id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }
}

fn lookup_error(error: InstallationError) -> ClientLookupError {
    ClientLookupError(Box::new(error))
}

#[async_trait::async_trait]
impl InstalledClients for InstallationStore {
    async fn for_organization(
        &self,
        organization_id: &OrganizationId,
    ) -> Result<Installed, ClientLookupError> {
        self.standing(organization_id, None)
            .await
            .map_err(lookup_error)
    }

    async fn for_client(
        &self,
        organization_id: &OrganizationId,
        client_id: &str,
    ) -> Result<Installed, ClientLookupError> {
        self.standing(organization_id, Some(client_id))
            .await
            .map_err(lookup_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::installations::lifecycle::histories::{arrival, history, step};
    use crate::server::installations::payload;
    use crate::server::platform::config::{DatabaseUrl, SessionSecret, VaultKeys};
    use proptest::prelude::*;

    async fn store() -> InstallationStore {
        let db =
            crate::server::platform::db::connect(&DatabaseUrl::parse("sqlite::memory:").unwrap())
                .await
                .unwrap();
        let keyring = VaultKeys::default().keyring(&SessionSecret::parse("s".repeat(40)).unwrap());
        InstallationStore::new(db, Arc::new(keyring))
    }

    fn body(client: &str, is_install: bool, named: Option<&str>, at: Option<i64>) -> Vec<u8> {
        let mut data = serde_json::json!({ "organizationId": "org_acme" });
        if is_install {
            data["clientId"] = serde_json::json!(client);
            data["clientSecret"] = serde_json::json!(format!("secret-of-{client}-0123456789"));
        } else if let Some(named) = named {
            data["clientId"] = serde_json::json!(named);
        }
        let event_type = if is_install {
            "app.installed"
        } else {
            "app.uninstalled"
        };
        let mut event = serde_json::json!({ "type": event_type, "data": data });
        if let Some(at) = at {
            event["timestamp"] = serde_json::json!(qentrah_dev_workspace::marketplace::iso8601(
                u64::try_from(1_800_000_000 + at).unwrap_or_default()
            ));
        }
        event.to_string().into_bytes()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// The property test of `lifecycle`, through the database: deliveries of up to three
        /// installations in any order, each arriving once or twice under its id (a retry) and
        /// some again under a new id (a replay). At most one installation is active, a
        /// tombstone never comes back, a retry changes nothing, and with event times the app
        /// ends where the Workspace did; what it holds opens for the active one only.
        #[test]
        fn any_interleaving_keeps_the_rules_in_the_database(
            steps in proptest::collection::vec(step(), 1..8),
            order in proptest::collection::vec(any::<proptest::sample::Index>(), 0..20),
            replays in proptest::collection::vec(any::<proptest::sample::Index>(), 0..5),
            retried in proptest::collection::vec(any::<bool>(), 20),
            timed in any::<bool>(),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let store = store().await;
                let now = std::time::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
                let (deliveries, workspace_active) = history(&steps);
                let mut ever_tombstoned: Vec<String> = Vec::new();
                for (n, &i) in arrival(deliveries.len(), &order, &replays).iter().enumerate() {
                    let (client, is_install, named, time) = &deliveries[i];
                    let event = payload::parse(&body(client, *is_install, named.as_deref(), timed.then_some(*time))).unwrap();
                    let id = format!("msg_{n}");
                    store.receive(&id, &event, now).await.unwrap();
                    let after = store.list().await.unwrap();
                    if retried[n % retried.len()] {
                        let receipt = store.receive(&id, &event, now).await.unwrap();
                        prop_assert_eq!(receipt, Receipt { applied: false, reason: Reason::Duplicate });
                        prop_assert_eq!(&store.list().await.unwrap(), &after, "a retry changed something");
                    }
                    let actives: Vec<&InstallationRow> = after.iter().filter(|r| r.status == "active").collect();
                    prop_assert!(actives.len() <= 1, "{:?}", after);
                    for row in &after {
                        if row.status == "active" {
                            prop_assert!(!ever_tombstoned.contains(&row.client_id), "{:?} came back", row);
                        } else if !ever_tombstoned.contains(&row.client_id) {
                            ever_tombstoned.push(row.client_id.clone());
                        }
                    }
                }
                let organization = OrganizationId::parse("org_acme").unwrap();
                let app_active = match store.for_organization(&organization).await.unwrap() {
                    Installed::Active(credentials) => {
                        prop_assert_eq!(
                            secrecy::ExposeSecret::expose_secret(&credentials.client_secret),
                            format!("secret-of-{}-0123456789", credentials.client_id)
                        );
                        Some(credentials.client_id)
                    }
                    Installed::Uninstalled | Installed::Unknown => None,
                };
                if timed {
                    prop_assert_eq!(app_active, workspace_active, "{:?}", steps);
                }
                Ok(())
            })?;
        }
    }

    /// Two instances asking for due purges at once: one takes it, and it is not handed out
    /// again until its lease lapses or it is postponed.
    #[tokio::test]
    async fn a_purge_is_leased_to_one_taker_at_a_time() {
        let store = store().await;
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
        let install = payload::parse(&body("app_1", true, None, None)).unwrap();
        let uninstall = payload::parse(&body("", false, Some("app_1"), None)).unwrap();
        store.receive("msg_1", &install, now).await.unwrap();
        store.receive("msg_2", &uninstall, now).await.unwrap();

        let lease = Duration::from_secs(120);
        let (a, b) = tokio::join!(store.lease_purge(now, lease), store.lease_purge(now, lease));
        let taken: Vec<PurgeTask> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
        assert_eq!(taken.len(), 1, "{taken:?}");
        let task = &taken[0];
        assert_eq!((task.client_id.as_str(), task.attempt), ("app_1", 1));
        assert!(
            store.purge_credentials(task).await.unwrap().is_some(),
            "revocable until purged"
        );
        assert!(store
            .lease_purge(now + Duration::from_secs(60), lease)
            .await
            .unwrap()
            .is_none());
        // A taker that died: after the lease, another takes it (attempt 2).
        let again = store
            .lease_purge(now + lease, lease)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(again.attempt, 2);
        store
            .postpone_purge(&again, "database", now + Duration::from_secs(500))
            .await
            .unwrap();
        assert!(store
            .lease_purge(now + lease, lease)
            .await
            .unwrap()
            .is_none());
        let later = now + Duration::from_secs(500);
        let third = store.lease_purge(later, lease).await.unwrap().unwrap();
        store.complete_purge(&third, later).await.unwrap();
        assert!(store
            .lease_purge(later + lease * 2, lease)
            .await
            .unwrap()
            .is_none());
        assert!(
            store.purge_credentials(&third).await.unwrap().is_none(),
            "the secret is erased"
        );
        let row = store.list().await.unwrap().remove(0);
        assert_eq!(
            (row.status.as_str(), row.holds_secret, row.purge_error),
            ("uninstalled", false, None)
        );
    }
}
