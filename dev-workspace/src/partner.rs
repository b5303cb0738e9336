//! The partner API: `GET /api/v1/partner/organizations/{organizationId}/{me,clients,properties}`.
//! Bearer tokens only from the `Authorization` header (RFC 6750 §2.1); errors as
//! `{"error":{"code":"…","message":"…"}}` with the brief's codes.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::params::Params;
use crate::state::{GrantStatus, SharedWorld};

/// Default and maximum page sizes for list endpoints.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 100;

/// A partner-API error.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({ "error": { "code": self.code, "message": self.message } })),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: a 401 names the scheme the client should use.
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"qentrah-partner-api\""),
            );
        }
        response
    }
}

/// Checks the bearer token for `organization_id` and `scope`, in the order a real server would.
fn authorize(
    world: &SharedWorld,
    headers: &HeaderMap,
    query: &Params,
    organization_id: &str,
    scope: &str,
) -> Result<String, ApiError> {
    if query.get("access_token").is_some() {
        // RFC 9700 §2.2.2 / RFC 6750 §2.3: tokens in URLs leak through logs and referrers.
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_bearer",
            "Send the access token in the Authorization header; tokens in the query are refused.",
        ));
    }
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_bearer",
            "An Authorization: Bearer header is required.",
        ));
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        // RFC 6750 §2.1: `Bearer` SP b64token, exactly; no trimming, so a client that pads or
        // doubles the space fails here as it would at a strict server.
        .filter(|(scheme, token)| {
            scheme.eq_ignore_ascii_case("bearer")
                && !token.is_empty()
                && token.bytes().all(|b| {
                    b.is_ascii_alphanumeric()
                        || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
                })
        })
        .map(|(_, token)| token.to_owned())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_bearer",
                "The Authorization header must be `Bearer <token>`.",
            )
        })?;

    let w = world.lock();
    let not_found = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "connection_not_found",
            "No connection exists for this token. Authorize the app again.",
        )
    };
    let record = w.access_tokens.get(&token).ok_or_else(not_found)?;
    let grant = w.grants.get(&record.grant_id).ok_or_else(not_found)?;
    match grant.status {
        GrantStatus::Active => {}
        GrantStatus::Revoked => return Err(not_found()),
        GrantStatus::Expired => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "connection_expired",
                "The connection has expired. Reconnect to Qentrah.",
            ))
        }
    }
    if record.revoked {
        // A revoked access token of a live grant is an expired credential, not a missing
        // connection: the client may refresh (a revoked grant answered 404 above).
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "connection_expired",
            "The access token was revoked.",
        ));
    }
    if record.expires_at <= w.now() {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "connection_expired",
            "The access token has expired.",
        ));
    }
    let approved = w
        .client(&grant.client_id)
        .is_some_and(|client| client.approved);
    if !approved {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "app_not_approved",
            "A Qentrah Workspace admin has not approved this app.",
        ));
    }
    if record.organization_id != organization_id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "wrong_organization",
            "This token belongs to another organization.",
        ));
    }
    let withheld = w
        .withheld_scopes
        .get(organization_id)
        .is_some_and(|scopes| scopes.contains(scope));
    if withheld || !record.scopes.iter().any(|s| s == scope) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "scope_denied",
            format!("This request needs the {scope} scope."),
        ));
    }
    Ok(record.grant_id.clone())
}

fn parse_query(query: Option<String>) -> Result<Params, ApiError> {
    let params = Params::parse(query.as_deref().unwrap_or_default())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.to_string()))?;
    if let Some(name) = params.duplicated() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("parameter {name} is repeated"),
        ));
    }
    Ok(params)
}

/// `GET …/me`: the organization's profile.
pub async fn me(
    State(world): State<SharedWorld>,
    Path(organization_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let query = parse_query(query)?;
    authorize(
        &world,
        &headers,
        &query,
        &organization_id,
        "organization:read",
    )?;
    let w = world.lock();
    let org = w.organization(&organization_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "connection_not_found",
            "Unknown organization.",
        )
    })?;
    Ok(Json(org.me.clone()))
}

/// `GET …/clients`.
pub async fn clients(
    State(world): State<SharedWorld>,
    Path(organization_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    list(
        &world,
        &organization_id,
        query,
        &headers,
        "client:read",
        |org| &org.clients,
    )
}

/// `GET …/properties`.
pub async fn properties(
    State(world): State<SharedWorld>,
    Path(organization_id): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    list(
        &world,
        &organization_id,
        query,
        &headers,
        "property:read",
        |org| &org.properties,
    )
}

fn list(
    world: &SharedWorld,
    organization_id: &str,
    query: Option<String>,
    headers: &HeaderMap,
    scope: &str,
    records: impl Fn(&crate::seed::Organization) -> &Vec<Value>,
) -> Result<Json<Value>, ApiError> {
    let query = parse_query(query)?;
    let grant_id = authorize(world, headers, &query, organization_id, scope)?;
    let list = scope.trim_end_matches(":read");
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let offset = match query.get("cursor") {
        None => 0,
        Some(cursor) => {
            decode_cursor(cursor, list, organization_id, &grant_id).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_cursor",
                    "cursor is not one this API returned",
                )
            })?
        }
    };
    let w = world.lock();
    let org = w.organization(organization_id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "connection_not_found",
            "Unknown organization.",
        )
    })?;
    let all = records(org);
    let page: Vec<Value> = all.iter().skip(offset).take(limit).cloned().collect();
    let next = offset + page.len();
    let next_cursor =
        (next < all.len()).then(|| encode_cursor(list, organization_id, &grant_id, next));
    Ok(Json(json!({ "data": page, "next_cursor": next_cursor })))
}

/// A cursor is bound to the list, the organization and the grant it was issued for, as real
/// APIs bind theirs: one from another list, another organization or another connection is
/// refused (`invalid_cursor`), so a client that mixes them up fails here.
fn encode_cursor(list: &str, organization_id: &str, grant_id: &str, offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "v1\0{list}\0{organization_id}\0{grant_id}\0{offset}"
    ))
}

fn decode_cursor(cursor: &str, list: &str, organization_id: &str, grant_id: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let mut parts = text.split('\0');
    let bound = parts.next() == Some("v1")
        && parts.next() == Some(list)
        && parts.next() == Some(organization_id)
        && parts.next() == Some(grant_id);
    let offset = parts.next()?.parse().ok()?;
    (bound && parts.next().is_none()).then_some(offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = encode_cursor("client", "org_a", "grant_1", 150);
        assert_eq!(
            decode_cursor(&cursor, "client", "org_a", "grant_1"),
            Some(150)
        );
        assert_eq!(decode_cursor(&cursor, "property", "org_a", "grant_1"), None);
        assert_eq!(decode_cursor(&cursor, "client", "org_b", "grant_1"), None);
        assert_eq!(decode_cursor(&cursor, "client", "org_a", "grant_2"), None);
        assert_eq!(
            decode_cursor("not-a-cursor", "client", "org_a", "grant_1"),
            None
        );
        assert_eq!(
            decode_cursor(
                &URL_SAFE_NO_PAD.encode("offset:x"),
                "client",
                "org_a",
                "grant_1"
            ),
            None
        );
    }
}
