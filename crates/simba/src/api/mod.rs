//! The HTTP API: routers per feature, the middleware every request passes (the dashboard's
//! too: `app` applies it to the composed router), and how the API answers the errors of the
//! layers below (`errors`).

pub(crate) mod accounts;
pub mod conditional;
pub mod cursor;
mod data_protection;
mod docs;
mod errors;
mod hooks;
pub mod json;
mod limits;
pub mod openapi;
mod ops;
mod pagination;
mod security_headers;
pub(crate) mod shipments;
pub(crate) mod shops;
pub(crate) mod sync_runs;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::error::ApiError;
use crate::state::AppState;

pub use crate::web::{PageParams, QueryParams, rfc3339};

/// Request bodies are small JSON documents; a larger one is refused before it is read (before
/// it is sent when its length is declared).
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

/// The API's routes: `/api/v1`, the operations endpoints and the docs.
pub fn routes() -> Router<AppState> {
    let api = Router::new()
        .merge(accounts::routes())
        .merge(shops::routes())
        .merge(shipments::routes())
        .merge(sync_runs::routes())
        .merge(webhooks::routes())
        .merge(data_protection::routes())
        .merge(openapi::routes())
        .layer(middleware::from_fn(conditional::tag_bodies));
    Router::new()
        .nest("/api/v1", api)
        .merge(hooks::routes())
        .merge(ops::routes())
        .merge(docs::routes())
}

/// What a `simba worker` serves: the operations endpoints only.
pub fn worker_routes() -> Router<AppState> {
    ops::routes()
}

/// The middleware every request passes, innermost first. The security headers are outside the
/// rest, so that the answers of the others (400, 408, 413, a panic's 500) carry them too, and
/// the metrics count those answers.
pub fn with_middleware(routes: Router, config: &Arc<Config>) -> Router {
    routes
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(middleware::from_fn_with_state(
            config.http.body_timeout,
            limits::limit_body,
        ))
        .layer(middleware::from_fn_with_state(
            config.clone(),
            limits::check_host,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
        }))
        .layer(middleware::from_fn(crate::telemetry::track_http))
        .layer(middleware::from_fn(security_headers::add))
        // The path without the query: a query can name a buyer (`/data-subjects?email=`), and
        // no personal data goes to the logs.
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &axum::extract::Request| {
                tracing::debug_span!(
                    "request",
                    method = %request.method(),
                    path = %request.uri().path(),
                )
            }),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn panics() -> &'static str {
        panic!("a handler's bug")
    }

    #[tokio::test]
    async fn a_panic_is_a_problem_500_with_the_security_headers() {
        use tower::ServiceExt;
        let config = Arc::new(Config::for_tests("sqlite::memory:"));
        let routes = Router::new().route("/panic", axum::routing::get(panics));
        let request = axum::http::Request::get("/panic")
            .header("host", "simba.test")
            .body(axum::body::Body::empty())
            .unwrap();
        let response = with_middleware(routes, &config)
            .oneshot(request)
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        let headers = response.headers();
        assert_eq!(headers["content-type"], "application/problem+json");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["cache-control"], "no-store");
    }
}

/// The integer id in a resource path. Anything else cannot name a resource, so it is a 404
/// (as Django's `<int:pk>` routes answer), in problem+json like every error.
#[derive(Debug, Clone, Copy)]
pub struct ResourceId(pub i64);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ResourceId {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let axum::extract::Path(id) = axum::extract::Path::<i64>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        Ok(ResourceId(id))
    }
}
