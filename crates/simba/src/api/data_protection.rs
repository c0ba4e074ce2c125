//! Buyer data protection: `/erasures` (erasure on request), `/data-subjects` (subject access)
//! and `/access-log` (who read buyers' personal data).

use axum::extract::{OriginalUri, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::cursor::{self, Walk};
use super::json::StrictJson;
use super::pagination::Page;
use super::shipments::ShipmentDetailOut;
use super::{PageParams, QueryParams, rfc3339};
use crate::auth::AuthUser;
use crate::domain::{Email, ValidationErrors};
use crate::error::{ApiResult, Problem};
use crate::services::data_protection::{self as service, MAX_SHIPMENT_IDS};
use crate::state::AppState;
use crate::store::erasure::{self as store, AccessEntry, Subject};
use crate::store::keyset::Position;
use crate::web::BadParam;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/erasures", post(create_erasure))
        .route("/data-subjects", get(data_subject))
        .route("/access-log", get(access_log))
}

/// Who the access log names for a read through the API.
pub(crate) fn api_actor(auth: &AuthUser) -> String {
    format!("api:{}", auth.user.username)
}

/// Exactly one of the three names the shipments to erase.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureIn {
    /// The buyer's e-mail address (shipping or billing details, case-insensitive).
    #[schema(value_type = Option<String>, format = Email)]
    email: Option<Value>,
    #[schema(value_type = Option<String>)]
    order_id: Option<Value>,
    /// Shipment ids as the API shows them (`id`), 1 to 1000.
    #[schema(value_type = Option<Vec<i64>>, min_items = 1, max_items = 1000)]
    shipment_ids: Option<Value>,
}

/// What an erasure erased now: shipments erased before are not counted again.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErasureOut {
    erased: usize,
    shipment_ids: Vec<i64>,
}

fn subject(body: ErasureIn) -> Result<Subject, ValidationErrors> {
    let given: Vec<&str> = [
        ("email", body.email.is_some()),
        ("order_id", body.order_id.is_some()),
        ("shipment_ids", body.shipment_ids.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, present)| present.then_some(name))
    .collect();
    if given.len() != 1 {
        let message = "exactly one of email, order_id and shipment_ids is required";
        let mut errors = ValidationErrors::default();
        for field in if given.is_empty() {
            vec!["email", "order_id", "shipment_ids"]
        } else {
            given
        } {
            errors.add(field, message);
        }
        return Err(errors);
    }
    if let Some(email) = body.email {
        let parsed = email
            .as_str()
            .ok_or_else(|| "must be a string".to_owned())
            .and_then(Email::parse);
        return match parsed {
            Ok(email) => Ok(Subject::Email(email.as_str().to_owned())),
            Err(message) => Err(ValidationErrors::single("email", message)),
        };
    }
    if let Some(order_id) = body.order_id {
        return match order_id.as_str() {
            Some(id) if !id.trim().is_empty() && id.len() <= 64 => {
                Ok(Subject::OrderId(id.to_owned()))
            }
            _ => Err(ValidationErrors::single(
                "order_id",
                "must be a non-empty string of at most 64 characters",
            )),
        };
    }
    let ids = body.shipment_ids.unwrap_or_default();
    let message = format!("must be a list of 1 to {MAX_SHIPMENT_IDS} positive integer ids");
    let Some(list) = ids.as_array() else {
        return Err(ValidationErrors::single("shipment_ids", message));
    };
    if list.is_empty() || list.len() > MAX_SHIPMENT_IDS {
        return Err(ValidationErrors::single("shipment_ids", message));
    }
    let ids: Option<Vec<i64>> = list
        .iter()
        .map(|id| id.as_i64().filter(|id| *id > 0))
        .collect();
    ids.map(Subject::ShipmentIds)
        .ok_or_else(|| ValidationErrors::single("shipment_ids", message))
}

#[utoipa::path(post, path = "/api/v1/erasures", tag = "data protection", security(("token" = [])),
    description = "Erases the buyer's personal data (names, addresses, e-mail, phone) of the seller's shipments named by exactly one of `email`, `order_id` or `shipment_ids`, at once. Ids, dates, items, prices and transport stay. Another seller's shipments are never touched.",
    request_body = ErasureIn,
    responses((status = 200, body = ErasureOut), (status = 400, body = Problem), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn create_erasure(
    State(state): State<AppState>,
    auth: AuthUser,
    StrictJson(body): StrictJson<ErasureIn>,
) -> ApiResult<Json<ErasureOut>> {
    let subject = subject(body)?;
    let erased = service::erase(&state.db, auth.user.id, &subject).await?;
    Ok(Json(ErasureOut {
        erased: erased.len(),
        shipment_ids: erased,
    }))
}

/// Everything held about one buyer.
#[derive(Debug, Serialize, ToSchema)]
pub struct DataSubjectOut {
    email: String,
    /// Every shipment whose customer details hold the address, with its full detail.
    shipments: Vec<ShipmentDetailOut>,
}

#[utoipa::path(get, path = "/api/v1/data-subjects", tag = "data protection", security(("token" = [])),
    description = "Subject access: every shipment of the seller whose customer details hold the e-mail address, with its full detail. The read is recorded in the access log.",
    params(("email" = String, Query, format = Email)),
    responses((status = 200, body = DataSubjectOut), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub(super) async fn data_subject(
    State(state): State<AppState>,
    auth: AuthUser,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<DataSubjectOut>> {
    let query = QueryParams::parse(query.as_deref());
    let email = query
        .parse_with("email", |v| Email::parse(v).map(|e| e.as_str().to_owned()))?
        .ok_or_else(|| BadParam::new("email", "is required"))?;
    let details =
        service::subject_access(&state.db, auth.user.id, &api_actor(&auth), &email).await?;
    let shipments = details
        .into_iter()
        .map(ShipmentDetailOut::from_detail)
        .collect::<ApiResult<_>>()?;
    Ok(Json(DataSubjectOut { email, shipments }))
}

/// One read of buyers' personal data.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccessEntryOut {
    id: i64,
    #[schema(format = DateTime)]
    at: String,
    /// `api:<username>` or `dashboard:<username>`.
    actor: String,
    #[schema(example = "shipment.detail")]
    action: String,
    shipment_ids: Option<Vec<i64>>,
    filter: Option<String>,
}

impl From<&AccessEntry> for AccessEntryOut {
    fn from(entry: &AccessEntry) -> Self {
        AccessEntryOut {
            id: entry.id,
            at: rfc3339(entry.at),
            actor: entry.actor.clone(),
            action: entry.action.clone(),
            shipment_ids: entry.shipment_ids.clone(),
            filter: entry.filter.clone(),
        }
    }
}

#[utoipa::path(get, path = "/api/v1/access-log", tag = "data protection", security(("token" = [])),
    description = "Every read of the seller's buyers' personal data, newest first. Entries are kept 365 days.",
    params(("page" = Option<i64>, Query, minimum = 1), ("page_size" = Option<i64>, Query, minimum = 1, maximum = 500)),
    responses((status = 200, body = Page<AccessEntryOut>), (status = 400, body = Problem), (status = 401, body = Problem)))]
pub(super) async fn access_log(
    State(state): State<AppState>,
    auth: AuthUser,
    OriginalUri(uri): OriginalUri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let query = QueryParams::parse(query.as_deref());
    if let Some(walk) = Walk::from_query(&query, &uri, auth.user.id, &state.cipher)? {
        let (rows, more) = store::walk_access_log(&state.db, auth.user.id, walk.seek()).await?;
        let ends = cursor::ends(&rows, |entry| Position {
            key: None,
            id: entry.id,
        });
        let results: Vec<AccessEntryOut> = rows.iter().map(AccessEntryOut::from).collect();
        let context = (&state.cipher, &uri, &headers);
        return Ok(walk.answer(results, ends, more, context).into_response());
    }
    let params = PageParams::from_query(&query)?;
    let (rows, count) =
        store::access_log(&state.db, auth.user.id, params.limit(), params.offset()).await?;
    let results = rows.iter().map(AccessEntryOut::from).collect();
    Ok(Json(Page::new(results, count, params, &uri, &headers)?).into_response())
}
