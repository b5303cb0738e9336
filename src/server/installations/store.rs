//! Installations in the database. A delivery is applied in one transaction: its id recorded
//! (a known id is a duplicate and changes nothing), the organization's installations read
//! (under a per-organization lock on PostgreSQL; SQLite has one writer at a time), the
//! lifecycle judged, the writes made. The delivered client secret is sealed with the keyring,
//! bound to its installation.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::lifecycle::{self, Change, Fact, Known, Organization, Reason};
use super::payload::Event;
use crate::server::ids::OrganizationId;
use crate::server::platform::clock::to_unix;
use crate::server::platform::crypto::{CipherError, Keyring};
use crate::server::platform::db::{on_pool, Db};

/// How long a delivery id is remembered: longer than a sender's retry schedule (days).
pub const DELIVERY_ID_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum InstallationError {
    #[error("the installations database failed")]
    Database(#[from] sqlx::Error),
    #[error("the delivered client secret could not be sealed")]
    Cipher(#[from] CipherError),
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
            // Tombstones first: the one-active index holds at every statement.
            for change in &judgement.changes {
                match change {
                    Change::Tombstone(client_id) => {
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
            transaction.commit().await?;
            Ok(Receipt { applied: judgement.applied, reason: judgement.reason })
        })
    }

    /// Every installation, newest first: ids, status and times, never a secret.
    pub async fn list(&self) -> Result<Vec<InstallationRow>, InstallationError> {
        let query = "SELECT organization_id, client_id, installation_id, status, installed_at, \
                     uninstalled_at, (client_secret IS NOT NULL) AS holds_secret \
                     FROM installations \
                     ORDER BY COALESCE(uninstalled_at, installed_at, 0) DESC, organization_id, client_id";
        Ok(on_pool!(&self.db, pool => {
            sqlx::query_as::<_, InstallationRow>(query).fetch_all(pool).await?
        }))
    }
}
