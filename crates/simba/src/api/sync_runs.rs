//! `/sync-runs` and `/shops/{id}/sync-runs`: the runs of a seller's shops and their progress.

use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::pagination::Page;
use super::{PageParams, QueryParams, ResourceId, rfc3339};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::store::shops;
use crate::store::sync_runs::{self, SyncRun};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/shops/{id}/sync-runs", get(list_runs))
        .route("/sync-runs/{id}", get(get_run))
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
            mode: run.mode,
            trigger: run.trigger,
            status: run.status,
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
    params(("id" = i64, Path), ("page" = Option<i64>, Query), ("page_size" = Option<i64>, Query)),
    responses((status = 200, body = Page<SyncRunOut>), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn list_runs(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(shop_id): ResourceId,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Json<Page<SyncRunOut>>> {
    shops::get(&state.db, auth.user.id, shop_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let params = PageParams::from_query(&QueryParams::parse(query.as_deref()))?;
    let (runs, count) = sync_runs::list_for_shop(
        &state.db,
        auth.user.id,
        shop_id,
        params.limit(),
        params.offset(),
    )
    .await?;
    let results = runs.into_iter().map(SyncRunOut::from).collect();
    Ok(Json(Page::new(results, count, params, &uri, &headers)?))
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
