//! Conditional requests (RFC 9110 §13): every successful JSON answer to a GET carries an
//! `ETag`, and a GET whose `If-None-Match` matches it is answered 304 with no body.
//!
//! The shipment lists derive their tag from the seller's shipments version and the request
//! ([`version_tag`]) before reading anything else, so that their 304 costs one primary-key read
//! and no rendering. Every other answer is tagged by [`tag_bodies`] with a digest of its body:
//! a tag names the bytes alone, so another seller can match it only by holding the same bytes.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// A strong entity tag of 128 bits of a SHA-256 digest, quoted.
fn strong_tag(digest: Sha256) -> String {
    let digest = digest.finalize();
    format!("\"{}\"", URL_SAFE_NO_PAD.encode(&digest[..16]))
}

/// The tag of a shipment list answer: the seller, their shipments version (which every change
/// to their shipments bumps) and the request's absolute target, which decide the answer's bytes
/// (its rows, count and links) once the version is read before the rows.
pub fn version_tag(user_id: i64, version: i64, uri: &Uri, headers: &HeaderMap) -> String {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    };
    let mut digest = Sha256::new();
    for part in [
        "simba shipments list v1",
        &user_id.to_string(),
        &version.to_string(),
        header("x-forwarded-proto"),
        header(header::HOST.as_str()),
        &uri.to_string(),
    ] {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part);
    }
    strong_tag(digest)
}

/// Whether `If-None-Match` matches `etag`: `*`, or any listed tag equal to it by the weak
/// comparison (`W/` ignored), as RFC 9110 §13.1.2 asks of `If-None-Match`.
pub fn none_match(headers: &HeaderMap, etag: &str) -> bool {
    let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let etag = opaque(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|tag| tag.trim() == "*" || opaque(tag) == etag)
}

/// 304 with the tag and no body.
pub fn not_modified(etag: &str) -> Response {
    let mut response = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// `response` with `etag` as its `ETag`.
pub fn with_etag(mut response: Response, etag: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}

/// Tags a GET's 200 JSON answer that has no tag yet by its body, and answers 304 when the
/// request's `If-None-Match` matches the answer's tag, whoever set it.
pub async fn tag_bodies(request: Request, next: Next) -> Response {
    let conditional = request.method() == Method::GET;
    let mut if_none_match = HeaderMap::new();
    for value in request.headers().get_all(header::IF_NONE_MATCH) {
        if_none_match.append(header::IF_NONE_MATCH, value.clone());
    }
    let response = next.run(request).await;
    if !conditional || response.status() != StatusCode::OK {
        return response;
    }
    let response = match response.headers().get(header::ETAG) {
        Some(_) => response,
        None if is_json(response.headers()) => tag_body(response).await,
        None => return response,
    };
    match response
        .headers()
        .get(header::ETAG)
        .and_then(|tag| tag.to_str().ok())
    {
        Some(etag) if none_match(&if_none_match, etag) => not_modified(etag),
        _ => response,
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"))
}

async fn tag_body(response: Response) -> Response {
    let (parts, body) = response.into_parts();
    // The handlers' JSON is in memory already; this only joins its frames.
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let mut digest = Sha256::new();
    digest.update(&bytes);
    let etag = strong_tag(digest);
    with_etag(Response::from_parts(parts, Body::from(bytes)), &etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, value.parse().unwrap());
        headers
    }

    #[test]
    fn if_none_match_compares_weakly_and_star_matches_anything() {
        let tag = "\"abc\"";
        assert!(none_match(&asking("\"abc\""), tag));
        assert!(none_match(&asking("W/\"abc\""), tag));
        assert!(none_match(&asking("\"x\", W/\"abc\""), tag));
        assert!(none_match(&asking("*"), tag));
        assert!(!none_match(&asking("\"abcd\""), tag));
        assert!(!none_match(&asking("abc"), tag));
        assert!(!none_match(&HeaderMap::new(), tag));
    }

    #[test]
    fn a_version_tag_differs_by_seller_version_and_request() {
        let uri: Uri = "/api/v1/shipments?page=2".parse().unwrap();
        let headers = HeaderMap::new();
        let tag = version_tag(1, 5, &uri, &headers);
        assert_ne!(tag, version_tag(2, 5, &uri, &headers));
        assert_ne!(tag, version_tag(1, 6, &uri, &headers));
        let other: Uri = "/api/v1/shipments?page=3".parse().unwrap();
        assert_ne!(tag, version_tag(1, 5, &other, &headers));
        assert_eq!(tag, version_tag(1, 5, &uri, &headers));
    }
}
