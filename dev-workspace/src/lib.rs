//! The Qentrah dev Workspace: a strict local emulator of Qentrah's authorization server
//! (OAuth 2.1 with PKCE, RFC 8707 resources, RFC 9207 `iss`, RFC 7009 revocation, RFC 8414
//! metadata) and of its partner API, with a control API to put it into any state.
//!
//! Start it in-process with [`start`] (tests use port 0), or run the `qentrah-dev-workspace`
//! binary (127.0.0.1:3000 by default).

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub mod control;
mod html;
pub mod identity;
pub mod marketplace;
pub mod oauth;
pub mod oidc;
mod params;
pub mod partner;
pub mod profile;
pub mod seed;
pub mod state;

pub use control::{ConnectionView, Control};
pub use state::{
    ClientAuthMethod, ClientRegistration, Counters, Endpoint, Failure, LoggedRequest,
    MetadataVariant, TokenQuirks,
};

use state::{SharedWorld, World};

/// The public client registered by default (matches the app's `.env.example`).
pub const PUBLIC_CLIENT_ID: &str = "partners_client_dev_public";
/// The confidential client registered by default.
pub const CONFIDENTIAL_CLIENT_ID: &str = "partners_client_dev_confidential";
/// Its secret. Development only.
pub const CONFIDENTIAL_CLIENT_SECRET: &str = "dev-confidential-client-secret-0123456789";
/// The callback path of the partner app at Qentrah, appended to `PARTNER_APP_URL`.
pub const CALLBACK_PATH: &str = profile::QENTRAH.callback_path;
/// The default access-token lifetime.
pub const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3600);
/// The marketplace's webhook signing secret in development and tests (`.env.example` gives the
/// app the same as `QENTRAH_WEBHOOK_SECRETS`). Development only.
pub const DEV_WEBHOOK_SECRET: &str = "whsec_ZGV2LXdvcmtzcGFjZS13ZWJob29rLXNpZ25pbmcta2V5";
/// Where the partner app receives marketplace deliveries, appended to `PARTNER_APP_URL`.
pub const WEBHOOK_PATH: &str = "/api/webhooks/qentrah";
/// Request bodies larger than this are refused (413).
const MAX_BODY: usize = 64 * 1024;

/// How to run a dev Workspace.
#[derive(Debug, Clone)]
pub struct DevWorkspaceConfig {
    /// Where to listen; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The base URL clients use (and the issuer). Default: `http://{listen address}`.
    pub public_url: Option<String>,
    pub clients: Vec<ClientRegistration>,
    pub access_token_ttl: Duration,
    /// A path the issuer has (`/tenant-a`: issuer `http://host:port/tenant-a`), as multi-tenant
    /// servers do. Every endpoint moves under it, and the metadata to
    /// `/.well-known/oauth-authorization-server/tenant-a` (RFC 8414 §3.1), so a client that
    /// appends the well-known suffix to the issuer finds nothing. Empty: no path.
    pub issuer_path: String,
    /// Where to append every secret this Workspace issues or receives, one a line, for leak
    /// tests outside the process (Playwright). Never served over HTTP: in-process tests read
    /// them from [`Control::issued_secrets`].
    pub secrets_file: Option<std::path::PathBuf>,
    /// The provider it emulates: its scopes, partner API path and default callback.
    pub profile: &'static profile::Profile,
    /// The partner app's registration with the marketplace (none: no marketplace).
    pub marketplace: Option<marketplace::MarketplaceConfig>,
}

impl DevWorkspaceConfig {
    /// The default clients, with redirect URIs for a partner app at `partner_app_url`.
    pub fn default_clients(partner_app_url: &str) -> Vec<ClientRegistration> {
        Self::default_clients_of(&profile::QENTRAH, partner_app_url)
    }

    /// The default clients of a Workspace emulating `profile`.
    pub fn default_clients_of(
        profile: &profile::Profile,
        partner_app_url: &str,
    ) -> Vec<ClientRegistration> {
        let redirect_uri = format!(
            "{}{}",
            partner_app_url.trim_end_matches('/'),
            profile.callback_path
        );
        vec![
            ClientRegistration {
                client_id: PUBLIC_CLIENT_ID.to_owned(),
                client_secret: None,
                redirect_uris: vec![redirect_uri.clone()],
                approved: true,
                auth_method: ClientAuthMethod::ClientSecretPost,
            },
            ClientRegistration {
                client_id: CONFIDENTIAL_CLIENT_ID.to_owned(),
                client_secret: Some(CONFIDENTIAL_CLIENT_SECRET.to_owned()),
                redirect_uris: vec![redirect_uri],
                approved: true,
                auth_method: ClientAuthMethod::ClientSecretPost,
            },
        ]
    }

    /// Loopback on a free port, default clients for `partner_app_url`.
    pub fn for_tests(partner_app_url: &str) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            clients: Self::default_clients(partner_app_url),
            access_token_ttl: DEFAULT_ACCESS_TOKEN_TTL,
            issuer_path: String::new(),
            secrets_file: None,
            profile: &profile::QENTRAH,
            marketplace: Some(Self::marketplace_for(
                partner_app_url,
                DEV_WEBHOOK_SECRET,
                marketplace::test_retry_schedule(),
            )),
        }
    }

    /// The partner app at `partner_app_url` registered with the marketplace: its webhook URL,
    /// signing secret and both redirect URIs (the connection's and sign-in's).
    pub fn marketplace_for(
        partner_app_url: &str,
        signing_secret: &str,
        retry_schedule: Vec<Duration>,
    ) -> marketplace::MarketplaceConfig {
        let app = partner_app_url.trim_end_matches('/');
        marketplace::MarketplaceConfig {
            webhook_url: format!("{app}{WEBHOOK_PATH}"),
            signing_secrets: vec![signing_secret.to_owned()],
            redirect_uris: vec![
                format!("{app}{}", profile::QENTRAH.callback_path),
                format!("{app}/auth/callback"),
            ],
            retry_schedule,
        }
    }
}

/// A running dev Workspace. Dropping it stops the server.
pub struct DevWorkspace {
    /// The base URL (no trailing slash): `QENTRAH_WORKSPACE_API_URL` for the app.
    pub base_url: String,
    pub addr: SocketAddr,
    pub control: Control,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl DevWorkspace {
    /// Serves until the returned future is dropped or `stop` is called.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Runs until `signal` resolves (for the binary).
    pub async fn run_until(mut self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for DevWorkspace {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Binds, seeds and starts a dev Workspace in the background.
pub async fn start(config: DevWorkspaceConfig) -> std::io::Result<DevWorkspace> {
    let listener = TcpListener::bind(config.listen).await?;
    let addr = listener.local_addr()?;
    let base_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"))
        .trim_end_matches('/')
        .to_owned();
    let issuer_path = config.issuer_path.trim_end_matches('/').to_owned();
    if !issuer_path.is_empty() && !issuer_path.starts_with('/') {
        return Err(std::io::Error::other("issuer_path must start with /"));
    }
    let base_url = format!("{base_url}{issuer_path}");
    let mut world = World::new(
        base_url.clone(),
        config.clients,
        config.access_token_ttl,
        config.profile,
    );
    world.marketplace = config.marketplace.map(marketplace::Marketplace::new);
    if let Some(path) = &config.secrets_file {
        world.secrets_file = Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        );
    }
    // The signing secrets are secrets too: leak tests look for them as for every token.
    let signing_secrets = world
        .marketplace
        .as_ref()
        .map(|m| m.config.signing_secrets.clone())
        .unwrap_or_default();
    for secret in signing_secrets {
        world.note_secret(&secret);
    }
    let world = SharedWorld::new(world);
    let app = router(world.clone(), &issuer_path, config.profile);
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let serve = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = rx.await;
        });
        if let Err(error) = serve.await {
            tracing::error!(%error, "dev Workspace stopped");
        }
    });
    Ok(DevWorkspace {
        base_url,
        addr,
        control: Control::new(world),
        shutdown: Some(tx),
        task: Some(task),
    })
}

/// The whole router: authorization server, the profile's partner API (under `issuer_path`),
/// control API.
pub fn router(world: SharedWorld, issuer_path: &str, profile: &profile::Profile) -> Router {
    let api = profile.resource_path;
    // RFC 8414 §3.1: the well-known segment goes between the host and the issuer's path.
    let metadata = Router::new()
        .route(
            &format!("/.well-known/oauth-authorization-server{issuer_path}"),
            get(oauth::metadata),
        )
        .layer(middleware::from_fn_with_state(world.clone(), observe));
    let public = Router::new()
        .route("/", get(home))
        .route("/oauth/authorize", get(oauth::authorize))
        .route("/oauth/authorize/decision", post(oauth::decision))
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/revoke", post(oauth::revoke))
        .merge(oidc::public_router())
        .route(
            &format!("{api}/organizations/{{organization_id}}/me"),
            get(partner::me),
        )
        .route(
            &format!("{api}/organizations/{{organization_id}}/clients"),
            get(partner::clients),
        )
        .route(
            &format!("{api}/organizations/{{organization_id}}/properties"),
            get(partner::properties),
        )
        .layer(middleware::from_fn_with_state(world.clone(), observe));
    let public = if issuer_path.is_empty() {
        public
    } else {
        Router::new().nest(issuer_path, public)
    };
    let control = control::router()
        .merge(marketplace::router())
        .merge(oidc::control_router())
        .layer(middleware::from_fn(control::same_origin_only))
        .layer(middleware::from_fn(control::loopback_only));
    public.merge(metadata).merge(control).with_state(world)
}

async fn home() -> impl IntoResponse {
    axum::response::Html(html::page(
        "Qentrah dev Workspace",
        "<h1>Qentrah dev Workspace</h1><p>A local emulator of Qentrah's authorization server and partner API.</p>\
         <p><a href=\"/marketplace\">Marketplace</a> · <a href=\"/__dev\">Control page</a> · <a href=\"/.well-known/oauth-authorization-server\">Metadata</a></p>",
    ))
}

/// Parameters whose values are secrets: never kept in the request log.
const SECRET_PARAMS: [&str; 7] = [
    "id_token_hint",
    "code",
    "code_verifier",
    "refresh_token",
    "client_secret",
    "token",
    "access_token",
];

fn redact(pairs: &[(String, String)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(name, value)| {
            let value = if SECRET_PARAMS.contains(&name.as_str()) {
                "[redacted]".to_owned()
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect()
}

/// Logs each request (redacted), applies configured latency, and serves canned failures.
async fn observe(State(world): State<SharedWorld>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, MAX_BODY).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n").into_response();
    };
    let path = parts.uri.path().to_owned();
    let profile = world.lock().profile;
    let endpoint = state::Endpoint::for_path(&path, profile);
    let query = params::Params::parse(parts.uri.query().unwrap_or_default())
        .map(|p| redact(p.pairs()))
        .unwrap_or_default();
    let form = std::str::from_utf8(&bytes)
        .ok()
        .and_then(|body| params::Params::parse(body).ok())
        .map(|p| redact(p.pairs()))
        .unwrap_or_default();
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(' ').next().unwrap_or_default().to_owned());
    let method = parts.method.to_string();

    let partner_api = matches!(
        endpoint,
        Some(Endpoint::Me | Endpoint::Clients | Endpoint::Properties)
    );
    let latency = {
        let mut w = world.lock();
        if partner_api {
            if let Some(axum::extract::ConnectInfo(peer)) = parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>(
            ) {
                if w.partner_api_peers.insert(*peer) {
                    w.counters.partner_api_connections += 1;
                }
            }
            w.counters.partner_api_requests += 1;
            w.partner_api_in_flight += 1;
            w.counters.partner_api_peak_in_flight = w
                .counters
                .partner_api_peak_in_flight
                .max(w.partner_api_in_flight);
        }
        endpoint.and_then(|e| w.latency.get(&e).copied())
    };
    let _in_flight = endpoint.map(|endpoint| InFlight::enter(&world, endpoint));
    if let Some(latency) = latency {
        tokio::time::sleep(latency).await;
    }
    let failure = endpoint.and_then(|e| world.lock().take_failure(e));
    let response = match failure {
        Some(failure) => failure_response(failure),
        None => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };

    let delay = endpoint.and_then(|e| world.lock().response_delay.get(&e).copied());
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let mut w = world.lock();
    if partner_api {
        w.partner_api_in_flight = w.partner_api_in_flight.saturating_sub(1);
    }
    let at = w.now_secs();
    w.record(LoggedRequest {
        at,
        method,
        path,
        query,
        form,
        authorization,
        status: response.status().as_u16(),
    });
    response
}

/// Counts a request in flight until it is answered or dropped (its client went away).
struct InFlight {
    world: SharedWorld,
    endpoint: state::Endpoint,
}

impl InFlight {
    fn enter(world: &SharedWorld, endpoint: state::Endpoint) -> Self {
        *world.lock().in_flight.entry(endpoint).or_default() += 1;
        Self {
            world: world.clone(),
            endpoint,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(count) = self.world.lock().in_flight.get_mut(&self.endpoint) {
            *count = count.saturating_sub(1);
        }
    }
}

fn failure_response(failure: Failure) -> Response {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    // No body given: a JSON document cut off mid-way, as a crashing proxy might send.
    let body = failure
        .body
        .unwrap_or_else(|| "{\"data\": [{\"id\": \"cli_".to_owned());
    let content_type = failure
        .content_type
        .unwrap_or_else(|| "application/json".to_owned());
    let mut response = (status, body).into_response();
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        response.headers_mut().insert(header::CONTENT_TYPE, value);
    }
    for (name, value) in failure.headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            response.headers_mut().insert(name, value);
        }
    }
    response
}

#[cfg(test)]
mod tests;
