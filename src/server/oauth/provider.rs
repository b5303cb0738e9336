//! Where the provider lives and who we are to it, derived once from configuration.

use url::Url;

use crate::server::config::AppConfig;
use crate::server::vault::QENTRAH;

/// The path of our callback, appended to `PARTNER_APP_URL`.
pub const CALLBACK_PATH: &str = "/api/auth/qentrah/callback";
/// The path that starts a flow.
pub const START_PATH: &str = "/api/auth/qentrah/start";

/// One OAuth provider's endpoints and our registration with it. Built from configuration, not
/// constants, so another Workspace or provider is a matter of configuration.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The key's `provider` part (`qentrah`).
    pub name: String,
    /// The issuer we expect in `iss` (RFC 9207): the Workspace base URL.
    pub issuer: String,
    /// Its authorization server metadata (RFC 8414 §3), read for whether it sends `iss` on
    /// every authorization response (RFC 9207 §3).
    pub metadata_url: Url,
    pub authorize_url: Url,
    pub token_url: Url,
    pub revocation_url: Url,
    /// The resource indicator (RFC 8707) sent on every request: `{base}/api/v1/partner`.
    pub resource: String,
    pub redirect_uri: Url,
    pub scopes: Vec<String>,
}

impl ProviderConfig {
    pub fn qentrah(config: &AppConfig) -> Result<Self, url::ParseError> {
        let base = config.workspace.api_url.as_str();
        Ok(Self {
            name: QENTRAH.to_owned(),
            issuer: base.to_owned(),
            metadata_url: Url::parse(&format!("{base}/.well-known/oauth-authorization-server"))?,
            authorize_url: Url::parse(&format!("{base}/oauth/authorize"))?,
            token_url: Url::parse(&format!("{base}/oauth/token"))?,
            revocation_url: Url::parse(&format!("{base}/oauth/revoke"))?,
            resource: format!("{base}/api/v1/partner"),
            redirect_uri: Url::parse(&format!(
                "{}{CALLBACK_PATH}",
                config.partner_app_url.origin()
            ))?,
            scopes: config.workspace.scopes.iter().map(str::to_owned).collect(),
        })
    }
}
