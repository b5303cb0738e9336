//! Where the app's data lives: a SQLite file or a PostgreSQL database.

use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::{var, ConfigError};

/// Where the database lives when `DATABASE_URL` is not set: a SQLite file, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/qentrah-connect.db";

/// Where the app's data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite database file (created with its folder on first start): one instance.
    Sqlite { url: String, file: Option<PathBuf> },
    /// A PostgreSQL database, shared by any number of instances.
    Postgres(PostgresUrl),
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let value = raw.trim();
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            return PostgresUrl::parse(value).map(Self::Postgres);
        }
        let Some(rest) = value.strip_prefix("sqlite:") else {
            return Err(ConfigError::new(
                var::DATABASE_URL,
                "must be a SQLite URL such as sqlite://data/qentrah-connect.db \
                 or a PostgreSQL URL such as postgres://app@db.internal/qentrah_connect",
            ));
        };
        let path = rest.trim_start_matches("//");
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(ConfigError::new(
                var::DATABASE_URL,
                "must name a SQLite file, such as sqlite://data/qentrah-connect.db",
            ));
        }
        let file = (path != ":memory:").then(|| PathBuf::from(path));
        Ok(Self::Sqlite {
            url: value.to_owned(),
            file,
        })
    }
}

/// A PostgreSQL connection URL. It may carry a password, so it never prints: `Debug` shows
/// the host and database name only.
#[derive(Clone)]
pub struct PostgresUrl {
    url: SecretString,
    shown: String,
}

impl PostgresUrl {
    fn parse(value: &str) -> Result<Self, ConfigError> {
        let invalid = || {
            ConfigError::new(
                var::DATABASE_URL,
                "must be a PostgreSQL URL with a host and a database name, \
                 such as postgres://app@db.internal/qentrah_connect",
            )
        };
        let url = Url::parse(value).map_err(|_| invalid())?;
        let database = url.path().trim_start_matches('/');
        // A socket-only URL (`postgres:///db?host=/run/postgresql`) has no host part.
        let host = url
            .host_str()
            .map(str::to_owned)
            .or_else(|| {
                url.query_pairs()
                    .find(|(k, _)| k == "host")
                    .map(|(_, v)| v.into_owned())
            })
            .ok_or_else(invalid)?;
        if database.is_empty() || database.contains('/') {
            return Err(invalid());
        }
        Ok(Self {
            url: SecretString::from(value.to_owned()),
            shown: format!("postgres://{host}/{database}"),
        })
    }

    /// The full URL, credentials included: only for opening the pool.
    pub fn expose(&self) -> &str {
        self.url.expose_secret()
    }

    /// The host and database, without credentials: safe to print.
    pub fn shown(&self) -> &str {
        &self.shown
    }
}

impl PartialEq for PostgresUrl {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for PostgresUrl {}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({})", self.shown)
    }
}
