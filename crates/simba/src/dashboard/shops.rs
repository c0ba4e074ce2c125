//! The seller's shops: a list with each shop's sync health, the add / edit form (the secret
//! write-only), deletion after a confirmation, and "Sync now".

use std::collections::HashMap;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use secrecy::SecretString;

use super::layout::{Field, Section, csrf_field, maybe_when, page, pager, when};
use super::{DashError, DashResult, PageId, PostedForm, Session};
use crate::domain::{Timestamp, Trigger, ValidationErrors};
use crate::services::shops::{self as shop_service, REQUIRED_TO_REPLACE, ShopError, ShopInput};
use crate::state::AppState;
use crate::store::push::{self, PushStatus};
use crate::store::shops::{self, Shop};
use crate::store::sync_runs;
use crate::sync::{self, QueueError};
use crate::web::{PageParams, QueryParams};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/shops", get(list))
        .route("/shops/new", get(new_form).post(create))
        .route("/shops/{id}/edit", get(edit_form).post(update))
        .route("/shops/{id}/delete", get(confirm_delete).post(delete))
        .route("/shops/{id}/sync", post(sync_now))
}

async fn list(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> DashResult<Markup> {
    let query = QueryParams::parse(query.as_deref());
    let params = PageParams::from_query(&query).unwrap_or_default();
    let user_id = session.user.id;
    let (rows, count) = shops::list(&state.db, user_id, params.limit(), params.offset()).await?;
    let failing: HashMap<i64, Timestamp> = sync_runs::failing_since(&state.db, user_id)
        .await?
        .into_iter()
        .collect();
    let pushes: HashMap<i64, push::Subscription> = push::for_user(&state.db, user_id)
        .await?
        .into_iter()
        .map(|p| (p.shop_id, p))
        .collect();
    let body = html! {
        p.actions { a.button href="/shops/new" { "Add a shop" } }
        @if rows.is_empty() {
            p { "No shops yet. Add one with its marketplace API credentials to start syncing." }
        } @else {
            div.scroll {
                table {
                    caption.visually-hidden { "Your shops and their sync status" }
                    thead { tr {
                        th scope="col" { "Shop" }
                        th scope="col" { "Client id" }
                        th scope="col" { "Shipments" }
                        th scope="col" { "Last sync" }
                        th scope="col" { "Status" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for shop in &rows {
                            tr {
                                th scope="row" { (shop.name) }
                                td { code { (shop.client_id) } }
                                td.num { a href={"/shipments?shop=" (shop.id)} { (shop.shipment_count) } }
                                td { (maybe_when(shop.last_synced_at)) }
                                td { (status(shop, failing.get(&shop.id).copied(), pushes.get(&shop.id))) }
                                td.row-actions {
                                    form method="post" action={"/shops/" (shop.id) "/sync"} {
                                        (csrf_field(&session))
                                        button type="submit" disabled[shop.active_run_id.is_some()] {
                                            "Sync now" span.visually-hidden { ": " (shop.name) }
                                        }
                                    }
                                    a href={"/runs?shop=" (shop.id)} { "Runs" span.visually-hidden { " of " (shop.name) } }
                                    a href={"/shops/" (shop.id) "/edit"} { "Edit" span.visually-hidden { " " (shop.name) } }
                                    a href={"/shops/" (shop.id) "/delete"} { "Delete" span.visually-hidden { " " (shop.name) } }
                                }
                            }
                        }
                    }
                }
            }
            (pager("/shops", &query, params, count))
        }
    };
    Ok(page(&session, Section::Shops, "Shops", body))
}

/// What needs the seller's attention first: rejected credentials, then a running sync, then
/// failures since the last success.
fn status(
    shop: &Shop,
    failing_since: Option<Timestamp>,
    push: Option<&push::Subscription>,
) -> Markup {
    html! {
        ul.status {
            @if let Some(at) = shop.credentials_rejected_at {
                li.bad { "Credentials rejected " (when(at)) }
            }
            @if let Some(run) = shop.active_run_id {
                li.live { a href={"/runs/" (run)} { "Syncing now (run " (run) ")" } }
            }
            @if let Some(since) = failing_since {
                li.bad { "Failing since " (when(since)) }
            }
            @if shop.credentials_rejected_at.is_none() && shop.active_run_id.is_none() && failing_since.is_none() {
                li.ok { @if shop.last_synced_at.is_some() { "OK" } @else { "Never synced" } }
            }
            @if !shop.auto_sync {
                li { "Automatic sync off" }
            }
            @if let Some(push) = push.filter(|_| shop.push_enabled) {
                @match push.status {
                    PushStatus::Active => li.ok {
                        "Push on, " (push.events_received) " events"
                        @if let Some(at) = push.last_event_at { ", last " (when(at)) }
                        @if push.events_rejected > 0 { ", " (push.events_rejected) " rejected" }
                    },
                    PushStatus::Pending => li { "Push being set up" },
                    PushStatus::Disabled => li.bad {
                        "Push disabled by the marketplace"
                        @if let Some(at) = push.disabled_at { " " (when(at)) }
                        ", being enabled again"
                    },
                }
                @if let (Some(at), Some(found)) = (push.reconciled_at, &push.reconciliation) {
                    @if found.gaps() > 0 {
                        li.bad {
                            "Reconciled " (when(at)) ": " (found.gaps()) " shipments push had missed, fetched"
                            @if found.full_sync_queued { " by a full sync" }
                        }
                    } @else {
                        li.ok { "Reconciled " (when(at)) ": nothing missing" }
                    }
                }
            }
        }
    }
}

/// The form's values; the secret is never shown back.
struct FormValues {
    name: String,
    client_id: String,
    auto_sync: bool,
    push_enabled: bool,
    sync_interval_minutes: String,
}

impl FormValues {
    fn of(shop: &Shop) -> FormValues {
        FormValues {
            name: shop.name.clone(),
            client_id: shop.client_id.clone(),
            auto_sync: shop.auto_sync,
            push_enabled: shop.push_enabled,
            sync_interval_minutes: shop.sync_interval_minutes.to_string(),
        }
    }

    fn posted(fields: &QueryParams) -> FormValues {
        let text = |name| fields.get(name).unwrap_or_default().to_owned();
        FormValues {
            name: text("name"),
            client_id: text("client_id"),
            auto_sync: fields.get("auto_sync").is_some(),
            push_enabled: fields.get("push_enabled").is_some(),
            sync_interval_minutes: text("sync_interval_minutes"),
        }
    }
}

/// The shop service's input for the posted form, so that the API and the dashboard check
/// shops by the same rules.
fn shop_input(fields: &QueryParams) -> ShopInput {
    ShopInput {
        name: fields.get("name").map(str::to_owned),
        marketplace: None,
        client_id: fields.get("client_id").map(str::to_owned),
        client_secret: fields
            .get("client_secret")
            .map(|s| SecretString::from(s.to_owned())),
        auto_sync: Some(fields.get("auto_sync").is_some()),
        // A non-number becomes 0, which the interval's own rule rejects with its range.
        sync_interval_minutes: fields
            .get("sync_interval_minutes")
            .map(|v| v.trim().parse().unwrap_or(0)),
        push_enabled: Some(fields.get("push_enabled").is_some()),
    }
}

fn shop_form(
    session: &Session,
    action: &str,
    values: &FormValues,
    editing: bool,
    errors: &ValidationErrors,
    problem: Option<&str>,
) -> Markup {
    let secret_hint = if editing {
        "Write-only: leave empty to keep the stored secret."
    } else {
        "Write-only: stored encrypted and never shown again."
    };
    html! {
        form.card method="post" action=(action) novalidate {
            @if let Some(problem) = problem {
                p.error role="alert" { (problem) }
            } @else if !errors.is_empty() {
                p.error role="alert" { "Please correct the fields marked below." }
            }
            (csrf_field(session))
            (Field { name: "name", label: "Name", kind: "text", value: &values.name, required: true, hint: None }.render(errors))
            (Field { name: "client_id", label: "Client id", kind: "text", value: &values.client_id, required: true,
                     hint: Some("From the marketplace's API credentials.") }.render(errors))
            (Field { name: "client_secret", label: "Client secret", kind: "password", value: "", required: !editing,
                     hint: Some(secret_hint) }.render(errors))
            (Field { name: "sync_interval_minutes", label: "Minutes between automatic syncs", kind: "number",
                     value: &values.sync_interval_minutes, required: true, hint: Some("From 1 to 10080 (a week).") }.render(errors))
            div.field.check {
                input #f-auto_sync type="checkbox" name="auto_sync" value="on" checked[values.auto_sync];
                label for="f-auto_sync" { "Sync automatically" }
            }
            div.field.check {
                input #f-push_enabled type="checkbox" name="push_enabled" value="on" checked[values.push_enabled];
                label for="f-push_enabled" { "Receive new shipments by push from the marketplace" }
                p.hint { "bol notifies Simba within seconds; automatic syncs still run, less often, as a safety net." }
            }
            div.buttons {
                button type="submit" { @if editing { "Save changes" } @else { "Add shop" } }
                a href="/shops" { "Cancel" }
            }
        }
    }
}

async fn new_form(session: Session) -> Markup {
    let values = FormValues {
        name: String::new(),
        client_id: String::new(),
        auto_sync: true,
        push_enabled: false,
        sync_interval_minutes: "15".into(),
    };
    let form = shop_form(
        &session,
        "/shops/new",
        &values,
        false,
        &ValidationErrors::default(),
        None,
    );
    page(&session, Section::Shops, "Add a shop", form)
}

/// The form again with what went wrong: 422 for invalid fields, 409 for a duplicate.
fn rejected(
    session: &Session,
    action: &str,
    title: &str,
    fields: &QueryParams,
    editing: bool,
    error: ShopError,
) -> DashResult<Response> {
    let values = FormValues::posted(fields);
    let (status, errors, problem) = match error {
        ShopError::Invalid(errors) => (StatusCode::UNPROCESSABLE_ENTITY, errors, None),
        ShopError::Duplicate => (
            StatusCode::CONFLICT,
            ValidationErrors::default(),
            Some(ShopError::Duplicate.to_string()),
        ),
        ShopError::Store(error) => return Err(error.into()),
    };
    let form = shop_form(
        session,
        action,
        &values,
        editing,
        &errors,
        problem.as_deref(),
    );
    Ok((status, page(session, Section::Shops, title, form)).into_response())
}

async fn create(State(state): State<AppState>, form: PostedForm) -> DashResult<Response> {
    let PostedForm { session, fields } = form;
    let input = shop_input(&fields);
    match shop_service::create(&state.db, &state.cipher, session.user.id, &input).await {
        Ok(_) => Ok(Redirect::to("/shops").into_response()),
        Err(e) => rejected(&session, "/shops/new", "Add a shop", &fields, false, e),
    }
}

async fn owned(state: &AppState, session: &Session, id: i64) -> DashResult<Shop> {
    shops::get(&state.db, session.user.id, id)
        .await?
        .ok_or(DashError::NotFound)
}

async fn edit_form(
    State(state): State<AppState>,
    session: Session,
    PageId(id): PageId,
) -> DashResult<Markup> {
    let shop = owned(&state, &session, id).await?;
    let title = format!("Edit {}", shop.name);
    let form = shop_form(
        &session,
        &format!("/shops/{id}/edit"),
        &FormValues::of(&shop),
        true,
        &ValidationErrors::default(),
        None,
    );
    Ok(page(&session, Section::Shops, &title, form))
}

async fn update(
    State(state): State<AppState>,
    PageId(id): PageId,
    form: PostedForm,
) -> DashResult<Response> {
    let PostedForm { session, fields } = form;
    let shop = owned(&state, &session, id).await?;
    let action = format!("/shops/{id}/edit");
    let title = format!("Edit {}", shop.name);
    let input = shop_input(&fields);
    match shop_service::update(&state.db, &state.cipher, &shop, &input, REQUIRED_TO_REPLACE).await {
        Ok(_) => Ok(Redirect::to("/shops").into_response()),
        Err(e) => rejected(&session, &action, &title, &fields, true, e),
    }
}

async fn confirm_delete(
    State(state): State<AppState>,
    session: Session,
    PageId(id): PageId,
) -> DashResult<Markup> {
    let shop = owned(&state, &session, id).await?;
    let body = html! {
        form.card method="post" action={"/shops/" (id) "/delete"} {
            (csrf_field(&session))
            p { "Delete " strong { (shop.name) } " with its " (shop.shipment_count)
                " stored shipments and all its sync runs? This cannot be undone." }
            div.buttons {
                button.danger type="submit" { "Delete shop" }
                a href="/shops" { "Keep it" }
            }
        }
    };
    Ok(page(
        &session,
        Section::Shops,
        &format!("Delete {}", shop.name),
        body,
    ))
}

async fn delete(
    State(state): State<AppState>,
    PageId(id): PageId,
    form: PostedForm,
) -> DashResult<Redirect> {
    let user_id = form.session.user.id;
    if !shops::delete(&state.db, &state.cipher, user_id, id).await? {
        return Err(DashError::NotFound);
    }
    tracing::info!(shop.id = id, user.id = user_id, "shop deleted");
    Ok(Redirect::to("/shops"))
}

/// Starts a sync and shows its progress; when one is already active, shows that one.
async fn sync_now(
    State(state): State<AppState>,
    PageId(id): PageId,
    form: PostedForm,
) -> DashResult<Redirect> {
    shops::get(&state.db, form.session.user.id, id)
        .await?
        .ok_or(DashError::NotFound)?;
    let run_id = match sync::queue_run(&state.engine, id, None, Trigger::Api).await {
        Ok(run) => run.id,
        Err(QueueError::Active(active)) => active,
        Err(QueueError::NoShop(_)) => return Err(DashError::NotFound),
        Err(QueueError::Store(e)) => return Err(e.into()),
    };
    Ok(Redirect::to(&format!("/runs/{run_id}")))
}
