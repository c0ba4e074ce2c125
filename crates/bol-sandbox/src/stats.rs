//! Call accounting: what the sandbox saw per account and endpoint group, so tests can assert
//! "no extra call" exactly. Counters are atomics so counting never serialises requests.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// Endpoint groups, each with its own rate limit and counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    Token = 0,
    List = 1,
    Detail = 2,
    Subscriptions = 3,
    SignatureKeys = 4,
    ProcessStatus = 5,
}

impl Group {
    /// How many groups there are: the length of per-group arrays.
    pub(crate) const COUNT: usize = 6;
}

/// Counters of one endpoint group of one account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStats {
    /// Every request attributed to the account, whatever its answer.
    pub calls: u64,
    /// Answered 429.
    pub rate_limited: u64,
    /// Answered with an injected fault: 5xx, dropped connection, malformed or truncated body.
    pub faults: u64,
    /// Clean answers the client already had (see the README for the exact rules).
    pub wasted: u64,
    /// Answered 401 (bad secret, expired or revoked token).
    pub unauthorized: u64,
}

/// Counters of one account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStats {
    pub client_id: String,
    /// Shipments the account has now (arrivals included), per fulfilment method.
    pub fbr: u64,
    pub fbb: u64,
    pub token: GroupStats,
    pub list: GroupStats,
    pub detail: GroupStats,
    /// `/retailer/subscriptions` and `/retailer/subscriptions/{id}`.
    #[serde(default)]
    pub subscriptions: GroupStats,
    /// `/retailer/subscriptions/signature-keys`.
    #[serde(default)]
    pub signature_keys: GroupStats,
    /// `/shared/process-status/{id}`.
    #[serde(default)]
    pub process_status: GroupStats,
}

/// Everything `GET /_sandbox/stats` reports.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub accounts: Vec<AccountStats>,
    /// Requests no account could be named for (unknown client id or token).
    pub unattributed: u64,
    /// Push notification deliveries.
    #[serde(default)]
    pub push: crate::push::PushStats,
}

impl Stats {
    /// The counters of one account, by client id.
    pub fn account(&self, client_id: &str) -> Option<&AccountStats> {
        self.accounts.iter().find(|a| a.client_id == client_id)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    calls: AtomicU64,
    rate_limited: AtomicU64,
    faults: AtomicU64,
    wasted: AtomicU64,
    unauthorized: AtomicU64,
}

/// What to count.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    Call,
    RateLimited,
    Fault,
    Wasted,
    Unauthorized,
}

impl Counters {
    pub(crate) fn add(&self, event: Event) {
        let counter = match event {
            Event::Call => &self.calls,
            Event::RateLimited => &self.rate_limited,
            Event::Fault => &self.faults,
            Event::Wasted => &self.wasted,
            Event::Unauthorized => &self.unauthorized,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> GroupStats {
        GroupStats {
            calls: self.calls.load(Ordering::Relaxed),
            rate_limited: self.rate_limited.load(Ordering::Relaxed),
            faults: self.faults.load(Ordering::Relaxed),
            wasted: self.wasted.load(Ordering::Relaxed),
            unauthorized: self.unauthorized.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn clear(&self) {
        for c in [
            &self.calls,
            &self.rate_limited,
            &self.faults,
            &self.wasted,
            &self.unauthorized,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}
