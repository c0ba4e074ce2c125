//! Tokens: issue, refusal, expiry, revocation, and the headers bol requires.

use crate::helpers::{TestSandbox, V10, header, unlimited};
use bol_sandbox::SandboxConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test]
async fn good_credentials_get_a_bearer_token_in_bols_shape() {
    let app = TestSandbox::start(unlimited(2, 1, 0)).await;
    let r = app.request_token("sandbox-2", "secret-2").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "content-type"), "application/json;charset=UTF-8");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 299);
    assert_eq!(body["scope"], "RETAILER");
    assert_eq!(body["access_token"].as_str().unwrap().split('.').count(), 3);
}

#[tokio::test]
async fn grant_type_may_come_in_the_query() {
    let app = TestSandbox::start(unlimited(1, 1, 0)).await;
    let r = app
        .client
        .post(format!("{}/token?grant_type=client_credentials", app.base))
        .basic_auth("sandbox-1", Some("secret-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .client
        .post(format!("{}/token", app.base))
        .basic_auth("sandbox-1", Some("secret-1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn bad_credentials_get_bols_invalid_client_answer() {
    let app = TestSandbox::start(unlimited(1, 1, 0)).await;
    for (id, secret) in [("sandbox-1", "wrong"), ("nobody", "secret-1")] {
        let r = app.request_token(id, secret).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": "invalid_client", "error_description": "Bad client credentials"})
        );
    }
    let stats = app.sandbox.stats();
    assert_eq!(stats.account("sandbox-1").unwrap().token.unauthorized, 1);
    assert_eq!(stats.unattributed, 1);
}

#[tokio::test]
async fn unknown_and_missing_tokens_are_refused() {
    let app = TestSandbox::start(unlimited(1, 1, 0)).await;
    let r = app.get("not.a-token.at-all", "/retailer/shipments").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .client
        .get(format!("{}/retailer/shipments", app.base))
        .header("accept", V10)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.sandbox.stats().unattributed, 2);
}

#[tokio::test]
async fn an_expired_token_gets_the_expired_jwt_answer() {
    // Scale 100: a 1 s lifetime lasts 10 ms, reported as 1 s, with 10 ms of skew allowed.
    let config = SandboxConfig {
        token_lifetime: 100,
        time_scale: 100.0,
        ..unlimited(1, 1, 0)
    };
    let app = TestSandbox::start(config).await;
    let r = app.request_token("sandbox-1", "secret-1").await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(
        app.get(token, "/retailer/shipments").await.status(),
        StatusCode::OK
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = app.get(token, "/retailer/shipments").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["title"], "Expired JWT");
    assert_eq!(body["status"], 401);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("JWT expired at "),
        "{body}"
    );
    assert_eq!(
        app.sandbox
            .stats()
            .account("sandbox-1")
            .unwrap()
            .list
            .unauthorized,
        1
    );
}

#[tokio::test]
async fn revoked_tokens_stop_working_and_new_ones_do() {
    let app = TestSandbox::start(unlimited(1, 1, 0)).await;
    let token = app.token(1).await;
    app.sandbox.revoke_tokens();
    assert_eq!(
        app.get(&token, "/retailer/shipments").await.status(),
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .client
        .post(format!("{}/_sandbox/revoke-tokens", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let token = app.token(1).await;
    assert_eq!(
        app.get(&token, "/retailer/shipments").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.sandbox
            .stats()
            .account("sandbox-1")
            .unwrap()
            .token
            .wasted,
        0
    );
}

#[tokio::test]
async fn another_accounts_shipment_is_not_found() {
    let app = TestSandbox::start(unlimited(2, 3, 0)).await;
    let (one, two) = (app.token(1).await, app.token(2).await);
    let id = app.page(&one, "FBR", 1).await[0]["shipmentId"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get(&one, &format!("/retailer/shipments/{id}"))
            .await
            .status(),
        StatusCode::OK
    );
    let r = app.get(&two, &format!("/retailer/shipments/{id}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["type"], "https://api.bol.com/problems");
    assert_eq!(body["title"], "Not Found");
    assert!(
        body["instance"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/retailer/shipments/{id}"))
    );
}

#[tokio::test]
async fn answers_carry_bols_headers_and_refuse_other_media_types() {
    let app = TestSandbox::start(unlimited(1, 1, 0)).await;
    let token = app.token(1).await;
    let r = app.get(&token, "/retailer/shipments").await;
    assert_eq!(
        header(&r, "content-type"),
        "application/vnd.retailer.v10+json;charset=UTF-8"
    );
    assert!(!header(&r, "x-request-id").is_empty());
    assert!(!header(&r, "x-rid").is_empty());
    for accept in ["application/json", "application/vnd.retailer.v9+json"] {
        let r = app
            .client
            .get(format!("{}/retailer/shipments", app.base))
            .bearer_auth(&token)
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE, "{accept}");
    }
}
