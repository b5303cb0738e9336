//! Signed-in Workspace users (`AUTH_MODE=sso`): users by (issuer, subject), their memberships
//! with the raw and mapped role, and one sign-in row per signed-in session, which holds the
//! sign-in grant sealed (the session holds only the row's id) and is the index purges use.

use std::sync::Arc;
use std::time::SystemTime;

use crate::server::credentials::{AccessToken, RefreshToken, TokenSet};
use crate::server::ids::OrganizationId;
use crate::server::platform::clock::to_unix;
use crate::server::platform::config::AppRole;
use crate::server::platform::crypto::{CipherError, Keyring, Sealed};
use crate::server::platform::db::{on_pool, Db};

#[derive(thiserror::Error)]
pub enum UserStoreError {
    #[error("the user store's database failed")]
    Database(#[from] sqlx::Error),
    #[error("a sign-in's tokens could not be sealed or opened")]
    Cipher(#[from] CipherError),
    #[error("the random number generator failed")]
    Random,
}

crate::server::debug_with_causes!(UserStoreError);

/// Who a signed-in session is, as the guard and the pages see it (no token). Kept in the
/// session record too, so a request with no re-check due reads nothing else.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedInUser {
    pub sign_in_id: String,
    pub user_id: String,
    /// The Workspace's `sub`: UserInfo must keep naming it (OIDC Core §5.3.2).
    pub subject: String,
    pub name: String,
    pub email: String,
    pub organization_id: OrganizationId,
    pub organization_name: String,
    pub client_id: String,
    pub workspace_role: String,
    pub role: AppRole,
    /// Unix seconds: when the session ends however active it is.
    pub ends_at: i64,
    /// Unix seconds: the last re-check the Workspace answered.
    pub checked_at: i64,
    /// Unix seconds: since when re-checks have gone unanswered.
    pub unanswered_since: Option<i64>,
}

/// A sign-in's grant, opened to be refreshed, used for UserInfo, or revoked.
#[derive(Debug)]
pub struct SignInGrant {
    pub access_token: AccessToken,
    pub refresh_token: Option<RefreshToken>,
    pub access_expires_at: i64,
    pub generation: i64,
}

/// A user of an organization, for `/admin/users`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OrganizationUser {
    pub name: String,
    pub email: String,
    pub workspace_role: String,
    pub app_role: Option<String>,
    pub last_sign_in_at: i64,
}

/// Who signed in, as the Workspace says (text only).
#[derive(Debug, Clone, Copy)]
pub struct Person<'a> {
    pub issuer: &'a str,
    pub subject: &'a str,
    pub email: &'a str,
    pub name: &'a str,
}

/// What a new sign-in stores.
#[derive(Debug)]
pub struct NewSignIn<'a> {
    pub person: Person<'a>,
    pub organization_id: &'a OrganizationId,
    pub organization_name: &'a str,
    pub client_id: &'a str,
    pub workspace_role: &'a str,
    pub role: AppRole,
    pub tokens: &'a TokenSet,
    pub ends_at: SystemTime,
}

fn aad(sign_in_id: &str, column: &str) -> Vec<u8> {
    format!("qentrah-connect/sign-in/v1\0{column}\0{sign_in_id}").into_bytes()
}

fn random_id(prefix: &str) -> Result<String, UserStoreError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|_| UserStoreError::Random)?;
    Ok(format!(
        "{prefix}_{}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// A conservative access-token expiry when the server sent no `expires_in`.
const ASSUMED_ACCESS_LIFETIME_SECS: i64 = 300;

#[derive(sqlx::FromRow)]
struct SignedInRow {
    id: String,
    user_id: String,
    subject: String,
    name: String,
    email: String,
    organization_id: String,
    organization_name: String,
    client_id: String,
    workspace_role: String,
    app_role: String,
    ends_at: i64,
    checked_at: i64,
    unanswered_since: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    key_id: String,
    access_token: Vec<u8>,
    refresh_token: Option<Vec<u8>>,
    access_expires_at: i64,
    generation: i64,
}

/// Deletes the sign-ins matching `condition` (over `values`, bound in order) and the session
/// records that hold them; returns how many sign-ins ended.
async fn end_where(db: &Db, condition: &str, values: &[&str]) -> Result<u64, UserStoreError> {
    let sessions: Vec<Option<String>> = on_pool!(db, pool => {
        let sql = format!("DELETE FROM sign_ins WHERE {condition} RETURNING session_id");
        let mut query = sqlx::query_scalar(&sql);
        for value in values {
            query = query.bind(*value);
        }
        query.fetch_all(pool).await?
    });
    let table = match db {
        Db::Sqlite(_) => "tower_sessions",
        Db::Postgres(_) => "tower_sessions.session",
    };
    for session in sessions.iter().flatten() {
        on_pool!(db, pool => {
            sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
                .bind(session)
                .execute(pool)
                .await?;
        });
    }
    Ok(sessions.len() as u64)
}

#[derive(Debug, Clone)]
pub struct UserStore {
    db: Db,
    keyring: Arc<Keyring>,
}

impl UserStore {
    pub fn new(db: Db, keyring: Arc<Keyring>) -> Self {
        Self { db, keyring }
    }

    /// Upserts the user by (issuer, subject), never by email (OIDC Core §5.7), and the
    /// membership; then stores the sign-in with its grant sealed. One transaction. Returns the
    /// sign-in's id, the only thing the session keeps.
    pub async fn sign_in(
        &self,
        new: &NewSignIn<'_>,
        now: SystemTime,
    ) -> Result<String, UserStoreError> {
        let now = to_unix(now);
        let candidate = random_id("usr")?;
        let sign_in_id = random_id("sgn")?;
        let tokens = new.tokens;
        let access = self.keyring.seal(
            tokens.access_token.expose().as_bytes(),
            &aad(&sign_in_id, "access_token"),
        )?;
        let refresh = tokens
            .refresh_token
            .as_ref()
            .map(|t| {
                self.keyring
                    .seal(t.expose().as_bytes(), &aad(&sign_in_id, "refresh_token"))
            })
            .transpose()?;
        let expires_at =
            now.saturating_add(tokens.expires_in.map_or(ASSUMED_ACCESS_LIFETIME_SECS, |d| {
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
            }));
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let user_id: String = sqlx::query_scalar(
                "INSERT INTO users (id, issuer, subject, email, name, created_at, last_sign_in_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) \
                 ON CONFLICT (issuer, subject) DO UPDATE SET email = excluded.email, \
                 name = excluded.name, last_sign_in_at = excluded.last_sign_in_at RETURNING id",
            )
            .bind(&candidate)
            .bind(new.person.issuer)
            .bind(new.person.subject)
            .bind(new.person.email)
            .bind(new.person.name)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO memberships (user_id, organization_id, workspace_role, app_role, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, organization_id) DO UPDATE SET \
                 workspace_role = excluded.workspace_role, app_role = excluded.app_role, \
                 updated_at = excluded.updated_at",
            )
            .bind(&user_id)
            .bind(new.organization_id.as_str())
            .bind(new.workspace_role)
            .bind(new.role.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO sign_ins (id, user_id, organization_id, organization_name, client_id, \
                 workspace_role, app_role, key_id, access_token, refresh_token, access_expires_at, \
                 created_at, ends_at, checked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $12)",
            )
            .bind(&sign_in_id)
            .bind(&user_id)
            .bind(new.organization_id.as_str())
            .bind(new.organization_name)
            .bind(new.client_id)
            .bind(new.workspace_role)
            .bind(new.role.as_str())
            .bind(&access.key_id)
            .bind(&access.bytes)
            .bind(refresh.as_ref().map(|r| r.bytes.clone()))
            .bind(expires_at)
            .bind(now)
            .bind(to_unix(new.ends_at))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(sign_in_id)
    }

    /// Records a membership whose role the map does not know (no access), so an admin can see
    /// who tried; no sign-in is stored.
    pub async fn record_unmapped(
        &self,
        person: Person<'_>,
        organization_id: &OrganizationId,
        workspace_role: &str,
        now: SystemTime,
    ) -> Result<(), UserStoreError> {
        let now = to_unix(now);
        let candidate = random_id("usr")?;
        on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let user_id: String = sqlx::query_scalar(
                "INSERT INTO users (id, issuer, subject, email, name, created_at, last_sign_in_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) \
                 ON CONFLICT (issuer, subject) DO UPDATE SET email = excluded.email, \
                 name = excluded.name RETURNING id",
            )
            .bind(&candidate)
            .bind(person.issuer)
            .bind(person.subject)
            .bind(person.email)
            .bind(person.name)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO memberships (user_id, organization_id, workspace_role, app_role, updated_at) \
                 VALUES ($1, $2, $3, NULL, $4) ON CONFLICT (user_id, organization_id) DO UPDATE SET \
                 workspace_role = excluded.workspace_role, app_role = NULL, updated_at = excluded.updated_at",
            )
            .bind(&user_id)
            .bind(organization_id.as_str())
            .bind(workspace_role)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// The signed-in user of a session's sign-in id, if the sign-in still exists.
    pub async fn signed_in(
        &self,
        sign_in_id: &str,
    ) -> Result<Option<SignedInUser>, UserStoreError> {
        let row: Option<SignedInRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT s.id, s.user_id, u.subject, u.name, u.email, s.organization_id, s.organization_name, s.client_id, \
                 s.workspace_role, s.app_role, s.ends_at, s.checked_at, s.unanswered_since \
                 FROM sign_ins s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
            )
            .bind(sign_in_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(row.and_then(|row| {
            Some(SignedInUser {
                organization_id: OrganizationId::parse(&row.organization_id)?,
                role: AppRole::parse(&row.app_role)?,
                sign_in_id: row.id,
                user_id: row.user_id,
                subject: row.subject,
                name: row.name,
                email: row.email,
                organization_name: row.organization_name,
                client_id: row.client_id,
                workspace_role: row.workspace_role,
                ends_at: row.ends_at,
                checked_at: row.checked_at,
                unanswered_since: row.unanswered_since,
            })
        }))
    }

    /// The sign-in's grant, opened.
    pub async fn grant(&self, sign_in_id: &str) -> Result<Option<SignInGrant>, UserStoreError> {
        let row: Option<GrantRow> = on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT key_id, access_token, refresh_token, access_expires_at, generation \
                 FROM sign_ins WHERE id = $1",
            )
            .bind(sign_in_id)
            .fetch_optional(pool)
            .await?
        });
        let Some(row) = row else { return Ok(None) };
        let open = |bytes: Vec<u8>, column: &str| -> Result<String, UserStoreError> {
            let opened = self.keyring.open(
                &Sealed {
                    key_id: row.key_id.clone(),
                    bytes,
                },
                &aad(sign_in_id, column),
            )?;
            Ok(String::from_utf8_lossy(&opened).into_owned())
        };
        Ok(Some(SignInGrant {
            access_token: AccessToken::new(open(row.access_token, "access_token")?),
            refresh_token: row
                .refresh_token
                .map(|bytes| open(bytes, "refresh_token").map(RefreshToken::new))
                .transpose()?,
            access_expires_at: row.access_expires_at,
            generation: row.generation,
        }))
    }

    /// Takes the re-check of a sign-in for `lease` seconds, if no other instance holds it
    /// and nobody re-checked it since `checked_at`: one re-check at a time across instances.
    pub async fn lease_check(
        &self,
        sign_in_id: &str,
        checked_at: i64,
        now: SystemTime,
        lease: std::time::Duration,
    ) -> Result<bool, UserStoreError> {
        let now = to_unix(now);
        let until = now.saturating_add(i64::try_from(lease.as_secs()).unwrap_or(i64::MAX));
        Ok(on_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE sign_ins SET check_leased_until = $1 WHERE id = $2 AND checked_at = $3 \
                 AND (check_leased_until IS NULL OR check_leased_until <= $4)",
            )
            .bind(until)
            .bind(sign_in_id)
            .bind(checked_at)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        }) == 1)
    }

    /// A re-check the Workspace answered: the role as it is now (here and in the membership).
    /// `false`: the sign-in ended meanwhile (so the session must not be written back).
    pub async fn record_check(
        &self,
        user: &SignedInUser,
        workspace_role: &str,
        role: AppRole,
        now: SystemTime,
    ) -> Result<bool, UserStoreError> {
        let now = to_unix(now);
        Ok(on_pool!(&self.db, pool => {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query(
                "UPDATE sign_ins SET workspace_role = $1, app_role = $2, checked_at = $3, \
                 unanswered_since = NULL, check_leased_until = NULL WHERE id = $4",
            )
            .bind(workspace_role)
            .bind(role.as_str())
            .bind(now)
            .bind(&user.sign_in_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query(
                "UPDATE memberships SET workspace_role = $1, app_role = $2, updated_at = $3 \
                 WHERE user_id = $4 AND organization_id = $5",
            )
            .bind(workspace_role)
            .bind(role.as_str())
            .bind(now)
            .bind(&user.user_id)
            .bind(user.organization_id.as_str())
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            updated == 1
        }))
    }

    /// A re-check the Workspace did not answer: the outage is counted from its first miss.
    pub async fn record_unanswered(
        &self,
        sign_in_id: &str,
        now: SystemTime,
    ) -> Result<(), UserStoreError> {
        on_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE sign_ins SET unanswered_since = COALESCE(unanswered_since, $1), \
                 check_leased_until = NULL WHERE id = $2",
            )
            .bind(to_unix(now))
            .bind(sign_in_id)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Stores a refreshed sign-in grant unless another write came first (`generation`).
    /// RFC 6749 §6: an answer without a refresh token keeps `previous_refresh`; both tokens are
    /// sealed anew under the current key.
    pub async fn save_refreshed(
        &self,
        sign_in_id: &str,
        generation: i64,
        tokens: &TokenSet,
        previous_refresh: Option<&RefreshToken>,
        now: SystemTime,
    ) -> Result<bool, UserStoreError> {
        let access = self.keyring.seal(
            tokens.access_token.expose().as_bytes(),
            &aad(sign_in_id, "access_token"),
        )?;
        let refresh = tokens
            .refresh_token
            .as_ref()
            .or(previous_refresh)
            .map(|t| {
                self.keyring
                    .seal(t.expose().as_bytes(), &aad(sign_in_id, "refresh_token"))
            })
            .transpose()?;
        let now = to_unix(now);
        let expires_at =
            now.saturating_add(tokens.expires_in.map_or(ASSUMED_ACCESS_LIFETIME_SECS, |d| {
                i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
            }));
        Ok(on_pool!(&self.db, pool => {
            sqlx::query(
                "UPDATE sign_ins SET key_id = $1, access_token = $2, refresh_token = $3, \
                 access_expires_at = $4, generation = generation + 1 \
                 WHERE id = $5 AND generation = $6",
            )
            .bind(&access.key_id)
            .bind(&access.bytes)
            .bind(refresh.as_ref().map(|r| r.bytes.clone()))
            .bind(expires_at)
            .bind(sign_in_id)
            .bind(generation)
            .execute(pool)
            .await?
            .rows_affected()
        }) == 1)
    }

    /// Records the session record that holds a sign-in (the index purges use); `false`: the
    /// sign-in has ended meanwhile.
    pub async fn index_session(
        &self,
        sign_in_id: &str,
        session_id: &str,
    ) -> Result<bool, UserStoreError> {
        Ok(on_pool!(&self.db, pool => {
            sqlx::query("UPDATE sign_ins SET session_id = $1 WHERE id = $2")
                .bind(session_id)
                .bind(sign_in_id)
                .execute(pool)
                .await?
                .rows_affected()
        }) == 1)
    }

    /// Ends a sign-in (sign-out, or a re-check that found the user gone): its row goes, and
    /// the session record that holds it.
    pub async fn end(&self, sign_in_id: &str) -> Result<bool, UserStoreError> {
        Ok(end_where(&self.db, "id = $1", &[sign_in_id]).await? > 0)
    }

    /// Ends the sign-ins into an organization made with an installation's client (the
    /// installation was uninstalled): those sessions are signed out wherever they are used.
    pub async fn end_for_client(
        db: &Db,
        organization_id: &OrganizationId,
        client_id: &str,
    ) -> Result<u64, UserStoreError> {
        end_where(
            db,
            "organization_id = $1 AND client_id = $2",
            &[organization_id.as_str(), client_id],
        )
        .await
    }

    /// The organization's users who ever signed in, for `/admin/users`.
    pub async fn users_of(
        &self,
        organization_id: &OrganizationId,
    ) -> Result<Vec<OrganizationUser>, UserStoreError> {
        Ok(on_pool!(&self.db, pool => {
            sqlx::query_as(
                "SELECT u.name, u.email, m.workspace_role, m.app_role, u.last_sign_in_at \
                 FROM memberships m JOIN users u ON u.id = m.user_id \
                 WHERE m.organization_id = $1 ORDER BY u.name, u.email, u.id",
            )
            .bind(organization_id.as_str())
            .fetch_all(pool)
            .await?
        }))
    }

    /// How many users exist (tests: one per subject, whatever their emails).
    pub async fn user_count(&self) -> Result<i64, UserStoreError> {
        Ok(on_pool!(&self.db, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(pool).await?
        }))
    }
}
