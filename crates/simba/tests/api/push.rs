//! Push notifications from the sandbox: subscriptions made, repaired and removed by the
//! manager, signed notifications received over real HTTP, and the worker's detail fetches
//! counted by the sandbox.

use std::time::Duration;

use bol_sandbox::PushFaults;
use serde_json::{Value, json};
use sqlx::Row;

use crate::helpers::Backend;
use crate::helpers::sync_setup::{SyncSetup, SyncTest};

crate::multi_thread_backend_tests!(
    pushed_shipments_are_fetched_once_each_whatever_the_duplicates_and_order,
    unsigned_forged_and_malformed_notifications_get_401_and_fetch_nothing,
    a_rotated_signing_key_is_fetched_and_trusted,
    a_subscription_the_marketplace_disabled_is_enabled_again_and_the_gap_synced,
    a_dropped_notification_is_caught_by_the_safety_net_poll,
    turning_push_off_or_deleting_the_shop_deletes_the_subscription,
    another_seller_cannot_see_or_switch_a_shops_push,
    while_push_is_active_automatic_syncs_come_less_often,
    the_background_manager_and_worker_need_no_help,
    a_notification_of_an_erased_shipment_fetches_nothing,
    a_reconciliation_counts_the_window_in_few_calls_and_repairs_what_push_missed,
    a_window_of_twelve_thousand_shipments_is_counted_in_twenty_eight_list_calls,
);

/// A sandbox minute lasts a second: its processes settle in 17 ms.
async fn setup(backend: Backend, fbr: u32, fbb: u32) -> Option<SyncTest> {
    SyncSetup::new(backend)
        .shipments(fbr, fbb)
        .time_scale(60.0)
        .spawn()
        .await
}

async fn shop(t: &SyncTest) -> Value {
    let r = t
        .app
        .get(
            &format!("/api/v1/shops/{}", t.shops[0]),
            Some(&t.seller.token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

async fn set_push(t: &SyncTest, on: bool) -> Value {
    let r = t
        .app
        .patch(
            &format!("/api/v1/shops/{}", t.shops[0]),
            Some(&t.seller.token),
            json!({ "push_enabled": on }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// Runs the manager until the shop's push status is `status`.
async fn manage_until(t: &SyncTest, status: &str) -> Value {
    for _ in 0..200 {
        t.app.state.engine.manage_subscriptions().await.unwrap();
        let shop = shop(t).await;
        if shop["push"]["status"] == status {
            return shop;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("push never became {status}: {}", shop(t).await);
}

async fn enable_push(t: &SyncTest) -> Value {
    let shop = set_push(t, true).await;
    assert_eq!(shop["push_enabled"], true);
    assert_eq!(shop["push"]["status"], "pending");
    manage_until(t, "active").await
}

/// Waits until the sandbox has had `n` deliveries answered 2xx.
async fn wait_accepted(t: &SyncTest, n: u64) {
    for _ in 0..300 {
        if t.sandbox.stats().push.accepted >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("deliveries: {:?}", t.sandbox.stats().push);
}

fn detail_calls(t: &SyncTest) -> u64 {
    t.sandbox.stats().account("sandbox-1").unwrap().detail.calls
}

fn list_calls(t: &SyncTest) -> u64 {
    t.sandbox.stats().account("sandbox-1").unwrap().list.calls
}

async fn hook_token(t: &SyncTest) -> String {
    let db = &t.app.state.db;
    db.query("SELECT hook_token FROM push_subscriptions WHERE shop_id = ?")
        .bind(t.shops[0])
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// The sandbox's subscriptions once its processes in flight have settled.
async fn subscriptions_at_marketplace(t: &SyncTest) -> usize {
    tokio::time::sleep(Duration::from_millis(100)).await;
    let client = bol::Client::new(bol::ClientConfig {
        api_url: t.sandbox.base_url(),
        login_url: t.sandbox.base_url(),
        ..bol::ClientConfig::default()
    })
    .unwrap();
    let creds = bol::Credentials {
        client_id: "sandbox-1".into(),
        client_secret: bol::SecretString::from("secret-1"),
    };
    client.subscriptions(&creds).await.unwrap().value.len()
}

async fn full_sync(t: &SyncTest) {
    t.app.start_sync(&t.seller, t.shops[0], Some("full")).await;
    t.app.run_pending_syncs().await;
}

async fn pushed_shipments_are_fetched_once_each_whatever_the_duplicates_and_order(
    backend: Backend,
) {
    let Some(t) = setup(backend, 30, 0).await else {
        return;
    };
    full_sync(&t).await;
    let subscription = enable_push(&t).await;
    assert!(subscription["push"]["subscription_id"].is_string());
    t.sandbox.reset_stats();

    t.sandbox.add_shipments("sandbox-1", 2, 0);
    wait_accepted(&t, 2).await;
    t.app.state.engine.fetch_notified().await.unwrap();
    assert_eq!((detail_calls(&t), list_calls(&t)), (2, 0));
    let shop_now = shop(&t).await;
    assert_eq!(shop_now["shipment_count"], 32);
    assert_eq!(shop_now["push"]["events_received"], 2);
    assert!(shop_now["push"]["last_event_at"].is_string());

    // Every notification twice, each batch newest first: one fetch per shipment all the same.
    t.sandbox.set_push_faults(PushFaults {
        duplicate_rate: 1.0,
        reorder: true,
        delay_ms: 50,
        ..PushFaults::default()
    });
    t.sandbox.add_shipments("sandbox-1", 3, 0);
    wait_accepted(&t, 2 + 6).await;
    t.app.state.engine.fetch_notified().await.unwrap();
    t.app.state.engine.fetch_notified().await.unwrap();
    assert_eq!((detail_calls(&t), list_calls(&t)), (5, 0));
    let stats = t.sandbox.stats().account("sandbox-1").unwrap().clone();
    assert_eq!(stats.detail.wasted, 0);
    let shop_now = shop(&t).await;
    assert_eq!(shop_now["shipment_count"], 35);
    assert_eq!(shop_now["push"]["events_received"], 5);

    // Readable with its detail through the API.
    let r = t
        .app
        .get(
            &format!("/api/v1/shops/{}/shipments?page_size=1", t.shops[0]),
            Some(&t.seller.token),
        )
        .await;
    let newest = &r.json()["results"][0];
    let r = t
        .app
        .get(
            &format!("/api/v1/shipments/{}", newest["id"]),
            Some(&t.seller.token),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        !r.json()["items"].as_array().unwrap().is_empty(),
        "{}",
        r.text
    );
}

async fn unsigned_forged_and_malformed_notifications_get_401_and_fetch_nothing(backend: Backend) {
    let Some(t) = setup(backend, 3, 0).await else {
        return;
    };
    enable_push(&t).await;
    // One genuine notification, so the keys are known.
    t.sandbox.add_shipments("sandbox-1", 1, 0);
    wait_accepted(&t, 1).await;
    t.app.state.engine.fetch_notified().await.unwrap();
    t.sandbox.reset_stats();

    let url = t.app.url(&format!("/hooks/bol/{}", hook_token(&t).await));
    let body = r#"{"retailerId":1,"timestamp":"2026-12-01T10:00:00+01:00","event":{"resource":"SHIPMENT","type":"CREATE_SHIPMENT","resourceId":"1234567890123"}}"#;
    let post = |signature: Option<String>| {
        let mut request = t
            .app
            .client
            .post(&url)
            .header("content-type", "application/json")
            .body(body);
        if let Some(s) = signature {
            request = request.header("signature", s);
        }
        request.send()
    };
    let forged = format!(
        r#"keyId=1, algorithm="rsa-sha256", signature={}"#,
        "QUJD".repeat(86)
    );
    let unknown_key = r#"keyId=999, algorithm="rsa-sha256", signature=QUJD"#.to_owned();
    let malformed = "keyId=1, signature=???".to_owned();
    for signature in [None, Some(forged), Some(unknown_key), Some(malformed)] {
        let r = post(signature.clone()).await.unwrap();
        assert_eq!(r.status(), 401, "{signature:?}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{signature:?}"
        );
    }
    let r = t
        .app
        .client
        .post(t.app.url("/hooks/bol/0123abcd"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = t
        .app
        .client
        .post(&url)
        .body(vec![b'x'; 100 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    t.app.state.engine.fetch_notified().await.unwrap();
    assert_eq!(detail_calls(&t), 0);
    let shop_now = shop(&t).await;
    assert_eq!(shop_now["push"]["events_rejected"], 4);
    assert_eq!(shop_now["push"]["events_received"], 1);
    // The unknown key made one refetch of the keys, no more.
    let keys = t
        .sandbox
        .stats()
        .account("sandbox-1")
        .unwrap()
        .signature_keys
        .calls;
    assert!(keys <= 1, "{keys}");
}

async fn a_rotated_signing_key_is_fetched_and_trusted(backend: Backend) {
    let Some(t) = setup(backend, 3, 0).await else {
        return;
    };
    enable_push(&t).await;
    t.sandbox.add_shipments("sandbox-1", 1, 0);
    wait_accepted(&t, 1).await;
    // Past the refetch floor of the test settings.
    tokio::time::sleep(Duration::from_millis(300)).await;
    t.sandbox.rotate_push_keys().await;
    t.sandbox.add_shipments("sandbox-1", 1, 0);
    wait_accepted(&t, 2).await;
    let stats = t.sandbox.stats();
    assert_eq!(stats.push.refused, 0);
    assert_eq!(stats.account("sandbox-1").unwrap().signature_keys.calls, 2);
    assert_eq!(shop(&t).await["push"]["events_received"], 2);
    t.app.state.engine.fetch_notified().await.unwrap();
    // Never synced: the two pushed shipments are created by their notifications.
    assert_eq!(shop(&t).await["shipment_count"], 2);
}

async fn a_subscription_the_marketplace_disabled_is_enabled_again_and_the_gap_synced(
    backend: Backend,
) {
    let Some(t) = setup(backend, 3, 0).await else {
        return;
    };
    full_sync(&t).await;
    enable_push(&t).await;
    t.sandbox.disable_push_subscriptions();
    // Missed while disabled.
    t.sandbox.add_shipments("sandbox-1", 1, 0);
    let shop_now = manage_until(&t, "disabled").await;
    assert!(shop_now["push"]["disabled_since"].is_string());
    // The gap is synced by the incremental run the manager queued.
    t.app.run_pending_syncs().await;
    assert_eq!(shop(&t).await["shipment_count"], 4);
    let shop_now = manage_until(&t, "active").await;
    assert_eq!(shop_now["push"]["disabled_since"], Value::Null);
    t.sandbox.add_shipments("sandbox-1", 1, 0);
    wait_accepted(&t, 1).await;
}

async fn a_dropped_notification_is_caught_by_the_safety_net_poll(backend: Backend) {
    let Some(t) = setup(backend, 3, 0).await else {
        return;
    };
    full_sync(&t).await;
    enable_push(&t).await;
    t.sandbox.set_push_faults(PushFaults {
        drop_rate: 1.0,
        ..PushFaults::default()
    });
    t.sandbox.add_shipments("sandbox-1", 1, 0);
    for _ in 0..100 {
        if t.sandbox.stats().push.dropped == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.app.state.engine.fetch_notified().await.unwrap();
    assert_eq!(shop(&t).await["shipment_count"], 3);
    t.app
        .start_sync(&t.seller, t.shops[0], Some("incremental"))
        .await;
    t.app.run_pending_syncs().await;
    assert_eq!(shop(&t).await["shipment_count"], 4);
}

async fn turning_push_off_or_deleting_the_shop_deletes_the_subscription(backend: Backend) {
    let Some(t) = setup(backend, 3, 0).await else {
        return;
    };
    enable_push(&t).await;
    assert_eq!(subscriptions_at_marketplace(&t).await, 1);
    let shop_now = set_push(&t, false).await;
    assert_eq!(shop_now["push"]["status"], "off");
    t.app.state.engine.manage_subscriptions().await.unwrap();
    assert_eq!(subscriptions_at_marketplace(&t).await, 0);

    enable_push(&t).await;
    assert_eq!(subscriptions_at_marketplace(&t).await, 1);
    let r = t
        .app
        .delete(
            &format!("/api/v1/shops/{}", t.shops[0]),
            Some(&t.seller.token),
        )
        .await;
    assert_eq!(r.status, 204);
    t.app.state.engine.manage_subscriptions().await.unwrap();
    assert_eq!(subscriptions_at_marketplace(&t).await, 0);
    let db = &t.app.state.db;
    let left: i64 = db
        .query("SELECT COUNT(*) FROM push_subscriptions")
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(left, 0);
}

async fn another_seller_cannot_see_or_switch_a_shops_push(backend: Backend) {
    let Some(t) = setup(backend, 3, 0).await else {
        return;
    };
    enable_push(&t).await;
    let mallory = t.app.register("mallory").await;
    let path = format!("/api/v1/shops/{}", t.shops[0]);
    assert_eq!(t.app.get(&path, Some(&mallory.token)).await.status, 404);
    let r = t
        .app
        .patch(
            &path,
            Some(&mallory.token),
            json!({ "push_enabled": false }),
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(shop(&t).await["push"]["status"], "active");
    let r = t
        .app
        .patch(
            &path,
            Some(&t.seller.token),
            json!({ "push_enabled": "yes" }),
        )
        .await;
    let errors = &r.problem(422)["errors"]["push_enabled"];
    assert_eq!(errors.as_array().unwrap().len(), 1, "{errors}");
}

async fn while_push_is_active_automatic_syncs_come_less_often(backend: Backend) {
    let Some(t) = setup(backend, 3, 0).await else {
        return;
    };
    let next_sync = || async {
        let db = &t.app.state.db;
        let row = db
            .query("SELECT next_sync_at, last_run_at FROM shops WHERE id = ?")
            .bind(t.shops[0])
            .fetch_one(&db.pool)
            .await
            .unwrap();
        let next: i64 = row.try_get(0).unwrap();
        let last: i64 = row.try_get(1).unwrap();
        next - last
    };
    let r = t
        .app
        .patch(
            &format!("/api/v1/shops/{}", t.shops[0]),
            Some(&t.seller.token),
            json!({ "auto_sync": true, "sync_interval_minutes": 15 }),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    full_sync(&t).await;
    assert_eq!(next_sync().await, 15 * 60);
    enable_push(&t).await;
    full_sync(&t).await;
    // The default stretch: four intervals.
    assert_eq!(next_sync().await, 4 * 15 * 60);
}

async fn the_background_manager_and_worker_need_no_help(backend: Backend) {
    let Some(t) = SyncSetup::new(backend)
        .shipments(3, 0)
        .time_scale(60.0)
        .background_workers()
        .spawn()
        .await
    else {
        return;
    };
    set_push(&t, true).await;
    let mut added = false;
    for _ in 0..200 {
        let shop = shop(&t).await;
        if shop["push"]["status"] == "active" && !added {
            t.sandbox.add_shipments("sandbox-1", 1, 0);
            added = true;
        }
        if shop["shipment_count"] == 1 {
            assert_eq!(shop["push"]["events_received"], 1);
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the pushed shipment never arrived: {}", shop(&t).await);
}

async fn a_notification_of_an_erased_shipment_fetches_nothing(backend: Backend) {
    let Some(t) = setup(backend, 3, 0).await else {
        return;
    };
    full_sync(&t).await;
    enable_push(&t).await;
    let token = Some(t.seller.token.as_str());
    let listed = t
        .app
        .get(
            &format!("/api/v1/shops/{}/shipments?page_size=1", t.shops[0]),
            token,
        )
        .await
        .json();
    let row = listed["results"][0].clone();
    let erased = t
        .app
        .post(
            "/api/v1/erasures",
            token,
            json!({ "shipment_ids": [row["id"]] }),
        )
        .await;
    assert_eq!(erased.status, 200, "{}", erased.text);
    t.sandbox.reset_stats();

    // A transport update bol announces for the erased shipment.
    let db = &t.app.state.db;
    let shipment_id = row["shipment_id"].as_str().unwrap();
    let recorded = simba::store::push::record_event(
        db,
        t.shops[0],
        shipment_id,
        &"e".repeat(64),
        simba::domain::Timestamp::now(),
    )
    .await
    .unwrap();
    assert!(recorded);
    t.app.state.engine.fetch_notified().await.unwrap();
    t.app.state.engine.fetch_notified().await.unwrap();

    let details = t
        .sandbox
        .stats()
        .account("sandbox-1")
        .map_or(0, |account| account.detail.calls);
    assert_eq!(details, 0, "an erased shipment's detail is never fetched");
    let waiting: i64 = db
        .query("SELECT COUNT(*) FROM push_events WHERE shop_id = ? AND done = 0")
        .bind(t.shops[0])
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    assert_eq!(waiting, 0, "the notification is settled, not left to retry");
    let detail = t
        .app
        .get(&format!("/api/v1/shipments/{}", row["id"]), token)
        .await
        .json();
    assert!(detail["personal_data_erased_at"].is_string(), "{detail}");
    assert!(detail["customer"].is_null(), "{detail}");
}

/// Reconciles the shop now and returns its findings as the API shows them.
async fn reconcile(t: &SyncTest) -> Value {
    let found = t
        .app
        .state
        .engine
        .reconcile(t.shops[0], t.seller.id)
        .await
        .unwrap();
    assert!(found.is_some());
    let shop_now = shop(t).await;
    assert!(shop_now["push"]["reconciled_at"].is_string(), "{shop_now}");
    shop_now["push"]["reconciliation"].clone()
}

fn census(found: &Value, method: &str) -> (i64, i64, i64) {
    let m = found["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == method)
        .unwrap_or_else(|| panic!("no {method} in {found}"));
    (
        m["marketplace"].as_i64().unwrap(),
        m["local"].as_i64().unwrap(),
        m["missing_on_first_page"].as_i64().unwrap(),
    )
}

async fn a_reconciliation_counts_the_window_in_few_calls_and_repairs_what_push_missed(
    backend: Backend,
) {
    let Some(t) = setup(backend, 110, 7).await else {
        return;
    };
    full_sync(&t).await;
    enable_push(&t).await;
    assert_eq!(shop(&t).await["push"]["reconciliation"], Value::Null);
    t.sandbox.reset_stats();

    // FBR's 110 are counted from pages 2, 4 (empty), 3 (10) and 1, FBB's 7 from pages 2
    // (empty) and 1.
    let found = reconcile(&t).await;
    assert_eq!(census(&found, "FBR"), (110, 110, 0), "{found}");
    assert_eq!(census(&found, "FBB"), (7, 7, 0), "{found}");
    assert_eq!(
        (found["gaps"].clone(), found["full_sync_queued"].clone()),
        (json!(0), json!(false))
    );
    assert_eq!((list_calls(&t), detail_calls(&t)), (6, 0));

    // Push misses two new shipments: they are on the first page, so they are fetched, one
    // call each, by the notification worker, and no sync is queued.
    t.sandbox.set_push_faults(PushFaults {
        drop_rate: 1.0,
        ..PushFaults::default()
    });
    t.sandbox.add_shipments("sandbox-1", 2, 0);
    let found = reconcile(&t).await;
    assert_eq!(census(&found, "FBR"), (112, 110, 2), "{found}");
    assert_eq!(
        (found["gaps"].clone(), found["full_sync_queued"].clone()),
        (json!(2), json!(false))
    );
    assert_eq!(shop(&t).await["active_run_id"], Value::Null);
    t.app.state.engine.fetch_notified().await.unwrap();
    assert_eq!((list_calls(&t), detail_calls(&t)), (12, 2));
    assert_eq!(
        shop(&t).await["push"]["events_received"],
        0,
        "repairs are not notifications"
    );

    // A shipment lost deep down (page 2) and one more missed on the first page: the counts
    // differ beyond the first page, so a full sync repairs both, each fetched once.
    let db = &t.app.state.db;
    let lost: String = db
        .query(
            "SELECT shipment_id FROM shipments WHERE shop_id = ? AND fulfilment_method = 'FBR' \
             ORDER BY shipment_date DESC, id DESC LIMIT 1 OFFSET 80",
        )
        .bind(t.shops[0])
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap();
    db.query("DELETE FROM shipments WHERE shop_id = ? AND shipment_id = ?")
        .bind(t.shops[0])
        .bind(lost.as_str())
        .execute(&db.pool)
        .await
        .unwrap();
    t.sandbox.add_shipments("sandbox-1", 1, 0);
    let found = reconcile(&t).await;
    assert_eq!(census(&found, "FBR"), (113, 111, 1), "{found}");
    assert_eq!(
        (found["gaps"].clone(), found["full_sync_queued"].clone()),
        (json!(2), json!(true))
    );
    assert!(shop(&t).await["active_run_id"].is_i64());
    t.app.run_pending_syncs().await;
    t.app.state.engine.fetch_notified().await.unwrap();
    let account = t.sandbox.stats().account("sandbox-1").unwrap().clone();
    assert_eq!(account.detail.calls, 2 + 2, "{account:?}");
    assert_eq!((account.list.wasted, account.detail.wasted), (0, 0));
    assert_eq!(account.list.rate_limited + account.detail.rate_limited, 0);

    let found = reconcile(&t).await;
    assert_eq!(census(&found, "FBR"), (113, 113, 0), "{found}");
    assert_eq!(found["gaps"], 0);
}

/// bol's pages have no total: 10,000 FBR shipments (200 pages) are counted from pages 2, 4, …,
/// 256, then 192, 224, 208, 200, 204, 202, 201, then 1 (16 calls, not 200), 2,000 FBB (40
/// pages) in 12. Nothing is stored locally, so the whole window is a gap: a full sync is queued for it,
/// and no detail is fetched meanwhile.
async fn a_window_of_twelve_thousand_shipments_is_counted_in_twenty_eight_list_calls(
    backend: Backend,
) {
    let Some(t) = setup(backend, 10_000, 2_000).await else {
        return;
    };
    enable_push(&t).await;
    t.sandbox.reset_stats();
    let found = reconcile(&t).await;
    assert_eq!(census(&found, "FBR"), (10_000, 0, 50), "{found}");
    assert_eq!(census(&found, "FBB"), (2_000, 0, 50), "{found}");
    assert_eq!(found["full_sync_queued"], true);
    assert_eq!(found["gaps"], 12_000);
    assert_eq!((list_calls(&t), detail_calls(&t)), (16 + 12, 0));
    let account = t.sandbox.stats().account("sandbox-1").unwrap().clone();
    assert_eq!(
        account.list.rate_limited + account.list.wasted,
        0,
        "{account:?}"
    );
}
