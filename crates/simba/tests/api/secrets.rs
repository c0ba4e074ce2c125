//! A shop's `client_secret` never appears in a response body or in the log output.

use serde_json::json;

use crate::backend_tests;
use crate::helpers::{TestApp, captured_logs};

backend_tests!(the_client_secret_is_never_in_a_response_or_a_log);

async fn the_client_secret_is_never_in_a_response_or_a_log(app: TestApp) {
    let secret = format!("leak-canary-{:?}-{}", app.backend(), std::process::id());
    let seller = app.register("anna").await;
    let token = Some(seller.token.as_str());
    let created = app
        .post(
            "/api/v1/shops",
            token,
            json!({"name": "main", "client_id": "c1", "client_secret": secret}),
        )
        .await;
    let id = created.json()["id"].as_i64().unwrap();
    let path = format!("/api/v1/shops/{id}");
    app.get(&path, token).await;
    app.get("/api/v1/shops", token).await;
    app.patch(
        &path,
        token,
        json!({"client_secret": secret, "name": "renamed"}),
    )
    .await;
    app.put(
        &path,
        token,
        json!({"client_secret": secret, "name": "x", "client_id": "c2"}),
    )
    .await;
    app.post(
        "/api/v1/shops",
        token,
        json!({"name": "main", "client_id": "c2", "client_secret": secret}),
    )
    .await;
    app.post(
        "/api/v1/shops",
        token,
        json!({"name": "", "client_id": "c3", "client_secret": secret}),
    )
    .await;
    app.post(
        "/api/v1/shops",
        token,
        json!({"name": "a", "client_id": "c3", "client_secret": secret, "x": 1}),
    )
    .await;
    app.patch(
        &path,
        token,
        json!({"client_secret": format!("{secret} with space")}),
    )
    .await;
    app.get("/api/v1/openapi.json", None).await;

    let bodies = app.bodies.lock().unwrap().clone();
    assert!(bodies.len() >= 10);
    for body in &bodies {
        assert!(
            !body.contains(&secret),
            "a response contained the secret: {body}"
        );
    }
    let logs = captured_logs();
    assert!(
        logs.contains("shop added"),
        "the log capture is not working"
    );
    assert!(
        !logs.contains(&secret),
        "the log output contained the secret"
    );
}
