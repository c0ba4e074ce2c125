//! The sandbox's shared state: accounts, their shipment catalogues, limits and counters.
//!
//! Shipments are not stored: a catalogue keeps only its count and the ship times of arrivals;
//! everything else is drawn from the seed when asked for.

use crate::{
    clock::Clock,
    config::{Limits, SandboxConfig},
    faults::FaultCell,
    ids::{IdCodec, Key},
    push::{Event, Push},
    ratelimit::Limiter,
    stats::{AccountStats, Counters, Group, Stats},
};
use std::{
    collections::{HashMap, HashSet},
    sync::{
        Mutex, RwLock,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::mpsc;

/// Initial shipments are spread over this many marketplace days before the start.
const HISTORY_DAYS: i64 = 80;
/// bol lists shipments up to three months old.
pub(crate) const LIST_WINDOW_SECS: i64 = 90 * 86_400;

/// The id families.
#[derive(Debug)]
pub(crate) struct Codecs {
    pub shipment: IdCodec,
    pub order: IdCodec,
}

impl Codecs {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            shipment: IdCodec::new(seed, 1, 1_000_000_000_000),
            order: IdCodec::new(seed, 2, 4_000_000_000_000),
        }
    }
}

/// The shipments of one account and fulfilment method, oldest first by index.
#[derive(Debug)]
pub(crate) struct Catalog {
    initial: u64,
    history_start: i64,
    seed: u64,
    count: AtomicU64,
    /// Ship times of arrivals, index `initial + i`.
    arrivals: RwLock<Vec<i64>>,
    /// One bit per shipment: its detail was answered cleanly since the last reset.
    fetched: RwLock<Vec<AtomicU64>>,
    /// List pages answered cleanly in the current crawl.
    crawl: Mutex<HashSet<u32>>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn lock<T>(lock: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    lock.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Catalog {
    fn new(initial: u64, anchor: i64, seed: u64) -> Self {
        let words = initial.div_ceil(64) as usize;
        Self {
            initial,
            history_start: anchor - HISTORY_DAYS * 86_400,
            seed,
            count: AtomicU64::new(initial),
            arrivals: RwLock::new(Vec::new()),
            fetched: RwLock::new((0..words).map(|_| AtomicU64::new(0)).collect()),
            crawl: Mutex::new(HashSet::new()),
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Initial shipments are evenly spread with jitter below the spacing, so ship times never
    /// decrease with the index and "newest first" is simply "highest index first".
    fn initial_shipped(&self, index: u64) -> i64 {
        let span = (HISTORY_DAYS * 86_400) as u128;
        let n = u128::from(self.initial.max(1));
        let base = (u128::from(index) * span / n) as i64;
        let spacing = (span / n) as u64;
        let jitter = if spacing > 1 {
            crate::prng::mix(self.seed ^ index) % spacing
        } else {
            0
        };
        self.history_start + base + jitter as i64
    }

    fn shipped_with(&self, arrivals: &[i64], index: u64) -> i64 {
        if index < self.initial {
            self.initial_shipped(index)
        } else {
            arrivals[(index - self.initial) as usize]
        }
    }

    /// When shipment `index` (< count) was shipped.
    pub(crate) fn shipped(&self, index: u64) -> i64 {
        if index < self.initial {
            self.initial_shipped(index)
        } else {
            self.shipped_with(&read(&self.arrivals), index)
        }
    }

    /// The index of the first shipment shipped at or after `cutoff` (the count if none was).
    fn first_since_with(&self, arrivals: &[i64], cutoff: i64) -> u64 {
        let (mut lo, mut hi) = (0, self.initial + arrivals.len() as u64);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.shipped_with(arrivals, mid) < cutoff {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The index of the first shipment shipped at or after `cutoff` (the count if none was).
    pub(crate) fn first_since(&self, cutoff: i64) -> u64 {
        self.first_since_with(&read(&self.arrivals), cutoff)
    }

    /// Page `page` (1-based) of shipments shipped at or after `cutoff`, newest first:
    /// (index, ship time) pairs.
    pub(crate) fn page(&self, page: u32, per_page: u64, cutoff: i64) -> Vec<(u64, i64)> {
        let arrivals = read(&self.arrivals);
        let count = self.initial + arrivals.len() as u64;
        let visible = count - self.first_since_with(&arrivals, cutoff);
        let skip = u64::from(page - 1).saturating_mul(per_page);
        (skip..visible.min(skip.saturating_add(per_page)))
            .map(|k| count - 1 - k)
            .map(|i| (i, self.shipped_with(&arrivals, i)))
            .collect()
    }

    /// Adds `n` shipments shipped at `at`; they become the newest. Returns the index of the
    /// first.
    pub(crate) fn add(&self, n: u64, at: i64) -> u64 {
        let mut arrivals = write(&self.arrivals);
        let first = self.initial + arrivals.len() as u64;
        arrivals.extend(std::iter::repeat_n(at, n as usize));
        let count = self.initial + arrivals.len() as u64;
        let mut fetched = write(&self.fetched);
        let words = count.div_ceil(64) as usize;
        while fetched.len() < words {
            fetched.push(AtomicU64::new(0));
        }
        self.count.store(count, Ordering::Release);
        first
    }

    /// Records a clean detail answer; true if it was answered before.
    pub(crate) fn note_detail(&self, index: u64) -> bool {
        let fetched = read(&self.fetched);
        let bit = 1u64 << (index % 64);
        fetched
            .get((index / 64) as usize)
            .is_some_and(|w| w.fetch_or(bit, Ordering::Relaxed) & bit != 0)
    }

    /// Records a clean list page; true if this crawl already had it. Page 1 starts a new crawl.
    pub(crate) fn note_page(&self, page: u32) -> bool {
        let mut crawl = lock(&self.crawl);
        if page == 1 {
            crawl.clear();
        }
        !crawl.insert(page)
    }

    fn clear_accounting(&self) {
        read(&self.fetched)
            .iter()
            .for_each(|w| w.store(0, Ordering::Relaxed));
        lock(&self.crawl).clear();
    }
}

/// The last token issued to an account: for counting wasted token calls.
#[derive(Clone, Copy, Debug)]
pub(crate) struct IssuedToken {
    pub issued_ms: u64,
    pub expires_ms: u64,
    pub generation: u32,
}

#[derive(Debug)]
pub(crate) struct Account {
    pub client_id: String,
    pub secret: String,
    /// FBR, FBB.
    pub catalogs: [Catalog; 2],
    /// By [`Group`].
    limiters: [Limiter; Group::COUNT],
    counters: [Counters; Group::COUNT],
    pub last_token: Mutex<Option<IssuedToken>>,
}

impl Account {
    pub(crate) fn catalog(&self, fbb: bool) -> &Catalog {
        &self.catalogs[usize::from(fbb)]
    }

    pub(crate) fn limiter(&self, group: Group) -> &Limiter {
        &self.limiters[group as usize]
    }

    pub(crate) fn counters(&self, group: Group) -> &Counters {
        &self.counters[group as usize]
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub seed: u64,
    pub clock: Clock,
    pub codecs: Codecs,
    pub accounts: Vec<Account>,
    by_client: HashMap<String, usize>,
    pub faults: FaultCell,
    /// Bumped to revoke every token issued before.
    pub token_generation: AtomicU32,
    /// Marketplace seconds a token lives.
    pub token_lifetime: u64,
    /// Real length of a rate-limit window.
    pub window: Duration,
    pub mac_key: u64,
    pub unattributed: AtomicU64,
    /// Numbers requests, for request ids and fault dice.
    pub requests: AtomicU64,
    /// Subscriptions, keys and deliveries.
    pub push: Push,
}

impl Shared {
    /// The state, and the queue of push events for [`crate::push::run`].
    pub(crate) fn new(config: &SandboxConfig) -> (Self, mpsc::UnboundedReceiver<Event>) {
        let clock = Clock::new(config.time_scale);
        let anchor = clock.anchor();
        let Limits {
            list,
            detail,
            token,
        } = config.limits;
        let accounts: Vec<Account> = config
            .accounts
            .iter()
            .enumerate()
            .map(|(n, a)| Account {
                client_id: a.client_id.clone(),
                secret: a.client_secret.clone(),
                catalogs: [false, true].map(|fbb| {
                    let seed = config.seed
                        ^ Key {
                            account: n,
                            fbb,
                            index: 0,
                        }
                        .raw()
                        .wrapping_mul(31);
                    Catalog::new(u64::from(if fbb { a.fbb } else { a.fbr }), anchor, seed)
                }),
                // bol publishes no limits for the push endpoints: unlimited, but counted.
                limiters: [token, list, detail, 0, 0, 0].map(Limiter::new),
                counters: Default::default(),
                last_token: Mutex::new(None),
            })
            .collect();
        let by_client = accounts
            .iter()
            .enumerate()
            .map(|(n, a)| (a.client_id.clone(), n))
            .collect();
        let faults = FaultCell::default();
        faults.set(&config.faults);
        let (push, events) = Push::new();
        push.set_transport_updates(config.transport_updates);
        let shared = Self {
            seed: config.seed,
            window: clock.real(Duration::from_secs(60)),
            clock,
            codecs: Codecs::new(config.seed),
            accounts,
            by_client,
            faults,
            token_generation: AtomicU32::new(0),
            token_lifetime: config.token_lifetime,
            mac_key: crate::prng::mix(config.seed ^ 0x5eed_70ce),
            unattributed: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            push,
        };
        (shared, events)
    }

    pub(crate) fn account_by_client(&self, client_id: &str) -> Option<usize> {
        self.by_client.get(client_id).copied()
    }

    pub(crate) fn stats(&self) -> Stats {
        Stats {
            accounts: self
                .accounts
                .iter()
                .map(|a| AccountStats {
                    client_id: a.client_id.clone(),
                    fbr: a.catalog(false).count(),
                    fbb: a.catalog(true).count(),
                    token: a.counters(Group::Token).snapshot(),
                    list: a.counters(Group::List).snapshot(),
                    detail: a.counters(Group::Detail).snapshot(),
                    subscriptions: a.counters(Group::Subscriptions).snapshot(),
                    signature_keys: a.counters(Group::SignatureKeys).snapshot(),
                    process_status: a.counters(Group::ProcessStatus).snapshot(),
                })
                .collect(),
            unattributed: self.unattributed.load(Ordering::Relaxed),
            push: self.push.stats(),
        }
    }

    /// Clears counters and the memory behind wasted-call accounting (details fetched, crawl
    /// pages); tokens and rate windows are behaviour, not accounting, and stay.
    pub(crate) fn reset_stats(&self) {
        for a in &self.accounts {
            a.counters.iter().for_each(Counters::clear);
            a.catalogs.iter().for_each(Catalog::clear_accounting);
        }
        self.unattributed.store(0, Ordering::Relaxed);
        self.push.reset_stats();
    }

    /// Adds arrivals to an account and notifies its push subscriptions; false if there is no
    /// such account.
    pub(crate) fn add_shipments(&self, client_id: &str, fbr: u64, fbb: u64) -> bool {
        let Some(n) = self.account_by_client(client_id) else {
            return false;
        };
        let now = self.clock.market_now();
        let account = &self.accounts[n];
        let mut added = Vec::new();
        for (fbb, count) in [(false, fbr), (true, fbb)] {
            if count == 0 {
                continue;
            }
            let first = account.catalog(fbb).add(count, now);
            added.extend((first..first + count).map(|index| Key {
                account: n,
                fbb,
                index,
            }));
        }
        self.push.shipments_added(self, &added);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_newest_first_and_arrivals_shift_them() {
        let c = Catalog::new(120, 1_000_000_000, 3);
        let first = c.page(1, 50, 0);
        assert_eq!(first.len(), 50);
        assert_eq!(first[0].0, 119);
        assert!(first.windows(2).all(|w| w[0].1 >= w[1].1));
        assert_eq!(c.page(3, 50, 0).len(), 20);
        assert!(c.page(4, 50, 0).is_empty());
        c.add(2, 1_000_000_100);
        assert_eq!(c.page(1, 50, 0)[0].0, 121);
        assert_eq!(c.page(3, 50, 0).len(), 22);
    }

    #[test]
    fn shipments_older_than_the_cutoff_are_not_listed() {
        let c = Catalog::new(100, 1_000_000_000, 3);
        let cutoff = c.shipped(40);
        let all: Vec<u64> = (1..=3)
            .flat_map(|p| c.page(p, 50, cutoff))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(all.last(), Some(&40));
        assert_eq!(all.len(), 60);
    }

    #[test]
    fn a_page_fetched_twice_in_a_crawl_is_wasted_and_page_one_starts_over() {
        let c = Catalog::new(10, 0, 0);
        assert!(!c.note_page(1));
        assert!(!c.note_page(2));
        assert!(c.note_page(2));
        assert!(!c.note_page(1));
        assert!(!c.note_page(2));
    }

    #[test]
    fn a_detail_fetched_twice_is_wasted_until_reset() {
        let c = Catalog::new(100, 0, 0);
        assert!(!c.note_detail(70));
        assert!(c.note_detail(70));
        c.clear_accounting();
        assert!(!c.note_detail(70));
    }
}
