//! `/docs`: Swagger UI over `/api/v1/openapi.json`, its assets compiled into the binary
//! (vendored from the npm package swagger-ui-dist 5.35.0) so nothing is fetched from a CDN.

use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;

use crate::state::AppState;

const BUNDLE_JS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const CSS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");

const INDEX: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Simba API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>
"#;

const INIT_JS: &str = r##"window.ui = SwaggerUIBundle({
  url: "/api/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true
});
"##;

/// Assets are immutable per build, so browsers may keep them for a day.
const CACHE: &str = "public, max-age=86400";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/docs", get(|| async { Html(INDEX) }))
        .route("/docs/", get(|| async { Html(INDEX) }))
        .route(
            "/docs/swagger-ui-bundle.js",
            get(|| async { asset("text/javascript; charset=utf-8", BUNDLE_JS) }),
        )
        .route(
            "/docs/init.js",
            get(|| async { asset("text/javascript; charset=utf-8", INIT_JS.as_bytes()) }),
        )
        .route(
            "/docs/swagger-ui.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
}

fn asset(content_type: &'static str, body: &'static [u8]) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, CACHE),
        ],
        body,
    )
}
