//! Headers on every answer, errors and static assets included: browsers must not guess a
//! content type (a JSON body that a browser sniffs as HTML runs its script), no other site may
//! frame a page (clickjacking), and no cache may keep an answer that carries a seller's data or
//! a credential.

use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// Sets the headers on whatever `next` answers. A page's own Content-Security-Policy (the
/// dashboard's) and an asset's own Cache-Control are kept; every other answer is `no-store`,
/// authenticated or not: nearly all of them hold a seller's data, a token or an error about
/// them, and the rest (`/healthz`, the OpenAPI document) lose nothing by it. The compiled-in
/// assets stay cacheable even when a browser sends the session cookie with them, as they are
/// the same for everyone; an answer that sets a cookie is never stored, whatever it says.
pub(super) async fn add(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Only the framing rule: Swagger UI at /docs is a page whose scripts and styles were not
    // written for a stricter policy.
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static("frame-ancestors 'none'"));
    headers
        .entry(header::REFERRER_POLICY)
        .or_insert(HeaderValue::from_static("same-origin"));
    let no_store = HeaderValue::from_static("no-store");
    if headers.contains_key(header::SET_COOKIE) {
        headers.insert(header::CACHE_CONTROL, no_store);
    } else {
        headers.entry(header::CACHE_CONTROL).or_insert(no_store);
    }
    response
}
