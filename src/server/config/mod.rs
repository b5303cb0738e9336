//! Configuration, parsed once at start into typed values.
//!
//! Every variable is read here and nowhere else. A missing or invalid value becomes a
//! [`ConfigError`] naming the variable and the rule it breaks, and never its value: the
//! secrets among them must not reach a terminal or a log, and a URL may carry credentials.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

/// The variables, by the exact names the Qentrah integration brief gives them.
pub mod var {
    pub const WORKSPACE_API_URL: &str = "QENTRAH_WORKSPACE_API_URL";
    pub const CLIENT_ID: &str = "QENTRAH_CLIENT_ID";
    pub const CLIENT_SECRET: &str = "QENTRAH_CLIENT_SECRET";
    pub const PARTNER_APP_URL: &str = "PARTNER_APP_URL";
    pub const SESSION_SECRET: &str = "SESSION_SECRET";
    pub const DATABASE_URL: &str = "DATABASE_URL";
    pub const SCOPES: &str = "QENTRAH_SCOPES";
    pub const TOKEN_VAULT_KEY: &str = "TOKEN_VAULT_KEY";
    pub const TOKEN_VAULT_PREVIOUS_KEYS: &str = "TOKEN_VAULT_PREVIOUS_KEYS";
    pub const AUTH_RATE_LIMIT_PER_MINUTE: &str = "AUTH_RATE_LIMIT_PER_MINUTE";
    pub const HTTP_TIMEOUT_MS: &str = "QENTRAH_HTTP_TIMEOUT_MS";
    pub const TRUSTED_PROXY_HOPS: &str = "TRUSTED_PROXY_HOPS";
    pub const PAGE_SIZE: &str = "QENTRAH_PAGE_SIZE";
}

/// The `limit` asked of the partner API's lists, by default, and the range accepted.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const PAGE_SIZE_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;

/// A whole number from `range` in variable `name`, or `default` when it is unset or blank.
fn whole_number_in(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    range: std::ops::RangeInclusive<u32>,
    default: u32,
) -> Result<u32, ConfigError> {
    match lookup(name) {
        Some(value) if !value.trim().is_empty() => value
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| range.contains(n))
            .ok_or_else(|| {
                ConfigError::new(
                    name,
                    format!(
                        "must be a whole number from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            }),
        _ => Ok(default),
    }
}

/// How long one call to the Workspace may take, by default.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 15_000;

/// Requests per minute one client address may make to the OAuth routes, by default.
pub const DEFAULT_AUTH_RATE_LIMIT_PER_MINUTE: u32 = 60;

/// The scopes requested when `QENTRAH_SCOPES` is not set: the brief's set.
/// The scopes requested when `QENTRAH_SCOPES` is unset: every scope of the partner API.
pub fn default_scopes() -> String {
    crate::vocabulary::QENTRAH_SCOPES
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Where the database lives when `DATABASE_URL` is not set: a SQLite file, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/qentrah-connect.db";

/// The development `SESSION_SECRET` shipped in `.env.example`: public, so refused for any
/// https `PARTNER_APP_URL`.
pub const DEVELOPMENT_SESSION_SECRET: &str = "dev-only-session-secret-change-me-0123456789";

/// The minimum length of `SESSION_SECRET`, in characters.
pub const SESSION_SECRET_MIN_CHARS: usize = 32;

/// A configuration value that is missing or breaks its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable} {rule}")]
pub struct ConfigError {
    /// The variable's name.
    pub variable: &'static str,
    /// What the value must be, phrased to follow the name.
    pub rule: String,
}

impl ConfigError {
    fn new(variable: &'static str, rule: impl Into<String>) -> Self {
        Self {
            variable,
            rule: rule.into(),
        }
    }
}

/// The whole configuration of the app.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub workspace: WorkspaceConfig,
    pub partner_app_url: PartnerAppUrl,
    pub session_secret: SessionSecret,
    pub database: DatabaseUrl,
    pub vault: VaultKeys,
    /// Requests per minute per client address on `/api/auth/…`.
    pub auth_rate_limit_per_minute: u32,
    /// The whole-request timeout for calls to the Workspace (token and partner API).
    pub http_timeout: std::time::Duration,
    /// How many reverse proxies (load balancers) in front of the app append to
    /// `X-Forwarded-For`; 0 (the default) trusts no such header and keys by the peer address.
    pub trusted_proxy_hops: u8,
    /// Providers beside Qentrah, each a Workspace-like OAuth provider of its own. None come
    /// from the environment yet; a profile file will add them.
    pub other_providers: Vec<OtherProvider>,
}

/// A provider beside Qentrah: its name (the `provider` of its connections, and its routes
/// `/api/auth/{name}/start` and `/callback`) and where it lives and who we are to it.
#[derive(Debug, Clone)]
pub struct OtherProvider {
    pub name: String,
    pub workspace: WorkspaceConfig,
}

/// Keys for the token vault: the current one (absent: derived from `SESSION_SECRET`) and
/// earlier ones that still decrypt rows written before a rotation.
#[derive(Debug, Clone)]
pub struct VaultKeys {
    pub current: Option<VaultKeyMaterial>,
    pub previous: Vec<VaultKeyMaterial>,
}

/// 32 bytes of key material for the vault's AEAD.
///
/// # Security
/// Never printed, never serialized; only the vault's cipher reads it.
pub struct VaultKeyMaterial(secrecy::SecretBox<[u8; 32]>);

impl Clone for VaultKeyMaterial {
    fn clone(&self) -> Self {
        Self::from_bytes(*self.expose())
    }
}

impl VaultKeyMaterial {
    /// Parses base64 (standard or URL-safe, padding optional) of exactly 32 bytes.
    pub fn parse(name: &'static str, raw: &str) -> Result<Self, ConfigError> {
        use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
        use base64::Engine;
        let trimmed = raw.trim().trim_end_matches('=');
        let bytes = STANDARD_NO_PAD
            .decode(trimmed)
            .or_else(|_| URL_SAFE_NO_PAD.decode(trimmed))
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
            .ok_or_else(|| {
                ConfigError::new(
                    name,
                    "must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)",
                )
            })?;
        Ok(Self(secrecy::SecretBox::new(Box::new(bytes))))
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(secrecy::SecretBox::new(Box::new(bytes)))
    }

    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for VaultKeyMaterial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultKeyMaterial([redacted])")
    }
}

/// The Qentrah Workspace this app talks to and the OAuth client it is registered as.
///
/// Kept in configuration, not constants, so that several Workspaces (and, later, other
/// providers) can be configured side by side.
#[derive(Debug, Clone)]
pub struct WorkspaceConfig {
    pub api_url: WorkspaceApiUrl,
    pub client_id: ClientId,
    /// `None` for a public PKCE client; a confidential server app has one.
    pub client_secret: Option<ClientSecret>,
    /// The scopes to request: the smallest set the product's features need.
    pub scopes: Scopes,
    /// `limit` on list requests (`QENTRAH_PAGE_SIZE`): how many records one upstream page
    /// holds. The brief documents no range; 1–1000 is accepted, the Workspace may refuse more.
    pub page_size: u32,
}

/// OAuth scopes (`QENTRAH_SCOPES`, space-separated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let mut scopes: Vec<String> = Vec::new();
        for scope in raw.split_ascii_whitespace() {
            // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            if !scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            {
                return Err(ConfigError::new(
                    var::SCOPES,
                    "must be scope names separated by spaces",
                ));
            }
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        if scopes.is_empty() {
            return Err(ConfigError::new(
                var::SCOPES,
                "must name at least one scope",
            ));
        }
        Ok(Self(scopes))
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    /// The space-separated form sent on the wire.
    pub fn to_param(&self) -> String {
        self.0.join(" ")
    }
}

impl AppConfig {
    /// Reads the process environment (after `.env`, which `main` loads first).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any source of variables, so tests need no process env.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |name: &'static str| {
            lookup(name)
                .filter(|value| !value.trim().is_empty())
                .ok_or_else(|| ConfigError::new(name, "is required but not set"))
        };

        let api_url = WorkspaceApiUrl::parse(&required(var::WORKSPACE_API_URL)?)?;
        let client_id = ClientId::parse(&required(var::CLIENT_ID)?)?;
        let client_secret = match lookup(var::CLIENT_SECRET) {
            Some(value) if !value.trim().is_empty() => Some(ClientSecret::parse(value)?),
            _ => None,
        };
        let partner_app_url = PartnerAppUrl::parse(&required(var::PARTNER_APP_URL)?)?;
        let session_secret = SessionSecret::parse(required(var::SESSION_SECRET)?)?;
        // Over https this is a real deployment: the development secret from `.env.example` is
        // public, and the cookie key and (without TOKEN_VAULT_KEY) the vault key derive from it.
        if partner_app_url.is_https() && session_secret.expose() == DEVELOPMENT_SESSION_SECRET {
            return Err(ConfigError::new(
                var::SESSION_SECRET,
                "is the public development value from .env.example; generate a fresh one for an https deployment (e.g. `openssl rand -base64 48`)",
            ));
        }
        let scopes = match lookup(var::SCOPES) {
            Some(value) if !value.trim().is_empty() => Scopes::parse(&value)?,
            _ => Scopes::parse(&default_scopes())?,
        };
        let current = match lookup(var::TOKEN_VAULT_KEY) {
            Some(value) if !value.trim().is_empty() => {
                Some(VaultKeyMaterial::parse(var::TOKEN_VAULT_KEY, &value)?)
            }
            _ => None,
        };
        let previous = lookup(var::TOKEN_VAULT_PREVIOUS_KEYS)
            .unwrap_or_default()
            .split(',')
            .filter(|key| !key.trim().is_empty())
            .map(|key| VaultKeyMaterial::parse(var::TOKEN_VAULT_PREVIOUS_KEYS, key))
            .collect::<Result<Vec<_>, _>>()?;
        let auth_rate_limit_per_minute = match lookup(var::AUTH_RATE_LIMIT_PER_MINUTE) {
            Some(value) if !value.trim().is_empty() => value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| {
                    ConfigError::new(
                        var::AUTH_RATE_LIMIT_PER_MINUTE,
                        "must be a whole number above 0",
                    )
                })?,
            _ => DEFAULT_AUTH_RATE_LIMIT_PER_MINUTE,
        };
        let http_timeout = match lookup(var::HTTP_TIMEOUT_MS) {
            Some(value) if !value.trim().is_empty() => value
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|ms| (100..=300_000).contains(ms))
                .map(std::time::Duration::from_millis)
                .ok_or_else(|| {
                    ConfigError::new(
                        var::HTTP_TIMEOUT_MS,
                        "must be milliseconds from 100 to 300000",
                    )
                })?,
            _ => std::time::Duration::from_millis(DEFAULT_HTTP_TIMEOUT_MS),
        };
        let trusted_proxy_hops = match lookup(var::TRUSTED_PROXY_HOPS) {
            Some(value) if !value.trim().is_empty() => value
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= 10)
                .ok_or_else(|| {
                    ConfigError::new(
                        var::TRUSTED_PROXY_HOPS,
                        "must be the number of proxies in front of the app, from 0 to 10",
                    )
                })?,
            _ => 0,
        };
        let page_size =
            whole_number_in(&lookup, var::PAGE_SIZE, PAGE_SIZE_RANGE, DEFAULT_PAGE_SIZE)?;
        let database = match lookup(var::DATABASE_URL) {
            Some(value) if !value.trim().is_empty() => DatabaseUrl::parse(&value)?,
            _ => DatabaseUrl::parse(DEFAULT_DATABASE_URL)?,
        };

        Ok(Self {
            workspace: WorkspaceConfig {
                api_url,
                client_id,
                client_secret,
                scopes,
                page_size,
            },
            partner_app_url,
            session_secret,
            database,
            vault: VaultKeys { current, previous },
            auth_rate_limit_per_minute,
            http_timeout,
            trusted_proxy_hops,
            other_providers: Vec::new(),
        })
    }
}

/// The Workspace base URL (`QENTRAH_WORKSPACE_API_URL`), without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceApiUrl(Url);

impl WorkspaceApiUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let name = var::WORKSPACE_API_URL;
        let url = parse_http_url(name, raw, "http://localhost:3000")?;
        let mut url = url;
        // Endpoints are appended to the base (`{base}/oauth/token`), so drop a trailing slash.
        let trimmed = url.path().trim_end_matches('/').to_owned();
        url.set_path(&trimmed);
        Ok(Self(url))
    }

    /// The base as a string with no trailing slash, ready for `{base}/path`.
    pub fn as_str(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

/// The public origin of this app (`PARTNER_APP_URL`): scheme, host and port, nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartnerAppUrl(Url);

impl PartnerAppUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let name = var::PARTNER_APP_URL;
        let url = parse_http_url(name, raw, "http://localhost:3001")?;
        // The callback is `{PARTNER_APP_URL}/api/auth/qentrah/callback` and the session cookie
        // is scoped to `/`, so the app must own its whole origin.
        if url.path() != "/" {
            return Err(ConfigError::new(
                name,
                "must be an origin without a path, such as http://localhost:3001",
            ));
        }
        Ok(Self(url))
    }

    /// The origin with no trailing slash, ready for `{origin}/path`.
    pub fn origin(&self) -> &str {
        self.0.as_str().trim_end_matches('/')
    }

    /// `host[:port]` as a browser sends it in the `Host` header (default ports omitted).
    pub fn authority(&self) -> String {
        let host = self.0.host_str().unwrap_or_default();
        match self.0.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }

    /// Cookies must be `Secure` (and may use the `__Host-` prefix) only over https.
    pub fn is_https(&self) -> bool {
        self.0.scheme() == "https"
    }

    pub fn url(&self) -> &Url {
        &self.0
    }
}

/// The OAuth client id registered with Qentrah (RFC 6749 §2.2: printable ASCII, no spaces here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let value = raw.trim();
        if !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::new(
                var::CLIENT_ID,
                "must be printable ASCII without spaces",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The client secret of a confidential client.
///
/// # Security
/// Never printed (`Debug` shows `[redacted]`), never serialized, never sent to the browser;
/// only the token endpoint request reads it.
#[derive(Clone)]
pub struct ClientSecret(SecretString);

impl ClientSecret {
    pub fn parse(raw: String) -> Result<Self, ConfigError> {
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::new(
                var::CLIENT_SECRET,
                "must be printable ASCII without spaces (leave it empty for a public PKCE client)",
            ));
        }
        Ok(Self(SecretString::from(raw)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret([redacted])")
    }
}

/// The secret from which the session-cookie signing key (and later the vault key) is derived.
///
/// # Security
/// Never printed, never serialized; only key derivation reads it.
#[derive(Clone)]
pub struct SessionSecret(SecretString);

impl SessionSecret {
    pub fn parse(raw: String) -> Result<Self, ConfigError> {
        if raw.chars().count() < SESSION_SECRET_MIN_CHARS {
            return Err(ConfigError::new(
                var::SESSION_SECRET,
                format!("must be at least {SESSION_SECRET_MIN_CHARS} characters long"),
            ));
        }
        Ok(Self(SecretString::from(raw)))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SessionSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionSecret([redacted])")
    }
}

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

/// Parses an absolute http(s) URL for `name`, enforcing what every URL here must be.
fn parse_http_url(name: &'static str, raw: &str, example: &str) -> Result<Url, ConfigError> {
    let invalid = || ConfigError::new(name, format!("must be an absolute URL such as {example}"));
    let url = Url::parse(raw.trim()).map_err(|_| invalid())?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(invalid());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::new(
            name,
            "must not contain a user name or password",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::new(name, "must not have a query or fragment"));
    }
    // OAuth 2.1 and RFC 9700 §2 require TLS for everything but loopback development.
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(ConfigError::new(
            name,
            "must use https (plain http is allowed only for localhost)",
        ));
    }
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => {
            domain.eq_ignore_ascii_case("localhost") || domain.ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn the_page_size_is_configurable_within_its_range() {
        let mut vars = valid();
        let config = AppConfig::from_lookup(|name| vars.get(name).cloned()).unwrap();
        assert_eq!(config.workspace.page_size, DEFAULT_PAGE_SIZE);
        vars.insert(var::PAGE_SIZE, "250".to_owned());
        let config = AppConfig::from_lookup(|name| vars.get(name).cloned()).unwrap();
        assert_eq!(config.workspace.page_size, 250);
        for bad in ["0", "1001", "ten", "-5"] {
            vars.insert(var::PAGE_SIZE, bad.to_owned());
            let err = AppConfig::from_lookup(|name| vars.get(name).cloned()).unwrap_err();
            assert_eq!(err.variable, var::PAGE_SIZE, "{bad}");
        }
    }

    #[test]
    fn the_development_session_secret_is_refused_over_https() {
        let example =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
        assert!(
            example.contains(&format!("SESSION_SECRET={DEVELOPMENT_SESSION_SECRET}\n")),
            ".env.example ships the development secret this check knows"
        );
        let mut vars = valid();
        vars.insert(var::SESSION_SECRET, DEVELOPMENT_SESSION_SECRET.to_owned());
        assert!(
            AppConfig::from_lookup(|name| vars.get(name).cloned()).is_ok(),
            "fine over http"
        );
        vars.insert(var::PARTNER_APP_URL, "https://partner.example".to_owned());
        let err = AppConfig::from_lookup(|name| vars.get(name).cloned()).unwrap_err();
        assert_eq!(err.variable, var::SESSION_SECRET);
        assert!(
            !err.to_string().contains(DEVELOPMENT_SESSION_SECRET),
            "{err}"
        );
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef-dev";

    fn valid() -> HashMap<&'static str, String> {
        HashMap::from([
            (var::WORKSPACE_API_URL, "http://localhost:3000/".to_owned()),
            (var::CLIENT_ID, "partners_client_dev".to_owned()),
            (var::CLIENT_SECRET, String::new()),
            (var::PARTNER_APP_URL, "http://localhost:3001".to_owned()),
            (var::SESSION_SECRET, SECRET.to_owned()),
        ])
    }

    fn load(vars: &HashMap<&'static str, String>) -> Result<AppConfig, ConfigError> {
        AppConfig::from_lookup(|name| vars.get(name).cloned())
    }

    fn error_for(change: impl FnOnce(&mut HashMap<&'static str, String>)) -> ConfigError {
        let mut vars = valid();
        change(&mut vars);
        load(&vars).expect_err("configuration should be refused")
    }

    #[test]
    fn valid_configuration_parses_with_defaults() {
        let config = load(&valid()).unwrap();
        assert_eq!(config.workspace.api_url.as_str(), "http://localhost:3000");
        assert!(config.workspace.client_secret.is_none());
        assert_eq!(config.partner_app_url.origin(), "http://localhost:3001");
        assert_eq!(config.partner_app_url.authority(), "localhost:3001");
        assert!(!config.partner_app_url.is_https());
        assert_eq!(
            config.database,
            DatabaseUrl::Sqlite {
                url: DEFAULT_DATABASE_URL.to_owned(),
                file: Some(PathBuf::from("data/qentrah-connect.db")),
            }
        );
    }

    #[test]
    fn each_required_variable_is_named_when_missing() {
        for name in [
            var::WORKSPACE_API_URL,
            var::CLIENT_ID,
            var::PARTNER_APP_URL,
            var::SESSION_SECRET,
        ] {
            let err = error_for(|vars| {
                vars.remove(name);
            });
            assert_eq!(err.variable, name);
            assert_eq!(err.to_string(), format!("{name} is required but not set"));
        }
    }

    #[test]
    fn short_session_secret_is_refused_without_printing_it() {
        let err = error_for(|vars| {
            vars.insert(var::SESSION_SECRET, "too-short-but-secret".to_owned());
        });
        assert_eq!(err.variable, var::SESSION_SECRET);
        assert!(!err.to_string().contains("too-short-but-secret"));
        assert!(err.to_string().contains("at least 32 characters"));
    }

    #[test]
    fn malformed_and_unsafe_urls_are_refused() {
        for (name, value) in [
            (var::WORKSPACE_API_URL, "not a url"),
            (var::WORKSPACE_API_URL, "ftp://localhost:3000"),
            (var::WORKSPACE_API_URL, "http://qentrah.example"),
            (
                var::WORKSPACE_API_URL,
                "https://user:hunter2@qentrah.example",
            ),
            (var::WORKSPACE_API_URL, "https://qentrah.example/?x=1"),
            (var::PARTNER_APP_URL, "localhost:3001"),
            (var::PARTNER_APP_URL, "https://partner.example/app"),
        ] {
            let err = error_for(|vars| {
                vars.insert(name, value.to_owned());
            });
            assert_eq!(err.variable, name, "{value}");
            assert!(!err.to_string().contains("hunter2"));
        }
    }

    #[test]
    fn https_and_loopback_urls_are_accepted() {
        for value in [
            "https://workspace.qentrah.example",
            "http://127.0.0.1:3000",
            "http://[::1]:3000",
            "http://dev.localhost:3000",
        ] {
            let mut vars = valid();
            vars.insert(var::WORKSPACE_API_URL, value.to_owned());
            assert!(load(&vars).is_ok(), "{value}");
        }
        let mut vars = valid();
        vars.insert(var::PARTNER_APP_URL, "https://partner.example".to_owned());
        let config = load(&vars).unwrap();
        assert!(config.partner_app_url.is_https());
        assert_eq!(config.partner_app_url.authority(), "partner.example");
    }

    #[test]
    fn client_secret_is_optional_and_redacted() {
        let mut vars = valid();
        vars.insert(var::CLIENT_SECRET, "s3cr3t-value".to_owned());
        let config = load(&vars).unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("s3cr3t-value"));
        assert!(!printed.contains(SECRET));
        assert!(printed.contains("[redacted]"));
    }

    #[test]
    fn scopes_default_to_the_brief_and_can_be_narrowed() {
        let config = load(&valid()).unwrap();
        assert_eq!(
            config.workspace.scopes.to_param(),
            "organization:read client:read property:read offline_access"
        );
        let mut vars = valid();
        vars.insert(
            var::SCOPES,
            " organization:read  organization:read ".to_owned(),
        );
        assert_eq!(
            load(&vars).unwrap().workspace.scopes.to_param(),
            "organization:read"
        );
        vars.insert(var::SCOPES, "bad\"scope".to_owned());
        assert_eq!(load(&vars).unwrap_err().variable, var::SCOPES);
    }

    #[test]
    fn vault_keys_must_be_32_bytes_of_base64() {
        let mut vars = valid();
        let key = "q83vEjRWeJC6vN7wEjRWeJC6vN7wEjRWeJC6vN7wEjQ=";
        vars.insert(var::TOKEN_VAULT_KEY, key.to_owned());
        vars.insert(var::TOKEN_VAULT_PREVIOUS_KEYS, format!("{key},{key}"));
        let config = load(&vars).unwrap();
        assert!(config.vault.current.is_some());
        assert_eq!(config.vault.previous.len(), 2);
        assert!(!format!("{config:?}").contains(key));

        vars.insert(var::TOKEN_VAULT_KEY, "c2hvcnQ=".to_owned());
        let err = load(&vars).unwrap_err();
        assert_eq!(err.variable, var::TOKEN_VAULT_KEY);
        assert!(!err.to_string().contains("c2hvcnQ"));
    }

    #[test]
    fn database_url_must_be_sqlite_or_postgres() {
        let err = error_for(|vars| {
            vars.insert(var::DATABASE_URL, "mysql://localhost/db".to_owned());
        });
        assert_eq!(err.variable, var::DATABASE_URL);
        let mut vars = valid();
        vars.insert(var::DATABASE_URL, "sqlite::memory:".to_owned());
        assert!(matches!(
            load(&vars).unwrap().database,
            DatabaseUrl::Sqlite { file: None, .. }
        ));
        for missing_part in [
            "postgres://db.internal",
            "postgres://db.internal/",
            "postgres://",
        ] {
            let err = error_for(|vars| {
                vars.insert(var::DATABASE_URL, missing_part.to_owned());
            });
            assert_eq!(err.variable, var::DATABASE_URL, "{missing_part}");
        }
    }

    #[test]
    fn postgres_url_never_prints_its_password() {
        let mut vars = valid();
        vars.insert(
            var::DATABASE_URL,
            "postgresql://app:hunter2-db-password@db.internal:5433/qentrah?sslmode=require"
                .to_owned(),
        );
        let config = load(&vars).unwrap();
        let DatabaseUrl::Postgres(url) = &config.database else {
            panic!("not postgres: {:?}", config.database);
        };
        assert_eq!(url.shown(), "postgres://db.internal/qentrah");
        assert!(url.expose().contains("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));

        let err = error_for(|vars| {
            vars.insert(var::DATABASE_URL, "postgres://app:hunter2@/".to_owned());
        });
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn trusted_proxy_hops_is_a_small_number() {
        assert_eq!(load(&valid()).unwrap().trusted_proxy_hops, 0);
        let mut vars = valid();
        vars.insert(var::TRUSTED_PROXY_HOPS, "1".to_owned());
        assert_eq!(load(&vars).unwrap().trusted_proxy_hops, 1);
        for bad in ["-1", "11", "one"] {
            let err = error_for(|vars| {
                vars.insert(var::TRUSTED_PROXY_HOPS, bad.to_owned());
            });
            assert_eq!(err.variable, var::TRUSTED_PROXY_HOPS, "{bad}");
        }
    }
}
