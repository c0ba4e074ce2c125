//! Logging in and out. A login issues an API token (under the API's login throttle) and keeps
//! its key in the session cookie; logging out revokes that token.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use secrecy::SecretString;

use super::layout::bare_page;
use super::{DashResult, PostedForm, SESSION_COOKIE, cookie, form_fields, same_secret, set_cookie};
use crate::api::QueryParams;
use crate::app::AppState;
use crate::auth::token;
use crate::error::ApiError;

/// A random value in a cookie and in the login form: a login POST must carry both, which a
/// form on another site cannot (login CSRF, which would log the victim into the attacker's
/// account).
const LOGIN_COOKIE: &str = "simba_login";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/shops") }))
        .route("/login", get(login_form).post(log_in))
        .route("/logout", post(log_out))
}

/// Where to go after logging in: only a path on this site, never another host.
fn next_path(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or("/shops")
}

async fn login_form(headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let query = QueryParams::parse(query.as_deref());
    render_login(
        StatusCode::OK,
        &headers,
        "",
        next_path(query.get("next")),
        None,
    )
}

/// The login page with a fresh login token (cookie and hidden field).
fn render_login(
    status: StatusCode,
    headers: &HeaderMap,
    username: &str,
    next: &str,
    error: Option<&str>,
) -> Response {
    let login_token = token::generate();
    let body: Markup = html! {
        form.card method="post" action="/login" {
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            input type="hidden" name="csrf" value=(login_token);
            input type="hidden" name="next" value=(next);
            div.field {
                label for="username" { "Username or email" }
                input #username name="username" type="text" value=(username)
                    autocomplete="username" required autofocus;
            }
            div.field {
                label for="password" { "Password" }
                input #password name="password" type="password"
                    autocomplete="current-password" required;
            }
            button type="submit" { "Log in" }
        }
    };
    (
        status,
        [(
            header::SET_COOKIE,
            set_cookie(LOGIN_COOKIE, &login_token, Some(3600), headers),
        )],
        bare_page("Log in", body),
    )
        .into_response()
}

async fn log_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> DashResult<Response> {
    let fields = form_fields(&body);
    let username = fields.get("username").unwrap_or_default();
    let next = next_path(fields.get("next"));
    let sent = fields.get("csrf").unwrap_or_default();
    if !cookie(&headers, LOGIN_COOKIE).is_some_and(|expected| same_secret(sent, expected)) {
        let error = "The login form had expired; please log in again.";
        return Ok(render_login(
            StatusCode::FORBIDDEN,
            &headers,
            username,
            next,
            Some(error),
        ));
    }
    let password = SecretString::from(fields.get("password").unwrap_or_default().to_owned());
    match crate::api::accounts::log_in(&state, username, password, &peer.ip().to_string()).await {
        Ok((key, user)) => {
            tracing::info!(user.id = user.id, "seller logged in to the dashboard");
            Ok((
                AppendHeaders([
                    (
                        header::SET_COOKIE,
                        set_cookie(SESSION_COOKIE, &key, None, &headers),
                    ),
                    (
                        header::SET_COOKIE,
                        set_cookie(LOGIN_COOKIE, "", Some(0), &headers),
                    ),
                ]),
                Redirect::to(next),
            )
                .into_response())
        }
        Err(ApiError::InvalidCredentials) => Ok(render_login(
            StatusCode::UNAUTHORIZED,
            &headers,
            username,
            next,
            Some("That username and password do not match an account."),
        )),
        Err(ApiError::TooManyRequests { retry_after_secs }) => {
            let error = format!(
                "Too many failed attempts; try again in {} minutes.",
                retry_after_secs.div_ceil(60)
            );
            Ok(render_login(
                StatusCode::TOO_MANY_REQUESTS,
                &headers,
                username,
                next,
                Some(&error),
            ))
        }
        Err(other) => Err(other.into()),
    }
}

async fn log_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: PostedForm,
) -> DashResult<Response> {
    crate::store::tokens::revoke(&state.db, form.session.token_id).await?;
    state.auth_cache.forget_user(form.session.user.id);
    Ok((
        [(
            header::SET_COOKIE,
            set_cookie(SESSION_COOKIE, "", Some(0), &headers),
        )],
        Redirect::to("/login"),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(next_path(Some("/runs/3")), "/runs/3");
        assert_eq!(next_path(Some("//evil.example/")), "/shops");
        assert_eq!(next_path(Some("/\\evil.example")), "/shops");
        assert_eq!(next_path(Some("https://evil.example/")), "/shops");
        assert_eq!(next_path(None), "/shops");
    }
}
