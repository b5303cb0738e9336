//! `spawn_app()`: a fresh database (SQLite, or PostgreSQL with `TEST_DATABASE=postgres`), a free
//! port, the dev Workspace in-process, the app as it ships, and a client that keeps cookies and
//! follows no redirects (so tests see every redirect the app sends).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use qentrah_connect::server::platform::clock::ManualClock;
use qentrah_connect::server::startup::Application;
use qentrah_connect::server::{AppConfig, AppState};
use qentrah_dev_workspace::{DevWorkspace, DevWorkspaceConfig};
use serde_json::Value;
use tokio::net::TcpListener;

pub use crate::database::TestDatabase;

/// The project root: where `Leptos.toml` is, and the shipped binary's working directory.
const PROJECT_ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

pub const TEST_SESSION_SECRET: &str = "integration-test-session-secret-0123456789";

pub struct TestApp {
    /// `http://localhost:{port}`: the configured PARTNER_APP_URL.
    pub origin: String,
    pub addr: SocketAddr,
    /// A browser: keeps cookies, follows no redirects.
    pub client: reqwest::Client,
    pub clock: ManualClock,
    pub ws: DevWorkspace,
    pub database: TestDatabase,
    /// The state of the instance `spawn_app` started (none for apps built from parts).
    pub state: Option<AppState>,
}

/// Options for [`spawn_app_with`].
#[derive(Default)]
pub struct Options {
    pub client_id: Option<&'static str>,
    pub client_secret: Option<&'static str>,
    pub auth_rate_limit_per_minute: Option<&'static str>,
    pub http_timeout_ms: Option<&'static str>,
    /// The dev Workspace's access-token lifetime (default one hour).
    pub access_token_ttl: Option<Duration>,
    /// A path the dev Workspace's issuer has (`/tenant-a`).
    pub issuer_path: Option<&'static str>,
    /// Other variables, as the environment would hold them (`PROVIDER_PROFILES_FILE`).
    pub env: Vec<(&'static str, String)>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

/// Starts the dev Workspace and the app against a fresh database.
pub async fn spawn_app_with(options: Options) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let origin = format!("http://localhost:{}", addr.port());
    let mut ws_config = DevWorkspaceConfig::for_tests(&origin);
    if let Some(ttl) = options.access_token_ttl {
        ws_config.access_token_ttl = ttl;
    }
    if let Some(path) = options.issuer_path {
        ws_config.issuer_path = path.to_owned();
    }
    let ws = qentrah_dev_workspace::start(ws_config).await.unwrap();
    let database = TestDatabase::for_suite().await;
    let mut app = TestApp::external(origin, addr, ws, database);
    let config = app_config(&app.ws, &app.origin, &app.database.url, &options);
    app.state = Some(start_instance(config, &app.clock, listener).await);
    app
}

/// The app's configuration for tests: `origin` is PARTNER_APP_URL (the app itself, or the load
/// balancer in front of several instances).
pub fn app_config(
    ws: &DevWorkspace,
    origin: &str,
    database_url: &str,
    options: &Options,
) -> AppConfig {
    let client_id = options
        .client_id
        .unwrap_or(qentrah_dev_workspace::PUBLIC_CLIENT_ID);
    let client_secret = options.client_secret.unwrap_or("");
    AppConfig::from_lookup(|name| {
        Some(
            match name {
                "QENTRAH_WORKSPACE_API_URL" => ws.base_url.as_str(),
                "QENTRAH_CLIENT_ID" => client_id,
                "QENTRAH_CLIENT_SECRET" => client_secret,
                "PARTNER_APP_URL" => origin,
                "SESSION_SECRET" => TEST_SESSION_SECRET,
                "DATABASE_URL" => database_url,
                "AUTH_RATE_LIMIT_PER_MINUTE" => options.auth_rate_limit_per_minute?,
                "QENTRAH_HTTP_TIMEOUT_MS" => options.http_timeout_ms?,
                other => options
                    .env
                    .iter()
                    .find(|(name, _)| *name == other)
                    .map(|(_, value)| value.as_str())?,
            }
            .to_owned(),
        )
    })
    .unwrap()
}

/// Starts one instance of the app in this process on `listener`; returns its state (its
/// services, for what a test checks beside HTTP).
pub async fn start_instance(
    config: AppConfig,
    clock: &ManualClock,
    listener: TcpListener,
) -> AppState {
    let mut leptos_options =
        leptos::config::get_configuration(Some(&format!("{PROJECT_ROOT}/Leptos.toml")))
            .unwrap()
            .leptos_options;
    leptos_options.site_addr = listener.local_addr().unwrap();
    let app =
        Application::build_with_listener(config, leptos_options, Arc::new(clock.clone()), listener)
            .await
            .unwrap();
    let state = app.state().clone();
    tokio::spawn(app.serve(std::future::pending()));
    state
}

/// The shipped binary at `binary` (the tests pass `env!("CARGO_BIN_EXE_qentrah-connect")`),
/// serving `app` (its Workspace, origin and database) on `addr`; returns once it is ready.
/// Killed when dropped.
pub async fn start_binary_at(
    binary: &str,
    app: &TestApp,
    addr: SocketAddr,
) -> tokio::process::Child {
    start_binary_with(binary, app, addr, &[], None).await
}

/// [`start_binary_at`] with more variables (`env` overrides the defaults, `RUST_LOG` too) and,
/// given `log`, its standard output (the log) written to that file.
pub async fn start_binary_with(
    binary: &str,
    app: &TestApp,
    addr: SocketAddr,
    env: &[(&str, String)],
    log: Option<&std::path::Path>,
) -> tokio::process::Child {
    let stdout = match log {
        Some(path) => std::process::Stdio::from(std::fs::File::create(path).unwrap()),
        None => std::process::Stdio::null(),
    };
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("QENTRAH_WORKSPACE_API_URL", &app.ws.base_url)
        .env("QENTRAH_CLIENT_ID", qentrah_dev_workspace::PUBLIC_CLIENT_ID)
        .env("PARTNER_APP_URL", &app.origin)
        .env("SESSION_SECRET", TEST_SESSION_SECRET)
        .env("DATABASE_URL", &app.database.url)
        .env("LEPTOS_SITE_ADDR", addr.to_string())
        .env("RUST_LOG", "warn")
        // Leptos.toml lives at the project root.
        .current_dir(PROJECT_ROOT)
        .stdout(stdout)
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().unwrap();
    let probe = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(response) = probe.get(format!("http://{addr}/readyz")).send().await {
            if response.status() == 200 {
                return child;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the binary did not become ready");
}

/// A new browser (its own cookie jar) for this app.
pub fn browser(addr: SocketAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        // `localhost` must reach this app's IPv4 listener, whatever the resolver prefers.
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on {}", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

impl TestApp {
    /// A `TestApp` for an app on `addr` (in this process or the real binary in its own). Its
    /// clock starts at the real time (the Workspace uses the real time too) and moves only when
    /// a test moves it.
    pub fn external(
        origin: String,
        addr: SocketAddr,
        ws: DevWorkspace,
        database: TestDatabase,
    ) -> Self {
        #[allow(clippy::disallowed_methods)]
        let clock = ManualClock::new(SystemTime::now());
        Self {
            client: browser(addr),
            origin,
            addr,
            clock,
            ws,
            database,
            state: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.origin, path)
    }

    /// A second browser with its own cookies.
    pub fn new_browser(&self) -> reqwest::Client {
        browser(self.addr)
    }

    /// `GET /api/auth/qentrah/start` in `browser`; returns the authorization URL.
    pub async fn start_flow(&self, browser: &reqwest::Client, return_to: Option<&str>) -> String {
        let mut url = self.url("/api/auth/qentrah/start");
        if let Some(path) = return_to {
            url.push_str(&format!(
                "?return_to={}",
                url::form_urlencoded::byte_serialize(path.as_bytes()).collect::<String>()
            ));
        }
        let response = browser.get(url).send().await.unwrap();
        assert_eq!(response.status(), 303);
        location(&response)
    }

    /// The person signs in at the Workspace, picks `organization_id`, and approves (or denies);
    /// returns the callback URL the Workspace redirects to.
    pub async fn consent(
        &self,
        authorize_url: &str,
        organization_id: &str,
        decision: &str,
    ) -> String {
        self.consent_granting(authorize_url, organization_id, decision, None)
            .await
    }

    /// [`Self::consent`], leaving ticked only `scopes` on the consent page (all when `None`).
    pub async fn consent_granting(
        &self,
        authorize_url: &str,
        organization_id: &str,
        decision: &str,
        scopes: Option<&[&str]>,
    ) -> String {
        let ws = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let html = ws
            .get(authorize_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let marker = "name=\"request_id\" value=\"";
        let start = html
            .find(marker)
            .unwrap_or_else(|| panic!("no consent form: {html}"))
            + marker.len();
        let request_id = &html[start..start + html[start..].find('"').unwrap()];
        // The Workspace the authorization URL points at (Qentrah's, or another provider's).
        let workspace = authorize_url
            .split("/oauth/authorize")
            .next()
            .unwrap_or(&self.ws.base_url);
        let response = ws
            .post(format!("{workspace}/oauth/authorize/decision"))
            .form(
                &[
                    ("request_id", request_id),
                    ("organization_id", organization_id),
                    ("decision", decision),
                ]
                .into_iter()
                .chain(scopes.map(|_| ("scopes_chosen", "1")))
                .chain(scopes.unwrap_or_default().iter().map(|s| ("scope", *s)))
                .collect::<Vec<_>>(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        location(&response)
    }

    /// Follows the callback in `browser`; returns the response (a 303).
    pub async fn finish(&self, browser: &reqwest::Client, callback_url: &str) -> reqwest::Response {
        browser.get(callback_url).send().await.unwrap()
    }

    /// A whole flow in `browser` for `organization_id`; returns where the app sent it.
    pub async fn connect(&self, browser: &reqwest::Client, organization_id: &str) -> String {
        let authorize = self.start_flow(browser, None).await;
        let callback = self.consent(&authorize, organization_id, "approve").await;
        let response = self.finish(browser, &callback).await;
        assert_eq!(response.status(), 303);
        location(&response)
    }

    /// At the Workspace, as `sub` (signed in there with its own session cookie): follows an
    /// authorization request; returns the callback URL the Workspace sends the browser to.
    pub async fn approve_as(&self, sub: &str, authorize_url: &str) -> String {
        let session = self.ws.control.workspace_session(sub).unwrap();
        let response = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(authorize_url)
            .header("cookie", format!("qws_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{authorize_url}");
        location(&response)
    }

    /// "Open App" (`AUTH_MODE=sso`, the initiate shape) for `sub` in `browser`: the app's
    /// `/auth/login`, the Workspace approving its signed-in user, the callback; returns the
    /// callback's answer.
    pub async fn open_app(
        &self,
        browser: &reqwest::Client,
        organization_id: &str,
        sub: &str,
        target: Option<&str>,
    ) -> reqwest::Response {
        let link = self
            .ws
            .control
            .open_app_link(
                organization_id,
                qentrah_dev_workspace::oidc::OpenAppMode::Initiate,
                sub,
                target,
            )
            .unwrap();
        let response = browser.get(link).send().await.unwrap();
        assert_eq!(response.status(), 303);
        let authorize = location(&response);
        assert!(authorize.starts_with(&self.ws.base_url), "{authorize}");
        let callback = self.approve_as(sub, &authorize).await;
        browser.get(callback).send().await.unwrap()
    }

    /// Calls a server function; returns its status and JSON body.
    pub async fn server_fn(&self, browser: &reqwest::Client, name: &str) -> (u16, Value) {
        self.server_fn_with(browser, name, &[]).await
    }

    /// Calls a server function with arguments; returns its status and JSON body.
    pub async fn server_fn_with(
        &self,
        browser: &reqwest::Client,
        name: &str,
        arguments: &[(&str, &str)],
    ) -> (u16, Value) {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(arguments)
            .finish();
        let response = browser
            .post(self.url(&format!("/api/{name}")))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}
