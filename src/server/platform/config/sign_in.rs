//! Sign-in ("Open App"): whether pages need a signed-in Workspace user (`AUTH_MODE`), what the
//! sign-in asks for, how Workspace roles map to this app's, and how long a sign-in holds.

use std::time::Duration;

use super::{var, ConfigError, Env};

/// Whether pages need a signed-in user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMode {
    /// Today's product: a browser sees the connection it made; no sign-in.
    #[default]
    Connect,
    /// Every page but the public ones needs a signed-in Workspace user; an organization's
    /// connection serves its active members.
    Sso,
}

/// This app's roles.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AppRole {
    Member,
    Admin,
}

impl AppRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AppRole::Member => "member",
            AppRole::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "member" => Some(AppRole::Member),
            "admin" => Some(AppRole::Admin),
            _ => None,
        }
    }
}

/// Workspace roles to app roles. A Workspace role not in the map gets no access at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleMap(Vec<(String, AppRole)>);

pub const DEFAULT_ROLE_MAP: &str = "owner:admin,admin:admin,member:member";
pub const DEFAULT_SSO_SCOPES: &str = "openid profile email organization";
pub const DEFAULT_REVALIDATE_SECS: u64 = 300;
pub const DEFAULT_REVALIDATE_GRACE_SECS: u64 = 900;
pub const DEFAULT_SESSION_ABSOLUTE_SECS: u64 = 43_200;

impl RoleMap {
    /// `workspace_role:app_role` pairs, comma-separated. A Workspace role is 1–64 of
    /// `a-z A-Z 0-9 _ -` (compared exactly); an app role is `admin` or `member`; a Workspace
    /// role named twice is refused (which entry would win is not obvious).
    pub fn parse(raw: &str) -> Option<Self> {
        let mut pairs: Vec<(String, AppRole)> = Vec::new();
        for entry in raw.split(',') {
            let (workspace, app) = entry.trim().split_once(':')?;
            let valid = (1..=64).contains(&workspace.len())
                && workspace
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid || pairs.iter().any(|(known, _)| known == workspace) {
                return None;
            }
            pairs.push((workspace.to_owned(), AppRole::parse(app)?));
        }
        Some(Self(pairs))
    }

    /// The app role of `workspace_role`, if the map gives it one.
    pub fn map(&self, workspace_role: &str) -> Option<AppRole> {
        self.0
            .iter()
            .find(|(known, _)| known == workspace_role)
            .map(|(_, role)| *role)
    }
}

/// Sign-in's settings.
#[derive(Debug, Clone)]
pub struct SignInConfig {
    pub mode: AuthMode,
    /// Always contains `openid` (OpenID Connect Core §3.1.2.1).
    pub scopes: Vec<String>,
    pub roles: RoleMap,
    /// How often role and membership are checked again at the Workspace.
    pub revalidate: Duration,
    /// How long a session survives a Workspace outage during those checks.
    pub revalidate_grace: Duration,
    /// A sign-in ends after this, however active.
    pub session_absolute: Duration,
}

impl SignInConfig {
    pub fn from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        let mode = env.parsed_or(var::AUTH_MODE, AuthMode::Connect, |value| {
            match value.trim() {
                "connect" => Ok(AuthMode::Connect),
                "sso" => Ok(AuthMode::Sso),
                _ => Err(ConfigError::new(var::AUTH_MODE, "must be connect or sso")),
            }
        })?;
        let scopes: Vec<String> = env
            .optional(var::SSO_SCOPES)
            .unwrap_or_else(|| DEFAULT_SSO_SCOPES.to_owned())
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !scopes.iter().any(|s| s == "openid") {
            return Err(ConfigError::new(
                var::SSO_SCOPES,
                "must contain openid (space-separated scopes)",
            ));
        }
        if scopes.iter().any(|s| {
            !s.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        }) {
            // RFC 6749 §3.3: a scope token is printable ASCII without `"` and `\`.
            return Err(ConfigError::new(
                var::SSO_SCOPES,
                "must be space-separated scopes of printable ASCII",
            ));
        }
        let roles = env.parsed_or(
            var::ROLE_MAP,
            RoleMap::parse(DEFAULT_ROLE_MAP).unwrap_or(RoleMap(Vec::new())),
            |value| {
                RoleMap::parse(value).ok_or_else(|| {
                    ConfigError::new(
                        var::ROLE_MAP,
                        "must be comma-separated workspace_role:app_role pairs (app roles: admin, member), each Workspace role once",
                    )
                })
            },
        )?;
        let seconds = |name: &'static str, range: std::ops::RangeInclusive<u64>, default, rule| {
            env.number_in(name, range, default, rule)
                .map(Duration::from_secs)
        };
        Ok(Self {
            mode,
            scopes,
            roles,
            revalidate: seconds(
                var::SSO_REVALIDATE_SECS,
                5..=3600,
                DEFAULT_REVALIDATE_SECS,
                "must be seconds from 5 to 3600",
            )?,
            revalidate_grace: seconds(
                var::SSO_REVALIDATE_GRACE_SECS,
                0..=86_400,
                DEFAULT_REVALIDATE_GRACE_SECS,
                "must be seconds from 0 to 86400",
            )?,
            // At most the idle lifetime of a session (7 days): beyond it, the idle expiry ends
            // every session first.
            session_absolute: seconds(
                var::SESSION_ABSOLUTE_SECS,
                300..=604_800,
                DEFAULT_SESSION_ABSOLUTE_SECS,
                "must be seconds from 300 to 604800",
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<SignInConfig, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        SignInConfig::from_env(&Env::new(&lookup))
    }

    #[test]
    fn the_defaults_are_the_issues() {
        let config = load(&[]).unwrap();
        assert_eq!(config.mode, AuthMode::Connect);
        assert_eq!(
            config.scopes,
            ["openid", "profile", "email", "organization"]
        );
        assert_eq!(config.revalidate, Duration::from_secs(300));
        assert_eq!(config.revalidate_grace, Duration::from_secs(900));
        assert_eq!(config.session_absolute, Duration::from_secs(43_200));
        assert_eq!(config.roles.map("owner"), Some(AppRole::Admin));
        assert_eq!(config.roles.map("admin"), Some(AppRole::Admin));
        assert_eq!(config.roles.map("member"), Some(AppRole::Member));
        // Not in the map: no access, not a guess.
        assert_eq!(config.roles.map("billing"), None);
        assert_eq!(config.roles.map("Admin"), None);
        assert_eq!(load(&[("AUTH_MODE", "sso")]).unwrap().mode, AuthMode::Sso);
    }

    #[test]
    fn each_variable_names_itself_when_refused() {
        for (name, bad) in [
            ("AUTH_MODE", "SSO"),
            ("AUTH_MODE", "oidc"),
            ("QENTRAH_SSO_SCOPES", "profile email"),
            ("QENTRAH_SSO_SCOPES", "openid \"quoted\""),
            ("QENTRAH_ROLE_MAP", "owner"),
            ("QENTRAH_ROLE_MAP", "owner:superuser"),
            ("QENTRAH_ROLE_MAP", "owner:admin,owner:member"),
            ("QENTRAH_ROLE_MAP", "own er:admin"),
            ("QENTRAH_ROLE_MAP", ":admin"),
            ("SSO_REVALIDATE_SECS", "4"),
            ("SSO_REVALIDATE_SECS", "3601"),
            ("SSO_REVALIDATE_GRACE_SECS", "-1"),
            ("SESSION_ABSOLUTE_SECS", "60"),
            ("SESSION_ABSOLUTE_SECS", "604801"),
        ] {
            let error = load(&[(name, bad)]).unwrap_err();
            assert_eq!(error.variable, name, "{name}={bad}");
            if bad.parse::<i64>().is_err() {
                assert!(!error.to_string().contains(bad), "{error}");
            }
        }
    }

    #[test]
    fn a_role_map_maps_exactly() {
        let map = RoleMap::parse("owner:admin, viewer:member").unwrap();
        assert_eq!(map.map("viewer"), Some(AppRole::Member));
        assert_eq!(map.map("member"), None);
        assert!(AppRole::Admin > AppRole::Member);
    }
}
