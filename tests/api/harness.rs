//! `spawn_app()`: a fresh database, a free port, the app as it ships, and a client that keeps
//! cookies and follows no redirects (so tests see every redirect the app sends).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use qentrah_connect::server::clock::ManualClock;
use qentrah_connect::server::startup::Application;
use qentrah_connect::server::AppConfig;
use tokio::net::TcpListener;

pub const TEST_SESSION_SECRET: &str = "integration-test-session-secret-0123456789";

pub struct TestApp {
    /// `http://localhost:{port}`: the configured PARTNER_APP_URL.
    pub origin: String,
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    _data: tempfile::TempDir,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.origin, path)
    }
}

/// Starts the app against a fresh SQLite database in a temporary folder.
pub async fn spawn_app() -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let origin = format!("http://localhost:{}", addr.port());
    let data = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", data.path().join("app.db").display());

    let config = AppConfig::from_lookup(|name| {
        Some(
            match name {
                "QENTRAH_WORKSPACE_API_URL" => "http://127.0.0.1:9",
                "QENTRAH_CLIENT_ID" => "partners_client_test",
                "PARTNER_APP_URL" => origin.as_str(),
                "SESSION_SECRET" => TEST_SESSION_SECRET,
                "DATABASE_URL" => database_url.as_str(),
                _ => return None,
            }
            .to_owned(),
        )
    })
    .unwrap();

    let mut leptos_options = leptos::config::get_configuration(Some(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/Leptos.toml"
    )))
    .unwrap()
    .leptos_options;
    leptos_options.site_addr = addr;

    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let app = Application::build_with_listener(config, leptos_options, Arc::new(clock), listener)
        .await
        .unwrap();
    tokio::spawn(app.serve(std::future::pending()));

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        // `localhost` must reach this app's IPv4 listener, whatever the resolver prefers.
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();

    TestApp {
        origin,
        addr,
        client,
        _data: data,
    }
}
