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
