//! Connections in the database. Token columns are bound as ciphertext bytes through explicit
//! sqlx parameters; no token type is ever serialized. Every query is written once for both
//! databases (see [`crate::server::platform::db`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{
    AccessToken, Connection, ConnectionInfo, ConnectionKey, ConnectionState, RefreshToken,
    TokenSet, VaultError,
};
#[cfg(test)]
use crate::server::ids::OrganizationId;
use crate::server::platform::clock::{from_unix, to_unix};
use crate::server::platform::crypto::{Keyring, Sealed};
use crate::server::platform::db::{on_pool, Db};

/// When a token response has no `expires_in`, assume the access token lives this long: short,
/// so the app refreshes early rather than sending a token the server has already dropped.
pub const ASSUMED_LIFETIME: Duration = Duration::from_secs(300);

/// The longest access-token lifetime believed. `expires_in` is whatever number the server sent
/// (up to `u64::MAX` seconds, which would overflow `SystemTime` and panic mid-refresh, after the
/// server had already rotated the refresh token); no access token should outlive a day anyway.
pub const MAX_BELIEVED_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// When an access token received at `now` stops being usable.
pub fn access_expiry(now: SystemTime, expires_in: Option<Duration>) -> SystemTime {
    let lifetime = expires_in
        .unwrap_or(ASSUMED_LIFETIME)
        .min(MAX_BELIEVED_LIFETIME);
    now.checked_add(lifetime).unwrap_or(now)
}

/// The columns every read of a connection takes.
const CONNECTION_COLUMNS: &str = "SELECT scopes, status, access_expires_at, connected_at, \
     refreshed_at, generation, grant_id, client_id, key_id, access_token, refresh_token \
     FROM connections \
     WHERE provider = $1 AND organization_id = $2 AND resource = $3";

/// A connection row as stored: sealed tokens, Unix seconds.
#[derive(sqlx::FromRow)]
struct ConnectionRow {
    scopes: String,
    status: String,
    access_expires_at: i64,
    connected_at: i64,
    refreshed_at: Option<i64>,
    generation: i64,
    grant_id: String,
    client_id: String,
    key_id: String,
    access_token: Vec<u8>,
    refresh_token: Option<Vec<u8>>,
}

impl ConnectionRow {
    fn info(&self, key: &ConnectionKey) -> ConnectionInfo {
        ConnectionInfo {
            key: key.clone(),
            scopes: self
                .scopes
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            state: ConnectionState::parse(&self.status),
            access_expires_at: from_unix(self.access_expires_at),
            connected_at: from_unix(self.connected_at),
            refreshed_at: self.refreshed_at.map(from_unix),
            has_refresh_token: self.refresh_token.is_some(),
            generation: self.generation,
            grant_id: self.grant_id.clone(),
            client_id: self.client_id.clone(),
        }
    }
}

/// Held while one refresh of a connection is in progress, from the re-read of its row to the
/// write of the refreshed tokens.
///
/// On PostgreSQL it is a transaction holding the row lock (`SELECT … FOR UPDATE`): every
/// instance's refresh of the same connection queues on it, and it dies with the instance that
/// holds it (the server rolls back when the connection drops). On SQLite, which one instance
/// owns, the token manager's in-process lock is enough and the lease holds nothing.
#[must_use = "release the lease, or the PostgreSQL row lock is held until the transaction ends"]
pub struct RefreshLease {
    transaction: Option<sqlx::Transaction<'static, sqlx::Postgres>>,
}

impl RefreshLease {
    /// Ends the lease, committing what was written under it.
    pub async fn release(self) -> Result<(), VaultError> {
        if let Some(transaction) = self.transaction {
            transaction.commit().await?;
        }
        Ok(())
    }
}

/// Runs `$body` with `$exec` bound to the lease's transaction if it has one, else to the pool.
macro_rules! under_lease {
    ($store:expr, $lease:expr, $exec:ident => $body:expr) => {
        match (&mut $lease.transaction, &$store.db) {
            (Some(transaction), _) => {
                let $exec = &mut **transaction;
                $body
            }
            (None, Db::Sqlite(pool)) => {
                let $exec = pool;
                $body
            }
            (None, Db::Postgres(pool)) => {
                let $exec = pool;
                $body
            }
        }
    };
}

/// PostgreSQL's `lock_not_available`: the wait for another refresh's lock ran out.
const LOCK_NOT_AVAILABLE: &str = "55P03";

/// A new row's first generation: random, so a connection deleted and made again does not
/// restart at a generation that a refresh of the old one still holds (and would write over).
fn first_generation() -> Result<i64, VaultError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes[3..]).map_err(|_| VaultError::Random)?;
    // 40 random bits: far from i64::MAX, however many refreshes follow.
    Ok(i64::from_be_bytes(bytes) + 1)
}

/// A new grant's id: 128 random bits, hex. Not secret (it only names the grant a session
/// completed), but unguessable, so no session can claim a grant it did not complete.
fn new_grant_id() -> Result<String, VaultError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| VaultError::Random)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Reads and writes sealed connections.
#[derive(Debug, Clone)]
pub struct ConnectionStore {
    db: Db,
    keyring: Arc<Keyring>,
    /// Rows read outside a lease since start (what a page costs the vault; see
    /// [`super::ConnectionAccess`]).
    reads: Arc<std::sync::atomic::AtomicU64>,
}

impl ConnectionStore {
    pub fn new(db: Db, keyring: Arc<Keyring>) -> Self {
        Self {
            db,
            keyring,
            reads: Arc::default(),
        }
    }

    /// How many rows were read outside a lease since start.
    pub fn reads(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    fn seal(&self, key: &ConnectionKey, field: &str, value: &str) -> Result<Sealed, VaultError> {
        Ok(self.keyring.seal(value.as_bytes(), &key.aad(field))?)
    }

    fn open(
        &self,
        key: &ConnectionKey,
        field: &str,
        key_id: &str,
        bytes: Vec<u8>,
    ) -> Result<String, VaultError> {
        let sealed = Sealed {
            key_id: key_id.to_owned(),
            bytes,
        };
        let plain = self.keyring.open(&sealed, &key.aad(field))?;
        String::from_utf8(plain).map_err(|_| VaultError::Encoding)
    }

    fn decrypt(&self, key: &ConnectionKey, row: ConnectionRow) -> Result<Connection, VaultError> {
        let info = row.info(key);
        let access_token =
            AccessToken::new(self.open(key, "access_token", &row.key_id, row.access_token)?);
        let refresh_token = row
            .refresh_token
            .map(|bytes| self.open(key, "refresh_token", &row.key_id, bytes))
            .transpose()?
            .map(RefreshToken::new);
        Ok(Connection {
            info,
            access_token,
            refresh_token,
        })
    }

    async fn row(&self, key: &ConnectionKey) -> Result<Option<ConnectionRow>, VaultError> {
        self.reads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(on_pool!(&self.db, pool => {
            sqlx::query_as::<_, ConnectionRow>(CONNECTION_COLUMNS)
                .bind(&key.provider)
                .bind(key.organization_id.as_str())
                .bind(&key.resource)
                .fetch_optional(pool)
                .await
        })?)
    }

    /// Stores a new connection (or replaces one), as after a completed authorization; returns
    /// the new grant's id, which the browser that completed it is bound to.
    pub async fn save_connected(
        &self,
        key: &ConnectionKey,
        tokens: &TokenSet,
        requested_scopes: &[String],
        now: SystemTime,
    ) -> Result<String, VaultError> {
        let mut no_lease = RefreshLease { transaction: None };
        self.save_connected_under(&mut no_lease, key, tokens, requested_scopes, now)
            .await
    }

    /// [`Self::save_connected`] under a lease (on PostgreSQL, in the transaction holding the
    /// row lock, which a write from another pooled connection would wait on).
    #[tracing::instrument(skip_all, fields(org = %key.organization_id))]
    pub async fn save_connected_under(
        &self,
        lease: &mut RefreshLease,
        key: &ConnectionKey,
        tokens: &TokenSet,
        requested_scopes: &[String],
        now: SystemTime,
    ) -> Result<String, VaultError> {
        let access = self.seal(key, "access_token", tokens.access_token.expose())?;
        let refresh = tokens
            .refresh_token
            .as_ref()
            .map(|t| self.seal(key, "refresh_token", t.expose()))
            .transpose()?;
        let expires_at = access_expiry(now, tokens.expires_in);
        let scopes = tokens
            .scopes
            .clone()
            .unwrap_or_else(|| requested_scopes.to_vec())
            .join(" ");
        let generation = first_generation()?;
        let grant_id = new_grant_id()?;
        under_lease!(self, lease, exec => {
            sqlx::query(
                "INSERT INTO connections (provider, organization_id, resource, key_id, \
                 access_token, refresh_token, access_expires_at, scopes, status, connected_at, \
                 refreshed_at, updated_at, generation, grant_id, client_id) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, NULL, $9, $10, $11, $12) \
                 ON CONFLICT (provider, organization_id, resource) DO UPDATE SET \
                 key_id = excluded.key_id, access_token = excluded.access_token, \
                 refresh_token = excluded.refresh_token, \
                 access_expires_at = excluded.access_expires_at, scopes = excluded.scopes, \
                 status = 'active', connected_at = excluded.connected_at, refreshed_at = NULL, \
                 updated_at = excluded.updated_at, generation = connections.generation + 1, \
                 grant_id = excluded.grant_id, client_id = excluded.client_id",
            )
            .bind(&key.provider)
            .bind(key.organization_id.as_str())
            .bind(&key.resource)
            .bind(&access.key_id)
            .bind(&access.bytes)
            .bind(refresh.as_ref().map(|r| r.bytes.clone()))
            .bind(to_unix(expires_at))
            .bind(scopes)
            .bind(to_unix(now))
            .bind(generation)
            .bind(&grant_id)
            .bind(&tokens.client_id)
            .execute(exec)
            .await
            .map(drop)
        })?;
        Ok(grant_id)
    }

    /// Takes the lease for refreshing this connection and reads the row under it: whoever held
    /// the lease before may have refreshed already, in this instance or another.
    ///
    /// The wait is bounded by `bound` (PostgreSQL's `lock_timeout`): past it the caller gets
    /// [`VaultError::Busy`] and the person a retryable page. The holder is bounded too: a
    /// session idle in its transaction for longer (a hung instance) is ended by the server
    /// (`idle_in_transaction_session_timeout`), which frees the lock for the others.
    #[tracing::instrument(skip_all, fields(org = %key.organization_id))]
    pub async fn lease_for_refresh(
        &self,
        key: &ConnectionKey,
        bound: Duration,
    ) -> Result<(RefreshLease, Option<Connection>), VaultError> {
        let (lease, row) = self.lease_row(key, bound).await?;
        let connection = row.map(|row| self.decrypt(key, row)).transpose()?;
        Ok((lease, connection))
    }

    /// The lease and the row under it, for replacing or deleting the row: its facts always, its
    /// tokens only if they can be decrypted (`None` for a row whose key was removed or whose
    /// ciphertext was tampered with, which is then replaced or deleted unrevoked).
    pub async fn lease_for_replacing(
        &self,
        key: &ConnectionKey,
        bound: Duration,
    ) -> Result<(RefreshLease, Option<(ConnectionInfo, Option<Connection>)>), VaultError> {
        let (lease, row) = self.lease_row(key, bound).await?;
        let row = row.map(|row| {
            let info = row.info(key);
            (info, self.decrypt(key, row).ok())
        });
        Ok((lease, row))
    }

    /// The lease alone, for a write that needs nothing of the row but its generation.
    pub async fn lease_without_reading(
        &self,
        key: &ConnectionKey,
        bound: Duration,
    ) -> Result<(RefreshLease, Option<Connection>), VaultError> {
        let (lease, _) = self.lease_row(key, bound).await?;
        Ok((lease, None))
    }

    async fn lease_row(
        &self,
        key: &ConnectionKey,
        bound: Duration,
    ) -> Result<(RefreshLease, Option<ConnectionRow>), VaultError> {
        let pool = match &self.db {
            Db::Sqlite(_) => {
                let row = self.row(key).await?;
                return Ok((RefreshLease { transaction: None }, row));
            }
            Db::Postgres(pool) => pool,
        };
        let mut transaction = pool.begin().await?;
        let bound = format!("{}ms", bound.as_millis().max(1));
        sqlx::query(
            "SELECT set_config('lock_timeout', $1, true), \
             set_config('idle_in_transaction_session_timeout', $1, true)",
        )
        .bind(&bound)
        .execute(&mut *transaction)
        .await?;
        let row = sqlx::query_as::<_, ConnectionRow>(&format!("{CONNECTION_COLUMNS} FOR UPDATE"))
            .bind(&key.provider)
            .bind(key.organization_id.as_str())
            .bind(&key.resource)
            .fetch_optional(&mut *transaction)
            .await
            .map_err(|error| match &error {
                sqlx::Error::Database(db) if db.code().as_deref() == Some(LOCK_NOT_AVAILABLE) => {
                    VaultError::Busy
                }
                _ => VaultError::Database(error),
            })?;
        Ok((
            RefreshLease {
                transaction: Some(transaction),
            },
            row,
        ))
    }

    /// Stores the result of a refresh, if the row is still the one the refresh started from
    /// (`seen_generation`); returns the new generation, or `None` when the connection was
    /// replaced or deleted meanwhile (its new tokens win). The rotated refresh token is written
    /// here, before the new access token is ever used (RFC 9700 §4.14.2); without a new one,
    /// the old one is kept. Every field is re-sealed with the current key.
    #[tracing::instrument(skip_all, fields(org = %key.organization_id))]
    pub async fn save_refreshed(
        &self,
        lease: &mut RefreshLease,
        key: &ConnectionKey,
        seen_generation: i64,
        previous_refresh: Option<&RefreshToken>,
        tokens: &TokenSet,
        now: SystemTime,
    ) -> Result<Option<i64>, VaultError> {
        let access = self.seal(key, "access_token", tokens.access_token.expose())?;
        let refresh_plain = tokens.refresh_token.as_ref().or(previous_refresh);
        let refresh = refresh_plain
            .map(|t| self.seal(key, "refresh_token", t.expose()))
            .transpose()?;
        let expires_at = access_expiry(now, tokens.expires_in);
        let scopes = tokens.scopes.as_ref().map(|scopes| scopes.join(" "));
        let generation: Option<(i64,)> = under_lease!(self, lease, exec => {
            sqlx::query_as(
                "UPDATE connections SET key_id = $1, access_token = $2, refresh_token = $3, \
                 access_expires_at = $4, refreshed_at = $5, updated_at = $5, \
                 status = 'active', scopes = COALESCE($6, scopes), generation = generation + 1 \
                 WHERE provider = $7 AND organization_id = $8 AND resource = $9 \
                 AND generation = $10 RETURNING generation",
            )
            .bind(&access.key_id)
            .bind(&access.bytes)
            .bind(refresh.as_ref().map(|r| r.bytes.clone()))
            .bind(to_unix(expires_at))
            .bind(to_unix(now))
            .bind(scopes)
            .bind(&key.provider)
            .bind(key.organization_id.as_str())
            .bind(&key.resource)
            .bind(seen_generation)
            .fetch_optional(exec)
            .await
        })?;
        Ok(generation.map(|(generation,)| generation))
    }

    /// The connection's facts, without decrypting anything.
    pub async fn info(&self, key: &ConnectionKey) -> Result<Option<ConnectionInfo>, VaultError> {
        Ok(self.row(key).await?.map(|row| row.info(key)))
    }

    /// The connection's facts and its access token: what a request needs. The refresh token
    /// stays sealed; it is decrypted only under a refresh lease or to revoke it, so its
    /// plaintext is in memory only while it is used.
    pub async fn access(
        &self,
        key: &ConnectionKey,
    ) -> Result<Option<(ConnectionInfo, AccessToken)>, VaultError> {
        let Some(row) = self.row(key).await? else {
            return Ok(None);
        };
        let info = row.info(key);
        let token = self.open(key, "access_token", &row.key_id, row.access_token)?;
        Ok(Some((info, AccessToken::new(token))))
    }

    /// The connection with its tokens decrypted.
    #[tracing::instrument(skip_all, fields(org = %key.organization_id))]
    pub async fn load(&self, key: &ConnectionKey) -> Result<Option<Connection>, VaultError> {
        self.row(key)
            .await?
            .map(|row| self.decrypt(key, row))
            .transpose()
    }

    /// Marks a connection as needing a new authorization (its refresh token was refused) and
    /// drops the tokens that no longer work, if the row is still the one the refresh started
    /// from; returns false when it was replaced meanwhile (then the new tokens stand).
    pub async fn mark_reconnect_required(
        &self,
        lease: &mut RefreshLease,
        key: &ConnectionKey,
        seen_generation: i64,
        now: SystemTime,
    ) -> Result<bool, VaultError> {
        self.mark_ended(lease, key, seen_generation, "reconnect_required", now)
            .await
    }

    /// Marks a connection whose client the Workspace deleted (the app was uninstalled), the
    /// same way: its tokens dropped, if the row is still the one the refresh started from.
    pub async fn mark_uninstalled(
        &self,
        lease: &mut RefreshLease,
        key: &ConnectionKey,
        seen_generation: i64,
        now: SystemTime,
    ) -> Result<bool, VaultError> {
        self.mark_ended(lease, key, seen_generation, "uninstalled", now)
            .await
    }

    async fn mark_ended(
        &self,
        lease: &mut RefreshLease,
        key: &ConnectionKey,
        seen_generation: i64,
        status: &'static str,
        now: SystemTime,
    ) -> Result<bool, VaultError> {
        let result = under_lease!(self, lease, exec => {
            sqlx::query(
                "UPDATE connections SET status = $6, refresh_token = NULL, \
                 access_expires_at = 0, updated_at = $1, generation = generation + 1 \
                 WHERE provider = $2 AND organization_id = $3 AND resource = $4 \
                 AND generation = $5",
            )
            .bind(to_unix(now))
            .bind(&key.provider)
            .bind(key.organization_id.as_str())
            .bind(&key.resource)
            .bind(seen_generation)
            .bind(status)
            .execute(exec)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(result > 0)
    }

    /// Removes a connection and its tokens.
    pub async fn delete(&self, key: &ConnectionKey) -> Result<bool, VaultError> {
        self.delete_under(&mut RefreshLease { transaction: None }, key)
            .await
    }

    /// [`Self::delete`] under a lease.
    pub async fn delete_under(
        &self,
        lease: &mut RefreshLease,
        key: &ConnectionKey,
    ) -> Result<bool, VaultError> {
        let deleted = under_lease!(self, lease, exec => {
            sqlx::query(
                "DELETE FROM connections \
                 WHERE provider = $1 AND organization_id = $2 AND resource = $3",
            )
            .bind(&key.provider)
            .bind(key.organization_id.as_str())
            .bind(&key.resource)
            .execute(exec)
            .await
            .map(|done| done.rows_affected())
        })?;
        Ok(deleted > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::connections::CipherError;
    use crate::server::ids::ProviderId;
    use crate::server::platform::config::{DatabaseUrl, SessionSecret, VaultKeys};
    use crate::server::platform::crypto::KeyMaterial;
    use std::time::UNIX_EPOCH;

    #[test]
    fn an_absurd_expires_in_is_capped_not_a_panic() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let hour = Duration::from_secs(3600);
        assert_eq!(access_expiry(now, Some(hour)), now + hour);
        assert_eq!(access_expiry(now, None), now + ASSUMED_LIFETIME);
        assert_eq!(
            access_expiry(now, Some(Duration::from_secs(u64::MAX))),
            now + MAX_BELIEVED_LIFETIME
        );
    }

    async fn store_with(keys: VaultKeys, db: Db) -> ConnectionStore {
        let secret = SessionSecret::parse("s".repeat(40)).unwrap();
        ConnectionStore::new(db, Arc::new(keys.keyring(&secret)))
    }

    fn sqlite(db: &Db) -> &sqlx::SqlitePool {
        match db {
            Db::Sqlite(pool) => pool,
            Db::Postgres(_) => panic!("these tests run on SQLite"),
        }
    }

    async fn memory_db() -> Db {
        crate::server::platform::db::connect(&DatabaseUrl::parse("sqlite::memory:").unwrap())
            .await
            .unwrap()
    }

    fn tokens(access: &str, refresh: Option<&str>) -> TokenSet {
        TokenSet {
            access_token: AccessToken::new(access.to_owned()),
            refresh_token: refresh.map(|r| RefreshToken::new(r.to_owned())),
            expires_in: Some(Duration::from_secs(3600)),
            scopes: None,
            client_id: "partners_client".to_owned(),
            organization_id: OrganizationId::parse("org_a"),
        }
    }

    /// A store on a fresh in-memory database with the key derived from the session secret.
    async fn default_store() -> (ConnectionStore, Db) {
        let db = memory_db().await;
        let store = store_with(
            VaultKeys {
                current: None,
                previous: vec![],
            },
            db.clone(),
        )
        .await;
        (store, db)
    }

    fn key(org: &str) -> ConnectionKey {
        ConnectionKey::new(
            &ProviderId::qentrah(),
            &OrganizationId::parse(org).unwrap(),
            "http://ws/api/v1/partner",
        )
    }

    #[tokio::test]
    async fn round_trip_keeps_no_plaintext_in_the_row() {
        let (store, db) = default_store().await;
        let now = from_unix(1_800_000_000);
        store
            .save_connected(
                &key("org_a"),
                &tokens("qat_plain_a", Some("qrt_plain_a")),
                &["client:read".into()],
                now,
            )
            .await
            .unwrap();
        let conn = store.load(&key("org_a")).await.unwrap().unwrap();
        assert_eq!(conn.access_token.expose(), "qat_plain_a");
        let (info, access) = store.access(&key("org_a")).await.unwrap().unwrap();
        assert_eq!((info, access.expose()), (conn.info.clone(), "qat_plain_a"));
        assert_eq!(conn.refresh_token.unwrap().expose(), "qrt_plain_a");
        assert_eq!(conn.info.scopes, vec!["client:read".to_owned()]);
        assert_eq!(conn.info.access_expires_at, now + Duration::from_secs(3600));

        let (access, refresh): (Vec<u8>, Vec<u8>) =
            sqlx::query_as("SELECT access_token, refresh_token FROM connections")
                .fetch_one(sqlite(&db))
                .await
                .unwrap();
        for bytes in [access, refresh] {
            assert!(!String::from_utf8_lossy(&bytes).contains("plain"));
        }
    }

    #[tokio::test]
    async fn ciphertext_moved_to_another_row_fails_to_decrypt() {
        let (store, db) = default_store().await;
        let now = from_unix(1_800_000_000);
        store
            .save_connected(&key("org_a"), &tokens("qat_a", None), &[], now)
            .await
            .unwrap();
        store
            .save_connected(&key("org_b"), &tokens("qat_b", None), &[], now)
            .await
            .unwrap();
        sqlx::query(
            "UPDATE connections SET access_token = (SELECT access_token FROM connections WHERE organization_id = 'org_a') WHERE organization_id = 'org_b'",
        )
        .execute(sqlite(&db))
        .await
        .unwrap();
        assert!(matches!(
            store.load(&key("org_b")).await,
            Err(VaultError::Cipher(CipherError::Decrypt))
        ));
    }

    #[tokio::test]
    async fn rotation_reads_old_rows_and_rewrites_them_with_the_new_key() {
        let db = memory_db().await;
        let old = store_with(
            VaultKeys {
                current: Some(KeyMaterial::from_bytes([1; 32])),
                previous: vec![],
            },
            db.clone(),
        )
        .await;
        let now = from_unix(1_800_000_000);
        old.save_connected(&key("org_a"), &tokens("qat_1", Some("qrt_1")), &[], now)
            .await
            .unwrap();

        let new = store_with(
            VaultKeys {
                current: Some(KeyMaterial::from_bytes([2; 32])),
                previous: vec![KeyMaterial::from_bytes([1; 32])],
            },
            db.clone(),
        )
        .await;
        let (mut lease, conn) = new
            .lease_for_refresh(&key("org_a"), Duration::from_secs(1))
            .await
            .unwrap();
        let conn = conn.unwrap();
        assert_eq!(conn.access_token.expose(), "qat_1");
        let stored = new
            .save_refreshed(
                &mut lease,
                &key("org_a"),
                conn.info.generation,
                conn.refresh_token.as_ref(),
                &tokens("qat_2", None),
                now,
            )
            .await
            .unwrap();
        lease.release().await.unwrap();
        assert_eq!(stored, Some(conn.info.generation + 1));
        let key_id: (String,) = sqlx::query_as("SELECT key_id FROM connections")
            .fetch_one(sqlite(&db))
            .await
            .unwrap();
        assert_eq!(key_id.0, new.keyring().current_key_id());
        let conn = new.load(&key("org_a")).await.unwrap().unwrap();
        assert_eq!(conn.access_token.expose(), "qat_2");
        assert_eq!(
            conn.refresh_token.unwrap().expose(),
            "qrt_1",
            "old refresh token kept"
        );
    }

    #[tokio::test]
    async fn reconnect_required_drops_tokens_and_delete_removes_the_row() {
        let (store, _db) = default_store().await;
        let now = from_unix(1_800_000_000);
        store
            .save_connected(&key("org_a"), &tokens("qat", Some("qrt")), &[], now)
            .await
            .unwrap();
        let generation = store.info(&key("org_a")).await.unwrap().unwrap().generation;
        let (mut lease, _) = store
            .lease_for_refresh(&key("org_a"), Duration::from_secs(1))
            .await
            .unwrap();
        assert!(store
            .mark_reconnect_required(&mut lease, &key("org_a"), generation, now)
            .await
            .unwrap());
        lease.release().await.unwrap();
        let info = store.info(&key("org_a")).await.unwrap().unwrap();
        assert_eq!(info.state, ConnectionState::ReconnectRequired);
        assert!(!info.has_refresh_token);
        assert!(store.delete(&key("org_a")).await.unwrap());
        assert!(store.info(&key("org_a")).await.unwrap().is_none());
    }

    /// A refresh that started before the connection was authorized again (or deleted and made
    /// again) must not write the old grant's tokens over the new ones, nor mark the new
    /// connection dead when the old refresh token is refused.
    #[tokio::test]
    async fn a_refresh_of_a_replaced_connection_writes_nothing() {
        let (store, _db) = default_store().await;
        let now = from_unix(1_800_000_000);
        let org = key("org_a");
        store
            .save_connected(&org, &tokens("qat_old", Some("qrt_old")), &[], now)
            .await
            .unwrap();
        let (mut lease, seen) = store
            .lease_for_refresh(&org, Duration::from_secs(1))
            .await
            .unwrap();
        let seen = seen.unwrap().info.generation;

        // Meanwhile: disconnected, then connected again.
        assert!(store.delete(&org).await.unwrap());
        store
            .save_connected(&org, &tokens("qat_new", Some("qrt_new")), &[], now)
            .await
            .unwrap();
        assert_ne!(
            store.info(&org).await.unwrap().unwrap().generation,
            seen,
            "a new row starts at a new generation"
        );

        let stored = store
            .save_refreshed(
                &mut lease,
                &org,
                seen,
                None,
                &tokens("qat_stale", None),
                now,
            )
            .await
            .unwrap();
        assert_eq!(stored, None);
        assert!(!store
            .mark_reconnect_required(&mut lease, &org, seen, now)
            .await
            .unwrap());
        lease.release().await.unwrap();
        let current = store.load(&org).await.unwrap().unwrap();
        assert_eq!(current.access_token.expose(), "qat_new");
        assert_eq!(current.info.state, ConnectionState::Active);
    }
}
