use crate::harness::spawn_app;

#[tokio::test]
async fn home_page_is_server_rendered_with_header_and_hydration_scripts() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.contains("Qentrah Connect"));
    assert!(html.contains("Connect your Qentrah Workspace"));
    assert!(html.contains("/pkg/qentrah-connect.js"), "hydration script");
    assert!(html.contains("/pkg/qentrah-connect.css"), "stylesheet");
}

#[tokio::test]
async fn unknown_page_is_a_404_page() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("Page not found"));
}
