//! `/webhooks`: a seller's outbound webhook endpoints, their deliveries, a test event and
//! redelivery; and how an event's `data` is rendered (this API's own representations, so that
//! a webhook and the API say the same thing).

use axum::extract::{OriginalUri, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::cursor::{self, Walk};
use super::json::StrictJson;
use super::pagination::Page;
use super::shipments::ShipmentOut;
use super::shops::ShopOut;
use super::sync_runs::SyncRunOut;
use super::{PageParams, QueryParams, ResourceId, rfc3339};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::services::webhooks::{self as service, EndpointInput};
use crate::state::AppState;
use crate::store::keyset::Position;
use crate::store::shipments::ShipmentRow;
use crate::store::shops::Shop;
use crate::store::sync_runs::SyncRun;
use crate::store::webhooks::{self as store, Delivery, Endpoint};
use crate::webhooks::Render;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list_webhooks).post(create_webhook))
        .route(
            "/webhooks/{id}",
            get(get_webhook)
                .patch(update_webhook)
                .delete(delete_webhook),
        )
        .route("/webhooks/{id}/test", post(test_webhook))
        .route("/webhooks/{id}/deliveries", get(list_deliveries))
        .route(
            "/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            post(redeliver),
        )
}

/// An endpoint as the API shows it; never the secret, except once on creation.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookOut {
    id: i64,
    #[schema(example = "https://hooks.example.com/simba")]
    url: String,
    #[schema(example = json!(["shipments.changed", "sync_run.failed"]))]
    events: Vec<&'static str>,
    description: String,
    active: bool,
    /// When the current run of failed attempts began; `null` once an attempt succeeds. An
    /// endpoint failing for 5 days is turned off (`active: false`).
    #[schema(format = DateTime)]
    failing_since: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
}

impl From<&Endpoint> for WebhookOut {
    fn from(endpoint: &Endpoint) -> Self {
        WebhookOut {
            id: endpoint.id,
            url: endpoint.url.clone(),
            events: endpoint.events.names(),
            description: endpoint.description.clone(),
            active: endpoint.active,
            failing_since: endpoint.failing_since.map(rfc3339),
            created_at: rfc3339(endpoint.created_at),
        }
    }
}

/// A new endpoint, with the secret that signs its deliveries: shown only here.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhookOut {
    #[serde(flatten)]
    endpoint: WebhookOut,
    /// `whsec_` and the base64 HMAC key; store it now, it is never shown again.
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    secret: String,
}

/// The writable fields; `url` and `events` are required to create an endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookIn {
    /// `https://` (or `http://` with `SIMBA_WEBHOOK_ALLOW_PRIVATE=1`), to a public address.
    #[schema(max_length = 2048)]
    url: Option<String>,
    #[schema(example = json!(["shipments.changed"]))]
    events: Option<Vec<String>>,
    #[schema(max_length = 500)]
    description: Option<String>,
    active: Option<bool>,
}

impl From<WebhookIn> for EndpointInput {
    fn from(input: WebhookIn) -> Self {
        EndpointInput {
            url: input.url,
            events: input.events,
            description: input.description,
            active: input.active,
        }
    }
}

/// A delivery of an event to the endpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryOut {
    id: i64,
    event_id: String,
    #[serde(rename = "type")]
    #[schema(example = "shipments.changed")]
    kind: String,
    #[schema(pattern = "^(pending|delivered|failed)$")]
    status: &'static str,
    attempts: i64,
    last_status_code: Option<i64>,
    last_error: Option<String>,
    #[schema(format = DateTime)]
    next_attempt_at: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    delivered_at: Option<String>,
}

impl From<Delivery> for DeliveryOut {
    fn from(d: Delivery) -> Self {
        DeliveryOut {
            id: d.id,
            event_id: d.event_uid,
            kind: d.event_type,
            status: d.status.as_str(),
            attempts: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            next_attempt_at: d.next_attempt_at.map(rfc3339),
            created_at: rfc3339(d.created_at),
            delivered_at: d.delivered_at.map(rfc3339),
        }
    }
}

/// An inactive endpoint is sent nothing, so queuing for it would answer 202 for nothing.
fn active(endpoint: Endpoint) -> ApiResult<Endpoint> {
    match endpoint.active {
        true => Ok(endpoint),
        false => Err(ApiError::conflict(
            "the endpoint is not active: turn it on with PATCH {\"active\": true} first",
        )),
    }
}

async fn owned(state: &AppState, auth: &AuthUser, id: i64) -> ApiResult<Endpoint> {
    store::get_endpoint(&state.db, auth.user.id, id)
        .await?
        .ok_or(ApiError::NotFound)
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("token" = [])),
    params(("page" = Option<i64>, Query, minimum = 1), ("page_size" = Option<i64>, Query, minimum = 1, maximum = 500)),
    responses((status = 200, body = Page<WebhookOut>), (status = 401, body = Problem)))]
pub(super) async fn list_webhooks(
    State(state): State<AppState>,
    auth: AuthUser,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let query = QueryParams::parse(query.as_deref());
    if let Some(walk) = Walk::from_query(&query, &uri, auth.user.id, &state.cipher)? {
        let (rows, more) = store::walk_endpoints(&state.db, auth.user.id, walk.seek()).await?;
        let ends = cursor::ends(&rows, |endpoint| Position {
            key: None,
            id: endpoint.id,
        });
        let results: Vec<WebhookOut> = rows.iter().map(WebhookOut::from).collect();
        let context = (&state.cipher, &uri, &headers);
        return Ok(walk.answer(results, ends, more, context).into_response());
    }
    let params = PageParams::from_query(&query)?;
    let (rows, count) =
        store::list_endpoints(&state.db, auth.user.id, params.limit(), params.offset()).await?;
    let results = rows.iter().map(WebhookOut::from).collect();
    Ok(Json(Page::new(results, count, params, &uri, &headers)?).into_response())
}

#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("token" = [])), request_body = WebhookIn,
    responses((status = 201, body = CreatedWebhookOut), (status = 401, body = Problem),
        (status = 409, body = Problem, description = "the seller has 20 endpoints already"),
        (status = 422, body = Problem)))]
pub(super) async fn create_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    StrictJson(input): StrictJson<WebhookIn>,
) -> ApiResult<(StatusCode, Json<CreatedWebhookOut>)> {
    let (endpoint, secret) = service::create(
        &state.db,
        &state.cipher,
        &state.config.webhooks,
        auth.user.id,
        &input.into(),
    )
    .await?;
    let created = CreatedWebhookOut {
        endpoint: WebhookOut::from(&endpoint),
        secret: secret.expose_secret().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("token" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = WebhookOut), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn get_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(id): ResourceId,
) -> ApiResult<Json<WebhookOut>> {
    Ok(Json(WebhookOut::from(&owned(&state, &auth, id).await?)))
}

#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("token" = [])),
    params(("id" = i64, Path)), request_body = WebhookIn,
    responses((status = 200, body = WebhookOut), (status = 401, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn update_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(id): ResourceId,
    StrictJson(input): StrictJson<WebhookIn>,
) -> ApiResult<Json<WebhookOut>> {
    let endpoint = owned(&state, &auth, id).await?;
    let updated =
        service::update(&state.db, &state.config.webhooks, &endpoint, &input.into()).await?;
    Ok(Json(WebhookOut::from(&updated)))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("token" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn delete_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(id): ResourceId,
) -> ApiResult<StatusCode> {
    if !store::delete_endpoint(&state.db, auth.user.id, id).await? {
        return Err(ApiError::NotFound);
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", security(("token" = [])),
    params(("id" = i64, Path)),
    responses((status = 202, description = "a `webhook.test` event is queued for this endpoint"),
        (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the endpoint is not active: nothing would be sent")))]
pub(super) async fn test_webhook(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(id): ResourceId,
) -> ApiResult<StatusCode> {
    let endpoint = active(owned(&state, &auth, id).await?)?;
    service::send_test(&state.db, &endpoint).await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("token" = [])),
    params(("id" = i64, Path), ("page" = Option<i64>, Query, minimum = 1), ("page_size" = Option<i64>, Query, minimum = 1, maximum = 500)),
    responses((status = 200, body = Page<DeliveryOut>), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn list_deliveries(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(id): ResourceId,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let endpoint = owned(&state, &auth, id).await?;
    let query = QueryParams::parse(query.as_deref());
    if let Some(walk) = Walk::from_query(&query, &uri, auth.user.id, &state.cipher)? {
        let (rows, more) = store::walk_deliveries(&state.db, endpoint.id, walk.seek()).await?;
        let ends = cursor::ends(&rows, |delivery| Position {
            key: None,
            id: delivery.id,
        });
        let results: Vec<DeliveryOut> = rows.into_iter().map(DeliveryOut::from).collect();
        let context = (&state.cipher, &uri, &headers);
        return Ok(walk.answer(results, ends, more, context).into_response());
    }
    let params = PageParams::from_query(&query)?;
    let (rows, count) =
        store::list_deliveries(&state.db, endpoint.id, params.limit(), params.offset()).await?;
    let results = rows.into_iter().map(DeliveryOut::from).collect();
    Ok(Json(Page::new(results, count, params, &uri, &headers)?).into_response())
}

#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    security(("token" = [])), params(("id" = i64, Path), ("delivery_id" = i64, Path)),
    responses((status = 202, description = "the event is queued for this endpoint again, as a new delivery"),
        (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the endpoint is not active: nothing would be sent")))]
pub(super) async fn redeliver(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let (Ok(id), Ok(delivery_id)) = (id.parse(), delivery_id.parse()) else {
        return Err(ApiError::NotFound);
    };
    active(owned(&state, &auth, id).await?)?;
    store::redeliver(&state.db, auth.user.id, id, delivery_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(StatusCode::ACCEPTED)
}

/// Events' `data` as this API renders the same objects.
#[derive(Debug, Clone, Copy)]
pub struct ApiRender;

impl Render for ApiRender {
    fn run(&self, run: &SyncRun) -> Value {
        serde_json::to_value(SyncRunOut::from(run.clone())).unwrap_or_default()
    }

    fn shop(&self, shop: &Shop) -> Value {
        serde_json::to_value(ShopOut::from(shop)).unwrap_or_default()
    }

    fn shipment(&self, row: ShipmentRow) -> Value {
        ShipmentOut::from_row(row, None, None)
            .ok()
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or_default()
    }
}
