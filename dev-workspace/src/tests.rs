//! The emulator refuses every client mistake a real authorization server refuses. Each test
//! runs a real server on port 0 and talks HTTP to it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::*;

const APP: &str = "http://localhost:3001";
const SCOPES: &str = "organization:read client:read property:read offline_access";

struct Harness {
    ws: DevWorkspace,
    http: reqwest::Client,
}

struct Flow {
    verifier: String,
    state: String,
    redirect_uri: String,
    resource: String,
}

impl Flow {
    fn new(ws: &DevWorkspace) -> Self {
        Self {
            verifier: state::random_token("v").replace('_', "-"),
            state: state::random_token("s"),
            redirect_uri: format!("{APP}{CALLBACK_PATH}"),
            resource: format!("{}/api/v1/partner", ws.base_url),
        }
    }

    fn challenge(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(self.verifier.as_bytes()))
    }
}

fn query_of(location: &str) -> HashMap<String, String> {
    url::Url::parse(location)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl Harness {
    async fn new() -> Self {
        let ws = start(DevWorkspaceConfig::for_tests(APP)).await.unwrap();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self { ws, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.ws.base_url, path)
    }

    fn authorize_params(&self, flow: &Flow, client_id: &str) -> Vec<(String, String)> {
        [
            ("response_type", "code".to_owned()),
            ("client_id", client_id.to_owned()),
            ("redirect_uri", flow.redirect_uri.clone()),
            ("scope", SCOPES.to_owned()),
            ("resource", flow.resource.clone()),
            ("state", flow.state.clone()),
            ("code_challenge", flow.challenge()),
            ("code_challenge_method", "S256".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    async fn authorize_raw(&self, params: &[(String, String)]) -> reqwest::Response {
        let url = url::Url::parse_with_params(&self.url("/oauth/authorize"), params).unwrap();
        self.http.get(url).send().await.unwrap()
    }

    /// Authorize, pick `organization_id`, submit `decision`; returns the redirect's query.
    async fn consent(
        &self,
        params: &[(String, String)],
        organization_id: &str,
        decision: &str,
    ) -> HashMap<String, String> {
        let response = self.authorize_raw(params).await;
        assert_eq!(response.status(), 200, "consent page");
        let html = response.text().await.unwrap();
        let marker = "name=\"request_id\" value=\"";
        let start = html.find(marker).unwrap() + marker.len();
        let request_id = &html[start..start + html[start..].find('"').unwrap()];
        let response = self
            .http
            .post(self.url("/oauth/authorize/decision"))
            .form(&[
                ("request_id", request_id),
                ("organization_id", organization_id),
                ("decision", decision),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(
            location.starts_with(&format!("{APP}{CALLBACK_PATH}?")),
            "{location}"
        );
        query_of(&location)
    }

    async fn code_for(&self, flow: &Flow, client_id: &str, organization_id: &str) -> String {
        let query = self
            .consent(
                &self.authorize_params(flow, client_id),
                organization_id,
                "approve",
            )
            .await;
        assert_eq!(query["state"], flow.state);
        assert_eq!(query["iss"], self.ws.base_url);
        query["code"].clone()
    }

    async fn token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .post(self.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    async fn exchange(&self, flow: &Flow, code: &str) -> (u16, Value) {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("client_id", PUBLIC_CLIENT_ID),
            ("code", code),
            ("redirect_uri", &flow.redirect_uri),
            ("code_verifier", &flow.verifier),
            ("resource", &flow.resource),
        ])
        .await
    }

    /// A full public-client flow for `organization_id`; returns the token response.
    async fn connect(&self, organization_id: &str) -> (Flow, Value) {
        let flow = Flow::new(&self.ws);
        let code = self
            .code_for(&flow, PUBLIC_CLIENT_ID, organization_id)
            .await;
        let (status, body) = self.exchange(&flow, &code).await;
        assert_eq!(status, 200, "{body}");
        (flow, body)
    }

    async fn refresh(&self, flow: &Flow, refresh_token: &str) -> (u16, Value) {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("client_id", PUBLIC_CLIENT_ID),
            ("refresh_token", refresh_token),
            ("resource", &flow.resource),
        ])
        .await
    }

    async fn api(
        &self,
        organization_id: &str,
        resource: &str,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut request = self.http.get(self.url(&format!(
            "/api/v1/partner/organizations/{organization_id}/{resource}"
        )));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn metadata_advertises_s256_iss_and_endpoints() {
    let h = Harness::new().await;
    let meta: Value = h
        .http
        .get(h.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], h.ws.base_url);
    assert_eq!(
        meta["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(meta["authorization_response_iss_parameter_supported"], true);
    assert_eq!(meta["token_endpoint"], h.url("/oauth/token"));
    assert_eq!(meta["revocation_endpoint"], h.url("/oauth/revoke"));
}

#[tokio::test]
async fn happy_path_issues_tokens_that_read_the_partner_api() {
    let h = Harness::new().await;
    let (_, tokens) = h.connect("org_acme").await;
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["organization_id"], "org_acme");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["scope"], SCOPES);
    assert!(tokens["refresh_token"]
        .as_str()
        .unwrap()
        .starts_with("qrt_"));
    let access = tokens["access_token"].as_str().unwrap();

    let (status, me) = h.api("org_acme", "me", Some(access)).await;
    assert_eq!(status, 200);
    assert_eq!(me["name"], "Acme Property Group");
    let (status, clients) = h.api("org_acme", "clients", Some(access)).await;
    assert_eq!(status, 200);
    assert_eq!(clients["data"].as_array().unwrap().len(), 12);
    assert!(clients["next_cursor"].is_null());
    let (status, _) = h.api("org_acme", "properties", Some(access)).await;
    assert_eq!(status, 200);
    assert_eq!(h.ws.control.counters().authorization_code_grants, 1);
}

#[tokio::test]
async fn large_organization_paginates_with_next_cursor() {
    let h = Harness::new().await;
    let (_, tokens) = h.connect("org_harbor").await;
    let access = tokens["access_token"].as_str().unwrap();
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let mut url = h.url("/api/v1/partner/organizations/org_harbor/clients?limit=100");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = h
            .http
            .get(url)
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen += page["data"].as_array().unwrap().len();
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!((seen, pages), (240, 3));
    let bad = h
        .http
        .get(h.url("/api/v1/partner/organizations/org_harbor/clients?cursor=bogus"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let bad = h
        .http
        .get(h.url("/api/v1/partner/organizations/org_harbor/clients?limit=1000"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn wrong_code_verifier_is_refused_and_burns_the_code() {
    let h = Harness::new().await;
    let mut flow = Flow::new(&h.ws);
    let code = h.code_for(&flow, PUBLIC_CLIENT_ID, "org_acme").await;
    let right = std::mem::replace(
        &mut flow.verifier,
        state::random_token("other").replace('_', "-"),
    );
    let (status, body) = h.exchange(&flow, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // One attempt per code: the right verifier afterwards is too late.
    flow.verifier = right;
    let (status, body) = h.exchange(&flow, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "{body}"
    );
    assert_eq!(h.ws.control.counters().authorization_code_grants, 0);
}

#[tokio::test]
async fn reused_code_is_refused_and_revokes_what_it_issued() {
    let h = Harness::new().await;
    let flow = Flow::new(&h.ws);
    let code = h.code_for(&flow, PUBLIC_CLIENT_ID, "org_acme").await;
    let (status, tokens) = h.exchange(&flow, &code).await;
    assert_eq!(status, 200);
    let (status, body) = h.exchange(&flow, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // RFC 6749 §4.1.2: the tokens from the first exchange no longer work.
    let (status, body) = h
        .api("org_acme", "me", tokens["access_token"].as_str())
        .await;
    assert_eq!((status, error_code(&body)), (404, "connection_not_found"));
    let (status, body) = h
        .refresh(&flow, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_revokes_the_grant() {
    let h = Harness::new().await;
    let (flow, tokens) = h.connect("org_acme").await;
    let first = tokens["refresh_token"].as_str().unwrap();
    let (status, rotated) = h.refresh(&flow, first).await;
    assert_eq!(status, 200);
    let second = rotated["refresh_token"].as_str().unwrap();
    assert_ne!(first, second);
    assert_eq!(rotated["organization_id"], "org_acme");

    // The rotated-out token comes back: refused, and the whole grant is revoked.
    let (status, body) = h.refresh(&flow, first).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = h.refresh(&flow, second).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, _) = h
        .api("org_acme", "me", rotated["access_token"].as_str())
        .await;
    assert_eq!(status, 404);
}

/// A client that dies while its refresh waits out the configured latency (an app instance killed
/// mid-refresh) never had it processed: the refresh token is not rotated, so another client can
/// still use it. A refresh that was processed is final, as at a real server: its response may
/// be lost, and the old token is then a reused one.
#[tokio::test]
async fn a_refresh_abandoned_by_its_client_is_not_processed() {
    let h = Harness::new().await;
    let (flow, tokens) = h.connect("org_acme").await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    h.ws.control
        .set_latency(Endpoint::Token, Duration::from_millis(1500));
    let before = h.ws.control.counters().refresh_grants;

    let abandoned = {
        let url = h.url("/oauth/token");
        let form = [
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", PUBLIC_CLIENT_ID.to_owned()),
            ("refresh_token", refresh.clone()),
            ("resource", flow.resource.clone()),
        ];
        tokio::spawn(async move { reqwest::Client::new().post(url).form(&form).send().await })
    };
    for _ in 0..100 {
        if h.ws.control.in_flight(Endpoint::Token) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.ws.control.in_flight(Endpoint::Token), 1);
    abandoned.abort(); // drops the connection, as a killed process would
    for _ in 0..100 {
        if h.ws.control.in_flight(Endpoint::Token) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        h.ws.control.in_flight(Endpoint::Token),
        0,
        "dropped, not waited out"
    );
    tokio::time::sleep(Duration::from_millis(1700)).await;
    assert_eq!(h.ws.control.counters().refresh_grants, before);

    h.ws.control.set_latency(Endpoint::Token, Duration::ZERO);
    let (status, _) = h.refresh(&flow, &refresh).await;
    assert_eq!(status, 200, "the refresh token still works");
}

#[tokio::test]
async fn redirect_uri_must_match_exactly() {
    let h = Harness::new().await;
    let flow = Flow::new(&h.ws);
    for bad in [
        format!("{APP}{CALLBACK_PATH}/extra"),
        format!("{APP}{CALLBACK_PATH}?x=1"),
        "https://attacker.example/callback".to_owned(),
    ] {
        let mut params = h.authorize_params(&flow, PUBLIC_CLIENT_ID);
        params
            .iter_mut()
            .find(|(k, _)| k == "redirect_uri")
            .unwrap()
            .1 = bad.clone();
        let response = h.authorize_raw(&params).await;
        // Never a redirect to an unregistered URI (RFC 6749 §4.1.2.1).
        assert_eq!(response.status(), 400, "{bad}");
        assert!(response.headers().get("location").is_none());
    }
    // At the token endpoint: the code is bound to the redirect URI it was issued for.
    let code = h.code_for(&flow, PUBLIC_CLIENT_ID, "org_acme").await;
    let other = format!("{APP}/other");
    let (status, body) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", PUBLIC_CLIENT_ID),
            ("code", &code),
            ("redirect_uri", &other),
            ("code_verifier", &flow.verifier),
            ("resource", &flow.resource),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn unknown_client_gets_an_error_page_not_a_redirect() {
    let h = Harness::new().await;
    let flow = Flow::new(&h.ws);
    let response = h.authorize_raw(&h.authorize_params(&flow, "nobody")).await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
}

async fn authorize_error(
    h: &Harness,
    change: impl FnOnce(&mut Vec<(String, String)>),
) -> HashMap<String, String> {
    let flow = Flow::new(&h.ws);
    let mut params = h.authorize_params(&flow, PUBLIC_CLIENT_ID);
    change(&mut params);
    let response = h.authorize_raw(&params).await;
    assert_eq!(response.status(), 303);
    let query = query_of(response.headers()["location"].to_str().unwrap());
    assert_eq!(query["iss"], h.ws.base_url);
    query
}

fn set(params: &mut Vec<(String, String)>, name: &str, value: Option<&str>) {
    params.retain(|(k, _)| k != name);
    if let Some(value) = value {
        params.push((name.to_owned(), value.to_owned()));
    }
}

#[tokio::test]
async fn resource_must_be_the_partner_api() {
    let h = Harness::new().await;
    for value in [
        None,
        Some("https://elsewhere.example/api"),
        Some("http://127.0.0.1:1/api/v1/partner"),
    ] {
        let query = authorize_error(&h, |p| set(p, "resource", value)).await;
        assert_eq!(query["error"], "invalid_target", "{value:?}");
    }
    // At the token endpoint too (RFC 8707 §2.2).
    let flow = Flow::new(&h.ws);
    let code = h.code_for(&flow, PUBLIC_CLIENT_ID, "org_acme").await;
    let (status, body) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", PUBLIC_CLIENT_ID),
            ("code", &code),
            ("redirect_uri", &flow.redirect_uri),
            ("code_verifier", &flow.verifier),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );
}

#[tokio::test]
async fn pkce_must_be_s256() {
    let h = Harness::new().await;
    let query = authorize_error(&h, |p| set(p, "code_challenge_method", Some("plain"))).await;
    assert_eq!(query["error"], "invalid_request");
    let query = authorize_error(&h, |p| set(p, "code_challenge_method", None)).await;
    assert_eq!(query["error"], "invalid_request");
    let query = authorize_error(&h, |p| {
        set(p, "code_challenge", None);
        set(p, "code_challenge_method", None);
    })
    .await;
    assert_eq!(query["error"], "invalid_request");
    let query = authorize_error(&h, |p| set(p, "code_challenge", Some("too-short"))).await;
    assert_eq!(query["error"], "invalid_request");
}

#[tokio::test]
async fn other_authorization_request_mistakes_are_refused() {
    let h = Harness::new().await;
    let query = authorize_error(&h, |p| set(p, "response_type", Some("token"))).await;
    assert_eq!(query["error"], "unsupported_response_type");
    let query = authorize_error(&h, |p| {
        set(p, "scope", Some("organization:read admin:write"))
    })
    .await;
    assert_eq!(query["error"], "invalid_scope");
    let query = authorize_error(&h, |p| set(p, "state", None)).await;
    assert_eq!(query["error"], "invalid_request");
    let query = authorize_error(&h, |p| p.push(("scope".into(), "client:read".into()))).await;
    assert_eq!(query["error"], "invalid_request", "repeated parameter");
}

#[tokio::test]
async fn denying_consent_returns_access_denied_with_state_and_iss() {
    let h = Harness::new().await;
    let flow = Flow::new(&h.ws);
    let query = h
        .consent(
            &h.authorize_params(&flow, PUBLIC_CLIENT_ID),
            "org_acme",
            "deny",
        )
        .await;
    assert_eq!(query["error"], "access_denied");
    assert_eq!(query["state"], flow.state);
    assert_eq!(query["iss"], h.ws.base_url);
    assert!(!query.contains_key("code"));
}

#[tokio::test]
async fn confidential_client_must_authenticate_with_its_registered_method() {
    let h = Harness::new().await;
    let exchange = |flow: &Flow, code: &str, auth: &str| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", flow.redirect_uri.clone()),
            ("code_verifier", flow.verifier.clone()),
            ("resource", flow.resource.clone()),
        ];
        let mut request = h.http.post(h.url("/oauth/token"));
        match auth {
            "basic" => {
                request = request.header(
                    "authorization",
                    format!(
                        "Basic {}",
                        STANDARD.encode(format!(
                            "{CONFIDENTIAL_CLIENT_ID}:{CONFIDENTIAL_CLIENT_SECRET}"
                        ))
                    ),
                )
            }
            "post" => {
                form.push(("client_id", CONFIDENTIAL_CLIENT_ID.to_owned()));
                form.push(("client_secret", CONFIDENTIAL_CLIENT_SECRET.to_owned()));
            }
            "wrong" => {
                form.push(("client_id", CONFIDENTIAL_CLIENT_ID.to_owned()));
                form.push(("client_secret", "not-the-secret".to_owned()));
            }
            "wrong-basic" => {
                request = request.header(
                    "authorization",
                    format!(
                        "Basic {}",
                        STANDARD.encode(format!("{CONFIDENTIAL_CLIENT_ID}:nope"))
                    ),
                )
            }
            _ => form.push(("client_id", CONFIDENTIAL_CLIENT_ID.to_owned())),
        }
        async move {
            let response = request.form(&form).send().await.unwrap();
            let challenge = response.headers().get("www-authenticate").is_some();
            (
                response.status().as_u16(),
                challenge,
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    for (auth, expected) in [
        // Registered for client_secret_post (the brief): right credentials by Basic are refused.
        ("basic", 401),
        ("post", 200),
        ("wrong", 401),
        ("wrong-basic", 401),
        ("none", 401),
    ] {
        let flow = Flow::new(&h.ws);
        let code = h.code_for(&flow, CONFIDENTIAL_CLIENT_ID, "org_acme").await;
        let (status, challenge, body) = exchange(&flow, &code, auth).await;
        assert_eq!(status, expected, "{auth}: {body}");
        if expected == 401 {
            assert_eq!(body["error"], "invalid_client");
            // RFC 6749 §5.2: a client that tried Basic gets a challenge with the 401.
            assert_eq!(challenge, auth.contains("basic"), "{auth}");
        }
    }
    // A public client must not send a secret it does not have.
    let flow = Flow::new(&h.ws);
    let code = h.code_for(&flow, PUBLIC_CLIENT_ID, "org_acme").await;
    let (status, body) = h
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", PUBLIC_CLIENT_ID),
            ("client_secret", "made-up"),
            ("code", &code),
            ("redirect_uri", &flow.redirect_uri),
            ("code_verifier", &flow.verifier),
            ("resource", &flow.resource),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

#[tokio::test]
async fn code_issued_to_one_client_is_refused_to_another() {
    let h = Harness::new().await;
    let flow = Flow::new(&h.ws);
    let code = h.code_for(&flow, CONFIDENTIAL_CLIENT_ID, "org_acme").await;
    let (status, body) = h.exchange(&flow, &code).await; // as the public client
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn expired_code_is_refused() {
    let h = Harness::new().await;
    let flow = Flow::new(&h.ws);
    let code = h.code_for(&flow, PUBLIC_CLIENT_ID, "org_acme").await;
    h.ws.control.advance_clock(Duration::from_secs(61));
    let (status, body) = h.exchange(&flow, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn token_requests_must_be_well_formed_forms() {
    let h = Harness::new().await;
    let response = h
        .http
        .post(h.url("/oauth/token"))
        .json(&serde_json::json!({"grant_type": "refresh_token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let (status, body) = h
        .token(&[("grant_type", "password"), ("client_id", PUBLIC_CLIENT_ID)])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, body) = h
        .token(&[
            ("grant_type", "refresh_token"),
            ("grant_type", "refresh_token"),
            ("client_id", PUBLIC_CLIENT_ID),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    // Refresh without `resource` (RFC 8707: sent on every refresh).
    let (_, tokens) = h.connect("org_acme").await;
    let (status, body) = h
        .token(&[
            ("grant_type", "refresh_token"),
            ("client_id", PUBLIC_CLIENT_ID),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );
}

#[tokio::test]
async fn partner_api_refuses_wrong_organization_missing_scope_and_missing_bearer() {
    let h = Harness::new().await;
    let (_, tokens) = h.connect("org_acme").await;
    let access = tokens["access_token"].as_str().unwrap();

    let (status, body) = h.api("org_harbor", "me", Some(access)).await;
    assert_eq!((status, error_code(&body)), (403, "wrong_organization"));

    let (status, body) = h.api("org_acme", "me", None).await;
    assert_eq!((status, error_code(&body)), (401, "missing_bearer"));
    let in_query = h
        .http
        .get(h.url(&format!(
            "/api/v1/partner/organizations/org_acme/me?access_token={access}"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(in_query.status(), 401);

    h.ws.control.withhold_scope("org_acme", "client:read", true);
    let (status, body) = h.api("org_acme", "clients", Some(access)).await;
    assert_eq!((status, error_code(&body)), (403, "scope_denied"));
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("client:read"));
    let (status, _) = h.api("org_acme", "properties", Some(access)).await;
    assert_eq!(status, 200, "other scopes unaffected");

    // A grant that never asked for property:read.
    let flow = Flow::new(&h.ws);
    let mut params = h.authorize_params(&flow, PUBLIC_CLIENT_ID);
    set(&mut params, "scope", Some("organization:read"));
    let query = h.consent(&params, "org_acme", "approve").await;
    let (_, narrow) = h.exchange(&flow, &query["code"]).await;
    assert!(
        narrow.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
    let (status, body) = h
        .api("org_acme", "properties", narrow["access_token"].as_str())
        .await;
    assert_eq!((status, error_code(&body)), (403, "scope_denied"));
}

#[tokio::test]
async fn connection_states_from_the_control_api() {
    let h = Harness::new().await;
    let (flow, tokens) = h.connect("org_acme").await;
    let access = tokens["access_token"].as_str().unwrap();

    h.ws.control.expire_access_tokens("org_acme");
    let (status, body) = h.api("org_acme", "me", Some(access)).await;
    assert_eq!((status, error_code(&body)), (401, "connection_expired"));
    let (status, refreshed) = h
        .refresh(&flow, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 200, "refresh still works");
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(h.api("org_acme", "me", Some(access)).await.0, 200);

    h.ws.control.set_app_approved(None, false);
    let (status, body) = h.api("org_acme", "me", Some(access)).await;
    assert_eq!((status, error_code(&body)), (403, "app_not_approved"));
    h.ws.control.set_app_approved(None, true);

    h.ws.control.expire_connection("org_acme");
    let (status, body) = h.api("org_acme", "me", Some(access)).await;
    assert_eq!((status, error_code(&body)), (401, "connection_expired"));
    let (status, body) = h
        .refresh(&flow, refreshed["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let (flow, tokens) = h.connect("org_acme").await;
    h.ws.control.delete_connection("org_acme");
    let (status, body) = h
        .api("org_acme", "me", tokens["access_token"].as_str())
        .await;
    assert_eq!((status, error_code(&body)), (404, "connection_not_found"));
    let (status, body) = h
        .refresh(&flow, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // Access tokens also expire by the emulator's clock.
    let (_, tokens) = h.connect("org_acme").await;
    h.ws.control.advance_clock(Duration::from_secs(3601));
    let (status, body) = h
        .api("org_acme", "me", tokens["access_token"].as_str())
        .await;
    assert_eq!((status, error_code(&body)), (401, "connection_expired"));
}

#[tokio::test]
async fn revocation_revokes_the_grant_and_answers_200_for_unknown_tokens() {
    let h = Harness::new().await;
    let (flow, tokens) = h.connect("org_acme").await;
    let revoke = |token: String| {
        let request = h.http.post(h.url("/oauth/revoke")).form(&[
            ("token", token.as_str()),
            ("token_type_hint", "refresh_token"),
            ("client_id", PUBLIC_CLIENT_ID),
        ]);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(
        revoke(tokens["refresh_token"].as_str().unwrap().to_owned()).await,
        200
    );
    assert_eq!(h.ws.control.counters().revocations, 1);
    let (status, _) = h
        .api("org_acme", "me", tokens["access_token"].as_str())
        .await;
    assert_eq!(status, 404);
    let (status, _) = h
        .refresh(&flow, tokens["refresh_token"].as_str().unwrap())
        .await;
    assert_eq!(status, 400);
    assert_eq!(revoke("qrt_unknown".to_owned()).await, 200);
}

#[tokio::test]
async fn control_faults_latency_quirks_and_wrong_iss() {
    let h = Harness::new().await;
    let (_, tokens) = h.connect("org_acme").await;
    let access = tokens["access_token"].as_str().unwrap();

    h.ws.control.fail_next(
        Endpoint::Me,
        2,
        Failure {
            status: 503,
            body: None,
            content_type: None,
            headers: Default::default(),
        },
    );
    for _ in 0..2 {
        let response = h
            .http
            .get(h.url("/api/v1/partner/organizations/org_acme/me"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503);
        assert!(
            serde_json::from_str::<Value>(&response.text().await.unwrap()).is_err(),
            "malformed"
        );
    }
    assert_eq!(
        h.api("org_acme", "me", Some(access)).await.0,
        200,
        "only the next two fail"
    );

    h.ws.control
        .set_latency(Endpoint::Clients, Duration::from_millis(200));
    let started = tokio::time::Instant::now();
    assert_eq!(h.api("org_acme", "clients", Some(access)).await.0, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));

    h.ws.control.set_token_quirks(TokenQuirks {
        omit_organization_id: true,
        omit_refresh_token: true,
        omit_expires_in: true,
        ..TokenQuirks::default()
    });
    let (_, quirky) = h.connect("org_acme").await;
    for field in ["organization_id", "refresh_token", "expires_in"] {
        assert!(quirky.get(field).is_none(), "{field} omitted");
    }

    h.ws.control.set_wrong_iss(true);
    let flow = Flow::new(&h.ws);
    let query = h
        .consent(
            &h.authorize_params(&flow, PUBLIC_CLIENT_ID),
            "org_acme",
            "approve",
        )
        .await;
    assert_ne!(query["iss"], h.ws.base_url);
}

#[tokio::test]
async fn http_control_api_drives_the_same_state() {
    let h = Harness::new().await;
    let (_, tokens) = h.connect("org_acme").await;
    let post = |path: &str| h.http.post(h.url(path)).send();
    assert_eq!(
        post("/__dev/organizations/org_acme/expire-access-tokens")
            .await
            .unwrap()
            .status(),
        200
    );
    let (status, _) = h
        .api("org_acme", "me", tokens["access_token"].as_str())
        .await;
    assert_eq!(status, 401);
    assert_eq!(
        post("/__dev/failures?endpoint=clients&status=429&retry_after=7")
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        post("/__dev/failures?endpoint=nope&status=500")
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        post("/__dev/organizations/org_nope/expire-connection")
            .await
            .unwrap()
            .status(),
        404
    );
    let state: Value = h
        .http
        .get(h.url("/__dev/state"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["pending_failures"]["clients"], 1);
    assert_eq!(state["connections"][0]["organization_id"], "org_acme");
    let page = h
        .http
        .get(h.url("/__dev"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Expire access tokens"));
    assert!(
        page.contains("&lt;b&gt;Tricky&lt;/b&gt;"),
        "seed names are escaped"
    );
    let via_button = post("/__dev/clock/advance?seconds=10&return=page")
        .await
        .unwrap();
    assert_eq!(via_button.status(), 303);
}

#[tokio::test]
async fn request_log_keeps_no_secret() {
    let h = Harness::new().await;
    let (flow, tokens) = h.connect("org_acme").await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    h.api("org_acme", "me", Some(access)).await;
    h.refresh(&flow, refresh).await;
    let log = serde_json::to_string(&h.ws.control.requests()).unwrap();
    for secret in [access, refresh, flow.verifier.as_str()] {
        assert!(!log.contains(secret));
    }
    assert!(log.contains("/oauth/token"));
    assert!(log.contains("\"Bearer\""));
    let codes =
        h.ws.control
            .requests()
            .iter()
            .filter(|r| r.path == "/oauth/token")
            .count();
    assert_eq!(codes, 2);
}

#[tokio::test]
async fn control_api_refuses_non_loopback_peers() {
    use axum::extract::ConnectInfo;
    use tower::ServiceExt;
    let app = router(
        SharedWorld::new(World::new(
            "http://localhost:3000".into(),
            DevWorkspaceConfig::default_clients(APP),
            DEFAULT_ACCESS_TOKEN_TTL,
            &crate::profile::QENTRAH,
        )),
        "",
        &crate::profile::QENTRAH,
    );
    let mut request = axum::http::Request::post("/__dev/reset")
        .body(Body::empty())
        .unwrap();
    request
        .extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 4000))));
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 403);
}

/// RFC 6750 §2.1 `Bearer` SP b64token: no padding inside the value is forgiven. (Whitespace at
/// either end of a field value is not part of it, RFC 9110 §5.5, and never reaches the parser.)
#[tokio::test]
async fn the_bearer_header_is_parsed_exactly() {
    let h = Harness::new().await;
    let (_, tokens) = h.connect("org_acme").await;
    let access = tokens["access_token"].as_str().unwrap();
    let url = h.url("/api/v1/partner/organizations/org_acme/me");
    for (header, expected) in [
        (format!("Bearer {access}"), 200),
        (format!("bearer {access}"), 200),
        (format!("Bearer  {access}"), 401),
        (format!("Bearer  {access} "), 401),
        (format!("Bearer\t{access}"), 401),
        (format!("Bearer {access},x"), 401),
    ] {
        let status = h
            .http
            .get(&url)
            .header("authorization", &header)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        assert_eq!(status, expected, "{header:?}");
    }
}

#[tokio::test]
async fn cursors_are_bound_to_their_list_organization_and_grant() {
    let h = Harness::new().await;
    let (_, tokens) = h.connect("org_harbor").await;
    let access = tokens["access_token"].as_str().unwrap();
    let (status, page) = h.api("org_harbor", "clients?limit=10", Some(access)).await;
    assert_eq!(status, 200);
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (status, _) = h
        .api(
            "org_harbor",
            &format!("clients?limit=10&cursor={cursor}"),
            Some(access),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = h
        .api(
            "org_harbor",
            &format!("properties?limit=10&cursor={cursor}"),
            Some(access),
        )
        .await;
    assert_eq!((status, error_code(&body)), (400, "invalid_cursor"));
    // Another grant of the same organization cannot use it either.
    let (_, other) = h.connect("org_harbor").await;
    let other = other["access_token"].as_str().unwrap();
    let (status, body) = h
        .api(
            "org_harbor",
            &format!("clients?limit=10&cursor={cursor}"),
            Some(other),
        )
        .await;
    assert_eq!((status, error_code(&body)), (400, "invalid_cursor"));
}

/// The control API answers only under a loopback host name (DNS rebinding) and refuses state
/// changes from another site's page; issued secrets are not served over HTTP at all.
#[tokio::test]
async fn the_control_api_refuses_rebinding_and_cross_site_requests() {
    let h = Harness::new().await;
    let reset = h.url("/__dev/reset");
    let status = |response: reqwest::Response| response.status().as_u16();
    assert_eq!(status(h.http.post(&reset).send().await.unwrap()), 200);
    let rebound = h
        .http
        .get(h.url("/__dev/state"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(status(rebound), 403);
    let cross_site = h
        .http
        .post(&reset)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(status(cross_site), 403);
    let fetch_site = h
        .http
        .post(&reset)
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(status(fetch_site), 403);
    let own_page = h
        .http
        .post(&reset)
        .header("origin", format!("http://{}", h.ws.addr))
        .header("sec-fetch-site", "same-origin")
        .send()
        .await
        .unwrap();
    assert_eq!(status(own_page), 200);
    let secrets = h
        .http
        .get(h.url("/__dev/issued-secrets"))
        .send()
        .await
        .unwrap();
    assert_eq!(status(secrets), 404);
}

// ---- OpenID Connect ------------------------------------------------------------------------

const SIGN_IN_SCOPES: &str = "openid profile email organization";

/// An installed organization's client: its id and delivered secret.
fn installed(h: &Harness, organization_id: &str) -> (String, String) {
    let (installation, delivery) = h.ws.control.install(organization_id, None).unwrap();
    let secret =
        h.ws.control
            .deliveries()
            .into_iter()
            .find(|d| d.id == delivery)
            .and_then(|d| d.client_secret)
            .unwrap();
    (installation.client_id, secret)
}

fn sign_in_params(flow: &Flow, client_id: &str, nonce: &str) -> Vec<(String, String)> {
    [
        ("response_type", "code".to_owned()),
        ("client_id", client_id.to_owned()),
        ("redirect_uri", format!("{APP}/auth/callback")),
        ("scope", SIGN_IN_SCOPES.to_owned()),
        ("state", flow.state.clone()),
        ("nonce", nonce.to_owned()),
        ("code_challenge", flow.challenge()),
        ("code_challenge_method", "S256".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

fn claims_of(id_token: &str) -> Value {
    let payload = id_token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn discovery_names_the_issuer_keys_userinfo_and_s256() {
    let h = Harness::new().await;
    let doc: Value = h
        .http
        .get(h.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], h.ws.base_url.as_str());
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(doc["userinfo_endpoint"], h.url("/oauth/userinfo").as_str());
    let jwks: Value = h
        .http
        .get(doc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["kty"], "RSA");
    let kid = h.ws.control.rotate_signing_key().unwrap();
    let jwks: Value = h
        .http
        .get(h.url("/oauth/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(jwks["keys"][0]["kid"], kid.as_str());
}

#[tokio::test]
async fn a_signed_in_workspace_user_signs_in_straight_through_with_an_id_token() {
    let h = Harness::new().await;
    let (client_id, secret) = installed(&h, "org_acme");
    let flow = Flow::new(&h.ws);

    // Not signed in to the Workspace: its sign-in page, then straight back with a code.
    let params = sign_in_params(&flow, &client_id, "nonce-1");
    let page = h.authorize_raw(&params).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let marker = "name=\"request_id\" value=\"";
    let start = html.find(marker).unwrap() + marker.len();
    let request_id = &html[start..start + html[start..].find('"').unwrap()];
    let response = h
        .http
        .post(h.url("/signin"))
        .form(&[("request_id", request_id), ("sub", "usr_ada")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert!(response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("qws_session="));
    let query = query_of(response.headers()["location"].to_str().unwrap());
    assert_eq!(query["state"], flow.state);
    assert_eq!(query["iss"], h.ws.base_url);

    // The code is for sign-in: no resource at the token endpoint, an ID token in the answer.
    let tokens: Value = h
        .http
        .post(h.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &query["code"]),
            ("redirect_uri", &format!("{APP}/auth/callback")),
            ("code_verifier", &flow.verifier),
            ("client_id", &client_id),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = claims_of(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "usr_ada");
    assert_eq!(claims["aud"], client_id.as_str());
    assert_eq!(claims["nonce"], "nonce-1");
    assert_eq!(claims["organization_id"], "org_acme");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");

    // UserInfo answers the role as it is now.
    let access = tokens["access_token"].as_str().unwrap();
    let info = |h: &Harness| {
        h.http
            .get(h.url("/oauth/userinfo"))
            .bearer_auth(access)
            .send()
    };
    let answer: Value = info(&h).await.unwrap().json().await.unwrap();
    assert_eq!(answer["role"], "admin");
    assert_eq!(answer["organization_id"], "org_acme");
    h.ws.control
        .set_role("usr_ada", "org_acme", "member")
        .unwrap();
    let answer: Value = info(&h).await.unwrap().json().await.unwrap();
    assert_eq!(answer["role"], "member");
    h.ws.control
        .fail_next_userinfo(identity::UserInfoFault::SubMismatch);
    let answer: Value = info(&h).await.unwrap().json().await.unwrap();
    assert_eq!(answer["sub"], "usr_someone_else");
    h.ws.control.remove_member("usr_ada", "org_acme").unwrap();
    assert_eq!(info(&h).await.unwrap().status(), 403);
    h.ws.control.disable_user("usr_ada").unwrap();
    assert_eq!(info(&h).await.unwrap().status(), 401);
}

#[tokio::test]
async fn the_workspace_session_approves_straight_through_and_only_members() {
    let h = Harness::new().await;
    let (client_id, _) = installed(&h, "org_acme");
    for (user, expected) in [("usr_milo", "code"), ("usr_hana", "error")] {
        let cookie = h.ws.control.workspace_session(user).unwrap();
        let flow = Flow::new(&h.ws);
        let url = url::Url::parse_with_params(
            &h.url("/oauth/authorize"),
            sign_in_params(&flow, &client_id, "n"),
        )
        .unwrap();
        let response = h
            .http
            .get(url)
            .header("cookie", format!("qws_session={cookie}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{user}");
        let query = query_of(response.headers()["location"].to_str().unwrap());
        assert!(query.contains_key(expected), "{user}: {query:?}");
    }
}

#[tokio::test]
async fn open_app_links_in_both_modes() {
    let h = Harness::new().await;
    let (client_id, secret) = installed(&h, "org_acme");
    let initiate =
        h.ws.control
            .open_app_link(
                "org_acme",
                oidc::OpenAppMode::Initiate,
                "usr_milo",
                Some("/clients"),
            )
            .unwrap();
    let query = query_of(&initiate);
    assert!(
        initiate.starts_with(&format!("{APP}/auth/login?")),
        "{initiate}"
    );
    assert_eq!(query["iss"], h.ws.base_url);
    assert_eq!(query["client_id"], client_id);
    assert_eq!(query["organization_id"], "org_acme");
    assert_eq!(query["login_hint"], "milo@acme.test");
    assert_eq!(query["target_link_uri"], "/clients");

    // The seed's flow: a code straight to the callback, state = the organization, no PKCE. A
    // real Workspace redeems it without a verifier (what makes its login CSRF possible).
    let legacy =
        h.ws.control
            .open_app_link("org_acme", oidc::OpenAppMode::Legacy, "usr_milo", None)
            .unwrap();
    assert!(
        legacy.starts_with(&format!("{APP}/auth/callback?")),
        "{legacy}"
    );
    let query = query_of(&legacy);
    assert_eq!(query["state"], "org_acme");
    let redeem = |code: String, verifier: Option<&'static str>| {
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code),
            ("redirect_uri", format!("{APP}/auth/callback")),
            ("client_id", client_id.clone()),
            ("client_secret", secret.clone()),
        ];
        if let Some(verifier) = verifier {
            form.push(("code_verifier", verifier.to_owned()));
        }
        h.http.post(h.url("/oauth/token")).form(&form).send()
    };
    let with_verifier = redeem(
        query["code"].clone(),
        Some("a-verifier-of-at-least-forty-three-characters-long"),
    )
    .await
    .unwrap();
    assert_eq!(with_verifier.status(), 400);
    let legacy =
        h.ws.control
            .open_app_link("org_acme", oidc::OpenAppMode::Legacy, "usr_milo", None)
            .unwrap();
    let tokens: Value = redeem(query_of(&legacy)["code"].clone(), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        claims_of(tokens["id_token"].as_str().unwrap())["sub"],
        "usr_milo"
    );

    assert!(h
        .ws
        .control
        .open_app_link("org_harbor", oidc::OpenAppMode::Initiate, "usr_hana", None)
        .is_err());
}
