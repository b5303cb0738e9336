//! The authorization server: `/oauth/authorize` (with its consent page), `/oauth/token`,
//! `/oauth/revoke` and the RFC 8414 metadata. Strict on purpose: every client mistake a real
//! server would refuse is refused here, with the error the RFCs name.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::html::{escape, page};
use crate::params::{Params, ParamsError};
use crate::profile::Profile;
use crate::state::ClientAuthMethod;
use crate::state::{
    random_token, CodeRecord, GrantStatus, MetadataVariant, PendingAuthorization, RefreshState,
    SharedWorld, CODE_LIFETIME, PENDING_LIFETIME,
};

// ---- Metadata (RFC 8414) --------------------------------------------------------------------

pub async fn metadata(State(world): State<SharedWorld>) -> Response {
    let world = world.lock();
    let issuer = world.issuer.clone();
    let variant = world.metadata;
    let profile = world.profile;
    drop(world);
    if variant == MetadataVariant::NotFound {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut body = json!({
        "issuer": if variant == MetadataVariant::MismatchingIssuer {
            "https://impostor.qentrah.invalid".to_owned()
        } else {
            issuer.clone()
        },
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "scopes_supported": profile.scope_names(),
        "authorization_response_iss_parameter_supported": true,
        "resource_indicators_supported": true,
    });
    if variant == MetadataVariant::NoIssPromise {
        if let Some(object) = body.as_object_mut() {
            object.remove("authorization_response_iss_parameter_supported");
        }
    }
    Json(body).into_response()
}

// ---- Authorization endpoint -----------------------------------------------------------------

/// An authorization error that goes back to the client by redirect (RFC 6749 §4.1.2.1).
struct RedirectError {
    error: &'static str,
    description: String,
}

fn redirect_error(error: &'static str, description: impl Into<String>) -> RedirectError {
    RedirectError {
        error,
        description: description.into(),
    }
}

/// An error shown to the person, never redirected: the client or redirect URI can't be trusted.
pub(crate) fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        Html(page(
            title,
            &format!(
                "<h1>{}</h1><p>{}</p><p class=\"muted\">Qentrah dev Workspace</p>",
                escape(title),
                escape(detail)
            ),
        )),
    )
        .into_response()
}

/// `GET /oauth/authorize`: validates the request, then shows sign-in and consent.
pub async fn authorize(
    State(world): State<SharedWorld>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = match Params::parse(query.as_deref().unwrap_or_default()) {
        Ok(params) => params,
        Err(error) => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Invalid authorization request",
                &error.to_string(),
            )
        }
    };
    world.lock().counters.authorize_requests += 1;

    // RFC 6749 §4.1.2.1: without a valid client and an exactly registered redirect URI, the
    // server must not redirect (that would be an open redirector, RFC 9700 §4.11).
    let client_id = match params.single("client_id") {
        Ok(Some(id)) => id.to_owned(),
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Unknown application",
                "The request names no client_id, or names it more than once.",
            )
        }
    };
    let redirect_uri =
        match params.single("redirect_uri") {
            Ok(Some(uri)) => uri.to_owned(),
            _ => return error_page(
                StatusCode::BAD_REQUEST,
                "Invalid redirect URI",
                "The request has no redirect_uri, or more than one. Qentrah requires exactly one.",
            ),
        };
    let state = params.single("state").ok().flatten().map(str::to_owned);
    {
        let world = world.lock();
        let Some(client) = world.client(&client_id) else {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Unknown application",
                "No application is registered with this client_id.",
            );
        };
        // Exact string comparison (OAuth 2.1 §2.3.1, RFC 9700 §4.1.3): no prefix, no pattern.
        if !client.redirect_uris.iter().any(|r| r == &redirect_uri) {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Redirect URI mismatch",
                "The redirect_uri is not registered for this application (exact match required).",
            );
        }
        // An app no Workspace admin has approved may not even ask (RFC 6749 §4.1.2.1
        // `unauthorized_client`); the redirect URI is registered, so the answer goes back.
        if !client.approved {
            let issuer = world.issuer.clone();
            drop(world);
            return redirect_back(
                &redirect_uri,
                &[
                    ("error", "unauthorized_client"),
                    (
                        "error_description",
                        "A Qentrah Workspace admin has not approved this app.",
                    ),
                ],
                state.as_deref(),
                &issuer,
            );
        }
    }

    match validate_authorization_request(&world, &params, &client_id) {
        Ok(request) => {
            let request_id = random_token("qar");
            let expires_at = world.lock().now() + PENDING_LIFETIME;
            let sign_in = request.scopes.iter().any(|s| s == "openid");
            let pending = PendingAuthorization {
                client_id,
                redirect_uri,
                state: state.unwrap_or_default(),
                scopes: request.scopes,
                resource: request.resource,
                code_challenge: request.code_challenge,
                nonce: params.get("nonce").map(str::to_owned),
                expires_at,
            };
            if let Some(nonce) = &pending.nonce {
                world.lock().note_secret(nonce);
            }
            // OpenID Connect sign-in: the Workspace's own session decides, no consent page
            // (the organization's admin installed the app; signing in is what it is for).
            if sign_in {
                return crate::oidc::authorize_sign_in(
                    &world,
                    &headers,
                    request_id,
                    pending,
                    params.get("login_hint"),
                );
            }
            let mut w = world.lock();
            let html = consent_page(&w, &request_id, &pending);
            w.pending.insert(request_id, pending);
            (
                [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
                Html(html),
            )
                .into_response()
        }
        Err(error) => {
            let issuer = issuer_for_response(&world);
            redirect_back(
                &redirect_uri,
                &[
                    ("error", error.error),
                    ("error_description", &error.description),
                ],
                state.as_deref(),
                &issuer,
            )
        }
    }
}

struct ValidAuthorizationRequest {
    scopes: Vec<String>,
    resource: String,
    code_challenge: String,
}

fn validate_authorization_request(
    world: &SharedWorld,
    params: &Params,
    _client_id: &str,
) -> Result<ValidAuthorizationRequest, RedirectError> {
    // RFC 6749 §3.1: parameters must not be included more than once.
    if let Some(name) = params.duplicated() {
        return Err(redirect_error(
            "invalid_request",
            format!("parameter {name} is repeated"),
        ));
    }
    match params.get("response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(redirect_error(
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
        None => {
            return Err(redirect_error(
                "invalid_request",
                "response_type is required",
            ))
        }
    }
    if params.get("state").is_none_or(str::is_empty) {
        return Err(redirect_error(
            "invalid_request",
            "state is required (Qentrah binds every flow to the client's session)",
        ));
    }
    // OAuth 2.1 §4.1.1 and RFC 9700 §2.1.1: PKCE with S256; `plain` is refused.
    let Some(code_challenge) = params.get("code_challenge") else {
        return Err(redirect_error(
            "invalid_request",
            "code_challenge is required (PKCE, RFC 7636)",
        ));
    };
    match params.get("code_challenge_method") {
        Some("S256") => {}
        Some("plain") => {
            return Err(redirect_error(
                "invalid_request",
                "code_challenge_method plain is not allowed; use S256",
            ))
        }
        Some(_) => {
            return Err(redirect_error(
                "invalid_request",
                "unsupported code_challenge_method; use S256",
            ))
        }
        // A missing method means `plain` (RFC 7636 §4.3), which is refused.
        None => {
            return Err(redirect_error(
                "invalid_request",
                "code_challenge_method is required and must be S256",
            ))
        }
    }
    if !is_s256_challenge(code_challenge) {
        return Err(redirect_error(
            "invalid_request",
            "code_challenge must be a base64url SHA-256 digest (43 characters)",
        ));
    }
    let profile = world.lock().profile;
    let scopes = parse_scopes(profile, params.get("scope").unwrap_or_default())?;
    // RFC 8707: the token is for exactly this resource. A sign-in alone (OpenID Connect, scope
    // `openid`) names none: its token is for UserInfo, not the partner API.
    let sign_in = scopes.iter().any(|s| s == "openid");
    let expected_resource = world.lock().resource();
    match params.get("resource") {
        None if sign_in => {
            return Ok(ValidAuthorizationRequest {
                scopes,
                resource: String::new(),
                code_challenge: code_challenge.to_owned(),
            })
        }
        Some(resource) if resource == expected_resource => {}
        Some(_) => {
            return Err(redirect_error(
                "invalid_target",
                "resource must be this Workspace's partner API",
            ))
        }
        None => {
            return Err(redirect_error(
                "invalid_target",
                "resource is required (RFC 8707)",
            ))
        }
    }
    Ok(ValidAuthorizationRequest {
        scopes,
        resource: expected_resource,
        code_challenge: code_challenge.to_owned(),
    })
}

fn parse_scopes(profile: &Profile, raw: &str) -> Result<Vec<String>, RedirectError> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in raw.split(' ').filter(|s| !s.is_empty()) {
        if !profile.supports(scope) {
            return Err(redirect_error(
                "invalid_scope",
                format!("unknown scope {scope}"),
            ));
        }
        if !scopes.iter().any(|s| s == scope) {
            scopes.push(scope.to_owned());
        }
    }
    let reads_data = |scope: &String| {
        profile
            .scopes
            .iter()
            .any(|s| s.name == scope && s.reads_data)
    };
    if !scopes.iter().any(|s| s == "openid" || reads_data(s)) {
        return Err(redirect_error(
            "invalid_scope",
            "request at least one resource scope",
        ));
    }
    Ok(scopes)
}

fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub(crate) fn issuer_for_response(world: &SharedWorld) -> String {
    let world = world.lock();
    if world.wrong_iss {
        "https://impostor.qentrah.invalid".to_owned()
    } else {
        world.issuer.clone()
    }
}

/// A 303 back to the client with `params`, `state` and `iss` (RFC 9207).
pub(crate) fn redirect_back(
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&str>,
    issuer: &str,
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect URI",
            "The registered redirect URI is not a URL.",
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
    }
    match HeaderValue::from_str(url.as_str()) {
        Ok(location) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, location),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ),
            ],
        )
            .into_response(),
        Err(_) => error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect URI",
            "The redirect URI cannot be used in a Location header.",
        ),
    }
}

fn consent_page(
    world: &crate::state::World,
    request_id: &str,
    pending: &PendingAuthorization,
) -> String {
    let mut orgs = String::new();
    for (index, org) in world.organizations.iter().enumerate() {
        orgs.push_str(&format!(
            "<li><label><input type=\"radio\" name=\"organization_id\" value=\"{id}\"{checked} required> {name}</label></li>",
            id = escape(&org.id),
            checked = if index == 0 { " checked" } else { "" },
            name = escape(&org.name),
        ));
    }
    // Each requested scope can be left out: the person may grant less than the app asked for,
    // and the token response then names the narrower set (RFC 6749 §3.3).
    let mut scopes = String::new();
    for scope in &pending.scopes {
        scopes.push_str(&format!(
            "<li><label><input type=\"checkbox\" name=\"scope\" value=\"{value}\" checked> {} <code>{value}</code></label></li>",
            escape(world.profile.consent_words(scope)),
            value = escape(scope)
        ));
    }
    let body = format!(
        r#"<h1>Authorize {client}</h1>
<p>Signed in as <strong>Dev User</strong> (dev@qentrah.test) in the Qentrah dev Workspace.</p>
<form method="post" action="{path}/oauth/authorize/decision">
  <input type="hidden" name="request_id" value="{request_id}">
  <input type="hidden" name="scopes_chosen" value="1">
  <fieldset>
    <legend>Organization to connect</legend>
    <ul class="plain">{orgs}</ul>
  </fieldset>
  <h2>This app will be able to</h2>
  <ul>{scopes}</ul>
  <p class="actions">
    <button type="submit" name="decision" value="approve" class="primary">Approve</button>
    <button type="submit" name="decision" value="deny">Deny</button>
  </p>
</form>"#,
        client = escape(&pending.client_id),
        request_id = escape(request_id),
        path = escape(
            url::Url::parse(&world.issuer)
                .map(|u| u.path().trim_end_matches('/').to_owned())
                .unwrap_or_default()
                .as_str()
        ),
    );
    page("Authorize application · Qentrah dev Workspace", &body)
}

/// `POST /oauth/authorize/decision`: the person approved or denied on the consent page.
pub async fn decision(
    State(world): State<SharedWorld>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if !is_form(&headers) {
        return error_page(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Invalid form",
            "Expected a form submission.",
        );
    }
    let params = match Params::parse(&body) {
        Ok(params) => params,
        Err(error) => {
            return error_page(StatusCode::BAD_REQUEST, "Invalid form", &error.to_string())
        }
    };
    let request_id = params.get("request_id").unwrap_or_default().to_owned();
    let pending = {
        let mut w = world.lock();
        let now = w.now();
        match w.pending.remove(&request_id) {
            Some(pending) if pending.expires_at > now => pending,
            _ => {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "This request has expired",
                    "Start again from the application.",
                )
            }
        }
    };
    let issuer = issuer_for_response(&world);
    match params.get("decision") {
        Some("approve") => {}
        Some("deny") => {
            return redirect_back(
                &pending.redirect_uri,
                &[
                    ("error", "access_denied"),
                    ("error_description", "The person denied the request"),
                ],
                Some(&pending.state),
                &issuer,
            )
        }
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Invalid decision",
                "Choose Approve or Deny.",
            )
        }
    }
    let organization_id = params.get("organization_id").unwrap_or_default().to_owned();
    // The boxes left ticked (from the consent form); a decision posted without the form's
    // marker grants everything asked for.
    let scopes: Vec<String> = if params.get("scopes_chosen").is_some() {
        let chosen: Vec<&str> = params
            .pairs()
            .iter()
            .filter(|(name, _)| name == "scope")
            .map(|(_, value)| value.as_str())
            .collect();
        pending
            .scopes
            .iter()
            .filter(|scope| chosen.contains(&scope.as_str()))
            .cloned()
            .collect()
    } else {
        pending.scopes.clone()
    };
    if !scopes.iter().any(|s| s.ends_with(":read")) {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Choose some access",
            "Leave at least one kind of read access ticked, or deny the request.",
        );
    }
    let code = random_token("qac");
    {
        let mut w = world.lock();
        if w.organization(&organization_id).is_none() {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Unknown organization",
                "Pick one of the listed organizations.",
            );
        }
        let expires_at = w.now() + CODE_LIFETIME;
        w.codes.insert(
            code.clone(),
            CodeRecord {
                client_id: pending.client_id.clone(),
                redirect_uri: pending.redirect_uri.clone(),
                code_challenge: pending.code_challenge.clone(),
                resource: pending.resource.clone(),
                scopes,
                organization_id,
                expires_at,
                sign_in: None,
                grant_id: None,
            },
        );
        w.counters.codes_issued += 1;
        w.note_secret(&code);
    }
    redirect_back(
        &pending.redirect_uri,
        &[("code", &code)],
        Some(&pending.state),
        &issuer,
    )
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

// ---- Token endpoint -------------------------------------------------------------------------

/// A token-endpoint error (RFC 6749 §5.2).
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
    basic_challenge: bool,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        Self {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (header::PRAGMA, HeaderValue::from_static("no-cache")),
            ],
            Json(json!({ "error": self.error, "error_description": self.description })),
        )
            .into_response();
        // RFC 6749 §5.2: a client that tried Basic gets a challenge back with the 401.
        if self.status == StatusCode::UNAUTHORIZED && self.basic_challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"qentrah\""),
            );
        }
        response
    }
}

impl From<ParamsError> for OAuthError {
    fn from(error: ParamsError) -> Self {
        OAuthError::new("invalid_request", error.to_string())
    }
}

/// Authenticates the client of a token or revocation request (RFC 6749 §2.3).
fn authenticate_client(
    world: &SharedWorld,
    headers: &HeaderMap,
    params: &Params,
) -> Result<String, OAuthError> {
    let basic = match headers.get(header::AUTHORIZATION) {
        Some(value) => Some(parse_basic(value).ok_or_else(|| {
            let mut error = OAuthError::new("invalid_client", "malformed Basic authorization");
            error.basic_challenge = true;
            error
        })?),
        None => None,
    };
    let body_id = params.single("client_id")?;
    let body_secret = params.single("client_secret")?;

    let (client_id, secret, used_basic) = match (basic, body_id, body_secret) {
        // RFC 6749 §2.3: a client must not use more than one authentication method.
        (Some(_), _, Some(_)) => {
            return Err(OAuthError::new(
                "invalid_request",
                "use either client_secret_basic or client_secret_post, not both",
            ))
        }
        (Some((id, secret)), body_id, None) => {
            if body_id.is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::new(
                    "invalid_request",
                    "client_id in the body differs from the Basic credentials",
                ));
            }
            (id, Some(secret), true)
        }
        (None, Some(id), secret) => (id.to_owned(), secret.map(str::to_owned), false),
        (None, None, _) => {
            return Err(OAuthError::new(
                "invalid_client",
                "client authentication is required",
            ))
        }
    };

    let world = world.lock();
    let fail = |description: &str| {
        let mut error = OAuthError::new("invalid_client", description);
        error.basic_challenge = used_basic;
        error
    };
    let Some(client) = world.client(&client_id) else {
        return Err(fail("unknown client"));
    };
    match (&client.client_secret, secret) {
        (None, None) => {}
        (None, Some(_)) => return Err(fail("this is a public client; it has no secret to send")),
        (Some(_), None) => return Err(fail("this confidential client must authenticate")),
        (Some(expected), Some(given)) => {
            if !constant_time_eq(expected.as_bytes(), given.as_bytes()) {
                return Err(fail("client authentication failed"));
            }
        }
    }
    // A confidential client is registered for one method (by default `client_secret_post`, the
    // method the integration brief gives: client_id and client_secret as form fields). A real
    // authorization server holds a client to its registered method (RFC 7591 §2,
    // token_endpoint_auth_method), so credentials sent the other way are refused, not
    // silently accepted. (A public client has no secret to send either way.)
    if client.client_secret.is_some() {
        match (client.auth_method, used_basic) {
            (ClientAuthMethod::ClientSecretPost, true) => {
                return Err(fail(
                    "this client is registered for client_secret_post: send client_id and \
                     client_secret in the form body, not in an Authorization header",
                ))
            }
            (ClientAuthMethod::ClientSecretBasic, false) => {
                return Err(fail(
                    "this client is registered for client_secret_basic: send its credentials \
                     in an Authorization header, not in the form body",
                ))
            }
            _ => {}
        }
    }
    Ok(client_id)
}

/// Decodes `Basic base64(urlencode(id):urlencode(secret))` (RFC 6749 §2.3.1).
fn parse_basic(value: &HeaderValue) -> Option<(String, String)> {
    let value = value.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = url::form_urlencoded::parse(format!("a={id}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    let secret = url::form_urlencoded::parse(format!("a={secret}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    Some((id, secret))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `POST /oauth/token`.
pub async fn token(State(world): State<SharedWorld>, headers: HeaderMap, body: String) -> Response {
    world.lock().counters.token_requests += 1;
    let result = token_inner(&world, &headers, &body);
    if result.is_err() {
        world.lock().counters.token_errors += 1;
    }
    match result {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

/// A token or revocation request body: a form (RFC 6749 §4.1.3, RFC 7009 §2.1) with no
/// parameter repeated (§3.2).
fn parse_form(headers: &HeaderMap, body: &str) -> Result<Params, OAuthError> {
    if !is_form(headers) {
        return Err(OAuthError::new(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let params = Params::parse(body)?;
    if let Some(name) = params.duplicated() {
        return Err(OAuthError::new(
            "invalid_request",
            format!("parameter {name} is repeated"),
        ));
    }
    Ok(params)
}

fn token_inner(
    world: &SharedWorld,
    headers: &HeaderMap,
    body: &str,
) -> Result<Response, OAuthError> {
    let params = parse_form(headers, body)?;
    let client_id = authenticate_client(world, headers, &params)?;
    // RFC 6749 §5.2 `unauthorized_client`: an authenticated client that may not use the grant.
    if !world
        .lock()
        .client(&client_id)
        .is_some_and(|client| client.approved)
    {
        return Err(OAuthError::new(
            "unauthorized_client",
            "a Qentrah Workspace admin has not approved this app",
        ));
    }
    match params.get("grant_type") {
        Some("authorization_code") => authorization_code_grant(world, &client_id, &params),
        Some("refresh_token") => refresh_token_grant(world, &client_id, &params),
        Some(_) => Err(OAuthError::new(
            "unsupported_grant_type",
            "use authorization_code or refresh_token",
        )),
        None => Err(OAuthError::new("invalid_request", "grant_type is required")),
    }
}

fn require<'a>(params: &'a Params, name: &str) -> Result<&'a str, OAuthError> {
    params
        .get(name)
        .ok_or_else(|| OAuthError::new("invalid_request", format!("{name} is required")))
}

fn authorization_code_grant(
    world: &SharedWorld,
    client_id: &str,
    params: &Params,
) -> Result<Response, OAuthError> {
    let code = require(params, "code")?;
    let redirect_uri = require(params, "redirect_uri")?;
    // Only a code issued without a challenge (the seed's legacy "Open App", which a real
    // Workspace accepts: that is what makes its login CSRF work) is redeemed without one.
    let verifier = match params.get("code_verifier") {
        Some(verifier) => verifier,
        None if world
            .lock()
            .codes
            .get(code)
            .is_some_and(|c| c.code_challenge.is_empty()) =>
        {
            ""
        }
        None => require(params, "code_verifier")?,
    };
    let resource = params.get("resource");

    // RFC 7636 §4.1: 43–128 characters from the unreserved set.
    if !verifier.is_empty()
        && (!(43..=128).contains(&verifier.len())
            || !verifier
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')))
    {
        return Err(OAuthError::new(
            "invalid_request",
            "code_verifier must be 43-128 unreserved characters",
        ));
    }

    let mut w = world.lock();
    if !verifier.is_empty() {
        w.note_secret(verifier);
    }
    let now = w.now();
    let Some(record) = w.codes.get(code).cloned() else {
        return Err(OAuthError::new(
            "invalid_grant",
            "unknown authorization code",
        ));
    };
    if let Some(grant_id) = &record.grant_id {
        // RFC 6749 §4.1.2 / §10.5: a code used twice may have been stolen; revoke what it gave.
        let grant_id = grant_id.clone();
        w.revoke_grant(&grant_id);
        return Err(OAuthError::new(
            "invalid_grant",
            "authorization code already used; the tokens it issued are revoked",
        ));
    }
    if record.expires_at <= now {
        return Err(OAuthError::new(
            "invalid_grant",
            "authorization code expired",
        ));
    }
    if record.client_id != client_id {
        return Err(OAuthError::new(
            "invalid_grant",
            "authorization code was issued to another client",
        ));
    }
    // A failed exchange burns the code, as strict servers do: the client gets one attempt, so
    // a client that "retries" an exchange (or guesses verifiers) fails here as it would there
    // (RFC 6749 §4.1.2: a code is used once; RFC 9700 §2.1.1).
    let checked = (|| -> Result<(), OAuthError> {
        if record.redirect_uri != redirect_uri {
            return Err(OAuthError::new(
                "invalid_grant",
                "redirect_uri differs from the authorization request",
            ));
        }
        if record.code_challenge.is_empty() && !verifier.is_empty() {
            return Err(OAuthError::new(
                "invalid_grant",
                "the authorization request had no code_challenge",
            ));
        }
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if !record.code_challenge.is_empty()
            && !constant_time_eq(challenge.as_bytes(), record.code_challenge.as_bytes())
        {
            return Err(OAuthError::new(
                "invalid_grant",
                "code_verifier does not match the code_challenge",
            ));
        }
        match resource {
            Some(resource) if resource == record.resource => {}
            Some(_) => {
                return Err(OAuthError::new(
                    "invalid_target",
                    "resource differs from the authorization request",
                ))
            }
            None if record.resource.is_empty() => {}
            None => {
                return Err(OAuthError::new(
                    "invalid_target",
                    "resource is required (RFC 8707)",
                ))
            }
        }
        Ok(())
    })();
    if let Err(error) = checked {
        w.codes.remove(code);
        return Err(error);
    }

    let grant_id = w.new_grant_id();
    let created_at = w.now_secs();
    w.grants.insert(
        grant_id.clone(),
        crate::state::Grant {
            id: grant_id.clone(),
            client_id: client_id.to_owned(),
            organization_id: record.organization_id.clone(),
            scopes: record.scopes.clone(),
            resource: record.resource.clone(),
            status: GrantStatus::Active,
            created_at,
            refreshes: 0,
            current_refresh_token: None,
            sign_in: record.sign_in.clone(),
        },
    );
    if let Some(code_record) = w.codes.get_mut(code) {
        code_record.grant_id = Some(grant_id.clone());
    }
    // A refresh token with `offline_access`; for a sign-in, also to a confidential client, as
    // most OpenID providers do, so the app can re-check the user without signing them out.
    let confidential = w
        .client(client_id)
        .is_some_and(|c| c.client_secret.is_some());
    let with_refresh = record.scopes.iter().any(|s| s == "offline_access")
        || (record.sign_in.is_some() && confidential);
    let minted = w
        .mint_tokens(&grant_id, with_refresh)
        .ok_or_else(|| OAuthError::new("server_error", "grant vanished"))?;
    // OIDC Core §3.1.3.3: the token response of a sign-in carries the ID token.
    let id_token = crate::oidc::id_token_for(&mut w, client_id, &record);
    w.counters.authorization_code_grants += 1;
    let quirks = w.token_quirks.clone();
    drop(w);
    Ok(token_response(minted, &quirks, None, id_token))
}

fn refresh_token_grant(
    world: &SharedWorld,
    client_id: &str,
    params: &Params,
) -> Result<Response, OAuthError> {
    let refresh_token = require(params, "refresh_token")?;
    let mut w = world.lock();
    let Some(record) = w.refresh_tokens.get(refresh_token).cloned() else {
        return Err(OAuthError::new("invalid_grant", "unknown refresh token"));
    };
    if record.client_id != client_id {
        return Err(OAuthError::new(
            "invalid_grant",
            "refresh token was issued to another client",
        ));
    }
    match record.state {
        RefreshState::Current => {}
        RefreshState::Rotated => {
            // RFC 9700 §4.14.2: a rotated-out refresh token came back, so one copy leaked.
            // Revoke the whole grant: the attacker's and the client's tokens alike.
            w.revoke_grant(&record.grant_id);
            return Err(OAuthError::new(
                "invalid_grant",
                "refresh token was already used; the grant is revoked",
            ));
        }
        RefreshState::Revoked => {
            return Err(OAuthError::new("invalid_grant", "refresh token revoked"))
        }
    }
    let Some(grant) = w.grants.get(&record.grant_id).cloned() else {
        return Err(OAuthError::new(
            "invalid_grant",
            "the connection no longer exists",
        ));
    };
    if grant.status != GrantStatus::Active {
        return Err(OAuthError::new(
            "invalid_grant",
            "the connection has expired",
        ));
    }
    match params.get("resource") {
        Some(resource) if resource == grant.resource => {}
        Some(_) => {
            return Err(OAuthError::new(
                "invalid_target",
                "resource differs from the grant's",
            ))
        }
        None if grant.resource.is_empty() => {}
        None => {
            return Err(OAuthError::new(
                "invalid_target",
                "resource is required on every refresh (RFC 8707)",
            ))
        }
    }
    if let Some(scope) = params.get("scope") {
        if scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .any(|s| !grant.scopes.iter().any(|g| g == s))
        {
            return Err(OAuthError::new(
                "invalid_scope",
                "a refresh cannot widen the granted scope",
            ));
        }
    }

    // Rotate (RFC 9700 §4.14.2): the old refresh token is spent.
    if let Some(old) = w.refresh_tokens.get_mut(refresh_token) {
        old.state = RefreshState::Rotated;
    }
    let minted = w
        .mint_tokens(&grant.id, true)
        .ok_or_else(|| OAuthError::new("server_error", "grant vanished"))?;
    if let Some(grant) = w.grants.get_mut(&record.grant_id) {
        grant.refreshes += 1;
    }
    w.counters.refresh_grants += 1;
    let quirks = w.token_quirks.clone();
    drop(w);
    let organization_id = quirks.refresh_organization_id.clone();
    Ok(token_response(minted, &quirks, organization_id, None))
}

fn token_response(
    minted: crate::state::MintedTokens,
    quirks: &crate::state::TokenQuirks,
    organization_override: Option<String>,
    id_token: Option<String>,
) -> Response {
    let mut body = serde_json::Map::new();
    if let Some(id_token) = id_token {
        body.insert("id_token".into(), id_token.into());
    }
    body.insert("access_token".into(), minted.access_token.into());
    body.insert(
        "token_type".into(),
        quirks.token_type.as_deref().unwrap_or("Bearer").into(),
    );
    if !quirks.omit_expires_in {
        body.insert(
            "expires_in".into(),
            if quirks.expires_in_as_string {
                minted.expires_in.to_string().into()
            } else {
                minted.expires_in.into()
            },
        );
    }
    if let (Some(refresh), false) = (minted.refresh_token, quirks.omit_refresh_token) {
        body.insert("refresh_token".into(), refresh.into());
    }
    body.insert("scope".into(), minted.scopes.join(" ").into());
    if !quirks.omit_organization_id {
        let organization_id = organization_override.unwrap_or(minted.organization_id);
        let value = match organization_id.parse::<u64>() {
            Ok(number) if quirks.numeric_organization_id => number.into(),
            _ => organization_id.into(),
        };
        body.insert("organization_id".into(), value);
    }
    if quirks.padding_bytes > 0 {
        body.insert("padding".into(), "x".repeat(quirks.padding_bytes).into());
    }
    (
        StatusCode::OK,
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (header::PRAGMA, HeaderValue::from_static("no-cache")),
        ],
        Json(serde_json::Value::Object(body)),
    )
        .into_response()
}

// ---- Revocation (RFC 7009) ------------------------------------------------------------------

/// `POST /oauth/revoke`.
pub async fn revoke(
    State(world): State<SharedWorld>,
    headers: HeaderMap,
    body: String,
) -> Response {
    match revoke_inner(&world, &headers, &body) {
        Ok(()) => (
            StatusCode::OK,
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        )
            .into_response(),
        Err(error) => error.into_response(),
    }
}

fn revoke_inner(world: &SharedWorld, headers: &HeaderMap, body: &str) -> Result<(), OAuthError> {
    let params = parse_form(headers, body)?;
    let client_id = authenticate_client(world, headers, &params)?;
    let token = require(&params, "token")?;
    let mut w = world.lock();
    w.counters.revocations += 1;
    // RFC 7009 §2.2: an unknown or foreign token still gets 200, so revocation leaks nothing.
    if let Some(record) = w.refresh_tokens.get(token).cloned() {
        let ignored = w.ignore_revocation_of_rotated && record.state == RefreshState::Rotated;
        if record.client_id == client_id && !ignored {
            // §2.1: revoking a refresh token revokes the grant and its access tokens.
            w.revoke_grant(&record.grant_id);
        }
    } else if let Some(record) = w.access_tokens.get(token).cloned() {
        let owner = w.grants.get(&record.grant_id).map(|g| g.client_id.clone());
        if owner.as_deref() == Some(client_id.as_str()) {
            if let Some(record) = w.access_tokens.get_mut(token) {
                record.revoked = true;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let value = HeaderValue::from_str(&format!(
            "Basic {}",
            STANDARD.encode("my%20client:s%3Acret")
        ))
        .unwrap();
        assert_eq!(
            parse_basic(&value),
            Some(("my client".to_owned(), "s:cret".to_owned()))
        );
        assert_eq!(parse_basic(&HeaderValue::from_static("Bearer x")), None);
    }

    #[test]
    fn s256_challenge_shape() {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(b"verifier"));
        assert!(is_s256_challenge(&challenge));
        assert!(!is_s256_challenge("plain-verifier"));
    }
}
