//! The HTTP API: routers per feature, the middleware every request passes, and the helpers
//! the handlers share (query parameters, pagination, timestamps).

pub(crate) mod accounts;
mod docs;
pub mod json;
mod limits;
pub mod openapi;
mod ops;
pub mod page_cache;
mod pagination;
mod security_headers;
pub(crate) mod shipments;
pub(crate) mod shops;
pub(crate) mod sync_runs;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::IntoResponse;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::app::AppState;
use crate::config::Config;
use crate::error::ApiError;

pub use pagination::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, PageParams};

/// Request bodies are small JSON documents; a larger one is refused before it is read (before
/// it is sent when its length is declared).
pub const BODY_LIMIT_BYTES: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    let config = state.config.clone();
    let api = Router::new()
        .merge(accounts::routes())
        .merge(shops::routes())
        .merge(shipments::routes())
        .merge(sync_runs::routes())
        .merge(openapi::routes());
    let routes = Router::new()
        .nest("/api/v1", api)
        .merge(ops::routes())
        .merge(docs::routes())
        .merge(crate::dashboard::routes())
        .fallback(crate::dashboard::not_found)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .with_state(state);
    with_middleware(routes, &config)
}

/// The middleware every request passes, innermost first. The security headers are outside the
/// rest, so that the answers of the others (400, 408, 413, a panic's 500) carry them too, and
/// the metrics count those answers.
fn with_middleware(routes: Router, config: &Arc<Config>) -> Router {
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
        .layer(TraceLayer::new_for_http())
}

/// A timestamp as API.md writes it: RFC 3339 in UTC, whole seconds.
pub fn rfc3339(unix_seconds: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix_seconds)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Query parameters by name; the last occurrence of a repeated name wins.
#[derive(Debug, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> QueryParams {
        QueryParams(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// A parameter's value; an empty value counts as absent, as in DRF's filters.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// Parses a parameter, answering 400 with the parameter named when it is malformed.
    pub fn parse_with<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ApiError> {
        self.get(name)
            .map(|v| parse(v).map_err(|message| ApiError::bad_param(name, message)))
            .transpose()
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> QueryParams {
        QueryParams(pairs)
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_seconds() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_774_500), "2026-11-27T10:15:00Z");
    }

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

    #[test]
    fn query_parameters_decode_and_the_last_wins() {
        let q = QueryParams::parse(Some("a=1&b=x%20y&a=2&c="));
        assert_eq!(q.get("a"), Some("2"));
        assert_eq!(q.get("b"), Some("x y"));
        assert_eq!(q.get("c"), None);
        assert_eq!(q.get("d"), None);
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
