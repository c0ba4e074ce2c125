//! `/shipments`: the stored shipments of all the seller's shops or one shop, filtered,
//! ordered and paginated, and one shipment with its full detail.

use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::HeaderMap;
use axum::http::header::IF_NONE_MATCH;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use std::sync::Arc;

use super::conditional;
use super::cursor::{self, Walk};
use super::pagination::{Links, Page};
use super::{PageParams, QueryParams, ResourceId, rfc3339};
use crate::auth::AuthUser;
use crate::error::{ApiError, ApiResult, Problem};
use crate::services::data_protection;
use crate::services::page_cache::{CachedPage, PageKey, Place};
use crate::state::AppState;
use crate::store::shipments::{self, Filter, Ordering, ShipmentDetail, ShipmentRow, Versions};
use crate::store::shops;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/shipments", get(list_all))
        .route("/shipments/changes", get(changes))
        .route("/shipments/{id}", get(get_shipment))
        .route("/shops/{id}/shipments", get(list_for_shop))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TransportOut {
    transport_id: Option<String>,
    transporter_code: Option<String>,
    track_and_trace: Option<String>,
    /// Detail only.
    #[serde(skip_serializing_if = "Option::is_none")]
    shipping_label_id: Option<String>,
    /// Detail only: `[{event_code, event_date_time}]`, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    events: Option<Box<RawValue>>,
}

/// A shipment as listed.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShipmentOut {
    id: i64,
    shop_id: i64,
    shipment_id: String,
    #[schema(format = DateTime)]
    shipment_date: String,
    shipment_reference: Option<String>,
    #[schema(example = "FBR")]
    fulfilment_method: &'static str,
    order_id: Option<String>,
    pickup_point: Option<bool>,
    transport: TransportOut,
    /// `[{order_item_id, ean, title, quantity}]`.
    #[schema(value_type = Vec<Object>)]
    items: Box<RawValue>,
    #[schema(format = DateTime)]
    detail_synced_at: Option<String>,
    /// When a change a consumer should see last reached the shipment.
    #[schema(format = DateTime)]
    updated_at: String,
    /// The shipment's place in its seller's change feed (`/shipments/changes`).
    change_seq: i64,
    /// When the buyer's personal data was erased (null while held): `customer` is null and
    /// `raw` has no address blocks from then on.
    #[schema(format = DateTime)]
    personal_data_erased_at: Option<String>,
}

/// A shipment with its full detail.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShipmentDetailOut {
    #[serde(flatten)]
    shipment: ShipmentOut,
    #[schema(format = DateTime)]
    order_placed_at: Option<String>,
    /// Shipping and billing details as the marketplace gave them; null once erased.
    #[schema(value_type = Option<Object>)]
    customer: Option<Box<RawValue>>,
    /// The marketplace's own JSON of the shipment detail.
    #[schema(value_type = Option<Object>)]
    raw: Option<Box<RawValue>>,
}

fn raw_json(text: String) -> ApiResult<Box<RawValue>> {
    RawValue::from_string(text)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored JSON is invalid: {e}")))
}

impl ShipmentDetailOut {
    pub(super) fn from_detail(detail: ShipmentDetail) -> ApiResult<ShipmentDetailOut> {
        let events = detail.transport_events.map(raw_json).transpose()?;
        Ok(ShipmentDetailOut {
            shipment: ShipmentOut::from_row(detail.row, events, detail.shipping_label_id)?,
            order_placed_at: detail.order_placed_at.map(rfc3339),
            customer: detail.customer.map(raw_json).transpose()?,
            raw: detail.raw.map(raw_json).transpose()?,
        })
    }
}

impl ShipmentOut {
    pub(super) fn from_row(
        row: ShipmentRow,
        events: Option<Box<RawValue>>,
        label: Option<String>,
    ) -> ApiResult<ShipmentOut> {
        Ok(ShipmentOut {
            id: row.id,
            shop_id: row.shop_id,
            shipment_id: row.shipment_id,
            shipment_date: rfc3339(row.shipment_date),
            shipment_reference: row.shipment_reference,
            fulfilment_method: row.fulfilment_method.as_str(),
            order_id: row.order_id,
            pickup_point: row.pickup_point,
            transport: TransportOut {
                transport_id: row.transport_id,
                transporter_code: row.transporter_code,
                track_and_trace: row.track_and_trace,
                shipping_label_id: label,
                events,
            },
            items: raw_json(row.items)?,
            detail_synced_at: row.detail_synced_at.map(rfc3339),
            updated_at: rfc3339(row.updated_at),
            change_seq: row.change_seq,
            personal_data_erased_at: row.personal_data_erased_at.map(rfc3339),
        })
    }
}

/// A page of shipments with its `results` already serialised, as [`PageCache`](crate::services::page_cache::PageCache) keeps them.
#[derive(Serialize)]
pub(super) struct ShipmentPage {
    count: i64,
    next: Option<String>,
    previous: Option<String>,
    #[serde(serialize_with = "cached_results")]
    results: Arc<CachedPage>,
}

fn cached_results<S: serde::Serializer>(page: &Arc<CachedPage>, to: S) -> Result<S::Ok, S::Error> {
    page.results.serialize(to)
}

/// A kept page's `results`, serialised as they are.
struct SerializedResults(Arc<CachedPage>);

impl Serialize for SerializedResults {
    fn serialize<S: serde::Serializer>(&self, to: S) -> Result<S::Ok, S::Error> {
        cached_results(&self.0, to)
    }
}

/// A shipment list answer: by page number or by cursor, tagged by the seller's shipments
/// version (see [`conditional::version_tag`]) and answered 304 before any rendering when the
/// client holds that tag.
async fn list(
    state: &AppState,
    auth: &AuthUser,
    shop_id: Option<i64>,
    uri: &axum::http::Uri,
    query: Option<&str>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let query = QueryParams::parse(query);
    let filter = crate::web::shipment_filter(&query, shop_id)?;
    let ordering = query
        .parse_with("ordering", Ordering::parse)?
        .unwrap_or_default();
    let walk = Walk::from_query(&query, uri, auth.user.id, &state.cipher)?;
    let params = PageParams::from_query(&query)?;
    let user_id = auth.user.id;
    if let Some(walk) = walk {
        return cursor_page(state, user_id, filter, ordering, &walk, uri, headers).await;
    }
    let key = PageKey {
        filter,
        ordering,
        place: Place::Numbered {
            limit: params.limit(),
            offset: params.offset(),
        },
    };
    // Read before the page: a page answered or kept under a version is never older than it.
    let now = shipments::version(&state.db, user_id).await?;
    let cached = kept_page(state, user_id, now, &key);
    let version = cached.as_ref().map_or(now.version, |(version, _)| *version);
    let etag = conditional::version_tag(user_id, version, uri, headers);
    if conditional::none_match(headers, &etag) {
        return Ok(conditional::not_modified(&etag));
    }
    let page = match cached {
        Some((_, page)) => page,
        None => numbered_page(state, user_id, now, key, params).await?,
    };
    let links = Links::new(page.count, params, uri, headers)?;
    let page = ShipmentPage {
        count: page.count,
        next: links.next,
        previous: links.previous,
        results: page,
    };
    Ok(conditional::with_etag(Json(page).into_response(), &etag))
}

/// The page the cache may serve for `key` while the seller's shipments stand at `now`, with
/// the version it was read at: the answer's tag is that version's, so that a client never
/// holds a tag newer than the rows it got.
fn kept_page(
    state: &AppState,
    user_id: i64,
    now: Versions,
    key: &PageKey,
) -> Option<(i64, Arc<CachedPage>)> {
    let cache = &state.page_cache;
    cache
        .is_enabled()
        .then(|| cache.get(user_id, now, key))
        .flatten()
}

/// The largest cursor page kept in the page cache: a page of 500 rows is about 200 kB, an
/// eightieth of the default cache for one entry.
const KEPT_CURSOR_PAGE: i64 = 100;

/// A cursor's page. A page small enough to keep is looked up in the page cache under the
/// seller's version, read first, and kept from its second request on (see
/// [`PageCache::admit`](crate::services::page_cache::PageCache::admit)); otherwise, or on a miss, the version is read with the page in
/// one call (only a conditional request reads it on its own first, so that its 304 costs no
/// page).
async fn cursor_page(
    state: &AppState,
    user_id: i64,
    filter: Filter,
    ordering: Ordering,
    walk: &Walk,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let cache = &state.page_cache;
    let keep = cache.is_enabled() && walk.seek().limit <= KEPT_CURSOR_PAGE;
    let key = PageKey {
        filter,
        ordering,
        place: Place::Cursor(*walk.seek()),
    };
    if keep || headers.contains_key(IF_NONE_MATCH) {
        let now = shipments::version(&state.db, user_id).await?;
        let cached = if keep {
            kept_page(state, user_id, now, &key)
        } else {
            None
        };
        let version = cached.as_ref().map_or(now.version, |(version, _)| *version);
        let etag = conditional::version_tag(user_id, version, uri, headers);
        if conditional::none_match(headers, &etag) {
            return Ok(conditional::not_modified(&etag));
        }
        if let Some((_, page)) = cached {
            return Ok(cursor_answer(state, walk, page, uri, headers, &etag));
        }
    }
    let walked = shipments::walk(&state.db, user_id, &key.filter, ordering, walk.seek()).await?;
    let etag = conditional::version_tag(user_id, walked.versions.version, uri, headers);
    let ends = cursor::ends(&walked.rows, |row| ordering.position(row));
    let page = Arc::new(CachedPage {
        count: 0,
        results: serialized(walked.rows)?,
        ends,
        more: walked.more,
    });
    if keep && cache.admit(user_id, &key) {
        cache.put(user_id, walked.versions, key, Arc::clone(&page));
    }
    Ok(cursor_answer(state, walk, page, uri, headers, &etag))
}

fn cursor_answer(
    state: &AppState,
    walk: &Walk,
    page: Arc<CachedPage>,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    etag: &str,
) -> Response {
    let (ends, more) = (page.ends, page.more);
    let results = SerializedResults(page);
    let response = walk.answer(results, ends, more, (&state.cipher, uri, headers));
    conditional::with_etag(response.into_response(), etag)
}

/// A page's rows as listed, serialised once for the page cache to keep.
fn serialized(rows: Vec<ShipmentRow>) -> ApiResult<Box<RawValue>> {
    let results = rows
        .into_iter()
        .map(|row| ShipmentOut::from_row(row, None, None))
        .collect::<ApiResult<Vec<_>>>()?;
    serde_json::value::to_raw_value(&results).map_err(|e| ApiError::Internal(e.into()))
}

/// A page by number read from the database, kept in the page cache as read at `now`.
async fn numbered_page(
    state: &AppState,
    user_id: i64,
    now: Versions,
    key: PageKey,
    params: PageParams,
) -> ApiResult<Arc<CachedPage>> {
    let (rows, count) = shipments::list(
        &state.db,
        user_id,
        &key.filter,
        key.ordering,
        params.limit(),
        params.offset(),
    )
    .await?;
    let page = Arc::new(CachedPage {
        count,
        results: serialized(rows)?,
        ends: None,
        more: false,
    });
    let cache = &state.page_cache;
    if cache.is_enabled() {
        cache.put(user_id, now, key, Arc::clone(&page));
    }
    Ok(page)
}

#[utoipa::path(get, path = "/api/v1/shipments", tag = "shipments", security(("token" = [])),
    params(
        ("shop" = Option<i64>, Query), ("fulfilment_method" = Option<String>, Query, description = "FBR or FBB"),
        ("order_id" = Option<String>, Query), ("ean" = Option<String>, Query),
        ("shipped_after" = Option<String>, Query, format = DateTime, description = "inclusive"),
        ("shipped_before" = Option<String>, Query, format = DateTime, description = "exclusive"),
        ("q" = Option<String>, Query, description = "exact shipment id, order id, shipment reference or track-and-trace"),
        ("ordering" = Option<String>, Query, description = "-shipment_date (default), shipment_date, -id, id"),
        ("page" = Option<i64>, Query, minimum = 1), ("page_size" = Option<i64>, Query, minimum = 1, maximum = 500)),
    responses((status = 200, body = Page<ShipmentOut>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn list_all(
    State(state): State<AppState>,
    auth: AuthUser,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    list(&state, &auth, None, &uri, query.as_deref(), &headers).await
}

#[utoipa::path(get, path = "/api/v1/shops/{id}/shipments", tag = "shipments", security(("token" = [])),
    params(("id" = i64, Path),
        ("fulfilment_method" = Option<String>, Query), ("order_id" = Option<String>, Query), ("ean" = Option<String>, Query),
        ("shipped_after" = Option<String>, Query, format = DateTime), ("shipped_before" = Option<String>, Query, format = DateTime),
        ("q" = Option<String>, Query), ("ordering" = Option<String>, Query),
        ("page" = Option<i64>, Query, minimum = 1), ("page_size" = Option<i64>, Query, minimum = 1, maximum = 500)),
    responses((status = 200, body = Page<ShipmentOut>), (status = 400, body = Problem), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn list_for_shop(
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
    list(
        &state,
        &auth,
        Some(shop_id),
        &uri,
        query.as_deref(),
        &headers,
    )
    .await
}

/// The change feed's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChangesOut {
    /// Shipments in `change_seq` order, each as listed, in its current state.
    results: Vec<ShipmentOut>,
    /// What to pass as `after` next: the last result's `change_seq`, or `after` itself when
    /// nothing changed.
    last_seq: i64,
}

pub const DEFAULT_CHANGES_LIMIT: i64 = 500;
pub const MAX_CHANGES_LIMIT: i64 = 1000;

#[utoipa::path(get, path = "/api/v1/shipments/changes", tag = "shipments", security(("token" = [])),
    description = "The shipments that changed after `after`, in the order they changed. Store `last_seq` and pass it as `after` next time: no change is skipped or served twice, even while syncs commit.",
    params(
        ("after" = Option<i64>, Query, minimum = 0, description = "the last `last_seq` seen; 0 (the default) reads from the start"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "default 500"),
        ("shop" = Option<i64>, Query, description = "only this shop's shipments")),
    responses((status = 200, body = ChangesOut), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub(super) async fn changes(
    State(state): State<AppState>,
    auth: AuthUser,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<ChangesOut>> {
    let query = QueryParams::parse(query.as_deref());
    let after = query
        .parse_with("after", |v| match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n),
            _ => Err("must be a non-negative integer".into()),
        })?
        .unwrap_or(0);
    let limit = query
        .parse_with("limit", |v| match v.parse::<i64>() {
            Ok(n @ 1..=MAX_CHANGES_LIMIT) => Ok(n),
            _ => Err(format!(
                "must be an integer between 1 and {MAX_CHANGES_LIMIT}"
            )),
        })?
        .unwrap_or(DEFAULT_CHANGES_LIMIT);
    let shop_id = query.parse_with("shop", |v| {
        v.parse::<i64>()
            .map_err(|_| "must be an integer".to_owned())
    })?;
    let feed = shipments::Feed {
        user_id: auth.user.id,
        shop_id,
        after,
        limit,
    };
    let rows = shipments::changes(&state.db, feed).await?;
    let last_seq = rows.last().map_or(after, |row| row.change_seq);
    let results = rows
        .into_iter()
        .map(|row| ShipmentOut::from_row(row, None, None))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(ChangesOut { results, last_seq }))
}

#[utoipa::path(get, path = "/api/v1/shipments/{id}", tag = "shipments", security(("token" = [])),
    params(("id" = i64, Path)),
    responses((status = 200, body = ShipmentDetailOut), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn get_shipment(
    State(state): State<AppState>,
    auth: AuthUser,
    ResourceId(id): ResourceId,
) -> ApiResult<Json<ShipmentDetailOut>> {
    let actor = super::data_protection::api_actor(&auth);
    let detail =
        data_protection::shipment_detail(&state.db, auth.user.id, &actor, "shipment.detail", id)
            .await?
            .ok_or(ApiError::NotFound)?;
    Ok(Json(ShipmentDetailOut::from_detail(detail)?))
}
