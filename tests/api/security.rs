//! Headers on every response, cross-site refusal, per-address rate limits, isolation.

use serde_json::json;

use crate::harness::{spawn_app, spawn_app_with, Options};

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/clients"),
        ("GET", "/no/such/page"),
        ("GET", "/healthz"),
        ("GET", "/api/auth/qentrah/start"),
        ("GET", "/api/auth/qentrah/callback?code=x&state=y"),
        ("POST", "/api/connection_status"),
    ] {
        let request = if method == "GET" {
            app.client.get(app.url(path))
        } else {
            app.client
                .post(app.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
        };
        let response = request.send().await.unwrap();
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert!(headers.contains_key("referrer-policy"), "{path}");
        assert!(
            !headers.contains_key("strict-transport-security"),
            "not over http"
        );
    }
}

#[tokio::test]
async fn pages_allow_only_scripts_with_their_nonce() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/")).send().await.unwrap();
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a nonce in the page CSP")
        .to_owned();
    assert!(!csp.contains("'unsafe-inline'"));
    let html = response.text().await.unwrap();
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "inline scripts carry the nonce"
    );
    let again = app.client.get(app.url("/")).send().await.unwrap();
    assert!(
        !again.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains(&nonce),
        "fresh per response"
    );
}

#[tokio::test]
async fn oauth_routes_are_not_cached() {
    let app = spawn_app().await;
    for path in [
        "/api/auth/qentrah/start",
        "/api/auth/qentrah/callback?error=access_denied",
    ] {
        let response = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.headers()["cache-control"], "no-store", "{path}");
        assert_eq!(
            response.headers()["referrer-policy"],
            "no-referrer",
            "{path}"
        );
    }
}

#[tokio::test]
async fn cross_site_state_changes_are_refused() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "https://evil.example"),
    ] {
        let response = app
            .client
            .post(app.url("/api/disconnect"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{name}: {value}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"], "cross_site_request");
    }
    let (status, _) = app.server_fn(&app.client, "connection_status").await;
    assert_eq!(status, 200, "still connected");
    let response = app
        .client
        .post(app.url("/api/disconnect"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .header("origin", &app.origin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "our own pages may");
    assert_eq!(app.ws.control.counters().revocations, 1);
}

#[tokio::test]
async fn auth_routes_are_rate_limited_per_address() {
    let app = spawn_app_with(Options {
        auth_rate_limit_per_minute: Some("3"),
        ..Options::default()
    })
    .await;
    for _ in 0..3 {
        let response = app
            .client
            .get(app.url("/api/auth/qentrah/start"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
    }
    let response = app
        .client
        .get(app.url("/api/auth/qentrah/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after));
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("Too many connection attempts"));
    // Pages are not limited.
    assert_eq!(
        app.client.get(app.url("/")).send().await.unwrap().status(),
        200
    );
}

#[tokio::test]
async fn two_browsers_each_see_only_their_own_organization() {
    let app = spawn_app().await;
    let other = app.new_browser();
    app.connect(&app.client, "org_acme").await;
    app.connect(&other, "org_harbor").await;
    let (_, mine) = app.server_fn(&app.client, "dashboard").await;
    let (_, theirs) = app.server_fn(&other, "dashboard").await;
    assert_eq!(mine["organization"]["id"], "org_acme");
    assert_eq!(theirs["organization"]["id"], "org_harbor");
    // The dashboard reads the first page of each list (the whole of Acme's 12, 100 of
    // Harbor's 240), each browser only its own organization's.
    let ids = |dashboard: &serde_json::Value| -> Vec<String> {
        dashboard["clients"]["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&mine).len(), 12);
    assert!(ids(&mine).iter().all(|id| id.starts_with("cli_acme_")));
    assert_eq!(ids(&theirs).len(), 100);
    assert!(ids(&theirs).iter().all(|id| id.starts_with("cli_harbor_")));
    assert!(theirs["clients"]["next_cursor"].is_string());

    // Disconnecting one leaves the other untouched.
    assert_eq!(app.server_fn(&app.client, "disconnect").await.0, 200);
    assert_eq!(
        app.server_fn(&app.client, "clients").await,
        (401, json!("NotConnected"))
    );
    assert_eq!(app.server_fn(&other, "clients").await.0, 200);
}

/// A session in use stays alive: renewed (saved, with a fresh cookie lifetime) at most once a
/// day, not on every request.
#[tokio::test]
async fn an_active_session_is_renewed_at_most_daily() {
    let app = spawn_app().await;
    app.connect(&app.client, "org_acme").await;
    let sets_cookie = |response: &reqwest::Response| response.headers().contains_key("set-cookie");
    let call = || {
        app.client
            .post(app.url("/api/connection_status"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .send()
    };
    let first = call().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(sets_cookie(&first), "first use after connecting renews");
    let second = call().await.unwrap();
    assert!(!sets_cookie(&second), "no write on every request");
    app.clock.advance(std::time::Duration::from_secs(25 * 3600));
    let next_day = call().await.unwrap();
    assert_eq!(next_day.status(), 200);
    assert!(sets_cookie(&next_day), "renewed a day later");
}
