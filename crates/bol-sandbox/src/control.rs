//! Control endpoints under `/_sandbox/`: stats, reset, arrivals, token revocation, faults, and
//! the push switches (delivery faults, key rotation, disabling subscriptions, transport updates).
//! They are never rate-limited, faulted or counted.

use crate::{faults::Faults, push::PushFaults, state::Shared, stats::Stats, token};
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/reset", post(reset))
        .route("/_sandbox/shipments", post(add_shipments))
        .route("/_sandbox/revoke-tokens", post(revoke))
        .route("/_sandbox/faults", get(get_faults).put(put_faults))
        .route("/_sandbox/push", get(get_push).put(put_push))
        .route("/_sandbox/push/rotate-keys", post(rotate_keys))
        .route("/_sandbox/push/disable", post(disable_push))
        .route(
            "/_sandbox/push/transport-updates",
            get(get_transport_updates).put(put_transport_updates),
        )
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<Stats> {
    Json(shared.stats())
}

async fn reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.reset_stats();
    StatusCode::NO_CONTENT
}

/// New arrivals; without `account` every account gets them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Arrivals {
    account: Option<String>,
    #[serde(default)]
    fbr: u32,
    #[serde(default)]
    fbb: u32,
}

#[derive(Serialize)]
struct Error {
    error: String,
}

fn bad_request(error: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(Error { error })).into_response()
}

async fn add_shipments(State(shared): State<Arc<Shared>>, Json(body): Json<Arrivals>) -> Response {
    let targets: Vec<String> = match body.account {
        Some(id) => vec![id],
        None => shared
            .accounts
            .iter()
            .map(|a| a.client_id.clone())
            .collect(),
    };
    for id in &targets {
        if !shared.add_shipments(id, u64::from(body.fbr), u64::from(body.fbb)) {
            let error = format!("no account with client id '{id}'");
            return (StatusCode::NOT_FOUND, Json(Error { error })).into_response();
        }
    }
    Json(shared.stats()).into_response()
}

async fn revoke(State(shared): State<Arc<Shared>>) -> StatusCode {
    token::revoke_all(&shared);
    StatusCode::NO_CONTENT
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Json<Faults> {
    Json(shared.faults.get())
}

async fn put_faults(State(shared): State<Arc<Shared>>, Json(faults): Json<Faults>) -> Response {
    if let Err(e) = faults.validate() {
        return bad_request(e);
    }
    shared.faults.set(&faults);
    Json(faults).into_response()
}

async fn get_push(State(shared): State<Arc<Shared>>) -> Json<PushFaults> {
    Json(shared.push.faults())
}

async fn put_push(State(shared): State<Arc<Shared>>, Json(faults): Json<PushFaults>) -> Response {
    if let Err(e) = faults.validate() {
        return bad_request(e);
    }
    shared.push.set_faults(faults.clone());
    Json(faults).into_response()
}

async fn rotate_keys(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.push.rotate_keys().await;
    StatusCode::NO_CONTENT
}

async fn disable_push(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.push.disable_all();
    StatusCode::NO_CONTENT
}

/// Whether transport changes are pushed; a switch of its own rather than a field of
/// [`PushFaults`], since it changes what happens, not how deliveries fail.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TransportUpdates {
    enabled: bool,
}

async fn get_transport_updates(State(shared): State<Arc<Shared>>) -> Json<TransportUpdates> {
    Json(TransportUpdates {
        enabled: shared.push.transport_updates(),
    })
}

async fn put_transport_updates(
    State(shared): State<Arc<Shared>>,
    Json(body): Json<TransportUpdates>,
) -> Json<TransportUpdates> {
    shared.push.set_transport_updates(body.enabled);
    Json(body)
}
