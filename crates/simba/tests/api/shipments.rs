//! `/shipments` and `/shops/{id}/shipments`.

use serde_json::Value;

use crate::backend_tests;
use crate::helpers::{Seller, TestApp, shipment};

backend_tests!(
    shipments_are_listed_newest_first_with_an_exact_count,
    a_shop_lists_only_its_own_shipments,
    every_filter_narrows_the_list_and_the_count,
    every_ordering_is_honoured,
    invalid_filter_values_are_400_naming_the_parameter,
    one_shipment_has_its_full_detail,
    pages_walk_the_whole_list_without_gaps_or_repeats,
    a_page_read_again_follows_every_change_to_the_shipments,
    a_search_finds_the_sellers_own_shipments_in_every_shop_and_no_one_elses,
);

async fn setup(app: &TestApp, count: usize) -> (Seller, i64) {
    let seller = app.register("anna").await;
    let shop = app.create_shop(&seller, "main").await;
    app.store_shipments(&seller, shop, count).await;
    (seller, shop)
}

fn ids(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["shipment_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn shipments_are_listed_newest_first_with_an_exact_count(app: TestApp) {
    let (seller, shop) = setup(&app, 120).await;
    let page = app
        .get("/api/v1/shipments", Some(&seller.token))
        .await
        .json();
    assert_eq!(page["count"], 120);
    assert_eq!(page["results"].as_array().unwrap().len(), 50);
    let first = &page["results"][0];
    assert_eq!(first["shipment_id"], format!("{shop}000119"));
    assert_eq!(first["shop_id"], shop);
    assert_eq!(first["fulfilment_method"], "FBB");
    assert!(first["shipment_date"].as_str().unwrap().ends_with('Z'));
    assert_eq!(first["transport"]["transporter_code"], "TNT");
    assert_eq!(first["items"][0]["title"], "Theepot glas 1,2 L");
    assert!(first.get("raw").is_none() && first.get("customer").is_none());
    let shop_count = app
        .get(&format!("/api/v1/shops/{shop}"), Some(&seller.token))
        .await
        .json();
    assert_eq!(shop_count["shipment_count"], 120);
}

async fn a_shop_lists_only_its_own_shipments(app: TestApp) {
    let (seller, shop) = setup(&app, 3).await;
    let other = app.create_shop(&seller, "second").await;
    app.store_shipments(&seller, other, 4).await;
    let all = app
        .get("/api/v1/shipments", Some(&seller.token))
        .await
        .json();
    assert_eq!(all["count"], 7);
    let first = app
        .get(
            &format!("/api/v1/shops/{shop}/shipments"),
            Some(&seller.token),
        )
        .await
        .json();
    assert_eq!(first["count"], 3);
    assert!(
        first["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["shop_id"] == shop)
    );
    let by_filter = app
        .get(
            &format!("/api/v1/shipments?shop={other}"),
            Some(&seller.token),
        )
        .await
        .json();
    assert_eq!(by_filter["count"], 4);
}

async fn every_filter_narrows_the_list_and_the_count(app: TestApp) {
    let (seller, shop) = setup(&app, 30).await;
    let cases = [
        ("fulfilment_method=FBR".to_owned(), 15),
        ("fulfilment_method=FBB".to_owned(), 15),
        (format!("order_id=O{shop}-3"), 2),
        ("ean=8700000000003".to_owned(), 4),
        ("shipped_after=2026-09-21T14:13:40Z".to_owned(), 10),
        ("shipped_before=2026-09-21T14:13:25Z".to_owned(), 5),
        (
            "shipped_after=2026-09-21T14:13:25%2B00:00&shipped_before=2026-09-21T15:13:30%2B01:00"
                .to_owned(),
            5,
        ),
        (format!("q={shop}000007"), 1),
        (format!("q=O{shop}-4"), 2),
        (format!("q=REF-{shop}-9"), 1),
        (format!("q=3SABCD{shop}00011"), 1),
        ("q=nothing-matches".to_owned(), 0),
        ("fulfilment_method=FBR&ean=8700000000000".to_owned(), 3),
    ];
    for (query, expected) in cases {
        let page = app
            .get(&format!("/api/v1/shipments?{query}"), Some(&seller.token))
            .await;
        assert_eq!(page.status, 200, "{query}: {}", page.text);
        let page = page.json();
        assert_eq!(page["count"], expected, "{query}");
        assert_eq!(
            page["results"].as_array().unwrap().len(),
            expected,
            "{query}"
        );
    }
}

async fn every_ordering_is_honoured(app: TestApp) {
    let (seller, shop) = setup(&app, 5).await;
    let order = |q: &'static str| {
        let app = app.clone();
        let token = seller.token.clone();
        async move {
            ids(&app
                .get(&format!("/api/v1/shipments?ordering={q}"), Some(&token))
                .await
                .json())
        }
    };
    let newest: Vec<String> = (0..5).rev().map(|i| format!("{shop}{i:06}")).collect();
    let oldest: Vec<String> = newest.iter().rev().cloned().collect();
    assert_eq!(order("-shipment_date").await, newest);
    assert_eq!(order("shipment_date").await, oldest);
    assert_eq!(order("-id").await, newest);
    assert_eq!(order("id").await, oldest);
    assert_eq!(
        ids(&app
            .get("/api/v1/shipments", Some(&seller.token))
            .await
            .json()),
        newest
    );
}

async fn invalid_filter_values_are_400_naming_the_parameter(app: TestApp) {
    let (seller, _) = setup(&app, 1).await;
    for (query, param) in [
        ("fulfilment_method=ALL", "fulfilment_method"),
        ("shipped_after=yesterday", "shipped_after"),
        ("shipped_before=2026-13-01T00:00:00Z", "shipped_before"),
        ("ordering=price", "ordering"),
        ("shop=abc", "shop"),
        ("page_size=1000", "page_size"),
        ("page=0", "page"),
    ] {
        let problem = app
            .get(&format!("/api/v1/shipments?{query}"), Some(&seller.token))
            .await
            .problem(400);
        assert!(problem["errors"][param].is_array(), "{query}: {problem}");
    }
}

async fn one_shipment_has_its_full_detail(app: TestApp) {
    let (seller, shop) = setup(&app, 2).await;
    let listed = app
        .get("/api/v1/shipments", Some(&seller.token))
        .await
        .json();
    let id = listed["results"][0]["id"].as_i64().unwrap();
    let detail = app
        .get(&format!("/api/v1/shipments/{id}"), Some(&seller.token))
        .await;
    assert_eq!(detail.status, 200, "{}", detail.text);
    let detail = detail.json();
    assert_eq!(detail["shipment_id"], format!("{shop}000001"));
    assert_eq!(detail["customer"]["shipment_details"]["city"], "Utrecht");
    assert_eq!(detail["raw"]["shipmentId"], format!("{shop}000001"));
    assert_eq!(
        detail["transport"]["events"][0]["event_code"],
        "AT_TRANSPORTER"
    );
    assert_eq!(detail["transport"]["shipping_label_id"], "L1");
    assert!(detail["order_placed_at"].is_string());
    for key in listed["results"][0].as_object().unwrap().keys() {
        assert!(detail.get(key).is_some(), "detail lacks {key}");
    }
    app.get("/api/v1/shipments/0", Some(&seller.token))
        .await
        .problem(404);
    app.get("/api/v1/shipments/x", Some(&seller.token))
        .await
        .problem(404);
}

async fn pages_walk_the_whole_list_without_gaps_or_repeats(app: TestApp) {
    let (seller, _) = setup(&app, 23).await;
    let mut seen = Vec::new();
    let mut next = Some(app.url("/api/v1/shipments?page_size=5&ordering=shipment_date"));
    while let Some(url) = next {
        let page = app
            .send(
                app.client
                    .get(&url)
                    .header("Authorization", format!("Token {}", seller.token)),
            )
            .await
            .json();
        assert_eq!(page["count"], 23);
        seen.extend(ids(&page));
        next = page["next"].as_str().map(str::to_owned);
    }
    assert_eq!(seen.len(), 23);
    let mut unique = seen.clone();
    unique.dedup();
    assert_eq!(unique, seen);
}

async fn a_page_read_again_follows_every_change_to_the_shipments(app: TestApp) {
    let (seller, shop) = setup(&app, 3).await;
    let list = |query: &'static str| {
        let app = &app;
        let token = seller.token.clone();
        async move {
            app.get(&format!("/api/v1/shipments{query}"), Some(&token))
                .await
                .json()
        }
    };
    for _ in 0..2 {
        assert_eq!(list("").await["count"], 3);
    }
    assert_eq!(list("?fulfilment_method=FBB").await["count"], 1);

    let more: Vec<_> = (3..5).map(|i| crate::helpers::shipment(shop, i)).collect();
    simba::store::shipments::insert_new(&app.state.db, seller.id, shop, &more)
        .await
        .unwrap();
    assert_eq!(list("").await["count"], 5, "new shipments are listed");
    assert_eq!(list("?fulfilment_method=FBB").await["count"], 2);

    let mut detail = crate::helpers::shipment(shop, 4);
    detail.transporter_code = Some("DHL".into());
    simba::store::shipments::store_details(&app.state.db, seller.id, shop, &[detail])
        .await
        .unwrap();
    let page = list("").await;
    assert_eq!(
        page["results"][0]["transport"]["transporter_code"], "DHL",
        "a new detail is listed"
    );

    let other = app.create_shop(&seller, "second").await;
    app.store_shipments(&seller, other, 2).await;
    assert_eq!(list("").await["count"], 7);
    app.delete(&format!("/api/v1/shops/{other}"), Some(&seller.token))
        .await;
    assert_eq!(
        list("").await["count"],
        5,
        "a deleted shop's shipments are gone"
    );

    let stranger = app.register("bram").await;
    let theirs = app
        .get("/api/v1/shipments", Some(&stranger.token))
        .await
        .json();
    assert_eq!(
        theirs["count"], 0,
        "another seller never gets this seller's pages"
    );
}

/// Lookups by order id and searches are indexed per shop and run through the seller's shops:
/// they must find the seller's matches in each of its shops, and never another seller's
/// shipment with the same ids, whatever the route (page numbers, cursor, a shop filter).
async fn a_search_finds_the_sellers_own_shipments_in_every_shop_and_no_one_elses(app: TestApp) {
    let anna = app.register("anna").await;
    let bob = app.register("bob").await;
    let shared = |shop_id: i64, i: usize| {
        let mut shipment = shipment(shop_id, i);
        shipment.shipment_id = format!("SHARED-{i}");
        shipment.order_id = Some("ORDER-SHARED".into());
        shipment.shipment_reference = Some("REF-SHARED".into());
        shipment.track_and_trace = Some("3SSHARED".into());
        shipment
    };
    let mut shops = Vec::new();
    for (seller, names) in [(&anna, ["first", "second"]), (&bob, ["third", "fourth"])] {
        for (i, name) in names.into_iter().enumerate() {
            let shop = app.create_shop(seller, name).await;
            app.store_shipments(seller, shop, 3).await;
            simba::store::shipments::insert_new(&app.state.db, seller.id, shop, &[shared(shop, i)])
                .await
                .unwrap();
            shops.push(shop);
        }
    }
    let (anna_shops, bob_shops) = shops.split_at(2);
    for (name, seller, own, other) in [
        ("anna", &anna, anna_shops, bob_shops),
        ("bob", &bob, bob_shops, anna_shops),
    ] {
        for query in [
            "q=ORDER-SHARED",
            "q=REF-SHARED",
            "q=3SSHARED",
            "order_id=ORDER-SHARED",
            "order_id=ORDER-SHARED&q=3SSHARED",
            "order_id=ORDER-SHARED&fulfilment_method=FBR",
        ] {
            let expected = if query.contains("FBR") { 1 } else { 2 };
            for path in [
                format!("/api/v1/shipments?{query}"),
                format!("/api/v1/shipments?cursor=&{query}"),
            ] {
                let page = app.get(&path, Some(&seller.token)).await;
                assert_eq!(page.status, 200, "{path}: {}", page.text);
                let page = page.json();
                let found: Vec<i64> = page["results"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s["shop_id"].as_i64().unwrap())
                    .collect();
                assert_eq!(found.len(), expected, "{name}: {path}");
                assert!(
                    found.iter().all(|shop| own.contains(shop)),
                    "{path}: {found:?}"
                );
                if !path.contains("cursor") {
                    assert_eq!(page["count"], expected, "{path}");
                }
            }
            let foreign = app
                .get(
                    &format!("/api/v1/shipments?shop={}&{query}", other[0]),
                    Some(&seller.token),
                )
                .await
                .json();
            assert_eq!(foreign["count"], 0, "another seller's shop, {query}");
            let mine = app
                .get(
                    &format!("/api/v1/shipments?shop={}&{query}", own[1]),
                    Some(&seller.token),
                )
                .await
                .json();
            let in_shop = if query.contains("FBR") { 0 } else { 1 };
            assert_eq!(mine["count"], in_shop, "the seller's own shop, {query}");
        }
        let narrowed = app
            .get(
                "/api/v1/shipments?order_id=ORDER-SHARED&ean=8700000000000&shipped_after=2020-01-01T00:00:00Z",
                Some(&seller.token),
            )
            .await
            .json();
        assert_eq!(
            narrowed["count"], 1,
            "{name}: the lookup with the other filters"
        );
        assert_eq!(narrowed["results"][0]["shop_id"], own[0]);
        for ordering in ["-shipment_date", "id", "-id"] {
            let mut path =
                format!("/api/v1/shipments?cursor=&page_size=1&ordering={ordering}&q=3SSHARED");
            let mut walked = Vec::new();
            loop {
                let page = app.get(&path, Some(&seller.token)).await.json();
                walked.extend(
                    page["results"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s["shop_id"].as_i64().unwrap()),
                );
                match page["next"].as_str() {
                    Some(next) => path = next.strip_prefix(&app.address).unwrap().to_owned(),
                    None => break,
                }
            }
            walked.sort_unstable();
            assert_eq!(walked, own, "{name}: a walk of one row a page, {ordering}");
        }
        let by_id = app
            .get("/api/v1/shipments?q=SHARED-1", Some(&seller.token))
            .await
            .json();
        assert_eq!(by_id["count"], 1);
        assert_eq!(by_id["results"][0]["shop_id"], own[1]);
    }
}
