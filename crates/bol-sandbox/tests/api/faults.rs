//! Faults: 5xx pages, malformed and truncated bodies, dropped connections, latency, all
//! switchable at runtime.

use crate::helpers::{TestSandbox, unlimited};
use bol_sandbox::{Faults, SandboxConfig};
use reqwest::StatusCode;
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_5xx_fault_answers_with_an_html_page() {
    let app = TestSandbox::start(unlimited(1, 5, 0)).await;
    let token = app.token(1).await;
    app.sandbox.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let r = app.get(&token, "/retailer/shipments").await;
    assert!(r.status().is_server_error());
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.text().await.unwrap().contains("<html>"));
    app.sandbox.set_faults(Faults::default());
    assert_eq!(
        app.get(&token, "/retailer/shipments").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.sandbox
            .stats()
            .account("sandbox-1")
            .unwrap()
            .list
            .faults,
        1
    );
}

#[tokio::test]
async fn malformed_and_truncated_bodies_fail_to_parse() {
    let app = TestSandbox::start(unlimited(1, 5, 0)).await;
    let token = app.token(1).await;
    app.sandbox.set_faults(Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    });
    let r = app.get(&token, "/retailer/shipments").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(serde_json::from_str::<serde_json::Value>(&r.text().await.unwrap()).is_err());
    app.sandbox.set_faults(Faults {
        truncated_rate: 1.0,
        ..Faults::default()
    });
    let r = app.get(&token, "/retailer/shipments").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.bytes().await.is_err(),
        "a truncated body is a transport error"
    );
}

#[tokio::test]
async fn a_dropped_connection_gets_no_answer_at_all() {
    let app = TestSandbox::start(unlimited(1, 5, 0)).await;
    let token = app.token(1).await;
    app.sandbox.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    let err = app
        .get_raw(&token, "/retailer/shipments")
        .await
        .unwrap_err();
    assert!(err.is_request() || err.is_connect(), "{err:?}");
    app.sandbox.set_faults(Faults::default());
    assert_eq!(
        app.get(&token, "/retailer/shipments").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn latency_and_faults_can_be_set_over_http() {
    let app = TestSandbox::start(SandboxConfig {
        faults: Faults {
            latency_ms: 150,
            ..Faults::default()
        },
        ..unlimited(1, 5, 0)
    })
    .await;
    let token = app.token(1).await;
    let started = Instant::now();
    app.get(&token, "/retailer/shipments").await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    let r = app
        .client
        .put(format!("{}/_sandbox/faults", app.base))
        .json(&serde_json::json!({"error_rate": 1.0}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        app.get(&token, "/retailer/shipments")
            .await
            .status()
            .is_server_error()
    );
    let r = app
        .client
        .put(format!("{}/_sandbox/faults", app.base))
        .json(&serde_json::json!({"drop_rate": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn half_the_requests_fail_at_a_half_rate() {
    let app = TestSandbox::start(SandboxConfig {
        faults: Faults {
            error_rate: 0.5,
            ..Faults::default()
        },
        ..unlimited(1, 5, 0)
    })
    .await;
    let mut token = None;
    while token.is_none() {
        let r = app.request_token("sandbox-1", "secret-1").await;
        if r.status() == StatusCode::OK {
            token = Some(
                r.json::<serde_json::Value>().await.unwrap()["access_token"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
    }
    let token = token.unwrap();
    let mut failed = 0;
    for _ in 0..200 {
        if app
            .get(&token, "/retailer/shipments")
            .await
            .status()
            .is_server_error()
        {
            failed += 1;
        }
    }
    assert!((60..=140).contains(&failed), "{failed} of 200 failed");
    assert_eq!(
        app.sandbox
            .stats()
            .account("sandbox-1")
            .unwrap()
            .list
            .faults,
        failed
    );
}
