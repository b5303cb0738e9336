//! The sign-in guard (`AUTH_MODE=sso`): a layer on the browser surface. Public routes pass;
//! every other one needs a signed-in Workspace user, and some an admin. Pages get a redirect to
//! `/login`, server functions and JSON requests a JSON 401/403, never a redirect. Once
//! `SSO_REVALIDATE_SECS` have passed, the user is re-checked at the Workspace (UserInfo, after
//! refreshing the sign-in grant if needed), one instance at a time; a changed role applies at
//! once, a user who is gone is signed out, and an outage is borne for the grace period.
//!
//! Server functions check the role too (`api_support`): the layer is not the only gate.

use std::time::{Duration, SystemTime};

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::domain::{SessionUser, SignInFailure};
use crate::server::identity::oidc::UserInfoError;
use crate::server::identity::session::BrowserSession;
use crate::server::identity::users::SignedInUser;
use crate::server::platform::clock::to_unix;
use crate::server::platform::config::{AppRole, AuthMode};
use crate::server::providers::oauth::client::ClientChoice;
use crate::server::providers::oauth::TokenCallError;
use crate::server::state::AppState;

/// How long one instance holds a re-check before another may take it over.
const RECHECK_LEASE: Duration = Duration::from_secs(30);
/// An access token this close to its expiry is refreshed before UserInfo is asked.
const ACCESS_MARGIN_SECS: i64 = 30;

/// Whether `path` reads the same to the guard and to the router: no `.` or `..` segment, no
/// `//`, and no percent-encoded dot, slash or backslash. The router cleans such paths before it
/// matches a page (`/auth/../admin/users` would render `/admin/users`) while the prefix checks
/// below read them raw (RFC 3986 §6.2.2.3), so they are refused instead.
fn is_canonical(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    let encoded = ["%2e", "%2f", "%5c"].iter().any(|e| lower.contains(e)) || path.contains('\\');
    let dots = path
        .split('/')
        .any(|segment| segment == "." || segment == "..");
    !encoded && !dots && !path.contains("//")
}

/// Routes every visitor may use, signed in or not (the `/login` page's own server function
/// included).
fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/login" | "/connect/failed" | "/favicon.svg" | "/api/sign_in_issuer"
    ) || path.starts_with("/auth/")
        || path.starts_with("/pkg/")
        || path.starts_with("/api/webhooks/")
}

/// What only an admin may do, and how the refusal names it.
fn admin_action(path: &str) -> Option<&'static str> {
    if path.starts_with("/api/auth/") {
        Some("connect or reconnect Qentrah Connect")
    } else if path == "/api/disconnect" {
        Some("disconnect Qentrah Connect")
    } else if path.starts_with("/admin/") || path == "/admin" {
        Some("see the admin pages")
    } else if path.starts_with("/settings/") || path == "/settings" {
        Some("change the settings")
    } else {
        None
    }
}

/// Server functions and `/api/` requests that accept JSON get JSON answers, never redirects.
fn wants_json(request: &Request) -> bool {
    let path = request.uri().path();
    let accepts_json = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"));
    path.starts_with("/api/") && (!path.starts_with("/api/auth/") || accepts_json)
}

fn json_error(status: StatusCode, code: &'static str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(serde_json::json!({ "error": { "code": code } })),
    )
        .into_response()
}

fn signed_out(json: bool, reason: SignInFailure, return_to: &str) -> Response {
    if json {
        return json_error(StatusCode::UNAUTHORIZED, "login_required");
    }
    let mut location = String::from("/login?");
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    if reason != SignInFailure::LoginRequired {
        query.append_pair("reason", reason.as_str());
    }
    query.append_pair("return_to", return_to);
    location.push_str(&query.finish());
    super::oauth::see_other(&location)
}

fn forbidden(json: bool, action: &str) -> Response {
    if json {
        return json_error(StatusCode::FORBIDDEN, "forbidden");
    }
    super::oauth::page(
        StatusCode::FORBIDDEN,
        &format!("Only Workspace admins can {action}"),
        "Your role in this organization does not allow it. Ask a Workspace admin.",
    )
}

/// The layer. In `AUTH_MODE=connect` it passes everything through untouched.
pub async fn require_sign_in(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if state.config.sign_in.mode != AuthMode::Sso {
        return next.run(request).await;
    }
    if !is_canonical(request.uri().path()) {
        return super::oauth::page(
            StatusCode::BAD_REQUEST,
            "This address is not valid",
            "It has dot, empty or encoded segments. Use the app's own links.",
        );
    }
    if is_public(request.uri().path()) {
        return next.run(request).await;
    }
    let json = wants_json(&request);
    let return_to = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".to_owned());
    let Some(session) = request
        .extensions()
        .get::<tower_sessions::Session>()
        .cloned()
        .map(BrowserSession::new)
    else {
        tracing::error!("the sign-in guard runs outside the session layer");
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let now = state.clock.now();
    let user = match current_user(&state, &session, now).await {
        Ok(Ok(user)) => user,
        Ok(Err(reason)) => return signed_out(json, reason, &return_to),
        Err(()) => {
            let mut response = if json {
                json_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            } else {
                super::oauth::page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Qentrah Connect is unavailable",
                    "Something failed on our side. Nothing was lost; try again in a moment.",
                )
            };
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return response;
        }
    };
    if let Some(action) = admin_action(request.uri().path()) {
        if user.role != AppRole::Admin {
            return forbidden(json, action);
        }
    }
    request.extensions_mut().insert(SessionUser {
        name: user.name.clone(),
        email: user.email.clone(),
        organization_id: user.organization_id.to_string(),
        organization_name: user.organization_name.clone(),
        role: user.role.as_str().to_owned(),
    });
    request.extensions_mut().insert(user);
    next.run(request).await
}

/// The session's signed-in user, re-checked if due; `Ok(Err(reason))`: signed out (the
/// session is ended); `Err(())`: our own store failed. With no re-check due and the session
/// indexed, nothing but the session (already loaded) is read.
async fn current_user(
    state: &AppState,
    session: &BrowserSession,
    now: SystemTime,
) -> Result<Result<SignedInUser, SignInFailure>, ()> {
    let stored = session.sign_in().await.map_err(|error| {
        tracing::error!(error = ?error, "session unavailable");
    })?;
    let Some(stored) = stored else {
        return Ok(Err(SignInFailure::LoginRequired));
    };
    let user = stored.user;
    let now_unix = to_unix(now);
    if now_unix >= user.ends_at {
        end(state, session, &user).await;
        return Ok(Err(SignInFailure::SessionExpired));
    }
    // The first request after sign-in: the sign-in row learns which session record holds it
    // (the index an uninstall or a removal uses to end it everywhere at once).
    if !stored.indexed {
        if let Some(record) = session.record_id() {
            let indexed = state
                .users
                .index_session(&user.sign_in_id, &record)
                .await
                .map_err(|error| tracing::error!(error = ?error, "user store unavailable"))?;
            if !indexed {
                // Ended meanwhile (uninstalled, say) before this session was indexed.
                let _ = session.end().await;
                return Ok(Err(SignInFailure::LoginRequired));
            }
            let _ = session.store_sign_in(&user, true).await;
        }
    }
    let interval = i64::try_from(state.config.sign_in.revalidate.as_secs()).unwrap_or(i64::MAX);
    if now_unix.saturating_sub(user.checked_at) < interval {
        return Ok(Ok(user));
    }
    let outcome = recheck(state, &user, now).await;
    match outcome {
        Recheck::Confirmed(role, workspace_role) => {
            // Ended elsewhere while the Workspace was asked: signed out, and the session is
            // not written back (that would revive it).
            if !matches!(
                state
                    .users
                    .record_check(&user, &workspace_role, role, now)
                    .await,
                Ok(true)
            ) {
                let _ = session.end().await;
                return Ok(Err(SignInFailure::LoginRequired));
            }
            let user = SignedInUser {
                role,
                workspace_role,
                checked_at: now_unix,
                unanswered_since: None,
                ..user
            };
            let _ = session.store_sign_in(&user, true).await;
            Ok(Ok(user))
        }
        // Another instance re-checked (or is re-checking) this very session: its result, once
        // it has one, is the row's.
        Recheck::ElsewhereInProgress(Some(row)) => {
            let _ = session.store_sign_in(&row, true).await;
            Ok(Ok(*row))
        }
        Recheck::ElsewhereInProgress(None) => Ok(Ok(user)),
        Recheck::Gone(reason) => {
            tracing::info!(reason = reason.as_str(), "a re-check signed the user out");
            end(state, session, &user).await;
            Ok(Err(reason))
        }
        Recheck::Unanswered => {
            let since = user.unanswered_since.unwrap_or(now_unix);
            let grace =
                i64::try_from(state.config.sign_in.revalidate_grace.as_secs()).unwrap_or(i64::MAX);
            if now_unix.saturating_sub(since) > grace {
                tracing::warn!(
                    "the Workspace has not confirmed the user for longer than the grace period"
                );
                end(state, session, &user).await;
                return Ok(Err(SignInFailure::RecheckFailed));
            }
            let _ = state.users.record_unanswered(&user.sign_in_id, now).await;
            let user = SignedInUser {
                unanswered_since: Some(since),
                ..user
            };
            let _ = session.store_sign_in(&user, true).await;
            Ok(Ok(user))
        }
    }
}

async fn end(state: &AppState, session: &BrowserSession, user: &SignedInUser) {
    if let Err(error) = state.users.end(&user.sign_in_id).await {
        tracing::error!(error = ?error, "could not end a sign-in");
    }
    let _ = session.end().await;
}

enum Recheck {
    Confirmed(AppRole, String),
    Gone(SignInFailure),
    Unanswered,
    /// Another instance holds the re-check; the row as it is now, if it is newer than ours.
    ElsewhereInProgress(Option<Box<SignedInUser>>),
}

/// Asks the Workspace whether the user is still a member, and with which role.
async fn recheck(state: &AppState, user: &SignedInUser, now: SystemTime) -> Recheck {
    let Some(openid) = state.openid.as_ref() else {
        return Recheck::Unanswered;
    };
    match state
        .users
        .lease_check(&user.sign_in_id, user.checked_at, now, RECHECK_LEASE)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            // Ended, re-checked by another instance since, or being re-checked now.
            return match state.users.signed_in(&user.sign_in_id).await {
                Ok(None) => Recheck::Gone(SignInFailure::LoginRequired),
                Ok(Some(row)) if row.checked_at > user.checked_at => {
                    Recheck::ElsewhereInProgress(Some(Box::new(SignedInUser {
                        organization_name: user.organization_name.clone(),
                        ..row
                    })))
                }
                Ok(Some(_)) => Recheck::ElsewhereInProgress(None),
                Err(_) => Recheck::Unanswered,
            };
        }
        Err(error) => {
            tracing::error!(error = ?error, "could not lease a re-check");
            return Recheck::Unanswered;
        }
    }
    let grant = match state.users.grant(&user.sign_in_id).await {
        Ok(Some(grant)) => grant,
        // Ended elsewhere: this session is signed out.
        Ok(None) => return Recheck::Gone(SignInFailure::LoginRequired),
        Err(_) => return Recheck::Unanswered,
    };
    let oauth = match state
        .clients
        .for_connection("qentrah", &user.organization_id, &user.client_id)
        .await
    {
        Ok(ClientChoice::Client(oauth)) => oauth,
        // The installation is gone: so is the sign-in (its purge ends it too).
        Ok(ClientChoice::Uninstalled | ClientChoice::NotConfigured) => {
            return Recheck::Gone(SignInFailure::Removed)
        }
        Err(_) => return Recheck::Unanswered,
    };
    let access = if grant.access_expires_at - ACCESS_MARGIN_SECS > to_unix(now) {
        grant.access_token.clone()
    } else {
        let Some(refresh_token) = grant.refresh_token.as_ref() else {
            // Nothing to renew the grant with: the user signs in again.
            return Recheck::Gone(SignInFailure::SessionExpired);
        };
        match oauth.refresh_sign_in(refresh_token).await {
            Ok(tokens) => {
                let _ = state
                    .users
                    .save_refreshed(
                        &user.sign_in_id,
                        grant.generation,
                        &tokens,
                        Some(refresh_token),
                        now,
                    )
                    .await;
                tokens.access_token
            }
            Err(TokenCallError::InvalidGrant) => return Recheck::Gone(SignInFailure::Removed),
            Err(TokenCallError::Unavailable { .. }) => return Recheck::Unanswered,
            Err(error) => {
                tracing::warn!(%error, "the sign-in grant could not be refreshed");
                return Recheck::Gone(SignInFailure::Removed);
            }
        }
    };
    let info = match openid.userinfo(&access).await {
        Ok(info) => info,
        Err(UserInfoError::Refused { .. }) => return Recheck::Gone(SignInFailure::Removed),
        Err(UserInfoError::Unavailable { detail }) => {
            tracing::warn!(%detail, "UserInfo unavailable at a re-check");
            return Recheck::Unanswered;
        }
    };
    if info.sub != user.subject
        || info.organization_id().as_deref() != Some(user.organization_id.as_str())
    {
        return Recheck::Gone(SignInFailure::Removed);
    }
    let workspace_role = info.role.unwrap_or_default();
    match state.config.sign_in.roles.map(&workspace_role) {
        Some(role) => Recheck::Confirmed(role, workspace_role),
        None => Recheck::Gone(SignInFailure::Removed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_admin_routes() {
        for public in [
            "/login",
            "/auth/login",
            "/auth/callback",
            "/pkg/app.wasm",
            "/connect/failed",
            "/favicon.svg",
        ] {
            assert!(is_public(public), "{public}");
        }
        for guarded in [
            "/",
            "/clients",
            "/organization",
            "/properties",
            "/connection",
            "/api/dashboard",
            "/admin/users",
            "/login/x",
            "/authx",
        ] {
            assert!(!is_public(guarded), "{guarded}");
        }
        for admin in [
            "/api/auth/qentrah/start",
            "/api/auth/qentrah/callback",
            "/api/disconnect",
            "/admin/users",
            "/settings/x",
        ] {
            assert!(admin_action(admin).is_some(), "{admin}");
        }
        for member in [
            "/",
            "/clients",
            "/api/dashboard",
            "/connection",
            "/administrator",
        ] {
            assert!(admin_action(member).is_none(), "{member}");
        }
        for sneaky in [
            "/auth/../admin/users",
            "/pkg/%2e%2e/clients",
            "/pkg/%2E%2E/clients",
            "/api/webhooks/../../",
            "/auth/./x",
            "//admin/users",
            "/auth//x",
            "/pkg/%2fadmin",
            "/pkg/..%5cadmin",
        ] {
            assert!(!is_canonical(sneaky), "{sneaky}");
        }
        for fine in [
            "/",
            "/clients",
            "/clients/",
            "/pkg/qentrah-connect.wasm",
            "/a.b/c..d",
        ] {
            assert!(is_canonical(fine), "{fine}");
        }
    }
}
