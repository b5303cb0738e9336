//! Providers are data: a second provider, added by configuration alone (a profile in the
//! profiles file pointing at a second dev Workspace, with routes of its own), connects and reads
//! data beside Qentrah's, and nothing of one provider reaches the other. Its client
//! authentication method is the profile's too.

use qentrah_connect::server::connections::{Binding, ConnectionAccess, ConnectionKey};
use qentrah_connect::server::ids::{OrganizationId, ProviderId};
use qentrah_connect::server::AppState;
use qentrah_dev_workspace::{
    ClientAuthMethod, ClientRegistration, DevWorkspace, DevWorkspaceConfig, CONFIDENTIAL_CLIENT_ID,
    CONFIDENTIAL_CLIENT_SECRET,
};
use serde_json::json;
use tokio::net::TcpListener;

use crate::harness::{app_config, location, start_instance, Options, TestApp, TestDatabase};

/// The app with Qentrah and a provider `name` from a profiles file holding `profile` (its
/// fields after `name` and `api_url`), served by a second dev Workspace whose clients
/// `register` adjusts; `env` holds the variables the profile names.
async fn with_second_provider(
    name: &str,
    profile: &str,
    register: impl FnOnce(&mut [ClientRegistration]),
    env: Vec<(&'static str, String)>,
) -> (TestApp, DevWorkspace, AppState, tempfile::TempDir) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let origin = format!("http://localhost:{}", addr.port());
    let qentrah = qentrah_dev_workspace::start(DevWorkspaceConfig::for_tests(&origin))
        .await
        .unwrap();
    // The second Workspace knows this app by the second provider's callback.
    let mut second_config = DevWorkspaceConfig::for_tests(&origin);
    for client in &mut second_config.clients {
        client.redirect_uris = vec![format!("{origin}/api/auth/{name}/callback")];
    }
    register(&mut second_config.clients);
    let second = qentrah_dev_workspace::start(second_config).await.unwrap();
    let mut app = TestApp::external(
        origin.clone(),
        addr,
        qentrah,
        TestDatabase::for_suite().await,
    );

    // Configuration alone: a profile in the profiles file, its secret (if any) in the
    // environment.
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("providers.toml");
    std::fs::write(
        &profiles,
        format!(
            "[[provider]]\nname = \"{name}\"\napi_url = \"{}\"\n{profile}",
            second.base_url
        ),
    )
    .unwrap();
    let mut options = Options {
        env,
        ..Options::default()
    };
    options
        .env
        .push(("PROVIDER_PROFILES_FILE", profiles.display().to_string()));
    let config = app_config(&app.ws, &origin, &app.database.url, &options);
    let state = start_instance(config, &app.clock, listener).await;
    app.state = Some(state.clone());
    (app, second, state, dir)
}

/// Starts a flow at `/api/auth/{name}/start` and consents at the second Workspace; returns
/// the callback URL.
async fn consent_at(app: &TestApp, second: &DevWorkspace, name: &str) -> String {
    let response = app
        .client
        .get(app.url(&format!("/api/auth/{name}/start")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let authorize = location(&response);
    assert!(authorize.starts_with(&second.base_url), "{authorize}");
    let callback = app.consent(&authorize, "org_acme", "approve").await;
    assert!(
        callback.starts_with(&format!("{}/api/auth/{name}/callback?", app.origin)),
        "{callback}"
    );
    callback
}

#[tokio::test]
async fn a_second_provider_added_by_configuration_connects_and_reads_data() {
    // A public client, as Qentrah's here.
    let (app, second, state, _dir) = with_second_provider(
        "second",
        &format!(
            "client_id = \"{}\"\n",
            qentrah_dev_workspace::PUBLIC_CLIENT_ID
        ),
        |_| {},
        Vec::new(),
    )
    .await;
    let callback = consent_at(&app, &second, "second").await;

    // A callback of the other provider's flow is refused at Qentrah's route, and the flow
    // still completes at its own.
    let elsewhere = callback.replace("/api/auth/second/", "/api/auth/qentrah/");
    let refused = app.finish(&app.client, &elsewhere).await;
    assert!(
        location(&refused).starts_with("/connect/failed"),
        "{:?}",
        refused.headers()
    );
    let response = app.finish(&app.client, &callback).await;
    assert_eq!(
        (response.status().as_u16(), location(&response)),
        (303, "/".to_owned())
    );

    // Stored under the second provider, for the second Workspace's resource; its data reads
    // through the same connections service, with the second provider's tokens and API.
    let key = ConnectionKey::new(
        &ProviderId::parse("second").unwrap(),
        &OrganizationId::parse("org_acme").unwrap(),
        &format!("{}/api/v1/partner", second.base_url),
    );
    let info = state
        .connections
        .tokens()
        .store()
        .info(&key)
        .await
        .unwrap()
        .expect("the second provider's connection is stored");
    // The row records the client its grant was issued to.
    assert_eq!(info.client_id, qentrah_dev_workspace::PUBLIC_CLIENT_ID);
    let access = ConnectionAccess::new(Binding {
        key,
        grant_id: info.grant_id,
    });
    let dashboard = state.connections.dashboard(&access).await.unwrap();
    assert_eq!(dashboard.organization.id, "org_acme");
    assert!(!dashboard.clients.records.is_empty());
    let view = state.connections.view(&access).await.unwrap();
    assert!(view.missing_scopes.is_empty(), "{view:?}");

    let (at_second, at_qentrah) = (second.control.counters(), app.ws.control.counters());
    assert_eq!(at_second.authorization_code_grants, 1);
    assert_eq!(at_second.partner_api_requests, 3);
    assert_eq!(
        (at_qentrah.token_requests, at_qentrah.partner_api_requests),
        (0, 0),
        "nothing of the second provider reaches Qentrah"
    );

    // The pages show Qentrah's connection, which this browser has not made.
    assert_eq!(
        app.server_fn(&app.client, "connection_status").await,
        (401, json!("NotConnected"))
    );
    // Qentrah's own flow still works beside it.
    app.connect(&app.client, "org_acme").await;
    assert_eq!(app.server_fn(&app.client, "dashboard").await.0, 200);
}

/// The client authentication method is profile data: a provider that holds its confidential
/// client to `client_secret_basic` (RFC 6749 §2.3.1) is connected, refreshed and revoked with
/// Basic credentials only (a secret in the form would be refused), the secret coming from the
/// variable the profile names.
#[tokio::test]
async fn a_provider_holding_its_client_to_client_secret_basic_connects_refreshes_and_revokes() {
    let (app, second, state, _dir) = with_second_provider(
        "basic",
        &format!(
            "client_id = \"{CONFIDENTIAL_CLIENT_ID}\"\nclient_secret_variable = \"BASIC_CLIENT_SECRET\"\nclient_authentication = \"client_secret_basic\"\n"
        ),
        |clients| {
            for client in clients {
                client.auth_method = ClientAuthMethod::ClientSecretBasic;
            }
        },
        vec![("BASIC_CLIENT_SECRET", CONFIDENTIAL_CLIENT_SECRET.to_owned())],
    )
    .await;
    let callback = consent_at(&app, &second, "basic").await;
    let response = app.finish(&app.client, &callback).await;
    assert_eq!(
        (response.status().as_u16(), location(&response)),
        (303, "/".to_owned())
    );

    let key = ConnectionKey::new(
        &ProviderId::parse("basic").unwrap(),
        &OrganizationId::parse("org_acme").unwrap(),
        &format!("{}/api/v1/partner", second.base_url),
    );
    let store = state.connections.tokens().store();
    let info = store.info(&key).await.unwrap().expect("stored");
    assert_eq!(info.client_id, CONFIDENTIAL_CLIENT_ID);
    let binding = Binding {
        key,
        grant_id: info.grant_id,
    };

    // The Workspace ends the access token early: the app's call is refused, it refreshes
    // (authenticating by Basic) and retries.
    second.control.expire_access_tokens("org_acme");
    let dashboard = state
        .connections
        .dashboard(&ConnectionAccess::new(binding.clone()))
        .await
        .unwrap();
    assert_eq!(dashboard.organization.id, "org_acme");
    state.connections.disconnect(&binding).await.unwrap();

    let counters = second.control.counters();
    assert_eq!(
        (
            counters.authorization_code_grants,
            counters.refresh_grants,
            counters.revocations,
            counters.token_errors
        ),
        (1, 1, 1, 0),
        "{counters:?}"
    );
    let client_calls: Vec<_> = second
        .control
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/oauth/token") || r.path.ends_with("/oauth/revoke"))
        .collect();
    assert_eq!(client_calls.len(), 3, "{client_calls:?}");
    for call in &client_calls {
        assert_eq!(call.status, 200, "{call:?}");
        assert_eq!(call.authorization.as_deref(), Some("Basic"), "{call:?}");
        assert!(
            call.form.iter().all(|(name, _)| name != "client_secret"),
            "{call:?}"
        );
    }
}
