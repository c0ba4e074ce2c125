//! The sellers' web dashboard at `/`: server-rendered pages over the same services, store and
//! session tokens as the JSON API, with HTML errors of its own, CSRF-checked forms and assets
//! compiled in. An edge beside the API, never on top of it: what both read from a request is
//! `web`'s, what both do is `services`'.

mod auth;
mod csv;
mod layout;
mod privacy;
mod runs;
mod shipments;
mod shops;
mod webhooks;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::crypto::same_secret;
use crate::state::AppState;
use crate::store::StoreError;
use crate::store::tokens::TokenKind;
use crate::store::users::User;
use crate::web::QueryParams;

const CSS: &str = include_str!("../../assets/dashboard/dashboard.css");
const LIVE_JS: &str = include_str!("../../assets/dashboard/live.js");

/// Holds the key of the session's token: a row of the same table as the API's tokens, of kind
/// `dashboard`, which expires (`auth::session`).
const SESSION_COOKIE: &str = "simba_session";

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(auth::routes())
        .merge(shops::routes())
        .merge(runs::routes())
        .merge(shipments::routes())
        .merge(webhooks::routes())
        .merge(privacy::routes())
        .route("/shipments.csv", get(csv::export))
        .route(
            "/static/dashboard.css",
            get(|| async { asset("text/css; charset=utf-8", CSS) }),
        )
        .route(
            "/static/live.js",
            get(|| async { asset("text/javascript; charset=utf-8", LIVE_JS) }),
        )
        .layer(axum::middleware::map_response(content_security_policy))
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
}

/// No script from elsewhere runs in a page, and no form posts elsewhere; the headers every
/// answer carries (no framing, no caching, no sniffing) are the API's (`api::security_headers`).
async fn content_security_policy(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'; form-action 'self'"),
    );
    response
}

/// The HTML 404 page, which `app`'s fallback shows a browser outside the API.
pub fn not_found_page() -> Response {
    DashError::NotFound.into_response()
}

/// Why a dashboard request ends in an error page (or, logged out, at the login form).
#[derive(Debug)]
pub enum DashError {
    LoggedOut {
        next: String,
    },
    NotFound,
    /// A POST without this session's CSRF token.
    Forbidden,
    Unavailable,
    Internal,
}

impl DashError {
    /// An unexpected failure: logged with its cause chain, answered with a fixed page.
    fn internal(cause: impl Into<anyhow::Error>) -> DashError {
        tracing::error!(error = format!("{:#}", cause.into()), "dashboard error");
        DashError::Internal
    }
}

/// Queueing a sync still answers as the API does; the page it leads to is chosen here.
/// What the store's failures look like to a seller: busy is "try again", the rest a fixed page.
impl From<StoreError> for DashError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(_) | StoreError::Busy(_) => {
                tracing::warn!(
                    error = format!("{:#}", anyhow::Error::from(error)),
                    "service unavailable"
                );
                DashError::Unavailable
            }
            other => DashError::internal(other),
        }
    }
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            DashError::LoggedOut { next } => {
                return Redirect::to(&login_url(&next)).into_response();
            }
            DashError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing at this address, or it is not yours.",
            ),
            DashError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Form expired",
                "This form did not come from your current session. Go back, reload the page and \
                 send it again.",
            ),
            DashError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Temporarily unavailable",
                "The service is busy or restarting; try again in a moment.",
            ),
            DashError::Internal => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "An unexpected error occurred; it has been logged.",
            ),
        };
        (status, layout::error_page(title, message)).into_response()
    }
}

pub type DashResult<T> = Result<T, DashError>;

fn login_url(next: &str) -> String {
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    format!("/login?next={next}")
}

/// A logged-in seller, from the session cookie, which must hold a dashboard token.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    token_id: i64,
    /// Put in every form this session's pages show; a POST must send it back.
    csrf: String,
}

impl FromRequestParts<AppState> for Session {
    type Rejection = DashError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> DashResult<Session> {
        let logged_out = || DashError::LoggedOut {
            next: parts
                .uri
                .path_and_query()
                .map_or("/shops".into(), |p| p.as_str().to_owned()),
        };
        let key = cookie(&parts.headers, SESSION_COOKIE).ok_or_else(logged_out)?;
        // An API token never expires: in the cookie it would be a session without end.
        let found = crate::auth::authenticate(state, key)
            .await?
            .filter(|found| found.kind == TokenKind::Dashboard)
            .ok_or_else(logged_out)?;
        Ok(Session {
            user: found.user,
            token_id: found.token_id,
            csrf: csrf_token(key),
        })
    }
}

/// The CSRF token of a session: a hash of its secret key under a purpose prefix, so it can be
/// checked without storing anything, differs from the stored token hash, and reveals nothing
/// of the key.
fn csrf_token(session_key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"simba.dashboard.csrf\0");
    hasher.update(session_key.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value of cookie `name`, if the request has it.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value for a cookie scripts cannot read, sent on top-level navigations from
/// other sites (so links into the dashboard work) but not on their POSTs; `Secure` when the
/// request came over HTTPS through a proxy.
fn set_cookie(name: &str, value: &str, max_age: Option<u32>, headers: &HeaderMap) -> HeaderValue {
    let mut cookie = format!("{name}={value}; HttpOnly; SameSite=Lax; Path=/");
    if let Some(seconds) = max_age {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    if headers
        .get("x-forwarded-proto")
        .is_some_and(|p| p.as_bytes() == b"https")
    {
        cookie.push_str("; Secure");
    }
    HeaderValue::from_str(&cookie).expect("cookie values are URL-safe base64 or hex")
}

/// A urlencoded form body, as name/value pairs.
fn form_fields(body: &[u8]) -> QueryParams {
    QueryParams::parse(Some(&String::from_utf8_lossy(body)))
}

/// A POSTed form of a logged-in seller whose `csrf` field matches the session.
pub struct PostedForm {
    pub session: Session,
    pub fields: QueryParams,
}

impl FromRequest<AppState> for PostedForm {
    type Rejection = DashError;

    async fn from_request(request: Request, state: &AppState) -> DashResult<PostedForm> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state).await?;
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(|_| DashError::Forbidden)?;
        let fields = form_fields(&body);
        if !same_secret(fields.get("csrf").unwrap_or_default(), &session.csrf) {
            return Err(DashError::Forbidden);
        }
        Ok(PostedForm { session, fields })
    }
}

/// The integer id in a page's path; anything else names no page.
pub struct PageId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for PageId {
    type Rejection = DashError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> DashResult<PageId> {
        axum::extract::Path::<i64>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(id)| PageId(id))
            .map_err(|_| DashError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::token;

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a_simba_session=x; simba_session=abc; other=1"),
        );
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "missing"), None);
    }

    #[test]
    fn csrf_tokens_are_per_session_and_not_the_stored_hash() {
        assert_eq!(csrf_token("k1"), csrf_token("k1"));
        assert_ne!(csrf_token("k1"), csrf_token("k2"));
        assert_ne!(csrf_token("k1"), token::hash("k1"));
        assert!(same_secret(&csrf_token("k1"), &csrf_token("k1")));
        assert!(!same_secret(&csrf_token("k1"), &csrf_token("k2")));
        assert!(!same_secret("", &csrf_token("k1")));
    }

    #[test]
    fn the_secure_flag_follows_the_forwarded_scheme() {
        let mut headers = HeaderMap::new();
        let plain = set_cookie("c", "v", None, &headers);
        assert_eq!(plain, "c=v; HttpOnly; SameSite=Lax; Path=/");
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let secure = set_cookie("c", "", Some(0), &headers);
        assert_eq!(
            secure,
            "c=; HttpOnly; SameSite=Lax; Path=/; Max-Age=0; Secure"
        );
    }
}
