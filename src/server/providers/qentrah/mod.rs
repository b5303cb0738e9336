//! Qentrah's provider-specific part, its partner API client (the profile itself is data, in
//! `providers::oauth::provider`): the bearer token only in the `Authorization` header
//! (RFC 6750 §2.1), one forced refresh and one retry when the Workspace rejects a token, and the
//! Workspace's error codes mapped to a typed error.

pub mod records;

use reqwest::StatusCode;
use serde_json::Value;

use self::records::{parse_organization, parse_page, ParseError};
use crate::domain::{DashboardView, OrganizationView, RecordPage};
use crate::server::connections::tokens::{Rejection, TokenError};
use crate::server::connections::{
    AccessToken, BearerCallError, BearerRefused, ConnectionAccess, ConnectionKey, TokenManager,
};

/// Bodies larger than this are refused rather than read (a misbehaving upstream must not
/// exhaust memory).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// What went wrong talking to the Workspace, in the terms the product acts on.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("this browser has no connection")]
    NotConnected,
    /// `connection_not_found`, `connection_expired` after a refresh, or a refresh token the
    /// Workspace refused.
    #[error("the connection must be authorized again ({code})")]
    ReconnectRequired { code: String },
    /// The app was uninstalled from the organization's Workspace.
    #[error("the app was uninstalled from this Workspace")]
    Uninstalled,
    /// The installed clients could not be read: retry later.
    #[error("the installed clients could not be read")]
    Installations,
    /// `app_not_approved`: only a Workspace admin can fix it.
    #[error("a Workspace admin has not approved this app")]
    AppNotApproved,
    /// `scope_denied`: the grant lacks a scope.
    #[error("the connection lacks a scope")]
    ScopeDenied { scope: Option<String> },
    /// `wrong_organization`: the token is for another organization.
    #[error("the token belongs to another organization")]
    WrongOrganization,
    /// Timeouts, 5xx, 429, malformed answers: the connection stays; retry later.
    #[error("the Workspace is unavailable: {detail}")]
    Unavailable { detail: String },
    /// The Workspace refused our client registration.
    #[error("the authorization server refused this app's request")]
    Misconfigured,
    /// `missing_bearer`: the token never arrived (our bug, or a proxy that strips the header).
    /// A new token or a new authorization cannot help; retry, and look at our side.
    #[error("the Workspace received no bearer token")]
    BearerNotReceived,
    /// `invalid_cursor`: the page asked for (a cursor from the browser's address) is not one
    /// the Workspace issued for this list: the caller's mistake, not an outage.
    #[error("the Workspace refused the list cursor")]
    CursorRefused,
    #[error("the token vault failed")]
    Vault(#[source] crate::server::connections::VaultError),
}

impl From<TokenError> for WorkspaceError {
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::NotConnected => WorkspaceError::NotConnected,
            TokenError::ReconnectRequired => WorkspaceError::ReconnectRequired {
                code: "invalid_grant".to_owned(),
            },
            TokenError::Unavailable(e) => WorkspaceError::Unavailable {
                detail: e.to_string(),
            },
            TokenError::Refused(_) => WorkspaceError::Misconfigured,
            TokenError::NotApproved(_) => WorkspaceError::AppNotApproved,
            TokenError::Uninstalled => WorkspaceError::Uninstalled,
            TokenError::Installations(error) => {
                tracing::warn!(%error, "the installed clients could not be read");
                WorkspaceError::Installations
            }
            TokenError::WrongOrganization => WorkspaceError::WrongOrganization,
            TokenError::RejectedWithoutReason => WorkspaceError::Unavailable {
                detail: "the Workspace refused the token without an error code".to_owned(),
            },
            TokenError::Busy => WorkspaceError::Unavailable {
                detail: "another instance is still refreshing this connection".to_owned(),
            },
            TokenError::Interrupted => WorkspaceError::Unavailable {
                detail: "the refresh was interrupted".to_owned(),
            },
            TokenError::Vault(e) => WorkspaceError::Vault(e),
        }
    }
}

impl From<ParseError> for WorkspaceError {
    fn from(error: ParseError) -> Self {
        WorkspaceError::Unavailable {
            detail: format!("the Workspace sent a body we cannot read: {error}"),
        }
    }
}

/// One page of this app's lists holds at most this many records: up to this many divided by
/// the page size upstream pages are read for it, and the rest is a "Next page" away. A list of
/// ten thousand is never loaded into one page (or one response) at once.
pub const RECORDS_PER_VIEW: usize = 500;

/// The partner API's list resources.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListResource {
    Clients,
    Properties,
}

impl From<crate::domain::ListKind> for ListResource {
    fn from(kind: crate::domain::ListKind) -> Self {
        match kind {
            crate::domain::ListKind::Clients => ListResource::Clients,
            crate::domain::ListKind::Properties => ListResource::Properties,
        }
    }
}

impl ListResource {
    pub fn path(self) -> &'static str {
        match self {
            ListResource::Clients => "clients",
            ListResource::Properties => "properties",
        }
    }
}

/// A Workspace error body, in any of the shapes seen in the wild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
}

/// Parses `{"error":{"code":…,"message":…}}`, `{"error":"…"}` or `{"code":…}`.
pub fn parse_error_body(body: &[u8]) -> WorkspaceErrorBody {
    let value: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let text = |v: &Value| v.as_str().map(str::to_owned);
    match value.get("error") {
        Some(Value::Object(error)) => WorkspaceErrorBody {
            code: error.get("code").and_then(text),
            message: error.get("message").and_then(text),
        },
        Some(Value::String(code)) => WorkspaceErrorBody {
            code: Some(code.clone()),
            message: value
                .get("error_description")
                .or_else(|| value.get("message"))
                .and_then(text),
        },
        _ => WorkspaceErrorBody {
            code: value.get("code").and_then(text),
            message: value.get("message").and_then(text),
        },
    }
}

/// What a failed response means.
fn classify(status: StatusCode, body: &WorkspaceErrorBody) -> WorkspaceError {
    match body.code.as_deref() {
        Some("connection_not_found" | "connection_expired") => WorkspaceError::ReconnectRequired {
            code: body.code.clone().unwrap_or_default(),
        },
        Some("missing_bearer") => WorkspaceError::BearerNotReceived,
        Some("invalid_cursor") => WorkspaceError::CursorRefused,
        Some("app_not_approved") => WorkspaceError::AppNotApproved,
        Some("scope_denied") => WorkspaceError::ScopeDenied {
            scope: body.message.as_deref().and_then(scope_in_message),
        },
        Some("wrong_organization") => WorkspaceError::WrongOrganization,
        _ if status == StatusCode::UNAUTHORIZED => WorkspaceError::ReconnectRequired {
            code: "unauthorized".to_owned(),
        },
        _ => WorkspaceError::Unavailable {
            detail: format!("the Workspace answered {status}"),
        },
    }
}

/// Finds a scope of the partner API named in a `scope_denied` message.
fn scope_in_message(message: &str) -> Option<String> {
    crate::vocabulary::QENTRAH_SCOPES
        .iter()
        .map(|(name, _)| *name)
        .find(|scope| message.contains(scope))
        .map(str::to_owned)
}

/// The partner API client for one Workspace. It holds no tokens: each call is made for one
/// request's connection ([`Self::for_connection`]), with tokens from the [`TokenManager`] beside
/// it.
#[derive(Debug, Clone)]
pub struct WorkspaceClient {
    http: reqwest::Client,
    /// `limit` on list requests.
    page_size: u32,
    /// Shared, not copied: the client is cloned into every request's state.
    base_url: std::sync::Arc<str>,
}

/// The partner API as one request's connection sees it.
pub struct AuthorizedWorkspace<'a> {
    client: &'a WorkspaceClient,
    tokens: &'a TokenManager,
    access: &'a ConnectionAccess,
}

impl WorkspaceClient {
    pub fn new(http: reqwest::Client, base_url: &str, page_size: u32) -> Self {
        Self {
            http,
            page_size: page_size.max(1),
            base_url: base_url.trim_end_matches('/').into(),
        }
    }

    /// The partner API for `access`'s connection, its tokens from `tokens`.
    pub fn for_connection<'a>(
        &'a self,
        tokens: &'a TokenManager,
        access: &'a ConnectionAccess,
    ) -> AuthorizedWorkspace<'a> {
        AuthorizedWorkspace {
            client: self,
            tokens,
            access,
        }
    }

    async fn send(
        &self,
        key: &ConnectionKey,
        resource: &str,
        query: &[(&str, &str)],
        token: AccessToken,
    ) -> Result<Value, BearerRefused<WorkspaceError>> {
        // An `OrganizationId` needs no escaping in a path and is not a dot segment (checked
        // where it arrived), so the token goes to this organization's path and no other.
        let url = format!(
            "{}/api/v1/partner/organizations/{}/{resource}",
            self.base_url,
            key.organization_id()
        );
        let response = self
            .http
            .get(&url)
            .query(query)
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                BearerRefused::Other(WorkspaceError::Unavailable {
                    detail: if e.is_timeout() {
                        "the Workspace did not answer in time".to_owned()
                    } else {
                        e.without_url().to_string()
                    },
                })
            })?;
        let status = response.status();
        let body = read_limited(response).await.map_err(BearerRefused::Other)?;
        if status.is_success() {
            return serde_json::from_slice(&body).map_err(|_| {
                BearerRefused::Other(WorkspaceError::Unavailable {
                    detail: "the Workspace sent a body that is not JSON".to_owned(),
                })
            });
        }
        let parsed = parse_error_body(&body);
        // Only an expired or unrecognised token is worth a refresh; a deleted connection is not,
        // nor a bearer that never arrived (a new token would not arrive either).
        if status == StatusCode::UNAUTHORIZED {
            match parsed.code.as_deref() {
                Some("connection_expired") => {
                    return Err(BearerRefused::Token(Rejection::Expired, parsed.code))
                }
                None => return Err(BearerRefused::Token(Rejection::Bare, None)),
                Some(_) => {}
            }
        }
        Err(BearerRefused::Other(classify(status, &parsed)))
    }
}

impl AuthorizedWorkspace<'_> {
    /// `GET {base}/api/v1/partner/organizations/{org}/{resource}` as JSON, with one refresh and
    /// one retry when the Workspace says the token is no longer good.
    async fn get(&self, resource: &str, query: &[(&str, &str)]) -> Result<Value, WorkspaceError> {
        self.get_leased(resource, query)
            .await
            .map(|(value, _)| value)
    }

    /// [`Self::get`], with the vault generation of the token that answered.
    #[tracing::instrument(skip_all, fields(org = %self.access.key().organization_id(), resource = resource))]
    async fn get_leased(
        &self,
        resource: &str,
        query: &[(&str, &str)],
    ) -> Result<(Value, i64), WorkspaceError> {
        let key = self.access.key();
        let (outcome, generation) = self
            .tokens
            .call_with_bearer(self.access, |token| {
                self.client.send(key, resource, query, token)
            })
            .await;
        let outcome = outcome.map_err(|error| match error {
            BearerCallError::Token(error) => WorkspaceError::from(error),
            BearerCallError::RefusedAfterRefresh(code) => WorkspaceError::ReconnectRequired {
                code: code.unwrap_or_else(|| "unauthorized".to_owned()),
            },
            BearerCallError::Other(error) => error,
        });
        // The Workspace says in so many words that the grant is over (a deleted connection, or
        // `connection_expired` for a token it had just issued): the stored connection must say
        // so too, not only this response. A bare 401 (a proxy's) or `missing_bearer` (ours)
        // ends nothing.
        if let (Err(WorkspaceError::ReconnectRequired { code }), Some(generation)) =
            (&outcome, generation)
        {
            if code == "connection_not_found" || code == "connection_expired" {
                if let Err(error) = self.tokens.mark_refused(self.access, generation).await {
                    tracing::warn!(%error, "could not mark the refused connection");
                }
            }
        }
        if let Err(WorkspaceError::BearerNotReceived) = &outcome {
            tracing::error!("the Workspace says no bearer token arrived: check proxies between us");
        }
        outcome.map(|value| (value, generation.unwrap_or_default()))
    }

    /// The organization's profile (`me`). It must be the connection's own organization: a
    /// token that answers for another one is not used again (the connection needs a new
    /// authorization).
    pub async fn organization(&self) -> Result<OrganizationView, WorkspaceError> {
        let (body, generation) = self.get_leased("me", &[]).await?;
        let organization = parse_organization(&body)?;
        if self.access.key().organization_id() != organization.id.as_str() {
            tracing::error!(named = %organization.id, "me names another organization than the connection's; its tokens are no longer used");
            if let Err(error) = self.tokens.mark_refused(self.access, generation).await {
                tracing::warn!(%error, "could not mark the mismatching connection");
            }
            return Err(WorkspaceError::WrongOrganization);
        }
        Ok(organization)
    }

    /// One page of a list as this app shows it, from `cursor` (the start when `None`): upstream
    /// pages are followed for as long as their cursors advance, up to [`RECORDS_PER_VIEW`]
    /// records. A cursor seen before means the Workspace is going in circles: that is its
    /// fault, and a retryable one, never an endless loop.
    pub async fn page(
        &self,
        resource: ListResource,
        cursor: Option<&str>,
    ) -> Result<RecordPage, WorkspaceError> {
        self.read_pages(resource, cursor, RECORDS_PER_VIEW).await
    }

    /// The first upstream page alone: what an overview shows (one call per list).
    pub async fn first_page(&self, resource: ListResource) -> Result<RecordPage, WorkspaceError> {
        self.read_pages(resource, None, 1).await
    }

    async fn read_pages(
        &self,
        resource: ListResource,
        start: Option<&str>,
        at_least: usize,
    ) -> Result<RecordPage, WorkspaceError> {
        let limit = self.client.page_size.to_string();
        let mut seen = std::collections::HashSet::new();
        let mut records = Vec::new();
        let mut cursor = start.map(str::to_owned);
        let mut total = None;
        loop {
            let mut query = vec![("limit", limit.as_str())];
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor.as_str()));
            }
            let page = parse_page(&self.get(resource.path(), &query).await?)?;
            total = total.or(page.total);
            records.extend(page.records);
            if let Some(current) = cursor.take() {
                seen.insert(current);
            }
            match page.next_cursor {
                Some(next) if seen.contains(&next) => {
                    return Err(WorkspaceError::Unavailable {
                        detail: format!("{} cursors go in a circle", resource.path()),
                    });
                }
                Some(next) if records.len() < at_least => cursor = Some(next),
                next_cursor => {
                    return Ok(RecordPage {
                        records,
                        next_cursor,
                        total,
                    })
                }
            }
        }
    }

    /// `me` and the first page of `clients` and `properties` at once: one round trip's
    /// latency, three calls however large the lists, one vault read.
    pub async fn dashboard(&self) -> Result<DashboardView, WorkspaceError> {
        let (organization, clients, properties) = tokio::try_join!(
            self.organization(),
            self.first_page(ListResource::Clients),
            self.first_page(ListResource::Properties),
        )?;
        Ok(DashboardView {
            organization,
            clients,
            properties,
        })
    }
}

async fn read_limited(response: reqwest::Response) -> Result<Vec<u8>, WorkspaceError> {
    use crate::server::platform::http::{read_capped, CappedReadError};
    read_capped(response, MAX_RESPONSE_BYTES)
        .await
        .map_err(|error| WorkspaceError::Unavailable {
            detail: match error {
                CappedReadError::TooLarge => "the Workspace response is too large".to_owned(),
                CappedReadError::Transport(e) if e.is_timeout() => {
                    "the Workspace did not finish its answer in time".to_owned()
                }
                CappedReadError::Transport(e) => e.without_url().to_string(),
            },
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_in_every_shape() {
        let nested =
            parse_error_body(br#"{"error":{"code":"scope_denied","message":"needs client:read"}}"#);
        assert_eq!(nested.code.as_deref(), Some("scope_denied"));
        let flat = parse_error_body(br#"{"error":"connection_expired"}"#);
        assert_eq!(flat.code.as_deref(), Some("connection_expired"));
        let bare = parse_error_body(br#"{"code":"app_not_approved"}"#);
        assert_eq!(bare.code.as_deref(), Some("app_not_approved"));
        assert_eq!(parse_error_body(b"<html>").code, None);
    }

    #[test]
    fn codes_map_to_what_the_product_does() {
        let body = |code: &str| WorkspaceErrorBody {
            code: Some(code.to_owned()),
            message: Some("This request needs the property:read scope.".to_owned()),
        };
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, &body("connection_not_found")),
            WorkspaceError::ReconnectRequired { .. }
        ));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &body("app_not_approved")),
            WorkspaceError::AppNotApproved
        ));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &body("scope_denied")),
            WorkspaceError::ScopeDenied { scope: Some(ref s) } if s == "property:read"
        ));
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &body("wrong_organization")),
            WorkspaceError::WrongOrganization
        ));
        assert!(matches!(
            classify(
                StatusCode::SERVICE_UNAVAILABLE,
                &WorkspaceErrorBody {
                    code: None,
                    message: None
                }
            ),
            WorkspaceError::Unavailable { .. }
        ));
    }
}
