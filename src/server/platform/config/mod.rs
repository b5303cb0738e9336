//! Configuration, parsed once at start into typed values.
//!
//! Every variable is read here and nowhere else, through the rules of [`Env`]. A missing or
//! invalid value becomes a [`ConfigError`] naming the variable and the rule it breaks, and
//! never its value: the secrets among them must not reach a terminal or a log, and a URL may
//! carry credentials. By concern: [`urls`], [`secrets`], [`database`], [`providers`] (Qentrah's
//! and a profiles file's).

use std::borrow::Cow;

mod database;
mod env;
mod providers;
mod secrets;
mod sign_in;
mod urls;
mod webhooks;

pub use database::{DatabaseUrl, PostgresUrl, DEFAULT_DATABASE_URL};
pub use env::Env;
pub use providers::{
    default_scopes, ClientAuthentication, ClientId, ClientSecret, IssPolicy, OtherProvider, Scopes,
    WorkspaceConfig, DEFAULT_PAGE_SIZE, PAGE_SIZE_RANGE,
};
pub use secrets::{
    parse_key, SessionSecret, VaultKeys, DEVELOPMENT_SESSION_SECRET, SESSION_SECRET_MIN_CHARS,
};
pub use sign_in::{AppRole, AuthMode, RoleMap, SignInConfig};
pub use urls::{PartnerAppUrl, WorkspaceApiUrl};
pub use webhooks::{WebhookConfig, WebhookSecret, DEVELOPMENT_WEBHOOK_SECRET};

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
    /// A TOML file of provider profiles beside Qentrah's (secrets stay in the environment).
    pub const PROVIDER_PROFILES_FILE: &str = "PROVIDER_PROFILES_FILE";
    pub const WEBHOOK_SECRETS: &str = "QENTRAH_WEBHOOK_SECRETS";
    pub const WEBHOOK_TOLERANCE_SECS: &str = "QENTRAH_WEBHOOK_TOLERANCE_SECS";
    pub const UNINSTALL_DATA_RETENTION_HOURS: &str = "UNINSTALL_DATA_RETENTION_HOURS";
    pub const AUTH_MODE: &str = "AUTH_MODE";
    pub const SSO_SCOPES: &str = "QENTRAH_SSO_SCOPES";
    pub const ROLE_MAP: &str = "QENTRAH_ROLE_MAP";
    pub const SSO_REVALIDATE_SECS: &str = "SSO_REVALIDATE_SECS";
    pub const SSO_REVALIDATE_GRACE_SECS: &str = "SSO_REVALIDATE_GRACE_SECS";
    pub const SESSION_ABSOLUTE_SECS: &str = "SESSION_ABSOLUTE_SECS";
}

/// How long one call to the Workspace may take, by default.
pub const DEFAULT_HTTP_TIMEOUT_MS: u64 = 15_000;

/// Requests per minute one client address may make to the OAuth routes, by default.
pub const DEFAULT_AUTH_RATE_LIMIT_PER_MINUTE: u32 = 60;

/// A configuration value that is missing or breaks its rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable} {rule}")]
pub struct ConfigError {
    /// The variable's name (a profile's secret names its own variable).
    pub variable: Cow<'static, str>,
    /// What the value must be, phrased to follow the name.
    pub rule: String,
}

impl ConfigError {
    fn new(variable: impl Into<Cow<'static, str>>, rule: impl Into<String>) -> Self {
        Self {
            variable: variable.into(),
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
    /// Providers beside Qentrah, each a Workspace-like OAuth provider of its own, from the
    /// profiles file (`PROVIDER_PROFILES_FILE`).
    pub other_providers: Vec<OtherProvider>,
    /// Marketplace install webhooks (off without `QENTRAH_WEBHOOK_SECRETS`).
    pub webhooks: WebhookConfig,
    /// Sign-in ("Open App"): `AUTH_MODE` and its settings.
    pub sign_in: SignInConfig,
}

impl AppConfig {
    /// Reads the process environment (after `.env`, which `main` loads first).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any source of variables, so tests need no process env.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(&lookup);
        let workspace = WorkspaceConfig::qentrah_from_env(&env)?;
        let partner_app_url = PartnerAppUrl::parse(&env.required(var::PARTNER_APP_URL)?)?;
        let session_secret = SessionSecret::parse(env.required(var::SESSION_SECRET)?)?;
        // Over https this is a real deployment: the development secret from `.env.example` is
        // public, and the cookie key and (without TOKEN_VAULT_KEY) the vault key derive from it.
        if partner_app_url.is_https() && session_secret.expose() == DEVELOPMENT_SESSION_SECRET {
            return Err(ConfigError::new(
                var::SESSION_SECRET,
                "is the public development value from .env.example; generate a fresh one for an https deployment (e.g. `openssl rand -base64 48`)",
            ));
        }
        let webhooks = WebhookConfig::from_env(&env)?;
        // Likewise the development webhook signing secret: anyone could sign installs with it.
        let development_webhook_secret = WebhookSecret::parse(DEVELOPMENT_WEBHOOK_SECRET);
        if partner_app_url.is_https()
            && webhooks.secrets.iter().any(|s| {
                Some(s.expose())
                    == development_webhook_secret
                        .as_ref()
                        .map(WebhookSecret::expose)
            })
        {
            return Err(ConfigError::new(
                var::WEBHOOK_SECRETS,
                "holds the public development value from .env.example; use the signing secret the Workspace shows for your app",
            ));
        }
        let sign_in = SignInConfig::from_env(&env)?;
        // Sign-in uses each installation's client, which only the marketplace's webhooks
        // deliver: without them nobody could ever sign in.
        if sign_in.mode == AuthMode::Sso && !webhooks.enabled() {
            return Err(ConfigError::new(
                var::AUTH_MODE,
                "is sso, which needs QENTRAH_WEBHOOK_SECRETS (sign-in uses the client each installation delivers)",
            ));
        }
        Ok(Self {
            sign_in,
            workspace,
            partner_app_url,
            session_secret,
            vault: VaultKeys::from_env(&env)?,
            auth_rate_limit_per_minute: env.number_in(
                var::AUTH_RATE_LIMIT_PER_MINUTE,
                1..=u32::MAX,
                DEFAULT_AUTH_RATE_LIMIT_PER_MINUTE,
                "must be a whole number above 0",
            )?,
            http_timeout: std::time::Duration::from_millis(env.number_in(
                var::HTTP_TIMEOUT_MS,
                100..=300_000,
                DEFAULT_HTTP_TIMEOUT_MS,
                "must be milliseconds from 100 to 300000",
            )?),
            trusted_proxy_hops: env.number_in(
                var::TRUSTED_PROXY_HOPS,
                0..=10,
                0,
                "must be the number of proxies in front of the app, from 0 to 10",
            )?,
            database: env.parsed_or(
                var::DATABASE_URL,
                DatabaseUrl::parse(DEFAULT_DATABASE_URL)?,
                DatabaseUrl::parse,
            )?,
            other_providers: providers::other_providers(&env)?,
            webhooks,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;

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

    #[test]
    fn sso_needs_the_marketplace() {
        let mut vars = valid();
        vars.insert(var::AUTH_MODE, "connect".to_owned());
        assert_eq!(
            AppConfig::from_lookup(|name| vars.get(name).cloned())
                .unwrap()
                .sign_in
                .mode,
            AuthMode::Connect
        );
        vars.insert(var::AUTH_MODE, "sso".to_owned());
        vars.remove(var::WEBHOOK_SECRETS);
        let err = AppConfig::from_lookup(|name| vars.get(name).cloned()).unwrap_err();
        assert_eq!(err.variable, var::AUTH_MODE);
        vars.insert(var::WEBHOOK_SECRETS, DEVELOPMENT_WEBHOOK_SECRET.to_owned());
        assert_eq!(
            AppConfig::from_lookup(|name| vars.get(name).cloned())
                .unwrap()
                .sign_in
                .mode,
            AuthMode::Sso
        );
    }

    #[test]
    fn the_development_webhook_secret_is_refused_over_https() {
        let example =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example")).unwrap();
        assert!(
            example.contains(&format!(
                "QENTRAH_WEBHOOK_SECRETS={DEVELOPMENT_WEBHOOK_SECRET}\n"
            )),
            ".env.example ships the development secret this check knows"
        );
        assert_eq!(
            DEVELOPMENT_WEBHOOK_SECRET,
            qentrah_dev_workspace::DEV_WEBHOOK_SECRET,
            "the dev Workspace signs with it"
        );
        let mut vars = valid();
        vars.insert(var::WEBHOOK_SECRETS, DEVELOPMENT_WEBHOOK_SECRET.to_owned());
        assert!(AppConfig::from_lookup(|name| vars.get(name).cloned()).is_ok());
        vars.insert(var::PARTNER_APP_URL, "https://partner.example".to_owned());
        let err = AppConfig::from_lookup(|name| vars.get(name).cloned()).unwrap_err();
        assert_eq!(err.variable, var::WEBHOOK_SECRETS);
        assert!(!err.to_string().contains("whsec_"), "{err}");
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
