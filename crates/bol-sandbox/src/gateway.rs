//! The path every API request takes around its handler: latency, authentication, rate limit
//! and fault dice on the way in; rate-limit headers, body faults and accounting on the way out.
//!
//! Order, as documented in the README: latency → authentication (401s use no rate budget) →
//! rate limit (429) → dropped connection / 5xx → handler → malformed / truncated 200 bodies.

use crate::{
    faults::{self, Faults},
    http,
    prng::Rng,
    ratelimit::Decision,
    state::{Account, Shared},
    stats::{Event, Group},
    token::{self, Verdict},
};
use axum::{
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::Response,
};
use bytes::Bytes;
use futures_util::StreamExt;
use std::{sync::atomic::Ordering, time::Duration};

/// Marks a response whose connection the server must close without answering.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DropConnection;

/// A request that has arrived: its number, the faults in force and its dice.
pub(crate) struct Arrival {
    pub n: u64,
    faults: Faults,
    dice: Rng,
}

/// Numbers the request and waits out the configured latency.
pub(crate) async fn arrive(shared: &Shared) -> Arrival {
    let n = shared.requests.fetch_add(1, Ordering::Relaxed);
    let faults = shared.faults.get();
    if faults.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(faults.latency_ms)).await;
    }
    Arrival {
        n,
        faults,
        dice: Rng::new(shared.seed ^ n.wrapping_mul(0x9e37_79b9)),
    }
}

/// An admitted call of one account to one endpoint group.
pub(crate) struct Call<'a> {
    pub shared: &'a Shared,
    pub account_no: usize,
    pub account: &'a Account,
    pub n: u64,
    group: Group,
    rate: Decision,
    faults: Faults,
    dice: Rng,
}

/// Answers a request that no account can be named for.
pub(crate) fn unattributed(shared: &Shared, n: u64, response: Response) -> Response {
    shared.unattributed.fetch_add(1, Ordering::Relaxed);
    finish_ids(shared, n, response)
}

fn finish_ids(shared: &Shared, n: u64, mut response: Response) -> Response {
    http::add_request_ids(response.headers_mut(), n, shared.seed);
    response
}

/// Authenticates a bearer token, then admits the call.
#[expect(
    clippy::result_large_err,
    reason = "the error is the finished answer, built once per request"
)]
pub(crate) fn bearer<'a>(
    shared: &'a Shared,
    arrival: Arrival,
    headers: &HeaderMap,
    group: Group,
    instance: &str,
) -> Result<Call<'a>, Response> {
    let n = arrival.n;
    let unauthorized = |title: &str, detail: &str| {
        let body = http::problem(StatusCode::UNAUTHORIZED, title, detail, instance, &[], n);
        let mut r = http::response(StatusCode::UNAUTHORIZED, http::V10_UTF8, body);
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        r
    };
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        });
    let verdict = token.map_or(Verdict::Invalid, |t| token::verify(shared, t.trim()));
    let account_no = match verdict {
        Verdict::Valid(account_no) => account_no,
        Verdict::Invalid => {
            let r = unauthorized(
                "Unauthorized",
                "Full authentication is required to access this resource.",
            );
            return Err(unattributed(shared, n, r));
        }
        Verdict::Revoked(account_no) => {
            count_unauthorized(shared, account_no, group);
            let r = unauthorized("Unauthorized", "Invalid token: the token has been revoked.");
            return Err(finish_ids(shared, n, r));
        }
        Verdict::Expired {
            account_no,
            expired_ms,
            now_ms,
            skew_ms,
        } => {
            count_unauthorized(shared, account_no, group);
            let detail = format!(
                "JWT expired at {}. Current time: {}, a difference of {} milliseconds.  Allowed clock skew: {} milliseconds.",
                crate::clock::utc_ms(expired_ms),
                crate::clock::utc_ms(now_ms),
                now_ms.saturating_sub(expired_ms),
                skew_ms
            );
            return Err(finish_ids(shared, n, unauthorized("Expired JWT", &detail)));
        }
    };
    admit(shared, arrival, account_no, group)
}

/// Counts an attributed call answered 401.
pub(crate) fn count_unauthorized(shared: &Shared, account_no: usize, group: Group) {
    let counters = shared.accounts[account_no].counters(group);
    counters.add(Event::Call);
    counters.add(Event::Unauthorized);
}

/// Counts the call against the account, applies its rate limit and the 5xx / drop faults.
#[expect(
    clippy::result_large_err,
    reason = "the error is the finished answer, built once per request"
)]
pub(crate) fn admit(
    shared: &Shared,
    arrival: Arrival,
    account_no: usize,
    group: Group,
) -> Result<Call<'_>, Response> {
    let account = &shared.accounts[account_no];
    let counters = account.counters(group);
    counters.add(Event::Call);
    let mut call = Call {
        shared,
        account_no,
        account,
        n: arrival.n,
        group,
        rate: account
            .limiter(group)
            .check(shared.clock.elapsed(), shared.window),
        faults: arrival.faults,
        dice: arrival.dice,
    };
    if let Decision::Denied { reset, .. } = call.rate {
        counters.add(Event::RateLimited);
        let body = format!(
            r#"{{"title":"Too Many Requests","status":429,"detail":"Too many requests, retry in {reset} seconds."}}"#
        );
        let mut r = http::response(StatusCode::TOO_MANY_REQUESTS, http::V10_UTF8, body);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(reset));
        return Err(call.decorate(r));
    }
    if call.faults.drop_rate > 0.0 && call.dice.chance(call.faults.drop_rate) {
        counters.add(Event::Fault);
        let mut r = Response::new(Body::empty());
        r.extensions_mut().insert(DropConnection);
        return Err(r);
    }
    if call.faults.error_rate > 0.0 && call.dice.chance(call.faults.error_rate) {
        counters.add(Event::Fault);
        let status = call.dice.pick(&[500u16, 502, 503, 504]);
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let r = http::response(code, "text/html;charset=UTF-8", faults::error_page(status));
        return Err(call.decorate(r));
    }
    Ok(call)
}

impl Call<'_> {
    fn decorate(&self, mut r: Response) -> Response {
        let h = r.headers_mut();
        match self.rate {
            Decision::Unlimited => {}
            Decision::Allowed {
                limit,
                remaining,
                reset,
            } => {
                h.insert("x-ratelimit-limit", HeaderValue::from(limit));
                h.insert("x-ratelimit-remaining", HeaderValue::from(remaining));
                h.insert("x-ratelimit-reset", HeaderValue::from(reset));
            }
            Decision::Denied { limit, reset } => {
                h.insert("x-ratelimit-limit", HeaderValue::from(limit));
                h.insert("x-ratelimit-remaining", HeaderValue::from(0u32));
                h.insert("x-ratelimit-reset", HeaderValue::from(reset));
            }
        }
        finish_ids(self.shared, self.n, r)
    }

    /// A problem answer for this call.
    pub(crate) fn problem(
        &self,
        status: StatusCode,
        title: &str,
        detail: &str,
        instance: &str,
        violations: &[http::Violation],
    ) -> Response {
        let body = http::problem(status, title, detail, instance, violations, self.n);
        self.decorate(http::response(status, http::V10_UTF8, body))
    }

    /// Answers 200 with `body`, maybe spoiled by a body fault. The flag is true if the client
    /// received the body intact, which is when the answer counts for wasted-call accounting.
    pub(crate) fn ok(&mut self, content_type: &'static str, body: Vec<u8>) -> (Response, bool) {
        let counters = self.account.counters(self.group);
        let f = &self.faults;
        if f.malformed_rate > 0.0 && self.dice.chance(f.malformed_rate) {
            counters.add(Event::Fault);
            let r = http::response(StatusCode::OK, content_type, faults::malformed(&body));
            return (self.decorate(r), false);
        }
        if f.truncated_rate > 0.0 && self.dice.chance(f.truncated_rate) {
            counters.add(Event::Fault);
            let full = body.len();
            let half = Bytes::from(body).slice(..full / 2);
            // The pause lets hyper flush the headers and the first half before the error
            // aborts the connection; an immediate error would drop the answer entirely.
            let cut = futures_util::stream::once(async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "truncated by the sandbox",
                ))
            });
            let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(half)]).chain(cut);
            let mut r = http::response(StatusCode::OK, content_type, Body::from_stream(stream));
            r.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(full));
            return (self.decorate(r), false);
        }
        (
            self.decorate(http::response(StatusCode::OK, content_type, body)),
            true,
        )
    }

    /// Counts a clean answer the client already had.
    pub(crate) fn wasted(&self) {
        self.account.counters(self.group).add(Event::Wasted);
    }

    /// Any other answer (4xx) for this call.
    pub(crate) fn other(&self, response: Response) -> Response {
        self.decorate(response)
    }
}
