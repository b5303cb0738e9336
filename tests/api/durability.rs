//! The real binary, killed with SIGKILL in the middle of traffic and restarted on the same
//! database, keeps every connection and session.

use std::process::Stdio;
use std::time::Duration;

use qentrah_dev_workspace::DevWorkspaceConfig;
use tokio::process::{Child, Command};

use crate::harness::{TestApp, TEST_SESSION_SECRET};

async fn start_binary(app: &TestApp) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_qentrah-connect"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("QENTRAH_WORKSPACE_API_URL", &app.ws.base_url)
        .env("QENTRAH_CLIENT_ID", qentrah_dev_workspace::PUBLIC_CLIENT_ID)
        .env("PARTNER_APP_URL", &app.origin)
        .env("SESSION_SECRET", TEST_SESSION_SECRET)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", app.database_file.display()),
        )
        .env("LEPTOS_SITE_ADDR", app.addr.to_string())
        .env("RUST_LOG", "warn")
        // Leptos.toml lives at the project root.
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let probe = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(response) = probe
            .get(format!("http://{}/healthz", app.addr))
            .send()
            .await
        {
            if response.status() == 200 {
                return child;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the binary did not become healthy");
}

#[tokio::test]
async fn sigkill_mid_traffic_loses_no_connection_or_session() {
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let origin = format!("http://localhost:{}", addr.port());
    let ws = qentrah_dev_workspace::start(DevWorkspaceConfig::for_tests(&origin))
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let database_file = data.path().join("app.db");
    let app = TestApp::external(origin, addr, ws, database_file, data);

    let mut child = start_binary(&app).await;
    app.connect(&app.client, "org_acme").await;
    let other = app.new_browser();
    app.connect(&other, "org_harbor").await;
    assert_eq!(app.server_fn(&app.client, "clients").await.0, 200);

    // Traffic in flight (reads, and a refresh that writes), then SIGKILL.
    app.ws.control.expire_access_tokens("org_acme");
    // Requests cut off by the kill fail on the client side; only what survives matters.
    let traffic = (0..20).map(|_| {
        app.client
            .post(app.url("/api/dashboard"))
            .header("content-type", "application/x-www-form-urlencoded")
            .send()
    });
    let kill = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        child.start_kill().unwrap(); // SIGKILL on Unix
    };
    let (_, _) = tokio::join!(futures::future::join_all(traffic), kill);
    child.wait().await.unwrap();

    let _restarted = start_binary(&app).await;
    let (status, mine) = app.server_fn(&app.client, "connection_status").await;
    assert_eq!(
        (status, mine["organization_id"].as_str()),
        (200, Some("org_acme")),
        "session kept"
    );
    let (status, theirs) = app.server_fn(&other, "connection_status").await;
    assert_eq!(
        (status, theirs["organization_id"].as_str()),
        (200, Some("org_harbor"))
    );
    let (status, dashboard) = app.server_fn(&app.client, "dashboard").await;
    assert_eq!(status, 200, "the connection still works: {dashboard}");
    assert_eq!(app.server_fn(&other, "clients").await.0, 200);
}
