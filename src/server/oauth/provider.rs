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

/// The RFC 8414 §3.1 metadata URL of `issuer`: the well-known segment goes between the host and
/// the issuer's path (`https://h/tenant` → `https://h/.well-known/oauth-authorization-server/tenant`),
/// not after the path as OpenID Connect Discovery does it.
pub fn metadata_url(issuer: &str) -> Result<Url, url::ParseError> {
    let mut url = Url::parse(issuer)?;
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

impl ProviderConfig {
    pub fn qentrah(config: &AppConfig) -> Result<Self, url::ParseError> {
        let base = config.workspace.api_url.as_str();
        Ok(Self {
            name: QENTRAH.to_owned(),
            issuer: base.to_owned(),
            metadata_url: metadata_url(base)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_well_known_segment_goes_before_the_issuers_path() {
        let cases = [
            (
                "http://localhost:3000",
                "http://localhost:3000/.well-known/oauth-authorization-server",
            ),
            (
                "https://ws.example",
                "https://ws.example/.well-known/oauth-authorization-server",
            ),
            (
                "https://ws.example/tenant/a",
                "https://ws.example/.well-known/oauth-authorization-server/tenant/a",
            ),
        ];
        for (issuer, expected) in cases {
            assert_eq!(metadata_url(issuer).unwrap().as_str(), expected, "{issuer}");
        }
    }
}
