//! `/healthz`, `/readyz`, `/metrics`, `/api/v1/openapi.json`, `/docs`.

use crate::backend_tests;
use crate::helpers::{self, Backend, TestApp};

backend_tests!(
    health_and_readiness_answer,
    metrics_count_requests_by_route_and_status,
    the_openapi_document_covers_every_endpoint_and_the_problem_shape,
    the_docs_are_served_from_the_binary,
);

async fn health_and_readiness_answer(app: TestApp) {
    assert_eq!(app.get("/healthz", None).await.status, 200);
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["database"], "ok");
    app.state.db.pool.close().await;
    let down = app.get("/readyz", None).await;
    assert_eq!(down.status, 503);
}

async fn metrics_count_requests_by_route_and_status(app: TestApp) {
    let seller = app.register("metrics").await;
    app.get("/api/v1/shops/99999", Some(&seller.token)).await;
    let text = app.get("/metrics", None).await.text;
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total")
            && l.contains(r#"route="/api/v1/shops/{id}""#)
            && l.contains(r#"status="404""#)),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
}

async fn the_openapi_document_covers_every_endpoint_and_the_problem_shape(app: TestApp) {
    let doc = app.get("/api/v1/openapi.json", None).await.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/api/v1/auth/register", &["post"][..]),
        ("/api/v1/auth/login", &["post"]),
        ("/api/v1/auth/logout", &["post"]),
        ("/api/v1/auth/user", &["get", "put", "patch", "delete"]),
        ("/api/v1/auth/password/change", &["post"]),
        ("/api/v1/shops", &["get", "post"]),
        ("/api/v1/shops/{id}", &["get", "put", "patch", "delete"]),
        ("/api/v1/shops/{id}/shipments", &["get"]),
        ("/api/v1/shops/{id}/sync-runs", &["get"]),
        ("/api/v1/sync-runs/{id}", &["get"]),
        ("/api/v1/shipments", &["get"]),
        ("/api/v1/shipments/{id}", &["get"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
    ] {
        for method in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(*method)).is_some(),
                "{method} {path} missing"
            );
        }
    }
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["securitySchemes"]["token"].is_object());
}

async fn the_docs_are_served_from_the_binary(app: TestApp) {
    let page = app.get("/docs", None).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains("/api/v1/openapi.json") || page.text.contains("/docs/init.js"));
    assert!(
        !page.text.contains("https://"),
        "the docs page references an external host"
    );
    let js = app.get("/docs/swagger-ui-bundle.js", None).await;
    assert_eq!(js.status, 200);
    assert!(js.text.len() > 100_000);
    let init = app.get("/docs/init.js", None).await;
    assert!(init.text.contains("/api/v1/openapi.json"));
    assert_eq!(app.get("/docs/swagger-ui.css", None).await.status, 200);
}

/// The series of `http_requests_total` in a `/metrics` text.
fn request_series(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .collect()
}

#[tokio::test]
async fn made_up_methods_do_not_create_metric_series() {
    helpers::run(Backend::Sqlite, |app| async move {
        for n in 1..=3 {
            let method = reqwest::Method::from_bytes(format!("XMETHOD{n}").as_bytes()).unwrap();
            for path in ["/healthz".to_owned(), format!("/made-up-path-{n}")] {
                app.send(app.client.request(method.clone(), app.url(&path)))
                    .await;
            }
        }
        let text = app.get("/metrics", None).await.text;
        let series = request_series(&text);
        assert!(
            !series
                .iter()
                .any(|l| l.contains("XMETHOD") || l.contains("made-up-path")),
            "{series:#?}"
        );
        for route in ["/healthz", "unmatched"] {
            assert!(
                series.iter().any(|l| l.contains(r#"method="other""#)
                    && l.contains(&format!(r#"route="{route}""#))),
                "{series:#?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn metrics_require_the_token_when_one_is_set() {
    let token = "metrics-token-0123456789";
    helpers::run_with(
        Backend::Sqlite,
        |config| config.metrics_token = Some(token.to_owned().into()),
        |app| async move {
            let with = |authorization: String| {
                app.client
                    .get(app.url("/metrics"))
                    .header("authorization", authorization)
            };
            let refused = app.get("/metrics", None).await;
            assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
            refused.problem(401);
            for wrong in [
                "Bearer wrong".to_owned(),
                format!("Bearer {}", &token[..token.len() - 1]),
                format!("Bearer {token}x"),
                format!("Token {token}"),
            ] {
                app.send(with(wrong.clone())).await.problem(401);
            }
            let metrics = app.send(with(format!("Bearer {token}"))).await;
            assert_eq!(metrics.status, 200);
            assert!(
                metrics
                    .header("content-type")
                    .is_some_and(|t| t.starts_with("text/plain"))
            );
        },
    )
    .await;
}
