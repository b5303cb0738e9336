//! Providers are data: a second provider, added by configuration alone (a profile in the
//! profiles file pointing at a second dev Workspace, with routes of its own), connects and reads
//! data beside Qentrah's, and nothing of one provider reaches the other.

use qentrah_connect::server::ids::{OrganizationId, ProviderId};
use qentrah_connect::server::vault::{Binding, ConnectionAccess, ConnectionKey};
use qentrah_dev_workspace::DevWorkspaceConfig;
use serde_json::json;
use tokio::net::TcpListener;

use crate::harness::{app_config, location, start_instance, Options, TestApp, TestDatabase};

#[tokio::test]
async fn a_second_provider_added_by_configuration_connects_and_reads_data() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let origin = format!("http://localhost:{}", addr.port());
    let qentrah = qentrah_dev_workspace::start(DevWorkspaceConfig::for_tests(&origin))
        .await
        .unwrap();
    // The second Workspace knows this app by the second provider's callback.
    let mut second_config = DevWorkspaceConfig::for_tests(&origin);
    for client in &mut second_config.clients {
        client.redirect_uris = vec![format!("{origin}/api/auth/second/callback")];
    }
    let second = qentrah_dev_workspace::start(second_config).await.unwrap();
    let mut app = TestApp::external(
        origin.clone(),
        addr,
        qentrah,
        TestDatabase::for_suite().await,
    );

    // Configuration alone: a profile in the profiles file, its secret (none: a public client,
    // as Qentrah's here) in the environment.
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("providers.toml");
    std::fs::write(
        &profiles,
        format!(
            "[[provider]]\nname = \"second\"\napi_url = \"{}\"\nclient_id = \"{}\"\n",
            second.base_url,
            qentrah_dev_workspace::PUBLIC_CLIENT_ID
        ),
    )
    .unwrap();
    let options = Options {
        env: vec![("PROVIDER_PROFILES_FILE", profiles.display().to_string())],
        ..Options::default()
    };
    let config = app_config(&app.ws, &origin, &app.database.url, &options);
    let state = start_instance(config, &app.clock, listener).await;
    app.state = Some(state.clone());

    let response = app
        .client
        .get(app.url("/api/auth/second/start"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let authorize = location(&response);
    assert!(authorize.starts_with(&second.base_url), "{authorize}");
    let callback = app.consent(&authorize, "org_acme", "approve").await;
    assert!(
        callback.starts_with(&format!("{origin}/api/auth/second/callback?")),
        "{callback}"
    );

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
