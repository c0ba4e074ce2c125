//! Logging in and out. A login issues a dashboard token through the one login the API uses too
//! (`services::accounts`, under its throttle) and keeps its key in the session cookie; the
//! session ends when the token expires (`auth::session`) or at logout, which revokes it.

use std::sync::LazyLock;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use maud::{Markup, html};
use secrecy::SecretString;
use url::Url;

use super::layout::bare_page;
use super::{
    DashError, DashResult, PostedForm, SESSION_COOKIE, cookie, form_fields, same_secret, set_cookie,
};
use crate::auth::client_address::ClientAddress;
use crate::auth::token;
use crate::services::accounts::{self, AccountError};
use crate::state::AppState;
use crate::store::tokens::TokenKind;
use crate::web::QueryParams;

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

/// Where a login goes when `next` names no page of this site.
const DEFAULT_NEXT: &str = "/shops";

/// Where to go after logging in: only a path on this site, never another host. `next` is
/// resolved as a browser would resolve the `Location` it ends up in (the WHATWG URL parser
/// drops tabs and newlines, trims control characters and spaces, reads `\` as `/`), against a
/// base of our own; it is kept only if the origin stays ours, and then as the parser
/// serialises it: percent-encoded, with no control character left to break the header.
fn next_path(next: Option<&str>) -> String {
    static BASE: LazyLock<Url> =
        LazyLock::new(|| Url::parse("http://simba.invalid/").expect("the base URL parses"));
    let Some(url) = next.and_then(|next| BASE.join(next).ok()) else {
        return DEFAULT_NEXT.into();
    };
    // Dot segments can leave a path starting with `//` (`/.//evil.example`), which a
    // browser reads as another host when it stands alone.
    if url.origin() != BASE.origin() || url.path().starts_with("//") {
        return DEFAULT_NEXT.into();
    }
    match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    }
}

async fn login_form(headers: HeaderMap, RawQuery(query): RawQuery) -> Response {
    let query = QueryParams::parse(query.as_deref());
    render_login(
        StatusCode::OK,
        &headers,
        "",
        &next_path(query.get("next")),
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
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    body: Bytes,
) -> DashResult<Response> {
    let fields = form_fields(&body);
    let username = fields.get("username").unwrap_or_default();
    let next = &next_path(fields.get("next"));
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
    let logged_in = accounts::log_in(
        &state.db,
        &state.cipher,
        &state.password_checks,
        username,
        password,
        client,
        TokenKind::Dashboard,
    );
    match logged_in.await {
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
        Err(AccountError::InvalidCredentials) => Ok(render_login(
            StatusCode::UNAUTHORIZED,
            &headers,
            username,
            next,
            Some("That username and password do not match an account."),
        )),
        Err(AccountError::Throttled { retry_after_secs }) => {
            let error = format!(
                "Too many failed attempts; try again in {} minutes.",
                retry_after_secs.div_ceil(60)
            );
            let mut page = render_login(
                StatusCode::TOO_MANY_REQUESTS,
                &headers,
                username,
                next,
                Some(&error),
            );
            page.headers_mut()
                .insert(header::RETRY_AFTER, retry_after_secs.into());
            Ok(page)
        }
        Err(AccountError::Store(error)) => Err(error.into()),
        Err(other) => Err(DashError::internal(other)),
    }
}

async fn log_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: PostedForm,
) -> DashResult<Response> {
    let PostedForm { session, .. } = form;
    accounts::log_out(
        &state.db,
        &state.auth_cache,
        &session.user,
        session.token_id,
    )
    .await?;
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
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(next_path(Some("/runs/3")), "/runs/3");
        assert_eq!(
            next_path(Some("/shipments?q=a b&page=2")),
            "/shipments?q=a%20b&page=2"
        );
        assert_eq!(next_path(Some("runs/3")), "/runs/3");
        assert_eq!(next_path(Some("http:evil.example")), "/evil.example");
        assert_eq!(next_path(None), DEFAULT_NEXT);
        assert_eq!(next_path(Some(" ")), "/");
        for evil in [
            "//evil.example/",
            "/\\evil.example",
            "\\/evil.example",
            "https://evil.example/",
            "javascript:alert(1)",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "\t//evil.example",
            " //evil.example",
            "\u{0}//evil.example",
            "\u{1f}//evil.example",
            "/\t\\evil.example",
            "/.//evil.example",
            "/a/..//evil.example",
            "///evil.example",
        ] {
            assert_eq!(next_path(Some(evil)), DEFAULT_NEXT, "{evil:?}");
        }
    }

    #[test]
    fn an_encoded_slash_stays_in_the_path() {
        assert_eq!(next_path(Some("/%2F/evil.example")), "/%2F/evil.example");
        assert_eq!(next_path(Some("/%5C/evil.example")), "/%5C/evil.example");
    }

    #[test]
    fn what_is_kept_has_no_control_character() {
        for c in (0u8..0x20).chain([0x7f]).map(char::from) {
            for next in [format!("/runs{c}/3"), format!("/shipments?q={c}")] {
                let kept = next_path(Some(&next));
                assert!(kept.starts_with('/') && !kept.starts_with("//"), "{next:?}");
                assert!(!kept.chars().any(|k| k.is_control()), "{next:?} → {kept:?}");
                assert!(HeaderValue::from_str(&kept).is_ok(), "{next:?}");
            }
        }
    }
}
