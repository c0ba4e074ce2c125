//! Pure parsers of everything bol answers: list pages, shipment details, tokens, error bodies
//! and rate-limit headers. The client goes through them and nothing else, so the fuzz targets
//! in `crates/bol/fuzz` exercise exactly what runs against bol.
//!
//! Whatever bol (or something between us and bol) sends, they return a bounded value or a
//! [`Malformed`] error: waits and token lifetimes are clamped, messages are one short line,
//! tokens that cannot be sent are refused, and so are bodies that are not UTF-8 rather than read
//! with replacement characters.

use crate::model::{ShipmentDetail, ShipmentPage};
use reqwest::header::HeaderMap;
use secrecy::SecretString;
use serde::{Deserialize, de::DeserializeOwned};
use std::time::{Duration, SystemTime};

/// The longest wait rate-limit headers can impose. bol's windows are a minute (some an hour);
/// anything longer is a broken header, which must not put a worker to sleep for years.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// Token lifetimes are clamped to `MIN_TOKEN_LIFETIME..=MAX_TOKEN_LIFETIME`: a zero lifetime
/// would renew on every call (bol blocks that), an endless one would never renew.
pub const MIN_TOKEN_LIFETIME: Duration = Duration::from_secs(1);
/// See [`MIN_TOKEN_LIFETIME`].
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// bol's documented lifetime, assumed when `expires_in` is missing.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(299);
/// Well above bol's JWTs (under 1 KB), below the header sizes servers refuse (8 KiB is common).
const MAX_TOKEN_BYTES: usize = 4096;

/// The most characters of a message built from a body ([`error_message`], [`Malformed`]):
/// messages end up in logs and on the seller's run page.
pub const MAX_MESSAGE_CHARS: usize = 300;
/// Characters of a body quoted when it is not a known error shape.
const SNIPPET_CHARS: usize = 120;

/// `X-RateLimit-Reset` values above this are a Unix time, not seconds to wait.
const EPOCH_THRESHOLD: f64 = 1e9;

/// A body or header that cannot be used: what was wrong, in one bounded line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(String);

impl Malformed {
    fn new(reason: impl std::fmt::Display) -> Malformed {
        Malformed(one_line(&reason.to_string(), MAX_MESSAGE_CHARS))
    }
}

/// A page of `GET /retailer/shipments`.
pub fn shipment_page(body: &[u8]) -> Result<ShipmentPage, Malformed> {
    json(body)
}

/// A shipment of `GET /retailer/shipments/{id}`, keeping the body as received.
pub fn shipment_detail(body: &[u8]) -> Result<ShipmentDetail, Malformed> {
    let raw = utf8(body)?;
    let shipment = serde_json::from_str(raw).map_err(Malformed::new)?;
    Ok(ShipmentDetail {
        shipment,
        raw: raw.to_owned(),
    })
}

/// A token as `POST /token` grants it.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// The bearer token: non-empty and valid in an `Authorization` header.
    pub access_token: SecretString,
    /// How long it lives, from [`MIN_TOKEN_LIFETIME`] to [`MAX_TOKEN_LIFETIME`].
    pub lifetime: Duration,
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    // A float so that neither a huge nor a negative number fails the parse: both are clamped.
    #[serde(default)]
    expires_in: Option<f64>,
}

/// The 200 answer of `POST /token`.
pub fn token(body: &[u8]) -> Result<IssuedToken, Malformed> {
    let answer: TokenAnswer = json(body)?;
    let token = answer.access_token;
    if token.is_empty() {
        return Err(Malformed::new("empty access_token"));
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(Malformed::new(format!(
            "access_token of {} bytes",
            token.len()
        )));
    }
    // Visible ASCII only: anything else cannot follow `Bearer ` in a header, and the token
    // would be cached only to fail every call made with it.
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Malformed::new(
            "access_token has characters a header cannot carry",
        ));
    }
    let lifetime = answer.expires_in.map_or(DEFAULT_TOKEN_LIFETIME, |secs| {
        Duration::from_secs_f64(secs.ceil().clamp(
            MIN_TOKEN_LIFETIME.as_secs_f64(),
            MAX_TOKEN_LIFETIME.as_secs_f64(),
        ))
    });
    Ok(IssuedToken {
        access_token: SecretString::from(token),
        lifetime,
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
    error: String,
}

/// A short, single-line message for an error answer: bol's problem title and detail, the OAuth
/// error code, or the start of the body. At most [`MAX_MESSAGE_CHARS`] characters, no control
/// characters.
pub fn error_message(body: &[u8]) -> String {
    let line = |s: Option<String>| {
        s.map(|s| one_line(&s, MAX_MESSAGE_CHARS))
            .filter(|s| !s.is_empty())
    };
    if let Ok(p) = json::<Problem>(body) {
        match (line(p.title), line(p.detail)) {
            (Some(t), Some(d)) => return one_line(&format!("{t}: {d}"), MAX_MESSAGE_CHARS),
            (Some(m), None) | (None, Some(m)) => return m,
            (None, None) => {}
        }
    }
    if let Some(error) = line(json::<OAuthError>(body).ok().map(|e| e.error)) {
        return error;
    }
    snippet(body)
}

/// The start of a body, for messages about bodies that are not what was expected. Lossy on
/// purpose: it is only shown, never used.
pub(crate) fn snippet(body: &[u8]) -> String {
    one_line(&String::from_utf8_lossy(body), SNIPPET_CHARS)
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

    /// `X-RateLimit-Reset`: time until the window refills, at most [`MAX_WAIT`].
    pub fn reset(&self) -> Option<Duration> {
        self.reset
    }

    /// `Retry-After` in seconds (429 only), at most [`MAX_WAIT`].
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
            .map(f64::ceil)
    };
    // `as` saturates: a limit beyond u32 is no limit worth keeping to.
    let count = |v: f64| v as u32;
    let wait = |secs: f64| Duration::from_secs_f64(secs.min(MAX_WAIT.as_secs_f64()));
    let since_epoch = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    RateHeaders {
        limit: number("x-ratelimit-limit").map(count),
        remaining: number("x-ratelimit-remaining").map(count),
        reset: number("x-ratelimit-reset")
            .map(|r| {
                if r > EPOCH_THRESHOLD {
                    (r - since_epoch).max(0.0)
                } else {
                    r
                }
            })
            .map(wait),
        retry_after: number("retry-after").map(wait),
    }
}

fn utf8(body: &[u8]) -> Result<&str, Malformed> {
    std::str::from_utf8(body).map_err(Malformed::new)
}

/// Checks UTF-8 first: serde_json validates only the strings it keeps, so a body with broken
/// bytes in an ignored field would otherwise pass.
pub(crate) fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Malformed> {
    serde_json::from_str(utf8(body)?).map_err(Malformed::new)
}

/// `text` on one line: control characters (newlines, escapes) become spaces, runs of
/// whitespace one space, and past `max` characters it is cut with `...`.
fn one_line(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut chars = 0;
    for word in text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
    {
        for c in (chars > 0).then_some(' ').into_iter().chain(word.chars()) {
            if chars == max {
                // Room for the marker: drop the last characters kept.
                for _ in 0..3 {
                    out.pop();
                }
                out.push_str("...");
                return out;
            }
            out.push(c);
            chars += 1;
        }
    }
    out
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

    #[test]
    fn bodies_that_are_not_utf8_are_refused_even_in_ignored_fields() {
        assert!(shipment_page(b"{\"shipments\":[],\"note\":\"\xff\"}").is_err());
        assert!(shipment_detail(b"{\"shipmentId\":\"1\",\"note\":\"\xc3\"}").is_err());
        assert!(token(b"{\"access_token\":\"t\",\"token_type\":\"Bear\xffer\"}").is_err());
    }

    fn assert_one_short_line(message: &str) {
        assert!(message.chars().count() <= MAX_MESSAGE_CHARS, "{message}");
        assert!(!message.chars().any(char::is_control), "{message:?}");
    }

    #[test]
    fn error_messages_are_one_short_line() {
        let html =
            b"<html>\n<head><title>500 Internal Server Error</title></head>\r\n<body></body>";
        assert_eq!(
            error_message(html),
            "<html> <head><title>500 Internal Server Error</title></head> <body></body>"
        );
        let escape = br#"{"title":"Not\u001b[31m Found","detail":"line\nbreak"}"#;
        assert_eq!(error_message(escape), "Not [31m Found: line break");
        let long = format!(
            r#"{{"title":"Bad Request","detail":"{}"}}"#,
            "x".repeat(10_000)
        );
        let message = error_message(long.as_bytes());
        assert_one_short_line(&message);
        assert!(message.starts_with("Bad Request: xxx") && message.ends_with("..."));
        assert_one_short_line(&error_message(format!("{:0>9999}", 1).as_bytes()));
    }

    #[test]
    fn malformed_messages_are_one_short_line() {
        let body = format!(r#"{{"shipments":"{}\n"}}"#, "x".repeat(5_000));
        assert_one_short_line(&shipment_page(body.as_bytes()).unwrap_err().to_string());
    }

    fn headers_at(now: SystemTime, pairs: &[(&'static str, &str)]) -> RateHeaders {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        rate_headers(&map, now)
    }

    #[test]
    fn rate_limit_waits_are_capped_at_an_hour() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_740_000);
        let reset = |value: &str| headers_at(now, &[("x-ratelimit-reset", value)]).reset();
        // 309 days, as seconds and as the epoch they lead to.
        assert_eq!(reset("26712408"), Some(MAX_WAIT));
        assert_eq!(reset("1790452408"), Some(MAX_WAIT));
        assert_eq!(reset("18446744073709551615"), Some(MAX_WAIT));
        assert_eq!(reset("1e300"), Some(MAX_WAIT));
        assert_eq!(reset("1763739000"), Some(Duration::ZERO));
        assert_eq!(reset("1763740030"), Some(Duration::from_secs(30)));
        assert_eq!(reset("3600"), Some(MAX_WAIT));
        assert_eq!(reset("0.2"), Some(Duration::from_secs(1)));
        let retry_after = |value: &str| headers_at(now, &[("retry-after", value)]).retry_after();
        assert_eq!(retry_after("18446744073709551615"), Some(MAX_WAIT));
        assert_eq!(retry_after("4"), Some(Duration::from_secs(4)));
        assert_eq!(retry_after("-4"), None);
        assert_eq!(retry_after("NaN"), None);
    }

    #[test]
    fn an_access_token_that_cannot_be_sent_is_refused() {
        let long = "t".repeat(MAX_TOKEN_BYTES + 1);
        for bad in ["", "a b", "t\n", "t\u{7f}", "jéton", long.as_str()] {
            let body = format!(r#"{{"access_token":{bad:?},"expires_in":299}}"#);
            assert!(token(body.as_bytes()).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn token_lifetimes_stay_between_a_second_and_a_day() {
        let lifetime = |expires_in: &str| {
            let body = format!(r#"{{"access_token":"t","expires_in":{expires_in}}}"#);
            token(body.as_bytes()).unwrap().lifetime
        };
        assert_eq!(lifetime("18446744073709551615"), MAX_TOKEN_LIFETIME);
        assert_eq!(lifetime("0"), MIN_TOKEN_LIFETIME);
        assert_eq!(lifetime("-5"), MIN_TOKEN_LIFETIME);
        assert_eq!(lifetime("0.2"), MIN_TOKEN_LIFETIME);
        assert_eq!(lifetime("299"), Duration::from_secs(299));
        assert_eq!(lifetime("86401"), MAX_TOKEN_LIFETIME);
        assert_eq!(lifetime("1e300"), MAX_TOKEN_LIFETIME);
        // What the client does with the longest one must not overflow.
        let now = time::OffsetDateTime::now_utc();
        let cached = crate::CachedToken::new(SecretString::from("t"), now, lifetime("1e300"));
        assert_eq!(cached.expires_at - now, MAX_TOKEN_LIFETIME);
    }
}
