//! Buyer data protection: erasure on request, subject access, the retention setting and its
//! job, the access log, and that an erased shipment stays erased through a full re-sync.

use std::time::Duration;

use serde_json::{Value, json};
use simba::domain::Timestamp;
use simba::services::data_protection::retention_pass;

use crate::backend_tests;
use crate::helpers::{Backend, Seller, TestApp, run_with, shipment};

backend_tests!(
    erasure_blanks_personal_data_and_keeps_the_bookkeeping,
    another_sellers_shipments_are_never_erased_read_or_logged,
    bad_erasure_requests_are_a_422_naming_the_field,
    the_retention_setting_is_validated_and_shown,
    the_retention_job_erases_only_what_is_older_than_the_setting,
    reads_of_personal_data_are_in_the_access_log,
    a_detail_stored_after_the_erasure_does_not_bring_the_data_back,
    the_retention_job_prunes_the_access_log_after_its_own_retention,
    concurrent_reads_are_each_logged_once_for_their_own_seller,
);

/// Stores `count` shipments whose buyer is `email`, with bol's address blocks in `raw`;
/// returns their row ids.
pub(crate) async fn store_bought_by(
    app: &TestApp,
    seller: &Seller,
    shop_id: i64,
    first: usize,
    count: usize,
    email: &str,
    shipped_at: Timestamp,
) -> Vec<i64> {
    let shipments: Vec<_> = (first..first + count)
        .map(|i| {
            let mut s = shipment(shop_id, i);
            s.shipment_date = shipped_at;
            let details = json!({"firstName": "Sanne", "surname": "Verbeek", "streetName": "Oudegracht",
                "houseNumber": "112", "zipCode": "3511AW", "city": "Utrecht", "email": email,
                "deliveryPhoneNumber": "0612345678"});
            s.customer = Some(
                json!({"billing_details": details, "shipment_details": details}).to_string(),
            );
            s.raw = Some(
                json!({"shipmentId": s.shipment_id, "shipmentDetails": details,
                    "billingDetails": details, "transport": {"trackAndTrace": s.track_and_trace}})
                .to_string(),
            );
            s
        })
        .collect();
    simba::store::shipments::insert_new(&app.state.db, seller.id, shop_id, &shipments)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for s in &shipments {
        let page = app
            .get(
                &format!("/api/v1/shipments?q={}", s.shipment_id),
                Some(&seller.token),
            )
            .await
            .json();
        ids.push(page["results"][0]["id"].as_i64().unwrap());
    }
    ids
}

pub(crate) fn days_ago(days: i64) -> Timestamp {
    Timestamp::from_unix_seconds(Timestamp::now().unix_seconds() - days * 86_400)
}

async fn detail(app: &TestApp, seller: &Seller, id: i64) -> Value {
    let response = app
        .get(&format!("/api/v1/shipments/{id}"), Some(&seller.token))
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
    response.json()
}

async fn erase(app: &TestApp, seller: &Seller, body: Value) -> Value {
    let response = app
        .post("/api/v1/erasures", Some(&seller.token), body)
        .await;
    assert_eq!(response.status, 200, "{}", response.text);
    response.json()
}

async fn erasure_blanks_personal_data_and_keeps_the_bookkeeping(app: TestApp) {
    // A page read before the erasure would still be served long after it, were it served
    // for as long as a run's steps may be.
    let app = app
        .another_process(|config| config.page_cache_stale = Duration::from_secs(600))
        .await;
    let seller = app.register("anna").await;
    let shop = app.create_shop(&seller, "main").await;
    let ann = store_bought_by(&app, &seller, shop, 0, 3, "ann@example.nl", days_ago(1)).await;
    let bob = store_bought_by(&app, &seller, shop, 3, 2, "bob@example.nl", days_ago(1)).await;
    let before = detail(&app, &seller, ann[0]).await;
    assert!(before["personal_data_erased_at"].is_null());
    assert_eq!(
        before["customer"]["billing_details"]["email"],
        "ann@example.nl"
    );
    let feed = app
        .get("/api/v1/shipments/changes", Some(&seller.token))
        .await
        .json();
    let last_seq = feed["last_seq"].as_i64().unwrap();
    let listed = app
        .get("/api/v1/shipments?ordering=id", Some(&seller.token))
        .await
        .json();
    assert!(listed["results"][0]["personal_data_erased_at"].is_null());

    let erased = erase(&app, &seller, json!({"email": "ANN@example.nl"})).await;
    assert_eq!(erased["erased"], 3);
    assert_eq!(erased["shipment_ids"], json!(ann));

    let after = detail(&app, &seller, ann[0]).await;
    assert!(after["personal_data_erased_at"].is_string(), "{after}");
    assert!(after["customer"].is_null());
    let text = after.to_string();
    for personal in [
        "ann@example.nl",
        "Verbeek",
        "Oudegracht",
        "0612345678",
        "3511AW",
    ] {
        assert!(!text.contains(personal), "{personal} is still in {text}");
    }
    assert!(after["raw"]["shipmentDetails"].is_null() && after["raw"]["billingDetails"].is_null());
    for kept in [
        "id",
        "shipment_id",
        "shipment_date",
        "order_id",
        "items",
        "transport",
        "order_placed_at",
    ] {
        assert_eq!(after[kept], before[kept], "{kept} changed");
    }
    assert_eq!(after["raw"]["transport"], before["raw"]["transport"]);
    assert!(after["change_seq"].as_i64() > before["change_seq"].as_i64());
    // The change feed serves the erased shipments as changed.
    let changed = app
        .get(
            &format!("/api/v1/shipments/changes?after={last_seq}"),
            Some(&seller.token),
        )
        .await
        .json();
    let changed: Vec<i64> = changed["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(changed, ann);
    // The list (its cached pages included) shows the erasure too.
    let listed = app
        .get("/api/v1/shipments?ordering=id", Some(&seller.token))
        .await
        .json();
    assert!(listed["results"][0]["personal_data_erased_at"].is_string());
    assert!(listed["results"][3]["personal_data_erased_at"].is_null());

    // Bob's shipments are untouched; erasing again erases nothing new.
    assert!(detail(&app, &seller, bob[0]).await["customer"].is_object());
    let again = erase(&app, &seller, json!({"email": "ann@example.nl"})).await;
    assert_eq!(again, json!({"erased": 0, "shipment_ids": []}));

    // By order id and by shipment ids.
    let order_id = detail(&app, &seller, bob[0]).await["order_id"].clone();
    let by_order = erase(&app, &seller, json!({"order_id": order_id})).await;
    assert_eq!(by_order["shipment_ids"][0], bob[0]);
    let by_ids = erase(
        &app,
        &seller,
        json!({"shipment_ids": [bob[1], bob[1], ann[0]]}),
    )
    .await;
    assert_eq!(by_ids, json!({"erased": 1, "shipment_ids": [bob[1]]}));
    let subject = app
        .get(
            "/api/v1/data-subjects?email=bob@example.nl",
            Some(&seller.token),
        )
        .await;
    assert_eq!(subject.status, 200, "{}", subject.text);
    assert_eq!(subject.json()["shipments"], json!([]));
}

async fn another_sellers_shipments_are_never_erased_read_or_logged(app: TestApp) {
    let anna = app.register("anna").await;
    let mallory = app.register("mallory").await;
    let shop = app.create_shop(&anna, "main").await;
    let ids = store_bought_by(&app, &anna, shop, 0, 2, "ann@example.nl", days_ago(1)).await;
    detail(&app, &anna, ids[0]).await;

    for body in [
        json!({"shipment_ids": ids}),
        json!({"email": "ann@example.nl"}),
        json!({"order_id": detail(&app, &anna, ids[0]).await["order_id"]}),
    ] {
        let erased = erase(&app, &mallory, body).await;
        assert_eq!(erased, json!({"erased": 0, "shipment_ids": []}));
    }
    assert!(detail(&app, &anna, ids[0]).await["customer"].is_object());
    assert!(detail(&app, &anna, ids[1]).await["customer"].is_object());

    let subject = app
        .get(
            "/api/v1/data-subjects?email=ann@example.nl",
            Some(&mallory.token),
        )
        .await;
    assert_eq!(subject.status, 200);
    assert_eq!(subject.json()["shipments"], json!([]));
    let theirs = app
        .get(
            &format!("/api/v1/shipments/{}", ids[0]),
            Some(&mallory.token),
        )
        .await;
    theirs.problem(404);
    let log = app
        .get("/api/v1/access-log", Some(&mallory.token))
        .await
        .json();
    // Mallory's own (empty) subject access is all her log holds: never anna's reads.
    assert_eq!(log["count"], 1, "{log}");
    assert_eq!(log["results"][0]["shipment_ids"], json!([]));
    assert!(
        app.get("/api/v1/access-log", None).await.status == 401,
        "the log needs a token"
    );
}

async fn bad_erasure_requests_are_a_422_naming_the_field(app: TestApp) {
    let seller = app.register("anna").await;
    let many: Vec<i64> = (1..=10_000).collect();
    let cases = [
        (json!({}), "shipment_ids"),
        (json!({"email": "a@b.nl", "order_id": "1"}), "order_id"),
        (json!({"shipment_ids": []}), "shipment_ids"),
        (json!({"shipment_ids": many}), "shipment_ids"),
        (json!({"shipment_ids": ["x"]}), "shipment_ids"),
        (json!({"shipment_ids": [1.5]}), "shipment_ids"),
        (json!({"shipment_ids": [-1]}), "shipment_ids"),
        (json!({"shipment_ids": "1"}), "shipment_ids"),
        (json!({"email": "not an address"}), "email"),
        (json!({"email": 7}), "email"),
        (json!({"order_id": ""}), "order_id"),
        (json!({"order_id": ["1"]}), "order_id"),
        (json!({"name": "x"}), "name"),
    ];
    for (body, field) in cases {
        let response = app
            .post("/api/v1/erasures", Some(&seller.token), body.clone())
            .await;
        let problem = response.problem(422);
        assert!(
            problem["errors"][field].is_array(),
            "{body} does not name {field}: {problem}"
        );
    }
    let response = app.get("/api/v1/data-subjects", Some(&seller.token)).await;
    assert!(response.problem(400)["errors"]["email"].is_array());
    let response = app
        .get("/api/v1/data-subjects?email=nope", Some(&seller.token))
        .await;
    assert!(response.problem(400)["errors"]["email"].is_array());
    assert_eq!(
        app.post("/api/v1/erasures", None, json!({"email": "a@b.nl"}))
            .await
            .status,
        401
    );
}

async fn the_retention_setting_is_validated_and_shown(app: TestApp) {
    let seller = app.register("anna").await;
    let user = app.get("/api/v1/auth/user", Some(&seller.token)).await;
    assert_eq!(
        user.json()["retention_days"],
        Value::Null,
        "keep is the default"
    );
    for bad in [
        json!(29),
        json!(3651),
        json!("90"),
        json!(90.5),
        json!(true),
    ] {
        let response = app
            .patch(
                "/api/v1/auth/user",
                Some(&seller.token),
                json!({"retention_days": bad}),
            )
            .await;
        let problem = response.problem(422);
        assert!(problem["errors"]["retention_days"].is_array(), "{problem}");
    }
    let set = app
        .patch(
            "/api/v1/auth/user",
            Some(&seller.token),
            json!({"retention_days": 90}),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(set.json()["retention_days"], 90);
    let kept = app
        .patch(
            "/api/v1/auth/user",
            Some(&seller.token),
            json!({"first_name": "Anna"}),
        )
        .await;
    assert_eq!(kept.json()["retention_days"], 90, "left out, it stays");
    let user = app.get("/api/v1/auth/user", Some(&seller.token)).await;
    assert_eq!(user.json()["retention_days"], 90);
    let unset = app
        .patch(
            "/api/v1/auth/user",
            Some(&seller.token),
            json!({"retention_days": null}),
        )
        .await;
    assert_eq!(unset.json()["retention_days"], Value::Null);
}

async fn the_retention_job_erases_only_what_is_older_than_the_setting(app: TestApp) {
    let anna = app.register("anna").await;
    let bert = app.register("bert").await;
    let shop = app.create_shop(&anna, "main").await;
    let other = app.create_shop(&bert, "main").await;
    let old = store_bought_by(&app, &anna, shop, 0, 3, "old@example.nl", days_ago(40)).await;
    let new = store_bought_by(&app, &anna, shop, 3, 2, "new@example.nl", days_ago(20)).await;
    let berts = store_bought_by(&app, &bert, other, 0, 2, "old@example.nl", days_ago(400)).await;
    let db = &app.state.db;

    assert_eq!(
        retention_pass(db, Timestamp::now()).await.unwrap(),
        0,
        "no setting, no erasure"
    );
    app.patch(
        "/api/v1/auth/user",
        Some(&anna.token),
        json!({"retention_days": 30}),
    )
    .await;
    assert_eq!(retention_pass(db, Timestamp::now()).await.unwrap(), 3);
    for id in &old {
        assert!(detail(&app, &anna, *id).await["personal_data_erased_at"].is_string());
    }
    for id in &new {
        assert!(detail(&app, &anna, *id).await["customer"].is_object());
    }
    for id in &berts {
        assert!(detail(&app, &bert, *id).await["customer"].is_object());
    }
    // Idempotent: the next pass finds nothing due, and nothing left to erase when it is.
    assert_eq!(retention_pass(db, Timestamp::now()).await.unwrap(), 0);
    let an_hour_on = Timestamp::from_unix_seconds(Timestamp::now().unix_seconds() + 3_700);
    assert_eq!(retention_pass(db, an_hour_on).await.unwrap(), 0);
    // Setting it again is a change: the next pass runs for the seller, due or not.
    app.patch(
        "/api/v1/auth/user",
        Some(&anna.token),
        json!({"retention_days": 30}),
    )
    .await;
    let later = Timestamp::from_unix_seconds(Timestamp::now().unix_seconds() + 11 * 86_400);
    assert_eq!(retention_pass(db, later).await.unwrap(), 2);
}

/// A sync step that fetched a detail before the erasure and stores it after: the stored
/// shipment keeps its personal data erased, and takes the detail's other fields.
async fn a_detail_stored_after_the_erasure_does_not_bring_the_data_back(app: TestApp) {
    let seller = app.register("anna").await;
    let shop = app.create_shop(&seller, "main").await;
    let ids = store_bought_by(&app, &seller, shop, 0, 1, "ann@example.nl", days_ago(1)).await;
    erase(&app, &seller, json!({"shipment_ids": ids})).await;

    let mut late = shipment(shop, 0);
    late.customer = Some(json!({"billing_details": {"email": "ann@example.nl"}}).to_string());
    late.raw = Some(json!({"billingDetails": {"email": "ann@example.nl"}}).to_string());
    late.transporter_code = Some("DHL".into());
    simba::store::shipments::store_details(&app.state.db, seller.id, shop, &[late])
        .await
        .unwrap();
    let stored = detail(&app, &seller, ids[0]).await;
    assert_eq!(stored["transport"]["transporter_code"], "DHL");
    assert!(stored["customer"].is_null(), "{stored}");
    assert!(!stored.to_string().contains("ann@example.nl"), "{stored}");
    assert!(stored["personal_data_erased_at"].is_string());
}

async fn the_retention_job_prunes_the_access_log_after_its_own_retention(app: TestApp) {
    let seller = app.register("anna").await;
    let shop = app.create_shop(&seller, "main").await;
    let ids = store_bought_by(&app, &seller, shop, 0, 1, "ann@example.nl", days_ago(1)).await;
    detail(&app, &seller, ids[0]).await;
    detail(&app, &seller, ids[0]).await;
    let db = &app.state.db;
    let old = days_ago(366).unix_seconds();
    db.query("UPDATE access_log SET at = ? WHERE id = (SELECT MIN(id) FROM access_log)")
        .bind(old)
        .execute(&db.pool)
        .await
        .unwrap();
    retention_pass(db, Timestamp::now()).await.unwrap();
    let log = app
        .get("/api/v1/access-log", Some(&seller.token))
        .await
        .json();
    assert_eq!(log["count"], 1, "{log}");
}

/// The job itself, as the process that runs the scheduler runs it: a changed setting takes
/// effect within a minute, with no pass called by the test.
#[tokio::test]
async fn the_retention_job_runs_within_a_minute_of_a_setting_change() {
    run_with(
        Backend::Sqlite,
        |config| config.run_workers = true,
        |app| async move {
            let seller = app.register("anna").await;
            let shop = app.create_shop(&seller, "main").await;
            let ids =
                store_bought_by(&app, &seller, shop, 0, 2, "ann@example.nl", days_ago(45)).await;
            let set = app
                .patch(
                    "/api/v1/auth/user",
                    Some(&seller.token),
                    json!({"retention_days": 30}),
                )
                .await;
            assert_eq!(set.status, 200);
            let changed = std::time::Instant::now();
            loop {
                let erased =
                    detail(&app, &seller, ids[1]).await["personal_data_erased_at"].is_string();
                if erased {
                    break;
                }
                assert!(
                    changed.elapsed() < std::time::Duration::from_secs(60),
                    "not erased within a minute of the change"
                );
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            assert!(detail(&app, &seller, ids[0]).await["customer"].is_null());
        },
    )
    .await;
}

async fn reads_of_personal_data_are_in_the_access_log(app: TestApp) {
    let seller = app.register("anna").await;
    let shop = app.create_shop(&seller, "main").await;
    let ids = store_bought_by(&app, &seller, shop, 0, 2, "ann@example.nl", days_ago(1)).await;
    detail(&app, &seller, ids[1]).await;
    let subject = app
        .get(
            "/api/v1/data-subjects?email=Ann@Example.nl",
            Some(&seller.token),
        )
        .await;
    assert_eq!(subject.status, 200, "{}", subject.text);
    let subject = subject.json();
    assert_eq!(subject["shipments"].as_array().unwrap().len(), 2);
    assert_eq!(
        subject["shipments"][0]["customer"]["shipment_details"]["email"],
        "ann@example.nl"
    );

    let log = app
        .get("/api/v1/access-log", Some(&seller.token))
        .await
        .json();
    assert_eq!(log["count"], 2, "{log}");
    let newest = &log["results"][0];
    assert_eq!(newest["action"], "data_subject.access");
    assert_eq!(newest["actor"], "api:anna");
    assert_eq!(newest["shipment_ids"], json!(ids));
    // The filter names the address by its hash: the log outlives erasure.
    let filter = newest["filter"].as_str().unwrap();
    assert!(filter.starts_with("email_sha256=") && !filter.contains("ann@"));
    assert_eq!(log["results"][1]["action"], "shipment.detail");
    assert_eq!(log["results"][1]["shipment_ids"], json!([ids[1]]));
    let page = app
        .get("/api/v1/access-log?page_size=1&page=2", Some(&seller.token))
        .await
        .json();
    assert_eq!(page["results"][0]["action"], "shipment.detail");
}

/// Reads at once, of two sellers, share the log's commits on a SQLite file: each is logged once,
/// for its own seller, before its answer.
async fn concurrent_reads_are_each_logged_once_for_their_own_seller(app: TestApp) {
    let anna = app.register("anna").await;
    let mallory = app.register("mallory").await;
    let anna_shop = app.create_shop(&anna, "main").await;
    let mallory_shop = app.create_shop(&mallory, "main").await;
    let anna_ids =
        store_bought_by(&app, &anna, anna_shop, 0, 12, "ann@example.nl", days_ago(1)).await;
    let mallory_ids = store_bought_by(
        &app,
        &mallory,
        mallory_shop,
        12,
        4,
        "mal@example.nl",
        days_ago(1),
    )
    .await;

    let reads = anna_ids
        .iter()
        .map(|id| (&anna, *id))
        .chain(mallory_ids.iter().map(|id| (&mallory, *id)))
        .map(|(seller, id)| detail(&app, seller, id));
    futures_util::future::join_all(reads).await;

    for (seller, ids) in [(&anna, &anna_ids), (&mallory, &mallory_ids)] {
        let log = app
            .get("/api/v1/access-log?page_size=100", Some(&seller.token))
            .await
            .json();
        assert_eq!(log["count"], ids.len(), "{log}");
        let mut logged: Vec<i64> = log["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["shipment_ids"][0].as_i64().unwrap())
            .collect();
        logged.sort_unstable();
        assert_eq!(&logged, ids, "each read once, and only the seller's own");
    }
}

/// The tests that sync from the sandbox, on a runtime of two threads.
mod with_sync {
    use serde_json::{Value, json};

    use crate::helpers::sync_setup::{SyncSetup, SyncTest};
    use crate::helpers::{Backend, Seller, TestApp, captured_logs};
    use crate::multi_thread_backend_tests;

    multi_thread_backend_tests!(a_full_resync_does_not_bring_erased_data_back);

    /// Every shipment's detail, through the API.
    async fn details(app: &TestApp, seller: &Seller) -> Vec<Value> {
        let page = app
            .get("/api/v1/shipments?page_size=500", Some(&seller.token))
            .await
            .json();
        let mut details = Vec::new();
        for shipment in page["results"].as_array().unwrap() {
            let id = shipment["id"].as_i64().unwrap();
            details.push(
                app.get(&format!("/api/v1/shipments/{id}"), Some(&seller.token))
                    .await
                    .json(),
            );
        }
        details
    }

    fn buyer_email(detail: &Value) -> Option<String> {
        let customer = &detail["customer"];
        customer["billing_details"]["email"]
            .as_str()
            .or(customer["shipment_details"]["email"].as_str())
            .map(str::to_owned)
    }

    async fn a_full_resync_does_not_bring_erased_data_back(backend: Backend) {
        let Some(SyncTest {
            app,
            sandbox: _sandbox,
            seller,
            shops,
        }) = SyncSetup::new(backend).shipments(30, 10).spawn().await
        else {
            return;
        };
        app.sync(&seller, shops[0], Some("full")).await;
        let before = details(&app, &seller).await;
        let email = before
            .iter()
            .find_map(buyer_email)
            .expect("a buyer's e-mail");
        let erased = app
            .post(
                "/api/v1/erasures",
                Some(&seller.token),
                json!({"email": email}),
            )
            .await;
        assert_eq!(erased.status, 200, "{}", erased.text);
        let erased: Vec<i64> = erased.json()["shipment_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| id.as_i64().unwrap())
            .collect();
        assert!(!erased.is_empty());

        let run = app.sync(&seller, shops[0], Some("full")).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        let after = details(&app, &seller).await;
        assert_eq!(after.len(), before.len());
        for detail in &after {
            let id = detail["id"].as_i64().unwrap();
            if erased.contains(&id) {
                assert!(detail["customer"].is_null(), "{detail}");
                assert!(detail["personal_data_erased_at"].is_string());
                assert!(!detail.to_string().contains(&email), "{detail}");
            }
        }
        let subject = app
            .get(
                &format!("/api/v1/data-subjects?email={email}"),
                Some(&seller.token),
            )
            .await
            .json();
        assert_eq!(subject["shipments"], json!([]));
    }

    /// A full sync and the API's reads, logged at every level the tests capture (trace), and
    /// not one buyer's name, e-mail or street in the output.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_buyer_data_reaches_the_logs() {
        let Some(SyncTest {
            app,
            sandbox: _sandbox,
            seller,
            shops,
        }) = SyncSetup::new(Backend::Sqlite)
            .shipments(40, 10)
            .spawn()
            .await
        else {
            return;
        };
        app.sync(&seller, shops[0], Some("full")).await;
        let details = details(&app, &seller).await;
        let email = details.iter().find_map(buyer_email).unwrap();
        app.get(
            &format!("/api/v1/data-subjects?email={email}"),
            Some(&seller.token),
        )
        .await;
        app.post(
            "/api/v1/erasures",
            Some(&seller.token),
            json!({"email": email}),
        )
        .await;

        let mut personal = std::collections::BTreeSet::new();
        for detail in &details {
            for block in ["billing_details", "shipment_details"] {
                let address = &detail["customer"][block];
                for key in ["firstName", "surname", "streetName", "email"] {
                    if let Some(value) = address[key].as_str() {
                        personal.insert(value.to_owned());
                    }
                }
            }
        }
        assert!(
            personal.len() > 10,
            "too few buyers to search for: {personal:?}"
        );
        let logs = captured_logs();
        assert!(!logs.is_empty());
        for value in &personal {
            assert!(!logs.contains(value.as_str()), "{value} is in the logs");
        }
    }

    /// After an erasure and a clean stop, the buyer's address is in none of SQLite's files:
    /// `secure_delete` overwrote it and the checkpoint emptied the WAL.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_erased_email_is_in_no_sqlite_file_after_a_clean_stop() {
        let Some(SyncTest {
            app,
            sandbox: _sandbox,
            seller,
            shops,
        }) = SyncSetup::new(Backend::Sqlite)
            .shipments(30, 0)
            .spawn()
            .await
        else {
            return;
        };
        app.sync(&seller, shops[0], Some("full")).await;
        let details = details(&app, &seller).await;
        let email = details.iter().find_map(buyer_email).unwrap();
        let path = app
            .database_url
            .trim_start_matches("sqlite://")
            .split('?')
            .next()
            .unwrap()
            .to_owned();
        let files = |path: &str| -> Vec<(String, Vec<u8>)> {
            ["", "-wal", "-shm"]
                .iter()
                .map(|suffix| format!("{path}{suffix}"))
                .filter_map(|file| std::fs::read(&file).ok().map(|bytes| (file, bytes)))
                .collect()
        };
        let contains = |bytes: &[u8], needle: &str| {
            bytes
                .windows(needle.len())
                .any(|window| window == needle.as_bytes())
        };
        // In the database file itself, as a checkpoint since the sync leaves it: an address
        // only in the WAL would never reach the file, and the test could not fail.
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&app.state.db.pool)
            .await
            .unwrap();
        assert!(
            contains(&std::fs::read(&path).unwrap(), &email),
            "the address is not in the database file"
        );

        let erased = app
            .post(
                "/api/v1/erasures",
                Some(&seller.token),
                json!({"email": email}),
            )
            .await;
        assert_eq!(erased.status, 200, "{}", erased.text);
        // Already before the stop: the erasure checkpoints, and the app's other connections
        // stay open (the last one to close would checkpoint on its own).
        for (file, bytes) in files(&path) {
            assert!(
                !contains(&bytes, &email),
                "{email} is in {file} after the erasure"
            );
        }
        app.stop().await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;

        for (file, bytes) in files(&path) {
            assert!(!contains(&bytes, &email), "{email} is still in {file}");
        }
    }
}
