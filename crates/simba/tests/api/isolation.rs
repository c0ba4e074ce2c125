//! Every endpoint answers another seller's shop, run or shipment with 404, and lists never
//! include another seller's rows.

use serde_json::json;
use simba::domain::{Mode, Trigger};
use simba::store::sync_runs;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(another_sellers_objects_are_404_on_every_endpoint);

async fn another_sellers_objects_are_404_on_every_endpoint(app: TestApp) {
    let owner = app.register("owner").await;
    let intruder = app.register("intruder").await;
    let shop = app.create_shop(&owner, "main").await;
    app.store_shipments(&owner, shop, 3).await;
    let run = sync_runs::create_queued(&app.state.db, shop, Mode::Full, Trigger::Api)
        .await
        .unwrap();
    let shipment = app
        .get("/api/v1/shipments", Some(&owner.token))
        .await
        .json()["results"][0]["id"]
        .as_i64()
        .unwrap();
    let token = Some(intruder.token.as_str());

    app.get(&format!("/api/v1/shops/{shop}"), token)
        .await
        .problem(404);
    app.put(
        &format!("/api/v1/shops/{shop}"),
        token,
        json!({"name": "x", "client_id": "y"}),
    )
    .await
    .problem(404);
    app.patch(
        &format!("/api/v1/shops/{shop}"),
        token,
        json!({"name": "mine now"}),
    )
    .await
    .problem(404);
    app.delete(&format!("/api/v1/shops/{shop}"), token)
        .await
        .problem(404);
    app.get(&format!("/api/v1/shops/{shop}/shipments"), token)
        .await
        .problem(404);
    app.get(&format!("/api/v1/shops/{shop}/sync-runs"), token)
        .await
        .problem(404);
    app.get(&format!("/api/v1/sync-runs/{}", run.id), token)
        .await
        .problem(404);
    app.get(&format!("/api/v1/shipments/{shipment}"), token)
        .await
        .problem(404);

    for path in [
        "/api/v1/shops".to_owned(),
        "/api/v1/shipments".to_owned(),
        format!("/api/v1/shipments?shop={shop}"),
        format!("/api/v1/shipments?shop={shop}&fulfilment_method=FBR"),
        format!("/api/v1/shipments?shop={shop}&shipped_after=2000-01-01T00:00:00Z"),
    ] {
        let page = app.get(&path, token).await.json();
        assert_eq!(page["count"], 0, "{path}");
        assert!(page["results"].as_array().unwrap().is_empty(), "{path}");
    }

    let intact = app
        .get(&format!("/api/v1/shops/{shop}"), Some(&owner.token))
        .await
        .json();
    assert_eq!(intact["name"], "main");
    assert_eq!(intact["shipment_count"], 3);
}
