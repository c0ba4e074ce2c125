//! Sync runs: a list, and one run's live progress (a fragment that `live.js` re-fetches every
//! second while the run is queued or running; without JavaScript, a "Refresh" link).

use std::collections::HashMap;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::response::Redirect;
use axum::routing::{get, post};
use maud::{Markup, html};

use super::layout::{Section, csrf_field, maybe_when, page, pager, status_badge, when};
use super::{DashError, DashResult, PageId, PostedForm, Session};
use crate::domain::RunStatus;
use crate::state::AppState;
use crate::store::shops;
use crate::store::sync_runs::{self, CancelOutcome, SyncRun};
use crate::web::{PageParams, QueryParams};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/runs", get(list))
        .route("/runs/{id}", get(show))
        .route("/runs/{id}/progress", get(progress))
        .route("/runs/{id}/cancel", post(cancel))
}

/// The detail rate bol.com publishes for shipment details, in calls per marketplace minute.
const DETAIL_CALLS_PER_MINUTE: f64 = 50.0;

/// The least time left: the details still pending, fetched at the published detail rate, which
/// no sync can beat (pending × 60 s / 50). A sandbox's time scale makes its minute pass that
/// many times faster. List pages are left out: there are few (50 shipments each) and they come
/// first, before the pending count is known.
fn eta_seconds(details_pending: i64, time_scale: f64) -> f64 {
    details_pending as f64 * 60.0 / (DETAIL_CALLS_PER_MINUTE * time_scale)
}

fn duration(seconds: f64) -> String {
    let seconds = seconds.ceil() as i64;
    match seconds {
        0..60 => format!("{seconds} s"),
        60..3600 => format!("{} min {} s", seconds / 60, seconds % 60),
        _ => format!("{} h {} min", seconds / 3600, seconds % 3600 / 60),
    }
}

fn is_live(run: &SyncRun) -> bool {
    run.status.is_active()
}

async fn list(
    State(state): State<AppState>,
    session: Session,
    RawQuery(query): RawQuery,
) -> DashResult<Markup> {
    let query = QueryParams::parse(query.as_deref());
    let params = PageParams::from_query(&query).unwrap_or_default();
    let user_id = session.user.id;
    let shop = match query.get("shop").map(str::parse::<i64>) {
        Some(Ok(id)) => Some(
            shops::get(&state.db, user_id, id)
                .await?
                .ok_or(DashError::NotFound)?,
        ),
        Some(Err(_)) => return Err(DashError::NotFound),
        None => None,
    };
    let (runs, count) = match &shop {
        Some(shop) => {
            sync_runs::list_for_shop(&state.db, user_id, shop.id, params.limit(), params.offset())
                .await?
        }
        None => {
            sync_runs::list_for_user(&state.db, user_id, params.limit(), params.offset()).await?
        }
    };
    let mut names = HashMap::new();
    for run in &runs {
        if !names.contains_key(&run.shop_id)
            && let Some(shop) = shops::get(&state.db, user_id, run.shop_id).await?
        {
            names.insert(run.shop_id, shop.name);
        }
    }
    let title = match &shop {
        Some(shop) => format!("Sync runs of {}", shop.name),
        None => "Sync runs".to_owned(),
    };
    let body = html! {
        @if runs.is_empty() {
            p { "No sync runs yet. Start one with “Sync now” on the " a href="/shops" { "shops page" } "." }
        } @else {
            div.scroll {
                table {
                    thead { tr {
                        th scope="col" { "Run" }
                        th scope="col" { "Shop" }
                        th scope="col" { "Status" }
                        th scope="col" { "Mode" }
                        th scope="col" { "Started by" }
                        th scope="col" { "Created" }
                        th scope="col" { "Finished" }
                        th scope="col" { "Stored" }
                        th scope="col" { "Calls" }
                    } }
                    tbody {
                        @for run in &runs {
                            tr {
                                th scope="row" { a href={"/runs/" (run.id)} { "#" (run.id) } }
                                td { (names.get(&run.shop_id).map_or("", String::as_str)) }
                                td { (status_badge(run.status.as_str())) }
                                td { (run.mode.as_str()) }
                                td { (run.trigger) }
                                td { (when(run.created_at)) }
                                td { (maybe_when(run.finished_at)) }
                                td.num { (run.progress.shipments_stored) }
                                td.num { (run.api_calls.total()) }
                            }
                        }
                    }
                }
            }
            (pager("/runs", &query, params, count))
        }
    };
    Ok(page(&session, Section::Runs, &title, body))
}

async fn owned_run(state: &AppState, session: &Session, id: i64) -> DashResult<SyncRun> {
    sync_runs::get(&state.db, session.user.id, id)
        .await?
        .ok_or(DashError::NotFound)
}

async fn show(
    State(state): State<AppState>,
    session: Session,
    PageId(id): PageId,
) -> DashResult<Markup> {
    let run = owned_run(&state, &session, id).await?;
    let shop = shops::get(&state.db, session.user.id, run.shop_id)
        .await?
        .ok_or(DashError::NotFound)?;
    let body = html! {
        p { "Shop: " a href={"/runs?shop=" (shop.id)} { (shop.name) } " · "
            a href={"/shipments?shop=" (shop.id)} { "its shipments" } }
        (progress_fragment(&session, &run, state.config.bol_time_scale))
        script src="/static/live.js" defer {}
    };
    Ok(page(
        &session,
        Section::Runs,
        &format!("Sync run #{}", run.id),
        body,
    ))
}

async fn progress(
    State(state): State<AppState>,
    session: Session,
    PageId(id): PageId,
) -> DashResult<Markup> {
    let run = owned_run(&state, &session, id).await?;
    Ok(progress_fragment(
        &session,
        &run,
        state.config.bol_time_scale,
    ))
}

/// Cancels a queued or running run (it stops after the step in flight); an ended run is left
/// as it is. Either way the run's page shows the outcome.
async fn cancel(
    State(state): State<AppState>,
    PageId(id): PageId,
    form: PostedForm,
) -> DashResult<Redirect> {
    match sync_runs::cancel(&state.db, form.session.user.id, id).await? {
        CancelOutcome::NotFound => Err(DashError::NotFound),
        CancelOutcome::AlreadyEnded(_) | CancelOutcome::Cancelled(_) => {
            Ok(Redirect::to(&format!("/runs/{id}")))
        }
    }
}

/// Everything about a run that changes while it runs; polled while `data-poll` is present.
fn progress_fragment(session: &Session, run: &SyncRun, time_scale: f64) -> Markup {
    let live = is_live(run);
    let p = &run.progress;
    let calls = &run.api_calls;
    let details_total = p.details_fetched + p.details_pending;
    let poll = live.then(|| format!("/runs/{}/progress", run.id));
    html! {
        section #progress data-poll=[poll] aria-busy=(live) {
            p.run-status {
                "Status: " (status_badge(run.status.as_str()))
                @if live { " " a href={"/runs/" (run.id)} { "Refresh" } }
            }
            @if live {
                form.cancel method="post" action={"/runs/" (run.id) "/cancel"} {
                    (csrf_field(session))
                    button.danger #cancel-run type="submit" { "Cancel this run" }
                }
            }
            @if let Some(error) = &run.error {
                p.error role="alert" { (error) }
            }
            @if details_total > 0 {
                div.field {
                    label for="details-progress" { "Details fetched: " (p.details_fetched) " of " (details_total) }
                    progress #details-progress max=(details_total) value=(p.details_fetched) {
                        (p.details_fetched) " of " (details_total)
                    }
                }
            }
            @if run.status == RunStatus::Running && p.details_pending > 0 {
                p { "Time left at the marketplace's rate limit: at least "
                    strong { (duration(eta_seconds(p.details_pending, time_scale))) } }
            } @else if run.status == RunStatus::Queued {
                p { "Waiting for a worker to pick the run up." }
            }
            div.grid {
                dl {
                    dt { "Mode" } dd { (run.mode.as_str()) }
                    dt { "Started by" } dd { (run.trigger) }
                    dt { "Created" } dd { (when(run.created_at)) }
                    dt { "Started" } dd { (maybe_when(run.started_at)) }
                    dt { "Finished" } dd { (maybe_when(run.finished_at)) }
                }
                dl {
                    dt { "List pages fetched" } dd { (p.pages_fetched) }
                    dt { "Shipments seen" } dd { (p.shipments_seen) }
                    dt { "Shipments stored" } dd { (p.shipments_stored) }
                    dt { "Details fetched" } dd { (p.details_fetched) }
                    dt { "Details pending" } dd { (p.details_pending) }
                }
                dl {
                    dt { "Marketplace calls" } dd { (calls.total()) }
                    dt { "List / detail calls" } dd { (calls.list) " / " (calls.detail) }
                    dt { "Token requests (renewals)" } dd { (calls.token) }
                    dt { "Answered 429 (rate limited)" } dd { (calls.rate_limited) }
                    dt { "Errors" } dd { (calls.errors) }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_eta_is_the_pending_details_at_fifty_a_minute() {
        assert_eq!(eta_seconds(100, 1.0), 120.0);
        assert_eq!(eta_seconds(100, 60.0), 2.0);
        assert_eq!(duration(119.2), "2 min 0 s");
        assert_eq!(duration(7260.0), "2 h 1 min");
        assert_eq!(duration(0.4), "1 s");
    }
}
