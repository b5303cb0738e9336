//! Connections in the database. Token columns are bound as ciphertext bytes through explicit
//! sqlx parameters; no token type is ever serialized.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Row;

use super::cipher::{Keyring, Sealed};
use super::{
    AccessToken, Connection, ConnectionInfo, ConnectionKey, ConnectionState, RefreshToken,
    TokenSet, VaultError,
};
use crate::server::db::Db;

/// When a token response has no `expires_in`, assume the access token lives this long: short,
/// so the app refreshes early rather than sending a token the server has already dropped.
pub const ASSUMED_LIFETIME: Duration = Duration::from_secs(300);

pub fn to_unix(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub fn from_unix(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// Reads and writes sealed connections.
#[derive(Debug, Clone)]
pub struct ConnectionStore {
    db: Db,
    keyring: Arc<Keyring>,
}

impl ConnectionStore {
    pub fn new(db: Db, keyring: Arc<Keyring>) -> Self {
        Self { db, keyring }
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

    /// Stores a new connection (or replaces one), as after a completed authorization.
    #[tracing::instrument(skip_all, fields(org = %key.organization_id))]
    pub async fn save_connected(
        &self,
        key: &ConnectionKey,
        tokens: &TokenSet,
        requested_scopes: &[String],
        now: SystemTime,
    ) -> Result<(), VaultError> {
        let access = self.seal(key, "access_token", tokens.access_token.expose())?;
        let refresh = tokens
            .refresh_token
            .as_ref()
            .map(|t| self.seal(key, "refresh_token", t.expose()))
            .transpose()?;
        let expires_at = now + tokens.expires_in.unwrap_or(ASSUMED_LIFETIME);
        let scopes = tokens
            .scopes
            .clone()
            .unwrap_or_else(|| requested_scopes.to_vec())
            .join(" ");
        sqlx::query(
            "INSERT INTO connections (provider, organization_id, resource, key_id, access_token, \
             refresh_token, access_expires_at, scopes, status, connected_at, refreshed_at, \
             updated_at, generation) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active', ?, NULL, ?, 1) \
             ON CONFLICT (provider, organization_id, resource) DO UPDATE SET \
             key_id = excluded.key_id, access_token = excluded.access_token, \
             refresh_token = excluded.refresh_token, access_expires_at = excluded.access_expires_at, \
             scopes = excluded.scopes, status = 'active', connected_at = excluded.connected_at, \
             refreshed_at = NULL, updated_at = excluded.updated_at, \
             generation = connections.generation + 1",
        )
        .bind(&key.provider)
        .bind(&key.organization_id)
        .bind(&key.resource)
        .bind(&access.key_id)
        .bind(&access.bytes)
        .bind(refresh.as_ref().map(|r| r.bytes.clone()))
        .bind(to_unix(expires_at))
        .bind(scopes)
        .bind(to_unix(now))
        .bind(to_unix(now))
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Stores the result of a refresh. The rotated refresh token is written here, before the new
    /// access token is ever used (RFC 9700 §4.14.2); without a new one, the old one is kept.
    /// Every field is re-sealed with the current key.
    #[tracing::instrument(skip_all, fields(org = %key.organization_id))]
    pub async fn save_refreshed(
        &self,
        key: &ConnectionKey,
        previous_refresh: Option<&RefreshToken>,
        tokens: &TokenSet,
        now: SystemTime,
    ) -> Result<(), VaultError> {
        let access = self.seal(key, "access_token", tokens.access_token.expose())?;
        let refresh_plain = tokens.refresh_token.as_ref().or(previous_refresh);
        let refresh = refresh_plain
            .map(|t| self.seal(key, "refresh_token", t.expose()))
            .transpose()?;
        let expires_at = now + tokens.expires_in.unwrap_or(ASSUMED_LIFETIME);
        let mut query = String::from(
            "UPDATE connections SET key_id = ?, access_token = ?, refresh_token = ?, \
             access_expires_at = ?, refreshed_at = ?, updated_at = ?, status = 'active', \
             generation = generation + 1",
        );
        if tokens.scopes.is_some() {
            query.push_str(", scopes = ?");
        }
        query.push_str(" WHERE provider = ? AND organization_id = ? AND resource = ?");
        let mut q = sqlx::query(&query)
            .bind(&access.key_id)
            .bind(&access.bytes)
            .bind(refresh.as_ref().map(|r| r.bytes.clone()))
            .bind(to_unix(expires_at))
            .bind(to_unix(now))
            .bind(to_unix(now));
        if let Some(scopes) = &tokens.scopes {
            q = q.bind(scopes.join(" "));
        }
        q.bind(&key.provider)
            .bind(&key.organization_id)
            .bind(&key.resource)
            .execute(&self.db)
            .await?;
        Ok(())
    }

    /// The connection's facts, without decrypting anything.
    pub async fn info(&self, key: &ConnectionKey) -> Result<Option<ConnectionInfo>, VaultError> {
        let row = sqlx::query(
            "SELECT scopes, status, access_expires_at, connected_at, refreshed_at, \
             refresh_token IS NOT NULL AS has_refresh, generation FROM connections \
             WHERE provider = ? AND organization_id = ? AND resource = ?",
        )
        .bind(&key.provider)
        .bind(&key.organization_id)
        .bind(&key.resource)
        .fetch_optional(&self.db)
        .await?;
        row.map(|row| info_from_row(key, &row)).transpose()
    }

    /// The connection with its tokens decrypted.
    #[tracing::instrument(skip_all, fields(org = %key.organization_id))]
    pub async fn load(&self, key: &ConnectionKey) -> Result<Option<Connection>, VaultError> {
        let row = sqlx::query(
            "SELECT scopes, status, access_expires_at, connected_at, refreshed_at, \
             refresh_token IS NOT NULL AS has_refresh, generation, key_id, access_token, \
             refresh_token FROM connections \
             WHERE provider = ? AND organization_id = ? AND resource = ?",
        )
        .bind(&key.provider)
        .bind(&key.organization_id)
        .bind(&key.resource)
        .fetch_optional(&self.db)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let info = info_from_row(key, &row)?;
        let key_id: String = row.try_get("key_id")?;
        let access: Vec<u8> = row.try_get("access_token")?;
        let refresh: Option<Vec<u8>> = row.try_get("refresh_token")?;
        let access_token = AccessToken::new(self.open(key, "access_token", &key_id, access)?);
        let refresh_token = refresh
            .map(|bytes| self.open(key, "refresh_token", &key_id, bytes))
            .transpose()?
            .map(RefreshToken::new);
        Ok(Some(Connection {
            info,
            access_token,
            refresh_token,
        }))
    }

    /// Marks a connection as needing a new authorization (its refresh token was refused), and
    /// drops the tokens that no longer work.
    pub async fn mark_reconnect_required(
        &self,
        key: &ConnectionKey,
        now: SystemTime,
    ) -> Result<(), VaultError> {
        sqlx::query(
            "UPDATE connections SET status = 'reconnect_required', refresh_token = NULL, \
             access_expires_at = 0, updated_at = ?, generation = generation + 1 \
             WHERE provider = ? AND organization_id = ? AND resource = ?",
        )
        .bind(to_unix(now))
        .bind(&key.provider)
        .bind(&key.organization_id)
        .bind(&key.resource)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Removes a connection and its tokens.
    pub async fn delete(&self, key: &ConnectionKey) -> Result<bool, VaultError> {
        let result = sqlx::query(
            "DELETE FROM connections WHERE provider = ? AND organization_id = ? AND resource = ?",
        )
        .bind(&key.provider)
        .bind(&key.organization_id)
        .bind(&key.resource)
        .execute(&self.db)
        .await?;
        Ok(result.rows_affected() > 0)
    }
}

fn info_from_row(
    key: &ConnectionKey,
    row: &sqlx::sqlite::SqliteRow,
) -> Result<ConnectionInfo, VaultError> {
    let scopes: String = row.try_get("scopes")?;
    let status: String = row.try_get("status")?;
    let refreshed_at: Option<i64> = row.try_get("refreshed_at")?;
    Ok(ConnectionInfo {
        key: key.clone(),
        scopes: scopes
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        state: ConnectionState::parse(&status),
        access_expires_at: from_unix(row.try_get("access_expires_at")?),
        connected_at: from_unix(row.try_get("connected_at")?),
        refreshed_at: refreshed_at.map(from_unix),
        has_refresh_token: row.try_get("has_refresh")?,
        generation: row.try_get("generation")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::{DatabaseUrl, SessionSecret, VaultKeyMaterial, VaultKeys};
    use crate::server::vault::CipherError;

    async fn store_with(keys: VaultKeys, db: Db) -> ConnectionStore {
        let secret = SessionSecret::parse("s".repeat(40)).unwrap();
        ConnectionStore::new(db, Arc::new(Keyring::from_config(&keys, &secret)))
    }

    async fn memory_db() -> Db {
        crate::server::db::connect(&DatabaseUrl::parse("sqlite::memory:").unwrap())
            .await
            .unwrap()
    }

    fn tokens(access: &str, refresh: Option<&str>) -> TokenSet {
        TokenSet {
            access_token: AccessToken::new(access.to_owned()),
            refresh_token: refresh.map(|r| RefreshToken::new(r.to_owned())),
            expires_in: Some(Duration::from_secs(3600)),
            scopes: None,
            organization_id: Some("org_a".to_owned()),
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
        ConnectionKey::new("qentrah", org, "http://ws/api/v1/partner")
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
        assert_eq!(conn.refresh_token.unwrap().expose(), "qrt_plain_a");
        assert_eq!(conn.info.scopes, vec!["client:read".to_owned()]);
        assert_eq!(conn.info.access_expires_at, now + Duration::from_secs(3600));

        let (access, refresh): (Vec<u8>, Vec<u8>) =
            sqlx::query_as("SELECT access_token, refresh_token FROM connections")
                .fetch_one(&db)
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
        .execute(&db)
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
                current: Some(VaultKeyMaterial::from_bytes([1; 32])),
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
                current: Some(VaultKeyMaterial::from_bytes([2; 32])),
                previous: vec![VaultKeyMaterial::from_bytes([1; 32])],
            },
            db.clone(),
        )
        .await;
        let conn = new.load(&key("org_a")).await.unwrap().unwrap();
        assert_eq!(conn.access_token.expose(), "qat_1");
        new.save_refreshed(
            &key("org_a"),
            conn.refresh_token.as_ref(),
            &tokens("qat_2", None),
            now,
        )
        .await
        .unwrap();
        let key_id: (String,) = sqlx::query_as("SELECT key_id FROM connections")
            .fetch_one(&db)
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
        store
            .mark_reconnect_required(&key("org_a"), now)
            .await
            .unwrap();
        let info = store.info(&key("org_a")).await.unwrap().unwrap();
        assert_eq!(info.state, ConnectionState::ReconnectRequired);
        assert!(!info.has_refresh_token);
        assert!(store.delete(&key("org_a")).await.unwrap());
        assert!(store.info(&key("org_a")).await.unwrap().is_none());
    }
}
