//! The bad-input battery: every route and server function fed malformed, missing, duplicated,
//! oversized and non-UTF-8 input, and the Workspace answering every way a broken upstream can.
//! The caller's mistakes get a clear 4xx (or the flow's failure page), the Workspace's faults a
//! retryable state; never a 500 for the caller's mistake, no lost connection, no secret in any
//! answer. The test prints how many cases it tried.

use std::collections::BTreeMap;
use std::time::Duration;

use qentrah_dev_workspace::{Endpoint, Failure};
use serde_json::json;

use crate::harness::{spawn_app_with, Options, TestApp};

struct Battery {
    cases: usize,
    bodies: Vec<String>,
}

impl Battery {
    fn record(&mut self, body: String) {
        self.cases += 1;
        self.bodies.push(body);
    }
}

/// A caller's request: answered with one of `allowed` statuses.
async fn caller_case(
    app: &TestApp,
    battery: &mut Battery,
    name: &str,
    request: reqwest::RequestBuilder,
    allowed: &[u16],
) {
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap_or_default().to_owned());
    let body = response.text().await.unwrap_or_default();
    assert!(
        allowed.contains(&status),
        "{name}: got {status}, allowed {allowed:?}: {body:.300}"
    );
    assert!(status < 500, "{name}: a 5xx for the caller's mistake");
    if let Some(location) = location {
        assert!(
            !location.contains("qat_") && !location.contains("qrt_"),
            "{name}: {location}"
        );
    }
    let _ = app;
    battery.record(body);
}

fn fault(status: u16, body: Option<&str>, headers: &[(&str, &str)]) -> Failure {
    Failure {
        status,
        body: body.map(str::to_owned),
        content_type: None,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    }
}

#[tokio::test]
async fn bad_input_battery() {
    let app = spawn_app_with(Options {
        http_timeout_ms: Some("800"),
        ..Options::default()
    })
    .await;
    app.connect(&app.client, "org_acme").await;
    let mut battery = Battery {
        cases: 0,
        bodies: Vec::new(),
    };
    let c = &app.client;
    let cb = app.url("/api/auth/qentrah/callback");
    let huge = "x".repeat(60_000);
    let big = "y".repeat(20_000);

    // --- The OAuth callback: always the failure page (303), never a token request. ---
    let before = app.ws.control.counters().token_requests;
    for query in [
        String::new(),
        "code=".to_owned(),
        "code=%FF%FE&state=%FF".to_owned(),
        "code=a&code=b&state=s".to_owned(),
        "state=a&state=b&code=c".to_owned(),
        "error=%00%01&state=s".to_owned(),
        "error=access_denied&error=server_error".to_owned(),
        "iss=%FF&code=a&state=b".to_owned(),
        format!("code={big}&state={big}"),
        "code=a&state=b&session_state=xyz&unknown=1".to_owned(),
        "%%%&&&==".to_owned(),
    ] {
        caller_case(
            &app,
            &mut battery,
            &format!("callback ?{:.40}", query),
            c.get(format!("{cb}?{query}")),
            &[303],
        )
        .await;
    }
    caller_case(
        &app,
        &mut battery,
        "callback, huge query",
        c.get(format!("{cb}?code={huge}")),
        &[303, 414, 431],
    )
    .await;
    caller_case(&app, &mut battery, "callback, POST", c.post(&cb), &[405]).await;
    assert_eq!(
        app.ws.control.counters().token_requests,
        before,
        "no token request for any of them"
    );

    // --- The start route: odd return_to values are ignored, not followed. ---
    for return_to in [
        "%FF%FE",
        "%2F%2Fevil.example",
        "https://evil.example",
        "/%0d%0aSet-Cookie:x=y",
        big.as_str(),
    ] {
        let url = format!(
            "{}?return_to={return_to}&return_to=/x",
            app.url("/api/auth/qentrah/start")
        );
        caller_case(
            &app,
            &mut battery,
            &format!("start return_to={return_to:.20}"),
            c.get(url),
            &[303],
        )
        .await;
    }

    // --- Server functions. ---
    let server_fn = |name: &str| c.post(app.url(&format!("/api/{name}")));
    caller_case(
        &app,
        &mut battery,
        "server fn, garbage form body",
        server_fn("connection_status")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("%%%=&&=%FF"),
        &[200, 400],
    )
    .await;
    caller_case(
        &app,
        &mut battery,
        "server fn, JSON body",
        server_fn("connection_status")
            .header("content-type", "application/json")
            .body("{\"a\":"),
        &[200, 400, 415],
    )
    .await;
    caller_case(
        &app,
        &mut battery,
        "server fn, non-UTF-8 body",
        server_fn("clients")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(vec![0xff, 0xfe, 0x00]),
        &[200, 400],
    )
    .await;
    caller_case(
        &app,
        &mut battery,
        "server fn, oversized body",
        server_fn("clients")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("a=".to_owned() + &"b".repeat(3_000_000)),
        &[200, 400, 413],
    )
    .await;
    caller_case(
        &app,
        &mut battery,
        "server fn, GET",
        c.get(app.url("/api/clients")),
        &[400, 404, 405],
    )
    .await;
    caller_case(
        &app,
        &mut battery,
        "unknown server fn",
        server_fn("no_such_function").header("content-type", "application/x-www-form-urlencoded"),
        &[400, 404, 405],
    )
    .await;
    caller_case(
        &app,
        &mut battery,
        "server fn, duplicated parameters",
        server_fn("dashboard")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("x=1&x=2"),
        &[200, 400],
    )
    .await;

    // --- Pages with odd query strings and paths. ---
    for path in [
        "/clients?q=%FF%FE&sort=%00".to_owned(),
        "/clients?q=a&q=b&sort=status&sort=name".to_owned(),
        format!("/properties?q={big}"),
        "/connect/failed?reason=%FF".to_owned(),
        "/connect/failed?reason=<script>".to_owned(),
        "/connection?confirm=%FF".to_owned(),
        "/%FF%FE".to_owned(),
        "/..%2F..%2Fetc%2Fpasswd".to_owned(),
        "/pkg/..%2F..%2FCargo.toml".to_owned(),
    ] {
        caller_case(
            &app,
            &mut battery,
            &format!("page {path:.40}"),
            c.get(app.url(&path)),
            &[200, 400, 404],
        )
        .await;
    }
    caller_case(
        &app,
        &mut battery,
        "garbage Host header",
        c.get(app.url("/")).header("host", "evil.example:99999 bad"),
        &[307, 400],
    )
    .await;

    // --- The Workspace misbehaving: a retryable state, and the connection survives. ---
    let big_body = "z".repeat(5 * 1024 * 1024);
    let faults: Vec<(&str, Failure)> = vec![
        (
            "malformed JSON",
            fault(200, Some("{\"data\": [{\"id\""), &[]),
        ),
        ("empty body", fault(200, Some(""), &[])),
        (
            "HTML instead of JSON",
            fault(
                200,
                Some("<html>maintenance</html>"),
                &[("content-type", "text/html")],
            ),
        ),
        (
            "JSON of the wrong shape",
            fault(200, Some("{\"rows\": 3}"), &[]),
        ),
        (
            "records without ids",
            fault(200, Some("{\"data\": [{\"name\": \"x\"}]}"), &[]),
        ),
        ("oversized body", fault(200, Some(&big_body), &[])),
        (
            "redirect",
            fault(
                302,
                Some(""),
                &[("location", "http://169.254.169.254/latest/meta-data")],
            ),
        ),
        (
            "429 with Retry-After",
            fault(
                429,
                Some("{\"error\":{\"code\":\"rate_limited\"}}"),
                &[("retry-after", "30")],
            ),
        ),
        ("500", fault(500, None, &[])),
        ("502 HTML", fault(502, Some("<h1>Bad gateway</h1>"), &[])),
        ("503", fault(503, Some("{\"error\":\"unavailable\"}"), &[])),
        (
            "unknown 4xx code",
            fault(418, Some("{\"error\":{\"code\":\"teapot\"}}"), &[]),
        ),
    ];
    for (name, failure) in faults {
        app.ws.control.fail_next(Endpoint::Clients, 1, failure);
        let (status, body) = app.server_fn(c, "clients").await;
        assert_eq!(
            (status, body.clone()),
            (503, json!("Retry")),
            "workspace {name}"
        );
        battery.record(body.to_string());
    }
    // A hang past the configured timeout (800 ms).
    app.ws
        .control
        .set_latency(Endpoint::Clients, Duration::from_millis(2_500));
    let (status, body) = app.server_fn(c, "clients").await;
    assert_eq!(
        (status, body.clone()),
        (503, json!("Retry")),
        "workspace hang"
    );
    battery.record(body.to_string());
    app.ws
        .control
        .set_latency(Endpoint::Clients, Duration::ZERO);

    // The token endpoint misbehaving during a refresh.
    for (name, failure) in [
        (
            "token endpoint malformed",
            fault(200, Some("{\"access_token\":"), &[]),
        ),
        ("token endpoint 500", fault(500, Some(""), &[])),
        (
            "token endpoint redirect",
            fault(307, Some(""), &[("location", "http://evil.example/token")]),
        ),
        (
            "token endpoint 429",
            fault(429, Some(""), &[("retry-after", "5")]),
        ),
        // An OAuth error body on a 5xx is still the server's trouble, not a refusal.
        (
            "token endpoint 503 with an OAuth error",
            fault(503, Some(r#"{"error":"invalid_request"}"#), &[]),
        ),
        (
            "token endpoint server_error",
            fault(500, Some(r#"{"error":"server_error"}"#), &[]),
        ),
        (
            "token endpoint temporarily_unavailable",
            fault(400, Some(r#"{"error":"temporarily_unavailable"}"#), &[]),
        ),
    ] {
        app.ws.control.expire_access_tokens("org_acme");
        app.ws.control.fail_next(Endpoint::Token, 1, failure);
        let (status, body) = app.server_fn(c, "clients").await;
        assert_eq!((status, body.clone()), (503, json!("Retry")), "{name}");
        battery.record(body.to_string());
    }

    // Nothing was lost: the connection still works.
    let (status, clients) = app.server_fn(c, "clients").await;
    assert_eq!(status, 200, "the connection survived the battery");
    assert_eq!(clients["records"].as_array().unwrap().len(), 12);

    // No secret in any answer.
    let secrets = app.ws.control.issued_secrets();
    for body in &battery.bodies {
        for secret in &secrets {
            assert!(
                !body.contains(secret.as_str()),
                "a secret in an error answer"
            );
        }
    }
    println!(
        "bad-input battery: {} cases, {} passed, 0 failed",
        battery.cases, battery.cases
    );
}
