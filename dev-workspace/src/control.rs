//! The control API (`/__dev/…`, loopback only) and its HTML page: what tests and developers use
//! to put the Workspace into every state a real one can be in.
//!
//! Every action takes its parameters from the query string, so the same URL works from a test,
//! from `curl -X POST`, and from a button on the control page (`return=page` redirects back).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::html::{escape, page};
use crate::marketplace::{Delivery, Fault, MarketInstallation, MarketplaceError};
use crate::params::Params;
use crate::state::{
    Counters, Endpoint, Failure, GrantStatus, LoggedRequest, SharedWorld, TokenQuirks,
};

/// A typed handle on the emulator for in-process tests; the HTTP control API calls the same.
#[derive(Debug, Clone)]
pub struct Control {
    world: SharedWorld,
}

/// A connection as the control API shows it (no token values).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ConnectionView {
    pub grant_id: String,
    pub client_id: String,
    pub organization_id: String,
    pub scopes: Vec<String>,
    pub status: GrantStatus,
    pub refreshes: u64,
    pub live_access_tokens: usize,
}

impl Control {
    pub(crate) fn new(world: SharedWorld) -> Self {
        Self { world }
    }

    pub(crate) fn from_world(world: SharedWorld) -> Self {
        Self { world }
    }

    /// The seeded users as they are now.
    pub fn users(&self) -> Vec<crate::identity::User> {
        self.world.lock().identity.users.clone()
    }

    /// A Workspace session for `sub`: the value of its `qws_session` cookie, so a test's
    /// browser is signed in to the Workspace (and approved straight through) without the form.
    pub fn workspace_session(&self, sub: &str) -> Option<String> {
        crate::oidc::start_session(&mut self.world.lock(), sub)
    }

    /// Changes (or adds) a user's role in an organization; UserInfo answers it from now on.
    pub fn set_role(&self, sub: &str, organization_id: &str, role: &str) -> Result<(), String> {
        let mut w = self.world.lock();
        if w.organization(organization_id).is_none() {
            return Err(format!("unknown organization {organization_id}"));
        }
        let user = w.identity.user_mut(sub).ok_or("unknown user")?;
        match user
            .memberships
            .iter_mut()
            .find(|m| m.organization_id == organization_id)
        {
            Some(membership) => membership.role = role.to_owned(),
            None => user.memberships.push(crate::identity::Membership {
                organization_id: organization_id.to_owned(),
                role: role.to_owned(),
            }),
        }
        Ok(())
    }

    /// Changes a user's email (the subject stays: OIDC Core §5.7, it is the stable key).
    pub fn set_email(&self, sub: &str, email: &str) -> Result<(), String> {
        let mut w = self.world.lock();
        w.identity.user_mut(sub).ok_or("unknown user")?.email = email.to_owned();
        Ok(())
    }

    /// Removes a user from an organization: UserInfo for it answers 403 from now on.
    pub fn remove_member(&self, sub: &str, organization_id: &str) -> Result<(), String> {
        let mut w = self.world.lock();
        let user = w.identity.user_mut(sub).ok_or("unknown user")?;
        user.memberships
            .retain(|m| m.organization_id != organization_id);
        Ok(())
    }

    /// Disables a user: their Workspace sessions end and every sign-in grant is revoked.
    pub fn disable_user(&self, sub: &str) -> Result<(), String> {
        let mut w = self.world.lock();
        w.identity.user_mut(sub).ok_or("unknown user")?.disabled = true;
        w.identity.sessions.retain(|_, s| s != sub);
        let grants: Vec<String> = w
            .grants
            .values()
            .filter(|g| g.sign_in.as_ref().is_some_and(|s| s.sub == sub))
            .map(|g| g.id.clone())
            .collect();
        for grant in grants {
            w.revoke_grant(&grant);
        }
        Ok(())
    }

    /// A new current signing key (the old one stays in the JWKS); returns its `kid`.
    pub fn rotate_signing_key(&self) -> Option<String> {
        self.world.lock().identity.rotate()
    }

    /// A new current signing key for `alg` (RS256 or ES256); returns its `kid`.
    pub fn rotate_signing_key_to(&self, alg: crate::identity::SigningAlg) -> Option<String> {
        self.world.lock().identity.rotate_to(alg)
    }

    /// Stops publishing every signing key but the current one.
    pub fn retire_old_signing_keys(&self) {
        self.world.lock().identity.retire_old_keys();
    }

    /// The next ID token issued carries `fault`.
    pub fn fail_next_id_token(&self, fault: crate::identity::IdTokenFault) {
        self.world.lock().identity.id_token_faults.push_back(fault);
    }

    /// The next UserInfo answer carries `fault`.
    pub fn fail_next_userinfo(&self, fault: crate::identity::UserInfoFault) {
        self.world.lock().identity.userinfo_faults.push_back(fault);
    }

    /// The link "Open App" follows for `sub` in an installed organization.
    pub fn open_app_link(
        &self,
        organization_id: &str,
        mode: crate::oidc::OpenAppMode,
        sub: &str,
        target_link_uri: Option<&str>,
    ) -> Result<String, String> {
        crate::oidc::open_app_link(&self.world, organization_id, mode, sub, target_link_uri)
    }

    /// Makes every access token of the organization expire now (refresh still works).
    pub fn expire_access_tokens(&self, organization_id: &str) {
        let mut w = self.world.lock();
        let now = w.now();
        for token in w.access_tokens.values_mut() {
            if token.organization_id == organization_id && token.expires_at > now {
                token.expires_at = now;
            }
        }
    }

    /// Expires the organization's connections: the API answers `connection_expired`, and a
    /// refresh fails with `invalid_grant`.
    pub fn expire_connection(&self, organization_id: &str) {
        let mut w = self.world.lock();
        for grant in w.grants.values_mut() {
            if grant.organization_id == organization_id && grant.status == GrantStatus::Active {
                grant.status = GrantStatus::Expired;
            }
        }
    }

    /// Deletes the organization's connections: the API answers `connection_not_found`, and a
    /// refresh fails with `invalid_grant`.
    pub fn delete_connection(&self, organization_id: &str) {
        let mut w = self.world.lock();
        let ids: Vec<String> = w
            .grants
            .values()
            .filter(|g| g.organization_id == organization_id)
            .map(|g| g.id.clone())
            .collect();
        for id in ids {
            w.revoke_grant(&id);
            w.grants.remove(&id);
        }
    }

    /// Approves or un-approves the app (one client, or all when `client_id` is `None`).
    pub fn set_app_approved(&self, client_id: Option<&str>, approved: bool) {
        let mut w = self.world.lock();
        for client in &mut w.clients {
            if client_id.is_none_or(|id| id == client.client_id) {
                client.approved = approved;
            }
        }
    }

    /// Withholds (or gives back) a scope for an organization: the API answers `scope_denied`.
    pub fn withhold_scope(&self, organization_id: &str, scope: &str, withheld: bool) {
        let mut w = self.world.lock();
        let set = w
            .withheld_scopes
            .entry(organization_id.to_owned())
            .or_default();
        if withheld {
            set.insert(scope.to_owned());
        } else {
            set.remove(scope);
        }
    }

    /// Adds latency to every response of an endpoint (zero removes it).
    pub fn set_latency(&self, endpoint: Endpoint, latency: Duration) {
        let mut w = self.world.lock();
        if latency.is_zero() {
            w.latency.remove(&endpoint);
        } else {
            w.latency.insert(endpoint, latency);
        }
    }

    /// The next `count` responses of `endpoint` are `failure` instead of the real answer.
    pub fn fail_next(&self, endpoint: Endpoint, count: usize, failure: Failure) {
        let mut w = self.world.lock();
        let queue = w.failures.entry(endpoint).or_default();
        for _ in 0..count {
            queue.push_back(failure.clone());
        }
    }

    pub fn set_token_quirks(&self, quirks: TokenQuirks) {
        self.world.lock().token_quirks = quirks;
    }

    /// Gives an organization `count` clients in all (generated like the seed's), to try lists of
    /// any size. Returns false for an unknown organization.
    pub fn set_client_count(&self, organization_id: &str, count: usize) -> bool {
        let mut w = self.world.lock();
        let Some(org) = w.organizations.iter_mut().find(|o| o.id == organization_id) else {
            return false;
        };
        crate::seed::set_client_count(org, count);
        true
    }

    /// Holds an endpoint's answers back for `delay` after it has acted (0 removes it).
    pub fn set_response_delay(&self, endpoint: Endpoint, delay: Duration) {
        let mut w = self.world.lock();
        if delay.is_zero() {
            w.response_delay.remove(&endpoint);
        } else {
            w.response_delay.insert(endpoint, delay);
        }
    }

    /// What the RFC 8414 metadata says.
    pub fn set_metadata(&self, variant: crate::state::MetadataVariant) {
        self.world.lock().metadata = variant;
    }

    /// Whether revoking a rotated-out refresh token is a no-op (RFC 7009 §2.2 allows it)
    /// instead of ending the grant.
    pub fn set_ignore_revocation_of_rotated(&self, ignore: bool) {
        self.world.lock().ignore_revocation_of_rotated = ignore;
    }

    /// Sends a wrong `iss` on authorization responses (RFC 9207 mix-up).
    pub fn set_wrong_iss(&self, wrong: bool) {
        self.world.lock().wrong_iss = wrong;
    }

    /// Moves the emulator's clock forward (codes and tokens expire by it).
    pub fn advance_clock(&self, by: Duration) {
        self.world.lock().clock_offset += by;
    }

    /// Registers another exact redirect URI for a client.
    pub fn add_redirect_uri(&self, client_id: &str, redirect_uri: &str) -> bool {
        let mut w = self.world.lock();
        match w.clients.iter_mut().find(|c| c.client_id == client_id) {
            Some(client) => {
                if !client.redirect_uris.iter().any(|r| r == redirect_uri) {
                    client.redirect_uris.push(redirect_uri.to_owned());
                }
                true
            }
            None => false,
        }
    }

    /// Every request received so far (secrets redacted).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.world.lock().log.clone()
    }

    /// Every code and token issued and PKCE verifier received so far (for leak tests; the
    /// request log never has them).
    pub fn issued_secrets(&self) -> Vec<String> {
        self.world.lock().issued_secrets.clone()
    }

    /// Requests to `endpoint` being handled right now (waiting out latency included).
    pub fn in_flight(&self, endpoint: Endpoint) -> u64 {
        self.world
            .lock()
            .in_flight
            .get(&endpoint)
            .copied()
            .unwrap_or(0)
    }

    pub fn counters(&self) -> Counters {
        self.world.lock().counters
    }

    pub fn connections(&self) -> Vec<ConnectionView> {
        let w = self.world.lock();
        let now = w.now();
        w.grants
            .values()
            .map(|g| ConnectionView {
                grant_id: g.id.clone(),
                client_id: g.client_id.clone(),
                organization_id: g.organization_id.clone(),
                scopes: g.scopes.clone(),
                status: g.status,
                refreshes: g.refreshes,
                live_access_tokens: w
                    .access_tokens
                    .values()
                    .filter(|t| t.grant_id == g.id && !t.revoked && t.expires_at > now)
                    .count(),
            })
            .collect()
    }

    /// Forgets all flows, grants, tokens, logs and settings (clients stay registered).
    pub fn reset(&self) {
        self.world.lock().reset();
    }

    /// Installs the app for `organization_id` (a new client, `app.installed` sent, with `fault`).
    pub fn install(
        &self,
        organization_id: &str,
        fault: Option<Fault>,
    ) -> Result<(MarketInstallation, String), MarketplaceError> {
        crate::marketplace::act(&self.world, organization_id, fault, true)
    }

    /// Uninstalls it (client deleted, grants revoked, `app.uninstalled` sent, with `fault`).
    pub fn uninstall(
        &self,
        organization_id: &str,
        fault: Option<Fault>,
    ) -> Result<(MarketInstallation, String), MarketplaceError> {
        crate::marketplace::act(&self.world, organization_id, fault, false)
    }

    /// Sends delivery `id` again: same id and body, new timestamp and signature.
    pub fn redeliver(&self, id: &str) -> Result<(), MarketplaceError> {
        crate::marketplace::send(&self.world, id)
    }

    /// The organization's latest install, delivered again under a new id.
    pub fn replay_install(&self, organization_id: &str) -> Result<String, MarketplaceError> {
        let id = crate::marketplace::replay_install(&mut self.world.lock(), organization_id)?;
        crate::marketplace::send(&self.world, &id)?;
        Ok(id)
    }

    /// Signs with these secrets from now on (the first signs; a second is the previous one).
    pub fn set_webhook_secrets(&self, secrets: Vec<String>) {
        if let Some(market) = self.world.lock().marketplace.as_mut() {
            market.config.signing_secrets = secrets;
        }
    }

    /// Every delivery so far (with its body, for in-process tests only).
    pub fn deliveries(&self) -> Vec<Delivery> {
        self.world
            .lock()
            .marketplace
            .as_ref()
            .map(|m| m.deliveries.clone())
            .unwrap_or_default()
    }

    /// Delivery `id` once it is no longer pending (at most ten seconds).
    pub async fn delivered(&self, id: &str) -> Option<Delivery> {
        for _ in 0..200 {
            let delivery = self.deliveries().into_iter().find(|d| d.id == id);
            if delivery.as_ref().is_some_and(|d| d.state != "pending") {
                return delivery;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

/// Refuses control requests that do not come from this machine.
pub async fn loopback_only(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if peer.ip().is_loopback() {
        next.run(request).await
    } else {
        (
            StatusCode::FORBIDDEN,
            "the control API answers only on loopback\n",
        )
            .into_response()
    }
}

/// The host names the control API answers to. Loopback alone is not enough: a page on any
/// site can make a browser send requests to 127.0.0.1 under its own name (DNS rebinding), and
/// its `Host` header then names that site.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    matches!(name, "localhost" | "127.0.0.1" | "[::1]")
}

/// Refuses control requests under a foreign `Host` (DNS rebinding) and state changes sent by
/// another site's page (`Origin` that is not this host, or `Sec-Fetch-Site: cross-site` /
/// `same-site`): the control page's own forms and in-process tests pass, a web page elsewhere
/// cannot reset or rig the emulator.
pub async fn same_origin_only(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if !is_loopback_host(&host) {
        return (
            StatusCode::FORBIDDEN,
            "the control API answers only to a loopback host name\n",
        )
            .into_response();
    }
    if request.method() != axum::http::Method::GET {
        let origin_ok = match headers.get(axum::http::header::ORIGIN) {
            None => true,
            Some(origin) => origin
                .to_str()
                .ok()
                .and_then(|o| o.strip_prefix("http://"))
                .is_some_and(|authority| authority.eq_ignore_ascii_case(&host)),
        };
        let fetch_site_ok = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|site| site == "same-origin" || site == "none");
        if !origin_ok || !fetch_site_ok {
            return (
                StatusCode::FORBIDDEN,
                "cross-site control requests are refused\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

pub fn router() -> Router<SharedWorld> {
    Router::new()
        .route("/__dev", get(control_page))
        .route("/__dev/state", get(state))
        .route("/__dev/requests", get(requests))
        .route("/__dev/counters", get(counters))
        .route("/__dev/reset", post(reset))
        .route(
            "/__dev/organizations/{org}/{action}",
            post(organization_action),
        )
        .route("/__dev/approval", post(approval))
        .route("/__dev/latency", post(latency))
        .route("/__dev/failures", post(failures))
        .route("/__dev/token-quirks", post(token_quirks))
        .route("/__dev/iss", post(iss))
        .route("/__dev/clock/advance", post(advance_clock))
        .route("/__dev/redirect-uris", post(redirect_uris))
}

/// A control request the API cannot carry out: a 400 (or 404) with a JSON error.
pub(crate) struct ControlError {
    status: StatusCode,
    message: String,
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": { "code": "invalid_request", "message": self.message } })),
        )
            .into_response()
    }
}

pub(crate) fn bad_request(message: impl Into<String>) -> ControlError {
    ControlError {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
    }
}

type ControlResult = Result<Response, ControlError>;

pub(crate) fn query_params(query: Option<String>) -> Result<Params, ControlError> {
    Params::parse(query.as_deref().unwrap_or_default()).map_err(|e| bad_request(e.to_string()))
}

fn flag(params: &Params, name: &str, default: bool) -> Result<bool, ControlError> {
    match params.get(name) {
        None => Ok(default),
        Some("true" | "1" | "yes") => Ok(true),
        Some("false" | "0" | "no") => Ok(false),
        Some(_) => Err(bad_request(format!("{name} must be true or false"))),
    }
}

/// `{"ok":true}`, or back to the control page when a button sent `return=page`.
fn done(params: &Params) -> ControlResult {
    Ok(if params.get("return") == Some("page") {
        Redirect::to("/__dev").into_response()
    } else {
        Json(json!({ "ok": true })).into_response()
    })
}

fn control(world: &SharedWorld) -> Control {
    Control::new(world.clone())
}

async fn state(State(world): State<SharedWorld>) -> Json<Value> {
    let c = control(&world);
    let w = world.lock();
    let organizations: Vec<Value> = w
        .organizations
        .iter()
        .map(|o| {
            json!({
                "id": o.id, "name": o.name,
                "clients": o.clients.len(), "properties": o.properties.len(),
                "withheld_scopes": w.withheld_scopes.get(&o.id).cloned().unwrap_or_default(),
            })
        })
        .collect();
    let clients: Vec<Value> = w
        .clients
        .iter()
        .map(|c| json!({ "client_id": c.client_id, "confidential": c.client_secret.is_some(), "approved": c.approved, "redirect_uris": c.redirect_uris }))
        .collect();
    let latency: BTreeMap<&str, u128> = w
        .latency
        .iter()
        .map(|(e, d)| (e.name(), d.as_millis()))
        .collect();
    let failures: BTreeMap<&str, usize> = w
        .failures
        .iter()
        .map(|(e, q)| (e.name(), q.len()))
        .collect();
    let body = json!({
        "issuer": w.issuer,
        "now": w.now_secs(),
        "clock_offset_secs": w.clock_offset.as_secs(),
        "organizations": organizations,
        "clients": clients,
        "token_quirks": w.token_quirks,
        "wrong_iss": w.wrong_iss,
        "latency_ms": latency,
        "pending_failures": failures,
        "counters": w.counters,
    });
    drop(w);
    let mut body = body;
    body["connections"] = serde_json::to_value(c.connections()).unwrap_or_default();
    Json(body)
}

async fn requests(State(world): State<SharedWorld>) -> Json<Vec<LoggedRequest>> {
    Json(control(&world).requests())
}

async fn counters(State(world): State<SharedWorld>) -> Json<Counters> {
    Json(control(&world).counters())
}

async fn reset(State(world): State<SharedWorld>, RawQuery(query): RawQuery) -> ControlResult {
    let params = query_params(query)?;
    control(&world).reset();
    done(&params)
}

async fn organization_action(
    State(world): State<SharedWorld>,
    Path((org, action)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> ControlResult {
    let params = query_params(query)?;
    if world.lock().organization(&org).is_none() {
        return Err(ControlError {
            status: StatusCode::NOT_FOUND,
            message: "unknown organization".to_owned(),
        });
    }
    let c = control(&world);
    match action.as_str() {
        "expire-access-tokens" => c.expire_access_tokens(&org),
        "expire-connection" => c.expire_connection(&org),
        "delete-connection" => c.delete_connection(&org),
        "withhold-scope" => {
            let profile = world.lock().profile;
            let Some(scope) = params.get("scope").filter(|s| profile.supports(s)) else {
                return Err(bad_request("scope must be one of the supported scopes"));
            };
            let withheld = flag(&params, "withheld", true)?;
            c.withhold_scope(&org, scope, withheld);
        }
        "client-count" => {
            let Some(count) = params
                .get("count")
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n <= 100_000)
            else {
                return Err(bad_request("count must be a whole number up to 100000"));
            };
            c.set_client_count(&org, count);
        }
        _ => return Err(bad_request("unknown action")),
    }
    done(&params)
}

async fn approval(State(world): State<SharedWorld>, RawQuery(query): RawQuery) -> ControlResult {
    let params = query_params(query)?;
    let approved = flag(&params, "approved", true)?;
    control(&world).set_app_approved(params.get("client_id"), approved);
    done(&params)
}

fn endpoint_param(params: &Params) -> Result<Endpoint, ControlError> {
    params
        .get("endpoint")
        .and_then(Endpoint::parse)
        .ok_or_else(|| {
            bad_request("endpoint must be one of authorize, token, revoke, me, clients, properties")
        })
}

async fn latency(State(world): State<SharedWorld>, RawQuery(query): RawQuery) -> ControlResult {
    let params = query_params(query)?;
    let endpoint = endpoint_param(&params)?;
    let Some(ms) = params
        .get("ms")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms <= 600_000)
    else {
        return Err(bad_request(
            "ms must be a whole number of milliseconds up to 600000",
        ));
    };
    control(&world).set_latency(endpoint, Duration::from_millis(ms));
    done(&params)
}

async fn failures(
    State(world): State<SharedWorld>,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
    body: String,
) -> ControlResult {
    let params = query_params(query)?;
    let endpoint = endpoint_param(&params)?;
    let count = match params.get("count").map(str::parse::<usize>) {
        None => 1,
        Some(Ok(n)) if n <= 1000 => n,
        _ => return Err(bad_request("count must be a whole number up to 1000")),
    };
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let failure = if is_json {
        match serde_json::from_str::<Failure>(&body) {
            Ok(f) => f,
            Err(e) => return Err(bad_request(format!("invalid failure: {e}"))),
        }
    } else {
        let Some(status) = params
            .get("status")
            .and_then(|s| s.parse::<u16>().ok())
            .filter(|s| (100..=599).contains(s))
        else {
            return Err(bad_request("status must be an HTTP status code"));
        };
        let mut headers = BTreeMap::new();
        if let Some(after) = params.get("retry_after") {
            headers.insert("retry-after".to_owned(), after.to_owned());
        }
        Failure {
            status,
            body: params.get("body").map(str::to_owned),
            content_type: params.get("content_type").map(str::to_owned),
            headers,
        }
    };
    if axum::http::StatusCode::from_u16(failure.status).is_err() {
        return Err(bad_request("status must be an HTTP status code"));
    }
    control(&world).fail_next(endpoint, count, failure);
    done(&params)
}

async fn token_quirks(
    State(world): State<SharedWorld>,
    RawQuery(query): RawQuery,
) -> ControlResult {
    let params = query_params(query)?;
    control(&world).set_token_quirks(TokenQuirks {
        omit_organization_id: flag(&params, "omit_organization_id", false)?,
        omit_refresh_token: flag(&params, "omit_refresh_token", false)?,
        omit_expires_in: flag(&params, "omit_expires_in", false)?,
        numeric_organization_id: flag(&params, "numeric_organization_id", false)?,
        expires_in_as_string: flag(&params, "expires_in_as_string", false)?,
        token_type: params.get("token_type").map(str::to_owned),
        refresh_organization_id: params.get("refresh_organization_id").map(str::to_owned),
        padding_bytes: 0,
    });
    done(&params)
}

async fn iss(State(world): State<SharedWorld>, RawQuery(query): RawQuery) -> ControlResult {
    let params = query_params(query)?;
    control(&world).set_wrong_iss(flag(&params, "wrong", true)?);
    done(&params)
}

async fn advance_clock(
    State(world): State<SharedWorld>,
    RawQuery(query): RawQuery,
) -> ControlResult {
    let params = query_params(query)?;
    let Some(seconds) = params
        .get("seconds")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|s| *s <= 10 * 365 * 86_400)
    else {
        return Err(bad_request("seconds must be a whole number"));
    };
    control(&world).advance_clock(Duration::from_secs(seconds));
    done(&params)
}

async fn redirect_uris(
    State(world): State<SharedWorld>,
    RawQuery(query): RawQuery,
) -> ControlResult {
    let params = query_params(query)?;
    let (Some(client_id), Some(uri)) = (params.get("client_id"), params.get("redirect_uri")) else {
        return Err(bad_request("client_id and redirect_uri are required"));
    };
    if url::Url::parse(uri).is_err() {
        return Err(bad_request("redirect_uri must be an absolute URL"));
    }
    if !control(&world).add_redirect_uri(client_id, uri) {
        return Err(bad_request("unknown client_id"));
    }
    done(&params)
}

fn button(action: &str, label: &str) -> String {
    let separator = if action.contains('?') { '&' } else { '?' };
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{}{}return=page\"><button type=\"submit\">{}</button></form> ",
        escape(action),
        separator,
        escape(label)
    )
}

async fn control_page(State(world): State<SharedWorld>) -> Html<String> {
    let c = control(&world);
    let connections = c.connections();
    let w = world.lock();
    let mut html = String::from("<h1>Control</h1><p class=\"muted\">Put this Workspace into any state. Everything here is also a <code>POST /__dev/…</code> for tests.</p>");

    html.push_str("<h2>Organizations</h2><table><tr><th>Organization</th><th>Actions</th></tr>");
    for org in &w.organizations {
        let id = &org.id;
        let withheld = w.withheld_scopes.get(id).cloned().unwrap_or_default();
        let mut actions = String::new();
        actions.push_str(&button(
            &format!("/__dev/organizations/{id}/expire-access-tokens"),
            "Expire access tokens",
        ));
        actions.push_str(&button(
            &format!("/__dev/organizations/{id}/expire-connection"),
            "Expire connection",
        ));
        actions.push_str(&button(
            &format!("/__dev/organizations/{id}/delete-connection"),
            "Delete connection",
        ));
        for scope in w.profile.data_scopes() {
            let is_withheld = withheld.contains(scope);
            let label = if is_withheld {
                format!("Give back {scope}")
            } else {
                format!("Withhold {scope}")
            };
            actions.push_str(&button(
                &format!(
                    "/__dev/organizations/{id}/withhold-scope?scope={scope}&withheld={}",
                    !is_withheld
                ),
                &label,
            ));
        }
        html.push_str(&format!(
            "<tr><td><strong>{}</strong><br><code>{}</code> · {} clients · {} properties</td><td>{}</td></tr>",
            escape(&org.name),
            escape(id),
            org.clients.len(),
            org.properties.len(),
            actions
        ));
    }
    html.push_str("</table>");

    html.push_str("<h2>Connections</h2>");
    if connections.is_empty() {
        html.push_str("<p class=\"muted\">None yet. Authorize from the app.</p>");
    } else {
        html.push_str("<table><tr><th>Grant</th><th>Organization</th><th>Client</th><th>Status</th><th>Refreshes</th><th>Live access tokens</th></tr>");
        for conn in &connections {
            html.push_str(&format!(
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td><code>{}</code></td><td>{:?}</td><td>{}</td><td>{}</td></tr>",
                escape(&conn.grant_id),
                escape(&conn.organization_id),
                escape(&conn.client_id),
                conn.status,
                conn.refreshes,
                conn.live_access_tokens
            ));
        }
        html.push_str("</table>");
    }

    html.push_str("<h2>App approval</h2><p>");
    for client in &w.clients {
        html.push_str(&format!(
            "<code>{}</code>: {} ",
            escape(&client.client_id),
            if client.approved {
                "approved"
            } else {
                "<strong>not approved</strong>"
            }
        ));
    }
    html.push_str("</p>");
    html.push_str(&button(
        "/__dev/approval?approved=false",
        "Un-approve the app",
    ));
    html.push_str(&button("/__dev/approval?approved=true", "Approve the app"));

    html.push_str("<h2>Faults</h2><p>");
    for endpoint in [
        Endpoint::Me,
        Endpoint::Clients,
        Endpoint::Properties,
        Endpoint::Token,
    ] {
        let name = endpoint.name();
        html.push_str(&button(
            &format!("/__dev/failures?endpoint={name}&status=503"),
            &format!("Next {name} → 503"),
        ));
        html.push_str(&button(
            &format!("/__dev/failures?endpoint={name}&status=200"),
            &format!("Next {name} → malformed"),
        ));
        html.push_str(&button(
            &format!("/__dev/latency?endpoint={name}&ms=2000"),
            &format!("{name} +2 s"),
        ));
        html.push_str(&button(
            &format!("/__dev/latency?endpoint={name}&ms=0"),
            &format!("{name} no delay"),
        ));
        html.push_str("<br>");
    }
    html.push_str("</p>");
    let q = w.token_quirks.clone();
    html.push_str(&format!(
        "<h2>Token responses</h2><p>omit organization_id: {}, omit refresh_token: {}, omit expires_in: {}; wrong iss: {}</p>",
        q.omit_organization_id, q.omit_refresh_token, q.omit_expires_in, w.wrong_iss
    ));
    html.push_str(&button(
        "/__dev/token-quirks?omit_organization_id=true",
        "Omit organization_id",
    ));
    html.push_str(&button(
        "/__dev/token-quirks?omit_refresh_token=true",
        "Omit refresh_token",
    ));
    html.push_str(&button(
        "/__dev/token-quirks?omit_expires_in=true",
        "Omit expires_in",
    ));
    html.push_str(&button("/__dev/token-quirks", "Normal token responses"));
    html.push_str(&button("/__dev/iss?wrong=true", "Send a wrong iss"));
    html.push_str(&button("/__dev/iss?wrong=false", "Send the right iss"));

    html.push_str(&format!(
        "<h2>Clock</h2><p>Moved forward by {} s.</p>",
        w.clock_offset.as_secs()
    ));
    html.push_str(&button(
        "/__dev/clock/advance?seconds=3600",
        "Advance 1 hour",
    ));
    html.push_str(&button(
        "/__dev/clock/advance?seconds=86400",
        "Advance 1 day",
    ));

    let counters = w.counters;
    html.push_str(&format!(
        "<h2>Counters</h2><p>codes issued {}, token requests {}, code grants {}, refresh grants {}, token errors {}, revocations {}, partner API requests {}</p><p><a href=\"/__dev/requests\">Request log (JSON)</a> · <a href=\"/__dev/state\">State (JSON)</a></p>",
        counters.codes_issued, counters.token_requests, counters.authorization_code_grants,
        counters.refresh_grants, counters.token_errors, counters.revocations, counters.partner_api_requests
    ));
    html.push_str(&button("/__dev/reset", "Reset everything"));
    Html(page("Control · Qentrah dev Workspace", &html))
}
