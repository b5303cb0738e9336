//! The URLs of configuration: where a provider lives and this app's own public origin.

use std::net::IpAddr;

use url::Url;

use super::{var, ConfigError};

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
