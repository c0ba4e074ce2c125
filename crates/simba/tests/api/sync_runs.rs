//! `/shops/{id}/sync-runs` and `/sync-runs/{id}`.

use simba::domain::{Mode, Trigger};
use simba::store::sync_runs::{self, QueueError};

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(
    a_queued_run_is_shown_with_progress_and_call_counters,
    runs_are_listed_newest_first,
    a_shop_never_has_two_active_runs,
    a_named_lease_has_one_holder_and_passes_on_when_it_expires,
);

async fn a_queued_run_is_shown_with_progress_and_call_counters(app: TestApp) {
    let seller = app.register("anna").await;
    let shop = app.create_shop(&seller, "main").await;
    let run = sync_runs::create_queued(&app.state.db, shop, Mode::Full, Trigger::Api)
        .await
        .unwrap();
    let body = app
        .get(
            &format!("/api/v1/sync-runs/{}", run.id),
            Some(&seller.token),
        )
        .await;
    assert_eq!(body.status, 200, "{}", body.text);
    let body = body.json();
    assert_eq!(body["shop_id"], shop);
    assert_eq!(body["mode"], "full");
    assert_eq!(body["trigger"], "api");
    assert_eq!(body["status"], "queued");
    assert!(
        body["started_at"].is_null() && body["finished_at"].is_null() && body["error"].is_null()
    );
    for key in [
        "pages_fetched",
        "shipments_seen",
        "details_fetched",
        "shipments_stored",
        "details_pending",
    ] {
        assert_eq!(body["progress"][key], 0, "{key}");
    }
    for key in ["total", "list", "detail", "token", "rate_limited", "errors"] {
        assert_eq!(body["api_calls"][key], 0, "{key}");
    }
    let shop_body = app
        .get(&format!("/api/v1/shops/{shop}"), Some(&seller.token))
        .await
        .json();
    assert_eq!(shop_body["active_run_id"], run.id);
    app.get("/api/v1/sync-runs/424242", Some(&seller.token))
        .await
        .problem(404);
}

async fn runs_are_listed_newest_first(app: TestApp) {
    let seller = app.register("anna").await;
    let shop = app.create_shop(&seller, "main").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let run =
            sync_runs::create_queued(&app.state.db, shop, Mode::Incremental, Trigger::Schedule)
                .await
                .unwrap();
        ids.push(run.id);
        let db = &app.state.db;
        db.query("UPDATE shops SET active_run_id = NULL WHERE id = ?")
            .bind(shop)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let page = app
        .get(
            &format!("/api/v1/shops/{shop}/sync-runs?page_size=2"),
            Some(&seller.token),
        )
        .await
        .json();
    assert_eq!(page["count"], 3);
    let listed: Vec<i64> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, [ids[2], ids[1]]);
    assert!(page["next"].as_str().unwrap().contains("page=2"));
    app.get("/api/v1/shops/999999/sync-runs", Some(&seller.token))
        .await
        .problem(404);
}

async fn a_shop_never_has_two_active_runs(app: TestApp) {
    let seller = app.register("anna").await;
    let shop = app.create_shop(&seller, "main").await;
    let first = sync_runs::create_queued(&app.state.db, shop, Mode::Full, Trigger::Api)
        .await
        .unwrap();
    match sync_runs::create_queued(&app.state.db, shop, Mode::Full, Trigger::Api).await {
        Err(QueueError::Active(active)) => assert_eq!(active, first.id),
        other => panic!("a second run was queued: {other:?}"),
    }
    let page = app
        .get(
            &format!("/api/v1/shops/{shop}/sync-runs"),
            Some(&seller.token),
        )
        .await
        .json();
    assert_eq!(page["count"], 1);
}

async fn a_named_lease_has_one_holder_and_passes_on_when_it_expires(app: TestApp) {
    use simba::store::leases;
    let ms = simba::domain::Timestamp::from_unix_millis;
    let db = &app.state.db;
    assert!(
        leases::acquire(db, "test-lease", "a", ms(1_000), ms(31_000))
            .await
            .unwrap()
    );
    assert!(
        !leases::acquire(db, "test-lease", "b", ms(2_000), ms(32_000))
            .await
            .unwrap()
    );
    assert!(
        leases::acquire(db, "test-lease", "a", ms(20_000), ms(50_000))
            .await
            .unwrap(),
        "renewal"
    );
    assert!(
        !leases::acquire(db, "test-lease", "b", ms(49_000), ms(79_000))
            .await
            .unwrap()
    );
    assert!(
        leases::acquire(db, "test-lease", "b", ms(50_001), ms(80_001))
            .await
            .unwrap(),
        "takeover after expiry"
    );
    assert!(
        !leases::acquire(db, "test-lease", "a", ms(50_002), ms(80_002))
            .await
            .unwrap()
    );
    leases::release(db, "test-lease", "b").await.unwrap();
    assert!(
        leases::acquire(db, "test-lease", "a", ms(50_003), ms(80_003))
            .await
            .unwrap(),
        "after release"
    );
}
