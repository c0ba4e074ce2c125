//! Push notifications of transport changes, over HTTP to a real receiver.

use crate::helpers::{TestSandbox, V10, unlimited};
use axum::{Router, body::Bytes, extract::State, routing::post};
use bol_sandbox::SandboxConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;

/// Collects the bodies POSTed to it and answers 200.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Value>) {
    async fn receive(State(tx): State<mpsc::UnboundedSender<Value>>, body: Bytes) {
        let _ = tx.send(serde_json::from_slice(&body).expect("a JSON notification"));
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new().route("/hook", post(receive)).with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

async fn switch_transport_updates(app: &TestSandbox, enabled: bool) {
    let url = format!("{}/_sandbox/push/transport-updates", app.base);
    let r = app
        .client
        .put(&url)
        .json(&json!({ "enabled": enabled }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let now: Value = app
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(now, json!({ "enabled": enabled }));
}

#[tokio::test]
async fn transport_changes_are_pushed_until_switched_off() {
    // A marketplace hour a real second: about a hundred of the shipments are on their way,
    // so some transport event passes every few tenths of a second.
    let app = TestSandbox::start(SandboxConfig {
        time_scale: 3600.0,
        ..unlimited(1, 2000, 0)
    })
    .await;
    let (url, mut deliveries) = receiver().await;
    let token = app.token(1).await;
    let r = app
        .client
        .post(format!("{}/retailer/subscriptions", app.base))
        .bearer_auth(&token)
        .header("accept", V10)
        .json(&json!({"resources": ["SHIPMENT"], "url": url, "subscriptionType": "WEBHOOK"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    let pushed = tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
        .await
        .expect("a transport change within 10 s")
        .unwrap();
    assert_eq!(pushed["retailerId"], 1_000_000);
    assert_eq!(pushed["event"]["resource"], "SHIPMENT");
    assert_eq!(pushed["event"]["type"], "UPDATE_TRANSPORT_EVENT");
    let id = pushed["event"]["resourceId"].as_str().unwrap();
    let detail = app
        .get_json(&app.token(1).await, &format!("/retailer/shipments/{id}"))
        .await;
    assert!(
        !detail["transport"]["transportEvents"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    switch_transport_updates(&app, false).await;
    // What was queued before the switch may still be on its way.
    tokio::time::sleep(Duration::from_millis(300)).await;
    while deliveries.try_recv().is_ok() {}
    let counted = app.sandbox.stats().push.transport_updates;
    assert!(counted >= 1);
    // Another marketplace hour and a half, about a dozen events, none pushed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(deliveries.try_recv().is_err(), "pushed while switched off");
    assert_eq!(app.sandbox.stats().push.transport_updates, counted);

    switch_transport_updates(&app, true).await;
    tokio::time::timeout(Duration::from_secs(10), deliveries.recv())
        .await
        .expect("pushed again once switched on")
        .unwrap();
}
