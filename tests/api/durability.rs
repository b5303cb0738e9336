//! The real binary, killed with SIGKILL in the middle of traffic and restarted on the same
//! database, keeps every connection and session.

use std::time::Duration;

use qentrah_dev_workspace::Endpoint;
use tokio::process::Command;

use crate::harness::{binary_app, start_binary};

/// SIGTERM (what an orchestrator sends before it kills an instance): the listener closes, the
/// request in flight is answered in full, then the process exits 0.
#[tokio::test]
async fn sigterm_drains_in_flight_requests_then_exits_cleanly() {
    let app = binary_app().await;
    let mut child = start_binary(&app, app.addr).await;
    app.connect(&app.client, "org_acme").await;
    app.ws
        .control
        .set_latency(Endpoint::Me, Duration::from_millis(1500));
    let in_flight = tokio::spawn({
        let client = app.client.clone();
        let url = app.url("/api/organization_overview");
        async move {
            let response = client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    });
    for _ in 0..500 {
        if app.ws.control.in_flight(Endpoint::Me) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.ws.control.in_flight(Endpoint::Me), 1);

    let pid = child.id().unwrap().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(sent.success());
    let mut refused = false;
    for _ in 0..100 {
        let probe = reqwest::Client::new()
            .get(format!("http://{}/healthz", app.addr))
            .send()
            .await;
        if probe.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "a draining instance takes no new connections");
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200, "the request in flight was answered: {body}");
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits once drained")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn sigkill_mid_traffic_loses_no_connection_or_session() {
    let app = binary_app().await;

    let mut child = start_binary(&app, app.addr).await;
    app.connect(&app.client, "org_acme").await;
    let other = app.new_browser();
    app.connect(&other, "org_harbor").await;
    assert_eq!(app.server_fn(&app.client, "clients").await.0, 200);

    // Traffic in flight (reads, and a refresh waiting at the Workspace), then SIGKILL. The kill
    // lands while the token call is in flight, so the Workspace drops it unprocessed. (Killed a
    // moment later, after the Workspace rotated the refresh token but before the app stored the
    // new one, no client could keep the connection: the README's production section says so.)
    app.ws.control.expire_access_tokens("org_acme");
    app.ws
        .control
        .set_latency(Endpoint::Token, Duration::from_millis(500));
    // Requests cut off by the kill fail on the client side; only what survives matters.
    let traffic = (0..20).map(|_| {
        app.client
            .post(app.url("/api/dashboard"))
            .header("content-type", "application/x-www-form-urlencoded")
            .send()
    });
    let kill = async {
        for _ in 0..500 {
            if app.ws.control.in_flight(Endpoint::Token) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            app.ws.control.in_flight(Endpoint::Token),
            1,
            "a refresh in flight"
        );
        child.start_kill().unwrap(); // SIGKILL on Unix
    };
    let (_, _) = tokio::join!(futures::future::join_all(traffic), kill);
    child.wait().await.unwrap();
    app.ws.control.set_latency(Endpoint::Token, Duration::ZERO);

    let _restarted = start_binary(&app, app.addr).await;
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
