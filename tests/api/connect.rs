//! The OAuth flow, the vault and refresh, against the dev Workspace.

use std::time::Duration;

use qentrah_dev_workspace::{Endpoint, Failure, TokenQuirks};
use serde_json::json;

use crate::harness::{location, spawn_app, spawn_app_with, Options};

#[tokio::test]
async fn happy_path_connects_and_reads_the_organization() {
    let app = spawn_app().await;
    let authorize = app.start_flow(&app.client, Some("/clients?x=1")).await;

    // Exactly the brief's parameters, to the configured Workspace.
    let url = url::Url::parse(&authorize).unwrap();
    assert!(authorize.starts_with(&format!("{}/oauth/authorize?", app.ws.base_url)));
    let names: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
    assert_eq!(
        names,
        [
            "response_type",
            "client_id",
            "redirect_uri",
            "scope",
            "resource",
            "state",
            "code_challenge",
            "code_challenge_method"
        ]
    );

    let callback = app.consent(&authorize, "org_acme", "approve").await;
    assert!(
        callback.contains("iss="),
        "the Workspace sends iss (RFC 9207)"
    );
    let response = app.finish(&app.client, &callback).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/clients?x=1", "return_to honoured");
    assert_eq!(response.headers()["referrer-policy"], "no-referrer");
    assert_eq!(response.headers()["cache-control"], "no-store");

    let (status, connection) = app.server_fn(&app.client, "connection_status").await;
    assert_eq!(status, 200, "{connection}");
    assert_eq!(connection["organization_id"], "org_acme");
    assert_eq!(connection["state"], "Connected");
    let (status, org) = app.server_fn(&app.client, "organization_overview").await;
    assert_eq!(
        (status, org["name"].as_str()),
        (200, Some("Acme Property Group"))
    );

    let counters = app.ws.control.counters();
    assert_eq!(counters.authorization_code_grants, 1);
    assert_eq!(counters.refresh_grants, 0);
}

#[tokio::test]
async fn session_id_changes_when_the_browser_is_bound() {
    let app = spawn_app().await;
    let start = app
        .client
        .get(app.url("/api/auth/qentrah/start"))
        .send()
        .await
        .unwrap();
    let before = start.headers()["set-cookie"].to_str().unwrap().to_owned();
    let callback = app.consent(&location(&start), "org_acme", "approve").await;
    let response = app.finish(&app.client, &callback).await;
    let after = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let id = |cookie: &str| cookie.split(';').next().unwrap().to_owned();
    assert!(after.starts_with("qentrah_session="), "{after}");
    assert_ne!(
        id(&before),
        id(&after),
        "a fresh session id after the flow (no fixation)"
    );
    assert!(after.contains("HttpOnly") && after.contains("SameSite=Lax"));
}

async fn assert_refused(
    app: &crate::harness::TestApp,
    browser: &reqwest::Client,
    callback: &str,
    reason: &str,
) {
    assert_redirected_to_failure(app, browser, callback, reason).await;
    let (status, _) = app.server_fn(browser, "connection_status").await;
    assert_eq!(status, 401, "nothing connected");
}

async fn assert_redirected_to_failure(
    app: &crate::harness::TestApp,
    browser: &reqwest::Client,
    callback: &str,
    reason: &str,
) {
    let response = app.finish(browser, callback).await;
    assert_eq!(response.status(), 303, "{callback}");
    assert_eq!(
        location(&response),
        format!("/connect/failed?reason={reason}"),
        "{callback}"
    );
}

#[tokio::test]
async fn callback_refusals_make_no_token_request() {
    let app = spawn_app().await;
    // Forged callbacks carry the right `iss`, as the Workspace's own would.
    let iss: String = url::form_urlencoded::byte_serialize(app.ws.base_url.as_bytes()).collect();
    let cb = format!("{}?iss={iss}", app.url("/api/auth/qentrah/callback"));

    // No flow at all, a missing state, an unknown state.
    assert_refused(&app, &app.client, &format!("{cb}&code=abc"), "unknown_flow").await;
    app.start_flow(&app.client, None).await;
    assert_refused(
        &app,
        &app.client,
        &format!("{cb}&code=abc&state=forged"),
        "unknown_flow",
    )
    .await;
    assert_refused(&app, &app.client, &format!("{cb}&code=abc"), "unknown_flow").await;
    assert_refused(
        &app,
        &app.client,
        &format!("{cb}&state=abc"),
        "invalid_response",
    )
    .await;

    // error= (the person denied), with a way to try again.
    let authorize = app.start_flow(&app.client, None).await;
    let denied = app.consent(&authorize, "org_acme", "deny").await;
    assert!(denied.contains("error=access_denied"));
    assert_refused(&app, &app.client, &denied, "access_denied").await;

    // A wrong iss (RFC 9207 mix-up): refused even with a valid state and code.
    app.ws.control.set_wrong_iss(true);
    let authorize = app.start_flow(&app.client, None).await;
    let wrong_iss = app.consent(&authorize, "org_acme", "approve").await;
    assert_refused(&app, &app.client, &wrong_iss, "wrong_issuer").await;
    app.ws.control.set_wrong_iss(false);

    // No iss at all, from a Workspace that always sends it (RFC 9207 §2.4): refused too, or a
    // mix-up attacker would only have to leave it out.
    let authorize = app.start_flow(&app.client, None).await;
    let callback = app.consent(&authorize, "org_acme", "approve").await;
    let mut without_iss = url::Url::parse(&callback).unwrap();
    let kept: Vec<(String, String)> = without_iss
        .query_pairs()
        .filter(|(name, _)| name != "iss")
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    assert!(kept.len() < without_iss.query_pairs().count(), "{callback}");
    without_iss.query_pairs_mut().clear().extend_pairs(kept);
    assert_refused(&app, &app.client, without_iss.as_str(), "wrong_issuer").await;

    // A foreign callback: a valid code and state from another browser's flow.
    let other = app.new_browser();
    let authorize = app.start_flow(&other, None).await;
    let foreign = app.consent(&authorize, "org_acme", "approve").await;
    assert_refused(&app, &app.client, &foreign, "unknown_flow").await;

    assert_eq!(
        app.ws.control.counters().token_requests,
        0,
        "no token request was made"
    );

    // The owner can still finish it; replaying it afterwards is refused without a token request.
    let response = app.finish(&other, &foreign).await;
    assert_eq!(location(&response), "/");
    assert_eq!(app.ws.control.counters().token_requests, 1);
    assert_redirected_to_failure(&app, &other, &foreign, "unknown_flow").await;
    assert_eq!(
        app.ws.control.counters().token_requests,
        1,
        "replay made no token request"
    );
}

#[tokio::test]
async fn expired_flow_is_refused() {
    let app = spawn_app().await;
    let authorize = app.start_flow(&app.client, None).await;
    let callback = app.consent(&authorize, "org_acme", "approve").await;
    app.clock.advance(Duration::from_secs(601));
    assert_refused(&app, &app.client, &callback, "unknown_flow").await;
    assert_eq!(app.ws.control.counters().token_requests, 0);
}

#[tokio::test]
async fn token_response_without_organization_id_stores_nothing() {
    let app = spawn_app().await;
    app.ws.control.set_token_quirks(TokenQuirks {
        omit_organization_id: true,
        ..TokenQuirks::default()
    });
    let authorize = app.start_flow(&app.client, None).await;
    let callback = app.consent(&authorize, "org_acme", "approve").await;
    assert_refused(&app, &app.client, &callback, "missing_organization").await;
    assert_eq!(app.database.count("connections").await, 0);
    // The grant nothing will use is revoked (in the background).
    for _ in 0..300 {
        if app.ws.control.counters().revocations > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.ws.control.counters().revocations, 1);
    assert_eq!(
        app.ws.control.connections()[0].status,
        qentrah_dev_workspace::state::GrantStatus::Revoked
    );
}

/// Without a refresh token (and here without `expires_in`, so the app only guesses the
/// lifetime), the access token is used until the Workspace refuses it; then, and not before,
/// the connection asks to be reconnected.
#[tokio::test]
async fn a_grant_without_a_refresh_token_lasts_until_the_workspace_refuses_it() {
    let app = spawn_app().await;
    app.ws.control.set_token_quirks(TokenQuirks {
        omit_refresh_token: true,
        omit_expires_in: true,
        ..TokenQuirks::default()
    });
    app.connect(&app.client, "org_acme").await;
    app.clock.advance(Duration::from_secs(1800));
    let (status, body) = app.server_fn(&app.client, "organization_overview").await;
    assert_eq!(status, 200, "past the guessed lifetime, still good: {body}");

    app.ws.control.expire_access_tokens("org_acme");
    let (status, body) = app.server_fn(&app.client, "organization_overview").await;
    assert_eq!((status, body), (401, json!("ReconnectRequired")));
    let (status, connection) = app.server_fn(&app.client, "connection_status").await;
    assert_eq!(status, 200);
    assert_eq!(connection["state"], "ReconnectRequired", "{connection}");
    let counters = app.ws.control.counters();
    assert_eq!((counters.refresh_grants, counters.token_errors), (0, 0));
}

#[tokio::test]
async fn disconnecting_a_grant_without_a_refresh_token_revokes_its_access_token() {
    let app = spawn_app().await;
    app.ws.control.set_token_quirks(TokenQuirks {
        omit_refresh_token: true,
        ..TokenQuirks::default()
    });
    app.connect(&app.client, "org_acme").await;
    let (status, _) = app.server_fn(&app.client, "disconnect").await;
    assert_eq!(status, 200);
    assert_eq!(app.ws.control.counters().revocations, 1);
    let log = app.ws.control.requests();
    let revoke = log.iter().find(|r| r.path == "/oauth/revoke").unwrap();
    assert!(revoke
        .form
        .iter()
        .any(|(k, v)| k == "token_type_hint" && v == "access_token"));
    // And it was the right token: it no longer opens the partner API.
    let access_token = app
        .ws
        .control
        .issued_secrets()
        .into_iter()
        .find(|s| s.starts_with("qat_"))
        .unwrap();
    let status = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/partner/organizations/org_acme/me",
            app.ws.base_url
        ))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_client_error(), "{status}");
}

/// Only the Workspace's own words end a grant: a bare 401 twice (a proxy's, say) answers
/// "reconnect" for that request but keeps the connection; `connection_expired` for a token it
/// had just issued marks the stored connection.
#[tokio::test]
async fn a_token_refused_after_its_refresh_ends_the_grant_only_when_the_workspace_says_so() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    let unauthorized = |body: Option<&str>| Failure {
        status: 401,
        body: body.map(str::to_owned),
        content_type: None,
        headers: Default::default(),
    };

    app.ws
        .control
        .fail_next(Endpoint::Clients, 2, unauthorized(Some("")));
    let (status, _) = app.server_fn(&app.client, "clients").await;
    assert_eq!(status, 401);
    let (_, connection) = app.server_fn(&app.client, "connection_status").await;
    assert_eq!(connection["state"], "Connected", "{connection}");
    let (status, _) = app.server_fn(&app.client, "clients").await;
    assert_eq!(status, 200);

    app.ws.control.fail_next(
        Endpoint::Clients,
        2,
        unauthorized(Some(
            r#"{"error":{"code":"connection_expired","message":"expired"}}"#,
        )),
    );
    let (status, body) = app.server_fn(&app.client, "clients").await;
    assert_eq!((status, body), (401, json!("ReconnectRequired")));
    let (_, connection) = app.server_fn(&app.client, "connection_status").await;
    assert_eq!(connection["state"], "ReconnectRequired", "{connection}");
    assert_eq!(app.ws.control.counters().refresh_grants, 2);
}

#[tokio::test]
async fn two_tabs_finishing_in_reverse_order_both_work() {
    let app = spawn_app().await;
    let first = app.start_flow(&app.client, Some("/first")).await;
    let second = app.start_flow(&app.client, Some("/second")).await;
    let first_cb = app.consent(&first, "org_acme", "approve").await;
    let second_cb = app.consent(&second, "org_harbor", "approve").await;

    let response = app.finish(&app.client, &second_cb).await;
    assert_eq!(location(&response), "/second");
    let response = app.finish(&app.client, &first_cb).await;
    assert_eq!(location(&response), "/first");
    let (_, connection) = app.server_fn(&app.client, "connection_status").await;
    assert_eq!(
        connection["organization_id"], "org_acme",
        "the last finished flow wins"
    );
}

#[tokio::test]
async fn confidential_client_authenticates_at_the_token_endpoint() {
    let app = spawn_app_with(Options {
        client_id: Some(qentrah_dev_workspace::CONFIDENTIAL_CLIENT_ID),
        client_secret: Some(qentrah_dev_workspace::CONFIDENTIAL_CLIENT_SECRET),
        ..Options::default()
    })
    .await;
    assert_eq!(app.connect(&app.client, "org_acme").await, "/");
    let (status, org) = app.server_fn(&app.client, "organization_overview").await;
    assert_eq!((status, org["id"].as_str()), (200, Some("org_acme")));
    app.clock.advance(Duration::from_secs(3600));
    let (status, _) = app.server_fn(&app.client, "organization_overview").await;
    assert_eq!(status, 200, "refreshed");
    let (status, _) = app.server_fn(&app.client, "disconnect").await;
    assert_eq!(status, 200);
    let counters = app.ws.control.counters();
    assert_eq!((counters.refresh_grants, counters.revocations), (1, 1));

    // The brief gives client_id and client_secret as form fields (client_secret_post), on the
    // code exchange, the refresh and the revocation alike; never both methods at once.
    let log = app.ws.control.requests();
    let calls: Vec<_> = log
        .iter()
        .filter(|r| r.path == "/oauth/token" || r.path == "/oauth/revoke")
        .collect();
    assert_eq!(calls.len(), 3, "exchange, refresh, revocation");
    for call in calls {
        assert_eq!(call.authorization, None, "{}", call.path);
        let field = |name: &str| {
            call.form
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            field("client_id"),
            Some(qentrah_dev_workspace::CONFIDENTIAL_CLIENT_ID),
            "{}",
            call.path
        );
        assert!(field("client_secret").is_some(), "{}", call.path);
        if call.path == "/oauth/token" {
            assert!(field("resource").is_some_and(|v| v.ends_with("/api/v1/partner")));
        }
    }
}

#[tokio::test]
async fn public_client_sends_no_secret() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    let log = app.ws.control.requests();
    let token_request = log.iter().find(|r| r.path == "/oauth/token").unwrap();
    assert_eq!(token_request.authorization, None);
    assert!(!token_request.form.iter().any(|(k, _)| k == "client_secret"));
    assert!(token_request
        .form
        .iter()
        .any(|(k, v)| k == "client_id" && v == qentrah_dev_workspace::PUBLIC_CLIENT_ID));
}

#[tokio::test]
async fn access_token_is_refreshed_ahead_of_expiry_with_rotation() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    // 3600 s tokens; 30 s before expiry the app refreshes first (margin 60 s).
    app.clock.advance(Duration::from_secs(3570));
    let (status, _) = app.server_fn(&app.client, "organization_overview").await;
    assert_eq!(status, 200);
    assert_eq!(app.ws.control.counters().refresh_grants, 1);
    let refresh = app
        .ws
        .control
        .requests()
        .into_iter()
        .find(|r| {
            r.form
                .iter()
                .any(|(k, v)| k == "grant_type" && v == "refresh_token")
        })
        .unwrap();
    assert!(
        refresh.form.iter().any(|(k, _)| k == "resource"),
        "resource on every refresh"
    );
    // The rotated refresh token was stored: a second refresh works (a reused one would revoke).
    app.clock.advance(Duration::from_secs(3600));
    let (status, _) = app.server_fn(&app.client, "organization_overview").await;
    assert_eq!(status, 200);
    assert_eq!(app.ws.control.counters().refresh_grants, 2);
    let (_, connection) = app.server_fn(&app.client, "connection_status").await;
    assert!(connection["refreshed_at"].is_i64());
}

#[tokio::test]
async fn a_rejected_token_is_refreshed_once_and_retried() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    app.ws.control.expire_access_tokens("org_acme");
    let (status, org) = app.server_fn(&app.client, "organization_overview").await;
    assert_eq!(
        (status, org["name"].as_str()),
        (200, Some("Acme Property Group"))
    );
    assert_eq!(app.ws.control.counters().refresh_grants, 1);
    let me_calls = app
        .ws
        .control
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/me"))
        .count();
    assert_eq!(me_calls, 2, "one 401, one retry");
}

#[tokio::test]
async fn fifty_concurrent_requests_at_expiry_cause_one_refresh() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    app.clock.advance(Duration::from_secs(3600));
    app.ws.control.expire_access_tokens("org_acme");
    let calls = (0..50).map(|_| app.server_fn(&app.client, "organization_overview"));
    let results = futures::future::join_all(calls).await;
    for (status, body) in &results {
        assert_eq!(*status, 200, "{body}");
    }
    assert_eq!(app.ws.control.counters().refresh_grants, 1);
}

#[tokio::test]
async fn invalid_grant_leads_to_the_reconnect_state() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    app.ws.control.expire_connection("org_acme");
    let (status, error) = app.server_fn(&app.client, "organization_overview").await;
    assert_eq!((status, error), (401, json!("ReconnectRequired")));
    let (_, connection) = app.server_fn(&app.client, "connection_status").await;
    assert_eq!(connection["state"], "ReconnectRequired");
    // No loop: the next read does not try the dead refresh token again.
    let refreshes = app.ws.control.counters().token_requests;
    let (status, _) = app.server_fn(&app.client, "organization_overview").await;
    assert_eq!(status, 401);
    assert_eq!(app.ws.control.counters().token_requests, refreshes);
    // Reconnecting heals it.
    app.connect(&app.client, "org_acme").await;
    let (status, _) = app.server_fn(&app.client, "organization_overview").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn workspace_outage_during_refresh_keeps_the_connection() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    app.clock.advance(Duration::from_secs(3600));
    app.ws.control.fail_next(
        Endpoint::Token,
        1,
        Failure {
            status: 503,
            body: None,
            content_type: None,
            headers: Default::default(),
        },
    );
    let (status, error) = app.server_fn(&app.client, "organization_overview").await;
    assert_eq!((status, error), (503, json!("Retry")));
    let (status, _) = app.server_fn(&app.client, "organization_overview").await;
    assert_eq!(status, 200, "the next try refreshes and succeeds");
}

#[tokio::test]
async fn disconnect_revokes_and_deletes_even_when_the_workspace_is_down() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    let (status, _) = app.server_fn(&app.client, "disconnect").await;
    assert_eq!(status, 200);
    assert_eq!(app.ws.control.counters().revocations, 1);
    assert_eq!(
        app.ws.control.connections()[0].status,
        qentrah_dev_workspace::state::GrantStatus::Revoked
    );
    let (status, error) = app.server_fn(&app.client, "connection_status").await;
    assert_eq!((status, error), (401, json!("NotConnected")));

    app.connect(&app.client, "org_harbor").await;
    app.ws.control.fail_next(
        Endpoint::Revoke,
        1,
        Failure {
            status: 503,
            body: None,
            content_type: None,
            headers: Default::default(),
        },
    );
    let (status, _) = app.server_fn(&app.client, "disconnect").await;
    assert_eq!(status, 200);
    let (status, _) = app.server_fn(&app.client, "connection_status").await;
    assert_eq!(status, 401, "purged locally although revocation failed");
}

#[tokio::test]
async fn a_browser_without_the_binding_sees_nothing() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    let stranger = app.new_browser();
    for name in ["connection_status", "organization_overview", "disconnect"] {
        let (status, error) = app.server_fn(&stranger, name).await;
        assert_eq!((status, error), (401, json!("NotConnected")), "{name}");
    }
    let (status, _) = app.server_fn(&app.client, "connection_status").await;
    assert_eq!(status, 200, "the stranger's disconnect touched nothing");
}

#[tokio::test]
async fn database_holds_no_token_plaintext_after_a_full_flow() {
    let app = spawn_app().await;
    let authorize = app.start_flow(&app.client, None).await;
    let verifier_flow = app.start_flow(&app.client, None).await; // a second, unfinished flow
    let callback = app.consent(&authorize, "org_acme", "approve").await;
    app.finish(&app.client, &callback).await;
    app.clock.advance(Duration::from_secs(3600));
    app.server_fn(&app.client, "organization_overview").await; // refresh
    drop(verifier_flow);

    // Every code, token and PKCE verifier the Workspace issued or received.
    let secrets = app.ws.control.issued_secrets();
    assert!(
        secrets.len() >= 5,
        "code, verifier, access, refresh, rotated: {}",
        secrets.len()
    );
    let raw = app.database.raw_contents().await;
    assert!(!raw.is_empty());
    let raw = String::from_utf8_lossy(&raw);
    for secret in &secrets {
        assert!(
            !raw.contains(secret.as_str()),
            "plaintext {} in the database",
            &secret[..4]
        );
    }
    assert!(!raw.contains("qat_") && !raw.contains("qrt_") && !raw.contains("qac_"));
}

/// A refresh is not cancelled with the work that started it: here the dashboard's `clients`
/// call gets a 401 and refreshes, while its sibling `properties` call fails at once and ends the
/// dashboard. Cut off between the token call and storing the result, a refresh would lose the
/// rotated refresh token; it runs on, is stored, and the next request uses it.
#[tokio::test]
async fn a_refresh_outlives_the_request_that_started_it() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    // The three calls of the dashboard run side by side and the first failure ends it, so the
    // order is set by latency, not left to the scheduler: `clients` answers 401 at once and its
    // refresh waits 1.5 s at the token endpoint, while `properties` fails after 300 ms, in the
    // middle of that refresh. (Without the delay `properties` could fail first and end the
    // dashboard before any refresh began.)
    app.ws
        .control
        .set_latency(Endpoint::Token, Duration::from_millis(1500));
    app.ws
        .control
        .set_latency(Endpoint::Properties, Duration::from_millis(300));
    let before = app.ws.control.counters().refresh_grants;
    app.ws.control.fail_next(
        Endpoint::Clients,
        1,
        Failure {
            status: 401,
            body: Some(r#"{"error":{"code":"connection_expired","message":"expired"}}"#.into()),
            content_type: None,
            headers: Default::default(),
        },
    );
    app.ws.control.fail_next(
        Endpoint::Properties,
        1,
        Failure {
            status: 503,
            body: None,
            content_type: None,
            headers: Default::default(),
        },
    );

    let (status, _) = app.server_fn(&app.client, "dashboard").await;
    assert_eq!(status, 503, "the dashboard ended with its failed sibling");
    assert_eq!(
        app.ws.control.in_flight(Endpoint::Token),
        1,
        "the dashboard ended while its refresh waited at the token endpoint"
    );
    for _ in 0..500 {
        if app.ws.control.counters().refresh_grants > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.ws.control.counters().refresh_grants, before + 1);

    app.ws.control.set_latency(Endpoint::Token, Duration::ZERO);
    app.ws
        .control
        .set_latency(Endpoint::Properties, Duration::ZERO);
    let (status, body) = app.server_fn(&app.client, "dashboard").await;
    assert_eq!(status, 200, "{body}");
    let counters = app.ws.control.counters();
    assert_eq!(
        counters.refresh_grants,
        before + 1,
        "its result was stored and used"
    );
    assert_eq!(counters.token_errors, 0);
}
