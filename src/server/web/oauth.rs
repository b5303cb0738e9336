//! Each provider's `GET /api/auth/{provider}/start` and `GET /api/auth/{provider}/callback`
//! (Qentrah's: `/api/auth/qentrah/…`): plain axum routes, so they work as ordinary navigations
//! without JavaScript.

use std::time::SystemTime;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Extension;
use axum::Router;
use secrecy::SecretString;

use crate::domain::ConnectFailure;
use crate::server::connections::{Binding, ConnectionKey};
use crate::server::identity::session::BrowserSession;
use crate::server::identity::users::SignedInUser;
use crate::server::ids::{OrganizationId, ProviderId};
use crate::server::providers::oauth::authorization::{
    self, CallbackParams, CallbackRefusal, CallbackStep, PkceVerifier,
};
use crate::server::providers::oauth::client::ClientChoice;
use crate::server::providers::oauth::flow_store::ConsumedFlow;
use crate::server::providers::oauth::flow_store::FlowClient;
use crate::server::providers::oauth::{OAuthClient, Revocable, TokenCallError};
use crate::server::providers::ProviderRegistry;
use crate::server::state::AppState;

/// The flow's two routes for every provider, at the paths its profile names.
pub fn router(providers: &ProviderRegistry) -> Router<AppState> {
    providers.iter().fold(Router::new(), |router, provider| {
        let profile = provider.profile();
        let (for_start, for_callback) = (profile.name.clone(), profile.name.clone());
        router
            .route(
                &profile.start_path,
                get(move |state, session, user, query| {
                    start(state, session, user, query, for_start)
                }),
            )
            .route(
                &profile.callback_path,
                get(move |state, session, user, query| {
                    callback(state, session, user, query, for_callback)
                }),
            )
    })
}

/// A 303 that no cache keeps and that sends no `Referer` onward (the callback URL carries the
/// code; RFC 9700 §4.2.4).
pub(super) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
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
        Err(_) => failed(ConnectFailure::InvalidResponse),
    }
}

fn failed(reason: ConnectFailure) -> Response {
    see_other(&format!("/connect/failed?reason={}", reason.as_str()))
}

/// A page for our own failure before the person ever reaches the provider; "Try again" starts
/// the flow at `start_path` again.
fn unavailable_here(start_path: &str) -> Response {
    let mut response = page(
        StatusCode::SERVICE_UNAVAILABLE,
        "We could not start the connection",
        &format!("Something failed on our side. Nothing was lost. <a href=\"{start_path}\">Try again</a>."),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

/// A page of ours, not a redirect: the person stays here.
pub(super) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    (
        status,
        [
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
        ],
        format!(
            "<!DOCTYPE html><html lang=\"en\"><title>{title}</title><h1>{title}</h1>\
             <p>{body}</p><p><a href=\"/\">Back to Qentrah Connect</a></p></html>"
        ),
    )
        .into_response()
}

/// The page for an organization whose installation was uninstalled and not replaced: no flow
/// is started, and nothing is sent to the Workspace.
fn uninstalled_page() -> Response {
    page(
        StatusCode::FORBIDDEN,
        "Qentrah Connect was uninstalled from this Workspace",
        "A Workspace admin removed this app from the organization, so it cannot connect. \
         An admin can install it again from the Workspace's marketplace.",
    )
}

/// One query parameter's value.
fn query_param(query: Option<&str>, wanted: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(name, _)| name == wanted)
        .map(|(_, value)| value.into_owned())
}

/// Starts a flow: fresh `state` and PKCE pair, remembered for this browser, then off to the
/// Workspace's authorization endpoint. `organization_id` names the organization whose
/// installation's client starts it (the marketplace delivered one per organization); without
/// it, or for an organization never installed, the configured client does.
#[tracing::instrument(skip_all)]
async fn start(
    State(state): State<AppState>,
    session: BrowserSession,
    user: Option<Extension<SignedInUser>>,
    RawQuery(query): RawQuery,
    provider_name: ProviderId,
) -> Response {
    let Some(provider) = state.providers.get(provider_name.as_str()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let start_path = provider.profile().start_path.clone();
    // AUTH_MODE=sso: an admin connects their own organization, with its installation's client
    // (the guard let only a signed-in admin through).
    let signed_in_organization = user.map(|Extension(user)| user.organization_id);
    let organization_id = match query_param(query.as_deref(), "organization_id") {
        _ if signed_in_organization.is_some() => signed_in_organization,
        None => None,
        Some(given) => match OrganizationId::parse(&given) {
            Some(id) => Some(id),
            None => {
                return page(
                    StatusCode::BAD_REQUEST,
                    "This organization id is not valid",
                    "The link names an organization id this app cannot use. Start again from \
                     your Workspace.",
                )
            }
        },
    };
    let oauth = match state
        .clients
        .for_flow(provider_name.as_str(), organization_id.as_ref())
        .await
    {
        Ok(ClientChoice::Client(oauth)) => oauth,
        Ok(ClientChoice::Uninstalled) => {
            tracing::info!("a flow for an uninstalled organization was not started");
            return uninstalled_page();
        }
        Ok(ClientChoice::NotConfigured) => return StatusCode::NOT_FOUND.into_response(),
        Err(error) => {
            tracing::error!(error = %crate::server::Causes(&error), "installations unavailable");
            return unavailable_here(&start_path);
        }
    };
    let return_to = query_param(query.as_deref(), "return_to");
    let return_to = authorization::safe_return_to(return_to.as_deref());

    let binding = match session.flow_binding().await {
        Ok(binding) => binding,
        Err(error) => {
            tracing::error!(error = ?error, "session unavailable");
            return unavailable_here(&oauth.provider().start_path);
        }
    };
    let (Ok(oauth_state), Ok(verifier)) =
        (authorization::State::generate(), PkceVerifier::generate())
    else {
        tracing::error!("random number generator failed");
        return unavailable_here(&oauth.provider().start_path);
    };
    let provider = oauth.provider();
    let flow_client = FlowClient {
        provider: provider.name.clone(),
        client_id: oauth.client_id().to_owned(),
        organization_id: oauth.installed_for().cloned(),
    };
    if let Err(error) = state
        .flows
        .remember(
            &flow_client,
            &oauth_state,
            &verifier,
            &binding,
            &return_to,
            state.clock.now(),
        )
        .await
    {
        tracing::error!(error = ?error, "could not remember the flow");
        return unavailable_here(&oauth.provider().start_path);
    }
    let url =
        authorization::authorization_url(provider, oauth.client_id(), &oauth_state, &verifier);
    tracing::info!("authorization started");
    see_other(url.as_str())
}

/// Finishes a flow: refuse anything that is not this browser's live flow before any token
/// request, exchange the code, store the tokens, bind the session, and leave for a clean URL.
#[tracing::instrument(skip_all)]
async fn callback(
    State(state): State<AppState>,
    session: BrowserSession,
    user: Option<Extension<SignedInUser>>,
    RawQuery(query): RawQuery,
    provider_name: ProviderId,
) -> Response {
    let Some(configured) = state.clients.configured(provider_name.as_str()).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let params = CallbackParams::parse(query.as_deref().unwrap_or_default());
    let provider = configured.provider().clone();
    let binding = match session.existing_flow_binding().await {
        Ok(binding) => binding,
        Err(error) => {
            tracing::error!(error = ?error, "session unavailable");
            return failed(ConnectFailure::Unavailable);
        }
    };
    let now = state.clock.now();

    // Judged first as if `iss` were optional: whether it is (RFC 9207 §2.4) is asked of the
    // provider's metadata only below, once this browser's own live flow is found, so a forged
    // callback costs no request to the provider.
    let (state_digest, code) = match authorization::judge_callback(&params, &provider.issuer, false)
    {
        CallbackStep::Exchange { state_digest, code } => (state_digest, code),
        CallbackStep::Refuse(refusal) => {
            // An error answer ends its flow too, so it cannot be completed later.
            if let (Some(state_param), Some(binding)) =
                (params.state.as_deref(), binding.as_deref())
            {
                if !matches!(refusal, CallbackRefusal::WrongIssuer) {
                    let _ = state
                        .flows
                        .consume(&authorization::digest(state_param), binding, now)
                        .await;
                }
            }
            tracing::info!(?refusal, "callback refused");
            return failed(match refusal {
                CallbackRefusal::Denied { error } if error == "access_denied" => {
                    ConnectFailure::AccessDenied
                }
                // RFC 6749 §4.1.2.1: the app may not ask; a Workspace admin must approve it.
                CallbackRefusal::Denied { error } if error == "unauthorized_client" => {
                    ConnectFailure::NotApproved
                }
                CallbackRefusal::Denied { .. } => ConnectFailure::ExchangeRefused,
                CallbackRefusal::UnknownState => ConnectFailure::UnknownFlow,
                CallbackRefusal::WrongIssuer => ConnectFailure::WrongIssuer,
                CallbackRefusal::Malformed => ConnectFailure::InvalidResponse,
            });
        }
    };

    let Some(binding) = binding else {
        tracing::info!("callback from a browser that started no flow");
        return failed(ConnectFailure::UnknownFlow);
    };
    let flow = match state.flows.consume(&state_digest, &binding, now).await {
        // A flow is completed only at its own provider's callback.
        Ok(Some(flow)) if provider.name == *flow.provider => flow,
        Ok(Some(_)) => {
            tracing::info!("callback at another provider's route than its flow's");
            return failed(ConnectFailure::UnknownFlow);
        }
        Ok(None) => {
            tracing::info!("callback state matches no live flow of this browser");
            return failed(ConnectFailure::UnknownFlow);
        }
        Err(error) => {
            tracing::error!(error = ?error, "flow store failed");
            return failed(ConnectFailure::Unavailable);
        }
    };

    // AUTH_MODE=sso: the flow must be for the signed-in admin's own organization (the code is
    // then not redeemed for any other), and the token response must name it too (below).
    if let Some(Extension(user)) = &user {
        if flow.organization_id.as_ref() != Some(&user.organization_id) {
            tracing::warn!("a connect flow for another organization than the admin's");
            return failed(ConnectFailure::WrongOrganization);
        }
    }
    // The code is redeemed by the client the flow started with (RFC 6749 §4.1.3), and only
    // while that client may still be used.
    let oauth = match &flow.organization_id {
        None => configured,
        Some(organization_id) => match state
            .clients
            .for_connection(provider.name.as_str(), organization_id, &flow.client_id)
            .await
        {
            Ok(ClientChoice::Client(oauth)) => oauth,
            Ok(ClientChoice::Uninstalled | ClientChoice::NotConfigured) => {
                tracing::info!(
                    "the flow's installation was uninstalled meanwhile; code not redeemed"
                );
                return failed(ConnectFailure::Uninstalled);
            }
            Err(error) => {
                tracing::error!(error = %crate::server::Causes(&error), "installations unavailable");
                return failed(ConnectFailure::Unavailable);
            }
        },
    };
    let binding =
        match complete_authorization(&state, &oauth, &flow, &code, params.iss.is_some(), now).await
        {
            Ok(binding) => binding,
            Err(failure) => return failed(failure),
        };
    if let Err(error) = session.bind_connection(&binding).await {
        tracing::error!(error = ?error, "could not bind the session");
        return failed(ConnectFailure::Unavailable);
    }
    tracing::info!(org = %binding.key.organization_id(), "connected");
    see_other(&flow.return_to)
}

/// The callback's second half, once this browser's live flow is found and spent (the person
/// starts again whatever happens here): the `iss` promise, the code exchange, whose grant it is,
/// storing it. Returns the grant the session is to be bound to, or why there is none; binding
/// the session and answering the browser stay with the route.
async fn complete_authorization(
    state: &AppState,
    oauth: &OAuthClient,
    flow: &ConsumedFlow,
    code: &SecretString,
    iss_received: bool,
    now: SystemTime,
) -> Result<Binding, ConnectFailure> {
    // RFC 9207 §2.4: a response without `iss` is refused if the provider promises to send it.
    if !iss_received {
        match oauth.provider_sends_iss(now).await {
            Ok(false) => {}
            Ok(true) => {
                tracing::info!("callback without iss from a provider that always sends it");
                return Err(ConnectFailure::WrongIssuer);
            }
            Err(error @ TokenCallError::Refused { .. }) => {
                tracing::error!(%error, "the provider's metadata cannot be used");
                return Err(ConnectFailure::Misconfigured);
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the provider's metadata");
                return Err(ConnectFailure::Unavailable);
            }
        }
    }

    let tokens = oauth
        .exchange_code(code, &flow.verifier)
        .await
        .map_err(|error| {
            tracing::warn!(%error, "code exchange failed");
            match error {
                TokenCallError::InvalidGrant => ConnectFailure::ExchangeRefused,
                TokenCallError::Refused { .. } => ConnectFailure::Misconfigured,
                TokenCallError::NotApproved { .. } => ConnectFailure::NotApproved,
                TokenCallError::UnusableResponse { .. } => ConnectFailure::InvalidResponse,
                TokenCallError::Unavailable { .. } => ConnectFailure::Unavailable,
            }
        })?;
    // Whose grant this is: the token response's `organization_id` (the brief's field).
    let Some(organization_id) = tokens.organization_id.clone() else {
        tracing::warn!("token response without a usable organization_id; nothing stored");
        // Nothing will ever use or revoke these tokens: revoke them now (RFC 7009), off the
        // person's path.
        let oauth = oauth.clone();
        tokio::spawn(async move {
            let token = Revocable::best_of(tokens.refresh_token.as_ref(), &tokens.access_token);
            if let Err(error) = oauth.revoke(token).await {
                tracing::warn!(%error, "could not revoke the unusable grant");
            }
        });
        return Err(ConnectFailure::MissingOrganization);
    };

    // An installation's client serves its own organization only: a grant for another one is
    // not stored (and is revoked: nothing else would ever revoke it).
    if let Some(expected) = oauth.installed_for() {
        if *expected != organization_id {
            tracing::warn!(%organization_id, %expected, "the Workspace connected another organization than the installation's");
            let oauth = oauth.clone();
            tokio::spawn(async move {
                let token = Revocable::best_of(tokens.refresh_token.as_ref(), &tokens.access_token);
                if let Err(error) = oauth.revoke(token).await {
                    tracing::warn!(%error, "could not revoke the other organization's grant");
                }
            });
            return Err(ConnectFailure::WrongOrganization);
        }
    }
    let profile = oauth.provider();
    let key = ConnectionKey::new(&profile.name, &organization_id, profile.resource_key());
    let grant_id = state
        .connections
        .tokens()
        .connect(&key, oauth, tokens, profile.scopes.clone())
        .await
        .map_err(|error| {
            tracing::error!(?error, "could not store the connection");
            ConnectFailure::Unavailable
        })?;
    Ok(Binding { key, grant_id })
}
