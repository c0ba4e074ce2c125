//! Dashboard sessions end after an idle time and an absolute lifetime, on the server: the
//! cookie stops working, its token row is deleted, and the browser is sent to the login form.
//! API tokens do not expire. Timestamps are moved in the database instead of waiting.

use std::time::Duration;

use serde_json::json;
use simba::auth::session::SWEEP_BATCH;
use simba::config::Config;

use crate::dashboard::{PASSWORD, Web};
use crate::helpers::{self, Backend, TestApp};

/// Lifetimes shorter than the defaults, so that the tests show the settings are obeyed.
const IDLE_SECS: i64 = 30 * 60;
const MAX_AGE_SECS: i64 = 3 * 3600;

fn short_sessions(config: &mut Config) {
    config.sessions.idle = Duration::from_secs(IDLE_SECS as u64);
    config.sessions.max_age = Duration::from_secs(MAX_AGE_SECS as u64);
}

macro_rules! session_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $(#[tokio::test] async fn $name() { super::with_short_sessions(crate::helpers::Backend::Sqlite, super::$name).await })* }
        mod postgres { $(#[tokio::test] async fn $name() { super::with_short_sessions(crate::helpers::Backend::Postgres, super::$name).await })* }
        mod mysql { $(#[tokio::test] async fn $name() { super::with_short_sessions(crate::helpers::Backend::Mysql, super::$name).await })* }
    };
}

session_tests!(
    an_idle_session_expires,
    a_session_expires_after_its_absolute_lifetime,
    ended_sessions_are_swept_though_their_cookie_never_comes_back,
    api_tokens_do_not_expire,
    an_api_token_in_the_session_cookie_is_not_a_session,
    a_last_use_that_cannot_be_written_fails_no_page,
    a_session_whose_row_cannot_be_deleted_still_ends,
);

async fn with_short_sessions<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    helpers::run_with(backend, short_sessions, test).await
}

/// A dashboard session of a fresh login as `username`, never used yet (so in no cache).
async fn new_session(app: &TestApp, username: &str) -> Web {
    let mut web = Web::new(app);
    let response = web.log_in(username, PASSWORD).await;
    assert_eq!(response.status, 303, "{}", response.text);
    web.cookie = crate::dashboard::session_cookie(&response).unwrap();
    web
}

/// Sets when a session's token was created and last used, in seconds before now.
async fn age(app: &TestApp, web: &Web, created_ago: i64, used_ago: i64) {
    let now = simba::domain::Timestamp::now().unix_seconds();
    let db = &app.state.db;
    let done = db
        .query("UPDATE api_tokens SET created_at = ?, last_used_at = ? WHERE token_hash = ?")
        .bind(now - created_ago)
        .bind(now - used_ago)
        .bind(simba::auth::token::hash(&web.cookie))
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(done.rows_affected(), 1);
}

async fn token_row(app: &TestApp, key: &str) -> Option<Option<i64>> {
    let db = &app.state.db;
    db.query("SELECT last_used_at FROM api_tokens WHERE token_hash = ?")
        .bind(simba::auth::token::hash(key))
        .fetch_optional(&db.pool)
        .await
        .unwrap()
        .map(|row| sqlx::Row::get(&row, 0))
}

/// Asserts that the session has ended: the page sends the browser to log in again and come
/// back, the token row is gone and the key no longer opens the API.
async fn assert_ended(app: &TestApp, web: &Web) {
    let page = web.get("/shipments?q=x").await;
    assert_eq!(page.status, 303, "{}", page.text);
    assert_eq!(
        page.header("location"),
        Some("/login?next=%2Fshipments%3Fq%3Dx")
    );
    assert_eq!(
        token_row(app, &web.cookie).await,
        None,
        "the row is deleted"
    );
    app.get("/api/v1/auth/user", Some(&web.cookie))
        .await
        .problem(401);
}

async fn an_idle_session_expires(app: TestApp) {
    app.register("anna").await;
    let active = new_session(&app, "anna").await;
    age(&app, &active, IDLE_SECS, IDLE_SECS - 90).await;
    assert_eq!(active.get("/shops").await.status, 200);
    let used = token_row(&app, &active.cookie).await.unwrap().unwrap();
    assert!(
        used >= simba::domain::Timestamp::now().unix_seconds() - 5,
        "a use older than a minute is written again"
    );

    let idle = new_session(&app, "anna").await;
    age(&app, &idle, IDLE_SECS + 60, IDLE_SECS).await;
    assert_ended(&app, &idle).await;
    assert_eq!(
        active.get("/shops").await.status,
        200,
        "only that one ended"
    );
}

async fn a_session_expires_after_its_absolute_lifetime(app: TestApp) {
    app.register("anna").await;
    let young = new_session(&app, "anna").await;
    age(&app, &young, MAX_AGE_SECS - 60, 10).await;
    assert_eq!(young.get("/shops").await.status, 200);

    let old = new_session(&app, "anna").await;
    age(&app, &old, MAX_AGE_SECS, 10).await;
    assert_ended(&app, &old).await;
}

async fn ended_sessions_are_swept_though_their_cookie_never_comes_back(app: TestApp) {
    let seller = app.register("anna").await;
    let idle = new_session(&app, "anna").await;
    let old = new_session(&app, "anna").await;
    let running = new_session(&app, "anna").await;
    age(&app, &idle, IDLE_SECS + 60, IDLE_SECS).await;
    age(&app, &old, MAX_AGE_SECS, 10).await;
    let many = 2 * SWEEP_BATCH as usize + 1;
    insert_ended_sessions(&app, seller.id, many).await;
    let api_token = simba::auth::token::hash(&seller.token);
    let db = &app.state.db;
    db.query("UPDATE api_tokens SET created_at = ? WHERE token_hash = ?")
        .bind(simba::domain::Timestamp::now().unix_seconds() - 365 * 24 * 3600)
        .bind(&api_token)
        .execute(&db.pool)
        .await
        .unwrap();

    let restarted = app.another_process(short_sessions).await;
    let ended = "SELECT COUNT(*) FROM api_tokens WHERE token_hash LIKE 'ended-%'";
    for _ in 0..100 {
        let left: i64 = sqlx::Row::get(&db.query(ended).fetch_one(&db.pool).await.unwrap(), 0);
        if left == 0 && token_row(&app, &idle.cookie).await.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(token_row(&app, &idle.cookie).await, None, "swept when idle");
    assert_eq!(token_row(&app, &old.cookie).await, None, "swept when old");
    let left: i64 = sqlx::Row::get(&db.query(ended).fetch_one(&db.pool).await.unwrap(), 0);
    assert_eq!(left, 0, "swept in several batches");
    assert!(token_row(&app, &running.cookie).await.is_some());
    let api = db
        .query("SELECT COUNT(*) FROM api_tokens WHERE token_hash = ?")
        .bind(&api_token)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(sqlx::Row::get::<i64, _>(&api, 0), 1, "API tokens stay");
    restarted.stop().await;
}

/// Stores `count` dashboard sessions of `user_id` that ended long ago, in one statement.
async fn insert_ended_sessions(app: &TestApp, user_id: i64, count: usize) {
    let long_ago = simba::domain::Timestamp::now().unix_seconds() - 2 * MAX_AGE_SECS;
    let values = vec!["(?, ?, ?, 'dashboard')"; count].join(", ");
    let sql =
        format!("INSERT INTO api_tokens (user_id, token_hash, created_at, kind) VALUES {values}");
    let db = &app.state.db;
    let mut query = db.query(&sql);
    for i in 0..count {
        query = query
            .bind(user_id)
            .bind(format!("ended-{i}"))
            .bind(long_ago);
    }
    query.execute(&db.pool).await.unwrap();
}

async fn api_tokens_do_not_expire(app: TestApp) {
    app.register("anna").await;
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "anna", "password": PASSWORD}),
        )
        .await;
    let key = login.json()["token"].as_str().unwrap().to_owned();
    let now = simba::domain::Timestamp::now().unix_seconds();
    let db = &app.state.db;
    db.query("UPDATE api_tokens SET created_at = ?, last_used_at = NULL WHERE token_hash = ?")
        .bind(now - 365 * 24 * 3600)
        .bind(simba::auth::token::hash(&key))
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(app.get("/api/v1/auth/user", Some(&key)).await.status, 200);
    assert_eq!(
        token_row(&app, &key).await,
        Some(None),
        "nor are they written to"
    );
}

async fn an_api_token_in_the_session_cookie_is_not_a_session(app: TestApp) {
    let seller = app.register("anna").await;
    let api = app.get("/api/v1/auth/user", Some(&seller.token)).await;
    assert_eq!(api.status, 200, "and so the token is in the cache too");
    let mut web = Web::new(&app);
    web.cookie = seller.token.clone();
    let page = web.get("/shops").await;
    assert_eq!(page.status, 303, "{}", page.text);
    assert_eq!(page.header("location"), Some("/login?next=%2Fshops"));
    let api = app.get("/api/v1/auth/user", Some(&seller.token)).await;
    assert_eq!(api.status, 200, "the token still serves the API");
}

async fn a_last_use_that_cannot_be_written_fails_no_page(app: TestApp) {
    app.register("anna").await;
    let web = new_session(&app, "anna").await;
    age(&app, &web, IDLE_SECS, IDLE_SECS - 90).await;
    app.refuse("UPDATE", "api_tokens", "1 = 1").await;
    let page = web.get("/shops").await;
    assert_eq!(page.status, 200, "{}", page.text);
}

async fn a_session_whose_row_cannot_be_deleted_still_ends(app: TestApp) {
    app.register("anna").await;
    let web = new_session(&app, "anna").await;
    age(&app, &web, IDLE_SECS + 60, IDLE_SECS).await;
    app.refuse("DELETE", "api_tokens", "1 = 1").await;
    let page = web.get("/shops").await;
    assert_eq!(page.status, 303, "{}", page.text);
    assert_eq!(page.header("location"), Some("/login?next=%2Fshops"));
    app.get("/api/v1/auth/user", Some(&web.cookie))
        .await
        .problem(401);
    assert!(
        token_row(&app, &web.cookie).await.is_some(),
        "the row is still there"
    );
}
