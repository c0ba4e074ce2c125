//! Adaptive rate limiting per account and endpoint group, driven by bol's `X-RateLimit-*`
//! headers.
//!
//! The budget is reserved before a call leaves, so concurrent callers never overspend it, and
//! when it is gone the caller sleeps until the window resets instead of spending a call to learn
//! that. bol sends `X-RateLimit-Reset` in whole seconds; each answer therefore only bounds the
//! window's end from above, and the bounds of every answer in a window are intersected (with
//! the configured window length as a further bound) so short, time-scaled windows stay precise.

use crate::parse::RateHeaders;
use serde::{Deserialize, Serialize};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};
// tokio's clock, so that tests can pause time.
use tokio::{sync::Notify, time::Instant};

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
    /// `/retailer/subscriptions` and `/retailer/subscriptions/{id}`.
    Subscriptions,
    /// `GET /retailer/subscriptions/signature-keys`, limited to a few calls an hour.
    SignatureKeys,
    /// `GET /shared/process-status/{id}`.
    ProcessStatus,
}

impl Group {
    /// All groups, for exporting state.
    pub const ALL: [Group; 6] = [
        Group::Token,
        Group::List,
        Group::Detail,
        Group::Subscriptions,
        Group::SignatureKeys,
        Group::ProcessStatus,
    ];
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
            // bol publishes no figures for these: their budgets come from the headers.
            Group::Subscriptions | Group::SignatureKeys | Group::ProcessStatus => None,
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
    /// Calls per window, from the headers or assumed; `None` when unlimited or unknown.
    limit: Option<u32>,
    /// What bol still allows in the current window after the latest call it counted (the lowest
    /// `remaining` of the window), or the assumed budget; `None` when there is no budget.
    /// Calls in flight are not in it yet: `floor - in_flight` may still be reserved.
    floor: Option<u32>,
    /// Whether `floor` comes from bol's headers rather than the assumed limits.
    known: bool,
    /// Upper bound of the current window's end.
    end: Option<Instant>,
    /// The window is believed over: the next call goes alone (once nothing is in flight), and
    /// its headers confirm the new window before the rest of the budget is released.
    probing: bool,
    /// The probe is on its way.
    probe_out: bool,
    in_flight: u32,
    /// Where bol's window boundaries lie, modulo the window length: a boundary lies in
    /// `(lo, hi]` (shifted by whole windows). Only kept when the window length is configured.
    phase: Option<(Instant, Instant)>,
    /// `(sent, received)` of the answered calls counted in the current window, to learn the
    /// boundary from when the next window is confirmed.
    answered: Vec<(Instant, Instant)>,
    /// Calls waiting for this budget now (see [`Waiting`]).
    waiting: u32,
    /// Woken on every change (an answer, a slot given back), so that calls waiting for a
    /// probe's answer go on at once; its own calls only: with one `Notify` for the whole
    /// limiter, each of 5,000 shops' answers woke every call of every other shop waiting for
    /// its window: 28 % of the process's CPU in a round (378 against 272 CPU seconds).
    changed: Arc<Notify>,
}

impl Bucket {
    fn fresh(limit: Option<GroupLimit>) -> Bucket {
        Bucket {
            limit: limit.map(|l| l.calls),
            floor: limit.map(|l| l.calls),
            ..Bucket::default()
        }
    }

    /// Calls that may still be reserved in the current window.
    fn available(&self) -> Option<u32> {
        self.floor.map(|f| f.saturating_sub(self.in_flight))
    }

    /// Narrows the phase with "a boundary lies in `(a, b]`". Constraints as wide as a window say
    /// nothing; one that contradicts the phase replaces it (the newest evidence wins).
    fn constrain(&mut self, a: Instant, b: Instant, window: Duration) {
        if b <= a || b - a >= window {
            return;
        }
        self.phase = Some(match self.phase {
            None => (a, b),
            Some((lo, hi)) => {
                let k = (signed(b, hi) / window.as_secs_f64()).round();
                let (lo, hi) = (shift(lo, k, window), shift(hi, k, window));
                let (lo, hi) = (lo.max(a), hi.min(b));
                if lo < hi { (lo, hi) } else { (a, b) }
            }
        });
    }

    /// Upper bound, from the phase, of the end of the window holding a call answered at
    /// `received`.
    fn phase_end(&self, received: Instant, window: Duration) -> Option<Instant> {
        let (lo, hi) = self.phase?;
        // The first candidate boundary after `received`.
        let k = (signed(received, hi) / window.as_secs_f64()).floor() + 1.0;
        let (lo, hi) = (shift(lo, k, window), shift(hi, k, window));
        // If that boundary may lie before the call was counted, the window ends a window later.
        Some(if lo >= received { hi } else { hi + window })
    }

    /// bol's answer omitted the headers altogether: the group is unlimited.
    fn unlimited(&mut self) {
        *self = Bucket {
            in_flight: self.in_flight,
            ..Bucket::default()
        };
    }
}

/// `a - b` in seconds, signed.
fn signed(a: Instant, b: Instant) -> f64 {
    if a >= b {
        (a - b).as_secs_f64()
    } else {
        -(b - a).as_secs_f64()
    }
}

/// `t + k * window` for a whole, possibly negative `k`.
fn shift(t: Instant, k: f64, window: Duration) -> Instant {
    let by = window.mul_f64(k.abs());
    if k >= 0.0 {
        t + by
    } else {
        t.checked_sub(by).unwrap_or(t)
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
    probe: bool,
    done: bool,
}

/// How one answer ended, for the limiter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Outcome<'h> {
    /// The answer's rate headers; `None` when no answer came.
    pub headers: Option<&'h RateHeaders>,
    /// The answer was a success (2xx).
    pub success: bool,
    /// The answer was a 429.
    pub rate_limited: bool,
    /// How long to wait after a 429 without `Retry-After` or a reset.
    pub fallback: Duration,
}

enum Decision {
    Go { probe: bool },
    Wait(Instant),
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
        if let Some(bucket) = buckets.get_mut(key) {
            return f(bucket);
        }
        let limit = self.limits.get(key.1);
        f(buckets.entry(key.clone()).or_insert(Bucket::fresh(limit)))
    }

    /// Changes the bucket, then wakes the calls waiting for it.
    fn change_bucket(&self, key: &Key, f: impl FnOnce(&mut Bucket)) {
        let changed = self.with_bucket(key, |b| {
            f(b);
            b.changed.clone()
        });
        changed.notify_waiters();
    }

    /// Waits until the budget allows one more call and reserves it; returns how long it waited.
    pub(crate) async fn acquire(&self, account: &str, group: Group) -> (Permit<'_>, Duration) {
        let key = (account.to_owned(), group);
        let window = self.limits.window(group);
        let started = Instant::now();
        let mut waited = false;
        // Counts this call among the waiting ones from its first wait until it goes (or is
        // dropped).
        let mut waiting: Option<Waiting<'_>> = None;
        // Buckets are never removed: this stays the bucket's.
        let changed = self.with_bucket(&key, |b| b.changed.clone());
        loop {
            let notified = changed.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let now = Instant::now();
            let decision = self.with_bucket(&key, |b| {
                if b.end.is_some_and(|end| now >= end) && !b.probing {
                    if b.known {
                        b.probing = true;
                    } else {
                        // Assumed limits: the assumed window is over.
                        b.floor = b.limit;
                        b.end = None;
                    }
                }
                if b.probing {
                    if b.probe_out || b.in_flight > 0 {
                        // Wait for the answers; the window bounds the wait should one be lost.
                        return Decision::Wait(now + window);
                    }
                    b.probe_out = true;
                    b.in_flight += 1;
                    return Decision::Go { probe: true };
                }
                match b.available() {
                    None => {
                        b.in_flight += 1;
                        Decision::Go { probe: false }
                    }
                    Some(n) if n > 0 => {
                        b.in_flight += 1;
                        // Assumed limits only: bol's window is unknown until it answers.
                        b.end.get_or_insert(now + window);
                        Decision::Go { probe: false }
                    }
                    Some(_) => Decision::Wait(*b.end.get_or_insert(now + window)),
                }
            });
            match decision {
                Decision::Go { probe } => {
                    let waited = if waited {
                        started.elapsed()
                    } else {
                        Duration::ZERO
                    };
                    let permit = Permit {
                        limiter: self,
                        key,
                        probe,
                        done: false,
                    };
                    return (permit, waited);
                }
                Decision::Wait(at) => {
                    tracing::debug!(account, ?group, wait = ?at - now, "rate limit: waiting");
                    waited = true;
                    waiting.get_or_insert_with(|| Waiting::start(self, &key));
                    let _ = tokio::time::timeout_at(at, notified).await;
                }
            }
        }
    }

    /// Learns from the answer to a reserved call, sent at `sent` and answered at `received`.
    fn observe(
        &self,
        key: &Key,
        probe: bool,
        sent: Instant,
        received: Instant,
        outcome: Outcome<'_>,
    ) {
        let window = self.limits.window(key.1);
        // Phase tracking needs the true window length, which only configured limits give.
        let tracked = self.limits.get(key.1).is_some();
        let none = RateHeaders::default();
        let headers = outcome.headers.unwrap_or(&none);
        let reset_in = headers.reset();
        self.change_bucket(key, |b| {
            b.in_flight = b.in_flight.saturating_sub(1);
            if probe {
                b.probe_out = false;
            }
            if headers.limit().is_some() {
                b.limit = headers.limit();
            }
            if outcome.rate_limited {
                let wait = headers
                    .retry_after()
                    .or(reset_in)
                    .unwrap_or(outcome.fallback);
                if probe {
                    // The window we thought over was not: what we knew of the phase is wrong.
                    b.phase = None;
                }
                b.floor = Some(0);
                b.known = true;
                b.probing = false;
                b.end = Some(received + wait);
                b.answered.clear();
                return;
            }
            let Some(remaining) = headers.remaining() else {
                if outcome.headers.is_some()
                    && outcome.success
                    && headers.limit().is_none()
                    && reset_in.is_none()
                {
                    // bol always sends the headers on a limited group; without them there is
                    // no limit to keep to.
                    b.unlimited();
                } else if let Some(f) = b.floor {
                    // The call may have been counted.
                    b.floor = Some(f.saturating_sub(1));
                }
                return;
            };
            // The window holding this call ends within `reset` (rounded up) and one window.
            let bound = received + reset_in.map_or(window, |r| r.min(window));
            if tracked && let Some(r) = reset_in.filter(|r| *r >= Duration::from_secs(1)) {
                b.constrain(sent + r - Duration::from_secs(1), received + r, window);
            }
            if probe || !b.known {
                // Nothing else was in flight when a probe left: a `remaining` not below the
                // last one is a new window.
                let new_window = !b.known || remaining >= b.floor.unwrap_or(0);
                if new_window && b.known && tracked {
                    // The calls of the last window that the new one counted before the probe
                    // were sent last: the boundary lies between them and the rest.
                    let limit = b.limit.unwrap_or(remaining + 1);
                    let spilled = limit.saturating_sub(remaining + 1) as usize;
                    let n = b.answered.len();
                    if spilled < n {
                        let mut sent_at: Vec<Instant> = b.answered.iter().map(|a| a.0).collect();
                        let mut received_at: Vec<Instant> =
                            b.answered.iter().map(|a| a.1).collect();
                        sent_at.sort_unstable();
                        received_at.sort_unstable();
                        let lo = sent_at[n - spilled - 1];
                        let hi = if spilled == 0 {
                            received
                        } else {
                            received_at[n - spilled]
                        };
                        b.constrain(lo, hi, window);
                    }
                } else if !new_window {
                    b.phase = None;
                }
                let phase_end = if tracked {
                    b.phase_end(received, window)
                } else {
                    None
                };
                b.end = Some(phase_end.map_or(bound, |p| p.min(bound)));
                b.floor = Some(if new_window {
                    remaining
                } else {
                    remaining.min(b.floor.unwrap_or(remaining))
                });
                if new_window {
                    b.answered.clear();
                }
                b.known = true;
                b.probing = false;
            } else {
                b.floor = Some(b.floor.map_or(remaining, |f| f.min(remaining)));
                // Calls of one burst may straddle a boundary, and the budget left is that of
                // the latest window: its end is the latest of the calls' bounds.
                let own = match tracked.then(|| b.phase_end(received, window)).flatten() {
                    Some(p) => p.min(bound),
                    None => bound,
                };
                b.end = Some(b.end.map_or(own, |e| e.max(own)));
            }
            if b.answered.len() < 10_000 {
                b.answered.push((sent, received));
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
                    remaining: b.available(),
                    reset_at: b.end.map(|r| wall + r.saturating_duration_since(now)),
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
                b.floor = match (b.available(), s.remaining) {
                    (Some(a), Some(c)) => Some(a.min(c) + b.in_flight),
                    (a, c) => a.or(c).map(|f| f + b.in_flight),
                };
                b.known |= s.remaining.is_some();
                let end = now + left;
                b.end = Some(b.end.map_or(end, |r| r.max(end)));
            });
        }
    }
}

/// A call waiting for its budget, counted in the gauges of waiting calls (by group) and
/// waiting accounts until it is dropped. The counts live in the buckets, under the lock, so
/// that an account is counted once however many of its calls of any group wait.
struct Waiting<'a> {
    limiter: &'a RateLimiter,
    key: Key,
}

impl<'a> Waiting<'a> {
    fn start(limiter: &'a RateLimiter, key: &Key) -> Waiting<'a> {
        limiter.count_waiting(key, true);
        Waiting {
            limiter,
            key: key.clone(),
        }
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.limiter.count_waiting(&self.key, false);
    }
}

impl RateLimiter {
    /// One more (`start`) or one less call of `key` waits; updates the gauges (after the lock
    /// is released).
    fn count_waiting(&self, key: &Key, start: bool) {
        let account_changed = {
            let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
            let before: u32 = Group::ALL
                .iter()
                .filter_map(|g| buckets.get(&(key.0.clone(), *g)))
                .map(|b| b.waiting)
                .sum();
            let bucket = buckets
                .entry(key.clone())
                .or_insert_with(|| Bucket::fresh(self.limits.get(key.1)));
            if start {
                bucket.waiting += 1;
                before == 0
            } else {
                bucket.waiting = bucket.waiting.saturating_sub(1);
                before == 1
            }
        };
        let delta = if start { 1.0 } else { -1.0 };
        crate::telemetry::waiting(key.1, delta, account_changed);
    }
}

impl Permit<'_> {
    /// Gives the limiter what the answer said; a call that got no answer still used its slot.
    pub(crate) fn finish(mut self, sent: Instant, outcome: Outcome<'_>) {
        self.done = true;
        self.limiter
            .observe(&self.key, self.probe, sent, Instant::now(), outcome);
    }
}

impl Permit<'_> {
    /// Gives the slot back unspent: the call was never sent.
    pub(crate) fn release(mut self) {
        self.done = true;
        let probe = self.probe;
        self.limiter.change_bucket(&self.key, |b| {
            b.in_flight = b.in_flight.saturating_sub(1);
            if probe {
                b.probe_out = false;
            }
        });
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.done {
            // The call may or may not have reached bol: keep its slot spent, only stop
            // counting it as in flight.
            let probe = self.probe;
            self.limiter.change_bucket(&self.key, |b| {
                b.in_flight = b.in_flight.saturating_sub(1);
                if probe {
                    b.probe_out = false;
                }
                if let Some(f) = b.floor {
                    b.floor = Some(f.saturating_sub(1));
                }
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

    fn fin(
        permit: Permit<'_>,
        headers: Option<&RateHeaders>,
        rate_limited: bool,
        fallback: Duration,
    ) {
        permit.finish(
            Instant::now(),
            Outcome {
                headers,
                success: !rate_limited && headers.is_some(),
                rate_limited,
                fallback,
            },
        );
    }

    /// Headers as the client reads them from an answer.
    fn parsed(pairs: &[(&'static str, String)]) -> RateHeaders {
        let mut map = reqwest::header::HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        crate::parse::rate_headers(&map, SystemTime::now())
    }

    fn headers(limit: u32, remaining: u32, reset: u64) -> RateHeaders {
        parsed(&[
            ("x-ratelimit-limit", limit.to_string()),
            ("x-ratelimit-remaining", remaining.to_string()),
            ("x-ratelimit-reset", reset.to_string()),
        ])
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_burst_stays_within_the_published_limit() {
        let limiter = tight(3, Duration::from_secs(60));
        let start = Instant::now();
        for _ in 0..3 {
            let (permit, waited) = limiter.acquire("a", Group::List).await;
            assert_eq!(waited, Duration::ZERO);
            fin(permit, None, false, Duration::ZERO);
        }
        let (_permit, waited) = limiter.acquire("a", Group::List).await;
        assert_eq!(waited, Duration::from_secs(60));
        assert!(start.elapsed() >= Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn an_exhausted_budget_waits_for_the_reset_the_headers_give() {
        let limiter = tight(10, Duration::from_secs(60));
        let (permit, _) = limiter.acquire("a", Group::Detail).await;
        fin(permit, Some(&headers(10, 0, 7)), false, Duration::ZERO);
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
        fin(permit, Some(&headers(10, 0, epoch)), false, Duration::ZERO);
        let snapshot = limiter.snapshot("a");
        let reset_at = snapshot[0].reset_at.unwrap();
        let left = reset_at.duration_since(SystemTime::now()).unwrap();
        assert!(left > Duration::from_secs(28) && left <= Duration::from_secs(31));
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_rules_after_a_429() {
        let limiter = tight(10, Duration::from_secs(60));
        let (permit, _) = limiter.acquire("a", Group::List).await;
        let h = parsed(&[("retry-after", "4".into())]);
        fin(permit, Some(&h), true, Duration::from_secs(1));
        let (_p, waited) = limiter.acquire("a", Group::List).await;
        assert_eq!(waited, Duration::from_secs(4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_whole_second_reset_is_tightened_by_the_window_length() {
        let limiter = tight(2, Duration::from_millis(250));
        let (permit, _) = limiter.acquire("a", Group::List).await;
        fin(permit, Some(&headers(2, 0, 1)), false, Duration::ZERO);
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
    async fn a_released_permit_gives_its_slot_back() {
        let limiter = tight(2, Duration::from_secs(60));
        let (first, _) = limiter.acquire("a", Group::Detail).await;
        let (second, _) = limiter.acquire("a", Group::Detail).await;
        second.release();
        let (_third, waited) = limiter.acquire("a", Group::Detail).await;
        assert_eq!(waited, Duration::ZERO);
        // A permit dropped unanswered may have been sent: its slot stays spent.
        drop(first);
        let (_fourth, waited) = limiter.acquire("a", Group::Detail).await;
        assert_eq!(waited, Duration::from_secs(60));
    }

    /// Counts the wake-ups of a call waiting for its budget.
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_wakes_only_the_calls_waiting_for_its_own_budget() {
        use std::future::Future;
        let limiter = tight(2, Duration::from_secs(60));
        let (answered, _) = limiter.acquire("b", Group::Detail).await;
        fin(answered, None, false, Duration::ZERO);
        let (in_flight, _) = limiter.acquire("b", Group::Detail).await;
        let wakes = Arc::new(Wakes(Default::default()));
        let waker = std::task::Waker::from(wakes.clone());
        let mut waiting = std::pin::pin!(limiter.acquire("b", Group::Detail));
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(waiting.as_mut().poll(&mut cx).is_pending());

        for account in ["a", "c", "d"] {
            let (permit, _) = limiter.acquire(account, Group::Detail).await;
            fin(permit, Some(&headers(2, 1, 60)), false, Duration::ZERO);
            let (permit, _) = limiter.acquire(account, Group::Detail).await;
            permit.release();
        }
        let count = || wakes.0.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(count(), 0, "other accounts' answers woke it");
        in_flight.release();
        assert_eq!(count(), 1, "its own budget's change wakes it");
        let std::task::Poll::Ready((_, waited)) = waiting.as_mut().poll(&mut cx) else {
            panic!("the slot given back is its");
        };
        assert_eq!(waited, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_snapshot_carries_the_budget_to_another_limiter() {
        let first = tight(10, Duration::from_secs(60));
        let (permit, _) = first.acquire("a", Group::List).await;
        fin(permit, Some(&headers(10, 0, 20)), false, Duration::ZERO);
        let stored = serde_json::to_string(&first.snapshot("a")).unwrap();

        let second = tight(10, Duration::from_secs(60));
        second.restore(
            "a",
            &serde_json::from_str::<Vec<BucketSnapshot>>(&stored).unwrap(),
        );
        let (_p, waited) = second.acquire("a", Group::List).await;
        assert!(waited > Duration::from_secs(18), "waited {waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn calls_and_accounts_waiting_for_a_budget_are_gauged_while_they_wait() {
        // This thread's own recorder: tests running beside this one cannot change its gauges.
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let _local = metrics::set_default_local_recorder(&recorder);
        let gauge = |series: &str| {
            let text = recorder.handle().render();
            text.lines()
                .find_map(|l| {
                    l.strip_prefix(series)?
                        .strip_prefix(' ')?
                        .parse::<f64>()
                        .ok()
                })
                .unwrap_or_else(|| panic!("no {series} in {text}"))
        };
        let limiter = tight(1, Duration::from_secs(60));
        for account in ["a", "b"] {
            let (permit, _) = limiter.acquire(account, Group::List).await;
            fin(permit, None, false, Duration::ZERO);
        }
        let (permit, _) = limiter.acquire("a", Group::Detail).await;
        fin(permit, None, false, Duration::ZERO);
        // Account a waits with two list calls and a detail call, account b with one list call.
        let waits = async {
            tokio::join!(
                limiter.acquire("a", Group::List),
                limiter.acquire("a", Group::List),
                limiter.acquire("a", Group::Detail),
                limiter.acquire("b", Group::List),
            )
        };
        let while_waiting = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            (
                gauge(r#"bol_rate_limit_waiting_calls{group="list"}"#),
                gauge(r#"bol_rate_limit_waiting_calls{group="detail"}"#),
                gauge("bol_rate_limit_waiting_accounts"),
            )
        };
        let seen = tokio::select! {
            _ = waits => panic!("the budgets were spent for a minute"),
            seen = while_waiting => seen,
        };
        assert_eq!(seen, (3.0, 1.0, 2.0));
        // The waiting calls were dropped with their future.
        assert_eq!(gauge(r#"bol_rate_limit_waiting_calls{group="list"}"#), 0.0);
        assert_eq!(gauge("bol_rate_limit_waiting_accounts"), 0.0);
        // A call that waited and went is no longer counted either.
        let (_permit, waited) = limiter.acquire("b", Group::List).await;
        assert_eq!(waited, Duration::from_secs(59));
        assert_eq!(gauge("bol_rate_limit_waiting_accounts"), 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_beyond_any_clock_waits_an_hour() {
        let limiter = tight(10, Duration::from_secs(60));
        let (permit, _) = limiter.acquire("a", Group::List).await;
        let h = parsed(&[("retry-after", u64::MAX.to_string())]);
        fin(permit, Some(&h), true, Duration::from_secs(1));
        let (_p, waited) = limiter.acquire("a", Group::List).await;
        assert_eq!(waited, crate::parse::MAX_WAIT);
    }
}
