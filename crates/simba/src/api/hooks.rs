//! `POST /hooks/bol/{token}`: the marketplace's push notifications. Outside `/api/v1`, with no
//! user authentication: the marketplace's signature is the proof, and the opaque token only
//! says which shop's subscription the notification came through. It answers at once; the
//! detail fetch is the push worker's.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;

use crate::engine_metrics::push_event;
use crate::error::{ApiError, ApiResult};
use crate::services::push::{self as push_service, Received, Refused};
use crate::state::AppState;

/// bol's notifications are a few hundred bytes.
const BODY_LIMIT_BYTES: usize = 16 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/hooks/bol/{token}", post(receive))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
}

#[utoipa::path(post, path = "/hooks/bol/{token}", tag = "push",
    params(("token" = String, Path, description = "The shop's opaque hook id")),
    request_body(content = String, description = "bol's notification, signed in the `signature` header", content_type = "application/json"),
    responses((status = 204, description = "Recorded (or a duplicate, or not about a shipment)"),
        (status = 401, body = crate::error::Problem, description = "Unsigned, forged, malformed or stale"),
        (status = 404, body = crate::error::Problem), (status = 413, body = crate::error::Problem)))]
pub(super) async fn receive(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let signature = bol::signature::SIGNATURE_HEADERS
        .iter()
        .find_map(|name| headers.get(*name))
        .and_then(|v| v.to_str().ok());
    let max_age = state.config.engine.push.max_event_age;
    match push_service::receive(&state.db, &state.engine, &token, signature, &body, max_age).await {
        Ok(received) => {
            push_event(match received {
                Received::Accepted => "accepted",
                Received::Duplicate => "duplicate",
                Received::Ignored => "ignored",
            });
            Ok(StatusCode::NO_CONTENT)
        }
        Err(Refused::NoHook) => Err(ApiError::NotFound),
        Err(Refused::Rejected(_)) => {
            push_event("rejected");
            Err(ApiError::Unauthenticated)
        }
        Err(Refused::Store(e)) => Err(e.into()),
    }
}
