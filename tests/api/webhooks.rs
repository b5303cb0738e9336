//! `POST /api/webhooks/qentrah`: marketplace install deliveries, signed (Standard Webhooks),
//! verified before they are parsed, applied once. No forged, replayed, duplicated, late or
//! reordered delivery installs, resurrects or breaks an installation; the delivered secret is
//! sealed; every fault has its status and changes nothing.

use qentrah_connect::server::installations::signature::sign;
use qentrah_connect::server::installations::InstallationRow;
use qentrah_connect::server::platform::clock::{to_unix, Clock};
use qentrah_connect::server::platform::config::WebhookSecret;
use serde_json::{json, Value};

use crate::harness::{spawn_app, spawn_app_with, Options, TestApp};

const SIGNING_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const CANARY_SECRET: &str = "canary-client-secret-5f1e0c2a9b";
const PATH: &str = "/api/webhooks/qentrah";

async fn app() -> TestApp {
    spawn_app_with(Options {
        env: vec![("QENTRAH_WEBHOOK_SECRETS", SIGNING_SECRET.to_owned())],
        ..Options::default()
    })
    .await
}

fn install(organization: &str, client: &str, at: Option<&str>) -> String {
    let mut body = json!({
        "type": "app.installed",
        "data": {
            "organizationId": organization,
            "installationId": format!("inst_{client}"),
            "clientId": client,
            "clientSecret": CANARY_SECRET,
        }
    });
    if let Some(at) = at {
        body["timestamp"] = json!(at);
    }
    body.to_string()
}

fn uninstall(organization: &str, client: Option<&str>) -> String {
    let mut data = json!({ "organizationId": organization });
    if let Some(client) = client {
        data["clientId"] = json!(client);
    }
    json!({ "type": "app.uninstalled", "data": data }).to_string()
}

/// A delivery as the Workspace sends it: signed with `secret`, stamped `skew` seconds from now.
struct Delivery<'a> {
    id: &'a str,
    body: String,
    secret: &'a str,
    skew: i64,
    content_type: &'a str,
}

impl<'a> Delivery<'a> {
    fn new(id: &'a str, body: String) -> Self {
        Self {
            id,
            body,
            secret: SIGNING_SECRET,
            skew: 0,
            content_type: "application/json",
        }
    }
}

async fn deliver(
    app: &TestApp,
    delivery: &Delivery<'_>,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let timestamp = to_unix(app.clock.now()) + delivery.skew;
    let secret = WebhookSecret::parse(delivery.secret).unwrap();
    let signature = sign(&secret, delivery.id, timestamp, delivery.body.as_bytes());
    send(
        app,
        delivery,
        &[
            ("webhook-id", delivery.id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ],
    )
    .await
}

async fn send(
    app: &TestApp,
    delivery: &Delivery<'_>,
    headers: &[(&str, String)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = app
        .client
        .post(app.url(PATH))
        .header("content-type", delivery.content_type)
        .body(delivery.body.clone());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    assert!(!text.contains(CANARY_SECRET), "{text}");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    )
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

fn active(rows: &[InstallationRow]) -> Vec<&str> {
    rows.iter()
        .filter(|r| r.status == "active")
        .map(|r| r.client_id.as_str())
        .collect()
}

#[tokio::test]
async fn webhooks_are_off_without_a_signing_secret() {
    let app = spawn_app().await;
    let (status, _, _) = deliver(
        &app,
        &Delivery::new("msg_1", install("org_acme", "app_1", None)),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_signed_install_is_applied_once_and_its_secret_is_sealed() {
    let app = app().await;
    let first = Delivery::new(
        "msg_install_1",
        install("org_acme", "app_1", Some("2026-12-01T10:00:00Z")),
    );
    let (status, body, headers) = deliver(&app, &first).await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"received": true, "applied": true, "reason": "installed"})
        )
    );
    assert_eq!(headers["cache-control"], "no-store");
    assert!(headers.get("set-cookie").is_none());
    // A retry (the same id, a new timestamp and signature), even with another body.
    let mut retry = Delivery::new("msg_install_1", install("org_acme", "app_2", None));
    retry.skew = 60;
    let (status, body, _) = deliver(&app, &retry).await;
    assert_eq!(
        (status, &body["applied"], &body["reason"]),
        (200, &json!(false), &json!("duplicate"))
    );

    let rows = installations(&app).await;
    assert_eq!(active(&rows), ["app_1"]);
    assert!(rows[0].holds_secret);
    assert_eq!(rows[0].installation_id.as_deref(), Some("inst_app_1"));
    // Sealed: the secret is nowhere in the table in clear.
    let Some(state) = app.state.as_ref() else {
        unreachable!()
    };
    let stored: Vec<(Vec<u8>,)> = match &state.db {
        qentrah_connect::server::platform::db::Db::Sqlite(pool) => {
            sqlx::query_as("SELECT client_secret FROM installations")
                .fetch_all(pool)
                .await
                .unwrap()
        }
        qentrah_connect::server::platform::db::Db::Postgres(pool) => {
            sqlx::query_as("SELECT client_secret FROM installations")
                .fetch_all(pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(stored.len(), 1);
    assert!(!stored[0]
        .0
        .windows(CANARY_SECRET.len())
        .any(|w| w == CANARY_SECRET.as_bytes()));
}

#[tokio::test]
async fn every_fault_gets_its_status_and_changes_nothing() {
    let app = app().await;
    let body = install("org_acme", "app_1", None);
    let signed = |id| Delivery::new(id, body.clone());

    // Forged, late, early, altered, or signed with what it carries.
    let mut cases: Vec<Delivery<'_>> = Vec::new();
    let mut wrong_secret = signed("msg_f1");
    wrong_secret.secret = "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    cases.push(wrong_secret);
    let mut stale = signed("msg_f2");
    stale.skew = -301;
    cases.push(stale);
    let mut future = signed("msg_f3");
    future.skew = 301;
    cases.push(future);
    for delivery in &cases {
        let (status, body, _) = deliver(&app, delivery).await;
        assert_eq!(
            (status, body),
            (401, json!({"error": {"code": "invalid_signature"}})),
            "{}",
            delivery.id
        );
    }
    // Signed with the delivered client secret itself (circular): not a configured secret.
    let circular_secret = format!(
        "whsec_{}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            CANARY_SECRET.as_bytes()
        )
    );
    let mut circular = signed("msg_f4");
    circular.secret = &circular_secret;
    assert_eq!(deliver(&app, &circular).await.0, 401);
    // The body changed after signing.
    let timestamp = to_unix(app.clock.now()).to_string();
    let secret = WebhookSecret::parse(SIGNING_SECRET).unwrap();
    let signature = sign(
        &secret,
        "msg_f5",
        timestamp.parse().unwrap(),
        body.as_bytes(),
    );
    let altered = Delivery::new("msg_f5", body.replace("app_1", "app_9"));
    let good_headers = [
        ("webhook-id", "msg_f5".to_owned()),
        ("webhook-timestamp", timestamp.clone()),
        ("webhook-signature", signature.clone()),
    ];
    assert_eq!(send(&app, &altered, &good_headers).await.0, 401);
    // Each header missing in turn.
    for missing in 0..3 {
        let headers: Vec<_> = good_headers
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != missing)
            .map(|(_, h)| h.clone())
            .collect();
        assert_eq!(
            send(&app, &signed("msg_f5"), &headers).await.0,
            401,
            "{missing}"
        );
    }

    // Authentic but unusable.
    let (status, body, _) = deliver(&app, &Delivery::new("msg_f6", "not json".to_owned())).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"error": {"code": "invalid_payload", "field": "body"}})
        )
    );
    let bad_client = install("org_acme", "app 1 <script>", None);
    let (status, body, _) = deliver(&app, &Delivery::new("msg_f7", bad_client)).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"error": {"code": "invalid_payload", "field": "data.clientId"}})
        )
    );
    let (status, body, _) = deliver(
        &app,
        &Delivery::new(
            "msg_f8",
            json!({"type": "app.renamed", "data": {}}).to_string(),
        ),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"received": true, "applied": false, "reason": "unknown_type"})
        )
    );
    let huge = Delivery::new(
        "msg_f9",
        format!("{{\"pad\":\"{}\"}}", "x".repeat(300 * 1024)),
    );
    let (status, body, _) = deliver(&app, &huge).await;
    assert_eq!(
        (status, body),
        (413, json!({"error": {"code": "payload_too_large"}}))
    );
    let mut text = signed("msg_f10");
    text.content_type = "text/plain";
    assert_eq!(deliver(&app, &text).await.0, 415);
    let response = app.client.get(app.url(PATH)).send().await.unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");

    assert!(
        installations(&app).await.is_empty(),
        "nothing was installed"
    );
}

#[tokio::test]
async fn reordered_and_replayed_deliveries_cannot_resurrect_an_installation() {
    let app = app().await;
    let reason = |body: &Value| body["reason"].as_str().unwrap_or_default().to_owned();
    // The uninstall overtook its install.
    let (_, body, _) = deliver(
        &app,
        &Delivery::new("msg_1", uninstall("org_acme", Some("app_1"))),
    )
    .await;
    assert_eq!(reason(&body), "uninstalled_before_install");
    let (_, body, _) = deliver(
        &app,
        &Delivery::new("msg_2", install("org_acme", "app_1", None)),
    )
    .await;
    assert_eq!(
        (reason(&body), &body["applied"]),
        ("tombstoned".to_owned(), &json!(false))
    );
    // A new client installs; an older install (by event time) cannot take its place.
    let (_, body, _) = deliver(
        &app,
        &Delivery::new(
            "msg_3",
            install("org_acme", "app_2", Some("2026-12-02T10:00:00Z")),
        ),
    )
    .await;
    assert_eq!(reason(&body), "installed");
    let (_, body, _) = deliver(
        &app,
        &Delivery::new(
            "msg_4",
            install("org_acme", "app_3", Some("2026-12-01T10:00:00Z")),
        ),
    )
    .await;
    assert_eq!(reason(&body), "stale");
    // A replay of the first install under a new id is still a tombstone's.
    let (_, body, _) = deliver(
        &app,
        &Delivery::new("msg_5", install("org_acme", "app_1", None)),
    )
    .await;
    assert_eq!(reason(&body), "tombstoned");
    assert_eq!(active(&installations(&app).await), ["app_2"]);
    // Uninstall without a client: the active one.
    let (_, body, _) = deliver(&app, &Delivery::new("msg_6", uninstall("org_acme", None))).await;
    assert_eq!(reason(&body), "uninstalled");
    let rows = installations(&app).await;
    assert!(active(&rows).is_empty(), "{rows:?}");
    // With event times, an install older than an uninstall that arrived first stays out, and
    // so does a late copy of it.
    let timed_uninstall = json!({
        "type": "app.uninstalled",
        "timestamp": "2026-12-03T10:00:00Z",
        "data": { "organizationId": "org_initech" }
    })
    .to_string();
    let (_, body, _) = deliver(&app, &Delivery::new("msg_8", timed_uninstall)).await;
    assert_eq!(reason(&body), "no_active_installation");
    // The first is stale; it is kept as a tombstone, so a late copy is a tombstone's.
    for (id, expected) in [("msg_9", "stale"), ("msg_10", "tombstoned")] {
        let late = install("org_initech", "app_4", Some("2026-12-02T10:00:00Z"));
        let (_, body, _) = deliver(&app, &Delivery::new(id, late)).await;
        assert_eq!(
            (reason(&body), &body["applied"]),
            (expected.to_owned(), &json!(false))
        );
    }
    let (_, body, _) = deliver(
        &app,
        &Delivery::new(
            "msg_11",
            install("org_initech", "app_5", Some("2026-12-04T10:00:00Z")),
        ),
    )
    .await;
    assert_eq!(reason(&body), "installed");
    // Another organization is untouched by all of it.
    let (_, body, _) = deliver(
        &app,
        &Delivery::new("msg_7", install("org_globex", "app_1", None)),
    )
    .await;
    assert_eq!(reason(&body), "installed");
    let rows = installations(&app).await;
    let mut actives = active(&rows);
    actives.sort_unstable();
    assert_eq!(actives, ["app_1", "app_5"]);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_id_apply_once() {
    let app = app().await;
    let deliveries = (0..20).map(|i| {
        let app = &app;
        async move {
            let mut delivery = Delivery::new("msg_same", install("org_acme", "app_1", None));
            delivery.skew = i;
            deliver(app, &delivery).await
        }
    });
    let answers = futures::future::join_all(deliveries).await;
    let applied = answers
        .iter()
        .filter(|(status, body, _)| *status == 200 && body["applied"] == json!(true))
        .count();
    let duplicates = answers
        .iter()
        .filter(|(_, body, _)| body["reason"] == json!("duplicate"))
        .count();
    assert_eq!((applied, duplicates), (1, 19), "{answers:?}");
    assert_eq!(active(&installations(&app).await), ["app_1"]);
}

#[tokio::test]
async fn the_webhook_route_has_a_rate_limit_of_its_own() {
    let app = app().await;
    let forged = Delivery::new("msg_flood", install("org_acme", "app_1", None));
    let limit = qentrah_connect::server::web::WEBHOOK_RATE_LIMIT_PER_MINUTE;
    for _ in 0..limit {
        assert_eq!(send(&app, &forged, &[]).await.0, 401);
    }
    let (status, body, headers) = send(&app, &forged, &[]).await;
    assert_eq!(
        (status, body),
        (429, json!({"error": {"code": "rate_limited"}}))
    );
    assert!(headers.contains_key("retry-after"));
    // The OAuth routes keep their own budget.
    let response = app
        .client
        .get(app.url("/api/auth/qentrah/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
}

/// A delivery that waits on a locked database is answered 503 with `Retry-After` within the
/// answer budget, never left hanging; nothing of it is recorded, so the retry applies it.
#[tokio::test]
async fn a_delivery_behind_a_locked_database_is_answered_503_and_its_retry_applies() {
    let app = app().await;
    let Some(release) = app.database.hold_write_lock().await else {
        return; // SQLite's whole-database write lock; PostgreSQL has nothing like it.
    };
    let delivery = Delivery::new("msg_locked", install("org_acme", "app_locked", None));
    let (status, body, headers) = deliver(&app, &delivery).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], json!("temporarily_unavailable"));
    assert!(headers.contains_key("retry-after"));
    drop(release);
    let (status, body, _) = deliver(&app, &delivery).await;
    assert_eq!((status, body["reason"].clone()), (200, json!("installed")));
}
