//! Conditional requests: `ETag` on lists and details, 304 on a matching `If-None-Match`, a
//! new tag after a change, and never a 304 for a tag the seller was not given.

use crate::backend_tests;
use crate::helpers::{Response, Seller, TestApp};

backend_tests!(
    a_change_makes_a_new_tag_and_the_old_one_gets_the_new_answer,
    another_sellers_tag_or_a_wrong_one_never_gets_a_304,
);

/// Without workers, so that the test's queued run stays as it is between two reads.
mod lists_and_details_carry_an_etag_and_a_matching_if_none_match_is_a_304 {
    use crate::helpers::{Backend, run_with};

    async fn on(backend: Backend) {
        run_with(
            backend,
            |config| config.run_workers = false,
            super::lists_and_details_carry_an_etag_and_a_matching_if_none_match_is_a_304,
        )
        .await
    }

    #[tokio::test]
    async fn sqlite() {
        on(Backend::Sqlite).await
    }

    #[tokio::test]
    async fn postgres() {
        on(Backend::Postgres).await
    }

    #[tokio::test]
    async fn mysql() {
        on(Backend::Mysql).await
    }
}

async fn get_if_none_match(app: &TestApp, seller: &Seller, path: &str, tag: &str) -> Response {
    app.send(
        app.client
            .get(app.url(path))
            .header("Authorization", format!("Token {}", seller.token))
            .header("If-None-Match", tag),
    )
    .await
}

/// The tag of a 200 answer.
async fn etag(app: &TestApp, seller: &Seller, path: &str) -> String {
    let response = app.get(path, Some(&seller.token)).await;
    assert_eq!(response.status, 200, "{path}: {}", response.text);
    let tag = response
        .header("etag")
        .unwrap_or_else(|| panic!("{path} has no ETag"));
    assert!(tag.starts_with('"') && tag.ends_with('"'), "{tag}");
    tag.to_owned()
}

async fn lists_and_details_carry_an_etag_and_a_matching_if_none_match_is_a_304(app: TestApp) {
    let seller = app.register("anna").await;
    let shop = app.create_shop(&seller, "one").await;
    app.store_shipments(&seller, shop, 12).await;
    let shipment = app
        .get("/api/v1/shipments?ordering=id", Some(&seller.token))
        .await
        .json()["results"][0]["id"]
        .as_i64()
        .unwrap();
    let run = simba::store::sync_runs::create_queued(
        &app.state.db,
        shop,
        simba::domain::Mode::Full,
        simba::domain::Trigger::Api,
    )
    .await
    .unwrap();
    let paths = [
        "/api/v1/shipments".to_owned(),
        "/api/v1/shipments?page=2&page_size=5".to_owned(),
        "/api/v1/shipments?cursor=&page_size=5".to_owned(),
        format!("/api/v1/shops/{shop}/shipments?ordering=id"),
        format!("/api/v1/shipments/{shipment}"),
        "/api/v1/shops".to_owned(),
        "/api/v1/shops?cursor=".to_owned(),
        format!("/api/v1/shops/{shop}"),
        format!("/api/v1/shops/{shop}/sync-runs"),
        format!("/api/v1/sync-runs/{}", run.id),
        "/api/v1/auth/user".to_owned(),
    ];
    for path in &paths {
        let tag = etag(&app, &seller, path).await;
        assert_eq!(
            etag(&app, &seller, path).await,
            tag,
            "{path}: the tag is stable"
        );
        for asked in [
            tag.clone(),
            format!("W/{tag}"),
            format!("\"other\", {tag}"),
            "*".to_owned(),
        ] {
            let response = get_if_none_match(&app, &seller, path, &asked).await;
            assert_eq!(
                response.status, 304,
                "{path} with {asked}: {}",
                response.text
            );
            assert!(response.text.is_empty(), "{path}: a 304 has no body");
            assert_eq!(response.header("etag"), Some(tag.as_str()), "{path}");
        }
    }
}

async fn a_change_makes_a_new_tag_and_the_old_one_gets_the_new_answer(app: TestApp) {
    let seller = app.register("anna").await;
    let shop = app.create_shop(&seller, "one").await;
    app.store_shipments(&seller, shop, 3).await;
    let lists = [
        "/api/v1/shipments".to_owned(),
        format!("/api/v1/shops/{shop}/shipments"),
    ];
    let mut tags = Vec::new();
    for path in &lists {
        tags.push(etag(&app, &seller, path).await);
    }
    let other = app.create_shop(&seller, "two").await;
    app.store_shipments(&seller, other, 2).await;
    for (path, old) in lists.iter().zip(&tags) {
        let response = get_if_none_match(&app, &seller, path, old).await;
        assert_eq!(response.status, 200, "{path}: {}", response.text);
        let new = response.header("etag").unwrap();
        assert_ne!(new, old, "{path}");
    }
    let shop_path = format!("/api/v1/shops/{shop}");
    let old = etag(&app, &seller, &shop_path).await;
    let renamed = app
        .patch(
            &shop_path,
            Some(&seller.token),
            serde_json::json!({"name": "renamed"}),
        )
        .await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let response = get_if_none_match(&app, &seller, &shop_path, &old).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.json()["name"], "renamed");
    assert_ne!(response.header("etag"), Some(old.as_str()));
}

async fn another_sellers_tag_or_a_wrong_one_never_gets_a_304(app: TestApp) {
    let anna = app.register("anna").await;
    let bert = app.register("bert").await;
    // Both lists are empty, byte for byte the same: the shipment lists' tags still differ.
    let annas = etag(&app, &anna, "/api/v1/shipments").await;
    let berts = etag(&app, &bert, "/api/v1/shipments").await;
    assert_ne!(annas, berts);
    let response = get_if_none_match(&app, &bert, "/api/v1/shipments", &annas).await;
    assert_eq!(response.status, 200, "{}", response.text);

    let shop = app.create_shop(&anna, "one").await;
    let shop_tag = etag(&app, &anna, &format!("/api/v1/shops/{shop}")).await;
    // Another seller's resource stays a 404, whatever tag comes with it.
    for path in [
        format!("/api/v1/shops/{shop}"),
        format!("/api/v1/shops/{shop}/shipments"),
    ] {
        get_if_none_match(&app, &bert, &path, "*")
            .await
            .problem(404);
        get_if_none_match(&app, &bert, &path, &shop_tag)
            .await
            .problem(404);
    }
    for wrong in [
        "\"nope\"",
        "W/\"nope\"",
        annas.trim_matches('"'),
        "",
        &format!("{annas}x"),
    ] {
        let response = get_if_none_match(&app, &anna, "/api/v1/shipments", wrong).await;
        assert_eq!(response.status, 200, "{wrong}: {}", response.text);
    }
    // A write is never answered 304.
    let response = app
        .send(
            app.client
                .post(app.url("/api/v1/shops"))
                .header("Authorization", format!("Token {}", anna.token))
                .header("If-None-Match", "*")
                .json(
                    &serde_json::json!({"name": "two", "client_id": "c2", "client_secret": "s2"}),
                ),
        )
        .await;
    assert_eq!(response.status, 201, "{}", response.text);
}
