//! `GET /retailer/shipments` and `GET /retailer/shipments/{shipment-id}`.

use crate::{
    data::{self, Draw},
    gateway::{self, Call},
    http::{self, Violation},
    ids::Key,
    state::{LIST_WINDOW_SECS, Shared},
    stats::Group,
};
use axum::{
    extract::{OriginalUri, Path, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::Serialize;
use std::sync::Arc;

const PER_PAGE: u64 = 50;

/// The parsed list query.
#[derive(Debug, PartialEq, Eq)]
struct ListQuery {
    page: u32,
    fbb: bool,
    order_id: Option<String>,
}

impl ListQuery {
    /// Values are compared raw: every valid one is plain ASCII, and an invalid one is refused
    /// whatever its encoding.
    fn parse(query: Option<&str>) -> Result<Self, Vec<Violation>> {
        let mut parsed = ListQuery {
            page: 1,
            fbb: false,
            order_id: None,
        };
        let mut violations = Vec::new();
        for (name, value) in query
            .unwrap_or("")
            .split('&')
            .filter_map(|p| p.split_once('='))
        {
            match name {
                "page" => match value.parse::<u32>() {
                    Ok(page) if page >= 1 && page <= i32::MAX as u32 => parsed.page = page,
                    _ => violations.push(Violation {
                        name: "page",
                        reason: format!("Request contains invalid value(s): '{value}', allowed values: an integer of 1 or more."),
                    }),
                },
                "fulfilment-method" => match value {
                    "FBR" => parsed.fbb = false,
                    "FBB" => parsed.fbb = true,
                    _ => violations.push(Violation {
                        name: "fulfilment-method",
                        reason: format!("Request contains invalid value(s): '{value}', allowed values: FBR, FBB."),
                    }),
                },
                "order-id" => parsed.order_id = Some(value.to_owned()),
                _ => {}
            }
        }
        if violations.is_empty() {
            Ok(parsed)
        } else {
            Err(violations)
        }
    }
}

fn draw<'a>(shared: &'a Shared, shipped: i64, now: i64) -> Draw<'a> {
    Draw {
        seed: shared.seed,
        ids: &shared.codecs,
        shipped,
        now,
    }
}

/// Checks the `Accept` header: bol serves only its versioned media type.
fn not_acceptable(call: &Call<'_>, headers: &HeaderMap, instance: &str) -> Option<Response> {
    (!http::accepts_v10(headers)).then(|| {
        let detail = format!(
            "The requested media type is not supported. Supported: {}.",
            http::V10
        );
        call.problem(
            StatusCode::NOT_ACCEPTABLE,
            "Not Acceptable",
            &detail,
            instance,
            &[],
        )
    })
}

#[derive(Serialize)]
struct Page<'a> {
    shipments: Vec<data::Reduced<'a>>,
}

pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let shared = &*shared;
    let arrival = gateway::arrive(shared).await;
    let instance = http::instance(&headers, uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut call = match gateway::bearer(shared, arrival, &headers, Group::List, &instance) {
        Ok(call) => call,
        Err(r) => return r,
    };
    if let Some(r) = not_acceptable(&call, &headers, &instance) {
        return r;
    }
    let query = match ListQuery::parse(uri.query()) {
        Ok(q) => q,
        Err(violations) => {
            let title = "Error validating request. Consult the bol.com API documentation for more information.";
            return call.problem(
                StatusCode::BAD_REQUEST,
                title,
                "Bad request",
                &instance,
                &violations,
            );
        }
    };
    let now = shared.clock.market_now();
    let cutoff = now - LIST_WINDOW_SECS;
    // order-id overrides fulfilment-method and is no part of a crawl.
    let entries: Vec<(Key, i64)> = match &query.order_id {
        Some(order_id) => shared
            .codecs
            .order
            .decode(order_id)
            .filter(|k| {
                k.account == call.account_no
                    && query.page == 1
                    && k.index < call.account.catalog(k.fbb).count()
            })
            .map(|k| (k, call.account.catalog(k.fbb).shipped(k.index)))
            .filter(|&(_, shipped)| shipped >= cutoff)
            .into_iter()
            .collect(),
        None => call
            .account
            .catalog(query.fbb)
            .page(query.page, PER_PAGE, cutoff)
            .into_iter()
            .map(|(index, shipped)| {
                (
                    Key {
                        account: call.account_no,
                        fbb: query.fbb,
                        index,
                    },
                    shipped,
                )
            })
            .collect(),
    };
    let body = if entries.is_empty() {
        // bol omits the empty array: the body is exactly `{}`.
        b"{}".to_vec()
    } else {
        let drawn: Vec<data::Shipment> = entries
            .iter()
            .map(|&(k, shipped)| data::shipment(k, draw(shared, shipped, now)))
            .collect();
        serde_json::to_vec(&Page {
            shipments: drawn.iter().map(data::Shipment::reduced).collect(),
        })
        .unwrap_or_default()
    };
    let (response, clean) = call.ok(http::V10_UTF8, body);
    if clean && query.order_id.is_none() && call.account.catalog(query.fbb).note_page(query.page) {
        call.wasted();
    }
    response
}

pub(crate) async fn detail(
    State(shared): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let shared = &*shared;
    let arrival = gateway::arrive(shared).await;
    let instance = http::instance(&headers, uri.path());
    let mut call = match gateway::bearer(shared, arrival, &headers, Group::Detail, &instance) {
        Ok(call) => call,
        Err(r) => return r,
    };
    if let Some(r) = not_acceptable(&call, &headers, &instance) {
        return r;
    }
    let key =
        shared.codecs.shipment.decode(&id).filter(|k| {
            k.account == call.account_no && k.index < call.account.catalog(k.fbb).count()
        });
    let Some(key) = key else {
        let detail = format!("Shipment with id '{id}' was not found.");
        return call.problem(StatusCode::NOT_FOUND, "Not Found", &detail, &instance, &[]);
    };
    let catalog = call.account.catalog(key.fbb);
    let shipment = data::shipment(
        key,
        draw(
            shared,
            catalog.shipped(key.index),
            shared.clock.market_now(),
        ),
    );
    let (response, clean) = call.ok(
        http::V10_UTF8,
        serde_json::to_vec(&shipment).unwrap_or_default(),
    );
    if clean && catalog.note_detail(key.index) {
        call.wasted();
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_query_defaults_to_page_one_of_fbr() {
        assert_eq!(
            ListQuery::parse(None).unwrap(),
            ListQuery {
                page: 1,
                fbb: false,
                order_id: None
            }
        );
        let q = ListQuery::parse(Some("page=3&fulfilment-method=FBB&x=y")).unwrap();
        assert_eq!(
            q,
            ListQuery {
                page: 3,
                fbb: true,
                order_id: None
            }
        );
    }

    #[test]
    fn bad_list_parameters_are_violations() {
        let v = ListQuery::parse(Some("page=0&fulfilment-method=ALL")).unwrap_err();
        assert_eq!(
            v.iter().map(|v| v.name).collect::<Vec<_>>(),
            ["page", "fulfilment-method"]
        );
        assert!(ListQuery::parse(Some("page=abc")).is_err());
    }
}
