//! `/shipments.csv`: the shipments of the current filter as CSV (RFC 4180), streamed a page at
//! a time in id order so that an export of any size holds only one page in memory.

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream;
use serde_json::Value;

use super::layout::{Section, page};
use super::{DashResult, Session};
use crate::state::AppState;
use crate::store::shipments::{self, ShipmentRow};
use crate::web::{QueryParams, rfc3339};

/// Rows fetched per query: large enough that the per-query cost vanishes, small enough that a
/// page is a few hundred kilobytes.
const PAGE_ROWS: i64 = 1000;

const HEADER: &str = "id,shop_id,shipment_id,shipment_date,shipment_reference,\
fulfilment_method,order_id,pickup_point,transport_id,transporter_code,track_and_trace,\
items,detail_synced_at\r\n";

pub(super) async fn export(
    State(state): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> DashResult<Response> {
    let query = QueryParams::parse(raw.as_deref());
    let filter = match super::shipments::filter(&query) {
        Ok(filter) => filter,
        Err(problem) => {
            let body = maud::html! { p.error role="alert" { (problem) } };
            let markup = page(&session, Section::Shipments, "Export", body);
            return Ok((StatusCode::BAD_REQUEST, markup).into_response());
        }
    };
    let user_id = session.user.id;
    // The cursor is the last id sent; `None` once a short page shows there is no more.
    let pages = stream::unfold(Some(0), move |cursor| {
        let state = state.clone();
        let filter = filter.clone();
        async move {
            let after = cursor?;
            match shipments::list_after(&state.db, user_id, &filter, after, PAGE_ROWS).await {
                Ok(rows) => {
                    let next = (rows.len() as i64 == PAGE_ROWS)
                        .then(|| rows.last().map(|r| r.id))
                        .flatten();
                    let mut out = String::with_capacity(rows.len() * 256);
                    for row in &rows {
                        write_row(&mut out, row);
                    }
                    Some((Ok(Bytes::from(out)), next))
                }
                // The headers are gone already: breaking the body tells the client the file is
                // incomplete, where ending it would pass a truncated file off as whole.
                Err(e) => {
                    tracing::error!(error = %e, user.id = user_id, "CSV export failed");
                    Some((Err(std::io::Error::other("export failed")), None))
                }
            }
        }
    });
    let body = stream::once(async { Ok(Bytes::from_static(HEADER.as_bytes())) }).chain(pages);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"shipments.csv\"",
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

fn write_row(out: &mut String, row: &ShipmentRow) {
    let optional = |v: &Option<String>| v.clone().unwrap_or_default();
    let cells = [
        row.id.to_string(),
        row.shop_id.to_string(),
        row.shipment_id.clone(),
        rfc3339(row.shipment_date),
        optional(&row.shipment_reference),
        row.fulfilment_method.as_str().to_owned(),
        optional(&row.order_id),
        row.pickup_point.map(|p| p.to_string()).unwrap_or_default(),
        optional(&row.transport_id),
        optional(&row.transporter_code),
        optional(&row.track_and_trace),
        items_text(&row.items),
        row.detail_synced_at.map(rfc3339).unwrap_or_default(),
    ];
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_cell(out, cell);
    }
    out.push_str("\r\n");
}

/// The items in one cell: `quantity x title (EAN)`, separated by `; `.
fn items_text(items: &str) -> String {
    let items: Vec<Value> = serde_json::from_str(items).unwrap_or_default();
    items
        .iter()
        .map(|item| {
            format!(
                "{} x {} ({})",
                item["quantity"].as_i64().unwrap_or(1),
                item["title"].as_str().unwrap_or_default(),
                item["ean"].as_str().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One RFC 4180 cell: quoted when it holds a comma, quote or line break, quotes doubled.
/// A cell that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return
/// first) gets a leading apostrophe, which makes it text (OWASP's CSV injection advice).
fn write_cell(out: &mut String, value: &str) {
    let formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if formula || value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        if formula {
            out.push('\'');
        }
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(value: &str) -> String {
        let mut out = String::new();
        write_cell(&mut out, value);
        out
    }

    #[test]
    fn cells_are_quoted_only_when_needed() {
        assert_eq!(cell("plain"), "plain");
        assert_eq!(cell(""), "");
        assert_eq!(cell("a,b"), "\"a,b\"");
        assert_eq!(cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(cell("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn formulas_are_defused() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(cell("@SUM(A1)"), "\"'@SUM(A1)\"");
    }

    #[test]
    fn items_are_summarised_in_one_cell() {
        let items = r#"[{"title":"Theepot glas 1,2 L","ean":"8712345678906","quantity":2},{"title":"Lid","ean":"1","quantity":1}]"#;
        assert_eq!(
            items_text(items),
            "2 x Theepot glas 1,2 L (8712345678906); 1 x Lid (1)"
        );
    }
}
