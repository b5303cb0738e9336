//! Sign-in (`AUTH_MODE=sso`) end to end against the dev Workspace's OpenID Connect: "Open App"
//! in both of its shapes, the login-CSRF the seed's shape allows (refused), the guard, role
//! re-checks, sign-out, and uninstall.

use std::time::Duration;

use qentrah_dev_workspace::identity::IdTokenFault;
use qentrah_dev_workspace::oidc::OpenAppMode;
use qentrah_dev_workspace::DEV_WEBHOOK_SECRET;

use crate::harness::{location, spawn_app_with, Options, TestApp};
use crate::marketplace::install;

async fn sso_app() -> TestApp {
    spawn_app_with(Options {
        env: vec![
            ("QENTRAH_WEBHOOK_SECRETS", DEV_WEBHOOK_SECRET.to_owned()),
            ("AUTH_MODE", "sso".to_owned()),
        ],
        ..Options::default()
    })
    .await
}

fn token_requests(app: &TestApp) -> usize {
    app.ws
        .control
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/oauth/token"))
        .count()
}

/// Signs `sub` in with a new browser; returns the browser.
async fn signed_in(app: &TestApp, organization_id: &str, sub: &str) -> reqwest::Client {
    let browser = app.new_browser();
    let response = app.open_app(&browser, organization_id, sub, None).await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/");
    browser
}

async fn get(browser: &reqwest::Client, app: &TestApp, path: &str) -> reqwest::Response {
    browser.get(app.url(path)).send().await.unwrap()
}

#[tokio::test]
async fn open_app_signs_in_at_the_target_with_a_new_session_id() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    let browser = app.new_browser();
    let link = app
        .ws
        .control
        .open_app_link(
            "org_acme",
            OpenAppMode::Initiate,
            "usr_milo",
            Some("/clients?q=1"),
        )
        .unwrap();
    let start = browser.get(link).send().await.unwrap();
    let before = start.headers()["set-cookie"].to_str().unwrap().to_owned();
    let authorize = location(&start);
    let query: std::collections::HashMap<String, String> = url::Url::parse(&authorize)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    assert_eq!(query["redirect_uri"], app.url("/auth/callback"));
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["login_hint"], "milo@acme.test");
    assert!(query.contains_key("nonce") && !query.contains_key("resource"));
    let callback = app.approve_as("usr_milo", &authorize).await;
    let done = browser.get(callback).send().await.unwrap();
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), "/clients?q=1");
    let after = done.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert_ne!(
        before.split(';').next(),
        after.split(';').next(),
        "the session id changes at sign-in"
    );
    let home = get(&browser, &app, "/").await;
    assert_eq!(home.status(), 200);
    let html = home.text().await.unwrap();
    assert!(
        html.contains("Milo Brandt") && html.contains("Sign out"),
        "{html}"
    );
}

#[tokio::test]
async fn signed_out_pages_redirect_and_server_functions_answer_json_401() {
    let app = sso_app().await;
    let response = get(&app.client, &app, "/clients?page=2").await;
    assert_eq!(response.status(), 303);
    assert_eq!(
        location(&response),
        "/login?return_to=%2Fclients%3Fpage%3D2"
    );
    let (status, body) = app.server_fn(&app.client, "dashboard").await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        serde_json::json!({"error": {"code": "login_required"}})
    );
    // Public routes stay public.
    assert_eq!(get(&app.client, &app, "/login").await.status(), 200);
    assert_eq!(get(&app.client, &app, "/healthz").await.status(), 200);
}

#[tokio::test]
async fn the_legacy_open_app_is_bounced_without_using_its_code_and_only_once() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    let browser = app.new_browser();
    let legacy = app
        .ws
        .control
        .open_app_link("org_acme", OpenAppMode::Legacy, "usr_milo", None)
        .unwrap();
    let tokens_before = token_requests(&app);
    let bounced = browser.get(&legacy).send().await.unwrap();
    assert_eq!(bounced.status(), 303);
    let to = location(&bounced);
    assert!(to.starts_with("/auth/login?iss="), "{to}");
    assert!(to.ends_with("&organization_id=org_acme"), "{to}");
    assert_eq!(
        token_requests(&app),
        tokens_before,
        "the legacy code was not redeemed"
    );
    // The proper flow it starts signs the Workspace's signed-in user straight through.
    let start = browser.get(app.url(&to)).send().await.unwrap();
    let callback = app.approve_as("usr_milo", &location(&start)).await;
    let done = browser.get(callback).send().await.unwrap();
    assert_eq!(location(&done), "/");
    assert_eq!(get(&browser, &app, "/").await.status(), 200);
    // A second legacy Open App within a minute is not bounced again.
    let again = app
        .ws
        .control
        .open_app_link("org_acme", OpenAppMode::Legacy, "usr_milo", None)
        .unwrap();
    let refused = browser.get(&again).send().await.unwrap();
    assert_eq!(location(&refused), "/login?reason=invalid_state");
}

#[tokio::test]
async fn an_attackers_callback_in_another_browser_signs_nobody_in() {
    let app = sso_app().await;
    install(&app, "1001").await;
    // The attacker runs a real flow of their own, and stops at the callback.
    let attacker = app.new_browser();
    let link = app
        .ws
        .control
        .open_app_link("1001", OpenAppMode::Initiate, "usr_mallory", None)
        .unwrap();
    let start = attacker.get(link).send().await.unwrap();
    let callback = app.approve_as("usr_mallory", &location(&start)).await;
    // The victim's browser is made to load it.
    let victim = app.new_browser();
    let tokens_before = token_requests(&app);
    let response = victim.get(&callback).send().await.unwrap();
    assert_eq!(location(&response), "/login?reason=invalid_state");
    assert_eq!(token_requests(&app), tokens_before, "no token request");
    assert_eq!(get(&victim, &app, "/").await.status(), 303, "no session");
}

#[tokio::test]
async fn an_id_token_for_another_organizations_client_is_refused() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    install(&app, "org_harbor").await;
    app.ws
        .control
        .fail_next_id_token(IdTokenFault::OtherClientAud);
    let browser = app.new_browser();
    let response = app.open_app(&browser, "org_acme", "usr_milo", None).await;
    assert_eq!(location(&response), "/login?reason=untrusted");
    assert_eq!(get(&browser, &app, "/").await.status(), 303);
}

#[tokio::test]
async fn members_and_admins_see_what_their_role_allows() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    let member = signed_in(&app, "org_acme", "usr_milo").await;
    let admin = signed_in(&app, "org_acme", "usr_ada").await;

    // No connection yet: the member is told to ask an admin, the admin may authorize.
    let (status, body) = app.server_fn(&member, "connection_status").await;
    assert_eq!((status, body), (403, serde_json::json!("AdminMustConnect")));
    let (status, _) = app.server_fn(&admin, "connection_status").await;
    assert_eq!(status, 401);

    let start = get(&member, &app, "/api/auth/qentrah/start").await;
    assert_eq!(start.status(), 403);
    assert!(start
        .text()
        .await
        .unwrap()
        .contains("Only Workspace admins can"));
    let (status, body) = app.server_fn(&member, "disconnect").await;
    assert_eq!(
        (status, body),
        (403, serde_json::json!({"error": {"code": "forbidden"}}))
    );
    assert_eq!(get(&member, &app, "/admin/users").await.status(), 403);

    // The admin connects the organization; every member sees that connection.
    let authorize = app.start_flow(&admin, None).await;
    let callback = app.consent(&authorize, "org_acme", "approve").await;
    assert_eq!(app.finish(&admin, &callback).await.status(), 303);
    let (status, body) = app.server_fn(&member, "connection_status").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["organization_id"], "org_acme");

    let users = get(&admin, &app, "/admin/users").await;
    assert_eq!(users.status(), 200);
    let html = users.text().await.unwrap();
    assert!(
        html.contains("Milo Brandt") && html.contains("ada@acme.test"),
        "{html}"
    );
}

#[tokio::test]
async fn a_connection_for_another_organization_than_the_admins_is_not_stored() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    let admin = signed_in(&app, "org_acme", "usr_ada").await;
    let authorize = app.start_flow(&admin, None).await;
    // The admin picks another organization on the consent page.
    let callback = app.consent(&authorize, "org_harbor", "approve").await;
    let response = app.finish(&admin, &callback).await;
    assert_eq!(
        location(&response),
        "/connect/failed?reason=wrong_organization"
    );
    let (status, _) = app.server_fn(&admin, "connection_status").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_role_change_applies_at_the_next_recheck_and_a_removed_user_is_signed_out() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    let admin = signed_in(&app, "org_acme", "usr_ada").await;
    assert_eq!(get(&admin, &app, "/admin/users").await.status(), 200);
    app.ws
        .control
        .set_role("usr_ada", "org_acme", "member")
        .unwrap();
    // Not yet due: the role is the one from sign-in.
    assert_eq!(get(&admin, &app, "/admin/users").await.status(), 200);
    app.clock.advance(Duration::from_secs(301));
    assert_eq!(get(&admin, &app, "/admin/users").await.status(), 403);
    assert_eq!(
        get(&admin, &app, "/").await.status(),
        200,
        "still signed in"
    );

    app.ws.control.remove_member("usr_ada", "org_acme").unwrap();
    app.clock.advance(Duration::from_secs(301));
    let response = get(&admin, &app, "/").await;
    assert_eq!(response.status(), 303);
    assert_eq!(location(&response), "/login?reason=removed&return_to=%2F");
    assert_eq!(get(&admin, &app, "/").await.status(), 303);
}

#[tokio::test]
async fn a_workspace_outage_is_borne_for_the_grace_period_only() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    let member = signed_in(&app, "org_acme", "usr_milo").await;
    let outage = || qentrah_dev_workspace::identity::UserInfoFault::Status { status: 503 };
    app.ws.control.fail_next_userinfo(outage());
    app.clock.advance(Duration::from_secs(301));
    assert_eq!(
        get(&member, &app, "/").await.status(),
        200,
        "within the grace"
    );
    app.ws.control.fail_next_userinfo(outage());
    app.clock.advance(Duration::from_secs(901));
    let response = get(&member, &app, "/").await;
    assert_eq!(
        location(&response),
        "/login?reason=recheck_failed&return_to=%2F"
    );
}

#[tokio::test]
async fn sign_out_needs_a_same_origin_post_and_leaves_the_old_cookie_worthless() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    let browser = app.new_browser();
    let signed = app.open_app(&browser, "org_acme", "usr_milo", None).await;
    let cookie = signed.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    // GET shows a confirmation and signs nothing out.
    assert_eq!(get(&browser, &app, "/auth/logout").await.status(), 200);
    assert_eq!(get(&browser, &app, "/").await.status(), 200);
    // A cross-site POST is refused.
    let cross_site = browser
        .post(app.url("/auth/logout"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status(), 403);
    assert_eq!(get(&browser, &app, "/").await.status(), 200);

    let out = browser
        .post(app.url("/auth/logout"))
        .header("origin", &app.origin)
        .send()
        .await
        .unwrap();
    assert_eq!(location(&out), "/login?signed_out=1");
    assert_eq!(get(&browser, &app, "/").await.status(), 303);
    // The old cookie, replayed from elsewhere, is worth nothing.
    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve("localhost", app.addr)
        .build()
        .unwrap()
        .get(app.url("/"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303);
}

#[tokio::test]
async fn users_are_kept_by_subject_never_by_email() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    let users = || async {
        app.state
            .as_ref()
            .unwrap()
            .users
            .user_count()
            .await
            .unwrap()
    };
    signed_in(&app, "org_acme", "usr_ada").await;
    // Another person with the same (unverified) email: another user.
    signed_in(&app, "org_acme", "usr_eve").await;
    assert_eq!(users().await, 2);
    // The same person, with a changed email, signs in again: still one user, the new email.
    app.ws
        .control
        .set_email("usr_ada", "ada.okafor@acme.test")
        .unwrap();
    let admin = signed_in(&app, "org_acme", "usr_ada").await;
    assert_eq!(users().await, 2);
    let page = get(&admin, &app, "/admin/users")
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("ada.okafor@acme.test"), "{page}");
    // A user in two organizations: one user, two memberships.
    install(&app, "org_harbor").await;
    signed_in(&app, "org_acme", "usr_bo").await;
    signed_in(&app, "org_harbor", "usr_bo").await;
    assert_eq!(users().await, 3);
}

#[tokio::test]
async fn a_role_the_map_does_not_know_gets_no_access_and_a_page_naming_it() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    let browser = app.new_browser();
    let response = app.open_app(&browser, "org_acme", "usr_gus", None).await;
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("“billing”"));
    assert_eq!(get(&browser, &app, "/").await.status(), 303);
}

#[tokio::test]
async fn uninstall_ends_the_organizations_sessions() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    let member = signed_in(&app, "org_acme", "usr_milo").await;
    assert_eq!(get(&member, &app, "/").await.status(), 200);
    app.ws.control.uninstall("org_acme", None).unwrap();
    let mut signed_out = false;
    for _ in 0..100 {
        if get(&member, &app, "/").await.status() == 303 {
            signed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(signed_out, "the uninstall ended the session");
}

#[tokio::test]
async fn a_link_for_another_workspace_or_an_uninstalled_organization_starts_nothing() {
    let app = sso_app().await;
    let other = app
        .client
        .get(app.url("/auth/login?iss=https%3A%2F%2Fevil.example&organization_id=org_acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 400);
    assert!(other
        .text()
        .await
        .unwrap()
        .contains("for another Workspace"));
    let iss = url::form_urlencoded::byte_serialize(app.ws.base_url.as_bytes()).collect::<String>();
    let not_installed = app
        .client
        .get(app.url(&format!("/auth/login?iss={iss}&organization_id=org_acme")))
        .send()
        .await
        .unwrap();
    assert_eq!(not_installed.status(), 404);
    assert!(not_installed
        .text()
        .await
        .unwrap()
        .contains("not installed for this organization"));
}

#[tokio::test]
async fn no_sign_in_secret_reaches_the_browser_or_the_database_in_clear() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    let browser = app.new_browser();
    let mut seen = Vec::new();
    // Open App (initiate), with every answer of the app kept.
    let link = app
        .ws
        .control
        .open_app_link(
            "org_acme",
            OpenAppMode::Initiate,
            "usr_ada",
            Some("/clients"),
        )
        .unwrap();
    let start = browser.get(link).send().await.unwrap();
    // Its Location is the authorization request, which carries the nonce by design (OIDC Core
    // §3.1.2.1, like `state`); everything else must not.
    let cookies: Vec<&str> = start
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    seen.push(cookies.join("; "));
    let callback = app.approve_as("usr_ada", &location(&start)).await;
    let done = browser.get(callback).send().await.unwrap();
    seen.push(format!("{:?}", done.headers()));
    // The legacy shape too (its code is never redeemed), then pages, a re-check that refreshes
    // the sign-in grant, and the admin page.
    let legacy = app
        .ws
        .control
        .open_app_link("org_acme", OpenAppMode::Legacy, "usr_ada", None)
        .unwrap();
    let bounced = app.new_browser().get(legacy).send().await.unwrap();
    seen.push(format!("{:?}", bounced.headers()));
    app.clock.advance(Duration::from_secs(3700));
    for path in ["/", "/clients", "/admin/users", "/login", "/connection"] {
        let page = get(&browser, &app, path).await;
        seen.push(format!("{:?}", page.headers()));
        seen.push(page.text().await.unwrap());
    }
    let secrets = app.ws.control.issued_secrets();
    let id_tokens = secrets.iter().filter(|s| s.starts_with("eyJ")).count();
    assert!(id_tokens >= 1, "the Workspace issued ID tokens");
    assert!(
        app.ws.control.counters().refresh_grants >= 1,
        "the re-check refreshed"
    );
    let raw = app.database.raw_contents().await;
    let raw = String::from_utf8_lossy(&raw);
    for secret in &secrets {
        assert!(
            !raw.contains(secret.as_str()),
            "plaintext {} in the database",
            &secret[..4]
        );
        for text in &seen {
            assert!(
                !text.contains(secret.as_str()),
                "{} reached the browser: {}",
                &secret[..4],
                &text[..text.len().min(400)]
            );
        }
    }
}

#[tokio::test]
async fn a_rotated_signing_key_is_fetched_once_and_an_unknown_one_is_refused() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    signed_in(&app, "org_acme", "usr_milo").await;
    let jwks_fetches = || {
        app.ws
            .control
            .requests()
            .iter()
            .filter(|r| r.path.ends_with("/oauth/jwks"))
            .count()
    };
    let before = jwks_fetches();
    // The Workspace rotates its key: the app does not know the new kid and fetches the keys
    // once more (not sooner than the refetch interval after the last fetch).
    app.ws.control.rotate_signing_key().unwrap();
    app.clock.advance(Duration::from_secs(11));
    signed_in(&app, "org_acme", "usr_milo").await;
    assert_eq!(jwks_fetches(), before + 1);
    // A token signed with a key the Workspace does not publish: refused, and the keys are not
    // fetched again within the interval.
    app.ws.control.fail_next_id_token(IdTokenFault::UnknownKid);
    let browser = app.new_browser();
    let response = app.open_app(&browser, "org_acme", "usr_milo", None).await;
    assert_eq!(location(&response), "/login?reason=untrusted");
    assert_eq!(jwks_fetches(), before + 1);
}

#[tokio::test]
async fn a_failed_discovery_keeps_the_last_good_copy() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    signed_in(&app, "org_acme", "usr_milo").await;
    app.ws
        .control
        .set_metadata(qentrah_dev_workspace::MetadataVariant::NotFound);
    // An hour on, on both clocks (the ID token's times are the Workspace's): the copy is stale,
    // the fetch fails, and the last good copy still signs people in.
    app.clock.advance(Duration::from_secs(3601));
    app.ws.control.advance_clock(Duration::from_secs(3601));
    signed_in(&app, "org_acme", "usr_ada").await;
    let discoveries = app
        .ws
        .control
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/openid-configuration"))
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert_eq!(
        discoveries,
        vec![200, 404],
        "fetched once, then tried again and failed"
    );
}

#[tokio::test]
async fn a_session_ends_after_session_absolute_secs_however_active() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    let browser = signed_in(&app, "org_acme", "usr_milo").await;
    // Active every three hours (each a re-check, and a refresh of the sign-in grant)...
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(3 * 3600));
        assert_eq!(get(&browser, &app, "/").await.status(), 200);
    }
    // ...and still ended twelve hours after sign-in (SESSION_ABSOLUTE_SECS' default).
    app.clock.advance(Duration::from_secs(3 * 3600 + 1));
    let response = get(&browser, &app, "/").await;
    assert_eq!(
        location(&response),
        "/login?reason=session_expired&return_to=%2F"
    );
}

#[tokio::test]
async fn an_es256_signing_key_signs_people_in_too() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    app.ws
        .control
        .rotate_signing_key_to(qentrah_dev_workspace::identity::SigningAlg::ES256)
        .unwrap();
    app.ws.control.retire_old_signing_keys();
    signed_in(&app, "org_acme", "usr_milo").await;
}

#[tokio::test]
async fn a_userinfo_answer_that_does_not_match_signs_nobody_in() {
    use qentrah_dev_workspace::identity::UserInfoFault;
    let app = sso_app().await;
    install(&app, "org_acme").await;
    for (fault, reason) in [
        (UserInfoFault::SubMismatch, "untrusted"),
        (UserInfoFault::OrganizationMismatch, "untrusted"),
        (UserInfoFault::MissingOrganization, "untrusted"),
        (UserInfoFault::Status { status: 503 }, "unavailable"),
        (UserInfoFault::Status { status: 401 }, "untrusted"),
    ] {
        app.ws.control.fail_next_userinfo(fault.clone());
        let browser = app.new_browser();
        let response = app.open_app(&browser, "org_acme", "usr_milo", None).await;
        assert_eq!(
            location(&response),
            format!("/login?reason={reason}"),
            "{fault:?}"
        );
        assert_eq!(get(&browser, &app, "/").await.status(), 303, "{fault:?}");
    }
    // A role the Workspace answers that the map does not know: no access, the role named.
    app.ws.control.fail_next_userinfo(UserInfoFault::Role {
        role: "<b>auditor</b>".to_owned(),
    });
    let response = app
        .open_app(&app.new_browser(), "org_acme", "usr_milo", None)
        .await;
    assert_eq!(response.status(), 403);
    let page = response.text().await.unwrap();
    assert!(page.contains("&lt;b&gt;auditor&lt;/b&gt;"), "{page}");
}

#[tokio::test]
async fn signing_in_again_ends_the_previous_sign_in_and_its_grant() {
    let app = sso_app().await;
    install(&app, "org_acme").await;
    let browser = signed_in(&app, "org_acme", "usr_milo").await;
    assert_eq!(get(&browser, &app, "/").await.status(), 200);
    let revocations = app.ws.control.counters().revocations;
    let again = app.open_app(&browser, "org_acme", "usr_ada", None).await;
    assert_eq!(location(&again), "/");
    let sign_ins = app.database.scalar("SELECT COUNT(*) FROM sign_ins").await;
    assert_eq!(sign_ins, Some(1), "one sign-in per browser");
    for _ in 0..50 {
        if app.ws.control.counters().revocations > revocations {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.ws.control.counters().revocations, revocations + 1);
    let page = get(&browser, &app, "/").await.text().await.unwrap();
    assert!(page.contains("Ada Okafor"), "the new user");
}

#[tokio::test]
async fn a_path_with_dot_or_encoded_segments_is_refused_before_any_page() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = sso_app().await;
    // Browsers and reqwest clean such paths before sending; a raw client does not.
    for path in [
        "/auth/../admin/users",
        "/pkg/%2e%2e/clients",
        "/auth/%2E%2E/admin/users",
        "//admin/users",
    ] {
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let port = app.addr.port();
        stream
            .write_all(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{path}: {}",
            &answer[..answer.len().min(200)]
        );
    }
}
