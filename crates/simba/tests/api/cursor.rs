//! Cursor pagination on every list: walks forward and back in every ordering and filter, the
//! `Link` header, cursors bound to their seller and list, and a walk while a sync commits.

use std::collections::HashMap;

use simba::domain::{Mode, Trigger};
use simba::store::sync_runs;

use crate::backend_tests;
use crate::helpers::{Seller, TestApp};

backend_tests!(
    a_cursor_walk_sees_every_shipment_once_in_every_ordering_and_filter_forward_and_back,
    shops_and_sync_runs_walk_by_cursor_too,
    webhook_endpoints_and_their_deliveries_walk_by_cursor_too,
    a_forged_foreign_or_misplaced_cursor_is_a_400_that_names_cursor,
    a_cursor_page_read_again_after_a_change_shows_the_change,
);

/// The answer's ids, `next` and `previous` (as paths of the app) after asserting the shape of
/// a cursor page and its `Link` header.
struct CursorPage {
    ids: Vec<i64>,
    next: Option<String>,
    previous: Option<String>,
}

async fn cursor_page(app: &TestApp, seller: &Seller, path: &str) -> CursorPage {
    let response = app.get(path, Some(&seller.token)).await;
    assert_eq!(response.status, 200, "{path}: {}", response.text);
    let body = response.json();
    assert!(body.get("count").is_none(), "a cursor page has no count");
    let link = |key: &str| {
        body[key].as_str().map(|url| {
            url.strip_prefix(&app.address)
                .unwrap_or_else(|| panic!("{url} is not absolute"))
                .to_owned()
        })
    };
    let (next, previous) = (link("next"), link("previous"));
    let header = response.header("link").unwrap_or_default();
    for (url, rel) in [(&body["next"], "next"), (&body["previous"], "prev")] {
        match url.as_str() {
            Some(url) => assert!(
                header.contains(&format!("<{url}>; rel=\"{rel}\"")),
                "{header}"
            ),
            None => assert!(!header.contains(&format!("rel=\"{rel}\""))),
        }
    }
    let ids = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_i64().unwrap())
        .collect();
    CursorPage {
        ids,
        next,
        previous,
    }
}

/// Every id of a walk from `start` following `next`, and the last page's path.
async fn walk_forward(app: &TestApp, seller: &Seller, start: &str) -> (Vec<i64>, String) {
    let mut ids = Vec::new();
    let mut path = start.to_owned();
    loop {
        let page = cursor_page(app, seller, &path).await;
        ids.extend(page.ids);
        match page.next {
            Some(next) => path = next,
            None => return (ids, path),
        }
    }
}

/// Every id of a walk back from the page at `last` following `previous`, in list order.
async fn walk_back(app: &TestApp, seller: &Seller, last: &str) -> Vec<i64> {
    let mut pages = Vec::new();
    let mut path = last.to_owned();
    loop {
        let page = cursor_page(app, seller, &path).await;
        pages.push(page.ids);
        match page.previous {
            Some(previous) => path = previous,
            None => break,
        }
    }
    pages.into_iter().rev().flatten().collect()
}

/// Every id of a list by page number, in one page.
async fn numbered(app: &TestApp, seller: &Seller, path: &str) -> Vec<i64> {
    let separator = if path.contains('?') { '&' } else { '?' };
    let body = app
        .get(
            &format!("{path}{separator}page_size=500"),
            Some(&seller.token),
        )
        .await
        .json();
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["id"].as_i64().unwrap())
        .collect()
}

async fn a_cursor_walk_sees_every_shipment_once_in_every_ordering_and_filter_forward_and_back(
    app: TestApp,
) {
    let seller = app.register("anna").await;
    let first = app.create_shop(&seller, "one").await;
    let second = app.create_shop(&seller, "two").await;
    // The two shops' shipments share their dates: ties that only the id breaks.
    app.store_shipments(&seller, first, 23).await;
    app.store_shipments(&seller, second, 17).await;
    let lists = [
        "/api/v1/shipments".to_owned(),
        format!("/api/v1/shops/{first}/shipments"),
    ];
    let queries = [
        String::new(),
        "ordering=-shipment_date".into(),
        "ordering=shipment_date".into(),
        "ordering=-id".into(),
        "ordering=id".into(),
        "fulfilment_method=FBR&ordering=shipment_date".into(),
        "shipped_after=2026-09-21T14:13:25Z&shipped_before=2026-09-21T14:13:35Z".into(),
        "ean=8700000000003&ordering=-id".into(),
        format!("q=REF-{first}-4"),
    ];
    for list in &lists {
        for query in &queries {
            let expected = numbered(&app, &seller, &format!("{list}?{query}")).await;
            assert!(!expected.is_empty(), "{list}?{query} selects nothing");
            let start = format!("{list}?{query}&cursor=&page_size=4");
            let (forward, last) = walk_forward(&app, &seller, &start).await;
            assert_eq!(forward, expected, "{start} forward");
            let back = walk_back(&app, &seller, &last).await;
            assert_eq!(back, expected, "{start} back from {last}");
        }
    }
    let (all, _) = walk_forward(&app, &seller, "/api/v1/shipments?cursor=").await;
    assert_eq!(all.len(), 40, "the default page size holds the whole list");
}

async fn results(app: &TestApp, seller: &Seller, path: &str) -> serde_json::Value {
    let r = app.get(path, Some(&seller.token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["results"].clone()
}

/// Cursor pages are kept in the page cache under the seller's version: a change to a row of a
/// page read before (here its erasure) is in the same page read again, and the page kept at
/// the old version is never served.
async fn a_cursor_page_read_again_after_a_change_shows_the_change(app: TestApp) {
    let seller = app.register("anna").await;
    let shop = app.create_shop(&seller, "one").await;
    app.store_shipments(&seller, shop, 12).await;
    let first = cursor_page(&app, &seller, "/api/v1/shipments?cursor=&page_size=5").await;
    let second_path = first.next.expect("a second page");
    let before = results(&app, &seller, &second_path).await;
    assert_eq!(results(&app, &seller, &second_path).await, before);
    let target = before[2]["id"].as_i64().unwrap();
    assert!(before[2]["personal_data_erased_at"].is_null());
    let erased = app
        .post(
            "/api/v1/erasures",
            Some(&seller.token),
            serde_json::json!({ "shipment_ids": [target] }),
        )
        .await;
    assert_eq!(erased.status, 200, "{}", erased.text);
    let after = results(&app, &seller, &second_path).await;
    assert_eq!(after[2]["id"], target);
    assert!(after[2]["personal_data_erased_at"].is_string(), "{after}");
}

async fn shops_and_sync_runs_walk_by_cursor_too(app: TestApp) {
    let seller = app.register("anna").await;
    let mut shops = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        shops.push(app.create_shop(&seller, name).await);
    }
    let (walked, last) = walk_forward(&app, &seller, "/api/v1/shops?cursor=&page_size=2").await;
    assert_eq!(walked, shops);
    assert_eq!(walk_back(&app, &seller, &last).await, shops);

    let shop = shops[0];
    let db = &app.state.db;
    let mut runs = Vec::new();
    for _ in 0..5 {
        let run = sync_runs::create_queued(db, shop, Mode::Incremental, Trigger::Schedule)
            .await
            .unwrap();
        runs.insert(0, run.id);
        db.query("UPDATE shops SET active_run_id = NULL WHERE id = ?")
            .bind(shop)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let start = format!("/api/v1/shops/{shop}/sync-runs?cursor=&page_size=2");
    let (walked, last) = walk_forward(&app, &seller, &start).await;
    assert_eq!(walked, runs, "newest first");
    assert_eq!(walk_back(&app, &seller, &last).await, runs);
}

async fn webhook_endpoints_and_their_deliveries_walk_by_cursor_too(app: TestApp) {
    let seller = app.register("anna").await;
    let mut endpoints = Vec::new();
    for n in 0..3 {
        let body = serde_json::json!({"url": format!("http://127.0.0.1:9/hook{n}"), "events": ["webhook.test"]});
        let created = app
            .post("/api/v1/webhooks", Some(&seller.token), body)
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        endpoints.push(created.json()["id"].as_i64().unwrap());
    }
    let start = "/api/v1/webhooks?cursor=&page_size=2";
    let (walked, last) = walk_forward(&app, &seller, start).await;
    assert_eq!(walked, endpoints, "oldest first");
    assert_eq!(walk_back(&app, &seller, &last).await, endpoints);

    let endpoint = endpoints[0];
    for _ in 0..5 {
        let path = format!("/api/v1/webhooks/{endpoint}/test");
        let queued = app
            .post(&path, Some(&seller.token), serde_json::json!({}))
            .await;
        assert_eq!(queued.status, 202, "{}", queued.text);
    }
    let list = format!("/api/v1/webhooks/{endpoint}/deliveries");
    let deliveries = numbered(&app, &seller, &list).await;
    assert_eq!(deliveries.len(), 5);
    let (walked, last) = walk_forward(&app, &seller, &format!("{list}?cursor=&page_size=2")).await;
    assert_eq!(walked, deliveries, "newest first, as numbered");
    assert_eq!(walk_back(&app, &seller, &last).await, deliveries);

    let mallory = app.register("mallory").await;
    let foreign = app.get(&last, Some(&mallory.token)).await;
    assert_eq!(
        foreign.status, 404,
        "another seller's endpoint: {}",
        foreign.text
    );
    let query = last.split_once('?').unwrap().1;
    let other_endpoint = format!("/api/v1/webhooks/{}/deliveries?{query}", endpoints[1]);
    let misplaced = app.get(&other_endpoint, Some(&seller.token)).await;
    assert!(misplaced.problem(400)["errors"].get("cursor").is_some());
}

async fn a_forged_foreign_or_misplaced_cursor_is_a_400_that_names_cursor(app: TestApp) {
    let anna = app.register("anna").await;
    let bert = app.register("bert").await;
    let shop = app.create_shop(&anna, "one").await;
    let other = app.create_shop(&anna, "two").await;
    let berts_shop = app.create_shop(&bert, "b").await;
    app.store_shipments(&anna, shop, 10).await;
    app.store_shipments(&anna, other, 10).await;
    app.store_shipments(&bert, berts_shop, 10).await;
    let first = cursor_page(
        &app,
        &anna,
        "/api/v1/shipments?ordering=id&cursor=&page_size=3",
    )
    .await;
    let next = first.next.unwrap();
    let cursor = next.split("cursor=").nth(1).unwrap().to_owned();
    assert!(cursor.len() < 64, "{cursor}");
    assert_eq!(app.get(&next, Some(&anna.token)).await.status, 200);

    let tampered = {
        let mut bytes = cursor.clone().into_bytes();
        bytes[10] = if bytes[10] == b'A' { b'B' } else { b'A' };
        String::from_utf8(bytes).unwrap()
    };
    let refused = [
        (
            &bert,
            format!("/api/v1/shipments?ordering=id&cursor={cursor}"),
        ),
        (
            &anna,
            format!("/api/v1/shipments?ordering=id&cursor={tampered}"),
        ),
        (
            &anna,
            format!("/api/v1/shipments?ordering=-id&cursor={cursor}"),
        ),
        (
            &anna,
            format!("/api/v1/shipments?ordering=id&fulfilment_method=FBB&cursor={cursor}"),
        ),
        (
            &anna,
            format!("/api/v1/shops/{shop}/shipments?ordering=id&cursor={cursor}"),
        ),
        (&anna, format!("/api/v1/shops?ordering=id&cursor={cursor}")),
        (
            &anna,
            format!("/api/v1/shops/{shop}/sync-runs?ordering=id&cursor={cursor}"),
        ),
        (
            &anna,
            "/api/v1/shipments?cursor=bm90IGEgY3Vyc29y".to_owned(),
        ),
        (&anna, "/api/v1/shipments?cursor=%FF%00".to_owned()),
        (
            &anna,
            format!("/api/v1/shipments?ordering=id&cursor={}", "A".repeat(4000)),
        ),
        (&anna, "/api/v1/shipments?cursor=&page=2".to_owned()),
        (&anna, "/api/v1/shops?cursor=&page=1".to_owned()),
    ];
    for (seller, path) in refused {
        let problem = app.get(&path, Some(&seller.token)).await.problem(400);
        assert!(problem["errors"]["cursor"].is_array(), "{path}: {problem}");
    }
    app.get("/api/v1/shipments?cursor=&page_size=501", Some(&anna.token))
        .await
        .problem(400);
    app.get(
        &format!("/api/v1/shops/{berts_shop}/shipments?cursor="),
        Some(&anna.token),
    )
    .await
    .problem(404);
    app.get(
        &format!("/api/v1/shops/{berts_shop}/sync-runs?cursor="),
        Some(&anna.token),
    )
    .await
    .problem(404);
    app.get("/api/v1/shipments?cursor=", None)
        .await
        .problem(401);
    let bert_sees: Vec<i64> = walk_forward(&app, &bert, "/api/v1/shipments?cursor=")
        .await
        .0;
    let anna_sees = numbered(&app, &anna, "/api/v1/shipments").await;
    assert!(bert_sees.iter().all(|id| !anna_sees.contains(id)));
}

mod during_sync {
    //! A walk while a sync commits.

    use std::collections::HashSet;
    use std::time::Duration;

    use bol_sandbox::Limits;

    use super::*;
    use crate::helpers::Backend;
    use crate::helpers::sync_setup::{SyncSetup, SyncTest};

    crate::multi_thread_backend_tests!(
        a_walk_while_a_sync_commits_sees_every_row_of_its_start_exactly_once
    );

    /// What a run has committed so far: shipments stored and details stored.
    async fn committed(app: &TestApp, seller: &Seller, run: i64) -> i64 {
        let progress = &app.sync_run(seller, run).await["progress"];
        progress["shipments_stored"].as_i64().unwrap()
            + progress["details_fetched"].as_i64().unwrap()
    }

    async fn a_walk_while_a_sync_commits_sees_every_row_of_its_start_exactly_once(
        backend: Backend,
    ) {
        let setup = SyncSetup::new(backend)
            .accounts(&[(60, 30), (300, 150)])
            .shops(2)
            .time_scale(60.0)
            .limits(Limits {
                list: 25,
                detail: 10,
                token: 20,
            })
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
        let synced = app.sync_and_wait(&seller, shops[0], Some("full")).await;
        assert_eq!(synced["status"], "succeeded", "{synced}");
        let run = app.start_sync(&seller, shops[1], Some("full")).await;
        app.wait_for_progress(&seller, run, "shipments_stored", 20)
            .await;

        let mut overlapped = false;
        for ordering in ["-shipment_date", "id", "shipment_date"] {
            // Every row a walk by id sees before the walk under test starts existed at its
            // start.
            let (before, _) = walk_forward(
                &app,
                &seller,
                "/api/v1/shipments?ordering=id&cursor=&page_size=500",
            )
            .await;
            let committed_before = committed(&app, &seller, run).await;
            let start = format!("/api/v1/shipments?ordering={ordering}&cursor=&page_size=7");
            let mut seen: HashMap<i64, u32> = HashMap::new();
            let mut path = start.clone();
            loop {
                let page = cursor_page(&app, &seller, &path).await;
                for id in page.ids {
                    *seen.entry(id).or_default() += 1;
                }
                match page.next {
                    Some(next) => path = next,
                    None => break,
                }
                // A walk spans several of the sync's commits (one a second or so).
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
            assert!(
                twice.is_empty(),
                "{ordering}: seen more than once: {twice:?}"
            );
            let seen: HashSet<i64> = seen.into_keys().collect();
            let missed: Vec<_> = before.iter().filter(|id| !seen.contains(id)).collect();
            assert!(missed.is_empty(), "{ordering}: missed {missed:?}");
            overlapped |= committed(&app, &seller, run).await > committed_before;
        }
        assert!(overlapped, "the sync committed nothing during the walks");
        let done = app.wait_for_run(&seller, run).await;
        assert_eq!(done["status"], "succeeded", "{done}");
    }
}
