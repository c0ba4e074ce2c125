//! The headers every answer carries: API JSON, errors of every kind, the dashboard, `/docs`,
//! the operations endpoints and the compiled-in assets. Headers do not depend on the database,
//! so these run on SQLite only.

use crate::helpers::{self, Backend};

#[tokio::test]
async fn every_answer_says_nosniff_and_html_cannot_be_framed() {
    helpers::run(Backend::Sqlite, |app| async move {
        let seller = app.register("anna").await;
        let html = |path: &str| app.client.get(app.url(path)).header("accept", "text/html");
        let oversized = app
            .client
            .post(app.url("/api/v1/shops"))
            .header("Authorization", format!("Token {}", seller.token))
            .header("content-type", "application/json")
            .body(format!(r#"{{"name": "{}"}}"#, "x".repeat(100_000)));
        let answers = [
            ("/healthz", app.get("/healthz", None).await),
            ("/readyz", app.get("/readyz", None).await),
            ("/metrics", app.get("/metrics", None).await),
            ("openapi", app.get("/api/v1/openapi.json", None).await),
            ("/docs", app.get("/docs", None).await),
            (
                "docs asset",
                app.get("/docs/swagger-ui-bundle.js", None).await,
            ),
            (
                "dashboard asset",
                app.get("/static/dashboard.css", None).await,
            ),
            (
                "a list",
                app.get("/api/v1/shops", Some(&seller.token)).await,
            ),
            ("login page", app.send(html("/login")).await),
            ("HTML 404", app.send(html("/nothing-here")).await),
            ("API 404", app.get("/api/v1/nothing-here", None).await),
            ("401", app.get("/api/v1/shops", None).await),
            (
                "405",
                app.send(app.client.delete(app.url("/api/v1/auth/login")))
                    .await,
            ),
            ("413", app.send(oversized).await),
        ];
        for (what, answer) in &answers {
            assert_eq!(
                answer.header("x-content-type-options"),
                Some("nosniff"),
                "{what}"
            );
            assert_eq!(answer.header("x-frame-options"), Some("DENY"), "{what}");
            let policy = answer.header("content-security-policy").unwrap_or_default();
            assert!(
                policy.contains("frame-ancestors 'none'"),
                "{what}: {policy:?}"
            );
            assert_eq!(
                answer.header("referrer-policy"),
                Some("same-origin"),
                "{what}"
            );
        }
        let statuses: Vec<u16> = answers.iter().map(|(_, answer)| answer.status).collect();
        assert_eq!(
            statuses,
            [
                200, 200, 200, 200, 200, 200, 200, 200, 200, 404, 404, 401, 405, 413
            ]
        );
        for (what, answer) in &answers[8..10] {
            let content_type = answer.header("content-type").unwrap_or_default();
            assert!(
                content_type.starts_with("text/html"),
                "{what}: {content_type}"
            );
        }
        let docs = &answers[4].1;
        assert!(
            docs.header("content-type")
                .unwrap()
                .starts_with("text/html")
        );
    })
    .await;
}

#[tokio::test]
async fn authenticated_answers_are_not_stored() {
    helpers::run(Backend::Sqlite, |app| async move {
        let registered = app
            .post(
                "/api/v1/auth/register",
                None,
                serde_json::json!({"username": "anna", "email": "anna@example.com",
                                   "password": "correct horse battery"}),
            )
            .await;
        let token = registered.json()["token"].as_str().unwrap().to_owned();
        let logged_in = app
            .post(
                "/api/v1/auth/login",
                None,
                serde_json::json!({"username": "anna", "password": "correct horse battery"}),
            )
            .await;
        let session = |path: &str| {
            app.client
                .get(app.url(path))
                .header("accept", "text/html")
                .header("cookie", format!("simba_session={token}"))
        };
        let answers = [
            ("register", registered),
            ("login", logged_in),
            ("user", app.get("/api/v1/auth/user", Some(&token)).await),
            ("shops", app.get("/api/v1/shops", Some(&token)).await),
            ("a 404", app.get("/api/v1/shops/999999", Some(&token)).await),
            ("a 401", app.get("/api/v1/shops", Some("not-a-token")).await),
            ("dashboard page", app.send(session("/shops")).await),
            ("login form", app.send(session("/login")).await),
        ];
        for (what, answer) in &answers {
            assert_eq!(answer.header("cache-control"), Some("no-store"), "{what}");
        }
        assert!(answers[7].1.headers.contains_key("set-cookie"));
        let asset = app.send(session("/static/dashboard.css")).await;
        assert_eq!(
            asset.header("cache-control"),
            Some("public, max-age=86400"),
            "assets are the same for everyone and stay cacheable"
        );
    })
    .await;
}
