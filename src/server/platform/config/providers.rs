//! The providers of configuration: Qentrah's, from the brief's `QENTRAH_*` variables (never
//! renamed), and any others from a profiles file (`PROVIDER_PROFILES_FILE`, TOML). A file holds
//! no secret: a profile names the variable its client secret is in.

use std::borrow::Cow;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{var, ConfigError, Env, WorkspaceApiUrl};
use crate::server::ids::ProviderId;

/// The `limit` asked of the partner API's lists, by default, and the range accepted.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
pub const PAGE_SIZE_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;

/// The scopes requested when `QENTRAH_SCOPES` is unset: every scope of the partner API.
pub fn default_scopes() -> String {
    crate::vocabulary::QENTRAH_SCOPES
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(" ")
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
    /// How a confidential client authenticates at the token and revocation endpoints.
    pub client_authentication: ClientAuthentication,
    /// Whether a callback without `iss` is refused (RFC 9207 §2.4).
    pub iss: IssPolicy,
}

/// When an authorization response must carry `iss` (RFC 9207 §2.4: a client must refuse one
/// without it from a provider that sends it, as its metadata says or as configured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssPolicy {
    /// As the provider's metadata says (`authorization_response_iss_parameter_supported`,
    /// RFC 9207 §3), read when a callback comes without `iss`: Qentrah's.
    #[default]
    FromMetadata,
    /// Always: known to send it, so its metadata is never asked.
    Always,
}

/// How a confidential client authenticates (RFC 6749 §2.3.1; RFC 7591 §2's
/// `token_endpoint_auth_method` names). A public client sends its `client_id` alone either way
/// (RFC 6749 §3.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthentication {
    /// `client_id` and `client_secret` as form fields: what the integration brief gives for
    /// Qentrah, and what its Workspace holds a client to.
    #[default]
    ClientSecretPost,
    /// HTTP Basic with the url-encoded id and secret.
    ClientSecretBasic,
}

/// OAuth scopes (`QENTRAH_SCOPES`, space-separated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        Self::parse_from(var::SCOPES, raw)
    }

    /// Scopes from `variable` (or a profile's field, named so in the error).
    pub fn parse_from(variable: &'static str, raw: &str) -> Result<Self, ConfigError> {
        let mut scopes: Vec<String> = Vec::new();
        for scope in raw.split_ascii_whitespace() {
            // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            if !scope
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            {
                return Err(ConfigError::new(
                    variable,
                    "must be scope names separated by spaces",
                ));
            }
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
        if scopes.is_empty() {
            return Err(ConfigError::new(variable, "must name at least one scope"));
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

/// The OAuth client id registered with Qentrah (RFC 6749 §2.2: printable ASCII, no spaces here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        Self::parse_from(var::CLIENT_ID, raw)
    }

    pub fn parse_from(variable: &'static str, raw: &str) -> Result<Self, ConfigError> {
        let value = raw.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::new(
                variable,
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
        Self::parse_from(var::CLIENT_SECRET.into(), raw)
    }

    /// A secret from the variable `variable` (a profile names its own).
    pub fn parse_from(variable: Cow<'static, str>, raw: String) -> Result<Self, ConfigError> {
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ConfigError::new(
                variable,
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

impl WorkspaceConfig {
    /// Qentrah's, from the brief's variables.
    pub fn qentrah_from_env(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            api_url: WorkspaceApiUrl::parse(&env.required(var::WORKSPACE_API_URL)?)?,
            client_id: ClientId::parse(&env.required(var::CLIENT_ID)?)?,
            client_secret: env
                .optional(var::CLIENT_SECRET)
                .map(ClientSecret::parse)
                .transpose()?,
            scopes: Scopes::parse(&env.optional(var::SCOPES).unwrap_or_else(default_scopes))?,
            page_size: env.number_in(
                var::PAGE_SIZE,
                PAGE_SIZE_RANGE,
                DEFAULT_PAGE_SIZE,
                "must be a whole number from 1 to 1000",
            )?,
            client_authentication: ClientAuthentication::ClientSecretPost,
            iss: IssPolicy::FromMetadata,
        })
    }
}

/// A provider beside Qentrah: its id (the `provider` of its connections, and its routes
/// `/api/auth/{id}/start` and `/callback`) and where it lives and who we are to it.
#[derive(Debug, Clone)]
pub struct OtherProvider {
    pub name: ProviderId,
    pub workspace: WorkspaceConfig,
}

/// The profiles file: `[[provider]]` tables, each a Workspace-like provider.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    #[serde(default, rename = "provider")]
    providers: Vec<ProfileEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileEntry {
    name: String,
    api_url: String,
    client_id: String,
    /// The environment variable that holds the client secret (none: a public PKCE client).
    client_secret_variable: Option<String>,
    /// Present only to be refused with a clear word: secrets never live in the file.
    client_secret: Option<serde::de::IgnoredAny>,
    /// Space-separated, as `QENTRAH_SCOPES`; default: the partner API's scopes.
    scopes: Option<String>,
    page_size: Option<u32>,
    /// `client_secret_post` (the default) or `client_secret_basic`.
    #[serde(default)]
    client_authentication: ClientAuthentication,
    /// `from_metadata` (the default) or `always`.
    #[serde(default)]
    iss: IssPolicy,
}

/// The providers the profiles file at `PROVIDER_PROFILES_FILE` adds (none when it is unset).
pub fn other_providers(env: &Env<'_>) -> Result<Vec<OtherProvider>, ConfigError> {
    let Some(path) = env.optional(var::PROVIDER_PROFILES_FILE) else {
        return Ok(Vec::new());
    };
    let text = std::fs::read_to_string(path.trim()).map_err(|error| {
        ConfigError::new(
            var::PROVIDER_PROFILES_FILE,
            format!("names a file that cannot be read ({})", error.kind()),
        )
    })?;
    parse_profiles(env, &text)
}

fn parse_profiles(env: &Env<'_>, text: &str) -> Result<Vec<OtherProvider>, ConfigError> {
    let file: ProfilesFile = toml::from_str(text).map_err(|error| {
        ConfigError::new(
            var::PROVIDER_PROFILES_FILE,
            format!(
                "names a file that is not a valid profiles file: {}",
                toml_problem(text, &error)
            ),
        )
    })?;
    let mut providers: Vec<OtherProvider> = Vec::new();
    for entry in file.providers {
        let provider = profile(env, entry)?;
        if providers.iter().any(|p| p.name == provider.name) {
            return Err(ConfigError::new(
                var::PROVIDER_PROFILES_FILE,
                format!("names provider {} twice", provider.name),
            ));
        }
        providers.push(provider);
    }
    Ok(providers)
}

fn profile(env: &Env<'_>, entry: ProfileEntry) -> Result<OtherProvider, ConfigError> {
    let name = ProviderId::parse(&entry.name).ok_or_else(|| {
        ConfigError::new(
            var::PROVIDER_PROFILES_FILE,
            "has a provider whose name is not 1-32 lowercase letters, digits or '-'",
        )
    })?;
    // A field's refusal names the file, the provider and the field, never the value.
    let field = |field: &str| {
        let name = name.clone();
        let field = field.to_owned();
        move |error: ConfigError| {
            ConfigError::new(
                var::PROVIDER_PROFILES_FILE,
                format!("provider {name}: {field} {}", error.rule),
            )
        }
    };
    if entry.client_secret.is_some() {
        return Err(field("client_secret")(ConfigError::new(
            var::PROVIDER_PROFILES_FILE,
            "must not be in the file: put the secret in the environment and name its variable in client_secret_variable",
        )));
    }
    let client_secret = match entry.client_secret_variable {
        None => None,
        Some(variable) => {
            let value = env.optional(&variable).ok_or_else(|| {
                ConfigError::new(
                    variable.clone(),
                    format!("is required by provider {name}'s client_secret_variable but not set"),
                )
            })?;
            Some(ClientSecret::parse_from(variable.into(), value)?)
        }
    };
    let page_size = entry.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if !PAGE_SIZE_RANGE.contains(&page_size) {
        return Err(field("page_size")(ConfigError::new(
            var::PROVIDER_PROFILES_FILE,
            "must be a whole number from 1 to 1000",
        )));
    }
    Ok(OtherProvider {
        workspace: WorkspaceConfig {
            api_url: WorkspaceApiUrl::parse(&entry.api_url).map_err(field("api_url"))?,
            client_id: ClientId::parse_from(var::PROVIDER_PROFILES_FILE, &entry.client_id)
                .map_err(field("client_id"))?,
            client_secret,
            scopes: Scopes::parse_from(
                var::PROVIDER_PROFILES_FILE,
                &entry.scopes.unwrap_or_else(default_scopes),
            )
            .map_err(field("scopes"))?,
            page_size,
            client_authentication: entry.client_authentication,
            iss: entry.iss,
        },
        name,
    })
}

/// Where the file is wrong and what is wrong there, without the text found: a misplaced
/// secret must not be printed back (serde's "invalid type" messages quote the value).
fn toml_problem(text: &str, error: &toml::de::Error) -> String {
    let line = error
        .span()
        .map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    let message = error.message();
    let quotes_the_value = ["invalid type", "invalid value", "unknown variant"]
        .iter()
        .find(|start| message.starts_with(**start));
    let message = if let Some(start) = quotes_the_value {
        let what = match *start {
            "unknown variant" => "unknown variant",
            _ => "a value of the wrong type",
        };
        match message.split_once(", expected ") {
            Some((_, expected)) => format!("{what} (expected {expected})"),
            None => what.to_owned(),
        }
    } else {
        message.lines().next().unwrap_or_default().to_owned()
    };
    match line {
        Some(line) => format!("line {line}: {message}"),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, vars: &[(&str, &str)]) -> Result<Vec<OtherProvider>, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        parse_profiles(&Env::new(&lookup), text)
    }

    const SECOND: &str = r#"
[[provider]]
name = "second"
api_url = "http://localhost:3100/"
client_id = "partners_client_dev"
client_secret_variable = "SECOND_CLIENT_SECRET"
scopes = "organization:read client:read"
"#;

    #[test]
    fn a_profile_takes_its_secret_from_the_variable_it_names() {
        let providers = parse(SECOND, &[("SECOND_CLIENT_SECRET", "s3cr3t")]).unwrap();
        let [second] = providers.as_slice() else {
            panic!("{providers:?}");
        };
        assert_eq!(second.name.as_str(), "second");
        assert_eq!(second.workspace.api_url.as_str(), "http://localhost:3100");
        assert_eq!(
            second.workspace.scopes.to_param(),
            "organization:read client:read"
        );
        assert_eq!(second.workspace.page_size, DEFAULT_PAGE_SIZE);
        assert_eq!(
            second.workspace.client_authentication,
            ClientAuthentication::ClientSecretPost
        );
        assert_eq!(second.workspace.iss, IssPolicy::FromMetadata);
        let basic =
            format!("{SECOND}client_authentication = \"client_secret_basic\"\niss = \"always\"\n");
        let providers = parse(&basic, &[("SECOND_CLIENT_SECRET", "s3cr3t")]).unwrap();
        assert_eq!(
            providers[0].workspace.client_authentication,
            ClientAuthentication::ClientSecretBasic
        );
        assert_eq!(providers[0].workspace.iss, IssPolicy::Always);
        assert_eq!(
            second
                .workspace
                .client_secret
                .as_ref()
                .map(ClientSecret::expose),
            Some("s3cr3t")
        );
        assert!(!format!("{providers:?}").contains("s3cr3t"));

        let err = parse(SECOND, &[]).unwrap_err();
        assert_eq!(err.variable, "SECOND_CLIENT_SECRET");
        assert_eq!(parse("", &[]).unwrap().len(), 0);
    }

    #[test]
    fn a_bad_profile_is_named_and_its_values_are_not_printed() {
        for (text, says) in [
            (
                SECOND.replace(
                    "client_secret_variable = \"SECOND_CLIENT_SECRET\"",
                    "client_secret = \"hunter2\"",
                ),
                "provider second: client_secret must not be in the file",
            ),
            (SECOND.replace("\"second\"", "\"Second\""), "lowercase"),
            (
                SECOND.replace("http://localhost:3100/", "http://hunter2.example"),
                "provider second: api_url must use https",
            ),
            (
                SECOND.replace(
                    "scopes = \"organization:read client:read\"",
                    "page_size = \"hunter2\"",
                ),
                "line 7: a value of the wrong type",
            ),
            (format!("{SECOND}{SECOND}"), "names provider second twice"),
            (
                SECOND.replace("client_id", "client"),
                "unknown field `client`",
            ),
            (
                format!("{SECOND}client_authentication = \"hunter2\"\n"),
                "line 8: unknown variant (expected",
            ),
            ("[[provider]\nname = \"hunter2".to_owned(), "line 1"),
        ] {
            let err = parse(&text, &[("SECOND_CLIENT_SECRET", "x")]).unwrap_err();
            assert_eq!(err.variable, var::PROVIDER_PROFILES_FILE, "{text}");
            assert!(err.to_string().contains(says), "{err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }
}
