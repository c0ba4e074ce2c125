//! The login throttle: locks that follow the account, shared by every process through the
//! database and kept across a restart; unknown names answered like known ones; password
//! changes under the same budget; a table that cannot grow without bound; the client's
//! address read through trusted proxies only, and charged for wrong passwords only.

use std::net::IpAddr;

use serde_json::{Value, json};
use simba::auth::throttle::{self, PER_ADDRESS};

use crate::backend_tests;
use crate::dashboard::{PASSWORD, Web, session_cookie};
use crate::helpers::{Response, TestApp};

backend_tests!(
    a_locked_account_stays_locked_whatever_string_names_it,
    an_unknown_name_is_answered_exactly_like_a_wrong_password,
    the_login_lock_is_shared_by_two_app_processes_on_one_database,
    the_login_lock_survives_a_restart,
    wrong_old_passwords_are_throttled,
    a_right_password_forgives_the_account_but_not_the_address,
    parallel_guesses_get_no_more_tries_than_the_limit,
    expired_failures_are_pruned_a_batch_per_attempt,
    the_failure_table_holds_no_typed_name_or_address,
    behind_a_trusted_proxy_each_client_has_its_own_address_budget,
    x_forwarded_for_from_an_untrusted_peer_is_ignored,
    correct_logins_in_flight_do_not_lock_the_address,
    a_failed_prune_fails_no_login,
);

const WINDOW_SECS: i64 = 15 * 60;

async fn log_in(app: &TestApp, login: &str, password: &str) -> Response {
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"username": login, "password": password}),
    )
    .await
}

/// Logs in as a reverse proxy would pass the request on, with `X-Forwarded-For`.
async fn log_in_via(app: &TestApp, forwarded_for: &str, login: &str, password: &str) -> Response {
    let request = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"username": login, "password": password}));
    app.send(request).await
}

/// Charges `client` with `times` wrong passwords, through the throttle without the argon2 work
/// of real logins.
async fn fail_from(app: &TestApp, client: &str, times: usize) {
    let (db, cipher) = (&app.state.db, &app.state.cipher);
    let client: IpAddr = client.parse().unwrap();
    for i in 0..times {
        let name = format!("guess-{client}-{i}");
        let attempt = throttle::begin_login(db, cipher, &name, None, client)
            .await
            .unwrap();
        attempt.failed(db).await.unwrap();
    }
}

/// Fails `times` logins as `login`, each answered 401.
async fn fail(app: &TestApp, login: &str, times: usize) {
    for _ in 0..times {
        log_in(app, login, "wrong password!").await.problem(401);
    }
}

/// Asserts a 429 problem with a `Retry-After` within the window; returns the body.
fn assert_locked(response: &Response) -> Value {
    let body = response.problem(429);
    let retry_after: i64 = response
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .unwrap();
    assert!((1..=WINDOW_SECS).contains(&retry_after), "{retry_after}");
    body
}

async fn execute(app: &TestApp, sql: &str) {
    let db = &app.state.db;
    db.query(sql).execute(&db.pool).await.unwrap();
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    let db = &app.state.db;
    sqlx::Row::get(&db.query(sql).fetch_one(&db.pool).await.unwrap(), 0)
}

async fn a_locked_account_stays_locked_whatever_string_names_it(app: TestApp) {
    app.register("carol").await;
    app.register("dave").await;
    fail(&app, "carol", 5).await;
    for login in ["carol", " carol", "carol@example.com", "CAROL@EXAMPLE.COM"] {
        assert_locked(&log_in(&app, login, PASSWORD).await);
    }
    let dashboard = Web::new(&app).log_in("CAROL@EXAMPLE.COM", PASSWORD).await;
    assert_eq!(dashboard.status, 429, "{}", dashboard.text);
    assert!(dashboard.header("retry-after").is_some());
    assert!(session_cookie(&dashboard).is_none());
    assert_eq!(
        log_in(&app, "dave", PASSWORD).await.status,
        200,
        "the lock is the account's, not the address's"
    );
}

async fn an_unknown_name_is_answered_exactly_like_a_wrong_password(app: TestApp) {
    app.register("anna").await;
    for _ in 0..5 {
        let known = log_in(&app, "anna", "wrong password!").await;
        let unknown = log_in(&app, "nobody", PASSWORD).await;
        known.problem(401);
        assert_eq!((known.status, &known.text), (unknown.status, &unknown.text));
        assert_eq!(known.header("content-type"), unknown.header("content-type"));
    }
    let mut known = assert_locked(&log_in(&app, "anna", PASSWORD).await);
    let mut unknown = assert_locked(&log_in(&app, "nobody", PASSWORD).await);
    for body in [&mut known, &mut unknown] {
        body.as_object_mut().unwrap().remove("detail");
    }
    assert_eq!(known, unknown);
}

async fn the_login_lock_is_shared_by_two_app_processes_on_one_database(app: TestApp) {
    app.register("carol").await;
    app.register("dave").await;
    let other = app.another_process(|_| {}).await;
    fail(&app, "carol", 5).await;
    assert_locked(&log_in(&other, "carol@example.com", PASSWORD).await);
    fail(&app, "dave", 3).await;
    fail(&other, "dave", 2).await;
    assert_locked(&log_in(&app, "dave", PASSWORD).await);
    assert_locked(&log_in(&other, "dave", PASSWORD).await);
    other.stop().await;
}

async fn the_login_lock_survives_a_restart(app: TestApp) {
    app.register("carol").await;
    fail(&app, "carol", 5).await;
    app.stop().await;
    let restarted = app.another_process(|_| {}).await;
    assert_locked(&log_in(&restarted, "carol", PASSWORD).await);
    restarted.stop().await;
}

async fn wrong_old_passwords_are_throttled(app: TestApp) {
    let seller = app.register("carol").await;
    let change = |old: &str| json!({"old_password": old, "new_password": "a new password 1"});
    for _ in 0..5 {
        let wrong = app
            .post(
                "/api/v1/auth/password/change",
                Some(&seller.token),
                change("not the password"),
            )
            .await
            .problem(422);
        assert!(wrong["errors"]["old_password"].is_array());
    }
    assert_locked(
        &app.post(
            "/api/v1/auth/password/change",
            Some(&seller.token),
            change(PASSWORD),
        )
        .await,
    );
    assert_locked(&log_in(&app, "carol", PASSWORD).await);

    execute(
        &app,
        &format!("UPDATE login_failures SET failed_at = failed_at - {WINDOW_SECS}"),
    )
    .await;
    assert_eq!(
        log_in(&app, "carol", PASSWORD).await.status,
        200,
        "the lock lifts when the failures age out, and the password was not changed"
    );
}

async fn a_right_password_forgives_the_account_but_not_the_address(app: TestApp) {
    app.register("anna").await;
    app.register("bert").await;
    fail(&app, "anna", 4).await;
    assert_eq!(log_in(&app, "anna", PASSWORD).await.status, 200);
    fail(&app, "anna", 4).await;
    for i in 0..41 {
        fail(&app, &format!("ghost{i}"), 1).await;
    }
    assert_eq!(
        log_in(&app, "anna", PASSWORD).await.status,
        200,
        "49 failures from one address"
    );
    fail(&app, "ghost-last", 1).await;
    assert_locked(&log_in(&app, "anna", PASSWORD).await);
    assert_locked(&log_in(&app, "bert", PASSWORD).await);
}

async fn parallel_guesses_get_no_more_tries_than_the_limit(app: TestApp) {
    app.register("anna").await;
    let guesses = (0..12).map(|_| log_in(&app, "anna", "wrong password!"));
    let answers = futures_util::future::join_all(guesses).await;
    let checked = answers.iter().filter(|a| a.status == 401).count();
    assert!(
        answers.iter().all(|a| [401, 429].contains(&a.status)),
        "{answers:?}"
    );
    assert!(checked <= 5, "{checked} passwords checked");
    fail(&app, "anna", 5 - checked).await;
    assert_locked(&log_in(&app, "anna", PASSWORD).await);
}

async fn expired_failures_are_pruned_a_batch_per_attempt(app: TestApp) {
    use simba::store::login_failures::{PRUNE_BATCH, record};
    let now = simba::domain::Timestamp::now();
    let window = std::time::Duration::from_secs(WINDOW_SECS as u64);
    let old: Vec<String> = (0..120).map(|i| format!("{i:064}")).collect();
    record(&app.state.db, &old, "left-by-an-attack", now - 2 * window)
        .await
        .unwrap();
    let expired = format!(
        "SELECT COUNT(*) FROM login_failures WHERE failed_at <= {}",
        (now - window).unix_seconds()
    );
    assert_eq!(count(&app, &expired).await, 120);
    fail(&app, "anyone", 1).await;
    assert_eq!(count(&app, &expired).await, 120 - i64::from(PRUNE_BATCH));
    fail(&app, "anyone", 1).await;
    assert_eq!(
        count(&app, &expired).await,
        120 - 2 * i64::from(PRUNE_BATCH)
    );
    let live = count(&app, "SELECT COUNT(*) FROM login_failures").await;
    assert_eq!(
        live,
        120 - 2 * i64::from(PRUNE_BATCH) + 4,
        "two rows per failure"
    );
}

async fn the_failure_table_holds_no_typed_name_or_address(app: TestApp) {
    app.register("carol").await;
    fail(&app, "carol", 2).await;
    fail(&app, "someone@example.com", 2).await;
    let db = &app.state.db;
    let rows = db
        .query("SELECT subject FROM login_failures")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2 * 3 + 2 * 2, "name, address (and account)");
    for row in rows {
        let subject: String = sqlx::Row::get(&row, 0);
        assert_eq!(subject.len(), 64);
        for plain in ["carol", "someone", "127.0.0.1"] {
            assert!(!subject.contains(plain), "{subject}");
        }
    }
}

async fn behind_a_trusted_proxy_each_client_has_its_own_address_budget(app: TestApp) {
    let seller = app.register("anna").await;
    let proxied = app
        .another_process(|config| config.trusted_proxies = "127.0.0.1, ::1".parse().unwrap())
        .await;
    fail_from(&app, "203.0.113.1", PER_ADDRESS).await;

    for forwarded_for in [
        "203.0.113.1",
        "198.51.100.7, 203.0.113.1",
        "203.0.113.1, 127.0.0.1",
    ] {
        assert_locked(&log_in_via(&proxied, forwarded_for, "anna", PASSWORD).await);
    }
    let mut web = Web::new(&proxied);
    web.forwarded_for = Some("203.0.113.1".into());
    let dashboard = web.log_in("anna", PASSWORD).await;
    assert_eq!(dashboard.status, 429, "{}", dashboard.text);
    let change = proxied
        .client
        .post(proxied.url("/api/v1/auth/password/change"))
        .header("authorization", format!("Token {}", seller.token))
        .header("x-forwarded-for", "203.0.113.1")
        .json(&json!({"old_password": PASSWORD, "new_password": "a new password 1"}));
    assert_locked(&proxied.send(change).await);

    for forwarded_for in ["203.0.113.2", "203.0.113.1, 203.0.113.2"] {
        let other_client = log_in_via(&proxied, forwarded_for, "anna", PASSWORD).await;
        assert_eq!(
            other_client.status, 200,
            "{forwarded_for}: {}",
            other_client.text
        );
    }
    assert_eq!(
        log_in(&proxied, "anna", PASSWORD).await.status,
        200,
        "without the header the client is the proxy itself, which has failed nothing"
    );
    proxied.stop().await;
}

async fn x_forwarded_for_from_an_untrusted_peer_is_ignored(app: TestApp) {
    app.register("anna").await;
    let other_proxies = app
        .another_process(|config| config.trusted_proxies = "10.0.0.0/8".parse().unwrap())
        .await;
    fail_from(&app, "203.0.113.5", PER_ADDRESS).await;
    for server in [&app, &other_proxies] {
        let response = log_in_via(server, "203.0.113.5", "anna", PASSWORD).await;
        assert_eq!(response.status, 200, "not charged to 203.0.113.5");
    }
    fail_from(&app, "127.0.0.1", PER_ADDRESS).await;
    for server in [&app, &other_proxies] {
        assert_locked(&log_in_via(server, "203.0.113.9", "anna", PASSWORD).await);
    }
    other_proxies.stop().await;
}

async fn correct_logins_in_flight_do_not_lock_the_address(app: TestApp) {
    app.register("anna").await;
    let (db, cipher) = (&app.state.db, &app.state.cipher);
    let office: IpAddr = "127.0.0.1".parse().unwrap();
    // More password checks from one address than its limit, all still in progress.
    let mut in_flight = Vec::new();
    for i in 0..2 * PER_ADDRESS {
        let attempt = throttle::begin_login(db, cipher, &format!("seller{i}"), None, office).await;
        in_flight.push(attempt.expect("checks in progress are no failures of the address"));
    }
    assert_eq!(log_in(&app, "anna", PASSWORD).await.status, 200);
    for attempt in in_flight {
        attempt.succeeded(db).await;
    }
    assert_eq!(log_in(&app, "anna", PASSWORD).await.status, 200);

    fail_from(&app, "127.0.0.1", PER_ADDRESS).await;
    assert_locked(&log_in(&app, "anna", PASSWORD).await);
}

async fn a_failed_prune_fails_no_login(app: TestApp) {
    app.register("anna").await;
    let undeletable = "u".repeat(64);
    let expired =
        simba::domain::Timestamp::now() - std::time::Duration::from_secs(2 * WINDOW_SECS as u64);
    simba::store::login_failures::record(
        &app.state.db,
        std::slice::from_ref(&undeletable),
        "old",
        expired,
    )
    .await
    .unwrap();
    app.refuse(
        "DELETE",
        "login_failures",
        &format!("OLD.subject = '{undeletable}'"),
    )
    .await;
    assert_eq!(log_in(&app, "anna", PASSWORD).await.status, 200);
    log_in(&app, "anna", "wrong password!").await.problem(401);
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM login_failures").await,
        1 + 3,
        "the expired row, and the wrong password's account, name and address"
    );
}
