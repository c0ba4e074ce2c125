//! Pure parsers of everything bol answers: list pages, shipment details, tokens, error bodies
//! and rate-limit headers. The client goes through them and nothing else, so the fuzz targets
//! in `crates/bol/fuzz` exercise exactly what runs against bol.

use crate::model::{ShipmentDetail, ShipmentPage};
use reqwest::header::HeaderMap;
use secrecy::SecretString;
use serde::Deserialize;
use std::time::{Duration, SystemTime};

/// bol's documented lifetime, assumed when `expires_in` is missing.
const DEFAULT_TOKEN_LIFETIME: u64 = 299;

/// Characters of a body quoted when it is not a known error shape.
const SNIPPET_CHARS: usize = 120;

/// `X-RateLimit-Reset` values above this are a Unix time, not seconds to wait.
const EPOCH_THRESHOLD: u64 = 1_000_000_000;

/// A body that cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(String);

impl Malformed {
    fn new(reason: impl std::fmt::Display) -> Malformed {
        Malformed(reason.to_string())
    }
}

/// A page of `GET /retailer/shipments`.
pub fn shipment_page(body: &[u8]) -> Result<ShipmentPage, Malformed> {
    serde_json::from_slice(body).map_err(Malformed::new)
}

/// A shipment of `GET /retailer/shipments/{id}`, keeping the body as received.
pub fn shipment_detail(body: &[u8]) -> Result<ShipmentDetail, Malformed> {
    let raw = std::str::from_utf8(body).map_err(Malformed::new)?;
    let shipment = serde_json::from_str(raw).map_err(Malformed::new)?;
    Ok(ShipmentDetail {
        shipment,
        raw: raw.to_owned(),
    })
}

/// A token as `POST /token` grants it.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The bearer token.
    pub access_token: SecretString,
    /// How long it lives.
    pub lifetime: Duration,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The 200 answer of `POST /token`.
pub fn token(body: &[u8]) -> Result<IssuedToken, Malformed> {
    let answer: TokenAnswer = serde_json::from_slice(body).map_err(Malformed::new)?;
    let lifetime = answer.expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME).max(1);
    Ok(IssuedToken {
        access_token: SecretString::from(answer.access_token),
        lifetime: Duration::from_secs(lifetime),
    })
}

/// bol's problem JSON; only what error messages need.
#[derive(Deserialize)]
struct Problem {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
}

/// The body of a 401 from the token endpoint.
#[derive(Deserialize)]
struct OAuthError {
    #[serde(default)]
    error: Option<String>,
}

/// A short message for an error answer: bol's problem title and detail, the OAuth error code,
/// or the start of the body.
pub fn error_message(body: &[u8]) -> String {
    if let Ok(p) = serde_json::from_slice::<Problem>(body) {
        match (p.title, p.detail) {
            (Some(t), Some(d)) => return format!("{t}: {d}"),
            (Some(m), None) | (None, Some(m)) => return m,
            (None, None) => {}
        }
    }
    if let Ok(OAuthError { error: Some(e) }) = serde_json::from_slice(body) {
        return e;
    }
    snippet(body)
}

/// The start of a body, for messages about bodies that are not what was expected. Lossy on
/// purpose: it is only shown, never used.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The rate-limit headers of one answer, as durations from when it was received. Header names
/// match case-insensitively.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateHeaders {
    limit: Option<u32>,
    remaining: Option<u32>,
    reset: Option<Duration>,
    retry_after: Option<Duration>,
}

impl RateHeaders {
    /// `X-RateLimit-Limit`: calls per window.
    pub fn limit(&self) -> Option<u32> {
        self.limit
    }

    /// `X-RateLimit-Remaining`: calls left in the current window.
    pub fn remaining(&self) -> Option<u32> {
        self.remaining
    }

    /// `X-RateLimit-Reset`: time until the window refills.
    pub fn reset(&self) -> Option<Duration> {
        self.reset
    }

    /// `Retry-After` in seconds (429 only).
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

/// Reads the rate-limit headers of an answer received at `now`. Values that are not
/// non-negative numbers count as absent; fractions round up. `X-RateLimit-Reset` is seconds to
/// wait, or a Unix time when above 10^9 (as in some of bol's examples).
pub fn rate_headers(headers: &HeaderMap, now: SystemTime) -> RateHeaders {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v >= 0.0)
            .map(|v| v.ceil() as u64)
    };
    let small = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    RateHeaders {
        limit: number("x-ratelimit-limit").map(small),
        remaining: number("x-ratelimit-remaining").map(small),
        reset: number("x-ratelimit-reset").map(|reset| {
            if reset > EPOCH_THRESHOLD {
                (SystemTime::UNIX_EPOCH + Duration::from_secs(reset))
                    .duration_since(now)
                    .unwrap_or(Duration::ZERO)
            } else {
                Duration::from_secs(reset)
            }
        }),
        retry_after: number("retry-after").map(Duration::from_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_problem_bodies() {
        let problem = br#"{"type":"https://api.bol.com/problems","title":"Not Found","status":404,"detail":"Shipment 1 not found"}"#;
        assert_eq!(error_message(problem), "Not Found: Shipment 1 not found");
        let oauth = br#"{"error":"invalid_client","error_description":"Bad client credentials"}"#;
        assert_eq!(error_message(oauth), "invalid_client");
        assert_eq!(
            error_message(b"<html>Bad gateway</html>"),
            "<html>Bad gateway</html>"
        );
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let mut map = HeaderMap::new();
        map.insert("X-RateLimit-Limit", "25".parse().unwrap());
        map.insert("x-ratelimit-remaining", "3".parse().unwrap());
        map.insert("X-RATELIMIT-RESET", "12".parse().unwrap());
        map.insert("Retry-After", "4".parse().unwrap());
        let headers = rate_headers(&map, SystemTime::now());
        assert_eq!(headers.limit(), Some(25));
        assert_eq!(headers.remaining(), Some(3));
        assert_eq!(headers.reset(), Some(Duration::from_secs(12)));
        assert_eq!(headers.retry_after(), Some(Duration::from_secs(4)));
    }

    #[test]
    fn a_token_answer_gives_the_token_and_its_lifetime() {
        let body = br#"{"access_token":"eyJhbGciOiJSUzI1NiJ9.e30.c2ln","token_type":"Bearer","expires_in":299,"scope":"RETAILER"}"#;
        let issued = token(body).unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&issued.access_token),
            "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"
        );
        assert_eq!(issued.lifetime, Duration::from_secs(299));
        let without_expiry = token(br#"{"access_token":"t"}"#).unwrap();
        assert_eq!(without_expiry.lifetime, Duration::from_secs(299));
    }
}
