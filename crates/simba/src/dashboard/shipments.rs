//! Shipments: the table with the API's filters, ordering and pages, and one shipment with its
//! items, transport events as a timeline and the customer's details.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use maud::{Markup, html};
use serde_json::Value;

use super::layout::{Section, maybe_when, page, pager, when};
use super::{DashError, DashResult, PageId, Session};
use crate::domain::Timestamp;
use crate::state::AppState;
use crate::store::shipments::{self, Filter, Ordering};
use crate::store::shops::{self, Shop};
use crate::web::{MAX_PAGE_SIZE, PageParams, QueryParams, shipment_filter};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/shipments", get(list))
        .route("/shipments/{id}", get(show))
}

/// The page's query as the API reads it: a date picker's `YYYY-MM-DD` becomes that day's
/// midnight UTC, the RFC 3339 form the API's date filters take.
fn api_query(query: &QueryParams) -> QueryParams {
    let date = time::macros::format_description!("[year]-[month]-[day]");
    QueryParams::from_pairs(
        query
            .pairs()
            .iter()
            .map(|(k, v)| {
                let is_date = (k == "shipped_after" || k == "shipped_before")
                    && time::Date::parse(v, &date).is_ok();
                let v = if is_date {
                    format!("{v}T00:00:00Z")
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect(),
    )
}

/// The filter of a shipments page or export, or the sentence saying which parameter is wrong.
pub(super) fn filter(query: &QueryParams) -> Result<Filter, String> {
    shipment_filter(&api_query(query), None).map_err(|e| e.detail())
}

async fn list(
    State(state): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> DashResult<Response> {
    let query = QueryParams::parse(raw.as_deref());
    let user_id = session.user.id;
    let (shop_list, _) = shops::list(&state.db, user_id, MAX_PAGE_SIZE, 0).await?;
    let parsed = filter(&query).and_then(|filter| {
        let ordering = query
            .parse_with("ordering", Ordering::parse)
            .map_err(|_| "ordering must be one of the listed orders".to_owned())?
            .unwrap_or_default();
        let params = PageParams::from_query(&query).map_err(|e| e.detail())?;
        Ok((filter, ordering, params))
    });
    let (filter, ordering, params) = match parsed {
        Ok(parsed) => parsed,
        Err(problem) => {
            let body = html! {
                (filter_form(&query, &shop_list))
                p.error role="alert" { (problem) }
            };
            let markup = page(&session, Section::Shipments, "Shipments", body);
            return Ok((StatusCode::BAD_REQUEST, markup).into_response());
        }
    };
    let (rows, count) = shipments::list(
        &state.db,
        user_id,
        &filter,
        ordering,
        params.limit(),
        params.offset(),
    )
    .await?;
    let shop_name = |id: i64| {
        shop_list
            .iter()
            .find(|s| s.id == id)
            .map_or("", |s| s.name.as_str())
    };
    let export_query = {
        let mut serializer = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in query
            .pairs()
            .iter()
            .filter(|(k, v)| k != "page" && k != "page_size" && !v.is_empty())
        {
            serializer.append_pair(k, v);
        }
        serializer.finish()
    };
    let body = html! {
        (filter_form(&query, &shop_list))
        p.actions {
            a.button href={"/shipments.csv" @if !export_query.is_empty() { "?" (export_query) }} download {
                "Export these " (count) " shipments as CSV"
            }
        }
        @if rows.is_empty() {
            p { "No shipments match." }
        } @else {
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { "Shipment" }
                        th scope="col" { "Shipped" }
                        th scope="col" { "Shop" }
                        th scope="col" { abbr title="Fulfilment method" { "Method" } }
                        th scope="col" { "Order" }
                        th scope="col" { "Reference" }
                        th scope="col" { "Carrier" }
                        th scope="col" { "Track & trace" }
                        th scope="col" { "Items" }
                    } }
                    tbody {
                        @for row in &rows {
                            tr {
                                th scope="row" {
                                    a href={"/shipments/" (row.id)} { (row.shipment_id) }
                                    @if row.personal_data_erased_at.is_some() {
                                        " " span.erased title="The buyer's personal data was erased" { "(erased)" }
                                    }
                                }
                                td { (when(row.shipment_date)) }
                                td { (shop_name(row.shop_id)) }
                                td { (row.fulfilment_method.as_str()) }
                                td { (row.order_id.as_deref().unwrap_or("")) }
                                td { (row.shipment_reference.as_deref().unwrap_or("")) }
                                td { (row.transporter_code.as_deref().unwrap_or("")) }
                                td { (row.track_and_trace.as_deref().unwrap_or("")) }
                                td.num { (item_count(&row.items)) }
                            }
                        }
                    }
                }
            }
        }
        (pager("/shipments", &query, params, count))
    };
    Ok(page(&session, Section::Shipments, "Shipments", body).into_response())
}

fn item_count(items: &str) -> i64 {
    serde_json::from_str::<Vec<Value>>(items)
        .map(|items| {
            items
                .iter()
                .map(|i| i["quantity"].as_i64().unwrap_or(1))
                .sum()
        })
        .unwrap_or(0)
}

/// The API's filters as a GET form, so a filtered list is a link that can be shared.
fn filter_form(query: &QueryParams, shop_list: &[Shop]) -> Markup {
    let value = |name: &str| query.get(name).unwrap_or_default().to_owned();
    let selected_shop = value("shop");
    let method = value("fulfilment_method");
    let ordering = value("ordering");
    let page_size = query.get("page_size").unwrap_or("50").to_owned();
    let text = |name: &str, label: &str, kind: &str| {
        html! {
            div.field {
                label for={"q-" (name)} { (label) }
                input id={"q-" (name)} name=(name) type=(kind) value=(value(name));
            }
        }
    };
    html! {
        form.filters method="get" action="/shipments" role="search" aria-label="Filter shipments" {
            div.field {
                label for="q-shop" { "Shop" }
                select #q-shop name="shop" {
                    option value="" { "All shops" }
                    @for shop in shop_list {
                        option value=(shop.id) selected[selected_shop == shop.id.to_string()] { (shop.name) }
                    }
                }
            }
            div.field {
                label for="q-fulfilment_method" { "Fulfilment" }
                select #q-fulfilment_method name="fulfilment_method" {
                    option value="" { "FBR and FBB" }
                    option value="FBR" selected[method == "FBR"] { "FBR (by you)" }
                    option value="FBB" selected[method == "FBB"] { "FBB (by bol)" }
                }
            }
            (text("q", "Exact id or track & trace", "search"))
            (text("order_id", "Order id", "text"))
            (text("ean", "EAN", "text"))
            (text("shipped_after", "Shipped on or after", "date"))
            (text("shipped_before", "Shipped before", "date"))
            div.field {
                label for="q-ordering" { "Sort by" }
                select #q-ordering name="ordering" {
                    @for (key, label) in [("-shipment_date", "Newest first"), ("shipment_date", "Oldest first"),
                                          ("-id", "Last stored first"), ("id", "First stored first")] {
                        option value=(key) selected[ordering == key] { (label) }
                    }
                }
            }
            div.field {
                label for="q-page_size" { "Per page" }
                select #q-page_size name="page_size" {
                    @for size in ["25", "50", "100", "250", "500"] {
                        option value=(size) selected[page_size == size] { (size) }
                    }
                }
            }
            div.buttons {
                button type="submit" { "Filter" }
                a href="/shipments" { "Clear" }
            }
        }
    }
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    PageId(id): PageId,
) -> DashResult<Markup> {
    let actor = format!("dashboard:{}", session.user.username);
    let detail = crate::services::data_protection::shipment_detail(
        &state.db,
        session.user.id,
        &actor,
        "dashboard.shipment",
        id,
    )
    .await?
    .ok_or(DashError::NotFound)?;
    let shop = shops::get(&state.db, session.user.id, detail.row.shop_id).await?;
    let row = &detail.row;
    let items: Vec<Value> = serde_json::from_str(&row.items).unwrap_or_default();
    let events: Vec<Value> = detail
        .transport_events
        .as_deref()
        .and_then(|e| serde_json::from_str(e).ok())
        .unwrap_or_default();
    let customer: Option<Value> = detail
        .customer
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok());
    let optional = |v: &Option<String>| v.clone().unwrap_or_else(|| "—".into());
    let body = html! {
        p { a href="/shipments" { "← All shipments" } }
        div.grid {
            section aria-labelledby="h-shipment" {
                h2 #h-shipment { "Shipment" }
                dl {
                    dt { "Shop" } dd { (shop.map(|s| s.name).unwrap_or_default()) }
                    dt { "Shipped" } dd { (when(row.shipment_date)) }
                    dt { "Fulfilment" } dd { (row.fulfilment_method.as_str()) }
                    dt { "Order" } dd { (optional(&row.order_id)) }
                    dt { "Order placed" } dd { (maybe_when(detail.order_placed_at)) }
                    dt { "Reference" } dd { (optional(&row.shipment_reference)) }
                    dt { "Pickup point" } dd { @match row.pickup_point { Some(true) => "yes", Some(false) => "no", None => "—" } }
                    dt { "Detail synced" } dd { (maybe_when(row.detail_synced_at)) }
                }
            }
            section aria-labelledby="h-transport" {
                h2 #h-transport { "Transport" }
                dl {
                    dt { "Carrier" } dd { (optional(&row.transporter_code)) }
                    dt { "Track & trace" } dd { (optional(&row.track_and_trace)) }
                    dt { "Transport id" } dd { (optional(&row.transport_id)) }
                    dt { "Shipping label" } dd { (optional(&detail.shipping_label_id)) }
                }
                h3 { "Events" }
                @if events.is_empty() {
                    p { "No transport events yet." }
                } @else {
                    ol.timeline {
                        @for event in &events {
                            li {
                                strong { (event["event_code"].as_str().unwrap_or("")) }
                                " "
                                @if let Some(at) = event["event_date_time"].as_str() {
                                    (event_time(at))
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-items" {
            h2 #h-items { "Items" }
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { "Title" }
                        th scope="col" { "EAN" }
                        th scope="col" { "Quantity" }
                        th scope="col" { "Order item" }
                    } }
                    tbody {
                        @for item in &items {
                            tr {
                                td { (item["title"].as_str().unwrap_or("")) }
                                td { (item["ean"].as_str().unwrap_or("")) }
                                td.num { (item["quantity"].as_i64().unwrap_or(0)) }
                                td { (item["order_item_id"].as_str().unwrap_or("")) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="h-customer" {
            h2 #h-customer { "Customer" }
            @match (&customer, row.personal_data_erased_at) {
                (_, Some(erased)) => p.erased { "The buyer's personal data was erased " (when(erased)) "." },
                (Some(customer), None) => (customer_details(customer)),
                (None, None) => p { "The marketplace has not given the customer's details." },
            }
        }
    };
    Ok(page(
        &session,
        Section::Shipments,
        &format!("Shipment {}", row.shipment_id),
        body,
    ))
}

/// The customer's details as the marketplace gave them: a box per group (shipping, billing),
/// keys in words ("zip_code" → "zip code").
fn customer_details(customer: &Value) -> Markup {
    let Value::Object(groups) = customer else {
        return html! { p { (json_text(customer)) } };
    };
    html! {
        div.grid {
            @for (group, fields) in groups {
                section {
                    h3 { (words(group)) }
                    @if let Value::Object(fields) = fields {
                        dl {
                            @for (key, value) in fields {
                                dt { (words(key)) }
                                dd { (json_text(value)) }
                            }
                        }
                    } @else {
                        p { (json_text(fields)) }
                    }
                }
            }
        }
    }
}

fn words(key: &str) -> String {
    let spaced = key.replace('_', " ");
    let mut chars = spaced.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn json_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// A marketplace timestamp (RFC 3339 with any offset) shown like the others, in UTC.
fn event_time(value: &str) -> Markup {
    match time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339) {
        Ok(t) => when(Timestamp::from_offset_date_time(t)),
        Err(_) => html! { (value) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_pickers_become_midnight_utc() {
        let query = QueryParams::parse(Some(
            "shipped_after=2026-11-27&shipped_before=2026-11-28T12:00:00Z&q=2026-01-01",
        ));
        let api = api_query(&query);
        assert_eq!(api.get("shipped_after"), Some("2026-11-27T00:00:00Z"));
        assert_eq!(api.get("shipped_before"), Some("2026-11-28T12:00:00Z"));
        assert_eq!(api.get("q"), Some("2026-01-01"));
    }
}
