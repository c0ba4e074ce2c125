//! `/shops`: CRUD of a seller's marketplace credentials. The secret is write-only.

use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::json::StrictJson;
use super::pagination::Page;
use super::{PageParams, QueryParams, ResourceId, rfc3339};
use crate::app::AppState;
use crate::auth::AuthUser;
use crate::domain::{
    ClientId, ClientSecret, Marketplace, ShopName, SyncInterval, ValidationErrors,
};
use crate::error::{ApiError, ApiResult, Problem};
use crate::store::StoreError;
use crate::store::shops::{self, Shop, ShopFields};

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
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
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
    pub(crate) name: Option<String>,
    #[schema(example = "bol", pattern = "^bol$")]
    pub(crate) marketplace: Option<String>,
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\s\x00-\x1f\x7f-\x9f]+$"
    )]
    pub(crate) client_id: Option<String>,
    /// Write-only.
    #[schema(value_type = Option<String>, format = Password, min_length = 1, max_length = 500, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]+$")]
    pub(crate) client_secret: Option<SecretString>,
    pub(crate) auto_sync: Option<bool>,
    #[schema(minimum = 1, maximum = 10080)]
    pub(crate) sync_interval_minutes: Option<i64>,
}

/// Applies `input` over `base` (`None` for a new shop). `required` fields must be present.
pub(crate) fn parse_fields(
    input: &ShopIn,
    base: Option<&Shop>,
    required: &[&str],
) -> Result<(ShopFields, Option<ClientSecret>), ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let present = |field: &str| match field {
        "name" => input.name.is_some(),
        "client_id" => input.client_id.is_some(),
        "client_secret" => input.client_secret.is_some(),
        _ => true,
    };
    for field in required.iter().filter(|f| !present(f)) {
        errors.add(field, "is required");
    }
    let name = match (&input.name, base) {
        (Some(v), _) => errors.check("name", ShopName::parse(v)),
        (None, Some(shop)) => ShopName::parse(&shop.name).ok(),
        (None, None) => None,
    };
    let client_id = match (&input.client_id, base) {
        (Some(v), _) => errors.check("client_id", ClientId::parse(v)),
        (None, Some(shop)) => ClientId::parse(&shop.client_id).ok(),
        (None, None) => None,
    };
    let marketplace = match (&input.marketplace, base) {
        (Some(v), _) => errors.check("marketplace", Marketplace::parse(v)),
        (None, Some(shop)) => Marketplace::parse(&shop.marketplace).ok(),
        (None, None) => Some(Marketplace::default()),
    };
    let sync_interval = match (input.sync_interval_minutes, base) {
        (Some(v), _) => errors.check("sync_interval_minutes", SyncInterval::parse(v)),
        (None, Some(shop)) => SyncInterval::parse(shop.sync_interval_minutes.into()).ok(),
        (None, None) => Some(SyncInterval::DEFAULT),
    };
    let secret = input
        .client_secret
        .as_ref()
        .and_then(|s| errors.check("client_secret", ClientSecret::parse(s)));
    let auto_sync = input
        .auto_sync
        .or(base.map(|s| s.auto_sync))
        .unwrap_or(true);
    match (name, client_id, marketplace, sync_interval) {
        (Some(name), Some(client_id), Some(marketplace), Some(sync_interval))
            if errors.is_empty() =>
        {
            Ok((
                ShopFields {
                    name,
                    marketplace,
                    client_id,
                    auto_sync,
                    sync_interval,
                },
                secret,
            ))
        }
        _ => Err(errors),
    }
}

pub(crate) fn duplicate(error: StoreError) -> ApiError {
    match error {
        StoreError::UniqueViolation => {
            ApiError::conflict("You already have a shop with this marketplace and client_id.")
        }
        other => other.into(),
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
) -> ApiResult<Json<Page<ShopOut>>> {
    let params = PageParams::from_query(&QueryParams::parse(query.as_deref()))?;
    let (rows, count) =
        shops::list(&state.db, auth.user.id, params.limit(), params.offset()).await?;
    let results = rows.iter().map(ShopOut::from).collect();
    Ok(Json(Page::new(results, count, params, &uri, &headers)?))
}

#[utoipa::path(post, path = "/api/v1/shops", tag = "shops", security(("token" = [])), request_body = ShopIn,
    responses((status = 201, body = ShopOut), (status = 401, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn create_shop(
    State(state): State<AppState>,
    auth: AuthUser,
    StrictJson(input): StrictJson<ShopIn>,
) -> ApiResult<(StatusCode, Json<ShopOut>)> {
    let (fields, secret) = parse_fields(&input, None, &["name", "client_id", "client_secret"])?;
    let secret = secret.expect("client_secret is required and parsed");
    let shop = shops::create(&state.db, &state.cipher, auth.user.id, &fields, &secret)
        .await
        .map_err(duplicate)?;
    tracing::info!(shop.id = shop.id, user.id = auth.user.id, "shop added");
    Ok((StatusCode::CREATED, Json(ShopOut::from(&shop))))
}

#[utoipa::path(get, path = "/api/v1/shops/{id}", tag = "shops", security(("token" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = ShopOut), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn get_shop(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(id): ResourceId,
) -> ApiResult<Json<ShopOut>> {
    Ok(Json(ShopOut::from(&owned_shop(&state, &auth, id).await?)))
}

async fn write_shop(
    state: &AppState,
    auth: &AuthUser,
    id: i64,
    input: &ShopIn,
    required: &[&str],
) -> ApiResult<Json<ShopOut>> {
    let shop = owned_shop(state, auth, id).await?;
    let (fields, secret) = parse_fields(input, Some(&shop), required)?;
    let updated = shops::update(&state.db, &state.cipher, &shop, &fields, secret.as_ref())
        .await
        .map_err(duplicate)?;
    Ok(Json(ShopOut::from(&updated)))
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
    write_shop(&state, &auth, id, &input, &["name", "client_id"]).await
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
    write_shop(&state, &auth, id, &input, &[]).await
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
