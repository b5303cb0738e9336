//! OpenID Connect on top of the authorization server: discovery (OIDC Discovery 1.0 §4), the
//! JWKS, ID tokens (issued by the token endpoint), UserInfo (OIDC Core §5.3), RP-initiated
//! logout, the Workspace's own sign-in (a session cookie, so a signed-in user is approved
//! straight through, as the marketplace seed describes), and "Open App" in its two shapes:
//! `initiate` (OIDC Core §4, third-party-initiated login) and `legacy` (the seed's own flow,
//! `state=<organizationId>` and no PKCE, kept so the partner app can prove it refuses it).

use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::control::{bad_request, query_params, ControlError};
use crate::html::{escape, page};
use crate::identity::{IdTokenClaims, IdTokenFault, UserInfoFault, SESSION_COOKIE};
use crate::oauth::{error_page, issuer_for_response, redirect_back};
use crate::params::Params;
use crate::state::{
    random_token, CodeRecord, MetadataVariant, PendingAuthorization, SharedWorld, SignIn, World,
    CODE_LIFETIME,
};

/// What a sign-in grant asks for by default (the app's `QENTRAH_SSO_SCOPES` default).
pub const SIGN_IN_SCOPES: [&str; 4] = ["openid", "profile", "email", "organization"];

// ---- Discovery and keys --------------------------------------------------------------------

/// `GET {issuer}/.well-known/openid-configuration` (OIDC Discovery 1.0 §4: appended to the
/// issuer, path included, unlike RFC 8414's well-known placement).
pub async fn discovery(State(world): State<SharedWorld>) -> Response {
    let w = world.lock();
    if w.metadata == MetadataVariant::NotFound {
        return StatusCode::NOT_FOUND.into_response();
    }
    let issuer = w.issuer.clone();
    let announced = if w.metadata == MetadataVariant::MismatchingIssuer {
        "https://impostor.qentrah.invalid".to_owned()
    } else {
        issuer.clone()
    };
    Json(json!({
        "issuer": announced,
        "authorization_endpoint": format!("{issuer}/oauth/authorize"),
        "token_endpoint": format!("{issuer}/oauth/token"),
        "userinfo_endpoint": format!("{issuer}/oauth/userinfo"),
        "jwks_uri": format!("{issuer}/oauth/jwks"),
        "end_session_endpoint": format!("{issuer}/oauth/logout"),
        "revocation_endpoint": format!("{issuer}/oauth/revoke"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "scopes_supported": w.profile.scope_names(),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "azp", "name", "email", "email_verified", "organization_id", "organization_name", "role"],
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

/// `GET /oauth/jwks`: every key that may have signed a live ID token (RFC 7517 §5).
pub async fn jwks(State(world): State<SharedWorld>) -> Response {
    let keys = world.lock().identity.published_keys();
    Json(json!({ "keys": keys })).into_response()
}

// ---- UserInfo ------------------------------------------------------------------------------

fn bearer_error(status: StatusCode, error: &'static str, description: &str) -> Response {
    let challenge = format!("Bearer error=\"{error}\", error_description=\"{description}\"");
    let mut response = (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// `GET` or `POST /oauth/userinfo` with a sign-in grant's access token (OIDC Core §5.3):
/// the user's current role in the grant's organization, read now, not at sign-in.
pub async fn userinfo(State(world): State<SharedWorld>, headers: HeaderMap) -> Response {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned)
    else {
        return bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "a Bearer access token is required",
        );
    };
    let mut w = world.lock();
    let now = w.now();
    let Some(record) = w.access_tokens.get(&token).cloned() else {
        return bearer_error(StatusCode::UNAUTHORIZED, "invalid_token", "unknown token");
    };
    if record.revoked || record.expires_at <= now {
        return bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the token has expired or was revoked",
        );
    }
    let Some(sub) = record
        .sub
        .clone()
        .filter(|_| record.scopes.iter().any(|s| s == "openid"))
    else {
        return bearer_error(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "UserInfo needs a token granted with the openid scope",
        );
    };
    if let Some(UserInfoFault::Status { status }) = w.identity.userinfo_faults.front().cloned() {
        w.identity.userinfo_faults.pop_front();
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, Json(json!({ "error": "server_error" }))).into_response();
    }
    let Some(user) = w.identity.user(&sub).cloned().filter(|u| !u.disabled) else {
        return bearer_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the user's account is disabled",
        );
    };
    let Some(role) = user.role_in(&record.organization_id).map(str::to_owned) else {
        return bearer_error(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            "the user is no longer a member of this organization",
        );
    };
    let organization_name = w
        .organization(&record.organization_id)
        .map(|o| o.name.clone())
        .unwrap_or_default();
    let mut body = json!({
        "sub": user.sub,
        "email": user.email,
        "email_verified": user.email_verified,
        "name": user.name,
        "organization_id": record.organization_id,
        "organization_name": organization_name,
        "role": role,
    });
    match w.identity.userinfo_faults.pop_front() {
        Some(UserInfoFault::SubMismatch) => body["sub"] = "usr_someone_else".into(),
        Some(UserInfoFault::OrganizationMismatch) => {
            body["organization_id"] = "org_someone_else".into()
        }
        Some(UserInfoFault::MissingOrganization) => {
            if let Some(object) = body.as_object_mut() {
                object.remove("organization_id");
                object.remove("organization_name");
            }
        }
        Some(UserInfoFault::Role { role }) => body["role"] = role.into(),
        Some(UserInfoFault::Status { .. }) | None => {}
    }
    drop(w);
    (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response()
}

// ---- The Workspace's own sign-in -----------------------------------------------------------

fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value.to_owned())
}

/// The signed-in Workspace user of this browser, if any.
pub fn session_user(world: &World, headers: &HeaderMap) -> Option<crate::identity::User> {
    let cookie = cookie_value(headers, SESSION_COOKIE)?;
    world.identity.session_user(&cookie).cloned()
}

/// Starts a Workspace session for `sub` and returns its cookie value.
pub fn start_session(world: &mut World, sub: &str) -> Option<String> {
    world.identity.user(sub).filter(|u| !u.disabled)?;
    let value = random_token("qws");
    world
        .identity
        .sessions
        .insert(value.clone(), sub.to_owned());
    Some(value)
}

fn session_cookie(value: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Lax; Path=/"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("qws_session=; Path=/"))
}

/// The path this Workspace's routes live under (its issuer's path).
fn base_path(world: &World) -> String {
    url::Url::parse(&world.issuer)
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// A same-Workspace path to continue to, or none (an open redirect otherwise).
fn local_continue(raw: &str) -> Option<&str> {
    (raw.starts_with('/') && !raw.starts_with("//") && !raw.contains('\\')).then_some(raw)
}

fn sign_in_page(
    world: &World,
    request_id: Option<&str>,
    continue_to: Option<&str>,
    hint: Option<&str>,
) -> String {
    let mut users = String::new();
    for user in world.identity.users.iter().filter(|u| !u.disabled) {
        let roles: Vec<String> = user
            .memberships
            .iter()
            .map(|m| {
                format!(
                    "{} in <code>{}</code>",
                    escape(&m.role),
                    escape(&m.organization_id)
                )
            })
            .collect();
        let hinted = hint.is_some_and(|h| h == user.email || h == user.sub);
        users.push_str(&format!(
            "<li><button type=\"submit\" name=\"sub\" value=\"{sub}\"{primary}>{name}</button> <span class=\"muted\">{email}{unverified} · {roles}</span></li>",
            sub = escape(&user.sub),
            primary = if hinted { " class=\"primary\"" } else { "" },
            name = escape(&user.name),
            email = escape(&user.email),
            unverified = if user.email_verified { "" } else { " (unverified)" },
            roles = roles.join(", "),
        ));
    }
    let hidden = match (request_id, continue_to) {
        (Some(id), _) => format!(
            "<input type=\"hidden\" name=\"request_id\" value=\"{}\">",
            escape(id)
        ),
        (None, Some(to)) => format!(
            "<input type=\"hidden\" name=\"continue\" value=\"{}\">",
            escape(to)
        ),
        (None, None) => String::new(),
    };
    page(
        "Sign in · Qentrah dev Workspace",
        &format!(
            "<h1>Sign in to the Qentrah dev Workspace</h1><p class=\"muted\">Pick a seeded user. The Workspace remembers you with its own session cookie, so apps you open sign you in straight through.</p><form method=\"post\" action=\"{path}/signin\">{hidden}<ul class=\"plain\">{users}</ul></form>",
            path = escape(&base_path(world)),
        ),
    )
}

/// `GET /signin?continue=…`: the Workspace's sign-in page.
pub async fn sign_in_form(State(world): State<SharedWorld>, RawQuery(raw): RawQuery) -> Response {
    let params = Params::parse(raw.as_deref().unwrap_or_default()).unwrap_or_default();
    let continue_to = params.get("continue").and_then(local_continue);
    let w = world.lock();
    Html(sign_in_page(
        &w,
        None,
        continue_to,
        params.get("login_hint"),
    ))
    .into_response()
}

/// `POST /signin`: signs the picked user in, then continues the authorization request (or the
/// page) that asked for it.
pub async fn sign_in_submit(State(world): State<SharedWorld>, body: String) -> Response {
    let Ok(params) = Params::parse(&body) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Invalid form",
            "The form could not be read.",
        );
    };
    let sub = params.get("sub").unwrap_or_default().to_owned();
    let Some(cookie) = start_session(&mut world.lock(), &sub) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Unknown user",
            "Pick one of the listed users.",
        );
    };
    let mut response = match (
        params.get("request_id"),
        params.get("continue").and_then(local_continue),
    ) {
        (Some(request_id), _) => issue_sign_in_code(&world, request_id, &sub),
        (None, Some(to)) => see_other(to),
        (None, None) => see_other(&format!("{}/", base_path(&world.lock()))),
    };
    response
        .headers_mut()
        .append(header::SET_COOKIE, session_cookie(&cookie));
    response
}

/// `GET /oauth/logout` (RP-initiated logout's `end_session_endpoint`): ends the Workspace
/// session. Never redirects: an unregistered `post_logout_redirect_uri` would be an open
/// redirect, and this emulator registers none.
pub async fn end_session(State(world): State<SharedWorld>, headers: HeaderMap) -> Response {
    if let Some(cookie) = cookie_value(&headers, SESSION_COOKIE) {
        world.lock().identity.sessions.remove(&cookie);
    }
    (
        [(
            header::SET_COOKIE,
            HeaderValue::from_static("qws_session=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0"),
        )],
        Html(page(
            "Signed out · Qentrah dev Workspace",
            "<h1>Signed out of the Qentrah dev Workspace</h1>",
        )),
    )
        .into_response()
}

fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(location) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, location),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
        )
            .into_response(),
        Err(_) => error_page(StatusCode::BAD_REQUEST, "Invalid redirect", "Not a URL."),
    }
}

// ---- Sign-in through /oauth/authorize ------------------------------------------------------

/// The authorization endpoint's answer to a sign-in request (scope `openid`): straight through
/// for a signed-in user, else the Workspace's sign-in page first.
pub fn authorize_sign_in(
    world: &SharedWorld,
    headers: &HeaderMap,
    request_id: String,
    pending: PendingAuthorization,
    login_hint: Option<&str>,
) -> Response {
    let mut w = world.lock();
    let user = session_user(&w, headers);
    w.pending.insert(request_id.clone(), pending);
    match user {
        Some(user) => {
            drop(w);
            issue_sign_in_code(world, &request_id, &user.sub)
        }
        None => (
            [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            Html(sign_in_page(&w, Some(&request_id), None, login_hint)),
        )
            .into_response(),
    }
}

/// The organization a sign-in is for: the installation's, for an installed client; else the
/// user's first.
fn sign_in_organization(
    world: &World,
    client_id: &str,
    user: &crate::identity::User,
) -> Option<String> {
    let installed = world.marketplace.as_ref().and_then(|m| {
        m.installations
            .iter()
            .find(|i| i.client_id == client_id && i.status == "active")
            .map(|i| i.organization_id.clone())
    });
    installed.or_else(|| user.memberships.first().map(|m| m.organization_id.clone()))
}

/// Another organization's installed client, for the "wrong audience" fault.
pub fn other_installed_client(world: &World, organization_id: &str) -> Option<String> {
    world.marketplace.as_ref().and_then(|m| {
        m.installations
            .iter()
            .find(|i| i.organization_id != organization_id && i.status == "active")
            .map(|i| i.client_id.clone())
    })
}

/// Mints the code for a pending sign-in request and sends it back.
fn issue_sign_in_code(world: &SharedWorld, request_id: &str, sub: &str) -> Response {
    let mut w = world.lock();
    let now = w.now();
    let Some(pending) = w.pending.remove(request_id).filter(|p| p.expires_at > now) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This request has expired",
            "Start again from the application.",
        );
    };
    let Some(user) = w.identity.user(sub).cloned().filter(|u| !u.disabled) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Unknown user",
            "Pick one of the listed users.",
        );
    };
    drop(w);
    let issuer = issuer_for_response(world);
    let mut w = world.lock();
    let organization = sign_in_organization(&w, &pending.client_id, &user);
    let Some(organization_id) = organization.filter(|org| user.role_in(org).is_some()) else {
        drop(w);
        return redirect_back(
            &pending.redirect_uri,
            &[
                ("error", "access_denied"),
                (
                    "error_description",
                    "You are not a member of the organization this app is installed for",
                ),
            ],
            Some(&pending.state),
            &issuer,
        );
    };
    let code = random_token("qac");
    let expires_at = now + CODE_LIFETIME;
    let auth_time = w.now_secs();
    w.codes.insert(
        code.clone(),
        CodeRecord {
            client_id: pending.client_id.clone(),
            redirect_uri: pending.redirect_uri.clone(),
            code_challenge: pending.code_challenge.clone(),
            resource: pending.resource.clone(),
            scopes: pending.scopes.clone(),
            organization_id,
            expires_at,
            sign_in: Some(SignIn {
                sub: user.sub.clone(),
                nonce: pending.nonce.clone(),
                auth_time,
            }),
            grant_id: None,
        },
    );
    w.counters.codes_issued += 1;
    w.note_secret(&code);
    drop(w);
    redirect_back(
        &pending.redirect_uri,
        &[("code", &code)],
        Some(&pending.state),
        &issuer,
    )
}

/// The ID token for a sign-in code being exchanged (the token endpoint calls this).
pub fn id_token_for(world: &mut World, client_id: &str, record: &CodeRecord) -> Option<String> {
    let sign_in = record.sign_in.as_ref()?;
    if !record.scopes.iter().any(|s| s == "openid") {
        return None;
    }
    let user = world.identity.user(&sign_in.sub)?.clone();
    let organization_name = world
        .organization(&record.organization_id)
        .map(|o| o.name.clone())
        .unwrap_or_default();
    let claims = IdTokenClaims {
        issuer: world.issuer.clone(),
        client_id: client_id.to_owned(),
        user,
        organization_id: record.organization_id.clone(),
        organization_name,
        nonce: sign_in.nonce.clone(),
        now: world.now_secs(),
        auth_time: sign_in.auth_time,
        scopes: record.scopes.clone(),
        other_client_id: other_installed_client(world, &record.organization_id),
        extra_audience: None,
    };
    let token = world.identity.id_token(&claims)?;
    world.note_secret(&token);
    Some(token)
}

// ---- "Open App" ----------------------------------------------------------------------------

/// How the Workspace opens the partner app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenAppMode {
    /// OIDC Core §4: to the app's `initiate_login_uri`, which starts a proper flow.
    Initiate,
    /// The seed's flow: a code minted here, `state=<organizationId>`, no PKCE, straight to the
    /// app's callback.
    Legacy,
}

impl OpenAppMode {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "initiate" => Some(Self::Initiate),
            "legacy" => Some(Self::Legacy),
            _ => None,
        }
    }
}

/// The link "Open App" follows for `sub` in `organization_id`.
pub fn open_app_link(
    world: &SharedWorld,
    organization_id: &str,
    mode: OpenAppMode,
    sub: &str,
    target_link_uri: Option<&str>,
) -> Result<String, String> {
    let issuer = issuer_for_response(world);
    let mut w = world.lock();
    let market = w
        .marketplace
        .as_ref()
        .ok_or("this Workspace has no marketplace")?;
    let app_url = market.config.app_url();
    let installation = market
        .active(organization_id)
        .ok_or("Qentrah Connect is not installed for this organization")?;
    let client_id = installation.client_id.clone();
    let user = w
        .identity
        .user(sub)
        .filter(|u| !u.disabled)
        .cloned()
        .ok_or("unknown or disabled user")?;
    if user.role_in(organization_id).is_none() {
        return Err("the user is not a member of this organization".to_owned());
    }
    let mut url = url::Url::parse(&app_url).map_err(|e| e.to_string())?;
    match mode {
        OpenAppMode::Initiate => {
            url.set_path("/auth/login");
            let mut query = url.query_pairs_mut();
            query.append_pair("iss", &w.issuer);
            query.append_pair("login_hint", &user.email);
            query.append_pair("client_id", &client_id);
            query.append_pair("organization_id", organization_id);
            if let Some(target) = target_link_uri {
                query.append_pair("target_link_uri", target);
            }
        }
        OpenAppMode::Legacy => {
            let code = random_token("qac");
            let expires_at = w.now() + CODE_LIFETIME;
            let auth_time = w.now_secs();
            w.codes.insert(
                code.clone(),
                CodeRecord {
                    client_id,
                    redirect_uri: format!("{app_url}/auth/callback"),
                    code_challenge: String::new(),
                    resource: String::new(),
                    scopes: SIGN_IN_SCOPES.iter().map(|s| (*s).to_owned()).collect(),
                    organization_id: organization_id.to_owned(),
                    expires_at,
                    sign_in: Some(SignIn {
                        sub: user.sub.clone(),
                        nonce: None,
                        auth_time,
                    }),
                    grant_id: None,
                },
            );
            w.counters.codes_issued += 1;
            w.note_secret(&code);
            url.set_path("/auth/callback");
            let mut query = url.query_pairs_mut();
            query.append_pair("code", &code);
            query.append_pair("state", organization_id);
            query.append_pair("iss", &issuer);
        }
    }
    Ok(url.to_string())
}

/// `GET /apps/open?organization_id=…&mode=initiate|legacy`: the Workspace's "Open App" button.
pub async fn open_app(
    State(world): State<SharedWorld>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = Params::parse(raw.as_deref().unwrap_or_default()).unwrap_or_default();
    let user = session_user(&world.lock(), &headers);
    let Some(user) = user else {
        let here = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut to = format!("{}/signin?", base_path(&world.lock()));
        to.push_str(
            &url::form_urlencoded::Serializer::new(String::new())
                .append_pair("continue", here)
                .finish(),
        );
        return see_other(&to);
    };
    let Some(mode) = OpenAppMode::parse(params.get("mode").unwrap_or("initiate")) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Unknown mode",
            "Use initiate or legacy.",
        );
    };
    match open_app_link(
        &world,
        params.get("organization_id").unwrap_or_default(),
        mode,
        &user.sub,
        params.get("target_link_uri"),
    ) {
        Ok(link) => see_other(&link),
        Err(reason) => error_page(StatusCode::BAD_REQUEST, "Cannot open the app", &reason),
    }
}

// ---- Control API ---------------------------------------------------------------------------

type ControlResult = Result<Response, ControlError>;

fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, ControlError> {
    params
        .get(name)
        .ok_or_else(|| bad_request(format!("{name} is required")))
}

async fn control_users(State(world): State<SharedWorld>) -> Response {
    Json(json!({ "users": world.lock().identity.users })).into_response()
}

async fn control_role(State(world): State<SharedWorld>, RawQuery(raw): RawQuery) -> ControlResult {
    let params = query_params(raw)?;
    let sub = required(&params, "sub")?;
    let org = required(&params, "organization_id")?;
    let role = required(&params, "role")?;
    crate::Control::from_world(world)
        .set_role(sub, org, role)
        .map_err(bad_request)?;
    Ok(Json(json!({ "ok": true })).into_response())
}

async fn control_remove(
    State(world): State<SharedWorld>,
    RawQuery(raw): RawQuery,
) -> ControlResult {
    let params = query_params(raw)?;
    let sub = required(&params, "sub")?;
    let org = required(&params, "organization_id")?;
    crate::Control::from_world(world)
        .remove_member(sub, org)
        .map_err(bad_request)?;
    Ok(Json(json!({ "ok": true })).into_response())
}

async fn control_disable(
    State(world): State<SharedWorld>,
    RawQuery(raw): RawQuery,
) -> ControlResult {
    let params = query_params(raw)?;
    let sub = required(&params, "sub")?;
    crate::Control::from_world(world)
        .disable_user(sub)
        .map_err(bad_request)?;
    Ok(Json(json!({ "ok": true })).into_response())
}

async fn control_rotate(
    State(world): State<SharedWorld>,
    RawQuery(raw): RawQuery,
) -> ControlResult {
    let params = query_params(raw)?;
    let control = crate::Control::from_world(world);
    let failed = || bad_request("key generation failed");
    let kid = match (params.get("retire"), params.get("alg")) {
        (Some("1" | "true"), _) => {
            control.retire_old_signing_keys();
            None
        }
        (_, Some(alg)) => {
            let alg = crate::identity::SigningAlg::parse(alg)
                .ok_or_else(|| bad_request("alg is RS256 or ES256"))?;
            Some(control.rotate_signing_key_to(alg).ok_or_else(failed)?)
        }
        _ => Some(control.rotate_signing_key().ok_or_else(failed)?),
    };
    Ok(Json(json!({ "kid": kid })).into_response())
}

async fn control_id_token_fault(
    State(world): State<SharedWorld>,
    RawQuery(raw): RawQuery,
) -> ControlResult {
    let params = query_params(raw)?;
    let name = required(&params, "fault")?;
    let fault = IdTokenFault::parse(name).ok_or_else(|| {
        let names: Vec<String> = IdTokenFault::ALL.iter().map(|f| f.name()).collect();
        bad_request(format!("unknown fault {name}; one of {}", names.join(", ")))
    })?;
    crate::Control::from_world(world).fail_next_id_token(fault);
    Ok(Json(json!({ "ok": true })).into_response())
}

async fn control_userinfo_fault(
    State(world): State<SharedWorld>,
    RawQuery(raw): RawQuery,
) -> ControlResult {
    let params = query_params(raw)?;
    let fault = match required(&params, "fault")? {
        "sub_mismatch" => UserInfoFault::SubMismatch,
        "organization_mismatch" => UserInfoFault::OrganizationMismatch,
        "missing_organization" => UserInfoFault::MissingOrganization,
        "role" => UserInfoFault::Role {
            role: required(&params, "role")?.to_owned(),
        },
        "status" => UserInfoFault::Status {
            status: required(&params, "status")?
                .parse()
                .ok()
                .filter(|s| (100..600).contains(s))
                .ok_or_else(|| bad_request("status must be an HTTP status"))?,
        },
        other => return Err(bad_request(format!("unknown fault {other}"))),
    };
    crate::Control::from_world(world).fail_next_userinfo(fault);
    Ok(Json(json!({ "ok": true })).into_response())
}

async fn control_open_app(
    State(world): State<SharedWorld>,
    RawQuery(raw): RawQuery,
) -> ControlResult {
    let params = query_params(raw)?;
    let org = required(&params, "organization_id")?;
    let mode = OpenAppMode::parse(params.get("mode").unwrap_or("initiate"))
        .ok_or_else(|| bad_request("mode is initiate or legacy"))?;
    let sub = required(&params, "sub")?;
    let url = open_app_link(&world, org, mode, sub, params.get("target_link_uri"))
        .map_err(bad_request)?;
    Ok(Json(json!({ "url": url })).into_response())
}

/// The public routes (under the issuer's path).
pub fn public_router() -> Router<SharedWorld> {
    Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/oauth/jwks", get(jwks))
        .route("/oauth/userinfo", get(userinfo).post(userinfo))
        .route("/oauth/logout", get(end_session))
        .route("/signin", get(sign_in_form).post(sign_in_submit))
        .route("/apps/open", get(open_app))
}

/// The control routes (loopback only).
pub fn control_router() -> Router<SharedWorld> {
    Router::new()
        .route("/__dev/users", get(control_users))
        .route("/__dev/users/role", post(control_role))
        .route("/__dev/users/remove", post(control_remove))
        .route("/__dev/users/disable", post(control_disable))
        .route("/__dev/signing-keys/rotate", post(control_rotate))
        .route("/__dev/id-token-faults", post(control_id_token_fault))
        .route("/__dev/userinfo-faults", post(control_userinfo_fault))
        .route("/__dev/open-app", post(control_open_app))
}
