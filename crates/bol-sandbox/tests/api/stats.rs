//! Accounting: calls, faults and the wasted-call rules that let tests assert "no extra call".

use crate::helpers::{TestSandbox, unlimited};
use bol_sandbox::{Faults, Stats};
use reqwest::StatusCode;

#[tokio::test]
async fn a_detail_fetched_twice_is_one_wasted_call() {
    let app = TestSandbox::start(unlimited(1, 10, 0)).await;
    let token = app.token(1).await;
    let ids = app.crawl(&token, "FBR").await;
    for id in ids.iter().chain(&ids[..3]) {
        app.get_json(&token, &format!("/retailer/shipments/{id}"))
            .await;
    }
    let detail = app
        .sandbox
        .stats()
        .account("sandbox-1")
        .unwrap()
        .detail
        .clone();
    assert_eq!((detail.calls, detail.wasted), (13, 3));
}

#[tokio::test]
async fn a_page_fetched_twice_in_one_crawl_is_wasted_even_after_arrivals() {
    let app = TestSandbox::start(unlimited(1, 120, 0)).await;
    let token = app.token(1).await;
    app.page(&token, "FBR", 1).await;
    app.page(&token, "FBR", 2).await;
    app.sandbox.add_shipments("sandbox-1", 5, 0);
    app.page(&token, "FBR", 2).await; // same page number in the same crawl: wasted
    app.page(&token, "FBB", 2).await; // FBB crawls are separate
    app.page(&token, "FBR", 1).await; // a new crawl
    app.page(&token, "FBR", 2).await;
    app.page(&token, "FBR", 1).await; // page 1 always starts a crawl, so is never wasted
    let list = app
        .sandbox
        .stats()
        .account("sandbox-1")
        .unwrap()
        .list
        .clone();
    assert_eq!((list.calls, list.wasted), (7, 1));
}

#[tokio::test]
async fn a_token_requested_with_more_than_half_the_old_one_left_is_wasted() {
    let app = TestSandbox::start(unlimited(1, 1, 0)).await;
    app.token(1).await;
    app.token(1).await;
    let token = app
        .sandbox
        .stats()
        .account("sandbox-1")
        .unwrap()
        .token
        .clone();
    assert_eq!((token.calls, token.wasted), (2, 1));
}

#[tokio::test]
async fn faulted_answers_do_not_make_the_retry_wasted() {
    let app = TestSandbox::start(unlimited(1, 3, 0)).await;
    let token = app.token(1).await;
    let id = app.page(&token, "FBR", 1).await[0]["shipmentId"]
        .as_str()
        .unwrap()
        .to_owned();
    app.sandbox.set_faults(Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    });
    app.get(&token, &format!("/retailer/shipments/{id}")).await;
    app.sandbox.set_faults(Faults::default());
    app.get_json(&token, &format!("/retailer/shipments/{id}"))
        .await;
    let detail = app
        .sandbox
        .stats()
        .account("sandbox-1")
        .unwrap()
        .detail
        .clone();
    assert_eq!((detail.calls, detail.faults, detail.wasted), (2, 1, 0));
}

#[tokio::test]
async fn stats_over_http_match_the_typed_ones_and_reset_clears_them() {
    let app = TestSandbox::start(unlimited(2, 4, 1)).await;
    let token = app.token(2).await;
    let ids = app.crawl(&token, "FBB").await;
    app.get_json(&token, &format!("/retailer/shipments/{}", ids[0]))
        .await;
    let over_http: Stats = app
        .client
        .get(format!("{}/_sandbox/stats", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(over_http, app.sandbox.stats());
    let two = over_http.account("sandbox-2").unwrap();
    assert_eq!(
        (
            two.fbr,
            two.fbb,
            two.token.calls,
            two.list.calls,
            two.detail.calls
        ),
        (4, 1, 1, 2, 1)
    );
    let r = app
        .client
        .post(format!("{}/_sandbox/reset", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let after = app.sandbox.stats();
    assert_eq!(after.account("sandbox-2").unwrap().detail.calls, 0);
    app.get_json(&token, &format!("/retailer/shipments/{}", ids[0]))
        .await;
    assert_eq!(
        app.sandbox
            .stats()
            .account("sandbox-2")
            .unwrap()
            .detail
            .wasted,
        0
    );
}
