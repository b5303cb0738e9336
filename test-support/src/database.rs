//! A fresh database for each app under test: a SQLite file in a temporary folder, or a
//! PostgreSQL database created for the test and dropped after it.
//!
//! `TEST_DATABASE=postgres` runs the whole suite on PostgreSQL (the Makefile's second pass);
//! the PostgreSQL server is `TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`,
//! a superuser connection used only to create and drop the test databases).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::Connection;

pub const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Test databases are named `qc_test_{unix seconds}_{pid}_{n}`; ones older than this are left
/// over from killed runs and are dropped by the next run.
const STALE_AFTER: Duration = Duration::from_secs(3600);

pub struct TestDatabase {
    /// The app's `DATABASE_URL`.
    pub url: String,
    kind: Kind,
}

enum Kind {
    Sqlite {
        file: std::path::PathBuf,
        _dir: tempfile::TempDir,
    },
    Postgres {
        admin_url: String,
        name: String,
    },
}

fn admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

fn postgres_required() -> bool {
    std::env::var("REQUIRE_POSTGRES").is_ok_and(|v| v == "1")
}

/// True when the suite runs on PostgreSQL (`TEST_DATABASE=postgres`).
pub fn suite_on_postgres() -> bool {
    std::env::var("TEST_DATABASE").is_ok_and(|v| v == "postgres")
}

impl TestDatabase {
    /// The database the suite runs on.
    pub async fn for_suite() -> Self {
        if suite_on_postgres() {
            Self::postgres_or_skip().await.unwrap_or_else(|| {
                panic!(
                    "TEST_DATABASE=postgres, but PostgreSQL at {} is not reachable",
                    shown(&admin_url())
                )
            })
        } else {
            Self::sqlite()
        }
    }

    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("app.db");
        Self {
            url: format!("sqlite://{}", file.display()),
            kind: Kind::Sqlite { file, _dir: dir },
        }
    }

    /// A new PostgreSQL database, or `None` (after printing why) when no server answers and
    /// `REQUIRE_POSTGRES=1` is not set. With it set, an unreachable server fails the test:
    /// CI never skips these silently.
    pub async fn postgres_or_skip() -> Option<Self> {
        let admin_url = admin_url();
        let mut admin = match tokio::time::timeout(
            Duration::from_secs(5),
            sqlx::PgConnection::connect(&admin_url),
        )
        .await
        {
            Ok(Ok(admin)) => admin,
            outcome => {
                let why = match outcome {
                    Ok(Err(error)) => error.to_string(),
                    _ => "no answer in 5 s".to_owned(),
                };
                assert!(
                    !postgres_required(),
                    "REQUIRE_POSTGRES=1 but PostgreSQL at {} is not reachable: {why}",
                    shown(&admin_url)
                );
                eprintln!(
                    "notice: skipped: PostgreSQL at {} is not reachable ({why}); set \
                     TEST_POSTGRES_URL, or REQUIRE_POSTGRES=1 to make this a failure",
                    shown(&admin_url)
                );
                return None;
            }
        };
        drop_stale_databases(&mut admin).await;
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        #[allow(clippy::disallowed_methods)] // names only; the app's clock is not involved
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let name = format!(
            "qc_test_{now}_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await
            .unwrap();
        admin.close().await.ok();
        let mut url = url::Url::parse(&admin_url).unwrap();
        url.set_path(&name);
        Some(Self {
            url: url.to_string(),
            kind: Kind::Postgres { admin_url, name },
        })
    }

    /// On SQLite, holds the database's write lock (as another writer would) until the
    /// returned sender is dropped or sent to; `None` on PostgreSQL.
    pub async fn hold_write_lock(&self) -> Option<tokio::sync::oneshot::Sender<()>> {
        let Kind::Sqlite { .. } = &self.kind else {
            return None;
        };
        let mut db = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut db)
            .await
            .unwrap();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = released.await;
            sqlx::query("ROLLBACK").execute(&mut db).await.unwrap();
        });
        Some(release)
    }

    /// Runs one statement (tests that tamper with what the app stored).
    pub async fn execute(&self, sql: &str) {
        match &self.kind {
            Kind::Sqlite { .. } => {
                let mut db = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&mut db).await.unwrap();
            }
            Kind::Postgres { .. } => {
                let mut db = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query(sql).execute(&mut db).await.unwrap();
            }
        }
    }

    /// `SELECT COUNT(*) FROM {table}`.
    /// The one whole number `sql` selects, if it selects a row (and it is not NULL).
    pub async fn scalar(&self, sql: &str) -> Option<i64> {
        match &self.kind {
            Kind::Sqlite { .. } => {
                let mut db = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar::<_, Option<i64>>(sql)
                    .fetch_optional(&mut db)
                    .await
                    .unwrap()
                    .flatten()
            }
            Kind::Postgres { .. } => {
                let mut db = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar::<_, Option<i64>>(sql)
                    .fetch_optional(&mut db)
                    .await
                    .unwrap()
                    .flatten()
            }
        }
    }

    pub async fn count(&self, table: &str) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        match &self.kind {
            Kind::Sqlite { .. } => {
                let mut db = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(&sql).fetch_one(&mut db).await.unwrap()
            }
            Kind::Postgres { .. } => {
                let mut db = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(&sql).fetch_one(&mut db).await.unwrap()
            }
        }
    }

    /// Everything the database holds, as bytes to search for secrets: the SQLite files (after
    /// a checkpoint, so the WAL is in them), or every row of every table of the app's, with
    /// each binary column's raw bytes.
    pub async fn raw_contents(&self) -> Vec<u8> {
        let mut raw = Vec::new();
        match &self.kind {
            Kind::Sqlite { file, .. } => {
                let mut db = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&mut db)
                    .await
                    .unwrap();
                db.close().await.unwrap();
                for suffix in ["", "-wal", "-shm"] {
                    if let Ok(bytes) = std::fs::read(format!("{}{suffix}", file.display())) {
                        raw.extend_from_slice(&bytes);
                    }
                }
            }
            Kind::Postgres { .. } => {
                let mut db = sqlx::PgConnection::connect(&self.url).await.unwrap();
                let tables: Vec<(String, String)> = sqlx::query_as(
                    "SELECT table_schema::text, table_name::text FROM information_schema.tables \
                     WHERE table_schema IN ('public', 'tower_sessions') \
                     AND table_type = 'BASE TABLE'",
                )
                .fetch_all(&mut db)
                .await
                .unwrap();
                assert!(tables.len() >= 3, "the app's tables: {tables:?}");
                for (schema, table) in tables {
                    let rows: Vec<String> = sqlx::query_scalar(&format!(
                        "SELECT t::text FROM \"{schema}\".\"{table}\" t"
                    ))
                    .fetch_all(&mut db)
                    .await
                    .unwrap();
                    for row in rows {
                        raw.extend_from_slice(row.as_bytes());
                    }
                    let binary: Vec<String> = sqlx::query_scalar(
                        "SELECT column_name::text FROM information_schema.columns \
                         WHERE table_schema = $1 AND table_name = $2 AND data_type = 'bytea'",
                    )
                    .bind(&schema)
                    .bind(&table)
                    .fetch_all(&mut db)
                    .await
                    .unwrap();
                    for column in binary {
                        let values: Vec<Option<Vec<u8>>> = sqlx::query_scalar(&format!(
                            "SELECT \"{column}\" FROM \"{schema}\".\"{table}\""
                        ))
                        .fetch_all(&mut db)
                        .await
                        .unwrap();
                        for value in values.into_iter().flatten() {
                            raw.extend_from_slice(&value);
                        }
                    }
                }
                db.close().await.unwrap();
            }
        }
        raw
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Kind::Postgres { admin_url, name } = &self.kind else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        let shown_name = name.clone();
        // Drop runs inside the test's runtime, which cannot be blocked on: a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                // FORCE: the app under test may still hold pooled connections.
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("warning: test database {shown_name} was not dropped; the next run drops it");
        }
    }
}

/// Drops test databases left behind by runs that were killed before their `Drop` ran.
async fn drop_stale_databases(admin: &mut sqlx::PgConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 'qc\\_test\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    .unwrap_or_default();
    #[allow(clippy::disallowed_methods)]
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for name in names {
        let created = name
            .strip_prefix("qc_test_")
            .and_then(|rest| rest.split('_').next())
            .and_then(|secs| secs.parse::<u64>().ok());
        if created.is_some_and(|created| now.saturating_sub(created) > STALE_AFTER.as_secs()) {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .execute(&mut *admin)
                .await;
        }
    }
}

/// A database URL without its password, for messages.
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => "(unparsable TEST_POSTGRES_URL)".to_owned(),
    }
}
