//! The seller's webhook endpoints: a list with each one's health (failing since when, turned
//! off), the add form (the secret shown once, on the page that follows it), one endpoint's
//! recent deliveries with "Send test event" and "Redeliver", and deletion after a confirmation.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use secrecy::ExposeSecret;

use super::layout::{Field, Section, csrf_field, maybe_when, page, status_badge, when};
use super::{DashError, DashResult, PageId, PostedForm, Session};
use crate::domain::ValidationErrors;
use crate::domain::webhook::EventType;
use crate::services::webhooks::{self as service, EndpointInput, WebhookError};
use crate::state::AppState;
use crate::store::webhooks::{self as store, Endpoint};
use crate::web::QueryParams;

/// The deliveries an endpoint's page shows, newest first.
const RECENT_DELIVERIES: i64 = 25;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhooks", get(list).post(create))
        .route("/webhooks/{id}", get(detail))
        .route("/webhooks/{id}/test", post(send_test))
        .route("/webhooks/{id}/delete", get(confirm_delete).post(delete))
        .route(
            "/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            post(redeliver),
        )
}

/// The endpoint's state in words, the failing mark first.
fn health(endpoint: &Endpoint) -> Markup {
    html! {
        ul.status {
            @if let Some(since) = endpoint.failing_since {
                li.bad { "Failing since " (when(since)) }
            }
            @if !endpoint.active {
                li.bad { "Off" }
            } @else if endpoint.failing_since.is_none() {
                li.ok { "OK" }
            }
        }
    }
}

async fn list(State(state): State<AppState>, session: Session) -> DashResult<Markup> {
    let (rows, _) =
        store::list_endpoints(&state.db, session.user.id, service::MAX_ENDPOINTS, 0).await?;
    let body = html! {
        (endpoints_table(&rows))
        h2 { "Add an endpoint" }
        (endpoint_form(&session, &FormValues::default(), &ValidationErrors::default(), None))
    };
    Ok(page(&session, Section::Webhooks, "Webhooks", body))
}

fn endpoints_table(rows: &[Endpoint]) -> Markup {
    html! {
        @if rows.is_empty() {
            p { "No webhook endpoints yet. Add one to be told when shipments change or a sync ends." }
        } @else {
            div.scroll {
                table {
                    caption.visually-hidden { "Your webhook endpoints" }
                    thead { tr {
                        th scope="col" { "URL" }
                        th scope="col" { "Events" }
                        th scope="col" { "Status" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for endpoint in rows {
                            tr {
                                th scope="row" {
                                    code { (endpoint.url) }
                                    @if !endpoint.description.is_empty() { br; (endpoint.description) }
                                }
                                td { (endpoint.events.names().join(", ")) }
                                td { (health(endpoint)) }
                                td.row-actions {
                                    a href={"/webhooks/" (endpoint.id)} { "Deliveries" }
                                    a href={"/webhooks/" (endpoint.id) "/delete"} { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The add form's values, kept when it is shown again with errors.
#[derive(Default)]
struct FormValues {
    url: String,
    description: String,
    events: Vec<String>,
}

impl FormValues {
    fn posted(fields: &QueryParams) -> FormValues {
        FormValues {
            url: fields.get("url").unwrap_or_default().to_owned(),
            description: fields.get("description").unwrap_or_default().to_owned(),
            events: posted_events(fields),
        }
    }
}

fn posted_events(fields: &QueryParams) -> Vec<String> {
    fields
        .pairs()
        .iter()
        .filter(|(k, _)| k == "events")
        .map(|(_, v)| v.clone())
        .collect()
}

fn endpoint_form(
    session: &Session,
    values: &FormValues,
    errors: &ValidationErrors,
    problem: Option<&str>,
) -> Markup {
    html! {
        form.card method="post" action="/webhooks" novalidate {
            @if let Some(problem) = problem {
                p.error role="alert" { (problem) }
            } @else if !errors.is_empty() {
                p.error role="alert" { "Please correct the fields marked below." }
            }
            (csrf_field(session))
            (Field { name: "url", label: "URL", kind: "url", value: &values.url, required: true,
                     hint: Some("https:// to a public address; deliveries are signed as Standard Webhooks.") }.render(errors))
            (Field { name: "description", label: "Description", kind: "text", value: &values.description,
                     required: false, hint: None }.render(errors))
            fieldset.field {
                legend { "Events (required)" }
                @for event in EventType::ALL {
                    div.check {
                        input id={"f-event-" (event.as_str())} type="checkbox" name="events" value=(event.as_str())
                            checked[values.events.iter().any(|e| e == event.as_str())];
                        label for={"f-event-" (event.as_str())} { code { (event.as_str()) } }
                    }
                }
                @if let Some(messages) = errors.0.get("events") {
                    p.error { "Events " (messages.join("; ")) }
                }
            }
            div.buttons { button type="submit" { "Add endpoint" } }
        }
    }
}

async fn create(State(state): State<AppState>, form: PostedForm) -> DashResult<Response> {
    let PostedForm { session, fields } = form;
    let input = EndpointInput {
        url: fields.get("url").map(str::to_owned),
        events: Some(posted_events(&fields)),
        description: fields.get("description").map(str::to_owned),
        active: None,
    };
    let settings = &state.config.webhooks;
    let (status, errors, problem) = match service::create(
        &state.db,
        &state.cipher,
        settings,
        session.user.id,
        &input,
    )
    .await
    {
        Ok((endpoint, secret)) => {
            let body = html! {
                div.card {
                    p { "The endpoint " code { (endpoint.url) } " was added. Its signing secret is shown only now: store it where your receiver can read it." }
                    p { code.secret { (secret.expose_secret()) } }
                    p { a href={"/webhooks/" (endpoint.id)} { "Go to its deliveries" } " · " a href="/webhooks" { "Back to webhooks" } }
                }
            };
            let page = page(&session, Section::Webhooks, "Endpoint added", body);
            return Ok((StatusCode::CREATED, page).into_response());
        }
        Err(WebhookError::Invalid(errors)) => (StatusCode::UNPROCESSABLE_ENTITY, errors, None),
        Err(WebhookError::TooMany) => (
            StatusCode::CONFLICT,
            ValidationErrors::default(),
            Some(WebhookError::TooMany.to_string()),
        ),
        Err(WebhookError::Store(e)) => return Err(e.into()),
    };
    let (rows, _) =
        store::list_endpoints(&state.db, session.user.id, service::MAX_ENDPOINTS, 0).await?;
    let values = FormValues::posted(&fields);
    let body = html! {
        (endpoints_table(&rows))
        h2 { "Add an endpoint" }
        (endpoint_form(&session, &values, &errors, problem.as_deref()))
    };
    Ok((status, page(&session, Section::Webhooks, "Webhooks", body)).into_response())
}

async fn owned(state: &AppState, session: &Session, id: i64) -> DashResult<Endpoint> {
    store::get_endpoint(&state.db, session.user.id, id)
        .await?
        .ok_or(DashError::NotFound)
}

async fn detail(
    State(state): State<AppState>,
    session: Session,
    PageId(id): PageId,
) -> DashResult<Markup> {
    let endpoint = owned(&state, &session, id).await?;
    let (deliveries, count) =
        store::list_deliveries(&state.db, endpoint.id, RECENT_DELIVERIES, 0).await?;
    let body = html! {
        div.card {
            p { code { (endpoint.url) } }
            p { "Events: " (endpoint.events.names().join(", ")) }
            (health(&endpoint))
            form method="post" action={"/webhooks/" (id) "/test"} {
                (csrf_field(&session))
                button type="submit" { "Send test event" }
            }
        }
        h2 { "Recent deliveries" }
        @if deliveries.is_empty() {
            p { "No deliveries yet." }
        } @else {
            p { "The newest " (deliveries.len()) " of " (count) "." }
            div.scroll {
                table {
                    caption.visually-hidden { "Recent deliveries to this endpoint" }
                    thead { tr {
                        th scope="col" { "Event" }
                        th scope="col" { "Status" }
                        th scope="col" { "Attempts" }
                        th scope="col" { "Last answer" }
                        th scope="col" { "Next attempt" }
                        th scope="col" { "Created" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for delivery in &deliveries {
                            tr {
                                th scope="row" { code { (delivery.event_type) } br; small { (delivery.event_uid) } }
                                td { (status_badge(delivery.status.as_str())) }
                                td.num { (delivery.attempts) }
                                td {
                                    @if let Some(code) = delivery.last_status_code { "HTTP " (code) " " }
                                    @if let Some(error) = &delivery.last_error { (error) }
                                }
                                td { (maybe_when(delivery.next_attempt_at)) }
                                td { (when(delivery.created_at)) }
                                td.row-actions {
                                    form method="post" action={"/webhooks/" (id) "/deliveries/" (delivery.id) "/redeliver"} {
                                        (csrf_field(&session))
                                        button type="submit" { "Redeliver" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        p { a href="/webhooks" { "Back to webhooks" } }
    };
    Ok(page(
        &session,
        Section::Webhooks,
        "Webhook deliveries",
        body,
    ))
}

async fn send_test(
    State(state): State<AppState>,
    PageId(id): PageId,
    form: PostedForm,
) -> DashResult<Redirect> {
    let endpoint = owned(&state, &form.session, id).await?;
    service::send_test(&state.db, &endpoint).await?;
    Ok(Redirect::to(&format!("/webhooks/{id}")))
}

async fn redeliver(
    State(state): State<AppState>,
    Path((id, delivery_id)): Path<(String, String)>,
    form: PostedForm,
) -> DashResult<Redirect> {
    let (Ok(id), Ok(delivery_id)) = (id.parse::<i64>(), delivery_id.parse::<i64>()) else {
        return Err(DashError::NotFound);
    };
    store::redeliver(&state.db, form.session.user.id, id, delivery_id)
        .await?
        .ok_or(DashError::NotFound)?;
    Ok(Redirect::to(&format!("/webhooks/{id}")))
}

async fn confirm_delete(
    State(state): State<AppState>,
    session: Session,
    PageId(id): PageId,
) -> DashResult<Markup> {
    let endpoint = owned(&state, &session, id).await?;
    let body = html! {
        form.card method="post" action={"/webhooks/" (id) "/delete"} {
            (csrf_field(&session))
            p { "Delete the endpoint " code { (endpoint.url) } " with its delivery log? This cannot be undone." }
            div.buttons {
                button.danger type="submit" { "Delete endpoint" }
                a href="/webhooks" { "Keep it" }
            }
        }
    };
    Ok(page(&session, Section::Webhooks, "Delete endpoint", body))
}

async fn delete(
    State(state): State<AppState>,
    PageId(id): PageId,
    form: PostedForm,
) -> DashResult<Redirect> {
    if !store::delete_endpoint(&state.db, form.session.user.id, id).await? {
        return Err(DashError::NotFound);
    }
    Ok(Redirect::to("/webhooks"))
}
