use crate::harness::spawn_app;

#[tokio::test]
async fn healthz_and_readyz_answer_on_any_host() {
    let app = spawn_app().await;
    // By IP, not the configured host: probes are exempt from the canonical-host redirect.
    for (path, body) in [("/healthz", "ok\n"), ("/readyz", "ready\n")] {
        let response = app
            .client
            .get(format!("http://{}{}", app.addr, path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(response.text().await.unwrap(), body);
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/healthz")).send().await.unwrap();
    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
}

#[tokio::test]
async fn another_host_is_redirected_to_partner_app_url_keeping_path_and_query() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("http://{}/some/page?x=1&y=2", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 307);
    assert_eq!(
        response.headers()["location"],
        app.url("/some/page?x=1&y=2").as_str()
    );
}
