//! The database: one pool, migrations embedded in the binary and run at start.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use super::config::DatabaseUrl;

/// The pool every request shares.
pub type Db = SqlitePool;

/// Why the database could not be opened or migrated.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("could not create the database folder {path}")]
    CreateFolder {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("could not open the database")]
    Open(#[source] sqlx::Error),
    #[error("could not apply the database migrations")]
    Migrate(#[source] sqlx::migrate::MigrateError),
}

/// Opens the database (creating the SQLite file and its folder on first start) and migrates it.
pub async fn connect(database: &DatabaseUrl) -> Result<Db, DbError> {
    let DatabaseUrl::Sqlite { url, file } = database;
    if let Some(parent) = file.as_ref().and_then(|file| file.parent()) {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|source| DbError::CreateFolder {
                path: parent.display().to_string(),
                source,
            })?;
        }
    }

    let options = SqliteConnectOptions::from_str(url)
        .map_err(DbError::Open)?
        .create_if_missing(true)
        // WAL lets readers proceed while one writer commits; NORMAL is durable under WAL
        // except for the last transactions on power loss, never corrupting.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));

    // An in-memory database exists per connection: keep exactly one so every query sees it.
    let max_connections = if file.is_some() { 8 } else { 1 };
    let pool = SqlitePoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(DbError::Open)?;

    MIGRATOR.run(&pool).await.map_err(DbError::Migrate)?;
    Ok(pool)
}

/// The SQLite migrations, embedded at compile time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// True when the database answers a trivial query within `timeout`.
pub async fn is_reachable(db: &Db, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(db)).await,
        Ok(Ok(_))
    )
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
        let mode: (String,) = sqlx::query_as("PRAGMA journal_mode")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(mode.0, "wal");
        assert!(is_reachable(&db, Duration::from_secs(1)).await);
        // Migrations are idempotent: a second start on the same file succeeds.
        db.close().await;
        connect(&DatabaseUrl::parse(&url).unwrap()).await.unwrap();
    }
}
