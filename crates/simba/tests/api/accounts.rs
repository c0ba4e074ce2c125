//! `/auth/*`.

use serde_json::json;

use crate::backend_tests;
use crate::helpers::TestApp;

backend_tests!(
    register_returns_the_user_and_a_working_token,
    register_rejects_bad_fields_naming_each,
    register_refuses_a_taken_username_or_email,
    login_accepts_the_username_or_the_email,
    login_with_a_wrong_password_is_401,
    repeated_failed_logins_are_throttled_with_retry_after,
    logout_revokes_the_token,
    requests_without_a_valid_token_are_401_with_www_authenticate,
    bearer_tokens_are_accepted_too,
    the_profile_can_be_read_and_updated,
    the_username_is_read_only,
    password_change_checks_the_old_password_and_revokes_other_tokens,
    deleting_the_account_removes_everything,
);

async fn register_returns_the_user_and_a_working_token(app: TestApp) {
    let response = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "anna", "email": "Anna@Example.com", "password": "correct horse",
                   "first_name": "Anna", "last_name": "de Vries"}),
        )
        .await;
    assert_eq!(response.status, 201, "{}", response.text);
    let body = response.json();
    assert_eq!(body["user"]["username"], "anna");
    assert_eq!(body["user"]["email"], "anna@example.com");
    assert_eq!(body["user"]["last_name"], "de Vries");
    assert!(body["user"]["date_joined"].as_str().unwrap().ends_with('Z'));
    assert!(body["user"].get("password").is_none());
    let token = body["token"].as_str().unwrap();
    assert!(token.len() >= 43);
    let me = app.get("/api/v1/auth/user", Some(token)).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["id"], body["user"]["id"]);
}

async fn register_rejects_bad_fields_naming_each(app: TestApp) {
    let response = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "has space", "email": "nope", "password": "short"}),
        )
        .await;
    let problem = response.problem(422);
    for field in ["username", "email", "password"] {
        assert!(problem["errors"][field].is_array(), "{problem}");
    }
    let same = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "bertje", "email": "b@example.com", "password": "Bertje"}),
        )
        .await
        .problem(422);
    assert_eq!(
        same["errors"]["password"][0],
        "must be at least 8 characters"
    );
    let same = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "bertjes1", "email": "b@example.com", "password": "BERTJES1"}),
        )
        .await
        .problem(422);
    assert_eq!(same["errors"]["password"][0], "must not be the username");
    let missing = app
        .post("/api/v1/auth/register", None, json!({"username": "x"}))
        .await
        .problem(422);
    assert!(
        missing["errors"].as_object().unwrap().len() == 1,
        "{missing}"
    );
}

async fn register_refuses_a_taken_username_or_email(app: TestApp) {
    app.register("anna").await;
    let again = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "anna", "email": "other@example.com", "password": "correct horse"}),
        )
        .await
        .problem(409);
    assert!(again["detail"].as_str().unwrap().contains("username"));
    let email = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "other", "email": "ANNA@example.com", "password": "correct horse"}),
        )
        .await
        .problem(409);
    assert!(email["detail"].as_str().unwrap().contains("email"));
}

async fn login_accepts_the_username_or_the_email(app: TestApp) {
    let seller = app.register("anna").await;
    for login in ["anna", "anna@example.com", "Anna@Example.com"] {
        let response = app
            .post(
                "/api/v1/auth/login",
                None,
                json!({"username": login, "password": "correct horse battery"}),
            )
            .await;
        assert_eq!(response.status, 200, "{login}: {}", response.text);
        let body = response.json();
        assert_eq!(body["user"]["id"], seller.id);
        assert_ne!(body["token"], seller.token.as_str());
    }
}

async fn login_with_a_wrong_password_is_401(app: TestApp) {
    app.register("anna").await;
    for (login, password) in [
        ("anna", "wrong password"),
        ("nobody", "correct horse battery"),
    ] {
        app.post(
            "/api/v1/auth/login",
            None,
            json!({"username": login, "password": password}),
        )
        .await
        .problem(401);
    }
}

async fn repeated_failed_logins_are_throttled_with_retry_after(app: TestApp) {
    app.register("anna").await;
    for _ in 0..5 {
        app.post(
            "/api/v1/auth/login",
            None,
            json!({"username": "anna", "password": "wrong!!!"}),
        )
        .await
        .problem(401);
    }
    let throttled = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "anna", "password": "correct horse battery"}),
        )
        .await;
    throttled.problem(429);
    let retry_after: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!(retry_after > 0 && retry_after <= 15 * 60);
}

async fn logout_revokes_the_token(app: TestApp) {
    let seller = app.register("anna").await;
    assert_eq!(
        app.post("/api/v1/auth/logout", Some(&seller.token), json!({}))
            .await
            .status,
        204
    );
    app.get("/api/v1/auth/user", Some(&seller.token))
        .await
        .problem(401);
    app.post("/api/v1/auth/logout", Some(&seller.token), json!({}))
        .await
        .problem(401);
}

async fn requests_without_a_valid_token_are_401_with_www_authenticate(app: TestApp) {
    for token in [None, Some("not-a-token")] {
        let response = app.get("/api/v1/auth/user", token).await;
        response.problem(401);
        assert_eq!(response.header("www-authenticate"), Some("Token"));
    }
    let basic = app
        .send(
            app.client
                .get(app.url("/api/v1/shops"))
                .header("Authorization", "Basic YTpi"),
        )
        .await;
    basic.problem(401);
}

async fn bearer_tokens_are_accepted_too(app: TestApp) {
    let seller = app.register("anna").await;
    let response = app
        .send(
            app.client
                .get(app.url("/api/v1/auth/user"))
                .header("Authorization", format!("Bearer {}", seller.token)),
        )
        .await;
    assert_eq!(response.status, 200);
}

async fn the_profile_can_be_read_and_updated(app: TestApp) {
    let seller = app.register("anna").await;
    let patched = app
        .patch(
            "/api/v1/auth/user",
            Some(&seller.token),
            json!({"first_name": "Anna"}),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.json()["first_name"], "Anna");
    assert_eq!(patched.json()["email"], "anna@example.com");
    let put = app
        .put(
            "/api/v1/auth/user",
            Some(&seller.token),
            json!({"email": "NEW@example.com", "last_name": "Jansen"}),
        )
        .await;
    assert_eq!(put.status, 200);
    let me = app
        .get("/api/v1/auth/user", Some(&seller.token))
        .await
        .json();
    assert_eq!(me["email"], "new@example.com");
    assert_eq!(me["first_name"], "Anna");
    assert_eq!(me["last_name"], "Jansen");
    app.patch(
        "/api/v1/auth/user",
        Some(&seller.token),
        json!({"email": "bad"}),
    )
    .await
    .problem(422);
    let other = app.register("bert").await;
    app.patch(
        "/api/v1/auth/user",
        Some(&other.token),
        json!({"email": "new@example.com"}),
    )
    .await
    .problem(409);
}

async fn the_username_is_read_only(app: TestApp) {
    let seller = app.register("anna").await;
    let same = app
        .patch(
            "/api/v1/auth/user",
            Some(&seller.token),
            json!({"username": "anna"}),
        )
        .await;
    assert_eq!(same.status, 200);
    let changed = app
        .patch(
            "/api/v1/auth/user",
            Some(&seller.token),
            json!({"username": "bert"}),
        )
        .await
        .problem(422);
    assert_eq!(changed["errors"]["username"][0], "is read-only");
}

async fn password_change_checks_the_old_password_and_revokes_other_tokens(app: TestApp) {
    let seller = app.register("anna").await;
    let second = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "anna", "password": "correct horse battery"}),
        )
        .await
        .json()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let wrong = app
        .post(
            "/api/v1/auth/password/change",
            Some(&seller.token),
            json!({"old_password": "not it at all", "new_password": "new password 1"}),
        )
        .await
        .problem(422);
    assert!(wrong["errors"]["old_password"].is_array());
    let weak = app
        .post(
            "/api/v1/auth/password/change",
            Some(&seller.token),
            json!({"old_password": "correct horse battery", "new_password": "short"}),
        )
        .await
        .problem(422);
    assert!(weak["errors"]["new_password"].is_array());
    let changed = app
        .post(
            "/api/v1/auth/password/change",
            Some(&seller.token),
            json!({"old_password": "correct horse battery", "new_password": "new password 1"}),
        )
        .await;
    assert_eq!(changed.status, 204, "{}", changed.text);
    assert_eq!(
        app.get("/api/v1/auth/user", Some(&seller.token))
            .await
            .status,
        200
    );
    app.get("/api/v1/auth/user", Some(&second))
        .await
        .problem(401);
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"username": "anna", "password": "correct horse battery"}),
    )
    .await
    .problem(401);
    let new_login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "anna", "password": "new password 1"}),
        )
        .await;
    assert_eq!(new_login.status, 200);
}

async fn deleting_the_account_removes_everything(app: TestApp) {
    let seller = app.register("anna").await;
    let shop = app.create_shop(&seller, "main").await;
    app.store_shipments(&seller, shop, 3).await;
    assert_eq!(
        app.delete("/api/v1/auth/user", Some(&seller.token))
            .await
            .status,
        204
    );
    app.get("/api/v1/auth/user", Some(&seller.token))
        .await
        .problem(401);
    let db = &app.state.db;
    for table in [
        "users",
        "shops",
        "shipments",
        "shipment_items",
        "api_tokens",
    ] {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let count: i64 = sqlx::Row::get(&db.query(&sql).fetch_one(&db.pool).await.unwrap(), 0);
        assert_eq!(count, 0, "{table} still has rows");
    }
    let again = app.register("anna").await;
    assert_ne!(again.id, seller.id);
}
