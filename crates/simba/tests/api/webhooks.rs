//! `/webhooks`: endpoints, their signed deliveries to a receiver in the test, retries,
//! redelivery, the address rules, and the events a sync sends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::backend_tests;
use crate::helpers::sync_setup::{SyncSetup, SyncTest};
use crate::helpers::{Backend, Seller, TestApp, run_with};

backend_tests!(
    endpoints_are_created_listed_changed_and_deleted_and_the_secret_is_shown_once,
    another_sellers_endpoints_and_deliveries_are_not_found,
    bad_fields_are_a_422_naming_the_field,
    a_local_receiver_gets_a_test_event_it_can_verify_and_a_forged_secret_cannot,
    a_receiver_answering_500_then_200_is_retried_until_delivered,
    redelivery_sends_the_event_again_as_a_new_delivery,
    deleting_the_seller_deletes_their_endpoints_and_deliveries,
    the_delivery_log_forgets_ended_deliveries_after_its_retention,
    an_inactive_endpoint_gets_no_test_and_no_redelivery,
);

/// The tests that start their own app, on a runtime of two threads.
mod own_app {
    use super::*;

    crate::multi_thread_backend_tests!(
        private_and_loopback_targets_are_refused_without_the_setting,
        a_hanging_receiver_does_not_slow_a_sync_and_the_run_event_arrives,
        an_initial_sync_sends_each_shipment_once_in_events_of_up_to_100,
        refused_credentials_send_the_shop_and_the_failed_run,
    );
}

/// A request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: String,
}

/// How the receiver answers: the statuses in order, then 200; or never.
#[derive(Debug, Clone)]
enum Answer {
    Statuses(Vec<u16>),
    Hang,
}

/// A webhook receiver on 127.0.0.1, recording what it gets.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(answer: Answer) -> Receiver {
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let script = Arc::new(Mutex::new(answer));
        let log = received.clone();
        let handler = move |headers: HeaderMap, body: String| {
            let log = log.clone();
            let script = script.clone();
            async move {
                log.lock().unwrap().push(Received { headers, body });
                let next = match &mut *script.lock().unwrap() {
                    Answer::Hang => None,
                    Answer::Statuses(statuses) if statuses.is_empty() => Some(200),
                    Answer::Statuses(statuses) => Some(statuses.remove(0)),
                };
                match next {
                    Some(status) => StatusCode::from_u16(status).unwrap(),
                    None => std::future::pending().await,
                }
            }
        };
        let router = axum::Router::new().route("/hook", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.ok() });
        Receiver { url, received }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until the receiver has got `count` requests; returns them.
    async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..400 {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the receiver got {} requests, not {count}",
            self.received().len()
        );
    }
}

/// Verifies a delivery as a receiver would, with the Standard Webhooks algorithm written here
/// independently of Simba's.
fn verifies(secret: &str, received: &Received) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let header = |name: &str| received.headers[name].to_str().unwrap().to_owned();
    let signed = format!(
        "{}.{}.{}",
        header("webhook-id"),
        header("webhook-timestamp"),
        received.body
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    header("webhook-signature")
        .split(' ')
        .any(|signature| signature == expected)
}

async fn create(app: &TestApp, seller: &Seller, url: &str, events: &[&str]) -> Value {
    let response = app
        .post(
            "/api/v1/webhooks",
            Some(&seller.token),
            json!({"url": url, "events": events, "description": "orders system"}),
        )
        .await;
    assert_eq!(response.status, 201, "{}", response.text);
    response.json()
}

async fn deliveries(app: &TestApp, seller: &Seller, webhook: i64) -> Vec<Value> {
    let response = app
        .get(
            &format!("/api/v1/webhooks/{webhook}/deliveries"),
            Some(&seller.token),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
    response.json()["results"].as_array().unwrap().clone()
}

/// Waits until every delivery of the endpoint has the status; returns them.
async fn wait_for_deliveries(
    app: &TestApp,
    seller: &Seller,
    webhook: i64,
    status: &str,
) -> Vec<Value> {
    for _ in 0..400 {
        let list = deliveries(app, seller, webhook).await;
        if !list.is_empty() && list.iter().all(|d| d["status"] == status) {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "deliveries did not all become {status}: {:?}",
        deliveries(app, seller, webhook).await
    );
}

async fn endpoints_are_created_listed_changed_and_deleted_and_the_secret_is_shown_once(
    app: TestApp,
) {
    let seller = app.register("anna").await;
    let created = create(
        &app,
        &seller,
        "https://93.184.216.34/simba",
        &["sync_run.failed", "shipments.changed"],
    )
    .await;
    let id = created["id"].as_i64().unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(
        created["events"],
        json!(["shipments.changed", "sync_run.failed"])
    );
    assert_eq!(created["active"], true);
    assert!(created["failing_since"].is_null());
    let shown = app
        .get(&format!("/api/v1/webhooks/{id}"), Some(&seller.token))
        .await;
    assert_eq!(shown.status, 200);
    assert!(shown.json().get("secret").is_none(), "{}", shown.text);
    let list = app
        .get("/api/v1/webhooks", Some(&seller.token))
        .await
        .json();
    assert_eq!(list["count"], 1);
    assert!(list["results"][0].get("secret").is_none());
    let changed = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            Some(&seller.token),
            json!({"events": ["webhook.test"], "active": false, "description": "off"}),
        )
        .await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let changed = changed.json();
    assert_eq!(changed["events"], json!(["webhook.test"]));
    assert_eq!(changed["active"], false);
    assert_eq!(changed["url"], "https://93.184.216.34/simba");
    assert!(changed.get("secret").is_none());
    let deleted = app
        .delete(&format!("/api/v1/webhooks/{id}"), Some(&seller.token))
        .await;
    assert_eq!(deleted.status, 204);
    let gone = app
        .get(&format!("/api/v1/webhooks/{id}"), Some(&seller.token))
        .await;
    gone.problem(404);
}

async fn another_sellers_endpoints_and_deliveries_are_not_found(app: TestApp) {
    let receiver = Receiver::start(Answer::Statuses(vec![])).await;
    let anna = app.register("anna").await;
    let mallory = app.register("mallory").await;
    let id = create(&app, &anna, &receiver.url, &["webhook.test"]).await["id"]
        .as_i64()
        .unwrap();
    let sent = app
        .post(
            &format!("/api/v1/webhooks/{id}/test"),
            Some(&anna.token),
            json!({}),
        )
        .await;
    assert_eq!(sent.status, 202, "{}", sent.text);
    let delivery = wait_for_deliveries(&app, &anna, id, "delivered").await[0]["id"]
        .as_i64()
        .unwrap();
    let token = Some(mallory.token.as_str());
    let base = format!("/api/v1/webhooks/{id}");
    app.get(&base, token).await.problem(404);
    app.patch(&base, token, json!({"description": "mine"}))
        .await
        .problem(404);
    app.post(&format!("{base}/test"), token, json!({}))
        .await
        .problem(404);
    app.get(&format!("{base}/deliveries"), token)
        .await
        .problem(404);
    app.post(
        &format!("{base}/deliveries/{delivery}/redeliver"),
        token,
        json!({}),
    )
    .await
    .problem(404);
    app.delete(&base, token).await.problem(404);
    // Anna's delivery under another of her endpoints' ids is not found either.
    let other = create(&app, &anna, &receiver.url, &["webhook.test"]).await["id"]
        .as_i64()
        .unwrap();
    app.post(
        &format!("/api/v1/webhooks/{other}/deliveries/{delivery}/redeliver"),
        Some(&anna.token),
        json!({}),
    )
    .await
    .problem(404);
    app.get("/api/v1/webhooks/abc", Some(&anna.token))
        .await
        .problem(404);
    assert_eq!(app.get("/api/v1/webhooks", token).await.json()["count"], 0);
    assert_eq!(receiver.received().len(), 1);
}

async fn bad_fields_are_a_422_naming_the_field(app: TestApp) {
    let seller = app.register("anna").await;
    let token = Some(seller.token.as_str());
    for (body, field) in [
        (
            json!({"url": "https://93.184.216.34/", "events": ["shipments.deleted"]}),
            "events",
        ),
        (
            json!({"url": "https://93.184.216.34/", "events": []}),
            "events",
        ),
        (
            json!({"url": "not a url", "events": ["webhook.test"]}),
            "url",
        ),
        (
            json!({"url": "ftp://example.com/", "events": ["webhook.test"]}),
            "url",
        ),
        (
            json!({"url": format!("https://93.184.216.34/{}", "a".repeat(2048)), "events": ["webhook.test"]}),
            "url",
        ),
        (
            json!({"url": "https://93.184.216.34/", "events": ["webhook.test"], "description": "d".repeat(501)}),
            "description",
        ),
        (json!({"events": ["webhook.test"]}), "url"),
        (json!({"url": "https://93.184.216.34/"}), "events"),
    ] {
        let problem = app
            .post("/api/v1/webhooks", token, body.clone())
            .await
            .problem(422);
        assert!(problem["errors"][field].is_array(), "{body} -> {problem}");
    }
    let unknown = app
        .post(
            "/api/v1/webhooks",
            token,
            json!({"url": "https://93.184.216.34/", "events": ["webhook.test"], "secret": "mine"}),
        )
        .await;
    assert_eq!(unknown.status, 422, "{}", unknown.text);
    for n in 0..20 {
        create(
            &app,
            &seller,
            &format!("https://93.184.216.34/{n}"),
            &["webhook.test"],
        )
        .await;
    }
    let too_many = app
        .post(
            "/api/v1/webhooks",
            token,
            json!({"url": "https://93.184.216.34/21", "events": ["webhook.test"]}),
        )
        .await;
    too_many.problem(409);
}

async fn private_and_loopback_targets_are_refused_without_the_setting(backend: Backend) {
    run_with(
        backend,
        |config| config.webhooks.allow_private = false,
        |app| async move {
            let seller = app.register("anna").await;
            for url in [
                "https://127.0.0.1/hook",
                "https://10.0.0.8/hook",
                "https://169.254.169.254/latest",
                "https://[::1]/hook",
                "https://[::ffff:192.168.0.1]/hook",
                "https://100.64.0.1/hook",
                "https://localhost/hook",
                "http://hooks.example.com/hook",
            ] {
                let problem = app
                    .post(
                        "/api/v1/webhooks",
                        Some(&seller.token),
                        json!({"url": url, "events": ["webhook.test"]}),
                    )
                    .await
                    .problem(422);
                assert!(problem["errors"]["url"].is_array(), "{url}: {problem}");
            }
        },
    )
    .await;
}

async fn a_local_receiver_gets_a_test_event_it_can_verify_and_a_forged_secret_cannot(app: TestApp) {
    let receiver = Receiver::start(Answer::Statuses(vec![])).await;
    let seller = app.register("anna").await;
    let created = create(&app, &seller, &receiver.url, &["webhook.test"]).await;
    let id = created["id"].as_i64().unwrap();
    let secret = created["secret"].as_str().unwrap();
    let sent = app
        .post(
            &format!("/api/v1/webhooks/{id}/test"),
            Some(&seller.token),
            json!({}),
        )
        .await;
    assert_eq!(sent.status, 202);
    let got = receiver.wait_for(1).await.remove(0);
    assert!(verifies(secret, &got), "{got:?}");
    let other = create(&app, &seller, &receiver.url, &["webhook.test"]).await;
    assert!(!verifies(other["secret"].as_str().unwrap(), &got));
    let mut forged = got.clone();
    forged.body = forged.body.replace("test", "tost");
    assert!(!verifies(secret, &forged));
    let body: Value = serde_json::from_str(&got.body).unwrap();
    assert_eq!(body["type"], "webhook.test");
    assert_eq!(body["id"], got.headers["webhook-id"].to_str().unwrap());
    assert!(body["timestamp"].is_string() && body["data"].is_object());
    let timestamp: i64 = got.headers["webhook-timestamp"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let now = simba::domain::Timestamp::now().unix_seconds();
    assert!((now - timestamp).abs() < 60);
    let list = wait_for_deliveries(&app, &seller, id, "delivered").await;
    assert_eq!(list[0]["type"], "webhook.test");
    assert_eq!(list[0]["event_id"], body["id"]);
    assert_eq!(list[0]["attempts"], 1);
    assert_eq!(list[0]["last_status_code"], 200);
    assert!(list[0]["delivered_at"].is_string() && list[0]["next_attempt_at"].is_null());
}

async fn a_receiver_answering_500_then_200_is_retried_until_delivered(app: TestApp) {
    let receiver = Receiver::start(Answer::Statuses(vec![500, 500])).await;
    let seller = app.register("anna").await;
    let id = create(&app, &seller, &receiver.url, &["webhook.test"]).await["id"]
        .as_i64()
        .unwrap();
    app.post(
        &format!("/api/v1/webhooks/{id}/test"),
        Some(&seller.token),
        json!({}),
    )
    .await;
    let got = receiver.wait_for(3).await;
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one event, sent three times"
    );
    let list = wait_for_deliveries(&app, &seller, id, "delivered").await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["attempts"], 3);
    assert_eq!(list[0]["last_status_code"], 200);
    assert!(list[0]["last_error"].is_null());
    let shown = app
        .get(&format!("/api/v1/webhooks/{id}"), Some(&seller.token))
        .await
        .json();
    assert!(shown["failing_since"].is_null(), "{shown}");
}

async fn redelivery_sends_the_event_again_as_a_new_delivery(app: TestApp) {
    let receiver = Receiver::start(Answer::Statuses(vec![500, 500, 500, 500])).await;
    let seller = app.register("anna").await;
    let id = create(&app, &seller, &receiver.url, &["webhook.test"]).await["id"]
        .as_i64()
        .unwrap();
    app.post(
        &format!("/api/v1/webhooks/{id}/test"),
        Some(&seller.token),
        json!({}),
    )
    .await;
    // The test schedule has three retries: four attempts, then the delivery fails.
    let failed = wait_for_deliveries(&app, &seller, id, "failed").await;
    assert_eq!(failed[0]["attempts"], 4);
    assert_eq!(failed[0]["last_status_code"], 500);
    assert_eq!(failed[0]["last_error"], "the receiver did not answer 2xx");
    let shown = app
        .get(&format!("/api/v1/webhooks/{id}"), Some(&seller.token))
        .await
        .json();
    assert!(shown["failing_since"].is_string(), "{shown}");
    let delivery = failed[0]["id"].as_i64().unwrap();
    let again = app
        .post(
            &format!("/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver"),
            Some(&seller.token),
            json!({}),
        )
        .await;
    assert_eq!(again.status, 202, "{}", again.text);
    let got = receiver.wait_for(5).await;
    assert_eq!(got[4].headers["webhook-id"], got[0].headers["webhook-id"]);
    let mut list = Vec::new();
    for _ in 0..200 {
        list = deliveries(&app, &seller, id).await;
        if list.len() == 2 && list[0]["status"] == "delivered" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(list[0]["status"], "delivered", "{list:?}");
    assert_eq!(list[0]["event_id"], failed[0]["event_id"]);
    assert_ne!(list[0]["id"], failed[0]["id"]);
    assert_eq!(
        list[1]["status"], "failed",
        "the failed delivery stays in the log"
    );
    let shown = app
        .get(&format!("/api/v1/webhooks/{id}"), Some(&seller.token))
        .await
        .json();
    assert!(
        shown["failing_since"].is_null(),
        "a success clears it: {shown}"
    );
}

async fn deleting_the_seller_deletes_their_endpoints_and_deliveries(app: TestApp) {
    let receiver = Receiver::start(Answer::Statuses(vec![])).await;
    let seller = app.register("anna").await;
    let id = create(&app, &seller, &receiver.url, &["webhook.test"]).await["id"]
        .as_i64()
        .unwrap();
    app.post(
        &format!("/api/v1/webhooks/{id}/test"),
        Some(&seller.token),
        json!({}),
    )
    .await;
    wait_for_deliveries(&app, &seller, id, "delivered").await;
    let deleted = app.delete("/api/v1/auth/user", Some(&seller.token)).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    for table in [
        "webhook_endpoints",
        "webhook_deliveries",
        "webhook_events",
        "webhook_outbox",
    ] {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap();
        assert_eq!(left, 0, "{table}");
    }
}

async fn a_hanging_receiver_does_not_slow_a_sync_and_the_run_event_arrives(backend: Backend) {
    let setup = SyncSetup::new(backend)
        .shipments(300, 0)
        .background_workers()
        .config(|config| config.webhooks.attempt_timeout = Duration::from_secs(2));
    let Some(SyncTest {
        app,
        sandbox: _sandbox,
        seller,
        shops,
    }) = setup.spawn().await
    else {
        return;
    };
    let hanging = Receiver::start(Answer::Hang).await;
    let listening = Receiver::start(Answer::Statuses(vec![])).await;
    let all = [
        "shipments.changed",
        "sync_run.succeeded",
        "sync_run.failed",
        "webhook.test",
    ];
    let stuck = create(&app, &seller, &hanging.url, &all).await["id"]
        .as_i64()
        .unwrap();
    create(&app, &seller, &listening.url, &["sync_run.succeeded"]).await;
    for _ in 0..10 {
        app.post(
            &format!("/api/v1/webhooks/{stuck}/test"),
            Some(&seller.token),
            json!({}),
        )
        .await;
    }
    hanging.wait_for(1).await;
    let started = std::time::Instant::now();
    let run = app.sync_and_wait(&seller, shops[0], None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // Each attempt at the hanging receiver takes 2 s; a sync waiting for them would take 20 s.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the sync took {:?}",
        started.elapsed()
    );
    let got = listening.wait_for(1).await;
    let event: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(event["type"], "sync_run.succeeded");
    let shown = app
        .get(
            &format!("/api/v1/sync-runs/{}", run["id"]),
            Some(&seller.token),
        )
        .await
        .json();
    assert_eq!(event["data"], shown);
    // The hanging receiver's deliveries time out and wait for their retry.
    for _ in 0..200 {
        let list = deliveries(&app, &seller, stuck).await;
        if list.iter().any(|d| d["last_error"] == "timed out") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no delivery to the hanging receiver timed out");
}

async fn an_initial_sync_sends_each_shipment_once_in_events_of_up_to_100(backend: Backend) {
    let setup = SyncSetup::new(backend)
        .shipments(800, 200)
        .background_workers();
    let Some(SyncTest {
        app,
        sandbox: _sandbox,
        seller,
        shops,
    }) = setup.spawn().await
    else {
        return;
    };
    let receiver = Receiver::start(Answer::Statuses(vec![])).await;
    let id = create(&app, &seller, &receiver.url, &["shipments.changed"]).await["id"]
        .as_i64()
        .unwrap();
    let run = app.sync_and_wait(&seller, shops[0], None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let mut seen = std::collections::HashMap::new();
    let mut events = 0;
    for _ in 0..400 {
        let got = receiver.received();
        seen.clear();
        events = got.len();
        for request in &got {
            let event: Value = serde_json::from_str(&request.body).unwrap();
            assert_eq!(event["type"], "shipments.changed");
            assert_eq!(event["data"]["shop_id"], shops[0]);
            let shipments = event["data"]["shipments"].as_array().unwrap();
            assert!(!shipments.is_empty() && shipments.len() <= 100);
            for shipment in shipments {
                *seen.entry(shipment["id"].as_i64().unwrap()).or_insert(0) += 1;
            }
        }
        if seen.len() == 1000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(seen.len(), 1000, "every shipment is sent");
    assert!(seen.values().all(|n| *n == 1), "each shipment once");
    assert!(
        (10..=12).contains(&events),
        "{events} events for 1,000 shipments"
    );
    let one: Value = serde_json::from_str(&receiver.received()[0].body).unwrap();
    let shipment = &one["data"]["shipments"][0];
    let shown = app
        .get(
            &format!("/api/v1/shipments/{}", shipment["id"]),
            Some(&seller.token),
        )
        .await
        .json();
    assert_eq!(shipment["shipment_id"], shown["shipment_id"]);
    wait_for_deliveries(&app, &seller, id, "delivered").await;
}

async fn refused_credentials_send_the_shop_and_the_failed_run(backend: Backend) {
    let setup = SyncSetup::new(backend)
        .shipments(10, 0)
        .shops(0)
        .background_workers();
    let Some(SyncTest {
        app,
        sandbox: _sandbox,
        seller,
        ..
    }) = setup.spawn().await
    else {
        return;
    };
    let receiver = Receiver::start(Answer::Statuses(vec![])).await;
    create(
        &app,
        &seller,
        &receiver.url,
        &[
            "shop.credentials_rejected",
            "sync_run.failed",
            "sync_run.succeeded",
        ],
    )
    .await;
    let shop = app
        .post(
            "/api/v1/shops",
            Some(&seller.token),
            json!({"name": "wrong", "client_id": "sandbox-1", "client_secret": "not-the-secret", "auto_sync": false}),
        )
        .await
        .json()["id"]
        .as_i64()
        .unwrap();
    let run = app.sync_and_wait(&seller, shop, None).await;
    assert_eq!(run["status"], "failed", "{run}");
    let got = receiver.wait_for(2).await;
    let events: Vec<Value> = got
        .iter()
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .collect();
    let of = |kind: &str| {
        events
            .iter()
            .find(|e| e["type"] == kind)
            .unwrap_or_else(|| panic!("no {kind} in {events:?}"))
    };
    let shown_shop = app
        .get(&format!("/api/v1/shops/{shop}"), Some(&seller.token))
        .await
        .json();
    assert_eq!(of("shop.credentials_rejected")["data"]["id"], shop);
    assert_eq!(
        of("shop.credentials_rejected")["data"]["credentials_rejected_at"],
        shown_shop["credentials_rejected_at"]
    );
    let shown_run = app
        .get(
            &format!("/api/v1/sync-runs/{}", run["id"]),
            Some(&seller.token),
        )
        .await
        .json();
    assert_eq!(of("sync_run.failed")["data"], shown_run);
    assert!(events.iter().all(|e| e["type"] != "sync_run.succeeded"));
}

async fn the_delivery_log_forgets_ended_deliveries_after_its_retention(app: TestApp) {
    let seller = app.register("anna").await;
    let webhook = create(&app, &seller, "http://127.0.0.1:9/hook", &["webhook.test"]).await;
    let id = webhook["id"].as_i64().unwrap();
    for _ in 0..3 {
        let path = format!("/api/v1/webhooks/{id}/test");
        let queued = app.post(&path, Some(&seller.token), json!({})).await;
        assert_eq!(queued.status, 202, "{}", queued.text);
    }
    // Nothing answers on port 9: once the tests' short retries are spent the sender leaves
    // these deliveries alone, and the statuses set below stay as set.
    let ids: Vec<i64> = wait_for_deliveries(&app, &seller, id, "failed")
        .await
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    let db = &app.state.db;
    let retention = simba::webhooks::DELIVERY_LOG_RETENTION;
    let old = simba::domain::Timestamp::now() - retention - Duration::from_secs(60);
    for sql in [
        "UPDATE webhook_deliveries SET created_at = ?",
        "UPDATE webhook_events SET created_at = ?",
    ] {
        db.query(sql)
            .bind(old.unix_seconds())
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let never = simba::domain::Timestamp::now() + retention;
    for (delivery, status) in [(ids[0], "delivered"), (ids[2], "pending")] {
        db.query("UPDATE webhook_deliveries SET status = ?, next_attempt_at_ms = ? WHERE id = ?")
            .bind(status)
            .bind(never.unix_millis())
            .bind(delivery)
            .execute(&db.pool)
            .await
            .unwrap();
    }

    let before = simba::domain::Timestamp::now() - retention;
    let pruned = simba::store::webhooks::prune_log(db, before, 1000).await;
    assert_eq!(pruned.unwrap(), 4, "two ended deliveries and their events");
    let left: Vec<i64> = deliveries(&app, &seller, id)
        .await
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        left,
        [ids[2]],
        "a delivery still retried stays, however old"
    );
    let again = simba::store::webhooks::prune_log(db, before, 1000).await;
    assert_eq!(again.unwrap(), 0);
}

async fn an_inactive_endpoint_gets_no_test_and_no_redelivery(app: TestApp) {
    let seller = app.register("anna").await;
    let webhook = create(&app, &seller, "http://127.0.0.1:9/hook", &["webhook.test"]).await;
    let id = webhook["id"].as_i64().unwrap();
    let token = Some(seller.token.as_str());
    let test = format!("/api/v1/webhooks/{id}/test");
    assert_eq!(app.post(&test, token, json!({})).await.status, 202);
    let delivery = deliveries(&app, &seller, id).await[0]["id"]
        .as_i64()
        .unwrap();
    let off = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            token,
            json!({"active": false}),
        )
        .await;
    assert_eq!(off.status, 200, "{}", off.text);

    app.post(&test, token, json!({})).await.problem(409);
    let again = format!("/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver");
    app.post(&again, token, json!({})).await.problem(409);
    assert_eq!(
        deliveries(&app, &seller, id).await.len(),
        1,
        "nothing queued"
    );

    let on = app
        .patch(
            &format!("/api/v1/webhooks/{id}"),
            token,
            json!({"active": true}),
        )
        .await;
    assert_eq!(on.status, 200, "{}", on.text);
    assert_eq!(app.post(&again, token, json!({})).await.status, 202);
}
