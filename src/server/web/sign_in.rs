//! Sign-in with the Workspace (`AUTH_MODE=sso`): `GET /auth/login` (OpenID Connect Core §4,
//! third-party-initiated login: the Workspace's "Open App"), `GET /auth/callback`, and
//! `/auth/logout`. Plain axum routes: they work as ordinary navigations without JavaScript.
//!
//! The seed's "Open App" sends a code with `state=<organizationId>` and no PKCE: a public,
//! unbound state, so an attacker's code loaded in a victim's browser would sign the victim in
//! as the attacker (login CSRF). Here every sign-in is a flow this browser started (state, PKCE
//! S256 and a nonce, all server-side), and the seed's shape is bounced, its code never used.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};

use crate::domain::SignInFailure;
use crate::server::credentials::TokenSet;
use crate::server::identity::oidc::{OpenIdProvider, SignInCheckError, UserInfoError};
use crate::server::identity::session::BrowserSession;
use crate::server::identity::target::landing_path;
use crate::server::identity::users::{NewSignIn, Person};
use crate::server::ids::OrganizationId;
use crate::server::providers::oauth::authorization::{
    self, CallbackParams, CallbackRefusal, CallbackStep, PkceVerifier,
};
use crate::server::providers::oauth::client::ClientChoice;
use crate::server::providers::oauth::flow_store::FlowClient;
use crate::server::providers::oauth::{OAuthClient, Revocable, TokenCallError};
use crate::server::state::AppState;

use super::oauth::{page, see_other};

/// The sign-in callback's path under `PARTNER_APP_URL` (registered with each installation's
/// client beside the connection's).
pub const CALLBACK_PATH: &str = "/auth/callback";
/// How long a browser that was bounced from the legacy "Open App" is not bounced again.
pub const BOUNCE_MARKER_SECS: i64 = 60;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", get(logout_confirm).post(logout))
}

fn to_login(reason: SignInFailure) -> Response {
    see_other(&format!("/login?reason={}", reason.as_str()))
}

fn unavailable_here() -> Response {
    let mut response = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "We could not start the sign-in",
        "Something failed on our side. Nothing was lost. Open the app from your Workspace again in a moment.",
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

fn not_installed() -> Response {
    page(
        StatusCode::NOT_FOUND,
        "Qentrah Connect is not installed for this organization",
        "A Workspace admin can install it from the Workspace's marketplace; then open it from Apps → Qentrah Connect → Open.",
    )
}

/// The query's parameters; a repeated one makes the whole query unusable (RFC 6749 §3.1, and
/// OIDC Core §4's parameters are single-valued).
fn single_params(query: Option<&str>) -> Option<Vec<(String, String)>> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if pairs.iter().any(|(known, _)| *known == name) {
            return None;
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    Some(pairs)
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(known, value)| known == name && !value.is_empty())
        .map(|(_, value)| value.as_str())
}

fn openid(state: &AppState) -> Option<&OpenIdProvider> {
    state.openid.as_ref()
}

/// `GET /auth/login?iss=…&client_id=…|organization_id=…[&login_hint=…][&target_link_uri=…]`.
#[tracing::instrument(skip_all)]
async fn login(
    State(state): State<AppState>,
    session: BrowserSession,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(openid) = openid(&state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(params) = single_params(query.as_deref()) else {
        return page(
            StatusCode::BAD_REQUEST,
            "This sign-in link is not valid",
            "It names a parameter more than once. Open the app from your Workspace again.",
        );
    };
    // OIDC Core §4: `iss` is required and must be the issuer we trust, or nothing is sent
    // anywhere (a link for another Workspace must not start a flow with ours).
    if param(&params, "iss") != Some(openid.issuer()) {
        return page(
            StatusCode::BAD_REQUEST,
            "This sign-in link is for another Workspace",
            "It does not come from the Qentrah Workspace this app is set up for, so nothing was started.",
        );
    }
    let login_hint = param(&params, "login_hint")
        .filter(|hint| hint.len() <= 256 && hint.chars().all(|c| !c.is_control()));
    let landing = landing_path(
        param(&params, "target_link_uri"),
        &state.config.partner_app_url,
    );
    // The installation: by organization, by client id, or both (then they must agree).
    let by_client = match param(&params, "client_id") {
        None => None,
        Some(client_id) => match state.installations.active_organization_of(client_id).await {
            Ok(Some(organization)) => Some(organization),
            Ok(None) => return not_installed(),
            Err(error) => {
                tracing::error!(error = ?error, "installations unavailable");
                return unavailable_here();
            }
        },
    };
    let by_organization = match param(&params, "organization_id") {
        None => None,
        Some(raw) => match OrganizationId::parse(raw) {
            Some(id) => Some(id),
            None => return not_installed(),
        },
    };
    let organization = match (by_client, by_organization) {
        (Some(a), Some(b)) if a != b => return not_installed(),
        (Some(id), _) | (None, Some(id)) => id,
        (None, None) => {
            return page(
                StatusCode::BAD_REQUEST,
                "This sign-in link names no organization",
                "Open the app from your Workspace (Apps → Qentrah Connect → Open).",
            )
        }
    };
    let oauth = match state.clients.for_flow("qentrah", Some(&organization)).await {
        Ok(ClientChoice::Client(oauth)) if oauth.installed_for() == Some(&organization) => oauth,
        Ok(_) => return not_installed(),
        Err(error) => {
            tracing::error!(error = %crate::server::Causes(&error), "installations unavailable");
            return unavailable_here();
        }
    };
    let binding = match session.flow_binding().await {
        Ok(binding) => binding,
        Err(error) => {
            tracing::error!(error = ?error, "session unavailable");
            return unavailable_here();
        }
    };
    let (Ok(oauth_state), Ok(verifier), Some(nonce)) = (
        authorization::State::generate(),
        PkceVerifier::generate(),
        random_nonce(),
    ) else {
        tracing::error!("random number generator failed");
        return unavailable_here();
    };
    let flow_client = FlowClient {
        provider: oauth.provider().name.clone(),
        client_id: oauth.client_id().to_owned(),
        organization_id: Some(organization.clone()),
    };
    if let Err(error) = state
        .flows
        .remember_sign_in(
            &flow_client,
            &oauth_state,
            &verifier,
            nonce.expose_secret(),
            &binding,
            &landing,
            state.clock.now(),
        )
        .await
    {
        tracing::error!(error = ?error, "could not remember the sign-in");
        return unavailable_here();
    }
    let mut url = oauth.provider().authorize_url.clone();
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", oauth.client_id())
            .append_pair("redirect_uri", &callback_url(&state))
            .append_pair("scope", &state.config.sign_in.scopes.join(" "))
            .append_pair("state", oauth_state.as_str())
            .append_pair("nonce", nonce.expose_secret())
            .append_pair("code_challenge", &verifier.challenge())
            .append_pair("code_challenge_method", "S256");
        if let Some(hint) = login_hint {
            query.append_pair("login_hint", hint);
        }
    }
    tracing::info!(org = %organization, "sign-in started");
    see_other(url.as_str())
}

fn callback_url(state: &AppState) -> String {
    format!("{}{CALLBACK_PATH}", state.config.partner_app_url.origin())
}

/// A nonce (OIDC Core §3.1.2.1): 256 random bits, kept server-side with the flow.
fn random_nonce() -> Option<SecretString> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(SecretString::from(URL_SAFE_NO_PAD.encode(bytes)))
}

fn bounce_marker_name(state: &AppState) -> &'static str {
    if state.config.partner_app_url.is_https() {
        "__Host-qentrah_open_app"
    } else {
        "qentrah_open_app"
    }
}

fn was_bounced(state: &AppState, headers: &HeaderMap) -> bool {
    let name = bounce_marker_name(state);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(cookie::Cookie::split_parse)
        .filter_map(Result::ok)
        .any(|c| c.name() == name)
}

/// The marker a bounced browser carries for [`BOUNCE_MARKER_SECS`]: `__Host-` over https
/// (HttpOnly, `Secure`, `Path=/`, no `Domain`), so no other site or subdomain can set it.
fn bounce_marker(state: &AppState) -> Option<HeaderValue> {
    let marker = cookie::Cookie::build((bounce_marker_name(state), "1"))
        .http_only(true)
        .secure(state.config.partner_app_url.is_https())
        .same_site(cookie::SameSite::Lax)
        .path("/")
        .max_age(cookie::time::Duration::seconds(BOUNCE_MARKER_SECS))
        .build();
    HeaderValue::from_str(&marker.to_string()).ok()
}

/// `GET /auth/callback`: in the order, with no token request on any failure.
#[tracing::instrument(skip_all)]
async fn callback(
    State(state): State<AppState>,
    session: BrowserSession,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(openid) = openid(&state).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let params = CallbackParams::parse(query.as_deref().unwrap_or_default());
    let binding = match session.existing_flow_binding().await {
        Ok(binding) => binding,
        Err(error) => {
            tracing::error!(error = ?error, "session unavailable");
            return to_login(SignInFailure::Unavailable);
        }
    };
    let now = state.clock.now();

    // 1–2: an error answer, or one from another issuer (RFC 9207 §2.4), ends here.
    let (state_digest, code) = match authorization::judge_callback(&params, openid.issuer(), false)
    {
        CallbackStep::Exchange { state_digest, code } => (state_digest, code),
        CallbackStep::Refuse(refusal) => {
            if let (Some(state_param), Some(binding), false) = (
                params.state.as_deref(),
                binding.as_deref(),
                matches!(refusal, CallbackRefusal::WrongIssuer),
            ) {
                // An error answer ends its flow too, so it cannot be completed later.
                let _ = state
                    .flows
                    .consume_sign_in(&authorization::digest(state_param), binding, now)
                    .await;
            }
            tracing::info!(?refusal, "sign-in callback refused");
            return to_login(match refusal {
                CallbackRefusal::Denied { error } if error == "access_denied" => {
                    SignInFailure::Cancelled
                }
                CallbackRefusal::Denied { .. } | CallbackRefusal::Malformed => {
                    SignInFailure::Failed
                }
                CallbackRefusal::WrongIssuer => SignInFailure::WrongIssuer,
                CallbackRefusal::UnknownState => SignInFailure::InvalidState,
            });
        }
    };

    // 3: one of this browser's live sign-in flows, or the legacy "Open App", bounced.
    let flow = match binding.as_deref() {
        None => None,
        Some(binding) => match state
            .flows
            .consume_sign_in(&state_digest, binding, now)
            .await
        {
            Ok(flow) => flow,
            Err(error) => {
                tracing::error!(error = ?error, "flow store failed");
                return to_login(SignInFailure::Unavailable);
            }
        },
    };
    let Some(flow) = flow else {
        drop(code); // Never redeemed: whoever's it is, it signs nobody in here.
        return legacy_bounce(&state, &headers, params.state.as_deref()).await;
    };
    let oauth = match state
        .clients
        .for_connection("qentrah", &flow.organization_id, &flow.client_id)
        .await
    {
        Ok(ClientChoice::Client(oauth)) if oauth.installed_for().is_some() => oauth,
        Ok(_) => {
            tracing::info!(
                "the sign-in's installation was uninstalled meanwhile; code not redeemed"
            );
            return not_installed();
        }
        Err(error) => {
            tracing::error!(error = %crate::server::Causes(&error), "installations unavailable");
            return to_login(SignInFailure::Unavailable);
        }
    };
    // RFC 9207 §2.4: without `iss`, only if the Workspace does not promise to send it.
    if params.iss.is_none() {
        match oauth.provider_sends_iss(now).await {
            Ok(false) => {}
            Ok(true) => return to_login(SignInFailure::WrongIssuer),
            Err(error) => {
                tracing::warn!(%error, "could not read the provider's metadata");
                return to_login(SignInFailure::Unavailable);
            }
        }
    }

    // 4: the code, with the installation's credentials and the verifier.
    let (tokens, id_token) = match oauth
        .exchange_sign_in_code(&code, &flow.verifier, &flow_callback(&state))
        .await
    {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(%error, "sign-in code exchange failed");
            return to_login(match error {
                TokenCallError::Unavailable { .. } => SignInFailure::Unavailable,
                _ => SignInFailure::Failed,
            });
        }
    };

    // 5: the ID token, required and valid for this installation's client.
    let Some(id_token) = id_token else {
        tracing::warn!("token response without an id_token");
        revoke_later(&oauth, tokens);
        return to_login(SignInFailure::Untrusted);
    };
    let nonce = openidconnect::Nonce::new(flow.nonce.expose_secret().to_owned());
    let verified = match openid
        .check_id_token(&id_token, oauth.client_id(), &nonce, &flow.organization_id)
        .await
    {
        Ok(verified) => verified,
        Err(SignInCheckError::Refused(refusal)) => {
            tracing::warn!(%refusal, "ID token refused");
            revoke_later(&oauth, tokens);
            return to_login(SignInFailure::Untrusted);
        }
        Err(SignInCheckError::Discovery(error)) => {
            tracing::warn!(%error, "the Workspace's keys are unavailable");
            revoke_later(&oauth, tokens);
            return to_login(SignInFailure::Unavailable);
        }
    };

    // 6: UserInfo: the same subject (OIDC Core §5.3.2), the installation's organization, a
    // mapped role.
    let info = match openid.userinfo(&tokens.access_token).await {
        Ok(info) => info,
        Err(error) => {
            tracing::warn!(%error, "UserInfo failed at sign-in");
            revoke_later(&oauth, tokens);
            return to_login(match error {
                UserInfoError::Unavailable { .. } => SignInFailure::Unavailable,
                UserInfoError::Refused { .. } => SignInFailure::Untrusted,
            });
        }
    };
    if info.sub != verified.subject
        || info.organization_id().as_deref() != Some(flow.organization_id.as_str())
    {
        tracing::warn!("UserInfo names another subject or organization than the ID token");
        revoke_later(&oauth, tokens);
        return to_login(SignInFailure::Untrusted);
    }
    let workspace_role = info.role.clone().unwrap_or_default();
    let person = Person {
        issuer: openid.issuer(),
        subject: &verified.subject,
        email: info.email.as_deref().unwrap_or_default(),
        name: info.name.as_deref().unwrap_or_default(),
    };
    let Some(role) = state.config.sign_in.roles.map(&workspace_role) else {
        tracing::info!(role = %workspace_role, "a Workspace role without access signed in");
        if let Err(error) = state
            .users
            .record_unmapped(person, &flow.organization_id, &workspace_role, now)
            .await
        {
            tracing::error!(error = ?error, "could not record the membership");
        }
        revoke_later(&oauth, tokens);
        return no_access_page(&workspace_role);
    };

    // 7–8: the user by (issuer, sub), the membership, the grant sealed; a new session id.
    let ends_at = now + state.config.sign_in.session_absolute;
    let sign_in_id = match state
        .users
        .sign_in(
            &NewSignIn {
                person,
                organization_id: &flow.organization_id,
                organization_name: info.organization_name.as_deref().unwrap_or_default(),
                client_id: oauth.client_id(),
                workspace_role: &workspace_role,
                role,
                tokens: &tokens,
                ends_at,
            },
            now,
        )
        .await
    {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(error = ?error, "could not store the sign-in");
            revoke_later(&oauth, tokens);
            return to_login(SignInFailure::Unavailable);
        }
    };
    // A browser signed in already: that sign-in ends (its grant revoked), not left live.
    if let Ok(Some(previous)) = session.sign_in().await {
        if let Err(error) = end_sign_in(&state, &previous.user.sign_in_id).await {
            tracing::error!(error = ?error, "could not end the previous sign-in");
        }
    }
    let bound = match state.users.signed_in(&sign_in_id).await {
        Ok(Some(user)) => session
            .bind_sign_in(&user)
            .await
            .map_err(|e| format!("{e:?}")),
        other => Err(format!("the sign-in just stored cannot be read: {other:?}")),
    };
    if let Err(error) = bound {
        tracing::error!(%error, "could not bind the session");
        let _ = end_sign_in(&state, &sign_in_id).await;
        return to_login(SignInFailure::Unavailable);
    }
    tracing::info!(org = %flow.organization_id, role = role.as_str(), "signed in");
    see_other(&flow.return_to)
}

fn flow_callback(state: &AppState) -> url::Url {
    url::Url::parse(&callback_url(state))
        .unwrap_or_else(|_| state.config.partner_app_url.url().clone())
}

/// The seed's "Open App" (`state` = an installed organization's id, no PKCE): its code is
/// discarded unused, and the browser goes to `/auth/login`, which starts a proper flow (the
/// Workspace signs a signed-in user straight through). A browser bounced in the last
/// [`BOUNCE_MARKER_SECS`] is not bounced again (no redirect loop); anything else is
/// `invalid_state`.
async fn legacy_bounce(state: &AppState, headers: &HeaderMap, raw_state: Option<&str>) -> Response {
    let organization = raw_state.and_then(OrganizationId::parse);
    let installed = match &organization {
        None => false,
        Some(organization) => matches!(
            state.clients.for_flow("qentrah", Some(organization)).await,
            Ok(ClientChoice::Client(oauth)) if oauth.installed_for() == Some(organization)
        ),
    };
    let (Some(organization), true) = (organization, installed) else {
        tracing::info!("sign-in callback state matches no live flow of this browser");
        return to_login(SignInFailure::InvalidState);
    };
    if was_bounced(state, headers) {
        tracing::info!("a second legacy Open App within the bounce window was refused");
        return to_login(SignInFailure::InvalidState);
    }
    let Some(openid) = openid(state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut location = String::from("/auth/login?");
    location.push_str(
        &url::form_urlencoded::Serializer::new(String::new())
            .append_pair("iss", openid.issuer())
            .append_pair("organization_id", organization.as_str())
            .finish(),
    );
    tracing::info!(org = %organization, "legacy Open App bounced to a proper sign-in; its code was not used");
    let mut response = see_other(&location);
    if let Some(marker) = bounce_marker(state) {
        response.headers_mut().append(header::SET_COOKIE, marker);
    }
    response
}

fn no_access_page(workspace_role: &str) -> Response {
    let shown: String = workspace_role
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    page(
        StatusCode::FORBIDDEN,
        "Your Workspace role has no access to Qentrah Connect",
        &format!(
            "Your role “{}” is not one this app gives access to. Ask a Workspace admin to change your role, then open the app again.",
            super::admin::escape(&shown)
        ),
    )
}

/// Revokes a grant nothing will use (RFC 7009), off the person's path.
fn revoke_later(oauth: &OAuthClient, tokens: TokenSet) {
    let oauth = oauth.clone();
    tokio::spawn(async move {
        let token = Revocable::best_of(tokens.refresh_token.as_ref(), &tokens.access_token);
        if let Err(error) = oauth.revoke(token).await {
            tracing::warn!(%error, "could not revoke an unused sign-in grant");
        }
    });
}

/// Ends a sign-in: its grant revoked (best effort, off the person's path: RFC 7009), its row
/// and the session record that holds it deleted.
async fn end_sign_in(
    state: &AppState,
    sign_in_id: &str,
) -> Result<(), crate::server::identity::users::UserStoreError> {
    if let Ok(Some(user)) = state.users.signed_in(sign_in_id).await {
        if let (Ok(Some(grant)), Ok(ClientChoice::Client(oauth))) = (
            state.users.grant(sign_in_id).await,
            state
                .clients
                .for_connection("qentrah", &user.organization_id, &user.client_id)
                .await,
        ) {
            tokio::spawn(async move {
                let token = Revocable::best_of(grant.refresh_token.as_ref(), &grant.access_token);
                if let Err(error) = oauth.revoke(token).await {
                    tracing::warn!(%error, "could not revoke the sign-in grant");
                }
            });
        }
    }
    state.users.end(sign_in_id).await.map(drop)
}

/// `GET /auth/logout`: a confirmation, never a sign-out by itself (a link or an image on any
/// page must not sign anyone out).
async fn logout_confirm() -> Response {
    page(
        StatusCode::OK,
        "Sign out of Qentrah Connect?",
        "<form method=\"post\" action=\"/auth/logout\"><button type=\"submit\">Sign out</button></form>",
    )
}

/// `POST /auth/logout` (same-origin only: the browser router refuses cross-site posts): the
/// sign-in grant revoked (best effort), the sign-in and the session deleted.
#[tracing::instrument(skip_all)]
async fn logout(State(state): State<AppState>, session: BrowserSession) -> Response {
    let sign_in_id = session
        .sign_in()
        .await
        .ok()
        .flatten()
        .map(|s| s.user.sign_in_id);
    if let Some(id) = sign_in_id {
        if let Err(error) = end_sign_in(&state, &id).await {
            tracing::error!(error = ?error, "could not end the sign-in");
            return unavailable_here();
        }
    }
    if let Err(error) = session.end().await {
        tracing::error!(error = ?error, "could not end the session");
        return unavailable_here();
    }
    see_other("/login?signed_out=1")
}
