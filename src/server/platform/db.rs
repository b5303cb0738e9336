//! The database: SQLite (embedded, one instance) or PostgreSQL (shared by several instances),
//! one pool, migrations embedded in the binary and run at start.
//!
//! The stores write one dialect for both: `$1`-style placeholders (SQLite accepts them too),
//! `ON CONFLICT … DO UPDATE`, `DELETE … RETURNING`, BIGINT/INTEGER and BYTEA/BLOB columns that
//! decode to the same Rust types. [`on_pool!`] runs such a query on whichever pool is open.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

use crate::server::platform::config::DatabaseUrl;

/// The pool every request shares.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the open pool, whichever database it is. The body is
/// compiled once per database, so a query that one of them cannot type fails to build.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::server::platform::db::Db::Sqlite($pool) => $body,
            $crate::server::platform::db::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not create the database folder {path}")]
    CreateFolder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not open the database {shown}")]
    Open {
        shown: String,
        #[source]
        source: sqlx::Error,
    },
    #[error("could not apply the database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// How long a request waits for a pooled connection before it fails (and the page says retry).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections one instance keeps to PostgreSQL. Small: a request holds one only for a
/// statement or, during a token refresh, for the token call; N instances need N × this many.
const POSTGRES_MAX_CONNECTIONS: u32 = 16;

/// Opens the database (creating the SQLite file and its folder on first start) and migrates it.
pub async fn connect(database: &DatabaseUrl) -> Result<Db, DbError> {
    let db = match database {
        DatabaseUrl::Sqlite { url, file } => connect_sqlite(url, file.as_deref()).await?,
        DatabaseUrl::Postgres(url) => {
            let open = |source| DbError::Open {
                shown: url.shown().to_owned(),
                source,
            };
            let options = PgConnectOptions::from_str(url.expose())
                .map_err(open)?
                .application_name("qentrah-connect");
            let pool = PgPoolOptions::new()
                .max_connections(POSTGRES_MAX_CONNECTIONS)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(open)?;
            Db::Postgres(pool)
        }
    };
    migrate(&db).await?;
    Ok(db)
}

async fn connect_sqlite(url: &str, file: Option<&std::path::Path>) -> Result<Db, DbError> {
    if let Some(parent) = file.and_then(|file| file.parent()) {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|source| DbError::CreateFolder {
                path: parent.display().to_string(),
                source,
            })?;
        }
    }
    let open = |source| DbError::Open {
        shown: url.to_owned(),
        source,
    };
    let options = SqliteConnectOptions::from_str(url)
        .map_err(open)?
        .create_if_missing(true)
        // WAL lets readers proceed while one writer commits. NORMAL, not FULL: under NORMAL a
        // commit survives a crash of the app, not a power loss of the machine (the last
        // commits can then vanish, never corrupting). FULL would close that gap, at one fsync
        // per commit, measured at 15-20 ms on the refresh path here (refresh p95 under
        // contention 1.09-1.17x -> 1.27-1.36x, past the 1.3x target). The power-loss case costs
        // at most one reconnect (a lost rotated refresh token makes the old one a reused one,
        // RFC 9700 §4.14.2). Deployments that must not lose it run on PostgreSQL, whose commits
        // are fsynced by default.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));

    // An in-memory database exists per connection: keep exactly one so every query sees it.
    let max_connections = if file.is_some() { 8 } else { 1 };
    let pool = SqlitePoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(open)?;
    Ok(Db::Sqlite(pool))
}

/// Applies the migrations not yet applied. On PostgreSQL, sqlx takes an advisory lock for the
/// duration, so instances starting together migrate one after the other. Migrations newer than
/// this binary knows are allowed (they only add): during a rolling deploy, or a rollback, an
/// older instance must still start on a database a newer one has migrated.
pub async fn migrate(db: &Db) -> Result<(), DbError> {
    match db {
        Db::Sqlite(pool) => {
            let mut migrator = sqlx::migrate!("./migrations/sqlite");
            migrator.set_ignore_missing(true);
            migrator.run(pool).await
        }
        Db::Postgres(pool) => {
            let mut migrator = sqlx::migrate!("./migrations/postgres");
            migrator.set_ignore_missing(true);
            migrator.run(pool).await
        }
    }
    .map_err(DbError::Migrate)
}

/// The SQLite migrations, embedded at compile time.
pub static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// The PostgreSQL migrations: the same versions as SQLite's, in PostgreSQL's types (a unit
/// test keeps the two lists in step).
pub static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// True when the database answers a trivial query within `timeout`.
pub async fn is_reachable(db: &Db, timeout: Duration) -> bool {
    let query =
        async { on_pool!(db, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop)) };
    matches!(tokio::time::timeout(timeout, query).await, Ok(Ok(())))
}

impl Db {
    /// Which database this is, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Db::Sqlite(_) => "sqlite",
            Db::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool (at shutdown, after the last request).
    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn creates_the_file_and_folder_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nested/app.db");
        let url = format!("sqlite://{}", file.display());
        let db = connect(&DatabaseUrl::parse(&url).unwrap()).await.unwrap();
        assert!(file.exists());
        let Db::Sqlite(pool) = &db else {
            panic!("not sqlite")
        };
        let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(mode.0, "wal");
        assert!(is_reachable(&db, Duration::from_secs(1)).await);
        // Migrations are idempotent: a second start on the same file succeeds.
        db.close().await;
        connect(&DatabaseUrl::parse(&url).unwrap()).await.unwrap();
    }

    /// Every migration exists for both databases, under the same version and name, so that a
    /// schema change cannot land for one and be forgotten for the other.
    #[test]
    fn migrations_for_both_databases_are_in_step() {
        let list = |migrator: &sqlx::migrate::Migrator| {
            migrator
                .iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(list(&SQLITE_MIGRATOR), list(&POSTGRES_MIGRATOR));
        assert!(!list(&SQLITE_MIGRATOR).is_empty());
    }

    /// An older instance restarting on a database a newer one has migrated (a rolling deploy,
    /// a rollback) still starts.
    #[tokio::test]
    async fn a_database_migrated_further_by_a_newer_binary_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("app.db").display());
        let db = connect(&DatabaseUrl::parse(&url).unwrap()).await.unwrap();
        let Db::Sqlite(pool) = &db else {
            panic!("not sqlite")
        };
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (29991231000000, 'from the future', TRUE, X'00', 0)",
        )
        .execute(pool)
        .await
        .unwrap();
        db.close().await;
        connect(&DatabaseUrl::parse(&url).unwrap()).await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_postgres_is_a_clear_error_without_the_password() {
        // Port 1 on loopback: nothing listens there.
        let url = DatabaseUrl::parse("postgres://app:pg-secret-pw@127.0.0.1:1/qentrah").unwrap();
        let error = connect(&url).await.unwrap_err();
        let shown = error.to_string();
        assert!(shown.contains("postgres://127.0.0.1/qentrah"), "{shown}");
        assert!(!format!("{error:?}").contains("pg-secret-pw"), "{error:?}");
    }
}
