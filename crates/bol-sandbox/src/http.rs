//! Response building shared by the endpoints: bol's content types, request-id headers and
//! problem bodies.

use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};
use serde::Serialize;

/// What a client must accept.
pub(crate) const V10: &str = "application/vnd.retailer.v10+json";
pub(crate) const V10_UTF8: &str = "application/vnd.retailer.v10+json;charset=UTF-8";
pub(crate) const JSON_UTF8: &str = "application/json;charset=UTF-8";
const PROBLEM_TYPE: &str = "https://api.bol.com/problems";

/// A response with a body and a static content type.
pub(crate) fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Body>,
) -> Response {
    let mut r = Response::new(body.into());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// `X-Request-ID` (a UUID) and `X-RID`, as bol's gateway adds them.
pub(crate) fn add_request_ids(headers: &mut HeaderMap, n: u64, seed: u64) {
    let a = crate::prng::mix(seed ^ n);
    let b = crate::prng::mix(a ^ n);
    let id = format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        (b >> 48) & 0x3fff | 0x8000,
        b & 0xffff_ffff_ffff
    );
    let rid = format!("{:016x}", b);
    if let (Ok(id), Ok(rid)) = (HeaderValue::from_str(&id), HeaderValue::from_str(&rid)) {
        headers.insert("x-request-id", id);
        headers.insert("x-rid", rid);
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Violation {
    pub name: &'static str,
    pub reason: String,
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'a str,
    status: u16,
    detail: &'a str,
    host: String,
    instance: &'a str,
    #[serde(skip_serializing_if = "<[Violation]>::is_empty")]
    violations: &'a [Violation],
}

/// A bol problem body. `violations` is spec-required but real 401/404 bodies lack it, so it is
/// only written when there are some.
pub(crate) fn problem(
    status: StatusCode,
    title: &str,
    detail: &str,
    instance: &str,
    violations: &[Violation],
    n: u64,
) -> Vec<u8> {
    let body = Problem {
        kind: PROBLEM_TYPE,
        title,
        status: status.as_u16(),
        detail,
        host: format!("Instance-{:03}", n % 200 + 1),
        instance,
        violations,
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The full request URL, as bol puts it in `instance`.
pub(crate) fn instance(headers: &HeaderMap, path_and_query: &str) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}{path_and_query}")
}

/// True if the `Accept` header names the v10 media type.
pub(crate) fn accepts_v10(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            v.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case(V10))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_v10_media_type_is_acceptable() {
        let mut h = HeaderMap::new();
        assert!(!accepts_v10(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, application/vnd.retailer.v10+json;q=0.9"),
        );
        assert!(accepts_v10(&h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.retailer.v9+json"),
        );
        assert!(!accepts_v10(&h));
    }
}
