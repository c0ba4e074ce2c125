//! axum's own rejections and edge cases answer problem+json, never a 500.

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(
    malformed_json_is_400,
    a_wrong_or_missing_content_type_is_400,
    a_missing_body_is_400,
    unknown_routes_are_404_and_wrong_methods_405,
    a_body_over_the_limit_is_413,
    unknown_fields_are_422_naming_the_field,
    a_host_outside_allowed_hosts_is_refused,
);

async fn malformed_json_is_400(app: TestApp) {
    let response = app
        .send(
            app.client
                .post(app.url("/api/v1/auth/register"))
                .header("content-type", "application/json")
                .body("{\"username\": "),
        )
        .await;
    let problem = response.problem(400);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Malformed JSON")
    );
}

async fn a_wrong_or_missing_content_type_is_400(app: TestApp) {
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let mut request = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .body(r#"{"username":"a","password":"b"}"#);
        if let Some(ct) = content_type {
            request = request.header("content-type", ct);
        }
        app.send(request).await.problem(400);
    }
}

async fn a_missing_body_is_400(app: TestApp) {
    app.send(
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("content-type", "application/json"),
    )
    .await
    .problem(400);
}

async fn unknown_routes_are_404_and_wrong_methods_405(app: TestApp) {
    app.get("/api/v1/nothing-here", None).await.problem(404);
    app.get("/nothing-here", None).await.problem(404);
    let response = app
        .send(app.client.delete(app.url("/api/v1/auth/login")))
        .await;
    response.problem(405);
    let put = app.send(app.client.put(app.url("/api/v1/shipments"))).await;
    put.problem(405);
}

async fn a_body_over_the_limit_is_413(app: TestApp) {
    let seller = app.register("anna").await;
    let huge = format!(
        r#"{{"name": "{}", "client_id": "c", "client_secret": "s"}}"#,
        "x".repeat(200_000)
    );
    let response = app
        .send(
            app.client
                .post(app.url("/api/v1/shops"))
                .header("Authorization", format!("Token {}", seller.token))
                .header("content-type", "application/json")
                .body(huge),
        )
        .await;
    response.problem(413);
    let page = app.get("/api/v1/shops", Some(&seller.token)).await.json();
    assert_eq!(page["count"], 0);
}

async fn unknown_fields_are_422_naming_the_field(app: TestApp) {
    let response = app
        .post(
            "/api/v1/auth/register",
            None,
            serde_json::json!({"username": "anna", "email": "a@example.com", "password": "correct horse", "is_admin": true}),
        )
        .await;
    let problem = response.problem(422);
    assert_eq!(problem["errors"]["is_admin"][0], "is not a known field");
}

async fn a_host_outside_allowed_hosts_is_refused(app: TestApp) {
    let restricted = TestApp::spawn_with(app.backend(), |config| {
        config.allowed_hosts = simba::config::AllowedHosts::List(vec!["simba.example".into()]);
    })
    .await
    .unwrap();
    restricted.get("/healthz", None).await.problem(400);
    let allowed = restricted
        .send(
            restricted
                .client
                .get(restricted.url("/healthz"))
                .header("host", "simba.example"),
        )
        .await;
    assert_eq!(allowed.status, 200);
}
