//! `/shops`: CRUD of a seller's marketplace credentials. The secret is write-only.

use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cursor::{self, Walk};
use super::json::StrictJson;
use super::pagination::Page;
use super::{PageParams, QueryParams, ResourceId, rfc3339};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::services::shops::{self as shop_service, REQUIRED_TO_REPLACE, ShopInput};
use crate::state::AppState;
use crate::store::keyset::Position;
use crate::store::push;
use crate::store::shops::{self, Shop};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/shops", get(list_shops).post(create_shop))
        .route(
            "/shops/{id}",
            get(get_shop)
                .put(replace_shop)
                .patch(update_shop)
                .delete(delete_shop),
        )
}

/// A shop as the API shows it; never the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShopOut {
    id: i64,
    name: String,
    #[schema(example = "bol")]
    marketplace: String,
    client_id: String,
    auto_sync: bool,
    sync_interval_minutes: i32,
    #[schema(format = DateTime)]
    last_synced_at: Option<String>,
    active_run_id: Option<i64>,
    shipment_count: i64,
    /// When the marketplace last refused the credentials; cleared when they change.
    #[schema(format = DateTime)]
    credentials_rejected_at: Option<String>,
    /// Whether Simba keeps a push subscription at the marketplace for this shop.
    push_enabled: bool,
    push: PushOut,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// The shop's push subscription as it stands (read-only).
#[derive(Debug, Serialize, ToSchema)]
pub struct PushOut {
    #[schema(pattern = "^(off|pending|active|disabled)$")]
    status: &'static str,
    /// The marketplace's id of the subscription, once it exists.
    subscription_id: Option<String>,
    #[schema(format = DateTime)]
    last_event_at: Option<String>,
    /// Since when the marketplace has had the subscription disabled, while it has.
    #[schema(format = DateTime)]
    disabled_since: Option<String>,
    events_received: i64,
    events_rejected: i64,
    /// When the local copy was last compared with the marketplace's 3-month window.
    #[schema(format = DateTime)]
    reconciled_at: Option<String>,
    /// What that comparison found.
    reconciliation: Option<ReconciliationOut>,
}

/// A reconciliation's findings: per fulfilment method, the marketplace's count over its 3-month
/// window against the local count over the same dates, and the first page's shipments that
/// were missing (fetched since).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReconciliationOut {
    /// Shipments the marketplace lists that the local copy lacked.
    gaps: i64,
    /// The counts differed beyond the first pages: a full sync was queued to repair them.
    full_sync_queued: bool,
    methods: Vec<MethodCensusOut>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MethodCensusOut {
    #[schema(pattern = "^(FBR|FBB)$")]
    method: &'static str,
    marketplace: i64,
    local: i64,
    missing_on_first_page: i64,
}

impl From<&push::Reconciliation> for ReconciliationOut {
    fn from(found: &push::Reconciliation) -> ReconciliationOut {
        ReconciliationOut {
            gaps: found.gaps(),
            full_sync_queued: found.full_sync_queued,
            methods: found
                .methods
                .iter()
                .map(|m| MethodCensusOut {
                    method: m.method.as_str(),
                    marketplace: m.marketplace,
                    local: m.local,
                    missing_on_first_page: m.missing_on_first_page,
                })
                .collect(),
        }
    }
}

impl PushOut {
    fn of(shop: &Shop, row: Option<&push::Subscription>) -> PushOut {
        let row = row.filter(|r| r.wanted && shop.push_enabled);
        PushOut {
            status: row.map_or("off", |r| r.status.as_str()),
            subscription_id: row.and_then(|r| r.subscription_id.clone()),
            last_event_at: row.and_then(|r| r.last_event_at).map(rfc3339),
            disabled_since: row
                .filter(|r| r.status == push::PushStatus::Disabled)
                .and_then(|r| r.disabled_at)
                .map(rfc3339),
            events_received: row.map_or(0, |r| r.events_received),
            events_rejected: row.map_or(0, |r| r.events_rejected),
            reconciled_at: row.and_then(|r| r.reconciled_at).map(rfc3339),
            reconciliation: row
                .and_then(|r| r.reconciliation.as_ref())
                .map(ReconciliationOut::from),
        }
    }
}

impl ShopOut {
    fn with_push(shop: &Shop, row: Option<&push::Subscription>) -> ShopOut {
        ShopOut {
            push: PushOut::of(shop, row),
            ..ShopOut::from(shop)
        }
    }

    /// The shop with its push state read from the store.
    async fn read(state: &AppState, shop: &Shop) -> ApiResult<ShopOut> {
        let row = push::for_shop(&state.db, shop.user_id, shop.id).await?;
        Ok(ShopOut::with_push(shop, row.as_ref()))
    }
}

impl From<&Shop> for ShopOut {
    fn from(shop: &Shop) -> Self {
        ShopOut {
            id: shop.id,
            name: shop.name.clone(),
            marketplace: shop.marketplace.clone(),
            client_id: shop.client_id.clone(),
            auto_sync: shop.auto_sync,
            sync_interval_minutes: shop.sync_interval_minutes,
            last_synced_at: shop.last_synced_at.map(rfc3339),
            active_run_id: shop.active_run_id,
            shipment_count: shop.shipment_count,
            credentials_rejected_at: shop.credentials_rejected_at.map(rfc3339),
            push_enabled: shop.push_enabled,
            push: PushOut::of(shop, None),
            created_at: rfc3339(shop.created_at),
            updated_at: rfc3339(shop.updated_at),
        }
    }
}

/// The writable fields; which are required depends on the method.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShopIn {
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]*\S[^\x00-\x1f\x7f-\x9f]*$"
    )]
    name: Option<String>,
    #[schema(example = "bol", pattern = "^bol$")]
    marketplace: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f]+$"
    )]
    client_id: Option<String>,
    /// Write-only.
    #[schema(value_type = Option<String>, format = Password, min_length = 1, max_length = 500, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]+$")]
    client_secret: Option<SecretString>,
    auto_sync: Option<bool>,
    #[schema(minimum = 1, maximum = 10080)]
    sync_interval_minutes: Option<i64>,
    /// Keep a push subscription at the marketplace (default false).
    push_enabled: Option<bool>,
}

impl From<ShopIn> for ShopInput {
    fn from(input: ShopIn) -> Self {
        ShopInput {
            name: input.name,
            marketplace: input.marketplace,
            client_id: input.client_id,
            client_secret: input.client_secret,
            auto_sync: input.auto_sync,
            sync_interval_minutes: input.sync_interval_minutes,
            push_enabled: input.push_enabled,
        }
    }
}

async fn owned_shop(state: &AppState, auth: &AuthUser, id: i64) -> ApiResult<Shop> {
    shops::get(&state.db, auth.user.id, id)
        .await?
        .ok_or(ApiError::NotFound)
}

#[utoipa::path(get, path = "/api/v1/shops", tag = "shops", security(("token" = [])),
    params(("page" = Option<i64>, Query, minimum = 1), ("page_size" = Option<i64>, Query, minimum = 1, maximum = 500)),
    responses((status = 200, body = Page<ShopOut>), (status = 401, body = Problem)))]
pub(super) async fn list_shops(
    State(state): State<AppState>,
    auth: AuthUser,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let query = QueryParams::parse(query.as_deref());
    if let Some(walk) = Walk::from_query(&query, &uri, auth.user.id, &state.cipher)? {
        let (rows, more) = shops::walk(&state.db, auth.user.id, walk.seek()).await?;
        let ends = cursor::ends(&rows, |shop| Position {
            key: None,
            id: shop.id,
        });
        let mut results = Vec::with_capacity(rows.len());
        for shop in &rows {
            results.push(ShopOut::read(&state, shop).await?);
        }
        let context = (&state.cipher, &uri, &headers);
        return Ok(walk.answer(results, ends, more, context).into_response());
    }
    let params = PageParams::from_query(&query)?;
    let (rows, count) =
        shops::list(&state.db, auth.user.id, params.limit(), params.offset()).await?;
    let mut results = Vec::with_capacity(rows.len());
    for shop in &rows {
        results.push(ShopOut::read(&state, shop).await?);
    }
    Ok(Json(Page::new(results, count, params, &uri, &headers)?).into_response())
}

#[utoipa::path(post, path = "/api/v1/shops", tag = "shops", security(("token" = [])), request_body = ShopIn,
    responses((status = 201, body = ShopOut), (status = 401, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn create_shop(
    State(state): State<AppState>,
    auth: AuthUser,
    StrictJson(input): StrictJson<ShopIn>,
) -> ApiResult<(StatusCode, Json<ShopOut>)> {
    let input = input.into();
    let shop = shop_service::create(&state.db, &state.cipher, auth.user.id, &input).await?;
    Ok((
        StatusCode::CREATED,
        Json(ShopOut::read(&state, &shop).await?),
    ))
}

#[utoipa::path(get, path = "/api/v1/shops/{id}", tag = "shops", security(("token" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = ShopOut), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn get_shop(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(id): ResourceId,
) -> ApiResult<Json<ShopOut>> {
    let shop = owned_shop(&state, &auth, id).await?;
    Ok(Json(ShopOut::read(&state, &shop).await?))
}

async fn write_shop(
    state: &AppState,
    auth: &AuthUser,
    id: i64,
    input: ShopIn,
    required: &[&str],
) -> ApiResult<Json<ShopOut>> {
    let shop = owned_shop(state, auth, id).await?;
    let input = input.into();
    let updated = shop_service::update(&state.db, &state.cipher, &shop, &input, required).await?;
    Ok(Json(ShopOut::read(state, &updated).await?))
}

/// PUT replaces the shop's settings: `name` and `client_id` are required; an omitted
/// `client_secret` keeps the stored one (it is never shown, so clients cannot send it back).
#[utoipa::path(put, path = "/api/v1/shops/{id}", tag = "shops", security(("token" = [])),
    params(("id" = i64, Path)), request_body = ShopIn,
    responses((status = 200, body = ShopOut), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn replace_shop(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(id): ResourceId,
    StrictJson(input): StrictJson<ShopIn>,
) -> ApiResult<Json<ShopOut>> {
    write_shop(&state, &auth, id, input, REQUIRED_TO_REPLACE).await
}

#[utoipa::path(patch, path = "/api/v1/shops/{id}", tag = "shops", security(("token" = [])),
    params(("id" = i64, Path)), request_body = ShopIn,
    responses((status = 200, body = ShopOut), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn update_shop(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(id): ResourceId,
    StrictJson(input): StrictJson<ShopIn>,
) -> ApiResult<Json<ShopOut>> {
    write_shop(&state, &auth, id, input, &[]).await
}

#[utoipa::path(delete, path = "/api/v1/shops/{id}", tag = "shops", security(("token" = [])),
    params(("id" = i64, Path)),
    responses((status = 204), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn delete_shop(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(id): ResourceId,
) -> ApiResult<StatusCode> {
    if !shops::delete(&state.db, &state.cipher, auth.user.id, id).await? {
        return Err(ApiError::NotFound);
    }
    tracing::info!(shop.id = id, user.id = auth.user.id, "shop deleted");
    Ok(StatusCode::NO_CONTENT)
}
