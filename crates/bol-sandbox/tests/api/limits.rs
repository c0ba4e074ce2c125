//! Rate limits: headers on every answer, 429 with Retry-After, refills, time scale.

use crate::helpers::{TestSandbox, header};
use bol_sandbox::{Limits, SandboxConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn limited(limits: Limits, time_scale: f64) -> SandboxConfig {
    SandboxConfig {
        limits,
        time_scale,
        ..SandboxConfig::default().with_accounts(2, 60, 0)
    }
}

#[tokio::test]
async fn every_answer_counts_down_and_the_excess_gets_429() {
    let app = TestSandbox::start(limited(
        Limits {
            list: 3,
            detail: 50,
            token: 20,
        },
        1.0,
    ))
    .await;
    let token = app.token(1).await;
    for remaining in ["2", "1", "0"] {
        let r = app.get(&token, "/retailer/shipments").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(header(&r, "x-ratelimit-limit"), "3");
        assert_eq!(header(&r, "x-ratelimit-remaining"), remaining);
        let reset: u64 = header(&r, "x-ratelimit-reset").parse().unwrap();
        assert!((1..=60).contains(&reset));
    }
    let r = app.get(&token, "/retailer/shipments").await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = header(&r, "retry-after").parse().unwrap();
    assert_eq!(header(&r, "x-ratelimit-remaining"), "0");
    let body: Value = r.json().await.unwrap();
    let detail = format!("Too many requests, retry in {retry} seconds.");
    assert_eq!(
        body,
        json!({"title": "Too Many Requests", "status": 429, "detail": detail})
    );

    // Groups and accounts have their own budgets.
    assert_eq!(app.page(&app.token(2).await, "FBR", 1).await.len(), 50);
    assert_eq!(
        app.get(&token, "/retailer/shipments/1").await.status(),
        StatusCode::NOT_FOUND
    );
    let stats = app.sandbox.stats();
    let one = stats.account("sandbox-1").unwrap();
    assert_eq!(
        (one.list.calls, one.list.rate_limited, one.detail.calls),
        (4, 1, 1)
    );
}

#[tokio::test]
async fn a_scaled_window_refills_within_a_second() {
    let app = TestSandbox::start(limited(
        Limits {
            list: 1,
            detail: 1,
            token: 5,
        },
        60.0,
    ))
    .await;
    let token = app.token(1).await;
    let r = app.get(&token, "/retailer/shipments").await;
    assert_eq!(header(&r, "x-ratelimit-reset"), "1");
    assert_eq!(
        app.get(&token, "/retailer/shipments").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(std::time::Duration::from_millis(1050)).await;
    assert_eq!(
        app.get(&token, "/retailer/shipments").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_token_endpoint_is_limited_too() {
    let app = TestSandbox::start(limited(
        Limits {
            list: 1,
            detail: 1,
            token: 2,
        },
        1.0,
    ))
    .await;
    assert_eq!(
        app.request_token("sandbox-1", "secret-1").await.status(),
        StatusCode::OK
    );
    let r = app.request_token("sandbox-1", "secret-1").await;
    assert_eq!(header(&r, "x-ratelimit-remaining"), "0");
    assert_eq!(
        app.request_token("sandbox-1", "secret-1").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn time_scale_shortens_token_lifetimes() {
    let app = TestSandbox::start(SandboxConfig {
        time_scale: 60.0,
        ..SandboxConfig::default()
    })
    .await;
    let body: Value = app
        .request_token("sandbox-1", "secret-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["expires_in"], 5);
}

#[tokio::test]
async fn unlimited_groups_send_no_limit_headers() {
    let app = TestSandbox::start(limited(Limits::OFF, 1.0)).await;
    let token = app.token(1).await;
    let r = app.get(&token, "/retailer/shipments").await;
    assert!(r.headers().get("x-ratelimit-limit").is_none());
}
