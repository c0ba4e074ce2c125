//! `/sync-runs` and `/shops/{id}/sync-runs`: the runs of a seller's shops and their progress.

use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cursor::{self, Walk};
use super::json::OptionalJson;
use super::pagination::Page;
use super::{PageParams, QueryParams, ResourceId, rfc3339};
use crate::auth::AuthUser;
use crate::domain::ValidationErrors;
use crate::domain::{Mode, Trigger};
use crate::error::{ApiError, ApiResult, Problem};
use crate::state::AppState;
use crate::store::keyset::Position;
use crate::store::shops;
use crate::store::sync_runs::{self, CancelOutcome, SyncRun};
use crate::sync::{self, QueueError};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/shops/{id}/sync", post(start_sync))
        .route("/shops/{id}/sync-runs", get(list_runs))
        .route("/sync-runs/{id}", get(get_run))
        .route("/sync-runs/{id}/cancel", post(cancel_run))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncIn {
    /// `full` or `incremental`; default: full until a sync has succeeded, then incremental.
    #[schema(pattern = "^(full|incremental)$")]
    mode: Option<String>,
}

/// Starts a sync of the shop: the run is created queued, as the shop's active run, in one
/// transaction; a worker picks it up at once.
#[utoipa::path(post, path = "/api/v1/shops/{id}/sync", tag = "syncs", security(("token" = [])),
    params(("id" = i64, Path)), request_body(content = Option<SyncIn>, description = "optional"),
    responses((status = 202, body = SyncRunOut), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "a run is already queued or running; `active_run_id` names it"),
        (status = 422, body = Problem)))]
pub(super) async fn start_sync(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(shop_id): ResourceId,
    OptionalJson(body): OptionalJson<SyncIn>,
) -> ApiResult<(StatusCode, Json<SyncRunOut>)> {
    let mode = body
        .and_then(|b| b.mode)
        .map(|mode| Mode::parse(&mode).map_err(|m| ValidationErrors::single("mode", m)))
        .transpose()?;
    let run = queue_sync(&state, auth.user.id, shop_id, mode).await?;
    Ok((StatusCode::ACCEPTED, Json(run.into())))
}

/// Queues a sync of the seller's shop in `mode` (API.md's default when `None`) and wakes a
/// worker.
async fn queue_sync(
    state: &AppState,
    user_id: i64,
    shop_id: i64,
    mode: Option<Mode>,
) -> ApiResult<SyncRun> {
    shops::get(&state.db, user_id, shop_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    sync::queue_run(&state.engine, shop_id, mode, Trigger::Api)
        .await
        .map_err(|e| match e {
            QueueError::NoShop(_) => ApiError::NotFound,
            QueueError::Active(active) => ApiError::Conflict {
                detail: format!("Sync run {active} is already queued or running for this shop."),
                active_run_id: Some(active),
            },
            QueueError::Store(e) => e.into(),
        })
}

/// Cancels a queued or running run; it ends as `cancelled` after the step in flight.
#[utoipa::path(post, path = "/api/v1/sync-runs/{id}/cancel", tag = "syncs", security(("token" = [])),
    params(("id" = i64, Path)),
    responses((status = 202, body = SyncRunOut), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem, description = "the run has already finished")))]
pub(super) async fn cancel_run(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(run_id): ResourceId,
) -> ApiResult<(StatusCode, Json<SyncRunOut>)> {
    let run = match sync_runs::cancel(&state.db, auth.user.id, run_id).await? {
        CancelOutcome::NotFound => return Err(ApiError::NotFound),
        CancelOutcome::AlreadyEnded(status) => {
            return Err(ApiError::conflict(format!("The run has already {status}.")));
        }
        CancelOutcome::Cancelled(run) => *run,
    };
    Ok((StatusCode::ACCEPTED, Json(run.into())))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressOut {
    pages_fetched: i64,
    shipments_seen: i64,
    details_fetched: i64,
    shipments_stored: i64,
    details_pending: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ApiCallsOut {
    total: i64,
    list: i64,
    detail: i64,
    token: i64,
    rate_limited: i64,
    errors: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SyncRunOut {
    id: i64,
    shop_id: i64,
    #[schema(example = "full")]
    mode: String,
    #[schema(example = "api")]
    trigger: String,
    /// queued, running, succeeded, failed or cancelled.
    #[schema(example = "running")]
    status: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    started_at: Option<String>,
    #[schema(format = DateTime)]
    finished_at: Option<String>,
    progress: ProgressOut,
    api_calls: ApiCallsOut,
    error: Option<String>,
}

impl From<SyncRun> for SyncRunOut {
    fn from(run: SyncRun) -> Self {
        SyncRunOut {
            id: run.id,
            shop_id: run.shop_id,
            mode: run.mode.as_str().to_owned(),
            trigger: run.trigger.as_str().to_owned(),
            status: run.status.as_str().to_owned(),
            created_at: rfc3339(run.created_at),
            started_at: run.started_at.map(rfc3339),
            finished_at: run.finished_at.map(rfc3339),
            progress: ProgressOut {
                pages_fetched: run.progress.pages_fetched,
                shipments_seen: run.progress.shipments_seen,
                details_fetched: run.progress.details_fetched,
                shipments_stored: run.progress.shipments_stored,
                details_pending: run.progress.details_pending,
            },
            api_calls: ApiCallsOut {
                total: run.api_calls.total(),
                list: run.api_calls.list,
                detail: run.api_calls.detail,
                token: run.api_calls.token,
                rate_limited: run.api_calls.rate_limited,
                errors: run.api_calls.errors,
            },
            error: run.error,
        }
    }
}

#[utoipa::path(get, path = "/api/v1/shops/{id}/sync-runs", tag = "syncs", security(("token" = [])),
    params(("id" = i64, Path), ("page" = Option<i64>, Query, minimum = 1), ("page_size" = Option<i64>, Query, minimum = 1, maximum = 500)),
    responses((status = 200, body = Page<SyncRunOut>), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn list_runs(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(shop_id): ResourceId,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    shops::get(&state.db, auth.user.id, shop_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let query = QueryParams::parse(query.as_deref());
    if let Some(walk) = Walk::from_query(&query, &uri, auth.user.id, &state.cipher)? {
        let (runs, more) =
            sync_runs::walk_for_shop(&state.db, auth.user.id, shop_id, walk.seek()).await?;
        let ends = cursor::ends(&runs, |run| Position {
            key: None,
            id: run.id,
        });
        let results: Vec<SyncRunOut> = runs.into_iter().map(SyncRunOut::from).collect();
        let context = (&state.cipher, &uri, &headers);
        return Ok(walk.answer(results, ends, more, context).into_response());
    }
    let params = PageParams::from_query(&query)?;
    let (runs, count) = sync_runs::list_for_shop(
        &state.db,
        auth.user.id,
        shop_id,
        params.limit(),
        params.offset(),
    )
    .await?;
    let results = runs.into_iter().map(SyncRunOut::from).collect();
    Ok(Json(Page::new(results, count, params, &uri, &headers)?).into_response())
}

#[utoipa::path(get, path = "/api/v1/sync-runs/{id}", tag = "syncs", security(("token" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = SyncRunOut), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn get_run(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(run_id): ResourceId,
) -> ApiResult<Json<SyncRunOut>> {
    let run = sync_runs::get(&state.db, auth.user.id, run_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(run.into()))
}
