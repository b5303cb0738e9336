//! Browser sessions: a signed, opaque id in a cookie; the session record in the database.

use serde::{Deserialize, Serialize};
use tower_sessions::cookie::{Key, SameSite};
use tower_sessions::service::SignedCookie;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions::{Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::{PostgresStore, SqliteStore};

use crate::server::connections::{Binding, ConnectionKey};
use crate::server::identity::users::SignedInUser;
use crate::server::ids::{OrganizationId, ProviderId};
use crate::server::platform::config::{PartnerAppUrl, SessionSecret};
use crate::server::platform::db::Db;

/// How long a session lives without use.
pub const SESSION_IDLE_LIFETIME: time::Duration = time::Duration::days(7);

/// The session cookie's name: `__Host-` over https, which browsers accept only with
/// `Secure`, `Path=/` and no `Domain`, so no subdomain can plant or overwrite it.
pub fn cookie_name(app_url: &PartnerAppUrl) -> &'static str {
    if app_url.is_https() {
        "__Host-qentrah_session"
    } else {
        "qentrah_session"
    }
}

/// The session layer: HttpOnly, `SameSite=Lax`, `Secure` over https, signed with a key derived
/// from `SESSION_SECRET`.
///
/// `Lax`, not tower-sessions' default `Strict`: the return from Qentrah's consent page is a
/// cross-site top-level navigation, and a `Strict` cookie would not be sent with it, losing the
/// flow (RFC 9700 §4.7 relies on the state binding surviving exactly that redirect).
pub fn layer(
    db: &Db,
    app_url: &PartnerAppUrl,
    secret: &SessionSecret,
) -> SessionManagerLayer<DbSessionStore, SignedCookie> {
    SessionManagerLayer::new(DbSessionStore::new(db))
        .with_name(cookie_name(app_url))
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(app_url.is_https())
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(SESSION_IDLE_LIFETIME))
        .with_signed(cookie_key(secret))
}

/// Derives the cookie-signing key from `SESSION_SECRET` (HKDF-SHA256, RFC 5869), with its own
/// `info` so that no other key derived from the same secret can sign cookies.
///
/// # Security
/// The secret is exposed only to the HKDF extract step.
fn cookie_key(secret: &SessionSecret) -> Key {
    let mut okm = [0u8; 64];
    crate::server::platform::crypto::kdf::derive(
        secret.expose().as_bytes(),
        b"session-cookie-signing-v1",
        &mut okm,
    );
    Key::from(&okm)
}

/// An active session's lifetime is renewed at most this often.
pub const SESSION_RENEWAL_INTERVAL: time::Duration = time::Duration::days(1);

const BROWSER_BINDING: &str = "oauth.browser_binding";
const RENEWED_AT: &str = "session.renewed_at";
const SIGN_IN: &str = "sign_in.id";

/// Where a session keeps its connection to `provider` (`qentrah.connection`: one per provider).
fn connection_entry(provider: &str) -> String {
    format!("{provider}.connection")
}

/// The connection this browser completed a flow for, and the grant it completed: who it may
/// see, for as long as the connection holds that grant. Not secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionConnection {
    provider: String,
    organization_id: String,
    resource: String,
    /// Absent in sessions from before grants had ids; those match only rows from then too.
    #[serde(default)]
    grant_id: String,
}

/// A session's sign-in, as the session keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionSignIn {
    pub user: SignedInUser,
    pub indexed: bool,
}

/// The session store failed (its database, or a value that no longer decodes).
#[derive(thiserror::Error)]
#[error("the session store failed")]
pub struct SessionError(#[source] tower_sessions::session::Error);

impl From<tower_sessions::session::Error> for SessionError {
    fn from(error: tower_sessions::session::Error) -> Self {
        Self(error)
    }
}

/// A browser's session, in the product's terms: the value that ties OAuth flows to it, the
/// connection (one per provider) it completed, and its keep-alive. The string keys it is stored
/// under appear nowhere else.
#[derive(Debug, Clone)]
pub struct BrowserSession(tower_sessions::Session);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for BrowserSession {
    type Rejection = <tower_sessions::Session as axum::extract::FromRequestParts<S>>::Rejection;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        tower_sessions::Session::from_request_parts(parts, state)
            .await
            .map(Self)
    }
}

impl BrowserSession {
    pub fn new(session: tower_sessions::Session) -> Self {
        Self(session)
    }

    /// A random value that ties OAuth flows to this browser's session; created on first use.
    pub async fn flow_binding(&self) -> Result<String, SessionError> {
        if let Some(binding) = self.0.get::<String>(BROWSER_BINDING).await? {
            return Ok(binding);
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| {
            SessionError(tower_sessions::session::Error::Store(
                tower_sessions::session_store::Error::Backend(e.to_string()),
            ))
        })?;
        let binding: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        self.0.insert(BROWSER_BINDING, &binding).await?;
        Ok(binding)
    }

    /// The flow binding if this browser has one (the callback never creates one).
    pub async fn existing_flow_binding(&self) -> Result<Option<String>, SessionError> {
        Ok(self.0.get::<String>(BROWSER_BINDING).await?)
    }

    /// Binds this browser to a connection under a fresh session id, so an id planted before
    /// the flow is worthless after it (session fixation).
    pub async fn bind_connection(&self, binding: &Binding) -> Result<(), SessionError> {
        self.0.cycle_id().await?;
        let key = &binding.key;
        self.0
            .insert(
                &connection_entry(key.provider()),
                SessionConnection {
                    provider: key.provider().to_owned(),
                    organization_id: key.organization_id().to_string(),
                    resource: key.resource().to_owned(),
                    grant_id: binding.grant_id.clone(),
                },
            )
            .await?;
        Ok(())
    }

    /// The connection to `provider` (and grant) this browser may see, if any.
    pub async fn connection(&self, provider: &ProviderId) -> Result<Option<Binding>, SessionError> {
        Ok(self
            .0
            .get::<SessionConnection>(&connection_entry(provider.as_str()))
            .await?
            .filter(|c| *provider == *c.provider)
            // An id that does not parse was never stored by this app: no connection.
            .and_then(|c| {
                let organization_id = OrganizationId::parse(&c.organization_id)?;
                Some(Binding {
                    key: ConnectionKey::new(provider, &organization_id, &c.resource),
                    grant_id: c.grant_id,
                })
            }))
    }

    /// Keeps a session in use alive. `OnInactivity` expiry moves only when the session is
    /// saved, and tower-sessions saves only a modified session: without this, a browser used
    /// every day would still lose its connection [`SESSION_IDLE_LIFETIME`] after connecting.
    /// Renewing at most once a [`SESSION_RENEWAL_INTERVAL`] keeps that from costing a database
    /// write per request.
    pub async fn keep_alive(&self, now_unix: i64) -> Result<(), SessionError> {
        let renewed_at = self.0.get::<i64>(RENEWED_AT).await?;
        let due = renewed_at.is_none_or(|at| {
            now_unix.saturating_sub(at) >= SESSION_RENEWAL_INTERVAL.whole_seconds()
        });
        if due {
            self.0.insert(RENEWED_AT, now_unix).await?;
        }
        Ok(())
    }

    /// Signs this browser in (`AUTH_MODE=sso`) under a fresh session id (session fixation:
    /// an id planted before sign-in is worthless after it). The session keeps who signed in
    /// (no token: the grant is sealed in the `sign_ins` row), so the guard reads nothing else
    /// while no re-check is due.
    pub async fn bind_sign_in(&self, user: &SignedInUser) -> Result<(), SessionError> {
        self.0.cycle_id().await?;
        self.store_sign_in(user, false).await
    }

    /// Keeps `user` as this session's sign-in; `indexed`: the `sign_ins` row names this session
    /// record (done on the first request after sign-in, when the record has its id).
    pub async fn store_sign_in(
        &self,
        user: &SignedInUser,
        indexed: bool,
    ) -> Result<(), SessionError> {
        self.0
            .insert(
                SIGN_IN,
                SessionSignIn {
                    user: user.clone(),
                    indexed,
                },
            )
            .await?;
        Ok(())
    }

    /// This session's sign-in, if any.
    pub async fn sign_in(&self) -> Result<Option<SessionSignIn>, SessionError> {
        Ok(self.0.get::<SessionSignIn>(SIGN_IN).await?)
    }

    /// The session record's id, once it has one (it is saved with the response).
    pub fn record_id(&self) -> Option<String> {
        self.0.id().map(|id| id.to_string())
    }

    /// Ends the session altogether: its record is deleted and the cookie cleared, so the old
    /// cookie is worthless.
    pub async fn end(&self) -> Result<(), SessionError> {
        self.0.flush().await?;
        Ok(())
    }

    /// Forgets this browser's connection to `provider` (and rotates the id).
    pub async fn unbind_connection(&self, provider: &str) -> Result<(), SessionError> {
        self.0
            .remove::<SessionConnection>(&connection_entry(provider))
            .await?;
        self.0.cycle_id().await?;
        Ok(())
    }
}

/// Session records in the app's database, SQLite or PostgreSQL: one type for the session layer
/// whichever is configured. The tables are each store's default (`tower_sessions` on SQLite,
/// `tower_sessions.session` on PostgreSQL), created by the app's own migrations.
#[derive(Debug, Clone)]
pub enum DbSessionStore {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl DbSessionStore {
    pub fn new(db: &Db) -> Self {
        match db {
            Db::Sqlite(pool) => Self::Sqlite(SqliteStore::new(pool.clone())),
            Db::Postgres(pool) => Self::Postgres(PostgresStore::new(pool.clone())),
        }
    }
}

#[async_trait::async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.create(record).await,
            Self::Postgres(store) => store.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.save(record).await,
            Self::Postgres(store) => store.save(record).await,
        }
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            Self::Sqlite(store) => store.load(session_id).await,
            Self::Postgres(store) => store.load(session_id).await,
        }
    }

    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.delete(session_id).await,
            Self::Postgres(store) => store.delete(session_id).await,
        }
    }
}

#[async_trait::async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            Self::Sqlite(store) => store.delete_expired().await,
            Self::Postgres(store) => store.delete_expired().await,
        }
    }
}

/// How many session ids one page of [`delete_sessions_bound_to`] reads.
const SESSION_SCAN_PAGE: i64 = 500;

/// Deletes every session bound to `organization_id`'s connection to `provider`, except those
/// bound to the grant `keep_grant` (the organization's connection that stays). Session records
/// are opaque to the database (the store encodes them), so each is loaded through the store and
/// judged by what this app wrote in it; used by the uninstall purge, which is rare.
pub async fn delete_sessions_bound_to(
    db: &Db,
    provider: &ProviderId,
    organization_id: &OrganizationId,
    keep_grant: Option<&str>,
) -> Result<u64, SessionError> {
    let store = DbSessionStore::new(db);
    let backend = |e: sqlx::Error| {
        SessionError(tower_sessions::session::Error::Store(
            session_store::Error::Backend(e.to_string()),
        ))
    };
    let entry = connection_entry(provider.as_str());
    let mut after = String::new();
    let mut deleted = 0;
    loop {
        let ids: Vec<String> = crate::server::platform::db::on_pool!(db, pool => {
            sqlx::query_scalar(match db {
                Db::Sqlite(_) => "SELECT id FROM tower_sessions WHERE id > $1 ORDER BY id LIMIT $2",
                Db::Postgres(_) => {
                    "SELECT id FROM tower_sessions.session WHERE id > $1 ORDER BY id LIMIT $2"
                }
            })
            .bind(&after)
            .bind(SESSION_SCAN_PAGE)
            .fetch_all(pool)
            .await
            .map_err(backend)?
        });
        let Some(last) = ids.last() else {
            return Ok(deleted);
        };
        after = last.clone();
        for id in ids {
            // An id the store cannot read back is none of this app's sessions.
            let Ok(id) = id.parse::<Id>() else { continue };
            let Some(record) = store
                .load(&id)
                .await
                .map_err(|e| SessionError(tower_sessions::session::Error::Store(e)))?
            else {
                continue;
            };
            let bound = record
                .data
                .get(&entry)
                .and_then(|value| serde_json::from_value::<SessionConnection>(value.clone()).ok())
                .is_some_and(|c| {
                    c.organization_id == organization_id.as_str()
                        && keep_grant != Some(c.grant_id.as_str())
                });
            if bound {
                store
                    .delete(&id)
                    .await
                    .map_err(|e| SessionError(tower_sessions::session::Error::Store(e)))?;
                deleted += 1;
            }
        }
    }
}

/// Removes expired sessions from the store in the background. With several instances each
/// sweeps; the deletes are idempotent.
pub fn spawn_expired_session_cleanup(db: &Db) {
    let store = DbSessionStore::new(db);
    tokio::spawn(async move {
        if let Err(error) = store
            .continuously_delete_expired(tokio::time::Duration::from_secs(3600))
            .await
        {
            tracing::warn!(%error, "expired-session cleanup stopped");
        }
    });
}

crate::server::debug_with_causes!(SessionError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_key_is_deterministic_and_secret_specific() {
        let a = SessionSecret::parse("a".repeat(32)).unwrap();
        let b = SessionSecret::parse("b".repeat(32)).unwrap();
        assert_eq!(cookie_key(&a).master(), cookie_key(&a).master());
        assert_ne!(cookie_key(&a).master(), cookie_key(&b).master());
    }

    async fn set_cookie_for(app_url: &str) -> String {
        use axum::{body::Body, http::Request, routing::get, Router};
        use tower::ServiceExt;
        use tower_sessions::Session;

        let db = crate::server::platform::db::connect(
            &crate::server::platform::config::DatabaseUrl::parse("sqlite::memory:").unwrap(),
        )
        .await
        .unwrap();
        let app_url = PartnerAppUrl::parse(app_url).unwrap();
        let secret = SessionSecret::parse("s".repeat(40)).unwrap();
        let router = Router::new()
            .route(
                "/",
                get(|session: Session| async move {
                    session.insert("k", 1).await.unwrap();
                }),
            )
            .layer(layer(&db, &app_url, &secret));
        let response = router
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        response.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn session_cookie_is_http_only_lax_and_secure_over_https() {
        let cookie = set_cookie_for("https://partner.example").await;
        assert!(cookie.starts_with("__Host-qentrah_session="), "{cookie}");
        for attribute in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
            assert!(cookie.contains(attribute), "{attribute} in {cookie}");
        }
        assert!(!cookie.contains("Domain="), "{cookie}");

        let cookie = set_cookie_for("http://localhost:3001").await;
        assert!(cookie.starts_with("qentrah_session="), "{cookie}");
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
        assert!(!cookie.contains("Secure"), "{cookie}");
    }

    #[test]
    fn cookie_name_uses_host_prefix_only_over_https() {
        let https = PartnerAppUrl::parse("https://partner.example").unwrap();
        let http = PartnerAppUrl::parse("http://localhost:3001").unwrap();
        assert_eq!(cookie_name(&https), "__Host-qentrah_session");
        assert_eq!(cookie_name(&http), "qentrah_session");
    }
}
