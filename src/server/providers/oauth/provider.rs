//! Where the provider lives and who we are to it, derived once from configuration.

use url::Url;

use crate::server::ids::ProviderId;
use crate::server::platform::config::{
    AppConfig, ClientAuthentication, IssPolicy, PartnerAppUrl, WorkspaceConfig,
};
use crate::vocabulary::{flow_callback_path, flow_start_path};

/// One OAuth provider's endpoints and our registration with it. Built from configuration, not
/// constants, so another Workspace or provider is a matter of configuration.
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    /// The key's `provider` part (`qentrah`).
    pub name: ProviderId,
    /// The issuer we expect in `iss` (RFC 9207): the Workspace base URL.
    pub issuer: String,
    /// Its authorization server metadata (RFC 8414 §3), read for whether it sends `iss` on
    /// every authorization response (RFC 9207 §3) when [`Self::iss`] says to.
    pub metadata_url: Url,
    /// When a callback without `iss` is refused.
    pub iss: IssPolicy,
    pub authorize_url: Url,
    pub token_url: Url,
    pub revocation_url: Url,
    /// How a confidential client authenticates at the token and revocation endpoints.
    pub client_authentication: ClientAuthentication,
    /// The resource indicator (RFC 8707) sent on every authorization and token request
    /// (Qentrah's: `{base}/api/v1/partner`), or `None` for a provider that takes none.
    pub resource: Option<String>,
    /// Where a grant's tenant (the organization it belongs to) is named.
    pub tenant: TenantSource,
    pub redirect_uri: Url,
    pub scopes: Vec<String>,
    /// Our route that starts a flow: `/api/auth/{name}/start`.
    pub start_path: String,
    /// Our callback route, `redirect_uri`'s path: `/api/auth/{name}/callback`.
    pub callback_path: String,
}

/// Where a provider names the tenant a grant belongs to. Qentrah adds it to the token response
/// (the brief's `organization_id`); a provider that names it only through its API gets a variant
/// of its own when one is added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantSource {
    /// A non-standard field of the token response (RFC 6749 §5.1 allows extra members).
    TokenField(String),
}

/// The field Qentrah's token responses name the organization in.
pub const QENTRAH_TENANT_FIELD: &str = "organization_id";

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
    /// The resource part of a connection's key: the resource indicator, or `""` for none.
    pub fn resource_key(&self) -> &str {
        self.resource.as_deref().unwrap_or_default()
    }

    /// Qentrah's profile, from the brief's `QENTRAH_*` variables.
    pub fn qentrah(config: &AppConfig) -> Result<Self, url::ParseError> {
        Self::workspace_like(
            ProviderId::qentrah(),
            &config.workspace,
            &config.partner_app_url,
        )
    }

    /// A provider that works as the Qentrah Workspace does (the brief's endpoints under its
    /// base URL, which is also its issuer), named `name`: the `provider` of its connections and
    /// the segment of its routes.
    pub fn workspace_like(
        name: ProviderId,
        workspace: &WorkspaceConfig,
        app_url: &PartnerAppUrl,
    ) -> Result<Self, url::ParseError> {
        let base = workspace.api_url.as_str();
        let callback_path = flow_callback_path(name.as_str());
        Ok(Self {
            issuer: base.to_owned(),
            metadata_url: metadata_url(base)?,
            iss: workspace.iss,
            authorize_url: Url::parse(&format!("{base}/oauth/authorize"))?,
            token_url: Url::parse(&format!("{base}/oauth/token"))?,
            revocation_url: Url::parse(&format!("{base}/oauth/revoke"))?,
            client_authentication: workspace.client_authentication,
            resource: Some(format!("{base}/api/v1/partner")),
            tenant: TenantSource::TokenField(QENTRAH_TENANT_FIELD.to_owned()),
            redirect_uri: Url::parse(&format!("{}{callback_path}", app_url.origin()))?,
            scopes: workspace.scopes.iter().map(str::to_owned).collect(),
            start_path: flow_start_path(name.as_str()),
            callback_path,
            name,
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
