//! The marketplace end to end, against the dev Workspace's: an install delivers an organization's
//! client and the app connects with it; an uninstall ends everything that installation left
//! behind (connection, flows, sessions, the sealed secret), with revocation attempted; a
//! reinstall's new client replaces the old one for good; every fault the Workspace can send gets
//! its answer and changes nothing; the delivered secret appears nowhere in clear.

use std::time::Duration;

use qentrah_connect::server::installations::InstallationRow;
use qentrah_dev_workspace::marketplace::{Delivery, Fault};
use qentrah_dev_workspace::DEV_WEBHOOK_SECRET;
use serde_json::json;

use crate::harness::{location, spawn_app_with, Options, TestApp};

async fn app() -> TestApp {
    spawn_app_with(Options {
        env: vec![("QENTRAH_WEBHOOK_SECRETS", DEV_WEBHOOK_SECRET.to_owned())],
        ..Options::default()
    })
    .await
}

/// The delivery once the Workspace is done with it; its last attempt's status.
async fn delivered(app: &TestApp, id: &str) -> (Delivery, u16) {
    let delivery = app
        .ws
        .control
        .delivered(id)
        .await
        .unwrap_or_else(|| panic!("delivery {id} still pending"));
    let status = delivery
        .attempts
        .last()
        .and_then(|a| a.status)
        .unwrap_or_default();
    (delivery, status)
}

/// Installs the app for `organization_id` at the Workspace and waits for the delivery; returns
/// the new client's id.
pub(crate) async fn install(app: &TestApp, organization_id: &str) -> String {
    let (installation, id) = app.ws.control.install(organization_id, None).unwrap();
    let (delivery, status) = delivered(app, &id).await;
    assert_eq!(status, 200, "{delivery:?}");
    assert_eq!(delivery.attempts.last().unwrap().answer, "installed");
    installation.client_id
}

async fn installations(app: &TestApp) -> Vec<InstallationRow> {
    app.state
        .as_ref()
        .unwrap()
        .installations
        .list()
        .await
        .unwrap()
}

/// The installation of `client_id` once its uninstall purge is done (at most ten seconds).
async fn purged(app: &TestApp, client_id: &str) -> InstallationRow {
    for _ in 0..200 {
        let rows = installations(app).await;
        if let Some(row) = rows
            .into_iter()
            .find(|r| r.client_id == client_id && r.purged_at.is_some())
        {
            return row;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the purge of {client_id} did not complete");
}

/// A whole flow for `organization_id`'s installation in `browser`; returns the authorization
/// URL it started with and where the app sent the browser at the end.
async fn connect_installed(
    app: &TestApp,
    browser: &reqwest::Client,
    organization_id: &str,
) -> (String, String) {
    let response = browser
        .get(app.url(&format!(
            "/api/auth/qentrah/start?organization_id={organization_id}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let authorize = location(&response);
    let callback = app.consent(&authorize, organization_id, "approve").await;
    let response = app.finish(browser, &callback).await;
    assert_eq!(response.status(), 303);
    (authorize, location(&response))
}

/// The app's `/admin/installations`, as this machine sees it.
async fn admin_page(app: &TestApp) -> String {
    let response = app
        .client
        .get(app.url("/admin/installations"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

fn query_value(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn an_installed_organization_connects_with_its_delivered_client() {
    let app = app().await;
    let client_id = install(&app, "org_acme").await;

    let (authorize, landed) = connect_installed(&app, &app.client, "org_acme").await;
    assert_eq!(
        query_value(&authorize, "client_id").as_deref(),
        Some(client_id.as_str())
    );
    assert_eq!(landed, "/");
    let (status, body) = app.server_fn(&app.client, "organization_overview").await;
    assert_eq!(status, 200, "{body}");
    // The code was redeemed by the installation's client, with its secret in the form
    // (client_secret_post), and the connection's row records that client.
    let exchanges: Vec<_> = app
        .ws
        .control
        .requests()
        .into_iter()
        .filter(|r| r.path == "/oauth/token")
        .collect();
    assert_eq!(exchanges.len(), 1);
    let form = &exchanges[0].form;
    assert!(
        form.contains(&("client_id".to_owned(), client_id.clone())),
        "{form:?}"
    );
    assert!(form.iter().any(|(k, _)| k == "client_secret"), "{form:?}");
    assert_eq!(exchanges[0].status, 200);

    // Without organization_id, or for an organization never installed, the configured client.
    let configured = app.start_flow(&app.new_browser(), None).await;
    assert_eq!(
        query_value(&configured, "client_id").as_deref(),
        Some(qentrah_dev_workspace::PUBLIC_CLIENT_ID)
    );
    let never = app
        .new_browser()
        .get(app.url("/api/auth/qentrah/start?organization_id=org_harbor"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        query_value(&location(&never), "client_id").as_deref(),
        Some(qentrah_dev_workspace::PUBLIC_CLIENT_ID)
    );
    // An organization id that is not one: a page saying so, no redirect.
    let bad = app
        .new_browser()
        .get(app.url("/api/auth/qentrah/start?organization_id=%3Cscript%3E"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("not valid"));
}

#[tokio::test]
async fn an_uninstall_ends_what_the_installation_left_behind_even_when_revocation_fails() {
    let app = app().await;
    let client_id = install(&app, "org_acme").await;
    let other = app.new_browser();
    connect_installed(&app, &app.client, "org_acme").await;
    // A second browser with a flow of that installation still in progress.
    let pending = other
        .get(app.url("/api/auth/qentrah/start?organization_id=org_acme"))
        .send()
        .await
        .unwrap();
    let pending_callback = app
        .consent(&location(&pending), "org_acme", "approve")
        .await;
    assert_eq!(app.database.count("connections").await, 1);

    let (_, id) = app.ws.control.uninstall("org_acme", None).unwrap();
    let (delivery, status) = delivered(&app, &id).await;
    assert_eq!(
        (status, delivery.attempts.last().unwrap().answer.as_str()),
        (200, "uninstalled")
    );
    let row = purged(&app, &client_id).await;

    // The Workspace deleted the client first, so the revocation with its credentials failed;
    // the purge completed anyway, and says so.
    assert!(
        row.purge_revocation
            .as_deref()
            .unwrap_or_default()
            .starts_with("failed"),
        "{row:?}"
    );
    let revocations: Vec<_> = app
        .ws
        .control
        .requests()
        .into_iter()
        .filter(|r| r.path == "/oauth/revoke")
        .collect();
    assert_eq!(revocations.len(), 1, "revocation attempted once");
    assert!(revocations[0]
        .form
        .contains(&("client_id".to_owned(), client_id.clone())));
    assert!(!row.holds_secret, "the sealed secret is erased");
    assert_eq!(row.status, "uninstalled");
    assert_eq!(app.database.count("connections").await, 0);
    assert_eq!(app.database.count("oauth_flows").await, 0);
    // The session bound to that organization is gone: the browser is not connected.
    assert_eq!(
        app.server_fn(&app.client, "connection_status").await,
        (401, json!("NotConnected"))
    );
    // The flow in progress cannot complete.
    let response = app.finish(&other, &pending_callback).await;
    assert_eq!(location(&response), "/connect/failed?reason=unknown_flow");
    assert_eq!(app.database.count("connections").await, 0);
    // Starting again for that organization: a page, no redirect, nothing sent to the Workspace.
    let before = app.ws.control.requests().len();
    let again = app
        .new_browser()
        .get(app.url("/api/auth/qentrah/start?organization_id=org_acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 403);
    assert!(again.headers().get("location").is_none());
    assert!(again
        .text()
        .await
        .unwrap()
        .contains("Qentrah Connect was uninstalled from this Workspace"));
    assert_eq!(app.ws.control.requests().len(), before);
    // The admin page tells it, and nothing secret.
    let page = admin_page(&app).await;
    assert!(
        page.contains(&client_id) && page.contains("uninstalled"),
        "{page}"
    );
    assert!(page.contains("revocation: failed"), "{page}");
}

#[tokio::test]
async fn a_reinstall_with_a_new_client_never_brings_the_old_one_back() {
    let app = app().await;
    let first = install(&app, "org_acme").await;
    let (_, id) = app.ws.control.uninstall("org_acme", None).unwrap();
    delivered(&app, &id).await;
    purged(&app, &first).await;
    let second = install(&app, "org_acme").await;
    assert_ne!(first, second);

    let (authorize, _) = connect_installed(&app, &app.client, "org_acme").await;
    assert_eq!(
        query_value(&authorize, "client_id").as_deref(),
        Some(second.as_str())
    );
    assert_eq!(app.server_fn(&app.client, "clients").await.0, 200);
    // The old install delivered again (a replay, with a fresh id and signature): ignored.
    let replayed = app.ws.control.replay_install("org_acme").unwrap();
    let (delivery, status) = delivered(&app, &replayed).await;
    assert_eq!(status, 200);
    assert_eq!(
        delivery.attempts.last().unwrap().answer,
        "already_installed"
    );
    let rows = installations(&app).await;
    let active: Vec<_> = rows.iter().filter(|r| r.status == "active").collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].client_id, second);
    assert!(rows
        .iter()
        .any(|r| r.client_id == first && r.status == "uninstalled"));
    // Still served by the new client.
    assert_eq!(app.server_fn(&app.client, "clients").await.0, 200);
}

#[tokio::test]
async fn a_deleted_client_at_refresh_marks_the_connection_uninstalled_not_a_reconnect_loop() {
    let app = app().await;
    install(&app, "org_acme").await;
    connect_installed(&app, &app.client, "org_acme").await;
    // The Workspace deletes the client, and its uninstall never reaches the app (refused).
    let (_, id) = app
        .ws
        .control
        .uninstall("org_acme", Some(Fault::MissingHeaders))
        .unwrap();
    assert_eq!(delivered(&app, &id).await.1, 401);
    app.clock.advance(Duration::from_secs(3600));

    let (status, body) = app.server_fn(&app.client, "clients").await;
    assert_eq!((status, body), (403, json!("Uninstalled")));
    let token_requests = app.ws.control.counters().token_requests;
    // The connection says so, and does not ask the Workspace again.
    let (status, view) = app.server_fn(&app.client, "connection_status").await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["state"], json!("Uninstalled"));
    assert_eq!(app.server_fn(&app.client, "clients").await.0, 403);
    assert_eq!(app.ws.control.counters().token_requests, token_requests);
}

#[tokio::test]
async fn every_marketplace_fault_gets_its_answer_and_changes_nothing() {
    let app = app().await;
    for fault in Fault::ALL {
        let before = installations(&app).await;
        let (installation, id) = app.ws.control.install("org_harbor", Some(fault)).unwrap();
        let (delivery, status) = delivered(&app, &id).await;
        assert_eq!(status, fault.expected_status(), "{fault:?}: {delivery:?}");
        let rows = installations(&app).await;
        let active = rows
            .iter()
            .any(|r| r.client_id == installation.client_id && r.status == "active");
        assert_eq!(active, fault.applies(), "{fault:?}: {rows:?}");
        if !fault.applies() {
            // Nothing of a refused delivery is stored.
            assert_eq!(rows.len(), before.len(), "{fault:?}: {rows:?}");
        }
        if fault == Fault::Duplicate {
            let answers: Vec<_> = delivery
                .attempts
                .iter()
                .map(|a| a.answer.as_str())
                .collect();
            assert_eq!(answers, ["installed", "duplicate"]);
        }
        // The Workspace uninstalls, correctly, before the next fault.
        let (_, id) = app.ws.control.uninstall("org_harbor", None).unwrap();
        assert_eq!(delivered(&app, &id).await.1, 200, "{fault:?}");
        assert!(
            !installations(&app)
                .await
                .iter()
                .any(|r| r.status == "active"),
            "{fault:?}"
        );
    }
    // Refused deliveries are listed on the admin page, by reason only.
    let page = admin_page(&app).await;
    assert!(page.contains("invalid_signature"), "{page}");
    assert!(page.contains("invalid_payload"), "{page}");
}

#[tokio::test]
async fn an_uninstall_that_overtakes_its_install_keeps_the_organization_uninstalled() {
    let app = app().await;
    let client = reqwest::Client::new();
    let answer: serde_json::Value = client
        .post(format!(
            "{}/__dev/marketplace/reorder?organization_id=org_tricky",
            app.ws.base_url
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<String> = answer["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    let (uninstall, first_status) = delivered(&app, &ids[0]).await;
    let (install, second_status) = delivered(&app, &ids[1]).await;
    assert_eq!((first_status, second_status), (200, 200));
    assert_eq!(uninstall.attempts[0].answer, "uninstalled_before_install");
    assert_eq!(install.attempts[0].answer, "tombstoned");
    assert!(!installations(&app)
        .await
        .iter()
        .any(|r| r.status == "active"));
    let start = app
        .new_browser()
        .get(app.url("/api/auth/qentrah/start?organization_id=org_tricky"))
        .send()
        .await
        .unwrap();
    assert_eq!(start.status(), 403);
}

#[tokio::test]
async fn the_admin_page_is_served_to_this_machine_only() {
    let app = app().await;
    install(&app, "org_acme").await;
    let page = app
        .client
        .get(app.url("/admin/installations"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    // Through a proxy (it says so), even one on this machine: refused.
    let proxied = app
        .client
        .get(app.url("/admin/installations"))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 403);
}

/// The delivered secret appears nowhere in clear: not in the database files, not in the
/// binary's trace-level log, not in any answer (the Workspace notes it as issued).
#[tokio::test]
async fn a_delivered_client_secret_appears_nowhere_in_clear() {
    let app = crate::harness::binary_app().await;
    let addr = app.addr;
    let log = std::env::temp_dir().join(format!("qentrah-marketplace-trace-{}.log", addr.port()));
    let _binary = crate::harness::start_binary_with(
        env!("CARGO_BIN_EXE_qentrah-connect"),
        &app,
        addr,
        &[
            ("QENTRAH_WEBHOOK_SECRETS", DEV_WEBHOOK_SECRET.to_owned()),
            ("RUST_LOG", "trace".to_owned()),
        ],
        Some(&log),
    )
    .await;
    let (_, id) = app.ws.control.install("org_acme", None).unwrap();
    let (delivery, status) = delivered(&app, &id).await;
    assert_eq!(status, 200, "{delivery:?}");
    let secret = delivery.client_secret.clone().unwrap();
    let (_, landed) = connect_installed(&app, &app.client, "org_acme").await;
    assert_eq!(landed, "/");
    let page = admin_page(&app).await;
    assert!(!page.contains(&secret));
    let (_, id) = app.ws.control.uninstall("org_acme", None).unwrap();
    delivered(&app, &id).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let raw = app.database.raw_contents().await;
    assert!(
        !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the client secret is in the database in clear"
    );
    let logged = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(
        logged.contains("webhook delivery received"),
        "the trace log was captured"
    );
    assert!(
        !logged.contains(&secret),
        "the client secret is in the trace log"
    );
}

/// A delivery the app could not take (its database locked: 503) is retried on the schedule and
/// applied; redelivering it afterwards (same id, new timestamp and signature) is a duplicate.
#[tokio::test]
async fn a_refused_delivery_is_retried_and_a_redelivery_is_a_duplicate() {
    let app = app().await;
    let Some(release) = app.database.hold_write_lock().await else {
        return; // SQLite's whole-database write lock; PostgreSQL has nothing like it.
    };
    let (installation, id) = app.ws.control.install("org_acme", None).unwrap();
    for _ in 0..200 {
        let attempted = app
            .ws
            .control
            .deliveries()
            .into_iter()
            .any(|d| d.id == id && !d.attempts.is_empty());
        if attempted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(release);
    let (delivery, status) = delivered(&app, &id).await;
    let answers: Vec<_> = delivery
        .attempts
        .iter()
        .map(|a| (a.status, a.answer.as_str()))
        .collect();
    assert_eq!(
        answers,
        [
            (Some(503), "temporarily_unavailable"),
            (Some(200), "installed")
        ]
    );
    assert_eq!((status, delivery.state.as_str()), (200, "delivered"));

    app.ws.control.redeliver(&id).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (delivery, _) = delivered(&app, &id).await;
    assert_eq!(delivery.attempts.last().unwrap().answer, "duplicate");
    let rows = installations(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(
        (rows[0].client_id.as_str(), rows[0].status.as_str()),
        (installation.client_id.as_str(), "active")
    );
}
