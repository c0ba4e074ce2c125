//! Adaptive rate limiting per account and endpoint group, driven by bol's `X-RateLimit-*`
//! headers.
//!
//! The budget is reserved before a call leaves, so concurrent callers never overspend it, and
//! when it is gone the caller sleeps until the window resets instead of spending a call to learn
//! that. bol sends `X-RateLimit-Reset` in whole seconds; each answer therefore only bounds the
//! window's end from above, and the bounds of every answer in a window are intersected (with
//! the configured window length as a further bound) so short, time-scaled windows stay precise.

use serde::{Deserialize, Serialize};
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, SystemTime},
};
// tokio's clock, so that tests can pause time.
use tokio::time::Instant;

/// Endpoint groups: each has its own budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// `POST /token`.
    Token,
    /// `GET /retailer/shipments`.
    List,
    /// `GET /retailer/shipments/{id}`.
    Detail,
}

impl Group {
    /// All groups, for exporting state.
    pub const ALL: [Group; 3] = [Group::Token, Group::List, Group::Detail];
}

/// A budget of `calls` per fixed `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupLimit {
    /// Calls allowed per window.
    pub calls: u32,
    /// Length of a window.
    pub window: Duration,
}

/// What the limiter assumes before bol's headers say otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Token endpoint; bol publishes no limit, so `None` (no budget until headers give one).
    pub token: Option<GroupLimit>,
    /// Shipments list.
    pub list: Option<GroupLimit>,
    /// Shipment detail.
    pub detail: Option<GroupLimit>,
}

const MINUTE: Duration = Duration::from_secs(60);

impl Limits {
    /// The published limits (late 2025): list 25 and detail 50 calls a minute.
    pub fn published() -> Limits {
        Limits {
            token: None,
            list: Some(GroupLimit {
                calls: 25,
                window: MINUTE,
            }),
            detail: Some(GroupLimit {
                calls: 50,
                window: MINUTE,
            }),
        }
    }

    /// The same budgets with windows `scale` times shorter, for a time-scaled sandbox.
    pub fn time_scaled(self, scale: f64) -> Limits {
        let scale_one = |g: Option<GroupLimit>| {
            g.map(|g| GroupLimit {
                calls: g.calls,
                window: g.window.div_f64(scale),
            })
        };
        Limits {
            token: scale_one(self.token),
            list: scale_one(self.list),
            detail: scale_one(self.detail),
        }
    }

    fn get(&self, group: Group) -> Option<GroupLimit> {
        match group {
            Group::Token => self.token,
            Group::List => self.list,
            Group::Detail => self.detail,
        }
    }

    /// The window length used to bound a reset; bol's are a minute unless configured.
    fn window(&self, group: Group) -> Duration {
        self.get(group).map_or(MINUTE, |g| g.window)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::published()
    }
}

/// The rate-limit headers of one answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RateHeaders {
    /// `X-RateLimit-Limit`.
    pub limit: Option<u32>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<u32>,
    /// `X-RateLimit-Reset`: seconds until the refill, or a Unix epoch when above 10^9.
    pub reset: Option<u64>,
    /// `Retry-After` in seconds (429 only).
    pub retry_after: Option<u64>,
}

impl RateHeaders {
    /// Reads the headers; names are matched case-insensitively by `http`.
    pub(crate) fn from_headers(headers: &reqwest::header::HeaderMap) -> RateHeaders {
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
            reset: number("x-ratelimit-reset"),
            retry_after: number("retry-after"),
        }
    }

    /// Time until the window resets, as seen at `now`.
    fn reset_in(&self, now: SystemTime) -> Option<Duration> {
        let reset = self.reset?;
        Some(if reset > 1_000_000_000 {
            (SystemTime::UNIX_EPOCH + Duration::from_secs(reset))
                .duration_since(now)
                .unwrap_or(Duration::ZERO)
        } else {
            Duration::from_secs(reset)
        })
    }
}

/// One group's budget of one account, as stored between runs and shared between workers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketSnapshot {
    /// Which endpoint group.
    pub group: Group,
    /// Calls per window, once known.
    pub limit: Option<u32>,
    /// Calls left in the current window; `None` when unknown.
    pub remaining: Option<u32>,
    /// When the current window ends at the latest.
    pub reset_at: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct Bucket {
    limit: Option<u32>,
    remaining: Option<u32>,
    /// Upper bound of the current window's end.
    reset_at: Option<Instant>,
    in_flight: u32,
}

impl Bucket {
    fn fresh(limit: Option<GroupLimit>) -> Bucket {
        Bucket {
            limit: limit.map(|l| l.calls),
            remaining: limit.map(|l| l.calls),
            ..Bucket::default()
        }
    }
}

type Key = (String, Group);

/// Budgets of every account and group seen by this process.
#[derive(Debug, Default)]
pub struct RateLimiter {
    limits: Limits,
    buckets: Mutex<HashMap<Key, Bucket>>,
}

/// A reserved call; the slot is given back if the call never happens (the future is dropped).
#[derive(Debug)]
pub(crate) struct Permit<'a> {
    limiter: &'a RateLimiter,
    key: Key,
    done: bool,
}

impl RateLimiter {
    /// A limiter that assumes `limits` until headers are seen.
    pub fn new(limits: Limits) -> RateLimiter {
        RateLimiter {
            limits,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn with_bucket<R>(&self, key: &Key, f: impl FnOnce(&mut Bucket) -> R) -> R {
        // A panic while holding the lock leaves only counters behind; they stay usable.
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let limit = self.limits.get(key.1);
        let bucket = buckets
            .entry(key.clone())
            .or_insert_with(|| Bucket::fresh(limit));
        f(bucket)
    }

    /// Waits until the budget allows one more call and reserves it; returns how long it waited.
    pub(crate) async fn acquire(&self, account: &str, group: Group) -> (Permit<'_>, Duration) {
        let key = (account.to_owned(), group);
        let window = self.limits.window(group);
        let started = Instant::now();
        loop {
            let now = Instant::now();
            let wake = self.with_bucket(&key, |b| {
                if b.reset_at.is_some_and(|r| now >= r) {
                    b.remaining = b.limit.map(|l| l.saturating_sub(b.in_flight));
                    b.reset_at = None;
                }
                match b.remaining {
                    None => {
                        b.in_flight += 1;
                        None
                    }
                    Some(n) if n > 0 => {
                        b.remaining = Some(n - 1);
                        b.in_flight += 1;
                        // Whatever window this call lands in ends within one window length.
                        b.reset_at.get_or_insert(now + window);
                        None
                    }
                    Some(_) => Some(*b.reset_at.get_or_insert(now + window)),
                }
            });
            match wake {
                None => {
                    let permit = Permit {
                        limiter: self,
                        key,
                        done: false,
                    };
                    return (permit, started.elapsed());
                }
                Some(at) => {
                    tracing::debug!(account, ?group, wait = ?at - now, "rate limit: waiting for the reset");
                    tokio::time::sleep_until(at).await;
                }
            }
        }
    }

    /// Learns from the answer to a reserved call, sent at `sent` and answered at `received`.
    /// `rate_limited` marks a 429, after which nothing is sent before the reset; `fallback` is
    /// how long to wait then when bol gave neither `Retry-After` nor a reset.
    fn observe(
        &self,
        key: &Key,
        sent: Instant,
        received: Instant,
        headers: &RateHeaders,
        rate_limited: bool,
        fallback: Duration,
    ) {
        let window = self.limits.window(key.1);
        let reset_in = headers.reset_in(SystemTime::now());
        self.with_bucket(key, |b| {
            b.in_flight = b.in_flight.saturating_sub(1);
            if headers.limit.is_some() {
                b.limit = headers.limit;
            }
            if let (Some(remaining), Some(reset_in)) = (headers.remaining, reset_in) {
                let end = received + reset_in.min(window);
                let new_window = match (b.reset_at, b.remaining) {
                    (Some(r), Some(left)) => sent >= r || remaining > left + b.in_flight,
                    _ => true,
                };
                if new_window {
                    b.reset_at = Some(end);
                    b.remaining = Some(remaining.saturating_sub(b.in_flight));
                } else {
                    b.reset_at = b.reset_at.map(|r| r.min(end));
                    b.remaining = b.remaining.map(|left| left.min(remaining));
                }
            }
            if rate_limited {
                let wait = headers
                    .retry_after
                    .map(Duration::from_secs)
                    .or(reset_in)
                    .unwrap_or(fallback);
                b.remaining = Some(0);
                b.reset_at = Some(received + wait);
            }
        });
    }

    /// The state of one account's budgets, to store between runs and share between workers.
    pub fn snapshot(&self, account: &str) -> Vec<BucketSnapshot> {
        let now = Instant::now();
        let wall = SystemTime::now();
        let buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        Group::ALL
            .into_iter()
            .filter_map(|group| {
                let b = buckets.get(&(account.to_owned(), group))?;
                Some(BucketSnapshot {
                    group,
                    limit: b.limit,
                    remaining: b.remaining,
                    reset_at: b.reset_at.map(|r| wall + r.saturating_duration_since(now)),
                })
            })
            .collect()
    }

    /// Adopts stored budgets of an account. Windows that have ended since are ignored; where
    /// this process knows the budget too, the more cautious of the two wins.
    pub fn restore(&self, account: &str, snapshots: &[BucketSnapshot]) {
        let now = Instant::now();
        let wall = SystemTime::now();
        for s in snapshots {
            let Some(left) = s.reset_at.and_then(|r| r.duration_since(wall).ok()) else {
                if s.limit.is_some() {
                    self.with_bucket(&(account.to_owned(), s.group), |b| {
                        b.limit = b.limit.or(s.limit);
                    });
                }
                continue;
            };
            self.with_bucket(&(account.to_owned(), s.group), |b| {
                b.limit = b.limit.or(s.limit);
                b.remaining = match (b.remaining, s.remaining) {
                    (Some(a), Some(c)) => Some(a.min(c)),
                    (a, c) => a.or(c),
                };
                let reset_at = now + left;
                b.reset_at = Some(b.reset_at.map_or(reset_at, |r| r.max(reset_at)));
            });
        }
    }
}

impl Permit<'_> {
    /// Gives the limiter what the answer said; a call that got no answer still used its slot.
    pub(crate) fn finish(
        mut self,
        sent: Instant,
        headers: Option<&RateHeaders>,
        rate_limited: bool,
        fallback: Duration,
    ) {
        self.done = true;
        let none = RateHeaders::default();
        self.limiter.observe(
            &self.key,
            sent,
            Instant::now(),
            headers.unwrap_or(&none),
            rate_limited,
            fallback,
        );
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            // The call may or may not have reached bol: keep its slot spent, only stop
            // counting it as in flight.
            self.limiter.with_bucket(&self.key, |b| {
                b.in_flight = b.in_flight.saturating_sub(1);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tight(calls: u32, window: Duration) -> RateLimiter {
        let g = Some(GroupLimit { calls, window });
        RateLimiter::new(Limits {
            token: None,
            list: g,
            detail: g,
        })
    }

    fn headers(limit: u32, remaining: u32, reset: u64) -> RateHeaders {
        RateHeaders {
            limit: Some(limit),
            remaining: Some(remaining),
            reset: Some(reset),
            retry_after: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_burst_stays_within_the_published_limit() {
        let limiter = tight(3, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..3 {
            let (permit, waited) = limiter.acquire("a", Group::List).await;
            assert_eq!(waited, Duration::ZERO);
            permit.finish(Instant::now(), None, false, Duration::ZERO);
        }
        let (_permit, waited) = limiter.acquire("a", Group::List).await;
        assert_eq!(waited, Duration::from_secs(60));
        assert!(start.elapsed() >= Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn an_exhausted_budget_waits_for_the_reset_the_headers_give() {
        let limiter = tight(10, Duration::from_secs(60));
        let (permit, _) = limiter.acquire("a", Group::Detail).await;
        permit.finish(
            Instant::now(),
            Some(&headers(10, 0, 7)),
            false,
            Duration::ZERO,
        );
        let (_permit, waited) = limiter.acquire("a", Group::Detail).await;
        assert_eq!(waited, Duration::from_secs(7));
        // Other accounts and groups have their own budgets.
        let (_p, waited) = limiter.acquire("b", Group::Detail).await;
        assert_eq!(waited, Duration::ZERO);
        let (_p, waited) = limiter.acquire("a", Group::List).await;
        assert_eq!(waited, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_above_a_billion_is_an_epoch() {
        let limiter = tight(10, Duration::from_secs(60));
        let epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 30;
        let (permit, _) = limiter.acquire("a", Group::List).await;
        permit.finish(
            Instant::now(),
            Some(&headers(10, 0, epoch)),
            false,
            Duration::ZERO,
        );
        let snapshot = limiter.snapshot("a");
        let reset_at = snapshot[0].reset_at.unwrap();
        let left = reset_at.duration_since(SystemTime::now()).unwrap();
        assert!(left > Duration::from_secs(28) && left <= Duration::from_secs(31));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_rules_after_a_429() {
        let limiter = tight(10, Duration::from_secs(60));
        let (permit, _) = limiter.acquire("a", Group::List).await;
        let h = RateHeaders {
            retry_after: Some(4),
            ..RateHeaders::default()
        };
        permit.finish(Instant::now(), Some(&h), true, Duration::from_secs(1));
        let (_p, waited) = limiter.acquire("a", Group::List).await;
        assert_eq!(waited, Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_second_reset_is_tightened_by_the_window_length() {
        let limiter = tight(2, Duration::from_millis(250));
        let (permit, _) = limiter.acquire("a", Group::List).await;
        permit.finish(
            Instant::now(),
            Some(&headers(2, 0, 1)),
            false,
            Duration::ZERO,
        );
        let (_p, waited) = limiter.acquire("a", Group::List).await;
        assert_eq!(waited, Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_reservations_never_overspend() {
        let limiter = tight(5, Duration::from_secs(60));
        let mut permits = Vec::new();
        for _ in 0..5 {
            permits.push(limiter.acquire("a", Group::Detail).await.0);
        }
        let sixth =
            tokio::time::timeout(Duration::from_secs(59), limiter.acquire("a", Group::Detail))
                .await;
        assert!(sixth.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_snapshot_carries_the_budget_to_another_limiter() {
        let first = tight(10, Duration::from_secs(60));
        let (permit, _) = first.acquire("a", Group::List).await;
        permit.finish(
            Instant::now(),
            Some(&headers(10, 0, 20)),
            false,
            Duration::ZERO,
        );
        let stored = serde_json::to_string(&first.snapshot("a")).unwrap();

        let second = tight(10, Duration::from_secs(60));
        second.restore(
            "a",
            &serde_json::from_str::<Vec<BucketSnapshot>>(&stored).unwrap(),
        );
        let (_p, waited) = second.acquire("a", Group::List).await;
        assert!(waited > Duration::from_secs(18), "waited {waited:?}");
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let mut map = reqwest::header::HeaderMap::new();
        map.insert("X-RateLimit-Limit", "25".parse().unwrap());
        map.insert("x-ratelimit-remaining", "3".parse().unwrap());
        map.insert("X-RATELIMIT-RESET", "12".parse().unwrap());
        map.insert("Retry-After", "4".parse().unwrap());
        assert_eq!(
            RateHeaders::from_headers(&map),
            RateHeaders {
                limit: Some(25),
                remaining: Some(3),
                reset: Some(12),
                retry_after: Some(4)
            }
        );
    }
}
