//! Walking every page and detail makes exactly the calls needed, no more.

use crate::helpers::*;
use bol::{Error, FulfilmentMethod};
use std::collections::HashSet;

async fn full_crawl_makes_exactly_the_minimal_calls(fbr: u32) {
    let sandbox = unlimited_sandbox(fbr, 0).await;
    let client = client(&sandbox, no_limits());
    let creds = creds();

    let (shipments, list_calls) = crawl(&client, &creds, FulfilmentMethod::Fbr).await;
    let detail_calls = details(&client, &creds, &shipments).await;

    let pages = fbr / 50 + 1;
    assert_eq!(shipments.len(), fbr as usize);
    let ids: HashSet<_> = shipments.iter().map(|s| &s.shipment_id).collect();
    assert_eq!(ids.len(), fbr as usize, "no duplicates");
    assert_eq!(list_calls.list, pages);
    assert_eq!(list_calls.token, 1);
    assert_eq!(detail_calls.detail, fbr);
    assert_eq!(detail_calls.token, 0, "the token is reused");
    let (token, list, detail) = stats(&sandbox);
    assert_eq!(
        (token.calls, list.calls, detail.calls),
        (1, u64::from(pages), u64::from(fbr))
    );
    assert_eq!(token.wasted + list.wasted + detail.wasted, 0);
}

#[tokio::test]
async fn crawling_no_shipments_takes_one_page() {
    full_crawl_makes_exactly_the_minimal_calls(0).await;
}

#[tokio::test]
async fn crawling_one_shipment_takes_one_page_and_one_detail() {
    full_crawl_makes_exactly_the_minimal_calls(1).await;
}

#[tokio::test]
async fn crawling_fifty_shipments_takes_two_pages() {
    full_crawl_makes_exactly_the_minimal_calls(50).await;
}

#[tokio::test]
async fn crawling_fifty_one_shipments_takes_two_pages() {
    full_crawl_makes_exactly_the_minimal_calls(51).await;
}

#[tokio::test]
async fn fbr_and_fbb_are_listed_separately() {
    let sandbox = unlimited_sandbox(3, 2).await;
    let client = client(&sandbox, no_limits());
    let (fbr, _) = crawl(&client, &creds(), FulfilmentMethod::Fbr).await;
    let (fbb, _) = crawl(&client, &creds(), FulfilmentMethod::Fbb).await;
    assert_eq!((fbr.len(), fbb.len()), (3, 2));
    let detail = client
        .shipment(&creds(), &fbb[0].shipment_id)
        .await
        .unwrap();
    let item = &detail.value.shipment.shipment_items[0];
    assert_eq!(
        item.fulfilment.as_ref().unwrap().method.as_deref(),
        Some("FBB")
    );
    let raw: serde_json::Value = serde_json::from_str(&detail.value.raw).unwrap();
    assert_eq!(raw["shipmentId"], fbb[0].shipment_id.as_str());
}

#[tokio::test]
async fn an_unknown_shipment_is_not_found_without_retries() {
    let sandbox = unlimited_sandbox(1, 0).await;
    let client = client(&sandbox, no_limits());
    let failure = client.shipment(&creds(), "1").await.unwrap_err();
    assert!(matches!(failure.error, Error::NotFound(_)), "{failure}");
    assert_eq!(failure.status(), Some(404));
    assert!(!failure.is_transient());
    assert_eq!((failure.calls.detail, failure.calls.retries), (1, 0));
}
