//! The list: 50 a page, newest first, `{}` past the end, arrivals shifting pages, order-id.

use crate::helpers::{TestSandbox, unlimited};
use reqwest::StatusCode;
use serde_json::Value;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

#[tokio::test]
async fn pages_hold_fifty_and_end_with_an_empty_object() {
    for (count, full_pages) in [
        (0u32, vec![]),
        (1, vec![1]),
        (49, vec![49]),
        (50, vec![50]),
        (51, vec![50, 1]),
    ] {
        let app = TestSandbox::start(unlimited(1, count, 0)).await;
        let token = app.token(1).await;
        let mut sizes = Vec::new();
        for page in 1..=full_pages.len() as u32 {
            sizes.push(app.page(&token, "FBR", page).await.len());
        }
        assert_eq!(sizes, full_pages, "{count} shipments");
        let past = full_pages.len() as u32 + 1;
        let r = app
            .get(
                &token,
                &format!("/retailer/shipments?fulfilment-method=FBR&page={past}"),
            )
            .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.text().await.unwrap(),
            "{}",
            "{count} shipments, page {past}"
        );
    }
}

#[tokio::test]
async fn lists_are_newest_first_and_methods_are_separate() {
    let app = TestSandbox::start(unlimited(1, 70, 5)).await;
    let token = app.token(1).await;
    let all = app.get_json(&token, "/retailer/shipments").await["shipments"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(all.len(), 50);
    let instants: Vec<OffsetDateTime> = all
        .iter()
        .map(|s| OffsetDateTime::parse(s["shipmentDateTime"].as_str().unwrap(), &Rfc3339).unwrap())
        .collect();
    assert!(instants.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert!(all.iter().all(|s| {
        let d = s["shipmentDateTime"].as_str().unwrap();
        d.ends_with("+01:00") || d.ends_with("+02:00")
    }));
    let fbr = app.crawl(&token, "FBR").await;
    let fbb = app.crawl(&token, "FBB").await;
    assert_eq!((fbr.len(), fbb.len()), (70, 5));
    assert!(fbr.iter().all(|id| !fbb.contains(id)));
    let mut unique = fbr.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 70);
}

#[tokio::test]
async fn arrivals_become_the_newest_and_shift_later_pages() {
    let app = TestSandbox::start(unlimited(1, 60, 0)).await;
    let token = app.token(1).await;
    let before = app.page(&token, "FBR", 1).await;
    app.sandbox.add_shipments("sandbox-1", 3, 0);
    let after = app.page(&token, "FBR", 1).await;
    assert_eq!(after[3]["shipmentId"], before[0]["shipmentId"]);
    assert_eq!(app.page(&token, "FBR", 2).await.len(), 13);
    let r = app
        .client
        .post(format!("{}/_sandbox/shipments", app.base))
        .json(&serde_json::json!({"account": "sandbox-1", "fbb": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(app.page(&token, "FBB", 1).await.len(), 2);
}

#[tokio::test]
async fn order_id_finds_its_shipment_whatever_the_method() {
    let app = TestSandbox::start(unlimited(1, 5, 5)).await;
    let token = app.token(1).await;
    let shipment = app.page(&token, "FBB", 1).await[2].clone();
    let order_id = shipment["order"]["orderId"].as_str().unwrap();
    let found = app
        .get_json(
            &token,
            &format!("/retailer/shipments?order-id={order_id}&fulfilment-method=FBR"),
        )
        .await;
    assert_eq!(found["shipments"].as_array().unwrap(), &vec![shipment]);
    let none = app.get(&token, "/retailer/shipments?order-id=123").await;
    assert_eq!(none.text().await.unwrap(), "{}");
}

#[tokio::test]
async fn bad_parameters_get_a_problem_with_violations() {
    let app = TestSandbox::start(unlimited(1, 5, 0)).await;
    let token = app.token(1).await;
    let r = app
        .get(&token, "/retailer/shipments?fulfilment-method=ALL&page=0")
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], 400);
    assert_eq!(body["type"], "https://api.bol.com/problems");
    assert_eq!(body["violations"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn the_same_seed_gives_the_same_shipments() {
    let (a, b) = (
        TestSandbox::start(unlimited(1, 5, 0)).await,
        TestSandbox::start(unlimited(1, 5, 0)).await,
    );
    let (ta, tb) = (a.token(1).await, b.token(1).await);
    let ids = a.crawl(&ta, "FBR").await;
    assert_eq!(ids, b.crawl(&tb, "FBR").await);
    let path = format!("/retailer/shipments/{}", ids[0]);
    let (da, db) = (a.get_json(&ta, &path).await, b.get_json(&tb, &path).await);
    assert_eq!(da["shipmentDetails"], db["shipmentDetails"]);
    assert_eq!(da["shipmentItems"], db["shipmentItems"]);
}
