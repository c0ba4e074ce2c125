//! `/shipments/changes`: the change feed, read while syncs commit.

use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{Seller, TestApp};

backend_tests!(
    the_feed_serves_every_shipment_once_in_the_order_they_changed,
    a_change_moves_a_shipment_to_the_end_of_the_feed,
    another_sellers_changes_never_appear,
    invalid_feed_parameters_are_400_naming_the_parameter,
);

async fn changes(app: &TestApp, seller: &Seller, query: &str) -> Value {
    let response = app
        .get(
            &format!("/api/v1/shipments/changes?{query}"),
            Some(&seller.token),
        )
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
    response.json()
}

fn seqs(page: &Value) -> Vec<i64> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["change_seq"].as_i64().unwrap())
        .collect()
}

async fn the_feed_serves_every_shipment_once_in_the_order_they_changed(app: TestApp) {
    let seller = app.register("anna").await;
    let shop = app.create_shop(&seller, "main").await;
    app.store_shipments(&seller, shop, 120).await;

    let mut after = 0;
    let mut served = Vec::new();
    loop {
        let page = changes(&app, &seller, &format!("after={after}&limit=50")).await;
        let batch = seqs(&page);
        if batch.is_empty() {
            assert_eq!(page["last_seq"], after, "nothing new keeps the position");
            break;
        }
        assert_eq!(page["last_seq"], *batch.last().unwrap());
        assert!(batch.len() <= 50);
        after = page["last_seq"].as_i64().unwrap();
        served.extend(batch);
    }
    assert_eq!(served.len(), 120);
    assert!(served.windows(2).all(|w| w[0] < w[1]), "{served:?}");
    let first = changes(&app, &seller, "limit=1").await;
    let shipment = &first["results"][0];
    assert_eq!(shipment["shipment_id"], format!("{shop}000000"));
    assert!(shipment["updated_at"].as_str().unwrap().ends_with('Z'));
    assert!(
        shipment.get("raw").is_none(),
        "the feed lists, as the list does"
    );
}

async fn a_change_moves_a_shipment_to_the_end_of_the_feed(app: TestApp) {
    let seller = app.register("anna").await;
    let shop = app.create_shop(&seller, "main").await;
    let stored = app.store_shipments(&seller, shop, 10).await;
    let all = changes(&app, &seller, "after=0").await;
    let last = all["last_seq"].as_i64().unwrap();

    let mut detail = stored[3].clone();
    detail.track_and_trace = Some("3SNEWTRACK".into());
    simba::store::shipments::store_details(&app.state.db, seller.id, shop, &[detail])
        .await
        .unwrap();

    let after = changes(&app, &seller, &format!("after={last}")).await;
    let results = after["results"].as_array().unwrap();
    assert_eq!(results.len(), 1, "only the changed shipment: {after}");
    assert_eq!(results[0]["shipment_id"], stored[3].shipment_id);
    assert_eq!(results[0]["transport"]["track_and_trace"], "3SNEWTRACK");
    assert!(results[0]["change_seq"].as_i64().unwrap() > last);
    let detail = app
        .get(
            &format!("/api/v1/shipments/{}", results[0]["id"]),
            Some(&seller.token),
        )
        .await
        .json();
    assert_eq!(detail["change_seq"], results[0]["change_seq"]);
}

async fn another_sellers_changes_never_appear(app: TestApp) {
    let anna = app.register("anna").await;
    let shop = app.create_shop(&anna, "main").await;
    app.store_shipments(&anna, shop, 5).await;
    let mallory = app.register("mallory").await;

    for query in ["after=0", &format!("after=0&shop={shop}")] {
        let page = changes(&app, &mallory, query).await;
        assert_eq!(page["results"], serde_json::json!([]), "{query}");
        assert_eq!(page["last_seq"], 0);
    }
    let unauthenticated = app.get("/api/v1/shipments/changes?after=0", None).await;
    assert_eq!(unauthenticated.status, 401);
}

async fn invalid_feed_parameters_are_400_naming_the_parameter(app: TestApp) {
    let seller = app.register("anna").await;
    for (query, param) in [
        ("after=-1", "after"),
        ("after=x", "after"),
        ("after=99999999999999999999", "after"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("shop=main", "shop"),
    ] {
        let response = app
            .get(
                &format!("/api/v1/shipments/changes?{query}"),
                Some(&seller.token),
            )
            .await;
        let problem = response.problem(400);
        assert!(problem["errors"].get(param).is_some(), "{query}: {problem}");
    }
}

/// A test of its own runtime with two threads, so that the syncs and the consumer interleave.
mod while_syncs_commit {
    use std::collections::HashMap;

    use super::changes;
    use crate::helpers::Backend;
    use crate::helpers::sync_setup::{SyncSetup, SyncTest};
    use crate::multi_thread_backend_tests;

    multi_thread_backend_tests!(
        a_consumer_polling_while_syncs_commit_never_skips_or_repeats_a_change
    );

    /// Three shops of one seller sync at once, so their commits race for the seller's sequence,
    /// while a consumer polls in small batches. Every shipment's last change must reach it: a
    /// number served before a smaller one committed would hide that smaller one for good.
    async fn a_consumer_polling_while_syncs_commit_never_skips_or_repeats_a_change(
        backend: Backend,
    ) {
        let Some(SyncTest {
            app,
            sandbox: _sandbox,
            seller,
            shops,
        }) = SyncSetup::new(backend)
            .accounts(&[(120, 60), (90, 90), (150, 30)])
            .shops(3)
            .background_workers()
            .spawn()
            .await
        else {
            return;
        };
        let mut runs = Vec::new();
        for &shop in &shops {
            runs.push(app.start_sync(&seller, shop, Some("full")).await);
        }

        let mut after = 0;
        let mut served: Vec<i64> = Vec::new();
        let mut last_seen: HashMap<i64, i64> = HashMap::new();
        let mut settled = false;
        loop {
            let page = changes(&app, &seller, &format!("after={after}&limit=37")).await;
            for shipment in page["results"].as_array().unwrap() {
                let seq = shipment["change_seq"].as_i64().unwrap();
                served.push(seq);
                last_seen.insert(shipment["id"].as_i64().unwrap(), seq);
            }
            after = page["last_seq"].as_i64().unwrap();
            if page["results"].as_array().unwrap().is_empty() {
                if settled {
                    break;
                }
                let mut all_ended = true;
                for &run in &runs {
                    let status = app.sync_run(&seller, run).await["status"].clone();
                    all_ended &= status != "queued" && status != "running";
                }
                // One more empty poll after every run ended: nothing may still be committing.
                settled = all_ended;
            }
        }
        assert!(
            served.windows(2).all(|w| w[0] < w[1]),
            "a number served twice or out of order"
        );

        let mut stored = HashMap::new();
        let mut page = 1;
        loop {
            let list = app
                .get(
                    &format!("/api/v1/shipments?page_size=500&page={page}"),
                    Some(&seller.token),
                )
                .await
                .json();
            for shipment in list["results"].as_array().unwrap() {
                stored.insert(
                    shipment["id"].as_i64().unwrap(),
                    shipment["change_seq"].as_i64().unwrap(),
                );
            }
            if list["next"].is_null() {
                break;
            }
            page += 1;
        }
        assert_eq!(stored.len(), 540);
        for (id, seq) in &stored {
            assert_eq!(
                last_seen.get(id),
                Some(seq),
                "shipment {id}: its last change ({seq}) was never served"
            );
        }
    }
}
