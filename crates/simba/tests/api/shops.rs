//! `/shops`.

use serde_json::json;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(
    a_shop_is_created_with_defaults_and_without_its_secret,
    shop_fields_are_validated_by_name,
    the_same_credentials_twice_are_a_conflict,
    shops_are_listed_in_pages,
    put_replaces_and_patch_updates_and_the_secret_stays_unless_given,
    the_secret_is_encrypted_at_rest,
    deleting_a_shop_deletes_its_runs_and_shipments,
    shops_are_deleted_while_another_connection_keeps_committing,
    a_missing_shop_is_404,
);

async fn a_shop_is_created_with_defaults_and_without_its_secret(app: TestApp) {
    let seller = app.register("anna").await;
    let response = app
        .post(
            "/api/v1/shops",
            Some(&seller.token),
            json!({"name": "Bakkerij Ünal", "client_id": "sandbox-1", "client_secret": "secret-1"}),
        )
        .await;
    assert_eq!(response.status, 201, "{}", response.text);
    let shop = response.json();
    assert_eq!(shop["name"], "Bakkerij Ünal");
    assert_eq!(shop["marketplace"], "bol");
    assert_eq!(shop["auto_sync"], true);
    assert_eq!(shop["sync_interval_minutes"], 15);
    assert_eq!(shop["shipment_count"], 0);
    assert!(shop["last_synced_at"].is_null() && shop["active_run_id"].is_null());
    assert!(shop.get("client_secret").is_none());
    assert!(!response.text.contains("secret-1"));
    let keys: Vec<_> = shop.as_object().unwrap().keys().cloned().collect();
    for key in [
        "id",
        "name",
        "marketplace",
        "client_id",
        "auto_sync",
        "sync_interval_minutes",
        "last_synced_at",
        "active_run_id",
        "shipment_count",
        "created_at",
        "updated_at",
    ] {
        assert!(keys.contains(&key.to_owned()), "{key} missing");
    }
    let fetched = app
        .get(
            &format!("/api/v1/shops/{}", shop["id"]),
            Some(&seller.token),
        )
        .await;
    assert_eq!(fetched.json(), shop);
}

async fn shop_fields_are_validated_by_name(app: TestApp) {
    let seller = app.register("anna").await;
    let cases = [
        (json!({"client_id": "c", "client_secret": "s"}), "name"),
        (json!({"name": "a", "client_secret": "s"}), "client_id"),
        (json!({"name": "a", "client_id": "c"}), "client_secret"),
        (
            json!({"name": "a", "client_id": "c", "client_secret": ""}),
            "client_secret",
        ),
        (
            json!({"name": "  ", "client_id": "c", "client_secret": "s"}),
            "name",
        ),
        (
            json!({"name": "a", "client_id": "c d", "client_secret": "s"}),
            "client_id",
        ),
        (
            json!({"name": "a", "client_id": "c", "client_secret": "s", "marketplace": "amazon"}),
            "marketplace",
        ),
        (
            json!({"name": "a", "client_id": "c", "client_secret": "s", "sync_interval_minutes": 0}),
            "sync_interval_minutes",
        ),
        (
            json!({"name": "a", "client_id": "c", "client_secret": "s", "sync_interval_minutes": "x"}),
            "sync_interval_minutes",
        ),
        (
            json!({"name": "a", "client_id": "c", "client_secret": "s", "auto_sync": "yes"}),
            "auto_sync",
        ),
        (
            json!({"name": "a", "client_id": "c", "client_secret": "s", "colour": "red"}),
            "colour",
        ),
    ];
    for (body, field) in cases {
        let problem = app
            .post("/api/v1/shops", Some(&seller.token), body.clone())
            .await
            .problem(422);
        assert!(problem["errors"][field].is_array(), "{body} → {problem}");
    }
    let none = app.get("/api/v1/shops", Some(&seller.token)).await.json();
    assert_eq!(none["count"], 0, "a rejected write stored something");
}

async fn the_same_credentials_twice_are_a_conflict(app: TestApp) {
    let seller = app.register("anna").await;
    app.create_shop(&seller, "main").await;
    app.post(
        "/api/v1/shops",
        Some(&seller.token),
        json!({"name": "again", "client_id": "client-main", "client_secret": "x"}),
    )
    .await
    .problem(409);
    let other = app.register("bert").await;
    app.create_shop(&other, "main").await;
}

async fn shops_are_listed_in_pages(app: TestApp) {
    let seller = app.register("anna").await;
    for i in 0..3 {
        app.create_shop(&seller, &format!("shop{i}")).await;
    }
    let page = app
        .get("/api/v1/shops?page_size=2", Some(&seller.token))
        .await
        .json();
    assert_eq!(page["count"], 3);
    assert_eq!(page["results"].as_array().unwrap().len(), 2);
    assert!(page["previous"].is_null());
    let next = page["next"].as_str().unwrap();
    assert!(
        next.starts_with("http://127.0.0.1:") && next.ends_with("/api/v1/shops?page_size=2&page=2"),
        "{next}"
    );
    let second = app
        .send(
            app.client
                .get(next)
                .header("Authorization", format!("Token {}", seller.token)),
        )
        .await
        .json();
    assert_eq!(second["results"][0]["name"], "shop2");
    assert!(second["next"].is_null());
    app.get("/api/v1/shops?page=3&page_size=2", Some(&seller.token))
        .await
        .problem(404);
    let bad = app
        .get("/api/v1/shops?page=zero", Some(&seller.token))
        .await
        .problem(400);
    assert!(bad["errors"]["page"].is_array());
}

async fn put_replaces_and_patch_updates_and_the_secret_stays_unless_given(app: TestApp) {
    let seller = app.register("anna").await;
    let id = app.create_shop(&seller, "main").await;
    let path = format!("/api/v1/shops/{id}");
    let secret_before = stored_secret(&app, id).await;
    let patched = app
        .patch(
            &path,
            Some(&seller.token),
            json!({"auto_sync": false, "sync_interval_minutes": 60}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json()["auto_sync"], false);
    assert_eq!(patched.json()["name"], "main");
    assert_eq!(stored_secret(&app, id).await, secret_before);
    app.put(&path, Some(&seller.token), json!({"name": "renamed"}))
        .await
        .problem(422);
    let put = app
        .put(
            &path,
            Some(&seller.token),
            json!({"name": "renamed", "client_id": "new-client", "client_secret": "new-secret"}),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.json()["client_id"], "new-client");
    assert_ne!(stored_secret(&app, id).await, secret_before);
    let fetched = app.get(&path, Some(&seller.token)).await.json();
    assert_eq!(fetched["name"], "renamed");
    assert_eq!(fetched["auto_sync"], false);
    app.patch(&path, Some(&seller.token), json!({"client_secret": " "}))
        .await
        .problem(422);
}

async fn stored_secret(app: &TestApp, shop_id: i64) -> String {
    let db = &app.state.db;
    let row = db
        .query("SELECT client_secret_enc FROM shops WHERE id = ?")
        .bind(shop_id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    sqlx::Row::get(&row, 0)
}

async fn the_secret_is_encrypted_at_rest(app: TestApp) {
    let seller = app.register("anna").await;
    let response = app
        .post(
            "/api/v1/shops",
            Some(&seller.token),
            json!({"name": "main", "client_id": "c1", "client_secret": "plain-text-secret-42"}),
        )
        .await;
    let id = response.json()["id"].as_i64().unwrap();
    let stored = stored_secret(&app, id).await;
    assert!(!stored.contains("plain-text-secret-42"));
    let decrypted = app
        .state
        .cipher
        .decrypt(simba::store::shops::SECRET_PURPOSE, &stored)
        .unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&decrypted),
        "plain-text-secret-42"
    );
}

async fn deleting_a_shop_deletes_its_runs_and_shipments(app: TestApp) {
    let seller = app.register("anna").await;
    let doomed = app.create_shop(&seller, "doomed").await;
    let kept = app.create_shop(&seller, "kept").await;
    app.store_shipments(&seller, doomed, 5).await;
    app.store_shipments(&seller, kept, 2).await;
    simba::store::sync_runs::create_queued(
        &app.state.db,
        doomed,
        simba::domain::Mode::Full,
        simba::domain::Trigger::Api,
    )
    .await
    .unwrap();
    assert_eq!(
        app.delete(&format!("/api/v1/shops/{doomed}"), Some(&seller.token))
            .await
            .status,
        204
    );
    app.get(&format!("/api/v1/shops/{doomed}"), Some(&seller.token))
        .await
        .problem(404);
    let all = app
        .get("/api/v1/shipments", Some(&seller.token))
        .await
        .json();
    assert_eq!(all["count"], 2);
    let db = &app.state.db;
    for (table, expected) in [("sync_runs", 0), ("shipments", 2), ("shipment_items", 2)] {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let count: i64 = sqlx::Row::get(&db.query(&sql).fetch_one(&db.pool).await.unwrap(), 0);
        assert_eq!(count, expected, "{table}");
    }
    app.delete(&format!("/api/v1/shops/{doomed}"), Some(&seller.token))
        .await
        .problem(404);
}

async fn a_missing_shop_is_404(app: TestApp) {
    let seller = app.register("anna").await;
    for path in [
        "/api/v1/shops/999999",
        "/api/v1/shops/abc",
        "/api/v1/shops/-1",
    ] {
        app.get(path, Some(&seller.token)).await.problem(404);
    }
    app.patch(
        "/api/v1/shops/999999",
        Some(&seller.token),
        json!({"name": "x"}),
    )
    .await
    .problem(404);
}

/// On SQLite a transaction that reads before it writes cannot become the writer once another
/// connection has committed since its read; a background loop commits that often.
async fn shops_are_deleted_while_another_connection_keeps_committing(app: TestApp) {
    let seller = app.register("anna").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let db = app.state.db.clone();
        let stop = stop.clone();
        let user_id = seller.id;
        tokio::spawn(async move {
            let mut n = 0i64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                db.query("UPDATE users SET last_name = ? WHERE id = ?")
                    .bind(format!("writer {n}"))
                    .bind(user_id)
                    .execute(&db.pool)
                    .await
                    .unwrap();
            }
            n
        })
    };
    for i in 0..20 {
        let shop = app.create_shop(&seller, &format!("shop-{i}")).await;
        let deleted = app
            .delete(&format!("/api/v1/shops/{shop}"), Some(&seller.token))
            .await;
        assert_eq!(deleted.status, 204, "{}", deleted.text);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(writer.await.unwrap() > 20, "the writer kept committing");
}
