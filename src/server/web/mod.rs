//! The HTTP surface: plain axum routes, the Leptos pages, and the layers around them.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};

mod admin;
mod guard;
mod oauth;
pub mod security;
mod sign_in;
pub mod webhooks;

pub use webhooks::WEBHOOK_RATE_LIMIT_PER_MINUTE;

use crate::app::{shell, App};
use crate::server::connections::RequestScope;
use crate::server::state::AppState;
use crate::server::{identity::session, platform::telemetry};

/// The whole application: one router per surface, each with the layers it needs, joined under
/// the few every response gets (request id, trace span, security headers). A surface that is
/// not a browser's (health probes now; webhooks and a public `/api/v1` later) is merged here,
/// beside the browser surface, and inherits none of its session, same-origin or canonical-host
/// layers.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health_router())
        .merge(webhooks::router(&state))
        .merge(admin::router(&state))
        .merge(browser_router(&state))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::server::web::security::security_headers,
        ))
        .with_state(state)
        // Outermost last: the id is set first, then the span sees it, then it is echoed back.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(telemetry::request_span)
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// What a browser uses: the pages, their server functions and the OAuth routes. All of it on
/// the canonical host (cookies are per host), with the session, the same-origin check on
/// state changes, and no caching of what depends on the session.
fn browser_router(state: &AppState) -> Router<AppState> {
    let router = Router::new()
        .merge(pages_router(state))
        .merge(oauth_router(state));
    // Sign-in's routes exist only where sign-in is on: `AUTH_MODE=connect` is today's product.
    let router = if state.config.sign_in.mode == crate::server::platform::config::AuthMode::Sso {
        router.merge(
            sign_in::router().route_layer(middleware::from_fn_with_state(
                state.clone(),
                crate::server::web::security::limit_auth_routes,
            )),
        )
    } else {
        router
    };
    router
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        // Inside the session layer: the guard reads the session.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            guard::require_sign_in,
        ))
        .layer(session::layer(
            &state.db,
            &state.config.partner_app_url,
            &state.config.session_secret,
        ))
        .layer(middleware::from_fn(
            crate::server::web::security::caller_errors_are_4xx,
        ))
        .layer(middleware::from_fn(
            crate::server::web::security::no_store_session_responses,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::server::web::security::refuse_cross_site,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            redirect_to_canonical_host,
        ))
}

/// The Leptos pages and server functions, each request with the state and its own
/// [`RequestScope`] in context: every server function a page calls in-process shares one vault
/// read of the connection.
fn pages_router(state: &AppState) -> Router<AppState> {
    let context_state = state.clone();
    Router::new().leptos_routes_with_context(
        state,
        generate_route_list(App),
        move || {
            provide_context(context_state.clone());
            provide_context(RequestScope::default());
        },
        {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        },
    )
}

/// The OAuth routes, with a per-address rate limit of their own.
fn oauth_router(state: &AppState) -> Router<AppState> {
    oauth::router(&state.providers).route_layer(middleware::from_fn_with_state(
        state.clone(),
        crate::server::web::security::limit_auth_routes,
    ))
}

/// `/healthz` and `/readyz`: exempt from the canonical-host redirect so that load balancers and
/// orchestrators can probe an instance by its address.
fn health_router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is alive and serving.
async fn healthz() -> impl IntoResponse {
    (no_store(), "ok\n")
}

/// The instance can serve traffic: its database answers.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if crate::server::platform::db::is_reachable(&state.db, Duration::from_secs(2)).await {
        (StatusCode::OK, no_store(), "ready\n")
    } else {
        tracing::warn!("readiness check failed: database unreachable");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            no_store(),
            "database unreachable\n",
        )
    }
}

fn no_store() -> [(header::HeaderName, HeaderValue); 1] {
    [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))]
}

/// Redirects a request that arrived on another host (say `127.0.0.1` when `PARTNER_APP_URL`
/// says `localhost`) to the same path on the configured origin.
///
/// Cookies are per host: a session or OAuth flow cookie set on one host is invisible on the
/// other, and the OAuth return always lands on `PARTNER_APP_URL`. 307 keeps the method and
/// body, and is not cached, so changing `PARTNER_APP_URL` takes effect at once.
async fn redirect_to_canonical_host(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let expected = state.config.partner_app_url.authority();
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| {
            request
                .uri()
                .authority()
                .map(|authority| authority.as_str())
        });
    if host.is_some_and(|host| host.eq_ignore_ascii_case(&expected)) {
        return next.run(request).await;
    }

    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let location = format!(
        "{}{}",
        state.config.partner_app_url.origin(),
        path_and_query
    );
    match HeaderValue::from_str(&location) {
        Ok(location) => Response::builder()
            .status(StatusCode::TEMPORARY_REDIRECT)
            .header(header::LOCATION, location)
            .header(header::CACHE_CONTROL, "no-store")
            .body(Body::empty())
            .unwrap_or_else(|_| StatusCode::BAD_REQUEST.into_response()),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}
