//! What a person sees: pages and server functions over the Workspace's data and every state.

use std::time::Duration;
use tokio::time::Instant;

use qentrah_dev_workspace::{Endpoint, Failure};
use serde_json::json;

use crate::harness::spawn_app;

fn failure(status: u16, body: &str) -> Failure {
    Failure {
        status,
        body: Some(body.to_owned()),
        content_type: None,
        headers: Default::default(),
    }
}

#[tokio::test]
async fn a_page_needing_all_three_resources_costs_one_round_trip() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    let latency = Duration::from_millis(300);
    for endpoint in [Endpoint::Me, Endpoint::Clients, Endpoint::Properties] {
        app.ws.control.set_latency(endpoint, latency);
    }
    let started = Instant::now();
    let (status, body) = app.server_fn(&app.client, "dashboard").await;
    let elapsed = started.elapsed();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["organization"]["name"], "Acme Property Group");
    assert_eq!(body["clients"]["records"].as_array().unwrap().len(), 12);
    assert_eq!(body["properties"]["records"].as_array().unwrap().len(), 8);
    // The three requests were in flight together; and, generously, under two round trips.
    assert_eq!(app.ws.control.counters().partner_api_peak_in_flight, 3);
    assert!(elapsed < latency * 2, "took {elapsed:?}");
}

#[tokio::test]
async fn pagination_is_followed_on_the_server() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_harbor").await;
    let (status, clients) = app.server_fn(&app.client, "clients").await;
    assert_eq!(status, 200);
    assert_eq!(clients["records"].as_array().unwrap().len(), 240);
    assert_eq!(
        clients["next_cursor"],
        serde_json::Value::Null,
        "all on one page"
    );
    let (_, properties) = app.server_fn(&app.client, "properties").await;
    assert_eq!(properties["records"].as_array().unwrap().len(), 180);
}

#[tokio::test]
async fn workspace_error_codes_become_what_the_ui_should_do() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;

    app.ws.control.set_app_approved(None, false);
    assert_eq!(
        app.server_fn(&app.client, "clients").await,
        (403, json!("AskWorkspaceAdmin"))
    );
    app.ws.control.set_app_approved(None, true);

    app.ws
        .control
        .withhold_scope("org_acme", "client:read", true);
    assert_eq!(
        app.server_fn(&app.client, "clients").await,
        (403, json!({"ScopeDenied": {"scope": "client:read"}}))
    );
    app.ws
        .control
        .withhold_scope("org_acme", "client:read", false);

    // Every error body shape the client must understand.
    app.ws.control.fail_next(
        Endpoint::Clients,
        1,
        failure(
            403,
            r#"{"error":{"code":"wrong_organization","message":"no"}}"#,
        ),
    );
    assert_eq!(
        app.server_fn(&app.client, "clients").await,
        (403, json!("WrongOrganization"))
    );
    app.ws.control.fail_next(
        Endpoint::Clients,
        1,
        failure(403, r#"{"code":"app_not_approved"}"#),
    );
    assert_eq!(
        app.server_fn(&app.client, "clients").await,
        (403, json!("AskWorkspaceAdmin"))
    );
    let (_, connection) = app.server_fn(&app.client, "connection_status").await;
    assert_eq!(
        connection["state"], "Connected",
        "none of those ends the grant"
    );

    // A deleted connection ends it: the stored connection says so too, not only this answer.
    app.ws.control.fail_next(
        Endpoint::Clients,
        1,
        failure(404, r#"{"error":"connection_not_found"}"#),
    );
    assert_eq!(
        app.server_fn(&app.client, "clients").await,
        (401, json!("ReconnectRequired"))
    );
    let (_, connection) = app.server_fn(&app.client, "connection_status").await;
    assert_eq!(connection["state"], "ReconnectRequired");
    assert_eq!(
        app.server_fn(&app.client, "organization_overview").await,
        (401, json!("ReconnectRequired")),
        "no more calls with the dead grant"
    );
}

#[tokio::test]
async fn workspace_faults_are_a_retryable_state_never_a_500() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    for (status, body) in [
        (200, "{\"data\": [{\"id\""),
        (200, "{\"rows\": []}"),
        (503, "<html>down</html>"),
        (500, ""),
    ] {
        app.ws
            .control
            .fail_next(Endpoint::Clients, 1, failure(status, body));
        assert_eq!(
            app.server_fn(&app.client, "clients").await,
            (503, json!("Retry")),
            "{status} {body}"
        );
    }
    assert_eq!(
        app.server_fn(&app.client, "clients").await.0,
        200,
        "retry works"
    );
}

#[tokio::test]
async fn pages_render_the_data_on_the_server_and_escape_it() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_tricky").await;
    for path in [
        "/",
        "/organization",
        "/clients",
        "/properties",
        "/connection",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let html = response.text().await.unwrap();
        assert!(
            !html.contains("<script>alert"),
            "{path} renders Workspace strings as text"
        );
        assert!(!html.contains("<img src=x"), "{path}");
    }
    let html = app
        .client
        .get(app.url("/clients"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("&lt;script&gt;alert"),
        "the name is there, escaped"
    );
    assert!(html.contains("شركة العقارات المتحدة"));
    let html = app
        .client
        .get(app.url("/organization"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("&lt;b&gt;Tricky&lt;/b&gt;"));
}

#[tokio::test]
async fn pages_without_a_connection_offer_to_authorize() {
    let app = spawn_app().await;
    for path in ["/organization", "/clients", "/properties"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(
            response.status(),
            200,
            "{path}: a page, not an error status"
        );
        let html = response.text().await.unwrap();
        assert!(html.contains("Authorize with Qentrah"), "{path}");
        assert!(
            html.contains(&format!("/api/auth/qentrah/start?return_to={path}")),
            "{path}"
        );
    }
}

/// A page reads its connection from the vault once, however many partner-API calls its server
/// functions make: the overview (`me` and the first page of two lists, three server functions)
/// and the organization page (the dashboard's three calls); a server function called over HTTP
/// too. Before, each call read and decrypted the row again.
#[tokio::test]
async fn a_page_reads_the_vault_once_however_many_calls_it_makes() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    let vault = app.state.as_ref().unwrap().connections.tokens().store();
    for path in ["/", "/organization"] {
        let (reads, calls) = (
            vault.reads(),
            app.ws.control.counters().partner_api_requests,
        );
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let html = response.text().await.unwrap();
        assert!(html.contains("Acme"), "{path} shows the organization");
        let calls = app.ws.control.counters().partner_api_requests - calls;
        assert_eq!(calls, 3, "{path}: me, clients, properties");
        assert_eq!(
            vault.reads() - reads,
            1,
            "{path}: one vault read for {calls} calls"
        );
    }
    let reads = vault.reads();
    let (status, body) = app.server_fn(&app.client, "dashboard").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(vault.reads() - reads, 1, "the dashboard over HTTP");
}
