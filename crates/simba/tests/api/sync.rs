//! The sync engine against the sandbox: the invariants of ARCHITECTURE.md, exactly.

use std::time::{Duration, Instant};

use bol_sandbox::{Faults, Limits};
use serde_json::Value;
use sqlx::Row;

use crate::helpers::broker::TestBroker;
use crate::helpers::sync_setup::{SyncSetup, SyncTest};
use crate::helpers::{Backend, TestApp};

crate::multi_thread_backend_tests!(
    full_syncs_make_exactly_the_minimum_calls,
    an_incremental_sync_fetches_only_new_shipments_with_the_fewest_pages,
    faults_are_retried_and_the_run_succeeds_with_everything,
    rejected_credentials_fail_the_run_with_a_sentence_and_mark_the_shop,
    a_second_sync_while_one_is_active_is_a_conflict_and_cancel_ends_it,
    pages_shifting_during_a_crawl_lose_and_duplicate_nothing,
    the_scheduler_queues_due_shops_once_per_interval,
    shops_overdue_after_an_outage_are_spread_over_their_interval,
    the_scheduler_reads_only_due_shops,
    a_server_killed_mid_run_resumes_in_a_new_process,
    a_short_token_lifetime_means_many_renewals_and_no_wasted_token_call,
    tight_limits_make_the_crawl_wait_without_a_single_429,
    details_are_fetched_while_the_list_is_still_being_read,
    three_worker_processes_sync_fifty_shops_and_survive_losing_one,
    sigterm_lets_the_step_in_flight_commit_and_loses_nothing,
    rabbitmq_three_workers_sync_fifty_shops_with_the_minimum_calls,
    rabbitmq_redelivers_the_runs_of_a_killed_worker,
    rabbitmq_workers_reconnect_after_the_broker_closes_their_connections,
    another_process_takes_over_scheduling_within_a_minute_of_the_leader_dying,
    rabbitmq_sigterm_puts_the_run_back_in_the_queue_and_loses_nothing,
);

fn calls(run: &Value, kind: &str) -> i64 {
    run["api_calls"][kind].as_i64().unwrap()
}

fn list_minimum(fbr: u32, fbb: u32) -> i64 {
    i64::from(fbr / 50 + 1 + fbb / 50 + 1)
}

async fn full_syncs_make_exactly_the_minimum_calls(backend: Backend) {
    let counts = [(0, 0), (1, 0), (49, 0), (50, 0), (0, 51), (700, 534)];
    let setup = SyncSetup::new(backend)
        .accounts(&counts)
        .shops(counts.len() as u32);
    let Some(SyncTest {
        app,
        sandbox,
        seller,
        shops,
    }) = setup.spawn().await
    else {
        return;
    };
    for (n, (&(fbr, fbb), &shop)) in (1..).zip(counts.iter().zip(&shops)) {
        let run = app.sync(&seller, shop, None).await;
        assert_eq!(run["status"], "succeeded", "{run}");
        assert_eq!(run["mode"], "full");
        let total = i64::from(fbr + fbb);
        assert_eq!(
            calls(&run, "list"),
            list_minimum(fbr, fbb),
            "{fbr}/{fbb}: {run}"
        );
        assert_eq!(calls(&run, "detail"), total, "{fbr}/{fbb}: {run}");
        assert_eq!(calls(&run, "token"), 1, "{run}");
        assert_eq!(calls(&run, "rate_limited"), 0);
        assert_eq!(run["progress"]["shipments_stored"], total);
        assert_eq!(run["progress"]["details_fetched"], total);
        assert_eq!(run["progress"]["details_pending"], 0);
        let stats = sandbox.stats();
        let account = stats.account(&format!("sandbox-{n}")).unwrap();
        assert_eq!(account.list.calls as i64, list_minimum(fbr, fbb));
        assert_eq!(account.detail.calls as i64, total);
        assert_eq!(account.token.calls, 1);
        assert_eq!(
            account.list.wasted + account.detail.wasted + account.token.wasted,
            0
        );
        let listed = app
            .get(
                &format!("/api/v1/shops/{shop}/shipments"),
                Some(&seller.token),
            )
            .await
            .json();
        assert_eq!(listed["count"], total);
        let shop_body = app
            .get(&format!("/api/v1/shops/{shop}"), Some(&seller.token))
            .await
            .json();
        assert!(shop_body["last_synced_at"].is_string());
        assert!(shop_body["active_run_id"].is_null());
    }
    let all = app
        .get("/api/v1/shipments?page_size=1", Some(&seller.token))
        .await
        .json();
    let id = all["results"][0]["id"].as_i64().unwrap();
    let detail = app
        .get(&format!("/api/v1/shipments/{id}"), Some(&seller.token))
        .await
        .json();
    assert!(detail["raw"]["shipmentId"].is_string(), "{detail}");
    assert!(detail["detail_synced_at"].is_string());
}

async fn an_incremental_sync_fetches_only_new_shipments_with_the_fewest_pages(backend: Backend) {
    let Some(SyncTest {
        app,
        sandbox,
        seller,
        shops,
    }) = SyncSetup::new(backend).shipments(120, 30).spawn().await
    else {
        return;
    };
    let shop = shops[0];
    assert_eq!(app.sync(&seller, shop, None).await["status"], "succeeded");
    sandbox.reset_stats();
    sandbox.add_shipments("sandbox-1", 7, 2);
    let run = app.sync(&seller, shop, None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["mode"], "incremental");
    assert_eq!(
        calls(&run, "list"),
        2,
        "one page per method reaches known shipments: {run}"
    );
    assert_eq!(calls(&run, "detail"), 9, "{run}");
    assert_eq!(calls(&run, "token"), 0, "the cached token is reused: {run}");
    assert_eq!(run["progress"]["shipments_stored"], 9);
    let stats = sandbox.stats();
    let account = stats.account("sandbox-1").unwrap();
    assert_eq!(account.detail.calls, 9);
    assert_eq!(
        account.detail.wasted + account.list.wasted + account.token.wasted,
        0
    );
    let listed = app
        .get("/api/v1/shipments", Some(&seller.token))
        .await
        .json();
    assert_eq!(listed["count"], 159);
}

async fn faults_are_retried_and_the_run_succeeds_with_everything(backend: Backend) {
    let setup = SyncSetup::new(backend).shipments(130, 20).faults(Faults {
        error_rate: 0.1,
        malformed_rate: 0.05,
        truncated_rate: 0.05,
        ..Faults::default()
    });
    let Some(SyncTest {
        app,
        sandbox,
        seller,
        shops,
    }) = setup.spawn().await
    else {
        return;
    };
    let shop = shops[0];
    let run = app.sync(&seller, shop, None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(calls(&run, "errors") > 0, "no fault was injected: {run}");
    let listed = app
        .get("/api/v1/shipments", Some(&seller.token))
        .await
        .json();
    assert_eq!(listed["count"], 150);
    let account = sandbox.stats().account("sandbox-1").unwrap().clone();
    assert_eq!(
        account.detail.wasted + account.list.wasted,
        0,
        "{account:?}"
    );
    sandbox.revoke_tokens();
    sandbox.add_shipments("sandbox-1", 3, 0);
    let again = app.sync(&seller, shop, None).await;
    assert_eq!(again["status"], "succeeded", "{again}");
    let listed = app
        .get("/api/v1/shipments", Some(&seller.token))
        .await
        .json();
    assert_eq!(listed["count"], 153);
}

async fn rejected_credentials_fail_the_run_with_a_sentence_and_mark_the_shop(backend: Backend) {
    let setup = SyncSetup::new(backend).shipments(10, 0).shops(0);
    let Some(SyncTest {
        app,
        sandbox: _sandbox,
        seller,
        ..
    }) = setup.spawn().await
    else {
        return;
    };
    let response = app
        .post(
            "/api/v1/shops",
            Some(&seller.token),
            serde_json::json!({"name": "wrong", "client_id": "sandbox-1", "client_secret": "not-the-secret"}),
        )
        .await;
    let shop = response.json()["id"].as_i64().unwrap();
    let run = app.sync(&seller, shop, None).await;
    assert_eq!(run["status"], "failed");
    assert!(
        run["error"]
            .as_str()
            .unwrap()
            .contains("rejected the shop's credentials"),
        "{run}"
    );
    assert_eq!(
        calls(&run, "token"),
        1,
        "no retry loop on bad credentials: {run}"
    );
    let shop_body = app
        .get(&format!("/api/v1/shops/{shop}"), Some(&seller.token))
        .await
        .json();
    assert!(shop_body["credentials_rejected_at"].is_string());
    assert!(shop_body["active_run_id"].is_null());
    let due = simba::store::sync_runs::due_for_schedule(
        &app.state.db,
        simba::domain::Timestamp::from_unix_seconds(i64::MAX / 4_000),
        1_000,
    )
    .await
    .unwrap();
    assert!(
        !due.iter().any(|due| due.shop_id == shop),
        "a shop with rejected credentials was scheduled"
    );
    app.patch(
        &format!("/api/v1/shops/{shop}"),
        Some(&seller.token),
        serde_json::json!({"client_secret": "secret-1"}),
    )
    .await;
    let fixed = app.sync(&seller, shop, None).await;
    assert_eq!(fixed["status"], "succeeded", "{fixed}");
}

async fn a_second_sync_while_one_is_active_is_a_conflict_and_cancel_ends_it(backend: Backend) {
    let setup = SyncSetup::new(backend)
        .shipments(200, 0)
        .time_scale(60.0)
        .limits(Limits {
            list: 25,
            detail: 5,
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
    let shop = shops[0];
    let first = app
        .post(
            &format!("/api/v1/shops/{shop}/sync"),
            Some(&seller.token),
            serde_json::json!({"mode": "full"}),
        )
        .await;
    assert_eq!(first.status, 202, "{}", first.text);
    let run_id = first.json()["id"].as_i64().unwrap();
    let second = app
        .post(
            &format!("/api/v1/shops/{shop}/sync"),
            Some(&seller.token),
            serde_json::json!({}),
        )
        .await
        .problem(409);
    assert_eq!(second["active_run_id"], run_id);
    app.post(
        &format!("/api/v1/shops/{shop}/sync"),
        Some(&seller.token),
        serde_json::json!({"mode": "fast"}),
    )
    .await
    .problem(422);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let cancelled = app
        .post(
            &format!("/api/v1/sync-runs/{run_id}/cancel"),
            Some(&seller.token),
            serde_json::json!({}),
        )
        .await;
    assert_eq!(cancelled.status, 202, "{}", cancelled.text);
    let run = app.wait_for_run(&seller, run_id).await;
    assert_eq!(run["status"], "cancelled");
    app.post(
        &format!("/api/v1/sync-runs/{run_id}/cancel"),
        Some(&seller.token),
        serde_json::json!({}),
    )
    .await
    .problem(409);
    let stored = app
        .get("/api/v1/shipments", Some(&seller.token))
        .await
        .json()["count"]
        .as_i64()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = app
        .get("/api/v1/shipments", Some(&seller.token))
        .await
        .json()["count"]
        .as_i64()
        .unwrap();
    assert_eq!(stored, later, "the cancelled run kept storing");
    let next = app.sync_and_wait(&seller, shop, Some("full")).await;
    assert_eq!(next["status"], "succeeded", "{next}");
}

async fn pages_shifting_during_a_crawl_lose_and_duplicate_nothing(backend: Backend) {
    // Five list calls a 1 s window: the 11 FBR pages take over two seconds, and shipments
    // arrive while the crawl is on page 5 or so.
    let setup = SyncSetup::new(backend)
        .shipments(520, 10)
        .time_scale(60.0)
        .limits(Limits {
            list: 5,
            detail: 0,
            token: 0,
        })
        .config(|config| {
            config.bol_assumed_limits.detail = None;
            config.bol_assumed_limits.token = None;
        })
        .background_workers();
    let Some(SyncTest {
        app,
        sandbox,
        seller,
        shops,
    }) = setup.spawn().await
    else {
        return;
    };
    let shop = shops[0];
    let run_id = app.start_sync(&seller, shop, None).await;
    app.wait_for_progress(&seller, run_id, "pages_fetched", 4)
        .await;
    sandbox.add_shipments("sandbox-1", 7, 0);
    let run = app.wait_for_run(&seller, run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let listed = app
        .get("/api/v1/shipments?page_size=500", Some(&seller.token))
        .await
        .json();
    assert_eq!(
        listed["count"], 537,
        "every shipment, the arrivals included: {run}"
    );
    let db = &app.state.db;
    let distinct: i64 = sqlx::Row::get(
        &db.query("SELECT COUNT(DISTINCT shipment_id) FROM shipments")
            .fetch_one(&db.pool)
            .await
            .unwrap(),
        0,
    );
    assert_eq!(distinct, 537);
    assert_eq!(run["progress"]["details_fetched"], 537);
    let account = sandbox.stats().account("sandbox-1").unwrap().clone();
    assert_eq!(account.detail.wasted, 0, "{account:?}");
}

async fn the_scheduler_queues_due_shops_once_per_interval(backend: Backend) {
    let setup = SyncSetup::new(backend)
        .accounts(&[(30, 5), (3, 0)])
        .shops(0);
    let Some(SyncTest {
        app,
        sandbox,
        seller,
        ..
    }) = setup.spawn().await
    else {
        return;
    };
    let response = app
        .post(
            "/api/v1/shops",
            Some(&seller.token),
            serde_json::json!({"name": "auto", "client_id": "sandbox-1", "client_secret": "secret-1",
                               "sync_interval_minutes": 1}),
        )
        .await;
    let auto = response.json()["id"].as_i64().unwrap();
    app.create_sandbox_shop(&seller, 2).await;
    let engine = app.state.engine.clone();
    let db = &app.state.db;
    let first_due = next_sync_at(&app, auto)
        .await
        .expect("an automatic shop is scheduled");
    let now = simba::domain::Timestamp::now().unix_seconds();
    assert!(
        (now..=now + 60).contains(&first_due),
        "a new shop's first sync is due within a minute, not {first_due} at {now}"
    );
    db.query("UPDATE shops SET next_sync_at = next_sync_at - 60 WHERE id = ?")
        .bind(auto)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        engine.schedule_due().await.unwrap(),
        1,
        "only the auto_sync shop is due"
    );
    let runs = app
        .get(
            &format!("/api/v1/shops/{auto}/sync-runs"),
            Some(&seller.token),
        )
        .await
        .json();
    let first = &runs["results"][0];
    assert_eq!(first["trigger"], "schedule");
    assert_eq!(first["mode"], "full");
    app.run_pending_syncs().await;
    let done = app.sync_run(&seller, first["id"].as_i64().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        engine.schedule_due().await.unwrap(),
        0,
        "not due again within the interval"
    );
    db.query("UPDATE shops SET next_sync_at = next_sync_at - 61 WHERE id = ?")
        .bind(auto)
        .execute(&db.pool)
        .await
        .unwrap();
    sandbox.add_shipments("sandbox-1", 2, 0);
    assert_eq!(engine.schedule_due().await.unwrap(), 1);
    let runs = app
        .get(
            &format!("/api/v1/shops/{auto}/sync-runs"),
            Some(&seller.token),
        )
        .await
        .json();
    assert_eq!(runs["count"], 2);
    assert_eq!(runs["results"][0]["mode"], "incremental");
    app.run_pending_syncs().await;
    let second = app
        .sync_run(&seller, runs["results"][0]["id"].as_i64().unwrap())
        .await;
    assert_eq!(second["status"], "succeeded", "{second}");
    assert_eq!(calls(&second, "detail"), 2);
}

async fn next_sync_at(app: &TestApp, shop: i64) -> Option<i64> {
    let db = &app.state.db;
    db.query("SELECT next_sync_at FROM shops WHERE id = ?")
        .bind(shop)
        .fetch_one(&db.pool)
        .await
        .unwrap()
        .try_get(0)
        .unwrap()
}

/// After an outage, shops that fell due while no scheduler ran start spread over their
/// interval, not at once; those late by less than a pass's grace are queued.
async fn shops_overdue_after_an_outage_are_spread_over_their_interval(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |_| {}).await else {
        return;
    };
    let seller = app.register("anna").await;
    let mut shops = Vec::new();
    for n in 0..200 {
        let body = serde_json::json!({"name": format!("s{n}"), "client_id": format!("c{n}"),
                                      "client_secret": "secret", "sync_interval_minutes": 15});
        shops.push(
            app.post("/api/v1/shops", Some(&seller.token), body)
                .await
                .json()["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let db = &app.state.db;
    let now = simba::domain::Timestamp::now().unix_seconds();
    db.query("UPDATE shops SET next_sync_at = ? WHERE user_id = ?")
        .bind(now - 3 * 3600)
        .bind(seller.id)
        .execute(&db.pool)
        .await
        .unwrap();
    db.query("UPDATE shops SET next_sync_at = ? WHERE id = ?")
        .bind(now - 10)
        .bind(shops[0])
        .execute(&db.pool)
        .await
        .unwrap();

    let queued = app.state.engine.schedule_due().await.unwrap();

    assert!(queued < 10, "{queued} of 200 overdue shops started at once");
    let mut minutes = std::collections::BTreeSet::new();
    for &shop in &shops[1..] {
        let due = next_sync_at(&app, shop).await.unwrap();
        assert!((now..now + 15 * 60 + 5).contains(&due), "{due}");
        minutes.insert((due - now) / 60);
    }
    assert!(minutes.len() >= 14, "spread over the interval: {minutes:?}");
    let first = app
        .get(
            &format!("/api/v1/shops/{}/sync-runs", shops[0]),
            Some(&seller.token),
        )
        .await
        .json();
    assert_eq!(
        first["count"], 1,
        "a shop late by less than the grace is queued"
    );
}

/// The scheduler's query reads the due end of an index, whatever the number of shops.
async fn the_scheduler_reads_only_due_shops(backend: Backend) {
    let Some(app) = TestApp::spawn_with(backend, |_| {}).await else {
        return;
    };
    let db = &app.state.db;
    let plan: Vec<String> = match backend {
        Backend::Sqlite => db
            .query(
                "EXPLAIN QUERY PLAN SELECT id, next_sync_at FROM shops WHERE next_sync_at <= 1 \
                 AND active_run_id IS NULL ORDER BY next_sync_at LIMIT 1000",
            )
            .fetch_all(&db.pool)
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String, _>(3).unwrap())
            .collect(),
        _ => return,
    };
    assert!(
        plan.iter()
            .any(|step| step.contains("USING INDEX shops_next_sync")),
        "{plan:?}"
    );
}

/// A `simba` child process, killed when the test ends, also when it fails half-way.
struct SimbaProcess(std::process::Child);

impl std::ops::Deref for SimbaProcess {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for SimbaProcess {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for SimbaProcess {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// `simba serve` as a separate process on the test's database and sandbox.
fn spawn_server(app: &TestApp, sandbox: &bol_sandbox::Sandbox) -> SimbaProcess {
    spawn_simba("serve", app, sandbox)
}

/// A `simba` subcommand as a separate process on the test's database and sandbox, with
/// the published limits at time scale 60 and a 2 s shop lease.
fn spawn_simba(command: &str, app: &TestApp, sandbox: &bol_sandbox::Sandbox) -> SimbaProcess {
    spawn_simba_with(command, app, sandbox, &[])
}

/// [`spawn_simba`] with more environment variables.
fn spawn_simba_with(
    command: &str,
    app: &TestApp,
    sandbox: &bol_sandbox::Sandbox,
    env: &[(&str, &str)],
) -> SimbaProcess {
    std::process::Command::new(env!("CARGO_BIN_EXE_simba"))
        .arg(command)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", &app.database_url)
        .env("SECRET_KEY", "test-secret-key-test-secret-key-0123456789")
        .env("SIMBA_ADDR", "127.0.0.1:0")
        .env("SIMBA_BOL_API_URL", sandbox.base_url())
        .env("SIMBA_BOL_LOGIN_URL", sandbox.base_url())
        .env("SIMBA_BOL_TIME_SCALE", "60")
        .env("SIMBA_SYNC_LEASE_SECONDS", "2")
        // Several tests with four processes each share MariaDB's 151 connections.
        .env("SIMBA_DATABASE_MAX_CONNECTIONS", "6")
        .envs(env.iter().copied())
        .env(
            "RUST_LOG",
            std::env::var("SIMBA_TEST_CHILD_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(std::process::Stdio::null())
        .stderr(match std::env::var_os("SIMBA_TEST_CHILD_LOG") {
            Some(_) => std::process::Stdio::inherit(),
            None => std::process::Stdio::null(),
        })
        .spawn()
        .map(SimbaProcess)
        .expect("simba starts")
}

async fn a_server_killed_mid_run_resumes_in_a_new_process(backend: Backend) {
    let setup = SyncSetup::new(backend).shipments(300, 100).time_scale(60.0);
    let Some(SyncTest {
        app,
        sandbox,
        seller,
        shops,
    }) = setup.spawn().await
    else {
        return;
    };
    let shop = shops[0];
    let run_id = app.start_sync(&seller, shop, None).await;
    let mut first = spawn_server(&app, &sandbox);
    app.wait_for_progress(&seller, run_id, "details_fetched", 60)
        .await;
    first.kill().expect("SIGKILL");
    first.wait().ok();
    let at_kill = app
        .get(&format!("/api/v1/sync-runs/{run_id}"), Some(&seller.token))
        .await
        .json();
    assert_eq!(at_kill["status"], "running", "{at_kill}");
    let mut second = spawn_server(&app, &sandbox);
    let run = app.wait_for_run(&seller, run_id).await;
    second.kill().ok();
    second.wait().ok();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["progress"]["details_fetched"], 400, "{run}");
    let listed = app
        .get("/api/v1/shipments", Some(&seller.token))
        .await
        .json();
    assert_eq!(listed["count"], 400);
    let account = sandbox.stats().account("sandbox-1").unwrap().clone();
    let detail_answers =
        account.detail.calls - account.detail.rate_limited - account.detail.unauthorized;
    assert!(
        detail_answers <= 400 + 10,
        "more than the calls in flight were repeated: {account:?}"
    );
    assert!(account.detail.wasted <= 10, "{account:?}");
    let list_answers = account.list.calls - account.list.rate_limited - account.list.unauthorized;
    assert!(
        list_answers as i64 <= list_minimum(300, 100) + 1,
        "{account:?}"
    );
    assert_eq!(
        account.token.wasted, 0,
        "the second process reused the stored token: {account:?}"
    );
}

async fn a_short_token_lifetime_means_many_renewals_and_no_wasted_token_call(backend: Backend) {
    let setup = SyncSetup::new(backend)
        .shipments(150, 100)
        .token_lifetime(120)
        .time_scale(60.0)
        .published_limits();
    let Some(SyncTest {
        app,
        sandbox,
        seller,
        shops,
    }) = setup.spawn().await
    else {
        return;
    };
    let run = app.sync(&seller, shops[0], None).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert!(
        calls(&run, "token") >= 2,
        "expected renewals across a 5 s crawl with 2 s tokens: {run}"
    );
    let stats = sandbox.stats();
    let account = stats.account("sandbox-1").unwrap();
    assert_eq!(account.token.wasted, 0, "{account:?}");
    assert_eq!(account.detail.calls, 250);
    assert_eq!(account.list.rate_limited + account.detail.rate_limited, 0);
}

async fn tight_limits_make_the_crawl_wait_without_a_single_429(backend: Backend) {
    let setup = SyncSetup::new(backend)
        .shipments(160, 40)
        .time_scale(60.0)
        .limits(Limits {
            list: 5,
            detail: 20,
            token: 20,
        });
    let Some(SyncTest {
        app,
        sandbox,
        seller,
        shops,
    }) = setup.spawn().await
    else {
        return;
    };
    let started = Instant::now();
    let run = app.sync(&seller, shops[0], None).await;
    let wall = started.elapsed();
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(calls(&run, "rate_limited"), 0, "{run}");
    let stats = sandbox.stats();
    let account = stats.account("sandbox-1").unwrap();
    assert_eq!(account.detail.rate_limited + account.list.rate_limited, 0);
    // 200 details at 20 per 1 s window need 10 windows; the 6 list calls fit in 2.
    let floor = Duration::from_secs(9);
    assert!(wall >= floor, "faster than the limits allow: {wall:?}");
    assert!(
        wall <= floor.mul_f64(1.1) + Duration::from_millis(1500),
        "too slow: {wall:?}"
    );
}

async fn details_are_fetched_while_the_list_is_still_being_read(backend: Backend) {
    // Five list calls a 1 s window: the 8 list calls take two windows, during which the
    // details of the pages already read go on under their own limit.
    let setup = SyncSetup::new(backend)
        .shipments(300, 10)
        .time_scale(60.0)
        .limits(Limits {
            list: 5,
            detail: 50,
            token: 20,
        })
        .background_workers()
        // Far longer than the run, so that a page read mid-run would still be served at its
        // end if the end did not move the seller's epoch.
        .config(|config| config.page_cache_stale = Duration::from_secs(600));
    let Some(SyncTest {
        app,
        sandbox,
        seller,
        shops,
    }) = setup.spawn().await
    else {
        return;
    };
    let shop = shops[0];
    let run_id = app.start_sync(&seller, shop, None).await;
    app.wait_for_progress(&seller, run_id, "details_fetched", 1)
        .await;
    let early = app
        .get(&format!("/api/v1/sync-runs/{run_id}"), Some(&seller.token))
        .await
        .json();
    assert!(
        early["progress"]["pages_fetched"].as_i64().unwrap() < list_minimum(300, 10),
        "details waited for the last page: {early}"
    );
    // Read mid-run, twice: a run's steps may be seen late, its end must be seen at once.
    let all = "/api/v1/shipments?page_size=500";
    let mid_run = app.get(all, Some(&seller.token)).await.json();
    assert!(mid_run["count"].as_i64().unwrap() < 310, "{mid_run}");
    let again = app.get(all, Some(&seller.token)).await.json();
    assert_eq!(
        again, mid_run,
        "served from the page cache while the run goes on"
    );
    let run = app.wait_for_run(&seller, run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let page = app.get(all, Some(&seller.token)).await.json();
    assert_eq!(page["count"], 310);
    let results = page["results"].as_array().unwrap();
    assert!(
        results.iter().all(|s| s["detail_synced_at"].is_string()),
        "{page}"
    );
    assert_eq!(calls(&run, "list"), list_minimum(300, 10), "{run}");
    assert_eq!(calls(&run, "detail"), 310, "{run}");
    assert_eq!(calls(&run, "rate_limited"), 0, "{run}");
    let account = sandbox.stats().account("sandbox-1").unwrap().clone();
    assert_eq!(
        account.list.calls + account.detail.calls,
        318,
        "{account:?}"
    );
    assert_eq!(
        account.detail.wasted + account.list.rate_limited,
        0,
        "{account:?}"
    );
}

async fn three_worker_processes_sync_fifty_shops_and_survive_losing_one(backend: Backend) {
    fifty_shops_on_three_workers(backend, Queue::Database, Disruption::KillWorker).await;
}

async fn rabbitmq_three_workers_sync_fifty_shops_with_the_minimum_calls(backend: Backend) {
    fifty_shops_on_three_workers(backend, Queue::RabbitMq, Disruption::None).await;
}

async fn rabbitmq_redelivers_the_runs_of_a_killed_worker(backend: Backend) {
    fifty_shops_on_three_workers(backend, Queue::RabbitMq, Disruption::KillWorker).await;
}

async fn rabbitmq_workers_reconnect_after_the_broker_closes_their_connections(backend: Backend) {
    fifty_shops_on_three_workers(backend, Queue::RabbitMq, Disruption::CloseConnections).await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Queue {
    Database,
    RabbitMq,
}

/// What happens once 5,000 of the 25,000 shipments are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disruption {
    None,
    KillWorker,
    CloseConnections,
}

/// The API in the test process and 3 `simba worker` processes sync 50 shops × 500 shipments
/// (published limits at time scale 60) on one database and queue.
async fn fifty_shops_on_three_workers(backend: Backend, queue: Queue, disruption: Disruption) {
    if backend == Backend::Sqlite {
        // Several processes writing one SQLite file is not the at-scale setup; PostgreSQL and
        // MariaDB are.
        return;
    }
    let broker = match queue {
        Queue::Database => None,
        Queue::RabbitMq => match TestBroker::create() {
            Some(broker) => Some(broker),
            None => return,
        },
    };
    let broker_url = broker.as_ref().map(|b| b.url.clone());
    let setup = SyncSetup::new(backend)
        .accounts(&[(400, 100); 50])
        .shops(50)
        .time_scale(60.0)
        .published_limits()
        .config(move |config| {
            config.broker_url = broker_url.map(|url| url.parse().unwrap());
        });
    let Some(SyncTest {
        app,
        sandbox,
        seller,
        shops,
    }) = setup.spawn().await
    else {
        return;
    };
    let mut runs = Vec::new();
    for &shop in &shops {
        runs.push(app.start_sync(&seller, shop, None).await);
    }
    // Slices of 2 s hand every run from worker to worker several times through the queue.
    let mut worker_env: Vec<(&str, &str)> = match &broker {
        Some(broker) => vec![
            ("BROKER_URL", broker.url.as_str()),
            ("SIMBA_SYNC_SLICE_SECONDS", "2"),
        ],
        None => Vec::new(),
    };
    if disruption != Disruption::KillWorker {
        // Exact call counts need every lease to outlive the longest stall of a loaded CI
        // machine: a worker that misses its renewal loses the shop, and the calls of its step
        // in flight are made again by the next driver.
        worker_env.push(("SIMBA_SYNC_LEASE_SECONDS", "8"));
    }
    let mut workers: Vec<_> = (0..3)
        .map(|_| spawn_simba_with("worker", &app, &sandbox, &worker_env))
        .collect();
    if disruption != Disruption::None {
        loop {
            let page = app
                .get("/api/v1/shipments?page_size=1", Some(&seller.token))
                .await
                .json();
            if page["count"].as_i64().unwrap() >= 5_000 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    match disruption {
        Disruption::None => {}
        Disruption::KillWorker => {
            let mut victim = workers.remove(0);
            victim.kill().expect("SIGKILL");
            victim.wait().ok();
        }
        Disruption::CloseConnections => broker.as_ref().unwrap().close_all_connections(),
    }
    for run_id in &runs {
        let run = app.wait_for_run(&seller, *run_id).await;
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    for mut worker in workers {
        worker.kill().ok();
        worker.wait().ok();
    }
    let listed = app
        .get("/api/v1/shipments?page_size=1", Some(&seller.token))
        .await
        .json();
    assert_eq!(listed["count"], 25_000);
    let stats = sandbox.stats();
    let (mut rate_limited, mut list, mut detail, mut wasted_details) = (0, 0, 0, 0);
    for account in &stats.accounts {
        rate_limited +=
            account.list.rate_limited + account.detail.rate_limited + account.token.rate_limited;
        list += account.list.calls - account.list.unauthorized;
        detail += account.detail.calls - account.detail.unauthorized;
        wasted_details += account.detail.wasted;
        // A SIGKILL between bol issuing a token and the worker storing it loses that token: the
        // next driver must ask again while it is young. That is at most one per account.
        let wasted_tokens_allowed = u64::from(disruption == Disruption::KillWorker);
        assert!(account.token.wasted <= wasted_tokens_allowed, "{account:?}");
    }
    assert_eq!(rate_limited, 0, "{stats:?}");
    assert_eq!(detail - wasted_details, 25_000);
    let list_minimum = 50 * list_minimum(400, 100) as u64;
    if disruption == Disruption::KillWorker {
        // The killed worker's runs repeat at most the calls it had in flight: a page or a
        // batch of ten details per shop it was driving.
        assert!(list <= list_minimum + 50, "{list} list calls");
        assert!(detail <= 25_000 + 10 * 50, "{detail} detail calls");
    } else {
        let mut over = Vec::new();
        for (account, run_id) in stats.accounts.iter().zip(&runs) {
            if account.list.calls != list_minimum / 50 {
                let run = app
                    .get(&format!("/api/v1/sync-runs/{run_id}"), Some(&seller.token))
                    .await
                    .json();
                over.push(format!("{account:?}: {run}"));
            }
        }
        assert_eq!(
            list, list_minimum,
            "list calls; over the minimum: {over:#?}"
        );
        assert_eq!(detail, 25_000, "detail calls");
    }
}

async fn sigterm_lets_the_step_in_flight_commit_and_loses_nothing(backend: Backend) {
    sigterm_scenario(backend, Queue::Database).await;
}

async fn rabbitmq_sigterm_puts_the_run_back_in_the_queue_and_loses_nothing(backend: Backend) {
    if backend == Backend::Sqlite {
        // The database queue's test covers SQLite; the broker is the same on every database.
        return;
    }
    sigterm_scenario(backend, Queue::RabbitMq).await;
}

/// A worker gets SIGTERM mid-run, exits 0 after committing its step, and a second worker
/// finishes the run without repeating a call.
async fn sigterm_scenario(backend: Backend, queue: Queue) {
    let broker = match queue {
        Queue::Database => None,
        Queue::RabbitMq => match TestBroker::create() {
            Some(broker) => Some(broker),
            None => return,
        },
    };
    let broker_url = broker.as_ref().map(|b| b.url.clone());
    let worker_env: Vec<(&str, &str)> = broker_url
        .as_deref()
        .map(|url| vec![("BROKER_URL", url)])
        .unwrap_or_default();
    let app_broker_url = broker_url.clone();
    let setup = SyncSetup::new(backend)
        .shipments(300, 100)
        .time_scale(60.0)
        .published_limits()
        .config(move |config| {
            config.broker_url = app_broker_url.map(|url| url.parse().unwrap());
        });
    let Some(SyncTest {
        app,
        sandbox,
        seller,
        shops,
    }) = setup.spawn().await
    else {
        return;
    };
    let shop = shops[0];
    let run_id = app.start_sync(&seller, shop, None).await;
    let mut worker = spawn_simba_with("worker", &app, &sandbox, &worker_env);
    app.wait_for_progress(&seller, run_id, "details_fetched", 60)
        .await;
    let terminated = std::process::Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(terminated.success());
    let stopped_at = Instant::now();
    let status = loop {
        if let Some(status) = worker.try_wait().unwrap() {
            break status;
        }
        assert!(
            stopped_at.elapsed() < Duration::from_secs(10),
            "the worker did not stop"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status:?}");
    let db = &app.state.db;
    let row = db
        .query("SELECT lease_owner FROM shops WHERE id = ?")
        .bind(shop)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    let owner: Option<String> = sqlx::Row::get(&row, 0);
    assert_eq!(owner, None, "the stopping worker released the shop");
    let paused = app
        .get(&format!("/api/v1/sync-runs/{run_id}"), Some(&seller.token))
        .await
        .json();
    let with_detail: i64 = sqlx::Row::get(
        &db.query("SELECT COUNT(*) FROM shipments WHERE detail_synced_at IS NOT NULL")
            .fetch_one(&db.pool)
            .await
            .unwrap(),
        0,
    );
    assert_eq!(
        paused["progress"]["details_fetched"], with_detail,
        "progress is what was committed"
    );
    // With RabbitMQ the run reaches the second worker only if the first put its message back.
    let mut second = spawn_simba_with("worker", &app, &sandbox, &worker_env);
    let run = app.wait_for_run(&seller, run_id).await;
    second.kill().ok();
    second.wait().ok();
    assert_eq!(run["status"], "succeeded", "{run}");
    let account = sandbox.stats().account("sandbox-1").unwrap().clone();
    assert_eq!(
        account.detail.calls - account.detail.rate_limited - account.detail.unauthorized,
        400,
        "a graceful stop repeats no call: {account:?}"
    );
    assert_eq!(
        account.detail.wasted + account.list.wasted,
        0,
        "{account:?}"
    );
}

/// The process holding the scheduler lease, by pid (owners are named `{pid}-{random}`).
async fn scheduler_pid(app: &TestApp) -> Option<u32> {
    let db = &app.state.db;
    let row = db
        .query("SELECT owner FROM leases WHERE name = 'scheduler'")
        .fetch_optional(&db.pool)
        .await
        .unwrap()?;
    let owner: String = sqlx::Row::get(&row, 0);
    owner.split('-').next()?.parse().ok()
}

async fn another_process_takes_over_scheduling_within_a_minute_of_the_leader_dying(
    backend: Backend,
) {
    if backend == Backend::Sqlite {
        return;
    }
    let setup = SyncSetup::new(backend).shipments(3, 0).shops(0);
    let Some(SyncTest {
        app,
        sandbox,
        seller,
        ..
    }) = setup.spawn().await
    else {
        return;
    };
    let mut workers: Vec<_> = (0..2)
        .map(|_| spawn_simba("worker", &app, &sandbox))
        .collect();
    let started = Instant::now();
    let leader = loop {
        if let Some(pid) = scheduler_pid(&app).await {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no process became the scheduler"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let position = workers
        .iter()
        .position(|w| w.id() == leader)
        .expect("a worker leads");
    let mut dead = workers.remove(position);
    dead.kill().expect("SIGKILL");
    dead.wait().ok();
    let killed_at = Instant::now();
    let successor = workers[0].id();
    loop {
        if scheduler_pid(&app).await == Some(successor) {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(60),
            "nobody took over scheduling within a minute"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The new leader schedules. A new shop's first automatic sync falls at a random point of
    // its first minute; this one is made due now, so only the leader's next pass (every 5 s)
    // stands between it and its run.
    let shop = app
        .post(
            "/api/v1/shops",
            Some(&seller.token),
            serde_json::json!({"name": "auto", "client_id": "sandbox-1", "client_secret": "secret-1"}),
        )
        .await
        .json()["id"]
        .as_i64()
        .unwrap();
    let db = &app.state.db;
    db.query("UPDATE shops SET next_sync_at = ? WHERE id = ?")
        .bind(simba::domain::Timestamp::now().unix_seconds())
        .bind(shop)
        .execute(&db.pool)
        .await
        .unwrap();
    let due_at = Instant::now();
    let run = loop {
        let runs = app
            .get(
                &format!("/api/v1/shops/{shop}/sync-runs"),
                Some(&seller.token),
            )
            .await
            .json();
        if runs["count"] == 1 {
            break runs["results"][0].clone();
        }
        assert!(
            due_at.elapsed() < Duration::from_secs(30),
            "the new scheduler queued nothing within 30 s of the shop being due"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run["trigger"], "schedule", "{run}");
    let run = app.wait_for_run(&seller, run["id"].as_i64().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    drop(workers);
}
