//! The HTTP client: one per process, shared by every shop and worker task.
//!
//! Every call goes through the same loop: reserve a slot of the rate budget (waiting for the
//! reset if need be), take a token, send, feed the answer's rate headers back to the limiter, then
//! decide. The token is taken after the wait, and checked again once a connection is free, so
//! that no token expires while its call waits for the rate limit or for a connection. A 429
//! waits for the reset and tries again; a 401 on an API call renews the token once; 5xx,
//! transport errors and bodies that do not parse back off with jitter up to the retry cap.

use crate::{
    error::{Error, Failure},
    limiter::{Group, Limits, Outcome, RateLimiter},
    model::{FulfilmentMethod, ShipmentDetail, ShipmentPage},
    parse::{self, Malformed},
    telemetry,
    token::{CachedToken, Held, MemoryTokenCache, TokenCache, TokenSlots, usable},
};
use rand::Rng;
use reqwest::{RequestBuilder, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::{
    ops::AddAssign,
    sync::Arc,
    time::{Duration, SystemTime},
};
use time::OffsetDateTime;
use tokio::time::Instant;

pub(crate) const V10: &str = "application/vnd.retailer.v10+json";

/// A seller's API credentials.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The client id; the key of the rate budgets (bol's unit), and with the secret of tokens.
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretString,
}

/// How transient failures are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt before giving up.
    pub max_retries: u32,
    /// Delay before the first retry; it doubles each time.
    pub base_delay: Duration,
    /// Longest delay between two attempts.
    pub max_delay: Duration,
    /// 429 answers tolerated for one call before giving up.
    pub max_rate_limited: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_rate_limited: 10,
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff with jitter: between half and all of `base * 2^(retry - 1)`, capped.
    fn delay(&self, retry: u32) -> Duration {
        let full = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
            .min(self.max_delay);
        full.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

/// Settings of a [`Client`].
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Base of the API; calls go to `{api_url}/retailer/...`.
    pub api_url: String,
    /// Base of the login service; tokens come from `{login_url}/token`.
    pub login_url: String,
    /// Sent with every request.
    pub user_agent: String,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on a whole request, body included.
    pub request_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Budgets assumed before bol's headers are seen.
    pub limits: Limits,
    /// Requests in flight at once, over all accounts: each holds an HTTP/1.1 connection and its
    /// buffers, and thousands of shops whose windows open together would otherwise open a
    /// connection per call of their burst. Calls past it wait with their budget reserved; the
    /// limiter counts them in flight, so a wait that crosses a window's end costs no 429.
    pub max_connections: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            api_url: "https://api.bol.com".into(),
            login_url: "https://login.bol.com".into(),
            user_agent: concat!("simba-bol/", env!("CARGO_PKG_VERSION")).into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            limits: Limits::published(),
            max_connections: 1024,
        }
    }
}

/// What a call cost: requests by endpoint group, and what happened on the way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Calls {
    /// Requests to the token endpoint.
    pub token: u32,
    /// Requests to the shipments list.
    pub list: u32,
    /// Requests to shipment details.
    pub detail: u32,
    /// Requests managing push subscriptions: subscriptions, signature keys, process statuses.
    #[serde(default)]
    pub subscriptions: u32,
    /// Answers 429.
    pub rate_limited: u32,
    /// Attempts repeated after a transient failure.
    pub retries: u32,
    /// API answers 401 that made the client renew its token.
    pub unauthorized: u32,
    /// New tokens obtained.
    pub token_renewals: u32,
    /// Time spent waiting for a rate-limit reset.
    pub waited: Duration,
}

impl Calls {
    /// Requests of every group.
    pub fn total(&self) -> u32 {
        self.token + self.list + self.detail + self.subscriptions
    }

    fn count(&mut self, group: Group) {
        match group {
            Group::Token => self.token += 1,
            Group::List => self.list += 1,
            Group::Detail => self.detail += 1,
            Group::Subscriptions | Group::SignatureKeys | Group::ProcessStatus => {
                self.subscriptions += 1
            }
        }
    }
}

impl AddAssign for Calls {
    fn add_assign(&mut self, other: Calls) {
        self.token += other.token;
        self.list += other.list;
        self.detail += other.detail;
        self.subscriptions += other.subscriptions;
        self.rate_limited += other.rate_limited;
        self.retries += other.retries;
        self.unauthorized += other.unauthorized;
        self.token_renewals += other.token_renewals;
        self.waited += other.waited;
    }
}

/// A successful call's value and what it cost.
#[derive(Clone, Debug)]
pub struct Answer<T> {
    /// The parsed answer.
    pub value: T,
    /// The requests it took.
    pub calls: Calls,
}

/// A bol Retailer API client. Cheap to clone; build one per process.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    connections: tokio::sync::Semaphore,
    config: ClientConfig,
    limiter: RateLimiter,
    tokens: TokenSlots,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("api_url", &self.inner.config.api_url)
            .field("login_url", &self.inner.config.login_url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client keeping tokens in memory only.
    pub fn new(config: ClientConfig) -> Result<Client, Error> {
        Client::with_token_cache(config, Arc::new(MemoryTokenCache::default()))
    }

    /// A client sharing tokens through `cache`.
    pub fn with_token_cache(
        config: ClientConfig,
        cache: Arc<dyn TokenCache>,
    ) -> Result<Client, Error> {
        let http = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .connect_timeout(config.connect_timeout)
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let limiter = RateLimiter::new(config.limits);
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                connections: tokio::sync::Semaphore::new(config.max_connections.max(1)),
                config,
                limiter,
                tokens: TokenSlots::new(cache),
            }),
        })
    }

    /// The rate budgets, to export to the database after a run and import before one.
    pub fn limiter(&self) -> &RateLimiter {
        &self.inner.limiter
    }

    /// A valid access token: the cached one while it is fresh, a new one otherwise.
    pub async fn token(&self, creds: &Credentials) -> Result<Answer<CachedToken>, Failure> {
        let mut calls = Calls::default();
        match self.access_token(creds, None, &mut calls).await {
            Ok(value) => Ok(Answer { value, calls }),
            Err(error) => Err(Failure { error, calls }),
        }
    }

    /// One page (from 1) of shipments of one fulfilment method, newest first.
    pub async fn list_shipments(
        &self,
        creds: &Credentials,
        method: FulfilmentMethod,
        page: u32,
    ) -> Result<Answer<ShipmentPage>, Failure> {
        let url = format!("{}/retailer/shipments", self.inner.config.api_url);
        let query = [
            ("fulfilment-method", method.as_str().to_owned()),
            ("page", page.to_string()),
        ];
        self.api(
            creds,
            Group::List,
            |http| http.get(&url).query(&query),
            parse::shipment_page,
        )
        .await
    }

    /// The detail of one shipment, with the JSON as received.
    pub async fn shipment(
        &self,
        creds: &Credentials,
        shipment_id: &str,
    ) -> Result<Answer<ShipmentDetail>, Failure> {
        let url = format!(
            "{}/retailer/shipments/{}",
            self.inner.config.api_url,
            encode_segment(shipment_id)
        );
        self.api(
            creds,
            Group::Detail,
            |http| http.get(&url),
            parse::shipment_detail,
        )
        .await
    }

    /// The base of the API, as configured.
    pub(crate) fn api_url(&self) -> &str {
        &self.inner.config.api_url
    }

    pub(crate) async fn api<T>(
        &self,
        creds: &Credentials,
        group: Group,
        request: impl Fn(&reqwest::Client) -> RequestBuilder,
        read: impl Fn(&[u8]) -> Result<T, Malformed> + Sync,
    ) -> Result<Answer<T>, Failure> {
        let mut calls = Calls::default();
        let result = async {
            // The token bol refused, once it has refused one: it is renewed once, not twice.
            let mut rejected: Option<SecretString> = None;
            loop {
                let attempt = self
                    .exchange(
                        creds,
                        group,
                        &mut calls,
                        Auth::Token {
                            rejected: rejected.as_ref(),
                        },
                        |token| {
                            let request = request(&self.inner.http).header(header::ACCEPT, V10);
                            match token {
                                Some(token) => request.bearer_auth(token.expose_secret()),
                                None => request,
                            }
                        },
                        &read,
                    )
                    .await?;
                match attempt {
                    Exchanged::Ok { value, .. } => return Ok(value),
                    Exchanged::Unauthorized { message, token } if rejected.is_none() => {
                        tracing::debug!(
                            client_id = creds.client_id,
                            message,
                            "token refused; renewing"
                        );
                        calls.unauthorized += 1;
                        // The next attempt takes a token other than this one.
                        rejected = Some(token.unwrap_or_else(|| SecretString::from("")));
                    }
                    Exchanged::Unauthorized { message, .. } => {
                        return Err(Error::Unauthorized(message));
                    }
                }
            }
        }
        .await;
        match result {
            Ok(value) => Ok(Answer { value, calls }),
            Err(error) => Err(Failure { error, calls }),
        }
    }

    /// A fresh token for `creds`, renewing it unless another caller just did. `rejected` is a
    /// token bol refused, which must not be handed out again.
    async fn access_token(
        &self,
        creds: &Credentials,
        rejected: Option<&SecretString>,
        calls: &mut Calls,
    ) -> Result<CachedToken, Error> {
        let slot = self.inner.tokens.slot(&creds.client_id);
        let mut current = slot.lock().await;
        if let Some(token) = current
            .as_ref()
            .and_then(|held| held.for_creds(creds))
            .filter(|t| usable(t, rejected))
        {
            return Ok(token.clone());
        }
        let cache = &self.inner.tokens.cache;
        if let Some(token) = cache.load(creds).await.filter(|t| usable(t, rejected)) {
            *current = Some(Held::new(creds, token.clone()));
            return Ok(token);
        }
        let token = self.fetch_token(creds, calls).await?;
        cache.store(creds, &token).await;
        calls.token_renewals += 1;
        telemetry::token_obtained();
        *current = Some(Held::new(creds, token.clone()));
        Ok(token)
    }

    async fn fetch_token(
        &self,
        creds: &Credentials,
        calls: &mut Calls,
    ) -> Result<CachedToken, Error> {
        let url = format!("{}/token", self.inner.config.login_url);
        let attempt = self
            .exchange(
                creds,
                Group::Token,
                calls,
                Auth::Credentials,
                |_| {
                    self.inner
                        .http
                        .post(&url)
                        .basic_auth(&creds.client_id, Some(creds.client_secret.expose_secret()))
                        .header(header::ACCEPT, "application/json")
                        .form(&[("grant_type", "client_credentials")])
                },
                &parse::token,
            )
            .await?;
        // Expiry counts from when the answered request left (after any rate-limit wait), so the
        // token is never thought fresher than it is, nor much staler: renewing it before half its
        // life would be a wasted token call.
        let (answer, issued_at) = match attempt {
            Exchanged::Ok { value, sent_at } => (value, sent_at),
            Exchanged::Unauthorized { .. } => return Err(Error::InvalidCredentials),
        };
        Ok(CachedToken::new(
            answer.access_token,
            issued_at,
            answer.lifetime,
        ))
    }

    /// Sends a request until it gets an answer worth returning: a 200 whose complete body
    /// parses, or a 401. Waits out the rate limit and retries transient failures. With
    /// [`Auth::Token`], each attempt takes the token after its rate-limit wait, right before it
    /// is sent, and `request` gets it.
    async fn exchange<T>(
        &self,
        creds: &Credentials,
        group: Group,
        calls: &mut Calls,
        auth: Auth<'_>,
        request: impl Fn(Option<&SecretString>) -> RequestBuilder,
        read: &(dyn Fn(&[u8]) -> Result<T, Malformed> + Sync),
    ) -> Result<Exchanged<T>, Error> {
        let policy = self.inner.config.retry;
        let mut retries = 0;
        let mut rate_limited = 0;
        loop {
            let (permit, waited) = self.inner.limiter.acquire(&creds.client_id, group).await;
            calls.waited += waited;
            // The token is taken before the wait for a connection, which holds none while a
            // renewal goes through `exchange` itself, and taken again if it went stale during
            // that wait: thousands of calls can queue for the connections when their windows
            // open together, and a token taken before that queue was sent expired.
            let (token, connection) = loop {
                let token = match auth {
                    Auth::Credentials => None,
                    // Boxed: renewing the token goes through `exchange` again.
                    Auth::Token { rejected } => {
                        match Box::pin(self.access_token(creds, rejected, calls)).await {
                            Ok(token) => Some(token),
                            Err(e) => {
                                // Nothing was sent: the slot goes back to the budget.
                                permit.release();
                                return Err(e);
                            }
                        }
                    }
                };
                let connection = self
                    .inner
                    .connections
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                match token {
                    Some(token) if !token.is_fresh(OffsetDateTime::now_utc()) => drop(connection),
                    token => break (token.map(|t| t.access_token), connection),
                }
            };
            calls.count(group);
            telemetry::waited(group, waited);
            let sent = Instant::now();
            let sent_at = OffsetDateTime::now_utc();
            let answer = match request(token.as_ref()).send().await {
                Ok(response) => {
                    let status = response.status();
                    let headers = response.headers().clone();
                    response.bytes().await.map(|body| (status, headers, body))
                }
                Err(e) => Err(e),
            };
            drop(connection);
            let failure = match answer {
                Err(e) => {
                    telemetry::answered(group, None);
                    permit.finish(
                        sent,
                        Outcome {
                            headers: None,
                            success: false,
                            rate_limited: false,
                            fallback: Duration::ZERO,
                        },
                    );
                    Error::Transport(describe(&e))
                }
                Ok((status, headers, body)) => {
                    telemetry::answered(group, Some(status.as_u16()));
                    let rate = parse::rate_headers(&headers, SystemTime::now());
                    let too_many = status == StatusCode::TOO_MANY_REQUESTS;
                    let backoff = policy.delay(rate_limited + 1);
                    permit.finish(
                        sent,
                        Outcome {
                            headers: Some(&rate),
                            success: status.is_success(),
                            rate_limited: too_many,
                            fallback: backoff,
                        },
                    );
                    match status.as_u16() {
                        200..=299 => match read(&body) {
                            Ok(value) => return Ok(Exchanged::Ok { value, sent_at }),
                            Err(e) => malformed(group, &e, &body),
                        },
                        401 => {
                            return Ok(Exchanged::Unauthorized {
                                message: parse::error_message(&body),
                                token,
                            });
                        }
                        404 => return Err(Error::NotFound(parse::error_message(&body))),
                        429 => {
                            calls.rate_limited += 1;
                            telemetry::rate_limited(group);
                            rate_limited += 1;
                            tracing::warn!(client_id = creds.client_id, ?group, "bol answered 429");
                            if rate_limited > policy.max_rate_limited {
                                return Err(Error::RateLimited(rate_limited));
                            }
                            // The limiter now holds the call back until the reset.
                            continue;
                        }
                        s @ 500..=599 => Error::Server {
                            status: s,
                            message: parse::error_message(&body),
                        },
                        s => {
                            return Err(Error::Rejected {
                                status: s,
                                message: parse::error_message(&body),
                            });
                        }
                    }
                }
            };
            if retries >= policy.max_retries {
                return Err(failure);
            }
            retries += 1;
            calls.retries += 1;
            telemetry::retried(group);
            let delay = policy.delay(retries);
            tracing::debug!(client_id = creds.client_id, ?group, error = %failure, ?delay, "transient failure; retrying");
            tokio::time::sleep(delay).await;
        }
    }
}

/// How a request proves who sends it.
#[derive(Clone, Copy)]
enum Auth<'a> {
    /// The client credentials themselves: the token endpoint.
    Credentials,
    /// A fresh access token, never the `rejected` one.
    Token { rejected: Option<&'a SecretString> },
}

/// An answer that ends the retry loop.
enum Exchanged<T> {
    /// The parsed body, and when the request that got it was sent.
    Ok { value: T, sent_at: OffsetDateTime },
    /// bol refused the credentials or `token`, the token that was sent.
    Unauthorized {
        message: String,
        token: Option<SecretString>,
    },
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body cut off"
    } else {
        "request failed"
    };
    let mut text = format!("{kind}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The error for a 200 whose body did not parse. The start of the body tells an HTML page from
/// broken JSON, but that of a token answer would carry the token into logs and run pages.
fn malformed(group: Group, e: &Malformed, body: &[u8]) -> Error {
    Error::MalformedBody(match group {
        Group::Token => format!("{e} in {} bytes", body.len()),
        Group::List
        | Group::Detail
        | Group::Subscriptions
        | Group::SignatureKeys
        | Group::ProcessStatus => {
            format!("{e} in {} bytes: {}", body.len(), parse::snippet(body))
        }
    })
}

/// Shipment ids are digits, but an id must never change the path.
pub(crate) fn encode_segment(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let policy = RetryPolicy {
            max_retries: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_rate_limited: 3,
        };
        for (retry, full) in [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (30, 1000),
        ] {
            let d = policy.delay(retry);
            let full = Duration::from_millis(full);
            assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?}");
        }
    }

    #[test]
    fn a_token_answer_that_does_not_parse_is_not_quoted() {
        let body = br#"{"access_token":"eyJhbGciOiJSUzUxMiJ9 secret","expires_in":299}"#;
        let e = parse::token(body).unwrap_err();
        let message = malformed(Group::Token, &e, body).to_string();
        assert!(!message.contains("eyJhbGci"), "{message}");
        let html = b"<html>Service Unavailable</html>";
        let e = parse::shipment_page(html).unwrap_err();
        let message = malformed(Group::List, &e, html).to_string();
        assert!(
            message.ends_with("<html>Service Unavailable</html>"),
            "{message}"
        );
    }

    #[test]
    fn ids_cannot_escape_their_path_segment() {
        assert_eq!(encode_segment("1389204715"), "1389204715");
        assert_eq!(encode_segment("../x?y"), "..%2Fx%3Fy");
    }
}
