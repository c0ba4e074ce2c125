//! `/privacy`: the buyer data protection pages: the retention setting and when its job last
//! ran, erasure on request (confirmed on a page of its own before anything is erased), and
//! the access log.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};

use super::layout::{Section, csrf_field, maybe_when, page, when};
use super::{DashResult, PostedForm, Session};
use crate::services::data_protection::{self as service, MAX_SHIPMENT_IDS};
use crate::state::AppState;
use crate::store::erasure::{self as store, Subject};
use crate::web::QueryParams;

/// Access-log entries per page.
const LOG_PAGE: i64 = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/privacy", get(overview))
        .route("/privacy/retention", post(set_retention))
        .route("/privacy/erase", post(erase))
        .route("/privacy/access-log", get(access_log))
}

async fn overview(State(state): State<AppState>, session: Session) -> DashResult<Markup> {
    let retention = store::retention(&state.db, session.user.id).await?;
    Ok(overview_page(&session, retention, None))
}

fn overview_page(session: &Session, retention: store::Retention, problem: Option<&str>) -> Markup {
    let days = retention.days.map(|d| d.to_string()).unwrap_or_default();
    let body = html! {
        @if let Some(problem) = problem {
            p.error role="alert" { (problem) }
        }
        section.card aria-labelledby="h-retention" {
            h2 #h-retention { "Retention" }
            p {
                "Buyers' names, addresses, e-mail and phone numbers are erased from shipments older than this many days (30 to 3650). Empty keeps them. Ids, dates, items, prices and transport stay."
            }
            form method="post" action="/privacy/retention" {
                (csrf_field(session))
                label for="retention_days" { "Keep buyer data for (days)" }
                input #retention_days type="number" name="retention_days" min="30" max="3650" value=(days);
                div.buttons { button type="submit" { "Save" } }
            }
            p { "The retention job last ran: " (maybe_when(retention.ran_at)) }
        }
        section.card aria-labelledby="h-erase" {
            h2 #h-erase { "Erase a buyer's data" }
            form method="post" action="/privacy/erase" {
                (csrf_field(session))
                label for="kind" { "By" }
                select #kind name="kind" {
                    option value="email" { "Buyer e-mail" }
                    option value="order_id" { "Order id" }
                    option value="shipment_ids" { "Shipment ids (comma-separated)" }
                }
                label for="value" { "Value" }
                input #value type="text" name="value" required;
                div.buttons { button type="submit" { "Review erasure" } }
            }
        }
        p { a href="/privacy/access-log" { "Who read buyers' data: the access log" } }
    };
    page(session, Section::Privacy, "Privacy", body)
}

async fn set_retention(State(state): State<AppState>, form: PostedForm) -> DashResult<Response> {
    let PostedForm { session, fields } = form;
    let value = fields.get("retention_days").unwrap_or_default().trim();
    let parsed = if value.is_empty() {
        Ok(None)
    } else {
        match value.parse::<i64>() {
            Ok(days) => service::parse_retention_days(&serde_json::json!(days)),
            Err(_) => Err("must be a whole number of days".to_owned()),
        }
    };
    match parsed {
        Ok(days) => {
            store::set_retention_days(&state.db, session.user.id, days).await?;
            Ok(Redirect::to("/privacy").into_response())
        }
        Err(message) => {
            let retention = store::retention(&state.db, session.user.id).await?;
            let problem = format!("Retention {message}.");
            let markup = overview_page(&session, retention, Some(&problem));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, markup).into_response())
        }
    }
}

fn subject(kind: &str, value: &str) -> Result<Subject, String> {
    let value = value.trim();
    match kind {
        "email" => crate::domain::Email::parse(value)
            .map(|email| Subject::Email(email.as_str().to_owned()))
            .map_err(|message| format!("The e-mail address {message}.")),
        "order_id" if !value.is_empty() && value.len() <= 64 => {
            Ok(Subject::OrderId(value.to_owned()))
        }
        "order_id" => Err("The order id must be 1 to 64 characters.".into()),
        "shipment_ids" => {
            let ids: Result<Vec<i64>, _> = value
                .split(',')
                .map(|id| id.trim().parse::<i64>())
                .collect();
            match ids {
                Ok(ids) if !ids.is_empty() && ids.len() <= MAX_SHIPMENT_IDS => {
                    Ok(Subject::ShipmentIds(ids))
                }
                _ => Err(format!(
                    "Shipment ids must be 1 to {MAX_SHIPMENT_IDS} whole numbers, comma-separated."
                )),
            }
        }
        _ => Err("Choose what the erasure goes by.".into()),
    }
}

/// Without `confirm`, shows what would be erased and asks; with it, erases.
async fn erase(State(state): State<AppState>, form: PostedForm) -> DashResult<Response> {
    let PostedForm { session, fields } = form;
    let kind = fields.get("kind").unwrap_or_default().to_owned();
    let value = fields.get("value").unwrap_or_default().to_owned();
    let subject = match subject(&kind, &value) {
        Ok(subject) => subject,
        Err(problem) => {
            let retention = store::retention(&state.db, session.user.id).await?;
            let markup = overview_page(&session, retention, Some(&problem));
            return Ok((StatusCode::UNPROCESSABLE_ENTITY, markup).into_response());
        }
    };
    if fields.get("confirm") != Some("yes") {
        let held = store::select(&state.db, session.user.id, &subject, true).await?;
        let body = html! {
            form.card method="post" action="/privacy/erase" {
                (csrf_field(&session))
                input type="hidden" name="kind" value=(kind);
                input type="hidden" name="value" value=(value);
                input type="hidden" name="confirm" value="yes";
                p { "Erase the buyer's personal data from " strong { (held.len()) } " shipment(s)? This cannot be undone." }
                div.buttons {
                    button.danger type="submit" { "Erase" }
                    a href="/privacy" { "Cancel" }
                }
            }
        };
        return Ok(page(&session, Section::Privacy, "Confirm erasure", body).into_response());
    }
    let erased = service::erase(&state.db, session.user.id, &subject).await?;
    let body = html! {
        div.card {
            p role="status" { "Erased the buyer's personal data from " (erased.len()) " shipment(s)." }
            p { a href="/privacy" { "Back to privacy" } }
        }
    };
    Ok(page(&session, Section::Privacy, "Erased", body).into_response())
}

async fn access_log(
    State(state): State<AppState>,
    session: Session,
    RawQuery(raw): RawQuery,
) -> DashResult<Markup> {
    let query = QueryParams::parse(raw.as_deref());
    let number = query
        .get("page")
        .and_then(|p| p.parse::<i64>().ok())
        .filter(|p| *p >= 1)
        .unwrap_or(1);
    let (entries, count) = store::access_log(
        &state.db,
        session.user.id,
        LOG_PAGE,
        (number - 1) * LOG_PAGE,
    )
    .await?;
    let body = html! {
        p { a href="/privacy" { "← Privacy" } }
        p { (count) " reads of buyers' personal data, newest first; kept for "
            (service::ACCESS_LOG_RETENTION_DAYS) " days." }
        table {
            thead { tr { th { "When" } th { "Who" } th { "What" } th { "Shipments" } th { "Filter" } } }
            tbody {
                @for entry in &entries {
                    tr {
                        td { (when(entry.at)) }
                        td { (entry.actor) }
                        td { (entry.action) }
                        td {
                            @for id in entry.shipment_ids.iter().flatten() {
                                a href={"/shipments/" (id)} { (id) } " "
                            }
                        }
                        td { (entry.filter.as_deref().unwrap_or("—")) }
                    }
                }
            }
        }
        p {
            @if number > 1 { a href={"/privacy/access-log?page=" (number - 1)} { "← Newer" } " " }
            @if number * LOG_PAGE < count { a href={"/privacy/access-log?page=" (number + 1)} { "Older →" } }
        }
    };
    Ok(page(&session, Section::Privacy, "Access log", body))
}
